//! An attacker's review (branch attack16b) of the rewritten separation-of-duties policy
//! (`src/token/duties.rs`, commit aba9650) and of the PostgreSQL store shared by several
//! hosts. Each test reproduces one defect found by reading the code, asserts what
//! PKCS#11 3.0 or the project's documents promise, and fails against the module as it
//! was reviewed (aba9650). Its doc comment says what is wrong. What was checked and held
//! is in the review's report, not here.
//!
//! Run with `cargo nextest run --test attack_review16b` (after `cargo build --lib`).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::duties::*;
use common::mech::*;
use common::raw::RawAttr;
use common::*;
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;

/// Whether a raw RSA block (k bytes) is an EME-PKCS1-v1_5 block holding the victim's
/// value.
fn block_holds_victim(block: &[u8]) -> bool {
    block.len() > VICTIM.len() + 11
        && block[..2] == [0, 2]
        && block[block.len() - VICTIM.len() - 1] == 0
        && block[block.len() - VICTIM.len()..] == VICTIM
}

/// An RSA-2048 pair, the public half wrapping only, the private half unwrapping,
/// decrypting and signing as `private_sign` says; the private half never extractable.
fn wrapping_pair(
    session: &Session,
    private_sign: bool,
) -> cryptoki::error::Result<(ObjectHandle, ObjectHandle)> {
    session.generate_key_pair(
        &Mechanism::RsaPkcsKeyPairGen,
        &[
            Attribute::Token(false),
            Attribute::ModulusBits(2048.into()),
            Attribute::Wrap(true),
            Attribute::Encrypt(false),
            Attribute::Verify(false),
        ],
        &[
            Attribute::Token(false),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Decrypt(false),
            Attribute::Unwrap(true),
            Attribute::Sign(private_sign),
        ],
    )
}

/// Separation of duties, defeated by raw RSA signing. docs/security.md ("Separation of
/// duties"): "the two halves of a generated RSA or SM2 pair are one key", and no key may
/// both wrap and decrypt, since such a key "lets its user wrap any extractable key and
/// decrypt the result". The same document ("Raw RSA (`CKM_RSA_X_509`)") says "a raw
/// *signature* is the same private operation as a raw decryption: a private key usable
/// for signing with `CKM_RSA_X_509` opens any ciphertext made for it". Yet
/// `Token::authorise_new_together` (`mix_duties`, `src/token/duties.rs`) counts only
/// `CKA_DECRYPT` as decryption: a generated pair whose public half wraps and whose
/// private half signs is accepted, the public half wraps the victim with `CKM_RSA_PKCS`,
/// and `C_Sign(CKM_RSA_X_509)` with the private half returns the padded block, the
/// victim's value in its last bytes. Expected: the pair is refused
/// (`CKR_TEMPLATE_INCONSISTENT`), or the raw signature of the wrapped blob is; the victim
/// never comes out.
#[test]
fn separation_of_duties_counts_raw_rsa_signing_as_decryption() {
    let env = TestEnv::new();
    let (_ctx, session) = separated_token(&env);
    let target = extractable_victim(&session, false);
    let (public, private) = match wrapping_pair(&session, true) {
        Err(Error::Pkcs11(RvError::TemplateInconsistent, _)) => return,
        Err(e) => panic!("C_GenerateKeyPair: {e}"),
        Ok(pair) => pair,
    };
    let wrapped = session
        .wrap_key(&Mechanism::RsaPkcs, public, target)
        .expect("the public half wraps the extractable victim");
    if let Ok(block) = session.sign(&Mechanism::RsaX509, private, &wrapped) {
        assert!(
            !block_holds_victim(&block),
            "under separation of duties a generated pair's public half wrapped the victim \
             and its private half, signing with CKM_RSA_X_509, opened it: the victim's \
             value is in the clear"
        );
    }
}

/// The same, with `CKA_SIGN` turned on afterwards. docs/security.md: "a key's duties are
/// fixed when it is made ... a key that wrapped yesterday and decrypts today does both"
/// (review 16a). The pair is made as the policy wants it (public half wraps, private half
/// only unwraps), and `C_SetAttributeValue(CKA_SIGN = true)` on the private half is
/// accepted, because `DUTIES` in `src/token/duties.rs` lists WRAP/UNWRAP/ENCRYPT/DECRYPT
/// only; raw signing then decrypts what the public half wrapped. Expected: the change is
/// refused (`CKR_ACTION_PROHIBITED`) or the raw signature of the wrapped blob is.
#[test]
fn separation_of_duties_keeps_raw_rsa_signing_off_a_wrapping_pair() {
    let env = TestEnv::new();
    let (_ctx, session) = separated_token(&env);
    let target = extractable_victim(&session, false);
    let (public, private) =
        wrapping_pair(&session, false).expect("a pair that wraps and unwraps only is allowed");
    let wrapped = session
        .wrap_key(&Mechanism::RsaPkcs, public, target)
        .expect("the public half wraps the extractable victim");
    match session.update_attributes(private, &[Attribute::Sign(true)]) {
        Err(Error::Pkcs11(RvError::ActionProhibited, _)) => return,
        Err(e) => panic!("C_SetAttributeValue(CKA_SIGN): {e}"),
        Ok(()) => {}
    }
    if let Ok(block) = session.sign(&Mechanism::RsaX509, private, &wrapped) {
        assert!(
            !block_holds_victim(&block),
            "under separation of duties the unwrap-only private half of a wrapping pair was \
             given CKA_SIGN and, signing with CKM_RSA_X_509, opened the wrapped victim: its \
             value is in the clear"
        );
    }
}

