//! `fork()` after `C_Initialize`: the child starts uninitialised — calls answer
//! `CKR_CRYPTOKI_NOT_INITIALIZED`, its `C_Initialize` succeeds although the parent never
//! called `C_Finalize`, it has no sessions and no login — and then works on the same
//! token by itself, while the parent's sessions, login and open operations carry on.
//!
//! The child reports by exit status only (each failed check has its own code, see
//! [`Fail`]), and leaves with `_exit`, running no destructors and no test harness code.
//! A child that does not exit within [`CHILD_DEADLINE`] is killed and fails the test (a
//! deadlock on a lock inherited from the parent would look like that).
//!
//! The last test runs OpenSC's `pkcs11-tool --test-fork` (needs `apt-get install -y opensc`).
//!
//! Run with `cargo nextest run --test fork` (one process per test).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cryptoki::context::Pkcs11;
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::ObjectHandle;
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;

use common::*;

const KEY_LABEL: &str = "fork-aes";
const DATA_LABEL: &str = "fork-public-data";
const AES_KEY: [u8; 16] = *b"0123456789abcdef";
const BLOCK: [u8; 16] = *b"sixteen byte msg";
const CHILD_DEADLINE: Duration = Duration::from_secs(20);

/// Why a child failed: its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
enum Fail {
    CallBeforeInitNotRefused = 2,
    OldSessionBeforeInitNotRefused = 3,
    LoadFailed = 4,
    InitializeFailed = 5,
    OldSessionUsable = 6,
    OpenSessionFailed = 7,
    NotPublicSession = 8,
    PublicObjectNotFound = 9,
    LoginFailed = 10,
    KeyNotFound = 11,
    EncryptFailed = 12,
    WrongCiphertext = 13,
    CreateFailed = 14,
    Panicked = 100,
}

impl Fail {
    fn of(code: i32) -> String {
        let all = [
            Fail::CallBeforeInitNotRefused,
            Fail::OldSessionBeforeInitNotRefused,
            Fail::LoadFailed,
            Fail::InitializeFailed,
            Fail::OldSessionUsable,
            Fail::OpenSessionFailed,
            Fail::NotPublicSession,
            Fail::PublicObjectNotFound,
            Fail::LoginFailed,
            Fail::KeyNotFound,
            Fail::EncryptFailed,
            Fail::WrongCiphertext,
            Fail::CreateFailed,
            Fail::Panicked,
        ];
        match all.iter().find(|f| **f as i32 == code) {
            Some(f) => format!("{f:?}"),
            None => format!("unknown failure code {code}"),
        }
    }
}

fn is_rv<T>(result: cryptoki::error::Result<T>, expected: RvError) -> bool {
    matches!(result, Err(Error::Pkcs11(rv, _)) if rv == expected)
}

/// Everything the child checks. `parent_ctx` and `parent_session` are the parent's,
/// copied by the fork; they are used only to see that the module refuses them.
fn child_checks(parent_ctx: &Pkcs11, parent_session: &Session, slot: Slot) -> Result<(), Fail> {
    if !is_rv(parent_ctx.get_all_slots(), RvError::CryptokiNotInitialized) {
        return Err(Fail::CallBeforeInitNotRefused);
    }
    if !is_rv(
        parent_session.get_session_info(),
        RvError::CryptokiNotInitialized,
    ) {
        return Err(Fail::OldSessionBeforeInitNotRefused);
    }
    let ctx = Pkcs11::new(module_path()).map_err(|_| Fail::LoadFailed)?;
    initialize(&ctx).map_err(|_| Fail::InitializeFailed)?;
    // Before this child opens any session of its own: the parent's handle is unknown here.
    if !is_rv(
        parent_session.get_session_info(),
        RvError::SessionHandleInvalid,
    ) {
        return Err(Fail::OldSessionUsable);
    }
    let session = ctx
        .open_rw_session(slot)
        .map_err(|_| Fail::OpenSessionFailed)?;
    match session.get_session_info() {
        Ok(info) if info.session_state() == SessionState::RwPublic => {}
        _ => return Err(Fail::NotPublicSession),
    }
    match session.find_objects(&[cryptoki::object::Attribute::Label(
        DATA_LABEL.as_bytes().to_vec(),
    )]) {
        Ok(found) if found.len() == 1 => {}
        _ => return Err(Fail::PublicObjectNotFound),
    }
    session
        .login(UserType::User, Some(&pin(USER_PIN)))
        .map_err(|_| Fail::LoginFailed)?;
    let key = match session.find_objects(&[cryptoki::object::Attribute::Label(
        KEY_LABEL.as_bytes().to_vec(),
    )]) {
        Ok(found) if found.len() == 1 => found[0],
        _ => return Err(Fail::KeyNotFound),
    };
    let out = session
        .encrypt(&Mechanism::AesEcb, key, &BLOCK)
        .map_err(|_| Fail::EncryptFailed)?;
    if out != expected_ciphertext() {
        return Err(Fail::WrongCiphertext);
    }
    session
        .create_object(&data_template("made-by-child", b"child", true))
        .map_err(|_| Fail::CreateFailed)?;
    Ok(())
}

