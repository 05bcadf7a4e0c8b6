//! §5.14 key management: `C_GenerateKey`, `C_GenerateKeyPair`, `C_WrapKey`,
//! `C_UnwrapKey`, `C_DeriveKey`.
//!
//! Deviations: `C_WrapKey` answers a length query by wrapping (and discarding the
//! result), so the length is exact.

use cryptoki_sys::*;

use super::session::lookup;
use crate::error::{Error, Result};
use crate::ffi::raw::{self, OutBuf};
use crate::ids::ObjectHandle;
use crate::operation::Output;

/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn generate_key(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    template: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    key: *mut CK_OBJECT_HANDLE,
) -> Result<()> {
    let s = lookup(session)?;
    if key.is_null() {
        return Err(Error::ArgumentsBad("NULL phKey"));
    }
    // The template is read first: a NULL template with a non-zero count is
    // CKR_ARGUMENTS_BAD whatever the mechanism (google/pkcs11test's GenerateKeyInvalid
    // asks so with a mechanism a module may lack).
    // SAFETY: the caller contract covers the template and the mechanism for this call.
    let (template, mech) = unsafe {
        (
            raw::read_template(template, count)?,
            raw::read_mechanism(mechanism)?,
        )
    };
    let handle = s.token.generate_key(s.caller(), &mech, &template)?;
    // SAFETY: the caller contract makes `key` (not NULL) writable for this call.
    unsafe { raw::write(key, handle.raw()) }
}

/// # Safety
/// The caller contract (`ffi/entry`).
#[allow(clippy::too_many_arguments)] // the C signature
pub(crate) unsafe fn generate_key_pair(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    public_key_template: *mut CK_ATTRIBUTE,
    public_key_attribute_count: CK_ULONG,
    private_key_template: *mut CK_ATTRIBUTE,
    private_key_attribute_count: CK_ULONG,
    public_key: *mut CK_OBJECT_HANDLE,
    private_key: *mut CK_OBJECT_HANDLE,
) -> Result<()> {
    let s = lookup(session)?;
    if public_key.is_null() || private_key.is_null() {
        return Err(Error::ArgumentsBad("NULL key handle output"));
    }
    // Both templates' values count against the call's one budget.
    let mut budget = raw::TemplateBudget::per_call();
    // SAFETY: the caller contract covers the mechanism and both templates for this call.
    let (mech, public, private) = unsafe {
        (
            raw::read_mechanism(mechanism)?,
            raw::read_template_within(
                public_key_template,
                public_key_attribute_count,
                &mut budget,
            )?,
            raw::read_template_within(
                private_key_template,
                private_key_attribute_count,
                &mut budget,
            )?,
        )
    };
    let (p, q) = s
        .token
        .generate_key_pair(s.caller(), &mech, &public, &private)?;
    // SAFETY: the caller contract makes both handle outputs (not NULL) writable.
    unsafe {
        raw::write(public_key, p.raw())?;
        raw::write(private_key, q.raw())
    }
}

/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn wrap_key(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    wrapping_key: CK_OBJECT_HANDLE,
    key: CK_OBJECT_HANDLE,
    wrapped_key: *mut CK_BYTE,
    wrapped_key_len: *mut CK_ULONG,
) -> Result<()> {
    let s = lookup(session)?;
    // SAFETY: the caller contract covers the mechanism and the output buffer for this
    // call, which the OutBuf does not outlive.
    let (mech, out) = unsafe {
        (
            raw::read_mechanism(mechanism)?,
            OutBuf::new(wrapped_key, wrapped_key_len)?,
        )
    };
    let wrapped = zeroize::Zeroizing::new(s.token.wrap_key(
        &mech,
        ObjectHandle::from_raw(wrapping_key),
        ObjectHandle::from_raw(key),
    )?);
    let result = match out.capacity {
        None => Output::Len(wrapped.len()),
        Some(c) if c < wrapped.len() => Output::TooSmall(wrapped.len()),
        Some(_) => Output::Data(wrapped),
    };
    out.put(result)
}

/// # Safety
/// The caller contract (`ffi/entry`).
#[allow(clippy::too_many_arguments)] // the C signature
pub(crate) unsafe fn unwrap_key(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    unwrapping_key: CK_OBJECT_HANDLE,
    wrapped_key: *mut CK_BYTE,
    wrapped_key_len: CK_ULONG,
    template: *mut CK_ATTRIBUTE,
    attribute_count: CK_ULONG,
    key: *mut CK_OBJECT_HANDLE,
) -> Result<()> {
    let s = lookup(session)?;
    if key.is_null() {
        return Err(Error::ArgumentsBad("NULL phKey"));
    }
    // SAFETY: the caller contract covers the mechanism, the wrapped key and the template
    // for this call, which the slice does not outlive.
    let (mech, wrapped, template) = unsafe {
        (
            raw::read_mechanism(mechanism)?,
            raw::in_bytes(wrapped_key, wrapped_key_len)?,
            raw::read_template(template, attribute_count)?,
        )
    };
    let handle = s.token.unwrap_key(
        s.caller(),
        &mech,
        ObjectHandle::from_raw(unwrapping_key),
        wrapped,
        &template,
    )?;
    // SAFETY: the caller contract makes `key` (not NULL) writable for this call.
    unsafe { raw::write(key, handle.raw()) }
}

/// # Safety
/// The caller contract (`ffi/entry`), including the SP 800-108 additional keys' templates
/// and handle outputs inside the mechanism parameter.
pub(crate) unsafe fn derive_key(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    base_key: CK_OBJECT_HANDLE,
    template: *mut CK_ATTRIBUTE,
    attribute_count: CK_ULONG,
    key: *mut CK_OBJECT_HANDLE,
) -> Result<()> {
    let s = lookup(session)?;
    if key.is_null() {
        return Err(Error::ArgumentsBad("NULL phKey"));
    }
    // The template's values and the additional keys' count against the call's one
    // budget.
    let mut budget = raw::TemplateBudget::per_call();
    // SAFETY: the caller contract covers the mechanism (with the additional keys'
    // templates) and the template for this call.
    let (mech, template, extra) = unsafe {
        (
            raw::read_mechanism(mechanism)?,
            raw::read_template_within(template, attribute_count, &mut budget)?,
            // SP 800-108's additional keys: their templates, and where their handles go.
            raw::read_derived_keys(mechanism, &mut budget)?,
        )
    };
    let templates: Vec<_> = extra.iter().map(|(t, _)| t.clone()).collect();
    let result = s.token.derive_keys(
        s.caller(),
        &mech,
        ObjectHandle::from_raw(base_key),
        &template,
        &templates,
    );
    // All keys are made or none (§2.42.7): on failure every handle is invalid.
    let (handle, more) = match result {
        Ok(made) => made,
        Err(e) => {
            for (_, ph) in &extra {
                // SAFETY: each additional key's phKey (checked not NULL) is writable
                // for this call (the caller contract).
                unsafe { raw::write(*ph, CK_INVALID_HANDLE) }?;
            }
            return Err(e);
        }
    };
    for ((_, ph), h) in extra.iter().zip(more) {
        // SAFETY: as above.
        unsafe { raw::write(*ph, h.raw()) }?;
    }
    // SAFETY: the caller contract makes `key` (not NULL) writable for this call.
    unsafe { raw::write(key, handle.raw()) }
}
