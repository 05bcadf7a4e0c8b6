//! `CKM_RSA_AES_KEY_WRAP` (PKCS#11 3.0 §2.1.21): a fresh AES key wrapped with RSA-OAEP,
//! followed by the target key wrapped under that AES key with RFC 5649 (KWP). The
//! temporary AES key exists only inside one call and is zeroized.

use crate::ck::*;
use zeroize::Zeroizing;

use super::rsa::{check_oaep, min_bits, MAX_BITS};
use super::{info, Mechanism, Param, WrappedLen};
use crate::crypto::aes;
use crate::error::{Error, Result};
use crate::object::key::{Key, Material};

#[derive(Debug)]
pub(super) struct RsaAesKeyWrap;

pub(super) static MECHANISMS: &[&dyn Mechanism] = &[&RsaAesKeyWrap];

fn params(param: &Param) -> Result<(usize, crate::crypto::hash::HashAlg, Vec<u8>)> {
    let Param::RsaAesKeyWrap { aes_key_bits, oaep } = param else {
        return Err(Error::MechanismParamInvalid);
    };
    let bytes = match aes_key_bits {
        128 | 192 | 256 => (*aes_key_bits / 8) as usize,
        _ => return Err(Error::MechanismParamInvalid),
    };
    let (hash, label) = check_oaep(oaep)?;
    Ok((bytes, hash, label))
}

impl Mechanism for RsaAesKeyWrap {
    fn kind(&self) -> MechType {
        CKM_RSA_AES_KEY_WRAP
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(min_bits(), MAX_BITS, CKF_WRAP | CKF_UNWRAP)
    }
    fn wrap(&self, param: &Param, wrapping: &Key, material: &[u8]) -> Result<Vec<u8>> {
        let (aes_len, hash, label) = params(param)?;
        let Material::RsaPublic(rsa) = &wrapping.material else {
            return Err(Error::WrappingKeyTypeInconsistent);
        };
        super::rsa::check_size(rsa.bits())?;
        let temporary = aes::generate_key(aes_len)?;
        let mut out = rsa.encrypt_oaep(&temporary, hash, &label)?;
        out.extend_from_slice(&aes::key_wrap_pad(&temporary, material)?);
        Ok(out)
    }
    fn unwrap(
        &self,
        param: &Param,
        unwrapping: &Key,
        wrapped: &[u8],
        _expected: WrappedLen,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let (aes_len, hash, label) = params(param)?;
        let Material::RsaPrivate(rsa) = &unwrapping.material else {
            return Err(Error::UnwrappingKeyTypeInconsistent);
        };
        super::rsa::check_size(rsa.bits())?;
        if wrapped.len() <= rsa.size() {
            return Err(Error::WrappedKeyLenRange);
        }
        let (head, tail) = wrapped.split_at(rsa.size());
        let temporary = rsa
            .decrypt_oaep(head, hash, &label)
            .map_err(|_| Error::WrappedKeyInvalid)?;
        if temporary.len() != aes_len {
            return Err(Error::WrappedKeyInvalid);
        }
        aes::key_unwrap_pad(&temporary, tail).map_err(|e| match e {
            Error::WrappedKeyLenRange => Error::WrappedKeyLenRange,
            _ => Error::WrappedKeyInvalid,
        })
    }
}
