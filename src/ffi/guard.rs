//! The guard every exported function runs in: no panic crosses into the host process,
//! and every `Result` becomes a `CK_RV` through `rv::of`.
//!
//! After a caught panic the module is poisoned: it answers `CKR_GENERAL_ERROR` until
//! `C_Finalize` and `C_Initialize` start it afresh (the host process lives on; SoftHSMv2
//! would call `exit()`). The poison is the process's: a child it forks starts
//! uninitialised, as any child does.
//!
//! After a function that handles secrets, the stack below the entry point is overwritten:
//! key schedules and other fixed-size secret values that the libraries under us build on
//! the stack and move (aws-lc-rs's AES keys, for one) would otherwise stay in the host's
//! stack memory after the call (tests/memory_secrets.rs). Functions that always handle
//! secrets (logins, key generation, wrapping, object creation, attribute access) always
//! scrub; the cryptographic operation families scrub when the call noted secret use
//! (`secret_use`), so length queries and public-key work pay nothing. This module must
//! not know any PKCS#11 semantics beyond those function names.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

use cryptoki_sys::{CKR_DEVICE_ERROR, CKR_OK, CK_RV};

use super::rv;
use crate::error::{Error, Result};

static POISONED: AtomicBool = AtomicBool::new(false);

/// Whether a panic was caught since the last `C_Initialize`.
pub(super) fn poisoned() -> bool {
    POISONED.load(Ordering::SeqCst)
}

pub(super) fn clear_poison() {
    POISONED.store(false, Ordering::SeqCst);
}

/// Runs one entry point. `name` is for the log only.
pub(super) fn run(name: &'static str, f: impl FnOnce() -> Result<()>) -> CK_RV {
    let restarts = matches!(name, "C_Initialize" | "C_Finalize");
    // The poison is this process's: a child's copy of the flag (a `fork()` or raw `clone`
    // child that has not made its own provider) is not, and the child answers as the
    // uninitialised module it is (review 16d).
    if poisoned() && !restarts && !crate::os::fork::inherited() {
        return rv::of(&Error::Poisoned);
    }
    // No note from an earlier call is left to take first: each call's note is taken
    // below, after its closure returned or panicked (and a stale note could only add a
    // scrub, never drop one).
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        #[cfg(debug_assertions)]
        injected_panic(name);
        f()
    }));
    let reach = crate::secret_use::take();
    match scrub_reach(name, reach) {
        Some(bytes) if bytes <= 3 * KIB => scrub_in_pieces::<3>(),
        Some(bytes) if bytes <= 6 * KIB => scrub_in_pieces::<6>(),
        Some(bytes) if bytes <= 8 * KIB => scrub_in_pieces::<8>(),
        Some(bytes) if bytes <= 24 * KIB => scrub_at_once::<{ 24 * KIB / 8 }>(),
        Some(_) => scrub_at_once::<{ STACK_SCRUB / 8 }>(),
        None => {}
    }
    match outcome {
        Ok(Ok(())) => CKR_OK,
        Ok(Err(e)) => {
            let code = rv::of(&e);
            // A device error is the operator's to see (the store failed, not the caller),
            // each distinct one once in a quiet period (`repeats`);
            // every other refusal is the caller's answer and logged for debugging only.
            if code == CKR_DEVICE_ERROR {
                super::repeats::log_device_error(name, code, &e);
            } else {
                log::debug!("{name} -> {code:#x}: {e}");
            }
            code
        }
        Err(_) => {
            POISONED.store(true, Ordering::SeqCst);
            log::error!(
                "{name} panicked; the module answers CKR_GENERAL_ERROR until re-initialised"
            );
            rv::of(&Error::Poisoned)
        }
    }
}

/// Debug builds only: panics inside the guard when `KMSHSM_TEST_PANIC_IN` names this entry
/// point (read at every call), so that tests can see what a caught panic leaves behind; no
/// caller input reaches a panic otherwise. Release builds contain no such hook.
#[cfg(debug_assertions)]
fn injected_panic(name: &str) {
    if std::env::var_os("KMSHSM_TEST_PANIC_IN").is_some_and(|wanted| wanted == name) {
        panic!("{name}: panic injected by KMSHSM_TEST_PANIC_IN");
    }
}

