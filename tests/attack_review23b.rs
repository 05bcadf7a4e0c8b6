//! An attacker's review (branch attack23b) of the cryptographic mechanisms against hostile
//! INPUT DATA (the C ABI's pointers were reviewed before): SM2 (`src/crypto/sm/sm2.rs`,
//! `src/mechanism/sm.rs`) with hostile ciphertexts (C1 compressed, hybrid, off the curve,
//! all zero; C3 wrong; C2 empty), signatures (r or s zero or not below n, r + s = n,
//! wrong lengths), identifiers and public key objects; ECDH (`src/mechanism/ec.rs`,
//! `ecdh_kdf.rs`, `montgomery.rs`, `src/crypto/ec.rs`) with peers off the curve, at
//! infinity, of the wrong length, bare or wrapped in an OCTET STRING; EdDSA parameters;
//! RSA PSS, OAEP and raw inputs and crafted public keys (`src/mechanism/rsa.rs`,
//! `src/crypto/rsa/`); DES and SM4 lengths; the KBKDF, HKDF and simple derivations'
//! lengths. Every hostile call is followed by an ordinary call on another session: a
//! caught panic poisons the module (`src/ffi/guard.rs`), which that call would show.
//!
//! Defects, `DEFECT` in their comments, each with a test failing on the reviewed commit:
//!
//! 1. `ec::point_from_attribute` (src/crypto/ec.rs) takes any value that parses as a DER
//!    OCTET STRING whose contents begin with 04 for a wrapped point. A bare uncompressed
//!    point `04 || x || y` parses so whenever x begins with the bytes that make
//!    `04 len 04 ...` (P-256 and secp256k1: x = 3f 04 ..., one point in 65,536): the module
//!    then uses the 63 bytes after the "header" as the point. So a valid bare ECDH peer
//!    (which PKCS#11 3.0 §2.3.11 says a token MUST accept raw) is refused, and a public
//!    key object made with such a bare point verifies none of its own signatures.
//! 2. An SM2 public key whose `CKA_EC_POINT` is not a point of the curve is accepted by
//!    `C_CreateObject` and `C_EncryptInit`, and `C_Encrypt` then answers
//!    `CKR_ATTRIBUTE_VALUE_INVALID`, a code PKCS#11 3.0 §5.13 does not list for it (and
//!    `C_VerifyInit` answers it too, §5.15 does not list it either).
//! 3. `CKM_RSA_PKCS_PSS` with a salt too long for the key's modulus (RFC 8017 §9.1.1:
//!    emLen < hLen + sLen + 2) is accepted by `C_SignInit` and refused by `C_Sign` with
//!    `CKR_MECHANISM_PARAM_INVALID`, which §5.14 does not list for `C_Sign`; the key is
//!    known at `C_SignInit`, which is where a parameter the key cannot take is refused.
//!
//! All three fixed in the commit after this file's: a bare point is told from a wrapped
//! one by its length; an SM2 public key is checked at creation (and at every `Init` for
//! one stored before); the salt is checked against the key at `C_SignInit`.
//!
//! The other tests are "PASSING (coverage, no defect)": attacks that held.
//!
//! Run with `cargo nextest run --test attack_review23b` (after `cargo build --lib --bins`).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::*;
use common::raw::RawAttr;
use common::*;
use cryptoki::context::Pkcs11;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki::slot::Slot;
use cryptoki_sys::*;
use openssl::bn::{BigNum, BigNumContext};
use openssl::ec::{EcGroup, EcPoint, PointConversionForm};
use openssl::nid::Nid;

/// The generator of sm2p256v1 (GB/T 32918.5-2017), uncompressed: a point of the curve.
const SM2_G: &str = "0432c4ae2c1f1981195f9904466a39c9948fe30bbff2660be1715a4589334c74c7\
                     bc3736a2f4f6779c59bdcee36b692153d0a9877cc62a474002df32e52139f0a0";
/// The order n of sm2p256v1's group.
const SM2_N: &str = "fffffffeffffffffffffffffffffffff7203df6b21c6052b53bbf40939d54123";

struct World {
    _env: TestEnv,
    _ctx: Pkcs11,
    session: Session,
    /// A second session of the same token, for the ordinary call after each attack.
    other: Session,
    ck: Ck,
}

