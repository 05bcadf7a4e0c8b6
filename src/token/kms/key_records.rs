//! The token's key records for the key model: `KeyRecords` on PKCS#11 objects and the
//! store. A decision of `kms::model` runs inside one store transaction against the
//! current records of a key's objects (`Store::transact`), so concurrent callers,
//! threads or processes, are serialised and each decides on what the one before it
//! wrote. Here: the facts a decision is given, read from a key's main object; the
//! transaction around it; and the decision written back onto every object of the key
//! (state, binding, expiry; the material kept, wiped or installed), with its audit
//! event in the same transaction.
//!
//! A key whose main object is a session object lives in this process only; its
//! decisions are serialised by `Token::kms_decisions` and made on the cached objects.
//! This module must not hold rules of its own: it maps objects to facts and decisions
//! back to objects.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::error::StoreError;
use crate::kms::audit::AuditEvent;
use crate::kms::decide::KeyFacts;
use crate::kms::records::{Current, Decide, Decision, KeyRecords, MaterialChange};
use crate::object::index;
use crate::object::table::SessionHandle;
use crate::store::audit::{self as trail, AuditKey};
use crate::store::seal::MasterKey;
use crate::store::ObjectUid;

/// What a decision on a key's objects answers: their next versions (or new objects),
/// and the audit events that record the change.
pub(super) type Decided = (Vec<Object>, Vec<AuditEvent>);

/// The label of the subkey material fingerprints are made under.
pub(super) const FINGERPRINT_LABEL: &[u8] = b"kmshsm kms material fingerprint";

/// Whether a key object holds secret material (a wiped one does not).
pub(super) fn holds_material(object: &Object) -> bool {
    object.holds_secret_material()
}

/// The keyed fingerprint of canonical material, under the fingerprint subkey `key`.
pub(super) fn fingerprint_with(
    key: &[u8; 32],
    spec: KeySpec,
    primary: &[u8],
    exponent: Option<&[u8]>,
) -> [u8; 32] {
    let canonical = match (spec.rsa_bits(), spec.symmetric_len(), exponent) {
        (Some(_), _, Some(e)) => Canonical::Rsa { n: primary, e },
        (_, Some(_), _) => Canonical::Symmetric(primary),
        _ => Canonical::Point(primary),
    };
    material::fingerprint(key, spec, canonical)
}

/// What the master key gives a decision: the key to open sealed secrets, and the
/// fingerprint subkey. Taken before the transaction, so that no token lock is taken
/// while the store's is held.
pub(super) struct Secrets {
    pub master: Option<Arc<MasterKey>>,
    pub fingerprint_key: Option<Zeroizing<[u8; 32]>>,
    /// The epoch of the token `master` is the key of (`Token::master_with_epoch`).
    pub epoch: Option<u64>,
}

/// `TokenReinitialized` when the store's token (`loaded`, read in the transaction) is
/// not the one of the keys a decision is sealed under (`Token::commit_decided`).
fn check_epoch(loaded: &crate::store::Loaded, keys_epoch: Option<u64>) -> Result<()> {
    if keys_epoch.is_some_and(|e| loaded.is_other_token(e)) {
        return Err(Error::TokenReinitialized);
    }
    Ok(())
}

/// The facts of the main object of a key as its record says them. With `need_binding`,
/// a key holding material that no fingerprint was recorded for (made from plaintext
/// while logged out) gets the fingerprint of that material, so the decision and the
/// record it writes bind the key; that needs the master key.
pub(super) fn facts_of(
    main: &Object,
    serial: &str,
    secrets: &Secrets,
    need_binding: bool,
) -> Result<KeyFacts> {
    let origin = origin_of(main).ok_or(kms(KmsError::UnsupportedOrigin))?;
    let state = state_of(main).ok_or(kms(KmsError::NotFound))?;
    let bound = match main.bytes(MATERIAL_FINGERPRINT) {
        Some(b) => Some(
            <[u8; 32]>::try_from(b).map_err(|_| StoreError::Malformed("material fingerprint"))?,
        ),
        None if need_binding && holds_material(main) => {
            let (Some(key), Some(master)) = (&secrets.fingerprint_key, &secrets.master) else {
                return Err(Error::UserNotLoggedIn);
            };
            let opened = main.open_secrets(serial, Some(master))?;
            let (spec, primary, e) =
                canonical_of(main, &opened).ok_or(kms(KmsError::InvalidKeyMaterial))?;
            Some(fingerprint_with(key, spec, &primary, e.as_deref()))
        }
        None => None,
    };
    Ok(KeyFacts {
        origin,
        state,
        bound,
        // Imports refuse an expiry past i64::MAX (it reads as one in the past); should a
        // record hold one all the same, it reads as long expired: closed, not open.
        expiry: main
            .ulong(MATERIAL_EXPIRY)
            .map_or(0, |e| i64::try_from(e).unwrap_or(i64::MIN)),
    })
}

