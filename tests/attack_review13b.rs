//! A second attacker's review of the fixes a8dd673, 0f9be6a and 94af943, and of the KMS
//! model across processes: each test reproduces one defect found by reading the code,
//! asserts the answer the specification (or docs/security.md, docs/key-model.md)
//! requires, and fails against the module as it was reviewed (94af943). Its doc comment
//! says what is wrong. Run with `cargo nextest run --test attack_review13b`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::kms::{key_id, public_half, set_state, STATE_DISABLED, STATE_ENABLED};
use common::*;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;

/// The module's function list, for the calls `cryptoki` 0.12 cannot express (a NULL
/// mechanism, a short output buffer).
struct Functions {
    _library: cryptoki_sys::Pkcs11,
    f: CK_FUNCTION_LIST,
}

impl Functions {
    fn load() -> Functions {
        let path = module_path();
        // SAFETY: loading the module under test (already loaded by cryptoki: the same
        // library, so the same process state).
        let library = unsafe { cryptoki_sys::Pkcs11::new(&path) }.expect("load module");
        let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
        // SAFETY: one output pointer.
        assert_eq!(unsafe { library.C_GetFunctionList(&mut list) }, CKR_OK);
        // SAFETY: the module keeps its list alive while loaded; it is copied.
        let f = unsafe { *list };
        Functions {
            _library: library,
            f,
        }
    }

    /// `C_EncryptInit` with `mechanism` (`None`: a NULL `pMechanism`).
    fn encrypt_init(
        &self,
        session: &Session,
        mechanism: Option<CK_MECHANISM_TYPE>,
        key: CK_OBJECT_HANDLE,
    ) -> CK_RV {
        let mut mech = mechanism.map(|m| CK_MECHANISM {
            mechanism: m,
            pParameter: std::ptr::null_mut(),
            ulParameterLen: 0,
        });
        let ptr = mech
            .as_mut()
            .map_or(std::ptr::null_mut(), |m| m as *mut CK_MECHANISM);
        // SAFETY: the mechanism (if any) is alive for the call.
        unsafe { self.f.C_EncryptInit.unwrap()(session.handle(), ptr, key) }
    }

    /// `C_EncryptUpdate` with an output buffer of `capacity` bytes.
    fn encrypt_update(&self, session: &Session, input: &[u8], capacity: usize) -> CK_RV {
        let mut out = vec![0u8; capacity.max(1)];
        let mut len = capacity as CK_ULONG;
        // SAFETY: input and output are alive and as long as the lengths say.
        unsafe {
            self.f.C_EncryptUpdate.unwrap()(
                session.handle(),
                input.as_ptr() as *mut _,
                input.len() as CK_ULONG,
                out.as_mut_ptr(),
                &mut len,
            )
        }
    }
}

// ---------------------------------------------------------------------------------------
// Operations: cancelling with a NULL mechanism (PKCS#11 3.0)
// ---------------------------------------------------------------------------------------

