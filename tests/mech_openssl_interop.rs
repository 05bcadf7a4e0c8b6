//! Interoperability with the `openssl` command line (OpenSSL 3): what the module encrypts
//! or signs, openssl decrypts or verifies, and the reverse. Needs `openssl`
//! (`apt-get install -y openssl`); a missing tool fails the test with that hint.
//!
//! AES-GCM is not exercised here: `openssl enc` refuses AEAD ciphers ("AEAD ciphers not
//! supported"), and GCM is covered by published vectors in mech_kat_aes.rs / mech_wycheproof.rs.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::*;
use common::*;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

fn setup() -> (TestEnv, cryptoki::context::Pkcs11, Session) {
    let env = TestEnv::new();
    let (ctx, _slot, session) = ready_token(&env);
    (env, ctx, session)
}

fn tmp(env: &TestEnv) -> &std::path::Path {
    env.dir.path()
}

#[test]
fn aes_cbc_ctr_and_ecb_interoperate_with_openssl_enc_both_ways() {
    let (env, _ctx, session) = setup();
    let key = [0x2bu8; 32];
    let iv = [0x01u8; 16];
    let k = aes_key(&session, &key);
    let (kh, ivh) = (to_hex(&key), to_hex(&iv));
    let msg = b"interop message of 37 bytes, exactly".to_vec();
    let msg_path = write_file(tmp(&env), "msg", &msg);
    // CBC-PAD == openssl's default PKCS#7 padding.
    let ours = session.encrypt(&Mechanism::AesCbcPad(iv), k, &msg).unwrap();
    let ct_path = write_file(tmp(&env), "cbc.ct", &ours);
    let back = openssl_ok(&[
        "enc",
        "-d",
        "-aes-256-cbc",
        "-K",
        &kh,
        "-iv",
        &ivh,
        "-in",
        &ct_path,
    ]);
    assert_eq!(back, msg);
    let theirs = openssl_ok(&[
        "enc",
        "-aes-256-cbc",
        "-K",
        &kh,
        "-iv",
        &ivh,
        "-in",
        &msg_path,
    ]);
    assert_eq!(
        session
            .decrypt(&Mechanism::AesCbcPad(iv), k, &theirs)
            .unwrap(),
        msg
    );
    // CTR with a full 128-bit counter block = openssl's -aes-256-ctr.
    let ck = Ck::load();
    let ctr = RawMech::ctr(128, &iv);
    let ours = ck
        .encrypt(session.handle(), &ctr, k.handle(), &msg)
        .unwrap();
    let theirs = openssl_ok(&[
        "enc",
        "-aes-256-ctr",
        "-K",
        &kh,
        "-iv",
        &ivh,
        "-in",
        &msg_path,
    ]);
    assert_eq!(ours, theirs);
    // ECB without padding on whole blocks.
    let blocks = &msg[..32];
    let blocks_path = write_file(tmp(&env), "blocks", blocks);
    let ours = session.encrypt(&Mechanism::AesEcb, k, blocks).unwrap();
    let theirs = openssl_ok(&[
        "enc",
        "-aes-256-ecb",
        "-nopad",
        "-K",
        &kh,
        "-in",
        &blocks_path,
    ]);
    assert_eq!(ours, theirs);
}

#[test]
fn sm4_ecb_and_cbc_interoperate_with_openssl_enc() {
    let (env, _ctx, session) = setup();
    let key = [0x42u8; 16];
    let iv = [0x24u8; 16];
    let k = sm4_key(&session, &key);
    let msg = b"sm4 interop plaintext, 41 bytes long....".to_vec();
    let msg_path = write_file(tmp(&env), "msg", &msg);
    let (kh, ivh) = (to_hex(&key), to_hex(&iv));
    let ours = session
        .encrypt(&vendor_mech_bytes(CKM_SM4_CBC_PAD, &iv), k, &msg)
        .unwrap();
    let theirs = openssl_ok(&["enc", "-sm4-cbc", "-K", &kh, "-iv", &ivh, "-in", &msg_path]);
    assert_eq!(ours, theirs, "SM4-CBC with PKCS#7 padding");
    let blocks_path = write_file(tmp(&env), "blocks", &msg[..32]);
    let ours = session
        .encrypt(&vendor_mech(CKM_SM4_ECB), k, &msg[..32])
        .unwrap();
    let theirs = openssl_ok(&["enc", "-sm4-ecb", "-nopad", "-K", &kh, "-in", &blocks_path]);
    assert_eq!(ours, theirs, "SM4-ECB");
}

fn rsa_token_pair(session: &Session) -> (ObjectHandle, ObjectHandle) {
    session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::ModulusBits(2048u64.into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
                Attribute::Verify(true),
                Attribute::Encrypt(true),
            ],
            &[
                Attribute::Token(false),
                Attribute::Sign(true),
                Attribute::Decrypt(true),
            ],
        )
        .expect("C_GenerateKeyPair(RSA 2048)")
}

