//! Known-answer tests of the vendor SM mechanisms through the PKCS#11 interface.
//!
//! Sources: GB/T 32907-2016 Appendix A example 1 (SM4 single block); OpenSSL's
//! evpciph_sm4.txt two-block CBC vector; RFC 8998 Appendix A.1 (SM4-GCM); OpenSSL's
//! evppkey_sm2.txt key `SM2_key1` and its published ciphertext of "The floofy bunnies hop at
//! midnight" (GM/T 0009 DER, rearranged here as C1 || C3 || C2, the module's layout);
//! GM/T 0003.5-2012 (GB/T 32918.5-2017) Appendix A on the recommended curve: the key d, the
//! signature (r, s) of "message digest" under the default identifier, and the ciphertext
//! C1 || C3 || C2 of "encryption standard".
//!
//! The signatures published with `SM2_key1` are over pre-computed digests e = SM3(Z_A || M)
//! whose message M is not published; CKM_KMSHSM_SM2_SM3 hashes Z_A || M itself and the module
//! has no raw-digest SM2 mechanism, so those vectors cannot pass through C_Verify. SM2
//! signatures are checked here against the GM/T 0003.5 example (whose message is given),
//! by sign-then-verify with the published key, and against signatures made by the
//! `openssl` command line in tests/mech_openssl_interop.rs.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::*;
use common::*;
use cryptoki::error::RvError;
use cryptoki::object::{Attribute, ObjectClass};

const SM4_KEY: &str = "0123456789abcdeffedcba9876543210";
const SM2_D: &str = "d09156733017bdad809fd9bbd8c693f60230593169b6f94aaf1c8ee138cc99b5";
const SM2_POINT: &str = "04393a2ad9e27e43acaaab85a19d3b85591e14406157175addd37bf77ff0caf9ed\
                         37fcf3a8b4f55c038523261fca6636afe6a7afa2a1482a606f5cb3a18b2e2a1e";
const SM2_DER_CT: &str = "30818a0220466be2ef5c11782ec77864a0055417f407a5afc11d653c6bce\
    69e417bb1d05b6022062b572e21ff0ddf5c726bd3f9ff2eae56e6294713a607e9b9525628965f62cc80420\
    3c1b5713b5db2728eb7bf775e44f4689fc32668bdc564f52ea45b09e8df2a5f40422084a9d0cc2997092b7\
    d3c404fce95956eb604d732b2307a8e5b8900ed6608ca5b197";
/// The SM2 curve's generator G, uncompressed (GB/T 32918.5).
const SM2_GENERATOR: &str = "0432c4ae2c1f1981195f9904466a39c9948fe30bbff2660be1715a4589334c74c7\
                             bc3736a2f4f6779c59bdcee36b692153d0a9877cc62a474002df32e52139f0a0";
const SM2_PLAIN: &[u8] = b"The floofy bunnies hop at midnight";
/// GM/T 0003.5-2012 Appendix A, recommended curve: the private key d and its public point.
const GMT_D: &str = "3945208f7b2144b13f36e38ac6d39f95889393692860b51a42fb81ef4df7c5b8";
const GMT_POINT: &str = "0409f9df311e5421a150dd7d161e4bc5c672179fad1833fc076bb08ff356f35020\
                         ccea490ce26775a52dc6ea718cc1aa600aed05fbf35e084a6632f6072da9ad13";
/// Its signature r || s of "message digest" with the identifier "1234567812345678".
const GMT_SIG: &str = "f5a03b0648d2c4630eeac513e1bb81a15944da3827d5b74143ac7eaceee720b3\
                       b1b6aa29df212fd8763182bc0d421ca1bb9038fd1f7f42d4840b69c485bbc1aa";
/// Its encryption of "encryption standard", C1 || C3 || C2.
const GMT_CT: &str = "0404ebfc718e8d1798620432268e77feb6415e2ede0e073c0f4f640ecd2e149a73\
                      e858f9d81e5430a57b36daab8f950a3c64e6ee6a63094d99283aff767e124df0\
                      59983c18f809e262923c53aec295d30383b54e39d609d160afcb1908d0bd8766\
                      21886ca989ca9c7d58087307ca93092d651efa";

