//! Object creation from templates (PKCS#11 3.1 §4, §5.7): C_CreateObject for secret keys,
//! RSA and EC key pairs, data objects and X.509 certificates; the template rules (§4.1.1:
//! incomplete, inconsistent, invalid value, invalid type, read-only); the defaults of the
//! contract; private objects and sealed secrets need a login; C_CopyObject, C_DestroyObject,
//! C_GetObjectSize, CKA_UNIQUE_ID. Run with `cargo nextest run`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::material::*;
use common::raw::{Raw, RawAttr};
use common::*;
use cryptoki::error::RvError;
use cryptoki::object::{
    Attribute, AttributeInfo, AttributeType, CertificateType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::Session;
use cryptoki_sys::*;

/// An attribute type number the specification does not define (below CKA_VENDOR_DEFINED).
const UNDEFINED_ATTRIBUTE: CK_ATTRIBUTE_TYPE = 0x0000_7A7A;

fn rsa_private_template(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::RSA),
        Attribute::Token(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(b"rsa-1".to_vec()),
        Attribute::Sign(true),
        Attribute::Decrypt(true),
        Attribute::Extractable(true),
        Attribute::Modulus(hex(RSA_MODULUS)),
        Attribute::PublicExponent(hex(RSA_PUBLIC_EXPONENT)),
        Attribute::PrivateExponent(hex(RSA_PRIVATE_EXPONENT)),
        Attribute::Prime1(hex(RSA_PRIME1)),
        Attribute::Prime2(hex(RSA_PRIME2)),
        Attribute::Exponent1(hex(RSA_EXPONENT1)),
        Attribute::Exponent2(hex(RSA_EXPONENT2)),
        Attribute::Coefficient(hex(RSA_COEFFICIENT)),
    ]
}

fn rsa_public_template(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::RSA),
        Attribute::Token(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(b"rsa-1".to_vec()),
        Attribute::Verify(true),
        Attribute::Encrypt(true),
        Attribute::Modulus(hex(RSA_MODULUS)),
        Attribute::PublicExponent(hex(RSA_PUBLIC_EXPONENT)),
    ]
}

fn ec_private_template(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::EC),
        Attribute::Token(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Sign(true),
        Attribute::EcParams(hex(EC_PARAMS_P256)),
        Attribute::Extractable(true),
        Attribute::Value(hex(EC_PRIVATE_VALUE)),
    ]
}

fn ec_public_template(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::EC),
        Attribute::Token(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Verify(true),
        Attribute::EcParams(hex(EC_PARAMS_P256)),
        Attribute::EcPoint(hex(EC_POINT_DER)),
    ]
}

fn certificate_template(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::CERTIFICATE),
        Attribute::CertificateType(CertificateType::X_509),
        Attribute::Token(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Subject(hex(CERT_SUBJECT_DER)),
        Attribute::Value(hex(CERT_DER)),
    ]
}

/// `template` without the attributes of type `ty`.
fn without(template: Vec<Attribute>, ty: AttributeType) -> Vec<Attribute> {
    template
        .into_iter()
        .filter(|a| a.attribute_type() != ty)
        .collect()
}

fn assert_value(session: &Session, object: ObjectHandle, ty: AttributeType, expected: &[u8]) {
    assert_eq!(attribute_bytes(session, object, ty), expected, "{ty:?}");
}

#[test]
fn aes_keys_of_16_24_and_32_bytes_are_created() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    for len in [16usize, 24, 32] {
        let value: Vec<u8> = (0..len as u8).collect();
        for token in [false, true] {
            let label = format!("aes-{len}-{token}");
            let key = session
                .create_object(&aes_template(&label, &value, token))
                .unwrap();
            assert_value(&session, key, AttributeType::Value, &value);
            assert_value(
                &session,
                key,
                AttributeType::ValueLen,
                &(len as CK_ULONG).to_ne_bytes(),
            );
            assert_value(
                &session,
                key,
                AttributeType::Class,
                &CKO_SECRET_KEY.to_ne_bytes(),
            );
            assert_value(
                &session,
                key,
                AttributeType::KeyType,
                &CKK_AES.to_ne_bytes(),
            );
            assert_eq!(attribute_bool(&session, key, AttributeType::Token), token);
            assert!(
                !attribute_bool(&session, key, AttributeType::Local),
                "imported key is not local"
            );
        }
    }
}

#[test]
fn aes_key_of_15_bytes_is_refused() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    assert_rv!(
        session.create_object(&aes_template("short", &[1u8; 15], false)),
        RvError::AttributeValueInvalid
    );
    assert_rv!(
        session.create_object(&aes_template("odd", &[1u8; 33], true)),
        RvError::AttributeValueInvalid
    );
}

