//! Transactional persistence of one token: records, not PKCS#11 objects.
//!
//! A store holds a token's metadata (key/value), its PIN records, and its object records
//! (opaque plain and sealed byte strings under a 16-byte uid). Every `commit` is one
//! transaction. Readers ask for what changed since the sequence number they last saw, so
//! a process sees what other processes committed without reloading everything; and they
//! need not read every object at all: records carry lookup keys and a due time, given by
//! the layer above, by which the store finds them (`lookup`, `due`, `load`).
//! The store also keeps the token's audit trail (`audit.rs`): it numbers and chains each
//! event inside the transaction that writes it, with the change the event records.
//! This layer knows bytes, record kinds and versions; it must not know about PKCS#11
//! attributes or KMS types, and it never sees a PIN or an unsealed secret.

pub mod audit;
pub(crate) mod fork_gate;
#[cfg(test)] // for the unit tests of the layers above only
pub(crate) mod memory;
pub mod postgres;
pub(crate) mod seal;
pub(crate) mod sqlite;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::StoreError;
pub(crate) use audit::{AuditCheckpoint, AuditHead, AuditLog, AuditSeal};

pub(crate) type StoreResult<T> = std::result::Result<T, StoreError>;

/// The store's identifier of an object record; random, never reused.
pub type ObjectUid = [u8; 16];

/// Whose PIN a `PinRecord` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PinRole {
    So,
    User,
}

impl PinRole {
    pub const ALL: [PinRole; 2] = [PinRole::So, PinRole::User];

    fn code(self) -> i64 {
        match self {
            PinRole::So => 0,
            PinRole::User => 1,
        }
    }

    fn from_code(code: i64) -> Option<PinRole> {
        match code {
            0 => Some(PinRole::So),
            1 => Some(PinRole::User),
            _ => None,
        }
    }
}

/// The token master key wrapped under a key derived from one PIN.
#[derive(Clone, PartialEq, Eq)]
pub struct PinRecord {
    /// Encoded KDF parameters and salt (`seal::PinKdf`).
    pub kdf: Vec<u8>,
    /// The master key sealed under the PIN-derived key.
    pub wrapped_key: Vec<u8>,
    /// Consecutive failed attempts.
    pub failures: u32,
}

impl std::fmt::Debug for PinRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinRecord")
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

/// How the store can find an object record without reading it, computed by the layer
/// above from the record's contents; the store treats both parts as opaque.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordIndex {
    /// Byte strings a search may name (`lookup` finds the records holding one).
    pub lookup: Vec<Vec<u8>>,
    /// When something about the record falls due, in unix seconds (`due` finds them).
    pub due: Option<i64>,
}

/// One object as stored: plain attributes, and secret attributes sealed by the caller.
#[derive(Clone, PartialEq, Eq)]
pub struct ObjectRecord {
    pub uid: ObjectUid,
    pub plain: Vec<u8>,
    pub sealed: Option<Vec<u8>>,
    /// Written with the record; reads give it back empty (the reader recomputes it).
    pub index: RecordIndex,
}

impl std::fmt::Debug for ObjectRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectRecord")
            .field("uid", &self.uid)
            .field("plain_len", &self.plain.len())
            .field("sealed", &self.sealed.is_some())
            .finish()
    }
}

