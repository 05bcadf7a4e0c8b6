//! Transactional persistence of one token: records, not PKCS#11 objects.
//!
//! A store holds a token's metadata (key/value), its PIN records, and its object records
//! (opaque plain and sealed byte strings under a 16-byte uid). Every `commit` is one
//! transaction. Readers ask for what changed since the sequence number they last saw, so
//! a process sees what other processes committed without reloading everything.
//! This layer knows bytes, record kinds and versions; it must not know about PKCS#11
//! attributes or KMS types, and it never sees a PIN or an unsealed secret.

pub mod memory;
pub mod seal;
pub mod sqlite;

use std::collections::BTreeMap;

use crate::error::StoreError;

pub type StoreResult<T> = std::result::Result<T, StoreError>;

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

/// One object as stored: plain attributes, and secret attributes sealed by the caller.
#[derive(Clone, PartialEq, Eq)]
pub struct ObjectRecord {
    pub uid: ObjectUid,
    pub plain: Vec<u8>,
    pub sealed: Option<Vec<u8>>,
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
    PutPin(PinRole, PinRecord),
    RemovePin(PinRole),
    PutObject(ObjectRecord),
    RemoveObject(ObjectUid),
    /// Removes every object and PIN and starts a new epoch: readers must drop what they
    /// hold. Used by `C_InitToken` on an initialised token.
    Wipe,
}

/// What a reader learns from the store in one consistent read.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The store's change counter at the time of the read; pass it back as `since`.
    pub seq: u64,
    /// Bumped by `Change::Wipe`.
    pub epoch: u64,
    /// True when `objects` is the whole set (the reader's epoch was not the store's,
    /// which includes epoch 0, "never read"): the reader must forget objects not listed.
    pub complete: bool,
    pub meta: BTreeMap<String, Vec<u8>>,
    pub pins: BTreeMap<PinRole, PinRecord>,
    /// Objects written since `since` (or all, when `complete`).
    pub objects: Vec<ObjectRecord>,
    /// Objects removed since `since` (empty when `complete`).
    pub removed: Vec<ObjectUid>,
}

/// Where a token's records live. Implementations must make each `commit` atomic and
/// durable before returning, and must let several handles (processes) share one token.
pub trait Store: Send + Sync {
    /// Cheap check: has anyone else committed since this handle last read or wrote?
    fn changed_elsewhere(&self) -> StoreResult<bool>;
    /// Reads what changed since `since` within epoch `epoch`. Stores number epochs from
    /// 1, so epoch 0 (or any other than the store's) gives the complete set.
    fn read(&self, since: u64, epoch: u64) -> StoreResult<Snapshot>;
    /// Applies `changes` in one transaction.
    fn commit(&self, changes: Vec<Change>) -> StoreResult<()>;
    /// Adds one to a PIN's failure count atomically and returns the new count.
    fn count_pin_failure(&self, role: PinRole) -> StoreResult<u32>;
    /// Sets a PIN's failure count to zero (no write when it already is).
    fn reset_pin_failures(&self, role: PinRole) -> StoreResult<()>;
    /// Verifies the store's own consistency (SQLite: `PRAGMA integrity_check`).
    fn check_integrity(&self) -> StoreResult<()>;
}

#[cfg(test)]
pub(crate) mod contract;
