//! SP 800-108 KBKDF through the C ABI (PKCS#11 3.0 §2.42): `CKM_SP800_108_COUNTER_KDF`,
//! `CKM_SP800_108_FEEDBACK_KDF`, `CKM_SP800_108_DOUBLE_PIPELINE_KDF`.
//!
//! Known answers: NIST CAVP "SP800-108 - KDF" counter-mode vectors (KDFCTR_gen.rsp, CAVS
//! 14.4, [PRF=HMAC_SHA256] [CTRLOCATION=BEFORE_FIXED] [RLEN=32_BITS], COUNT=0 and
//! COUNT=30), the FixedInputData passed as one byte array after the iteration variable.
//! Also: additional keys (`CK_DERIVED_KEY`) from fresh segments, all or none; attribute
//! rules (§2.42.8); the data-list rules the `cryptoki` crate's `kbkdf_invalid_data_params_*`
//! tests check; attacks (no `CKA_DERIVE`, truncated or oversized structures, lying counts).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::num::NonZeroUsize;

use common::mech::*;
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::kbkdf::{
    DerivedKey, Endianness, KbkdfCounterFormat, KbkdfDkmLengthFormat, KbkdfDkmLengthMethod,
    KbkdfFeedbackParams, KbkdfParams, PrfDataParam, PrfDataParamType,
};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;

fn generic(session: &Session, value: &[u8], derive: bool) -> ObjectHandle {
    session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Derive(derive),
            Attribute::Value(value.to_vec()),
        ])
        .expect("C_CreateObject(generic secret)")
}

fn readable(len: u64) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::ValueLen(len.into()),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ]
}

fn counter(bits: usize) -> KbkdfCounterFormat {
    KbkdfCounterFormat::new(Endianness::Big, NonZeroUsize::new(bits).unwrap())
}

#[test]
fn nist_cavp_counter_mode_vectors() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let cases = [
        (
            "dd1d91b7d90b2bd3138533ce92b272fbf8a369316aefe242e659cc0ae238afe0",
            "01322b96b30acd197979444e468e1c5c6859bf1b1cf951b7e725303e237e46b864a145fab25e517b08f8683d0315bb2911d80a0e8aba17f3b413faac",
            "10621342bfb0fd40046c0e29f2cfdbf0",
        ),
        (
            "c4bedbddb66493e7c7259a3bbbc25f8c7e0ca7fe284d92d431d9cd99a0d214ac",
            "1c69c54766791e315c2cc5c47ecd3ffab87d0d273dd920e70955814c220eacace6a5946542da3dfe24ff626b4897898cafb7db83bdff3c14fa46fd4b",
            "1da47638d6c9c4d04d74d4640bbd42ab814d9e8cc22f4326695239f96b0693f12d0dd1152cf44430",
        ),
    ];
    for (ki, fixed, ko) in cases {
        let base = generic(&session, &hex(ki), true);
        let format = counter(32);
        let fixed = hex(fixed);
        let data = [
            PrfDataParam::new(PrfDataParamType::IterationVariable(Some(&format))),
            PrfDataParam::new(PrfDataParamType::ByteArray(&fixed)),
        ];
        let params = KbkdfParams::new(MechanismType::SHA256_HMAC, &data, None);
        let ko = hex(ko);
        let key = session
            .derive_key(
                &Mechanism::KbkdfCounter(params),
                base,
                &readable(ko.len() as u64),
            )
            .expect("C_DeriveKey(SP800-108 counter)");
        assert_eq!(attribute_bytes(&session, key, AttributeType::Value), ko);
    }
}

