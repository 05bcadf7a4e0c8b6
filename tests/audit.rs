//! The audit trail (docs/audit.md), end to end: every event type is recorded with its
//! outcome (refusals included) and read back with `kmshsm audit list --json`; the trail
//! verifies; cryptography writes no event; nothing secret is in it; deleting, editing
//! (with and without re-hashing), reordering and truncating events with rusqlite while
//! no process holds the token is caught by `kmshsm audit verify`, which names the first
//! bad event; pruning leaves a checkpoint the trail still verifies from.
//! Needs `openssl`. Run with `cargo nextest run --test audit`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use cryptoki::session::UserType;
use rusqlite::Connection;
use serde_json::Value;
use std::path::Path;

use common::audit::*;
use common::kms::*;
use common::*;

fn event_count(db: &Path) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row("SELECT count(*) FROM audit_events", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn every_lifecycle_and_custody_event_is_recorded_with_its_outcome() {
    let env = TestEnv::new();
    every_event_is_recorded(&env, &|| event_count(&env.token_database()));
}

#[test]
fn the_trail_survives_reinitialisation_and_verifies_under_the_new_key() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = user_session(&ctx, slot);
    create_external(&session, Spec::Aes256, "before");
    drop(session);
    assert!(ctx
        .init_token(slot, &pin("wrong-so-pin"), TOKEN_LABEL)
        .is_err());
    ctx.init_token(slot, &pin(SO_PIN), TOKEN_LABEL).unwrap();
    let session = ctx.open_rw_session(slot).unwrap();
    session.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    session.init_pin(&pin(USER_PIN)).unwrap();
    drop(session);
    ctx.finalize().unwrap();

    let all = events(&[]);
    let names: Vec<&str> = all
        .iter()
        .map(|e| e["EventName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "C_InitToken",
            "C_InitPIN",
            "CreateKey",
            "C_InitToken",
            "C_InitToken",
            "C_InitPIN"
        ]
    );
    assert_eq!(all[3]["Outcome"], "Refused", "the wrong SO PIN");
    assert_eq!(all[3]["Role"], "SO");
    assert_eq!(all[4]["Outcome"], "Success");
    assert_eq!(verify_ok()["AuthenticatedThrough"], 6);
}

/// Runs `sql` on the released database, then `audit verify`; answers its message.
fn tampered(db: &Path, pristine: &Path, sql: &str) -> String {
    std::fs::copy(pristine, db).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    Connection::open(db).unwrap().execute_batch(sql).unwrap();
    let run = kmshsm(&["audit", "verify"]);
    assert!(!run.ok, "audit verify passed after: {sql}");
    let out: Value = serde_json::from_str(&run.stderr).unwrap();
    assert_eq!(out["Code"], "AuditTrailBroken", "{out}");
    out["Message"].as_str().unwrap().to_owned()
}

#[test]
fn deleting_editing_reordering_or_truncating_events_is_caught_and_named() {
    use kmshsm::store::audit::link;
    let env = TestEnv::new();
    let db = audited_token(&env);
    let head = verify_ok()["HeadEventId"].as_u64().unwrap();
    assert!(head >= 10, "{head} events");
    let pristine = env.dir.path().join("pristine.db");
    std::fs::copy(&db, &pristine).unwrap();
    let named = |msg: String, n: u64| {
        assert!(
            msg.starts_with(&format!("first bad event: {n}")),
            "expected event {n}: {msg}"
        )
    };

    named(
        tampered(&db, &pristine, "DELETE FROM audit_events WHERE seq = 5"),
        5,
    );
    named(
        tampered(
            &db,
            &pristine,
            "UPDATE audit_events SET body = CAST(replace(CAST(body AS TEXT), 'DisableKey', \
             'EnableKey') AS BLOB) WHERE seq = 6",
        ),
        6,
    );
    // Event 5 moved to 6 and 6 to 5, each row whole (body, hash and MAC).
    named(
        tampered(
            &db,
            &pristine,
            "UPDATE audit_events SET seq = -1 WHERE seq = 5; \
             UPDATE audit_events SET seq = 5 WHERE seq = 6; \
             UPDATE audit_events SET seq = 6 WHERE seq = -1;",
        ),
        5,
    );
    named(
        tampered(
            &db,
            &pristine,
            &format!("DELETE FROM audit_events WHERE seq > {}", head - 3),
        ),
        head - 2,
    );
    named(
        tampered(
            &db,
            &pristine,
            &format!(
                "DELETE FROM audit_events WHERE seq > {}; \
                 UPDATE state SET anchor_seq = NULL, anchor_hash = NULL, anchor_mac = NULL;",
                head - 3
            ),
        ),
        head - 2,
    );

    // An edit with every later hash recomputed: the MACs catch it.
    std::fs::copy(&pristine, &db).unwrap();
    let conn = Connection::open(&db).unwrap();
    let rows: Vec<(i64, Vec<u8>, Vec<u8>)> = conn
        .prepare("SELECT seq, body, hash FROM audit_events ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut prev: [u8; 32] = rows[5].2.clone().try_into().unwrap();
    for (seq, body, _) in &rows[6..] {
        let mut body = body.clone();
        if *seq == 7 {
            // Still valid JSON, saying the same: only the bytes differ.
            body.push(b' ');
        }
        prev = link(&prev, *seq as u64, &body);
        conn.execute(
            "UPDATE audit_events SET body = ?2, hash = ?3 WHERE seq = ?1",
            rusqlite::params![seq, body, &prev[..]],
        )
        .unwrap();
    }
    drop(conn);
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let run = kmshsm(&["audit", "verify"]);
    assert!(!run.ok);
    let out: Value = serde_json::from_str(&run.stderr).unwrap();
    named(out["Message"].as_str().unwrap().to_owned(), 7);

    // The untouched copy still verifies.
    std::fs::copy(&pristine, &db).unwrap();
    verify_ok();
}

#[test]
fn pruning_leaves_a_checkpoint_the_trail_verifies_from() {
    let env = TestEnv::new();
    audited_token(&env);
    let head = verify_ok()["HeadEventId"].as_u64().unwrap();
    set_clock_offset(3 * 86_400);
    let pruned = kmshsm(&["audit", "prune", "--older-than-days", "1"]);
    assert!(pruned.ok, "{}", pruned.stderr);
    let out: Value = serde_json::from_str(&pruned.stdout).unwrap();
    assert_eq!(out["CheckpointEventId"], head);
    // New events chain from the checkpoint.
    let ctx = env.load();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let session = user_session(&ctx, slot);
    create_external(&session, Spec::Aes256, "after");
    drop(session);
    ctx.finalize().unwrap();
    let all = events(&[]);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["EventId"], head + 1);
    let v = verify_ok();
    assert_eq!(v["CheckpointEventId"], head);
    assert_eq!(v["FirstEventId"], head + 1);
}
