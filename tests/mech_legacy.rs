//! The `legacy_algorithms` switch through the C ABI. Off (the default): no DES or
//! Triple-DES mechanism is listed or accepted, no DES key object can be made, and RSA
//! generation starts at 2048 bits, exactly as without the switch. On: DES, two- and
//! three-key Triple-DES in ECB, CBC and CBC-PAD agree with FIPS 81's examples and with
//! `openssl enc` (its legacy provider), generated keys have odd parity, keys of another
//! parity are refused, and RSA-1024 pairs are generated and sign what `openssl` verifies.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::*;
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

const DES_MECHANISMS: [MechanismType; 9] = [
    MechanismType::DES_KEY_GEN,
    MechanismType::DES2_KEY_GEN,
    MechanismType::DES3_KEY_GEN,
    MechanismType::DES_ECB,
    MechanismType::DES_CBC,
    MechanismType::DES_CBC_PAD,
    MechanismType::DES3_ECB,
    MechanismType::DES3_CBC,
    MechanismType::DES3_CBC_PAD,
];

/// `C_GetMechanismList` as the module answers it (cryptoki's list leaves out the types
/// it has no name for, DES among them).
/// The module's function list, loaded beside cryptoki's (the same library).
fn raw_functions() -> (cryptoki_sys::Pkcs11, cryptoki_sys::CK_FUNCTION_LIST) {
    // SAFETY: loading the module under test (already loaded by cryptoki: same library).
    let library = unsafe { cryptoki_sys::Pkcs11::new(module_path()) }.expect("load module");
    let mut functions: *mut cryptoki_sys::CK_FUNCTION_LIST = std::ptr::null_mut();
    // SAFETY: one output pointer.
    assert_eq!(unsafe { library.C_GetFunctionList(&mut functions) }, 0);
    // SAFETY: the module keeps its list alive while loaded.
    let list = unsafe { *functions };
    (library, list)
}

fn raw_mechanism_list(slot: cryptoki::slot::Slot) -> Vec<cryptoki_sys::CK_MECHANISM_TYPE> {
    let (_library, f) = raw_functions();
    let list = f.C_GetMechanismList.expect("C_GetMechanismList");
    let mut count: cryptoki_sys::CK_ULONG = 0;
    // SAFETY: a NULL list asks for the count only.
    let rv = unsafe { list(slot.id(), std::ptr::null_mut(), &mut count) };
    assert_eq!(rv, 0);
    let mut out = vec![0; count as usize];
    // SAFETY: `out` has room for `count` entries.
    assert_eq!(unsafe { list(slot.id(), out.as_mut_ptr(), &mut count) }, 0);
    out.truncate(count as usize);
    out
}

/// An environment whose configuration turns the switch on.
fn legacy_env() -> TestEnv {
    let env = TestEnv::new();
    let text = std::fs::read_to_string(&env.conf_path).unwrap();
    env.write_config(&format!("legacy_algorithms = true\n{text}"));
    env
}

fn des_key(
    session: &Session,
    key_type: KeyType,
    value: &[u8],
) -> cryptoki::error::Result<ObjectHandle> {
    session.create_object(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(key_type),
        Attribute::Token(false),
        Attribute::Value(value.to_vec()),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Wrap(true),
        Attribute::Unwrap(true),
    ])
}

fn rsa_pair(session: &Session, bits: u64) -> cryptoki::error::Result<(ObjectHandle, ObjectHandle)> {
    session.generate_key_pair(
        &Mechanism::RsaPkcsKeyPairGen,
        &[
            Attribute::Token(false),
            Attribute::ModulusBits(bits.into()),
            Attribute::Verify(true),
        ],
        &[Attribute::Token(false), Attribute::Sign(true)],
    )
}

#[test]
fn with_the_switch_off_des_and_rsa_1024_are_refused_as_before() {
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    let list = raw_mechanism_list(slot);
    for m in DES_MECHANISMS {
        assert!(!list.contains(&*m), "{m} listed with the switch off");
        assert_rv!(ctx.get_mechanism_info(slot, m), RvError::MechanismInvalid);
    }
    assert_rv!(
        session.generate_key(&Mechanism::Des3KeyGen, &[Attribute::Token(false)]),
        RvError::MechanismInvalid
    );
    let aes = session
        .create_object(&aes_template("aes", &[1; 16], false))
        .unwrap();
    assert_rv!(
        session.encrypt(&Mechanism::Des3Cbc([0; 8]), aes, b"12345678"),
        RvError::MechanismInvalid
    );
    assert_rv!(
        des_key(
            &session,
            KeyType::DES3,
            &hex("0123456789abcdeffedcba987654321089abcdef01234567")
        ),
        RvError::AttributeValueInvalid
    );
    assert_rv!(rsa_pair(&session, 1024), RvError::KeySizeRange);
    let info = ctx
        .get_mechanism_info(slot, MechanismType::RSA_PKCS_KEY_PAIR_GEN)
        .unwrap();
    assert_eq!(info.min_key_size(), 2048);
    assert!(!env.log().contains("legacy_algorithms"), "{}", env.log());
}

