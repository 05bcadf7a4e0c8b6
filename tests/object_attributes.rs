//! C_GetAttributeValue and C_SetAttributeValue (PKCS#11 3.1 §5.7): per-attribute
//! unavailable information, sensitive and non-extractable values, attributes an object does
//! not have, short buffers, length queries; read-only, modifiable and one-way attributes.
//! Run with `cargo nextest run`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::raw::Raw;
use common::*;
use cryptoki::error::RvError;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass};
use cryptoki_sys::*;

const UNDEFINED_ATTRIBUTE: CK_ATTRIBUTE_TYPE = 0x0000_7A7A;

fn aes_with(
    session: &cryptoki::session::Session,
    extra: &[Attribute],
) -> cryptoki::object::ObjectHandle {
    // Conflicting duplicates are CKR_TEMPLATE_INCONSISTENT (§4.1), so `extra` replaces.
    let mut template: Vec<Attribute> = aes_template("key", &[0x11; 32], false)
        .into_iter()
        .filter(|a| {
            !extra
                .iter()
                .any(|e| e.attribute_type() == a.attribute_type())
        })
        .collect();
    template.extend_from_slice(extra);
    session.create_object(&template).unwrap()
}

#[test]
fn value_of_a_sensitive_key_is_not_revealed() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = aes_with(&session, &[Attribute::Sensitive(true)]);
    let info = session
        .get_attribute_info(key, &[AttributeType::Value, AttributeType::Label])
        .unwrap();
    assert!(matches!(info[0], AttributeInfo::Sensitive), "{:?}", info[0]);
    assert!(
        matches!(info[1], AttributeInfo::Available(3)),
        "{:?}",
        info[1]
    );
    // The whole template: CKR_ATTRIBUTE_SENSITIVE, the value's length unavailable, others filled.
    let raw = Raw::load();
    let (result, values) = raw.get_attributes(
        session.handle(),
        key.handle(),
        &[CKA_LABEL, CKA_VALUE, CKA_CLASS],
        64,
    );
    assert_eq!(result, Err(RvError::AttributeSensitive));
    assert_eq!(values[0], (3, b"key".to_vec()));
    assert_eq!(values[1].0, CK_UNAVAILABLE_INFORMATION);
    assert_eq!(values[2], (8, CKO_SECRET_KEY.to_ne_bytes().to_vec()));
    // Its length is still public.
    assert_eq!(
        attribute_bytes(&session, key, AttributeType::ValueLen),
        (32 as CK_ULONG).to_ne_bytes()
    );
}

#[test]
fn value_of_a_non_extractable_key_is_not_revealed() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = aes_with(&session, &[Attribute::Extractable(false)]);
    let info = session
        .get_attribute_info(key, &[AttributeType::Value])
        .unwrap();
    assert!(matches!(info[0], AttributeInfo::Sensitive), "{:?}", info[0]);
}

#[test]
fn private_key_components_of_a_sensitive_key_are_not_revealed() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = session
        .create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::Sensitive(true),
            Attribute::EcParams(hex(common::material::EC_PARAMS_P256)),
            Attribute::Value(hex(common::material::EC_PRIVATE_VALUE)),
        ])
        .unwrap();
    let info = session
        .get_attribute_info(key, &[AttributeType::Value, AttributeType::EcParams])
        .unwrap();
    assert!(matches!(info[0], AttributeInfo::Sensitive), "{:?}", info[0]);
    assert!(matches!(info[1], AttributeInfo::Available(10)));
}

#[test]
fn attributes_an_object_lacks_are_type_invalid_and_the_others_are_filled() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let data = session
        .create_object(&data_template("data", b"payload", false))
        .unwrap();
    let info = session
        .get_attribute_info(
            data,
            &[
                AttributeType::Modulus,
                AttributeType::KeyType,
                AttributeType::Value,
            ],
        )
        .unwrap();
    assert!(
        matches!(info[0], AttributeInfo::TypeInvalid),
        "{:?}",
        info[0]
    );
    assert!(
        matches!(info[1], AttributeInfo::TypeInvalid),
        "{:?}",
        info[1]
    );
    assert!(
        matches!(info[2], AttributeInfo::Available(7)),
        "{:?}",
        info[2]
    );
    let raw = Raw::load();
    let (result, values) = raw.get_attributes(
        session.handle(),
        data.handle(),
        &[CKA_LABEL, CKA_MODULUS, CKA_VALUE, UNDEFINED_ATTRIBUTE],
        64,
    );
    assert_eq!(result, Err(RvError::AttributeTypeInvalid));
    assert_eq!(values[0], (4, b"data".to_vec()));
    assert_eq!(values[1].0, CK_UNAVAILABLE_INFORMATION);
    assert_eq!(values[2], (7, b"payload".to_vec()));
    assert_eq!(values[3].0, CK_UNAVAILABLE_INFORMATION);
    // cryptoki's get_attributes surfaces only the available ones.
    let got = session
        .get_attributes(data, &[AttributeType::Label, AttributeType::Modulus])
        .unwrap();
    assert_eq!(got, vec![Attribute::Label(b"data".to_vec())]);
}

