//! Ed25519 through the C ABI (`CKM_EC_EDWARDS_KEY_PAIR_GEN`, `CKM_EDDSA`): key pairs made
//! with the curve given as the RFC 8410 OID or as the name "edwards25519"; signatures
//! verified by `openssl pkeyutl -verify -rawin`; openssl's keys imported by value through
//! C_CreateObject (seed; public key bare and as a DER OCTET STRING) give openssl's very
//! signatures (Ed25519 is deterministic); CK_EDDSA_PARAMS for pure Ed25519, Ed25519ctx and
//! Ed25519ph, checked against RFC 8032 §7.2 and §7.3.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::*;
use common::*;
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;

fn pure() -> Mechanism<'static> {
    Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure))
}

fn generate(session: &Session, params: &[u8]) -> (ObjectHandle, ObjectHandle) {
    session
        .generate_key_pair(
            &Mechanism::EccEdwardsKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::EcParams(params.to_vec()),
                Attribute::Verify(true),
            ],
            &[Attribute::Token(false), Attribute::Sign(true)],
        )
        .expect("C_GenerateKeyPair(Ed25519)")
}

fn rv<T: std::fmt::Debug>(r: cryptoki::error::Result<T>) -> RvError {
    match r {
        Err(Error::Pkcs11(rv, _)) => rv,
        other => panic!("expected a PKCS#11 error, got {other:?}"),
    }
}

fn openssl_verifies(env: &TestEnv, public: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    let dir = env.dir.path();
    let pub_path = write_file(dir, "ed.pub.der", &curve25519_spki(OID_ED25519, public));
    let msg_path = write_file(dir, "ed.msg", msg);
    let sig_path = write_file(dir, "ed.sig", sig);
    openssl(&[
        "pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey", &pub_path, "-rawin", "-in",
        &msg_path, "-sigfile", &sig_path,
    ])
    .ok
}

#[test]
fn generated_ed25519_keys_sign_what_openssl_verifies_for_both_curve_encodings() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let msg = b"signed with Ed25519 in the token".to_vec();
    for params in [hex(OID_ED25519), hex(NAME_EDWARDS25519)] {
        let (public, private) = generate(&session, &params);
        assert_eq!(
            attribute_bytes(&session, public, AttributeType::EcParams),
            params,
            "the caller's encoding of the curve is kept"
        );
        let attrs = session
            .get_attributes(private, &[AttributeType::KeyType])
            .unwrap();
        assert!(
            matches!(&attrs[..], [Attribute::KeyType(k)] if *k == KeyType::EC_EDWARDS),
            "{attrs:?}"
        );
        let point = attribute_bytes(&session, public, AttributeType::EcPoint);
        assert_eq!(point.len(), 34, "CKA_EC_POINT is a DER OCTET STRING");
        assert_eq!(&point[..2], &[0x04, 0x20]);
        let sig = session.sign(&pure(), private, &msg).unwrap();
        assert_eq!(sig.len(), 64);
        session.verify(&pure(), public, &msg, &sig).unwrap();
        assert!(openssl_verifies(&env, &point[2..], &msg, &sig));
        let mut bad = sig.clone();
        bad[5] ^= 1;
        assert!(!openssl_verifies(&env, &point[2..], &msg, &bad), "control");
        assert_eq!(
            rv(session.verify(&pure(), public, &msg, &bad)),
            RvError::SignatureInvalid
        );
    }
}

#[test]
fn openssl_ed25519_keys_imported_by_value_give_openssls_signatures() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let dir = env.dir.path();
    let key_path = dir.join("ed.pem").to_str().unwrap().to_owned();
    openssl_ok(&["genpkey", "-algorithm", "ED25519", "-out", &key_path]);
    let text =
        String::from_utf8(openssl_ok(&["pkey", "-in", &key_path, "-text", "-noout"])).unwrap();
    let (seed, public) = (
        openssl_text_field(&text, "priv"),
        openssl_text_field(&text, "pub"),
    );
    assert_eq!((seed.len(), public.len()), (32, 32));
    let msg = b"signed by openssl and by the token".to_vec();
    let msg_path = write_file(dir, "msg", &msg);
    let theirs = openssl_ok(&[
        "pkeyutl", "-sign", "-inkey", &key_path, "-rawin", "-in", &msg_path,
    ]);
    let private = session
        .create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC_EDWARDS),
            Attribute::Token(false),
            Attribute::Sign(true),
            Attribute::EcParams(hex(OID_ED25519)),
            Attribute::Value(seed),
        ])
        .expect("C_CreateObject(Ed25519 private key)");
    assert_eq!(session.sign(&pure(), private, &msg).unwrap(), theirs);
    // The public key bare (what some clients send) and as PKCS#11 3.0 has it.
    for point in [public.clone(), der_octet_string(&public)] {
        let public = session
            .create_object(&[
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::KeyType(KeyType::EC_EDWARDS),
                Attribute::Token(false),
                Attribute::Verify(true),
                Attribute::EcParams(hex(NAME_EDWARDS25519)),
                Attribute::EcPoint(point),
            ])
            .expect("C_CreateObject(Ed25519 public key)");
        session.verify(&pure(), public, &msg, &theirs).unwrap();
    }
}