/// The object a key's rules look at: its private or secret object (a key made of a
/// public object alone has only that).
pub(super) fn main_of(objects: &[Object]) -> Result<&Object> {
    objects
        .iter()
        .find(|o| o.class != CKO_PUBLIC_KEY)
        .or_else(|| objects.first())
        .ok_or(kms(KmsError::NotFound))
}

impl Token {
    pub(super) fn decision_secrets(&self) -> Secrets {
        let (master, epoch) = self.master_with_epoch();
        let fingerprint_key = master.as_ref().map(|m| m.derive(FINGERPRINT_LABEL));
        Secrets {
            master,
            fingerprint_key,
            epoch,
        }
    }

    /// Runs `decide` on the current objects of KMS key `id` and writes the objects it
    /// returns (new versions, or new objects) in the same store transaction, with the
    /// audit events it returns (when it writes token records); a refusal writes
    /// nothing. Session objects of the key are decided on as cached and put into
    /// the table afterwards (new ones owned by the session of the key's other session
    /// objects, or else by the caller's).
    pub(super) fn decide_on_key(
        &self,
        new_owner: Option<SessionHandle>,
        id: &[u8],
        decide: &mut dyn FnMut(&[Object]) -> Result<Decided>,
    ) -> Result<()> {
        // The token the session objects are read from (taken before they are: a reset
        // after it makes the decision one of the old token's).
        let read_in = self.view_epoch();
        let mut cached = self.key_objects(id)?;
        // Serialises this process's decisions on session objects, which no store
        // transaction covers (taken before any other token lock, and only here); the
        // session objects are then read again under it.
        let _decisions = if cached.iter().any(|(_, owner, _)| *owner != Owner::Token) {
            let held = self.kms_decisions.lock();
            cached = self.key_objects(id)?;
            Some(held)
        } else {
            None
        };
        let session: Vec<Object> = cached
            .iter()
            .filter(|(_, owner, _)| *owner != Owner::Token)
            .map(|(_, _, o)| Object::clone(o))
            .collect();
        // The key's token objects this process has cached are read by uid as well as
        // through the store's index, which is not authenticated: a lookup row deleted
        // offline must not leave one of them out of the decision.
        let cached_uids = self.cached_token_uids(id);
        let (master, audit_key, keys_epoch) = self.login_keys();
        let key = index::lookup_key(KEY_ID, id);
        let mut outcome: Result<Vec<Object>> = Err(Error::Internal("no decision was made"));
        self.transact(&cached_uids, &[&key], &mut |loaded| {
            let mut run = || -> Result<(Vec<Change>, Vec<Object>)> {
                check_epoch(loaded, keys_epoch)?;
                let mut current = Vec::with_capacity(loaded.objects.len() + session.len());
                for rec in &loaded.objects {
                    let o = Object::from_record(rec)?;
                    // Decided, a refusal included, on the token's own records only
                    // (review 20b: a fingerprint copied offline into a record was
                    // refused as other material, and recorded so), whatever KeyId an
                    // edited record now claims (review 20c).
                    if master
                        .as_deref()
                        .is_some_and(|m| !o.is_acceptable(&self.serial, m))
                    {
                        return Err(StoreError::Tampered.into());
                    }
                    // The store's lookup keys are not authenticated: a record is the
                    // key's only if its own (authenticated) KeyId says so.
                    if !o.has(IMPORT_TARGET) && o.bytes(KEY_ID) == Some(id) {
                        current.push(o);
                    }
                }
                current.extend(session.iter().cloned());
                let (next, events) = decide(&current)?;
                let mut changes = Vec::new();
                for o in next.iter().filter(|o| o.is_token()) {
                    changes.push(Change::PutObject(
                        o.to_record(&self.serial, master.as_deref())?,
                    ));
                }
                if !changes.is_empty() {
                    let bodies = events.iter().map(AuditEvent::encode).collect();
                    changes.extend(trail::append_with(
                        &loaded.audit,
                        bodies,
                        audit_key.as_deref(),
                    ));
                }
                Ok((changes, next))
            };
            match run() {
                Ok((changes, next)) => {
                    outcome = Ok(next);
                    Some(changes)
                }
                Err(e) => {
                    outcome = Err(e);
                    None
                }
            }
        })?;
        let decided = outcome?;
        self.sync()?;
        self.test_point("kms_session_objects");
        let handles: BTreeMap<ObjectUid, ObjectHandle> =
            cached.iter().map(|(h, _, o)| (o.uid, *h)).collect();
        // A key's session objects are all of one session: a new one (a key's first
        // public object, made at its import) joins them, whichever session asked, so
        // that the key goes with that session when it closes.
        let key_session = cached.iter().find_map(|(_, owner, _)| match owner {
            Owner::Session(s) => Some(*s),
            Owner::Token => None,
        });
        let mut table = self.objects.write();
        for o in decided.into_iter().filter(|o| !o.is_token()) {
            match handles.get(&o.uid) {
                // Gone with the old token's session objects if the token was reset.
                Some(h) => table.replace_session_object(*h, o),
                None => {
                    let session = key_session
                        .or(new_owner)
                        .ok_or(Error::Internal("new object without a session"))?;
                    // Made of the old token's objects and keys if the token was reset
                    // since they were read: refused then.
                    table.insert_session_object(
                        o,
                        session,
                        &self.shared.handles,
                        &[Some(read_in), keys_epoch],
                    )?;
                }
            }
        }
        Ok(())
    }

