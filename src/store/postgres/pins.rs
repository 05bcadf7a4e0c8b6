//! PIN attempts in the PostgreSQL store: reserving one (one statement checks the limit
//! and counts the attempt, under the token's row lock) and settling it. This module must
//! not see PINs; it counts attempts.

use std::collections::BTreeMap;

use super::conn::Conn;
use super::conn::PgResult;
use super::records;
use crate::error::StoreError;
use crate::store::{latest_lease_end, PinAttempt, PinCount, PinRecordId, PinRole, PinSettle};

/// What `Store::reserve_pin_attempt` answers, and the sequence number of its commit:
/// an attempt at the PIN of role `code` of the token of `epoch`, whose limit is `limit`,
/// leased from `now` until `lease_until`.
pub(super) fn reserve(
    c: &mut Conn,
    token: i64,
    writer: &str,
    (code, epoch, limit): (i64, u64, i64),
    (now, lease_until): (i64, i64),
    committing: &mut bool,
) -> PgResult<(PinAttempt, Option<i64>)> {
    let tx = c;
    tx.begin("")?;
    // The token's row first, as every writer takes it.
    if records::state(tx, token, true)?.1 != epoch {
        tx.commit()?;
        return Ok((PinAttempt::OtherToken, None));
    }
    // One statement checks the limit and takes the attempt: the row lock makes
    // a second host wait and then re-check the condition on the new count.
    let taken = tx.query_opt(
        "UPDATE kmshsm_pins SET failures = failures + 1, reserved = reserved + 1 \
         WHERE token = $1 AND role = $2 \
         AND ($3::bigint = 0 OR failures < $3::bigint) RETURNING failures, kdf, reserved",
        &[&token, &code, &limit],
    )?;
    // Attempts whose lease ended (or was given by a clock far ahead) are in flight no
    // more: their holders died, and they stay counted.
    tx.execute(
        "DELETE FROM kmshsm_pin_flights WHERE token = $1 AND role = $2 \
         AND (lease_until <= $3::bigint OR lease_until > $4::bigint)",
        &[&token, &code, &now, &latest_lease_end(now)],
    )?;
    if let Some(row) = taken {
        let failures = records::count(row.get(0))?;
        let attempt: i64 = row.get(2);
        let kdf: Vec<u8> = row.get(1);
        tx.execute(
            "INSERT INTO kmshsm_pin_flights (token, role, attempt, kdf, lease_until) \
             VALUES ($1, $2, $3, $4, $5::bigint) ON CONFLICT (token, role, attempt) \
             DO UPDATE SET kdf = excluded.kdf, lease_until = excluded.lease_until",
            &[&token, &code, &attempt, &kdf, &lease_until],
        )?;
        let seq = records::bump(tx, token, writer)?;
        *committing = true;
        tx.commit()?;
        let record = PinRecordId {
            epoch,
            kdf,
            attempt: u64::try_from(attempt)
                .map_err(|_| StoreError::Malformed("PIN attempt number out of range"))?,
        };
        return Ok((PinAttempt::Reserved { failures, record }, Some(seq)));
    }
    let exists = tx
        .query_opt(
            "SELECT 1 FROM kmshsm_pins WHERE token = $1 AND role = $2",
            &[&token, &code],
        )?
        .is_some();
    if !exists {
        return Err(StoreError::Malformed("no PIN record for that role").into());
    }
    // An attempt in flight at the record that, right, would bring the count under the
    // limit (one of the last `limit` reserved) makes the caller wait; one forgiven
    // already does not (review 15i).
    let busy = tx
        .query_opt(
            "SELECT 1 FROM kmshsm_pin_flights f JOIN kmshsm_pins p \
             ON p.token = f.token AND p.role = f.role AND p.kdf = f.kdf \
             WHERE f.token = $1 AND f.role = $2 AND f.attempt > p.reserved - $3::bigint LIMIT 1",
            &[&token, &code, &limit],
        )?
        .is_some();
    tx.commit()?;
    Ok((
        if busy {
            PinAttempt::Busy
        } else {
            PinAttempt::Locked
        },
        None,
    ))
}

/// `Store::settle_pin_attempt`, and the sequence number of its commit when it changed a
/// count.
pub(super) fn settle(
    c: &mut Conn,
    token: i64,
    writer: &str,
    (code, right, record): (i64, bool, &PinRecordId),
    committing: &mut bool,
) -> PgResult<(PinSettle, Option<i64>)> {
    let tx = c;
    tx.begin("")?;
    // The token's row, locked: no re-initialisation can come between the check and
    // the write.
    if records::state(tx, token, true)?.1 != record.epoch {
        tx.commit()?;
        return Ok((PinSettle::OtherToken, None));
    }
    let mut seq = None;
    if right {
        // The attempts reserved after this one stay counted (in flight, or wrong).
        let attempt = i64::try_from(record.attempt).unwrap_or(i64::MAX);
        let reset = tx.execute(
            "UPDATE kmshsm_pins SET failures = least(failures, greatest(reserved - $4, 0)) \
             WHERE token = $1 AND role = $2 AND kdf = $3 AND failures != 0",
            &[&token, &code, &record.kdf, &attempt],
        )?;
        if reset > 0 {
            seq = Some(records::bump(tx, token, writer)?);
        }
    }
    // No longer in flight: its own row goes, and only its own.
    let attempt = i64::try_from(record.attempt).unwrap_or(i64::MAX);
    tx.execute(
        "DELETE FROM kmshsm_pin_flights WHERE token = $1 AND role = $2 AND attempt = $3 \
         AND kdf = $4",
        &[&token, &code, &attempt, &record.kdf],
    )?;
    *committing = true;
    tx.commit()?;
    Ok((PinSettle::Settled, seq))
}

/// `Store::pin_counts`: each PIN record's count and the attempts in flight at `now`.
pub(super) fn counts(c: &mut Conn, token: i64, now: i64) -> PgResult<BTreeMap<PinRole, PinCount>> {
    let tx = c;
    tx.begin(super::READ_ONLY)?;
    let mut counts = BTreeMap::new();
    for row in tx.query(
        "SELECT p.role, p.failures, (SELECT count(*) FROM kmshsm_pin_flights f \
         WHERE f.token = p.token AND f.role = p.role AND f.kdf = p.kdf \
         AND f.attempt > p.reserved - p.failures \
         AND f.lease_until > $2::bigint AND f.lease_until <= $3::bigint) \
         FROM kmshsm_pins p WHERE p.token = $1",
        &[&token, &now, &latest_lease_end(now)],
    )? {
        let role =
            PinRole::from_code(row.get(0)).ok_or(StoreError::Malformed("unknown PIN role"))?;
        counts.insert(
            role,
            PinCount::read(records::count(row.get(1))?, row.get(2)),
        );
    }
    tx.commit()?;
    Ok(counts)
}
