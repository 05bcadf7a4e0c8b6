//! An attacker's review (branch attack14i) of the fixes between 6252504 and f036878: the
//! implicit rejection of the ECB/CBC/CBC-PAD unwraps whose substitute now moves with the
//! IV as a real key does (`mechanism/keypad.rs` `unpad`), and the rule that no derived
//! key holds part of a sensitive or unextractable source (`token/derive.rs` `guarded`).
//! Each test reproduces one defect found by reading the code, asserts what the project's
//! own documents promise, and fails against the module as it was reviewed. Its doc
//! comment says what is wrong.
//! Fixed by refusing the unauthenticated unwraps (ECB, CBC, CBC-PAD) to an unwrapping
//! key whose `CKA_UNWRAP_TEMPLATE` makes what it unwraps sensitive or unextractable
//! (docs/security.md, "Unauthenticated unwraps"): the comparison needs two of them.
//! Run with `cargo nextest run --test attack_review14i` (after `cargo build --lib`).

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use common::mech::*;
use common::raw::RawAttr;
use common::*;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{AttributeType, ObjectHandle};
use cryptoki::session::Session;
use cryptoki_sys::*;

/// The attacker's tools: the module, a logged-in session and the owner's KEK (which the
/// attacker may unwrap with).
struct Unwrapper<'a> {
    ck: &'a Ck,
    session: &'a Session,
    kek: ObjectHandle,
}

const DATA: &[u8] = b"known message";

impl Unwrapper<'_> {
    /// The MAC of `DATA` under the key `C_UnwrapKey(mech)` makes of `block` under `iv`
    /// as a generic secret of `len` bytes (sensitive and unextractable: never read);
    /// `None` where the module refuses the unwrap or the MAC (no oracle then).
    fn mac(
        &self,
        mech: CK_MECHANISM_TYPE,
        iv: &[u8; 16],
        block: &[u8],
        len: usize,
    ) -> Option<Vec<u8>> {
        let key = self
            .ck
            .unwrap(
                self.session.handle(),
                &RawMech::bytes(mech, iv),
                self.kek.handle(),
                block,
                &generic_template(Some(len as CK_ULONG), vec![RawAttr::bool(CKA_SIGN, true)]),
            )
            .map(handle)
            .ok()?;
        // The unwrap template holds: the key is never read.
        assert!(attribute_bool(self.session, key, AttributeType::Sensitive));
        let mac = self.session.sign(&Mechanism::Sha256Hmac, key, DATA).ok();
        self.session.destroy_object(key).unwrap();
        mac
    }
}

/// The AES decryption of `block` under the KEK, recovered by comparing two unwraps of
/// the same block: `C_UnwrapKey(mech)` to a key of `len` bytes (`pad(len)` the padding
/// byte: 0 for CBC, `16 - len` for CBC-PAD) and `C_UnwrapKey(CKM_AES_CBC)` to a key of
/// 16 bytes, which has no padding to judge and is always D(block) xor IV. HMAC pads its
/// key with zero bytes, so when the short key is real and the long one's last bytes are
/// zero the two MACs agree; a substitute never agrees. For each length from 15 down to
/// 1, the one IV byte that makes the padding hold is the one that makes them agree; the
/// first byte is found from a one-byte key's MAC offline.
fn decrypt_block(
    u: &Unwrapper<'_>,
    mech: CK_MECHANISM_TYPE,
    pad: fn(usize) -> u8,
    block: &[u8],
) -> Option<[u8; 16]> {
    let mut d = [0u8; 16];
    let mut last_mac = Vec::new();
    for len in (1..16).rev() {
        let p = pad(len);
        let mut found = None;
        for v in 0..=255u8 {
            let mut iv = [0u8; 16];
            for j in len + 1..16 {
                iv[j] = d[j] ^ p;
            }
            iv[len] = v;
            let short = u.mac(mech, &iv, block, len)?;
            // The same block as a whole 16-byte key, its padding bytes turned to zero.
            let mut iv_full = iv;
            for b in &mut iv_full[len..] {
                *b ^= p;
            }
            if short == u.mac(CKM_AES_CBC, &iv_full, block, 16)? {
                found = Some(v ^ p);
                last_mac = short;
                break;
            }
        }
        d[len] = found?;
    }
    // The key of one byte the last step made real: D(block)[0] (the IV's byte was 0).
    d[0] = brute_force_last_byte(&[], DATA, &last_mac)?;
    Some(d)
}

