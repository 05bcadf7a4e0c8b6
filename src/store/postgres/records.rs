//! The statements of the PostgreSQL store: reading and writing one token's records
//! inside a transaction the caller opened. Every statement names the token's id; every
//! write transaction first locks the token's row in `kmshsm_tokens` (by bumping its
//! sequence number or `SELECT ... FOR UPDATE`), so the writers of one token take their
//! locks in one order and never deadlock. This module must not interpret records.

use super::conn::{Conn, PgResult};
use crate::error::StoreError;
use crate::store::{AuditHead, Change, ObjectRecord, ObjectUid, PinRecord, PinRole, RecordIndex};

pub(super) fn uid_of(bytes: Vec<u8>) -> Result<ObjectUid, StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Malformed("object uid is not 16 bytes"))
}

pub(super) fn count(n: i64) -> Result<u32, StoreError> {
    u32::try_from(n).map_err(|_| StoreError::Malformed("PIN failure count out of range"))
}

/// The token's sequence number and epoch.
pub(super) fn state(tx: &mut Conn, token: i64, lock: bool) -> PgResult<(u64, u64)> {
    let sql = if lock {
        "SELECT seq, epoch FROM kmshsm_tokens WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT seq, epoch FROM kmshsm_tokens WHERE id = $1"
    };
    let row = tx
        .query_opt(sql, &[&token])?
        .ok_or(StoreError::Malformed("the token's row is gone"))?;
    let (seq, epoch): (i64, i64) = (row.get(0), row.get(1));
    Ok((seq as u64, epoch as u64))
}

/// Takes the next sequence number (locking the token's row until the commit) and tells
/// listeners of it at the commit: the payload is the writer's id and the number.
pub(super) fn bump(tx: &mut Conn, token: i64, writer: &str) -> PgResult<i64> {
    let seq: i64 = tx
        .query_one(
            "UPDATE kmshsm_tokens SET seq = seq + 1 WHERE id = $1 RETURNING seq",
            &[&token],
        )?
        .get(0);
    tx.execute(
        "SELECT pg_notify($1, $2)",
        &[&super::channel(token), &format!("{writer} {seq}")],
    )?;
    Ok(seq)
}

/// The live records among `uids`, in the order of `uids`.
pub(super) fn objects(
    tx: &mut Conn,
    token: i64,
    uids: &[ObjectUid],
) -> PgResult<Vec<ObjectRecord>> {
    let keys: Vec<&[u8]> = uids.iter().map(|u| &u[..]).collect();
    let rows = tx.query(
        "SELECT uid, plain, sealed FROM kmshsm_objects WHERE token = $1 AND uid = ANY ($2)",
        &[&token, &keys],
    )?;
    let mut found = Vec::with_capacity(rows.len());
    for row in rows {
        found.push(record(row.get(0), row.get(1), row.get(2))?);
    }
    found.sort_by_key(|r: &ObjectRecord| uids.iter().position(|u| *u == r.uid));
    Ok(found)
}

/// The records of token `token` whose index holds lookup key `key`: one statement.
pub(super) fn objects_by_key(tx: &mut Conn, token: i64, key: &[u8]) -> PgResult<Vec<ObjectRecord>> {
    let rows = tx.query(
        "SELECT o.uid, o.plain, o.sealed FROM kmshsm_lookup l \
         JOIN kmshsm_objects o ON o.token = l.token AND o.uid = l.uid \
         WHERE l.token = $1 AND l.key = $2",
        &[&token, &key],
    )?;
    let mut found = Vec::with_capacity(rows.len());
    for row in rows {
        found.push(record(row.get(0), row.get(1), row.get(2))?);
    }
    Ok(found)
}

pub(super) fn record(
    uid: Vec<u8>,
    plain: Vec<u8>,
    sealed: Option<Vec<u8>>,
) -> Result<ObjectRecord, StoreError> {
    Ok(ObjectRecord {
        uid: uid_of(uid)?,
        plain,
        sealed,
        index: RecordIndex::default(),
    })
}

