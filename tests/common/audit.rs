//! The audit trail's end-to-end helpers (docs/audit.md), shared by the SQLite and the
//! PostgreSQL variants of the audit tests: the `kmshsm audit` commands as a user runs
//! them, and the scenario that records every event type.

use std::process::Command;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;
use cryptoki::session::UserType;
use serde_json::Value;

use super::kms::*;
use super::*;

/// What one run of the `kmshsm` command printed, and how it ended.
pub struct Run {
    pub ok: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `kmshsm args...` with the user PIN in its environment.
pub fn kmshsm(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_kmshsm"))
        .args(args)
        .env("KMSHSM_PIN", USER_PIN)
        .output()
        .expect("run kmshsm");
    Run {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `kmshsm --config conf args...`.
pub fn kmshsm_with(conf: &std::path::Path, args: &[&str]) -> Run {
    let conf = conf.to_str().expect("a UTF-8 path");
    let mut all = vec!["--config", conf];
    all.extend_from_slice(args);
    kmshsm(&all)
}

/// `audit list --json` (plus `extra`), one value per event.
pub fn events(extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["audit", "list", "--json"];
    args.extend_from_slice(extra);
    let run = kmshsm(&args);
    assert!(run.ok, "audit list: {}", run.stderr);
    run.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

pub fn verify_ok() -> Value {
    let run = kmshsm(&["audit", "verify"]);
    assert!(run.ok, "audit verify failed: {}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap()
}

/// The first event named `name` (about `key`, when given) with `outcome`.
pub fn find<'a>(all: &'a [Value], name: &str, key: Option<&str>, outcome: &str) -> &'a Value {
    all.iter()
        .find(|e| {
            e["EventName"] == name && e["Outcome"] == outcome && key.is_none_or(|k| e["KeyId"] == k)
        })
        .unwrap_or_else(|| {
            panic!(
                "no {name} {outcome} event{}: {}",
                key.map(|k| format!(" for {k}")).unwrap_or_default(),
                all.iter().map(|e| format!("{e}\n")).collect::<String>()
            )
        })
}

/// Every event type with its outcome, refusals included, on the token of `env` (a new
/// one): lifecycle and custody operations through PKCS#11, read back with `kmshsm audit
/// list --json`; `event_count` counts the stored events (cryptography must add none);
/// nothing secret in the trail; the filters; the trail verifies.
pub fn every_event_is_recorded(env: &TestEnv, event_count: &dyn Fn() -> i64) {
    let work = Work::new(env);
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = user_session(&ctx, slot);

    // CreateKey, GetParametersForImport, ImportKeyMaterial; other material refused.
    let key = create_external(&session, Spec::Aes256, "audited");
    let id = key_id(&session, key);
    import_with(
        &session,
        &work,
        key,
        WRAP_RSAES_OAEP_SHA_256,
        &[7; 32],
        None,
    )
    .unwrap();
    let other = import_with(
        &session,
        &work,
        key,
        WRAP_RSAES_OAEP_SHA_256,
        &[8; 32],
        None,
    );
    crate::assert_rv!(other, CKR_KMSHSM_INVALID_KEY_MATERIAL);

    // Cryptography writes nothing.
    let before = event_count();
    for _ in 0..3 {
        encrypt_with(&session, Spec::Aes256, key).unwrap();
    }
    assert_eq!(event_count(), before, "encryption wrote events");

    // Disable, Enable, DeleteKeyMaterial, a refused Enable, Schedule and Cancel.
    set_state(&session, key, STATE_DISABLED).unwrap();
    set_state(&session, key, STATE_ENABLED).unwrap();
    set_state(&session, key, STATE_PENDING_IMPORT).unwrap();
    crate::assert_rv!(
        set_state(&session, key, STATE_ENABLED),
        CKR_KMSHSM_INCORRECT_KEY_STATE
    );
    set_state(&session, key, STATE_PENDING_DELETION).unwrap();
    set_state(&session, key, STATE_DISABLED).unwrap();

    // A state change of an unmodifiable key refused (`CKR_ACTION_PROHIBITED`).
    let fixed = session
        .create_object(&[
            Attribute::Class(cryptoki::object::ObjectClass::SECRET_KEY),
            Attribute::KeyType(cryptoki::object::KeyType::AES),
            Attribute::Token(true),
            Attribute::Encrypt(true),
            Attribute::Modifiable(false),
            Attribute::Value(vec![0x5A; 32]),
        ])
        .unwrap();
    let fixed_id = key_id(&session, fixed);
    crate::assert_rv!(
        set_state(&session, fixed, STATE_PENDING_IMPORT),
        cryptoki::error::RvError::ActionProhibited
    );

    // GetParametersForImport refused (a KMS key); a key destroyed.
    let kms_key = session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[Attribute::Token(true), Attribute::ValueLen(32.into())],
        )
        .unwrap();
    let kms_id = key_id(&session, kms_key);
    crate::assert_rv!(
        try_get_params(&session, &kms_id, WRAP_RSAES_OAEP_SHA_256),
        CKR_KMSHSM_UNSUPPORTED_ORIGIN
    );
    session.destroy_object(kms_key).unwrap();

    // Material expiry, and an expired wrapping pair purged, by the sweep.
    let expiring = create_external(&session, Spec::Aes256, "expiring");
    let expiring_id = key_id(&session, expiring);
    let expiry = system_now() + 100;
    import_with(
        &session,
        &work,
        expiring,
        WRAP_RSAES_OAEP_SHA_256,
        &[9; 32],
        Some(expiry),
    )
    .unwrap();
    let unused = create_external(&session, Spec::Aes256, "unused");
    let unused_id = key_id(&session, unused);
    get_params(&session, &unused_id, WRAP_RSAES_OAEP_SHA_256);
    set_clock_offset(TOKEN_LIFETIME as i64 + 300);
    find_by_label(&session, "expiring");
    assert_eq!(state(&session, expiring), STATE_PENDING_IMPORT);

    // C_SetPIN (refused with a wrong old PIN, then done twice), failed logins to the
    // lockout, a locked attempt, C_InitPIN.
    assert!(session
        .set_pin(&pin("wrong-pin-9"), &pin("user-pin-2222"))
        .is_err());
    session
        .set_pin(&pin(USER_PIN), &pin("user-pin-2222"))
        .unwrap();
    session
        .set_pin(&pin("user-pin-2222"), &pin(USER_PIN))
        .unwrap();
    session.logout().unwrap();
    for _ in 0..MAX_PIN_FAILURES {
        assert!(session
            .login(UserType::User, Some(&pin("wrong-pin-9")))
            .is_err());
    }
    assert!(session.login(UserType::User, Some(&pin(USER_PIN))).is_err());
    session.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    session.init_pin(&pin(USER_PIN)).unwrap();
    session.logout().unwrap();
    drop(session);
    ctx.finalize().unwrap();

    let all = events(&[]);
    let serial = all[0]["TokenSerial"].as_str().unwrap().to_owned();
    assert_eq!(all[0]["EventName"], "C_InitToken", "the first event");
    for (n, e) in all.iter().enumerate() {
        assert_eq!(e["EventId"], n as u64 + 1);
        assert_eq!(e["TokenSerial"], serial.as_str());
        assert!(e["ProcessId"].as_u64().is_some_and(|p| p > 0), "{e}");
        assert!(e["EventTime"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert_eq!(e["Authenticated"], true, "{e}");
    }
    find(&all, "C_InitPIN", None, "Success");
    find(&all, "CreateKey", Some(&id), "Success");
    find(&all, "GetParametersForImport", Some(&id), "Success");
    let imported = find(&all, "ImportKeyMaterial", Some(&id), "Success");
    let material = imported["MaterialId"].as_str().unwrap().to_owned();
    let refused = find(&all, "ImportKeyMaterial", Some(&id), "Refused");
    assert_eq!(refused["ErrorCode"], "InvalidKeyMaterial");
    assert_eq!(
        refused["MaterialId"],
        material.as_str(),
        "the bound material"
    );
    find(&all, "DisableKey", Some(&id), "Success");
    find(&all, "EnableKey", Some(&id), "Success");
    let deleted = find(&all, "DeleteKeyMaterial", Some(&id), "Success");
    assert_eq!(deleted["MaterialId"], material.as_str());
    let enable = find(&all, "EnableKey", Some(&id), "Refused");
    assert_eq!(enable["ErrorCode"], "IncorrectKeyState");
    find(&all, "ScheduleKeyDeletion", Some(&id), "Success");
    find(&all, "CancelKeyDeletion", Some(&id), "Success");
    let unmodifiable = find(&all, "DeleteKeyMaterial", Some(&fixed_id), "Refused");
    assert_eq!(unmodifiable["ErrorCode"], "ActionProhibited");
    assert!(unmodifiable["MaterialId"].is_string(), "{unmodifiable}");
    find(&all, "CreateKey", Some(&kms_id), "Success");
    let params = find(&all, "GetParametersForImport", Some(&kms_id), "Refused");
    assert_eq!(params["ErrorCode"], "Unsupported.Origin");
    let destroyed = find(&all, "DestroyKey", Some(&kms_id), "Success");
    assert!(destroyed["ObjectUid"].is_string());
    find(&all, "KeyMaterialExpired", Some(&expiring_id), "Success");
    find(&all, "PurgeWrappingKey", Some(&unused_id), "Success");
    let set_pins = all
        .iter()
        .filter(|e| e["EventName"] == "C_SetPIN" && e["Outcome"] == "Success")
        .count();
    assert_eq!(set_pins, 2);
    let set_pin = find(&all, "C_SetPIN", None, "Refused");
    assert_eq!(set_pin["ErrorCode"], "PinIncorrect");
    let wrong = all
        .iter()
        .filter(|e| e["EventName"] == "C_Login" && e["ErrorCode"] == "PinIncorrect")
        .count();
    assert_eq!(wrong, MAX_PIN_FAILURES as usize - 1);
    let lockout = find(&all, "PinLockout", None, "Refused");
    assert_eq!(lockout["Role"], "User");
    assert_eq!(lockout["PinFailures"], MAX_PIN_FAILURES);
    let locked = all
        .iter()
        .find(|e| e["ErrorCode"] == "PinLocked")
        .expect("the attempt on a locked PIN");
    assert_eq!(locked["EventName"], "C_Login");

    // Nothing secret: no PIN, no material.
    let text = kmshsm(&["audit", "list", "--json"]).stdout;
    for secret in [USER_PIN, SO_PIN, "user-pin-2222", "wrong-pin-9"] {
        assert!(!text.contains(secret), "a PIN in the trail");
    }
    for m in [[7u8; 32], [8; 32], [9; 32]] {
        assert!(!text.contains(&to_hex(&m)), "material in the trail");
    }

    // Filters.
    let of_key = events(&["--key-id", &id]);
    assert!(of_key.len() >= 10 && of_key.iter().all(|e| e["KeyId"] == id.as_str()));
    assert!(events(&["--since", "2999-01-01T00:00:00Z"]).is_empty());
    assert_eq!(events(&["--until", "2999-01-01"]).len(), all.len());
    let text = kmshsm(&["audit", "list"]);
    assert!(text.ok && text.stdout.lines().count() == all.len());

    let v = verify_ok();
    assert_eq!(v["Intact"], true);
    assert_eq!(v["HeadEventId"], all.len() as u64);
    assert_eq!(v["UnauthenticatedEvents"], 0);
}

/// `keyed_trail` on a token in a file; the path of its database.
pub fn audited_token(env: &TestEnv) -> std::path::PathBuf {
    keyed_trail(env);
    env.token_database()
}

/// Makes `env`'s token (in a file or on PostgreSQL) and a trail of a dozen events, each
/// written by a logged-in application (so each carries a head MAC: refused state changes
/// of a key awaiting its material, recorded so); the token is released.
pub fn keyed_trail(env: &TestEnv) {
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = user_session(&ctx, slot);
    let key = create_external(&session, Spec::Aes256, "k");
    for _ in 0..4 {
        let _ = set_state(&session, key, STATE_DISABLED);
        let _ = set_state(&session, key, STATE_ENABLED);
    }
    drop(session);
    ctx.finalize().unwrap();
}
