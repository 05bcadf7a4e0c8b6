//! Multi-part behaviour of [`AesStream`] and the errors of every AES function.

use super::*;
use crate::error::Error;

const KEYS: [usize; 3] = [16, 24, 32];

fn random(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    crate::crypto::rand::random_fill(&mut v).unwrap();
    v
}

/// The modes to check, as constructors of a fresh stream for one direction.
type Make = Box<dyn Fn(Direction) -> AesStream>;

fn modes(key: &[u8]) -> Vec<(&'static str, Make, usize)> {
    let (k1, k2, k3, k4) = (key.to_vec(), key.to_vec(), key.to_vec(), key.to_vec());
    let iv = random(16);
    let iv2 = iv.clone();
    let mut counter = random(16);
    // Keep the low 64 bits far from wrapping for a 50-byte input.
    counter[8] = 0;
    vec![
        (
            "ECB",
            Box::new(move |d| AesStream::ecb(&k1, d).unwrap()) as Make,
            48,
        ),
        (
            "CBC",
            Box::new(move |d| AesStream::cbc(&k2, &iv, d, false).unwrap()),
            48,
        ),
        (
            "CBC-PAD",
            Box::new(move |d| AesStream::cbc(&k3, &iv2, d, true).unwrap()),
            50,
        ),
        (
            "CTR",
            Box::new(move |d| AesStream::ctr(&k4, &counter, 64, d).unwrap()),
            50,
        ),
    ]
}

/// Feeds `parts` through `stream`, checking the length bounds on the way.
fn feed(mut stream: AesStream, parts: &[&[u8]]) -> Vec<u8> {
    let whole: usize = parts.iter().map(|p| p.len()).sum();
    let total_bound = stream.total_len_bound(whole);
    let mut out = Vec::new();
    for part in parts {
        let bound = stream.update_len_bound(part.len());
        let got = stream.update(part).unwrap();
        assert!(
            got.len() <= bound,
            "update gave {} > bound {bound}",
            got.len()
        );
        out.extend_from_slice(&got);
    }
    let bound = stream.finish_len_bound();
    let got = stream.finish().unwrap();
    assert!(
        got.len() <= bound,
        "finish gave {} > bound {bound}",
        got.len()
    );
    out.extend_from_slice(&got);
    assert!(
        out.len() <= total_bound,
        "{} > total bound {total_bound}",
        out.len()
    );
    out
}

#[test]
fn streams_and_macs_can_move_between_threads() {
    fn send<T: Send>() {}
    send::<AesStream>();
    send::<Cmac>();
}

#[test]
fn every_split_of_the_input_gives_the_one_call_result() {
    for key_len in KEYS {
        for (name, make, len) in modes(&random(key_len)) {
            let plain = random(len);
            let cipher = feed(make(Direction::Encrypt), &[&plain]);
            assert_eq!(feed(make(Direction::Decrypt), &[&cipher]), plain, "{name}");
            for at in 0..=plain.len() {
                let (a, b) = plain.split_at(at);
                assert_eq!(
                    feed(make(Direction::Encrypt), &[a, b]),
                    cipher,
                    "{name} @{at}"
                );
            }
            for at in 0..=cipher.len() {
                let (a, b) = cipher.split_at(at);
                assert_eq!(
                    feed(make(Direction::Decrypt), &[a, b]),
                    plain,
                    "{name} @{at}"
                );
            }
        }
    }
}

#[test]
fn input_in_chunks_of_every_size_gives_the_one_call_result() {
    for (name, make, len) in modes(&random(16)) {
        let plain = random(len);
        let cipher = feed(make(Direction::Encrypt), &[&plain]);
        for size in 1..=len {
            let parts: Vec<&[u8]> = plain.chunks(size).collect();
            assert_eq!(
                feed(make(Direction::Encrypt), &parts),
                cipher,
                "{name} /{size}"
            );
            let parts: Vec<&[u8]> = cipher.chunks(size).collect();
            assert_eq!(
                feed(make(Direction::Decrypt), &parts),
                plain,
                "{name} /{size}"
            );
        }
    }
}

