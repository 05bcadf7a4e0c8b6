//! The shared store: tokens in one PostgreSQL database, for many hosts.
//!
//! Each `PgStore` is one token (a row of `kmshsm_tokens`; several tokens share the
//! database) and holds its own connection, opened again on the next call after it was
//! lost. Reads run in `REPEATABLE READ READ ONLY` transactions (one consistent snapshot);
//! every write transaction first locks the token's row, so one token's writers are
//! serialised as SQLite's `BEGIN IMMEDIATE` serialises them, and `transact` reads, decides
//! and writes under that lock (`decide` runs once per attempt; an attempt is repeated
//! only when a connection found dead failed before anything could have committed).
//! Other hosts' commits are noticed through LISTEN/NOTIFY on a second connection, polled
//! without blocking (`listen.rs`), with a `SELECT seq` round trip when no notification came for
//! `check_interval_ms` or the listener was (re)connected; or by the round trip on every
//! call (`change_check = "query"`). The audit trail (`audit.rs`) is appended in the
//! same transactions, after the token's row is locked.
//!
//! No fork gate: PostgreSQL's client keeps no process-wide state that a child's own new
//! connections would share, and a forked child abandons the parent's provider (and so
//! these connections) without using or dropping it (`provider/fork.rs`). Nothing
//! process-global holds a connection. This module must not interpret record contents.

mod audit;
mod conn;
mod listen;
mod pins;
mod reads;
mod records;
pub mod schema;

use std::collections::BTreeMap;
use std::time::Instant;

use parking_lot::Mutex;

use conn::Conn;
pub use conn::PgSettings;
use conn::{Failure, PgResult};
use listen::Listener;

use super::{
    AuditLog, Change, Due, Loaded, ObjectUid, PinAttempt, PinCount, PinRecordId, PinRole,
    PinSettle, ReadMark, Scope, Snapshot, Store, StoreResult,
};
use crate::error::StoreError;
use std::sync::Arc;

/// The NOTIFY channel of a token: its id, a number, so always a valid identifier.
fn channel(token: i64) -> String {
    format!("kmshsm_{token}")
}

struct Inner {
    client: Option<Conn>,
    /// The connection that LISTENs (`change_check = "notify"` only).
    listener: Option<Listener>,
    /// The sequence number this handle last read, or reached by its own commits with
    /// nobody else's in between.
    known_seq: u64,
    /// Someone else committed past `known_seq` (seen, not yet read).
    pending: bool,
    /// The listener may have missed notifications: ask the server next time.
    need_query: bool,
    /// When the server was last asked for the sequence number.
    checked_at: Instant,
    /// After a failed attempt to start the listener: not before then again.
    listener_retry_at: Option<Instant>,
}

pub(crate) struct PgStore {
    settings: Arc<PgSettings>,
    serial: String,
    token: i64,
    /// This handle's name in notifications, so it can tell its own commits.
    writer: String,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("server", &self.settings.shown())
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}

/// The mode of every read: one consistent snapshot.
pub(super) const READ_ONLY: &str = "ISOLATION LEVEL REPEATABLE READ READ ONLY";

