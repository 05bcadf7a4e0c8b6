//! The BYOK import with unmodified tools (docs/key-model.md, "The import with unmodified
//! tools"): `kmshsm create-key --origin EXTERNAL` and `get-parameters-for-import` make
//! the key and its wrapping pair, `openssl` wraps the material, and pkcs11-tool imports
//! it into the existing key with `--unwrap`, selecting the wrapping key by the printed
//! `WrappingKeyId` and sending standard attributes only; the key then decrypts what
//! `openssl enc` encrypted with the material. A key made with `--alias` is found by the
//! RFC 7512 URI `pkcs11:object=<alias>` (p11tool). The same import with python-pkcs11's
//! default `unwrap_key` template (tests/clients/python/byok_standard.py), into an AES_256
//! key (RSAES_OAEP_SHA_256) and into an EC_P256 key (RSA_AES_KEY_WRAP_SHA_256, the
//! blob OAEP(temporary AES key) || AES-KWP(PKCS#8) made with openssl) that then signs.
//!
//! pkcs11-tool must send OAEP parameters with `--unwrap`, which Debian's 0.23 does not
//! (it sends none, and the import is refused): the test uses the OpenSC that
//! scripts/conformance.sh builds under target/conformance/OpenSC-*/ (or the program
//! named by `KMSHSM_TEST_PKCS11_TOOL`) and fails, saying what to build, without one.
//! Needs `openssl`, `p11tool` (gnutls-bin), `python3` with python-pkcs11
//! (scripts/install-test-deps.sh). Run with
//! `cargo nextest run --test kms_byok_tools`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;
#[path = "clients/support.rs"]
mod support;

use std::path::{Path, PathBuf};

use common::kms::*;
use common::*;
use support::*;

/// A pkcs11-tool that sends OAEP parameters with `--unwrap` (OpenSC 0.24 or later).
fn current_pkcs11_tool() -> PathBuf {
    if let Some(path) = std::env::var_os("KMSHSM_TEST_PKCS11_TOOL") {
        return PathBuf::from(path);
    }
    let conformance = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/conformance");
    let built = std::fs::read_dir(&conformance).ok().and_then(|dirs| {
        dirs.filter_map(|d| d.ok().map(|d| d.path()))
            .filter(|d| {
                d.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("OpenSC-"))
            })
            .map(|d| d.join("src/src/tools/pkcs11-tool"))
            .find(|tool| tool.is_file())
    });
    built.unwrap_or_else(|| {
        panic!(
            "this test needs a pkcs11-tool that sends OAEP parameters with --unwrap (OpenSC \
             0.24 or later; Debian 12's 0.23 sends none). Build OpenSC from \
             ../shared/third-party/ with `bash scripts/conformance.sh` (it builds under \
             {}/OpenSC-*/), or name one with KMSHSM_TEST_PKCS11_TOOL=/path/to/pkcs11-tool",
            conformance.display()
        )
    })
}

/// That pkcs11-tool on the module under test, logged in as the user.
fn tool() -> Program {
    Program::at(&current_pkcs11_tool())
        .arg("--module")
        .arg(module_path())
        .args(["--token-label", TOKEN_LABEL, "--login", "--pin", USER_PIN])
}

/// `kmshsm create-key --origin EXTERNAL` of `spec` named `alias`: its KeyId.
fn external_key(env: &TestEnv, spec: &str, usage: &str, alias: &str) -> String {
    let created = cli_json(
        env,
        &[
            "create-key",
            "--origin",
            "EXTERNAL",
            "--key-spec",
            spec,
            "--key-usage",
            usage,
            "--alias",
            alias,
        ],
    );
    field(&created, &["KeyMetadata", "KeyId"])
}

/// `kmshsm get-parameters-for-import`: its JSON answer.
fn parameters(env: &TestEnv, key: &str, alg: &str) -> serde_json::Value {
    cli_json(
        env,
        &[
            "get-parameters-for-import",
            "--key-id",
            key,
            "--wrapping-algorithm",
            alg,
            "--wrapping-key-spec",
            "RSA_2048",
        ],
    )
}