fn oaep256() -> Mechanism<'static> {
    Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::empty(),
    ))
}

#[test]
fn token_rsa_signatures_and_openssl_rsa_ciphertexts_cross_over() {
    let (env, _ctx, session) = setup();
    let (public, private) = rsa_token_pair(&session);
    let n = attribute_bytes(&session, public, AttributeType::Modulus);
    let e = attribute_bytes(&session, public, AttributeType::PublicExponent);
    let pub_path = write_file(tmp(&env), "pub.der", &rsa_spki(&n, &e));
    let msg = b"signed in the token".to_vec();
    let msg_path = write_file(tmp(&env), "msg", &msg);
    let verify = |sig: &[u8], extra: &[&str]| {
        let sig_path = write_file(tmp(&env), "sig", sig);
        let mut args = vec![
            "dgst",
            "-sha256",
            "-verify",
            &pub_path,
            "-keyform",
            "DER",
            "-signature",
            &sig_path,
        ];
        args.extend_from_slice(extra);
        args.push(&msg_path);
        let out = openssl_ok(&args);
        assert!(String::from_utf8_lossy(&out).contains("Verified OK"));
    };
    verify(
        &session
            .sign(&Mechanism::Sha256RsaPkcs, private, &msg)
            .unwrap(),
        &[],
    );
    let pss = PkcsPssParams {
        hash_alg: MechanismType::SHA256,
        mgf: PkcsMgfType::MGF1_SHA256,
        s_len: 32u64.into(),
    };
    let sig = session
        .sign(&Mechanism::Sha256RsaPkcsPss(pss), private, &msg)
        .unwrap();
    verify(
        &sig,
        &[
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:32",
        ],
    );
    // openssl encrypts to the token's public key; the token decrypts.
    for (opts, mech) in [
        (vec!["rsa_padding_mode:pkcs1"], Mechanism::RsaPkcs),
        (
            vec![
                "rsa_padding_mode:oaep",
                "rsa_oaep_md:sha256",
                "rsa_mgf1_md:sha256",
            ],
            oaep256(),
        ),
    ] {
        let mut args = vec![
            "pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey", &pub_path, "-in",
            &msg_path,
        ];
        for o in &opts {
            args.extend_from_slice(&["-pkeyopt", o]);
        }
        let ct = openssl_ok(&args);
        assert_eq!(
            session.decrypt(&mech, private, &ct).unwrap(),
            msg,
            "{opts:?}"
        );
    }
}

/// Imports an `openssl genpkey` RSA key through its `-text` components.
fn import_openssl_rsa(session: &Session, text: &str) -> (ObjectHandle, ObjectHandle) {
    let f = |l| openssl_text_field(text, l);
    let k = RsaKey {
        n: f("modulus"),
        e: vec![1, 0, 1],
        d: f("privateExponent"),
        p: f("prime1"),
        q: f("prime2"),
        dp: f("exponent1"),
        dq: f("exponent2"),
        qinv: f("coefficient"),
    };
    (rsa_public(session, &k.n, &k.e), rsa_private(session, &k))
}

#[test]
fn openssl_rsa_keys_imported_by_components_sign_and_decrypt_in_the_token() {
    let (env, _ctx, session) = setup();
    let key_path = env.dir.path().join("rsa.pem").to_str().unwrap().to_owned();
    openssl_ok(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        &key_path,
    ]);
    let text =
        String::from_utf8(openssl_ok(&["pkey", "-in", &key_path, "-text", "-noout"])).unwrap();
    assert!(text.contains("publicExponent: 65537"), "{text}");
    let (public, private) = import_openssl_rsa(&session, &text);
    let msg = b"signed by openssl".to_vec();
    let msg_path = write_file(tmp(&env), "msg", &msg);
    let sig = openssl_ok(&["dgst", "-sha256", "-sign", &key_path, &msg_path]);
    session
        .verify(&Mechanism::Sha256RsaPkcs, public, &msg, &sig)
        .expect("token verifies openssl's signature");
    // PKCS#1 v1.5 signatures are deterministic: the token's equals openssl's.
    assert_eq!(
        session
            .sign(&Mechanism::Sha256RsaPkcs, private, &msg)
            .unwrap(),
        sig
    );
    let ct = openssl_ok(&[
        "pkeyutl",
        "-encrypt",
        "-inkey",
        &key_path,
        "-in",
        &msg_path,
        "-pkeyopt",
        "rsa_padding_mode:oaep",
        "-pkeyopt",
        "rsa_oaep_md:sha256",
        "-pkeyopt",
        "rsa_mgf1_md:sha256",
    ]);
    assert_eq!(session.decrypt(&oaep256(), private, &ct).unwrap(), msg);
}

