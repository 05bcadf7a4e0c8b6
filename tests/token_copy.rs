//! Moving a token between stores with `kmshsm copy-token` (issue 15, item 6): SQLite →
//! PostgreSQL → SQLite, records as they are. After each copy the destination is opened by
//! the module with the same PINs, and the copied keys do what they did at the source:
//! a KMS key decrypts the blob made before the copy, an EC key's signature made before
//! verifies and new ones are made, a secret key decrypts what it encrypted, and the PIN
//! failure count came along, and so did the audit trail: `kmshsm audit verify` passes
//! on each copy and its events begin with the source's, the refused PIN attempt made
//! before the copy among them. Refusals (a serial already there, a slot id taken, no
//! token at the source) change nothing.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::process::Command;

use common::*;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use cryptoki::session::{Session, UserType};
use serde_json::Value;

struct Out {
    ok: bool,
    json: Value,
}

fn cli(conf: &std::path::Path, args: &[&str]) -> Out {
    let run = common::audit::kmshsm_with(conf, args);
    let text = if run.ok { &run.stdout } else { &run.stderr };
    let json = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("kmshsm {args:?} printed no JSON ({e}): {text}"));
    Out { ok: run.ok, json }
}

fn ok(conf: &std::path::Path, args: &[&str]) -> Value {
    let out = cli(conf, args);
    assert!(out.ok, "kmshsm {args:?} failed: {}", out.json);
    out.json
}

fn refused(conf: &std::path::Path, args: &[&str], says: &str) {
    let out = cli(conf, args);
    assert!(!out.ok, "kmshsm {args:?} should fail");
    let message = out.json["Message"].as_str().unwrap_or_default();
    assert!(message.contains(says), "{}", out.json);
}

/// The events `kmshsm audit list --json` prints, as (EventId, EventName, Outcome, KeyId).
fn audit_events(conf: &std::path::Path) -> Vec<(u64, String, String, String)> {
    let out = Command::new(env!("CARGO_BIN_EXE_kmshsm"))
        .arg("--config")
        .arg(conf)
        .args(["audit", "list", "--json"])
        .env("KMSHSM_PIN", USER_PIN)
        .output()
        .expect("run kmshsm");
    assert!(
        out.status.success(),
        "audit list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let e: Value = serde_json::from_str(line).unwrap();
            let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (
                e["EventId"].as_u64().unwrap(),
                text("EventName"),
                text("Outcome"),
                text("KeyId"),
            )
        })
        .collect()
}

/// The copy's trail verifies and begins with every event of `source_events`.
fn check_trail(
    conf: &std::path::Path,
    made: &Made,
    source_events: &[(u64, String, String, String)],
) {
    let verified = ok(conf, &["audit", "verify"]);
    assert_eq!(verified["Intact"], true, "{verified}");
    let events = audit_events(conf);
    assert!(
        events.starts_with(source_events),
        "the copy's trail {events:?} does not begin with the source's {source_events:?}"
    );
    assert!(events
        .iter()
        .any(|e| e.1 == "CreateKey" && e.3 == made.key_id));
    assert!(
        events.iter().any(|e| e.1 == "C_Login" && e.2 == "Refused"),
        "the wrong PIN before the copy is in the copy's trail: {events:?}"
    );
}

/// What the source token holds, and what its keys made before the copy.
struct Made {
    serial: String,
    key_id: String,
    blob: String,
    message: Vec<u8>,
    signature: Vec<u8>,
    aes_iv: Vec<u8>,
    aes_ciphertext: Vec<u8>,
}

const PLAINTEXT_B64: &str = "Y29waWVkIHdpdGggaXRzIHRva2Vu"; // "copied with its token"

fn find_one(session: &Session, label: &str, class: ObjectClass) -> cryptoki::object::ObjectHandle {
    let found = session
        .find_objects(&[
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Class(class),
        ])
        .unwrap();
    assert_eq!(
        found.len(),
        1,
        "objects labelled {label:?} of class {class:?}"
    );
    found[0]
}

