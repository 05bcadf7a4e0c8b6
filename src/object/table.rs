//! The objects of one token as this process sees them, by handle.
//!
//! Token objects are a cache of the store: loaded when first needed (looked up by an
//! indexed attribute, found due, or all at once for a search the index cannot narrow),
//! then kept current from `Snapshot`s. Session objects live only here. Handles are
//! allocated from process-wide counters (one for public objects, one for private ones)
//! when an object is first seen and never reused, so a stale handle or one from another
//! token is simply not found.
//! This module must not do I/O or check logins; the token does both.

use std::collections::hash_map::Entry as Slot;
use std::collections::{HashMap, HashSet, VecDeque};

use super::handle_hash::HandleMap;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::store::{Loaded, ObjectRecord, ObjectUid, Snapshot};

use super::attr::{AttrType, Value};
use super::index::{deadline_of, table_key, INDEXED};
use super::lookup::{LookupKey, Postings};
use super::Object;

pub use crate::ids::{ObjectHandle, SessionHandle};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Token,
    Session(SessionHandle),
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub object: Arc<Object>,
    pub owner: Owner,
    /// The epoch of the token the object is of: the store's, for a token object read
    /// from it; for a session object, the one every source it was made of was read in
    /// (`insert_session_object`). A change made of the object goes into that token only.
    pub epoch: u64,
}

/// The next handle of a public object of the process (odd numbers), whichever provider
/// asks: a handle kept across `C_Finalize` and `C_Initialize` must name nothing in the
/// new provider (PKCS#11 3.0 §5.4 ends every handle at `C_Finalize`; review 16c found the
/// count started again at 1).
static NEXT_PUBLIC_HANDLE: AtomicU64 = AtomicU64::new(1);

/// The next handle of a private object of the process (even numbers). Apart from the
/// public ones so that the handles a session without a login sees (public objects, its
/// own session objects) count no private object (review 17d: the gaps between them told
/// how many private keys the token held).
static NEXT_PRIVATE_HANDLE: AtomicU64 = AtomicU64::new(2);

/// Process-wide source of object handles (two counters for every provider the process
/// makes, [`NEXT_PUBLIC_HANDLE`] and [`NEXT_PRIVATE_HANDLE`]): handles are never reused.
#[derive(Debug, Default)]
pub struct HandleSource;

impl HandleSource {
    /// A fresh handle for `object`, from the counter of its kind (public or private).
    pub fn next_for(&self, object: &Object) -> ObjectHandle {
        let counter = if object.is_private() {
            &NEXT_PRIVATE_HANDLE
        } else {
            &NEXT_PUBLIC_HANDLE
        };
        ObjectHandle::new(counter.fetch_add(2, Ordering::Relaxed))
    }
}

#[derive(Debug, Default)]
pub struct ObjectTable {
    /// Keyed by module-chosen handles: `handle_hash` says why no SipHash.
    entries: HandleMap<ObjectHandle, Entry>,
    /// Lookup key of (attribute, value) → the objects with that value, and whether
    /// each is private.
    index: HashMap<LookupKey, Postings<ObjectHandle>>,
    token_handles: HashMap<ObjectUid, ObjectHandle>,
    /// Every live token object is here (after a `Scope::All` read), not only those
    /// loaded so far.
    complete: bool,
    /// Lookup keys whose token objects are all here: loaded once from the store, and
    /// kept current since by the snapshots (which bring every new or changed object).
    /// Bounded (`MAX_RESOLVED`, `MAX_RESOLVED_KEY`): a caller searching for ever new or
    /// long values must not grow it without end (review 21b).
    resolved: HashSet<LookupKey>,
    /// Token objects loaded by uid (`add_loaded`) from a store sequence after the
    /// cache's: a whole read older than that (applied later by another thread) did not
    /// see them and must not drop them, nor the handles given out for them (review 21b).
    loaded_after: HashMap<ObjectUid, u64>,
    /// The store sequence and epoch the cached token objects are current to.
    seq: u64,
    epoch: u64,
    /// No material expiry or import-token expiry falls before this time (unix
    /// seconds); the token sweeps only once it has passed. 0 (a new table): unknown,
    /// so the first sweep asks the store and sets it.
    next_deadline: i64,
    /// How many deadlines have been noted, and the latest of them, oldest first: a sweep
    /// ends by setting the next deadline from what it read, and must not lose one noted
    /// meanwhile (`end_sweep`).
    deadline_notes: u64,
    recent_notes: VecDeque<i64>,
    /// The sessions objects may be made in (opened and not closed since).
    open_sessions: HashSet<SessionHandle>,
}

