//! Object operations on a token: create, copy, destroy, read and change attributes, and
//! search, with the visibility and write rules of PKCS#11 3.0 §4.4 and §6.7.
//!
//! Private objects are visible only to a logged-in user; token objects change only in
//! read/write sessions; secrets reach the store sealed. This module must not parse
//! templates itself (`object::template` does) nor touch raw pointers.

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::ck::*;

use crate::error::{Error, Result, StoreError};
use crate::object::attr::{AttrType, RawAttribute, Value};
use crate::object::index::INDEXED;
use crate::object::policy::{is_key_secret, KEY_ID, KEY_STATE};
use crate::object::table::{Entry, ObjectHandle, ObjectTable, Owner, SessionHandle};
use crate::object::template;
use crate::object::{Object, Read};
use crate::store::Change;

use super::duties::Policy;
use super::{LoggedIn, Token};

/// What `Token::insert_all_judged` judges besides the new objects themselves.
pub(super) struct Judges<'a> {
    /// The stored records `in_store` is given (`Loaded::objects`, with those the new
    /// objects' names look up).
    pub(super) uids: &'a [crate::store::ObjectUid],
    /// Runs in the store transaction that stores the token objects, with the store's
    /// lock held: it must take no token lock.
    pub(super) in_store: &'a mut dyn FnMut(&crate::store::Loaded) -> Result<()>,
    /// Runs under the object table's write lock, before anything is inserted: for
    /// session objects, which no store transaction covers.
    pub(super) in_table: &'a mut dyn FnMut(&ObjectTable) -> Result<()>,
    /// Holds `Token::kms_decisions` from before the judgements until the new objects are
    /// stored: for a judge of a session key's KMS state, which other decisions on
    /// session keys change under that lock.
    pub(super) serialise_decisions: bool,
    /// The separation-of-duties policy as found before the new objects were judged
    /// (`Token::policy`), with what it made of any judged already.
    pub(super) policy: Policy,
}

/// How often `C_SetAttributeValue` and `C_DestroyObject` judge again when the object
/// changed meanwhile, before they answer `CKR_FUNCTION_FAILED` (`Error::ObjectContention`).
const CHANGE_ATTEMPTS: usize = 16;

/// The calling session, as the token needs to know it.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub session: SessionHandle,
    pub rw: bool,
}

/// Private objects are visible only while the user is logged in (§4.4, CKA_PRIVATE).
fn may_see(private: bool, who: LoggedIn) -> bool {
    !private || who == LoggedIn::User
}

impl Token {
    fn visible(&self, entry: &Entry, who: LoggedIn) -> bool {
        may_see(entry.object.is_private(), who)
    }

    /// Looks up an object the caller may see.
    pub(super) fn entry(&self, handle: ObjectHandle) -> Result<Entry> {
        self.entry_read(handle).map(|(entry, _, _)| entry)
    }

    /// `entry`, and the table's generation it was read in (`object/shared.rs`).
    pub(super) fn entry_with_generation(&self, handle: ObjectHandle) -> Result<(Entry, u64)> {
        self.entry_read(handle)
            .map(|(entry, generation, _)| (entry, generation))
    }

    /// `entry`, and the epoch of the token it is of (`Entry::epoch`): a change made of it
    /// is committed only into that token (`commit_decided`), and a session object made
    /// of it is kept only in that token's table (`insert_session_object`).
    pub(super) fn entry_with_epoch(&self, handle: ObjectHandle) -> Result<(Entry, u64)> {
        self.entry_read(handle)
            .map(|(entry, _, epoch)| (entry, epoch))
    }

    /// `entry` with the table's generation and epoch, read under one lock.
    fn entry_read(&self, handle: ObjectHandle) -> Result<(Entry, u64, u64)> {
        self.refresh()?;
        let who = self.logged_in();
        let read = {
            let objects = self.objects.read();
            match objects.get(handle) {
                Some(e) if self.visible(e, who) => (e.clone(), self.objects.generation(), e.epoch),
                _ => return Err(Error::ObjectHandleInvalid),
            }
        };
        // A record changed outside the module is never used (docs/security.md).
        self.check_record(&read.0.object)?;
        Ok(read)
    }

