//! A thirteenth attacker's review: each test reproduces one defect found by reading the
//! code, asserts the answer the specification (or docs/security.md) requires, and fails
//! against the module as it was reviewed (baa53cf). Its doc comment says what is wrong.
//! Run with `cargo nextest run --test attack_review13`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::*;
use common::raw::{Raw, RawAttr};
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;

fn handle_of(raw: CK_OBJECT_HANDLE) -> ObjectHandle {
    handle(raw)
}

fn answer<T>(r: cryptoki::error::Result<T>) -> Result<T, RvError> {
    r.map_err(|e| match e {
        cryptoki::error::Error::Pkcs11(rv, _) => rv,
        other => panic!("not a PKCS#11 answer: {other}"),
    })
}

// ---------------------------------------------------------------------------------------
// C_DeriveKey: the second key's CKA_DERIVE_TEMPLATE
// ---------------------------------------------------------------------------------------

/// Defect: `CKA_DERIVE_TEMPLATE` is applied only to keys derived with the template's key
/// as the *base* key (`token/derive.rs`, `base_object.value(CKA_DERIVE_TEMPLATE)`). A key
/// named as `CKM_CONCATENATE_BASE_AND_KEY`'s second key is read, and its bits copied into
/// the derived key, but its derive template is never looked at.
///
/// PKCS#11 3.0 §4.9 (and 3.2 the same): `CKA_DERIVE_TEMPLATE` is "the attribute template
/// to match against any keys derived using this key"; a concatenation with the key as
/// the second key is a key derived using it (§2.43.1: the derived key's value *is* the
/// two keys' values). docs/security.md says a key named inside a parameter "is
/// authorised for derivation exactly as the base key", and offers the derive template as
/// the way "to bound" what `CKA_DERIVE` gives away.
///
/// The attack: the owner gives a sensitive AES key `CKA_DERIVE` with a derive template
/// that forbids decryption and further derivation. Any user of the session concatenates
/// a throw-away key of its own with the victim as second key (template: derive, no
/// decrypt restriction), then extracts the victim's 16 bytes (`CKM_EXTRACT_KEY_FROM_KEY`)
/// into an AES key with `CKA_DECRYPT`, and decrypts what the victim encrypted. Expected:
/// the concatenation is refused with `CKR_TEMPLATE_INCONSISTENT`, as the same template
/// with the victim as base key is. Actual: `CKR_OK`, and the copy decrypts.
#[test]
fn the_second_keys_derive_template_binds_a_concatenation() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let f = Raw::load();
    let victim_value = vec![0x3C; 16];
    let victim = f
        .create_with_nested(
            session.handle(),
            &[
                RawAttr::ulong(CKA_CLASS, CKO_SECRET_KEY),
                RawAttr::ulong(CKA_KEY_TYPE, CKK_AES),
                RawAttr::bool(CKA_TOKEN, false),
                RawAttr::bool(CKA_SENSITIVE, true),
                RawAttr::bool(CKA_EXTRACTABLE, false),
                RawAttr::bool(CKA_ENCRYPT, true),
                RawAttr::bool(CKA_DECRYPT, false),
                RawAttr::bool(CKA_DERIVE, true),
                RawAttr::new(CKA_VALUE, &victim_value),
            ],
            CKA_DERIVE_TEMPLATE,
            &[
                RawAttr::bool(CKA_DECRYPT, false),
                RawAttr::bool(CKA_DERIVE, false),
            ],
        )
        .map(handle_of)
        .expect("C_CreateObject(key with a derive template)");
    // The rule works for the victim as base key.
    let wants_more = vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::GENERIC_SECRET),
        Attribute::Token(false),
        Attribute::Derive(true),
        Attribute::Decrypt(true),
    ];
    let data = [0u8; 1];
    let data = cryptoki::mechanism::misc::KeyDerivationStringData::new(&data);
    assert_eq!(
        answer(session.derive_key(
            &Mechanism::ConcatenateBaseAndData(data),
            victim,
            &wants_more
        )),
        Err(RvError::TemplateInconsistent),
        "the derive template holds for the victim as base key"
    );
    // The attacker's own key, and the victim as second key.
    let own = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Derive(true),
            Attribute::Value(vec![0x11; 16]),
        ])
        .unwrap();
    let joined =
        answer(session.derive_key(&Mechanism::ConcatenateBaseAndKey(victim), own, &wants_more));
    let Ok(joined) = joined else {
        assert_eq!(joined.err(), Some(RvError::TemplateInconsistent));
        return;
    };
    // The escape, shown to the end: the victim's bits, extracted into a decrypting key.
    let ck = Ck::load();
    let start: CK_ULONG = 128;
    let copy = ck
        .derive(
            session.handle(),
            &RawMech::structure(CKM_EXTRACT_KEY_FROM_KEY, &start, vec![]),
            joined.handle(),
            &[
                RawAttr::ulong(CKA_CLASS, CKO_SECRET_KEY),
                RawAttr::ulong(CKA_KEY_TYPE, CKK_AES),
                RawAttr::ulong(CKA_VALUE_LEN, 16),
                RawAttr::bool(CKA_TOKEN, false),
                RawAttr::bool(CKA_DECRYPT, true),
            ],
        )
        .map(handle_of);
    let plaintext = b"sixteen byte msg";
    let ciphertext = session
        .encrypt(&Mechanism::AesEcb, victim, plaintext)
        .unwrap();
    let decrypted = copy
        .ok()
        .and_then(|k| session.decrypt(&Mechanism::AesEcb, k, &ciphertext).ok());
    panic!(
        "CKM_CONCATENATE_BASE_AND_KEY ignored the second key's CKA_DERIVE_TEMPLATE \
         (CKR_OK, expected CKR_TEMPLATE_INCONSISTENT); an extracted copy of the victim \
         {} its ciphertext",
        if decrypted.as_deref() == Some(&plaintext[..]) {
            "decrypts"
        } else {
            "was made but does not decrypt"
        }
    );
}

