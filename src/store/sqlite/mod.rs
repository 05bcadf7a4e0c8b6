//! The embedded default store: one SQLite database per token.
//!
//! WAL journal, group commit (`durable.rs`: `synchronous=NORMAL`, then an fsync of the WAL
//! outside the connection lock before any call returns), a busy timeout, `BEGIN IMMEDIATE`
//! for every write after the writers' turn (an `flock` of the `-wal` file, so that
//! writers of several processes do not wait in SQLite's busy handler), one descriptor
//! per process for each file SQLite locks (`files.rs`), and a schema version in
//! `PRAGMA user_version` (version 1 databases are upgraded in place on open). Files are
//! created 0600 before SQLite opens them (SQLite gives the -wal and -shm files the same
//! mode); those two stay between connections, the WAL emptied on close.
//! Other processes' commits are noticed through `PRAGMA data_version`, asked only when
//! the WAL-index header in the `-shm` file has changed (read from a shared mapping of the
//! file's first page, compared without a lock with the headers last found unchanged,
//! `seen.rs`; or with one `pread` where that cannot be mapped; the pragma costs a
//! read transaction and two lock calls). Records' lookup keys live in their own indexed
//! table, each naming its record's row (and in that row, so a rewrite finds its old keys
//! without a second index), and their due times in an indexed column, so finding one
//! record never reads the others. Every SQLite call, opening and closing included, holds
//! a pass through the fork gate (`fork_gate.rs`). This module must not interpret record
//! contents.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{MappedMutexGuard, Mutex, MutexGuard};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::audit::{AuditHead, AuditLog};
use super::fork_gate::{self, Entered};
use super::{
    Change, Due, Loaded, ObjectRecord, ObjectUid, PinAttempt, PinCount, PinRecord, PinRecordId,
    PinRole, PinSettle, ReadMark, RecordIndex, Scope, Snapshot, Store, StoreResult,
};
use crate::error::StoreError;
use crate::os::clock;
use crate::os::file_lock;
use crate::os::shared_page::SharedPage;
use durable::{WalSync, Writing};
use files::Interest;
use schema::{
    configure, to_version_5, to_version_6, to_version_7, BUSY_TIMEOUT, SCHEMA_V1, SCHEMA_VERSION,
    UPGRADE_V1_TO_V2, UPGRADE_V2_TO_V3, UPGRADE_V3_TO_V4,
};
use seen::SeenHeaders;
use trail::audit_head;
use writes::apply;

mod board;
mod durable;
mod files;
mod pins;
mod schema;
mod seen;
mod trail;
mod writes;

/// The longest wait for the writers' turn before a writer goes on without it: far past
/// any commit's length (a fraction of a millisecond), and short beside SQLite's busy
/// timeout, which bounds the wait that follows (`lock_for_write`).
const TURN_WAIT: Duration = Duration::from_secs(1);

/// The two copies of the WAL-index header at the start of the `-shm` file (48 bytes
/// each; https://sqlite.org/walformat.html). Every commit rewrites them — the change
/// counter `iChange` and the last valid frame `mxFrame` at least — so while they read
/// the same, nobody has committed.
pub(super) const WAL_INDEX_HEADERS: usize = 96;

/// However unchanged the header reads, `PRAGMA data_version` is asked at least this
/// often: the header is a shortcut, and this bounds what trusting it could ever cost.
const FULL_CHECK_EVERY: Duration = Duration::from_millis(100);

struct Conn {
    db: Connection,
    /// `PRAGMA data_version` when this handle last looked.
    data_version: i64,
    /// The `-shm` file, when it could be opened (the pragma alone is used otherwise): the
    /// process's one descriptor of it (`files.rs`).
    shm: Option<Arc<File>>,
    /// The WAL-index headers as read just before this handle last found no change.
    seen_headers: Option<[u8; WAL_INDEX_HEADERS]>,
    /// When `PRAGMA data_version` was last asked, on the coarse monotonic clock
    /// (`os/clock.rs`: a tick behind at most, against a period of 100 ms).
    checked_at: Duration,
    /// The metadata and PIN records this connection last read, with the store's count of
    /// their changes then (`read_config`).
    config: Option<Config>,
}

/// What a snapshot carries besides records: every metadata entry and PIN record, as read
/// at `count` changes of them (`state.config`, kept by triggers, `schema.rs`).
struct Config {
    count: i64,
    meta: BTreeMap<String, Vec<u8>>,
    pins: BTreeMap<PinRole, PinRecord>,
}

