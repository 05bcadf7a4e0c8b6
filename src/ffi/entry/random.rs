//! §5.15 random number generation.
//!
//! `C_SeedRandom` accepts a seed and ignores it: the generator is the operating system's
//! (through aws-lc), which needs no seed from callers, and mixing caller bytes in would
//! add nothing. It still checks the session and the buffer, and answers `CKR_OK` (as
//! SoftHSMv2 does; clients such as the cryptoki crate's tests and pkcs11-provider's
//! PKCS11-RAND expect it).

use cryptoki_sys::*;

use super::session::lookup;
use crate::crypto::rand::random_fill;
use crate::error::Result;
use crate::ffi::raw;

/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn seed(
    session: CK_SESSION_HANDLE,
    seed: *mut CK_BYTE,
    seed_len: CK_ULONG,
) -> Result<()> {
    lookup(session)?;
    // Read for its checks (NULL with a length), then dropped unused.
    // SAFETY: the caller contract covers the seed for this call.
    unsafe { raw::in_bytes(seed, seed_len) }?;
    Ok(())
}

/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn generate(
    session: CK_SESSION_HANDLE,
    random_data: *mut CK_BYTE,
    random_len: CK_ULONG,
) -> Result<()> {
    lookup(session)?;
    // SAFETY: the caller contract makes `random_data` writable for `random_len` bytes for
    // this call.
    unsafe { raw::fill_bytes(random_data, random_len, random_fill) }
}