// ---------------------------------------------------------------------------------------
// Handing out the material of a key that may not be used
// ---------------------------------------------------------------------------------------

/// Defect: the KMS state is judged when a key's material is handed out by `C_WrapKey`
/// (`authorise_wrap_target`: "a disabled key, one pending deletion, or one whose
/// material expired is not exported"; `check_kms_state`: "the condition for any use of
/// the key, and for handing its material out"), but not when `C_GetAttributeValue` hands
/// out the same material as `CKA_VALUE` (`Token::attributes` reads the object with no
/// KMS check). For a key that is not sensitive and is extractable — what wrapping needs
/// too — the refusal of the wrap is thus bypassed by reading the value, and the key is
/// re-made Enabled with `C_CreateObject`, which is exactly the attack docs/security.md
/// lists as refused ("Wrap a disabled (or deletion-pending, or expired) key and unwrap
/// it as a new, Enabled key"), without the audited EnableKey / CancelKeyDeletion.
///
/// Expected: while the key may not be used (Disabled, PendingDeletion), its value is
/// withheld like a sensitive one (PKCS#11 3.0 §5.7.5, `CKR_ATTRIBUTE_SENSITIVE`,
/// `ulValueLen` = `CK_UNAVAILABLE_INFORMATION`). Actual: `CKR_OK` with the key's bytes.
#[test]
fn a_key_that_may_not_be_wrapped_does_not_hand_out_its_value_either() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let value = vec![0x6B; 32];
    let target = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Value(value.clone()),
        ])
        .unwrap();
    let wrapper = session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(32.into()),
                Attribute::Wrap(true),
            ],
        )
        .unwrap();
    session
        .wrap_key(&Mechanism::AesKeyWrap, wrapper, target)
        .expect("the wrap of the enabled key");
    let mut leaks = Vec::new();
    for (wanted, name) in [
        (common::kms::STATE_DISABLED, "Disabled"),
        (common::kms::STATE_PENDING_DELETION, "PendingDeletion"),
    ] {
        common::kms::set_state(&session, target, wanted).unwrap();
        // The wrap is refused (what attacks_lifecycle.rs checks)...
        assert!(
            session
                .wrap_key(&Mechanism::AesKeyWrap, wrapper, target)
                .is_err(),
            "the wrap of a {name} key"
        );
        // ... but the same material comes out as CKA_VALUE.
        let read = session.get_attributes(target, &[cryptoki::object::AttributeType::Value]);
        if let Ok(attrs) = &read {
            if attrs.iter().any(|a| *a == Attribute::Value(value.clone())) {
                leaks.push(name);
            }
        }
        common::kms::set_state(&session, target, common::kms::STATE_DISABLED).unwrap();
    }
    assert!(
        leaks.is_empty(),
        "C_GetAttributeValue(CKA_VALUE) handed out the material of a key in state(s) {leaks:?}, \
         whose wrap is refused (expected CKR_ATTRIBUTE_SENSITIVE)"
    );
}

