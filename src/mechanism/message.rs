//! PKCS#11 3.0 message-based AEAD (§5.x `C_MessageEncryptInit` ... `C_MessageDecryptFinal`):
//! the per-message parameters as safe values, the AEAD a mechanism offers for them, and
//! the IV generator of one message-encryption operation (`CK_GENERATOR_FUNCTION`).
//!
//! IV rules (docs/security.md, "Message-based AEAD"):
//! - `CKG_NO_GENERATE`: the caller's IV is used as given. The specification allows it for
//!   encryption, and the suites and TLS-style callers rely on it; an IV that this operation
//!   used within its last `RECENT_IVS` messages is refused (`CKR_MECHANISM_PARAM_INVALID`),
//!   which catches a caller that forgets to change it, not every reuse.
//! - `CKG_GENERATE_COUNTER`: the bits after the `ulIvFixedBits` fixed ones are a big-endian
//!   counter that starts at zero with each `C_MessageEncryptInit` and is never reused
//!   within the operation; when it is used up, further messages are refused.
//! - `CKG_GENERATE` and `CKG_GENERATE_RANDOM`: the free bits are random; at least 64 free
//!   bits are required so that random IVs do not collide in practice.
//!
//! In every generated case the whole IV is written back to the caller's `pIv`. Decryption
//! always uses the caller's IV as given, whatever generator the parameter names.
//! This module must not touch raw pointers or sessions.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use crate::ck::*;
use zeroize::Zeroizing;

use super::aes_key;
use crate::crypto::aes;
use crate::crypto::hash::HashAlg;
use crate::error::{Error, Result};
use crate::object::key::Key;

/// How many recent IVs of one operation a caller-chosen IV is compared against.
pub(crate) const RECENT_IVS: usize = 1024;
/// The most input one message may collect through `Begin`/`Next` (and its AAD): 256 MiB.
pub(crate) const MESSAGE_CAP: usize = super::buffered::BULK_CAP;
/// The fewest free (random) IV bits `CKG_GENERATE` and `CKG_GENERATE_RANDOM` accept.
pub(crate) const MIN_RANDOM_BITS: u64 = 64;

/// One message's parameter (`CK_GCM_MESSAGE_PARAMS`), as read at the C boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageParams {
    /// The caller's `pIv` contents: the IV (decryption, `CKG_NO_GENERATE`) or the fixed part.
    pub iv: Vec<u8>,
    pub iv_fixed_bits: u64,
    pub generator: CK_GENERATOR_FUNCTION,
    pub tag_bits: u64,
    /// The tag read from `pTag` (decryption only; empty for encryption).
    pub tag: Vec<u8>,
}

impl MessageParams {
    /// The tag length in bytes; whether it is one the AEAD takes is the AEAD's to say.
    pub fn tag_len(&self) -> Result<usize> {
        if self.tag_bits == 0 || self.tag_bits % 8 != 0 || self.tag_bits > 128 {
            return Err(Error::MechanismParamInvalid);
        }
        usize::try_from(self.tag_bits / 8).map_err(|_| Error::MechanismParamInvalid)
    }
}

/// An AEAD keyed for one message-based operation.
pub trait Aead: Send {
    /// Checks IV and tag lengths before anything is computed.
    fn check(&self, iv_len: usize, tag_bits: u64) -> Result<()>;
    /// Encrypts one message: (ciphertext, tag of `tag_bits / 8` bytes).
    fn seal(
        &self,
        iv: &[u8],
        aad: &[u8],
        data: &[u8],
        tag_bits: u64,
    ) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>)>;
    /// Decrypts and authenticates one message; a tag that does not verify is
    /// `EncryptedDataInvalid` and yields no plaintext.
    fn open(
        &self,
        iv: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8],
        tag_bits: u64,
    ) -> Result<Zeroizing<Vec<u8>>>;
}

/// AES-GCM (`CKM_AES_GCM`) for messages: the same primitive as `C_Encrypt`'s, its tag
/// given separately.
pub(crate) struct AesGcm(Arc<Key>);

impl std::fmt::Debug for AesGcm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AesGcm")
    }
}

/// The message AEAD of an AES key (type and size checked now).
pub(crate) fn aes_gcm(key: &Arc<Key>) -> Result<Box<dyn Aead>> {
    aes_key(key)?;
    Ok(Box::new(AesGcm(Arc::clone(key))))
}

