//! The body of every fuzz target, one function per target, shared by the cargo-fuzz
//! binaries in `fuzz_targets/` and by `tests/fuzz_regressions.rs` (which includes this
//! file with `#[path]` and replays the inputs kept in `fuzz/regressions/<target>/`).
//! Each function must return normally for every input: a panic is a finding.

#![allow(dead_code)]
// CK_ULONG is u64 here but not on every target.
#![allow(clippy::unnecessary_cast)]

use aws_lc_rs::hmac;
use kmshsm::ck::*;
use kmshsm::crypto::curve25519::{Ed25519Private, X25519Private};
use kmshsm::crypto::rsa::{RsaComponents, RsaPrivateKey};
use kmshsm::crypto::sm::sm2_generate;
use kmshsm::crypto::{ec, pkcs8};
use kmshsm::ids::ObjectHandle;
use kmshsm::kms::import::ImportToken;
use kmshsm::mechanism::params::OaepParams;
use kmshsm::mechanism::{registry, Param, WrappedLen};
use kmshsm::object::attr;
use kmshsm::object::attr::{RawAttribute, RawValue};
use kmshsm::object::key::{Key, Material, CKK_SM2};
use kmshsm::object::template::{self, Provenance};
use std::sync::LazyLock;
use zeroize::Zeroizing;

/// The store's attribute-record decoding (`object::attr::decode`): a corrupted or hostile
/// token database must give `StoreError::Malformed`, never a panic. A record that decodes
/// must survive the encode/decode round trip.
pub fn attr_decode(data: &[u8]) {
    let _ = attr::decode(data);
}

/// The configuration file (`config::Config::parse`): any text gives a configuration or
/// `Error::Config`, never a panic.
pub fn config_parse(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = kmshsm::config::Config::parse(text);
    }
}

const MAC_KEY: [u8; 32] = [0x5a; 32];

/// Import tokens (`kms::import::ImportToken::open`). Half the inputs are taken as they are
/// (the MAC check must refuse them without panicking); the other half get a valid tag
/// under the fuzzer's key, in the layout issued today (`KMT2`, HMAC-SHA-512) or the legacy
/// one still opened (`KMT1`, HMAC-SHA-256) by the mode's second bit, so the parsing
/// behind the MAC (KeyId, wrapping algorithm code, expiry) is reached with arbitrary bodies.
pub fn import_token(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // `get(..8)` gives exactly 8 bytes, so the conversion to [u8; 8] cannot fail.
    let now = i64::from_le_bytes(
        rest.get(..8)
            .map_or([0; 8], |b| b.try_into().expect("8 bytes")),
    );
    if mode & 1 == 0 {
        let _ = ImportToken::open(rest, &MAC_KEY, now);
    } else {
        let (magic, mac) = if mode & 2 == 0 {
            (b"KMT1", hmac::HMAC_SHA256)
        } else {
            (b"KMT2", hmac::HMAC_SHA512)
        };
        let mut token = magic.to_vec();
        token.extend_from_slice(rest);
        let tag = hmac::sign(&hmac::Key::new(mac, &MAC_KEY), &token);
        token.extend_from_slice(tag.as_ref());
        if let Ok(opened) = ImportToken::open(&token, &MAC_KEY, now) {
            // A token that opens has not expired.
            assert!(now < opened.expires_at);
        }
        let _ = ImportToken::open(rest, &MAC_KEY, now);
    }
}

/// DER decoding of imported key material: PKCS#8 PrivateKeyInfo and SubjectPublicKeyInfo
/// (`crypto::pkcs8`), plus the SEC1 EC private key and EC point helpers they lead to.
pub fn pkcs8_spki(data: &[u8]) {
    let _ = pkcs8::decode_private_key_info(data);
    let _ = pkcs8::decode_spki(data);
    let _ = ec::scalar_from_sec1(data);
    let _ = ec::Curve::from_oid(data);
}

/// RSAPrivateKey DER (`crypto::rsa::RsaComponents::from_pkcs1_der`), the inner encoding of
/// imported RSA material. Whatever decodes is also handed to the key constructor, which
/// must refuse inconsistent components with an error. The same bytes go to the
/// RSAPublicKey decoder (`from_public_der`, the key inside a wrapping SPKI).
pub fn rsa_pkcs1(data: &[u8]) {
    if let Ok(components) = RsaComponents::from_pkcs1_der(data) {
        let _ = RsaPrivateKey::new(&components);
    }
    let _ = RsaComponents::from_public_der(data);
}

