//! The two-layer import envelopes of the kms-docs (004, "importing asymmetric key
//! material"), as vendor wrap mechanisms:
//!
//! - `CKM_KMSHSM_RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD`: Cipher(ESK) || Cipher(TAKpriv),
//!   ESK a 32-byte AES key under RSA-OAEP (SHA-256, MGF1-SHA-256, empty label), TAKpriv
//!   the PKCS#8 private key under AES-256-ECB with PKCS#7 padding.
//! - `CKM_KMSHSM_SM2PKE_SM4_ECB`: Cipher(ESK) || Cipher(d), ESK a 16-byte SM4 key under
//!   SM2 encryption (C1C3C2, so 113 bytes), d the 32-byte SM2 scalar under SM4-ECB.
//!
//! Every failure of the inner layers reads as `CKR_WRAPPED_KEY_INVALID`.

use crate::ck::*;
use zeroize::Zeroizing;

use super::{info, no_param, Mechanism, Param, WrappedLen};
use crate::crypto::aes::{self, AesStream, Direction};
use crate::crypto::hash::HashAlg;
use crate::crypto::sm;
use crate::error::{Error, Result};
use crate::object::key::{Key, Material};
use crate::vendor;

pub(crate) const CKM_RSA_AES_ECB_ENVELOPE: MechType =
    vendor::CKM_KMSHSM_RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD;
pub(crate) const CKM_SM2_SM4_ECB_ENVELOPE: MechType = vendor::CKM_KMSHSM_SM2PKE_SM4_ECB;

const ESK_AES: usize = 32;
const ESK_SM4: usize = 16;
/// SM2 C1C3C2 of a 16-byte SM4 key: 65 + 32 + 16.
const SM2_ESK_CIPHERTEXT: usize = 65 + 32 + ESK_SM4;

#[derive(Debug)]
pub(crate) struct RsaAesEcb;
#[derive(Debug)]
pub(crate) struct Sm2Sm4Ecb;

pub(crate) static MECHANISMS: &[&dyn Mechanism] = &[&RsaAesEcb, &Sm2Sm4Ecb];

fn aes_ecb(key: &[u8], dir: Direction, data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    AesStream::ecb(key, dir)?.run(data)
}

fn pkcs7_pad(data: &[u8]) -> Zeroizing<Vec<u8>> {
    let pad = aes::BLOCK_LEN - data.len() % aes::BLOCK_LEN;
    let mut out = Zeroizing::new(data.to_vec());
    out.resize(data.len() + pad, pad as u8);
    out
}

fn pkcs7_unpad(mut data: Zeroizing<Vec<u8>>) -> Result<Zeroizing<Vec<u8>>> {
    let pad = usize::from(*data.last().ok_or(Error::WrappedKeyInvalid)?);
    if pad == 0 || pad > aes::BLOCK_LEN || pad > data.len() {
        return Err(Error::WrappedKeyInvalid);
    }
    let ok = data[data.len() - pad..]
        .iter()
        .fold(0u8, |acc, b| acc | (b ^ pad as u8))
        == 0;
    if !ok {
        return Err(Error::WrappedKeyInvalid);
    }
    let keep = data.len() - pad;
    data.truncate(keep);
    Ok(data)
}

