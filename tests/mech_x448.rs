//! X448 through the C ABI (`CKM_EC_MONTGOMERY_KEY_PAIR_GEN`, `CKM_ECDH1_DERIVE`), done by
//! the system's libcrypto.so.3 (src/crypto/curve448.rs): RFC 7748 §6.2's keys imported by
//! value derive its published secret (raw and through the X9.63 KDF); the token and
//! `openssl pkeyutl -derive` agree both ways for key pairs made with the curve as the
//! RFC 8410 OID or the name "curve448"; short and low-order peers, wrong lengths and the
//! wrong key type get their codes; private keys wrap as PKCS#8 that openssl reads. These
//! tests need libcrypto.so.3 and fail, saying so, without it.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::*;
use common::raw::RawAttr;
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;

/// id-X448, 1.3.101.111 (RFC 8410), and the curve name of PKCS#11 3.0 §2.3.7 as a DER
/// PrintableString.
const OID_X448: &str = "06032b656f";
const NAME_CURVE448: &str = "13086375727665343438";

/// Fails, with what to install, when the machine has no OpenSSL 3 libcrypto.
fn require_libcrypto() {
    let found = ["/lib", "/usr/lib", "/lib64", "/usr/lib64"]
        .iter()
        .any(|dir| {
            std::fs::read_dir(dir).is_ok_and(|entries| {
                entries.flatten().any(|e| {
                    let path = e.path();
                    path.join("libcrypto.so.3").exists()
                        || path.file_name().is_some_and(|n| n == "libcrypto.so.3")
                })
            })
        });
    assert!(
        found,
        "X448 needs OpenSSL 3's libcrypto.so.3 (Debian: apt-get install libssl3)"
    );
}

fn secret_template(len: Option<usize>) -> Vec<RawAttr> {
    let mut t = vec![
        RawAttr::ulong(CKA_CLASS, CKO_SECRET_KEY),
        RawAttr::ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET),
        RawAttr::bool(CKA_TOKEN, false),
        RawAttr::bool(CKA_SENSITIVE, false),
        RawAttr::bool(CKA_EXTRACTABLE, true),
    ];
    if let Some(n) = len {
        t.push(RawAttr::ulong(CKA_VALUE_LEN, n as CK_ULONG));
    }
    t
}

fn derive_with(
    session: &Session,
    ck: &Ck,
    kdf: CK_EC_KDF_TYPE,
    key: ObjectHandle,
    peer: &[u8],
    len: Option<usize>,
) -> Result<Vec<u8>, RvError> {
    ck.derive(
        session.handle(),
        &RawMech::ecdh(kdf, peer),
        key.handle(),
        &secret_template(len),
    )
    .map(|h| attribute_bytes(session, handle(h), AttributeType::Value))
}

fn derive(
    session: &Session,
    ck: &Ck,
    key: ObjectHandle,
    peer: &[u8],
    len: Option<usize>,
) -> Result<Vec<u8>, RvError> {
    derive_with(session, ck, CKD_NULL, key, peer, len)
}

fn x448_private(session: &Session, params: &str, scalar: &[u8]) -> ObjectHandle {
    session
        .create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC_MONTGOMERY),
            Attribute::Token(false),
            Attribute::Derive(true),
            Attribute::EcParams(hex(params)),
            Attribute::Value(scalar.to_vec()),
        ])
        .expect("C_CreateObject(X448 private key)")
}

const ALICE: &str = "9a8f4925d1519f5775cf46b04b5800d4ee9ee8bae8bc5565d498c28d\
                     d9c9baf574a9419744897391006382a6f127ab1d9ac2d8c0a598726b";
const ALICE_PUBLIC: &str = "9b08f7cc31b7e3e67d22d5aea121074a273bd2b83de09c63faa73d2c\
                            22c5d9bbc836647241d953d40c5b12da88120d53177f80e532c41fa0";
const BOB: &str = "1c306a7ac2a0e2e0990b294470cba339e6453772b075811d8fad0d1d\
                   6927c120bb5ee8972b0d3e21374c9c921b09d1b0366f10b65173992d";
const BOB_PUBLIC: &str = "3eb7a829b0cd20f5bcfc0b599b6feccf6da4627107bdb0d4f345b430\
                          27d8b972fc3e34fb4232a13ca706dcb57aec3dae07bdc1c67bf33609";
