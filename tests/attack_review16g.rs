//! An attacker's review (branch attack16g) of the audit trail's fixes of reviews 16e and
//! 16f (checkpoints under a MAC of their own; no sealing over a trail with MACs and no
//! anchor; `C_InitToken` also sealing the oldest event kept): each test shows one defect
//! and fails against the code it was written on (2a8dfb0).
//!
//! Run with `cargo nextest run --test attack_review16g` (after `cargo build --lib --bins`).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use rusqlite::Connection;

use common::audit::*;
use common::kms::*;
use common::*;

/// Refused state changes of a logged-in application: each is recorded under a head MAC
/// and moves the anchor.
fn keyed_writes(env: &TestEnv, first: bool, rounds: usize) {
    let ctx = env.load();
    let slot = if first {
        init_token(&ctx)
    } else {
        slot_of_token(&ctx, TOKEN_LABEL)
    };
    let session = user_session(&ctx, slot);
    let key = create_external(&session, Spec::Aes256, "k");
    for _ in 0..rounds {
        let _ = set_state(&session, key, STATE_DISABLED);
        let _ = set_state(&session, key, STATE_ENABLED);
    }
    drop(session);
    ctx.finalize().unwrap();
}

/// An earlier anchor, kept by the attacker, hides every event written after it: the
/// anchor has no freshness, so it can be put back (SQLite).
///
/// docs/audit.md: "the newest events cut off, anchor left | yes (the anchor points past
/// the end)", "the newest events cut off and the anchor deleted | yes, while any MAC
/// remains". The anchor is meant to be the newest authenticated head, but nothing ties
/// it to the head it replaced: a writer of the database file who copied the state row's
/// anchor columns once (no PIN needed) later deletes every event after that anchor and
/// writes the old anchor back. `verify` (`store::audit::verify`) finds an authentic
/// anchor at the newest MAC kept and passes; `AuditKey::anchor_sound` finds it sound, so
/// the next login seals over the cut. This is less than a rollback of the database: the
/// objects and PINs keep their current state while their events are gone.
#[test]
#[ignore = "a known limit (docs/audit.md, \"What is detected\"): the trail's anchor rolled back to an earlier copy is not detected; fails as written, run with --ignored"]
fn an_earlier_anchor_written_back_hides_the_events_after_it() {
    let env = TestEnv::new();
    keyed_writes(&env, true, 2);
    let before = verify_ok();
    let cut_at = before["HeadEventId"].as_u64().unwrap();
    let db = env.token_database();
    // The attacker copies the anchor (no PIN: three columns of the state row).
    let saved: (i64, Vec<u8>, Vec<u8>) = Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT anchor_seq, anchor_hash, anchor_mac FROM state WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(saved.0 as u64, cut_at);
    // The token's users go on: a new key and more state changes, all authenticated.
    keyed_writes(&env, false, 2);
    let later = verify_ok();
    assert!(
        later["HeadEventId"].as_u64().unwrap() > cut_at + 3,
        "{later}"
    );
    // The attacker: every event after the saved anchor deleted, the anchor put back.
    let attacker = Connection::open(&db).unwrap();
    attacker
        .execute(
            &format!("DELETE FROM audit_events WHERE seq > {cut_at}"),
            [],
        )
        .unwrap();
    attacker
        .execute(
            "UPDATE state SET anchor_seq = ?1, anchor_hash = ?2, anchor_mac = ?3 WHERE id = 1",
            rusqlite::params![saved.0, saved.1, saved.2],
        )
        .unwrap();
    drop(attacker);
    let run = kmshsm(&["audit", "verify"]);
    assert!(
        !run.ok,
        "audit verify passed after the events after {cut_at} were deleted and an earlier \
         anchor written back: {}",
        run.stdout
    );
}
