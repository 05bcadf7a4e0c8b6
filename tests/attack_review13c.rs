//! A third attacker's review of the fixes made on 2026-12-06 (a8dd673 ... 4c0042c), chiefly
//! of 4c0042c (a session half of a key pair whose other half is a token object is judged by
//! the token half's state), and of the message-based API. Each test reproduces one defect
//! found by reading the code, asserts the answer the specification (or docs/security.md,
//! docs/key-model.md) requires, and fails against the module as it was reviewed (4c0042c).
//! Its doc comment says what is wrong. Run with `cargo nextest run --test attack_review13c`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::kms::{key_id, set_state, STATE_DISABLED, STATE_ENABLED};
use common::*;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectHandle};
use cryptoki::session::Session;

// ---------------------------------------------------------------------------------------
// Two processes: a key pair whose private half is a session object
// ---------------------------------------------------------------------------------------

/// The entry point of the child processes of this file's multi-process tests.
const CHILD_ENTRY: &str = "child_process_entry_point";

/// The environment variable naming the key a child acts on.
const KEY_ENV: &str = "KMSHSM_REVIEW_KEY_ID";

/// Not a test: one child process (its role says what it does to the token objects of the
/// key `KEY_ENV` names: `disable`, `enable` or `destroy`).
#[test]
#[ignore = "child-process entry point: this file's tests run it in a child (--ignored --exact)"]
fn child_process_entry_point() {
    let Some(role) = child_role() else { return };
    let ctx = load_module();
    initialize(&ctx).unwrap();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let session = user_session(&ctx, slot);
    let id = std::env::var(KEY_ENV).unwrap();
    let found = common::kms::objects_of_key(&session, &id);
    let act = |one: ObjectHandle| match role.as_str() {
        "disable" => set_state(&session, one, STATE_DISABLED),
        "enable" => set_state(&session, one, STATE_ENABLED),
        "destroy" => session.destroy_object(one),
        other => panic!("unknown role {other}"),
    };
    let answer = match found.as_slice() {
        [] => "not-found".to_string(),
        [one, ..] => match act(*one) {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("refused {e}"),
        },
    };
    tell_parent(&format!("{role} {answer} objects={}", found.len()));
    tell_parent("done");
}

/// Runs a child of `role` on key `id` and answers its report line (`<role> ok ...` when
/// the change was made).
fn run_child(role: &str, id: &str) -> String {
    let mut command = child_command(CHILD_ENTRY, role);
    command.env(KEY_ENV, id);
    let output = command.output().expect("spawn child");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "child {role} failed ({}):\n{text}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    child_lines(&text)
        .into_iter()
        .find(|l| l.starts_with(&format!("{role} ")))
        .unwrap_or_default()
}

/// A P-256 KMS key pair generated with its public half on the token and its private half
/// a session object (`sensitive`: the private half's `CKA_SENSITIVE`, extractable when
/// not). Answers (public, private, KeyId).
fn split_pair(session: &Session, sensitive: bool) -> (ObjectHandle, ObjectHandle, String) {
    let (public, private) = session
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::Verify(true),
                Attribute::EcParams(common::kms::OID_P256.to_vec()),
            ],
            &[
                Attribute::Token(false),
                Attribute::Private(true),
                Attribute::Sign(true),
                Attribute::Sensitive(sensitive),
                Attribute::Extractable(!sensitive),
            ],
        )
        .unwrap();
    let id = key_id(session, private);
    assert_eq!(key_id(session, public), id);
    (public, private, id)
}

