//! The embedded default store: one SQLite database per token.
//!
//! WAL journal, `synchronous=FULL`, a busy timeout, `BEGIN IMMEDIATE` for every write, and
//! a schema version in `PRAGMA user_version` (version 1 databases are upgraded in place on
//! open). Files are created 0600 before SQLite opens them (SQLite gives the -wal and -shm
//! files the same mode); those two stay between connections, the WAL emptied on close.
//! Other processes' commits are noticed through `PRAGMA data_version`, asked only when
//! the WAL-index header in the `-shm` file has changed (read from a shared mapping of the
//! file's first page, or with one `pread` where that cannot be mapped; the pragma costs a
//! read transaction and two lock calls). Records' lookup keys live in their own indexed
//! table and their due times in an indexed column, so finding one record never reads the
//! others. Every SQLite call, opening and closing included, holds a pass through the fork
//! gate (`fork_gate.rs`). This module must not interpret record contents.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parking_lot::{MappedMutexGuard, Mutex, MutexGuard};
use rusqlite::config::DbConfig;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::audit::{self, AuditCheckpoint, AuditHead, AuditLog, AuditRecord};
use super::fork_gate::{self, Entered};
use super::{
    Change, Due, Loaded, ObjectRecord, ObjectUid, PinAttempt, PinRecord, PinRole, RecordIndex,
    Scope, Snapshot, Store, StoreResult,
};
use crate::error::StoreError;
use crate::os::shared_page::SharedPage;

const SCHEMA_VERSION: i64 = 4;

const SCHEMA_V1: &str = "
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
const UPGRADE_V1_TO_V2: &str = "
ALTER TABLE objects ADD COLUMN due INTEGER;
CREATE INDEX objects_by_due ON objects (due) WHERE due IS NOT NULL;
CREATE TABLE lookup  (key BLOB NOT NULL, uid BLOB NOT NULL, PRIMARY KEY (key, uid)) WITHOUT ROWID;
CREATE INDEX lookup_by_uid ON lookup (uid);
";

/// Version 2 → 3: PIN attempts in flight (reserved, not yet settled), so a caller that
/// finds no attempt left can tell "locked" from "others are still trying". `IF NOT EXISTS`:
/// a version 1 database made by downgrading a newer one may hold the table already.
const UPGRADE_V2_TO_V3: &str = "
CREATE TABLE IF NOT EXISTS pin_attempts (role INTEGER PRIMARY KEY, inflight INTEGER NOT NULL,
                                         lease_until INTEGER NOT NULL);
";

/// Version 3 → 4: the audit trail (`store::audit`): events numbered by `seq`, each with
/// its chain hash and, when its writer held the audit key, the MAC of the head there;
/// the checkpoint pruning leaves; and the anchor (the newest authenticated head). A token
/// upgraded to it starts its trail empty.
const UPGRADE_V3_TO_V4: &str = "
CREATE TABLE IF NOT EXISTS audit_events (seq INTEGER PRIMARY KEY, body BLOB NOT NULL,
                                         hash BLOB NOT NULL, mac BLOB);
CREATE TABLE IF NOT EXISTS audit_checkpoint (id INTEGER PRIMARY KEY CHECK (id = 1),
                                             seq INTEGER NOT NULL, hash BLOB NOT NULL,
                                             mac BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS audit_anchor (id INTEGER PRIMARY KEY CHECK (id = 1),
                                         seq INTEGER NOT NULL, hash BLOB NOT NULL,
                                         mac BLOB NOT NULL);
";

/// The two copies of the WAL-index header at the start of the `-shm` file (48 bytes
/// each; https://sqlite.org/walformat.html). Every commit rewrites them — the change
/// counter `iChange` and the last valid frame `mxFrame` at least — so while they read
/// the same, nobody has committed.
const WAL_INDEX_HEADERS: usize = 96;

/// However unchanged the header reads, `PRAGMA data_version` is asked at least this
/// often: the header is a shortcut, and this bounds what trusting it could ever cost.
const FULL_CHECK_EVERY: Duration = Duration::from_millis(100);

struct Conn {
    db: Connection,
    /// `PRAGMA data_version` when this handle last looked.
    data_version: i64,
    /// The `-shm` file, when it could be opened (the pragma alone is used otherwise).
    shm: Option<File>,
    /// Its first page mapped, when that worked (then no `pread` is needed).
    shm_page: Option<SharedPage>,
    /// The WAL-index headers as read just before this handle last found no change.
    seen_headers: Option<[u8; WAL_INDEX_HEADERS]>,
    /// When `PRAGMA data_version` was last asked.
    checked_at: Instant,
}

impl Conn {
    fn wal_index_headers(&self) -> Option<[u8; WAL_INDEX_HEADERS]> {
        if let Some(page) = &self.shm_page {
            return Some(page.read());
        }
        let mut headers = [0u8; WAL_INDEX_HEADERS];
        let shm = self.shm.as_ref()?;
        shm.read_exact_at(&mut headers, 0).ok()?;
        Some(headers)
    }
}

pub struct SqliteStore {
    path: PathBuf,
    /// `None` only inside `drop`, which closes the connection within the fork gate.
    conn: Mutex<Option<Conn>>,
}

/// The connection, locked, with a pass through the fork gate (`fork_gate.rs`): every
/// SQLite call happens through one. Fields drop in order: the lock, then the pass.
struct Locked<'a> {
    conn: MappedMutexGuard<'a, Conn>,
    _gate: Entered,
}

