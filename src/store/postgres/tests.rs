//! The PostgreSQL store against a private server (`tests/common/pg.rs`): the store
//! contract, races across handles, change detection, and the server going away.

#[path = "../../../tests/common/pg.rs"]
#[allow(unreachable_pub)] // the integration tests' helper, shared as it is
mod pg;

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::config::{ChangeCheck, PostgresConfig, StoreUrl};
use crate::store::ObjectRecord;

fn settings(url: &str, check: ChangeCheck, interval_ms: u64) -> Arc<PgSettings> {
    let options = PostgresConfig {
        change_check: check,
        check_interval_ms: interval_ms,
        connect_timeout_ms: 2_000,
        statement_timeout_ms: 5_000,
        network_timeout_ms: 5_000,
        ..PostgresConfig::default()
    };
    Arc::new(PgSettings::new(&StoreUrl::new(url), &options).unwrap())
}

fn pair(s: &Arc<PgSettings>, serial: &str) -> (PgStore, PgStore) {
    let first = PgStore::create(Arc::clone(s), serial, vec![]).unwrap();
    let second = PgStore::open(Arc::clone(s), serial).unwrap();
    (first, second)
}

#[test]
fn postgres_store_meets_the_store_contract_in_both_change_check_modes() {
    let cluster = pg::Cluster::start();
    let url = cluster.database("contract");
    // A round trip per call: exact.
    let (first, second) = pair(&settings(&url, ChangeCheck::Query, 100), "query");
    crate::store::contract::run(&first, &second);
    // Notifications, and a round trip whenever none came (interval 0): exact too.
    let (first, second) = pair(&settings(&url, ChangeCheck::Notify, 0), "notify");
    crate::store::contract::run(&first, &second);
}

#[test]
fn postgres_store_keeps_the_audit_trail_contract() {
    let cluster = pg::Cluster::start();
    let url = cluster.database("audit");
    let (first, second) = pair(&settings(&url, ChangeCheck::Notify, 0), "audit");
    crate::store::contract::audit(&first, &second);
    let restored =
        PgStore::create(settings(&url, ChangeCheck::Query, 100), "restored", vec![]).unwrap();
    crate::store::contract::audit_restore(&restored);
}

#[test]
fn racing_decisions_on_one_record_have_one_winner_across_connections() {
    let cluster = pg::Cluster::start();
    let s = settings(&cluster.database("race"), ChangeCheck::Notify, 100);
    let (first, second) = pair(&s, "race");
    crate::store::contract::race(&[&first, &second], 4, 30);
}

#[test]
fn tokens_share_a_database_and_serials_are_unique() {
    let cluster = pg::Cluster::start();
    let s = settings(&cluster.database("many"), ChangeCheck::Notify, 100);
    let a = PgStore::create(
        Arc::clone(&s),
        "aaaa",
        vec![Change::PutMeta("n".into(), vec![1])],
    )
    .unwrap();
    let b = PgStore::create(
        Arc::clone(&s),
        "bbbb",
        vec![Change::PutMeta("n".into(), vec![2])],
    )
    .unwrap();
    assert!(PgStore::create(Arc::clone(&s), "aaaa", vec![]).is_err());
    assert!(PgStore::open(Arc::clone(&s), "cccc").is_err());
    let catalog = schema::Catalog::new(Arc::clone(&s));
    assert_eq!(catalog.serials().unwrap(), vec!["aaaa", "bbbb"]);
    PgStore::create(Arc::clone(&s), "0000", vec![]).unwrap();
    assert_eq!(catalog.serials().unwrap(), vec!["0000", "aaaa", "bbbb"]);
    a.commit(vec![Change::Wipe]).unwrap();
    assert_eq!(a.read(0, 0, Scope::All).unwrap().meta["n"], vec![1]);
    assert_eq!(b.read(0, 0, Scope::All).unwrap().meta["n"], vec![2]);
    assert_eq!(
        b.read(0, 0, Scope::All).unwrap().epoch,
        1,
        "b's epoch untouched"
    );
}

