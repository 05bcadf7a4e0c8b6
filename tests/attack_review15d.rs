//! An attacker's review (branch attack15d) of commit ccdd560 (with 9086bb4 and e0cad9c
//! before it): under a source key's guarding `CKA_DERIVE_TEMPLATE` (one that makes every
//! derived key sensitive or unextractable) a derived key has at least 16 bytes and no
//! `CKA_DERIVE` unless the template grants it (`token/derive.rs` `check_bound`;
//! docs/security.md, "What `CKA_DERIVE` gives away"). The reason given: a short key is
//! found by trying it, and a key that may derive, extended with a guessed byte
//! (`CKM_CONCATENATE_BASE_AND_DATA`), is compared with the key one byte longer of the same
//! derivation, which finds that key's bytes one at a time. The scenario is review 15a's: a
//! logged-in attacker may derive with the owner's key but must not learn the keys derived
//! under its guarding template. The tests use `CKM_AES_ECB_ENCRYPT_DATA`, whose output
//! cut to a length is the prefix of a longer one (E(B1) || E(B2) cut to 16 + j bytes), so
//! the bytes recovered past the 16th are a whole key of their own: E(B2), the key the
//! same derivation makes of B2 alone, which the owner may hand to anyone as a guarded key.
//! Each test reproduces one defect found by reading the code, asserts what the project's
//! own documents promise, and fails against the module as it was reviewed. Its doc
//! comment says what is wrong.
//! Fixed by 2a18934 (the bound carried on to derived keys as their own derive template,
//! exposing derivations refused) and the commit after it (`C_DigestKey` refuses bound
//! keys). The review's fourth test, a derive template that makes keys sensitive alone
//! and so lets them be asked extractable and wrapped out under the caller's own key, is
//! kept in history (300c011), not run: PKCS#11 lets any sensitive, extractable key leave
//! so, and such a template is now no guarding one (`token/keys.rs` `template_guards`;
//! docs/security.md).
//! Run with `cargo nextest run --test attack_review15d` (after `cargo build --lib`).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::*;
use common::raw::{Raw, RawAttr};
use common::*;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{AttributeType, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;

const DATA: &[u8] = b"known message";
/// The block the attacker's 16-byte key encrypts (its known prefix).
const B1: [u8; 16] = [0x11; 16];
/// The block of the owner's key: E(B2), the key the attacker wants.
const B2: [u8; 16] = [0x22; 16];

/// The owner's derivation key: a random AES-256 key, sensitive and unextractable, that
/// may derive (and nothing else), with `forced` as its `CKA_DERIVE_TEMPLATE`.
fn owners_base(session: &Session, forced: &[RawAttr]) -> ObjectHandle {
    let value = session.generate_random_vec(32).unwrap();
    Raw::load()
        .create_with_nested(
            session.handle(),
            &[
                RawAttr::ulong(CKA_CLASS, CKO_SECRET_KEY),
                RawAttr::ulong(CKA_KEY_TYPE, CKK_AES),
                RawAttr::bool(CKA_TOKEN, false),
                RawAttr::bool(CKA_SENSITIVE, true),
                RawAttr::bool(CKA_EXTRACTABLE, false),
                RawAttr::bool(CKA_ENCRYPT, false),
                RawAttr::bool(CKA_DECRYPT, false),
                RawAttr::bool(CKA_DERIVE, true),
                RawAttr::new(CKA_VALUE, &value),
            ],
            CKA_DERIVE_TEMPLATE,
            forced,
        )
        .map(handle)
        .expect("C_CreateObject(derivation key with a derive template)")
}

/// `CKM_AES_ECB_ENCRYPT_DATA` of `data` under `base`, cut to a generic secret of `len`
/// bytes, with `extra` in its template.
fn ecb_key(
    ck: &Ck,
    session: &Session,
    base: ObjectHandle,
    data: &[u8],
    len: usize,
    extra: Vec<RawAttr>,
) -> Result<ObjectHandle, RvError> {
    ck.derive(
        session.handle(),
        &string_data(CKM_AES_ECB_ENCRYPT_DATA, data),
        base.handle(),
        &generic_template(Some(len as CK_ULONG), extra),
    )
    .map(handle)
}

/// The owner's key E(B2): 16 bytes, as the guarding template makes it, that may sign. Its
/// MAC of `DATA` is what a recovered value is checked against.
fn owners_key_mac(ck: &Ck, session: &Session, base: ObjectHandle) -> Vec<u8> {
    let key = ecb_key(
        ck,
        session,
        base,
        &B2,
        16,
        vec![RawAttr::bool(CKA_SIGN, true)],
    )
    .expect("the owner's 16-byte key");
    assert!(
        attribute_bool(session, key, AttributeType::Sensitive)
            || !attribute_bool(session, key, AttributeType::Extractable),
        "the guarding template keeps the owner's key from the caller"
    );
    session.sign(&Mechanism::Sha256Hmac, key, DATA).unwrap()
}

/// The MAC of `DATA` under `base || data` (`CKM_CONCATENATE_BASE_AND_DATA`, which keeps
/// every byte of a guarded base and so is allowed); `None` where the module refuses.
fn mac_of_extended(ck: &Ck, session: &Session, base: ObjectHandle, data: &[u8]) -> Option<Vec<u8>> {
    let derived = ck
        .derive(
            session.handle(),
            &string_data(CKM_CONCATENATE_BASE_AND_DATA, data),
            base.handle(),
            &generic_template(None, vec![RawAttr::bool(CKA_SIGN, true)]),
        )
        .map(handle)
        .ok()?;
    let mac = session.sign(&Mechanism::Sha256Hmac, derived, DATA).ok();
    session.destroy_object(derived).unwrap();
    mac
}

/// Review 15a's extension attack, with a 16-byte key `prefix` = E(B1) that may derive:
/// for j = 0..16, the key E(B1 || B2) cut to 17 + j bytes signs like `prefix` extended by
/// the bytes found so far and one guessed byte exactly when the guess is E(B2)[j]. The 16
/// bytes of E(B2), or `None` where the module refuses a step (no oracle then).
fn recover_by_concatenation(
    ck: &Ck,
    session: &Session,
    base: ObjectHandle,
    prefix: ObjectHandle,
) -> Option<Vec<u8>> {
    let both = [B1, B2].concat();
    let mut found = Vec::with_capacity(16);
    for j in 0..16 {
        let longer = ecb_key(
            ck,
            session,
            base,
            &both,
            17 + j,
            vec![RawAttr::bool(CKA_SIGN, true)],
        )
        .ok()?;
        let target = session.sign(&Mechanism::Sha256Hmac, longer, DATA).ok()?;
        session.destroy_object(longer).unwrap();
        let mut next = None;
        for guess in 0..=255u8 {
            let tail = [&found[..], &[guess]].concat();
            if mac_of_extended(ck, session, prefix, &tail)? == target {
                next = Some(guess);
                break;
            }
        }
        found.push(next?);
    }
    Some(found)
}

/// The 16 bytes of E(B2) found through `C_DigestKey`: for j = 0..16, the digest of the key
/// E(B1 || B2) cut to 17 + j bytes equals the digest of `prefix` = E(B1) (fed with
/// `C_DigestKey`) followed by the bytes found so far and one guessed byte exactly when the
/// guess is E(B2)[j]. `None` where the module refuses a step (no oracle then).
fn recover_by_digest(
    ck: &Ck,
    session: &Session,
    base: ObjectHandle,
    prefix: ObjectHandle,
) -> Option<Vec<u8>> {
    let both = [B1, B2].concat();
    let readable = || vec![RawAttr::bool(CKA_SENSITIVE, false)];
    let mut found = Vec::with_capacity(16);
    for j in 0..16 {
        let longer = ecb_key(ck, session, base, &both, 17 + j, readable()).ok()?;
        session.digest_init(&Mechanism::Sha256).unwrap();
        let digested = session.digest_key(longer);
        let target = session.digest_final().ok();
        digested.ok()?;
        let target = target?;
        session.destroy_object(longer).unwrap();
        let mut next = None;
        for guess in 0..=255u8 {
            session.digest_init(&Mechanism::Sha256).unwrap();
            let digested = session.digest_key(prefix);
            session.digest_update(&found).unwrap();
            session.digest_update(&[guess]).unwrap();
            let digest = session.digest_final().unwrap();
            digested.ok()?;
            if digest == target {
                next = Some(guess);
                break;
            }
        }
        found.push(next?);
    }
    Some(found)
}

/// Defect: the rule "no `CKA_DERIVE` unless the guarding template grants it" is judged only
/// when the key is derived; `CKA_DERIVE` stays freely modifiable afterwards
/// (`object/policy.rs` `mutability`: `CKA_DERIVE` is `Free`), and a derived key is
/// `CKA_MODIFIABLE` unless someone asks otherwise. So the attacker derives E(B1), a
/// 16-byte key without `CKA_DERIVE` (allowed), sets `CKA_DERIVE` true with
/// `C_SetAttributeValue`, and runs review 15a's extension attack unchanged: E(B1) extended
/// by a guessed byte against E(B1 || B2) cut one byte longer, 256 tries a byte, and the
/// 16 bytes of E(B2) come out — a whole key the owner's template made sensitive and
/// unextractable.
///
/// Expected (docs/security.md, "What `CKA_DERIVE` gives away": under a source's guarding
/// derive template "none may derive unless such a template itself sets `CKA_DERIVE` true";
/// `token/derive.rs` `check_bound`: "A derived key that may derive is extended with bytes
/// the caller knows ... and compared with a longer key of the same derivation, which finds
/// that key's bytes one at a time"): a key derived under such a template never comes to
/// derive (the change refused, or the key unmodifiable), and no byte of E(B2) is learned.
/// Actual: `C_SetAttributeValue(CKA_DERIVE = TRUE)` succeeds and the owner's key E(B2) is
/// recovered whole.
#[test]
fn a_key_derived_under_a_guarding_template_is_not_given_cka_derive_afterwards() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let base = owners_base(
        &session,
        &[
            RawAttr::bool(CKA_SENSITIVE, true),
            RawAttr::bool(CKA_EXTRACTABLE, false),
        ],
    );
    let genuine = owners_key_mac(&ck, &session, base);

    // (ccdd560 refused CKA_DERIVE at the derivation; since 2a18934 the bound goes on to
    // the derived key as its own derive template instead, and CKA_DERIVE is allowed.)
    // What it lets through: the same key, then the flag set afterwards.
    let prefix = ecb_key(&ck, &session, base, &B1, 16, vec![]).expect("E(B1), 16 bytes");
    let set = Raw::load().set_attributes(
        session.handle(),
        prefix.handle(),
        &[RawAttr::bool(CKA_DERIVE, true)],
    );
    if set.is_err() {
        return; // the change refused: no extension, nothing learned
    }
    let recovered = recover_by_concatenation(&ck, &session, base, prefix);
    assert!(
        recovered.is_none_or(|r| hmac_sha256(&r, DATA) != genuine),
        "C_SetAttributeValue(CKA_DERIVE = TRUE) succeeded on a key derived under a guarding \
         derive template, and the extension attack recovered all 16 bytes of the owner's \
         guarded key E(B2)"
    );
}

