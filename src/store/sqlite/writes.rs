//! The write side of the SQLite store: one set of changes applied inside a write
//! transaction as one new sequence number (records, removals, lookup keys and due times,
//! PINs, metadata, audit events chained onto the current head). The caller owns the
//! transaction; this module must not open, commit or retry one.

use rusqlite::{params, OptionalExtension};

use super::trail::{newest_event, restore_audit};
use crate::error::StoreError;
use crate::store::audit::{self, AuditHead};
use crate::store::{Change, ObjectUid, RecordIndex, StoreResult};

/// A record's lookup keys as its row keeps them (`objects.keys`): each key's length as 4
/// bytes big-endian, then the key.
pub(super) fn encode_keys(keys: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(keys.iter().map(|k| 4 + k.len()).sum());
    for key in keys {
        // A lookup key is an attribute type and a value the token accepted: far below 4 GiB.
        out.extend_from_slice(&(key.len() as u32).to_be_bytes());
        out.extend_from_slice(key);
    }
    out
}

/// The keys `encode_keys` wrote; a row no build wrote is refused, not guessed at.
fn decode_keys(mut bytes: &[u8]) -> StoreResult<Vec<&[u8]>> {
    const MALFORMED: &str = "a record's lookup keys are malformed";
    let mut keys = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes
            .split_first_chunk::<4>()
            .ok_or(StoreError::Malformed(MALFORMED))?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return Err(StoreError::Malformed(MALFORMED));
        }
        let (key, rest) = rest.split_at(len);
        keys.push(key);
        bytes = rest;
    }
    Ok(keys)
}

/// A row's lookup keys (`objects.keys`) as a write finds them.
enum RowKeys {
    /// A blob, as `encode_keys` writes them (`replace_keys` decodes it); none for a
    /// record written before records kept their keys and never since.
    Encoded(Option<Vec<u8>>),
    /// A value of another type, which no build wrote (the column is not authenticated:
    /// anyone who can write the file can change it).
    Unreadable,
}

impl rusqlite::types::FromSql for RowKeys {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        use rusqlite::types::ValueRef;
        Ok(match value {
            ValueRef::Null => RowKeys::Encoded(None),
            ValueRef::Blob(b) => RowKeys::Encoded(Some(b.to_vec())),
            _ => RowKeys::Unreadable,
        })
    }
}

/// Replaces the lookup keys `old` of record `uid`, in row `rid`, by `new`. The lookup
/// keys are an index of what the record says, which the token checks on every record it
/// reads, and which anyone who can write the file can change: keys the row cannot tell
/// are all taken out (a scan of the lookup table, on this path only), so a tampered
/// column neither blocks the record's rewrite or removal nor leaves a key behind; and
/// `new` is written even when the row lists the same keys (each an `INSERT OR IGNORE`),
/// so a rewrite puts back a key taken out of the table. A creation (no old keys) writes
/// `new` as it would anyway.
fn replace_keys(
    tx: &rusqlite::Transaction<'_>,
    uid: &[u8],
    rid: i64,
    old: &RowKeys,
    new: &[Vec<u8>],
) -> StoreResult<()> {
    let decoded = match old {
        RowKeys::Encoded(old) => decode_keys(old.as_deref().unwrap_or_default()).ok(),
        RowKeys::Unreadable => None,
    };
    match decoded {
        Some(old) => {
            let mut remove = tx.prepare_cached("DELETE FROM lookup WHERE key = ?1 AND rid = ?2")?;
            for key in old.iter().filter(|key| !new.iter().any(|k| k == *key)) {
                remove.execute(params![key, rid])?;
            }
        }
        None => {
            log::warn!(
                "record {}: its stored lookup keys are unreadable (altered outside the \
                 module?); its index is rebuilt",
                uid.iter().map(|b| format!("{b:02x}")).collect::<String>()
            );
            tx.prepare_cached("DELETE FROM lookup WHERE rid = ?1")?
                .execute([rid])?;
        }
    }
    insert_keys(tx, rid, new)
}

/// The statements that add up to this many lookup keys in one go (a record has at most
/// one per indexed attribute, `object::index::INDEXED`); more go in one by one.
const KEYS_AT_ONCE: [&str; 4] = [
    "INSERT OR IGNORE INTO lookup (key, rid) VALUES (?2, ?1)",
    "INSERT OR IGNORE INTO lookup (key, rid) VALUES (?2, ?1), (?3, ?1)",
    "INSERT OR IGNORE INTO lookup (key, rid) VALUES (?2, ?1), (?3, ?1), (?4, ?1)",
    "INSERT OR IGNORE INTO lookup (key, rid) VALUES (?2, ?1), (?3, ?1), (?4, ?1), (?5, ?1)",
];

