//! Session management (PKCS#11 3.1 §5.6): C_OpenSession, C_CloseSession, C_CloseAllSessions,
//! C_GetSessionInfo, the session states of §6.7, invalid handles, and what a read-only
//! session may not do. Run with `cargo nextest run`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::raw::{Raw, RawAttr};
use common::*;
use cryptoki::error::RvError;
use cryptoki::object::{Attribute, AttributeType};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki_sys::*;

fn state(session: &Session) -> SessionState {
    session.get_session_info().unwrap().session_state()
}

const BOGUS_SESSION: CK_SESSION_HANDLE = 0x7777_1234;

#[test]
fn public_sessions_report_public_states() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let ro = ctx.open_ro_session(slot).unwrap();
    let rw = ctx.open_rw_session(slot).unwrap();
    let ro_info = ro.get_session_info().unwrap();
    let rw_info = rw.get_session_info().unwrap();
    assert_eq!(ro_info.session_state(), SessionState::RoPublic);
    assert_eq!(rw_info.session_state(), SessionState::RwPublic);
    assert!(!ro_info.read_write());
    assert!(rw_info.read_write());
    assert_eq!(ro_info.slot_id(), slot);
    assert_eq!(rw_info.slot_id(), slot);
    assert_ne!(ro.handle(), rw.handle());
}

#[test]
fn user_login_moves_sessions_to_user_states() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let ro = ctx.open_ro_session(slot).unwrap();
    let rw = ctx.open_rw_session(slot).unwrap();
    ro.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    assert_eq!(state(&ro), SessionState::RoUser);
    assert_eq!(state(&rw), SessionState::RwUser);
    // A session opened while logged in starts in the user state.
    let later = ctx.open_ro_session(slot).unwrap();
    assert_eq!(state(&later), SessionState::RoUser);
}

#[test]
fn so_login_reports_rw_so_functions() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let rw = ctx.open_rw_session(slot).unwrap();
    rw.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    assert_eq!(state(&rw), SessionState::RwSecurityOfficer);
    let second = ctx.open_rw_session(slot).unwrap();
    assert_eq!(state(&second), SessionState::RwSecurityOfficer);
    rw.logout().unwrap();
    assert_eq!(state(&second), SessionState::RwPublic);
}

#[test]
fn session_without_the_serial_flag_is_refused() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let raw = Raw::load();
    assert_eq!(
        raw.open_session(slot.id(), 0),
        Err(RvError::SessionParallelNotSupported)
    );
    assert_eq!(
        raw.open_session(slot.id(), CKF_RW_SESSION),
        Err(RvError::SessionParallelNotSupported)
    );
    let handle = raw.open_session(slot.id(), CKF_SERIAL_SESSION).unwrap();
    assert_eq!(raw.session_state(handle), Ok(CKS_RO_PUBLIC_SESSION));
}

#[test]
fn read_only_session_while_the_so_is_logged_in_is_refused() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let rw = ctx.open_rw_session(slot).unwrap();
    rw.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    assert_rv!(ctx.open_ro_session(slot), RvError::SessionReadWriteSoExists);
    ctx.open_rw_session(slot)
        .expect("R/W sessions are still allowed");
}

#[test]
fn so_login_with_a_read_only_session_open_is_refused() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let _ro = ctx.open_ro_session(slot).unwrap();
    let rw = ctx.open_rw_session(slot).unwrap();
    assert_rv!(
        rw.login(UserType::So, Some(&pin(SO_PIN))),
        RvError::SessionReadOnlyExists
    );
    assert_eq!(state(&rw), SessionState::RwPublic);
}

#[test]
fn closed_session_handle_becomes_invalid() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = ctx.open_rw_session(slot).unwrap();
    let handle = session.handle();
    session.close().unwrap();
    let raw = Raw::load();
    assert_eq!(
        raw.session_state(handle),
        Err(RvError::SessionHandleInvalid)
    );
    assert_eq!(
        raw.close_session(handle),
        Err(RvError::SessionHandleInvalid)
    );
}