const VENDOR: u64 = 0x8000_0000 | 0x4B4D_0000;

const TYPES: &[AttrType] = &[
    CKA_CLASS,
    CKA_TOKEN,
    CKA_PRIVATE,
    CKA_LABEL,
    CKA_APPLICATION,
    CKA_VALUE,
    CKA_OBJECT_ID,
    CKA_CERTIFICATE_TYPE,
    CKA_KEY_TYPE,
    CKA_ID,
    CKA_SENSITIVE,
    CKA_ENCRYPT,
    CKA_DECRYPT,
    CKA_WRAP,
    CKA_UNWRAP,
    CKA_SIGN,
    CKA_VERIFY,
    CKA_DERIVE,
    CKA_MODULUS,
    CKA_MODULUS_BITS,
    CKA_PUBLIC_EXPONENT,
    CKA_PRIVATE_EXPONENT,
    CKA_PRIME_1,
    CKA_PRIME_2,
    CKA_EXPONENT_1,
    CKA_EXPONENT_2,
    CKA_COEFFICIENT,
    CKA_VALUE_LEN,
    CKA_EXTRACTABLE,
    CKA_LOCAL,
    CKA_NEVER_EXTRACTABLE,
    CKA_ALWAYS_SENSITIVE,
    CKA_KEY_GEN_MECHANISM,
    CKA_MODIFIABLE,
    CKA_COPYABLE,
    CKA_DESTROYABLE,
    CKA_EC_PARAMS,
    CKA_EC_POINT,
    CKA_WRAP_TEMPLATE,
    CKA_UNWRAP_TEMPLATE,
    CKA_DERIVE_TEMPLATE,
    CKA_ALLOWED_MECHANISMS,
    CKA_START_DATE,
    CKA_END_DATE,
    CKA_SUBJECT,
    CKA_ISSUER,
    CKA_SERIAL_NUMBER,
    CKA_CHECK_VALUE,
    CKA_WRAP_WITH_TRUSTED,
    CKA_TRUSTED,
    CKA_ALWAYS_AUTHENTICATE,
    CKA_UNIQUE_ID,
    CKA_PUBLIC_KEY_INFO,
];

/// A small reader over the fuzz input.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head.to_vec()
    }
    fn ty(&mut self) -> Option<AttrType> {
        let b = self.byte()?;
        Some(match b {
            0xF0..=0xFA => AttrType::new(VENDOR | u64::from(b - 0xF0)),
            0xFB => AttrType::new(u64::from_le_bytes(
                self.bytes(8).try_into().unwrap_or([0xff; 8]),
            )),
            _ => TYPES[b as usize % TYPES.len()],
        })
    }
    /// A value: sizes 1 and 8 are frequent so CK_BBOOL and CK_ULONG checks pass often.
    fn value(&mut self) -> Option<Vec<u8>> {
        let n = match self.byte()? {
            0..=63 => 1,
            64..=127 => 8,
            b => usize::from(b - 128),
        };
        Some(self.bytes(n))
    }
    fn attributes(&mut self, depth: u8) -> Vec<RawAttribute> {
        let mut out = Vec::new();
        while out.len() < 24 {
            let Some(ty) = self.ty() else { break };
            let nested = depth == 0 && self.0.first().is_some_and(|b| *b == 0xEE);
            let value = if nested {
                self.byte();
                RawValue::Nested(self.attributes(1))
            } else if let Some(v) = self.value() {
                RawValue::Bytes(Zeroizing::new(v))
            } else {
                break;
            };
            out.push(RawAttribute { ty, value });
        }
        out
    }
}

/// Attribute templates as `C_CreateObject`, `C_FindObjectsInit` and `C_SetAttributeValue`
/// receive them after the C ABI has copied them: `object::template::build` (every
/// provenance) and `parse_search`, with types drawn from the attributes the module knows
/// (so the value checks are reached) and arbitrary values, nested templates included.
pub fn template(data: &[u8]) {
    let mut input = Input(data);
    let Some(sel) = input.byte() else { return };
    let template = input.attributes(0);
    let provenance = match sel % 5 {
        0 => Provenance::Supplied,
        1 => Provenance::Generated(CKM_AES_KEY_GEN),
        2 => Provenance::Unwrapped,
        3 => Provenance::Derived {
            always_sensitive: sel & 0x10 != 0,
            never_extractable: sel & 0x20 != 0,
        },
        _ => Provenance::Pending,
    };
    if let Ok(object) = template::build(&template, provenance, Vec::new()) {
        // An object that was built can be changed and copied with the same template.
        let _ = template::parse_search(&template);
        let _ = object;
    }
    let _ = template::parse_search(&template);
}

