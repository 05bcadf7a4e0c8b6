//! The KMS key model across C_Finalize and a reload in a new process: key state, origin,
//! material expiry, the same-material rule (the bound fingerprint) and import tokens
//! survive; a token obtained in one process imports in another; expiry is judged by the
//! clock of the process that looks (KMSHSM_TEST_CLOCK_OFFSET in the child's environment).
//! Material is wrapped by `openssl`. Run with `cargo nextest run --test kms_persistence`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::path::PathBuf;
use std::process::Stdio;

use common::kms::*;
use common::*;
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::Session;

const CHILD_ENTRY: &str = "child_process_entry_point";
const WORK_ENV: &str = "KMSHSM_TEST_KMS_WORK";

fn work_dir() -> PathBuf {
    PathBuf::from(std::env::var(WORK_ENV).expect("work directory"))
}

fn read_file(name: &str) -> Vec<u8> {
    std::fs::read(work_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn key_by_label(session: &Session, label: &str) -> ObjectHandle {
    let found = find_by_label(session, label);
    assert_eq!(found.len(), 1, "objects labelled {label}: {found:?}");
    found[0]
}

fn outcome<T>(result: cryptoki::error::Result<T>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(cryptoki::error::Error::Pkcs11(rv, _)) => format!("{rv:?}"),
        Err(e) => format!("{e}"),
    }
}

fn expect_code(code: cryptoki::error::RvError) -> String {
    format!("{code:?}")
}

/// Not a test: the body of the child processes started below.
#[test]
#[ignore = "child-process entry point: this file's tests run it in a child (--ignored --exact)"]
fn child_process_entry_point() {
    let Some(role) = child_role() else { return };
    let ctx = load_module();
    initialize(&ctx).unwrap();
    let session = user_session(&ctx, slot_of_token(&ctx, TOKEN_LABEL));
    let work = Work { dir: work_dir() };
    match role.as_str() {
        // ImportKeyMaterial with the token and wrapped material the parent left in files.
        "import-from-files" => {
            let id = String::from_utf8(read_file("key_id")).unwrap();
            let wrapping: Vec<ObjectHandle> = session
                .find_objects(&[
                    vendor_bytes(CKA_KMSHSM_IMPORT_TARGET, id.as_bytes()),
                    Attribute::Class(cryptoki::object::ObjectClass::PRIVATE_KEY),
                ])
                .unwrap();
            if wrapping.len() != 1 {
                tell_parent(&format!("wrapping-keys {}", wrapping.len()));
            } else {
                let result = unwrap_raw(
                    &session,
                    &mechanism_of(WRAP_RSAES_OAEP_SHA_256),
                    wrapping[0],
                    &read_file("wrapped.bin"),
                    &import_template(&read_file("token.bin"), None),
                );
                tell_parent(&format!("import {}", outcome(result)));
            }
        }
        // What the key looks like and whether it is usable.
        "describe" => {
            for label in ["imported", "disabled", "pending"] {
                let key = key_by_label(&session, label);
                tell_parent(&format!(
                    "{label} state={} origin={} spec={} expiry={}",
                    state(&session, key),
                    origin(&session, key),
                    vendor_value(&session, key, CKA_KMSHSM_KEY_SPEC),
                    vendor_value(&session, key, CKA_KMSHSM_MATERIAL_EXPIRY),
                ));
            }
            let key = key_by_label(&session, "imported");
            tell_parent(&format!(
                "encrypt {}",
                outcome(encrypt_with(&session, Spec::Aes256, key).map(|c| to_hex(&c)))
            ));
            if let Ok(c) = encrypt_with(&session, Spec::Aes256, key) {
                tell_parent(&format!("ciphertext {}", to_hex(&c)));
            }
        }
        // The same-material rule after a restart.
        "reimport" => {
            let key = key_by_label(&session, "imported");
            let other = read_file("other.bin");
            tell_parent(&format!(
                "other {}",
                outcome(import_with(
                    &session,
                    &work,
                    key,
                    WRAP_RSAES_OAEP_SHA_1,
                    &other,
                    None
                ))
            ));
            let same = read_file("material.bin");
            tell_parent(&format!(
                "same {}",
                outcome(import_with(
                    &session,
                    &work,
                    key,
                    WRAP_RSAES_OAEP_SHA_1,
                    &same,
                    None
                ))
            ));
        }
        other => panic!("unknown child role {other}"),
    }
    drop(session);
    ctx.finalize().unwrap();
}

/// Runs a child in `role` with extra environment; returns its protocol lines.
fn run_child(work: &Work, role: &str, clock_offset: Option<i64>) -> Vec<String> {
    let mut command = child_command(CHILD_ENTRY, role);
    command.env(WORK_ENV, &work.dir).stdin(Stdio::null());
    match clock_offset {
        Some(o) => command.env(CLOCK_OFFSET_ENV, o.to_string()),
        None => command.env_remove(CLOCK_OFFSET_ENV),
    };
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child {role} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    child_lines(&stdout)
}

/// Leaves in files what a user holds between two processes: the KeyId, the import token,
/// the material wrapped under the wrapping public key.
fn prepare_import_in_files(env: &TestEnv, work: &Work) -> Material {
    let (ctx, _slot, session) = ready_token(env);
    let key = create_external(&session, Spec::Aes256, "imported");
    let id = key_id(&session, key);
    let material = work.material(Spec::Aes256);
    let params = get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256);
    let wrapped = work.wrap(params.alg, &params.spki, &material.bytes);
    std::fs::write(work.dir.join("key_id"), &id).unwrap();
    std::fs::write(work.dir.join("token.bin"), &params.token).unwrap();
    std::fs::write(work.dir.join("wrapped.bin"), &wrapped).unwrap();
    drop(session);
    ctx.finalize().unwrap();
    material
}

