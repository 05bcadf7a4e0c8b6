//! An attacker's review (2026-12-06, branch attack14b) of c770567: the KMS lifecycle's
//! state machine, hostile input at the C ABI, races between processes, and the `kmshsm`
//! command line. Each test reproduces one defect found by reading the code, asserts what
//! PKCS#11 3.0 or the project's documents promise, and fails against the module as it
//! was reviewed. Its doc comment says what is wrong.
//! Run with `cargo nextest run --test attack_review14b` (after `cargo build --lib`).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::kms::*;
use common::*;
use cryptoki::mechanism::Mechanism;

/// Defect: ScheduleKeyDeletion followed by CancelKeyDeletion brings a key whose material
/// was deleted (or never imported) back to Disabled, and EnableKey then makes it
/// Enabled, without its material ever coming back. `kms/lifecycle.rs` `transition`
/// allows `(ScheduleDeletion, PendingImport) → PendingDeletion` and
/// `(CancelDeletion, PendingDeletion) → Disabled` whatever the key held before, and
/// `kms/decide.rs` `change_state` only looks at `holds_material` for DeleteMaterial.
/// The public half of an EXTERNAL key pair keeps its public key through
/// DeleteKeyMaterial, so once Enabled it verifies (and an ENCRYPT/DECRYPT pair's public
/// half encrypts) again: DeleteKeyMaterial is undone by two state changes.
///
/// Expected (docs/key-model.md, "The rules, each enforced": "When the material expires,
/// or is deleted, it is wiped and the key goes back to PendingImport ... importing the
/// same material again brings it back"; `kms/lifecycle.rs`: "after it expires or is
/// deleted the key is unusable (PendingImport) until the same material returns"; the
/// Alibaba and Huawei key-state tables refuse EnableKey in PendingImport, and the
/// Huawei guide: "After the deletion, the key will become unavailable ... To decrypt the
/// data, re-import the key material"): a key without material never reads as Enabled,
/// and its public half verifies nothing until the material is imported again (a
/// cancelled deletion returns such a key to PendingImport). Actual: the key reads
/// Enabled and the public half verifies the signature made before the deletion.
#[test]
fn a_cancelled_deletion_enables_a_key_whose_material_was_deleted() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let mut template = external_template(Spec::EcP256, "deleted-material");
    template.push(vendor_ulong(CKA_KMSHSM_KEY_USAGE, USAGE_SIGN_VERIFY));
    let key = session.create_object(&template).unwrap();
    let material = work.material(Spec::EcP256);
    import_with(
        &session,
        &work,
        key,
        WRAP_RSA_AES_KEY_WRAP_SHA_256,
        &material.bytes,
        None,
    )
    .expect("import");
    let public = public_half(&session, &key_id(&session, key));
    let message = [7u8; 32];
    let signature = session.sign(&Mechanism::Ecdsa, key, &message).unwrap();
    session
        .verify(&Mechanism::Ecdsa, public, &message, &signature)
        .expect("the key verifies while it holds its material");

    // DeleteKeyMaterial: the key is unusable until the same material returns.
    set_state(&session, key, STATE_PENDING_IMPORT).expect("DeleteKeyMaterial");
    assert_rv!(
        session.verify(&Mechanism::Ecdsa, public, &message, &signature),
        CKR_KMSHSM_INCORRECT_KEY_STATE
    );

    // ScheduleKeyDeletion, CancelKeyDeletion, EnableKey: no material was imported.
    set_state(&session, key, STATE_PENDING_DELETION).expect("ScheduleKeyDeletion");
    set_state(&session, key, STATE_DISABLED).expect("CancelKeyDeletion");
    let enabled = set_state(&session, key, STATE_ENABLED);
    let described = state(&session, key);
    let verified = session.verify(&Mechanism::Ecdsa, public, &message, &signature);
    assert_ne!(
        described,
        STATE_ENABLED,
        "a key whose material was deleted reads as Enabled (EnableKey answered {enabled:?}; \
         its public half's verification {:?})",
        verified.as_ref().map(|_| "succeeded")
    );
    assert_rv!(verified, CKR_KMSHSM_INCORRECT_KEY_STATE);
}