fn world() -> World {
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    let other = open_other(&ctx, slot);
    World {
        _env: env,
        _ctx: ctx,
        session,
        other,
        ck: Ck::load(),
    }
}

fn open_other(ctx: &Pkcs11, slot: Slot) -> Session {
    ctx.open_ro_session(slot).expect("C_OpenSession (second)")
}

impl World {
    fn s(&self) -> CK_SESSION_HANDLE {
        self.session.handle()
    }

    /// An ordinary call on the other session: a poisoned module answers
    /// `CKR_GENERAL_ERROR` to it.
    fn still_serves(&self, after: &str) {
        let digest = self.other.digest(&Mechanism::Sha256, b"abc");
        assert_eq!(
            digest.map(|d| d.len()).map_err(|e| format!("{e}")),
            Ok(32),
            "after {after}, an ordinary C_Digest on another session failed: the module is poisoned"
        );
    }
}

/// What a call answered, by name (`CKR_OK`, or the error's name as `cryptoki` spells it).
fn answer<T>(r: Result<T, RvError>) -> String {
    match r {
        Ok(_) => ck(CKR_OK),
        Err(e) => format!("{e:?}"),
    }
}

/// A code's name, spelt as [`answer`] spells it.
fn ck(rv: CK_RV) -> String {
    common::hostile::name(rv)
}

/// A template for a derived, readable generic secret.
fn readable_secret() -> Vec<RawAttr> {
    vec![
        RawAttr::ulong(CKA_CLASS, CKO_SECRET_KEY),
        RawAttr::ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET),
        RawAttr::bool(CKA_TOKEN, false),
        RawAttr::bool(CKA_SENSITIVE, false),
        RawAttr::bool(CKA_EXTRACTABLE, true),
    ]
}

// ---------------------------------------------------------------------------------------
// Points whose bare encoding reads as an OCTET STRING

/// A random scalar in [1, n-1] of `group`, big-endian, `len` bytes.
fn random_scalar(group: &EcGroup, len: usize) -> BigNum {
    let mut ctx = BigNumContext::new().unwrap();
    let mut order = BigNum::new().unwrap();
    group.order(&mut order, &mut ctx).unwrap();
    loop {
        let mut d = BigNum::new().unwrap();
        order.rand_range(&mut d).unwrap();
        if d.num_bits() > 0 && d.to_vec_padded(len as i32).is_ok() {
            return d;
        }
    }
}

/// Whether a 65-byte uncompressed point reads as one DER OCTET STRING whose contents
/// begin with 04: `04 3f 04 ...` (x begins 3f 04).
fn reads_as_octet_string(point: &[u8]) -> bool {
    point.len() == 65 && point[0] == 0x04 && point[1] == 0x3f && point[2] == 0x04
}

/// A point of the 256-bit curve `nid` whose x begins 3f 04, uncompressed: found by
/// decompressing x = 3f 04 00 .. 00 || i for i = 0, 1, ... (about half are on the curve).
fn point_reading_as_octet_string(nid: Nid) -> Vec<u8> {
    let group = EcGroup::from_curve_name(nid).unwrap();
    let mut ctx = BigNumContext::new().unwrap();
    for i in 0u32..1 << 16 {
        let mut compressed = vec![0x02, 0x3f, 0x04];
        compressed.resize(1 + 32 - 4, 0);
        compressed.extend_from_slice(&i.to_be_bytes());
        if let Ok(p) = EcPoint::from_bytes(&group, &compressed, &mut ctx) {
            let bare = p
                .to_bytes(&group, PointConversionForm::UNCOMPRESSED, &mut ctx)
                .unwrap();
            assert!(reads_as_octet_string(&bare));
            return bare;
        }
    }
    panic!("no point of the curve with x = 3f 04 ... found");
}

/// x(d·Q) on `nid`, 32 bytes: the ECDH shared secret, computed by OpenSSL.
fn shared_x(nid: Nid, d: &BigNum, q: &[u8]) -> Vec<u8> {
    let group = EcGroup::from_curve_name(nid).unwrap();
    let mut ctx = BigNumContext::new().unwrap();
    let q = EcPoint::from_bytes(&group, q, &mut ctx).unwrap();
    let mut r = EcPoint::new(&group).unwrap();
    r.mul2(&group, &q, d, &mut ctx).unwrap();
    let (mut x, mut y) = (BigNum::new().unwrap(), BigNum::new().unwrap());
    r.affine_coordinates(&group, &mut x, &mut y, &mut ctx)
        .unwrap();
    x.to_vec_padded(32).unwrap()
}

