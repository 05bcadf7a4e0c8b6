//! Real clients, part 3: p11-kit and GnuTLS's p11tool.
//!
//! - p11-kit finds kmshsm through the shipped module file (packaging/kmshsm.module, its
//!   `@LIBDIR@` filled in as `make install` does) placed in the user configuration
//!   directory `~/.config/pkcs11/modules/` of a temporary HOME, and lists the token;
//!   `p11tool --list-tokens`, which loads modules through p11-kit, lists it too.
//!   p11-kit ignores user configuration when running as root, so as root the two run as
//!   `nobody` (setpriv), the test's directory handed over to that user.
//! - `p11tool --provider libkmshsm.so --login --list-all pkcs11:token=...` (PIN from
//!   GNUTLS_PIN) lists the token's keys with their labels, IDs and types.
//!
//! Needs `p11-kit` (p11-kit), `p11tool` (gnutls-bin), `pkcs11-tool` (opensc) and, as
//! root, `setpriv` (util-linux). Run with `cargo nextest run --test clients_p11tool`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;
#[path = "clients/support.rs"]
mod support;

use std::path::Path;

use common::*;
use support::*;

/// The shipped module file with the library directory of the module under test.
fn module_file_text() -> String {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/kmshsm.module");
    let text = std::fs::read_to_string(&shipped)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", shipped.display()));
    assert!(
        text.contains("@LIBDIR@"),
        "{} has no @LIBDIR@",
        shipped.display()
    );
    let dir = module_path().parent().unwrap().to_path_buf();
    text.replace("@LIBDIR@", dir.to_str().unwrap())
}

/// A HOME whose ~/.config/pkcs11/modules/ holds kmshsm.module.
fn home_with_module_file(env: &TestEnv) -> std::path::PathBuf {
    let home = path_in(env, "home");
    let modules = home.join(".config/pkcs11/modules");
    std::fs::create_dir_all(&modules).unwrap();
    std::fs::write(modules.join("kmshsm.module"), module_file_text()).unwrap();
    home
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc_geteuid() == 0 }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// `tool` with HOME set, run as an ordinary user: as root, through `setpriv` as nobody,
/// after handing the test directory (configuration, tokens, log, HOME) to nobody.
fn as_user(env: &TestEnv, home: &Path, tool: &str, package: &str) -> Program {
    let path = require_tool(tool, package);
    if !is_root() {
        return Program::at(&path).env("HOME", home);
    }
    Program::new("chown", "coreutils")
        .args(["-R", "65534:65534"])
        .arg(env.dir.path())
        .ok(env);
    let module = module_path();
    let readable = Program::new("setpriv", "util-linux")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "test",
            "-r",
        ])
        .arg(&module)
        .run();
    assert!(
        readable.success(),
        "user nobody cannot read {}; p11-kit ignores ~/.config/pkcs11 for root, so this \
         test runs it as nobody",
        module.display()
    );
    Program::new("setpriv", "util-linux")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "env"])
        .arg(format!("HOME={}", home.display()))
        .arg(path)
}

#[test]
fn p11_kit_finds_kmshsm_through_the_shipped_module_file_and_lists_its_token() {
    let env = released_token();
    let home = home_with_module_file(&env);
    let out = as_user(&env, &home, "p11-kit", "p11-kit")
        .arg("list-modules")
        .ok(&env);
    let text = out.stdout;
    let module_line = format!("kmshsm: {}", module_path().display());
    let at = text
        .find(&module_line)
        .unwrap_or_else(|| panic!("p11-kit list-modules does not show {module_line:?}:\n{text}"));
    let ours = &text[at..];
    assert!(
        ours.contains("library-description: kmshsm"),
        "p11-kit did not load the module:\n{ours}"
    );
    assert!(
        ours.contains(&format!("token: {TOKEN_LABEL}")),
        "p11-kit does not list the token:\n{ours}"
    );
}

#[test]
fn p11tool_lists_the_token_through_p11_kit_and_its_objects_through_the_module() {
    let env = released_token();
    pkcs11_tool()
        .args(["--keypairgen", "--key-type", "EC:prime256v1"])
        .args(["--id", "31", "--label", "p11tool-ec"])
        .ok(&env);
    pkcs11_tool()
        .args(["--keypairgen", "--key-type", "rsa:2048"])
        .args(["--id", "32", "--label", "p11tool-rsa"])
        .ok(&env);

    // With the module and its objects listed directly (GnuTLS loads the module itself).
    let uri = format!("pkcs11:token={TOKEN_LABEL}");
    let out = Program::new("p11tool", "gnutls-bin")
        .arg("--provider")
        .arg(module_path())
        .args(["--login", "--list-all", &uri])
        .env("GNUTLS_PIN", USER_PIN)
        .ok(&env);
    let text = out.stdout;
    for (label, id, kind) in [
        ("p11tool-ec", "31", "EC/ECDSA-SECP256R1"),
        ("p11tool-rsa", "32", "RSA-2048"),
    ] {
        for class in ["private", "public"] {
            let url = format!(";id=%{id};object={label};type={class}");
            assert!(text.contains(&url), "p11tool does not list {url}:\n{text}");
        }
        assert!(
            text.contains(&format!("Private key ({kind})")),
            "p11tool does not see a {kind} private key:\n{text}"
        );
    }
    assert!(text.contains("CKA_SENSITIVE"), "{text}");

    // Through p11-kit's configuration: the shipped module file in the user's directory.
    let home = home_with_module_file(&env);
    let out = as_user(&env, &home, "p11tool", "gnutls-bin")
        .arg("--list-tokens")
        .ok(&env);
    assert!(
        out.stdout.contains(&format!("Label: {TOKEN_LABEL}"))
            && out.stdout.contains("Model: kmshsm"),
        "p11tool --list-tokens does not show the kmshsm token:\n{}",
        out.text()
    );
}