impl PgStore {
    /// Makes token `serial` in the database (making the schema first if there is none),
    /// holding `initial`. Fails if the database has a token with that serial.
    pub(crate) fn create(
        settings: Arc<PgSettings>,
        serial: &str,
        initial: Vec<Change>,
    ) -> StoreResult<PgStore> {
        let mut client = settings.connect()?;
        schema::ensure(&settings, &mut client)?;
        let writer = uuid::Uuid::new_v4().simple().to_string();
        let mut committing = false;
        let made = (|| -> PgResult<(i64, i64)> {
            client.begin("")?;
            let row = client.query_opt(
                "INSERT INTO kmshsm_tokens (serial) VALUES ($1) \
                 ON CONFLICT (serial) DO NOTHING RETURNING id",
                &[&serial],
            )?;
            let Some(row) = row else {
                return Err(Failure::Store(StoreError::Io(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "the database already holds a token with this serial",
                ))));
            };
            let token: i64 = row.get(0);
            let seq = records::apply(&mut client, token, &writer, initial, None)?;
            committing = true;
            client.commit()?;
            Ok((token, seq))
        })();
        let (token, seq) = match made {
            Ok(made) => made,
            Err(f) => {
                client.end_transaction();
                return Err(settings.classify(f, committing));
            }
        };
        let store = PgStore::wrap(settings, serial, token, writer, client);
        // Its own commit: nothing elsewhere yet.
        store.inner.lock().known_seq = seq as u64;
        Ok(store)
    }

    /// Opens token `serial` of the database.
    pub(crate) fn open(settings: Arc<PgSettings>, serial: &str) -> StoreResult<PgStore> {
        let mut client = settings.connect()?;
        schema::ensure(&settings, &mut client)?;
        let row = client
            .query_opt("SELECT id FROM kmshsm_tokens WHERE serial = $1", &[&serial])
            .map_err(|f| settings.classify(f, false))?
            .ok_or_else(|| {
                StoreError::Io(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no token with this serial in the database",
                ))
            })?;
        let writer = uuid::Uuid::new_v4().simple().to_string();
        Ok(PgStore::wrap(settings, serial, row.get(0), writer, client))
    }

    fn wrap(
        settings: Arc<PgSettings>,
        serial: &str,
        token: i64,
        writer: String,
        client: Conn,
    ) -> PgStore {
        PgStore {
            settings,
            serial: serial.to_string(),
            token,
            writer,
            inner: Mutex::new(Inner {
                client: Some(client),
                listener: None,
                known_seq: 0,
                pending: false,
                need_query: true,
                checked_at: Instant::now(),
                listener_retry_at: None,
            }),
        }
    }

    /// `Store::load` and `load_by_key`: the records `read` reads, in one read-only
    /// transaction with the token's state.
    fn load_with(
        &self,
        mut read: impl FnMut(&mut Conn, i64) -> PgResult<Vec<super::ObjectRecord>>,
    ) -> StoreResult<Loaded> {
        let mut inner = self.inner.lock();
        let token = self.token;
        self.run(&mut inner, |tx, _| {
            tx.begin(READ_ONLY)?;
            let (seq, epoch) = records::state(tx, token, false)?;
            let objects = read(tx, token)?;
            tx.commit()?;
            Ok(Loaded {
                seq,
                epoch,
                objects,
                audit: Default::default(),
            })
        })
    }

    /// Runs `op` on the connection, connecting first when there is none or it was found
    /// closed, and ends any transaction `op` left open. `op` sets its flag just before
    /// sending a COMMIT that writes: a connection lost after that leaves the outcome
    /// unknown. A connection that was reused and found dead before that point is replaced
    /// and `op` run once more (the server had rolled back whatever it had begun); a fresh
    /// one failing, or any connection not answering within the deadline, is reported.
    fn run<T>(
        &self,
        inner: &mut Inner,
        mut op: impl FnMut(&mut Conn, &mut bool) -> PgResult<T>,
    ) -> StoreResult<T> {
        for attempt in 0..2 {
            if inner.client.as_ref().is_some_and(Conn::is_closed) {
                inner.client = None;
            }
            let fresh = inner.client.is_none();
            if fresh {
                inner.client = Some(self.settings.connect()?);
            }
            let Some(conn) = inner.client.as_mut() else {
                break;
            };
            let mut committing = false;
            let failure = match op(conn, &mut committing) {
                Ok(v) => {
                    if !conn.end_transaction() {
                        inner.client = None;
                    }
                    return Ok(v);
                }
                Err(f) => f,
            };
            if !failure.is_lost() {
                // The connection is sound: end what the call began, and report.
                if !conn.end_transaction() {
                    inner.client = None;
                }
                return Err(self.settings.classify(failure, false));
            }
            inner.client = None;
            let again =
                !committing && !fresh && attempt == 0 && !matches!(failure, Failure::Timeout);
            if !again {
                let e = self.settings.classify(failure, committing);
                if committing {
                    log::error!("token {}: {e}", self.serial);
                }
                return Err(e);
            }
            log::warn!(
                "token {}: connection to {} lost; connecting again",
                self.serial,
                self.settings.shown()
            );
        }
        Err(StoreError::Unreachable(self.settings.shown().to_string()))
    }

    /// Notes a commit of this handle that produced sequence number `seq`.
    fn committed(inner: &mut Inner, seq: i64) {
        let seq = seq as u64;
        if seq == inner.known_seq + 1 {
            inner.known_seq = seq;
        }
    }

    /// Deletes this token and every record of it from the database, in one statement
    /// (the token tool's undo of a copy that failed its verification).
    pub(crate) fn remove_token(self) -> StoreResult<()> {
        let mut inner = self.inner.lock();
        let token = self.token;
        self.run(&mut inner, |c, committing| {
            *committing = true;
            c.execute("DELETE FROM kmshsm_tokens WHERE id = $1", &[&token])?;
            Ok(())
        })
    }
}