impl std::ops::Deref for Locked<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.conn
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.conn
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

/// Statements kept prepared per connection: more than this module has (rusqlite's
/// default, 16, was fewer once the audit trail's were added, and every commit then
/// prepared some of them again: about 40% of a state change's CPU time).
const STATEMENT_CACHE: usize = 64;

fn configure(db: &Connection) -> StoreResult<()> {
    db.busy_timeout(Duration::from_secs(30))?;
    db.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // journal_mode answers with a row, so it is read rather than executed.
    let mode: String = db.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Malformed("the database refused WAL mode"));
    }
    db.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
    // The last connection to close would checkpoint and then delete the -wal and -shm
    // files, and the next process would create them again: on this project's ext4
    // (mounted with `discard`) each creation waited ~1.5 ms, a tenth of opening a token.
    // `SqliteStore`'s drop checkpoints and empties the WAL itself, and the files stay.
    db.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    Ok(())
}

impl Drop for SqliteStore {
    /// Moves the WAL's pages into the database and truncates the WAL to nothing, so the
    /// next process to open the token has no log to recover. Best effort and without
    /// waiting (C_Finalize must not block on another process): with no busy timeout, a
    /// checkpoint that meets a reader or writer stops short, which loses nothing — the
    /// WAL is as durable as the database, and later commits checkpoint automatically.
    fn drop(&mut self) {
        let _gate = fork_gate::enter();
        if let Some(conn) = self.conn.get_mut().take() {
            if conn.db.busy_timeout(Duration::ZERO).is_ok() {
                let _ = conn
                    .db
                    .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            }
            // Closes the connection while the gate is still held.
            drop(conn);
        }
    }
}

fn data_version(db: &Connection) -> StoreResult<i64> {
    // Asked before every object operation: the statement stays prepared in the
    // connection's cache rather than being parsed again each time.
    Ok(db
        .prepare_cached("PRAGMA data_version")?
        .query_row([], |r| r.get(0))?)
}

fn uid_of(bytes: Vec<u8>) -> StoreResult<ObjectUid> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Malformed("object uid is not 16 bytes"))
}

impl SqliteStore {
    /// Creates a new token database at `path` (which must not exist) holding `initial`.
    pub fn create(path: &Path, initial: Vec<Change>) -> StoreResult<SqliteStore> {
        // O_EXCL: two processes initialising the same serial cannot both succeed.
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        let result = (|| {
            let store = {
                let _gate = fork_gate::enter();
                let db = Connection::open(path)?;
                configure(&db)?;
                db.execute_batch(&format!(
                    "BEGIN IMMEDIATE; {SCHEMA_V1} {UPGRADE_V1_TO_V2} {UPGRADE_V2_TO_V3} {UPGRADE_V3_TO_V4} \
                     PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
                ))?;
                SqliteStore::wrap(path, db)?
            };
            // Enters the gate itself (after the pass above is given back).
            store.commit(initial)?;
            Ok(store)
        })();
        if result.is_err() {
            // Leave no half-made token behind for the slot scan to trip over.
            for suffix in ["", "-wal", "-shm"] {
                let mut p = path.as_os_str().to_owned();
                p.push(suffix);
                let _ = std::fs::remove_file(PathBuf::from(p));
            }
        }
        result
    }

    /// Opens an existing token database.
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        if !path.is_file() {
            return Err(StoreError::Io(std::io::Error::from(
                std::io::ErrorKind::NotFound,
            )));
        }
        let _gate = fork_gate::enter();
        let mut db = Connection::open(path)?;
        configure(&db)?;
        let version: i64 = db.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        match version {
            SCHEMA_VERSION => {}
            1..=3 => upgrade(&mut db)?,
            other => return Err(StoreError::SchemaVersion(other)),
        }
        SqliteStore::wrap(path, db)
    }

    /// Called with a pass through the fork gate.
    fn wrap(path: &Path, db: Connection) -> StoreResult<SqliteStore> {
        // The pragma's read transaction has made SQLite open (or create) the -shm file;
        // it stays while this connection is open (and, with `configure`'s settings,
        // after it closes too: SQLite no longer deletes it).
        let data_version = data_version(&db)?;
        let mut shm_path = path.as_os_str().to_owned();
        shm_path.push("-shm");
        let shm = File::open(PathBuf::from(shm_path)).ok();
        let shm_page = shm.as_ref().and_then(SharedPage::map);
        Ok(SqliteStore {
            path: path.to_path_buf(),
            conn: Mutex::new(Some(Conn {
                db,
                data_version,
                shm,
                shm_page,
                seen_headers: None,
                checked_at: Instant::now(),
            })),
        })
    }

    /// The connection, after entering the fork gate.
    fn lock(&self) -> StoreResult<Locked<'_>> {
        let gate = fork_gate::enter();
        let conn = MutexGuard::try_map(self.conn.lock(), Option::as_mut)
            .map_err(|_| StoreError::Malformed("the store's connection is closed"))?;
        Ok(Locked { conn, _gate: gate })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Upgrades a version 1, 2 or 3 database in one transaction; another process may have done
