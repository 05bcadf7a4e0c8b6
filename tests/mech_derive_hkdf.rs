//! HKDF through the C ABI (PKCS#11 3.0 §2.62): `CKM_HKDF_DERIVE` with `CK_HKDF_PARAMS`
//! and `CKM_HKDF_KEY_GEN`. Known answers: RFC 5869 Appendix A, test case 1 (extract and
//! expand, salt as data and as a key) and its PRK (extract only). Attacks: a base or salt
//! key without `CKA_DERIVE`, a salt key that does not exist, a base key of another type,
//! a truncated structure, a hash that is not a digest.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::*;
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::hkdf::{HkdfParams, HkdfSalt};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;

const IKM: &str = "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b";
const SALT: &str = "000102030405060708090a0b0c";
const INFO: &str = "f0f1f2f3f4f5f6f7f8f9";
const PRK: &str = "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5";
const OKM: &str =
    "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865";

fn secret(session: &Session, key_type: KeyType, value: &[u8], derive: bool) -> ObjectHandle {
    session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(key_type),
            Attribute::Token(false),
            Attribute::Derive(derive),
            Attribute::Value(value.to_vec()),
        ])
        .expect("C_CreateObject(secret)")
}

fn readable(len: Option<u64>) -> Vec<Attribute> {
    let mut t = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ];
    if let Some(n) = len {
        t.push(Attribute::ValueLen(n.into()));
    }
    t
}

fn value(session: &Session, key: ObjectHandle) -> Vec<u8> {
    attribute_bytes(session, key, AttributeType::Value)
}

#[test]
fn rfc_5869_case_1_with_the_salt_as_data_or_as_a_key() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ikm = secret(&session, KeyType::GENERIC_SECRET, &hex(IKM), true);
    let (salt, info) = (hex(SALT), hex(INFO));
    let both = HkdfParams::new(
        MechanismType::SHA256,
        Some(HkdfSalt::Data(&salt)),
        Some(&info),
    );
    let okm = session
        .derive_key(&Mechanism::HkdfDerive(both), ikm, &readable(Some(42)))
        .expect("C_DeriveKey(HKDF)");
    assert_eq!(value(&session, okm), hex(OKM));
    // The salt as a key object, authorised for derivation like the base key.
    let salt_key = secret(&session, KeyType::GENERIC_SECRET, &salt, true);
    let keyed = HkdfParams::new(
        MechanismType::SHA256,
        Some(HkdfSalt::Key(salt_key)),
        Some(&info),
    );
    let okm = session
        .derive_key(&Mechanism::HkdfDerive(keyed), ikm, &readable(Some(42)))
        .unwrap();
    assert_eq!(value(&session, okm), hex(OKM));
    // Extract only: the PRK, one hash long.
    let extract = HkdfParams::new(MechanismType::SHA256, Some(HkdfSalt::Data(&salt)), None);
    let prk = session
        .derive_key(&Mechanism::HkdfDerive(extract), ikm, &readable(None))
        .unwrap();
    assert_eq!(value(&session, prk), hex(PRK));
    // Expand only, from the PRK as a CKK_HKDF key.
    let prk_key = secret(&session, KeyType::HKDF, &hex(PRK), true);
    let expand = HkdfParams::new(MechanismType::SHA256, None, Some(&info));
    let okm = session
        .derive_key(&Mechanism::HkdfDerive(expand), prk_key, &readable(Some(42)))
        .unwrap();
    assert_eq!(value(&session, okm), hex(OKM));
}

