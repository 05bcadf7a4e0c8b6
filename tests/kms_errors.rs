//! One test per error row of the kms-docs (ImportKeyMaterial, GetParametersForImport) and
//! of the key states, each checking the CK_RV the contract maps it to:
//! InvalidKeyMaterial, InvalidImportToken, ExpiredImportToken, Unsupported.Origin,
//! InvalidParameter, NotFound, IncorrectKeyState; plus the mechanism errors of an import
//! and the PKCS#1 v1.5 bad-padding case. Material is wrapped by `openssl`. Run with
//! `cargo nextest run --test kms_errors`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::kms::*;
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;

fn pending(session: &Session, spec: Spec) -> (ObjectHandle, String) {
    let key = create_external(session, spec, "target");
    let id = key_id(session, key);
    (key, id)
}

#[test]
fn invalid_key_material_when_symmetric_material_has_the_wrong_size() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let mut failures = Vec::new();
    for (spec, len, alg) in [
        (Spec::Aes256, 16, WRAP_RSAES_OAEP_SHA_256),
        (Spec::Aes256, 24, WRAP_RSA_AES_KEY_WRAP_SHA_256),
        (Spec::Aes256, 33, WRAP_RSAES_OAEP_SHA_256),
        (Spec::Sm4, 32, WRAP_RSAES_OAEP_SHA_1),
        (Spec::Sm4, 15, WRAP_SM2PKE),
    ] {
        let (key, _) = pending(&session, spec);
        let material = work.random(len);
        let got = import_with(&session, &work, key, alg, &material, None);
        if !matches!(&got, Err(cryptoki::error::Error::Pkcs11(e, _)) if *e == CKR_KMSHSM_INVALID_KEY_MATERIAL)
            || state(&session, key) != STATE_PENDING_IMPORT
        {
            failures.push(format!(
                "{spec:?} given {len} bytes with algorithm {alg}: {got:?}, state {}",
                state(&session, key)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The size rule holds for RSAES_PKCS1_V1_5 too: 33 or 16 bytes are not AES_256
/// material. (An implicit-rejection decryption that substitutes a 32-byte synthetic key
/// for a wrong-sized message would bind the unbound key to material nobody has.)
#[test]
fn invalid_key_material_when_pkcs1_wrapped_material_has_the_wrong_size() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let mut failures = Vec::new();
    for len in [16, 31, 33] {
        let (key, _) = pending(&session, Spec::Aes256);
        let got = import_with(
            &session,
            &work,
            key,
            WRAP_RSAES_PKCS1_V1_5,
            &work.random(len),
            None,
        );
        if !matches!(&got, Err(cryptoki::error::Error::Pkcs11(e, _)) if *e == CKR_KMSHSM_INVALID_KEY_MATERIAL)
        {
            failures.push(format!(
                "AES_256 given {len} bytes under RSAES_PKCS1_V1_5: {got:?}, state now {}",
                state(&session, key)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_key_material_when_a_private_key_does_not_match_the_spec() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let alg = WRAP_RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD;
    for (spec, other) in [
        (Spec::Rsa2048, Spec::Rsa3072),
        (Spec::Rsa3072, Spec::Rsa2048),
        (Spec::EcP256, Spec::EcP256K),
        (Spec::EcP256K, Spec::EcP256),
        (Spec::EcP256, Spec::Rsa2048),
        (Spec::Rsa2048, Spec::Aes256),
    ] {
        let (key, _) = pending(&session, spec);
        let material = work.material(other);
        assert_rv!(
            import_with(&session, &work, key, alg, &material.bytes, None),
            CKR_KMSHSM_INVALID_KEY_MATERIAL,
            "a {spec:?} key took {other:?} material"
        );
        assert_eq!(state(&session, key), STATE_PENDING_IMPORT);
    }
}

#[test]
fn invalid_key_material_when_the_envelope_does_not_decrypt() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let (key, id) = pending(&session, Spec::EcP256);
    let material = work.material(Spec::EcP256);
    let params = get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD);
    let wrapped = work.wrap(params.alg, &params.spki, &material.bytes);
    // Cipher(TAKpriv) under another ESK: the padding (and PKCS#8) are garbage.
    let mut wrong_esk = wrapped[..256].to_vec();
    wrong_esk.extend(work.enc("aes-256-ecb", &work.random(32), None, true, &material.bytes));
    // Cipher(ESK) of a 16-byte key instead of a 32-byte one.
    let mut short_esk = work.rsa_encrypt(&params.spki, Some("sha256"), &work.random(16));
    short_esk.extend_from_slice(&wrapped[256..]);
    // The ESK under OAEP-SHA-1 instead of SHA-256.
    let esk = work.random(32);
    let mut sha1_esk = work.rsa_encrypt(&params.spki, Some("sha1"), &esk);
    sha1_esk.extend(work.enc("aes-256-ecb", &esk, None, true, &material.bytes));
    for (what, bad) in [
        ("another ESK", wrong_esk),
        ("a short ESK", short_esk),
        ("an ESK under OAEP-SHA-1", sha1_esk),
    ] {
        let got = rv(import(&session, &params, &bad, None));
        assert_eq!(got, CKR_KMSHSM_INVALID_KEY_MATERIAL, "{what}: {got:?}");
    }
    assert_eq!(state(&session, key), STATE_PENDING_IMPORT);
}

#[test]
fn invalid_key_material_when_the_material_differs_from_the_bound_material() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let (key, _) = pending(&session, Spec::Sm4);
    let material = work.material(Spec::Sm4);
    import_with(&session, &work, key, WRAP_SM2PKE, &material.bytes, None).unwrap();
    let other = work.material(Spec::Sm4);
    assert_rv!(
        import_with(&session, &work, key, WRAP_SM2PKE, &other.bytes, None),
        CKR_KMSHSM_INVALID_KEY_MATERIAL
    );
}

/// RSAES-PKCS1-v1_5 is decrypted with implicit rejection: a ciphertext whose padding is
/// wrong is indistinguishable from one carrying wrong material.
#[test]
fn a_bad_pkcs1_padding_into_a_bound_key_is_invalid_key_material() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let (key, id) = pending(&session, Spec::Aes256);
    let material = work.material(Spec::Aes256);
    import_with(
        &session,
        &work,
        key,
        WRAP_RSAES_PKCS1_V1_5,
        &material.bytes,
        None,
    )
    .unwrap();

    let params = get_params(&session, &id, WRAP_RSAES_PKCS1_V1_5);
    // A 2048-bit block 00 02 <nonzero...> with no 00 separator, raw-RSA encrypted.
    let mut block = vec![0x11u8; 256];
    block[0] = 0x00;
    block[1] = 0x02;
    let spki = work.file("wrapping.der", &params.spki);
    let input = work.file("block.bin", &block);
    let output = work.path("bad.bin");
    openssl(&[
        "pkeyutl",
        "-encrypt",
        "-pubin",
        "-keyform",
        "DER",
        "-inkey",
        &spki,
        "-in",
        &input,
        "-out",
        &output,
        "-pkeyopt",
        "rsa_padding_mode:none",
    ]);
    assert_rv!(
        import(&session, &params, &work.read(&output), None),
        CKR_KMSHSM_INVALID_KEY_MATERIAL
    );
    // A block type 1 (signature padding) and a random ciphertext: the same code.
    block[1] = 0x01;
    let input = work.file("block1.bin", &block);
    let output = work.path("bad1.bin");
    openssl(&[
        "pkeyutl",
        "-encrypt",
        "-pubin",
        "-keyform",
        "DER",
        "-inkey",
        &spki,
        "-in",
        &input,
        "-out",
        &output,
        "-pkeyopt",
        "rsa_padding_mode:none",
    ]);
    assert_rv!(
        import(&session, &params, &work.read(&output), None),
        CKR_KMSHSM_INVALID_KEY_MATERIAL
    );
    let mut random = work.random(256);
    random[0] = 0;
    assert_rv!(
        import(&session, &params, &random, None),
        CKR_KMSHSM_INVALID_KEY_MATERIAL
    );
    // And wrong material under correct padding.
    let other = work.rsa_encrypt(&params.spki, None, &work.random(32));
    assert_rv!(
        import(&session, &params, &other, None),
        CKR_KMSHSM_INVALID_KEY_MATERIAL
    );
    assert_eq!(state(&session, key), STATE_ENABLED);
    assert_works_like(&session, &work, key, &material);
}

#[test]
fn invalid_import_token_when_the_token_is_altered() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let (_, id) = pending(&session, Spec::Aes256);
    let material = work.material(Spec::Aes256);
    let params = get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256);
    let wrapped = work.wrap(params.alg, &params.spki, &material.bytes);
    let mechanism = mechanism_of(params.alg);
    for at in [0, 5, params.token.len() / 2, params.token.len() - 1] {
        let mut token = params.token.clone();
        token[at] ^= 0x01;
        assert_rv!(
            unwrap_raw(
                &session,
                &mechanism,
                params.private,
                &wrapped,
                &import_template(&token, None)
            ),
            CKR_KMSHSM_INVALID_IMPORT_TOKEN,
            "token altered at byte {at}"
        );
    }
    let truncated = &params.token[..params.token.len() - 1];
    assert_rv!(
        unwrap_raw(
            &session,
            &mechanism,
            params.private,
            &wrapped,
            &import_template(truncated, None)
        ),
        CKR_KMSHSM_INVALID_IMPORT_TOKEN
    );
    assert_rv!(
        unwrap_raw(
            &session,
            &mechanism,
            params.private,
            &wrapped,
            &import_template(b"", None)
        ),
        CKR_KMSHSM_INVALID_IMPORT_TOKEN
    );
}

#[test]
fn invalid_import_token_when_used_with_another_wrapping_key() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let (_, id) = pending(&session, Spec::Aes256);
    let material = work.material(Spec::Aes256);
    let first = get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256);
    let second = get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256);
    let wrapped = work.wrap(second.alg, &second.spki, &material.bytes);
    assert_rv!(
        unwrap_raw(
            &session,
            &mechanism_of(second.alg),
            second.private,
            &wrapped,
            &import_template(&first.token, None)
        ),
        CKR_KMSHSM_INVALID_IMPORT_TOKEN
    );
    // A token of another key's parameters with this key's wrapping key.
    let (_, other_id) = pending(&session, Spec::Aes256);
    let other = get_params(&session, &other_id, WRAP_RSAES_OAEP_SHA_256);
    assert_rv!(
        unwrap_raw(
            &session,
            &mechanism_of(second.alg),
            second.private,
            &wrapped,
            &import_template(&other.token, None)
        ),
        CKR_KMSHSM_INVALID_IMPORT_TOKEN
    );
}