/// One mutation; a `commit` applies a list of them atomically.
#[derive(Debug, Clone)]
pub enum Change {
    PutMeta(String, Vec<u8>),
    /// `PutMeta` where the store holds no value of that name; nothing otherwise. For a
    /// marker that a first writer sets and only a later decision may replace (the token's
    /// record-authentication marker, written by the adoption of an older token: review
    /// 20a).
    PutMetaIfAbsent(String, Vec<u8>),
    PutPin(PinRole, PinRecord),
    /// Writes nothing; the whole commit fails with `StoreError::PinRecordChanged` unless
    /// the role's PIN record (as the commit's earlier changes leave it) is the one with
    /// KDF parameters `kdf`: the record a PIN was just checked against, so that what the
    /// check allowed (`C_SetPIN`, `C_InitToken`) does not undo a record set meanwhile
    /// (the SO's `C_InitPIN`, or `C_SetPIN`, of a PIN believed leaked).
    RequirePin {
        role: PinRole,
        kdf: Vec<u8>,
    },
    /// Writes nothing; the whole commit fails with `StoreError::MetaChanged` unless the
    /// metadata value `name` (as the commit's earlier changes leave it) is `value`
    /// (`None`: no value). So that a write judged against a value (the token's policy,
    /// `token::duties`) does not land after another writer changed it.
    RequireMeta {
        name: String,
        value: Option<Vec<u8>>,
    },
    /// Gives the role's PIN record new KDF parameters and a new wrapped key (a new PIN,
    /// or the same one rewrapped), keeping its failure count as the store holds it (the
    /// record's `failures` is not used: wrong PINs tried meanwhile stay counted), if it
    /// is still the one with KDF parameters `from_kdf`; nothing otherwise.
    RewrapPin {
        role: PinRole,
        from_kdf: Vec<u8>,
        record: PinRecord,
    },
    RemovePin(PinRole),
    PutObject(ObjectRecord),
    RemoveObject(ObjectUid),
    /// Replaces the index of an existing record without changing the record (or its
    /// sequence number): for rebuilding the index of records written before it existed.
    Reindex(ObjectUid, RecordIndex),
    /// Removes every object and PIN and starts a new epoch: readers must drop what they
    /// hold. Used by `C_InitToken` on an initialised token. The audit trail is kept.
    Wipe,
    /// Appends one audit event (an opaque body): the store gives it the next event
    /// number and its chain hash (`audit::link`) in this transaction. Several in one
    /// commit are numbered in order. `link` is the number and hash the caller computed
    /// against the head it read in this transaction (`audit::append`), taken when it is
    /// for the position and the previous hash the event gets, so the hash is not
    /// computed twice (`audit::next_link`).
    AppendEvent {
        body: Vec<u8>,
        link: Option<audit::Link>,
    },
    /// Stores the MAC of the head at event `seq` (made by the caller with `audit::append`
    /// against the head it read in this transaction, `Loaded::audit`).
    SealAudit(AuditSeal),
    /// Replaces the trail's anchor (the newest authenticated head, `audit::anchor_mac`).
    AnchorAudit(AuditCheckpoint),
    /// Deletes every event up to and including the checkpoint's, which must be stored
    /// with the checkpoint's hash (else the commit fails, writing nothing), and keeps the
    /// checkpoint as the start of the chain.
    PruneAudit(AuditCheckpoint),
    /// After `C_InitToken` changed the master key: replaces the checkpoint's MAC with
    /// `checkpoint`'s, removes every event's MAC and the anchor, and stores `seal` (the
    /// caller verified the trail under the old key; it then authenticates the head under
    /// the new one, with `AnchorAudit`). `checkpoint` is the one the caller verified
    /// (its sequence number and hash) with its MAC under the new key, `None` for a trail
    /// without one: unless the store holds exactly that checkpoint, the commit fails with
    /// `StoreError::AuditCheckpointChanged`, writing nothing (a prune committed since the
    /// trail was read would get the old checkpoint's MAC).
    RekeyAudit {
        checkpoint: Option<AuditCheckpoint>,
        seal: Option<AuditSeal>,
    },
    /// Writes a whole trail read from another store (`Store::audit_log`) as it is: the
    /// checkpoint, the anchor, and every event with its stored hash and MAC, nothing
    /// recomputed (a trail that does not verify must not verify after a copy either).
    /// Only into a store with no trail yet (else the commit fails, writing nothing): for
    /// copying a token (`token::copy`).
    RestoreAudit(Box<AuditLog>),
}

impl Change {
    /// An audit event whose number and hash the store computes.
    pub fn event(body: Vec<u8>) -> Change {
        Change::AppendEvent { body, link: None }
    }
}

/// Which object records a `read` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Those written or removed since `since`; none when the reader's epoch is not the
    /// store's (it holds nothing worth updating).
    Changes,
    /// Every live object.
    All,
}