/// Makes the token of `env` with a KMS key (through the CLI), an EC key pair and an AES
/// key, uses each once, and leaves one wrong user PIN attempt counted.
fn make_source(env: &TestEnv) -> Made {
    let ctx = env.load();
    let slot = init_token(&ctx);
    let serial = ctx
        .get_token_info(slot)
        .unwrap()
        .serial_number()
        .to_string();
    let session = user_session(&ctx, slot);
    let (public, private) = session
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::Label(b"copied-ec".to_vec()),
                Attribute::EcParams(hex("06082a8648ce3d030107")),
                Attribute::Verify(true),
            ],
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Label(b"copied-ec".to_vec()),
                Attribute::Sign(true),
            ],
        )
        .unwrap();
    let message = b"signed before the copy".to_vec();
    let signature = session
        .sign(&Mechanism::EcdsaSha256, private, &message)
        .unwrap();
    session
        .verify(&Mechanism::EcdsaSha256, public, &message, &signature)
        .unwrap();
    let aes = session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Label(b"copied-aes".to_vec()),
                Attribute::ValueLen(32.into()),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
            ],
        )
        .unwrap();
    let aes_iv = vec![7u8; 16];
    let aes_ciphertext = session
        .encrypt(
            &Mechanism::AesCbcPad(aes_iv.clone().try_into().unwrap()),
            aes,
            b"a secret key's ciphertext",
        )
        .unwrap();
    drop(session);
    ctx.finalize().unwrap();

    let created = ok(&env.conf_path, &["create-key", "--key-spec", "AES_256"]);
    let key_id = created["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let encrypted = ok(
        &env.conf_path,
        &["encrypt", "--key-id", &key_id, "--plaintext", PLAINTEXT_B64],
    );
    let blob = encrypted["CiphertextBlob"].as_str().unwrap().to_string();

    // Last, so that no right PIN resets it: one wrong attempt, counted in the store.
    let ctx = env.load();
    let session = ctx.open_ro_session(slot).unwrap();
    assert!(session
        .login(UserType::User, Some(&pin("wrong-pin")))
        .is_err());
    drop(session);
    ctx.finalize().unwrap();
    Made {
        serial,
        key_id,
        blob,
        message,
        signature,
        aes_iv,
        aes_ciphertext,
    }
}

/// Opens the copy of `made` in `env` and checks that everything came along; the wrong
/// PIN attempt is still counted unless a right PIN was given since (`count_low`).
fn check_copy(env: &TestEnv, made: &Made, count_low: bool) {
    let ctx = env.load();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let info = ctx.get_token_info(slot).unwrap();
    assert_eq!(info.serial_number(), made.serial);
    assert_eq!(
        info.user_pin_count_low(),
        count_low,
        "the failed PIN attempt travels with the token"
    );
    let session = user_session(&ctx, slot);
    let public = find_one(&session, "copied-ec", ObjectClass::PUBLIC_KEY);
    let private = find_one(&session, "copied-ec", ObjectClass::PRIVATE_KEY);
    session
        .verify(
            &Mechanism::EcdsaSha256,
            public,
            &made.message,
            &made.signature,
        )
        .expect("the signature made at the source verifies at the copy");
    let fresh = session
        .sign(&Mechanism::EcdsaSha256, private, b"signed after")
        .unwrap();
    session
        .verify(&Mechanism::EcdsaSha256, public, b"signed after", &fresh)
        .unwrap();
    let aes = find_one(&session, "copied-aes", ObjectClass::SECRET_KEY);
    let attrs = session
        .get_attributes(aes, &[AttributeType::KeyType, AttributeType::Sensitive])
        .unwrap();
    assert!(attrs.contains(&Attribute::KeyType(KeyType::AES)));
    assert!(attrs.contains(&Attribute::Sensitive(true)));
    let plain = session
        .decrypt(
            &Mechanism::AesCbcPad(made.aes_iv.clone().try_into().unwrap()),
            aes,
            &made.aes_ciphertext,
        )
        .unwrap();
    assert_eq!(plain, b"a secret key's ciphertext");
    drop(session);
    ctx.finalize().unwrap();

    let decrypted = ok(
        &env.conf_path,
        &[
            "--token-label",
            TOKEN_LABEL,
            "decrypt",
            "--ciphertext-blob",
            &made.blob,
        ],
    );
    assert_eq!(decrypted["KeyId"], made.key_id.as_str());
    assert_eq!(decrypted["Plaintext"], PLAINTEXT_B64);
}

