//! The PKCS#11 constants of `cryptoki-sys`, with the attribute types (`CKA_*`), mechanism
//! types (`CKM_*`), object classes (`CKO_*`) and key types (`CKK_*`) typed as `AttrType`,
//! `MechType`, `ObjectClass` and `KeyType`. A file that works with attributes, mechanisms
//! or objects imports `crate::ck::*` instead of `cryptoki_sys::*`: the names stay those of
//! the specification, the values carry their kind. A `CKA_`, `CKM_`, `CKO_` or `CKK_` name
//! missing from the lists below is still the bare number of `cryptoki-sys` (the compiler
//! says so where it meets a typed one): add it to its list.
//!
//! This module must not decide anything about the values; it only names them.

use std::fmt;

pub use cryptoki_sys::*;

pub use crate::ids::{AttrType, KeyType, MechType, ObjectClass};

macro_rules! typed {
    ($ty:ident, $names:ident, $vendor:expr; $($name:ident,)*) => {
        $(pub const $name: $ty = $ty::from_raw(cryptoki_sys::$name);)*

        /// Every typed constant of this kind with its name, the vendor's included.
        const $names: &[&[(u64, &str)]] = &[&[$(($name.get(), stringify!($name)),)*], $vendor];

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let name = $names.iter().flat_map(|l| l.iter()).find(|(v, _)| *v == self.get());
                match name {
                    Some((_, name)) => f.write_str(name),
                    None => write!(f, "{:#x}", self.get()),
                }
            }
        }
    };
}

typed! { AttrType, ATTR_NAMES, crate::vendor::ATTR_NAMES;
    CKA_ALLOWED_MECHANISMS,
    CKA_ALWAYS_AUTHENTICATE,
    CKA_ALWAYS_SENSITIVE,
    CKA_APPLICATION,
    CKA_CERTIFICATE_CATEGORY,
    CKA_CERTIFICATE_TYPE,
    CKA_CHECK_VALUE,
    CKA_CLASS,
    CKA_COEFFICIENT,
    CKA_COPYABLE,
    CKA_DECRYPT,
    CKA_DERIVE,
    CKA_DERIVE_TEMPLATE,
    CKA_DESTROYABLE,
    CKA_EC_PARAMS,
    CKA_EC_POINT,
    CKA_ENCRYPT,
    CKA_END_DATE,
    CKA_EXPONENT_1,
    CKA_EXPONENT_2,
    CKA_EXTRACTABLE,
    CKA_HASH_OF_ISSUER_PUBLIC_KEY,
    CKA_HASH_OF_SUBJECT_PUBLIC_KEY,
    CKA_ID,
    CKA_ISSUER,
    CKA_JAVA_MIDP_SECURITY_DOMAIN,
    CKA_KEY_GEN_MECHANISM,
    CKA_KEY_TYPE,
    CKA_LABEL,
    CKA_LOCAL,
    CKA_MODIFIABLE,
    CKA_MODULUS,
    CKA_MODULUS_BITS,
    CKA_NAME_HASH_ALGORITHM,
    CKA_NEVER_EXTRACTABLE,
    CKA_OBJECT_ID,
    CKA_PRIME_1,
    CKA_PRIME_2,
    CKA_PRIVATE,
    CKA_PRIVATE_EXPONENT,
    CKA_PUBLIC_EXPONENT,
    CKA_PUBLIC_KEY_INFO,
    CKA_SENSITIVE,
    CKA_SERIAL_NUMBER,
    CKA_SIGN,
    CKA_SIGN_RECOVER,
    CKA_START_DATE,
    CKA_SUBJECT,
    CKA_TOKEN,
    CKA_TRUSTED,
    CKA_UNIQUE_ID,
    CKA_UNWRAP,
    CKA_UNWRAP_TEMPLATE,
    CKA_URL,
    CKA_VALUE,
    CKA_VALUE_LEN,
    CKA_VERIFY,
    CKA_VERIFY_RECOVER,
    CKA_WRAP,
    CKA_WRAP_TEMPLATE,
    CKA_WRAP_WITH_TRUSTED,
}

