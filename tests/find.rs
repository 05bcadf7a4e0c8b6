//! Object search (PKCS#11 3.1 §5.7 C_FindObjectsInit, C_FindObjects, C_FindObjectsFinal):
//! matching by class, label and id; the empty template; one active search per session;
//! visibility of private objects. Run with `cargo nextest run`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::raw::{Raw, RawAttr};
use common::*;
use cryptoki::error::RvError;
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki_sys::*;

/// A token with a few public and private objects; returns the handles by label.
fn populate(session: &Session) -> Vec<(String, ObjectHandle)> {
    let mut out = Vec::new();
    let mut add = |label: &str, mut template: Vec<Attribute>, id: Option<&[u8]>| {
        // Data objects have no CKA_ID (§4.5); keys do.
        if let Some(id) = id {
            template.push(Attribute::Id(id.to_vec()));
        }
        out.push((label.to_owned(), session.create_object(&template).unwrap()));
    };
    add("data-1", data_template("data-1", b"1", true), None);
    add("data-2", data_template("data-2", b"2", false), None);
    add(
        "key-1",
        aes_template("key-1", &[1; 16], true),
        Some(b"id-a"),
    );
    add(
        "key-2",
        aes_template("key-2", &[2; 32], false),
        Some(b"id-c"),
    );
    add(
        "key-3",
        aes_template("key-3", &[3; 24], true),
        Some(b"id-a"),
    );
    out
}

fn sorted(mut handles: Vec<ObjectHandle>) -> Vec<ObjectHandle> {
    handles.sort_by_key(|h| h.handle());
    handles
}

fn handles_of(objects: &[(String, ObjectHandle)], labels: &[&str]) -> Vec<ObjectHandle> {
    sorted(
        objects
            .iter()
            .filter(|(l, _)| labels.contains(&l.as_str()))
            .map(|(_, h)| *h)
            .collect(),
    )
}

#[test]
fn find_by_class_label_and_id() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let objects = populate(&session);
    let find = |template: &[Attribute]| sorted(session.find_objects(template).unwrap());
    assert_eq!(
        find(&[Attribute::Class(ObjectClass::DATA)]),
        handles_of(&objects, &["data-1", "data-2"])
    );
    assert_eq!(
        find(&[Attribute::Class(ObjectClass::SECRET_KEY)]),
        handles_of(&objects, &["key-1", "key-2", "key-3"])
    );
    assert_eq!(
        find(&[Attribute::Label(b"key-2".to_vec())]),
        handles_of(&objects, &["key-2"])
    );
    assert_eq!(
        find(&[Attribute::Id(b"id-a".to_vec())]),
        handles_of(&objects, &["key-1", "key-3"])
    );
    assert_eq!(
        find(&[Attribute::Id(b"id-a".to_vec()), Attribute::Token(false)]),
        Vec::<ObjectHandle>::new()
    );
    assert_eq!(
        find(&[
            Attribute::Id(b"id-a".to_vec()),
            Attribute::Label(b"key-3".to_vec())
        ]),
        handles_of(&objects, &["key-3"])
    );
    assert_eq!(
        find(&[Attribute::Token(false)]),
        handles_of(&objects, &["data-2", "key-2"])
    );
    assert!(find(&[Attribute::Label(b"no such label".to_vec())]).is_empty());
    assert!(find(&[Attribute::Class(ObjectClass::CERTIFICATE)]).is_empty());
    // A label is matched exactly, not as a prefix.
    assert!(find(&[Attribute::Label(b"key".to_vec())]).is_empty());
}

#[test]
fn empty_template_finds_every_visible_object() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let objects = populate(&session);
    let all: Vec<ObjectHandle> = sorted(objects.iter().map(|(_, h)| *h).collect());
    assert_eq!(sorted(session.find_objects(&[]).unwrap()), all);
}