/// At most this many lookup keys are remembered as resolved; past it the set starts
/// again (a key forgotten is looked up in the store again, never answered wrongly).
const MAX_RESOLVED: usize = 65_536;

/// A lookup key longer than this (a search for a long label, say) is not remembered.
const MAX_RESOLVED_KEY: usize = 256;

/// The deadline `force_sweep` notes: before any record's.
const FORCED: i64 = i64::MIN;

/// Notes kept for `end_sweep`: more noted during one sweep than this, and the sweep
/// leaves the deadline passed, so the next call sweeps again.
const NOTES_KEPT: usize = 32;

impl ObjectTable {
    /// Every entry change goes through `put` and `take`, which keep the index true.
    fn put(&mut self, handle: ObjectHandle, entry: Entry) {
        self.take(handle);
        // Expiries set here or by another process bring the next sweep forward.
        if let Some(at) = deadline_of(&entry.object) {
            self.note_deadline(at);
        }
        let private = entry.object.is_private();
        for ty in INDEXED {
            if let Some(v) = entry.object.bytes(ty) {
                match self.index.entry(table_key(ty, v)) {
                    Slot::Occupied(mut slot) => slot.get_mut().insert(handle, private),
                    Slot::Vacant(slot) => {
                        slot.insert(Postings::One(handle, private));
                    }
                }
            }
        }
        self.entries.insert(handle, entry);
    }

    fn take(&mut self, handle: ObjectHandle) -> Option<Entry> {
        let entry = self.entries.remove(&handle)?;
        for ty in INDEXED {
            if let Some(v) = entry.object.bytes(ty) {
                let key = table_key(ty, v);
                let emptied = self
                    .index
                    .get_mut(key.as_slice())
                    .is_some_and(|postings| postings.remove(handle));
                if emptied {
                    self.index.remove(key.as_slice());
                }
            }
        }
        Some(entry)
    }

    /// Removes the entries `drop` picks.
    fn take_where(&mut self, drop: impl Fn(&Entry) -> bool) {
        let gone: Vec<ObjectHandle> = self
            .entries
            .iter()
            .filter(|(_, e)| drop(e))
            .map(|(h, _)| *h)
            .collect();
        for h in gone {
            self.take(h);
        }
    }

    /// The handles that can match `template`, when it names an indexed attribute (the
    /// smallest such set); `None` when every object must be looked at.
    pub fn candidates(&self, template: &[(AttrType, Value)]) -> Option<Vec<ObjectHandle>> {
        template
            .iter()
            .filter(|(ty, _)| INDEXED.contains(ty))
            .filter_map(|(ty, v)| v.as_bytes().map(|b| (*ty, b)))
            .map(|(ty, b)| {
                self.postings(ty, b)
                    .map(|p| p.iter().map(|(h, _)| h).collect::<Vec<_>>())
                    .unwrap_or_default()
            })
            .min_by_key(Vec::len)
    }

    /// The objects whose attribute `ty` (an indexed one) has the value `value`.
    pub fn postings(&self, ty: AttrType, value: &[u8]) -> Option<&Postings<ObjectHandle>> {
        self.index.get(table_key(ty, value).as_slice())
    }

    pub fn seq(&self) -> (u64, u64) {
        (self.seq, self.epoch)
    }

    /// Whether every live token object is cached.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Whether every token object with lookup key `key` is cached.
    pub fn is_resolved(&self, key: &[u8]) -> bool {
        self.complete || self.resolved.contains(key)
    }

    /// Records that every token object with `key` has been loaded, as of a lookup made
    /// while the cache was in `epoch`; nothing if the cache has been reset since.
    pub fn mark_resolved(&mut self, key: &[u8], epoch: u64) {
        if epoch != self.epoch || self.complete || key.len() > MAX_RESOLVED_KEY {
            return;
        }
        if self.resolved.len() >= MAX_RESOLVED {
            self.resolved.clear();
        }
        self.resolved.insert(LookupKey::new(key));
    }

    /// Whether the cache holds the token object `uid`.
    pub fn has_token_object(&self, uid: &ObjectUid) -> bool {
        self.token_handles.contains_key(uid)
    }

