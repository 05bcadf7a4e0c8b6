//! Known-answer tests of the AES mechanisms through the PKCS#11 interface: each key is
//! created with C_CreateObject from the published key bytes, and the module's output is
//! compared with the published output.
//!
//! Sources: NIST SP 800-38A F.1 (ECB), F.2 (CBC), F.5 (CTR); CBC-PAD is SP 800-38A CBC for
//! the whole blocks plus one PKCS#7 block; McGrew-Viega GCM test cases 2, 3, 4 and 16;
//! RFC 4493 §4 (CMAC); RFC 3394 §4.1, §4.3, §4.6 (KEY_WRAP); RFC 5649 §6 (KEY_WRAP_PAD 0x210A
//! and KEY_WRAP_KWP 0x210B). Run with `cargo nextest run --test mech_kat_aes`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::*;
use common::raw::RawAttr;
use common::*;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;

const K128: &str = "2b7e151628aed2a6abf7158809cf4f3c";
const K256: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
const PLAIN: &str = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
                     30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";
const IV: &str = "000102030405060708090a0b0c0d0e0f";
const ECB128: &str = "3ad77bb40d7a3660a89ecaf32466ef97f5d3d58503b9699de785895a96fdbaaf\
                      43b1cd7f598ece23881b00e3ed0306887b0c785e27e8ad3f8223207104725dd4";
const ECB256: &str = "f3eed1bdb5d2a03c064b5a7e3db181f8591ccb10d410ed26dc5ba74a31362870\
                      b6ed21b99ca6f4f9f153e7b1beafed1d23304b7a39f9f3ff067d8d8f9e24ecc7";
const CBC128: &str = "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2\
                      73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7";
const CBC256: &str = "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d\
                      39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b";
const CTR_BLOCK: &str = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
const CTR128: &str = "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff\
                      5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee";
const CTR256: &str = "601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5\
                      2b0930daa23de94ce87017ba2d84988ddfc9c58db67aada613c2dd08457941a6";

fn setup() -> (TestEnv, cryptoki::context::Pkcs11, Session) {
    let env = TestEnv::new();
    let (ctx, _slot, session) = ready_token(&env);
    (env, ctx, session)
}

fn h(text: &str) -> Vec<u8> {
    hex(text)
}

/// Encrypts with `mech`, checks the output, and decrypts it back.
fn round_trip(
    session: &Session,
    mech: &Mechanism,
    key: ObjectHandle,
    plain: &[u8],
    expected: &[u8],
) {
    let ct = session.encrypt(mech, key, plain).expect("C_Encrypt");
    assert_eq!(to_hex(&ct), to_hex(expected), "{mech:?}");
    let pt = session.decrypt(mech, key, &ct).expect("C_Decrypt");
    assert_eq!(to_hex(&pt), to_hex(plain), "{mech:?}");
}

#[test]
fn aes_ecb_matches_sp800_38a_f1_for_128_and_256_bit_keys() {
    let (_env, _ctx, session) = setup();
    for (k, ct) in [(K128, ECB128), (K256, ECB256)] {
        let key = aes_key(&session, &h(k));
        round_trip(&session, &Mechanism::AesEcb, key, &h(PLAIN), &h(ct));
    }
}

#[test]
fn aes_cbc_matches_sp800_38a_f2_for_128_and_256_bit_keys() {
    let (_env, _ctx, session) = setup();
    let iv: [u8; 16] = h(IV).try_into().unwrap();
    for (k, ct) in [(K128, CBC128), (K256, CBC256)] {
        let key = aes_key(&session, &h(k));
        round_trip(&session, &Mechanism::AesCbc(iv), key, &h(PLAIN), &h(ct));
    }
}

