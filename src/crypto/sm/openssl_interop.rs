//! Interoperability tests against the `openssl` command line (OpenSSL 3): SM3 digests,
//! SM4-CBC both ways, SM2 signatures both ways (with the default and a binary signer
//! identifier) and SM2 encryption both ways in the GM/T 0009 DER form OpenSSL uses.
//!
//! When the installed openssl lacks an SM algorithm, or cannot be run, these tests fail
//! with a message saying so; they never skip silently.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use ::sm2::dsa::Signature;

use super::*;

/// Runs `openssl` with the space-separated `flags` followed by `args` (kept whole, for
/// paths), and returns the completed process.
fn run(flags: &str, args: &[&str]) -> Output {
    Command::new("openssl")
        .args(flags.split_whitespace())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `openssl` ({e}); the SM interoperability tests need OpenSSL 3")
        })
}

/// Like [`run`], but fails the test with openssl's message unless it succeeds; returns
/// its standard output.
fn openssl(flags: &str, args: &[&str]) -> Vec<u8> {
    let out = run(flags, args);
    assert!(
        out.status.success(),
        "openssl {flags} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Fails the test, naming what is missing, unless `openssl list <listing>` shows `name`.
fn require(listing: &str, name: &str) {
    let text = String::from_utf8_lossy(&openssl("list", &[listing])).to_ascii_uppercase();
    assert!(
        text.contains(name),
        "the installed openssl lacks {name} (not in `openssl list {listing}`), \
         so the SM interoperability tests cannot run"
    );
}

fn require_sm2() {
    require("-public-key-algorithms", "SM2");
    require("-digest-algorithms", "SM3");
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A temporary directory holding an SM2 key pair in the DER forms openssl reads.
struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Dir(tempfile::tempdir().unwrap())
    }

    fn with_sm2_key(d: &[u8], point: &[u8; 65]) -> Self {
        let dir = Self::new();
        dir.write("key.der", &sm2_private_key_der(d, point));
        dir.write("pub.der", &sm2_public_key_der(point));
        dir
    }

    fn path(&self, name: &str) -> String {
        let path: PathBuf = self.0.path().join(name);
        path.to_str().expect("temporary paths are UTF-8").to_owned()
    }

    fn write(&self, name: &str, data: &[u8]) -> String {
        std::fs::write(self.path(name), data).unwrap();
        self.path(name)
    }
}

const SM2_CURVE_OID: [u8; 10] = [0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x82, 0x2d];
const EC_PUBLIC_KEY_OID: [u8; 9] = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

/// RFC 5915 ECPrivateKey { version 1, d, [0] sm2p256v1, [1] public point }.
fn sm2_private_key_der(d: &[u8], point: &[u8; 65]) -> Vec<u8> {
    let mut der = vec![0x30, 0x77, 0x02, 0x01, 0x01, 0x04, 0x20];
    der.extend_from_slice(d);
    der.extend_from_slice(&[0xa0, 0x0a]);
    der.extend_from_slice(&SM2_CURVE_OID);
    der.extend_from_slice(&[0xa1, 0x44, 0x03, 0x42, 0x00]);
    der.extend_from_slice(point);
    der
}

/// SubjectPublicKeyInfo { id-ecPublicKey, sm2p256v1 } with the uncompressed point.
fn sm2_public_key_der(point: &[u8; 65]) -> Vec<u8> {
    let mut der = vec![0x30, 0x59, 0x30, 0x13];
    der.extend_from_slice(&EC_PUBLIC_KEY_OID);
    der.extend_from_slice(&SM2_CURVE_OID);
    der.extend_from_slice(&[0x03, 0x42, 0x00]);
    der.extend_from_slice(point);
    der
}

#[test]
fn sm3_agrees_with_openssl_dgst() {
    require("-digest-algorithms", "SM3");
    let dir = Dir::new();
    for len in [0usize, 3, 64, 1000] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let path = dir.write("data", &data);
        assert_eq!(
            openssl("dgst -sm3 -binary", &[&path]),
            sm3(&data),
            "length {len}"
        );
    }
}

