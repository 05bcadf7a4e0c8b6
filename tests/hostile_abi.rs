//! The hostile caller through the C ABI: every function of `CK_FUNCTION_LIST_3_0` (obtained
//! with `C_GetInterface`) is called with plausible arguments, then with one argument broken
//! at a time — NULL in each pointer, zero and huge lengths and counts (a huge length with a
//! NULL pointer must be refused, not dereferenced), invalid and stale session, object and
//! slot handles, objects of another token — and before `C_Initialize` and after
//! `C_Finalize`. Every call must return a defined CK_RV, never `CKR_GENERAL_ERROR` (which
//! means a caught panic or a broken invariant) and never crash; after every call the module
//! must still answer `C_GetInfo` with `CKR_OK` (a caught panic would poison it).
//!
//! Run with `cargo nextest run --test hostile_abi` (one process per test).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType};
use cryptoki::session::Session;
use cryptoki_sys::*;

use common::hostile::*;
use common::*;

const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const HUGE: [u64; 2] = [1 << 40, u64::MAX];

/// Sessions, keys and handles the calls use. `session` stays open (and logged in) for the
/// whole test, so the keys, session objects of it, live as long as the fixture.
struct Fx {
    _env: TestEnv,
    _ctx: cryptoki::context::Pkcs11,
    api: Api,
    slot: u64,
    other_slot: u64,
    free_slot: u64,
    session: Session,
    _other: Session,
    aes: u64,
    ec_private: u64,
    ec_public: u64,
    peer_point: Vec<u8>,
    other_token_object: u64,
    stale_session: u64,
    destroyed_object: u64,
}

fn fixture() -> Fx {
    let env = TestEnv::with_options(Options {
        max_pin_failures: 1000,
        ..Options::default()
    });
    let ctx = env.load();
    let slot_a = init_token(&ctx);
    let slot_b = init_token_labelled(&ctx, "other-token");
    let free = free_slot(&ctx);
    let session = user_session(&ctx, slot_a);
    let other = user_session(&ctx, slot_b);
    let mut aes = aes_template("aes", &[7; 32], false);
    aes.extend([Attribute::Wrap(true), Attribute::Unwrap(true)]);
    let aes = session.create_object(&aes).unwrap();
    let (ec_public, ec_private) = session
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[Attribute::EcParams(P256.to_vec()), Attribute::Token(false)],
            &[Attribute::Token(false), Attribute::Derive(true)],
        )
        .unwrap();
    let point = attribute_bytes(&session, ec_public, AttributeType::EcPoint);
    let other_token_object = other
        .create_object(&data_template("elsewhere", b"x", true))
        .unwrap();
    let stale = ctx.open_rw_session(slot_a).unwrap();
    let stale_session = stale.handle();
    stale.close().unwrap();
    let doomed = session
        .create_object(&data_template("doomed", b"x", false))
        .unwrap();
    session.destroy_object(doomed).unwrap();
    Fx {
        api: Api::load(),
        slot: slot_a.id(),
        other_slot: slot_b.id(),
        free_slot: free.id(),
        aes: aes.handle(),
        ec_private: ec_private.handle(),
        ec_public: ec_public.handle(),
        peer_point: point[2..].to_vec(),
        other_token_object: other_token_object.handle(),
        stale_session,
        destroyed_object: doomed.handle(),
        session,
        _other: other,
        _ctx: ctx,
        _env: env,
    }
}

/// What must be active in the session before the call.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Prep {
    None,
    Init(&'static str),
    /// A throwaway session object becomes the first object argument.
    Fresh,
}

