//! Slot and token management (PKCS#11 3.1 §5.5): C_GetSlotList, C_GetSlotInfo,
//! C_GetTokenInfo, C_InitToken, C_GetMechanismList, C_GetMechanismInfo, and the slot model of
//! the contract (SoftHSMv2's: every initialised token plus one free slot, IDs stable).
//! Run with `cargo nextest run` (one process per test).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::process::Stdio;

use common::*;
use cryptoki::error::RvError;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::slot::Slot;

const CHILD_ENTRY: &str = "child_process_entry_point";

/// Not a test: the body of the child processes started below.
#[test]
#[ignore = "child-process entry point: this file's tests run it in a child (--ignored --exact)"]
fn child_process_entry_point() {
    let Some(role) = child_role() else { return };
    match role.as_str() {
        // Print "<slot id> <token label>" for every initialised token.
        "list-slots" => {
            let ctx = load_module();
            initialize(&ctx).unwrap();
            for slot in ctx.get_slots_with_initialized_token().unwrap() {
                let info = ctx.get_token_info(slot).unwrap();
                tell_parent(&format!("{} {}", slot.id(), info.label()));
            }
            ctx.finalize().unwrap();
        }
        other => panic!("unknown child role {other}"),
    }
}

fn bogus_slot() -> Slot {
    Slot::try_from(0x7ead_beefu64).unwrap()
}

#[test]
fn fresh_token_dir_offers_exactly_one_free_slot() {
    let env = TestEnv::new();
    let ctx = env.load();
    let all = ctx.get_all_slots().unwrap();
    let with_token = ctx.get_slots_with_token().unwrap();
    assert_eq!(all.len(), 1, "slots: {all:?}");
    assert_eq!(with_token, all, "the free slot has a token present");
    assert!(ctx.get_slots_with_initialized_token().unwrap().is_empty());
    let info = ctx.get_slot_info(all[0]).unwrap();
    assert!(info.token_present());
    let token = ctx.get_token_info(all[0]).unwrap();
    assert!(!token.token_initialized());
    assert!(!token.user_pin_initialized());
}

#[test]
fn slot_info_describes_a_software_slot() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = free_slot(&ctx);
    let info = ctx.get_slot_info(slot).unwrap();
    assert!(!info.hardware_slot());
    assert!(!info.removable_device());
    assert!(!info.slot_description().trim().is_empty());
    assert!(!info.manufacturer_id().trim().is_empty());
}

#[test]
fn token_info_of_an_initialised_token() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token_labelled(&ctx, "my token");
    let info = ctx.get_token_info(slot).unwrap();
    assert_eq!(info.label(), "my token");
    assert!(info.token_initialized());
    assert!(info.user_pin_initialized());
    assert!(info.login_required());
    assert!(info.rng());
    assert!(!info.write_protected());
    assert!(!info.user_pin_locked());
    assert_eq!(info.min_pin_length(), 4);
    assert_eq!(info.max_pin_length(), 255);
    let serial = info.serial_number();
    if !is_softhsm() {
        assert!(
            serial.len() == 16
                && serial
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "serial {serial:?} is not 16 lower-case hex digits"
        );
        assert!(
            env.token_dir.join(format!("{serial}.db")).exists(),
            "no {serial}.db in the token directory"
        );
    }
}

#[test]
fn init_token_keeps_the_slot_id_and_a_new_free_slot_appears() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = free_slot(&ctx);
    ctx.init_token(slot, &pin(SO_PIN), "first").unwrap();
    let initialised = ctx.get_slots_with_initialized_token().unwrap();
    assert_eq!(initialised, vec![slot], "the token keeps its slot ID");
    let all = ctx.get_slots_with_token().unwrap();
    assert_eq!(
        all.len(),
        2,
        "one initialised token plus one free slot: {all:?}"
    );
    let free = free_slot(&ctx);
    assert_ne!(free, slot);
    assert!(ctx.get_slot_info(free).unwrap().token_present());
    // A second token gets the new free slot, and yet another free slot appears.
    ctx.init_token(free, &pin(SO_PIN), "second").unwrap();
    assert_eq!(ctx.get_slots_with_token().unwrap().len(), 3);
    assert_eq!(ctx.get_token_info(slot).unwrap().label(), "first");
    assert_eq!(ctx.get_token_info(free).unwrap().label(), "second");
}

#[test]
fn slot_ids_survive_a_restart() {
    let env = TestEnv::new();
    let ctx = env.load();
    let first = init_token_labelled(&ctx, "first");
    let second = init_token_labelled(&ctx, "second");
    ctx.finalize().unwrap();
    let output = child_command(CHILD_ENTRY, "list-slots")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut lines = child_lines(&String::from_utf8_lossy(&output.stdout));
    lines.sort();
    let mut expected = vec![
        format!("{} first", first.id()),
        format!("{} second", second.id()),
    ];
    expected.sort();
    assert_eq!(lines, expected, "slot IDs after a restart in a new process");
}

#[test]
fn token_serials_are_unique() {
    let env = TestEnv::new();
    let ctx = env.load();
    let mut serials = Vec::new();
    for i in 0..3 {
        let slot = init_token_labelled(&ctx, &format!("token {i}"));
        serials.push(ctx.get_token_info(slot).unwrap().serial_number().to_owned());
    }
    let mut unique = serials.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3, "serials {serials:?}");
}

