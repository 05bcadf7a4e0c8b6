//! Ed448 through the C ABI (`CKM_EC_EDWARDS_KEY_PAIR_GEN`, `CKM_EDDSA`), done by the
//! system's libcrypto.so.3 (src/crypto/curve448.rs): RFC 8032 §7.4's vectors imported by
//! value give the published signatures; key pairs made with the curve as the RFC 8410 OID
//! or the name "edwards448" sign what `openssl pkeyutl -verify -rawin` accepts, and
//! openssl's signatures verify in the token; openssl's keys imported by value give
//! openssl's very signatures (Ed448 is deterministic); contexts and Ed448ph, wrong
//! lengths and points off the curve get their specific codes; `C_GetMechanismInfo` shows
//! 448 bits; private keys wrap as RFC 8410 PKCS#8 that openssl reads, and openssl's
//! unwrap; a token key pair survives a restart; the library is opened (and logged) once.
//! These tests need libcrypto.so.3 and fail, saying so, without it.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::*;
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;

/// id-Ed448, 1.3.101.113 (RFC 8410), and the curve name of PKCS#11 3.0 §2.3.6 as a
/// DER PrintableString.
const OID_ED448: &str = "06032b6571";
const NAME_EDWARDS448: &str = "130a65647761726473343438";

fn pure() -> Mechanism<'static> {
    Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure))
}

/// Fails, with what to install, when the machine has no OpenSSL 3 libcrypto: these
/// tests must not pass by skipping.
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
        "Ed448 needs OpenSSL 3's libcrypto.so.3 (Debian: apt-get install libssl3)"
    );
}

fn generate(session: &Session, params: &[u8]) -> (ObjectHandle, ObjectHandle) {
    session
        .generate_key_pair(
            &Mechanism::EccEdwardsKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::EcParams(params.to_vec()),
                Attribute::Verify(true),
            ],
            &[
                Attribute::Token(false),
                Attribute::Sign(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(true),
            ],
        )
        .expect("C_GenerateKeyPair(Ed448)")
}

fn private_by_value(session: &Session, params: &str, seed: &[u8]) -> ObjectHandle {
    session
        .create_object(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC_EDWARDS),
            Attribute::Token(false),
            Attribute::Sign(true),
            Attribute::EcParams(hex(params)),
            Attribute::Value(seed.to_vec()),
        ])
        .expect("C_CreateObject(Ed448 private key)")
}

fn public_by_value(session: &Session, params: &str, point: &[u8]) -> ObjectHandle {
    session
        .create_object(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::EC_EDWARDS),
            Attribute::Token(false),
            Attribute::Verify(true),
            Attribute::EcParams(hex(params)),
            Attribute::EcPoint(point.to_vec()),
        ])
        .expect("C_CreateObject(Ed448 public key)")
}

fn openssl_verifies(env: &TestEnv, public: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    let dir = env.dir.path();
    let pub_path = write_file(dir, "ed448.pub.der", &curve25519_spki(OID_ED448, public));
    let msg_path = write_file(dir, "ed448.msg", msg);
    let sig_path = write_file(dir, "ed448.sig", sig);
    openssl(&[
        "pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey", &pub_path, "-rawin", "-in",
        &msg_path, "-sigfile", &sig_path,
    ])
    .ok
}