/// it first, which the version read inside the transaction tells.
fn upgrade(db: &mut Connection) -> StoreResult<()> {
    let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == 1 {
        tx.execute_batch(UPGRADE_V1_TO_V2)?;
    }
    if version == 1 || version == 2 {
        tx.execute_batch(UPGRADE_V2_TO_V3)?;
    }
    if (1..=3).contains(&version) {
        tx.execute_batch(&format!(
            "{UPGRADE_V3_TO_V4} PRAGMA user_version = {SCHEMA_VERSION};"
        ))?;
    }
    tx.commit()?;
    Ok(())
}

/// Writes a record's lookup keys and due time, replacing any it had; nothing when there
/// is no such record (removed meanwhile), so no key is left pointing nowhere.
fn put_index(
    tx: &rusqlite::Transaction<'_>,
    uid: &ObjectUid,
    index: &RecordIndex,
) -> StoreResult<()> {
    let found = tx
        .prepare_cached("UPDATE objects SET due = ?2 WHERE uid = ?1")?
        .execute(params![&uid[..], index.due])?;
    if found == 0 {
        return Ok(());
    }
    tx.prepare_cached("DELETE FROM lookup WHERE uid = ?1")?
        .execute([&uid[..]])?;
    let mut insert =
        tx.prepare_cached("INSERT OR IGNORE INTO lookup (key, uid) VALUES (?1, ?2)")?;
    for key in &index.lookup {
        insert.execute(params![key, &uid[..]])?;
    }
    Ok(())
}

fn record_of(uid: Vec<u8>, plain: Vec<u8>, sealed: Option<Vec<u8>>) -> StoreResult<ObjectRecord> {
    Ok(ObjectRecord {
        uid: uid_of(uid)?,
        plain,
        sealed,
        index: RecordIndex::default(),
    })
}

