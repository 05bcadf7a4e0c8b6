//! "A key bound to nothing" (issue 13, docs/key-model.md): a key made from plaintext
//! while logged out records no fingerprint (none can be made without the master key).
//! It is bound at the first decision that needs the binding once the master key is at
//! hand — the first import, or DeleteKeyMaterial — so different material never gets in;
//! wiping it while logged out is refused. (A token object holding a secret cannot be made
//! while logged out at all, so these are session keys.) Needs `openssl`.
//! Run with `cargo nextest run --test kms_binding`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::kms::*;
use common::*;
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::{Session, UserType};

const ALG: u64 = WRAP_RSAES_OAEP_SHA_256;
const HELD: [u8; 32] = [0x42; 32];
const OTHER: [u8; 32] = [0x17; 32];

/// An AES-256 session key made from `HELD` while nobody is logged in.
fn made_logged_out(session: &Session) -> ObjectHandle {
    let mut template = aes_template("plain", &HELD, false);
    template.extend([
        Attribute::Private(false),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
    ]);
    let key = session.create_object(&template).unwrap();
    assert_eq!(origin(session, key), ORIGIN_EXTERNAL);
    key
}

fn login(session: &Session) {
    session.login(UserType::User, Some(&pin(USER_PIN))).unwrap();
}

#[test]
fn deleting_the_material_of_an_unbound_key_binds_it_first() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = ctx.open_rw_session(slot).unwrap();
    let work = Work::new(&env);
    let key = made_logged_out(&session);
    let expected = work.enc("aes-256-cbc", &HELD, Some(&IV), true, PLAINTEXT);

    // Logged out, the binding cannot be made: the material stays.
    assert_rv!(
        set_state(&session, key, STATE_PENDING_IMPORT),
        cryptoki::error::RvError::UserNotLoggedIn
    );
    assert_eq!(state(&session, key), STATE_ENABLED);

    login(&session);
    set_state(&session, key, STATE_PENDING_IMPORT).unwrap();
    assert_rv!(
        import_with(&session, &work, key, ALG, &OTHER, None),
        CKR_KMSHSM_INVALID_KEY_MATERIAL
    );
    import_with(&session, &work, key, ALG, &HELD, None).unwrap();
    assert_eq!(
        to_hex(&encrypt_with(&session, Spec::Aes256, key).unwrap()),
        to_hex(&expected)
    );
}

#[test]
fn the_first_import_into_an_unbound_key_must_bring_the_material_it_holds() {
    let env = TestEnv::new();
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = ctx.open_rw_session(slot).unwrap();
    let work = Work::new(&env);
    let key = made_logged_out(&session);
    login(&session);
    assert_rv!(
        import_with(&session, &work, key, ALG, &OTHER, None),
        CKR_KMSHSM_INVALID_KEY_MATERIAL
    );
    import_with(&session, &work, key, ALG, &HELD, None).unwrap();
    set_state(&session, key, STATE_PENDING_IMPORT).unwrap();
    assert_rv!(
        import_with(&session, &work, key, ALG, &OTHER, None),
        CKR_KMSHSM_INVALID_KEY_MATERIAL
    );
}
