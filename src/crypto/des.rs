//! DES and Triple-DES (FIPS 46-3, NIST SP 800-67), the legacy 64-bit block ciphers, in
//! ECB and CBC (with or without PKCS#7 padding), over RustCrypto's `des` block ciphers.
//!
//! A key is 8 bytes (single DES), 16 (two-key Triple-DES: K1, K2, K1) or 24 (three-key
//! Triple-DES). Each byte's low bit is a parity bit: keys made here have odd parity, and
//! `has_odd_parity` lets the caller refuse others. Only the PKCS#11 layer's
//! `legacy_algorithms` switch lets anything reach this module; it must not know about
//! PKCS#11, and must never be used for the module's own protection of data.

use cbc::cipher::consts::U8;
use cbc::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use des::{Des, TdesEde2, TdesEde3};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The block length of DES and Triple-DES, in bytes.
pub(crate) const BLOCK_LEN: usize = 8;

/// A keyed DES or Triple-DES block cipher.
enum Keyed {
    Single(Des),
    Two(TdesEde2),
    Three(TdesEde3),
}

impl Keyed {
    fn new(key: &[u8]) -> Result<Keyed> {
        let bad = |_| Error::KeySizeRange;
        Ok(match key.len() {
            8 => Keyed::Single(Des::new_from_slice(key).map_err(bad)?),
            16 => Keyed::Two(TdesEde2::new_from_slice(key).map_err(bad)?),
            24 => Keyed::Three(TdesEde3::new_from_slice(key).map_err(bad)?),
            _ => return Err(Error::KeySizeRange),
        })
    }

    fn encrypt(&self, block: &mut Array<u8, U8>) {
        match self {
            Keyed::Single(c) => c.encrypt_block(block),
            Keyed::Two(c) => c.encrypt_block(block),
            Keyed::Three(c) => c.encrypt_block(block),
        }
    }

    fn decrypt(&self, block: &mut Array<u8, U8>) {
        match self {
            Keyed::Single(c) => c.decrypt_block(block),
            Keyed::Two(c) => c.decrypt_block(block),
            Keyed::Three(c) => c.decrypt_block(block),
        }
    }
}

/// Whether every byte of `key` has an odd number of set bits (FIPS 46-3's parity).
pub(crate) fn has_odd_parity(key: &[u8]) -> bool {
    key.iter().all(|b| b.count_ones() % 2 == 1)
}

/// Sets each byte's low bit so that the byte has odd parity.
fn set_odd_parity(key: &mut [u8]) {
    for b in key.iter_mut() {
        let high = *b & 0xfe;
        *b = high | u8::from(high.count_ones() % 2 == 0);
    }
}

/// A new random key of `len` bytes (8, 16 or 24) with odd parity, none of its DES parts
/// weak or semi-weak, and its parts distinct.
pub(crate) fn generate_key(len: usize) -> Result<Zeroizing<Vec<u8>>> {
    if !matches!(len, 8 | 16 | 24) {
        return Err(Error::KeySizeRange);
    }
    // A weak draw has probability about 2^-52; a few tries are plenty.
    for _ in 0..16 {
        let mut key = Zeroizing::new(vec![0u8; len]);
        crate::crypto::rand::random_fill(&mut key)?;
        set_odd_parity(&mut key);
        if des::weak_key_test(&key).is_ok() {
            return Ok(key);
        }
    }
    Err(Error::Internal("DES key generation drew only weak keys"))
}

/// Views `buf`, whose length the caller has checked to be a multiple of 8, as blocks.
fn blocks_mut(buf: &mut [u8]) -> &mut [Array<u8, U8>] {
    let (blocks, rest) = Array::<u8, U8>::slice_as_chunks_mut(buf);
    debug_assert!(rest.is_empty());
    blocks
}

fn check_iv(iv: &[u8]) -> Result<[u8; BLOCK_LEN]> {
    iv.try_into().map_err(|_| Error::MechanismParamInvalid)
}

/// A multi-part encryption or decryption in ECB (no IV) or CBC: whole blocks go out as
/// they come in; the last partial block (and, decrypting with padding, the last whole
/// block, which holds the padding) waits for `finish`.
pub(crate) struct DesStream {
    cipher: Keyed,
    chain: Option<[u8; BLOCK_LEN]>,
    encrypt: bool,
    pad: bool,
    pending: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for DesStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DesStream")
            .field("encrypt", &self.encrypt)
            .field("pad", &self.pad)
            .finish_non_exhaustive()
    }
}

impl DesStream {
    /// `key` of 8, 16 or 24 bytes (`KeySizeRange`), `iv` of 8 bytes for CBC
    /// (`MechanismParamInvalid`), PKCS#7 padding with `pad`.
    pub(crate) fn new(
        key: &[u8],
        iv: Option<&[u8]>,
        encrypt: bool,
        pad: bool,
    ) -> Result<DesStream> {
        Ok(DesStream {
            cipher: Keyed::new(key)?,
            chain: iv.map(check_iv).transpose()?,
            encrypt,
            pad,
            pending: Zeroizing::new(Vec::with_capacity(2 * BLOCK_LEN)),
        })
    }

