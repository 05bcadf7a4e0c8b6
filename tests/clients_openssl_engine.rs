//! Real clients, part 2: OpenSSL 3 through the libp11 engine (Debian's
//! libengine-pkcs11-openssl), configured by an openssl configuration file that names the
//! module (`MODULE_PATH`) and reached with `-engine pkcs11 -keyform engine` and RFC 7512
//! key URIs carrying the PIN (`pin-value=`).
//!
//! Two keys: RSA-2048 generated in the token by `pkcs11-tool --keypairgen`, and P-256
//! imported through BYOK: the EXTERNAL key made by C_CreateObject with a CKA_ID and a
//! label (which the module copies to the public half it makes on import), then the
//! `kmshsm` CLI for import parameters (RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD) and the
//! import, the envelope built by openssl alone: an ephemeral AES key under
//! RSA-OAEP-SHA-256, then the PKCS#8 key under AES-256-ECB.
//! With each key: `openssl pkeyutl -sign` verified by plain openssl with the public key
//! read out by pkcs11-tool; `openssl req -x509` verified by `openssl verify`; an
//! `openssl s_server` completing TLS 1.3 and TLS 1.2 handshakes with `openssl s_client`.
//! With the RSA key also RSA-PSS signing and RSA-OAEP-SHA-256 decryption, the paths for
//! which older libp11 fell back to raw CKM_RSA_X_509 (DESIGN §7), which kmshsm does not
//! offer; libp11 0.4.12 asks for CKM_RSA_PKCS_PSS and CKM_RSA_PKCS_OAEP instead.
//!
//! Needs `openssl`, `pkcs11-tool` (opensc) and the engine (libengine-pkcs11-openssl). Run
//! with `cargo nextest run --test clients_openssl_engine`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;
#[path = "clients/support.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use common::kms::*;
use common::*;
use cryptoki::object::Attribute;
use support::*;

/// The libp11 engine, found in openssl's engine directory.
fn engine_path() -> PathBuf {
    let out = openssl_cli().args(["version", "-e"]).run();
    let dir = out
        .stdout
        .trim()
        .strip_prefix("ENGINESDIR: \"")
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or("/usr/lib/x86_64-linux-gnu/engines-3")
        .to_owned();
    let path = Path::new(&dir).join("pkcs11.so");
    assert!(
        path.exists(),
        "this test needs the libp11 engine {}, which is missing; install it with \
         `apt-get install -y libengine-pkcs11-openssl`",
        path.display()
    );
    path
}

/// A token with the two keys, and the openssl configuration loading the engine.
struct Setup {
    env: TestEnv,
    conf: PathBuf,
}

const RSA_LABEL: &str = "engine-rsa";
const EC_LABEL: &str = "engine-byok-p256";
const EC_ID: &[u8] = &[0xe2];

impl Setup {
    fn new() -> Self {
        let env = released_token();
        let conf = write_file(
            &env,
            "openssl-engine.cnf",
            format!(
                "openssl_conf = openssl_init\n\
                 [openssl_init]\n\
                 engines = engine_section\n\
                 [engine_section]\n\
                 pkcs11 = pkcs11_section\n\
                 [pkcs11_section]\n\
                 engine_id = pkcs11\n\
                 dynamic_path = {engine}\n\
                 MODULE_PATH = {module}\n\
                 init = 0\n",
                engine = engine_path().display(),
                module = module_path().display(),
            )
            .as_bytes(),
        );
        let setup = Setup { env, conf };
        setup.generate_rsa();
        setup.import_p256();
        setup
    }

    fn generate_rsa(&self) {
        pkcs11_tool()
            .args(["--keypairgen", "--key-type", "rsa:2048"])
            .args(["--id", "e1", "--label", RSA_LABEL])
            .args(["--usage-sign", "--usage-decrypt"])
            .ok(&self.env);
    }

