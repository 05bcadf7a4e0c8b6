//! An `Init` answered from the last judgement (`Token::key_again`): only while nothing it
//! was judged on can have changed, and never past a refusal a full judgement
//! (`Token::key_for`) would give now.

use std::sync::Arc;

use super::test_store::{bytes, token_on_a_fixed_clock, ulong, PreparedImport, CALLER};
use super::Token;
use crate::ck::*;
use crate::error::Error;
use crate::mechanism::Usage;
use crate::object::key::Key;
use crate::object::table::ObjectHandle;
use crate::operation::{Grant, Judged};

/// A session AES-256 key for encryption and decryption, with `more`.
fn aes_key(token: &Token, more: &[crate::object::attr::RawAttribute]) -> ObjectHandle {
    let mut template = vec![
        ulong(CKA_CLASS, CKO_SECRET_KEY.raw()),
        ulong(CKA_KEY_TYPE, CKK_AES.raw()),
        bytes(CKA_VALUE, &[7u8; 32]),
        bytes(CKA_ENCRYPT, &[1]),
        bytes(CKA_DECRYPT, &[1]),
        bytes(CKA_PRIVATE, &[1]),
    ];
    template.extend(more.iter().cloned());
    token.create_object(CALLER, &template).expect("AES key")
}

fn kept(key: &Arc<Key>) -> crate::error::Result<Arc<Key>> {
    Ok(Arc::clone(key))
}

/// A full judgement of an encryption with AES-GCM by `key`, and what it leaves to judge
/// the next from.
fn judged(token: &Token, key: ObjectHandle) -> (Grant, Judged) {
    let (_, grant) = token
        .key_for(key, Usage::Encrypt, CKM_AES_GCM, kept)
        .expect("a full judgement");
    let judged = grant.judgement();
    (grant, judged)
}

/// Whether the next encryption init is answered from `last` (`Ok(true)`), judged in
/// full (`Ok(false)`), or refused (the error, as text).
fn again(token: &Token, last: &Judged, key: ObjectHandle) -> Result<bool, String> {
    token
        .key_again(last, key, Usage::Encrypt, CKM_AES_GCM, kept)
        .map(|answered| answered.is_some())
        .map_err(|e| format!("{e:?}"))
}

#[test]
fn the_same_init_on_an_unchanged_table_is_answered_from_the_last_judgement_only() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (token, _clock, _hooks) = token_on_a_fixed_clock(dir.path(), "judged1");
    let key = aes_key(&token, &[]);
    let other = aes_key(&token, &[]);
    let (grant, last) = judged(&token, key);
    let (_, again_grant) = token
        .key_again(&last, key, Usage::Encrypt, CKM_AES_GCM, kept)
        .expect("judged")
        .expect("answered from the last judgement");
    assert!(Arc::ptr_eq(&grant.judged, &again_grant.judged));
    assert_eq!(again_grant.generation, grant.generation);
    // Another key, usage or mechanism is judged in full.
    assert_eq!(again(&token, &last, other), Ok(false));
    let decrypt = token.key_again(&last, key, Usage::Decrypt, CKM_AES_GCM, kept);
    assert!(matches!(decrypt, Ok(None)));
    let cbc = token.key_again(&last, key, Usage::Encrypt, CKM_AES_CBC_PAD, kept);
    assert!(matches!(cbc, Ok(None)));
}

#[test]
fn every_change_the_judgement_depends_on_sends_the_next_init_to_a_full_judgement() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (token, _clock, _hooks) = token_on_a_fixed_clock(dir.path(), "judged2");
    let key = aes_key(&token, &[]);

    // An attribute change: the full judgement refuses it.
    let (_, last) = judged(&token, key);
    token
        .set_attributes(CALLER, key, &[bytes(CKA_ENCRYPT, &[0])])
        .expect("CKA_ENCRYPT off");
    assert_eq!(again(&token, &last, key), Ok(false));
    assert!(matches!(
        token.key_for(key, Usage::Encrypt, CKM_AES_GCM, kept),
        Err(Error::KeyFunctionNotPermitted)
    ));

    // A change of another object moves the table too: judged in full, and allowed.
    let key = aes_key(&token, &[]);
    let (_, last) = judged(&token, key);
    aes_key(&token, &[]);
    assert_eq!(again(&token, &last, key), Ok(false));

    // A logout: the private key is gone from view.
    let (_, last) = judged(&token, key);
    token.logout().expect("logout");
    assert_eq!(again(&token, &last, key), Ok(false));
    assert!(token
        .key_for(key, Usage::Encrypt, CKM_AES_GCM, kept)
        .is_err());
}