pub(super) fn pin_row(row: &tokio_postgres::Row) -> Result<(PinRole, PinRecord), StoreError> {
    let role = PinRole::from_code(row.get(0)).ok_or(StoreError::Malformed("unknown PIN role"))?;
    Ok((
        role,
        PinRecord {
            kdf: row.get(1),
            wrapped_key: row.get(2),
            failures: count(row.get(3))?,
        },
    ))
}

/// Writes a record's lookup keys and due time, replacing any it had; nothing when there
/// is no such record.
fn put_index(tx: &mut Conn, token: i64, uid: &ObjectUid, index: &RecordIndex) -> PgResult<()> {
    let found = tx.execute(
        "UPDATE kmshsm_objects SET due = $3 WHERE token = $1 AND uid = $2",
        &[&token, &&uid[..], &index.due],
    )?;
    if found == 0 {
        return Ok(());
    }
    tx.execute(
        "DELETE FROM kmshsm_lookup WHERE token = $1 AND uid = $2",
        &[&token, &&uid[..]],
    )?;
    if !index.lookup.is_empty() {
        let keys: Vec<&[u8]> = index.lookup.iter().map(Vec::as_slice).collect();
        tx.execute(
            "INSERT INTO kmshsm_lookup (token, key, uid) SELECT $1, k, $3 FROM unnest($2::bytea[]) AS k \
             ON CONFLICT DO NOTHING",
            &[&token, &keys, &&uid[..]],
        )?;
    }
    Ok(())
}

