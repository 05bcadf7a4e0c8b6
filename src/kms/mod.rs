//! The KMS key model: no `CK_*` type may appear below this line.
//!
//! For now it holds the injected clock; the key model (KeyId, KeySpec, Origin, KeyState,
//! import parameters) lands here with the BYOK work.

pub mod clock;