#[test]
fn padded_decryption_holds_back_the_last_block_until_finish() {
    let key = random(16);
    let iv = random(16);
    let cipher = feed(
        AesStream::cbc(&key, &iv, Direction::Encrypt, true).unwrap(),
        &[&[7u8; 32]],
    );
    assert_eq!(cipher.len(), 48);
    let mut dec = AesStream::cbc(&key, &iv, Direction::Decrypt, true).unwrap();
    assert_eq!(dec.update_len_bound(32), 16);
    assert_eq!(dec.update(&cipher[..32]).unwrap().len(), 16);
    assert_eq!(dec.update_len_bound(16), 16);
    assert_eq!(dec.update(&cipher[32..]).unwrap().len(), 16);
    assert_eq!(dec.finish_len_bound(), 15);
    assert!(dec.finish().unwrap().is_empty());
}

#[test]
fn padding_of_every_length_round_trips() {
    let (key, iv) = (random(32), random(16));
    for len in 0..=48 {
        let plain = random(len);
        let cipher = feed(
            AesStream::cbc(&key, &iv, Direction::Encrypt, true).unwrap(),
            &[&plain],
        );
        assert_eq!(cipher.len(), (len / 16 + 1) * 16);
        let dec = AesStream::cbc(&key, &iv, Direction::Decrypt, true).unwrap();
        assert_eq!(feed(dec, &[&cipher]), plain);
    }
}

#[test]
fn ctr_counts_only_the_low_counter_bits_and_carries_within_them() {
    // Low 32 bits all ones: with 64 counter bits the second block carries into bit 32.
    let key = random(16);
    let counter: [u8; 16] = *b"\x01\x02\x03\x04\x05\x06\x07\x08\x00\x00\x00\x07\xff\xff\xff\xff";
    let mut next = counter;
    next[8..].copy_from_slice(&0x0000_0008_0000_0000u64.to_be_bytes());
    let ecb = |block: &[u8]| feed(AesStream::ecb(&key, Direction::Encrypt).unwrap(), &[block]);
    let mut keystream = ecb(&counter);
    keystream.extend(ecb(&next));
    let ctr = AesStream::ctr(&key, &counter, 64, Direction::Encrypt).unwrap();
    assert_eq!(feed(ctr, &[&[0u8; 32]]), keystream);
}

#[test]
fn ctr_refuses_input_that_would_wrap_the_counter() {
    let key = random(16);
    // 32 counter bits at 0xffff_fffe: two blocks are left (…fe and …ff), then it wraps.
    let mut counter = [0xabu8; 16];
    counter[12..].copy_from_slice(&0xffff_fffeu32.to_be_bytes());
    for dir in [Direction::Encrypt, Direction::Decrypt] {
        let wrap_error = |r: Result<_>| match dir {
            Direction::Encrypt => matches!(r, Err(Error::DataLenRange)),
            Direction::Decrypt => matches!(r, Err(Error::EncryptedDataLenRange)),
        };
        let mut s = AesStream::ctr(&key, &counter, 32, dir).unwrap();
        assert!(wrap_error(s.update(&[0; 33])));
        // The refused call consumed nothing: all 32 bytes are still available.
        assert_eq!(s.update(&[0; 20]).unwrap().len(), 20);
        assert_eq!(s.update(&[0; 12]).unwrap().len(), 12);
        assert!(wrap_error(s.update(&[0; 1])));
        assert!(s.update(&[]).unwrap().is_empty());
        assert!(s.finish().unwrap().is_empty());
    }
    // One counter bit set: one block left. All 128 bits at all ones: one block left.
    let mut one = AesStream::ctr(&key, &[0xff; 16], 1, Direction::Encrypt).unwrap();
    assert!(matches!(one.update(&[0; 17]), Err(Error::DataLenRange)));
    assert_eq!(one.update(&[0; 16]).unwrap().len(), 16);
    let mut all = AesStream::ctr(&key, &[0xff; 16], 128, Direction::Encrypt).unwrap();
    assert!(matches!(all.update(&[0; 17]), Err(Error::DataLenRange)));
    // From zero, 128 counter bits never run out in practice.
    let mut zero = AesStream::ctr(&key, &[0; 16], 128, Direction::Encrypt).unwrap();
    assert_eq!(zero.update(&[0; 4096]).unwrap().len(), 4096);
}

