//! What C_CreateObject of plaintext keys does with the key spec it infers from the
//! object's class, key type and size (`token::kms::shape::spec_of`), and with a KeyUsage
//! the spec does not allow: a key made with material keeps the usage it was given (only
//! a key waiting for material must name one its spec allows). Written by the independent
//! review of the key-model facade, which ran it against the module before and after.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::kms::*;
use common::*;
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use cryptoki::session::Session;

/// The DER OID of P-384 (not a KMS curve).
const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

fn secret(key_type: KeyType, len: usize, usage: Option<u64>) -> Vec<Attribute> {
    let mut t = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(key_type),
        Attribute::Token(true),
        Attribute::Value(vec![7u8; len]),
    ];
    t.extend(usage.map(|u| vendor_ulong(CKA_KMSHSM_KEY_USAGE, u)));
    t
}

fn ec_private(params: &[u8], len: usize, usage: Option<u64>) -> Vec<Attribute> {
    let mut t = vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::EC),
        Attribute::Token(true),
        Attribute::EcParams(params.to_vec()),
        Attribute::Value(vec![1u8; len]),
    ];
    t.extend(usage.map(|u| vendor_ulong(CKA_KMSHSM_KEY_USAGE, u)));
    t
}

fn spec_of_created(session: &Session, template: &[Attribute]) -> Option<u64> {
    let key = session
        .create_object(template)
        .unwrap_or_else(|e| panic!("C_CreateObject: {e}"));
    read_ulong(session, key, CKA_KMSHSM_KEY_SPEC)
}

#[test]
fn plaintext_keys_get_the_key_spec_of_their_size_or_curve_and_no_other() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let sm4 = KeyType::new_vendor_defined(CKK_KMSHSM_SM4).unwrap();
    let cases: [(&str, Vec<Attribute>, Option<Spec>); 7] = [
        ("AES-128", secret(KeyType::AES, 16, None), None),
        ("AES-192", secret(KeyType::AES, 24, None), None),
        (
            "AES-256",
            secret(KeyType::AES, 32, None),
            Some(Spec::Aes256),
        ),
        ("SM4", secret(sm4, 16, None), Some(Spec::Sm4)),
        ("P-256", ec_private(OID_P256, 32, None), Some(Spec::EcP256)),
        (
            "secp256k1",
            ec_private(OID_SECP256K1, 32, None),
            Some(Spec::EcP256K),
        ),
        ("P-384", ec_private(OID_P384, 48, None), None),
    ];
    for (name, template, spec) in cases {
        assert_eq!(
            spec_of_created(&session, &template),
            spec.map(Spec::code),
            "{name}"
        );
    }
}

/// On main a plaintext key holding material took whatever KeyUsage the template named
/// (only a PendingImport key was checked against its spec); on the branch
/// `model::create_key`, called by `with_kms_identity`, refuses it with
/// CKR_TEMPLATE_INCONSISTENT. Passes against main's module, fails against the branch's.
#[test]
fn plaintext_keys_with_a_usage_their_spec_does_not_allow_keep_the_usage_given() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let cases: [(&str, Vec<Attribute>); 4] = [
        (
            "AES-256 SIGN_VERIFY",
            secret(KeyType::AES, 32, Some(USAGE_SIGN_VERIFY)),
        ),
        (
            "P-256 ENCRYPT_DECRYPT",
            ec_private(OID_P256, 32, Some(USAGE_ENCRYPT_DECRYPT)),
        ),
        // Keys of no KMS spec, whose usage nothing could check.
        (
            "AES-128 SIGN_VERIFY",
            secret(KeyType::AES, 16, Some(USAGE_SIGN_VERIFY)),
        ),
        (
            "P-384 ENCRYPT_DECRYPT",
            ec_private(OID_P384, 48, Some(USAGE_ENCRYPT_DECRYPT)),
        ),
    ];
    let outcomes: Vec<String> = cases
        .iter()
        .map(|(name, template)| {
            format!("{name}: {:?}", session.create_object(template).map(|_| ()))
        })
        .collect();
    for outcome in &outcomes {
        assert!(outcome.ends_with("Ok(())"), "{outcomes:#?}");
    }
}

/// A KeyUsage named in a generation template is kept as given too: it only narrows what
/// the caller's own key may do (an AES key confined to SIGN/VERIFY can MAC and no longer
/// encrypt), and each use is judged by the mechanisms the key type allows.
#[test]
fn a_generated_aes_256_key_keeps_the_usage_its_template_names() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = session
        .generate_key(
            &cryptoki::mechanism::Mechanism::AesKeyGen,
            &[
                Attribute::ValueLen(32.into()),
                Attribute::Token(true),
                vendor_ulong(CKA_KMSHSM_KEY_USAGE, USAGE_SIGN_VERIFY),
            ],
        )
        .unwrap();
    assert_eq!(
        read_ulong(&session, key, CKA_KMSHSM_KEY_SPEC),
        Some(Spec::Aes256.code())
    );
    assert_eq!(
        read_ulong(&session, key, CKA_KMSHSM_KEY_USAGE),
        Some(USAGE_SIGN_VERIFY)
    );
}

/// `spec_of` checks the length of AES keys only (an SM4 key is SM4 whatever its length);
/// that is sound because C_CreateObject refuses an SM4 value of any length but 16.
#[test]
fn an_sm4_key_of_another_length_is_refused_or_has_no_key_spec() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let sm4 = KeyType::new_vendor_defined(CKK_KMSHSM_SM4).unwrap();
    for len in [8, 24, 32] {
        if let Ok(key) = session.create_object(&secret(sm4, len, None)) {
            assert_eq!(
                read_ulong(&session, key, CKA_KMSHSM_KEY_SPEC),
                None,
                "SM4 key of {len} bytes"
            );
        }
    }
}
