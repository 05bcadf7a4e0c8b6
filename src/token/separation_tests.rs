//! The separation-of-duties policy sealed into the record-authentication marker
//! (`records::record_auth_marker`, `records::Token::settle_record_format`): once a token
//! is under the policy, no edit of its store without a PIN takes it off after a login
//! (review 19c deleted the metadata row offline), and tokens put under it before the
//! marker covered it get a marker that does at their next login. Each test builds
//! the token through the module, edits the store as an attacker with write access would
//! (rusqlite, no key), and opens it again as a later process configured without the
//! policy would.

use std::sync::Arc;

use super::test_store::{self, marker_covers_the_policy};
use super::*;
use crate::ck::*;
use crate::object::attr::{AttrType, RawAttribute};

const SO_PIN: &[u8] = b"so-pin-1234";
const USER_PIN: &[u8] = b"user-pin-5678";
const SESSION: SessionHandle = SessionHandle::new(1);

/// What a process shares, configured with the policy or without it.
fn shared(dir: &Path, separation_of_duties: bool) -> Arc<Shared> {
    test_store::configured(dir, separation_of_duties, None)
}

/// A token made by a process configured without the policy, with a user PIN.
fn token_without_the_policy(dir: &Path) -> std::path::PathBuf {
    let token = Token::create(
        &crate::store::Backend::Files(dir.to_path_buf()),
        SlotId::new(1),
        "separate01",
        [b' '; LABEL_LEN],
        SO_PIN,
        shared(dir, false),
    )
    .unwrap();
    token.add_session(SESSION, true).unwrap();
    token.login(SESSION, UserKind::So, SO_PIN).unwrap();
    token.init_pin(true, USER_PIN).unwrap();
    token.logout().unwrap();
    token.remove_session(SESSION);
    crate::store::Backend::file_of(dir, &token.serial)
}

/// The token at `path` as a new process configured so opens it, with the user logged in.
fn logged_in(path: &Path, shared: Arc<Shared>) -> Token {
    let token = Token::open(path, shared).unwrap();
    token.add_session(SESSION, true).unwrap();
    token.login(SESSION, UserKind::User, USER_PIN).unwrap();
    token
}

fn row_stored(token: &Token) -> bool {
    let stored = token.store.read(0, 0, Scope::Changes).unwrap();
    stored.meta.contains_key(META_SEPARATION_OF_DUTIES)
}

/// Deletes a metadata row from the token file, as a writer without a PIN can.
fn delete_meta(path: &Path, name: &str) {
    let db = rusqlite::Connection::open(path).unwrap();
    let n = db
        .execute("DELETE FROM meta WHERE name = ?1", [name])
        .unwrap();
    assert_eq!(n, 1, "{name} was there to delete");
}

#[test]
fn a_login_under_the_policy_seals_it_and_a_deleted_row_lifts_nothing_after_a_login() {
    let dir = tempfile::tempdir().unwrap();
    let path = token_without_the_policy(dir.path());
    {
        let plain = logged_in(&path, shared(dir.path(), false));
        assert!(!plain.separating_duties().unwrap(), "control: no policy");
        assert_eq!(marker_covers_the_policy(&plain), Some(false));
    }
    // A process configured with the policy logs in: the token is put under it.
    {
        let configured = logged_in(&path, shared(dir.path(), true));
        assert!(row_stored(&configured));
        assert_eq!(marker_covers_the_policy(&configured), Some(true));
    }
    // Offline, no PIN: the row goes.
    delete_meta(&path, META_SEPARATION_OF_DUTIES);
    let later = Token::open(&path, shared(dir.path(), false)).unwrap();
    assert!(
        !later.separating_duties().unwrap(),
        "before a login nothing can tell (docs/security.md, Known limits)"
    );
    later.add_session(SESSION, true).unwrap();
    later.login(SESSION, UserKind::User, USER_PIN).unwrap();
    assert!(
        later.separating_duties().unwrap(),
        "the login found the policy under the master key: it stays"
    );
    assert!(row_stored(&later), "the row is written again");
}

