//! AES-CBC and AES-CBC-PAD as key wrapping mechanisms through the C ABI, against
//! `openssl enc`: CBC (and ECB) wrapping pads the key value with zero bytes to whole
//! blocks (PKCS#11 3.0 §2.10.3-4) and unwrapping cuts it back to `CKA_VALUE_LEN` (or
//! the one length the key type allows, or a DER private key's own length); CBC-PAD is
//! PKCS#7. What the token wraps, openssl decrypts, and what openssl encrypts, the token
//! unwraps.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::*;
use common::*;
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

const KEK: [u8; 32] = [0x3c; 32];
const IV: [u8; 16] = [0x5a; 16];

fn rv<T: std::fmt::Debug>(r: cryptoki::error::Result<T>) -> RvError {
    match r {
        Err(Error::Pkcs11(rv, _)) => rv,
        other => panic!("expected a PKCS#11 error, got {other:?}"),
    }
}

fn secret_template(key_type: KeyType, len: Option<u64>) -> Vec<Attribute> {
    let mut t = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(key_type),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ];
    t.extend(len.map(|n| Attribute::ValueLen(n.into())));
    t
}

fn unwrap(
    session: &Session,
    mech: &Mechanism,
    kek: ObjectHandle,
    wrapped: &[u8],
    template: &[Attribute],
) -> cryptoki::error::Result<Vec<u8>> {
    let key = session.unwrap_key(mech, kek, wrapped, template)?;
    Ok(attribute_bytes(session, key, AttributeType::Value))
}

/// `openssl enc -aes-256-cbc` of `data` under KEK/IV, with or without PKCS#7 padding.
fn openssl_cbc(env: &TestEnv, data: &[u8], decrypt: bool, pad: bool) -> Vec<u8> {
    let path = write_file(env.dir.path(), "enc.in", data);
    let (k, iv) = (to_hex(&KEK), to_hex(&IV));
    let mut args = vec!["enc", "-aes-256-cbc", "-K", &k, "-iv", &iv, "-in", &path];
    if decrypt {
        args.push("-d");
    }
    if !pad {
        args.push("-nopad");
    }
    openssl_ok(&args)
}

