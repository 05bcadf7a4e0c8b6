//! Attacks on the KMS lifecycle and on operations (issue 12), each reproduced as an
//! attacker would run it through the PKCS#11 API, asserting the refusal code *and* that
//! nothing changed: unauthenticated state changes, wrapping a key its owner disabled,
//! operations that outlive their authorisation (key emptied, expired, disabled, user
//! logged out since Init). Run with `cargo nextest run --test attacks_lifecycle`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::kms::*;
use common::*;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki_sys::*;

/// An imported RSA-2048 key and the test's handles on it.
struct Imported {
    private: ObjectHandle,
    id: String,
}

fn imported_rsa(session: &Session, work: &Work) -> Imported {
    let private = create_external(session, Spec::Rsa2048, "victim");
    let material = work.material(Spec::Rsa2048);
    import_with(
        session,
        work,
        private,
        WRAP_RSA_AES_KEY_WRAP_SHA_256,
        &material.bytes,
        None,
    )
    .expect("import RSA material");
    let id = key_id(session, private);
    Imported { private, id }
}

/// The private object of the asymmetric key `id` (the owner must be logged in).
fn private_half(session: &Session, id: &str) -> ObjectHandle {
    let found: Vec<ObjectHandle> = objects_of_key(session, id)
        .into_iter()
        .filter(|h| read_ulong(session, *h, CKA_CLASS) == Some(CKO_PRIVATE_KEY))
        .collect();
    assert_eq!(found.len(), 1, "private objects of key {id}: {found:?}");
    found[0]
}

#[test]
fn an_unauthenticated_caller_cannot_change_the_state_of_a_key_through_its_public_half() {
    let env = TestEnv::new();
    let (ctx, slot, owner) = ready_token(&env);
    let work = Work::new(&env);
    let key = imported_rsa(&owner, &work);
    let before = sign_with(&owner, Spec::Rsa2048, key.private, b"before").unwrap();
    assert!(!before.is_empty());
    owner.logout().unwrap();

    // The attacker: a R/W session, no login; the public half is a public object.
    let attacker = ctx.open_rw_session(slot).unwrap();
    let public = public_half(&attacker, &key.id);
    for wanted in [STATE_PENDING_IMPORT, STATE_PENDING_DELETION, STATE_DISABLED] {
        assert_rv!(
            set_state(&attacker, public, wanted),
            cryptoki::error::RvError::UserNotLoggedIn,
            "state {wanted} from a public session"
        );
        assert_eq!(state(&attacker, public), STATE_ENABLED, "state {wanted}");
    }

    // The owner disables the key; the attacker cannot re-enable it either.
    // (A logout voids private handles: find the private half again.)
    owner.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    set_state(&owner, private_half(&owner, &key.id), STATE_DISABLED).unwrap();
    owner.logout().unwrap();
    assert_rv!(
        set_state(&attacker, public, STATE_ENABLED),
        cryptoki::error::RvError::UserNotLoggedIn
    );
    assert_eq!(state(&attacker, public), STATE_DISABLED);

    // Nothing changed: the material is still there and works once the owner enables it.
    owner.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
    let private = private_half(&owner, &key.id);
    set_state(&owner, private, STATE_ENABLED).unwrap();
    sign_with(&owner, Spec::Rsa2048, private, b"after").expect("material survived");
}

/// An extractable AES key made by the module, and an AES wrapping key.
fn wrap_pair(session: &Session) -> (ObjectHandle, ObjectHandle) {
    let target = session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::ValueLen(32.into()),
                Attribute::Extractable(true),
                Attribute::Sensitive(true),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
            ],
        )
        .unwrap();
    let wrapper = session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(true),
                Attribute::ValueLen(32.into()),
                Attribute::Wrap(true),
                Attribute::Unwrap(true),
            ],
        )
        .unwrap();
    (target, wrapper)
}

#[test]
fn a_disabled_or_deletion_pending_key_cannot_be_exported_by_wrapping() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let (target, wrapper) = wrap_pair(&session);
    // Usable: the wrap works (so the refusals below are about the state alone).
    session
        .wrap_key(&Mechanism::AesKeyWrap, wrapper, target)
        .expect("wrap of an enabled key");
    for wanted in [STATE_DISABLED, STATE_PENDING_DELETION] {
        set_state(&session, target, wanted).unwrap();
        let refused_use = rv(session.encrypt(&Mechanism::AesCbcPad(IV), target, b"x"));
        assert_rv!(
            session.wrap_key(&Mechanism::AesKeyWrap, wrapper, target),
            refused_use,
            "wrap in state {wanted} must be refused as a use is"
        );
        assert_eq!(state(&session, target), wanted);
        set_state(&session, target, STATE_DISABLED).unwrap();
        set_state(&session, target, STATE_ENABLED).unwrap();
    }
}

