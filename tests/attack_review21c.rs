//! Review 21c of the review 21b fixes (commit 40f1987): the sweep that leaves records
//! failing authentication alone, and goes on when a key's records fail. Each test attacks
//! through the PKCS#11 interface (or the token file, offline, as a writer without the
//! PIN would); its doc comment says what is wrong, or marks it PASSING (coverage, no
//! defect).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::kms::*;
use common::records::{edit_plain, offline, set_attr, uid_of};
use common::*;
use cryptoki::session::Session;
use cryptoki_sys::*;
use kmshsm::object::attr::{self, Value};

/// The KMS key state written in the plain part of the record `uid`, as the store holds it.
fn stored_state(db: &std::path::Path, uid: &[u8]) -> Option<u64> {
    let plain: Vec<u8> = rusqlite::Connection::open(db)
        .unwrap()
        .query_row("SELECT plain FROM objects WHERE uid = ?1", [uid], |r| {
            r.get(0)
        })
        .unwrap();
    attr::decode(&plain)
        .unwrap()
        .into_iter()
        .find(|(t, _)| t.get() == CKA_KMSHSM_KEY_STATE)
        .and_then(|(_, v)| match v {
            Value::Ulong(s) => Some(s),
            _ => None,
        })
}

/// An EXTERNAL AES-256 key labelled `label`, its material imported to expire in 100 s.
fn expiring_key(session: &Session, work: &Work, label: &str) -> Vec<u8> {
    let key = create_external(session, Spec::Aes256, label);
    let material = work.material(Spec::Aes256);
    import_with(
        session,
        work,
        key,
        WRAP_RSAES_OAEP_SHA_256,
        &material.bytes,
        Some(system_now() + 100),
    )
    .expect("ImportKeyMaterial with an expiry");
    uid_of(session, key)
}

