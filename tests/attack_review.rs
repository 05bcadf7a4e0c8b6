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

// ---------------------------------------------------------------------------------------
// The legacy_algorithms switch, off (the default)
// ---------------------------------------------------------------------------------------

/// Attack: with the switch off, make a DES or Triple-DES key by a path other than key
/// generation or `C_CreateObject`: a derivation naming `CKK_DES*` as the key type, or an
/// unwrap into a `CKK_DES3` template. Every path is refused.
#[test]
fn with_the_switch_off_no_derivation_or_unwrap_makes_a_des_key() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let base = secret(
        &session,
        &[0x01; 24],
        &[Attribute::Sensitive(false), Attribute::Extractable(true)],
    );
    for (key_type, len) in [(CKK_DES, 8), (CKK_DES2, 16), (CKK_DES3, 24)] {
        let m = string_data(CKM_CONCATENATE_BASE_AND_DATA, &[0x01; 8]);
        let template = vec![
            RawAttr::ulong(CKA_CLASS, CKO_SECRET_KEY),
            RawAttr::ulong(CKA_KEY_TYPE, key_type),
            RawAttr::ulong(CKA_VALUE_LEN, len),
            RawAttr::bool(CKA_TOKEN, false),
            RawAttr::bool(CKA_ENCRYPT, true),
        ];
        let r = ck.derive(session.handle(), &m, base.handle(), &template);
        assert!(r.is_err(), "a derivation made a key of type {key_type:#x}");
    }
    // Unwrap: a readable AES key wraps 24 bytes of odd parity; the unwrap asks for 3DES.
    let kek = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Wrap(true),
            Attribute::Unwrap(true),
            Attribute::Value(vec![0x11; 16]),
        ])
        .unwrap();
    let target = secret(
        &session,
        &hex("0123456789abcdeffedcba987654321089abcdef01234567"),
        &[Attribute::Sensitive(false), Attribute::Extractable(true)],
    );
    let wrapped = session
        .wrap_key(&Mechanism::AesKeyWrap, kek, target)
        .unwrap();
    let r = session.unwrap_key(
        &Mechanism::AesKeyWrap,
        kek,
        &wrapped,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::DES3),
            Attribute::Token(false),
            Attribute::Encrypt(true),
        ],
    );
    assert!(r.is_err(), "an unwrap made a Triple-DES key: {r:?}");
}

/// `openssl genpkey` RSA of `bits`, imported by components; its PEM path too.
fn outside_rsa(env: &TestEnv, session: &Session, bits: u32) -> (ObjectHandle, String) {
    let path = env
        .dir
        .path()
        .join(format!("rsa{bits}.pem"))
        .to_str()
        .unwrap()
        .to_owned();
    let keygen_bits = format!("rsa_keygen_bits:{bits}");
    openssl_ok(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        &keygen_bits,
        "-out",
        &path,
    ]);
    let text = String::from_utf8(openssl_ok(&["pkey", "-in", &path, "-text", "-noout"])).unwrap();
    let f = |l| openssl_text_field(&text, l);
    let k = RsaKey {
        n: f("modulus"),
        e: vec![1, 0, 1],
        d: f("privateExponent"),
        p: f("prime1"),
        q: f("prime2"),
        dp: f("exponent1"),
        dq: f("exponent2"),
        qinv: f("coefficient"),
    };
    (rsa_private(session, &k), path)
}