    /// Brings the cache up to `snap`. A snapshot older than the cache is ignored (and
    /// `false` returned), so concurrent readers can apply in any order.
    pub fn apply(&mut self, snap: &Snapshot, handles: &HandleSource) -> Result<bool> {
        let stale = snap.epoch < self.epoch
            || (snap.epoch == self.epoch
                && (snap.seq < self.seq || (snap.seq == self.seq && !snap.whole)));
        if stale {
            return Ok(false);
        }
        if snap.reset {
            let all: Vec<ObjectUid> = self.token_handles.keys().copied().collect();
            for uid in all {
                self.remove_token_object(&uid);
            }
            self.complete = false;
            self.resolved.clear();
            self.loaded_after.clear();
        }
        if snap.whole {
            let live: std::collections::HashSet<&ObjectUid> =
                snap.objects.iter().map(|r| &r.uid).collect();
            // Not in the whole read, and not loaded from a later sequence than it.
            let gone: Vec<ObjectUid> = self
                .token_handles
                .keys()
                .filter(|uid| !live.contains(uid))
                .filter(|uid| self.loaded_after.get(*uid).is_none_or(|at| *at <= snap.seq))
                .copied()
                .collect();
            for uid in gone {
                self.remove_token_object(&uid);
            }
            self.complete = true;
            self.resolved.clear();
        }
        for uid in &snap.removed {
            self.remove_token_object(uid);
        }
        for rec in &snap.objects {
            self.put_token_object(rec, handles, snap.epoch)?;
        }
        self.seq = snap.seq;
        self.epoch = snap.epoch;
        // What the cache is now current to covers these: later reads bring their changes.
        let seq = self.seq;
        self.loaded_after.retain(|_, at| *at > seq);
        Ok(true)
    }

    /// Adds token objects read by uid. They may be newer than the cache (later
    /// snapshots bring the cache up to them), but not older: a record read before a
    /// snapshot the cache has applied may have been removed by it. Then nothing is
    /// added and `false` returned — refresh and load again.
    pub fn add_loaded(&mut self, loaded: &Loaded, handles: &HandleSource) -> Result<bool> {
        if loaded.epoch != self.epoch || loaded.seq < self.seq {
            return Ok(false);
        }
        for rec in &loaded.objects {
            if !self.token_handles.contains_key(&rec.uid) {
                self.put_token_object(rec, handles, loaded.epoch)?;
                if loaded.seq > self.seq {
                    self.loaded_after.insert(rec.uid, loaded.seq);
                }
            }
        }
        Ok(true)
    }

    fn put_token_object(
        &mut self,
        rec: &ObjectRecord,
        handles: &HandleSource,
        epoch: u64,
    ) -> Result<()> {
        let object = Arc::new(Object::from_record(rec)?);
        let handle = *self
            .token_handles
            .entry(rec.uid)
            .or_insert_with(|| handles.next_for(&object));
        self.put(
            handle,
            Entry {
                object,
                owner: Owner::Token,
                epoch,
            },
        );
        Ok(())
    }

    fn remove_token_object(&mut self, uid: &ObjectUid) {
        self.loaded_after.remove(uid);
        if let Some(handle) = self.token_handles.remove(uid) {
            self.take(handle);
        }
    }

    pub fn get(&self, handle: ObjectHandle) -> Option<&Entry> {
        self.entries.get(&handle)
    }

    pub fn token_handle(&self, uid: &ObjectUid) -> Option<ObjectHandle> {
        self.token_handles.get(uid).copied()
    }

    /// Adds a session object made of what was read from the tokens of epochs `made_in`
    /// (its sources, the keys it was opened or sealed under, the login its write rules
    /// were judged under; `None` or 0: nothing known). Refused with `TokenReinitialized`
    /// unless each is the epoch of the token the table now holds: a session object made
    /// of the old token's must not outlive the reset that dropped the old token's
    /// session objects, and be copied into the new token from there.
    pub fn insert_session_object(
        &mut self,
        object: Object,
        session: SessionHandle,
        handles: &HandleSource,
        made_in: &[Option<u64>],
    ) -> Result<ObjectHandle> {
        if made_in
            .iter()
            .flatten()
            .any(|e| *e != 0 && *e != self.epoch)
        {
            return Err(Error::TokenReinitialized);
        }
        if !self.open_sessions.contains(&session) {
            return Err(Error::SessionClosed);
        }
        let handle = handles.next_for(&object);
        self.put(
            handle,
            Entry {
                object: Arc::new(object),
                owner: Owner::Session(session),
                epoch: self.epoch,
            },
        );
        Ok(handle)
    }

