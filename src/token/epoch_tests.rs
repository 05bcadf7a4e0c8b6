//! Re-initialisation by another process at chosen moments: a store whose calls run a
//! test's step when armed (`test_store::TestStore`) lets another token on the same file (another
//! process) re-initialise the token exactly between two steps of this one, where the
//! real race would need luck. Each test proves that nothing decided on the old token
//! reaches the new one (`Token::commit_decided`, docs/architecture.md).

use std::sync::mpsc;
use std::sync::Arc;

use super::test_store::{created_then_wrapped, At, StoreHooks, SO_PIN};
use super::*;
use crate::ids::{SessionHandle, SlotId};

/// A pause a step makes: it says so on `paused` and waits for `resume`.
fn pause() -> (impl FnOnce() + Send, mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (paused_tx, paused_rx) = mpsc::channel();
    let (resume_tx, resume_rx) = mpsc::channel::<()>();
    let step = move || {
        paused_tx.send(()).expect("the test waits");
        resume_rx.recv().expect("the test resumes");
    };
    (step, paused_rx, resume_tx)
}

/// A token in `dir` (SO PIN `SO_PIN`) as this process sees it, through a `TestStore`,
/// and as another process sees it; and the file.
fn two_views(dir: &std::path::Path, serial: &str) -> (Arc<Token>, StoreHooks, Arc<Token>) {
    let (here, hooks, path) = created_then_wrapped(dir, serial, &shared_for_tests(dir));
    let elsewhere = Token::open(&path, shared_for_tests(dir)).expect("the other process's token");
    (Arc::new(here), hooks, Arc::new(elsewhere))
}

/// Opens session 1 on `here`, gives the token a user PIN and logs the user in.
fn log_in_as_user(here: &Token) {
    let user_pin = b"user-pin-5678";
    here.add_session(SessionHandle::new(1), true)
        .expect("session");
    here.login(SessionHandle::new(1), UserKind::So, SO_PIN)
        .expect("SO login");
    here.init_pin(true, user_pin).expect("user PIN");
    here.logout().expect("logout");
    here.login(SessionHandle::new(1), UserKind::User, user_pin)
        .expect("user login");
}

/// The other process re-initialises the token (it has no session open).
fn reinitialise(elsewhere: &Token) {
    elsewhere
        .reinitialize(SO_PIN, [b'n'; LABEL_LEN])
        .expect("re-initialised elsewhere");
}

/// A fingerprint of the master key a token is logged in with (never the key).
fn master_probe(token: &Token) -> Option<[u8; 32]> {
    token.master().map(|m| *m.derive(b"kmshsm test probe"))
}

#[test]
fn a_late_read_of_the_old_token_does_not_put_its_pin_records_back_under_a_login() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (here, hooks, elsewhere) = two_views(dir.path(), "epoch0001");
    here.add_session(SessionHandle::new(1), true)
        .expect("session");
    // Thread A reads the old token and is held before it applies the read.
    let (step, a_paused, a_resume) = pause();
    hooks.arm(At::Read, step);
    let reader = {
        let here = Arc::clone(&here);
        std::thread::spawn(move || here.sync())
    };
    a_paused.recv().expect("A's read paused");
    reinitialise(&elsewhere);
    // Another thread sees the new token.
    here.sync().expect("sync");
    // A login is held right after its own read is applied, before it reads the PIN
    // record; A's old read is applied meanwhile.
    let (step, l_paused, l_resume) = pause();
    hooks.arm(At::Applied, step);
    let login = {
        let here = Arc::clone(&here);
        std::thread::spawn(move || here.login(SessionHandle::new(1), UserKind::So, SO_PIN))
    };
    l_paused.recv().expect("the login paused");
    a_resume.send(()).expect("resume A");
    reader.join().expect("A").expect("A's sync");
    l_resume.send(()).expect("resume the login");
    let login = login.join().expect("login thread");

    elsewhere
        .add_session(SessionHandle::new(1), true)
        .expect("session");
    elsewhere
        .login(SessionHandle::new(1), UserKind::So, SO_PIN)
        .expect("login to the new token elsewhere");
    match login {
        Ok(()) => assert!(
            master_probe(&here) == master_probe(&elsewhere),
            "a login to the new token holds the old token's master key"
        ),
        Err(e) => assert!(matches!(e, Error::TokenReinitialized), "{e:?}"),
    }
}

#[test]
fn a_right_pin_of_the_old_token_does_not_reset_the_new_tokens_failure_count() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (here, hooks, elsewhere) = two_views(dir.path(), "epoch0002");
    here.add_session(SessionHandle::new(1), true)
        .expect("session");
    // Between this login's check of the PIN and its settling, the other process
    // re-initialises the token and then tries a wrong SO PIN on the new one.
    let other = Arc::clone(&elsewhere);
    hooks.arm(At::Settle, move || {
        reinitialise(&other);
        other
            .add_session(SessionHandle::new(1), true)
            .expect("session");
        let wrong = other.login(SessionHandle::new(1), UserKind::So, b"wrong-pin-0000");
        assert!(matches!(wrong, Err(Error::PinIncorrect)), "{wrong:?}");
        other.remove_session(SessionHandle::new(1));
    });
    let login = here.login(SessionHandle::new(1), UserKind::So, SO_PIN);
    assert!(matches!(login, Err(Error::TokenReinitialized)), "{login:?}");
    assert_eq!(
        elsewhere.status().expect("status").so_failures,
        1,
        "the new token's failure count was reset by a PIN of the old one"
    );
}

#[test]
fn an_so_login_to_a_legacy_token_does_not_write_its_pin_limit_into_a_new_token() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (here, _hooks, _) = two_views(dir.path(), "epoch0003");
    let path = crate::store::Backend::file_of(dir.path(), "epoch0003");
    drop(here);
    // A token made before its lockout limit was stored.
    let db = rusqlite::Connection::open(&path).expect("database");
    db.execute("DELETE FROM meta WHERE name = ?1", [META_MAX_PIN_FAILURES])
        .expect("delete");
    drop(db);
    let here = Token::open(&path, shared_for_tests(dir.path())).expect("this process's token");
    // The other process re-initialises it with a limit of 3, and another thread here sees
    // the new token, just before this SO login writes the legacy limit.
    let mut config = (*shared_for_tests(dir.path()).config).clone();
    config.max_pin_failures = 3;
    let elsewhere = Token::open(
        &path,
        Arc::new(Shared {
            config: Arc::new(config),
            handles: Default::default(),
            clock: clock::module_clock(),
        }),
    )
    .expect("the other process's token");
    here.test_steps.lock().push((
        "settle_pin_limit",
        Box::new(move |here: &Token| {
            reinitialise(&elsewhere);
            here.sync().expect("sync");
        }),
    ));
    here.add_session(SessionHandle::new(1), true)
        .expect("session");
    let login = here.login(SessionHandle::new(1), UserKind::So, SO_PIN);
    assert!(matches!(login, Err(Error::TokenReinitialized)), "{login:?}");
    let meta = here.store.read(0, 0, Scope::Changes).expect("read").meta;
    assert_eq!(
        meta.get(META_MAX_PIN_FAILURES).map(Vec::as_slice),
        Some(&b"3"[..]),
        "the new token's limit was overwritten by the old token's login"
    );
}

use crate::ck::*;
use crate::object::attr::{RawAttribute, RawValue};
use zeroize::Zeroizing;

fn raw(ty: crate::object::attr::AttrType, value: &[u8]) -> RawAttribute {
    RawAttribute {
        ty,
        value: RawValue::Bytes(Zeroizing::new(value.to_vec())),
    }
}