impl Store for PgStore {
    fn changed_elsewhere(&self) -> StoreResult<bool> {
        self.check_for_changes()
    }

    fn read(&self, since: u64, epoch: u64, scope: Scope) -> StoreResult<Snapshot> {
        let mut inner = self.inner.lock();
        let token = self.token;
        let mut snap = self.run(&mut inner, |c, _| {
            reads::snapshot(c, token, since, epoch, scope)
        })?;
        // Marked as known only once the reader has applied it (`applied`).
        snap.mark = ReadMark::Counter(snap.seq);
        Ok(snap)
    }

    fn applied(&self, mark: &ReadMark) -> StoreResult<()> {
        if let ReadMark::Counter(seq) = *mark {
            let mut inner = self.inner.lock();
            inner.known_seq = seq;
            // A notification drained since the read may be of a later commit: then the
            // next check asks the server rather than trust what was pending.
            if inner.pending {
                inner.need_query = true;
            }
            inner.pending = false;
        }
        Ok(())
    }

    fn lookup(&self, key: &[u8]) -> StoreResult<Vec<ObjectUid>> {
        let mut inner = self.inner.lock();
        let token = self.token;
        self.run(&mut inner, |c, _| {
            let rows = c.query(
                "SELECT uid FROM kmshsm_lookup WHERE token = $1 AND key = $2",
                &[&token, &key],
            )?;
            let mut uids = Vec::with_capacity(rows.len());
            for row in rows {
                uids.push(records::uid_of(row.get(0))?);
            }
            Ok(uids)
        })
    }

    fn load(&self, uids: &[ObjectUid]) -> StoreResult<Loaded> {
        self.load_with(|tx, token| records::objects(tx, token, uids))
    }

    fn load_by_key(&self, key: &[u8]) -> StoreResult<Loaded> {
        self.load_with(|tx, token| records::objects_by_key(tx, token, key))
    }

    fn due(&self, now: i64) -> StoreResult<Due> {
        let mut inner = self.inner.lock();
        let token = self.token;
        self.run(&mut inner, |c, _| reads::due(c, token, now))
    }

    fn object_count_hint(&self) -> StoreResult<u64> {
        let mut inner = self.inner.lock();
        let token = self.token;
        self.run(&mut inner, |c, _| {
            let n: i64 = c
                .query_one(
                    "SELECT count(*) FROM kmshsm_objects WHERE token = $1",
                    &[&token],
                )?
                .get(0);
            Ok(n.max(0) as u64)
        })
    }

    fn commit(&self, changes: Vec<Change>) -> StoreResult<()> {
        let mut inner = self.inner.lock();
        let (token, writer) = (self.token, self.writer.as_str());
        let seq = self.run(&mut inner, |c, committing| {
            let tx = c;
            tx.begin("")?;
            let seq = records::apply(tx, token, writer, changes.clone(), None)?;
            *committing = true;
            tx.commit()?;
            Ok(seq)
        })?;
        PgStore::committed(&mut inner, seq);
        Ok(())
    }

