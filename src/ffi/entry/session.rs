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
use crate::provider;
use crate::session::Session;

pub(super) fn lookup(session: CK_SESSION_HANDLE) -> Result<Arc<Session>> {
    super::session(session)
}

/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn open(
    slot_id: CK_SLOT_ID,
    flags: CK_FLAGS,
    _application: *mut c_void,
    _notify: CK_NOTIFY,
    session: *mut CK_SESSION_HANDLE,
) -> Result<()> {
    let p = provider::get()?;
    if session.is_null() {
        return Err(Error::ArgumentsBad("NULL phSession"));
    }
    if flags & CKF_SERIAL_SESSION == 0 {
        return Err(Error::SessionParallelNotSupported);
    }
    let handle = p.open_session(SlotId::from_raw(slot_id), flags & CKF_RW_SESSION != 0)?;
    // SAFETY: the caller contract makes `session` (not NULL) writable for this call.
    unsafe { raw::write(session, handle.raw()) }
}

pub(crate) fn close(session: CK_SESSION_HANDLE) -> Result<()> {
    provider::get()?.close_session(SessionHandle::from_raw(session))
}

pub(crate) fn close_all(slot_id: CK_SLOT_ID) -> Result<()> {
    provider::get()?.close_all_sessions(SlotId::from_raw(slot_id))
}

/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn info(session: CK_SESSION_HANDLE, info: *mut CK_SESSION_INFO) -> Result<()> {
    let s = lookup(session)?;
    let mut flags = CKF_SERIAL_SESSION;
    if s.rw {
        flags |= CKF_RW_SESSION;
    }
    let value = CK_SESSION_INFO {
        slotID: s.slot_id.raw(),
        state: s.state()?,
        flags,
        ulDeviceError: 0,
    };
    // SAFETY: the caller contract makes `info` NULL or writable for this call.
    unsafe { raw::write(info, value) }
}

pub(crate) fn function_status(session: CK_SESSION_HANDLE) -> Result<()> {
    lookup(session)?;
    Err(Error::FunctionNotParallel)
}

pub(crate) fn cancel_function(session: CK_SESSION_HANDLE) -> Result<()> {
    lookup(session)?;
    Err(Error::FunctionNotParallel)
}
