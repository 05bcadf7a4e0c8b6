//! ImportKeyMaterial (`C_UnwrapKey` with import parameters), once per wrapping algorithm
//! and per target key spec. The encrypted material is made by the `openssl` command line
//! from the wrapping public key read out of the token (CKA_PUBLIC_KEY_INFO), in the
//! kms-docs formats, never by the module; each imported key is then shown to compute what
//! openssl computes with the original material. Needs `openssl`. Run with
//! `cargo nextest run --test kms_import`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::kms::*;
use common::*;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use cryptoki_sys::*;

/// Creates an EXTERNAL key of `spec`, imports fresh openssl material with `alg`, checks
/// the key's identity after the import and that it works like the material.
fn import_and_prove(spec: Spec, alg: u64) {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let key = create_external(&session, spec, "byok");
    let id = key_id(&session, key);
    let material = work.material(spec);
    let params = get_params(&session, &id, alg);
    let wrapped = work.wrap(alg, &params.spki, &material.bytes);
    let imported = import(&session, &params, &wrapped, None)
        .unwrap_or_else(|e| panic!("ImportKeyMaterial of {spec:?} with algorithm {alg}: {e}"));

    assert_eq!(imported, key, "the import must return the target's handle");
    assert_eq!(key_id(&session, key), id, "the KeyId changed");
    assert_eq!(state(&session, key), STATE_ENABLED);
    assert_eq!(origin(&session, key), ORIGIN_EXTERNAL);
    assert_eq!(
        vendor_value(&session, key, CKA_KMSHSM_KEY_SPEC),
        spec.code()
    );
    assert_eq!(vendor_value(&session, key, CKA_KMSHSM_MATERIAL_EXPIRY), 0);
    assert_eq!(
        read_bool(&session, key, CKA_LOCAL),
        Some(false),
        "CKA_LOCAL"
    );
    assert_eq!(
        read_bool(&session, key, CKA_ALWAYS_SENSITIVE),
        Some(false),
        "CKA_ALWAYS_SENSITIVE"
    );
    assert_eq!(
        read_bool(&session, key, CKA_NEVER_EXTRACTABLE),
        Some(false),
        "CKA_NEVER_EXTRACTABLE"
    );
    if !spec.symmetric() {
        let public = public_half(&session, &id);
        assert_eq!(state(&session, public), STATE_ENABLED);
        assert_eq!(origin(&session, public), ORIGIN_EXTERNAL);
        assert_public_matches(&session, public, &material);
    }
    assert_works_like(&session, &work, key, &material);
}

/// The public object the import created holds the material's public key.
fn assert_public_matches(
    session: &cryptoki::session::Session,
    public: cryptoki::object::ObjectHandle,
    material: &Material,
) {
    let text = String::from_utf8(openssl(&[
        "pkey",
        "-pubin",
        "-in",
        material.public_pem.as_ref().unwrap().to_str().unwrap(),
        "-noout",
        "-text",
    ]))
    .unwrap();
    if material.spec.rsa_bits().is_some() {
        let modulus = left_pad(
            &text_field(&text, "Modulus"),
            material.spec.rsa_bits().unwrap() as usize / 8,
        );
        let got = read_bytes(session, public, CKA_MODULUS).expect("CKA_MODULUS");
        assert_eq!(to_hex(&left_pad(&got, modulus.len())), to_hex(&modulus));
    } else {
        let point = text_field(&text, "pub");
        let got = read_bytes(session, public, CKA_EC_POINT).expect("CKA_EC_POINT");
        assert_eq!(to_hex(&point_of(&got)), to_hex(&point));
        assert_eq!(
            read_bytes(session, public, CKA_EC_PARAMS).as_deref(),
            material.spec.ec_params()
        );
    }
}

#[test]
fn aes_256_material_imports_with_rsaes_pkcs1_v1_5() {
    import_and_prove(Spec::Aes256, WRAP_RSAES_PKCS1_V1_5);
}

