//! An attacker's review (branch attack15a) of the comparison oracles left in key
//! transport: the implicit rejection of `C_UnwrapKey(CKM_RSA_PKCS)`
//! (`crypto/rsa/implicit.rs`, `crypto/rsa/padding.rs`
//! `eme_pkcs1_v15_decode_implicit`, `token/keys.rs` `unwrap_key`'s `WrappedLen`) and the
//! length cut of `C_UnwrapKey(CKM_AES_KEY_WRAP)` (`mechanism/aes.rs` `KeyWrap::unwrap`,
//! `mechanism/keypad.rs` `trim_zero_padding`), both looked at as review 14i looked at the
//! CBC unwraps: two unwraps of one blob that must agree, or must not, compared through
//! HMAC. Each test reproduces one defect found by reading the code, asserts what the
//! project's own documents promise, and fails against the module as it was reviewed. Its
//! doc comment says what is wrong.
//! Run with `cargo nextest run --test attack_review15a` (after `cargo build --lib`).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::material::*;
use common::mech::*;
use common::raw::{Raw, RawAttr};
use common::*;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;

const DATA: &[u8] = b"known message";

/// A sensitive, extractable generic secret of `len` random bytes (its value, its
/// handle): the key the owner wraps and the attacker wants.
fn victim(session: &Session, len: usize) -> (Vec<u8>, ObjectHandle) {
    let value = session.generate_random_vec(len as u32).unwrap();
    let key = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Sensitive(true),
            Attribute::Extractable(true),
            Attribute::Sign(true),
            Attribute::Value(value.clone()),
        ])
        .expect("C_CreateObject(sensitive generic secret)");
    (value, key)
}

/// The MAC of `DATA` under the key `C_UnwrapKey` makes of `wrapped` with `template`
/// (sensitive and unextractable by the unwrapping key's template: never read), with the
/// key's `CKA_VALUE_LEN`; `None` where the module refuses the unwrap or the MAC.
fn unwrapped_mac(
    ck: &Ck,
    session: &Session,
    mech: &RawMech,
    kek: ObjectHandle,
    wrapped: &[u8],
    template: &[RawAttr],
) -> Option<(Vec<u8>, u64)> {
    let key = ck
        .unwrap(session.handle(), mech, kek.handle(), wrapped, template)
        .map(handle)
        .ok()?;
    assert!(attribute_bool(session, key, AttributeType::Sensitive));
    let len = match session
        .get_attributes(key, &[AttributeType::ValueLen])
        .unwrap()
        .pop()
    {
        Some(Attribute::ValueLen(l)) => u64::from(l),
        other => panic!("CKA_VALUE_LEN of the unwrapped key: {other:?}"),
    };
    let mac = session.sign(&Mechanism::Sha256Hmac, key, DATA).ok();
    session.destroy_object(key).unwrap();
    Some((mac?, len))
}

// ---------------------------------------------------------------------------------------
// C_UnwrapKey(CKM_RSA_PKCS): two implicit rejections that disagree
// ---------------------------------------------------------------------------------------

/// The owner's RSA-2048 unwrapping key (the fixed key of `common::material`): a private
/// key that may unwrap and nothing else (no decrypt, no sign, so no raw RSA), sensitive
/// and unextractable, whose `CKA_UNWRAP_TEMPLATE` makes every key it unwraps sensitive
/// and unextractable.
fn owners_rsa_kek(session: &Session) -> ObjectHandle {
    let f = Raw::load();
    let u = |h: &str| unsigned(&hex(h));
    f.create_with_nested(
        session.handle(),
        &[
            RawAttr::ulong(CKA_CLASS, CKO_PRIVATE_KEY),
            RawAttr::ulong(CKA_KEY_TYPE, CKK_RSA),
            RawAttr::bool(CKA_TOKEN, false),
            RawAttr::bool(CKA_PRIVATE, true),
            RawAttr::bool(CKA_SENSITIVE, true),
            RawAttr::bool(CKA_EXTRACTABLE, false),
            RawAttr::bool(CKA_DECRYPT, false),
            RawAttr::bool(CKA_SIGN, false),
            RawAttr::bool(CKA_SIGN_RECOVER, false),
            RawAttr::bool(CKA_DERIVE, false),
            RawAttr::bool(CKA_UNWRAP, true),
            RawAttr::new(CKA_MODULUS, &u(RSA_MODULUS)),
            RawAttr::new(CKA_PUBLIC_EXPONENT, &u(RSA_PUBLIC_EXPONENT)),
            RawAttr::new(CKA_PRIVATE_EXPONENT, &u(RSA_PRIVATE_EXPONENT)),
            RawAttr::new(CKA_PRIME_1, &u(RSA_PRIME1)),
            RawAttr::new(CKA_PRIME_2, &u(RSA_PRIME2)),
            RawAttr::new(CKA_EXPONENT_1, &u(RSA_EXPONENT1)),
            RawAttr::new(CKA_EXPONENT_2, &u(RSA_EXPONENT2)),
            RawAttr::new(CKA_COEFFICIENT, &u(RSA_COEFFICIENT)),
        ],
        CKA_UNWRAP_TEMPLATE,
        &[
            RawAttr::bool(CKA_SENSITIVE, true),
            RawAttr::bool(CKA_EXTRACTABLE, false),
        ],
    )
    .map(handle)
    .expect("C_CreateObject(RSA unwrapping key with an unwrap template)")
}