const SHARED: &str = "07fff4181ac6cc95ec1c16a94a0f74d12da232ce40a77552281d282b\
                      b60c0b56fd2464c335543936521c24403085d59a449a5037514a879d";

#[test]
fn rfc_7748_x448_keys_imported_by_value_derive_the_published_secret() {
    require_libcrypto();
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    let ck = Ck::load();
    // RFC 7748 §6.2.
    let alice = x448_private(&session, OID_X448, &hex(ALICE));
    let bob = x448_private(&session, NAME_CURVE448, &hex(BOB));
    let k = hex(SHARED);
    assert_eq!(
        derive(&session, &ck, alice, &hex(BOB_PUBLIC), None).unwrap(),
        k
    );
    assert_eq!(
        derive(
            &session,
            &ck,
            bob,
            &der_octet_string(&hex(ALICE_PUBLIC)),
            None
        )
        .unwrap(),
        k
    );
    // CKA_VALUE_LEN takes the leftmost bytes; a longer key than Z is refused.
    assert_eq!(
        derive(&session, &ck, alice, &hex(BOB_PUBLIC), Some(24)).unwrap(),
        k[..24]
    );
    assert_eq!(
        derive(&session, &ck, alice, &hex(BOB_PUBLIC), Some(57)),
        Err(RvError::TemplateInconsistent)
    );
    // The X9.63 KDF over Z: SHA-256(Z || 00000001) (no shared info).
    let kdf = derive_with(
        &session,
        &ck,
        CKD_SHA256_KDF,
        alice,
        &hex(BOB_PUBLIC),
        Some(32),
    )
    .expect("CKD_SHA256_KDF");
    let expected = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        &[&k[..], &[0, 0, 0, 1]].concat(),
    );
    assert_eq!(kdf, expected.as_ref());
    // Refused: a short peer, an X25519-sized one, and the low-order points u = 0 and
    // u = 1 (the secret would be all zeros).
    let mut one = vec![0u8; 56];
    one[0] = 1;
    let bob_public = hex(BOB_PUBLIC);
    for bad in [
        bob_public[..55].to_vec(),
        bob_public[..32].to_vec(),
        vec![0u8; 56],
        one,
    ] {
        assert_eq!(
            derive(&session, &ck, alice, &bad, None),
            Err(RvError::MechanismParamInvalid),
            "peer of {} bytes",
            bad.len()
        );
    }
    let info = ctx
        .get_mechanism_info(slot, MechanismType::ECC_MONTGOMERY_KEY_PAIR_GEN)
        .unwrap();
    assert_eq!((info.min_key_size(), info.max_key_size()), (255, 448));
}

#[test]
fn token_and_openssl_agree_on_x448_secrets_both_ways() {
    require_libcrypto();
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let dir = env.dir.path();
    let theirs = dir.join("x448.pem").to_str().unwrap().to_owned();
    openssl_ok(&["genpkey", "-algorithm", "X448", "-out", &theirs]);
    let text = String::from_utf8(openssl_ok(&["pkey", "-in", &theirs, "-text", "-noout"])).unwrap();
    let their_public = openssl_text_field(&text, "pub");
    assert_eq!(their_public.len(), 56);
    for params in [hex(OID_X448), hex(NAME_CURVE448)] {
        let (public, private) = session
            .generate_key_pair(
                &Mechanism::EccMontgomeryKeyPairGen,
                &[Attribute::Token(false), Attribute::EcParams(params.clone())],
                &[Attribute::Token(false), Attribute::Derive(true)],
            )
            .expect("C_GenerateKeyPair(X448)");
        for key in [public, private] {
            assert_eq!(
                attribute_bytes(&session, key, AttributeType::EcParams),
                params,
                "the caller's encoding of the curve is kept"
            );
        }
        let point = attribute_bytes(&session, public, AttributeType::EcPoint);
        assert_eq!((point.len(), &point[..2]), (58, &[0x04u8, 0x38][..]));
        let ours = derive(&session, &ck, private, &their_public, None).unwrap();
        let peer = write_file(dir, "peer.der", &curve25519_spki(OID_X448, &point[2..]));
        let expected = openssl_ok(&[
            "pkeyutl",
            "-derive",
            "-inkey",
            &theirs,
            "-peerkey",
            &peer,
            "-peerform",
            "DER",
        ]);
        assert_eq!(expected.len(), 56);
        assert_eq!(ours, expected, "token's Z = openssl's Z");
    }
}