#[test]
fn length_queries_and_short_buffers_follow_the_specification() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let data = session
        .create_object(&data_template("a longer label", b"0123456789", false))
        .unwrap();
    let raw = Raw::load();
    // pValue NULL: lengths only.
    let (result, values) =
        raw.get_attributes(session.handle(), data.handle(), &[CKA_LABEL, CKA_VALUE], 0);
    assert_eq!(result, Ok(()));
    assert_eq!(values[0].0, 14);
    assert_eq!(values[1].0, 10);
    // A 4-byte buffer: too small for both; each length becomes unavailable.
    let (result, values) = raw.get_attributes(
        session.handle(),
        data.handle(),
        &[CKA_LABEL, CKA_VALUE, CKA_TOKEN],
        4,
    );
    assert_eq!(result, Err(RvError::BufferTooSmall));
    assert_eq!(values[0].0, CK_UNAVAILABLE_INFORMATION);
    assert_eq!(values[1].0, CK_UNAVAILABLE_INFORMATION);
    assert_eq!(values[2], (1, vec![0]));
}

#[test]
fn label_is_modifiable() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    for token in [false, true] {
        let object = session
            .create_object(&data_template("before", b"x", token))
            .unwrap();
        session
            .update_attributes(object, &[Attribute::Label(b"after".to_vec())])
            .unwrap();
        assert_eq!(
            attribute_bytes(&session, object, AttributeType::Label),
            b"after"
        );
        session.destroy_object(object).unwrap();
    }
    let key = aes_with(&session, &[Attribute::Token(true)]);
    session
        .update_attributes(
            key,
            &[
                Attribute::Label(b"renamed".to_vec()),
                Attribute::Id(b"k1".to_vec()),
            ],
        )
        .unwrap();
    assert_eq!(
        attribute_bytes(&session, key, AttributeType::Label),
        b"renamed"
    );
    assert_eq!(attribute_bytes(&session, key, AttributeType::Id), b"k1");
    assert_eq!(
        attribute_bytes(&session, key, AttributeType::Value),
        vec![0x11; 32],
        "value intact"
    );
}

#[test]
fn read_only_attributes_cannot_be_set() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = aes_with(&session, &[]);
    let attempts = [
        Attribute::Class(ObjectClass::DATA),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Value(vec![0x22; 32]),
        Attribute::Local(true),
        Attribute::AlwaysSensitive(true),
        Attribute::NeverExtractable(true),
    ];
    for attempt in attempts {
        let ty = attempt.attribute_type();
        assert_rv!(
            session.update_attributes(key, &[attempt]),
            RvError::AttributeReadOnly,
            "setting {ty:?}"
        );
    }
    assert_eq!(
        attribute_bytes(&session, key, AttributeType::Value),
        vec![0x11; 32]
    );
    let data = session
        .create_object(&data_template("d", b"x", false))
        .unwrap();
    assert_rv!(
        session.update_attributes(data, &[Attribute::Class(ObjectClass::SECRET_KEY)]),
        RvError::AttributeReadOnly
    );
}

#[test]
fn undefined_attribute_cannot_be_set() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let data = session
        .create_object(&data_template("d", b"x", false))
        .unwrap();
    let undefined = AttributeType::VendorDefined(UNDEFINED_ATTRIBUTE);
    assert_rv!(
        session.update_attributes(data, &[Attribute::VendorDefined((undefined, vec![1]))]),
        RvError::AttributeTypeInvalid
    );
}

