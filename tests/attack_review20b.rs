//! An attacker's review (branch attack20b) of 6784797: GetParametersForImport judged
//! again on the target's current record in the transaction that stores the wrapping pair
//! (`Token::make_import_parameters`, `Token::insert_all_judged`), here against a writer of
//! the token file who holds no PIN (docs/security.md: the threat table's "Holder of a
//! copy of the token file" row, "Records at rest"), and the GetParametersForImport and
//! ImportKeyMaterial flow around it (the last two tests: defects older than the change,
//! in the cached judgements and refusals it leaves as they were). Each test asserts what
//! the project's documents promise and fails against the module as reviewed (592502e);
//! its doc comment says what is wrong and what a correct module answers.
//!
//! Run with `cargo build --lib --bins && cargo nextest run --test attack_review20b`.

#![allow(clippy::unwrap_used, unreachable_pub, dead_code)]
// test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them
// CK_ULONG is u64 here and u32 on other targets, so the casts stay.
#![allow(clippy::unnecessary_cast)]

mod common;

use common::kms::*;
use common::records::{edit_plain, offline, set_attr, uid_of};
use common::*;
use cryptoki::error::RvError;
use cryptoki::session::Session;
use cryptoki_sys::*;
use kmshsm::object::attr::Value;

const TAMPERED: RvError = RvError::VendorDefined(KMSHSM | 0x07);
const ALG: u64 = WRAP_RSAES_OAEP_SHA_256;

/// The import wrapping objects the token holds for KeyId `id`.
fn pairs_for(session: &Session, id: &str) -> usize {
    session
        .find_objects(&[vendor_bytes(CKA_KMSHSM_IMPORT_TARGET, id.as_bytes())])
        .unwrap()
        .len()
}

/// Defect: the in-transaction judgement is skipped on the word of an unauthenticated
/// attribute. `make_import_parameters` re-reads the target in the pair's transaction only
/// when `main.is_token()`, which is the record's own plain `CKA_TOKEN` attribute, not
/// where the object came from (the table holds it as `Owner::Token`). A writer of the
/// token file without a PIN takes an EXTERNAL key whose deletion the owner scheduled,
/// and edits its record offline: KeyState back to PendingImport and `CKA_TOKEN` false.
/// The edit breaks the record's seal, but nothing checks it: the cached judgement
/// (`target`) reads the table without `check_record`, and the transaction's judgement
/// (which checks the seal, `is_acceptable`) is not made, the key "being a session
/// object". A wrapping pair is issued, and `GetParametersForImport` recorded as a
/// success in the authenticated trail, for a key pending deletion. The control key,
/// edited the same way but for `CKA_TOKEN`, is refused as tampered by the transaction's
/// judgement, as the change intends.
///
/// Expected (docs/security.md, "Records at rest": from the login on every object is
/// checked before any use, a record that fails is never used and the call answers
/// `CKR_KMSHSM_RECORD_TAMPERED`; docs/key-model.md, "Exactly once": a key whose deletion
/// was scheduled gets no pair): both requests answer `CKR_KMSHSM_RECORD_TAMPERED` and
/// no pair is stored for either key. Actual: the second request succeeds.
#[test]
fn a_target_record_edited_to_call_itself_a_session_object_is_judged_in_the_transaction() {
    let env = TestEnv::new();
    let (ctx, _slot, session) = ready_token(&env);
    let control = create_external(&session, Spec::Aes256, "control");
    let forged = create_external(&session, Spec::Aes256, "forged");
    let ids = [key_id(&session, control), key_id(&session, forged)];
    let uids = [uid_of(&session, control), uid_of(&session, forged)];
    for key in [control, forged] {
        set_state(&session, key, STATE_PENDING_DELETION).expect("ScheduleKeyDeletion");
    }
    for id in &ids {
        assert_eq!(
            rv(try_get_params(&session, id, ALG)),
            CKR_KMSHSM_INCORRECT_KEY_STATE,
            "a key pending deletion gets no pair"
        );
    }
    drop(session);
    let db = env.token_database();
    let (_ctx, session) = offline(&env, ctx, || {
        edit_plain(&db, &uids[0], |a| {
            set_attr(a, CKA_KMSHSM_KEY_STATE, Value::Ulong(STATE_PENDING_IMPORT));
        });
        edit_plain(&db, &uids[1], |a| {
            set_attr(a, CKA_KMSHSM_KEY_STATE, Value::Ulong(STATE_PENDING_IMPORT));
            set_attr(a, CKA_TOKEN, Value::Bool(false));
        });
    });
    assert_eq!(
        rv(try_get_params(&session, &ids[0], ALG)),
        TAMPERED,
        "control: a target whose record fails authentication is refused in the transaction"
    );
    assert_eq!(pairs_for(&session, &ids[0]), 0);
    let asked = try_get_params(&session, &ids[1], ALG);
    let stored = pairs_for(&session, &ids[1]);
    assert!(
        matches!(&asked, Err(cryptoki::error::Error::Pkcs11(rv, _)) if *rv == TAMPERED)
            && stored == 0,
        "a target whose record was edited offline (state PendingImport, CKA_TOKEN false) \
         got a wrapping pair: {asked:?}, {stored} pair objects stored for it"
    );
}

