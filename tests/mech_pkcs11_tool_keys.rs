//! OpenSC's pkcs11-tool (0.23) on the key-management side of the mechanisms: RSA-PKCS
//! decryption of what `openssl pkeyutl` encrypted, `--unwrap` of openssl-encrypted
//! material into a new AES key that then agrees with `openssl enc`, `--wrap` with
//! AES-KEY-WRAP checked against `openssl enc -id-aes256-wrap`, and `--derive` (ECDH)
//! checked against `openssl pkeyutl -derive`. pkcs11-tool 0.23 encrypts with secret keys
//! only, so RSA encryption is covered through cryptoki elsewhere; CKM_RSA_AES_KEY_WRAP
//! (which pkcs11-tool cannot drive) is checked here through cryptoki.
//! Needs `pkcs11-tool` (`apt-get install -y opensc`) and `openssl`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::*;
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use cryptoki_sys::*;

fn token() -> TestEnv {
    let env = TestEnv::new();
    let ctx = env.load();
    init_token(&ctx);
    ctx.finalize().unwrap();
    env
}

fn tool(args: &[&str]) -> Run {
    let mut all = vec!["--login", "--pin", USER_PIN];
    all.extend_from_slice(args);
    p11tool_ok(&all)
}

fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn path(dir: &tempfile::TempDir, name: &str) -> String {
    dir.path().join(name).to_str().unwrap().to_owned()
}

/// An RSA pair made by pkcs11-tool with id `id`, and its public key as a PEM file.
fn rsa_pair(dir: &tempfile::TempDir, id: &str) -> String {
    tool(&[
        "--keypairgen",
        "--key-type",
        "rsa:2048",
        "--id",
        id,
        "--usage-decrypt",
        "--usage-wrap",
    ]);
    let der = path(dir, "pub.der");
    tool(&["--read-object", "--type", "pubkey", "--id", id, "-o", &der]);
    let pem = path(dir, "pub.pem");
    openssl_ok(&[
        "pkey", "-pubin", "-inform", "DER", "-in", &der, "-out", &pem,
    ]);
    pem
}

#[test]
fn rsa_pkcs_decrypt_recovers_what_openssl_encrypted() {
    let _env = token();
    let dir = scratch();
    let pem = rsa_pair(&dir, "01");
    let plain = write_file(dir.path(), "plain.bin", b"thirty-two bytes of plain text!!");
    let enc = path(&dir, "plain.enc");
    openssl_ok(&[
        "pkeyutl", "-encrypt", "-pubin", "-inkey", &pem, "-in", &plain, "-out", &enc,
    ]);
    let dec = path(&dir, "plain.dec");
    tool(&[
        "--decrypt",
        "-m",
        "RSA-PKCS",
        "--id",
        "01",
        "-i",
        &enc,
        "-o",
        &dec,
    ]);
    assert_eq!(
        std::fs::read(dec).unwrap(),
        b"thirty-two bytes of plain text!!"
    );
}

#[test]
fn unwrap_of_openssl_encrypted_material_makes_a_key_that_agrees_with_openssl_enc() {
    let _env = token();
    let dir = scratch();
    let pem = rsa_pair(&dir, "01");
    let material = [0x5cu8; 32];
    let mat = write_file(dir.path(), "mat.bin", &material);
    let wrapped = path(&dir, "mat.enc");
    openssl_ok(&[
        "pkeyutl", "-encrypt", "-pubin", "-inkey", &pem, "-in", &mat, "-out", &wrapped,
    ]);
    let run = tool(&[
        "--unwrap",
        "-m",
        "RSA-PKCS",
        "--id",
        "01",
        "-i",
        &wrapped,
        "--key-type",
        "AES:",
        "--application-id",
        "02",
    ]);
    assert!(run.text().contains("ID:         02"), "{run}");
    // The new key encrypts as openssl does with the same material.
    let iv = "000102030405060708090a0b0c0d0e0f";
    let msg = write_file(dir.path(), "msg", b"byok through pkcs11-tool");
    let token_out = path(&dir, "msg.token");
    tool(&[
        "--encrypt",
        "-m",
        "AES-CBC-PAD",
        "--id",
        "02",
        "--iv",
        iv,
        "-i",
        &msg,
        "-o",
        &token_out,
    ]);
    let ossl = openssl_ok(&[
        "enc",
        "-aes-256-cbc",
        "-K",
        &to_hex(&material),
        "-iv",
        iv,
        "-in",
        &msg,
    ]);
    assert_eq!(std::fs::read(token_out).unwrap(), ossl);
}