/// Functions whose work always handles secret values (keys, PINs, plaintext).
const ALWAYS: [&str; 15] = [
    "C_Message",
    "C_Generate",
    "C_Wrap",
    "C_Unwrap",
    "C_Derive",
    "C_Encapsulate",
    "C_Decapsulate",
    "C_Login",
    "C_InitPIN",
    "C_SetPIN",
    "C_InitToken",
    "C_CreateObject",
    "C_CopyObject",
    "C_GetAttributeValue",
    "C_SetAttributeValue",
];

/// Operation families that handle secrets in some calls only; the call notes it.
const WHEN_NOTED: [&str; 5] = ["C_Encrypt", "C_Decrypt", "C_Sign", "C_Verify", "C_Digest"];

/// How many bytes of stack below the entry point are scrubbed after `name`, given how
/// far the call's noted secrets reach (`secret_use::take`; 0 for none); `None`: no scrub.
/// A note with a measured reach (`secret_use::note_within`) narrows the scrub in release
/// builds only: the depth was measured there, and debug frames are several times larger.
/// The scrub itself comes in five sizes (3, 6, 8, 24 and 48 KiB), the smallest that covers
/// it.
fn scrub_reach(name: &str, reach: usize) -> Option<usize> {
    let starts = |list: &[&str]| list.iter().any(|p| name.starts_with(p));
    // The two lists share no name (a test says so): the hot operation families are
    // looked up first, so their calls do not try every prefix of the other list.
    if !starts(&WHEN_NOTED) {
        return starts(&ALWAYS).then_some(STACK_SCRUB);
    }
    if reach == 0 {
        return None;
    }
    if cfg!(debug_assertions) {
        return Some(STACK_SCRUB);
    }
    Some(reach.min(STACK_SCRUB))
}

/// Whether the stack is scrubbed after `name`, given whether the call noted secret use.
#[cfg(test)]
fn scrubs(name: &str, noted: bool) -> bool {
    let reach = if noted { crate::secret_use::WHOLE } else { 0 };
    scrub_reach(name, reach).is_some()
}

/// How much of the stack below the entry point is overwritten. In a debug build the
/// secret-handling calls leave copies more than 16 KiB below it (tests/memory_secrets.rs
/// fails with a 16 KiB scrub and passes with 32 KiB); release frames are smaller. 48 KiB
/// leaves room and stays well inside the smallest thread stacks hosts give (128 KiB and up).
const STACK_SCRUB: usize = 48 * 1024;

const KIB: usize = 1024;

/// Overwrites `KIBS` KiB of the stack below the caller with zeros, one KiB at a time,
/// each handed to `black_box` so that the compiler must write it: the small scrubs of
/// the hot operation steps. One memset per KiB: glibc clears 2 KiB and more with
/// `rep stosb`, whose start costs ~10 ns on the benchmark machine's AMD CPU, a third of
/// a 4 KiB scrub (docs/performance.md, "Fifth pass"); the stores themselves (~8 ns a KiB
/// there) are the rest.
#[inline(never)]
fn scrub_in_pieces<const KIBS: usize>() {
    let mut area = [const { std::mem::MaybeUninit::<[u64; KIB / 8]>::uninit() }; KIBS];
    for chunk in area.iter_mut() {
        chunk.write([0u64; 128]);
        std::hint::black_box(&*chunk);
    }
}

