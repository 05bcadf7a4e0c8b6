//! At-rest protection: the token master key, PIN-derived wrapping keys, and AES-256-GCM
//! sealing of secret attributes.
//!
//! Each token has one random 256-bit master key. It is stored only wrapped, once under a
//! key derived from the SO PIN and once under one derived from the user PIN (Argon2id,
//! per-PIN salt and cost), so changing a PIN rewraps 32 bytes and re-encrypts nothing.
//! Sealed blobs are `nonce (12) || ciphertext || tag (16)` with caller-chosen associated
//! data that binds each blob to its token and record. This module must not log, and every
//! secret it returns is zeroized on drop.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use zeroize::Zeroizing;

// Bounds on stored KDF costs (the configuration's), so a damaged or hostile database
// cannot make a PIN check allocate gigabytes or run for minutes.
use crate::config::{
    KdfConfig, KDF_MAX_ITERATIONS as MAX_ITERATIONS, KDF_MAX_MEMORY_KIB as MAX_MEMORY_KIB,
    KDF_MAX_PARALLELISM as MAX_PARALLELISM,
};
use crate::crypto::rand::random_fill;
use crate::error::{Error, Result, StoreError};
use crate::os::kdf_memory::KdfMemory;

pub(crate) const KEY_LEN: usize = 32;
const SALT_LEN: usize = 16;
const KDF_FORMAT: u8 = 1;

/// The token master key. Zeroized on drop; never printed.
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

fn aead_key(bytes: &[u8; KEY_LEN]) -> Result<LessSafeKey> {
    let unbound =
        UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| Error::Internal("AES-256-GCM key"))?;
    Ok(LessSafeKey::new(unbound))
}

fn seal_with(key: &[u8; KEY_LEN], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    random_fill(&mut nonce)?;
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + 16);
    out.extend_from_slice(&nonce);
    let mut body = plaintext.to_vec();
    aead_key(key)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut body,
        )
        .map_err(|_| Error::Internal("AES-GCM seal"))?;
    out.extend_from_slice(&body);
    body.iter_mut().for_each(|b| *b = 0);
    Ok(out)
}

fn open_with(key: &[u8; KEY_LEN], aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN + 16 {
        return Err(StoreError::Malformed("sealed blob too short").into());
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| StoreError::Unseal)?;
    let mut buf = Zeroizing::new(body.to_vec());
    let len = aead_key(key)?
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| StoreError::Unseal)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

impl MasterKey {
    pub fn generate() -> Result<MasterKey> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        random_fill(&mut key[..])?;
        Ok(MasterKey(key))
    }

    /// Encrypts `plaintext`, binding it to `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        seal_with(&self.0, aad, plaintext)
    }

    /// Decrypts a blob made by `seal` with the same `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        open_with(&self.0, aad, sealed)
    }

    /// A 256-bit subkey for one purpose (HMAC-SHA-256 of `label` under the master key).
    pub fn derive(&self, label: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &self.0[..]);
        let tag = aws_lc_rs::hmac::sign(&key, label);
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        out.copy_from_slice(tag.as_ref());
        out
    }
}

/// The Argon2id parameters and salt of one stored PIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PinKdf {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    pub salt: [u8; SALT_LEN],
}

impl PinKdf {
    /// Fresh parameters for a new PIN: the configured cost and a random salt.
    pub(crate) fn fresh(cost: &KdfConfig) -> Result<PinKdf> {
        let mut salt = [0u8; SALT_LEN];
        random_fill(&mut salt)?;
        Ok(PinKdf {
            memory_kib: cost.memory_kib,
            iterations: cost.iterations,
            parallelism: cost.parallelism,
            salt,
        })
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = vec![KDF_FORMAT];
        for v in [self.memory_kib, self.iterations, self.parallelism] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.salt);
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<PinKdf> {
        let bad = || Error::from(StoreError::Malformed("PIN KDF record"));
        if bytes.len() != 1 + 12 + SALT_LEN || bytes[0] != KDF_FORMAT {
            return Err(bad());
        }
        let word = |i: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&bytes[1 + 4 * i..5 + 4 * i]);
            u32::from_le_bytes(w)
        };
        let kdf = PinKdf {
            memory_kib: word(0),
            iterations: word(1),
            parallelism: word(2),
            salt: bytes[13..].try_into().map_err(|_| bad())?,
        };
        let sane = (1..=MAX_PARALLELISM).contains(&kdf.parallelism)
            && (1..=MAX_ITERATIONS).contains(&kdf.iterations)
            && (8 * kdf.parallelism..=MAX_MEMORY_KIB).contains(&kdf.memory_kib);
        if sane {
            Ok(kdf)
        } else {
            Err(bad())
        }
    }

    /// Derives the 256-bit key that wraps the master key for this PIN.
    pub(crate) fn derive(&self, pin: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>> {
        let params = argon2::Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            Some(KEY_LEN),
        )
        .map_err(|_| Error::from(StoreError::Malformed("PIN KDF parameters")))?;
        let mut memory = KdfMemory::new(params.block_count());
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        argon
            .hash_password_into_with_memory(pin, &self.salt, &mut key[..], memory.blocks())
            .map_err(|_| Error::Internal("Argon2id derivation"))?;
        Ok(key)
    }
}

