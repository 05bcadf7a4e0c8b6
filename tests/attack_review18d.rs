//! An attacker's review (branch attack18d) of review 18c's fixes (81951ae): expired
//! material of a key pending deletion is wiped by the sweep, the key staying
//! PendingDeletion (`kms::lifecycle::transition`, `kms::decide::expire`,
//! `object::index::deadline_of`, `token/kms/mod.rs` `sweep`), and a state change is
//! decided at the time of its decision, expired material counting as gone
//! (`kms::decide::change_state(.., now)`). Each test reproduces one defect found by
//! reading the code, asserts what the project's documents promise, and fails against
//! the module as it was reviewed (26e515f). Its doc comment says what is wrong.
//!
//! Run with `cargo nextest run --test attack_review18d` (after `cargo build --lib`).

#![allow(clippy::unwrap_used, unreachable_pub, dead_code)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::kms::*;
use common::*;
use cryptoki::object::Attribute;
use cryptoki_sys::CKA_TOKEN;

/// Defect: CancelKeyDeletion of an EXTERNAL key pair whose private half was destroyed is
/// refused for good once the material's expiry has passed. `change_state` now first asks
/// `decide::expire(facts, holds_material, now)`, and refuses when it says the expiry
/// would change the record. For a key whose private half is gone, the token hands the
/// rules `holds_material = true` (`token/kms/key_records.rs` `current_of`: "A key whose
/// private half was destroyed is its public half ... judged as for a key with
/// material"), so `expire` on a PendingDeletion record with a past expiry always answers
/// `Some(PendingDeletion)`. But the sweep never wipes anything there: `deadline_of` and
/// the sweep's own test use `holds_secret_material()`, false for a public object, so
/// the key is never due and its record never changes. Every CancelKeyDeletion is
/// refused with `CKR_KMSHSM_INCORRECT_KEY_STATE` ("PendingDeletion": the very state
/// whose cancellation is asked), however often it is asked and however many sweeps run;
/// before 81951ae the same request succeeded.
///
/// Expected (docs/key-model.md, States: "PendingDeletion ── cancel ──► Disabled
/// (PendingImport when the key holds no material)"; Material expiry: "A key pending
/// deletion loses expiring material too and stays PendingDeletion (cancelled, it is
/// PendingImport)"; "A state change decided ... once the material has expired and
/// before a sweep wiped it is refused ...: asked again, it is decided on the wiped
/// record"): the cancellation, asked again after a sweep, is decided and accepted (the
/// key leaves PendingDeletion). Actual: refused every time, the key stays
/// PendingDeletion for good.
#[test]
fn a_cancelled_deletion_of_a_public_only_key_with_expired_material_is_refused_forever() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let key = create_external(&session, Spec::EcP256, "public-only-expired");
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
    .expect("ImportKeyMaterial of an EC P-256 key, expiring 100 s ahead");
    let (private, public) = halves(&session, &id);
    set_state(&session, private, STATE_PENDING_DELETION).expect("ScheduleKeyDeletion");
    session
        .destroy_object(private)
        .expect("C_DestroyObject of the private half");
    assert_eq!(state(&session, public), STATE_PENDING_DELETION);

    // The expiry passes; the logged-in application's calls sweep, more than once.
    set_clock_offset(200);
    for _ in 0..3 {
        let _ = session.find_objects(&[]).expect("C_FindObjects (sweeps)");
    }
    let first = set_state(&session, public, STATE_DISABLED).map_err(|e| format!("{e}"));
    let _ = session.find_objects(&[]).expect("C_FindObjects (sweeps)");
    let again = set_state(&session, public, STATE_DISABLED).map_err(|e| format!("{e}"));
    let after = state(&session, public);
    set_clock_offset(0);
    assert!(
        first.is_ok() || again.is_ok(),
        "CancelKeyDeletion of the public-only key after its material expired: first \
         {first:?}, asked again after a sweep {again:?}; the key is still in state \
         {after} (PendingDeletion is {STATE_PENDING_DELETION})"
    );
    assert_ne!(
        after, STATE_PENDING_DELETION,
        "the deletion stays scheduled"
    );
}

