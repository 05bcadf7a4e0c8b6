//! An attacker's review (branch attack17c) of 58e0a49: secrets hygiene. Key material,
//! PINs and token secrets must never be logged or printed, and the module's copies of
//! key material must be wiped when dropped (docs/reliability.md: "No key material, PIN
//! or token secret in the database in plaintext or in the logs at any level; secrets
//! zeroized after use"; docs/configuration.md: the `store_url` password "is never
//! logged"). Each test reproduces one defect found by reading the code, asserts what the
//! documents promise, and fails against the module as it was reviewed. Its doc comment
//! says what is wrong.
//!
//! The memory tests scan this process through /proc/self/mem as `tests/memory_secrets.rs`
//! does: the secrets are kept masked, unmasked only into template buffers that are
//! zeroized right after the call, so a match is a copy left by the module. Linux only.
//! Run with `cargo nextest run --test attack_review17c` (after `cargo build --lib --bins`).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::kms::*;
use common::memory::{self, describe, fragments, unmasked, Setup};
use common::raw::RawAttr;
use common::*;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;
use cryptoki_sys::*;
use std::process::Command;
use zeroize::Zeroize;

// ---------------------------------------------------------------------------------------
// Memory scanning (common::memory)

/// XOR mask between the stored constants and the secret values.
const MASK: u8 = 0xa7;

/// An AES-256 key value, masked with [`MASK`] (random bytes).
const MASKED_AES_KEY: [u8; 32] = [
    0x3c, 0x81, 0xd9, 0x12, 0x6e, 0xf4, 0x25, 0xb0, 0x97, 0x4a, 0xe3, 0x58, 0x0b, 0xcf, 0x76, 0x1d,
    0xa2, 0x39, 0x64, 0xfe, 0x8b, 0x07, 0xd5, 0x4c, 0x91, 0x2e, 0xb8, 0x63, 0xea, 0x15, 0x5f, 0xc6,
];

/// A hex test constant, masked, with no clear copy left behind.
fn masked_hex(text: &str) -> Vec<u8> {
    let mut plain = hex(text);
    let out = memory::masked(&plain, MASK);
    plain.zeroize();
    out
}

/// The secret components of the test RSA-2048 key (tests/common/material.rs), masked.
fn rsa_secrets() -> Vec<(&'static str, CK_ATTRIBUTE_TYPE, Vec<u8>)> {
    vec![
        (
            "d",
            CKA_PRIVATE_EXPONENT,
            masked_hex(material::RSA_PRIVATE_EXPONENT),
        ),
        ("p", CKA_PRIME_1, masked_hex(material::RSA_PRIME1)),
        ("q", CKA_PRIME_2, masked_hex(material::RSA_PRIME2)),
        ("dp", CKA_EXPONENT_1, masked_hex(material::RSA_EXPONENT1)),
        ("dq", CKA_EXPONENT_2, masked_hex(material::RSA_EXPONENT2)),
        (
            "qinv",
            CKA_COEFFICIENT,
            masked_hex(material::RSA_COEFFICIENT),
        ),
    ]
}

