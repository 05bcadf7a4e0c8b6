//! The miscellaneous simple derivations through the C ABI (PKCS#11 3.0 §2.43):
//! `CKM_CONCATENATE_BASE_AND_KEY`, `CKM_CONCATENATE_BASE_AND_DATA`,
//! `CKM_CONCATENATE_DATA_AND_BASE`, `CKM_XOR_BASE_AND_DATA`, `CKM_EXTRACT_KEY_FROM_KEY`.
//! Known answers are §2.43's own examples. Attacks: a base or second key without
//! `CKA_DERIVE`, a second key the session may not use, a sensitive base into an
//! extractable key (the spec makes the result sensitive; extraction refuses), and
//! parameters of the wrong size or with NULL data.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::*;
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::misc::{ExtractParams, KeyDerivationStringData};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{
    Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::Session;
use cryptoki_sys::*;

/// A session generic secret with `value`, `CKA_DERIVE` as given, readable.
fn base(session: &Session, value: &[u8], derive: bool) -> ObjectHandle {
    session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Private(false),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
            Attribute::Derive(derive),
            Attribute::Value(value.to_vec()),
        ])
        .expect("C_CreateObject(generic secret)")
}

/// The derived-key template the cryptoki crate's tests use: no key type, no length.
fn readable() -> Vec<Attribute> {
    vec![
        Attribute::Token(false),
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ]
}

fn value(session: &Session, key: ObjectHandle) -> Vec<u8> {
    attribute_bytes(session, key, AttributeType::Value)
}

#[test]
fn the_specifications_examples_through_the_module() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let k = base(&session, &hex("01234567"), true);
    let other = base(&session, &hex("89ABCDEF"), true);
    let data = hex("89ABCDEF");
    let data = KeyDerivationStringData::new(&data);
    let cases = [
        (Mechanism::ConcatenateBaseAndKey(other), "0123456789ABCDEF"),
        (Mechanism::ConcatenateBaseAndData(data), "0123456789ABCDEF"),
        (Mechanism::ConcatenateDataAndBase(data), "89ABCDEF01234567"),
        (Mechanism::XorBaseAndData(data), "88888888"),
    ];
    for (mech, expected) in cases {
        let derived = session
            .derive_key(&mech, k, &readable())
            .unwrap_or_else(|e| panic!("{mech:?}: {e}"));
        assert_eq!(value(&session, derived), hex(expected), "{mech:?}");
        // No key type in the template: a generic secret, not local, of the whole length.
        let attrs = session
            .get_attributes(
                derived,
                &[
                    AttributeType::KeyType,
                    AttributeType::ValueLen,
                    AttributeType::Local,
                ],
            )
            .unwrap();
        assert_eq!(attrs[0], Attribute::KeyType(KeyType::GENERIC_SECRET));
        assert_eq!(
            attrs[1],
            Attribute::ValueLen(((expected.len() / 2) as u64).into())
        );
        assert_eq!(attrs[2], Attribute::Local(false));
    }
    // §2.43.7: 0x329F84A9 from bit 21, two bytes, is 0x9526.
    let k = base(&session, &hex("329F84A9"), true);
    let mut template = readable();
    template.push(Attribute::ValueLen(2.into()));
    let derived = session
        .derive_key(
            &Mechanism::ExtractKeyFromKey(ExtractParams::new(21)),
            k,
            &template,
        )
        .unwrap();
    assert_eq!(value(&session, derived), hex("9526"));
    // A length in the template truncates; more than there is fails.
    let mut template = readable();
    template.push(Attribute::ValueLen(3.into()));
    let derived = session
        .derive_key(&Mechanism::ConcatenateBaseAndData(data), k, &template)
        .unwrap();
    assert_eq!(value(&session, derived), hex("329F84"));
    let mut template = readable();
    template.push(Attribute::ValueLen(9.into()));
    assert_rv!(
        session.derive_key(&Mechanism::ConcatenateBaseAndData(data), k, &template),
        RvError::TemplateInconsistent
    );
    // Extraction needs a length.
    assert_rv!(
        session.derive_key(
            &Mechanism::ExtractKeyFromKey(ExtractParams::new(0)),
            k,
            &readable()
        ),
        RvError::TemplateIncomplete
    );
    // An AES key type of a length AES allows.
    let sixteen = base(&session, &[7u8; 8], true);
    let mut template = readable();
    template.push(Attribute::KeyType(KeyType::AES));
    let aes = session
        .derive_key(
            &Mechanism::ConcatenateBaseAndKey(sixteen),
            sixteen,
            &template,
        )
        .unwrap();
    assert_eq!(value(&session, aes), [7u8; 16]);
}

