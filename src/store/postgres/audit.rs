//! The audit trail in PostgreSQL (`store::audit`): the statements that read the head
//! inside a write transaction, apply the audit changes, and read the whole trail.
//!
//! Events live in `kmshsm_audit_events` (numbered per token), the checkpoint pruning
//! leaves and the anchor in `kmshsm_audit_checkpoint` and `kmshsm_audit_anchor` (one row
//! per token each). Every statement runs inside a transaction that has locked the
//! token's row first (`records::bump` or `records::state`), so the head read here is the
//! one the appended events follow. Rows edited by hand are read leniently (a hash of the
//! wrong length reads as one that cannot verify), so `audit::verify` names the event
//! rather than the read failing. This module must not interpret event bodies.

use super::conn::Conn;
use super::conn::PgResult;
use crate::error::StoreError;
use crate::store::audit::{self, AuditCheckpoint, AuditHead, AuditLog, AuditRecord, Hash};
use crate::store::Change;

fn hash_of(bytes: Vec<u8>) -> Result<Hash, StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Malformed("audit hash is not 32 bytes"))
}

/// A hash or MAC as read from a row that may have been edited.
fn lenient(bytes: Vec<u8>) -> Hash {
    hash_of(bytes).unwrap_or([0xff; 32])
}

/// The newest event (or the checkpoint, or nothing) and the anchor, in one round trip.
pub(super) fn head(tx: &mut Conn, token: i64) -> PgResult<AuditHead> {
    let row = tx.query_one(
        "SELECT e.seq, e.hash, e.mac IS NOT NULL, c.seq, c.hash, a.seq, a.hash, a.mac, \
                (SELECT x.hash FROM kmshsm_audit_events x WHERE x.token = $1 AND x.seq = a.seq) \
         FROM (SELECT 1) AS one \
         LEFT JOIN LATERAL (SELECT seq, hash, mac FROM kmshsm_audit_events \
                            WHERE token = $1 ORDER BY seq DESC LIMIT 1) AS e ON true \
         LEFT JOIN kmshsm_audit_checkpoint AS c ON c.token = $1 \
         LEFT JOIN kmshsm_audit_anchor AS a ON a.token = $1",
        &[&token],
    )?;
    let newest: Option<i64> = row.get(0);
    let checkpoint: Option<i64> = row.get(3);
    let mut head = match (newest, checkpoint) {
        (Some(seq), _) => AuditHead {
            seq: seq as u64,
            hash: hash_of(row.get(1))?,
            sealed: row.get(2),
            ..AuditHead::default()
        },
        (None, Some(seq)) => AuditHead {
            seq: seq as u64,
            hash: hash_of(row.get(4))?,
            sealed: true,
            ..AuditHead::default()
        },
        (None, None) => AuditHead::default(),
    };
    let anchor_seq: Option<i64> = row.get(5);
    if let Some(seq) = anchor_seq {
        let anchor = AuditCheckpoint {
            seq: seq as u64,
            hash: lenient(row.get(6)),
            mac: lenient(row.get(7)),
        };
        head.anchored_hash = if anchor.seq == head.seq {
            // The usual case: the anchor is the newest event (or the checkpoint).
            Some(head.hash)
        } else {
            match row.get::<_, Option<Vec<u8>>>(8) {
                Some(h) => hash_of(h).ok(),
                None if checkpoint == Some(seq) => hash_of(row.get(4)).ok(),
                None => None,
            }
        };
        head.anchor = Some(anchor);
    } else {
        head.authenticated = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM kmshsm_audit_events WHERE token = $1 AND mac IS NOT NULL) \
                     OR EXISTS (SELECT 1 FROM kmshsm_audit_checkpoint WHERE token = $1)",
                &[&token],
            )?
            .get(0);
    }
    Ok(head)
}

