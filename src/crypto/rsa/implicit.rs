//! Implicit rejection for RSAES-PKCS1-v1_5 decryption (draft-irtf-cfrg-rsa-guidance,
//! §7.2 "implicit rejection"): a block whose padding is wrong decrypts to a synthetic
//! message, derived from the private key and the ciphertext, of a pseudo-random length,
//! with no error. The caller cannot tell a good padding from a bad one by the return
//! code, the output length's distribution or the time taken, which removes the
//! Bleichenbacher oracle from `C_Decrypt(CKM_RSA_PKCS)`.
//!
//! The steps, with KDK the key-derivation key and PRF an HMAC-SHA256 stream:
//! KDK = HMAC(SHA-256(I2OSP(d, k)), C); 128 candidate lengths from PRF(KDK, "length");
//! the synthetic message is the last L bytes of PRF(KDK, "message"), L the last
//! candidate (masked to the next power of two) not above k - 11.
//! This module must not know about keys or PKCS#11; it must not branch on secrets.

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq, ConstantTimeGreater};
use zeroize::Zeroizing;

use super::padding::scan_pkcs1_v15;

/// `bits / 8` bytes of HMAC-SHA256(kdk, I2OSP(i, 2) || label || I2OSP(bits, 2)) for
/// i = 0, 1, ... concatenated (the draft's PRF).
fn prf(kdk: &aws_lc_rs::hmac::Key, label: &[u8], bits: u16) -> Zeroizing<Vec<u8>> {
    let len = usize::from(bits / 8);
    let mut out = Zeroizing::new(Vec::with_capacity(len + 32));
    let mut i: u16 = 0;
    while out.len() < len {
        let mut ctx = aws_lc_rs::hmac::Context::with_key(kdk);
        ctx.update(&i.to_be_bytes());
        ctx.update(label);
        ctx.update(&bits.to_be_bytes());
        out.extend_from_slice(ctx.sign().as_ref());
        i = i.wrapping_add(1);
    }
    out.truncate(len);
    out
}

/// The synthetic length: the last of the 128 masked candidates in `candidates` that is
/// not above `max_len`, or 0 when none is; chosen without branching on the candidates.
fn synthetic_len(candidates: &[u8], max_len: u16) -> u16 {
    let mut mask = max_len;
    mask |= mask >> 1;
    mask |= mask >> 2;
    mask |= mask >> 4;
    mask |= mask >> 8;
    let mut chosen = 0u16;
    for pair in candidates.chunks_exact(2) {
        let candidate = u16::from_be_bytes([pair[0], pair[1]]) & mask;
        let fits = !candidate.ct_gt(&max_len);
        chosen.conditional_assign(&candidate, fits);
    }
    chosen
}

/// The draft's key-derivation key for one private key and ciphertext:
/// HMAC-SHA256(SHA-256(I2OSP(d, k)), C), `d_hash` being that hash.
fn kdk(d_hash: &[u8], ciphertext: &[u8]) -> aws_lc_rs::hmac::Key {
    let outer = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, d_hash);
    let kdk_bytes = Zeroizing::new(aws_lc_rs::hmac::sign(&outer, ciphertext).as_ref().to_vec());
    aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &kdk_bytes)
}

/// The secrets implicit rejection derives for one key and ciphertext: the 256 bytes
/// of candidate lengths and the k-byte synthetic message stream.
struct Substitute {
    candidates: Zeroizing<Vec<u8>>,
    message: Zeroizing<Vec<u8>>,
}

fn substitute(d_hash: &[u8], ciphertext: &[u8], k_bits: u16) -> Substitute {
    let kdk = kdk(d_hash, ciphertext);
    Substitute {
        candidates: prf(&kdk, b"length", 256 * 8),
        message: prf(&kdk, b"message", k_bits),
    }
}

/// The last `len` bytes of the real message (right-aligned in `em`) when `valid`, of
/// the synthetic one otherwise; every byte is selected, then the result is cut.
fn select(em: &[u8], synthetic: &[u8], valid: Choice, len: usize) -> Zeroizing<Vec<u8>> {
    let k = em.len();
    let mut chosen = Zeroizing::new(vec![0u8; k]);
    for (j, out) in chosen.iter_mut().enumerate() {
        let real = em.get(j).copied().unwrap_or(0);
        let fake = synthetic.get(j).copied().unwrap_or(0);
        *out = u8::conditional_select(&fake, &real, valid);
    }
    let cut = k - len.min(k);
    Zeroizing::new(chosen[cut..].to_vec())
}

/// `(k * 8, k - 11)` as the PRF takes them, for a block of `k` bytes; `None` beyond
/// 16384-bit moduli, which the module does not make.
fn sizes(k: usize) -> Option<(u16, u16)> {
    Some((
        u16::try_from(k.checked_mul(8)?).ok()?,
        u16::try_from(k.checked_sub(11)?).ok()?,
    ))
}

