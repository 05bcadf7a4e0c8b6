//! The guard every exported function runs in: no panic crosses into the host process,
//! and every `Result` becomes a `CK_RV` through `rv::of`.
//!
//! After a caught panic the module is poisoned: it answers `CKR_GENERAL_ERROR` until
//! `C_Finalize` and `C_Initialize` start it afresh (the host process lives on; SoftHSMv2
//! would call `exit()`). This module must not know any PKCS#11 semantics.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

use cryptoki_sys::{CKR_OK, CK_RV};

use super::rv;
use crate::error::{Error, Result};

static POISONED: AtomicBool = AtomicBool::new(false);

/// Whether a panic was caught since the last `C_Initialize`.
pub fn poisoned() -> bool {
    POISONED.load(Ordering::SeqCst)
}

pub fn clear_poison() {
    POISONED.store(false, Ordering::SeqCst);
}

/// Runs one entry point. `name` is for the log only.
pub fn run(name: &'static str, f: impl FnOnce() -> Result<()>) -> CK_RV {
    let restarts = matches!(name, "C_Initialize" | "C_Finalize");
    if poisoned() && !restarts {
        return rv::of(&Error::Poisoned);
    }
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => CKR_OK,
        Ok(Err(e)) => {
            let code = rv::of(&e);
            log::debug!("{name} -> {code:#x}: {e}");
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
}
