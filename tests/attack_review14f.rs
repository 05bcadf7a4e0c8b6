//! An attacker's review (branch attack14f) of c770567..76b5fef: the day's fixes of the
//! KMS lifecycle (`transition_holding`), the C ABI's template budget, the object
//! versions C_SetAttributeValue/C_DestroyObject write over, and the pair-name rule.
//! Each test reproduces one defect found by reading the code, asserts what PKCS#11 3.0
//! or the project's documents promise, and fails against the module as it was
//! reviewed. Its doc comment says what is wrong.
//! Run with `cargo nextest run --test attack_review14f` (after `cargo build --lib`).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::kms::*;
use common::*;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;

/// A token EC P-256 key pair made by the module (ORIGIN_KMS, Enabled).
fn kms_ec_pair(session: &Session, label: &str) -> (ObjectHandle, ObjectHandle) {
    let public = vec![
        Attribute::Token(true),
        Attribute::Verify(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::EcParams(OID_P256.to_vec()),
    ];
    let private = vec![
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sign(true),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    session
        .generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)
        .unwrap()
}

/// Defect: a key pair made by the module (origin KMS) whose private half was destroyed
/// keeps its public half as the key, Enabled, verifying. DisableKey on it is accepted,
/// but EnableKey is now refused for good (`CKR_KMSHSM_INCORRECT_KEY_STATE`):
/// `kms/lifecycle.rs` `transition_holding` refuses `Event::Enable` whenever
/// `holds_material` is false, and `token/kms/key_records.rs` `holds_material` is false
/// for a public object, which `main_of` takes as the key when no private half is left.
/// The change (9a6654a) meant to refuse enabling a key whose material was *deleted*
/// (an EXTERNAL key wiped to PendingImport); a KMS key never loses material that way,
/// and its public half holds its public key.
///
/// Expected (docs/key-model.md, States: "any state but PendingDeletion ... Enable/Disable"
/// between Enabled and Disabled; `transition(Kms, Disabled, Enable)` is Enabled; the
/// kms-docs' EnableKey on a Disabled key): DisableKey then EnableKey returns the key to
/// Enabled, as it did before 9a6654a. Actual: EnableKey answers
/// `CKR_KMSHSM_INCORRECT_KEY_STATE` and the key stays Disabled: DisableKey cannot be
/// undone.
#[test]
fn a_disabled_public_only_kms_key_can_never_be_enabled_again() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let (public, private) = kms_ec_pair(&session, "public-only");
    assert_eq!(origin(&session, public), ORIGIN_KMS);
    let message = [5u8; 32];
    let signature = session.sign(&Mechanism::Ecdsa, private, &message).unwrap();
    session.destroy_object(private).unwrap();
    // The public half alone is the key now, Enabled, and it verifies.
    assert_eq!(state(&session, public), STATE_ENABLED);
    session
        .verify(&Mechanism::Ecdsa, public, &message, &signature)
        .expect("the public half verifies while Enabled");
    set_state(&session, public, STATE_DISABLED).expect("DisableKey");
    assert_eq!(state(&session, public), STATE_DISABLED);
    let enabled = set_state(&session, public, STATE_ENABLED);
    assert_eq!(
        (
            enabled.map_err(|e| format!("{e:?}")),
            state(&session, public)
        ),
        (Ok(()), STATE_ENABLED),
        "EnableKey of a Disabled KMS key (its public half) is refused"
    );
    session
        .verify(&Mechanism::Ecdsa, public, &message, &signature)
        .expect("the re-enabled key verifies again");
}

/// Defect: ScheduleKeyDeletion then CancelKeyDeletion of a KMS-origin key whose private
/// half was destroyed leaves it PendingImport (`kms/lifecycle.rs` `transition_holding`:
/// `(CancelDeletion, false) => PendingImport` for every origin, `holds_material` false
/// for a public object). PendingImport is a state of EXTERNAL keys only: material can
/// be imported only into EXTERNAL keys, so a KMS key there can never leave it (EnableKey
/// is refused, ImportKeyMaterial is refused): the cancelled deletion destroys the key as
/// surely as the deletion would have.
///
/// Expected (docs/key-model.md: "PendingImport ◄── delete material / material expired
/// (EXTERNAL only)"; "cancel ──► Disabled"; kms-docs CancelKeyDeletion: the key returns
/// to Disabled): the key is Disabled after the cancellation, and EnableKey makes it
/// Enabled. Actual: it is PendingImport, a state its origin never has.
#[test]
fn a_cancelled_deletion_leaves_a_kms_origin_key_pending_import_forever() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let (public, private) = kms_ec_pair(&session, "cancelled-kms");
    session.destroy_object(private).unwrap();
    assert_eq!(origin(&session, public), ORIGIN_KMS);
    set_state(&session, public, STATE_PENDING_DELETION).expect("ScheduleKeyDeletion");
    set_state(&session, public, STATE_DISABLED).expect("CancelKeyDeletion");
    assert_eq!(
        state(&session, public),
        STATE_DISABLED,
        "a KMS-origin key read PendingImport after its deletion was cancelled"
    );
}