#[test]
fn sm4_ecb_matches_the_gb_t_32907_single_block_example() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = sm4_key(&session, &hex(SM4_KEY));
    let mech = vendor_mech(CKM_SM4_ECB);
    let ct = session
        .encrypt(&mech, key, &hex(SM4_KEY))
        .expect("C_Encrypt(SM4_ECB)");
    assert_eq!(to_hex(&ct), "681edf34d206965e86b3e94f536e4246");
    let pt = session
        .decrypt(&mech, key, &ct)
        .expect("C_Decrypt(SM4_ECB)");
    assert_eq!(to_hex(&pt), SM4_KEY);
}

#[test]
fn sm4_cbc_matches_the_openssl_two_block_vector_and_cbc_pad_adds_one_block() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = sm4_key(&session, &hex(SM4_KEY));
    let iv: [u8; 16] = hex(SM4_KEY).try_into().unwrap();
    let plain = hex(&SM4_KEY.repeat(2));
    let expected = "2677f46b09c122cc975533105bd4a22af6125f7275ce552c3a2bbcf533de8a3b";
    let cbc = vendor_mech_bytes(CKM_SM4_CBC, &iv);
    let ct = session
        .encrypt(&cbc, key, &plain)
        .expect("C_Encrypt(SM4_CBC)");
    assert_eq!(to_hex(&ct), expected);
    assert_eq!(session.decrypt(&cbc, key, &ct).unwrap(), plain);
    let pad = vendor_mech_bytes(CKM_SM4_CBC_PAD, &iv);
    let ct = session
        .encrypt(&pad, key, &plain)
        .expect("C_Encrypt(SM4_CBC_PAD)");
    assert_eq!(ct.len(), 48);
    assert_eq!(to_hex(&ct[..32]), expected);
    assert_eq!(session.decrypt(&pad, key, &ct).unwrap(), plain);
}

#[test]
fn sm4_gcm_matches_rfc_8998_appendix_a1() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let key = sm4_key(&session, &hex(SM4_KEY)).handle();
    let iv = hex("00001234567800000000abcd");
    let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
    let plain = hex(
        "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbccccccccccccccccdddddddddddddddd\
         eeeeeeeeeeeeeeeeffffffffffffffffeeeeeeeeeeeeeeeeaaaaaaaaaaaaaaaa",
    );
    let expected = "17f399f08c67d5ee19d0dc9969c4bb7d5fd46fd3756489069157b282bb200735\
                    d82710ca5c22f0ccfa7cbf93d496ac15a56834cbcf98c397b4024a2691233b8d\
                    83de3541e4c2b58177e065a9bf7b62ec";
    let m = RawMech::gcm(CKM_SM4_GCM, &iv, &aad, 128);
    let s = session.handle();
    let ct = ck.encrypt(s, &m, key, &plain).expect("C_Encrypt(SM4_GCM)");
    assert_eq!(to_hex(&ct), expected);
    assert_eq!(
        ck.decrypt(s, &m, key, &ct).expect("C_Decrypt(SM4_GCM)"),
        plain
    );
    let mut bad = ct.clone();
    bad[0] ^= 1;
    assert_eq!(
        ck.decrypt(s, &m, key, &bad),
        Err(RvError::EncryptedDataInvalid)
    );
}

#[test]
fn sm2_decrypts_the_openssl_published_ciphertext_given_as_c1_c3_c2() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let private = ec_private(&session, sm2_type(), OID_SM2, &hex(SM2_D));
    // 30 81 8a | 02 20 x | 02 20 y | 04 20 C3 | 04 22 C2: fields at fixed offsets.
    let der = hex(SM2_DER_CT);
    let (x, y, c3, c2) = (&der[5..37], &der[39..71], &der[73..105], &der[107..]);
    let c1c3c2 = [&[0x04][..], x, y, c3, c2].concat();
    let mech = vendor_mech(CKM_SM2_ENCRYPT);
    let pt = session
        .decrypt(&mech, private, &c1c3c2)
        .expect("C_Decrypt(SM2_ENCRYPT)");
    assert_eq!(pt, SM2_PLAIN);
    // C3 authenticates: a flipped bit in C2 is refused.
    let mut bad = c1c3c2.clone();
    *bad.last_mut().unwrap() ^= 1;
    assert!(session.decrypt(&mech, private, &bad).is_err());
}