/// The same rule for a search: `C_FindObjects` with the key's `CKA_VALUE` in the template
/// compares only material that could be read, or a disabled key would answer whether a
/// guess is its value. Enabled again, the key is read and found again.
#[test]
fn a_key_that_may_not_be_used_is_not_found_by_its_value_and_is_once_enabled() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let value = vec![0x6C; 32];
    let key = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
            Attribute::Encrypt(true),
            Attribute::Value(value.clone()),
        ])
        .unwrap();
    let by_value = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::Value(value.clone()),
    ];
    let read = |s: &Session| {
        s.get_attributes(key, &[cryptoki::object::AttributeType::Value])
            .unwrap()
    };
    assert_eq!(session.find_objects(&by_value).unwrap(), vec![key]);
    common::kms::set_state(&session, key, common::kms::STATE_DISABLED).unwrap();
    assert!(
        session.find_objects(&by_value).unwrap().is_empty(),
        "a disabled key found by its value"
    );
    assert!(read(&session).is_empty(), "a disabled key's value read");
    common::kms::set_state(&session, key, common::kms::STATE_ENABLED).unwrap();
    assert_eq!(session.find_objects(&by_value).unwrap(), vec![key]);
    assert_eq!(read(&session), vec![Attribute::Value(value)]);
}

// ---------------------------------------------------------------------------------------
// C_DeriveKey: CKM_HKDF_DATA and the base key's CKA_DERIVE_TEMPLATE
// ---------------------------------------------------------------------------------------

/// Defect: `CKM_HKDF_DATA` never looks at the base key's `CKA_DERIVE_TEMPLATE`
/// (`token/derive.rs` returns through `data_template` before `forced` is read). A base
/// key whose derive template says that whatever is derived from it stays sensitive and
/// unextractable gives, through `CKM_HKDF_DATA`, the same HKDF output as a readable
/// `CKO_DATA` object's `CKA_VALUE`, while `CKM_HKDF_DERIVE` of the same output into a
/// readable key is refused.
///
/// PKCS#11 3.0 §4.9: the derive template is "the attribute template to match against any
/// keys derived using this key"; docs/security.md ("What `CKA_DERIVE` gives away") names
/// `CKM_HKDF_DATA` among the oracles and says "To bound it, give the base key a
/// `CKA_DERIVE_TEMPLATE`". A data object cannot carry `CKA_SENSITIVE`/`CKA_EXTRACTABLE`,
/// so it can never match such a template. Expected: `CKM_HKDF_DATA` from a base key
/// with a derive template is refused (`CKR_TEMPLATE_INCONSISTENT`, as the readable key
/// is). Actual: `CKR_OK` and a data object holding the derived bytes.
#[test]
fn hkdf_data_is_bound_by_the_base_keys_derive_template() {
    use cryptoki::mechanism::hkdf::HkdfParams;
    use cryptoki::mechanism::MechanismType;
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let base = hkdf_base(
        &session,
        vec![
            RawAttr::bool(CKA_SENSITIVE, true),
            RawAttr::bool(CKA_EXTRACTABLE, false),
        ],
        &[
            RawAttr::bool(CKA_SENSITIVE, true),
            RawAttr::bool(CKA_EXTRACTABLE, false),
        ],
    );
    let info = b"context".to_vec();
    let params = HkdfParams::new(MechanismType::SHA256, None, Some(&info));
    // The rule holds for keys: HKDF output into a readable key is refused.
    assert_eq!(
        answer(session.derive_key(
            &Mechanism::HkdfDerive(params),
            base,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
                Attribute::Token(false),
                Attribute::ValueLen(32.into()),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
            ],
        )),
        Err(RvError::TemplateInconsistent),
        "the derive template holds for CKM_HKDF_DERIVE"
    );
    // The same output as a data object.
    let data = answer(session.derive_key(
        &Mechanism::HkdfData(params),
        base,
        &[Attribute::Token(false), Attribute::ValueLen(32.into())],
    ));
    let readable = data.as_ref().ok().map(|h| {
        session
            .get_attributes(*h, &[cryptoki::object::AttributeType::Value])
            .ok()
            .and_then(|a| a.into_iter().next())
    });
    assert_eq!(
        data.err(),
        Some(RvError::TemplateInconsistent),
        "CKM_HKDF_DATA ignored the base key's CKA_DERIVE_TEMPLATE (value readable: {})",
        matches!(readable, Some(Some(Attribute::Value(ref v))) if v.len() == 32)
    );
}