fn ulong(ty: crate::object::attr::AttrType, v: u64) -> RawAttribute {
    raw(ty, &(v as crate::ck::CK_ULONG).to_ne_bytes())
}

const CALLER: Caller = Caller {
    session: SessionHandle::new(1),
    rw: true,
};

/// Arms a step at `point` of `token`'s next call that reaches it: the other process
/// re-initialises the token, and another thread here sees the new token.
fn reinitialised_at(token: &Token, point: &'static str, elsewhere: Arc<Token>) {
    token.test_steps.lock().push((
        point,
        Box::new(move |here: &Token| {
            reinitialise(&elsewhere);
            here.sync().expect("sync");
        }),
    ));
}

/// How many objects the token's store holds now.
fn stored_objects(token: &Token) -> usize {
    token
        .store
        .read(0, 0, Scope::All)
        .expect("read")
        .objects
        .len()
}

#[test]
fn a_session_copy_of_an_old_token_object_is_not_kept_nor_copied_into_the_new_token() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (here, _hooks, elsewhere) = two_views(dir.path(), "epoch0004");
    here.add_session(SessionHandle::new(1), true)
        .expect("session");
    let old = here
        .create_object(
            CALLER,
            &[
                ulong(CKA_CLASS, CKO_DATA.raw()),
                raw(CKA_TOKEN, &[1]),
                raw(CKA_LABEL, b"old token's"),
                raw(CKA_VALUE, b"old"),
            ],
        )
        .expect("object");
    reinitialised_at(&here, "insert", elsewhere);
    let copy = here.copy_object(CALLER, old, &[raw(CKA_TOKEN, &[0])]);
    if let Ok(copy) = copy {
        // Kept, it would be copied into the new token under its epoch.
        let _ = here.copy_object(CALLER, copy, &[raw(CKA_TOKEN, &[1])]);
    }
    assert_eq!(
        stored_objects(&here),
        0,
        "the new token holds the old one's object"
    );
    assert!(matches!(copy, Err(Error::TokenReinitialized)), "{copy:?}");
}

#[test]
fn a_private_session_object_does_not_land_after_a_logout() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (here, _hooks, _) = two_views(dir.path(), "epoch0005");
    log_in_as_user(&here);
    // The write rules are judged while logged in; the logout comes before the insert.
    here.test_steps.lock().push((
        "inserting",
        Box::new(|here: &Token| here.logout().expect("logout")),
    ));
    let made = here.create_object(
        CALLER,
        &[
            ulong(CKA_CLASS, CKO_DATA.raw()),
            raw(CKA_TOKEN, &[0]),
            raw(CKA_PRIVATE, &[1]),
            raw(CKA_LABEL, b"private"),
            raw(CKA_VALUE, b"secret"),
        ],
    );
    assert!(matches!(made, Err(Error::UserNotLoggedIn)), "{made:?}");
    assert_eq!(
        here.objects.read().len(),
        0,
        "a private object after the logout"
    );
}

#[test]
fn a_key_derived_from_an_old_token_key_is_not_written_into_the_new_token() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (here, _hooks, elsewhere) = two_views(dir.path(), "epoch0006");
    here.add_session(SessionHandle::new(1), true)
        .expect("session");
    here.login(SessionHandle::new(1), UserKind::So, SO_PIN)
        .expect("SO login");
    // A public secret key of the old token.
    let base = here
        .create_object(
            CALLER,
            &[
                ulong(CKA_CLASS, CKO_SECRET_KEY.raw()),
                ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET.raw()),
                raw(CKA_TOKEN, &[1]),
                raw(CKA_PRIVATE, &[0]),
                raw(CKA_SENSITIVE, &[0]),
                raw(CKA_DERIVE, &[1]),
                raw(CKA_VALUE, &[7u8; 32]),
            ],
        )
        .expect("base key");
    // After the derivation, the other process re-initialises the token and this one
    // sees it and logs in to the new token (with the same SO PIN).
    here.test_steps.lock().push((
        "insert",
        Box::new(move |here: &Token| {
            reinitialise(&elsewhere);
            here.sync().expect("sync");
            here.login(SessionHandle::new(1), UserKind::So, SO_PIN)
                .expect("SO login to the new token");
        }),
    ));
    let mech = crate::mechanism::MechanismArg {
        kind: CKM_CONCATENATE_BASE_AND_DATA,
        param: crate::mechanism::Param::Bytes(vec![1, 2, 3, 4]),
    };
    let derived = here.derive_key(
        CALLER,
        &mech,
        base,
        &[
            ulong(CKA_CLASS, CKO_SECRET_KEY.raw()),
            ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET.raw()),
            raw(CKA_TOKEN, &[1]),
            raw(CKA_PRIVATE, &[0]),
        ],
    );
    assert_eq!(
        stored_objects(&here),
        0,
        "the new token holds a key of the old one"
    );
    assert!(
        matches!(derived, Err(Error::TokenReinitialized)),
        "{derived:?}"
    );
}

/// Attack (from an independent review): GetParametersForImport decides on the old token
/// (its target key, the import token MACed under the old master key) and then inserts the
/// pair with `insert_all(.., &[])` (before the fix): no epoch of what it was decided on was
/// carried. If the other process re-initialises the token and this process logs in to the
/// new one before the insert, the pair lands in the new token: a record made under the old
/// token's key (its import token) and naming a key of the old token as its target.
#[test]
fn import_parameters_of_an_old_token_key_are_not_written_into_the_new_token() {
    use crate::kms::key::{KeySpec, Origin};
    use crate::object::attr::{IMPORT_TARGET, KEY_ID, KEY_SPEC, ORIGIN};
    let dir = tempfile::tempdir().expect("temporary directory");
    let (here, _hooks, elsewhere) = two_views(dir.path(), "epochr001");
    let user_pin: &[u8] = b"user-pin-5678";
    let as_user = |t: &Token| {
        t.login(SessionHandle::new(1), UserKind::So, SO_PIN)
            .expect("SO login");
        t.init_pin(true, user_pin).expect("user PIN");
        t.logout().expect("logout");
        t.login(SessionHandle::new(1), UserKind::User, user_pin)
            .expect("user login");
    };
    here.add_session(SessionHandle::new(1), true)
        .expect("session");
    as_user(&here);
    // An EXTERNAL AES key of the old token, waiting for its material.
    let target = here
        .create_object(
            CALLER,
            &[
                ulong(CKA_CLASS, CKO_SECRET_KEY.raw()),
                ulong(CKA_KEY_TYPE, CKK_AES.raw()),
                raw(CKA_TOKEN, &[1]),
                raw(CKA_ENCRYPT, &[1]),
                raw(CKA_DECRYPT, &[1]),
                ulong(ORIGIN, Origin::External.code()),
                ulong(KEY_SPEC, KeySpec::Aes256.code()),
            ],
        )
        .expect("EXTERNAL key");
    let key_id = here
        .objects
        .read()
        .get(target)
        .and_then(|e| e.object.bytes(KEY_ID).map(<[u8]>::to_vec))
        .expect("KeyId");
    assert_eq!(stored_objects(&here), 1);
    // After the pair is made and its import token MACed under the old master key, the
    // other process re-initialises the token; this one sees it and logs in to the new one.
    here.test_steps.lock().push((
        "insert",
        Box::new(move |here: &Token| {
            reinitialise(&elsewhere);
            here.sync().expect("sync");
            as_user(here);
        }),
    ));
    let made = super::test_store::import_parameters(&here, CALLER, &key_id);
    let stored = here.store.read(0, 0, Scope::All).expect("read").objects;
    let targets: Vec<Vec<u8>> = stored
        .iter()
        .filter_map(|r| crate::object::Object::from_record(r).ok())
        .filter_map(|o| o.bytes(IMPORT_TARGET).map(<[u8]>::to_vec))
        .collect();
    assert!(
        targets.is_empty(),
        "the new token holds {} import-pair record(s) made for the old token's key {:?} \
         (call answered {:?})",
        targets.len(),
        String::from_utf8_lossy(&key_id),
        made.as_ref().map(|_| ()),
    );
    assert!(matches!(made, Err(Error::TokenReinitialized)), "{made:?}");
}

