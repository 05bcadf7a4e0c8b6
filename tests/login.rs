//! PINs and login (PKCS#11 3.1 §5.5 C_InitPIN, C_SetPIN; §5.6 C_Login, C_Logout), and the
//! user-PIN lockout of the contract: `max_pin_failures` consecutive failures lock the user
//! PIN; CKF_USER_PIN_COUNT_LOW / _FINAL_TRY / _LOCKED report the count; a successful login
//! resets it; the SO's C_InitPIN unlocks. Run with `cargo nextest run`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::*;
use cryptoki::context::Pkcs11;
use cryptoki::error::RvError;
use cryptoki::session::{SessionState, UserType};
use cryptoki::slot::Slot;

fn state(session: &cryptoki::session::Session) -> SessionState {
    session.get_session_info().unwrap().session_state()
}

/// (count low, final try, locked) as C_GetTokenInfo reports them.
fn pin_flags(ctx: &Pkcs11, slot: Slot) -> (bool, bool, bool) {
    let info = ctx.get_token_info(slot).unwrap();
    (
        info.user_pin_count_low(),
        info.user_pin_final_try(),
        info.user_pin_locked(),
    )
}

#[test]
fn init_pin_sets_the_user_pin_initialized_flag() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = free_slot(&ctx);
    ctx.init_token(slot, &pin(SO_PIN), TOKEN_LABEL).unwrap();
    assert!(!ctx.get_token_info(slot).unwrap().user_pin_initialized());
    let session = ctx.open_rw_session(slot).unwrap();
    session.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    session.init_pin(&pin(USER_PIN)).unwrap();
    assert!(ctx.get_token_info(slot).unwrap().user_pin_initialized());
}

#[test]
fn user_login_before_init_pin_is_refused() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = free_slot(&ctx);
    ctx.init_token(slot, &pin(SO_PIN), TOKEN_LABEL).unwrap();
    let session = ctx.open_rw_session(slot).unwrap();
    assert_rv!(
        session.login(UserType::User, Some(&pin(USER_PIN))),
        RvError::UserPinNotInitialized
    );
}

#[test]
fn init_pin_needs_an_so_session() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = ctx.open_rw_session(slot).unwrap();
    assert_rv!(
        session.init_pin(&pin("new-user-pin")),
        RvError::UserNotLoggedIn
    );
    session.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    assert_rv!(
        session.init_pin(&pin("new-user-pin")),
        RvError::UserNotLoggedIn
    );
}

#[test]
fn init_pin_checks_the_pin_length() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = ctx.open_rw_session(slot).unwrap();
    session.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    assert_rv!(session.init_pin(&pin("123")), RvError::PinLenRange);
    assert_rv!(
        session.init_pin(&pin(&"u".repeat(256))),
        RvError::PinLenRange
    );
    session.init_pin(&pin(&"u".repeat(255))).unwrap();
    session.logout().unwrap();
    session
        .login(UserType::User, Some(&pin(&"u".repeat(255))))
        .unwrap();
}

#[test]
fn set_pin_changes_the_user_pin() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    session
        .set_pin(&pin(USER_PIN), &pin("changed-user-pin"))
        .unwrap();
    session.logout().unwrap();
    assert_rv!(
        session.login(UserType::User, Some(&pin(USER_PIN))),
        RvError::PinIncorrect
    );
    session
        .login(UserType::User, Some(&pin("changed-user-pin")))
        .unwrap();
}

#[test]
fn set_pin_without_login_changes_the_user_pin() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = ctx.open_rw_session(slot).unwrap();
    session
        .set_pin(&pin(USER_PIN), &pin("changed-user-pin"))
        .unwrap();
    session
        .login(UserType::User, Some(&pin("changed-user-pin")))
        .unwrap();
}

#[test]
fn set_pin_keeps_private_objects_readable() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = session
        .create_object(&aes_template("k", &[0x42; 16], true))
        .unwrap();
    session
        .set_pin(&pin(USER_PIN), &pin("changed-user-pin"))
        .unwrap();
    session.logout().unwrap();
    session
        .login(UserType::User, Some(&pin("changed-user-pin")))
        .unwrap();
    let found = find_by_label(&session, "k");
    assert_eq!(found.len(), 1);
    let _ = key;
    let key = found[0];
    assert_eq!(
        attribute_bytes(&session, key, cryptoki::object::AttributeType::Value),
        vec![0x42; 16]
    );
}

