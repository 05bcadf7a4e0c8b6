//! An attacker's review (branch attack14g) of the cryptographic mechanisms: decryption
//! and unwrap oracles, AEAD parameters, public-key validation and the derivations. Each
//! test reproduces one defect found by reading the code, asserts what PKCS#11 3.0, the
//! RFCs or the project's own documents promise, and fails against the module as it was
//! reviewed. Its doc comment says what is wrong.
//! Run with `cargo nextest run --test attack_review14g` (after `cargo build --lib`).

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

/// An RSA-2048 pair whose private half unwraps and whose public half encrypts.
fn rsa_unwrap_pair(session: &Session) -> (ObjectHandle, ObjectHandle) {
    session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::ModulusBits(2048.into()),
                Attribute::Encrypt(true),
            ],
            &[
                Attribute::Token(false),
                Attribute::Private(true),
                Attribute::Unwrap(true),
            ],
        )
        .expect("C_GenerateKeyPair(RSA-2048)")
}

// ---------------------------------------------------------------------------------------
// C_UnwrapKey(CKM_RSA_PKCS): the template's length reaches an allocation unchecked
// ---------------------------------------------------------------------------------------

/// Defect: `C_UnwrapKey(CKM_RSA_PKCS)` takes the template's `CKA_VALUE_LEN` as the
/// length of the implicit-rejection substitute without any bound, and allocates it
/// before anything judges it. `token/keys.rs` `unwrap_key` turns any `CKA_VALUE_LEN`
/// into `WrappedLen::Exact(len)`; `mechanism/rsa.rs` `Pkcs1::unwrap` passes it to
/// `RsaPrivateKey::unwrap_pkcs1`, and `crypto/rsa/padding.rs`
/// `eme_pkcs1_v15_decode_implicit` does `Vec::with_capacity(expected_len + 32)` and then
/// fills it with HMAC blocks until it holds `expected_len` bytes. With `CKA_VALUE_LEN`
/// = 2^40 the allocation of a terabyte fails and Rust's allocation-failure handler
/// aborts the host process (SIGABRT: no `catch_unwind` can catch it); a value that does
/// fit in memory (a few GiB) keeps the call computing HMACs for minutes; a value near
/// 2^64 overflows the `+ 32` (a panic in a debug build, an endless loop in a release
/// one). Any caller with an unwrapping RSA key (a public session, if the key is public)
/// kills the application that loaded the module. The other unwraps are safe only by
/// accident (`keypad::trim_zero_padding` compares the length with the plaintext first).
///
/// Expected (PKCS#11 3.0 §5.14 `C_UnwrapKey`: a template value the key cannot take is
/// `CKR_TEMPLATE_INCONSISTENT`/`CKR_ATTRIBUTE_VALUE_INVALID`; docs/mechanisms.md caps
/// every other secret the module makes at 64 KiB or less): the call is refused with a
/// PKCS#11 code, before the decryption (the length is the caller's, not a secret, so the
/// refusal is no padding oracle), and the module keeps answering. Actual: the process
/// aborts ("memory allocation of 1099511627808 bytes failed").
#[test]
fn rsa_pkcs_unwrap_with_a_huge_value_len_does_not_abort_the_process() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let (public, private) = rsa_unwrap_pair(&session);
    let ciphertext = session
        .encrypt(&Mechanism::RsaPkcs, public, &[0x11; 32])
        .expect("C_Encrypt(CKM_RSA_PKCS)");
    let huge = generic_template(Some(1 << 40), vec![]);
    let answer = ck.unwrap(
        session.handle(),
        &RawMech::none(CKM_RSA_PKCS),
        private.handle(),
        &ciphertext,
        &huge,
    );
    assert!(
        matches!(
            answer,
            Err(RvError::TemplateInconsistent
                | RvError::AttributeValueInvalid
                | RvError::KeySizeRange
                | RvError::WrappedKeyLenRange)
        ),
        "CKA_VALUE_LEN 2^40 must be refused by its value, got {answer:?}"
    );
    // The module still unwraps an ordinary key.
    let ok = ck
        .unwrap(
            session.handle(),
            &RawMech::none(CKM_RSA_PKCS),
            private.handle(),
            &ciphertext,
            &generic_template(Some(32), vec![]),
        )
        .expect("an ordinary unwrap after the attack");
    assert_ne!(ok, 0);
}

// ---------------------------------------------------------------------------------------
// C_UnwrapKey(CKM_AES_CBC_PAD): a padding oracle
// ---------------------------------------------------------------------------------------