#[test]
fn aes_256_material_imports_with_rsaes_oaep_sha_1() {
    import_and_prove(Spec::Aes256, WRAP_RSAES_OAEP_SHA_1);
}

#[test]
fn aes_256_material_imports_with_rsaes_oaep_sha_256() {
    import_and_prove(Spec::Aes256, WRAP_RSAES_OAEP_SHA_256);
}

#[test]
fn aes_256_material_imports_with_rsa_aes_key_wrap_sha_1() {
    import_and_prove(Spec::Aes256, WRAP_RSA_AES_KEY_WRAP_SHA_1);
}

#[test]
fn aes_256_material_imports_with_rsa_aes_key_wrap_sha_256() {
    import_and_prove(Spec::Aes256, WRAP_RSA_AES_KEY_WRAP_SHA_256);
}

#[test]
fn aes_256_material_imports_with_sm2pke() {
    import_and_prove(Spec::Aes256, WRAP_SM2PKE);
}

#[test]
fn sm4_material_imports_with_rsaes_pkcs1_v1_5() {
    import_and_prove(Spec::Sm4, WRAP_RSAES_PKCS1_V1_5);
}

#[test]
fn sm4_material_imports_with_rsaes_oaep_sha_1() {
    import_and_prove(Spec::Sm4, WRAP_RSAES_OAEP_SHA_1);
}

#[test]
fn sm4_material_imports_with_rsaes_oaep_sha_256() {
    import_and_prove(Spec::Sm4, WRAP_RSAES_OAEP_SHA_256);
}

#[test]
fn sm4_material_imports_with_rsa_aes_key_wrap_sha_1() {
    import_and_prove(Spec::Sm4, WRAP_RSA_AES_KEY_WRAP_SHA_1);
}

#[test]
fn sm4_material_imports_with_rsa_aes_key_wrap_sha_256() {
    import_and_prove(Spec::Sm4, WRAP_RSA_AES_KEY_WRAP_SHA_256);
}

#[test]
fn sm4_material_imports_with_sm2pke() {
    import_and_prove(Spec::Sm4, WRAP_SM2PKE);
}

#[test]
fn rsa_2048_private_key_imports_in_the_oaep_sha_256_aes_256_ecb_envelope() {
    import_and_prove(Spec::Rsa2048, WRAP_RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD);
}

#[test]
fn rsa_3072_private_key_imports_in_the_oaep_sha_256_aes_256_ecb_envelope() {
    import_and_prove(Spec::Rsa3072, WRAP_RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD);
}

#[test]
fn rsa_4096_private_key_imports_in_the_oaep_sha_256_aes_256_ecb_envelope() {
    import_and_prove(Spec::Rsa4096, WRAP_RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD);
}

#[test]
fn rsa_2048_private_key_imports_with_rsa_aes_key_wrap_sha_1() {
    import_and_prove(Spec::Rsa2048, WRAP_RSA_AES_KEY_WRAP_SHA_1);
}

#[test]
fn rsa_3072_private_key_imports_with_rsa_aes_key_wrap_sha_256() {
    import_and_prove(Spec::Rsa3072, WRAP_RSA_AES_KEY_WRAP_SHA_256);
}

#[test]
fn ec_p256_private_key_imports_in_the_oaep_sha_256_aes_256_ecb_envelope() {
    import_and_prove(Spec::EcP256, WRAP_RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD);
}

#[test]
fn ec_p256_private_key_imports_with_rsa_aes_key_wrap_sha_256() {
    import_and_prove(Spec::EcP256, WRAP_RSA_AES_KEY_WRAP_SHA_256);
}

#[test]
fn ec_p256k_private_key_imports_in_the_oaep_sha_256_aes_256_ecb_envelope() {
    import_and_prove(Spec::EcP256K, WRAP_RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD);
}

