//! The token's audit trail (docs/audit.md): each lifecycle change is committed together
//! with its event (`commit_with_events`, and `kms/key_records.rs` inside its decision), a refusal
//! alone in its own small transaction (`record_refusal`), and the head is authenticated
//! under the audit key (a subkey of the master key) whenever the writer is logged in,
//! and at every login (`seal_audit_head`). Reading and verifying the trail, and pruning
//! it to a checkpoint, need a login.
//!
//! Events are made by the callers with `kms::audit`; this module only carries them into
//! the store. It must never put material, a PIN or a secret into an event.

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::ck::{CKO_PRIVATE_KEY, CKO_PUBLIC_KEY, CKO_SECRET_KEY};

use crate::error::{Error, Result};
use crate::kms::audit::{AuditEvent, Operation};
use crate::object::policy::{IMPORT_TARGET, KEY_ID, MATERIAL_FINGERPRINT};
use crate::object::Object;
use crate::store::audit::{self, checkpoint_mac, head_mac, AuditKey, AuditLog, Broken, Verified};
use crate::store::seal::MasterKey;
use crate::store::{AuditCheckpoint, AuditHead, AuditSeal, Change, Loaded, ObjectUid};

use super::{LoggedIn, Token};

/// The label of the audit key under the master key.
const AUDIT_LABEL: &[u8] = b"kmshsm audit trail";
/// How many times a re-initialisation re-reads a trail that grew while it verified it.
const REKEY_ATTEMPTS: usize = 8;

/// The audit key of a master key.
pub(super) fn audit_key(master: &MasterKey) -> Zeroizing<[u8; 32]> {
    master.derive(AUDIT_LABEL)
}

/// One event as read back: its number, what it says (`None`: not an event this build
/// can read), and whether a MAC at or after it vouches for it.
#[derive(Debug, Clone)]
pub struct TrailEntry {
    pub seq: u64,
    pub event: Option<AuditEvent>,
    pub authenticated: bool,
}

/// The whole trail and the verdict on it.
#[derive(Debug)]
pub struct Trail {
    pub entries: Vec<TrailEntry>,
    pub verdict: std::result::Result<Verified, Broken>,
}

impl Token {
    /// A successful `operation` now, by this process, on this token.
    pub(super) fn event(&self, operation: Operation) -> AuditEvent {
        AuditEvent::new(self.now(), &self.serial, operation)
    }

    /// The master key and its audit key, read together (one login's pair: a logout or
    /// login between two reads could pair one login's records with another's key).
    pub(super) fn login_keys(
        &self,
    ) -> (Option<Arc<MasterKey>>, Option<Arc<AuditKey>>, Option<u64>) {
        let login = self.login.lock();
        (
            login.master.clone(),
            login.audit_key.clone(),
            login.master_epoch(),
        )
    }

    /// Commits `changes` and `events` in one store transaction (the events chained after
    /// the head read in it, and sealed when logged in), then publishes.
    /// `decided_in`: the epoch of the master key the changes were sealed under, if any
    /// (`master_with_epoch`); the audit key's is read with it here.
    pub(super) fn commit_with_events(
        &self,
        changes: Vec<Change>,
        events: Vec<AuditEvent>,
        decided_in: &[Option<u64>],
    ) -> Result<()> {
        self.commit_with_events_if(&[], &[], &mut |_| true, changes, events, decided_in)
            .map(drop)
    }

    /// `commit_with_events`, written only if `still` holds of the records of `uids` and
    /// of those the lookup keys `lookup` name, as the transaction reads them (the objects
    /// the changes were judged on are still the versions judged, say); nothing is
    /// written otherwise. Whether it was written.
    pub(super) fn commit_with_events_if(
        &self,
        uids: &[ObjectUid],
        lookup: &[&[u8]],
        still: &mut dyn FnMut(&Loaded) -> bool,
        changes: Vec<Change>,
        events: Vec<AuditEvent>,
        decided_in: &[Option<u64>],
    ) -> Result<bool> {
        let (key, key_epoch) = {
            let login = self.login.lock();
            (login.audit_key.clone(), login.master_epoch())
        };
        let mut decided = decided_in.to_vec();
        decided.push(key_epoch);
        self.commit_events(
            uids,
            lookup,
            still,
            changes,
            events,
            key.as_deref(),
            &decided,
        )
    }