/// AES-128-ECB of [`BLOCK`] under [`AES_KEY`] (FIPS-197 arithmetic, computed by the
/// parent before the fork through the module and checked here against the child's).
fn expected_ciphertext() -> Vec<u8> {
    EXPECTED.with(|e| e.borrow().clone())
}

thread_local! {
    static EXPECTED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Forks; the child runs `child_checks` and `_exit`s with 0 or its failure code. Returns
/// the child's exit status (panics if it was killed or missed the deadline).
fn fork_and_check(parent_ctx: &Pkcs11, parent_session: &Session, slot: Slot) -> i32 {
    // SAFETY: (test) the child calls only the module and the allocator (glibc's malloc is
    // usable in a forked child) and leaves with `_exit`, running no destructors.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            child_checks(parent_ctx, parent_session, slot)
        }));
        let code = match outcome {
            Ok(Ok(())) => 0,
            Ok(Err(fail)) => fail as i32,
            Err(_) => Fail::Panicked as i32,
        };
        // SAFETY: (test) ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    wait_for(pid)
}

fn assert_child_ok(code: i32) {
    assert_eq!(code, 0, "the forked child failed: {}", Fail::of(code));
}

/// A token with a private AES key and a public data object, and a logged-in session.
fn setup(env: &TestEnv) -> (Pkcs11, Slot, Session, ObjectHandle) {
    let (ctx, slot, session) = ready_token(env);
    let key = session
        .create_object(&aes_template(KEY_LABEL, &AES_KEY, true))
        .expect("create the AES key");
    session
        .create_object(&data_template(DATA_LABEL, b"public", true))
        .expect("create the public data object");
    let ct = session
        .encrypt(&Mechanism::AesEcb, key, &BLOCK)
        .expect("encrypt in the parent");
    assert_eq!(ct.len(), 16);
    EXPECTED.with(|e| *e.borrow_mut() = ct);
    (ctx, slot, session, key)
}

/// The parent's session is still logged in and usable, and sees what the child made.
fn assert_parent_carries_on(session: &Session, key: ObjectHandle) {
    let info = session
        .get_session_info()
        .expect("parent's C_GetSessionInfo");
    assert_eq!(
        info.session_state(),
        SessionState::RwUser,
        "parent lost its login"
    );
    let ct = session
        .encrypt(&Mechanism::AesEcb, key, &BLOCK)
        .expect("parent's C_Encrypt after the fork");
    assert_eq!(ct, expected_ciphertext());
    assert_eq!(
        find_by_label(session, "made-by-child").len(),
        1,
        "the parent does not see the object the child created"
    );
    session
        .create_object(&data_template("made-by-parent-after", b"p", true))
        .expect("parent's C_CreateObject after the fork");
}

#[test]
fn a_forked_child_starts_uninitialised_and_works_on_its_own() {
    child_works_on_its_own(TestEnv::new());
}

/// The same on a PostgreSQL token: the child never uses the parent's connections (it
/// abandons the parent's provider) and makes its own. `check_interval_ms = 0`: the
/// parent's next call asks the server when no notification has come, so it sees the
/// child's object exactly then.
#[test]
fn a_forked_child_on_a_postgres_token_starts_uninitialised_and_works_on_its_own() {
    child_works_on_its_own(postgres_env());
}

fn postgres_env() -> TestEnv {
    TestEnv::postgres_with(Options::default(), "check_interval_ms = 0")
}

fn child_works_on_its_own(env: TestEnv) {
    let (ctx, slot, session, key) = setup(&env);
    assert_child_ok(fork_and_check(&ctx, &session, slot));
    assert_parent_carries_on(&session, key);
}