/// RFC 8032 §7.4, the pure Ed448 cases "-----Blank", "1 octet" and "11 octets":
/// (secret key, public key, message, signature).
const RFC8032_ED448: [(&str, &str, &str, &str); 3] = [
    (
        "6c82a562cb808d10d632be89c8513ebf6c929f34ddfa8c9f63c9960ef6e348a3\
         528c8a3fcc2f044e39a3fc5b94492f8f032e7549a20098f95b",
        "5fd7449b59b461fd2ce787ec616ad46a1da1342485a70e1f8a0ea75d80e96778\
         edf124769b46c7061bd6783df1e50f6cd1fa1abeafe8256180",
        "",
        "533a37f6bbe457251f023c0d88f976ae2dfb504a843e34d2074fd823d41a591f\
         2b233f034f628281f2fd7a22ddd47d7828c59bd0a21bfd3980ff0d2028d4b18a\
         9df63e006c5d1c2d345b925d8dc00b4104852db99ac5c7cdda8530a113a0f4db\
         b61149f05a7363268c71d95808ff2e652600",
    ),
    (
        "c4eab05d357007c632f3dbb48489924d552b08fe0c353a0d4a1f00acda2c463a\
         fbea67c5e8d2877c5e3bc397a659949ef8021e954e0a12274e",
        "43ba28f430cdff456ae531545f7ecd0ac834a55d9358c0372bfa0c6c6798c086\
         6aea01eb00742802b8438ea4cb82169c235160627b4c3a9480",
        "03",
        "26b8f91727bd62897af15e41eb43c377efb9c610d48f2335cb0bd0087810f435\
         2541b143c4b981b7e18f62de8ccdf633fc1bf037ab7cd779805e0dbcc0aae1cb\
         cee1afb2e027df36bc04dcecbf154336c19f0af7e0a6472905e799f1953d2a0f\
         f3348ab21aa4adafd1d234441cf807c03a00",
    ),
    (
        "cd23d24f714274e744343237b93290f511f6425f98e64459ff203e8985083ffd\
         f60500553abc0e05cd02184bdb89c4ccd67e187951267eb328",
        "dcea9e78f35a1bf3499a831b10b86c90aac01cd84b67a0109b55a36e9328b1e3\
         65fce161d71ce7131a543ea4cb5f7e9f1d8b00696447001400",
        "0c3e544074ec63b0265e0c",
        "1f0a8888ce25e8d458a21130879b840a9089d999aaba039eaf3e3afa090a09d3\
         89dba82c4ff2ae8ac5cdfb7c55e94d5d961a29fe0109941e00b8dbdeea6d3b05\
         1068df7254c0cdc129cbe62db2dc957dbb47b51fd3f213fb8698f064774250a5\
         028961c9bf8ffd973fe5d5c206492b140e00",
    ),
];

#[test]
fn rfc_8032_ed448_keys_imported_by_value_give_the_published_signatures() {
    require_libcrypto();
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    for (seed, public_hex, msg, sig) in RFC8032_ED448 {
        let (msg, sig) = (hex(msg), hex(sig));
        let private = private_by_value(&session, OID_ED448, &hex(seed));
        let public = public_by_value(&session, OID_ED448, &der_octet_string(&hex(public_hex)));
        assert_eq!(
            session.sign(&pure(), private, &msg).unwrap(),
            sig,
            "message {msg:02x?}"
        );
        session.verify(&pure(), public, &msg, &sig).unwrap();
        // Multi-part: the message is collected, the signature is the same.
        if msg.len() > 1 {
            session.sign_init(&pure(), private).unwrap();
            session.sign_update(&msg[..1]).unwrap();
            session.sign_update(&msg[1..]).unwrap();
            assert_eq!(session.sign_final().unwrap(), sig);
            session.verify_init(&pure(), public).unwrap();
            session.verify_update(&msg[..2]).unwrap();
            session.verify_update(&msg[2..]).unwrap();
            session.verify_final(&sig).unwrap();
        }
        for i in [0, 60, 113] {
            let mut bad = sig.clone();
            bad[i] ^= 0x10;
            assert_rv!(
                session.verify(&pure(), public, &msg, &bad),
                RvError::SignatureInvalid
            );
        }
        let mut other = msg.clone();
        other.push(0);
        assert_rv!(
            session.verify(&pure(), public, &other, &sig),
            RvError::SignatureInvalid
        );
        assert_rv!(
            session.verify(&pure(), public, &msg, &sig[..113]),
            RvError::SignatureLenRange
        );
    }
}

#[test]
fn generated_ed448_keys_sign_what_openssl_verifies_for_both_curve_encodings() {
    require_libcrypto();
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let msg = b"signed with Ed448 in the token".to_vec();
    for params in [hex(OID_ED448), hex(NAME_EDWARDS448)] {
        let (public, private) = generate(&session, &params);
        for key in [public, private] {
            assert_eq!(
                attribute_bytes(&session, key, AttributeType::EcParams),
                params,
                "the caller's encoding of the curve is kept"
            );
            let attrs = session
                .get_attributes(key, &[AttributeType::KeyType])
                .unwrap();
            assert!(
                matches!(&attrs[..], [Attribute::KeyType(k)] if *k == KeyType::EC_EDWARDS),
                "{attrs:?}"
            );
        }
        let point = attribute_bytes(&session, public, AttributeType::EcPoint);
        assert_eq!(point.len(), 59, "CKA_EC_POINT is a DER OCTET STRING");
        assert_eq!(&point[..2], &[0x04, 0x39]);
        let sig = session.sign(&pure(), private, &msg).unwrap();
        assert_eq!(sig.len(), 114);
        session.verify(&pure(), public, &msg, &sig).unwrap();
        assert!(
            openssl_verifies(&env, &point[2..], &msg, &sig),
            "openssl refuses the token's Ed448 signature"
        );
        let mut bad = sig.clone();
        bad[5] ^= 1;
        assert!(!openssl_verifies(&env, &point[2..], &msg, &bad), "control");
        assert_rv!(
            session.verify(&pure(), public, &msg, &bad),
            RvError::SignatureInvalid
        );
        // A signature from another generated key does not verify.
        let (_, other) = generate(&session, &params);
        let theirs = session.sign(&pure(), other, &msg).unwrap();
        assert_rv!(
            session.verify(&pure(), public, &msg, &theirs),
            RvError::SignatureInvalid
        );
    }
}