/// Attack: RSA keys below the floor brought in from outside. Generation stops at 2048 bits
/// (1024 with `legacy_algorithms`), and so does use: a 1024-bit or 512-bit private key made
/// by `C_CreateObject`, or a PKCS#8 RSA-1024 key unwrapped with AES-CBC-PAD, is stored but
/// every operation with it is `CKR_KEY_SIZE_RANGE` at its `Init` with the switch off (the
/// reviewer found them signing, with no floor at all); with the switch on RSA-1024 signs
/// and RSA-512 still does not.
#[test]
fn rsa_keys_below_the_floor_from_outside_are_refused_at_use() {
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    let info = ctx
        .get_mechanism_info(slot, cryptoki::mechanism::MechanismType::SHA256_RSA_PKCS)
        .unwrap();
    assert_eq!(info.min_key_size(), 2048);
    for bits in [1024, 512] {
        let (private, _) = outside_rsa(&env, &session, bits);
        assert_rv!(
            session.sign(&Mechanism::Sha256RsaPkcs, private, b"legacy"),
            RvError::KeySizeRange
        );
    }
    // C_UnwrapKey of the PKCS#8 form, encrypted by openssl under a known AES key.
    let (_, pem) = outside_rsa(&env, &session, 1024);
    let der_path = format!("{pem}.p8");
    openssl_ok(&[
        "pkcs8", "-topk8", "-nocrypt", "-in", &pem, "-outform", "DER", "-out", &der_path,
    ]);
    let (k, iv) = ([0x22u8; 16], [0x33u8; 16]);
    let wrapped = openssl_ok(&[
        "enc",
        "-aes-128-cbc",
        "-K",
        &to_hex(&k),
        "-iv",
        &to_hex(&iv),
        "-in",
        &der_path,
    ]);
    let kek = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Unwrap(true),
            Attribute::Value(k.to_vec()),
        ])
        .unwrap();
    let private = session
        .unwrap_key(
            &Mechanism::AesCbcPad(iv),
            kek,
            &wrapped,
            &[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(KeyType::RSA),
                Attribute::Token(false),
                Attribute::Sign(true),
            ],
        )
        .expect("C_UnwrapKey of a PKCS#8 RSA-1024 key with the switch off");
    assert_rv!(
        session.sign(&Mechanism::Sha256RsaPkcs, private, b"legacy"),
        RvError::KeySizeRange
    );
    drop(session);
    ctx.finalize().unwrap();
    // With the switch on, the floor is 1024 bits.
    let plain = std::fs::read_to_string(&env.conf_path).unwrap();
    env.write_config(&format!("legacy_algorithms = true\n{plain}"));
    let ctx = env.load();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let session = user_session(&ctx, slot);
    let info = ctx
        .get_mechanism_info(slot, cryptoki::mechanism::MechanismType::SHA256_RSA_PKCS)
        .unwrap();
    assert_eq!(info.min_key_size(), 1024);
    let (private, _) = outside_rsa(&env, &session, 1024);
    let sig = session
        .sign(&Mechanism::Sha256RsaPkcs, private, b"legacy")
        .expect("RSA-1024 signs with legacy_algorithms on");
    assert_eq!(sig.len(), 128);
    let (private, _) = outside_rsa(&env, &session, 512);
    assert_rv!(
        session.sign(&Mechanism::Sha256RsaPkcs, private, b"legacy"),
        RvError::KeySizeRange
    );
}

/// Attack: a Triple-DES token key stored while the switch was on, used after the module
/// is re-initialised with it off. The token must still load (its other keys work), and
/// the Triple-DES key must not encrypt, decrypt or wrap.
#[test]
fn a_stored_des_key_is_unusable_once_the_switch_is_off_and_the_token_still_loads() {
    let env = TestEnv::new();
    let plain = std::fs::read_to_string(&env.conf_path).unwrap();
    env.write_config(&format!("legacy_algorithms = true\n{plain}"));
    {
        let (ctx, _slot, session) = ready_token(&env);
        session
            .create_object(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::DES3),
                Attribute::Token(true),
                Attribute::Label(b"des3".to_vec()),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Wrap(true),
                Attribute::Value(hex("0123456789abcdeffedcba987654321089abcdef01234567")),
            ])
            .expect("a token 3DES key with the switch on");
        let mut aes = aes_template("aes", &[7; 16], true);
        aes.push(Attribute::Encrypt(true));
        session.create_object(&aes).unwrap();
        drop(session);
        ctx.finalize().unwrap();
    }
    env.write_config(&plain);
    let ctx = env.load();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let session = user_session(&ctx, slot);
    let aes = find_by_label(&session, "aes");
    assert_eq!(aes.len(), 1, "the token's other key is still there");
    session
        .encrypt(&Mechanism::AesEcb, aes[0], &[0; 16])
        .expect("the token's AES key still works");
    let found = find_by_label(&session, "des3");
    assert_eq!(
        found.len(),
        1,
        "the stored key is listed (and below, unusable)"
    );
    for des in found {
        assert!(session.encrypt(&Mechanism::Des3Ecb, des, &[0; 8]).is_err());
        assert!(session.encrypt(&Mechanism::AesEcb, des, &[0; 16]).is_err());
        assert!(session.decrypt(&Mechanism::Des3Ecb, des, &[0; 8]).is_err());
        let target = session
            .create_object(&aes_template("t", &[9; 16], false))
            .unwrap();
        assert!(session.wrap_key(&Mechanism::Des3Ecb, des, target).is_err());
    }
}