#[test]
fn sensitive_or_unextractable_sources_make_the_derived_key_so() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    // Generated sensitive and unextractable: always sensitive, never extractable.
    let secret = session
        .generate_key(
            &Mechanism::GenericSecretKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(16.into()),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Derive(true),
            ],
        )
        .unwrap();
    let data = [0x5Au8; 4];
    let data = KeyDerivationStringData::new(&data);
    // The template asks for an extractable, readable key; §2.43 makes it sensitive and
    // unextractable, always sensitive and never extractable as its base.
    let derived = session
        .derive_key(
            &Mechanism::ConcatenateBaseAndData(data),
            secret,
            &readable(),
        )
        .unwrap();
    for (ty, want) in [
        (AttributeType::Sensitive, true),
        (AttributeType::Extractable, false),
        (AttributeType::AlwaysSensitive, true),
        (AttributeType::NeverExtractable, true),
    ] {
        assert_eq!(attribute_bool(&session, derived, ty), want, "{ty:?}");
    }
    let info = session
        .get_attribute_info(derived, &[AttributeType::Value])
        .unwrap();
    assert!(matches!(info[..], [AttributeInfo::Sensitive]), "{info:?}");
    // A readable base with a sensitive second key: the derived key follows the latter.
    let plain = base(&session, &[1, 2, 3, 4], true);
    let both = session
        .derive_key(
            &Mechanism::ConcatenateBaseAndKey(secret),
            plain,
            &readable(),
        )
        .unwrap();
    assert!(attribute_bool(&session, both, AttributeType::Sensitive));
    assert!(!attribute_bool(&session, both, AttributeType::Extractable));
    // Only if both sources were always sensitive: the created one was not.
    assert!(!attribute_bool(
        &session,
        both,
        AttributeType::AlwaysSensitive
    ));
    assert!(!attribute_bool(
        &session,
        both,
        AttributeType::NeverExtractable
    ));
    // Extraction from a sensitive key into a key that asks to be readable fails (§2.43.7).
    let mut template = readable();
    template.push(Attribute::ValueLen(2.into()));
    assert_rv!(
        session.derive_key(
            &Mechanism::ExtractKeyFromKey(ExtractParams::new(3)),
            secret,
            &template
        ),
        RvError::TemplateInconsistent
    );
}