    /// Replaces a session object in place (same handle).
    pub fn replace_session_object(&mut self, handle: ObjectHandle, object: Object) {
        if let Some(entry) = self.entries.get(&handle) {
            let (owner, epoch) = (entry.owner, entry.epoch);
            self.put(
                handle,
                Entry {
                    object: Arc::new(object),
                    owner,
                    epoch,
                },
            );
        }
    }

    pub fn remove_session_object(&mut self, handle: ObjectHandle) {
        self.take(handle);
    }

    /// Drops the objects of one session, or of every session when `session` is `None`.
    /// Notes `session` open: objects may be made in it until [`ObjectTable::close_session`].
    pub fn open_session(&mut self, session: SessionHandle) {
        self.open_sessions.insert(session);
    }

    /// Closes `session` with its objects: from now on none is made in it
    /// (`insert_session_object` answers `SessionClosed`), however long ago the call
    /// making it looked the session up (§4.4: a session's objects end with it).
    pub fn close_session(&mut self, session: SessionHandle) {
        self.open_sessions.remove(&session);
        self.remove_session_objects(Some(session));
    }

    pub fn remove_session_objects(&mut self, session: Option<SessionHandle>) {
        self.take_where(|e| match (e.owner, session) {
            (Owner::Token, _) => false,
            (Owner::Session(_), None) => true,
            (Owner::Session(s), Some(w)) => s == w,
        });
    }

    /// At logout (§5.6 C_Logout): private session objects are destroyed and handles to
    /// private token objects become invalid; those objects get fresh handles.
    pub fn forget_private(&mut self, handles: &HandleSource) {
        self.take_where(|e| matches!(e.owner, Owner::Session(_)) && e.object.is_private());
        let private_token: Vec<(ObjectUid, ObjectHandle)> = self
            .token_handles
            .iter()
            .filter(|(_, h)| self.entries.get(h).is_some_and(|e| e.object.is_private()))
            .map(|(u, h)| (*u, *h))
            .collect();
        for (uid, old) in private_token {
            if let Some(entry) = self.take(old) {
                let new = handles.next_for(&entry.object);
                self.put(new, entry);
                self.token_handles.insert(uid, new);
            }
        }
    }

    pub fn next_deadline(&self) -> i64 {
        self.next_deadline
    }

    pub fn set_next_deadline(&mut self, at: i64) {
        self.next_deadline = at;
    }

    /// Records a deadline that may come before the known next one.
    pub fn note_deadline(&mut self, at: i64) {
        self.next_deadline = self.next_deadline.min(at);
        self.deadline_notes = self.deadline_notes.wrapping_add(1);
        if self.recent_notes.len() == NOTES_KEPT {
            self.recent_notes.pop_front();
        }
        self.recent_notes.push_back(at);
    }

    /// How many deadlines have been noted so far: a sweep reads it before it asks the
    /// store what is due, and hands it to `end_sweep`.
    pub fn deadline_notes(&self) -> u64 {
        self.deadline_notes
    }

    /// Ends a sweep at `now` that found `next` the next deadline, from a read of the
    /// store made after `since` deadlines had been noted. A deadline noted since (another
    /// thread's import, a snapshot) may be missing from that read: the earliest of those
    /// still to come is kept too. When more were noted than are kept, the deadline is
    /// left where it was, passed, so the next call sweeps again.
    /// A sweep forced since (`force_sweep`) leaves it passed too.
    pub fn end_sweep(&mut self, next: i64, since: u64, now: i64) {
        let noted = self.deadline_notes.wrapping_sub(since);
        if noted > self.recent_notes.len() as u64 {
            return;
        }
        let window = || self.recent_notes.iter().rev().take(noted as usize).copied();
        if window().any(|at| at == FORCED) {
            return;
        }
        let missed = window().filter(|&at| at > now).min();
        self.next_deadline = missed.map_or(next, |at| at.min(next));
    }

    /// Makes the next call sweep, whatever a sweep under way finds (a login: material
    /// that expired while no one was logged in is wiped then).
    pub fn force_sweep(&mut self) {
        self.note_deadline(FORCED);
    }

    /// Removes a session object by its uid (the sweep's purge of session wrapping keys).
    pub fn remove_by_uid(&mut self, uid: &ObjectUid) {
        let uid = *uid;
        self.take_where(|e| e.object.uid == uid);
    }

