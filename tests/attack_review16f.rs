//! An attacker's review (branch attack16f) of the audit trail's fixes of review 16e
//! (checkpoints under a MAC of their own; no sealing over a trail whose anchor is gone
//! while MACs remain) and of the separation-of-duties marker read at each judgement:
//! each test shows one defect and fails against the code it was written on (2fc3341).
//!
//! Needs `openssl` and, for the PostgreSQL variant, the PostgreSQL server binaries
//! (`tests/common/pg.rs`). Run with `cargo nextest run --test attack_review16f`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use cryptoki::session::UserType;
use rusqlite::Connection;
use serde_json::Value;

use common::audit::*;
use common::*;

/// A token whose trail has a dozen events written by a logged-in application (each
/// under a head MAC), then re-initialised by its SO (`C_InitToken` with the right SO
/// PIN) and given a user PIN again (`C_InitPIN`), as an SO does who suspects the
/// token. Answers the number of the last event before the re-initialisation.
fn reinitialised_token(env: &TestEnv) -> u64 {
    keyed_trail(env);
    let before = verify_ok();
    let old_head = before["HeadEventId"].as_u64().unwrap();
    assert!(old_head >= 10, "{old_head} events");
    assert_eq!(before["AuthenticatedThrough"], old_head);

    let ctx = env.load();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    ctx.init_token(slot, &pin(SO_PIN), TOKEN_LABEL).unwrap();
    let session = ctx.open_rw_session(slot).unwrap();
    session.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    session.init_pin(&pin(USER_PIN)).unwrap();
    session.logout().unwrap();
    drop(session);
    ctx.finalize().unwrap();

    let after = verify_ok();
    assert_eq!(after["HeadEventId"], old_head + 2, "{after}");
    assert_eq!(after["AuthenticatedThrough"], old_head + 2, "{after}");
    let all = events(&[]);
    assert_eq!(all[old_head as usize]["EventName"], "C_InitToken");
    assert_eq!(all[old_head as usize]["Outcome"], "Success");
    old_head
}

/// What `kmshsm audit verify` says after the cut: it must fail, and the trail must not
/// have been sealed over (its events read back as unauthenticated at most).
fn assert_cut_is_caught(old_head: u64) {
    let run = kmshsm(&["audit", "verify"]);
    let all = events(&[]);
    let names: Vec<&str> = all
        .iter()
        .map(|e| e["EventName"].as_str().unwrap_or("?"))
        .collect();
    assert!(
        !run.ok,
        "audit verify passed after a writer without a PIN deleted the re-initialisation's \
         events (C_InitToken, C_InitPIN: {} and {}) and the anchor; the trail now ends \
         {:?} and the login of `verify` sealed over the cut: {}",
        old_head + 1,
        old_head + 2,
        &names[names.len().saturating_sub(3)..],
        run.stdout
    );
    let out: Value = serde_json::from_str(&run.stderr).unwrap();
    assert_eq!(out["Code"], "AuditTrailBroken", "{out}");
}

/// After a re-initialisation, cutting off its own events and the anchor erases the
/// re-initialisation from the trail, and the next login seals over the cut (SQLite).
///
/// docs/audit.md promises that the trail survives `C_InitToken`, which "re-authenticates
/// it under the new one (the checkpoint's MAC, the anchor, and the head with the
/// `C_InitToken` event)", and that "the newest events cut off and the anchor deleted" is
/// detected, and not sealed over by a login ("the writer does not seal over a trail with
/// MACs and no anchor"). The limit it admits needs *every MAC stripped and the events
/// re-hashed*. But `Change::RekeyAudit` (src/store/sqlite/writes.rs, and
/// src/store/postgres/audit.rs) sets every event's MAC to NULL and re-authenticates the
/// history only through the one new head MAC, on the `C_InitToken` event (and then the
/// `C_InitPIN` one). A writer of the database file without any PIN deletes just those
/// newest events and the anchor, a plain cut: no MAC is left (`AuditHead::authenticated`
/// is false), so `verify` takes the history for one never authenticated and passes, and
/// the next login (here that of `kmshsm audit verify` itself, `seal_audit_head`) seals
/// the head under the new key: the re-initialisation, the one event an auditor most
/// needs, is gone without trace, and every older event reads as authenticated.
#[test]
fn cutting_a_reinitialisations_events_and_the_anchor_erases_it_undetected() {
    let env = TestEnv::new();
    let old_head = reinitialised_token(&env);
    // The attacker: no PIN, write access to the released database file.
    Connection::open(env.token_database())
        .unwrap()
        .execute_batch(&format!(
            "DELETE FROM audit_events WHERE seq > {old_head}; \
             UPDATE state SET anchor_seq = NULL, anchor_hash = NULL, anchor_mac = NULL \
               WHERE id = 1;"
        ))
        .unwrap();
    assert_cut_is_caught(old_head);
}

/// The same on PostgreSQL: after a re-initialisation, a writer of the `kmshsm_audit_*`
/// tables (no PIN) deletes the re-initialisation's events and the token's anchor row;
/// `kmshsm audit verify` passes and its login seals over the cut (docs/audit.md, as
/// above: `Change::RekeyAudit` in src/store/postgres/audit.rs sets every event's MAC
/// to NULL, so the new head MAC is the only one, and cutting it leaves a trail that
/// looks never authenticated).
#[test]
fn cutting_a_reinitialisations_events_and_the_anchor_erases_it_undetected_on_postgresql() {
    const DB: &str = "kmshsm";
    let env = TestEnv::postgres();
    let pg = env.pg.as_ref().unwrap();
    let old_head = reinitialised_token(&env);
    pg.sql(
        DB,
        &format!(
            "DELETE FROM kmshsm_audit_events WHERE seq > {old_head}; \
             DELETE FROM kmshsm_audit_anchor;"
        ),
    );
    assert_cut_is_caught(old_head);
}
