//! Review 22b: one PostgreSQL token shared by several hosts, attacked where a host's
//! cached view and the store's current records part.
//!
//! - A host's own commit whose read-back fails (a `DisableKey` committed, the read that
//!   should publish it refused by the server) leaves the host's object cache behind the
//!   store with nothing to bring it forward: the store's change check counts a handle's
//!   own commits as seen, so until another host writes, the host keeps using the key as
//!   Enabled, in either change-check mode, while every other host refuses it.
//!
//! Needs the PostgreSQL server binaries (`tests/common/pg.rs`).
//! Run with `cargo nextest run --test attack_review22b`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::time::Duration;

use common::kms::*;
use common::*;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;

/// The database `TestEnv::postgres` keeps its tokens in.
const DB: &str = "kmshsm";

/// How long the server lets one statement run before it cancels it: short, so that the
/// read blocked below fails quickly.
const STATEMENT_TIMEOUT_MS: u64 = 400;

/// A DisableKey committed by this host, whose read-back the server refused (another
/// session held a lock on `kmshsm_meta`, which only reads touch), must still stop the key
/// on this host once the store answers again: the store holds it Disabled and every
/// other host refuses it. Fails on the review's HEAD: this host keeps encrypting with
/// it, its cache saying Enabled, because its own commit counts as seen.
#[test]
fn a_disable_committed_here_whose_read_back_failed_still_stops_the_key_here() {
    let env = TestEnv::postgres_with(
        Options::default(),
        &format!("change_check = \"query\"\nstatement_timeout_ms = {STATEMENT_TIMEOUT_MS}"),
    );
    let pg = env.pg.as_ref().unwrap();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(true),
                Attribute::ValueLen(32.into()),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Label(b"review22b".to_vec()),
            ],
        )
        .unwrap();
    assert_eq!(state(&session, key), STATE_ENABLED);
    encrypt_with(&session, Spec::Aes256, key).expect("an Enabled key encrypts");

    // Another session of the database holds a lock that only this host's reads wait
    // for (a long report, a VACUUM FULL, an administrator's transaction...).
    let holder = {
        let pg_port = pg.port;
        std::thread::spawn(move || {
            std::process::Command::new(pg::bin("psql"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &pg_port.to_string(),
                    "-U",
                    pg::USER,
                    "-d",
                    DB,
                    "-At",
                    "-c",
                    "BEGIN; LOCK TABLE kmshsm_meta IN ACCESS EXCLUSIVE MODE; \
                     SELECT pg_sleep(3); COMMIT;",
                ])
                .output()
                .unwrap()
        })
    };
    assert!(
        pg::Cluster::wait_for(Duration::from_secs(10), || pg.sql(
            DB,
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
             WHERE c.relname = 'kmshsm_meta' AND l.mode = 'AccessExclusiveLock' AND l.granted"
        ) == "1"),
        "the lock was taken"
    );

    // DisableKey: decided and committed in its transaction, which touches no metadata;
    // the read that publishes it waits for the lock and is cancelled.
    let disabled = set_state(&session, key, STATE_DISABLED);
    let stored = pg.sql(
        DB,
        "SELECT count(*) FROM kmshsm_audit_events \
         WHERE convert_from(body, 'UTF8') LIKE '%DisableKey%'",
    );
    assert_eq!(
        stored, "1",
        "the DisableKey was committed (its call answered {disabled:?})"
    );
    assert!(disabled.is_err(), "its read-back was refused");
    let holder = holder.join().unwrap();
    assert!(holder.status.success(), "{holder:?}");

    // The store answers again, and holds the key Disabled (the committed record says
    // so: every other host reads it and refuses the key).
    // This host, asking the server at every call (`change_check = "query"`), must too.
    std::thread::sleep(Duration::from_millis(200));
    let here = encrypt_with(&session, Spec::Aes256, key);
    assert_eq!(
        rv(here),
        CKR_KMSHSM_INCORRECT_KEY_STATE,
        "this host keeps using the key it disabled (state as it sees it: {})",
        state(&session, key)
    );
}