#[test]
fn an_import_token_from_one_process_imports_in_another() {
    let env = TestEnv::new();
    let work = Work::new(&env);
    let material = prepare_import_in_files(&env, &work);
    let lines = run_child(&work, "import-from-files", None);
    assert_eq!(lines, vec!["import ok".to_string()]);

    let ctx = env.load();
    let session = user_session(&ctx, slot_of_token(&ctx, TOKEN_LABEL));
    let key = key_by_label(&session, "imported");
    assert_eq!(state(&session, key), STATE_ENABLED);
    assert_eq!(origin(&session, key), ORIGIN_EXTERNAL);
    assert_works_like(&session, &work, key, &material);
}

#[test]
fn an_import_token_past_24_hours_does_not_import_in_another_process() {
    let env = TestEnv::new();
    let work = Work::new(&env);
    prepare_import_in_files(&env, &work);
    let lines = run_child(&work, "import-from-files", Some(TOKEN_LIFETIME as i64 + 1));
    assert!(
        lines
            == vec![format!(
                "import {}",
                expect_code(CKR_KMSHSM_EXPIRED_IMPORT_TOKEN)
            )]
            || lines == vec!["wrapping-keys 0".to_string()],
        "an expired token in another process: {lines:?}"
    );
    let ctx = env.load();
    let session = user_session(&ctx, slot_of_token(&ctx, TOKEN_LABEL));
    assert_eq!(
        state(&session, key_by_label(&session, "imported")),
        STATE_PENDING_IMPORT
    );
}

/// Sets up an imported key (with an expiry), a disabled one and a pending one, then
/// finalizes.
fn prepare_key_model(env: &TestEnv, work: &Work, expiry: u64) -> (Material, Vec<u8>) {
    let (ctx, _slot, session) = ready_token(env);
    let key = create_external(&session, Spec::Aes256, "imported");
    let material = work.material(Spec::Aes256);
    import_with(
        &session,
        work,
        key,
        WRAP_RSAES_OAEP_SHA_256,
        &material.bytes,
        Some(expiry),
    )
    .expect("import");
    let ciphertext = encrypt_with(&session, Spec::Aes256, key).unwrap();
    let disabled = create_external(&session, Spec::Sm4, "disabled");
    let sm4 = work.material(Spec::Sm4);
    import_with(&session, work, disabled, WRAP_SM2PKE, &sm4.bytes, None).expect("import");
    set_state(&session, disabled, STATE_DISABLED).unwrap();
    create_external(&session, Spec::EcP256, "pending");
    std::fs::write(work.dir.join("material.bin"), &material.bytes).unwrap();
    std::fs::write(work.dir.join("other.bin"), work.random(32)).unwrap();
    drop(session);
    ctx.finalize().unwrap();
    (material, ciphertext)
}

#[test]
fn state_origin_expiry_and_bound_material_survive_a_restart() {
    let env = TestEnv::new();
    let work = Work::new(&env);
    let expiry = system_now() + 5000;
    let (_material, ciphertext) = prepare_key_model(&env, &work, expiry);

    let lines = run_child(&work, "describe", None);
    assert_eq!(
        lines,
        vec![
            format!("imported state=1 origin=2 spec=1 expiry={expiry}"),
            "disabled state=2 origin=2 spec=2 expiry=0".to_string(),
            "pending state=3 origin=2 spec=6 expiry=0".to_string(),
            "encrypt ok".to_string(),
            format!("ciphertext {}", to_hex(&ciphertext)),
        ]
    );
    let lines = run_child(&work, "reimport", None);
    assert_eq!(
        lines,
        vec![
            format!("other {}", expect_code(CKR_KMSHSM_INVALID_KEY_MATERIAL)),
            "same ok".to_string(),
        ],
        "the same-material rule after a restart"
    );
}

#[test]
fn material_expiry_is_judged_after_a_restart() {
    let env = TestEnv::new();
    let work = Work::new(&env);
    let expiry = system_now() + 100;
    prepare_key_model(&env, &work, expiry);
    let lines = run_child(&work, "describe", Some(200));
    assert_eq!(
        lines.last().map(String::as_str),
        Some(format!("encrypt {}", expect_code(CKR_KMSHSM_INCORRECT_KEY_STATE)).as_str()),
        "{lines:?}"
    );
    // The re-import of the same material in yet another process brings the key back.
    let lines = run_child(&work, "reimport", Some(200));
    assert_eq!(
        lines.get(1).map(String::as_str),
        Some("same ok"),
        "{lines:?}"
    );
    let lines = run_child(&work, "describe", Some(200));
    assert_eq!(
        lines[0], "imported state=1 origin=2 spec=1 expiry=0",
        "{lines:?}"
    );
}