#[test]
fn invalid_import_token_when_the_template_names_another_key() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let (_, id) = pending(&session, Spec::Aes256);
    let (_, other) = pending(&session, Spec::Aes256);
    let material = work.material(Spec::Aes256);
    let params = get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256);
    let wrapped = work.wrap(params.alg, &params.spki, &material.bytes);
    let mut template = import_template(&params.token, None);
    template.push(vendor_bytes(CKA_KMSHSM_KEY_ID, other.as_bytes()));
    assert_rv!(
        unwrap_raw(
            &session,
            &mechanism_of(params.alg),
            params.private,
            &wrapped,
            &template
        ),
        CKR_KMSHSM_INVALID_IMPORT_TOKEN
    );
}

#[test]
fn expired_import_token_after_24_hours() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let (key, id) = pending(&session, Spec::Aes256);
    let material = work.material(Spec::Aes256);
    let params = get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256);
    let wrapped = work.wrap(params.alg, &params.spki, &material.bytes);
    set_clock_offset(TOKEN_LIFETIME as i64 + 1);
    let got = rv(import(&session, &params, &wrapped, None));
    set_clock_offset(0);
    assert!(
        got == CKR_KMSHSM_EXPIRED_IMPORT_TOKEN,
        "an import token used after 24 hours gave {got:?}"
    );
    assert_eq!(state(&session, key), STATE_PENDING_IMPORT);
}

