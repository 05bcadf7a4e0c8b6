//! The process-wide state of the `legacy_algorithms` switch (docs/configuration.md,
//! docs/security.md "Legacy algorithms").
//!
//! `C_Initialize` sets it from the configuration it read; the mechanism registry, the RSA
//! key-size floor and the object layer's list of key types read it. Off, the module is
//! exactly as without the switch: no DES, no Triple-DES, no RSA generation below 2048
//! bits. This module only holds the flag; it must not decide anything itself.

use std::sync::atomic::{AtomicBool, Ordering};

static LEGACY_ALGORITHMS: AtomicBool = AtomicBool::new(false);

/// Called by `C_Initialize` with the configuration's value (every initialisation sets it,
/// so a new configuration after `C_Finalize` takes effect).
pub(crate) fn set_enabled(on: bool) {
    LEGACY_ALGORITHMS.store(on, Ordering::SeqCst);
}

/// Whether DES, Triple-DES and RSA keys from 1024 bits are on.
pub(crate) fn enabled() -> bool {
    LEGACY_ALGORITHMS.load(Ordering::SeqCst)
}
