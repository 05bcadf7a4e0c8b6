//! GetParametersForImport: `C_GenerateKeyPair` whose private template names the target
//! KeyId and the wrapping algorithm. The pair, its token, its public key as the user gets
//! it (checked with `openssl`), the algorithm/spec table and the refusals. Run with
//! `cargo nextest run --test kms_params`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::kms::*;
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;

fn mechanisms_allowed(session: &Session, key: ObjectHandle) -> Vec<CK_MECHANISM_TYPE> {
    let bytes = read_bytes(session, key, CKA_ALLOWED_MECHANISMS).expect("CKA_ALLOWED_MECHANISMS");
    bytes
        .chunks(8)
        .map(|c| CK_ULONG::from_ne_bytes(c.try_into().unwrap()))
        .collect()
}

/// Every attribute the contract puts on the two halves of import parameters.
fn assert_import_parameters(session: &Session, params: &ImportParams, target: &str) {
    let before = system_now();
    for half in [params.public, params.private] {
        assert_eq!(read_bool(session, half, CKA_TOKEN), Some(true), "CKA_TOKEN");
        assert_eq!(
            read_bytes(session, half, CKA_KMSHSM_IMPORT_TOKEN).as_deref(),
            Some(&params.token[..]),
            "both halves carry the same import token"
        );
        assert_eq!(
            read_bytes(session, half, CKA_KMSHSM_IMPORT_TARGET).as_deref(),
            Some(target.as_bytes())
        );
        assert_eq!(
            vendor_value(session, half, CKA_KMSHSM_WRAPPING_ALGORITHM),
            params.alg
        );
        assert_eq!(
            read_bytes(session, half, CKA_PUBLIC_KEY_INFO).as_deref(),
            Some(&params.spki[..]),
            "both halves carry the wrapping public key"
        );
        let expiry = vendor_value(session, half, CKA_KMSHSM_TOKEN_EXPIRY);
        assert!(
            expiry + 120 >= before + TOKEN_LIFETIME && expiry <= before + TOKEN_LIFETIME + 120,
            "token expiry {expiry} is not now ({before}) + 24 h"
        );
    }
    assert!(!params.token.is_empty());
    let p = params.private;
    assert_eq!(read_bool(session, p, CKA_UNWRAP), Some(true), "CKA_UNWRAP");
    assert_eq!(
        read_bool(session, p, CKA_DECRYPT),
        Some(false),
        "CKA_DECRYPT"
    );
    assert_eq!(read_bool(session, p, CKA_SIGN), Some(false), "CKA_SIGN");
    assert_eq!(
        read_bool(session, p, CKA_SENSITIVE),
        Some(true),
        "CKA_SENSITIVE"
    );
    assert_eq!(
        read_bool(session, p, CKA_EXTRACTABLE),
        Some(false),
        "CKA_EXTRACTABLE"
    );
    assert_eq!(
        mechanisms_allowed(session, p),
        vec![mechanism_of(params.alg).ty],
        "the wrapping key is pinned to its algorithm's mechanism"
    );
}

/// What openssl makes of the DER public key the user is given.
fn openssl_public_text(work: &Work, spki: &[u8]) -> String {
    let der = work.file("wrapping.der", spki);
    String::from_utf8(openssl(&[
        "pkey", "-pubin", "-inform", "DER", "-in", &der, "-noout", "-text",
    ]))
    .unwrap()
}

#[test]
fn rsa_import_parameters_are_an_unwrap_only_token_pair_with_a_24_hour_token() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let key = create_external(&session, Spec::Aes256, "target");
    let id = key_id(&session, key);
    for alg in [1, 2, 3, 4, 5] {
        let params = get_params(&session, &id, alg);
        assert_import_parameters(&session, &params, &id);
        let text = openssl_public_text(&work, &params.spki);
        assert!(
            text.contains("Public-Key: (2048 bit)"),
            "the wrapping key is not RSA_2048:\n{text}"
        );
    }
    // The target is untouched.
    assert_eq!(state(&session, key), STATE_PENDING_IMPORT);
}

