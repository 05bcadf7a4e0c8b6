//! [`AesStream`]: AES-ECB, AES-CBC, AES-CBC with PKCS#7 padding and AES-CTR as streaming
//! ciphers, for PKCS#11's `C_EncryptUpdate`/`C_EncryptFinal` (and the decrypt pair).
//!
//! ECB and CBC keep the partial block themselves and hand aws-lc-rs only whole blocks,
//! carrying the CBC chaining value from call to call; CTR uses aws-lc-rs's own streaming
//! key, with the counter's range checked here. No input is processed by a call that fails.

use aws_lc_rs::cipher::{
    DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, StreamingEncryptingKey,
};
use aws_lc_rs::iv::FixedLength;
use subtle::{ConstantTimeEq, ConstantTimeGreater};
use zeroize::{Zeroize, Zeroizing};

use super::{unbound_key, Direction, BLOCK_LEN};
use crate::error::{Error, Result};

/// ECB, CBC (no padding), CBC with PKCS#7 padding, CTR: a streaming cipher.
pub struct AesStream {
    dir: Direction,
    mode: Mode,
}

enum Mode {
    /// ECB or CBC. `pending` holds input not yet processed: fewer than 16 bytes, or for
    /// padded decryption 1..=16 bytes once any input has arrived (the last block, whose
    /// padding only `finish` may strip).
    Block {
        /// Boxed: an aws-lc-rs block key holds both AES key schedules.
        key: Box<BlockKey>,
        /// The CBC chaining value (the IV, then the last ciphertext block); `None` for ECB.
        chain: Option<[u8; BLOCK_LEN]>,
        pkcs7_pad: bool,
        pending: Zeroizing<Vec<u8>>,
    },
    /// CTR. aws-lc-rs increments the whole 128-bit counter block; since `update` refuses
    /// any input that would carry out of the low `counter_bits`, that is the same stream
    /// PKCS#11's `ulCounterBits` describes.
    Ctr {
        key: StreamingEncryptingKey,
        /// Bytes the counter still allows before its low `counter_bits` would wrap.
        bytes_left: u128,
    },
}

enum BlockKey {
    Encrypt(EncryptingKey),
    Decrypt(DecryptingKey),
}

impl std::fmt::Debug for AesStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match &self.mode {
            Mode::Block { chain: None, .. } => "ECB",
            Mode::Block {
                pkcs7_pad: false, ..
            } => "CBC",
            Mode::Block { .. } => "CBC-PAD",
            Mode::Ctr { .. } => "CTR",
        };
        write!(f, "AesStream({mode}, {:?})", self.dir)
    }
}

impl AesStream {
    /// AES-ECB (`CKM_AES_ECB`): input must come to whole blocks by `finish`.
    pub fn ecb(key: &[u8], dir: Direction) -> Result<AesStream> {
        let unbound = unbound_key(key)?;
        let key = match dir {
            Direction::Encrypt => EncryptingKey::ecb(unbound).map(BlockKey::Encrypt),
            Direction::Decrypt => DecryptingKey::ecb(unbound).map(BlockKey::Decrypt),
        }
        .map_err(|_| Error::Internal("aws-lc-rs refused an AES-ECB key"))?;
        Ok(AesStream::block(dir, key, None, false))
    }

    /// AES-CBC (`CKM_AES_CBC`, or `CKM_AES_CBC_PAD` with `pkcs7_pad`); `iv` is 16 bytes.
    pub fn cbc(key: &[u8], iv: &[u8], dir: Direction, pkcs7_pad: bool) -> Result<AesStream> {
        let unbound = unbound_key(key)?;
        let iv: [u8; BLOCK_LEN] = iv.try_into().map_err(|_| Error::MechanismParamInvalid)?;
        let key = match dir {
            Direction::Encrypt => EncryptingKey::cbc(unbound).map(BlockKey::Encrypt),
            Direction::Decrypt => DecryptingKey::cbc(unbound).map(BlockKey::Decrypt),
        }
        .map_err(|_| Error::Internal("aws-lc-rs refused an AES-CBC key"))?;
        Ok(AesStream::block(dir, key, Some(iv), pkcs7_pad))
    }