    /// BYOK: an EXTERNAL EC_P256 key whose material openssl made and wrapped.
    fn import_p256(&self) {
        let env = &self.env;
        // CreateKey(EXTERNAL) through PKCS#11, with a CKA_ID: libp11 finds an EC key's
        // public point through the public object with the private key's CKA_ID, and
        // `kmshsm create-key` sets none (see docs/clients.md).
        let key = {
            let ctx = env.load();
            let session = user_session(&ctx, slot_of_token(&ctx, TOKEN_LABEL));
            let mut template = external_template(Spec::EcP256, EC_LABEL);
            template.push(Attribute::Id(EC_ID.to_vec()));
            template.push(vendor_ulong(CKA_KMSHSM_KEY_USAGE, USAGE_SIGN_VERIFY));
            let handle = session
                .create_object(&template)
                .expect("C_CreateObject of an EXTERNAL EC_P256 key");
            let key = key_id(&session, handle);
            drop(session);
            ctx.finalize().unwrap();
            key
        };
        let alg = "RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD";
        let params = cli_json(
            env,
            &[
                "get-parameters-for-import",
                "--key-id",
                &key,
                "--wrapping-algorithm",
                alg,
                "--wrapping-key-spec",
                "RSA_2048",
            ],
        );
        let spki = write_file(env, "wrapping.der", &unb64(&field(&params, &["PublicKey"])));

        // The material: a P-256 key as PKCS#8, kept for the public key check.
        let pem = path_in(env, "p256.pem");
        openssl_cli()
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .arg("-out")
            .arg(&pem)
            .ok(env);
        let pkcs8 = path_in(env, "p256.p8.der");
        openssl_cli()
            .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"])
            .arg(&pem)
            .arg("-out")
            .arg(&pkcs8)
            .ok(env);
        openssl_cli()
            .args(["pkey", "-pubout", "-in"])
            .arg(&pem)
            .arg("-out")
            .arg(path_in(env, "p256.expected.pub.pem"))
            .ok(env);

        // The envelope: Cipher(ESK) under RSA-OAEP-SHA-256 || the PKCS#8 key under
        // AES-256-ECB with PKCS#7 padding.
        let esk = random_bytes(32);
        let esk_file = write_file(env, "esk.bin", &esk);
        let wrapped_esk = path_in(env, "esk.wrapped");
        openssl_cli()
            .args(["pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey"])
            .arg(&spki)
            .arg("-in")
            .arg(&esk_file)
            .arg("-out")
            .arg(&wrapped_esk)
            .args(["-pkeyopt", "rsa_padding_mode:oaep"])
            .args(["-pkeyopt", "rsa_oaep_md:sha256"])
            .args(["-pkeyopt", "rsa_mgf1_md:sha256"])
            .ok(env);
        let wrapped_key = path_in(env, "p256.wrapped");
        openssl_cli()
            .args(["enc", "-aes-256-ecb", "-K", &to_hex(&esk), "-in"])
            .arg(&pkcs8)
            .arg("-out")
            .arg(&wrapped_key)
            .ok(env);
        let mut envelope = std::fs::read(&wrapped_esk).unwrap();
        envelope.extend(std::fs::read(&wrapped_key).unwrap());

        cli_json(
            env,
            &[
                "import-key-material",
                "--key-id",
                &key,
                "--encrypted-key-material",
                &b64(&envelope),
                "--import-token",
                &field(&params, &["ImportToken"]),
            ],
        );
        let described = cli_json(env, &["describe-key", "--key-id", &key]);
        assert_eq!(field(&described, &["KeyMetadata", "KeyState"]), "Enabled");
    }

    /// openssl with the engine configuration.
    fn openssl(&self) -> Program {
        openssl_cli().env("OPENSSL_CONF", &self.conf)
    }

    /// The key URI of a private key, with the PIN.
    fn uri(&self, label: &str) -> String {
        format!("pkcs11:token={TOKEN_LABEL};object={label};type=private;pin-value={USER_PIN}")
    }

    /// The public key of `label` as pkcs11-tool reads it from the token, in PEM.
    fn public_pem(&self, label: &str) -> PathBuf {
        let der = path_in(&self.env, &format!("{label}.pub.der"));
        pkcs11_tool()
            .args(["--read-object", "--type", "pubkey", "--label", label, "-o"])
            .arg(&der)
            .ok(&self.env);
        let pem = path_in(&self.env, &format!("{label}.pub.pem"));
        openssl_cli()
            .args(["pkey", "-pubin", "-inform", "DER", "-in"])
            .arg(&der)
            .arg("-out")
            .arg(&pem)
            .ok(&self.env);
        pem
    }