/// Applies one audit change (`change` is one of the audit variants) after `head`, the
/// trail's head so far in this transaction (read here when `None`); answers the head it
/// leaves when it appended. `next_seal` is the MAC of the event appended, when the next
/// change is that MAC: it goes in with the event's row (one statement).
pub(super) fn apply(
    tx: &mut Conn,
    token: i64,
    change: Change,
    head: Option<AuditHead>,
    next_seal: Option<Hash>,
) -> PgResult<Option<AuditHead>> {
    match change {
        Change::AppendEvent { body, link } => {
            let prev = match head {
                Some(h) => h,
                None => self::head(tx, token)?,
            };
            let (seq, hash) = audit::next_link(&prev, &body, link);
            tx.execute(
                "INSERT INTO kmshsm_audit_events (token, seq, body, hash, mac) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &token,
                    &(seq as i64),
                    &body,
                    &&hash[..],
                    &next_seal.as_ref().map(|m| &m[..]),
                ],
            )?;
            return Ok(Some(AuditHead {
                seq,
                hash,
                ..AuditHead::default()
            }));
        }
        Change::SealAudit(seal) => {
            tx.execute(
                "UPDATE kmshsm_audit_events SET mac = $3 WHERE token = $1 AND seq = $2",
                &[&token, &(seal.seq as i64), &&seal.mac[..]],
            )?;
        }
        Change::AnchorAudit(a) => put_mark(tx, "kmshsm_audit_anchor", token, &a)?,
        Change::PruneAudit(cp) => {
            let stored: Option<Vec<u8>> = tx
                .query_opt(
                    "SELECT hash FROM kmshsm_audit_events WHERE token = $1 AND seq = $2",
                    &[&token, &(cp.seq as i64)],
                )?
                .map(|r| r.get(0));
            if stored.as_deref() != Some(&cp.hash[..]) {
                return Err(StoreError::Malformed(
                    "the audit checkpoint does not match the stored event",
                )
                .into());
            }
            tx.execute(
                "DELETE FROM kmshsm_audit_events WHERE token = $1 AND seq <= $2",
                &[&token, &(cp.seq as i64)],
            )?;
            put_mark(tx, "kmshsm_audit_checkpoint", token, &cp)?;
        }
        Change::RekeyAudit { checkpoint, seal } => {
            let stored: Option<(i64, Vec<u8>)> = tx
                .query_opt(
                    "SELECT seq, hash FROM kmshsm_audit_checkpoint WHERE token = $1",
                    &[&token],
                )?
                .map(|r| (r.get(0), r.get(1)));
            let verified = checkpoint.map(|c| (c.seq as i64, c.hash.to_vec()));
            if stored != verified {
                return Err(StoreError::AuditCheckpointChanged.into());
            }
            if let Some(cp) = checkpoint {
                tx.execute(
                    "UPDATE kmshsm_audit_checkpoint SET mac = $2 WHERE token = $1",
                    &[&token, &&cp.mac[..]],
                )?;
            }
            tx.execute(
                "UPDATE kmshsm_audit_events SET mac = NULL WHERE token = $1 AND mac IS NOT NULL",
                &[&token],
            )?;
            tx.execute(
                "DELETE FROM kmshsm_audit_anchor WHERE token = $1",
                &[&token],
            )?;
            if let Some(seal) = seal {
                tx.execute(
                    "UPDATE kmshsm_audit_events SET mac = $3 WHERE token = $1 AND seq = $2",
                    &[&token, &(seal.seq as i64), &&seal.mac[..]],
                )?;
            }
        }
        Change::RestoreAudit(log) => {
            let empty: bool = tx
                .query_one(
                    "SELECT NOT EXISTS (SELECT 1 FROM kmshsm_audit_events WHERE token = $1) \
                     AND NOT EXISTS (SELECT 1 FROM kmshsm_audit_checkpoint WHERE token = $1)",
                    &[&token],
                )?
                .get(0);
            if !empty {
                return Err(
                    StoreError::Malformed("the audit trail to restore into is not empty").into(),
                );
            }
            if let Some(cp) = &log.checkpoint {
                put_mark(tx, "kmshsm_audit_checkpoint", token, cp)?;
            }
            if let Some(a) = &log.anchor {
                put_mark(tx, "kmshsm_audit_anchor", token, a)?;
            }
            for e in &log.events {
                tx.execute(
                    "INSERT INTO kmshsm_audit_events (token, seq, body, hash, mac) \
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &token,
                        &(e.seq as i64),
                        &e.body,
                        &&e.hash[..],
                        &e.mac.as_ref().map(|m| &m[..]),
                    ],
                )?;
            }
        }
        _ => {
            return Err(StoreError::Malformed("not an audit change").into());
        }
    }
    Ok(head)
}

/// Writes the checkpoint-shaped row of `table` (`kmshsm_audit_checkpoint` or
/// `kmshsm_audit_anchor`), replacing the token's.
fn put_mark(tx: &mut Conn, table: &str, token: i64, m: &AuditCheckpoint) -> PgResult<()> {
    tx.execute(
        &format!(
            "INSERT INTO {table} (token, seq, hash, mac) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (token) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, \
             mac = excluded.mac"
        ),
        &[&token, &(m.seq as i64), &&m.hash[..], &&m.mac[..]],
    )?;
    Ok(())
}

fn mark(tx: &mut Conn, table: &str, token: i64) -> PgResult<Option<AuditCheckpoint>> {
    Ok(tx
        .query_opt(
            &format!("SELECT seq, hash, mac FROM {table} WHERE token = $1"),
            &[&token],
        )?
        .map(|r| AuditCheckpoint {
            seq: r.get::<_, i64>(0) as u64,
            hash: lenient(r.get(1)),
            mac: lenient(r.get(2)),
        }))
}

/// The whole trail, in one `REPEATABLE READ READ ONLY` transaction.
pub(super) fn log(c: &mut Conn, token: i64) -> PgResult<AuditLog> {
    let tx = c;
    tx.begin(super::READ_ONLY)?;
    let mut log = AuditLog {
        checkpoint: mark(tx, "kmshsm_audit_checkpoint", token)?,
        anchor: mark(tx, "kmshsm_audit_anchor", token)?,
        ..AuditLog::default()
    };
    for row in tx.query(
        "SELECT seq, body, hash, mac FROM kmshsm_audit_events WHERE token = $1 ORDER BY seq",
        &[&token],
    )? {
        log.events.push(AuditRecord {
            seq: row.get::<_, i64>(0) as u64,
            body: row.get(1),
            hash: lenient(row.get(2)),
            mac: row.get::<_, Option<Vec<u8>>>(3).map(lenient),
        });
    }
    tx.commit()?;
    Ok(log)
}