#[test]
fn reinit_with_the_same_so_pin_wipes_objects_and_user_pin() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token_labelled(&ctx, "before");
    let serial = ctx.get_token_info(slot).unwrap().serial_number().to_owned();
    {
        let session = user_session(&ctx, slot);
        session
            .create_object(&data_template("public", b"x", true))
            .unwrap();
        session
            .create_object(&aes_template("secret", &[7u8; 32], true))
            .unwrap();
    }
    ctx.init_token(slot, &pin(SO_PIN), "after")
        .expect("re-init with the same SO PIN");
    let info = ctx.get_token_info(slot).unwrap();
    assert_eq!(info.label(), "after");
    assert!(info.token_initialized());
    assert!(
        !info.user_pin_initialized(),
        "re-init leaves the user PIN uninitialised"
    );
    assert_eq!(info.serial_number(), serial, "the token keeps its serial");
    let session = ctx.open_rw_session(slot).unwrap();
    assert!(
        session.find_objects(&[]).unwrap().is_empty(),
        "objects survived re-init"
    );
    assert_rv!(
        session.login(UserType::User, Some(&pin(USER_PIN))),
        RvError::UserPinNotInitialized
    );
    session.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    session.init_pin(&pin(USER_PIN)).unwrap();
    session.logout().unwrap();
    session.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    assert!(
        session.find_objects(&[]).unwrap().is_empty(),
        "private objects survived re-init"
    );
}

#[test]
fn reinit_with_a_wrong_so_pin_is_refused() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    {
        let session = user_session(&ctx, slot);
        session
            .create_object(&data_template("kept", b"x", true))
            .unwrap();
    }
    assert_rv!(
        ctx.init_token(slot, &pin("not-the-so-pin"), "hijack"),
        RvError::PinIncorrect
    );
    assert_eq!(ctx.get_token_info(slot).unwrap().label(), TOKEN_LABEL);
    let session = ctx.open_ro_session(slot).unwrap();
    assert_eq!(
        find_by_label(&session, "kept").len(),
        1,
        "a refused re-init wiped objects"
    );
}

#[test]
fn init_token_with_an_open_session_is_refused() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = ctx.open_ro_session(slot).unwrap();
    assert_rv!(
        ctx.init_token(slot, &pin(SO_PIN), "again"),
        RvError::SessionExists
    );
    drop(session);
    ctx.init_token(slot, &pin(SO_PIN), "again").unwrap();
}

#[test]
fn init_token_checks_the_so_pin_length() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = free_slot(&ctx);
    assert_rv!(
        ctx.init_token(slot, &pin("abc"), "short"),
        RvError::PinLenRange
    );
    assert_rv!(
        ctx.init_token(slot, &pin(&"p".repeat(256)), "long"),
        RvError::PinLenRange
    );
    assert!(!ctx.get_token_info(slot).unwrap().token_initialized());
    ctx.init_token(slot, &pin("abcd"), "shortest").unwrap();
    let second = free_slot(&ctx);
    ctx.init_token(second, &pin(&"p".repeat(255)), "longest")
        .unwrap();
}

#[test]
fn invalid_slot_ids_are_refused() {
    let env = TestEnv::new();
    let ctx = env.load();
    assert_rv!(ctx.get_slot_info(bogus_slot()), RvError::SlotIdInvalid);
    assert_rv!(ctx.get_token_info(bogus_slot()), RvError::SlotIdInvalid);
    assert_rv!(
        ctx.init_token(bogus_slot(), &pin(SO_PIN), "x"),
        RvError::SlotIdInvalid
    );
    assert_rv!(ctx.get_mechanism_list(bogus_slot()), RvError::SlotIdInvalid);
    assert_rv!(ctx.open_rw_session(bogus_slot()), RvError::SlotIdInvalid);
}

#[test]
fn mechanism_list_and_info_answer() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let mechanisms = ctx.get_mechanism_list(slot).expect("C_GetMechanismList");
    for mechanism in &mechanisms {
        let info = ctx
            .get_mechanism_info(slot, *mechanism)
            .expect("C_GetMechanismInfo");
        assert!(
            info.min_key_size() <= info.max_key_size(),
            "{mechanism}: key sizes {}..{}",
            info.min_key_size(),
            info.max_key_size()
        );
    }
    // The free slot answers too.
    ctx.get_mechanism_list(free_slot(&ctx))
        .expect("C_GetMechanismList on the free slot");
}

#[test]
fn token_label_is_stored_with_trailing_blanks_stripped_by_the_reader() {
    let env = TestEnv::new();
    let ctx = env.load();
    let label = "exactly thirty-two characters!!!";
    assert_eq!(label.len(), 32);
    let slot = init_token_labelled(&ctx, label);
    assert_eq!(ctx.get_token_info(slot).unwrap().label(), label);
}

#[test]
fn objects_of_one_token_are_invisible_in_another() {
    let env = TestEnv::new();
    let ctx = env.load();
    let first = init_token_labelled(&ctx, "first");
    let second = init_token_labelled(&ctx, "second");
    {
        let session = user_session(&ctx, first);
        session
            .create_object(&data_template("only-in-first", b"x", true))
            .unwrap();
    }
    let session = user_session(&ctx, second);
    assert!(session
        .find_objects(&[Attribute::Class(ObjectClass::DATA)])
        .unwrap()
        .is_empty());
}
