//! The hostile caller, inside the structures: mechanism parameters of the wrong size, with
//! NULL or huge inner pointers and lengths, and templates whose attribute lengths lie
//! (NULL value with a huge length, a huge length with a small buffer, nested templates of
//! a size that is not a whole number of CK_ATTRIBUTEs). Each must be refused with a
//! defined code — never CKR_OK, never CKR_GENERAL_ERROR, never a read through the lie.
//!
//! Run with `cargo nextest run --test hostile_params`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType};
use cryptoki_sys::*;

use common::hostile::*;
use common::*;

const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const HUGE: u64 = 1 << 40;

struct Keys {
    _env: TestEnv,
    _ctx: cryptoki::context::Pkcs11,
    session: cryptoki::session::Session,
    api: Api,
    aes: u64,
    rsa_public: u64,
    rsa_private: u64,
    ec_private: u64,
    point: Vec<u8>,
}

fn keys() -> Keys {
    let env = TestEnv::new();
    let (ctx, _slot, session) = ready_token(&env);
    let mut t = aes_template("aes", &[9; 32], false);
    t.extend([Attribute::Wrap(true), Attribute::Unwrap(true)]);
    let aes = session.create_object(&t).unwrap();
    let (rsa_public, rsa_private) = session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[Attribute::ModulusBits(2048.into()), Attribute::Token(false)],
            &[Attribute::Token(false), Attribute::Unwrap(true)],
        )
        .unwrap();
    let (ec_public, ec_private) = session
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[Attribute::EcParams(P256.to_vec()), Attribute::Token(false)],
            &[Attribute::Token(false), Attribute::Derive(true)],
        )
        .unwrap();
    let point = attribute_bytes(&session, ec_public, AttributeType::EcPoint)[2..].to_vec();
    Keys {
        api: Api::load(),
        aes: aes.handle(),
        rsa_public: rsa_public.handle(),
        rsa_private: rsa_private.handle(),
        ec_private: ec_private.handle(),
        point,
        session,
        _ctx: ctx,
        _env: env,
    }
}

/// Calls the function that takes `m` (chosen by the mechanism) and returns its code.
fn init_with(k: &Keys, m: &Mech) -> CK_RV {
    let s = k.session.handle();
    let mut f = Frame::default();
    let mp = f.mech(m);
    let secret = f.template(&[
        attr_ulong(CKA_CLASS, CKO_SECRET_KEY),
        attr_ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET),
        attr_ulong(CKA_VALUE_LEN, 32),
        attr_bool(CKA_TOKEN, false),
    ]);
    let out = f.ulong(0);
    // SAFETY: every pointer the words carry points into `f` (the lies are in `m`).
    let rv = unsafe {
        match m.ty {
            CKM_RSA_PKCS_OAEP => k.api.call("C_EncryptInit", &[s, mp, k.rsa_public]),
            CKM_RSA_PKCS_PSS => k.api.call("C_SignInit", &[s, mp, k.rsa_private]),
            CKM_ECDH1_DERIVE => k
                .api
                .call("C_DeriveKey", &[s, mp, k.ec_private, secret, 4, out]),
            CKM_RSA_AES_KEY_WRAP => {
                let wrapped = f.buf(vec![0x55; 296]);
                k.api.call(
                    "C_UnwrapKey",
                    &[s, mp, k.rsa_private, wrapped, 296, secret, 4, out],
                )
            }
            _ => k.api.call("C_EncryptInit", &[s, mp, k.aes]),
        }
    };
    // Reset an operation that was (wrongly or rightly) started.
    if rv == CKR_OK {
        let mut f = Frame::default();
        let (buf, len) = (f.zeroed(4096), f.ulong(4096));
        // SAFETY: buffers in `f`.
        unsafe {
            k.api
                .call("C_Encrypt", &[s, f.buf(vec![0; 16]), 16, buf, len]);
            k.api.call("C_Sign", &[s, f.buf(vec![0; 16]), 16, buf, len]);
        }
    }
    assert_eq!(
        k.api.info_rv(),
        CKR_OK,
        "the module is poisoned after {:#x}",
        m.ty
    );
    rv
}

fn with_inner(ty: CK_MECHANISM_TYPE, bytes: Vec<u8>, keep: Vec<Vec<u8>>) -> Mech {
    let mut m = Mech::bytes(ty, &bytes);
    m.keep = keep;
    m
}

