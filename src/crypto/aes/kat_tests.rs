//! Known-answer tests from published vectors: FIPS-197 Appendix C; NIST SP 800-38A
//! Appendix F.1 (ECB), F.2 (CBC), F.5 (CTR); the GCM test cases 1-18 of McGrew & Viega,
//! "The Galois/Counter Mode of Operation" (republished by NIST); RFC 4493 §4 and NIST
//! SP 800-38B Appendix D (CMAC); RFC 3394 §4 (KW); RFC 5649 §6 (KWP).

use super::gcm::Gcm;
use super::*;
use crate::error::Error;

fn h(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

// --- NIST SP 800-38A, Appendix F: one plaintext, three keys.

const SP800_38A_PLAINTEXT: &str = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
                                   30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";
const SP800_38A_KEYS: [&str; 3] = [
    "2b7e151628aed2a6abf7158809cf4f3c",
    "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b",
    "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
];
const F1_ECB: [&str; 3] = [
    "3ad77bb40d7a3660a89ecaf32466ef97f5d3d58503b9699de785895a96fdbaaf\
     43b1cd7f598ece23881b00e3ed0306887b0c785e27e8ad3f8223207104725dd4",
    "bd334f1d6e45f25ff712a214571fa5cc974104846d0ad3ad7734ecb3ecee4eef\
     ef7afd2270e2e60adce0ba2face6444e9a4b41ba738d6c72fb16691603c18e0e",
    "f3eed1bdb5d2a03c064b5a7e3db181f8591ccb10d410ed26dc5ba74a31362870\
     b6ed21b99ca6f4f9f153e7b1beafed1d23304b7a39f9f3ff067d8d8f9e24ecc7",
];
const F2_CBC_IV: &str = "000102030405060708090a0b0c0d0e0f";
const F2_CBC: [&str; 3] = [
    "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2\
     73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7",
    "4f021db243bc633d7178183a9fa071e8b4d9ada9ad7dedf4e5e738763f69145a\
     571b242012fb7ae07fa9baac3df102e008b0e27988598881d920a9e64f5615cd",
    "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d\
     39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b",
];
const F5_CTR_COUNTER: &str = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
const F5_CTR: [&str; 3] = [
    "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff\
     5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee",
    "1abc932417521ca24f2b0459fe7e6e0b090339ec0aa6faefd5ccc2c6f4ce8e94\
     1e36b26bd1ebc670d1bd1d665620abf74f78a7f6d29809585a97daec58c6b050",
    "601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5\
     2b0930daa23de94ce87017ba2d84988ddfc9c58db67aada613c2dd08457941a6",
];

/// Runs `stream` over `input` in one update and a finish.
fn run(mut stream: AesStream, input: &[u8]) -> Vec<u8> {
    let mut out = stream.update(input).expect("update").to_vec();
    out.extend_from_slice(&stream.finish().expect("finish"));
    out
}

#[test]
fn ecb_matches_sp800_38a_f1_for_all_key_sizes() {
    let pt = h(SP800_38A_PLAINTEXT);
    for (key, ct) in SP800_38A_KEYS.iter().zip(F1_ECB) {
        let (key, ct) = (h(key), h(ct));
        let enc = AesStream::ecb(&key, Direction::Encrypt).unwrap();
        assert_eq!(run(enc, &pt), ct);
        let dec = AesStream::ecb(&key, Direction::Decrypt).unwrap();
        assert_eq!(run(dec, &ct), pt);
    }
}

#[test]
fn cbc_matches_sp800_38a_f2_for_all_key_sizes() {
    let (pt, iv) = (h(SP800_38A_PLAINTEXT), h(F2_CBC_IV));
    for (key, ct) in SP800_38A_KEYS.iter().zip(F2_CBC) {
        let (key, ct) = (h(key), h(ct));
        let enc = AesStream::cbc(&key, &iv, Direction::Encrypt, false).unwrap();
        assert_eq!(run(enc, &pt), ct);
        let dec = AesStream::cbc(&key, &iv, Direction::Decrypt, false).unwrap();
        assert_eq!(run(dec, &ct), pt);
    }
}

#[test]
fn cbc_pad_adds_one_block_of_padding_after_the_sp800_38a_f2_ciphertext() {
    // With a whole-block plaintext, PKCS#7 appends a block of sixteen 0x10 bytes; the
    // first four ciphertext blocks are F.2's, the fifth encrypts 0x10.. chained from it.
    let (pt, iv) = (h(SP800_38A_PLAINTEXT), h(F2_CBC_IV));
    for (key, ct) in SP800_38A_KEYS.iter().zip(F2_CBC) {
        let (key, ct) = (h(key), h(ct));
        let enc = AesStream::cbc(&key, &iv, Direction::Encrypt, true).unwrap();
        let padded = run(enc, &pt);
        assert_eq!(padded.len(), 80);
        assert_eq!(&padded[..64], &ct[..]);
        let plain = AesStream::cbc(&key, &ct[48..], Direction::Encrypt, false).unwrap();
        assert_eq!(run(plain, &[0x10; 16]), &padded[64..]);
        let dec = AesStream::cbc(&key, &iv, Direction::Decrypt, true).unwrap();
        assert_eq!(run(dec, &padded), pt);
    }
}

#[test]
fn ctr_matches_sp800_38a_f5_for_all_key_sizes() {
    let (pt, counter) = (h(SP800_38A_PLAINTEXT), h(F5_CTR_COUNTER));
    for (key, ct) in SP800_38A_KEYS.iter().zip(F5_CTR) {
        let (key, ct) = (h(key), h(ct));
        for bits in [128, 64, 32] {
            let enc = AesStream::ctr(&key, &counter, bits, Direction::Encrypt).unwrap();
            assert_eq!(run(enc, &pt), ct, "counter bits {bits}");
            let dec = AesStream::ctr(&key, &counter, bits, Direction::Decrypt).unwrap();
            assert_eq!(run(dec, &ct), pt, "counter bits {bits}");
        }
    }
}

#[test]
fn ecb_matches_fips_197_appendix_c() {
    let pt = h("00112233445566778899aabbccddeeff");
    let cases = [
        (
            "000102030405060708090a0b0c0d0e0f",
            "69c4e0d86a7b0430d8cdb78070b4c55a",
        ),
        (
            "000102030405060708090a0b0c0d0e0f1011121314151617",
            "dda97ca4864cdfe06eaf70a0ec0d7191",
        ),
        (
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            "8ea2b7ca516745bfeafc49904b496089",
        ),
    ];
    for (key, ct) in cases {
        let enc = AesStream::ecb(&h(key), Direction::Encrypt).unwrap();
        assert_eq!(run(enc, &pt), h(ct));
    }
}

#[test]
fn check_value_is_the_start_of_the_encrypted_zero_block() {
    // FIPS-197 C.1's key; the encryption of the zero block computed by ECB here.
    let key = h("000102030405060708090a0b0c0d0e0f");
    let enc = AesStream::ecb(&key, Direction::Encrypt).unwrap();
    let zero = run(enc, &[0; 16]);
    assert_eq!(check_value(&key).unwrap(), [zero[0], zero[1], zero[2]]);
    // The all-zero AES-128 key encrypts the zero block to 66e94bd4ef8a2c3b... (the
    // GCM spec's H for test cases 1 and 2).
    assert_eq!(check_value(&[0; 16]).unwrap(), [0x66, 0xe9, 0x4b]);
    assert!(matches!(check_value(&[0; 15]), Err(Error::KeySizeRange)));
}

#[test]
fn generated_keys_have_the_asked_length_and_differ() {
    for len in [16, 24, 32] {
        let (a, b) = (generate_key(len).unwrap(), generate_key(len).unwrap());
        assert_eq!(a.len(), len);
        assert_ne!(*a, *b);
    }
    for len in [0, 8, 15, 17, 20, 31, 33, 64] {
        assert!(matches!(generate_key(len), Err(Error::KeySizeRange)));
    }
}

// --- GCM: McGrew & Viega, test cases 1-18.

struct GcmCase {
    number: u32,
    key: &'static str,
    iv: &'static str,
    aad: &'static str,
    pt: &'static str,
    ct: &'static str,
    tag: &'static str,
}

const K: &str = "feffe9928665731c6d6a8f9467308308";
const IV12: &str = "cafebabefacedbaddecaf888";
const IV8: &str = "cafebabefacedbad";
const IV60: &str = "9313225df88406e555909c5aff5269aa6a7a9538534f7da1e4c303d2a318a728\
                    c3c0c95156809539fcf0e2429a6b525416aedbf5a0de6a57a637b39b";
const AAD: &str = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
const P64: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
                   1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
const P60: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
                   1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
const Z16: &str = "00000000000000000000000000000000";
const Z24: &str = "000000000000000000000000000000000000000000000000";
const Z32: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const Z12: &str = "000000000000000000000000";

#[rustfmt::skip]
const GCM_CASES: [GcmCase; 18] = [
    GcmCase { number: 1, key: Z16, iv: Z12, aad: "", pt: "", ct: "", tag: "58e2fccefa7e3061367f1d57a4e7455a" },
    GcmCase { number: 2, key: Z16, iv: Z12, aad: "", pt: Z16, ct: "0388dace60b6a392f328c2b971b2fe78", tag: "ab6e47d42cec13bdf53a67b21257bddf" },
    GcmCase { number: 3, key: K, iv: IV12, aad: "", pt: P64, ct: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985", tag: "4d5c2af327cd64a62cf35abd2ba6fab4" },
    GcmCase { number: 4, key: K, iv: IV12, aad: AAD, pt: P60, ct: "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091", tag: "5bc94fbc3221a5db94fae95ae7121a47" },
    GcmCase { number: 5, key: K, iv: IV8, aad: AAD, pt: P60, ct: "61353b4c2806934a777ff51fa22a4755699b2a714fcdc6f83766e5f97b6c742373806900e49f24b22b097544d4896b424989b5e1ebac0f07c23f4598", tag: "3612d2e79e3b0785561be14aaca2fccb" },
    GcmCase { number: 6, key: K, iv: IV60, aad: AAD, pt: P60, ct: "8ce24998625615b603a033aca13fb894be9112a5c3a211a8ba262a3cca7e2ca701e4a9a4fba43c90ccdcb281d48c7c6fd62875d2aca417034c34aee5", tag: "619cc5aefffe0bfa462af43c1699d050" },
    GcmCase { number: 7, key: Z24, iv: Z12, aad: "", pt: "", ct: "", tag: "cd33b28ac773f74ba00ed1f312572435" },
    GcmCase { number: 8, key: Z24, iv: Z12, aad: "", pt: Z16, ct: "98e7247c07f0fe411c267e4384b0f600", tag: "2ff58d80033927ab8ef4d4587514f0fb" },
    GcmCase { number: 9, key: "feffe9928665731c6d6a8f9467308308feffe9928665731c", iv: IV12, aad: "", pt: P64, ct: "3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710acade256", tag: "9924a7c8587336bfb118024db8674a14" },
    GcmCase { number: 10, key: "feffe9928665731c6d6a8f9467308308feffe9928665731c", iv: IV12, aad: AAD, pt: P60, ct: "3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710", tag: "2519498e80f1478f37ba55bd6d27618c" },
    GcmCase { number: 11, key: "feffe9928665731c6d6a8f9467308308feffe9928665731c", iv: IV8, aad: AAD, pt: P60, ct: "0f10f599ae14a154ed24b36e25324db8c566632ef2bbb34f8347280fc4507057fddc29df9a471f75c66541d4d4dad1c9e93a19a58e8b473fa0f062f7", tag: "65dcc57fcf623a24094fcca40d3533f8" },
    GcmCase { number: 12, key: "feffe9928665731c6d6a8f9467308308feffe9928665731c", iv: IV60, aad: AAD, pt: P60, ct: "d27e88681ce3243c4830165a8fdcf9ff1de9a1d8e6b447ef6ef7b79828666e4581e79012af34ddd9e2f037589b292db3e67c036745fa22e7e9b7373b", tag: "dcf566ff291c25bbb8568fc3d376a6d9" },
    GcmCase { number: 13, key: Z32, iv: Z12, aad: "", pt: "", ct: "", tag: "530f8afbc74536b9a963b4f1c4cb738b" },
    GcmCase { number: 14, key: Z32, iv: Z12, aad: "", pt: Z16, ct: "cea7403d4d606b6e074ec5d3baf39d18", tag: "d0d1c8a799996bf0265b98b5d48ab919" },
    GcmCase { number: 15, key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", iv: IV12, aad: "", pt: P64, ct: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad", tag: "b094dac5d93471bdec1a502270e3cc6c" },
    GcmCase { number: 16, key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", iv: IV12, aad: AAD, pt: P60, ct: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662", tag: "76fc6ece0f4e1768cddf8853bb2d551b" },
    GcmCase { number: 17, key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", iv: IV8, aad: AAD, pt: P60, ct: "c3762df1ca787d32ae47c13bf19844cbaf1ae14d0b976afac52ff7d79bba9de0feb582d33934a4f0954cc2363bc73f7862ac430e64abe499f47c9b1f", tag: "3a337dbf46a792c45e454913fe2ea8f2" },
    GcmCase { number: 18, key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", iv: IV60, aad: AAD, pt: P60, ct: "5a8def2f0c9e53f1f75d7853659e2a20eeb2b22aafde6419a058ab4f6f746bf40fc0c3b780f244452da3ebf1c5d82cdea2418997200ef82e44ae7e3f", tag: "a44a8266ee1c8eb0c8b5d4cf5ae9f19a" },
];

#[test]
fn gcm_matches_the_gcm_spec_test_cases_1_to_18() {
    for case in &GCM_CASES {
        let (key, iv, aad, pt) = (h(case.key), h(case.iv), h(case.aad), h(case.pt));
        let mut expected = h(case.ct);
        expected.extend_from_slice(&h(case.tag));
        let sealed = gcm_encrypt(&key, &iv, &aad, &pt, 128).unwrap();
        assert_eq!(sealed, expected, "test case {}", case.number);
        let opened = gcm_decrypt(&key, &iv, &aad, &sealed, 128).unwrap();
        assert_eq!(*opened, pt, "test case {}", case.number);
    }
}

#[test]
fn gcm_built_from_ghash_also_matches_test_cases_1_to_18() {
    // The 12-byte-IV cases go to aws-lc-rs through the public functions; this runs every
    // case through the SP 800-38D construction used for the other parameters.
    for case in &GCM_CASES {
        let gcm = Gcm::new(&h(case.key), &h(case.iv)).unwrap();
        let mut ct = h(case.pt);
        gcm.ctr(&mut ct).unwrap();
        assert_eq!(ct, h(case.ct), "test case {}", case.number);
        let tag = gcm.tag(&h(case.aad), &ct).unwrap();
        assert_eq!(tag.to_vec(), h(case.tag), "test case {}", case.number);
    }
}

#[test]
fn gcm_truncated_tags_are_the_leading_bytes_of_the_published_tags() {
    // SP 800-38D §7.1 step 6: T = MSB_t(...), so a t-bit tag is the published 128-bit
    // tag cut short. Cases 4, 5, 6 (12-, 8- and 60-byte IVs, with AAD) and 16.
    for number in [4, 5, 6, 16] {
        let case = &GCM_CASES[number - 1];
        let (key, iv, aad, pt) = (h(case.key), h(case.iv), h(case.aad), h(case.pt));
        for bits in [120, 112, 104, 96, 64, 32] {
            let mut expected = h(case.ct);
            expected.extend_from_slice(&h(case.tag)[..bits / 8]);
            let sealed = gcm_encrypt(&key, &iv, &aad, &pt, bits).unwrap();
            assert_eq!(sealed, expected, "test case {number}, {bits}-bit tag");
            let opened = gcm_decrypt(&key, &iv, &aad, &sealed, bits).unwrap();
            assert_eq!(*opened, pt);
        }
    }
}

#[test]
fn gcm_rejects_a_changed_tag_ciphertext_or_aad() {
    let case = &GCM_CASES[3];
    let (key, iv, aad, pt) = (h(case.key), h(case.iv), h(case.aad), h(case.pt));
    for bits in [128, 96] {
        let sealed = gcm_encrypt(&key, &iv, &aad, &pt, bits).unwrap();
        for i in [0, pt.len() - 1, pt.len(), sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            let r = gcm_decrypt(&key, &iv, &aad, &bad, bits);
            assert!(matches!(r, Err(Error::EncryptedDataInvalid)), "byte {i}");
        }
        let r = gcm_decrypt(&key, &iv, &aad[1..], &sealed, bits);
        assert!(matches!(r, Err(Error::EncryptedDataInvalid)));
        // Opening with another tag length must not succeed either.
        let other = if bits == 128 { 96 } else { 128 };
        assert!(gcm_decrypt(&key, &iv, &aad, &sealed, other).is_err());
    }
}

// --- CMAC: RFC 4493 §4 (AES-128) and SP 800-38B Appendix D.2/D.3 (AES-192, AES-256),
// over the first 0, 16, 40 and 64 bytes of the SP 800-38A plaintext.

const CMAC_TAGS: [[&str; 4]; 3] = [
    [
        "bb1d6929e95937287fa37d129b756746",
        "070a16b46b4d4144f79bdd9dd04a287c",
        "dfa66747de9ae63030ca32611497c827",
        "51f0bebf7e3b9d92fc49741779363cfe",
    ],
    [
        "d17ddf46adaacde531cac483de7a9367",
        "9e99a7bf31e710900662f65e617c5184",
        "8a1de5be2eb31aad089a82e6ee908b0e",
        "a1d5df0eed790f794d77589659f39a11",
    ],
    [
        "028962f61b7bf89efc6b551f4667d983",
        "28a7023f452e8f82bd4bf28d8c37c35c",
        "aaf3d8f1de5640c232f5b169b9c911e6",
        "e1992190549f6ed5696a2c056c315410",
    ],
];

#[test]
fn cmac_matches_rfc_4493_and_sp800_38b_for_all_key_sizes_and_lengths() {
    let msg = h(SP800_38A_PLAINTEXT);
    for (key, tags) in SP800_38A_KEYS.iter().zip(CMAC_TAGS) {
        let key = h(key);
        for (len, tag) in [0, 16, 40, 64].into_iter().zip(tags) {
            let tag = h(tag);
            assert_eq!(cmac(&key, &msg[..len]).unwrap().to_vec(), tag);
            cmac_verify(&key, &msg[..len], &tag).unwrap();
            cmac_verify(&key, &msg[..len], &tag[..8]).unwrap();
            // The same MAC from the data in parts.
            let mut parts = Cmac::new(&key).unwrap();
            for chunk in msg[..len].chunks(7) {
                parts.update(chunk).unwrap();
            }
            assert_eq!(parts.finalize().unwrap().to_vec(), tag);
        }
    }
}

#[test]
fn cmac_mismatches_and_bad_lengths_are_refused() {
    let key = h(SP800_38A_KEYS[0]);
    let mut tag = h(CMAC_TAGS[0][1]);
    let msg = &h(SP800_38A_PLAINTEXT)[..16];
    tag[15] ^= 0x80;
    assert!(matches!(
        cmac_verify(&key, msg, &tag),
        Err(Error::SignatureInvalid)
    ));
    assert!(matches!(
        cmac_verify(&key, msg, &[]),
        Err(Error::SignatureLenRange)
    ));
    assert!(matches!(
        cmac_verify(&key, msg, &[0; 17]),
        Err(Error::SignatureLenRange)
    ));
    assert!(matches!(cmac(&key[..8], msg), Err(Error::KeySizeRange)));
}

// --- Key wrap: RFC 3394 §4.1-4.6, RFC 5649 §6.

const KEK_128: &str = "000102030405060708090a0b0c0d0e0f";
const KEK_192: &str = "000102030405060708090a0b0c0d0e0f1011121314151617";
const KEK_256: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const KEY_128: &str = "00112233445566778899aabbccddeeff";
const KEY_192: &str = "00112233445566778899aabbccddeeff0001020304050607";
const KEY_256: &str = "00112233445566778899aabbccddeeff000102030405060708090a0b0c0d0e0f";

#[rustfmt::skip]
const RFC3394: [(&str, &str, &str, &str); 6] = [
    ("4.1", KEK_128, KEY_128, "1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5"),
    ("4.2", KEK_192, KEY_128, "96778b25ae6ca435f92b5b97c050aed2468ab8a17ad84e5d"),
    ("4.3", KEK_256, KEY_128, "64e8c3f9ce0f5ba263e9777905818a2a93c8191e7d6e8ae7"),
    ("4.4", KEK_192, KEY_192, "031d33264e15d33268f24ec260743edce1c6c7ddee725a936ba814915c6762d2"),
    ("4.5", KEK_256, KEY_192, "a8f9bc1612c68b3ff6e6f4fbe30e71e4769c8b80a32cb8958cd5d17d6b254da1"),
    ("4.6", KEK_256, KEY_256, "28c9f404c4b810f4cbccb35cfb87f8263f5786e2d80ed326cbc7f0e71a99f43bfb988b9b7a02dd21"),
];

#[test]
fn key_wrap_matches_rfc_3394_section_4() {
    for (section, kek, key, wrapped) in RFC3394 {
        let (kek, key, wrapped) = (h(kek), h(key), h(wrapped));
        assert_eq!(key_wrap(&kek, &key).unwrap(), wrapped, "§{section}");
        assert_eq!(*key_unwrap(&kek, &wrapped).unwrap(), key, "§{section}");
    }
}

const RFC5649_KEK: &str = "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8";

#[test]
fn key_wrap_pad_matches_rfc_5649_section_6_without_zero_padding_the_key() {
    let kek = h(RFC5649_KEK);
    let cases = [
        (
            "c37b7e6492584340bed12207808941155068f738",
            "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a",
        ),
        ("466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f"),
    ];
    for (key, wrapped) in cases {
        let (key, wrapped) = (h(key), h(wrapped));
        assert_eq!(key_wrap_pad(&kek, &key).unwrap(), wrapped);
        // The 20-byte key comes back as 20 bytes, not 24 (DESIGN.md §7).
        assert_eq!(*key_unwrap_pad(&kek, &wrapped).unwrap(), key);
    }
}

#[test]
fn key_wrap_pad_round_trips_every_length_under_every_kek_size() {
    for kek in [KEK_128, KEK_192, KEK_256] {
        let kek = h(kek);
        for len in 1..=40usize {
            let key: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(29) ^ 0x5a).collect();
            let wrapped = key_wrap_pad(&kek, &key).unwrap();
            assert_eq!(wrapped.len(), len.div_ceil(8) * 8 + 8);
            assert_eq!(*key_unwrap_pad(&kek, &wrapped).unwrap(), key);
        }
    }
}
