//! An attacker's review (branch attack20a) of 1b1c9ff: the separation-of-duties policy
//! sealed into the token's record-authentication marker (docs/security.md, "Separation
//! of duties" and "Known limits"), tried by someone who can write the token file but
//! holds no PIN (usually the user the policy restrains, who owns the file), by a normal
//! PKCS#11 caller, and by several processes. Each test asserts what the project's
//! documents promise and fails against the module as reviewed (1b1c9ff); its doc comment
//! says what is wrong and what a correct module answers.
//!
//! Run with `cargo build --lib --bins && cargo nextest run --test attack_review20a`.

#![allow(clippy::unwrap_used, unreachable_pub, dead_code)]
// test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::path::{Path, PathBuf};

use common::duties::*;
use common::records::{edit_plain, set_attr, uid_of};
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;
use cryptoki::session::{Session, UserType};
use cryptoki_sys::*;
use kmshsm::object::attr::Value;

/// The metadata row that says a token is under the policy, as the store names it.
const ROW: &str = POLICY_ROW;

/// A token key that both wraps and decrypts: what the policy exists to refuse.
fn wraps_and_decrypts() -> Vec<Attribute> {
    vec![
        Attribute::Token(true),
        Attribute::ValueLen(16.into()),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Wrap(true),
        Attribute::Decrypt(true),
    ]
}

/// A generation of [`wraps_and_decrypts`]: `Ok` when made, else its PKCS#11 code.
fn generate_wrap_and_decrypt(session: &Session) -> Result<(), RvError> {
    session
        .generate_key(&Mechanism::AesKeyGen, &wraps_and_decrypts())
        .map(|_| ())
        .map_err(|e| rv::<()>(Err(e)))
}

/// Whether the token database at `db` holds the policy's metadata row.
fn row_stored(db: &Path) -> bool {
    let db = rusqlite::Connection::open(db).unwrap();
    db.query_row("SELECT count(*) FROM meta WHERE name = ?1", [ROW], |r| {
        r.get::<_, i64>(0)
    })
    .unwrap()
        == 1
}

/// A second configuration file beside `env`'s: the same, with the policy on.
fn policy_config(env: &TestEnv) -> PathBuf {
    let text = std::fs::read_to_string(&env.conf_path).unwrap();
    let path = env.dir.path().join("with-policy.toml");
    std::fs::write(&path, format!("separation_of_duties = true\n{text}")).unwrap();
    path
}

/// Not a test: the body of the child processes (see `common::child_command`), configured
/// by the `KMSHSM_CONF` the parent gives them. `so-login`: the SO logs in and out again,
/// as an administrator does to put a token under the policy (docs/security.md: "a token
/// ... logged into by [a process configured with it] carries a marker").
#[test]
#[ignore = "child-process entry point: this file's tests run it in a child (--ignored --exact)"]
fn child_entry() {
    let Some(role) = child_role() else { return };
    let ctx = load_module();
    initialize(&ctx).unwrap();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    match role.as_str() {
        "so-login" => {
            let session = ctx.open_rw_session(slot).unwrap();
            session.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
            session.logout().unwrap();
            drop(session);
        }
        other => panic!("unknown role {other}"),
    }
    ctx.finalize().unwrap();
    tell_parent("done");
}

/// Runs child `role` configured by `conf`, to its end.
fn run_child(role: &str, conf: &Path) {
    let out = child_command("child_entry", role)
        .env("KMSHSM_CONF", conf)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && child_lines(&text).iter().any(|l| l == "done"),
        "child {role} failed ({}): {text}",
        out.status
    );
}