#[test]
fn additional_keys_come_from_fresh_segments_with_their_own_templates() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let base = generic(&session, &[0x33; 32], true);
    let format = counter(16);
    let label = b"label".to_vec();
    let data = [
        PrfDataParam::new(PrfDataParamType::IterationVariable(Some(&format))),
        PrfDataParam::new(PrfDataParamType::ByteArray(&label)),
    ];
    // One 96-byte derivation: three HMAC-SHA-256 segments.
    let params = KbkdfParams::new(MechanismType::SHA256_HMAC, &data, None);
    let all = session
        .derive_key(&Mechanism::KbkdfCounter(params), base, &readable(96))
        .unwrap();
    let all = attribute_bytes(&session, all, AttributeType::Value);
    // A 48-byte key, then a 16-byte AES key: the second starts on the third segment.
    let aes_template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(false),
        Attribute::ValueLen(16.into()),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
        Attribute::Encrypt(true),
    ];
    let mut extra = [DerivedKey::new(&aes_template)];
    let params = KbkdfParams::new(MechanismType::SHA256_HMAC, &data, Some(&mut extra));
    let main = session
        .derive_key(&Mechanism::KbkdfCounter(params), base, &readable(48))
        .unwrap();
    let second = extra[0].handle().expect("the additional key's handle");
    assert_eq!(
        attribute_bytes(&session, main, AttributeType::Value),
        all[..48]
    );
    assert_eq!(
        attribute_bytes(&session, second, AttributeType::Value),
        all[64..80]
    );
    let got = session
        .get_attributes(
            second,
            &[
                AttributeType::KeyType,
                AttributeType::Encrypt,
                AttributeType::Decrypt,
                AttributeType::Sign,
                AttributeType::Derive,
                AttributeType::Local,
            ],
        )
        .unwrap();
    assert_eq!(
        got,
        [
            Attribute::KeyType(KeyType::AES),
            Attribute::Encrypt(true),
            // A derived key has no usage its template does not ask for.
            Attribute::Decrypt(false),
            Attribute::Sign(false),
            Attribute::Derive(false),
            Attribute::Local(false),
        ]
    );
    // The AES key works.
    session
        .encrypt(&Mechanism::AesEcb, second, &[0u8; 16])
        .expect("the derived AES key encrypts");

    // All or none: a bad additional template (an AES key of 5 bytes) makes no key, and
    // its handle comes back invalid.
    let before = session.find_objects(&[]).unwrap().len();
    let bad = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(false),
        Attribute::ValueLen(5.into()),
    ];
    let mut extra = [DerivedKey::new(&aes_template), DerivedKey::new(&bad)];
    let params = KbkdfParams::new(MechanismType::SHA256_HMAC, &data, Some(&mut extra));
    let got = rv(session.derive_key(&Mechanism::KbkdfCounter(params), base, &readable(48)));
    assert_eq!(got, RvError::AttributeValueInvalid);
    assert!(extra.iter().all(|k| k.handle().is_none()));
    assert_eq!(session.find_objects(&[]).unwrap().len(), before);
}

#[test]
fn silent_templates_inherit_the_base_keys_sensitivity() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let base = session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(32.into()),
                Attribute::Sensitive(true),
                Attribute::Derive(true),
            ],
        )
        .unwrap();
    let format = counter(16);
    let dkm = KbkdfDkmLengthFormat::new(
        KbkdfDkmLengthMethod::SumOfSegments,
        Endianness::Big,
        NonZeroUsize::new(32).unwrap(),
    );
    let data = [
        PrfDataParam::new(PrfDataParamType::IterationVariable(Some(&format))),
        PrfDataParam::new(PrfDataParamType::ByteArray(b"x")),
        PrfDataParam::new(PrfDataParamType::DkmLength(&dkm)),
    ];
    let params = KbkdfParams::new(MechanismType::AES_CMAC, &data, None);
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(false),
        Attribute::ValueLen(32.into()),
    ];
    let silent = session
        .derive_key(&Mechanism::KbkdfCounter(params), base, &template)
        .unwrap();
    for (ty, want) in [
        (AttributeType::Sensitive, true),
        (AttributeType::Extractable, false),
        (AttributeType::AlwaysSensitive, true),
        (AttributeType::NeverExtractable, true),
    ] {
        assert_eq!(attribute_bool(&session, silent, ty), want, "{ty:?}");
    }
    // KBKDF is one-way: a template may ask for a readable key (§2.42.8), which then is
    // neither always sensitive nor never extractable.
    let params = KbkdfParams::new(MechanismType::AES_CMAC, &data, None);
    let mut asked = template.to_vec();
    asked.extend([Attribute::Sensitive(false), Attribute::Extractable(true)]);
    let readable_key = session
        .derive_key(&Mechanism::KbkdfCounter(params), base, &asked)
        .unwrap();
    assert_eq!(
        attribute_bytes(&session, readable_key, AttributeType::Value).len(),
        32
    );
    assert!(!attribute_bool(
        &session,
        readable_key,
        AttributeType::AlwaysSensitive
    ));
    assert!(!attribute_bool(
        &session,
        readable_key,
        AttributeType::NeverExtractable
    ));
}

