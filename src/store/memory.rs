//! An in-memory store with the same contract as SQLite, for unit tests of the layers
//! above. Handles made with `share` behave like separate processes on one token.
//! It must never be used for a real token: nothing survives the process.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::audit::{self, AuditHead, AuditLog, AuditRecord};
use super::{
    latest_lease_end, Change, Due, Loaded, ObjectRecord, ObjectUid, PinAttempt, PinCount,
    PinRecord, PinRecordId, PinRole, PinSettle, ReadMark, RecordIndex, Scope, Snapshot, Store,
    StoreResult,
};
use crate::error::StoreError;

#[derive(Debug, Default)]
struct Shared {
    version: u64,
    seq: u64,
    epoch: u64,
    meta: BTreeMap<String, Vec<u8>>,
    pins: BTreeMap<PinRole, PinRecord>,
    /// uid → (sequence of the last write, record as read back, its index).
    objects: BTreeMap<ObjectUid, (u64, ObjectRecord, RecordIndex)>,
    removed: BTreeMap<ObjectUid, u64>,
    /// PIN attempts in flight: (role, attempt number) → (the record's KDF parameters,
    /// lease end).
    flights: BTreeMap<(PinRole, u64), (Vec<u8>, i64)>,
    /// PIN attempts reserved so far, per role (the number of the newest).
    reserved: BTreeMap<PinRole, u64>,
    /// The audit trail.
    audit: AuditLog,
}

impl Shared {
    fn audit_head(&self) -> AuditHead {
        let anchor = self.audit.anchor;
        let anchored_hash = anchor.and_then(|a| {
            self.audit
                .events
                .iter()
                .find(|e| e.seq == a.seq)
                .map(|e| e.hash)
                .or(self
                    .audit
                    .checkpoint
                    .filter(|c| c.seq == a.seq)
                    .map(|c| c.hash))
        });
        let (seq, hash, sealed) = match (self.audit.events.last(), &self.audit.checkpoint) {
            (Some(e), _) => (e.seq, e.hash, e.mac.is_some()),
            (None, Some(c)) => (c.seq, c.hash, true),
            (None, None) => (0, [0; 32], false),
        };
        AuditHead {
            seq,
            hash,
            sealed,
            anchor,
            anchored_hash,
            authenticated: anchor.is_none()
                && (self.audit.checkpoint.is_some()
                    || self.audit.events.iter().any(|e| e.mac.is_some())),
        }
    }
}

#[derive(Debug)]
pub(crate) struct MemoryStore {
    shared: Arc<Mutex<Shared>>,
    seen: Mutex<u64>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    pub(crate) fn new() -> MemoryStore {
        MemoryStore {
            shared: Arc::new(Mutex::new(Shared {
                epoch: 1,
                ..Shared::default()
            })),
            seen: Mutex::new(0),
        }
    }

    /// A second handle on the same records, as another process would have.
    pub(crate) fn share(&self) -> MemoryStore {
        MemoryStore {
            shared: Arc::clone(&self.shared),
            seen: Mutex::new(0),
        }
    }

    /// Bumps the shared version; the caller's own handle stays current only if it was.
    fn bump(&self, shared: &mut Shared) {
        let mut seen = self.seen.lock();
        let was_current = *seen == shared.version;
        shared.version += 1;
        if was_current {
            *seen = shared.version;
        }
    }
}

/// Applies `changes` to the shared records as one new sequence number; nothing when one
/// of them is refused.
/// Judges every `RequirePin` of `changes` on the PIN records as the commit's earlier
/// changes leave them, as SQLite's transaction does, before anything is applied (so
/// that a refused commit leaves nothing, as SQLite's rolled-back transaction does).
fn require_pins(pins: &BTreeMap<PinRole, PinRecord>, changes: &[Change]) -> StoreResult<()> {
    if !changes
        .iter()
        .any(|c| matches!(c, Change::RequirePin { .. }))
    {
        return Ok(());
    }
    let mut pins = pins.clone();
    for change in changes {
        match change {
            Change::RequirePin { role, kdf } if pins.get(role).map(|p| &p.kdf) != Some(kdf) => {
                return Err(StoreError::PinRecordChanged);
            }
            Change::PutPin(role, pin) => {
                pins.insert(*role, pin.clone());
            }
            Change::RemovePin(role) => {
                pins.remove(role);
            }
            Change::RewrapPin {
                role,
                from_kdf,
                record,
            } => {
                if let Some(held) = pins.get_mut(role).filter(|h| &h.kdf == from_kdf) {
                    held.kdf = record.kdf.clone();
                }
            }
            Change::Wipe => pins.clear(),
            _ => {}
        }
    }
    Ok(())
}

