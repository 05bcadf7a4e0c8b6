//! An attacker's review (branch attack15c) of commit 9086bb4: an unwrapping key whose
//! `CKA_UNWRAP_TEMPLATE` makes what it unwraps sensitive or unextractable takes no
//! unauthenticated unwrap (ECB, CBC, CBC-PAD, the ECB envelopes; `token/keys.rs`
//! `unwrap_key`, `guards_unwrapped`), and is left the authenticated ones
//! (`CKM_AES_KEY_WRAP`, `_PAD`, `_KWP`, RSA-OAEP, `CKM_RSA_AES_KEY_WRAP`; docs/security.md,
//! "Unauthenticated unwraps"). The scenario is review 14g's: a logged-in attacker may use
//! the owner's guarded key-encryption key (`common::mech::owners_kek`) but must not learn
//! the keys wrapped under it. Each test reproduces one defect found by reading the code,
//! asserts what the project's own documents promise, and fails against the module as it
//! was reviewed. Its doc comment says what is wrong.
//! Run with `cargo nextest run --test attack_review15c` (after `cargo build --lib`).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::*;
use common::raw::RawAttr;
use common::*;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;

const DATA: &[u8] = b"known message";

/// `C_UnwrapKey(CKM_AES_KEY_WRAP)` of `blob` under `kek` as a generic secret of `len`
/// bytes that may sign and derive; `None` where the module refuses it (no oracle then).
/// The KEK's unwrap template makes it sensitive and unextractable: it is never read,
/// only used.
fn unwrap_kw(
    ck: &Ck,
    session: &Session,
    kek: ObjectHandle,
    blob: &[u8],
    len: usize,
) -> Option<ObjectHandle> {
    let key = ck
        .unwrap(
            session.handle(),
            &RawMech::none(CKM_AES_KEY_WRAP),
            kek.handle(),
            blob,
            &generic_template(
                Some(len as CK_ULONG),
                vec![
                    RawAttr::bool(CKA_SIGN, true),
                    RawAttr::bool(CKA_DERIVE, true),
                ],
            ),
        )
        .map(handle)
        .ok()?;
    assert!(attribute_bool(session, key, AttributeType::Sensitive));
    assert!(!attribute_bool(session, key, AttributeType::Extractable));
    Some(key)
}

/// The HMAC-SHA256 of `DATA` under `base || data` (`CKM_CONCATENATE_BASE_AND_DATA`,
/// which keeps every byte of a guarded base and so is allowed).
fn mac_of_extended(ck: &Ck, session: &Session, base: ObjectHandle, data: &[u8]) -> Vec<u8> {
    let derived = ck
        .derive(
            session.handle(),
            &string_data(CKM_CONCATENATE_BASE_AND_DATA, data),
            base.handle(),
            &generic_template(None, vec![RawAttr::bool(CKA_SIGN, true)]),
        )
        .map(handle)
        .expect("C_DeriveKey(CKM_CONCATENATE_BASE_AND_DATA) of the whole base");
    let mac = session.sign(&Mechanism::Sha256Hmac, derived, DATA).unwrap();
    session.destroy_object(derived).unwrap();
    mac
}

/// Defect: `C_UnwrapKey(CKM_AES_KEY_WRAP)`, which 9086bb4 leaves to a KEK that guards
/// what it unwraps as an authenticated mode, cuts the unwrapped plaintext to
/// `CKA_VALUE_LEN` by up to 7 bytes (`keypad::trim_zero_padding`, block 8), whatever
/// those bytes are. RFC 3394's integrity check covers the blob, not the cut: from one
/// authentic blob of a 16-byte key V the caller makes sensitive keys that are V's
/// prefixes of 9 to 16 bytes. The prefix of 9 bytes, extended by
/// `CKM_CONCATENATE_BASE_AND_DATA` (a whole guarded base: allowed) with one guessed
/// byte, signs like the prefix of 10 bytes exactly when the guess is V[9]; then V[10]
/// against the prefix of 11, and so on: 256 tries a byte, and V[9..16] come out. The
/// same holds of the last 7 bytes of any key KW-wrapped under the guarded KEK (AES-192,
/// AES-256, a PKCS#8 private key unwrapped as a generic secret).
///
/// Expected (docs/security.md, "Unauthenticated unwraps": such a key "unwraps with
/// `CKM_AES_KEY_WRAP` ... (authenticated)", "keys then travel under it in wrapped form
/// only, and the unwraps must not tell anything"; the attack table: "no derived key holds
/// part of a sensitive source ... since a key of a few unknown bytes is found by trying
/// them, one byte of the source at a time"; `keypad.rs`: "no short key of a few unknown
/// bytes is cut from ... someone else's key"): no byte of the wrapped key is learned, for
/// instance a KW unwrap under a guarding KEK that cuts nothing but zero padding, or none
/// shorter than the wrapped plaintext. Actual: 7 of its 16 bytes are recovered.
#[test]
fn kw_unwrap_under_a_guarding_kek_cuts_no_prefix_of_the_wrapped_key() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let kek = owners_kek(&session);
    let (secret_value, secret) = sensitive_aes_key(&session);
    // The owner's authenticated transport of the key (what the docs advise).
    let blob = ck
        .wrap(
            session.handle(),
            &RawMech::none(CKM_AES_KEY_WRAP),
            kek.handle(),
            secret.handle(),
        )
        .expect("C_WrapKey(CKM_AES_KEY_WRAP)");
    assert_eq!(blob.len(), 24);

    // The attacker holds the blob and may unwrap with the KEK.
    let mut known: Vec<u8> = Vec::new();
    let prefix9 = unwrap_kw(&ck, &session, kek, &blob, 9);
    for len in 10..=16 {
        let (Some(prefix9), Some(longer)) = (prefix9, unwrap_kw(&ck, &session, kek, &blob, len))
        else {
            break;
        };
        let target = session.sign(&Mechanism::Sha256Hmac, longer, DATA).unwrap();
        session.destroy_object(longer).unwrap();
        let found = (0..=255u8).find(|guess| {
            let data = [&known[..], &[*guess]].concat();
            mac_of_extended(&ck, &session, prefix9, &data) == target
        });
        match found {
            Some(b) => known.push(b),
            None => break,
        }
    }
    assert!(
        known.as_slice() != &secret_value[9..],
        "C_UnwrapKey(CKM_AES_KEY_WRAP) under a KEK whose unwrap template guards what it \
         unwraps cut the wrapped sensitive key to prefixes of 9..16 bytes, and comparing \
         them recovered its last {} bytes",
        known.len()
    );
}