#[test]
fn sensitive_goes_from_false_to_true_only() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = aes_with(&session, &[Attribute::Sensitive(false)]);
    session
        .update_attributes(key, &[Attribute::Sensitive(true)])
        .unwrap();
    assert!(attribute_bool(&session, key, AttributeType::Sensitive));
    assert!(
        matches!(
            session
                .get_attribute_info(key, &[AttributeType::Value])
                .unwrap()[0],
            AttributeInfo::Sensitive
        ),
        "{:?}",
        session
            .get_attribute_info(key, &[AttributeType::Value])
            .unwrap()[0]
    );
    assert!(
        !attribute_bool(&session, key, AttributeType::AlwaysSensitive),
        "a key that was once readable is not ALWAYS_SENSITIVE"
    );
    assert_rv!(
        session.update_attributes(key, &[Attribute::Sensitive(false)]),
        RvError::AttributeReadOnly
    );
    assert!(attribute_bool(&session, key, AttributeType::Sensitive));
}

#[test]
fn extractable_goes_from_true_to_false_only() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = aes_with(&session, &[Attribute::Extractable(true)]);
    session
        .update_attributes(key, &[Attribute::Extractable(false)])
        .unwrap();
    assert!(!attribute_bool(&session, key, AttributeType::Extractable));
    assert!(!attribute_bool(
        &session,
        key,
        AttributeType::NeverExtractable
    ));
    assert_rv!(
        session.update_attributes(key, &[Attribute::Extractable(true)]),
        RvError::AttributeReadOnly
    );
    assert!(!attribute_bool(&session, key, AttributeType::Extractable));
}

#[test]
fn a_failed_update_changes_nothing() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = aes_with(&session, &[Attribute::Token(true)]);
    assert_rv!(
        session.update_attributes(
            key,
            &[
                Attribute::Label(b"new".to_vec()),
                Attribute::Class(ObjectClass::DATA)
            ]
        ),
        RvError::AttributeReadOnly
    );
    assert_eq!(attribute_bytes(&session, key, AttributeType::Label), b"key");
}

#[test]
fn unmodifiable_objects_refuse_updates() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let mut template = data_template("frozen", b"x", true);
    template.push(Attribute::Modifiable(false));
    let object = session.create_object(&template).unwrap();
    assert_rv!(
        session.update_attributes(object, &[Attribute::Label(b"thawed".to_vec())]),
        RvError::ActionProhibited
    );
    assert_eq!(
        attribute_bytes(&session, object, AttributeType::Label),
        b"frozen"
    );
}

#[test]
fn boolean_of_the_wrong_length_cannot_be_set() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = aes_with(&session, &[]);
    let raw_value =
        Attribute::VendorDefined((AttributeType::VendorDefined(CKA_SENSITIVE), vec![1, 0]));
    assert_rv!(
        session.update_attributes(key, &[raw_value]),
        RvError::AttributeValueInvalid
    );
}

/// A key made without `CKA_ALLOWED_MECHANISMS` reads it as an empty list (no restriction),
/// never `CKR_ATTRIBUTE_TYPE_INVALID`: pkcs11-provider takes one such answer on any key as
/// "this token has no allowed-mechanisms attribute" for the rest of the process, and then
/// classifies an RSA-PSS-only key as plain RSA in one process and as RSA-PSS in another
/// (its TLS test's certificate and key stop matching). A key made with it reads it back.
#[test]
fn allowed_mechanisms_reads_as_an_empty_list_unless_given() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let plain = aes_with(&session, &[]);
    let got = session
        .get_attributes(plain, &[AttributeType::AllowedMechanisms])
        .unwrap();
    assert_eq!(got, [Attribute::AllowedMechanisms(Vec::new())]);
    let raw = Raw::load();
    let (rv, out) = raw.get_attributes(
        session.handle(),
        plain.handle(),
        &[CKA_ALLOWED_MECHANISMS],
        64,
    );
    assert_eq!(rv, Ok(()));
    assert_eq!(out[0].0, 0);
    let limited = aes_with(
        &session,
        &[Attribute::AllowedMechanisms(vec![
            cryptoki::mechanism::MechanismType::AES_CBC,
        ])],
    );
    let got = session
        .get_attributes(limited, &[AttributeType::AllowedMechanisms])
        .unwrap();
    assert_eq!(
        got,
        [Attribute::AllowedMechanisms(vec![
            cryptoki::mechanism::MechanismType::AES_CBC
        ])]
    );
}
