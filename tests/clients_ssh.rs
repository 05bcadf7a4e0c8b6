//! Real clients, part 5: OpenSSH. `ssh-keygen -D libkmshsm.so` prints the public keys of
//! the token's key pairs in authorized_keys form, without a PIN (public key objects are
//! not private); each equals the key pkcs11-tool reads from the token, converted by
//! `ssh-keygen -i -m PKCS8`. One RSA and one P-256 key pair, made by pkcs11-tool.
//!
//! Needs `ssh-keygen` (openssh-client), `pkcs11-tool` (opensc) and `openssl`. Run with
//! `cargo nextest run --test clients_ssh`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;
#[path = "clients/support.rs"]
mod support;

use common::*;
use support::*;

/// The token's public key `label` in OpenSSH form ("type base64"), from pkcs11-tool.
fn expected_ssh_key(env: &TestEnv, label: &str) -> String {
    let der = path_in(env, &format!("{label}.der"));
    pkcs11_tool()
        .args(["--read-object", "--type", "pubkey", "--label", label, "-o"])
        .arg(&der)
        .ok(env);
    let pem = path_in(env, &format!("{label}.pem"));
    openssl_cli()
        .args(["pkey", "-pubin", "-inform", "DER", "-in"])
        .arg(&der)
        .arg("-out")
        .arg(&pem)
        .ok(env);
    let out = Program::new("ssh-keygen", "openssh-client")
        .args(["-i", "-m", "PKCS8", "-f"])
        .arg(&pem)
        .ok(env);
    let mut words = out.stdout.split_whitespace();
    format!("{} {}", words.next().unwrap(), words.next().unwrap())
}

#[test]
fn ssh_keygen_prints_the_tokens_public_keys_from_the_module() {
    let env = released_token();
    pkcs11_tool()
        .args(["--keypairgen", "--key-type", "rsa:2048", "--usage-sign"])
        .args(["--id", "51", "--label", "ssh-rsa-key"])
        .ok(&env);
    pkcs11_tool()
        .args([
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--usage-sign",
        ])
        .args(["--id", "52", "--label", "ssh-ec-key"])
        .ok(&env);

    let out = Program::new("ssh-keygen", "openssh-client")
        .arg("-D")
        .arg(module_path())
        .ok(&env);
    let lines: Vec<&str> = out.stdout.lines().collect();
    for (label, kind) in [
        ("ssh-rsa-key", "ssh-rsa"),
        ("ssh-ec-key", "ecdsa-sha2-nistp256"),
    ] {
        let expected = expected_ssh_key(&env, label);
        assert!(expected.starts_with(kind), "{expected}");
        let line = lines
            .iter()
            .find(|l| l.starts_with(&expected))
            .unwrap_or_else(|| {
                panic!(
                    "ssh-keygen -D does not print {label} ({expected}):\n{}",
                    out.text()
                )
            });
        // ssh-keygen names each key by its CKA_LABEL.
        assert!(line.ends_with(label), "{line}");
    }
}