struct Keys {
    rsa: Key,
    sm2: Key,
    aes: Key,
    mechanisms: Vec<MechType>,
}

static KEYS: LazyLock<Keys> = LazyLock::new(|| {
    let components = RsaComponents::generate(2048).expect("RSA key");
    let (d, point) = sm2_generate().expect("SM2 key");
    let mechanisms = registry::all()
        .filter(|m| m.info().flags & CKF_UNWRAP != 0)
        .map(|m| m.kind())
        .collect();
    Keys {
        rsa: Key {
            class: CKO_PRIVATE_KEY,
            key_type: CKK_RSA,
            material: Material::RsaPrivate(RsaPrivateKey::new(&components).expect("RSA")),
            prepared: Default::default(),
        },
        sm2: Key {
            class: CKO_PRIVATE_KEY,
            key_type: CKK_SM2,
            material: Material::Sm2Private {
                d: Zeroizing::new(d.to_vec()),
                point: point.to_vec(),
            },
            prepared: Default::default(),
        },
        aes: Key {
            class: CKO_SECRET_KEY,
            key_type: CKK_AES,
            material: Material::Secret(Zeroizing::new(vec![0x42; 32])),
            prepared: Default::default(),
        },
        mechanisms,
    }
});

fn oaep(hash: MechType, mgf: CK_RSA_PKCS_MGF_TYPE, label: &[u8]) -> OaepParams {
    OaepParams {
        hash,
        mgf,
        source: CKZ_DATA_SPECIFIED,
        label: label.to_vec(),
    }
}

/// C_UnwrapKey's wrapped blobs for every wrapping mechanism: the registry's unwrap of each
/// mechanism that has `CKF_UNWRAP`, with an RSA-2048, an SM2 and an AES-256 unwrapping key
/// (the key of the wrong kind must be refused with an error, not a panic) and a parameter
/// chosen by the first input byte. This is the code `C_UnwrapKey` (and so ImportKeyMaterial)
/// runs after the C ABI has decoded the mechanism.
pub fn unwrap(data: &[u8]) {
    let keys = &*KEYS;
    let [mech_sel, param_sel, key_sel, rest @ ..] = data else {
        return;
    };
    let kind = keys.mechanisms[*mech_sel as usize % keys.mechanisms.len()];
    let param = match param_sel % 8 {
        0 => Param::None,
        1 => Param::Oaep(oaep(CKM_SHA_1, CKG_MGF1_SHA1, &[])),
        2 => Param::Oaep(oaep(CKM_SHA256, CKG_MGF1_SHA256, b"label")),
        3 => Param::RsaAesKeyWrap {
            aes_key_bits: 256,
            oaep: oaep(CKM_SHA256, CKG_MGF1_SHA256, &[]),
        },
        4 => Param::RsaAesKeyWrap {
            aes_key_bits: u64::from(*param_sel),
            oaep: oaep(CKM_SHA_1, CKG_MGF1_SHA1, &[]),
        },
        5 => Param::Bytes(rest.iter().take(16).copied().collect()),
        6 => Param::Oaep(oaep(MechType::new(u64::from(*param_sel)), 7, &[])),
        _ => Param::Bytes(Vec::new()),
    };
    let key = match key_sel % 3 {
        0 => &keys.rsa,
        1 => &keys.sm2,
        _ => &keys.aes,
    };
    let expected = match key_sel / 3 % 6 {
        0 => WrappedLen::Any,
        1 => WrappedLen::Exact(16),
        2 => WrappedLen::Exact(32),
        3 => WrappedLen::OneOf(&[16, 24, 32]),
        4 => WrappedLen::Encoded,
        _ => WrappedLen::Exact(usize::from(*key_sel)),
    };
    let mechanism = registry::find(kind).expect("registered");
    let _ = mechanism.unwrap(&param, key, rest, expected);
}

