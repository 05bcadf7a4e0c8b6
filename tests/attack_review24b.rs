//! An attacker's review (branch attack24b) of the object interface's side channels: what
//! searching (`C_FindObjects*`), reading (`C_GetAttributeValue`, `C_GetObjectSize`),
//! digesting (`C_DigestKey`), copying and changing (`C_CopyObject`,
//! `C_SetAttributeValue`), wrapping and deriving tell a caller about a sensitive or
//! unextractable key's value, or about a private object to a caller not logged in.
//!
//! Defects, `DEFECT` in their comments, each with a test failing on the reviewed commit:
//!
//! 1. `C_GetObjectSize` of a sensitive, unextractable RSA private key is the length of its
//!    stored record (`Object::stored_size`, src/object/mod.rs), and the module keeps the
//!    private components as big-endian integers without leading zeros (`magnitude` in
//!    src/crypto/rsa/mod.rs for unwrapped and imported keys, `to_be_bytes` in
//!    src/crypto/rsa/keygen.rs for generated ones). So the size is one byte smaller for
//!    each of d, d mod (p-1), d mod (q-1) and q^-1 mod p that happens to begin with a zero
//!    byte: a function of the secret, which two keys of one modulus length and one
//!    template tell apart (a few keys in a hundred). PKCS#11 has an answer for a size
//!    the token will not give (`CKR_INFORMATION_SENSITIVE`, or a size that depends on
//!    public values only).
//! 2. The public half of an import wrapping pair is a public object (`CKA_PRIVATE` false,
//!    src/token/kms/import.rs) carrying `CKA_KMSHSM_IMPORT_TARGET` and the label
//!    `import:<KeyId>`. A caller without login therefore finds, by an empty search, the
//!    KeyId of the owner's private (hidden) secret key, that it is of origin EXTERNAL and
//!    that material for it is expected: exactly what docs/security.md says a caller
//!    without login may not learn ("Learn whether a hidden key exists, its origin and its
//!    state, by asking for its import parameters without login": refused). The check
//!    before the look-up in GetParametersForImport hides nothing once a pair exists.
//!    (tests/attacks_import_pair.rs expects the public half to be found by that label
//!    without login, for its rule against planted keys; a fix has to settle both.)
//!
//! Both fixed in the commit after this file's: `Object::stored_size` counts each secret
//! for a length the public values decide (the modulus's, `CKA_VALUE_LEN`, the curve's
//! field); the public half of an import pair is as private as its target.
//!
//! The other tests are "PASSING (coverage, no defect)": attacks that held.
//!
//! Run with `cargo nextest run --test attack_review24b` (after `cargo build --lib --bins`).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::kms::*;
use common::mech::*;
use common::raw::{result, RawAttr};
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;

/// A call's return code: `Ok(())` for CKR_OK.
fn answer<T>(r: cryptoki::error::Result<T>) -> Result<(), RvError> {
    match r {
        Ok(_) => Ok(()),
        Err(cryptoki::error::Error::Pkcs11(rv, _)) => Err(rv),
        Err(e) => panic!("not a PKCS#11 error: {e}"),
    }
}

/// A session AES key of `value` with the extra attributes.
fn aes_key(session: &Session, value: &[u8], extra: &[Attribute]) -> ObjectHandle {
    let mut template = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Value(value.to_vec()),
        Attribute::Encrypt(true),
    ];
    if !extra.iter().any(|a| matches!(a, Attribute::Token(_))) {
        template.push(Attribute::Token(false));
    }
    template.extend_from_slice(extra);
    session.create_object(&template).unwrap()
}

fn find(session: &Session, template: &[Attribute]) -> Vec<ObjectHandle> {
    session.find_objects(template).unwrap()
}

/// An RSA-2048 key made by openssl (the system's library, not the module).
fn openssl_rsa() -> openssl::rsa::Rsa<openssl::pkey::Private> {
    openssl::rsa::Rsa::generate(2048).unwrap()
}