#[test]
fn cbc_and_cbc_pad_wraps_match_openssl_enc_and_unwrap_back() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let kek = aes_key(&session, &KEK);
    let cbc = Mechanism::AesCbc(IV);
    let cbc_pad = Mechanism::AesCbcPad(IV);
    // An AES-128 key: one block, no padding either way for CBC.
    let aes_value: Vec<u8> = (1..=16).collect();
    let aes = aes_key(&session, &aes_value);
    let wrapped = session.wrap_key(&cbc, kek, aes).unwrap();
    assert_eq!(wrapped, openssl_cbc(&env, &aes_value, false, false));
    for len in [None, Some(16)] {
        assert_eq!(
            unwrap(
                &session,
                &cbc,
                kek,
                &wrapped,
                &secret_template(KeyType::AES, len)
            )
            .unwrap(),
            aes_value
        );
    }
    // A 20-byte generic secret: CBC pads with 12 zero bytes, CBC-PAD with PKCS#7.
    let value: Vec<u8> = (0x40..0x54).collect();
    let generic = secret_key(&session, KeyType::GENERIC_SECRET, &value);
    let wrapped = session.wrap_key(&cbc, kek, generic).unwrap();
    assert_eq!(wrapped.len(), 32);
    let mut zero_padded = value.clone();
    zero_padded.resize(32, 0);
    assert_eq!(wrapped, openssl_cbc(&env, &zero_padded, false, false));
    assert_eq!(openssl_cbc(&env, &wrapped, true, false), zero_padded);
    assert_eq!(
        unwrap(
            &session,
            &cbc,
            kek,
            &wrapped,
            &secret_template(KeyType::GENERIC_SECRET, Some(20))
        )
        .unwrap(),
        value
    );
    // Without CKA_VALUE_LEN a generic secret keeps every unwrapped byte.
    assert_eq!(
        unwrap(
            &session,
            &cbc,
            kek,
            &wrapped,
            &secret_template(KeyType::GENERIC_SECRET, None)
        )
        .unwrap(),
        zero_padded
    );
    let padded = session.wrap_key(&cbc_pad, kek, generic).unwrap();
    assert_eq!(padded, openssl_cbc(&env, &value, false, true));
    assert_eq!(
        unwrap(
            &session,
            &cbc_pad,
            kek,
            &padded,
            &secret_template(KeyType::GENERIC_SECRET, Some(value.len() as u64))
        )
        .unwrap(),
        value
    );
    // Without CKA_VALUE_LEN only the padding would give the length: refused, as that
    // answer is a padding oracle (docs/security.md).
    assert!(unwrap(
        &session,
        &cbc_pad,
        kek,
        &padded,
        &secret_template(KeyType::GENERIC_SECRET, None)
    )
    .is_err());
    // openssl wraps an AES-256 key; the token unwraps it with both mechanisms.
    let theirs: Vec<u8> = (100..132).collect();
    for (mech, pad) in [(&cbc, false), (&cbc_pad, true)] {
        let blob = openssl_cbc(&env, &theirs, false, pad);
        assert_eq!(
            unwrap(
                &session,
                mech,
                kek,
                &blob,
                &secret_template(KeyType::AES, None)
            )
            .unwrap(),
            theirs,
            "pad {pad}"
        );
    }
    // Refused: a wrapped length that is not whole blocks; a CKA_VALUE_LEN the blocks
    // cannot hold or that leaves a whole block of padding; AES of 20 bytes.
    let generic_20 = secret_template(KeyType::GENERIC_SECRET, Some(20));
    assert_eq!(
        rv(unwrap(&session, &cbc, kek, &wrapped[..31], &generic_20)),
        RvError::WrappedKeyLenRange
    );
    for len in [33, 16] {
        assert_eq!(
            rv(unwrap(
                &session,
                &cbc,
                kek,
                &wrapped,
                &secret_template(KeyType::GENERIC_SECRET, Some(len))
            )),
            RvError::WrappedKeyLenRange,
            "{len}"
        );
    }
    assert_eq!(
        rv(unwrap(
            &session,
            &cbc,
            kek,
            &wrapped,
            &secret_template(KeyType::AES, Some(20))
        )),
        RvError::AttributeValueInvalid
    );
}

#[test]
fn an_rsa_private_key_wrapped_with_cbc_unwraps_by_its_own_der_length() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let kek = aes_key(&session, &KEK);
    let (public, private) = session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::ModulusBits(2048u64.into()),
                Attribute::Verify(true),
            ],
            &[
                Attribute::Token(false),
                Attribute::Sign(true),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
            ],
        )
        .unwrap();
    let cbc = Mechanism::AesCbc(IV);
    let wrapped = session.wrap_key(&cbc, kek, private).unwrap();
    assert_eq!(wrapped.len() % 16, 0);
    // openssl decrypts the zero-padded PKCS#8 and reads the token's key from it.
    let der = openssl_cbc(&env, &wrapped, true, false);
    let der_path = write_file(env.dir.path(), "key.der", &der);
    let spki = openssl_ok(&[
        "pkey", "-inform", "DER", "-in", &der_path, "-pubout", "-outform", "DER",
    ]);
    let n = attribute_bytes(&session, public, AttributeType::Modulus);
    let e = attribute_bytes(&session, public, AttributeType::PublicExponent);
    assert_eq!(spki, rsa_spki(&n, &e));
    let back = session
        .unwrap_key(
            &cbc,
            kek,
            &wrapped,
            &[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(KeyType::RSA),
                Attribute::Token(false),
                Attribute::Sign(true),
            ],
        )
        .expect("C_UnwrapKey(RSA private key, AES-CBC)");
    let sig = session
        .sign(&Mechanism::Sha256RsaPkcs, back, b"unwrapped")
        .unwrap();
    session
        .verify(&Mechanism::Sha256RsaPkcs, public, b"unwrapped", &sig)
        .unwrap();
}