/// Found by an independent review (older than the view's ordering): a read made at the old
/// cache epoch that saw the new token, applied late by another thread, clears the login
/// (and the session objects) made to the new token meanwhile: `apply_snapshot` compares
/// the snapshot's epoch with the epoch the read was made at, not with the epoch the
/// table is at when it is applied.
#[test]
fn a_late_read_of_the_new_token_does_not_log_out_a_login_to_the_new_token() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (here, hooks, elsewhere) = two_views(dir.path(), "epochr002");
    here.add_session(SessionHandle::new(1), true)
        .expect("session");
    reinitialise(&elsewhere);
    // Thread A reads the new token (its cache still at the old epoch) and is held
    // before it applies the read.
    let (step, a_paused, a_resume) = pause();
    hooks.arm(At::Read, step);
    let reader = {
        let here = Arc::clone(&here);
        std::thread::spawn(move || here.sync())
    };
    a_paused.recv().expect("A's read paused");
    // This thread sees the new token and logs in to it.
    here.sync().expect("sync");
    here.login(SessionHandle::new(1), UserKind::So, SO_PIN)
        .expect("SO login to the new token");
    assert_eq!(here.logged_in(), LoggedIn::So);
    a_resume.send(()).expect("resume A");
    reader.join().expect("A").expect("A's sync");
    assert_eq!(
        here.logged_in(),
        LoggedIn::So,
        "a late read of the same (new) token logged the application out"
    );
}

/// Attack on the re-check of `insert_all_in` (from an independent review): a key pair and
/// a C_Logout from another thread after the first check of the write rules. The review's
/// pair had its private half in the token and its public half a private session object:
/// the token half was committed first and the session half re-checked after, so the call
/// failed (CKR_USER_NOT_LOGGED_IN) while the token half stayed stored. Such split pairs
/// are refused now (`CKR_TEMPLATE_INCONSISTENT`, before anything is made); a private pair
/// whose login goes between the check and the insert still leaves nothing.
#[test]
fn a_failed_key_pair_generation_leaves_no_token_half_behind() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (here, _hooks, _) = two_views(dir.path(), "epochr003");
    log_in_as_user(&here);
    assert_eq!(stored_objects(&here), 0);
    // After the first check of the write rules, before anything is written.
    let logout = Arc::clone(&here);
    here.test_steps.lock().push((
        "inserting",
        Box::new(move |_here: &Token| {
            logout.logout().expect("logout");
        }),
    ));
    let mech = crate::mechanism::MechanismArg {
        kind: CKM_EC_KEY_PAIR_GEN,
        param: crate::mechanism::Param::None,
    };
    let p256 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let pair = |public_token: u8, private_token: u8| {
        here.generate_key_pair(
            CALLER,
            &mech,
            &[
                raw(CKA_TOKEN, &[public_token]),
                raw(CKA_PRIVATE, &[1]),
                raw(CKA_VERIFY, &[1]),
                raw(CKA_EC_PARAMS, &p256),
            ],
            &[
                raw(CKA_TOKEN, &[private_token]),
                raw(CKA_PRIVATE, &[1]),
                raw(CKA_SIGN, &[1]),
            ],
        )
    };
    let split = pair(0, 1);
    assert!(
        matches!(split, Err(Error::TemplateInconsistent)),
        "a split pair: {split:?}"
    );
    // A private session pair: the logout lands between the check and the insert.
    let made = pair(0, 0);
    assert!(
        matches!(made, Err(Error::UserNotLoggedIn)),
        "a private session pair after a logout: {made:?}"
    );
    assert_eq!(
        here.objects.read().iter().count(),
        0,
        "a half left in the table"
    );
    assert_eq!(
        stored_objects(&here),
        0,
        "the generation failed but its token half is stored"
    );
}

// ---- From a second independent review (of db234bb and 3f8eaea): each asserts what
// ---- docs/architecture.md promises.

/// Found by an independent review: before the fix, `commit_decided`'s stale path logged out
/// any login whose epoch was not the snapshot's, even when the snapshot is OLDER than the
/// table (a late read). A change decided on epoch 1 finds the store at epoch 2 and is held
/// after its read; the token is re-initialised again (epoch 3), this process sees it and
/// logs in to it; the stale change then resumes and logs out the login to the newest token,
/// which nothing it decided was ever of. Same class as
/// `a_late_read_of_the_new_token_does_not_log_out_a_login_to_the_new_token`, in the path
/// db234bb did not change.
#[test]
fn a_late_stale_commit_does_not_log_out_a_login_to_a_newer_token() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (here, hooks, elsewhere) = two_views(dir.path(), "epochq001");
    here.add_session(SessionHandle::new(1), true)
        .expect("session");
    let (step, a_paused, a_resume) = pause();
    {
        // Just before thread A's commit: re-initialised elsewhere (epoch 2), and A is held
        // right after the read of its (refused) transaction.
        let hooks = hooks.clone();
        let other = Arc::clone(&elsewhere);
        here.test_steps.lock().push((
            "inserting",
            Box::new(move |_here: &Token| {
                let other2 = Arc::clone(&other);
                let hooks2 = hooks.clone();
                hooks.arm(At::Transact, move || {
                    reinitialise(&other2);
                    hooks2.arm(At::Read, step);
                });
            }),
        ));
    }
    let a = {
        let here = Arc::clone(&here);
        std::thread::spawn(move || {
            here.create_object(
                CALLER,
                &[
                    ulong(CKA_CLASS, CKO_DATA.raw()),
                    raw(CKA_TOKEN, &[1]),
                    raw(CKA_LABEL, b"decided on epoch 1"),
                    raw(CKA_VALUE, b"x"),
                ],
            )
        })
    };
    a_paused.recv().expect("A paused after its read");
    // Re-initialised once more (epoch 3); this thread sees it and logs in to it.
    reinitialise(&elsewhere);
    here.sync().expect("sync");
    here.login(SessionHandle::new(1), UserKind::So, SO_PIN)
        .expect("SO login to the newest token");
    assert_eq!(here.logged_in(), LoggedIn::So);
    a_resume.send(()).expect("resume A");
    let made = a.join().expect("A");
    assert!(matches!(made, Err(Error::TokenReinitialized)), "{made:?}");
    assert_eq!(stored_objects(&here), 0);
    assert_eq!(
        here.logged_in(),
        LoggedIn::So,
        "a stale change of epoch 1, resumed late with its epoch-2 read, logged out the \
         login to the epoch-3 token"
    );
}