#[test]
fn the_modulus_bits_may_be_omitted_from_the_public_template() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let key = create_external(&session, Spec::EcP256, "target");
    let id = key_id(&session, key);
    let (_, private) = params_templates(&id, WRAP_RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD);
    let (public, private) = session
        .generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &[], &private)
        .expect("GetParametersForImport without CKA_MODULUS_BITS");
    let spki = read_bytes(&session, public, CKA_PUBLIC_KEY_INFO).unwrap();
    assert!(openssl_public_text(&work, &spki).contains("(2048 bit)"));
    assert_eq!(
        mechanisms_allowed(&session, private),
        vec![CKM_KMSHSM_RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD]
    );
}

#[test]
fn sm2_import_parameters_serve_sm2pke_and_sm2pke_sm4_ecb() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    for (spec, alg) in [(Spec::Sm4, WRAP_SM2PKE), (Spec::EcSm2, WRAP_SM2PKE_SM4_ECB)] {
        let key = create_external(&session, spec, "target");
        let id = key_id(&session, key);
        let params = get_params(&session, &id, alg);
        assert_import_parameters(&session, &params, &id);
        let text = openssl_public_text(&work, &params.spki);
        assert!(
            text.contains("SM2") || text.contains("1.2.156.10197.1.301"),
            "the wrapping key is not on the SM2 curve:\n{text}"
        );
    }
}

#[test]
fn every_call_gives_a_fresh_key_pair_and_a_fresh_token() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = create_external(&session, Spec::Aes256, "target");
    let id = key_id(&session, key);
    let a = get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256);
    let b = get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256);
    assert_ne!(a.token, b.token, "two calls gave the same import token");
    assert_ne!(a.spki, b.spki, "two calls gave the same wrapping key");
    assert_ne!(a.private, b.private);
    // Both are found by their target.
    let found = session
        .find_objects(&[vendor_bytes(CKA_KMSHSM_IMPORT_TARGET, id.as_bytes())])
        .unwrap();
    assert_eq!(found.len(), 4, "two pairs of import parameters");
}

#[test]
fn each_wrapping_algorithm_accepts_exactly_the_key_specs_of_the_contract() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let mut failures = Vec::new();
    for spec in [
        Spec::Aes256,
        Spec::Sm4,
        Spec::Rsa2048,
        Spec::Rsa4096,
        Spec::EcP256,
        Spec::EcP256K,
        Spec::EcSm2,
    ] {
        let key = create_external(&session, spec, "matrix");
        let id = key_id(&session, key);
        for alg in ALL_WRAPPING_ALGORITHMS {
            let got = try_get_params(&session, &id, alg);
            let ok = matches!(
                (&got, spec.accepts(alg)),
                (Ok(_), true)
                    | (
                        Err(cryptoki::error::Error::Pkcs11(
                            RvError::AttributeValueInvalid,
                            _
                        )),
                        false
                    )
            );
            if !ok {
                failures.push(format!("{spec:?} with algorithm {alg}: {got:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn import_parameters_for_a_kms_key_are_unsupported_origin() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = session
        .generate_key(&Mechanism::AesKeyGen, &[Attribute::ValueLen(32.into())])
        .unwrap();
    assert_rv!(
        try_get_params(&session, &key_id(&session, key), WRAP_RSAES_OAEP_SHA_256),
        CKR_KMSHSM_UNSUPPORTED_ORIGIN
    );
    let plaintext = session
        .create_object(&aes_template("plain", &[3u8; 32], false))
        .unwrap();
    // A plaintext import is EXTERNAL: it can take (the same) material by import too.
    try_get_params(
        &session,
        &key_id(&session, plaintext),
        WRAP_RSAES_OAEP_SHA_256,
    )
    .expect("import parameters for a plaintext-imported EXTERNAL key");
}

#[test]
fn import_parameters_for_an_unknown_key_are_key_not_found() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    assert_rv!(
        try_get_params(
            &session,
            "0d0466b0-e727-4d9c-b35d-f84bb474a37f",
            WRAP_RSAES_OAEP_SHA_256
        ),
        CKR_KMSHSM_KEY_NOT_FOUND
    );
}

#[test]
fn a_malformed_target_key_id_is_attribute_value_invalid() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = create_external(&session, Spec::Aes256, "target");
    let upper = key_id(&session, key).to_uppercase();
    assert_rv!(
        try_get_params(&session, &upper, WRAP_RSAES_OAEP_SHA_256),
        RvError::AttributeValueInvalid
    );
}

#[test]
fn an_unknown_wrapping_algorithm_is_attribute_value_invalid_and_none_is_incomplete() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = create_external(&session, Spec::Aes256, "target");
    let id = key_id(&session, key);
    assert_rv!(
        try_get_params(&session, &id, 99),
        RvError::AttributeValueInvalid
    );
    let (public, mut private) = params_templates(&id, WRAP_RSAES_OAEP_SHA_256);
    private.pop();
    assert_rv!(
        session.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private),
        RvError::TemplateIncomplete
    );
}

