//! `CKM_RSA_X_509` (raw RSA) through the C ABI against `openssl pkeyutl` with
//! `rsa_padding_mode:none`, on an openssl-generated key imported by its components:
//! openssl's raw ciphertexts decrypt in the token and the reverse, raw signatures are
//! byte-identical (the primitive is deterministic), short input is left-padded with zeros,
//! and the length rules of PKCS#11 3.0 give their return codes.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::*;
use common::*;
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;

fn rv<T: std::fmt::Debug>(r: cryptoki::error::Result<T>) -> RvError {
    match r {
        Err(Error::Pkcs11(rv, _)) => rv,
        other => panic!("expected a PKCS#11 error, got {other:?}"),
    }
}

/// An `openssl genpkey` RSA key of `bits`, imported by its components: (pem path,
/// public, private).
fn openssl_key(
    env: &TestEnv,
    session: &Session,
    bits: u32,
) -> (String, ObjectHandle, ObjectHandle) {
    let path = env.dir.path().join(format!("rsa{bits}.pem"));
    let path = path.to_str().unwrap().to_owned();
    openssl_ok(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        &format!("rsa_keygen_bits:{bits}"),
        "-out",
        &path,
    ]);
    let text = String::from_utf8(openssl_ok(&["pkey", "-in", &path, "-text", "-noout"])).unwrap();
    let f = |l| openssl_text_field(&text, l);
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
    (
        path,
        rsa_public(session, &k.n, &k.e),
        rsa_private(session, &k),
    )
}

#[test]
fn raw_rsa_matches_openssl_no_padding_both_ways() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let dir = env.dir.path();
    // 3092 bits: k = 387 bytes, a modulus that does not fill its top byte.
    for bits in [2048u32, 3092] {
        let (pem, public, private) = openssl_key(&env, &session, bits);
        let k = (bits as usize).div_ceil(8);
        let none = ["-pkeyopt", "rsa_padding_mode:none"];
        // A full-length input below the modulus: a zero byte first.
        let mut block = vec![0u8; k];
        for (i, b) in block.iter_mut().enumerate().skip(1) {
            *b = (i * 7 + 3) as u8;
        }
        let block_path = write_file(dir, "block", &block);
        // openssl encrypts, the token decrypts (k bytes out, leading zero kept).
        let ct = openssl_ok(
            &[
                &["pkeyutl", "-encrypt", "-inkey", &pem, "-in", &block_path][..],
                &none,
            ]
            .concat(),
        );
        assert_eq!(ct.len(), k);
        assert_eq!(
            session.decrypt(&Mechanism::RsaX509, private, &ct).unwrap(),
            block
        );
        // The token encrypts a short message; openssl decrypts it to the zero-padded block.
        let msg = b"raw message".to_vec();
        let ours = session.encrypt(&Mechanism::RsaX509, public, &msg).unwrap();
        assert_eq!(ours.len(), k);
        let ct_path = write_file(dir, "ct", &ours);
        let back = openssl_ok(
            &[
                &["pkeyutl", "-decrypt", "-inkey", &pem, "-in", &ct_path][..],
                &none,
            ]
            .concat(),
        );
        let mut padded = vec![0u8; k - msg.len()];
        padded.extend_from_slice(&msg);
        assert_eq!(back, padded);
        // Signatures: identical to openssl's raw private operation (`pkeyutl -sign`
        // refuses input longer than a hash in OpenSSL 3.0, so `-decrypt`, which is the
        // same RSADP = RSASP1), for the block and for the short message.
        let theirs = openssl_ok(
            &[
                &["pkeyutl", "-decrypt", "-inkey", &pem, "-in", &block_path][..],
                &none,
            ]
            .concat(),
        );
        assert_eq!(
            session.sign(&Mechanism::RsaX509, private, &block).unwrap(),
            theirs
        );
        session
            .verify(&Mechanism::RsaX509, public, &block, &theirs)
            .unwrap();
        let padded_path = write_file(dir, "padded", &padded);
        let theirs = openssl_ok(
            &[
                &["pkeyutl", "-decrypt", "-inkey", &pem, "-in", &padded_path][..],
                &none,
            ]
            .concat(),
        );
        let sig = session.sign(&Mechanism::RsaX509, private, &msg).unwrap();
        assert_eq!(sig, theirs);
        session
            .verify(&Mechanism::RsaX509, public, &msg, &sig)
            .unwrap();
        assert_eq!(
            rv(session.verify(&Mechanism::RsaX509, public, b"other", &sig)),
            RvError::SignatureInvalid
        );
        // Length rules: more than k bytes; k bytes not below n; a short ciphertext.
        assert_eq!(
            rv(session.sign(&Mechanism::RsaX509, private, &vec![1; k + 1])),
            RvError::DataLenRange
        );
        assert_eq!(
            rv(session.encrypt(&Mechanism::RsaX509, public, &vec![0xff; k])),
            RvError::DataInvalid
        );
        assert_eq!(
            rv(session.decrypt(&Mechanism::RsaX509, private, &ct[1..])),
            RvError::EncryptedDataLenRange
        );
        assert_eq!(
            rv(session.verify(&Mechanism::RsaX509, public, &msg, &sig[1..])),
            RvError::SignatureLenRange
        );
    }
}
