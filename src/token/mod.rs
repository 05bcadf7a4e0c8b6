//! One token: its store, its cached view of the store, this process's login state, and
//! its objects.
//!
//! Lock order inside a token (see docs/architecture.md): `kms_decisions` → `sessions` →
//! `login` → `view` → `objects`; the store's own lock is innermost. No token lock is held across a store
//! commit or a PIN derivation: a change is committed first and then published by
//! re-reading the store (persist, then publish). This module must not see raw pointers
//! or `CK_RV`s.

mod audit;
mod authority;
pub(crate) mod clock;
pub mod copy;
mod derive;
mod duties;
#[cfg(test)]
mod epoch_tests;
#[cfg(test)]
mod judged_tests;
pub(crate) mod keys;
mod kms;
mod login;
mod objects;
#[cfg(test)]
mod read_window_tests;
mod records;
#[cfg(test)]
mod review17b_tests;
#[cfg(test)]
mod review18a_tests;
#[cfg(test)]
mod review18c_tests;
#[cfg(test)]
mod review18e_tests;
#[cfg(test)]
mod review20a_tests;
#[cfg(test)]
mod review20b_tests;
#[cfg(test)]
mod review20c_tests;
#[cfg(test)]
mod review21b_tests;
#[cfg(test)]
mod review22a_tests;
#[cfg(test)]
mod review22d_tests;
#[cfg(test)]
mod separation_tests;
#[cfg(test)]
mod test_store;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::config::Config;
use crate::error::{Error, Result, StoreError};
use crate::ids::SlotId;
use crate::kms::audit::{AuditEvent, Operation};
use crate::kms::clock::Clock;
use crate::object::shared::SharedTable;
use crate::object::table::{HandleSource, ObjectTable, SessionHandle};
use crate::object::{index, Object};
use crate::store::postgres::{PgSettings, PgStore};
use crate::store::seal::{self, MasterKey, PinKdf};
use crate::store::sqlite::SqliteStore;
use crate::store::{Backend, Change, ObjectUid, PinRecord, PinRole, Scope, Snapshot, Store};

pub use audit::{Trail, TrailEntry};
pub use kms::shape;
pub(crate) use login::LoggedIn;
pub use login::UserKind;
pub use objects::Caller;

pub const LABEL_LEN: usize = 32;
pub const MIN_PIN_LEN: usize = 4;
pub const MAX_PIN_LEN: usize = 255;

pub(crate) const META_SERIAL: &str = "serial";
const META_SLOT_ID: &str = "slot_id";
const META_LABEL: &str = "label";
/// The marker that the token's records are authenticated (`records::record_auth_marker`).
const META_RECORD_AUTH: &str = "record_auth";
/// The token's PIN lockout limit (decimal text), fixed at `C_InitToken`.
const META_MAX_PIN_FAILURES: &str = "max_pin_failures";
/// The limit of a token made before the limit was stored with it (docs/security.md):
/// the built-in default, written into the token at the next SO login.
const LEGACY_MAX_PIN_FAILURES: u32 = 10;
/// Present ("on") on a token under the separation-of-duties policy (`token::duties`):
/// written at `C_InitToken` by a process configured with it, or at the first login of
/// such a process into an older token, and never removed but by a re-initialisation.
const META_SEPARATION_OF_DUTIES: &str = "separation_of_duties";
/// The `object::index::VERSION` every record's store index was made by.
const META_OBJECT_INDEX: &str = "object_index";

/// A process whose searches keep missing the cache loads the whole token once: after
/// this many lookups answered by the store, or one per `FULL_LOAD_PER_LOOKUPS` objects if
/// that is more. Like renting until the rent would pay for buying, this keeps the total
/// within a small factor of the better of the two for any pattern of searches: a few
/// keys used never cost a full load, and many distinct searches stop paying SQLite
/// round trips once they have paid about an eighth of it.
const MIN_COLD_LOOKUPS: u64 = 64;
const FULL_LOAD_PER_LOOKUPS: u64 = 8;

/// How many times an object load is retried when other threads keep moving the cache
/// past the point the store was read at (each retry first catches up).
const LOAD_ATTEMPTS: usize = 16;

/// What `C_GetTokenInfo` reports, before it is put into C structures.
#[derive(Debug, Clone)]
pub struct TokenStatus {
    pub label: [u8; LABEL_LEN],
    pub serial: String,
    pub user_pin_initialized: bool,
    pub user_failures: Option<u32>,
    pub so_failures: u32,
    pub max_failures: u32,
    pub session_count: usize,
    pub rw_session_count: usize,
}