#[test]
fn hkdf_key_generation_makes_keys_hkdf_derives_from() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = session
        .generate_key(
            &Mechanism::HkdfKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(32.into()),
                Attribute::Derive(true),
            ],
        )
        .expect("C_GenerateKey(CKM_HKDF_KEY_GEN)");
    let got = session
        .get_attributes(key, &[AttributeType::KeyType, AttributeType::ValueLen])
        .unwrap();
    assert_eq!(
        got,
        [
            Attribute::KeyType(KeyType::HKDF),
            Attribute::ValueLen(32.into())
        ]
    );
    let params = HkdfParams::new(MechanismType::SHA512, Some(HkdfSalt::Null), Some(b"ctx"));
    let out = session
        .derive_key(&Mechanism::HkdfDerive(params), key, &readable(Some(80)))
        .unwrap();
    assert_eq!(value(&session, out).len(), 80);
    assert_rv!(
        session.generate_key(&Mechanism::HkdfKeyGen, &[Attribute::Token(false)]),
        RvError::TemplateIncomplete
    );
}

#[test]
fn keys_and_parameters_hkdf_must_refuse() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ikm = secret(&session, KeyType::GENERIC_SECRET, &hex(IKM), true);
    let no_derive = secret(&session, KeyType::GENERIC_SECRET, &hex(SALT), false);
    let aes = secret(&session, KeyType::AES, &[1u8; 16], true);
    let info = hex(INFO);
    let plain = HkdfParams::new(MechanismType::SHA256, Some(HkdfSalt::Null), Some(&info));
    assert_rv!(
        session.derive_key(
            &Mechanism::HkdfDerive(plain),
            no_derive,
            &readable(Some(32))
        ),
        RvError::KeyFunctionNotPermitted
    );
    assert_rv!(
        session.derive_key(&Mechanism::HkdfDerive(plain), aes, &readable(Some(32))),
        RvError::KeyTypeInconsistent
    );
    let salted_by = |k| HkdfParams::new(MechanismType::SHA256, Some(HkdfSalt::Key(k)), Some(&info));
    assert_rv!(
        session.derive_key(
            &Mechanism::HkdfDerive(salted_by(no_derive)),
            ikm,
            &readable(Some(32))
        ),
        RvError::KeyFunctionNotPermitted
    );
    assert_rv!(
        session.derive_key(
            &Mechanism::HkdfDerive(salted_by(handle(0x7fff_fff1))),
            ikm,
            &readable(Some(32))
        ),
        RvError::KeyHandleInvalid
    );
    let hmac_hash = HkdfParams::new(
        MechanismType::SHA256_HMAC,
        Some(HkdfSalt::Null),
        Some(&info),
    );
    assert_rv!(
        session.derive_key(&Mechanism::HkdfDerive(hmac_hash), ikm, &readable(Some(32))),
        RvError::MechanismParamInvalid
    );
    assert_rv!(
        session.derive_key(
            &Mechanism::HkdfDerive(plain),
            ikm,
            &readable(Some(255 * 32 + 1))
        ),
        RvError::TemplateInconsistent
    );
    // Neither extract nor expand; a truncated or oversized structure; a salt type of
    // none of the three kinds; salt data NULL with a length.
    let ck = Ck::load();
    let template = raw_secret_template(CKK_GENERIC_SECRET, 32);
    let derive = |m: &RawMech| ck.derive(session.handle(), m, ikm.handle(), &template);
    let mut p = CK_HKDF_PARAMS {
        bExtract: 1,
        bExpand: 1,
        prfHashMechanism: CKM_SHA256,
        ulSaltType: CKF_HKDF_SALT_NULL,
        pSalt: std::ptr::null_mut(),
        ulSaltLen: 0,
        hSaltKey: 0,
        pInfo: std::ptr::null_mut(),
        ulInfoLen: 0,
    };
    derive(&RawMech::structure(CKM_HKDF_DERIVE, &p, Vec::new())).unwrap();
    let size = std::mem::size_of::<CK_HKDF_PARAMS>() as CK_ULONG;
    for len in [size - 1, size + 1] {
        assert_eq!(
            derive(&RawMech::structure(CKM_HKDF_DERIVE, &p, Vec::new()).with_len(len)),
            Err(RvError::MechanismParamInvalid)
        );
    }
    let mut bad = p;
    bad.bExtract = 0;
    bad.bExpand = 0;
    assert_eq!(
        derive(&RawMech::structure(CKM_HKDF_DERIVE, &bad, Vec::new())),
        Err(RvError::MechanismParamInvalid)
    );
    p.ulSaltType = 8;
    assert_eq!(
        derive(&RawMech::structure(CKM_HKDF_DERIVE, &p, Vec::new())),
        Err(RvError::MechanismParamInvalid)
    );
    p.ulSaltType = CKF_HKDF_SALT_DATA;
    p.ulSaltLen = 16;
    assert_eq!(
        derive(&RawMech::structure(CKM_HKDF_DERIVE, &p, Vec::new())),
        Err(RvError::MechanismParamInvalid)
    );
}