impl Conn {
    /// The WAL-index headers, from `page` (the `-shm` file's first page, mapped) or else
    /// with one `pread` of the file.
    fn wal_index_headers(&self, page: Option<&SharedPage>) -> Option<[u8; WAL_INDEX_HEADERS]> {
        if let Some(page) = page {
            return Some(page.read());
        }
        let mut headers = [0u8; WAL_INDEX_HEADERS];
        let shm = self.shm.as_ref()?;
        shm.read_exact_at(&mut headers, 0).ok()?;
        Some(headers)
    }
}

pub(crate) struct SqliteStore {
    path: PathBuf,
    /// `None` only inside `drop`, which closes the connection within the fork gate.
    conn: Mutex<Option<Conn>>,
    /// The `-shm` file's first page, mapped when that worked (then no `pread` is
    /// needed), and the headers last found unchanged there, published: `changed_elsewhere`
    /// compares the two without a lock.
    shm_page: Option<SharedPage>,
    published: SeenHeaders,
    /// Group commit (`durable.rs`): the connection commits with `synchronous=NORMAL` and
    /// every call waits here, outside the connection's lock, for an fsync of the WAL
    /// covering what it wrote or read. `None` when the `-wal` or `-shm` file could not be
    /// opened: the connection then keeps `synchronous=FULL` (SQLite syncs each commit).
    sync: Option<WalSync>,
    /// The `-wal` file's path, opened for each writers' turn (`lock_for_write`).
    wal_path: PathBuf,
    /// Whether taking the turn failed once (said in the log once; writes go on without).
    turn_failed: AtomicBool,
    /// This store's interest in the process's descriptors of the database and `-shm`
    /// files (`files.rs`); `None` only inside `drop`, which ends it within the fork gate
    /// after everything holding one of the descriptors.
    interest: Option<Interest>,
}

/// The connection, locked, with a pass through the fork gate (`fork_gate.rs`): every
/// SQLite call happens through one. Fields drop in order: the writers' turn (if held),
/// the writer's count for the commit delay (if it still counts), the lock, then the
/// pass.
struct Locked<'a> {
    /// The writers' turn, for a write (released first, or as soon as the write ends).
    turn: Option<file_lock::Exclusive>,
    /// For a write, this thread counted as on its way to a commit until it takes its
    /// ticket (`durable.rs`, the commit delay).
    writing: Option<Writing<'a>>,
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
        // Then what holds the shared descriptors, then the interest in them: the
        // registry's lock is only ever taken with a pass through the gate (`files.rs`).
        drop(self.sync.take());
        drop(self.interest.take());
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

/// What opening a token database of an older schema does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upgrade {
    /// Upgrades it in place: the token is to be used.
    InPlace,
    /// Refuses it: the file is to be read as it is.
    Refuse,
}

impl SqliteStore {
    /// Creates a new token database at `path` (which must not exist) holding `initial`.
    pub(crate) fn create(path: &Path, initial: Vec<Change>) -> StoreResult<SqliteStore> {
        // O_EXCL: two processes initialising the same serial cannot both succeed.
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        let result = (|| {
            let store = {
                let _gate = fork_gate::enter();
                // Dropped, on an error, after the connection and before the pass.
                let interest = Interest::register(path);
                let mut db = Connection::open(path)?;
                configure(&db)?;
                let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                tx.execute_batch(&format!(
                    "{SCHEMA_V1} {UPGRADE_V1_TO_V2} {UPGRADE_V2_TO_V3} {UPGRADE_V3_TO_V4}"
                ))?;
                to_version_5(&tx)?;
                to_version_6(&tx)?;
                to_version_7(&tx)?;
                tx.commit()?;
                SqliteStore::wrap(interest, path, db)?
            };
            // Enters the gate itself (after the pass above is given back).
            store.commit(initial)?;
            Ok(store)
        })();
        if result.is_err() {
            // Leave no half-made token behind for the slot scan to trip over.
            for suffix in ["", "-wal", "-shm", "-sync"] {
                let mut p = path.as_os_str().to_owned();
                p.push(suffix);
                let _ = std::fs::remove_file(PathBuf::from(p));
            }
        }
        result
    }