// ---------------------------------------------------------------------------------------
// C_DigestKey; KMS state and login on every key a derivation reads
// ---------------------------------------------------------------------------------------

fn digest_of_key(session: &Session, key: ObjectHandle) -> cryptoki::error::Result<Vec<u8>> {
    session.digest_init(&Mechanism::Sha256)?;
    let fed = session.digest_key(key);
    let out = session.digest_final();
    fed?;
    out
}

/// Attacks on `C_DigestKey`: a sensitive key; a copy of it asking `CKA_SENSITIVE` false;
/// a derived bit-for-bit copy; a key whose `CKA_ALLOWED_MECHANISMS` leaves SHA-256 out;
/// a private key after logout; a disabled key. None gives a digest.
#[test]
fn digest_key_gives_nothing_it_must_not() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let sensitive = secret(
        &session,
        &[0x61; 32],
        &[Attribute::Sensitive(true), Attribute::Extractable(true)],
    );
    assert_eq!(
        rv(digest_of_key(&session, sensitive)),
        RvError::KeyIndigestible
    );
    // The copy may not lower CKA_SENSITIVE.
    if let Ok(copy) = session.copy_object(sensitive, &[Attribute::Sensitive(false)]) {
        assert_eq!(rv(digest_of_key(&session, copy)), RvError::KeyIndigestible);
    }
    // A derived copy of its bits, asking for a non-sensitive key: made sensitive.
    let m = string_data(CKM_CONCATENATE_BASE_AND_DATA, &[]);
    let copy = ck
        .derive(
            session.handle(),
            &m,
            sensitive.handle(),
            &generic_template(None, vec![RawAttr::bool(CKA_SENSITIVE, false)]),
        )
        .unwrap();
    assert_eq!(
        rv(digest_of_key(&session, handle(copy))),
        RvError::KeyIndigestible
    );
    // Allowed mechanisms without the digest.
    let narrow = secret(
        &session,
        &[0x62; 32],
        &[
            Attribute::Sensitive(false),
            Attribute::AllowedMechanisms(vec![cryptoki::mechanism::MechanismType::SHA512]),
        ],
    );
    assert_eq!(
        rv(digest_of_key(&session, narrow)),
        RvError::KeyIndigestible
    );
    // Disabled (a derived key is a KMS key with a state of its own).
    let plain = secret(&session, &[0x63; 32], &[Attribute::Sensitive(false)]);
    digest_of_key(&session, plain).expect("a plain non-sensitive key digests");
    common::kms::set_state(&session, plain, common::kms::STATE_DISABLED).unwrap();
    assert!(
        digest_of_key(&session, plain).is_err(),
        "a disabled key digested"
    );
    // Private, after logout.
    let private = secret(
        &session,
        &[0x64; 32],
        &[Attribute::Sensitive(false), Attribute::Private(true)],
    );
    session.logout().unwrap();
    // §5.6.4: logout destroys private session objects, so the handle is gone.
    assert!(matches!(
        rv(digest_of_key(&session, private)),
        RvError::UserNotLoggedIn | RvError::KeyHandleInvalid
    ));
}