/// The private-key template of an RSA key holding `rsa`'s values, with `extra`.
fn rsa_private_template(
    rsa: &openssl::rsa::Rsa<openssl::pkey::Private>,
    extra: &[Attribute],
) -> Vec<Attribute> {
    let mut template = vec![
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::RSA),
        Attribute::Token(false),
        Attribute::Sign(true),
        Attribute::Modulus(rsa.n().to_vec()),
        Attribute::PublicExponent(rsa.e().to_vec()),
        Attribute::PrivateExponent(rsa.d().to_vec()),
        Attribute::Prime1(rsa.p().unwrap().to_vec()),
        Attribute::Prime2(rsa.q().unwrap().to_vec()),
        Attribute::Exponent1(rsa.dmp1().unwrap().to_vec()),
        Attribute::Exponent2(rsa.dmq1().unwrap().to_vec()),
        Attribute::Coefficient(rsa.iqmp().unwrap().to_vec()),
    ];
    template.extend_from_slice(extra);
    template
}

// ---------------------------------------------------------------------------------------
// C_FindObjects: matching on secret values and on private objects
// ---------------------------------------------------------------------------------------

/// PASSING (coverage, no defect). A search whose template holds the right value of a
/// sensitive or unextractable key (`CKA_VALUE` of a secret key; `CKA_PRIVATE_EXPONENT`,
/// `CKA_PRIME_1`, `CKA_COEFFICIENT` of an RSA private key) finds nothing, alone or beside
/// attributes that match: a match would confirm the guess. The same search finds a
/// readable key of the same value (so the search does compare, and the test can fail).
#[test]
fn a_search_by_the_right_secret_value_of_a_guarded_key_finds_nothing() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let value = hex("5f1e2d3c4b5a69788796a5b4c3d2e1f0");
    let sensitive = aes_key(
        &session,
        &value,
        &[
            Attribute::Sensitive(true),
            Attribute::Extractable(true),
            Attribute::Label(b"s".to_vec()),
        ],
    );
    let unextractable = aes_key(
        &session,
        &value,
        &[
            Attribute::Sensitive(false),
            Attribute::Extractable(false),
            Attribute::Label(b"u".to_vec()),
        ],
    );
    let readable = aes_key(
        &session,
        &value,
        &[
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
            Attribute::Label(b"r".to_vec()),
        ],
    );
    for (label, key) in [("s", sensitive), ("u", unextractable)] {
        for template in [
            vec![Attribute::Value(value.clone())],
            vec![
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Value(value.clone()),
            ],
            vec![
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Value(value.clone()),
            ],
        ] {
            assert!(
                !find(&session, &template).contains(&key),
                "the key labelled {label} was found by its own value ({} attributes)",
                template.len()
            );
        }
    }
    assert_eq!(
        find(&session, &[Attribute::Value(value.clone())]),
        vec![readable],
        "the readable key of the same value, found by it"
    );

    let rsa = openssl_rsa();
    let guarded = session
        .create_object(&rsa_private_template(
            &rsa,
            &[
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Label(b"rsa-guarded".to_vec()),
            ],
        ))
        .unwrap();
    let open = session
        .create_object(&rsa_private_template(
            &rsa,
            &[
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
                Attribute::Label(b"rsa-open".to_vec()),
            ],
        ))
        .unwrap();
    for (what, attribute) in [
        (
            "CKA_PRIVATE_EXPONENT",
            Attribute::PrivateExponent(rsa.d().to_vec()),
        ),
        ("CKA_PRIME_1", Attribute::Prime1(rsa.p().unwrap().to_vec())),
        (
            "CKA_COEFFICIENT",
            Attribute::Coefficient(rsa.iqmp().unwrap().to_vec()),
        ),
    ] {
        let found = find(
            &session,
            &[Attribute::Class(ObjectClass::PRIVATE_KEY), attribute],
        );
        assert!(
            !found.contains(&guarded),
            "the sensitive RSA key found by its {what}"
        );
        assert!(
            found.contains(&open),
            "the readable RSA key of the same values found by its {what}"
        );
    }
}