/// Whether `C_UnwrapKey(CKM_AES_CBC_PAD)` of the two blocks `previous || block` makes a
/// key: the attacker's only observation. The last block's padding is judged against
/// `previous`, which the attacker chooses; the first block's junk keeps the key from
/// being empty when the whole last block is padding.
fn unwraps(
    ck: &Ck,
    session: &Session,
    kek: ObjectHandle,
    previous: &[u8; 16],
    block: &[u8],
) -> bool {
    ck.unwrap(
        session.handle(),
        &RawMech::bytes(CKM_AES_CBC_PAD, &[0u8; 16]),
        kek.handle(),
        &[&previous[..], block].concat(),
        &generic_template(None, vec![]),
    )
    .is_ok()
}

/// Vaudenay's attack on one CBC block: the block cipher's decryption of `block`,
/// learnt from whether a chosen previous block makes its PKCS#7 padding valid; `None` when the
/// answers do not allow it.
fn decrypt_block_by_oracle(
    ck: &Ck,
    session: &Session,
    kek: ObjectHandle,
    block: &[u8],
) -> Option<[u8; 16]> {
    let mut intermediate = [0u8; 16];
    for pos in (0..16).rev() {
        let pad = (16 - pos) as u8;
        let mut found = None;
        for guess in 0..=255u8 {
            let mut iv = [0u8; 16];
            for j in pos + 1..16 {
                iv[j] = intermediate[j] ^ pad;
            }
            iv[pos] = guess;
            if !unwraps(ck, session, kek, &iv, block) {
                continue;
            }
            if pos == 15 {
                // Rule out a longer padding that happened to be valid: change the byte
                // before; a one-byte padding stays valid.
                iv[14] ^= 0x01;
                if !unwraps(ck, session, kek, &iv, block) {
                    continue;
                }
            }
            found = Some(guess ^ pad);
            break;
        }
        intermediate[pos] = found?;
    }
    Some(intermediate)
}

/// Defect: `C_UnwrapKey(CKM_AES_CBC_PAD)` is a padding oracle. `mechanism/aes.rs`
/// `Block::unwrap` decrypts with PKCS#7 unpadding (`crypto/aes/stream.rs`
/// `AesStream::finish`) and maps a bad padding to `CKR_WRAPPED_KEY_INVALID`, while a
/// good one makes the key (`CKR_OK`; a generic secret without `CKA_VALUE_LEN` takes any
/// length, and the new key's `CKA_VALUE_LEN`, never sensitive, even tells the padding's
/// length). The caller chooses the IV (the parameter) and may send any single block, so
/// every block ever encrypted under the unwrapping key in CBC is decrypted byte by byte
/// (Vaudenay 2002; the PKCS#11 form is Clulow 2003), with at most 256 calls per byte.
///
/// The scenario: the owner's key-encryption key may unwrap and wrap, and nothing else,
/// and its `CKA_UNWRAP_TEMPLATE` makes every key it unwraps sensitive and unextractable:
/// keys travel under it only in wrapped form. A sensitive AES key wrapped under it
/// (for backup or transport) is then recovered in clear by anyone who may unwrap with
/// the KEK, without ever reading a key value.
///
/// Expected: the module's own rule for the other unauthenticated modes,
/// `mechanism/keypad.rs` (`trim_zero_padding`: "a check would tell, for a CBC or ECB blob
/// the caller altered, whether chosen bytes of the *key* decrypt to zero, a padding
/// oracle that recovers the wrapped key byte by byte. Mode without integrity, answer
/// without information"), and docs/security.md's attack table, which refuses the same
/// oracle for PKCS#1 v1.5 unwrapping by implicit rejection: the answer must not depend
/// on the padding, so the oracle recovers nothing (a substitute key on bad padding, or a
/// refusal of CBC_PAD unwrapping where its answer would leak). Actual: the oracle
/// recovers the wrapped key's 16 bytes exactly.
#[test]
fn aes_cbc_pad_unwrap_is_no_padding_oracle_on_a_wrapped_sensitive_key() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    // The owner's KEK: wrap and unwrap only; what it unwraps is sensitive.
    let kek = owners_kek(&session);
    // The secret: a sensitive AES key that may travel wrapped.
    let (secret_value, secret) = sensitive_aes_key(&session);
    let iv0 = [0x24u8; 16];
    let wrapped = ck
        .wrap(
            session.handle(),
            &RawMech::bytes(CKM_AES_CBC_PAD, &iv0),
            kek.handle(),
            secret.handle(),
        )
        .expect("C_WrapKey(CKM_AES_CBC_PAD)");
    assert_eq!(wrapped.len(), 32, "16 bytes of key and a block of padding");
    // Since the fix of review 14i a KEK whose unwrap template guards what it unwraps
    // takes no unauthenticated unwrap at all, the genuine blob's included.
    let probe = ck.unwrap(
        session.handle(),
        &RawMech::bytes(CKM_AES_CBC_PAD, &iv0),
        kek.handle(),
        &wrapped,
        &generic_template(Some(16), vec![]),
    );
    assert_eq!(probe, Err(RvError::MechanismInvalid));

    // The attack, on the first block alone: D(C1) xor IV0 is the key.
    let recovered = decrypt_block_by_oracle(&ck, &session, kek, &wrapped[..16])
        .map(|d| d.iter().zip(&iv0).map(|(a, b)| a ^ b).collect::<Vec<u8>>());
    assert!(
        recovered.as_deref() != Some(&secret_value[..]),
        "C_UnwrapKey(CKM_AES_CBC_PAD) answers by the padding: the oracle recovered the \
         wrapped sensitive key"
    );
}

