//! Installation: `make install-debug PREFIX=<tmp>` (the same copy step as
//! `make install`, on the debug build the tests already made, so no release build is
//! needed) puts the library, the CLI, the header and the p11-kit module file under the
//! prefix; the installed module file names the installed library, which pkcs11-tool
//! loads and the installed CLI drives.
//!
//! Needs `make` (make) and `pkcs11-tool` (opensc). Run with
//! `cargo nextest run --test clients_install`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;
#[path = "clients/support.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::*;
use support::*;

#[test]
fn make_install_puts_the_library_cli_header_and_p11_kit_module_file_under_the_prefix() {
    let env = released_token();
    let prefix = path_in(&env, "prefix");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The library the tests load lives in the target directory of this test binary.
    let target = module_path()
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf();
    Program::new("make", "make")
        .timeout(Duration::from_secs(600))
        .current_dir(root)
        .arg("install-debug")
        .arg(format!("PREFIX={}", prefix.display()))
        .arg(format!("CARGO_TARGET_DIR={}", target.display()))
        .ok(&env);

    let lib = prefix.join("lib/libkmshsm.so");
    let cli = prefix.join("bin/kmshsm");
    let header = prefix.join("include/kmshsm.h");
    let module_file = prefix.join("share/p11-kit/modules/kmshsm.module");
    for (path, mode) in [
        (&lib, 0o755),
        (&cli, 0o755),
        (&header, 0o644),
        (&module_file, 0o644),
    ] {
        let meta = std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("make install did not install {}: {e}", path.display()));
        assert_eq!(
            meta.permissions().mode() & 0o777,
            mode,
            "{}",
            path.display()
        );
    }
    assert_eq!(
        std::fs::read(&header).unwrap(),
        std::fs::read(root.join("include/kmshsm.h")).unwrap()
    );
    let text = std::fs::read_to_string(&module_file).unwrap();
    assert!(
        text.lines()
            .any(|l| l == format!("module: {}", lib.display())),
        "the installed module file does not name the installed library:\n{text}"
    );

    // The installed files work: pkcs11-tool loads the installed library, the installed
    // CLI opens the token.
    let out = Program::new("pkcs11-tool", "opensc")
        .arg("--module")
        .arg(&lib)
        .arg("--list-token-slots")
        .ok(&env);
    assert!(out.stdout.contains(TOKEN_LABEL), "{}", out.text());
    let out = Program::at(&cli)
        .env("KMSHSM_PIN", USER_PIN)
        .arg("list-keys")
        .ok(&env);
    assert!(out.stdout.contains("TotalCount"), "{}", out.text());
}