#[test]
fn the_sos_login_finds_the_policy_a_users_login_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let path = token_without_the_policy(dir.path());
    drop(logged_in(&path, shared(dir.path(), true)));
    delete_meta(&path, META_SEPARATION_OF_DUTIES);
    // The SO (configured without the policy) resets the user's PIN: the token stays
    // under the policy, so the new user's keys are judged by it.
    let token = Token::open(&path, shared(dir.path(), false)).unwrap();
    token.add_session(SESSION, true).unwrap();
    token.login(SESSION, UserKind::So, SO_PIN).unwrap();
    assert!(token.separating_duties().unwrap());
    token.init_pin(true, b"a-new-user-pin").unwrap();
    token.logout().unwrap();
    assert!(row_stored(&token));
    assert!(token.separating_duties().unwrap());
}

#[test]
fn a_row_deleted_while_a_process_has_the_token_open_lifts_nothing_there() {
    let dir = tempfile::tempdir().unwrap();
    let path = token_without_the_policy(dir.path());
    drop(logged_in(&path, shared(dir.path(), true)));
    let running = Token::open(&path, shared(dir.path(), false)).unwrap();
    running.add_session(SESSION, true).unwrap();
    assert!(running.separating_duties().unwrap(), "the row says so");
    delete_meta(&path, META_SEPARATION_OF_DUTIES);
    // Another process commits something (not logged in: a login would write the row
    // again), so that this one reads the store again.
    let other = Token::open(&path, shared(dir.path(), false)).unwrap();
    other
        .commit_in(
            &[None],
            vec![Change::PutMeta("noise".into(), b"1".to_vec())],
        )
        .unwrap();
    assert!(!row_stored(&running), "the row is gone from the store");
    assert!(
        running.separating_duties().unwrap(),
        "a process that has seen the policy keeps it while the token is the same"
    );
}

#[test]
fn a_token_under_the_policy_before_the_marker_covered_it_gets_it_at_the_next_login() {
    let dir = tempfile::tempdir().unwrap();
    let path = token_without_the_policy(dir.path());
    {
        // What an older build left: the row, and a marker that does not cover it.
        let token = Token::open(&path, shared(dir.path(), false)).unwrap();
        token.commit_in(&[None], vec![separation_marker()]).unwrap();
    }
    let user = logged_in(&path, shared(dir.path(), false));
    assert_eq!(marker_covers_the_policy(&user), Some(true));
}

#[test]
fn a_token_made_under_the_policy_is_sealed_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let token = Token::create(
        &crate::store::Backend::Files(dir.path().to_path_buf()),
        SlotId::new(2),
        "separate02",
        [b' '; LABEL_LEN],
        SO_PIN,
        shared(dir.path(), true),
    )
    .unwrap();
    token.add_session(SESSION, true).unwrap();
    token.login(SESSION, UserKind::So, SO_PIN).unwrap();
    assert_eq!(marker_covers_the_policy(&token), Some(true));
}

#[test]
fn a_login_refuses_a_token_whose_marker_is_missing_or_not_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = token_without_the_policy(dir.path());
    drop(logged_in(&path, shared(dir.path(), true)));
    delete_meta(&path, META_RECORD_AUTH);
    login_is_refused_as_tampered(&path, shared(dir.path(), false));
    // Another token's marker (made by its own master key) is not this one's.
    let other_dir = tempfile::tempdir().unwrap();
    let other_path = token_without_the_policy(other_dir.path());
    drop(logged_in(&other_path, shared(other_dir.path(), false)));
    let other_marker: Vec<u8> = rusqlite::Connection::open(&other_path)
        .unwrap()
        .query_row(
            "SELECT value FROM meta WHERE name = ?1",
            [META_RECORD_AUTH],
            |row| row.get(0),
        )
        .unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "INSERT INTO meta (name, value) VALUES (?1, ?2)",
            rusqlite::params![META_RECORD_AUTH, other_marker],
        )
        .unwrap();
    login_is_refused_as_tampered(&path, shared(dir.path(), false));
}

