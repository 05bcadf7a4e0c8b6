//! No plaintext secret at rest or in the log (DESIGN.md §3): token secret keys, private key
//! components, private data values and PINs never appear in any file of the token directory
//! (database, -wal, -shm), neither while the library runs nor after C_Finalize, and never in
//! the log even at trace level; nor, for a token in PostgreSQL, in a dump of the database
//! or any file of the server's data directory (what its administrator sees). Run with
//! `cargo nextest run`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::material::*;
use common::*;
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use cryptoki::session::UserType;

const KEY_CANARY: &[u8; 32] = b"KMSHSM-AES-KEY-CANARY-0123456789";
const DATA_CANARY: &[u8] = b"KMSHSM-PRIVATE-DATA-CANARY-9876543210";

/// The secrets that must never be stored or logged in the clear.
fn secrets() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("AES key value", KEY_CANARY.to_vec()),
        ("AES key value, hex", to_hex(KEY_CANARY).into_bytes()),
        ("private data value", DATA_CANARY.to_vec()),
        ("RSA private exponent", hex(RSA_PRIVATE_EXPONENT)),
        ("RSA prime 1", hex(RSA_PRIME1)),
        ("EC private value", hex(EC_PRIVATE_VALUE)),
        ("user PIN", USER_PIN.as_bytes().to_vec()),
        ("SO PIN", SO_PIN.as_bytes().to_vec()),
    ]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn assert_no_secret_in_token_dir(env: &TestEnv, when: &str) {
    let files = env.token_files();
    assert!(!files.is_empty(), "{when}: the token directory is empty");
    for file in files {
        // Read by another process: closing a descriptor of the database or its -shm
        // file here would release the module's SQLite locks (POSIX locks are the
        // process's), and the module is loaded in this process.
        let read = std::process::Command::new("cat")
            .arg(&file)
            .output()
            .unwrap();
        assert!(read.status.success(), "cat {}", file.display());
        let bytes = read.stdout;
        for (name, secret) in secrets() {
            assert!(
                !contains(&bytes, &secret),
                "{when}: {name} in plaintext in {}",
                file.display()
            );
        }
    }
}

fn create_secrets(session: &cryptoki::session::Session) {
    session
        .create_object(&aes_template("canary key", KEY_CANARY, true))
        .unwrap();
    session
        .create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Label(b"canary data".to_vec()),
            Attribute::Value(DATA_CANARY.to_vec()),
        ])
        .unwrap();
    session
        .create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::RSA),
            Attribute::Token(true),
            Attribute::Label(b"canary rsa".to_vec()),
            Attribute::Modulus(hex(RSA_MODULUS)),
            Attribute::PublicExponent(hex(RSA_PUBLIC_EXPONENT)),
            Attribute::PrivateExponent(hex(RSA_PRIVATE_EXPONENT)),
            Attribute::Prime1(hex(RSA_PRIME1)),
            Attribute::Prime2(hex(RSA_PRIME2)),
            Attribute::Exponent1(hex(RSA_EXPONENT1)),
            Attribute::Exponent2(hex(RSA_EXPONENT2)),
            Attribute::Coefficient(hex(RSA_COEFFICIENT)),
        ])
        .unwrap();
    session
        .create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::Token(true),
            Attribute::Label(b"canary ec".to_vec()),
            Attribute::EcParams(hex(EC_PARAMS_P256)),
            Attribute::Value(hex(EC_PRIVATE_VALUE)),
        ])
        .unwrap();
}

#[test]
fn no_plaintext_secret_in_the_token_directory() {
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    create_secrets(&session);
    // Change the user PIN too, so the new PIN's handling is covered.
    session
        .set_pin(&pin(USER_PIN), &pin("user-pin-2222"))
        .unwrap();
    session
        .set_pin(&pin("user-pin-2222"), &pin(USER_PIN))
        .unwrap();
    assert_eq!(find_by_label(&session, "canary key").len(), 1);
    assert_no_secret_in_token_dir(&env, "while running");
    drop(session);
    ctx.finalize().unwrap();
    assert_no_secret_in_token_dir(&env, "after C_Finalize");
    let _ = slot;
}

#[test]
fn no_plaintext_secret_in_a_postgres_database_or_its_files() {
    let env = TestEnv::postgres();
    let (ctx, _slot, session) = ready_token(&env);
    create_secrets(&session);
    session
        .set_pin(&pin(USER_PIN), &pin("user-pin-2222"))
        .unwrap();
    assert_eq!(find_by_label(&session, "canary key").len(), 1);
    drop(session);
    ctx.finalize().unwrap();
    let cluster = env.pg.as_ref().unwrap();
    let dump = cluster.dump("kmshsm");
    // The records are there (labels are plain attributes), the secrets are not, neither
    // as bytes nor as the hex text bytea is dumped as.
    assert!(
        contains(&dump, to_hex(b"canary key").as_bytes()),
        "the dump holds the records"
    );
    let mut all = secrets();
    all.push(("new user PIN", b"user-pin-2222".to_vec()));
    for (name, secret) in &all {
        assert!(!contains(&dump, secret), "{name} in the dump");
        assert!(
            !contains(&dump, to_hex(secret).as_bytes()),
            "{name} in hex in the dump"
        );
    }
    cluster.checkpoint();
    let files = files_under(&cluster.data_dir());
    assert!(
        files.len() > 100,
        "the data directory: {} files",
        files.len()
    );
    for file in files {
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        for (name, secret) in &all {
            assert!(!contains(&bytes, secret), "{name} in {}", file.display());
        }
    }
}

#[test]
fn no_secret_in_the_log_even_at_trace_level() {
    let env = TestEnv::with_options(Options {
        log_level: "trace",
        ..Options::default()
    });
    let (ctx, _slot, session) = ready_token(&env);
    create_secrets(&session);
    let key = find_by_label(&session, "canary key")[0];
    assert_eq!(
        attribute_bytes(&session, key, cryptoki::object::AttributeType::Value),
        KEY_CANARY
    );
    session.logout().unwrap();
    let _ = session.login(UserType::User, Some(&pin("wrong-user-pin")));
    drop(session);
    ctx.finalize().unwrap();
    let log = std::fs::read(&env.log_path).unwrap_or_default();
    assert!(
        !log.is_empty() || is_softhsm(),
        "nothing was logged at trace level"
    );
    let mut secrets = secrets();
    secrets.push(("wrong PIN attempt", b"wrong-user-pin".to_vec()));
    for (name, secret) in secrets {
        assert!(
            !contains(&log, &secret),
            "{name} appears in the log {}",
            env.log_path.display()
        );
    }
}