/// Attack: derive from keys the KMS model says are unusable — a disabled base, a key
/// scheduled for deletion named as `CKM_CONCATENATE_BASE_AND_KEY`'s second key or as the
/// HKDF salt key — and from a second key whose `CKA_ALLOWED_MECHANISMS` leaves the
/// mechanism out. Each is refused.
#[test]
fn every_key_a_derivation_reads_is_judged_by_its_kms_state_and_allowed_mechanisms() {
    use cryptoki::mechanism::hkdf::{HkdfParams, HkdfSalt};
    use cryptoki::mechanism::MechanismType;
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let readable = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
    ];
    let good = secret(&session, &[1; 32], &[]);
    let disabled = secret(&session, &[2; 32], &[]);
    common::kms::set_state(&session, disabled, common::kms::STATE_DISABLED).unwrap();
    assert!(session
        .derive_key(&Mechanism::ConcatenateBaseAndKey(good), disabled, &readable)
        .is_err());
    assert!(session
        .derive_key(&Mechanism::ConcatenateBaseAndKey(disabled), good, &readable)
        .is_err());
    let salt = HkdfParams::new(MechanismType::SHA256, Some(HkdfSalt::Key(disabled)), None);
    assert!(session
        .derive_key(&Mechanism::HkdfDerive(salt), good, &readable)
        .is_err());
    let narrow = secret(
        &session,
        &[3; 32],
        &[Attribute::AllowedMechanisms(vec![
            MechanismType::XOR_BASE_AND_DATA,
        ])],
    );
    assert_eq!(
        rv(session.derive_key(&Mechanism::ConcatenateBaseAndKey(narrow), good, &readable)),
        RvError::MechanismInvalid
    );
    let salt = HkdfParams::new(MechanismType::SHA256, Some(HkdfSalt::Key(narrow)), None);
    assert_eq!(
        rv(session.derive_key(&Mechanism::HkdfDerive(salt), good, &readable)),
        RvError::MechanismInvalid
    );
    // The working control: the same calls with usable keys succeed.
    session
        .derive_key(&Mechanism::ConcatenateBaseAndKey(good), good, &readable)
        .unwrap();
}

/// Attack: `CKM_HKDF_DATA` to place a data object where the session may not: on the
/// token from a read-only session, private without a login; and a silent template from
/// a private base key must not give a public object.
#[test]
fn hkdf_data_objects_follow_the_session_and_login_rules() {
    use cryptoki::mechanism::hkdf::HkdfParams;
    use cryptoki::mechanism::MechanismType;
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    let private_base = secret(&session, &[4; 32], &[Attribute::Private(true)]);
    let info = b"info".to_vec();
    let params = HkdfParams::new(MechanismType::SHA256, None, Some(&info));
    let silent = session
        .derive_key(
            &Mechanism::HkdfData(params),
            private_base,
            &[Attribute::Token(false)],
        )
        .unwrap();
    assert!(attribute_bool(&session, silent, AttributeType::Private));
    // A public token base key, a read-only session.
    let public_base = secret(&session, &[5; 32], &[Attribute::Private(false)]);
    let ro = ctx.open_ro_session(slot).unwrap();
    assert_eq!(
        rv(ro.derive_key(
            &Mechanism::HkdfData(params),
            public_base,
            &[Attribute::Token(true)]
        )),
        RvError::SessionReadOnly
    );
    session.logout().unwrap();
    assert_eq!(
        rv(session.derive_key(
            &Mechanism::HkdfData(params),
            public_base,
            &[Attribute::Token(false), Attribute::Private(true)]
        )),
        RvError::UserNotLoggedIn
    );
    // §5.6.4: logout destroys private session objects, so the handle is gone.
    assert!(matches!(
        rv(session.derive_key(
            &Mechanism::HkdfData(params),
            private_base,
            &[Attribute::Token(false)]
        )),
        RvError::UserNotLoggedIn | RvError::KeyHandleInvalid
    ));
}

// ---------------------------------------------------------------------------------------
// Message-based AES-GCM
// ---------------------------------------------------------------------------------------