#[test]
fn openssl_ed448_keys_imported_by_value_give_openssls_signatures() {
    require_libcrypto();
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let dir = env.dir.path();
    let key_path = dir.join("ed448.pem").to_str().unwrap().to_owned();
    openssl_ok(&["genpkey", "-algorithm", "ED448", "-out", &key_path]);
    let text =
        String::from_utf8(openssl_ok(&["pkey", "-in", &key_path, "-text", "-noout"])).unwrap();
    let (seed, public) = (
        openssl_text_field(&text, "priv"),
        openssl_text_field(&text, "pub"),
    );
    assert_eq!((seed.len(), public.len()), (57, 57));
    let msg = b"signed by openssl and by the token".to_vec();
    let msg_path = write_file(dir, "msg", &msg);
    let theirs = openssl_ok(&[
        "pkeyutl", "-sign", "-inkey", &key_path, "-rawin", "-in", &msg_path,
    ]);
    assert_eq!(theirs.len(), 114);
    let private = private_by_value(&session, NAME_EDWARDS448, &seed);
    assert_eq!(session.sign(&pure(), private, &msg).unwrap(), theirs);
    // The public key bare (what some clients send) and as PKCS#11 3.0 has it.
    for point in [public.clone(), der_octet_string(&public)] {
        let public = public_by_value(&session, OID_ED448, &point);
        session.verify(&pure(), public, &msg, &theirs).unwrap();
        assert_eq!(
            attribute_bytes(&session, public, AttributeType::EcPoint),
            point,
            "CKA_EC_POINT is kept as given"
        );
    }
}

