//! Process-wide state: initialised or not, the slot table, and the session table.
//!
//! Lock order for the whole crate (docs/architecture.md): `STATE` (only `C_Initialize`
//! and `C_Finalize` write it) → `slots` → `sessions` → a token's locks (`sessions` →
//! `login` → `view` → `objects`) → the store's fork gate → a store's connection. Entry
//! points resolve handles to `Arc`s, drop the table locks, then work. This module must
//! not see raw pointers.
//!
//! A forked child inherits none of this: see `provider/fork.rs`.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock as StateLock, RwLockReadGuard, RwLockWriteGuard, Weak};

use parking_lot::RwLock;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::ids::SlotId;
use crate::object::handle_hash::HandleMap;
use crate::object::table::{HandleSource, SessionHandle};
use crate::session::Session;
use crate::store::postgres::schema::Catalog;
use crate::store::postgres::PgSettings;
use crate::store::sqlite::SqliteStore;
use crate::store::Backend;
use crate::token::{self, Shared, Token, LABEL_LEN};

mod fork;

/// The process's provider. A `std` lock, not a `parking_lot` one: `fork.rs` holds it
/// across `fork()` and releases it in the child, where a `std` (futex) lock needs nothing
/// but itself, whereas `parking_lot`'s may need its process-wide table of waiters, which
/// another thread of the parent could have held at the instant of the fork.
static STATE: StateLock<Option<Arc<Provider>>> = StateLock::new(None);

/// The next session handle of the process, whichever provider opens the session: a
/// handle kept across `C_Finalize` and `C_Initialize` names no session of the new
/// provider (review 16c: both counts started again at 1, so an old handle reached a new,
/// perhaps logged-in, session).
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// `STATE` for reading. Poisoning is ignored: no code panics while holding `STATE`
/// with the value half-changed (each writer replaces the whole `Option`).
fn state() -> RwLockReadGuard<'static, Option<Arc<Provider>>> {
    STATE.read().unwrap_or_else(PoisonError::into_inner)
}

/// `STATE` for writing; see [`state`] about poisoning.
fn state_mut() -> RwLockWriteGuard<'static, Option<Arc<Provider>>> {
    STATE.write().unwrap_or_else(PoisonError::into_inner)
}

/// What `C_Initialize` was told, decoded.
#[derive(Debug, Default)]
pub struct InitOptions {
    pub config_path: Option<PathBuf>,
}

#[derive(Debug)]
enum SlotState {
    /// No token yet; `serial` is the one `C_InitToken` will give it.
    Free,
    /// `C_InitToken` is running on this slot.
    Initializing,
    Token(Arc<Token>),
}

#[derive(Debug)]
struct Slot {
    id: SlotId,
    serial: String,
    state: SlotState,
}

/// A slot as entry points see it.
#[derive(Debug, Clone)]
pub struct SlotView {
    pub id: SlotId,
    pub serial: String,
    pub token: Option<Arc<Token>>,
}

#[derive(Debug)]
pub struct Provider {
    pub config: Arc<Config>,
    /// Where tokens live: `token_dir`, or the database of `store_url`.
    backend: Backend,
    shared: Arc<Shared>,
    slots: RwLock<Vec<Slot>>,
    /// Keyed by module-chosen handles: `object::handle_hash` says why no SipHash.
    sessions: RwLock<HandleMap<SessionHandle, Arc<Session>>>,
    /// The process that made this provider.
    pid: u32,
    /// Token files and rows found holding another token than their name says, as they
    /// were then: skipped, and not opened (nor warned about) again at every rescan
    /// while they stay so.
    mismatched: parking_lot::Mutex<Vec<Mismatched>>,
}

/// A token file or row skipped because it holds another token than its name says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mismatched {
    /// The file's path, or the row's serial.
    name: String,
    /// For a file: its device, inode, size and modification time, so that a file
    /// replaced or written since is looked at again. `None` for a row.
    stamp: Option<(u64, u64, u64, i128)>,
}

impl Mismatched {
    fn file(path: &Path) -> Mismatched {
        use std::os::unix::fs::MetadataExt;
        Mismatched {
            name: path.display().to_string(),
            stamp: std::fs::metadata(path).ok().map(|m| {
                let mtime = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
                (m.dev(), m.ino(), m.size(), mtime)
            }),
        }
    }

    fn row(serial: &str) -> Mismatched {
        Mismatched {
            name: serial.to_owned(),
            stamp: None,
        }
    }
}

