//! The raw RSA primitive (RSAEP/RSADP, RFC 8017 §5.1) from aws-lc, through `aws-lc-sys`.
//!
//! This is the crate's second and last module allowed `unsafe` (the first is
//! `ffi::raw`): aws-lc-rs offers RSA only with fixed hash/padding pairs, while PKCS#11
//! needs every pair (SHA-224 PKCS#1, SHA-1 PSS, OAEP labels with any hash) and a PKCS#1
//! v1.5 decryption with implicit rejection. aws-lc does the modular exponentiation in
//! constant time, with blinding and CRT fault checks; the paddings live in safe code in
//! `padding.rs`. Nothing here looks at the data it transforms.

use std::ptr::NonNull;

use aws_lc_sys as sys;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// An aws-lc `RSA` object, public or private.
pub struct RawRsa {
    ptr: NonNull<sys::RSA>,
    size: usize,
}

// SAFETY: aws-lc's RSA objects may be used from several threads at once: private-key
// operations take an internal lock for their blinding and Montgomery caches, and the key
// itself is never mutated after construction (BoringSSL/aws-lc "thread safety" notes).
unsafe impl Send for RawRsa {}
// SAFETY: as above.
unsafe impl Sync for RawRsa {}

impl std::fmt::Debug for RawRsa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawRsa({} bytes)", self.size)
    }
}

impl Drop for RawRsa {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from an aws-lc constructor and is freed exactly once here;
        // RSA_free wipes the private components.
        unsafe { sys::RSA_free(self.ptr.as_ptr()) }
    }
}

impl RawRsa {
    fn wrap(ptr: *mut sys::RSA) -> Result<RawRsa> {
        let ptr = NonNull::new(ptr).ok_or(Error::KeyTypeInconsistent)?;
        // SAFETY: `ptr` is a valid RSA object owned by us.
        let size = unsafe { sys::RSA_size(ptr.as_ptr()) } as usize;
        Ok(RawRsa { ptr, size })
    }

    /// A private key from a DER RSAPrivateKey (PKCS#1), checked for consistency.
    pub fn private_from_pkcs1(der: &[u8]) -> Result<RawRsa> {
        // SAFETY: aws-lc reads exactly `der.len()` bytes from `der`.
        let key =
            RawRsa::wrap(unsafe { sys::RSA_private_key_from_bytes(der.as_ptr(), der.len()) })?;
        // SAFETY: `key.ptr` is a valid RSA object.
        if unsafe { sys::RSA_check_key(key.ptr.as_ptr()) } != 1 {
            return Err(Error::KeyTypeInconsistent);
        }
        Ok(key)
    }

    /// A public key from a DER RSAPublicKey (PKCS#1).
    pub fn public_from_pkcs1(der: &[u8]) -> Result<RawRsa> {
        // SAFETY: aws-lc reads exactly `der.len()` bytes from `der`.
        RawRsa::wrap(unsafe { sys::RSA_public_key_from_bytes(der.as_ptr(), der.len()) })
    }

    /// The modulus length in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// RSADP: `input^d mod n`. `input` must be `size()` bytes and below the modulus;
    /// otherwise `too_large` is returned.
    pub fn private_op(&self, input: &[u8], too_large: Error) -> Result<Zeroizing<Vec<u8>>> {
        if input.len() != self.size {
            return Err(too_large);
        }
        let mut out = Zeroizing::new(vec![0u8; self.size]);
        // SAFETY: `input` holds `size` readable bytes, `out` `size` writable bytes, and
        // RSA_NO_PADDING writes exactly RSA_size bytes.
        let n = unsafe {
            sys::RSA_private_decrypt(
                input.len(),
                input.as_ptr(),
                out.as_mut_ptr(),
                self.ptr.as_ptr(),
                sys::RSA_NO_PADDING as i32,
            )
        };
        // SAFETY: clears aws-lc's thread-local error queue, which this failure filled.
        unsafe { sys::ERR_clear_error() };
        if n < 0 || n as usize != self.size {
            return Err(too_large);
        }
        Ok(out)
    }

    /// RSAEP: `input^e mod n`, with the same rules as `private_op`.
    pub fn public_op(&self, input: &[u8], too_large: Error) -> Result<Vec<u8>> {
        if input.len() != self.size {
            return Err(too_large);
        }
        let mut out = vec![0u8; self.size];
        // SAFETY: as in `private_op`.
        let n = unsafe {
            sys::RSA_public_encrypt(
                input.len(),
                input.as_ptr(),
                out.as_mut_ptr(),
                self.ptr.as_ptr(),
                sys::RSA_NO_PADDING as i32,
            )
        };
        // SAFETY: clears the thread-local error queue.
        unsafe { sys::ERR_clear_error() };
        if n < 0 || n as usize != self.size {
            return Err(too_large);
        }
        Ok(out)
    }
}