#[test]
fn sm4_cbc_interoperates_with_openssl_enc_both_ways() {
    require("-cipher-algorithms", "SM4-CBC");
    let dir = Dir::new();
    let (key, iv) = (sm4_generate_key().unwrap(), sm4_generate_key().unwrap());
    let (key_hex, iv_hex) = (to_hex(&key[..]), to_hex(&iv[..]));
    for len in [0usize, 1, 15, 16, 17, 100] {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
        let plain = dir.write("plain", &data);
        let key_iv = ["-K", &key_hex, "-iv", &iv_hex];

        // Padded: OpenSSL's default for `enc`.
        let theirs = openssl("enc -sm4-cbc", &[&key_iv[..], &["-in", &plain]].concat());
        let ours = sm4_cbc_encrypt(&key[..], &iv[..], &data, true).unwrap();
        assert_eq!(ours, theirs, "length {len}");
        assert_eq!(
            *sm4_cbc_decrypt(&key[..], &iv[..], &theirs, true).unwrap(),
            data
        );
        let ours_path = dir.write("ours", &ours);
        let back = openssl(
            "enc -d -sm4-cbc",
            &[&key_iv[..], &["-in", &ours_path]].concat(),
        );
        assert_eq!(back, data, "length {len}");

        // Unpadded, for whole blocks.
        if len % 16 == 0 {
            let flags = "enc -sm4-cbc -nopad";
            let theirs = openssl(flags, &[&key_iv[..], &["-in", &plain]].concat());
            assert_eq!(
                sm4_cbc_encrypt(&key[..], &iv[..], &data, false).unwrap(),
                theirs
            );
        }
    }
}

#[test]
fn openssl_reads_our_sm2_key_encoding_as_the_same_key() {
    require_sm2();
    let (d, point) = sm2_generate().unwrap();
    let dir = Dir::with_sm2_key(&d[..], &point);
    let flags = "pkey -inform DER -pubout -outform DER";
    let spki = openssl(flags, &["-in", &dir.path("key.der")]);
    assert_eq!(spki, sm2_public_key_der(&point));
}

/// The pkeyopt naming the signer identifier: alphanumerics as `distid`, others as hex.
fn distid_opt(id: &[u8]) -> String {
    if id.iter().all(u8::is_ascii_alphanumeric) {
        format!("distid:{}", String::from_utf8_lossy(id))
    } else {
        format!("hexdistid:{}", to_hex(id))
    }
}

#[test]
fn sm2_signatures_interoperate_with_openssl_both_ways() {
    require_sm2();
    let ids: [&[u8]; 2] = [SM2_DEFAULT_ID, b"\x00\xffbinary id\x80"];
    for round in 0..4 {
        let (d, point) = sm2_generate().unwrap();
        let dir = Dir::with_sm2_key(&d[..], &point);
        let id = ids[round % 2];
        let opt = distid_opt(id);
        let msg = format!("message {round} for openssl").into_bytes();
        let msg_path = dir.write("msg", &msg);

        // Ours, verified by openssl (which takes DER signatures).
        let ours = sm2_sign_sm3(&d[..], id, &msg).unwrap();
        let ours_der = Signature::from_slice(&ours).unwrap().to_der();
        let sig_path = dir.write("ours.sig", ours_der.as_bytes());
        let verify = "pkeyutl -verify -rawin -digest sm3 -pubin -keyform DER";
        let files = [
            "-inkey",
            &dir.path("pub.der"),
            "-in",
            &msg_path,
            "-sigfile",
            &sig_path,
        ];
        openssl(verify, &[&files[..], &["-pkeyopt", &opt]].concat());
        // Under another identifier openssl refuses it, so the identifier was used.
        let other = run(
            verify,
            &[&files[..], &["-pkeyopt", "distid:someone"]].concat(),
        );
        assert!(
            !other.status.success(),
            "openssl ignored the signer identifier"
        );

        // Openssl's, verified here.
        let sign = "pkeyutl -sign -rawin -digest sm3 -keyform DER";
        let files = [
            "-inkey",
            &dir.path("key.der"),
            "-in",
            &msg_path,
            "-pkeyopt",
            &opt,
        ];
        let theirs_der = openssl(sign, &files);
        let theirs = Signature::from_der(&theirs_der).unwrap().to_bytes();
        sm2_verify_sm3(&point, id, &msg, &theirs).unwrap();
    }
}

#[test]
fn sm2_ciphertexts_interoperate_with_openssl_both_ways() {
    require_sm2();
    // Several rounds, so that C1 coordinates with the high bit set (DER INTEGERs then need
    // a leading zero byte) occur on both sides.
    for round in 0..8 {
        let (d, point) = sm2_generate().unwrap();
        let dir = Dir::with_sm2_key(&d[..], &point);
        let msg = format!("key material {round}: {}", "x".repeat(round * 9)).into_bytes();
        let msg_path = dir.write("msg", &msg);

        let ours = sm2_encrypt_der(&point, &msg).unwrap();
        let ct_path = dir.write("ours.ct", &ours);
        let decrypt = "pkeyutl -decrypt -keyform DER";
        let back = openssl(decrypt, &["-inkey", &dir.path("key.der"), "-in", &ct_path]);
        assert_eq!(back, msg);

        let encrypt = "pkeyutl -encrypt -pubin -keyform DER";
        let theirs = openssl(encrypt, &["-inkey", &dir.path("pub.der"), "-in", &msg_path]);
        assert_eq!(*sm2_decrypt_der(&d[..], &theirs).unwrap(), msg);
    }
}
