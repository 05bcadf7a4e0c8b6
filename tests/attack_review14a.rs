//! An attacker's review (14a) of attribute policy on change and on creation (the KMS
//! vendor attributes in the templates of every call that makes a key), key transport
//! (`C_WrapKey`/`C_UnwrapKey`), the message-based and multi-part operations, and the
//! paths to a key's value. Each test reproduces one defect found by reading the code,
//! asserts what PKCS#11 3.0 or the project's documents promise, and fails against the
//! module as it was reviewed. Its doc comment says what is wrong.
//! Run with `cargo nextest run --test attack_review14a` (after `cargo build --lib`).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::kms::*;
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

/// What a key that claims `CKA_KMSHSM_KEY_SPEC` AES_256 really is: its `CKA_VALUE_LEN`.
fn claimed_and_real(session: &Session, key: ObjectHandle) -> (Option<u64>, Option<u64>) {
    (
        read_ulong(session, key, CKA_KMSHSM_KEY_SPEC),
        read_ulong(session, key, cryptoki_sys::CKA_VALUE_LEN),
    )
}

/// Defect: `CKA_KMSHSM_KEY_SPEC` is taken from the caller's template, unchecked, by
/// every call that makes a key except `C_CreateObject`. `template::build_from`
/// (`src/object/template.rs`) lets a template give it (`policy::mutability` says
/// `Fixed`, not `ModuleOnly`), and `Token::with_kms_identity`
/// (`src/token/kms/mod.rs`) overwrites it only when the material amounts to a KMS spec
/// (`shape::spec_of`); for any other key (AES-128, AES-192, a generic secret, P-384...)
/// the caller's value stays. So `C_GenerateKey` of a 16-byte AES key, or `C_UnwrapKey`
/// of one, with `CKA_KMSHSM_KEY_SPEC = KMSHSM_SPEC_AES_256` makes a key that
/// DescribeKey (`C_GetAttributeValue` of the vendor attributes, docs/key-model.md)
/// reports as a 256-bit AES key: a client choosing keys by their KeySpec (the CLI's
/// listing, a KMS-style `ListKeys` by `CKA_KMSHSM_KEY_SPEC`) is handed a 128-bit key.
///
/// Expected: the KeySpec is the module's statement of what the material is.
/// `Token::build_created` already refuses a spec that is not the one the material
/// amounts to ("A spec named in the template must be the one the material amounts to",
/// `CKR_TEMPLATE_INCONSISTENT`); the other paths must do the same (or set the spec
/// themselves, leaving none for material of no KMS spec). Actual: the key is made and
/// reads back `KMSHSM_SPEC_AES_256` with `CKA_VALUE_LEN` 16.
#[test]
fn a_key_made_by_generate_or_unwrap_claims_the_key_spec_its_template_names() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let spec_aes256 = vendor_ulong(CKA_KMSHSM_KEY_SPEC, Spec::Aes256.code());

    // C_CreateObject refuses the lie.
    let created = session.create_object(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(false),
        Attribute::Value(vec![0x11; 16]),
        spec_aes256.clone(),
    ]);
    assert_rv!(created, RvError::TemplateInconsistent);

    let mut lies = Vec::new();

    // C_GenerateKey: a 16-byte AES key that says AES_256.
    let generated = session.generate_key(
        &Mechanism::AesKeyGen,
        &[
            Attribute::Token(false),
            Attribute::ValueLen(16.into()),
            Attribute::Encrypt(true),
            spec_aes256.clone(),
        ],
    );
    if let Ok(key) = generated {
        let (claimed, len) = claimed_and_real(&session, key);
        if claimed == Some(Spec::Aes256.code()) {
            lies.push(format!(
                "C_GenerateKey: KeySpec AES_256, CKA_VALUE_LEN {len:?}"
            ));
        }
    }

    // C_UnwrapKey: a 16-byte AES key brought in under a KEK, said to be AES_256.
    let kek = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Wrap(true),
            Attribute::Unwrap(true),
            Attribute::Value(vec![0x22; 32]),
        ])
        .unwrap();
    let short = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Extractable(true),
            Attribute::Value(vec![0x33; 16]),
        ])
        .unwrap();
    let wrapped = session
        .wrap_key(&Mechanism::AesKeyWrap, kek, short)
        .unwrap();
    let unwrapped = session.unwrap_key(
        &Mechanism::AesKeyWrap,
        kek,
        &wrapped,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Encrypt(true),
            spec_aes256,
        ],
    );
    if let Ok(key) = unwrapped {
        let (claimed, len) = claimed_and_real(&session, key);
        if claimed == Some(Spec::Aes256.code()) {
            lies.push(format!(
                "C_UnwrapKey: KeySpec AES_256, CKA_VALUE_LEN {len:?}"
            ));
        }
    }

    assert!(
        lies.is_empty(),
        "keys that are not AES_256 describe themselves as AES_256: {lies:?}"
    );
}
