//! Key derivation by AES data encryption through the C ABI: `CKM_AES_ECB_ENCRYPT_DATA`
//! (`CK_KEY_DERIVATION_STRING_DATA`) and `CKM_AES_CBC_ENCRYPT_DATA`
//! (`CK_AES_CBC_ENCRYPT_DATA_PARAMS`). Known answers: NIST SP 800-38A F.1.1 (ECB-AES128)
//! and F.2.1 (CBC-AES128), the first two blocks. Also the `cryptoki` crate's
//! `ekdf_aes_cbc_encrypt_data` flow (a sensitive token master key, a derived AES key found
//! by label), and attacks: no `CKA_DERIVE`, a non-AES base, partial blocks, wrong sizes.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::*;
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::ekdf::AesCbcDeriveParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;

const KEY: &str = "2b7e151628aed2a6abf7158809cf4f3c";
const PLAIN: &str = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51";
const ECB: &str = "3ad77bb40d7a3660a89ecaf32466ef97f5d3d58503b9699de785895a96fdbaaf";
const IV: &str = "000102030405060708090a0b0c0d0e0f";
const CBC: &str = "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2";

fn key(session: &Session, key_type: KeyType, value: &[u8], derive: bool) -> ObjectHandle {
    session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(key_type),
            Attribute::Token(false),
            Attribute::Derive(derive),
            Attribute::Value(value.to_vec()),
        ])
        .expect("C_CreateObject")
}

fn ecb_mech(data: &[u8]) -> RawMech {
    let keep = vec![data.to_vec()];
    let p = CK_KEY_DERIVATION_STRING_DATA {
        pData: if data.is_empty() {
            std::ptr::null_mut()
        } else {
            keep[0].as_ptr() as *mut u8
        },
        ulLen: data.len() as CK_ULONG,
    };
    RawMech::structure(CKM_AES_ECB_ENCRYPT_DATA, &p, keep)
}

#[test]
fn sp800_38a_vectors_through_the_module() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let base = key(&session, KeyType::AES, &hex(KEY), true);
    let derived = ck
        .derive(
            session.handle(),
            &ecb_mech(&hex(PLAIN)),
            base.handle(),
            &raw_secret_template(CKK_GENERIC_SECRET, 32),
        )
        .expect("C_DeriveKey(CKM_AES_ECB_ENCRYPT_DATA)");
    assert_eq!(
        attribute_bytes(&session, handle(derived), AttributeType::Value),
        hex(ECB)
    );
    let plain = hex(PLAIN);
    let iv: [u8; 16] = hex(IV).try_into().unwrap();
    let derived = session
        .derive_key(
            &Mechanism::AesCbcEncryptData(AesCbcDeriveParams::new(iv, &plain)),
            base,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Token(false),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
            ],
        )
        .expect("C_DeriveKey(CKM_AES_CBC_ENCRYPT_DATA)");
    assert_eq!(
        attribute_bytes(&session, derived, AttributeType::Value),
        hex(CBC)
    );
}

/// The `cryptoki` crate's `ekdf_aes_cbc_encrypt_data`: a sensitive, private token AES-256
/// master key generated with `CKA_DERIVE`, and a derived token key of the same template.
#[test]
fn the_cryptoki_crates_flow() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let template = |label: &str| {
        vec![
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Sensitive(true),
            Attribute::Private(true),
            Attribute::ValueLen(32.into()),
            Attribute::Derive(true),
        ]
    };
    let master = session
        .generate_key(&Mechanism::AesKeyGen, &template("master"))
        .unwrap();
    let derived = session
        .derive_key(
            &Mechanism::AesCbcEncryptData(AesCbcDeriveParams::new([0u8; 16], &[1u8; 32])),
            master,
            &template("child"),
        )
        .unwrap();
    assert_eq!(find_by_label(&session, "child"), [derived]);
    for (ty, want) in [
        (AttributeType::Sensitive, true),
        (AttributeType::AlwaysSensitive, true),
        (AttributeType::Local, false),
        (AttributeType::Derive, true),
        (AttributeType::Encrypt, false),
    ] {
        assert_eq!(attribute_bool(&session, derived, ty), want, "{ty:?}");
    }
}

#[test]
fn bases_and_data_the_mechanisms_refuse() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let s = session.handle();
    let template = raw_secret_template(CKK_GENERIC_SECRET, 16);
    let aes = key(&session, KeyType::AES, &hex(KEY), true);
    let no_derive = key(&session, KeyType::AES, &hex(KEY), false);
    let generic = key(&session, KeyType::GENERIC_SECRET, &hex(KEY), true);
    let block = [0u8; 16];
    assert_eq!(
        ck.derive(s, &ecb_mech(&block), no_derive.handle(), &template),
        Err(RvError::KeyFunctionNotPermitted)
    );
    assert_eq!(
        ck.derive(s, &ecb_mech(&block), generic.handle(), &template),
        Err(RvError::KeyTypeInconsistent)
    );
    for data in [&[][..], &[0u8; 15], &[0u8; 17]] {
        assert_eq!(
            ck.derive(s, &ecb_mech(data), aes.handle(), &template),
            Err(RvError::MechanismParamInvalid),
            "{} bytes",
            data.len()
        );
    }
    let size = std::mem::size_of::<CK_KEY_DERIVATION_STRING_DATA>() as CK_ULONG;
    assert_eq!(
        ck.derive(
            s,
            &ecb_mech(&block).with_len(size - 1),
            aes.handle(),
            &template
        ),
        Err(RvError::MechanismParamInvalid)
    );
    let cbc = CK_AES_CBC_ENCRYPT_DATA_PARAMS {
        iv: [0; 16],
        pData: std::ptr::null_mut(),
        length: 16,
    };
    assert_eq!(
        ck.derive(
            s,
            &RawMech::structure(CKM_AES_CBC_ENCRYPT_DATA, &cbc, Vec::new()),
            aes.handle(),
            &template
        ),
        Err(RvError::MechanismParamInvalid)
    );
    let size = std::mem::size_of::<CK_AES_CBC_ENCRYPT_DATA_PARAMS>() as CK_ULONG;
    let keep = vec![block.to_vec()];
    let cbc = CK_AES_CBC_ENCRYPT_DATA_PARAMS {
        pData: keep[0].as_ptr() as *mut u8,
        ..cbc
    };
    let good = RawMech::structure(CKM_AES_CBC_ENCRYPT_DATA, &cbc, keep);
    ck.derive(s, &good, aes.handle(), &template).unwrap();
    assert_eq!(
        ck.derive(s, &good.with_len(size + 1), aes.handle(), &template),
        Err(RvError::MechanismParamInvalid)
    );
}