/// Defect: the module says it implements PKCS#11 3.0 (`C_GetInfo`: cryptokiVersion 3.0),
/// but `C_EncryptInit` with a NULL `pMechanism` is `CKR_ARGUMENTS_BAD`
/// (`ffi::raw::read_mechanism`, "NULL pMechanism"), and the active operation stays.
///
/// PKCS#11 3.0 §5.9 (`C_EncryptInit`; the same in §5.10-§5.13 for decryption, digests,
/// signatures and verification): "C_EncryptInit can be called with pMechanism set to
/// NULL_PTR to terminate an active encryption operation. If an active operation
/// operation cannot be cancelled, CKR_OPERATION_CANCEL_FAILED must be returned."
/// Since 94af943 an operation whose output waits for a retry of the same call refuses
/// every other step with `CKR_OPERATION_ACTIVE`; an application that gives up on it (the
/// output it no longer wants) has no way but closing the session to use the session's
/// encryption again. Expected: `CKR_OK`, and a new `C_EncryptInit` succeeds. Actual:
/// `CKR_ARGUMENTS_BAD`, and `C_EncryptInit` stays `CKR_OPERATION_ACTIVE`.
#[test]
fn encrypt_init_with_a_null_mechanism_cancels_the_operation() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let f = Functions::load();
    let key = session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(32.into()),
                Attribute::Encrypt(true),
            ],
        )
        .unwrap();
    assert_eq!(
        f.encrypt_init(&session, Some(CKM_AES_ECB), key.handle()),
        CKR_OK
    );
    // Output kept for a retry of C_EncryptUpdate, which the application abandons.
    assert_eq!(
        f.encrypt_update(&session, &[0u8; 64], 16),
        CKR_BUFFER_TOO_SMALL
    );
    let cancel = f.encrypt_init(&session, None, 0);
    let again = f.encrypt_init(&session, Some(CKM_AES_ECB), key.handle());
    assert!(
        cancel == CKR_OK && again == CKR_OK,
        "C_EncryptInit(NULL_PTR) answered {cancel:#x} (expected CKR_OK, the operation \
         terminated: PKCS#11 3.0 §5.9); a new C_EncryptInit then answered {again:#x}"
    );
    // With no operation active there is nothing to end, and no mechanism to start one.
    assert_eq!(
        f.encrypt_init(&session, None, 0),
        CKR_OK,
        "the new one ended"
    );
    assert_eq!(f.encrypt_init(&session, None, 0), CKR_ARGUMENTS_BAD);
    // The other kinds end the same way (a signature here).
    session
        .sign_init(&Mechanism::Sha256Hmac, hmac_key(&session))
        .unwrap();
    session.sign_update(b"part").unwrap();
    let restarted = session.sign_init(&Mechanism::Sha256Hmac, hmac_key(&session));
    assert!(restarted.is_err(), "a second C_SignInit while one runs");
    // SAFETY: a NULL mechanism, which the module must take as "end the operation".
    let rv = unsafe { f.f.C_SignInit.unwrap()(session.handle(), std::ptr::null_mut(), 0) };
    assert_eq!(rv, CKR_OK, "C_SignInit(NULL_PTR)");
    session
        .sign_init(&Mechanism::Sha256Hmac, hmac_key(&session))
        .expect("a new C_SignInit after the cancel");
}

/// A session HMAC key for signing.
fn hmac_key(session: &Session) -> ObjectHandle {
    session
        .generate_key(
            &Mechanism::GenericSecretKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(32.into()),
                Attribute::Sign(true),
            ],
        )
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// Two processes: a key pair whose private half is a session object
// ---------------------------------------------------------------------------------------

/// The entry point of the child processes of this file's multi-process tests.
const CHILD_ENTRY: &str = "child_process_entry_point";

/// Not a test: one child process (its role says what it does).
#[test]
#[ignore = "child-process entry point: this file's tests run it in a child (--ignored --exact)"]
fn child_process_entry_point() {
    let Some(role) = child_role() else { return };
    let ctx = load_module();
    initialize(&ctx).unwrap();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let session = user_session(&ctx, slot);
    match role.as_str() {
        "disable" => {
            let id = std::env::var("KMSHSM_REVIEW_KEY_ID").unwrap();
            let found = common::kms::objects_of_key(&session, &id);
            let answer = match found.as_slice() {
                [] => "not-found".to_string(),
                [one, ..] => match set_state(&session, *one, STATE_DISABLED) {
                    Ok(()) => "ok".to_string(),
                    Err(e) => format!("refused {e}"),
                },
            };
            tell_parent(&format!("disable {answer} objects={}", found.len()));
        }
        other => panic!("unknown role {other}"),
    }
    tell_parent("done");
}

/// Runs a child of `role` with `envs` and returns its protocol lines.
fn run_child(role: &str, envs: &[(&str, &str)]) -> Vec<String> {
    let mut command = child_command(CHILD_ENTRY, role);
    for (k, v) in envs {
        command.env(k, v);
    }
    let output = command.output().expect("spawn child");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "child {role} failed ({}):\n{text}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    child_lines(&text)
}

