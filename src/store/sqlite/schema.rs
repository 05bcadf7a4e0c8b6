//! The SQLite store's schema: the tables of each version, the upgrade of an older database
//! in place, and the settings every connection gets (WAL, `synchronous=FULL` until the
//! store switches to group commit, `durable.rs`; the busy timeout, the statement cache).
//! It must not read or write records.

use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, TransactionBehavior};

use crate::error::StoreError;
use crate::store::StoreResult;

pub(super) const SCHEMA_VERSION: i64 = 7;

pub(super) const SCHEMA_V1: &str = "
CREATE TABLE state   (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, epoch INTEGER NOT NULL);
CREATE TABLE meta    (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE pins    (role INTEGER PRIMARY KEY, kdf BLOB NOT NULL, wrapped_key BLOB NOT NULL,
                      failures INTEGER NOT NULL DEFAULT 0);
CREATE TABLE objects (uid BLOB PRIMARY KEY, seq INTEGER NOT NULL, plain BLOB NOT NULL, sealed BLOB);
CREATE INDEX objects_by_seq ON objects (seq);
CREATE TABLE removed (uid BLOB PRIMARY KEY, seq INTEGER NOT NULL);
CREATE INDEX removed_by_seq ON removed (seq);
INSERT INTO state (id, seq, epoch) VALUES (1, 0, 1);
";

/// Version 1 → 2: records get a due time and lookup keys. Existing records start with
/// neither; the token rebuilds their index (`Change::Reindex`) when it first opens them.
pub(super) const UPGRADE_V1_TO_V2: &str = "
ALTER TABLE objects ADD COLUMN due INTEGER;
CREATE INDEX objects_by_due ON objects (due) WHERE due IS NOT NULL;
CREATE TABLE lookup  (key BLOB NOT NULL, uid BLOB NOT NULL, PRIMARY KEY (key, uid)) WITHOUT ROWID;
CREATE INDEX lookup_by_uid ON lookup (uid);
";

/// Version 2 → 3: PIN attempts in flight (reserved, not yet settled), so a caller that
/// finds no attempt left can tell "locked" from "others are still trying". `IF NOT EXISTS`:
/// a version 1 database made by downgrading a newer one may hold the table already.
pub(super) const UPGRADE_V2_TO_V3: &str = "
CREATE TABLE IF NOT EXISTS pin_attempts (role INTEGER PRIMARY KEY, inflight INTEGER NOT NULL,
                                         lease_until INTEGER NOT NULL);
";

/// Version 3 → 4: the audit trail (`store::audit`): events numbered by `seq`, each with
/// its chain hash and, when its writer held the audit key, the MAC of the head there;
/// the checkpoint pruning leaves; and the anchor (the newest authenticated head). A token
/// upgraded to it starts its trail empty.
pub(super) const UPGRADE_V3_TO_V4: &str = "
CREATE TABLE IF NOT EXISTS audit_events (seq INTEGER PRIMARY KEY, body BLOB NOT NULL,
                                         hash BLOB NOT NULL, mac BLOB);
CREATE TABLE IF NOT EXISTS audit_checkpoint (id INTEGER PRIMARY KEY CHECK (id = 1),
                                             seq INTEGER NOT NULL, hash BLOB NOT NULL,
                                             mac BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS audit_anchor (id INTEGER PRIMARY KEY CHECK (id = 1),
                                         seq INTEGER NOT NULL, hash BLOB NOT NULL,
                                         mac BLOB NOT NULL);
";

/// Version 4 → 5, first part: less work in a creation's write, all of which is serial
/// (issue 18). The audit anchor moves into the state row, which every commit writes
/// anyway, and each record keeps its own lookup keys (`keys`, `writes::encode_keys`), so
/// that the keys of a record rewritten or removed are found without a second index of
/// the lookup table by uid. `config` counts the changes of `meta` and `pins` (PIN failure
/// counts included, which move no sequence number), kept by triggers so that no writer
/// can forget it: a reader whose connection read them at the same count reuses what it
/// read (`mod.rs` `read_config`). `fill_record_keys` then fills `keys` from the lookup
/// table, and `UPGRADE_V4_TO_V5_END` drops what is no longer used.
pub(super) const UPGRADE_V4_TO_V5: &str = "
ALTER TABLE state ADD COLUMN anchor_seq INTEGER;
ALTER TABLE state ADD COLUMN anchor_hash BLOB;
ALTER TABLE state ADD COLUMN anchor_mac BLOB;
ALTER TABLE state ADD COLUMN config INTEGER NOT NULL DEFAULT 0;
UPDATE state SET (anchor_seq, anchor_hash, anchor_mac) =
    (SELECT seq, hash, mac FROM audit_anchor WHERE id = 1) WHERE id = 1;
ALTER TABLE objects ADD COLUMN keys BLOB;
CREATE TRIGGER meta_added AFTER INSERT ON meta BEGIN
    UPDATE state SET config = config + 1 WHERE id = 1; END;
CREATE TRIGGER meta_changed AFTER UPDATE ON meta BEGIN
    UPDATE state SET config = config + 1 WHERE id = 1; END;
CREATE TRIGGER meta_removed AFTER DELETE ON meta BEGIN
    UPDATE state SET config = config + 1 WHERE id = 1; END;
CREATE TRIGGER pins_added AFTER INSERT ON pins BEGIN
    UPDATE state SET config = config + 1 WHERE id = 1; END;
CREATE TRIGGER pins_changed AFTER UPDATE ON pins BEGIN
    UPDATE state SET config = config + 1 WHERE id = 1; END;
CREATE TRIGGER pins_removed AFTER DELETE ON pins BEGIN
    UPDATE state SET config = config + 1 WHERE id = 1; END;
";

/// Version 4 → 5, last part (after `fill_record_keys`).
pub(super) const UPGRADE_V4_TO_V5_END: &str = "
DROP INDEX lookup_by_uid;
DROP TABLE audit_anchor;
";

/// Version 5 → 6: a lookup key names its record's row (`rid`, an alias of the rowid,
/// which unlike a bare rowid no `VACUUM` renumbers) instead of its uid, so that finding a
/// record by a key is two B-tree descents (the key, the row) where it was three (the key,
/// the uid's index, the row): in a token of a million records each descent is three or
/// four pages a fresh process reads from the kernel (issue 18). SQLite cannot give an
/// existing table such a column, so both tables are copied once, in the upgrade's
/// transaction, each row keeping its rowid.
pub(super) const UPGRADE_V5_TO_V6: &str = "
CREATE TABLE objects_v6 (rid INTEGER PRIMARY KEY, uid BLOB NOT NULL UNIQUE,
                         seq INTEGER NOT NULL, plain BLOB NOT NULL, sealed BLOB,
                         due INTEGER, keys BLOB);
INSERT INTO objects_v6 (rid, uid, seq, plain, sealed, due, keys)
    SELECT rowid, uid, seq, plain, sealed, due, keys FROM objects ORDER BY rowid;
CREATE TABLE lookup_v6 (key BLOB NOT NULL, rid INTEGER NOT NULL, PRIMARY KEY (key, rid))
    WITHOUT ROWID;
INSERT INTO lookup_v6 (key, rid)
    SELECT l.key, o.rid FROM lookup l JOIN objects_v6 o ON o.uid = l.uid ORDER BY 1, 2;
DROP TABLE lookup;
DROP TABLE objects;
ALTER TABLE objects_v6 RENAME TO objects;
ALTER TABLE lookup_v6 RENAME TO lookup;
CREATE INDEX objects_by_seq ON objects (seq);
CREATE INDEX objects_by_due ON objects (due) WHERE due IS NOT NULL;
";

/// Version 6 → 7: each PIN record numbers the attempts reserved at it (`reserved`), so
/// that a right PIN forgives the attempts reserved up to it and not those after; and
/// each attempt in flight is a row of its own with its own lease (`pin_flights`), where
/// one row per role counted them under one lease (`pins.rs`; reviews 15g, 15h).
pub(super) const UPGRADE_V6_TO_V7: &str = "
ALTER TABLE pins ADD COLUMN reserved INTEGER NOT NULL DEFAULT 0;
DROP TABLE IF EXISTS pin_attempts;
CREATE TABLE pin_flights (role INTEGER NOT NULL, attempt INTEGER NOT NULL, kdf BLOB NOT NULL,
                          lease_until INTEGER NOT NULL, PRIMARY KEY (role, attempt))
                          WITHOUT ROWID;
";

/// Statements kept prepared per connection: more than this module has (rusqlite's
/// default, 16, was fewer once the audit trail's were added, and every commit then
/// prepared some of them again: about 40% of a state change's CPU time).
pub(super) const STATEMENT_CACHE: usize = 64;

/// WAL frames after which a commit checkpoints (SQLite's default is 1,000). The checkpoint
/// runs inside the commit, with the connection's lock and the writers' turn held, and
/// syncs the WAL and then the database: on a disk whose flush takes a millisecond, every
/// writer of the token waits through two flushes or more. A creation writes about 12
/// frames, so at 1,000 that was every ~80 creations; at 4,000, every ~320, and the pages
/// written again meanwhile (the state row, the audit chain's head, the newest leaves) are
/// copied once. The WAL then grows to ~16 MiB between checkpoints.
pub(super) const WAL_AUTOCHECKPOINT: i64 = 4_000;

/// How long a writer waits for SQLite's write lock.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) fn configure(db: &Connection) -> StoreResult<()> {
    db.busy_timeout(BUSY_TIMEOUT)?;
    db.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // journal_mode answers with a row, so it is read rather than executed.
    let mode: String = db.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Malformed("the database refused WAL mode"));
    }
    db.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
    db.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT)?;
    // The last connection to close would checkpoint and then delete the -wal and -shm
    // files, and the next process would create them again: on this project's ext4
    // (mounted with `discard`) each creation waited ~1.5 ms, a tenth of opening a token.
    // `SqliteStore`'s drop checkpoints and empties the WAL itself, and the files stay.
    db.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    Ok(())
}