/// A template for a copying derivation (`CKM_XOR_BASE_AND_DATA` with zeros): an AES-128
/// session key with no duty but `decrypt` as given, and `CKA_DERIVE` as given.
fn copy_template(decrypt: bool, derive: bool) -> Vec<RawAttr> {
    vec![
        RawAttr::ulong(CKA_CLASS, CKO_SECRET_KEY),
        RawAttr::ulong(CKA_KEY_TYPE, CKK_AES),
        RawAttr::ulong(CKA_VALUE_LEN, 16),
        RawAttr::bool(CKA_TOKEN, false),
        RawAttr::bool(CKA_WRAP, false),
        RawAttr::bool(CKA_UNWRAP, false),
        RawAttr::bool(CKA_ENCRYPT, false),
        RawAttr::bool(CKA_DECRYPT, decrypt),
        RawAttr::bool(CKA_DERIVE, derive),
    ]
}

/// Separation of duties, defeated by a copy of a copy. docs/security.md ("Separation of
/// duties"): a key derived by a mechanism that exposes its sources' bits "counts as one
/// key with each source: a wrapping key with `CKA_DERIVE` may not give a copy that
/// decrypts", and the rule is "judged over everything that holds a key's bits". But
/// `Token::authorise_exposing_derivation` judges a derived key only with its immediate
/// sources: a wrap-only key with `CKA_DERIVE` gives, by `CKM_XOR_BASE_AND_DATA` with
/// zeros, a copy with no duty and `CKA_DERIVE` (the pair wraps only: accepted), and that
/// copy gives a second copy that decrypts (the pair decrypts only: accepted). The second
/// copy holds the wrapping key's bits and decrypts the victim it wrapped. Expected: the
/// second derivation is `CKR_TEMPLATE_INCONSISTENT`, as a one-step copy is
/// (`attack_review.rs`, `separation_of_duties_holds_across_a_derived_copy`).
#[test]
fn separation_of_duties_holds_across_a_copy_of_a_derived_copy() {
    let env = TestEnv::new();
    let (_ctx, session) = separated_token(&env);
    let ck = Ck::load();
    let wrapper = wrap_only_key(&session, false, true);
    let target = extractable_victim(&session, false);
    let wrapped = session
        .wrap_key(&Mechanism::AesEcb, wrapper, target)
        .expect("the wrap-only key wraps the extractable victim");
    let zeros = string_data(CKM_XOR_BASE_AND_DATA, &[0; 16]);
    let relay = ck
        .derive(
            session.handle(),
            &zeros,
            wrapper.handle(),
            &copy_template(false, true),
        )
        .expect("a copy with no duty at all mixes none with the wrapping key");
    match ck.derive(session.handle(), &zeros, relay, &copy_template(true, false)) {
        Err(RvError::TemplateInconsistent) => {}
        Ok(copy) => panic!(
            "under separation of duties a copy of a copy of the wrapping key decrypts \
             (the wrapped victim to its value: {})",
            recovers_victim(&session, handle(copy), &wrapped)
        ),
        Err(e) => panic!("C_DeriveKey(second copy): {e:?}"),
    }
}

/// Separation of duties is the caller's to turn off. docs/security.md: under the policy
/// "a key's duties are fixed when it is made"; "`C_SetAttributeValue` may turn
/// `CKA_WRAP`, `CKA_UNWRAP`, `CKA_ENCRYPT` and `CKA_DECRYPT` off, never on". The policy
/// restrains the user, yet it is read from the configuration of whichever process loads
/// the module (`Token::separating_duties`, `shared.config`), which that user chooses
/// (`KMSHSM_CONF`, `pReserved`): a token key made wrap-only under the policy is, in the
/// user's next process loaded without the line, turned to decryption
/// (`C_SetAttributeValue(CKA_WRAP = false, CKA_DECRYPT = true)`), and decrypts the
/// victim it wrapped. The PIN limit was made the token's own for this very reason ("A
/// caller's configuration at `C_Initialize` ... has no say", "PIN lockout"). Expected: a
/// key made under the policy keeps its duties fixed whatever a later process's
/// configuration says (`CKR_ACTION_PROHIBITED`).
#[test]
fn separation_of_duties_made_keys_keep_their_duties_in_a_process_without_the_line() {
    let env = TestEnv::new();
    let plain_config = std::fs::read_to_string(&env.conf_path).unwrap();
    let (ctx, session) = separated_token(&env);
    let first = wrap_only_key(&session, true, false);
    let target = extractable_victim(&session, true);
    let wrapped = session
        .wrap_key(&Mechanism::AesEcb, first, target)
        .expect("the wrap-only key wraps the extractable victim");
    drop(session);
    ctx.finalize().unwrap();

    // The user's next process, with a configuration of its own.
    env.write_config(&plain_config);
    let ctx = env.load();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let session = user_session(&ctx, slot);
    let found = session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Wrap(true),
        ])
        .unwrap();
    assert_eq!(found.len(), 1, "the token holds one wrapping key");
    let wrapper = found[0];
    match session.update_attributes(wrapper, &[Attribute::Wrap(false), Attribute::Decrypt(true)]) {
        Err(Error::Pkcs11(RvError::ActionProhibited, _)) => {}
        Ok(()) => panic!(
            "a key made wrap-only under separation of duties was turned to decryption by a \
             process whose configuration left the policy out (it decrypts the wrapped \
             victim to its value: {})",
            recovers_victim(&session, wrapper, &wrapped)
        ),
        Err(e) => panic!("C_SetAttributeValue: {e}"),
    }
}
