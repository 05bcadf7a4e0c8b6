//! OpenSC's pkcs11-tool (0.23, Debian) against the module: --show-info, --list-slots,
//! --init-token, --init-pin, --login, --list-objects, --write-object (data) and
//! --delete-object, each run and its output checked; what the tool wrote is then checked
//! through cryptoki in this process. Needs `pkcs11-tool` (`apt-get install -y opensc`).
//! Run with `cargo nextest run`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::process::Command;

use common::*;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};

const LABEL: &str = "tool-token";

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "success: {}\n--- stdout\n{}--- stderr\n{}",
            self.ok, self.stdout, self.stderr
        )
    }
}

/// Runs pkcs11-tool on the module under test (the environment carries KMSHSM_CONF).
fn tool(args: &[&str]) -> Run {
    let program = require_tool("pkcs11-tool", "opensc");
    let module = module_path();
    let output = Command::new(program)
        .arg("--module")
        .arg(&module)
        .args(args)
        .output()
        .expect("run pkcs11-tool");
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn tool_ok(args: &[&str]) -> Run {
    let run = tool(args);
    assert!(run.ok, "pkcs11-tool {}\n{run}", args.join(" "));
    run
}

/// Initialises the token and the user PIN with pkcs11-tool itself.
fn init_with_tool() {
    let run = tool_ok(&[
        "--slot-index",
        "0",
        "--init-token",
        "--so-pin",
        SO_PIN,
        "--label",
        LABEL,
    ]);
    assert!(
        run.stdout.contains("Token successfully initialized"),
        "{run}"
    );
    let run = tool_ok(&[
        "--token-label",
        LABEL,
        "--init-pin",
        "--login",
        "--login-type",
        "so",
        "--so-pin",
        SO_PIN,
        "--pin",
        USER_PIN,
    ]);
    assert!(
        run.stdout.contains("User PIN successfully initialized"),
        "{run}"
    );
}

#[test]
fn show_info_reports_the_library() {
    let env = TestEnv::new();
    let run = tool_ok(&["--show-info"]);
    assert!(run.stdout.contains("Cryptoki version"), "{run}");
    // The manufacturer printed is the one C_GetInfo gives this process.
    let ctx = env.load();
    let manufacturer = ctx
        .get_library_info()
        .unwrap()
        .manufacturer_id()
        .trim()
        .to_owned();
    assert!(
        run.stdout.contains(&manufacturer),
        "manufacturer {manufacturer:?} missing:\n{run}"
    );
}

#[test]
fn list_slots_shows_the_free_slot_then_the_initialised_token() {
    let _env = TestEnv::new();
    let run = tool_ok(&["--list-slots"]);
    assert!(run.stdout.contains("Available slots:"), "{run}");
    assert!(run.stdout.contains("token state:   uninitialized"), "{run}");
    init_with_tool();
    let run = tool_ok(&["--list-slots"]);
    assert!(
        run.stdout
            .contains(&format!("token label        : {LABEL}")),
        "{run}"
    );
    assert!(run.stdout.contains("token initialized"), "{run}");
    assert!(run.stdout.contains("PIN initialized"), "{run}");
    assert!(run.stdout.contains("pin min/max        : 4/255"), "{run}");
    assert!(
        run.stdout.contains("token state:   uninitialized"),
        "no new free slot:\n{run}"
    );
}

#[test]
fn init_token_and_init_pin_give_a_usable_token() {
    let env = TestEnv::new();
    init_with_tool();
    let ctx = env.load();
    let slot = slot_of_token(&ctx, LABEL);
    let info = ctx.get_token_info(slot).unwrap();
    assert!(info.token_initialized() && info.user_pin_initialized());
    user_session(&ctx, slot);
}

#[test]
fn login_with_the_right_pin_lists_objects_and_a_wrong_pin_fails() {
    let _env = TestEnv::new();
    init_with_tool();
    let run = tool_ok(&[
        "--token-label",
        LABEL,
        "--login",
        "--pin",
        USER_PIN,
        "--list-objects",
    ]);
    assert!(!run.stderr.contains("error"), "{run}");
    let run = tool(&[
        "--token-label",
        LABEL,
        "--login",
        "--pin",
        "wrong-pin",
        "--list-objects",
    ]);
    assert!(!run.ok, "a wrong PIN was accepted:\n{run}");
    assert!(run.stderr.contains("CKR_PIN_INCORRECT"), "{run}");
}

#[test]
fn write_list_and_delete_a_data_object() {
    let env = TestEnv::new();
    init_with_tool();
    let file = env.dir.path().join("payload.bin");
    let payload = b"data written by pkcs11-tool\x00\x01\x02";
    std::fs::write(&file, payload).unwrap();
    let login = ["--token-label", LABEL, "--login", "--pin", USER_PIN];

    let mut args = login.to_vec();
    args.extend([
        "--write-object",
        file.to_str().unwrap(),
        "--type",
        "data",
        "--label",
        "tool-data",
        "--application-label",
        "tool-app",
    ]);
    let run = tool_ok(&args);
    assert!(run.stdout.contains("Created Data Object"), "{run}");

    let mut args = login.to_vec();
    args.push("--list-objects");
    let run = tool_ok(&args);
    assert!(run.stdout.contains("label:          'tool-data'"), "{run}");
    assert!(run.stdout.contains("application:    'tool-app'"), "{run}");

    // What the tool wrote, seen through cryptoki in this process.
    {
        let ctx = env.load();
        let slot = slot_of_token(&ctx, LABEL);
        let session = ctx.open_ro_session(slot).unwrap();
        let found = session
            .find_objects(&[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Label(b"tool-data".to_vec()),
            ])
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(
            attribute_bytes(&session, found[0], AttributeType::Value),
            payload
        );
        assert_eq!(
            attribute_bytes(&session, found[0], AttributeType::Application),
            b"tool-app"
        );
        assert!(attribute_bool(&session, found[0], AttributeType::Token));
        drop(session);
        ctx.finalize().unwrap();
    }

    let mut args = login.to_vec();
    args.extend(["--delete-object", "--type", "data", "--label", "tool-data"]);
    tool_ok(&args);

    let mut args = login.to_vec();
    args.push("--list-objects");
    let run = tool_ok(&args);
    assert!(
        !run.stdout.contains("tool-data"),
        "the object survived --delete-object:\n{run}"
    );

    let ctx = env.load();
    let session = ctx.open_ro_session(slot_of_token(&ctx, LABEL)).unwrap();
    assert!(find_by_label(&session, "tool-data").is_empty());
}

#[test]
fn private_data_object_is_listed_only_after_login() {
    let env = TestEnv::new();
    init_with_tool();
    let file = env.dir.path().join("secret.bin");
    std::fs::write(&file, b"private payload").unwrap();
    tool_ok(&[
        "--token-label",
        LABEL,
        "--login",
        "--pin",
        USER_PIN,
        "--write-object",
        file.to_str().unwrap(),
        "--type",
        "data",
        "--label",
        "private-data",
        "--private",
    ]);
    let run = tool_ok(&["--token-label", LABEL, "--list-objects"]);
    assert!(
        !run.stdout.contains("private-data"),
        "listed without login:\n{run}"
    );
    let run = tool_ok(&[
        "--token-label",
        LABEL,
        "--login",
        "--pin",
        USER_PIN,
        "--list-objects",
    ]);
    assert!(run.stdout.contains("private-data"), "{run}");
}
