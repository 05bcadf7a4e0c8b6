//! RSA paddings of RFC 8017 over any hash: EMSA-PKCS1-v1_5 (§9.2), EME-PKCS1-v1_5
//! (§7.2, with implicit rejection: `implicit` for decryption, here for unwrapping), EMSA-PSS (§9.1) and EME-OAEP (§7.1).
//!
//! Decoders of secret data (EME-PKCS1-v1_5, EME-OAEP) run in time independent of where
//! or whether the padding is wrong: they scan the whole block with `subtle` masks and
//! branch once, at the end. This module must not know about keys or PKCS#11.

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq, ConstantTimeLess};
use zeroize::Zeroizing;

use crate::crypto::hash::{mgf1, HashAlg};
use crate::crypto::rand::random_fill;
use crate::error::{Error, Result};

/// EMSA-PKCS1-v1_5: `00 01 FF..FF 00 || digest_info`, `k` bytes long.
pub(super) fn emsa_pkcs1_v15(digest_info: &[u8], k: usize) -> Result<Vec<u8>> {
    if k < digest_info.len() + 11 {
        return Err(Error::DataLenRange);
    }
    let mut em = vec![0xff; k];
    em[0] = 0;
    em[1] = 1;
    em[k - digest_info.len() - 1] = 0;
    em[k - digest_info.len()..].copy_from_slice(digest_info);
    Ok(em)
}

/// EME-PKCS1-v1_5 encoding: `00 02 PS 00 || message`, PS random and non-zero.
pub(super) fn eme_pkcs1_v15_encode(message: &[u8], k: usize) -> Result<Vec<u8>> {
    if message.len() + 11 > k {
        return Err(Error::DataLenRange);
    }
    let ps_len = k - message.len() - 3;
    let mut em = vec![0u8; k];
    em[1] = 2;
    let ps = &mut em[2..2 + ps_len];
    random_fill(ps)?;
    for b in ps.iter_mut() {
        while *b == 0 {
            let mut one = [0u8; 1];
            random_fill(&mut one)?;
            *b = one[0];
        }
    }
    em[k - message.len()..].copy_from_slice(message);
    Ok(em)
}

/// Scans an EME-PKCS1-v1_5 block in constant time: (padding valid, message offset).
pub(super) fn scan_pkcs1_v15(em: &[u8]) -> (Choice, usize) {
    let mut valid = em.first().map_or(Choice::from(0), |b| b.ct_eq(&0))
        & em.get(1).map_or(Choice::from(0), |b| b.ct_eq(&2));
    let mut found = Choice::from(0);
    let mut zero_index = 0u32;
    for (i, b) in em.iter().enumerate().skip(2) {
        let is_zero = b.ct_eq(&0);
        let first = is_zero & !found;
        zero_index.conditional_assign(&(i as u32), first);
        found |= is_zero;
    }
    valid &= found;
    // At least eight bytes of PS: the separator sits at index 10 or later.
    valid &= !zero_index.ct_lt(&10);
    (valid, zero_index as usize + 1)
}

/// EME-PKCS1-v1_5 decoding that says whether the padding was valid: for tests only; the
/// module decodes with implicit rejection (`implicit`).
#[cfg(test)]
fn eme_pkcs1_v15_decode(em: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let (valid, start) = scan_pkcs1_v15(em);
    if bool::from(valid) {
        Ok(Zeroizing::new(em[start..].to_vec()))
    } else {
        Err(Error::EncryptedDataInvalid)
    }
}

