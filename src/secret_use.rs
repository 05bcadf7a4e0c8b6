//! A per-thread note that the call in progress worked with secret values: opened sealed
//! attributes, ran a symmetric key or a private key, or set up an operation that did.
//!
//! The FFI guard scrubs the stack after an entry point that handles secrets
//! (`ffi::guard`). For the cryptographic operation families (C_Encrypt*, C_Sign*, ...)
//! most calls do not: a length query, a C_SignInit that only takes a reference to a
//! parsed private key, a public-key verification. Those families scrub only when this
//! note was taken, which spares ECDSA signing two of its three scrubs. Everything that
//! can leave a secret on the stack must call `note` — when in doubt, call it; a needless
//! note costs one scrub, a missing one leaves key bytes in the host's memory. This
//! module must not decide anything else.

use std::cell::Cell;

thread_local! {
    static USED: Cell<bool> = const { Cell::new(false) };
}

/// Records that the current call handled secret values.
pub fn note() {
    USED.with(|used| used.set(true));
}

/// Whether `note` was called since the last `take`; clears the note.
pub fn take() -> bool {
    USED.with(|used| used.replace(false))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_note_is_taken_once_and_stays_on_its_thread() {
        assert!(!super::take());
        super::note();
        std::thread::spawn(|| assert!(!super::take(), "another thread's note"))
            .join()
            .unwrap();
        assert!(super::take());
        assert!(!super::take(), "taking clears the note");
    }
}