#[test]
fn with_the_switch_on_the_mechanisms_are_listed_and_a_warning_logged() {
    let env = legacy_env();
    let (ctx, slot, _session) = ready_token(&env);
    let list = raw_mechanism_list(slot);
    for m in DES_MECHANISMS {
        assert!(
            list.contains(&*m),
            "{m} not listed with the switch on: {list:?}"
        );
    }
    let info = ctx
        .get_mechanism_info(slot, MechanismType::RSA_PKCS_KEY_PAIR_GEN)
        .unwrap();
    assert_eq!(info.min_key_size(), 1024);
    assert!(
        env.log().contains("legacy_algorithms is on"),
        "no warning in the log: {}",
        env.log()
    );
}

#[test]
fn des_agrees_with_the_fips_81_examples() {
    let env = legacy_env();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = des_key(&session, KeyType::DES, &hex("0123456789abcdef")).unwrap();
    let pt = b"Now is the time for all ";
    let ecb = session.encrypt(&Mechanism::DesEcb, key, pt).unwrap();
    assert_eq!(
        to_hex(&ecb),
        "3fa40e8a984d48156a271787ab8883f9893d51ec4b563b53"
    );
    let iv: [u8; 8] = hex("1234567890abcdef").try_into().unwrap();
    let cbc = session.encrypt(&Mechanism::DesCbc(iv), key, pt).unwrap();
    assert_eq!(
        to_hex(&cbc),
        "e5c7cdde872bf27c43e934008c389c0f683788499a7c05f6"
    );
    assert_eq!(
        session.decrypt(&Mechanism::DesCbc(iv), key, &cbc).unwrap(),
        pt
    );
}

/// Encrypts `data` with openssl's `cipher` (legacy provider), key and IV in hex.
fn openssl_enc(
    env: &TestEnv,
    cipher: &str,
    key: &str,
    iv: Option<&str>,
    pad: bool,
    data: &[u8],
) -> Vec<u8> {
    let input = write_file(env.dir.path(), "plain", data);
    let mut args = vec![
        "enc",
        cipher,
        "-provider",
        "legacy",
        "-provider",
        "default",
        "-K",
        key,
        "-in",
        &input,
    ];
    if let Some(iv) = iv {
        args.extend_from_slice(&["-iv", iv]);
    }
    if !pad {
        args.push("-nopad");
    }
    openssl_ok(&args)
}

#[test]
fn des_and_triple_des_agree_with_openssl() {
    let env = legacy_env();
    let (_ctx, _slot, session) = ready_token(&env);
    let iv_hex = "fedcba9876543210";
    let iv: [u8; 8] = hex(iv_hex).try_into().unwrap();
    let blocks: Vec<u8> = (0u8..48).collect();
    let odd: Vec<u8> = (0u8..29).collect();
    // (key type, key, openssl's name for CBC, its name for ECB, which family).
    let cases = [
        (
            KeyType::DES,
            "0123456789abcdef",
            "-des-cbc",
            "-des-ecb",
            false,
        ),
        (
            KeyType::DES2,
            "0123456789abcdeffedcba9876543210",
            "-des-ede-cbc",
            "-des-ede",
            true,
        ),
        (
            KeyType::DES3,
            "0123456789abcdeffedcba987654321089abcdef01234567",
            "-des-ede3-cbc",
            "-des-ede3",
            true,
        ),
    ];
    for (key_type, key_hex, cbc_name, ecb_name, triple) in cases {
        let key = des_key(&session, key_type, &hex(key_hex)).unwrap();
        let (ecb, cbc, cbc_pad) = if triple {
            (
                Mechanism::Des3Ecb,
                Mechanism::Des3Cbc(iv),
                Mechanism::Des3CbcPad(iv),
            )
        } else {
            (
                Mechanism::DesEcb,
                Mechanism::DesCbc(iv),
                Mechanism::DesCbcPad(iv),
            )
        };
        let ours = session.encrypt(&ecb, key, &blocks).unwrap();
        assert_eq!(
            ours,
            openssl_enc(&env, ecb_name, key_hex, None, false, &blocks),
            "{ecb_name}"
        );
        assert_eq!(session.decrypt(&ecb, key, &ours).unwrap(), blocks);
        let ours = session.encrypt(&cbc, key, &blocks).unwrap();
        assert_eq!(
            ours,
            openssl_enc(&env, cbc_name, key_hex, Some(iv_hex), false, &blocks),
            "{cbc_name}"
        );
        assert_eq!(session.decrypt(&cbc, key, &ours).unwrap(), blocks);
        let ours = session.encrypt(&cbc_pad, key, &odd).unwrap();
        assert_eq!(
            ours,
            openssl_enc(&env, cbc_name, key_hex, Some(iv_hex), true, &odd),
            "{cbc_name} pad"
        );
        assert_eq!(session.decrypt(&cbc_pad, key, &ours).unwrap(), odd);
        // Unpadded modes take whole blocks only.
        assert_rv!(session.encrypt(&cbc, key, &odd), RvError::DataLenRange);
        // A DES key is not a Triple-DES key, nor the reverse.
        let other = if triple {
            Mechanism::DesEcb
        } else {
            Mechanism::Des3Ecb
        };
        assert_rv!(
            session.encrypt(&other, key, &blocks),
            RvError::KeyTypeInconsistent
        );
    }
}