fn read_state(tx: &rusqlite::Transaction<'_>) -> StoreResult<(u64, u64)> {
    let (seq, epoch): (i64, i64) =
        tx.query_row("SELECT seq, epoch FROM state WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    Ok((seq as u64, epoch as u64))
}

fn read_pin(row: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, PinRecord)> {
    Ok((
        row.get(0)?,
        PinRecord {
            kdf: row.get(1)?,
            wrapped_key: row.get(2)?,
            failures: row.get(3)?,
        },
    ))
}

/// Applies `changes` inside the write transaction `tx`, as one new sequence number.
/// `head` is the audit head when the caller read it in `tx` already.
fn apply(
    tx: &rusqlite::Transaction<'_>,
    changes: Vec<Change>,
    mut head: Option<AuditHead>,
) -> StoreResult<()> {
    let seq: i64 = tx.query_row(
        "UPDATE state SET seq = seq + 1 WHERE id = 1 RETURNING seq",
        [],
        |r| r.get(0),
    )?;
    // The audit head (read on the first append, unless the caller had).
    let mut changes = changes.into_iter().peekable();
    while let Some(change) = changes.next() {
        match change {
            Change::PutMeta(name, value) => {
                tx.prepare_cached("INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)")?
                    .execute(params![name, value])?;
            }
            Change::PutPin(role, pin) => {
                tx.prepare_cached(
                        "INSERT OR REPLACE INTO pins (role, kdf, wrapped_key, failures) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![role.code(), pin.kdf, pin.wrapped_key, pin.failures])?;
            }
            Change::RemovePin(role) => {
                tx.prepare_cached("DELETE FROM pins WHERE role = ?1")?
                    .execute([role.code()])?;
            }
            Change::PutObject(rec) => {
                tx.prepare_cached(
                        "INSERT OR REPLACE INTO objects (uid, seq, plain, sealed) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![&rec.uid[..], seq, rec.plain, rec.sealed])?;
                put_index(tx, &rec.uid, &rec.index)?;
                tx.prepare_cached("DELETE FROM removed WHERE uid = ?1")?
                    .execute([&rec.uid[..]])?;
            }
            Change::Reindex(uid, index) => put_index(tx, &uid, &index)?,
            Change::RemoveObject(uid) => {
                tx.prepare_cached("DELETE FROM objects WHERE uid = ?1")?
                    .execute([&uid[..]])?;
                tx.prepare_cached("DELETE FROM lookup WHERE uid = ?1")?
                    .execute([&uid[..]])?;
                tx.prepare_cached("INSERT OR REPLACE INTO removed (uid, seq) VALUES (?1, ?2)")?
                    .execute(params![&uid[..], seq])?;
            }
            Change::Wipe => {
                tx.execute_batch(
                        "DELETE FROM objects; DELETE FROM lookup; DELETE FROM removed; DELETE FROM pins;
                         DELETE FROM pin_attempts;
                         UPDATE state SET epoch = epoch + 1 WHERE id = 1;",
                    )?;
            }
            Change::AppendEvent(body) => {
                let prev = match head {
                    Some(h) => h,
                    None => newest_event(tx)?,
                };
                let seq = prev.seq + 1;
                let hash = audit::link(&prev.hash, seq, &body);
                // The MAC of this very event, when it comes next, goes in with it: one
                // statement rather than an insert and an update.
                let mac = match changes.peek() {
                    Some(Change::SealAudit(s)) if s.seq == seq => {
                        let mac = s.mac;
                        changes.next();
                        Some(mac)
                    }
                    _ => None,
                };
                tx.prepare_cached(
                    "INSERT INTO audit_events (seq, body, hash, mac) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    seq as i64,
                    body,
                    &hash[..],
                    mac.as_ref().map(|m| &m[..])
                ])?;
                head = Some(AuditHead {
                    seq,
                    hash,
                    ..AuditHead::default()
                });
            }
            Change::SealAudit(seal) => {
                tx.prepare_cached("UPDATE audit_events SET mac = ?2 WHERE seq = ?1")?
                    .execute(params![seal.seq as i64, &seal.mac[..]])?;
            }
            Change::AnchorAudit(a) => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO audit_anchor (id, seq, hash, mac) VALUES (1, ?1, ?2, ?3)",
                )?
                .execute(params![a.seq as i64, &a.hash[..], &a.mac[..]])?;
            }
            Change::PruneAudit(cp) => {
                let stored: Option<Vec<u8>> = tx
                    .prepare_cached("SELECT hash FROM audit_events WHERE seq = ?1")?
                    .query_row([cp.seq as i64], |r| r.get(0))
                    .optional()?;
                if stored.as_deref() != Some(&cp.hash[..]) {
                    return Err(StoreError::Malformed(
                        "the audit checkpoint does not match the stored event",
                    ));
                }
                tx.prepare_cached("DELETE FROM audit_events WHERE seq <= ?1")?
                    .execute([cp.seq as i64])?;
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO audit_checkpoint (id, seq, hash, mac) VALUES (1, ?1, ?2, ?3)",
                )?
                .execute(params![cp.seq as i64, &cp.hash[..], &cp.mac[..]])?;
            }
            Change::RekeyAudit {
                checkpoint_mac,
                seal,
            } => {
                if let Some(mac) = checkpoint_mac {
                    tx.prepare_cached("UPDATE audit_checkpoint SET mac = ?1 WHERE id = 1")?
                        .execute([&mac[..]])?;
                }
                tx.prepare_cached("UPDATE audit_events SET mac = NULL WHERE mac IS NOT NULL")?
                    .execute([])?;
                tx.prepare_cached("DELETE FROM audit_anchor")?.execute([])?;
                if let Some(seal) = seal {
                    tx.prepare_cached("UPDATE audit_events SET mac = ?2 WHERE seq = ?1")?
                        .execute(params![seal.seq as i64, &seal.mac[..]])?;
                }
            }
            Change::RestoreAudit(log) => restore_audit(tx, &log)?,
        }
    }
    Ok(())
}

/// `Change::RestoreAudit`: a trail written as it was read, into an empty one.
fn restore_audit(tx: &rusqlite::Transaction<'_>, log: &AuditLog) -> StoreResult<()> {
    let empty: bool = tx.query_row(
        "SELECT NOT EXISTS (SELECT 1 FROM audit_events) \
         AND NOT EXISTS (SELECT 1 FROM audit_checkpoint)",
        [],
        |r| r.get(0),
    )?;
    if !empty {
        return Err(StoreError::Malformed(
            "the audit trail to restore into is not empty",
        ));
    }
    for (table, mark) in [
        ("audit_checkpoint", &log.checkpoint),
        ("audit_anchor", &log.anchor),
    ] {
        if let Some(m) = mark {
            tx.execute(
                &format!(
                    "INSERT OR REPLACE INTO {table} (id, seq, hash, mac) VALUES (1, ?1, ?2, ?3)"
                ),
                params![m.seq as i64, &m.hash[..], &m.mac[..]],
            )?;
        }
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO audit_events (seq, body, hash, mac) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for e in &log.events {
        insert.execute(params![
            e.seq as i64,
            e.body,
            &e.hash[..],
            e.mac.as_ref().map(|m| &m[..])
        ])?;
    }
    Ok(())
}

fn hash_of(bytes: Vec<u8>) -> StoreResult<audit::Hash> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Malformed("audit hash is not 32 bytes"))
}

/// A checkpoint-shaped row (`audit_checkpoint`, `audit_anchor`).
fn audit_mark(tx: &rusqlite::Transaction<'_>, table: &str) -> StoreResult<Option<AuditCheckpoint>> {
    let row: Option<(i64, Vec<u8>, Vec<u8>)> = tx
        .prepare_cached(&format!("SELECT seq, hash, mac FROM {table} WHERE id = 1"))?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    row.map(|(seq, hash, mac)| {
        Ok(AuditCheckpoint {
            seq: seq as u64,
            hash: hash_of(hash).unwrap_or([0xff; 32]),
            mac: hash_of(mac).unwrap_or([0xff; 32]),
        })
    })
    .transpose()
}

