//! What a source key's guarding `CKA_DERIVE_TEMPLATE` (one that makes every derived key
//! sensitive or unextractable) demands of the keys derived under it (docs/security.md,
//! "What `CKA_DERIVE` gives away"; review 15a): at least 16 bytes, since a shorter key
//! is found by trying it and, one byte longer at a time, so is every key of the same
//! derivation (a short ECDH, HKDF or hash-KDF output is the prefix of a long one); no
//! exposing derivation (concatenation, XOR, extraction), since a key extended by a
//! guessed byte is compared with a longer one; and the bound goes on to every derived
//! key as its own derive template, so neither holds only one step away. Without such a
//! template a caller may derive a readable key anyway, and every length stays open.
//! Run with `cargo nextest run --test derive_template_bound` (after `cargo build --lib`).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::*;
use common::raw::{Raw, RawAttr};
use common::*;
use cryptoki::error::RvError;
use cryptoki::object::{AttributeType, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;

const BLOCK: [u8; 16] = [0x33; 16];

/// An AES key that may derive, with `forced` as its `CKA_DERIVE_TEMPLATE` (none when
/// empty).
fn base(session: &Session, forced: &[RawAttr]) -> ObjectHandle {
    let plain = [
        RawAttr::ulong(CKA_CLASS, CKO_SECRET_KEY),
        RawAttr::ulong(CKA_KEY_TYPE, CKK_AES),
        RawAttr::bool(CKA_TOKEN, false),
        RawAttr::bool(CKA_DERIVE, true),
        RawAttr::new(CKA_VALUE, &[0x5c; 32]),
    ];
    let made = if forced.is_empty() {
        Raw::load().create_object(session.handle(), &plain)
    } else {
        Raw::load().create_with_nested(session.handle(), &plain, CKA_DERIVE_TEMPLATE, forced)
    };
    handle(made.expect("C_CreateObject(base key)"))
}

/// `CKM_AES_ECB_ENCRYPT_DATA` of one block under `base`, as a generic secret of `len`
/// bytes (the encryption cut to it), with `extra` in its template.
fn derive(
    ck: &Ck,
    session: &Session,
    base: ObjectHandle,
    len: CK_ULONG,
    extra: Vec<RawAttr>,
) -> Result<ObjectHandle, RvError> {
    ck.derive(
        session.handle(),
        &string_data(CKM_AES_ECB_ENCRYPT_DATA, &BLOCK),
        base.handle(),
        &generic_template(Some(len), extra),
    )
    .map(handle)
}

/// `derive`, as an AES-128 key (which may be a base for `derive` in turn).
fn derive_aes(
    ck: &Ck,
    session: &Session,
    base: ObjectHandle,
    extra: Vec<RawAttr>,
) -> Result<ObjectHandle, RvError> {
    let mut template = vec![
        RawAttr::ulong(CKA_CLASS, CKO_SECRET_KEY),
        RawAttr::ulong(CKA_KEY_TYPE, CKK_AES),
        RawAttr::bool(CKA_TOKEN, false),
        RawAttr::ulong(CKA_VALUE_LEN, 16),
    ];
    template.extend(extra);
    ck.derive(
        session.handle(),
        &string_data(CKM_AES_ECB_ENCRYPT_DATA, &BLOCK),
        base.handle(),
        &template,
    )
    .map(handle)
}

fn guarding() -> Vec<RawAttr> {
    vec![
        RawAttr::bool(CKA_SENSITIVE, true),
        RawAttr::bool(CKA_EXTRACTABLE, false),
    ]
}

#[test]
fn a_guarding_derive_template_makes_no_key_shorter_than_sixteen_bytes() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    for forced in [
        guarding(),
        vec![
            RawAttr::bool(CKA_SENSITIVE, true),
            RawAttr::bool(CKA_WRAP_WITH_TRUSTED, true),
        ],
        vec![RawAttr::bool(CKA_EXTRACTABLE, false)],
    ] {
        let key = base(&session, &forced);
        for len in [1, 8, 15] {
            assert_eq!(
                derive(&ck, &session, key, len, vec![]),
                Err(RvError::TemplateInconsistent),
                "a {len}-byte key under a guarding derive template"
            );
        }
        let made = derive(&ck, &session, key, 16, vec![]).expect("a 16-byte key");
        assert!(
            attribute_bool(&session, made, AttributeType::Sensitive)
                || !attribute_bool(&session, made, AttributeType::Extractable)
        );
    }
}

/// The exposing derivations of review 15a's second step, on the bound key itself and
/// on a key derived under the bound (which may derive: the caller asks, or sets it
/// afterwards), are refused; and the bound holds one derivation further.
#[test]
fn the_bound_refuses_exposing_derivations_and_goes_on_to_derived_keys() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let f = Raw::load();
    let bound = base(&session, &guarding());
    let concatenate = |key: ObjectHandle| {
        ck.derive(
            session.handle(),
            &string_data(CKM_CONCATENATE_BASE_AND_DATA, &[0x01]),
            key.handle(),
            &generic_template(None, vec![]),
        )
    };
    assert_eq!(concatenate(bound), Err(RvError::MechanismInvalid));
    // A derived key may derive, but is bound as its source was.
    let derived = derive_aes(&ck, &session, bound, vec![RawAttr::bool(CKA_DERIVE, true)])
        .expect("a 16-byte AES key that may derive");
    assert_eq!(concatenate(derived), Err(RvError::MechanismInvalid));
    assert_eq!(
        derive(&ck, &session, derived, 1, vec![]),
        Err(RvError::TemplateInconsistent)
    );
    let again = derive(&ck, &session, derived, 16, vec![]).expect("16 bytes, one step further");
    assert!(!attribute_bool(&session, again, AttributeType::Extractable));
    // Set afterwards: the same.
    let later = derive_aes(&ck, &session, bound, vec![]).unwrap();
    f.set_attributes(
        session.handle(),
        later.handle(),
        &[RawAttr::bool(CKA_DERIVE, true)],
    )
    .expect("CKA_DERIVE may be changed");
    assert_eq!(concatenate(later), Err(RvError::MechanismInvalid));
    // A source without a guarding template still concatenates.
    let open = base(&session, &[]);
    concatenate(open).expect("an unbound key concatenates");
}

/// Without a guarding derive template nothing changes: a caller may derive a readable
/// key of any length anyway (and PKCS#11's truncation holds).
#[test]
fn without_a_guarding_derive_template_every_length_and_usage_is_open() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let readable = || {
        vec![
            RawAttr::bool(CKA_SENSITIVE, false),
            RawAttr::bool(CKA_EXTRACTABLE, true),
            RawAttr::bool(CKA_DERIVE, true),
        ]
    };
    for forced in [vec![], vec![RawAttr::bool(CKA_TOKEN, false)]] {
        let key = base(&session, &forced);
        let whole = derive(&ck, &session, key, 16, readable()).unwrap();
        let whole = attribute_bytes(&session, whole, AttributeType::Value);
        for len in [1usize, 8, 15] {
            let cut = derive(&ck, &session, key, len as CK_ULONG, readable()).unwrap();
            assert_eq!(
                attribute_bytes(&session, cut, AttributeType::Value),
                whole[..len]
            );
        }
    }
}