/// handles come back (public, private) for every mix of token and
/// session halves (expected to pass).
#[test]
fn key_pair_handles_are_public_then_private_in_every_mix() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (here, _hooks, _) = two_views(dir.path(), "epochq002");
    log_in_as_user(&here);
    let mech = crate::mechanism::MechanismArg {
        kind: CKM_EC_KEY_PAIR_GEN,
        param: crate::mechanism::Param::None,
    };
    let p256 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    for (pub_token, priv_token) in [(0u8, 0u8), (0, 1), (1, 0), (1, 1)] {
        let made = here.generate_key_pair(
            CALLER,
            &mech,
            &[
                raw(CKA_TOKEN, &[pub_token]),
                raw(CKA_VERIFY, &[1]),
                raw(CKA_EC_PARAMS, &p256),
            ],
            &[raw(CKA_TOKEN, &[priv_token]), raw(CKA_SIGN, &[1])],
        );
        if pub_token != priv_token {
            // A pair's halves are one key, in the token or in the session.
            assert!(matches!(made, Err(Error::TemplateInconsistent)), "{made:?}");
            continue;
        }
        let (p, q) = made.expect("pair");
        let table = here.objects.read();
        let class = |h| table.get(h).map(|e| (e.object.class, e.object.is_token()));
        assert_eq!(
            class(p),
            Some((CKO_PUBLIC_KEY, pub_token == 1)),
            "{pub_token}/{priv_token}"
        );
        assert_eq!(
            class(q),
            Some((CKO_PRIVATE_KEY, priv_token == 1)),
            "{pub_token}/{priv_token}"
        );
    }
}

/// Found by an independent review: a pair (or any token object) whose commit succeeded in
/// the old token, re-initialised elsewhere and seen by another thread before the handles
/// are looked up, answered `Internal` before the fix ("committed object missing after
/// sync", CKR_GENERAL_ERROR) rather than `TokenReinitialized` (CKR_DEVICE_REMOVED).
#[test]
fn a_token_half_wiped_before_its_handle_is_read_answers_device_removed() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (here, hooks, elsewhere) = two_views(dir.path(), "epochq004");
    here.add_session(SessionHandle::new(1), true)
        .expect("session");
    // After the commit, inside the apply of its own read (no token lock held): the other
    // process re-initialises the token, and another thread here sees it.
    let syncer = Arc::clone(&here);
    here.test_steps.lock().push((
        "inserting",
        Box::new(move |_here: &Token| {
            hooks.arm(At::Applied, move || {
                reinitialise(&elsewhere);
                syncer.sync().expect("another thread's sync");
            });
        }),
    ));
    let made = here.create_object(
        CALLER,
        &[
            ulong(CKA_CLASS, CKO_DATA.raw()),
            raw(CKA_TOKEN, &[1]),
            raw(CKA_LABEL, b"made in the old token"),
            raw(CKA_VALUE, b"x"),
        ],
    );
    assert!(matches!(made, Err(Error::TokenReinitialized)), "{made:?}");
}

/// The other branch of the case above: a token object committed and then destroyed by
/// another thread of this process before its handle was read answers `CacheContention`
/// (CKR_FUNCTION_FAILED), no handle and no `Internal` error, and the object stays gone.
#[test]
fn a_token_object_destroyed_before_its_handle_is_read_answers_function_failed() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (here, hooks, _elsewhere) = two_views(dir.path(), "epochq005");
    here.add_session(SessionHandle::new(1), true)
        .expect("session");
    let label = raw(CKA_LABEL, b"destroyed before its handle is read");
    let destroyer = Arc::clone(&here);
    let template = [label.clone()];
    here.test_steps.lock().push((
        "inserting",
        Box::new(move |_here: &Token| {
            hooks.arm(At::Applied, move || {
                let found = destroyer.find(&template).expect("C_FindObjects");
                assert_eq!(found.len(), 1, "the commit was applied before this step");
                destroyer
                    .destroy_object(CALLER, found[0])
                    .expect("another thread's C_DestroyObject");
            });
        }),
    ));
    let made = here.create_object(
        CALLER,
        &[
            ulong(CKA_CLASS, CKO_DATA.raw()),
            raw(CKA_TOKEN, &[1]),
            label.clone(),
            raw(CKA_VALUE, b"x"),
        ],
    );
    assert!(matches!(made, Err(Error::CacheContention)), "{made:?}");
    assert!(here.find(&[label]).expect("C_FindObjects").is_empty());
}

/// A PIN attempt counted in one token, the token re-initialised elsewhere before its PIN
/// record was read, was checked against the new token's record and settled there: a
/// guess at the new token's PIN that no count recorded (it answered PinIncorrect). It is
/// now tried only against the record of the token it was counted in.
#[test]
fn a_pin_attempt_counted_in_the_old_token_is_not_tried_against_the_new_one() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (here, hooks, elsewhere) = two_views(dir.path(), "epochq006");
    here.add_session(SessionHandle::new(1), true)
        .expect("session");
    let reinitialiser = Arc::clone(&elsewhere);
    hooks.arm(At::Reserved, move || reinitialise(&reinitialiser));
    let login = here.login(SessionHandle::new(1), UserKind::So, b"wrong-so-pin");
    assert!(matches!(login, Err(Error::TokenReinitialized)), "{login:?}");
    here.sync().expect("sync");
    let so_failures = here.view.read().pins[&PinRole::So].failures;
    assert_eq!(so_failures, 0, "nothing was tried at the new token");
    here.login(SessionHandle::new(1), UserKind::So, SO_PIN)
        .expect("the new token's SO PIN");
}

/// Attack (independent review of the PIN attempt's epoch): the check above holds across a
/// re-initialisation only. A PIN record replaced within one token (the SO's `C_InitPIN`,
/// the user's `C_SetPIN` in another process) while an attempt is in flight: the attempt
/// was counted in the old record's count, which the new record (count 0) replaces, and is
/// then checked against the new record: a guess at the new PIN that no count recorded.
/// So more guesses than the limit are tried at the new PIN (here one more; as many as
/// were in flight at the change).
#[test]
fn a_pin_attempt_counted_before_the_user_pin_was_replaced_is_not_tried_against_the_new_one() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (here, hooks, elsewhere) = two_views(dir.path(), "epochq007");
    // The SO, in the other process, gives the token a user PIN and stays logged in.
    elsewhere
        .add_session(SessionHandle::new(1), true)
        .expect("session");
    elsewhere
        .login(SessionHandle::new(1), UserKind::So, SO_PIN)
        .expect("SO login elsewhere");
    elsewhere
        .init_pin(true, b"old-user-pin")
        .expect("user PIN elsewhere");
    here.add_session(SessionHandle::new(1), true)
        .expect("session");
    here.sync().expect("sync");
    let limit = here.status().expect("status").max_failures;
    // A guess here is reserved (counted in the old record); the SO then resets the user
    // PIN (unlocking it, say) before the guess reads the record.
    let so = Arc::clone(&elsewhere);
    hooks.arm(At::Reserved, move || {
        so.init_pin(true, b"new-user-pin")
            .expect("C_InitPIN elsewhere")
    });
    // The guess is the old PIN: checked against the record it was counted in, it opens
    // it; answered PinIncorrect, it was checked against the new one, and counted nowhere.
    let mut tried_at_new_pin = 0;
    match here.login(SessionHandle::new(1), UserKind::User, b"old-user-pin") {
        Err(Error::PinIncorrect) => tried_at_new_pin += 1,
        Ok(()) => here.logout().expect("logout"),
        Err(e) => assert!(
            matches!(e, Error::TokenReinitialized | Error::PinLocked),
            "{e:?}"
        ),
    }
    for n in 0..limit {
        let guess = format!("guess-{n:04}");
        match here.login(SessionHandle::new(1), UserKind::User, guess.as_bytes()) {
            Err(Error::PinIncorrect) => tried_at_new_pin += 1,
            Err(Error::PinLocked) => break,
            other => panic!("guess {n}: {other:?}"),
        }
    }
    let right = here.login(SessionHandle::new(1), UserKind::User, b"new-user-pin");
    assert!(matches!(right, Err(Error::PinLocked)), "{right:?}");
    assert!(
        tried_at_new_pin <= limit,
        "{tried_at_new_pin} wrong PINs were tried at the new user PIN before it locked, \
         limit {limit}"
    );
}