/// Defect: a refusal judged on a record that fails authentication is answered and
/// recorded as a key-model refusal. The cached judgement of GetParametersForImport
/// (`refused_on_current(|| target(..); check_import_parameters_on(..))`) reads the
/// target from the table without `check_record`; a refusal there is final (only an
/// acceptance is judged again in the transaction) and `generate_import_parameters`
/// writes it into the audit trail. A writer of the token file without a PIN edits an
/// EXTERNAL PendingImport key's record offline to say PendingDeletion: the owner's
/// GetParametersForImport is refused with `CKR_KMSHSM_INCORRECT_KEY_STATE`, and the
/// authenticated trail gains a Refused `GetParametersForImport` (IncorrectKeyState) for
/// the key, as if the owner's key had been scheduled for deletion. Every other use of
/// that record after the login (`C_GetAttributeValue`, a state change) answers
/// `CKR_KMSHSM_RECORD_TAMPERED`.
///
/// Expected (docs/security.md, "Records at rest": every object is checked before any
/// use; a record that fails is never used and the call answers
/// `CKR_KMSHSM_RECORD_TAMPERED`; "whatever a KMS decision finds is read, checked and
/// judged"): `CKR_KMSHSM_RECORD_TAMPERED`, and no key-model refusal recorded for the key.
/// Actual: `CKR_KMSHSM_INCORRECT_KEY_STATE`, recorded in the trail.
#[test]
fn a_refusal_on_a_target_record_edited_offline_is_not_a_key_model_refusal() {
    let env = TestEnv::new();
    let (ctx, _slot, session) = ready_token(&env);
    let key = create_external(&session, Spec::Aes256, "edited");
    let id = key_id(&session, key);
    let uid = uid_of(&session, key);
    drop(session);
    let db = env.token_database();
    let (_ctx, session) = offline(&env, ctx, || {
        edit_plain(&db, &uid, |a| {
            set_attr(
                a,
                CKA_KMSHSM_KEY_STATE,
                Value::Ulong(STATE_PENDING_DELETION),
            );
        });
    });
    let asked = rv(try_get_params(&session, &id, ALG));
    let refusals: Vec<serde_json::Value> = common::audit::events(&["--key-id", &id])
        .into_iter()
        .filter(|e| e["EventName"] == "GetParametersForImport" && e["Outcome"] == "Refused")
        .collect();
    // Any other use of the edited record is refused as tampered.
    let edited = find_by_label(&session, "edited");
    assert_eq!(edited.len(), 1);
    assert_eq!(
        rv(session.get_attributes(edited[0], &[cryptoki::object::AttributeType::Label])),
        TAMPERED
    );
    assert!(
        asked == TAMPERED && refusals.is_empty(),
        "GetParametersForImport on a record edited offline answered {asked:?} and the \
         trail records {refusals:?}"
    );
}

/// The record attribute holding a key's material fingerprint
/// (`KMSHSM_INTERNAL_MATERIAL_FINGERPRINT`, include/kmshsm.h).
const MATERIAL_FINGERPRINT: CK_ATTRIBUTE_TYPE = KMSHSM | 0x0F01;

/// The attribute `ty` of the record `uid` in the token database `db`, as stored.
fn stored_attr(db: &std::path::Path, uid: &[u8], ty: CK_ATTRIBUTE_TYPE) -> Value {
    let conn = rusqlite::Connection::open(db).unwrap();
    let plain: Vec<u8> = conn
        .query_row("SELECT plain FROM objects WHERE uid = ?1", [uid], |r| {
            r.get(0)
        })
        .unwrap();
    kmshsm::object::attr::decode(&plain)
        .unwrap()
        .into_iter()
        .find(|(t, _)| t.get() == ty)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("attribute {ty:#x} not in the record"))
}