/// EME-OAEP encoding (§7.1.1) of `message` for a `k`-byte modulus.
pub(super) fn eme_oaep_encode(
    message: &[u8],
    label: &[u8],
    hash: HashAlg,
    k: usize,
) -> Result<Vec<u8>> {
    let h = hash.output_len();
    if k < 2 * h + 2 || message.len() > k - 2 * h - 2 {
        return Err(Error::DataLenRange);
    }
    let mut db = hash.digest(label);
    db.resize(k - message.len() - h - 2, 0);
    db.push(1);
    db.extend_from_slice(message);
    let mut seed = vec![0u8; h];
    random_fill(&mut seed)?;
    let db_mask = mgf1(hash, &seed, db.len());
    db.iter_mut().zip(&db_mask).for_each(|(d, m)| *d ^= m);
    let seed_mask = mgf1(hash, &db, h);
    seed.iter_mut().zip(&seed_mask).for_each(|(s, m)| *s ^= m);
    let mut em = Vec::with_capacity(k);
    em.push(0);
    em.extend_from_slice(&seed);
    em.extend_from_slice(&db);
    Ok(em)
}

/// EME-OAEP decoding (§7.1.2) in constant time: the message or `EncryptedDataInvalid`.
pub(super) fn eme_oaep_decode(
    em: &[u8],
    label: &[u8],
    hash: HashAlg,
) -> Result<Zeroizing<Vec<u8>>> {
    let h = hash.output_len();
    let k = em.len();
    if k < 2 * h + 2 {
        return Err(Error::EncryptedDataInvalid);
    }
    let (masked_seed, masked_db) = em[1..].split_at(h);
    let seed_mask = mgf1(hash, masked_db, h);
    let seed: Zeroizing<Vec<u8>> = Zeroizing::new(
        masked_seed
            .iter()
            .zip(&seed_mask)
            .map(|(a, b)| a ^ b)
            .collect(),
    );
    let db_mask = mgf1(hash, &seed, masked_db.len());
    let db: Zeroizing<Vec<u8>> =
        Zeroizing::new(masked_db.iter().zip(&db_mask).map(|(a, b)| a ^ b).collect());
    let l_hash = hash.digest(label);
    let mut valid = em[0].ct_eq(&0) & db[..h].ct_eq(&l_hash);
    // After lHash: zero bytes, then 0x01, then the message.
    let mut found = Choice::from(0);
    let mut one_index = 0u32;
    let mut bad_byte = Choice::from(0);
    for (i, b) in db.iter().enumerate().skip(h) {
        let is_one = b.ct_eq(&1);
        let is_zero = b.ct_eq(&0);
        let first_one = is_one & !found;
        one_index.conditional_assign(&(i as u32), first_one);
        bad_byte |= !found & !is_one & !is_zero;
        found |= is_one;
    }
    valid &= found & !bad_byte;
    if bool::from(valid) {
        Ok(Zeroizing::new(db[one_index as usize + 1..].to_vec()))
    } else {
        Err(Error::EncryptedDataInvalid)
    }
}

/// Whether a key of `mod_bits` takes a PSS salt of `salt_len` bytes with `hash`: RFC 8017
/// §9.1.1 step 3, emLen ≥ hLen + sLen + 2 (emLen the bytes of modBits − 1). Saturating: a
/// salt length near `usize::MAX` is a parameter no key takes, not an overflow.
pub(super) fn pss_salt_fits(mod_bits: usize, hash: HashAlg, salt_len: usize) -> bool {
    let em_len = mod_bits.saturating_sub(1).div_ceil(8);
    em_len >= hash.output_len().saturating_add(salt_len).saturating_add(2)
}

/// EMSA-PSS encoding (§9.1.1) of a message hash for a modulus of `mod_bits` bits.
pub(super) fn emsa_pss_encode(
    m_hash: &[u8],
    mod_bits: usize,
    hash: HashAlg,
    salt_len: usize,
) -> Result<Vec<u8>> {
    let em_bits = mod_bits - 1;
    let em_len = em_bits.div_ceil(8);
    let h = hash.output_len();
    if m_hash.len() != h {
        return Err(Error::DataLenRange);
    }
    if !pss_salt_fits(mod_bits, hash, salt_len) {
        return Err(Error::MechanismParamInvalid);
    }
    let mut salt = vec![0u8; salt_len];
    random_fill(&mut salt)?;
    let mut ctx = hash.context();
    ctx.update(&[0u8; 8]);
    ctx.update(m_hash);
    ctx.update(&salt);
    let h_prime = ctx.finish();
    let mut db = vec![0u8; em_len - salt_len - h - 2];
    db.push(1);
    db.extend_from_slice(&salt);
    let mask = mgf1(hash, &h_prime, db.len());
    db.iter_mut().zip(&mask).for_each(|(d, m)| *d ^= m);
    db[0] &= 0xff >> (8 * em_len - em_bits);
    let mut em = db;
    em.extend_from_slice(&h_prime);
    em.push(0xbc);
    Ok(em)
}

