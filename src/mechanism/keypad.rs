//! The zero padding of key material that block-cipher wraps without a padding scheme of
//! their own use (PKCS#11 3.0 §2.10.3-4 for ECB and CBC, §2.14 for `CKM_AES_KEY_WRAP`):
//! the value is padded on the trailing end with zero bytes to whole blocks, and an
//! unwrap cuts the result to the key the template describes. Used by the AES and DES
//! families; this module only pads and cuts, it must not encrypt.
//!
//! The unwraps of the unauthenticated modes (ECB, CBC, CBC-PAD) cut with implicit
//! rejection (`unpad`): the padding the cut removes is checked without branching, and
//! where it is not what the length implies the answer is a substitute key of that same
//! length, derived from the unwrapping key and the blob. Neither the return code, the
//! length nor two unwraps under related IVs tell whether the padding held (Vaudenay's
//! oracle in PKCS#11's form), and no short key of a few unknown bytes is cut from the
//! middle of a block of someone else's key. Not whole: a caller that can also unwrap the
//! same blob whole (`CKM_AES_CBC` to a whole block) compares the two keys and learns it;
//! so an unwrapping key that guards what it unwraps takes none of these modes
//! (`Mechanism::unwrap_unauthenticated`; docs/security.md, "Unauthenticated unwraps").

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

use super::WrappedLen;
use crate::error::{Error, Result};

/// `material` with up to `block - 1` zero bytes appended to make whole blocks.
pub(super) fn zero_padded(material: &[u8], block: usize) -> Result<Zeroizing<Vec<u8>>> {
    if material.is_empty() {
        return Err(Error::KeySizeRange);
    }
    let len = material.len().div_ceil(block) * block;
    let mut out = Zeroizing::new(Vec::with_capacity(len));
    out.extend_from_slice(material);
    out.resize(len, 0);
    Ok(out)
}

/// Cuts a zero-padded unwrapped string to the key the template describes (§2.10.3:
/// "truncates the result according to the CKA_KEY_TYPE ... and CKA_VALUE_LEN"): the
/// template's length, a length the key type allows, or a DER private key's own length;
/// never more than `block - 1` bytes are cut.
///
/// The bytes cut are not checked to be zero, on purpose: the caller chooses the length
/// (`CKA_VALUE_LEN`), so a check would tell, for a CBC or ECB blob the caller altered,
/// whether chosen bytes of the *key* decrypt to zero, a padding oracle that recovers the
/// wrapped key byte by byte. Mode without integrity, answer without information.
pub(super) fn trim_zero_padding(
    plain: Zeroizing<Vec<u8>>,
    expected: WrappedLen,
    block: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    let keep = zero_padded_len(&plain, expected, block)?;
    Ok(Zeroizing::new(plain[..keep].to_vec()))
}

/// How much of a zero-padded unwrapped string is key (`trim_zero_padding`).
fn zero_padded_len(plain: &[u8], expected: WrappedLen, block: usize) -> Result<usize> {
    Ok(match expected {
        WrappedLen::Exact(len) if len <= plain.len() && plain.len() - len < block => len,
        WrappedLen::Exact(_) => return Err(Error::WrappedKeyLenRange),
        WrappedLen::OneOf(lengths) if lengths.contains(&plain.len()) => plain.len(),
        // A key type of several sizes needs CKA_VALUE_LEN to cut the padding.
        WrappedLen::OneOf(_) => return Err(Error::TemplateIncomplete),
        WrappedLen::Any => plain.len(),
        WrappedLen::Encoded => crate::crypto::asn1::sequence_len(plain)
            .filter(|len| plain.len() - len < block)
            .ok_or(Error::WrappedKeyInvalid)?,
    })
}

/// `trim_zero_padding` for a mode with integrity (`CKM_AES_KEY_WRAP`): the bytes cut
/// must be zero, that is padding, or the wrapped key is not one of the length asked
/// (`CKR_WRAPPED_KEY_INVALID`). A cut of key bytes would make a key that is a prefix of
/// the wrapped one, a few bytes shorter, and comparing the two finds those bytes by
/// trying them. The blob is authenticated, so the answer says nothing of a blob the
/// caller altered: only whether the genuine key ends in zero bytes.
pub(super) fn trim_authenticated_padding(
    plain: Zeroizing<Vec<u8>>,
    expected: WrappedLen,
    block: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    let keep = zero_padded_len(&plain, expected, block)?;
    if plain[keep..].iter().any(|b| *b != 0) {
        return Err(Error::WrappedKeyInvalid);
    }
    Ok(Zeroizing::new(plain[..keep].to_vec()))
}