    /// AES-CTR (`CKM_AES_CTR`): `counter_block` is the 16-byte initial counter block and
    /// `counter_bits` (1..=128, `CK_AES_CTR_PARAMS.ulCounterBits`) how many of its
    /// low-order bits count. The counter must not wrap: input that would need a block
    /// beyond the all-ones value of those bits is refused (see [`AesStream::update`]).
    pub fn ctr(
        key: &[u8],
        counter_block: &[u8],
        counter_bits: usize,
        dir: Direction,
    ) -> Result<AesStream> {
        let unbound = unbound_key(key)?;
        let block: [u8; BLOCK_LEN] = counter_block
            .try_into()
            .map_err(|_| Error::MechanismParamInvalid)?;
        if !(1..=128).contains(&counter_bits) {
            return Err(Error::MechanismParamInvalid);
        }
        let mask = u128::MAX >> (128 - counter_bits);
        let counter = u128::from_be_bytes(block) & mask;
        // Blocks left = mask - counter + 1, which only overflows (to 2^128) when all 128
        // bits count from zero; no input can reach that many bytes anyway.
        let bytes_left = (mask - counter)
            .saturating_add(1)
            .saturating_mul(BLOCK_LEN as u128);
        let context = EncryptionContext::Iv128(FixedLength::from(block));
        // CTR decryption is CTR encryption; one key type serves both directions.
        let key = StreamingEncryptingKey::less_safe_ctr(unbound, context)
            .map_err(|_| Error::Internal("aws-lc-rs refused an AES-CTR key"))?;
        Ok(AesStream {
            dir,
            mode: Mode::Ctr { key, bytes_left },
        })
    }

    fn block(
        dir: Direction,
        key: BlockKey,
        chain: Option<[u8; BLOCK_LEN]>,
        pkcs7_pad: bool,
    ) -> AesStream {
        AesStream {
            dir,
            mode: Mode::Block {
                key: Box::new(key),
                chain,
                pkcs7_pad,
                pending: Zeroizing::new(Vec::with_capacity(BLOCK_LEN)),
            },
        }
    }

    /// The error for input of a length the mode cannot take, named for the direction.
    fn len_error(&self) -> Error {
        match self.dir {
            Direction::Encrypt => Error::DataLenRange,
            Direction::Decrypt => Error::EncryptedDataLenRange,
        }
    }

    /// Processes input; returns the output available so far (whole blocks; for decryption
    /// with padding, holds back the last block).
    ///
    /// CTR: input that would take the counter's low `counter_bits` past all ones is
    /// refused whole, with `DataLenRange` when encrypting and `EncryptedDataLenRange` when
    /// decrypting, and the stream stays as it was.
    pub fn update(&mut self, input: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let len_error = self.len_error();
        match &mut self.mode {
            Mode::Ctr { key, bytes_left } => {
                let wanted = input.len() as u128;
                if wanted > *bytes_left {
                    return Err(len_error);
                }
                let mut out = Zeroizing::new(vec![0u8; input.len() + BLOCK_LEN - 1]);
                let written = key
                    .update(input, &mut out)
                    .map_err(|_| Error::Internal("AES-CTR update failed"))?
                    .written()
                    .len();
                out.truncate(written);
                *bytes_left -= wanted;
                Ok(out)
            }
            Mode::Block {
                key,
                chain,
                pkcs7_pad,
                pending,
            } => {
                let total = pending.len() + input.len();
                let ready = ready_len(total, *pkcs7_pad && self.dir == Direction::Decrypt);
                if ready == 0 {
                    pending.extend_from_slice(input);
                    return Ok(Zeroizing::new(Vec::new()));
                }
                // `ready` is a whole number of blocks and `pending` under one block (or
                // one block when held back), so `pending` is consumed whole.
                let from_input = ready.checked_sub(pending.len()).ok_or(Error::Internal(
                    "AES stream buffered more than it can process",
                ))?;
                let mut out = Zeroizing::new(Vec::with_capacity(ready));
                out.extend_from_slice(pending);
                out.extend_from_slice(&input[..from_input]);
                run_blocks(key, chain, &mut out)?;
                pending.zeroize();
                pending.extend_from_slice(&input[from_input..]);
                Ok(out)
            }
        }
    }

    /// Finishes; no-padding modes with a partial block left -> `DataLenRange` (encrypt) /
    /// `EncryptedDataLenRange` (decrypt). Padded decryption needs exactly one block left
    /// (else `EncryptedDataLenRange`) whose PKCS#7 padding is valid (else
    /// `EncryptedDataInvalid`).
    pub fn finish(mut self) -> Result<Zeroizing<Vec<u8>>> {
        let len_error = self.len_error();
        let dir = self.dir;
        let Mode::Block {
            key,
            chain,
            pkcs7_pad,
            pending,
        } = &mut self.mode
        else {
            // CTR has produced every byte already.
            return Ok(Zeroizing::new(Vec::new()));
        };
        if !*pkcs7_pad {
            return if pending.is_empty() {
                Ok(Zeroizing::new(Vec::new()))
            } else {
                Err(len_error)
            };
        }
        match dir {
            Direction::Encrypt => {
                // PKCS#7 (RFC 5652 §6.3): always 1..=16 bytes of padding, each its count.
                let pad = BLOCK_LEN - pending.len();
                let mut out = Zeroizing::new(Vec::with_capacity(BLOCK_LEN));
                out.extend_from_slice(pending);
                out.resize(BLOCK_LEN, pad as u8);
                run_blocks(key, chain, &mut out)?;
                Ok(out)
            }
            Direction::Decrypt => {
                if pending.len() != BLOCK_LEN {
                    return Err(len_error);
                }
                let mut out = Zeroizing::new(pending.to_vec());
                run_blocks(key, chain, &mut out)?;
                let pad_len = pkcs7_pad_len(&out).ok_or(Error::EncryptedDataInvalid)?;
                out.truncate(BLOCK_LEN - pad_len);
                Ok(out)
            }
        }
    }