/// Applies `changes` as one new sequence number; answers it. `head` is the audit head
/// when the caller read it in this transaction already (`transact`).
pub(super) fn apply(
    tx: &mut Conn,
    token: i64,
    writer: &str,
    changes: Vec<Change>,
    mut head: Option<AuditHead>,
) -> PgResult<i64> {
    let seq = bump(tx, token, writer)?;
    let mut changes = changes.into_iter().peekable();
    while let Some(change) = changes.next() {
        match change {
            Change::PutMeta(name, value) => {
                tx.execute(
                    "INSERT INTO kmshsm_meta (token, name, value) VALUES ($1, $2, $3) \
                     ON CONFLICT (token, name) DO UPDATE SET value = excluded.value",
                    &[&token, &name, &value],
                )?;
            }
            Change::PutMetaIfAbsent(name, value) => {
                tx.execute(
                    "INSERT INTO kmshsm_meta (token, name, value) VALUES ($1, $2, $3) \
                     ON CONFLICT (token, name) DO NOTHING",
                    &[&token, &name, &value],
                )?;
            }
            Change::RequireMeta { name, value } => {
                let held = tx.query_opt(
                    "SELECT value FROM kmshsm_meta WHERE token = $1 AND name = $2",
                    &[&token, &name],
                )?;
                let held: Option<Vec<u8>> = held.map(|row| row.get(0));
                if held != value {
                    return Err(StoreError::MetaChanged.into());
                }
            }
            Change::PutPin(role, pin) => {
                // Attempts in flight at a record this one replaces are not at this one:
                // they can neither reset its count nor count against it (review 15e).
                tx.execute(
                    "DELETE FROM kmshsm_pin_flights WHERE token = $1 AND role = $2 \
                     AND kdf != $3",
                    &[&token, &role.code(), &pin.kdf],
                )?;
                tx.execute(
                    "INSERT INTO kmshsm_pins (token, role, kdf, wrapped_key, failures) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (token, role) DO UPDATE SET \
                     kdf = excluded.kdf, wrapped_key = excluded.wrapped_key, failures = excluded.failures",
                    &[&token, &role.code(), &pin.kdf, &pin.wrapped_key, &i64::from(pin.failures)],
                )?;
            }
            Change::RequirePin { role, kdf } => {
                let held = tx.query_opt(
                    "SELECT 1 FROM kmshsm_pins WHERE token = $1 AND role = $2 AND kdf = $3",
                    &[&token, &role.code(), &kdf],
                )?;
                if held.is_none() {
                    return Err(StoreError::PinRecordChanged.into());
                }
            }
            Change::RewrapPin {
                role,
                from_kdf,
                record,
            } => {
                let rewrapped = tx.execute(
                    "UPDATE kmshsm_pins SET kdf = $4, wrapped_key = $5 \
                     WHERE token = $1 AND role = $2 AND kdf = $3",
                    &[
                        &token,
                        &role.code(),
                        &from_kdf,
                        &record.kdf,
                        &record.wrapped_key,
                    ],
                )?;
                if rewrapped > 0 && from_kdf != record.kdf {
                    // As for PutPin: attempts in flight were at the record replaced.
                    tx.execute(
                        "DELETE FROM kmshsm_pin_flights WHERE token = $1 AND role = $2",
                        &[&token, &role.code()],
                    )?;
                }
            }
            Change::RemovePin(role) => {
                // The record's numbering goes with it: so do its attempts in flight.
                for table in ["kmshsm_pin_flights", "kmshsm_pins"] {
                    tx.execute(
                        &format!("DELETE FROM {table} WHERE token = $1 AND role = $2"),
                        &[&token, &role.code()],
                    )?;
                }
            }
            Change::PutObject(rec) => {
                tx.execute(
                    "INSERT INTO kmshsm_objects (token, uid, seq, plain, sealed, due) \
                     VALUES ($1, $2, $3, $4, $5, NULL) ON CONFLICT (token, uid) DO UPDATE SET \
                     seq = excluded.seq, plain = excluded.plain, sealed = excluded.sealed, due = NULL",
                    &[&token, &&rec.uid[..], &seq, &rec.plain, &rec.sealed],
                )?;
                put_index(tx, token, &rec.uid, &rec.index)?;
                tx.execute(
                    "DELETE FROM kmshsm_removed WHERE token = $1 AND uid = $2",
                    &[&token, &&rec.uid[..]],
                )?;
            }
            Change::Reindex(uid, index) => put_index(tx, token, &uid, &index)?,
            Change::RemoveObject(uid) => {
                let uid = &uid[..];
                tx.execute(
                    "DELETE FROM kmshsm_objects WHERE token = $1 AND uid = $2",
                    &[&token, &uid],
                )?;
                tx.execute(
                    "DELETE FROM kmshsm_lookup WHERE token = $1 AND uid = $2",
                    &[&token, &uid],
                )?;
                tx.execute(
                    "INSERT INTO kmshsm_removed (token, uid, seq) VALUES ($1, $2, $3) \
                     ON CONFLICT (token, uid) DO UPDATE SET seq = excluded.seq",
                    &[&token, &uid, &seq],
                )?;
            }
            Change::Wipe => {
                for table in [
                    "kmshsm_objects",
                    "kmshsm_lookup",
                    "kmshsm_removed",
                    "kmshsm_pins",
                    "kmshsm_pin_flights",
                ] {
                    tx.execute(&format!("DELETE FROM {table} WHERE token = $1"), &[&token])?;
                }
                tx.execute(
                    "UPDATE kmshsm_tokens SET epoch = epoch + 1 WHERE id = $1",
                    &[&token],
                )?;
            }
            Change::AppendEvent { .. } => {
                let prev = match head {
                    Some(h) => h,
                    None => super::audit::head(tx, token)?,
                };
                // The MAC of this very event, when it comes next, goes in with its row.
                let seal = match changes.peek() {
                    Some(Change::SealAudit(s)) if s.seq == prev.seq + 1 => {
                        let mac = s.mac;
                        changes.next();
                        Some(mac)
                    }
                    _ => None,
                };
                head = super::audit::apply(tx, token, change, Some(prev), seal)?;
            }
            audit => head = super::audit::apply(tx, token, audit, head, None)?,
        }
    }
    Ok(seq)
}
