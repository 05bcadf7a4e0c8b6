//! Attacks on object policy (issue 12), reproduced through the PKCS#11 API and the
//! `kmshsm` command line, each asserting the refusal code and that nothing changed: the
//! import wrapping key made to decrypt, keys doing more than their KeyUsage, copies
//! that widen an unmodifiable key, `CKA_ALWAYS_AUTHENTICATE` keys used without the
//! context-specific login, and the opt-in separation-of-duties policy.
//! Run with `cargo nextest run --test attacks_policy`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::process::Command;

use common::duties::*;
use common::kms::*;
use common::material::EC_PARAMS_P256;
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki_sys::*;

/// Every usage flag, with its attribute type.
const USAGE_FLAGS: [(CK_ATTRIBUTE_TYPE, AttributeType); 9] = [
    (CKA_ENCRYPT, AttributeType::Encrypt),
    (CKA_DECRYPT, AttributeType::Decrypt),
    (CKA_SIGN, AttributeType::Sign),
    (CKA_VERIFY, AttributeType::Verify),
    (CKA_WRAP, AttributeType::Wrap),
    (CKA_UNWRAP, AttributeType::Unwrap),
    (CKA_DERIVE, AttributeType::Derive),
    (CKA_SIGN_RECOVER, AttributeType::SignRecover),
    (CKA_VERIFY_RECOVER, AttributeType::VerifyRecover),
];

/// The usage flags of `key` that are true (flags the class lacks read as absent).
fn true_flags(session: &Session, key: ObjectHandle) -> Vec<CK_ATTRIBUTE_TYPE> {
    USAGE_FLAGS
        .iter()
        .filter(|(ty, _)| read_bool(session, key, *ty) == Some(true))
        .map(|(ty, _)| *ty)
        .collect()
}

#[test]
fn the_import_wrapping_key_cannot_be_made_to_decrypt_or_be_copied() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let key = create_external(&session, Spec::Aes256, "target");
    // One material: the key binds to it at the first import.
    let material = work.material(Spec::Aes256);
    for alg in [WRAP_RSAES_OAEP_SHA_256, WRAP_RSAES_PKCS1_V1_5] {
        let params = get_params(&session, &key_id(&session, key), alg);
        let w = params.private;
        for (ty, want) in [
            (CKA_MODIFIABLE, false),
            (CKA_COPYABLE, false),
            (CKA_EXTRACTABLE, false),
            (CKA_DECRYPT, false),
            (CKA_SIGN, false),
            (CKA_SIGN_RECOVER, false),
            (CKA_DERIVE, false),
        ] {
            assert_eq!(read_bool(&session, w, ty), Some(want), "attribute {ty:#x}");
        }
        // The attack: add CKA_DECRYPT, then decrypt the wrapped material with it.
        for change in [
            Attribute::Decrypt(true),
            Attribute::Sign(true),
            Attribute::SignRecover(true),
            Attribute::Derive(true),
            Attribute::Modifiable(true),
        ] {
            assert_rv!(
                session.update_attributes(w, std::slice::from_ref(&change)),
                RvError::ActionProhibited,
                "{change:?} on the wrapping key"
            );
        }
        assert_eq!(read_bool(&session, w, CKA_DECRYPT), Some(false));
        let wrapped = work.wrap(alg, &params.spki, &material.bytes);
        for mech in [oaep_sha256(), Mechanism::RsaPkcs] {
            assert_rv!(
                session.decrypt(&mech, w, &wrapped),
                RvError::KeyFunctionNotPermitted,
                "decrypting with the wrapping key ({mech:?})"
            );
        }
        assert_rv!(
            session.copy_object(w, &[Attribute::Token(false)]),
            RvError::ActionProhibited
        );
        assert_rv!(
            session.copy_object(params.public, &[Attribute::Token(false)]),
            RvError::ActionProhibited
        );
        // Its one use still works: the import into its bound target.
        import(&session, &params, &wrapped, None).expect("the import itself");
        assert_works_like(&session, &work, key, &material);
    }
}