#[test]
fn generic_secret_keys_are_created() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let value = b"an hmac key of any length at all".to_vec();
    let key = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(true),
            Attribute::Sign(true),
            Attribute::Extractable(true),
            Attribute::Label(b"hmac".to_vec()),
            Attribute::Value(value.clone()),
        ])
        .unwrap();
    assert_value(&session, key, AttributeType::Value, &value);
    assert_value(
        &session,
        key,
        AttributeType::KeyType,
        &CKK_GENERIC_SECRET.to_ne_bytes(),
    );
}

#[test]
fn rsa_key_pair_is_created_from_its_components() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let private = session.create_object(&rsa_private_template("rsa")).unwrap();
    let public = session.create_object(&rsa_public_template("rsa")).unwrap();
    assert_value(&session, private, AttributeType::Modulus, &hex(RSA_MODULUS));
    assert_value(
        &session,
        private,
        AttributeType::PublicExponent,
        &hex(RSA_PUBLIC_EXPONENT),
    );
    assert_value(&session, public, AttributeType::Modulus, &hex(RSA_MODULUS));
    assert_value(
        &session,
        public,
        AttributeType::ModulusBits,
        &(2048 as CK_ULONG).to_ne_bytes(),
    );
    assert_value(&session, private, AttributeType::Id, b"rsa-1");
    // Not sensitive (the default of the contract), so the components read back.
    assert_value(
        &session,
        private,
        AttributeType::PrivateExponent,
        &hex(RSA_PRIVATE_EXPONENT),
    );
    assert_value(&session, private, AttributeType::Prime1, &hex(RSA_PRIME1));
    assert_value(
        &session,
        private,
        AttributeType::Coefficient,
        &hex(RSA_COEFFICIENT),
    );
}

#[test]
fn rsa_private_key_without_modulus_is_incomplete() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    assert_rv!(
        session.create_object(&without(
            rsa_private_template("rsa"),
            AttributeType::Modulus
        )),
        RvError::TemplateIncomplete
    );
    assert_rv!(
        session.create_object(&without(
            rsa_public_template("rsa"),
            AttributeType::PublicExponent
        )),
        RvError::TemplateIncomplete
    );
}

#[test]
fn ec_key_pair_is_created() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let private = session.create_object(&ec_private_template("ec")).unwrap();
    let public = session.create_object(&ec_public_template("ec")).unwrap();
    assert_value(
        &session,
        private,
        AttributeType::EcParams,
        &hex(EC_PARAMS_P256),
    );
    assert_value(
        &session,
        private,
        AttributeType::Value,
        &hex(EC_PRIVATE_VALUE),
    );
    assert_value(&session, public, AttributeType::EcPoint, &hex(EC_POINT_DER));
    assert_value(
        &session,
        public,
        AttributeType::KeyType,
        &CKK_EC.to_ne_bytes(),
    );
}

#[test]
fn ec_keys_without_params_or_point_are_incomplete() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    assert_rv!(
        session.create_object(&without(ec_public_template("ec"), AttributeType::EcPoint)),
        RvError::TemplateIncomplete
    );
    assert_rv!(
        session.create_object(&without(ec_private_template("ec"), AttributeType::EcParams)),
        RvError::TemplateIncomplete
    );
    assert_rv!(
        session.create_object(&without(ec_private_template("ec"), AttributeType::Value)),
        RvError::TemplateIncomplete
    );
}

#[test]
fn data_objects_are_created() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let object = session
        .create_object(&data_template("data", b"payload", true))
        .unwrap();
    assert_value(
        &session,
        object,
        AttributeType::Application,
        b"kmshsm tests",
    );
    assert_value(&session, object, AttributeType::Value, b"payload");
    assert_value(
        &session,
        object,
        AttributeType::Class,
        &CKO_DATA.to_ne_bytes(),
    );
    // A data object needs nothing but its class.
    let bare = session
        .create_object(&[Attribute::Class(ObjectClass::DATA)])
        .unwrap();
    assert!(!attribute_bool(&session, bare, AttributeType::Token));
}

#[test]
fn certificates_are_created() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let cert = session
        .create_object(&certificate_template("cert"))
        .unwrap();
    assert_value(&session, cert, AttributeType::Value, &hex(CERT_DER));
    assert_value(
        &session,
        cert,
        AttributeType::Subject,
        &hex(CERT_SUBJECT_DER),
    );
    assert_value(
        &session,
        cert,
        AttributeType::CertificateType,
        &CKC_X_509.to_ne_bytes(),
    );
}

