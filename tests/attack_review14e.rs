//! An attacker's review (branch attack14e) of 326c78b: the login state machine and
//! `CKA_ALWAYS_AUTHENTICATE`, the configuration and the PostgreSQL settings, and the
//! `kmshsm` command line. Each test reproduces one defect found by reading the code,
//! asserts what PKCS#11 3.0 or the project's documents promise, and fails against the
//! module as it was reviewed. Its doc comment says what is wrong.
//! Run with `cargo nextest run --test attack_review14e` (after `cargo build --lib` and
//! `cargo build --bin kmshsm`).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::*;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};

fn oaep_sha256() -> Mechanism<'static> {
    Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::empty(),
    ))
}

/// Defect: a `CKA_ALWAYS_AUTHENTICATE` private key decrypts without the PIN being
/// entered again, through `C_UnwrapKey`. `token/keys.rs` `Token::key_for` makes only a
/// `Usage::Sign` or `Usage::Decrypt` operation await the context-specific login, and
/// `Token::unwrap_key` takes its unwrapping key from `usable_key(.., Usage::Unwrap, ..)`,
/// which never asks for it. The unwrap is the key's RSA-OAEP decryption; with a template
/// asking for a readable generic secret (`CKA_SENSITIVE` false, `CKA_EXTRACTABLE`
/// true, the defaults) the "unwrapped key" is the plaintext, read back with
/// `C_GetAttributeValue(CKA_VALUE)`.
///
/// Expected (PKCS#11 3.0 §4.9: with `CKA_ALWAYS_AUTHENTICATE` "the user has to supply
/// the PIN for each use (sign or decrypt) with the key"; docs/security.md: "Sign or
/// decrypt with a `CKA_ALWAYS_AUTHENTICATE` key without re-entering the PIN" is refused
/// with `CKR_USER_NOT_LOGGED_IN`): a use of the key that decrypts, unwrapping included,
/// needs the context-specific login. Actual: `C_UnwrapKey` succeeds with no PIN entry,
/// and the caller reads the plaintext that `C_Decrypt` would have refused to give it.
#[test]
fn an_always_authenticate_key_decrypts_through_unwrap_without_the_pin() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let (public, private) = session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::ModulusBits(2048.into()),
                Attribute::Encrypt(true),
                Attribute::Wrap(true),
            ],
            &[
                Attribute::Private(true),
                Attribute::Decrypt(true),
                Attribute::Unwrap(true),
                Attribute::AlwaysAuthenticate(true),
            ],
        )
        .unwrap();
    let secret = b"a message for the key holder who types the PIN";
    let ciphertext = session.encrypt(&oaep_sha256(), public, secret).unwrap();
    // The module's own rule for decryption: refused without the context-specific login.
    assert_rv!(
        session.decrypt(&oaep_sha256(), private, &ciphertext),
        cryptoki::error::RvError::UserNotLoggedIn
    );
    // The same decryption, as an unwrap into a readable generic secret.
    let unwrapped = session.unwrap_key(
        &oaep_sha256(),
        private,
        &ciphertext,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
        ],
    );
    let recovered = unwrapped
        .as_ref()
        .ok()
        .map(|&h| attribute_bytes(&session, h, AttributeType::Value));
    assert!(
        unwrapped.is_err(),
        "C_UnwrapKey with a CKA_ALWAYS_AUTHENTICATE key succeeded without the PIN; the \
         plaintext was {} through CKA_VALUE",
        if recovered.as_deref() == Some(&secret[..]) {
            "recovered"
        } else {
            "not recovered"
        }
    );
}

