//! An attacker's review (branch attack18c): the time of a KMS state change. Review 17b
//! moved the import's rules to the time the decision is written (inside the store
//! transaction); the other lifecycle decisions still take no time at all. A step armed
//! before a transaction (`test_store::At::Transact`) that moves a `FixedClock` on, as in
//! `review17b_tests.rs`, stands for the wait a real transaction can have before it
//! decides (a PostgreSQL row lock held by another host, SQLite's busy wait). Each test
//! asserts what the project's documents promise, so it fails against the module as
//! reviewed (a9a7e16).

use std::sync::Arc;

use super::test_store::{token_on_a_fixed_clock, ulong, At, PreparedImport, CALLER};
use crate::error::Error;
use crate::kms::clock::Clock;

/// Defect: EnableKey (and every other state change) is decided without the time.
/// `kms::decide::change_state` takes the record's facts and the state wanted, not `now`;
/// the only expiry check on the way is the sweep the call runs before its transaction
/// (`entry_read` → `refresh`). A transaction that waits past the material's expiry
/// (here: DisableKey earlier, then an EnableKey 10 s before the expiry whose transaction
/// waits 20 s for the store's lock) decides on a Disabled record "holding material" and
/// writes Enabled, answering `CKR_OK` and recording `EnableKey` with outcome Success, at
/// a time when the material had expired 10 s before: a key whose material is gone by
/// every rule of the module (`state_now` reads it PendingImport, every use is refused)
/// is recorded as enabled by its owner after that. The same holds for
/// CancelKeyDeletion (Disabled instead of PendingImport) and ScheduleKeyDeletion (which
/// then keeps the expired material, see `tests/attack_review18c.rs`).
///
/// Expected (docs/key-model.md, "Exactly once": each rule is decided inside the
/// transaction as "a pure function of the key's facts, the request and the time", the
/// answer that counts being the transaction's; "States": "no key without material is
/// enabled", and expired material is material the key no longer has — "When the material
/// expires ... it is wiped and the key goes back to PendingImport"; review 17b's fix did
/// exactly this for the import token): an EnableKey decided after the expiry is refused
/// with `CKR_KMSHSM_INCORRECT_KEY_STATE` (the key is PendingImport), and the trail holds
/// no successful EnableKey after the expiry. Actual: `CKR_OK`, the record is Enabled,
/// and the trail says EnableKey Success.
#[test]
fn an_enable_key_decided_after_the_material_expired_is_written() {
    use crate::kms::audit::{Operation, Outcome};
    use crate::kms::key::KeyState;
    use crate::object::attr::{KEY_STATE, MATERIAL_EXPIRY};
    let dir = tempfile::tempdir().expect("temporary directory");
    let (token, clock, hooks) = token_on_a_fixed_clock(dir.path(), "review18c1");
    let start = clock.now();
    let expiry = start + 100;
    let prepared = PreparedImport::new(&token);
    let key = prepared.key;
    prepared
        .import(&token, &[ulong(MATERIAL_EXPIRY, expiry as u64)])
        .expect("ImportKeyMaterial with an expiry");
    token
        .set_attributes(CALLER, key, &[ulong(KEY_STATE, KeyState::Disabled.code())])
        .expect("DisableKey");

    // 10 s before the expiry the owner asks EnableKey; its transaction waits 20 s.
    clock.advance(90);
    let waiting = Arc::clone(&clock);
    hooks.arm(At::Transact, move || waiting.advance(20));
    let result = token.set_attributes(CALLER, key, &[ulong(KEY_STATE, KeyState::Enabled.code())]);
    assert_eq!(
        hooks.armed(),
        0,
        "the EnableKey reached its transaction (the clock was moved on there)"
    );
    assert!(clock.now() > expiry, "decided after the expiry");
    let trail = token.audit_trail().expect("the trail");
    let enabled_after_expiry: Vec<i64> = trail
        .entries
        .iter()
        .filter_map(|e| e.event.as_ref())
        .filter(|e| {
            e.event_name == Operation::EnableKey
                && e.outcome == Outcome::Success
                && e.event_time >= expiry
        })
        .map(|e| e.event_time)
        .collect();
    let record_state = token
        .objects
        .read()
        .get(key)
        .and_then(|e| e.object.ulong(KEY_STATE));
    assert!(
        matches!(
            result,
            Err(Error::Kms(crate::error::KmsError::IncorrectKeyState(_)))
        ),
        "an EnableKey decided 10 s after the material expired answered {:?}; the record \
         is now in state {record_state:?} (Enabled is {}), and the trail records EnableKey \
         Success at {enabled_after_expiry:?} (the material expired at {expiry})",
        result.as_ref().map(|_| "CKR_OK"),
        KeyState::Enabled.code()
    );
    assert!(enabled_after_expiry.is_empty());
}
