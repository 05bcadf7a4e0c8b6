//! Plain PKCS#11 imports with OpenSC's pkcs11-tool (0.23): an ordinary unwrap-capable key
//! (no import target) and `pkcs11-tool --unwrap` of material wrapped by `openssl` make a
//! new key with origin EXTERNAL that encrypts and decrypts like the original material in
//! `openssl enc`. RSA-PKCS with an RSA key pair; AES key wrap (RFC 3394) and AES key wrap
//! with padding (RFC 5649, mechanism 0x210B) with a token AES KEK. pkcs11-tool 0.23 sends
//! no OAEP parameters, so OAEP is covered through cryptoki in kms_import.rs.
//! Needs `pkcs11-tool` (opensc) and `openssl`. Run with
//! `cargo nextest run --test kms_pkcs11_tool`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::process::Command;

use common::kms::*;
use common::*;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use cryptoki_sys::*;

/// Runs pkcs11-tool, logged in to the test token, on the module under test.
fn tool(args: &[&str]) -> String {
    let program = require_tool("pkcs11-tool", "opensc");
    let module = module_path();
    let output = Command::new(program)
        .arg("--module")
        .arg(&module)
        .args(["--token-label", TOKEN_LABEL, "--login", "--pin", USER_PIN])
        .args(args)
        .output()
        .expect("run pkcs11-tool");
    let text = format!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "pkcs11-tool {} failed:\n{text}",
        args.join(" ")
    );
    text
}

/// `pkcs11-tool --unwrap` of `wrapped` with the key whose CKA_ID is `kek_id` into a new
/// AES-256 key labelled `label`, then checks the new key through cryptoki.
fn unwrap_with_tool_and_check(
    env: &TestEnv,
    work: &Work,
    mechanism: &str,
    kek_id: &str,
    wrapped: &[u8],
    material: &Material,
) {
    let input = work.file("wrapped.bin", wrapped);
    let label = format!("unwrapped-{mechanism}");
    tool(&[
        "--unwrap",
        "-m",
        mechanism,
        "--id",
        kek_id,
        "-i",
        &input,
        "--key-type",
        "AES:32",
        "--application-label",
        &label,
        "--application-id",
        "c0ffee",
    ]);

    let ctx = env.load();
    let session = user_session(&ctx, slot_of_token(&ctx, TOKEN_LABEL));
    let found = find_by_label(&session, &label);
    assert_eq!(found.len(), 1, "pkcs11-tool made no key labelled {label}");
    let key = found[0];
    assert_eq!(
        origin(&session, key),
        ORIGIN_EXTERNAL,
        "an unwrapped key is EXTERNAL"
    );
    assert_eq!(state(&session, key), STATE_ENABLED);
    assert!(is_key_id(&key_id(&session, key)));
    assert_eq!(
        vendor_value(&session, key, CKA_KMSHSM_KEY_SPEC),
        Spec::Aes256.code()
    );
    assert_eq!(
        read_bool(&session, key, CKA_LOCAL),
        Some(false),
        "CKA_LOCAL"
    );
    assert_eq!(read_bool(&session, key, CKA_NEVER_EXTRACTABLE), Some(false));
    // pkcs11-tool may leave the usage flags at their defaults: allow encryption.
    if read_bool(&session, key, CKA_ENCRYPT) != Some(true)
        || read_bool(&session, key, CKA_DECRYPT) != Some(true)
    {
        session
            .update_attributes(key, &[Attribute::Encrypt(true), Attribute::Decrypt(true)])
            .expect("allow the unwrapped key to encrypt");
    }
    assert_works_like(&session, work, key, material);
    drop(session);
    ctx.finalize().unwrap();
}

#[test]
fn pkcs11_tool_unwraps_rsa_pkcs_wrapped_material_into_a_new_external_key() {
    let env = TestEnv::new();
    let work = Work::new(&env);
    let material = work.material(Spec::Aes256);
    let wrapped = {
        let (ctx, _slot, session) = ready_token(&env);
        let (public, _private) = session
            .generate_key_pair(
                &Mechanism::RsaPkcsKeyPairGen,
                &[
                    Attribute::Token(true),
                    Attribute::ModulusBits(2048.into()),
                    Attribute::PublicExponent(vec![1, 0, 1]),
                    Attribute::Wrap(true),
                    Attribute::Encrypt(true),
                    Attribute::Id(vec![0xab, 0x01]),
                    Attribute::Label(b"rsa-kek".to_vec()),
                ],
                &[
                    Attribute::Token(true),
                    Attribute::Unwrap(true),
                    Attribute::Decrypt(true),
                    Attribute::Sensitive(true),
                    Attribute::Id(vec![0xab, 0x01]),
                    Attribute::Label(b"rsa-kek".to_vec()),
                ],
            )
            .expect("an ordinary RSA key pair");
        // The public key as the user reads it (no import target: no CKA_PUBLIC_KEY_INFO
        // is needed; build the SPKI from the modulus).
        let n = read_bytes(&session, public, CKA_MODULUS).unwrap();
        let mut key = der_uint(&n);
        key.extend(der_uint(&[1, 0, 1]));
        let mut bits = vec![0u8];
        bits.extend(der_tlv(0x30, &key));
        let mut spki = der_tlv(
            0x30,
            &[
                0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
            ],
        );
        spki.extend(der_tlv(0x03, &bits));
        let spki = der_tlv(0x30, &spki);
        let wrapped = work.rsa_encrypt(&spki, None, &material.bytes);
        drop(session);
        ctx.finalize().unwrap();
        wrapped
    };
    unwrap_with_tool_and_check(&env, &work, "RSA-PKCS", "ab01", &wrapped, &material);
}

/// A token AES-256 KEK with CKA_UNWRAP, made from known bytes so that openssl can wrap.
fn token_kek(env: &TestEnv, work: &Work, id: &[u8]) -> Vec<u8> {
    let (ctx, _slot, session) = ready_token(env);
    let kek = work.random(32);
    session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Unwrap(true),
            Attribute::Wrap(true),
            Attribute::Id(id.to_vec()),
            Attribute::Label(b"aes-kek".to_vec()),
            Attribute::Value(kek.clone()),
        ])
        .expect("the AES KEK");
    drop(session);
    ctx.finalize().unwrap();
    kek
}

#[test]
fn pkcs11_tool_unwraps_aes_key_wrap_material_into_a_new_external_key() {
    let env = TestEnv::new();
    let work = Work::new(&env);
    let kek = token_kek(&env, &work, &[0xab, 0x03]);
    let material = work.material(Spec::Aes256);
    let wrapped = work.kw(&kek, &material.bytes);
    assert_eq!(wrapped.len(), 40);
    unwrap_with_tool_and_check(&env, &work, "AES-KEY-WRAP", "ab03", &wrapped, &material);
}

#[test]
fn pkcs11_tool_unwraps_aes_key_wrap_with_padding_material_into_a_new_external_key() {
    let env = TestEnv::new();
    let work = Work::new(&env);
    let kek = token_kek(&env, &work, &[0xab, 0x04]);
    let material = work.material(Spec::Aes256);
    let wrapped = work.kwp(&kek, &material.bytes);
    assert_eq!(wrapped.len(), 40);
    // CKM_AES_KEY_WRAP_KWP (RFC 5649); pkcs11-tool 0.23 knows it only by number.
    unwrap_with_tool_and_check(&env, &work, "0x210B", "ab04", &wrapped, &material);
}