    /// Drops every parsed key (at logout): each entry holding one gets a copy without it.
    pub fn shed_keys(&mut self) {
        for entry in self.entries.values_mut() {
            if entry.object.has_parsed_key() {
                entry.object = Arc::new(Object::clone(&entry.object));
            }
        }
    }

    /// The earliest deadline among session objects (token objects' are in the store).
    pub fn session_deadline(&self) -> Option<i64> {
        self.entries
            .values()
            .filter(|e| matches!(e.owner, Owner::Session(_)))
            .filter_map(|e| deadline_of(&e.object))
            .min()
    }

    pub fn iter(&self) -> impl Iterator<Item = (ObjectHandle, &Entry)> {
        self.entries.iter().map(|(h, e)| (*h, e))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ck::*;
    use crate::object::attr::RawAttribute;
    use crate::object::template::{build, Provenance};
    use zeroize::Zeroizing;

    #[test]
    fn a_sweep_keeps_a_deadline_noted_while_it_read_the_store() {
        let now = 100;
        let mut t = ObjectTable::default();
        t.open_session(SessionHandle::new(1));
        // Nothing noted during the sweep: its own answer stands.
        let since = t.deadline_notes();
        t.end_sweep(1_000, since, now);
        assert_eq!(t.next_deadline(), 1_000);
        // Another thread's import, after the store was asked: its expiry is kept.
        t.set_next_deadline(now);
        let since = t.deadline_notes();
        t.note_deadline(500);
        t.note_deadline(700);
        t.end_sweep(1_000, since, now);
        assert_eq!(t.next_deadline(), 500);
        // A later noted one does not pull the store's earlier one back.
        let since = t.deadline_notes();
        t.note_deadline(2_000);
        t.end_sweep(1_000, since, now);
        assert_eq!(t.next_deadline(), 1_000);
        // Deadlines already passed (the records this sweep dealt with) are not kept.
        let since = t.deadline_notes();
        t.note_deadline(now - 1);
        t.end_sweep(1_000, since, now);
        assert_eq!(t.next_deadline(), 1_000);
        // More noted than are kept: the deadline stays passed for the next call.
        t.set_next_deadline(now);
        let since = t.deadline_notes();
        for at in 0..=NOTES_KEPT as i64 {
            t.note_deadline(10_000 + at);
        }
        t.end_sweep(1_000, since, now);
        assert_eq!(t.next_deadline(), now);
        // A login during the sweep forced another: it is not called off.
        let since = t.deadline_notes();
        t.force_sweep();
        t.end_sweep(1_000, since, now);
        assert!(t.next_deadline() <= now);
    }

    fn data(label: &[u8]) -> Object {
        data_with_private(label, false)
    }

    fn data_with_private(label: &[u8], private: bool) -> Object {
        let raw = |ty: AttrType, v: Vec<u8>| RawAttribute {
            ty,
            value: crate::object::attr::RawValue::Bytes(Zeroizing::new(v)),
        };
        build(
            &[
                raw(CKA_CLASS, CKO_DATA.raw().to_ne_bytes().to_vec()),
                raw(CKA_LABEL, label.to_vec()),
                raw(CKA_PRIVATE, vec![u8::from(private)]),
            ],
            Provenance::Supplied,
            vec![],
        )
        .unwrap()
    }

    fn by_label(t: &ObjectTable, label: &[u8]) -> Option<Vec<ObjectHandle>> {
        t.candidates(&[(CKA_LABEL, Value::Bytes(label.to_vec()))])
    }

    fn snapshot(seq: u64, epoch: u64, reset: bool, whole: bool) -> Snapshot {
        Snapshot {
            seq,
            epoch,
            reset,
            whole,
            ..Snapshot::default()
        }
    }

    #[test]
    fn a_resolved_lookup_key_holds_until_the_cache_is_reset() {
        let handles = HandleSource;
        let mut t = ObjectTable::default();
        t.open_session(SessionHandle::new(1));
        t.apply(&snapshot(1, 1, true, false), &handles).unwrap();
        assert!(!t.is_resolved(b"k"));
        t.mark_resolved(b"k", 1);
        assert!(t.is_resolved(b"k"));
        t.apply(&snapshot(2, 1, false, false), &handles).unwrap();
        assert!(t.is_resolved(b"k"), "changes keep it");
        t.apply(&snapshot(3, 2, true, false), &handles).unwrap();
        assert!(!t.is_resolved(b"k"), "a reset forgets it");
        t.mark_resolved(b"k", 1);
        assert!(
            !t.is_resolved(b"k"),
            "a lookup from before the reset does not count"
        );
        t.apply(&snapshot(4, 2, false, true), &handles).unwrap();
        assert!(
            t.is_resolved(b"anything"),
            "a complete cache resolves every key"
        );
    }

    #[test]
    fn the_label_index_follows_inserts_replacements_and_removals() {
        let handles = HandleSource;
        let mut t = ObjectTable::default();
        t.open_session(SessionHandle::new(1));
        t.open_session(SessionHandle::new(2));
        let a = t
            .insert_session_object(data(b"a"), SessionHandle::new(1), &handles, &[])
            .unwrap();
        let b = t
            .insert_session_object(data(b"b"), SessionHandle::new(2), &handles, &[])
            .unwrap();
        assert_eq!(by_label(&t, b"a"), Some(vec![a]));
        t.replace_session_object(a, data(b"c"));
        assert_eq!(by_label(&t, b"a"), Some(vec![]));
        assert_eq!(by_label(&t, b"c"), Some(vec![a]));
        t.remove_session_objects(Some(SessionHandle::new(2)));
        assert_eq!(by_label(&t, b"b"), Some(vec![]));
        t.remove_session_object(a);
        assert_eq!(by_label(&t, b"c"), Some(vec![]));
        assert!(t.index.is_empty(), "no stale index entries");
        assert!(t.candidates(&[(CKA_CLASS, Value::Ulong(0))]).is_none());
        let _ = b;
    }

    #[test]
    fn no_object_is_made_in_a_closed_session_and_its_objects_go_with_it() {
        let handles = HandleSource;
        let mut t = ObjectTable::default();
        t.open_session(SessionHandle::new(1));
        let made = |t: &mut ObjectTable, s: u64| {
            t.insert_session_object(data(b"s"), SessionHandle::new(s), &handles, &[])
        };
        made(&mut t, 1).expect("an open session");
        assert!(matches!(
            made(&mut t, 2),
            Err(crate::error::Error::SessionClosed)
        ));
        t.close_session(SessionHandle::new(1));
        assert_eq!(by_label(&t, b"s"), Some(vec![]), "its object went with it");
        assert!(matches!(
            made(&mut t, 1),
            Err(crate::error::Error::SessionClosed)
        ));
    }

    #[test]
    fn a_session_object_made_in_another_epoch_is_refused() {
        let handles = HandleSource;
        let mut t = ObjectTable::default();
        t.open_session(SessionHandle::new(1));
        t.apply(&snapshot(1, 2, true, true), &handles).unwrap();
        let made = |t: &mut ObjectTable, epochs: &[Option<u64>]| {
            t.insert_session_object(data(b"s"), SessionHandle::new(1), &handles, epochs)
        };
        let h = made(&mut t, &[Some(2), None, Some(0)]).expect("made in the table's epoch");
        assert_eq!(t.get(h).map(|e| e.epoch), Some(2));
        for stale in [[Some(1), Some(2)], [Some(2), Some(3)]] {
            assert!(matches!(
                made(&mut t, &stale),
                Err(crate::error::Error::TokenReinitialized)
            ));
        }
        assert_eq!(by_label(&t, b"s"), Some(vec![h]), "nothing else was added");
    }

    #[test]
    fn postings_carry_each_objects_private_flag_through_replacements() {
        let handles = HandleSource;
        let mut t = ObjectTable::default();
        t.open_session(SessionHandle::new(1));
        let a = t
            .insert_session_object(
                data_with_private(b"x", true),
                SessionHandle::new(1),
                &handles,
                &[],
            )
            .unwrap();
        let b = t
            .insert_session_object(
                data_with_private(b"x", false),
                SessionHandle::new(1),
                &handles,
                &[],
            )
            .unwrap();
        // In handle order, which is not the order of creation (private and public objects
        // are counted apart).
        let flags = |t: &ObjectTable| {
            t.postings(CKA_LABEL, b"x")
                .map(|p| p.iter().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        let sorted = |mut v: Vec<(ObjectHandle, bool)>| {
            v.sort();
            v
        };
        assert_eq!(flags(&t), sorted(vec![(a, true), (b, false)]));
        t.replace_session_object(a, data_with_private(b"x", false));
        assert_eq!(flags(&t), sorted(vec![(a, false), (b, false)]));
        t.remove_session_object(b);
        assert_eq!(flags(&t), [(a, false)]);
    }
}
