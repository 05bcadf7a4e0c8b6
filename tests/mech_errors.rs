//! Error paths of the cryptographic functions through the C ABI: bad mechanism parameters,
//! key usage and policy, operation state, the length-query rule, wrapping policy, bad
//! signatures and paddings, and implicit rejection in RSA PKCS#1 v1.5 unwrap.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::material::*;
use common::mech::*;
use common::raw::{Raw, RawAttr};
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;

const KEY: [u8; 32] = [7u8; 32];
const IV: [u8; 16] = [9u8; 16];

fn setup() -> (TestEnv, cryptoki::context::Pkcs11, Session, Ck) {
    let env = TestEnv::new();
    let (ctx, _slot, session) = ready_token(&env);
    (env, ctx, session, Ck::load())
}

fn rsa_pair(session: &Session) -> (ObjectHandle, ObjectHandle) {
    let k = RsaKey {
        n: hex(RSA_MODULUS),
        e: hex(RSA_PUBLIC_EXPONENT),
        d: hex(RSA_PRIVATE_EXPONENT),
        p: hex(RSA_PRIME1),
        q: hex(RSA_PRIME2),
        dp: hex(RSA_EXPONENT1),
        dq: hex(RSA_EXPONENT2),
        qinv: hex(RSA_COEFFICIENT),
    };
    (rsa_public(session, &k.n, &k.e), rsa_private(session, &k))
}

#[test]
fn bad_mechanism_parameters_are_mechanism_param_invalid() {
    let (_env, _ctx, session, ck) = setup();
    let s = session.handle();
    let aes = aes_key(&session, &KEY).handle();
    let (rsa_pub, rsa_priv) = rsa_pair(&session);
    let gcm_size = std::mem::size_of::<CK_GCM_PARAMS>() as CK_ULONG;
    let bad = RvError::MechanismParamInvalid;
    // NULL and wrong-size CK_GCM_PARAMS.
    assert_eq!(
        ck.encrypt_init(s, &RawMech::null_param(CKM_AES_GCM, gcm_size), aes),
        Err(bad)
    );
    assert_eq!(
        ck.encrypt_init(s, &RawMech::none(CKM_AES_GCM), aes),
        Err(bad)
    );
    let short = RawMech::gcm(CKM_AES_GCM, &[0; 12], b"", 128).with_len(gcm_size - 8);
    assert_eq!(ck.encrypt_init(s, &short, aes), Err(bad));
    // GCM tag lengths that are not 32..=128 in steps of 8 (0, 1, 129).
    for bits in [0, 1, 129] {
        let m = RawMech::gcm(CKM_AES_GCM, &[0; 12], b"", bits);
        assert_eq!(ck.encrypt_init(s, &m, aes), Err(bad), "tag bits {bits}");
        assert_eq!(ck.decrypt_init(s, &m, aes), Err(bad), "tag bits {bits}");
    }
    // CBC with a 15- or 17-byte IV, or none.
    for iv in [&[0u8; 15][..], &[0u8; 17][..]] {
        assert_eq!(
            ck.encrypt_init(s, &RawMech::bytes(CKM_AES_CBC, iv), aes),
            Err(bad)
        );
        assert_eq!(
            ck.decrypt_init(s, &RawMech::bytes(CKM_AES_CBC_PAD, iv), aes),
            Err(bad)
        );
    }
    assert_eq!(
        ck.encrypt_init(s, &RawMech::none(CKM_AES_CBC), aes),
        Err(bad)
    );
    // ECB takes no parameter.
    assert_eq!(
        ck.encrypt_init(s, &RawMech::bytes(CKM_AES_ECB, &IV), aes),
        Err(bad)
    );
    // OAEP with SHA-256 but MGF1-SHA1.
    let m = RawMech::oaep(CKM_SHA256, CKG_MGF1_SHA1, b"");
    assert_eq!(ck.encrypt_init(s, &m, rsa_pub.handle()), Err(bad));
    assert_eq!(ck.decrypt_init(s, &m, rsa_priv.handle()), Err(bad));
    // PSS parameters naming SHA-384 on CKM_SHA256_RSA_PKCS_PSS.
    let m = RawMech::pss(CKM_SHA256_RSA_PKCS_PSS, CKM_SHA384, CKG_MGF1_SHA384, 48);
    assert_eq!(ck.sign_init(s, &m, rsa_priv.handle()), Err(bad));
    assert_eq!(ck.verify_init(s, &m, rsa_pub.handle()), Err(bad));
    // ECDH with junk as the peer's public point.
    let ec = ec_private(
        &session,
        KeyType::EC,
        EC_PARAMS_P256,
        &hex(EC_PRIVATE_VALUE),
    )
    .handle();
    let template = raw_secret_template(CKK_GENERIC_SECRET, 32);
    for junk in [&b"junk"[..], &[0x04; 65][..], &[][..]] {
        assert_eq!(
            ck.derive(s, &RawMech::ecdh(CKD_NULL, junk), ec, &template),
            Err(bad)
        );
    }
}