/// One key of each kind, shared (`Arc`) as operations take them.
static OPERATION_KEYS: LazyLock<[std::sync::Arc<Key>; 8]> = LazyLock::new(|| {
    let components = RsaComponents::generate(2048).expect("RSA key");
    let (d, point) = sm2_generate().expect("SM2 key");
    let (ec_d, _) = ec::EcPrivateKey::generate(ec::Curve::P256).expect("P-256 key");
    let key = |class, key_type, material| {
        std::sync::Arc::new(Key {
            class,
            key_type,
            material,
            prepared: Default::default(),
        })
    };
    [
        key(
            CKO_PRIVATE_KEY,
            CKK_RSA,
            Material::RsaPrivate(RsaPrivateKey::new(&components).expect("RSA")),
        ),
        key(
            CKO_PRIVATE_KEY,
            CKK_SM2,
            Material::Sm2Private {
                d: Zeroizing::new(d.to_vec()),
                point: point.to_vec(),
            },
        ),
        key(
            CKO_PRIVATE_KEY,
            CKK_EC,
            Material::EcPrivate(ec::EcPrivateKey::new(ec::Curve::P256, &ec_d).expect("P-256")),
        ),
        key(
            CKO_SECRET_KEY,
            CKK_AES,
            Material::Secret(Zeroizing::new(vec![0x42; 32])),
        ),
        key(
            CKO_PRIVATE_KEY,
            CKK_EC_EDWARDS,
            Material::Ed25519Private(Ed25519Private::from_seed(&[0x11; 32]).expect("Ed25519")),
        ),
        key(
            CKO_PUBLIC_KEY,
            CKK_EC_EDWARDS,
            Material::Ed25519Public(
                Ed25519Private::from_seed(&[0x11; 32])
                    .expect("Ed25519")
                    .public(),
            ),
        ),
        key(
            CKO_PRIVATE_KEY,
            CKK_EC_MONTGOMERY,
            Material::X25519Private(X25519Private::from_scalar(&[0x22; 32]).expect("X25519")),
        ),
        key(
            CKO_PUBLIC_KEY,
            CKK_EC_MONTGOMERY,
            Material::X25519Public([0x09; 32]),
        ),
    ]
});

/// Reads fuzz input in pieces: fixed-size numbers and length-prefixed byte strings, with
/// zeros (or empty strings) once the input runs out.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
    fn ulong(&mut self) -> u64 {
        // Mostly small values and the PKCS#11 constants near them; sometimes any value.
        match self.byte() % 4 {
            0 => u64::from(self.byte()),
            1 => u64::from(u16::from_le_bytes([self.byte(), self.byte()])),
            2 => 0x250 + u64::from(self.byte()), // the SHA-2 mechanism numbers' range
            _ => u64::from_le_bytes(std::array::from_fn(|_| self.byte())),
        }
    }
    fn bytes(&mut self) -> Vec<u8> {
        let len = usize::from(self.byte());
        let take = len.min(self.0.len());
        let (b, rest) = self.0.split_at(take);
        self.0 = rest;
        b.to_vec()
    }
}

/// Mechanism parameters after the C ABI has decoded them: every parameter structure the
/// module takes (`Param`), filled from the input, handed to every registered mechanism's
/// encrypt, decrypt, sign, verify, wrap, unwrap and derive with an RSA-2048, SM2, P-256,
/// AES-256, Ed25519 or X25519 key, and the operation run on input bytes. A parameter of the wrong kind or
/// value must be refused with an error; none may panic.
pub fn mech_params(data: &[u8]) {
    let mechanisms: Vec<MechType> = registry::all().map(|m| m.kind()).collect();
    let mut r = Reader(data);
    let kind = mechanisms[usize::from(r.byte()) % mechanisms.len()];
    let param = match r.byte() % 15 {
        0 => Param::None,
        1 => Param::Bytes(r.bytes()),
        2 => Param::Gcm(kmshsm::mechanism::params::GcmParams {
            iv: kmshsm::mechanism::params::Iv::new(&r.bytes()),
            aad: r.bytes(),
            tag_bits: r.ulong(),
        }),
        3 => Param::Ctr {
            counter_bits: r.ulong(),
            block: std::array::from_fn(|_| r.byte()),
        },
        4 => Param::Oaep(OaepParams {
            hash: MechType::new(r.ulong()),
            mgf: r.ulong() as CK_RSA_PKCS_MGF_TYPE,
            source: r.ulong() as CK_RSA_PKCS_OAEP_SOURCE_TYPE,
            label: r.bytes(),
        }),
        5 => Param::Pss(kmshsm::mechanism::params::PssParams {
            hash: MechType::new(r.ulong()),
            mgf: r.ulong() as CK_RSA_PKCS_MGF_TYPE,
            salt_len: r.ulong(),
        }),
        6 => Param::Ecdh1(kmshsm::mechanism::params::Ecdh1Params {
            kdf: r.ulong() as CK_EC_KDF_TYPE,
            shared_data: r.bytes(),
            public_data: r.bytes(),
        }),
        7 => Param::RsaAesKeyWrap {
            aes_key_bits: r.ulong(),
            oaep: OaepParams {
                hash: MechType::new(r.ulong()),
                mgf: r.ulong() as CK_RSA_PKCS_MGF_TYPE,
                source: r.ulong() as CK_RSA_PKCS_OAEP_SOURCE_TYPE,
                label: r.bytes(),
            },
        },
        8 => Param::Eddsa {
            prehash: r.byte() & 1 != 0,
            context: r.bytes(),
        },
        9 => Param::ObjectHandle(ObjectHandle::new(r.ulong())),
        10 => Param::Ulong(r.ulong()),
        11 => Param::AesCbcEncryptData {
            iv: std::array::from_fn(|_| r.byte()),
            data: r.bytes(),
        },
        12 => Param::Kbkdf(kbkdf_params(&mut r)),
        13 => Param::Hkdf(kmshsm::mechanism::params::HkdfParams {
            extract: r.byte() & 1 != 0,
            expand: r.byte() & 1 != 0,
            hash: MechType::new(r.ulong()),
            salt: match r.byte() % 3 {
                0 => kmshsm::mechanism::params::HkdfSalt::Null,
                1 => kmshsm::mechanism::params::HkdfSalt::Data(r.bytes()),
                _ => kmshsm::mechanism::params::HkdfSalt::Key(ObjectHandle::new(r.ulong())),
            },
            info: r.bytes(),
        }),
        _ => Param::Bytes(Vec::new()),
    };
    let key = &OPERATION_KEYS[usize::from(r.byte()) % OPERATION_KEYS.len()];
    run_operations(kind, &param, key, &mut r);
}

