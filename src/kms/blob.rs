//! The CiphertextBlob of Encrypt/Decrypt for symmetric keys (AES_256, SM4): it names the
//! key that made it, so Decrypt needs nothing else, and binds that name to the
//! ciphertext, so no other key decrypts it, even one holding the same material
//! (kms-docs 000: "any Data or Data Key encrypted by one CMK cannot be decrypted by
//! another CMK").
//!
//! Version 1: `version (1 byte, 0x01) || KeyId (36 ASCII bytes) || IV (12) ||
//! ciphertext || tag (16)`, where ciphertext and tag are GCM (AES-256-GCM or SM4-GCM, by
//! the key's spec) with the 37-byte header `version || KeyId` as additional
//! authenticated data. Changing the version or the KeyId changes the AAD, so the tag
//! fails; naming another key makes that key check it against its own KeyId.
//!
//! Blobs written before version 1 (`IV || ciphertext || tag`, empty AAD) are refused: they
//! carry no version byte, so nothing tells them from a damaged blob. This module does
//! the encoding only; the cipher runs in the token (PKCS#11 semantics) and must not be
//! named here.

use std::fmt;

use super::key::KeyId;

/// The version this module writes and reads.
pub const VERSION: u8 = 1;
/// GCM IV length.
pub const IV_LEN: usize = 12;
/// GCM tag length.
pub const TAG_LEN: usize = 16;
const KEY_ID_LEN: usize = 36;
const HEADER_LEN: usize = 1 + KEY_ID_LEN;

/// Why a blob cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobError {
    /// Too short to hold a header, an IV and a tag.
    Truncated,
    /// The first byte is not a version this module reads.
    UnknownVersion(u8),
    /// The KeyId field is not a KeyId.
    BadKeyId,
}

impl fmt::Display for BlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobError::Truncated => f.write_str("the CiphertextBlob is too short"),
            BlobError::UnknownVersion(v) => write!(
                f,
                "the CiphertextBlob has format version {v}; kmshsm reads version {VERSION} \
                 (blobs written before version 1 name no key and are refused, see docs/cli.md)"
            ),
            BlobError::BadKeyId => f.write_str("the CiphertextBlob names no valid KeyId"),
        }
    }
}

impl std::error::Error for BlobError {}

/// A parsed version-1 blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiphertextBlob {
    pub key_id: KeyId,
    pub iv: [u8; IV_LEN],
    /// Ciphertext followed by the tag.
    pub sealed: Vec<u8>,
}

/// The additional authenticated data of a blob made by `key_id`: `version || KeyId`.
pub fn aad(key_id: &KeyId) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN);
    out.push(VERSION);
    out.extend_from_slice(key_id.as_str().as_bytes());
    out
}

impl CiphertextBlob {
    /// The blob's bytes: `aad(key_id) || IV || ciphertext || tag`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = aad(&self.key_id);
        out.extend_from_slice(&self.iv);
        out.extend_from_slice(&self.sealed);
        out
    }

    /// Reads a blob. The tag is not checked here: that is the key's job, with
    /// `aad(&blob.key_id)`.
    pub fn parse(bytes: &[u8]) -> Result<CiphertextBlob, BlobError> {
        let (&version, rest) = bytes.split_first().ok_or(BlobError::Truncated)?;
        if version != VERSION {
            return Err(BlobError::UnknownVersion(version));
        }
        if rest.len() < KEY_ID_LEN + IV_LEN + TAG_LEN {
            return Err(BlobError::Truncated);
        }
        let (id, rest) = rest.split_at(KEY_ID_LEN);
        let key_id = KeyId::from_bytes(id).map_err(|_| BlobError::BadKeyId)?;
        let (iv_bytes, sealed) = rest.split_at(IV_LEN);
        let mut iv = [0u8; IV_LEN];
        iv.copy_from_slice(iv_bytes);
        Ok(CiphertextBlob {
            key_id,
            iv,
            sealed: sealed.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob() -> CiphertextBlob {
        CiphertextBlob {
            key_id: KeyId::generate(),
            iv: [3; IV_LEN],
            sealed: vec![5; 4 + TAG_LEN],
        }
    }

    #[test]
    fn a_blob_round_trips_and_starts_with_its_aad() {
        let b = blob();
        let bytes = b.encode();
        assert_eq!(bytes.len(), 1 + 36 + 12 + 4 + 16);
        assert_eq!(bytes[0], VERSION);
        assert!(bytes.starts_with(&aad(&b.key_id)));
        assert_eq!(&bytes[1..37], b.key_id.as_str().as_bytes());
        assert_eq!(CiphertextBlob::parse(&bytes).unwrap(), b);
    }

    #[test]
    fn the_aad_differs_between_keys() {
        let (a, b) = (KeyId::generate(), KeyId::generate());
        assert_ne!(aad(&a), aad(&b));
        assert_eq!(aad(&a).len(), 37);
        assert_eq!(aad(&a)[0], 1);
    }

    #[test]
    fn other_versions_and_old_blobs_are_refused() {
        let mut bytes = blob().encode();
        for v in [0u8, 2, 0xff] {
            bytes[0] = v;
            assert_eq!(
                CiphertextBlob::parse(&bytes),
                Err(BlobError::UnknownVersion(v))
            );
        }
        // A pre-version-1 blob: 12-byte IV || ciphertext || tag, the IV's first byte random.
        let old = [&[0x9cu8; 12][..], &[0; 20]].concat();
        assert_eq!(
            CiphertextBlob::parse(&old),
            Err(BlobError::UnknownVersion(0x9c))
        );
        assert!(BlobError::UnknownVersion(0)
            .to_string()
            .contains("before version 1"));
    }

    #[test]
    fn short_blobs_and_bad_key_ids_are_refused() {
        let bytes = blob().encode();
        assert_eq!(CiphertextBlob::parse(&[]), Err(BlobError::Truncated));
        let shortest = 1 + 36 + IV_LEN + TAG_LEN;
        assert!(CiphertextBlob::parse(&bytes[..shortest]).is_ok());
        for n in 1..shortest {
            assert_eq!(
                CiphertextBlob::parse(&bytes[..n]),
                Err(BlobError::Truncated),
                "{n}"
            );
        }
        let mut b = bytes.clone();
        b[5] = b'G';
        assert_eq!(CiphertextBlob::parse(&b), Err(BlobError::BadKeyId));
        let mut b = bytes;
        b[9] = b'_';
        assert_eq!(CiphertextBlob::parse(&b), Err(BlobError::BadKeyId));
    }
}