/// DEFECT (1), ECDH: the peer's public point given raw, `04 || x || y`, as PKCS#11 3.0
/// §2.3.11 says a token MUST accept it ("A token MUST be able to accept this value encoded
/// as a raw octet string (as per section A.5.2 of [ANSI X9.62])"), is refused with
/// `CKR_MECHANISM_PARAM_INVALID` when x begins 3f 04: `ec::point_from_attribute` reads
/// `04 3f` as the header of a 63-byte OCTET STRING whose contents begin with 04, and hands
/// those 63 bytes to aws-lc (or k256) as the point. One honest peer in 65,536 cannot agree
/// a key with the token. Expected: the derivation succeeds and gives x(d·Q), as computed
/// by OpenSSL, the same as with the point wrapped in an OCTET STRING.
#[test]
fn a_raw_ecdh_peer_point_whose_x_begins_3f_04_is_accepted_as_the_specification_requires() {
    let w = world();
    for (nid, oid) in [
        (Nid::X9_62_PRIME256V1, OID_P256),
        (Nid::SECP256K1, OID_SECP256K1),
    ] {
        let group = EcGroup::from_curve_name(nid).unwrap();
        let d = random_scalar(&group, 32);
        let key = ec_private(&w.session, KeyType::EC, oid, &d.to_vec_padded(32).unwrap());
        let peer = point_reading_as_octet_string(nid);
        let expected = shared_x(nid, &d, &peer);
        let derive = |public: &[u8]| {
            w.ck.derive(
                w.s(),
                &RawMech::ecdh(CKD_NULL, public),
                key.handle(),
                &readable_secret(),
            )
            .map(|h| attribute_bytes(&w.session, handle(h), AttributeType::Value) == expected)
        };
        assert_eq!(
            derive(&der_octet_string(&peer)),
            Ok(true),
            "{oid}: the wrapped point (control)"
        );
        let raw = derive(&peer);
        assert_eq!(
            raw.map_err(|e| format!("{e:?}")),
            Ok(true),
            "{oid}: a valid raw peer point (x = 3f 04 ...) must give the shared secret"
        );
        w.still_serves("ECDH with a raw peer point");
    }
}

