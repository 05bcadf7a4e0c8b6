//! The KMS identity of keys (CreateKey): generated keys (Origin KMS) and EXTERNAL keys
//! created without material (PendingImport) or with it (plaintext import), their vendor
//! attributes, and the template errors of C_CreateObject. Run with
//! `cargo nextest run --test kms_create`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::kms::*;
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;

fn assert_kms_identity(session: &Session, key: ObjectHandle, spec: Option<Spec>) -> String {
    let id = key_id(session, key);
    assert!(is_key_id(&id), "KeyId {id:?} is not a lower-case UUID");
    assert_eq!(origin(session, key), ORIGIN_KMS);
    assert_eq!(state(session, key), STATE_ENABLED);
    assert_eq!(vendor_value(session, key, CKA_KMSHSM_MATERIAL_EXPIRY), 0);
    assert_eq!(
        read_ulong(session, key, CKA_KMSHSM_KEY_SPEC),
        spec.map(Spec::code),
        "CKA_KMSHSM_KEY_SPEC"
    );
    assert_eq!(read_bool(session, key, CKA_LOCAL), Some(true), "CKA_LOCAL");
    id
}

fn generate_pair(session: &Session, spec: Spec) -> (ObjectHandle, ObjectHandle) {
    let (mechanism, public): (Mechanism, Vec<Attribute>) = match spec {
        Spec::Rsa2048 | Spec::Rsa3072 | Spec::Rsa4096 => (
            Mechanism::RsaPkcsKeyPairGen,
            vec![
                Attribute::ModulusBits((spec.rsa_bits().unwrap() as u64).into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
            ],
        ),
        Spec::EcP256 | Spec::EcP256K => (
            Mechanism::EccKeyPairGen,
            vec![Attribute::EcParams(spec.ec_params().unwrap().to_vec())],
        ),
        Spec::EcSm2 => (vendor_mechanism(CKM_KMSHSM_SM2_KEY_PAIR_GEN), vec![]),
        _ => unreachable!(),
    };
    session
        .generate_key_pair(
            &mechanism,
            &public,
            &[Attribute::Sensitive(true), Attribute::Sign(true)],
        )
        .unwrap_or_else(|e| panic!("C_GenerateKeyPair {spec:?}: {e}"))
}

#[test]
fn a_generated_aes_256_key_carries_its_kms_identity() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::ValueLen(32.into()),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
            ],
        )
        .unwrap();
    assert_kms_identity(&session, key, Some(Spec::Aes256));
    assert_eq!(read_bool(&session, key, CKA_ALWAYS_SENSITIVE), Some(true));
    assert_eq!(read_bool(&session, key, CKA_NEVER_EXTRACTABLE), Some(true));
}

#[test]
fn a_generated_aes_128_key_has_an_identity_but_no_key_spec() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = session
        .generate_key(&Mechanism::AesKeyGen, &[Attribute::ValueLen(16.into())])
        .unwrap();
    assert_kms_identity(&session, key, None);
}

#[test]
fn a_generated_sm4_key_has_spec_sm4() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = session
        .generate_key(&vendor_mechanism(CKM_KMSHSM_SM4_KEY_GEN), &[])
        .unwrap();
    assert_kms_identity(&session, key, Some(Spec::Sm4));
    assert_eq!(
        read_ulong(&session, key, CKA_KEY_TYPE),
        Some(CKK_KMSHSM_SM4)
    );
}

#[test]
fn the_two_halves_of_a_generated_pair_share_one_key_id_and_their_spec() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    for spec in [
        Spec::Rsa2048,
        Spec::Rsa3072,
        Spec::Rsa4096,
        Spec::EcP256,
        Spec::EcP256K,
        Spec::EcSm2,
    ] {
        let (public, private) = generate_pair(&session, spec);
        let id = assert_kms_identity(&session, private, Some(spec));
        assert_eq!(
            assert_kms_identity(&session, public, Some(spec)),
            id,
            "{spec:?}"
        );
        assert_eq!(
            read_bool(&session, private, CKA_ALWAYS_SENSITIVE),
            Some(true)
        );
        assert_eq!(
            read_bool(&session, private, CKA_NEVER_EXTRACTABLE),
            Some(true)
        );
    }
}

#[test]
fn every_generated_key_gets_its_own_key_id() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let mut ids = std::collections::BTreeSet::new();
    for _ in 0..5 {
        let key = session
            .generate_key(&Mechanism::AesKeyGen, &[Attribute::ValueLen(32.into())])
            .unwrap();
        assert!(ids.insert(key_id(&session, key)), "a KeyId was given twice");
    }
    let (public, private) = generate_pair(&session, Spec::EcP256);
    assert!(ids.insert(key_id(&session, private)));
    assert!(!ids.insert(key_id(&session, public)));
}

