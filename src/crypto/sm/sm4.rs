//! SM4 (GB/T 32907-2016), the 128-bit block cipher with 128-bit keys, in ECB, CBC (with
//! or without PKCS#7 padding) and GCM.
//!
//! ECB is the bare block cipher applied to each block, so it needs no mode crate; CBC comes
//! from `cbc` and GCM from the generic `aes-gcm` instantiated with SM4, as RFC 8998 does.

use ::sm4::Sm4;
use aes_gcm::aead::AeadInOut;
use aes_gcm::AesGcm;
use cbc::cipher::consts::{U12, U13, U14, U15, U16};
use cbc::cipher::{
    Array, BlockCipherDecrypt, BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, InnerIvInit,
    KeyInit,
};
use subtle::{ConditionallySelectable, ConstantTimeEq, ConstantTimeGreater};
use zeroize::Zeroizing;

use crate::crypto::rand::random_fill;
use crate::error::{Error, Result};

const KEY_LEN: usize = 16;
const BLOCK_LEN: usize = 16;

/// The only GCM IV length accepted, in bytes: 96 bits, the length NIST SP 800-38D
/// recommends and RFC 8998 uses. Other lengths are `MechanismParamInvalid`.
pub(crate) const SM4_GCM_IV_LEN: usize = 12;

/// The GCM tag lengths accepted, in bytes (96 to 128 bits). Shorter tags, which SP 800-38D
/// allows only for special uses, are `MechanismParamInvalid`.
pub(crate) const SM4_GCM_TAG_LENS: std::ops::RangeInclusive<usize> = 12..=16;

fn cipher(key: &[u8]) -> Result<Sm4> {
    if key.len() != KEY_LEN {
        return Err(Error::KeySizeRange);
    }
    Sm4::new_from_slice(key).map_err(|_| Error::KeySizeRange)
}

fn check_iv(iv: &[u8]) -> Result<()> {
    if iv.len() == BLOCK_LEN {
        Ok(())
    } else {
        Err(Error::MechanismParamInvalid)
    }
}

/// Views `buf`, whose length the caller has checked to be a multiple of 16, as blocks.
fn blocks_mut(buf: &mut [u8]) -> &mut [Array<u8, U16>] {
    let (blocks, rest) = Array::<u8, U16>::slice_as_chunks_mut(buf);
    debug_assert!(rest.is_empty());
    blocks
}

/// SM4-ECB encryption without padding; `data` must be a multiple of 16 bytes.
pub fn sm4_ecb_encrypt(key: &[u8], data: &[u8]) -> Result<Vec<u8>> {
    let sm4 = cipher(key)?;
    if data.len() % BLOCK_LEN != 0 {
        return Err(Error::DataLenRange);
    }
    let mut out = data.to_vec();
    sm4.encrypt_blocks(blocks_mut(&mut out));
    Ok(out)
}

/// SM4-ECB decryption without padding; `data` must be a multiple of 16 bytes.
pub(crate) fn sm4_ecb_decrypt(key: &[u8], data: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let sm4 = cipher(key)?;
    if data.len() % BLOCK_LEN != 0 {
        return Err(Error::EncryptedDataLenRange);
    }
    let mut out = Zeroizing::new(data.to_vec());
    sm4.decrypt_blocks(blocks_mut(&mut out));
    Ok(out)
}