    /// The write rules for a new or changed object.
    fn check_writable(&self, caller: Caller, object: &Object) -> Result<()> {
        if object.is_token() && !caller.rw {
            return Err(Error::SessionReadOnly);
        }
        let who = self.logged_in();
        if object.is_private() && who != LoggedIn::User {
            return Err(Error::UserNotLoggedIn);
        }
        // §4.4: only the SO may mark an object trusted.
        if object.bool_attr(CKA_TRUSTED) == Some(true) && who != LoggedIn::So {
            return Err(Error::AttributeReadOnly);
        }
        Ok(())
    }

    /// Stores a new object (token objects: commit, then publish) and returns its handle;
    /// the object is made of what was read from the tokens of epochs `decided_in`
    /// (`insert_all_in`).
    pub(super) fn insert_in(
        &self,
        caller: Caller,
        object: Object,
        decided_in: &[Option<u64>],
    ) -> Result<ObjectHandle> {
        self.insert_policed(caller, object, decided_in, self.policy()?)
    }

    /// `insert_in`, the object judged by the separation-of-duties policy as `policy`
    /// found it (`insert_all_policed`).
    pub(super) fn insert_policed(
        &self,
        caller: Caller,
        object: Object,
        decided_in: &[Option<u64>],
        policy: Policy,
    ) -> Result<ObjectHandle> {
        let handles = self.insert_all_policed(caller, vec![object], decided_in, policy)?;
        handles
            .into_iter()
            .next()
            .ok_or(Error::Internal("insert returned no handle"))
    }

    /// Stores several new objects at once, made of what was read from the tokens of
    /// epochs `decided_in` (`commit_decided`; for session objects,
    /// `insert_session_object`): the session objects among them first, then the token
    /// ones in one store transaction, so that a refusal of either leaves nothing.
    pub(super) fn insert_all_in(
        &self,
        caller: Caller,
        objects: Vec<Object>,
        decided_in: &[Option<u64>],
    ) -> Result<Vec<ObjectHandle>> {
        self.insert_all_policed(caller, objects, decided_in, self.policy()?)
    }

    /// `insert_all_in`, the objects judged by the separation-of-duties policy as
    /// `policy` found it, before the caller judged them too (a copy, a derivation).
    pub(super) fn insert_all_policed(
        &self,
        caller: Caller,
        objects: Vec<Object>,
        decided_in: &[Option<u64>],
        policy: Policy,
    ) -> Result<Vec<ObjectHandle>> {
        self.insert_all_judged(
            caller,
            objects,
            decided_in,
            Judges {
                uids: &[],
                in_store: &mut |_| Ok(()),
                in_table: &mut |_| Ok(()),
                serialise_decisions: false,
                policy,
            },
        )
    }