#[test]
fn a_token_moves_from_sqlite_to_postgresql_and_back_with_its_keys_and_pin_count() {
    let pg = TestEnv::postgres();
    let back = TestEnv::new();
    let source = TestEnv::new();
    let made = make_source(&source);

    let url = pg.store_url.clone().unwrap();
    let copied = ok(&source.conf_path, &["copy-token", "--to", &url]);
    assert_eq!(copied["Copied"]["Serial"], made.serial.as_str());
    assert_eq!(copied["Copied"]["Verified"], true);
    assert!(
        copied["Copied"]["Objects"].as_u64().unwrap() >= 4,
        "{copied}"
    );
    assert!(
        copied["Copied"]["AuditEvents"].as_u64().unwrap() >= 4,
        "{copied}"
    );
    pg.activate();
    check_copy(&pg, &made, true);

    // And back into a token directory, named by the destination's configuration file.
    let back_conf = back.conf_path.to_str().unwrap();
    ok(&pg.conf_path, &["copy-token", "--to", back_conf]);
    back.activate();
    check_copy(&back, &made, false);

    // The source is unchanged and still works.
    source.activate();
    check_copy(&source, &made, true);

    // The history came along both ways: each copy verifies, and its trail begins with
    // the source's (nothing happened to the key's lifecycle since).
    let source_events = audit_events(&source.conf_path);
    check_trail(&source.conf_path, &made, &source_events);
    pg.activate();
    check_trail(&pg.conf_path, &made, &source_events);
    back.activate();
    check_trail(&back.conf_path, &made, &source_events);
}

#[test]
fn a_copy_that_would_replace_or_clash_is_refused_and_changes_nothing() {
    let pg = TestEnv::postgres();
    let source = TestEnv::new();
    let made = make_source(&source);
    let url = pg.store_url.clone().unwrap();

    // The database gets a token of its own first; a copy asking for its slot id is
    // refused (the module opens no two tokens with one slot id).
    pg.activate();
    let ctx = pg.load();
    let own = init_token_labelled(&ctx, "its own").id().to_string();
    ctx.finalize().unwrap();
    refused(
        &source.conf_path,
        &["copy-token", "--to", &url, "--slot-id", &own],
        &format!("has slot id {own} already"),
    );
    // With the source's own slot id it goes in; a second copy of the serial is refused.
    ok(&source.conf_path, &["copy-token", "--to", &url]);
    refused(
        &source.conf_path,
        &["copy-token", "--to", &url, "--slot-id", "42"],
        &format!("already holds a token with serial {}", made.serial),
    );
    source.activate();
    let ctx = source.load();
    let source_slot = slot_of_token(&ctx, TOKEN_LABEL).id();
    ctx.finalize().unwrap();
    pg.activate();
    let ctx = pg.load();
    let labels: Vec<String> = ctx
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .map(|s| ctx.get_token_info(s).unwrap().label().to_string())
        .collect();
    assert_eq!(labels.len(), 2, "{labels:?}");
    assert!(labels.contains(&"its own".to_string()));
    let copy = slot_of_token(&ctx, TOKEN_LABEL);
    assert_eq!(copy.id(), source_slot);
    ctx.finalize().unwrap();
    check_copy(&pg, &made, true);

    // No token at the source, or several without --serial: said so.
    let empty = TestEnv::new();
    refused(
        &empty.conf_path,
        &["copy-token", "--to", &url],
        "holds no token",
    );
    refused(
        &source.conf_path,
        &[
            "copy-token",
            "--from",
            &url,
            "--to",
            empty.token_dir.to_str().unwrap(),
        ],
        "name one with --serial",
    );
    // A source directory that does not exist is said so, and not made (review 17a).
    let missing = source.dir.path().join("no").join("such").join("tokens");
    refused(
        &source.conf_path,
        &[
            "copy-token",
            "--from",
            missing.to_str().unwrap(),
            "--to",
            empty.token_dir.to_str().unwrap(),
        ],
        "no token directory",
    );
    assert!(
        !source.dir.path().join("no").exists(),
        "copy-token made the source directory it was to read from"
    );
    // A destination that is neither a directory, a configuration nor a URL.
    let file = source.dir.path().join("not-a-store");
    std::fs::write(&file, b"x").unwrap();
    refused(
        &source.conf_path,
        &["copy-token", "--to", file.to_str().unwrap()],
        "neither a token directory",
    );
}