/// SM4-CBC encryption with a 16-byte IV. With `pkcs7_pad`, any length is accepted and
/// 1 to 16 padding bytes are added (PKCS#7, as CKM_SM4_CBC_PAD); without it, `data` must be
/// a multiple of 16 bytes.
pub(crate) fn sm4_cbc_encrypt(
    key: &[u8],
    iv: &[u8],
    data: &[u8],
    pkcs7_pad: bool,
) -> Result<Vec<u8>> {
    let sm4 = cipher(key)?;
    check_iv(iv)?;
    let mut buf = Zeroizing::new(Vec::with_capacity(data.len() + BLOCK_LEN));
    buf.extend_from_slice(data);
    if pkcs7_pad {
        let pad = BLOCK_LEN - data.len() % BLOCK_LEN;
        // `pad` is 1..=16, so it fits a byte.
        buf.resize(data.len() + pad, pad as u8);
    } else if data.len() % BLOCK_LEN != 0 {
        return Err(Error::DataLenRange);
    }
    let mut enc = cbc::Encryptor::<Sm4>::inner_iv_slice_init(sm4, iv)
        .map_err(|_| Error::MechanismParamInvalid)?;
    enc.encrypt_blocks(blocks_mut(&mut buf));
    Ok(std::mem::take(&mut *buf))
}

/// SM4-CBC decryption with a 16-byte IV. `data` must be a multiple of 16 bytes, and with
/// `pkcs7_pad` also non-empty with valid PKCS#7 padding, which is removed.
pub(crate) fn sm4_cbc_decrypt(
    key: &[u8],
    iv: &[u8],
    data: &[u8],
    pkcs7_pad: bool,
) -> Result<Zeroizing<Vec<u8>>> {
    let sm4 = cipher(key)?;
    check_iv(iv)?;
    if data.len() % BLOCK_LEN != 0 || (pkcs7_pad && data.is_empty()) {
        return Err(Error::EncryptedDataLenRange);
    }
    let mut out = Zeroizing::new(data.to_vec());
    let mut dec = cbc::Decryptor::<Sm4>::inner_iv_slice_init(sm4, iv)
        .map_err(|_| Error::MechanismParamInvalid)?;
    dec.decrypt_blocks(blocks_mut(&mut out));
    if pkcs7_pad {
        let pad = pkcs7_pad_len(&out).ok_or(Error::EncryptedDataInvalid)?;
        let keep = out.len() - pad;
        out.truncate(keep);
    }
    Ok(out)
}

/// The PKCS#7 padding length of `buf` (non-empty, a multiple of 16 bytes), or `None` if
/// the padding is malformed. Every byte of the last block is examined whatever the
/// padding byte says, so the time taken does not depend on where the padding fails.
fn pkcs7_pad_len(buf: &[u8]) -> Option<usize> {
    let last = buf.get(buf.len().checked_sub(BLOCK_LEN)?..)?;
    let pad = *last.last()?;
    let mut ok = pad.ct_gt(&0) & !pad.ct_gt(&(BLOCK_LEN as u8));
    for (i, byte) in last.iter().enumerate() {
        // Position counted from the end, 1..=16: inside the padding when <= pad.
        let from_end = (BLOCK_LEN - i) as u8;
        let in_pad = !from_end.ct_gt(&pad);
        let matches = byte.ct_eq(&pad);
        ok &= u8::conditional_select(&1, &matches.unwrap_u8(), in_pad).ct_eq(&1);
    }
    bool::from(ok).then_some(usize::from(pad))
}

fn gcm_seal<T: aes_gcm::TagSize>(sm4: Sm4, iv: &[u8], aad: &[u8], data: &[u8]) -> Result<Vec<u8>> {
    let gcm = AesGcm::<Sm4, U12, T>::from(sm4);
    let nonce = Array::try_from(iv).map_err(|_| Error::MechanismParamInvalid)?;
    // Zeroizing until encrypted in place, so a failure leaves no plaintext copy behind.
    let mut out = Zeroizing::new(Vec::with_capacity(data.len() + T::USIZE));
    out.extend_from_slice(data);
    let tag = gcm
        .encrypt_inout_detached(&nonce, aad, out.as_mut_slice().into())
        // The only failure is data or AAD beyond GCM's limits (2^36 - 32 bytes, 2^61 - 1).
        .map_err(|_| Error::DataLenRange)?;
    out.extend_from_slice(&tag);
    Ok(std::mem::take(&mut *out))
}