/// PASSING (coverage, no defect). After `C_Logout`, no search tells a private object
/// exists: by its label (the index's fast path), label and class, its value, its KMS
/// state, `CKA_PRIVATE` true, or the empty template. Before the logout each finds it.
#[test]
fn private_objects_answer_no_search_without_login() {
    let env = TestEnv::new();
    let (ctx, slot, owner) = ready_token(&env);
    let value = b"private payload".to_vec();
    owner
        .create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Label(b"hidden-data".to_vec()),
            Attribute::Value(value.clone()),
        ])
        .unwrap();
    let key_value = hex("00112233445566778899aabbccddeeff");
    owner
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
            Attribute::Label(b"hidden-key".to_vec()),
            Attribute::Value(key_value.clone()),
        ])
        .unwrap();
    let searches: Vec<(&str, Vec<Attribute>)> = vec![
        (
            "the data label",
            vec![Attribute::Label(b"hidden-data".to_vec())],
        ),
        (
            "the key label",
            vec![Attribute::Label(b"hidden-key".to_vec())],
        ),
        (
            "label and class",
            vec![
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Label(b"hidden-key".to_vec()),
            ],
        ),
        (
            "the data value",
            vec![
                Attribute::Class(ObjectClass::DATA),
                Attribute::Value(value.clone()),
            ],
        ),
        ("the key value", vec![Attribute::Value(key_value.clone())]),
        (
            "the KMS state",
            vec![
                Attribute::Class(ObjectClass::SECRET_KEY),
                vendor_ulong(CKA_KMSHSM_KEY_STATE, STATE_ENABLED),
            ],
        ),
        ("CKA_PRIVATE true", vec![Attribute::Private(true)]),
        ("nothing", vec![]),
    ];
    for (what, template) in &searches {
        assert!(
            !find(&owner, template).is_empty(),
            "the owner's search by {what} finds the private object"
        );
    }
    owner.logout().unwrap();
    let attacker = ctx.open_rw_session(slot).unwrap();
    for (what, template) in &searches {
        assert!(
            find(&attacker, template).is_empty(),
            "a search by {what} without login found a private object"
        );
    }
}

// ---------------------------------------------------------------------------------------
// C_GetAttributeValue and C_GetObjectSize
// ---------------------------------------------------------------------------------------

/// C_GetAttributeValue with one buffer of `capacity` bytes per attribute, each filled
/// with 0xA5 first: the call's code, and per attribute the reported length and the whole
/// buffer as the call left it.
fn get_with_sentinels(
    ck: &Ck,
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    types: &[CK_ATTRIBUTE_TYPE],
    capacity: usize,
) -> common::raw::AttributeReply {
    let mut buffers: Vec<Vec<u8>> = types.iter().map(|_| vec![0xA5u8; capacity]).collect();
    let mut template: Vec<CK_ATTRIBUTE> = types
        .iter()
        .zip(buffers.iter_mut())
        .map(|(ty, buf)| CK_ATTRIBUTE {
            type_: *ty,
            pValue: buf.as_mut_ptr().cast(),
            ulValueLen: capacity as CK_ULONG,
        })
        .collect();
    // SAFETY: every pValue has `capacity` writable bytes, alive for the call.
    let rv = result(unsafe {
        ck.functions().C_GetAttributeValue.unwrap()(
            session,
            object,
            template.as_mut_ptr(),
            template.len() as CK_ULONG,
        )
    });
    let lens: Vec<CK_ULONG> = template.iter().map(|a| a.ulValueLen).collect();
    (rv, lens.into_iter().zip(buffers).collect())
}