    fn transact(
        &self,
        uids: &[ObjectUid],
        lookup: &[&[u8]],
        decide: &mut dyn FnMut(&Loaded) -> Option<Vec<Change>>,
    ) -> StoreResult<bool> {
        let mut inner = self.inner.lock();
        let (token, writer) = (self.token, self.writer.as_str());
        let seq = self.run(&mut inner, |c, committing| {
            let tx = c;
            tx.begin("")?;
            // The token's row, locked until the commit: every other writer of this token
            // waits here, so the records read below are those the changes apply to.
            let (seq, epoch) = records::state(tx, token, true)?;
            let mut wanted: Vec<ObjectUid> = uids.to_vec();
            if !lookup.is_empty() {
                for row in tx.query(
                    "SELECT uid FROM kmshsm_lookup WHERE token = $1 AND key = ANY ($2)",
                    &[&token, &lookup],
                )? {
                    wanted.push(records::uid_of(row.get(0))?);
                }
            }
            wanted.sort_unstable();
            wanted.dedup();
            let loaded = Loaded {
                seq,
                epoch,
                objects: records::objects(tx, token, &wanted)?,
                audit: audit::head(tx, token)?,
            };
            let Some(changes) = decide(&loaded).filter(|c| !c.is_empty()) else {
                // Dropping the transaction rolls it back; nothing was written.
                return Ok(None);
            };
            let seq = records::apply(tx, token, writer, changes, Some(loaded.audit))?;
            *committing = true;
            tx.commit()?;
            Ok(Some(seq))
        })?;
        match seq {
            Some(seq) => {
                PgStore::committed(&mut inner, seq);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn reserve_pin_attempt(
        &self,
        role: PinRole,
        epoch: u64,
        limit: u32,
        now: i64,
        lease_until: i64,
    ) -> StoreResult<PinAttempt> {
        let mut inner = self.inner.lock();
        let (token, writer) = (self.token, self.writer.as_str());
        let (code, limit) = (role.code(), i64::from(limit));
        let (answer, seq) = self.run(&mut inner, |c, committing| {
            pins::reserve(
                c,
                token,
                writer,
                (code, epoch, limit),
                (now, lease_until),
                committing,
            )
        })?;
        if let Some(seq) = seq {
            PgStore::committed(&mut inner, seq);
        }
        Ok(answer)
    }

    fn settle_pin_attempt(
        &self,
        role: PinRole,
        right: bool,
        record: &PinRecordId,
    ) -> StoreResult<PinSettle> {
        let mut inner = self.inner.lock();
        let (token, writer, code) = (self.token, self.writer.as_str(), role.code());
        let (answer, seq) = self.run(&mut inner, |c, committing| {
            pins::settle(c, token, writer, (code, right, record), committing)
        })?;
        if let Some(seq) = seq {
            PgStore::committed(&mut inner, seq);
        }
        Ok(answer)
    }

    fn pin_counts(&self, now: i64) -> StoreResult<BTreeMap<PinRole, PinCount>> {
        let mut inner = self.inner.lock();
        let token = self.token;
        self.run(&mut inner, |c, _| pins::counts(c, token, now))
    }

    fn audit_log(&self) -> StoreResult<AuditLog> {
        let mut inner = self.inner.lock();
        let token = self.token;
        self.run(&mut inner, |c, _| audit::log(c, token))
    }

    fn check_integrity(&self) -> StoreResult<()> {
        let mut inner = self.inner.lock();
        let token = self.token;
        let (version, strays) = self.run(&mut inner, |c, _| {
            let version: i32 = c
                .query_one("SELECT version FROM kmshsm_version WHERE id = 1", &[])?
                .get(0);
            let strays: i64 = c
                .query_one(
                    "SELECT count(*) FROM kmshsm_lookup l WHERE l.token = $1 AND NOT EXISTS \
                     (SELECT 1 FROM kmshsm_objects o WHERE o.token = l.token AND o.uid = l.uid)",
                    &[&token],
                )?
                .get(0);
            Ok((version, strays))
        })?;
        if version != schema::SCHEMA_VERSION {
            return Err(StoreError::SchemaVersion(version.into()));
        }
        if strays != 0 {
            return Err(StoreError::Malformed(
                "lookup keys of records that do not exist",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
