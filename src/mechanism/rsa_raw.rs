//! `CKM_RSA_X_509`, raw RSA (PKCS#11 3.0 §2.1.9): encrypt, decrypt, sign and verify with
//! the bare RSA primitive. Input of at most k bytes (the modulus length) is left-padded
//! with zeros to k and must then be below the modulus (`CKR_DATA_LEN_RANGE` if longer,
//! `CKR_DATA_INVALID` if not below n); decryption and signing give k bytes, leading zeros
//! kept. There is no padding, so nothing for implicit rejection to hide.
//!
//! Raw signing *is* raw decryption: a key allowed to sign with this mechanism opens any
//! ciphertext made for it (docs/security.md). This module must not touch sessions or the
//! store; usage rights are the token's.

use std::sync::Arc;

use crate::ck::*;
use zeroize::Zeroizing;

use super::rsa::{boxed_cipher as cipher, min_bits, private, public, MAX_BITS};
use super::{buffered, info, no_param, Mechanism, Param};
use crate::error::Result;
use crate::object::key::Key;
use crate::operation::{Cipher, Signer, Verifier};

#[derive(Debug)]
pub(super) struct X509;

pub(super) static MECHANISMS: &[&dyn Mechanism] = &[&X509];

impl Mechanism for X509 {
    fn kind(&self) -> MechType {
        CKM_RSA_X_509
    }
    fn info(&self) -> CK_MECHANISM_INFO {
        info(
            min_bits(),
            MAX_BITS,
            CKF_ENCRYPT | CKF_DECRYPT | CKF_SIGN | CKF_VERIFY,
        )
    }
    fn encrypt(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Cipher>> {
        no_param(param)?;
        let size = public(key)?.size();
        let key = Arc::clone(key);
        Ok(cipher(size, move |data| {
            Ok(Zeroizing::new(public(&key)?.encrypt_x509(data)?))
        }))
    }
    fn decrypt(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Cipher>> {
        no_param(param)?;
        let size = private(key)?.size();
        let key = Arc::clone(key);
        Ok(cipher(size, move |data| private(&key)?.decrypt_x509(data)))
    }
    fn sign(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Signer>> {
        no_param(param)?;
        let size = private(key)?.size();
        let key = Arc::clone(key);
        Ok(buffered::signer(size, move |data| {
            Ok(Zeroizing::new(private(&key)?.sign_x509(data)?))
        }))
    }
    fn verify(&self, param: &Param, key: &Arc<Key>) -> Result<Box<dyn Verifier>> {
        no_param(param)?;
        public(key)?;
        let key = Arc::clone(key);
        Ok(buffered::verifier(move |data, sig| {
            public(&key)?.verify_x509(data, sig)
        }))
    }
}
