//! §5.6 session management.
//!
//! Deviations: `C_GetOperationState`/`C_SetOperationState` are not supported (listed in
//! the function table as such). `C_GetFunctionStatus`/`C_CancelFunction` answer
//! `CKR_FUNCTION_NOT_PARALLEL`, as §5.20 prescribes for legacy functions.

use std::ffi::c_void;
use std::sync::Arc;

use cryptoki_sys::*;

use crate::error::{Error, Result};
use crate::ffi::raw;
use crate::ids::{SessionHandle, SlotId};
use crate::provider::{self, Provider};
use crate::session::Session;

pub(super) fn lookup(h: CK_SESSION_HANDLE) -> Result<(Arc<Provider>, Arc<Session>)> {
    super::session(h)
}

pub(crate) fn open(
    slot: CK_SLOT_ID,
    flags: CK_FLAGS,
    _app: *mut c_void,
    _notify: CK_NOTIFY,
    out: *mut CK_SESSION_HANDLE,
) -> Result<()> {
    let p = provider::get()?;
    if out.is_null() {
        return Err(Error::ArgumentsBad("NULL phSession"));
    }
    if flags & CKF_SERIAL_SESSION == 0 {
        return Err(Error::SessionParallelNotSupported);
    }
    let handle = p.open_session(SlotId::from_raw(slot), flags & CKF_RW_SESSION != 0)?;
    raw::write(out, handle.raw())
}

pub(crate) fn close(h: CK_SESSION_HANDLE) -> Result<()> {
    provider::get()?.close_session(SessionHandle::from_raw(h))
}

pub(crate) fn close_all(slot: CK_SLOT_ID) -> Result<()> {
    provider::get()?.close_all_sessions(SlotId::from_raw(slot))
}

pub(crate) fn info(h: CK_SESSION_HANDLE, out: *mut CK_SESSION_INFO) -> Result<()> {
    let (_, s) = lookup(h)?;
    let mut flags = CKF_SERIAL_SESSION;
    if s.rw {
        flags |= CKF_RW_SESSION;
    }
    raw::write(
        out,
        CK_SESSION_INFO {
            slotID: s.slot_id.raw(),
            state: s.state(),
            flags,
            ulDeviceError: 0,
        },
    )
}

pub(crate) fn function_status(h: CK_SESSION_HANDLE) -> Result<()> {
    lookup(h)?;
    Err(Error::FunctionNotParallel)
}

pub(crate) fn cancel_function(h: CK_SESSION_HANDLE) -> Result<()> {
    lookup(h)?;
    Err(Error::FunctionNotParallel)
}