#[test]
fn a_kms_key_has_exactly_the_usage_its_key_usage_implies_and_no_change_widens_it() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    // C_GenerateKey as `kmshsm create-key` does it, with every flag asked for.
    let mut all_on: Vec<Attribute> = vec![
        Attribute::Token(true),
        Attribute::ValueLen(32.into()),
        vendor_ulong(CKA_KMSHSM_KEY_USAGE, USAGE_ENCRYPT_DECRYPT),
    ];
    all_on.extend([
        Attribute::Sign(true),
        Attribute::Verify(true),
        Attribute::Wrap(true),
        Attribute::Unwrap(true),
        Attribute::Derive(true),
    ]);
    let aes = session
        .generate_key(&Mechanism::AesKeyGen, &all_on)
        .unwrap();
    assert_eq!(true_flags(&session, aes), vec![CKA_ENCRYPT, CKA_DECRYPT]);
    // An EXTERNAL RSA key for SIGN/VERIFY, and an ENCRYPT/DECRYPT one.
    for (usage, want) in [
        (USAGE_SIGN_VERIFY, vec![CKA_SIGN]),
        (USAGE_ENCRYPT_DECRYPT, vec![CKA_DECRYPT]),
    ] {
        let mut t = external_template(Spec::Rsa2048, "rsa");
        t.extend([
            vendor_ulong(CKA_KMSHSM_KEY_USAGE, usage),
            Attribute::Unwrap(true),
            Attribute::SignRecover(true),
        ]);
        let rsa = session.create_object(&t).unwrap();
        assert_eq!(true_flags(&session, rsa), want, "usage {usage}");
    }
    // No attribute change adds a use.
    for widen in [
        Attribute::Sign(true),
        Attribute::Wrap(true),
        Attribute::Unwrap(true),
        Attribute::Derive(true),
    ] {
        assert_rv!(
            session.update_attributes(aes, std::slice::from_ref(&widen)),
            RvError::ActionProhibited,
            "{widen:?}"
        );
        assert_rv!(
            session.copy_object(aes, std::slice::from_ref(&widen)),
            RvError::ActionProhibited,
            "copy with {widen:?}"
        );
    }
    assert_eq!(true_flags(&session, aes), vec![CKA_ENCRYPT, CKA_DECRYPT]);
    // Narrowing is allowed.
    session
        .update_attributes(aes, &[Attribute::Decrypt(false)])
        .unwrap();
    assert_eq!(true_flags(&session, aes), vec![CKA_ENCRYPT]);
}

#[test]
fn keys_made_by_the_command_line_do_only_what_their_key_usage_says() {
    let env = TestEnv::new();
    let ctx = env.load();
    init_token(&ctx);
    ctx.finalize().unwrap();
    let create = |spec: &str, usage: &str, origin: &str| -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_kmshsm"))
            .args([
                "create-key",
                "--origin",
                origin,
                "--key-spec",
                spec,
                "--key-usage",
                usage,
            ])
            .env("KMSHSM_PIN", USER_PIN)
            .output()
            .expect("run kmshsm");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        json["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned()
    };
    let cases = [
        (
            "AES_256",
            "ENCRYPT/DECRYPT",
            "Aliyun_KMS",
            vec![CKA_ENCRYPT, CKA_DECRYPT],
        ),
        (
            "AES_256",
            "ENCRYPT/DECRYPT",
            "EXTERNAL",
            vec![CKA_ENCRYPT, CKA_DECRYPT],
        ),
        ("RSA_2048", "SIGN/VERIFY", "Aliyun_KMS", vec![CKA_SIGN]),
        (
            "RSA_2048",
            "ENCRYPT/DECRYPT",
            "Aliyun_KMS",
            vec![CKA_DECRYPT],
        ),
    ];
    let ids: Vec<String> = cases
        .iter()
        .map(|(spec, usage, origin, _)| create(spec, usage, origin))
        .collect();
    let ctx = env.load();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let session = user_session(&ctx, slot);
    for ((spec, usage, origin, want), id) in cases.iter().zip(&ids) {
        let secret_or_private = objects_of_key(&session, id)
            .into_iter()
            .find(|h| read_ulong(&session, *h, CKA_CLASS) != Some(CKO_PUBLIC_KEY))
            .unwrap();
        assert_eq!(
            &true_flags(&session, secret_or_private),
            want,
            "{spec} {usage} {origin}"
        );
    }
}