/// The padding an unauthenticated block mode's wrap added to the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Padding {
    /// Up to `block - 1` zero bytes (ECB and CBC, §2.10.3-4).
    Zero,
    /// PKCS #7: 1 to `block` bytes, each the count (CBC-PAD).
    Pkcs7,
}

/// The key in `plain`, an unauthenticated mode's decryption of a wrapped key with its
/// padding, cut to the length the template or key type fixes (`expected`), with
/// implicit rejection (module comment): a padding that is not what that length implies
/// gives a substitute of the same length, the HMAC-SHA256 stream of `kek` (the
/// unwrapping key's value) over the blob and the IV's bytes that fall on padding, XORed
/// with the IV's bytes that fall on the key. The substitute thus moves with the IV as a
/// real key does (CBC's first block is the IV XOR a decryption): two unwraps under IVs
/// that differ on the key's bytes give keys that differ by the same bytes whether the
/// padding held or not, so undoing the difference (`CKM_XOR_BASE_AND_DATA`) and
/// comparing tells nothing (review 14h). Lengths are public (the template's, the
/// blob's); only the bytes are judged, without branching.
///
/// PKCS #7 padding needs the length from the template or the key type: one the padding
/// alone would give is the oracle (`TemplateIncomplete`). A private key's PKCS#8 length
/// (`Encoded`) comes from its own DER header, as before; its padding is checked, not
/// substituted (a substitute would not parse, which would tell).
pub(super) fn unpad(
    plain: Zeroizing<Vec<u8>>,
    expected: WrappedLen,
    block: usize,
    padding: Padding,
    kek: &[u8],
    iv: &[u8],
    wrapped: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let padded_len = |len: usize| match padding {
        Padding::Zero => len.div_ceil(block) * block,
        Padding::Pkcs7 => (len / block + 1) * block,
    };
    // The lengths the key may have (public: the template's, the key type's, the blob's).
    let candidates: Vec<usize> = match (expected, padding) {
        (WrappedLen::Exact(len), _) if len > 0 && padded_len(len) == plain.len() => vec![len],
        (WrappedLen::Exact(_), _) => return Err(Error::WrappedKeyLenRange),
        (WrappedLen::OneOf(lengths), Padding::Zero) if lengths.contains(&plain.len()) => {
            return Ok(plain)
        }
        // A key type of several sizes needs CKA_VALUE_LEN to cut the padding.
        (WrappedLen::OneOf(_), Padding::Zero) => return Err(Error::TemplateIncomplete),
        // Each size's padding is several bytes long where two fit (AES-128 and AES-192
        // both pad to 32 bytes: 16 bytes of padding or 8), so choosing by it tells no
        // byte; a padding that fits none gives a substitute of a size the PRF picks.
        (WrappedLen::OneOf(lengths), Padding::Pkcs7) => lengths
            .iter()
            .copied()
            .filter(|l| padded_len(*l) == plain.len())
            .collect(),
        (WrappedLen::Any, Padding::Zero) => return Ok(plain),
        (WrappedLen::Any, Padding::Pkcs7) => return Err(Error::TemplateIncomplete),
        (WrappedLen::Encoded, Padding::Zero) => return trim_zero_padding(plain, expected, block),
        (WrappedLen::Encoded, Padding::Pkcs7) => return strict_pkcs7(plain, block),
    };
    let Some(&first) = candidates.first() else {
        return Err(Error::WrappedKeyLenRange);
    };
    // The IV's bytes that fall on the key whichever size it has (public).
    let on_key = iv.len().min(candidates.iter().copied().min().unwrap_or(0));
    // One byte picks the fallback size, the rest stand in for the key.
    let mut fake = substitute(kek, &[wrapped, &iv[on_key..]], plain.len() + 1);
    for (f, v) in fake.iter_mut().skip(1).zip(&iv[..on_key]) {
        *f ^= v;
    }
    let pick = usize::from(fake[0]) % candidates.len();
    // The first candidate whose padding holds, else the picked one; judged for every
    // candidate and every byte, without branching on them.
    let (mut chosen, mut found) = (first as u64, Choice::from(0));
    let mut fallback = first as u64;
    for (i, &len) in candidates.iter().enumerate() {
        let fill = match padding {
            Padding::Zero => 0u8,
            // 1 to `block` (at most 255 for the block ciphers here), by `padded_len`.
            Padding::Pkcs7 => {
                u8::try_from(plain.len() - len).map_err(|_| Error::WrappedKeyLenRange)?
            }
        };
        let mut valid = Choice::from(1);
        for b in &plain[len..] {
            valid &= b.ct_eq(&fill);
        }
        chosen.conditional_assign(&(len as u64), valid & !found);
        found |= valid;
        fallback.conditional_assign(&(len as u64), i.ct_eq(&pick));
    }
    let len = u64::conditional_select(&fallback, &chosen, found);
    let len = usize::try_from(len).map_err(|_| Error::WrappedKeyLenRange)?;
    let mut out = Zeroizing::new(vec![0u8; len]);
    for ((out, real), fake) in out.iter_mut().zip(plain.iter()).zip(fake.iter().skip(1)) {
        *out = u8::conditional_select(fake, real, found);
    }
    Ok(out)
}

