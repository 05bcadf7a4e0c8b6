//! The KMS rules under concurrency (issue 13, docs/key-model.md "Exactly once"):
//! - concurrent ImportKeyMaterial calls with the same import token and *different*
//!   material into one fresh PendingImport key, from threads and from separate processes:
//!   exactly one returns CKR_OK, every other the same-material error
//!   (`CKR_KMSHSM_INVALID_KEY_MATERIAL`), and the key then computes what the winner's
//!   material computes;
//! - concurrent Enable/Disable/DeleteKeyMaterial on one key, from threads and from
//!   processes: every answer and the final state (and, for threads, the material) are
//!   those of some serial order of the calls.
//!
//! Needs `openssl` (the material is wrapped by it, as a user would). Trial counts: 50
//! thread trials of 8 imports take about 15 s in a debug build on a 2-core machine
//! (each trial makes a key, an RSA-2048 wrapping key pair and 8 openssl wraps); the
//! process trials start 4 children each (about 0.5 s a trial), so there are 10 of them,
//! of imports and of state changes each.
//! The process trials run on a SQLite token and on a PostgreSQL one (a private server
//! per test, `common/pg.rs`).
//! Run with `cargo nextest run --test race_import`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::sync::Barrier;

use common::kms::*;
use common::race::{import_child, import_vars, run_children, wait_for_go};
use common::*;
use cryptoki::context::Pkcs11;
use cryptoki::error::RvError;
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use cryptoki::slot::Slot;

const CHILD_ENTRY: &str = "child_process_entry_point";
const ALG: u64 = WRAP_RSAES_OAEP_SHA_256;

const THREADS: usize = 8;
const THREAD_TRIALS: usize = 50;
const PROCESSES: usize = 4;
const PROCESS_TRIALS: usize = 10;
const STATE_THREADS: usize = 6;
const STATE_TRIALS: usize = 50;
const STATE_PROCESSES: usize = 4;
const STATE_PROCESS_TRIALS: usize = 10;

/// The material racer `n` imports.
fn material(n: usize) -> Vec<u8> {
    vec![n as u8 + 1; 32]
}

/// What each racer's material makes of PLAINTEXT (AES-256-CBC, as `encrypt_with` asks).
fn expected_ciphertexts(work: &Work, racers: usize) -> Vec<Vec<u8>> {
    (0..racers)
        .map(|n| work.enc("aes-256-cbc", &material(n), Some(&IV), true, PLAINTEXT))
        .collect()
}

/// A fresh PendingImport AES-256 key, its import parameters, and each racer's material
/// wrapped under them.
fn fresh_target(
    session: &Session,
    work: &Work,
    racers: usize,
) -> (ObjectHandle, ImportParams, Vec<Vec<u8>>) {
    let key = create_external(session, Spec::Aes256, "race");
    let params = get_params(session, &key_id(session, key), ALG);
    let wrapped = (0..racers)
        .map(|n| work.wrap(ALG, &params.spki, &material(n)))
        .collect();
    (key, params, wrapped)
}

/// Exactly one winner, everyone else the same-material error; the key computes what the
/// winner's material computes (and not what any loser's does).
fn assert_one_winner(
    session: &Session,
    key: ObjectHandle,
    answers: &[Result<(), RvError>],
    expected: &[Vec<u8>],
    trial: usize,
) {
    let winners: Vec<usize> = (0..answers.len()).filter(|n| answers[*n].is_ok()).collect();
    assert_eq!(winners.len(), 1, "trial {trial}: {answers:?}");
    for (n, answer) in answers.iter().enumerate() {
        if let Err(rv) = answer {
            assert_eq!(
                *rv, CKR_KMSHSM_INVALID_KEY_MATERIAL,
                "trial {trial}: racer {n}"
            );
        }
    }
    assert_eq!(state(session, key), STATE_ENABLED, "trial {trial}");
    let got = encrypt_with(session, Spec::Aes256, key).unwrap();
    assert_eq!(
        to_hex(&got),
        to_hex(&expected[winners[0]]),
        "trial {trial}: the key does not hold the winner's material"
    );
}

fn answer(result: cryptoki::error::Result<ObjectHandle>) -> Result<(), RvError> {
    match result {
        Ok(_) => Ok(()),
        Err(cryptoki::error::Error::Pkcs11(rv, _)) => Err(rv),
        Err(other) => panic!("not a PKCS#11 answer: {other}"),
    }
}