#[test]
fn a_forked_child_leaves_the_parents_open_operations_alone() {
    let env = TestEnv::new();
    let (ctx, slot, session, key) = setup(&env);
    // Operations in progress in the parent at the fork: a multi-part encryption, and a
    // digest in a second session.
    session
        .encrypt_init(&Mechanism::AesEcb, key)
        .expect("C_EncryptInit");
    let first = session.encrypt_update(&BLOCK).expect("C_EncryptUpdate");
    let other = user_session_again(&ctx, slot);
    other.digest_init(&Mechanism::Sha256).expect("C_DigestInit");
    other.digest_update(b"abc").expect("C_DigestUpdate");

    assert_child_ok(fork_and_check(&ctx, &session, slot));

    let second = session
        .encrypt_update(&BLOCK)
        .expect("C_EncryptUpdate after the fork");
    let last = session
        .encrypt_final()
        .expect("C_EncryptFinal after the fork");
    let mut all = first;
    all.extend(second);
    all.extend(last);
    let mut want = expected_ciphertext();
    want.extend(expected_ciphertext());
    assert_eq!(
        all, want,
        "the parent's multi-part encryption was disturbed"
    );
    let digest = other.digest_final().expect("C_DigestFinal after the fork");
    assert_eq!(
        to_hex(&digest),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_parent_carries_on(&session, key);
}

/// A module that caught a panic answers `CKR_GENERAL_ERROR` until the process starts it
/// afresh; a child forked from that process is not the poisoned module but an
/// uninitialised one, and works once it has called `C_Initialize` (review 16d, read only:
/// the child answered `CKR_GENERAL_ERROR` to every call before its `C_Initialize`). The
/// panic is injected (`KMSHSM_TEST_PANIC_IN`, debug builds): no caller input reaches one.
#[test]
fn a_child_of_a_process_whose_module_panicked_starts_uninitialised() {
    let env = TestEnv::new();
    let (ctx, slot, session, _key) = setup(&env);
    // SAFETY: (test) nextest runs this test alone in its process, and no other thread is
    // reading the environment now.
    unsafe { std::env::set_var("KMSHSM_TEST_PANIC_IN", "C_SeedRandom") };
    assert!(
        is_rv(session.seed_random(b"seed"), RvError::GeneralError),
        "the injected panic was not caught as CKR_GENERAL_ERROR"
    );
    assert!(
        is_rv(ctx.get_all_slots(), RvError::GeneralError),
        "a caught panic poisons the module"
    );
    assert_child_ok(fork_and_check(&ctx, &session, slot));
    assert!(
        is_rv(ctx.get_all_slots(), RvError::GeneralError),
        "the parent's module is still poisoned after its child started afresh"
    );
}

/// A child made by a raw `clone()`, which runs no fork hooks, and whose C_Initialize then
/// fails: the parent's sessions name nothing in it, though the cloning thread used one
/// just before (each thread remembers its last session look-up, `provider::session_of`).
#[test]
fn a_raw_clone_child_whose_initialize_fails_cannot_use_the_parents_sessions() {
    let env = TestEnv::new();
    let (_ctx, _slot, session, _key) = setup(&env);
    let raw = common::raw::Raw::load();
    let handle = session.handle();
    assert!(
        raw.session_state(handle).is_ok(),
        "the look-up the thread remembers"
    );
    // SAFETY: (test) a child without fork()'s hooks (flags: SIGCHLD only, the same stack);
    // it calls only the module and the allocator and leaves with `_exit`.
    let pid = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_long, 0, 0, 0, 0) };
    assert!(
        pid >= 0,
        "clone failed: {}",
        std::io::Error::last_os_error()
    );
    if pid == 0 {
        // SAFETY: (test) the child has one thread.
        unsafe { std::env::set_var("KMSHSM_CONF", "/nonexistent/kmshsm.toml") };
        let code = match (raw.initialize_null(), raw.session_state(handle)) {
            (Err(_), Err(RvError::CryptokiNotInitialized)) => 0,
            (Ok(()), _) => 1,
            (Err(_), Ok(_)) => 2,
            (Err(_), Err(_)) => 3,
        };
        // SAFETY: (test) ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let code = wait_for(pid as libc::pid_t);
    assert_eq!(
        code, 0,
        "in the child: 1 = C_Initialize succeeded with no configuration, 2 = the parent's \
         session answered, 3 = another error than CKR_CRYPTOKI_NOT_INITIALIZED"
    );
}

/// A second session of the same (logged-in) application.
fn user_session_again(ctx: &Pkcs11, slot: Slot) -> Session {
    ctx.open_rw_session(slot).expect("C_OpenSession")
}

#[test]
fn forks_while_other_threads_call_the_module_never_leave_the_child_stuck() {
    let env = TestEnv::new();
    let (ctx, slot, session, key) = setup(&env);
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let ctx = ctx.clone();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut calls = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let s = ctx.open_ro_session(slot).expect("worker C_OpenSession");
                    s.find_objects(&[]).expect("worker C_FindObjects");
                    ctx.get_all_slots().expect("worker C_GetSlotList");
                    s.close().expect("worker C_CloseSession");
                    calls += 1;
                }
                calls
            })
        })
        .collect();
    for round in 0..20 {
        let code = fork_and_check_lite(&ctx, slot);
        assert_eq!(
            code,
            0,
            "round {round}: the forked child failed: {}",
            Fail::of(code)
        );
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let calls = w.join().expect("worker panicked");
        assert!(calls > 0, "a worker made no call at all");
    }
    assert_parent_carries_on_without_child_object(&session, key);
}