/// PASSING (coverage, no defect). A template holding a sensitive attribute among readable
/// ones (§5.7: `CKR_ATTRIBUTE_SENSITIVE`, that attribute's length
/// `CK_UNAVAILABLE_INFORMATION`, the others filled): the sensitive attribute's buffer is
/// left exactly as the caller filled it (no byte of the secret, no partial copy), for a
/// secret key's `CKA_VALUE` and an RSA key's private components, with room for the whole
/// value; a length query tells no length either.
#[test]
fn a_sensitive_attribute_among_readable_ones_leaves_its_buffer_untouched() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let s = session.handle();
    let value = hex("0f0e0d0c0b0a09080706050403020100");
    let key = aes_key(
        &session,
        &value,
        &[
            Attribute::Sensitive(true),
            Attribute::Label(b"mixed".to_vec()),
        ],
    );
    let (rv, out) = get_with_sentinels(
        &ck,
        s,
        key.handle(),
        &[CKA_LABEL, CKA_VALUE, CKA_VALUE_LEN],
        64,
    );
    assert_eq!(rv, Err(RvError::AttributeSensitive));
    assert_eq!(&out[0].1[..out[0].0 as usize], b"mixed");
    assert_eq!(out[1].0, CK_UNAVAILABLE_INFORMATION);
    assert!(
        out[1].1.iter().all(|b| *b == 0xA5),
        "the sensitive CKA_VALUE's buffer was written to"
    );
    assert_eq!(out[2].0 as usize, std::mem::size_of::<CK_ULONG>());
    // A length query (NULL pValue) of the sensitive attribute.
    let mut query = [CK_ATTRIBUTE {
        type_: CKA_VALUE,
        pValue: std::ptr::null_mut(),
        ulValueLen: 0,
    }];
    // SAFETY: one attribute with a NULL pValue: a length query.
    let rv = result(unsafe {
        ck.functions().C_GetAttributeValue.unwrap()(s, key.handle(), query.as_mut_ptr(), 1)
    });
    assert_eq!(rv, Err(RvError::AttributeSensitive));
    assert_eq!(query[0].ulValueLen, CK_UNAVAILABLE_INFORMATION);

    let rsa = openssl_rsa();
    let private = session
        .create_object(&rsa_private_template(
            &rsa,
            &[Attribute::Sensitive(true), Attribute::Extractable(false)],
        ))
        .unwrap();
    let secret = [
        CKA_PRIVATE_EXPONENT,
        CKA_PRIME_1,
        CKA_PRIME_2,
        CKA_EXPONENT_1,
        CKA_EXPONENT_2,
        CKA_COEFFICIENT,
    ];
    let mut types = vec![CKA_MODULUS];
    types.extend(secret);
    let (rv, out) = get_with_sentinels(&ck, s, private.handle(), &types, 512);
    assert_eq!(rv, Err(RvError::AttributeSensitive));
    assert_eq!(&out[0].1[..out[0].0 as usize], &rsa.n().to_vec()[..]);
    for ((len, buffer), ty) in out[1..].iter().zip(secret) {
        assert_eq!(*len, CK_UNAVAILABLE_INFORMATION, "length of {ty:#x}");
        assert!(
            buffer.iter().all(|b| *b == 0xA5),
            "the buffer of {ty:#x} was written to"
        );
    }
}

/// C_GetObjectSize through the C ABI.
fn object_size(ck: &Ck, session: CK_SESSION_HANDLE, object: ObjectHandle) -> CK_ULONG {
    let mut size: CK_ULONG = 0;
    // SAFETY: one writable CK_ULONG.
    let rv =
        unsafe { ck.functions().C_GetObjectSize.unwrap()(session, object.handle(), &mut size) };
    assert_eq!(rv, CKR_OK, "C_GetObjectSize");
    size
}

/// Whether every private component of `rsa` has its full length (d as long as n; the CRT
/// values as long as p): the key whose size is the baseline.
fn components_full(rsa: &openssl::rsa::Rsa<openssl::pkey::Private>) -> bool {
    let half = rsa.p().unwrap().num_bytes();
    rsa.d().num_bytes() == rsa.n().num_bytes()
        && [rsa.dmp1(), rsa.dmq1(), rsa.iqmp()]
            .iter()
            .all(|c| c.unwrap().num_bytes() == half)
}