fn gcm_open<T: aes_gcm::TagSize>(
    sm4: Sm4,
    iv: &[u8],
    aad: &[u8],
    data_and_tag: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let gcm = AesGcm::<Sm4, U12, T>::from(sm4);
    let nonce = Array::try_from(iv).map_err(|_| Error::MechanismParamInvalid)?;
    let split = data_and_tag
        .len()
        .checked_sub(T::USIZE)
        .ok_or(Error::EncryptedDataLenRange)?;
    let (data, tag) = data_and_tag.split_at(split);
    let tag = Array::try_from(tag).map_err(|_| Error::EncryptedDataLenRange)?;
    let mut out = Zeroizing::new(data.to_vec());
    gcm.decrypt_inout_detached(&nonce, aad, out.as_mut_slice().into(), &tag)
        .map_err(|_| Error::EncryptedDataInvalid)?;
    Ok(out)
}

fn check_gcm_params(iv: &[u8], tag_len: usize) -> Result<()> {
    if iv.len() == SM4_GCM_IV_LEN && SM4_GCM_TAG_LENS.contains(&tag_len) {
        Ok(())
    } else {
        Err(Error::MechanismParamInvalid)
    }
}

/// SM4-GCM encryption; returns ciphertext || tag.
///
/// Accepts exactly a 12-byte IV ([`SM4_GCM_IV_LEN`]) and tag lengths of 12, 13, 14, 15 or
/// 16 bytes ([`SM4_GCM_TAG_LENS`]); anything else is `MechanismParamInvalid`. The tag is
/// the full GCM tag truncated to `tag_len` bytes (SP 800-38D §5.2.1.2). `aad` may be empty.
pub(crate) fn sm4_gcm_encrypt(
    key: &[u8],
    iv: &[u8],
    aad: &[u8],
    data: &[u8],
    tag_len: usize,
) -> Result<Vec<u8>> {
    let sm4 = cipher(key)?;
    check_gcm_params(iv, tag_len)?;
    match tag_len {
        12 => gcm_seal::<U12>(sm4, iv, aad, data),
        13 => gcm_seal::<U13>(sm4, iv, aad, data),
        14 => gcm_seal::<U14>(sm4, iv, aad, data),
        15 => gcm_seal::<U15>(sm4, iv, aad, data),
        16 => gcm_seal::<U16>(sm4, iv, aad, data),
        _ => Err(Error::MechanismParamInvalid),
    }
}

/// SM4-GCM decryption of ciphertext || tag, accepting the same IV and tag lengths as
/// [`sm4_gcm_encrypt`]. Input shorter than the tag is `EncryptedDataLenRange`; a tag that
/// does not verify is `EncryptedDataInvalid`, and then no plaintext is returned.
pub(crate) fn sm4_gcm_decrypt(
    key: &[u8],
    iv: &[u8],
    aad: &[u8],
    data_and_tag: &[u8],
    tag_len: usize,
) -> Result<Zeroizing<Vec<u8>>> {
    let sm4 = cipher(key)?;
    check_gcm_params(iv, tag_len)?;
    match tag_len {
        12 => gcm_open::<U12>(sm4, iv, aad, data_and_tag),
        13 => gcm_open::<U13>(sm4, iv, aad, data_and_tag),
        14 => gcm_open::<U14>(sm4, iv, aad, data_and_tag),
        15 => gcm_open::<U15>(sm4, iv, aad, data_and_tag),
        16 => gcm_open::<U16>(sm4, iv, aad, data_and_tag),
        _ => Err(Error::MechanismParamInvalid),
    }
}

