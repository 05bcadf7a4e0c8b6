//! An attacker's review (branch attack20c) of 90f63b2: a session target of
//! GetParametersForImport is judged again "on its current version under the table's
//! lock" (`Judges::in_table`). The wrapping pair is made of token objects, though, and
//! those are committed after `insert_all_judged` has let the table's lock (and the
//! login's) go: a step armed at the store transaction that stores the pair stands for
//! another thread of this process acting on the target in that window.

use std::sync::Arc;

use super::test_store::{bytes, import_parameters, token_on_a_fixed_clock, ulong, At, CALLER};
use super::Token;
use crate::ck::*;
use crate::error::Error;
use crate::kms::key::{KeySpec, KeyState, Origin};
use crate::object::attr::{IMPORT_TARGET, KEY_ID, KEY_SPEC, KEY_STATE, ORIGIN};
use crate::object::table::ObjectHandle;

/// An EXTERNAL AES-256 session key waiting for its material, made in session 1: its
/// handle and KeyId.
fn session_external_key(token: &Token) -> (ObjectHandle, Vec<u8>) {
    let key = token
        .create_object(
            CALLER,
            &[
                ulong(CKA_CLASS, CKO_SECRET_KEY.raw()),
                ulong(CKA_KEY_TYPE, CKK_AES.raw()),
                bytes(CKA_TOKEN, &[0]),
                bytes(CKA_ENCRYPT, &[1]),
                bytes(CKA_DECRYPT, &[1]),
                ulong(ORIGIN, Origin::External.code()),
                ulong(KEY_SPEC, KeySpec::Aes256.code()),
            ],
        )
        .expect("an EXTERNAL session key");
    let key_id = token
        .objects
        .read()
        .get(key)
        .and_then(|e| e.object.bytes(KEY_ID).map(<[u8]>::to_vec))
        .expect("KeyId");
    (key, key_id)
}

/// Whether the token holds any object of an import wrapping pair for `key_id`.
fn pair_stored(token: &Token, key_id: &[u8]) -> bool {
    token.sync().expect("sync");
    !token
        .find(&[bytes(IMPORT_TARGET, key_id)])
        .expect("find")
        .is_empty()
}

/// Defect: the session target's judgement under the table's lock (`in_table`, 90f63b2)
/// is not the moment the pair is stored. `insert_all_judged` runs `in_table`, lets the
/// table's and the login's locks go, and only then commits the pair's token objects,
/// whose in-transaction judge skips a session target; nothing serialises the request
/// with the target's other KMS decisions (`Token::kms_decisions`, which a
/// ScheduleKeyDeletion of a session key takes). Another thread that schedules the key's
/// deletion in that window (armed here at the pair's store transaction, run through the
/// `inserting` point so that it runs after `in_table`) gets its decision written, and
/// the pair is still stored and `GetParametersForImport` recorded as a success, for a
/// key pending deletion: review 20b's defect, with the window moved, not closed.
///
/// Expected (docs/key-model.md, "Exactly once": concurrent requests end as some serial
/// order of them would; "a key whose deletion another process or thread scheduled ...
/// after this process last read it gets no pair"): `Error::Kms` and no pair stored, or
/// the deletion ordered after the pair (refused, or judged on a key that has one).
/// Actual: both are written.
#[test]
fn a_session_target_whose_deletion_is_scheduled_before_the_pair_is_committed_gets_no_pair() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (token, _clock, hooks) = token_on_a_fixed_clock(dir.path(), "review20c1");
    let token = Arc::new(token);
    let (key, key_id) = session_external_key(&token);
    let weak = Arc::downgrade(&token);
    let armed = hooks.clone();
    token.test_steps.lock().push((
        "inserting",
        Box::new(move |_: &Token| {
            // After the wrapping key's generation and before `in_table`: the step below
            // runs at the next store transaction, the pair's commit.
            armed.arm(At::Transact, move || {
                let token = weak.upgrade().expect("the token");
                token
                    .set_attributes(
                        CALLER,
                        key,
                        &[ulong(KEY_STATE, KeyState::PendingDeletion.code())],
                    )
                    .expect("ScheduleKeyDeletion in another thread");
            });
        }),
    ));
    let asked = import_parameters(&token, CALLER, &key_id);
    assert!(token.test_steps.lock().is_empty(), "the step was armed");
    assert_eq!(hooks.armed(), 0, "the step ran");
    let state = token
        .objects
        .read()
        .get(key)
        .and_then(|e| e.object.ulong(KEY_STATE));
    assert_eq!(
        state,
        Some(KeyState::PendingDeletion.code()),
        "the other thread's ScheduleKeyDeletion was written"
    );
    let stored = pair_stored(&token, &key_id);
    assert!(
        matches!(asked, Err(Error::Kms(_))) && !stored,
        "import parameters issued for a session key whose deletion was scheduled after \
         its judgement under the table's lock and before the pair was stored: {asked:?}, \
         pair stored: {stored}"
    );
}