#[test]
fn bad_x448_objects_get_their_codes_and_private_keys_wrap_as_pkcs8() {
    require_libcrypto();
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let create = |class, key_type, params: &str, extra: Attribute| {
        session.create_object(&[
            Attribute::Class(class),
            Attribute::KeyType(key_type),
            Attribute::Token(false),
            Attribute::EcParams(hex(params)),
            extra,
        ])
    };
    let montgomery = KeyType::EC_MONTGOMERY;
    for (class, key_type, params, extra, expected) in [
        (
            ObjectClass::PRIVATE_KEY,
            montgomery,
            OID_X448,
            Attribute::Value(vec![1; 57]),
            RvError::AttributeValueInvalid,
        ),
        (
            ObjectClass::PRIVATE_KEY,
            montgomery,
            NAME_CURVE448,
            Attribute::Value(vec![1; 32]),
            RvError::AttributeValueInvalid,
        ),
        (
            ObjectClass::PUBLIC_KEY,
            montgomery,
            OID_X448,
            Attribute::EcPoint(vec![9; 57]),
            RvError::AttributeValueInvalid,
        ),
        (
            ObjectClass::PRIVATE_KEY,
            KeyType::EC_EDWARDS,
            OID_X448,
            Attribute::Value(vec![1; 56]),
            RvError::TemplateInconsistent,
        ),
    ] {
        assert_rv!(
            create(class, key_type, params, extra),
            expected,
            "{class:?} {key_type:?} {params}"
        );
    }
    // CKM_ECDH1_DERIVE with an X448 public key as the base key.
    let public = session
        .create_object(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(montgomery),
            Attribute::Token(false),
            Attribute::Derive(true),
            Attribute::EcParams(hex(OID_X448)),
            Attribute::EcPoint(hex(BOB_PUBLIC)),
        ])
        .unwrap();
    let ck = Ck::load();
    assert_eq!(
        derive(&session, &ck, public, &hex(ALICE_PUBLIC), None),
        Err(RvError::KeyTypeInconsistent)
    );

    // Wrapped under AES (RFC 5649), the private key is RFC 8410 PKCS#8 that openssl reads,
    // and it unwraps to a key that derives the same secret.
    let kek_hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    let kek = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Value(hex(kek_hex)),
            Attribute::Wrap(true),
            Attribute::Unwrap(true),
        ])
        .unwrap();
    let alice = session
        .create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC_MONTGOMERY),
            Attribute::Token(false),
            Attribute::Derive(true),
            Attribute::Extractable(true),
            Attribute::EcParams(hex(OID_X448)),
            Attribute::Value(hex(ALICE)),
        ])
        .unwrap();
    let wrapped = session
        .wrap_key(&Mechanism::AesKeyWrapPad, kek, alice)
        .expect("C_WrapKey(X448 private key)");
    let dir = env.dir.path();
    let wrapped_path = write_file(dir, "wrapped", &wrapped);
    let der = openssl_ok(&[
        "enc",
        "-d",
        "-id-aes256-wrap-pad",
        "-iv",
        "A65959A6",
        "-K",
        kek_hex,
        "-in",
        &wrapped_path,
    ]);
    assert_eq!(
        der,
        hex(&format!("3046020100300506032b656f043a0438{ALICE}"))
    );
    let der_path = write_file(dir, "key.der", &der);
    let text = String::from_utf8(openssl_ok(&[
        "pkey", "-inform", "DER", "-in", &der_path, "-text", "-noout",
    ]))
    .unwrap();
    assert_eq!(openssl_text_field(&text, "pub"), hex(ALICE_PUBLIC));
    let unwrapped = session
        .unwrap_key(
            &Mechanism::AesKeyWrapPad,
            kek,
            &wrapped,
            &[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(KeyType::EC_MONTGOMERY),
                Attribute::Token(false),
                Attribute::Derive(true),
            ],
        )
        .expect("C_UnwrapKey(X448 private key)");
    assert_eq!(
        derive(&session, &ck, unwrapped, &hex(BOB_PUBLIC), None).unwrap(),
        hex(SHARED)
    );
}