#[test]
fn aes_key_wrap_output_matches_openssl() {
    let _env = token();
    let dir = scratch();
    let kek = [0x11u8; 32];
    let target = [0x22u8; 32];
    let kek_file = write_file(dir.path(), "kek.bin", &kek);
    let target_file = write_file(dir.path(), "target.bin", &target);
    tool(&[
        "--write-object",
        &kek_file,
        "--type",
        "secrkey",
        "--key-type",
        "AES:32",
        "--id",
        "03",
        "--usage-wrap",
    ]);
    tool(&[
        "--write-object",
        &target_file,
        "--type",
        "secrkey",
        "--key-type",
        "AES:32",
        "--id",
        "04",
        "--extractable",
    ]);
    let wrapped = path(&dir, "wrapped.bin");
    tool(&[
        "--wrap",
        "-m",
        "AES-KEY-WRAP",
        "--id",
        "03",
        "--application-id",
        "04",
        "-o",
        &wrapped,
    ]);
    let expected = openssl_ok(&[
        "enc",
        "-id-aes256-wrap",
        "-K",
        &to_hex(&kek),
        "-iv",
        "A6A6A6A6A6A6A6A6",
        "-in",
        &target_file,
    ]);
    assert_eq!(std::fs::read(wrapped).unwrap(), expected);
}

#[test]
fn ecdh_derive_agrees_with_openssl() {
    let _env = token();
    let dir = scratch();
    tool(&[
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--id",
        "05",
        "--usage-derive",
    ]);
    let peer = path(&dir, "peer.pem");
    openssl_ok(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        &peer,
    ]);
    let peer_pub = path(&dir, "peer_pub.der");
    openssl_ok(&[
        "pkey", "-in", &peer, "-pubout", "-outform", "DER", "-out", &peer_pub,
    ]);
    let derived = path(&dir, "derived.bin");
    tool(&[
        "--derive",
        "-m",
        "ECDH1-DERIVE",
        "--id",
        "05",
        "-i",
        &peer_pub,
        "-o",
        &derived,
    ]);
    let ours_der = path(&dir, "ours.der");
    tool(&[
        "--read-object",
        "--type",
        "pubkey",
        "--id",
        "05",
        "-o",
        &ours_der,
    ]);
    let ours = path(&dir, "ours.pem");
    openssl_ok(&[
        "pkey", "-pubin", "-inform", "DER", "-in", &ours_der, "-out", &ours,
    ]);
    let expected = openssl_ok(&["pkeyutl", "-derive", "-inkey", &peer, "-peerkey", &ours]);
    assert_eq!(std::fs::read(derived).unwrap(), expected);
}

#[test]
fn rsa_aes_key_wrap_round_trips_and_unwraps_only_with_the_right_params() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let (public, private) = session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[Attribute::ModulusBits(2048.into()), Attribute::Wrap(true)],
            &[Attribute::Unwrap(true)],
        )
        .unwrap();
    let target = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Value(vec![0x33; 32]),
            Attribute::Extractable(true),
        ])
        .unwrap();
    let mech = RawMech::rsa_aes_key_wrap(256, CKM_SHA256, CKG_MGF1_SHA256);
    let s = session.handle();
    let wrapped = ck.wrap(s, &mech, public.handle(), target.handle()).unwrap();
    // The RSA block (256 bytes), then RFC 5649 of a 32-byte key (40 bytes).
    assert_eq!(wrapped.len(), 256 + 40);
    let back = ck
        .unwrap(
            s,
            &mech,
            private.handle(),
            &wrapped,
            &raw_secret_template(CKK_AES, 32),
        )
        .unwrap();
    let value = attribute_bytes(&session, handle(back), AttributeType::Value);
    assert_eq!(value, vec![0x33; 32]);
    let wrong = RawMech::rsa_aes_key_wrap(256, CKM_SHA_1, CKG_MGF1_SHA1);
    let refused = ck.unwrap(
        s,
        &wrong,
        private.handle(),
        &wrapped,
        &raw_secret_template(CKK_AES, 32),
    );
    assert_eq!(refused, Err(RvError::WrappedKeyInvalid));
}
