//! §5.7 object management.
//!
//! Deviations: none known. `C_GetObjectSize` reports the size of the stored record.

use cryptoki_sys::*;

use super::session::lookup;
use crate::error::{Error, Result};
use crate::ffi::raw::{self, Filled};
use crate::ids::ObjectHandle;

pub(crate) fn create(
    h: CK_SESSION_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    out: *mut CK_OBJECT_HANDLE,
) -> Result<()> {
    let (_, s) = lookup(h)?;
    if out.is_null() {
        return Err(Error::ArgumentsBad("NULL phObject"));
    }
    let template = raw::read_template(template, count)?;
    let handle = s.token.create_object(s.caller(), &template)?;
    raw::write(out, handle.raw())
}

pub(crate) fn copy(
    h: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    out: *mut CK_OBJECT_HANDLE,
) -> Result<()> {
    let (_, s) = lookup(h)?;
    if out.is_null() {
        return Err(Error::ArgumentsBad("NULL phNewObject"));
    }
    let template = raw::read_template(template, count)?;
    let handle = s
        .token
        .copy_object(s.caller(), ObjectHandle::from_raw(object), &template)?;
    raw::write(out, handle.raw())
}

pub(crate) fn destroy(h: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) -> Result<()> {
    let (_, s) = lookup(h)?;
    s.token
        .destroy_object(s.caller(), ObjectHandle::from_raw(object))
}

pub(crate) fn size(
    h: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    out: *mut CK_ULONG,
) -> Result<()> {
    let (_, s) = lookup(h)?;
    if out.is_null() {
        return Err(Error::ArgumentsBad("NULL pulSize"));
    }
    let size = s.token.object_size(ObjectHandle::from_raw(object))?;
    raw::write(out, raw::ulong_len(size))
}

/// §5.7 C_GetAttributeValue: every attribute is processed; the call's return code is
/// the most serious of the per-attribute outcomes.
pub(crate) fn get_attributes(
    h: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> Result<()> {
    let (_, s) = lookup(h)?;
    let mut out = raw::OutTemplate::new(template, count)?;
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

pub(crate) fn set_attributes(
    h: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> Result<()> {
    let (_, s) = lookup(h)?;
    let template = raw::read_template(template, count)?;
    s.token
        .set_attributes(s.caller(), ObjectHandle::from_raw(object), &template)
}

pub(crate) fn find_init(
    h: CK_SESSION_HANDLE,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> Result<()> {
    let (_, s) = lookup(h)?;
    let template = raw::read_template(template, count)?;
    s.find_init(&template)
}

pub(crate) fn find(
    h: CK_SESSION_HANDLE,
    out: *mut CK_OBJECT_HANDLE,
    max: CK_ULONG,
    count: *mut CK_ULONG,
) -> Result<()> {
    let (_, s) = lookup(h)?;
    if count.is_null() || (out.is_null() && max > 0) {
        return Err(Error::ArgumentsBad("NULL output of C_FindObjects"));
    }
    let found: Vec<CK_OBJECT_HANDLE> = s
        .find_next(usize::try_from(max).unwrap_or(usize::MAX))?
        .into_iter()
        .map(|h| h.raw())
        .collect();
    // The caller's array holds `max` handles; `found` has at most that many.
    raw::write(count, max)?;
    raw::out_array(out, count, &found)
}

pub(crate) fn find_final(h: CK_SESSION_HANDLE) -> Result<()> {
    let (_, s) = lookup(h)?;
    s.find_final()
}