/// What every token of the process shares: configuration, handle source, clock.
#[derive(Debug)]
pub struct Shared {
    pub config: Arc<Config>,
    pub handles: HandleSource,
    pub clock: Arc<dyn Clock>,
}

/// The store's metadata and PIN records as last read, with the point of the store's
/// history they were read at: a PIN record is of the token of `epoch`, and a read older
/// than the view never replaces it (`Token::apply_snapshot`).
#[derive(Debug)]
struct View {
    /// The epoch and sequence number of the read this view came from.
    epoch: u64,
    seq: u64,
    label: [u8; LABEL_LEN],
    /// The stored lockout limit; `None` on a token made before it was stored.
    max_pin_failures: Option<u32>,
    /// The token is under the separation-of-duties policy (`META_SEPARATION_OF_DUTIES`).
    separation_of_duties: bool,
    /// The record-authentication marker (`records::record_auth_marker`), which a
    /// logged-in process can read the policy from.
    record_auth: Option<Vec<u8>>,
    pins: BTreeMap<PinRole, PinRecord>,
}

pub struct Token {
    pub slot_id: SlotId,
    pub serial: String,
    /// Where the store is (a file, or a server and serial), for messages.
    location: String,
    store: Box<dyn Store>,
    shared: Arc<Shared>,
    /// Sessions open on this token in this process: handle → read/write.
    sessions: Mutex<BTreeMap<SessionHandle, bool>>,
    login: Mutex<login::Login>,
    /// `login`'s who, readable without its lock.
    who_now: Arc<login::WhoNow>,
    view: RwLock<View>,
    objects: SharedTable,
    /// Held while a KMS decision is made and applied (`kms/key_records.rs`): serialises this
    /// process's decisions on session objects. Taken before every other token lock.
    kms_decisions: Mutex<()>,
    /// Searches this process answered through the store (`load_matching`).
    cold_lookups: std::sync::atomic::AtomicU64,
    /// A read of the store failed, perhaps the one that publishes a commit of this
    /// process: the store counts its handle's own commits as seen (SQLite's
    /// `data_version`, PostgreSQL's sequence number), so only this flag makes the next
    /// call read again. Without it a host whose read-back of its own DisableKey failed
    /// (a PostgreSQL connection lost or a statement cancelled between the commit and the
    /// read) kept using the key as Enabled until another host wrote (review 22b).
    must_read: std::sync::atomic::AtomicBool,
    /// Steps a unit test runs at named points of a call (`Token::test_point`).
    #[cfg(test)]
    test_steps: Mutex<Vec<(&'static str, TestStep)>>,
}

/// A unit test's step, run at a named point of a call with no token lock held: another
/// process's re-initialisation placed exactly between two steps of this one
/// (`epoch_tests.rs`).
#[cfg(test)]
type TestStep = Box<dyn FnOnce(&Token) + Send>;

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("slot_id", &self.slot_id)
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}

/// The associated data of a PIN record. Version 2 marks a token whose records are
/// authenticated (`records`); version 1 records predate that and are rewrapped at the
/// first login that opens one.
fn master_aad(serial: &str, role: PinRole) -> Vec<u8> {
    let who = match role {
        PinRole::So => "so",
        PinRole::User => "user",
    };
    format!("kmshsm/master/v2/{serial}/{who}").into_bytes()
}

pub(crate) fn check_pin_len(pin: &[u8]) -> Result<()> {
    if (MIN_PIN_LEN..=MAX_PIN_LEN).contains(&pin.len()) {
        Ok(())
    } else {
        Err(Error::PinLenRange)
    }
}

impl Token {
    /// Opens an initialised token from its database file. Reads its metadata and PIN
    /// records only; objects are loaded when first needed.
    pub fn open(path: &Path, shared: Arc<Shared>) -> Result<Token> {
        let store = SqliteStore::open(path)?;
        Token::open_store(Box::new(store), path.display().to_string(), shared)
    }

    /// Opens token `serial` of a PostgreSQL database.
    pub(crate) fn open_postgres(
        settings: &Arc<PgSettings>,
        serial: &str,
        shared: Arc<Shared>,
    ) -> Result<Token> {
        let store = PgStore::open(Arc::clone(settings), serial)?;
        let location = format!("{} ({serial})", settings.shown());
        Token::open_store(Box::new(store), location, shared)
    }

