//! An attacker's review (branch attack17b) of time and the KMS lifecycle: the material
//! expiry and the import token's 24 hours, judged against the module's clock (moved
//! with `KMSHSM_TEST_CLOCK_OFFSET`, which debug builds read at every clock read). Each
//! test reproduces one defect, asserts what the project's documents promise, and fails
//! against the module as it was reviewed. Its doc comment says what is wrong.
//! Run with `cargo nextest run --test attack_review17b` (after `cargo build --lib`).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::kms::*;
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::ekdf::AesCbcDeriveParams;
use cryptoki::mechanism::misc::ExtractParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

/// An AES-256 token key made from `material` by `C_CreateObject` (plaintext import: an
/// Enabled EXTERNAL key without a KeyUsage, so its PKCS#11 flags are the template's),
/// sensitive, never to leave the token, and allowed to derive.
fn plaintext_aes_key(session: &Session, material: &[u8]) -> ObjectHandle {
    session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Derive(true),
            Attribute::Label(b"expiring-plaintext-key".to_vec()),
            Attribute::Value(material.to_vec()),
        ])
        .expect("C_CreateObject of an AES-256 key with its value")
}

/// Defect: the material expiry binds the key object but not its bits. An EXTERNAL key
/// whose material was imported with `CKA_KMSHSM_MATERIAL_EXPIRY` is unusable once the
/// expiry passes, but before that `C_DeriveKey` with an exposing mechanism
/// (`CKM_EXTRACT_KEY_FROM_KEY` of all its bits from bit 0) makes a bit-for-bit copy of the
/// material as a new key that has no expiry at all (`token/derive.rs` gives every derived
/// key a fresh identity through `with_kms_identity(.., Origin::Kms, ..)`: expiry 0, origin
/// KMS, Enabled). After the expiry, the original is refused with
/// `CKR_KMSHSM_INCORRECT_KEY_STATE` while the copy keeps decrypting everything encrypted
/// under the expired material, for ever, and claims to be a key the module generated.
///
/// Expected (docs/key-model.md: "Only an Enabled key whose material has not expired can
/// be used for anything cryptographic"; "When the material expires ... it is wiped";
/// docs/security.md: properties follow the bits through derivations that expose them —
/// a derived copy is made sensitive if any source is, carries a guarding bound on, and
/// duties "are judged over everything that holds the bits"). The module itself treats a
/// copy of an expiring key as bound by the same expiry: `C_CopyObject` keeps
/// `CKA_KMSHSM_MATERIAL_EXPIRY` on the copy. A derivation that copies the bits must do
/// the same (carry the expiry on, or be refused); the expired material must not be
/// usable through it. Actual: the copy has expiry 0 and works after the expiry.
/// Fixed by refusing every derivation from a key whose material expires.
/// Found by review 18a (tried, not committed there): the same escape through key
/// transport. An extractable key whose material expires, wrapped under a key of the
/// caller's and unwrapped again, comes back as a key without the expiry that keeps
/// working after it. A key whose material expires is not wrapped
/// (`CKR_KEY_NOT_WRAPPABLE`), as it derives nothing.
#[test]
fn a_key_whose_material_expires_is_not_wrapped() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let material = work.material(Spec::Aes256);
    let key = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(true),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Label(b"expiring-extractable-key".to_vec()),
            Attribute::Value(material.bytes.to_vec()),
        ])
        .expect("C_CreateObject of an extractable AES-256 key with its value");
    let kek = session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::ValueLen(32.into()),
                Attribute::Wrap(true),
                Attribute::Unwrap(true),
            ],
        )
        .expect("a wrapping key");
    // Wrappable while its material does not expire.
    session
        .wrap_key(&Mechanism::AesKeyWrap, kek, key)
        .expect("C_WrapKey of a key whose material never expires");
    import_with(
        &session,
        &work,
        key,
        WRAP_RSAES_OAEP_SHA_256,
        &material.bytes,
        Some(system_now() + 100),
    )
    .expect("the same material imported again, with an expiry");
    assert_rv!(
        session.wrap_key(&Mechanism::AesKeyWrap, kek, key),
        RvError::KeyNotWrappable
    );
}