/// One message of a running encryption operation; the IV it used, if it was encrypted.
fn one_message(
    session: &Session,
    (iv, fixed_bits, generator): (&[u8], u64, cryptoki::mechanism::aead::GeneratorFunction),
) -> Option<Vec<u8>> {
    use cryptoki::mechanism::aead::GcmMessageParams;
    use cryptoki::mechanism::MessageParam;
    let mut iv = iv.to_vec();
    let mut tag = vec![0u8; 16];
    let p = GcmMessageParams::new(&mut iv, fixed_bits.into(), generator, &mut tag).unwrap();
    match session.encrypt_message(&MessageParam::AesGcmMessage(p), b"", b"secret") {
        Ok(_) => Some(iv),
        Err(cryptoki::error::Error::Pkcs11(RvError::MechanismParamInvalid, _)) => None,
        Err(e) => panic!("{e}"),
    }
}

fn start_message_encryption(session: &Session, key: ObjectHandle) {
    use cryptoki::mechanism::aead::{GcmMessageParams, GeneratorFunction};
    let (mut iv, mut tag) = (vec![0u8; 12], vec![0u8; 16]);
    let p =
        GcmMessageParams::new(&mut iv, 0.into(), GeneratorFunction::NoGenerate, &mut tag).unwrap();
    session
        .message_encrypt_init(&Mechanism::AesGcmMessage(p), key)
        .unwrap();
}

fn assert_distinct(ivs: &[Vec<u8>], what: &str) {
    let mut seen = std::collections::HashSet::new();
    for iv in ivs {
        assert!(
            seen.insert(iv.clone()),
            "{what}: IV {} used twice",
            to_hex(iv)
        );
    }
}

/// Attack: make the token's own IV generator repeat an IV under one key within one
/// operation — by changing `ulIvFixedBits` between counter messages (the counter then
/// lands where an earlier message's fixed bits were: 0x01 then counter 1 under 88 fixed
/// bits is the IV of counter 0x0101 under 80), or by sending a caller IV
/// (`CKG_NO_GENERATE`) that the counter reaches later. Every IV the operation encrypts
/// under must be distinct. Failed before the fix: both gave a repeated IV.
#[test]
fn the_counter_generator_never_repeats_an_iv_within_an_operation() {
    use cryptoki::mechanism::aead::GeneratorFunction::{GenerateCounter, NoGenerate};
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = aes_key(&session, &[0x2B; 16]);
    let prefix = [0xA0u8; 10];

    start_message_encryption(&session, key);
    let mut ivs = Vec::new();
    for c in 0..300u32 {
        let used = if c == 1 {
            let mut iv = prefix.to_vec();
            iv.extend_from_slice(&[0x01, 0xFF]);
            one_message(&session, (&iv, 88, GenerateCounter))
        } else {
            let mut iv = prefix.to_vec();
            iv.extend_from_slice(&[0xFF, 0xFF]);
            one_message(&session, (&iv, 80, GenerateCounter))
        };
        ivs.extend(used);
    }
    session.message_encrypt_final().unwrap();
    assert_distinct(&ivs, "fixed bits changed between counter messages");

    start_message_encryption(&session, key);
    let mut chosen = prefix.to_vec();
    chosen.extend_from_slice(&[0x00, 0x01]);
    let mut ivs: Vec<_> = one_message(&session, (&chosen, 0, NoGenerate))
        .into_iter()
        .collect();
    for _ in 0..3 {
        let mut iv = prefix.to_vec();
        iv.extend_from_slice(&[0xFF, 0xFF]);
        ivs.extend(one_message(&session, (&iv, 80, GenerateCounter)));
    }
    session.message_encrypt_final().unwrap();
    assert_distinct(&ivs, "a caller IV the counter reached later");
    assert!(ivs.len() >= 3, "the counter stopped altogether");
}

// ---------------------------------------------------------------------------------------
// AES key wrap of private keys
// ---------------------------------------------------------------------------------------

