//! A seventh attacker's review (2026-12-06), of 7ad2055: the expiry sweep, the KMS
//! vendor attributes as a session that is not logged in reads them, and the KMS rules
//! across processes. Each test reproduces one defect found by reading the code, asserts
//! what PKCS#11 3.0 or the project's documents promise, and fails against the module as
//! it was reviewed. Its doc comment says what is wrong.
//! Run with `cargo nextest run --test attack_review13g` (after `cargo build --lib`).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::kms::*;
use common::*;
use cryptoki_sys::*;

/// Defect: the sweep (`token/kms/mod.rs` `Token::sweep`) wipes expired material of a
/// token key only when the application is logged in ("a process that is not logged in
/// leaves expired material to the next one that is"). Until then every read of the key
/// answers from the unwiped record: a session that is not logged in reads the public
/// half of an EXTERNAL key pair whose material expired as `KMSHSM_STATE_ENABLED` with
/// its old expiry, and a `C_FindObjects` for Enabled keys lists it, while every use of
/// the key is refused with `CKR_KMSHSM_INCORRECT_KEY_STATE` ("PendingImport").
///
/// Expected (docs/key-model.md, "The rules, each enforced": "When the material
/// expires ... it is wiped and the key goes back to PendingImport"; DescribeKey is
/// `C_GetAttributeValue` of the vendor attributes; PKCS#11 3.0 §5.7.5 C_GetAttributeValue
/// answers the object's attribute values): once the clock passed the expiry, the state
/// every session reads is PendingImport, the same answer the key's use gives. Actual:
/// Enabled, for as long as no application logs in.
#[test]
fn a_session_not_logged_in_reads_an_expired_key_as_enabled() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let mut template = external_template(Spec::EcP256, "expiring-pair");
    template.push(vendor_ulong(CKA_KMSHSM_KEY_USAGE, USAGE_SIGN_VERIFY));
    let key = session.create_object(&template).unwrap();
    let id = key_id(&session, key);
    let material = work.material(Spec::EcP256);
    import_with(
        &session,
        &work,
        key,
        WRAP_RSA_AES_KEY_WRAP_SHA_256,
        &material.bytes,
        Some(system_now() + 100),
    )
    .expect("import");
    let public = public_half(&session, &id);
    assert_eq!(state(&session, public), STATE_ENABLED);
    assert_eq!(
        read_bool(&session, public, CKA_PRIVATE),
        Some(false),
        "the public half is a public object"
    );
    session.logout().unwrap();

    set_clock_offset(200);
    // The use of the key, through its public half, already says PendingImport...
    let verify = session.verify(
        &cryptoki::mechanism::Mechanism::Ecdsa,
        public,
        &[0u8; 32],
        &[0u8; 64],
    );
    assert_rv!(verify, CKR_KMSHSM_INCORRECT_KEY_STATE);
    // ...and so must the key's description.
    let described = state(&session, public);
    let listed_enabled = session
        .find_objects(&[
            vendor_bytes(CKA_KMSHSM_KEY_ID, id.as_bytes()),
            vendor_ulong(CKA_KMSHSM_KEY_STATE, STATE_ENABLED),
        ])
        .unwrap();
    set_clock_offset(0);
    assert_eq!(
        described, STATE_PENDING_IMPORT,
        "a key whose material expired is described as state {described} to a session not logged in"
    );
    assert!(
        listed_enabled.is_empty(),
        "a key whose material expired is listed as Enabled"
    );
}
