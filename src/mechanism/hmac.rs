//! HMACs over SHA-1 and SHA-2 (`CKM_SHA_1_HMAC`, `CKM_SHA224_HMAC` ... `CKM_SHA512_HMAC`,
//! RFC 2104 via aws-lc-rs), `CKM_GENERIC_SECRET_KEY_GEN` and the HMAC key generations
//! `CKM_SHA_1_KEY_GEN` ... `CKM_SHA512_KEY_GEN` (PKCS#11 3.0: `CKA_VALUE_LEN` bytes of
//! random, key type `CKK_SHA*_HMAC`). Keys: `CKK_GENERIC_SECRET` or the HMAC key type of
//! the same hash; sizes in bytes (bits for `CKM_GENERIC_SECRET_KEY_GEN`, §6.3).

use std::sync::Arc;

use crate::ck::*;
use aws_lc_rs::hmac;
use subtle::ConstantTimeEq;

use super::{info, no_param, Generated, KeyRequest, Mechanism, Param};
use crate::crypto::hash::HashAlg;
use crate::crypto::rand::random_fill;
use crate::error::{Error, Result};
use crate::object::attr::Value;
use crate::object::key::Key;
use crate::operation::{Signer, Verifier};

/// Largest generic secret the module generates: 512 bytes (4096 bits).
const MAX_SECRET_LEN: u64 = 512;

#[derive(Debug)]
pub(super) struct Hmac {
    kind: MechType,
    hash: HashAlg,
    key_type: KeyType,
}

/// A secret-key generation: `CKA_VALUE_LEN` random bytes of `key_type`.
#[derive(Debug)]
pub(super) struct KeyGen {
    kind: MechType,
    key_type: KeyType,
}