/// Attack (independent review), the other half of the case above: a right PIN checked
/// against the user PIN record before the SO replaced it resets the new record's count,
/// so a wrong guess at the new PIN made meanwhile by a third process is forgotten. (A
/// right PIN of the old token may not reset the new token's count; a right old PIN of
/// the same token still does.)
#[test]
fn a_right_pin_of_a_replaced_user_pin_record_does_not_reset_the_new_records_count() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (here, hooks, elsewhere) = two_views(dir.path(), "epochq008");
    elsewhere
        .add_session(SessionHandle::new(1), true)
        .expect("session");
    elsewhere
        .login(SessionHandle::new(1), UserKind::So, SO_PIN)
        .expect("SO login elsewhere");
    elsewhere
        .init_pin(true, b"old-user-pin")
        .expect("user PIN elsewhere");
    let path = crate::store::Backend::file_of(dir.path(), "epochq008");
    let third = Token::open(&path, shared_for_tests(dir.path())).expect("a third process's token");
    third
        .add_session(SessionHandle::new(1), true)
        .expect("session");
    here.add_session(SessionHandle::new(1), true)
        .expect("session");
    // The old PIN has been checked here; before its attempt is settled, the SO resets the
    // user PIN and a third process makes a wrong guess at the new one.
    let so = Arc::clone(&elsewhere);
    hooks.arm(At::Settle, move || {
        so.init_pin(true, b"new-user-pin")
            .expect("C_InitPIN elsewhere");
        let wrong = third.login(SessionHandle::new(1), UserKind::User, b"guess-0000");
        assert!(matches!(wrong, Err(Error::PinIncorrect)), "{wrong:?}");
    });
    let login = here.login(SessionHandle::new(1), UserKind::User, b"old-user-pin");
    eprintln!("the login with the old PIN: {login:?}");
    assert_eq!(
        elsewhere.status().expect("status").user_failures,
        Some(1),
        "the wrong guess at the new user PIN was forgotten by a right old PIN"
    );
}

/// Attack (independent review): the first user login with a PIN record of the old
/// format rewraps it (`settle_record_format`) and writes the failure count it read
/// before the rewrap's PIN derivation. Wrong PINs another process tries meanwhile are
/// counted, then forgotten: the token locks, and is unlocked again by that write, so
/// twice the limit of wrong PINs are tried at the same PIN.
#[test]
fn wrong_pins_tried_while_a_legacy_pin_record_is_rewrapped_stay_counted() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (here, hooks, elsewhere) = two_views(dir.path(), "epochq009");
    let user_pin = LEGACY_USER_PIN;
    with_legacy_user_pin(&here);
    let limit = here.status().expect("status").max_failures;
    elsewhere
        .add_session(SessionHandle::new(1), true)
        .expect("session");
    // After the user's attempt is settled: the read that ends `verify_pin`, then the one
    // the rewrap's count is taken from; the other process then tries wrong PINs until
    // the PIN locks.
    let (h1, h2) = (hooks.clone(), hooks.clone());
    let guesser = Arc::clone(&elsewhere);
    hooks.arm(At::Settle, move || {
        h1.arm(At::Read, move || {
            h2.arm(At::Read, move || {
                for n in 0..limit {
                    let guess = format!("guess-{n:04}");
                    let wrong =
                        guesser.login(SessionHandle::new(1), UserKind::User, guess.as_bytes());
                    assert!(matches!(wrong, Err(Error::PinIncorrect)), "{wrong:?}");
                }
            })
        })
    });
    here.login(SessionHandle::new(1), UserKind::User, user_pin)
        .expect("the user's login");
    here.logout().expect("logout");
    let mut more = 0;
    for n in 0..limit {
        let guess = format!("more-{n:04}");
        match elsewhere.login(SessionHandle::new(1), UserKind::User, guess.as_bytes()) {
            Err(Error::PinIncorrect) => more += 1,
            Err(Error::PinLocked) => break,
            other => panic!("guess {n}: {other:?}"),
        }
    }
    assert_eq!(
        more, 0,
        "{limit} wrong PINs, then {more} more, were tried at the user PIN, limit {limit}"
    );
}

/// A new token `serial` in `dir` whose clock stands still until the test moves it, with
/// the user logged in.
fn logged_in_on_a_fixed_clock(
    dir: &std::path::Path,
    serial: &str,
) -> (Token, Arc<crate::kms::clock::FixedClock>) {
    let clock = crate::kms::clock::FixedClock::new(1_700_000_000);
    let shared = Arc::new(Shared {
        config: Arc::clone(&shared_for_tests(dir).config),
        handles: Default::default(),
        clock: clock.clone(),
    });
    let backend = crate::store::Backend::Files(dir.to_path_buf());
    let token = Token::create(
        &backend,
        SlotId::new(1),
        serial,
        [b' '; LABEL_LEN],
        SO_PIN,
        shared,
    )
    .expect("token");
    log_in_as_user(&token);
    (token, clock)
}

/// Attack (independent review of 90c6f32): a KMS decision on a key reads the key's
/// records this process has cached by uid as well as through the (unauthenticated)
/// lookup index, so that a lookup row deleted offline leaves none of them out
/// (docs/security.md). The sweep's batched decisions (`decide_batch`) read through the
/// index only, though the sweep found the key in its cache: with the private half's
/// KeyId row deleted, expired material is wiped from the public half's state alone, and
/// the private half keeps its material, Enabled.
#[test]
fn the_sweep_decides_on_a_keys_cached_records_left_out_of_the_index() {
    use crate::kms::key::{KeyState, KeyUsage, Origin};
    use crate::object::attr::{Value, KEY_ID, KEY_STATE, KEY_USAGE, MATERIAL_EXPIRY, ORIGIN};
    let dir = tempfile::tempdir().expect("temporary directory");
    let (token, clock) = logged_in_on_a_fixed_clock(dir.path(), "sweepq001");
    // A KMS key pair, made EXTERNAL with material expiring in 100 seconds (as an import
    // of it would leave it), written under the master key.
    let mech = crate::mechanism::MechanismArg {
        kind: CKM_EC_KEY_PAIR_GEN,
        param: crate::mechanism::Param::None,
    };
    let p256 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let (_, private) = token
        .generate_key_pair(
            CALLER,
            &mech,
            &[raw(CKA_TOKEN, &[1]), raw(CKA_EC_PARAMS, &p256)],
            &[
                raw(CKA_TOKEN, &[1]),
                ulong(KEY_USAGE, KeyUsage::SignVerify.code()),
            ],
        )
        .expect("KMS key pair");
    let (id, private_uid) = {
        let table = token.objects.read();
        let o = &table.get(private).expect("private half").object;
        (o.bytes(KEY_ID).expect("KeyId").to_vec(), o.uid)
    };
    let master = token.master().expect("master key");
    let expiry = clock.now() + 100;
    let changes = token
        .store
        .read(0, 0, Scope::All)
        .expect("read")
        .objects
        .iter()
        .map(|rec| {
            let o = Object::from_record(rec).expect("record");
            assert_eq!(o.bytes(KEY_ID), Some(&id[..]), "the pair's records only");
            Change::PutObject(
                o.with_plain(vec![
                    (ORIGIN, Value::Ulong(Origin::External.code())),
                    (MATERIAL_EXPIRY, Value::Ulong(expiry as u64)),
                ])
                .to_record(&token.serial, Some(&master))
                .expect("record"),
            )
        })
        .collect::<Vec<_>>();
    assert_eq!(changes.len(), 2);
    token.store.commit(changes).expect("expiring pair");
    token.sync().expect("sync");
    // Offline, the private half's KeyId row is taken out of the index.
    let db = rusqlite::Connection::open(crate::store::Backend::file_of(dir.path(), "sweepq001"))
        .expect("database");
    let deleted = db
        .execute(
            "DELETE FROM lookup WHERE key = ?1 AND rid = (SELECT rid FROM objects WHERE uid = ?2)",
            rusqlite::params![index::lookup_key(KEY_ID, &id), &private_uid[..]],
        )
        .expect("delete");
    assert_eq!(deleted, 1);
    drop(db);
    clock.advance(200);
    token.objects.write().force_sweep();
    token.sweep().expect("sweep");
    let states: Vec<(bool, Option<u64>)> = token
        .store
        .read(0, 0, Scope::All)
        .expect("read")
        .objects
        .iter()
        .map(|rec| {
            let o = Object::from_record(rec).expect("record");
            (o.uid == private_uid, o.ulong(KEY_STATE))
        })
        .collect();
    let pending = Some(KeyState::PendingImport.code());
    assert!(
        states.iter().any(|(private, s)| !private && *s == pending),
        "the sweep ran: {states:?}"
    );
    assert!(
        states.iter().all(|(_, s)| *s == pending),
        "the private half (true) kept its expired material and state: {states:?}"
    );
}

