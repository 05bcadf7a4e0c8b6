//! An attacker's review of the mechanisms that landed together: derivations (§2.42,
//! §2.43, §2.62, §2.16), `C_DigestKey`, the `legacy_algorithms` switch, AES key wrap of
//! private keys, Ed448/X448 and message-based AES-GCM. Each test reproduces one attack
//! and asserts the safe, specification-conformant answer; those that failed against the
//! module before a fix say so.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::*;
use common::raw::RawAttr;
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;

/// A session generic secret with `value` and `CKA_DERIVE`, plus `extra`.
fn secret(session: &Session, value: &[u8], extra: &[Attribute]) -> ObjectHandle {
    let mut t = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Derive(true),
        Attribute::Value(value.to_vec()),
    ];
    t.extend_from_slice(extra);
    session.create_object(&t).expect("C_CreateObject(secret)")
}

/// A readable AES-128 key that wraps and decrypts (the attacker's own key).
fn attacker_kek(session: &Session) -> ObjectHandle {
    session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
            Attribute::Wrap(true),
            Attribute::Decrypt(true),
            Attribute::Value(vec![0x5A; 16]),
        ])
        .expect("C_CreateObject(attacker's AES key)")
}

fn string_data(ty: CK_MECHANISM_TYPE, data: &[u8]) -> RawMech {
    let keep = vec![data.to_vec()];
    let p = CK_KEY_DERIVATION_STRING_DATA {
        pData: if data.is_empty() {
            std::ptr::null_mut()
        } else {
            keep[0].as_ptr() as *mut _
        },
        ulLen: data.len() as CK_ULONG,
    };
    RawMech::structure(ty, &p, keep)
}

fn generic_template(len: Option<CK_ULONG>, extra: Vec<RawAttr>) -> Vec<RawAttr> {
    let mut t = vec![
        RawAttr::ulong(CKA_CLASS, CKO_SECRET_KEY),
        RawAttr::ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET),
        RawAttr::bool(CKA_TOKEN, false),
    ];
    if let Some(len) = len {
        t.push(RawAttr::ulong(CKA_VALUE_LEN, len));
    }
    t.extend(extra);
    t
}

/// The module still answers after an attack (a caught panic would poison it: every
/// later call `CKR_GENERAL_ERROR`).
fn still_alive(ck: &Ck, session: &Session, base: ObjectHandle) {
    let m = string_data(CKM_CONCATENATE_BASE_AND_DATA, &[1]);
    ck.derive(
        session.handle(),
        &m,
        base.handle(),
        &generic_template(None, vec![]),
    )
    .expect("the module still derives after the attack");
}

// ---------------------------------------------------------------------------------------
// Derivations
// ---------------------------------------------------------------------------------------

/// Attack: a `CKA_VALUE_LEN` near 2^64 in an SP 800-108 template, alone or spread over
/// additional keys, so that the segment arithmetic overflows (a panic poisons the
/// module; wrapped arithmetic would pass the size check and loop for ever). Failed
/// before the fix with `CKR_GENERAL_ERROR`.
#[test]
fn kbkdf_lengths_near_two_to_the_64_are_refused_without_a_panic() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let base = secret(&session, &[0x44; 32], &[]);
    let s = session.handle();

    // Feedback mode, no counter: nothing bounds the number of iterations but the length.
    let list = [CK_PRF_DATA_PARAM {
        type_: CK_SP800_108_ITERATION_VARIABLE,
        pValue: std::ptr::null_mut(),
        ulValueLen: 0,
    }];
    let list_bytes: Vec<u8> = list.iter().flat_map(struct_bytes).collect();
    let feedback = |extra: &mut [CK_DERIVED_KEY]| {
        let keep = vec![list_bytes.clone()];
        let p = CK_SP800_108_FEEDBACK_KDF_PARAMS {
            prfType: CKM_SHA256_HMAC,
            ulNumberOfDataParams: 1,
            pDataParams: keep[0].as_ptr() as *mut _,
            ulIVLen: 0,
            pIV: std::ptr::null_mut(),
            ulAdditionalDerivedKeys: extra.len() as CK_ULONG,
            pAdditionalDerivedKeys: if extra.is_empty() {
                std::ptr::null_mut()
            } else {
                extra.as_mut_ptr()
            },
        };
        RawMech::structure(CKM_SP800_108_FEEDBACK_KDF, &p, keep)
    };
    for len in [CK_ULONG::MAX, CK_ULONG::MAX - 31, 1 << 63, 1 << 40] {
        let r = ck.derive(
            s,
            &feedback(&mut []),
            base.handle(),
            &generic_template(Some(len), vec![]),
        );
        assert_eq!(r, Err(RvError::KeySizeRange), "CKA_VALUE_LEN {len:#x}");
    }
    // Lengths each under 2^64 whose sum of segments is not.
    let big = generic_template(Some(1 << 62), vec![]);
    let mut big_attrs: Vec<CK_ATTRIBUTE> = big
        .iter()
        .map(|a| CK_ATTRIBUTE {
            type_: a.ty,
            pValue: a.value.as_ptr() as *mut _,
            ulValueLen: a.value.len() as CK_ULONG,
        })
        .collect();
    let mut handles = [7 as CK_OBJECT_HANDLE; 8];
    let mut extra: Vec<CK_DERIVED_KEY> = handles
        .iter_mut()
        .map(|h| CK_DERIVED_KEY {
            pTemplate: big_attrs.as_mut_ptr(),
            ulAttributeCount: big_attrs.len() as CK_ULONG,
            phKey: h,
        })
        .collect();
    let r = ck.derive(s, &feedback(&mut extra), base.handle(), &big);
    assert_eq!(r, Err(RvError::KeySizeRange));
    drop(extra);
    assert!(
        handles.iter().all(|h| *h == CK_INVALID_HANDLE),
        "all or none: {handles:?}"
    );

    // Counter mode as well (its counter bounds the iterations, not the arithmetic).
    let format = CK_SP800_108_COUNTER_FORMAT {
        bLittleEndian: 0,
        ulWidthInBits: 32,
    };
    let format_bytes = struct_bytes(&format);
    let counter_list = [CK_PRF_DATA_PARAM {
        type_: CK_SP800_108_ITERATION_VARIABLE,
        pValue: format_bytes.as_ptr() as *mut _,
        ulValueLen: format_bytes.len() as CK_ULONG,
    }];
    let keep = vec![counter_list
        .iter()
        .flat_map(struct_bytes)
        .collect::<Vec<u8>>()];
    let p = CK_SP800_108_KDF_PARAMS {
        prfType: CKM_SHA256_HMAC,
        ulNumberOfDataParams: 1,
        pDataParams: keep[0].as_ptr() as *mut _,
        ulAdditionalDerivedKeys: 0,
        pAdditionalDerivedKeys: std::ptr::null_mut(),
    };
    let counter = RawMech::structure(CKM_SP800_108_COUNTER_KDF, &p, keep);
    let r = ck.derive(
        s,
        &counter,
        base.handle(),
        &generic_template(Some(CK_ULONG::MAX), vec![]),
    );
    assert_eq!(r, Err(RvError::KeySizeRange));
    still_alive(&ck, &session, base);
}

