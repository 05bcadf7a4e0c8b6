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

pub(crate) fn seed(h: CK_SESSION_HANDLE, seed: *mut CK_BYTE, len: CK_ULONG) -> Result<()> {
    lookup(h)?;
    // Read for its checks (NULL with a length), then dropped unused.
    raw::in_bytes(seed, len)?;
    Ok(())
}

pub(crate) fn generate(h: CK_SESSION_HANDLE, out: *mut CK_BYTE, len: CK_ULONG) -> Result<()> {
    lookup(h)?;
    raw::fill_bytes(out, len, random_fill)
}