/// The newest audit event (or the checkpoint, or nothing) and the anchor, inside
/// transaction `tx`.
fn audit_head(tx: &rusqlite::Transaction<'_>) -> StoreResult<AuditHead> {
    let mut head = newest_event(tx)?;
    head.anchor = audit_mark(tx, "audit_anchor")?;
    if head.anchor.is_some_and(|a| a.seq == head.seq) {
        // The usual case: the anchor is the newest event (or the checkpoint).
        head.anchored_hash = Some(head.hash);
    } else if let Some(a) = &head.anchor {
        let stored: Option<Vec<u8>> = tx
            .prepare_cached("SELECT hash FROM audit_events WHERE seq = ?1")?
            .query_row([a.seq as i64], |r| r.get(0))
            .optional()?;
        head.anchored_hash = match stored {
            Some(h) => hash_of(h).ok(),
            None => audit_mark(tx, "audit_checkpoint")?
                .filter(|c| c.seq == a.seq)
                .map(|c| c.hash),
        };
    }
    Ok(head)
}

/// The newest audit event, or the checkpoint, or nothing.
fn newest_event(tx: &rusqlite::Transaction<'_>) -> StoreResult<AuditHead> {
    let newest: Option<(i64, Vec<u8>, bool)> = tx
        .prepare_cached(
            "SELECT seq, hash, mac IS NOT NULL FROM audit_events ORDER BY seq DESC LIMIT 1",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    if let Some((seq, hash, sealed)) = newest {
        return Ok(AuditHead {
            seq: seq as u64,
            hash: hash_of(hash)?,
            sealed,
            ..AuditHead::default()
        });
    }
    let checkpoint: Option<(i64, Vec<u8>)> = tx
        .prepare_cached("SELECT seq, hash FROM audit_checkpoint WHERE id = 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(match checkpoint {
        Some((seq, hash)) => AuditHead {
            seq: seq as u64,
            hash: hash_of(hash)?,
            sealed: true,
            ..AuditHead::default()
        },
        None => AuditHead::default(),
    })
}

impl Store for SqliteStore {
    fn changed_elsewhere(&self) -> StoreResult<bool> {
        let mut conn = self.lock()?;
        // Read before the pragma, so that a commit landing in between is seen next time.
        let headers = conn.wal_index_headers();
        if headers.is_some()
            && headers == conn.seen_headers
            && conn.checked_at.elapsed() < FULL_CHECK_EVERY
        {
            return Ok(false);
        }
        if data_version(&conn.db)? != conn.data_version {
            return Ok(true);
        }
        // Only this handle's own commits (or a checkpoint) moved the header.
        conn.seen_headers = headers;
        conn.checked_at = Instant::now();
        Ok(false)
    }

