//! Copying a token from one store to another (a token directory's SQLite file, a
//! PostgreSQL database; either way), for the token tool's `copy-token`.
//!
//! Records travel as they are: sealed parts stay sealed (no PIN is asked and nothing is
//! unsealed), and record authentication binds a record to its token's serial and uid,
//! both kept, so the copy opens and authenticates exactly as the source does. The audit
//! trail travels the same way: every event with its stored chain hash and MAC, the
//! checkpoint and the anchor, nothing recomputed (the MACs are under a subkey of the
//! master key, which travels sealed in the PIN records), so the copy verifies exactly
//! as the source does and a moved token keeps its history. The copy is written in one
//! transaction, then read back and compared with what was read from the source
//! (metadata, PIN records, every object's bytes and every lookup key, the whole trail);
//! a copy that does not compare equal is deleted again. This module must not change the source
//! and must not leave a destination token that was not verified.

use std::collections::BTreeMap;

use crate::error::{Error, Result, StoreError};
use crate::object::{index, Object};
use crate::store::{AuditLog, Backend, Change, ObjectRecord, Scope, Snapshot, Store};

use super::records::hex;
use super::{META_OBJECT_INDEX, META_SERIAL, META_SLOT_ID};

/// What a verified copy holds, for the tool's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub serial: String,
    pub slot_id: u64,
    pub objects: usize,
    pub pins: usize,
    /// Audit events copied (after the checkpoint, when the trail was pruned).
    pub events: usize,
    /// Where the copy was read from and written to (never a password).
    pub from: String,
    pub to: String,
}

/// Copies token `serial` from `from` to `to`, where it must not exist yet, and verifies
/// the copy. `slot_id` gives the copy another slot id (the source's is kept otherwise);
/// a slot id that a token at the destination already has is refused, as the module
/// would not open two tokens with one slot id.
pub fn copy_token(
    from: &Backend,
    to: &Backend,
    serial: &str,
    slot_id: Option<u64>,
) -> Result<Copied> {
    // A serial names a file in a token directory: one that is not a serial could name a
    // file anywhere (`../`), past the destination's checks below.
    if !is_serial(serial) {
        return Err(Error::Config(format!(
            "{serial:?} is not a token serial (1 to 16 letters and digits); nothing was copied"
        )));
    }
    // Read as it is: copying must not change the source, and a token file of an older
    // schema would be upgraded in place by an open for use (review 17a: a copy out of
    // a kept pre-upgrade backup made the backup unreadable to the build it came from).
    let (source, from_place) = from.open_unchanged(serial).map_err(|e| match e {
        StoreError::OlderSchema(version) => Error::Config(format!(
            "the token {serial} at the source is of schema version {version}, written by an \
             older kmshsm; copying it with this build would upgrade the source in place. \
             Copy it with the kmshsm that wrote it, or let this build's module open it first \
             (which upgrades it); nothing was copied"
        )),
        other => other.into(),
    })?;
    source.check_integrity()?;
    // The trail is read before and after the records: an event committed in between
    // (with its change) would leave the copy with a change and no event, or the reverse.
    let trail = source.audit_log()?;
    let snapshot = source.read(0, 0, Scope::All)?;
    if !same_trail(&trail, &source.audit_log()?) {
        return Err(Error::Config(
            "the token changed while it was read; stop the applications using it and copy \
             again; nothing was copied"
                .into(),
        ));
    }
    drop(source);
    // The copy keeps the token's own serial, which is what the module shows and tells
    // tokens apart by: stored under another name (a backup file renamed), it would sit
    // beside the live token of that serial, and the checks below would look for the
    // wrong one.
    let stored = snapshot
        .meta
        .get(META_SERIAL)
        .map(|s| String::from_utf8_lossy(s));
    if stored.as_deref() != Some(serial) {
        return Err(Error::Config(format!(
            "the token stored as {serial} has serial {}; copy it under its own serial (the \
             name its file or row should have); nothing was copied",
            stored.as_deref().unwrap_or("(none)")
        )));
    }

    let slot_id = match slot_id {
        Some(id) => id,
        None => meta_slot_id(&snapshot.meta).ok_or(StoreError::Malformed("token metadata"))?,
    };
    let existing = to.serials()?;
    if existing.iter().any(|s| s == serial) {
        return Err(Error::Config(format!(
            "the destination already holds a token with serial {serial}; nothing was copied"
        )));
    }
    for other in &existing {
        // Read without opening the token for use, which would upgrade an older one.
        let other_slot = to
            .stored_meta(other, META_SLOT_ID)?
            .and_then(|id| slot_id_of(&id));
        if other_slot == Some(slot_id) {
            return Err(Error::Config(format!(
                "the destination's token {other} has slot id {slot_id} already; give the copy \
                 another one (--slot-id); nothing was copied"
            )));
        }
    }

    let mut initial = initial_changes(&snapshot, slot_id)?;
    let events = trail.events.len();
    if events != 0 || trail.checkpoint.is_some() || trail.anchor.is_some() {
        initial.push(Change::RestoreAudit(Box::new(trail)));
    }
    let (dest, to_place) = to.create(serial, initial.clone())?;
    let verified = verify(dest.as_ref(), &initial);
    drop(dest);
    if let Err(e) = verified {
        let undone = match to.remove(serial) {
            Ok(()) => "the copy was deleted again".to_string(),
            Err(r) => format!("deleting the copy failed too ({r}): delete it by hand"),
        };
        return Err(Error::Config(format!(
            "the copy at {to_place} does not match its source ({e}); {undone}"
        )));
    }
    Ok(Copied {
        serial: serial.to_string(),
        slot_id,
        objects: snapshot.objects.len(),
        pins: snapshot.pins.len(),
        events,
        from: from_place,
        to: to_place,
    })
}

