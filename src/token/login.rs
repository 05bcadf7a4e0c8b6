//! PINs and login: `C_Login`, `C_Logout`, `C_InitPIN`, `C_SetPIN` and the SO PIN check of
//! `C_InitToken`, with failure counting and lockout shared by every process on the token.
//!
//! A PIN is right when the master key it wraps authenticates; there is no separate PIN
//! hash. The slow derivation runs with no token lock held. This module must never log
//! or keep a PIN.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result, StoreError};
use crate::ids::SessionHandle;
use crate::kms::audit::{AuditEvent, Operation};
use crate::store::audit::AuditKey;
use crate::store::seal::{self, MasterKey, PinKdf};
use crate::store::{Change, PinAttempt, PinRecordId, PinRole, PinSettle, PIN_ATTEMPT_LEASE_SECS};

/// How long a reserved PIN attempt counts as in flight, at most: longer than any PIN
/// derivation, short enough that a process dying mid-attempt delays the "locked" answers
/// of others only briefly.
/// How long a caller that found the limit reached by attempts in flight waits before
/// asking again.
const BUSY_PAUSE: Duration = Duration::from_millis(5);

/// How many times one PIN check counts its attempt again after finding the PIN record it
/// was counted in replaced before it was read (`Token::attempt_pin`); after that, the
/// call fails rather than chase a record that keeps changing.
const PIN_RECORD_CHANGES: usize = 3;

use super::records::{master_aads, PinFormat};
use super::{check_pin_len, Token};

/// Who this application is logged in as on a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoggedIn {
    #[default]
    Nobody,
    User,
    So,
}

/// The user types of `C_Login`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserKind {
    So,
    User,
    ContextSpecific,
}

/// Who is logged in, readable without the login's lock (`Token::logged_in`, asked on
/// every key use): a copy of `Login::who`, written only beside it, with the lock held
/// (`Login::set_who`). A reader without the lock sees the last login or logout.
#[derive(Debug, Default)]
pub(super) struct WhoNow(AtomicU8);

impl WhoNow {
    pub(super) fn get(&self) -> LoggedIn {
        match self.0.load(Ordering::Acquire) {
            1 => LoggedIn::User,
            2 => LoggedIn::So,
            _ => LoggedIn::Nobody,
        }
    }

    fn set(&self, who: LoggedIn) {
        let code = match who {
            LoggedIn::Nobody => 0,
            LoggedIn::User => 1,
            LoggedIn::So => 2,
        };
        self.0.store(code, Ordering::Release);
    }
}

#[derive(Debug, Default)]
pub(super) struct Login {
    /// Changed only through `set_who`, which keeps `now` equal to it.
    who: LoggedIn,
    pub(super) now: Arc<WhoNow>,
    pub(super) master: Option<Arc<MasterKey>>,
    /// The audit key of `master`, derived and set up once at login rather than at every
    /// commit.
    pub(super) audit_key: Option<Arc<AuditKey>>,
    /// The epoch of the token `master` is the key of (the store's `epoch` when its PIN
    /// record was read): a change decided under the login is made only in that token
    /// (`Token::commit_decided`).
    pub(super) epoch: u64,
}

impl Login {
    pub(super) fn who(&self) -> LoggedIn {
        self.who
    }

    fn set_who(&mut self, who: LoggedIn) {
        self.who = who;
        self.now.set(who);
    }

    pub(super) fn clear(&mut self) {
        self.set_who(LoggedIn::Nobody);
        self.master = None;
        self.audit_key = None;
        self.epoch = 0;
    }

    /// The epoch of the logged-in master key, if there is one.
    pub(super) fn master_epoch(&self) -> Option<u64> {
        self.master.as_ref().map(|_| self.epoch)
    }
}