/// DEFECT 1. `C_GetObjectSize` of a sensitive, unextractable RSA private key depends on
/// its private components: the module stores d, dp, dq and qinv without leading zero
/// bytes (`magnitude`, src/crypto/rsa/mod.rs; `to_be_bytes` in keygen.rs for generated
/// keys), and `Object::stored_size` (src/object/mod.rs) counts their bytes. The attack:
/// two RSA-2048 keys, brought in by the same unwrap (`CKM_AES_KEY_WRAP_PAD` of their
/// PKCS#8) with the same template, one whose components all have their full length and
/// one where one of them begins with a zero byte (openssl makes one in a few dozen);
/// their sizes differ, so the size tells whether a secret component is below 2^(8(l-1)).
///
/// Expected: the size of a sensitive key is a function of public values only (or
/// `CKR_INFORMATION_SENSITIVE`), so the two answer alike. Observed on
/// the reviewed commit: the second is smaller by a byte per short component.
#[test]
fn the_size_of_a_sensitive_rsa_key_tells_nothing_of_its_private_components() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let work = Work::new(&env);
    let kek_value = work.random(32);
    let kek = aes_key(
        &session,
        &kek_value,
        &[Attribute::Unwrap(true), Attribute::Sensitive(true)],
    );
    let full = std::iter::repeat_with(openssl_rsa)
        .take(200)
        .find(components_full)
        .expect("no RSA key with all its components full in 200");
    let short = std::iter::repeat_with(openssl_rsa)
        .take(2000)
        .find(|k| !components_full(k))
        .expect("no RSA key with a short component in 2000");
    let template = [
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::RSA),
        Attribute::Token(false),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
    ];
    let size_of = |rsa: openssl::rsa::Rsa<openssl::pkey::Private>| {
        let pkcs8 = openssl::pkey::PKey::from_rsa(rsa)
            .unwrap()
            .private_key_to_pkcs8()
            .unwrap();
        let wrapped = work.kwp(&kek_value, &pkcs8);
        let key = session
            .unwrap_key(&Mechanism::AesKeyWrapPad, kek, &wrapped, &template)
            .unwrap();
        object_size(&ck, session.handle(), key)
    };
    let (full_size, short_size) = (size_of(full), size_of(short));
    assert_eq!(
        full_size, short_size,
        "C_GetObjectSize of two sensitive RSA-2048 keys made alike differs ({full_size} and \
         {short_size} bytes): the size tells that a private component of the second begins \
         with a zero byte"
    );
}

/// PASSING (coverage, no defect). A private object's old handle after `C_Logout` answers
/// `C_GetAttributeValue` and `C_GetObjectSize` exactly as a handle that never named
/// anything (`CKR_OBJECT_HANDLE_INVALID`): nothing tells that it named a private object.
#[test]
fn a_private_objects_handle_after_logout_answers_as_a_handle_never_given() {
    let env = TestEnv::new();
    let (ctx, slot, owner) = ready_token(&env);
    let ck = Ck::load();
    let private = aes_key(
        &owner,
        &hex("101112131415161718191a1b1c1d1e1f"),
        &[Attribute::Token(true), Attribute::Private(true)],
    );
    owner.logout().unwrap();
    let attacker = ctx.open_ro_session(slot).unwrap();
    let never = handle(0x7fff_fff1);
    for handle in [private, never] {
        assert_eq!(
            answer(attacker.get_attributes(handle, &[AttributeType::Label])),
            Err(RvError::ObjectHandleInvalid)
        );
        let mut size: CK_ULONG = 0;
        // SAFETY: one writable CK_ULONG.
        let rv = unsafe {
            ck.functions().C_GetObjectSize.unwrap()(attacker.handle(), handle.handle(), &mut size)
        };
        assert_eq!(rv, CKR_OBJECT_HANDLE_INVALID);
    }
}

// ---------------------------------------------------------------------------------------
// The KMS vendor attributes: what a caller without login learns of hidden keys
// ---------------------------------------------------------------------------------------