/// `len` bytes of the HMAC-SHA256 stream keyed by HMAC-SHA256(`kek`, a label) over
/// `context` and a counter.
fn substitute(kek: &[u8], context: &[&[u8]], len: usize) -> Zeroizing<Vec<u8>> {
    use aws_lc_rs::hmac;
    let outer = hmac::Key::new(hmac::HMAC_SHA256, kek);
    let derived = Zeroizing::new(
        hmac::sign(&outer, b"kmshsm unwrap substitute")
            .as_ref()
            .to_vec(),
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, &derived);
    let mut out = Zeroizing::new(Vec::with_capacity(len + 32));
    let mut counter: u32 = 0;
    while out.len() < len {
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(&counter.to_be_bytes());
        for part in context {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        out.extend_from_slice(ctx.sign().as_ref());
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    out
}

/// PKCS #7 unpadding that refuses a bad padding (`WrappedKeyInvalid`): for a private
/// key's PKCS#8 encoding only (`unpad`).
fn strict_pkcs7(plain: Zeroizing<Vec<u8>>, block: usize) -> Result<Zeroizing<Vec<u8>>> {
    let n = usize::from(*plain.last().ok_or(Error::WrappedKeyLenRange)?);
    if n == 0
        || n > block
        || n > plain.len()
        || plain[plain.len() - n..]
            .iter()
            .any(|b| usize::from(*b) != n)
    {
        return Err(Error::WrappedKeyInvalid);
    }
    Ok(Zeroizing::new(plain[..plain.len() - n].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_reaches_whole_blocks_and_is_cut_back() {
        let padded = zero_padded(&[1, 2, 3], 8).unwrap();
        assert_eq!(&padded[..], &[1, 2, 3, 0, 0, 0, 0, 0]);
        assert_eq!(zero_padded(&[1; 16], 8).unwrap().len(), 16);
        assert!(zero_padded(&[], 8).is_err());
        let cut = trim_zero_padding(padded.clone(), WrappedLen::Exact(3), 8).unwrap();
        assert_eq!(&cut[..], &[1, 2, 3]);
        // More than a block of padding is no padding of ours.
        assert!(trim_zero_padding(padded, WrappedLen::Exact(0), 8).is_err());
    }

    #[test]
    fn an_authenticated_unwrap_cuts_padding_only() {
        let padded = Zeroizing::new(vec![1, 2, 3, 0, 0, 0, 0, 0]);
        let cut = trim_authenticated_padding(padded.clone(), WrappedLen::Exact(3), 8).unwrap();
        assert_eq!(&cut[..], &[1, 2, 3]);
        // Cutting the key's own bytes would make a prefix of it: refused.
        assert!(matches!(
            trim_authenticated_padding(padded, WrappedLen::Exact(2), 8),
            Err(Error::WrappedKeyInvalid)
        ));
        let key = Zeroizing::new(vec![9u8; 16]);
        for len in 9..16 {
            assert!(matches!(
                trim_authenticated_padding(key.clone(), WrappedLen::Exact(len), 8),
                Err(Error::WrappedKeyInvalid)
            ));
        }
        assert_eq!(
            &trim_authenticated_padding(key, WrappedLen::Exact(16), 8).unwrap()[..],
            &[9u8; 16]
        );
    }

    #[test]
    fn a_der_key_is_cut_at_its_own_length() {
        // SEQUENCE { INTEGER 5 } and five zero bytes.
        let plain = Zeroizing::new(vec![0x30, 0x03, 0x02, 0x01, 0x05, 0, 0, 0, 0, 0]);
        let cut = trim_zero_padding(plain.clone(), WrappedLen::Encoded, 8).unwrap();
        assert_eq!(cut.len(), 5);
        assert!(trim_zero_padding(plain, WrappedLen::Encoded, 4).is_err());
    }

    #[test]
    fn a_bad_padding_gives_a_substitute_of_the_same_length() {
        let kek = [7u8; 16];
        let mut plain = vec![1u8; 5];
        plain.extend([11u8; 11]);
        let plain = Zeroizing::new(plain);
        let ok = unpad(
            plain.clone(),
            WrappedLen::Exact(5),
            16,
            Padding::Pkcs7,
            &kek,
            &[],
            b"c",
        )
        .unwrap();
        assert_eq!(&ok[..], &[1; 5]);
        let mut bad = plain.to_vec();
        bad[15] = 10;
        let fake = unpad(
            Zeroizing::new(bad.clone()),
            WrappedLen::Exact(5),
            16,
            Padding::Pkcs7,
            &kek,
            &[],
            b"c",
        )
        .unwrap();
        assert_eq!(fake.len(), 5);
        assert_ne!(&fake[..], &[1; 5]);
        // Deterministic for one blob, another for another.
        let again = unpad(
            Zeroizing::new(bad.clone()),
            WrappedLen::Exact(5),
            16,
            Padding::Pkcs7,
            &kek,
            &[],
            b"c",
        )
        .unwrap();
        assert_eq!(fake, again);
        let other = unpad(
            Zeroizing::new(bad),
            WrappedLen::Exact(5),
            16,
            Padding::Pkcs7,
            &kek,
            &[],
            b"d",
        )
        .unwrap();
        assert_ne!(fake, other);
        // A zero padding that is not zero: substituted too.
        let mut zero = vec![2u8; 3];
        zero.extend([0, 0, 0, 0, 1]);
        let cut = unpad(
            Zeroizing::new(zero),
            WrappedLen::Exact(3),
            8,
            Padding::Zero,
            &kek,
            &[],
            b"c",
        )
        .unwrap();
        assert_eq!(cut.len(), 3);
        assert_ne!(&cut[..], &[2; 3]);
    }

    #[test]
    fn a_length_only_the_padding_would_give_is_refused() {
        let plain = Zeroizing::new(vec![16u8; 32]);
        assert!(matches!(
            unpad(
                plain.clone(),
                WrappedLen::Any,
                16,
                Padding::Pkcs7,
                &[1; 16],
                &[],
                &[],
            ),
            Err(Error::TemplateIncomplete)
        ));
        assert!(matches!(
            unpad(
                plain.clone(),
                WrappedLen::Exact(40),
                16,
                Padding::Pkcs7,
                &[1; 16],
                &[],
                &[],
            ),
            Err(Error::WrappedKeyLenRange)
        ));
        // A key type's sizes: the one whose padding holds (16 bytes of 16), else one the
        // PRF picks, with substitute bytes.
        let sizes = WrappedLen::OneOf(&[16, 24, 32]);
        let real = unpad(plain, sizes, 16, Padding::Pkcs7, &[1; 16], &[], &[]).unwrap();
        assert_eq!(&real[..], &[16u8; 16]);
        let fake = unpad(
            Zeroizing::new(vec![3u8; 32]),
            sizes,
            16,
            Padding::Pkcs7,
            &[1; 16],
            &[],
            &[],
        )
        .unwrap();
        assert!(fake.len() == 16 || fake.len() == 24);
        assert_ne!(&fake[..16], &[3u8; 16]);
        // Nothing cut, nothing judged: every byte is the key's.
        let whole = unpad(
            Zeroizing::new(vec![9u8; 16]),
            WrappedLen::Exact(16),
            16,
            Padding::Zero,
            &[1; 16],
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(&whole[..], &[9u8; 16]);
    }

    /// A substitute moves with the IV's key bytes as a real key does: XORing the IV
    /// difference back makes the two equal, so comparing them tells nothing.
    #[test]
    fn a_substitute_moves_with_the_iv_as_a_real_key_does() {
        let kek = [4u8; 16];
        let bad = Zeroizing::new(vec![9u8; 16]);
        let (iv1, mut iv2) = ([0u8; 16], [0u8; 16]);
        iv2[..3].copy_from_slice(&[1, 2, 3]);
        let run = |iv: &[u8]| {
            unpad(
                bad.clone(),
                WrappedLen::Exact(15),
                16,
                Padding::Pkcs7,
                &kek,
                iv,
                b"blob",
            )
            .unwrap()
        };
        let (k1, k2) = (run(&iv1), run(&iv2));
        let undone: Vec<u8> = k2.iter().zip(&iv2).map(|(k, d)| k ^ d).collect();
        assert_eq!(&undone[..], &k1[..]);
        // A byte of the IV on the padding is the PRF's: another substitute altogether.
        let mut iv3 = iv1;
        iv3[15] = 7;
        assert_ne!(run(&iv3), k1);
    }
}
