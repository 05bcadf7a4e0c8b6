//! An attacker's review (branch attack20c) of 90f63b2: a session target of
//! GetParametersForImport is judged again "on its current version under the table's
//! lock" (`Judges::in_table`). The wrapping pair is made of token objects, though, and
//! those are committed after `insert_all_judged` has let the table's lock (and the
//! login's) go: a step armed at the store transaction that stores the pair stands for
//! another thread of this process acting on the target in that window.

use std::sync::Arc;

use super::test_store::{
    external_key, import_parameters, pair_stored, token_on_a_fixed_clock, ulong, CALLER,
};
use super::Token;
use crate::kms::key::KeyState;
use crate::object::attr::KEY_STATE;

/// Defect: the session target's judgement under the table's lock (`in_table`, 90f63b2)
/// is not the moment the pair is stored. `insert_all_judged` runs `in_table`, lets the
/// table's and the login's locks go, and only then commits the pair's token objects,
/// whose in-transaction judge skips a session target; nothing serialised the request
/// with the target's other KMS decisions (`Token::kms_decisions`, which a
/// ScheduleKeyDeletion of a session key takes). Another thread that schedules the key's
/// deletion in that window got its decision written before the pair was stored, and the
/// pair was still stored: review 20b's defect, with the window moved, not closed.
///
/// Here the other thread really runs: started from the `inserting` point (after
/// `in_table`), it is given time to finish before the pair's commit. Expected
/// (docs/key-model.md, "Exactly once": concurrent requests end as some serial order of
/// them would): its decision waits for the pair (the request holds `kms_decisions` from
/// its judgement until the pair is stored), so the pair is issued and the deletion
/// scheduled after it. As reviewed: the deletion was written in the window.
#[test]
fn a_session_targets_deletion_scheduled_meanwhile_waits_for_the_pair() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().expect("temporary directory");
    let (token, _clock, _hooks) = token_on_a_fixed_clock(dir.path(), "review20c1");
    let token = Arc::new(token);
    let (key, key_id) = external_key(&token, false);
    let weak = Arc::downgrade(&token);
    let finished = Arc::new(AtomicBool::new(false));
    let finished_in_window = Arc::new(AtomicBool::new(false));
    let other = Arc::new(parking_lot::Mutex::new(None));
    let (finished_step, in_window, other_step) = (
        Arc::clone(&finished),
        Arc::clone(&finished_in_window),
        Arc::clone(&other),
    );
    token.test_steps.lock().push((
        "inserting",
        Box::new(move |_: &Token| {
            let token = weak.upgrade().expect("the token");
            let done = Arc::clone(&finished_step);
            *other_step.lock() = Some(std::thread::spawn(move || {
                let scheduled = token.set_attributes(
                    CALLER,
                    key,
                    &[ulong(KEY_STATE, KeyState::PendingDeletion.code())],
                );
                done.store(true, Ordering::SeqCst);
                scheduled
            }));
            // Time for the other thread's decision, were nothing to hold it back.
            std::thread::sleep(std::time::Duration::from_millis(300));
            in_window.store(finished_step.load(Ordering::SeqCst), Ordering::SeqCst);
        }),
    ));
    let asked = import_parameters(&token, CALLER, &key_id);
    assert!(token.test_steps.lock().is_empty(), "the step ran");
    let scheduled = other
        .lock()
        .take()
        .expect("the other thread")
        .join()
        .expect("the other thread ended");
    assert!(finished.load(Ordering::SeqCst));
    assert!(
        !finished_in_window.load(Ordering::SeqCst),
        "ScheduleKeyDeletion of the session target was written between the request's \
         judgement and the pair's commit"
    );
    // The serial order the outcome is: the pair issued, then the deletion scheduled.
    assert!(asked.is_ok(), "{asked:?}");
    assert!(scheduled.is_ok(), "{scheduled:?}");
    assert!(pair_stored(&token, &key_id));
    let state = token
        .objects
        .read()
        .get(key)
        .and_then(|e| e.object.ulong(KEY_STATE));
    assert_eq!(state, Some(KeyState::PendingDeletion.code()));
}