fn ec_token_pair(session: &Session, oid: &str) -> (ObjectHandle, ObjectHandle) {
    session
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::EcParams(hex(oid)),
                Attribute::Verify(true),
            ],
            &[Attribute::Token(false), Attribute::Sign(true)],
        )
        .expect("C_GenerateKeyPair(EC)")
}

#[test]
fn ecdsa_on_p256_and_secp256k1_interoperates_with_openssl_both_ways() {
    let (env, _ctx, session) = setup();
    let msg = b"ecdsa interop".to_vec();
    let msg_path = write_file(tmp(&env), "msg", &msg);
    for (oid, curve) in [(OID_P256, "prime256v1"), (OID_SECP256K1, "secp256k1")] {
        let (public, private) = ec_token_pair(&session, oid);
        let point = point_of(&attribute_bytes(&session, public, AttributeType::EcPoint));
        let pub_path = write_file(tmp(&env), "pub.der", &ec_spki(oid, &point));
        let sig = session
            .sign(&Mechanism::EcdsaSha256, private, &msg)
            .unwrap();
        let sig_path = write_file(tmp(&env), "sig", &ecdsa_der(&sig));
        let out = openssl_ok(&[
            "dgst",
            "-sha256",
            "-verify",
            &pub_path,
            "-keyform",
            "DER",
            "-signature",
            &sig_path,
            &msg_path,
        ]);
        assert!(
            String::from_utf8_lossy(&out).contains("Verified OK"),
            "{curve}"
        );
        // The reverse: openssl's key and signature, verified in the token.
        let key_path = env.dir.path().join("ec.pem").to_str().unwrap().to_owned();
        openssl_ok(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            &format!("ec_paramgen_curve:{curve}"),
            "-out",
            &key_path,
        ]);
        let text =
            String::from_utf8(openssl_ok(&["pkey", "-in", &key_path, "-text", "-noout"])).unwrap();
        let their_point = openssl_text_field(&text, "pub");
        let theirs = ec_public(&session, KeyType::EC, oid, &their_point);
        let der = openssl_ok(&["dgst", "-sha256", "-sign", &key_path, &msg_path]);
        session
            .verify(&Mechanism::EcdsaSha256, theirs, &msg, &ecdsa_rs(&der, 32))
            .unwrap_or_else(|e| panic!("{curve}: {e}"));
    }
}

#[test]
fn sm2_signatures_interoperate_with_openssl_pkeyutl_both_ways() {
    let (env, _ctx, session) = setup();
    let (public, private) = session
        .generate_key_pair(
            &vendor_mech(CKM_SM2_KEY_PAIR_GEN),
            &[
                Attribute::Token(false),
                Attribute::EcParams(hex(OID_SM2)),
                Attribute::Verify(true),
            ],
            &[Attribute::Token(false), Attribute::Sign(true)],
        )
        .expect("C_GenerateKeyPair(SM2)");
    let point = point_of(&attribute_bytes(&session, public, AttributeType::EcPoint));
    let pub_path = write_file(tmp(&env), "pub.der", &ec_spki(OID_SM2, &point));
    let msg = b"sm2 interop message".to_vec();
    let msg_path = write_file(tmp(&env), "msg", &msg);
    let sig = session
        .sign(&vendor_mech(CKM_SM2_SM3), private, &msg)
        .unwrap();
    let sig_path = write_file(tmp(&env), "sig", &ecdsa_der(&sig));
    let out = openssl_ok(&[
        "pkeyutl",
        "-verify",
        "-rawin",
        "-digest",
        "sm3",
        "-pubin",
        "-keyform",
        "DER",
        "-inkey",
        &pub_path,
        "-in",
        &msg_path,
        "-sigfile",
        &sig_path,
        "-pkeyopt",
        "distid:1234567812345678",
    ]);
    assert!(String::from_utf8_lossy(&out).contains("Signature Verified Successfully"));
    // openssl signs with its own SM2 key; the token verifies with the default identifier.
    let key_path = env.dir.path().join("sm2.pem").to_str().unwrap().to_owned();
    openssl_ok(&["genpkey", "-algorithm", "SM2", "-out", &key_path]);
    let text =
        String::from_utf8(openssl_ok(&["pkey", "-in", &key_path, "-text", "-noout"])).unwrap();
    let theirs = ec_public(
        &session,
        sm2_type(),
        OID_SM2,
        &openssl_text_field(&text, "pub"),
    );
    let der = openssl_ok(&[
        "pkeyutl",
        "-sign",
        "-rawin",
        "-digest",
        "sm3",
        "-inkey",
        &key_path,
        "-in",
        &msg_path,
        "-pkeyopt",
        "distid:1234567812345678",
    ]);
    session
        .verify(&vendor_mech(CKM_SM2_SM3), theirs, &msg, &ecdsa_rs(&der, 32))
        .expect("token verifies openssl's SM2 signature");
    let _ = ObjectClass::PUBLIC_KEY;
}
