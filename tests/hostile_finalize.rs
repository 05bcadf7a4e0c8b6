//! The hostile caller, library life cycle: C_Finalize while other threads are inside
//! C_GetSessionInfo, C_FindObjects and C_Sign; two threads finalising at once; and many
//! C_Initialize/C_Finalize cycles under that load. Every call must return CKR_OK or one of
//! the codes that say "the library or the session went away"; none may crash, hang or
//! answer CKR_GENERAL_ERROR.
//!
//! Cycles: `KMSHSM_FINALIZE_CYCLES` (default 25; 8 when `CI` is set).
//! Run with `cargo nextest run --test hostile_finalize`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;
use cryptoki_sys::*;

use common::hostile::{name, Api, Frame, Mech};
use common::*;

const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// What a thread may see while the library is finalised under it.
const GONE: &[CK_RV] = &[
    CKR_OK,
    CKR_CRYPTOKI_NOT_INITIALIZED,
    CKR_SESSION_HANDLE_INVALID,
    CKR_SESSION_CLOSED,
    // C_Sign after C_SignInit was refused, or after a re-initialisation.
    CKR_OPERATION_NOT_INITIALIZED,
    // The sign key of an earlier cycle is gone with its session (re-init between calls).
    CKR_KEY_HANDLE_INVALID,
    CKR_USER_NOT_LOGGED_IN,
    // Two threads of the same kind share the session: the second find or sign collides.
    CKR_OPERATION_ACTIVE,
];

fn cycles() -> usize {
    if let Ok(n) = std::env::var("KMSHSM_FINALIZE_CYCLES") {
        return n.parse().expect("KMSHSM_FINALIZE_CYCLES");
    }
    if std::env::var_os("CI").is_some() {
        8
    } else {
        25
    }
}

/// Initialises the library through `api`, opens a logged-in session on the token and
/// makes a session EC key in it; returns (session, private key).
fn setup(api: &Api, slot: u64) -> (u64, u64) {
    let mut f = Frame::default();
    // SAFETY: NULL pReserved.
    assert_eq!(unsafe { api.call("C_Initialize", &[0]) }, CKR_OK);
    let out = f.ulong(0);
    // SAFETY: one output handle.
    let rv = unsafe {
        api.call(
            "C_OpenSession",
            &[slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, 0, 0, out],
        )
    };
    assert_eq!(rv, CKR_OK);
    // SAFETY: owned by `f`.
    let session = unsafe { *(out as *const CK_ULONG) };
    let pin = f.buf(USER_PIN.into());
    // SAFETY: PIN in `f`.
    let rv = unsafe { api.call("C_Login", &[session, CKU_USER, pin, USER_PIN.len() as u64]) };
    assert_eq!(rv, CKR_OK, "{}", name(rv));
    let m = f.mech(&Mech::none(CKM_EC_KEY_PAIR_GEN));
    let public = f.template(&[(CKA_EC_PARAMS, Some(P256.to_vec()), None)]);
    let (pubh, privh) = (f.ulong(0), f.ulong(0));
    // SAFETY: templates and outputs in `f`.
    let rv = unsafe {
        api.call(
            "C_GenerateKeyPair",
            &[session, m, public, 1, 0, 0, pubh, privh],
        )
    };
    assert_eq!(rv, CKR_OK, "{}", name(rv));
    // SAFETY: owned by `f`.
    (session, unsafe { *(privh as *const CK_ULONG) })
}

/// One hammering thread: `kind` 0 GetSessionInfo, 1 FindObjects, 2 Sign, until `stop`.
fn hammer(
    api: &Api,
    kind: usize,
    session: u64,
    key: u64,
    stop: &AtomicBool,
    seen: &Mutex<BTreeMap<CK_RV, usize>>,
) {
    let mut local: BTreeMap<CK_RV, usize> = BTreeMap::new();
    while !stop.load(Ordering::SeqCst) {
        let mut f = Frame::default();
        // SAFETY: every pointer points into `f` with room for what the call writes.
        let rvs: Vec<CK_RV> = unsafe {
            match kind {
                0 => vec![api.call("C_GetSessionInfo", &[session, f.zeroed(64)])],
                1 => {
                    let a = api.call("C_FindObjectsInit", &[session, 0, 0]);
                    let b = api.call(
                        "C_FindObjects",
                        &[session, f.zeroed(8 * 16), 16, f.ulong(0)],
                    );
                    let c = api.call("C_FindObjectsFinal", &[session]);
                    vec![a, b, c]
                }
                _ => {
                    let m = f.mech(&Mech::none(CKM_ECDSA_SHA256));
                    let a = api.call("C_SignInit", &[session, m, key]);
                    let data = f.buf(b"data".to_vec());
                    let b = api.call("C_Sign", &[session, data, 4, f.zeroed(256), f.ulong(256)]);
                    vec![a, b]
                }
            }
        };
        for rv in rvs {
            *local.entry(rv).or_default() += 1;
        }
    }
    let mut seen = seen.lock().unwrap();
    for (rv, n) in local {
        *seen.entry(rv).or_default() += n;
    }
}

