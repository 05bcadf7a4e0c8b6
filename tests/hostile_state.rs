//! The hostile caller, wrong state: every continuation of an operation without its
//! C_*Init, every C_*Init twice, writes through a read-only session, private objects and
//! C_Logout without a login, bad user types and session flags. Each answers the code
//! PKCS#11 3.0 assigns to that state, through the C ABI.
//!
//! Run with `cargo nextest run --test hostile_state`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use cryptoki::object::Attribute;
use cryptoki_sys::*;

use common::hostile::*;
use common::*;

/// A logged-in token with a session AES key; returns (env, ctx, session, api, key).
fn setup() -> (
    TestEnv,
    cryptoki::context::Pkcs11,
    cryptoki::session::Session,
    Api,
    u64,
) {
    let env = TestEnv::new();
    let (ctx, _slot, session) = ready_token(&env);
    let mut t = aes_template("k", &[3; 32], false);
    t.push(Attribute::Sign(true));
    let key = session.create_object(&t).unwrap().handle();
    (env, ctx, session, Api::load(), key)
}

fn call(api: &Api, name: &str, plan: &Plan) -> CK_RV {
    let mut frame = Frame::default();
    let w = words(kinds(name), plan, &mut frame);
    // SAFETY: every pointer points into `frame`.
    let rv = unsafe { api.call(name, &w) };
    assert_eq!(api.info_rv(), CKR_OK, "module poisoned by {name}");
    rv
}

fn open(api: &Api, slot: u64, flags: CK_FLAGS) -> Result<u64, CK_RV> {
    let mut f = Frame::default();
    let out = f.ulong(0);
    // SAFETY: one output handle.
    let rv = unsafe { api.call("C_OpenSession", &[slot, flags, 0, 0, out]) };
    // SAFETY: owned by `f`.
    (rv == CKR_OK)
        .then(|| unsafe { *(out as *const CK_ULONG) })
        .ok_or(rv)
}

#[test]
fn continuations_without_their_init_answer_operation_not_initialised() {
    let (_env, _ctx, session, api, key) = setup();
    let plan = Plan {
        session: session.handle(),
        objects: vec![key],
        ..Plan::default()
    };
    let mut wrong = Vec::new();
    for name in [
        "C_Encrypt",
        "C_EncryptUpdate",
        "C_EncryptFinal",
        "C_Decrypt",
        "C_DecryptUpdate",
        "C_DecryptFinal",
        "C_Digest",
        "C_DigestUpdate",
        "C_DigestKey",
        "C_DigestFinal",
        "C_Sign",
        "C_SignUpdate",
        "C_SignFinal",
        "C_Verify",
        "C_VerifyUpdate",
        "C_VerifyFinal",
        "C_FindObjects",
        "C_FindObjectsFinal",
    ] {
        let rv = call(&api, name, &plan);
        if rv != CKR_OPERATION_NOT_INITIALIZED {
            wrong.push(format!("{name}: {}", name_of(rv)));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

fn name_of(rv: CK_RV) -> String {
    common::hostile::name(rv)
}

#[test]
fn a_second_init_while_an_operation_is_active_answers_operation_active() {
    let (_env, _ctx, session, api, key) = setup();
    let mut wrong = Vec::new();
    for (name, mech) in [
        ("C_EncryptInit", CKM_AES_ECB),
        ("C_DecryptInit", CKM_AES_ECB),
        ("C_DigestInit", CKM_SHA256),
        ("C_SignInit", CKM_AES_CMAC),
        ("C_VerifyInit", CKM_AES_CMAC),
        ("C_FindObjectsInit", 0),
    ] {
        let plan = Plan {
            session: session.handle(),
            objects: vec![key],
            mech: Some(Mech::none(mech)),
            templates: vec![vec![]],
            ..Plan::default()
        };
        let first = call(&api, name, &plan);
        let second = call(&api, name, &plan);
        if first != CKR_OK || second != CKR_OPERATION_ACTIVE {
            wrong.push(format!(
                "{name}: first {}, second {}",
                name_of(first),
                name_of(second)
            ));
        }
        // End the operation (whatever it is) by closing nothing: a fresh session per init
        // would hide the state; instead finish it through its final call.
        let finals = [
            "C_EncryptFinal",
            "C_DecryptFinal",
            "C_DigestFinal",
            "C_SignFinal",
            "C_FindObjectsFinal",
        ];
        for f in finals {
            call(&api, f, &plan);
        }
        call(
            &api,
            "C_VerifyFinal",
            &Plan {
                inputs: vec![vec![0; 32]],
                ..plan.clone()
            },
        );
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn read_only_and_logged_out_sessions_refuse_what_needs_more() {
    let (_env, ctx, session, api, _key) = setup();
    let slot = session.get_session_info().unwrap().slot_id().id();
    let ro = open(&api, slot, CKF_SERIAL_SESSION).unwrap();
    let token_data = vec![
        attr_ulong(CKA_CLASS, CKO_DATA),
        attr_bool(CKA_TOKEN, true),
        attr_bool(CKA_PRIVATE, false),
    ];
    let plan = |s: u64, t: Vec<Attr>, inputs: Vec<Vec<u8>>| Plan {
        session: s,
        templates: vec![t],
        inputs,
        values: vec![CKU_USER],
        ..Plan::default()
    };
    let rv = call(
        &api,
        "C_CreateObject",
        &plan(ro, token_data.clone(), vec![]),
    );
    assert_eq!(rv, CKR_SESSION_READ_ONLY, "{}", name_of(rv));
    let pins = vec![USER_PIN.into(), USER_PIN.into()];
    let rv = call(&api, "C_SetPIN", &plan(ro, vec![], pins));
    assert_eq!(rv, CKR_SESSION_READ_ONLY, "{}", name_of(rv));
    // A user type PKCS#11 does not define.
    let mut p = plan(ro, vec![], vec![USER_PIN.into()]);
    p.values = vec![7];
    let rv = call(&api, "C_Login", &p);
    assert_eq!(rv, CKR_USER_TYPE_INVALID, "{}", name_of(rv));
    // Log out: private token objects and a second logout are refused.
    session.logout().unwrap();
    let mut private = token_data;
    private[2] = attr_bool(CKA_PRIVATE, true);
    let rw = open(&api, slot, CKF_SERIAL_SESSION | CKF_RW_SESSION).unwrap();
    let rv = call(&api, "C_CreateObject", &plan(rw, private, vec![]));
    assert_eq!(rv, CKR_USER_NOT_LOGGED_IN, "{}", name_of(rv));
    let rv = call(&api, "C_Logout", &plan(rw, vec![], vec![]));
    assert_eq!(rv, CKR_USER_NOT_LOGGED_IN, "{}", name_of(rv));
    // The SO cannot log in while a read-only session is open (PKCS#11 §5.6).
    let mut so = plan(rw, vec![], vec![SO_PIN.into()]);
    so.values = vec![CKU_SO];
    let rv = call(&api, "C_Login", &so);
    assert_eq!(rv, CKR_SESSION_READ_ONLY_EXISTS, "{}", name_of(rv));
    // Sessions without CKF_SERIAL_SESSION do not exist.
    assert_eq!(
        open(&api, slot, CKF_RW_SESSION),
        Err(CKR_SESSION_PARALLEL_NOT_SUPPORTED)
    );
    drop(ctx);
}