/// Found by an independent review (of 7ad2055, by reading): the sweep read an expired
/// session key's objects, then later put wiped copies of them in the table, whatever had
/// happened to them in between. The same material imported again meanwhile with a later
/// expiry (another thread) was then wiped by a decision made on the old expiry. Now a
/// wiped copy replaces only the very version it was made from.
#[test]
fn the_sweep_does_not_wipe_a_session_key_changed_since_it_read_it() {
    use crate::kms::key::{KeyState, KeyUsage, Origin};
    use crate::object::attr::{Value, KEY_STATE, KEY_USAGE, MATERIAL_EXPIRY, ORIGIN};
    let dir = tempfile::tempdir().expect("temporary directory");
    let (token, clock) = logged_in_on_a_fixed_clock(dir.path(), "sweepq002");
    token.add_session(CALLER.session, true).expect("session");
    let mech = crate::mechanism::MechanismArg {
        kind: CKM_EC_KEY_PAIR_GEN,
        param: crate::mechanism::Param::None,
    };
    let p256 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let (public, private) = token
        .generate_key_pair(
            CALLER,
            &mech,
            &[raw(CKA_EC_PARAMS, &p256)],
            &[ulong(KEY_USAGE, KeyUsage::SignVerify.code())],
        )
        .expect("a session KMS key pair");
    // Made EXTERNAL with material expiring in 100 seconds, as an import leaves it.
    let expiring = |expiry: i64| {
        vec![
            (ORIGIN, Value::Ulong(Origin::External.code())),
            (MATERIAL_EXPIRY, Value::Ulong(expiry as u64)),
        ]
    };
    let set = |handle, plain: Vec<(AttrType, Value)>| {
        let mut table = token.objects.write();
        let o = table.get(handle).expect("object").object.with_plain(plain);
        table.replace_session_object(handle, o);
    };
    for h in [public, private] {
        set(h, expiring(clock.now() + 100));
    }
    // Between the sweep's read and its write, the material is imported again with a
    // later expiry (the private half's new version).
    let later = clock.now() + 10_000;
    token.test_steps.lock().push((
        "sweep_publish",
        Box::new(move |here: &Token| {
            let mut table = here.objects.write();
            let o = table
                .get(private)
                .expect("private half")
                .object
                .with_plain(expiring(later));
            table.replace_session_object(private, o);
        }),
    ));
    clock.advance(200);
    token.objects.write().force_sweep();
    token.sweep().expect("sweep");
    let table = token.objects.read();
    let o = &table.get(private).expect("private half").object;
    assert_eq!(
        (o.ulong(KEY_STATE), o.ulong(MATERIAL_EXPIRY)),
        (Some(KeyState::Enabled.code()), Some(later as u64)),
        "the re-imported private half was wiped by the old expiry's decision"
    );
    assert!(o.has(CKA_VALUE), "its material is gone");
    let p = &table.get(public).expect("public half").object;
    assert_eq!(
        p.ulong(KEY_STATE),
        Some(KeyState::PendingImport.code()),
        "the sweep ran (the unchanged public half was wiped)"
    );
}

/// Attack (independent review of e25b38e): the reservation checks the failure count
/// against the limit of the caller's view (`Token::pin_limit`), not the limit the store
/// holds in the same transaction. Re-initialised elsewhere (with a lower limit) between
/// the view's read and the reservation, the attempt is counted in the new token under
/// the old token's limit, and then, the view synced, checked against the new token's
/// SO record: a guess at the new SO PIN after it locked (a right one would reset the
/// count, unlocking an SO PIN that nothing may unlock).
#[test]
fn a_reservation_under_the_old_tokens_limit_tries_no_pin_of_a_locked_new_token() {
    let dir = tempfile::tempdir().expect("temporary directory");
    // This process's token has the default limit (10).
    let (here, hooks, _) = two_views(dir.path(), "epochr008");
    let path = crate::store::Backend::file_of(dir.path(), "epochr008");
    // The other process re-initialises with a limit of 3.
    let mut config = (*shared_for_tests(dir.path()).config).clone();
    config.max_pin_failures = 3;
    let elsewhere = Arc::new(
        Token::open(
            &path,
            Arc::new(Shared {
                config: Arc::new(config),
                handles: Default::default(),
                clock: clock::module_clock(),
            }),
        )
        .expect("the other process's token"),
    );
    here.add_session(SessionHandle::new(1), true)
        .expect("session");
    here.sync().expect("sync");
    assert_eq!(here.status().expect("status").max_failures, 10);
    // Something changed elsewhere, so the login's refresh reads the store.
    elsewhere
        .add_session(SessionHandle::new(1), true)
        .expect("session");
    let wrong = elsewhere.login(SessionHandle::new(1), UserKind::So, b"wrong-pin-0000");
    assert!(matches!(wrong, Err(Error::PinIncorrect)), "{wrong:?}");
    elsewhere.remove_session(SessionHandle::new(1));
    // Right after the login's refresh read the old token: the other process
    // re-initialises it (limit 3) and tries wrong SO PINs until the new one locks.
    let other = Arc::clone(&elsewhere);
    hooks.arm(At::Read, move || {
        reinitialise(&other);
        other
            .add_session(SessionHandle::new(1), true)
            .expect("session");
        for n in 0..3 {
            let guess = format!("guess-{n:04}");
            let wrong = other.login(SessionHandle::new(1), UserKind::So, guess.as_bytes());
            assert!(matches!(wrong, Err(Error::PinIncorrect)), "{wrong:?}");
        }
        let locked = other.login(SessionHandle::new(1), UserKind::So, b"guess-0003");
        assert!(matches!(locked, Err(Error::PinLocked)), "{locked:?}");
        other.remove_session(SessionHandle::new(1));
    });
    let login = here.login(SessionHandle::new(1), UserKind::So, b"guess-0004");
    let so_failures = elsewhere.status().expect("status").so_failures;
    assert!(
        !matches!(login, Err(Error::PinIncorrect)) && so_failures <= 3,
        "a guess at the locked new SO PIN was tried ({login:?}): {so_failures} failures \
         counted, limit 3"
    );
}