/// The module remembers each thread's last session look-up (`provider::session_of`): a
/// handle used just before its session closed, or before the module was finalized and
/// initialised again (handles then count from the start again), must not find the old
/// session through that memory.
#[test]
fn a_handle_used_just_before_its_session_ended_names_nothing_after() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let raw = Raw::load();
    let session = ctx.open_ro_session(slot).unwrap();
    let handle = session.handle();
    assert_eq!(raw.session_state(handle), Ok(CKS_RO_PUBLIC_SESSION));
    session.close().unwrap();
    assert_eq!(
        raw.session_state(handle),
        Err(RvError::SessionHandleInvalid)
    );
    // All of a slot's sessions at once.
    let session = ctx.open_ro_session(slot).unwrap();
    let handle = session.handle();
    assert_eq!(raw.session_state(handle), Ok(CKS_RO_PUBLIC_SESSION));
    assert_eq!(raw.close_all_sessions(slot.id()), Ok(()));
    std::mem::forget(session); // closed already
    assert_eq!(
        raw.session_state(handle),
        Err(RvError::SessionHandleInvalid)
    );
    // Finalized and initialised again: the first handle of the new provider is the
    // first handle of the old one, and names the new session.
    ctx.finalize().unwrap();
    let ctx = env.load();
    let first = ctx.open_ro_session(slot).unwrap();
    assert_eq!(raw.session_state(first.handle()), Ok(CKS_RO_PUBLIC_SESSION));
    std::mem::forget(first);
    ctx.finalize().unwrap();
    let ctx = env.load();
    let again = ctx.open_rw_session(slot).unwrap();
    assert_eq!(raw.session_state(again.handle()), Ok(CKS_RW_PUBLIC_SESSION));
}

/// The same while another thread is using the session: its call in flight keeps the
/// session alive for a moment after C_CloseSession, and the closing thread's next call
/// with the handle, made at once, must still find it closed.
#[test]
fn a_session_another_thread_is_using_is_closed_at_once_for_the_closer() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let raw = Raw::load();
    let current = AtomicU64::new(CK_INVALID_HANDLE);
    let stop = AtomicBool::new(false);
    /// Stops the other thread however this one leaves the scope (a failed assertion too).
    struct Stop<'a>(&'a AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    std::thread::scope(|sc| {
        sc.spawn(|| {
            let raw = Raw::load();
            while !stop.load(Ordering::Relaxed) {
                let _ = raw.session_state(current.load(Ordering::Relaxed));
            }
        });
        let _stop = Stop(&stop);
        for i in 0..20_000 {
            let handle = ctx.open_ro_session(slot).unwrap();
            let h = handle.handle();
            std::mem::forget(handle); // closed below, through the C ABI
            current.store(h, Ordering::Relaxed);
            assert_eq!(raw.session_state(h), Ok(CKS_RO_PUBLIC_SESSION));
            // One session at a time, or all of the slot's.
            if i % 2 == 0 {
                assert_eq!(raw.close_session(h), Ok(()));
            } else {
                assert_eq!(raw.close_all_sessions(slot.id()), Ok(()));
            }
            assert_eq!(raw.session_state(h), Err(RvError::SessionHandleInvalid));
        }
    });
}

#[test]
fn bogus_session_handles_are_refused_everywhere() {
    let env = TestEnv::new();
    let ctx = env.load();
    let _slot = init_token(&ctx);
    let raw = Raw::load();
    assert_eq!(
        raw.session_state(BOGUS_SESSION),
        Err(RvError::SessionHandleInvalid)
    );
    assert_eq!(
        raw.session_state(CK_INVALID_HANDLE),
        Err(RvError::SessionHandleInvalid)
    );
    assert_eq!(
        raw.close_session(BOGUS_SESSION),
        Err(RvError::SessionHandleInvalid)
    );
    assert_eq!(
        raw.create_object(BOGUS_SESSION, &[RawAttr::ulong(CKA_CLASS, CKO_DATA)]),
        Err(RvError::SessionHandleInvalid)
    );
    assert_eq!(
        raw.find_objects_init(BOGUS_SESSION, &[]),
        Err(RvError::SessionHandleInvalid)
    );
    assert_eq!(
        raw.find_objects(BOGUS_SESSION, 4),
        Err(RvError::SessionHandleInvalid)
    );
    assert_eq!(
        raw.find_objects_final(BOGUS_SESSION),
        Err(RvError::SessionHandleInvalid)
    );
    assert_eq!(
        raw.object_size(BOGUS_SESSION, 1),
        Err(RvError::SessionHandleInvalid)
    );
    let (result, _) = raw.get_attributes(BOGUS_SESSION, 1, &[CKA_LABEL], 16);
    assert_eq!(result, Err(RvError::SessionHandleInvalid));
}

#[test]
fn close_all_sessions_closes_every_session_of_the_slot_and_logs_out() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token_labelled(&ctx, "one");
    let other = init_token_labelled(&ctx, "two");
    let a = ctx.open_rw_session(slot).unwrap();
    let b = ctx.open_ro_session(slot).unwrap();
    let elsewhere = ctx.open_rw_session(other).unwrap();
    a.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    let raw = Raw::load();
    raw.close_all_sessions(slot.id()).unwrap();
    assert_rv!(a.get_session_info(), RvError::SessionHandleInvalid);
    assert_rv!(b.get_session_info(), RvError::SessionHandleInvalid);
    assert_eq!(
        state(&elsewhere),
        SessionState::RwPublic,
        "another slot's session survives"
    );
    let fresh = ctx.open_ro_session(slot).unwrap();
    assert_eq!(
        state(&fresh),
        SessionState::RoPublic,
        "closing all sessions logs out"
    );
    // Closing all sessions of a slot that has none is fine.
    drop(fresh);
    raw.close_all_sessions(slot.id()).unwrap();
    assert_eq!(
        raw.close_all_sessions(0x7ead_beef),
        Err(RvError::SlotIdInvalid)
    );
    std::mem::forget(a);
    std::mem::forget(b);
}