// ---------------------------------------------------------------------------------------
// C_UnwrapKey(CKM_RSA_PKCS): two lengths of one block compared
// ---------------------------------------------------------------------------------------

/// The owner's RSA key-encryption pair: a public key that wraps, and a private key that
/// unwraps only, whose `CKA_UNWRAP_TEMPLATE` makes every key it unwraps sensitive and
/// unextractable (the private half is made from a generated pair's components, since a
/// nested template needs `C_CreateObject`).
fn owners_rsa_kek(session: &Session) -> (ObjectHandle, ObjectHandle) {
    let (public, private) = session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::ModulusBits(2048.into()),
                Attribute::Wrap(true),
            ],
            &[
                Attribute::Token(false),
                Attribute::Sensitive(false),
                Attribute::Extractable(true),
            ],
        )
        .expect("C_GenerateKeyPair(RSA-2048)");
    let mut plain = vec![
        RawAttr::ulong(CKA_CLASS, CKO_PRIVATE_KEY),
        RawAttr::ulong(CKA_KEY_TYPE, CKK_RSA),
        RawAttr::bool(CKA_TOKEN, false),
        RawAttr::bool(CKA_PRIVATE, true),
        RawAttr::bool(CKA_SENSITIVE, true),
        RawAttr::bool(CKA_EXTRACTABLE, false),
        RawAttr::bool(CKA_DECRYPT, false),
        RawAttr::bool(CKA_SIGN, false),
        RawAttr::bool(CKA_UNWRAP, true),
    ];
    for (ty, attr) in [
        (CKA_MODULUS, AttributeType::Modulus),
        (CKA_PUBLIC_EXPONENT, AttributeType::PublicExponent),
        (CKA_PRIVATE_EXPONENT, AttributeType::PrivateExponent),
        (CKA_PRIME_1, AttributeType::Prime1),
        (CKA_PRIME_2, AttributeType::Prime2),
        (CKA_EXPONENT_1, AttributeType::Exponent1),
        (CKA_EXPONENT_2, AttributeType::Exponent2),
        (CKA_COEFFICIENT, AttributeType::Coefficient),
    ] {
        plain.push(RawAttr::new(ty, &attribute_bytes(session, private, attr)));
    }
    let guarded = common::raw::Raw::load()
        .create_with_nested(
            session.handle(),
            &plain,
            CKA_UNWRAP_TEMPLATE,
            &[
                RawAttr::bool(CKA_SENSITIVE, true),
                RawAttr::bool(CKA_EXTRACTABLE, false),
            ],
        )
        .map(handle)
        .expect("C_CreateObject(RSA private key with an unwrap template)");
    session.destroy_object(private).unwrap();
    (public, guarded)
}

/// `C_UnwrapKey(CKM_RSA_PKCS)` of `blob` as an AES key that may encrypt, of
/// `CKA_VALUE_LEN` `len` when given (`WrappedLen::Exact`), else of a size the key type
/// allows (`WrappedLen::OneOf`); the guarding template makes it sensitive. `None` where
/// the module refuses the unwrap (as it does every block alike, or not at all).
fn rsa_unwrap_aes(
    ck: &Ck,
    session: &Session,
    kek: ObjectHandle,
    blob: &[u8],
    len: Option<CK_ULONG>,
) -> Option<ObjectHandle> {
    let mut template = vec![
        RawAttr::ulong(CKA_CLASS, CKO_SECRET_KEY),
        RawAttr::ulong(CKA_KEY_TYPE, CKK_AES),
        RawAttr::bool(CKA_TOKEN, false),
        RawAttr::bool(CKA_ENCRYPT, true),
    ];
    if let Some(len) = len {
        template.push(RawAttr::ulong(CKA_VALUE_LEN, len));
    }
    let key = ck
        .unwrap(
            session.handle(),
            &RawMech::none(CKM_RSA_PKCS),
            kek.handle(),
            blob,
            &template,
        )
        .map(handle)
        .ok()?;
    assert!(attribute_bool(session, key, AttributeType::Sensitive));
    Some(key)
}

