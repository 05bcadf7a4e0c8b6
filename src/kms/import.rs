//! Import parameters and import tokens (GetParametersForImport / ImportKeyMaterial).
//!
//! An import token is an authenticated blob naming the target KeyId, the wrapping key
//! (its object uid), the wrapping algorithm and the expiry, 24 hours after issue. Tokens
//! are issued in layout `KMT2`:
//! `"KMT2" || key id (36) || wrapping key uid (16) || algorithm (1) || expiry (8, BE) ||
//! nonce (32) || HMAC-SHA-512 tag (64)`, 161 bytes, 216 base64 characters (Huawei's
//! `import_token` is `^[0-9a-zA-Z+/=]{200,6144}$`). The length is a 256-bit random nonce
//! and an untruncated HMAC-SHA-512 tag, not padding. The tag is under a 256-bit key
//! derived from the token master key. A fresh nonce makes every token different.
//!
//! Layout `KMT1` (16-byte nonce, HMAC-SHA-256 tag, 113 bytes), issued before, is still
//! opened: it is authenticated under the same key, and no such token lives past 24 hours
//! after an upgrade. It is never issued. This module must not know about PKCS#11.

use aws_lc_rs::hmac;
use subtle::ConstantTimeEq;

use super::clock::UnixSeconds;
use super::key::KeyId;
use crate::crypto::rand::random_fill;
use crate::error::KmsError;
use crate::vendor;

/// How long import parameters stay valid (kms-docs: 24 hours).
pub const TOKEN_LIFETIME: i64 = 24 * 60 * 60;

/// How far ahead of the clock checking an import token the clock that issued it may have
/// been (hosts sharing a token keep their clocks within this of each other).
pub const CLOCK_SKEW: i64 = 5 * 60;

/// One encoding of a token: its magic, nonce length and MAC.
struct Layout {
    magic: &'static [u8; 4],
    nonce_len: usize,
    mac: hmac::Algorithm,
    tag_len: usize,
}

/// What `seal` writes.
const CURRENT: Layout = Layout {
    magic: b"KMT2",
    nonce_len: 32,
    mac: hmac::HMAC_SHA512,
    tag_len: 64,
};

/// Issued by earlier versions; opened, never issued.
const LEGACY: Layout = Layout {
    magic: b"KMT1",
    nonce_len: 16,
    mac: hmac::HMAC_SHA256,
    tag_len: 32,
};

/// Magic, key id, wrapping key uid, algorithm, expiry: the fields before the nonce.
const FIELDS_LEN: usize = 4 + 36 + 16 + 1 + 8;

impl Layout {
    fn body_len(&self) -> usize {
        FIELDS_LEN + self.nonce_len
    }
    fn token_len(&self) -> usize {
        self.body_len() + self.tag_len
    }
}

/// The wrapping algorithms of the kms-docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WrappingAlgorithm {
    RsaesPkcs1V15,
    RsaesOaepSha1,
    RsaesOaepSha256,
    RsaAesKeyWrapSha1,
    RsaAesKeyWrapSha256,
    RsaesOaepSha256Aes256EcbPkcs7Pad,
    Sm2Pke,
    Sm2PkeSm4Ecb,
}

/// The wrapping key specs of the kms-docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrappingKeySpec {
    Rsa2048,
    EcSm2,
}

impl WrappingKeySpec {
    pub fn name(self) -> &'static str {
        match self {
            WrappingKeySpec::Rsa2048 => "RSA_2048",
            WrappingKeySpec::EcSm2 => "EC_SM2",
        }
    }
    pub fn from_name(name: &str) -> Option<WrappingKeySpec> {
        [WrappingKeySpec::Rsa2048, WrappingKeySpec::EcSm2]
            .into_iter()
            .find(|s| s.name() == name)
    }
}