/// Adds lookup keys `keys` of the record in row `rid`: one statement for up to four
/// (each statement run is a few thousand instructions of the serial write transaction).
fn insert_keys(tx: &rusqlite::Transaction<'_>, rid: i64, keys: &[Vec<u8>]) -> StoreResult<()> {
    for chunk in keys.chunks(KEYS_AT_ONCE.len()) {
        let Some(sql) = KEYS_AT_ONCE.get(chunk.len().wrapping_sub(1)) else {
            continue;
        };
        let mut insert = tx.prepare_cached(sql)?;
        insert.raw_bind_parameter(1, rid)?;
        for (i, key) in chunk.iter().enumerate() {
            insert.raw_bind_parameter(i + 2, key)?;
        }
        insert.raw_execute()?;
    }
    Ok(())
}

/// The row of record `uid` and the lookup keys it holds; `None` when there is no such
/// record.
fn row_of(tx: &rusqlite::Transaction<'_>, uid: &[u8]) -> StoreResult<Option<(i64, RowKeys)>> {
    Ok(tx
        .prepare_cached("SELECT rid, keys FROM objects WHERE uid = ?1")?
        .query_row([uid], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Writes a record's lookup keys and due time, replacing any it had; nothing when there
/// is no such record (removed meanwhile), so no key is left pointing nowhere.
fn put_index(
    tx: &rusqlite::Transaction<'_>,
    uid: &ObjectUid,
    index: &RecordIndex,
) -> StoreResult<()> {
    let Some((rid, old)) = row_of(tx, &uid[..])? else {
        return Ok(());
    };
    tx.prepare_cached("UPDATE objects SET due = ?2, keys = ?3 WHERE rid = ?1")?
        .execute(params![rid, index.due, encode_keys(&index.lookup)])?;
    replace_keys(tx, &uid[..], rid, &old, &index.lookup)
}

/// Writes a whole record with its due time and lookup keys. A record the table does not
/// hold yet (every creation) is one insert and its keys, and touches neither `removed`
/// (the read of changes passes over a removal older than the record) nor a second index
/// of the lookup keys: the whole write transaction is serial, so every B-tree a creation
/// need not read or write is time taken off every other writer's wait.
fn put_object(
    tx: &rusqlite::Transaction<'_>,
    seq: i64,
    rec: &crate::store::ObjectRecord,
) -> StoreResult<()> {
    let uid = &rec.uid[..];
    let old = row_of(tx, uid)?;
    // One statement or the other, both numbered alike: the row (rid) or, for a new
    // record, its uid first.
    let mut write = tx.prepare_cached(if old.is_some() {
        "UPDATE objects SET seq = ?2, plain = ?3, sealed = ?4, due = ?5, keys = ?6 WHERE rid = ?1"
    } else {
        "INSERT INTO objects (uid, seq, plain, sealed, due, keys) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
    })?;
    match &old {
        Some((rid, _)) => write.raw_bind_parameter(1, rid)?,
        None => write.raw_bind_parameter(1, uid)?,
    }
    write.raw_bind_parameter(2, seq)?;
    write.raw_bind_parameter(3, &rec.plain)?;
    write.raw_bind_parameter(4, &rec.sealed)?;
    write.raw_bind_parameter(5, rec.index.due)?;
    write.raw_bind_parameter(6, encode_keys(&rec.index.lookup))?;
    write.raw_execute()?;
    let (rid, old) = match old {
        Some(row) => row,
        // The row the insert just made: read from the connection, no statement.
        None => (tx.last_insert_rowid(), RowKeys::Encoded(None)),
    };
    replace_keys(tx, uid, rid, &old, &rec.index.lookup)
}

/// Removes record `uid` and its lookup keys, and notes the removal for other readers.
fn remove_object(tx: &rusqlite::Transaction<'_>, seq: i64, uid: &[u8]) -> StoreResult<()> {
    let old: Option<(i64, RowKeys)> = tx
        .prepare_cached("DELETE FROM objects WHERE uid = ?1 RETURNING rid, keys")?
        .query_row([uid], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((rid, old)) = old {
        replace_keys(tx, uid, rid, &old, &[])?;
    }
    tx.prepare_cached("INSERT OR REPLACE INTO removed (uid, seq) VALUES (?1, ?2)")?
        .execute(params![uid, seq])?;
    Ok(())
}

/// Applies `changes` inside the write transaction `tx`, as one new sequence number.
/// `read` is what the caller read in `tx` already: the sequence number, and the audit
/// head.
pub(super) fn apply(
    tx: &rusqlite::Transaction<'_>,
    changes: Vec<Change>,
    read: Option<(u64, AuditHead)>,
) -> StoreResult<()> {
    let (seq, mut head) = match read {
        // Known already (a write transaction reads before it writes): a plain update,
        // where RETURNING would cost SQLite an ephemeral table of its own.
        Some((seq, head)) => {
            let seq = seq as i64 + 1;
            tx.prepare_cached("UPDATE state SET seq = ?1 WHERE id = 1")?
                .execute([seq])?;
            (seq, Some(head))
        }
        None => {
            let seq: i64 = tx
                .prepare_cached("UPDATE state SET seq = seq + 1 WHERE id = 1 RETURNING seq")?
                .query_row([], |r| r.get(0))?;
            (seq, None)
        }
    };
    // The audit head (read on the first append, unless the caller had).
    let mut changes = changes.into_iter().peekable();
    while let Some(change) = changes.next() {
        match change {
            Change::PutMeta(name, value) => {
                tx.prepare_cached("INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)")?
                    .execute(params![name, value])?;
            }
            Change::PutMetaIfAbsent(name, value) => {
                tx.prepare_cached("INSERT OR IGNORE INTO meta (name, value) VALUES (?1, ?2)")?
                    .execute(params![name, value])?;
            }
            Change::RequireMeta { name, value } => {
                let held: Option<Vec<u8>> = tx
                    .prepare_cached("SELECT value FROM meta WHERE name = ?1")?
                    .query_row(params![name], |r| r.get(0))
                    .optional()?;
                if held != value {
                    return Err(StoreError::MetaChanged);
                }
            }
            Change::PutPin(role, pin) => {
                // Attempts in flight at a record this one replaces are not at this one:
                // they can neither reset its count nor count against it (review 15e).
                tx.prepare_cached("DELETE FROM pin_flights WHERE role = ?1 AND kdf != ?2")?
                    .execute(params![role.code(), pin.kdf])?;
                // The attempts' numbering (`reserved`) goes on across records.
                tx.prepare_cached(
                    "INSERT INTO pins (role, kdf, wrapped_key, failures) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (role) DO UPDATE SET kdf = excluded.kdf, \
                     wrapped_key = excluded.wrapped_key, failures = excluded.failures",
                )?
                .execute(params![
                    role.code(),
                    pin.kdf,
                    pin.wrapped_key,
                    pin.failures
                ])?;
            }
            Change::RequirePin { role, kdf } => {
                let held = tx
                    .prepare_cached("SELECT 1 FROM pins WHERE role = ?1 AND kdf = ?2")?
                    .query_row(params![role.code(), kdf], |_| Ok(()))
                    .optional()?;
                if held.is_none() {
                    return Err(StoreError::PinRecordChanged);
                }
            }
            Change::RewrapPin {
                role,
                from_kdf,
                record,
            } => {
                let rewrapped = tx
                    .prepare_cached(
                        "UPDATE pins SET kdf = ?3, wrapped_key = ?4 WHERE role = ?1 AND kdf = ?2",
                    )?
                    .execute(params![
                        role.code(),
                        from_kdf,
                        record.kdf,
                        record.wrapped_key
                    ])?;
                if rewrapped > 0 && from_kdf != record.kdf {
                    // As for PutPin: attempts in flight were at the record replaced.
                    tx.prepare_cached("DELETE FROM pin_flights WHERE role = ?1")?
                        .execute([role.code()])?;
                }
            }
            Change::RemovePin(role) => {
                // The record's numbering goes with it: so do its attempts in flight.
                tx.prepare_cached("DELETE FROM pin_flights WHERE role = ?1")?
                    .execute([role.code()])?;
                tx.prepare_cached("DELETE FROM pins WHERE role = ?1")?
                    .execute([role.code()])?;
            }
            Change::PutObject(rec) => put_object(tx, seq, &rec)?,
            Change::Reindex(uid, index) => put_index(tx, &uid, &index)?,
            Change::RemoveObject(uid) => remove_object(tx, seq, &uid[..])?,
            Change::Wipe => {
                tx.execute_batch(
                        "DELETE FROM objects; DELETE FROM lookup; DELETE FROM removed; DELETE FROM pins;
                         DELETE FROM pin_flights;
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
                    "UPDATE state SET anchor_seq = ?1, anchor_hash = ?2, anchor_mac = ?3 WHERE id = 1",
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
            Change::RekeyAudit { checkpoint, seal } => {
                let stored: Option<(i64, Vec<u8>)> = tx
                    .prepare_cached("SELECT seq, hash FROM audit_checkpoint WHERE id = 1")?
                    .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let verified = checkpoint.map(|c| (c.seq as i64, c.hash.to_vec()));
                if stored != verified {
                    return Err(StoreError::AuditCheckpointChanged);
                }
                if let Some(cp) = checkpoint {
                    tx.prepare_cached("UPDATE audit_checkpoint SET mac = ?1 WHERE id = 1")?
                        .execute([&cp.mac[..]])?;
                }
                tx.prepare_cached("UPDATE audit_events SET mac = NULL WHERE mac IS NOT NULL")?
                    .execute([])?;
                tx.prepare_cached(
                    "UPDATE state SET anchor_seq = NULL, anchor_hash = NULL, anchor_mac = NULL \
                     WHERE id = 1",
                )?
                .execute([])?;
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
