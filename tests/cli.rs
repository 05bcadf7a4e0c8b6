//! The `kmshsm` command line: the KMS API of the kms-docs over the same token store as
//! the PKCS#11 module. The whole BYOK flow is done with the CLI and `openssl` only;
//! every wrapping algorithm imports material wrapped by `wrap-key-material` and material
//! wrapped by openssl alone, and the imported key is shown to be the material (it
//! encrypts as openssl does with it; its public key is the one openssl derives, and it
//! signs for it); a token obtained with the CLI is used through PKCS#11 and the reverse;
//! errors carry the kms-docs codes.
//! Needs `openssl`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType};
use serde_json::Value;

/// A token with the user PIN set, released so the CLI can open it.
fn token() -> TestEnv {
    let env = TestEnv::new();
    let ctx = env.load();
    init_token(&ctx);
    ctx.finalize().unwrap();
    env
}

struct Out {
    ok: bool,
    json: Value,
}

fn cli(args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_kmshsm"))
        .args(args)
        .env("KMSHSM_PIN", USER_PIN)
        .output()
        .expect("run kmshsm");
    let text = if out.status.success() {
        &out.stdout
    } else {
        &out.stderr
    };
    let json = serde_json::from_slice(text).unwrap_or_else(|e| {
        panic!(
            "kmshsm {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(text)
        )
    });
    Out {
        ok: out.status.success(),
        json,
    }
}

fn ok(args: &[&str]) -> Value {
    let out = cli(args);
    assert!(out.ok, "kmshsm {args:?} failed: {}", out.json);
    out.json
}

fn fails_with(args: &[&str], code: &str) {
    let out = cli(args);
    assert!(!out.ok, "kmshsm {args:?} should fail");
    assert_eq!(out.json["Code"], code, "{}", out.json);
    assert!(out.json["Message"].as_str().is_some_and(|m| !m.is_empty()));
}

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let program = require_tool("openssl", "openssl");
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

fn create_external(spec: &str, usage: &str) -> String {
    let out = ok(&[
        "create-key",
        "--origin",
        "EXTERNAL",
        "--key-spec",
        spec,
        "--key-usage",
        usage,
    ]);
    assert_eq!(out["KeyMetadata"]["KeyState"], "PendingImport");
    assert_eq!(out["KeyMetadata"]["Origin"], "EXTERNAL");
    s(&out["KeyMetadata"]["KeyId"])
}

fn params(key_id: &str, alg: &str, spec: &str) -> (String, String) {
    let out = ok(&[
        "get-parameters-for-import",
        "--key-id",
        key_id,
        "--wrapping-algorithm",
        alg,
        "--wrapping-key-spec",
        spec,
    ]);
    assert_eq!(out["KeyId"], key_id);
    assert!(s(&out["TokenExpireTime"]).ends_with('Z'));
    let token = s(&out["ImportToken"]);
    assert_huawei_import_token(&token);
    (s(&out["PublicKey"]), token)
}

/// Huawei's `import_token`: `^[0-9a-zA-Z+/=]{200,6144}$`.
fn assert_huawei_import_token(token: &str) {
    assert!(
        (200..=6144).contains(&token.len()),
        "an ImportToken of {} characters",
        token.len()
    );
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)),
        "an ImportToken outside [0-9a-zA-Z+/=]"
    );
}

/// Wraps `material` with the CLI and imports it into `key` (RSAES_OAEP_SHA_256).
fn import_with_cli(dir: &Path, key: &str, material: &[u8]) {
    let (public, token) = params(key, "RSAES_OAEP_SHA_256", "RSA_2048");
    let file = write(dir, &format!("{key}.bin"), material);
    let wrapped = s(&ok(&[
        "wrap-key-material",
        "--public-key",
        &public,
        "--wrapping-algorithm",
        "RSAES_OAEP_SHA_256",
        "--key-material-file",
        &file,
    ])["EncryptedKeyMaterial"]);
    ok(&[
        "import-key-material",
        "--key-id",
        key,
        "--encrypted-key-material",
        &wrapped,
        "--import-token",
        &token,
    ]);
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_owned()
}

