//! Private keys (RSA-2048, EC P-256, Ed25519) wrapped as PKCS#8 under an AES key with
//! `CKM_AES_KEY_WRAP` (zero padded to whole semiblocks, PKCS#11 3.0 §2.14),
//! `CKM_AES_KEY_WRAP_PAD`, `CKM_AES_CBC_PAD` and `CKM_AES_CBC` (zero padded): `openssl enc`
//! opens each wrapping and `openssl pkey` reads the key inside; `C_UnwrapKey` makes a
//! private key again, whose signature the original public key verifies.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::*;
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

const KEK_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const IV_HEX: &str = "0f0e0d0c0b0a09080706050403020100";

fn pair(session: &Session, kind: &str) -> (ObjectHandle, ObjectHandle, KeyType) {
    let private = [
        Attribute::Token(false),
        Attribute::Sign(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(true),
    ];
    let (mech, public, key_type) = match kind {
        "rsa" => (
            Mechanism::RsaPkcsKeyPairGen,
            vec![
                Attribute::Token(false),
                Attribute::Verify(true),
                Attribute::ModulusBits(2048.into()),
            ],
            KeyType::RSA,
        ),
        "ec" => (
            Mechanism::EccKeyPairGen,
            vec![
                Attribute::Token(false),
                Attribute::Verify(true),
                Attribute::EcParams(hex("06082a8648ce3d030107")),
            ],
            KeyType::EC,
        ),
        _ => (
            Mechanism::EccEdwardsKeyPairGen,
            vec![
                Attribute::Token(false),
                Attribute::Verify(true),
                Attribute::EcParams(hex("06032b6570")),
            ],
            KeyType::EC_EDWARDS,
        ),
    };
    let (p, q) = session.generate_key_pair(&mech, &public, &private).unwrap();
    (p, q, key_type)
}

fn sign_mechanism(key_type: KeyType) -> Mechanism<'static> {
    if key_type == KeyType::RSA {
        Mechanism::Sha256RsaPkcs
    } else if key_type == KeyType::EC {
        Mechanism::EcdsaSha256
    } else {
        Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure))
    }
}

/// What openssl recovers from `wrapped`, cut to the DER length of the key inside.
fn openssl_unwrap(env: &TestEnv, mech: &str, wrapped: &[u8]) -> Vec<u8> {
    let input = write_file(env.dir.path(), "wrapped", wrapped);
    let mut args = vec!["enc", "-d", "-K", KEK_HEX, "-in", &input];
    match mech {
        "kw" => args.extend_from_slice(&["-id-aes256-wrap", "-iv", "A6A6A6A6A6A6A6A6"]),
        "kwp" => args.extend_from_slice(&["-id-aes256-wrap-pad", "-iv", "A65959A6"]),
        "cbc-pad" => args.extend_from_slice(&["-aes-256-cbc", "-iv", IV_HEX]),
        _ => args.extend_from_slice(&["-aes-256-cbc", "-iv", IV_HEX, "-nopad"]),
    }
    let plain = openssl_ok(&args);
    // SEQUENCE with a long-form length: 0x30 0x81 L or 0x30 0x82 L L.
    assert_eq!(plain[0], 0x30, "{mech}: no PKCS#8 inside");
    let len = match plain[1] {
        0x81 => 3 + usize::from(plain[2]),
        0x82 => 4 + (usize::from(plain[2]) << 8 | usize::from(plain[3])),
        short => 2 + usize::from(short),
    };
    assert!(
        plain.len() >= len && plain.len() - len < 16,
        "{mech}: {} for {len}",
        plain.len()
    );
    assert!(
        plain[len..].iter().all(|b| *b == 0),
        "{mech}: padding is not zeros"
    );
    plain[..len].to_vec()
}

#[test]
fn private_keys_wrap_as_pkcs8_that_openssl_reads_and_unwrap_back() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let kek = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Value(hex(KEK_HEX)),
            Attribute::Wrap(true),
            Attribute::Unwrap(true),
        ])
        .unwrap();
    let iv: [u8; 16] = hex(IV_HEX).try_into().unwrap();
    let msg = b"wrapped, unwrapped, signed";
    for kind in ["rsa", "ec", "ed25519"] {
        let (public, private, key_type) = pair(&session, kind);
        for (name, mech) in [
            ("kw", Mechanism::AesKeyWrap),
            ("kwp", Mechanism::AesKeyWrapPad),
            ("cbc-pad", Mechanism::AesCbcPad(iv)),
            ("cbc", Mechanism::AesCbc(iv)),
        ] {
            let wrapped = session
                .wrap_key(&mech, kek, private)
                .unwrap_or_else(|e| panic!("{kind} {name}: {e}"));
            let der = openssl_unwrap(&env, name, &wrapped);
            let der_path = write_file(env.dir.path(), "key.der", &der);
            openssl_ok(&["pkey", "-inform", "DER", "-in", &der_path, "-noout"]);
            let unwrapped = session
                .unwrap_key(
                    &mech,
                    kek,
                    &wrapped,
                    &[
                        Attribute::Class(ObjectClass::PRIVATE_KEY),
                        Attribute::KeyType(key_type),
                        Attribute::Token(false),
                        Attribute::Sign(true),
                    ],
                )
                .unwrap_or_else(|e| panic!("{kind} {name} unwrap: {e}"));
            let sig = session
                .sign(&sign_mechanism(key_type), unwrapped, msg)
                .unwrap();
            session
                .verify(&sign_mechanism(key_type), public, msg, &sig)
                .unwrap_or_else(|e| panic!("{kind} {name}: the unwrapped key is another: {e}"));
        }
    }
}

#[test]
fn a_damaged_key_wrap_is_refused_and_unextractable_keys_stay_in() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let kek = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Value(hex(KEK_HEX)),
            Attribute::Wrap(true),
            Attribute::Unwrap(true),
        ])
        .unwrap();
    let (_public, private, _) = pair(&session, "ec");
    let mut wrapped = session
        .wrap_key(&Mechanism::AesKeyWrap, kek, private)
        .unwrap();
    let last = wrapped.len() - 1;
    wrapped[last] ^= 1;
    let template = [
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::EC),
        Attribute::Token(false),
    ];
    assert_rv!(
        session.unwrap_key(&Mechanism::AesKeyWrap, kek, &wrapped, &template),
        RvError::WrappedKeyInvalid
    );
    let (_p, locked) = session
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::EcParams(hex("06082a8648ce3d030107")),
            ],
            &[Attribute::Token(false), Attribute::Extractable(false)],
        )
        .unwrap();
    assert_rv!(
        session.wrap_key(&Mechanism::AesKeyWrap, kek, locked),
        RvError::KeyUnextractable
    );
}
