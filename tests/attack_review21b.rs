//! Review 21b of the object table and its index: records found through the store's index
//! and loaded on demand, authenticated when read, and swept when due. Each test attacks
//! that area through the PKCS#11 interface (or the token file, offline, as a writer
//! without the PIN would); its doc comment says what is wrong, or marks it PASSING
//! (coverage, no defect).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::kms::*;
use common::records::{edit_plain, offline, set_attr, uid_of};
use common::*;
use cryptoki::error::RvError;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;
use kmshsm::object::attr::Value;

const TAMPERED: RvError = RvError::VendorDefined(KMSHSM | 0x07);

/// A private, token AES-256 key labelled `label`, made with C_CreateObject.
fn aes_key(session: &Session, label: &str, material: &[u8]) -> ObjectHandle {
    session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Value(material.to_vec()),
        ])
        .expect("C_CreateObject of an AES-256 key")
}

/// DEFECT: one record of a key whose material has expired, edited offline, makes every
/// later call on the token fail — searches and uses of other, untouched objects included.
///
/// How: a writer of the token file without the PIN changes one plain attribute (the
/// label) of an EXTERNAL key whose material was imported with an expiry. Once the expiry
/// passes, the first call that refreshes the token runs the sweep
/// (`Token::refresh` → `sweep` → `KeyModel::expire`), which reads that key's records,
/// finds one that fails authentication and answers the error; the sweep ends before
/// `end_sweep` moves the next deadline, so every later call sweeps again and fails the
/// same way. `C_FindObjects` for another key's label and `C_Encrypt` with that other key
/// answer `CKR_KMSHSM_RECORD_TAMPERED`, for good.
///
/// docs/security.md, "Records at rest": "A record that fails is never used: the call
/// answers CKR_KMSHSM_RECORD_TAMPERED and the uid is logged" — the call that would use
/// *that* record; the threat table: "no edit of a record goes unnoticed", not that one
/// edited record takes the whole token down (tests/tamper.rs: "nothing else is lost").
/// A correct module logs the tampered record, leaves it out of the sweep (it is never
/// used, and its expiry already refuses every use) and answers the other objects' calls.
#[test]
fn one_tampered_expired_record_makes_every_call_on_the_token_fail() {
    let env = TestEnv::new();
    let (ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    // An innocent key, never touched offline.
    let innocent_material = work.random(32);
    aes_key(&session, "innocent", &innocent_material);
    // An EXTERNAL key whose material expires 100 seconds from now.
    let doomed = create_external(&session, Spec::Aes256, "doomed");
    let material = work.material(Spec::Aes256);
    import_with(
        &session,
        &work,
        doomed,
        WRAP_RSAES_OAEP_SHA_256,
        &material.bytes,
        Some(system_now() + 100),
    )
    .expect("ImportKeyMaterial with an expiry");
    let doomed_uid = uid_of(&session, doomed);
    drop(session);

    let db = env.token_database();
    let (_ctx, session) = offline(&env, ctx, || {
        edit_plain(&db, &doomed_uid, |attrs| {
            set_attr(attrs, CKA_LABEL, Value::Bytes(b"renamed offline".to_vec()));
        });
    });
    // Before the expiry the innocent key is found and used.
    let found = find_by_label(&session, "innocent");
    assert_eq!(found.len(), 1);
    encrypt_with(&session, Spec::Aes256, found[0]).expect("the innocent key encrypts");

    // The doomed key's material expires.
    set_clock_offset(200);
    let search = session.find_objects(&[Attribute::Label(b"innocent".to_vec())]);
    let used = encrypt_with(&session, Spec::Aes256, found[0]);
    let again = session.find_objects(&[Attribute::Label(b"innocent".to_vec())]);
    set_clock_offset(0);
    assert!(
        search.is_ok() && used.is_ok() && again.is_ok(),
        "one tampered record of an expired key took the token down: search {:?}, use {:?}, \
         search again {:?} (tampered = {TAMPERED:?})",
        search.as_ref().map(Vec::len).map_err(|e| e.to_string()),
        used.as_ref().map(|_| ()).map_err(|e| e.to_string()),
        again.as_ref().map(Vec::len).map_err(|e| e.to_string()),
    );
}

/// PASSING (coverage, no defect): a session that is not logged in finds no private object
/// by label, by id, by both, or by class (the index's one-attribute answer and the
/// filtered one), whether the object is cached in the process (found by the user first)
/// or only in the store (a fresh process). PKCS#11 3.0 §4.4: private objects are visible
/// only to the logged-in user.
#[test]
fn a_public_session_finds_no_private_object_cached_or_not() {
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    let material = [7u8; 32];
    let key = aes_key(&session, "private-one", &material);
    session
        .update_attributes(key, &[Attribute::Id(b"id-1".to_vec())])
        .unwrap();
    // Cached: the user found it in this process.
    assert_eq!(find_by_label(&session, "private-one").len(), 1);
    session.logout().unwrap();
    let public = ctx.open_ro_session(slot).unwrap();
    for template in [
        vec![Attribute::Label(b"private-one".to_vec())],
        vec![Attribute::Id(b"id-1".to_vec())],
        vec![
            Attribute::Label(b"private-one".to_vec()),
            Attribute::Id(b"id-1".to_vec()),
        ],
        vec![Attribute::Class(ObjectClass::SECRET_KEY)],
    ] {
        assert!(public.find_objects(&template).unwrap().is_empty());
    }
    // Only in the store: a fresh process.
    drop(public);
    drop(session);
    ctx.finalize().unwrap();
    let ctx = env.load();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let public = ctx.open_ro_session(slot).unwrap();
    assert!(public
        .find_objects(&[Attribute::Label(b"private-one".to_vec())])
        .unwrap()
        .is_empty());
    assert!(public
        .find_objects(&[Attribute::Id(b"id-1".to_vec())])
        .unwrap()
        .is_empty());
}

/// DEFECT: the expiry sweep removes a record that fails authentication, and records the
/// removal in the authenticated audit trail as the module's own act, on the word of
/// attributes a writer without the PIN put there.
///
/// How: offline, the writer adds `CKA_KMSHSM_TOKEN_EXPIRY` (in the past) and
/// `CKA_KMSHSM_IMPORT_TARGET` (a KeyId of their choice) to the plain part of the user's
/// private AES key, and sets the row's `due` column to the past. At the next login the
/// sweep (`Token::sweep`) loads the due record and, judging only its plain attributes,
/// takes it for expired import parameters: `publish` removes it (no `check_record`) and
/// `purge_events` writes a `PurgeWrappingKey` event naming the forged target, sealed
/// under the audit key.
///
/// docs/security.md, "Records at rest": "Whatever a search, a KMS decision or the sweep
/// finds through them is read, checked and judged as above" and "A record that fails is
/// never used"; the audit trail is what the operator trusts the module did. A correct
/// module checks a due record before acting on it (as `Token::entry` does) and leaves a
/// tampered one in place, unused, logging its uid — the user's later use answering
/// `CKR_KMSHSM_RECORD_TAMPERED` — and writes no event for it.
#[test]
fn the_sweep_removes_a_tampered_record_and_audits_a_purge_it_never_made() {
    let env = TestEnv::new();
    let (ctx, _slot, session) = ready_token(&env);
    let victim = aes_key(&session, "victim", &[5u8; 32]);
    let uid = uid_of(&session, victim);
    drop(session);
    let db = env.token_database();
    let audit_rows = |db: &std::path::Path| -> i64 {
        rusqlite::Connection::open(db)
            .unwrap()
            .query_row("SELECT count(*) FROM audit_events", [], |r| r.get(0))
            .unwrap()
    };
    let mut before = 0;
    let (_ctx, session) = offline(&env, ctx, || {
        edit_plain(&db, &uid, |attrs| {
            set_attr(attrs, CKA_KMSHSM_TOKEN_EXPIRY, Value::Ulong(1));
            set_attr(
                attrs,
                CKA_KMSHSM_IMPORT_TARGET,
                Value::Bytes(b"forged-target".to_vec()),
            );
        });
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute("UPDATE objects SET due = 1 WHERE uid = ?1", [&uid])
            .unwrap();
        before = audit_rows(&db);
    });
    let found = session.find_objects(&[Attribute::Label(b"victim".to_vec())]);
    let still_there: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM objects WHERE uid = ?1", [&uid], |r| {
            r.get(0)
        })
        .unwrap();
    let purges: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM audit_events WHERE instr(body, ?1) > 0",
            [b"PurgeWrappingKey".as_slice()],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        still_there == 1 && purges == 0,
        "a record failing authentication was acted on by the sweep: record left {still_there}, \
         PurgeWrappingKey events {purges} (audit rows {before} -> {}), search by its label {:?}",
        audit_rows(&db),
        found.map(|f| f.len()).map_err(|e| e.to_string()),
    );
}