/// A new process's user login into the token at `path` is refused as tampered, leaves
/// no one logged in, counts no wrong PIN, and is recorded in the audit trail as one
/// refused login; so is a `C_SetPIN` refused for the same reason.
fn login_is_refused_as_tampered(path: &Path, shared: Arc<Shared>) {
    use crate::kms::audit::{AuditEvent, Operation, Outcome};
    let token = Token::open(path, shared).unwrap();
    token.add_session(SESSION, true).unwrap();
    let events = |token: &Token| -> Vec<AuditEvent> {
        let log = token.store.audit_log().unwrap();
        let decoded = log.events.iter().map(|e| AuditEvent::decode(&e.body));
        decoded.map(Option::unwrap).collect()
    };
    let before = events(&token).len();
    let refused = token.login(SESSION, UserKind::User, USER_PIN);
    assert!(
        matches!(refused, Err(Error::Store(StoreError::Tampered))),
        "{refused:?}"
    );
    assert_eq!(token.logged_in(), LoggedIn::Nobody);
    let after = events(&token);
    assert_eq!(after.len(), before + 1, "one event for the refusal");
    let refusal = &after[before];
    assert_eq!(refusal.event_name, Operation::Login);
    assert_eq!(refusal.outcome, Outcome::Refused);
    assert_eq!(refusal.error_code.as_deref(), Some("RecordTampered"));
    assert_eq!(refusal.role.as_deref(), Some("User"));
    assert_eq!(refusal.pin_failures, None, "no wrong PIN to count");
    let stored = token.store.read(0, 0, Scope::Changes).unwrap();
    assert_eq!(
        stored.pins[&PinRole::User].failures,
        0,
        "no wrong PIN counted"
    );

    let refused = token.set_pin(true, USER_PIN, b"another-pin-9999");
    assert!(
        matches!(refused, Err(Error::Store(StoreError::Tampered))),
        "{refused:?}"
    );
    let last = events(&token);
    assert_eq!(last.len(), before + 2, "one event for the refused C_SetPIN");
    assert_eq!(last[before + 1].event_name, Operation::SetPin);
    assert_eq!(
        last[before + 1].error_code.as_deref(),
        Some("RecordTampered")
    );
}

/// A process configured without the policy, with the user logged in, whose next call
/// that reaches `point` (after its judgement of a write, before the write's commit)
/// first lets another process configured with the policy log in: the token is put under
/// the policy between the judgement and the commit.
fn sealed_elsewhere_at(path: &Path, dir: &Path, point: &'static str) -> Token {
    let plain = logged_in(path, shared(dir, false));
    assert!(!plain.separating_duties().unwrap(), "control: no policy");
    let (path, dir) = (path.to_path_buf(), dir.to_path_buf());
    plain.test_steps.lock().push((
        point,
        Box::new(move |_: &Token| drop(logged_in(&path, shared(&dir, true)))),
    ));
    plain
}

/// An AES token key labelled `label` whose duties are `flags`, the others off.
fn aes_key(label: &[u8], flags: &[AttrType]) -> Vec<RawAttribute> {
    let mut template = vec![
        test_store::ulong(CKA_CLASS, CKO_SECRET_KEY.raw()),
        test_store::ulong(CKA_KEY_TYPE, CKK_AES.raw()),
        test_store::bytes(CKA_VALUE, &[7; 32]),
        test_store::bytes(CKA_TOKEN, &[1]),
        test_store::bytes(CKA_LABEL, label),
    ];
    for duty in [CKA_WRAP, CKA_UNWRAP, CKA_ENCRYPT, CKA_DECRYPT] {
        let on = u8::from(flags.contains(&duty));
        template.push(test_store::bytes(duty, &[on]));
    }
    template
}

/// The duty `ty` of the stored key labelled `label`, as a new process configured without
/// the policy reads it; `None` when the store holds no such key.
fn stored_duty(path: &Path, dir: &Path, label: &[u8], ty: AttrType) -> Option<bool> {
    let token = logged_in(path, shared(dir, false));
    let found = token.find(&[test_store::bytes(CKA_LABEL, label)]).unwrap();
    let handle = match found[..] {
        [] => return None,
        [one] => one,
        _ => panic!("two keys labelled {label:?}"),
    };
    let read = token.attributes(handle, &[ty]).unwrap();
    Some(matches!(&read[..], [crate::object::Read::Value(v)] if v.as_slice() == [1]))
}