fn plan_of(name: &str, fx: &Fx) -> (Prep, Plan) {
    let mut p = Plan {
        slot: fx.slot,
        objects: vec![fx.aes, fx.aes],
        ..Plan::default()
    };
    let data_object = vec![
        attr_ulong(CKA_CLASS, CKO_DATA),
        attr_bool(CKA_TOKEN, false),
        attr(CKA_LABEL, b"hostile"),
    ];
    let mut prep = Prep::None;
    let cbc = Mech::bytes(CKM_AES_CBC_PAD, &[0; 16]);
    let ecdsa = Mech::none(CKM_ECDSA_SHA256);
    match name {
        "C_GetSlotList" => p.values = vec![1],
        "C_GetMechanismInfo" => p.values = vec![CKM_AES_ECB],
        "C_InitToken" => p.inputs = vec![SO_PIN.into()],
        "C_InitPIN" => p.inputs = vec![b"new-pin-2222".to_vec()],
        "C_SetPIN" => p.inputs = vec![USER_PIN.into(), USER_PIN.into()],
        "C_OpenSession" => p.values = vec![CKF_SERIAL_SESSION | CKF_RW_SESSION],
        "C_CloseAllSessions" => p.slot = fx.free_slot,
        "C_Login" | "C_LoginUser" => {
            p.values = vec![CKU_USER];
            p.inputs = vec![USER_PIN.into(), b"user".to_vec()];
        }
        "C_CreateObject" => p.templates = vec![data_object],
        "C_CopyObject" => p.templates = vec![vec![attr(CKA_LABEL, b"copy")]],
        "C_DestroyObject" => prep = Prep::Fresh,
        "C_GetAttributeValue" => p.templates = vec![vec![(CKA_LABEL, Some(vec![0; 64]), None)]],
        "C_SetAttributeValue" => {
            prep = Prep::Fresh;
            p.templates = vec![vec![attr(CKA_LABEL, b"renamed")]];
        }
        "C_FindObjectsInit" => p.templates = vec![vec![attr_ulong(CKA_CLASS, CKO_DATA)]],
        "C_FindObjects" | "C_FindObjectsFinal" => {
            prep = Prep::Init("C_FindObjectsInit");
            p.values = vec![16];
            p.templates = vec![vec![attr_ulong(CKA_CLASS, CKO_DATA)]];
        }
        "C_EncryptInit" => p.mech = Some(cbc),
        // The message functions take AES-GCM (its parameter comes with each message).
        "C_MessageEncryptInit" | "C_MessageDecryptInit" => p.mech = Some(Mech::none(CKM_AES_GCM)),
        "C_Encrypt" | "C_EncryptUpdate" | "C_EncryptFinal" => {
            prep = Prep::Init("C_EncryptInit");
            p.mech = Some(cbc);
        }
        "C_DecryptInit" => p.mech = Some(Mech::none(CKM_AES_ECB)),
        "C_Decrypt" | "C_DecryptUpdate" | "C_DecryptFinal" => {
            prep = Prep::Init("C_DecryptInit");
            p.mech = Some(Mech::none(CKM_AES_ECB));
        }
        "C_DigestInit" => p.mech = Some(Mech::none(CKM_SHA256)),
        "C_Digest" | "C_DigestUpdate" | "C_DigestKey" | "C_DigestFinal" => {
            prep = Prep::Init("C_DigestInit");
            p.mech = Some(Mech::none(CKM_SHA256));
        }
        "C_SignInit" | "C_SignRecoverInit" | "C_MessageSignInit" => {
            p.mech = Some(ecdsa);
            p.objects = vec![fx.ec_private];
        }
        "C_Sign" | "C_SignUpdate" | "C_SignFinal" => {
            prep = Prep::Init("C_SignInit");
            p.mech = Some(ecdsa);
            p.objects = vec![fx.ec_private];
        }
        "C_VerifyInit" | "C_VerifyRecoverInit" | "C_MessageVerifyInit" => {
            p.mech = Some(ecdsa);
            p.objects = vec![fx.ec_public];
        }
        "C_Verify" | "C_VerifyUpdate" | "C_VerifyFinal" => {
            prep = Prep::Init("C_VerifyInit");
            p.mech = Some(ecdsa);
            p.objects = vec![fx.ec_public];
            p.inputs = match name {
                "C_Verify" => vec![b"data".to_vec(), vec![0x33; 64]],
                "C_VerifyUpdate" => vec![b"data".to_vec()],
                _ => vec![vec![0x33; 64]],
            };
        }
        "C_GenerateKey" => {
            p.mech = Some(Mech::none(CKM_AES_KEY_GEN));
            p.templates = vec![vec![
                attr_ulong(CKA_VALUE_LEN, 32),
                attr_bool(CKA_TOKEN, false),
            ]];
        }
        "C_GenerateKeyPair" => {
            p.mech = Some(Mech::none(CKM_EC_KEY_PAIR_GEN));
            p.templates = vec![
                vec![attr(CKA_EC_PARAMS, P256), attr_bool(CKA_TOKEN, false)],
                vec![attr_bool(CKA_TOKEN, false)],
            ];
        }
        "C_WrapKey" => p.mech = Some(Mech::none(CKM_AES_KEY_WRAP)),
        "C_UnwrapKey" => {
            p.mech = Some(Mech::none(CKM_AES_KEY_WRAP));
            p.inputs = vec![vec![0x44; 40]];
            p.templates = vec![vec![
                attr_ulong(CKA_CLASS, CKO_SECRET_KEY),
                attr_ulong(CKA_KEY_TYPE, CKK_AES),
                attr_bool(CKA_TOKEN, false),
            ]];
        }
        "C_DeriveKey" => {
            let keep = vec![fx.peer_point.clone()];
            let params = CK_ECDH1_DERIVE_PARAMS {
                kdf: CKD_NULL,
                ulSharedDataLen: 0,
                pSharedData: std::ptr::null_mut(),
                ulPublicDataLen: keep[0].len() as CK_ULONG,
                pPublicData: keep[0].as_ptr() as *mut _,
            };
            let mut m = Mech::bytes(CKM_ECDH1_DERIVE, &struct_bytes(&params));
            m.keep = keep;
            p.mech = Some(m);
            p.objects = vec![fx.ec_private];
            p.templates = vec![vec![
                attr_ulong(CKA_CLASS, CKO_SECRET_KEY),
                attr_ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET),
                attr_ulong(CKA_VALUE_LEN, 32),
                attr_bool(CKA_TOKEN, false),
            ]];
        }
        "C_WaitForSlotEvent" => p.values = vec![CKF_DONT_BLOCK],
        _ => {}
    }
    (prep, p)
}