/// What a reader learns from the store in one consistent read.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The store's change counter at the time of the read; pass it back as `since`.
    pub seq: u64,
    /// Bumped by `Change::Wipe`.
    pub epoch: u64,
    /// The reader's epoch was not the store's (which includes epoch 0, "never read"):
    /// the reader must forget every object it holds before applying `objects`.
    pub reset: bool,
    /// `objects` is every live object (`Scope::All`): the reader must forget any object
    /// not listed.
    pub whole: bool,
    pub meta: BTreeMap<String, Vec<u8>>,
    pub pins: BTreeMap<PinRole, PinRecord>,
    /// Objects written since `since`, or all of them when `whole`.
    pub objects: Vec<ObjectRecord>,
    /// Objects removed since `since` (empty when `reset` or `whole`).
    pub removed: Vec<ObjectUid>,
    /// How far the read saw the store's history, to pass back (`Store::applied`) once
    /// what it returned is applied.
    pub mark: ReadMark,
}

/// How far a read saw the store's history, in the store's own terms. A reader passes it
/// back (`Store::applied`) once its object table holds what the read returned; until
/// then the store answers `changed_elsewhere` as it did before the read, so that no
/// other thread of the reader takes the old table for current while the read is being
/// applied (a commit elsewhere that had returned before the read must be seen by every
/// use that starts after it).
#[derive(Debug, Clone, Copy, Default)]
pub enum ReadMark {
    /// Nothing to mark.
    #[default]
    None,
    /// SQLite: `PRAGMA data_version` and the WAL-index headers, both taken before the read.
    Sqlite {
        data_version: i64,
        headers: Option<[u8; 96]>,
    },
    /// The memory store's version, or PostgreSQL's change counter, as read.
    Counter(u64),
}

/// Object records read by uid, with the point of the store's history they were read at.
#[derive(Debug, Default)]
pub struct Loaded {
    pub seq: u64,
    pub epoch: u64,
    /// The live records among those asked for; a uid with no live record is left out.
    pub objects: Vec<ObjectRecord>,
    /// The audit trail's newest event, as read in the same transaction (`transact`
    /// only; `load` leaves it default).
    pub audit: AuditHead,
}

impl Loaded {
    /// Whether `epoch` (the epoch of a token a caller decided on; 0: none known) names
    /// another token than the one this transaction read: one re-initialised since.
    pub fn is_other_token(&self, epoch: u64) -> bool {
        epoch != 0 && epoch != self.epoch
    }
}

/// The records due at a given time, and when the next one after it falls due.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Due {
    pub now: Vec<ObjectUid>,
    pub next: Option<i64>,
}

/// The PIN record an attempt was counted in, and the only one it may be checked against
/// and settled in: the token's epoch and the record's KDF parameters (whose salt every
/// record written draws afresh: `C_InitPIN`, `C_SetPIN` and a rewrap replace them),
/// read together.
///
/// `attempt` numbers the attempt among those reserved at the record (1, 2, ...): a right
/// PIN forgives the attempts reserved up to it, never those reserved after it, whichever
/// settles first (review 15g: a right PIN reset the count to zero and so forgave wrong
/// guesses made while it was being checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinRecordId {
    pub epoch: u64,
    pub kdf: Vec<u8>,
    pub attempt: u64,
}

/// The answer to a PIN attempt reservation (`Store::reserve_pin_attempt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinAttempt {
    /// Reserved: counted in `record`, whose failure count including this attempt is
    /// `failures`.
    Reserved { failures: u32, record: PinRecordId },
    /// No attempt left, but attempts of others are in flight: ask again shortly.
    Busy,
    /// No attempt left.
    Locked,
    /// The store holds another token than the caller's view (`reserve_pin_attempt`'s
    /// `epoch`): catch up and ask again.
    OtherToken,
}

/// How long a reserved PIN attempt counts as in flight (its lease), in seconds: long
/// enough for any derivation, short enough that a process that died mid-attempt keeps
/// others waiting only that long.
pub const PIN_ATTEMPT_LEASE_SECS: i64 = 30;

/// The latest lease end a store believes, after `now`: two leases. One ending later was
/// given by a clock far ahead of this one (stepped back since, or another host's) and
/// counts as ended, or a dead attempt would stay in flight for as long as the clocks
/// differ (review 15h); one lease more leaves room for hosts a little ahead.
pub const fn latest_lease_end(now: i64) -> i64 {
    now.saturating_add(2 * PIN_ATTEMPT_LEASE_SECS)
}

/// A PIN's attempts as `Store::pin_counts` reads them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PinCount {
    /// Attempts counted as failures (`PinRecord::failures`), those in flight included.
    pub failures: u32,
    /// Of those, attempts still in flight: reserved and not settled, their lease not
    /// ended. Not yet known to be wrong.
    pub in_flight: u32,
}

