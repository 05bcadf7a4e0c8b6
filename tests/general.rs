//! General-purpose functions (PKCS#11 3.1 §5.4, §5.15): C_Initialize, C_Finalize, C_GetInfo,
//! C_GenerateRandom, C_SeedRandom, C_WaitForSlotEvent, and how a broken configuration makes
//! C_Initialize fail. Run with `cargo nextest run` (one process per test).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::process::Stdio;

use common::raw::Raw;
use common::*;
use cryptoki::error::RvError;
use cryptoki::object::AttributeType;
use cryptoki::slot::Slot;

const CHILD_ENTRY: &str = "child_process_entry_point";

/// Not a test: the body of the child processes the configuration tests start.
#[test]
#[ignore = "child-process entry point: this file's tests run it in a child (--ignored --exact)"]
fn child_process_entry_point() {
    let Some(role) = child_role() else { return };
    match role.as_str() {
        // Load with whatever KMSHSM_CONF says and report C_Initialize's result.
        "initialize" => {
            let ctx = load_module();
            match initialize(&ctx) {
                Ok(()) => tell_parent("OK"),
                Err(cryptoki::error::Error::Pkcs11(rv, _)) => tell_parent(&format!("{rv:?}")),
                Err(e) => tell_parent(&format!("other error {e}")),
            }
        }
        other => panic!("unknown child role {other}"),
    }
}

/// Runs C_Initialize in a child process; returns its verdict and its stderr.
fn initialize_in_child() -> (String, String) {
    let output = child_command(CHILD_ENTRY, "initialize")
        .stdin(Stdio::null())
        .output()
        .expect("spawn child");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let verdict = child_lines(&stdout).pop().unwrap_or_else(|| {
        panic!("child printed no verdict\nstdout:\n{stdout}\nstderr:\n{stderr}")
    });
    (verdict, stderr)
}

#[test]
fn library_info_is_reported() {
    let env = TestEnv::new();
    let ctx = env.load();
    let info = ctx.get_library_info().unwrap();
    assert!(
        info.cryptoki_version().major() >= 2,
        "cryptoki version {}",
        info.cryptoki_version()
    );
    assert!(
        !info.manufacturer_id().trim().is_empty(),
        "empty manufacturerID"
    );
    assert!(
        !info.library_description().trim().is_empty(),
        "empty libraryDescription"
    );
    ctx.finalize().unwrap();
}

#[test]
fn calls_before_initialize_report_not_initialized() {
    let _env = TestEnv::new();
    let ctx = load_module();
    let slot = Slot::try_from(0u64).unwrap();
    assert_rv!(ctx.get_library_info(), RvError::CryptokiNotInitialized);
    assert_rv!(ctx.get_all_slots(), RvError::CryptokiNotInitialized);
    assert_rv!(ctx.get_slot_info(slot), RvError::CryptokiNotInitialized);
    assert_rv!(ctx.get_token_info(slot), RvError::CryptokiNotInitialized);
    assert_rv!(ctx.open_rw_session(slot), RvError::CryptokiNotInitialized);
    assert_rv!(
        ctx.get_mechanism_list(slot),
        RvError::CryptokiNotInitialized
    );
    let raw = Raw::load();
    assert_eq!(raw.session_state(1), Err(RvError::CryptokiNotInitialized));
    assert_eq!(
        raw.close_all_sessions(0),
        Err(RvError::CryptokiNotInitialized)
    );
    assert_rv!(ctx.finalize(), RvError::CryptokiNotInitialized);
}

#[test]
fn second_initialize_reports_already_initialized() {
    let env = TestEnv::new();
    let ctx = env.load();
    assert_rv!(initialize(&ctx), RvError::CryptokiAlreadyInitialized);
    // With NULL arguments too, and the first initialisation is unharmed.
    let raw = Raw::load();
    assert_eq!(
        raw.initialize_null(),
        Err(RvError::CryptokiAlreadyInitialized)
    );
    assert!(!ctx.get_all_slots().unwrap().is_empty());
    ctx.finalize().unwrap();
}

#[test]
fn initialize_accepts_null_arguments() {
    let _env = TestEnv::new();
    let raw = Raw::load();
    raw.initialize_null().expect("C_Initialize(NULL)");
    let ctx = load_module();
    assert!(!ctx.get_all_slots().unwrap().is_empty());
    ctx.finalize().unwrap();
}