#[test]
fn aes_cbc_pad_is_sp800_38a_cbc_followed_by_one_full_padding_block() {
    let (_env, _ctx, session) = setup();
    let iv: [u8; 16] = h(IV).try_into().unwrap();
    for (k, cbc) in [(K128, CBC128), (K256, CBC256)] {
        let key = aes_key(&session, &h(k));
        let ct = session
            .encrypt(&Mechanism::AesCbcPad(iv), key, &h(PLAIN))
            .expect("C_Encrypt(CBC_PAD)");
        assert_eq!(
            ct.len(),
            80,
            "64 bytes of plaintext take a whole padding block"
        );
        assert_eq!(to_hex(&ct[..64]), to_hex(&h(cbc)));
        // The padding block is E(K, C4 xor 10..10), computed with the ECB tested above.
        let last = &h(cbc)[48..];
        let x: Vec<u8> = last.iter().map(|b| b ^ 0x10).collect();
        let pad_block = session.encrypt(&Mechanism::AesEcb, key, &x).unwrap();
        assert_eq!(to_hex(&ct[64..]), to_hex(&pad_block));
        let pt = session
            .decrypt(&Mechanism::AesCbcPad(iv), key, &ct)
            .unwrap();
        assert_eq!(pt, h(PLAIN));
        // A partial last block: 20 bytes give 32, and decrypt strips the padding.
        let ct = session
            .encrypt(&Mechanism::AesCbcPad(iv), key, &h(PLAIN)[..20])
            .unwrap();
        assert_eq!(to_hex(&ct[..16]), to_hex(&h(cbc)[..16]));
        assert_eq!(ct.len(), 32);
        let pt = session
            .decrypt(&Mechanism::AesCbcPad(iv), key, &ct)
            .unwrap();
        assert_eq!(pt, h(PLAIN)[..20].to_vec());
    }
}

#[test]
fn aes_ctr_matches_sp800_38a_f5_for_128_and_256_bit_keys() {
    let (_env, _ctx, session) = setup();
    let ck = Ck::load();
    let s = session.handle();
    for (k, ct) in [(K128, CTR128), (K256, CTR256)] {
        let key = aes_key(&session, &h(k)).handle();
        let m = RawMech::ctr(128, &h(CTR_BLOCK));
        let out = ck.encrypt(s, &m, key, &h(PLAIN)).expect("C_Encrypt(CTR)");
        assert_eq!(to_hex(&out), to_hex(&h(ct)));
        let back = ck.decrypt(s, &m, key, &out).expect("C_Decrypt(CTR)");
        assert_eq!(back, h(PLAIN));
        // A stream mode: a partial block is fine.
        let out = ck.encrypt(s, &m, key, &h(PLAIN)[..23]).unwrap();
        assert_eq!(to_hex(&out), to_hex(&h(ct)[..23]));
    }
}

/// (key, iv, aad, plaintext, ciphertext, tag) of the McGrew-Viega GCM test cases.
const GCM: [(&str, &str, &str, &str, &str, &str); 4] = [
    (
        "00000000000000000000000000000000",
        "000000000000000000000000",
        "",
        "00000000000000000000000000000000",
        "0388dace60b6a392f328c2b971b2fe78",
        "ab6e47d42cec13bdf53a67b21257bddf",
    ),
    (
        "feffe9928665731c6d6a8f9467308308",
        "cafebabefacedbaddecaf888",
        "",
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
         1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
         21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
        "4d5c2af327cd64a62cf35abd2ba6fab4",
    ),
    (
        "feffe9928665731c6d6a8f9467308308",
        "cafebabefacedbaddecaf888",
        "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
         1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
         21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
        "5bc94fbc3221a5db94fae95ae7121a47",
    ),
    (
        "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        "cafebabefacedbaddecaf888",
        "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
         1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
         8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
        "76fc6ece0f4e1768cddf8853bb2d551b",
    ),
];