typed! { MechType, MECH_NAMES, crate::vendor::MECH_NAMES;
    CKM_AES_CBC,
    CKM_AES_CBC_ENCRYPT_DATA,
    CKM_AES_CBC_PAD,
    CKM_AES_CMAC,
    CKM_AES_CMAC_GENERAL,
    CKM_AES_CTR,
    CKM_AES_ECB,
    CKM_AES_ECB_ENCRYPT_DATA,
    CKM_AES_GCM,
    CKM_AES_KEY_GEN,
    CKM_AES_KEY_WRAP,
    CKM_AES_KEY_WRAP_KWP,
    CKM_AES_KEY_WRAP_PAD,
    CKM_CONCATENATE_BASE_AND_DATA,
    CKM_CONCATENATE_BASE_AND_KEY,
    CKM_CONCATENATE_DATA_AND_BASE,
    CKM_DES2_KEY_GEN,
    CKM_DES3_CBC,
    CKM_DES3_CBC_PAD,
    CKM_DES3_ECB,
    CKM_DES3_KEY_GEN,
    CKM_DES_CBC,
    CKM_DES_CBC_PAD,
    CKM_DES_ECB,
    CKM_DES_KEY_GEN,
    CKM_ECDH1_DERIVE,
    CKM_ECDSA,
    CKM_ECDSA_SHA1,
    CKM_ECDSA_SHA224,
    CKM_ECDSA_SHA256,
    CKM_ECDSA_SHA384,
    CKM_ECDSA_SHA512,
    CKM_EC_EDWARDS_KEY_PAIR_GEN,
    CKM_EC_KEY_PAIR_GEN,
    CKM_EC_MONTGOMERY_KEY_PAIR_GEN,
    CKM_EDDSA,
    CKM_EXTRACT_KEY_FROM_KEY,
    CKM_GENERIC_SECRET_KEY_GEN,
    CKM_HKDF_DATA,
    CKM_HKDF_DERIVE,
    CKM_HKDF_KEY_GEN,
    CKM_RSA_AES_KEY_WRAP,
    CKM_RSA_PKCS,
    CKM_RSA_PKCS_KEY_PAIR_GEN,
    CKM_RSA_PKCS_OAEP,
    CKM_RSA_PKCS_PSS,
    CKM_RSA_X_509,
    CKM_SHA1_RSA_PKCS,
    CKM_SHA1_RSA_PKCS_PSS,
    CKM_SHA224,
    CKM_SHA224_HMAC,
    CKM_SHA224_KEY_GEN,
    CKM_SHA224_RSA_PKCS,
    CKM_SHA224_RSA_PKCS_PSS,
    CKM_SHA256,
    CKM_SHA256_HMAC,
    CKM_SHA256_KEY_GEN,
    CKM_SHA256_RSA_PKCS,
    CKM_SHA256_RSA_PKCS_PSS,
    CKM_SHA384,
    CKM_SHA384_HMAC,
    CKM_SHA384_KEY_GEN,
    CKM_SHA384_RSA_PKCS,
    CKM_SHA384_RSA_PKCS_PSS,
    CKM_SHA512,
    CKM_SHA512_HMAC,
    CKM_SHA512_KEY_GEN,
    CKM_SHA512_RSA_PKCS,
    CKM_SHA512_RSA_PKCS_PSS,
    CKM_SHA_1,
    CKM_SHA_1_HMAC,
    CKM_SHA_1_KEY_GEN,
    CKM_SP800_108_COUNTER_KDF,
    CKM_SP800_108_DOUBLE_PIPELINE_KDF,
    CKM_SP800_108_FEEDBACK_KDF,
    CKM_XOR_BASE_AND_DATA,
}

typed! { ObjectClass, CLASS_NAMES, &[];
    CKO_CERTIFICATE,
    CKO_DATA,
    CKO_PRIVATE_KEY,
    CKO_PUBLIC_KEY,
    CKO_SECRET_KEY,
}

typed! { KeyType, KEY_NAMES, crate::vendor::KEY_NAMES;
    CKK_AES,
    CKK_DES,
    CKK_DES2,
    CKK_DES3,
    CKK_EC,
    CKK_EC_EDWARDS,
    CKK_EC_MONTGOMERY,
    CKK_GENERIC_SECRET,
    CKK_HKDF,
    CKK_RSA,
    CKK_SHA224_HMAC,
    CKK_SHA256_HMAC,
    CKK_SHA384_HMAC,
    CKK_SHA512_HMAC,
    CKK_SHA_1_HMAC,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_print_their_names_or_their_number() {
        assert_eq!(format!("{:?}", CKA_LABEL), "CKA_LABEL");
        assert_eq!(format!("{:?}", CKM_AES_GCM), "CKM_AES_GCM");
        assert_eq!(
            format!("{:?}", crate::vendor::CKM_KMSHSM_SM4_GCM),
            "CKM_KMSHSM_SM4_GCM"
        );
        assert_eq!(format!("{:?}", AttrType::new(0x7777)), "0x7777");
        assert_eq!(CKA_VALUE.raw(), cryptoki_sys::CKA_VALUE);
    }
}