/// A process that logged in before the token was put under the policy never checks the
/// sealed marker: it goes by the metadata row alone for as long as its login lasts. The
/// restrained user keeps one process logged in (configured without the policy); the
/// administrator puts the token under the policy with an SO login from a process
/// configured with it (the row and the covering marker are written); the user deletes
/// the row from the file, as a writer without a PIN can, before the first process next
/// reads the store. That process then generates a token key that both wraps and
/// decrypts, and keeps doing so while no other login writes the row again — the user
/// decides when that is. A fresh login (the control) is refused as it should be.
///
/// docs/security.md, "Separation of duties": the policy "is also sealed under the master
/// key ... so a writer of the token file without a PIN cannot take it off by deleting
/// the metadata row"; "Known limits" names only a process *before its first login*
/// ("when there is no key to check the sealed marker with"). This process has the key.
/// A correct module keeps the policy in every process whose login holds the master key
/// of a sealed token (the marker checked whenever the row is found missing, or at every
/// refresh after a login), and answers the generation below `CKR_TEMPLATE_INCONSISTENT`.
#[test]
fn a_process_logged_in_before_the_seal_keeps_the_policy_when_the_row_is_deleted() {
    let env = TestEnv::new();
    let policy = policy_config(&env);
    let (ctx, _slot, session) = ready_token(&env);
    assert_eq!(
        generate_wrap_and_decrypt(&session),
        Ok(()),
        "control: the token starts without the policy"
    );
    let db = env.token_database();

    // The administrator's process, configured with the policy, puts the token under it.
    run_child("so-login", &policy);
    assert!(row_stored(&db), "the SO login wrote the policy's row");
    // Offline edit, no PIN: the row goes before the user's process reads the store again.
    delete_policy_row(&db);
    let in_the_old_login = generate_wrap_and_decrypt(&session);
    drop(session);
    ctx.finalize().unwrap();

    // Control: a fresh login finds the sealed marker and keeps the policy.
    let ctx = env.load();
    let session = user_session(&ctx, slot_of_token(&ctx, TOKEN_LABEL));
    assert_eq!(
        generate_wrap_and_decrypt(&session),
        Err(RvError::TemplateInconsistent),
        "control: a login after the seal keeps the policy"
    );
    drop(session);
    ctx.finalize().unwrap();

    assert_eq!(
        in_the_old_login,
        Err(RvError::TemplateInconsistent),
        "a process logged in before the token was sealed made a token key that wraps and \
         decrypts after the policy's row was deleted offline"
    );
}

/// In a logged-in session of a process: wraps the victim (labelled `victim`) under the
/// public key labelled `planted` and decrypts the result with the private half labelled
/// "decrypting half". `Ok(true)` when the victim's value came out.
fn extract_with_planted_key(session: &Session) -> Result<bool, String> {
    let one = |label: &str| one_labelled(session, label);
    let planted = one("planted");
    let victim = one("victim");
    let private = one("decrypting half");
    let wrapped = session
        .wrap_key(&oaep_sha256(), planted, victim)
        .map_err(|e| format!("C_WrapKey refused: {e}"))?;
    let plain = session
        .decrypt(&oaep_sha256(), private, &wrapped)
        .map_err(|e| format!("C_Decrypt refused: {e}"))?;
    Ok(plain == VICTIM)
}

/// The row deleted offline, then a session that is not logged in (as any caller's may)
/// makes a *token* public key that wraps, from values whose private half decrypts. The
/// next login (in a process configured without the policy) finds the sealed marker and
/// puts the policy back, but the planted key stays in the token and wraps for every later
/// process: the user wraps their extractable key under it and decrypts the result — the
/// classic extraction, on a sealed token.
///
/// docs/security.md, "Known limits" (added by 1b1c9ff) accepts that a deleted row lets a
/// process make keys that wrap before it logs in because "they live only in that
/// process"; a public token object lives in the token. "Separation of duties": "an RSA
/// or SM2 public key that wraps must come from `C_GenerateKeyPair`"; "Keys made by
/// `C_CreateObject` ... do not wrap under the policy". A correct module does not let a
/// key made while the row was missing wrap once a login has found the token under the
/// policy (refuses its record, or the wrap), or refuses public token keys that wrap
/// before a login can check the marker.
#[test]
fn a_public_token_key_made_while_the_row_was_missing_does_not_wrap_on_a_sealed_token() {
    let env = TestEnv::new();
    let values = token_under_the_policy_with_a_victim(&env);
    drop_policy_from_config(&env);
    delete_policy_row(&env.token_database());

    // No PIN: a public session plants a wrapping public key of the pair's values.
    let ctx = env.load();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let public = ctx.open_rw_session(slot).unwrap();
    public
        .create_object(&rsa_public_template(&values, "planted", true))
        .expect("before a login the row is all a process goes by (known limit)");
    drop(public);
    ctx.finalize().unwrap();

    // A later process: its login finds the sealed marker and the policy is back...
    let ctx = env.load();
    let session = user_session(&ctx, slot_of_token(&ctx, TOKEN_LABEL));
    assert_eq!(
        generate_wrap_and_decrypt(&session),
        Err(RvError::TemplateInconsistent),
        "control: the login put the policy back"
    );
    assert!(
        row_stored(&env.token_database()),
        "control: the row is back"
    );
    // ...and the planted key wraps the victim to a private key that decrypts.
    let extracted = extract_with_planted_key(&session);
    assert!(
        extracted != Ok(true),
        "on a token under the policy, a public key planted while the row was missing wrapped \
         the user's extractable key and its private half decrypted it to the victim's value"
    );
}