#[test]
fn ec_p256k_private_key_imports_with_rsa_aes_key_wrap_sha_1() {
    import_and_prove(Spec::EcP256K, WRAP_RSA_AES_KEY_WRAP_SHA_1);
}

#[test]
fn ec_sm2_private_scalar_imports_in_the_sm2pke_sm4_ecb_envelope() {
    import_and_prove(Spec::EcSm2, WRAP_SM2PKE_SM4_ECB);
}

/// kms-docs 004 byte for byte: the envelope is exactly Cipher(ESK) (256 bytes of RSA-2048
/// OAEP) followed by the PKCS#7-padded AES-256-ECB of the PKCS#8 key; the SM2 envelope
/// is the 113-byte C1C3C2 of the 16-byte ESK followed by 32 bytes of SM4-ECB.
#[test]
fn envelopes_have_the_kms_docs_layout() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);

    let key = create_external(&session, Spec::EcP256, "layout");
    let material = work.material(Spec::EcP256);
    let params = get_params(
        &session,
        &key_id(&session, key),
        WRAP_RSAES_OAEP_SHA_256_AES_256_ECB_PKCS7_PAD,
    );
    let wrapped = work.wrap(params.alg, &params.spki, &material.bytes);
    assert_eq!(
        wrapped.len(),
        256 + (material.bytes.len() / 16 + 1) * 16,
        "Cipher(ESK) || Cipher(TAKpriv) with PKCS#7 padding"
    );
    import(&session, &params, &wrapped, None).expect("import");

    let key = create_external(&session, Spec::EcSm2, "layout-sm2");
    let material = work.material(Spec::EcSm2);
    assert_eq!(material.bytes.len(), 32);
    let params = get_params(&session, &key_id(&session, key), WRAP_SM2PKE_SM4_ECB);
    let wrapped = work.wrap(params.alg, &params.spki, &material.bytes);
    assert_eq!(wrapped.len(), 65 + 32 + 16 + 32);
    import(&session, &params, &wrapped, None).expect("import");
    assert_works_like(&session, &work, key, &material);
}

/// The public key a user wraps with is given both as a DER SubjectPublicKeyInfo and, for
/// tools that want it, converts to PEM; wrapping under the PEM gives an importable result.
#[test]
fn the_wrapping_public_key_converts_to_pem_and_wraps_from_it() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let key = create_external(&session, Spec::Aes256, "pem");
    let material = work.material(Spec::Aes256);
    let params = get_params(&session, &key_id(&session, key), WRAP_RSAES_OAEP_SHA_256);
    let der = work.file("wrapping.der", &params.spki);
    let pem = work.path("wrapping.pem");
    openssl(&[
        "pkey", "-pubin", "-inform", "DER", "-in", &der, "-out", &pem,
    ]);
    let input = work.file("material.bin", &material.bytes);
    let output = work.path("wrapped.bin");
    openssl(&[
        "pkeyutl",
        "-encrypt",
        "-pubin",
        "-inkey",
        &pem,
        "-in",
        &input,
        "-out",
        &output,
        "-pkeyopt",
        "rsa_padding_mode:oaep",
        "-pkeyopt",
        "rsa_oaep_md:sha256",
        "-pkeyopt",
        "rsa_mgf1_md:sha256",
    ]);
    import(&session, &params, &work.read(&output), None).expect("import");
    assert_works_like(&session, &work, key, &material);
}

/// An import with an expiry records it, and CKA_END_DATE is not required for that.
#[test]
fn an_import_with_an_expiry_records_it_on_the_key() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let key = create_external(&session, Spec::Aes256, "expiring");
    let material = work.material(Spec::Aes256);
    let expiry = system_now() + 3600;
    import_with(
        &session,
        &work,
        key,
        WRAP_RSAES_OAEP_SHA_1,
        &material.bytes,
        Some(expiry),
    )
    .expect("import");
    assert_eq!(
        vendor_value(&session, key, CKA_KMSHSM_MATERIAL_EXPIRY),
        expiry
    );
    assert_works_like(&session, &work, key, &material);
}