#[test]
fn feedback_with_and_without_iv_and_bad_data_lists() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let base = generic(&session, &[0x21; 32], true);
    let no_derive = generic(&session, &[0x21; 32], false);
    let format = counter(16);
    let data = [
        PrfDataParam::new(PrfDataParamType::IterationVariable(None)),
        PrfDataParam::new(PrfDataParamType::Counter(&format)),
    ];
    let a = session
        .derive_key(
            &Mechanism::KbkdfFeedback(KbkdfFeedbackParams::new(
                MechanismType::SHA256_HMAC,
                &data,
                None,
                None,
            )),
            base,
            &readable(32),
        )
        .unwrap();
    let b = session
        .derive_key(
            &Mechanism::KbkdfFeedback(KbkdfFeedbackParams::new(
                MechanismType::SHA256_HMAC,
                &data,
                Some(b"sixteen bytes iv"),
                None,
            )),
            base,
            &readable(32),
        )
        .unwrap();
    assert_ne!(
        attribute_bytes(&session, a, AttributeType::Value),
        attribute_bytes(&session, b, AttributeType::Value)
    );
    let feedback = |data: &[PrfDataParam]| {
        rv(session.derive_key(
            &Mechanism::KbkdfFeedback(KbkdfFeedbackParams::new(
                MechanismType::SHA256_HMAC,
                data,
                None,
                None,
            )),
            base,
            &readable(32),
        ))
    };
    let counting = |data: &[PrfDataParam]| {
        rv(session.derive_key(
            &Mechanism::KbkdfCounter(KbkdfParams::new(MechanismType::SHA256_HMAC, data, None)),
            base,
            &readable(32),
        ))
    };
    // What the `cryptoki` crate's kbkdf_invalid_data_params_* tests send.
    let iter_none = PrfDataParam::new(PrfDataParamType::IterationVariable(None));
    let iter_fmt = PrfDataParam::new(PrfDataParamType::IterationVariable(Some(&format)));
    let ctr = PrfDataParam::new(PrfDataParamType::Counter(&format));
    let label = PrfDataParam::new(PrfDataParamType::ByteArray(b"label"));
    assert_eq!(counting(&[label]), RvError::MechanismParamInvalid);
    assert_eq!(
        counting(&[iter_none, label]),
        RvError::MechanismParamInvalid
    );
    assert_eq!(counting(&[iter_fmt, ctr]), RvError::MechanismParamInvalid);
    assert_eq!(feedback(&[label]), RvError::MechanismParamInvalid);
    assert_eq!(feedback(&[iter_fmt, label]), RvError::MechanismParamInvalid);
    assert_eq!(
        feedback(&[iter_none, ctr, ctr]),
        RvError::MechanismParamInvalid
    );
    // A base key without CKA_DERIVE.
    assert_rv!(
        session.derive_key(
            &Mechanism::KbkdfCounter(KbkdfParams::new(
                MechanismType::SHA256_HMAC,
                &[iter_fmt],
                None
            )),
            no_derive,
            &readable(32),
        ),
        RvError::KeyFunctionNotPermitted
    );
}

