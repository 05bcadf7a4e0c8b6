//! Ed25519 through the C ABI (`CKM_EC_EDWARDS_KEY_PAIR_GEN`, `CKM_EDDSA`): key pairs made
//! with the curve given as the RFC 8410 OID or as the name "edwards25519"; signatures
//! verified by `openssl pkeyutl -verify -rawin`; openssl's keys imported by value through
//! C_CreateObject (seed; public key bare and as a DER OCTET STRING) give openssl's very
//! signatures (Ed25519 is deterministic); CK_EDDSA_PARAMS accepted for pure Ed25519 only.

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
fn eddsa_parameters_pure_only_and_bad_objects_are_refused() {
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
    for m in [
        RawMech::eddsa(true, b""),
        RawMech::eddsa(false, b"context"),
        RawMech::eddsa(true, b"context"),
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
    // Objects: the X25519 curve for an Edwards key, a short seed, a bad point, Ed448.
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
            "06032b6571",
            Attribute::Value(vec![1; 57])
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
        let info = ctx.get_mechanism_info(slot, m).unwrap();
        assert_eq!((info.min_key_size(), info.max_key_size()), (255, 255));
    }
}
