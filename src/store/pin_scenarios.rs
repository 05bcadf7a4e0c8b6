//! The harness of the PIN-counter reviews (`attack_review15g.rs`, `15h.rs`, `15i.rs`):
//! a scenario on two handles of one token is run on the memory store, SQLite (two
//! handles on one file) and PostgreSQL (two handles on one token of a private cluster),
//! with the helpers the scenarios share. Test code only.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use super::postgres::{PgSettings, PgStore};
use super::*;
use crate::config::{ChangeCheck, PostgresConfig, StoreUrl};

#[path = "../../tests/common/pg.rs"]
#[allow(unreachable_pub, clippy::duplicate_mod)]
// the integration tests' helper, as postgres/tests.rs loads it
mod pg;

/// The role the scenarios try PINs of.
pub(super) const SO: PinRole = PinRole::So;

/// A PIN record whose KDF parameters are `kdf` three times.
pub(super) fn record(kdf: u8) -> PinRecord {
    PinRecord {
        kdf: vec![kdf; 3],
        wrapped_key: vec![kdf; 60],
        failures: 0,
    }
}

/// The epoch of the token `store` holds, with the SO PIN record `record(1)` in place.
pub(super) fn with_so_pin(store: &dyn Store) -> u64 {
    store.commit(vec![Change::PutPin(SO, record(1))]).unwrap();
    let snap = store.read(0, 0, Scope::Changes).unwrap();
    store.applied(&snap.mark).unwrap();
    snap.epoch
}

/// The SO PIN's count at `now`.
pub(super) fn counts(store: &dyn Store, now: i64) -> PinCount {
    store.pin_counts(now).unwrap()[&SO]
}

/// An attempt at the SO PIN reserved at `now` (a 30 s lease), which must be granted.
pub(super) fn reserved(store: &dyn Store, epoch: u64, limit: u32, now: i64) -> PinRecordId {
    match store
        .reserve_pin_attempt(SO, epoch, limit, now, now + 30)
        .unwrap()
    {
        PinAttempt::Reserved { record, .. } => record,
        other => panic!("no attempt reserved at {now}: {other:?}"),
    }
}

/// `scenario` on two handles of one memory store.
pub(super) fn on_memory(scenario: fn(&dyn Store, &dyn Store)) {
    let first = memory::MemoryStore::new();
    let second = first.share();
    scenario(&first, &second);
}

/// `scenario` on two handles of one SQLite file.
pub(super) fn on_sqlite(scenario: fn(&dyn Store, &dyn Store)) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let first = sqlite::SqliteStore::create(&path, vec![]).unwrap();
    let second = sqlite::SqliteStore::open(&path).unwrap();
    scenario(&first, &second);
}

/// `scenario` on two handles of one token of a private PostgreSQL cluster.
pub(super) fn on_postgres(scenario: fn(&dyn Store, &dyn Store)) {
    let cluster = pg::Cluster::start();
    let options = PostgresConfig {
        change_check: ChangeCheck::Query,
        check_interval_ms: 100,
        connect_timeout_ms: 2_000,
        statement_timeout_ms: 5_000,
        network_timeout_ms: 5_000,
        ..PostgresConfig::default()
    };
    let url = cluster.database("pin_scenarios");
    let settings = Arc::new(PgSettings::new(&StoreUrl::new(&url), &options).unwrap());
    let first = PgStore::create(Arc::clone(&settings), "pins", vec![]).unwrap();
    let second = PgStore::open(settings, "pins").unwrap();
    scenario(&first, &second);
}
