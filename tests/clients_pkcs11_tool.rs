//! Real clients, part 1: OpenSC's pkcs11-tool and the `kmshsm` command line, each with
//! `openssl` as the user's side and nothing else doing the flow.
//!
//! - The plain import flow: an unwrap-capable RSA key pair made in the token by
//!   `pkcs11-tool --keypairgen`, its public key read out by `pkcs11-tool --read-object`,
//!   32 bytes of material wrapped by `openssl pkeyutl -encrypt` (PKCS#1 v1.5: pkcs11-tool
//!   0.23 sends no OAEP parameters), `pkcs11-tool --unwrap` into a new key, then
//!   `pkcs11-tool --encrypt/--decrypt` (AES-CBC-PAD) against `openssl enc` with the
//!   material. The new key's origin, state and CKA_LOCAL are then read through cryptoki.
//! - The bound flow with the CLI and openssl only: an EXTERNAL key, import parameters,
//!   material wrapped by `openssl pkeyutl` (RSAES-OAEP-SHA-256 and RSAES-PKCS1-v1_5),
//!   import with an expiry, the material expiring (time moved with
//!   KMSHSM_TEST_CLOCK_OFFSET, a debug-build hook), re-import, DeleteKeyMaterial, other
//!   material refused, the same material re-imported, and data encrypted before the
//!   deletion decrypting again.
//!
//! Needs `pkcs11-tool` (opensc) and `openssl`. Run with
//! `cargo nextest run --test clients_pkcs11_tool`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;
#[path = "clients/support.rs"]
mod support;

use common::kms::*;
use common::*;
use cryptoki_sys::*;
use support::*;

#[test]
fn pkcs11_tool_and_openssl_alone_import_material_into_a_new_external_key_and_use_it() {
    let env = released_token();

    // An unwrap-capable RSA key pair in the token, made by pkcs11-tool.
    pkcs11_tool()
        .args(["--keypairgen", "--key-type", "rsa:2048"])
        .args(["--id", "a1", "--label", "plain-kek"])
        .args(["--usage-wrap", "--usage-decrypt"])
        .ok(&env);
    let kek_der = path_in(&env, "kek.der");
    pkcs11_tool()
        .args(["--read-object", "--type", "pubkey", "--id", "a1", "-o"])
        .arg(&kek_der)
        .ok(&env);

    // The user's side: material wrapped by openssl under the token's public key.
    let material = random_bytes(32);
    let material_file = write_file(&env, "material.bin", &material);
    let wrapped = path_in(&env, "wrapped.bin");
    openssl_cli()
        .args(["pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey"])
        .arg(&kek_der)
        .arg("-in")
        .arg(&material_file)
        .arg("-out")
        .arg(&wrapped)
        .ok(&env);

    // pkcs11-tool --unwrap makes a new AES-256 key from it.
    pkcs11_tool()
        .args(["--unwrap", "-m", "RSA-PKCS", "--id", "a1", "-i"])
        .arg(&wrapped)
        .args(["--key-type", "AES:32"])
        .args(["--application-label", "plain-imported"])
        .args(["--application-id", "b1"])
        .ok(&env);

    // Used: the token encrypts, openssl decrypts with the material, and the reverse.
    let iv = "000102030405060708090a0b0c0d0e0f";
    let key_hex = to_hex(&material);
    let message = b"encrypted by a key that pkcs11-tool unwrapped\n";
    let plain = write_file(&env, "plain.txt", message);
    let by_token = path_in(&env, "by-token.bin");
    pkcs11_tool()
        .args([
            "--encrypt",
            "-m",
            "AES-CBC-PAD",
            "--iv",
            iv,
            "--id",
            "b1",
            "-i",
        ])
        .arg(&plain)
        .arg("-o")
        .arg(&by_token)
        .ok(&env);
    let decrypted = openssl_cli()
        .args([
            "enc",
            "-d",
            "-aes-256-cbc",
            "-K",
            &key_hex,
            "-iv",
            iv,
            "-in",
        ])
        .arg(&by_token)
        .ok(&env);
    assert_eq!(
        decrypted.stdout.as_bytes(),
        message,
        "openssl enc, given the material, does not decrypt what the unwrapped key encrypted"
    );
    let by_openssl = path_in(&env, "by-openssl.bin");
    openssl_cli()
        .args(["enc", "-aes-256-cbc", "-K", &key_hex, "-iv", iv, "-in"])
        .arg(&plain)
        .arg("-out")
        .arg(&by_openssl)
        .ok(&env);
    let back = path_in(&env, "back.txt");
    pkcs11_tool()
        .args([
            "--decrypt",
            "-m",
            "AES-CBC-PAD",
            "--iv",
            iv,
            "--id",
            "b1",
            "-i",
        ])
        .arg(&by_openssl)
        .arg("-o")
        .arg(&back)
        .ok(&env);
    assert_eq!(std::fs::read(&back).unwrap(), message);

    // What the module made of it: an Enabled EXTERNAL AES_256 key, not local.
    let ctx = env.load();
    let session = user_session(&ctx, slot_of_token(&ctx, TOKEN_LABEL));
    let found = find_by_label(&session, "plain-imported");
    assert_eq!(found.len(), 1, "pkcs11-tool --unwrap made no key");
    let key = found[0];
    assert_eq!(
        origin(&session, key),
        ORIGIN_EXTERNAL,
        "an unwrapped key is EXTERNAL"
    );
    assert_eq!(state(&session, key), STATE_ENABLED);
    assert_eq!(
        vendor_value(&session, key, CKA_KMSHSM_KEY_SPEC),
        1,
        "AES_256"
    );
    assert!(is_key_id(&key_id(&session, key)));
    assert_eq!(read_bool(&session, key, CKA_LOCAL), Some(false));
    assert_eq!(read_bool(&session, key, CKA_NEVER_EXTRACTABLE), Some(false));
    // The key pair pkcs11-tool generated is a KMS key.
    let kek = find_by_label(&session, "plain-kek");
    assert_eq!(kek.len(), 2, "the key pair has two halves");
    for half in kek {
        assert_eq!(origin(&session, half), ORIGIN_KMS);
    }
    drop(session);
    ctx.finalize().unwrap();
}