/// Upgrades a version 1 to 5 database in one transaction; another process may have done
/// it first, which the version read inside the transaction tells (a newer version than
/// this build's is refused).
pub(super) fn upgrade(db: &mut Connection) -> StoreResult<()> {
    let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    // Read again inside the transaction: a newer build may have upgraded the file since
    // the caller looked, and its schema is not this build's to write.
    if version > SCHEMA_VERSION {
        return Err(StoreError::SchemaVersion(version));
    }
    if version == 1 {
        tx.execute_batch(UPGRADE_V1_TO_V2)?;
    }
    if version == 1 || version == 2 {
        tx.execute_batch(UPGRADE_V2_TO_V3)?;
    }
    if (1..=3).contains(&version) {
        tx.execute_batch(UPGRADE_V3_TO_V4)?;
    }
    if (1..=4).contains(&version) {
        to_version_5(&tx)?;
    }
    if (1..=5).contains(&version) {
        to_version_6(&tx)?;
    }
    if (1..=6).contains(&version) {
        to_version_7(&tx)?;
    }
    tx.commit()?;
    Ok(())
}

/// The version 4 → 5 step, inside the caller's transaction (an upgrade, or the creation
/// of a new database from the version 1 tables up).
pub(super) fn to_version_5(tx: &rusqlite::Transaction<'_>) -> StoreResult<()> {
    tx.execute_batch(UPGRADE_V4_TO_V5)?;
    fill_record_keys(tx)?;
    tx.execute_batch(UPGRADE_V4_TO_V5_END)?;
    Ok(())
}