impl PinCount {
    /// A PIN record's count of attempts and its attempts in flight as a store holds
    /// them; never more in flight than counted (an attempt in flight was counted when
    /// it was reserved).
    pub(crate) fn read(failures: u32, in_flight: i64) -> PinCount {
        PinCount {
            failures,
            in_flight: u32::try_from(in_flight).unwrap_or(u32::MAX).min(failures),
        }
    }
}

/// What settling a PIN attempt did (`Store::settle_pin_attempt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinSettle {
    /// Settled in the token the attempt was checked against.
    Settled,
    /// The store holds another token (re-initialised since the PIN record was read):
    /// nothing was written.
    OtherToken,
}

/// Where a token's records live. Implementations must make each `commit` atomic and
/// durable before returning, must return from a read only what is durable (SQLite's
/// group commit publishes a commit before its fsync: a read that may have seen one waits
/// for it), and must let several handles (processes) share one token.
pub trait Store: Send + Sync {
    /// Cheap check: has anyone else committed since the last read of this handle that
    /// its reader marked applied (`applied`), or since this handle last wrote?
    fn changed_elsewhere(&self) -> StoreResult<bool>;
    /// Reads metadata, PINs and the object records `scope` names, relative to what a
    /// reader saw at `since` within epoch `epoch`. Stores number epochs from 1, so epoch
    /// 0 means "never read".
    fn read(&self, since: u64, epoch: u64, scope: Scope) -> StoreResult<Snapshot>;
    /// The reader has applied the read that returned `mark` (`Snapshot::mark`), or found
    /// its table at or past it: what that read saw stops counting as a change elsewhere.
    /// Reads are not marked until then. A mark older than one applied before can only
    /// make the next check read again (whose read, applied or found old, marks again).
    fn applied(&self, mark: &ReadMark) -> StoreResult<()>;
    /// The uids of the live records whose index holds lookup key `key`.
    fn lookup(&self, key: &[u8]) -> StoreResult<Vec<ObjectUid>>;
    /// The live records among `uids`.
    fn load(&self, uids: &[ObjectUid]) -> StoreResult<Loaded>;
    /// The live records whose index holds lookup key `key`, read in one transaction
    /// (SQLite: one statement, two B-tree descents a record; PostgreSQL: one statement,
    /// a round trip fewer than `lookup` and `load`). The default, for a store that
    /// cannot, looks the key up and loads what it found, which a commit in between may
    /// leave out or add to, as two calls of the caller's would.
    fn load_by_key(&self, key: &[u8]) -> StoreResult<Loaded> {
        self.load(&self.lookup(key)?)
    }
    /// The records due at or before `now`, and the earliest due time after it.
    fn due(&self, now: i64) -> StoreResult<Due>;
    /// About how many object records there are, without counting them: never fewer than
    /// there are, possibly more (SQLite: the largest rowid).
    fn object_count_hint(&self) -> StoreResult<u64>;
    /// Applies `changes` in one transaction.
    fn commit(&self, changes: Vec<Change>) -> StoreResult<()>;
    /// Decides and writes in one transaction against the current records: reads the live
    /// records among `uids` and those whose index holds one of `lookup`, calls `decide` on
    /// them, and commits the changes it returns, all before any other writer (thread or
    /// process) can commit. `decide` returning `None` or no changes writes nothing.
    /// Answers whether a commit happened.
    ///
    /// This is how rules over records are made exact: two callers deciding on the same
    /// record are serialised, the second deciding on what the first wrote. SQLite holds
    /// its write lock from the read to the commit (`BEGIN IMMEDIATE`); the memory store
    /// its mutex. A server backend (PostgreSQL) would read the rows with
    /// `SELECT ... FOR UPDATE` (locking the lookup keys' rows too, or running the whole
    /// transaction SERIALIZABLE so that a record added under a lookup key meanwhile is
    /// a conflict), and retry on a serialisation failure: so `decide` may be called more
    /// than once, and only the changes of its last call are written. `decide` must be
    /// pure apart from what it captures, and must not call back into the store (the
    /// store's lock is held while it runs).
    fn transact(
        &self,
        uids: &[ObjectUid],
        lookup: &[&[u8]],
        decide: &mut dyn FnMut(&Loaded) -> Option<Vec<Change>>,
    ) -> StoreResult<bool>;
    /// `commit`, then `read(since, epoch, Scope::Changes)`: what a writer does to publish
    /// its own commit. A store may make both durable with one sync (SQLite's group
    /// commit, `sqlite/durable.rs`, waits once, after the read, for the WAL's fsync).
    fn commit_and_read(
        &self,
        changes: Vec<Change>,
        since: u64,
        epoch: u64,
    ) -> StoreResult<Snapshot> {
        self.commit(changes)?;
        self.read(since, epoch, Scope::Changes)
    }
    /// `transact`, then `read(since, epoch, Scope::Changes)`, as `commit_and_read`.
    fn transact_and_read(
        &self,
        uids: &[ObjectUid],
        lookup: &[&[u8]],
        decide: &mut dyn FnMut(&Loaded) -> Option<Vec<Change>>,
        since: u64,
        epoch: u64,
    ) -> StoreResult<(bool, Snapshot)> {
        let wrote = self.transact(uids, lookup, decide)?;
        Ok((wrote, self.read(since, epoch, Scope::Changes)?))
    }
    /// Reserves one attempt at a PIN before it is tried: in one atomic step, checks that
    /// its failure count is below `limit` (any count when `limit` is 0, "never locks"),
    /// adds one, and notes the attempt as in flight until `lease_until` (unix seconds).
    /// When no attempt is left, answers `Busy` while attempts of others are in flight
    /// (one of them may be right and reset the count: ask again when they settle) and
    /// `Locked` otherwise; nothing is written then. Every `Reserved` must be followed by
    /// `settle_pin_attempt`; a holder that dies leaves its attempt counted as a failure,
    /// and in flight until its lease ends.
    ///
    /// `limit` is the one of the token of `epoch` (the caller's view): when the store
    /// holds another token (re-initialised since, perhaps with another limit), nothing
    /// is written and the answer is `OtherToken`.
    fn reserve_pin_attempt(
        &self,
        role: PinRole,
        epoch: u64,
        limit: u32,
        now: i64,
        lease_until: i64,
    ) -> StoreResult<PinAttempt>;
    /// Ends an attempt reserved in `record` (`PinAttempt::Reserved`), the one it was
    /// checked against: no longer in flight; a right PIN sets the record's failure count
    /// to the number of attempts reserved after it (`record.attempt`), unless it is lower
    /// already (a later right PIN settled first), a wrong one leaves the attempt counted. When the store's epoch, read in
    /// the same transaction, is not the record's, writes nothing and answers
    /// `OtherToken`: the record was wiped with its count, and a PIN of another token must
    /// neither reset nor count against this one's. A right PIN of a record replaced
    /// since (other KDF parameters) resets nothing: the count is the new record's.
    fn settle_pin_attempt(
        &self,
        role: PinRole,
        right: bool,
        record: &PinRecordId,
    ) -> StoreResult<PinSettle>;
    /// Every PIN record's count of attempts and how many of them are in flight at `now`
    /// (reserved, not settled, their lease not ended), read in one transaction: what
    /// `C_GetTokenInfo`'s PIN flags are judged on.
    fn pin_counts(&self, now: i64) -> StoreResult<BTreeMap<PinRole, PinCount>>;
    /// The whole audit trail (checkpoint and events, in order), read in one transaction.
    fn audit_log(&self) -> StoreResult<AuditLog>;
    /// Verifies the store's own consistency (SQLite: `PRAGMA integrity_check`).
    fn check_integrity(&self) -> StoreResult<()>;
}