#[test]
fn a_copy_of_an_unmodifiable_key_may_not_change_its_policy() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let key = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Value(vec![7u8; 32]),
            Attribute::Token(true),
            Attribute::Encrypt(true),
            Attribute::Decrypt(false),
            Attribute::Modifiable(false),
        ])
        .unwrap();
    let count = |s: &Session| s.find_objects(&[]).unwrap().len();
    let before = count(&session);
    assert_rv!(
        session.copy_object(key, &[Attribute::Decrypt(true)]),
        RvError::ActionProhibited
    );
    assert_rv!(
        session.update_attributes(key, &[Attribute::Decrypt(true)]),
        RvError::ActionProhibited
    );
    assert_eq!(count(&session), before, "no copy was made");
    assert_eq!(read_bool(&session, key, CKA_DECRYPT), Some(false));
    // Where it is stored may change in the copy.
    let copy = session
        .copy_object(key, &[Attribute::Token(false)])
        .expect("storage attributes may change");
    assert_eq!(read_bool(&session, copy, CKA_DECRYPT), Some(false));
}

fn always_authenticate_pair(session: &Session) -> (ObjectHandle, ObjectHandle) {
    session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[Attribute::ModulusBits(2048.into()), Attribute::Verify(true)],
            &[
                Attribute::Private(true),
                Attribute::Sign(true),
                Attribute::AlwaysAuthenticate(true),
            ],
        )
        .unwrap()
}

#[test]
fn an_always_authenticate_key_signs_only_after_a_context_specific_login_each_time() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let (public, private) = always_authenticate_pair(&session);
    // Without the context-specific login: refused, and the operation ends.
    assert_rv!(
        session.sign(&Mechanism::Sha256RsaPkcs, private, b"data"),
        RvError::UserNotLoggedIn
    );
    // A wrong PIN is counted and refused; the right one authorises this operation.
    session
        .sign_init(&Mechanism::Sha256RsaPkcs, private)
        .unwrap();
    assert_rv!(
        session.login(UserType::ContextSpecific, Some(&pin("wrong-pin-9"))),
        RvError::PinIncorrect
    );
    assert_rv!(session.sign_update(b"data"), RvError::UserNotLoggedIn);
    session
        .sign_init(&Mechanism::Sha256RsaPkcs, private)
        .unwrap();
    session
        .login(UserType::ContextSpecific, Some(&pin(USER_PIN)))
        .expect("context-specific login");
    session.sign_update(b"data").unwrap();
    let signature = session.sign_final().unwrap();
    session
        .verify(&Mechanism::Sha256RsaPkcs, public, b"data", &signature)
        .expect("a good signature");
    // The next operation needs the PIN again.
    assert_rv!(
        session.sign(&Mechanism::Sha256RsaPkcs, private, b"data"),
        RvError::UserNotLoggedIn
    );
    // With no operation waiting for it, the context-specific login is refused.
    assert_rv!(
        session.login(UserType::ContextSpecific, Some(&pin(USER_PIN))),
        RvError::OperationNotInitialized
    );
}

#[test]
fn one_context_specific_login_authorises_one_operation_only() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let (_public, signing) = always_authenticate_pair(&session);
    let (public, decrypting) = session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::ModulusBits(2048.into()),
                Attribute::Encrypt(true),
            ],
            &[
                Attribute::Private(true),
                Attribute::Decrypt(true),
                Attribute::AlwaysAuthenticate(true),
            ],
        )
        .unwrap();
    let ciphertext = session.encrypt(&oaep_sha256(), public, b"secret").unwrap();
    // Both operations wait; one PIN entry must not unlock both.
    session
        .sign_init(&Mechanism::Sha256RsaPkcs, signing)
        .unwrap();
    session.decrypt_init(&oaep_sha256(), decrypting).unwrap();
    session
        .login(UserType::ContextSpecific, Some(&pin(USER_PIN)))
        .unwrap();
    session.sign_update(b"data").unwrap();
    session
        .sign_final()
        .expect("the login authorised the signature");
    assert_rv!(
        session.decrypt_update(&ciphertext),
        RvError::UserNotLoggedIn,
        "the same login must not authorise the decryption too"
    );
}