impl WrappingAlgorithm {
    pub const ALL: [WrappingAlgorithm; 8] = [
        WrappingAlgorithm::RsaesPkcs1V15,
        WrappingAlgorithm::RsaesOaepSha1,
        WrappingAlgorithm::RsaesOaepSha256,
        WrappingAlgorithm::RsaAesKeyWrapSha1,
        WrappingAlgorithm::RsaAesKeyWrapSha256,
        WrappingAlgorithm::RsaesOaepSha256Aes256EcbPkcs7Pad,
        WrappingAlgorithm::Sm2Pke,
        WrappingAlgorithm::Sm2PkeSm4Ecb,
    ];

    pub fn code(self) -> u64 {
        match self {
            WrappingAlgorithm::RsaesPkcs1V15 => vendor::KMSHSM_WRAP_RSAES_PKCS1_V1_5,
            WrappingAlgorithm::RsaesOaepSha1 => vendor::KMSHSM_WRAP_RSAES_OAEP_SHA_1,
            WrappingAlgorithm::RsaesOaepSha256 => vendor::KMSHSM_WRAP_RSAES_OAEP_SHA_256,
            WrappingAlgorithm::RsaAesKeyWrapSha1 => vendor::KMSHSM_WRAP_RSA_AES_KEY_WRAP_SHA_1,
            WrappingAlgorithm::RsaAesKeyWrapSha256 => vendor::KMSHSM_WRAP_RSA_AES_KEY_WRAP_SHA_256,
            WrappingAlgorithm::RsaesOaepSha256Aes256EcbPkcs7Pad => {
                vendor::KMSHSM_WRAP_RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD
            }
            WrappingAlgorithm::Sm2Pke => vendor::KMSHSM_WRAP_SM2PKE,
            WrappingAlgorithm::Sm2PkeSm4Ecb => vendor::KMSHSM_WRAP_SM2PKE_SM4_ECB,
        }
    }

    pub fn from_code(code: u64) -> Option<WrappingAlgorithm> {
        Self::ALL.into_iter().find(|a| a.code() == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            WrappingAlgorithm::RsaesPkcs1V15 => "RSAES_PKCS1_V1_5",
            WrappingAlgorithm::RsaesOaepSha1 => "RSAES_OAEP_SHA_1",
            WrappingAlgorithm::RsaesOaepSha256 => "RSAES_OAEP_SHA_256",
            WrappingAlgorithm::RsaAesKeyWrapSha1 => "RSA_AES_KEY_WRAP_SHA_1",
            WrappingAlgorithm::RsaAesKeyWrapSha256 => "RSA_AES_KEY_WRAP_SHA_256",
            WrappingAlgorithm::RsaesOaepSha256Aes256EcbPkcs7Pad => {
                "RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD"
            }
            WrappingAlgorithm::Sm2Pke => "SM2PKE",
            WrappingAlgorithm::Sm2PkeSm4Ecb => "SM2PKE_SM4_ECB",
        }
    }

    pub fn from_name(name: &str) -> Option<WrappingAlgorithm> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The wrapping key the algorithm needs.
    pub fn wrapping_key_spec(self) -> WrappingKeySpec {
        match self {
            WrappingAlgorithm::Sm2Pke | WrappingAlgorithm::Sm2PkeSm4Ecb => WrappingKeySpec::EcSm2,
            _ => WrappingKeySpec::Rsa2048,
        }
    }
}

/// What an import token vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportToken {
    pub key_id: KeyId,
    pub wrapping_key: [u8; 16],
    pub algorithm: WrappingAlgorithm,
    pub expires_at: UnixSeconds,
}

impl ImportToken {
    /// Issues a token valid for 24 hours from `now`.
    pub fn issue(
        key_id: KeyId,
        wrapping_key: [u8; 16],
        algorithm: WrappingAlgorithm,
        now: UnixSeconds,
    ) -> ImportToken {
        ImportToken {
            key_id,
            wrapping_key,
            algorithm,
            expires_at: now.saturating_add(TOKEN_LIFETIME),
        }
    }