/// Defect: the sweep cancels the scheduled deletion of a *session* key whose material
/// expires, and splits a session key pair. Review 18c's fix made a key pending deletion
/// that holds material "live" in `token/kms/mod.rs` `sweep`, but the sweep's branch for
/// session objects (not decided through `KeyModel::expire`) still writes the one state
/// it always wrote, `KEY_STATE = PendingImport`, onto every live object: the secret
/// object of a session key PendingDeletion becomes PendingImport, no CancelKeyDeletion
/// having been asked. Once PendingImport, the same material imported again makes it
/// Enabled and usable: a key whose deletion was scheduled is back in use without its
/// deletion ever being cancelled (an import into a PendingDeletion key is refused).
///
/// Expected (docs/key-model.md, Material expiry: "A key pending deletion loses expiring
/// material too and stays PendingDeletion (cancelled, it is PendingImport)"; States:
/// "PendingDeletion ── cancel ──►" is its only way out; docs/key-model.md: "The same
/// holds for material expiry" for session keys): after the expiry the session key is
/// still PendingDeletion, without its material, and an import is refused. Actual: it is
/// PendingImport.
#[test]
fn the_sweep_cancels_the_scheduled_deletion_of_a_session_key() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let mut template = external_template(Spec::Aes256, "session-pending-deletion");
    template.retain(|a| !matches!(a, Attribute::Token(_)));
    template.push(Attribute::Token(false));
    let key = session
        .create_object(&template)
        .expect("C_CreateObject of an EXTERNAL session key");
    let material = work.material(Spec::Aes256);
    import_with(
        &session,
        &work,
        key,
        WRAP_RSAES_OAEP_SHA_256,
        &material.bytes,
        Some(system_now() + 100),
    )
    .expect("ImportKeyMaterial with an expiry 100 s ahead");
    set_state(&session, key, STATE_PENDING_DELETION).expect("ScheduleKeyDeletion");
    assert_eq!(state(&session, key), STATE_PENDING_DELETION);

    set_clock_offset(200);
    let _ = session.find_objects(&[]).expect("C_FindObjects (sweeps)");
    let after = state(&session, key);
    // What that state allows: import parameters for the same material again (a key
    // pending deletion takes none; one PendingImport does).
    let reimported = try_get_params(&session, &key_id(&session, key), WRAP_RSAES_OAEP_SHA_256)
        .map(|_| ())
        .map_err(|e| format!("{e}"));
    let then = state(&session, key);
    set_clock_offset(0);
    assert_eq!(
        after, STATE_PENDING_DELETION,
        "the session key whose deletion was scheduled is in state {after} after its \
         material expired (PendingDeletion {STATE_PENDING_DELETION}, PendingImport \
         {STATE_PENDING_IMPORT}); the same material imported again then: {reimported:?}, \
         state {then} (Enabled {STATE_ENABLED})"
    );
    assert!(
        reimported.is_err(),
        "import parameters for a key pending deletion are issued"
    );
}

/// Defect: the two halves of a *session* key pair pending deletion end in different
/// states when its material expires. The sweep's session branch (`token/kms/mod.rs`
/// `sweep`) takes the private object as live (it holds material) and writes it
/// PendingImport, while the public object is not live (`holds_secret_material()` is
/// false for a public key) and stays PendingDeletion.
///
/// Expected (docs/key-model.md: a decision is "written back onto every object of the
/// key"; a key pending deletion losing expired material "stays PendingDeletion"): both
/// halves PendingDeletion. Actual: private PendingImport, public PendingDeletion.
#[test]
fn a_session_key_pair_pending_deletion_is_split_by_the_expiry() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let mut template = external_template(Spec::EcP256, "session-pair-pending-deletion");
    template.retain(|a| !matches!(a, Attribute::Token(_)));
    template.push(Attribute::Token(false));
    let key = session
        .create_object(&template)
        .expect("C_CreateObject of an EXTERNAL session key pair");
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
    .expect("ImportKeyMaterial with an expiry 100 s ahead");
    let (private, public) = halves(&session, &id);
    assert_eq!(
        read_bool(&session, public, CKA_TOKEN),
        Some(false),
        "the public half made at the import is a session object too"
    );
    set_state(&session, private, STATE_PENDING_DELETION).expect("ScheduleKeyDeletion");
    assert_eq!(state(&session, public), STATE_PENDING_DELETION);

    set_clock_offset(200);
    let _ = session.find_objects(&[]).expect("C_FindObjects (sweeps)");
    let states = (state(&session, private), state(&session, public));
    set_clock_offset(0);
    assert_eq!(
        states,
        (STATE_PENDING_DELETION, STATE_PENDING_DELETION),
        "(private, public) states after the expiry of a session pair pending deletion \
         (PendingDeletion {STATE_PENDING_DELETION}, PendingImport {STATE_PENDING_IMPORT})"
    );
}