#[test]
fn key_usage_allowed_mechanisms_and_key_type_are_enforced() {
    let (_env, _ctx, session, _ck) = setup();
    let no_sign = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Sign(false),
            Attribute::Verify(true),
            Attribute::Value(KEY.to_vec()),
        ])
        .unwrap();
    assert_rv!(
        session.sign(&Mechanism::Sha256Hmac, no_sign, b"x"),
        RvError::KeyFunctionNotPermitted
    );
    let cbc_only = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Encrypt(true),
            Attribute::AllowedMechanisms(vec![MechanismType::AES_CBC]),
            Attribute::Value(KEY.to_vec()),
        ])
        .unwrap();
    session
        .encrypt(&Mechanism::AesCbc(IV), cbc_only, &[0; 16])
        .unwrap();
    assert_rv!(
        session.encrypt(&Mechanism::AesEcb, cbc_only, &[0; 16]),
        RvError::MechanismInvalid
    );
    let (_, rsa_priv) = rsa_pair(&session);
    assert_rv!(
        session.decrypt(&Mechanism::AesEcb, rsa_priv, &[0; 16]),
        RvError::KeyTypeInconsistent
    );
}

#[test]
fn operation_state_is_active_or_not_initialized_as_the_standard_says() {
    let (_env, _ctx, session, ck) = setup();
    let s = session.handle();
    let key = aes_key(&session, &KEY).handle();
    let ecb = RawMech::none(CKM_AES_ECB);
    assert_eq!(
        ck.encrypt_call(s, &[0; 16], Some(16)).rv,
        Err(RvError::OperationNotInitialized)
    );
    ck.encrypt_init(s, &ecb, key).unwrap();
    assert_eq!(ck.encrypt_init(s, &ecb, key), Err(RvError::OperationActive));
    // The active operation survived the refused init.
    assert_eq!(ck.encrypt_call(s, &[0; 16], Some(16)).rv, Ok(()));
    assert_eq!(
        ck.encrypt_call(s, &[0; 16], Some(16)).rv,
        Err(RvError::OperationNotInitialized)
    );
}

#[test]
fn length_queries_keep_the_operation_and_a_short_buffer_is_buffer_too_small() {
    let (_env, _ctx, session, ck) = setup();
    let s = session.handle();
    let key = aes_key(&session, &KEY).handle();
    let pad = RawMech::bytes(CKM_AES_CBC_PAD, &IV);
    let data = [1u8; 20];
    ck.encrypt_init(s, &pad, key).unwrap();
    let q = ck.encrypt_call(s, &data, None);
    assert_eq!(q.rv, Ok(()));
    assert!(q.len >= 32, "length query answered {}", q.len);
    let short = ck.encrypt_call(s, &data, Some(8));
    assert_eq!(short.rv, Err(RvError::BufferTooSmall));
    assert!(
        short.len >= 32,
        "BUFFER_TOO_SMALL reports the size needed, got {}",
        short.len
    );
    let full = ck.encrypt_call(s, &data, Some(short.len));
    assert_eq!(full.rv, Ok(()));
    assert_eq!(full.data.len(), 32);
    assert_eq!(full.data, ck.encrypt(s, &pad, key, &data).unwrap());
    // Signatures too: NULL gives the length and keeps the operation.
    let hmac = secret_key(&session, KeyType::GENERIC_SECRET, &KEY).handle();
    ck.sign_init(s, &RawMech::none(CKM_SHA256_HMAC), hmac)
        .unwrap();
    assert_eq!(ck.sign_call(s, b"abc", None).len, 32);
    assert_eq!(
        ck.sign_call(s, b"abc", Some(31)).rv,
        Err(RvError::BufferTooSmall)
    );
    let sig = ck.sign_call(s, b"abc", Some(32));
    assert_eq!((sig.rv, sig.data.len()), (Ok(()), 32));
    assert_eq!(
        ck.sign_call(s, b"abc", Some(32)).rv,
        Err(RvError::OperationNotInitialized)
    );
}