    /// `commit_with_events`, sealed under `key` (the audit key of a master key the
    /// caller holds without being logged in, as `C_SetPIN` does) or not at all, and
    /// decided on the token of epoch `decided_in` (`commit_decided`).
    pub(super) fn commit_with_events_under(
        &self,
        changes: Vec<Change>,
        events: Vec<AuditEvent>,
        key: Option<&AuditKey>,
        decided_in: &[Option<u64>],
    ) -> Result<()> {
        self.commit_events(&[], &[], &mut |_| true, changes, events, key, decided_in)
            .map(drop)
    }

    #[allow(clippy::too_many_arguments)] // the two callers above name every one
    fn commit_events(
        &self,
        uids: &[ObjectUid],
        lookup: &[&[u8]],
        still: &mut dyn FnMut(&Loaded) -> bool,
        changes: Vec<Change>,
        events: Vec<AuditEvent>,
        key: Option<&AuditKey>,
        decided_in: &[Option<u64>],
    ) -> Result<bool> {
        let bodies: Vec<Vec<u8>> = events.iter().map(AuditEvent::encode).collect();
        let mut written = false;
        self.commit_decided_on(uids, lookup, decided_in, &mut |loaded| {
            written = still(loaded);
            if !written {
                return Vec::new();
            }
            let mut all = changes.clone();
            if !bodies.is_empty() {
                all.extend(audit::append_with(&loaded.audit, bodies.clone(), key));
            }
            all
        })?;
        Ok(written)
    }

    /// The events of new token objects: `CreateKey` once per new KMS key (with the
    /// material it is bound to, if any), `GetParametersForImport` once per import
    /// wrapping pair.
    pub(super) fn creation_events(&self, objects: &[Object]) -> Vec<AuditEvent> {
        let mut events: Vec<AuditEvent> = Vec::new();
        for o in objects.iter().filter(|o| o.is_token()) {
            let (operation, key) = match (o.bytes(IMPORT_TARGET), o.bytes(KEY_ID)) {
                (Some(target), _) => (Operation::GetParametersForImport, target),
                (None, Some(id)) => (Operation::CreateKey, id),
                (None, None) => continue,
            };
            let event = self.event(operation).key(key);
            if let Some(same) = events
                .iter_mut()
                .find(|e| e.event_name == operation && e.key_id == event.key_id)
            {
                if same.material_id.is_none() {
                    *same = same.clone().material(o.bytes(MATERIAL_FINGERPRINT));
                }
                continue;
            }
            events.push(event.material(o.bytes(MATERIAL_FINGERPRINT)));
        }
        events
    }

    /// The event of destroying a token key object: `DestroyKey`, naming its KeyId when
    /// it has one and always its object uid (a key pair is destroyed one object at a
    /// time).
    pub(super) fn destruction_event(&self, object: &Object) -> Option<AuditEvent> {
        let is_key = matches!(
            object.class,
            CKO_SECRET_KEY | CKO_PRIVATE_KEY | CKO_PUBLIC_KEY
        );
        if !object.is_token() || !is_key {
            return None;
        }
        let mut event = self
            .event(Operation::DestroyKey)
            .object(&object.uid)
            .material(object.bytes(MATERIAL_FINGERPRINT));
        if let Some(id) = object.bytes(KEY_ID) {
            event = event.key(id);
        }
        Some(event)
    }