/// DEFECT (1), ECDSA: a P-256 public key object made with its point bare in
/// `CKA_EC_POINT` (the module accepts bare points: "some callers send it bare",
/// src/crypto/ec.rs) verifies none of its own signatures when x begins 3f 04: the key
/// is built from the 63 bytes after `04 3f`, and `C_Verify` answers
/// `CKR_SIGNATURE_INVALID` for a signature that OpenSSL and the same key wrapped in an
/// OCTET STRING accept. Expected: `CKR_OK` (PKCS#11 3.0 §5.15.2; FIPS 186-5 §6.4.2).
#[test]
fn a_bare_p256_public_key_whose_x_begins_3f_04_verifies_its_own_signatures() {
    let w = world();
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let mut ctx = BigNumContext::new().unwrap();
    let mut order = BigNum::new().unwrap();
    group.order(&mut order, &mut ctx).unwrap();
    // Walk d0, d0 + 1, ... until d·G has x = 3f 04 ...: one in 65,536.
    let d0 = random_scalar(&group, 32);
    let mut q = EcPoint::new(&group).unwrap();
    q.mul_generator2(&group, &d0, &mut ctx).unwrap();
    let mut steps = 0u32;
    let point = loop {
        let bare = q
            .to_bytes(&group, PointConversionForm::UNCOMPRESSED, &mut ctx)
            .unwrap();
        if reads_as_octet_string(&bare) {
            break bare;
        }
        let mut next = EcPoint::new(&group).unwrap();
        next.add(&group, &q, group.generator_opt().unwrap(), &mut ctx)
            .unwrap();
        q = next;
        steps += 1;
        assert!(steps < 1 << 23, "no key with x = 3f 04 ... found");
    };
    let mut d = BigNum::new().unwrap();
    d.mod_add(&d0, &BigNum::from_u32(steps).unwrap(), &order, &mut ctx)
        .unwrap();
    let private = ec_private(
        &w.session,
        KeyType::EC,
        OID_P256,
        &d.to_vec_padded(32).unwrap(),
    );
    let public = |ec_point: Vec<u8>| {
        w.session
            .create_object(&[
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::KeyType(KeyType::EC),
                Attribute::Token(false),
                Attribute::Verify(true),
                Attribute::EcParams(hex(OID_P256)),
                Attribute::EcPoint(ec_point),
            ])
            .expect("C_CreateObject(EC public key)")
    };
    let wrapped = public(der_octet_string(&point));
    let bare = public(point.clone());
    let hash = [0x5au8; 32];
    let sig =
        w.ck.sign(w.s(), &RawMech::none(CKM_ECDSA), private.handle(), &hash)
            .unwrap();
    // Control: OpenSSL and the wrapped key accept the signature.
    let key = openssl::ec::EcKey::from_public_key(
        &group,
        &EcPoint::from_bytes(&group, &point, &mut ctx).unwrap(),
    )
    .unwrap();
    let ecdsa = openssl::ecdsa::EcdsaSig::from_private_components(
        BigNum::from_slice(&sig[..32]).unwrap(),
        BigNum::from_slice(&sig[32..]).unwrap(),
    )
    .unwrap();
    assert!(ecdsa.verify(&hash, &key).unwrap(), "OpenSSL (control)");
    let verify = |k: ObjectHandle| {
        w.ck.verify(w.s(), &RawMech::none(CKM_ECDSA), k.handle(), &hash, &sig)
            .map_err(|e| format!("{e:?}"))
    };
    assert_eq!(verify(wrapped), Ok(()), "the wrapped key (control)");
    assert_eq!(
        verify(bare),
        Ok(()),
        "the same key with its point bare must verify the same signature"
    );
    w.still_serves("ECDSA verification with a bare point");
}

// ---------------------------------------------------------------------------------------
// SM2

fn sm2_g() -> Vec<u8> {
    hex(SM2_G)
}

/// G with y + 1 (its last byte changed): not a point of the curve.
fn sm2_off_curve() -> Vec<u8> {
    let mut p = sm2_g();
    p[64] ^= 0x01;
    p
}

/// Codes PKCS#11 3.0 lists for both `C_EncryptInit` (§5.13) and `C_VerifyInit` (§5.15)
/// that fit a key the operation cannot use.
const INIT_REFUSALS: [CK_RV; 3] = [
    CKR_KEY_TYPE_INCONSISTENT,
    CKR_KEY_SIZE_RANGE,
    CKR_KEY_FUNCTION_NOT_PERMITTED,
];

/// DEFECT (2): an SM2 public key whose `CKA_EC_POINT` is no point of sm2p256v1 (the
/// generator with y + 1; GB/T 32918.1 §6.2.2 requires the public key be checked) is
/// accepted by `C_CreateObject`; `C_EncryptInit` accepts it too, and `C_Encrypt` then
/// answers `CKR_ATTRIBUTE_VALUE_INVALID` (`sm2::public_key`, reached only in the
/// encryption), which PKCS#11 3.0 §5.13 does not list for `C_Encrypt`; `C_VerifyInit`
/// answers it as well, which §5.15 does not list for `C_VerifyInit`. Expected: the key
/// refused when made (`CKR_ATTRIBUTE_VALUE_INVALID`, §5.7, as the module refuses an
/// Ed25519 point of the wrong length), or at the latest by each operation's `Init`
/// with a code that function may return (`CKR_KEY_TYPE_INCONSISTENT`...).
#[test]
fn an_sm2_public_key_off_the_curve_is_refused_by_create_or_init_with_a_listed_code() {
    let w = world();
    let made = w.session.create_object(&[
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(sm2_type()),
        Attribute::Token(false),
        Attribute::Verify(true),
        Attribute::Encrypt(true),
        Attribute::EcParams(hex(OID_SM2)),
        Attribute::EcPoint(der_octet_string(&sm2_off_curve())),
    ]);
    let key = match made {
        Err(cryptoki::error::Error::Pkcs11(rv, _)) => {
            assert_eq!(
                format!("{rv:?}"),
                ck(CKR_ATTRIBUTE_VALUE_INVALID),
                "C_CreateObject"
            );
            return;
        }
        Err(e) => panic!("C_CreateObject: {e}"),
        Ok(key) => key,
    };
    let verify_init = answer(w.ck.verify_init(w.s(), &RawMech::none(CKM_SM2_SM3), key.handle()));
    let encrypt_init =
        answer(w.ck.encrypt_init(w.s(), &RawMech::none(CKM_SM2_ENCRYPT), key.handle()));
    let encrypt = if encrypt_init == ck(CKR_OK) {
        answer(w.ck.encrypt_call(w.s(), b"message", Some(1024)).rv)
    } else {
        "not called".into()
    };
    w.still_serves("an SM2 key off the curve");
    let refused = |rv: &String| INIT_REFUSALS.iter().any(|c| ck(*c) == *rv);
    assert!(
        refused(&verify_init) && refused(&encrypt_init),
        "an SM2 public key off the curve was made; C_VerifyInit answered {verify_init}, \
         C_EncryptInit {encrypt_init} and C_Encrypt {encrypt} (expected the Inits to \
         refuse it with CKR_KEY_TYPE_INCONSISTENT or another code they may return)"
    );
}