/// A public key record made by a session that is not logged in is unauthenticated; a
/// writer of the file turns its `CKA_WRAP` on offline (no PIN, no row deleted, the policy
/// in force throughout). After the user's login the record is served as valid, and the
/// user wraps their extractable key under it and decrypts the result with the pair's
/// private half: the policy's classic extraction, with the policy on.
///
/// docs/security.md, "Records at rest": a record without authentication "may only hold
/// what such a session may write anyway"; under the policy no session may write a
/// public key that wraps unless `C_GenerateKeyPair` made it ("Separation of duties").
/// The module's check of such records (`Object::may_be_unauthenticated`: public, not
/// trusted, no secrets, no KMS key) does not ask the policy. A correct module refuses the
/// record after a login on a token under the policy (`CKR_KMSHSM_RECORD_TAMPERED`, as
/// for other unauthenticated records claiming more than a public session may write), or
/// the wrap.
#[test]
fn a_public_key_given_cka_wrap_offline_does_not_wrap_under_the_policy() {
    let env = TestEnv::new();
    let values = token_under_the_policy_with_a_victim(&env);

    // No PIN: a public session makes a public key that only encrypts (allowed).
    let ctx = env.load();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let public = ctx.open_rw_session(slot).unwrap();
    let planted = public
        .create_object(&rsa_public_template(&values, "planted", false))
        .expect("a public key that does not wrap, from a public session");
    let uid = uid_of(&public, planted);
    drop(public);
    ctx.finalize().unwrap();

    // Offline, no PIN: CKA_WRAP on (the policy's row is left in place).
    edit_plain(&env.token_database(), &uid, |a| {
        set_attr(a, CKA_WRAP, Value::Bool(true));
    });
    assert!(row_stored(&env.token_database()));

    let ctx = env.load();
    let session = user_session(&ctx, slot_of_token(&ctx, TOKEN_LABEL));
    assert_eq!(
        generate_wrap_and_decrypt(&session),
        Err(RvError::TemplateInconsistent),
        "control: the token is under the policy"
    );
    let extracted = extract_with_planted_key(&session);
    assert!(
        extracted != Ok(true),
        "on a token under the policy, a public key record given CKA_WRAP offline wrapped the \
         user's extractable key and its private half decrypted it to the victim's value"
    );
}

/// The known limit of a process before its first login (docs/security.md, "Known
/// limits": a deleted row "lets a process configured without the policy make public
/// session keys that both wrap and decrypt before it logs in (they live only in that
/// process ...)"), taken one step further: those session keys are usable after the login
/// in the same process, so the restrained user (who owns the file and holds the user PIN)
/// deletes the row, makes a session AES key that wraps and decrypts before logging in,
/// logs in, wraps their extractable token key and decrypts it: the classic extraction,
/// on a token whose policy is sealed, with no persistence needed. The limit as worded
/// reads as harmless ("live only in that process"); it is the whole bypass of the policy
/// for the adversary the seal is for.
///
/// Fixed after this review: under the policy a session key that the policy would not let
/// be made now does not wrap (`Token::authorise_wrapping_key`), so the wrap below is
/// refused.
#[test]
fn session_keys_made_before_the_login_do_not_extract_a_key_on_a_sealed_token() {
    let env = TestEnv::new();
    let (_ctx, session, both) = session_key_made_before_the_login(&env, &[]);
    assert_eq!(
        generate_wrap_and_decrypt(&session),
        Err(RvError::TemplateInconsistent),
        "control: the login put the policy back"
    );
    let victim = find_by_label(&session, "victim")[0];
    let extracted = session
        .wrap_key(&Mechanism::AesEcb, both, victim)
        .and_then(|wrapped| session.decrypt(&Mechanism::AesEcb, both, &wrapped))
        .is_ok_and(|plain| plain == VICTIM);
    assert!(
        !extracted,
        "on a sealed token, a session key made before the login wrapped the user's \
         extractable key and decrypted it to the victim's value"
    );
}

