//! HKDF (RFC 5869; PKCS#11 3.0 Current Mechanisms §2.62): `CKM_HKDF_DERIVE` (a secret
//! key) and `CKM_HKDF_DATA` (a data object) with `CK_HKDF_PARAMS` (extract, expand or
//! both; salt none, given, or another key's value), and `CKM_HKDF_KEY_GEN` for `CKK_HKDF`
//! keys. HMAC is aws-lc-rs's.
//!
//! The base key is a `CKK_HKDF` or `CKK_GENERIC_SECRET` key of any length (RFC 5869 takes
//! any input keying material). A salt key reaches this module only after the token
//! authorised it as it does the base key. This module must not touch sessions or the
//! store.

use crate::ck::*;
use aws_lc_rs::hmac;
use zeroize::Zeroizing;

use super::params::{HkdfParams, HkdfSalt};
use super::{info, no_param, DeriveInput, Generated, KeyRequest, Mechanism, Param};
use crate::crypto::hash::HashAlg;
use crate::crypto::rand::random_fill;
use crate::error::{Error, Result};
use crate::object::attr::Value;
use crate::object::key::Key;

/// Largest `CKK_HKDF` key `CKM_HKDF_KEY_GEN` makes, in bytes.
const MAX_KEY_LEN: u64 = 512;

/// `CKM_HKDF_DERIVE` or `CKM_HKDF_DATA`: the same derivation, a key or a data object.
#[derive(Debug)]
pub(super) struct Derive {
    kind: MechType,
}

#[derive(Debug)]
pub(super) struct KeyGen;

pub(super) static MECHANISMS: &[&dyn Mechanism] = &[
    &Derive {
        kind: CKM_HKDF_DERIVE,
    },
    &Derive {
        kind: CKM_HKDF_DATA,
    },
    &KeyGen,
];

fn algorithm(hash: HashAlg) -> hmac::Algorithm {
    match hash {
        HashAlg::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        HashAlg::Sha224 => hmac::HMAC_SHA224,
        HashAlg::Sha256 => hmac::HMAC_SHA256,
        HashAlg::Sha384 => hmac::HMAC_SHA384,
        HashAlg::Sha512 => hmac::HMAC_SHA512,
    }
}

/// RFC 5869 §2.2: PRK = HMAC-Hash(salt, IKM), an empty salt being HashLen zeros.
fn extract(hash: HashAlg, salt: &[u8], ikm: &[u8]) -> Zeroizing<Vec<u8>> {
    let zeros = vec![0u8; hash.output_len()];
    let salt = if salt.is_empty() { &zeros[..] } else { salt };
    let key = hmac::Key::new(algorithm(hash), salt);
    Zeroizing::new(hmac::sign(&key, ikm).as_ref().to_vec())
}

/// RFC 5869 §2.3: T(i) = HMAC-Hash(PRK, T(i-1) | info | i), the first `len` bytes.
fn expand(hash: HashAlg, prk: &[u8], info: &[u8], len: usize) -> Result<Zeroizing<Vec<u8>>> {
    let h = hash.output_len();
    if len == 0 || len > 255 * h {
        return Err(Error::TemplateInconsistent);
    }
    let key = hmac::Key::new(algorithm(hash), prk);
    let mut okm = Zeroizing::new(Vec::with_capacity(len.div_ceil(h) * h));
    let mut t = Zeroizing::new(Vec::new());
    let mut i = 1u8;
    while okm.len() < len {
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(&t);
        ctx.update(info);
        ctx.update(&[i]);
        t = Zeroizing::new(ctx.sign().as_ref().to_vec());
        okm.extend_from_slice(&t);
        i = i.wrapping_add(1);
    }
    okm.truncate(len);
    Ok(okm)
}

/// The whole HKDF of `p` over `ikm`; `salt_key` is the value of the salt key, if any.
fn hkdf(
    p: &HkdfParams,
    ikm: &[u8],
    salt_key: Option<&[u8]>,
    len: Option<usize>,
) -> Result<Zeroizing<Vec<u8>>> {
    let hash = super::digest::hash_of(p.hash).ok_or(Error::MechanismParamInvalid)?;
    if !p.extract && !p.expand {
        return Err(Error::MechanismParamInvalid);
    }
    let prk = if p.extract {
        let salt = match (&p.salt, salt_key) {
            (HkdfSalt::Null, None) => &[][..],
            (HkdfSalt::Data(d), None) => &d[..],
            (HkdfSalt::Key(_), Some(k)) if !k.is_empty() => k,
            _ => return Err(Error::MechanismParamInvalid),
        };
        extract(hash, salt, ikm)
    } else {
        Zeroizing::new(ikm.to_vec())
    };
    if p.expand {
        // Without CKA_VALUE_LEN, one hash length (§2.62.3 lets the mechanism choose).
        return expand(hash, &prk, &p.info, len.unwrap_or(hash.output_len()));
    }
    match len {
        None => Ok(prk),
        Some(n) if n > 0 && n <= prk.len() => Ok(Zeroizing::new(prk[..n].to_vec())),
        Some(_) => Err(Error::TemplateInconsistent),
    }
}

impl Mechanism for Derive {
    fn kind(&self) -> MechType {
        self.kind
    }
    fn derive_class(&self) -> ObjectClass {
        if self.kind == CKM_HKDF_DATA {
            CKO_DATA
        } else {
            CKO_SECRET_KEY
        }
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(1, MAX_KEY_LEN, CKF_DERIVE)
    }
    fn derive_keys(
        &self,
        param: &Param,
        base: &Key,
        input: &DeriveInput,
    ) -> Result<Vec<Zeroizing<Vec<u8>>>> {
        let Param::Hkdf(p) = param else {
            return Err(Error::MechanismParamInvalid);
        };
        let [len] = input.lens.as_slice() else {
            return Err(Error::MechanismParamInvalid);
        };
        if !matches!(base.key_type, CKK_HKDF | CKK_GENERIC_SECRET) {
            return Err(Error::KeyTypeInconsistent);
        }
        let ikm = base.secret()?;
        if ikm.is_empty() {
            return Err(Error::KeySizeRange);
        }
        let salt_key = match input.other {
            Some(k) => Some(k.secret()?),
            None => None,
        };
        Ok(vec![hkdf(p, ikm, salt_key, *len)?])
    }
}