#[test]
fn aes_gcm_matches_the_mcgrew_viega_test_cases_and_refuses_a_bad_tag() {
    let (_env, _ctx, session) = setup();
    for (i, (k, iv, aad, pt, ct, tag)) in GCM.iter().enumerate() {
        let key = aes_key(&session, &h(k));
        let (aad, pt) = (h(aad), h(pt));
        let expected = [h(ct), h(tag)].concat();
        let mut iv_buf = h(iv);
        let params = GcmParams::new(&mut iv_buf, &aad, 128.into()).unwrap();
        let out = session
            .encrypt(&Mechanism::AesGcm(params), key, &pt)
            .expect("C_Encrypt(GCM)");
        assert_eq!(to_hex(&out), to_hex(&expected), "test case {i}");
        let mut iv_buf = h(iv);
        let params = GcmParams::new(&mut iv_buf, &aad, 128.into()).unwrap();
        let back = session
            .decrypt(&Mechanism::AesGcm(params), key, &expected)
            .expect("C_Decrypt(GCM)");
        assert_eq!(back, pt, "test case {i}");
        // A 96-bit tag is the truncated 128-bit tag.
        let mut iv_buf = h(iv);
        let params = GcmParams::new(&mut iv_buf, &aad, 96.into()).unwrap();
        let short = session
            .encrypt(&Mechanism::AesGcm(params), key, &pt)
            .unwrap();
        assert_eq!(to_hex(&short), to_hex(&expected[..expected.len() - 4]));
        let mut bad = expected.clone();
        *bad.last_mut().unwrap() ^= 1;
        let mut iv_buf = h(iv);
        let params = GcmParams::new(&mut iv_buf, &aad, 128.into()).unwrap();
        assert_rv!(
            session.decrypt(&Mechanism::AesGcm(params), key, &bad),
            cryptoki::error::RvError::EncryptedDataInvalid
        );
    }
}

#[test]
fn aes_cmac_matches_rfc_4493_examples_1_to_4() {
    let (_env, _ctx, session) = setup();
    let key = aes_key(&session, &h(K128));
    let msg = h(PLAIN);
    for (len, mac) in [
        (0, "bb1d6929e95937287fa37d129b756746"),
        (16, "070a16b46b4d4144f79bdd9dd04a287c"),
        (40, "dfa66747de9ae63030ca32611497c827"),
        (64, "51f0bebf7e3b9d92fc49741779363cfe"),
    ] {
        let got = session
            .sign(&Mechanism::AesCMac, key, &msg[..len])
            .expect("C_Sign(CMAC)");
        assert_eq!(to_hex(&got), mac, "RFC 4493 Mlen {len}");
        session
            .verify(&Mechanism::AesCMac, key, &msg[..len], &h(mac))
            .expect("C_Verify(CMAC)");
    }
}

/// A generic secret holding `value`, extractable so it can be wrapped and read back.
fn generic_secret(session: &Session, value: &[u8]) -> ObjectHandle {
    secret_key(session, KeyType::GENERIC_SECRET, value)
}

fn value_of(session: &Session, key: ObjectHandle) -> Vec<u8> {
    attribute_bytes(session, key, AttributeType::Value)
}

fn unwrap_template(len: usize) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::ValueLen((len as u64).into()),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ]
}

#[test]
fn aes_key_wrap_matches_rfc_3394_sections_4_1_4_3_and_4_6() {
    let (_env, _ctx, session) = setup();
    let kek128 = "000102030405060708090a0b0c0d0e0f";
    let kek256 = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    let data16 = "00112233445566778899aabbccddeeff";
    let data32 = "00112233445566778899aabbccddeeff000102030405060708090a0b0c0d0e0f";
    for (kek, data, wrapped) in [
        (
            kek128,
            data16,
            "1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5",
        ),
        (
            kek256,
            data16,
            "64e8c3f9ce0f5ba263e9777905818a2a93c8191e7d6e8ae7",
        ),
        (
            kek256,
            data32,
            "28c9f404c4b810f4cbccb35cfb87f8263f5786e2d80ed326cbc7f0e71a99f43bfb988b9b7a02dd21",
        ),
    ] {
        let kek = aes_key(&session, &h(kek));
        let target = generic_secret(&session, &h(data));
        let out = session
            .wrap_key(&Mechanism::AesKeyWrap, kek, target)
            .expect("C_WrapKey(AES_KEY_WRAP)");
        assert_eq!(to_hex(&out), wrapped);
        let back = session
            .unwrap_key(
                &Mechanism::AesKeyWrap,
                kek,
                &h(wrapped),
                &unwrap_template(data.len() / 2),
            )
            .expect("C_UnwrapKey(AES_KEY_WRAP)");
        assert_eq!(to_hex(&value_of(&session, back)), data);
    }
}

