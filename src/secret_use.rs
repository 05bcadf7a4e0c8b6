//! A per-thread note that the call in progress worked with secret values: opened sealed
//! attributes, ran a symmetric key or a private key, or set up an operation that did —
//! and how far below the entry point those values may lie on the stack.
//!
//! The FFI guard scrubs the stack after an entry point that handles secrets
//! (`ffi::guard`). For the cryptographic operation families (C_Encrypt*, C_Sign*, ...)
//! most calls do not: a length query, a C_SignInit that only takes a reference to a
//! parsed private key, a public-key verification. Those families scrub only when this
//! note was taken, which spares ECDSA signing two of its three scrubs. Everything that
//! can leave a secret on the stack must call `note` — when in doubt, call it; a needless
//! note costs one scrub, a missing one leaves key bytes in the host's memory.
//!
//! `note_within` is for the few hot steps whose stack depth was measured: in a release
//! build their scrub covers that many bytes instead of the whole scrub area. Any `note`
//! in the same call wins. This module must not decide anything else.

use std::cell::Cell;

/// The reach of a `note`: the whole scrub area.
pub(crate) const WHOLE: usize = usize::MAX;

/// The reach of a single-part AES-GCM step with a prepared key (`C_Encrypt`,
/// `C_Decrypt`): release builds were measured (`bench/stackreach.sh`, inputs of 1 B to
/// 64 KiB) to write at most 3.9 KiB below the entry point (measured with a 3 KiB scrub;
/// 2.3 KiB up to 256 B of input, `AES_GCM_SMALL_REACH`), so a 6 KiB scrub covers it.
/// Debug builds, whose frames are several times larger, always scrub the whole area
/// (`ffi::guard`); so does every target but x86_64, where aws-lc's code paths (and so
/// their depth) were not measured, and any step off aws-lc's AEAD path (`gcm_fast_path`).
/// CI measures the depths again on its own CPU (`scripts/test.sh`).
#[cfg(target_arch = "x86_64")]
pub(crate) const AES_GCM_REACH: usize = 6 * 1024;
#[cfg(not(target_arch = "x86_64"))]
pub const AES_GCM_REACH: usize = WHOLE;

/// The reach of a single-part AES-GCM step with a prepared key on at most
/// `AES_GCM_SMALL_INPUT` bytes of input: measured at 2.3 KiB for 1 to 256 bytes, where
/// 1 KiB and more reach 3.9 KiB (`bench/stackreach.sh`, which CI runs on each side of
/// the bound). The small payloads a KMS encrypts (data keys) pay for a 3 KiB scrub, not
/// a 6 KiB one. Only on x86_64, as `AES_GCM_REACH`.
#[cfg(target_arch = "x86_64")]
pub(crate) const AES_GCM_SMALL_REACH: usize = 3 * 1024;
#[cfg(not(target_arch = "x86_64"))]
pub const AES_GCM_SMALL_REACH: usize = WHOLE;

/// The largest input of a single-part AES-GCM step that `AES_GCM_SMALL_REACH` covers.
pub(crate) const AES_GCM_SMALL_INPUT: usize = 256;

/// The reach of an ECDSA signature on P-256, P-384 or P-521 (aws-lc's `ECDSA_do_sign`,
/// `crypto::ecdsa_sign`): release builds were measured to leave nothing below a 4 KiB
/// scrub on P-256 and to write 5.4–5.6 KiB below the entry point on P-384 and 5.5–5.7
/// KiB on P-521 (through aws-lc-rs's signing, before: 18.1, 19.4 and 19.5 KiB).
/// docs/performance.md, "Fifth pass". Only on x86_64, as `AES_GCM_REACH`.
#[cfg(target_arch = "x86_64")]
pub(crate) const ECDSA_NIST_REACH: usize = 8 * 1024;
#[cfg(not(target_arch = "x86_64"))]
pub const ECDSA_NIST_REACH: usize = WHOLE;

/// The reach of an ECDSA signature on secp256k1 (aws-lc's generic curve code): measured
/// at 11.9 KiB below the entry point in release builds (26.3 KiB through aws-lc-rs).
/// Only on x86_64, as `AES_GCM_REACH`.
#[cfg(target_arch = "x86_64")]
pub(crate) const ECDSA_SECP256K1_REACH: usize = 24 * 1024;
#[cfg(not(target_arch = "x86_64"))]
pub const ECDSA_SECP256K1_REACH: usize = WHOLE;

thread_local! {
    static REACH: Cell<usize> = const { Cell::new(0) };
}

/// Records that the current call handled secret values, anywhere on the stack.
pub(crate) fn note() {
    note_within(WHOLE);
}

/// Records that the current call handled secret values only within `reach` bytes of
/// stack below the entry point, a depth measured for release builds (the constants
/// above). Several notes in one call keep the deepest.
pub(crate) fn note_within(reach: usize) {
    REACH.with(|r| r.set(r.get().max(reach)));
}

/// How far below the entry point the secrets noted since the last `take` may lie (0:
/// nothing noted); clears the note.
pub(crate) fn take() -> usize {
    REACH.with(|r| r.replace(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_is_taken_once_and_stays_on_its_thread() {
        assert_eq!(take(), 0);
        note();
        std::thread::spawn(|| assert_eq!(take(), 0, "another thread's note"))
            .join()
            .unwrap();
        assert_eq!(take(), WHOLE);
        assert_eq!(take(), 0, "taking clears the note");
    }

    #[test]
    fn the_deepest_note_of_a_call_wins() {
        note_within(AES_GCM_REACH);
        assert_eq!(take(), AES_GCM_REACH);
        note_within(ECDSA_NIST_REACH);
        note_within(AES_GCM_REACH);
        assert_eq!(take(), ECDSA_NIST_REACH);
        note_within(AES_GCM_REACH);
        note();
        note_within(AES_GCM_REACH);
        assert_eq!(take(), WHOLE, "a whole-area note is never narrowed");
    }
}