#[test]
fn bad_eddsa_parameters_and_bad_objects_are_refused() {
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    let ck = Ck::load();
    let s = session.handle();
    let (public, private) = generate(&session, &hex(OID_ED25519));
    let msg = b"params";
    let null = session.sign(&pure(), private, msg).unwrap();
    // CK_EDDSA_PARAMS with phFlag false and no context: pure Ed25519, same signature.
    let explicit = ck
        .sign(s, &RawMech::eddsa(false, b""), private.handle(), msg)
        .expect("CK_EDDSA_PARAMS {false, empty}");
    assert_eq!(explicit, null);
    // RFC 8032 contexts have one length byte: 256 bytes is refused, as is a wrong size.
    for m in [
        RawMech::eddsa(true, &[7u8; 256]),
        RawMech::eddsa(false, &[7u8; 256]),
        RawMech::bytes(CKM_EDDSA, &[0u8; 3]),
    ] {
        assert_eq!(
            ck.sign_init(s, &m, private.handle()),
            Err(RvError::MechanismParamInvalid)
        );
        assert_eq!(
            ck.verify_init(s, &m, public.handle()),
            Err(RvError::MechanismParamInvalid)
        );
    }
    // ECDSA with an Ed25519 key, EdDSA with a P-256 key.
    assert_eq!(
        rv(session.sign(&Mechanism::Ecdsa, private, &[0; 32])),
        RvError::KeyTypeInconsistent
    );
    let p256 = ec_private(&session, KeyType::EC, OID_P256, &[1u8; 32]);
    assert_eq!(
        rv(session.sign(&pure(), p256, msg)),
        RvError::KeyTypeInconsistent
    );
    // Objects: the X25519 curve for an Edwards key, a short seed, a bad point, P-256 (no
    // Edwards curve; Ed448 is tests/mech_ed448.rs).
    let create = |class, params: &str, extra: Attribute| {
        session.create_object(&[
            Attribute::Class(class),
            Attribute::KeyType(KeyType::EC_EDWARDS),
            Attribute::Token(false),
            Attribute::EcParams(hex(params)),
            extra,
        ])
    };
    assert_eq!(
        rv(create(
            ObjectClass::PRIVATE_KEY,
            OID_X25519,
            Attribute::Value(vec![1; 32])
        )),
        RvError::TemplateInconsistent
    );
    assert_eq!(
        rv(create(
            ObjectClass::PRIVATE_KEY,
            OID_ED25519,
            Attribute::Value(vec![1; 31])
        )),
        RvError::AttributeValueInvalid
    );
    assert_eq!(
        rv(create(
            ObjectClass::PUBLIC_KEY,
            OID_ED25519,
            Attribute::EcPoint(vec![4; 33])
        )),
        RvError::AttributeValueInvalid
    );
    assert_eq!(
        rv(create(
            ObjectClass::PRIVATE_KEY,
            "06082a8648ce3d030107",
            Attribute::Value(vec![1; 32])
        )),
        RvError::CurveNotSupported
    );
    assert_eq!(
        rv(session.generate_key_pair(
            &Mechanism::EccEdwardsKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::EcParams(hex(OID_X25519))
            ],
            &[Attribute::Token(false)],
        )),
        RvError::CurveNotSupported
    );
    for m in [
        MechanismType::EDDSA,
        MechanismType::ECC_EDWARDS_KEY_PAIR_GEN,
    ] {
        // 448: Ed448, from libcrypto.so.3 (tests/mech_ed448.rs).
        let info = ctx.get_mechanism_info(slot, m).unwrap();
        assert_eq!((info.min_key_size(), info.max_key_size()), (255, 448));
    }
}

/// Imports an RFC 8032 key pair by value: (public, private).
fn rfc_pair(session: &Session, seed: &str, public: &str) -> (ObjectHandle, ObjectHandle) {
    let private = session
        .create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC_EDWARDS),
            Attribute::Token(false),
            Attribute::Sign(true),
            Attribute::EcParams(hex(OID_ED25519)),
            Attribute::Value(hex(seed)),
        ])
        .expect("C_CreateObject(Ed25519 private key)");
    let public = session
        .create_object(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::EC_EDWARDS),
            Attribute::Token(false),
            Attribute::Verify(true),
            Attribute::EcParams(hex(OID_ED25519)),
            Attribute::EcPoint(hex(public)),
        ])
        .expect("C_CreateObject(Ed25519 public key)");
    (public, private)
}

