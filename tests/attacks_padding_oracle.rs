//! Bleichenbacher's padding oracle against RSA PKCS#1 v1.5 (issue 12): `C_Decrypt` and
//! `C_UnwrapKey` with `CKM_RSA_PKCS` must answer valid and malformed ciphertexts alike —
//! the same return code, and the same length wherever a template fixes one — because
//! both use implicit rejection (docs/security.md). Timing is not asserted here (a shared
//! machine is too noisy to prove a negative); the decoders are constant-time by
//! construction (`crypto/rsa/implicit.rs`). Run with
//! `cargo nextest run --test attacks_padding_oracle`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::RawMech;
use common::*;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::CKM_RSA_PKCS;

/// The ciphertexts an attacker sends: valid PKCS#1 v1.5 blocks of 32-byte keys, valid
/// blocks of lengths no AES key has, and malformed blocks (random values below the
/// modulus, so only the padding is wrong).
struct Probes {
    valid: Vec<(Vec<u8>, Vec<u8>)>,
    wrong_length: Vec<Vec<u8>>,
    malformed: Vec<Vec<u8>>,
}

fn probes(session: &Session, public: ObjectHandle) -> Probes {
    let random = |n: usize| session.generate_random_vec(n as u32).unwrap();
    let valid = (0..12)
        .map(|_| {
            let key = random(32);
            let ct = session.encrypt(&Mechanism::RsaPkcs, public, &key).unwrap();
            (key, ct)
        })
        .collect();
    let wrong_length = [1usize, 20, 31, 33, 100, 245]
        .iter()
        .map(|n| {
            session
                .encrypt(&Mechanism::RsaPkcs, public, &random(*n))
                .unwrap()
        })
        .collect();
    let malformed = (0..40)
        .map(|i| {
            let mut ct = random(256);
            // Below any 2048-bit modulus: a leading zero byte.
            ct[0] = 0;
            ct[1] = i as u8 & 0x7f;
            ct
        })
        .collect();
    Probes {
        valid,
        wrong_length,
        malformed,
    }
}

fn rsa_unwrap_pair(session: &Session) -> (ObjectHandle, ObjectHandle) {
    session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::ModulusBits(2048.into()),
                Attribute::Encrypt(true),
                Attribute::Wrap(true),
            ],
            &[
                Attribute::Private(true),
                Attribute::Decrypt(true),
                Attribute::Unwrap(true),
            ],
        )
        .unwrap()
}

/// An AES unwrap template whose value can be read back (to compare with the plaintext).
fn aes_template(value_len: Option<u64>) -> Vec<Attribute> {
    let mut t = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
        Attribute::Encrypt(true),
    ];
    if let Some(len) = value_len {
        t.push(Attribute::ValueLen(len.into()));
    }
    t
}

fn value_of(session: &Session, key: ObjectHandle) -> Vec<u8> {
    attribute_bytes(session, key, AttributeType::Value)
}

#[test]
fn unwrap_with_a_fixed_length_answers_every_ciphertext_alike() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let (public, private) = rsa_unwrap_pair(&session);
    let p = probes(&session, public);
    let unwrap =
        |ct: &[u8]| session.unwrap_key(&Mechanism::RsaPkcs, private, ct, &aes_template(Some(32)));
    for (key, ct) in &p.valid {
        let h = unwrap(ct).expect("valid block");
        assert_eq!(&value_of(&session, h), key, "a valid block unwraps its key");
    }
    for ct in p.wrong_length.iter().chain(&p.malformed) {
        let h = unwrap(ct).expect("implicit rejection: a bad block also answers OK");
        let value = value_of(&session, h);
        assert_eq!(value.len(), 32, "the same length as a good key");
        // Deterministic: the same ciphertext gives the same (useless) key.
        let again = unwrap(ct).unwrap();
        assert_eq!(value_of(&session, again), value);
    }
}

#[test]
fn unwrap_without_a_length_answers_every_ciphertext_with_an_aes_size() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let (public, private) = rsa_unwrap_pair(&session);
    let p = probes(&session, public);
    let unwrap =
        |ct: &[u8]| session.unwrap_key(&Mechanism::RsaPkcs, private, ct, &aes_template(None));
    for (key, ct) in &p.valid {
        let h = unwrap(ct).expect("valid block");
        assert_eq!(&value_of(&session, h), key);
    }
    let mut sizes = std::collections::BTreeSet::new();
    for ct in p.wrong_length.iter().chain(&p.malformed) {
        let h = unwrap(ct).expect("implicit rejection: no error, no length refusal");
        let len = value_of(&session, h).len();
        assert!([16, 24, 32].contains(&len), "length {len}");
        sizes.insert(len);
    }
    assert_eq!(sizes.len(), 3, "substitutes take every AES size: {sizes:?}");
}

#[test]
fn unwrap_of_a_private_key_is_refused_before_any_decryption() {
    // A PKCS#8 parse after decryption would tell real from substitute: refused with one
    // code, valid or not.
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let (public, private) = rsa_unwrap_pair(&session);
    let p = probes(&session, public);
    let template = [
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::EC),
        Attribute::Token(false),
    ];
    for ct in p
        .valid
        .iter()
        .map(|(_, ct)| ct)
        .chain(&p.wrong_length)
        .chain(&p.malformed)
    {
        assert_rv!(
            session.unwrap_key(&Mechanism::RsaPkcs, private, ct, &template),
            cryptoki::error::RvError::MechanismInvalid
        );
    }
}

#[test]
fn decrypt_answers_every_ciphertext_with_ok_and_a_length_query_with_the_modulus_size() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let (public, private) = rsa_unwrap_pair(&session);
    let p = probes(&session, public);
    for (key, ct) in &p.valid {
        let out = session.decrypt(&Mechanism::RsaPkcs, private, ct).unwrap();
        assert_eq!(&out, key);
    }
    let mut lengths = std::collections::BTreeSet::new();
    for ct in p.wrong_length.iter().chain(&p.malformed) {
        let out = session
            .decrypt(&Mechanism::RsaPkcs, private, ct)
            .expect("implicit rejection: bad padding is no error");
        assert!(out.len() <= 245);
        assert_eq!(
            session.decrypt(&Mechanism::RsaPkcs, private, ct).unwrap(),
            out,
            "deterministic"
        );
        lengths.insert(out.len());
    }
    // The synthetic lengths spread like real ones; a fixed length would be a tell.
    assert!(lengths.len() > 20, "synthetic lengths: {lengths:?}");
    // The length query says k for every ciphertext, and a short buffer is answered
    // with the real length only after the decryption, as for any other mechanism.
    let ck = common::mech::Ck::load();
    let s = session.handle();
    for ct in p
        .malformed
        .iter()
        .take(5)
        .chain(p.valid.iter().map(|(_, c)| c).take(5))
    {
        ck.decrypt_init(s, &RawMech::none(CKM_RSA_PKCS), private.handle())
            .unwrap();
        let query = ck.decrypt_call(s, ct, None);
        assert_eq!(query.rv, Ok(()));
        assert_eq!(query.len, 256);
        let out = ck.decrypt_call(s, ct, Some(256));
        assert_eq!(out.rv, Ok(()));
    }
}
