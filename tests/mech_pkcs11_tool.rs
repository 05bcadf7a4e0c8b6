//! OpenSC's pkcs11-tool (0.23) driving the mechanisms: key generation, sign/verify (checked
//! with openssl too), encrypt/decrypt, hashing, the mechanism list, and `--test`.
//! Needs `pkcs11-tool` (`apt-get install -y opensc`) and `openssl`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::*;
use common::*;

/// A fresh environment with an initialised token (set up through cryptoki, then released).
fn token() -> TestEnv {
    let env = TestEnv::new();
    let ctx = env.load();
    init_token(&ctx);
    ctx.finalize().unwrap();
    env
}

fn login() -> Vec<&'static str> {
    vec!["--login", "--pin", USER_PIN]
}

fn tool(args: &[&str]) -> Run {
    let mut all = login();
    all.extend_from_slice(args);
    p11tool_ok(&all)
}

#[test]
fn list_mechanisms_names_the_registry() {
    let _env = token();
    let out = p11tool_ok(&["--list-mechanisms"]).text();
    for name in [
        "SHA256",
        "AES-CBC-PAD",
        "AES-GCM",
        "AES-CMAC",
        "AES-KEY-WRAP",
        "RSA-PKCS-OAEP",
        "SHA256-RSA-PKCS-PSS",
        "ECDSA-SHA256",
        "ECDH1-DERIVE",
        "SHA256-HMAC",
    ] {
        assert!(out.contains(name), "{name} missing:\n{out}");
    }
}

#[test]
fn keygen_and_keypairgen_make_the_requested_keys() {
    let _env = token();
    for (kind, id) in [
        ("rsa:2048", "01"),
        ("EC:prime256v1", "02"),
        ("EC:secp256k1", "03"),
    ] {
        let run = tool(&[
            "--keypairgen",
            "--key-type",
            kind,
            "--id",
            id,
            "--label",
            kind,
        ]);
        assert!(run.text().contains("Key pair generated"), "{run}");
    }
    for (kind, id) in [("AES:32", "11"), ("GENERIC:32", "12")] {
        let run = tool(&["--keygen", "--key-type", kind, "--id", id, "--label", kind]);
        assert!(run.text().contains("Key generated"), "{run}");
    }
    let list = tool(&["--list-objects"]).text();
    for needle in [
        "RSA 2048 bits",
        "EC_POINT 256 bits",
        "AES length 32",
        "label:      EC:secp256k1",
    ] {
        assert!(list.contains(needle), "{needle} missing:\n{list}");
    }
}

#[test]
fn signatures_made_by_pkcs11_tool_verify_in_the_tool_and_in_openssl() {
    let env = token();
    let dir = env.dir.path();
    tool(&["--keypairgen", "--key-type", "rsa:2048", "--id", "01"]);
    tool(&["--keypairgen", "--key-type", "EC:prime256v1", "--id", "02"]);
    let msg = write_file(dir, "msg", b"pkcs11-tool signs this");
    let rsa_pub = dir.join("rsa.der").to_str().unwrap().to_owned();
    tool(&[
        "--read-object",
        "--type",
        "pubkey",
        "--id",
        "01",
        "--output-file",
        &rsa_pub,
    ]);
    let ec_pub = dir.join("ec.der").to_str().unwrap().to_owned();
    tool(&[
        "--read-object",
        "--type",
        "pubkey",
        "--id",
        "02",
        "--output-file",
        &ec_pub,
    ]);
    for (mech, id, extra, pubkey, sigopts) in [
        ("SHA256-RSA-PKCS", "01", vec![], &rsa_pub, vec![]),
        (
            "SHA256-RSA-PKCS-PSS",
            "01",
            vec!["--mgf", "MGF1-SHA256", "--salt-len", "32"],
            &rsa_pub,
            vec![
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:32",
            ],
        ),
        (
            "ECDSA-SHA256",
            "02",
            vec!["--signature-format", "openssl"],
            &ec_pub,
            vec![],
        ),
    ] {
        let sig = dir.join("sig").to_str().unwrap().to_owned();
        let mut args = vec![
            "--sign",
            "--mechanism",
            mech,
            "--id",
            id,
            "--input-file",
            &msg,
            "--output-file",
            &sig,
        ];
        args.extend_from_slice(&extra);
        tool(&args);
        let mut args = vec![
            "--verify",
            "--mechanism",
            mech,
            "--id",
            id,
            "--input-file",
            &msg,
            "--signature-file",
            &sig,
        ];
        args.extend_from_slice(&extra);
        let run = tool(&args);
        assert!(run.text().contains("Signature is valid"), "{mech}: {run}");
        let mut args = vec![
            "dgst",
            "-sha256",
            "-verify",
            pubkey,
            "-keyform",
            "DER",
            "-signature",
            &sig,
        ];
        args.extend_from_slice(&sigopts);
        args.push(&msg);
        let out = openssl_ok(&args);
        assert!(
            String::from_utf8_lossy(&out).contains("Verified OK"),
            "{mech}"
        );
    }
}

#[test]
fn aes_cbc_pad_encrypt_decrypt_and_sha256_hash_match_openssl_and_sha256sum() {
    let env = token();
    let dir = env.dir.path();
    let data = b"pkcs11-tool encrypts these 41 bytes here.";
    let msg = write_file(dir, "msg", data);
    tool(&[
        "--keygen",
        "--key-type",
        "AES:32",
        "--id",
        "11",
        "--extractable",
    ]);
    let iv = "000102030405060708090a0b0c0d0e0f";
    let ct = dir.join("ct").to_str().unwrap().to_owned();
    tool(&[
        "--encrypt",
        "--mechanism",
        "AES-CBC-PAD",
        "--id",
        "11",
        "--iv",
        iv,
        "--input-file",
        &msg,
        "--output-file",
        &ct,
    ]);
    assert_eq!(std::fs::read(&ct).unwrap().len(), 48);
    let pt = dir.join("pt").to_str().unwrap().to_owned();
    tool(&[
        "--decrypt",
        "--mechanism",
        "AES-CBC-PAD",
        "--id",
        "11",
        "--iv",
        iv,
        "--input-file",
        &ct,
        "--output-file",
        &pt,
    ]);
    assert_eq!(std::fs::read(&pt).unwrap(), data);
    let digest = dir.join("digest").to_str().unwrap().to_owned();
    p11tool_ok(&[
        "--hash",
        "--mechanism",
        "SHA256",
        "--input-file",
        &msg,
        "--output-file",
        &digest,
    ]);
    let sum = std::process::Command::new(require_tool("sha256sum", "coreutils"))
        .arg(&msg)
        .output()
        .unwrap();
    let sum = String::from_utf8(sum.stdout).unwrap();
    assert_eq!(
        to_hex(&std::fs::read(&digest).unwrap()),
        sum.split_whitespace().next().unwrap()
    );
}

#[test]
fn pkcs11_tool_self_test_passes_on_a_token_with_rsa_and_ec_keys() {
    let _env = token();
    tool(&[
        "--keypairgen",
        "--key-type",
        "rsa:2048",
        "--id",
        "01",
        "--label",
        "rsa",
    ]);
    tool(&[
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--id",
        "02",
        "--label",
        "ec",
    ]);
    let run = p11tool(&["--test", "--login", "--pin", USER_PIN]);
    assert!(run.ok && run.text().contains("No errors"), "{run}");
}
