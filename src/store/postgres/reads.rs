//! The PostgreSQL store's reads that take more than one statement: a snapshot of one
//! token (metadata, PINs, the object records a reader asks for) and its due records,
//! each in one `REPEATABLE READ READ ONLY` transaction. This module must not interpret
//! records.

use super::conn::Conn;
use super::conn::PgResult;
use super::records;
use super::READ_ONLY;
use crate::store::{Due, Scope, Snapshot};

/// What `Store::read` answers.
pub(super) fn snapshot(
    c: &mut Conn,
    token: i64,
    since: u64,
    epoch: u64,
    scope: Scope,
) -> PgResult<Snapshot> {
    let tx = c;
    tx.begin(READ_ONLY)?;
    let (seq, store_epoch) = records::state(tx, token, false)?;
    let reset = epoch != store_epoch;
    let mut snap = Snapshot {
        seq,
        epoch: store_epoch,
        reset,
        whole: scope == Scope::All,
        ..Snapshot::default()
    };
    let from: i64 = match (scope, reset) {
        (Scope::All, _) => -1,
        (Scope::Changes, true) => seq as i64,
        (Scope::Changes, false) => since as i64,
    };
    for row in tx.query(
        "SELECT name, value FROM kmshsm_meta WHERE token = $1",
        &[&token],
    )? {
        snap.meta.insert(row.get(0), row.get(1));
    }
    for row in tx.query(
        "SELECT role, kdf, wrapped_key, failures FROM kmshsm_pins WHERE token = $1",
        &[&token],
    )? {
        let (role, pin) = records::pin_row(&row)?;
        snap.pins.insert(role, pin);
    }
    for row in tx.query(
        "SELECT uid, plain, sealed FROM kmshsm_objects WHERE token = $1 AND seq > $2",
        &[&token, &from],
    )? {
        snap.objects
            .push(records::record(row.get(0), row.get(1), row.get(2))?);
    }
    if !reset && scope == Scope::Changes {
        for row in tx.query(
            "SELECT uid FROM kmshsm_removed WHERE token = $1 AND seq > $2",
            &[&token, &from],
        )? {
            snap.removed.push(records::uid_of(row.get(0))?);
        }
    }
    tx.commit()?;
    Ok(snap)
}

/// What `Store::due` answers.
pub(super) fn due(c: &mut Conn, token: i64, now: i64) -> PgResult<Due> {
    let tx = c;
    tx.begin(READ_ONLY)?;
    let mut due = Due::default();
    for row in tx.query(
        "SELECT uid FROM kmshsm_objects WHERE token = $1 AND due <= $2",
        &[&token, &now],
    )? {
        due.now.push(records::uid_of(row.get(0))?);
    }
    due.next = tx
        .query_one(
            "SELECT min(due) FROM kmshsm_objects WHERE token = $1 AND due > $2",
            &[&token, &now],
        )?
        .get(0);
    tx.commit()?;
    Ok(due)
}