/// Decodes the EME-PKCS1-v1_5 block `em` (k bytes, the raw RSA output for
/// `ciphertext`) with implicit rejection, for a message of any length. `d_hash` is
/// SHA-256 of the private exponent as a k-byte big-endian string. Returns the message,
/// real or synthetic.
///
/// Only the final length becomes public, as it must (it is the output); which of the
/// two messages it belongs to does not.
pub(super) fn decode(em: &[u8], d_hash: &[u8], ciphertext: &[u8]) -> Zeroizing<Vec<u8>> {
    let Some((k_bits, max_len)) = sizes(em.len()) else {
        return Zeroizing::new(Vec::new());
    };
    let sub = substitute(d_hash, ciphertext, k_bits);
    let fallback_len = synthetic_len(&sub.candidates, max_len);
    let (valid, start) = scan_pkcs1_v15(em);
    // A valid block's message starts at `start` (at least 11), so it is at most k - 11.
    let real_len = u16::try_from(em.len().saturating_sub(start)).unwrap_or(0);
    let len = u16::conditional_select(&fallback_len, &real_len, valid);
    select(em, &sub.message, valid, usize::from(len))
}

/// The lengths an unwrap template allows the key it unwraps.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KeyLen<'a> {
    /// Exactly this many bytes (`CKA_VALUE_LEN`, or a key type of one size).
    Exact(usize),
    /// One of these (the sizes of a key type, such as AES's 16, 24 and 32 bytes).
    OneOf(&'a [usize]),
    /// Any length the block can carry (a generic secret without `CKA_VALUE_LEN`).
    Any,
}

/// Decodes the EME-PKCS1-v1_5 block `em` (the raw RSA output for `ciphertext`) as a
/// wrapped key that `want` allows, with implicit rejection; also says (as a
/// constant-time flag) whether the key is the block's real message.
///
/// A block with bad padding, or whose message has a length `want` does not allow, gives
/// a synthetic key instead, of the length `want` fixes or (for a choice) one the PRF
/// picks among those allowed: PRF(KDK, "unwrapped key") of that many bytes. The PRF's
/// input holds the output's length, so the synthetic key of a block is the same however
/// the template gives one length, and synthetic keys of different lengths are
/// unrelated (neither a prefix nor a suffix of the other). Two unwraps of one block
/// under different templates then agree, or fail to, alike for a good and a bad
/// padding: comparing them is no padding oracle (review 15a). Nothing here branches on
/// the padding.
pub(super) fn decode_key(
    em: &[u8],
    d_hash: &[u8],
    ciphertext: &[u8],
    want: KeyLen<'_>,
) -> (Zeroizing<Vec<u8>>, Choice) {
    let Some((_, max_len)) = sizes(em.len()) else {
        return (Zeroizing::new(Vec::new()), Choice::from(0));
    };
    let kdk = kdk(d_hash, ciphertext);
    let (mut valid, start) = scan_pkcs1_v15(em);
    let real_len = em.len().saturating_sub(start) as u64;
    let fallback_len: u64 = match want {
        KeyLen::Exact(len) => {
            valid &= real_len.ct_eq(&(len as u64));
            len as u64
        }
        KeyLen::OneOf(lengths) => {
            let candidates = prf(&kdk, b"length", 16);
            let pick = usize::from(u16::from_be_bytes([candidates[0], candidates[1]]));
            let mut fits = Choice::from(0);
            let mut chosen = lengths.first().copied().unwrap_or(0) as u64;
            for (i, len) in lengths.iter().enumerate() {
                fits |= real_len.ct_eq(&(*len as u64));
                let picked = (pick % lengths.len()).ct_eq(&i);
                chosen.conditional_assign(&(*len as u64), picked);
            }
            valid &= fits;
            chosen
        }
        KeyLen::Any => u64::from(synthetic_len(&prf(&kdk, b"length", 256 * 8), max_len)),
    };
    // The caller's lengths are at most k - 11 (`RsaPrivateKey::unwrap_pkcs1_flagged`),
    // so the PRF's bit count fits its two bytes for every modulus the module makes.
    let bits = u16::try_from(fallback_len.saturating_mul(8)).unwrap_or(0);
    let synthetic = prf(&kdk, b"unwrapped key", bits);
    let len = u64::conditional_select(&fallback_len, &real_len, valid) as usize;
    let offset = em.len().saturating_sub(len);
    let out = (0..len)
        .map(|i| {
            let real = em.get(offset + i).copied().unwrap_or(0);
            let fake = synthetic.get(i).copied().unwrap_or(0);
            u8::conditional_select(&fake, &real, valid)
        })
        .collect::<Vec<u8>>();
    (Zeroizing::new(out), valid)
}