// ---------------------------------------------------------------------------------------
// Derivations that expose bits: a sensitive key recovered byte by byte
// ---------------------------------------------------------------------------------------

/// Derives with `mech` from `base` a generic secret of `len` bytes that may sign, signs
/// `data` with it (HMAC-SHA256), and returns the MAC; `None` when the module refuses.
fn derived_mac(
    ck: &Ck,
    session: &Session,
    mech: &RawMech,
    base: ObjectHandle,
    len: CK_ULONG,
    data: &[u8],
) -> Option<Vec<u8>> {
    let template = generic_template(Some(len), vec![RawAttr::bool(CKA_SIGN, true)]);
    let key = handle(
        ck.derive(session.handle(), mech, base.handle(), &template)
            .ok()?,
    );
    // The derived key is sensitive, as docs/security.md promises: its value is never read.
    assert!(attribute_bool(session, key, AttributeType::Sensitive));
    session.sign(&Mechanism::Sha256Hmac, key, data).ok()
}

/// Defect: a sensitive, unextractable key with `CKA_DERIVE` is read in full, one byte at
/// a time, through keys derived from it with 8 unknown bits each. `CKM_EXTRACT_KEY_FROM_KEY`
/// with `CKA_VALUE_LEN` 1 makes a one-byte key of any byte of the base, and
/// `CKM_CONCATENATE_DATA_AND_BASE` cut by `CKA_VALUE_LEN` makes a 16-byte key of 15 known
/// bytes and one byte of the base (so no minimum key length helps);
/// `mechanism/simple_derive.rs` `SimpleDerive::value` (`extract_bits`, `truncate`) allow
/// any length, and the token makes the result sensitive but lets the template give it
/// `CKA_SIGN`. The MAC of known data under such a key tells its one unknown byte after at
/// most 256 HMACs offline. The base key never signs or leaves the token, yet the attacker
/// ends up with its value.
///
/// Expected (PKCS#11 3.0 §4.9: a sensitive key's value "cannot be revealed"; §2.43
/// makes derived keys sensitive precisely so that these mechanisms do not reveal their
/// sources; docs/security.md's attack table: "Read a sensitive or unextractable key's
/// bits through a derivation that exposes them" is refused): a derivation that exposes
/// bits may not make, from a sensitive or unextractable source, a key with fewer unknown
/// bits than the source (an extraction of part of it, a cut of it, an XOR with shorter
/// data), so no byte of the base can be recovered. docs/security.md's "What `CKA_DERIVE`
/// gives away" admits copies with other usages, not the value of a sensitive key.
/// Actual: both routes recover the base key's 16 bytes exactly.
#[test]
fn a_sensitive_key_is_not_recovered_through_one_byte_derived_keys() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let value = session.generate_random_vec(16).unwrap();
    let base = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(false),
            Attribute::Derive(true),
            Attribute::Value(value.clone()),
        ])
        .expect("C_CreateObject(sensitive generic secret)");
    let data = b"known message";

    // Route 1: CKM_EXTRACT_KEY_FROM_KEY, one byte from bit 8i.
    let by_extraction: Option<Vec<u8>> = (0..16u64)
        .map(|i| {
            let start: CK_EXTRACT_PARAMS = 8 * i;
            let m = RawMech::structure(CKM_EXTRACT_KEY_FROM_KEY, &start, vec![]);
            let mac = derived_mac(&ck, &session, &m, base, 1, data)?;
            brute_force_last_byte(&[], data, &mac)
        })
        .collect();
    assert!(
        by_extraction.as_deref() != Some(&value[..]),
        "CKM_EXTRACT_KEY_FROM_KEY with one-byte keys recovered the sensitive base key"
    );

    // Route 2: CKM_CONCATENATE_DATA_AND_BASE, 15 known bytes then the base, cut to 16.
    let mut known = Vec::new();
    for i in 0..16 {
        let filler = vec![0x5Au8; 15 - i];
        let m = string_data(CKM_CONCATENATE_DATA_AND_BASE, &filler);
        let Some(mac) = derived_mac(&ck, &session, &m, base, 16, data) else {
            break;
        };
        let prefix = [&filler[..], &known[..]].concat();
        let Some(b) = brute_force_last_byte(&prefix, data, &mac) else {
            break;
        };
        known.push(b);
    }
    assert!(
        known != value,
        "CKM_CONCATENATE_DATA_AND_BASE cut to 16 bytes recovered the sensitive base key"
    );
}