/// Checks the names the CLI printed for a wrapping pair of `key`; returns the id (hex).
fn wrapping_names(params: &serde_json::Value, key: &str) -> String {
    let label = field(params, &["WrappingKeyLabel"]);
    assert_eq!(label, format!("import:{key}"));
    let id = field(params, &["WrappingKeyId"]);
    let uuid: String = key.chars().filter(|c| *c != '-').collect();
    assert_eq!(id.len(), 48, "{id}");
    assert!(id.starts_with(&uuid), "{id} does not start with {uuid}");
    let pct: String = id
        .as_bytes()
        .chunks(2)
        .map(|c| format!("%{}", std::str::from_utf8(c).unwrap()))
        .collect();
    assert_eq!(
        field(params, &["WrappingKeyUri"]),
        format!("pkcs11:object={label};id={pct};type=private")
    );
    id
}

fn key_state(env: &TestEnv, key: &str) -> String {
    field(
        &cli_json(env, &["describe-key", "--key-id", key]),
        &["KeyMetadata", "KeyState"],
    )
}

#[test]
fn pkcs11_tool_imports_oaep_wrapped_material_into_an_existing_kms_key() {
    let env = released_token();
    let work = Work::new(&env);
    let key = external_key(&env, "AES_256", "ENCRYPT/DECRYPT", "byok-aes");
    assert_eq!(key_state(&env, &key), "PendingImport");

    // Two parameter sets for one key: the printed id selects exactly the first pair.
    let first = parameters(&env, &key, "RSAES_OAEP_SHA_256");
    let second = parameters(&env, &key, "RSAES_OAEP_SHA_256");
    let id = wrapping_names(&first, &key);
    assert_ne!(id, wrapping_names(&second, &key), "two pairs share an id");

    let material = work.material(Spec::Aes256);
    let spki = unb64(&field(&first, &["PublicKey"]));
    // openssl pkeyutl -encrypt, OAEP with SHA-256 and MGF1-SHA-256.
    let wrapped = work.file(
        "wrapped.bin",
        &work.rsa_encrypt(&spki, Some("sha256"), &material.bytes),
    );

    // Standard attributes only: pkcs11-tool knows nothing of the vendor attributes.
    let out = tool()
        .args(["--unwrap", "--mechanism", "RSA-PKCS-OAEP"])
        .args(["--hash-algorithm", "SHA256", "--mgf", "MGF1-SHA256"])
        .args(["--id", &id, "--input-file", &wrapped])
        .args(["--key-type", "AES:32", "--application-label", "ignored"])
        .ok(&env);
    assert!(out.stdout.contains("byok-aes"), "{}", out.text());
    assert_eq!(key_state(&env, &key), "Enabled");

    // The key, still named by its alias, decrypts what openssl encrypted with the
    // material.
    let plain = b"bring your own key, with the tools you already have\n".to_vec();
    let iv = work.random(16);
    let cipher = work.enc("aes-256-cbc", &material.bytes, Some(&iv), true, &plain);
    let input = work.file("cipher.bin", &cipher);
    let output = work.path("plain.bin");
    tool()
        .args([
            "--decrypt",
            "--mechanism",
            "AES-CBC-PAD",
            "--iv",
            &to_hex(&iv),
        ])
        .args(["--label", "byok-aes", "--input-file", &input])
        .args(["--output-file", &output])
        .ok(&env);
    assert_eq!(work.read(&output), plain);

    // Importing again through the second pair, after the first, is the same material:
    // accepted. Other material is refused.
    let spki = unb64(&field(&second, &["PublicKey"]));
    let other = work.file(
        "other.bin",
        &work.rsa_encrypt(&spki, Some("sha256"), &work.random(32)),
    );
    let refused = tool()
        .args(["--unwrap", "--mechanism", "RSA-PKCS-OAEP"])
        .args(["--hash-algorithm", "SHA256", "--mgf", "MGF1-SHA256"])
        .args(["--id", &wrapping_names(&second, &key)])
        .args(["--input-file", &other, "--key-type", "AES:32"])
        .run();
    assert!(!refused.success(), "other material was imported");
    assert!(
        refused.stderr.contains("0x") || refused.stderr.contains("CKR_"),
        "{}",
        refused.text()
    );
}