/// Where a provider's tokens live: one SQLite file each in a directory, or rows of one
/// PostgreSQL database (`store_url`).
#[derive(Debug, Clone)]
pub enum Backend {
    Files(PathBuf),
    Postgres(Arc<postgres::schema::Catalog>),
}

impl Backend {
    /// The SQLite file of the token with `serial` in `dir`.
    pub(crate) fn file_of(dir: &Path, serial: &str) -> PathBuf {
        dir.join(format!("{serial}.db"))
    }

    /// Makes token `serial`, holding `initial`; fails if it exists. Answers the store
    /// and where it is, for messages (never a password).
    pub fn create(
        &self,
        serial: &str,
        initial: Vec<Change>,
    ) -> StoreResult<(Box<dyn Store>, String)> {
        match self {
            Backend::Files(dir) => {
                let path = Backend::file_of(dir, serial);
                let store = sqlite::SqliteStore::create(&path, initial)?;
                Ok((Box::new(store), path.display().to_string()))
            }
            Backend::Postgres(catalog) => {
                let settings = catalog.settings();
                let store = postgres::PgStore::create(Arc::clone(settings), serial, initial)?;
                Ok((Box::new(store), format!("{} ({serial})", settings.shown())))
            }
        }
    }

    /// Opens the existing token `serial`. Answers the store and where it is.
    pub fn open(&self, serial: &str) -> StoreResult<(Box<dyn Store>, String)> {
        match self {
            Backend::Files(dir) => {
                let path = Backend::file_of(dir, serial);
                let store = sqlite::SqliteStore::open(&path)?;
                Ok((Box::new(store), path.display().to_string()))
            }
            Backend::Postgres(catalog) => {
                let settings = catalog.settings();
                let store = postgres::PgStore::open(Arc::clone(settings), serial)?;
                Ok((Box::new(store), format!("{} ({serial})", settings.shown())))
            }
        }
    }