/// The attacker's question about one RSA ciphertext `c`, asked with the owner's
/// unwrapping key only: unwrap `c` as a generic secret without `CKA_VALUE_LEN`
/// (`WrappedLen::Any`: `implicit::decode`), read the length the key got (a plain
/// attribute), unwrap `c` again with that `CKA_VALUE_LEN` (`WrappedLen::Exact`:
/// `eme_pkcs1_v15_decode_implicit`), and compare the two keys' MACs. `None` where the
/// module refuses either unwrap.
fn two_unwraps_agree(ck: &Ck, session: &Session, kek: ObjectHandle, c: &[u8]) -> Option<bool> {
    let mech = RawMech::none(CKM_RSA_PKCS);
    let sign = || vec![RawAttr::bool(CKA_SIGN, true)];
    let (any, len) = unwrapped_mac(ck, session, &mech, kek, c, &generic_template(None, sign()))?;
    let (exact, _) = unwrapped_mac(
        ck,
        session,
        &mech,
        kek,
        c,
        &generic_template(Some(len as CK_ULONG), sign()),
    )?;
    Some(any == exact)
}

/// A 256-byte block: `head` (its first two bytes), `ps_len` non-zero padding bytes,
/// a zero byte if `separator`, and non-zero message bytes to the end.
fn block(head: [u8; 2], ps_len: usize, separator: bool) -> Vec<u8> {
    let mut b = head.to_vec();
    b.extend((0..ps_len).map(|i| if i % 2 == 0 { 0x5A } else { 0xA5 }));
    if separator {
        b.push(0);
    }
    b.resize(256, 0x33);
    b
}