/// Defect: as above, through `C_CopyObject`: a copy of the derived key E(B1) with
/// `CKA_DERIVE` true in the copy's template is made (`CKA_DERIVE` is `Free`, the key is
/// modifiable and copyable), and the copy, which may derive, is extended and compared as
/// in review 15a. The 16 bytes of the owner's key E(B2) come out.
///
/// Expected (docs/security.md, "What `CKA_DERIVE` gives away": "none may derive unless
/// such a template itself sets `CKA_DERIVE` true"): no key made under the guarding
/// template, nor a copy of one, may derive; nothing is learned. Actual: the copy may
/// derive, and E(B2) is recovered whole.
#[test]
fn a_copy_of_a_key_derived_under_a_guarding_template_does_not_gain_cka_derive() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let base = owners_base(
        &session,
        &[
            RawAttr::bool(CKA_SENSITIVE, true),
            RawAttr::bool(CKA_EXTRACTABLE, false),
        ],
    );
    let genuine = owners_key_mac(&ck, &session, base);
    let prefix = ecb_key(&ck, &session, base, &B1, 16, vec![]).expect("E(B1), 16 bytes");
    let Ok(copy) = Raw::load().copy_object(
        session.handle(),
        prefix.handle(),
        &[RawAttr::bool(CKA_DERIVE, true)],
    ) else {
        return; // the copy refused: no extension, nothing learned
    };
    let recovered = recover_by_concatenation(&ck, &session, base, handle(copy));
    assert!(
        recovered.is_none_or(|r| hmac_sha256(&r, DATA) != genuine),
        "C_CopyObject(CKA_DERIVE = TRUE) of a key derived under a guarding derive template \
         made a key that may derive, and the extension attack recovered all 16 bytes of the \
         owner's guarded key E(B2)"
    );
}

