//! An attacker's review (branch attack16d) of the separation-of-duties policy as the
//! token's (c32cd76: the marker `separation_of_duties` in the token's metadata) and of
//! the recognition of a child made without `fork()`'s hooks (345c02f: the
//! `MADV_WIPEONFORK` mark beside the process-ID check of `C_Initialize`). Each test
//! asserts what PKCS#11 3.0 or the project's documents promise and fails against the
//! module as reviewed (345c02f); its doc comment says what is wrong. What was checked
//! and held is in the review's report, not here.
//!
//! Run with `cargo build --lib && cargo nextest run --test attack_review16d`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::raw::Raw;
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;
use cryptoki::session::UserType;

/// How long a child process may take before it is killed and the test fails.
const CHILD_DEADLINE: Duration = Duration::from_secs(30);

/// Waits for `child` for at most [`CHILD_DEADLINE`], killing it and failing after that;
/// returns its standard output.
fn finish(mut child: std::process::Child, what: &str) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > CHILD_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} hung for {CHILD_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout.read_to_string(&mut out).unwrap();
    }
    (status, out)
}

// ---------------------------------------------------------------------------------------
// The raw-clone child recognised by its process ID

/// The slot ID the PID-1 parent opens its session on.
const SLOT_ENV: &str = "ATTACK16D_SLOT";