/// Defect: the two implicit rejections of `C_UnwrapKey(CKM_RSA_PKCS)` make different
/// substitutes for one bad block, so comparing them is Bleichenbacher's oracle.
/// `token/keys.rs` `unwrap_key` asks for `WrappedLen::Any` when a generic secret's
/// template has no `CKA_VALUE_LEN` and `WrappedLen::Exact(len)` when it has one. `Any`
/// goes to `implicit::decode`: a bad block gives the last L bytes of the draft's PRF
/// stream ("message"), L pseudo-random. `Exact` goes to
/// `padding::eme_pkcs1_v15_decode_implicit`: a bad block gives the first `len` bytes of
/// another stream (HMAC of the key's KDK over "kmshsm implicit rejection"). A good block
/// gives its message both ways. So the caller unwraps a ciphertext without a length,
/// reads the key's `CKA_VALUE_LEN` (a plain attribute), unwraps it again with that
/// length, and signs with both (HMAC): the MACs agree exactly when the block is
/// PKCS#1-conforming (`00 02`, eight or more non-zero bytes, a zero). That is the
/// conformance oracle of Bleichenbacher's attack, which with the ciphertexts c·s^e mod n
/// it chooses (n and e are public) recovers the plaintext of any blob wrapped for the
/// key — a wrapped sensitive key — from unwraps alone.
///
/// Scenario: the owner's RSA key may unwrap only (no decrypt, no sign: no raw RSA,
/// docs/security.md "Raw RSA"), and its `CKA_UNWRAP_TEMPLATE` makes everything it
/// unwraps sensitive and unextractable; a sensitive key wrapped for it with
/// `CKM_RSA_PKCS` is in the attacker's hands, as is the public key.
///
/// Expected (docs/security.md, "PKCS#1 v1.5: implicit rejection everywhere": "a bad
/// block ... gives a synthetic key ... The unwrapped key simply does not work"; the
/// attack table: Bleichenbacher's padding oracle on `C_UnwrapKey(CKM_RSA_PKCS)` is
/// refused by implicit rejection): whether the two unwraps agree does not depend on the
/// block's padding (one substitute per block, whatever the length asked, or one of the
/// two unwraps refused). Actual: they agree for every conforming block, the owner's
/// wrapped key included, and for no other.
#[test]
fn rsa_pkcs_unwrap_with_and_without_a_length_is_no_padding_oracle() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let s = session.handle();
    let kek = owners_rsa_kek(&session);
    let public = rsa_public(&session, &hex(RSA_MODULUS), &hex(RSA_PUBLIC_EXPONENT));

    // The owner wraps a sensitive key for the unwrapping key.
    let (_secret_value, secret) = victim(&session, 32);
    let owners_blob = ck
        .wrap(
            s,
            &RawMech::none(CKM_RSA_PKCS),
            public.handle(),
            secret.handle(),
        )
        .expect("C_WrapKey(CKM_RSA_PKCS)");

    // The attacker's blocks, raw-RSA encrypted under the public key: whether each is
    // PKCS#1 v1.5-conforming is what the oracle must not tell.
    let blocks: Vec<(&str, bool, Vec<u8>)> = vec![
        (
            "conforming, 24-byte message",
            true,
            block([0, 2], 229, true),
        ),
        (
            "conforming, 100-byte message",
            true,
            block([0, 2], 153, true),
        ),
        ("00 01 instead of 00 02", false, block([0, 1], 229, true)),
        ("00 03 instead of 00 02", false, block([0, 3], 229, true)),
        ("no zero separator", false, block([0, 2], 254, false)),
        ("padding of 5 bytes", false, block([0, 2], 5, true)),
    ];
    let mut answers = vec![(
        "the owner's wrapped key",
        true,
        two_unwraps_agree(&ck, &session, kek, &owners_blob),
    )];
    for (what, conforming, b) in &blocks {
        let c = ck
            .encrypt(s, &RawMech::none(CKM_RSA_X_509), public.handle(), b)
            .expect("C_Encrypt(CKM_RSA_X_509) with the public key");
        answers.push((what, *conforming, two_unwraps_agree(&ck, &session, kek, &c)));
    }
    let first = answers[0].2;
    assert!(
        answers.iter().all(|(_, _, a)| *a == first),
        "C_UnwrapKey(CKM_RSA_PKCS) without and with the length the first unwrap gave: \
         whether the two keys sign alike tells the block's padding \
         (what, conforming, agree): {answers:?}"
    );
}

// ---------------------------------------------------------------------------------------
// C_UnwrapKey(CKM_AES_KEY_WRAP): a cut of the key itself
// ---------------------------------------------------------------------------------------