    fn open_store(store: Box<dyn Store>, location: String, shared: Arc<Shared>) -> Result<Token> {
        let mut snap = store.read(0, 0, Scope::Changes)?;
        if snap.meta.get(META_OBJECT_INDEX).map(Vec::as_slice) != Some(index::VERSION) {
            reindex(store.as_ref())?;
            snap = store.read(0, 0, Scope::Changes)?;
        }
        let text = |k: &str| {
            snap.meta
                .get(k)
                .and_then(|v| String::from_utf8(v.clone()).ok())
                .ok_or(StoreError::Malformed("token metadata"))
        };
        let serial = text(META_SERIAL)?;
        let slot_id = text(META_SLOT_ID)?
            .parse::<u64>()
            .map(SlotId::new)
            .map_err(|_| StoreError::Malformed("slot id"))?;
        Token::assemble(location, slot_id, serial, store, &snap, shared)
    }

    /// Initialises a new token on a free slot: a fresh master key wrapped under the SO PIN.
    pub fn create(
        backend: &Backend,
        slot_id: SlotId,
        serial: &str,
        label: [u8; LABEL_LEN],
        so_pin: &[u8],
        shared: Arc<Shared>,
    ) -> Result<Token> {
        check_pin_len(so_pin)?;
        let master = MasterKey::generate()?;
        let so = Token::pin_record(&master, serial, PinRole::So, so_pin, &shared.config)?;
        let mut initial = vec![
            Change::PutMeta(META_SERIAL.into(), serial.as_bytes().to_vec()),
            Change::PutMeta(META_SLOT_ID.into(), slot_id.to_string().into_bytes()),
            Change::PutMeta(META_LABEL.into(), label.to_vec()),
            Change::PutMeta(META_OBJECT_INDEX.into(), index::VERSION.to_vec()),
            Change::PutMeta(
                META_RECORD_AUTH.into(),
                records::record_auth_marker(&master, serial, shared.config.separation_of_duties),
            ),
            pin_limit_meta(shared.config.max_pin_failures),
            Change::PutPin(PinRole::So, so),
        ];
        initial.extend(separation_meta(&shared.config));
        // The first event of every token, authenticated under its first master key.
        let mut init = AuditEvent::new(shared.clock.now(), serial, Operation::InitToken);
        init.role = Some("SO".into());
        initial.extend(crate::store::audit::append(
            &Default::default(),
            vec![init.encode()],
            Some(&audit::audit_key(&master)),
        ));
        let (store, location) = backend.create(serial, initial)?;
        let snap = store.read(0, 0, Scope::Changes)?;
        Token::assemble(location, slot_id, serial.to_string(), store, &snap, shared)
    }

    fn assemble(
        location: String,
        slot_id: SlotId,
        serial: String,
        store: Box<dyn Store>,
        snap: &Snapshot,
        shared: Arc<Shared>,
    ) -> Result<Token> {
        let mut objects = ObjectTable::default();
        // A fresh table takes any snapshot.
        objects.apply(snap, &shared.handles)?;
        // The table holds what the read saw: it stops counting as a change elsewhere.
        store.applied(&snap.mark)?;
        let login = login::Login::default();
        Ok(Token {
            slot_id,
            serial,
            location,
            store,
            shared,
            sessions: Mutex::new(BTreeMap::new()),
            who_now: Arc::clone(&login.now),
            login: Mutex::new(login),
            view: RwLock::new(View::from_snapshot(snap)),
            objects: SharedTable::new(objects),
            kms_decisions: Mutex::new(()),
            cold_lookups: std::sync::atomic::AtomicU64::new(0),
            must_read: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            test_steps: Mutex::new(Vec::new()),
        })
    }

    fn pin_record(
        master: &MasterKey,
        serial: &str,
        role: PinRole,
        pin: &[u8],
        config: &Config,
    ) -> Result<PinRecord> {
        let kdf = PinKdf::fresh(&config.kdf)?;
        let wrapped_key = seal::wrap_master_key(master, &kdf, pin, &master_aad(serial, role))?;
        Ok(PinRecord {
            kdf: kdf.encode(),
            wrapped_key,
            failures: 0,
        })
    }

