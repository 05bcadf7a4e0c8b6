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

pub(crate) fn generate_key(
    h: CK_SESSION_HANDLE,
    m: *mut CK_MECHANISM,
    t: *mut CK_ATTRIBUTE,
    n: CK_ULONG,
    out: *mut CK_OBJECT_HANDLE,
) -> Result<()> {
    let (_, s) = lookup(h)?;
    if out.is_null() {
        return Err(Error::ArgumentsBad("NULL phKey"));
    }
    // The template is read first: a NULL template with a non-zero count is
    // CKR_ARGUMENTS_BAD whatever the mechanism (google/pkcs11test's GenerateKeyInvalid
    // asks so with a mechanism a module may lack).
    let template = raw::read_template(t, n)?;
    let mech = raw::read_mechanism(m)?;
    let handle = s.token.generate_key(s.caller(), &mech, &template)?;
    raw::write(out, handle.raw())
}

#[allow(clippy::too_many_arguments)] // the C signature
pub(crate) fn generate_key_pair(
    h: CK_SESSION_HANDLE,
    m: *mut CK_MECHANISM,
    pt: *mut CK_ATTRIBUTE,
    pn: CK_ULONG,
    qt: *mut CK_ATTRIBUTE,
    qn: CK_ULONG,
    public_out: *mut CK_OBJECT_HANDLE,
    private_out: *mut CK_OBJECT_HANDLE,
) -> Result<()> {
    let (_, s) = lookup(h)?;
    if public_out.is_null() || private_out.is_null() {
        return Err(Error::ArgumentsBad("NULL key handle output"));
    }
    let mech = raw::read_mechanism(m)?;
    let public = raw::read_template(pt, pn)?;
    let private = raw::read_template(qt, qn)?;
    let (p, q) = s
        .token
        .generate_key_pair(s.caller(), &mech, &public, &private)?;
    raw::write(public_out, p.raw())?;
    raw::write(private_out, q.raw())
}

pub(crate) fn wrap_key(
    h: CK_SESSION_HANDLE,
    m: *mut CK_MECHANISM,
    wrapping: CK_OBJECT_HANDLE,
    key: CK_OBJECT_HANDLE,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> Result<()> {
    let (_, s) = lookup(h)?;
    let mech = raw::read_mechanism(m)?;
    let out = OutBuf::new(out, out_len)?;
    let wrapped = zeroize::Zeroizing::new(s.token.wrap_key(
        &mech,
        ObjectHandle::from_raw(wrapping),
        ObjectHandle::from_raw(key),
    )?);
    let result = match out.capacity {
        None => Output::Len(wrapped.len()),
        Some(c) if c < wrapped.len() => Output::TooSmall(wrapped.len()),
        Some(_) => Output::Data(wrapped),
    };
    out.put(result)
}

#[allow(clippy::too_many_arguments)] // the C signature
pub(crate) fn unwrap_key(
    h: CK_SESSION_HANDLE,
    m: *mut CK_MECHANISM,
    unwrapping: CK_OBJECT_HANDLE,
    wrapped: *mut CK_BYTE,
    wrapped_len: CK_ULONG,
    t: *mut CK_ATTRIBUTE,
    n: CK_ULONG,
    out: *mut CK_OBJECT_HANDLE,
) -> Result<()> {
    let (_, s) = lookup(h)?;
    if out.is_null() {
        return Err(Error::ArgumentsBad("NULL phKey"));
    }
    let mech = raw::read_mechanism(m)?;
    let wrapped = raw::in_bytes(wrapped, wrapped_len)?;
    let template = raw::read_template(t, n)?;
    let handle = s.token.unwrap_key(
        s.caller(),
        &mech,
        ObjectHandle::from_raw(unwrapping),
        wrapped,
        &template,
    )?;
    raw::write(out, handle.raw())
}

pub(crate) fn derive_key(
    h: CK_SESSION_HANDLE,
    m: *mut CK_MECHANISM,
    base: CK_OBJECT_HANDLE,
    t: *mut CK_ATTRIBUTE,
    n: CK_ULONG,
    out: *mut CK_OBJECT_HANDLE,
) -> Result<()> {
    let (_, s) = lookup(h)?;
    if out.is_null() {
        return Err(Error::ArgumentsBad("NULL phKey"));
    }
    let mech = raw::read_mechanism(m)?;
    let template = raw::read_template(t, n)?;
    // SP 800-108's additional keys: their templates, and where their handles go.
    let extra = raw::read_derived_keys(m)?;
    let templates: Vec<_> = extra.iter().map(|(t, _)| t.clone()).collect();
    let result = s.token.derive_keys(
        s.caller(),
        &mech,
        ObjectHandle::from_raw(base),
        &template,
        &templates,
    );
    // All keys are made or none (§2.42.7): on failure every handle is invalid.
    let (handle, more) = match result {
        Ok(made) => made,
        Err(e) => {
            for (_, ph) in &extra {
                raw::write(*ph, CK_INVALID_HANDLE)?;
            }
            return Err(e);
        }
    };
    for ((_, ph), h) in extra.iter().zip(more) {
        raw::write(*ph, h.raw())?;
    }
    raw::write(out, handle.raw())
}
