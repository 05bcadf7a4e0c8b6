//! PIN attempt counters in the SQLite store: reserving an attempt before a PIN is tried
//! and settling it after, each one write transaction on the connection the caller has
//! locked. The caller waits for the commit's sync (`durable.rs`); this module must not
//! open connections, wait, or judge PINs.

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::error::StoreError;
use crate::store::{
    latest_lease_end, PinAttempt, PinCount, PinRecordId, PinRole, PinSettle, StoreResult,
};

/// `Store::reserve_pin_attempt` on the locked connection (no waiting for a sync).
pub(super) fn reserve(
    db: &mut Connection,
    role: PinRole,
    epoch: u64,
    limit: u32,
    now: i64,
    lease_until: i64,
) -> StoreResult<PinAttempt> {
    let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if super::read_state(&tx)?.1 != epoch {
        return Ok(PinAttempt::OtherToken);
    }
    // One statement checks the limit and takes the attempt: two processes cannot both
    // take the last one.
    let counted: Option<(u32, Vec<u8>, u64)> = tx
        .prepare_cached(
            "UPDATE pins SET failures = failures + 1, reserved = reserved + 1 \
             WHERE role = ?1 AND (?2 = 0 OR failures < ?2) RETURNING failures, kdf, reserved",
        )?
        .query_row(params![role.code(), limit], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    // Attempts whose lease ended (or was given by a clock ahead) are in flight no more:
    // their holders died, and they stay counted.
    tx.prepare_cached(
        "DELETE FROM pin_flights WHERE role = ?1 AND (lease_until <= ?2 OR lease_until > ?3)",
    )?
    .execute(params![role.code(), now, latest_lease_end(now)])?;
    let answer = if let Some((failures, kdf, attempt)) = counted {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO pin_flights (role, attempt, kdf, lease_until) \
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![role.code(), attempt, kdf, lease_until])?;
        PinAttempt::Reserved {
            failures,
            record: PinRecordId {
                epoch,
                kdf,
                attempt,
            },
        }
    } else {
        let exists = tx
            .prepare_cached("SELECT 1 FROM pins WHERE role = ?1")?
            .query_row([role.code()], |_| Ok(()))
            .optional()?
            .is_some();
        if !exists {
            return Err(StoreError::Malformed("no PIN record for that role"));
        }
        // An attempt in flight at the record that, right, would bring the count under
        // the limit (one of the last `limit` reserved: a right PIN forgives what was
        // reserved up to it) makes the caller wait; one forgiven already does not
        // (review 15i).
        let busy = tx
            .prepare_cached(
                "SELECT 1 FROM pin_flights f JOIN pins p ON p.role = f.role AND p.kdf = f.kdf \
                 WHERE f.role = ?1 AND f.attempt > p.reserved - ?2 LIMIT 1",
            )?
            .query_row(params![role.code(), limit], |_| Ok(()))
            .optional()?
            .is_some();
        if busy {
            PinAttempt::Busy
        } else {
            PinAttempt::Locked
        }
    };
    tx.commit()?;
    Ok(answer)
}

/// `Store::settle_pin_attempt` on the locked connection (no waiting for a sync).
pub(super) fn settle(
    db: &mut Connection,
    role: PinRole,
    right: bool,
    record: &PinRecordId,
) -> StoreResult<PinSettle> {
    let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if super::read_state(&tx)?.1 != record.epoch {
        return Ok(PinSettle::OtherToken);
    }
    if right {
        // The attempts reserved after this one stay counted (in flight, or wrong).
        tx.prepare_cached(
            "UPDATE pins SET failures = min(failures, max(reserved - ?3, 0)) \
             WHERE role = ?1 AND kdf = ?2 AND failures != 0",
        )?
        .execute(params![role.code(), record.kdf, record.attempt])?;
    }
    // No longer in flight: its own row goes, and only its own.
    tx.prepare_cached("DELETE FROM pin_flights WHERE role = ?1 AND attempt = ?2 AND kdf = ?3")?
        .execute(params![role.code(), record.attempt, record.kdf])?;
    tx.commit()?;
    Ok(PinSettle::Settled)
}

/// `Store::pin_counts` on the locked connection (no waiting for a sync).
pub(super) fn counts(db: &mut Connection, now: i64) -> StoreResult<BTreeMap<PinRole, PinCount>> {
    let tx = db.transaction_with_behavior(TransactionBehavior::Deferred)?;
    let mut counts = BTreeMap::new();
    {
        // In flight and counted: the attempts still counted are the last `failures`
        // reserved (a right PIN forgave those before it).
        let mut q = tx.prepare_cached(
            "SELECT p.role, p.failures, (SELECT count(*) FROM pin_flights f \
             WHERE f.role = p.role AND f.kdf = p.kdf AND f.attempt > p.reserved - p.failures \
             AND f.lease_until > ?1 AND f.lease_until <= ?2) FROM pins p",
        )?;
        let rows = q.query_map([now, latest_lease_end(now)], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (role, failures, in_flight) = row?;
            let role = PinRole::from_code(role).ok_or(StoreError::Malformed("unknown PIN role"))?;
            counts.insert(role, PinCount::read(failures, in_flight));
        }
    }
    tx.commit()?;
    Ok(counts)
}
