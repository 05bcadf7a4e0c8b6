//! An attacker's review (branch attack18e) of review 18d's fixes (aec6b79): a state
//! change decided after the material expired is judged on the key as the expiry leaves
//! it (`kms::decide::as_at`), the expiry wiped in the same transaction and recorded
//! first. A step armed before a transaction (`test_store::At::Transact`) that moves a
//! `FixedClock` on stands for the wait a real transaction can have before it decides,
//! as in `review18c_tests.rs`. Each test asserts what the project's documents promise,
//! so it fails against the module as reviewed (098bde4).

use std::sync::Arc;

use super::test_store::{token_on_a_fixed_clock, ulong, At, PreparedImport, CALLER};
use crate::kms::clock::Clock;

/// Defect: ImportKeyMaterial is the one decision on a key's record that is not judged on
/// the key as the expiry leaves it. `KeyModel::import_material` runs
/// `decide::import(&current.facts, ..)` on the record as it is, never through
/// `decide::as_at`; review 18d moved only `change_state` there. So an import of the same
/// material (with a later expiry) into a Disabled key whose previous material expired
/// while the import's transaction waited (here: DisableKey, then 10 s before the expiry
/// an import whose transaction waits 20 s) is decided on "Disabled, holding material":
/// the key stays Disabled, the expired material is overwritten without its expiry ever
/// being recorded, and the trail says nothing of it — as if the material had been in
/// force throughout. Had a sweep run first (or had the same import come a moment later),
/// the key would have been PendingImport, the trail would hold `KeyMaterialExpired`,
/// and the import would have made it Enabled: the outcome of one request depends on
/// whether a sweep happened to come before it.
///
/// Expected (docs/key-model.md, "Exactly once": a rule is decided inside the transaction
/// as a function of the key's facts, the request and the time; Material expiry: a
/// decision made "once the material has expired and before a sweep wiped it is judged
/// on the key as the expiry leaves it", PendingImport, which `Token::state_now` already
/// reports; States: "PendingImport ◄── material expired", and an import into
/// PendingImport makes the key Enabled; docs/audit.md: `KeyMaterialExpired` is recorded
/// when the expired material is wiped by the sweep or by a decision made after the
/// expiry): the trail holds `KeyMaterialExpired` for the key, recorded before the
/// import's `ImportKeyMaterial`, and the key is Enabled as after any import into a
/// PendingImport key. Actual: no `KeyMaterialExpired`, and the key is Disabled.
#[test]
fn an_import_decided_after_the_material_expired_is_not_judged_on_the_expired_key() {
    use crate::kms::audit::{Operation, Outcome};
    use crate::kms::key::KeyState;
    use crate::object::attr::{KEY_STATE, MATERIAL_EXPIRY};
    let dir = tempfile::tempdir().expect("temporary directory");
    let (token, clock, hooks) = token_on_a_fixed_clock(dir.path(), "review18e1");
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

    // 10 s before the expiry the owner imports the same material again, to expire
    // later; its transaction waits 20 s.
    clock.advance(90);
    let waiting = Arc::clone(&clock);
    hooks.arm(At::Transact, move || waiting.advance(20));
    let imported = prepared
        .import(&token, &[ulong(MATERIAL_EXPIRY, (start + 10_000) as u64)])
        .map(|_| ());
    assert_eq!(
        hooks.armed(),
        0,
        "the import reached its transaction (the clock was moved on there)"
    );
    assert!(clock.now() > expiry, "decided after the expiry");
    assert!(
        imported.is_ok(),
        "the import itself is accepted: {imported:?}"
    );

    let trail = token.audit_trail().expect("the trail");
    let events: Vec<(Operation, Outcome, i64)> = trail
        .entries
        .iter()
        .filter_map(|e| e.event.as_ref())
        .map(|e| (e.event_name, e.outcome, e.event_time))
        .collect();
    let expired_at = events
        .iter()
        .position(|(op, _, _)| *op == Operation::KeyMaterialExpired);
    let reimported_at = events.iter().rposition(|(op, outcome, _)| {
        *op == Operation::ImportKeyMaterial && *outcome == Outcome::Success
    });
    let state = token
        .objects
        .read()
        .get(key)
        .and_then(|e| e.object.ulong(KEY_STATE));
    assert!(
        matches!((expired_at, reimported_at), (Some(e), Some(i)) if e < i),
        "the material expired at {expiry} and the import was decided at {}, yet the trail \
         records no KeyMaterialExpired before the import (the key ends in state {state:?}; \
         Enabled {}, Disabled {}): {events:?}",
        clock.now(),
        KeyState::Enabled.code(),
        KeyState::Disabled.code()
    );
    assert_eq!(
        state,
        Some(KeyState::Enabled.code()),
        "an import into the key as the expiry left it (PendingImport) enables it"
    );
}
