//! One Rust function per implemented C function, grouped as the specification's chapters
//! (§5.4 general, §5.5 slot and token, §5.6 session, §5.7 object, §5.15 random).
//! Each decodes its arguments through `raw`, calls the semantic layer, and encodes the
//! result; none holds policy. Deviations from the specification are listed per function.
//!
//! A function that takes one of the C caller's pointers is an `unsafe fn`: it passes the
//! pointers to the `unsafe` decoders of `raw`, which need them valid. Its contract, named
//! in each `# Safety` section as "the caller contract", is the one PKCS#11 puts on every
//! application (§5.2 and the function's own section): each pointer argument is NULL or
//! valid for the reads and writes the specification describes for it (a buffer for the
//! length given beside it, an output length for read and write, a template's values for
//! their lengths, a mechanism parameter of the structure the mechanism takes), for the
//! duration of the call and not changed by anyone else meanwhile. The exported functions
//! in `ffi/mod.rs` are `unsafe extern "C"` functions with that same contract; nothing the
//! decoders return outlives the call. Functions that take no pointer stay safe.

pub(super) mod crypto;
pub(super) mod general;
pub(super) mod keys;
pub(super) mod message;
pub(super) mod object;
pub(super) mod random;
pub(super) mod session;
pub(super) mod slot_token;

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::ids::SessionHandle;
use crate::provider;
use crate::session::Session;

/// Every function the module does not implement yet.
pub(super) fn unsupported() -> Result<()> {
    provider::get()?;
    Err(Error::FunctionNotSupported)
}

/// The session behind `handle` in the initialised provider.
fn session(handle: cryptoki_sys::CK_SESSION_HANDLE) -> Result<Arc<Session>> {
    provider::session_of(SessionHandle::from_raw(handle))
}