    /// Opens an existing token database to use it: one of an older schema is upgraded
    /// in place first.
    pub(crate) fn open(path: &Path) -> StoreResult<SqliteStore> {
        SqliteStore::open_with(path, Upgrade::InPlace)
    }

    /// Opens an existing token database to read it as it is: one of an older schema is
    /// refused (`StoreError::OlderSchema`), not upgraded (review 17a: `copy-token`
    /// upgraded its source, a kept pre-upgrade copy, in place).
    pub(crate) fn open_unchanged(path: &Path) -> StoreResult<SqliteStore> {
        SqliteStore::open_with(path, Upgrade::Refuse)
    }

    fn open_with(path: &Path, upgrade: Upgrade) -> StoreResult<SqliteStore> {
        if !path.is_file() {
            return Err(StoreError::Io(std::io::Error::from(
                std::io::ErrorKind::NotFound,
            )));
        }
        let _gate = fork_gate::enter();
        // Dropped, on an error, after the connection and before the pass.
        let interest = Interest::register(path);
        let mut db = Connection::open(path)?;
        configure(&db)?;
        let version: i64 = db.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        match version {
            SCHEMA_VERSION => {}
            older if (1..SCHEMA_VERSION).contains(&older) => match upgrade {
                Upgrade::InPlace => schema::upgrade(&mut db)?,
                Upgrade::Refuse => return Err(StoreError::OlderSchema(older)),
            },
            other => return Err(StoreError::SchemaVersion(other)),
        }
        SqliteStore::wrap(interest, path, db)
    }

    /// The metadata value `name` of the token database at `path`, read without changing
    /// the file whatever its schema version (every version keeps its metadata in one
    /// table): what the module needs to know before it decides to use a file.
    pub(crate) fn stored_meta(path: &Path, name: &str) -> StoreResult<Option<Vec<u8>>> {
        if !path.is_file() {
            return Err(StoreError::Io(std::io::Error::from(
                std::io::ErrorKind::NotFound,
            )));
        }
        let _gate = fork_gate::enter();
        let interest = Interest::register(path);
        let db = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        db.busy_timeout(BUSY_TIMEOUT)?;
        // Were it the last connection, its close would checkpoint the WAL (as `configure`).
        db.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        let version: i64 = db.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if !(1..=SCHEMA_VERSION).contains(&version) {
            return Err(StoreError::SchemaVersion(version));
        }
        let value = db
            .query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?;
        // The connection closes before the interest in its files ends.
        drop(db);
        drop(interest);
        Ok(value)
    }

    /// Called with a pass through the fork gate.
    /// `interest` comes first: parameters drop in reverse order, so on an error the
    /// connection closes before the interest in its files ends.
    fn wrap(interest: Interest, path: &Path, db: Connection) -> StoreResult<SqliteStore> {
        // The pragma's read transaction has made SQLite open (or create) the -shm file;
        // it stays while this connection is open (and, with `configure`'s settings,
        // after it closes too: SQLite no longer deletes it).
        let data_version = data_version(&db)?;
        let shm = interest.file(files::Locked::Shm).ok();
        let shm_page = shm.as_deref().and_then(SharedPage::map);
        // Syncs what FULL committed so far (schema, upgrade) before NORMAL takes over.
        let sync = match (&shm, interest.file(files::Locked::Database)) {
            (Some(shm), Ok(db_file)) => WalSync::open(&interest.path(""), db_file, shm),
            _ => None,
        };
        if sync.is_some() {
            db.execute_batch("PRAGMA synchronous = NORMAL;")?;
        }
        Ok(SqliteStore {
            path: path.to_path_buf(),
            wal_path: interest.path("-wal"),
            turn_failed: AtomicBool::new(false),
            interest: Some(interest),
            sync,
            shm_page,
            published: SeenHeaders::default(),
            conn: Mutex::new(Some(Conn {
                db,
                data_version,
                shm,
                seen_headers: None,
                checked_at: clock::monotonic(),
                config: None,
            })),
        })
    }

    /// Records `headers` (read just before the data version was) as found unchanged now
    /// on `conn`, and publishes them for `changed_elsewhere`'s look without the lock.
    fn found_unchanged(&self, conn: &mut Conn, headers: Option<[u8; WAL_INDEX_HEADERS]>) {
        let now = clock::monotonic();
        conn.seen_headers = headers;
        conn.checked_at = now;
        if let Some(headers) = &headers {
            self.published.publish(headers, now);
        }
    }