#[test]
fn concurrent_imports_of_different_material_from_threads_have_one_winner() {
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let expected = expected_ciphertexts(&work, THREADS);
    for trial in 0..THREAD_TRIALS {
        let (key, params, wrapped) = fresh_target(&session, &work, THREADS);
        let barrier = Barrier::new(THREADS);
        let answers: Vec<Result<(), RvError>> = std::thread::scope(|scope| {
            let racers: Vec<_> = wrapped
                .iter()
                .map(|blob| {
                    let (ctx, params, barrier) = (&ctx, &params, &barrier);
                    scope.spawn(move || {
                        // Sessions share the application's login.
                        let mine = ctx.open_rw_session(slot).unwrap();
                        barrier.wait();
                        answer(import(&mine, params, blob, None))
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        assert_one_winner(&session, key, &answers, &expected, trial);
    }
}

/// Not a test: one child process importing the material it is given when the file
/// `go` appears, printing its answer.
#[test]
#[ignore = "child-process entry point: this file's tests run it in a child (--ignored --exact)"]
fn child_process_entry_point() {
    let Some(role) = child_role() else { return };
    if role == "state" {
        return state_child();
    }
    assert_eq!(role, "import");
    import_child(ALG);
}

/// A child asking for state `KMSHSM_RACE_WANTED` of key `KMSHSM_RACE_KEY_ID` when the
/// file `go` appears, printing whether it was accepted.
fn state_child() {
    let var = |name: &str| std::env::var(name).unwrap();
    let wanted: u64 = var("KMSHSM_RACE_WANTED").parse().unwrap();
    let ctx = load_module();
    initialize(&ctx).unwrap();
    let session = user_session(&ctx, slot_of_token(&ctx, TOKEN_LABEL));
    let key = objects_of_key(&session, &var("KMSHSM_RACE_KEY_ID"))[0];
    tell_parent("ready");
    wait_for_go();
    match set_state(&session, key, wanted) {
        Ok(()) => tell_parent("ok"),
        Err(cryptoki::error::Error::Pkcs11(rv, _)) if rv == CKR_KMSHSM_INCORRECT_KEY_STATE => {
            tell_parent("refused")
        }
        Err(e) => tell_parent(&format!("failed {e}")),
    }
}

#[test]
fn concurrent_state_changes_from_processes_end_as_some_serial_order_would() {
    state_changes_from_processes(TestEnv::new());
}

/// The same across processes on a PostgreSQL token (tests/postgres.rs).
#[test]
fn concurrent_state_changes_from_processes_on_postgres_end_as_some_serial_order_would() {
    state_changes_from_processes(TestEnv::postgres());
}

fn state_changes_from_processes(env: TestEnv) {
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let key = create_external(&session, Spec::Aes256, "states");
    let id = key_id(&session, key);
    for trial in 0..STATE_PROCESS_TRIALS {
        restore(&session, &work, key);
        let wanted: Vec<u64> = (0..STATE_PROCESSES)
            .map(|n| [STATE_ENABLED, STATE_DISABLED, STATE_PENDING_IMPORT][(n + trial) % 3])
            .collect();
        let children = wanted
            .iter()
            .map(|w| {
                (
                    "state",
                    vec![
                        ("KMSHSM_RACE_KEY_ID", id.clone()),
                        ("KMSHSM_RACE_WANTED", w.to_string()),
                    ],
                )
            })
            .collect();
        let reports = run_children(&env, CHILD_ENTRY, trial, children);
        let answers: Vec<(u64, bool)> = wanted
            .iter()
            .zip(&reports)
            .map(|(w, r)| match r.as_str() {
                "ok" => (*w, true),
                "refused" => (*w, false),
                other => panic!("trial {trial}: child said {other:?}"),
            })
            .collect();
        let end = state(&session, key);
        assert!(
            explained(STATE_ENABLED, &answers, end),
            "trial {trial}: no serial order gives {answers:?} and ends {end}"
        );
    }
}

#[test]
fn concurrent_imports_of_different_material_from_processes_have_one_winner() {
    imports_from_processes(TestEnv::new());
}

/// The same across processes on a PostgreSQL token (tests/postgres.rs): exactly once
/// across hosts.
#[test]
fn concurrent_imports_of_different_material_from_processes_on_postgres_have_one_winner() {
    imports_from_processes(TestEnv::postgres());
}

fn imports_from_processes(env: TestEnv) {
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let expected = expected_ciphertexts(&work, PROCESSES);
    let invalid_material = format!("refused {CKR_KMSHSM_INVALID_KEY_MATERIAL:?}");
    for trial in 0..PROCESS_TRIALS {
        let (key, params, wrapped) = fresh_target(&session, &work, PROCESSES);
        let id = key_id(&session, key);
        let children = wrapped
            .iter()
            .map(|blob| ("import", import_vars(&id, &params.token, blob)))
            .collect();
        let answers: Vec<Result<(), RvError>> = run_children(&env, CHILD_ENTRY, trial, children)
            .into_iter()
            .map(|report| match report.as_str() {
                "ok" => Ok(()),
                r if r == invalid_material => Err(CKR_KMSHSM_INVALID_KEY_MATERIAL),
                other => panic!("trial {trial}: child answered {other:?}"),
            })
            .collect();
        assert_one_winner(&session, key, &answers, &expected, trial);
    }
}

/// What a state request does to a key, serially: `Some(next)` accepted, `None` refused.
fn serially(state: u64, wanted: u64) -> Option<u64> {
    match (state, wanted) {
        (STATE_ENABLED | STATE_DISABLED, STATE_ENABLED | STATE_DISABLED) => Some(wanted),
        (STATE_PENDING_IMPORT, STATE_ENABLED | STATE_DISABLED) => None,
        (_, STATE_PENDING_IMPORT) => Some(STATE_PENDING_IMPORT),
        _ => unreachable!("not raced here"),
    }
}

/// Whether some order of `requests` (with their answers), applied serially from `start`,
/// gives every answer and ends in `end`.
fn explained(start: u64, requests: &[(u64, bool)], end: u64) -> bool {
    fn go(state: u64, left: &mut Vec<(u64, bool)>, end: u64) -> bool {
        if left.is_empty() {
            return state == end;
        }
        for i in 0..left.len() {
            let (wanted, ok) = left[i];
            let next = serially(state, wanted);
            if next.is_some() != ok {
                continue;
            }
            left.remove(i);
            let found = go(next.unwrap_or(state), left, end);
            left.insert(i, (wanted, ok));
            if found {
                return true;
            }
        }
        false
    }
    go(start, &mut requests.to_vec(), end)
}

/// Brings the key back to Enabled with its material (after a trial left it elsewhere).
fn restore(session: &Session, work: &Work, key: ObjectHandle) {
    match state(session, key) {
        STATE_PENDING_IMPORT => {
            import_with(session, work, key, ALG, &material(0), None).unwrap();
        }
        STATE_DISABLED => set_state(session, key, STATE_ENABLED).unwrap(),
        _ => {}
    }
    assert_eq!(state(session, key), STATE_ENABLED);
}

fn race_states(ctx: &Pkcs11, slot: Slot, key: ObjectHandle, trial: usize) -> Vec<(u64, bool)> {
    let requests: Vec<u64> = (0..STATE_THREADS)
        .map(|n| match (n + trial) % 3 {
            0 => STATE_ENABLED,
            1 => STATE_DISABLED,
            _ => STATE_PENDING_IMPORT,
        })
        .collect();
    let barrier = Barrier::new(STATE_THREADS);
    std::thread::scope(|scope| {
        let racers: Vec<_> = requests
            .iter()
            .map(|wanted| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let mine = ctx.open_rw_session(slot).unwrap();
                    barrier.wait();
                    match set_state(&mine, key, *wanted) {
                        Ok(()) => (*wanted, true),
                        Err(cryptoki::error::Error::Pkcs11(rv, _)) => {
                            assert_eq!(rv, CKR_KMSHSM_INCORRECT_KEY_STATE, "request {wanted}");
                            (*wanted, false)
                        }
                        Err(e) => panic!("{e}"),
                    }
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    })
}

#[test]
fn concurrent_state_changes_end_as_some_serial_order_would() {
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let expected = expected_ciphertexts(&work, 1);
    let key = create_external(&session, Spec::Aes256, "states");
    for trial in 0..STATE_TRIALS {
        restore(&session, &work, key);
        let answers = race_states(&ctx, slot, key, trial);
        let end = state(&session, key);
        assert!(
            explained(STATE_ENABLED, &answers, end),
            "trial {trial}: no serial order gives {answers:?} and ends {end}"
        );
        // The material goes with the state: present exactly when the key is not
        // PendingImport, and then still the bound material.
        let used = encrypt_with(&session, Spec::Aes256, key);
        match end {
            STATE_ENABLED => assert_eq!(to_hex(&used.unwrap()), to_hex(&expected[0])),
            _ => assert_eq!(rv(used), CKR_KMSHSM_INCORRECT_KEY_STATE, "trial {trial}"),
        }
        if end == STATE_DISABLED {
            set_state(&session, key, STATE_ENABLED).unwrap();
            let used = encrypt_with(&session, Spec::Aes256, key).unwrap();
            assert_eq!(to_hex(&used), to_hex(&expected[0]), "trial {trial}");
        }
        // Only the bound material comes back.
        if state(&session, key) == STATE_PENDING_IMPORT {
            assert_eq!(
                rv(import_with(&session, &work, key, ALG, &material(1), None)),
                CKR_KMSHSM_INVALID_KEY_MATERIAL,
                "trial {trial}"
            );
        }
    }
}
