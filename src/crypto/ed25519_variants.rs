//! Ed25519ctx and Ed25519ph (RFC 8032 §5.1: `dom2(F, C)` with a context, and the
//! SHA-512 pre-hash) from aws-lc's own `ED25519ctx_*` and `ED25519ph_*_digest` functions,
//! through `aws-lc-sys`: aws-lc-rs offers pure Ed25519 only, and the same aws-lc build
//! (the one aws-lc-rs links) implements both variants for FIPS 186-5.
//!
//! One of the crate's few modules allowed `unsafe` (with `ffi::raw`, `os` and
//! `crypto::rsa::raw`): four calls, each on Rust-owned buffers of the lengths aws-lc's
//! header fixes (64-byte private key = seed || public key, 32-byte public key, 64-byte
//! signature and SHA-512 digest). The private key buffer is zeroizing. Nothing else here.

use aws_lc_sys as sys;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Bytes of an Ed25519 seed and of a public key (RFC 8032 §5.1.5, aws-lc's
/// `ED25519_PUBLIC_KEY_LEN`); `curve25519.rs` checks at compile time that its own agree.
pub(crate) const KEY_LEN: usize = 32;
/// Bytes of an Ed25519 signature (aws-lc's `ED25519_SIGNATURE_LEN`).
pub(crate) const SIGNATURE_LEN: usize = 64;

/// The longest context RFC 8032 allows (one length byte in `dom2`).
pub(crate) const MAX_CONTEXT_LEN: usize = 255;
/// SHA-512's output, Ed25519ph's pre-hash.
pub(crate) const DIGEST_LEN: usize = 64;

/// aws-lc's private key form: the seed followed by the public key.
fn private_key(seed: &[u8; KEY_LEN], public: &[u8; KEY_LEN]) -> Zeroizing<[u8; 2 * KEY_LEN]> {
    let mut key = Zeroizing::new([0u8; 2 * KEY_LEN]);
    key[..KEY_LEN].copy_from_slice(seed);
    key[KEY_LEN..].copy_from_slice(public);
    key
}

fn signature(sig: &[u8]) -> Result<&[u8; SIGNATURE_LEN]> {
    sig.try_into().map_err(|_| Error::SignatureLenRange)
}

/// Ed25519ctx: a context of 1 to 255 bytes (RFC 8032 §5.1: it must not be empty).
fn ctx_context(context: &[u8]) -> Result<()> {
    if context.is_empty() || context.len() > MAX_CONTEXT_LEN {
        return Err(Error::MechanismParamInvalid);
    }
    Ok(())
}

fn ph_context(context: &[u8]) -> Result<()> {
    if context.len() > MAX_CONTEXT_LEN {
        return Err(Error::MechanismParamInvalid);
    }
    Ok(())
}

/// Ed25519ctx signature of `message` under `context`.
pub(crate) fn ctx_sign(
    seed: &[u8; KEY_LEN],
    public: &[u8; KEY_LEN],
    message: &[u8],
    context: &[u8],
) -> Result<[u8; SIGNATURE_LEN]> {
    ctx_context(context)?;
    let key = private_key(seed, public);
    let mut sig = [0u8; SIGNATURE_LEN];
    // SAFETY: every pointer is to a live Rust buffer of the length passed or fixed by
    // aws-lc's header (64-byte signature out, 64-byte private key).
    let ok = unsafe {
        sys::ED25519ctx_sign(
            sig.as_mut_ptr(),
            message.as_ptr(),
            message.len(),
            key.as_ptr(),
            context.as_ptr(),
            context.len(),
        )
    };
    if ok != 1 {
        return Err(Error::Internal("Ed25519ctx signing"));
    }
    Ok(sig)
}

/// Verifies an Ed25519ctx signature.
pub(crate) fn ctx_verify(
    public: &[u8; KEY_LEN],
    message: &[u8],
    sig: &[u8],
    context: &[u8],
) -> Result<()> {
    ctx_context(context)?;
    let sig = signature(sig)?;
    // SAFETY: live Rust buffers of the lengths passed or fixed by aws-lc's header.
    let ok = unsafe {
        sys::ED25519ctx_verify(
            message.as_ptr(),
            message.len(),
            sig.as_ptr(),
            public.as_ptr(),
            context.as_ptr(),
            context.len(),
        )
    };
    if ok != 1 {
        return Err(Error::SignatureInvalid);
    }
    Ok(())
}

/// Ed25519ph signature of a message whose SHA-512 is `digest`, under `context` (0 to
/// 255 bytes).
pub(crate) fn ph_sign_digest(
    seed: &[u8; KEY_LEN],
    public: &[u8; KEY_LEN],
    digest: &[u8; DIGEST_LEN],
    context: &[u8],
) -> Result<[u8; SIGNATURE_LEN]> {
    ph_context(context)?;
    let key = private_key(seed, public);
    let mut sig = [0u8; SIGNATURE_LEN];
    // SAFETY: live Rust buffers of the lengths passed or fixed by aws-lc's header
    // (64-byte signature out, 64-byte digest, 64-byte private key).
    let ok = unsafe {
        sys::ED25519ph_sign_digest(
            sig.as_mut_ptr(),
            digest.as_ptr(),
            key.as_ptr(),
            context.as_ptr(),
            context.len(),
        )
    };
    if ok != 1 {
        return Err(Error::Internal("Ed25519ph signing"));
    }
    Ok(sig)
}

/// Verifies an Ed25519ph signature of a message whose SHA-512 is `digest`.
pub(crate) fn ph_verify_digest(
    public: &[u8; KEY_LEN],
    digest: &[u8; DIGEST_LEN],
    sig: &[u8],
    context: &[u8],
) -> Result<()> {
    ph_context(context)?;
    let sig = signature(sig)?;
    // SAFETY: live Rust buffers of the lengths fixed by aws-lc's header.
    let ok = unsafe {
        sys::ED25519ph_verify_digest(
            digest.as_ptr(),
            sig.as_ptr(),
            public.as_ptr(),
            context.as_ptr(),
            context.len(),
        )
    };
    if ok != 1 {
        return Err(Error::SignatureInvalid);
    }
    Ok(())
}
