//! The PostgreSQL schema: its tables (one set per database, shared by every token in
//! it, each row carrying its token's id), its version, and making or checking it.
//!
//! Version 1 holds what SQLite's version 3 holds; version 2 adds the audit trail (what
//! SQLite's version 4 adds), and a version 1 database is upgraded in place (its tokens'
//! trails start empty). A database with a newer version is refused, as is one holding some `kmshsm_` tables but no version row (not a store this
//! module made). Creation runs in one transaction under an advisory lock, so processes
//! starting together make it once. This module must not interpret records.

use std::sync::Arc;

use parking_lot::Mutex;

use super::conn::{Conn, PgSettings};
use super::conn::{Failure, PgResult};
use crate::error::StoreError;
use crate::store::StoreResult;

pub(crate) const SCHEMA_VERSION: i32 = 3;

/// Taken (transaction-scoped) while the schema is made or upgraded: "kmshsm" in ASCII.
const SCHEMA_LOCK: i64 = 0x6b6d_7368_736d;

const SCHEMA_V1: &str = "
CREATE TABLE kmshsm_version (id integer PRIMARY KEY CHECK (id = 1), version integer NOT NULL);
CREATE TABLE kmshsm_tokens  (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                             serial text NOT NULL UNIQUE,
                             seq bigint NOT NULL DEFAULT 0, epoch bigint NOT NULL DEFAULT 1);
CREATE TABLE kmshsm_meta    (token bigint NOT NULL REFERENCES kmshsm_tokens (id) ON DELETE CASCADE,
                             name text NOT NULL, value bytea NOT NULL, PRIMARY KEY (token, name));
CREATE TABLE kmshsm_pins    (token bigint NOT NULL REFERENCES kmshsm_tokens (id) ON DELETE CASCADE,
                             role bigint NOT NULL, kdf bytea NOT NULL, wrapped_key bytea NOT NULL,
                             failures bigint NOT NULL DEFAULT 0, PRIMARY KEY (token, role));
CREATE TABLE kmshsm_pin_attempts (token bigint NOT NULL REFERENCES kmshsm_tokens (id) ON DELETE CASCADE,
                             role bigint NOT NULL, inflight bigint NOT NULL,
                             lease_until bigint NOT NULL, PRIMARY KEY (token, role));
CREATE TABLE kmshsm_objects (token bigint NOT NULL REFERENCES kmshsm_tokens (id) ON DELETE CASCADE,
                             uid bytea NOT NULL, seq bigint NOT NULL, plain bytea NOT NULL,
                             sealed bytea, due bigint, PRIMARY KEY (token, uid));
CREATE INDEX kmshsm_objects_by_seq ON kmshsm_objects (token, seq);
CREATE INDEX kmshsm_objects_by_due ON kmshsm_objects (token, due) WHERE due IS NOT NULL;
CREATE TABLE kmshsm_removed (token bigint NOT NULL REFERENCES kmshsm_tokens (id) ON DELETE CASCADE,
                             uid bytea NOT NULL, seq bigint NOT NULL, PRIMARY KEY (token, uid));
CREATE INDEX kmshsm_removed_by_seq ON kmshsm_removed (token, seq);
CREATE TABLE kmshsm_lookup  (token bigint NOT NULL REFERENCES kmshsm_tokens (id) ON DELETE CASCADE,
                             key bytea NOT NULL, uid bytea NOT NULL, PRIMARY KEY (token, key, uid));
CREATE INDEX kmshsm_lookup_by_uid ON kmshsm_lookup (token, uid);
INSERT INTO kmshsm_version (id, version) VALUES (1, 1);
";

/// Version 1's schema, for the upgrade test.
#[cfg(test)]
pub(super) const SCHEMA_V1_FOR_TESTS: &str = SCHEMA_V1;

/// Version 1 → 2: the audit trail (`store::audit`): each token's events numbered by
/// `seq`, with their chain hash and, when the writer held the audit key, the MAC of the
/// head there; the checkpoint pruning leaves, and the anchor (one row per token each).
const UPGRADE_V1_TO_V2: &str = "
CREATE TABLE kmshsm_audit_events (token bigint NOT NULL REFERENCES kmshsm_tokens (id) ON DELETE CASCADE,
                             seq bigint NOT NULL, body bytea NOT NULL, hash bytea NOT NULL,
                             mac bytea, PRIMARY KEY (token, seq));
CREATE TABLE kmshsm_audit_checkpoint (token bigint PRIMARY KEY REFERENCES kmshsm_tokens (id) ON DELETE CASCADE,
                             seq bigint NOT NULL, hash bytea NOT NULL, mac bytea NOT NULL);
CREATE TABLE kmshsm_audit_anchor (token bigint PRIMARY KEY REFERENCES kmshsm_tokens (id) ON DELETE CASCADE,
                             seq bigint NOT NULL, hash bytea NOT NULL, mac bytea NOT NULL);
UPDATE kmshsm_version SET version = 2 WHERE id = 1;
";