#[test]
fn bad_cbc_padding_is_encrypted_data_invalid_and_ends_the_operation() {
    let (_env, _ctx, session, ck) = setup();
    let s = session.handle();
    let key = aes_key(&session, &KEY).handle();
    // A block whose CBC decryption ends in 0x00: not PKCS#7 padding.
    let garbage = ck
        .encrypt(s, &RawMech::bytes(CKM_AES_CBC, &IV), key, &[0u8; 16])
        .unwrap();
    ck.decrypt_init(s, &RawMech::bytes(CKM_AES_CBC_PAD, &IV), key)
        .unwrap();
    assert_eq!(
        ck.decrypt_call(s, &garbage, Some(64)).rv,
        Err(RvError::EncryptedDataInvalid)
    );
    assert_eq!(
        ck.decrypt_call(s, &garbage, Some(64)).rv,
        Err(RvError::OperationNotInitialized)
    );
    // RSA PKCS#1 v1.5 decryption of a block that is not type 2 padding is no error:
    // implicit rejection answers a synthetic message (no padding oracle; see
    // tests/attacks_padding_oracle.rs), the same one every time.
    let (_rsa_pub, rsa_priv) = rsa_pair(&session);
    let raw_block = [0x42u8; 256];
    let first = session
        .decrypt(&Mechanism::RsaPkcs, rsa_priv, &raw_block)
        .expect("implicit rejection: no error for bad padding");
    let again = session
        .decrypt(&Mechanism::RsaPkcs, rsa_priv, &raw_block)
        .unwrap();
    assert_eq!(first, again);
    assert!(first.len() <= 256 - 11);
}

#[test]
fn bad_signatures_are_signature_invalid_and_wrong_lengths_signature_len_range() {
    let (_env, _ctx, session, _ck) = setup();
    let hmac = secret_key(&session, KeyType::GENERIC_SECRET, &KEY);
    let sig = session.sign(&Mechanism::Sha256Hmac, hmac, b"abc").unwrap();
    let mut flipped = sig.clone();
    flipped[3] ^= 1;
    assert_rv!(
        session.verify(&Mechanism::Sha256Hmac, hmac, b"abc", &flipped),
        RvError::SignatureInvalid
    );
    assert_rv!(
        session.verify(&Mechanism::Sha256Hmac, hmac, b"abc", &sig[..31]),
        RvError::SignatureLenRange
    );
    let (rsa_pub, rsa_priv) = rsa_pair(&session);
    let sig = session
        .sign(&Mechanism::Sha256RsaPkcs, rsa_priv, b"abc")
        .unwrap();
    session
        .verify(&Mechanism::Sha256RsaPkcs, rsa_pub, b"abc", &sig)
        .unwrap();
    assert_rv!(
        session.verify(&Mechanism::Sha256RsaPkcs, rsa_pub, b"abd", &sig),
        RvError::SignatureInvalid
    );
    assert_rv!(
        session.verify(&Mechanism::Sha256RsaPkcs, rsa_pub, b"abc", &sig[1..]),
        RvError::SignatureLenRange
    );
    let ec_pub = ec_public(
        &session,
        KeyType::EC,
        EC_PARAMS_P256,
        &point_of(&hex(EC_POINT_DER)),
    );
    let ec_priv = ec_private(
        &session,
        KeyType::EC,
        EC_PARAMS_P256,
        &hex(EC_PRIVATE_VALUE),
    );
    let sig = session
        .sign(&Mechanism::EcdsaSha256, ec_priv, b"abc")
        .unwrap();
    assert_eq!(sig.len(), 64);
    session
        .verify(&Mechanism::EcdsaSha256, ec_pub, b"abc", &sig)
        .unwrap();
    assert_rv!(
        session.verify(&Mechanism::EcdsaSha256, ec_pub, b"abd", &sig),
        RvError::SignatureInvalid
    );
    assert_rv!(
        session.verify(&Mechanism::EcdsaSha256, ec_pub, b"abc", &sig[..63]),
        RvError::SignatureLenRange
    );
}