    /// Upper bound of the output of `update(input)` for an input of `input_len` bytes,
    /// given what is buffered now. Exact for every mode.
    pub(crate) fn update_len_bound(&self, input_len: usize) -> usize {
        match &self.mode {
            Mode::Ctr { .. } => input_len,
            Mode::Block {
                pkcs7_pad, pending, ..
            } => ready_len(
                pending.len().saturating_add(input_len),
                *pkcs7_pad && self.dir == Direction::Decrypt,
            ),
        }
    }

    /// Upper bound of the output of `finish()` given what is buffered now: one block for
    /// padded encryption, up to 15 bytes for padded decryption, nothing otherwise.
    pub(crate) fn finish_len_bound(&self) -> usize {
        match &self.mode {
            Mode::Block {
                pkcs7_pad: true,
                pending,
                ..
            } => match self.dir {
                Direction::Encrypt => BLOCK_LEN,
                Direction::Decrypt => pending.len().saturating_sub(1),
            },
            _ => 0,
        }
    }

    /// The whole output for `data` in one go: `update` then `finish`.
    pub fn run(mut self, data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let mut out = self.update(data)?;
        out.extend_from_slice(&self.finish()?);
        Ok(out)
    }

    /// Upper bound of the whole output of `update(input)` then `finish()` for an input of
    /// `input_len` bytes: what a single-part `C_Encrypt`/`C_Decrypt` must make room for.
    pub(crate) fn total_len_bound(&self, input_len: usize) -> usize {
        match &self.mode {
            Mode::Ctr { .. } => input_len,
            Mode::Block {
                pkcs7_pad, pending, ..
            } => {
                let total = pending.len().saturating_add(input_len);
                match (*pkcs7_pad, self.dir) {
                    (false, _) => total / BLOCK_LEN * BLOCK_LEN,
                    (true, Direction::Encrypt) => {
                        (total / BLOCK_LEN * BLOCK_LEN).saturating_add(BLOCK_LEN)
                    }
                    // At least one byte of padding comes off.
                    (true, Direction::Decrypt) => total.saturating_sub(1),
                }
            }
        }
    }
}

/// How many of `total` bytes (buffered plus new) can be processed now: the whole blocks,
/// less the last block (possibly whole) when it may carry padding to strip later.
fn ready_len(total: usize, hold_last_block: bool) -> usize {
    if hold_last_block {
        total.saturating_sub(1) / BLOCK_LEN * BLOCK_LEN
    } else {
        total / BLOCK_LEN * BLOCK_LEN
    }
}

/// Runs ECB or CBC over whole blocks in place, advancing the CBC chaining value.
fn run_blocks(key: &BlockKey, chain: &mut Option<[u8; BLOCK_LEN]>, data: &mut [u8]) -> Result<()> {
    let Some(last_start) = data.len().checked_sub(BLOCK_LEN) else {
        return Ok(());
    };
    let failed = |_| Error::Internal("AES-ECB/CBC failed on whole blocks");
    match (key, chain) {
        (BlockKey::Encrypt(key), None) => key.encrypt(data).map(|_| ()).map_err(failed),
        (BlockKey::Decrypt(key), None) => key
            .decrypt(data, DecryptionContext::None)
            .map(|_| ())
            .map_err(failed),
        (BlockKey::Encrypt(key), Some(iv)) => {
            let context = EncryptionContext::Iv128(FixedLength::from(&*iv));
            key.less_safe_encrypt(data, context).map_err(failed)?;
            iv.copy_from_slice(&data[last_start..]);
            Ok(())
        }
        (BlockKey::Decrypt(key), Some(iv)) => {
            let mut next = [0u8; BLOCK_LEN];
            next.copy_from_slice(&data[last_start..]);
            let context = DecryptionContext::Iv128(FixedLength::from(&*iv));
            key.decrypt(data, context).map_err(failed)?;
            *iv = next;
            Ok(())
        }
    }
}

/// The PKCS#7 padding length of a decrypted last block, or `None` if the padding is
/// malformed. Examines all 16 bytes whatever their values, so the time taken does not
/// depend on where the padding goes wrong.
fn pkcs7_pad_len(block: &[u8]) -> Option<usize> {
    let last = *block.last()?;
    let mut valid = !last.ct_eq(&0) & !last.ct_gt(&(BLOCK_LEN as u8));
    for (i, byte) in block.iter().enumerate() {
        // Byte i is padding iff i >= 16 - last, i.e. last > 15 - i.
        let in_pad = last.ct_gt(&((BLOCK_LEN - 1 - i) as u8));
        valid &= !in_pad | byte.ct_eq(&last);
    }
    bool::from(valid).then_some(usize::from(last))
}