/// Defect: `C_DigestKey` is the extension attack without `CKA_DERIVE`. A derive template
/// that guards with `CKA_EXTRACTABLE` false alone (a guarding template by `template_guards`
/// and by docs/security.md) leaves the caller free to ask `CKA_SENSITIVE` false, and
/// `authorise_digest` digests every secret key that is not sensitive, unextractable or not
/// (docs/security.md, "`C_DigestKey`": "`CKA_EXTRACTABLE` is not required ... a digest
/// hands out a one-way image, whose only use to an attacker is to confirm a guess"). A
/// confirmed guess is all the attack needs: the attacker derives E(B1), 16 bytes, and for
/// each j the key E(B1 || B2) cut to 17 + j bytes, digests the longer key, and digests
/// E(B1) (`C_DigestKey`) followed by the bytes found and a guessed byte
/// (`C_DigestUpdate`): the digests agree exactly when the guess is right. 256 digests a
/// byte, no derivation from a derived key, and the 16 bytes of E(B2) come out.
///
/// Expected (docs/security.md, "What `CKA_DERIVE` gives away": the 16-byte floor and the
/// `CKA_DERIVE` rule exist because a derived key "extended ... with a guessed byte ... is
/// compared with the key one byte longer"; "Unauthenticated unwraps": a guarding template
/// is one that sets `CKA_SENSITIVE` true *or* `CKA_EXTRACTABLE` false, its owner "means
/// such keys never to be seen", `token/keys.rs` `template_guards`): no byte of a key made
/// under such a template is learned, for instance no key derived under it digested.
/// Actual: every digest is answered, and E(B2) is recovered whole.
#[test]
fn digest_key_does_not_extend_a_key_derived_under_an_unextractable_template() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let base = owners_base(&session, &[RawAttr::bool(CKA_EXTRACTABLE, false)]);
    let genuine = owners_key_mac(&ck, &session, base);
    let Ok(prefix) = ecb_key(
        &ck,
        &session,
        base,
        &B1,
        16,
        vec![RawAttr::bool(CKA_SENSITIVE, false)],
    ) else {
        return; // a readable-but-unextractable key refused: nothing digested
    };
    assert!(!attribute_bool(
        &session,
        prefix,
        AttributeType::Extractable
    ));
    let recovered = recover_by_digest(&ck, &session, base, prefix);
    assert!(
        recovered.is_none_or(|r| hmac_sha256(&r, DATA) != genuine),
        "C_DigestKey of keys derived under a derive template with CKA_EXTRACTABLE false \
         recovered all 16 bytes of the owner's guarded key E(B2), byte by byte"
    );
}
