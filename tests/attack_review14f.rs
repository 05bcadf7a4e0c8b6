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

/// Defect: the 1 GiB bound on what a call's templates copy (5db4dec) is per template,
/// not per call: `ffi/entry/keys.rs` C_GenerateKeyPair reads its public and private
/// templates with two `raw::read_template` calls, each with a budget of its own
/// (`MAX_INPUT_LEN`), so one call copies up to 2 GiB (C_DeriveKey likewise: its
/// template and the SP 800-108 additional keys' templates have one budget each). Two
/// attributes over one caller buffer of 513 MiB, one in each template, are copied
/// twice, where the same two in one template are refused (attack_review14d).
///
/// Expected (docs/reliability.md: "the values of a call's templates are copied up to
/// 1 GiB in all (`CKR_ARGUMENTS_BAD` beyond), however many attributes point at one
/// buffer"): `CKR_ARGUMENTS_BAD`, before either value is copied a second time. Actual:
/// both values are copied (1026 MiB) and the call goes on to judge the templates.
#[test]
fn a_key_pair_call_copies_its_two_templates_beyond_the_one_budget() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    // SAFETY: loading the module under test (already initialised by `ready_token`).
    let library = unsafe { cryptoki_sys::Pkcs11::new(module_path()) }.unwrap();
    let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
    // SAFETY: C_GetFunctionList writes one pointer.
    assert_eq!(unsafe { library.C_GetFunctionList(&mut list) }, CKR_OK);
    // SAFETY: the module keeps its function list alive while loaded; it is copied.
    let f = unsafe { *list };
    // Zeroed pages the test does not touch: reading them costs the test no memory.
    let big = vec![0u8; 513 << 20];
    let no = CK_FALSE;
    let big_value = |ty| CK_ATTRIBUTE {
        type_: ty,
        pValue: big.as_ptr() as *mut _,
        ulValueLen: big.len() as CK_ULONG,
    };
    let mut public = [
        CK_ATTRIBUTE {
            type_: CKA_TOKEN,
            pValue: &no as *const _ as *mut _,
            ulValueLen: 1,
        },
        CK_ATTRIBUTE {
            type_: CKA_EC_PARAMS,
            pValue: OID_P256.as_ptr() as *mut _,
            ulValueLen: OID_P256.len() as CK_ULONG,
        },
        // Not a value a generation takes: the call is refused once the templates are
        // read, whatever it answers.
        big_value(CKA_VALUE),
    ];
    let mut private = [
        CK_ATTRIBUTE {
            type_: CKA_TOKEN,
            pValue: &no as *const _ as *mut _,
            ulValueLen: 1,
        },
        big_value(CKA_VALUE),
    ];
    let mut mechanism = CK_MECHANISM {
        mechanism: CKM_EC_KEY_PAIR_GEN,
        pParameter: std::ptr::null_mut(),
        ulParameterLen: 0,
    };
    let (mut pub_handle, mut priv_handle) = (0, 0);
    // SAFETY: every pointer is alive for the call; two handles are written.
    let rv = unsafe {
        f.C_GenerateKeyPair.unwrap()(
            session.handle(),
            &mut mechanism,
            public.as_mut_ptr(),
            public.len() as CK_ULONG,
            private.as_mut_ptr(),
            private.len() as CK_ULONG,
            &mut pub_handle,
            &mut priv_handle,
        )
    };
    assert_eq!(
        rv, CKR_ARGUMENTS_BAD,
        "two values of 513 MiB over one buffer, one in each template of the call: {rv:#x}"
    );
}
