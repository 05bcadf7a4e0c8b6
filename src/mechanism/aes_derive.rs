//! Key derivation by data encryption with AES (PKCS#11 3.0 Current Mechanisms §2.16,
//! "Key derivation by data encryption – DES & AES"): `CKM_AES_ECB_ENCRYPT_DATA` and
//! `CKM_AES_CBC_ENCRYPT_DATA`. The derived value is the encryption of the caller's data
//! (whole blocks, no padding) under the base AES key, or its leftmost bytes.
//!
//! The derived key's sensitivity follows its template (`DeriveRule::Template`): the
//! value does not expose the base key's bits. Note that a key with `CKA_DERIVE` thereby
//! encrypts chosen blocks (docs/mechanisms.md). This module must not touch sessions or
//! the store.

use crate::ck::*;
use zeroize::Zeroizing;

use super::{info, Mechanism, Param};
use crate::crypto::aes::{AesStream, Direction, BLOCK_LEN};
use crate::error::{Error, Result};
use crate::object::key::Key;

/// Longest data accepted, in bytes.
const MAX_DATA_LEN: usize = 4096;

#[derive(Debug)]
pub(super) struct EncryptData {
    kind: MechType,
}

pub(super) static MECHANISMS: &[&dyn Mechanism] = &[
    &EncryptData {
        kind: CKM_AES_ECB_ENCRYPT_DATA,
    },
    &EncryptData {
        kind: CKM_AES_CBC_ENCRYPT_DATA,
    },
];

/// The data must be whole blocks, at least one.
fn check_data(data: &[u8]) -> Result<()> {
    if data.is_empty() || data.len() % BLOCK_LEN != 0 || data.len() > MAX_DATA_LEN {
        return Err(Error::MechanismParamInvalid);
    }
    Ok(())
}

impl Mechanism for EncryptData {
    fn kind(&self) -> MechType {
        self.kind
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(16, 32, CKF_DERIVE)
    }
    fn derive(&self, param: &Param, base: &Key, len: Option<usize>) -> Result<Zeroizing<Vec<u8>>> {
        let key = base.secret_of(CKK_AES, &[16, 24, 32])?;
        let out = match (self.kind, param) {
            (CKM_AES_ECB_ENCRYPT_DATA, Param::Bytes(data)) => {
                check_data(data)?;
                AesStream::ecb(key, Direction::Encrypt)?.run(data)?
            }
            (CKM_AES_CBC_ENCRYPT_DATA, Param::AesCbcEncryptData { iv, data }) => {
                check_data(data)?;
                AesStream::cbc(key, iv, Direction::Encrypt, false)?.run(data)?
            }
            _ => return Err(Error::MechanismParamInvalid),
        };
        match len {
            None => Ok(out),
            Some(n) if n <= out.len() => Ok(Zeroizing::new(out[..n].to_vec())),
            Some(_) => Err(Error::TemplateInconsistent),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::key::Material;

    fn aes(v: &[u8]) -> Key {
        Key {
            class: CKO_SECRET_KEY,
            key_type: CKK_AES,
            material: Material::Secret(Zeroizing::new(v.to_vec())),
            prepared: Default::default(),
        }
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // NIST SP 800-38A F.1.1 (ECB-AES128.Encrypt) and F.2.1 (CBC-AES128.Encrypt), the
    // first two blocks of each.
    #[test]
    fn sp800_38a_vectors() {
        let key = aes(&unhex("2b7e151628aed2a6abf7158809cf4f3c"));
        let plain = unhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
        let ecb = MECHANISMS[0]
            .derive(&Param::Bytes(plain.clone()), &key, None)
            .unwrap();
        assert_eq!(
            ecb[..],
            unhex("3ad77bb40d7a3660a89ecaf32466ef97f5d3d58503b9699de785895a96fdbaaf")[..]
        );
        let iv: [u8; 16] = unhex("000102030405060708090a0b0c0d0e0f")
            .try_into()
            .unwrap();
        let cbc = MECHANISMS[1]
            .derive(
                &Param::AesCbcEncryptData {
                    iv,
                    data: plain.clone(),
                },
                &key,
                Some(16),
            )
            .unwrap();
        assert_eq!(cbc[..], unhex("7649abac8119b246cee98e9b12e9197d")[..]);
    }

    #[test]
    fn partial_blocks_other_keys_and_long_templates_are_refused() {
        let key = aes(&[7u8; 16]);
        for bad in [vec![], vec![0u8; 15], vec![0u8; 17]] {
            assert!(matches!(
                MECHANISMS[0].derive(&Param::Bytes(bad), &key, None),
                Err(Error::MechanismParamInvalid)
            ));
        }
        assert!(matches!(
            MECHANISMS[0].derive(&Param::Bytes(vec![0; 16]), &key, Some(17)),
            Err(Error::TemplateInconsistent)
        ));
        let generic = Key {
            key_type: CKK_GENERIC_SECRET,
            ..aes(&[7u8; 16])
        };
        assert!(matches!(
            MECHANISMS[0].derive(&Param::Bytes(vec![0; 16]), &generic, None),
            Err(Error::KeyTypeInconsistent)
        ));
    }
}