    /// Opens the existing token `serial` to read it as it is: a token file of an older
    /// schema is refused (`StoreError::OlderSchema`), not upgraded in place. A database
    /// server's schema is the server's, not a token's, and is opened as for `open`.
    pub fn open_unchanged(&self, serial: &str) -> StoreResult<(Box<dyn Store>, String)> {
        match self {
            Backend::Files(dir) => {
                let path = Backend::file_of(dir, serial);
                let store = sqlite::SqliteStore::open_unchanged(&path)?;
                Ok((Box::new(store), path.display().to_string()))
            }
            Backend::Postgres(_) => self.open(serial),
        }
    }

    /// The metadata value `name` of token `serial`, read without changing the token
    /// (a token file of any schema version this build knows).
    pub fn stored_meta(&self, serial: &str, name: &str) -> StoreResult<Option<Vec<u8>>> {
        match self {
            Backend::Files(dir) => {
                sqlite::SqliteStore::stored_meta(&Backend::file_of(dir, serial), name)
            }
            Backend::Postgres(_) => {
                let (store, _) = self.open(serial)?;
                Ok(store.read(0, 0, Scope::Changes)?.meta.remove(name))
            }
        }
    }

    /// The serials of the tokens here, in order (a directory's `*.db` files, or the
    /// database's token rows). A directory that does not exist holds none.
    pub fn serials(&self) -> StoreResult<Vec<String>> {
        match self {
            Backend::Files(dir) => {
                let entries = match std::fs::read_dir(dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(e) => return Err(StoreError::Io(e)),
                };
                let mut serials = Vec::new();
                for entry in entries {
                    let path = entry?.path();
                    if path.extension().is_some_and(|x| x == "db") {
                        if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                            serials.push(stem.to_string());
                        }
                    }
                }
                serials.sort();
                Ok(serials)
            }
            Backend::Postgres(catalog) => catalog.serials(),
        }
    }

    /// Deletes token `serial` and all its records (its file and the file's journal, or
    /// its rows). Only for a token nothing else uses: the token tool's undo of a copy
    /// that failed its verification.
    pub fn remove(&self, serial: &str) -> StoreResult<()> {
        match self {
            Backend::Files(dir) => {
                let path = Backend::file_of(dir, serial);
                for suffix in ["-wal", "-shm", "-sync", ""] {
                    let mut name = path.clone().into_os_string();
                    name.push(suffix);
                    match std::fs::remove_file(&name) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(StoreError::Io(e))
                        }
                        _ => {}
                    }
                }
                Ok(())
            }
            Backend::Postgres(catalog) => {
                postgres::PgStore::open(Arc::clone(catalog.settings()), serial)?.remove_token()
            }
        }
    }
}

#[cfg(test)]
mod attack_review15g;
#[cfg(test)]
mod attack_review15h;
#[cfg(test)]
mod attack_review15i;
#[cfg(test)]
pub(crate) mod contract;
#[cfg(test)]
mod pin_scenarios;