    /// `insert_all_in`, stored only if `judges` accept the objects the new ones depend on
    /// as they are when the new ones are stored (the import wrapping pair's target,
    /// `generate_import_parameters`); a judge's refusal is the call's answer.
    pub(super) fn insert_all_judged(
        &self,
        caller: Caller,
        objects: Vec<Object>,
        decided_in: &[Option<u64>],
        judges: Judges<'_>,
    ) -> Result<Vec<ObjectHandle>> {
        let Judges {
            uids,
            in_store: judge,
            in_table,
            serialise_decisions,
            mut policy,
        } = judges;
        self.test_point("insert");
        // First in the token's lock order, taken with no other token lock held.
        let _decisions = serialise_decisions.then(|| self.kms_decisions.lock());
        // The token the write rules are judged on.
        let judged_in = self.view_epoch();
        for object in &objects {
            self.check_writable(caller, object)?;
            self.check_import_pair_names(object, None)?;
            policy.judge_new(object)?;
        }
        policy.judge_together(&objects)?;
        let (master, master_epoch) = self.master_with_epoch();
        let mut decided: Vec<Option<u64>> = decided_in.to_vec();
        decided.extend([Some(judged_in), master_epoch]);
        let mut changes = Vec::new();
        for object in objects.iter().filter(|o| o.is_token()) {
            changes.push(Change::PutObject(
                object.to_record(&self.serial, master.as_deref())?,
            ));
        }
        self.test_point("inserting");
        // Session objects first, judged again and inserted under the login's lock, which
        // a logout takes: a private session object must not land after a C_Logout that
        // came after the first check (the logout's forget_private would have destroyed
        // it). `login` comes before `objects` in the token's lock order. Before the
        // token objects' commit, so that a refusal here leaves nothing stored, and a
        // refused commit takes them out again (`forget`). Not whole in one case: a
        // commit written whose acknowledgement or read-back then fails answers an error
        // and may leave the token half (docs/architecture.md).
        let mut made: Vec<Option<ObjectHandle>> = Vec::with_capacity(objects.len());
        let mut token_objects = Vec::new();
        {
            let _login = self.login.lock();
            for object in objects.iter().filter(|o| !o.is_token()) {
                self.check_writable(caller, object)?;
            }
            let mut table = self.objects.write();
            in_table(&table)?;
            for object in objects {
                if object.is_token() {
                    made.push(None);
                    token_objects.push(object);
                    continue;
                }
                match table.insert_session_object(
                    object,
                    caller.session,
                    &self.shared.handles,
                    &decided,
                ) {
                    Ok(handle) => made.push(Some(handle)),
                    Err(e) => {
                        forget(&mut table, &made);
                        return Err(e);
                    }
                }
            }
        }
        if !changes.is_empty() {
            let events = self.creation_events(&token_objects);
            let new: Vec<&Object> = token_objects.iter().collect();
            let names = Token::pair_name_keys(&new, None);
            let lookup: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
            let mut judged = Ok(());
            let mut attempts = 0;
            let written = loop {
                let mut required = changes.clone();
                required.extend(policy.requirements());
                let written = self.commit_with_events_if(
                    uids,
                    &lookup,
                    &mut |loaded| {
                        if Token::pair_names_clash(loaded, &new) {
                            judged = Err(Error::AttributeValueInvalid);
                        } else {
                            judged = judge(loaded);
                        }
                        judged.is_ok()
                    },
                    required,
                    events.clone(),
                    &decided,
                );
                // The token's metadata changed since the policy was taken: the write is
                // judged on the policy as the token holds it now, and committed again if
                // the token is still not under it (review 22a: an older token's adoption
                // writes its first marker, which puts it under nothing).
                match written {
                    Err(Error::Store(StoreError::MetaChanged)) if attempts < CHANGE_ATTEMPTS => {
                        attempts += 1;
                        match self.policy_again(&policy) {
                            Ok(now) => policy = now,
                            Err(e) => break Err(e),
                        }
                    }
                    written => break written,
                }
            };
            let refused = match written {
                Ok(true) => None,
                Ok(false) => Some(judged.err().unwrap_or(Error::AttributeValueInvalid)),
                Err(e) => Some(policy.answer(e)),
            };
            if let Some(e) = refused {
                forget(&mut self.objects.write(), &made);
                return Err(e);
            }
        }
        let mut table = self.objects.write();
        let mut committed = token_objects.iter();
        let handles: Option<Vec<ObjectHandle>> = made
            .iter()
            .map(|handle| match handle {
                Some(handle) => Some(*handle),
                None => committed
                    .next()
                    .and_then(|object| table.token_handle(&object.uid)),
            })
            .collect();
        handles.ok_or_else(|| {
            // Committed, then gone before its handle was read: another process
            // re-initialised the token and another thread here applied it, or another
            // thread destroyed the object. Either way the caller gets no handle, and not
            // the session objects of the same call either.
            forget(&mut table, &made);
            if table.seq().1 != judged_in {
                Error::TokenReinitialized
            } else {
                Error::CacheContention
            }
        })
    }