    /// The connection, after entering the fork gate.
    fn lock(&self) -> StoreResult<Locked<'_>> {
        let gate = fork_gate::enter();
        let conn = MutexGuard::try_map(self.conn.lock(), Option::as_mut)
            .map_err(|_| StoreError::Malformed("the store's connection is closed"))?;
        Ok(Locked {
            turn: None,
            writing: None,
            conn,
            _gate: gate,
        })
    }

    /// The connection, for a write: refused once an fsync of this handle failed (after
    /// a failed fsync the kernel may have dropped the pages, so a later commit would be
    /// published to other processes on top of a loss this handle already reported).
    ///
    /// Holds the writers' turn until the write transaction has ended: an exclusive
    /// `flock` of the `-wal` file (`os/file_lock.rs`), on a descriptor opened for this
    /// turn alone, that writers of every process take before `BEGIN IMMEDIATE`, trying
    /// every few tens of microseconds where SQLite's busy handler sleeps a millisecond and
    /// more, several times the length of a commit. SQLite's lock still decides: the turn
    /// only orders the waiting, and a writer that cannot have it (the file cannot be
    /// opened or locked, or another holds it past `TURN_WAIT`) goes on without it and
    /// meets SQLite's lock as before, whose busy timeout then bounds the rest.
    fn lock_for_write(&self) -> StoreResult<Locked<'_>> {
        // Counted from before the wait for the connection: a sync about to begin holds
        // back for writers already on their way (durable.rs).
        let writing = self.sync.as_ref().map(WalSync::writing);
        let mut conn = self.lock()?;
        conn.writing = writing;
        if let Some(sync) = &self.sync {
            sync.check()?;
        }
        let turn = files::open_regular(&self.wal_path)
            .and_then(|wal| file_lock::lock_exclusive_within(wal, TURN_WAIT));
        match turn {
            Ok(turn) => conn.turn = turn,
            Err(e) => {
                if !self.turn_failed.swap(true, Ordering::Relaxed) {
                    log::warn!(
                        "{}: writers' turn unavailable ({e}); waiting in SQLite's lock",
                        self.path.display()
                    );
                }
            }
        }
        Ok(conn)
    }

    /// The changes since `since`, read on the connection that has just written, with the
    /// writers' turn given back first: the read needs no write lock, so other processes'
    /// writers may go on.
    fn changes_after_write(
        &self,
        conn: &mut Locked<'_>,
        since: u64,
        epoch: u64,
    ) -> StoreResult<Snapshot> {
        conn.turn = None;
        read_locked(conn, self.shm_page.as_ref(), since, epoch, Scope::Changes)
    }

    /// Called with the connection locked, after a write transaction: the sync that will
    /// cover its commit (`None` only without group commit) or, if it `wrote` nothing (a
    /// refusal decided on what it read), `seen`'s answer for it. The writer's count, if
    /// it was counted ([`SqliteStore::lock_for_write`]), ends here.
    fn written(&self, conn: &mut Locked<'_>, wrote: bool) -> Option<u64> {
        match conn.writing.take() {
            Some(writing) => writing.ticket(!wrote),
            None if wrote => self.sync.as_ref().map(WalSync::ticket),
            None => self.seen(),
        }
    }

    /// Called with the connection locked, after a read: the sync to wait for when the
    /// read may have seen a commit (this process's or another's) no sync covers yet.
    fn seen(&self) -> Option<u64> {
        self.sync
            .as_ref()
            .filter(|s| !s.covers_now())
            .map(WalSync::ticket)
    }

    /// Waits, with the connection's lock released, for the sync `ticket` names.
    fn settle(&self, ticket: Option<u64>) -> StoreResult<()> {
        if let (Some(sync), Some(ticket)) = (&self.sync, ticket) {
            sync.wait(ticket)?;
        }
        Ok(())
    }
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
    let (seq, epoch): (i64, i64) = tx
        .prepare_cached("SELECT seq, epoch FROM state WHERE id = 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
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

/// Every metadata entry and PIN record, inside `tx`, which read `count` in the state row.
fn read_config(tx: &rusqlite::Transaction<'_>, count: i64) -> StoreResult<Config> {
    let mut config = Config {
        count,
        meta: BTreeMap::new(),
        pins: BTreeMap::new(),
    };
    let mut q = tx.prepare_cached("SELECT name, value FROM meta")?;
    for row in q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))? {
        let (k, v) = row?;
        config.meta.insert(k, v);
    }
    let mut q = tx.prepare_cached("SELECT role, kdf, wrapped_key, failures FROM pins")?;
    for row in q.query_map([], read_pin)? {
        let (role, pin) = row?;
        let role = PinRole::from_code(role).ok_or(StoreError::Malformed("unknown PIN role"))?;
        config.pins.insert(role, pin);
    }
    Ok(config)
}