// ---------------------------------------------------------------------------------------
// CKM_RSA_PKCS_PSS: a salt length near 2^64 panics and poisons the module
// ---------------------------------------------------------------------------------------

/// Defect: a `CK_RSA_PKCS_PSS_PARAMS.sLen` near 2^64 makes `C_Verify` (with a public
/// key: no login needed) and `C_Sign` panic, and a caught panic poisons the module: every
/// later call of every session answers `CKR_GENERAL_ERROR` until the application calls
/// `C_Finalize` and `C_Initialize` (`ffi/guard.rs`). `mechanism/rsa.rs` `pss_params` only
/// converts `sLen` to `usize`; `crypto/rsa/padding.rs` `emsa_pss_verify` and
/// `emsa_pss_encode` then compute `h + salt_len + 2`, which overflows (a panic with
/// overflow checks, as in the debug build under test; without them the sum wraps past the
/// size check, and `emsa_pss_encode` panics on `vec![0u8; salt_len]`, "capacity
/// overflow", while `emsa_pss_verify` computes a wrapped `ps_len` and can index past
/// `db`).
///
/// Expected (PKCS#11 3.0 §2.1.13: `sLen` is bounded by the modulus; a parameter the
/// mechanism cannot take is `CKR_MECHANISM_PARAM_INVALID`, at the `Init` or at the
/// operation; RFC 8017 §9.1.1 step 3 / §9.1.2 step 3: emLen < hLen + sLen + 2 is
/// "encoding error" / "inconsistent"): the verification answers
/// `CKR_MECHANISM_PARAM_INVALID` or `CKR_SIGNATURE_INVALID`, the signature
/// `CKR_MECHANISM_PARAM_INVALID`, and the module keeps working. Actual:
/// `CKR_GENERAL_ERROR`, and every later call (here a SHA-256 digest) too.
#[test]
fn a_pss_salt_length_near_two_to_the_64_does_not_poison_the_module() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let (public, private) = session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(false),
                Attribute::ModulusBits(2048.into()),
                Attribute::Verify(true),
            ],
            &[
                Attribute::Token(false),
                Attribute::Private(true),
                Attribute::Sign(true),
            ],
        )
        .expect("C_GenerateKeyPair(RSA-2048)");
    let pss = RawMech::pss(
        CKM_RSA_PKCS_PSS,
        CKM_SHA256,
        CKG_MGF1_SHA256,
        usize::MAX, // sLen = CK_ULONG max
    );
    let hash = [0x42u8; 32];
    let s = session.handle();

    // The verification, with the public key.
    let verified = ck
        .verify_init(s, &pss, public.handle())
        .and_then(|()| ck.verify_call(s, &hash, &[0x01; 256]));
    assert!(
        matches!(
            verified,
            Err(RvError::MechanismParamInvalid | RvError::SignatureInvalid)
        ),
        "C_Verify(PSS, sLen 2^64-1): {verified:?}"
    );
    session
        .digest(&Mechanism::Sha256, b"alive")
        .expect("the module still digests after the verification");

    // The signature, with the private key.
    let signed = ck
        .sign_init(s, &pss, private.handle())
        .and_then(|()| ck.sign_call(s, &hash, Some(256)).rv);
    assert!(
        matches!(signed, Err(RvError::MechanismParamInvalid)),
        "C_Sign(PSS, sLen 2^64-1): {signed:?}"
    );
    session
        .digest(&Mechanism::Sha256, b"alive")
        .expect("the module still digests after the signature");
}