#[test]
fn the_byok_flow_works_with_the_cli_and_openssl_only() {
    let env = token();
    let dir = env.dir.path();
    let key = create_external("AES_256", "ENCRYPT/DECRYPT");
    let material = [0x42u8; 32];
    let material_file = write(dir, "material.bin", &material);
    let (public, token) = params(&key, "RSAES_OAEP_SHA_256", "RSA_2048");
    let public_file = write(dir, "public.der", &unb64(&public));
    let wrapped = openssl(&[
        "pkeyutl",
        "-encrypt",
        "-pubin",
        "-keyform",
        "DER",
        "-inkey",
        &public_file,
        "-in",
        &material_file,
        "-pkeyopt",
        "rsa_padding_mode:oaep",
        "-pkeyopt",
        "rsa_oaep_md:sha256",
        "-pkeyopt",
        "rsa_mgf1_md:sha256",
    ]);
    let expiry = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600)
        .to_string();
    ok(&[
        "import-key-material",
        "--key-id",
        &key,
        "--encrypted-key-material",
        &b64(&wrapped),
        "--import-token",
        &token,
        "--key-material-expire-unix",
        &expiry,
    ]);
    let described = ok(&["describe-key", "--key-id", &key]);
    assert_eq!(described["KeyMetadata"]["KeyState"], "Enabled");
    assert!(described["KeyMetadata"]["MaterialExpireTime"].is_string());

    let blob = s(&ok(&[
        "encrypt",
        "--key-id",
        &key,
        "--plaintext",
        &b64(b"kms data"),
    ])["CiphertextBlob"]);
    // The blob is version || KeyId || IV || AES-256-GCM ciphertext || tag (docs/cli.md):
    // openssl enc has no AEAD, so decrypt round trips and the key is the imported one below.
    assert_eq!(
        unb64(&s(&ok(&[
            "decrypt",
            "--key-id",
            &key,
            "--ciphertext-blob",
            &blob
        ])["Plaintext"])),
        b"kms data"
    );

    ok(&["delete-key-material", "--key-id", &key]);
    assert_eq!(
        ok(&["describe-key", "--key-id", &key])["KeyMetadata"]["KeyState"],
        "PendingImport"
    );
    fails_with(
        &["decrypt", "--key-id", &key, "--ciphertext-blob", &blob],
        "IncorrectKeyState",
    );

    // Other material is refused; the same material comes back with a new token.
    let (public, token) = params(&key, "RSAES_OAEP_SHA_1", "RSA_2048");
    let other_file = write(dir, "other.bin", &[0x43u8; 32]);
    let other = s(&ok(&[
        "wrap-key-material",
        "--public-key",
        &public,
        "--wrapping-algorithm",
        "RSAES_OAEP_SHA_1",
        "--key-material-file",
        &other_file,
    ])["EncryptedKeyMaterial"]);
    fails_with(
        &[
            "import-key-material",
            "--key-id",
            &key,
            "--encrypted-key-material",
            &other,
            "--import-token",
            &token,
        ],
        "InvalidKeyMaterial",
    );
    let same = s(&ok(&[
        "wrap-key-material",
        "--public-key",
        &public,
        "--wrapping-algorithm",
        "RSAES_OAEP_SHA_1",
        "--key-material-file",
        &material_file,
    ])["EncryptedKeyMaterial"]);
    ok(&[
        "import-key-material",
        "--key-id",
        &key,
        "--encrypted-key-material",
        &same,
        "--import-token",
        &token,
    ]);
    assert_eq!(
        unb64(&s(&ok(&[
            "decrypt",
            "--key-id",
            &key,
            "--ciphertext-blob",
            &blob
        ])["Plaintext"])),
        b"kms data"
    );
}