/// `Store::read` on the locked connection (no waiting for a sync).
fn read_locked(
    conn: &mut Conn,
    page: Option<&SharedPage>,
    since: u64,
    epoch: u64,
    scope: Scope,
) -> StoreResult<Snapshot> {
    // Taken before the read: a commit racing with it then shows up as a change next
    // time, rather than being missed.
    let headers_before = conn.wal_index_headers(page);
    let version_before = data_version(&conn.db)?;
    let tx = conn
        .db
        .transaction_with_behavior(TransactionBehavior::Deferred)?;
    let (seq, store_epoch, count) = tx
        .prepare_cached("SELECT seq, epoch, config FROM state WHERE id = 1")?
        .query_row([], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get(2)?))
        })?;
    let (seq, store_epoch) = (seq as u64, store_epoch as u64);
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
        let config = match conn.config.take() {
            Some(config) if config.count == count => config,
            _ => read_config(&tx, count)?,
        };
        snap.meta = config.meta.clone();
        snap.pins = config.pins.clone();
        conn.config = Some(config);
        let mut q = tx.prepare_cached("SELECT uid, plain, sealed FROM objects WHERE seq > ?1")?;
        for row in q.query_map([from], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get(1)?, r.get(2)?))
        })? {
            let (uid, plain, sealed) = row?;
            snap.objects.push(record_of(uid, plain, sealed)?);
        }
        if !reset && scope == Scope::Changes {
            // A record written again after its removal is listed as written only: its
            // row in `removed` stays (a creation does not look there), older than it.
            let mut q = tx.prepare_cached(
                "SELECT uid FROM removed r WHERE r.seq > ?1 AND NOT EXISTS \
                 (SELECT 1 FROM objects o WHERE o.uid = r.uid AND o.seq > r.seq)",
            )?;
            for row in q.query_map([from], |r| r.get::<_, Vec<u8>>(0))? {
                snap.removed.push(uid_of(row?)?);
            }
        }
    }
    tx.commit()?;
    // Marked as seen only once the reader has applied it (`Store::applied`).
    snap.mark = ReadMark::Sqlite {
        data_version: version_before,
        headers: headers_before,
    };
    Ok(snap)
}