/// An SM2 key pair of the module's own making: (private, public, public point).
fn sm2_pair(w: &World) -> (ObjectHandle, ObjectHandle, Vec<u8>) {
    let (public, private) = w
        .session
        .generate_key_pair(
            &vendor_mech(CKM_SM2_KEY_PAIR_GEN),
            &[
                Attribute::Token(false),
                Attribute::Verify(true),
                Attribute::Encrypt(true),
                Attribute::EcParams(hex(OID_SM2)),
            ],
            &[
                Attribute::Token(false),
                Attribute::Sign(true),
                Attribute::Decrypt(true),
            ],
        )
        .unwrap();
    let point = point_of(&attribute_bytes(&w.session, public, AttributeType::EcPoint));
    (private, public, point)
}

/// PASSING (coverage, no defect): hostile SM2 ciphertexts (C1C3C2) through `C_Decrypt`: C1
/// compressed (02/03), hybrid (06), the point at infinity (00), all zero, off the curve,
/// x or y at or above p; C3 or C2 altered; nothing after C3; too short. Each is refused
/// with `CKR_ENCRYPTED_DATA_INVALID` or `CKR_ENCRYPTED_DATA_LEN_RANGE` (PKCS#11 3.0
/// §5.13; GB/T 32918.4 §7.1 B1, B5), and the module still serves other sessions.
#[test]
fn hostile_sm2_ciphertexts_are_refused_and_poison_nothing() {
    let w = world();
    let (private, public, _) = sm2_pair(&w);
    let good =
        w.ck.encrypt(
            w.s(),
            &RawMech::none(CKM_SM2_ENCRYPT),
            public.handle(),
            b"secret",
        )
        .unwrap();
    let with_c1 = |c1: &[u8]| [c1, &good[65..]].concat();
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    for prefix in [0x02u8, 0x03, 0x06, 0x07, 0x00] {
        let mut c = good.clone();
        c[0] = prefix;
        cases.push(("C1 prefix", c));
    }
    cases.push(("compressed C1", [&good[..33], &good[65..]].concat()));
    cases.push(("C1 zero", with_c1(&[&[4u8][..], &[0; 64]].concat())));
    cases.push(("C1 off the curve", with_c1(&sm2_off_curve())));
    cases.push(("C1 x = p", {
        let mut c1 = vec![4u8];
        c1.extend(hex(
            "fffffffeffffffffffffffffffffffffffffffff00000000ffffffffffffffff",
        ));
        c1.extend_from_slice(&good[33..65]);
        with_c1(&c1)
    }));
    cases.push(("C1 all ff", with_c1(&[0xff; 65])));
    cases.push(("C1 = G (wrong C3)", with_c1(&sm2_g())));
    for at in [65, 96, good.len() - 1] {
        let mut c = good.clone();
        c[at] ^= 0x80;
        cases.push(("byte altered", c));
    }
    for len in [0, 1, 65, 96, 97] {
        cases.push(("truncated", good[..len].to_vec()));
    }
    for (what, c) in &cases {
        let r =
            w.ck.decrypt(w.s(), &RawMech::none(CKM_SM2_ENCRYPT), private.handle(), c);
        let rv = answer(r);
        assert!(
            rv == ck(CKR_ENCRYPTED_DATA_INVALID) || rv == ck(CKR_ENCRYPTED_DATA_LEN_RANGE),
            "{what} ({} bytes): {rv}",
            c.len()
        );
        w.still_serves(what);
    }
    // Control: the untouched ciphertext decrypts.
    let plain =
        w.ck.decrypt(
            w.s(),
            &RawMech::none(CKM_SM2_ENCRYPT),
            private.handle(),
            &good,
        )
        .unwrap();
    assert_eq!(plain, b"secret");
}