#[test]
fn ed448_contexts_prehash_wrong_lengths_and_bad_points_get_their_codes() {
    require_libcrypto();
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    let ck = Ck::load();
    let s = session.handle();
    let (public, private) = generate(&session, &hex(OID_ED448));
    let msg = b"params";
    let null = session.sign(&pure(), private, msg).unwrap();
    // CK_EDDSA_PARAMS with phFlag false and no context: pure Ed448, same signature.
    let explicit = ck
        .sign(s, &RawMech::eddsa(false, b""), private.handle(), msg)
        .expect("CK_EDDSA_PARAMS {false, empty}");
    assert_eq!(explicit, null);
    // Ed448 with a context, and Ed448ph: OpenSSL 3.0 has neither, so they are refused.
    for m in [
        RawMech::eddsa(false, b"foo"),
        RawMech::eddsa(true, b""),
        RawMech::eddsa(true, b"foo"),
        RawMech::bytes(CKM_EDDSA, &[0u8; 3]),
    ] {
        assert_eq!(
            ck.sign_init(s, &m, private.handle()),
            Err(RvError::MechanismParamInvalid)
        );
        assert_eq!(
            ck.verify_init(s, &m, public.handle()),
            Err(RvError::MechanismParamInvalid)
        );
    }
    assert_rv!(
        session.sign(&Mechanism::Ecdsa, private, &[0; 32]),
        RvError::KeyTypeInconsistent
    );
    // Objects: a short or long seed, a short point, a bad DER wrapper, an Ed448 curve on
    // a Montgomery key, an Ed25519 seed under the Ed448 curve.
    let create = |class, key_type, params: &str, extra: Attribute| {
        session.create_object(&[
            Attribute::Class(class),
            Attribute::KeyType(key_type),
            Attribute::Token(false),
            Attribute::EcParams(hex(params)),
            extra,
        ])
    };
    let edwards = KeyType::EC_EDWARDS;
    for (class, key_type, params, extra, expected) in [
        (
            ObjectClass::PRIVATE_KEY,
            edwards,
            OID_ED448,
            Attribute::Value(vec![1; 56]),
            RvError::AttributeValueInvalid,
        ),
        (
            ObjectClass::PRIVATE_KEY,
            edwards,
            NAME_EDWARDS448,
            Attribute::Value(vec![1; 58]),
            RvError::AttributeValueInvalid,
        ),
        (
            ObjectClass::PRIVATE_KEY,
            edwards,
            OID_ED448,
            Attribute::Value(vec![1; 32]),
            RvError::AttributeValueInvalid,
        ),
        (
            ObjectClass::PUBLIC_KEY,
            edwards,
            OID_ED448,
            Attribute::EcPoint(vec![4; 58]),
            RvError::AttributeValueInvalid,
        ),
        (
            ObjectClass::PUBLIC_KEY,
            edwards,
            OID_ED448,
            Attribute::EcPoint([&[0x05, 0x39][..], &[7; 57]].concat()),
            RvError::AttributeValueInvalid,
        ),
        (
            ObjectClass::PUBLIC_KEY,
            edwards,
            OID_ED448,
            Attribute::EcPoint(der_octet_string(&[7; 32])),
            RvError::AttributeValueInvalid,
        ),
        (
            ObjectClass::PRIVATE_KEY,
            KeyType::EC_MONTGOMERY,
            OID_ED448,
            Attribute::Value(vec![1; 57]),
            RvError::TemplateInconsistent,
        ),
    ] {
        assert_rv!(
            create(class, key_type, params, extra),
            expected,
            "{class:?} {key_type:?} {params}"
        );
    }
    // A point of the right length that is not on edwards448 (y = 2: (1-y²)/(1-dy²) is
    // no square mod p) is an object, and verifies nothing.
    let mut off_curve = vec![0u8; 57];
    off_curve[0] = 2;
    let bad = public_by_value(&session, OID_ED448, &der_octet_string(&off_curve));
    assert_rv!(
        session.verify(&pure(), bad, msg, &null),
        RvError::SignatureInvalid
    );
    // An Ed448 signature under an Ed25519 key, and the reverse.
    let (ed25519_public, ed25519_private) = session
        .generate_key_pair(
            &Mechanism::EccEdwardsKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::EcParams(hex(OID_ED25519)),
            ],
            &[Attribute::Token(false)],
        )
        .unwrap();
    assert_rv!(
        session.verify(&pure(), ed25519_public, msg, &null),
        RvError::SignatureLenRange
    );
    let short = session.sign(&pure(), ed25519_private, msg).unwrap();
    assert_rv!(
        session.verify(&pure(), public, msg, &short),
        RvError::SignatureLenRange
    );
    // Curve448 (X448) stays refused for Edwards key generation.
    assert_rv!(
        session.generate_key_pair(
            &Mechanism::EccEdwardsKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::EcParams(hex("06032b656f"))
            ],
            &[Attribute::Token(false)],
        ),
        RvError::CurveNotSupported
    );
    for m in [
        MechanismType::EDDSA,
        MechanismType::ECC_EDWARDS_KEY_PAIR_GEN,
    ] {
        let info = ctx.get_mechanism_info(slot, m).unwrap();
        assert_eq!((info.min_key_size(), info.max_key_size()), (255, 448));
    }
}

