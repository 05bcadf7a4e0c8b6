//! Key material as the KMS rules see it: its canonical form for the same-material rule,
//! and the keyed fingerprint stored with a key once material is bound to it.
//!
//! The fingerprint is HMAC-SHA-256 under a key derived from the token master key, so a
//! token file reveals nothing about the material, and comparing is constant-time. For
//! asymmetric keys the canonical form is the public key: a valid private key determines
//! it exactly, whatever CRT or encoding variant the caller sent. This module must not
//! know about PKCS#11.

use aws_lc_rs::hmac;
use subtle::ConstantTimeEq;

use super::key::KeySpec;
use crate::error::KmsError;

/// The canonical identity of some key material.
#[derive(Debug, Clone, Copy)]
pub enum Canonical<'a> {
    Symmetric(&'a [u8]),
    /// RSA modulus and public exponent, big-endian without leading zeros.
    Rsa {
        n: &'a [u8],
        e: &'a [u8],
    },
    /// An EC or SM2 public point, uncompressed.
    Point(&'a [u8]),
}

/// The keyed fingerprint of material of `spec`.
pub fn fingerprint(key: &[u8; 32], spec: KeySpec, material: Canonical<'_>) -> [u8; 32] {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&k);
    ctx.update(b"kmshsm material fingerprint v1");
    ctx.update(&spec.code().to_be_bytes());
    let mut field = |tag: u8, bytes: &[u8]| {
        ctx.update(&[tag]);
        ctx.update(&(bytes.len() as u64).to_be_bytes());
        ctx.update(bytes);
    };
    match material {
        Canonical::Symmetric(b) => field(1, b),
        Canonical::Rsa { n, e } => {
            field(2, n);
            field(3, e);
        }
        Canonical::Point(p) => field(4, p),
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

/// The same-material rule: the first import binds; later ones must match.
pub fn check_same(bound: Option<&[u8]>, offered: &[u8; 32]) -> Result<(), KmsError> {
    match bound {
        None => Ok(()),
        Some(b) if bool::from(b.ct_eq(offered)) => Ok(()),
        Some(_) => Err(KmsError::InvalidKeyMaterial),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_material_gives_the_same_fingerprint_and_other_material_another() {
        let k = [7u8; 32];
        let a = fingerprint(&k, KeySpec::Aes256, Canonical::Symmetric(&[1; 32]));
        let b = fingerprint(&k, KeySpec::Aes256, Canonical::Symmetric(&[1; 32]));
        let c = fingerprint(&k, KeySpec::Aes256, Canonical::Symmetric(&[2; 32]));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(check_same(Some(&a), &b).is_ok());
        assert_eq!(check_same(Some(&a), &c), Err(KmsError::InvalidKeyMaterial));
        assert!(check_same(None, &c).is_ok(), "the first import binds");
    }

    #[test]
    fn fingerprints_depend_on_the_token_key() {
        let m = Canonical::Symmetric(&[1; 16]);
        assert_ne!(
            fingerprint(&[1; 32], KeySpec::Sm4, m),
            fingerprint(&[2; 32], KeySpec::Sm4, m)
        );
    }
}