/// PASSING (coverage, no defect): hostile SM2 signatures through `C_Verify`: r or s zero,
/// equal to n or all ones, r + s = n (t = 0, GB/T 32918.2 §7.1 B5), and wrong lengths;
/// and a distinguishing identifier of 8,192 bytes (ENTL overflows 16 bits). Each answers
/// `CKR_SIGNATURE_INVALID`, `CKR_SIGNATURE_LEN_RANGE` or (the identifier, at
/// `C_VerifyInit`) `CKR_MECHANISM_PARAM_INVALID`, and nothing is poisoned.
#[test]
fn hostile_sm2_signatures_and_identifiers_are_refused_and_poison_nothing() {
    let w = world();
    let (private, public, _) = sm2_pair(&w);
    let msg = b"message";
    let sig =
        w.ck.sign(w.s(), &RawMech::none(CKM_SM2_SM3), private.handle(), msg)
            .unwrap();
    let n = hex(SM2_N);
    let mut n_minus_1 = n.clone();
    n_minus_1[31] -= 1;
    let one = {
        let mut v = vec![0u8; 32];
        v[31] = 1;
        v
    };
    let rs = |r: &[u8], s: &[u8]| [r, s].concat();
    let bad = [
        rs(&[0; 32], &sig[32..]),
        rs(&sig[..32], &[0; 32]),
        rs(&n, &sig[32..]),
        rs(&sig[..32], &n),
        rs(&[0xff; 32], &[0xff; 32]),
        rs(&one, &n_minus_1),
        rs(&n_minus_1, &one),
    ];
    for b in &bad {
        let rv = answer(w.ck.verify(w.s(), &RawMech::none(CKM_SM2_SM3), public.handle(), msg, b));
        assert_eq!(rv, ck(CKR_SIGNATURE_INVALID));
        w.still_serves("a hostile SM2 signature");
    }
    for len in [0usize, 1, 63, 65, 128] {
        let rv = answer(w.ck.verify(
            w.s(),
            &RawMech::none(CKM_SM2_SM3),
            public.handle(),
            msg,
            &vec![1u8; len],
        ));
        assert_eq!(rv, ck(CKR_SIGNATURE_LEN_RANGE), "{len}");
    }
    let long_id = vec![0x31u8; 8192];
    let rv = answer(w.ck.verify_init(
        w.s(),
        &RawMech::bytes(CKM_SM2_SM3, &long_id),
        public.handle(),
    ));
    assert_eq!(rv, ck(CKR_MECHANISM_PARAM_INVALID));
    w.still_serves("an 8,192-byte SM2 identifier");
    // Control: the true signature verifies.
    w.ck.verify(
        w.s(),
        &RawMech::none(CKM_SM2_SM3),
        public.handle(),
        msg,
        &sig,
    )
    .unwrap();
}

// ---------------------------------------------------------------------------------------
// ECDH peers