/// Defect: ImportKeyMaterial's refusal is decided on, and recorded from, a target record
/// that fails authentication. `decide_on_key` judges the records the transaction reads
/// (`Object::from_record`) without checking their seal — only a write checks it
/// (`to_record`), and a refusal writes nothing — and `import_material` names the refused
/// event's MaterialId after the cached record (`import_target`), unchecked too. A
/// writer of the token file without a PIN copies key B's material fingerprint into key
/// A's record, after the owner fetched import parameters for A: the owner's re-import of
/// A's own material is refused with `CKR_KMSHSM_INVALID_KEY_MATERIAL`, and the
/// authenticated trail records that refusal with **B's** MaterialId, saying key A is
/// bound to B's material (docs/audit.md: "A refused import carries the MaterialId of the
/// material the key is bound to").
///
/// Expected (docs/security.md, "Records at rest": whatever a KMS decision finds is read,
/// checked and judged; a record that fails is never used, the call answers
/// `CKR_KMSHSM_RECORD_TAMPERED`): `CKR_KMSHSM_RECORD_TAMPERED`, and no refused
/// ImportKeyMaterial of key A naming B's MaterialId. Actual: `INVALID_KEY_MATERIAL`,
/// recorded with B's MaterialId.
#[test]
fn a_refused_import_into_a_target_record_edited_offline_names_no_forged_material() {
    let env = TestEnv::new();
    let (ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let a = create_external(&session, Spec::Aes256, "a");
    let b = create_external(&session, Spec::Aes256, "b");
    let (a_id, b_id) = (key_id(&session, a), key_id(&session, b));
    let a_uid = uid_of(&session, a);
    let b_uid = uid_of(&session, b);
    let material_a = work.random(32);
    import_with(&session, &work, a, ALG, &material_a, None).expect("A's first import");
    import_with(&session, &work, b, ALG, &work.random(32), None).expect("B's first import");
    // The owner's parameters for importing A's material again.
    let params = get_params(&session, &a_id, ALG);
    let wrapped = work.wrap(ALG, &params.spki, &material_a);
    drop(session);
    let db = env.token_database();
    let (_ctx, session) = offline(&env, ctx, || {
        let b_bound = stored_attr(&db, &b_uid, MATERIAL_FINGERPRINT);
        edit_plain(&db, &a_uid, |attrs| {
            set_attr(attrs, MATERIAL_FINGERPRINT, b_bound);
        });
    });
    let unwrapping = session
        .find_objects(&[
            vendor_bytes(CKA_KMSHSM_IMPORT_TARGET, a_id.as_bytes()),
            cryptoki::object::Attribute::Class(cryptoki::object::ObjectClass::PRIVATE_KEY),
        ])
        .unwrap()
        .into_iter()
        .filter(|h| {
            read_bytes(&session, *h, CKA_KMSHSM_IMPORT_TOKEN).as_ref() == Some(&params.token)
        })
        .collect::<Vec<_>>();
    assert_eq!(unwrapping.len(), 1, "the second pair's private half");
    let asked = unwrap_raw(
        &session,
        &mechanism_of(ALG),
        unwrapping[0],
        &wrapped,
        &import_template(&params.token, None),
    );
    let b_material = common::audit::events(&["--key-id", &b_id])
        .into_iter()
        .find(|e| e["EventName"] == "ImportKeyMaterial" && e["Outcome"] == "Success")
        .expect("B's import recorded")["MaterialId"]
        .clone();
    let forged: Vec<serde_json::Value> = common::audit::events(&["--key-id", &a_id])
        .into_iter()
        .filter(|e| e["EventName"] == "ImportKeyMaterial" && e["MaterialId"] == b_material)
        .collect();
    let answer = asked.as_ref().map_err(|e| format!("{e}"));
    assert!(
        matches!(&asked, Err(cryptoki::error::Error::Pkcs11(rv, _)) if *rv == TAMPERED)
            && forged.is_empty(),
        "ImportKeyMaterial into a record edited offline answered {answer:?}; the trail \
         names B's material for key A: {forged:?}"
    );
}