fn gcm(iv: *const u8, iv_len: u64, aad: *const u8, aad_len: u64, tag: u64) -> Vec<u8> {
    struct_bytes(&CK_GCM_PARAMS {
        pIv: iv as *mut _,
        ulIvLen: iv_len,
        ulIvBits: iv_len.wrapping_mul(8),
        pAAD: aad as *mut _,
        ulAADLen: aad_len,
        ulTagBits: tag,
    })
}

fn oaep(label: *const u8, len: u64) -> Vec<u8> {
    struct_bytes(&CK_RSA_PKCS_OAEP_PARAMS {
        hashAlg: CKM_SHA256,
        mgf: CKG_MGF1_SHA256,
        source: CKZ_DATA_SPECIFIED,
        pSourceData: label as *mut _,
        ulSourceDataLen: len,
    })
}

fn ecdh(public: *const u8, len: u64, shared: *const u8, shared_len: u64) -> Vec<u8> {
    struct_bytes(&CK_ECDH1_DERIVE_PARAMS {
        kdf: CKD_NULL,
        ulSharedDataLen: shared_len,
        pSharedData: shared as *mut _,
        ulPublicDataLen: len,
        pPublicData: public as *mut _,
    })
}

#[test]
fn mechanism_parameters_of_wrong_sizes_or_with_lying_inner_lengths_are_refused() {
    let k = keys();
    let iv = vec![0u8; 16];
    let label = b"label".to_vec();
    let point = k.point.clone();
    let null = std::ptr::null::<u8>();
    let pss = struct_bytes(&CK_RSA_PKCS_PSS_PARAMS {
        hashAlg: CKM_SHA256,
        mgf: CKG_MGF1_SHA256,
        sLen: 32,
    });
    let ctr = struct_bytes(&CK_AES_CTR_PARAMS {
        ulCounterBits: 128,
        cb: [0; 16],
    });
    let kw = struct_bytes(&CK_RSA_AES_KEY_WRAP_PARAMS {
        ulAESKeyBits: 256,
        pOAEPParams: std::ptr::null_mut(),
    });
    let good: Vec<(&str, Mech)> = vec![
        ("CBC-PAD IV", Mech::bytes(CKM_AES_CBC_PAD, &iv)),
        (
            "GCM",
            with_inner(CKM_AES_GCM, gcm(iv.as_ptr(), 12, null, 0, 128), vec![]),
        ),
        ("CTR", Mech::bytes(CKM_AES_CTR, &ctr)),
        (
            "OAEP",
            with_inner(CKM_RSA_PKCS_OAEP, oaep(label.as_ptr(), 5), vec![]),
        ),
        ("PSS", Mech::bytes(CKM_RSA_PKCS_PSS, &pss)),
        (
            "ECDH",
            with_inner(
                CKM_ECDH1_DERIVE,
                ecdh(point.as_ptr(), point.len() as u64, null, 0),
                vec![],
            ),
        ),
    ];
    let mut cases: Vec<(String, Mech)> = Vec::new();
    for (what, m) in &good {
        let size = m.param.as_ref().unwrap().len() as u64;
        // A length the buffer really has (size + 1 is a real, longer buffer), or one
        // above the 2^30 input cap: a lie below the cap cannot be detected by anyone.
        for len in [0, 1, size - 1, size + 1, HUGE, u64::MAX] {
            let mut wrong = m.clone().with_len(len);
            if len == size + 1 {
                wrong.param.as_mut().unwrap().push(0);
            }
            cases.push((format!("{what} with ulParameterLen {len:#x}"), wrong));
        }
        for len in [size, HUGE] {
            let mut nul = Mech::none(m.ty).with_len(len);
            nul.keep = vec![];
            cases.push((
                format!("{what} with a NULL parameter of length {len:#x}"),
                nul,
            ));
        }
    }
    let inner: Vec<(&str, Mech)> = vec![
        (
            "GCM pIv NULL, ulIvLen 12",
            with_inner(CKM_AES_GCM, gcm(null, 12, null, 0, 128), vec![]),
        ),
        (
            "GCM ulIvLen 2^40",
            with_inner(CKM_AES_GCM, gcm(iv.as_ptr(), HUGE, null, 0, 128), vec![]),
        ),
        (
            "GCM pAAD NULL, ulAADLen 5",
            with_inner(CKM_AES_GCM, gcm(iv.as_ptr(), 12, null, 5, 128), vec![]),
        ),
        (
            "GCM ulAADLen 2^40",
            with_inner(
                CKM_AES_GCM,
                gcm(iv.as_ptr(), 12, label.as_ptr(), HUGE, 128),
                vec![],
            ),
        ),
        (
            "GCM ulTagBits 129",
            with_inner(CKM_AES_GCM, gcm(iv.as_ptr(), 12, null, 0, 129), vec![]),
        ),
        (
            "OAEP pSourceData NULL, length 5",
            with_inner(CKM_RSA_PKCS_OAEP, oaep(null, 5), vec![]),
        ),
        (
            "OAEP ulSourceDataLen 2^40",
            with_inner(CKM_RSA_PKCS_OAEP, oaep(label.as_ptr(), HUGE), vec![]),
        ),
        (
            "ECDH pPublicData NULL",
            with_inner(CKM_ECDH1_DERIVE, ecdh(null, 65, null, 0), vec![]),
        ),
        (
            "ECDH ulPublicDataLen 2^40",
            with_inner(
                CKM_ECDH1_DERIVE,
                ecdh(point.as_ptr(), HUGE, null, 0),
                vec![],
            ),
        ),
        (
            "ECDH pSharedData NULL, length 3",
            with_inner(CKM_ECDH1_DERIVE, ecdh(point.as_ptr(), 65, null, 3), vec![]),
        ),
        (
            "RSA-AES key wrap without OAEP parameters",
            Mech::bytes(CKM_RSA_AES_KEY_WRAP, &kw),
        ),
    ];
    cases.extend(inner.into_iter().map(|(w, m)| (w.to_string(), m)));
    let mut failures = Vec::new();
    for (i, (what, _)) in good.iter().enumerate() {
        let rv = init_with(&k, &good[i].1);
        assert_eq!(rv, CKR_OK, "the well-formed {what} parameter: {}", name(rv));
    }
    for (what, m) in &cases {
        let rv = init_with(&k, m);
        if rv == CKR_OK || rv == CKR_GENERAL_ERROR || !defined(rv) {
            failures.push(format!("{what}: {}", name(rv)));
        }
    }
    println!("{} malformed mechanism parameters", cases.len());
    assert!(
        failures.is_empty(),
        "accepted or mishandled:\n{}",
        failures.join("\n")
    );
}

