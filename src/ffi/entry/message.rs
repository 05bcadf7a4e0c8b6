//! PKCS#11 3.0 message-based encryption and decryption (`C_MessageEncryptInit`,
//! `C_EncryptMessage`, `C_EncryptMessageBegin`/`Next`, `C_MessageEncryptFinal` and the
//! decryption counterparts), for `CKM_AES_GCM` with `CK_GCM_MESSAGE_PARAMS`.
//!
//! Each call reads the per-message parameter, lets `session::message` do the work, and
//! writes back what the specification returns through the parameter: the generated IV to
//! `pIv` and the tag to `pTag`. The mechanism parameter at `Init` may be absent or a
//! `CK_GCM_MESSAGE_PARAMS`; it is not read (each message brings its own).
//! Deviations: `Next` collects the parts and returns all output at the part flagged
//! `CKF_END_OF_MESSAGE` (earlier parts return 0 bytes).

use std::ffi::c_void;

use cryptoki_sys::*;

use super::session::lookup;
use crate::error::{Error, Result};
use crate::ffi::raw::{self, OutBuf};
use crate::ids::{MechType, ObjectHandle};
use crate::mechanism::message::MessageParams;
use crate::session::crypto::Direction;
use crate::session::message::Sealed;

/// Where a message's IV and tag go back to.
struct WriteBack {
    iv: *mut u8,
    iv_room: usize,
    tag: *mut u8,
    tag_room: usize,
}

/// The caller's `CK_GCM_MESSAGE_PARAMS`. For decryption the tag is read from `pTag`; for
/// encryption `pTag` must have room for it (checked now, before anything is computed).
fn read_params(
    dir: Direction,
    ptr: *mut c_void,
    len: CK_ULONG,
) -> Result<(MessageParams, WriteBack)> {
    let g: CK_GCM_MESSAGE_PARAMS = raw::param_struct(ptr.cast_const(), len)?;
    let mut p = MessageParams {
        iv: raw::param_bytes(g.pIv.cast_const().cast(), g.ulIvLen)?,
        iv_fixed_bits: g.ulIvFixedBits as u64,
        generator: g.ivGenerator,
        tag_bits: g.ulTagBits as u64,
        tag: Vec::new(),
    };
    let tag_len = p.tag_len()?;
    match dir {
        Direction::Decrypt => {
            p.tag = raw::param_bytes(g.pTag.cast_const().cast(), raw::ulong_len(tag_len))?;
        }
        Direction::Encrypt if g.pTag.is_null() => return Err(Error::MechanismParamInvalid),
        Direction::Encrypt => {}
    }
    let back = WriteBack {
        iv: g.pIv,
        iv_room: p.iv.len(),
        tag: g.pTag,
        tag_room: tag_len,
    };
    Ok((p, back))
}

/// Writes a step's IV and tag into the parameter, then its output to the caller.
fn finish(back: &WriteBack, sealed: Sealed, out: &OutBuf) -> Result<()> {
    if let Some(iv) = &sealed.iv {
        raw::write_param_bytes(back.iv, back.iv_room, iv)?;
    }
    if let Some(tag) = &sealed.tag {
        raw::write_param_bytes(back.tag, back.tag_room, tag)?;
    }
    out.put(sealed.out)
}

fn init(
    dir: Direction,
    h: CK_SESSION_HANDLE,
    m: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    let (_, s) = lookup(h)?;
    let mech = raw::read_struct(m.cast_const()).ok_or(Error::ArgumentsBad("NULL pMechanism"))?;
    let size = std::mem::size_of::<CK_GCM_MESSAGE_PARAMS>();
    let given = usize::try_from(mech.ulParameterLen).ok();
    let param_ok = given == Some(0) || (given == Some(size) && !mech.pParameter.is_null());
    let flags = match dir {
        Direction::Encrypt => CKF_MESSAGE_ENCRYPT,
        Direction::Decrypt => CKF_MESSAGE_DECRYPT,
    };
    let kind = MechType::from_raw(mech.mechanism);
    match crate::mechanism::info_of(kind) {
        Some(info) if info.flags & flags != 0 => {}
        _ => return Err(Error::MechanismInvalid),
    }
    if !param_ok {
        return Err(Error::MechanismParamInvalid);
    }
    s.message_init(dir, kind, ObjectHandle::from_raw(key))
}