    /// The facts a decision on a key is given, from its current objects.
    fn current_of(
        &self,
        current: &[Object],
        secrets: &Secrets,
        need_binding: bool,
    ) -> Result<Current> {
        let main = main_of(current)?;
        Ok(Current {
            facts: facts_of(main, &self.serial, secrets, need_binding)?,
            // A key whose private half was destroyed is its public half, which holds its
            // public material: enabling it, or cancelling its deletion, is judged as for
            // a key with material (`lifecycle::transition_holding`), not as for one
            // whose material was deleted or never imported.
            holds_material: holds_material(main) || main.class == CKO_PUBLIC_KEY,
            holds_secret: holds_material(main),
        })
    }

    /// A decision on key `id` written onto its current objects: every object gets the
    /// state, and the binding and expiry where they change; the secret objects lose
    /// their material on a wipe, and take the imported material on an install (an
    /// asymmetric key imported for the first time gains its public object).
    fn written(
        &self,
        id: &[u8],
        current: &[Object],
        before: &KeyFacts,
        decision: Decision<Arc<Imported>>,
        secrets: &Secrets,
    ) -> Result<Decided> {
        let main = main_of(current)?;
        let after = &decision.facts;
        let installing = matches!(decision.material, MaterialChange::Install(_));
        let mut values = vec![(KEY_STATE, ulong(after.state.code()))];
        if installing || after.expiry != before.expiry {
            // Decisions make no negative expiry (imports refuse one in the past); were one
            // made, it is in the past: 1, long expired, as 0 would mean "never".
            values.push((
                MATERIAL_EXPIRY,
                ulong(u64::try_from(after.expiry).unwrap_or(1)),
            ));
        }
        if let Some(fp) = after.bound {
            if installing || main.bytes(MATERIAL_FINGERPRINT) != Some(&fp[..]) {
                values.push((MATERIAL_FINGERPRINT, Value::Bytes(fp.to_vec())));
            }
        }
        let mut next = Vec::with_capacity(current.len() + 1);
        for o in current {
            let public = o.class == CKO_PUBLIC_KEY;
            let mut values = values.clone();
            next.push(match &decision.material {
                MaterialChange::Wipe if !public => o.wiped(values),
                MaterialChange::Install(imported) if public => {
                    values.extend(imported.public.iter().cloned());
                    o.with_plain(values)
                }
                MaterialChange::Install(imported) => {
                    values.extend(imported.primary.iter().cloned());
                    let all = o.all_values(&self.serial, secrets.master.as_deref())?;
                    template::merge(o, all, values)?
                }
                _ => o.with_plain(values),
            });
        }
        if let MaterialChange::Install(imported) = &decision.material {
            if main.class == CKO_PRIVATE_KEY && !current.iter().any(|o| o.class == CKO_PUBLIC_KEY) {
                next.push(self.public_half(main, imported, values)?);
            }
        }
        let bound = after.bound.as_ref().map(|b| &b[..]);
        let events = decision
            .preceded_by
            .into_iter()
            .chain([decision.operation])
            .map(|operation| self.event(operation).key(id).material(bound))
            .collect();
        Ok((next, events))
    }