/// `Store::transact` on the locked connection (no waiting for a sync).
fn transact_locked(
    conn: &mut Conn,
    uids: &[ObjectUid],
    lookup: &[&[u8]],
    decide: &mut dyn FnMut(&Loaded) -> Option<Vec<Change>>,
) -> StoreResult<bool> {
    // IMMEDIATE takes the database's write lock before the first read, so what is
    // read here is what the changes are applied to: no other connection can commit
    // in between (a second `BEGIN IMMEDIATE` waits, up to the busy timeout).
    let tx = conn
        .db
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (seq, epoch) = read_state(&tx)?;
    let mut wanted: Vec<ObjectUid> = uids.to_vec();
    {
        let mut q = tx.prepare_cached(KEY_TO_UIDS)?;
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
    apply(&tx, changes, Some((loaded.seq, loaded.audit)))?;
    tx.commit()?;
    Ok(true)
}

/// `Store::commit` on the locked connection (no waiting for a sync).
fn commit_locked(conn: &mut Conn, changes: Vec<Change>) -> StoreResult<()> {
    let tx = conn
        .db
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    apply(&tx, changes, None)?;
    tx.commit()?;
    Ok(())
}

/// The uids of the records whose index holds a key: two B-tree descents a record (the
/// lookup key, then the row it names).
const KEY_TO_UIDS: &str =
    "SELECT o.uid FROM lookup l JOIN objects o ON o.rid = l.rid WHERE l.key = ?1";

/// The records `load_locked` reads.
enum Wanted<'a> {
    Uids(&'a [ObjectUid]),
    /// Those whose index holds this lookup key.
    Key(&'a [u8]),
}

/// `Store::load` and `Store::load_by_key` on the locked connection: one read transaction.
fn load_locked(conn: &mut Conn, wanted: Wanted<'_>) -> StoreResult<Loaded> {
    let tx = conn
        .db
        .transaction_with_behavior(TransactionBehavior::Deferred)?;
    let (seq, epoch) = read_state(&tx)?;
    let mut loaded = Loaded {
        seq,
        epoch,
        objects: Vec::new(),
        audit: AuditHead::default(),
    };
    match wanted {
        Wanted::Uids(uids) => {
            loaded.objects.reserve(uids.len());
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
        Wanted::Key(key) => {
            let mut q = tx.prepare_cached(
                "SELECT o.uid, o.plain, o.sealed FROM lookup l JOIN objects o ON o.rid = l.rid \
                 WHERE l.key = ?1",
            )?;
            let mut rows = q.query([key])?;
            while let Some(row) = rows.next()? {
                loaded
                    .objects
                    .push(record_of(row.get(0)?, row.get(1)?, row.get(2)?)?);
            }
        }
    }
    tx.commit()?;
    Ok(loaded)
}

impl SqliteStore {
    fn load_wanted(&self, wanted: Wanted<'_>) -> StoreResult<Loaded> {
        let (loaded, ticket) = {
            let mut conn = self.lock()?;
            let loaded = load_locked(&mut conn, wanted)?;
            (loaded, self.seen())
        };
        self.settle(ticket)?;
        Ok(loaded)
    }

    fn object_count_hint_impl(&self) -> StoreResult<u64> {
        // Rowids are distinct and positive, so the largest bounds the count from above,
        // read from the end of the table's B-tree.
        let conn = self.lock()?;
        let max: Option<i64> = conn
            .db
            .prepare_cached("SELECT max(rowid) FROM objects")?
            .query_row([], |r| r.get(0))?;
        Ok(max.unwrap_or(0).max(0) as u64)
    }

    fn due_impl(&self, now: i64) -> StoreResult<(Due, Option<u64>)> {
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
        Ok((due, self.seen()))
    }
}

impl Store for SqliteStore {
    fn changed_elsewhere(&self) -> StoreResult<bool> {
        if let Some(page) = &self.shm_page {
            if self
                .published
                .still(|i| page.word(i), clock::monotonic(), FULL_CHECK_EVERY)
            {
                return Ok(false);
            }
        }
        let mut conn = self.lock()?;
        // Read before the pragma, so that a commit landing in between is seen next time.
        let headers = conn.wal_index_headers(self.shm_page.as_ref());
        if headers.is_some()
            && headers == conn.seen_headers
            && clock::within(conn.checked_at, clock::monotonic(), FULL_CHECK_EVERY)
        {
            return Ok(false);
        }
        if data_version(&conn.db)? != conn.data_version {
            return Ok(true);
        }
        // Only this handle's own commits (or a checkpoint) moved the header.
        self.found_unchanged(&mut conn, headers);
        Ok(false)
    }

    fn applied(&self, mark: &ReadMark) -> StoreResult<()> {
        if let ReadMark::Sqlite {
            data_version,
            headers,
        } = *mark
        {
            let mut conn = self.lock()?;
            conn.data_version = data_version;
            self.found_unchanged(&mut conn, headers);
        }
        Ok(())
    }

    fn read(&self, since: u64, epoch: u64, scope: Scope) -> StoreResult<Snapshot> {
        let (snap, ticket) = {
            let mut conn = self.lock()?;
            let snap = read_locked(&mut conn, self.shm_page.as_ref(), since, epoch, scope)?;
            (snap, self.seen())
        };
        self.settle(ticket)?;
        Ok(snap)
    }

    fn lookup(&self, key: &[u8]) -> StoreResult<Vec<ObjectUid>> {
        let (uids, ticket) = {
            let conn = self.lock()?;
            let mut q = conn.db.prepare_cached(KEY_TO_UIDS)?;
            let uids = q.query_map([key], |r| r.get::<_, Vec<u8>>(0))?;
            let uids = uids
                .map(|uid| uid_of(uid?))
                .collect::<StoreResult<Vec<_>>>()?;
            (uids, self.seen())
        };
        self.settle(ticket)?;
        Ok(uids)
    }

    fn load(&self, uids: &[ObjectUid]) -> StoreResult<Loaded> {
        self.load_wanted(Wanted::Uids(uids))
    }

    fn load_by_key(&self, key: &[u8]) -> StoreResult<Loaded> {
        self.load_wanted(Wanted::Key(key))
    }

    fn object_count_hint(&self) -> StoreResult<u64> {
        self.object_count_hint_impl()
    }

    fn due(&self, now: i64) -> StoreResult<Due> {
        let (due, ticket) = self.due_impl(now)?;
        self.settle(ticket)?;
        Ok(due)
    }

    fn commit(&self, changes: Vec<Change>) -> StoreResult<()> {
        let ticket = {
            let mut conn = self.lock_for_write()?;
            commit_locked(&mut conn, changes)?;
            self.written(&mut conn, true)
        };
        self.settle(ticket)
    }

    fn transact(
        &self,
        uids: &[ObjectUid],
        lookup: &[&[u8]],
        decide: &mut dyn FnMut(&Loaded) -> Option<Vec<Change>>,
    ) -> StoreResult<bool> {
        let (wrote, ticket) = {
            let mut conn = self.lock_for_write()?;
            let wrote = transact_locked(&mut conn, uids, lookup, decide)?;
            // A refusal is decided on what was read: that must be durable too.
            (wrote, self.written(&mut conn, wrote))
        };
        self.settle(ticket)?;
        Ok(wrote)
    }

    fn commit_and_read(
        &self,
        changes: Vec<Change>,
        since: u64,
        epoch: u64,
    ) -> StoreResult<Snapshot> {
        let (snap, ticket) = {
            let mut conn = self.lock_for_write()?;
            commit_locked(&mut conn, changes)?;
            let snap = self.changes_after_write(&mut conn, since, epoch)?;
            // Taken after the read: the one sync covers the write and all it read.
            (snap, self.written(&mut conn, true))
        };
        self.settle(ticket)?;
        Ok(snap)
    }

    fn transact_and_read(
        &self,
        uids: &[ObjectUid],
        lookup: &[&[u8]],
        decide: &mut dyn FnMut(&Loaded) -> Option<Vec<Change>>,
        since: u64,
        epoch: u64,
    ) -> StoreResult<(bool, Snapshot)> {
        let (wrote, snap, ticket) = {
            let mut conn = self.lock_for_write()?;
            let wrote = transact_locked(&mut conn, uids, lookup, decide)?;
            let snap = self.changes_after_write(&mut conn, since, epoch)?;
            let ticket = self.written(&mut conn, wrote);
            (wrote, snap, ticket)
        };
        self.settle(ticket)?;
        Ok((wrote, snap))
    }

    fn reserve_pin_attempt(
        &self,
        role: PinRole,
        epoch: u64,
        limit: u32,
        now: i64,
        lease_until: i64,
    ) -> StoreResult<PinAttempt> {
        let (answer, ticket) = {
            let mut conn = self.lock_for_write()?;
            let answer = pins::reserve(&mut conn.db, role, epoch, limit, now, lease_until)?;
            // A refusal (Busy, Locked) wrote nothing but was decided on what was read.
            (answer, self.written(&mut conn, true))
        };
        self.settle(ticket)?;
        Ok(answer)
    }

    fn settle_pin_attempt(
        &self,
        role: PinRole,
        right: bool,
        record: &PinRecordId,
    ) -> StoreResult<PinSettle> {
        let (answer, ticket) = {
            let mut conn = self.lock_for_write()?;
            let answer = pins::settle(&mut conn.db, role, right, record)?;
            // `OtherToken` wrote nothing but was decided on what was read.
            (answer, self.written(&mut conn, true))
        };
        self.settle(ticket)?;
        Ok(answer)
    }

    fn pin_counts(&self, now: i64) -> StoreResult<BTreeMap<PinRole, PinCount>> {
        let (counts, ticket) = {
            let mut conn = self.lock()?;
            let counts = pins::counts(&mut conn.db, now)?;
            (counts, self.seen())
        };
        self.settle(ticket)?;
        Ok(counts)
    }

    fn audit_log(&self) -> StoreResult<AuditLog> {
        let (log, ticket) = {
            let mut conn = self.lock()?;
            let tx = conn
                .db
                .transaction_with_behavior(TransactionBehavior::Deferred)?;
            let log = trail::read_log(&tx)?;
            tx.commit()?;
            (log, self.seen())
        };
        self.settle(ticket)?;
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
mod tests;