impl Mechanism for RsaAesEcb {
    fn kind(&self) -> MechType {
        CKM_RSA_AES_ECB_ENVELOPE
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(2048, 4096, CKF_WRAP | CKF_UNWRAP)
    }
    fn unwrap_unauthenticated(&self) -> bool {
        true
    }
    fn wrap(&self, param: &Param, wrapping: &Key, material: &[u8]) -> Result<Vec<u8>> {
        no_param(param)?;
        let Material::RsaPublic(rsa) = &wrapping.material else {
            return Err(Error::WrappingKeyTypeInconsistent);
        };
        super::rsa::check_size(rsa.bits())?;
        let esk = aes::generate_key(ESK_AES)?;
        let mut out = rsa.encrypt_oaep(&esk, HashAlg::Sha256, &[])?;
        out.extend_from_slice(&aes_ecb(&esk, Direction::Encrypt, &pkcs7_pad(material))?);
        Ok(out)
    }
    fn unwrap(
        &self,
        param: &Param,
        unwrapping: &Key,
        wrapped: &[u8],
        _expected: WrappedLen,
    ) -> Result<Zeroizing<Vec<u8>>> {
        no_param(param)?;
        let Material::RsaPrivate(rsa) = &unwrapping.material else {
            return Err(Error::UnwrappingKeyTypeInconsistent);
        };
        super::rsa::check_size(rsa.bits())?;
        if wrapped.len() <= rsa.size() || (wrapped.len() - rsa.size()) % aes::BLOCK_LEN != 0 {
            return Err(Error::WrappedKeyLenRange);
        }
        let (head, tail) = wrapped.split_at(rsa.size());
        let esk = rsa
            .decrypt_oaep(head, HashAlg::Sha256, &[])
            .map_err(|_| Error::WrappedKeyInvalid)?;
        if esk.len() != ESK_AES {
            return Err(Error::WrappedKeyInvalid);
        }
        let padded =
            aes_ecb(&esk, Direction::Decrypt, tail).map_err(|_| Error::WrappedKeyInvalid)?;
        pkcs7_unpad(padded)
    }
}

impl Mechanism for Sm2Sm4Ecb {
    fn kind(&self) -> MechType {
        CKM_SM2_SM4_ECB_ENVELOPE
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(256, 256, CKF_WRAP | CKF_UNWRAP)
    }
    fn unwrap_unauthenticated(&self) -> bool {
        true
    }
    fn wrap(&self, param: &Param, wrapping: &Key, material: &[u8]) -> Result<Vec<u8>> {
        no_param(param)?;
        let Material::Sm2Public { point } = &wrapping.material else {
            return Err(Error::WrappingKeyTypeInconsistent);
        };
        let esk = sm::sm4_generate_key()?;
        let mut out = sm::sm2_encrypt(point, &esk[..])?;
        out.extend_from_slice(
            &sm::sm4_ecb_encrypt(&esk[..], material).map_err(|_| Error::KeySizeRange)?,
        );
        Ok(out)
    }
    fn unwrap(
        &self,
        param: &Param,
        unwrapping: &Key,
        wrapped: &[u8],
        _expected: WrappedLen,
    ) -> Result<Zeroizing<Vec<u8>>> {
        no_param(param)?;
        let Material::Sm2Private { d, .. } = &unwrapping.material else {
            return Err(Error::UnwrappingKeyTypeInconsistent);
        };
        if wrapped.len() <= SM2_ESK_CIPHERTEXT || (wrapped.len() - SM2_ESK_CIPHERTEXT) % 16 != 0 {
            return Err(Error::WrappedKeyLenRange);
        }
        let (head, tail) = wrapped.split_at(SM2_ESK_CIPHERTEXT);
        let esk = sm::sm2_decrypt(d, head).map_err(|_| Error::WrappedKeyInvalid)?;
        if esk.len() != ESK_SM4 {
            return Err(Error::WrappedKeyInvalid);
        }
        sm::sm4_ecb_decrypt(&esk, tail).map_err(|_| Error::WrappedKeyInvalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs7_padding_round_trips_and_refuses_bad_padding() {
        for n in 0..40 {
            let data = vec![7u8; n];
            let padded = pkcs7_pad(&data);
            assert_eq!(padded.len() % 16, 0);
            assert_eq!(&pkcs7_unpad(padded).unwrap()[..], &data[..]);
        }
        let mut bad = pkcs7_pad(b"abc");
        let last = bad.len() - 2;
        bad[last] ^= 1;
        assert!(pkcs7_unpad(bad).is_err());
        assert!(pkcs7_unpad(Zeroizing::new(vec![0u8; 16])).is_err());
    }
}