fn open(fx: &Fx) -> u64 {
    open_on(fx, fx.slot)
}

fn open_on(fx: &Fx, slot: u64) -> u64 {
    let mut frame = Frame::default();
    let out = frame.ulong(0);
    let w = [slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, 0, 0, out];
    // SAFETY: one output handle; NULL application and callback.
    assert_eq!(unsafe { fx.api.call("C_OpenSession", &w) }, CKR_OK);
    // SAFETY: `out` is the CK_ULONG the frame owns.
    unsafe { *(out as *const CK_ULONG) }
}

/// One call of `name` in a fresh session after its preparation, with `breaker` applied
/// to the words; afterwards the session is closed and the user logged in again. C_Logout
/// runs on the other token: a logout destroys the application's private session objects
/// (PKCS#11 3.0 §5.6), which would take the fixture's keys with it.
fn call(fx: &Fx, name: &str, breaker: &dyn Fn(&mut Vec<u64>, &mut Frame)) -> CK_RV {
    call_checked(fx, name, breaker, &mut |_, _, _| {})
}

/// [`call`], with `check` looking at the call's words and frame (and its answer) before
/// the frame goes.
fn call_checked(
    fx: &Fx,
    name: &str,
    breaker: &dyn Fn(&mut Vec<u64>, &mut Frame),
    check: &mut dyn FnMut(&[u64], &Frame, CK_RV),
) -> CK_RV {
    let session = if name == "C_Logout" {
        open_on(fx, fx.other_slot)
    } else {
        open(fx)
    };
    let (prep, mut plan) = plan_of(name, fx);
    plan.session = session;
    let mut frame = Frame::default();
    match prep {
        Prep::None => {}
        Prep::Init(init) => {
            let w = words(kinds(init), &plan, &mut frame);
            // SAFETY: the words point into `frame`.
            let rv = unsafe { fx.api.call(init, &w) };
            assert_eq!(rv, CKR_OK, "{init} before {name}: {}", name_of(rv));
        }
        Prep::Fresh => {
            let t = frame.template(&[attr_ulong(CKA_CLASS, CKO_DATA), attr_bool(CKA_TOKEN, false)]);
            let out = frame.ulong(0);
            // SAFETY: template and output handle in `frame`.
            let rv = unsafe { fx.api.call("C_CreateObject", &[session, t, 2, out]) };
            assert_eq!(rv, CKR_OK);
            // SAFETY: `out` is owned by `frame`.
            plan.objects[0] = unsafe { *(out as *const CK_ULONG) };
        }
    }
    let mut w = words(kinds(name), &plan, &mut frame);
    breaker(&mut w, &mut frame);
    // SAFETY: every pointer is NULL or points into `frame` with the stated capacity; the
    // breakers only make lengths larger than 2^30 lie (which the module must refuse).
    let rv = unsafe { fx.api.call(name, &w) };
    check(&w, &frame, rv);
    // SAFETY: plain handle argument.
    unsafe { fx.api.call("C_CloseSession", &[session]) };
    let pin = frame.buf(USER_PIN.into());
    let login = [fx.session.handle(), CKU_USER, pin, USER_PIN.len() as u64];
    // SAFETY: the PIN buffer is in `frame`.
    let again = unsafe { fx.api.call("C_Login", &login) };
    assert!(
        again == CKR_OK || again == CKR_USER_ALREADY_LOGGED_IN,
        "re-login after {name}: {}",
        name_of(again)
    );
    assert_eq!(
        fx.api.info_rv(),
        CKR_OK,
        "the module no longer answers C_GetInfo after {name} (poisoned by a panic?)"
    );
    rv
}