#[test]
fn certificates_without_type_or_subject_are_incomplete() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    assert_rv!(
        session.create_object(&without(
            certificate_template("c"),
            AttributeType::CertificateType
        )),
        RvError::TemplateIncomplete
    );
    assert_rv!(
        session.create_object(&without(certificate_template("c"), AttributeType::Subject)),
        RvError::TemplateIncomplete
    );
}

#[test]
fn secret_key_without_key_type_is_incomplete() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    assert_rv!(
        session.create_object(&without(
            aes_template("k", &[1; 16], false),
            AttributeType::KeyType
        )),
        RvError::TemplateIncomplete
    );
    assert_rv!(
        session.create_object(&without(
            aes_template("k", &[1; 16], false),
            AttributeType::Value
        )),
        RvError::TemplateIncomplete
    );
}

#[test]
fn template_without_class_is_incomplete() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    assert_rv!(
        session.create_object(&without(
            aes_template("k", &[1; 16], false),
            AttributeType::Class
        )),
        RvError::TemplateIncomplete
    );
    assert_rv!(
        session.create_object(&[Attribute::Label(b"nothing else".to_vec())]),
        RvError::TemplateIncomplete
    );
}

#[test]
fn class_given_twice_with_different_values_is_inconsistent() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let mut template = data_template("twice", b"x", false);
    template.push(Attribute::Class(ObjectClass::CERTIFICATE));
    assert_rv!(
        session.create_object(&template),
        RvError::TemplateInconsistent
    );
}

#[test]
fn aes_value_len_not_matching_the_value_is_inconsistent() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let mut template = aes_template("k", &[1; 16], false);
    template.push(Attribute::ValueLen(32.into()));
    assert_rv!(
        session.create_object(&template),
        RvError::TemplateInconsistent
    );
}

#[test]
fn key_type_not_matching_the_class_is_inconsistent() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    // A certificate does not take a key type...
    let mut template = certificate_template("c");
    template.push(Attribute::KeyType(KeyType::AES));
    let got = rv(session.create_object(&template));
    assert!(
        matches!(
            got,
            RvError::TemplateInconsistent | RvError::AttributeTypeInvalid
        ),
        "certificate with CKA_KEY_TYPE: {got:?}"
    );
    // ...and a secret key is not RSA.
    let mut template = without(aes_template("k", &[1; 16], false), AttributeType::KeyType);
    template.push(Attribute::KeyType(KeyType::RSA));
    let got = rv(session.create_object(&template));
    assert!(
        matches!(
            got,
            RvError::TemplateInconsistent | RvError::AttributeValueInvalid
        ),
        "secret key of type RSA: {got:?}"
    );
}

#[test]
fn boolean_of_the_wrong_length_is_an_invalid_value() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let raw = Raw::load();
    for bad in [vec![], vec![1u8, 0], vec![1u8, 0, 0, 0, 0, 0, 0, 0]] {
        let result = raw.create_object(
            session.handle(),
            &[
                RawAttr::ulong(CKA_CLASS, CKO_DATA),
                RawAttr::new(CKA_TOKEN, &bad),
                RawAttr::new(CKA_LABEL, b"bad bool"),
            ],
        );
        assert_eq!(
            result,
            Err(RvError::AttributeValueInvalid),
            "CKA_TOKEN of {} bytes",
            bad.len()
        );
    }
    let result = raw.create_object(
        session.handle(),
        &[
            RawAttr::new(CKA_CLASS, &[0u8; 3]),
            RawAttr::new(CKA_LABEL, b"bad class"),
        ],
    );
    assert_eq!(
        result,
        Err(RvError::AttributeValueInvalid),
        "CKA_CLASS of 3 bytes"
    );
}

#[test]
fn undefined_attribute_type_is_refused() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let raw = Raw::load();
    let result = raw.create_object(
        session.handle(),
        &[
            RawAttr::ulong(CKA_CLASS, CKO_DATA),
            RawAttr::new(UNDEFINED_ATTRIBUTE, b"?"),
        ],
    );
    assert_eq!(result, Err(RvError::AttributeTypeInvalid));
}

#[test]
fn token_only_attributes_in_a_create_template_are_read_only() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let attempts = [
        Attribute::Local(true),
        Attribute::AlwaysSensitive(true),
        Attribute::NeverExtractable(true),
        Attribute::UniqueId(b"chosen-by-caller".to_vec()),
    ];
    for extra in attempts {
        let mut template = aes_template("k", &[1; 16], false);
        let ty = extra.attribute_type();
        template.push(extra);
        assert_rv!(
            session.create_object(&template),
            RvError::AttributeReadOnly,
            "{ty:?} in a create template"
        );
    }
}