    pub fn create_object(&self, caller: Caller, template: &[RawAttribute]) -> Result<ObjectHandle> {
        let (object, made_in) = self.build_created(template)?;
        self.insert_in(caller, object, &[made_in])
    }

    pub fn copy_object(
        &self,
        caller: Caller,
        handle: ObjectHandle,
        template: &[RawAttribute],
    ) -> Result<ObjectHandle> {
        let (entry, epoch) = self.entry_with_epoch(handle)?;
        self.authorise_copy(caller, &entry, &template::parse(template)?)?;
        let (master, master_epoch) = self.master_with_epoch();
        let all = entry.object.all_values(&self.serial, master.as_deref())?;
        let mut copy = template::copy(&entry.object, all, template)?;
        let mut policy = self.policy()?;
        policy.judge_copy(&entry.object, &copy)?;
        if copy.has(KEY_ID) {
            // A copy is another key with the same material: it gets its own KeyId, so
            // state changes of one never reach the other.
            let id = crate::kms::key::KeyId::generate();
            copy = copy.with_plain(vec![(
                KEY_ID,
                crate::object::attr::Value::Bytes(id.as_str().as_bytes().to_vec()),
            )]);
        }
        // The copy is of the token the object was read from, its secrets opened under
        // that key: it goes into that token only.
        self.insert_policed(caller, copy, &[Some(epoch), master_epoch], policy)
    }

    pub fn destroy_object(&self, caller: Caller, handle: ObjectHandle) -> Result<()> {
        // Judged on the object as read and removed only as that version, as
        // `set_attributes` writes: one destroyed meanwhile is gone (the next attempt
        // answers `ObjectHandleInvalid`, and no second event is recorded), one changed
        // meanwhile (made indestructible, say) is judged again.
        for _ in 0..CHANGE_ATTEMPTS {
            if self.destroy_object_once(caller, handle)? {
                return Ok(());
            }
        }
        Err(Error::ObjectContention)
    }

    /// One attempt of `destroy_object`: `false` when the object is no longer the version
    /// judged (nothing removed).
    fn destroy_object_once(&self, caller: Caller, handle: ObjectHandle) -> Result<bool> {
        let (entry, epoch) = self.entry_with_epoch(handle)?;
        self.authorise_destroy(caller, &entry)?;
        match entry.owner {
            Owner::Token => {
                let event = self.destruction_event(&entry.object);
                let read = &entry.object;
                // The object, and its event, are of the token of `epoch` only.
                self.commit_with_events_if(
                    &[read.uid],
                    &[],
                    &mut |loaded| loaded.objects.iter().any(|r| read.is_version_of(r)),
                    vec![Change::RemoveObject(read.uid)],
                    event.into_iter().collect(),
                    &[Some(epoch)],
                )
            }
            Owner::Session(_) => {
                // Destroying a session KMS key is a decision on it like the others
                // (`kms_decisions`, first in the lock order).
                let _decisions = entry.object.has(KEY_ID).then(|| self.kms_decisions.lock());
                let mut table = self.objects.write();
                let current = table
                    .get(handle)
                    .is_some_and(|e| Arc::ptr_eq(&e.object, &entry.object));
                if current {
                    table.remove_session_object(handle);
                }
                Ok(current)
            }
        }
    }

    /// `C_SetAttributeValue`: a KMS state change, or attributes changed under the
    /// rules of §4.4 and the object's own (`authorise_change`).
    pub fn set_attributes(
        &self,
        caller: Caller,
        handle: ObjectHandle,
        template: &[RawAttribute],
    ) -> Result<()> {
        // A change is judged on the object as read and written only over that version:
        // one that changed meanwhile (a KMS decision, a wipe of its material, another
        // change, a destruction, in this process or another) is read and judged again,
        // so that the two end as one order of them would.
        for _ in 0..CHANGE_ATTEMPTS {
            if self.set_attributes_once(caller, handle, template)? {
                return Ok(());
            }
        }
        Err(Error::ObjectContention)
    }

