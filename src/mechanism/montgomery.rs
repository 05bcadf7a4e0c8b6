//! X25519 (PKCS#11 3.0 §2.3.7): `CKM_EC_MONTGOMERY_KEY_PAIR_GEN`, and the X25519 half of
//! `CKM_ECDH1_DERIVE` (`ec::Ecdh1` hands `CKK_EC_MONTGOMERY` base keys here). The other
//! party's public key is its 32 bytes (a DER OCTET STRING of them is accepted too), the
//! KDF `CKD_NULL` only, and the result the RFC 7748 shared secret (or its leftmost bytes).
//! X448 is refused (aws-lc-rs lacks it). This module must not touch sessions or the store.

use cryptoki_sys::*;
use zeroize::Zeroizing;

use super::params::Ecdh1Params;
use super::{info, no_param, GeneratedPair, KeyRequest, Mechanism, Param};
use crate::crypto::curve25519::{self, Curve25519, X25519Private};
use crate::error::{Error, Result};
use crate::object::key::{Key, Material};

/// X25519's key size as PKCS#11 counts it.
pub const BITS: u64 = 255;

#[derive(Debug)]
pub struct KeyPairGen;

pub static MECHANISMS: &[&dyn Mechanism] = &[&KeyPairGen];

impl Mechanism for KeyPairGen {
    fn kind(&self) -> CK_MECHANISM_TYPE {
        CKM_EC_MONTGOMERY_KEY_PAIR_GEN
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(BITS, BITS, CKF_GENERATE_KEY_PAIR | CKF_EC_NAMEDCURVE)
    }
    fn generate_key_pair(
        &self,
        param: &Param,
        req: &KeyRequest,
    ) -> Result<(CK_KEY_TYPE, GeneratedPair)> {
        no_param(param)?;
        let params = req.ec_params.as_deref().ok_or(Error::TemplateIncomplete)?;
        if Curve25519::from_params(params)? != Curve25519::Montgomery {
            return Err(Error::CurveNotSupported);
        }
        let (scalar, point) = X25519Private::generate()?;
        Ok((
            CKK_EC_MONTGOMERY,
            super::eddsa::curve25519_pair(params, &point, &scalar[..]),
        ))
    }
}

/// Whether `base` is an X25519 private key (for `ec::Ecdh1` to hand it over).
pub fn is_x25519(base: &Key) -> bool {
    matches!(base.material, Material::X25519Private(_))
}

/// `CKM_ECDH1_DERIVE` with an X25519 base key.
pub fn derive(p: &Ecdh1Params, base: &Key, len: Option<usize>) -> Result<Zeroizing<Vec<u8>>> {
    let Material::X25519Private(key) = &base.material else {
        return Err(Error::KeyTypeInconsistent);
    };
    if p.kdf != CKD_NULL || !p.shared_data.is_empty() {
        return Err(Error::MechanismParamInvalid);
    }
    let peer = curve25519::public_from_attribute(&p.public_data)
        .map_err(|_| Error::MechanismParamInvalid)?;
    let z = key.agree(&peer)?;
    match len {
        None => Ok(z),
        // Without a KDF the leftmost bytes are used (§6.3.14, truncation).
        Some(n) if n <= z.len() => Ok(Zeroizing::new(z[..n].to_vec())),
        Some(_) => Err(Error::TemplateInconsistent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::attr::Value;

    fn key(scalar: &[u8]) -> Key {
        Key {
            class: CKO_PRIVATE_KEY,
            key_type: CKK_EC_MONTGOMERY,
            material: Material::X25519Private(X25519Private::from_scalar(scalar).unwrap()),
        }
    }

    fn params(kdf: CK_EC_KDF_TYPE, public: &[u8]) -> Ecdh1Params {
        Ecdh1Params {
            kdf,
            shared_data: Vec::new(),
            public_data: public.to_vec(),
        }
    }

    #[test]
    fn generated_pairs_agree_bare_or_der_and_truncate() {
        let req = KeyRequest {
            ec_params: Some(curve25519::OID_X25519.to_vec()),
            ..KeyRequest::default()
        };
        let gen = || {
            let (kt, (public, private)) = KeyPairGen.generate_key_pair(&Param::None, &req).unwrap();
            assert_eq!(kt, CKK_EC_MONTGOMERY);
            let get = |attrs: &[(u64, Value)], ty: CK_ATTRIBUTE_TYPE| {
                attrs
                    .iter()
                    .find(|(t, _)| *t == ty as u64)
                    .and_then(|(_, v)| v.as_bytes())
                    .unwrap()
                    .to_vec()
            };
            (get(&public, CKA_EC_POINT), key(&get(&private, CKA_VALUE)))
        };
        let ((pa, a), (pb, b)) = (gen(), gen());
        let za = derive(&params(CKD_NULL, &pb), &a, None).unwrap();
        let zb = derive(&params(CKD_NULL, &pa[2..]), &b, None).unwrap();
        assert_eq!(za, zb);
        assert_eq!(za.len(), 32);
        let short = derive(&params(CKD_NULL, &pa), &b, Some(16)).unwrap();
        assert_eq!(short[..], zb[..16]);
        assert!(matches!(
            derive(&params(CKD_NULL, &pa), &b, Some(33)),
            Err(Error::TemplateInconsistent)
        ));
    }

    #[test]
    fn kdfs_bad_peers_and_other_curves_are_refused() {
        let a = key(&[7u8; 32]);
        let peer = [9u8; 32];
        assert!(matches!(
            derive(&params(CKD_SHA256_KDF, &peer), &a, None),
            Err(Error::MechanismParamInvalid)
        ));
        for bad in [&[9u8; 31][..], &[9u8; 33], &[], &[0u8; 32]] {
            assert!(matches!(
                derive(&params(CKD_NULL, bad), &a, None),
                Err(Error::MechanismParamInvalid)
            ));
        }
        let req = KeyRequest {
            ec_params: Some(curve25519::NAME_EDWARDS25519.to_vec()),
            ..KeyRequest::default()
        };
        assert!(matches!(
            KeyPairGen.generate_key_pair(&Param::None, &req),
            Err(Error::CurveNotSupported)
        ));
    }
}