impl Aead for AesGcm {
    fn check(&self, iv_len: usize, tag_bits: u64) -> Result<()> {
        let tag_bits = usize::try_from(tag_bits).map_err(|_| Error::MechanismParamInvalid)?;
        // An empty message under a throwaway IV checks key, IV and tag as the real one will.
        let iv = vec![0u8; iv_len];
        aes::gcm_encrypt(aes_key(&self.0)?, &iv, &[], &[], tag_bits).map(|_| ())
    }
    fn seal(
        &self,
        iv: &[u8],
        aad: &[u8],
        data: &[u8],
        tag_bits: u64,
    ) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>)> {
        let bits = usize::try_from(tag_bits).map_err(|_| Error::MechanismParamInvalid)?;
        let mut out = Zeroizing::new(aes::gcm_encrypt(aes_key(&self.0)?, iv, aad, data, bits)?);
        let tag = out.split_off(data.len());
        Ok((out, tag))
    }
    fn open(
        &self,
        iv: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8],
        tag_bits: u64,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let bits = usize::try_from(tag_bits).map_err(|_| Error::MechanismParamInvalid)?;
        if tag.len() * 8 != bits {
            return Err(Error::MechanismParamInvalid);
        }
        let mut joined = Zeroizing::new(Vec::with_capacity(ciphertext.len() + tag.len()));
        joined.extend_from_slice(ciphertext);
        joined.extend_from_slice(tag);
        aes::gcm_decrypt(aes_key(&self.0)?, iv, aad, &joined, bits)
    }
}

/// The IV state of one message-encryption operation.
#[derive(Debug, Default)]
pub(crate) struct IvGenerator {
    /// The next counter value for `CKG_GENERATE_COUNTER`.
    counter: u64,
    /// The counter wrapped (or reached the end of a field of 64 bits or more).
    counter_used_up: bool,
    /// The IV length and fixed bits of the operation's first counter message. Later
    /// counter messages must keep them: with fewer fixed bits the counter would reach
    /// bits an earlier message held fixed, and repeat its IV.
    counter_layout: Option<(usize, u64)>,
    /// The operation's last [`RECENT_IVS`] IVs, by [`IvId`]: oldest first, and as a set.
    recent: VecDeque<IvId>,
    recent_set: HashSet<IvId>,
}

/// An IV as the reuse guard remembers it: its SHA-256. A caller may name IVs of up to a
/// GiB; kept whole, the last [`RECENT_IVS`] of them could hold a thousand times that.
type IvId = [u8; 32];

fn iv_id(iv: &[u8]) -> IvId {
    let mut id = [0u8; 32];
    id.copy_from_slice(HashAlg::Sha256.hash(iv).as_ref());
    id
}

impl IvGenerator {
    /// The IV for the next encrypted message under `p`. Nothing is consumed on error,
    /// except a counter value whose IV the operation already used (a caller's IV the
    /// counter reached): it is skipped, so that a retry gets the next one.
    pub(crate) fn next(&mut self, p: &MessageParams) -> Result<Vec<u8>> {
        let total = (p.iv.len() as u64) * 8;
        if p.iv.is_empty() {
            return Err(Error::MechanismParamInvalid);
        }
        let iv = match p.generator {
            CKG_NO_GENERATE => p.iv.clone(),
            CKG_GENERATE_COUNTER => {
                if p.iv_fixed_bits >= total {
                    return Err(Error::MechanismParamInvalid);
                }
                let free = total - p.iv_fixed_bits;
                if self.counter_used_up
                    || self
                        .counter_layout
                        .is_some_and(|l| l != (p.iv.len(), p.iv_fixed_bits))
                {
                    return Err(Error::MechanismParamInvalid);
                }
                let value = self.counter;
                let mut generated = vec![0u8; p.iv.len()];
                let be = value.to_be_bytes();
                let n = be.len().min(generated.len());
                let at = generated.len() - n;
                generated[at..].copy_from_slice(&be[be.len() - n..]);
                let iv = merge(&p.iv, &generated, p.iv_fixed_bits);
                // The counter has `free` bits: it is used up once it would leave them.
                match value.checked_add(1) {
                    Some(next) if free >= 64 || next < (1u64 << free) => self.counter = next,
                    _ => self.counter_used_up = true,
                }
                self.counter_layout = Some((p.iv.len(), p.iv_fixed_bits));
                iv
            }
            CKG_GENERATE | CKG_GENERATE_RANDOM => {
                if p.iv_fixed_bits > total || total - p.iv_fixed_bits < MIN_RANDOM_BITS {
                    return Err(Error::MechanismParamInvalid);
                }
                let mut random = Zeroizing::new(vec![0u8; p.iv.len()]);
                crate::crypto::rand::random_fill(&mut random)?;
                merge(&p.iv, &random, p.iv_fixed_bits)
            }
            _ => return Err(Error::MechanismParamInvalid),
        };
        // An IV the operation used recently is refused (a counter value that reached one
        // stays consumed: the retry gets the next).
        let id = iv_id(&iv);
        if !self.recent_set.insert(id) {
            return Err(Error::MechanismParamInvalid);
        }
        self.recent.push_back(id);
        self.forget_the_oldest();
        Ok(iv)
    }

    fn forget_the_oldest(&mut self) {
        while self.recent.len() > RECENT_IVS {
            if let Some(old) = self.recent.pop_front() {
                self.recent_set.remove(&old);
            }
        }
    }
}

