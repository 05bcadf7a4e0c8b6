//! The module's one source of randomness: aws-lc's generator (seeded and reseeded by
//! aws-lc from the operating system). Keys, nonces, salts, IVs, record ids and
//! `C_GenerateRandom` all draw from here. It must not be replaced by a faster or
//! deterministic generator outside tests, and it keeps no state of its own.

use crate::error::{Error, Result};

/// Fills `buf` with random bytes; `Error::RandomFailed` if the generator fails.
pub fn random_fill(buf: &mut [u8]) -> Result<()> {
    aws_lc_rs::rand::fill(buf).map_err(|_| Error::RandomFailed)
}