#[test]
fn generated_keys_have_odd_parity_and_keys_of_other_parity_are_refused() {
    let env = legacy_env();
    let (_ctx, _slot, session) = ready_token(&env);
    for (mech, len, key_type) in [
        (Mechanism::DesKeyGen, 8, KeyType::DES),
        (Mechanism::Des2KeyGen, 16, KeyType::DES2),
        (Mechanism::Des3KeyGen, 24, KeyType::DES3),
    ] {
        let key = session
            .generate_key(
                &mech,
                &[
                    Attribute::Token(false),
                    Attribute::Sensitive(false),
                    Attribute::Extractable(true),
                    Attribute::Encrypt(true),
                ],
            )
            .unwrap();
        let value = attribute_bytes(&session, key, AttributeType::Value);
        assert_eq!(value.len(), len);
        assert!(
            value.iter().all(|b| b.count_ones() % 2 == 1),
            "{mech:?}: {value:?}"
        );
        let attrs = session
            .get_attributes(key, &[AttributeType::KeyType])
            .unwrap();
        assert!(
            matches!(&attrs[..], [Attribute::KeyType(k)] if *k == key_type),
            "{attrs:?}"
        );
    }
    // 0x00 has even parity; a short value is no DES key either.
    assert_rv!(
        des_key(&session, KeyType::DES, &[0u8; 8]),
        RvError::AttributeValueInvalid
    );
    assert_rv!(
        des_key(&session, KeyType::DES3, &[1u8; 16]),
        RvError::AttributeValueInvalid
    );
    assert_rv!(
        session.generate_key(
            &Mechanism::Des3KeyGen,
            &[Attribute::Token(false), Attribute::ValueLen(16.into())]
        ),
        RvError::AttributeValueInvalid
    );
}

#[test]
fn triple_des_wraps_and_unwraps_an_aes_key() {
    let env = legacy_env();
    let (_ctx, _slot, session) = ready_token(&env);
    let kek = des_key(
        &session,
        KeyType::DES3,
        &hex("0123456789abcdeffedcba987654321089abcdef01234567"),
    )
    .unwrap();
    let value = hex("000102030405060708090a0b0c0d0e0f");
    let target = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Value(value.clone()),
            Attribute::Extractable(true),
            Attribute::Encrypt(true),
        ])
        .unwrap();
    let iv = [7u8; 8];
    for mech in [
        Mechanism::Des3Ecb,
        Mechanism::Des3Cbc(iv),
        Mechanism::Des3CbcPad(iv),
    ] {
        let wrapped = session.wrap_key(&mech, kek, target).unwrap();
        let unwrapped = session
            .unwrap_key(
                &mech,
                kek,
                &wrapped,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(16.into()),
                    Attribute::Token(false),
                    Attribute::Sensitive(false),
                    Attribute::Extractable(true),
                ],
            )
            .unwrap();
        assert_eq!(
            attribute_bytes(&session, unwrapped, AttributeType::Value),
            value,
            "{mech:?}"
        );
    }
}