    /// How many of `total` buffered bytes an update may process now.
    fn ready(&self, total: usize) -> usize {
        let whole = total - total % BLOCK_LEN;
        if !self.encrypt && self.pad && whole == total && whole > 0 {
            whole - BLOCK_LEN
        } else {
            whole
        }
    }

    /// The exact output of `update` with `input_len` more bytes.
    pub(crate) fn update_len(&self, input_len: usize) -> usize {
        self.ready(self.pending.len().saturating_add(input_len))
    }

    /// An upper bound on `finish`'s output.
    pub(crate) fn finish_len(&self) -> usize {
        if self.pad {
            BLOCK_LEN
        } else {
            0
        }
    }

    /// The output of a single-part run over `input_len` bytes: exact, except decrypting
    /// with padding, where it is an upper bound.
    pub(crate) fn total_len(&self, input_len: usize) -> usize {
        let total = self.pending.len().saturating_add(input_len);
        match (self.encrypt, self.pad) {
            (true, true) => total - total % BLOCK_LEN + BLOCK_LEN,
            _ => total,
        }
    }

    fn process(&mut self, data: &mut [u8]) {
        for block in blocks_mut(data) {
            if self.encrypt {
                if let Some(prev) = &self.chain {
                    block.iter_mut().zip(prev).for_each(|(b, p)| *b ^= p);
                }
                self.cipher.encrypt(block);
                if let Some(prev) = &mut self.chain {
                    prev.copy_from_slice(block);
                }
            } else {
                let mut this = [0u8; BLOCK_LEN];
                this.copy_from_slice(block);
                self.cipher.decrypt(block);
                if let Some(prev) = &mut self.chain {
                    block.iter_mut().zip(prev.iter()).for_each(|(b, p)| *b ^= p);
                    *prev = this;
                }
            }
        }
    }

    pub(crate) fn update(&mut self, input: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let mut all = Zeroizing::new(Vec::with_capacity(self.pending.len() + input.len()));
        all.extend_from_slice(&self.pending);
        all.extend_from_slice(input);
        let n = self.ready(all.len());
        self.pending = Zeroizing::new(all[n..].to_vec());
        all.truncate(n);
        self.process(&mut all);
        Ok(all)
    }

    /// Ends the operation: the padded last block when encrypting with padding; the last
    /// block without its checked padding when decrypting with it. A partial block left
    /// is `DataLenRange` (encrypting) or `EncryptedDataLenRange` (decrypting).
    pub(crate) fn finish(mut self) -> Result<Zeroizing<Vec<u8>>> {
        let mut last = std::mem::take(&mut self.pending);
        match (self.encrypt, self.pad) {
            (true, true) => {
                let n = BLOCK_LEN - last.len();
                // `n` is 1..=8, so it fits a byte.
                last.resize(BLOCK_LEN, n as u8);
            }
            (true, false) if !last.is_empty() => return Err(Error::DataLenRange),
            (false, true) if last.len() != BLOCK_LEN => return Err(Error::EncryptedDataLenRange),
            (false, false) if !last.is_empty() => return Err(Error::EncryptedDataLenRange),
            _ => {}
        }
        self.process(&mut last);
        if !self.encrypt && self.pad {
            let n = usize::from(last[BLOCK_LEN - 1]);
            let valid = (1..=BLOCK_LEN).contains(&n)
                && last[BLOCK_LEN - n..].iter().all(|b| usize::from(*b) == n);
            if !valid {
                return Err(Error::EncryptedDataInvalid);
            }
            last.truncate(BLOCK_LEN - n);
        }
        Ok(last)
    }
}

/// Encrypts in ECB (`iv` = `None`) or CBC, in one part. With `pad`, PKCS#7 padding of 1 to
/// 8 bytes is added; without it, `data` must be whole blocks (`DataLenRange`).
pub(crate) fn encrypt(key: &[u8], iv: Option<&[u8]>, data: &[u8], pad: bool) -> Result<Vec<u8>> {
    if !pad && data.len() % BLOCK_LEN != 0 {
        return Err(Error::DataLenRange);
    }
    let mut stream = DesStream::new(key, iv, true, pad)?;
    let mut out = stream.update(data)?;
    out.extend_from_slice(&stream.finish()?);
    Ok(std::mem::take(&mut *out))
}

