//! RSA key generation at lengths other than 2048/3072/4096 through the C ABI: 2056 and
//! 3092 bits (pkcs11-provider's setup asks for 3092; neither is a multiple of 128, and
//! 3092 is not one of 8). The token's signatures verify with `openssl dgst`, and the
//! range `C_GetMechanismInfo` reports (2048..16384) is the range generation accepts.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::*;
use common::*;
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, ObjectHandle};
use cryptoki::session::Session;

fn generate(session: &Session, bits: u64) -> cryptoki::error::Result<(ObjectHandle, ObjectHandle)> {
    session.generate_key_pair(
        &Mechanism::RsaPkcsKeyPairGen,
        &[
            Attribute::Token(false),
            Attribute::ModulusBits(bits.into()),
            Attribute::PublicExponent(vec![1, 0, 1]),
            Attribute::Verify(true),
        ],
        &[Attribute::Token(false), Attribute::Sign(true)],
    )
}

fn rv(r: cryptoki::error::Result<(ObjectHandle, ObjectHandle)>) -> RvError {
    match r {
        Err(Error::Pkcs11(rv, _)) => rv,
        other => panic!("expected a PKCS#11 error, got {other:?}"),
    }
}

#[test]
fn odd_rsa_sizes_generate_and_their_signatures_verify_with_openssl() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let msg = b"signed with an odd-sized key".to_vec();
    let msg_path = write_file(env.dir.path(), "msg", &msg);
    for bits in [2056u64, 3092] {
        let (public, private) = generate(&session, bits).expect("C_GenerateKeyPair");
        let n = attribute_bytes(&session, public, AttributeType::Modulus);
        let e = attribute_bytes(&session, public, AttributeType::PublicExponent);
        assert_eq!(n.len() as u64, bits.div_ceil(8), "{bits}: modulus bytes");
        assert_eq!(
            n[0].leading_zeros() as u64,
            n.len() as u64 * 8 - bits,
            "{bits}: the modulus has exactly the requested bits"
        );
        let attrs = session
            .get_attributes(public, &[AttributeType::ModulusBits])
            .unwrap();
        assert!(
            matches!(&attrs[..], [Attribute::ModulusBits(b)] if u64::from(*b) == bits),
            "{attrs:?}"
        );
        let pub_path = write_file(env.dir.path(), "pub.der", &rsa_spki(&n, &e));
        let verify = |sig: &[u8], extra: &[&str]| {
            let sig_path = write_file(env.dir.path(), "sig", sig);
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
            assert!(
                String::from_utf8_lossy(&out).contains("Verified OK"),
                "{bits} {extra:?}"
            );
        };
        let sig = session
            .sign(&Mechanism::Sha256RsaPkcs, private, &msg)
            .unwrap();
        assert_eq!(sig.len() as u64, bits.div_ceil(8));
        verify(&sig, &[]);
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
        session
            .verify(&Mechanism::Sha256RsaPkcsPss(pss), public, &msg, &sig)
            .unwrap();
    }
}

#[test]
fn mechanism_info_range_is_the_generation_range() {
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    let info = ctx
        .get_mechanism_info(slot, MechanismType::RSA_PKCS_KEY_PAIR_GEN)
        .unwrap();
    assert_eq!(info.min_key_size(), 2048);
    assert_eq!(info.max_key_size(), 16384);
    for bits in [0u64, 1024, 2047, 16385, u32::MAX as u64] {
        assert_eq!(
            rv(generate(&session, bits)),
            RvError::KeySizeRange,
            "{bits}"
        );
    }
}