/// `openssl pkeyutl -encrypt` of `material` under the DER SPKI `public` (base64) with
/// the given padding options; the result in base64, as ImportKeyMaterial takes it.
fn openssl_wrap(env: &TestEnv, public: &str, material: &std::path::Path, opts: &[&str]) -> String {
    let spki = write_file(env, "wrapping-public.der", &unb64(public));
    let out = path_in(env, "wrapped.bin");
    let mut program = openssl_cli()
        .args(["pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey"])
        .arg(&spki)
        .arg("-in")
        .arg(material)
        .arg("-out")
        .arg(&out);
    for opt in opts {
        program = program.args(["-pkeyopt", opt]);
    }
    program.ok(env);
    b64(&std::fs::read(&out).unwrap())
}

const OAEP_SHA_256: &[&str] = &[
    "rsa_padding_mode:oaep",
    "rsa_oaep_md:sha256",
    "rsa_mgf1_md:sha256",
];
const PKCS1_V1_5: &[&str] = &["rsa_padding_mode:pkcs1"];

/// GetParametersForImport through the CLI: (public key, import token).
fn cli_params(env: &TestEnv, key: &str, alg: &str, offset: &str) -> (String, String) {
    let out = kmshsm_cli()
        .env(CLOCK_OFFSET_ENV, offset)
        .args(["get-parameters-for-import", "--key-id", key])
        .args([
            "--wrapping-algorithm",
            alg,
            "--wrapping-key-spec",
            "RSA_2048",
        ])
        .ok(env);
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["KeyId"], key);
    (field(&json, &["PublicKey"]), field(&json, &["ImportToken"]))
}

/// A CLI command at a clock moved by `offset` seconds; its JSON, or the error code.
fn cli_at(env: &TestEnv, offset: &str, args: &[&str]) -> Result<serde_json::Value, String> {
    let out = kmshsm_cli().env(CLOCK_OFFSET_ENV, offset).args(args).run();
    if out.success() {
        Ok(serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("kmshsm {args:?} printed no JSON ({e}): {}", out.stdout)))
    } else {
        let json: serde_json::Value = serde_json::from_str(&out.stderr).unwrap_or_else(|e| {
            panic!(
                "kmshsm {args:?} failed without a JSON error ({e}):\n{}\n{}",
                out.text(),
                log_tail(env)
            )
        });
        Err(field(&json, &["Code"]))
    }
}

fn key_state(env: &TestEnv, offset: &str, key: &str) -> String {
    let json = cli_at(env, offset, &["describe-key", "--key-id", key])
        .unwrap_or_else(|code| panic!("describe-key failed: {code}"));
    field(&json, &["KeyMetadata", "KeyState"])
}

