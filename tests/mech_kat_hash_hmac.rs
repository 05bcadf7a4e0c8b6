//! Known-answer tests of the digests and HMACs through the PKCS#11 interface (C_Digest,
//! C_Sign, C_Verify with keys made by C_CreateObject from the published key bytes).
//!
//! Sources: FIPS 180-4 examples ("abc" and the 448-bit message) for SHA-1/224/256/384/512;
//! RFC 4231 test cases 1, 2, 3, 4, 6 and 7 for HMAC-SHA-224/256/384/512; RFC 2202 cases 1-3
//! for HMAC-SHA-1 (RFC 4231 has no SHA-1); GB/T 32905-2016 Appendix A for SM3. Keys made by
//! `CKM_GENERIC_SECRET_KEY_GEN` and `CKM_SHA*_KEY_GEN` give the HMACs `openssl dgst -mac
//! HMAC` computes with their values.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::*;
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::KeyType;

const M448: &[u8] = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

#[test]
fn sha_digests_match_the_fips_180_examples() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let cases: [(Mechanism, &str, &str); 5] = [
        (
            Mechanism::Sha1,
            "a9993e364706816aba3e25717850c26c9cd0d89d",
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1",
        ),
        (
            Mechanism::Sha224,
            "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7",
            "75388b16512776cc5dba5da1fd890150b0c6455cb4f58b1952522525",
        ),
        (
            Mechanism::Sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        ),
        (
            Mechanism::Sha384,
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
             8086072ba1e7cc2358baeca134c825a7",
            "3391fdddfc8dc7393707a65b1b4709397cf8b1d162af05abfe8f450de5f36bc6\
             b0455a8520bc4e6f5fe95b1fe3c8452b",
        ),
        (
            Mechanism::Sha512,
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            "204a8fc6dda82f0a0ced7beb8e08a41657c16ef468b228a8279be331a703c335\
             96fd15c13b1b07f9aa1d3bea57789ca031ad85c7a71dd70354ec631238ca3445",
        ),
    ];
    for (mech, abc, long) in cases {
        assert_eq!(
            to_hex(&session.digest(&mech, b"abc").unwrap()),
            abc,
            "{mech:?}"
        );
        assert_eq!(
            to_hex(&session.digest(&mech, M448).unwrap()),
            long,
            "{mech:?}"
        );
        // Multi-part gives the same answer.
        session.digest_init(&mech).unwrap();
        for chunk in M448.chunks(7) {
            session.digest_update(chunk).unwrap();
        }
        assert_eq!(
            to_hex(&session.digest_final().unwrap()),
            long,
            "{mech:?} multi-part"
        );
    }
}

#[test]
fn sm3_digest_matches_gb_t_32905_appendix_a() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let m = RawMech::none(CKM_SM3);
    let out = ck
        .digest(session.handle(), &m, b"abc")
        .expect("C_Digest(SM3)");
    assert_eq!(
        to_hex(&out),
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    );
    let out = ck
        .digest(session.handle(), &m, &b"abcd".repeat(16))
        .unwrap();
    assert_eq!(
        to_hex(&out),
        "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
    );
    // The high-level call with the vendor mechanism agrees.
    let out = session.digest(&vendor_mech(CKM_SM3), b"abc").unwrap();
    assert_eq!(out[..4], [0x66, 0xc7, 0xf0, 0xf4]);
}