/// Expand only with the salt fields left zero (`ulSaltType` 0, which names no salt kind):
/// the salt belongs to the extract step, so it is not read. pkcs11-provider's TLS 1.3
/// "expand label" sends exactly this; refusing it broke TLS 1.3 with the provider forced
/// for every server operation (its `tls` test). RFC 5869 case 1's OKM from its PRK.
#[test]
fn expand_only_ignores_the_salt_fields_as_pkcs11_provider_sends_them() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let prk_key = secret(&session, KeyType::HKDF, &hex(PRK), true);
    let ck = Ck::load();
    let mut info = hex(INFO);
    let p = CK_HKDF_PARAMS {
        bExtract: 0,
        bExpand: 1,
        prfHashMechanism: CKM_SHA256,
        ulSaltType: 0,
        pSalt: std::ptr::null_mut(),
        ulSaltLen: 0,
        hSaltKey: CK_INVALID_HANDLE,
        pInfo: info.as_mut_ptr(),
        ulInfoLen: info.len() as CK_ULONG,
    };
    let template = raw_secret_template(CKK_GENERIC_SECRET, 42);
    let okm = ck
        .derive(
            session.handle(),
            &RawMech::structure(CKM_HKDF_DERIVE, &p, Vec::new()),
            prk_key.handle(),
            &template,
        )
        .expect("expand-only HKDF with ulSaltType 0");
    assert_eq!(value(&session, handle(okm)), hex(OKM));
}

/// `CKM_HKDF_DATA` as pkcs11-provider calls it (HKDF and TLS 1.3 through OpenSSL): a
/// template of `CKA_CLASS` `CKO_DATA`, `CKA_TOKEN` false and `CKA_VALUE_LEN`; the result is
/// a data object holding the OKM, private when the base key is.
#[test]
fn hkdf_data_makes_a_data_object_as_pkcs11_provider_asks() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ikm = secret(&session, KeyType::GENERIC_SECRET, &hex(IKM), true);
    let (salt, info) = (hex(SALT), hex(INFO));
    let params = HkdfParams::new(
        MechanismType::SHA256,
        Some(HkdfSalt::Data(&salt)),
        Some(&info),
    );
    let data = session
        .derive_key(
            &Mechanism::HkdfData(params),
            ikm,
            &[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Token(false),
                Attribute::ValueLen(42.into()),
            ],
        )
        .expect("C_DeriveKey(CKM_HKDF_DATA)");
    let got = session
        .get_attributes(data, &[AttributeType::Class, AttributeType::Private])
        .unwrap();
    assert_eq!(
        got,
        [
            Attribute::Class(ObjectClass::DATA),
            Attribute::Private(true)
        ]
    );
    assert_eq!(value(&session, data), hex(OKM));
    // Without a length: one hash; a key class asked of it is inconsistent.
    let data = session
        .derive_key(
            &Mechanism::HkdfData(params),
            ikm,
            &[Attribute::Token(false)],
        )
        .unwrap();
    assert_eq!(value(&session, data).len(), 32);
    assert_rv!(
        session.derive_key(
            &Mechanism::HkdfData(params),
            ikm,
            &[Attribute::Class(ObjectClass::SECRET_KEY)]
        ),
        RvError::TemplateInconsistent
    );
}