#[test]
fn an_alias_is_an_rfc_7512_object_name() {
    let env = released_token();
    let key = external_key(&env, "AES_256", "ENCRYPT/DECRYPT", "uri-alias");
    let out = Program::new("p11tool", "gnutls-bin")
        .arg("--provider")
        .arg(module_path())
        .args(["--login", "--list-all", "pkcs11:object=uri-alias"])
        .env("GNUTLS_PIN", USER_PIN)
        .ok(&env);
    assert!(
        out.stdout.contains("object=uri-alias;type=secret-key"),
        "p11tool does not find the key by its alias:\n{}",
        out.text()
    );
    assert_eq!(out.stdout.matches("URL:").count(), 1, "{}", out.text());
    drop(key);
}

/// Runs tests/clients/python/byok_standard.py with `args` after the module, token and
/// PIN; the value of its output line starting with `what`.
fn python_standard(env: &TestEnv, args: &[&str], what: &str) -> (String, String) {
    let probe = Program::new("python3", "python3")
        .args(["-c", "import pkcs11"])
        .run();
    assert!(
        probe.success(),
        "this test needs python-pkcs11: `python3 -m pip install python-pkcs11` (or run \
         scripts/install-test-deps.sh):\n{}",
        probe.text()
    );
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/python/byok_standard.py");
    let out = Program::new("python3", "python3")
        .arg(&script)
        .arg(module_path())
        .args([TOKEN_LABEL, USER_PIN])
        .args(args)
        .ok(env);
    let line = |prefix: &str| {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("byok_standard.py printed no {prefix:?}:\n{}", out.text()))
            .to_owned()
    };
    (line("label "), line(&format!("{what} ")))
}

#[test]
fn python_pkcs11_imports_with_its_default_template_into_an_existing_key() {
    let env = released_token();
    let work = Work::new(&env);
    let key = external_key(&env, "AES_256", "ENCRYPT/DECRYPT", "py-aes");
    let params = parameters(&env, &key, "RSAES_OAEP_SHA_256");
    let id = wrapping_names(&params, &key);
    let material = work.material(Spec::Aes256);
    let spki = unb64(&field(&params, &["PublicKey"]));
    let wrapped = work.file(
        "wrapped.bin",
        &work.rsa_encrypt(&spki, Some("sha256"), &material.bytes),
    );
    let plain = b"python-pkcs11, no vendor attribute".to_vec();
    let iv = work.random(16);
    let cipher = work.file(
        "cipher.bin",
        &work.enc("aes-256-cbc", &material.bytes, Some(&iv), true, &plain),
    );
    let (label, decrypted) = python_standard(
        &env,
        &[&id, &wrapped, "aes", &to_hex(&iv), &cipher],
        "plain",
    );
    assert_eq!(label, "py-aes", "the import answered another key");
    assert_eq!(decrypted, to_hex(&plain));
    assert_eq!(key_state(&env, &key), "Enabled");
}

#[test]
fn python_pkcs11_imports_an_ec_key_wrapped_with_rsa_aes_key_wrap() {
    let env = released_token();
    let work = Work::new(&env);
    let key = external_key(&env, "EC_P256", "SIGN/VERIFY", "py-ec");
    let params = parameters(&env, &key, "RSA_AES_KEY_WRAP_SHA_256");
    let id = wrapping_names(&params, &key);
    let material = work.material(Spec::EcP256);
    let spki = unb64(&field(&params, &["PublicKey"]));
    // OAEP-SHA-256(temporary AES-256 key) || AES-KWP(PKCS#8), with openssl.
    let wrapped = work.file(
        "wrapped.bin",
        &work.wrap(WRAP_RSA_AES_KEY_WRAP_SHA_256, &spki, &material.bytes),
    );
    let message = b"signed by material imported with python-pkcs11".to_vec();
    let message_file = work.file("message.bin", &message);
    let (label, signature) =
        python_standard(&env, &[&id, &wrapped, "ec", &message_file], "signature");
    assert_eq!(label, "py-ec");
    assert_eq!(key_state(&env, &key), "Enabled");
    let signature = hex(&signature);
    let (verified, text) = work.verify(
        material.public_pem.as_deref().unwrap(),
        "sha256",
        &message,
        &rs_to_der(&signature),
    );
    assert!(
        verified,
        "openssl does not verify the signature with the material's public key: {text}"
    );
}