#[test]
fn ed448_private_keys_wrap_as_pkcs8_that_openssl_reads_and_unwrap_back() {
    require_libcrypto();
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
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
    let (public, private) = generate(&session, &hex(NAME_EDWARDS448));
    let point = attribute_bytes(&session, public, AttributeType::EcPoint);
    // RFC 5649 (no padding to remove): openssl opens it and reads an Ed448 key whose
    // public half is the token's.
    let wrapped = session
        .wrap_key(&Mechanism::AesKeyWrapPad, kek, private)
        .expect("C_WrapKey(Ed448 private key)");
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
        &der[..16],
        &hex("3047020100300506032b6571043b0439")[..],
        "RFC 8410 PKCS#8 with id-Ed448"
    );
    let der_path = write_file(dir, "key.der", &der);
    let text = String::from_utf8(openssl_ok(&[
        "pkey", "-inform", "DER", "-in", &der_path, "-text", "-noout",
    ]))
    .unwrap();
    assert!(text.contains("ED448 Private-Key"), "{text}");
    assert_eq!(openssl_text_field(&text, "pub"), point[2..].to_vec());
    // Unwrapped under both wrappings, the key signs what the original public key verifies.
    let msg = b"wrapped, unwrapped, signed";
    for mech in [Mechanism::AesKeyWrapPad, Mechanism::AesKeyWrap] {
        let wrapped = session.wrap_key(&mech, kek, private).unwrap();
        let unwrapped = session
            .unwrap_key(
                &mech,
                kek,
                &wrapped,
                &[
                    Attribute::Class(ObjectClass::PRIVATE_KEY),
                    Attribute::KeyType(KeyType::EC_EDWARDS),
                    Attribute::Token(false),
                    Attribute::Sign(true),
                ],
            )
            .expect("C_UnwrapKey(Ed448 private key)");
        assert_eq!(
            attribute_bytes(&session, unwrapped, AttributeType::EcParams),
            hex(OID_ED448)
        );
        let sig = session.sign(&pure(), unwrapped, msg).unwrap();
        session.verify(&pure(), public, msg, &sig).unwrap();
    }
    // openssl's own Ed448 PKCS#8, wrapped by openssl, unwraps to its key.
    let key_path = dir.join("theirs.der").to_str().unwrap().to_owned();
    openssl_ok(&[
        "genpkey",
        "-algorithm",
        "ED448",
        "-outform",
        "DER",
        "-out",
        &key_path,
    ]);
    let theirs = openssl_ok(&[
        "enc",
        "-e",
        "-id-aes256-wrap-pad",
        "-iv",
        "A65959A6",
        "-K",
        kek_hex,
        "-in",
        &key_path,
    ]);
    let unwrapped = session
        .unwrap_key(
            &Mechanism::AesKeyWrapPad,
            kek,
            &theirs,
            &[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(KeyType::EC_EDWARDS),
                Attribute::Token(false),
                Attribute::Sign(true),
            ],
        )
        .expect("C_UnwrapKey(openssl's Ed448 key)");
    let msg_path = write_file(dir, "msg", msg);
    let openssl_sig = openssl_ok(&[
        "pkeyutl", "-sign", "-keyform", "DER", "-inkey", &key_path, "-rawin", "-in", &msg_path,
    ]);
    assert_eq!(session.sign(&pure(), unwrapped, msg).unwrap(), openssl_sig);
}

#[test]
fn a_token_ed448_key_pair_survives_a_restart_and_signs_as_before() {
    require_libcrypto();
    let env = TestEnv::new();
    let (ctx, _slot, session) = ready_token(&env);
    let label = "ed448 on the token";
    let (public, private) = session
        .generate_key_pair(
            &Mechanism::EccEdwardsKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::Label(label.into()),
                Attribute::EcParams(hex(NAME_EDWARDS448)),
                Attribute::Verify(true),
            ],
            &[
                Attribute::Token(true),
                Attribute::Label(label.into()),
                Attribute::Sign(true),
            ],
        )
        .expect("C_GenerateKeyPair(Ed448, token)");
    let msg = b"before and after";
    let sig = session.sign(&pure(), private, msg).unwrap();
    let point = attribute_bytes(&session, public, AttributeType::EcPoint);
    drop(session);
    ctx.finalize().unwrap();

    // The module again, from the token file: the same key gives the same (deterministic)
    // signature, and the stored public key verifies it.
    let ctx = env.load();
    let session = user_session(&ctx, slot_of_token(&ctx, TOKEN_LABEL));
    let found = |class| {
        session
            .find_objects(&[Attribute::Class(class), Attribute::Label(label.into())])
            .unwrap()
    };
    let (publics, privates) = (
        found(ObjectClass::PUBLIC_KEY),
        found(ObjectClass::PRIVATE_KEY),
    );
    assert_eq!((publics.len(), privates.len()), (1, 1));
    assert_eq!(
        attribute_bytes(&session, publics[0], AttributeType::EcPoint),
        point
    );
    assert_eq!(session.sign(&pure(), privates[0], msg).unwrap(), sig);
    session.verify(&pure(), publics[0], msg, &sig).unwrap();
}

#[test]
fn the_library_is_opened_once_and_logged_once_without_key_material() {
    require_libcrypto();
    let env = TestEnv::with_options(Options {
        log_level: "info",
        ..Options::default()
    });
    let (_ctx, _slot, session) = ready_token(&env);
    let seed = [0x42u8; 57];
    let private = private_by_value(&session, OID_ED448, &seed);
    for _ in 0..3 {
        let (_, other) = generate(&session, &hex(OID_ED448));
        session.sign(&pure(), other, b"m").unwrap();
        session.sign(&pure(), private, b"m").unwrap();
    }
    let log = env.log();
    assert_eq!(
        log.matches("Ed448 available, from libcrypto.so.3").count(),
        1,
        "{log}"
    );
    assert!(!log.contains("Ed448 unavailable"), "{log}");
    assert!(
        !log.to_lowercase().contains(&to_hex(&seed)),
        "a seed reached the log"
    );
}