    fn read(&self, since: u64, epoch: u64, scope: Scope) -> StoreResult<Snapshot> {
        let mut conn = self.lock()?;
        // Taken before the read: a commit racing with it then shows up as a change next
        // time, rather than being missed.
        let headers_before = conn.wal_index_headers();
        let version_before = data_version(&conn.db)?;
        let tx = conn
            .db
            .transaction_with_behavior(TransactionBehavior::Deferred)?;
        let (seq, store_epoch) = read_state(&tx)?;
        let reset = epoch != store_epoch;
        let mut snap = Snapshot {
            seq,
            epoch: store_epoch,
            reset,
            whole: scope == Scope::All,
            ..Snapshot::default()
        };
        // Which records: every one, the changed ones, or (a reset reader wanting only
        // changes) none — `seq > seq` matches nothing.
        let from: i64 = match (scope, reset) {
            (Scope::All, _) => -1,
            (Scope::Changes, true) => seq as i64,
            (Scope::Changes, false) => since as i64,
        };
        {
            let mut q = tx.prepare_cached("SELECT name, value FROM meta")?;
            for row in q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))? {
                let (k, v) = row?;
                snap.meta.insert(k, v);
            }
            let mut q = tx.prepare_cached("SELECT role, kdf, wrapped_key, failures FROM pins")?;
            for row in q.query_map([], read_pin)? {
                let (role, pin) = row?;
                let role =
                    PinRole::from_code(role).ok_or(StoreError::Malformed("unknown PIN role"))?;
                snap.pins.insert(role, pin);
            }
            let mut q =
                tx.prepare_cached("SELECT uid, plain, sealed FROM objects WHERE seq > ?1")?;
            for row in q.query_map([from], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get(1)?, r.get(2)?))
            })? {
                let (uid, plain, sealed) = row?;
                snap.objects.push(record_of(uid, plain, sealed)?);
            }
            if !reset && scope == Scope::Changes {
                let mut q = tx.prepare_cached("SELECT uid FROM removed WHERE seq > ?1")?;
                for row in q.query_map([from], |r| r.get::<_, Vec<u8>>(0))? {
                    snap.removed.push(uid_of(row?)?);
                }
            }
        }
        tx.commit()?;
        conn.data_version = version_before;
        conn.seen_headers = headers_before;
        conn.checked_at = Instant::now();
        Ok(snap)
    }

    fn lookup(&self, key: &[u8]) -> StoreResult<Vec<ObjectUid>> {
        let conn = self.lock()?;
        let mut q = conn
            .db
            .prepare_cached("SELECT uid FROM lookup WHERE key = ?1")?;
        let uids = q.query_map([key], |r| r.get::<_, Vec<u8>>(0))?;
        uids.map(|uid| uid_of(uid?)).collect()
    }

    fn load(&self, uids: &[ObjectUid]) -> StoreResult<Loaded> {
        let mut conn = self.lock()?;
        let tx = conn
            .db
            .transaction_with_behavior(TransactionBehavior::Deferred)?;
        let (seq, epoch) = read_state(&tx)?;
        let mut loaded = Loaded {
            seq,
            epoch,
            objects: Vec::with_capacity(uids.len()),
            audit: AuditHead::default(),
        };
        {
            let mut q = tx.prepare_cached("SELECT plain, sealed FROM objects WHERE uid = ?1")?;
            for uid in uids {
                let row = q
                    .query_row([&uid[..]], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                if let Some((plain, sealed)) = row {
                    loaded.objects.push(record_of(uid.to_vec(), plain, sealed)?);
                }
            }
        }
        tx.commit()?;
        Ok(loaded)
    }

    fn object_count_hint(&self) -> StoreResult<u64> {
        // Rowids only grow (a rewrite takes a new one), so the largest bounds the count
        // from above, read from the end of the table's B-tree.
        let conn = self.lock()?;
        let max: Option<i64> = conn
            .db
            .prepare_cached("SELECT max(rowid) FROM objects")?
            .query_row([], |r| r.get(0))?;
        Ok(max.unwrap_or(0).max(0) as u64)
    }

    fn due(&self, now: i64) -> StoreResult<Due> {
        let mut conn = self.lock()?;
        let tx = conn
            .db
            .transaction_with_behavior(TransactionBehavior::Deferred)?;
        let mut due = Due::default();
        {
            let mut q = tx.prepare_cached("SELECT uid FROM objects WHERE due <= ?1")?;
            for uid in q.query_map([now], |r| r.get::<_, Vec<u8>>(0))? {
                due.now.push(uid_of(uid?)?);
            }
            due.next = tx
                .prepare_cached("SELECT min(due) FROM objects WHERE due > ?1")?
                .query_row([now], |r| r.get(0))?;
        }
        tx.commit()?;
        Ok(due)
    }

    fn commit(&self, changes: Vec<Change>) -> StoreResult<()> {
        let mut conn = self.lock()?;
        let tx = conn
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        apply(&tx, changes, None)?;
        tx.commit()?;
        Ok(())
    }

    fn transact(
        &self,
        uids: &[ObjectUid],
        lookup: &[&[u8]],
        decide: &mut dyn FnMut(&Loaded) -> Option<Vec<Change>>,
    ) -> StoreResult<bool> {
        let mut conn = self.lock()?;
        // IMMEDIATE takes the database's write lock before the first read, so what is
        // read here is what the changes are applied to: no other connection can commit
        // in between (a second `BEGIN IMMEDIATE` waits, up to the busy timeout).
        let tx = conn
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (seq, epoch) = read_state(&tx)?;
        let mut wanted: Vec<ObjectUid> = uids.to_vec();
        {
            let mut q = tx.prepare_cached("SELECT uid FROM lookup WHERE key = ?1")?;
            for key in lookup {
                for uid in q.query_map([key], |r| r.get::<_, Vec<u8>>(0))? {
                    wanted.push(uid_of(uid?)?);
                }
            }
        }
        wanted.sort_unstable();
        wanted.dedup();
        let mut loaded = Loaded {
            seq,
            epoch,
            objects: Vec::with_capacity(wanted.len()),
            audit: audit_head(&tx)?,
        };
        {
            let mut q = tx.prepare_cached("SELECT plain, sealed FROM objects WHERE uid = ?1")?;
            for uid in &wanted {
                let row = q
                    .query_row([&uid[..]], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                if let Some((plain, sealed)) = row {
                    loaded.objects.push(record_of(uid.to_vec(), plain, sealed)?);
                }
            }
        }
        let Some(changes) = decide(&loaded).filter(|c| !c.is_empty()) else {
            // Dropping the transaction rolls it back; nothing was written.
            return Ok(false);
        };
        apply(&tx, changes, Some(loaded.audit))?;
        tx.commit()?;
        Ok(true)
    }

    fn reserve_pin_attempt(
        &self,
        role: PinRole,
        limit: u32,
        now: i64,
        lease_until: i64,
    ) -> StoreResult<PinAttempt> {
        let mut conn = self.lock()?;
        let tx = conn
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // One statement checks the limit and takes the attempt: two processes cannot both
        // take the last one.
        let failures: Option<u32> = tx
            .prepare_cached(
                "UPDATE pins SET failures = failures + 1 \
                 WHERE role = ?1 AND (?2 = 0 OR failures < ?2) RETURNING failures",
            )?
            .query_row(params![role.code(), limit], |r| r.get(0))
            .optional()?;
        let answer = if let Some(failures) = failures {
            // An expired lease means its holders died: their count is dropped.
            tx.prepare_cached(
                "INSERT INTO pin_attempts (role, inflight, lease_until) VALUES (?1, 1, ?3) \
                 ON CONFLICT (role) DO UPDATE SET \
                 inflight = CASE WHEN lease_until <= ?2 THEN 1 ELSE inflight + 1 END, \
                 lease_until = max(lease_until, ?3)",
            )?
            .execute(params![role.code(), now, lease_until])?;
            PinAttempt::Reserved(failures)
        } else {
            let exists = tx
                .prepare_cached("SELECT 1 FROM pins WHERE role = ?1")?
                .query_row([role.code()], |_| Ok(()))
                .optional()?
                .is_some();
            if !exists {
                return Err(StoreError::Malformed("no PIN record for that role"));
            }
            let busy = tx
                .prepare_cached(
                    "SELECT 1 FROM pin_attempts \
                     WHERE role = ?1 AND inflight > 0 AND lease_until > ?2",
                )?
                .query_row(params![role.code(), now], |_| Ok(()))
                .optional()?
                .is_some();
            if busy {
                PinAttempt::Busy
            } else {
                PinAttempt::Locked
            }
        };
        tx.commit()?;
        Ok(answer)
    }

    fn settle_pin_attempt(&self, role: PinRole, right: bool) -> StoreResult<()> {
        let mut conn = self.lock()?;
        let tx = conn
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if right {
            tx.prepare_cached("UPDATE pins SET failures = 0 WHERE role = ?1 AND failures != 0")?
                .execute([role.code()])?;
        }
        tx.prepare_cached(
            "UPDATE pin_attempts SET inflight = inflight - 1 WHERE role = ?1 AND inflight > 0",
        )?
        .execute([role.code()])?;
        tx.commit()?;
        Ok(())
    }

    fn audit_log(&self) -> StoreResult<AuditLog> {
        let mut conn = self.lock()?;
        let tx = conn
            .db
            .transaction_with_behavior(TransactionBehavior::Deferred)?;
        let mut log = AuditLog {
            checkpoint: audit_mark(&tx, "audit_checkpoint")?,
            anchor: audit_mark(&tx, "audit_anchor")?,
            ..AuditLog::default()
        };
        {
            let mut q =
                tx.prepare_cached("SELECT seq, body, hash, mac FROM audit_events ORDER BY seq")?;
            // Read as any type: a row edited to hold text (or anything) must still be
            // read, so that verification names it.
            let bytes = |v: rusqlite::types::Value| match v {
                rusqlite::types::Value::Blob(b) => Some(b),
                rusqlite::types::Value::Text(t) => Some(t.into_bytes()),
                rusqlite::types::Value::Null => None,
                other => Some(format!("{other:?}").into_bytes()),
            };
            let rows = q.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    bytes(r.get(1)?).unwrap_or_default(),
                    bytes(r.get(2)?).unwrap_or_default(),
                    bytes(r.get(3)?),
                ))
            })?;
            for row in rows {
                let (seq, body, hash, mac) = row?;
                // A hash or MAC of the wrong length (an edited row) is read as one that
                // cannot verify, so `audit::verify` names the event rather than the read
                // failing.
                let lenient = |b: Vec<u8>| hash_of(b).unwrap_or([0xff; 32]);
                log.events.push(AuditRecord {
                    seq: seq as u64,
                    body,
                    hash: lenient(hash),
                    mac: mac.map(lenient),
                });
            }
        }
        tx.commit()?;
        Ok(log)
    }

    fn check_integrity(&self) -> StoreResult<()> {
        let conn = self.lock()?;
        let verdict: String = conn
            .db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if verdict == "ok" {
            Ok(())
        } else {
            Err(StoreError::Malformed("SQLite integrity check failed"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn fresh() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::create(&dir.path().join("t.db"), vec![]).unwrap();
        (dir, store)
    }

    #[test]
    fn sqlite_store_meets_the_store_contract() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let first = SqliteStore::create(&path, vec![]).unwrap();
        let second = SqliteStore::open(&path).unwrap();
        crate::store::contract::run(&first, &second);
    }

    #[test]
    fn sqlite_store_keeps_the_audit_trail_contract() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let first = SqliteStore::create(&path, vec![]).unwrap();
        let second = SqliteStore::open(&path).unwrap();
        crate::store::contract::audit(&first, &second);
        let restored = SqliteStore::create(&dir.path().join("r.db"), vec![]).unwrap();
        crate::store::contract::audit_restore(&restored);
    }

    #[test]
    fn racing_decisions_on_one_record_have_one_winner_across_handles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let first = SqliteStore::create(&path, vec![]).unwrap();
        let second = SqliteStore::open(&path).unwrap();
        // Two handles on one file, as two processes; four threads on each.
        crate::store::contract::race(&[&first, &second], 4, 50);
    }

    #[test]
    fn database_file_is_created_owner_only() {
        let (dir, store) = fresh();
        store
            .commit(vec![Change::PutMeta("x".into(), vec![1])])
            .unwrap();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let mode = entry.unwrap().metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn creating_over_an_existing_file_is_refused() {
        let (dir, _store) = fresh();
        assert!(SqliteStore::create(&dir.path().join("t.db"), vec![]).is_err());
    }

    #[test]
    fn newer_schema_is_refused() {
        let (dir, store) = fresh();
        store
            .lock()
            .unwrap()
            .db
            .execute_batch("PRAGMA user_version = 99")
            .unwrap();
        drop(store);
        assert!(matches!(
            SqliteStore::open(&dir.path().join("t.db")),
            Err(StoreError::SchemaVersion(99))
        ));
    }

    #[test]
    fn a_commit_elsewhere_is_seen_at_once_through_the_mapped_wal_index_header() {
        let (dir, first) = fresh();
        assert!(
            first.lock().unwrap().shm_page.is_some(),
            "the -shm page is mapped"
        );
        commits_elsewhere_are_seen_at_once(&dir, first);
    }

    #[test]
    fn a_commit_elsewhere_is_seen_at_once_through_the_wal_index_header_read_from_the_file() {
        let (dir, first) = fresh();
        first.lock().unwrap().shm_page = None;
        assert!(first.lock().unwrap().shm.is_some(), "the -shm file is read");
        commits_elsewhere_are_seen_at_once(&dir, first);
    }

    fn commits_elsewhere_are_seen_at_once(dir: &tempfile::TempDir, first: SqliteStore) {
        let second = SqliteStore::open(&dir.path().join("t.db")).unwrap();
        first.read(0, 0, Scope::Changes).unwrap();
        for n in 0..20u8 {
            // Back to back, well inside FULL_CHECK_EVERY: only the header can tell.
            assert!(!first.changed_elsewhere().unwrap());
            second
                .commit(vec![Change::PutMeta("n".into(), vec![n])])
                .unwrap();
            assert!(first.changed_elsewhere().unwrap(), "commit {n} seen");
            let (seq, epoch) = {
                let s = first.read(0, 0, Scope::Changes).unwrap();
                (s.seq, s.epoch)
            };
            assert!(seq > 0 && epoch > 0);
            first
                .commit(vec![Change::PutMeta("own".into(), vec![n])])
                .unwrap();
            assert!(!first.changed_elsewhere().unwrap(), "own commit {n}");
        }
    }

    #[test]
    fn the_wal_is_emptied_but_kept_when_the_last_connection_closes() {
        let (dir, store) = fresh();
        store
            .commit(vec![Change::PutMeta("k".into(), vec![1; 5000])])
            .unwrap();
        let wal = dir.path().join("t.db-wal");
        assert!(std::fs::metadata(&wal).unwrap().len() > 0);
        drop(store);
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0, "checkpointed");
        assert!(dir.path().join("t.db-shm").exists());
        let again = SqliteStore::open(&dir.path().join("t.db")).unwrap();
        let snap = again.read(0, 0, Scope::All).unwrap();
        assert_eq!(snap.meta.get("k"), Some(&vec![1; 5000]));
    }

    #[test]
    fn closing_does_not_wait_for_another_connections_transaction() {
        let (dir, store) = fresh();
        store
            .commit(vec![Change::PutMeta("k".into(), vec![1])])
            .unwrap();
        let other = Connection::open(dir.path().join("t.db")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let started = Instant::now();
        drop(store);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        other.execute_batch("COMMIT").unwrap();
        let again = SqliteStore::open(&dir.path().join("t.db")).unwrap();
        assert_eq!(
            again.read(0, 0, Scope::All).unwrap().meta.get("k"),
            Some(&vec![1])
        );
    }

    /// The -wal and -shm files now outlive connections, so a deleted token's may be left
    /// beside a new database of the same name; SQLite discards a WAL found beside an
    /// empty database file, which is what `create` makes first.
    #[test]
    fn a_new_database_does_not_inherit_a_leftover_wal() {
        let dir = tempfile::tempdir().unwrap();
        let old = SqliteStore::create(&dir.path().join("old.db"), vec![]).unwrap();
        old.commit(vec![Change::PutMeta("stale".into(), vec![7])])
            .unwrap();
        // A copy of the old token's WAL, taken while it still holds the commit.
        let wal = std::fs::read(dir.path().join("old.db-wal")).unwrap();
        assert!(!wal.is_empty());
        drop(old);
        std::fs::write(dir.path().join("t.db-wal"), &wal).unwrap();
        std::fs::write(dir.path().join("t.db-shm"), [0u8; 32768]).unwrap();
        let store = SqliteStore::create(&dir.path().join("t.db"), vec![]).unwrap();
        let snap = store.read(0, 0, Scope::All).unwrap();
        assert!(!snap.meta.contains_key("stale"));
        store.check_integrity().unwrap();
    }

    #[test]
    fn journal_is_wal_and_integrity_check_passes() {
        let (_dir, store) = fresh();
        let mode: String = store
            .lock()
            .unwrap()
            .db
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        store.check_integrity().unwrap();
    }
}
