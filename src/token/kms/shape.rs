//! The PKCS#11 shape of the key model, in one place: for each key spec, the class and
//! key type of its main object, the mechanism that generates it and the `CKA_EC_PARAMS`
//! of its curve; for each wrapping algorithm, the mechanism `C_UnwrapKey` must use, the
//! OAEP hash it must name, and the wrapping key's type and generation mechanism. The
//! token and the `kmshsm` command line both read these; sizes, usages and which
//! algorithm fits which spec are the key model's own table (`kms::spec`).
//!
//! It must not decide anything about a key's life: it only says what a spec looks like
//! as PKCS#11 objects.

use crate::ck::*;

use crate::crypto::ec::Curve;
use crate::crypto::rsa::bit_len;
use crate::crypto::sm;
use crate::ids::{KeyType, MechType, ObjectClass};
use crate::kms::import::{WrappingAlgorithm, WrappingKeySpec};
use crate::kms::key::KeySpec;
use crate::kms::spec::{SpecMaterial, ROWS};
use crate::mechanism::sm as sm_mech;
use crate::object::key::{CKK_SM2, CKK_SM4};
use crate::object::Object;
use crate::vendor;

/// A key spec as PKCS#11 objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecShape {
    /// The class of the key's main object: secret, or private (with a public object).
    pub class: ObjectClass,
    pub key_type: KeyType,
    /// `C_GenerateKey` or `C_GenerateKeyPair` mechanism of a key of the spec.
    pub generation: MechType,
    /// The DER OID `CKA_EC_PARAMS` names for an elliptic-curve spec.
    pub ec_params: Option<&'static [u8]>,
}

/// The PKCS#11 shape of `spec`.
pub fn shape_of(spec: KeySpec) -> SpecShape {
    let (class, key_type, generation, ec_params) = match spec.row().material {
        SpecMaterial::Aes { .. } => (CKO_SECRET_KEY, CKK_AES, CKM_AES_KEY_GEN, None),
        SpecMaterial::Sm4 { .. } => (CKO_SECRET_KEY, CKK_SM4, sm_mech::CKM_SM4_KEY_GEN, None),
        SpecMaterial::Rsa { .. } => (CKO_PRIVATE_KEY, CKK_RSA, CKM_RSA_PKCS_KEY_PAIR_GEN, None),
        SpecMaterial::Ec(curve) => (
            CKO_PRIVATE_KEY,
            CKK_EC,
            CKM_EC_KEY_PAIR_GEN,
            Some(curve.oid()),
        ),
        SpecMaterial::Sm2 => (
            CKO_PRIVATE_KEY,
            CKK_SM2,
            sm_mech::CKM_SM2_KEY_PAIR_GEN,
            Some(sm::OID_SM2),
        ),
    };
    SpecShape {
        class,
        key_type,
        generation,
        ec_params,
    }
}

/// Whether an object of `class` and `key_type` can be a key of `spec` (its main object,
/// or for a key pair its public object).
pub fn fits(spec: KeySpec, class: ObjectClass, key_type: KeyType) -> bool {
    let shape = shape_of(spec);
    let class_fits =
        class == shape.class || (shape.class == CKO_PRIVATE_KEY && class == CKO_PUBLIC_KEY);
    class_fits && key_type == shape.key_type
}

/// The key spec an object's class, key type and size amount to, if any.
pub fn spec_of(object: &Object) -> Option<KeySpec> {
    let key_type = object.key_type?;
    ROWS.iter()
        .filter(|row| fits(row.spec, object.class, key_type))
        .find(|row| match row.material {
            SpecMaterial::Aes { len } => object.ulong(CKA_VALUE_LEN) == Some(len as u64),
            SpecMaterial::Sm4 { .. } | SpecMaterial::Sm2 => true,
            SpecMaterial::Rsa { bits } => object
                .bytes(CKA_MODULUS)
                .is_some_and(|n| bit_len(n) == bits),
            SpecMaterial::Ec(curve) => {
                object
                    .bytes(CKA_EC_PARAMS)
                    .and_then(|p| Curve::from_oid(p).ok())
                    == Some(curve)
            }
        })
        .map(|row| row.spec)
}

/// The mechanism `C_UnwrapKey` must use for a wrapping algorithm.
pub fn unwrap_mechanism(alg: WrappingAlgorithm) -> MechType {
    use WrappingAlgorithm::*;
    match alg {
        RsaesPkcs1V15 => CKM_RSA_PKCS,
        RsaesOaepSha1 | RsaesOaepSha256 => CKM_RSA_PKCS_OAEP,
        RsaAesKeyWrapSha1 | RsaAesKeyWrapSha256 => CKM_RSA_AES_KEY_WRAP,
        RsaesOaepSha256Aes256EcbPkcs7Pad => {
            vendor::CKM_KMSHSM_RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD
        }
        Sm2Pke => sm_mech::CKM_SM2_ENCRYPT,
        Sm2PkeSm4Ecb => vendor::CKM_KMSHSM_SM2PKE_SM4_ECB,
    }
}

/// The hash an OAEP-based algorithm must name in its parameters.
pub fn oaep_hash(alg: WrappingAlgorithm) -> Option<MechType> {
    use WrappingAlgorithm::*;
    match alg {
        RsaesOaepSha1 | RsaAesKeyWrapSha1 => Some(CKM_SHA_1),
        RsaesOaepSha256 | RsaAesKeyWrapSha256 => Some(CKM_SHA256),
        _ => None,
    }
}

/// The key type and the generation mechanism of the wrapping key an algorithm needs.
pub fn wrapping_key(alg: WrappingAlgorithm) -> (KeyType, MechType) {
    match alg.wrapping_key_spec() {
        WrappingKeySpec::Rsa2048 => (CKK_RSA, CKM_RSA_PKCS_KEY_PAIR_GEN),
        WrappingKeySpec::EcSm2 => (CKK_SM2, sm_mech::CKM_SM2_KEY_PAIR_GEN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_has_a_shape_that_fits_it_and_no_other() {
        for spec in KeySpec::ALL {
            let shape = shape_of(*spec);
            assert!(fits(*spec, shape.class, shape.key_type));
            assert_eq!(
                shape.ec_params.is_some(),
                spec.curve().is_some() || *spec == KeySpec::EcSm2
            );
            assert_eq!(
                shape.class == CKO_SECRET_KEY,
                spec.symmetric_len().is_some()
            );
        }
        assert!(!fits(KeySpec::Aes256, CKO_SECRET_KEY, CKK_SM4));
        assert!(fits(KeySpec::Rsa2048, CKO_PUBLIC_KEY, CKK_RSA));
        assert!(!fits(KeySpec::Aes256, CKO_PRIVATE_KEY, CKK_AES));
    }
}