/// Attack (independent review of e25b38e): `C_SetPIN` checks the old PIN against the
/// record as it is, then writes the new record whatever record is there by then (`PutPin`,
/// decided on a read). The SO's `C_InitPIN` in between (resetting the user PIN of a user
/// whose PIN leaked, say) answers CKR_OK and is silently undone: the PIN checked, the
/// old one, no longer opened any record when the new one was written, and the holder of
/// that leaked PIN keeps the token under a PIN of their choosing.
#[test]
fn a_set_pin_checked_against_a_replaced_record_does_not_undo_the_so_reset() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (here, hooks, elsewhere) = two_views(dir.path(), "epochr009");
    elsewhere
        .add_session(SessionHandle::new(1), true)
        .expect("session");
    elsewhere
        .login(SessionHandle::new(1), UserKind::So, SO_PIN)
        .expect("SO login elsewhere");
    elsewhere
        .init_pin(true, b"leaked-user-pin")
        .expect("user PIN elsewhere");
    here.add_session(SessionHandle::new(1), true)
        .expect("session");
    // The leaked PIN has been checked here (C_SetPIN in a public session); before its
    // attempt is settled, the SO resets the user PIN.
    let so = Arc::clone(&elsewhere);
    hooks.arm(At::Settle, move || {
        so.init_pin(true, b"so-reset-pin")
            .expect("C_InitPIN elsewhere")
    });
    let set = here.set_pin(true, b"leaked-user-pin", b"attackers-pin");
    eprintln!("C_SetPIN with the leaked PIN: {set:?}");
    let reset = here.login(SessionHandle::new(1), UserKind::User, b"so-reset-pin");
    if reset.is_ok() {
        here.logout().expect("logout");
    }
    let attackers = here.login(SessionHandle::new(1), UserKind::User, b"attackers-pin");
    assert!(
        reset.is_ok() && attackers.is_err(),
        "the SO's reset (answered CKR_OK) was undone by a C_SetPIN checked before it: the \
         PIN the SO set answers {reset:?}, the one C_SetPIN set {attackers:?}"
    );
}

/// Attack (independent review of e25b38e): the rewrap of an old-format PIN record after a
/// login (`settle_record_format`, `Change::RewrapPin`) writes a record of the PIN that
/// was checked over whatever record the role has by then. The SO's `C_InitPIN` between
/// the check and the rewrap answers CKR_OK and is undone: the old user PIN opens the
/// token again and the one the SO set does not.
#[test]
fn the_rewrap_of_a_legacy_pin_record_does_not_undo_an_so_reset_made_meanwhile() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (here, hooks, elsewhere) = two_views(dir.path(), "epochr010");
    let user_pin = LEGACY_USER_PIN;
    with_legacy_user_pin(&here);
    elsewhere
        .add_session(SessionHandle::new(1), true)
        .expect("session");
    elsewhere
        .login(SessionHandle::new(1), UserKind::So, SO_PIN)
        .expect("SO login elsewhere");
    // The user's PIN has been checked here; before the attempt is settled (and the record
    // rewrapped), the SO resets the user PIN.
    let so = Arc::clone(&elsewhere);
    hooks.arm(At::Settle, move || {
        so.init_pin(true, b"so-reset-pin")
            .expect("C_InitPIN elsewhere")
    });
    let login = here.login(SessionHandle::new(1), UserKind::User, user_pin);
    eprintln!("the login with the old PIN: {login:?}");
    if login.is_ok() {
        here.logout().expect("logout");
    }
    let reset = here.login(SessionHandle::new(1), UserKind::User, b"so-reset-pin");
    if reset.is_ok() {
        here.logout().expect("logout");
    }
    let old = here.login(SessionHandle::new(1), UserKind::User, user_pin);
    assert!(
        reset.is_ok() && old.is_err(),
        "the SO's reset (answered CKR_OK) was undone by the rewrap: the PIN the SO set \
         answers {reset:?}, the old user PIN {old:?}"
    );
}

/// Attack (independent review of 7a7d832): `C_InitToken` checks the SO PIN against the SO
/// record as it is, then wipes the token whatever SO record is there by then: the wipe
/// (`commit_rekeyed`) is conditioned on the epoch only, not on the record the PIN opened
/// (the guard `Change::ReplacePin` gives `C_SetPIN`). The SO's `C_SetPIN` in between (the
/// SO changing an SO PIN it believes leaked) answers CKR_OK, and then the holder of the
/// leaked PIN re-initialises the token anyway: every key is destroyed and the new token's
/// SO PIN is the leaked one.
#[test]
fn a_reinitialisation_checked_against_a_replaced_so_record_does_not_wipe_the_token() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (here, hooks, elsewhere) = two_views(dir.path(), "epochr011");
    elsewhere
        .add_session(SessionHandle::new(1), true)
        .expect("session");
    elsewhere
        .login(SessionHandle::new(1), UserKind::So, SO_PIN)
        .expect("SO login elsewhere");
    // The leaked SO PIN has been checked here (C_InitToken); before the wipe is
    // committed, the SO changes the SO PIN.
    let so = Arc::clone(&elsewhere);
    hooks.arm(At::Transact, move || {
        so.set_pin(true, SO_PIN, b"so-pin-changed")
            .expect("C_SetPIN of the SO elsewhere")
    });
    let reinit = here.reinitialize(SO_PIN, [b'x'; LABEL_LEN]);
    eprintln!("C_InitToken with the old SO PIN: {reinit:?}");
    here.add_session(SessionHandle::new(1), true)
        .expect("session");
    let changed = here.login(SessionHandle::new(1), UserKind::So, b"so-pin-changed");
    assert!(
        reinit.is_err() && changed.is_ok(),
        "the token was re-initialised with an SO PIN the SO had changed (C_SetPIN answered \
         CKR_OK first): C_InitToken answered {reinit:?}, the SO PIN the SO set {changed:?}"
    );
}

/// Attack (independent review of 7a7d832): `Change::ReplacePin` writes the new record with
/// a count of 0 (`Token::pin_record`), dropping the wrong PINs counted in the old record
/// after the old PIN was checked (the rewrap keeps the count the store holds for this very
/// reason). With a new PIN equal to the old one (PKCS#11 does not forbid it), an attacker
/// guessing during the C_SetPIN gets the limit of wrong guesses at that PIN, locks it, and
/// the C_SetPIN unlocks it for as many again: 19 consecutive wrong guesses at one PIN under
/// a limit of 10, and a locked PIN unlocked without a right PIN checked after the lock.
#[test]
fn a_set_pin_checked_before_a_lockout_does_not_unlock_the_pin() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (here, hooks, elsewhere) = two_views(dir.path(), "epochr012");
    let user_pin = b"user-pin-5678";
    here.add_session(SessionHandle::new(1), true)
        .expect("session");
    here.login(SessionHandle::new(1), UserKind::So, SO_PIN)
        .expect("SO login");
    here.init_pin(true, user_pin).expect("user PIN");
    here.logout().expect("logout");
    elsewhere
        .add_session(SessionHandle::new(1), true)
        .expect("session");
    // The old PIN has been checked here (C_SetPIN in a public session); before the new
    // record is written, the attacker elsewhere guesses until the PIN locks.
    let attacker = Arc::clone(&elsewhere);
    hooks.arm(At::Transact, move || {
        for n in 0..10 {
            let guess = format!("guess-{n:04}");
            let wrong = attacker.login(SessionHandle::new(1), UserKind::User, guess.as_bytes());
            assert!(matches!(wrong, Err(Error::PinIncorrect)), "{wrong:?}");
        }
        let locked = attacker.login(SessionHandle::new(1), UserKind::User, b"guess-0010");
        assert!(matches!(locked, Err(Error::PinLocked)), "{locked:?}");
    });
    let set = here.set_pin(true, user_pin, user_pin);
    eprintln!("C_SetPIN (new PIN = old PIN): {set:?}");
    let after = elsewhere.login(SessionHandle::new(1), UserKind::User, b"guess-0011");
    let failures = elsewhere.status().expect("status").user_failures;
    assert!(
        matches!(after, Err(Error::PinLocked)),
        "the PIN locked by 10 wrong guesses made after the C_SetPIN's check was unlocked by \
         it: C_SetPIN answered {set:?}, the 11th wrong guess {after:?} ({failures:?} failures \
         counted, limit 10)"
    );
}