/// A session generic-secret key that may derive, with `extra` attributes and the derive
/// template `derive_template`.
fn hkdf_base(session: &Session, extra: Vec<RawAttr>, derive_template: &[RawAttr]) -> ObjectHandle {
    let mut plain = vec![
        RawAttr::ulong(CKA_CLASS, CKO_SECRET_KEY),
        RawAttr::ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET),
        RawAttr::bool(CKA_TOKEN, false),
        RawAttr::bool(CKA_DERIVE, true),
        RawAttr::new(CKA_VALUE, &[0x2E; 32]),
    ];
    plain.extend(extra);
    Raw::load()
        .create_with_nested(
            session.handle(),
            &plain,
            CKA_DERIVE_TEMPLATE,
            derive_template,
        )
        .map(handle_of)
        .expect("C_CreateObject(base key with a derive template)")
}

/// The other side of the rule above: a derive template that names only what a data object
/// has (here `CKA_TOKEN` and `CKA_PRIVATE`) lets `CKM_HKDF_DATA` through and holds the
/// object to it: the template's `CKA_PRIVATE` is the object's, and a template asking
/// otherwise is refused.
#[test]
fn hkdf_data_is_made_under_a_derive_template_naming_only_data_attributes() {
    use cryptoki::mechanism::hkdf::HkdfParams;
    use cryptoki::mechanism::MechanismType;
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let base = hkdf_base(
        &session,
        vec![RawAttr::bool(CKA_PRIVATE, false)],
        &[
            RawAttr::bool(CKA_TOKEN, false),
            RawAttr::bool(CKA_PRIVATE, true),
        ],
    );
    let info = b"context".to_vec();
    let params = HkdfParams::new(MechanismType::SHA256, None, Some(&info));
    let data = answer(session.derive_key(
        &Mechanism::HkdfData(params),
        base,
        &[Attribute::ValueLen(32.into())],
    ))
    .expect("CKM_HKDF_DATA under a template of data attributes");
    let got = session
        .get_attributes(data, &[cryptoki::object::AttributeType::Private])
        .unwrap();
    assert!(
        matches!(got.as_slice(), [Attribute::Private(true)]),
        "the derive template's CKA_PRIVATE is the data object's: {got:?}"
    );
    assert_eq!(
        answer(session.derive_key(
            &Mechanism::HkdfData(params),
            base,
            &[Attribute::ValueLen(32.into()), Attribute::Private(false)],
        ))
        .err(),
        Some(RvError::TemplateInconsistent),
        "a template contradicting the derive template"
    );
}

// ---------------------------------------------------------------------------------------
// CKR_BUFFER_TOO_SMALL: one step's kept output handed out by another
// ---------------------------------------------------------------------------------------