#[test]
fn a_multi_part_operation_stops_when_the_material_is_deleted_after_init() {
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let key = create_external(&session, Spec::Aes256, "emptied");
    let material = work.material(Spec::Aes256);
    import_with(
        &session,
        &work,
        key,
        WRAP_RSAES_OAEP_SHA_256,
        &material.bytes,
        None,
    )
    .unwrap();

    session
        .encrypt_init(&Mechanism::AesCbcPad(IV), key)
        .unwrap();
    session
        .encrypt_update(&[0u8; 32])
        .expect("update while usable");
    // DeleteKeyMaterial from another session of the same application (login is per
    // application, so it is logged in too).
    let other = ctx.open_rw_session(slot).unwrap();
    set_state(&other, key, STATE_PENDING_IMPORT).unwrap();
    assert_rv!(
        session.encrypt_update(&[0u8; 32]),
        CKR_KMSHSM_INCORRECT_KEY_STATE
    );
    // The refusal ended the operation.
    assert_rv!(
        session.encrypt_final(),
        cryptoki::error::RvError::OperationNotInitialized
    );
    assert_eq!(state(&session, key), STATE_PENDING_IMPORT);
}

#[test]
fn a_multi_part_operation_stops_when_the_key_is_disabled_or_its_material_expires() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let key = create_external(&session, Spec::Aes256, "expiring");
    let material = work.material(Spec::Aes256);
    let expiry = system_now() + 600;
    import_with(
        &session,
        &work,
        key,
        WRAP_RSAES_OAEP_SHA_256,
        &material.bytes,
        Some(expiry),
    )
    .unwrap();

    // Disabled between Init and Final.
    session
        .decrypt_init(&Mechanism::AesCbcPad(IV), key)
        .unwrap();
    set_state(&session, key, STATE_DISABLED).unwrap();
    let code = rv(session.decrypt_final());
    assert_ne!(code, cryptoki::error::RvError::OperationNotInitialized);
    assert_rv!(
        session.decrypt_final(),
        cryptoki::error::RvError::OperationNotInitialized,
        "the refusal ends the operation"
    );
    set_state(&session, key, STATE_ENABLED).unwrap();

    // The material expires between Init and Update (the module's clock moves on).
    session
        .encrypt_init(&Mechanism::AesCbcPad(IV), key)
        .unwrap();
    session
        .encrypt_update(&[1u8; 16])
        .expect("update before expiry");
    set_clock_offset(1200);
    let refused = rv(session.encrypt_update(&[1u8; 16]));
    set_clock_offset(0);
    assert_eq!(refused, CKR_KMSHSM_INCORRECT_KEY_STATE);
    assert_eq!(
        state(&session, key),
        STATE_PENDING_IMPORT,
        "expired material is wiped"
    );
}

#[test]
fn a_signing_operation_stops_when_the_user_logs_out_after_init() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let (_public, private) = session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[Attribute::ModulusBits(2048.into()), Attribute::Verify(true)],
            &[Attribute::Private(true), Attribute::Sign(true)],
        )
        .unwrap();
    session
        .sign_init(&Mechanism::Sha256RsaPkcs, private)
        .unwrap();
    session.sign_update(b"part one").unwrap();
    session.logout().unwrap();
    assert_rv!(
        session.sign_update(b"part two"),
        cryptoki::error::RvError::UserNotLoggedIn
    );
    assert_rv!(
        session.sign_final(),
        cryptoki::error::RvError::OperationNotInitialized
    );
}

#[test]
fn the_public_half_of_a_key_pair_is_guarded_by_its_private_half() {
    // A key pair made by the owner: destroying or changing its public half needs the
    // owner's login, since the private half is private.
    let env = TestEnv::new();
    let (ctx, slot, owner) = ready_token(&env);
    let (public, _private) = owner
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::Label(b"pair".to_vec()),
                Attribute::EcParams(OID_P256.to_vec()),
                Attribute::Verify(true),
            ],
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sign(true),
            ],
        )
        .unwrap();
    let label_before = attribute_bytes(&owner, public, cryptoki::object::AttributeType::Label);
    owner.logout().unwrap();
    let attacker = ctx.open_rw_session(slot).unwrap();
    assert_rv!(
        attacker.update_attributes(public, &[Attribute::Label(b"mine".to_vec())]),
        cryptoki::error::RvError::UserNotLoggedIn
    );
    assert_rv!(
        attacker.destroy_object(public),
        cryptoki::error::RvError::UserNotLoggedIn
    );
    assert_eq!(
        attribute_bytes(&attacker, public, cryptoki::object::AttributeType::Label),
        label_before
    );
    // An ordinary public object with no private sibling stays the caller's to change.
    let data = attacker
        .create_object(&data_template("note", b"x", false))
        .unwrap();
    attacker
        .update_attributes(data, &[Attribute::Label(b"renamed".to_vec())])
        .expect("plain public session object");
}