    /// One decision on one key's current objects: what it writes, or nothing.
    fn decided(
        &self,
        id: &[u8],
        current: &[Object],
        need_binding: bool,
        decide: &mut Decide<'_, Arc<Imported>>,
        secrets: &Secrets,
    ) -> Result<Decided> {
        let now = self.current_of(current, secrets, need_binding)?;
        match decide(&now).map_err(kms)? {
            Some(decision) => self.written(id, current, &now.facts, decision, secrets),
            None => Ok((Vec::new(), Vec::new())),
        }
    }

    /// `decide_on_each` of the token: keys with session objects, whose decisions this
    /// process serialises itself, one by one; the others up to [`EXPIRY_BATCH`] keys
    /// per store transaction, each decided on its current records inside it, so a
    /// batch is one durable commit instead of one per key (10,000 materials expiring
    /// at once were 10,000 fsyncs).
    fn decide_on_many(&self, ids: &[KeyId], decide: &mut Decide<'_, Arc<Imported>>) -> Result<()> {
        let (single, batched): (Vec<&KeyId>, Vec<&KeyId>) = ids
            .iter()
            .partition(|id| self.has_session_objects(id.as_str().as_bytes()));
        let mut first_error: Option<Error> = None;
        let secrets = self.decision_secrets();
        let mut one_by_one = |ids: &[&KeyId], decide: &mut Decide<'_, Arc<Imported>>| {
            for id in ids {
                let id = id.as_str().as_bytes();
                let outcome = self.decide_on_key(None, id, &mut |current| {
                    self.decided(id, current, false, decide, &secrets)
                });
                if let Err(e) = outcome {
                    log::warn!(
                        "token {}: a decision on one of many keys failed: {e}",
                        self.serial
                    );
                    keep_first_error(&mut first_error, e);
                }
            }
        };
        one_by_one(&single, decide);
        let audit_key = secrets
            .master
            .as_deref()
            .map(|m| AuditKey::new(&super::super::audit::audit_key(m)));
        for chunk in batched.chunks(EXPIRY_BATCH) {
            // A batch that cannot be decided (one key's records unreadable, say) does not
            // hold back the others: its keys are decided one by one, and the rest goes
            // on; the first failure is answered at the end (`keep_first_error`).
            if self
                .decide_batch(chunk, decide, &secrets, audit_key.as_ref())
                .is_err()
            {
                one_by_one(chunk, decide);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The uids of the token objects of KMS key `id` this process has cached (none
    /// loaded for it: the store's index is what a decision reads besides these).
    fn cached_token_uids(&self, id: &[u8]) -> Vec<ObjectUid> {
        let table = self.objects.read();
        table
            .candidates(&[(KEY_ID, Value::Bytes(id.to_vec()))])
            .unwrap_or_default()
            .into_iter()
            .filter_map(|h| table.get(h))
            .filter(|e| e.owner == Owner::Token && e.object.bytes(KEY_ID) == Some(id))
            .map(|e| e.object.uid)
            .collect()
    }

    /// One batch of `decide_on_many`, in one store transaction.
    fn decide_batch(
        &self,
        chunk: &[&KeyId],
        decide: &mut Decide<'_, Arc<Imported>>,
        secrets: &Secrets,
        audit_key: Option<&AuditKey>,
    ) -> Result<()> {
        let keys: Vec<Vec<u8>> = chunk
            .iter()
            .map(|id| index::lookup_key(KEY_ID, id.as_str().as_bytes()))
            .collect();
        let lookup: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        // As in `decide_on_key`: the keys' cached token objects by uid as well.
        let cached_uids: Vec<ObjectUid> = chunk
            .iter()
            .flat_map(|id| self.cached_token_uids(id.as_str().as_bytes()))
            .collect();
        let mut outcome: Result<()> = Err(Error::Internal("no decision was made"));
        self.transact(&cached_uids, &lookup, &mut |loaded| {
            let mut run = || -> Result<Vec<Change>> {
                check_epoch(loaded, secrets.epoch)?;
                let mut by_key: BTreeMap<Vec<u8>, Vec<Object>> = BTreeMap::new();
                for rec in &loaded.objects {
                    let o = Object::from_record(rec)?;
                    // Grouped by each record's own (authenticated) KeyId, and only the
                    // batch's keys: the store's lookup keys are not authenticated.
                    if let (false, Some(id)) = (o.has(IMPORT_TARGET), o.bytes(KEY_ID)) {
                        if chunk.iter().any(|k| k.as_str().as_bytes() == id) {
                            by_key.entry(id.to_vec()).or_default().push(o);
                        }
                    }
                }
                let (mut changes, mut bodies) = (Vec::new(), Vec::new());
                for (id, current) in &by_key {
                    let (next, events) = self.decided(id, current, false, decide, secrets)?;
                    for o in next.iter().filter(|o| o.is_token()) {
                        changes.push(Change::PutObject(
                            o.to_record(&self.serial, secrets.master.as_deref())?,
                        ));
                    }
                    bodies.extend(events.iter().map(AuditEvent::encode));
                }
                if !changes.is_empty() {
                    changes.extend(trail::append_with(&loaded.audit, bodies, audit_key));
                }
                Ok(changes)
            };
            match run() {
                Ok(changes) => {
                    outcome = Ok(());
                    Some(changes)
                }
                Err(e) => {
                    outcome = Err(e);
                    None
                }
            }
        })?;
        outcome?;
        self.sync()
    }

    /// Whether key `id` has objects in this process's session table.
    fn has_session_objects(&self, id: &[u8]) -> bool {
        let objects = self.objects.read();
        let wanted = [(KEY_ID, Value::Bytes(id.to_vec()))];
        objects
            .candidates(&wanted)
            .unwrap_or_default()
            .into_iter()
            .any(|h| objects.get(h).is_some_and(|e| e.owner != Owner::Token))
    }
}

/// Keys whose decisions one store transaction of the sweep makes and writes.
const EXPIRY_BATCH: usize = 256;

/// The token's records as the key model sees them, for one caller: new session objects
/// a decision makes (a key's first public object) belong to `new_owner`.
pub(super) struct TokenRecords<'t> {
    pub token: &'t Token,
    pub new_owner: Option<SessionHandle>,
}

impl KeyRecords for TokenRecords<'_> {
    type Material = Arc<Imported>;
    type Error = Error;

    fn now(&self) -> i64 {
        self.token.now()
    }

    fn decide_on(
        &self,
        id: &KeyId,
        need_binding: bool,
        decide: &mut Decide<'_, Arc<Imported>>,
    ) -> Result<()> {
        let token = self.token;
        let secrets = token.decision_secrets();
        let id = id.as_str().as_bytes();
        token.decide_on_key(self.new_owner, id, &mut |current| {
            token.decided(id, current, need_binding, decide, &secrets)
        })
    }

    fn decide_on_each(&self, ids: &[KeyId], decide: &mut Decide<'_, Arc<Imported>>) -> Result<()> {
        self.token.decide_on_many(ids, decide)
    }
}

/// Keeps the failure `decide_on_many` answers: the first, except that a failure other
/// than tampering comes before one. The sweep logs a key whose records fail
/// authentication and goes on (review 21b), but answers any other failure, so that
/// the key it failed on is decided again at the next call; an earlier tampered key must
/// not hide it.
fn keep_first_error(kept: &mut Option<Error>, e: Error) {
    let tampered = |e: &Error| matches!(e, Error::Store(StoreError::Tampered));
    match kept {
        Some(first) if !tampered(first) || tampered(&e) => {}
        _ => *kept = Some(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_other_than_tampering_is_answered_before_one() {
        let tampered = || Error::Store(StoreError::Tampered);
        let mut kept = None;
        keep_first_error(&mut kept, tampered());
        keep_first_error(&mut kept, Error::CacheContention);
        keep_first_error(&mut kept, Error::ObjectContention);
        keep_first_error(&mut kept, tampered());
        assert!(matches!(kept, Some(Error::CacheContention)), "{kept:?}");
        let mut kept = None;
        keep_first_error(&mut kept, tampered());
        keep_first_error(&mut kept, tampered());
        assert!(matches!(kept, Some(Error::Store(StoreError::Tampered))));
    }
}