/// Version 2 → 3: each PIN record numbers the attempts reserved at it (`reserved`), so
/// that a right PIN forgives the attempts reserved up to it and not those after; and
/// each attempt in flight is a row of its own with its own lease (`kmshsm_pin_flights`),
/// where one row per role counted them under one lease (`pins.rs`; reviews 15g, 15h).
const UPGRADE_V2_TO_V3: &str = "
ALTER TABLE kmshsm_pins ADD COLUMN reserved bigint NOT NULL DEFAULT 0;
DROP TABLE kmshsm_pin_attempts;
CREATE TABLE kmshsm_pin_flights (token bigint NOT NULL REFERENCES kmshsm_tokens (id) ON DELETE CASCADE,
                             role bigint NOT NULL, attempt bigint NOT NULL, kdf bytea NOT NULL,
                             lease_until bigint NOT NULL, PRIMARY KEY (token, role, attempt));
UPDATE kmshsm_version SET version = 3 WHERE id = 1;
";

/// The version row, if the table exists.
fn version(c: &mut Conn) -> PgResult<Option<i32>> {
    let exists: bool = c
        .query_one("SELECT to_regclass('kmshsm_version') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(None);
    }
    Ok(
        c.query_opt("SELECT version FROM kmshsm_version WHERE id = 1", &[])?
            .map(|r| r.get(0)),
    )
}

/// Makes the schema when the database has none; checks its version otherwise.
pub(super) fn ensure(settings: &PgSettings, c: &mut Conn) -> StoreResult<()> {
    let made = make_or_check(c);
    if !c.end_transaction() {
        return Err(StoreError::Unreachable(settings.shown().to_string()));
    }
    match made {
        Ok(true) => {
            log::info!(
                "made or upgraded the kmshsm schema (version {SCHEMA_VERSION}) in {}",
                settings.shown()
            );
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(f) => Err(settings.classify(f, false)),
    }
}

/// Answers whether it made (or upgraded) the schema.
fn make_or_check(c: &mut Conn) -> PgResult<bool> {
    let check = |v: Option<i32>| match v {
        Some(SCHEMA_VERSION) => Ok(Some(false)),
        // Older: upgraded below, under the lock.
        Some(1 | 2) | None => Ok(None),
        Some(v) => Err(Failure::Store(StoreError::SchemaVersion(v.into()))),
    };
    if let Some(made) = check(version(c)?)? {
        return Ok(made);
    }
    c.begin("")?;
    c.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
    // Another process may have made or upgraded it while this one waited for the lock.
    let found = version(c)?;
    if let Some(made) = check(found)? {
        return Ok(made);
    }
    if let Some(old @ (1 | 2)) = found {
        if old == 1 {
            c.batch_execute(UPGRADE_V1_TO_V2)?;
        }
        c.batch_execute(UPGRADE_V2_TO_V3)?;
        c.commit()?;
        return Ok(true);
    }
    let strays: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'kmshsm\\_%' \
             AND schemaname = ANY (current_schemas(false))",
            &[],
        )?
        .get(0);
    if strays > 0 {
        return Err(Failure::Store(StoreError::Malformed(
            "the database holds kmshsm_ tables but no kmshsm schema version: not a kmshsm store",
        )));
    }
    c.batch_execute(SCHEMA_V1)?;
    c.batch_execute(UPGRADE_V1_TO_V2)?;
    c.batch_execute(UPGRADE_V2_TO_V3)?;
    c.commit()?;
    Ok(true)
}

/// Which tokens a database holds, asked through one connection kept between asks (a
/// provider asks at every `C_GetSlotList` with a NULL list).
pub struct Catalog {
    settings: Arc<PgSettings>,
    conn: Mutex<Option<Conn>>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("server", &self.settings.shown())
            .finish_non_exhaustive()
    }
}

impl Catalog {
    pub fn new(settings: Arc<PgSettings>) -> Catalog {
        Catalog {
            settings,
            conn: Mutex::new(None),
        }
    }

    pub fn settings(&self) -> &Arc<PgSettings> {
        &self.settings
    }

    /// The serials of the tokens in the database, in order. A new connection makes or
    /// checks the schema first; a kept one found dead is replaced once.
    pub fn serials(&self) -> StoreResult<Vec<String>> {
        let mut conn = self.conn.lock();
        for attempt in 0..2 {
            if conn.as_ref().is_some_and(Conn::is_closed) {
                *conn = None;
            }
            let fresh = conn.is_none();
            if fresh {
                let mut c = self.settings.connect()?;
                ensure(&self.settings, &mut c)?;
                *conn = Some(c);
            }
            let Some(c) = conn.as_mut() else {
                continue;
            };
            match c.query("SELECT serial FROM kmshsm_tokens ORDER BY serial", &[]) {
                Ok(rows) => return Ok(rows.iter().map(|r| r.get(0)).collect()),
                Err(f) if f.is_lost() => {
                    *conn = None;
                    if fresh || attempt > 0 || matches!(f, Failure::Timeout) {
                        return Err(self.settings.classify(f, false));
                    }
                }
                Err(f) => return Err(self.settings.classify(f, false)),
            }
        }
        Err(StoreError::Unreachable(self.settings.shown().to_string()))
    }
}
