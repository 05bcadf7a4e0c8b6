//! AES-GCM (`CKM_AES_GCM`), one-shot, after NIST SP 800-38D.
//!
//! Accepted parameters:
//! - IV: any non-empty length. PKCS#11 bounds `ulIvLen` (1..=256 bytes in 2.40, up to
//!   2^32 - 1 in 3.x); that bound is the mechanism layer's to apply. 12 bytes is the
//!   recommended length and the fast one.
//! - Tag: 128, 120, 112, 104 or 96 bits, and 64 or 32 bits, the lengths SP 800-38D
//!   §5.2.1.2 permits (the last two only for its Appendix C uses). Anything else, which
//!   PKCS#11's `ulTagBits` range 0..=128 would allow, is `MechanismParamInvalid`.
//! - Data: at most 2^32 - 2 blocks (SP 800-38D §5.2.1.1).
//!
//! A 12-byte IV with a 128-bit tag goes to aws-lc-rs's AEAD. Other parameters, which that
//! API cannot take, go through [`Gcm`] here: GHASH from RustCrypto's `ghash`, the block
//! cipher and counter mode from aws-lc-rs.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{EncryptingKey, EncryptionContext};
use aws_lc_rs::iv::FixedLength;
use ghash::universal_hash::UniversalHash;
use ghash::GHash;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{ecb_encrypting_key, encrypt_block, unbound_key, BLOCK_LEN};
use crate::error::{Error, Result};

/// SP 800-38D §5.2.1.1: plaintext of at most 2^39 - 256 bits.
const MAX_DATA_LEN: u64 = ((1 << 32) - 2) * BLOCK_LEN as u64;

/// An AES key prepared for GCM with a 12-byte IV and a 16-byte tag (aws-lc-rs's AEAD): the
/// key schedule and the GHASH table are computed once, in memory aws-lc allocates and
/// wipes when it frees it (`OPENSSL_free` cleanses), so the holder keeps the schedule as
/// long as the key itself and no longer. Other IV and tag lengths take the step-by-step
/// path from the key bytes.
pub struct GcmKey(LessSafeKey);

impl std::fmt::Debug for GcmKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GcmKey(..)")
    }
}

impl GcmKey {
    /// Prepares `key` (16, 24 or 32 bytes; else `KeySizeRange`). The schedule is built on
    /// the stack before it is moved to the heap: the caller's stack needs its scrub.
    pub fn new(key: &[u8]) -> Result<GcmKey> {
        let algorithm = match key.len() {
            16 => &aead::AES_128_GCM,
            24 => &aead::AES_192_GCM,
            32 => &aead::AES_256_GCM,
            _ => return Err(Error::KeySizeRange),
        };
        let key = UnboundKey::new(algorithm, key)
            .map_err(|_| Error::Internal("aws-lc-rs refused an AES-GCM key"))?;
        Ok(GcmKey(LessSafeKey::new(key)))
    }
}

/// Checks GCM parameters as [`gcm_encrypt`] would, without computing anything: the key
/// length, a non-empty IV, and a tag length SP 800-38D permits.
pub(crate) fn gcm_check(key: &[u8], iv: &[u8], tag_bits: usize) -> Result<()> {
    check_params(key, iv, tag_bits).map(|_| ())
}

/// Whether aws-lc-rs's AEAD takes these parameters (12-byte IV, full tag).
fn aead_path(iv: &[u8], tag_len: usize) -> bool {
    iv.len() == aead::NONCE_LEN && tag_len == BLOCK_LEN
}

/// Whether a step with this IV and tag length takes aws-lc's AEAD path (a 12-byte IV and a
/// full tag), the one whose stack depth was measured; any other goes through this
/// module's own GHASH and AES code.
pub(crate) fn gcm_fast_path(iv: &[u8], tag_bits: usize) -> bool {
    aead_path(iv, tag_bits / 8)
}

/// GCM encryption: returns the ciphertext followed by the tag of `tag_bits / 8` bytes.
pub(crate) fn gcm_encrypt(
    key: &[u8],
    iv: &[u8],
    aad: &[u8],
    data: &[u8],
    tag_bits: usize,
) -> Result<Vec<u8>> {
    let tag_len = check_params(key, iv, tag_bits)?;
    if aead_path(iv, tag_len) {
        return seal(&GcmKey::new(key)?, iv, aad, data);
    }
    generic_encrypt(key, iv, aad, data, tag_len)
}

