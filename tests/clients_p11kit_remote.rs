//! Real clients, part 7: a token shared over a socket with `p11-kit server` and used
//! through p11-kit's client module (`p11-kit-client.so`), as docs/clients.md describes.
//!
//! p11-kit's RPC carries only the mechanisms whose parameters it knows how to serialise,
//! so a remote client sees fewer mechanisms than the module has. This test measures what
//! survives and keeps docs/clients.md true: the mechanisms listed remotely must be
//! exactly the documented set (Debian's p11-kit 0.24.1), and a remote RSA signature made
//! with a key generated remotely must verify.
//!
//! Needs `p11-kit` (p11-kit, with p11-kit-modules' `p11-kit-client.so`) and
//! `pkcs11-tool` (opensc). Run with `cargo nextest run --test clients_p11kit_remote`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;
#[path = "clients/support.rs"]
mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use support::*;

/// What a client of Debian's p11-kit 0.24.1 sees of kmshsm's mechanisms (pkcs11-tool's
/// names); the same list is in docs/clients.md.
const REMOTE_MECHANISMS: &[&str] = &[
    "AES-ECB",
    "AES-KEY-GEN",
    "ECDSA",
    "ECDSA-KEY-PAIR-GEN",
    "ECDSA-SHA1",
    "GENERIC-SECRET-KEY-GEN",
    "RSA-PKCS",
    "RSA-PKCS-KEY-PAIR-GEN",
    "RSA-PKCS-OAEP",
    "RSA-PKCS-PSS",
    "RSA-X-509",
    "SHA-1",
    "SHA-1-HMAC",
    "SHA1-RSA-PKCS",
    "SHA256",
    "SHA256-HMAC",
    "SHA256-RSA-PKCS",
    "SHA384",
    "SHA384-HMAC",
    "SHA384-RSA-PKCS",
    "SHA512",
    "SHA512-HMAC",
    "SHA512-RSA-PKCS",
];

fn client_module() -> PathBuf {
    let path = PathBuf::from("/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so");
    assert!(
        path.exists(),
        "this test needs {}, which is missing; install it with `apt-get install -y p11-kit-modules`",
        path.display()
    );
    path
}

/// The mechanism names in `pkcs11-tool -M` output.
fn mechanism_names(listing: &str) -> BTreeSet<String> {
    listing
        .lines()
        .filter(|l| l.starts_with("  "))
        .filter_map(|l| l.trim().split(',').next())
        .map(str::to_owned)
        .collect()
}

/// A running `p11-kit server` sharing the test token on a socket of the test's own.
struct Server {
    child: std::process::Child,
    address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(env: &TestEnv) -> Server {
    let socket = env.dir.path().join("p11-kit.sock");
    let child = Program::new("p11-kit", "p11-kit")
        .args(["server", "-f", "-n"])
        .arg(&socket)
        .arg("--provider")
        .arg(module_path())
        .arg(format!("pkcs11:token={TOKEN_LABEL}"))
        .spawn();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "p11-kit server made no socket in 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        child,
        address: format!("unix:path={}", socket.display()),
    }
}

fn remote_tool(server: &Server) -> Program {
    Program::new("pkcs11-tool", "opensc")
        .arg("--module")
        .arg(client_module())
        .env("P11_KIT_SERVER_ADDRESS", &server.address)
}

#[test]
fn a_token_shared_with_p11_kit_server_shows_the_documented_mechanisms_and_signs() {
    let env = released_token();
    let direct = Program::new("pkcs11-tool", "opensc")
        .arg("--module")
        .arg(module_path())
        .args(["--token-label", TOKEN_LABEL, "-M"])
        .ok(&env);
    let direct = mechanism_names(&direct.stdout);
    let server = serve(&env);
    let remote = remote_tool(&server).arg("-M").ok(&env);
    let remote = mechanism_names(&remote.stdout);
    let documented: BTreeSet<String> = REMOTE_MECHANISMS.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        remote, documented,
        "the mechanisms seen through p11-kit changed: update REMOTE_MECHANISMS and docs/clients.md"
    );
    assert!(
        remote.is_subset(&direct),
        "remote mechanisms the module does not list: {:?}",
        remote.difference(&direct).collect::<Vec<_>>()
    );

    // A key made and used remotely: the RPC carries login, key generation and signing.
    let dir = env.dir.path();
    let data = dir.join("data.bin");
    std::fs::write(&data, b"shared over a socket").unwrap();
    let signature = dir.join("data.sig");
    let public_der = dir.join("public.der");
    let logged_in = |p: Program| p.args(["--login", "--pin", USER_PIN]);
    logged_in(remote_tool(&server))
        .args([
            "--keypairgen",
            "--key-type",
            "rsa:2048",
            "--label",
            "remote-rsa",
            "--id",
            "7e",
        ])
        .ok(&env);
    logged_in(remote_tool(&server))
        .args(["--sign", "--mechanism", "SHA256-RSA-PKCS", "--id", "7e"])
        .arg("--input-file")
        .arg(&data)
        .arg("--output-file")
        .arg(&signature)
        .ok(&env);
    remote_tool(&server)
        .args(["--read-object", "--type", "pubkey", "--id", "7e"])
        .arg("--output-file")
        .arg(&public_der)
        .ok(&env);
    openssl_cli()
        .args(["dgst", "-sha256", "-keyform", "DER", "-verify"])
        .arg(&public_der)
        .arg("-signature")
        .arg(&signature)
        .arg(&data)
        .ok(&env);
}
