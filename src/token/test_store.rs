//! A store for the token's tests that wraps a real one and lets a test stand in for
//! another process, or for time, at chosen moments: steps armed to run once at the next
//! call of a kind (after a read, before `applied`, after a PIN attempt's reservation,
//! before a settle, before a transaction), and a change check that can be made deaf
//! (it answers "unchanged" whatever happened elsewhere, as a PostgreSQL store in notify
//! mode does between another host's commit and its notification). Where the real race
//! would need luck, a step puts the other process's act exactly between two steps of
//! this one. Test code only; it decides nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::store::{
    AuditLog, Change, Due, Loaded, ObjectUid, PinAttempt, PinCount, PinRecordId, PinRole,
    PinSettle, ReadMark, Scope, Snapshot, Store, StoreResult,
};

/// Where an armed step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum At {
    /// After a read (its mark moved, its snapshot not yet applied).
    Read,
    /// Before a read is marked applied.
    Applied,
    /// After a PIN attempt's reservation.
    Reserved,
    /// Before a PIN attempt is settled.
    Settle,
    /// Before a transaction begins.
    Transact,
}

type Step = Box<dyn FnOnce() + Send>;

/// What a test arms on a [`TestStore`]; clones share it.
#[derive(Clone, Default)]
pub(super) struct StoreHooks {
    steps: Arc<Mutex<Vec<(At, Step)>>>,
    deaf: Arc<AtomicBool>,
}

impl StoreHooks {
    /// Runs `step` once, at the next call of kind `at`.
    pub(super) fn arm(&self, at: At, step: impl FnOnce() + Send + 'static) {
        self.steps.lock().push((at, Box::new(step)));
    }

    /// How many armed steps have not run yet.
    pub(super) fn armed(&self) -> usize {
        self.steps.lock().len()
    }

    /// Makes the change check answer "unchanged" (`true`) or ask the store again.
    pub(super) fn set_deaf(&self, deaf: bool) {
        self.deaf.store(deaf, Ordering::SeqCst);
    }

    /// Runs the step armed at `at`, if any, with no lock held.
    fn run(&self, at: At) {
        let step = {
            let mut armed = self.steps.lock();
            let found = armed.iter().position(|(a, _)| *a == at);
            found.map(|i| armed.remove(i).1)
        };
        if let Some(step) = step {
            step();
        }
    }
}

/// `inner`, with `hooks`.
pub(super) struct TestStore {
    pub(super) inner: Box<dyn Store>,
    pub(super) hooks: StoreHooks,
}

impl TestStore {
    /// `inner` with hooks of its own; the answer's clone of them arms it.
    pub(super) fn wrap(inner: Box<dyn Store>) -> (Box<dyn Store>, StoreHooks) {
        let hooks = StoreHooks::default();
        let store = TestStore {
            inner,
            hooks: hooks.clone(),
        };
        (Box::new(store), hooks)
    }
}

impl Store for TestStore {
    fn changed_elsewhere(&self) -> StoreResult<bool> {
        if self.hooks.deaf.load(Ordering::SeqCst) {
            return Ok(false);
        }
        self.inner.changed_elsewhere()
    }
    fn read(&self, since: u64, epoch: u64, scope: Scope) -> StoreResult<Snapshot> {
        let snap = self.inner.read(since, epoch, scope)?;
        self.hooks.run(At::Read);
        Ok(snap)
    }
    fn applied(&self, mark: &ReadMark) -> StoreResult<()> {
        self.hooks.run(At::Applied);
        self.inner.applied(mark)
    }
    fn lookup(&self, key: &[u8]) -> StoreResult<Vec<ObjectUid>> {
        self.inner.lookup(key)
    }
    fn load(&self, uids: &[ObjectUid]) -> StoreResult<Loaded> {
        self.inner.load(uids)
    }
    fn load_by_key(&self, key: &[u8]) -> StoreResult<Loaded> {
        self.inner.load_by_key(key)
    }
    fn due(&self, now: i64) -> StoreResult<Due> {
        self.inner.due(now)
    }
    fn object_count_hint(&self) -> StoreResult<u64> {
        self.inner.object_count_hint()
    }
    fn commit(&self, changes: Vec<Change>) -> StoreResult<()> {
        self.inner.commit(changes)
    }
    fn transact(
        &self,
        uids: &[ObjectUid],
        lookup: &[&[u8]],
        decide: &mut dyn FnMut(&Loaded) -> Option<Vec<Change>>,
    ) -> StoreResult<bool> {
        self.hooks.run(At::Transact);
        self.inner.transact(uids, lookup, decide)
    }
    fn reserve_pin_attempt(
        &self,
        role: PinRole,
        epoch: u64,
        limit: u32,
        now: i64,
        lease_until: i64,
    ) -> StoreResult<PinAttempt> {
        let attempt = self
            .inner
            .reserve_pin_attempt(role, epoch, limit, now, lease_until)?;
        self.hooks.run(At::Reserved);
        Ok(attempt)
    }
    fn settle_pin_attempt(
        &self,
        role: PinRole,
        right: bool,
        record: &PinRecordId,
    ) -> StoreResult<PinSettle> {
        self.hooks.run(At::Settle);
        self.inner.settle_pin_attempt(role, right, record)
    }
    fn pin_counts(&self, now: i64) -> StoreResult<std::collections::BTreeMap<PinRole, PinCount>> {
        self.inner.pin_counts(now)
    }
    fn audit_log(&self) -> StoreResult<AuditLog> {
        self.inner.audit_log()
    }
    fn check_integrity(&self) -> StoreResult<()> {
        self.inner.check_integrity()
    }
}