#[test]
fn initialize_and_finalize_repeat_in_one_process() {
    let env = TestEnv::new();
    for round in 0..3 {
        let ctx = env.load();
        let slot = if round == 0 {
            init_token(&ctx)
        } else {
            slot_of_token(&ctx, TOKEN_LABEL)
        };
        let session = user_session(&ctx, slot);
        session
            .create_object(&data_template(&format!("round-{round}"), b"v", true))
            .unwrap();
        // Every earlier round's token object is still there.
        for earlier in 0..=round {
            assert_eq!(
                find_by_label(&session, &format!("round-{earlier}")).len(),
                1
            );
        }
        drop(session);
        ctx.finalize().unwrap();
        // After C_Finalize the library is uninitialised again.
        let ctx = load_module();
        assert_rv!(ctx.get_all_slots(), RvError::CryptokiNotInitialized);
    }
}

#[test]
fn finalize_invalidates_sessions() {
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    let handle = session.handle();
    std::mem::forget(session); // cryptoki would close it after finalize otherwise
    ctx.finalize().unwrap();
    let ctx = env.load();
    let raw = Raw::load();
    assert_eq!(
        raw.session_state(handle),
        Err(RvError::SessionHandleInvalid)
    );
    // Login state does not survive finalisation either.
    let session = ctx
        .open_ro_session(slot_of_token(&ctx, TOKEN_LABEL))
        .unwrap();
    assert_eq!(
        session.get_session_info().unwrap().session_state(),
        cryptoki::session::SessionState::RoPublic
    );
    let _ = slot;
}

#[test]
fn generate_random_output_differs_between_calls() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let a = session.generate_random_vec(32).unwrap();
    let b = session.generate_random_vec(32).unwrap();
    assert_eq!(a.len(), 32);
    assert_ne!(a, vec![0u8; 32], "random output is all zeroes");
    assert_ne!(a, b, "two random outputs are equal");
    let big = session.generate_random_vec(4096).unwrap();
    assert_eq!(big.len(), 4096);
}

#[test]
fn generate_random_works_in_public_ro_session() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = ctx.open_ro_session(slot).unwrap();
    assert_eq!(session.generate_random_vec(16).unwrap().len(), 16);
}

#[test]
fn generate_random_of_zero_length_is_fine() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    // A zero-length buffer (non-NULL pointer)...
    session
        .generate_random_slice(&mut [])
        .expect("zero-length C_GenerateRandom");
    // ...and (NULL, 0), which is an empty buffer too (STYLE.md: ffi/raw.rs). SoftHSMv2 answers
    // CKR_ARGUMENTS_BAD here.
    let raw = Raw::load();
    assert_eq!(raw.generate_random(session.handle(), 0), Ok(vec![]));
}

#[test]
fn generate_random_needs_a_valid_session() {
    let env = TestEnv::new();
    let (_ctx, _slot, _session) = ready_token(&env);
    let raw = Raw::load();
    assert_eq!(
        raw.generate_random(0x7777_0000, 8),
        Err(RvError::SessionHandleInvalid)
    );
}

#[test]
fn seed_random_is_accepted_and_ignored() {
    // CKR_OK since issue 14 (was CKR_RANDOM_SEED_NOT_SUPPORTED): the OS generator needs no
    // seed, and clients (cryptoki's tests, pkcs11-provider) expect the call to succeed, as
    // it does with SoftHSMv2. The session and buffer are still checked.
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    session
        .seed_random(b"some seed bytes")
        .expect("C_SeedRandom");
    let raw = Raw::load();
    assert_eq!(raw.seed_random(session.handle(), b""), Ok(()));
    assert_eq!(
        raw.seed_random(0x7777_0000, b"seed"),
        Err(RvError::SessionHandleInvalid)
    );
    // The generator still works after a seed, and gives different bytes each time.
    let a = session.generate_random_vec(32).unwrap();
    let b = session.generate_random_vec(32).unwrap();
    assert_ne!(a, b);
}

#[test]
fn wait_for_slot_event_is_not_supported() {
    let env = TestEnv::new();
    let ctx = env.load();
    assert_rv!(ctx.get_slot_event(), RvError::FunctionNotSupported); // CKF_DONT_BLOCK
    assert_rv!(ctx.wait_for_slot_event(), RvError::FunctionNotSupported); // blocking
    let raw = Raw::load();
    assert_eq!(
        raw.wait_for_slot_event(cryptoki_sys::CKF_DONT_BLOCK),
        Err(RvError::FunctionNotSupported)
    );
}

#[test]
fn attribute_types_are_usable_after_initialize() {
    // Smoke check that the function list is complete enough for an object round trip.
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let object = session
        .create_object(&data_template("smoke", b"value", false))
        .unwrap();
    assert_eq!(
        attribute_bytes(&session, object, AttributeType::Value),
        b"value"
    );
}