#[test]
fn a_wrapping_key_that_is_not_rsa_2048_is_refused() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = create_external(&session, Spec::Aes256, "target");
    let id = key_id(&session, key);
    let (_, private) = params_templates(&id, WRAP_RSAES_OAEP_SHA_256);
    assert_rv!(
        session.generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[Attribute::ModulusBits(3072.into())],
            &private
        ),
        RvError::AttributeValueInvalid
    );
    // SM2PKE needs an SM2 wrapping key, RSA algorithms an RSA one.
    let (_, private) = params_templates(&id, WRAP_SM2PKE);
    assert_rv!(
        session.generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[Attribute::ModulusBits(2048.into())],
            &private
        ),
        RvError::AttributeValueInvalid
    );
    let (_, private) = params_templates(&id, WRAP_RSAES_OAEP_SHA_256);
    assert_rv!(
        session.generate_key_pair(
            &vendor_mechanism(CKM_KMSHSM_SM2_KEY_PAIR_GEN),
            &[],
            &private
        ),
        RvError::AttributeValueInvalid
    );
}

#[test]
fn a_template_contradicting_the_forced_attributes_is_template_inconsistent() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = create_external(&session, Spec::Aes256, "target");
    let id = key_id(&session, key);
    for extra in [
        Attribute::Extractable(true),
        Attribute::Sensitive(false),
        Attribute::Decrypt(true),
        Attribute::Sign(true),
        Attribute::Unwrap(false),
        Attribute::Token(false),
    ] {
        let (public, mut private) = params_templates(&id, WRAP_RSAES_OAEP_SHA_256);
        private.retain(|a| a.attribute_type() != extra.attribute_type());
        private.push(extra.clone());
        assert_rv!(
            session.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private),
            RvError::TemplateInconsistent,
            "the private template with {extra:?} was accepted or refused otherwise"
        );
    }
}

#[test]
fn import_parameters_need_a_user_login() {
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    let key = create_external(&session, Spec::Aes256, "target");
    let id = key_id(&session, key);
    session.logout().unwrap();
    let anonymous = ctx.open_rw_session(slot).unwrap();
    assert_rv!(
        try_get_params(&anonymous, &id, WRAP_RSAES_OAEP_SHA_256),
        RvError::UserNotLoggedIn
    );
}

#[test]
fn the_wrapping_private_key_never_decrypts_or_reveals_itself() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = create_external(&session, Spec::Aes256, "target");
    let params = get_params(&session, &key_id(&session, key), WRAP_RSAES_PKCS1_V1_5);
    let got = rv(session.decrypt(&Mechanism::RsaPkcs, params.private, &[1u8; 256]));
    assert!(
        matches!(
            got,
            RvError::KeyFunctionNotPermitted | RvError::MechanismInvalid
        ),
        "decrypting with the wrapping key gave {got:?}"
    );
    assert!(read_bytes(&session, params.private, CKA_PRIVATE_EXPONENT).is_none());
    // The pair is unmodifiable: any change is refused as such (tests/attacks_policy.rs).
    assert_rv!(
        session.update_attributes(params.private, &[Attribute::Extractable(true)]),
        RvError::ActionProhibited,
        "making the wrapping key extractable"
    );
}