#[test]
fn set_pin_with_a_wrong_old_pin_is_refused() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    assert_rv!(
        session.set_pin(&pin("wrong-old-pin"), &pin("new-user-pin")),
        RvError::PinIncorrect
    );
    session.logout().unwrap();
    session.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
}

#[test]
fn set_pin_checks_the_new_pin_length() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    assert_rv!(
        session.set_pin(&pin(USER_PIN), &pin("abc")),
        RvError::PinLenRange
    );
    assert_rv!(
        session.set_pin(&pin(USER_PIN), &pin(&"x".repeat(256))),
        RvError::PinLenRange
    );
}

#[test]
fn set_pin_in_a_read_only_session_is_refused() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = ctx.open_ro_session(slot).unwrap();
    session.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    assert_rv!(
        session.set_pin(&pin(USER_PIN), &pin("new-user-pin")),
        RvError::SessionReadOnly
    );
}

#[test]
fn so_set_pin_changes_the_so_pin() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    {
        let session = ctx.open_rw_session(slot).unwrap();
        session.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
        session.set_pin(&pin(SO_PIN), &pin("new-so-pin")).unwrap();
        session.logout().unwrap();
        assert_rv!(
            session.login(UserType::So, Some(&pin(SO_PIN))),
            RvError::PinIncorrect
        );
        session
            .login(UserType::So, Some(&pin("new-so-pin")))
            .unwrap();
    }
    assert_rv!(
        ctx.init_token(slot, &pin(SO_PIN), "again"),
        RvError::PinIncorrect
    );
    ctx.init_token(slot, &pin("new-so-pin"), "again").unwrap();
}

#[test]
fn wrong_user_pin_is_refused() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = ctx.open_rw_session(slot).unwrap();
    assert_rv!(
        session.login(UserType::User, Some(&pin("wrong-pin"))),
        RvError::PinIncorrect
    );
    assert_eq!(state(&session), SessionState::RwPublic);
}

#[test]
fn wrong_so_pin_is_refused() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = ctx.open_rw_session(slot).unwrap();
    assert_rv!(
        session.login(UserType::So, Some(&pin("wrong-pin"))),
        RvError::PinIncorrect
    );
    assert_eq!(state(&session), SessionState::RwPublic);
}

#[test]
fn second_login_as_the_same_user_is_refused() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let first = ctx.open_rw_session(slot).unwrap();
    let second = ctx.open_rw_session(slot).unwrap();
    first.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    assert_rv!(
        first.login(UserType::User, Some(&pin(USER_PIN))),
        RvError::UserAlreadyLoggedIn
    );
    // Login state belongs to the token, so the other session is logged in too.
    assert_rv!(
        second.login(UserType::User, Some(&pin(USER_PIN))),
        RvError::UserAlreadyLoggedIn
    );
}

#[test]
fn so_login_while_the_user_is_logged_in_is_refused() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    assert_rv!(
        session.login(UserType::So, Some(&pin(SO_PIN))),
        RvError::UserAnotherAlreadyLoggedIn
    );
}

#[test]
fn user_login_while_the_so_is_logged_in_is_refused() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = ctx.open_rw_session(slot).unwrap();
    session.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    assert_rv!(
        session.login(UserType::User, Some(&pin(USER_PIN))),
        RvError::UserAnotherAlreadyLoggedIn
    );
}

#[test]
fn logout_without_login_is_refused() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = ctx.open_rw_session(slot).unwrap();
    assert_rv!(session.logout(), RvError::UserNotLoggedIn);
    session.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    session.logout().unwrap();
    assert_rv!(session.logout(), RvError::UserNotLoggedIn);
}

#[test]
fn logout_applies_to_every_session_of_the_token() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let rw = ctx.open_rw_session(slot).unwrap();
    let ro = ctx.open_ro_session(slot).unwrap();
    rw.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    assert_eq!(state(&ro), SessionState::RoUser);
    ro.logout().unwrap();
    assert_eq!(state(&rw), SessionState::RwPublic);
    assert_eq!(state(&ro), SessionState::RoPublic);
}

