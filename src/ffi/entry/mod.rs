//! One Rust function per implemented C function, grouped as the specification's chapters
//! (§5.4 general, §5.5 slot and token, §5.6 session, §5.7 object, §5.15 random).
//! Each decodes its arguments through `raw`, calls the semantic layer, and encodes the
//! result; none holds policy. Deviations from the specification are listed per function.

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
use crate::provider::{self, Provider};
use crate::session::Session;

/// Every function the module does not implement yet.
pub(super) fn unsupported() -> Result<()> {
    provider::get()?;
    Err(Error::FunctionNotSupported)
}

/// The initialised provider and the session behind `handle`.
fn session(handle: cryptoki_sys::CK_SESSION_HANDLE) -> Result<(Arc<Provider>, Arc<Session>)> {
    let p = provider::get()?;
    let s = p.session(SessionHandle::from_raw(handle))?;
    Ok((p, s))
}