fn create(k: &Keys, attrs: &[Attr]) -> CK_RV {
    let mut f = Frame::default();
    let t = f.template(attrs);
    let out = f.ulong(0);
    // SAFETY: the template's buffers live in `f`; the lies are lengths above 2^30.
    let rv = unsafe {
        k.api.call(
            "C_CreateObject",
            &[k.session.handle(), t, attrs.len() as u64, out],
        )
    };
    assert_eq!(k.api.info_rv(), CKR_OK);
    rv
}

#[test]
fn template_attributes_whose_lengths_lie_are_refused_without_being_read() {
    let k = keys();
    let base = || vec![attr_ulong(CKA_CLASS, CKO_DATA), attr_bool(CKA_TOKEN, false)];
    let nested_bytes = |n: usize| vec![0u8; n];
    let lies: Vec<(&str, Attr)> = vec![
        (
            "CKA_VALUE NULL with length 2^40",
            (CKA_VALUE, None, Some(HUGE)),
        ),
        ("CKA_VALUE NULL with length 16", (CKA_VALUE, None, Some(16))),
        (
            "CKA_VALUE of 4 bytes claiming 2^40",
            (CKA_VALUE, Some(vec![1; 4]), Some(HUGE)),
        ),
        (
            "CKA_VALUE claiming CK_ULONG::MAX",
            (CKA_VALUE, Some(vec![1; 4]), Some(u64::MAX)),
        ),
        ("CKA_TOKEN of 0 bytes", (CKA_TOKEN, Some(vec![]), None)),
        ("CKA_CLASS of 3 bytes", (CKA_CLASS, Some(vec![0; 3]), None)),
        (
            "CKA_UNWRAP_TEMPLATE of 5 bytes",
            (CKA_UNWRAP_TEMPLATE, Some(nested_bytes(5)), None),
        ),
        (
            "CKA_UNWRAP_TEMPLATE NULL, length 24",
            (CKA_UNWRAP_TEMPLATE, None, Some(24)),
        ),
        (
            "CKA_UNWRAP_TEMPLATE claiming 2^40",
            (CKA_UNWRAP_TEMPLATE, Some(nested_bytes(24)), Some(HUGE)),
        ),
    ];
    let mut failures = Vec::new();
    for (what, lie) in &lies {
        let mut t = base();
        t.push(lie.clone());
        let rv = create(&k, &t);
        if rv == CKR_OK || rv == CKR_GENERAL_ERROR || !defined(rv) {
            failures.push(format!("C_CreateObject with {what}: {}", name(rv)));
        }
    }
    // A nested template whose inner attribute lies.
    let inner = [CK_ATTRIBUTE {
        type_: CKA_LABEL,
        pValue: std::ptr::null_mut(),
        ulValueLen: HUGE,
    }];
    let bytes = struct_bytes(&inner);
    let mut t = vec![
        attr_ulong(CKA_CLASS, CKO_SECRET_KEY),
        attr_ulong(CKA_KEY_TYPE, CKK_AES),
    ];
    t.push((CKA_UNWRAP_TEMPLATE, Some(bytes), None));
    let rv = create(&k, &t);
    if rv == CKR_OK || rv == CKR_GENERAL_ERROR || !defined(rv) {
        failures.push(format!(
            "nested attribute NULL with length 2^40: {}",
            name(rv)
        ));
    }
    // Search templates: the same lies.
    for (what, lie) in &lies[..4] {
        let mut f = Frame::default();
        let t = f.template(std::slice::from_ref(lie));
        // SAFETY: as in `create`.
        let rv = unsafe { k.api.call("C_FindObjectsInit", &[k.session.handle(), t, 1]) };
        if rv == CKR_OK {
            // SAFETY: plain handle.
            unsafe { k.api.call("C_FindObjectsFinal", &[k.session.handle()]) };
        }
        if rv == CKR_OK || rv == CKR_GENERAL_ERROR || !defined(rv) {
            failures.push(format!("C_FindObjectsInit with {what}: {}", name(rv)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn attribute_reads_with_null_or_overstated_buffers_follow_the_length_rules() {
    let k = keys();
    let s = k.session.handle();
    let mut f = Frame::default();
    // NULL pValue with a huge ulValueLen is a length query: CKR_OK and the true length.
    let t = f.template(&[(CKA_LABEL, None, Some(u64::MAX))]);
    // SAFETY: the template lives in `f`; pValue is NULL.
    let rv = unsafe { k.api.call("C_GetAttributeValue", &[s, k.aes, t, 1]) };
    assert_eq!(rv, CKR_OK, "{}", name(rv));
    // SAFETY: the CK_ATTRIBUTE array the frame owns.
    let len = unsafe { (*(t as *const CK_ATTRIBUTE)).ulValueLen };
    assert_eq!(len, 3, "length of the label \"aes\"");
    // A 64-byte buffer claiming CK_ULONG::MAX: the module writes the 3 bytes, no more.
    let mut canary = vec![0xA5u8; 64];
    let ptr = canary.as_mut_ptr();
    let t = f.template(&[(CKA_LABEL, None, Some(u64::MAX))]);
    // SAFETY: point the attribute at `canary` (64 writable bytes).
    unsafe { (*(t as *mut CK_ATTRIBUTE)).pValue = ptr as *mut _ };
    // SAFETY: as above.
    let rv = unsafe { k.api.call("C_GetAttributeValue", &[s, k.aes, t, 1]) };
    assert_eq!(rv, CKR_OK, "{}", name(rv));
    assert_eq!(&canary[..3], b"aes");
    assert!(
        canary[3..].iter().all(|b| *b == 0xA5),
        "bytes written past the value"
    );
    // A private exponent read with a 4 KiB buffer claiming CK_ULONG::MAX: written in full
    // (the key is not sensitive) or refused as sensitive; either way a defined answer.
    let t = f.template(&[(CKA_PRIVATE_EXPONENT, Some(vec![0; 4096]), Some(u64::MAX))]);
    // SAFETY: as above.
    let rv = unsafe { k.api.call("C_GetAttributeValue", &[s, k.rsa_private, t, 1]) };
    assert!(
        rv == CKR_ATTRIBUTE_SENSITIVE || rv == CKR_OK,
        "{}",
        name(rv)
    );
    // SAFETY: as above.
    let after = unsafe { &*(t as *const CK_ATTRIBUTE) };
    if rv == CKR_ATTRIBUTE_SENSITIVE {
        assert_eq!(after.ulValueLen, CK_UNAVAILABLE_INFORMATION);
    }
}