impl Token {
    /// Checks `pin` against the stored record of `role` and returns the master key it
    /// unwraps, with the format of the record and the epoch of the token it is the
    /// record of (the view's it was read from: the key is that token's). The attempt is reserved in the store before the derivation (the failure
    /// count checked against the token's limit and raised in one step), and the count is
    /// reset when the PIN was right: concurrent attempts, from any number of threads and
    /// processes, can never try more PINs than the limit.
    ///
    /// A wrong PIN, and an attempt refused because the PIN is locked, are recorded in
    /// the audit trail as refusals of `operation` (the one reaching the limit as
    /// `PinLockout`), each in its own transaction after the attempt is settled.
    pub(super) fn verify_pin(
        &self,
        role: PinRole,
        pin: &[u8],
        operation: Operation,
    ) -> Result<(MasterKey, PinFormat, PinRecordId)> {
        for _ in 0..PIN_RECORD_CHANGES {
            // The token the attempt is made at, and its limit, read together: the
            // reservation counts under that limit only in that token.
            let (view_epoch, limit) = {
                let view = self.view.read();
                if !view.pins.contains_key(&role) {
                    return Err(pin_not_set(role));
                }
                (view.epoch, Token::limit_of(&view))
            };
            if let Some(verified) = self.attempt_pin(role, pin, operation, view_epoch, limit)? {
                return Ok(verified);
            }
        }
        Err(Error::CacheContention)
    }

    /// One attempt of `verify_pin`: reserved under `limit` in the token of `view_epoch`,
    /// checked against the record it was counted in, settled. `None` when nothing was
    /// tried and the caller should count the attempt again: the store held another token
    /// than the view (whose limit may differ), or the record was replaced (`C_InitPIN`,
    /// `C_SetPIN`, a rewrap) before it was read. Tried against the new record instead,
    /// the attempt would be a guess at the new PIN that no count recorded.
    fn attempt_pin(
        &self,
        role: PinRole,
        pin: &[u8],
        operation: Operation,
        view_epoch: u64,
        limit: u32,
    ) -> Result<Option<(MasterKey, PinFormat, PinRecordId)>> {
        // The attempt that reaches the limit still answers "incorrect" (§5.6); the next
        // one finds no attempt left and answers "locked".
        let (failures, counted_in) = match self.reserve_pin_attempt(role, view_epoch, limit) {
            Ok(Some(reserved)) => reserved,
            Ok(None) => return Ok(None),
            Err(Error::PinLocked) => {
                self.record_refusal(
                    self.pin_event(operation, role, None)
                        .refused_with("PinLocked", "the PIN is locked"),
                    &[Some(view_epoch)],
                );
                return Err(Error::PinLocked);
            }
            Err(e) => return Err(e),
        };
        // Publishes the count, and picks up a PIN changed elsewhere since the last read.
        let tried = self.sync().and_then(|()| {
            // The record and the epoch of the token it is of, read together: only the
            // record the attempt was counted in may be tried.
            let record = {
                let view = self.view.read();
                if view.epoch != counted_in.epoch {
                    return Err(Error::TokenReinitialized);
                }
                view.pins
                    .get(&role)
                    .cloned()
                    .ok_or_else(|| pin_not_set(role))?
            };
            if record.kdf != counted_in.kdf {
                return Ok(None);
            }
            let kdf = PinKdf::decode(&record.kdf)?;
            let [current, legacy] = master_aads(&self.serial, role);
            let (master, which) = seal::unwrap_master_key_under(
                &record.wrapped_key,
                &kdf,
                pin,
                &[&current, &legacy],
            )?;
            let format = if which == 0 {
                PinFormat::Current
            } else {
                PinFormat::Legacy
            };
            Ok(Some((master, format)))
        });
        // Whatever the outcome, the attempt is settled; on any failure it stays counted
        // (a derivation that failed for another reason, memory, or a sync that failed,
        // costs an attempt rather than risk an uncounted one). It is settled in the
        // record it was counted in: re-initialised since, the outcome is another token's
        // (a right PIN of the old token must not reset the new one's count), and no
        // refusal of it goes into the new token's trail; replaced since, a right PIN of
        // the old record resets nothing of the new one's.
        let right = matches!(tried, Ok(Some(_)));
        let settled = self.store.settle_pin_attempt(role, right, &counted_in)?;
        self.sync()?;
        if settled == PinSettle::OtherToken {
            return Err(Error::TokenReinitialized);
        }
        if let Err(e) = &tried {
            let op = if limit != 0 && failures >= limit {
                Operation::PinLockout
            } else {
                operation
            };
            let code = match e {
                Error::PinIncorrect => "PinIncorrect",
                _ => "InternalFailure",
            };
            self.record_refusal(
                self.pin_event(op, role, Some(failures))
                    .refused_with(code, &e.to_string()),
                &[Some(counted_in.epoch)],
            );
        }
        let Some((master, format)) = tried? else {
            return Ok(None);
        };
        if role == PinRole::So {
            self.settle_pin_limit(counted_in.epoch)?;
        }
        Ok(Some((master, format, counted_in)))
    }

