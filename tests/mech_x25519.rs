//! X25519 through the C ABI (`CKM_EC_MONTGOMERY_KEY_PAIR_GEN`, `CKM_ECDH1_DERIVE` with
//! `CKD_NULL`): the token and `openssl pkeyutl -derive` agree on the shared secret both
//! ways, for key pairs made with the curve as OID or as the name "curve25519"; RFC 7748
//! §6.1's keys imported by value derive its published secret, and through the X9.63 KDF.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::*;
use common::raw::RawAttr;
use common::*;
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;

fn secret_template(len: Option<usize>) -> Vec<RawAttr> {
    let mut t = vec![
        RawAttr::ulong(CKA_CLASS, CKO_SECRET_KEY),
        RawAttr::ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET),
        RawAttr::bool(CKA_TOKEN, false),
        RawAttr::bool(CKA_SENSITIVE, false),
        RawAttr::bool(CKA_EXTRACTABLE, true),
    ];
    if let Some(n) = len {
        t.push(RawAttr::ulong(CKA_VALUE_LEN, n as CK_ULONG));
    }
    t
}

fn derive(
    session: &Session,
    ck: &Ck,
    key: ObjectHandle,
    peer: &[u8],
    len: Option<usize>,
) -> Result<Vec<u8>, RvError> {
    ck.derive(
        session.handle(),
        &RawMech::ecdh(CKD_NULL, peer),
        key.handle(),
        &secret_template(len),
    )
    .map(|h| attribute_bytes(session, handle(h), AttributeType::Value))
}

fn x25519_private(session: &Session, scalar: &[u8]) -> ObjectHandle {
    session
        .create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC_MONTGOMERY),
            Attribute::Token(false),
            Attribute::Derive(true),
            Attribute::EcParams(hex(OID_X25519)),
            Attribute::Value(scalar.to_vec()),
        ])
        .expect("C_CreateObject(X25519 private key)")
}

#[test]
fn token_and_openssl_agree_on_x25519_secrets_both_ways() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let dir = env.dir.path();
    let theirs = dir.join("x.pem").to_str().unwrap().to_owned();
    openssl_ok(&["genpkey", "-algorithm", "X25519", "-out", &theirs]);
    let text = String::from_utf8(openssl_ok(&["pkey", "-in", &theirs, "-text", "-noout"])).unwrap();
    let their_public = openssl_text_field(&text, "pub");
    assert_eq!(their_public.len(), 32);
    for params in [hex(OID_X25519), hex(NAME_CURVE25519)] {
        let (public, private) = session
            .generate_key_pair(
                &Mechanism::EccMontgomeryKeyPairGen,
                &[Attribute::Token(false), Attribute::EcParams(params.clone())],
                &[Attribute::Token(false), Attribute::Derive(true)],
            )
            .expect("C_GenerateKeyPair(X25519)");
        assert_eq!(
            attribute_bytes(&session, public, AttributeType::EcParams),
            params
        );
        let point = attribute_bytes(&session, public, AttributeType::EcPoint);
        assert_eq!((point.len(), &point[..2]), (34, &[0x04u8, 0x20][..]));
        let ours = derive(&session, &ck, private, &their_public, None).unwrap();
        let peer = write_file(dir, "peer.der", &curve25519_spki(OID_X25519, &point[2..]));
        let expected = openssl_ok(&[
            "pkeyutl",
            "-derive",
            "-inkey",
            &theirs,
            "-peerkey",
            &peer,
            "-peerform",
            "DER",
        ]);
        assert_eq!(ours, expected, "token's Z = openssl's Z");
        assert_eq!(ours.len(), 32);
        // The peer key as a DER OCTET STRING works too, and CKA_VALUE_LEN truncates.
        assert_eq!(
            derive(
                &session,
                &ck,
                private,
                &der_octet_string(&their_public),
                Some(16)
            )
            .unwrap(),
            expected[..16]
        );
    }
}

#[test]
fn rfc_7748_keys_imported_by_value_derive_the_published_secret() {
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    let ck = Ck::load();
    // RFC 7748 §6.1.
    let alice = x25519_private(
        &session,
        &hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"),
    );
    let bob = x25519_private(
        &session,
        &hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"),
    );
    let alice_public = hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    let bob_public = hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    let k = hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
    assert_eq!(derive(&session, &ck, alice, &bob_public, None).unwrap(), k);
    assert_eq!(derive(&session, &ck, bob, &alice_public, None).unwrap(), k);
    // The X9.63 KDF over Z: SHA-256(Z || 00000001) (no shared info).
    let s = session.handle();
    let kdf = ck
        .derive(
            s,
            &RawMech::ecdh(CKD_SHA256_KDF, &bob_public),
            alice.handle(),
            &secret_template(Some(32)),
        )
        .map(|h| attribute_bytes(&session, handle(h), AttributeType::Value))
        .expect("CKD_SHA256_KDF");
    let expected = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        &[&k[..], &[0, 0, 0, 1]].concat(),
    );
    assert_eq!(kdf, expected.as_ref());
    // Refused: a KDF the module lacks, a short or zero (low-order) peer key, a longer
    // key than Z.
    assert_eq!(
        ck.derive(
            s,
            &RawMech::ecdh(CKD_SHA3_256_KDF, &bob_public),
            alice.handle(),
            &secret_template(Some(32)),
        ),
        Err(RvError::MechanismParamInvalid)
    );
    for bad in [&bob_public[..31], &[0u8; 32][..]] {
        assert_eq!(
            derive(&session, &ck, alice, bad, None),
            Err(RvError::MechanismParamInvalid)
        );
    }
    assert_eq!(
        derive(&session, &ck, alice, &bob_public, Some(33)),
        Err(RvError::TemplateInconsistent)
    );
    // An Edwards curve for a Montgomery key is refused.
    let r = session.create_object(&[
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::EC_MONTGOMERY),
        Attribute::Token(false),
        Attribute::EcParams(hex(OID_ED25519)),
        Attribute::Value(vec![1; 32]),
    ]);
    assert!(
        matches!(r, Err(Error::Pkcs11(RvError::TemplateInconsistent, _))),
        "{r:?}"
    );
    let info = ctx
        .get_mechanism_info(slot, MechanismType::ECC_MONTGOMERY_KEY_PAIR_GEN)
        .unwrap();
    // 448: X448, from libcrypto.so.3 (tests/mech_x448.rs).
    assert_eq!((info.min_key_size(), info.max_key_size()), (255, 448));
    let info = ctx
        .get_mechanism_info(slot, MechanismType::ECDH1_DERIVE)
        .unwrap();
    assert_eq!(info.min_key_size(), 255);
}