#[test]
fn defaults_follow_the_contract() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let minimal_secret = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Value(vec![3; 16]),
        ])
        .unwrap();
    assert!(
        !attribute_bool(&session, minimal_secret, AttributeType::Token),
        "CKA_TOKEN default"
    );
    assert!(
        attribute_bool(&session, minimal_secret, AttributeType::Private),
        "secret key CKA_PRIVATE"
    );
    assert!(
        !attribute_bool(&session, minimal_secret, AttributeType::Sensitive),
        "CKA_SENSITIVE"
    );
    // SoftHSMv2's default, which the contract follows: not extractable.
    assert!(
        !attribute_bool(&session, minimal_secret, AttributeType::Extractable),
        "CKA_EXTRACTABLE"
    );
    assert!(
        attribute_bool(&session, minimal_secret, AttributeType::Modifiable),
        "CKA_MODIFIABLE"
    );
    assert!(
        attribute_bool(&session, minimal_secret, AttributeType::Copyable),
        "CKA_COPYABLE"
    );
    assert!(
        attribute_bool(&session, minimal_secret, AttributeType::Destroyable),
        "CKA_DESTROYABLE"
    );
    assert!(
        !attribute_bool(&session, minimal_secret, AttributeType::Local),
        "CKA_LOCAL"
    );
    assert!(!attribute_bool(
        &session,
        minimal_secret,
        AttributeType::AlwaysSensitive
    ));
    assert!(!attribute_bool(
        &session,
        minimal_secret,
        AttributeType::NeverExtractable
    ));

    let private = session
        .create_object(&without(
            without(rsa_private_template("rsa"), AttributeType::Token),
            AttributeType::Extractable,
        ))
        .unwrap();
    assert!(
        attribute_bool(&session, private, AttributeType::Private),
        "private key CKA_PRIVATE"
    );
    assert!(
        !attribute_bool(&session, private, AttributeType::Sensitive),
        "private key CKA_SENSITIVE"
    );
    assert!(
        !attribute_bool(&session, private, AttributeType::Extractable),
        "private key CKA_EXTRACTABLE"
    );
    let public = session.create_object(&rsa_public_template("rsa")).unwrap();
    assert!(
        !attribute_bool(&session, public, AttributeType::Private),
        "public key CKA_PRIVATE"
    );
    let data = session
        .create_object(&[Attribute::Class(ObjectClass::DATA)])
        .unwrap();
    assert!(
        !attribute_bool(&session, data, AttributeType::Private),
        "data CKA_PRIVATE"
    );
    let cert = session.create_object(&certificate_template("c")).unwrap();
    assert!(
        !attribute_bool(&session, cert, AttributeType::Private),
        "certificate CKA_PRIVATE"
    );
}

#[test]
fn private_objects_cannot_be_created_without_login() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = ctx.open_rw_session(slot).unwrap();
    let mut private_data = data_template("private", b"x", false);
    private_data.push(Attribute::Private(true));
    private_data.retain(|a| *a != Attribute::Private(false));
    assert_rv!(
        session.create_object(&private_data),
        RvError::UserNotLoggedIn
    );
    // Secret keys are private by default.
    assert_rv!(
        session.create_object(&aes_template("k", &[1; 16], false)),
        RvError::UserNotLoggedIn
    );
    assert_rv!(
        session.create_object(&rsa_private_template("rsa")),
        RvError::UserNotLoggedIn
    );
    // Public objects are fine.
    session
        .create_object(&data_template("public", b"x", true))
        .unwrap();
    session.create_object(&rsa_public_template("rsa")).unwrap();
    session.create_object(&certificate_template("c")).unwrap();
}

#[test]
fn token_objects_carrying_a_secret_need_login_even_when_public() {
    // The contract: secret attributes of token objects are sealed under the master key, which
    // exists only while logged in. SoftHSMv2 stores such a key unencrypted instead.
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = ctx.open_rw_session(slot).unwrap();
    let mut public_secret = aes_template("public-secret", &[5; 32], true);
    public_secret.push(Attribute::Private(false));
    assert_rv!(
        session.create_object(&public_secret),
        RvError::UserNotLoggedIn
    );
}