/// DEFECT 2. GetParametersForImport checks the login before it looks the target up, so
/// that a caller without login cannot tell a hidden key from an absent one
/// (docs/security.md, "Learn whether a hidden key exists, its origin and its state");
/// but the pair it makes has a public half (`CKA_PRIVATE` false, src/token/kms/import.rs)
/// carrying `CKA_KMSHSM_IMPORT_TARGET` = the target's KeyId and the label
/// `import:<KeyId>`. The attack: the owner makes an EXTERNAL AES key (a private secret
/// key: no object of it is visible without login) and its import parameters; a caller
/// without login searches with the empty template and reads the KeyId of the hidden key,
/// that it is EXTERNAL and waits for material, and when the parameters expire.
///
/// Expected: no object visible without login names a private key's KeyId. Observed on
/// the reviewed commit: the public half does, by attribute and by label.
#[test]
fn a_caller_without_login_learns_no_hidden_keys_id_from_its_import_pair() {
    let env = TestEnv::new();
    let (ctx, slot, owner) = ready_token(&env);
    let key = create_external(&owner, Spec::Aes256, "hidden-external");
    let id = key_id(&owner, key);
    let _ = get_params(&owner, &id, WRAP_RSAES_OAEP_SHA_256);
    owner.logout().unwrap();

    let attacker = ctx.open_ro_session(slot).unwrap();
    let mut told = Vec::new();
    for object in find(&attacker, &[]) {
        if read_bytes(&attacker, object, CKA_KMSHSM_IMPORT_TARGET).as_deref() == Some(id.as_bytes())
        {
            told.push("CKA_KMSHSM_IMPORT_TARGET");
        }
        let label = attacker
            .get_attributes(object, &[AttributeType::Label])
            .unwrap();
        if label.iter().any(
            |a| matches!(a, Attribute::Label(l) if l.windows(id.len()).any(|w| w == id.as_bytes())),
        ) {
            told.push("CKA_LABEL");
        }
    }
    assert!(
        told.is_empty(),
        "a session without login reads the hidden key's KeyId from {told:?} of a visible object"
    );
}

// ---------------------------------------------------------------------------------------
// C_DigestKey
// ---------------------------------------------------------------------------------------

/// PASSING (coverage, no defect). `C_DigestKey` of a non-sensitive key (digestible while
/// Enabled: the control) is refused while the key's KMS state forbids its use (Disabled,
/// PendingDeletion), like any use (docs/security.md, "C_DigestKey"); the halves of an
/// import wrapping pair and an EXTERNAL key without material are never digested. Each
/// refused `C_DigestKey` ends the digest (§5.2), so no digest comes out of it.
#[test]
fn digest_key_refuses_keys_whose_state_forbids_use_and_the_import_pair() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let value = hex("202122232425262728292a2b2c2d2e2f");
    let key = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Sensitive(false),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Value(value.clone()),
        ])
        .unwrap();
    let digest_of = |handle: ObjectHandle| -> Result<Vec<u8>, RvError> {
        session.digest_init(&Mechanism::Sha256).unwrap();
        match answer(session.digest_key(handle)) {
            Ok(()) => Ok(session.digest_final().unwrap()),
            Err(e) => {
                assert_eq!(
                    answer(session.digest_final()),
                    Err(RvError::OperationNotInitialized),
                    "a refused C_DigestKey left its digest running"
                );
                Err(e)
            }
        }
    };
    assert!(digest_of(key).is_ok(), "the enabled key is digestible");
    for (state, name) in [
        (STATE_DISABLED, "Disabled"),
        (STATE_PENDING_DELETION, "PendingDeletion"),
    ] {
        set_state(&session, key, state).unwrap();
        assert!(digest_of(key).is_err(), "C_DigestKey of a {name} key");
        set_state(&session, key, STATE_DISABLED).unwrap();
    }
    set_state(&session, key, STATE_ENABLED).unwrap();
    assert!(digest_of(key).is_ok(), "enabled again");

    let external = create_external(&session, Spec::Aes256, "no-material");
    assert!(digest_of(external).is_err(), "a key without material");
    let id = key_id(&session, external);
    let params = get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256);
    for (half, name) in [(params.public, "public"), (params.private, "private")] {
        assert_eq!(
            digest_of(half),
            Err(RvError::KeyIndigestible),
            "the import pair's {name} half"
        );
    }
}

// ---------------------------------------------------------------------------------------
// C_CopyObject, C_SetAttributeValue, C_WrapKey, C_DeriveKey
// ---------------------------------------------------------------------------------------