/// Overwrites `WORDS` × 8 bytes of the stack below the caller with zeros in one memset,
/// handed to `black_box` so that the compiler must write it: the large scrubs, where
/// `rep stosb` pays for its start (48 KiB in 1 KiB pieces made a 64-byte SM4-GCM call
/// 0.4 µs slower).
#[inline(never)]
fn scrub_at_once<const WORDS: usize>() {
    let area = [0u64; WORDS];
    std::hint::black_box(&area);
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoki_sys::*;

    #[test]
    fn errors_become_their_return_code() {
        assert_eq!(
            run("C_Test", || Err(Error::PinIncorrect)),
            CKR_PIN_INCORRECT
        );
        assert_eq!(run("C_Test", || Ok(())), CKR_OK);
    }

    #[test]
    fn a_panic_is_caught_and_poisons_until_restart() {
        assert_eq!(run("C_Test", || panic!("boom")), CKR_GENERAL_ERROR);
        assert!(poisoned());
        assert_eq!(run("C_Test", || Ok(())), CKR_GENERAL_ERROR);
        assert_eq!(
            run("C_Finalize", || Ok(())),
            CKR_OK,
            "restart stays possible"
        );
        clear_poison();
        assert_eq!(run("C_Test", || Ok(())), CKR_OK);
    }

    #[test]
    fn only_secret_handling_functions_scrub_the_stack() {
        for name in [
            "C_UnwrapKey",
            "C_GenerateKeyPair",
            "C_Login",
            "C_GetAttributeValue",
            "C_SetAttributeValue",
            "C_MessageEncryptInit",
        ] {
            assert!(scrubs(name, false), "{name} always scrubs");
        }
        for name in [
            "C_SignFinal",
            "C_DecryptVerifyUpdate",
            "C_EncryptInit",
            "C_Verify",
        ] {
            assert!(scrubs(name, true), "{name} scrubs after noted secret use");
            assert!(!scrubs(name, false), "{name} without secret use does not");
        }
        for name in [
            "C_FindObjects",
            "C_GetSlotList",
            "C_OpenSession",
            "C_Logout",
            "C_DestroyObject",
            "C_Finalize",
        ] {
            assert!(!scrubs(name, true), "{name}");
        }
    }

    #[test]
    fn a_note_from_the_call_is_consumed_by_the_guard() {
        run("C_SignFinal", || {
            crate::secret_use::note();
            Ok(())
        });
        assert_eq!(crate::secret_use::take(), 0, "the guard took the note");
    }

    #[test]
    fn no_function_is_in_both_lists() {
        // Every `C_*` name in the function tables' source.
        let source = include_str!("mod.rs");
        let names: Vec<&str> = source
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("C_") && w.len() > 2)
            .collect();
        assert!(names.contains(&"C_EncryptMessage") && names.len() > 90);
        for name in names {
            let always = ALWAYS.iter().any(|p| name.starts_with(p));
            let noted = WHEN_NOTED.iter().any(|p| name.starts_with(p));
            assert!(!(always && noted), "{name} matches both lists");
        }
    }

    #[test]
    fn a_measured_reach_narrows_the_scrub_of_an_operation_step_in_release_builds_only() {
        use crate::secret_use::{AES_GCM_REACH, AES_GCM_SMALL_REACH, ECDSA_NIST_REACH, WHOLE};
        let release = |bytes| {
            if cfg!(debug_assertions) {
                STACK_SCRUB
            } else {
                bytes
            }
        };
        assert_eq!(
            scrub_reach("C_Encrypt", AES_GCM_REACH),
            Some(release(AES_GCM_REACH))
        );
        assert_eq!(
            scrub_reach("C_Decrypt", AES_GCM_SMALL_REACH),
            Some(release(AES_GCM_SMALL_REACH))
        );
        assert_eq!(
            scrub_reach("C_Sign", ECDSA_NIST_REACH),
            Some(release(ECDSA_NIST_REACH))
        );
        assert_eq!(scrub_reach("C_Sign", WHOLE), Some(STACK_SCRUB));
        assert_eq!(
            scrub_reach("C_UnwrapKey", AES_GCM_REACH),
            Some(STACK_SCRUB),
            "functions that always handle secrets always scrub the whole area"
        );
        assert_eq!(scrub_reach("C_Encrypt", 0), None);
    }
}
