//! The audit trail on a PostgreSQL token (docs/audit.md): every event type is recorded
//! with its outcome (refusals included) in the transaction of its change, cryptography
//! writes none, and the trail verifies; deleting, editing (with and without re-hashing),
//! reordering and truncating events with SQL on the `kmshsm_audit_*` tables is caught by
//! `kmshsm audit verify`, which names the first bad event. Needs `openssl` and the
//! PostgreSQL server binaries (`tests/common/pg.rs`).
//! Run with `cargo nextest run --test audit_postgres`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use serde_json::Value;

use common::audit::*;
use common::*;

/// The database `TestEnv::postgres` keeps its tokens in.
const DB: &str = "kmshsm";

fn cluster(env: &TestEnv) -> &pg::Cluster {
    env.pg.as_ref().expect("a PostgreSQL environment")
}

#[test]
fn every_lifecycle_and_custody_event_is_recorded_with_its_outcome_on_postgresql() {
    let env = TestEnv::postgres();
    every_event_is_recorded(&env, &|| {
        cluster(&env)
            .sql(DB, "SELECT count(*) FROM kmshsm_audit_events")
            .parse()
            .unwrap()
    });
}

/// Puts the trail back as it was before any tampering (`pristine_*`, copied by the test).
const RESTORE: &str = "DELETE FROM kmshsm_audit_events; DELETE FROM kmshsm_audit_anchor; \
                       INSERT INTO kmshsm_audit_events SELECT * FROM pristine_events; \
                       INSERT INTO kmshsm_audit_anchor SELECT * FROM pristine_anchor;";

/// `audit verify` after `sql` ran on the tables (restored from the pristine copies
/// first); answers the message naming the first bad event.
fn tampered(env: &TestEnv, sql: &str) -> String {
    cluster(env).sql(DB, &format!("{RESTORE} {sql}"));
    let run = kmshsm(&["audit", "verify"]);
    assert!(!run.ok, "audit verify passed after: {sql}");
    let out: Value = serde_json::from_str(&run.stderr).unwrap();
    assert_eq!(out["Code"], "AuditTrailBroken", "{out}");
    out["Message"].as_str().unwrap().to_owned()
}

#[test]
fn tampering_with_the_postgresql_tables_is_caught_and_named() {
    use kmshsm::store::audit::link;
    let env = TestEnv::postgres();
    keyed_trail(&env);
    let head = verify_ok()["HeadEventId"].as_u64().unwrap();
    assert!(head >= 10, "{head} events");
    let pg = cluster(&env);
    pg.sql(
        DB,
        "CREATE TABLE pristine_events AS SELECT * FROM kmshsm_audit_events; \
         CREATE TABLE pristine_anchor AS SELECT * FROM kmshsm_audit_anchor;",
    );
    let named = |msg: String, n: u64| {
        assert!(
            msg.starts_with(&format!("first bad event: {n}")),
            "expected event {n}: {msg}"
        )
    };

    named(
        tampered(&env, "DELETE FROM kmshsm_audit_events WHERE seq = 5"),
        5,
    );
    named(
        tampered(
            &env,
            "UPDATE kmshsm_audit_events SET body = convert_to(replace(convert_from(body, \
             'UTF8'), 'DisableKey', 'EnableKey'), 'UTF8') WHERE seq = 6",
        ),
        6,
    );
    // Event 5 moved to 6 and 6 to 5, each row whole (body, hash and MAC).
    named(
        tampered(
            &env,
            "UPDATE kmshsm_audit_events SET seq = -1 WHERE seq = 5; \
             UPDATE kmshsm_audit_events SET seq = 5 WHERE seq = 6; \
             UPDATE kmshsm_audit_events SET seq = 6 WHERE seq = -1;",
        ),
        5,
    );
    named(
        tampered(
            &env,
            &format!("DELETE FROM kmshsm_audit_events WHERE seq > {}", head - 3),
        ),
        head - 2,
    );
    named(
        tampered(
            &env,
            &format!(
                "DELETE FROM kmshsm_audit_events WHERE seq > {}; DELETE FROM kmshsm_audit_anchor;",
                head - 3
            ),
        ),
        head - 2,
    );
    // A MAC edited.
    named(
        tampered(
            &env,
            "UPDATE kmshsm_audit_events SET mac = sha256(mac) WHERE seq = 4",
        ),
        4,
    );

    // An edit with every later hash recomputed: the MACs catch it.
    pg.sql(DB, RESTORE);
    let rows: Vec<(u64, Vec<u8>, Vec<u8>)> = pg
        .sql(
            DB,
            "SELECT seq, encode(body, 'hex'), encode(hash, 'hex') FROM kmshsm_audit_events \
             ORDER BY seq",
        )
        .lines()
        .map(|l| {
            let cols: Vec<&str> = l.split('|').collect();
            (cols[0].parse().unwrap(), hex(cols[1]), hex(cols[2]))
        })
        .collect();
    let mut prev: [u8; 32] = rows[5].2.clone().try_into().unwrap();
    let mut sql = String::new();
    for (seq, body, _) in &rows[6..] {
        let mut body = body.clone();
        if *seq == 7 {
            // Still valid JSON, saying the same: only the bytes differ.
            body.push(b' ');
        }
        prev = link(&prev, *seq, &body);
        sql.push_str(&format!(
            "UPDATE kmshsm_audit_events SET body = '\\x{}', hash = '\\x{}' WHERE seq = {seq};",
            to_hex(&body),
            to_hex(&prev)
        ));
    }
    pg.sql(DB, &sql);
    let run = kmshsm(&["audit", "verify"]);
    assert!(!run.ok, "re-hashed events verified");
    let out: Value = serde_json::from_str(&run.stderr).unwrap();
    named(out["Message"].as_str().unwrap().to_owned(), 7);

    // Restored, the trail verifies again.
    pg.sql(DB, RESTORE);
    assert_eq!(verify_ok()["HeadEventId"], head);
}
