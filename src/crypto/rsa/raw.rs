//! The raw RSA primitive (RSAEP/RSADP, RFC 8017 §5.1) from aws-lc, through `aws-lc-sys`.
//!
//! One of the few modules allowed `unsafe` (the list is in `lib.rs`): aws-lc-rs offers
//! RSA only with fixed hash/padding pairs, while PKCS#11 needs every pair (SHA-224
//! PKCS#1, SHA-1 PSS, OAEP labels with any hash) and a PKCS#1 v1.5 decryption with
//! implicit rejection. aws-lc does the modular exponentiation in
//! constant time, with blinding and CRT fault checks; the paddings live in safe code in
//! `padding.rs`. Nothing here looks at the data it transforms.
//!
//! It also wraps the few aws-lc `BIGNUM` operations that key generation of sizes
//! aws-lc's own generator rounds down (it makes multiples of 128 bits only) needs:
//! `Bn` and `BnCtx`. The generation algorithm itself is safe code in `keygen.rs`.

use std::ptr::NonNull;

use aws_lc_sys as sys;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// An aws-lc `RSA` object, public or private.
pub(super) struct RawRsa {
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
    pub(super) fn private_from_pkcs1(der: &[u8]) -> Result<RawRsa> {
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
    pub(super) fn public_from_pkcs1(der: &[u8]) -> Result<RawRsa> {
        // SAFETY: aws-lc reads exactly `der.len()` bytes from `der`.
        RawRsa::wrap(unsafe { sys::RSA_public_key_from_bytes(der.as_ptr(), der.len()) })
    }

    /// The modulus length in bytes.
    pub(super) fn size(&self) -> usize {
        self.size
    }

    /// RSADP: `input^d mod n`. `input` must be `size()` bytes and below the modulus;
    /// otherwise `too_large` is returned.
    pub(super) fn private_op(&self, input: &[u8], too_large: Error) -> Result<Zeroizing<Vec<u8>>> {
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
    pub(super) fn public_op(&self, input: &[u8], too_large: Error) -> Result<Vec<u8>> {
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

/// An aws-lc `BIGNUM`, wiped when dropped (key generation's primes and exponents).
pub(super) struct Bn(NonNull<sys::BIGNUM>);

// SAFETY: a BIGNUM is plain heap memory owned by this value; it is never shared.
unsafe impl Send for Bn {}

impl Drop for Bn {
    fn drop(&mut self) {
        // SAFETY: `self.0` came from BN_new and is freed exactly once here; BN_clear_free
        // zeroes the digits first.
        unsafe { sys::BN_clear_free(self.0.as_ptr()) }
    }
}

/// aws-lc's scratch space for `BIGNUM` arithmetic.
pub(super) struct BnCtx(NonNull<sys::BN_CTX>);

impl Drop for BnCtx {
    fn drop(&mut self) {
        // SAFETY: `self.0` came from BN_CTX_new and is freed exactly once here.
        unsafe { sys::BN_CTX_free(self.0.as_ptr()) }
    }
}

impl BnCtx {
    pub(super) fn new() -> Result<BnCtx> {
        // SAFETY: BN_CTX_new has no preconditions; NULL means out of memory.
        NonNull::new(unsafe { sys::BN_CTX_new() })
            .map(BnCtx)
            .ok_or(Error::Internal("aws-lc allocation"))
    }
}

/// 1 from an aws-lc call, else the error queue is cleared and `what` reported.
fn check(ret: std::os::raw::c_int, what: &'static str) -> Result<()> {
    if ret == 1 {
        Ok(())
    } else {
        // SAFETY: clears aws-lc's thread-local error queue, which this failure filled.
        unsafe { sys::ERR_clear_error() };
        Err(Error::Internal(what))
    }
}

impl Bn {
    fn new() -> Result<Bn> {
        // SAFETY: BN_new has no preconditions; NULL means out of memory.
        NonNull::new(unsafe { sys::BN_new() })
            .map(Bn)
            .ok_or(Error::Internal("aws-lc allocation"))
    }

    fn ptr(&self) -> *const sys::BIGNUM {
        self.0.as_ptr()
    }

    pub(super) fn from_u64(value: u64) -> Result<Bn> {
        let bn = Bn::new()?;
        // SAFETY: `bn` is a valid BIGNUM owned by us.
        let ret = unsafe { sys::BN_set_u64(bn.0.as_ptr(), value) };
        check(ret, "BN_set_u64")?;
        Ok(bn)
    }

    /// A random probable prime of exactly `bits` bits whose two top bits are set, so
    /// that the product of an a-bit and a b-bit such prime has exactly a + b bits.
    pub(super) fn random_prime(bits: usize) -> Result<Bn> {
        let bits = std::os::raw::c_int::try_from(bits).map_err(|_| Error::KeySizeRange)?;
        let bn = Bn::new()?;
        // SAFETY: `bn` is a valid BIGNUM; `add`, `rem` and the callback may be NULL.
        // aws-lc's BN_generate_prime_ex draws candidates with BN_RAND_TOP_TWO.
        let ret = unsafe {
            sys::BN_generate_prime_ex(
                bn.0.as_ptr(),
                bits,
                0,
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null_mut(),
            )
        };
        check(ret, "BN_generate_prime_ex")?;
        Ok(bn)
    }

    /// The number of significant bits of the absolute value.
    pub(super) fn bits(&self) -> usize {
        // SAFETY: `self` is a valid BIGNUM.
        unsafe { sys::BN_num_bits(self.ptr()) as usize }
    }

    /// `self mod w`, for a small `w` (`w` must not be 0).
    pub(super) fn mod_u64(&self, w: u64) -> Result<u64> {
        if w == 0 {
            return Err(Error::Internal("BN_mod_word by zero"));
        }
        // SAFETY: `self` is a valid BIGNUM and `w` is not zero.
        Ok(unsafe { sys::BN_mod_word(self.ptr(), w) })
    }

    /// `self - other`, possibly negative.
    pub(super) fn sub(&self, other: &Bn) -> Result<Bn> {
        let r = Bn::new()?;
        // SAFETY: all three are valid BIGNUMs; `r` is distinct from the inputs.
        let ret = unsafe { sys::BN_sub(r.0.as_ptr(), self.ptr(), other.ptr()) };
        check(ret, "BN_sub")?;
        Ok(r)
    }

    pub(super) fn mul(&self, other: &Bn, ctx: &mut BnCtx) -> Result<Bn> {
        let r = Bn::new()?;
        // SAFETY: valid BIGNUMs and context; `r` is distinct from the inputs.
        let ret = unsafe { sys::BN_mul(r.0.as_ptr(), self.ptr(), other.ptr(), ctx.0.as_ptr()) };
        check(ret, "BN_mul")?;
        Ok(r)
    }

    pub(super) fn gcd(&self, other: &Bn, ctx: &mut BnCtx) -> Result<Bn> {
        let r = Bn::new()?;
        // SAFETY: valid BIGNUMs and context; `r` is distinct from the inputs.
        let ret = unsafe { sys::BN_gcd(r.0.as_ptr(), self.ptr(), other.ptr(), ctx.0.as_ptr()) };
        check(ret, "BN_gcd")?;
        Ok(r)
    }

    /// (`self / divisor`, `self mod divisor`), the remainder non-negative.
    pub(super) fn div_rem(&self, divisor: &Bn, ctx: &mut BnCtx) -> Result<(Bn, Bn)> {
        let (q, r) = (Bn::new()?, Bn::new()?);
        // SAFETY: valid BIGNUMs and context; the outputs are distinct from the inputs
        // and from each other. BN_div fails (returns 0) on a zero divisor.
        let ret = unsafe {
            sys::BN_div(
                q.0.as_ptr(),
                r.0.as_ptr(),
                self.ptr(),
                divisor.ptr(),
                ctx.0.as_ptr(),
            )
        };
        check(ret, "BN_div")?;
        Ok((q, r))
    }

    /// `self^-1 mod modulus`; an error when there is no inverse.
    pub(super) fn mod_inverse(&self, modulus: &Bn, ctx: &mut BnCtx) -> Result<Bn> {
        let r = Bn::new()?;
        // SAFETY: valid BIGNUMs and context; `r` is distinct from the inputs. The
        // function returns `r` or NULL.
        let out =
            unsafe { sys::BN_mod_inverse(r.0.as_ptr(), self.ptr(), modulus.ptr(), ctx.0.as_ptr()) };
        if out.is_null() {
            // SAFETY: clears the thread-local error queue this failure filled.
            unsafe { sys::ERR_clear_error() };
            return Err(Error::Internal("BN_mod_inverse"));
        }
        Ok(r)
    }

    pub(super) fn cmp(&self, other: &Bn) -> std::cmp::Ordering {
        // SAFETY: both are valid BIGNUMs.
        unsafe { sys::BN_cmp(self.ptr(), other.ptr()) }.cmp(&0)
    }

    /// The absolute value, big-endian without leading zeros.
    pub(super) fn to_be_bytes(&self) -> Result<Zeroizing<Vec<u8>>> {
        // SAFETY: `self` is a valid BIGNUM.
        let len = unsafe { sys::BN_num_bytes(self.ptr()) } as usize;
        let mut out = Zeroizing::new(vec![0u8; len]);
        // SAFETY: `out` holds `len` writable bytes, exactly BN_num_bytes.
        let ret = unsafe { sys::BN_bn2bin_padded(out.as_mut_ptr(), len, self.ptr()) };
        check(ret, "BN_bn2bin_padded")?;
        Ok(out)
    }
}
