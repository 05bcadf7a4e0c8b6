//! An attacker's review (branch attack18b) of the PostgreSQL store when things go wrong:
//! connections the server ends, locks held elsewhere, notifications lost or forged. Each
//! test shows one defect and fails against the code it was written on.
//!
//! Needs the PostgreSQL server binaries (`tests/common/pg.rs`; missing ones fail the
//! test with the install hint, nothing is skipped).
//! Run with `cargo nextest run --test attack_review18b`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::time::Duration;

use common::*;
use cryptoki::object::Attribute;
use cryptoki::session::UserType;

/// The module's connections, as the server sees them.
fn module_backends(env: &TestEnv) -> u32 {
    env.pg
        .as_ref()
        .unwrap()
        .sql(
            "kmshsm",
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'kmshsm'",
        )
        .parse()
        .unwrap()
}

/// A connection the server ended for being idle (`idle_session_timeout`, SQLSTATE
/// 57P05) is not replaced: the first call after every idle period fails with
/// `CKR_DEVICE_ERROR` although the server is up and answering.
///
/// docs/architecture.md ("Connections"): "A connection found closed, or failing with a
/// connection error before anything could have been committed (the server rolls back
/// what it had begun), is replaced and the call's work done once more on the new one";
/// docs/deployment.md: store failures are for a server "stopped, restarting, frozen or
/// unreachable". `idle_session_timeout` (PostgreSQL 14+) is an ordinary server or role
/// setting, and managed services and DBAs set it to shed idle clients; a host whose
/// application is quiet for that long has all its token connections ended.
///
/// The attack/condition: the server ends an idle session by sending a FATAL error and
/// closing. The client's connection task runs only inside calls, so the module does not
/// see it until its next request, and then that FATAL arrives as the answer to the
/// request: a `tokio_postgres` database error with code 57P05. `conn::connection_lost`
/// counts as lost only class 08 and 57P01/57P02/57P03 (admin/crash shutdown, cannot
/// connect now), so `PgStore::run` takes 57P05 for a statement the server refused on a
/// sound connection: no retry, `StoreError::Server`, `CKR_DEVICE_ERROR` to the caller.
/// (The same goes for 25P03, `idle_in_transaction_session_timeout`, which the module
/// sets on its own sessions.) The server here is never down.
#[test]
fn a_connection_the_server_ended_for_idleness_fails_the_next_call_instead_of_being_replaced() {
    let env = TestEnv::postgres();
    let cluster = env.pg.as_ref().unwrap();
    cluster.sql(
        "kmshsm",
        "ALTER ROLE kmshsm SET idle_session_timeout = '1500ms'",
    );
    let (ctx, _slot, session) = ready_token(&env);
    session
        .create_object(&data_template("before", b"v", true))
        .unwrap();
    let idle = || {
        std::thread::sleep(Duration::from_millis(3500));
        // The server has ended every idle connection of the module (its log says
        // "terminating connection due to idle-session timeout").
        assert_eq!(
            module_backends(&env),
            0,
            "the server ended the idle sessions"
        );
    };

    idle();
    let found = session.find_objects(&[Attribute::Label(b"before".to_vec())]);
    idle();
    let created = session.create_object(&data_template("after", b"v", true));
    session.logout().unwrap();
    idle();
    let login = session.login(UserType::User, Some(&pin(USER_PIN)));

    assert_eq!(
        (
            found.as_ref().map(Vec::len).map_err(|e| e.to_string()),
            created.as_ref().map(|_| ()).map_err(|e| e.to_string()),
            login.as_ref().map_err(|e| e.to_string()).copied(),
        ),
        (Ok(1), Ok(()), Ok(())),
        "C_FindObjectsInit, C_CreateObject and C_Login, each the first call after the \
         server ended the module's idle connections, must connect again and succeed: \
         nothing is wrong with the server"
    );
    drop(ctx);
}