fn prepare_token() -> (TestEnv, u64) {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    // A token object too, so the finds have something to return.
    let s = user_session(&ctx, slot);
    s.generate_key_pair(
        &Mechanism::EccKeyPairGen,
        &[Attribute::Token(true), Attribute::EcParams(P256.to_vec())],
        &[Attribute::Token(true)],
    )
    .unwrap();
    drop(s);
    ctx.finalize().unwrap();
    (env, slot.id())
}

#[test]
fn c_finalize_racing_other_threads_calls_leaves_every_call_with_a_defined_answer() {
    let (_env, slot) = prepare_token();
    let api = Arc::new(Api::load());
    let seen = Arc::new(Mutex::new(BTreeMap::new()));
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for cycle in 0..cycles() {
        let (session, key) = setup(&api, slot);
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..6)
            .map(|i| {
                let (api, stop, seen) = (api.clone(), stop.clone(), seen.clone());
                std::thread::spawn(move || hammer(&api, i % 3, session, key, &stop, &seen))
            })
            .collect();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(5 + rng % 40));
        // SAFETY: NULL pReserved.
        let rv = unsafe { api.call("C_Finalize", &[0]) };
        assert_eq!(
            rv,
            CKR_OK,
            "cycle {cycle}: C_Finalize under load: {}",
            name(rv)
        );
        std::thread::sleep(Duration::from_millis(rng % 10));
        stop.store(true, Ordering::SeqCst);
        for t in threads {
            t.join().expect("a hammering thread panicked");
        }
    }
    let seen = seen.lock().unwrap();
    let summary: Vec<String> = seen
        .iter()
        .map(|(rv, n)| format!("{}={n}", name(*rv)))
        .collect();
    println!("{} cycles; results: {}", cycles(), summary.join(" "));
    let bad: Vec<&String> = seen
        .keys()
        .zip(&summary)
        .filter(|(rv, _)| !GONE.contains(rv))
        .map(|(_, s)| s)
        .collect();
    assert!(bad.is_empty(), "codes outside the allowed set: {bad:?}");
    assert!(
        seen.get(&CKR_CRYPTOKI_NOT_INITIALIZED).is_some(),
        "no call ever ran after C_Finalize"
    );
}

#[test]
fn two_threads_finalising_at_once_finalise_exactly_once() {
    let (_env, slot) = prepare_token();
    let api = Arc::new(Api::load());
    for _ in 0..cycles() {
        setup(&api, slot);
        let barrier = Arc::new(Barrier::new(4));
        let rvs: Vec<CK_RV> = (0..4)
            .map(|_| {
                let (api, barrier) = (api.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    // SAFETY: NULL pReserved.
                    unsafe { api.call("C_Finalize", &[0]) }
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let ok = rvs.iter().filter(|rv| **rv == CKR_OK).count();
        assert_eq!(
            ok,
            1,
            "C_Finalize results: {:?}",
            rvs.iter().map(|r| name(*r)).collect::<Vec<_>>()
        );
        assert!(rvs
            .iter()
            .all(|rv| *rv == CKR_OK || *rv == CKR_CRYPTOKI_NOT_INITIALIZED));
    }
}

#[test]
fn c_initialize_racing_c_finalize_ends_in_a_consistent_state() {
    let (_env, slot) = prepare_token();
    let api = Arc::new(Api::load());
    for _ in 0..cycles() {
        let barrier = Arc::new(Barrier::new(4));
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let (api, barrier) = (api.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let f = if i % 2 == 0 {
                        "C_Initialize"
                    } else {
                        "C_Finalize"
                    };
                    // SAFETY: NULL argument.
                    (f, unsafe { api.call(f, &[0]) })
                })
            })
            .collect();
        for t in threads {
            let (f, rv) = t.join().unwrap();
            let fine = match f {
                "C_Initialize" => [CKR_OK, CKR_CRYPTOKI_ALREADY_INITIALIZED].contains(&rv),
                _ => [CKR_OK, CKR_CRYPTOKI_NOT_INITIALIZED].contains(&rv),
            };
            assert!(fine, "{f}: {}", name(rv));
        }
        // Whatever the interleaving, the library is now either up or down, consistently.
        let info = api.info_rv();
        if info == CKR_OK {
            let mut f = Frame::default();
            let count = f.ulong(0);
            // SAFETY: length query.
            assert_eq!(unsafe { api.call("C_GetSlotList", &[0, 0, count]) }, CKR_OK);
            // SAFETY: NULL pReserved.
            assert_eq!(unsafe { api.call("C_Finalize", &[0]) }, CKR_OK);
        } else {
            assert_eq!(info, CKR_CRYPTOKI_NOT_INITIALIZED, "{}", name(info));
        }
        let _ = slot;
    }
}