const KWP_KEK: &str = "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8";
const KWP_CASES: [(&str, &str); 2] = [
    (
        "c37b7e6492584340bed12207808941155068f738",
        "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a",
    ),
    ("466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f"),
];

#[test]
fn aes_key_wrap_pad_0x210a_and_kwp_0x210b_both_produce_rfc_5649_section_6_output() {
    let (_env, _ctx, session) = setup();
    let ck = Ck::load();
    let s = session.handle();
    let kek = aes_key(&session, &h(KWP_KEK));
    for ty in [CKM_AES_KEY_WRAP_PAD, CKM_AES_KEY_WRAP_KWP] {
        for (data, wrapped) in KWP_CASES {
            let target = generic_secret(&session, &h(data));
            let out = ck
                .wrap(s, &RawMech::none(ty), kek.handle(), target.handle())
                .unwrap_or_else(|e| {
                    panic!("C_WrapKey({ty:#x}) of {} bytes: {e:?}", data.len() / 2)
                });
            // RFC 5649: a 20-byte key wraps to 32 bytes (no zero-padding to 24 first).
            assert_eq!(to_hex(&out), wrapped, "mechanism {ty:#x}, key {data}");
            let template = [
                RawAttr::ulong(CKA_CLASS, CKO_SECRET_KEY),
                RawAttr::ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET),
                RawAttr::bool(CKA_TOKEN, false),
                RawAttr::bool(CKA_SENSITIVE, false),
                RawAttr::bool(CKA_EXTRACTABLE, true),
            ];
            let back = ck
                .unwrap(s, &RawMech::none(ty), kek.handle(), &h(wrapped), &template)
                .unwrap_or_else(|e| panic!("C_UnwrapKey({ty:#x}): {e:?}"));
            assert_eq!(
                to_hex(&value_of(&session, handle(back))),
                data,
                "mechanism {ty:#x}"
            );
        }
    }
    // cryptoki's AesKeyWrapPad is 0x210A: the high-level call agrees.
    let target = generic_secret(&session, &h(KWP_CASES[0].0));
    let out = session
        .wrap_key(&Mechanism::AesKeyWrapPad, kek, target)
        .unwrap();
    assert_eq!(to_hex(&out), KWP_CASES[0].1);
}

#[test]
fn an_aes_key_wrapped_with_ecb_and_cbc_pad_unwraps_to_the_same_value() {
    let (_env, _ctx, session) = setup();
    let kek = aes_key(&session, &h(K256));
    let target = aes_key(&session, &h(K128));
    let iv: [u8; 16] = h(IV).try_into().unwrap();
    // The known answers were computed by openssl, not by the module:
    // `openssl enc -aes-256-ecb -nopad -K <K256>` of the 16 bytes of K128, and
    // `openssl enc -aes-256-cbc -K <K256> -iv <IV>` of the same (PKCS#7 pads a full block).
    let ecb = session.wrap_key(&Mechanism::AesEcb, kek, target).unwrap();
    assert_eq!(ecb, h("27227269d1cf1058130ea81e45fb95e7"));
    let cbc_pad = session
        .wrap_key(&Mechanism::AesCbcPad(iv), kek, target)
        .unwrap();
    assert_eq!(
        cbc_pad,
        h("208f6daa7d7c7d2b683ba190de81162a3a54f7d6dcb23982a993a136dd80fb1a")
    );
    let template = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
        Attribute::Encrypt(true),
    ];
    let back = session
        .unwrap_key(&Mechanism::AesCbcPad(iv), kek, &cbc_pad, &template)
        .unwrap();
    assert_eq!(value_of(&session, back), h(K128));
    let back_from_ecb = session
        .unwrap_key(&Mechanism::AesEcb, kek, &ecb, &template)
        .unwrap();
    assert_eq!(value_of(&session, back_from_ecb), h(K128));
    // The unwrapped key is the key, not only its value: it encrypts SP 800-38A's first
    // ECB-AES128 block to the published answer.
    assert_eq!(
        session
            .encrypt(&Mechanism::AesEcb, back_from_ecb, &h(&PLAIN[..32]))
            .unwrap(),
        h(&ECB128[..32])
    );
}