    /// A self-signed certificate made by `openssl req -x509` with the token key.
    fn certificate(&self, label: &str) -> PathBuf {
        let cert = path_in(&self.env, &format!("{label}.crt"));
        self.openssl()
            .args(["req", "-new", "-x509", "-days", "2"])
            .args(["-engine", "pkcs11", "-keyform", "engine", "-key"])
            .arg(self.uri(label))
            .args(["-subj", &format!("/CN={label}"), "-sha256"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1"])
            .arg("-out")
            .arg(&cert)
            .ok(&self.env);
        cert
    }
}

/// Signs a SHA-256 digest with the token key through the engine and verifies with plain
/// openssl; `opts` are the pkeyutl options of both sides.
fn sign_and_verify(setup: &Setup, label: &str, opts: &[&str]) {
    let env = &setup.env;
    let data = write_file(env, "data.txt", b"signed through the libp11 engine\n");
    let digest = path_in(env, "data.sha256");
    openssl_cli()
        .args(["dgst", "-sha256", "-binary", "-out"])
        .arg(&digest)
        .arg(&data)
        .ok(env);
    let signature = path_in(env, &format!("{label}.sig"));
    let mut sign = setup
        .openssl()
        .args([
            "pkeyutl", "-sign", "-engine", "pkcs11", "-keyform", "engine",
        ])
        .arg("-inkey")
        .arg(setup.uri(label))
        .arg("-in")
        .arg(&digest)
        .arg("-out")
        .arg(&signature);
    let mut verify = openssl_cli()
        .args(["pkeyutl", "-verify", "-pubin", "-inkey"])
        .arg(setup.public_pem(label))
        .arg("-in")
        .arg(&digest)
        .arg("-sigfile")
        .arg(&signature);
    for opt in opts {
        sign = sign.args(["-pkeyopt", opt]);
        verify = verify.args(["-pkeyopt", opt]);
    }
    sign.ok(env);
    let out = verify.ok(env);
    assert!(
        out.stdout.contains("Signature Verified Successfully"),
        "{}",
        out.text()
    );
}

#[test]
fn the_libp11_engine_signs_with_a_generated_rsa_key_and_a_byok_p256_key_and_openssl_verifies() {
    let setup = Setup::new();
    // The BYOK key's public half, made by the module on import, is the material's.
    let expected = std::fs::read_to_string(path_in(&setup.env, "p256.expected.pub.pem")).unwrap();
    let in_token = std::fs::read_to_string(setup.public_pem(EC_LABEL)).unwrap();
    assert_eq!(
        in_token, expected,
        "the imported key's public object differs from the material's public key"
    );

    sign_and_verify(&setup, RSA_LABEL, &["digest:sha256"]);
    sign_and_verify(
        &setup,
        RSA_LABEL,
        &[
            "rsa_padding_mode:pss",
            "digest:sha256",
            "rsa_pss_saltlen:32",
        ],
    );
    sign_and_verify(&setup, EC_LABEL, &[]);
}

#[test]
fn the_libp11_engine_decrypts_rsa_oaep_sha_256_without_raw_rsa() {
    let setup = Setup::new();
    let env = &setup.env;
    let secret = write_file(env, "secret.txt", b"for the token's eyes only");
    let encrypted = path_in(env, "secret.oaep");
    let oaep = [
        "rsa_padding_mode:oaep",
        "rsa_oaep_md:sha256",
        "rsa_mgf1_md:sha256",
    ];
    let mut encrypt = openssl_cli()
        .args(["pkeyutl", "-encrypt", "-pubin", "-inkey"])
        .arg(setup.public_pem(RSA_LABEL))
        .arg("-in")
        .arg(&secret)
        .arg("-out")
        .arg(&encrypted);
    let mut decrypt = setup
        .openssl()
        .args([
            "pkeyutl", "-decrypt", "-engine", "pkcs11", "-keyform", "engine",
        ])
        .arg("-inkey")
        .arg(setup.uri(RSA_LABEL))
        .arg("-in")
        .arg(&encrypted);
    for opt in oaep {
        encrypt = encrypt.args(["-pkeyopt", opt]);
        decrypt = decrypt.args(["-pkeyopt", opt]);
    }
    encrypt.ok(env);
    let out = decrypt.ok(env);
    assert_eq!(out.stdout, "for the token's eyes only");
    assert!(
        !env.log().contains("mechanism invalid"),
        "libp11 asked for a mechanism kmshsm lacks:\n{}",
        log_tail(env)
    );
}

#[test]
fn openssl_req_makes_self_signed_certificates_with_token_keys_that_openssl_verifies() {
    let setup = Setup::new();
    for label in [RSA_LABEL, EC_LABEL] {
        let cert = setup.certificate(label);
        let out = openssl_cli()
            .args(["verify", "-CAfile"])
            .arg(&cert)
            .arg(&cert)
            .ok(&setup.env);
        assert!(out.stdout.contains(": OK"), "{}", out.text());
        // The certificate carries the token's public key.
        let cert_key = openssl_cli()
            .args(["x509", "-noout", "-pubkey", "-in"])
            .arg(&cert)
            .ok(&setup.env)
            .stdout;
        let token_key = std::fs::read_to_string(setup.public_pem(label)).unwrap();
        assert_eq!(
            cert_key, token_key,
            "{label}: the certificate's key is not the token's"
        );
        let text = openssl_cli()
            .args(["x509", "-noout", "-text", "-in"])
            .arg(&cert)
            .ok(&setup.env)
            .stdout;
        assert!(text.contains(&format!("CN = {label}")), "{text}");
    }
}

/// Runs `openssl s_server` with the token key and completes a handshake with s_client.
fn tls_handshake(setup: &Setup, label: &str, cert: &Path, version: &str) {
    let env = &setup.env;
    let port = free_port().to_string();
    let server = setup
        .openssl()
        .args([
            "s_server", "-engine", "pkcs11", "-keyform", "engine", "-key",
        ])
        .arg(setup.uri(label))
        .arg("-cert")
        .arg(cert)
        .args(["-accept", &format!("127.0.0.1:{port}"), "-www", version]);
    let shown = server.shown().to_owned();
    let mut server = KillOnDrop(server.spawn());

    // Ready when it prints ACCEPT; everything it prints is kept for the message.
    let stdout = server.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                let ready = line.contains("ACCEPT");
                seen.push(line);
                if ready {
                    break;
                }
            }
            Err(_) => {
                let _ = server.0.kill();
                let mut stderr = String::new();
                if let Some(mut e) = server.0.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
                }
                panic!(
                    "{shown} did not start:\n{}\n{stderr}\n--- kmshsm log\n{}",
                    seen.join("\n"),
                    log_tail(env)
                );
            }
        }
    }

    let client = openssl_cli()
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .arg("-CAfile")
        .arg(cert)
        .args(["-verify_return_error", "-ign_eof", version])
        .stdin(b"GET / HTTP/1.0\r\n\r\n")
        .timeout(Duration::from_secs(60))
        .run();
    drop(server);
    assert!(
        client.success()
            && client.stdout.contains("Verify return code: 0 (ok)")
            && client.stdout.contains("HTTP/1.0 200 ok"),
        "{label} {version}: the TLS handshake with s_server did not complete:\n{}\n--- kmshsm log\n{}",
        client.text(),
        log_tail(env)
    );
}

#[test]
fn openssl_s_server_with_a_token_key_completes_tls_handshakes_with_s_client() {
    let setup = Setup::new();
    for label in [EC_LABEL, RSA_LABEL] {
        let cert = setup.certificate(label);
        // TLS 1.3 signs with ECDSA or RSA-PSS; TLS 1.2 here also picks RSA-PSS for RSA.
        tls_handshake(&setup, label, &cert, "-tls1_3");
        tls_handshake(&setup, label, &cert, "-tls1_2");
    }
}