#[allow(clippy::too_many_arguments)] // the C signature
fn once(
    dir: Direction,
    h: CK_SESSION_HANDLE,
    param: *mut c_void,
    param_len: CK_ULONG,
    aad: *mut CK_BYTE,
    aad_len: CK_ULONG,
    input: *mut CK_BYTE,
    input_len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> Result<()> {
    let (_, s) = lookup(h)?;
    let (p, back) = read_params(dir, param, param_len)?;
    let aad = raw::in_bytes(aad, aad_len)?;
    let input = raw::in_bytes(input, input_len)?;
    let out = OutBuf::new(out, out_len)?;
    let sealed = s.message_once(dir, &p, aad, input, out.capacity)?;
    finish(&back, sealed, &out)
}

fn begin(
    dir: Direction,
    h: CK_SESSION_HANDLE,
    param: *mut c_void,
    param_len: CK_ULONG,
    aad: *mut CK_BYTE,
    aad_len: CK_ULONG,
) -> Result<()> {
    let (_, s) = lookup(h)?;
    let (p, back) = read_params(dir, param, param_len)?;
    let aad = raw::in_bytes(aad, aad_len)?;
    if let Some(iv) = s.message_begin(dir, &p, aad)? {
        raw::write_param_bytes(back.iv, back.iv_room, &iv)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)] // the C signature
fn next(
    dir: Direction,
    h: CK_SESSION_HANDLE,
    param: *mut c_void,
    param_len: CK_ULONG,
    input: *mut CK_BYTE,
    input_len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
    flags: CK_FLAGS,
) -> Result<()> {
    let (_, s) = lookup(h)?;
    if flags & !CKF_END_OF_MESSAGE != 0 {
        return Err(Error::ArgumentsBad("unknown C_*MessageNext flags"));
    }
    let end = flags & CKF_END_OF_MESSAGE != 0;
    // Only the last part's parameter matters (it carries or receives the tag).
    let (p, back) = read_params(dir, param, param_len)?;
    let input = raw::in_bytes(input, input_len)?;
    let out = OutBuf::new(out, out_len)?;
    let sealed = s.message_next(dir, &p, input, out.capacity, end)?;
    finish(&back, sealed, &out)
}

fn final_(dir: Direction, h: CK_SESSION_HANDLE) -> Result<()> {
    let (_, s) = lookup(h)?;
    s.message_final(dir)
}

pub(crate) fn encrypt_init(
    h: CK_SESSION_HANDLE,
    m: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    init(Direction::Encrypt, h, m, key)
}
#[allow(clippy::too_many_arguments)] // the C signature
pub(crate) fn encrypt_message(
    h: CK_SESSION_HANDLE,
    param: *mut c_void,
    param_len: CK_ULONG,
    aad: *mut CK_BYTE,
    aad_len: CK_ULONG,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> Result<()> {
    once(
        Direction::Encrypt,
        h,
        param,
        param_len,
        aad,
        aad_len,
        data,
        data_len,
        out,
        out_len,
    )
}
pub(crate) fn encrypt_begin(
    h: CK_SESSION_HANDLE,
    param: *mut c_void,
    param_len: CK_ULONG,
    aad: *mut CK_BYTE,
    aad_len: CK_ULONG,
) -> Result<()> {
    begin(Direction::Encrypt, h, param, param_len, aad, aad_len)
}
#[allow(clippy::too_many_arguments)] // the C signature
pub(crate) fn encrypt_next(
    h: CK_SESSION_HANDLE,
    param: *mut c_void,
    param_len: CK_ULONG,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
    flags: CK_FLAGS,
) -> Result<()> {
    next(
        Direction::Encrypt,
        h,
        param,
        param_len,
        data,
        data_len,
        out,
        out_len,
        flags,
    )
}
pub(crate) fn encrypt_final(h: CK_SESSION_HANDLE) -> Result<()> {
    final_(Direction::Encrypt, h)
}
pub(crate) fn decrypt_init(
    h: CK_SESSION_HANDLE,
    m: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    init(Direction::Decrypt, h, m, key)
}
#[allow(clippy::too_many_arguments)] // the C signature
pub(crate) fn decrypt_message(
    h: CK_SESSION_HANDLE,
    param: *mut c_void,
    param_len: CK_ULONG,
    aad: *mut CK_BYTE,
    aad_len: CK_ULONG,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> Result<()> {
    once(
        Direction::Decrypt,
        h,
        param,
        param_len,
        aad,
        aad_len,
        data,
        data_len,
        out,
        out_len,
    )
}
pub(crate) fn decrypt_begin(
    h: CK_SESSION_HANDLE,
    param: *mut c_void,
    param_len: CK_ULONG,
    aad: *mut CK_BYTE,
    aad_len: CK_ULONG,
) -> Result<()> {
    begin(Direction::Decrypt, h, param, param_len, aad, aad_len)
}
#[allow(clippy::too_many_arguments)] // the C signature
pub(crate) fn decrypt_next(
    h: CK_SESSION_HANDLE,
    param: *mut c_void,
    param_len: CK_ULONG,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
    flags: CK_FLAGS,
) -> Result<()> {
    next(
        Direction::Decrypt,
        h,
        param,
        param_len,
        data,
        data_len,
        out,
        out_len,
        flags,
    )
}
pub(crate) fn decrypt_final(h: CK_SESSION_HANDLE) -> Result<()> {
    final_(Direction::Decrypt, h)
}