// ---- configuration (kmshsm only: SoftHSMv2 ignores KMSHSM_CONF) -------------------------

#[test]
fn malformed_config_file_makes_initialize_fail_with_a_message() {
    let env = TestEnv::new();
    env.write_config("token_dir = \"unterminated\nlog_level = \n");
    let (verdict, stderr) = initialize_in_child();
    assert_eq!(verdict, "FunctionFailed", "stderr:\n{stderr}");
    assert!(
        stderr.contains("kmshsm.toml"),
        "the log line does not name the configuration file:\n{stderr}"
    );
}

#[test]
fn unknown_config_key_makes_initialize_fail_with_a_message() {
    let env = TestEnv::new();
    env.write_config(&format!(
        "token_dir = {:?}\ntoken_dri_typo = \"x\"\n",
        env.token_dir.to_str().unwrap()
    ));
    let (verdict, stderr) = initialize_in_child();
    assert_eq!(verdict, "FunctionFailed", "stderr:\n{stderr}");
    assert!(
        stderr.contains("token_dri_typo"),
        "the log line does not name the key:\n{stderr}"
    );
}

#[test]
fn wrongly_typed_config_value_makes_initialize_fail_with_a_message() {
    let env = TestEnv::new();
    env.write_config(&format!(
        "token_dir = {:?}\nmax_pin_failures = \"three\"\n",
        env.token_dir.to_str().unwrap()
    ));
    let (verdict, stderr) = initialize_in_child();
    assert_eq!(verdict, "FunctionFailed", "stderr:\n{stderr}");
    assert!(
        stderr.contains("max_pin_failures"),
        "the log line does not name the key:\n{stderr}"
    );
}

/// A statement timeout the server cannot take (over `INT_MAX` milliseconds) is a
/// configuration error naming the setting, not a store that fails every connection
/// (review 14e; `tests/attack_review14e.rs` has the server-side half).
#[test]
fn a_statement_timeout_beyond_the_servers_range_makes_initialize_fail_with_a_message() {
    let env = TestEnv::new();
    env.write_config(&format!(
        "token_dir = {:?}\n[postgres]\nstatement_timeout_ms = 2147483648\n",
        env.token_dir.to_str().unwrap()
    ));
    let (verdict, stderr) = initialize_in_child();
    assert_eq!(verdict, "FunctionFailed", "stderr:\n{stderr}");
    assert!(
        stderr.contains("statement_timeout_ms"),
        "the log line does not name the setting:\n{stderr}"
    );
}

#[test]
fn missing_config_file_makes_initialize_fail_with_a_message() {
    let env = TestEnv::new();
    let missing = env.dir.path().join("no-such-kmshsm.toml");
    std::env::set_var("KMSHSM_CONF", &missing);
    let (verdict, stderr) = initialize_in_child();
    assert_eq!(verdict, "FunctionFailed", "stderr:\n{stderr}");
    assert!(
        stderr.contains("no-such-kmshsm.toml"),
        "the log line does not name the missing file:\n{stderr}"
    );
}

#[test]
fn initialize_succeeds_after_a_failed_attempt_once_the_config_is_fixed() {
    let env = TestEnv::new();
    let good = std::fs::read_to_string(&env.conf_path).unwrap();
    env.write_config("this is not toml");
    let ctx = load_module();
    assert_rv!(initialize(&ctx), RvError::FunctionFailed);
    assert_rv!(ctx.get_all_slots(), RvError::CryptokiNotInitialized);
    env.write_config(&good);
    initialize(&ctx).expect("C_Initialize with a good configuration");
    assert!(!ctx.get_all_slots().unwrap().is_empty());
}

#[test]
fn unloading_the_module_and_then_ending_the_thread_does_not_crash() {
    // Hosts dlclose a module after C_Finalize and keep running threads. A thread-specific-data
    // destructor left behind by the unloaded library would then run unmapped code when the
    // thread ends (SIGSEGV). Linking the cdylib with `-z nodelete` is one cure.
    let env = TestEnv::new();
    let worker = std::thread::spawn(move || {
        let ctx = env.load();
        let slot = init_token(&ctx);
        let session = user_session(&ctx, slot);
        session.generate_random_vec(16).unwrap();
        session
            .create_object(&aes_template("k", &[1; 16], false))
            .unwrap();
        drop(session);
        ctx.finalize().unwrap(); // drops the last handle: the library is dlclose'd
        env
    });
    let env = worker
        .join()
        .expect("the thread that used the module ended cleanly");
    let ctx = env.load();
    assert!(!ctx.get_all_slots().unwrap().is_empty());
}