/// With a long check interval only a notification can tell: it does, without a round
/// trip; and the cost of a call that finds nothing is measured for both modes.
#[test]
fn a_commit_elsewhere_is_heard_through_notify_and_the_check_costs_are_measured() {
    let cluster = pg::Cluster::start();
    let url = cluster.database("notify");
    let s = settings(&url, ChangeCheck::Notify, 3_600_000);
    let (first, second) = pair(&s, "n");
    let snap = first.read(0, 0, Scope::Changes).unwrap();
    first.applied(&snap.mark).unwrap();
    assert!(
        !first.changed_elsewhere().unwrap(),
        "the listener's first query"
    );
    for n in 0..20u8 {
        second
            .commit(vec![Change::PutMeta("n".into(), vec![n])])
            .unwrap();
        let started = Instant::now();
        assert!(
            pg::Cluster::wait_for(Duration::from_secs(5), || first
                .changed_elsewhere()
                .unwrap()),
            "commit {n} heard"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        let snap = first.read(0, 0, Scope::Changes).unwrap();
        assert_eq!(snap.meta["n"], vec![n]);
        first.applied(&snap.mark).unwrap();
        first
            .commit(vec![Change::PutMeta("own".into(), vec![n])])
            .unwrap();
        assert!(!first.changed_elsewhere().unwrap(), "own commit {n}");
    }
    let calls = 2000;
    let time = |store: &PgStore| {
        let snap = store.read(0, 0, Scope::Changes).unwrap();
        store.applied(&snap.mark).unwrap();
        let started = Instant::now();
        for _ in 0..calls {
            assert!(!store.changed_elsewhere().unwrap());
        }
        started.elapsed() / calls
    };
    let notify = time(&first);
    let query = time(&PgStore::open(settings(&url, ChangeCheck::Query, 100), "n").unwrap());
    eprintln!(
        "changed_elsewhere with nothing changed: notify {notify:?}/call, query {query:?}/call"
    );
}

#[test]
fn a_restarted_server_is_reconnected_to_and_a_stopped_one_gives_unreachable_in_time() {
    let cluster = pg::Cluster::start();
    let s = settings(&cluster.database("faults"), ChangeCheck::Notify, 100);
    let (first, second) = pair(&s, "f");
    first
        .commit(vec![Change::PutObject(ObjectRecord {
            uid: [1; 16],
            plain: vec![1],
            sealed: None,
            index: Default::default(),
        })])
        .unwrap();
    first.changed_elsewhere().unwrap();
    cluster.restart_server();
    // Every kind of call on a connection the restart ended: connected again, and what
    // was acknowledged before is there.
    assert_eq!(second.load(&[[1; 16]]).unwrap().objects.len(), 1);
    first
        .commit(vec![Change::PutMeta("after".into(), vec![1])])
        .unwrap();
    assert!(second.changed_elsewhere().unwrap());
    assert_eq!(
        second.read(0, 0, Scope::All).unwrap().meta["after"],
        vec![1]
    );

    cluster.stop_server();
    for call in 0..3 {
        let started = Instant::now();
        let e = first.read(0, 0, Scope::All).unwrap_err();
        assert!(
            matches!(e, StoreError::Unreachable(_)),
            "call {call}: {e:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        let e = second
            .commit(vec![Change::PutMeta("lost".into(), vec![1])])
            .unwrap_err();
        assert!(matches!(e, StoreError::Unreachable(_)), "{e:?}");
        let e = first.changed_elsewhere();
        assert!(matches!(e, Err(StoreError::Unreachable(_))), "{e:?}");
    }
    cluster.start_server();
    let snap = first.read(0, 0, Scope::All).unwrap();
    assert_eq!(snap.meta["after"], vec![1]);
    assert!(
        !snap.meta.contains_key("lost"),
        "nothing unacknowledged was written"
    );
}

#[test]
fn an_unreachable_server_fails_within_the_connect_timeout_without_the_password() {
    // A port nothing listens on: refused at once. (An unroutable address would wait
    // for the connect timeout; loopback cannot show that.)
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgresql://u:sekret@127.0.0.1:{port}/db?sslmode=disable");
    let s = settings(&url, ChangeCheck::Notify, 100);
    let started = Instant::now();
    let e = PgStore::open(s, "x").unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    let text = e.to_string();
    assert!(matches!(e, StoreError::Unreachable(_)), "{e:?}");
    assert!(
        !text.contains("sekret") && text.contains("u:***@"),
        "{text}"
    );
}

#[test]
fn a_newer_schema_or_a_foreign_database_is_refused() {
    let cluster = pg::Cluster::start();
    let url = cluster.database("newer");
    let s = settings(&url, ChangeCheck::Notify, 100);
    PgStore::create(Arc::clone(&s), "t", vec![]).unwrap();
    let mut c = s.connect().unwrap();
    c.batch_execute("UPDATE kmshsm_version SET version = 99")
        .unwrap();
    assert!(matches!(
        PgStore::open(Arc::clone(&s), "t"),
        Err(StoreError::SchemaVersion(99))
    ));
    let foreign = settings(&cluster.database("foreign"), ChangeCheck::Notify, 100);
    let mut c = foreign.connect().unwrap();
    c.batch_execute("CREATE TABLE kmshsm_tokens (x int)")
        .unwrap();
    let e = PgStore::create(foreign, "t", vec![]).unwrap_err();
    assert!(e.to_string().contains("not a kmshsm store"), "{e}");
}

/// A database of schema version 1 (before the audit trail) is upgraded in place by the
/// first handle that connects: its tokens keep their records and start an empty trail
/// that records and verifies.
#[test]
fn a_version_1_database_is_upgraded_to_the_audit_trail() {
    use crate::store::audit::{self, link};
    let cluster = pg::Cluster::start();
    let url = cluster.database("upgrade");
    let s = settings(&url, ChangeCheck::Notify, 100);
    let mut c = s.connect().unwrap();
    c.batch_execute(&format!(
        "{} INSERT INTO kmshsm_tokens (serial) VALUES ('old'); \
         INSERT INTO kmshsm_meta (token, name, value) SELECT id, 'm', '\\x01' FROM kmshsm_tokens",
        schema::SCHEMA_V1_FOR_TESTS
    ))
    .unwrap();
    drop(c);
    let store = PgStore::open(Arc::clone(&s), "old").unwrap();
    store.check_integrity().unwrap();
    assert_eq!(
        store.read(0, 0, Scope::All).unwrap().meta.get("m"),
        Some(&vec![1])
    );
    assert!(store.audit_log().unwrap().events.is_empty());
    const KEY: [u8; 32] = [6; 32];
    store
        .transact(&[], &[], &mut |loaded| {
            Some(audit::append(
                &loaded.audit,
                vec![b"first".to_vec()],
                Some(&KEY),
            ))
        })
        .unwrap();
    let log = PgStore::open(s, "old").unwrap().audit_log().unwrap();
    assert_eq!(log.events[0].hash, link(&[0; 32], 1, b"first"));
    assert_eq!(audit::verify(&log, &KEY).unwrap().authenticated_through, 1);
}

/// A peer that accepts the TCP connection and never answers: connecting gives up at the
/// connect timeout (which `tokio-postgres` alone applies to the TCP connect only).
#[test]
fn a_server_that_accepts_and_never_answers_fails_within_the_connect_timeout() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let url = format!("postgresql://u@127.0.0.1:{port}/db?sslmode=disable");
    let options = PostgresConfig {
        connect_timeout_ms: 300,
        ..PostgresConfig::default()
    };
    let s = Arc::new(PgSettings::new(&StoreUrl::new(&url), &options).unwrap());
    let started = Instant::now();
    let e = PgStore::open(s, "x").unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(e, StoreError::Unreachable(_)), "{e:?}");
    drop(silent);
}