    /// The authenticated encoding (layout `KMT2`), with a fresh nonce.
    pub fn seal(&self, mac_key: &[u8; 32]) -> crate::error::Result<Vec<u8>> {
        let layout = &CURRENT;
        let mut out = Vec::with_capacity(layout.token_len());
        out.extend_from_slice(layout.magic);
        out.extend_from_slice(self.key_id.as_str().as_bytes());
        out.extend_from_slice(&self.wrapping_key);
        out.push(self.algorithm.code() as u8);
        out.extend_from_slice(&self.expires_at.to_be_bytes());
        let mut nonce = vec![0u8; layout.nonce_len];
        random_fill(&mut nonce)?;
        out.extend_from_slice(&nonce);
        let tag = hmac::sign(&hmac::Key::new(layout.mac, mac_key), &out);
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Checks a token's tag and expiry at `now` (layout `KMT2`, or `KMT1`).
    pub fn open(
        bytes: &[u8],
        mac_key: &[u8; 32],
        now: UnixSeconds,
    ) -> Result<ImportToken, KmsError> {
        let layout = [&CURRENT, &LEGACY]
            .into_iter()
            .find(|l| bytes.len() == l.token_len() && bytes.starts_with(l.magic))
            .ok_or(KmsError::InvalidImportToken)?;
        let (body, tag) = bytes.split_at(layout.body_len());
        let expected = hmac::sign(&hmac::Key::new(layout.mac, mac_key), body);
        if !bool::from(expected.as_ref().ct_eq(tag)) {
            return Err(KmsError::InvalidImportToken);
        }
        let key_id = KeyId::from_bytes(&body[4..40]).map_err(|_| KmsError::InvalidImportToken)?;
        let mut wrapping_key = [0u8; 16];
        wrapping_key.copy_from_slice(&body[40..56]);
        let algorithm = WrappingAlgorithm::from_code(u64::from(body[56]))
            .ok_or(KmsError::InvalidImportToken)?;
        let mut expiry = [0u8; 8];
        expiry.copy_from_slice(&body[57..FIELDS_LEN]);
        let token = ImportToken {
            key_id,
            wrapping_key,
            algorithm,
            expires_at: i64::from_be_bytes(expiry),
        };
        if now >= token.expires_at {
            return Err(KmsError::ExpiredImportToken);
        }
        // A token valid for longer than tokens are issued for was issued by a clock ahead
        // of this one (another host's, or this one's before it was set back): honoured
        // for its lifetime and `CLOCK_SKEW` more as this clock counts, it would be valid
        // for as long as that clock was ahead (review 17b).
        if token.expires_at.saturating_sub(now) > TOKEN_LIFETIME + CLOCK_SKEW {
            return Err(KmsError::InvalidImportToken);
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(now: i64) -> ImportToken {
        ImportToken::issue(
            KeyId::generate(),
            [9; 16],
            WrappingAlgorithm::RsaesOaepSha256,
            now,
        )
    }

    #[test]
    fn a_token_opens_with_its_key_until_it_expires() {
        let t = token(1_000);
        let bytes = t.seal(&[1; 32]).unwrap();
        assert_eq!(ImportToken::open(&bytes, &[1; 32], 1_000).unwrap(), t);
        assert_eq!(
            ImportToken::open(&bytes, &[1; 32], 1_000 + TOKEN_LIFETIME - 1).unwrap(),
            t
        );
        assert_eq!(
            ImportToken::open(&bytes, &[1; 32], 1_000 + TOKEN_LIFETIME),
            Err(KmsError::ExpiredImportToken)
        );
    }

    #[test]
    fn a_token_from_a_clock_ahead_by_more_than_the_skew_is_invalid() {
        let ahead = TOKEN_LIFETIME; // issued by a clock a day ahead of this one
        let bytes = token(1_000 + ahead).seal(&[1; 32]).unwrap();
        assert_eq!(
            ImportToken::open(&bytes, &[1; 32], 1_000),
            Err(KmsError::InvalidImportToken)
        );
        let bytes = token(1_000 + CLOCK_SKEW).seal(&[1; 32]).unwrap();
        assert!(ImportToken::open(&bytes, &[1; 32], 1_000).is_ok());
        let bytes = token(1_000 + CLOCK_SKEW + 1).seal(&[1; 32]).unwrap();
        assert_eq!(
            ImportToken::open(&bytes, &[1; 32], 1_000),
            Err(KmsError::InvalidImportToken)
        );
    }

    #[test]
    fn a_token_under_another_key_or_altered_is_invalid() {
        let bytes = token(0).seal(&[1; 32]).unwrap();
        assert_eq!(
            ImportToken::open(&bytes, &[2; 32], 0),
            Err(KmsError::InvalidImportToken)
        );
        for i in [0, 3, 10, 45, 56, 60, 70, 100, 120, bytes.len() - 1] {
            let mut b = bytes.clone();
            b[i] ^= 1;
            assert_eq!(
                ImportToken::open(&b, &[1; 32], 0),
                Err(KmsError::InvalidImportToken),
                "byte {i}"
            );
        }
        assert_eq!(
            ImportToken::open(&bytes[1..], &[1; 32], 0),
            Err(KmsError::InvalidImportToken)
        );
    }

    /// A token in the layout earlier versions issued (HMAC-SHA-256, 16-byte nonce).
    fn legacy(t: &ImportToken, mac_key: &[u8; 32]) -> Vec<u8> {
        let mut out = b"KMT1".to_vec();
        out.extend_from_slice(t.key_id.as_str().as_bytes());
        out.extend_from_slice(&t.wrapping_key);
        out.push(t.algorithm.code() as u8);
        out.extend_from_slice(&t.expires_at.to_be_bytes());
        out.extend_from_slice(&[7; 16]);
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, mac_key), &out);
        out.extend_from_slice(tag.as_ref());
        out
    }

    #[test]
    fn a_token_is_kmt2_and_at_least_200_base64_characters() {
        use base64::Engine;
        let bytes = token(0).seal(&[1; 32]).unwrap();
        assert_eq!(&bytes[..4], b"KMT2");
        assert_eq!(bytes.len(), 161);
        let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
        // Huawei: ^[0-9a-zA-Z+/=]{200,6144}$
        assert!(
            (200..=6144).contains(&text.len()),
            "{} characters",
            text.len()
        );
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)));
    }

    #[test]
    fn a_legacy_kmt1_token_still_opens_and_expires() {
        let t = token(1_000);
        let bytes = legacy(&t, &[1; 32]);
        assert_eq!(bytes.len(), 113);
        assert_eq!(ImportToken::open(&bytes, &[1; 32], 1_000).unwrap(), t);
        assert_eq!(
            ImportToken::open(&bytes, &[2; 32], 1_000),
            Err(KmsError::InvalidImportToken)
        );
        assert_eq!(
            ImportToken::open(&bytes, &[1; 32], 1_000 + TOKEN_LIFETIME),
            Err(KmsError::ExpiredImportToken)
        );
        // The magic selects the layout: a KMT1 body under the KMT2 name is refused, and
        // so is a KMT2 token renamed KMT1.
        let mut renamed = bytes.clone();
        renamed[3] = b'2';
        assert_eq!(
            ImportToken::open(&renamed, &[1; 32], 1_000),
            Err(KmsError::InvalidImportToken)
        );
        let mut renamed = t.seal(&[1; 32]).unwrap();
        renamed[3] = b'1';
        assert_eq!(
            ImportToken::open(&renamed, &[1; 32], 1_000),
            Err(KmsError::InvalidImportToken)
        );
    }

    #[test]
    fn every_token_is_different() {
        let t = token(0);
        assert_ne!(t.seal(&[1; 32]).unwrap(), t.seal(&[1; 32]).unwrap());
    }

    #[test]
    fn algorithm_codes_and_names_round_trip() {
        for a in WrappingAlgorithm::ALL {
            assert_eq!(WrappingAlgorithm::from_code(a.code()), Some(a));
            assert_eq!(WrappingAlgorithm::from_name(a.name()), Some(a));
        }
    }
}