/// PASSING (coverage, no defect). Neither a copy nor a change takes a key's guard away:
/// `CKA_SENSITIVE` false, `CKA_EXTRACTABLE` true, `CKA_WRAP_WITH_TRUSTED` false, another
/// `CKA_CLASS` or `CKA_KEY_TYPE` (to read the value as a data object's, say) are each
/// `CKR_ATTRIBUTE_READ_ONLY` or refused otherwise, and make nothing. A copy made public
/// (`CKA_PRIVATE` false, allowed by §5.7) is still sensitive to a caller without login.
#[test]
fn a_copy_or_a_change_does_not_unguard_a_key() {
    let env = TestEnv::new();
    let (ctx, slot, session) = ready_token(&env);
    let value = hex("303132333435363738393a3b3c3d3e3f");
    let key = aes_key(
        &session,
        &value,
        &[
            Attribute::Token(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::WrapWithTrusted(true),
            Attribute::Label(b"guarded".to_vec()),
        ],
    );
    let before = find(&session, &[]).len();
    for (what, change) in [
        ("CKA_SENSITIVE false", Attribute::Sensitive(false)),
        ("CKA_EXTRACTABLE true", Attribute::Extractable(true)),
        (
            "CKA_WRAP_WITH_TRUSTED false",
            Attribute::WrapWithTrusted(false),
        ),
        ("CKA_CLASS data", Attribute::Class(ObjectClass::DATA)),
        (
            "CKA_KEY_TYPE generic",
            Attribute::KeyType(KeyType::GENERIC_SECRET),
        ),
    ] {
        assert!(
            session
                .copy_object(key, std::slice::from_ref(&change))
                .is_err(),
            "a copy with {what}"
        );
        assert!(
            session.update_attributes(key, &[change]).is_err(),
            "a change to {what}"
        );
    }
    assert_eq!(
        find(&session, &[]).len(),
        before,
        "a refused copy made something"
    );
    assert!(attribute_bool(&session, key, AttributeType::Sensitive));

    let public_copy = session
        .copy_object(key, &[Attribute::Private(false)])
        .expect("a public copy (storage attributes may change)");
    session.logout().unwrap();
    let attacker = ctx.open_ro_session(slot).unwrap();
    assert!(find(&attacker, &[Attribute::Value(value.clone())]).is_empty());
    assert_eq!(
        answer(attacker.get_attributes(public_copy, &[AttributeType::Value])),
        Ok(())
    );
    assert!(
        attacker
            .get_attributes(public_copy, &[AttributeType::Value])
            .unwrap()
            .is_empty(),
        "the public copy's CKA_VALUE read without login"
    );
}

/// PASSING (coverage, no defect). A key wrapped only under trusted keys
/// (`CKA_WRAP_WITH_TRUSTED`) is not wrapped under an untrusted key, however weak or strong
/// (`CKR_KEY_NOT_WRAPPABLE`), and a key wrapped under itself comes out as ciphertext only
/// (the wrap is not the value). The control: the same target without the attribute wraps.
#[test]
fn a_trusted_only_key_is_not_wrapped_under_an_untrusted_key() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let wrapper = aes_key(
        &session,
        &hex("404142434445464748494a4b4c4d4e4f"),
        &[Attribute::Wrap(true)],
    );
    let value = hex("505152535455565758595a5b5c5d5e5f");
    let trusted_only = aes_key(
        &session,
        &value,
        &[
            Attribute::Sensitive(true),
            Attribute::Extractable(true),
            Attribute::WrapWithTrusted(true),
        ],
    );
    let plain = aes_key(
        &session,
        &value,
        &[Attribute::Sensitive(true), Attribute::Extractable(true)],
    );
    for mechanism in [Mechanism::AesKeyWrap, Mechanism::AesEcb] {
        assert_eq!(
            answer(session.wrap_key(&mechanism, wrapper, trusted_only)),
            Err(RvError::KeyNotWrappable),
            "{mechanism:?}"
        );
        assert_eq!(answer(session.wrap_key(&mechanism, wrapper, plain)), Ok(()));
    }
    let itself = aes_key(
        &session,
        &value,
        &[
            Attribute::Sensitive(true),
            Attribute::Extractable(true),
            Attribute::Wrap(true),
        ],
    );
    if let Ok(wrapped) = session.wrap_key(&Mechanism::AesKeyWrap, itself, itself) {
        assert_ne!(wrapped, value);
        assert!(!wrapped.windows(value.len()).any(|w| w == value));
    }
}