#[test]
fn an_import_token_is_still_valid_just_before_24_hours() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let (key, id) = pending(&session, Spec::Aes256);
    let material = work.material(Spec::Aes256);
    let params = get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256);
    let wrapped = work.wrap(params.alg, &params.spki, &material.bytes);
    set_clock_offset(TOKEN_LIFETIME as i64 - 120);
    let got = import(&session, &params, &wrapped, None);
    set_clock_offset(0);
    assert_eq!(got.expect("import 2 minutes before the token expires"), key);
}

#[test]
fn unsupported_origin_for_a_key_made_by_the_module() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = session
        .generate_key(
            &vendor_mechanism(CKM_KMSHSM_SM4_KEY_GEN),
            &[Attribute::Token(true)],
        )
        .unwrap();
    assert_rv!(
        try_get_params(&session, &key_id(&session, key), WRAP_RSAES_OAEP_SHA_256),
        CKR_KMSHSM_UNSUPPORTED_ORIGIN
    );
    assert_rv!(
        set_state(&session, key, STATE_PENDING_IMPORT),
        CKR_KMSHSM_UNSUPPORTED_ORIGIN
    );
}

#[test]
fn invalid_parameter_when_the_algorithm_does_not_fit_the_key_spec() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    for (spec, alg) in [
        (Spec::Aes256, WRAP_RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD),
        (Spec::Rsa2048, WRAP_RSAES_OAEP_SHA_256),
        (Spec::EcSm2, WRAP_SM2PKE),
        (Spec::EcP256, WRAP_SM2PKE_SM4_ECB),
    ] {
        let (_, id) = pending(&session, spec);
        assert_rv!(
            try_get_params(&session, &id, alg),
            RvError::AttributeValueInvalid,
            "{spec:?} with algorithm {alg}"
        );
    }
}

