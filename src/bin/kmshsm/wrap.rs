//! `wrap-key-material`: the user's side of an import, done locally without the token.
//! Builds `EncryptedKeyMaterial` from the wrapping public key (DER SubjectPublicKeyInfo,
//! as GetParametersForImport returns it), the wrapping algorithm and the material, in the
//! formats of the kms-docs (004 for the envelopes).

use kmshsm::crypto::aes::{self, AesStream, Direction};
use kmshsm::crypto::hash::HashAlg;
use kmshsm::crypto::pkcs8::{decode_spki, KeyAlgorithm};
use kmshsm::crypto::rsa::{RsaComponents, RsaPublicKey};
use kmshsm::crypto::sm;
use kmshsm::error::{Error, Result};
use kmshsm::kms::import::WrappingAlgorithm;

fn rsa_key(alg: &KeyAlgorithm, key: &[u8]) -> Result<RsaPublicKey> {
    if *alg != KeyAlgorithm::Rsa {
        return Err(Error::KeyTypeInconsistent);
    }
    let (n, e) = RsaComponents::from_public_der(key)?;
    RsaPublicKey::new(&n, &e)
}

fn pkcs7(data: &[u8]) -> Vec<u8> {
    let pad = 16 - data.len() % 16;
    let mut out = data.to_vec();
    out.resize(data.len() + pad, pad as u8);
    out
}

pub(crate) fn wrap(
    public_key_der: &[u8],
    alg: WrappingAlgorithm,
    material: &[u8],
) -> Result<Vec<u8>> {
    use WrappingAlgorithm::*;
    let (key_alg, key) = decode_spki(public_key_der)?;
    match alg {
        RsaesPkcs1V15 => rsa_key(&key_alg, key)?.encrypt_pkcs1(material),
        RsaesOaepSha1 => rsa_key(&key_alg, key)?.encrypt_oaep(material, HashAlg::Sha1, &[]),
        RsaesOaepSha256 => rsa_key(&key_alg, key)?.encrypt_oaep(material, HashAlg::Sha256, &[]),
        RsaAesKeyWrapSha1 | RsaAesKeyWrapSha256 => {
            let hash = if alg == RsaAesKeyWrapSha1 {
                HashAlg::Sha1
            } else {
                HashAlg::Sha256
            };
            let temporary = aes::generate_key(32)?;
            let mut out = rsa_key(&key_alg, key)?.encrypt_oaep(&temporary, hash, &[])?;
            out.extend(aes::key_wrap_pad(&temporary, material)?);
            Ok(out)
        }
        RsaesOaepSha256Aes256EcbPkcs7Pad => {
            let esk = aes::generate_key(32)?;
            let mut out = rsa_key(&key_alg, key)?.encrypt_oaep(&esk, HashAlg::Sha256, &[])?;
            out.extend_from_slice(
                &AesStream::ecb(&esk, Direction::Encrypt)?.run(&pkcs7(material))?,
            );
            Ok(out)
        }
        Sm2Pke => sm::sm2_encrypt(key, material),
        Sm2PkeSm4Ecb => {
            let esk = sm::sm4_generate_key()?;
            let mut out = sm::sm2_encrypt(key, &esk[..])?;
            out.extend(sm::sm4_ecb_encrypt(&esk[..], material)?);
            Ok(out)
        }
    }
}