fn name_of(rv: CK_RV) -> String {
    common::hostile::name(rv)
}

/// The functions the main loop drives (not the library's own life cycle).
fn driven() -> impl Iterator<Item = (&'static str, &'static [K])> {
    FUNCTIONS
        .iter()
        .copied()
        .filter(|(n, _)| !matches!(*n, "C_Initialize" | "C_Finalize"))
}

fn check_defined(failures: &mut Vec<String>, what: &str, rv: CK_RV) {
    if !defined(rv) || rv == CKR_GENERAL_ERROR {
        failures.push(format!("{what}: {}", name_of(rv)));
    }
}

fn check_refused(failures: &mut Vec<String>, what: &str, rv: CK_RV) {
    check_defined(failures, what, rv);
    if rv == CKR_OK {
        failures.push(format!("{what}: CKR_OK for a broken argument"));
    }
}

fn report(failures: Vec<String>, calls: usize) {
    println!("{calls} hostile calls");
    assert!(
        failures.is_empty(),
        "{} of {calls} calls misbehaved:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_table_describes_all_92_functions_of_the_3_0_interface() {
    let slots = (std::mem::size_of::<CK_FUNCTION_LIST_3_0>() - 8) / 8;
    assert_eq!(slots, 92);
    assert_eq!(FUNCTIONS.len(), slots);
    let fx = fixture();
    let mut failures = Vec::new();
    for (name, _) in driven() {
        let rv = call(&fx, name, &|_, _| {});
        println!("{name:24} baseline {}", name_of(rv));
        check_defined(&mut failures, &format!("{name} baseline"), rv);
    }
    report(failures, FUNCTIONS.len() - 2);
}

#[test]
fn null_in_every_pointer_argument_is_refused_or_a_length_query() {
    let fx = fixture();
    let mut failures = Vec::new();
    let mut calls = 0;
    for (name, kinds) in driven() {
        for (i, k) in kinds.iter().enumerate() {
            let nullable = matches!(k, K::Out | K::Pn | K::N);
            if !matches!(k, K::In | K::Out | K::OL | K::P | K::Pn | K::T | K::M) {
                continue;
            }
            let rv = call(&fx, name, &|w, _| w[i] = 0);
            calls += 1;
            let what = format!("{name} with argument {} NULL", i + 1);
            // Every In and T of the plans has a non-zero length, so NULL there is
            // (NULL, n > 0): refused. Output buffers may be NULL (a length query).
            if nullable {
                check_defined(&mut failures, &what, rv);
            } else {
                check_refused(&mut failures, &what, rv);
            }
        }
    }
    report(failures, calls);
}

#[test]
fn huge_lengths_and_counts_are_refused_with_or_without_a_buffer() {
    let fx = fixture();
    let mut failures = Vec::new();
    let mut calls = 0;
    for (name, kinds) in driven() {
        for (i, k) in kinds.iter().enumerate() {
            if !matches!(k, K::L | K::C) {
                continue;
            }
            for huge in HUGE {
                for null in [false, true] {
                    let rv = call(&fx, name, &|w, _| {
                        w[i] = huge;
                        if null {
                            w[i - 1] = 0;
                        }
                    });
                    calls += 1;
                    let what = format!(
                        "{name} with argument {} = {huge:#x}{}",
                        i + 1,
                        if null { " and a NULL buffer" } else { "" }
                    );
                    check_refused(&mut failures, &what, rv);
                }
            }
            // A zero length with a valid buffer, and (NULL, 0): defined either way.
            for null in [false, true] {
                let rv = call(&fx, name, &|w, _| {
                    w[i] = 0;
                    if null {
                        w[i - 1] = 0;
                    }
                });
                calls += 1;
                check_defined(&mut failures, &format!("{name} argument {} = 0", i + 1), rv);
            }
        }
    }
    report(failures, calls);
}

#[test]
fn output_lengths_that_overstate_the_buffer_are_not_trusted_beyond_the_output() {
    let fx = fixture();
    let mut failures = Vec::new();
    let mut calls = 0;
    for (name, kinds) in driven() {
        for (i, k) in kinds.iter().enumerate() {
            if *k != K::OL {
                continue;
            }
            assert!(
                i > 0 && kinds[i - 1] == K::Out,
                "{name}: a length without its buffer"
            );
            for claim in [0, 1, HUGE[0], HUGE[1]] {
                let what = format!("{name} *length = {claim:#x}");
                // The buffer holds OUT_BYTES and guard bytes after them. The module may
                // write only the output it reports (*length after CKR_OK), nothing after
                // it, and nothing at all when it fails.
                let mut overwritten = Vec::new();
                let rv = call_checked(
                    &fx,
                    name,
                    // SAFETY: w[i] is the CK_ULONG the frame owns.
                    &|w, _| unsafe { *(w[i] as *mut CK_ULONG) = claim },
                    &mut |w, frame, rv| {
                        // SAFETY: w[i] is the CK_ULONG the frame owns.
                        let reported = unsafe { *(w[i] as *const CK_ULONG) } as usize;
                        let reported = reported.saturating_mul(element_size(name));
                        let from = if rv == CKR_OK {
                            reported.min(OUT_BYTES)
                        } else {
                            0
                        };
                        if w[i - 1] != 0 {
                            overwritten = frame.written_past(w[i - 1], OUT_BYTES, from);
                        }
                    },
                );
                calls += 1;
                check_defined(&mut failures, &what, rv);
                if let (Some(first), Some(last)) = (overwritten.first(), overwritten.last()) {
                    failures.push(format!(
                        "{what} ({}): {} bytes written outside its output, {first}..={last} \
                         (the buffer's end is {OUT_BYTES})",
                        name_of(rv),
                        overwritten.len()
                    ));
                }
            }
        }
    }
    report(failures, calls);
}

/// The size of one element of `name`'s output, whose length counts elements: slot IDs
/// and mechanism types are `CK_ULONG`s, interfaces `CK_INTERFACE`s; other lengths count
/// bytes.
fn element_size(name: &str) -> usize {
    match name {
        "C_GetSlotList" | "C_GetMechanismList" => std::mem::size_of::<CK_ULONG>(),
        "C_GetInterfaceList" => 3 * std::mem::size_of::<u64>(),
        _ => 1,
    }
}

fn handle_failures(name: &str, rv: CK_RV, what: &str, allowed: &[CK_RV], out: &mut Vec<String>) {
    if !allowed.contains(&rv) && rv != CKR_FUNCTION_NOT_SUPPORTED {
        out.push(format!("{name} with {what}: {}", name_of(rv)));
    }
}

#[test]
fn invalid_stale_and_foreign_handles_get_their_handle_error() {
    let fx = fixture();
    let mut failures = Vec::new();
    let mut calls = 0;
    let sessions = [
        ("session 0", 0),
        ("session 0xdeadbeef", 0xdead_beef),
        ("session CK_ULONG::MAX", u64::MAX),
        ("a closed session", fx.stale_session),
    ];
    let objects = [
        ("object 0", 0),
        ("object CK_ULONG::MAX", u64::MAX),
        ("a destroyed object", fx.destroyed_object),
        ("an object of another token", fx.other_token_object),
    ];
    let object_codes = [
        CKR_OBJECT_HANDLE_INVALID,
        CKR_KEY_HANDLE_INVALID,
        CKR_WRAPPING_KEY_HANDLE_INVALID,
        CKR_UNWRAPPING_KEY_HANDLE_INVALID,
    ];
    let slots = [("slot 0xdeadbeef", 0xdead_beef), ("slot MAX", u64::MAX)];
    for (name, kinds) in driven() {
        for (i, k) in kinds.iter().enumerate() {
            let (cases, allowed): (&[(&str, u64)], &[CK_RV]) = match k {
                K::S => (&sessions, &[CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED]),
                K::O => (&objects, &object_codes),
                K::Slot => (&slots, &[CKR_SLOT_ID_INVALID]),
                _ => continue,
            };
            for (what, value) in cases {
                let rv = call(&fx, name, &|w, _| w[i] = *value);
                calls += 1;
                handle_failures(name, rv, what, allowed, &mut failures);
            }
        }
    }
    report(failures, calls);
}

/// Calls every function with the plausible words of a fixture that is gone (stale handles,
/// live buffers) and then with every pointer NULL; all but the four that work without
/// initialisation must answer CKR_CRYPTOKI_NOT_INITIALIZED.
fn every_call_is_not_initialised(api: &Api, session: u64, object: u64, slot: u64) {
    let mut failures = Vec::new();
    for (name, kinds) in FUNCTIONS.iter().copied() {
        if WORK_UNINITIALISED.contains(&name) {
            continue;
        }
        let plan = Plan {
            session,
            slot,
            objects: vec![object, object],
            mech: Some(Mech::none(CKM_SHA256)),
            templates: vec![vec![attr_bool(CKA_TOKEN, false)]; 2],
            ..Plan::default()
        };
        for nulls in [false, true] {
            let mut frame = Frame::default();
            let mut w = words(kinds, &plan, &mut frame);
            if nulls {
                for (i, k) in kinds.iter().enumerate() {
                    if matches!(k, K::In | K::Out | K::OL | K::P | K::Pn | K::T | K::M) {
                        w[i] = 0;
                    }
                }
            }
            // SAFETY: every pointer is NULL or points into `frame`.
            let rv = unsafe { api.call(name, &w) };
            if rv != CKR_CRYPTOKI_NOT_INITIALIZED {
                failures.push(format!("{name} (NULL pointers: {nulls}): {}", name_of(rv)));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_function_before_c_initialize_answers_not_initialised() {
    let _env = TestEnv::new();
    let api = Api::load();
    every_call_is_not_initialised(&api, 1, 1, 0);
    // The four that work uninitialised do, and C_Finalize refuses.
    let mut frame = Frame::default();
    let out = frame.zeroed(8);
    // SAFETY: one output pointer.
    assert_eq!(unsafe { api.call("C_GetFunctionList", &[out]) }, CKR_OK);
    // SAFETY: as above.
    let rv = unsafe { api.call("C_GetFunctionList", &[0]) };
    assert_eq!(rv, CKR_ARGUMENTS_BAD);
    let count = frame.ulong(0);
    // SAFETY: a length query.
    let rv = unsafe { api.call("C_GetInterfaceList", &[0, count]) };
    assert_eq!(rv, CKR_OK);
    // SAFETY: as above.
    let rv = unsafe { api.call("C_GetInterfaceList", &[0, 0]) };
    assert_eq!(rv, CKR_ARGUMENTS_BAD);
}

#[test]
fn every_function_after_c_finalize_answers_not_initialised_and_old_handles_stay_dead() {
    let fx = fixture();
    let (session, object, slot) = (fx.session.handle(), fx.aes, fx.slot);
    // SAFETY: NULL pReserved.
    assert_eq!(unsafe { fx.api.call("C_Finalize", &[0]) }, CKR_OK);
    every_call_is_not_initialised(&fx.api, session, object, slot);
    // SAFETY: as above.
    let rv = unsafe { fx.api.call("C_Finalize", &[0]) };
    assert_eq!(rv, CKR_CRYPTOKI_NOT_INITIALIZED);
    // After a new C_Initialize, the old session and object handles are invalid.
    // SAFETY: NULL arguments.
    assert_eq!(unsafe { fx.api.call("C_Initialize", &[0]) }, CKR_OK);
    let mut frame = Frame::default();
    let info = frame.zeroed(256);
    // SAFETY: output structure in `frame`.
    let rv = unsafe { fx.api.call("C_GetSessionInfo", &[session, info]) };
    assert_eq!(rv, CKR_SESSION_HANDLE_INVALID, "{}", name_of(rv));
    let fresh = open(&fx);
    let size = frame.ulong(0);
    // SAFETY: output length in `frame`.
    let rv = unsafe { fx.api.call("C_GetObjectSize", &[fresh, object, size]) };
    assert_eq!(rv, CKR_OBJECT_HANDLE_INVALID, "{}", name_of(rv));
    // Still so once the new provider has opened sessions of its own: its handles are not
    // the old ones counted again (review 16c).
    for _ in 0..4 {
        assert_ne!(
            open(&fx),
            session,
            "a new session took an old session's handle"
        );
    }
    // SAFETY: output structure in `frame`.
    let rv = unsafe { fx.api.call("C_GetSessionInfo", &[session, info]) };
    assert_eq!(rv, CKR_SESSION_HANDLE_INVALID, "{}", name_of(rv));
}