#[test]
fn wrapping_policy_unextractable_trusted_and_unwrap_template() {
    let (_env, _ctx, session, ck) = setup();
    let s = session.handle();
    let kek = aes_key(&session, &KEY);
    let locked = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Extractable(false),
            Attribute::Value(vec![1; 16]),
        ])
        .unwrap();
    assert_rv!(
        session.wrap_key(&Mechanism::AesKeyWrap, kek, locked),
        RvError::KeyUnextractable
    );
    let trusted_only = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Extractable(true),
            Attribute::WrapWithTrusted(true),
            Attribute::Value(vec![2; 16]),
        ])
        .unwrap();
    assert_rv!(
        session.wrap_key(&Mechanism::AesKeyWrap, kek, trusted_only),
        RvError::KeyNotWrappable
    );
    // CKA_UNWRAP_TEMPLATE of the unwrapping key is applied to what it unwraps.
    let inner_values: Vec<Vec<u8>> = vec![vec![0u8], vec![1u8]];
    let inner = [
        CK_ATTRIBUTE {
            type_: CKA_ENCRYPT,
            pValue: inner_values[0].as_ptr() as *mut _,
            ulValueLen: 1,
        },
        CK_ATTRIBUTE {
            type_: CKA_DECRYPT,
            pValue: inner_values[1].as_ptr() as *mut _,
            ulValueLen: 1,
        },
    ];
    // SAFETY: viewing a plain C array as bytes.
    let inner_bytes = unsafe {
        std::slice::from_raw_parts(inner.as_ptr() as *const u8, std::mem::size_of_val(&inner))
    };
    let raw = Raw::load();
    let unwrapper = raw
        .create_object(
            s,
            &[
                RawAttr::ulong(CKA_CLASS, CKO_SECRET_KEY),
                RawAttr::ulong(CKA_KEY_TYPE, CKK_AES),
                RawAttr::bool(CKA_TOKEN, false),
                RawAttr::bool(CKA_WRAP, true),
                RawAttr::bool(CKA_UNWRAP, true),
                RawAttr::new(CKA_UNWRAP_TEMPLATE, inner_bytes),
                RawAttr::new(CKA_VALUE, &KEY),
            ],
        )
        .expect("C_CreateObject with CKA_UNWRAP_TEMPLATE");
    let target = aes_key(&session, &[3; 16]);
    let wrapped = ck
        .wrap(
            s,
            &RawMech::none(CKM_AES_KEY_WRAP),
            unwrapper,
            target.handle(),
        )
        .unwrap();
    let template = [
        RawAttr::ulong(CKA_CLASS, CKO_SECRET_KEY),
        RawAttr::ulong(CKA_KEY_TYPE, CKK_AES),
        RawAttr::bool(CKA_TOKEN, false),
    ];
    let h = ck
        .unwrap(
            s,
            &RawMech::none(CKM_AES_KEY_WRAP),
            unwrapper,
            &wrapped,
            &template,
        )
        .unwrap();
    let h = handle(h);
    assert!(
        !attribute_bool(&session, h, AttributeType::Encrypt),
        "template's CKA_ENCRYPT=false applied"
    );
    assert!(
        attribute_bool(&session, h, AttributeType::Decrypt),
        "template's CKA_DECRYPT=true applied"
    );
    // A clash with the unwrap template is TEMPLATE_INCONSISTENT.
    let clash = [
        RawAttr::ulong(CKA_CLASS, CKO_SECRET_KEY),
        RawAttr::ulong(CKA_KEY_TYPE, CKK_AES),
        RawAttr::bool(CKA_TOKEN, false),
        RawAttr::bool(CKA_ENCRYPT, true),
    ];
    assert_eq!(
        ck.unwrap(
            s,
            &RawMech::none(CKM_AES_KEY_WRAP),
            unwrapper,
            &wrapped,
            &clash
        ),
        Err(RvError::TemplateInconsistent)
    );
}