/// Wraps `master` under the key derived from `pin`, binding the result to `aad`.
pub(crate) fn wrap_master_key(
    master: &MasterKey,
    kdf: &PinKdf,
    pin: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>> {
    let kek = kdf.derive(pin)?;
    seal_with(&kek, aad, &master.0[..])
}

/// Unwraps the master key with `pin`. A wrong PIN gives `Error::PinIncorrect`. (The
/// module itself uses `unwrap_master_key_under`; this one is for the tests.)
#[cfg(test)]
pub(crate) fn unwrap_master_key(
    wrapped: &[u8],
    kdf: &PinKdf,
    pin: &[u8],
    aad: &[u8],
) -> Result<MasterKey> {
    unwrap_master_key_under(wrapped, kdf, pin, &[aad]).map(|(master, _)| master)
}

/// Unwraps the master key with `pin`, trying each of `aads` in turn with one PIN
/// derivation; gives the key and the index of the AAD it was sealed under. A wrong PIN
/// (no AAD opens it) gives `Error::PinIncorrect`.
pub(crate) fn unwrap_master_key_under(
    wrapped: &[u8],
    kdf: &PinKdf,
    pin: &[u8],
    aads: &[&[u8]],
) -> Result<(MasterKey, usize)> {
    let kek = kdf.derive(pin)?;
    for (i, aad) in aads.iter().enumerate() {
        match open_with(&kek, aad, wrapped) {
            Ok(key) => {
                let bytes: [u8; KEY_LEN] = key
                    .as_slice()
                    .try_into()
                    .map_err(|_| Error::from(StoreError::Malformed("wrapped master key length")))?;
                return Ok((MasterKey(Zeroizing::new(bytes)), i));
            }
            Err(Error::Store(StoreError::Unseal)) => continue,
            Err(other) => return Err(other),
        }
    }
    Err(Error::PinIncorrect)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: KdfConfig = KdfConfig {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn sealed_data_opens_only_with_the_same_associated_data() {
        let mk = MasterKey::generate().unwrap();
        let blob = mk.seal(b"token-a/obj-1", b"secret value").unwrap();
        assert_eq!(
            &mk.open(b"token-a/obj-1", &blob).unwrap()[..],
            b"secret value"
        );
        assert!(mk.open(b"token-a/obj-2", &blob).is_err());
        assert!(!blob.windows(12).any(|w| w == b"secret value"));
    }

    #[test]
    fn tampered_or_truncated_blob_is_refused() {
        let mk = MasterKey::generate().unwrap();
        let mut blob = mk.seal(b"a", b"xyz").unwrap();
        blob[14] ^= 1;
        assert!(mk.open(b"a", &blob).is_err());
        assert!(mk.open(b"a", &blob[..10]).is_err());
    }

    #[test]
    fn pin_derivation_matches_argon2id_computed_in_heap_memory() {
        // The huge-page working memory must not change a single output bit, or tokens
        // written before it would no longer open: compare with the crate's own
        // allocation at the default cost, with two lanes, and at a size that is not a
        // whole number of huge pages.
        for (memory_kib, iterations, parallelism) in [(19456, 2, 1), (4104, 3, 2), (64, 1, 1)] {
            let kdf = PinKdf {
                memory_kib,
                iterations,
                parallelism,
                salt: *b"per-pin salt 16B",
            };
            let params =
                argon2::Params::new(memory_kib, iterations, parallelism, Some(KEY_LEN)).unwrap();
            let mut expected = [0u8; KEY_LEN];
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                .hash_password_into(b"123456", &kdf.salt, &mut expected)
                .unwrap();
            assert_eq!(*kdf.derive(b"123456").unwrap(), expected, "m={memory_kib}");
        }
    }

    #[test]
    fn master_key_unwraps_with_the_right_pin_only() {
        let mk = MasterKey::generate().unwrap();
        let kdf = PinKdf::fresh(&CHEAP).unwrap();
        let wrapped = wrap_master_key(&mk, &kdf, b"1234", b"so").unwrap();
        let back = unwrap_master_key(&wrapped, &kdf, b"1234", b"so").unwrap();
        assert_eq!(*back.0, *mk.0);
        assert!(matches!(
            unwrap_master_key(&wrapped, &kdf, b"1235", b"so"),
            Err(Error::PinIncorrect)
        ));
    }

    #[test]
    fn kdf_record_round_trips_and_rejects_absurd_costs() {
        let kdf = PinKdf::fresh(&CHEAP).unwrap();
        assert_eq!(PinKdf::decode(&kdf.encode()).unwrap(), kdf);
        let mut huge = kdf.clone();
        huge.memory_kib = u32::MAX;
        assert!(PinKdf::decode(&huge.encode()).is_err());
        assert!(PinKdf::decode(&[]).is_err());
    }
}
