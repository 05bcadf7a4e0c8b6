//! An attacker's review (branch attack16c) of the session and operation lifecycle inside
//! one process: what a handle given out before `C_Finalize` names after the next
//! `C_Initialize`, and what a child process that skipped `C_Initialize` can still reach
//! of its parent's state. Each test asserts what PKCS#11 or the project's documents
//! promise and fails against the module as reviewed (324d791); its doc comment says
//! what is wrong.
//! Run with `cargo build --lib && cargo nextest run --test attack_review16c`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::time::Duration;

use common::raw::{Raw, RawAttr};
use common::*;
use cryptoki::error::RvError;
use cryptoki::session::UserType;
use cryptoki_sys::*;

/// How long a child process may take before it is killed and the test fails.
const CHILD_DEADLINE: Duration = Duration::from_secs(20);

/// `src/ids.rs` documents `ObjectHandle` as "An object's handle, unique in the process
/// and never reused", and `src/object/table.rs` says handles come "from a process-wide
/// counter when an object is first seen and never reused, so a stale handle or one from
/// another token is simply not found". PKCS#11 3.0 §5.4 (`C_Finalize`) ends every
/// handle the application held.
///
/// The counter is not process-wide: it lives in the provider (`Shared::handles`, a
/// `HandleSource::default()` made by `Provider::new` in `src/provider.rs`), so every
/// `C_Initialize` counts object handles from 1 again. A key handle kept by one part of
/// an application across another part's `C_Finalize` + `C_Initialize` (several
/// libraries sharing one module in one process do exactly that) then names whichever
/// object of the new initialisation drew the same number: a different key, which the
/// stale handle encrypts with. `tests/hostile_abi.rs` checks the old handle only before
/// any object of the new initialisation has one.
///
/// Expected: no object of the new initialisation gets a handle given out before, and
/// the old handle answers `CKR_OBJECT_HANDLE_INVALID`. Actual: the old number is given
/// out again and names the new object.
#[test]
fn an_object_handle_from_before_c_finalize_names_no_object_after_the_next_c_initialize() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = user_session(&ctx, slot);
    let old = session
        .create_object(&aes_template("before-finalize", &[0x11; 16], false))
        .unwrap()
        .handle();
    drop(session);
    ctx.finalize().unwrap();

    let ctx = env.load();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let session = user_session(&ctx, slot);
    let mut made = Vec::new();
    for i in 0..old + 4 {
        let label = format!("after-finalize-{i}");
        made.push(
            session
                .create_object(&aes_template(&label, &[0x22; 16], false))
                .unwrap()
                .handle(),
        );
    }
    let raw = Raw::load();
    let (answer, values) = raw.get_attributes(session.handle(), old, &[CKA_LABEL], 64);
    let named = values
        .first()
        .map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned())
        .unwrap_or_default();
    assert!(
        !made.contains(&old),
        "handle {old}, given out before C_Finalize, was given out again after the next \
         C_Initialize (C_GetAttributeValue through the old handle: {answer:?}, label \
         {named:?})"
    );
    assert_eq!(
        answer,
        Err(RvError::ObjectHandleInvalid),
        "the stale handle {old} names an object of the new initialisation (label {named:?})"
    );
}

/// docs/reliability.md ("Forked children"): "The child never uses, closes or unmaps what
/// it inherited — the parent's SQLite connections, `-shm` mappings, locks and
/// sessions"; "A child made by a raw `clone` that runs no fork hooks is recognised in
/// `C_Initialize` by the provider's process ID and abandons the inherited state the
/// same way". `src/provider/fork.rs` gives the reason: SQLite forbids using a
/// connection across a fork (the child would lock, write and checkpoint through the
/// parent's connection and WAL-index state), and a PostgreSQL child would write on the
/// parent's socket.
///
/// The process-ID check is made only in `C_Initialize`. A raw-`clone` child (no
/// `pthread_atfork` hooks: `syscall(SYS_clone)`, some language runtimes) that calls the
/// module *before* `C_Initialize` — a PKCS#11 mistake, but one the module is meant to
/// survive — goes through `provider::get()` and `provider::session_of`, neither of
/// which compares `Provider::pid` with the caller's process: it reaches the parent's
/// provider, uses the parent's logged-in session, and writes a token object into the
/// parent's token through the parent's SQLite connection.
///
/// Expected: in such a child every call but `C_Initialize` (and the three `C_Get*`
/// list functions) answers `CKR_CRYPTOKI_NOT_INITIALIZED`, as in a `fork()` child, and
/// nothing reaches the parent's token. Actual: `CKR_OK`, with the parent's login.
#[test]
fn a_raw_clone_child_that_skips_c_initialize_does_not_write_through_the_parents_session() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = user_session(&ctx, slot);
    // The parent has used its token (its connection and cache are warm).
    session
        .create_object(&data_template("parent-data", b"p", true))
        .unwrap();
    let raw = Raw::load();
    let handle = session.handle();
    let template = [
        RawAttr::ulong(CKA_CLASS, CKO_DATA),
        RawAttr::bool(CKA_TOKEN, true),
        RawAttr::bool(CKA_PRIVATE, true),
        RawAttr::new(CKA_LABEL, b"written-by-the-child"),
        RawAttr::new(CKA_VALUE, b"c"),
    ];
    // SAFETY: (test) a child without fork()'s hooks (flags: SIGCHLD only, a copy of
    // the address space as fork makes); it calls only the module and leaves with _exit.
    let pid = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_long, 0, 0, 0, 0) };
    assert!(
        pid >= 0,
        "clone failed: {}",
        std::io::Error::last_os_error()
    );
    if pid == 0 {
        let state = raw.session_state(handle);
        let created = raw.create_object(handle, &template);
        let code = match (state, created) {
            (Err(RvError::CryptokiNotInitialized), Err(RvError::CryptokiNotInitialized)) => 0,
            (Ok(_), Ok(_)) => 1,
            (_, Ok(_)) => 2,
            (Ok(_), Err(_)) => 3,
            _ => 4,
        };
        // SAFETY: (test) ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let code = wait_for_child(pid as libc::pid_t, CHILD_DEADLINE, "the child");
    // What the parent finds afterwards (its login and session are its own).
    session.logout().unwrap();
    session.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    let found = find_by_label(&session, "written-by-the-child").len();
    assert_eq!(
        code,
        Some(0),
        "the raw-clone child, which never called C_Initialize, reached the parent's \
         logged-in session (1: C_GetSessionInfo and C_CreateObject of a private token \
         object answered CKR_OK; 2, 3, 4: other mixes; None: killed by a signal); the \
         parent now finds {found} object(s) the child wrote into its token"
    );
    assert_eq!(found, 0, "the child wrote into the parent's token");
}
