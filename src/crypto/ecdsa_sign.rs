//! ECDSA signing of a prepared hash with aws-lc's `ECDSA_do_sign`, the private key held
//! as an aws-lc `EC_KEY`.
//!
//! aws-lc-rs signs through an `EVP_PKEY_CTX` made for each signature, asks aws-lc twice
//! (the length, then the signature), has (r, s) DER-encoded and parses the DER back, and
//! returns it in a signature buffer of 4.6 KB zeroed on every call: about 0.8 µs of a
//! 15.7 µs P-256 signature on the benchmark machine (docs/performance.md, "Fifth pass").
//! Here the same aws-lc function that `EVP_PKEY_sign` ends in (constant-time scalar
//! arithmetic, nonces hedged with the key and the digest) is called once, and r and s
//! are written straight into the caller's buffer.
//!
//! The digest is taken as given: bringing a hash to the curve's length is `ec.rs`'s job.
//! This module must not hash, pad, parse signatures or know any PKCS#11.

use std::ptr::NonNull;

use aws_lc_sys as sys;

use crate::error::{Error, Result};

/// A private key on a named curve, ready for `ECDSA_do_sign`.
pub(super) struct EcdsaSigningKey {
    ptr: NonNull<sys::EC_KEY>,
    /// Bytes of each of r and s in the fixed-width signature.
    scalar_len: usize,
}

// SAFETY: the key is never changed after `from_sec1_der`, and aws-lc's functions that
// take a `const EC_KEY *` (ECDSA_do_sign among them) may run on several threads at once
// (aws-lc's thread-safety rule for const objects).
unsafe impl Send for EcdsaSigningKey {}
// SAFETY: as above.
unsafe impl Sync for EcdsaSigningKey {}

impl std::fmt::Debug for EcdsaSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EcdsaSigningKey({} bytes)", self.scalar_len)
    }
}

impl Drop for EcdsaSigningKey {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from EC_KEY_parse_private_key and is freed exactly once
        // here; aws-lc wipes the scalar as it frees it.
        unsafe { sys::EC_KEY_free(self.ptr.as_ptr()) }
    }
}

impl EcdsaSigningKey {
    /// The key in `der`, a SEC1 ECPrivateKey naming curve `nid` (the public point, when
    /// absent, is computed). aws-lc checks 0 < d < n and the point; trailing bytes, another
    /// curve or a refused key give `AttributeValueInvalid`.
    pub(super) fn from_sec1_der(der: &[u8], nid: i32, scalar_len: usize) -> Result<Self> {
        let mut cbs = sys::CBS {
            data: der.as_ptr(),
            len: der.len(),
        };
        // SAFETY: `cbs` points into `der`, which outlives the call; a null group means
        // the curve is read from the encoding. aws-lc copies what it keeps.
        let raw = unsafe { sys::EC_KEY_parse_private_key(&mut cbs, std::ptr::null()) };
        let Some(ptr) = NonNull::new(raw) else {
            return Err(refused(Error::AttributeValueInvalid));
        };
        let key = EcdsaSigningKey { ptr, scalar_len };
        // SAFETY: `key.ptr` is a valid EC_KEY; its group is never null once parsed.
        let curve =
            unsafe { sys::EC_GROUP_get_curve_name(sys::EC_KEY_get0_group(key.ptr.as_ptr())) };
        if cbs.len != 0 || curve != nid {
            return Err(Error::AttributeValueInvalid);
        }
        Ok(key)
    }

    /// The public point, uncompressed: `04 || x || y`.
    pub(super) fn public_point(&self) -> Result<Vec<u8>> {
        let mut out = vec![0u8; 1 + 2 * self.scalar_len];
        // SAFETY: `self.ptr` is a valid EC_KEY with a group and a public point (parsing
        // computes one when the encoding has none); aws-lc writes at most `out.len()`
        // bytes into `out` and returns how many (0 on failure).
        let written = unsafe {
            let key = self.ptr.as_ptr();
            sys::EC_POINT_point2oct(
                sys::EC_KEY_get0_group(key),
                sys::EC_KEY_get0_public_key(key),
                sys::point_conversion_form_t::POINT_CONVERSION_UNCOMPRESSED,
                out.as_mut_ptr(),
                out.len(),
                std::ptr::null_mut(),
            )
        };
        if written != out.len() {
            return Err(refused(Error::Internal("EC public point")));
        }
        Ok(out)
    }

    /// Signs `digest` (already the curve's digest length) into `out` as r || s, each
    /// left-padded to the scalar length; `out` must be twice that long.
    pub(super) fn sign_into(&self, digest: &[u8], out: &mut [u8]) -> Result<()> {
        let n = self.scalar_len;
        if out.len() != 2 * n {
            return Err(Error::Internal("ECDSA output of the wrong length"));
        }
        // SAFETY: `digest` is readable for its length; `self.ptr` is a valid EC_KEY that
        // aws-lc only reads.
        let sig = unsafe { sys::ECDSA_do_sign(digest.as_ptr(), digest.len(), self.ptr.as_ptr()) };
        let Some(sig) = NonNull::new(sig) else {
            return Err(refused(Error::Internal("ECDSA signing")));
        };
        let (mut r, mut s) = (std::ptr::null(), std::ptr::null());
        // SAFETY: `sig` is a valid ECDSA_SIG; get0 stores two pointers it owns, valid
        // until it is freed below. Each BN_bn2bin_padded writes exactly `n` bytes into its
        // half of `out` (fails, writing nothing, when the value does not fit).
        let written = unsafe {
            sys::ECDSA_SIG_get0(sig.as_ptr(), &mut r, &mut s);
            let (r_out, s_out) = out.split_at_mut(n);
            let ok = sys::BN_bn2bin_padded(r_out.as_mut_ptr(), n, r) == 1
                && sys::BN_bn2bin_padded(s_out.as_mut_ptr(), n, s) == 1;
            sys::ECDSA_SIG_free(sig.as_ptr());
            ok
        };
        if !written {
            return Err(refused(Error::Internal(
                "ECDSA signature wider than the curve",
            )));
        }
        Ok(())
    }
}

/// `error`, after clearing aws-lc's thread-local error queue, which the refusal filled.
fn refused(error: Error) -> Error {
    // SAFETY: touches only the calling thread's aws-lc error queue.
    unsafe { sys::ERR_clear_error() };
    error
}