#[test]
fn the_kmshsm_cli_and_openssl_alone_run_the_bound_import_flow_with_expiry_deletion_and_reimport() {
    let env = released_token();
    let created = cli_json(
        &env,
        &[
            "create-key",
            "--origin",
            "EXTERNAL",
            "--key-spec",
            "AES_256",
            "--key-usage",
            "ENCRYPT/DECRYPT",
            "--alias",
            "bound-byok",
        ],
    );
    let key = field(&created, &["KeyMetadata", "KeyId"]);
    assert_eq!(
        field(&created, &["KeyMetadata", "KeyState"]),
        "PendingImport"
    );
    assert_eq!(field(&created, &["KeyMetadata", "Origin"]), "EXTERNAL");

    let material = random_bytes(32);
    let material_file = write_file(&env, "material.bin", &material);

    // Import with an expiry ten minutes away.
    let (public, token) = cli_params(&env, &key, "RSAES_OAEP_SHA_256", "0");
    let wrapped = openssl_wrap(&env, &public, &material_file, OAEP_SHA_256);
    let expiry = (now() + 600).to_string();
    cli_at(
        &env,
        "0",
        &[
            "import-key-material",
            "--key-id",
            &key,
            "--encrypted-key-material",
            &wrapped,
            "--import-token",
            &token,
            "--key-material-expire-unix",
            &expiry,
        ],
    )
    .unwrap_or_else(|code| panic!("import-key-material failed: {code}\n{}", log_tail(&env)));
    let described = cli_json(&env, &["describe-key", "--key-id", &key]);
    assert_eq!(field(&described, &["KeyMetadata", "KeyState"]), "Enabled");
    assert!(described["KeyMetadata"]["MaterialExpireTime"].is_string());
    let blob = field(
        &cli_json(
            &env,
            &[
                "encrypt",
                "--key-id",
                &key,
                "--plaintext",
                &b64(b"bound data"),
            ],
        ),
        &["CiphertextBlob"],
    );
    let decrypt = ["decrypt", "--key-id", &key, "--ciphertext-blob", &blob];

    // Twenty minutes later the material has expired: PendingImport, unusable.
    let later = "1200";
    assert_eq!(key_state(&env, later, &key), "PendingImport");
    assert_eq!(
        cli_at(&env, later, &decrypt).unwrap_err(),
        "IncorrectKeyState"
    );

    // Re-import the same material (wrapped again, PKCS#1 v1.5 this time), never expiring.
    let (public, token) = cli_params(&env, &key, "RSAES_PKCS1_V1_5", later);
    let wrapped = openssl_wrap(&env, &public, &material_file, PKCS1_V1_5);
    cli_at(
        &env,
        later,
        &[
            "import-key-material",
            "--key-id",
            &key,
            "--encrypted-key-material",
            &wrapped,
            "--import-token",
            &token,
            "--key-material-expire-unix",
            "0",
        ],
    )
    .unwrap_or_else(|code| panic!("re-import failed: {code}\n{}", log_tail(&env)));
    assert_eq!(key_state(&env, later, &key), "Enabled");
    let plain = cli_at(&env, later, &decrypt).expect("decrypt after re-import");
    assert_eq!(unb64(&field(&plain, &["Plaintext"])), b"bound data");

    // DeleteKeyMaterial: PendingImport again.
    cli_json(&env, &["delete-key-material", "--key-id", &key]);
    assert_eq!(key_state(&env, "0", &key), "PendingImport");
    assert_eq!(cli_error(&decrypt, &[]), "IncorrectKeyState");

    // Other material is refused with the KMS code, and nothing changes.
    let (public, token) = cli_params(&env, &key, "RSAES_OAEP_SHA_256", "0");
    let other_file = write_file(&env, "other.bin", &random_bytes(32));
    let other = openssl_wrap(&env, &public, &other_file, OAEP_SHA_256);
    assert_eq!(
        cli_error(
            &[
                "import-key-material",
                "--key-id",
                &key,
                "--encrypted-key-material",
                &other,
                "--import-token",
                &token,
            ],
            &[],
        ),
        "InvalidKeyMaterial"
    );
    assert_eq!(key_state(&env, "0", &key), "PendingImport");

    // The same material with the same parameters brings the key back; old data decrypts.
    let same = openssl_wrap(&env, &public, &material_file, OAEP_SHA_256);
    cli_json(
        &env,
        &[
            "import-key-material",
            "--key-id",
            &key,
            "--encrypted-key-material",
            &same,
            "--import-token",
            &token,
        ],
    );
    assert_eq!(key_state(&env, "0", &key), "Enabled");
    let plain = cli_json(&env, &decrypt);
    assert_eq!(unb64(&field(&plain, &["Plaintext"])), b"bound data");

    // The blob is version (1) || KeyId (36) || IV (12) || AES-256-GCM ciphertext || tag
    // under the material, the first 37 bytes its AAD (docs/cli.md; openssl enc has no
    // AEAD): a session key made from the plaintext material must decrypt it.
    let ctx = env.load();
    let session = user_session(&ctx, slot_of_token(&ctx, TOKEN_LABEL));
    let plain_key = session
        .create_object(&aes_template("material-check", &material, false))
        .expect("a session key from the material");
    let raw = unb64(&blob);
    let (header, rest) = raw.split_at(37);
    assert_eq!(header[0], 1);
    assert_eq!(&header[1..], key.as_bytes());
    let (iv, body) = rest.split_at(12);
    let mut iv = iv.to_vec();
    let gcm = cryptoki::mechanism::aead::GcmParams::new(&mut iv, header, 128.into()).unwrap();
    let decrypted = session
        .decrypt(
            &cryptoki::mechanism::Mechanism::AesGcm(gcm),
            plain_key,
            body,
        )
        .expect("the material decrypts the CLI's ciphertext");
    assert_eq!(decrypted, b"bound data");
    drop(session);
    ctx.finalize().unwrap();
}
