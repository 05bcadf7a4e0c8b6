//! A session's next `C_EncryptInit`/`C_DecryptInit` on the key it last used is judged from
//! that init's judgement while nothing it was judged on has changed (`Token::key_again`,
//! docs/security.md "One authorisation point"): each change a full judgement would
//! refuse, made between two inits of one session, must still refuse the second.

#![allow(clippy::unwrap_used, unreachable_pub, dead_code)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::kms::*;
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

/// A token AES-256 key that encrypts and decrypts.
fn aes_key(session: &Session) -> ObjectHandle {
    session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::ValueLen(32.into()),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
            ],
        )
        .expect("AES key")
}

/// One AES-GCM encryption of a few bytes (`C_EncryptInit`, then `C_Encrypt`): `Ok`, or
/// the code it failed with.
fn encrypt(session: &Session, key: ObjectHandle) -> Result<(), RvError> {
    let mut iv = [3u8; 12];
    let params = GcmParams::new(&mut iv, b"", 128.into()).expect("GCM parameters");
    match session.encrypt(&Mechanism::AesGcm(params), key, b"a data key") {
        Ok(_) => Ok(()),
        failed => Err(rv(failed)),
    }
}

#[test]
fn a_second_init_is_refused_after_each_change_a_first_would_be_refused_for() {
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);

    // CKA_ENCRYPT turned off.
    let key = aes_key(&session);
    encrypt(&session, key).expect("the first encryption");
    session
        .update_attributes(key, &[Attribute::Encrypt(false)])
        .expect("CKA_ENCRYPT off");
    assert_eq!(
        encrypt(&session, key),
        Err(RvError::KeyFunctionNotPermitted)
    );

    // The KMS key disabled; enabled again, it encrypts again.
    let key = aes_key(&session);
    encrypt(&session, key).expect("the first encryption");
    set_state(&session, key, STATE_DISABLED).expect("DisableKey");
    assert_eq!(encrypt(&session, key), Err(CKR_KMSHSM_INCORRECT_KEY_STATE));
    set_state(&session, key, STATE_ENABLED).expect("EnableKey");
    encrypt(&session, key).expect("enabled again");

    // The user logged out (from another session of the application): the private key
    // is no longer there to use.
    let other = ctx.open_ro_session(slot).expect("another session");
    other.logout().expect("C_Logout");
    assert_eq!(encrypt(&session, key), Err(RvError::KeyHandleInvalid));
}