pub fn initialize(options: InitOptions) -> Result<()> {
    fork::install();
    let mut state = state_mut();
    if let Some(inherited) = state.as_ref() {
        // This process's own, unless the wiped mark says this memory is a child's copy:
        // a raw `clone` child can even have its parent's process id, as PID 1 of a new
        // PID namespace under a parent that is PID 1 of its own (review 16d).
        if inherited.pid == std::process::id() && !crate::os::fork::inherited() {
            return Err(Error::AlreadyInitialized);
        }
        // A child made without `fork()`'s hooks running (a raw `clone`): abandon the
        // parent's provider exactly as `fork::child` does, for the same reasons; its
        // sessions are gone for this process whether or not what follows succeeds.
        fork::abandon(state.take());
        sessions_changed();
    }
    crate::logging::install_default();
    // Built now, under `STATE`, so that no fork (whose hooks wait for `STATE`) can
    // happen while another thread is half-way through building it.
    crate::mechanism::registry::all().next();
    let config = Config::load(options.config_path.as_deref()).inspect_err(|e| {
        log::error!("C_Initialize: {e}");
    })?;
    crate::logging::configure(&config)?;
    crate::legacy::set_enabled(config.legacy_algorithms);
    if config.legacy_algorithms {
        log::warn!(
            "legacy_algorithms is on: DES, Triple-DES and RSA keys from 1024 bits are \
             available (docs/security.md, \"Legacy algorithms\")"
        );
    }
    let provider = Provider::new(config)?;
    *state = Some(Arc::new(provider));
    // This process's provider from now on: a child made from here on without `fork()`'s
    // hooks finds the mark wiped (`os::fork::inherited`).
    crate::os::fork::mark_this_process();
    sessions_changed();
    Ok(())
}

pub fn finalize() -> Result<()> {
    // A child that did not `C_Initialize` must not drop the parent's provider: its
    // destructors would close the parent's connections (`provider/fork.rs`).
    if crate::os::fork::inherited() {
        return Err(Error::NotInitialized);
    }
    let provider = {
        let mut state = state_mut();
        let provider = state.take().ok_or(Error::NotInitialized)?;
        // Under `STATE`: a thread told `NotInitialized` finds the generation moved too.
        sessions_changed();
        provider
    };
    provider.sessions.write().clear();
    Ok(())
}

/// The initialised provider, or `NotInitialized` (also in a child made without
/// `fork()`'s hooks that has not called `C_Initialize`: the provider it sees is its
/// parent's, `os::fork::inherited`).
pub fn get() -> Result<Arc<Provider>> {
    if crate::os::fork::inherited() {
        return Err(Error::NotInitialized);
    }
    state().clone().ok_or(Error::NotInitialized)
}

/// Moves whenever a handle may stop naming the session it named: a session closed (one
/// or all of a slot's), the provider finalized or made anew, a `fork()`'s child. Each
/// thread's remembered last look-up ([`LAST_SESSION`]) holds only while this has not
/// moved since it was made.
static SESSIONS_CHANGED: AtomicU64 = AtomicU64::new(0);

/// Says that handles may have stopped naming their sessions: called after the change,
/// before the lock it was made under is let go (a thread that saw the change through
/// that lock, or was told of it by one that did, then finds the generation moved).
fn sessions_changed() {
    SESSIONS_CHANGED.fetch_add(1, Ordering::AcqRel);
}

/// One thread's last look-up: the generation of [`SESSIONS_CHANGED`] it was made in, the
/// handle, and what it found, weakly (a closed session's contents, its operation's keys
/// among them, are dropped as before; a thread never keeps them alive).
struct LastLookup<T> {
    entry: Cell<Option<(u64, SessionHandle, Weak<T>)>>,
}

impl<T> LastLookup<T> {
    const fn new() -> LastLookup<T> {
        LastLookup {
            entry: Cell::new(None),
        }
    }

    /// What `handle` found in `generation`, if that is what was remembered and it is
    /// still alive.
    fn find(&self, generation: u64, handle: SessionHandle) -> Option<Arc<T>> {
        let (made, known, weak) = self.entry.take()?;
        let found = (made == generation && known == handle)
            .then(|| weak.upgrade())
            .flatten();
        self.entry.set(Some((made, known, weak)));
        found
    }