/// Whether `s` can be a token serial: 1 to 16 ASCII letters and digits (the module makes
/// 16 hexadecimal digits; `CK_TOKEN_INFO.serialNumber` holds 16 characters).
fn is_serial(s: &str) -> bool {
    (1..=16).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn meta_slot_id(meta: &BTreeMap<String, Vec<u8>>) -> Option<u64> {
    slot_id_of(meta.get(META_SLOT_ID)?)
}

/// A stored slot id (its decimal digits).
fn slot_id_of(stored: &[u8]) -> Option<u64> {
    std::str::from_utf8(stored).ok()?.parse().ok()
}

/// The destination's first (and only) transaction: the source's metadata, with the
/// slot id given and the index version of this build; its PIN records (failure counts
/// included, so a lockout travels with the token); its object records, each with the
/// index this build makes of it (stores do not hand indexes out).
fn initial_changes(snapshot: &Snapshot, slot_id: u64) -> Result<Vec<Change>> {
    let mut changes = Vec::with_capacity(snapshot.meta.len() + 2 + snapshot.objects.len());
    for (name, value) in &snapshot.meta {
        if name != META_SLOT_ID && name != META_OBJECT_INDEX {
            changes.push(Change::PutMeta(name.clone(), value.clone()));
        }
    }
    changes.push(Change::PutMeta(
        META_SLOT_ID.into(),
        slot_id.to_string().into_bytes(),
    ));
    changes.push(Change::PutMeta(
        META_OBJECT_INDEX.into(),
        index::VERSION.to_vec(),
    ));
    for (role, pin) in &snapshot.pins {
        changes.push(Change::PutPin(*role, pin.clone()));
    }
    for rec in &snapshot.objects {
        let object = Object::from_record(rec).map_err(|e| {
            Error::Config(format!(
                "object record {} of the source cannot be read ({e}); nothing was copied",
                hex(&rec.uid)
            ))
        })?;
        changes.push(Change::PutObject(ObjectRecord {
            uid: rec.uid,
            plain: rec.plain.clone(),
            sealed: rec.sealed.clone(),
            index: index::record_index(&object),
        }));
    }
    Ok(changes)
}

/// Reads the copy back and compares it with what was written: metadata, PIN records
/// and objects byte for byte, every object found again under each of its lookup keys,
/// nothing else there, and the store's own integrity check.
fn verify(dest: &dyn Store, written: &[Change]) -> std::result::Result<(), String> {
    dest.check_integrity().map_err(|e| e.to_string())?;
    let back = dest.read(0, 0, Scope::All).map_err(|e| e.to_string())?;
    let mut meta = 0;
    let mut pins = 0;
    let mut objects = 0;
    let mut restored = None;
    for change in written {
        match change {
            Change::PutMeta(name, value) => {
                meta += 1;
                if back.meta.get(name) != Some(value) {
                    return Err(format!("metadata {name:?} differs"));
                }
            }
            Change::PutPin(role, pin) => {
                pins += 1;
                let same = back.pins.get(role).is_some_and(|b| {
                    b.kdf == pin.kdf
                        && b.wrapped_key == pin.wrapped_key
                        && b.failures == pin.failures
                });
                if !same {
                    return Err(format!("the {role:?} PIN record differs"));
                }
            }
            Change::PutObject(rec) => {
                objects += 1;
                let found = back.objects.iter().find(|b| b.uid == rec.uid);
                if !found.is_some_and(|b| b.plain == rec.plain && b.sealed == rec.sealed) {
                    return Err(format!("object record {} differs", hex(&rec.uid)));
                }
                for key in &rec.index.lookup {
                    let uids = dest.lookup(key).map_err(|e| e.to_string())?;
                    if !uids.contains(&rec.uid) {
                        return Err(format!("object record {} is not indexed", hex(&rec.uid)));
                    }
                }
            }
            Change::RestoreAudit(trail) => {
                restored = Some(trail);
            }
            _ => return Err("unexpected change in a copy".to_string()),
        }
    }
    if back.meta.len() != meta || back.pins.len() != pins || back.objects.len() != objects {
        return Err("the copy holds records its source does not".to_string());
    }
    let copied = dest.audit_log().map_err(|e| e.to_string())?;
    if !same_trail(restored.map_or(&AuditLog::default(), |t| &**t), &copied) {
        return Err("the audit trail differs".to_string());
    }
    Ok(())
}

/// The same checkpoint, anchor and events, byte for byte.
fn same_trail(a: &AuditLog, b: &AuditLog) -> bool {
    a.checkpoint == b.checkpoint && a.anchor == b.anchor && a.events == b.events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::audit::link;
    use crate::store::audit::AuditRecord;
    use crate::store::memory::MemoryStore;
    use crate::store::{AuditCheckpoint, AuditSeal, PinRecord, PinRole, RecordIndex};

    fn record(uid: u8, plain: &[u8]) -> ObjectRecord {
        ObjectRecord {
            uid: [uid; 16],
            plain: plain.to_vec(),
            sealed: Some(vec![uid; 8]),
            index: RecordIndex {
                lookup: vec![vec![b'k', uid]],
                due: None,
            },
        }
    }

    fn written() -> Vec<Change> {
        vec![
            Change::PutMeta("serial".into(), b"1234".to_vec()),
            Change::PutPin(
                PinRole::User,
                PinRecord {
                    kdf: vec![1],
                    wrapped_key: vec![2],
                    failures: 3,
                },
            ),
            Change::PutObject(record(1, b"one")),
            Change::PutObject(record(2, b"two")),
            Change::RestoreAudit(Box::new(trail())),
        ]
    }

    /// A trail of two events, the first sealed, as a source store holds it.
    fn trail() -> AuditLog {
        let h1 = link(&[0; 32], 1, b"first");
        let h2 = link(&h1, 2, b"second");
        AuditLog {
            checkpoint: None,
            anchor: Some(AuditCheckpoint {
                seq: 1,
                hash: h1,
                mac: [1; 32],
            }),
            events: vec![
                AuditRecord {
                    seq: 1,
                    body: b"first".to_vec(),
                    hash: h1,
                    mac: Some([2; 32]),
                },
                AuditRecord {
                    seq: 2,
                    body: b"second".to_vec(),
                    hash: h2,
                    mac: None,
                },
            ],
        }
    }

    #[test]
    fn a_faithful_copy_verifies() {
        let store = MemoryStore::new();
        store.commit(written()).unwrap();
        assert_eq!(verify(&store, &written()), Ok(()));
    }

    #[test]
    fn every_kind_of_difference_fails_the_verification() {
        let differences: Vec<(Vec<Change>, &str)> = vec![
            (
                vec![Change::PutMeta("serial".into(), b"9999".to_vec())],
                "metadata",
            ),
            (
                vec![Change::PutPin(
                    PinRole::User,
                    PinRecord {
                        kdf: vec![1],
                        wrapped_key: vec![2],
                        failures: 0,
                    },
                )],
                "PIN record",
            ),
            (vec![Change::PutObject(record(2, b"changed"))], "differs"),
            (
                vec![Change::PutObject(ObjectRecord {
                    sealed: None,
                    ..record(1, b"one")
                })],
                "differs",
            ),
            (
                vec![Change::Reindex([2; 16], RecordIndex::default())],
                "not indexed",
            ),
            (vec![Change::RemoveObject([1; 16])], "differs"),
            (
                vec![Change::PutObject(record(3, b"stray"))],
                "holds records its source does not",
            ),
            (
                vec![Change::event(b"third".to_vec())],
                "audit trail differs",
            ),
            (
                vec![Change::SealAudit(AuditSeal {
                    seq: 2,
                    mac: [3; 32],
                })],
                "audit trail differs",
            ),
        ];
        for (change, says) in differences {
            let store = MemoryStore::new();
            store.commit(written()).unwrap();
            store.commit(change.clone()).unwrap();
            let verdict = verify(&store, &written());
            assert!(
                verdict.as_ref().is_err_and(|e| e.contains(says)),
                "{change:?}: {verdict:?}"
            );
        }
    }
}
