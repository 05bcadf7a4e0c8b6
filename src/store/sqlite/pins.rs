//! PIN attempt counters in the SQLite store: reserving an attempt before a PIN is tried
//! and settling it after, each one write transaction on the connection the caller has
//! locked. The caller waits for the commit's sync (`durable.rs`); this module must not
//! open connections, wait, or judge PINs.

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::error::StoreError;
use crate::store::{PinAttempt, PinCount, PinRecordId, PinRole, PinSettle, StoreResult};

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
    let answer = if let Some((failures, kdf, attempt)) = counted {
        // An expired lease means its holders died: their count is dropped. One lease
        // for the role's attempts in flight, the newest's (docs/security.md, "PIN
        // lockout", on what that leaves imprecise).
        tx.prepare_cached(
            "INSERT INTO pin_attempts (role, inflight, lease_until) VALUES (?1, 1, ?3) \
             ON CONFLICT (role) DO UPDATE SET \
             inflight = CASE WHEN lease_until <= ?2 THEN 1 ELSE inflight + 1 END, \
             lease_until = max(lease_until, ?3)",
        )?
        .execute(params![role.code(), now, lease_until])?;
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
        let busy = tx
            .prepare_cached(
                "SELECT 1 FROM pin_attempts \
                 WHERE role = ?1 AND inflight > 0 AND lease_until > ?2",
            )?
            .query_row(params![role.code(), now], |_| Ok(()))
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
    // Counted in flight at the record it was reserved at only (a record replaced since
    // dropped its attempts in flight: `writes.rs`, PutPin).
    tx.prepare_cached(
        "UPDATE pin_attempts SET inflight = inflight - 1 WHERE role = ?1 AND inflight > 0 \
         AND EXISTS (SELECT 1 FROM pins WHERE role = ?1 AND kdf = ?2)",
    )?
    .execute(params![role.code(), record.kdf])?;
    tx.commit()?;
    Ok(PinSettle::Settled)
}

/// `Store::pin_counts` on the locked connection (no waiting for a sync).
pub(super) fn counts(db: &mut Connection, now: i64) -> StoreResult<BTreeMap<PinRole, PinCount>> {
    let tx = db.transaction_with_behavior(TransactionBehavior::Deferred)?;
    let mut counts = BTreeMap::new();
    {
        let mut q = tx.prepare_cached(
            "SELECT p.role, p.failures, COALESCE(a.inflight, 0) FROM pins p \
             LEFT JOIN pin_attempts a ON a.role = p.role AND a.lease_until > ?1",
        )?;
        let rows = q.query_map([now], |r| {
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