/// The import template may name the target's KeyId (it must be the target).
#[test]
fn the_import_template_may_name_the_target_key_id() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let key = create_external(&session, Spec::Sm4, "named");
    let id = key_id(&session, key);
    let material = work.material(Spec::Sm4);
    let params = get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256);
    let wrapped = work.wrap(params.alg, &params.spki, &material.bytes);
    let mut template = import_template(&params.token, None);
    template.push(vendor_bytes(CKA_KMSHSM_KEY_ID, id.as_bytes()));
    let imported = unwrap_raw(
        &session,
        &mechanism_of(params.alg),
        params.private,
        &wrapped,
        &template,
    )
    .expect("import naming the target");
    assert_eq!(imported, key);
    assert_works_like(&session, &work, key, &material);
}

/// A session (not token) EXTERNAL key takes imported material as well.
#[test]
fn a_session_external_key_takes_imported_material() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let mut template = external_template(Spec::Aes256, "session-key");
    template.retain(|a| !matches!(a, Attribute::Token(_)));
    template.push(Attribute::Token(false));
    let key = session.create_object(&template).expect("C_CreateObject");
    let material = work.material(Spec::Aes256);
    import_with(
        &session,
        &work,
        key,
        WRAP_RSAES_PKCS1_V1_5,
        &material.bytes,
        None,
    )
    .expect("import");
    assert_works_like(&session, &work, key, &material);
}

/// Plain PKCS#11: an ordinary unwrap-capable RSA key pair (no import target) unwraps
/// OAEP-wrapped AES material, made by openssl, into a new key with origin EXTERNAL.
/// (pkcs11-tool 0.23 sends no OAEP parameters, so OAEP is covered here.)
#[test]
fn an_ordinary_oaep_unwrap_creates_a_new_external_key() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let (public, private) = session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::ModulusBits(2048.into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
                Attribute::Wrap(true),
            ],
            &[Attribute::Unwrap(true), Attribute::Sensitive(true)],
        )
        .expect("C_GenerateKeyPair");
    let n = read_bytes(&session, public, CKA_MODULUS).unwrap();
    let spki_pem = work.path("ordinary.pem");
    // The public key, written as the user would get it from any PKCS#11 tool.
    let spki = rsa_spki(&n, &[1, 0, 1]);
    let der = work.file("ordinary.der", &spki);
    openssl(&[
        "pkey", "-pubin", "-inform", "DER", "-in", &der, "-out", &spki_pem,
    ]);
    let material = work.material(Spec::Aes256);
    let wrapped = work.rsa_encrypt(&spki, Some("sha256"), &material.bytes);
    let oaep = PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::empty(),
    );
    let key = session
        .unwrap_key(
            &Mechanism::RsaPkcsOaep(oaep),
            private,
            &wrapped,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Token(true),
            ],
        )
        .expect("C_UnwrapKey with OAEP");
    assert_eq!(origin(&session, key), ORIGIN_EXTERNAL);
    assert_eq!(state(&session, key), STATE_ENABLED);
    assert!(is_key_id(&key_id(&session, key)));
    assert_eq!(
        vendor_value(&session, key, CKA_KMSHSM_KEY_SPEC),
        Spec::Aes256.code()
    );
    assert_eq!(read_bool(&session, key, CKA_LOCAL), Some(false));
    assert_works_like(&session, &work, key, &material);
}

/// DER SubjectPublicKeyInfo of an RSA public key (rsaEncryption, NULL parameters).
fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut key = der_uint(n);
    key.extend(der_uint(e));
    let key = der_tlv(0x30, &key);
    let mut bits = vec![0u8];
    bits.extend(key);
    let algorithm = der_tlv(
        0x30,
        &[
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
        ],
    );
    let mut body = algorithm;
    body.extend(der_tlv(0x03, &bits));
    der_tlv(0x30, &body)
}