    fn remember(&self, generation: u64, handle: SessionHandle, found: &Arc<T>) {
        self.entry
            .set(Some((generation, handle, Arc::downgrade(found))));
    }
}

thread_local! {
    static LAST_SESSION: LastLookup<Session> = const { LastLookup::new() };
}

/// The session behind `handle` in the initialised provider (`NotInitialized`, or
/// `SessionHandleInvalid`), without taking a reference to the provider itself. A thread
/// calling again with the handle it used last, no session having been closed since,
/// gets that session back without the two table locks (`STATE`, `sessions`): two atomic
/// operations instead of six, on every call. Otherwise `STATE` is held for reading while
/// the session table is read (no lock is taken in the other order).
pub fn session_of(handle: SessionHandle) -> Result<Arc<Session>> {
    // Before the thread's remembered look-up, which a child made by a raw `clone` also
    // inherits (review 16c).
    if crate::os::fork::inherited() {
        return Err(Error::NotInitialized);
    }
    let generation = SESSIONS_CHANGED.load(Ordering::Acquire);
    if let Ok(Some(session)) = LAST_SESSION.try_with(|last| last.find(generation, handle)) {
        return Ok(session);
    }
    let session = state()
        .as_ref()
        .ok_or(Error::NotInitialized)?
        .session(handle)?;
    // Remembered with the generation read before the table was: a close that raced
    // with this look-up moved it since, so the entry is never used.
    let _ = LAST_SESSION.try_with(|last| last.remember(generation, handle, &session));
    Ok(session)
}

/// Where `config` keeps its tokens: the database of its `store_url`, or else its
/// `token_dir` (made, private to its owner, if missing).
pub fn backend_of(config: &Config) -> Result<Backend> {
    Ok(match &config.store_url {
        Some(url) => Backend::Postgres(Arc::new(Catalog::new(Arc::new(
            PgSettings::new(url, &config.postgres).map_err(|e| Error::Config(e.to_string()))?,
        )))),
        None => {
            create_token_dir(&config.token_dir)?;
            Backend::Files(config.token_dir.clone())
        }
    })
}

fn create_token_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            Error::Config(format!(
                "cannot create token directory {}: {e}",
                dir.display()
            ))
        })
}

impl Provider {
    fn new(config: Config) -> Result<Provider> {
        let backend = backend_of(&config)?;
        let config = Arc::new(config);
        let provider = Provider {
            shared: Arc::new(Shared {
                config: Arc::clone(&config),
                handles: HandleSource,
                clock: crate::token::clock::module_clock(),
            }),
            config,
            backend,
            slots: RwLock::new(Vec::new()),
            sessions: RwLock::new(HandleMap::default()),
            pid: std::process::id(),
            mismatched: parking_lot::Mutex::new(Vec::new()),
        };
        provider.rescan_or_fail()?;
        Ok(provider)
    }

    /// Opens tokens that appeared (in the token directory, or the database) and keeps
    /// exactly one free slot. A database that cannot be listed keeps the slots there
    /// are (logged); only `C_Initialize` fails on it (`rescan_or_fail`).
    pub fn rescan(&self) -> Result<()> {
        match self.rescan_or_fail() {
            Err(Error::Store(e)) if matches!(self.backend, Backend::Postgres(_)) => {
                log::warn!("cannot list the tokens of the database: {e}");
                self.keep_a_free_slot();
                Ok(())
            }
            other => other,
        }
    }

    fn rescan_or_fail(&self) -> Result<()> {
        let opened = match &self.backend {
            Backend::Files(dir) => self.open_new_files(dir)?,
            Backend::Postgres(catalog) => self.open_new_rows(catalog)?,
        };
        self.add_tokens(opened);
        Ok(())
    }

    /// Opens the tokens of the database not in a slot yet.
    fn open_new_rows(&self, catalog: &Catalog) -> Result<Vec<Token>> {
        let settings = catalog.settings();
        let serials = catalog.serials().inspect_err(|e| {
            log::error!("token database {}: {e}", settings.shown());
        })?;
        let known: Vec<String> = self.slots.read().iter().map(|s| s.serial.clone()).collect();
        let mut opened = Vec::new();
        for serial in serials {
            let row = Mismatched::row(&serial);
            if known.contains(&serial) || self.mismatched.lock().contains(&row) {
                continue;
            }
            match Token::open_postgres(settings, &serial, Arc::clone(&self.shared)) {
                // As for files: a row holding another token (a backup restored under
                // another name) would stand in for the token of that serial.
                Ok(token) if token.serial != serial => {
                    log::warn!(
                        "skipping token {serial} of {}: it holds token {}",
                        settings.shown(),
                        token.serial
                    );
                    self.mismatched.lock().push(row);
                }
                Ok(token) => opened.push(token),
                // One unreadable token must not hide the others.
                Err(e) => log::warn!("skipping token {serial} of {}: {e}", settings.shown()),
            }
        }
        Ok(opened)
    }