#[test]
fn keys_of_a_wrong_length_are_key_size_range_everywhere() {
    let iv = [0u8; 16];
    for len in [0, 1, 8, 15, 17, 20, 23, 25, 31, 33, 48, 64] {
        let key = vec![0x42u8; len];
        let ks = |r: Result<()>| matches!(r, Err(Error::KeySizeRange));
        assert!(ks(AesStream::ecb(&key, Direction::Encrypt).map(|_| ())));
        assert!(ks(
            AesStream::cbc(&key, &iv, Direction::Decrypt, true).map(|_| ())
        ));
        assert!(ks(
            AesStream::ctr(&key, &iv, 128, Direction::Encrypt).map(|_| ())
        ));
        assert!(ks(gcm_encrypt(&key, &iv[..12], &[], &[1], 128).map(|_| ())));
        assert!(ks(
            gcm_decrypt(&key, &iv[..12], &[], &[0; 16], 128).map(|_| ())
        ));
        assert!(ks(cmac(&key, b"x").map(|_| ())));
        assert!(ks(key_wrap(&key, &[0; 16]).map(|_| ())));
        assert!(ks(key_unwrap(&key, &[0; 24]).map(|_| ())));
        assert!(ks(key_wrap_pad(&key, &[0; 5]).map(|_| ())));
        assert!(ks(key_unwrap_pad(&key, &[0; 16]).map(|_| ())));
        assert!(ks(check_value(&key).map(|_| ())));
    }
}

#[test]
fn bad_mechanism_parameters_are_refused() {
    let key = [0x11u8; 16];
    let bad = |r: Result<()>| matches!(r, Err(Error::MechanismParamInvalid));
    for iv_len in [0, 8, 12, 15, 17, 32] {
        let iv = vec![0u8; iv_len];
        assert!(bad(
            AesStream::cbc(&key, &iv, Direction::Encrypt, false).map(|_| ())
        ));
        assert!(bad(
            AesStream::ctr(&key, &iv, 64, Direction::Encrypt).map(|_| ())
        ));
    }
    for bits in [0, 129, 256, usize::MAX] {
        assert!(bad(AesStream::ctr(
            &key,
            &[0; 16],
            bits,
            Direction::Encrypt
        )
        .map(|_| ())));
    }
    assert!(bad(gcm_encrypt(&key, &[], &[], b"data", 128).map(|_| ())));
    assert!(bad(gcm_decrypt(&key, &[], &[], &[0; 20], 128).map(|_| ())));
    for bits in [0, 8, 16, 31, 33, 48, 56, 72, 80, 88, 95, 100, 127, 129, 136] {
        assert!(bad(
            gcm_encrypt(&key, &[0; 12], &[], b"data", bits).map(|_| ())
        ));
        assert!(bad(
            gcm_decrypt(&key, &[0; 12], &[], &[0; 20], bits).map(|_| ())
        ));
    }
}

#[test]
fn partial_blocks_left_at_finish_are_length_errors() {
    let (key, iv) = ([3u8; 24], [4u8; 16]);
    for pad in [false, true] {
        for len in [1, 15, 17, 31] {
            let mut dec = AesStream::cbc(&key, &iv, Direction::Decrypt, pad).unwrap();
            dec.update(&vec![0; len]).unwrap();
            assert!(matches!(dec.finish(), Err(Error::EncryptedDataLenRange)));
        }
    }
    for len in [1, 15, 17, 31] {
        let mut enc = AesStream::cbc(&key, &iv, Direction::Encrypt, false).unwrap();
        enc.update(&vec![0; len]).unwrap();
        assert!(matches!(enc.finish(), Err(Error::DataLenRange)));
        let mut ecb = AesStream::ecb(&key, Direction::Encrypt).unwrap();
        ecb.update(&vec![0; len]).unwrap();
        assert!(matches!(ecb.finish(), Err(Error::DataLenRange)));
        let mut ecb = AesStream::ecb(&key, Direction::Decrypt).unwrap();
        ecb.update(&vec![0; len]).unwrap();
        assert!(matches!(ecb.finish(), Err(Error::EncryptedDataLenRange)));
    }
    // Padded decryption of nothing at all: no block to carry the padding.
    let dec = AesStream::cbc(&key, &iv, Direction::Decrypt, true).unwrap();
    assert!(matches!(dec.finish(), Err(Error::EncryptedDataLenRange)));
}

