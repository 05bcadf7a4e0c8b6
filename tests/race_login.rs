//! The PIN lockout under concurrency (issue 13, docs/security.md): with one attempt left,
//! many wrong `C_Login` calls at once, from threads and from separate processes, try at
//! most one PIN — one answers `CKR_PIN_INCORRECT`, every other `CKR_PIN_LOCKED` — and
//! the right PIN afterwards is locked out too; and more processes than the limit logging
//! in with the right PIN at once do not lock one another out. The limit is the token's, fixed at
//! `C_InitToken`: a caller's configuration saying `max_pin_failures = 0` does not unlock.
//! The cross-process trials run on a SQLite token and on a PostgreSQL one (a private
//! server per test, `common/pg.rs`).
//! Run with `cargo nextest run --test race_login`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::sync::Barrier;

use common::*;
use cryptoki::context::Pkcs11;
use cryptoki::error::RvError;
use cryptoki::session::UserType;
use cryptoki::slot::Slot;

const CHILD_ENTRY: &str = "child_process_entry_point";

/// Concurrent wrong logins per trial, from threads (and per child process).
const THREADS: usize = 24;
/// Thread trials. Each is a C_InitPIN plus MAX_PIN_FAILURES + THREADS cheap derivations
/// (test KDF: 1 MiB, one pass): about 0.1 s in a debug build on 2 cores.
const THREAD_TRIALS: usize = 50;
/// Process trials: each starts PROCESSES children that load the module (about 0.5 s).
const PROCESS_TRIALS: usize = 8;
const PROCESSES: usize = 4;
const THREADS_PER_PROCESS: usize = 6;

/// Answers of concurrent wrong logins: (incorrect, locked); anything else fails the test.
fn wrong_logins_at_once(ctx: &Pkcs11, slot: Slot, threads: usize) -> (usize, usize) {
    let barrier = Barrier::new(threads);
    let answers: Vec<RvError> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..threads)
            .map(|n| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let session = ctx.open_ro_session(slot).unwrap();
                    barrier.wait();
                    rv(session.login(UserType::User, Some(&pin(&format!("wrong-{n}")))))
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let incorrect = answers
        .iter()
        .filter(|a| **a == RvError::PinIncorrect)
        .count();
    let locked = answers.iter().filter(|a| **a == RvError::PinLocked).count();
    assert_eq!(
        incorrect + locked,
        answers.len(),
        "unexpected answers: {answers:?}"
    );
    (incorrect, locked)
}

/// Resets the user PIN (SO C_InitPIN) and spends all but one attempt.
fn one_attempt_left(ctx: &Pkcs11, slot: Slot) {
    let so = ctx.open_rw_session(slot).unwrap();
    so.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    so.init_pin(&pin(USER_PIN)).unwrap();
    so.logout().unwrap();
    for _ in 0..MAX_PIN_FAILURES - 1 {
        assert_rv!(
            so.login(UserType::User, Some(&pin("wrong"))),
            RvError::PinIncorrect
        );
    }
    so.close().unwrap();
    assert!(!ctx.get_token_info(slot).unwrap().user_pin_locked());
}

/// The right PIN is refused: the PIN is locked, and no guess got through.
fn assert_locked(ctx: &Pkcs11, slot: Slot, trial: usize) {
    assert!(
        ctx.get_token_info(slot).unwrap().user_pin_locked(),
        "trial {trial}: not reported locked"
    );
    let session = ctx.open_ro_session(slot).unwrap();
    assert_rv!(
        session.login(UserType::User, Some(&pin(USER_PIN))),
        RvError::PinLocked,
        "trial {trial}: the right PIN after the limit"
    );
}

#[test]
fn concurrent_wrong_logins_from_threads_try_at_most_the_limit() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    for trial in 0..THREAD_TRIALS {
        one_attempt_left(&ctx, slot);
        let (incorrect, locked) = wrong_logins_at_once(&ctx, slot, THREADS);
        assert_eq!(
            (incorrect, locked),
            (1, THREADS - 1),
            "trial {trial}: one attempt was left, {incorrect} PINs were tried"
        );
        assert_locked(&ctx, slot, trial);
    }
}

