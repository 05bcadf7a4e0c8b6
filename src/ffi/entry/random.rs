//! §5.15 random number generation.
//!
//! Deviations: `C_SeedRandom` answers `CKR_RANDOM_SEED_NOT_SUPPORTED`: the generator is
//! the operating system's, which takes no seed from callers (allowed by §5.15).

use cryptoki_sys::*;

use super::session::lookup;
use crate::error::{Error, Result};
use crate::ffi::raw;
use crate::store::seal::random_fill;

pub fn seed(h: CK_SESSION_HANDLE, seed: *mut CK_BYTE, len: CK_ULONG) -> Result<()> {
    lookup(h)?;
    raw::in_bytes(seed, len)?;
    Err(Error::RandomSeedNotSupported)
}

pub fn generate(h: CK_SESSION_HANDLE, out: *mut CK_BYTE, len: CK_ULONG) -> Result<()> {
    lookup(h)?;
    raw::fill_bytes(out, len, random_fill)
}
