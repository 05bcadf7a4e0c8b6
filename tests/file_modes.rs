//! File modes of the token store: the token directory is 0700 and every file in it 0600,
//! whatever the process umask, while the library runs and after C_Finalize.
//! Run with `cargo nextest run`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

const CHILD_ENTRY: &str = "child_process_entry_point";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// "<mode> <path>" for the token directory and every file in it.
fn modes(token_dir: &Path) -> Vec<String> {
    let mut out = vec![format!("{:o} {}", mode(token_dir), token_dir.display())];
    for file in files_under(token_dir) {
        out.push(format!("{:o} {}", mode(&file), file.display()));
    }
    out
}

fn assert_private_modes(lines: &[String], when: &str) {
    let (dir, files) = lines.split_first().expect("no token directory listed");
    assert!(dir.starts_with("700 "), "{when}: token directory is {dir}");
    assert!(!files.is_empty(), "{when}: no files in the token directory");
    for line in files {
        assert!(line.starts_with("600 "), "{when}: {line}");
    }
}

/// Loads the module (KMSHSM_CONF already set), creates a token and objects, and keeps a
/// session open so -wal and -shm exist.
fn populate() -> (cryptoki::context::Pkcs11, cryptoki::session::Session) {
    let ctx = load_module();
    initialize(&ctx).unwrap();
    let slot = init_token(&ctx);
    let session = user_session(&ctx, slot);
    session
        .create_object(&aes_template("k", &[1; 32], true))
        .unwrap();
    session
        .create_object(&data_template("d", b"x", true))
        .unwrap();
    (ctx, session)
}

/// Not a test: runs [`populate`] in a child started under umask 000 and reports the modes.
#[test]
#[ignore = "child-process entry point: this file's tests run it in a child (--ignored --exact)"]
fn child_process_entry_point() {
    let Some(role) = child_role() else { return };
    assert_eq!(role, "populate");
    let token_dir = std::path::PathBuf::from(std::env::var_os("KMSHSM_TEST_TOKEN_DIR").unwrap());
    let (ctx, session) = populate();
    for line in modes(&token_dir) {
        tell_parent(&format!("running {line}"));
    }
    drop(session);
    ctx.finalize().unwrap();
    for line in modes(&token_dir) {
        tell_parent(&format!("finalized {line}"));
    }
}

#[test]
fn token_directory_is_0700_and_its_files_0600() {
    let env = TestEnv::new();
    assert!(
        !env.token_dir.exists() || is_softhsm(),
        "the helper must not pre-create it"
    );
    let (ctx, session) = populate();
    let running = modes(&env.token_dir);
    assert!(
        running.iter().any(|l| l.ends_with("-wal")),
        "expected a -wal file while running (WAL mode):\n{}",
        running.join("\n")
    );
    assert_private_modes(&running, "while running");
    drop(session);
    ctx.finalize().unwrap();
    assert_private_modes(&modes(&env.token_dir), "after C_Finalize");
}

#[test]
fn modes_hold_under_a_permissive_umask() {
    let env = TestEnv::new();
    let exe = std::env::current_exe().unwrap();
    // `sh -c 'umask 000; exec "$0" "$@"'` runs the child with the most permissive umask.
    let output = Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(&exe)
        .args([
            "--ignored",
            "--exact",
            CHILD_ENTRY,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ROLE_ENV, "populate")
        .env("KMSHSM_TEST_TOKEN_DIR", &env.token_dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines = child_lines(&stdout);
    let of = |prefix: &str| -> Vec<String> {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix(prefix))
            .map(str::to_owned)
            .collect()
    };
    assert_private_modes(&of("running "), "umask 000, while running");
    assert_private_modes(&of("finalized "), "umask 000, after C_Finalize");
}