/// Judges every `RequireMeta` of `changes` on the metadata as the commit's earlier
/// changes leave it, before anything is applied (`require_pins`).
fn require_meta(meta: &BTreeMap<String, Vec<u8>>, changes: &[Change]) -> StoreResult<()> {
    let mut written: BTreeMap<&str, &[u8]> = BTreeMap::new();
    for change in changes {
        match change {
            Change::PutMeta(name, value) => {
                written.insert(name, value);
            }
            Change::PutMetaIfAbsent(name, value) if !meta.contains_key(name) => {
                written.entry(name).or_insert(value);
            }
            Change::RequireMeta { name, value } => {
                let held = written
                    .get(name.as_str())
                    .copied()
                    .or_else(|| meta.get(name).map(Vec::as_slice));
                if held != value.as_deref() {
                    return Err(StoreError::MetaChanged);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn apply(shared: &mut Shared, changes: Vec<Change>) -> StoreResult<()> {
    if let Some(Change::PruneAudit(cp)) =
        changes.iter().find(|c| matches!(c, Change::PruneAudit(_)))
    {
        if !shared
            .audit
            .events
            .iter()
            .any(|e| e.seq == cp.seq && e.hash == cp.hash)
        {
            return Err(StoreError::Malformed(
                "the audit checkpoint does not match the stored event",
            ));
        }
    }
    if let Some(Change::RekeyAudit { checkpoint, .. }) = changes
        .iter()
        .find(|c| matches!(c, Change::RekeyAudit { .. }))
    {
        let stored = shared.audit.checkpoint.map(|c| (c.seq, c.hash));
        if stored != checkpoint.map(|c| (c.seq, c.hash)) {
            return Err(StoreError::AuditCheckpointChanged);
        }
    }
    require_pins(&shared.pins, &changes)?;
    require_meta(&shared.meta, &changes)?;
    let restoring = changes.iter().any(|c| matches!(c, Change::RestoreAudit(_)));
    if restoring && (!shared.audit.events.is_empty() || shared.audit.checkpoint.is_some()) {
        return Err(StoreError::Malformed(
            "the audit trail to restore into is not empty",
        ));
    }
    shared.seq += 1;
    let seq = shared.seq;
    for change in changes {
        match change {
            Change::PutMeta(k, v) => {
                shared.meta.insert(k, v);
            }
            Change::PutMetaIfAbsent(k, v) => {
                shared.meta.entry(k).or_insert(v);
            }
            Change::PutPin(role, pin) => {
                // Attempts in flight at a record this one replaces are not at this one.
                shared
                    .flights
                    .retain(|(r, _), (kdf, _)| *r != role || *kdf == pin.kdf);
                shared.pins.insert(role, pin);
            }
            Change::RequirePin { .. } | Change::RequireMeta { .. } => {}
            Change::RewrapPin {
                role,
                from_kdf,
                record,
            } => {
                if let Some(held) = shared.pins.get_mut(&role).filter(|h| h.kdf == from_kdf) {
                    if held.kdf != record.kdf {
                        shared.flights.retain(|(r, _), _| *r != role);
                    }
                    held.kdf = record.kdf;
                    held.wrapped_key = record.wrapped_key;
                }
            }
            Change::RemovePin(role) => {
                shared.pins.remove(&role);
                shared.flights.retain(|(r, _), _| *r != role);
            }
            Change::PutObject(mut rec) => {
                shared.removed.remove(&rec.uid);
                let index = std::mem::take(&mut rec.index);
                shared.objects.insert(rec.uid, (seq, rec, index));
            }
            Change::Reindex(uid, index) => {
                if let Some(entry) = shared.objects.get_mut(&uid) {
                    entry.2 = index;
                }
            }
            Change::RemoveObject(uid) => {
                shared.objects.remove(&uid);
                shared.removed.insert(uid, seq);
            }
            Change::Wipe => {
                shared.objects.clear();
                shared.removed.clear();
                shared.pins.clear();
                shared.flights.clear();
                shared.epoch += 1;
            }
            Change::AppendEvent { body, link } => {
                let (seq, hash) = audit::next_link(&shared.audit_head(), &body, link);
                shared.audit.events.push(AuditRecord {
                    seq,
                    body,
                    hash,
                    mac: None,
                });
            }
            Change::SealAudit(seal) => {
                if let Some(e) = shared.audit.events.iter_mut().find(|e| e.seq == seal.seq) {
                    e.mac = Some(seal.mac);
                }
            }
            Change::AnchorAudit(a) => shared.audit.anchor = Some(a),
            Change::PruneAudit(cp) => {
                shared.audit.events.retain(|e| e.seq > cp.seq);
                shared.audit.checkpoint = Some(cp);
            }
            Change::RekeyAudit { checkpoint, seal } => {
                if let (Some(new), Some(cp)) = (checkpoint, shared.audit.checkpoint.as_mut()) {
                    cp.mac = new.mac;
                }
                shared.audit.anchor = None;
                for e in &mut shared.audit.events {
                    e.mac = None;
                    if seal.is_some_and(|s| s.seq == e.seq) {
                        e.mac = seal.map(|s| s.mac);
                    }
                }
            }
            Change::RestoreAudit(log) => shared.audit = *log,
        }
    }
    Ok(())
}

impl Store for MemoryStore {
    fn changed_elsewhere(&self) -> StoreResult<bool> {
        Ok(*self.seen.lock() != self.shared.lock().version)
    }

    fn applied(&self, mark: &ReadMark) -> StoreResult<()> {
        if let ReadMark::Counter(version) = *mark {
            *self.seen.lock() = version;
        }
        Ok(())
    }

    fn read(&self, since: u64, epoch: u64, scope: Scope) -> StoreResult<Snapshot> {
        let shared = self.shared.lock();
        let reset = epoch != shared.epoch;
        let wanted = |seq: u64| match (scope, reset) {
            (Scope::All, _) => true,
            (Scope::Changes, true) => false,
            (Scope::Changes, false) => seq > since,
        };
        Ok(Snapshot {
            seq: shared.seq,
            epoch: shared.epoch,
            reset,
            whole: scope == Scope::All,
            meta: shared.meta.clone(),
            pins: shared.pins.clone(),
            objects: shared
                .objects
                .values()
                .filter(|(s, _, _)| wanted(*s))
                .map(|(_, r, _)| r.clone())
                .collect(),
            removed: if reset || scope == Scope::All {
                Vec::new()
            } else {
                shared
                    .removed
                    .iter()
                    .filter(|(_, s)| **s > since)
                    .map(|(u, _)| *u)
                    .collect()
            },
            mark: ReadMark::Counter(shared.version),
        })
    }

    fn lookup(&self, key: &[u8]) -> StoreResult<Vec<ObjectUid>> {
        let shared = self.shared.lock();
        Ok(shared
            .objects
            .iter()
            .filter(|(_, (_, _, index))| index.lookup.iter().any(|k| k == key))
            .map(|(uid, _)| *uid)
            .collect())
    }

    fn load(&self, uids: &[ObjectUid]) -> StoreResult<Loaded> {
        let shared = self.shared.lock();
        Ok(Loaded {
            seq: shared.seq,
            epoch: shared.epoch,
            objects: uids
                .iter()
                .filter_map(|uid| shared.objects.get(uid))
                .map(|(_, r, _)| r.clone())
                .collect(),
            audit: AuditHead::default(),
        })
    }

    fn object_count_hint(&self) -> StoreResult<u64> {
        Ok(self.shared.lock().objects.len() as u64)
    }

    fn due(&self, now: i64) -> StoreResult<Due> {
        let shared = self.shared.lock();
        let mut due = Due::default();
        for (uid, (_, _, index)) in &shared.objects {
            match index.due {
                Some(at) if at <= now => due.now.push(*uid),
                Some(at) => due.next = Some(due.next.map_or(at, |n| n.min(at))),
                None => {}
            }
        }
        Ok(due)
    }

    fn commit(&self, changes: Vec<Change>) -> StoreResult<()> {
        let mut shared = self.shared.lock();
        apply(&mut shared, changes)?;
        self.bump(&mut shared);
        Ok(())
    }

    fn transact(
        &self,
        uids: &[ObjectUid],
        lookup: &[&[u8]],
        decide: &mut dyn FnMut(&Loaded) -> Option<Vec<Change>>,
    ) -> StoreResult<bool> {
        // The one mutex is held from the read to the write: no other handle commits between.
        let mut shared = self.shared.lock();
        let loaded = Loaded {
            seq: shared.seq,
            epoch: shared.epoch,
            objects: shared
                .objects
                .iter()
                .filter(|(uid, (_, _, index))| {
                    uids.contains(uid) || index.lookup.iter().any(|k| lookup.contains(&&k[..]))
                })
                .map(|(_, (_, r, _))| r.clone())
                .collect(),
            audit: shared.audit_head(),
        };
        let Some(changes) = decide(&loaded).filter(|c| !c.is_empty()) else {
            return Ok(false);
        };
        apply(&mut shared, changes)?;
        self.bump(&mut shared);
        Ok(true)
    }

    fn reserve_pin_attempt(
        &self,
        role: PinRole,
        epoch: u64,
        limit: u32,
        now: i64,
        lease_until: i64,
    ) -> StoreResult<PinAttempt> {
        let mut shared = self.shared.lock();
        let shared = &mut *shared;
        if shared.epoch != epoch {
            return Ok(PinAttempt::OtherToken);
        }
        let pin = shared
            .pins
            .get_mut(&role)
            .ok_or(StoreError::Malformed("no PIN record for that role"))?;
        // Attempts whose lease ended (or was given by a clock far ahead) are in flight no
        // more: their holders died, and they stay counted.
        let latest = latest_lease_end(now);
        shared
            .flights
            .retain(|(r, _), (_, lease)| *r != role || (*lease > now && *lease <= latest));
        if limit != 0 && pin.failures >= limit {
            // One of the last `limit` reserved, which right would lower the count under
            // the limit (review 15i).
            let newest = shared.reserved.get(&role).copied().unwrap_or(0);
            let busy = shared.flights.iter().any(|((r, attempt), (kdf, _))| {
                *r == role && *kdf == pin.kdf && *attempt + u64::from(limit) > newest
            });
            return Ok(if busy {
                PinAttempt::Busy
            } else {
                PinAttempt::Locked
            });
        }
        pin.failures += 1;
        let failures = pin.failures;
        let kdf = pin.kdf.clone();
        let attempt = shared.reserved.entry(role).or_insert(0);
        *attempt += 1;
        let attempt = *attempt;
        shared
            .flights
            .insert((role, attempt), (kdf.clone(), lease_until));
        self.bump(shared);
        Ok(PinAttempt::Reserved {
            failures,
            record: PinRecordId {
                epoch,
                kdf,
                attempt,
            },
        })
    }

    fn settle_pin_attempt(
        &self,
        role: PinRole,
        right: bool,
        record: &PinRecordId,
    ) -> StoreResult<PinSettle> {
        let mut shared = self.shared.lock();
        if shared.epoch != record.epoch {
            return Ok(PinSettle::OtherToken);
        }
        // No longer in flight: its own entry goes, and only its own.
        if shared
            .flights
            .get(&(role, record.attempt))
            .is_some_and(|(kdf, _)| *kdf == record.kdf)
        {
            shared.flights.remove(&(role, record.attempt));
        }
        // The attempts reserved after this one stay counted (in flight, or wrong).
        let after = shared
            .reserved
            .get(&role)
            .map_or(0, |n| n.saturating_sub(record.attempt));
        let changed = match shared.pins.get_mut(&role) {
            Some(pin) if right && pin.failures != 0 && pin.kdf == record.kdf => {
                pin.failures = pin.failures.min(u32::try_from(after).unwrap_or(u32::MAX));
                true
            }
            _ => false,
        };
        if changed {
            self.bump(&mut shared);
        }
        Ok(PinSettle::Settled)
    }

    fn pin_counts(&self, now: i64) -> StoreResult<BTreeMap<PinRole, PinCount>> {
        let shared = self.shared.lock();
        Ok(shared
            .pins
            .iter()
            .map(|(role, pin)| {
                let latest = latest_lease_end(now);
                // Counted: the last `failures` reserved.
                let newest = shared.reserved.get(role).copied().unwrap_or(0);
                let in_flight = shared
                    .flights
                    .iter()
                    .filter(|((r, attempt), (kdf, lease))| {
                        r == role
                            && *kdf == pin.kdf
                            && *attempt + u64::from(pin.failures) > newest
                            && *lease > now
                            && *lease <= latest
                    })
                    .count();
                let in_flight = i64::try_from(in_flight).unwrap_or(i64::MAX);
                (*role, PinCount::read(pin.failures, in_flight))
            })
            .collect())
    }

    fn audit_log(&self) -> StoreResult<AuditLog> {
        Ok(self.shared.lock().audit.clone())
    }

    fn check_integrity(&self) -> StoreResult<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_store_meets_the_store_contract() {
        let first = super::MemoryStore::new();
        let second = first.share();
        crate::store::contract::run(&first, &second);
    }

    #[test]
    fn memory_store_keeps_the_audit_trail_contract() {
        let first = super::MemoryStore::new();
        let second = first.share();
        crate::store::contract::audit(&first, &second);
        crate::store::contract::audit_restore(&super::MemoryStore::new());
    }

    /// Review of 7a7d832: the memory store checked every `ReplacePin` of a commit against
    /// the records as they were before the commit, where SQLite's transaction (and
    /// PostgreSQL's) checks each against the records as the commit's earlier changes left
    /// them. Two replacements from one record in one commit: SQLite refuses the whole
    /// commit, the memory store applies both, so a test on the memory store can pass where
    /// the real stores fail.
    #[test]
    fn a_commit_replacing_one_pin_record_twice_is_judged_as_sqlite_judges_it() {
        use crate::error::StoreError;
        use crate::store::{Change, PinRecord, PinRole, Store};
        let record = |kdf: u8| PinRecord {
            kdf: vec![kdf],
            wrapped_key: vec![kdf],
            failures: 0,
        };
        let replace = |from: u8, to: u8| {
            [
                Change::RequirePin {
                    role: PinRole::User,
                    kdf: vec![from],
                },
                Change::RewrapPin {
                    role: PinRole::User,
                    from_kdf: vec![from],
                    record: record(to),
                },
            ]
        };
        let dir = tempfile::tempdir().unwrap();
        let sqlite =
            crate::store::sqlite::SqliteStore::create(&dir.path().join("t.db"), vec![]).unwrap();
        let memory = super::MemoryStore::new();
        let outcome = |store: &dyn Store| {
            store
                .commit(vec![Change::PutPin(PinRole::User, record(1))])
                .unwrap();
            matches!(
                store.commit([replace(1, 2), replace(1, 3)].concat()),
                Err(StoreError::PinRecordChanged)
            )
        };
        let (in_sqlite, in_memory) = (outcome(&sqlite), outcome(&memory));
        assert_eq!(
            in_memory, in_sqlite,
            "refused by SQLite: {in_sqlite}, by the memory store: {in_memory}"
        );
    }

    #[test]
    fn racing_decisions_on_one_record_have_one_winner_across_handles() {
        let first = super::MemoryStore::new();
        let second = first.share();
        crate::store::contract::race(&[&first, &second], 4, 50);
    }
}