#[test]
fn rsa_1024_pairs_are_generated_and_verify_with_openssl() {
    let env = legacy_env();
    let (_ctx, _slot, session) = ready_token(&env);
    let (public, private) = rsa_pair(&session, 1024).expect("RSA-1024 with the switch on");
    let n = attribute_bytes(&session, public, AttributeType::Modulus);
    let e = attribute_bytes(&session, public, AttributeType::PublicExponent);
    assert_eq!(n.len(), 128);
    let msg = b"legacy, by choice".to_vec();
    let sig = session
        .sign(&Mechanism::Sha256RsaPkcs, private, &msg)
        .unwrap();
    let pub_path = write_file(env.dir.path(), "pub.der", &rsa_spki(&n, &e));
    let sig_path = write_file(env.dir.path(), "sig", &sig);
    let msg_path = write_file(env.dir.path(), "msg", &msg);
    let out = openssl_ok(&[
        "dgst",
        "-sha256",
        "-verify",
        &pub_path,
        "-keyform",
        "DER",
        "-signature",
        &sig_path,
        &msg_path,
    ]);
    assert!(String::from_utf8_lossy(&out).contains("Verified OK"));
    // Below 1024 stays refused.
    assert_rv!(rsa_pair(&session, 768), RvError::KeySizeRange);
}

/// google/pkcs11test's ReadOnlySessionTest.GenerateKeyInvalid: a NULL template with a
/// non-zero count is CKR_ARGUMENTS_BAD before the mechanism is looked at, so the answer is
/// the same whether the module offers DES or not.
#[test]
fn a_null_template_with_a_count_is_arguments_bad_with_the_switch_off() {
    null_template_with_a_count(false);
}

#[test]
fn a_null_template_with_a_count_is_arguments_bad_with_the_switch_on() {
    null_template_with_a_count(true);
}

fn null_template_with_a_count(legacy: bool) {
    {
        let env = if legacy { legacy_env() } else { TestEnv::new() };
        let (_ctx, slot, _session) = ready_token(&env);
        let (_library, f) = raw_functions();
        let mut session: cryptoki_sys::CK_SESSION_HANDLE = 0;
        // SAFETY: no callback, one output handle.
        let rv = unsafe {
            f.C_OpenSession.unwrap()(
                slot.id(),
                cryptoki_sys::CKF_SERIAL_SESSION,
                std::ptr::null_mut(),
                None,
                &mut session,
            )
        };
        assert_eq!(rv, 0);
        let mut mech = cryptoki_sys::CK_MECHANISM {
            mechanism: cryptoki_sys::CKM_DES_KEY_GEN,
            pParameter: std::ptr::null_mut(),
            ulParameterLen: 0,
        };
        let mut key: cryptoki_sys::CK_OBJECT_HANDLE = 0;
        // SAFETY: a NULL template with count 3 is the point; the module must not read it.
        let rv = unsafe {
            f.C_GenerateKey.unwrap()(session, &mut mech, std::ptr::null_mut(), 3, &mut key)
        };
        assert_eq!(rv, cryptoki_sys::CKR_ARGUMENTS_BAD, "legacy {legacy}");
    }
}

/// pkcs11test's EncryptDecryptParts: each update gives the whole blocks it completes, and
/// the parts together are the single-part result.
#[test]
fn multi_part_triple_des_gives_blocks_as_they_complete() {
    let env = legacy_env();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = des_key(
        &session,
        KeyType::DES3,
        &hex("0123456789abcdeffedcba987654321089abcdef01234567"),
    )
    .unwrap();
    let iv = [5u8; 8];
    let data: Vec<u8> = (0u8..45).collect();
    for mech in [
        Mechanism::Des3Ecb,
        Mechanism::Des3Cbc(iv),
        Mechanism::Des3CbcPad(iv),
    ] {
        let padded = matches!(mech, Mechanism::Des3CbcPad(_));
        let data = if padded { &data[..] } else { &data[..40] };
        let whole = session.encrypt(&mech, key, data).unwrap();
        session.encrypt_init(&mech, key).unwrap();
        let mut parts = Vec::new();
        let mut fed = 0;
        for chunk in data.chunks(12) {
            let out = session.encrypt_update(chunk).unwrap();
            fed += chunk.len();
            assert_eq!(out.len() + parts.len(), fed / 8 * 8, "{mech:?}");
            parts.extend_from_slice(&out);
        }
        parts.extend_from_slice(&session.encrypt_final().unwrap());
        assert_eq!(parts, whole, "{mech:?}");
        session.decrypt_init(&mech, key).unwrap();
        let mut back = Vec::new();
        for chunk in whole.chunks(8) {
            back.extend_from_slice(&session.decrypt_update(chunk).unwrap());
        }
        back.extend_from_slice(&session.decrypt_final().unwrap());
        assert_eq!(back, data, "{mech:?}");
    }
}