/// EMSA-PSS verification (§9.1.2). `em` is the signature's public transform; it is
/// right-aligned to the encoded-message length before checking. Public data only.
pub(super) fn emsa_pss_verify(
    m_hash: &[u8],
    em: &[u8],
    mod_bits: usize,
    hash: HashAlg,
    salt_len: usize,
) -> bool {
    let em_bits = mod_bits - 1;
    let em_len = em_bits.div_ceil(8);
    let h = hash.output_len();
    if m_hash.len() != h
        || em.len() < em_len
        || em_len < h.saturating_add(salt_len).saturating_add(2)
    {
        return false;
    }
    let (lead, em) = em.split_at(em.len() - em_len);
    if lead.iter().any(|b| *b != 0) || em[em_len - 1] != 0xbc {
        return false;
    }
    let (masked_db, rest) = em.split_at(em_len - h - 1);
    let h_prime = &rest[..h];
    let top_mask = 0xffu8 >> (8 * em_len - em_bits);
    if masked_db[0] & !top_mask != 0 {
        return false;
    }
    let mask = mgf1(hash, h_prime, masked_db.len());
    let mut db: Vec<u8> = masked_db.iter().zip(&mask).map(|(a, b)| a ^ b).collect();
    db[0] &= top_mask;
    let ps_len = em_len - h - salt_len - 2;
    if db[..ps_len].iter().any(|b| *b != 0) || db[ps_len] != 1 {
        return false;
    }
    let salt = &db[ps_len + 1..];
    let mut ctx = hash.context();
    ctx.update(&[0u8; 8]);
    ctx.update(m_hash);
    ctx.update(salt);
    bool::from(ctx.finish().ct_eq(h_prime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs1_v15_encryption_block_round_trips() {
        let em = eme_pkcs1_v15_encode(b"key material", 256).unwrap();
        assert_eq!(&em[..2], &[0, 2]);
        assert_eq!(&eme_pkcs1_v15_decode(&em).unwrap()[..], b"key material");
    }

    #[test]
    fn pkcs1_v15_decode_refuses_bad_blocks() {
        let mut em = eme_pkcs1_v15_encode(b"abc", 128).unwrap();
        em[1] = 1;
        assert!(eme_pkcs1_v15_decode(&em).is_err());
        let mut short_ps = vec![0u8, 2, 1, 1, 1, 0];
        short_ps.extend_from_slice(&[9; 122]);
        assert!(eme_pkcs1_v15_decode(&short_ps).is_err());
        assert!(eme_pkcs1_v15_decode(&[0, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]).is_err());
    }

    #[test]
    fn oaep_round_trips_with_labels_for_every_hash() {
        for h in HashAlg::ALL {
            let em = eme_oaep_encode(b"secret", b"label", h, 256).unwrap();
            assert_eq!(&eme_oaep_decode(&em, b"label", h).unwrap()[..], b"secret");
            assert!(eme_oaep_decode(&em, b"other", h).is_err());
        }
    }

    #[test]
    fn pss_verifies_its_own_encoding_and_rejects_changes() {
        for h in HashAlg::ALL {
            let m = h.digest(b"message");
            let em = emsa_pss_encode(&m, 2048, h, h.output_len()).unwrap();
            assert!(emsa_pss_verify(&m, &em, 2048, h, h.output_len()));
            let other = h.digest(b"other");
            assert!(!emsa_pss_verify(&other, &em, 2048, h, h.output_len()));
        }
    }
}