    /// One attempt of `set_attributes`: `false` when the object is no longer the version
    /// the change was judged on (nothing written).
    fn set_attributes_once(
        &self,
        caller: Caller,
        handle: ObjectHandle,
        template: &[RawAttribute],
    ) -> Result<bool> {
        let (entry, epoch) = self.entry_with_epoch(handle)?;
        let parsed = template::parse(template)?;
        if let Some(state) = parsed.get(&KEY_STATE) {
            // The KMS lifecycle moves the key state, alone (docs/key-model.md).
            if parsed.len() != 1 {
                return Err(Error::TemplateInconsistent);
            }
            self.authorise_state_change(caller, &entry)?;
            let wanted = state.as_ulong().ok_or(Error::AttributeValueInvalid)?;
            return self
                .change_state(caller, &entry.object, wanted, epoch)
                .map(|()| true);
        }
        self.authorise_change(caller, &entry, &parsed)?;
        let mut policy = self.policy()?;
        let (master, master_epoch) = self.master_with_epoch();
        let all = entry.object.all_values(&self.serial, master.as_deref())?;
        let changed = template::apply(&entry.object, all, template)?;
        self.check_writable(caller, &changed)?;
        self.check_import_pair_names(&changed, Some(&entry.object))?;
        policy.judge_change(&entry.object, &changed)?;
        match entry.owner {
            Owner::Token => {
                let record = changed.to_record(&self.serial, master.as_deref())?;
                let read = &entry.object;
                let names = Token::pair_name_keys(&[&changed], Some(read));
                let lookup: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
                let (mut current, mut clash) = (false, false);
                // The object as read from the token of `epoch`, sealed under the key of
                // the token of `master_epoch`: written into that token only, over the
                // record it was read from only, and not under a pair's id taken meanwhile.
                let required = policy.requirements();
                self.test_point("changing");
                let changed = self.commit_decided_on(
                    &[read.uid],
                    &lookup,
                    &[Some(epoch), master_epoch],
                    &mut |loaded| {
                        current = loaded.objects.iter().any(|r| read.is_version_of(r));
                        clash = !lookup.is_empty() && Token::pair_names_clash(loaded, &[&changed]);
                        if current && !clash {
                            let mut changes = required.clone();
                            changes.push(Change::PutObject(record.clone()));
                            changes
                        } else {
                            Vec::new()
                        }
                    },
                );
                match changed {
                    // The token's metadata changed since the policy was taken: judged
                    // again on the policy as the token holds it now (review 22a).
                    Err(Error::Store(StoreError::MetaChanged)) => {
                        return self.policy_again(&policy).map(|_| false);
                    }
                    changed => changed?,
                }
                if current && clash {
                    return Err(Error::AttributeValueInvalid);
                }
                Ok(current)
            }
            Owner::Session(_) => {
                // A change of a session KMS key is serialised with the decisions on it
                // (`kms_decisions`, first in the lock order).
                let _decisions = entry.object.has(KEY_ID).then(|| self.kms_decisions.lock());
                let mut table = self.objects.write();
                let current = table
                    .get(handle)
                    .is_some_and(|e| Arc::ptr_eq(&e.object, &entry.object));
                if current {
                    table.replace_session_object(handle, changed);
                }
                Ok(current)
            }
        }
    }

    /// Reads the requested attributes; each is a value, sensitive, or absent.
    pub fn attributes(&self, handle: ObjectHandle, types: &[AttrType]) -> Result<Vec<Read>> {
        let entry = self.entry(handle)?;
        let master = self.master();
        types
            .iter()
            .map(|ty| {
                if crate::object::policy::kind(*ty).is_none() {
                    return Ok(Read::Absent);
                }
                if is_key_secret(entry.object.class, *ty)
                    && entry.object.has(*ty)
                    && !self.material_readable(&entry.object)
                {
                    return Ok(Read::Sensitive);
                }
                if *ty == KEY_STATE {
                    if let Some(state) = self.state_now(&entry.object) {
                        return Ok(Read::Value(Zeroizing::new(Value::Ulong(state).to_native())));
                    }
                }
                entry.object.read(*ty, &self.serial, master.as_deref())
            })
            .collect()
    }

