//! Real clients, part 4: the JDK's SunPKCS11 provider (the JDK on the machine, Debian's
//! default-jdk-headless), configured by a file naming the module and the token's slot ID:
//!
//! ```text
//! name = kmshsm
//! library = /path/to/libkmshsm.so
//! slot = <slot ID>
//! ```
//!
//! `keytool -genkeypair` makes an RSA and an EC key pair in the token with self-signed
//! certificates; `keytool -list` lists both entries; pkcs11-tool sees the same objects;
//! tests/clients/java/SignWithToken.java, compiled by javac, signs with each token key
//! (SHA256withRSA, SHA256withECDSA) and verifies in software with the certificate's key.
//!
//! Needs `java`, `javac`, `keytool` (default-jdk-headless) and `pkcs11-tool` (opensc).
//! Run with `cargo nextest run --test clients_java`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;
#[path = "clients/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use support::*;

const JDK: &str = "default-jdk-headless";
/// The JVM starts slowly; RSA key generation in a debug build of the module is slow too.
const JAVA_TIMEOUT: Duration = Duration::from_secs(240);

/// The SunPKCS11 configuration for the test token.
fn sunpkcs11_config(env: &TestEnv) -> PathBuf {
    let slot = token_slot_id(env);
    write_file(
        env,
        "sunpkcs11.cfg",
        format!(
            "name = kmshsm\nlibrary = {}\nslot = {slot}\n",
            module_path().display()
        )
        .as_bytes(),
    )
}

/// keytool on the token's PKCS11 key store.
fn keytool(config: &Path) -> Program {
    Program::new("keytool", JDK)
        .timeout(JAVA_TIMEOUT)
        .args(["-keystore", "NONE", "-storetype", "PKCS11"])
        .args(["-providerClass", "sun.security.pkcs11.SunPKCS11"])
        .arg("-providerArg")
        .arg(config)
        .args(["-storepass", USER_PIN])
}

#[test]
fn keytool_makes_and_lists_token_keys_and_a_java_program_signs_with_them_through_sunpkcs11() {
    let env = released_token();
    let config = sunpkcs11_config(&env);
    for (alias, alg, size, sigalg) in [
        ("java-rsa", "RSA", "2048", "SHA256withRSA"),
        ("java-ec", "EC", "256", "SHA256withECDSA"),
    ] {
        keytool(&config)
            .args([
                "-genkeypair",
                "-alias",
                alias,
                "-keyalg",
                alg,
                "-keysize",
                size,
            ])
            .args([
                "-sigalg",
                sigalg,
                "-dname",
                &format!("CN={alias}"),
                "-validity",
                "2",
            ])
            .ok(&env);
    }

    let listed = keytool(&config).arg("-list").ok(&env).stdout;
    assert!(
        listed.contains("Your keystore contains 2 entries"),
        "keytool -list:\n{listed}"
    );
    for alias in ["java-rsa", "java-ec"] {
        assert!(
            listed.contains(&format!("{alias}, PrivateKeyEntry")),
            "keytool -list does not show {alias}:\n{listed}"
        );
    }
    // Other clients see what Java made: per alias a private key and a certificate with
    // CKA_ID = the alias (SunPKCS11 labels the certificate, not the key).
    let objects = pkcs11_tool().arg("--list-objects").ok(&env).stdout;
    for alias in ["java-rsa", "java-ec"] {
        let id_line = format!("ID:         {}\n", to_hex(alias.as_bytes()));
        let with_id: Vec<&str> = objects
            .split("Object;")
            .filter(|o| o.contains(&id_line))
            .collect();
        assert!(
            with_id.iter().any(|o| o.contains("type = X.509 cert")
                && o.contains(&format!("label:      {alias}\n")))
                && with_id.len() >= 2,
            "pkcs11-tool does not see {alias}'s private key and certificate:\n{objects}"
        );
    }

    // The Java program.
    let classes = path_in(&env, "classes");
    std::fs::create_dir_all(&classes).unwrap();
    let source =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/java/SignWithToken.java");
    Program::new("javac", JDK)
        .timeout(JAVA_TIMEOUT)
        .arg("-d")
        .arg(&classes)
        .arg(&source)
        .ok(&env);
    for (alias, algorithm) in [
        ("java-rsa", "SHA256withRSA"),
        ("java-ec", "SHA256withECDSA"),
    ] {
        let out = Program::new("java", JDK)
            .timeout(JAVA_TIMEOUT)
            .arg("-cp")
            .arg(&classes)
            .arg("SignWithToken")
            .arg(&config)
            .args([USER_PIN, alias, algorithm])
            .ok(&env);
        assert!(
            out.stdout
                .starts_with(&format!("verified {alias} {algorithm} ")),
            "{}",
            out.text()
        );
    }
}