#[test]
fn private_objects_are_invisible_without_login() {
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    populate(&session);
    session.logout().unwrap();
    let labels = |s: &Session| {
        let mut labels: Vec<String> = s
            .find_objects(&[])
            .unwrap()
            .into_iter()
            .map(|h| {
                String::from_utf8(attribute_bytes(
                    s,
                    h,
                    cryptoki::object::AttributeType::Label,
                ))
                .unwrap()
            })
            .collect();
        labels.sort();
        labels
    };
    assert_eq!(labels(&session), vec!["data-1", "data-2"]);
    assert!(session
        .find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY)])
        .unwrap()
        .is_empty());
    // A search by one indexed attribute is answered from the index alone; it must
    // hide the same objects.
    assert!(find_by_label(&session, "key-1").is_empty());
    assert_eq!(find_by_label(&session, "data-1").len(), 1);
    let other = ctx.open_ro_session(slot).unwrap();
    assert_eq!(labels(&other), vec!["data-1", "data-2"]);
    session.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    // C_Logout destroyed the private session object key-2 (§5.6 C_Logout).
    assert_eq!(labels(&session), vec!["data-1", "data-2", "key-1", "key-3"]);
    // Private token objects are not readable by handle while logged out either.
    let key = find_by_label(&session, "key-1")[0];
    session.logout().unwrap();
    let got = rv(session.get_attributes(key, &[cryptoki::object::AttributeType::Label]));
    assert_eq!(
        got,
        RvError::ObjectHandleInvalid,
        "a private object's handle while logged out"
    );
}

#[test]
fn results_come_in_chunks_until_exhausted() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let objects = populate(&session);
    let raw = Raw::load();
    raw.find_objects_init(session.handle(), &[]).unwrap();
    let mut found = Vec::new();
    loop {
        let chunk = raw.find_objects(session.handle(), 1).unwrap();
        assert!(chunk.len() <= 1);
        if chunk.is_empty() {
            break;
        }
        found.extend(chunk);
    }
    assert!(
        raw.find_objects(session.handle(), 10).unwrap().is_empty(),
        "exhausted search stays empty"
    );
    raw.find_objects_final(session.handle()).unwrap();
    found.sort();
    let mut expected: Vec<CK_OBJECT_HANDLE> = objects.iter().map(|(_, h)| h.handle()).collect();
    expected.sort();
    assert_eq!(found, expected);
}

#[test]
fn second_find_init_while_one_is_active_is_refused() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    populate(&session);
    let raw = Raw::load();
    raw.find_objects_init(session.handle(), &[RawAttr::ulong(CKA_CLASS, CKO_DATA)])
        .unwrap();
    assert_eq!(
        raw.find_objects_init(session.handle(), &[]),
        Err(RvError::OperationActive)
    );
    assert_rv!(session.find_objects(&[]), RvError::OperationActive);
    // The first search is unharmed.
    assert_eq!(raw.find_objects(session.handle(), 10).unwrap().len(), 2);
    raw.find_objects_final(session.handle()).unwrap();
    assert_eq!(session.find_objects(&[]).unwrap().len(), 5);
}

#[test]
fn searches_in_different_sessions_are_independent() {
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    populate(&session);
    let other = ctx.open_ro_session(slot).unwrap();
    let raw = Raw::load();
    raw.find_objects_init(session.handle(), &[]).unwrap();
    assert_eq!(
        other
            .find_objects(&[Attribute::Class(ObjectClass::DATA)])
            .unwrap()
            .len(),
        2
    );
    raw.find_objects_final(session.handle()).unwrap();
}

#[test]
fn find_objects_without_init_is_refused() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let raw = Raw::load();
    assert_eq!(
        raw.find_objects(session.handle(), 10),
        Err(RvError::OperationNotInitialized)
    );
    assert_eq!(
        raw.find_objects_final(session.handle()),
        Err(RvError::OperationNotInitialized)
    );
    raw.find_objects_init(session.handle(), &[]).unwrap();
    raw.find_objects_final(session.handle()).unwrap();
    assert_eq!(
        raw.find_objects(session.handle(), 10),
        Err(RvError::OperationNotInitialized)
    );
}