    /// Runs the step a unit test armed at `point`, once (`epoch_tests.rs`); nothing
    /// outside tests. Called with no token lock held.
    #[cfg_attr(not(test), allow(unused_variables))]
    fn test_point(&self, point: &'static str) {
        #[cfg(test)]
        {
            let step = {
                let mut steps = self.test_steps.lock();
                let found = steps.iter().position(|(p, _)| *p == point);
                found.map(|i| steps.remove(i).1)
            };
            if let Some(step) = step {
                step(self);
            }
        }
    }

    /// Where the token's store is (a file, or a server and serial), for messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Picks up what other processes committed, if anything, and applies what time
    /// has made due (expired material, expired import parameters).
    pub(crate) fn refresh(&self) -> Result<()> {
        if self.changed()? {
            self.sync()?;
        }
        self.sweep()
    }

    /// Whether the store may hold what the object table does not: another process's
    /// commit, or one of this process's whose read failed (`must_read`).
    fn changed(&self) -> Result<bool> {
        use std::sync::atomic::Ordering;
        Ok(self.must_read.load(Ordering::Acquire) || self.store.changed_elsewhere()?)
    }

    /// `result`, noting a failure: a store call that may have committed and whose read
    /// did not publish it leaves the next call to read again (`must_read`).
    fn noting_failed_read<T>(&self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            self.must_read
                .store(true, std::sync::atomic::Ordering::Release);
        }
        result
    }

    /// `Store::transact`, noting a failure: one reported after its commit was made (a
    /// failed fsync, a connection lost after the COMMIT) returns before the caller's
    /// read-back, and the store counts its own commit as seen (review 22d).
    pub(super) fn transact(
        &self,
        uids: &[ObjectUid],
        lookup: &[&[u8]],
        decide: &mut dyn FnMut(&crate::store::Loaded) -> Option<Vec<Change>>,
    ) -> Result<bool> {
        self.noting_failed_read(
            self.store
                .transact(uids, lookup, decide)
                .map_err(Error::from),
        )
    }

    /// Re-reads the store and publishes it. Called after every own commit.
    fn sync(&self) -> Result<()> {
        self.read_and_apply(Scope::Changes).map(|_| ())
    }

    /// Reads the store (the changes since the cache, or every object) and applies it;
    /// `false` when another thread had already applied a newer read.
    fn read_and_apply(&self, scope: Scope) -> Result<bool> {
        // Cleared before the read: a commit whose read failed before this one began is
        // covered by it; a failure of this one sets it again.
        self.must_read
            .store(false, std::sync::atomic::Ordering::Release);
        let (seq, epoch) = self.objects.read().seq();
        let read = self
            .store
            .read(seq, epoch, scope)
            .map_err(Error::from)
            .and_then(|snap| self.apply_snapshot(&snap));
        self.noting_failed_read(read)
    }

    /// Publishes `snap`; `false` as `read_and_apply`.
    fn apply_snapshot(&self, snap: &Snapshot) -> Result<bool> {
        {
            // A read older than the view (another thread's, applied late) must not bring
            // back an older token's PIN records: a login would open the old master key
            // and bind it to the new token's epoch. Reads at the same point (a PIN count
            // moves no sequence number) replace it.
            let mut view = self.view.write();
            if (snap.epoch, snap.seq) >= (view.epoch, view.seq) {
                let mut next = View::from_snapshot(snap);
                // The policy, once this process has seen it on a token, stays for as long
                // as it is that token: only `C_InitToken`, a new epoch, takes it off, so a
                // marker gone from the store meanwhile was removed outside the module.
                next.separation_of_duties |= view.separation_of_duties && view.epoch == snap.epoch;
                *view = next;
            }
        }
        // Re-initialised elsewhere: the master key changed and every handle is void. Judged
        // against the table as it is when the read is applied, not as it was when the
        // read was made: another thread may have applied the new token meanwhile and
        // logged in to it, which a late read of that same token must not undo. The login
        // is forgotten, the session objects go and the read is applied under one hold
        // of the table (`login` before `objects`), so no session object of the old
        // token can be added in between.
        let newer_token = |table_epoch: u64| table_epoch != 0 && snap.epoch > table_epoch;
        // The table's epoch first, its read lock released: `login` comes before
        // `objects` in the lock order.
        let table_epoch = self.objects.read().seq().1;
        let mut login = newer_token(table_epoch).then(|| self.login.lock());
        let applied = {
            let mut objects = self.objects.write();
            if let Some(login) = login.as_mut() {
                if newer_token(objects.seq().1) {
                    login.clear();
                    objects.remove_session_objects(None);
                }
            }
            objects.apply(snap, &self.shared.handles)?
        };
        drop(login);
        // Only now does what the read saw stop counting as a change elsewhere: until
        // here another thread's check must not take the old table for current. A read
        // the table was already at or past (`false`) is marked too: it hides nothing,
        // and left unmarked, a change that moved no sequence number (a PIN attempt
        // elsewhere) would be read again on every call.
        self.store.applied(&snap.mark)?;
        Ok(applied)
    }

    /// Caches every token object (a search no index can narrow).
    fn load_all(&self) -> Result<()> {
        for _ in 0..LOAD_ATTEMPTS {
            if self.objects.read().is_complete() {
                return Ok(());
            }
            self.read_and_apply(Scope::All)?;
        }
        Err(Error::CacheContention)
    }

    /// Caches every token object whose store index holds `key`. After the first time,
    /// the snapshots keep those objects current, so the store is not asked again; after
    /// many such first times, the whole token is loaded instead (`MIN_COLD_LOOKUPS`).
    fn load_matching(&self, key: &[u8]) -> Result<()> {
        let epoch = {
            let table = self.objects.read();
            if table.is_resolved(key) {
                return Ok(());
            }
            table.seq().1
        };
        let cold = 1 + self
            .cold_lookups
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if cold >= MIN_COLD_LOOKUPS
            && cold >= self.store.object_count_hint()? / FULL_LOAD_PER_LOOKUPS
        {
            if !self.objects.read().is_complete() {
                log::info!(
                    "token {}: {cold} searches missed the object cache; loading every object",
                    self.serial
                );
            }
            return self.load_all();
        }
        self.cache_loaded(|| Ok(Some(self.store.load_by_key(key)?)))?;
        self.objects.write().mark_resolved(key, epoch);
        Ok(())
    }

    /// Caches the token objects `uids` that are not cached yet.
    fn load_uids(&self, uids: &[ObjectUid]) -> Result<()> {
        self.cache_loaded(|| {
            let missing: Vec<ObjectUid> = {
                let table = self.objects.read();
                uids.iter()
                    .filter(|uid| !table.has_token_object(uid))
                    .copied()
                    .collect()
            };
            if missing.is_empty() {
                return Ok(None);
            }
            Ok(Some(self.store.load(&missing)?))
        })
    }

    /// Caches the records `read` reads (`None`: nothing left to read), reading again
    /// after catching up while the cache had moved past the read.
    fn cache_loaded(
        &self,
        mut read: impl FnMut() -> Result<Option<crate::store::Loaded>>,
    ) -> Result<()> {
        for _ in 0..LOAD_ATTEMPTS {
            let Some(loaded) = read()? else {
                return Ok(());
            };
            if self
                .objects
                .write()
                .add_loaded(&loaded, &self.shared.handles)?
            {
                return Ok(());
            }
            self.sync()?;
        }
        Err(Error::CacheContention)
    }

    /// Commits `changes`, decided on the tokens of epochs `decided_in`, and publishes the
    /// result (`commit_decided`).
    pub(super) fn commit_in(&self, decided_in: &[Option<u64>], changes: Vec<Change>) -> Result<()> {
        self.commit_decided(decided_in, &mut |_| changes.clone())
    }

    /// The epoch of the token this process's view is of (`Snapshot::epoch`).
    pub(super) fn view_epoch(&self) -> u64 {
        self.objects.read().seq().1
    }

    /// Commits what `decide` makes of the store's state, read in the same transaction,
    /// and publishes the result (read with the commit: one durable sync covers both).
    /// Nothing is written unless the store still holds the token the change was decided
    /// on: the one this process's view is of, every one of `decided_in` (the epochs of
    /// the objects the change was made of and of the keys it was sealed under, each
    /// read with its object or key: `entry_with_epoch`, `master_with_epoch`), and the
    /// one the logged-in master key belongs to now. After a re-initialisation
    /// elsewhere, changes decided on the old token (under its master key, its login,
    /// its handles) have no place in the new one. The new token is then published (this
    /// process logged out, its session objects gone, as at any re-initialisation seen)
    /// and the call answers `TokenReinitialized`.
    pub(super) fn commit_decided(
        &self,
        decided_in: &[Option<u64>],
        decide: &mut dyn FnMut(&crate::store::Loaded) -> Vec<Change>,
    ) -> Result<()> {
        self.commit_decided_on(&[], &[], decided_in, decide)
    }

    /// `commit_decided`, with the records of `uids`, and those the lookup keys `lookup`
    /// name, read in the transaction (`Loaded::objects`) for `decide` to judge.
    pub(super) fn commit_decided_on(
        &self,
        uids: &[ObjectUid],
        lookup: &[&[u8]],
        decided_in: &[Option<u64>],
        decide: &mut dyn FnMut(&crate::store::Loaded) -> Vec<Change>,
    ) -> Result<()> {
        let login_epoch = self.login.lock().master_epoch();
        let (seq, view) = self.objects.read().seq();
        let mut stale = false;
        let written = self.store.transact_and_read(
            uids,
            lookup,
            &mut |loaded| {
                let other = |epoch: u64| loaded.is_other_token(epoch);
                stale = other(view)
                    || decided_in.iter().flatten().any(|e| other(*e))
                    || login_epoch.is_some_and(other);
                (!stale).then(|| decide(loaded))
            },
            seq,
            view,
        );
        let (_, snap) = self.noting_failed_read(written.map_err(Error::from))?;
        self.noting_failed_read(self.apply_snapshot(&snap))?;
        if stale {
            // A login of a token older than the one this commit found goes too, even where
            // the view had caught up; not a login to a newer token still, made while this
            // commit's read was on its way (its snapshot is older than the table then).
            let mut login = self.login.lock();
            if login.master_epoch().is_some_and(|e| e < snap.epoch) {
                self.logout_locked(&mut login);
            }
            return Err(Error::TokenReinitialized);
        }
        Ok(())
    }

    pub fn status(&self) -> Result<TokenStatus> {
        self.refresh()?;
        let (session_count, rw_session_count) = {
            let sessions = self.sessions.lock();
            (sessions.len(), sessions.values().filter(|rw| **rw).count())
        };
        // The PIN flags count wrong PINs: an attempt still in flight (a C_Login deriving
        // its key now, here or in another process) is counted in the store from the
        // moment it is reserved, but is not known to be wrong, and is left out.
        let counts = self.store.pin_counts(self.now())?;
        let wrong = |role| {
            counts
                .get(&role)
                .map(|c: &crate::store::PinCount| c.failures.saturating_sub(c.in_flight))
        };
        let view = self.view.read();
        Ok(TokenStatus {
            label: view.label,
            serial: self.serial.clone(),
            user_pin_initialized: view.pins.contains_key(&PinRole::User),
            user_failures: wrong(PinRole::User),
            so_failures: wrong(PinRole::So).unwrap_or(0),
            max_failures: view.max_pin_failures.unwrap_or(LEGACY_MAX_PIN_FAILURES),
            session_count,
            rw_session_count,
        })
    }

    /// `C_InitToken` on an initialised token: the SO PIN must match; everything is wiped
    /// and a new master key is made.
    pub(crate) fn reinitialize(&self, so_pin: &[u8], label: [u8; LABEL_LEN]) -> Result<()> {
        check_pin_len(so_pin)?;
        // As `set_pin`: an SO record replaced between the check and the wipe refuses the
        // wipe, and the SO PIN is checked again.
        login::again_while_pin_record_changes(|| self.reinitialize_once(so_pin, label))
    }

    /// One try of `reinitialize`.
    fn reinitialize_once(&self, so_pin: &[u8], label: [u8; LABEL_LEN]) -> Result<()> {
        if !self.sessions.lock().is_empty() {
            return Err(Error::SessionExists);
        }
        self.refresh()?;
        let epoch = self.view_epoch();
        let (old, _, checked) = self.verify_pin(PinRole::So, so_pin, Operation::InitToken)?;
        if checked.epoch != epoch {
            return Err(Error::TokenReinitialized);
        }
        let master = MasterKey::generate()?;
        let so = Token::pin_record(
            &master,
            &self.serial,
            PinRole::So,
            so_pin,
            &self.shared.config,
        )?;
        let mut init = self.event(Operation::InitToken);
        init.role = Some("SO".into());
        // The wipe keeps the audit trail; it is carried over to the new master key.
        self.commit_rekeyed(
            &old,
            &master,
            vec![
                // Only the token whose SO record the PIN opened: an SO PIN changed
                // meanwhile (believed leaked, say) is not the one to wipe it with.
                Change::RequirePin {
                    role: PinRole::So,
                    kdf: checked.kdf.clone(),
                },
                Change::Wipe,
                Change::PutMeta(META_LABEL.into(), label.to_vec()),
                Change::PutMeta(
                    META_RECORD_AUTH.into(),
                    records::record_auth_marker(
                        &master,
                        &self.serial,
                        self.shared.config.separation_of_duties,
                    ),
                ),
                pin_limit_meta(self.shared.config.max_pin_failures),
                Change::PutPin(PinRole::So, so),
            ]
            .into_iter()
            .chain(separation_meta(&self.shared.config))
            .collect(),
            init,
            epoch,
        )?;
        self.login.lock().clear();
        self.objects.write().remove_session_objects(None);
        Ok(())
    }

    /// The PIN lockout limit (0: never locks) of the token `view` is of. A property of
    /// the token, fixed at `C_InitToken` from the configuration in force then; the
    /// configuration a caller passes to `C_Initialize` later has no say.
    fn limit_of(view: &View) -> u32 {
        view.max_pin_failures.unwrap_or(LEGACY_MAX_PIN_FAILURES)
    }

    /// Writes the built-in limit into a token made before the limit was stored (called
    /// after a successful SO login, whose PIN record was of the token of `epoch`), so
    /// that from then on it is the token's own. Written only into that token, and only
    /// if it is the one whose view lacked the limit (`commit_decided`): a newer token
    /// has a limit of its own, which this must not overwrite.
    fn settle_pin_limit(&self, epoch: u64) -> Result<()> {
        let view_epoch = {
            let view = self.view.read();
            if view.max_pin_failures.is_some() {
                return Ok(());
            }
            view.epoch
        };
        self.test_point("settle_pin_limit");
        self.commit_in(
            &[Some(view_epoch), Some(epoch)],
            vec![pin_limit_meta(LEGACY_MAX_PIN_FAILURES)],
        )
    }

    /// Whether the token is under the separation-of-duties policy (`policy`).
    pub(super) fn separating_duties(&self) -> Result<bool> {
        Ok(self.policy()?.is_under())
    }

    /// The separation-of-duties policy as the token holds it now: this process's
    /// configuration (which a user may choose, so it can turn the policy on, never off),
    /// or the token's own marker as the store holds it now (other processes' commits
    /// are picked up first: a marker written by another process since this one last
    /// looked counts, review 16d), as this process last saw it, or, logged in, as the
    /// record-authentication marker seals it (`records::record_auth_marker`). Not under
    /// the policy, the answer keeps the marker it was judged with, for a write's commit
    /// to require (`duties::Policy`).
    fn policy(&self) -> Result<duties::Policy> {
        if self.shared.config.separation_of_duties {
            return Ok(duties::Policy::Under);
        }
        if self.changed()? {
            let judged_in = self.view_epoch();
            self.sync()?;
            // The call being judged was decided on the token as it was; one
            // re-initialised elsewhere meanwhile answers as at its commit, not with
            // whatever the wiped view makes of the rest (its login is gone).
            if self.view_epoch() != judged_in {
                return Err(Error::TokenReinitialized);
            }
        }
        let marker = {
            let view = self.view.read();
            if view.separation_of_duties {
                return Ok(duties::Policy::Under);
            }
            view.record_auth.clone()
        };
        // Logged in, the process reads the policy from the sealed marker too: a row
        // deleted after this process logged in (and after another process sealed the
        // policy) lifts nothing here either (review 20a).
        let (master, epoch) = self.master_with_epoch();
        if let (Some(master), Some(epoch), Some(found)) = (master, epoch, &marker) {
            if records::read_record_auth_marker(found, &master, &self.serial) == Some(true) {
                self.note_separation(epoch);
                return Ok(duties::Policy::Under);
            }
        }
        Ok(duties::Policy::off(marker))
    }

    /// The policy for a write judged under `judged` whose commit found the token's
    /// metadata changed (`StoreError::MetaChanged`): taken again after catching up with
    /// the store (the store said it changed, whatever the change check says), and
    /// weighed with what the write was judged to be (`duties::Policy::again`).
    fn policy_again(&self, judged: &duties::Policy) -> Result<duties::Policy> {
        self.sync()?;
        judged.again(self.policy()?)
    }

    /// Puts the token of `epoch` under the policy in this process's view, where it stays
    /// while the token is that one (`apply_snapshot`): a login found it so.
    fn note_separation(&self, epoch: u64) {
        let mut view = self.view.write();
        if view.epoch == epoch {
            view.separation_of_duties = true;
        }
    }

    // ---- sessions bookkeeping, driven by the provider

    /// Registers a new session. Refuses a read-only one while the SO is logged in.
    pub(crate) fn add_session(&self, handle: SessionHandle, rw: bool) -> Result<()> {
        let mut sessions = self.sessions.lock();
        if !rw && self.login.lock().who() == LoggedIn::So {
            return Err(Error::SessionReadWriteSoExists);
        }
        sessions.insert(handle, rw);
        self.objects.write().open_session(handle);
        Ok(())
    }

    /// Forgets a session and its objects; the last one closed logs the token out.
    pub(crate) fn remove_session(&self, handle: SessionHandle) {
        let mut sessions = self.sessions.lock();
        sessions.remove(&handle);
        let mut objects = self.objects.write();
        objects.close_session(handle);
        if sessions.is_empty() {
            // §5.6: closing the application's last session logs it out.
            drop(objects);
            self.logout_locked(&mut self.login.lock());
        }
    }

    pub fn logged_in(&self) -> LoggedIn {
        self.who_now.get()
    }
}

