//! AES key wrap: KW (RFC 3394, `CKM_AES_KEY_WRAP`) and KWP (RFC 5649,
//! `CKM_AES_KEY_WRAP_PAD` and `CKM_AES_KEY_WRAP_KWP`), both also NIST SP 800-38F.
//!
//! aws-lc-rs wraps under 128- and 256-bit key-encryption keys; it has no 192-bit key wrap,
//! so those go to RustCrypto's `aes-kw`. KWP here is RFC 5649 exactly: a 20-byte key is
//! wrapped as 20 bytes with its length in the integrity value, never zero-padded to 24
//! first as SoftHSMv2 does under `CKM_AES_KEY_WRAP_PAD` (DESIGN.md §7).

use aes_kw::{KeyInit, KwAes192, KwpAes192};
use aws_lc_rs::key_wrap::{self, AesKek, KeyWrap, KeyWrapPadded};
use zeroize::Zeroizing;

use super::cipher_algorithm;
use crate::error::{Error, Result};

/// Semiblock (half an AES block) length: the unit of KW.
const SEMIBLOCK: usize = 8;

/// The largest input either library accepts (aws-lc's bound is `INT_MAX`, less a block).
const MAX_LEN: usize = i32::MAX as usize - 16;

/// The key-encryption key, in whichever library serves its size.
enum Kek {
    AwsLc(AesKek),
    Aes192(Zeroizing<Vec<u8>>),
}

impl Kek {
    fn new(kek: &[u8]) -> Result<Kek> {
        cipher_algorithm(kek)?;
        let cipher = match kek.len() {
            16 => &key_wrap::AES_128,
            32 => &key_wrap::AES_256,
            _ => return Ok(Kek::Aes192(Zeroizing::new(kek.to_vec()))),
        };
        AesKek::new(cipher, kek)
            .map(Kek::AwsLc)
            .map_err(|_| Error::Internal("aws-lc-rs refused an AES key-wrap key"))
    }
}

fn refused(_: impl Sized) -> Error {
    Error::Internal("AES key wrap failed on input of a valid length")
}

/// RFC 3394 key wrap. `key` must be a multiple of 8 bytes and at least 16 (RFC 3394
/// §2: at least two semiblocks); otherwise `DataLenRange`. The output is 8 bytes longer.
pub(crate) fn key_wrap(kek: &[u8], key: &[u8]) -> Result<Vec<u8>> {
    let kek = Kek::new(kek)?;
    if key.len() % SEMIBLOCK != 0 || key.len() < 2 * SEMIBLOCK || key.len() > MAX_LEN {
        return Err(Error::DataLenRange);
    }
    let mut out = vec![0u8; key.len() + SEMIBLOCK];
    match kek {
        Kek::AwsLc(kek) => {
            kek.wrap(key, &mut out).map_err(refused)?;
        }
        Kek::Aes192(kek) => {
            let kw = KwAes192::new_from_slice(&kek).map_err(refused)?;
            kw.wrap_key(key, &mut out).map_err(refused)?;
        }
    }
    Ok(out)
}

/// RFC 3394 key unwrap. `wrapped` must be a multiple of 8 bytes and at least 24, else
/// `WrappedKeyLenRange`; a failed integrity check is `WrappedKeyInvalid`.
pub(crate) fn key_unwrap(kek: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let kek = Kek::new(kek)?;
    if wrapped.len() % SEMIBLOCK != 0 || wrapped.len() < 3 * SEMIBLOCK || wrapped.len() > MAX_LEN {
        return Err(Error::WrappedKeyLenRange);
    }
    let mut out = Zeroizing::new(vec![0u8; wrapped.len() - SEMIBLOCK]);
    let len = match kek {
        Kek::AwsLc(kek) => kek.unwrap(wrapped, &mut out).map(|key| key.len()),
        Kek::Aes192(kek) => {
            let kw = KwAes192::new_from_slice(&kek).map_err(refused)?;
            // Lengths were checked above, so the only failure left is integrity.
            kw.unwrap_key(wrapped, &mut out)
                .map(|key| key.len())
                .map_err(|_| aws_lc_rs::error::Unspecified)
        }
    }
    .map_err(|_| Error::WrappedKeyInvalid)?;
    out.truncate(len);
    Ok(out)
}

/// RFC 5649 key wrap with padding, for a key of any length from 1 byte (else
/// `DataLenRange`). The output is the key length rounded up to 8, plus 8.
pub fn key_wrap_pad(kek: &[u8], key: &[u8]) -> Result<Vec<u8>> {
    let kek = Kek::new(kek)?;
    if key.is_empty() || key.len() > MAX_LEN {
        return Err(Error::DataLenRange);
    }
    // aws-lc-rs asks for room for 15 bytes beyond the input; the result is shorter.
    let mut out = vec![0u8; key.len() + 15];
    let len = match kek {
        Kek::AwsLc(kek) => kek.wrap_with_padding(key, &mut out).map_err(refused)?.len(),
        Kek::Aes192(kek) => {
            let kwp = KwpAes192::new_from_slice(&kek).map_err(refused)?;
            let wrapped_len = key.len().div_ceil(SEMIBLOCK) * SEMIBLOCK + SEMIBLOCK;
            let buf = out.get_mut(..wrapped_len).ok_or_else(|| refused(()))?;
            kwp.wrap_key(key, buf).map_err(refused)?.len()
        }
    };
    out.truncate(len);
    Ok(out)
}

/// RFC 5649 key unwrap. `wrapped` must be a multiple of 8 bytes and at least 16, else
/// `WrappedKeyLenRange`; a failed integrity check (including the length indicator and the
/// zero padding, RFC 5649 §3) is `WrappedKeyInvalid`.
pub(crate) fn key_unwrap_pad(kek: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let kek = Kek::new(kek)?;
    if wrapped.len() % SEMIBLOCK != 0 || wrapped.len() < 2 * SEMIBLOCK || wrapped.len() > MAX_LEN {
        return Err(Error::WrappedKeyLenRange);
    }
    // aws-lc-rs asks for as much room as the input; `aes-kw` for exactly 8 bytes less.
    let mut out = Zeroizing::new(vec![0u8; wrapped.len()]);
    let len = match kek {
        Kek::AwsLc(kek) => kek
            .unwrap_with_padding(wrapped, &mut out)
            .map(|key| key.len()),
        Kek::Aes192(kek) => {
            let kwp = KwpAes192::new_from_slice(&kek).map_err(refused)?;
            // Lengths were checked above, so the only failure left is integrity.
            kwp.unwrap_key(wrapped, &mut out[..wrapped.len() - SEMIBLOCK])
                .map(|key| key.len())
                .map_err(|_| aws_lc_rs::error::Unspecified)
        }
    }
    .map_err(|_| Error::WrappedKeyInvalid)?;
    out.truncate(len);
    Ok(out)
}