#[test]
fn cbc_pad_with_a_corrupted_last_block_is_encrypted_data_invalid() {
    let (key, iv) = (random(16), random(16));
    // 13 bytes: a final block with 3 bytes of padding.
    let cipher = feed(
        AesStream::cbc(&key, &iv, Direction::Encrypt, true).unwrap(),
        &[&[9u8; 29]],
    );
    // Changing byte i of the second-to-last block flips byte i of the last plaintext
    // block: bytes 13..16 are the padding.
    for (i, flip) in [(13, 0x01), (14, 0x01), (15, 0x01), (15, 0x03), (15, 0x13)] {
        let mut bad = cipher.clone();
        bad[i] ^= flip;
        let mut dec = AesStream::cbc(&key, &iv, Direction::Decrypt, true).unwrap();
        dec.update(&bad).unwrap();
        assert!(
            matches!(dec.finish(), Err(Error::EncryptedDataInvalid)),
            "{i}^{flip}"
        );
    }
    // The last byte decrypting to 0 or more than 16 is invalid too.
    let pad_byte = |value: u8| {
        let block = feed(
            AesStream::cbc(&key, &iv, Direction::Encrypt, false).unwrap(),
            &[&[value; 16]],
        );
        let dec = AesStream::cbc(&key, &iv, Direction::Decrypt, true).unwrap();
        feed_result(dec, &block)
    };
    assert!(matches!(pad_byte(0), Err(Error::EncryptedDataInvalid)));
    assert!(matches!(pad_byte(17), Err(Error::EncryptedDataInvalid)));
    assert_eq!(pad_byte(16).unwrap().len(), 0);
}

fn feed_result(mut stream: AesStream, input: &[u8]) -> Result<Vec<u8>> {
    let mut out = stream.update(input)?.to_vec();
    out.extend_from_slice(&stream.finish()?);
    Ok(out)
}

#[test]
fn gcm_input_shorter_than_the_tag_is_encrypted_data_len_range() {
    let key = [5u8; 32];
    for (bits, short) in [(128, 15), (96, 11), (32, 3)] {
        let r = gcm_decrypt(&key, &[0; 12], &[], &vec![0; short], bits);
        assert!(matches!(r, Err(Error::EncryptedDataLenRange)));
    }
}

#[test]
fn key_wrap_length_and_integrity_errors() {
    let kek = [7u8; 16];
    for len in [0, 8, 15, 17, 20, 23] {
        let r = key_wrap(&kek, &vec![1; len]);
        assert!(matches!(r, Err(Error::DataLenRange)), "KW of {len} bytes");
    }
    assert!(matches!(key_wrap_pad(&kek, &[]), Err(Error::DataLenRange)));
    for len in [0, 8, 16, 23, 25, 31] {
        let r = key_unwrap(&kek, &vec![1; len]);
        assert!(
            matches!(r, Err(Error::WrappedKeyLenRange)),
            "KW unwrap {len}"
        );
    }
    for len in [0, 8, 15, 17, 23] {
        let r = key_unwrap_pad(&kek, &vec![1; len]);
        assert!(
            matches!(r, Err(Error::WrappedKeyLenRange)),
            "KWP unwrap {len}"
        );
    }
    for kek_len in KEYS {
        let kek = random(kek_len);
        let mut wrapped = key_wrap(&kek, &[2; 32]).unwrap();
        wrapped[10] ^= 1;
        assert!(matches!(
            key_unwrap(&kek, &wrapped),
            Err(Error::WrappedKeyInvalid)
        ));
        let mut wrapped = key_wrap_pad(&kek, &[2; 20]).unwrap();
        wrapped[3] ^= 1;
        assert!(matches!(
            key_unwrap_pad(&kek, &wrapped),
            Err(Error::WrappedKeyInvalid)
        ));
        // A KW blob is not a KWP blob, nor the other way round.
        let kw = key_wrap(&kek, &[2; 24]).unwrap();
        assert!(matches!(
            key_unwrap_pad(&kek, &kw),
            Err(Error::WrappedKeyInvalid)
        ));
        let kwp = key_wrap_pad(&kek, &[2; 24]).unwrap();
        assert!(matches!(
            key_unwrap(&kek, &kwp),
            Err(Error::WrappedKeyInvalid)
        ));
    }
}