/// Attack (independent review of 7a7d832): `C_SetPIN` with the right old PIN of a legacy
/// record, while another process logs in with that same PIN and rewraps the record (same
/// PIN, new KDF parameters): the caller's own rewrap writes nothing (its `from_kdf` is
/// gone), `settle_record_format` still answers the KDF parameters of a record it never
/// wrote, and the `ReplacePin` from them fails with `StoreError::PinRecordChanged`, which
/// `ffi/rv.rs` answers CKR_PIN_INCORRECT: the right PIN, still the PIN, reported wrong.
#[test]
fn a_set_pin_with_the_right_pin_is_not_answered_pin_incorrect_after_a_rewrap_elsewhere() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (here, hooks, elsewhere) = two_views(dir.path(), "epochr013");
    let user_pin = b"user-pin-5678";
    here.add_session(SessionHandle::new(1), true)
        .expect("session");
    here.login(SessionHandle::new(1), UserKind::So, SO_PIN)
        .expect("SO login");
    here.init_pin(true, user_pin).expect("user PIN");
    // The user PIN record in the format of the builds before authenticated records (the
    // token's marker stays: it was adopted already).
    let master = here.master().expect("master key");
    let kdf = crate::store::seal::PinKdf::fresh(&here.shared.config.kdf).expect("kdf");
    let [_, legacy] = super::records::master_aads(&here.serial, PinRole::User);
    let wrapped =
        crate::store::seal::wrap_master_key(&master, &kdf, user_pin, &legacy).expect("wrapped");
    here.store
        .commit(vec![Change::PutPin(
            PinRole::User,
            crate::store::PinRecord {
                kdf: kdf.encode(),
                wrapped_key: wrapped,
                failures: 0,
            },
        )])
        .expect("legacy PIN record");
    here.logout().expect("logout");
    elsewhere
        .add_session(SessionHandle::new(1), true)
        .expect("session");
    // The old PIN has been checked here; before the attempt is settled, the user logs in
    // elsewhere with the same PIN, which rewraps the record.
    let user = Arc::clone(&elsewhere);
    hooks.arm(At::Settle, move || {
        user.login(SessionHandle::new(1), UserKind::User, user_pin)
            .expect("user login elsewhere");
        user.logout().expect("logout elsewhere");
    });
    let set = here.set_pin(true, user_pin, b"new-user-pin");
    let old = here.login(SessionHandle::new(1), UserKind::User, user_pin);
    assert!(
        !matches!(set, Err(Error::Store(StoreError::PinRecordChanged))) || old.is_err(),
        "C_SetPIN with the right PIN answered {set:?} (CKR_PIN_INCORRECT), yet that PIN \
         still opens the token: {old:?}"
    );
}

/// Attack-free race (independent review of 8ffc52d): `C_InitToken` with the right SO PIN
/// of an old-format SO record, while the SO logs in elsewhere with that same PIN and so
/// rewraps the record (same PIN, new KDF parameters). The wipe's `Change::RequirePin`
/// names the KDF parameters of the record the PIN was checked against, which are gone:
/// the commit fails with `StoreError::PinRecordChanged`, which `ffi/rv.rs` answers
/// CKR_PIN_INCORRECT, though the PIN is right and still opens the token. `C_SetPIN`
/// checks the old PIN again in this case (`set_pin`'s loop); `C_InitToken` does not.
#[test]
fn a_reinitialisation_with_the_right_so_pin_is_not_answered_pin_incorrect_after_a_rewrap() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (here, hooks, elsewhere) = two_views(dir.path(), "epochr014");
    // The SO PIN record in the format of the builds before authenticated records (the
    // token's marker stays: it was adopted already).
    elsewhere
        .add_session(SessionHandle::new(1), true)
        .expect("session");
    elsewhere
        .login(SessionHandle::new(1), UserKind::So, SO_PIN)
        .expect("SO login elsewhere");
    let master = elsewhere.master().expect("master key");
    let kdf = crate::store::seal::PinKdf::fresh(&elsewhere.shared.config.kdf).expect("kdf");
    let [_, legacy] = super::records::master_aads(&elsewhere.serial, PinRole::So);
    let wrapped =
        crate::store::seal::wrap_master_key(&master, &kdf, SO_PIN, &legacy).expect("wrapped");
    elsewhere
        .store
        .commit(vec![Change::PutPin(
            PinRole::So,
            crate::store::PinRecord {
                kdf: kdf.encode(),
                wrapped_key: wrapped,
                failures: 0,
            },
        )])
        .expect("legacy SO PIN record");
    elsewhere.logout().expect("logout elsewhere");
    // The SO PIN has been checked here (C_InitToken); before the wipe is committed, the
    // SO logs in elsewhere with the same PIN, which rewraps the record.
    let so = Arc::clone(&elsewhere);
    hooks.arm(At::Transact, move || {
        so.login(SessionHandle::new(1), UserKind::So, SO_PIN)
            .expect("SO login elsewhere, rewrapping the record");
        so.logout().expect("logout elsewhere");
    });
    let reinit = here.reinitialize(SO_PIN, [b'x'; LABEL_LEN]);
    here.add_session(SessionHandle::new(1), true)
        .expect("session");
    let still = here.login(SessionHandle::new(1), UserKind::So, SO_PIN);
    assert!(
        !matches!(reinit, Err(Error::Store(StoreError::PinRecordChanged))) || still.is_err(),
        "C_InitToken with the right SO PIN answered {reinit:?} (CKR_PIN_INCORRECT), yet \
         that PIN still opens the token: {still:?}"
    );
}

/// The user PIN of `with_legacy_user_pin`.
const LEGACY_USER_PIN: &[u8] = b"user-pin-5678";

/// Gives `here`'s token (no session open yet) the user PIN `LEGACY_USER_PIN` in a record
/// of the format of the builds before authenticated records (the token's marker stays:
/// it was adopted already), and leaves session 1 open, logged out.
fn with_legacy_user_pin(here: &Token) {
    here.add_session(SessionHandle::new(1), true)
        .expect("session");
    here.login(SessionHandle::new(1), UserKind::So, SO_PIN)
        .expect("SO login");
    here.init_pin(true, LEGACY_USER_PIN).expect("user PIN");
    let master = here.master().expect("master key");
    let kdf = crate::store::seal::PinKdf::fresh(&here.shared.config.kdf).expect("kdf");
    let [_, legacy] = super::records::master_aads(&here.serial, PinRole::User);
    let wrapped = crate::store::seal::wrap_master_key(&master, &kdf, LEGACY_USER_PIN, &legacy)
        .expect("wrapped");
    here.store
        .commit(vec![Change::PutPin(
            PinRole::User,
            crate::store::PinRecord {
                kdf: kdf.encode(),
                wrapped_key: wrapped,
                failures: 0,
            },
        )])
        .expect("legacy PIN record");
    here.logout().expect("logout");
}