#[test]
fn copy_object_duplicates_with_changes() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let original = session
        .create_object(&aes_template("original", &[9; 32], false))
        .unwrap();
    let copy = session
        .copy_object(
            original,
            &[Attribute::Label(b"copy".to_vec()), Attribute::Token(true)],
        )
        .unwrap();
    assert_ne!(copy, original);
    assert_value(&session, copy, AttributeType::Value, &[9; 32]);
    assert_value(&session, copy, AttributeType::Label, b"copy");
    assert!(attribute_bool(&session, copy, AttributeType::Token));
    assert_value(&session, original, AttributeType::Label, b"original");
    assert_ne!(
        attribute_bytes(&session, copy, AttributeType::UniqueId),
        attribute_bytes(&session, original, AttributeType::UniqueId),
        "a copy gets its own CKA_UNIQUE_ID"
    );
    // Sensitivity may only increase while copying.
    let sensitive = session
        .copy_object(original, &[Attribute::Sensitive(true)])
        .unwrap();
    assert!(attribute_bool(
        &session,
        sensitive,
        AttributeType::Sensitive
    ));
    assert_rv!(
        session.copy_object(sensitive, &[Attribute::Sensitive(false)]),
        RvError::AttributeReadOnly
    );
}

#[test]
fn copy_object_refuses_what_cannot_change() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let original = session
        .create_object(&data_template("d", b"x", false))
        .unwrap();
    assert_rv!(
        session.copy_object(original, &[Attribute::Class(ObjectClass::CERTIFICATE)]),
        RvError::AttributeReadOnly
    );
    let mut uncopyable = data_template("uncopyable", b"x", false);
    uncopyable.push(Attribute::Copyable(false));
    let uncopyable = session.create_object(&uncopyable).unwrap();
    assert_rv!(
        session.copy_object(uncopyable, &[]),
        RvError::ActionProhibited
    );
    let raw = Raw::load();
    assert_eq!(
        raw.object_size(session.handle(), 0x7777_0001),
        Err(RvError::ObjectHandleInvalid)
    );
    // SAFETY: (test) a handle number that names no object, which is the point.
    let bogus = unsafe { ObjectHandle::new_from_raw(0x7777_0001) };
    assert_rv!(
        session.copy_object(bogus, &[]),
        RvError::ObjectHandleInvalid
    );
}

#[test]
fn destroyed_objects_are_gone() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let token = session
        .create_object(&aes_template("t", &[1; 16], true))
        .unwrap();
    let ephemeral = session
        .create_object(&data_template("s", b"x", false))
        .unwrap();
    for object in [token, ephemeral] {
        session.destroy_object(object).unwrap();
        assert_rv!(
            session.get_attributes(object, &[AttributeType::Label]),
            RvError::ObjectHandleInvalid
        );
        assert_rv!(session.destroy_object(object), RvError::ObjectHandleInvalid);
    }
    assert!(find_by_label(&session, "t").is_empty());
    assert!(find_by_label(&session, "s").is_empty());
}

#[test]
fn undestroyable_objects_stay() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let mut template = data_template("keep me", b"x", true);
    template.push(Attribute::Destroyable(false));
    let object = session.create_object(&template).unwrap();
    assert_rv!(session.destroy_object(object), RvError::ActionProhibited);
    assert_eq!(find_by_label(&session, "keep me"), vec![object]);
}

#[test]
fn object_size_answers() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let raw = Raw::load();
    let object = session
        .create_object(&data_template("sized", &[0u8; 1000], true))
        .unwrap();
    let size = raw
        .object_size(session.handle(), object.handle())
        .expect("C_GetObjectSize");
    assert!(
        size == CK_UNAVAILABLE_INFORMATION || size >= 1000,
        "object with a 1000-byte value reports size {size}"
    );
}

#[test]
fn every_object_has_a_unique_read_only_unique_id() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let objects = [
        session
            .create_object(&aes_template("a", &[1; 16], true))
            .unwrap(),
        session
            .create_object(&aes_template("b", &[1; 16], false))
            .unwrap(),
        session
            .create_object(&data_template("c", b"x", true))
            .unwrap(),
        session.create_object(&rsa_public_template("d")).unwrap(),
        session.create_object(&ec_private_template("e")).unwrap(),
        session.create_object(&certificate_template("f")).unwrap(),
    ];
    let mut ids: Vec<Vec<u8>> = objects
        .iter()
        .map(|o| attribute_bytes(&session, *o, AttributeType::UniqueId))
        .collect();
    assert!(ids.iter().all(|id| !id.is_empty()), "empty CKA_UNIQUE_ID");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), objects.len(), "CKA_UNIQUE_ID values repeat");
    assert_rv!(
        session.update_attributes(objects[0], &[Attribute::UniqueId(b"new".to_vec())]),
        RvError::AttributeReadOnly
    );
    let info = session
        .get_attribute_info(objects[2], &[AttributeType::UniqueId])
        .unwrap();
    assert!(matches!(info[0], AttributeInfo::Available(n) if n > 0));
}