pub(super) static MECHANISMS: &[&dyn Mechanism] = &[
    &Hmac {
        kind: CKM_SHA_1_HMAC,
        hash: HashAlg::Sha1,
        key_type: CKK_SHA_1_HMAC,
    },
    &Hmac {
        kind: CKM_SHA224_HMAC,
        hash: HashAlg::Sha224,
        key_type: CKK_SHA224_HMAC,
    },
    &Hmac {
        kind: CKM_SHA256_HMAC,
        hash: HashAlg::Sha256,
        key_type: CKK_SHA256_HMAC,
    },
    &Hmac {
        kind: CKM_SHA384_HMAC,
        hash: HashAlg::Sha384,
        key_type: CKK_SHA384_HMAC,
    },
    &Hmac {
        kind: CKM_SHA512_HMAC,
        hash: HashAlg::Sha512,
        key_type: CKK_SHA512_HMAC,
    },
    &KeyGen {
        kind: CKM_GENERIC_SECRET_KEY_GEN,
        key_type: CKK_GENERIC_SECRET,
    },
    &KeyGen {
        kind: CKM_SHA_1_KEY_GEN,
        key_type: CKK_SHA_1_HMAC,
    },
    &KeyGen {
        kind: CKM_SHA224_KEY_GEN,
        key_type: CKK_SHA224_HMAC,
    },
    &KeyGen {
        kind: CKM_SHA256_KEY_GEN,
        key_type: CKK_SHA256_HMAC,
    },
    &KeyGen {
        kind: CKM_SHA384_KEY_GEN,
        key_type: CKK_SHA384_HMAC,
    },
    &KeyGen {
        kind: CKM_SHA512_KEY_GEN,
        key_type: CKK_SHA512_HMAC,
    },
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

impl Hmac {
    fn context(&self, param: &Param, key: &Key) -> Result<HmacOp> {
        no_param(param)?;
        if key.key_type != CKK_GENERIC_SECRET && key.key_type != self.key_type {
            return Err(Error::KeyTypeInconsistent);
        }
        let secret = key.secret()?;
        if secret.is_empty() {
            return Err(Error::KeySizeRange);
        }
        let key = hmac::Key::new(algorithm(self.hash), secret);
        Ok(HmacOp {
            ctx: Some(hmac::Context::with_key(&key)),
            len: self.hash.output_len(),
        })
    }
}

impl Mechanism for Hmac {
    fn kind(&self) -> MechType {
        self.kind
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(1, MAX_SECRET_LEN, CKF_SIGN | CKF_VERIFY)
    }
    fn sign(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Signer>> {
        Ok(Box::new(self.context(param, key)?))
    }
    fn verify(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Verifier>> {
        Ok(Box::new(self.context(param, key)?))
    }
}

#[derive(Debug)]
struct HmacOp {
    ctx: Option<hmac::Context>,
    len: usize,
}

impl HmacOp {
    fn tag(&mut self) -> Result<Vec<u8>> {
        let ctx = self.ctx.take().ok_or(Error::OperationNotInitialized)?;
        Ok(ctx.sign().as_ref().to_vec())
    }
}

impl Signer for HmacOp {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        self.ctx
            .as_mut()
            .ok_or(Error::OperationNotInitialized)?
            .update(data);
        Ok(())
    }
    fn finish(&mut self) -> Result<Vec<u8>> {
        self.tag()
    }
    fn signature_len(&self) -> usize {
        self.len
    }
}

impl Verifier for HmacOp {
    fn update(&mut self, data: &[u8]) -> Result<()> {
        Signer::update(self, data)
    }
    fn finish(&mut self, signature: &[u8]) -> Result<()> {
        if signature.len() != self.len {
            return Err(Error::SignatureLenRange);
        }
        if bool::from(self.tag()?.ct_eq(signature)) {
            Ok(())
        } else {
            Err(Error::SignatureInvalid)
        }
    }
}

impl Mechanism for KeyGen {
    fn kind(&self) -> MechType {
        self.kind
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        if self.kind == CKM_GENERIC_SECRET_KEY_GEN {
            // Key sizes of CKM_GENERIC_SECRET_KEY_GEN are in bits (§6.3).
            info(8, MAX_SECRET_LEN * 8, CKF_GENERATE)
        } else {
            // Those of the SHA-n HMAC key generations in bytes.
            info(1, MAX_SECRET_LEN, CKF_GENERATE)
        }
    }
    fn generate_key(&self, param: &Param, req: &KeyRequest) -> Result<(KeyType, Generated)> {
        no_param(param)?;
        let len = req.value_len.ok_or(Error::TemplateIncomplete)?;
        if !(1..=MAX_SECRET_LEN).contains(&len) {
            // A template value the generation cannot take (C_GenerateKey, §5.14).
            return Err(Error::AttributeValueInvalid);
        }
        let mut value = vec![0u8; usize::try_from(len).map_err(|_| Error::AttributeValueInvalid)?];
        random_fill(&mut value)?;
        Ok((self.key_type, vec![(CKA_VALUE, Value::Bytes(value))]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::key::Material;
    use zeroize::Zeroizing;

    fn key(bytes: &[u8]) -> Arc<Key> {
        Arc::new(Key {
            class: CKO_SECRET_KEY,
            key_type: CKK_GENERIC_SECRET,
            material: Material::Secret(Zeroizing::new(bytes.to_vec())),
            prepared: Default::default(),
        })
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231_case_2() {
        // RFC 4231 §4.3: key "Jefe", data "what do ya want for nothing?".
        let m = &Hmac {
            kind: CKM_SHA256_HMAC,
            hash: HashAlg::Sha256,
            key_type: CKK_SHA256_HMAC,
        };
        let mut s = m.sign(&Param::None, &key(b"Jefe")).unwrap();
        let tag = s.one_shot(b"what do ya want for nothing?").unwrap();
        assert_eq!(
            tag[..8],
            [0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e],
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let mut v = m.verify(&Param::None, &key(b"Jefe")).unwrap();
        v.one_shot(b"what do ya want for nothing?", &tag).unwrap();
        let mut v = m.verify(&Param::None, &key(b"Jefe")).unwrap();
        assert!(matches!(
            v.one_shot(b"x", &tag),
            Err(Error::SignatureInvalid)
        ));
    }
}
