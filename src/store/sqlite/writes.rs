//! The write side of the SQLite store: one set of changes applied inside a write
//! transaction as one new sequence number (records, removals, lookup keys and due times,
//! PINs, metadata, audit events chained onto the current head). The caller owns the
//! transaction; this module must not open, commit or retry one.

use rusqlite::{params, OptionalExtension};

use super::trail::{newest_event, restore_audit};
use crate::error::StoreError;
use crate::store::audit::{self, AuditHead};
use crate::store::{Change, ObjectUid, RecordIndex, StoreResult};

/// Writes a record's lookup keys and due time, replacing any it had; nothing when there
/// is no such record (removed meanwhile), so no key is left pointing nowhere.
pub(super) fn put_index(
    tx: &rusqlite::Transaction<'_>,
    uid: &ObjectUid,
    index: &RecordIndex,
) -> StoreResult<()> {
    let found = tx
        .prepare_cached("UPDATE objects SET due = ?2 WHERE uid = ?1")?
        .execute(params![&uid[..], index.due])?;
    if found == 0 {
        return Ok(());
    }
    tx.prepare_cached("DELETE FROM lookup WHERE uid = ?1")?
        .execute([&uid[..]])?;
    insert_lookup(tx, uid, index)
}

/// Adds a record's lookup keys (a record with none yet: the caller removed any it had).
fn insert_lookup(
    tx: &rusqlite::Transaction<'_>,
    uid: &ObjectUid,
    index: &RecordIndex,
) -> StoreResult<()> {
    let mut insert =
        tx.prepare_cached("INSERT OR IGNORE INTO lookup (key, uid) VALUES (?1, ?2)")?;
    for key in &index.lookup {
        insert.execute(params![key, &uid[..]])?;
    }
    Ok(())
}