#[test]
fn a_destroyed_key_is_not_kept_alive_by_a_judgement_of_it() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (token, _clock, _hooks) = token_on_a_fixed_clock(dir.path(), "judged3");
    let key = aes_key(&token, &[]);
    let (grant, last) = judged(&token, key);
    drop(grant);
    token.destroy_object(CALLER, key).expect("destroy");
    assert!(
        last.object.upgrade().is_none(),
        "the object outlived its destruction"
    );
    assert_eq!(again(&token, &last, key), Ok(false));
}

#[test]
fn a_key_needing_its_login_for_each_use_is_judged_in_full_at_every_init() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (token, _clock, _hooks) = token_on_a_fixed_clock(dir.path(), "judged4");
    // P-256 (its OID, DER).
    let p256 = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let (_, private) = token
        .generate_key_pair(
            CALLER,
            &crate::mechanism::MechanismArg {
                kind: CKM_EC_KEY_PAIR_GEN,
                param: crate::mechanism::Param::None,
            },
            &[bytes(CKA_EC_PARAMS, &p256)],
            &[bytes(CKA_SIGN, &[1]), bytes(CKA_ALWAYS_AUTHENTICATE, &[1])],
        )
        .expect("P-256 pair");
    let (_, grant) = token
        .key_for(private, Usage::Sign, CKM_ECDSA, kept)
        .expect("a full judgement");
    assert!(grant.awaiting_login);
    let again = token.key_again(&grant.judgement(), private, Usage::Sign, CKM_ECDSA, kept);
    assert!(matches!(again, Ok(None)), "answered without its login");
}

#[test]
fn material_expired_since_the_last_judgement_is_refused_as_a_full_judgement_refuses_it() {
    use crate::object::attr::MATERIAL_EXPIRY;
    let dir = tempfile::tempdir().expect("temporary directory");
    let (token, clock, _hooks) = token_on_a_fixed_clock(dir.path(), "judged5");
    let start = crate::kms::clock::Clock::now(&*clock);
    let prepared = PreparedImport::new(&token);
    prepared
        .import(&token, &[ulong(MATERIAL_EXPIRY, (start + 100) as u64)])
        .expect("ImportKeyMaterial with an expiry");
    let (_, last) = judged(&token, prepared.key);
    assert_eq!(again(&token, &last, prepared.key), Ok(true));
    clock.advance(100);
    // The sweep the init runs first wipes the material (a write of the table): judged
    // in full, and refused as a full judgement is.
    let from_last = again(&token, &last, prepared.key);
    let full = token
        .key_for(prepared.key, Usage::Encrypt, CKM_AES_GCM, kept)
        .map(|_| ())
        .map_err(|e| format!("{e:?}"));
    assert_ne!(
        from_last,
        Ok(true),
        "expired material answered from the last judgement"
    );
    assert!(full.is_err(), "expired material used: {full:?}");
}

/// A logout ends the login before it writes the table (`logout_locked`): an init in
/// between finds the generation judged, and must still not use a private key.
#[test]
fn a_private_key_is_not_answered_from_the_last_judgement_once_the_login_has_ended() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (token, _clock, _hooks) = token_on_a_fixed_clock(dir.path(), "judged6");
    let key = aes_key(&token, &[]);
    let (_, last) = judged(&token, key);
    // The logout's first half: the login ended, the table not yet written.
    token.login.lock().clear();
    assert_eq!(again(&token, &last, key), Ok(false));
}