/// The version 5 → 6 step, inside the caller's transaction (an upgrade, or the creation
/// of a new database).
pub(super) fn to_version_6(tx: &rusqlite::Transaction<'_>) -> StoreResult<()> {
    tx.execute_batch(UPGRADE_V5_TO_V6)?;
    Ok(())
}

/// The version 6 → 7 step, and the version's mark, inside the caller's transaction (an
/// upgrade, or the creation of a new database).
pub(super) fn to_version_7(tx: &rusqlite::Transaction<'_>) -> StoreResult<()> {
    tx.execute_batch(&format!(
        "{UPGRADE_V6_TO_V7} PRAGMA user_version = {SCHEMA_VERSION};"
    ))?;
    Ok(())
}

/// Gives every record the lookup keys the lookup table holds for it (version 4 → 5).
fn fill_record_keys(tx: &rusqlite::Transaction<'_>) -> StoreResult<()> {
    let mut by_uid: std::collections::BTreeMap<Vec<u8>, Vec<Vec<u8>>> = Default::default();
    {
        let mut q = tx.prepare("SELECT uid, key FROM lookup")?;
        for row in q.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get(1)?)))? {
            let (uid, key) = row?;
            by_uid.entry(uid).or_default().push(key);
        }
    }
    let mut update = tx.prepare("UPDATE objects SET keys = ?2 WHERE uid = ?1")?;
    for (uid, keys) in &by_uid {
        update.execute(rusqlite::params![uid, super::writes::encode_keys(keys)])?;
    }
    Ok(())
}
