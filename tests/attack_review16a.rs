//! An attacker's review (branch attack16a) of object policy on change and copy
//! (`C_SetAttributeValue`, `C_CopyObject` and the sticky attributes), the opt-in
//! separation-of-duties policy, the message-based and multi-part operations, and the
//! `kmshsm` command line. Each test reproduces one defect found by reading the code,
//! asserts what PKCS#11 3.0 or the project's documents promise, and fails against the
//! module as it was reviewed (b686791). Its doc comment says what is wrong. What was
//! checked and held is in the review's report, not here.
//!
//! Run with `cargo nextest run --test attack_review16a` (after `cargo build --lib`).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::duties::*;
use common::*;
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;

/// Separation of duties, defeated by `C_CopyObject`. docs/security.md ("Separation of
/// duties"): under the policy no key may both wrap and decrypt, because such a key "lets
/// its user wrap any extractable key and decrypt the result — the classic extraction";
/// a key derived by a mechanism that copies its source's bits "counts as one key with
/// each source", and the rule holds "at creation, copy, unwrap or derivation". Yet
/// `C_CopyObject` of a wrap-only key with `CKA_WRAP` false and `CKA_DECRYPT` true is
/// accepted (the copy alone mixes no duties, and `authorise_new` judges the copy alone),
/// and the copy, holding the wrapping key's very bits, decrypts what the original
/// wrapped: the victim's value in the clear. Expected: `CKR_TEMPLATE_INCONSISTENT`, as
/// for the derived copy (`attack_review.rs`,
/// `separation_of_duties_holds_across_a_derived_copy`).
#[test]
fn separation_of_duties_holds_across_c_copy_object() {
    let env = TestEnv::new();
    let (_ctx, session) = separated_token(&env);
    let wrapper = wrap_only_key(&session, false, false);
    let target = extractable_victim(&session, false);
    let wrapped = session
        .wrap_key(&Mechanism::AesEcb, wrapper, target)
        .expect("the wrap-only key wraps the extractable victim");
    match session.copy_object(wrapper, &[Attribute::Wrap(false), Attribute::Decrypt(true)]) {
        Err(Error::Pkcs11(RvError::TemplateInconsistent, _)) => {}
        Ok(copy) => panic!(
            "C_CopyObject made a decrypting copy of the wrap-only key under separation of \
             duties (it decrypts the wrapped victim to its value: {})",
            recovers_victim(&session, copy, &wrapped)
        ),
        Err(e) => panic!("C_CopyObject: {e}"),
    }
}

/// Separation of duties, defeated by turning the duties over one after the other on one
/// key. docs/security.md ("Separation of duties"): the policy exists to stop a key's user
/// wrapping an extractable key and decrypting the result, and refuses "an attribute change
/// that would make such a key" (`CKR_ACTION_PROHIBITED`). The check
/// (`Token::authorise_changed`) only asks whether the object *after* one change holds both
/// flags at once: so a wrap-only key wraps the victim, is changed to `CKA_WRAP` false (a
/// narrowing), then to `CKA_DECRYPT` true (it now decrypts only), and decrypts the blob it
/// wrapped itself: the victim's value in the clear, with no key ever holding both flags.
/// Expected: under the policy a key that could wrap never gains `CKA_DECRYPT` (nor one
/// that could unwrap `CKA_ENCRYPT`): `CKR_ACTION_PROHIBITED`.
#[test]
fn separation_of_duties_holds_when_a_wrapping_key_later_turns_to_decryption() {
    let env = TestEnv::new();
    let (_ctx, session) = separated_token(&env);
    let wrapper = wrap_only_key(&session, false, false);
    let target = extractable_victim(&session, false);
    let wrapped = session
        .wrap_key(&Mechanism::AesEcb, wrapper, target)
        .expect("the wrap-only key wraps the extractable victim");
    session
        .update_attributes(wrapper, &[Attribute::Wrap(false)])
        .expect("giving up a usage is always allowed");
    match session.update_attributes(wrapper, &[Attribute::Decrypt(true)]) {
        Err(Error::Pkcs11(RvError::ActionProhibited, _)) => {}
        Ok(()) => panic!(
            "the key that wrapped the victim was given CKA_DECRYPT under separation of \
             duties (it decrypts what it wrapped to the victim's value: {})",
            recovers_victim(&session, wrapper, &wrapped)
        ),
        Err(e) => panic!("C_SetAttributeValue(CKA_DECRYPT): {e}"),
    }
}

/// Separation of duties, defeated by a key pair whose public half wraps and whose private
/// half decrypts. docs/security.md ("Separation of duties"): under the policy "a key
/// created from then on may not hold both `CKA_WRAP` and `CKA_DECRYPT`", since such a key
/// lets its user wrap any extractable key and decrypt the result; a key pair is one key
/// (one KeyId, one material: docs/key-model.md), and RSA wrapping is exactly encryption
/// under the public half. `Token::authorise_new` judges each object alone, and no one
/// object of an RSA pair can carry both flags (`CKA_WRAP` is a public-key attribute,
/// `CKA_DECRYPT` a private-key one), so `C_GenerateKeyPair` makes such a pair, even with
/// the halves' default usages; the victim wrapped with `CKM_RSA_PKCS_OAEP` under the
/// public half is then decrypted by `C_Decrypt` with the private half, in the clear.
/// Expected: the pair refused as the one key it is (`CKR_TEMPLATE_INCONSISTENT`).
#[test]
fn separation_of_duties_holds_across_the_two_halves_of_a_key_pair() {
    let env = TestEnv::new();
    let (_ctx, session) = separated_token(&env);
    let target = extractable_victim(&session, false);
    let pair = session.generate_key_pair(
        &Mechanism::RsaPkcsKeyPairGen,
        &[
            Attribute::Token(false),
            Attribute::ModulusBits(2048.into()),
            Attribute::Wrap(true),
            Attribute::Encrypt(false),
        ],
        &[
            Attribute::Token(false),
            Attribute::Decrypt(true),
            Attribute::Unwrap(false),
        ],
    );
    match pair {
        Err(Error::Pkcs11(RvError::TemplateInconsistent, _)) => {}
        Ok((public, private)) => {
            let wrapped = session
                .wrap_key(&oaep_sha256(), public, target)
                .expect("the public half wraps the extractable victim");
            let recovered = session
                .decrypt(&oaep_sha256(), private, &wrapped)
                .is_ok_and(|plain| plain == VICTIM);
            panic!(
                "C_GenerateKeyPair made a pair whose public half wraps and whose private \
                 half decrypts under separation of duties (the private half decrypts the \
                 wrapped victim to its value: {recovered})"
            );
        }
        Err(e) => panic!("C_GenerateKeyPair: {e}"),
    }
}