    /// Takes one attempt at the PIN of `role`, waiting while the limit is reached only
    /// by attempts still in flight (one of them may be right and reset the count): so
    /// concurrent right PINs do not lock each other out, and no more PINs than the
    /// limit are ever tried. The wait is bounded by the attempts' lease.
    /// Counted under `limit`, the limit of the token of `epoch` (the view's), and only
    /// in that token. Answers the failure count including this attempt and the record
    /// it was counted in; `None`, after catching up, when the store holds another token.
    fn reserve_pin_attempt(
        &self,
        role: PinRole,
        epoch: u64,
        limit: u32,
    ) -> Result<Option<(u32, PinRecordId)>> {
        let started = Instant::now();
        let lease = Duration::from_secs(PIN_ATTEMPT_LEASE_SECS as u64);
        loop {
            let now = self.now();
            match self.store.reserve_pin_attempt(
                role,
                epoch,
                limit,
                now,
                now + PIN_ATTEMPT_LEASE_SECS,
            )? {
                PinAttempt::Reserved { failures, record } => return Ok(Some((failures, record))),
                PinAttempt::OtherToken => {
                    self.sync()?;
                    return Ok(None);
                }
                PinAttempt::Busy if started.elapsed() < lease => {
                    std::thread::sleep(BUSY_PAUSE);
                }
                PinAttempt::Busy | PinAttempt::Locked => {
                    self.sync()?;
                    return Err(Error::PinLocked);
                }
            }
        }
    }

    /// `C_Login` in session `caller` of this token.
    pub fn login(&self, caller: SessionHandle, kind: UserKind, pin: &[u8]) -> Result<()> {
        let role = match kind {
            UserKind::So => PinRole::So,
            UserKind::User => PinRole::User,
            UserKind::ContextSpecific => {
                // The session routes these to `verify_context_pin` when one of its
                // operations awaits it; reaching here means none does.
                return Err(match self.logged_in() {
                    LoggedIn::User => Error::OperationNotInitialized,
                    _ => Error::UserNotLoggedIn,
                });
            }
        };
        // Caught up first: a re-initialisation elsewhere has ended this process's login,
        // which must not be taken as current (review 15b).
        self.refresh()?;
        self.check_can_login(role)?;
        // The token whose PIN record the key is derived from: re-initialised by another
        // process meanwhile, the key derived is the old token's, and nothing may be done
        // under it (docs/architecture.md, "Persist, then publish").
        let epoch = self.view_epoch();
        let (master, format, checked) = self.verify_pin(role, pin, Operation::Login)?;
        // The key is of the token whose PIN record it was read from: the login binds to
        // that token, and only if it is still the one the view is of.
        if checked.epoch != epoch || self.view_epoch() != epoch {
            return Err(Error::TokenReinitialized);
        }
        // A token from before authenticated records is adopted before anything is used.
        self.settle_record_format(role, pin, &master, format, &checked, Operation::Login)?;
        // Authenticates what was appended without the key (failed logins, sweeps).
        let audit_key = AuditKey::new(&super::audit::audit_key(&master));
        self.seal_audit_head(&audit_key, epoch)?;
        {
            // Re-check under the locks: another thread may have logged in meanwhile, or
            // closed the calling session (and, were it the last, logged the application
            // out, §5.6): a login must not outlive the session it was made in.
            let sessions = self.sessions.lock();
            if !sessions.contains_key(&caller) {
                return Err(Error::SessionClosed);
            }
            self.check_can_login_locked(role, &sessions)?;
            let mut login = self.login.lock();
            if self.view_epoch() != epoch {
                return Err(Error::TokenReinitialized);
            }
            login.epoch = epoch;
            login.set_who(match role {
                PinRole::So => LoggedIn::So,
                PinRole::User => LoggedIn::User,
            });
            login.audit_key = Some(Arc::new(audit_key));
            login.master = Some(Arc::new(master));
        }
        // Material that expired while no one was logged in is wiped now (`sweep`).
        self.objects.write().force_sweep();
        self.sweep()
    }