/// Defect: a KMS key pair whose private half is a session object and whose public half
/// is a token object is decided twice, with different outcomes. docs/key-model.md
/// says "a key whose private or secret object is a session object exists in one process
/// only: its decisions are serialised by a per-token mutex instead", and that
/// Enable/DisableKey is "applied to every object of the key at once". But its public
/// half is a token object, which every other process sees with the key's KeyId and
/// state; there `key_objects` finds the public half alone, `main_of` takes it as the
/// key's main object, and the state change is decided on it, committed, and audited as
/// `DisableKey` of the whole key. The process holding the private half never hears of
/// it: its session object keeps its own state, Enabled.
///
/// The attack (a busy multi-process user, or an operator's tool): the owner disables
/// key K from a second process, gets `CKR_OK` and a `DisableKey` event in the trail, and
/// the application process keeps signing with K. Expected (docs/key-model.md "Exactly
/// once", docs/security.md "KMS state changes"): either the other process's DisableKey
/// is refused (it cannot see the key's private half), or it reaches every object of
/// the key and the signature is refused with `CKR_KMSHSM_INCORRECT_KEY_STATE`. Actual:
/// the DisableKey succeeds and the private half still signs.
#[test]
fn a_disable_from_another_process_reaches_a_session_private_half() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let (public, private) = session
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::Verify(true),
                Attribute::EcParams(common::kms::OID_P256.to_vec()),
            ],
            &[
                Attribute::Token(false),
                Attribute::Private(true),
                Attribute::Sign(true),
            ],
        )
        .unwrap();
    let id = key_id(&session, private);
    assert_eq!(key_id(&session, public), id);
    assert_eq!(public_half(&session, &id), public);
    session
        .sign(&Mechanism::Ecdsa, private, &[0x5A; 32])
        .unwrap();
    let lines = run_child("disable", &[("KMSHSM_REVIEW_KEY_ID", &id)]);
    let answer = lines
        .iter()
        .find(|l| l.starts_with("disable "))
        .cloned()
        .unwrap_or_default();
    if !answer.starts_with("disable ok") {
        // Refused in the other process: nothing was decided there. Sound.
        return;
    }
    let signed = session.sign(&Mechanism::Ecdsa, private, &[0x5A; 32]);
    let public_state = common::kms::state(&session, public);
    let private_state = common::kms::state(&session, private);
    assert!(
        signed.is_err(),
        "another process's DisableKey of key {id} answered CKR_OK ({answer}), yet the \
         private half still signs here (state: private {private_state}, public \
         {public_state}; {STATE_DISABLED} is Disabled, {STATE_ENABLED} Enabled)"
    );
}

// ---------------------------------------------------------------------------------------
// C_DeriveKey: CKM_HKDF_DATA and a private salt key
// ---------------------------------------------------------------------------------------