#[test]
fn separation_of_duties_refuses_keys_that_could_wrap_and_decrypt() {
    let env = TestEnv::new();
    let text = std::fs::read_to_string(&env.conf_path).unwrap();
    env.write_config(&format!("separation_of_duties = true\n{text}"));
    let (_ctx, _slot, session) = ready_token(&env);
    let aes = |extra: &[Attribute]| {
        let mut t = vec![Attribute::Token(false), Attribute::ValueLen(32.into())];
        t.extend_from_slice(extra);
        session.generate_key(&Mechanism::AesKeyGen, &t)
    };
    assert_rv!(
        aes(&[Attribute::Wrap(true), Attribute::Decrypt(true)]),
        RvError::TemplateInconsistent
    );
    assert_rv!(
        aes(&[
            Attribute::Wrap(false),
            Attribute::Decrypt(false),
            Attribute::Unwrap(true),
            Attribute::Encrypt(true)
        ]),
        RvError::TemplateInconsistent
    );
    let wrapper = aes(&[
        Attribute::Wrap(true),
        Attribute::Unwrap(true),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
    ])
    .expect("a key that only wraps");
    assert_rv!(
        session.update_attributes(wrapper, &[Attribute::Decrypt(true)]),
        RvError::ActionProhibited
    );
    assert_eq!(read_bool(&session, wrapper, CKA_DECRYPT), Some(false));
}

/// An AES key of the caller's value with exactly the duty flags given on (the others
/// off), made by `C_CreateObject`.
fn known_aes(
    session: &Session,
    value: &[u8],
    on: &[AttributeType],
) -> cryptoki::error::Result<ObjectHandle> {
    let flag = |ty: AttributeType| on.contains(&ty);
    session.create_object(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(false),
        Attribute::Wrap(flag(AttributeType::Wrap)),
        Attribute::Unwrap(flag(AttributeType::Unwrap)),
        Attribute::Encrypt(flag(AttributeType::Encrypt)),
        Attribute::Decrypt(flag(AttributeType::Decrypt)),
        Attribute::Value(value.to_vec()),
    ])
}

/// Separation of duties does not stop at one object: a wrapping key whose value the
/// caller chose is as good as one that decrypts, since a second object of the same value
/// (or the caller, outside) decrypts what it wrapped. Under the policy only a key
/// generated on the token and never extractable wraps.
#[test]
fn separation_of_duties_refuses_a_wrapping_key_of_known_value() {
    let env = TestEnv::new();
    let (_ctx, session) = separated_token(&env);
    let target = extractable_victim(&session, false);
    let value = [0x11u8; 16];
    match known_aes(&session, &value, &[AttributeType::Wrap]) {
        Err(cryptoki::error::Error::Pkcs11(RvError::TemplateInconsistent, _)) => {}
        Ok(wrapper) => {
            let wrapped = session
                .wrap_key(&Mechanism::AesEcb, wrapper, target)
                .unwrap();
            let twin = known_aes(&session, &value, &[AttributeType::Decrypt]).unwrap();
            let plain = session.decrypt(&Mechanism::AesEcb, twin, &wrapped).unwrap();
            panic!(
                "a wrap-only key of the caller's value was made; its twin decrypted the \
                 wrapped victim to its value: {}",
                plain == VICTIM
            );
        }
        Err(e) => panic!("C_CreateObject: {e}"),
    }
    // A key of known value that does not wrap is still allowed.
    known_aes(&session, &value, &[AttributeType::Decrypt]).expect("a decrypt-only key");
}

/// A wrapping key that is extractable can be wrapped out and unwrapped again as a key
/// that decrypts: the same bits, two objects, both duties. Under the policy a key that
/// wraps is never extractable.
#[test]
fn separation_of_duties_refuses_an_extractable_wrapping_key() {
    let env = TestEnv::new();
    let (_ctx, session) = separated_token(&env);
    let aes = |extractable: bool, on: &[AttributeType]| {
        let flag = |ty: AttributeType| on.contains(&ty);
        session.generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(16.into()),
                Attribute::Extractable(extractable),
                Attribute::Wrap(flag(AttributeType::Wrap)),
                Attribute::Unwrap(flag(AttributeType::Unwrap)),
                Attribute::Encrypt(false),
                Attribute::Decrypt(false),
            ],
        )
    };
    assert_rv!(
        aes(true, &[AttributeType::Wrap]),
        RvError::TemplateInconsistent,
        "an extractable key that wraps"
    );
    aes(false, &[AttributeType::Wrap, AttributeType::Unwrap])
        .expect("a generated, unextractable key wraps and unwraps");
}