/// What of `secrets` the scan finds, one paragraph per component found.
fn scan_report(secrets: &[(&str, CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> String {
    let mut report = String::new();
    for (name, _, m) in secrets {
        let found = fragments(m, MASK);
        if !found.is_empty() {
            report += &format!(
                "{name}: {} 16-byte runs, starting at\n{}\n",
                found.len(),
                describe(&found, 20)
            );
        }
    }
    report
}

/// Defect: a private key stored on the token leaves its secret components in freed heap
/// memory of the host process. Writing a token object's record (`Object::encode_record`,
/// src/object/mod.rs) takes care to wipe what it encodes (the secrets go in as `Value`s,
/// which wipe on drop, and the encoding is `Zeroizing`), but `attr::encode`
/// (src/object/attr.rs) copies every byte value twice on the way: `encode_one` clones
/// each value into a plain `Vec` (`payload`) that is freed unwiped, and the output
/// `Vec` grows by reallocation as entries are appended, each outgrown buffer, holding the
/// secrets encoded so far, freed unwiped. For an RSA key (six secret attributes, the
/// private exponent first) copies of `d` stay behind. The same key as a session object,
/// which is not encoded, leaves nothing (checked by this review), and a local build of
/// `attr::encode` with the payload wiped and the output reserved up front passes this
/// test.
/// Every token private or secret key made by a logged-in session goes through this
/// (C_CreateObject, C_GenerateKey(Pair), C_UnwrapKey, C_DeriveKey, C_CopyObject, a
/// C_SetAttributeValue rewrite, the BYOK import); 32-byte keys happen to have their
/// freed copies reused quickly, which is why tests/memory_secrets.rs (AES-256, P-256)
/// does not see it.
///
/// Expected (docs/reliability.md: "secrets zeroized after use ... heap buffers holding
/// secrets are `zeroize::Zeroizing`"; DESIGN.md §3, tests/memory_secrets.rs: a key
/// created, used and destroyed in a token that was then finalized "leaves no copy of its
/// value in any writable mapping of the host process"): after C_Finalize no run of 16
/// bytes of any component is left. Actual: copies of the private exponent `d` and of
/// `qinv` remain in the heap, where a core dump or a later allocation shows them.
#[test]
fn a_token_rsa_private_key_leaves_its_components_in_freed_heap() {
    let setup = Setup::new(MASK);
    let secrets = rsa_secrets();
    let template = vec![
        RawAttr::ulong(CKA_CLASS, CKO_PRIVATE_KEY),
        RawAttr::ulong(CKA_KEY_TYPE, CKK_RSA),
        RawAttr::bool(CKA_TOKEN, true),
        RawAttr::bool(CKA_SIGN, true),
        RawAttr::new(CKA_LABEL, b"memory canary rsa"),
        RawAttr::new(CKA_MODULUS, &hex(material::RSA_MODULUS)),
        RawAttr::new(CKA_PUBLIC_EXPONENT, &hex(material::RSA_PUBLIC_EXPONENT)),
    ];
    let values: Vec<(CK_ATTRIBUTE_TYPE, &[u8])> =
        secrets.iter().map(|(_, ty, m)| (*ty, &m[..])).collect();
    setup.create(template, &values);
    let key = setup
        .session
        .find_objects(&[Attribute::Label(b"memory canary rsa".to_vec())])
        .expect("C_FindObjects")[0];
    setup
        .session
        .sign(&Mechanism::Sha256RsaPkcs, key, b"a use of the key")
        .expect("C_Sign");
    // The key is in use: the scan must see the module's copy, or it is blind.
    assert!(
        !scan_report(&secrets).is_empty(),
        "the scan does not see the live key: the test is blind"
    );
    setup.session.destroy_object(key).expect("C_DestroyObject");
    let raw = setup.finalize();
    let report = scan_report(&secrets);
    assert!(
        report.is_empty(),
        "components of the destroyed RSA key remain in writable memory after C_Finalize:\n\
         {report}"
    );
    drop(raw);
}

// ---------------------------------------------------------------------------------------
// The store_url password in configuration errors

/// The password of the `store_url` the configurations below name.
const DB_PASSWORD: &str = "Wq9-hunter2-Zr4";

/// Defect: the PostgreSQL password in `store_url` is printed, and logged, whenever the
/// configuration file does not parse on its line. `Config::parse` (src/config.rs) turns a
/// `toml` error into `Error::Config(e.to_string())`, and the `toml` crate's error text
/// quotes the whole offending line of the file ("TOML parse error at line 2, column ..
/// / 2 | store_url = \"postgresql://kmshsm:<password>@...\""). `C_Initialize` logs that
/// text at error level (`provider.rs`: "C_Initialize: {e}", to standard error, since the
/// log file is named by the configuration that failed), and `kmshsm` prints it again as
/// the JSON error's `Message`. The mistakes that do it are ordinary ones on that line: a
/// key misspelt (`store_uri`), a quote left open, a backslash in the password of a basic
/// string.
///
/// Expected (docs/configuration.md: "The password may be in the URL ... it is never
/// logged: every message names the server with the password replaced by `***`"; the
/// module redacts it everywhere else, `StoreUrl::redacted`): no message shows the
/// password. Actual: standard error of the command (the module's log line and the JSON
/// `Message`) holds it in full; a host application's stderr, often a system journal,
/// keeps it.
#[test]
fn a_configuration_that_does_not_parse_prints_the_store_url_password() {
    let env = TestEnv::new();
    let token_dir = env.token_dir.to_str().unwrap().to_owned();
    let url = |password: &str| format!("postgresql://kmshsm:{password}@db.example.net:5432/tokens");
    let broken = [
        (
            "a misspelt key",
            format!("store_uri = \"{}\"", url(DB_PASSWORD)),
        ),
        (
            "an unclosed quote",
            format!("store_url = \"{}", url(DB_PASSWORD)),
        ),
        (
            "a backslash in the password",
            format!("store_url = \"{}\"", url(&format!("{DB_PASSWORD}\\!"))),
        ),
    ];
    let mut leaks = Vec::new();
    for (what, line) in &broken {
        let conf = env.dir.path().join("broken.toml");
        std::fs::write(&conf, format!("token_dir = {token_dir:?}\n{line}\n")).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_kmshsm"))
            .args(["--config", conf.to_str().unwrap(), "list-keys"])
            .env("KMSHSM_PIN", USER_PIN)
            .output()
            .expect("run kmshsm");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            !out.status.success() && stderr.contains("InvalidConfiguration"),
            "{what}: the configuration should be refused; stdout:\n{stdout}\nstderr:\n{stderr}"
        );
        if stderr.contains(DB_PASSWORD) || stdout.contains(DB_PASSWORD) {
            leaks.push(format!("{what}:\n{stderr}"));
        }
    }
    assert!(
        leaks.is_empty(),
        "the store_url password is printed for {} of {} broken configurations:\n{}",
        leaks.len(),
        broken.len(),
        leaks.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// BYOK import

/// Defect: ImportKeyMaterial of symmetric material (AES_256, SM4) leaves the material in
/// freed heap memory. The unwrapped material itself is `Zeroizing`, but
/// `imported_values` (src/token/kms/mod.rs) keeps a second copy for the fingerprint,
/// `Imported::canonical`, as a plain `Vec<u8>` (`material.to_vec()`); it is freed with
/// the `Imported` when the import ends, unwiped. (`canonical_of`, the same file, makes
/// the same plain copy of a stored key's `CKA_VALUE` when a KMS key made with material,
/// or a decision that must bind it, computes its fingerprint.) A local build whose
/// canonical copy held no key bytes passes this test, so the copy is that one.
///
/// Expected (docs/reliability.md: "secrets zeroized after use ... heap buffers holding
/// secrets are `zeroize::Zeroizing`"; the criterion of tests/memory_secrets.rs: no run of
/// 16 bytes of the key, half an AES-256 key, in writable memory after C_Finalize):
/// imported material is wiped like any key. Actual: 16 bytes of the 32-byte material
/// (the half the allocator's free-list header does not overwrite) stay in the heap after
/// the import, the key's use and C_Finalize.
#[test]
fn a_byok_import_leaves_the_material_in_freed_heap() {
    let setup = Setup::new(MASK);
    let work = Work::new(&setup.env);
    let key = create_external(&setup.session, Spec::Aes256, "byok canary");
    let params = get_params(
        &setup.session,
        &key_id(&setup.session, key),
        WRAP_RSAES_OAEP_SHA_256,
    );
    // The material in the clear only in this buffer, written to openssl's input file.
    let mut material = unmasked(&MASKED_AES_KEY, MASK);
    let wrapped = work.rsa_encrypt(&params.spki, Some("sha256"), &material);
    material.zeroize();
    let imported = import(&setup.session, &params, &wrapped, None).expect("ImportKeyMaterial");
    let mut iv = [7u8; 12];
    let gcm = cryptoki::mechanism::aead::GcmParams::new(&mut iv, b"", 128.into()).unwrap();
    setup
        .session
        .encrypt(&Mechanism::AesGcm(gcm), imported, &[1u8; 64])
        .expect("C_Encrypt with the imported key");
    assert!(
        !fragments(&MASKED_AES_KEY, MASK).is_empty(),
        "the scan does not see the live key: the test is blind"
    );
    let raw = setup.finalize();
    let found = fragments(&MASKED_AES_KEY, MASK);
    assert!(
        found.is_empty(),
        "{} 16-byte run(s) of the imported material remain in writable memory after \
         C_Finalize, starting at\n{}",
        found.len(),
        describe(&found, 20)
    );
    drop(raw);
}