    /// `C_Login(CKU_CONTEXT_SPECIFIC)` for an operation awaiting it: the logged-in
    /// user's PIN again, counted and locked like any other attempt.
    pub(crate) fn verify_context_pin(&self, pin: &[u8]) -> Result<()> {
        if self.logged_in() != LoggedIn::User {
            return Err(Error::UserNotLoggedIn);
        }
        self.refresh()?;
        let read_in = self
            .verify_pin(PinRole::User, pin, Operation::Login)?
            .2
            .epoch;
        // The PIN of the token the login is of, not of one re-initialised since.
        if self
            .login
            .lock()
            .master_epoch()
            .is_some_and(|e| e != read_in)
        {
            return Err(Error::TokenReinitialized);
        }
        Ok(())
    }

    fn check_can_login(&self, role: PinRole) -> Result<()> {
        let sessions = self.sessions.lock();
        self.check_can_login_locked(role, &sessions)
    }

    fn check_can_login_locked(
        &self,
        role: PinRole,
        sessions: &std::collections::BTreeMap<SessionHandle, bool>,
    ) -> Result<()> {
        let who = self.login.lock().who();
        match (role, who) {
            (PinRole::So, LoggedIn::So) | (PinRole::User, LoggedIn::User) => {
                Err(Error::UserAlreadyLoggedIn)
            }
            (_, LoggedIn::So) | (_, LoggedIn::User) => Err(Error::UserAnotherAlreadyLoggedIn),
            (PinRole::So, LoggedIn::Nobody) if sessions.values().any(|rw| !rw) => {
                Err(Error::SessionReadOnlyExists)
            }
            _ => Ok(()),
        }
    }

    pub fn logout(&self) -> Result<()> {
        let mut login = self.login.lock();
        if login.who() == LoggedIn::Nobody {
            return Err(Error::UserNotLoggedIn);
        }
        self.logout_locked(&mut login);
        Ok(())
    }

    pub(super) fn logout_locked(&self, login: &mut Login) {
        if login.who() != LoggedIn::Nobody {
            login.clear();
            let mut objects = self.objects.write();
            objects.forget_private(&self.shared.handles);
            objects.shed_keys();
        }
    }

    /// The master key, when this application is logged in.
    pub(super) fn master(&self) -> Option<Arc<MasterKey>> {
        self.login.lock().master.clone()
    }

    /// The logged-in master key with the epoch of its token, read together: a change
    /// sealed under the key is committed only into that token (`commit_decided`).
    pub(super) fn master_with_epoch(&self) -> (Option<Arc<MasterKey>>, Option<u64>) {
        let login = self.login.lock();
        (login.master.clone(), login.master_epoch())
    }

    /// `C_InitPIN`: the SO sets (or resets, unlocking) the user PIN.
    pub fn init_pin(&self, session_rw: bool, pin: &[u8]) -> Result<()> {
        let (master, epoch) = {
            let login = self.login.lock();
            match (login.who(), &login.master) {
                (super::LoggedIn::So, Some(m)) => (Arc::clone(m), login.epoch),
                _ => return Err(Error::UserNotLoggedIn),
            }
        };
        if !session_rw {
            return Err(Error::SessionReadOnly);
        }
        check_pin_len(pin)?;
        let record = Token::pin_record(
            &master,
            &self.serial,
            PinRole::User,
            pin,
            &self.shared.config,
        )?;
        let event = self.pin_event(Operation::InitPin, PinRole::User, None);
        self.commit_with_events(
            vec![Change::PutPin(PinRole::User, record)],
            vec![event],
            &[Some(epoch)],
        )
    }