/// Material for a spec, made by openssl: (file contents, for wrap-key-material).
fn material_for(spec: &str, dir: &Path) -> Vec<u8> {
    let genpkey = |args: &[&str]| {
        let pem = dir.join(format!("{spec}.pem"));
        let mut all = vec!["genpkey"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-out", pem.to_str().unwrap()]);
        openssl(&all);
        pem
    };
    match spec {
        "AES_256" => vec![0x21; 32],
        "SM4" => vec![0x22; 16],
        "RSA_2048" => {
            let pem = genpkey(&["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]);
            openssl(&[
                "pkcs8",
                "-topk8",
                "-nocrypt",
                "-outform",
                "DER",
                "-in",
                pem.to_str().unwrap(),
            ])
        }
        "EC_P256" | "EC_P256K" => {
            let curve = if spec == "EC_P256" {
                "P-256"
            } else {
                "secp256k1"
            };
            let pem = genpkey(&[
                "-algorithm",
                "EC",
                "-pkeyopt",
                &format!("ec_paramgen_curve:{curve}"),
            ]);
            openssl(&[
                "pkcs8",
                "-topk8",
                "-nocrypt",
                "-outform",
                "DER",
                "-in",
                pem.to_str().unwrap(),
            ])
        }
        "EC_SM2" => {
            let pem = genpkey(&["-algorithm", "SM2"]);
            let text = String::from_utf8(openssl(&[
                "pkey",
                "-in",
                pem.to_str().unwrap(),
                "-text",
                "-noout",
            ]))
            .unwrap();
            let hex: String = text
                .lines()
                .skip_while(|l| !l.starts_with("priv:"))
                .skip(1)
                .take_while(|l| l.starts_with(' '))
                .flat_map(|l| l.trim().split(':').map(str::to_owned).collect::<Vec<_>>())
                .collect();
            let d = common::hex(&hex);
            // openssl may print a leading zero byte; the scalar is 32 bytes.
            d[d.len() - 32..].to_vec()
        }
        other => panic!("no material for {other}"),
    }
}

#[test]
fn every_wrapping_algorithm_imports_through_wrap_key_material() {
    let env = token();
    let dir = env.dir.path();
    let cases = [
        ("AES_256", "ENCRYPT/DECRYPT", "RSAES_PKCS1_V1_5", "RSA_2048"),
        ("AES_256", "ENCRYPT/DECRYPT", "RSAES_OAEP_SHA_1", "RSA_2048"),
        (
            "AES_256",
            "ENCRYPT/DECRYPT",
            "RSAES_OAEP_SHA_256",
            "RSA_2048",
        ),
        (
            "SM4",
            "ENCRYPT/DECRYPT",
            "RSA_AES_KEY_WRAP_SHA_1",
            "RSA_2048",
        ),
        (
            "AES_256",
            "ENCRYPT/DECRYPT",
            "RSA_AES_KEY_WRAP_SHA_256",
            "RSA_2048",
        ),
        ("SM4", "ENCRYPT/DECRYPT", "SM2PKE", "EC_SM2"),
        (
            "RSA_2048",
            "SIGN/VERIFY",
            "RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD",
            "RSA_2048",
        ),
        (
            "EC_P256",
            "SIGN/VERIFY",
            "RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD",
            "RSA_2048",
        ),
        (
            "EC_P256K",
            "SIGN/VERIFY",
            "RSA_AES_KEY_WRAP_SHA_256",
            "RSA_2048",
        ),
        ("EC_SM2", "SIGN/VERIFY", "SM2PKE_SM4_ECB", "EC_SM2"),
    ];
    let work = common::kms::Work::new(&env);
    // (key, spec, material file, openssl's PEM of asymmetric material) of every import.
    let mut imported = Vec::new();
    for (spec, usage, alg, wrapping_spec) in cases {
        let material = material_for(spec, dir);
        let material_file = write(dir, &format!("{spec}.bin"), &material);
        let pem = dir.join(format!("{spec}.pem"));
        // The same material into two keys: wrapped by the CLI's own wrap-key-material,
        // and wrapped by openssl alone (tests/common/kms.rs, the kms-docs formats).
        for by_openssl in [false, true] {
            let key = create_external(spec, usage);
            let (public, token) = params(&key, alg, wrapping_spec);
            let wrapped = if by_openssl {
                b64(&work.wrap(wrap_code(alg), &unb64(&public), &material))
            } else {
                s(&ok(&[
                    "wrap-key-material",
                    "--public-key",
                    &public,
                    "--wrapping-algorithm",
                    alg,
                    "--key-material-file",
                    &material_file,
                ])["EncryptedKeyMaterial"])
            };
            ok(&[
                "import-key-material",
                "--key-id",
                &key,
                "--encrypted-key-material",
                &wrapped,
                "--import-token",
                &token,
            ]);
            assert_eq!(
                ok(&["describe-key", "--key-id", &key])["KeyMetadata"]["KeyState"],
                "Enabled",
                "{spec} with {alg}"
            );
            if usage == "SIGN/VERIFY" {
                // The key's public half is the material's, as openssl derives it.
                let ours = s(&ok(&["get-public-key", "--key-id", &key])["PublicKey"]);
                let theirs = openssl(&["pkey", "-in", pem.to_str().unwrap(), "-pubout"]);
                assert_eq!(
                    ours.trim(),
                    String::from_utf8_lossy(&theirs).trim(),
                    "{spec} with {alg}: the imported key is not the material"
                );
                // And its private half signs for the material's public key.
                let theirs = write(dir, "material-pub.pem", &theirs);
                let algorithm = match spec {
                    "RSA_2048" => "RSA_PKCS1_SHA_256",
                    "EC_SM2" => "SM2DSA",
                    _ => "ECDSA_SHA_256",
                };
                signs_for_openssl(dir, &key, algorithm, &theirs);
            }
            imported.push((key, spec, material.clone(), alg, by_openssl));
        }
    }
    // Known answers through PKCS#11: each symmetric key encrypts as openssl does with the
    // material; each signing key's signature verifies with openssl under the material's
    // public key (its equality with the key's was checked above).
    let ctx = env.load();
    let session = user_session(&ctx, slot_of_token(&ctx, TOKEN_LABEL));
    for (key, spec, material, alg, by_openssl) in &imported {
        let what = format!("{spec} with {alg} (wrapped by openssl: {by_openssl})");
        let (spec_code, cipher) = match *spec {
            "AES_256" => (common::kms::Spec::Aes256, "aes-256-cbc"),
            "SM4" => (common::kms::Spec::Sm4, "sm4-cbc"),
            _ => continue,
        };
        let objects = common::kms::objects_of_key(&session, key);
        assert_eq!(objects.len(), 1, "{what}: the secret key's objects");
        let handle = objects[0];
        let got = common::kms::encrypt_with(&session, spec_code, handle).unwrap();
        let expected = work.enc(
            cipher,
            material,
            Some(&common::kms::IV),
            true,
            common::kms::PLAINTEXT,
        );
        assert_eq!(to_hex(&got), to_hex(&expected), "{what}");
    }
    drop(session);
    ctx.finalize().unwrap();
}

/// The wrapping algorithm code of tests/common/kms.rs for a kms-docs name.
fn wrap_code(alg: &str) -> u64 {
    use common::kms::*;
    match alg {
        "RSAES_PKCS1_V1_5" => WRAP_RSAES_PKCS1_V1_5,
        "RSAES_OAEP_SHA_1" => WRAP_RSAES_OAEP_SHA_1,
        "RSAES_OAEP_SHA_256" => WRAP_RSAES_OAEP_SHA_256,
        "RSA_AES_KEY_WRAP_SHA_1" => WRAP_RSA_AES_KEY_WRAP_SHA_1,
        "RSA_AES_KEY_WRAP_SHA_256" => WRAP_RSA_AES_KEY_WRAP_SHA_256,
        "RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD" => WRAP_RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD,
        "SM2PKE" => WRAP_SM2PKE,
        "SM2PKE_SM4_ECB" => WRAP_SM2PKE_SM4_ECB,
        other => panic!("no wrapping algorithm {other}"),
    }
}

#[test]
fn signatures_of_generated_keys_verify_with_openssl() {
    let env = token();
    let dir = env.dir.path();
    for (spec, algorithm) in [
        ("RSA_2048", "RSA_PKCS1_SHA_256"),
        ("EC_P256", "ECDSA_SHA_256"),
    ] {
        let created = ok(&[
            "create-key",
            "--key-spec",
            spec,
            "--key-usage",
            "SIGN/VERIFY",
        ]);
        assert_eq!(created["KeyMetadata"]["Origin"], "Aliyun_KMS");
        assert_eq!(created["KeyMetadata"]["KeyState"], "Enabled");
        let key = s(&created["KeyMetadata"]["KeyId"]);
        let pem = write(
            dir,
            "pub.pem",
            s(&ok(&["get-public-key", "--key-id", &key])["PublicKey"]).as_bytes(),
        );
        signs_for_openssl(dir, &key, algorithm, &pem);
    }
}

/// Signs with `key` through the CLI and has openssl verify the signature under the
/// public key in PEM file `pem` (the CLI's r || s made DER for ECDSA and SM2DSA; SM2 with
/// the default identifier, GB/T 35276's 1234567812345678).
fn signs_for_openssl(dir: &Path, key: &str, algorithm: &str, pem: &str) {
    let msg = write(dir, "msg", b"hello openssl");
    let sig = s(&ok(&[
        "sign",
        "--key-id",
        key,
        "--algorithm",
        algorithm,
        "--message",
        &b64(b"hello openssl"),
    ])["Value"]);
    let mut sig = unb64(&sig);
    if algorithm == "ECDSA_SHA_256" || algorithm == "SM2DSA" {
        // PKCS#11 gives r || s; openssl wants DER.
        let der_int = |b: &[u8]| {
            let b: Vec<u8> = b.iter().copied().skip_while(|x| *x == 0).collect();
            let mut v = if b.first().is_some_and(|x| x & 0x80 != 0) {
                vec![0]
            } else {
                vec![]
            };
            v.extend(b);
            [vec![2, v.len() as u8], v].concat()
        };
        let body = [der_int(&sig[..32]), der_int(&sig[32..])].concat();
        sig = [vec![0x30, body.len() as u8], body].concat();
    }
    let sig_file = write(dir, "sig", &sig);
    let mut args = vec!["dgst"];
    if algorithm == "SM2DSA" {
        args.extend(["-sm3", "-sigopt", "distid:1234567812345678"]);
    } else {
        args.push("-sha256");
    }
    args.extend(["-verify", pem, "-signature", &sig_file, &msg]);
    openssl(&args);
}

#[test]
fn import_parameters_from_the_cli_work_through_pkcs11_and_the_reverse() {
    let env = token();
    let key = create_external("AES_256", "ENCRYPT/DECRYPT");
    let material = [0x55u8; 32];
    let (public, token) = params(&key, "RSAES_OAEP_SHA_256", "RSA_2048");

    // Import through PKCS#11 with the CLI's token.
    let ctx = env.load();
    let session = user_session(&ctx, slot_of_token(&ctx, TOKEN_LABEL));
    let spki = unb64(&public);
    let rsa = {
        let (_, rsa_der) = kmshsm::crypto::pkcs8::decode_spki(&spki).unwrap();
        let (n, e) = kmshsm::crypto::rsa::RsaComponents::from_public_der(rsa_der).unwrap();
        kmshsm::crypto::rsa::RsaPublicKey::new(&n, &e).unwrap()
    };
    let wrapped = rsa
        .encrypt_oaep(&material, kmshsm::crypto::hash::HashAlg::Sha256, &[])
        .unwrap();
    let vtype = |t: u64| AttributeType::VendorDefined(t as _);
    let found = session
        .find_objects(&[
            Attribute::Class(cryptoki::object::ObjectClass::PRIVATE_KEY),
            Attribute::VendorDefined((
                vtype(kmshsm::vendor::CKA_KMSHSM_IMPORT_TOKEN),
                unb64(&token),
            )),
        ])
        .unwrap();
    let private = *found.first().expect("the wrapping private key");
    let oaep = PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::empty(),
    );
    session
        .unwrap_key(
            &Mechanism::RsaPkcsOaep(oaep),
            private,
            &wrapped,
            &[Attribute::VendorDefined((
                vtype(kmshsm::vendor::CKA_KMSHSM_IMPORT_TOKEN),
                unb64(&token),
            ))],
        )
        .unwrap();
    drop(session);
    ctx.finalize().unwrap();
    assert_eq!(
        ok(&["describe-key", "--key-id", &key])["KeyMetadata"]["KeyState"],
        "Enabled"
    );

    // The reverse: parameters through PKCS#11, import through the CLI.
    ok(&["delete-key-material", "--key-id", &key]);
    let ctx = env.load();
    let session = user_session(&ctx, slot_of_token(&ctx, TOKEN_LABEL));
    let (public, private) = session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[Attribute::ModulusBits(2048.into())],
            &[
                Attribute::VendorDefined((
                    vtype(kmshsm::vendor::CKA_KMSHSM_IMPORT_TARGET),
                    key.as_bytes().to_vec(),
                )),
                Attribute::VendorDefined((
                    vtype(kmshsm::vendor::CKA_KMSHSM_WRAPPING_ALGORITHM),
                    (kmshsm::vendor::KMSHSM_WRAP_RSAES_OAEP_SHA_256 as cryptoki_sys::CK_ULONG)
                        .to_ne_bytes()
                        .to_vec(),
                )),
            ],
        )
        .unwrap();
    let spki = attribute_bytes(&session, public, AttributeType::PublicKeyInfo);
    let token = attribute_bytes(
        &session,
        private,
        AttributeType::VendorDefined(kmshsm::vendor::CKA_KMSHSM_IMPORT_TOKEN as _),
    );
    drop(session);
    ctx.finalize().unwrap();
    let material_file = write(env.dir.path(), "m.bin", &material);
    let wrapped = s(&ok(&[
        "wrap-key-material",
        "--public-key",
        &b64(&spki),
        "--wrapping-algorithm",
        "RSAES_OAEP_SHA_256",
        "--key-material-file",
        &material_file,
    ])["EncryptedKeyMaterial"]);
    ok(&[
        "import-key-material",
        "--key-id",
        &key,
        "--encrypted-key-material",
        &wrapped,
        "--import-token",
        &b64(&token),
    ]);
    assert_eq!(
        ok(&["describe-key", "--key-id", &key])["KeyMetadata"]["KeyState"],
        "Enabled"
    );
}

#[test]
fn errors_carry_the_kms_codes_and_a_failing_exit() {
    let _env = token();
    fails_with(
        &[
            "describe-key",
            "--key-id",
            "00000000-0000-4000-8000-000000000000",
        ],
        "Forbidden.KeyNotFound",
    );
    fails_with(
        &["encrypt", "--key-id", "x", "--plaintext", "%%%"],
        "InvalidParameter",
    );
    let kms_key = s(&ok(&["create-key", "--key-spec", "AES_256"])["KeyMetadata"]["KeyId"]);
    fails_with(
        &[
            "get-parameters-for-import",
            "--key-id",
            &kms_key,
            "--wrapping-algorithm",
            "RSAES_OAEP_SHA_256",
        ],
        "Unsupported.Origin",
    );
    let external = create_external("AES_256", "ENCRYPT/DECRYPT");
    fails_with(
        &[
            "get-parameters-for-import",
            "--key-id",
            &external,
            "--wrapping-algorithm",
            "RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD",
        ],
        "InvalidParameter",
    );
    fails_with(
        &[
            "import-key-material",
            "--key-id",
            &external,
            "--encrypted-key-material",
            "AAAA",
            "--import-token",
            "AAAA",
        ],
        "InvalidImportToken",
    );
    fails_with(
        &[
            "create-key",
            "--key-spec",
            "EC_P256",
            "--key-usage",
            "ENCRYPT/DECRYPT",
        ],
        "InvalidParameter",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_kmshsm"))
        .args(["list-keys", "--pin", "wrong-pin"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let json: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(json["Code"], "Forbidden.PinIncorrect");
}

#[test]
fn two_keys_with_the_same_material_do_not_decrypt_each_others_blobs() {
    let env = token();
    let dir = env.dir.path();
    for (spec, material) in [("AES_256", vec![0x61u8; 32]), ("SM4", vec![0x62u8; 16])] {
        let a = create_external(spec, "ENCRYPT/DECRYPT");
        let b = create_external(spec, "ENCRYPT/DECRYPT");
        import_with_cli(dir, &a, &material);
        import_with_cli(dir, &b, &material);
        let blob = unb64(&s(&ok(&[
            "encrypt",
            "--key-id",
            &a,
            "--plaintext",
            &b64(b"for a only"),
        ])["CiphertextBlob"]));
        // version 1 || KeyId || IV || ciphertext || tag.
        assert_eq!(blob[0], 1, "{spec}");
        assert_eq!(&blob[1..37], a.as_bytes(), "{spec}");
        assert_eq!(blob.len(), 1 + 36 + 12 + b"for a only".len() + 16, "{spec}");

        // Decrypt needs only the blob; naming its own key works too.
        for args in [vec![], vec!["--key-id", a.as_str()]] {
            let mut all = vec!["decrypt", "--ciphertext-blob"];
            let text = b64(&blob);
            all.push(&text);
            all.extend(args);
            let out = ok(&all);
            assert_eq!(out["KeyId"], a.as_str(), "{spec}");
            assert_eq!(unb64(&s(&out["Plaintext"])), b"for a only", "{spec}");
        }
        // The other key, named on the command line: refused.
        fails_with(
            &["decrypt", "--key-id", &b, "--ciphertext-blob", &b64(&blob)],
            "InvalidCiphertext",
        );
        // The blob relabelled to the other key, which holds the same material: the tag
        // covers the KeyId, so B refuses it, with or without --key-id.
        let mut relabelled = blob.clone();
        relabelled[1..37].copy_from_slice(b.as_bytes());
        fails_with(
            &["decrypt", "--ciphertext-blob", &b64(&relabelled)],
            "InvalidCiphertext",
        );
        fails_with(
            &[
                "decrypt",
                "--key-id",
                &b,
                "--ciphertext-blob",
                &b64(&relabelled),
            ],
            "InvalidCiphertext",
        );
        // And B's own blobs do not open under A.
        let blob_b = unb64(&s(&ok(&[
            "encrypt",
            "--key-id",
            &b,
            "--plaintext",
            &b64(b"for b only"),
        ])["CiphertextBlob"]));
        let mut relabelled = blob_b.clone();
        relabelled[1..37].copy_from_slice(a.as_bytes());
        fails_with(
            &["decrypt", "--ciphertext-blob", &b64(&relabelled)],
            "InvalidCiphertext",
        );
    }
}

#[test]
fn a_blob_with_another_version_or_key_id_is_refused() {
    let env = token();
    let key = create_external("AES_256", "ENCRYPT/DECRYPT");
    import_with_cli(env.dir.path(), &key, &[0x63; 32]);
    let blob = unb64(&s(&ok(&[
        "encrypt",
        "--key-id",
        &key,
        "--plaintext",
        &b64(b"versioned"),
    ])["CiphertextBlob"]));
    let decrypt = |bytes: &[u8], code: &str| {
        fails_with(&["decrypt", "--ciphertext-blob", &b64(bytes)], code);
        fails_with(
            &[
                "decrypt",
                "--key-id",
                &key,
                "--ciphertext-blob",
                &b64(bytes),
            ],
            code,
        );
    };
    for version in [0u8, 2, 0xff] {
        let mut b = blob.clone();
        b[0] = version;
        decrypt(&b, "InvalidCiphertext");
    }
    // A KeyId that is no KeyId; one of a key that does not exist.
    let mut b = blob.clone();
    b[1] = b'Z';
    decrypt(&b, "InvalidCiphertext");
    let mut b = blob.clone();
    b[1..37].copy_from_slice(b"00000000-0000-4000-8000-000000000000");
    fails_with(
        &["decrypt", "--ciphertext-blob", &b64(&b)],
        "Forbidden.KeyNotFound",
    );
    // The layout written before version 1: IV || ciphertext || tag, no version, no KeyId.
    decrypt(&blob[37..], "InvalidCiphertext");
    // Truncated, and a flipped ciphertext bit.
    decrypt(&blob[..40], "InvalidCiphertext");
    let mut b = blob.clone();
    b[50] ^= 1;
    decrypt(&b, "InvalidCiphertext");
    // The untouched blob still decrypts.
    let out = ok(&["decrypt", "--ciphertext-blob", &b64(&blob)]);
    assert_eq!(unb64(&s(&out["Plaintext"])), b"versioned");
}

#[test]
fn an_expired_import_token_is_expired_import_token_after_the_sweep() {
    let env = token();
    let dir = env.dir.path();
    let key = create_external("AES_256", "ENCRYPT/DECRYPT");
    let (public, token) = params(&key, "RSAES_OAEP_SHA_256", "RSA_2048");
    let file = write(dir, "material.bin", &[0x64; 32]);
    let wrapped = s(&ok(&[
        "wrap-key-material",
        "--public-key",
        &public,
        "--wrapping-algorithm",
        "RSAES_OAEP_SHA_256",
        "--key-material-file",
        &file,
    ])["EncryptedKeyMaterial"]);
    let import_fails = |token: &str, code: &str| {
        fails_with(
            &[
                "import-key-material",
                "--key-id",
                &key,
                "--encrypted-key-material",
                &wrapped,
                "--import-token",
                token,
            ],
            code,
        )
    };

    // 25 hours later (the CLI inherits the clock offset).
    common::kms::set_clock_offset(25 * 3600);
    import_fails(&token, "ExpiredImportToken");
    // The sweep has purged the wrapping key: no object carries the token any more...
    let ctx = env.load();
    let session = user_session(&ctx, slot_of_token(&ctx, TOKEN_LABEL));
    let carrying = session
        .find_objects(&[Attribute::VendorDefined((
            AttributeType::VendorDefined(kmshsm::vendor::CKA_KMSHSM_IMPORT_TOKEN as _),
            unb64(&token),
        ))])
        .unwrap();
    assert!(carrying.is_empty(), "the wrapping key outlived its token");
    drop(session);
    ctx.finalize().unwrap();
    // ...and the authentic token is still told it expired, while an altered one is not
    // authentic.
    import_fails(&token, "ExpiredImportToken");
    let mut altered = unb64(&token);
    altered[10] ^= 1;
    import_fails(&b64(&altered), "InvalidImportToken");
    assert_eq!(
        ok(&["describe-key", "--key-id", &key])["KeyMetadata"]["KeyState"],
        "PendingImport"
    );
}

#[test]
fn import_tokens_fit_huawei_import_token_for_both_wrapping_key_specs() {
    let _env = token();
    let aes = create_external("AES_256", "ENCRYPT/DECRYPT");
    let sm2 = create_external("EC_SM2", "SIGN/VERIFY");
    for (key, alg, spec) in [
        (&aes, "RSAES_OAEP_SHA_256", "RSA_2048"),
        (&sm2, "SM2PKE_SM4_ECB", "EC_SM2"),
    ] {
        // `params` checks ^[0-9a-zA-Z+/=]{200,6144}$; here the exact layout too.
        let (_, token) = params(key, alg, spec);
        let bytes = unb64(&token);
        assert_eq!(&bytes[..4], b"KMT2");
        assert_eq!(&bytes[4..40], key.as_bytes());
        assert_eq!(token.len(), 216);
    }
}