#[test]
fn sm2_verifies_and_decrypts_the_gm_t_0003_5_examples() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let private = ec_private(&session, sm2_type(), OID_SM2, &hex(GMT_D));
    let public = ec_public(&session, sm2_type(), OID_SM2, &hex(GMT_POINT));
    // The default identifier (no parameter) is the example's "1234567812345678".
    let mech = vendor_mech(CKM_SM2_SM3);
    let sig = hex(GMT_SIG);
    session
        .verify(&mech, public, b"message digest", &sig)
        .expect("C_Verify of the published signature");
    let mut bad = sig.clone();
    bad[63] ^= 1;
    assert_rv!(
        session.verify(&mech, public, b"message digest", &bad),
        RvError::SignatureInvalid
    );
    let named = vendor_mech_bytes(CKM_SM2_SM3, b"1234567812345678");
    session
        .verify(&named, public, b"message digest", &sig)
        .expect("C_Verify with the identifier given");
    // The module's own signature with the example's key verifies under the example's
    // point (the point is the one the standard derives from d).
    let own = session.sign(&mech, private, b"message digest").unwrap();
    session
        .verify(&mech, public, b"message digest", &own)
        .unwrap();
    let enc = vendor_mech(CKM_SM2_ENCRYPT);
    assert_eq!(
        session
            .decrypt(&enc, private, &hex(GMT_CT))
            .expect("C_Decrypt"),
        b"encryption standard"
    );
}

#[test]
fn sm2_with_the_published_key_signs_verifiably_and_encrypts_for_its_private_half() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let private = ec_private(&session, sm2_type(), OID_SM2, &hex(SM2_D));
    let public = ec_public(&session, sm2_type(), OID_SM2, &hex(SM2_POINT));
    let mech = vendor_mech(CKM_SM2_SM3);
    let msg = b"message digest";
    let sig = session.sign(&mech, private, msg).expect("C_Sign(SM2_SM3)");
    assert_eq!(sig.len(), 64, "SM2 signatures are r || s");
    session
        .verify(&mech, public, msg, &sig)
        .expect("C_Verify(SM2_SM3)");
    assert_rv!(
        session.verify(&mech, public, b"message digesT", &sig),
        RvError::SignatureInvalid
    );
    // The identifier is part of Z_A: another one does not verify.
    let other = vendor_mech_bytes(CKM_SM2_SM3, b"ALICE123@YAHOO.COM");
    assert_rv!(
        session.verify(&other, public, msg, &sig),
        RvError::SignatureInvalid
    );
    let sig = session.sign(&other, private, msg).unwrap();
    session.verify(&other, public, msg, &sig).unwrap();
    // Encrypt to the published point, decrypt with the published scalar.
    let enc = vendor_mech(CKM_SM2_ENCRYPT);
    let ct = session
        .encrypt(&enc, public, SM2_PLAIN)
        .expect("C_Encrypt(SM2)");
    assert_eq!(ct.len(), SM2_PLAIN.len() + 97, "C1 (65) || C3 (32) || C2");
    assert_eq!(ct[0], 0x04);
    assert_eq!(session.decrypt(&enc, private, &ct).unwrap(), SM2_PLAIN);
    // The signer's Z_A hashes the public point, which the module derives from the
    // scalar: a private key object carrying another point (here the generator's) still
    // signs for the published point, and not for the one it carries.
    let generator = hex(SM2_GENERATOR);
    let lying = session
        .create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(sm2_type()),
            Attribute::Token(false),
            Attribute::Sign(true),
            Attribute::EcParams(hex(OID_SM2)),
            Attribute::EcPoint(der_octet_string(&generator)),
            Attribute::Value(hex(SM2_D)),
        ])
        .expect("C_CreateObject(SM2 private key with a point)");
    let sig = session.sign(&mech, lying, msg).unwrap();
    session
        .verify(&mech, public, msg, &sig)
        .expect("signed for the point derived from the scalar");
    let carried = ec_public(&session, sm2_type(), OID_SM2, &generator);
    assert_rv!(
        session.verify(&mech, carried, msg, &sig),
        RvError::SignatureInvalid
    );
}