/// A public key object carries only public values, so anyone can make one for any
/// private key: made with `CKA_WRAP` for a private half that decrypts, it wraps what that
/// half then decrypts. Under the policy only a generated pair's public half wraps, and
/// its private half is judged with it.
#[test]
fn separation_of_duties_refuses_a_wrapping_public_key_made_from_a_pairs_values() {
    let env = TestEnv::new();
    let (_ctx, session) = separated_token(&env);
    let target = extractable_victim(&session, false);
    let (public, private) = session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::ModulusBits(2048.into()),
                Attribute::Wrap(false),
                Attribute::Encrypt(true),
            ],
            &[
                Attribute::Token(false),
                Attribute::Decrypt(true),
                Attribute::Unwrap(false),
            ],
        )
        .expect("a pair that encrypts and decrypts");
    let values = session
        .get_attributes(
            public,
            &[AttributeType::Modulus, AttributeType::PublicExponent],
        )
        .unwrap();
    let mut template = vec![
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::RSA),
        Attribute::Token(false),
        Attribute::Wrap(true),
        Attribute::Encrypt(false),
    ];
    template.extend(values);
    match session.create_object(&template) {
        Err(cryptoki::error::Error::Pkcs11(RvError::TemplateInconsistent, _)) => {}
        Ok(copy) => {
            let wrapped = session.wrap_key(&oaep_sha256(), copy, target).unwrap();
            let plain = session.decrypt(&oaep_sha256(), private, &wrapped).unwrap();
            panic!(
                "a wrapping public key was made from a pair's values; the pair's private \
                 half decrypted the wrapped victim to its value: {}",
                plain == VICTIM
            );
        }
        Err(e) => panic!("C_CreateObject: {e}"),
    }
    // An EC public key, which no mechanism here wraps or encrypts with, is still made
    // with the default flags (`CKA_WRAP` true by default, and inert).
    let (ec_public, _) = session
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::EcParams(hex(EC_PARAMS_P256)),
            ],
            &[Attribute::Token(false)],
        )
        .unwrap();
    let mut ec_template = vec![
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::EC),
        Attribute::Token(false),
    ];
    ec_template.extend(
        session
            .get_attributes(
                ec_public,
                &[AttributeType::EcParams, AttributeType::EcPoint],
            )
            .unwrap(),
    );
    session
        .create_object(&ec_template)
        .expect("an EC public key with the default flags");
}

/// The policy restrains the user, who chooses the configuration of their own processes
/// (`KMSHSM_CONF`): a token made without it, once a process configured with it has logged
/// in, stays under it in a later process whose configuration leaves it out (review 16b
/// showed a token made under the policy; this is the older token the first login marks).
#[test]
fn separation_of_duties_once_on_stays_on_for_the_token() {
    let env = TestEnv::new();
    let plain = std::fs::read_to_string(&env.conf_path).unwrap();
    let wrap_and_decrypt = |session: &Session| {
        session.generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(16.into()),
                Attribute::Wrap(true),
                Attribute::Decrypt(true),
            ],
        )
    };
    {
        let (ctx, _slot, session) = ready_token(&env);
        wrap_and_decrypt(&session).expect("a token made without the policy allows it");
        drop(session);
        ctx.finalize().unwrap();
    }
    env.write_config(&format!("separation_of_duties = true\n{plain}"));
    {
        let ctx = env.load();
        let session = user_session(&ctx, slot_of_token(&ctx, TOKEN_LABEL));
        assert_rv!(wrap_and_decrypt(&session), RvError::TemplateInconsistent);
        drop(session);
        ctx.finalize().unwrap();
    }
    env.write_config(&plain);
    let ctx = env.load();
    let session = user_session(&ctx, slot_of_token(&ctx, TOKEN_LABEL));
    assert_rv!(
        wrap_and_decrypt(&session),
        RvError::TemplateInconsistent,
        "a process whose configuration leaves the policy out must not lift it"
    );
}

#[test]
fn without_the_policy_a_wrap_and_decrypt_key_is_allowed_as_pkcs11_says() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(32.into()),
                Attribute::Wrap(true),
                Attribute::Decrypt(true),
            ],
        )
        .expect("the default keeps PKCS#11's behaviour");
}