/// PASSING (coverage, no defect): hostile ECDH peers on every NIST curve and secp256k1:
/// the point at infinity (a single 00, and 04 followed by zeros), a point off the curve
/// (the generator with y changed), x at or above p, the wrong length, an empty value,
/// and a DER OCTET STRING around garbage. Each is `CKR_MECHANISM_PARAM_INVALID`
/// (PKCS#11 3.0 §2.3.11; SP 800-56A §5.6.2.3.4 public key validation) and nothing is
/// poisoned.
#[test]
fn hostile_ecdh_peers_are_refused_on_every_curve_and_poison_nothing() {
    let w = world();
    for (nid, oid, len) in [
        (Nid::X9_62_PRIME256V1, OID_P256, 32usize),
        (Nid::SECP384R1, OID_P384, 48),
        (Nid::SECP521R1, OID_P521, 66),
        (Nid::SECP256K1, OID_SECP256K1, 32),
    ] {
        let group = EcGroup::from_curve_name(nid).unwrap();
        let mut ctx = BigNumContext::new().unwrap();
        let d = random_scalar(&group, len);
        let key = ec_private(
            &w.session,
            KeyType::EC,
            oid,
            &d.to_vec_padded(len as i32).unwrap(),
        );
        let g = group
            .generator_opt()
            .unwrap()
            .to_bytes(&group, PointConversionForm::UNCOMPRESSED, &mut ctx)
            .unwrap();
        let mut off = g.clone();
        *off.last_mut().unwrap() ^= 1;
        let mut p = BigNum::new().unwrap();
        let (mut a, mut b) = (BigNum::new().unwrap(), BigNum::new().unwrap());
        group
            .components_gfp(&mut p, &mut a, &mut b, &mut ctx)
            .unwrap();
        let x_is_p = [
            &[4u8][..],
            &p.to_vec_padded(len as i32).unwrap(),
            &g[1 + len..],
        ]
        .concat();
        let peers: Vec<(&str, Vec<u8>)> = vec![
            ("infinity", vec![0]),
            ("zeros", [&[4u8][..], &vec![0; 2 * len]].concat()),
            ("off the curve", off.clone()),
            ("off the curve, wrapped", der_octet_string(&off)),
            ("x = p", x_is_p),
            ("short", g[..g.len() - 1].to_vec()),
            ("long", [&g[..], &[0]].concat()),
            ("empty", Vec::new()),
            ("wrapped garbage", der_octet_string(&[4, 1, 2, 3])),
        ];
        for (what, peer) in &peers {
            let rv = answer(w.ck.derive(
                w.s(),
                &RawMech::ecdh(CKD_NULL, peer),
                key.handle(),
                &readable_secret(),
            ));
            assert_eq!(rv, ck(CKR_MECHANISM_PARAM_INVALID), "{oid} {what}");
            w.still_serves(what);
        }
        // Control: the generator is a valid peer: the secret is x(d·G).
        let h =
            w.ck.derive(
                w.s(),
                &RawMech::ecdh(CKD_NULL, &der_octet_string(&g)),
                key.handle(),
                &readable_secret(),
            )
            .unwrap();
        let mut dg = EcPoint::new(&group).unwrap();
        dg.mul_generator2(&group, &d, &mut ctx).unwrap();
        let (mut x, mut y) = (BigNum::new().unwrap(), BigNum::new().unwrap());
        dg.affine_coordinates(&group, &mut x, &mut y, &mut ctx)
            .unwrap();
        assert_eq!(
            attribute_bytes(&w.session, handle(h), AttributeType::Value),
            x.to_vec_padded(len as i32).unwrap(),
            "{oid}: the generator as peer (control)"
        );
    }
}

// ---------------------------------------------------------------------------------------
// RSA-PSS salt lengths

/// DEFECT (3): `CKM_RSA_PKCS_PSS` (and the `CKM_SHA*_RSA_PKCS_PSS` family) with a salt
/// the key's modulus cannot hold — a 2048-bit key, SHA-256, sLen = 223, where RFC 8017
/// §9.1.1 step 3 needs emLen ≥ hLen + sLen + 2 = 257 > 256 — passes `C_SignInit`
/// (`pss_params` bounds the salt by 16,384-bit moduli only) and `C_Sign` answers
/// `CKR_MECHANISM_PARAM_INVALID`, which PKCS#11 3.0 §5.14 does not list for `C_Sign`.
/// The key is known at `C_SignInit`: expected `CKR_MECHANISM_PARAM_INVALID` there (§5.14
/// lists it for `C_SignInit`), and a salt of 222 bytes, the longest that fits, signs.
#[test]
fn a_pss_salt_too_long_for_the_key_is_refused_at_sign_init() {
    let w = world();
    let (public, private) = w
        .session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::Verify(true),
                Attribute::ModulusBits(2048.into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
            ],
            &[Attribute::Token(false), Attribute::Sign(true)],
        )
        .unwrap();
    let hash = [7u8; 32];
    let fits = RawMech::pss(CKM_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA256, 222);
    let sig = w.ck.sign(w.s(), &fits, private.handle(), &hash).unwrap();
    w.ck.verify(w.s(), &fits, public.handle(), &hash, &sig)
        .unwrap();
    let too_long = RawMech::pss(CKM_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA256, 223);
    let init = answer(w.ck.sign_init(w.s(), &too_long, private.handle()));
    let sign = if init == ck(CKR_OK) {
        answer(w.ck.sign_call(w.s(), &hash, Some(256)).rv)
    } else {
        "not called".into()
    };
    w.still_serves("a PSS salt too long");
    assert_eq!(
        init,
        ck(CKR_MECHANISM_PARAM_INVALID),
        "C_SignInit answered {init}, then C_Sign {sign}"
    );
}