    /// Opens the token files of `dir` not in a slot yet.
    fn open_new_files(&self, dir: &Path) -> Result<Vec<Token>> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            Error::Config(format!(
                "cannot read token directory {}: {e}",
                dir.display()
            ))
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "db"))
            .collect();
        paths.sort();
        let known: Vec<String> = self.slots.read().iter().map(|s| s.serial.clone()).collect();
        let mut opened = Vec::new();
        for path in paths {
            let serial = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            if known.iter().any(|k| k == serial) {
                continue;
            }
            let file = Mismatched::file(&path);
            if self.mismatched.lock().contains(&file) {
                continue;
            }
            // A token file is named after its token's serial: a file holding another token
            // (a backup renamed) would stand in for the token of that serial. Told from
            // the file as it is, before opening it for use, which would upgrade an older
            // one in place (review 17a); and again after, from what the open read.
            let stored = SqliteStore::stored_meta(&path, token::META_SERIAL)
                .ok()
                .flatten()
                .map(|s| String::from_utf8_lossy(&s).into_owned());
            if let Some(held) = stored.filter(|held| held != serial) {
                self.skip_mismatched(&path, &held);
                continue;
            }
            match Token::open(&path, Arc::clone(&self.shared)) {
                Ok(token) if token.serial != serial => {
                    let held = token.serial.clone();
                    // Closed before the stamp: opening and closing may have written it.
                    drop(token);
                    self.skip_mismatched(&path, &held);
                }
                Ok(token) => opened.push(token),
                // One unreadable token must not hide the others.
                Err(e) => log::warn!("skipping token file {}: {e}", path.display()),
            }
        }
        Ok(opened)
    }

    /// Skips the token file at `path`, which holds token `held`, until it changes.
    fn skip_mismatched(&self, path: &Path, held: &str) {
        log::warn!(
            "skipping token file {}: it holds token {held}, whose file is named {held}.db",
            path.display(),
        );
        self.mismatched.lock().push(Mismatched::file(path));
    }

    /// Puts newly opened tokens into slots, then makes sure one slot is free.
    fn add_tokens(&self, opened: Vec<Token>) {
        let mut slots = self.slots.write();
        for token in opened {
            if slots
                .iter()
                .any(|s| s.id == token.slot_id || s.serial == token.serial)
            {
                log::warn!(
                    "token {} duplicates a slot id or serial; skipped",
                    token.serial
                );
                continue;
            }
            let at = slots
                .iter()
                .position(|s| !matches!(s.state, SlotState::Token(_)));
            let slot = Slot {
                id: token.slot_id,
                serial: token.serial.clone(),
                state: SlotState::Token(Arc::new(token)),
            };
            match at {
                Some(i) => slots.insert(i, slot),
                None => slots.push(slot),
            }
        }
        drop(slots);
        self.keep_a_free_slot();
    }

    fn keep_a_free_slot(&self) {
        let mut slots = self.slots.write();
        if !slots
            .iter()
            .any(|s| !matches!(s.state, SlotState::Token(_)))
        {
            let slot = free_slot(&slots);
            slots.push(slot);
        }
    }

    pub fn slot_ids(&self) -> Vec<SlotId> {
        self.slots.read().iter().map(|s| s.id).collect()
    }

    pub fn slot(&self, id: SlotId) -> Result<SlotView> {
        let slots = self.slots.read();
        let slot = slots
            .iter()
            .find(|s| s.id == id)
            .ok_or(Error::SlotIdInvalid)?;
        Ok(SlotView {
            id: slot.id,
            serial: slot.serial.clone(),
            token: match &slot.state {
                SlotState::Token(t) => Some(Arc::clone(t)),
                _ => None,
            },
        })
    }

    /// `C_InitToken`: initialises the free slot's token, or re-initialises a token.
    pub fn init_token(&self, id: SlotId, so_pin: &[u8], label: [u8; LABEL_LEN]) -> Result<()> {
        let serial = {
            let mut slots = self.slots.write();
            let slot = slots
                .iter_mut()
                .find(|s| s.id == id)
                .ok_or(Error::SlotIdInvalid)?;
            match &slot.state {
                SlotState::Token(token) => {
                    let token = Arc::clone(token);
                    drop(slots);
                    return token.reinitialize(so_pin, label);
                }
                SlotState::Initializing => return Err(Error::SessionExists),
                SlotState::Free => {}
            }
            slot.state = SlotState::Initializing;
            slot.serial.clone()
        };
        let made = Token::create(
            &self.backend,
            id,
            &serial,
            label,
            so_pin,
            Arc::clone(&self.shared),
        );
        let mut slots = self.slots.write();
        let slot = slots
            .iter_mut()
            .find(|s| s.id == id)
            .ok_or(Error::Internal("slot vanished during C_InitToken"))?;
        match made {
            Ok(token) => {
                slot.state = SlotState::Token(Arc::new(token));
                Ok(())
            }
            Err(e) => {
                slot.state = SlotState::Free;
                Err(e)
            }
        }
    }

    pub fn open_session(&self, slot_id: SlotId, rw: bool) -> Result<SessionHandle> {
        let token = self.slot(slot_id)?.token.ok_or(Error::TokenNotRecognized)?;
        let handle = SessionHandle::new(NEXT_SESSION.fetch_add(1, Ordering::Relaxed));
        token.add_session(handle, rw)?;
        let session = Arc::new(Session::new(handle, slot_id, token, rw));
        self.sessions.write().insert(handle, session);
        Ok(handle)
    }

    pub fn session(&self, handle: SessionHandle) -> Result<Arc<Session>> {
        self.sessions
            .read()
            .get(&handle)
            .cloned()
            .ok_or(Error::SessionHandleInvalid)
    }

    pub fn close_session(&self, handle: SessionHandle) -> Result<()> {
        let session = {
            let mut sessions = self.sessions.write();
            let session = sessions
                .remove(&handle)
                .ok_or(Error::SessionHandleInvalid)?;
            // Under the table's lock, as in `finalize`.
            sessions_changed();
            session
        };
        session.token.remove_session(handle);
        Ok(())
    }

    pub fn close_all_sessions(&self, slot_id: SlotId) -> Result<()> {
        self.slot(slot_id)?;
        let closed: Vec<Arc<Session>> = {
            let mut sessions = self.sessions.write();
            let handles: Vec<SessionHandle> = sessions
                .values()
                .filter(|s| s.slot_id == slot_id)
                .map(|s| s.handle)
                .collect();
            let closed = handles.iter().filter_map(|h| sessions.remove(h)).collect();
            sessions_changed();
            closed
        };
        for session in closed {
            session.token.remove_session(session.handle);
        }
        Ok(())
    }
}

