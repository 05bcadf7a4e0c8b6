//! The audit trail's tables in the SQLite store: the newest event and the anchor read inside
//! a write transaction (`store::audit` chains the next event onto them), the whole trail
//! read for verification, and a trail copied in as it was read. Event bodies stay opaque:
//! this module must not interpret or judge them (`store::audit` does).

use rusqlite::{params, OptionalExtension};

use crate::error::StoreError;
use crate::store::audit::{self, AuditCheckpoint, AuditHead, AuditLog, AuditRecord};
use crate::store::StoreResult;

/// `Change::RestoreAudit`: a trail written as it was read, into an empty one.
pub(super) fn restore_audit(tx: &rusqlite::Transaction<'_>, log: &AuditLog) -> StoreResult<()> {
    let empty: bool = tx.query_row(
        "SELECT NOT EXISTS (SELECT 1 FROM audit_events) \
         AND NOT EXISTS (SELECT 1 FROM audit_checkpoint)",
        [],
        |r| r.get(0),
    )?;
    if !empty {
        return Err(StoreError::Malformed(
            "the audit trail to restore into is not empty",
        ));
    }
    if let Some(m) = &log.checkpoint {
        tx.execute(
            "INSERT OR REPLACE INTO audit_checkpoint (id, seq, hash, mac) VALUES (1, ?1, ?2, ?3)",
            params![m.seq as i64, &m.hash[..], &m.mac[..]],
        )?;
    }
    if let Some(m) = &log.anchor {
        tx.execute(
            "UPDATE state SET anchor_seq = ?1, anchor_hash = ?2, anchor_mac = ?3 WHERE id = 1",
            params![m.seq as i64, &m.hash[..], &m.mac[..]],
        )?;
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO audit_events (seq, body, hash, mac) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for e in &log.events {
        insert.execute(params![
            e.seq as i64,
            e.body,
            &e.hash[..],
            e.mac.as_ref().map(|m| &m[..])
        ])?;
    }
    Ok(())
}

fn hash_of(bytes: Vec<u8>) -> StoreResult<audit::Hash> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Malformed("audit hash is not 32 bytes"))
}

/// Where a checkpoint-shaped mark is kept: the checkpoint's own row, or the anchor's
/// columns of the state row (which every commit writes anyway).
const CHECKPOINT: &str = "SELECT seq, hash, mac FROM audit_checkpoint WHERE id = 1";
const ANCHOR: &str =
    "SELECT anchor_seq, anchor_hash, anchor_mac FROM state WHERE id = 1 AND anchor_seq IS NOT NULL";

/// A checkpoint-shaped mark (`CHECKPOINT`, `ANCHOR`).
fn audit_mark(tx: &rusqlite::Transaction<'_>, query: &str) -> StoreResult<Option<AuditCheckpoint>> {
    let row: Option<(i64, Vec<u8>, Vec<u8>)> = tx
        .prepare_cached(query)?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    row.map(|(seq, hash, mac)| {
        Ok(AuditCheckpoint {
            seq: seq as u64,
            hash: hash_of(hash).unwrap_or([0xff; 32]),
            mac: hash_of(mac).unwrap_or([0xff; 32]),
        })
    })
    .transpose()
}

/// The newest audit event (or the checkpoint, or nothing) and the anchor, inside
/// transaction `tx`.
pub(super) fn audit_head(tx: &rusqlite::Transaction<'_>) -> StoreResult<AuditHead> {
    let mut head = newest_event(tx)?;
    head.anchor = audit_mark(tx, ANCHOR)?;
    if head.anchor.is_none() {
        head.authenticated = tx
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM audit_events WHERE mac IS NOT NULL) \
                     OR EXISTS (SELECT 1 FROM audit_checkpoint)",
            )?
            .query_row([], |r| r.get(0))?;
    }
    if head.anchor.is_some_and(|a| a.seq == head.seq) {
        // The usual case: the anchor is the newest event (or the checkpoint).
        head.anchored_hash = Some(head.hash);
    } else if let Some(a) = &head.anchor {
        let stored: Option<Vec<u8>> = tx
            .prepare_cached("SELECT hash FROM audit_events WHERE seq = ?1")?
            .query_row([a.seq as i64], |r| r.get(0))
            .optional()?;
        head.anchored_hash = match stored {
            Some(h) => hash_of(h).ok(),
            None => audit_mark(tx, CHECKPOINT)?
                .filter(|c| c.seq == a.seq)
                .map(|c| c.hash),
        };
    }
    Ok(head)
}

/// The newest audit event, or the checkpoint, or nothing.
pub(super) fn newest_event(tx: &rusqlite::Transaction<'_>) -> StoreResult<AuditHead> {
    let newest: Option<(i64, Vec<u8>, bool)> = tx
        .prepare_cached(
            "SELECT seq, hash, mac IS NOT NULL FROM audit_events ORDER BY seq DESC LIMIT 1",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    if let Some((seq, hash, sealed)) = newest {
        return Ok(AuditHead {
            seq: seq as u64,
            hash: hash_of(hash)?,
            sealed,
            ..AuditHead::default()
        });
    }
    let checkpoint: Option<(i64, Vec<u8>)> = tx
        .prepare_cached("SELECT seq, hash FROM audit_checkpoint WHERE id = 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(match checkpoint {
        Some((seq, hash)) => AuditHead {
            seq: seq as u64,
            hash: hash_of(hash)?,
            sealed: true,
            ..AuditHead::default()
        },
        None => AuditHead::default(),
    })
}

/// The whole trail as stored, read inside transaction `tx`; rows edited to hold the wrong
/// types or lengths are read anyway, so that verification can name them.
pub(super) fn read_log(tx: &rusqlite::Transaction<'_>) -> StoreResult<AuditLog> {
    let mut log = AuditLog {
        checkpoint: audit_mark(tx, CHECKPOINT)?,
        anchor: audit_mark(tx, ANCHOR)?,
        ..AuditLog::default()
    };
    {
        let mut q =
            tx.prepare_cached("SELECT seq, body, hash, mac FROM audit_events ORDER BY seq")?;
        // Read as any type: a row edited to hold text (or anything) must still be
        // read, so that verification names it.
        let bytes = |v: rusqlite::types::Value| match v {
            rusqlite::types::Value::Blob(b) => Some(b),
            rusqlite::types::Value::Text(t) => Some(t.into_bytes()),
            rusqlite::types::Value::Null => None,
            other => Some(format!("{other:?}").into_bytes()),
        };
        let rows = q.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                bytes(r.get(1)?).unwrap_or_default(),
                bytes(r.get(2)?).unwrap_or_default(),
                bytes(r.get(3)?),
            ))
        })?;
        for row in rows {
            let (seq, body, hash, mac) = row?;
            // A hash or MAC of the wrong length (an edited row) is read as one that
            // cannot verify, so `audit::verify` names the event rather than the read
            // failing.
            let lenient = |b: Vec<u8>| hash_of(b).unwrap_or([0xff; 32]);
            log.events.push(AuditRecord {
                seq: seq as u64,
                body,
                hash: lenient(hash),
                mac: mac.map(lenient),
            });
        }
    }
    Ok(log)
}