#[test]
fn invalid_parameter_when_the_material_expiry_is_in_the_past() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let (key, id) = pending(&session, Spec::Aes256);
    let material = work.material(Spec::Aes256);
    let params = get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256);
    let wrapped = work.wrap(params.alg, &params.spki, &material.bytes);
    for expiry in [1, system_now() - 10] {
        assert_rv!(
            import(&session, &params, &wrapped, Some(expiry)),
            RvError::AttributeValueInvalid,
            "expiry {expiry}"
        );
    }
    assert_eq!(state(&session, key), STATE_PENDING_IMPORT);
    // 0 means never.
    import(&session, &params, &wrapped, Some(0)).expect("expiry 0");
    assert_eq!(vendor_value(&session, key, CKA_KMSHSM_MATERIAL_EXPIRY), 0);
}

#[test]
fn key_not_found_for_an_unknown_or_destroyed_key() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    assert_rv!(
        try_get_params(
            &session,
            "202b9877-5a25-46e3-a763-e20791b50000",
            WRAP_SM2PKE
        ),
        CKR_KMSHSM_KEY_NOT_FOUND
    );
    let (key, id) = pending(&session, Spec::Sm4);
    let material = work.material(Spec::Sm4);
    let params = get_params(&session, &id, WRAP_SM2PKE);
    let wrapped = work.wrap(params.alg, &params.spki, &material.bytes);
    session.destroy_object(key).unwrap();
    assert_rv!(
        import(&session, &params, &wrapped, None),
        CKR_KMSHSM_KEY_NOT_FOUND
    );
    assert_rv!(
        try_get_params(&session, &id, WRAP_SM2PKE),
        CKR_KMSHSM_KEY_NOT_FOUND
    );
}

