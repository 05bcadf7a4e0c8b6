//! An attacker's review (branch attack16e) of the audit trail (docs/audit.md) and of the
//! PostgreSQL store shared by many hosts: each test shows one defect and fails against
//! the code it was written on.
//!
//! Needs `openssl` and the PostgreSQL server binaries (`tests/common/pg.rs`).
//! Run with `cargo nextest run --test attack_review16e`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use rusqlite::Connection;
use serde_json::Value;

use common::audit::*;
use common::kms::*;
use common::*;

/// The oldest events of the trail can be deleted without `kmshsm audit verify` noticing.
///
/// docs/audit.md promises that someone with write access to the database but no PIN
/// cannot alter the trail undetected: events deleted are caught, and "a checkpoint
/// edited or forged" is detected. But the checkpoint's MAC is a *head* MAC
/// (`store::audit::head_mac`, label `"kmshsm audit head v1"`), the very MAC every
/// logged-in write stores beside its event. The anchor got a label of its own because
/// "a head MAC copied from a row is not one"; the checkpoint did not. So the writer copies
/// any sealed event's (seq, hash, mac) into `audit_checkpoint` and deletes every event up
/// to it: `verify` (`store::audit::verify`) accepts the checkpoint as an authentic prune
/// and the trail, now missing its C_InitToken, CreateKey and every state change but the
/// last, verifies as intact. Nothing tells this forged "prune" from a real one (which
/// `kmshsm audit prune` makes only of events older than the retention, after verifying).
#[test]
fn a_checkpoint_forged_from_an_events_head_mac_hides_the_oldest_events() {
    let env = TestEnv::new();
    let db = audited_token(&env);
    let before = verify_ok();
    let head = before["HeadEventId"].as_u64().unwrap();
    assert!(head >= 10, "{head} events");
    assert_eq!(before["UnauthenticatedEvents"], 0);
    assert_eq!(before["CheckpointEventId"], Value::Null);
    let first_events = events(&[]);
    assert_eq!(first_events[0]["EventName"], "C_InitToken");

    // The attacker: no PIN, only write access to the released database file.
    let cut = head - 1;
    Connection::open(&db)
        .unwrap()
        .execute_batch(&format!(
            "INSERT OR REPLACE INTO audit_checkpoint (id, seq, hash, mac) \
               SELECT 1, seq, hash, mac FROM audit_events WHERE seq = {cut}; \
             DELETE FROM audit_events WHERE seq <= {cut};"
        ))
        .unwrap();

    let left = kmshsm(&["audit", "list", "--json"]);
    let remaining = left.stdout.lines().count();
    let run = kmshsm(&["audit", "verify"]);
    assert!(
        !run.ok,
        "audit verify passed on a trail whose first {cut} events (of {head}) were deleted \
         by a writer without a PIN, {remaining} left: {}",
        run.stdout
    );
    let out: Value = serde_json::from_str(&run.stderr).unwrap();
    assert_eq!(out["Code"], "AuditTrailBroken", "{out}");
}

/// A trail cut short, with its anchor deleted, is sealed over by the next logged-in
/// write, and then verifies: the cut is laundered.
///
/// docs/audit.md: "the newest events cut off and the anchor deleted | yes, while any MAC
/// remains", and "A writer seals only over a sound anchor (authentic, and its event
/// still stored with its hash): a trail that was cut short or whose anchor was moved is
/// left for `verify` to report, never sealed over." But `AuditKey::anchor_sound`
/// (src/store/audit.rs) answers "sound" when there is no anchor at all, even though the
/// events kept carry head MACs (`verify` itself calls that "the anchor is gone"). So
/// after a writer of the PostgreSQL database (no PIN) deletes the newest events and the
/// token's `kmshsm_audit_anchor` row, the very next keyed append (here a refused
/// DisableKey of a logged-in application, on another process) chains its event onto the
/// cut trail, reusing the deleted events' numbers, and sets a fresh anchor under the
/// audit key: `kmshsm audit verify`, which failed right after the cut, now passes, and
/// the deleted events are gone without trace.
#[test]
fn a_trail_cut_short_with_its_anchor_deleted_is_sealed_over_by_the_next_write_on_postgresql() {
    const DB: &str = "kmshsm";
    let env = TestEnv::postgres();
    let pg = env.pg.as_ref().unwrap();
    keyed_trail(&env);
    let head = verify_ok()["HeadEventId"].as_u64().unwrap();
    assert!(head >= 10, "{head} events");

    // The attacker: SQL on the audit tables, no PIN. The newest three events go, and the
    // anchor that would tell.
    let kept = head - 3;
    pg.sql(
        DB,
        &format!(
            "DELETE FROM kmshsm_audit_events WHERE seq > {kept}; \
             DELETE FROM kmshsm_audit_anchor;"
        ),
    );
    let run = kmshsm(&["audit", "verify"]);
    assert!(!run.ok, "the cut is caught at first: {}", run.stdout);

    // The owner's application goes on: one more (refused, so recorded) state change.
    let ctx = env.load();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let session = user_session(&ctx, slot);
    let key = find_by_label(&session, "k")[0];
    let _ = set_state(&session, key, STATE_DISABLED);
    drop(session);
    ctx.finalize().unwrap();

    let all = events(&[]);
    let run = kmshsm(&["audit", "verify"]);
    assert!(
        !run.ok,
        "audit verify passed after events {} to {head} were deleted with the anchor: the \
         next write sealed over the cut ({} events now, the newest numbered {}): {}",
        kept + 1,
        all.len(),
        all.last().unwrap()["EventId"],
        run.stdout
    );
    let out: Value = serde_json::from_str(&run.stderr).unwrap();
    assert_eq!(out["Code"], "AuditTrailBroken", "{out}");
}
