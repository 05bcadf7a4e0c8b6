//! A second attacker's review of the fixes a8dd673, 0f9be6a and 94af943, and of the KMS
//! model across processes: each test reproduces one defect found by reading the code,
//! asserts the answer the specification (or docs/security.md, docs/key-model.md)
//! requires, and fails against the module as it was reviewed (94af943). Its doc comment
//! says what is wrong. Its test of a DisableKey from another process missing a key pair's
//! session half is replaced by `attack_review13c.rs`: such split pairs are no longer made.
//! Run with `cargo nextest run --test attack_review13b`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::kms::key_id;
use common::raw::Raw;
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;

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
    let f = Raw::load();
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
        f.encrypt_init(session.handle(), Some(CKM_AES_ECB), key.handle()),
        Ok(())
    );
    // Output kept for a retry of C_EncryptUpdate, which the application abandons.
    assert_eq!(
        f.encrypt_update(session.handle(), &[0u8; 64], 16).0,
        Err(RvError::BufferTooSmall)
    );
    let cancel = f.encrypt_init(session.handle(), None, 0);
    let again = f.encrypt_init(session.handle(), Some(CKM_AES_ECB), key.handle());
    assert!(
        cancel.is_ok() && again.is_ok(),
        "C_EncryptInit(NULL_PTR) answered {cancel:?} (expected CKR_OK, the operation \
         terminated: PKCS#11 3.0 §5.9); a new C_EncryptInit then answered {again:?}"
    );
    // With no operation active there is nothing to end, and no mechanism to start one.
    assert_eq!(
        f.encrypt_init(session.handle(), None, 0),
        Ok(()),
        "the new one ended"
    );
    assert_eq!(
        f.encrypt_init(session.handle(), None, 0),
        Err(RvError::ArgumentsBad)
    );
    // The other kinds end the same way (a signature here).
    session
        .sign_init(&Mechanism::Sha256Hmac, hmac_key(&session))
        .unwrap();
    session.sign_update(b"part").unwrap();
    let restarted = session.sign_init(&Mechanism::Sha256Hmac, hmac_key(&session));
    assert!(restarted.is_err(), "a second C_SignInit while one runs");
    assert_eq!(
        f.sign_init(session.handle(), None, 0),
        Ok(()),
        "C_SignInit(NULL_PTR)"
    );
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