#[test]
fn incorrect_key_state_for_use_of_pending_disabled_and_doomed_keys() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let (key, _) = pending(&session, Spec::Aes256);
    assert_rv!(
        encrypt_with(&session, Spec::Aes256, key),
        CKR_KMSHSM_INCORRECT_KEY_STATE
    );
    assert_rv!(
        set_state(&session, key, STATE_ENABLED),
        CKR_KMSHSM_INCORRECT_KEY_STATE
    );
    assert_rv!(
        set_state(&session, key, STATE_DISABLED),
        CKR_KMSHSM_INCORRECT_KEY_STATE
    );

    let material = work.material(Spec::Aes256);
    import_with(
        &session,
        &work,
        key,
        WRAP_RSAES_OAEP_SHA_256,
        &material.bytes,
        None,
    )
    .unwrap();
    set_state(&session, key, STATE_DISABLED).unwrap();
    assert_rv!(
        encrypt_with(&session, Spec::Aes256, key),
        CKR_KMSHSM_INCORRECT_KEY_STATE
    );
    set_state(&session, key, STATE_PENDING_DELETION).unwrap();
    assert_rv!(
        encrypt_with(&session, Spec::Aes256, key),
        CKR_KMSHSM_INCORRECT_KEY_STATE
    );
    assert_rv!(
        set_state(&session, key, STATE_PENDING_DELETION),
        CKR_KMSHSM_INCORRECT_KEY_STATE
    );
    assert_rv!(
        set_state(&session, key, STATE_PENDING_IMPORT),
        CKR_KMSHSM_INCORRECT_KEY_STATE
    );
    assert_rv!(
        try_get_params(&session, &key_id(&session, key), WRAP_RSAES_OAEP_SHA_256),
        CKR_KMSHSM_INCORRECT_KEY_STATE
    );
    // A generated key that is disabled.
    let kms_key = session
        .generate_key(&Mechanism::AesKeyGen, &[Attribute::ValueLen(32.into())])
        .unwrap();
    set_state(&session, kms_key, STATE_DISABLED).unwrap();
    assert_rv!(
        encrypt_with(&session, Spec::Aes256, kms_key),
        CKR_KMSHSM_INCORRECT_KEY_STATE
    );
}

#[test]
fn the_wrong_mechanism_for_the_token_algorithm_is_mechanism_invalid() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let (_, id) = pending(&session, Spec::Aes256);
    let material = work.material(Spec::Aes256);
    let params = get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256);
    let wrapped = work.wrap(params.alg, &params.spki, &material.bytes);
    for alg in [
        WRAP_RSAES_PKCS1_V1_5,
        WRAP_RSA_AES_KEY_WRAP_SHA_256,
        WRAP_RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD,
    ] {
        assert_rv!(
            unwrap_raw(
                &session,
                &mechanism_of(alg),
                params.private,
                &wrapped,
                &import_template(&params.token, None)
            ),
            RvError::MechanismInvalid,
            "mechanism of algorithm {alg} with an RSAES_OAEP_SHA_256 token"
        );
    }
}

#[test]
fn oaep_parameters_with_the_other_hash_are_mechanism_param_invalid() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let material = work.material(Spec::Aes256);
    for (alg, wrong_hash) in [
        (WRAP_RSAES_OAEP_SHA_256, CKM_SHA_1),
        (WRAP_RSAES_OAEP_SHA_1, CKM_SHA256),
        (WRAP_RSA_AES_KEY_WRAP_SHA_1, CKM_SHA256),
        (WRAP_RSA_AES_KEY_WRAP_SHA_256, CKM_SHA_1),
    ] {
        let (_, id) = pending(&session, Spec::Aes256);
        let params = get_params(&session, &id, alg);
        let wrapped = work.wrap(alg, &params.spki, &material.bytes);
        let mut mechanism = mechanism_of(alg);
        mechanism.oaep_hash = Some(wrong_hash);
        assert_rv!(
            unwrap_raw(
                &session,
                &mechanism,
                params.private,
                &wrapped,
                &import_template(&params.token, None)
            ),
            RvError::MechanismParamInvalid,
            "algorithm {alg} with hash {wrong_hash:#x}"
        );
    }
}

/// The wrapping key carries its token: a template without one imports with it
/// (tests/kms_import_standard.rs has the rest of the standard-attribute import).
#[test]
fn an_import_without_a_token_in_its_template_uses_the_wrapping_keys_own() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let (_, id) = pending(&session, Spec::Aes256);
    let material = work.material(Spec::Aes256);
    let params = get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256);
    let wrapped = work.wrap(params.alg, &params.spki, &material.bytes);
    let key = unwrap_raw(
        &session,
        &mechanism_of(params.alg),
        params.private,
        &wrapped,
        &[],
    )
    .expect("import with an empty template");
    assert_eq!(key_id(&session, key), id);
}