/// Defect: the data object `CKM_HKDF_DATA` makes is private by default only when the
/// *base* key is private (`token/derive.rs`, `data_template`: `base.is_private()`); the
/// salt key, whose value the derivation reads as much as the base key's (a8dd673 applies
/// its `CKA_DERIVE_TEMPLATE` for that reason), is not looked at. The rule the code states
/// is "what a private key yields stays behind the login by default": with a public base
/// key and a private, sensitive salt key, the output (here an extract-only HKDF, i.e.
/// HMAC under the private key of data the caller chose) lands in a public data object,
/// which any session reads after the user logged out.
///
/// PKCS#11 3.0 §4.4 (`CKA_PRIVATE`: private objects are seen only by the logged-in
/// user) and docs/security.md ("a key named inside a parameter is authorised for
/// derivation exactly as the base key"). Expected: the data object is private (or the
/// derivation made without the template saying otherwise is refused), so a session that
/// is not logged in does not see it. Actual: `CKA_PRIVATE` false, and the object and its
/// value are visible after `C_Logout`.
#[test]
fn hkdf_data_with_a_private_salt_key_stays_behind_the_login() {
    use cryptoki::mechanism::hkdf::{HkdfParams, HkdfSalt};
    use cryptoki::mechanism::MechanismType;
    use cryptoki::object::{AttributeType, KeyType, ObjectClass};
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    let base = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Private(false),
            Attribute::Derive(true),
            Attribute::Value(vec![0x41; 32]),
        ])
        .unwrap();
    let salt = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Derive(true),
            Attribute::Value(vec![0x53; 32]),
        ])
        .unwrap();
    let params = HkdfParams::new(MechanismType::SHA256, Some(HkdfSalt::Key(salt)), None);
    let data = session
        .derive_key(
            &Mechanism::HkdfData(params),
            base,
            &[Attribute::Token(false), Attribute::ValueLen(32.into())],
        )
        .expect("CKM_HKDF_DATA with a salt key");
    let private = session
        .get_attributes(data, &[AttributeType::Private])
        .unwrap();
    session.logout().unwrap();
    let anonymous = ctx.open_ro_session(slot).unwrap();
    let seen = anonymous.get_attributes(data, &[AttributeType::Value]);
    let value_seen = matches!(
        seen.as_deref(),
        Ok([Attribute::Value(v)]) if v.len() == 32
    );
    assert!(
        !value_seen,
        "the HKDF output under a private, sensitive salt key is a public data object \
         ({private:?}): a session that is not logged in reads its 32-byte value"
    );
}

// ---------------------------------------------------------------------------------------
// The audit trail: a caller's bytes as an event's KeyId
// ---------------------------------------------------------------------------------------

/// Defect: a refused GetParametersForImport is recorded with the caller's
/// `CKA_KMSHSM_IMPORT_TARGET` bytes as the event's KeyId, taken as they are
/// (`token/kms/import.rs`, `generate_import_parameters`: the raw template value, even when
/// it is not a KeyId at all, which is why it was refused), and `kmshsm audit list` prints
/// the KeyId unescaped (`bin/kmshsm/audit.rs`, `text_line`). A target of a newline and a
/// line of the list's own layout thus shows, in the trail's listing, an event that never
/// happened (here: a successful `EnableKey` of a real key) beside the real ones, and
/// `audit verify` says the trail is intact.
///
/// docs/audit.md: the trail records "who disabled a key, every refused import", is
/// "tamper-evident", and `audit list` gives "one line per event"; KeyIds are "lower-case
/// UUID text, 36 bytes; set by the module" (docs/key-model.md). Expected: one line per
/// event (a KeyId that is not one is refused before it is recorded, or recorded
/// escaped). Actual: the listing has more lines than the trail has events, one of them
/// a forged `EnableKey ... Success`.
#[test]
fn a_refused_import_target_cannot_forge_a_line_of_the_audit_listing() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let victim = common::kms::create_external(&session, common::kms::Spec::Aes256, "victim");
    let victim_id = key_id(&session, victim);
    let forged = format!(
        "x\n{:>6}  2026-12-06T11:00:00Z  {:<24} {:<40} Success",
        99, "EnableKey", victim_id
    );
    let refused =
        common::kms::try_get_params(&session, &forged, common::kms::WRAP_RSAES_OAEP_SHA_256);
    assert!(refused.is_err(), "GetParametersForImport of a non-KeyId");
    let json = common::audit::events(&[]);
    let text = common::audit::kmshsm(&["audit", "list"]);
    assert!(text.ok, "audit list: {}", text.stderr);
    let lines: Vec<&str> = text.stdout.lines().collect();
    let forged_lines: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("EnableKey") && l.contains("Success"))
        .collect();
    assert!(
        lines.len() == json.len() && forged_lines.is_empty(),
        "`kmshsm audit list` shows {} lines for {} events; lines claiming a successful \
         EnableKey that never happened: {forged_lines:?}",
        lines.len(),
        json.len()
    );
}
