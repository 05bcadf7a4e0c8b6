//! AES-CMAC (NIST SP 800-38B, RFC 4493; `CKM_AES_CMAC` and `CKM_AES_CMAC_GENERAL`), by
//! aws-lc-rs for all three key sizes, one-shot or streaming.

use aws_lc_rs::cmac;
use subtle::ConstantTimeEq;

use super::BLOCK_LEN;
use crate::error::{Error, Result};

/// A CMAC computation over data given in parts, for `C_SignUpdate`/`C_VerifyUpdate`.
pub(crate) struct Cmac {
    context: cmac::Context,
}

impl std::fmt::Debug for Cmac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cmac(..)")
    }
}

impl Cmac {
    /// Starts a CMAC under `key` (16, 24 or 32 bytes, else `KeySizeRange`).
    pub(crate) fn new(key: &[u8]) -> Result<Cmac> {
        let algorithm = match key.len() {
            16 => cmac::AES_128,
            24 => cmac::AES_192,
            32 => cmac::AES_256,
            _ => return Err(Error::KeySizeRange),
        };
        let key = cmac::Key::new(algorithm, key)
            .map_err(|_| Error::Internal("aws-lc-rs refused an AES-CMAC key"))?;
        Ok(Cmac {
            context: cmac::Context::with_key(&key),
        })
    }

    pub(crate) fn update(&mut self, data: &[u8]) -> Result<()> {
        self.context
            .update(data)
            .map_err(|_| Error::Internal("AES-CMAC update failed"))
    }

    /// The full 16-byte MAC.
    pub(crate) fn finalize(self) -> Result<[u8; BLOCK_LEN]> {
        let tag = self
            .context
            .sign()
            .map_err(|_| Error::Internal("AES-CMAC failed"))?;
        tag.as_ref()
            .try_into()
            .map_err(|_| Error::Internal("AES-CMAC tag is not one block"))
    }

    /// Checks `mac`, which may be the MAC truncated to its first 1..=16 bytes
    /// (`CKM_AES_CMAC_GENERAL`): another length is `SignatureLenRange`, a mismatch
    /// `SignatureInvalid`. The comparison takes constant time.
    pub(crate) fn verify(self, mac: &[u8]) -> Result<()> {
        if mac.is_empty() || mac.len() > BLOCK_LEN {
            return Err(Error::SignatureLenRange);
        }
        let full = self.finalize()?;
        if bool::from(full[..mac.len()].ct_eq(mac)) {
            Ok(())
        } else {
            Err(Error::SignatureInvalid)
        }
    }
}

/// The 16-byte AES-CMAC of `data`.
#[cfg(test)] // used by the tests only
pub(crate) fn cmac(key: &[u8], data: &[u8]) -> Result<[u8; BLOCK_LEN]> {
    let mut mac = Cmac::new(key)?;
    mac.update(data)?;
    mac.finalize()
}

/// Checks a (possibly truncated) AES-CMAC of `data`; see [`Cmac::verify`].
#[cfg(test)] // used by the tests only
pub(crate) fn cmac_verify(key: &[u8], data: &[u8], mac: &[u8]) -> Result<()> {
    let mut cmac = Cmac::new(key)?;
    cmac.update(data)?;
    cmac.verify(mac)
}