/// Writes a whole record with its due time and lookup keys. A record the table does not
/// hold yet (every creation) is one insert and its keys: no rewrite of the row just
/// written for its due time, and no search of the keys by uid for ones to remove, which
/// were a tenth of a creation's CPU time, all of it inside the write transaction.
fn put_object(
    tx: &rusqlite::Transaction<'_>,
    seq: i64,
    rec: &crate::store::ObjectRecord,
) -> StoreResult<()> {
    let uid = &rec.uid[..];
    let replaced = tx
        .prepare_cached(
            "UPDATE objects SET seq = ?2, plain = ?3, sealed = ?4, due = ?5 WHERE uid = ?1",
        )?
        .execute(params![uid, seq, rec.plain, rec.sealed, rec.index.due])?;
    if replaced == 0 {
        tx.prepare_cached(
            "INSERT INTO objects (uid, seq, plain, sealed, due) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![uid, seq, rec.plain, rec.sealed, rec.index.due])?;
    } else {
        tx.prepare_cached("DELETE FROM lookup WHERE uid = ?1")?
            .execute([uid])?;
    }
    insert_lookup(tx, &rec.uid, &rec.index)?;
    tx.prepare_cached("DELETE FROM removed WHERE uid = ?1")?
        .execute([uid])?;
    Ok(())
}

/// Applies `changes` inside the write transaction `tx`, as one new sequence number.
/// `head` is the audit head when the caller read it in `tx` already.
pub(super) fn apply(
    tx: &rusqlite::Transaction<'_>,
    changes: Vec<Change>,
    mut head: Option<AuditHead>,
) -> StoreResult<()> {
    let seq: i64 = tx
        .prepare_cached("UPDATE state SET seq = seq + 1 WHERE id = 1 RETURNING seq")?
        .query_row([], |r| r.get(0))?;
    // The audit head (read on the first append, unless the caller had).
    let mut changes = changes.into_iter().peekable();
    while let Some(change) = changes.next() {
        match change {
            Change::PutMeta(name, value) => {
                tx.prepare_cached("INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)")?
                    .execute(params![name, value])?;
            }
            Change::PutPin(role, pin) => {
                tx.prepare_cached(
                        "INSERT OR REPLACE INTO pins (role, kdf, wrapped_key, failures) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![role.code(), pin.kdf, pin.wrapped_key, pin.failures])?;
            }
            Change::RemovePin(role) => {
                tx.prepare_cached("DELETE FROM pins WHERE role = ?1")?
                    .execute([role.code()])?;
            }
            Change::PutObject(rec) => put_object(tx, seq, &rec)?,
            Change::Reindex(uid, index) => put_index(tx, &uid, &index)?,
            Change::RemoveObject(uid) => {
                tx.prepare_cached("DELETE FROM objects WHERE uid = ?1")?
                    .execute([&uid[..]])?;
                tx.prepare_cached("DELETE FROM lookup WHERE uid = ?1")?
                    .execute([&uid[..]])?;
                tx.prepare_cached("INSERT OR REPLACE INTO removed (uid, seq) VALUES (?1, ?2)")?
                    .execute(params![&uid[..], seq])?;
            }
            Change::Wipe => {
                tx.execute_batch(
                        "DELETE FROM objects; DELETE FROM lookup; DELETE FROM removed; DELETE FROM pins;
                         DELETE FROM pin_attempts;
                         UPDATE state SET epoch = epoch + 1 WHERE id = 1;",
                    )?;
            }
            Change::AppendEvent { body, link } => {
                let prev = match head {
                    Some(h) => h,
                    None => newest_event(tx)?,
                };
                let (seq, hash) = audit::next_link(&prev, &body, link);
                // The MAC of this very event, when it comes next, goes in with it: one
                // statement rather than an insert and an update.
                let mac = match changes.peek() {
                    Some(Change::SealAudit(s)) if s.seq == seq => {
                        let mac = s.mac;
                        changes.next();
                        Some(mac)
                    }
                    _ => None,
                };
                tx.prepare_cached(
                    "INSERT INTO audit_events (seq, body, hash, mac) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    seq as i64,
                    body,
                    &hash[..],
                    mac.as_ref().map(|m| &m[..])
                ])?;
                head = Some(AuditHead {
                    seq,
                    hash,
                    ..AuditHead::default()
                });
            }
            Change::SealAudit(seal) => {
                tx.prepare_cached("UPDATE audit_events SET mac = ?2 WHERE seq = ?1")?
                    .execute(params![seal.seq as i64, &seal.mac[..]])?;
            }
            Change::AnchorAudit(a) => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO audit_anchor (id, seq, hash, mac) VALUES (1, ?1, ?2, ?3)",
                )?
                .execute(params![a.seq as i64, &a.hash[..], &a.mac[..]])?;
            }
            Change::PruneAudit(cp) => {
                let stored: Option<Vec<u8>> = tx
                    .prepare_cached("SELECT hash FROM audit_events WHERE seq = ?1")?
                    .query_row([cp.seq as i64], |r| r.get(0))
                    .optional()?;
                if stored.as_deref() != Some(&cp.hash[..]) {
                    return Err(StoreError::Malformed(
                        "the audit checkpoint does not match the stored event",
                    ));
                }
                tx.prepare_cached("DELETE FROM audit_events WHERE seq <= ?1")?
                    .execute([cp.seq as i64])?;
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO audit_checkpoint (id, seq, hash, mac) VALUES (1, ?1, ?2, ?3)",
                )?
                .execute(params![cp.seq as i64, &cp.hash[..], &cp.mac[..]])?;
            }
            Change::RekeyAudit {
                checkpoint_mac,
                seal,
            } => {
                if let Some(mac) = checkpoint_mac {
                    tx.prepare_cached("UPDATE audit_checkpoint SET mac = ?1 WHERE id = 1")?
                        .execute([&mac[..]])?;
                }
                tx.prepare_cached("UPDATE audit_events SET mac = NULL WHERE mac IS NOT NULL")?
                    .execute([])?;
                tx.prepare_cached("DELETE FROM audit_anchor")?.execute([])?;
                if let Some(seal) = seal {
                    tx.prepare_cached("UPDATE audit_events SET mac = ?2 WHERE seq = ?1")?
                        .execute(params![seal.seq as i64, &seal.mac[..]])?;
                }
            }
            Change::RestoreAudit(log) => restore_audit(tx, &log)?,
        }
    }
    Ok(())
}