/// [`gcm_encrypt`] with the key prepared once (`prepared` must be `key`'s).
pub(crate) fn gcm_encrypt_prepared(
    prepared: &GcmKey,
    key: &[u8],
    iv: &[u8],
    aad: &[u8],
    data: &[u8],
    tag_bits: usize,
) -> Result<Vec<u8>> {
    let tag_len = check_params(key, iv, tag_bits)?;
    if aead_path(iv, tag_len) {
        return seal(prepared, iv, aad, data);
    }
    generic_encrypt(key, iv, aad, data, tag_len)
}

/// [`gcm_encrypt_prepared`] written into `out` (ciphertext, then the tag): how many bytes,
/// or `None` for parameters off aws-lc's AEAD path or an `out` of another length than the
/// result (the caller then takes `gcm_encrypt_prepared`'s vector). `out` may be the
/// caller's own memory, which another thread of the caller may be reading: aws-lc
/// encrypts `data` into it out of place (its `extra_in`), so it never holds plaintext,
/// and on a failure it is cleared.
pub(crate) fn gcm_encrypt_prepared_into(
    prepared: &GcmKey,
    key: &[u8],
    iv: &[u8],
    aad: &[u8],
    data: &[u8],
    tag_bits: usize,
    out: &mut [u8],
) -> Result<Option<usize>> {
    let tag_len = check_params(key, iv, tag_bits)?;
    let total = data.len().saturating_add(tag_len);
    if !aead_path(iv, tag_len) || out.len() != total {
        return Ok(None);
    }
    check_data_len(data.len(), || Error::DataLenRange)?;
    let sealed = prepared
        .0
        .seal_in_place_scatter(nonce(iv)?, Aad::from(aad), &mut [], data, out);
    if sealed.is_err() {
        out.fill(0);
        return Err(Error::Internal("AES-GCM seal failed"));
    }
    Ok(Some(total))
}

/// `error` is built only on refusal: an `Error` made and dropped on every call costs its
/// drop glue on the per-call path.
fn check_data_len(len: usize, error: fn() -> Error) -> Result<()> {
    if len as u64 > MAX_DATA_LEN {
        return Err(error());
    }
    Ok(())
}