/// Attacks on wrapping a private key: a sensitive but extractable P-256 key with
/// `CKA_WRAP_WITH_TRUSTED` under the user's own untrusted key; a user-made "trusted"
/// key (by derivation, unwrap, copy or attribute change: only the SO may set
/// `CKA_TRUSTED`); an unextractable key. Then the unwrap of a truncated blob.
#[test]
fn private_key_wrapping_follows_extractable_and_wrap_with_trusted() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let p256 = hex("06082a8648ce3d030107");
    let pair = |extractable: bool, trusted_only: bool| {
        session
            .generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &[Attribute::Token(false), Attribute::EcParams(p256.clone())],
                &[
                    Attribute::Token(false),
                    Attribute::Sign(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(extractable),
                    Attribute::WrapWithTrusted(trusted_only),
                ],
            )
            .unwrap()
            .1
    };
    let kek = attacker_kek(&session);
    let guarded = pair(true, true);
    assert_eq!(
        rv(session.wrap_key(&Mechanism::AesKeyWrap, kek, guarded)),
        RvError::KeyNotWrappable
    );
    let locked = pair(false, false);
    assert_eq!(
        rv(session.wrap_key(&Mechanism::AesKeyWrap, kek, locked)),
        RvError::KeyUnextractable
    );
    // The user cannot make a trusted key by any path.
    let base = secret(&session, &[0x0F; 16], &[]);
    let m = string_data(CKM_CONCATENATE_BASE_AND_DATA, &[]);
    let mut template = generic_template(None, vec![RawAttr::bool(CKA_TRUSTED, true)]);
    template[1] = RawAttr::ulong(CKA_KEY_TYPE, CKK_AES);
    template.push(RawAttr::bool(CKA_WRAP, true));
    assert!(ck
        .derive(session.handle(), &m, base.handle(), &template)
        .is_err());
    assert!(session
        .copy_object(kek, &[Attribute::Trusted(true)])
        .is_err());
    assert!(session
        .update_attributes(kek, &[Attribute::Trusted(true)])
        .is_err());
    let wrapped_kek = session.wrap_key(&Mechanism::AesKeyWrap, kek, kek).unwrap();
    let unwrapper = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(false),
            Attribute::Unwrap(true),
            Attribute::Value(vec![0x5A; 16]),
        ])
        .unwrap();
    assert!(session
        .unwrap_key(
            &Mechanism::AesKeyWrap,
            unwrapper,
            &wrapped_kek,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Token(false),
                Attribute::Wrap(true),
                Attribute::Trusted(true),
            ],
        )
        .is_err());

    // An extractable private key wraps; its unwrap takes the PKCS#8 length. Blobs
    // whose padding is not zero or that are cut short are not keys.
    let open = pair(true, false);
    let wrapped = session.wrap_key(&Mechanism::AesKeyWrap, kek, open).unwrap();
    let private_template = [
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::EC),
        Attribute::Token(false),
        Attribute::Sign(true),
    ];
    let back = session
        .unwrap_key(
            &Mechanism::AesKeyWrap,
            unwrapper,
            &wrapped,
            &private_template,
        )
        .expect("the wrapped private key unwraps");
    session
        .sign(&Mechanism::Ecdsa, back, &[7; 32])
        .expect("and signs");
    for cut in [8, 16] {
        assert!(session
            .unwrap_key(
                &Mechanism::AesKeyWrap,
                unwrapper,
                &wrapped[..wrapped.len() - cut],
                &private_template
            )
            .is_err());
    }
}

// ---------------------------------------------------------------------------------------
// X448
// ---------------------------------------------------------------------------------------