/// Attack: `CKM_EXTRACT_KEY_FROM_KEY` from bit 2^64 - 1 (the bit index overflows when the
/// offset is added before it is reduced). §2.43.7 wraps around the key, so the answer is
/// the bits from (2^64 - 1) mod 16 = 15 of a 16-bit key. Failed before the fix with
/// `CKR_GENERAL_ERROR`.
#[test]
fn extraction_from_the_last_bit_index_wraps_around_without_a_panic() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let base = secret(
        &session,
        &[0xAB, 0xCD],
        &[Attribute::Sensitive(false), Attribute::Extractable(true)],
    );
    let start: CK_EXTRACT_PARAMS = CK_ULONG::MAX;
    let m = RawMech::structure(CKM_EXTRACT_KEY_FROM_KEY, &start, vec![]);
    let template = generic_template(
        Some(2),
        vec![
            RawAttr::bool(CKA_SENSITIVE, false),
            RawAttr::bool(CKA_EXTRACTABLE, true),
        ],
    );
    let key = ck
        .derive(session.handle(), &m, base.handle(), &template)
        .expect("C_DeriveKey(CKM_EXTRACT_KEY_FROM_KEY from bit 2^64-1)");
    // 0xABCD rotated so that its bit 15 comes first: 0xD5E6.
    assert_eq!(
        attribute_bytes(&session, handle(key), AttributeType::Value),
        [0xD5, 0xE6]
    );
    still_alive(&ck, &session, base);
}

/// Attack: a sensitive key that may be wrapped only under a trusted key
/// (`CKA_WRAP_WITH_TRUSTED`) but has `CKA_DERIVE` is copied bit for bit by a derivation
/// that exposes its bits (concatenation with empty or truncated data, XOR with zeros,
/// extraction of the whole key); the copy, extractable like its base, is then wrapped
/// under the attacker's own untrusted key and decrypted. The copy must keep
/// `CKA_WRAP_WITH_TRUSTED` as it keeps `CKA_SENSITIVE`. Failed before the fix: the copy
/// wrapped under the untrusted key and gave the base key's value.
#[test]
fn a_derived_copy_keeps_wrap_with_trusted() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let value = [0x3C; 16];
    let base = secret(
        &session,
        &value,
        &[
            Attribute::Sensitive(true),
            Attribute::Extractable(true),
            Attribute::WrapWithTrusted(true),
        ],
    );
    let kek = attacker_kek(&session);
    let start: CK_EXTRACT_PARAMS = 0;
    let cases = [
        (
            "BASE_AND_DATA",
            string_data(CKM_CONCATENATE_BASE_AND_DATA, &[0]),
        ),
        (
            "DATA_AND_BASE",
            string_data(CKM_CONCATENATE_DATA_AND_BASE, &[]),
        ),
        ("XOR", string_data(CKM_XOR_BASE_AND_DATA, &[0; 16])),
        (
            "EXTRACT",
            RawMech::structure(CKM_EXTRACT_KEY_FROM_KEY, &start, vec![]),
        ),
    ];
    for (name, m) in cases {
        let template = generic_template(
            Some(16),
            vec![
                RawAttr::bool(CKA_EXTRACTABLE, true),
                RawAttr::bool(CKA_WRAP_WITH_TRUSTED, false),
            ],
        );
        let copy = match ck.derive(session.handle(), &m, base.handle(), &template) {
            Ok(h) => handle(h),
            // Refusing the template outright (extraction is strict) is as good.
            Err(RvError::TemplateInconsistent) => continue,
            Err(e) => panic!("{name}: {e:?}"),
        };
        assert!(
            attribute_bool(&session, copy, AttributeType::WrapWithTrusted),
            "{name}: the copy lost CKA_WRAP_WITH_TRUSTED"
        );
        assert_eq!(
            rv(session.wrap_key(&Mechanism::AesKeyWrap, kek, copy)),
            RvError::KeyNotWrappable,
            "{name}: the copy wrapped under an untrusted key"
        );
    }
}