/// Defect: `C_UnwrapKey(CKM_AES_KEY_WRAP)` cuts the unwrapped key to any
/// `CKA_VALUE_LEN` up to 7 bytes shorter than what the blob holds
/// (`mechanism/aes.rs` `KeyWrap::unwrap` → `keypad::trim_zero_padding`, which "never
/// cuts more than `block - 1` bytes" but does not ask whether they were padding). A
/// 32-byte key (no padding at all) unwrapped with `CKA_VALUE_LEN` = j is its first j
/// bytes. The attacker makes that key derivable, appends a guess and the bytes already
/// found (`CKM_CONCATENATE_BASE_AND_DATA`: the derived key holds all of its source,
/// which the rule allows) and compares its MAC with the MAC under the whole key
/// unwrapped from the same blob: they agree exactly when the guess is the key's byte j.
/// 256 guesses a byte, seven bytes (56 bits) of the wrapped sensitive key. KW is
/// authenticated, so the blob cannot be altered, but nothing stops the cut.
///
/// Scenario of review 14g: the KEK may wrap and unwrap only, and its
/// `CKA_UNWRAP_TEMPLATE` makes everything it unwraps sensitive and unextractable; a
/// sensitive key wrapped under it with `CKM_AES_KEY_WRAP` — the wrap docs/security.md
/// "Known limits" recommends instead of ECB and CBC — is in the attacker's hands.
///
/// Expected (docs/security.md attack table: "no derived key holds part of a sensitive
/// source ... since a key of a few unknown bytes is found by trying them, one byte of
/// the source at a time"; `keypad.rs`: "no short key of a few unknown bytes is cut ...
/// of someone else's key"; "Known limits": KW is the safe way to wrap secret keys): no
/// byte of the wrapped key is recovered (for instance a cut of a KW-unwrapped key to
/// fewer bytes than it holds refused, or only the zero bytes the wrap added cut).
/// Actual: its last seven bytes are recovered exactly.
#[test]
fn aes_key_wrap_unwrap_does_not_cut_the_wrapped_key() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let s = session.handle();
    let kek = owners_kek(&session);
    let (secret_value, secret) = victim(&session, 32);
    let kw = RawMech::none(CKM_AES_KEY_WRAP);
    let wrapped = ck
        .wrap(s, &kw, kek.handle(), secret.handle())
        .expect("C_WrapKey(CKM_AES_KEY_WRAP)");
    assert_eq!(wrapped.len(), 40);

    // The MAC under the whole key, unwrapped from the blob (sensitive: never read).
    let sign = || vec![RawAttr::bool(CKA_SIGN, true)];
    let (whole, len) = unwrapped_mac(
        &ck,
        &session,
        &kw,
        kek,
        &wrapped,
        &generic_template(Some(32), sign()),
    )
    .expect("C_UnwrapKey(CKM_AES_KEY_WRAP) of the whole key");
    assert_eq!(len, 32);

    // From the last byte backwards: the key cut to j bytes, then j's guess and the
    // bytes found after it appended, signs as the whole key exactly for the right guess.
    let mut found: Vec<u8> = Vec::new(); // bytes j+1..32, in order
    for j in (25..32).rev() {
        let cut = ck
            .unwrap(
                s,
                &kw,
                kek.handle(),
                &wrapped,
                &generic_template(Some(j as CK_ULONG), vec![RawAttr::bool(CKA_DERIVE, true)]),
            )
            .map(handle);
        let Ok(cut) = cut else { break };
        assert!(attribute_bool(&session, cut, AttributeType::Sensitive));
        let mut byte = None;
        for guess in 0..=255u8 {
            let tail = [&[guess][..], &found].concat();
            let joined = ck
                .derive(
                    s,
                    &string_data(CKM_CONCATENATE_BASE_AND_DATA, &tail),
                    cut.handle(),
                    &generic_template(None, sign()),
                )
                .map(handle)
                .expect("CKM_CONCATENATE_BASE_AND_DATA of the cut key");
            let mac = session.sign(&Mechanism::Sha256Hmac, joined, DATA).unwrap();
            session.destroy_object(joined).unwrap();
            if mac == whole {
                byte = Some(guess);
                break;
            }
        }
        session.destroy_object(cut).unwrap();
        let Some(b) = byte else { break };
        found.insert(0, b);
    }
    assert!(
        found.is_empty() || found[..] != secret_value[32 - found.len()..],
        "C_UnwrapKey(CKM_AES_KEY_WRAP) cut to fewer bytes than the wrapped key holds: its \
         last {} bytes were recovered",
        found.len()
    );
}

// ---------------------------------------------------------------------------------------
// C_DeriveKey(CKM_ECDH1_DERIVE, CKD_NULL): a derive template's sensitivity cut away
// ---------------------------------------------------------------------------------------