/// aws-lc-rs's seal, into one buffer of the exact final size.
fn seal(key: &GcmKey, iv: &[u8], aad: &[u8], data: &[u8]) -> Result<Vec<u8>> {
    check_data_len(data.len(), || Error::DataLenRange)?;
    let mut out = Vec::with_capacity(data.len() + BLOCK_LEN);
    out.extend_from_slice(data);
    let tag = key
        .0
        .seal_in_place_separate_tag(nonce(iv)?, Aad::from(aad), &mut out)
        .map_err(|_| Error::Internal("AES-GCM seal failed"))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

fn generic_encrypt(
    key: &[u8],
    iv: &[u8],
    aad: &[u8],
    data: &[u8],
    tag_len: usize,
) -> Result<Vec<u8>> {
    check_data_len(data.len(), || Error::DataLenRange)?;
    let mut out = Vec::with_capacity(data.len() + tag_len);
    out.extend_from_slice(data);
    let gcm = Gcm::new(key, iv)?;
    gcm.ctr(&mut out)?;
    let tag = gcm.tag(aad, &out)?;
    out.extend_from_slice(&tag[..tag_len]);
    Ok(out)
}

/// GCM decryption of ciphertext followed by its tag. A tag that does not verify is
/// `EncryptedDataInvalid`, and no plaintext is returned.
pub(crate) fn gcm_decrypt(
    key: &[u8],
    iv: &[u8],
    aad: &[u8],
    data_and_tag: &[u8],
    tag_bits: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    let tag_len = check_params(key, iv, tag_bits)?;
    if aead_path(iv, tag_len) {
        return open(&GcmKey::new(key)?, iv, aad, data_and_tag);
    }
    generic_decrypt(key, iv, aad, data_and_tag, tag_len)
}

/// [`gcm_decrypt`] with the key prepared once (`prepared` must be `key`'s).
pub(crate) fn gcm_decrypt_prepared(
    prepared: &GcmKey,
    key: &[u8],
    iv: &[u8],
    aad: &[u8],
    data_and_tag: &[u8],
    tag_bits: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    let tag_len = check_params(key, iv, tag_bits)?;
    if aead_path(iv, tag_len) {
        return open(prepared, iv, aad, data_and_tag);
    }
    generic_decrypt(key, iv, aad, data_and_tag, tag_len)
}

/// [`gcm_decrypt_prepared`] written into `out` (exactly the plaintext's length): how many
/// bytes, or `None` for parameters off aws-lc's AEAD path, an `out` of another length, or
/// a ciphertext over `open_buffer::MAX` (the caller then takes `gcm_decrypt_prepared`'s
/// vector). `out` may be the caller's own memory, which another thread of the caller may
/// be reading: nothing is written there before the tag has been checked. aws-lc writes
/// the plaintext before it checks, so the ciphertext is opened out of place into this
/// thread's buffer (`open_buffer`, wiped after), and copied into `out` only once it
/// authenticated; a tag that fails leaves `out` as it was.
pub(crate) fn gcm_decrypt_prepared_into(
    prepared: &GcmKey,
    key: &[u8],
    iv: &[u8],
    aad: &[u8],
    data_and_tag: &[u8],
    tag_bits: usize,
    out: &mut [u8],
) -> Result<Option<usize>> {
    let tag_len = check_params(key, iv, tag_bits)?;
    if !aead_path(iv, tag_len) {
        return Ok(None);
    }
    let (data, tag) = split_tag(data_and_tag, tag_len)?;
    if out.len() != data.len() {
        return Ok(None);
    }
    let nonce = nonce(iv)?;
    let opened = super::open_buffer::with(data.len(), |plain| {
        prepared
            .0
            .open_separate_gather(nonce, Aad::from(aad), data, tag, plain)
            .map(|()| out.copy_from_slice(plain))
    });
    match opened {
        None => Ok(None),
        Some(Ok(())) => Ok(Some(data.len())),
        Some(Err(_)) => Err(Error::EncryptedDataInvalid),
    }
}

/// Splits ciphertext and tag, checking the lengths.
fn split_tag(data_and_tag: &[u8], tag_len: usize) -> Result<(&[u8], &[u8])> {
    let Some(data_len) = data_and_tag.len().checked_sub(tag_len) else {
        return Err(Error::EncryptedDataLenRange);
    };
    check_data_len(data_len, || Error::EncryptedDataLenRange)?;
    Ok(data_and_tag.split_at(data_len))
}

fn open(key: &GcmKey, iv: &[u8], aad: &[u8], data_and_tag: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let (data, tag) = split_tag(data_and_tag, BLOCK_LEN)?;
    let mut out = Zeroizing::new(data.to_vec());
    key.0
        .open_in_place_separate_tag(nonce(iv)?, Aad::from(aad), tag, &mut out)
        .map_err(|_| Error::EncryptedDataInvalid)?;
    Ok(out)
}

fn generic_decrypt(
    key: &[u8],
    iv: &[u8],
    aad: &[u8],
    data_and_tag: &[u8],
    tag_len: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    let (data, tag) = split_tag(data_and_tag, tag_len)?;
    let mut out = Zeroizing::new(data.to_vec());
    let gcm = Gcm::new(key, iv)?;
    let expected = gcm.tag(aad, data)?;
    if !bool::from(expected[..tag_len].ct_eq(tag)) {
        return Err(Error::EncryptedDataInvalid);
    }
    gcm.ctr(&mut out)?;
    Ok(out)
}

/// Checks key, IV and tag length; returns the tag length in bytes.
fn check_params(key: &[u8], iv: &[u8], tag_bits: usize) -> Result<usize> {
    super::cipher_algorithm(key)?;
    if iv.is_empty() {
        return Err(Error::MechanismParamInvalid);
    }
    match tag_bits {
        32 | 64 | 96 | 104 | 112 | 120 | 128 => Ok(tag_bits / 8),
        _ => Err(Error::MechanismParamInvalid),
    }
}

fn nonce(iv: &[u8]) -> Result<Nonce> {
    Nonce::try_assume_unique_for_key(iv).map_err(|_| Error::Internal("GCM nonce length"))
}

/// GCM for the parameters aws-lc-rs's AEAD does not take, step by step as SP 800-38D
/// §7.1 (encryption) and §7.2 (decryption) define it.
pub(super) struct Gcm {
    ecb: EncryptingKey,
    ctr: EncryptingKey,
    /// The hash subkey H = E(K, 0^128).
    h: Zeroizing<[u8; BLOCK_LEN]>,
    /// The pre-counter block J0.
    j0: [u8; BLOCK_LEN],
}

impl Gcm {
    pub(super) fn new(key: &[u8], iv: &[u8]) -> Result<Gcm> {
        let ecb = ecb_encrypting_key(key)?;
        let mut h = Zeroizing::new([0u8; BLOCK_LEN]);
        encrypt_block(&ecb, &mut h)?;
        let mut j0 = [0u8; BLOCK_LEN];
        if iv.len() == 12 {
            // J0 = IV || 0^31 || 1
            j0[..12].copy_from_slice(iv);
            j0[15] = 1;
        } else {
            // J0 = GHASH(IV || 0^(s+64) || [len(IV)]_64)
            let mut ghash = GHash::new(&ghash::Key::from(*h));
            ghash.update_padded(iv);
            ghash.update(&[length_block(0, iv.len())]);
            j0 = ghash.finalize().into();
        }
        let ctr = EncryptingKey::ctr(unbound_key(key)?)
            .map_err(|_| Error::Internal("aws-lc-rs refused an AES-CTR key"))?;
        Ok(Gcm { ecb, ctr, h, j0 })
    }

    /// GCTR(inc32(J0), data) in place: counter mode whose counter is the low 32 bits of
    /// the block, wrapping modulo 2^32 (§6.2). aws-lc-rs's CTR carries into all 128 bits,
    /// so the data is split where the low 32 bits would wrap and the counter restarted.
    pub(super) fn ctr(&self, data: &mut [u8]) -> Result<()> {
        let mut counter = self.j0;
        let low = u32::from_be_bytes([counter[12], counter[13], counter[14], counter[15]]);
        let low = low.wrapping_add(1);
        counter[12..].copy_from_slice(&low.to_be_bytes());
        let before_wrap = (1u64 << 32) - u64::from(low);
        let split = usize::try_from(before_wrap.saturating_mul(BLOCK_LEN as u64))
            .unwrap_or(usize::MAX)
            .min(data.len());
        let (first, rest) = data.split_at_mut(split);
        self.ctr_from(counter, first)?;
        counter[12..].copy_from_slice(&[0; 4]);
        self.ctr_from(counter, rest)
    }

    fn ctr_from(&self, counter: [u8; BLOCK_LEN], data: &mut [u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.ctr
            .less_safe_encrypt(data, EncryptionContext::Iv128(FixedLength::from(counter)))
            .map(|_| ())
            .map_err(|_| Error::Internal("AES-CTR failed"))
    }

    /// The full 16-byte tag: E(K, J0) xor GHASH(A || 0^v || C || 0^u || [len(A)]_64 ||
    /// [len(C)]_64).
    pub(super) fn tag(&self, aad: &[u8], ciphertext: &[u8]) -> Result<[u8; BLOCK_LEN]> {
        let mut ghash = GHash::new(&ghash::Key::from(*self.h));
        ghash.update_padded(aad);
        ghash.update_padded(ciphertext);
        ghash.update(&[length_block(aad.len(), ciphertext.len())]);
        let s: [u8; BLOCK_LEN] = ghash.finalize().into();
        let mut tag = self.j0;
        encrypt_block(&self.ecb, &mut tag)?;
        for (t, s) in tag.iter_mut().zip(s) {
            *t ^= s;
        }
        Ok(tag)
    }
}

/// [len(a)]_64 || [len(b)]_64, lengths in bits.
fn length_block(a_len: usize, b_len: usize) -> ghash::Block {
    let mut block = [0u8; BLOCK_LEN];
    block[..8].copy_from_slice(&(a_len as u64 * 8).to_be_bytes());
    block[8..].copy_from_slice(&(b_len as u64 * 8).to_be_bytes());
    ghash::Block::from(block)
}