/// Defect: the implicit rejection of the zero-padded `C_UnwrapKey(CKM_AES_CBC)`
/// (`mechanism/keypad.rs` `unpad`, `Padding::Zero`) is still told apart from a real
/// unwrap, now by the length (`CKA_VALUE_LEN`) rather than the IV. The same block under
/// the same IV unwrapped to a 16-byte key is always D(C) xor IV (a whole block has no
/// padding to judge); unwrapped to `len` bytes it is that key's first `len` bytes when
/// the cut bytes are zero, a substitute when not. HMAC pads a short key with zero bytes,
/// so the two keys sign alike exactly when the cut bytes were zero (a substitute never
/// does): a zero-byte oracle, one byte at a time with a chosen IV, and a sensitive key
/// wrapped with `CKM_AES_CBC` is recovered. The new IV-following substitute does not
/// help: the comparison is between two lengths of one blob under one IV, and the real
/// key of `len` bytes is a prefix of the real key of 16.
///
/// Scenario of review 14g: the KEK may wrap and unwrap only, and its
/// `CKA_UNWRAP_TEMPLATE` makes everything it unwraps sensitive and unextractable.
///
/// Expected (`keypad.rs`'s module comment: "The answer then does not depend on the
/// padding: no padding oracle ... and no key cut from the middle of a block of someone
/// else's key"; docs/security.md's attack table): the wrapped key is not recovered (for
/// instance a zero-padded unwrap to a length that is not a whole number of blocks
/// refused, or keys unwrapped by an unauthenticated mode kept from uses that compare
/// them). Actual: its 16 bytes are recovered.
#[test]
fn cbc_unwrap_is_no_oracle_through_two_lengths_of_one_block() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let kek = owners_kek(&session);
    let (secret_value, secret) = sensitive_aes_key(&session);
    let iv0 = [0x42u8; 16];
    let wrapped = ck
        .wrap(
            session.handle(),
            &RawMech::bytes(CKM_AES_CBC, &iv0),
            kek.handle(),
            secret.handle(),
        )
        .expect("C_WrapKey(CKM_AES_CBC)");
    assert_eq!(wrapped.len(), 16);
    let u = Unwrapper {
        ck: &ck,
        session: &session,
        kek,
    };
    let recovered = decrypt_block(&u, CKM_AES_CBC, |_| 0, &wrapped)
        .map(|d| d.iter().zip(&iv0).map(|(a, b)| a ^ b).collect::<Vec<u8>>());
    assert!(
        recovered.as_deref() != Some(&secret_value[..]),
        "C_UnwrapKey(CKM_AES_CBC) of one block to a short and a whole-block key recovered \
         the wrapped sensitive key: the substitute is told from the real key"
    );
}

/// Defect: the implicit rejection of `C_UnwrapKey(CKM_AES_CBC_PAD)` (`mechanism/keypad.rs`
/// `unpad`, `Padding::Pkcs7`) is told apart from a real unwrap by comparing it with
/// `C_UnwrapKey(CKM_AES_CBC)` of the same block under the same KEK. A single block
/// unwrapped with CBC-PAD to a key of `len` bytes is D(C)[..len] xor IV[..len] when its
/// `16 - len` padding bytes hold; with plain CBC to 16 bytes under the IV whose padding
/// bytes are XORed with the padding value it is that key followed by zero bytes exactly
/// when the padding held. HMAC pads keys with zero bytes, so the two sign alike exactly
/// then: Vaudenay's oracle, one byte at a time, and a sensitive key wrapped with
/// `CKM_AES_CBC_PAD` is recovered. The IV-following substitute does not help: both
/// unwraps use IVs that differ only in the padding's bytes.
///
/// Scenario of review 14g (the KEK may wrap and unwrap with any mechanism, nothing else;
/// what it unwraps is sensitive and unextractable).
///
/// Expected (docs/security.md attack table, "Vaudenay's padding oracle on `C_UnwrapKey`
/// with `CKM_AES_CBC_PAD` ... the answer never depends on it"; `keypad.rs`): the wrapped
/// key is not recovered. Actual: its 16 bytes are.
#[test]
fn cbc_pad_unwrap_is_no_oracle_against_a_cbc_unwrap_of_the_same_block() {
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    let ck = Ck::load();
    let kek = owners_kek(&session);
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
    assert_eq!(wrapped.len(), 32);
    let u = Unwrapper {
        ck: &ck,
        session: &session,
        kek,
    };
    let recovered = decrypt_block(&u, CKM_AES_CBC_PAD, |len| (16 - len) as u8, &wrapped[..16])
        .map(|d| d.iter().zip(&iv0).map(|(a, b)| a ^ b).collect::<Vec<u8>>());
    assert!(
        recovered.as_deref() != Some(&secret_value[..]),
        "C_UnwrapKey(CKM_AES_CBC_PAD) compared with C_UnwrapKey(CKM_AES_CBC) of the same \
         block recovered the wrapped sensitive key: the substitute is told from the real key"
    );
}