impl Mechanism for KeyGen {
    fn kind(&self) -> MechType {
        CKM_HKDF_KEY_GEN
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(1, MAX_KEY_LEN, CKF_GENERATE)
    }
    fn generate_key(&self, param: &Param, req: &KeyRequest) -> Result<(KeyType, Generated)> {
        no_param(param)?;
        let len = req.value_len.ok_or(Error::TemplateIncomplete)?;
        if !(1..=MAX_KEY_LEN).contains(&len) {
            return Err(Error::AttributeValueInvalid);
        }
        let mut value = vec![0u8; usize::try_from(len).map_err(|_| Error::AttributeValueInvalid)?];
        random_fill(&mut value)?;
        Ok((CKK_HKDF, vec![(CKA_VALUE, Value::Bytes(value))]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ObjectHandle;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn params(hash: MechType, salt: &str, info: &str) -> HkdfParams {
        HkdfParams {
            extract: true,
            expand: true,
            hash,
            salt: if salt.is_empty() {
                HkdfSalt::Null
            } else {
                HkdfSalt::Data(unhex(salt))
            },
            info: unhex(info),
        }
    }

    // RFC 5869 Appendix A, test cases 1, 3, 4 and 7 (PRK and OKM).
    #[test]
    fn rfc_5869_appendix_a() {
        struct Case {
            hash: MechType,
            ikm: &'static str,
            salt: &'static str,
            info: &'static str,
            prk: &'static str,
            okm: &'static str,
        }
        let cases = [
            Case {
                hash: CKM_SHA256,
                ikm: "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
                salt: "000102030405060708090a0b0c",
                info: "f0f1f2f3f4f5f6f7f8f9",
                prk: "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
                okm: "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
            },
            Case {
                hash: CKM_SHA256,
                ikm: "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
                salt: "",
                info: "",
                prk: "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
                okm: "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
            },
            Case {
                hash: CKM_SHA_1,
                ikm: "0b0b0b0b0b0b0b0b0b0b0b",
                salt: "000102030405060708090a0b0c",
                info: "f0f1f2f3f4f5f6f7f8f9",
                prk: "9b6c18c432a7bf8f0e71c8eb88f4b30baa2ba243",
                okm: "085a01ea1b10f36933068b56efa5ad81a4f14b822f5b091568a9cdd4f155fda2c22e422478d305f3f896",
            },
            Case {
                hash: CKM_SHA_1,
                ikm: "0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c",
                salt: "",
                info: "",
                prk: "2adccada18779e7c2077ad2eb19d3f3e731385dd",
                okm: "2c91117204d745f3500d636a62f64f0ab3bae548aa53d423b0d1f27ebba6f5e5673a081d70cce7acfc48",
            },
        ];
        for c in cases {
            let okm = unhex(c.okm);
            let both = params(c.hash, c.salt, c.info);
            let ikm = unhex(c.ikm);
            assert_eq!(
                hkdf(&both, &ikm, None, Some(okm.len())).unwrap()[..],
                okm[..]
            );
            let extract_only = HkdfParams {
                expand: false,
                ..both.clone()
            };
            assert_eq!(
                hkdf(&extract_only, &ikm, None, None).unwrap()[..],
                unhex(c.prk)[..]
            );
            let expand_only = HkdfParams {
                extract: false,
                ..both.clone()
            };
            let prk = unhex(c.prk);
            assert_eq!(
                hkdf(&expand_only, &prk, None, Some(okm.len())).unwrap()[..],
                okm[..]
            );
            // The salt as a key's value gives the same.
            if !c.salt.is_empty() {
                let keyed = HkdfParams {
                    salt: HkdfSalt::Key(ObjectHandle::new(9)),
                    ..both.clone()
                };
                let salt = unhex(c.salt);
                assert_eq!(
                    hkdf(&keyed, &ikm, Some(&salt), Some(okm.len())).unwrap()[..],
                    okm[..]
                );
            }
        }
    }

    #[test]
    fn bad_parameters_are_refused() {
        let mut p = params(CKM_SHA256, "", "");
        p.extract = false;
        p.expand = false;
        assert!(matches!(
            hkdf(&p, &[1], None, None),
            Err(Error::MechanismParamInvalid)
        ));
        let p = params(CKM_SHA256_HMAC, "", "");
        assert!(matches!(
            hkdf(&p, &[1], None, None),
            Err(Error::MechanismParamInvalid)
        ));
        let p = params(CKM_SHA256, "", "");
        assert!(matches!(
            hkdf(&p, &[1], None, Some(255 * 32 + 1)),
            Err(Error::TemplateInconsistent)
        ));
        assert_eq!(
            hkdf(&p, &[1], None, Some(255 * 32)).unwrap().len(),
            255 * 32
        );
        // A salt key named but not resolved, or resolved but not named.
        let keyed = HkdfParams {
            salt: HkdfSalt::Key(ObjectHandle::new(3)),
            ..p.clone()
        };
        assert!(matches!(
            hkdf(&keyed, &[1], None, None),
            Err(Error::MechanismParamInvalid)
        ));
        assert!(matches!(
            hkdf(&p, &[1], Some(&[1]), None),
            Err(Error::MechanismParamInvalid)
        ));
    }
}