#[test]
fn an_external_key_without_material_is_pending_import_for_every_spec() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    for spec in Spec::ALL {
        let key = create_external(&session, spec, "pending");
        let id = key_id(&session, key);
        assert!(is_key_id(&id), "{spec:?}: KeyId {id:?}");
        assert_eq!(origin(&session, key), ORIGIN_EXTERNAL, "{spec:?}");
        assert_eq!(state(&session, key), STATE_PENDING_IMPORT, "{spec:?}");
        assert_eq!(
            vendor_value(&session, key, CKA_KMSHSM_KEY_SPEC),
            spec.code(),
            "{spec:?}"
        );
        assert_eq!(vendor_value(&session, key, CKA_KMSHSM_MATERIAL_EXPIRY), 0);
        assert_eq!(
            read_bool(&session, key, CKA_LOCAL),
            Some(false),
            "{spec:?} CKA_LOCAL"
        );
        if let Some(oid) = spec.ec_params() {
            assert_eq!(
                read_bytes(&session, key, CKA_EC_PARAMS).as_deref(),
                Some(oid),
                "{spec:?}: the module fills CKA_EC_PARAMS from the spec"
            );
        }
    }
}

#[test]
fn the_key_usage_given_at_creation_is_kept() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let mut template = external_template(Spec::Rsa2048, "rsa-enc");
    template.push(vendor_ulong(CKA_KMSHSM_KEY_USAGE, USAGE_ENCRYPT_DECRYPT));
    let key = session.create_object(&template).unwrap();
    assert_eq!(
        vendor_value(&session, key, CKA_KMSHSM_KEY_USAGE),
        USAGE_ENCRYPT_DECRYPT
    );
    let mut template = external_template(Spec::EcP256, "ec-sign");
    template.push(vendor_ulong(CKA_KMSHSM_KEY_USAGE, USAGE_SIGN_VERIFY));
    let key = session.create_object(&template).unwrap();
    assert_eq!(
        vendor_value(&session, key, CKA_KMSHSM_KEY_USAGE),
        USAGE_SIGN_VERIFY
    );
}

#[test]
fn a_pending_import_key_refuses_every_cryptographic_use() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let aes = create_external(&session, Spec::Aes256, "aes");
    assert_rv!(
        session.encrypt(&Mechanism::AesCbcPad(IV), aes, b"data"),
        CKR_KMSHSM_INCORRECT_KEY_STATE
    );
    assert_rv!(
        session.decrypt(&Mechanism::AesCbcPad(IV), aes, &[0u8; 16]),
        CKR_KMSHSM_INCORRECT_KEY_STATE
    );
    let sm4 = create_external(&session, Spec::Sm4, "sm4");
    assert_rv!(
        encrypt_with(&session, Spec::Sm4, sm4),
        CKR_KMSHSM_INCORRECT_KEY_STATE
    );
    for spec in [Spec::Rsa2048, Spec::EcP256, Spec::EcP256K, Spec::EcSm2] {
        let key = create_external(&session, spec, "asym");
        assert_rv!(
            sign_with(&session, spec, key, b"data"),
            CKR_KMSHSM_INCORRECT_KEY_STATE,
            "{spec:?}: a PendingImport key signed"
        );
    }
}

#[test]
fn plaintext_material_in_create_object_is_an_enabled_external_key() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Sensitive(true),
            Attribute::Encrypt(true),
            Attribute::Value(vec![7u8; 32]),
        ])
        .unwrap();
    assert!(is_key_id(&key_id(&session, key)));
    assert_eq!(origin(&session, key), ORIGIN_EXTERNAL);
    assert_eq!(state(&session, key), STATE_ENABLED);
    assert_eq!(
        vendor_value(&session, key, CKA_KMSHSM_KEY_SPEC),
        Spec::Aes256.code()
    );
    assert_eq!(read_bool(&session, key, CKA_LOCAL), Some(false));
    assert_eq!(read_bool(&session, key, CKA_ALWAYS_SENSITIVE), Some(false));
    assert_eq!(read_bool(&session, key, CKA_NEVER_EXTRACTABLE), Some(false));
    session
        .encrypt(&Mechanism::AesCbcPad(IV), key, b"data")
        .expect("a plaintext-imported key is usable");
}

#[test]
fn plaintext_material_with_an_explicit_external_origin_is_enabled() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Value(vec![9u8; 32]),
            vendor_ulong(CKA_KMSHSM_ORIGIN, ORIGIN_EXTERNAL),
            vendor_ulong(CKA_KMSHSM_KEY_SPEC, Spec::Aes256.code()),
        ])
        .unwrap();
    assert_eq!(origin(&session, key), ORIGIN_EXTERNAL);
    assert_eq!(state(&session, key), STATE_ENABLED);
}

#[test]
fn an_external_key_without_a_key_spec_is_template_incomplete() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let mut template = external_template(Spec::Aes256, "no-spec");
    template.retain(|a| {
        a.attribute_type() != cryptoki::object::AttributeType::VendorDefined(CKA_KMSHSM_KEY_SPEC)
    });
    assert_rv!(
        session.create_object(&template),
        RvError::TemplateIncomplete
    );
}

#[test]
fn an_unknown_key_spec_is_attribute_value_invalid() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let mut template = external_template(Spec::Aes256, "bad-spec");
    template.push(vendor_ulong(CKA_KMSHSM_KEY_SPEC, 99));
    template.remove(5); // the valid spec
    assert_rv!(
        session.create_object(&template),
        RvError::AttributeValueInvalid
    );
}

