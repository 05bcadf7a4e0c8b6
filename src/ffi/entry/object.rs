//! §5.7 object management.
//!
//! Deviations: none known. `C_GetObjectSize` reports the size of the stored record.

use cryptoki_sys::*;

use super::session::lookup;
use crate::error::{Error, Result};
use crate::ffi::raw::{self, Filled};
use crate::ids::ObjectHandle;

/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn create(
    session: CK_SESSION_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    object: *mut CK_OBJECT_HANDLE,
) -> Result<()> {
    let s = lookup(session)?;
    if object.is_null() {
        return Err(Error::ArgumentsBad("NULL phObject"));
    }
    // SAFETY: the caller contract covers the template for this call.
    let template = unsafe { raw::read_template(template, count) }?;
    let handle = s.token.create_object(s.caller(), &template)?;
    // SAFETY: the caller contract makes `object` (not NULL) writable for this call.
    unsafe { raw::write(object, handle.raw()) }
}

/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn copy(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    new_object: *mut CK_OBJECT_HANDLE,
) -> Result<()> {
    let s = lookup(session)?;
    if new_object.is_null() {
        return Err(Error::ArgumentsBad("NULL phNewObject"));
    }
    // SAFETY: the caller contract covers the template for this call.
    let template = unsafe { raw::read_template(template, count) }?;
    let handle = s
        .token
        .copy_object(s.caller(), ObjectHandle::from_raw(object), &template)?;
    // SAFETY: the caller contract makes `new_object` (not NULL) writable for this call.
    unsafe { raw::write(new_object, handle.raw()) }
}

pub(crate) fn destroy(session: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) -> Result<()> {
    let s = lookup(session)?;
    s.token
        .destroy_object(s.caller(), ObjectHandle::from_raw(object))
}

/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn size(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    size: *mut CK_ULONG,
) -> Result<()> {
    let s = lookup(session)?;
    if size.is_null() {
        return Err(Error::ArgumentsBad("NULL pulSize"));
    }
    let bytes = s.token.object_size(ObjectHandle::from_raw(object))?;
    // SAFETY: the caller contract makes `size` (not NULL) writable for this call.
    unsafe { raw::write(size, raw::ulong_len(bytes)) }
}

/// §5.7 C_GetAttributeValue: every attribute is processed; the call's return code is
/// the most serious of the per-attribute outcomes.
///
/// # Safety
/// The caller contract (`ffi/entry`): the template and every value buffer in it.
pub(crate) unsafe fn get_attributes(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> Result<()> {
    let s = lookup(session)?;
    // SAFETY: the caller contract lends the template and its value buffers for this
    // call, which the OutTemplate does not outlive.
    let mut out = unsafe { raw::OutTemplate::new(template, count) }?;
    let reads = s
        .token
        .attributes(ObjectHandle::from_raw(object), &out.types())?;
    let (mut sensitive, mut absent, mut small) = (false, false, false);
    for (i, read) in reads.iter().enumerate() {
        match out.fill(i, read) {
            Filled::Ok => {}
            Filled::Sensitive => sensitive = true,
            Filled::Absent => absent = true,
            Filled::TooSmall => small = true,
        }
    }
    if sensitive {
        Err(Error::AttributeSensitive)
    } else if absent {
        Err(Error::AttributeTypeInvalid)
    } else if small {
        Err(Error::BufferTooSmall)
    } else {
        Ok(())
    }
}

/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn set_attributes(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> Result<()> {
    let s = lookup(session)?;
    // SAFETY: the caller contract covers the template for this call.
    let template = unsafe { raw::read_template(template, count) }?;
    s.token
        .set_attributes(s.caller(), ObjectHandle::from_raw(object), &template)
}

/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn find_init(
    session: CK_SESSION_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> Result<()> {
    let s = lookup(session)?;
    // SAFETY: the caller contract covers the template for this call.
    let template = unsafe { raw::read_template(template, count) }?;
    s.find_init(&template)
}

/// # Safety
/// The caller contract (`ffi/entry`): `object` writable for `max_object_count` handles.
pub(crate) unsafe fn find(
    session: CK_SESSION_HANDLE,
    object: *mut CK_OBJECT_HANDLE,
    max_object_count: CK_ULONG,
    object_count: *mut CK_ULONG,
) -> Result<()> {
    let s = lookup(session)?;
    if object_count.is_null() || (object.is_null() && max_object_count > 0) {
        return Err(Error::ArgumentsBad("NULL output of C_FindObjects"));
    }
    let found: Vec<CK_OBJECT_HANDLE> = s
        .find_next(usize::try_from(max_object_count).unwrap_or(usize::MAX))?
        .into_iter()
        .map(|h| h.raw())
        .collect();
    // The caller's array holds `max_object_count` handles; `found` has at most that many.
    // SAFETY: the caller contract makes `object_count` (not NULL) a writable CK_ULONG and
    // `object` writable for `max_object_count` handles, the capacity written first.
    unsafe {
        raw::write(object_count, max_object_count)?;
        raw::out_array(object, object_count, &found)
    }
}

pub(crate) fn find_final(session: CK_SESSION_HANDLE) -> Result<()> {
    let s = lookup(session)?;
    s.find_final()
}