// ---------------------------------------------------------------------------------------
// Montgomery and Edwards curves

/// PASSING (coverage, no defect): X25519 peers of small order (RFC 7748 §6.1; the
/// all-zero secret), bare and wrapped, and of wrong lengths, are
/// `CKR_MECHANISM_PARAM_INVALID`; an Ed25519 context of 256 bytes, an Ed25519ctx with an
/// empty context given as `phFlag` false is pure Ed25519 (valid), and a signature of 63
/// or 65 bytes is `CKR_SIGNATURE_LEN_RANGE`; nothing is poisoned.
#[test]
fn x25519_low_order_peers_and_hostile_eddsa_parameters_are_refused() {
    let w = world();
    let (_, x_private) = w
        .session
        .generate_key_pair(
            &Mechanism::EccMontgomeryKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::EcParams(hex(OID_X25519)),
            ],
            &[Attribute::Token(false), Attribute::Derive(true)],
        )
        .unwrap();
    let mut order_eight = hex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800");
    let mut peers = vec![vec![0u8; 32], {
        let mut one = vec![0u8; 32];
        one[0] = 1;
        one
    }];
    peers.push(order_eight.clone());
    order_eight[31] |= 0x80; // the unused top bit set: the same point (RFC 7748 §5)
    peers.push(order_eight);
    for peer in peers.clone() {
        peers.push(der_octet_string(&peer));
    }
    peers.push(vec![9u8; 31]);
    peers.push(vec![9u8; 33]);
    for peer in &peers {
        let rv = answer(w.ck.derive(
            w.s(),
            &RawMech::ecdh(CKD_NULL, peer),
            x_private.handle(),
            &readable_secret(),
        ));
        assert_eq!(rv, ck(CKR_MECHANISM_PARAM_INVALID));
        w.still_serves("an X25519 low-order peer");
    }

    let (e_public, e_private) = w
        .session
        .generate_key_pair(
            &Mechanism::EccEdwardsKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::Verify(true),
                Attribute::EcParams(hex(OID_ED25519)),
            ],
            &[Attribute::Token(false), Attribute::Sign(true)],
        )
        .unwrap();
    for prehash in [false, true] {
        let rv = answer(w.ck.sign_init(
            w.s(),
            &RawMech::eddsa(prehash, &[0x61; 256]),
            e_private.handle(),
        ));
        assert_eq!(rv, ck(CKR_MECHANISM_PARAM_INVALID));
    }
    let sig =
        w.ck.sign(w.s(), &RawMech::eddsa(false, &[]), e_private.handle(), b"m")
            .unwrap();
    w.ck.verify(
        w.s(),
        &RawMech::none(CKM_EDDSA),
        e_public.handle(),
        b"m",
        &sig,
    )
    .unwrap();
    for len in [63usize, 65] {
        let rv = answer(w.ck.verify(
            w.s(),
            &RawMech::none(CKM_EDDSA),
            e_public.handle(),
            b"m",
            &vec![0u8; len],
        ));
        assert_eq!(rv, ck(CKR_SIGNATURE_LEN_RANGE));
    }
    // S = L (the group order): non-canonical, refused (RFC 8032 §5.1.7).
    let mut non_canonical = sig[..32].to_vec();
    non_canonical.extend(hex(
        "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010",
    ));
    let rv = answer(w.ck.verify(
        w.s(),
        &RawMech::none(CKM_EDDSA),
        e_public.handle(),
        b"m",
        &non_canonical,
    ));
    assert_eq!(rv, ck(CKR_SIGNATURE_INVALID));
    w.still_serves("hostile EdDSA inputs");
}