#[test]
fn every_key_read_must_allow_derivation_by_this_session() {
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    let data = [1u8; 4];
    let data = KeyDerivationStringData::new(&data);
    let usable = base(&session, &[9u8; 8], true);
    let no_derive = base(&session, &[9u8; 8], false);
    assert_rv!(
        session.derive_key(&Mechanism::XorBaseAndData(data), no_derive, &readable()),
        RvError::KeyFunctionNotPermitted
    );
    // The second key of BASE_AND_KEY is judged as the base key is.
    assert_rv!(
        session.derive_key(
            &Mechanism::ConcatenateBaseAndKey(no_derive),
            usable,
            &readable()
        ),
        RvError::KeyFunctionNotPermitted
    );
    assert_rv!(
        session.derive_key(
            &Mechanism::ConcatenateBaseAndKey(handle(0x7fff_fff0)),
            usable,
            &readable()
        ),
        RvError::KeyHandleInvalid
    );
    // CKA_ALLOWED_MECHANISMS of the base key.
    let only_xor = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Derive(true),
            // Readable: data shorter than a guarded key would cut it (docs/security.md).
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
            Attribute::Value(vec![3; 8]),
            Attribute::AllowedMechanisms(vec![MechanismType::XOR_BASE_AND_DATA]),
        ])
        .unwrap();
    session
        .derive_key(&Mechanism::XorBaseAndData(data), only_xor, &readable())
        .unwrap();
    assert_rv!(
        session.derive_key(
            &Mechanism::ConcatenateBaseAndData(data),
            only_xor,
            &readable()
        ),
        RvError::MechanismInvalid
    );
    // A private second key, once the user has logged out: this session may not use it.
    let private = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Derive(true),
            Attribute::Value(vec![4; 8]),
        ])
        .unwrap();
    let public = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Derive(true),
            Attribute::Value(vec![5; 8]),
        ])
        .unwrap();
    session.logout().unwrap();
    let got = rv(session.derive_key(
        &Mechanism::ConcatenateBaseAndKey(private),
        public,
        &readable(),
    ));
    assert!(
        matches!(got, RvError::UserNotLoggedIn | RvError::KeyHandleInvalid),
        "a private second key without login: {got:?}"
    );
    drop((ctx, slot));
}

#[test]
fn parameters_of_the_wrong_size_or_with_null_data_are_refused() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let k = base(&session, &[1u8; 8], true);
    let s = session.handle();
    let template = raw_secret_template(CKK_GENERIC_SECRET, 4);
    let data = vec![7u8; 4];
    let good = CK_KEY_DERIVATION_STRING_DATA {
        pData: data.as_ptr() as *mut u8,
        ulLen: 4,
    };
    let size = std::mem::size_of::<CK_KEY_DERIVATION_STRING_DATA>() as CK_ULONG;
    let derive = |m: &RawMech| ck.derive(s, m, k.handle(), &template);
    for ty in [
        CKM_CONCATENATE_BASE_AND_DATA,
        CKM_CONCATENATE_DATA_AND_BASE,
        CKM_XOR_BASE_AND_DATA,
    ] {
        let m = RawMech::structure(ty, &good, vec![data.clone()]);
        derive(&m).unwrap_or_else(|e| panic!("{ty:#x}: {e:?}"));
        for len in [size - 1, size + 1, 0] {
            let m = RawMech::structure(ty, &good, vec![data.clone()]).with_len(len);
            assert_eq!(
                derive(&m),
                Err(RvError::MechanismParamInvalid),
                "{ty:#x} len {len}"
            );
        }
        assert_eq!(
            derive(&RawMech::null_param(ty, size)),
            Err(RvError::MechanismParamInvalid)
        );
        let null_data = CK_KEY_DERIVATION_STRING_DATA {
            pData: std::ptr::null_mut(),
            ulLen: 4,
        };
        let m = RawMech::structure(ty, &null_data, Vec::new());
        assert_eq!(
            derive(&m),
            Err(RvError::MechanismParamInvalid),
            "{ty:#x} NULL data"
        );
    }
    let other: CK_OBJECT_HANDLE = k.handle();
    let m = RawMech::structure(CKM_CONCATENATE_BASE_AND_KEY, &other, Vec::new());
    derive(&m).unwrap();
    let m = m.with_len(4);
    assert_eq!(derive(&m), Err(RvError::MechanismParamInvalid));
    assert_eq!(
        derive(&RawMech::none(CKM_EXTRACT_KEY_FROM_KEY)),
        Err(RvError::MechanismParamInvalid)
    );
    let start: CK_ULONG = 5;
    let m = RawMech::structure(CKM_EXTRACT_KEY_FROM_KEY, &start, Vec::new()).with_len(3);
    assert_eq!(derive(&m), Err(RvError::MechanismParamInvalid));
}