/// Attack: X448 with peers of small order written as non-canonical or other
/// representatives (u = p - 1, u = p ≡ 0, u = p + 1 ≡ 1, RFC 7748 §5 reduces u mod p):
/// the shared secret would be all zeros (or known), so every one is refused; a peer
/// wrapped in a DER OCTET STRING whose length lies is refused too, without a crash.
#[test]
fn x448_peers_of_small_order_in_any_representation_are_refused() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let (_, private) = session
        .generate_key_pair(
            &Mechanism::EccMontgomeryKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::EcParams(hex("06032b656f")),
            ],
            &[Attribute::Token(false), Attribute::Derive(true)],
        )
        .expect("X448 needs the system's libcrypto.so.3 (apt-get install libssl3)");
    let template = generic_template(
        Some(32),
        vec![
            RawAttr::bool(CKA_SENSITIVE, false),
            RawAttr::bool(CKA_EXTRACTABLE, true),
        ],
    );
    let p_minus_1 = hex(
        "fefffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    );
    let p = hex(
        "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    );
    let p_plus_1 = hex(
        "00000000000000000000000000000000000000000000000000000000ffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    );
    for peer in [&p_minus_1, &p, &p_plus_1] {
        let r = ck.derive(
            session.handle(),
            &RawMech::ecdh(CKD_NULL, peer),
            private.handle(),
            &template,
        );
        assert_eq!(
            r,
            Err(RvError::MechanismParamInvalid),
            "peer {}",
            to_hex(peer)
        );
    }
    let mut lying = vec![0x04, 0x38];
    lying.extend_from_slice(&[9; 55]);
    lying.push(0);
    lying.truncate(57);
    let r = ck.derive(
        session.handle(),
        &RawMech::ecdh(CKD_NULL, &lying),
        private.handle(),
        &template,
    );
    assert_eq!(r, Err(RvError::MechanismParamInvalid));
    still_alive(&ck, &session, secret(&session, &[1; 16], &[]));
}

/// Attack on the opt-in separation-of-duties policy: a key that wraps (and may derive)
/// gives, by a derivation that copies its bits, a key that decrypts; the target wrapped
/// under the first is then decrypted with the copy, in the clear. The copy may do nothing
/// its source cannot, so the derivation is `CKR_TEMPLATE_INCONSISTENT`. Failed
/// before the fix: the copy was made and decrypted the wrapped target.
#[test]
fn separation_of_duties_holds_across_a_derived_copy() {
    let env = TestEnv::new();
    let text = std::fs::read_to_string(&env.conf_path).unwrap();
    env.write_config(&format!("separation_of_duties = true\n{text}"));
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let wrapper = session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(16.into()),
                Attribute::Wrap(true),
                Attribute::Decrypt(false),
                Attribute::Encrypt(false),
                Attribute::Unwrap(false),
                Attribute::Derive(true),
            ],
        )
        .unwrap();
    let mut target = aes_template("target", &[0x77; 16], false);
    target.extend([
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
    ]);
    let target = session.create_object(&target).unwrap();
    let wrapped = session
        .wrap_key(&Mechanism::AesEcb, wrapper, target)
        .unwrap();
    let copy_template = |key_type: CK_KEY_TYPE| {
        vec![
            RawAttr::ulong(CKA_CLASS, CKO_SECRET_KEY),
            RawAttr::ulong(CKA_KEY_TYPE, key_type),
            RawAttr::ulong(CKA_VALUE_LEN, 16),
            RawAttr::bool(CKA_TOKEN, false),
            RawAttr::bool(CKA_ENCRYPT, false),
            RawAttr::bool(CKA_UNWRAP, false),
            RawAttr::bool(CKA_WRAP, false),
            RawAttr::bool(CKA_DECRYPT, true),
        ]
    };
    let start: CK_EXTRACT_PARAMS = 0;
    for m in [
        string_data(CKM_CONCATENATE_DATA_AND_BASE, &[]),
        string_data(CKM_XOR_BASE_AND_DATA, &[0; 16]),
        RawMech::structure(CKM_EXTRACT_KEY_FROM_KEY, &start, vec![]),
    ] {
        match ck.derive(
            session.handle(),
            &m,
            wrapper.handle(),
            &copy_template(CKK_AES),
        ) {
            Err(RvError::TemplateInconsistent) => {}
            Ok(copy) => {
                let plain = session.decrypt(&Mechanism::AesEcb, handle(copy), &wrapped);
                panic!(
                    "a decrypting copy of the wrapping key was made (decrypts the target: {})",
                    plain.is_ok_and(|p| p == [0x77; 16])
                );
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    // A copy that can do no more than its source (here: nothing the policy weighs) is
    // still allowed. One that encrypts was, before review 16b: a copying derivation now
    // adds no duty to its source's, as a copy adds none.
    let mut harmless = copy_template(CKK_AES);
    harmless.retain(|a| a.ty != CKA_DECRYPT);
    harmless.push(RawAttr::bool(CKA_DECRYPT, false));
    ck.derive(
        session.handle(),
        &string_data(CKM_CONCATENATE_DATA_AND_BASE, &[]),
        wrapper.handle(),
        &harmless,
    )
    .expect("a copy without a conflicting duty");
}
