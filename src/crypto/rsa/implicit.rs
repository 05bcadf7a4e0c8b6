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

/// The secrets implicit rejection derives for one key and ciphertext: the 256 bytes
/// of candidate lengths and the k-byte synthetic message stream.
struct Substitute {
    candidates: Zeroizing<Vec<u8>>,
    message: Zeroizing<Vec<u8>>,
}

fn substitute(d_hash: &[u8], ciphertext: &[u8], k_bits: u16) -> Substitute {
    let outer = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, d_hash);
    let kdk_bytes = Zeroizing::new(aws_lc_rs::hmac::sign(&outer, ciphertext).as_ref().to_vec());
    let kdk = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &kdk_bytes);
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

/// `decode` for key material whose length must be one of `lengths` (the sizes of a key
/// type, such as AES's 16, 24 and 32 bytes): a block with bad padding, or with a message
/// of another length, gives a synthetic message of one of those lengths, picked by the
/// PRF. Every ciphertext thus yields a key of an acceptable size, so nothing after the
/// decryption (the key type's length check) can tell real from synthetic.
pub(super) fn decode_sized(
    em: &[u8],
    d_hash: &[u8],
    ciphertext: &[u8],
    lengths: &[usize],
) -> Zeroizing<Vec<u8>> {
    let (Some((k_bits, _)), Some(first)) = (sizes(em.len()), lengths.first()) else {
        return Zeroizing::new(Vec::new());
    };
    let sub = substitute(d_hash, ciphertext, k_bits);
    let pick = u16::from_be_bytes([sub.candidates[0], sub.candidates[1]]);
    let (mut valid, start) = scan_pkcs1_v15(em);
    let real_len = em.len().saturating_sub(start) as u64;
    let mut fits = Choice::from(0);
    let mut fallback_len = *first as u64;
    for (i, len) in lengths.iter().enumerate() {
        fits |= real_len.ct_eq(&(*len as u64));
        let picked = (usize::from(pick) % lengths.len()).ct_eq(&i);
        fallback_len.conditional_assign(&(*len as u64), picked);
    }
    valid &= fits;
    let len = u64::conditional_select(&fallback_len, &real_len, valid);
    select(em, &sub.message, valid, len as usize)
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

    #[test]
    fn sized_decoding_gives_the_real_key_or_a_synthetic_one_of_an_allowed_size() {
        const AES: &[usize] = &[16, 24, 32];
        let good = eme_pkcs1_v15_encode(&[5u8; 24], 256).unwrap();
        assert_eq!(
            &decode_sized(&good, &[7; 32], &[1; 256], AES)[..],
            &[5u8; 24]
        );
        // A conforming block of a length the key type does not have is substituted.
        let wrong = eme_pkcs1_v15_encode(&[5u8; 20], 256).unwrap();
        let sub = decode_sized(&wrong, &[7; 32], &[1; 256], AES);
        assert!(AES.contains(&sub.len()) && sub[..] != [5u8; 20][..]);
        let mut bad = good.clone();
        bad[0] = 1;
        let mut seen = std::collections::BTreeSet::new();
        for i in 0u8..32 {
            let out = decode_sized(&bad, &[7; 32], &[i; 256], AES);
            assert!(AES.contains(&out.len()));
            seen.insert(out.len());
        }
        assert_eq!(seen.len(), 3, "every allowed size is picked");
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