/// An SP 800-108 parameter from the input: a few data fields of any kind and width.
fn kbkdf_params(r: &mut Reader<'_>) -> kmshsm::mechanism::params::KbkdfParams {
    use kmshsm::mechanism::params::{IntFormat, PrfData};
    let format = |r: &mut Reader<'_>| IntFormat {
        little_endian: r.byte() & 1 != 0,
        width_bits: u64::from(r.byte()),
    };
    let data = (0..r.byte() % 6)
        .map(|_| match r.byte() % 5 {
            0 => PrfData::Iteration(None),
            1 => PrfData::Iteration(Some(format(r))),
            2 => PrfData::Counter(format(r)),
            3 => PrfData::DkmLength {
                method: u64::from(r.byte() % 4),
                format: format(r),
            },
            _ => PrfData::Bytes(r.bytes()),
        })
        .collect();
    kmshsm::mechanism::params::KbkdfParams {
        prf: MechType::new(r.ulong()),
        data,
        iv: r.bytes(),
        additional_keys: usize::from(r.byte() % 3),
    }
}

fn run_operations(kind: MechType, param: &Param, key: &std::sync::Arc<Key>, r: &mut Reader<'_>) {
    let Some(mechanism) = registry::find(kind) else {
        return;
    };
    let input = r.bytes();
    match r.byte() % 7 {
        0 => {
            if let Ok(mut op) = mechanism.encrypt(param, key) {
                let _ = op.one_shot(&input);
            }
        }
        1 => {
            if let Ok(mut op) = mechanism.decrypt(param, key) {
                let _ = op.update(&input);
                let _ = op.finish();
            }
        }
        2 => {
            if let Ok(mut op) = mechanism.sign(param, key) {
                let _ = op.update(&input);
                let _ = op.finish();
            }
        }
        3 => {
            if let Ok(mut op) = mechanism.verify(param, key) {
                let _ = op.update(&input);
                let _ = op.finish(&r.bytes());
            }
        }
        4 => {
            let _ = mechanism.wrap(param, key, &input);
        }
        5 => {
            let _ = mechanism.unwrap(param, key, &input, WrappedLen::Any);
        }
        _ => {
            let len = usize::from(r.byte());
            let _ = mechanism.derive(param, key, (len != 0).then_some(len));
            // The whole derivation: another key (the same one) when asked, and up to
            // three key lengths (of up to 255 bytes, or none).
            let other = (r.byte() & 1 != 0).then_some(&**key);
            let lens = (0..1 + r.byte() % 3)
                .map(|_| {
                    let n = usize::from(r.byte());
                    (n != 0).then_some(n)
                })
                .collect();
            let guarded = r.byte();
            let input = kmshsm::mechanism::DeriveInput {
                other,
                lens,
                guarded: (guarded & 1 != 0, guarded & 2 != 0),
            };
            let _ = mechanism.derive_keys(param, key, &input);
        }
    }
}