/// A frozen server (its processes stopped; the kernel still acknowledges): every call
/// gives up within statement timeout + network timeout, and works again once it thaws.
#[test]
fn a_frozen_server_fails_calls_within_the_round_trip_deadline() {
    let cluster = pg::Cluster::start();
    let url = cluster.database("frozen");
    let options = PostgresConfig {
        connect_timeout_ms: 500,
        statement_timeout_ms: 500,
        network_timeout_ms: 500,
        ..PostgresConfig::default()
    };
    let s = Arc::new(PgSettings::new(&StoreUrl::new(&url), &options).unwrap());
    let (first, _second) = pair(&s, "z");
    first
        .commit(vec![Change::PutMeta("k".into(), vec![1])])
        .unwrap();
    cluster.freeze(true);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let started = Instant::now();
        let e = first.read(0, 0, Scope::All).unwrap_err();
        assert!(matches!(e, StoreError::Unreachable(_)), "{e:?}");
        let e = first
            .commit(vec![Change::PutMeta("k".into(), vec![2])])
            .unwrap_err();
        // Reconnecting meets the frozen server too: no answer within the connect timeout.
        assert!(matches!(e, StoreError::Unreachable(_)), "{e:?}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
    }));
    cluster.freeze(false);
    outcome.unwrap();
    let snap = first.read(0, 0, Scope::All).unwrap();
    assert_eq!(
        snap.meta["k"],
        vec![1],
        "the unacknowledged commit was not made"
    );
}