    /// Records a refusal, decided on the tokens of epochs `decided_in`, in its own small
    /// transaction: only into that token (`commit_decided`), never into the trail of one
    /// another process has re-initialised since. The refusal stands whatever happens
    /// here: a failure to record it is logged, not returned in its place.
    pub(super) fn record_refusal(&self, event: AuditEvent, decided_in: &[Option<u64>]) {
        if let Err(e) = self.commit_with_events(Vec::new(), vec![event], decided_in) {
            log::warn!(
                "token {}: a refusal could not be recorded in the audit trail: {e}",
                self.serial
            );
        }
    }

    /// After a login: authenticates the head of the trail under the login's audit key
    /// when events were appended without it (failed logins, sweeps of processes not
    /// logged in). Writes nothing when the head is sealed already.
    pub(super) fn seal_audit_head(&self, key: &AuditKey, epoch: u64) -> Result<()> {
        let mut stale = false;
        self.transact(&[], &[], &mut |loaded| {
            // A key of another token's (`commit_decided`) seals nothing here.
            stale = loaded.is_other_token(epoch);
            let head = &loaded.audit;
            let changes = audit::append_with(head, Vec::new(), Some(key));
            (!stale && !head.sealed && !changes.is_empty()).then_some(changes)
        })?;
        if stale {
            return Err(Error::TokenReinitialized);
        }
        Ok(())
    }

    /// The changes that carry the trail over to a new master key at `C_InitToken`,
    /// with the event `init` appended and sealed under the new key: the trail is first
    /// verified under the old key, and only a trail that verifies is re-authenticated
    /// (a broken one keeps its old MACs, so it keeps failing verification). `base` are
    /// the re-initialisation's own changes; all are committed in one transaction.
    pub(super) fn commit_rekeyed(
        &self,
        old: &MasterKey,
        new: &MasterKey,
        base: Vec<Change>,
        init: AuditEvent,
        epoch: u64,
    ) -> Result<()> {
        let (old_key, new_key) = (audit_key(old), audit_key(new));
        let body = init.encode();
        for _ in 0..REKEY_ATTEMPTS {
            let log = self.store.audit_log()?;
            let verdict = audit::verify(&log, &old_key);
            let checkpoint = log.checkpoint;
            // The oldest event kept is sealed under the new key too: with only the new
            // head's MAC, cutting the re-initialisation's events and the anchor left a
            // trail no MAC vouched for, which looked never authenticated and was sealed
            // over (review 16f). A MAC at the start keeps it "authenticated" for the
            // writers (`AuditHead::authenticated`), and deleting that event too leaves a
            // gap `verify` reports.
            let first = log.events.first().map(|e| AuditSeal {
                seq: e.seq,
                mac: head_mac(&new_key, e.seq, &e.hash),
            });
            let mut stale = false;
            let mut reinitialized = false;
            let written = self.store.transact(&[], &[], &mut |loaded| {
                // Decided on the token of `epoch` (its SO PIN, its trail): re-initialised
                // by another process meanwhile, there is nothing left here to re-initialise.
                reinitialized = loaded.is_other_token(epoch);
                if reinitialized {
                    return None;
                }
                let mut all = base.clone();
                match &verdict {
                    Ok(v) if v.head == loaded.audit.seq && v.head_hash == loaded.audit.hash => {
                        all.push(Change::RekeyAudit {
                            checkpoint: checkpoint.map(|c| AuditCheckpoint {
                                mac: checkpoint_mac(&new_key, c.seq, &c.hash),
                                ..c
                            }),
                            seal: first,
                        });
                        // The anchor goes with the old MACs; the new one is set here.
                        let head = AuditHead {
                            anchor: None,
                            ..loaded.audit
                        };
                        all.extend(audit::append(&head, vec![body.clone()], Some(&new_key)));
                    }
                    // The trail grew since it was verified: verify again.
                    Ok(_) => {
                        stale = true;
                        return None;
                    }
                    Err(_) => all.extend(audit::append(&loaded.audit, vec![body.clone()], None)),
                }
                Some(all)
            });
            match written {
                // A prune moved the checkpoint since the trail was read (the head did
                // not move): verify again.
                Err(crate::error::StoreError::AuditCheckpointChanged) => stale = true,
                // Noted as `Token::transact` does: a failure after the commit.
                written => {
                    self.noting_failed_read(written.map_err(Error::from))?;
                }
            }
            if reinitialized {
                self.sync()?;
                return Err(Error::TokenReinitialized);
            }
            if !stale {
                return self.sync();
            }
        }
        Err(Error::CacheContention)
    }