/// Defect: 0f9be6a made "a key that may not be used may not be read either"
/// (`Token::material_readable`), and 4c0042c made a session half of a key pair unusable
/// when its token half is Disabled in another process (`check_token_halves`). But
/// `material_readable` judges the object's own state and expiry only; it does not look at
/// the token half (it is asked under the object table's lock, which `check_token_halves`,
/// loading from the store, may not be). So after another process's DisableKey of a key
/// whose private half is a session object here, `C_SignInit` and `C_WrapKey` of that half
/// are refused, yet `C_GetAttributeValue(CKA_VALUE)` hands out its private scalar, from
/// which an Enabled copy of the key is made past the owner's DisableKey; and a search by
/// `CKA_VALUE` answers whether a guess is the key.
///
/// docs/security.md (0f9be6a: a Disabled key's material is withheld, "or its material
/// would leave a disabled key ... and be made anew as an Enabled key, past the owner's
/// EnableKey"), docs/key-model.md ("a session half is also judged, at every use ..., by
/// its token half's state"). PKCS#11 3.0 §5.7.5 `C_GetAttributeValue`: a value that
/// cannot be revealed is `CKR_ATTRIBUTE_SENSITIVE`. Expected: `CKR_ATTRIBUTE_SENSITIVE`
/// and no match by value, as for a key Disabled in this process. Actual: `CKR_OK` and the
/// 32-byte scalar; the search finds the key.
#[test]
fn a_session_half_disabled_in_another_process_does_not_hand_out_its_material() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let (_public, private, id) = split_pair(&session, false);
    let answer = run_child("disable", &id);
    assert!(answer.starts_with("disable ok"), "child: {answer}");
    // The fix of 4c0042c holds for use and for the wrap.
    let signed = session.sign(&Mechanism::Ecdsa, private, &[0x5A; 32]);
    assert!(signed.is_err(), "the private half still signs");
    let wrapping = session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(32.into()),
                Attribute::Wrap(true),
            ],
        )
        .unwrap();
    let wrapped = session.wrap_key(&Mechanism::AesKeyWrapPad, wrapping, private);
    assert!(
        wrapped.is_err(),
        "C_WrapKey of the disabled key's private half"
    );
    // Its value, though, is read as if the key were Enabled.
    let read = session.get_attributes(private, &[AttributeType::Value]);
    let value = match read.as_deref() {
        Ok([Attribute::Value(v)]) => Some(v.clone()),
        _ => None,
    };
    let found_by_value = value.as_ref().map(|v| {
        session
            .find_objects(&[Attribute::Value(v.clone())])
            .unwrap()
            .contains(&private)
    });
    assert!(
        value.is_none(),
        "key {id} was disabled (another process's DisableKey answered CKR_OK; C_Sign and \
         C_WrapKey are refused here), yet C_GetAttributeValue hands out the private half's \
         CKA_VALUE ({} bytes; a search by it finds the key: {found_by_value:?})",
        value.as_ref().map_or(0, Vec::len)
    );
}

/// Defect: another process's DisableKey of a split key pair reaches only the token half;
/// the session half here keeps `CKA_KMSHSM_KEY_STATE` Enabled and is refused only through
/// its token half (`check_token_halves`). `C_CopyObject` of the session half copies that
/// stale Enabled state and gives the copy a new KeyId (`token/objects.rs`, `copy_object`):
/// the copy has no token half, so nothing refuses it, and it signs with the disabled key's
/// private key. No EnableKey was made or audited.
///
/// docs/key-model.md: "Only an Enabled key whose material has not expired can be used for
/// anything cryptographic"; EnableKey is the only way from Disabled to Enabled (the state
/// diagram), and the copy of a key Disabled in this process is Disabled. Expected: the
/// copy is refused (`CKR_KMSHSM_INCORRECT_KEY_STATE`, or the copy itself refused) as the
/// original is. Actual: the copy signs.
#[test]
fn a_copy_of_a_session_half_disabled_in_another_process_is_not_enabled() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let (_public, private, id) = split_pair(&session, true);
    let answer = run_child("disable", &id);
    assert!(answer.starts_with("disable ok"), "child: {answer}");
    assert!(
        session
            .sign(&Mechanism::Ecdsa, private, &[0x5A; 32])
            .is_err(),
        "the private half still signs"
    );
    let Ok(copy) = session.copy_object(private, &[Attribute::Token(false)]) else {
        // Refused: the disabled key is not laundered. Sound.
        return;
    };
    let copy_state = common::kms::state(&session, copy);
    let signed = session.sign(&Mechanism::Ecdsa, copy, &[0x5A; 32]);
    assert!(
        signed.is_err(),
        "key {id} was disabled by another process and its private half refuses to sign, \
         but C_CopyObject of that half gives a key in state {copy_state} (1 Enabled, 2 \
         Disabled) that signs with the same private key, without any EnableKey"
    );
}

