//! AES primitives for the PKCS#11 mechanisms: ECB, CBC, CBC with PKCS#7 padding and CTR
//! as streaming ciphers ([`AesStream`]), GCM, CMAC, key wrap (RFC 3394) and key wrap with
//! padding (RFC 5649), key generation and the `CKA_CHECK_VALUE` of an AES key.
//!
//! Which library does what, and why:
//!
//! - **aws-lc-rs** does every AES block operation: ECB and CBC (its one-shot
//!   `cipher::EncryptingKey`/`DecryptingKey`, driven over whole blocks by [`AesStream`],
//!   which keeps the partial block, the CBC chaining value and the padding itself, because
//!   aws-lc-rs streams only the *padded* ECB/CBC variants), CTR (its streaming key), GCM
//!   with a 12-byte IV and a 16-byte tag, CMAC for all key sizes, and KW/KWP under 128- and
//!   256-bit key-encryption keys.
//! - **RustCrypto `aes-kw`** does KW/KWP under a 192-bit key-encryption key: aws-lc-rs
//!   offers key wrap only for AES-128 and AES-256.
//! - **RustCrypto `ghash`** supplies GHASH for the GCM variants aws-lc-rs's AEAD API
//!   cannot express (IVs other than 12 bytes, tags shorter than 16 bytes). Those are
//!   assembled here from SP 800-38D §7 (GHASH, and GCTR over aws-lc-rs AES), not from
//!   `aes-gcm`, whose IV length is a compile-time type parameter.
//!
//! Nothing here knows of sessions, objects or `CK_*` types; the mechanism layer maps
//! PKCS#11 parameters onto these functions. Secrets leave in [`Zeroizing`] buffers, and
//! nothing is logged.

mod gcm;
mod mac;
mod open_buffer;
mod stream;
mod wrap;

#[cfg(test)]
mod kat_tests;
#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod wycheproof_tests;

use aws_lc_rs::cipher::{self, EncryptingKey, UnboundCipherKey};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

pub(crate) use gcm::{
    gcm_check, gcm_decrypt, gcm_decrypt_prepared, gcm_decrypt_prepared_into, gcm_encrypt,
    gcm_encrypt_prepared, gcm_encrypt_prepared_into, gcm_fast_path, GcmKey,
};
pub(crate) use mac::Cmac;
#[cfg(test)]
use mac::{cmac, cmac_verify};
pub use stream::AesStream;
pub use wrap::key_wrap_pad;
pub(crate) use wrap::{key_unwrap, key_unwrap_pad, key_wrap};

/// The AES block size in bytes.
pub const BLOCK_LEN: usize = 16;

/// Whether a streaming cipher encrypts or decrypts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Encrypt,
    Decrypt,
}

/// The aws-lc-rs cipher for a key of this length; `KeySizeRange` unless 16, 24 or 32 bytes.
fn cipher_algorithm(key: &[u8]) -> Result<&'static cipher::Algorithm> {
    match key.len() {
        16 => Ok(&cipher::AES_128),
        24 => Ok(&cipher::AES_192),
        32 => Ok(&cipher::AES_256),
        _ => Err(Error::KeySizeRange),
    }
}

/// An aws-lc-rs key for `key`, whose length the caller has checked.
fn unbound_key(key: &[u8]) -> Result<UnboundCipherKey> {
    UnboundCipherKey::new(cipher_algorithm(key)?, key)
        .map_err(|_| Error::Internal("aws-lc-rs refused an AES key of a valid length"))
}

/// An ECB encryption key, for single-block uses (GCM's hash key, check values).
fn ecb_encrypting_key(key: &[u8]) -> Result<EncryptingKey> {
    EncryptingKey::ecb(unbound_key(key)?)
        .map_err(|_| Error::Internal("aws-lc-rs refused an AES-ECB key"))
}

/// Encrypts one block in place with an ECB key.
fn encrypt_block(key: &EncryptingKey, block: &mut [u8; BLOCK_LEN]) -> Result<()> {
    key.encrypt(block)
        .map(|_| ())
        .map_err(|_| Error::Internal("AES-ECB failed on one whole block"))
}

/// A fresh random AES key of `len` bytes (16, 24 or 32), from aws-lc's generator.
pub fn generate_key(len: usize) -> Result<Zeroizing<Vec<u8>>> {
    if !matches!(len, 16 | 24 | 32) {
        return Err(Error::KeySizeRange);
    }
    let mut key = Zeroizing::new(vec![0u8; len]);
    crate::crypto::rand::random_fill(&mut key)?;
    Ok(key)
}

/// `CKA_CHECK_VALUE` of an AES key: the first three bytes of the ECB encryption of an
/// all-zero block (PKCS#11 3.1 §6.8.2 — the check-value rule for AES keys).
pub fn check_value(key: &[u8]) -> Result<[u8; 3]> {
    let ecb = ecb_encrypting_key(key)?;
    let mut block = [0u8; BLOCK_LEN];
    encrypt_block(&ecb, &mut block)?;
    Ok([block[0], block[1], block[2]])
}