#[test]
fn user_pin_locks_after_the_configured_number_of_failures() {
    assert_eq!(
        MAX_PIN_FAILURES, 3,
        "this test walks through exactly three failures"
    );
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = ctx.open_rw_session(slot).unwrap();
    assert_eq!(pin_flags(&ctx, slot), (false, false, false));

    assert_rv!(
        session.login(UserType::User, Some(&pin("wrong-1"))),
        RvError::PinIncorrect
    );
    assert_eq!(
        pin_flags(&ctx, slot),
        (true, false, false),
        "after one failure: COUNT_LOW"
    );

    assert_rv!(
        session.login(UserType::User, Some(&pin("wrong-2"))),
        RvError::PinIncorrect
    );
    assert_eq!(
        pin_flags(&ctx, slot),
        (true, true, false),
        "after two failures: FINAL_TRY"
    );

    let third = rv(session.login(UserType::User, Some(&pin("wrong-3"))));
    assert!(
        matches!(third, RvError::PinIncorrect | RvError::PinLocked),
        "the failure that locks returned {third:?}"
    );
    let (_, _, locked) = pin_flags(&ctx, slot);
    assert!(locked, "after three failures: LOCKED");

    assert_rv!(
        session.login(UserType::User, Some(&pin(USER_PIN))),
        RvError::PinLocked
    );
    assert_eq!(state(&session), SessionState::RwPublic);
    // C_SetPIN with the right old PIN does not bypass the lock either.
    assert_rv!(
        session.set_pin(&pin(USER_PIN), &pin("bypass-attempt")),
        RvError::PinLocked
    );
}

#[test]
fn successful_login_resets_the_failure_count() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = ctx.open_rw_session(slot).unwrap();
    for round in 0..3 {
        for _ in 0..MAX_PIN_FAILURES - 1 {
            assert_rv!(
                session.login(UserType::User, Some(&pin("wrong"))),
                RvError::PinIncorrect
            );
        }
        assert!(
            pin_flags(&ctx, slot).1,
            "round {round}: FINAL_TRY after max-1 failures"
        );
        session.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
        assert_eq!(
            pin_flags(&ctx, slot),
            (false, false, false),
            "round {round}: flags cleared"
        );
        session.logout().unwrap();
    }
}

#[test]
fn so_init_pin_unlocks_a_locked_user_pin() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = ctx.open_rw_session(slot).unwrap();
    for _ in 0..MAX_PIN_FAILURES {
        let _ = session.login(UserType::User, Some(&pin("wrong")));
    }
    assert!(pin_flags(&ctx, slot).2, "user PIN locked");
    session.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    session.init_pin(&pin("fresh-user-pin")).unwrap();
    session.logout().unwrap();
    assert_eq!(pin_flags(&ctx, slot), (false, false, false));
    session
        .login(UserType::User, Some(&pin("fresh-user-pin")))
        .unwrap();
}

#[test]
fn failures_of_the_so_do_not_count_against_the_user() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = ctx.open_rw_session(slot).unwrap();
    for _ in 0..MAX_PIN_FAILURES - 1 {
        let _ = session.login(UserType::So, Some(&pin("wrong-so")));
    }
    assert_eq!(pin_flags(&ctx, slot), (false, false, false));
    session.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
}

#[test]
fn lockout_is_off_when_max_pin_failures_is_zero() {
    let env = TestEnv::with_options(Options {
        max_pin_failures: 0,
        ..Options::default()
    });
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = ctx.open_rw_session(slot).unwrap();
    for _ in 0..10 {
        assert_rv!(
            session.login(UserType::User, Some(&pin("wrong"))),
            RvError::PinIncorrect
        );
    }
    assert!(!pin_flags(&ctx, slot).2, "locked although lockout is off");
    session.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
}

#[test]
fn lockout_threshold_follows_the_configuration() {
    let env = TestEnv::with_options(Options {
        max_pin_failures: 5,
        ..Options::default()
    });
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = ctx.open_rw_session(slot).unwrap();
    for _ in 0..4 {
        assert_rv!(
            session.login(UserType::User, Some(&pin("wrong"))),
            RvError::PinIncorrect
        );
    }
    assert_eq!(pin_flags(&ctx, slot), (true, true, false));
    let _ = session.login(UserType::User, Some(&pin("wrong")));
    assert!(pin_flags(&ctx, slot).2);
    assert_rv!(
        session.login(UserType::User, Some(&pin(USER_PIN))),
        RvError::PinLocked
    );
}