/// Defect: 4c0042c judges a session half by the token halves it finds now
/// (`check_token_halves` loops over `key_objects`). When another process disables the key
/// (the token half) and then destroys that token half (`C_DestroyObject`, which
/// docs/key-model.md lists as the immediate form of key deletion), the session private half
/// here has no token half left to be judged by, and its own state still reads Enabled: the
/// key disabled (and then deleted) elsewhere signs again here.
///
/// docs/key-model.md: from Disabled only EnableKey leads back to Enabled; a deleted key
/// is gone. Expected: the private half stays refused once its key was disabled (or is
/// gone with its key). Actual: refused after the DisableKey, then `CKR_OK` again after the
/// destruction of the public half.
#[test]
fn destroying_the_token_half_does_not_re_enable_a_disabled_session_half() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let (_public, private, id) = split_pair(&session, true);
    let answer = run_child("disable", &id);
    assert!(answer.starts_with("disable ok"), "child: {answer}");
    assert!(
        session
            .sign(&Mechanism::Ecdsa, private, &[0x5A; 32])
            .is_err(),
        "the private half still signs after the DisableKey"
    );
    let answer = run_child("destroy", &id);
    if !answer.starts_with("destroy ok") {
        // The disabled key's token half could not be destroyed: nothing to judge by lost.
        return;
    }
    let signed = session.sign(&Mechanism::Ecdsa, private, &[0x5A; 32]);
    assert!(
        signed.is_err(),
        "key {id} was disabled by another process (this process's signatures refused), \
         then its token half destroyed there; the session private half signs again"
    );
}

/// Defect (the converse of the one 4c0042c fixed): a DisableKey made *here* of a key pair
/// whose private half is a session object writes Disabled onto both halves; another
/// process, which sees the token half alone, then makes EnableKey of the key: it is
/// decided on the public half, answers `CKR_OK` and is audited as `EnableKey` of the key,
/// but never reaches the session private half, whose own state stays Disabled, so the key
/// still refuses to sign here. The trail says the key is Enabled; the key is not.
///
/// docs/key-model.md ("Exactly once": Enable/Disable are "applied to every object of the
/// key at once"; "Only an Enabled key ... can be used"), docs/audit.md (the trail records
/// who enabled a key). Expected: either the other process's EnableKey is refused (it cannot
/// reach the key's private half), or the key signs here after it. Actual: `CKR_OK` there,
/// `CKR_KMSHSM_INCORRECT_KEY_STATE` here.
#[test]
fn an_enable_from_another_process_reaches_a_session_private_half_disabled_here() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let (public, private, id) = split_pair(&session, true);
    set_state(&session, private, STATE_DISABLED).unwrap();
    assert_eq!(common::kms::state(&session, public), STATE_DISABLED);
    let answer = run_child("enable", &id);
    if !answer.starts_with("enable ok") {
        // Refused in the other process: nothing was decided there. Sound.
        return;
    }
    let signed = session.sign(&Mechanism::Ecdsa, private, &[0x5A; 32]);
    let private_state = common::kms::state(&session, private);
    let public_state = common::kms::state(&session, public);
    assert!(
        signed.is_ok(),
        "another process's EnableKey of key {id} answered CKR_OK ({answer}), yet the private \
         half here still refuses to sign ({signed:?}; state: private {private_state}, public \
         {public_state}; {STATE_ENABLED} is Enabled, {STATE_DISABLED} Disabled)"
    );
}