/// Not a test: one child process making THREADS_PER_PROCESS wrong logins at once, when
/// the file `go` appears (so every child starts together), printing its answers.
#[test]
#[ignore = "child-process entry point: this file's tests run it in a child (--ignored --exact)"]
fn child_process_entry_point() {
    let Some(role) = child_role() else { return };
    assert!(role == "login" || role == "right", "{role}");
    let go = std::path::PathBuf::from(std::env::var("KMSHSM_RACE_GO").unwrap());
    let ctx = load_module();
    initialize(&ctx).unwrap();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    tell_parent("ready");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !go.exists() {
        // No child outlives a failed parent for long.
        assert!(
            std::time::Instant::now() < until,
            "no signal from the parent"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    if role == "right" {
        let session = ctx.open_ro_session(slot).unwrap();
        match session.login(UserType::User, Some(&pin(USER_PIN))) {
            Ok(()) => tell_parent("incorrect 0 locked 0"),
            Err(e) => tell_parent(&format!("failed {e}")),
        }
        return;
    }
    let (incorrect, locked) = wrong_logins_at_once(&ctx, slot, THREADS_PER_PROCESS);
    tell_parent(&format!("incorrect {incorrect} locked {locked}"));
}

/// Starts `n` children in `role`, waits until all are ready, starts them together, and
/// sums their (incorrect, locked) reports.
fn run_children(env: &TestEnv, role: &str, trial: usize, n: usize) -> (usize, usize) {
    let go = env.dir.path().join(format!("go-{role}-{trial}"));
    let (children, outputs) = spawn_ready((0..n).map(|_| {
        let mut command = child_command(CHILD_ENTRY, role);
        command.env("KMSHSM_RACE_GO", &go);
        command
    }));
    std::fs::write(&go, b"").unwrap();
    let (mut incorrect, mut locked) = (0, 0);
    for (mut lines, mut child) in outputs.into_iter().zip(children) {
        let report = lines
            .find_map(|l| child_line(&l.unwrap()).map(str::to_owned))
            .unwrap_or_else(|| panic!("trial {trial}: a child reported nothing"));
        let words: Vec<&str> = report.split(' ').collect();
        match words[..] {
            ["incorrect", i, "locked", l] => {
                incorrect += i.parse::<usize>().unwrap();
                locked += l.parse::<usize>().unwrap();
            }
            _ => panic!("trial {trial}: child said {report:?}"),
        }
        assert!(
            child.wait().unwrap().success(),
            "trial {trial}: child failed"
        );
    }
    (incorrect, locked)
}

#[test]
fn concurrent_wrong_logins_from_processes_try_at_most_the_limit() {
    wrong_logins_from_processes(TestEnv::new());
}

/// The same across processes on a PostgreSQL token (tests/postgres.rs): the lockout
/// holds across hosts as it does across processes on one file.
#[test]
fn concurrent_wrong_logins_from_processes_on_postgres_try_at_most_the_limit() {
    wrong_logins_from_processes(TestEnv::postgres());
}

fn wrong_logins_from_processes(env: TestEnv) {
    let ctx = env.load();
    let slot = init_token(&ctx);
    for trial in 0..PROCESS_TRIALS {
        one_attempt_left(&ctx, slot);
        let (incorrect, locked) = run_children(&env, "login", trial, PROCESSES);
        assert_eq!(
            (incorrect, locked),
            (1, PROCESSES * THREADS_PER_PROCESS - 1),
            "trial {trial}: one attempt was left, {incorrect} PINs were tried across processes"
        );
        assert_locked(&ctx, slot, trial);
    }
}

/// More processes than the limit logging in at once with the right PIN: each reserves an
/// attempt, so the limit is reached by attempts in flight; none may answer "locked".
#[test]
fn concurrent_right_logins_from_processes_do_not_lock_each_other_out() {
    right_logins_from_processes(TestEnv::new());
}

#[test]
fn concurrent_right_logins_from_processes_on_postgres_do_not_lock_each_other_out() {
    right_logins_from_processes(TestEnv::postgres());
}

fn right_logins_from_processes(env: TestEnv) {
    let ctx = env.load();
    let slot = init_token(&ctx);
    for trial in 0..PROCESS_TRIALS {
        let (incorrect, locked) = run_children(&env, "right", trial, 2 * MAX_PIN_FAILURES as usize);
        assert_eq!((incorrect, locked), (0, 0), "trial {trial}");
    }
    assert!(!ctx.get_token_info(slot).unwrap().user_pin_locked());
}

/// The limit is the token's: a caller re-initialising the module with a configuration
/// saying `max_pin_failures = 0` (never lock) finds the PIN as locked as before, and the
/// token still reports the limit it was made with.
#[test]
fn a_caller_configuration_saying_zero_does_not_unlock() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = ctx.open_ro_session(slot).unwrap();
    for _ in 0..MAX_PIN_FAILURES {
        let _ = session.login(UserType::User, Some(&pin("wrong")));
    }
    assert!(ctx.get_token_info(slot).unwrap().user_pin_locked());
    session.close().unwrap();
    ctx.finalize().unwrap();

    let unlocked = std::fs::read_to_string(&env.conf_path).unwrap().replace(
        &format!("max_pin_failures = {MAX_PIN_FAILURES}"),
        "max_pin_failures = 0",
    );
    assert!(unlocked.contains("max_pin_failures = 0"));
    env.write_config(&unlocked);
    let ctx = env.load();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    assert!(
        ctx.get_token_info(slot).unwrap().user_pin_locked(),
        "a caller's configuration unlocked the PIN"
    );
    let session = ctx.open_ro_session(slot).unwrap();
    assert_rv!(
        session.login(UserType::User, Some(&pin(USER_PIN))),
        RvError::PinLocked
    );
    for _ in 0..3 {
        assert_rv!(
            session.login(UserType::User, Some(&pin("another-guess"))),
            RvError::PinLocked
        );
    }
}
