//! Review 21b of the object table and its index: records found through the store's index
//! and loaded on demand, authenticated when read, and swept when due. Each test attacks
//! that area through the PKCS#11 interface (or the token file, offline, as a writer
//! without the PIN would); its doc comment says what is wrong, or marks it PASSING
//! (coverage, no defect).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::kms::*;
use common::records::{edit_plain, set_attr, uid_of};
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

/// Releases the token for an offline edit, then loads the module and logs in again.
fn offline(
    env: &TestEnv,
    ctx: cryptoki::context::Pkcs11,
    edit: impl FnOnce(),
) -> (cryptoki::context::Pkcs11, Session) {
    ctx.finalize().unwrap();
    edit();
    let ctx = env.load();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let session = user_session(&ctx, slot);
    (ctx, session)
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

/// PASSING (coverage, no defect): a lookup row deleted offline hides a private key from a
/// search only until the record is rewritten, and a session that is not logged in learns
/// nothing from the search: it finds no private object by label or id, whether the
/// object is cached in the process (found by the user first) or only in the store.
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