/// The first `fixed_bits` bits (most significant first) of `fixed`, the rest of `free`.
fn merge(fixed: &[u8], free: &[u8], fixed_bits: u64) -> Vec<u8> {
    fixed
        .iter()
        .zip(free)
        .enumerate()
        .map(|(i, (f, g))| {
            let kept = fixed_bits.saturating_sub(8 * i as u64).min(8) as u32;
            // The top `kept` bits of this byte come from the fixed part.
            let mask = (0xffu16 << (8 - kept)) as u8;
            (f & mask) | (g & !mask)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(iv: &[u8], fixed: u64, generator: CK_GENERATOR_FUNCTION) -> MessageParams {
        MessageParams {
            iv: iv.to_vec(),
            iv_fixed_bits: fixed,
            generator,
            tag_bits: 128,
            tag: Vec::new(),
        }
    }

    #[test]
    fn counter_keeps_the_fixed_bits_and_counts_in_the_rest() {
        let mut g = IvGenerator::default();
        let p = params(&[0xab, 0xcd, 0xff, 0xff], 12, CKG_GENERATE_COUNTER);
        assert_eq!(g.next(&p).unwrap(), [0xab, 0xc0, 0x00, 0x00]);
        assert_eq!(g.next(&p).unwrap(), [0xab, 0xc0, 0x00, 0x01]);
    }

    #[test]
    fn counter_is_used_up_without_wrapping() {
        let mut g = IvGenerator::default();
        let p = params(&[0x80], 6, CKG_GENERATE_COUNTER);
        let ivs: Vec<_> = (0..4).map(|_| g.next(&p).unwrap()).collect();
        assert_eq!(ivs, [[0x80], [0x81], [0x82], [0x83]]);
        assert!(matches!(g.next(&p), Err(Error::MechanismParamInvalid)));
        let all = params(&[0x80], 8, CKG_GENERATE_COUNTER);
        assert!(matches!(
            IvGenerator::default().next(&all),
            Err(Error::MechanismParamInvalid)
        ));
    }

    #[test]
    fn random_needs_64_free_bits_and_keeps_the_fixed_part() {
        let mut g = IvGenerator::default();
        let p = params(&[0x5a; 12], 32, CKG_GENERATE_RANDOM);
        let iv = g.next(&p).unwrap();
        assert_eq!(iv[..4], [0x5a; 4]);
        assert_ne!(g.next(&p).unwrap(), iv);
        let short = params(&[0x5a; 12], 33, CKG_GENERATE);
        assert!(matches!(g.next(&short), Err(Error::MechanismParamInvalid)));
    }

    #[test]
    fn a_long_iv_is_remembered_whole_in_32_bytes() {
        let mut g = IvGenerator::default();
        let long = vec![7u8; 1 << 20];
        g.next(&params(&long, 0, CKG_NO_GENERATE)).unwrap();
        assert!(matches!(
            g.next(&params(&long, 0, CKG_NO_GENERATE)),
            Err(Error::MechanismParamInvalid)
        ));
        // The last byte tells IVs apart as much as the first.
        let mut other = long.clone();
        *other.last_mut().unwrap() = 8;
        g.next(&params(&other, 0, CKG_NO_GENERATE)).unwrap();
        assert_eq!(g.recent.len(), 2);
        assert_eq!(std::mem::size_of::<IvId>(), 32);
    }

    #[test]
    fn a_caller_iv_used_recently_is_refused() {
        let mut g = IvGenerator::default();
        let p = params(&[1; 12], 0, CKG_NO_GENERATE);
        g.next(&p).unwrap();
        assert!(matches!(g.next(&p), Err(Error::MechanismParamInvalid)));
        for i in 0..RECENT_IVS as u32 {
            let mut iv = [2u8; 12];
            iv[..4].copy_from_slice(&i.to_be_bytes());
            g.next(&params(&iv, 0, CKG_NO_GENERATE)).unwrap();
        }
        // Forgotten after RECENT_IVS others: the check is a guard, not a guarantee.
        g.next(&p).unwrap();
    }

    #[test]
    fn the_counter_keeps_its_layout_and_skips_an_iv_already_used() {
        let mut g = IvGenerator::default();
        let p = params(&[0xab, 0xff], 8, CKG_GENERATE_COUNTER);
        assert_eq!(g.next(&p).unwrap(), [0xab, 0x00]);
        // Fewer fixed bits, or another length, would let the counter repeat an IV.
        for other in [
            params(&[0xab, 0xff], 4, CKG_GENERATE_COUNTER),
            params(&[0xab, 0xff, 0xff], 8, CKG_GENERATE_COUNTER),
        ] {
            assert!(matches!(g.next(&other), Err(Error::MechanismParamInvalid)));
        }
        // A caller's IV the counter reaches: refused once, then the counter goes on.
        g.next(&params(&[0xab, 0x01], 0, CKG_NO_GENERATE)).unwrap();
        assert!(matches!(g.next(&p), Err(Error::MechanismParamInvalid)));
        assert_eq!(g.next(&p).unwrap(), [0xab, 0x02]);
    }
}