/// The known limit of a rollback of the marker (docs/security.md, "Known limits": "A
/// writer who kept a copy of the record-authentication marker from before the token was
/// put under the policy can write it back with the row deleted"), shown on the path
/// 1b1c9ff is for: a token made without the policy and put under it later by a login.
/// The user the policy restrains owns the file, so they always hold that copy: reading
/// the `record_auth` row before the administrator's login is enough. Written back with
/// the row deleted, every later login finds a plain, authentic marker and no row, and
/// the policy is gone for good. Only tokens made under the policy (`C_InitToken` by a
/// configured process) never had a plain marker.
///
/// Kept ignored as the documented limit it is; it fails (the key below is made).
#[test]
#[ignore = "known limit (docs/security.md, Known limits): a kept copy of the pre-policy marker written back with the row deleted lifts the policy"]
fn a_pre_policy_marker_written_back_does_not_lift_the_policy() {
    let env = TestEnv::new();
    let (ctx, _slot, session) = ready_token(&env);
    drop(session);
    ctx.finalize().unwrap();
    let db = env.token_database();
    let read_marker = || -> Vec<u8> {
        rusqlite::Connection::open(&db)
            .unwrap()
            .query_row(
                "SELECT value FROM meta WHERE name = 'record_auth'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    // The owner of the file reads the marker (no PIN needed)...
    let kept = read_marker();
    // ...the administrator's process, configured with the policy, logs in...
    let policy = policy_config(&env);
    run_child("so-login", &policy);
    assert_ne!(read_marker(), kept, "the SO's login sealed the policy");
    // ...and the owner writes the old marker back and deletes the row.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE meta SET value = ?1 WHERE name = 'record_auth'",
            [&kept],
        )
        .unwrap();
    delete_policy_row(&db);

    let ctx = env.load();
    let session = user_session(&ctx, slot_of_token(&ctx, TOKEN_LABEL));
    assert_eq!(
        generate_wrap_and_decrypt(&session),
        Err(RvError::TemplateInconsistent),
        "the pre-policy marker written back with the row deleted lifted the policy"
    );
}

/// Holds (coverage, not a defect): a login refused because the record-authentication
/// marker is missing is refused after the PIN was found right, so it is not counted as
/// a wrong PIN: right PINs past the lockout limit are all answered
/// `CKR_KMSHSM_RECORD_TAMPERED`, never `CKR_PIN_LOCKED`, and a wrong PIN is still told
/// apart (`CKR_PIN_INCORRECT`). A writer who deletes the marker denies the token to its
/// users (as deleting the file would) but locks no PIN.
#[test]
fn a_missing_marker_refuses_the_login_without_counting_a_wrong_pin() {
    let env = TestEnv::new();
    let (ctx, _slot, session) = ready_token(&env);
    drop(session);
    ctx.finalize().unwrap();
    rusqlite::Connection::open(env.token_database())
        .unwrap()
        .execute("DELETE FROM meta WHERE name = 'record_auth'", [])
        .unwrap();

    let ctx = env.load();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let session = ctx.open_rw_session(slot).unwrap();
    let tampered = RvError::VendorDefined(common::kms::KMSHSM | 0x07);
    for _ in 0..=MAX_PIN_FAILURES {
        assert_rv!(
            session.login(UserType::User, Some(&pin(USER_PIN))),
            tampered,
            "a right PIN on a token whose marker is missing"
        );
    }
    assert_rv!(
        session.login(UserType::User, Some(&pin("wrong-pin-9"))),
        RvError::PinIncorrect
    );
    let (_, _, locked) = user_flags(&ctx, slot);
    assert!(!locked, "no PIN is locked");
}
