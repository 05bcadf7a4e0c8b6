//! An attacker's review (branch attack18e) of review 18d's fixes (aec6b79, 098bde4): a
//! state change decided after the material expired is judged on the key as the expiry
//! leaves it and, when allowed, wipes the material and records `KeyMaterialExpired`
//! before the change's own event (`kms::decide::as_at`, `kms::decide::change_state`,
//! `kms::model::KeyModel::change_state_judged`, `Decision::preceded_by`,
//! `token/kms/key_records.rs` `written`); the sweep of session keys keeps a key pending
//! deletion pending (`token/kms/mod.rs` `sweep`); the due index, version 2, and the
//! reindex on open. Each test reproduces one defect found by reading the code, asserts
//! what the project's documents promise, and fails against the module as it was
//! reviewed (098bde4). Its doc comment says what is wrong.
//!
//! Run with `cargo nextest run --test attack_review18e` (after `cargo build --lib`).

#![allow(clippy::unwrap_used, unreachable_pub, dead_code)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::kms::*;
use common::*;

/// The `KeyMaterialExpired` events of key `id` in the token's trail, as
/// `kmshsm audit list --json --key-id` gives them (each as its JSON line).
fn expiries_of(id: &str) -> Vec<String> {
    common::audit::events(&["--key-id", id])
        .into_iter()
        .filter(|e| e["EventName"] == "KeyMaterialExpired")
        .map(|e| e.to_string())
        .collect()
}

/// Defect: one expiry of one material is recorded as `KeyMaterialExpired` again and
/// again, once more at every CancelKeyDeletion of a key whose private half was
/// destroyed. `KeyModel::change_state_judged` asks `decide::as_at` whether the material
/// had expired by the time of the decision; `as_at` asks `decide::expire`, which takes a
/// PendingDeletion key as holding material whenever the token says `holds_material` —
/// and the token says it for every key whose main object is a public key
/// (`token/kms/key_records.rs` `current_of`: "A key whose private half was destroyed is
/// its public half ... judged as for a key with material"). So each CancelKeyDeletion of
/// such a key after the expiry is decided with `expired_first = true` and writes
/// `preceded_by: KeyMaterialExpired` before its `CancelKeyDeletion`, although the
/// material's expiry was recorded long before (here by the sweep, which wiped the
/// private half's material while the pair was pending deletion) and there is nothing
/// left to wipe. ScheduleKeyDeletion (from PendingImport, where `expire` says nothing)
/// and CancelKeyDeletion can be repeated, each round adding one more false
/// `KeyMaterialExpired` to the trail.
///
/// Expected (docs/audit.md: `KeyMaterialExpired` is recorded when "the sweep of a
/// logged-in application wipes material whose expiry passed ..., or a state change
/// decided after the expiry, before a sweep, wipes it in its own transaction";
/// docs/key-model.md: a change the expired key allows "wipes the material in the same
/// transaction, recorded as `KeyMaterialExpired` before the change's own event"): the
/// material expired once, was wiped once by the sweep, and the trail holds one
/// `KeyMaterialExpired` for the key. Actual: one more for every cancellation (4 after
/// three rounds).
#[test]
fn one_expiry_is_recorded_again_at_every_cancelled_deletion_of_a_public_only_key() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let key = create_external(&session, Spec::EcP256, "expiry-recorded-again");
    let id = key_id(&session, key);
    let material = work.material(Spec::EcP256);
    import_with(
        &session,
        &work,
        key,
        WRAP_RSA_AES_KEY_WRAP_SHA_256,
        &material.bytes,
        Some(system_now() + 100),
    )
    .expect("ImportKeyMaterial of an EC P-256 key, expiring 100 s ahead");
    let (private, public) = halves(&session, &id);
    set_state(&session, private, STATE_PENDING_DELETION).expect("ScheduleKeyDeletion");

    // The expiry passes; the logged-in application's next call sweeps: the private
    // half's material is wiped, the key stays PendingDeletion, one KeyMaterialExpired.
    set_clock_offset(200);
    let _ = session.find_objects(&[]).expect("C_FindObjects (sweeps)");
    let after_sweep = expiries_of(&id);
    assert_eq!(
        after_sweep.len(),
        1,
        "the sweep records the expiry of the key pending deletion once: {after_sweep:?}"
    );

    // The private half goes; the key is its public half, PendingDeletion.
    session
        .destroy_object(private)
        .expect("C_DestroyObject of the (wiped) private half");
    let mut rounds = Vec::new();
    for round in 0..3 {
        let cancelled = set_state(&session, public, STATE_DISABLED).map_err(|e| format!("{e}"));
        let state_after_cancel = state(&session, public);
        let scheduled = if round < 2 {
            set_state(&session, public, STATE_PENDING_DELETION).map_err(|e| format!("{e}"))
        } else {
            Ok(())
        };
        rounds.push((cancelled, state_after_cancel, scheduled));
    }
    let trail = expiries_of(&id);
    set_clock_offset(0);
    assert_eq!(
        trail.len(),
        1,
        "one material expired once (recorded by the sweep), yet the trail of key {id} holds \
         {} KeyMaterialExpired events after three CancelKeyDeletion rounds of its public \
         half ((cancel, state, schedule again) per round: {rounds:?}):\n{}",
        trail.len(),
        trail.join("\n")
    );
}
