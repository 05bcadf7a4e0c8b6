//! Real clients, part 6: python-pkcs11 (PyPI). tests/clients/python/byok.py runs the
//! "bring your own key" import with python-pkcs11 alone — C_CreateObject of an EXTERNAL
//! AES_256 key with the vendor attributes (integer attribute keys, taught to
//! python-pkcs11's AttributeMapper), import parameters by C_GenerateKeyPair with the
//! vendor private template, material wrapped by the `cryptography` package
//! (RSAES-OAEP-SHA-256), C_UnwrapKey with the import token — then encrypts and decrypts
//! with AES-CBC-PAD and AES-GCM, compared with `cryptography` given the material.
//! The test then checks the key through cryptoki.
//!
//! Needs `python3` with `pkcs11` (pip: python-pkcs11) and `cryptography`; install with
//! scripts/install-test-deps.sh. Run with `cargo nextest run --test clients_python`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;
#[path = "clients/support.rs"]
mod support;

use std::path::Path;

use common::kms::*;
use common::*;
use support::*;

#[test]
fn python_pkcs11_imports_byok_material_and_encrypts_with_it() {
    let env = released_token();
    let python = Program::new("python3", "python3");
    let probe = python.args(["-c", "import pkcs11, cryptography"]).run();
    assert!(
        probe.success(),
        "this test needs the Python packages python-pkcs11 and cryptography; install them \
         with `python3 -m pip install python-pkcs11 cryptography` (or run \
         scripts/install-test-deps.sh):\n{}",
        probe.text()
    );

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/python/byok.py");
    let out = Program::new("python3", "python3")
        .arg(&script)
        .arg(module_path())
        .args([TOKEN_LABEL, USER_PIN])
        .ok(&env);
    let key = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("ok "))
        .unwrap_or_else(|| panic!("byok.py did not finish:\n{}", out.text()))
        .to_owned();
    assert!(is_key_id(&key), "{key}");

    let ctx = env.load();
    let session = user_session(&ctx, slot_of_token(&ctx, TOKEN_LABEL));
    let found = find_by_label(&session, "python-byok");
    assert_eq!(found.len(), 1);
    let handle = found[0];
    assert_eq!(key_id(&session, handle), key);
    assert_eq!(origin(&session, handle), ORIGIN_EXTERNAL);
    assert_eq!(state(&session, handle), STATE_ENABLED);
    drop(session);
    ctx.finalize().unwrap();
}