/// PASSING (coverage, no defect). The derivations that copy a sensitive key's bits into a
/// new key (`CKM_XOR_BASE_AND_DATA`, `CKM_CONCATENATE_BASE_AND_DATA`) make a sensitive key,
/// whatever the template asks (§2.43): its value is not read, nor found by a search.
#[test]
fn a_derived_copy_of_a_sensitive_key_is_sensitive_whatever_the_template_asks() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let value = hex("606162636465666768696a6b6c6d6e6f");
    let base = aes_key(
        &session,
        &value,
        &[
            Attribute::Sensitive(true),
            Attribute::Extractable(true),
            Attribute::Derive(true),
        ],
    );
    let template = generic_template(
        Some(16),
        vec![
            RawAttr::bool(CKA_SENSITIVE, false),
            RawAttr::bool(CKA_EXTRACTABLE, true),
        ],
    );
    let zeros = vec![0u8; 16];
    let xor = RawMech::structure(
        CKM_XOR_BASE_AND_DATA,
        &CK_KEY_DERIVATION_STRING_DATA {
            pData: zeros.as_ptr() as *mut u8,
            ulLen: zeros.len() as CK_ULONG,
        },
        vec![zeros.clone()],
    );
    let concatenate = RawMech::structure(
        CKM_CONCATENATE_BASE_AND_DATA,
        &CK_KEY_DERIVATION_STRING_DATA {
            pData: std::ptr::null_mut(),
            ulLen: 0,
        },
        Vec::new(),
    );
    let ck = Ck::load();
    for (name, mech) in [("XOR", xor), ("CONCATENATE", concatenate)] {
        let derived = ck
            .derive(session.handle(), &mech, base.handle(), &template)
            .unwrap_or_else(|e| panic!("{name}: the copying derivation: {e:?}"));
        let derived = handle(derived);
        assert!(
            attribute_bool(&session, derived, AttributeType::Sensitive),
            "{name}: the copy is not sensitive"
        );
        assert!(
            session
                .get_attributes(derived, &[AttributeType::Value])
                .unwrap()
                .is_empty(),
            "{name}: the copy's value read"
        );
        assert!(
            !find(&session, &[Attribute::Value(value.clone())]).contains(&derived),
            "{name}: the copy found by the base key's value"
        );
    }
}

/// PASSING (coverage, no defect). `C_SignRecoverInit` and `C_VerifyRecoverInit` are not
/// offered (`CKR_FUNCTION_NOT_SUPPORTED`), so no recover operation uses a key past its
/// `CKA_SIGN_RECOVER`/`CKA_VERIFY_RECOVER`.
#[test]
fn sign_recover_and_verify_recover_are_not_offered() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let key = aes_key(
        &session,
        &hex("707172737475767778797a7b7c7d7e7f"),
        &[Attribute::Sign(true), Attribute::Verify(true)],
    );
    let mut mech = CK_MECHANISM {
        mechanism: CKM_SHA256_HMAC,
        pParameter: std::ptr::null_mut(),
        ulParameterLen: 0,
    };
    // SAFETY: plain mechanism without parameter, alive for the call.
    let sign = unsafe {
        ck.functions().C_SignRecoverInit.unwrap()(session.handle(), &mut mech, key.handle())
    };
    // SAFETY: as above.
    let verify = unsafe {
        ck.functions().C_VerifyRecoverInit.unwrap()(session.handle(), &mut mech, key.handle())
    };
    assert_eq!(
        (sign, verify),
        (CKR_FUNCTION_NOT_SUPPORTED, CKR_FUNCTION_NOT_SUPPORTED)
    );
}