#[test]
fn rsa_pkcs1_unwrap_of_bad_padding_succeeds_with_a_different_key_implicit_rejection() {
    let (_env, _ctx, session, ck) = setup();
    let s = session.handle();
    let (rsa_pub, rsa_priv) = rsa_pair(&session);
    let template = {
        let mut t = raw_secret_template(CKK_AES, 32);
        t.push(RawAttr::bool(CKA_UNWRAP, false));
        t
    };
    let real = aes_key(&session, &[0x5a; 32]);
    let good = session
        .wrap_key(&Mechanism::RsaPkcs, rsa_pub, real)
        .unwrap();
    let plain = [0x11u8; 16];
    let expected = session.encrypt(&Mechanism::AesEcb, real, &plain).unwrap();
    let ok = ck
        .unwrap(
            s,
            &RawMech::none(CKM_RSA_PKCS),
            rsa_priv.handle(),
            &good,
            &template,
        )
        .unwrap();
    assert_eq!(
        session
            .encrypt(&Mechanism::AesEcb, handle(ok), &plain)
            .unwrap(),
        expected
    );
    // A block with bad padding: an RSA encryption (raw, e = 65537) of 00 01 FF.. (type 1).
    let n = hex(RSA_MODULUS);
    let mut em = vec![0xffu8; n.len()];
    em[0] = 0;
    em[1] = 1;
    em[n.len() - 33] = 0;
    let bad = modexp_65537(&em, &n);
    let r = ck.unwrap(
        s,
        &RawMech::none(CKM_RSA_PKCS),
        rsa_priv.handle(),
        &bad,
        &template,
    );
    let h = r.expect("implicit rejection: a bad block unwraps like a good one (CKR_OK)");
    let value = attribute_bytes(&session, handle(h), AttributeType::Value);
    assert_eq!(value.len(), 32);
    assert_ne!(
        session
            .encrypt(&Mechanism::AesEcb, handle(h), &plain)
            .unwrap(),
        expected
    );
}

/// m^65537 mod n by square-and-multiply on big-endian byte strings (test-only, slow is fine).
fn modexp_65537(m: &[u8], n: &[u8]) -> Vec<u8> {
    fn to_limbs(b: &[u8]) -> Vec<u32> {
        let mut v: Vec<u32> = b
            .rchunks(4)
            .map(|c| c.iter().fold(0u32, |a, x| (a << 8) | *x as u32))
            .collect();
        while v.last() == Some(&0) {
            v.pop();
        }
        v
    }
    fn mulmod(a: &[u32], b: &[u32], n: &[u32]) -> Vec<u32> {
        let mut prod = vec![0u64; a.len() + b.len() + 1];
        for (i, x) in a.iter().enumerate() {
            let mut carry = 0u64;
            for (j, y) in b.iter().enumerate() {
                let t = prod[i + j] + (*x as u64) * (*y as u64) + carry;
                prod[i + j] = t & 0xffff_ffff;
                carry = t >> 32;
            }
            prod[i + b.len()] += carry;
        }
        let p: Vec<u32> = prod.iter().map(|x| *x as u32).collect();
        rem(&p, n)
    }
    fn rem(a: &[u32], n: &[u32]) -> Vec<u32> {
        // Bitwise long division remainder.
        let mut r: Vec<u32> = Vec::new();
        for i in (0..a.len() * 32).rev() {
            // r = r*2 + bit
            let mut carry = (a[i / 32] >> (i % 32)) & 1;
            for limb in r.iter_mut() {
                let nc = *limb >> 31;
                *limb = (*limb << 1) | carry;
                carry = nc;
            }
            if carry != 0 {
                r.push(carry);
            }
            if cmp(&r, n) != std::cmp::Ordering::Less {
                sub(&mut r, n);
            }
        }
        r
    }
    fn cmp(a: &[u32], b: &[u32]) -> std::cmp::Ordering {
        let la = a.iter().rposition(|x| *x != 0).map_or(0, |p| p + 1);
        let lb = b.iter().rposition(|x| *x != 0).map_or(0, |p| p + 1);
        la.cmp(&lb)
            .then_with(|| a[..la].iter().rev().cmp(b[..lb].iter().rev()))
    }
    fn sub(a: &mut [u32], b: &[u32]) {
        let mut borrow = 0i64;
        for (i, limb) in a.iter_mut().enumerate() {
            let t = *limb as i64 - *b.get(i).unwrap_or(&0) as i64 - borrow;
            *limb = t.rem_euclid(1 << 32) as u32;
            borrow = (t < 0) as i64;
        }
    }
    let (nl, ml) = (to_limbs(n), to_limbs(m));
    let mut x = ml.clone();
    for _ in 0..16 {
        x = mulmod(&x, &x, &nl);
    }
    let r = mulmod(&x, &ml, &nl);
    let mut out = vec![0u8; n.len()];
    for (i, limb) in r.iter().enumerate() {
        for k in 0..4 {
            let pos = i * 4 + k;
            if pos < out.len() {
                out[n.len() - 1 - pos] = (limb >> (8 * k)) as u8;
            }
        }
    }
    out
}