/// The marker of the separation-of-duties policy, for a token made or re-initialised by a
/// process configured with it.
fn separation_meta(config: &crate::config::Config) -> Option<Change> {
    config.separation_of_duties.then(separation_marker)
}

/// The metadata row that says the token is under the separation-of-duties policy: what
/// a process goes by before a login. After one, the record-authentication marker says
/// it under the master key (`records::record_auth_marker`).
fn separation_marker() -> Change {
    Change::PutMeta(META_SEPARATION_OF_DUTIES.into(), b"on".to_vec())
}

fn pin_limit_meta(limit: u32) -> Change {
    Change::PutMeta(META_MAX_PIN_FAILURES.into(), limit.to_string().into_bytes())
}

/// Gives every record of a token written before its store kept an index (or by a build
/// indexing other attributes) the index this build makes, in one transaction.
fn reindex(store: &dyn Store) -> Result<()> {
    let all = store.read(0, 0, Scope::All)?;
    let mut changes = Vec::with_capacity(all.objects.len() + 1);
    for rec in &all.objects {
        // A record that does not decode keeps the index it has: it fails when it is
        // used, as it would have, rather than keeping the whole token from opening
        // (review 18d: every token reindexes once after an index change).
        match Object::from_record(rec) {
            Ok(object) => changes.push(Change::Reindex(rec.uid, index::record_index(&object))),
            Err(e) => log::warn!("a record left out of the reindex of a token: {e}"),
        }
    }
    changes.push(Change::PutMeta(
        META_OBJECT_INDEX.into(),
        index::VERSION.to_vec(),
    ));
    Ok(store.commit(changes)?)
}