#[test]
fn a_derived_bit_copy_of_expiring_material_outlives_its_expiry() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let material = work.material(Spec::Aes256);
    let key = plaintext_aes_key(&session, &material.bytes);
    assert_eq!(origin(&session, key), ORIGIN_EXTERNAL);
    // ImportKeyMaterial of the same material, now with an expiry 100 seconds ahead.
    let expiry = system_now() + 100;
    import_with(
        &session,
        &work,
        key,
        WRAP_RSAES_OAEP_SHA_256,
        &material.bytes,
        Some(expiry),
    )
    .expect("the same material imported again, with an expiry");
    assert_eq!(
        read_ulong(&session, key, CKA_KMSHSM_MATERIAL_EXPIRY),
        Some(expiry)
    );
    let ciphertext = encrypt_with(&session, Spec::Aes256, key).expect("encrypt before expiry");

    // Before the expiry: the whole key, bit 0 onwards, extracted into a new AES key.
    // Fixed by refusing every derivation from a key whose material expires
    // (CKR_KEY_FUNCTION_NOT_PERMITTED): what it derived would outlive the expiry.
    let params = ExtractParams::new(0);
    let derived = session.derive_key(
        &Mechanism::ExtractKeyFromKey(params),
        key,
        &[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(32.into()),
            Attribute::Token(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
        ],
    );
    assert_rv!(derived, RvError::KeyFunctionNotPermitted);
    // Nor through a derivation that does not expose the bits (a key encrypted under it).
    assert_rv!(
        session.derive_key(
            &Mechanism::AesCbcEncryptData(AesCbcDeriveParams::new([0u8; 16], &[1u8; 32])),
            key,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(32.into()),
            ],
        ),
        RvError::KeyFunctionNotPermitted
    );
    // (For comparison: C_CopyObject keeps the expiry on its copy.)
    let copied = session.copy_object(key, &[]).expect("C_CopyObject");
    assert_eq!(
        read_ulong(&session, copied, CKA_KMSHSM_MATERIAL_EXPIRY),
        Some(expiry),
        "C_CopyObject's copy keeps the material expiry"
    );

    set_clock_offset(200);
    assert_rv!(
        decrypt_with(&session, Spec::Aes256, key, &ciphertext),
        CKR_KMSHSM_INCORRECT_KEY_STATE
    );
    assert_rv!(
        decrypt_with(&session, Spec::Aes256, copied, &ciphertext),
        CKR_KMSHSM_INCORRECT_KEY_STATE
    );
    set_clock_offset(0);
}

/// Defect: an import token is valid for as long as its own expiry field says, judged
/// only as `now < expires_at` (`kms::import::ImportToken::open`), with no bound on how
/// far ahead of the verifying clock that expiry may lie. Import parameters issued while
/// the module's clock ran ahead (a host whose clock is fast, sharing a PostgreSQL token
/// with the others; or the same host before NTP steps its clock back) carry a token, and
/// a wrapping pair (`CKA_KMSHSM_TOKEN_EXPIRY`, which the sweep purges by), that stays
/// valid for the whole skew plus 24 hours on the correct clock: here ten days after the
/// clock was put right, and after 24 hours have passed on that clock.
///
/// Expected (docs/key-model.md, "The rules, each enforced": "the token is valid for 24
/// hours (`CKR_KMSHSM_EXPIRED_IMPORT_TOKEN`)"; GetParametersForImport's
/// `CKA_KMSHSM_TOKEN_EXPIRY` is "24 hours"): no token is accepted, and no wrapping pair
/// kept, more than 24 hours after the verifying clock first could have seen it; a token
/// whose expiry lies more than `TOKEN_LIFETIME` after the verifier's now cannot have been
/// issued at or before that now and must be refused (fail closed), or the validity
/// clamped to 24 hours from the moment it is first seen. Actual: the import succeeds
/// 25 hours (on the correct clock) after the parameters were in hand.
#[test]
fn an_import_token_issued_by_a_fast_clock_outlives_its_24_hours() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let work = Work::new(&env);
    let key = create_external(&session, Spec::Aes256, "issued-by-a-fast-clock");
    let id = key_id(&session, key);
    let material = work.material(Spec::Aes256);

    // The clock runs ten days ahead while the parameters are made...
    let skew: i64 = 10 * 86_400;
    set_clock_offset(skew);
    let params = get_params(&session, &id, WRAP_RSAES_OAEP_SHA_256);
    let token_expiry = read_ulong(&session, params.private, CKA_KMSHSM_TOKEN_EXPIRY).unwrap();
    // ...and is put right (an NTP step, or the call made on a host with a right clock).
    set_clock_offset(0);
    let now = system_now();
    let ahead = token_expiry.saturating_sub(now);
    // 25 hours later, by the right clock: more than 24 hours after anyone could use it.
    set_clock_offset(25 * 3600);
    let wrapped = work.wrap(params.alg, &params.spki, &material.bytes);
    let result = import(&session, &params, &wrapped, None);
    let state_after = state(&session, key);
    set_clock_offset(0);
    assert!(
        result.is_err(),
        "an import token whose expiry lay {ahead} s (more than 24 h = {TOKEN_LIFETIME} s) \
         ahead of the module's clock was accepted 25 h later by that clock (key state now \
         {state_after})"
    );
    let code = rv(result);
    assert!(
        code == CKR_KMSHSM_EXPIRED_IMPORT_TOKEN || code == CKR_KMSHSM_INVALID_IMPORT_TOKEN,
        "refused with {code:?}, not as an expired (or invalid) import token"
    );
}