/// The attacker's verdict on `blob`: whether its unwrap to an AES key of exactly 16
/// bytes and its unwrap to an AES key of a size the module picks are the same key (same
/// length, same encryption of a known block). Both are the block's real message when
/// its padding holds and the message has 16 bytes; otherwise each is a synthetic key,
/// and the two syntheses differ (`padding::eme_pkcs1_v15_decode_implicit` against
/// `implicit::decode_sized`). A refused unwrap is no verdict (`false`).
fn same_key_both_ways(ck: &Ck, session: &Session, kek: ObjectHandle, blob: &[u8]) -> bool {
    let Some(exact) = rsa_unwrap_aes(ck, session, kek, blob, Some(16)) else {
        return false;
    };
    let Some(sized) = rsa_unwrap_aes(ck, session, kek, blob, None) else {
        session.destroy_object(exact).unwrap();
        return false;
    };
    let block = [0x3cu8; 16];
    let same = attribute_bytes(session, sized, AttributeType::ValueLen)
        == attribute_bytes(session, exact, AttributeType::ValueLen)
        && session.encrypt(&Mechanism::AesEcb, exact, &block).unwrap()
            == session.encrypt(&Mechanism::AesEcb, sized, &block).unwrap();
    session.destroy_object(exact).unwrap();
    session.destroy_object(sized).unwrap();
    same
}

/// Defect: `C_UnwrapKey(CKM_RSA_PKCS)`, which 9086bb4 leaves to an unwrapping key whose
/// template guards what it unwraps (it is not `unwrap_unauthenticated`), answers a bad
/// padding with a synthetic key made by a different construction for each way the
/// template gives the length: with `CKA_VALUE_LEN`, the first bytes of
/// HMAC(kdk, "kmshsm implicit rejection" || counter || C)
/// (`padding::eme_pkcs1_v15_decode_implicit`); for a key type of several sizes, the last
/// bytes of the draft's PRF(KDK, "message") (`implicit::decode_sized`); a good padding
/// gives the real message both ways. So the same ciphertext unwrapped twice, as an AES
/// key of `CKA_VALUE_LEN` 16 and as an AES key without it, gives one key (same length,
/// same encryption of a known block) exactly when its padding holds: Bleichenbacher's
/// oracle, on ciphertexts whose plaintext the caller does not know (RSA is malleable:
/// C * s^e mod n for chosen s), which decrypts the owner's wrapped key in the usual
/// number of queries. Same class as review 14i (two unwraps of one altered blob
/// compared), in a mode the change did not mark.
///
/// Expected (docs/security.md attack table: "Bleichenbacher's padding oracle on ...
/// `C_UnwrapKey(CKM_RSA_PKCS)` | implicit rejection"; "RSAES-PKCS1-v1_5 decryption never
/// says whether the padding was valid"; "Unauthenticated unwraps": "the unwraps must not
/// tell anything about a blob the caller altered"): the two unwraps agree, or disagree,
/// whatever the padding (or `CKM_RSA_PKCS` is refused to a guarding key, as the ECB and
/// CBC modes are). Actual: they agree on the owner's valid block and disagree on every
/// malformed one.
#[test]
fn rsa_pkcs_unwrap_tells_no_padding_through_two_lengths_of_one_block() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let (public, kek) = owners_rsa_kek(&session);
    let (_secret_value, secret) = sensitive_aes_key(&session);
    let blob = ck
        .wrap(
            session.handle(),
            &RawMech::none(CKM_RSA_PKCS),
            public.handle(),
            secret.handle(),
        )
        .expect("C_WrapKey(CKM_RSA_PKCS)");
    assert_eq!(blob.len(), 256);
    // Blocks whose padding is almost surely wrong: random values below the modulus (a
    // leading zero byte), as an attacker's C * s^e are.
    let malformed: Vec<Vec<u8>> = (0..16)
        .map(|_| {
            let mut c = session.generate_random_vec(256).unwrap();
            c[0] = 0;
            c
        })
        .collect();
    let on_valid = same_key_both_ways(&ck, &session, kek, &blob);
    let on_malformed = malformed
        .iter()
        .filter(|c| same_key_both_ways(&ck, &session, kek, c))
        .count();
    assert!(
        !(on_valid && on_malformed == 0),
        "C_UnwrapKey(CKM_RSA_PKCS) under a guarding RSA key: the unwraps with and without \
         CKA_VALUE_LEN gave the same key for the valid block and different keys for all \
         {} malformed ones (a padding oracle)",
        malformed.len()
    );
}