    /// `C_GetObjectSize`: the size of the object's stored record.
    pub fn object_size(&self, handle: ObjectHandle) -> Result<usize> {
        let entry = self.entry(handle)?;
        Ok(entry.object.stored_size())
    }

    /// The handles of every visible object matching `template`, in handle order.
    pub fn find(&self, template: &[RawAttribute]) -> Result<Vec<ObjectHandle>> {
        let Some(wanted) = template::parse_search(template)? else {
            return Ok(Vec::new());
        };
        self.refresh()?;
        match crate::object::index::search_key(&wanted) {
            Some(key) => self.load_matching(&key)?,
            None => self.load_all()?,
        }
        let who = self.logged_in();
        // Before the table's lock: `login` comes first in the token's lock order (a
        // logout holds it while it takes the table's write lock).
        let master = self.master();
        let objects = self.objects.read();
        // One indexed attribute (a search by label or id): the index entry is the
        // answer, with each object's CKA_PRIVATE beside its handle.
        if let [(ty, want)] = wanted.as_slice() {
            if let (true, Some(value)) = (INDEXED.contains(ty), want.as_bytes()) {
                // Postings iterate in handle order.
                return Ok(objects
                    .postings(*ty, value)
                    .into_iter()
                    .flat_map(|p| p.iter())
                    .filter(|(_, private)| may_see(*private, who))
                    .map(|(h, _)| h)
                    .collect());
            }
        }
        // A search by KMS state compares the state as a read finds it now (`state_now`);
        // one that compares key material compares only what could be read.
        let (state_wanted, rest): (Vec<_>, Vec<_>) =
            wanted.iter().cloned().partition(|(ty, _)| *ty == KEY_STATE);
        let fits = |e: &Entry| {
            let compares_material = || {
                rest.iter()
                    .any(|(ty, _)| is_key_secret(e.object.class, *ty))
            };
            self.visible(e, who)
                && state_wanted
                    .iter()
                    .all(|(_, v)| self.state_now(&e.object).map(Value::Ulong).as_ref() == Some(v))
                && (!compares_material() || self.material_readable(&e.object))
                && e.object.matches(&rest, &self.serial, master.as_deref())
        };
        // The candidates are taken under the table's lock and compared after it: the
        // comparisons cost what the caller's template makes them cost (review 24a: 4,096
        // copies of a 64 KiB label held every other session's writes for seconds).
        let candidates: Vec<(ObjectHandle, Entry)> = match objects.candidates(&wanted) {
            Some(handles) => handles
                .into_iter()
                .filter_map(|h| objects.get(h).map(|e| (h, e.clone())))
                .collect(),
            None => objects.iter().map(|(h, e)| (h, e.clone())).collect(),
        };
        drop(objects);
        // A logout in another thread meanwhile hides the private objects from this
        // answer too.
        let mut found: Vec<ObjectHandle> = candidates
            .iter()
            .filter(|(_, e)| fits(e) && self.visible(e, self.logged_in()))
            .map(|(h, _)| *h)
            .collect();
        found.sort_unstable();
        Ok(found)
    }

    /// The object behind a handle, for the mechanism layer.
    pub fn object(&self, handle: ObjectHandle) -> Result<Arc<Object>> {
        Ok(self.entry(handle)?.object)
    }
}

/// Takes out the session objects `made` (those inserted so far) of a creation refused
/// afterwards.
fn forget(table: &mut ObjectTable, made: &[Option<ObjectHandle>]) {
    for handle in made.iter().flatten() {
        table.remove_session_object(*handle);
    }
}
