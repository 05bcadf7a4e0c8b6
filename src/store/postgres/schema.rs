//! The PostgreSQL schema: its tables (one set per database, shared by every token in
//! it, each row carrying its token's id), its version, and making or checking it.
//!
//! Version 1 holds what SQLite's version 3 holds. A database with a newer version is
//! refused, as is one holding some `kmshsm_` tables but no version row (not a store this
//! module made). Creation runs in one transaction under an advisory lock, so processes
//! starting together make it once. This module must not interpret records.

use std::sync::Arc;

use parking_lot::Mutex;
use postgres::Client;

use super::conn::{connection_lost, PgSettings};
use crate::error::StoreError;
use crate::store::StoreResult;

pub const SCHEMA_VERSION: i32 = 1;

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

/// The version row, if the table exists.
fn version(client: &mut impl postgres::GenericClient) -> Result<Option<i32>, postgres::Error> {
    let exists: bool = client
        .query_one("SELECT to_regclass('kmshsm_version') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(None);
    }
    Ok(client
        .query_opt("SELECT version FROM kmshsm_version WHERE id = 1", &[])?
        .map(|r| r.get(0)))
}

/// Makes the schema when the database has none; checks its version otherwise.
pub fn ensure(settings: &PgSettings, client: &mut Client) -> StoreResult<()> {
    let fail = |e| settings.failure(e);
    match version(client).map_err(fail)? {
        Some(SCHEMA_VERSION) => return Ok(()),
        Some(v) => return Err(StoreError::SchemaVersion(v.into())),
        None => {}
    }
    let mut tx = client.transaction().map_err(fail)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .map_err(fail)?;
    // Another process may have made it while this one waited for the lock.
    match version(&mut tx).map_err(fail)? {
        Some(SCHEMA_VERSION) => return Ok(()),
        Some(v) => return Err(StoreError::SchemaVersion(v.into())),
        None => {}
    }
    let strays: i64 = tx
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'kmshsm\\_%' \
             AND schemaname = ANY (current_schemas(false))",
            &[],
        )
        .map_err(fail)?
        .get(0);
    if strays > 0 {
        return Err(StoreError::Malformed(
            "the database holds kmshsm_ tables but no kmshsm schema version: not a kmshsm store",
        ));
    }
    tx.batch_execute(SCHEMA_V1).map_err(fail)?;
    tx.commit().map_err(fail)?;
    log::info!(
        "made the kmshsm schema (version {SCHEMA_VERSION}) in {}",
        settings.shown()
    );
    Ok(())
}

/// Which tokens a database holds, asked through one connection kept between asks (a
/// provider asks at every `C_GetSlotList` with a NULL list).
pub struct Catalog {
    settings: Arc<PgSettings>,
    conn: Mutex<Option<Client>>,
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
            if conn.as_ref().is_some_and(Client::is_closed) {
                *conn = None;
            }
            let fresh = conn.is_none();
            if fresh {
                let mut client = self.settings.connect()?;
                ensure(&self.settings, &mut client)?;
                *conn = Some(client);
            }
            let Some(client) = conn.as_mut() else {
                continue;
            };
            match client.query("SELECT serial FROM kmshsm_tokens ORDER BY serial", &[]) {
                Ok(rows) => return Ok(rows.iter().map(|r| r.get(0)).collect()),
                Err(e) if connection_lost(&e) => {
                    *conn = None;
                    if fresh || attempt > 0 {
                        return Err(self.settings.failure(e));
                    }
                }
                Err(e) => return Err(self.settings.failure(e)),
            }
        }
        Err(StoreError::Unreachable(self.settings.shown().to_string()))
    }
}