    /// `C_SetPIN`: changes the SO PIN when the SO is logged in, the user PIN otherwise.
    /// Only the 32-byte master key is rewrapped; no object is re-encrypted.
    pub fn set_pin(&self, session_rw: bool, old: &[u8], new: &[u8]) -> Result<()> {
        if !session_rw {
            return Err(Error::SessionReadOnly);
        }
        let role = match self.logged_in() {
            LoggedIn::So => PinRole::So,
            _ => PinRole::User,
        };
        check_pin_len(new)?;
        again_while_pin_record_changes(|| self.set_pin_once(role, old, new))
    }

    /// One try of `set_pin`: the old PIN checked, the new record written over the record
    /// it opened only.
    fn set_pin_once(&self, role: PinRole, old: &[u8], new: &[u8]) -> Result<()> {
        self.refresh()?;
        // The token the old PIN's record is read from (as at `login`).
        let epoch = self.view_epoch();
        let (master, format, checked) = self.verify_pin(role, old, Operation::SetPin)?;
        if checked.epoch != epoch {
            return Err(Error::TokenReinitialized);
        }
        // The new record is in the current format: adopt a legacy token first.
        let from_kdf =
            self.settle_record_format(role, old, &master, format, &checked, Operation::SetPin)?;
        let record = Token::pin_record(&master, &self.serial, role, new, &self.shared.config)?;
        let event = self.pin_event(Operation::SetPin, role, None);
        // Only over the record the old PIN opened: one set meanwhile (the SO's
        // `C_InitPIN` or `C_SetPIN` of a PIN believed leaked, say) is not undone. The
        // count the store holds is kept: wrong PINs tried since the check stay counted,
        // and a PIN locked meanwhile stays locked.
        self.commit_with_events_under(
            vec![
                Change::RequirePin {
                    role,
                    kdf: from_kdf.clone(),
                },
                Change::RewrapPin {
                    role,
                    from_kdf,
                    record,
                },
            ],
            vec![event],
            Some(&AuditKey::new(&super::audit::audit_key(&master))),
            &[Some(epoch)],
        )
    }

    /// An event about the PIN of `role` (never the PIN itself).
    pub(super) fn pin_event(
        &self,
        operation: Operation,
        role: PinRole,
        failures: Option<u32>,
    ) -> AuditEvent {
        let mut event = self.event(operation);
        event.role = Some(
            match role {
                PinRole::So => "SO",
                PinRole::User => "User",
            }
            .into(),
        );
        event.pin_failures = failures;
        event
    }
}

/// Runs `once` (a PIN check and the write it allows, `Change::RequirePin`) again while
/// the PIN record was replaced between the check and the write (another process's login
/// rewrapping an old-format record, the SO's `C_InitPIN` or `C_SetPIN`), at most
/// [`PIN_RECORD_CHANGES`] times: each time the PIN is checked again, counted, against
/// the record in force, so that a rewrap of the same PIN does not make a right PIN
/// answer CKR_PIN_INCORRECT, and a PIN replaced meanwhile does.
pub(super) fn again_while_pin_record_changes(mut once: impl FnMut() -> Result<()>) -> Result<()> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match once() {
            Err(Error::Store(StoreError::PinRecordChanged)) if attempts < PIN_RECORD_CHANGES => {}
            done => return done,
        }
    }
}

/// The error for a PIN of `role` that the token does not have.
fn pin_not_set(role: PinRole) -> Error {
    match role {
        PinRole::User => Error::UserPinNotInitialized,
        PinRole::So => Error::TokenNotRecognized,
    }
}