#[test]
fn a_key_judged_before_another_process_sealed_the_policy_is_judged_at_its_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = token_without_the_policy(dir.path());
    let plain = logged_in(&path, shared(dir.path(), false));
    let both = [CKA_WRAP, CKA_DECRYPT];
    plain
        .create_object(test_store::CALLER, &aes_key(b"before", &both))
        .expect("control: without the policy a key may wrap and decrypt");
    drop(plain);

    let racing = sealed_elsewhere_at(&path, dir.path(), "inserting");
    let made = racing.create_object(test_store::CALLER, &aes_key(b"racing", &both));
    assert!(matches!(made, Err(Error::TemplateInconsistent)), "{made:?}");
    assert!(racing.separating_duties().unwrap());
    assert_eq!(stored_duty(&path, dir.path(), b"racing", CKA_WRAP), None);

    // A key the policy lets be made is made whatever happened meanwhile.
    let dir = tempfile::tempdir().unwrap();
    let path = token_without_the_policy(dir.path());
    let racing = sealed_elsewhere_at(&path, dir.path(), "inserting");
    racing
        .create_object(test_store::CALLER, &aes_key(b"plain", &[CKA_DECRYPT]))
        .expect("a key that only decrypts");
    assert_eq!(
        stored_duty(&path, dir.path(), b"plain", CKA_DECRYPT),
        Some(true)
    );
}

#[test]
fn a_copy_judged_before_another_process_sealed_the_policy_is_judged_at_its_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = token_without_the_policy(dir.path());
    let racing = sealed_elsewhere_at(&path, dir.path(), "insert");
    // Two steps: the key made first (the armed step runs at its insertion), so take
    // the step back and arm it again for the copy.
    let step = racing.test_steps.lock().pop().unwrap();
    let wraps = racing
        .create_object(test_store::CALLER, &aes_key(b"wraps", &[CKA_WRAP]))
        .unwrap();
    racing.test_steps.lock().push(step);
    let copy = racing.copy_object(
        test_store::CALLER,
        wraps,
        &[
            test_store::bytes(CKA_LABEL, b"copy"),
            test_store::bytes(CKA_DECRYPT, &[1]),
        ],
    );
    assert!(matches!(copy, Err(Error::TemplateInconsistent)), "{copy:?}");
    assert_eq!(stored_duty(&path, dir.path(), b"copy", CKA_DECRYPT), None);
}

#[test]
fn a_change_judged_before_another_process_sealed_the_policy_is_judged_at_its_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = token_without_the_policy(dir.path());
    let racing = sealed_elsewhere_at(&path, dir.path(), "changing");
    let wraps = racing
        .create_object(test_store::CALLER, &aes_key(b"wraps", &[CKA_WRAP]))
        .unwrap();
    let changed = racing.set_attributes(
        test_store::CALLER,
        wraps,
        &[test_store::bytes(CKA_DECRYPT, &[1])],
    );
    assert!(
        matches!(changed, Err(Error::ActionProhibited)),
        "{changed:?}"
    );
    assert_eq!(
        stored_duty(&path, dir.path(), b"wraps", CKA_DECRYPT),
        Some(false)
    );
    assert_eq!(
        stored_duty(&path, dir.path(), b"wraps", CKA_WRAP),
        Some(true)
    );
}

#[test]
fn a_derived_copy_judged_before_another_process_sealed_the_policy_is_judged_at_its_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = token_without_the_policy(dir.path());
    let racing = sealed_elsewhere_at(&path, dir.path(), "inserting");
    let step = racing.test_steps.lock().pop().unwrap();
    let mut base = aes_key(b"base", &[CKA_WRAP]);
    base.push(test_store::bytes(CKA_DERIVE, &[1]));
    let base = racing.create_object(test_store::CALLER, &base).unwrap();
    racing.test_steps.lock().push(step);
    // A concatenation holds the base key's bits: judged as its copy, it may not decrypt
    // what the base key wraps.
    let mech = crate::mechanism::MechanismArg {
        kind: CKM_CONCATENATE_BASE_AND_DATA,
        param: crate::mechanism::Param::Bytes(vec![1, 2, 3, 4]),
    };
    let derived = racing.derive_key(
        test_store::CALLER,
        &mech,
        base,
        &[
            test_store::ulong(CKA_CLASS, CKO_SECRET_KEY.raw()),
            test_store::ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET.raw()),
            test_store::bytes(CKA_TOKEN, &[1]),
            test_store::bytes(CKA_LABEL, b"derived"),
            test_store::bytes(CKA_DECRYPT, &[1]),
        ],
    );
    assert!(
        matches!(derived, Err(Error::TemplateInconsistent)),
        "{derived:?}"
    );
    assert_eq!(
        stored_duty(&path, dir.path(), b"derived", CKA_DECRYPT),
        None
    );
}