#[test]
fn truncated_oversized_and_lying_structures_are_refused() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let base = generic(&session, &[0x44; 32], true);
    let s = session.handle();
    let template = raw_secret_template(CKK_GENERIC_SECRET, 32);
    let derive = |m: &RawMech| ck.derive(s, m, base.handle(), &template);

    let format = CK_SP800_108_COUNTER_FORMAT {
        bLittleEndian: 0,
        ulWidthInBits: 32,
    };
    let format_bytes = struct_bytes(&format);
    let label = b"label".to_vec();
    let data_params = |format_len: CK_ULONG, fmt: &[u8], label: &[u8]| {
        vec![
            CK_PRF_DATA_PARAM {
                type_: CK_SP800_108_ITERATION_VARIABLE,
                pValue: fmt.as_ptr() as *mut _,
                ulValueLen: format_len,
            },
            CK_PRF_DATA_PARAM {
                type_: CK_SP800_108_BYTE_ARRAY,
                pValue: label.as_ptr() as *mut _,
                ulValueLen: label.len() as CK_ULONG,
            },
        ]
    };
    let mech = |list: &[CK_PRF_DATA_PARAM], count: CK_ULONG, extra: CK_ULONG| {
        let list_bytes: Vec<u8> = list.iter().flat_map(struct_bytes).collect();
        let keep = vec![list_bytes, format_bytes.clone(), label.clone()];
        let p = CK_SP800_108_KDF_PARAMS {
            prfType: CKM_SHA256_HMAC,
            ulNumberOfDataParams: count,
            pDataParams: if list.is_empty() {
                std::ptr::null_mut()
            } else {
                keep[0].as_ptr() as *mut _
            },
            ulAdditionalDerivedKeys: extra,
            pAdditionalDerivedKeys: std::ptr::null_mut(),
        };
        RawMech::structure(CKM_SP800_108_COUNTER_KDF, &p, keep)
    };
    let good = data_params(format_bytes.len() as CK_ULONG, &format_bytes, &label);
    derive(&mech(&good, 2, 0)).expect("the well-formed parameter derives");
    let kdf_size = std::mem::size_of::<CK_SP800_108_KDF_PARAMS>() as CK_ULONG;
    for len in [kdf_size - 1, kdf_size + 8, 0] {
        assert_eq!(
            derive(&mech(&good, 2, 0).with_len(len)),
            Err(RvError::MechanismParamInvalid),
            "ulParameterLen {len}"
        );
    }
    assert_eq!(
        derive(&RawMech::null_param(CKM_SP800_108_COUNTER_KDF, kdf_size)),
        Err(RvError::MechanismParamInvalid)
    );
    // A counter format of the wrong size; a list count that lies (NULL list, or more
    // entries than any parameter may hold); additional keys counted but not given.
    let short = data_params(format_bytes.len() as CK_ULONG - 1, &format_bytes, &label);
    assert_eq!(
        derive(&mech(&short, 2, 0)),
        Err(RvError::MechanismParamInvalid)
    );
    let long = data_params(format_bytes.len() as CK_ULONG + 1, &format_bytes, &label);
    assert_eq!(
        derive(&mech(&long, 2, 0)),
        Err(RvError::MechanismParamInvalid)
    );
    assert_eq!(
        derive(&mech(&[], 2, 0)),
        Err(RvError::MechanismParamInvalid)
    );
    assert_eq!(
        derive(&mech(&good, 1_000_000, 0)),
        Err(RvError::MechanismParamInvalid)
    );
    assert_eq!(
        derive(&mech(&good, 2, 1)),
        Err(RvError::MechanismParamInvalid)
    );
    // An empty byte array, and a data type the module does not know.
    let mut empty = good.clone();
    empty[1].ulValueLen = 0;
    assert_eq!(
        derive(&mech(&empty, 2, 0)),
        Err(RvError::MechanismParamInvalid)
    );
    let mut unknown = good.clone();
    unknown[1].type_ = 0x99;
    assert_eq!(
        derive(&mech(&unknown, 2, 0)),
        Err(RvError::MechanismParamInvalid)
    );
}