/// Whether `decode` took the real message: for tests only, so that no caller can build
/// an oracle out of it.
#[cfg(test)]
fn was_valid(em: &[u8]) -> Choice {
    scan_pkcs1_v15(em).0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::rsa::padding::eme_pkcs1_v15_encode;

    #[test]
    fn a_valid_block_gives_its_message() {
        let em = eme_pkcs1_v15_encode(b"sixteen byte key", 256).unwrap();
        assert!(bool::from(was_valid(&em)));
        assert_eq!(&decode(&em, &[7; 32], &[1; 256])[..], b"sixteen byte key");
    }

    #[test]
    fn a_bad_block_gives_a_stable_synthetic_message_that_depends_on_key_and_ciphertext() {
        let mut em = eme_pkcs1_v15_encode(b"sixteen byte key", 256).unwrap();
        em[1] = 3;
        let a = decode(&em, &[7; 32], &[1; 256]);
        assert_eq!(a, decode(&em, &[7; 32], &[1; 256]), "deterministic");
        assert_ne!(a, decode(&em, &[8; 32], &[1; 256]), "depends on the key");
        assert_ne!(
            a,
            decode(&em, &[7; 32], &[2; 256]),
            "depends on the ciphertext"
        );
        assert!(a.len() <= 256 - 11);
    }

    #[test]
    fn synthetic_lengths_spread_over_the_whole_range() {
        let mut em = vec![0u8; 256];
        em[1] = 1;
        let lens: Vec<usize> = (0u8..64)
            .map(|i| decode(&em, &[9; 32], &[i; 256]).len())
            .collect();
        assert!(lens.iter().all(|l| *l <= 245));
        let distinct: std::collections::BTreeSet<_> = lens.iter().collect();
        assert!(distinct.len() > 40, "lengths are not spread: {lens:?}");
    }

    fn key(em: &[u8], ct: u8, want: KeyLen<'_>) -> (Vec<u8>, bool) {
        let (k, valid) = decode_key(em, &[7; 32], &[ct; 256], want);
        (k.to_vec(), bool::from(valid))
    }

    #[test]
    fn a_key_decodes_to_its_message_or_a_stable_synthetic_key_of_an_allowed_length() {
        const AES: &[usize] = &[16, 24, 32];
        let good = eme_pkcs1_v15_encode(&[5u8; 24], 256).unwrap();
        for want in [KeyLen::Exact(24), KeyLen::OneOf(AES), KeyLen::Any] {
            assert_eq!(key(&good, 1, want), (vec![5u8; 24], true), "{want:?}");
        }
        // A conforming block of another length than the template's is substituted.
        let (sub, valid) = key(&good, 1, KeyLen::Exact(16));
        assert!(!valid && sub.len() == 16 && sub != [5u8; 16]);
        let wrong = eme_pkcs1_v15_encode(&[5u8; 20], 256).unwrap();
        let (sub, valid) = key(&wrong, 1, KeyLen::OneOf(AES));
        assert!(!valid && AES.contains(&sub.len()));
        let mut bad = good.clone();
        bad[0] = 1;
        assert_eq!(key(&bad, 1, KeyLen::Any), key(&bad, 1, KeyLen::Any));
        let mut seen = std::collections::BTreeSet::new();
        for i in 0u8..32 {
            let (out, valid) = key(&bad, i, KeyLen::OneOf(AES));
            assert!(!valid && AES.contains(&out.len()));
            seen.insert(out.len());
        }
        assert_eq!(seen.len(), 3, "every allowed size is picked");
    }

    /// Review 15a: unwraps of one bad block under templates that give the same length
    /// must agree (as they do for a good block), and the synthetic keys of different
    /// lengths must be unrelated, or comparing two unwraps tells the padding.
    #[test]
    fn synthetic_keys_agree_across_templates_and_differ_across_lengths() {
        const AES: &[usize] = &[16, 24, 32];
        let mut bad = eme_pkcs1_v15_encode(&[5u8; 24], 256).unwrap();
        bad[1] = 3;
        for ct in 0u8..16 {
            let (any, _) = key(&bad, ct, KeyLen::Any);
            assert_eq!(key(&bad, ct, KeyLen::Exact(any.len())).0, any);
            let (sized, _) = key(&bad, ct, KeyLen::OneOf(AES));
            assert_eq!(key(&bad, ct, KeyLen::Exact(sized.len())).0, sized);
            let (short, _) = key(&bad, ct, KeyLen::Exact(16));
            let (long, _) = key(&bad, ct, KeyLen::Exact(17));
            assert_ne!(short[..], long[..16], "not a prefix");
            assert_ne!(short[..], long[1..], "not a suffix");
        }
    }

    #[test]
    fn the_length_is_the_last_masked_candidate_within_bounds() {
        // max 245 -> mask 255; candidates 300 (& 255 = 44), 250 (too long), 17.
        let mut c = vec![0u8; 256];
        c[..2].copy_from_slice(&300u16.to_be_bytes());
        c[2..4].copy_from_slice(&250u16.to_be_bytes());
        for pair in c[4..].chunks_exact_mut(2) {
            pair.copy_from_slice(&250u16.to_be_bytes());
        }
        assert_eq!(synthetic_len(&c, 245), 44);
        c[254..].copy_from_slice(&17u16.to_be_bytes());
        assert_eq!(synthetic_len(&c, 245), 17);
        assert_eq!(synthetic_len(&[0xff; 256], 245), 0, "none fits");
    }
}