/// Defect: `C_DeriveKey(CKM_ECDH1_DERIVE)` with `CKD_NULL` gives the leftmost
/// `CKA_VALUE_LEN` bytes of the shared secret Z for any length down to one byte
/// (`mechanism/ecdh_kdf.rs` `apply_kdf`), and the base key's `CKA_DERIVE_TEMPLATE`
/// (sensitive, unextractable) makes each such key sensitive but does nothing about its
/// length. A key of one byte is found by trying its 256 values against its HMAC; a key
/// of two bytes whose first is known, the same; and so on: 32 derivations and at most
/// 8,192 HMACs computed outside recover the whole Z, which the derive template was to
/// keep inside the token (a full-length derivation makes it a sensitive key). The
/// `guarded` rule that stops such cuts in `CKM_CONCATENATE_*`/`CKM_XOR_*`/
/// `CKM_EXTRACT_KEY_FROM_KEY` (`mechanism/simple_derive.rs`) is not applied here; the
/// same prefix property holds for the hash KDFs of ECDH and for `CKM_HKDF_DERIVE`
/// (T(1) of a shorter OKM is the start of a longer one).
///
/// Scenario: the owner's P-256 key may derive (its use: ECDH with senders' ephemeral
/// keys), and its `CKA_DERIVE_TEMPLATE` makes every derived key sensitive and
/// unextractable; a sender's ephemeral public key is in the attacker's hands.
///
/// Expected (docs/security.md attack table: "Derive a key that escapes a source key's
/// `CKA_DERIVE_TEMPLATE` ... refused"; "What `CKA_DERIVE` gives away": "To bound it,
/// give the base key a `CKA_DERIVE_TEMPLATE`"; the rule that no derived key is a few
/// unknown bytes "found by trying them, one byte ... at a time"): Z, which every key the
/// owner's key derives keeps sensitive, is not recovered (for instance a key shorter than
/// a brute-force bound refused under a derive template that forces sensitivity).
/// Actual: its 32 bytes are recovered exactly.
#[test]
fn ecdh_under_a_sensitive_derive_template_does_not_give_the_shared_secret_byte_by_byte() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let s = session.handle();
    let f = Raw::load();
    let owners = f
        .create_with_nested(
            s,
            &[
                RawAttr::ulong(CKA_CLASS, CKO_PRIVATE_KEY),
                RawAttr::ulong(CKA_KEY_TYPE, CKK_EC),
                RawAttr::bool(CKA_TOKEN, false),
                RawAttr::bool(CKA_PRIVATE, true),
                RawAttr::bool(CKA_SENSITIVE, true),
                RawAttr::bool(CKA_EXTRACTABLE, false),
                RawAttr::bool(CKA_SIGN, false),
                RawAttr::bool(CKA_DERIVE, true),
                RawAttr::new(CKA_EC_PARAMS, &hex(EC_PARAMS_P256)),
                RawAttr::new(CKA_VALUE, &hex(EC_PRIVATE_VALUE)),
            ],
            CKA_DERIVE_TEMPLATE,
            &[
                RawAttr::bool(CKA_SENSITIVE, true),
                RawAttr::bool(CKA_EXTRACTABLE, false),
            ],
        )
        .map(handle)
        .expect("C_CreateObject(P-256 key with a derive template)");

    // A sender's ephemeral pair; the sender computes Z with the owner's public point.
    let (sender_public, sender_private) = session
        .generate_key_pair(
            &Mechanism::EccKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::EcParams(hex(EC_PARAMS_P256)),
            ],
            &[
                Attribute::Token(false),
                Attribute::Sensitive(false),
                Attribute::Derive(true),
            ],
        )
        .expect("C_GenerateKeyPair(P-256)");
    let sender_point = attribute_bytes(&session, sender_public, AttributeType::EcPoint);
    let sender_point = sender_point[sender_point.len() - 65..].to_vec();
    let owners_point = hex(EC_POINT_DER)[2..].to_vec();
    let z = ck
        .derive(
            s,
            &RawMech::ecdh(CKD_NULL, &owners_point),
            sender_private.handle(),
            &generic_template(
                Some(32),
                vec![
                    RawAttr::bool(CKA_SENSITIVE, false),
                    RawAttr::bool(CKA_EXTRACTABLE, true),
                ],
            ),
        )
        .map(handle)
        .expect("the sender's ECDH");
    let z = attribute_bytes(&session, z, AttributeType::Value);
    assert_eq!(z.len(), 32);

    // The attacker, with the owner's key: Z one byte longer at a time.
    let mut found = Vec::new();
    for len in 1..=32usize {
        let key = ck
            .derive(
                s,
                &RawMech::ecdh(CKD_NULL, &sender_point),
                owners.handle(),
                &generic_template(Some(len as CK_ULONG), vec![RawAttr::bool(CKA_SIGN, true)]),
            )
            .map(handle);
        let Ok(key) = key else { break };
        assert!(attribute_bool(&session, key, AttributeType::Sensitive));
        let mac = session.sign(&Mechanism::Sha256Hmac, key, DATA).unwrap();
        session.destroy_object(key).unwrap();
        let Some(b) = brute_force_last_byte(&found, DATA, &mac) else {
            break;
        };
        found.push(b);
    }
    assert!(
        found != z,
        "C_DeriveKey(CKM_ECDH1_DERIVE, CKD_NULL) to 1, 2, ... 32 bytes under a derive \
         template forcing sensitivity: the shared secret was recovered byte by byte"
    );
}