/// Whether this machine lets an unprivileged user make user and PID namespaces (the
/// `unshare` tool of util-linux, `-Urp --fork`).
fn pid_namespaces_available() -> bool {
    Command::new("unshare")
        .args(["-Urp", "--fork", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// docs/reliability.md ("Forked children"): a child made by a raw `clone` that runs no
/// fork hooks "answers `CKR_CRYPTOKI_NOT_INITIALIZED`, and its `C_Finalize` drops nothing
/// of the parent's; its `C_Initialize` recognises it by the provider's process ID and
/// abandons the inherited state the same way"; the guarantee for every child is that
/// "its `C_Initialize` succeeds". PKCS#11 3.0 §5.4: `CKR_CRYPTOKI_ALREADY_INITIALIZED`
/// only when the library *was* initialised by this application.
///
/// The module now knows such a child by the wiped `MADV_WIPEONFORK` mark
/// (`os::fork::inherited`), and every call but `C_Initialize` trusts that mark. But
/// `provider::initialize` still decides by comparing `Provider::pid` with
/// `std::process::id()`. A process ID is not unique across PID namespaces: a process
/// that is PID 1 of its namespace (a container's main process, as under Docker or
/// `unshare --fork`) and makes a raw-clone child with `CLONE_NEWPID` (a sandbox, a
/// container runtime) has a child that is PID 1 too. That child is told
/// `CKR_CRYPTOKI_NOT_INITIALIZED` by every call, and `CKR_CRYPTOKI_ALREADY_INITIALIZED`
/// by `C_Initialize`, for ever: it can never use the module. The mark the module already
/// has (`inherited()`) says which it is; the process ID does not.
///
/// Expected: the child's `C_Initialize` answers `CKR_OK`. Actual:
/// `CKR_CRYPTOKI_ALREADY_INITIALIZED` (exit code 2 of the child).
#[test]
fn a_raw_clone_child_with_the_parents_process_id_in_a_new_pid_namespace_can_initialise() {
    assert!(
        pid_namespaces_available(),
        "this test needs user and PID namespaces (`unshare -Urp --fork true` must work: \
         util-linux, and unprivileged user namespaces allowed by the kernel)"
    );
    let env = TestEnv::new();
    let slot = {
        // A token the parent opens a session on, as an application does before forking.
        let ctx = env.load();
        let slot = init_token(&ctx);
        ctx.finalize().unwrap();
        slot.id()
    };
    let exe = std::env::current_exe().unwrap();
    let child = Command::new("unshare")
        .args(["-Urp", "--fork"])
        .arg(exe)
        .args([
            "--ignored",
            "--exact",
            "pid_one_parent",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ROLE_ENV, "pid-one")
        .env(SLOT_ENV, slot.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, out) = finish(child, "the PID-1 parent");
    let lines = child_lines(&out);
    assert!(
        status.success(),
        "the PID-1 parent failed ({status}); its lines: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l == "parent-pid 1"),
        "the scenario needs a parent that is PID 1 of its namespace: {lines:?}"
    );
    let code = lines
        .iter()
        .find_map(|l| l.strip_prefix("child "))
        .unwrap_or_else(|| panic!("no child line: {lines:?}"));
    assert_eq!(
        code, "0",
        "the raw-clone child (PID 1 in a new PID namespace, as its parent is in its own) \
         could not initialise the module (1: a call before C_Initialize did not answer \
         CKR_CRYPTOKI_NOT_INITIALIZED; 2: C_Initialize answered \
         CKR_CRYPTOKI_ALREADY_INITIALIZED while every other call said \
         CKR_CRYPTOKI_NOT_INITIALIZED; 3: C_Initialize failed otherwise; 4: the module \
         stayed unusable after it; 5: the child was not PID 1; None: killed by a signal)"
    );
}

/// The parent of the test above, run inside `unshare -Urp --fork` (so PID 1 of a new
/// namespace): initialises the module, makes a raw-clone child in a new PID namespace
/// (PID 1 there too) and reports what the child's calls answered.
#[test]
#[ignore = "a child role of a_raw_clone_child_with_the_parents_process_id_..."]
fn pid_one_parent() {
    if child_role().as_deref() != Some("pid-one") {
        return;
    }
    let raw = Raw::load();
    raw.initialize_null().expect("the parent's C_Initialize");
    // The parent uses the module (a session), as an application does before forking.
    let slot: cryptoki_sys::CK_SLOT_ID = std::env::var(SLOT_ENV).unwrap().parse().unwrap();
    let handle = raw
        .open_session(slot, cryptoki_sys::CKF_SERIAL_SESSION)
        .expect("the parent's C_OpenSession");
    let flags = libc::SIGCHLD as libc::c_long | libc::CLONE_NEWPID as libc::c_long;
    // SAFETY: (test) a child without fork()'s hooks (a copy of the address space as fork
    // makes, in a new PID namespace); it calls only the module and leaves with _exit.
    let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0) };
    assert!(pid >= 0, "clone: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: (test) getpid has no preconditions.
        let me = unsafe { libc::getpid() };
        let code = if me != 1 {
            5
        } else if raw.session_state(handle) != Err(RvError::CryptokiNotInitialized) {
            1
        } else {
            match raw.initialize_null() {
                Ok(()) => {
                    if raw.session_state(handle) == Err(RvError::SessionHandleInvalid) {
                        0
                    } else {
                        4
                    }
                }
                Err(RvError::CryptokiAlreadyInitialized) => 2,
                Err(_) => 3,
            }
        };
        // SAFETY: (test) ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let code = wait_for_child(pid as libc::pid_t, CHILD_DEADLINE, "the raw-clone child");
    tell_parent(&format!("parent-pid {}", std::process::id()));
    tell_parent(&format!(
        "child {}",
        code.map_or("None".to_string(), |c| c.to_string())
    ));
}

// ---------------------------------------------------------------------------------------
// The policy's marker and a process that had the token open before it

/// A configuration file beside `env`'s with the separation-of-duties policy on.
fn policy_config(env: &TestEnv) -> std::path::PathBuf {
    let text = std::fs::read_to_string(&env.conf_path).unwrap();
    let path = env.dir.path().join("with-policy.toml");
    std::fs::write(&path, format!("separation_of_duties = true\n{text}")).unwrap();
    path
}

/// An AES key template that both wraps and decrypts: what the policy forbids.
fn wrap_and_decrypt() -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::ValueLen(16.into()),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Wrap(true),
        Attribute::Decrypt(true),
        Attribute::Unwrap(false),
        Attribute::Encrypt(false),
    ]
}

/// docs/security.md, "Separation of duties": "a token made by a process configured with
/// it (`C_InitToken`), or logged into by one, carries a marker in its store (metadata
/// `separation_of_duties`), and every later process of that token keeps the policy
/// whatever its own configuration says"; "One authorisation point": every change is
/// "judged at the moment it happens against the state it is in *now*".
///
/// `Token::separating_duties` reads the marker from the token's cached view, which is
/// brought up to date only by calls that look an object up or read the session state
/// (`Token::refresh`). `C_GenerateKey` (`Token::generate_key` → `insert_all_in` →
/// `authorise_new`) refreshes nothing first. So an application that had the token open
/// before another process configured with the policy logged in (and wrote the marker)
/// goes on generating keys that wrap and decrypt into the token — token objects made
/// after the policy became the token's — until something else it calls happens to
/// refresh its view. The same call a moment later, after a `C_FindObjects` that
/// refreshed the view, is refused: the verdict depends on what the process last looked
/// at, not on the token.
///
/// Expected: once the marker is in the token, `C_GenerateKey` of a key with `CKA_WRAP`
/// and `CKA_DECRYPT` answers `CKR_TEMPLATE_INCONSISTENT` in every process. Actual: `CKR_OK`
/// in the process that opened the token before, and a token key that wraps and decrypts.
#[test]
fn a_process_that_opened_the_token_before_the_marker_makes_no_key_that_wraps_and_decrypts() {
    let env = TestEnv::new();
    // The application, configured without the policy, with the token open and logged in.
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = user_session(&ctx, slot);
    // It made a key before the policy: allowed ("keys made before the policy keep
    // working"), and its view of the token is warm.
    session
        .generate_key(&Mechanism::AesKeyGen, &wrap_and_decrypt())
        .expect("before the policy, a key that wraps and decrypts is allowed");

    // A process configured with the policy logs in: the token is under it from now on.
    let policy = policy_config(&env);
    let child = child_command("policy_login", "policy-login")
        .env("KMSHSM_CONF", &policy)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, out) = finish(child, "the policy process");
    assert!(
        status.success() && child_lines(&out).iter().any(|l| l == "logged in"),
        "the process configured with the policy did not log in ({status}): {out}"
    );
    // A process started now, configured without the policy, is bound by the marker.
    {
        let later = child_command("policy_login", "later-generate")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let (status, out) = finish(later, "the later process");
        assert!(status.success(), "the later process failed: {out}");
        assert!(
            child_lines(&out)
                .iter()
                .any(|l| l == "generate CKR_TEMPLATE_INCONSISTENT"),
            "the marker was not written (a later process was not bound by it): {out}"
        );
    }

    // The application that had the token open before.
    let made = session.generate_key(&Mechanism::AesKeyGen, &wrap_and_decrypt());
    let stale = match &made {
        Ok(_) => "CKR_OK".to_string(),
        Err(cryptoki::error::Error::Pkcs11(rv, _)) => format!("{rv:?}"),
        Err(e) => format!("{e:?}"),
    };
    // After a look-up that refreshes its view, the same call.
    let _ = find_by_label(&session, "anything");
    let refreshed = rv(session.generate_key(&Mechanism::AesKeyGen, &wrap_and_decrypt()));
    assert_eq!(
        refreshed,
        RvError::TemplateInconsistent,
        "after a refresh the process is bound too (sanity)"
    );
    assert!(
        matches!(
            made,
            Err(cryptoki::error::Error::Pkcs11(
                RvError::TemplateInconsistent,
                _
            ))
        ),
        "the token carries the separation-of-duties marker, yet a process that had it \
         open generated a token key that wraps and decrypts ({stale}); the same call after \
         a C_FindObjects answers {refreshed:?}"
    );
}

/// The child roles of the test above: `policy-login` logs in as the user with the
/// configuration its parent gave (the policy on); `later-generate` tries a key that
/// wraps and decrypts with the parent's configuration (the policy off).
#[test]
#[ignore = "a child role of a_process_that_opened_the_token_before_the_marker_..."]
fn policy_login() {
    let Some(role) = child_role() else {
        return;
    };
    let ctx = load_module();
    initialize(&ctx).unwrap();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let session = ctx.open_rw_session(slot).unwrap();
    session.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    match role.as_str() {
        "policy-login" => tell_parent("logged in"),
        "later-generate" => {
            let text = match session.generate_key(&Mechanism::AesKeyGen, &wrap_and_decrypt()) {
                Ok(_) => "CKR_OK".to_string(),
                Err(cryptoki::error::Error::Pkcs11(RvError::TemplateInconsistent, _)) => {
                    "CKR_TEMPLATE_INCONSISTENT".to_string()
                }
                Err(e) => format!("{e:?}"),
            };
            tell_parent(&format!("generate {text}"));
        }
        other => panic!("unknown role {other}"),
    }
    session.logout().unwrap();
    drop(session);
    ctx.finalize().unwrap();
}