#[test]
fn closing_the_last_session_logs_out() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = ctx.open_rw_session(slot).unwrap();
    session.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    session.close().unwrap();
    let session = ctx.open_rw_session(slot).unwrap();
    assert_eq!(state(&session), SessionState::RwPublic);
}

#[test]
fn closing_one_of_two_sessions_keeps_the_login() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let first = ctx.open_rw_session(slot).unwrap();
    let second = ctx.open_rw_session(slot).unwrap();
    first.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    first.close().unwrap();
    assert_eq!(state(&second), SessionState::RwUser);
}

#[test]
fn writes_in_a_read_only_session_are_refused() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    {
        let rw = user_session(&ctx, slot);
        rw.create_object(&data_template("token-data", b"x", true))
            .unwrap();
    }
    let ro = ctx.open_ro_session(slot).unwrap();
    let token_object = find_by_label(&ro, "token-data")[0];
    assert_rv!(
        ro.create_object(&data_template("new-token-data", b"x", true)),
        RvError::SessionReadOnly
    );
    assert_rv!(ro.destroy_object(token_object), RvError::SessionReadOnly);
    assert_rv!(
        ro.update_attributes(token_object, &[Attribute::Label(b"renamed".to_vec())]),
        RvError::SessionReadOnly
    );
    assert_rv!(
        ro.copy_object(token_object, &[Attribute::Label(b"copy".to_vec())]),
        RvError::SessionReadOnly
    );
    assert_rv!(
        ro.set_pin(&pin(USER_PIN), &pin("new-user-pin")),
        RvError::SessionReadOnly
    );
    // Session objects are allowed in a read-only session (§4.1, table 6)...
    let session_object = ro
        .create_object(&data_template("session-data", b"y", false))
        .unwrap();
    ro.update_attributes(session_object, &[Attribute::Label(b"renamed".to_vec())])
        .unwrap();
    // ...but copying one into a token object is a token write.
    assert_rv!(
        ro.copy_object(session_object, &[Attribute::Token(true)]),
        RvError::SessionReadOnly
    );
    ro.destroy_object(session_object).unwrap();
    assert_eq!(
        attribute_bytes(&ro, token_object, AttributeType::Label),
        b"token-data",
        "the token object is unchanged"
    );
}

#[test]
fn sessions_of_one_application_see_each_others_session_objects() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let a = ctx.open_rw_session(slot).unwrap();
    let b = ctx.open_ro_session(slot).unwrap();
    let object = a
        .create_object(&data_template("shared", b"x", false))
        .unwrap();
    assert_eq!(find_by_label(&b, "shared"), vec![object]);
}

#[test]
fn session_objects_vanish_when_their_session_closes() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let observer = ctx.open_ro_session(slot).unwrap();
    let owner = ctx.open_rw_session(slot).unwrap();
    let session_object = owner
        .create_object(&data_template("ephemeral", b"x", false))
        .unwrap();
    let token_object = owner
        .create_object(&data_template("durable", b"x", true))
        .unwrap();
    owner.close().unwrap();
    assert!(find_by_label(&observer, "ephemeral").is_empty());
    assert_rv!(
        observer.get_attributes(session_object, &[AttributeType::Label]),
        RvError::ObjectHandleInvalid
    );
    assert_eq!(find_by_label(&observer, "durable"), vec![token_object]);
}

#[test]
fn token_objects_outlive_all_sessions() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    {
        let session = user_session(&ctx, slot);
        session
            .create_object(&data_template("public", b"x", true))
            .unwrap();
        session
            .create_object(&aes_template("private", &[1; 16], true))
            .unwrap();
    }
    let session = user_session(&ctx, slot);
    assert_eq!(find_by_label(&session, "public").len(), 1);
    assert_eq!(find_by_label(&session, "private").len(), 1);
}

#[test]
fn many_sessions_can_be_open_at_once() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let sessions: Vec<Session> = (0..64)
        .map(|_| ctx.open_ro_session(slot).unwrap())
        .collect();
    let mut handles: Vec<_> = sessions.iter().map(Session::handle).collect();
    handles.sort();
    handles.dedup();
    assert_eq!(handles.len(), 64, "session handles are unique");
}