/// Decrypts ECB (`iv` = `None`) or CBC in one part; `data` must be whole blocks
/// (`EncryptedDataLenRange`). With `pad`, the PKCS#7 padding is checked
/// (`EncryptedDataInvalid`) and removed.
pub(crate) fn decrypt(
    key: &[u8],
    iv: Option<&[u8]>,
    data: &[u8],
    pad: bool,
) -> Result<Zeroizing<Vec<u8>>> {
    if data.len() % BLOCK_LEN != 0 || (pad && data.is_empty()) {
        return Err(Error::EncryptedDataLenRange);
    }
    let mut stream = DesStream::new(key, iv, false, pad)?;
    let mut out = stream.update(data)?;
    out.extend_from_slice(&stream.finish()?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn des_ecb_matches_the_fips_81_example() {
        // FIPS 81, Appendix B, table B1: "Now is the time for all " under 0123456789abcdef.
        let key = hex("0123456789abcdef");
        let pt = b"Now is the time for all ";
        let ct = encrypt(&key, None, pt, false).unwrap();
        assert_eq!(ct, hex("3fa40e8a984d48156a271787ab8883f9893d51ec4b563b53"));
        assert_eq!(&decrypt(&key, None, &ct, false).unwrap()[..], pt);
    }

    #[test]
    fn des_cbc_matches_the_fips_81_example() {
        // FIPS 81, Appendix C, table C1: IV 1234567890abcdef.
        let key = hex("0123456789abcdef");
        let iv = hex("1234567890abcdef");
        let pt = b"Now is the time for all ";
        let ct = encrypt(&key, Some(&iv), pt, false).unwrap();
        assert_eq!(ct, hex("e5c7cdde872bf27c43e934008c389c0f683788499a7c05f6"));
        assert_eq!(&decrypt(&key, Some(&iv), &ct, false).unwrap()[..], pt);
    }

    #[test]
    fn two_key_triple_des_is_three_key_with_k3_equal_to_k1() {
        let k2 = hex("0123456789abcdeffedcba9876543210");
        let mut k3 = k2.clone();
        k3.extend_from_slice(&k2[..8]);
        let pt = [7u8; 16];
        assert_eq!(
            encrypt(&k2, None, &pt, false).unwrap(),
            encrypt(&k3, None, &pt, false).unwrap()
        );
    }

    #[test]
    fn padding_is_added_checked_and_removed() {
        let key = generate_key(24).unwrap();
        let iv = [9u8; 8];
        for len in 0..20 {
            let pt = vec![0x5a; len];
            let ct = encrypt(&key, Some(&iv), &pt, true).unwrap();
            assert_eq!(ct.len(), (len / 8 + 1) * 8);
            assert_eq!(&decrypt(&key, Some(&iv), &ct, true).unwrap()[..], &pt[..]);
        }
        let mut ct = encrypt(&key, None, b"abc", true).unwrap();
        ct[7] ^= 1;
        // The last block no longer decrypts to valid padding (with overwhelming odds).
        assert!(matches!(
            decrypt(&key, None, &ct, true),
            Err(Error::EncryptedDataInvalid)
        ));
    }

    #[test]
    fn a_stream_gives_whole_blocks_as_they_come_and_matches_one_part() {
        let key = generate_key(16).unwrap();
        let iv = [3u8; 8];
        let data: Vec<u8> = (0u8..37).collect();
        for pad in [false, true] {
            let data = if pad { &data[..] } else { &data[..32] };
            let whole = encrypt(&key, Some(&iv), data, pad).unwrap();
            let mut s = DesStream::new(&key, Some(&iv), true, pad).unwrap();
            let mut parts = Vec::new();
            for chunk in data.chunks(5) {
                let expected = s.update_len(chunk.len());
                let out = s.update(chunk).unwrap();
                assert_eq!(out.len(), expected);
                parts.extend_from_slice(&out);
            }
            parts.extend_from_slice(&s.finish().unwrap());
            assert_eq!(parts, whole, "pad {pad}");
            let mut d = DesStream::new(&key, Some(&iv), false, pad).unwrap();
            let mut back = Vec::new();
            for chunk in whole.chunks(8) {
                back.extend_from_slice(&d.update(chunk).unwrap());
            }
            back.extend_from_slice(&d.finish().unwrap());
            assert_eq!(back, data);
        }
    }

    #[test]
    fn bad_lengths_are_refused() {
        assert!(matches!(
            encrypt(&[1; 8], None, &[0; 7], false),
            Err(Error::DataLenRange)
        ));
        assert!(matches!(
            decrypt(&[1; 8], None, &[0; 9], false),
            Err(Error::EncryptedDataLenRange)
        ));
        assert!(matches!(
            encrypt(&[1; 12], None, &[0; 8], false),
            Err(Error::KeySizeRange)
        ));
        assert!(matches!(
            encrypt(&[1; 8], Some(&[0; 16]), &[0; 8], false),
            Err(Error::MechanismParamInvalid)
        ));
    }

    #[test]
    fn generated_keys_have_odd_parity() {
        for len in [8, 16, 24] {
            let k = generate_key(len).unwrap();
            assert_eq!(k.len(), len);
            assert!(has_odd_parity(&k));
        }
        assert!(!has_odd_parity(&hex("0000000000000000")));
        assert!(has_odd_parity(&hex("0123456789abcdef")));
        assert!(generate_key(7).is_err());
    }
}
