//! `C_DigestKey` through the C ABI: a non-sensitive secret key's value joins the running
//! digest exactly where it is fed (checked against `openssl dgst` of the same bytes),
//! extractable or not; sensitive keys, private keys and keys whose
//! `CKA_ALLOWED_MECHANISMS` leave the digest out are `CKR_KEY_INDIGESTIBLE`
//! (docs/security.md, "C_DigestKey").

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::*;
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

fn aes_key(session: &Session, value: &[u8], extra: &[Attribute]) -> ObjectHandle {
    let mut template = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(false),
        Attribute::Value(value.to_vec()),
        Attribute::Encrypt(true),
    ];
    template.extend_from_slice(extra);
    session.create_object(&template).unwrap()
}

fn openssl_sha256(env: &TestEnv, data: &[u8]) -> Vec<u8> {
    let path = write_file(env.dir.path(), "digested", data);
    openssl_ok(&["dgst", "-sha256", "-binary", &path])
}

#[test]
fn a_non_sensitive_key_is_digested_where_it_is_fed() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let value = hex("000102030405060708090a0b0c0d0e0f");
    // Unextractable (the default) and extractable alike.
    for extractable in [false, true] {
        let key = aes_key(
            &session,
            &value,
            &[
                Attribute::Sensitive(false),
                Attribute::Extractable(extractable),
            ],
        );
        session.digest_init(&Mechanism::Sha256).unwrap();
        session.digest_update(b"before ").unwrap();
        session.digest_key(key).unwrap();
        session.digest_update(b" after").unwrap();
        let ours = session.digest_final().unwrap();
        let mut expected = b"before ".to_vec();
        expected.extend_from_slice(&value);
        expected.extend_from_slice(b" after");
        assert_eq!(
            ours,
            openssl_sha256(&env, &expected),
            "extractable {extractable}"
        );
    }
}

#[test]
fn sensitive_private_and_mechanism_restricted_keys_are_indigestible() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let sensitive = aes_key(&session, &[7; 16], &[Attribute::Sensitive(true)]);
    let restricted = aes_key(
        &session,
        &[8; 16],
        &[
            Attribute::Sensitive(false),
            Attribute::AllowedMechanisms(vec![MechanismType::AES_CBC]),
        ],
    );
    let (public, private) = session
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::Token(false),
                // P-256.
                Attribute::EcParams(hex("06082a8648ce3d030107")),
            ],
            &[Attribute::Token(false), Attribute::Sensitive(false)],
        )
        .unwrap();
    for key in [sensitive, restricted, public, private] {
        session.digest_init(&Mechanism::Sha256).unwrap();
        assert_rv!(session.digest_key(key), RvError::KeyIndigestible);
        // The failed call ended the operation; a new one starts.
        let _ = session.digest_final();
    }
    session.digest_init(&Mechanism::Sha256).unwrap();
    let fresh = aes_key(&session, &[9; 16], &[Attribute::Sensitive(false)]);
    session.destroy_object(fresh).unwrap();
    assert_rv!(session.digest_key(fresh), RvError::KeyHandleInvalid);
}

#[test]
fn digest_key_without_an_active_digest_is_refused() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = aes_key(&session, &[1; 16], &[Attribute::Sensitive(false)]);
    assert_rv!(session.digest_key(key), RvError::OperationNotInitialized);
}
