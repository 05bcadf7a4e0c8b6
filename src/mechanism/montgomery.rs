//! X25519 and X448 (PKCS#11 3.0 §2.3.7): `CKM_EC_MONTGOMERY_KEY_PAIR_GEN`, and the
//! Montgomery half of `CKM_ECDH1_DERIVE` (`ec::Ecdh1` hands `CKK_EC_MONTGOMERY` base keys
//! here). The other party's public key is its 32 bytes (56 for X448; a DER OCTET STRING
//! of them is accepted too), the KDF `CKD_NULL` (the RFC 7748 shared secret, or its
//! leftmost bytes) or one of the hash KDFs `ecdh_kdf::apply_kdf` does (X9.63, SP
//! 800-56A). X25519 through aws-lc-rs; X448 from the system's libcrypto.so.3
//! (`crypto::curve448`), `CKR_CURVE_NOT_SUPPORTED` without it. This module must not touch
//! sessions or the store.

use crate::ck::*;
use zeroize::Zeroizing;

use super::params::Ecdh1Params;
use super::{info, no_param, GeneratedPair, KeyRequest, Mechanism, Param};
use crate::crypto::curve25519::{self, Curve25519, X25519Private};
use crate::crypto::curve448::{self, X448Private};
use crate::error::{Error, Result};
use crate::object::key::{Key, Material};

/// X25519's key size as PKCS#11 counts it.
pub(super) const BITS: u64 = 255;

#[derive(Debug)]
pub(super) struct KeyPairGen;

pub(super) static MECHANISMS: &[&dyn Mechanism] = &[&KeyPairGen];

impl Mechanism for KeyPairGen {
    fn kind(&self) -> MechType {
        CKM_EC_MONTGOMERY_KEY_PAIR_GEN
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        // 448 while libcrypto.so.3 gives X448.
        let max = if curve448::available() {
            curve448::BITS
        } else {
            BITS
        };
        info(BITS, max, CKF_GENERATE_KEY_PAIR | CKF_EC_NAMEDCURVE)
    }
    fn generate_key_pair(
        &self,
        param: &Param,
        req: &KeyRequest,
    ) -> Result<(KeyType, GeneratedPair)> {
        no_param(param)?;
        let params = req.ec_params.as_deref().ok_or(Error::TemplateIncomplete)?;
        if curve448::is_x448_params(params) {
            let (scalar, point) = X448Private::generate()?;
            return Ok((
                CKK_EC_MONTGOMERY,
                super::eddsa::curve_pair(
                    params,
                    curve448::public_to_attribute(&point),
                    &scalar[..],
                ),
            ));
        }
        if Curve25519::from_params(params)? != Curve25519::Montgomery {
            return Err(Error::CurveNotSupported);
        }
        let (scalar, point) = X25519Private::generate()?;
        Ok((
            CKK_EC_MONTGOMERY,
            super::eddsa::curve_pair(params, curve25519::public_to_attribute(&point), &scalar[..]),
        ))
    }
}

/// Whether `base` is an X25519 or X448 private key (for `ec::Ecdh1` to hand it over).
pub(super) fn is_montgomery(base: &Key) -> bool {
    matches!(
        base.material,
        Material::X25519Private(_) | Material::X448Private(_)
    )
}

/// `CKM_ECDH1_DERIVE` with an X25519 or X448 base key.
pub(super) fn derive(
    p: &Ecdh1Params,
    base: &Key,
    len: Option<usize>,
) -> Result<Zeroizing<Vec<u8>>> {
    let secret = match &base.material {
        Material::X25519Private(key) => {
            let peer = curve25519::public_from_attribute(&p.public_data)
                .map_err(|_| Error::MechanismParamInvalid)?;
            key.agree(&peer)?
        }
        Material::X448Private(key) => {
            let peer =
                curve448::public_from_attribute::<{ curve448::X448_KEY_LEN }>(&p.public_data)
                    .map_err(|_| Error::MechanismParamInvalid)?;
            key.agree(&peer)?
        }
        _ => return Err(Error::KeyTypeInconsistent),
    };
    super::ecdh_kdf::apply_kdf(p, secret, len)
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
            prepared: Default::default(),
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
            let get = |attrs: &[(AttrType, Value)], ty: AttrType| {
                attrs
                    .iter()
                    .find(|(t, _)| *t == ty)
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

    /// `CKD_SHA256_KDF_SP800` (SP 800-56A concatenation KDF, `H(1 || Z || OtherInfo)`):
    /// the vector of the `cryptoki` crate 0.12.1's `derive_key_sp800` test, an OpenPGP
    /// ECDH (RFC 6637 §7) parameter block for Curve25519 as OtherInfo.
    #[test]
    fn sp800_56a_kdf_over_x25519() {
        let unhex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let a = key(&unhex(
            "F00670C5F139E7E6C2511EA04FF507AFBBE237CE3C71A89CA59A1C5CF8856562",
        ));
        let p = Ecdh1Params {
            kdf: CKD_SHA256_KDF_SP800,
            shared_data: unhex("0A2B0601040197550105011203010807416E6F6E796D6F75732053656E646572202020205633A4C5AE4305BC0FE2ABB699A8EE54632790A0"),
            public_data: unhex("533B3F09E53B3DEED661A13F7A7D9694AB71CE156C728E00DEE87A1EE3A14C4A"),
        };
        let out = derive(&p, &a, Some(16)).unwrap();
        assert_eq!(out[..], unhex("AF8CE51D0139A6D60831A9BABAB20186")[..]);
    }

    #[test]
    fn kdfs_bad_peers_and_other_curves_are_refused() {
        let a = key(&[7u8; 32]);
        assert!(matches!(
            derive(&params(CKD_SHA3_256_KDF, &[9u8; 32]), &a, None),
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
