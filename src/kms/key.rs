//! What a KMS key is: its id, spec, usage, origin and state (kms-docs; DESIGN.md §2).
//! The numeric codes are those of `include/kmshsm.h`, so they can be stored and shown
//! through vendor attributes. This module must not name any `CK_*` type.

use std::fmt;

use crate::error::KmsError;
use crate::vendor;

/// A key's id: a lower-case UUID, `^[0-9a-z]{8}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{12}$`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    pub fn generate() -> KeyId {
        KeyId(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    /// Parses an id, refusing anything but the lower-case UUID form.
    pub fn parse(text: &str) -> Result<KeyId, KmsError> {
        let groups: Vec<&str> = text.split('-').collect();
        let shape = [8, 4, 4, 4, 12];
        let ok = groups.len() == 5
            && groups.iter().zip(shape).all(|(g, n)| {
                g.len() == n
                    && g.bytes()
                        .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
            });
        if ok {
            Ok(KeyId(text.to_string()))
        } else {
            Err(KmsError::InvalidParameter("KeyId is not a lower-case UUID"))
        }
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<KeyId, KmsError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| KmsError::InvalidParameter("KeyId is not UTF-8"))?;
        KeyId::parse(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! coded_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $code:expr, $text:literal;)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant,)* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];
            /// The value stored in the vendor attribute (`include/kmshsm.h`).
            pub fn code(self) -> u64 {
                match self { $($name::$variant => $code,)* }
            }
            pub fn from_code(code: u64) -> Option<$name> {
                match code { $(c if c == $code => Some($name::$variant),)* _ => None }
            }
            /// The name the kms-docs use.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }
            pub fn from_name(name: &str) -> Option<$name> {
                match name { $($text => Some($name::$variant),)* _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

coded_enum! {
    /// The key specs of the kms-docs.
    KeySpec {
        Aes256 = vendor::KMSHSM_SPEC_AES_256, "AES_256";
        Sm4 = vendor::KMSHSM_SPEC_SM4, "SM4";
        Rsa2048 = vendor::KMSHSM_SPEC_RSA_2048, "RSA_2048";
        Rsa3072 = vendor::KMSHSM_SPEC_RSA_3072, "RSA_3072";
        Rsa4096 = vendor::KMSHSM_SPEC_RSA_4096, "RSA_4096";
        EcP256 = vendor::KMSHSM_SPEC_EC_P256, "EC_P256";
        EcP256K = vendor::KMSHSM_SPEC_EC_P256K, "EC_P256K";
        EcSm2 = vendor::KMSHSM_SPEC_EC_SM2, "EC_SM2";
    }
}

coded_enum! {
    KeyUsage {
        EncryptDecrypt = vendor::KMSHSM_USAGE_ENCRYPT_DECRYPT, "ENCRYPT/DECRYPT";
        SignVerify = vendor::KMSHSM_USAGE_SIGN_VERIFY, "SIGN/VERIFY";
    }
}

coded_enum! {
    /// Where the key material came from. The kms-docs call KMS-made material
    /// "Aliyun_KMS"; here it is KMS.
    Origin {
        Kms = vendor::KMSHSM_ORIGIN_KMS, "KMS";
        External = vendor::KMSHSM_ORIGIN_EXTERNAL, "EXTERNAL";
    }
}

coded_enum! {
    KeyState {
        Enabled = vendor::KMSHSM_STATE_ENABLED, "Enabled";
        Disabled = vendor::KMSHSM_STATE_DISABLED, "Disabled";
        PendingImport = vendor::KMSHSM_STATE_PENDING_IMPORT, "PendingImport";
        PendingDeletion = vendor::KMSHSM_STATE_PENDING_DELETION, "PendingDeletion";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_ids_have_the_documented_shape() {
        for _ in 0..20 {
            let id = KeyId::generate();
            assert_eq!(KeyId::parse(id.as_str()).unwrap(), id);
        }
    }

    #[test]
    fn key_ids_in_upper_case_or_other_shapes_are_refused() {
        for bad in [
            "1234ABCD-12ab-34cd-56ef-123456789012",
            "1234abcd12ab34cd56ef123456789012",
            "",
            "1234abcd-12ab-34cd-56ef-1234567890123",
        ] {
            assert!(KeyId::parse(bad).is_err(), "{bad}");
        }
        assert!(KeyId::parse("1234abcd-12ab-34cd-56ef-12345678abcd").is_ok());
    }

    #[test]
    fn codes_and_names_round_trip() {
        for s in KeySpec::ALL {
            assert_eq!(KeySpec::from_code(s.code()), Some(*s));
            assert_eq!(KeySpec::from_name(s.name()), Some(*s));
        }
        for s in KeyState::ALL {
            assert_eq!(KeyState::from_code(s.code()), Some(*s));
        }
        assert_eq!(Origin::from_name("EXTERNAL"), Some(Origin::External));
    }
}
