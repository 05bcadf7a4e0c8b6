//! The unauthenticated unwraps (ECB, CBC, CBC-PAD of AES, SM4 and DES, and the
//! ECB-payload envelopes) and an unwrapping key whose `CKA_UNWRAP_TEMPLATE` guards what
//! it unwraps (makes it sensitive or unextractable): such a key takes none of them
//! (`CKR_MECHANISM_INVALID`), since a caller who may alter a blob and compare two
//! unwraps of it learns the key wrapped in it (docs/security.md, "Unauthenticated
//! unwraps"; the attacks are tests/attack_review14g.rs, 14h.rs and 14i.rs). An
//! authenticated unwrap (`CKM_AES_KEY_WRAP_PAD`) still works under the same key, and a
//! key without such a template unwraps with every mode, as PKCS#11 has it.
//! Run with `cargo nextest run --test mech_unwrap_guarded` (after `cargo build --lib`).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::*;
use common::raw::{Raw, RawAttr};
use common::*;
use cryptoki::error::RvError;
use cryptoki::object::{AttributeType, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;

const IV: [u8; 16] = [0x5a; 16];

/// A session key-encryption key of `key_type` and `value` that may wrap and unwrap, with
/// `forced` as its `CKA_UNWRAP_TEMPLATE` (none when empty).
fn kek(session: &Session, key_type: CK_KEY_TYPE, value: &[u8], forced: &[RawAttr]) -> ObjectHandle {
    let plain = [
        RawAttr::ulong(CKA_CLASS, CKO_SECRET_KEY),
        RawAttr::ulong(CKA_KEY_TYPE, key_type),
        RawAttr::bool(CKA_TOKEN, false),
        RawAttr::bool(CKA_WRAP, true),
        RawAttr::bool(CKA_UNWRAP, true),
        RawAttr::new(CKA_VALUE, value),
    ];
    let made = if forced.is_empty() {
        Raw::load().create_object(session.handle(), &plain)
    } else {
        Raw::load().create_with_nested(session.handle(), &plain, CKA_UNWRAP_TEMPLATE, forced)
    };
    handle(made.expect("C_CreateObject(KEK)"))
}

/// A readable AES-128 key to wrap.
fn payload(session: &Session) -> ObjectHandle {
    aes_key(session, &[0x11; 16])
}

/// `C_UnwrapKey(mech)` of what `C_WrapKey(mech)` made of `payload` under `kek`, as a
/// 16-byte generic secret (with `extra` in its template).
fn round_trip(
    ck: &Ck,
    session: &Session,
    mech: &RawMech,
    kek: ObjectHandle,
    extra: Vec<RawAttr>,
) -> Result<ObjectHandle, RvError> {
    let key = payload(session);
    let wrapped = ck
        .wrap(session.handle(), mech, kek.handle(), key.handle())
        .expect("C_WrapKey");
    ck.unwrap(
        session.handle(),
        mech,
        kek.handle(),
        &wrapped,
        &generic_template(Some(16), extra),
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
fn a_kek_guarding_what_it_unwraps_takes_no_unauthenticated_aes_unwrap() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let kek = kek(&session, CKK_AES, &[0x3c; 32], &guarding());
    for mech in [
        RawMech::none(CKM_AES_ECB),
        RawMech::bytes(CKM_AES_CBC, &IV),
        RawMech::bytes(CKM_AES_CBC_PAD, &IV),
    ] {
        assert_eq!(
            round_trip(&ck, &session, &mech, kek, vec![]),
            Err(RvError::MechanismInvalid),
            "C_UnwrapKey({:#x}) with a guarding unwrap template",
            mech.ty
        );
    }
    // Authenticated key transport under the same key works, and the template holds.
    let key = round_trip(
        &ck,
        &session,
        &RawMech::none(CKM_AES_KEY_WRAP_PAD),
        kek,
        vec![],
    )
    .expect("C_UnwrapKey(CKM_AES_KEY_WRAP_PAD)");
    assert!(attribute_bool(&session, key, AttributeType::Sensitive));
    assert!(!attribute_bool(&session, key, AttributeType::Extractable));
}

#[test]
fn a_kek_guarding_what_it_unwraps_takes_no_unauthenticated_sm4_unwrap() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let kek = kek(
        &session,
        CKK_SM4,
        &[0x3c; 16],
        &[RawAttr::bool(CKA_EXTRACTABLE, false)],
    );
    for mech in [
        RawMech::none(CKM_SM4_ECB),
        RawMech::bytes(CKM_SM4_CBC_PAD, &IV),
    ] {
        assert_eq!(
            round_trip(&ck, &session, &mech, kek, vec![]),
            Err(RvError::MechanismInvalid)
        );
    }
}

/// Only a template that guards the result refuses: one that fixes other attributes,
/// or makes the result readable, leaves every mode to the key, as does no template.
#[test]
fn an_unwrap_template_that_does_not_guard_leaves_every_mode() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    for forced in [
        vec![],
        vec![RawAttr::bool(CKA_TOKEN, false)],
        vec![
            RawAttr::bool(CKA_SENSITIVE, false),
            RawAttr::bool(CKA_EXTRACTABLE, true),
        ],
        // Sensitive alone keeps nothing from the caller: such a key may be wrapped
        // under the caller's own key and unwrapped readable (review 15d).
        vec![RawAttr::bool(CKA_SENSITIVE, true)],
    ] {
        let kek = kek(&session, CKK_AES, &[0x3c; 32], &forced);
        for mech in [
            RawMech::none(CKM_AES_ECB),
            RawMech::bytes(CKM_AES_CBC, &IV),
            RawMech::bytes(CKM_AES_CBC_PAD, &IV),
        ] {
            let sensitive = forced
                .iter()
                .any(|a| a.ty == CKA_SENSITIVE && a.value == [1]);
            let readable = if sensitive {
                vec![RawAttr::bool(CKA_EXTRACTABLE, true)]
            } else {
                vec![
                    RawAttr::bool(CKA_SENSITIVE, false),
                    RawAttr::bool(CKA_EXTRACTABLE, true),
                ]
            };
            let key = round_trip(&ck, &session, &mech, kek, readable)
                .unwrap_or_else(|rv| panic!("C_UnwrapKey({:#x}): {rv:?}", mech.ty));
            if !sensitive {
                assert_eq!(
                    attribute_bytes(&session, key, AttributeType::Value),
                    vec![0x11; 16]
                );
            }
        }
    }
    // Unextractable alone guards, as does sensitive with wrapping under trusted keys only.
    for forced in [
        vec![
            RawAttr::bool(CKA_SENSITIVE, true),
            RawAttr::bool(CKA_WRAP_WITH_TRUSTED, true),
        ],
        vec![RawAttr::bool(CKA_EXTRACTABLE, false)],
    ] {
        let kek = kek(&session, CKK_AES, &[0x3c; 32], &forced);
        assert_eq!(
            round_trip(
                &ck,
                &session,
                &RawMech::bytes(CKM_AES_CBC_PAD, &IV),
                kek,
                vec![]
            ),
            Err(RvError::MechanismInvalid)
        );
    }
}

/// The guard cannot be taken off: `CKA_UNWRAP_TEMPLATE` is fixed at creation, so neither
/// `C_SetAttributeValue` nor a copy drops or replaces it, and a copy keeps it.
#[test]
fn the_unwrap_template_stays_on_the_key_and_its_copies() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let f = Raw::load();
    let kek = kek(&session, CKK_AES, &[0x3c; 32], &guarding());
    let no_template = [RawAttr::new(CKA_UNWRAP_TEMPLATE, &[])];
    assert_eq!(
        f.set_attributes(session.handle(), kek.handle(), &no_template),
        Err(RvError::AttributeReadOnly)
    );
    assert!(f
        .copy_object(session.handle(), kek.handle(), &no_template)
        .is_err());
    let copy = handle(
        f.copy_object(session.handle(), kek.handle(), &[])
            .expect("C_CopyObject"),
    );
    assert_eq!(
        round_trip(
            &ck,
            &session,
            &RawMech::bytes(CKM_AES_CBC_PAD, &IV),
            copy,
            vec![]
        ),
        Err(RvError::MechanismInvalid)
    );
}