/// Two keys expiring together; offline, if `edit`, `edited`'s label is changed and, if
/// `poison`, every lookup key of `innocent`'s record is pointed at `edited`'s record too.
/// Then both expire, a search and a use run the sweep, and a login sweeps again.
/// Answers the stored states (innocent, edited) and the search's answer.
fn sweep_after_edit(edit: bool, poison: bool) -> (Option<u64>, Option<u64>, Result<usize, String>) {
    let env = TestEnv::new();
    let (ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let edited = expiring_key(&session, &work, "edited");
    let innocent = expiring_key(&session, &work, "innocent");
    drop(session);

    let db = env.token_database();
    let (_ctx, session) = offline(&env, ctx, || {
        if edit {
            edit_plain(&db, &edited, |attrs| {
                set_attr(attrs, CKA_LABEL, Value::Bytes(b"renamed offline".to_vec()));
            });
        }
        if poison {
            let conn = rusqlite::Connection::open(&db).unwrap();
            let added = conn
                .execute(
                    "INSERT OR IGNORE INTO lookup (key, rid) \
                     SELECT key, (SELECT rid FROM objects WHERE uid = ?1) FROM lookup \
                     WHERE rid = (SELECT rid FROM objects WHERE uid = ?2)",
                    [&edited, &innocent],
                )
                .unwrap();
            assert!(added > 0, "no index row added");
        }
        // Read while no module has the file open (an SQLite connection of this process
        // closed under the module's would drop the module's POSIX locks).
        assert_eq!(stored_state(&db, &innocent), Some(STATE_ENABLED));
    });
    // Both materials expire; a call runs the sweep.
    set_clock_offset(200);
    let search = session.find_objects(&[cryptoki::object::Attribute::Label(b"innocent".to_vec())]);
    // Every use of the expired key is refused (by its expiry), whatever the store holds.
    let used = search
        .as_ref()
        .ok()
        .and_then(|f| f.first().copied())
        .map(|h| encrypt_with(&session, Spec::Aes256, h).is_ok());
    assert_eq!(used, Some(false), "the expired key encrypted");
    // A login sweeps again, forced (`Token::login`): the same answer.
    session.logout().unwrap();
    session
        .login(cryptoki::session::UserType::User, Some(&pin(USER_PIN)))
        .unwrap();
    set_clock_offset(0);
    (
        stored_state(&db, &innocent),
        stored_state(&db, &edited),
        search.map(|f| f.len()).map_err(|e| e.to_string()),
    )
}

/// DEFECT: a writer without the PIN makes the expiry of a key none of whose records was
/// touched never happen — silently, since fix 2 of review 21b swallows `Tampered`.
///
/// How: two EXTERNAL keys, `edited` and `innocent`, have material expiring at the same
/// time. Offline, the writer changes the label of `edited`'s record (it now fails
/// authentication: the case docs/security.md says keeps its expired material) and adds
/// rows to the store's `lookup` table so that every lookup key of `innocent`'s record
/// also points at `edited`'s record (the index is not authenticated). At the sweep the
/// batch holding both keys fails (`edited`), so `decide_on_many` decides each key alone;
/// `decide_on_key` for `innocent` reads its records through the poisoned index, finds
/// `edited`'s record and answers `Tampered` for the whole key, *before* checking whose
/// record it is (its KeyId is not `innocent`'s). `Token::sweep` now logs that and moves
/// the deadline: `innocent`'s record keeps state Enabled and its expired material, and
/// every login's sweep does the same, for as long as the index row stays.
///
/// docs/security.md, "Records at rest": "The index is not authenticated. A record's
/// lookup keys and due time ... only say where to look. Whatever a search, a KMS
/// decision or the sweep finds through them is read, checked and judged"; and (fix 2's
/// own text) "a key one of whose records fails keeps its expired material ... the sweep
/// goes on with the other keys". A correct module judges a record found through the
/// index by its own authenticated KeyId first (as `decide_batch` does) and leaves a
/// failing record that is not the key's out of the decision, so `innocent`'s material is
/// wiped (PendingImport) at its expiry; only `edited` keeps its own.
///
/// Kept ignored as a documented limit (docs/security.md, "Records at rest"): a decision
/// on a key refuses every record it reads that fails authentication, whatever KeyId the
/// record claims (review 20c), and an edit of the file could give the failing record
/// `innocent`'s KeyId as easily as an index row; the expired material stays refused at
/// every use and sealed at rest. It fails (the state stays Enabled).
#[test]
#[ignore = "known limit: an index edit pointing a key's lookups at a record that fails authentication holds back that key's expiry (docs/security.md, Records at rest)"]
fn a_poisoned_index_row_silently_keeps_another_keys_expired_material() {
    let (innocent, edited, search) = sweep_after_edit(true, true);
    assert!(
        search.is_ok() && innocent == Some(STATE_PENDING_IMPORT),
        "the expiry of a key whose records all authenticate did not happen: its stored \
         state {innocent:?} (PendingImport = {STATE_PENDING_IMPORT}), the edited key's \
         {edited:?}, search {search:?}",
    );
}

/// PASSING (coverage, no defect): the control of the test above, without the index rows:
/// the key whose records authenticate is wiped at its expiry (PendingImport) although
/// the batch it was in failed on the edited key, which keeps its state (fix 2 of review
/// 21b, docs/security.md "Records at rest").
#[test]
fn without_the_index_rows_the_other_key_expires() {
    let (innocent, edited, search) = sweep_after_edit(true, false);
    assert_eq!(search, Ok(1));
    assert_eq!(innocent, Some(STATE_PENDING_IMPORT));
    assert_eq!(edited, Some(STATE_ENABLED));
}

/// Rows of the token database: of record `uid`, and of audit events naming `name`.
fn rows(db: &std::path::Path, uid: &[u8], name: &[u8]) -> (i64, i64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let records = conn
        .query_row("SELECT count(*) FROM objects WHERE uid = ?1", [uid], |r| {
            r.get(0)
        })
        .unwrap();
    let events = conn
        .query_row(
            "SELECT count(*) FROM audit_events WHERE instr(body, ?1) > 0",
            [name],
            |r| r.get(0),
        )
        .unwrap();
    (records, events)
}

/// DEFECT (audit): the sweep records `PurgeWrappingKey` for an import wrapping pair whose
/// private half — the wrapping private key — it did not purge.
///
/// How: GetParametersForImport makes a pair (both records authentic). Offline, a writer
/// without the PIN changes the label of the private half's record. Once the import
/// token expires (24 h), the sweep (`Token::sweep`) keeps the private half (its record
/// fails authentication, fix 1 of review 21b) but purges the authentic public half, and
/// `purge_events`, finding no private half among what it removes, names the pair by its
/// public half — the event meant for "the private half was destroyed before". The trail
/// now says the wrapping key was purged while its private key is still in the token.
///
/// docs/security.md (review 21b): "an import wrapping pair is purged, and
/// `PurgeWrappingKey` recorded, only when its record is authentic"; the audit trail is
/// what the operator trusts the module did (docs/audit.md). A correct module treats the
/// pair as one: it purges and records the pair only when every half still in the store
/// authenticates, and otherwise leaves it and logs the failing uid (or at least records
/// no purge of a pair whose private half it kept).
#[test]
fn the_sweep_audits_the_purge_of_a_pair_whose_private_half_it_kept() {
    let env = TestEnv::new();
    let (ctx, _slot, session) = ready_token(&env);
    let target = create_external(&session, Spec::Aes256, "target");
    let params = get_params(&session, &key_id(&session, target), WRAP_RSAES_OAEP_SHA_256);
    let private = uid_of(&session, params.private);
    let public = uid_of(&session, params.public);
    drop(session);
    let db = env.token_database();
    let mut before = 0;
    let (_ctx, session) = offline(&env, ctx, || {
        edit_plain(&db, &private, |attrs| {
            set_attr(attrs, CKA_LABEL, Value::Bytes(b"renamed offline".to_vec()));
        });
        before = rows(&db, &private, b"PurgeWrappingKey").1;
    });
    set_clock_offset(TOKEN_LIFETIME as i64 + 100);
    let _ = session.find_objects(&[]);
    session.logout().unwrap();
    session
        .login(cryptoki::session::UserType::User, Some(&pin(USER_PIN)))
        .unwrap();
    set_clock_offset(0);
    let (private_left, events) = rows(&db, &private, b"PurgeWrappingKey");
    let (public_left, _) = rows(&db, &public, b"PurgeWrappingKey");
    assert!(
        !(private_left == 1 && events > before),
        "PurgeWrappingKey recorded ({before} -> {events} events) while the wrapping private \
         key's record is still in the token (private {private_left}, public {public_left})",
    );
}