/// A lighter child for the many-forks test: initialise, open a session, log in, encrypt.
fn fork_and_check_lite(_parent_ctx: &Pkcs11, slot: Slot) -> i32 {
    // SAFETY: (test) as in `fork_and_check`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let outcome = std::panic::catch_unwind(|| -> Result<(), Fail> {
            let ctx = Pkcs11::new(module_path()).map_err(|_| Fail::LoadFailed)?;
            initialize(&ctx).map_err(|_| Fail::InitializeFailed)?;
            let s = ctx
                .open_rw_session(slot)
                .map_err(|_| Fail::OpenSessionFailed)?;
            s.login(UserType::User, Some(&pin(USER_PIN)))
                .map_err(|_| Fail::LoginFailed)?;
            let key = match s.find_objects(&[cryptoki::object::Attribute::Label(
                KEY_LABEL.as_bytes().to_vec(),
            )]) {
                Ok(found) if found.len() == 1 => found[0],
                _ => return Err(Fail::KeyNotFound),
            };
            let out = s
                .encrypt(&Mechanism::AesEcb, key, &BLOCK)
                .map_err(|_| Fail::EncryptFailed)?;
            if out != expected_ciphertext() {
                return Err(Fail::WrongCiphertext);
            }
            Ok(())
        });
        let code = match outcome {
            Ok(Ok(())) => 0,
            Ok(Err(fail)) => fail as i32,
            Err(_) => Fail::Panicked as i32,
        };
        // SAFETY: (test) ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    wait_for(pid)
}

fn assert_parent_carries_on_without_child_object(session: &Session, key: ObjectHandle) {
    let info = session
        .get_session_info()
        .expect("parent's C_GetSessionInfo");
    assert_eq!(
        info.session_state(),
        SessionState::RwUser,
        "parent lost its login"
    );
    let ct = session
        .encrypt(&Mechanism::AesEcb, key, &BLOCK)
        .expect("parent's C_Encrypt after the forks");
    assert_eq!(ct, expected_ciphertext());
}

/// OpenSC's own check (`pkcs11-tool --test-fork`, opensc 0.23): the tool initialises the
/// module, logs in, forks, and fails unless `C_Initialize` returns `CKR_OK` in the child.
/// Needs `pkcs11-tool` (`apt-get install -y opensc`); fails, never skips, without it.
#[test]
fn pkcs11_tool_test_fork_passes() {
    let env = TestEnv::new();
    let (_ctx, _slot, _session) = ready_token(&env);
    let program = require_tool("pkcs11-tool", "opensc");
    let output = std::process::Command::new(program)
        .arg("--module")
        .arg(module_path())
        .args(["--login", "--pin", USER_PIN, "--test-fork"])
        .output()
        .expect("run pkcs11-tool");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "pkcs11-tool --test-fork failed ({})\n--- stdout\n{stdout}--- stderr\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("C_Initialize") && stdout.contains("forked child"),
        "pkcs11-tool did not run its fork test\n--- stdout\n{stdout}--- stderr\n{stderr}"
    );
}

/// As above, but the parent's threads write to the token (each creation and destruction
/// is a SQLite transaction), so forks land while a thread is inside SQLite.
#[test]
fn forks_while_other_threads_write_the_token_never_leave_the_child_stuck() {
    forks_while_writing(TestEnv::new());
}

/// The same on a PostgreSQL token: forks land while a thread is in the middle of a
/// round trip to the server.
#[test]
fn forks_while_other_threads_write_a_postgres_token_never_leave_the_child_stuck() {
    forks_while_writing(postgres_env());
}

fn forks_while_writing(env: TestEnv) {
    let (ctx, slot, session, key) = setup(&env);
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|i| {
            let ctx = ctx.clone();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let s = ctx.open_rw_session(slot).expect("worker C_OpenSession");
                let mut calls = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let label = format!("worker-{i}");
                    let o = s
                        .create_object(&data_template(&label, b"w", true))
                        .expect("worker C_CreateObject");
                    s.destroy_object(o).expect("worker C_DestroyObject");
                    calls += 1;
                }
                calls
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    for round in 0..30 {
        let code = fork_and_check_lite(&ctx, slot);
        assert_eq!(
            code,
            0,
            "round {round}: the forked child failed: {}",
            Fail::of(code)
        );
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let calls = w.join().expect("worker panicked");
        assert!(calls > 0, "a worker made no call at all");
    }
    assert_parent_carries_on_without_child_object(&session, key);
}

/// The exit status of child `pid`; kills it and fails after [`CHILD_DEADLINE`], and fails
/// when it did not exit normally.
fn wait_for(pid: libc::pid_t) -> i32 {
    wait_for_child(pid, CHILD_DEADLINE, "the forked child")
        .expect("the forked child did not exit normally")
}