    fn require_login(&self) -> Result<Zeroizing<[u8; 32]>> {
        match self.logged_in() {
            LoggedIn::Nobody => Err(Error::UserNotLoggedIn),
            _ => self
                .master()
                .map(|m| audit_key(&m))
                .ok_or(Error::UserNotLoggedIn),
        }
    }

    /// The trail and whether it holds; needs a login (user or SO).
    pub fn audit_trail(&self) -> Result<Trail> {
        let key = self.require_login()?;
        let log = self.store.audit_log()?;
        let verdict = audit::verify(&log, &key);
        let vouched = match &verdict {
            Ok(v) => v.authenticated_through,
            Err(b) => b.first.saturating_sub(1),
        };
        let entries = log
            .events
            .iter()
            .map(|e| TrailEntry {
                seq: e.seq,
                event: AuditEvent::decode(&e.body),
                authenticated: e.seq <= vouched,
            })
            .collect();
        Ok(Trail { entries, verdict })
    }

    /// Prunes the events older than `before` (unix seconds) that a MAC vouches for,
    /// leaving an authenticated checkpoint at the last one pruned. Refuses a trail that
    /// does not verify (pruning must not hide a break). Answers the checkpoint's event
    /// number, or `None` when there was nothing to prune.
    pub(crate) fn prune_audit(&self, before: i64) -> Result<Option<u64>> {
        // The key with the epoch of its token: the checkpoint it authenticates goes into
        // that token only (`commit_decided`).
        let (master, epoch) = match self.logged_in() {
            LoggedIn::Nobody => (None, None),
            _ => self.master_with_epoch(),
        };
        let key = audit_key(master.as_deref().ok_or(Error::UserNotLoggedIn)?);
        let log = self.store.audit_log()?;
        let verified = audit::verify(&log, &key)
            .map_err(|_| Error::Internal("the audit trail does not verify; not pruned"))?;
        let Some(last) = last_prunable(&log, before, verified.authenticated_through) else {
            return Ok(None);
        };
        let checkpoint = AuditCheckpoint {
            seq: last.0,
            hash: last.1,
            mac: checkpoint_mac(&key, last.0, &last.1),
        };
        self.commit_in(&[epoch], vec![Change::PruneAudit(checkpoint)])?;
        Ok(Some(checkpoint.seq))
    }
}

impl Token {
    /// Prunes what the configuration's `audit_retention_days` (or `days`, when given)
    /// lets go, as `prune_audit` does; `None` when nothing may be pruned.
    pub fn prune_audit_older_than(&self, days: Option<u32>) -> Result<Option<u64>> {
        let days = days.unwrap_or(self.shared.config.audit_retention_days);
        if days == 0 {
            return Ok(None);
        }
        self.prune_audit(self.now() - i64::from(days) * 86_400)
    }
}

/// The newest event (number, hash) of a run from the start of `log` whose events are
/// all older than `before` and vouched for by a MAC (at most `vouched`).
fn last_prunable(log: &AuditLog, before: i64, vouched: u64) -> Option<(u64, audit::Hash)> {
    let mut last = None;
    for e in &log.events {
        let old = AuditEvent::decode(&e.body).is_some_and(|ev| ev.event_time < before);
        if !old || e.seq > vouched {
            break;
        }
        last = Some((e.seq, e.hash));
    }
    last
}