/// Defect: the output an `Update` could not deliver (`CKR_BUFFER_TOO_SMALL`) is kept in
/// the operation (`operation::produce`, `pending`) and handed out by the next output
/// call, whatever function that is. A `C_EncryptFinal` after a short-buffered
/// `C_EncryptUpdate` returns the Update's bytes as its own, answers `CKR_OK` and ends the
/// operation without running the mechanism's final step: with `CKM_AES_CBC_PAD` the
/// padding block is never produced, so the caller holds a "complete" ciphertext that
/// does not decrypt (for a GCM-style mechanism whose Update outputs, the tag would be
/// lost the same way).
///
/// PKCS#11 3.0 §5.2: `CKR_BUFFER_TOO_SMALL` means the call may be made again with a
/// larger buffer; it does not make the output of one function the output of another.
/// Expected: the Final either refuses (the Update's output still waits) or delivers
/// everything the operation still owes — the Update's 32 bytes and the padding block —
/// so that a `CKR_OK` never ends the operation with ciphertext missing. Actual: `CKR_OK`,
/// 32 bytes, and a ciphertext whose decryption fails or loses data.
#[test]
fn a_final_call_does_not_pass_off_an_updates_kept_output_as_the_end() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let f = Raw::load();
    let key = aes_key(&session, &[0x42; 16]);
    let iv = [7u8; 16];
    let plaintext = [0x55u8; 32];
    session
        .encrypt_init(&Mechanism::AesCbcPad(iv), key)
        .unwrap();
    let (rv, needed, _) = f.encrypt_update(session.handle(), &plaintext, 1);
    assert_eq!(
        rv,
        Err(RvError::BufferTooSmall),
        "the update's short buffer"
    );
    assert_eq!(needed, 32);
    let (rv, tail) = f.encrypt_final(session.handle(), 64);
    if rv.is_err() {
        return; // refused: the operation owes nothing it claimed to have delivered
    }
    let whole = session.decrypt(&Mechanism::AesCbcPad(iv), key, &tail).ok();
    assert_eq!(
        whole.as_deref(),
        Some(&plaintext[..]),
        "C_EncryptFinal answered CKR_OK with {} bytes (the update's kept output) and no \
         padding block: the ciphertext it completed does not decrypt to the plaintext",
        tail.len()
    );
}

/// Found by reading (2026-12-06, after the review): the kept output of a short-buffered
/// call went to the next call of the same function whatever its input, so a "retry"
/// with other plaintext was answered `CKR_OK` with the first plaintext's ciphertext (a
/// caller that stores it has lost its data). The retry must pass the same input
/// (§5.2); other input is `CKR_ARGUMENTS_BAD`, and, as every error of a step, ends the
/// operation (§5.2; the kept output goes with it), so no later call is handed it either.
#[test]
fn a_retry_with_other_input_is_not_handed_the_first_inputs_output() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let f = Raw::load();
    let key = aes_key(&session, &[0x42; 16]);
    let iv = [7u8; 16];
    let first = [0x55u8; 32];
    let other = [0x66u8; 32];
    for capacity in [0, 64] {
        session
            .encrypt_init(&Mechanism::AesCbcPad(iv), key)
            .unwrap();
        let (rv, needed, _) = f.encrypt_update(session.handle(), &first, 1);
        assert_eq!(rv, Err(RvError::BufferTooSmall));
        assert_eq!(needed, 32);
        let (rv, _, _) = f.encrypt_update(session.handle(), &other, capacity);
        assert_eq!(
            rv,
            Err(RvError::ArgumentsBad),
            "a retry with other input (capacity {capacity})"
        );
        for input in [&first, &other] {
            let (rv, _, _) = f.encrypt_update(session.handle(), input, 64);
            assert_eq!(
                rv,
                Err(RvError::OperationNotInitialized),
                "the refusal ended the operation (capacity {capacity})"
            );
        }
    }
    // The session encrypts again from a new init, and the result is the plaintext's.
    let again = session
        .encrypt(&Mechanism::AesCbcPad(iv), key, &first)
        .unwrap();
    let whole = session
        .decrypt(&Mechanism::AesCbcPad(iv), key, &again)
        .unwrap();
    assert_eq!(whole, first);
}
