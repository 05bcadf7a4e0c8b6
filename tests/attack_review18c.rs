//! An attacker's review (branch attack18c) of the fixes made after 42504f8 (the origin a
//! derived key is given, the wrap refusal for keys whose material expires, the
//! state-change refusal named after the record decided on) and of the material expiry
//! across the key lifecycle (docs/key-model.md: "When the material expires ... it is
//! wiped"). Each test reproduces one defect found by reading the code, asserts what
//! the project's documents promise, and fails against the module as it was reviewed
//! (a9a7e16). Its doc comment says what is wrong. What was checked and held is in the
//! review's report, not here.
//!
//! Run with `cargo nextest run --test attack_review18c` (after `cargo build --lib`).

#![allow(clippy::unwrap_used, unreachable_pub, dead_code)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::kms::*;
use common::raw::Raw;
use common::*;
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;

/// The stored size of `object` (`C_GetObjectSize`: the size of its record), which drops
/// when its material is wiped.
fn stored_size(session: &Session, object: ObjectHandle) -> u64 {
    Raw::load()
        .object_size(session.handle(), object.handle())
        .expect("C_GetObjectSize")
}

/// Imported material outlives its expiry while its key waits for deletion. The sweep
/// (`token/kms/mod.rs` `sweep`, `kms::decide::expire`) and the store's due index
/// (`object::index::deadline_of`) only consider "live" keys, Enabled or Disabled; a key
/// in PendingDeletion is skipped, and `kms::lifecycle::transition` refuses
/// `MaterialExpired` there. So material imported with an expiry into a key whose deletion
/// is then scheduled (ScheduleKeyDeletion keeps the material, docs/key-model.md) stays
/// in the token's record after the expiry passes, however many sweeps run: the record's
/// size does not drop and no `KeyMaterialExpired` event is written. ScheduleKeyDeletion
/// deletes nothing by itself ("kmshsm deletes no key by itself", docs/cli.md), so the
/// material is kept for as long as nobody destroys the objects; if the deletion is then
/// cancelled, the trail says the material expired only then, after a successful
/// CancelKeyDeletion (which returned the key to Disabled, "holding material").
///
/// Expected (docs/key-model.md, "The rules, each enforced": "When the material expires,
/// or is deleted, it is wiped"; docs/audit.md: `KeyMaterialExpired` is recorded when "the
/// sweep of a logged-in application wipes material whose expiry passed"; docs/security.md:
/// "Expired material is wiped by a logged-in process ... each login sweeps"): once the
/// expiry has passed, the next sweep of a logged-in application wipes the material (the
/// key may well stay PendingDeletion) and records `KeyMaterialExpired`. Actual: the
/// material is still stored and nothing is recorded until the deletion is cancelled.
#[test]
fn material_of_a_key_pending_deletion_is_wiped_when_it_expires() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let key = create_external(&session, Spec::Aes256, "expires-while-pending-deletion");
    let id = key_id(&session, key);
    let without_material = stored_size(&session, key);
    let material = work.material(Spec::Aes256);
    import_with(
        &session,
        &work,
        key,
        WRAP_RSAES_OAEP_SHA_256,
        &material.bytes,
        Some(system_now() + 100),
    )
    .expect("ImportKeyMaterial with an expiry 100 s ahead");
    set_state(&session, key, STATE_PENDING_DELETION).expect("ScheduleKeyDeletion");
    let holding = stored_size(&session, key);
    assert!(
        holding > without_material,
        "the record holding material ({holding} bytes) is larger than the one awaiting it \
         ({without_material} bytes)"
    );

    // The expiry passes; a logged-in application's calls sweep (docs/key-model.md, Time).
    set_clock_offset(200);
    let _ = session.find_objects(&[]).expect("C_FindObjects (sweeps)");
    let after = stored_size(&session, key);
    let trail = common::audit::events(&["--key-id", &id]);
    set_clock_offset(0);
    let expired_events = trail
        .iter()
        .filter(|e| e["EventName"] == "KeyMaterialExpired")
        .count();
    assert_eq!(
        expired_events, 1,
        "100 s after the material of a key pending deletion expired, the trail holds {} \
         KeyMaterialExpired events for it",
        expired_events
    );
    assert!(
        after < holding,
        "100 s after its expiry, the key's record still holds the material ({after} bytes, \
         as before the expiry)"
    );
}