/// RFC 8032 §7.2, all four Ed25519ctx cases: (secret key, public key, message, context,
/// signature).
const RFC8032_CTX: [(&str, &str, &str, &str, &str); 4] = [
    (
        "0305334e381af78f141cb666f6199f57bc3495335a256a95bd2a55bf546663f6",
        "dfc9425e4f968f7f0c29f0259cf5f9aed6851c2bb4ad8bfb860cfee0ab248292",
        "f726936d19c800494e3fdaff20b276a8",
        "666f6f",
        "55a4cc2f70a54e04288c5f4cd1e45a7bb520b36292911876cada7323198dd87a\
         8b36950b95130022907a7fb7c4e9b2d5f6cca685a587b4b21f4b888e4e7edb0d",
    ),
    (
        "0305334e381af78f141cb666f6199f57bc3495335a256a95bd2a55bf546663f6",
        "dfc9425e4f968f7f0c29f0259cf5f9aed6851c2bb4ad8bfb860cfee0ab248292",
        "f726936d19c800494e3fdaff20b276a8",
        "626172",
        "fc60d5872fc46b3aa69f8b5b4351d5808f92bcc044606db097abab6dbcb1aee3\
         216c48e8b3b66431b5b186d1d28f8ee15a5ca2df6668346291c2043d4eb3e90d",
    ),
    (
        "0305334e381af78f141cb666f6199f57bc3495335a256a95bd2a55bf546663f6",
        "dfc9425e4f968f7f0c29f0259cf5f9aed6851c2bb4ad8bfb860cfee0ab248292",
        "508e9e6882b979fea900f62adceaca35",
        "666f6f",
        "8b70c1cc8310e1de20ac53ce28ae6e7207f33c3295e03bb5c0732a1d20dc6490\
         8922a8b052cf99b7c4fe107a5abb5b2c4085ae75890d02df26269d8945f84b0b",
    ),
    (
        "ab9c2853ce297ddab85c993b3ae14bcad39b2c682beabc27d6d4eb20711d6560",
        "0f1d1274943b91415889152e893d80e93275a1fc0b65fd71b4b0dda10ad7d772",
        "f726936d19c800494e3fdaff20b276a8",
        "666f6f",
        "21655b5f1aa965996b3f97b3c849eafba922a0a62992f73b3d1b73106a84ad85\
         e9b86a7b6005ea868337ff2d20a7f5fbd4cd10b0be49a68da2b2e0dc0ad8960f",
    ),
];

#[test]
fn ed25519ctx_gives_the_rfc_8032_signatures_and_binds_the_context() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    for (seed, public_hex, msg, context, sig) in RFC8032_CTX {
        let (public, private) = rfc_pair(&session, seed, public_hex);
        let (msg, context, sig) = (hex(msg), hex(context), hex(sig));
        let m = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Ed25519ctx(&context)));
        assert_eq!(
            session.sign(&m, private, &msg).unwrap(),
            sig,
            "context {context:02x?}"
        );
        session.verify(&m, public, &msg, &sig).unwrap();
        // The same signature under another context, or as pure Ed25519, is not valid.
        let other = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Ed25519ctx(b"baz")));
        assert_eq!(
            rv(session.verify(&other, public, &msg, &sig)),
            RvError::SignatureInvalid
        );
        assert_eq!(
            rv(session.verify(&pure(), public, &msg, &sig)),
            RvError::SignatureInvalid
        );
    }
}

#[test]
fn ed25519ph_gives_the_rfc_8032_signature_in_one_part_or_many() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    // RFC 8032 §7.3, TEST abc (no context).
    let (public, private) = rfc_pair(
        &session,
        "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
    );
    let sig = hex(
        "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41\
         31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406",
    );
    let m = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Ed25519ph(&[])));
    assert_eq!(session.sign(&m, private, b"abc").unwrap(), sig);
    session.sign_init(&m, private).unwrap();
    session.sign_update(b"a").unwrap();
    session.sign_update(b"bc").unwrap();
    assert_eq!(session.sign_final().unwrap(), sig);
    session.verify(&m, public, b"abc", &sig).unwrap();
    session.verify_init(&m, public).unwrap();
    session.verify_update(b"ab").unwrap();
    session.verify_update(b"c").unwrap();
    session.verify_final(&sig).unwrap();
    assert_eq!(
        rv(session.verify(&m, public, b"abd", &sig)),
        RvError::SignatureInvalid
    );
    // A context changes the signature (dom2 carries it) and is checked on verification.
    let with = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Ed25519ph(
        b"context",
    )));
    let sig_ctx = session.sign(&with, private, b"abc").unwrap();
    assert_ne!(sig_ctx, sig);
    session.verify(&with, public, b"abc", &sig_ctx).unwrap();
    assert_eq!(
        rv(session.verify(&m, public, b"abc", &sig_ctx)),
        RvError::SignatureInvalid
    );
}