/// A new free slot with a fresh serial; its ID derives from the serial (as SoftHSMv2's
/// do) and is persisted when the token is initialised, so it survives restarts.
fn free_slot(slots: &[Slot]) -> Slot {
    loop {
        // The serial is an identifier, not a secret: it comes from the operating system
        // (through uuid) so that C_Initialize does not pay for seeding the crypto DRBG.
        let uuid = uuid::Uuid::new_v4();
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&uuid.as_bytes()[..8]);
        let serial: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let id = SlotId::new(u64::from(
            u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) & 0x7fff_ffff,
        ));
        if !slots.iter().any(|s| s.id == id) {
            return Slot {
                id,
                serial,
                state: SlotState::Free,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_look_up_holds_only_for_its_handle_generation_and_lifetime() {
        let last = LastLookup::new();
        let (one, two) = (SessionHandle::new(1), SessionHandle::new(2));
        assert!(last.find(0, one).is_none(), "nothing remembered yet");
        let found = Arc::new(7u32);
        last.remember(5, one, &found);
        assert_eq!(last.find(5, one).as_deref(), Some(&7));
        assert_eq!(last.find(5, one).as_deref(), Some(&7), "kept after a find");
        assert!(last.find(5, two).is_none(), "another handle");
        assert!(last.find(6, one).is_none(), "a session closed since");
        assert_eq!(Arc::strong_count(&found), 1, "held weakly");
        drop(found);
        assert!(last.find(5, one).is_none(), "dropped meanwhile");
    }
}