/// Defect: the password of a `store_url` reaches the log when it holds a `/` or `?`, or
/// when it is given as a percent-encoded `password` parameter. `config.rs` `redact_url`
/// ends the user-information part at the first `/` or `?` and matches only the literal
/// parameter name `password`, while `tokio-postgres` (which `store/postgres/conn.rs`
/// `PgSettings::new` hands the URL to) takes everything up to the first `@` as the user
/// and password, and percent-decodes parameter names. `PgSettings::shown`, the text
/// every message names the server by, then carries the password unmasked; an
/// unreachable server's error (`StoreError::Unreachable`) is logged by `C_Initialize`.
///
/// Expected (docs/configuration.md, "Tokens in PostgreSQL": "The password may be in the
/// URL (`user:password@`) or a `password=` parameter; it is never logged: every message
/// names the server with the password replaced by `***`"): whatever the password's
/// characters, the log never holds it. Actual: it does.
#[test]
fn a_store_url_password_with_a_slash_or_an_encoded_name_reaches_the_log() {
    let env = TestEnv::new();
    let base = std::fs::read_to_string(&env.conf_path).unwrap();
    // Port 1 on loopback refuses at once: C_Initialize fails and logs why, naming the
    // server.
    let mut leaked = Vec::new();
    for (url, password) in [
        (
            "postgresql://u:pw/leaked-one@127.0.0.1:1/db?sslmode=disable",
            "pw/leaked-one",
        ),
        (
            "postgresql://u:pw?leaked-two@127.0.0.1:1/db?sslmode=disable",
            "pw?leaked-two",
        ),
        (
            "postgresql://u@127.0.0.1:1/db?sslmode=disable&pass%77ord=leaked-three",
            "leaked-three",
        ),
    ] {
        let _ = std::fs::remove_file(&env.log_path);
        env.write_config(&format!("store_url = {url:?}\n{base}"));
        let ctx = load_module();
        assert_rv!(initialize(&ctx), cryptoki::error::RvError::DeviceError);
        drop(ctx);
        let log = env.log();
        assert!(
            log.contains("127.0.0.1:1"),
            "the failure is logged with the server's name: {log:?}"
        );
        if log.contains(password) {
            leaked.push(url.replace(password, "<password>"));
        }
    }
    assert!(
        leaked.is_empty(),
        "the password of each of these URLs reached the log: {leaked:?}"
    );
}

/// Defect: `[postgres] statement_timeout_ms` above 2147483647 passes the configuration's
/// validation, and then no connection to the server can ever be made. `config.rs`
/// `Config::validate` bounds the PostgreSQL timeouts only from below (at least 1 ms),
/// while `store/postgres/conn.rs` `PgSettings::connect` opens every connection with
/// `SET statement_timeout = <ms>; SET idle_in_transaction_session_timeout = <ms>`, two
/// server settings whose range is 0 to `INT_MAX` milliseconds: the server refuses the
/// value, and the connection fails with the server's error.
///
/// Expected (docs/configuration.md: a file that "cannot be read or parsed makes
/// `C_Initialize` return `CKR_FUNCTION_FAILED`, with a log line naming the file and the
/// problem", as the `[kdf]` bounds already are; `CKR_DEVICE_ERROR` is for a server that
/// "cannot be reached or the schema is from a newer kmshsm"): a value the store cannot
/// use is refused as a configuration error naming `statement_timeout_ms`, or the store
/// works. Actual: `C_Initialize` answers `CKR_DEVICE_ERROR` for a reachable server
/// that is working, and the log blames the server.
#[test]
fn a_statement_timeout_beyond_the_servers_range_passes_validation_and_breaks_every_connection() {
    let env = TestEnv::postgres_with(Options::default(), "statement_timeout_ms = 2147483648");
    let ctx = load_module();
    let answer = initialize(&ctx);
    let log = env.log();
    match answer {
        Ok(()) => {}
        Err(e) => {
            let rv = rv::<()>(Err(e));
            // The configuration's own error goes to standard error, before any log file
            // is opened (tests/general.rs checks its text).
            assert!(
                rv == cryptoki::error::RvError::FunctionFailed,
                "C_Initialize answered {rv:?} for a statement_timeout_ms the configuration \
                 accepted; the log: {log}"
            );
        }
    }
}

/// The review's suspicion, checked with its fix: `C_DeriveKey` (ECDH) with a
/// `CKA_ALWAYS_AUTHENTICATE` EC private key gave a readable shared secret without the
/// PIN. A derivation is the key's private operation, and like an unwrap it has no Init
/// for the context-specific login to follow: refused, `CKR_USER_NOT_LOGGED_IN`.
#[test]
fn an_always_authenticate_key_derives_no_shared_secret_without_the_pin() {
    use cryptoki::mechanism::elliptic_curve::{EcKdf, Ecdh1DeriveParams};
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    // P-256's OID.
    let p256 = vec![0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let (public, private) = session
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[Attribute::EcParams(p256)],
            &[
                Attribute::Private(true),
                Attribute::Derive(true),
                Attribute::AlwaysAuthenticate(true),
            ],
        )
        .unwrap();
    let point = attribute_bytes(&session, public, AttributeType::EcPoint);
    // The point as DER OCTET STRING (65 bytes): the raw point is what ECDH takes.
    let raw = point[point.len() - 65..].to_vec();
    let derived = session.derive_key(
        &Mechanism::Ecdh1Derive(Ecdh1DeriveParams::new(EcKdf::null(), &raw)),
        private,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::ValueLen(32.into()),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
        ],
    );
    assert_rv!(derived, cryptoki::error::RvError::UserNotLoggedIn);
}