#[test]
fn objects_created_during_a_search_do_not_break_it() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    populate(&session);
    let raw = Raw::load();
    raw.find_objects_init(session.handle(), &[]).unwrap();
    let first = raw.find_objects(session.handle(), 1).unwrap();
    session
        .create_object(&data_template("late", b"x", false))
        .unwrap();
    let rest = raw.find_objects(session.handle(), 100).unwrap();
    raw.find_objects_final(session.handle()).unwrap();
    let total = first.len() + rest.len();
    assert!(
        (5..=6).contains(&total),
        "a search over 5 objects returned {total}"
    );
}

#[test]
fn logout_destroys_private_session_objects() {
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    let observer = ctx.open_ro_session(slot).unwrap();
    let private = session
        .create_object(&aes_template("private-session", &[1; 16], false))
        .unwrap();
    let public = session
        .create_object(&data_template("public-session", b"x", false))
        .unwrap();
    observer.logout().unwrap();
    session.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    assert!(find_by_label(&session, "private-session").is_empty());
    assert_rv!(
        session.get_attributes(private, &[cryptoki::object::AttributeType::Label]),
        RvError::ObjectHandleInvalid
    );
    assert_eq!(find_by_label(&session, "public-session"), vec![public]);
}

/// In a fresh process objects are loaded from the store as searches name them, and after
/// many searches that miss the cache the whole token is loaded at once (the token's
/// threshold for 600 objects is 75 such searches): every search is answered the same
/// on both sides of that switch, private objects stay hidden until login, and an object
/// another process creates afterwards is found.
#[test]
fn searches_find_the_same_objects_before_and_after_the_token_loads_them_all() {
    const COUNT: usize = 600;
    let env = TestEnv::with_options(Options {
        log_level: "info",
        ..Options::default()
    });
    {
        let (ctx, _slot, session) = ready_token(&env);
        for i in 0..COUNT {
            let label = format!("obj-{i}");
            let mut template = data_template(&label, label.as_bytes(), true);
            if i % 10 == 0 {
                template.retain(|a| !matches!(a, Attribute::Private(_)));
                template.push(Attribute::Private(true));
            }
            session.create_object(&template).unwrap();
        }
        drop(session);
        ctx.finalize().unwrap();
    }
    let ctx = env.load();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let public = ctx.open_ro_session(slot).unwrap();
    for i in (0..COUNT).rev() {
        let expected = usize::from(i % 10 != 0);
        assert_eq!(
            find_by_label(&public, &format!("obj-{i}")).len(),
            expected,
            "obj-{i} before login"
        );
    }
    let session = user_session(&ctx, slot);
    for i in 0..COUNT {
        let found = find_by_label(&session, &format!("obj-{i}"));
        assert_eq!(found.len(), 1, "obj-{i} after login");
        assert_eq!(
            attribute_bytes(&session, found[0], cryptoki::object::AttributeType::Value),
            format!("obj-{i}").into_bytes()
        );
    }
    let data = session
        .find_objects(&[Attribute::Class(ObjectClass::DATA)])
        .unwrap();
    assert_eq!(data.len(), COUNT);
    let switched = env
        .log()
        .lines()
        .filter(|l| l.contains("searches missed the object cache"))
        .count();
    assert_eq!(
        switched,
        1,
        "the token was loaded whole once: {}",
        env.log()
    );

    // Another process creates an object the cache has never heard of.
    let status = child_command("child_process_entry_point", "create-late")
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(find_by_label(&session, "created-late").len(), 1);
    assert_eq!(find_by_label(&session, "obj-7").len(), 1);
}

/// Not a test: the body of the child process started above.
#[test]
#[ignore = "child-process entry point: this file's tests run it in a child (--ignored --exact)"]
fn child_process_entry_point() {
    let Some(role) = child_role() else { return };
    assert_eq!(role, "create-late");
    let ctx = load_module();
    initialize(&ctx).unwrap();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let session = user_session(&ctx, slot);
    session
        .create_object(&data_template("created-late", b"late", true))
        .unwrap();
}