/// A fresh random SM4 key.
pub fn sm4_generate_key() -> Result<Zeroizing<[u8; 16]>> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    random_fill(&mut key[..])?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::sm::test_support::{assert_err, hex};

    // GB/T 32907-2016 Annex A, example 1 (and its million-fold iteration, example 2).
    const STD_KEY: &str = "0123456789abcdeffedcba9876543210";
    const STD_PLAIN: &str = "0123456789abcdeffedcba9876543210";
    const STD_CIPHER: &str = "681edf34d206965e86b3e94f536e4246";
    const STD_CIPHER_MILLION: &str = "595298c7c6fd271f0402f804c33d3f66";

    // SM4-CBC two-block vector from OpenSSL's test/recipes/30-test_evp_data/evpciph_sm4.txt
    // (key = IV = plaintext block = the GB/T 32907 example key).
    const CBC_IV: &str = "0123456789abcdeffedcba9876543210";
    const CBC_PLAIN: &str = "0123456789abcdeffedcba9876543210 0123456789abcdeffedcba9876543210";
    const CBC_CIPHER: &str = "2677f46b09c122cc975533105bd4a22a f6125f7275ce552c3a2bbcf533de8a3b";

    // RFC 8998 Appendix A.1 (SM4-GCM).
    const GCM_KEY: &str = "0123456789abcdeffedcba9876543210";
    const GCM_IV: &str = "00001234567800000000abcd";
    const GCM_AAD: &str = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
    const GCM_PLAIN: &str = "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbb ccccccccccccccccdddddddddddddddd
                             eeeeeeeeeeeeeeeeffffffffffffffff eeeeeeeeeeeeeeeeaaaaaaaaaaaaaaaa";
    const GCM_CIPHER: &str = "17f399f08c67d5ee19d0dc9969c4bb7d 5fd46fd3756489069157b282bb200735
                              d82710ca5c22f0ccfa7cbf93d496ac15 a56834cbcf98c397b4024a2691233b8d";
    const GCM_TAG: &str = "83de3541e4c2b58177e065a9bf7b62ec";

    #[test]
    fn ecb_single_block_matches_the_standard_example() {
        let ct = sm4_ecb_encrypt(&hex(STD_KEY), &hex(STD_PLAIN)).unwrap();
        assert_eq!(ct, hex(STD_CIPHER));
        let pt = sm4_ecb_decrypt(&hex(STD_KEY), &ct).unwrap();
        assert_eq!(*pt, hex(STD_PLAIN));
    }

    #[test]
    fn ecb_encrypts_each_block_independently() {
        let two = [hex(STD_PLAIN), hex(STD_PLAIN)].concat();
        let ct = sm4_ecb_encrypt(&hex(STD_KEY), &two).unwrap();
        assert_eq!(ct, [hex(STD_CIPHER), hex(STD_CIPHER)].concat());
    }

    #[test]
    fn ecb_encryption_iterated_a_million_times_matches_the_standard_example() {
        let sm4 = cipher(&hex(STD_KEY)).unwrap();
        let mut block = Array::<u8, U16>::try_from(hex(STD_PLAIN).as_slice()).unwrap();
        for _ in 0..1_000_000 {
            sm4.encrypt_block(&mut block);
        }
        assert_eq!(block.to_vec(), hex(STD_CIPHER_MILLION));
    }

    #[test]
    fn cbc_without_padding_matches_the_openssl_test_vector() {
        let (key, iv) = (hex(STD_KEY), hex(CBC_IV));
        let ct = sm4_cbc_encrypt(&key, &iv, &hex(CBC_PLAIN), false).unwrap();
        assert_eq!(ct, hex(CBC_CIPHER));
        let pt = sm4_cbc_decrypt(&key, &iv, &ct, false).unwrap();
        assert_eq!(*pt, hex(CBC_PLAIN));
    }

    #[test]
    fn cbc_with_padding_round_trips_every_length_around_a_block() {
        let (key, iv) = (hex(STD_KEY), hex(CBC_IV));
        for len in 0..=33 {
            let data: Vec<u8> = (0..len as u8).collect();
            let ct = sm4_cbc_encrypt(&key, &iv, &data, true).unwrap();
            assert_eq!(ct.len(), (len / 16 + 1) * 16, "length {len}");
            assert_eq!(*sm4_cbc_decrypt(&key, &iv, &ct, true).unwrap(), data);
        }
    }

    #[test]
    fn gcm_matches_rfc_8998() {
        let (key, iv, aad) = (hex(GCM_KEY), hex(GCM_IV), hex(GCM_AAD));
        let out = sm4_gcm_encrypt(&key, &iv, &aad, &hex(GCM_PLAIN), 16).unwrap();
        assert_eq!(out, [hex(GCM_CIPHER), hex(GCM_TAG)].concat());
        let pt = sm4_gcm_decrypt(&key, &iv, &aad, &out, 16).unwrap();
        assert_eq!(*pt, hex(GCM_PLAIN));
    }

    #[test]
    fn gcm_short_tags_are_the_truncated_rfc_8998_tag() {
        let (key, iv, aad) = (hex(GCM_KEY), hex(GCM_IV), hex(GCM_AAD));
        let full_tag = hex(GCM_TAG);
        for tag_len in 12..=16 {
            let out = sm4_gcm_encrypt(&key, &iv, &aad, &hex(GCM_PLAIN), tag_len).unwrap();
            let expected = [hex(GCM_CIPHER), full_tag[..tag_len].to_vec()].concat();
            assert_eq!(out, expected, "tag length {tag_len}");
            let pt = sm4_gcm_decrypt(&key, &iv, &aad, &out, tag_len).unwrap();
            assert_eq!(*pt, hex(GCM_PLAIN));
        }
    }

    #[test]
    fn gcm_accepts_empty_plaintext_and_empty_aad() {
        let key = sm4_generate_key().unwrap();
        let iv = [7u8; 12];
        let out = sm4_gcm_encrypt(&key[..], &iv, b"", b"", 16).unwrap();
        assert_eq!(out.len(), 16);
        assert!(sm4_gcm_decrypt(&key[..], &iv, b"", &out, 16)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn generated_keys_are_sixteen_bytes_and_differ() {
        let (a, b) = (sm4_generate_key().unwrap(), sm4_generate_key().unwrap());
        assert_ne!(*a, *b);
    }

    #[test]
    fn keys_of_the_wrong_size_are_refused() {
        for len in [0, 15, 17, 32] {
            let key = vec![1u8; len];
            let iv = [0u8; 16];
            assert_err!(sm4_ecb_encrypt(&key, &[0; 16]), KeySizeRange);
            assert_err!(sm4_ecb_decrypt(&key, &[0; 16]), KeySizeRange);
            assert_err!(sm4_cbc_encrypt(&key, &iv, &[0; 16], false), KeySizeRange);
            assert_err!(sm4_cbc_decrypt(&key, &iv, &[0; 16], true), KeySizeRange);
            assert_err!(
                sm4_gcm_encrypt(&key, &iv[..12], b"", b"x", 16),
                KeySizeRange
            );
            assert_err!(
                sm4_gcm_decrypt(&key, &iv[..12], b"", &[0; 17], 16),
                KeySizeRange
            );
        }
    }

    #[test]
    fn cbc_ivs_of_the_wrong_size_are_refused() {
        let key = [1u8; 16];
        for len in [0, 8, 12, 15, 17] {
            let iv = vec![0u8; len];
            assert_err!(
                sm4_cbc_encrypt(&key, &iv, &[0; 16], true),
                MechanismParamInvalid
            );
            assert_err!(
                sm4_cbc_decrypt(&key, &iv, &[0; 16], false),
                MechanismParamInvalid
            );
        }
    }

    #[test]
    fn gcm_iv_and_tag_lengths_outside_the_documented_sets_are_refused() {
        let key = [1u8; 16];
        for iv_len in [0, 8, 11, 13, 16] {
            let iv = vec![0u8; iv_len];
            assert_err!(
                sm4_gcm_encrypt(&key, &iv, b"", b"x", 16),
                MechanismParamInvalid
            );
            assert_err!(
                sm4_gcm_decrypt(&key, &iv, b"", &[0; 17], 16),
                MechanismParamInvalid
            );
        }
        for tag_len in [0, 4, 8, 11, 17, 32] {
            let iv = [0u8; 12];
            assert_err!(
                sm4_gcm_encrypt(&key, &iv, b"", b"x", tag_len),
                MechanismParamInvalid
            );
            assert_err!(
                sm4_gcm_decrypt(&key, &iv, b"", &[0; 40], tag_len),
                MechanismParamInvalid
            );
        }
    }

    #[test]
    fn unpadded_plaintext_that_is_not_whole_blocks_is_refused() {
        let (key, iv) = ([1u8; 16], [0u8; 16]);
        for len in [1, 15, 17, 31] {
            let data = vec![0u8; len];
            assert_err!(sm4_ecb_encrypt(&key, &data), DataLenRange);
            assert_err!(sm4_cbc_encrypt(&key, &iv, &data, false), DataLenRange);
        }
    }

    #[test]
    fn ciphertext_that_is_not_whole_blocks_is_refused() {
        let (key, iv) = ([1u8; 16], [0u8; 16]);
        for len in [1, 15, 17] {
            let data = vec![0u8; len];
            assert_err!(sm4_ecb_decrypt(&key, &data), EncryptedDataLenRange);
            assert_err!(
                sm4_cbc_decrypt(&key, &iv, &data, false),
                EncryptedDataLenRange
            );
            assert_err!(
                sm4_cbc_decrypt(&key, &iv, &data, true),
                EncryptedDataLenRange
            );
        }
        assert_err!(sm4_cbc_decrypt(&key, &iv, &[], true), EncryptedDataLenRange);
    }

    #[test]
    fn bad_pkcs7_padding_is_refused() {
        let (key, iv) = ([1u8; 16], [0u8; 16]);
        // Encrypt chosen last blocks without padding, then decrypt them as padded.
        let mut bad_blocks = vec![[0u8; 16], [17u8; 16]];
        let mut mixed = [4u8; 16];
        mixed[13] = 3; // the third-from-last byte disagrees with the padding length 4
        bad_blocks.push(mixed);
        let mut long = [16u8; 16];
        long[0] = 15;
        bad_blocks.push(long);
        for block in bad_blocks {
            let ct = sm4_cbc_encrypt(&key, &iv, &block, false).unwrap();
            let pt = sm4_cbc_decrypt(&key, &iv, &ct, true);
            assert_err!(pt, EncryptedDataInvalid, "padding block {block:?}");
        }
        let good = sm4_cbc_encrypt(&key, &iv, &[16u8; 16], false).unwrap();
        assert!(sm4_cbc_decrypt(&key, &iv, &good, true).unwrap().is_empty());
    }

    #[test]
    fn a_tampered_gcm_tag_ciphertext_or_aad_is_refused() {
        let (key, iv, aad) = (hex(GCM_KEY), hex(GCM_IV), hex(GCM_AAD));
        let good = sm4_gcm_encrypt(&key, &iv, &aad, &hex(GCM_PLAIN), 16).unwrap();
        for i in [0, 40, good.len() - 16, good.len() - 1] {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            assert_err!(
                sm4_gcm_decrypt(&key, &iv, &aad, &bad, 16),
                EncryptedDataInvalid
            );
        }
        assert_err!(
            sm4_gcm_decrypt(&key, &iv, b"other", &good, 16),
            EncryptedDataInvalid
        );
        assert_err!(
            sm4_gcm_decrypt(&key, &iv, &aad, &good[..15], 16),
            EncryptedDataLenRange
        );
        // A 16-byte tag read as a 12-byte one is a different split and must not verify.
        assert_err!(
            sm4_gcm_decrypt(&key, &iv, &aad, &good, 12),
            EncryptedDataInvalid
        );
    }
}