impl View {
    fn from_snapshot(snap: &Snapshot) -> View {
        let mut label = [b' '; LABEL_LEN];
        if let Some(l) = snap.meta.get(META_LABEL) {
            let n = l.len().min(LABEL_LEN);
            label[..n].copy_from_slice(&l[..n]);
        }
        let max_pin_failures = snap
            .meta
            .get(META_MAX_PIN_FAILURES)
            .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok());
        View {
            epoch: snap.epoch,
            seq: snap.seq,
            label,
            max_pin_failures,
            separation_of_duties: snap.meta.contains_key(META_SEPARATION_OF_DUTIES),
            record_auth: snap.meta.get(META_RECORD_AUTH).cloned(),
            pins: snap.pins.clone(),
        }
    }
}

/// What a token of the tests shares: a configuration for `dir` with a PIN KDF cheap
/// enough for unit tests, and the module's clock.
#[cfg(test)]
fn shared_for_tests(dir: &Path) -> Arc<Shared> {
    Arc::new(Shared {
        config: Arc::new(crate::config::Config {
            token_dir: dir.to_path_buf(),
            kdf: crate::config::KdfConfig {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
            ..crate::config::Config::default()
        }),
        handles: crate::object::table::HandleSource,
        clock: clock::module_clock(),
    })
}
