//! An attacker's review (branch attack20b) of 6784797: GetParametersForImport judged
//! again on the target's current record in the transaction that stores the wrapping
//! pair, except for a target whose main object is a session object ("it lives in this
//! process only: its cached record is the current one"). A step armed at the token's
//! `insert` point (the start of `insert_all_judged`, after the cached judgement and the
//! wrapping key's generation) stands for another thread of this process acting on the
//! target meanwhile. Each test asserts what the project's documents promise, so it fails
//! against the module as reviewed (592502e).

use super::test_store::{
    external_key, import_parameters, pair_stored, token_on_a_fixed_clock, ulong, CALLER,
};
use super::Token;
use crate::error::Error;
use crate::kms::key::KeyState;
use crate::object::attr::KEY_STATE;

/// Defect: a session target is judged on the record read before the wrapping key was
/// generated, and never again. `make_import_parameters` skips the in-transaction
/// judgement when the target's main object is a session object, on the ground that
/// "its cached record is the current one"; but the record it holds (`main`) was read
/// before the key generation, and nothing serialises the request with the target's
/// other decisions (`Token::kms_decisions`, which every other KMS decision on a session
/// key takes, docs/key-model.md: "its decisions are serialised by a per-token mutex
/// instead"). Another thread schedules the key's deletion meanwhile: the pair is
/// issued all the same, and `GetParametersForImport` recorded as a success, for a key
/// pending deletion — the very outcome 6784797 closes for token keys.
///
/// Expected (docs/key-model.md, "Exactly once": concurrent requests end as some serial
/// order of them would; a key whose deletion was scheduled after this caller last read
/// it gets no pair): `CKR_KMSHSM_INCORRECT_KEY_STATE` (`Error::Kms`), and no pair
/// stored. Actual: a pair.
#[test]
fn a_session_target_whose_deletion_another_thread_schedules_meanwhile_gets_no_pair() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (token, _clock, _hooks) = token_on_a_fixed_clock(dir.path(), "review20b1");
    let (key, key_id) = external_key(&token, false);
    token.test_steps.lock().push((
        "insert",
        Box::new(move |t: &Token| {
            t.set_attributes(
                CALLER,
                key,
                &[ulong(KEY_STATE, KeyState::PendingDeletion.code())],
            )
            .expect("ScheduleKeyDeletion in another thread");
        }),
    ));
    let asked = import_parameters(&token, CALLER, &key_id);
    assert!(token.test_steps.lock().is_empty(), "the step ran");
    let stored = pair_stored(&token, &key_id);
    assert!(
        matches!(asked, Err(Error::Kms(_))) && !stored,
        "import parameters issued for a session key whose deletion was scheduled before \
         they were stored: {asked:?}, pair stored: {stored}"
    );
}

/// Defect: as above, with the session target destroyed (`C_DestroyObject`, or the
/// `C_CloseSession` of its session) by another thread while the wrapping key is made:
/// a pair is stored, and `GetParametersForImport` recorded as a success, for a key that
/// no longer exists.
///
/// Expected (docs/key-model.md, "Exactly once": a key destroyed after this caller last
/// read it gets no pair): `CKR_KMSHSM_KEY_NOT_FOUND` (`Error::Kms`), and no pair stored.
/// Actual: a pair.
#[test]
fn a_session_target_destroyed_by_another_thread_meanwhile_gets_no_pair() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (token, _clock, _hooks) = token_on_a_fixed_clock(dir.path(), "review20b2");
    let (key, key_id) = external_key(&token, false);
    token.test_steps.lock().push((
        "insert",
        Box::new(move |t: &Token| {
            t.destroy_object(CALLER, key)
                .expect("C_DestroyObject in another thread");
        }),
    ));
    let asked = import_parameters(&token, CALLER, &key_id);
    assert!(token.test_steps.lock().is_empty(), "the step ran");
    let stored = pair_stored(&token, &key_id);
    assert!(
        matches!(asked, Err(Error::Kms(_))) && !stored,
        "import parameters issued for a session key destroyed before they were stored: \
         {asked:?}, pair stored: {stored}"
    );
}