/// RFC 4231 cases 1, 2, 3, 4, 6, 7: (key, data, [224, 256, 384, 512]).
fn rfc4231() -> Vec<(Vec<u8>, Vec<u8>, [&'static str; 4])> {
    vec![
        (
            vec![0x0b; 20],
            b"Hi There".to_vec(),
            [
                "896fb1128abbdf196832107cd49df33f47b4b1169912ba4f53684b22",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
                "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c\
                 faea9ea9076ede7f4af152e8b2fa9cb6",
                "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde\
                 daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
            ],
        ),
        (
            b"Jefe".to_vec(),
            b"what do ya want for nothing?".to_vec(),
            [
                "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
                "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
                 8e2240ca5e69e2c78b3239ecfab21649",
                "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
                 9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
            ],
        ),
        (
            vec![0xaa; 20],
            vec![0xdd; 50],
            [
                "7fb3cb3588c6c1f6ffa9694d7d6ad2649365b0c1f65d69d1ec8333ea",
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
                "88062608d3e6ad8a0aa2ace014c8a86f0aa635d947ac9febe83ef4e55966144b\
                 2a5ab39dc13814b94e3ab6e101a34f27",
                "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39\
                 bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb",
            ],
        ),
        (
            (1u8..=25).collect(),
            vec![0xcd; 50],
            [
                "6c11506874013cac6a2abc1bb382627cec6a90d86efc012de7afec5a",
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
                "3e8a69b7783c25851933ab6290af6ca77a9981480850009cc5577c6e1f573b4e\
                 6801dd23c4a7d679ccf8a386c674cffb",
                "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3db\
                 a91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd",
            ],
        ),
        (
            vec![0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
            [
                "95e9a0db962095adaebe9b2d6f0dbce2d499f112f2d2b7273fa6870e",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
                "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c6\
                 0c2ef6ab4030fe8296248df163f44952",
                "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352\
                 6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
            ],
        ),
        (
            vec![0xaa; 131],
            b"This is a test using a larger than block-size key and a larger than block-size \
              data. The key needs to be hashed before being used by the HMAC algorithm."
                .to_vec(),
            [
                "3a854166ac5d9f023f54d517d0b39dbd946770db9c2b95c9f6f565d1",
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
                "6617178e941f020d351e2f254e8fd32c602420feb0b8fb9adccebb82461e99c5\
                 a678cc31e799176d3860e6110c46523e",
                "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944\
                 b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58",
            ],
        ),
    ]
}

#[test]
fn hmac_sha2_matches_rfc_4231_cases_1_2_3_4_6_and_7() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let mechs = [
        Mechanism::Sha224Hmac,
        Mechanism::Sha256Hmac,
        Mechanism::Sha384Hmac,
        Mechanism::Sha512Hmac,
    ];
    let mut checked = 0;
    for (case, (key, data, macs)) in rfc4231().into_iter().enumerate() {
        let key = secret_key(&session, KeyType::GENERIC_SECRET, &key);
        for (mech, mac) in mechs.iter().zip(macs) {
            let got = session.sign(mech, key, &data).expect("C_Sign(HMAC)");
            assert_eq!(to_hex(&got), mac, "case index {case}, {mech:?}");
            session
                .verify(mech, key, &data, &hex(mac))
                .expect("C_Verify(HMAC)");
            let mut bad = hex(mac);
            bad[0] ^= 1;
            assert_rv!(
                session.verify(mech, key, &data, &bad),
                RvError::SignatureInvalid
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 24);
}

#[test]
fn hmac_sha1_matches_rfc_2202_cases_1_to_3() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    for (key, data, mac) in [
        (
            vec![0x0b; 20],
            b"Hi There".to_vec(),
            "b617318655057264e28bc0b6fb378c8ef146be00",
        ),
        (
            b"Jefe".to_vec(),
            b"what do ya want for nothing?".to_vec(),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
        ),
        (
            vec![0xaa; 20],
            vec![0xdd; 50],
            "125d7342b9ac11cd91a39af48aa17b4f63f175d3",
        ),
    ] {
        let key = secret_key(&session, KeyType::GENERIC_SECRET, &key);
        let got = session.sign(&Mechanism::Sha1Hmac, key, &data).unwrap();
        assert_eq!(to_hex(&got), mac);
    }
}

#[test]
fn generated_hmac_keys_give_the_hmacs_openssl_computes_with_their_value() {
    use cryptoki::error::Error;
    use cryptoki::object::{Attribute, AttributeType};
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let msg = b"hmac under a generated key".to_vec();
    let msg_path = write_file(env.dir.path(), "msg", &msg);
    let template = |len: Option<u64>| {
        let mut t = vec![
            Attribute::Token(false),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
            Attribute::Sign(true),
            Attribute::Verify(true),
        ];
        t.extend(len.map(|n| Attribute::ValueLen(n.into())));
        t
    };
    for (gen, key_type, hmac, name) in [
        (
            Mechanism::GenericSecretKeyGen,
            KeyType::GENERIC_SECRET,
            Mechanism::Sha256Hmac,
            "sha256",
        ),
        (
            Mechanism::Sha1KeyGen,
            KeyType::SHA_1_HMAC,
            Mechanism::Sha1Hmac,
            "sha1",
        ),
        (
            Mechanism::Sha224KeyGen,
            KeyType::SHA224_HMAC,
            Mechanism::Sha224Hmac,
            "sha224",
        ),
        (
            Mechanism::Sha256KeyGen,
            KeyType::SHA256_HMAC,
            Mechanism::Sha256Hmac,
            "sha256",
        ),
        (
            Mechanism::Sha384KeyGen,
            KeyType::SHA384_HMAC,
            Mechanism::Sha384Hmac,
            "sha384",
        ),
        (
            Mechanism::Sha512KeyGen,
            KeyType::SHA512_HMAC,
            Mechanism::Sha512Hmac,
            "sha512",
        ),
    ] {
        let key = session
            .generate_key(&gen, &template(Some(37)))
            .unwrap_or_else(|e| panic!("{gen:?}: {e}"));
        let value = attribute_bytes(&session, key, AttributeType::Value);
        assert_eq!(value.len(), 37);
        let attrs = session
            .get_attributes(key, &[AttributeType::KeyType])
            .unwrap();
        assert!(
            matches!(&attrs[..], [Attribute::KeyType(k)] if *k == key_type),
            "{gen:?}: {attrs:?}"
        );
        let tag = session.sign(&hmac, key, &msg).unwrap();
        let theirs = openssl_ok(&[
            "dgst",
            &format!("-{name}"),
            "-mac",
            "HMAC",
            "-macopt",
            &format!("hexkey:{}", to_hex(&value)),
            "-binary",
            &msg_path,
        ]);
        assert_eq!(tag, theirs, "{gen:?}");
        session.verify(&hmac, key, &msg, &tag).unwrap();
        let rv = |r: cryptoki::error::Result<cryptoki::object::ObjectHandle>| match r {
            Err(Error::Pkcs11(rv, _)) => rv,
            other => panic!("{gen:?}: expected an error, got {other:?}"),
        };
        assert_eq!(
            rv(session.generate_key(&gen, &template(None))),
            RvError::TemplateIncomplete
        );
        for bad in [0, 513] {
            assert_eq!(
                rv(session.generate_key(&gen, &template(Some(bad)))),
                RvError::AttributeValueInvalid,
                "{gen:?} {bad}"
            );
        }
    }
}