#[test]
fn a_key_spec_that_does_not_fit_the_key_type_is_template_inconsistent() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    for (spec, wrong) in [
        (Spec::Aes256, Spec::Sm4),
        (Spec::Sm4, Spec::Aes256),
        (Spec::Rsa2048, Spec::EcP256),
        (Spec::EcP256, Spec::EcSm2),
        (Spec::EcSm2, Spec::EcP256K),
        (Spec::Aes256, Spec::Rsa2048),
    ] {
        let mut template = external_template(spec, "mismatch");
        template[5] = vendor_ulong(CKA_KMSHSM_KEY_SPEC, wrong.code());
        assert_rv!(
            session.create_object(&template),
            RvError::TemplateInconsistent,
            "a {spec:?} key type with spec {wrong:?} was accepted"
        );
    }
}

#[test]
fn a_usage_the_spec_does_not_allow_is_template_inconsistent() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    for (spec, usage) in [
        (Spec::Aes256, USAGE_SIGN_VERIFY),
        (Spec::Sm4, USAGE_SIGN_VERIFY),
        (Spec::EcP256, USAGE_ENCRYPT_DECRYPT),
    ] {
        let mut template = external_template(spec, "usage");
        template.push(vendor_ulong(CKA_KMSHSM_KEY_USAGE, usage));
        assert_rv!(
            session.create_object(&template),
            RvError::TemplateInconsistent,
            "{spec:?} with usage {usage}"
        );
    }
}

#[test]
fn an_unknown_usage_or_origin_is_attribute_value_invalid() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let mut template = external_template(Spec::Aes256, "usage");
    template.push(vendor_ulong(CKA_KMSHSM_KEY_USAGE, 77));
    assert_rv!(
        session.create_object(&template),
        RvError::AttributeValueInvalid
    );
    let mut template = external_template(Spec::Aes256, "origin");
    template[4] = vendor_ulong(CKA_KMSHSM_ORIGIN, 77);
    assert_rv!(
        session.create_object(&template),
        RvError::AttributeValueInvalid
    );
}

#[test]
fn a_created_key_cannot_claim_origin_kms() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let mut template = external_template(Spec::Aes256, "kms");
    template[4] = vendor_ulong(CKA_KMSHSM_ORIGIN, ORIGIN_KMS);
    assert_rv!(
        session.create_object(&template),
        RvError::TemplateInconsistent
    );
    let plaintext = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Value(vec![1u8; 32]),
        vendor_ulong(CKA_KMSHSM_ORIGIN, ORIGIN_KMS),
    ];
    assert_rv!(
        session.create_object(&plaintext),
        RvError::TemplateInconsistent
    );
}

#[test]
fn plaintext_material_contradicting_its_key_spec_is_template_inconsistent() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Value(vec![1u8; 16]),
        vendor_ulong(CKA_KMSHSM_KEY_SPEC, Spec::Aes256.code()),
    ];
    assert_rv!(
        session.create_object(&template),
        RvError::TemplateInconsistent
    );
}

#[test]
fn the_module_set_identity_attributes_cannot_be_given_or_changed() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let mut template = external_template(Spec::Aes256, "forged");
    template.push(vendor_bytes(
        CKA_KMSHSM_KEY_ID,
        b"00000000-0000-0000-0000-000000000000",
    ));
    let got = rv(session.create_object(&template));
    assert!(
        matches!(
            got,
            RvError::AttributeReadOnly | RvError::TemplateInconsistent
        ),
        "a caller-chosen KeyId gave {got:?}"
    );
    let key = create_external(&session, Spec::Aes256, "fixed");
    let got = rv(session.update_attributes(
        key,
        &[vendor_bytes(
            CKA_KMSHSM_KEY_ID,
            b"00000000-0000-0000-0000-000000000000",
        )],
    ));
    assert!(
        matches!(got, RvError::AttributeReadOnly),
        "changing the KeyId gave {got:?}"
    );
    let got = rv(session.update_attributes(key, &[vendor_ulong(CKA_KMSHSM_ORIGIN, ORIGIN_KMS)]));
    assert!(
        matches!(got, RvError::AttributeReadOnly),
        "changing the origin gave {got:?}"
    );
}

#[test]
fn a_copied_key_gets_its_own_key_id_and_its_own_state() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = session
        .generate_key(&Mechanism::AesKeyGen, &[Attribute::ValueLen(32.into())])
        .unwrap();
    let copy = session.copy_object(key, &[]).unwrap();
    let (a, b) = (key_id(&session, key), key_id(&session, copy));
    assert!(is_key_id(&b), "{b}");
    assert_ne!(a, b, "a copy is another key");
    set_state(&session, copy, STATE_DISABLED).unwrap();
    assert_eq!(state(&session, copy), STATE_DISABLED);
    assert_eq!(
        state(&session, key),
        STATE_ENABLED,
        "the original is untouched"
    );
}
