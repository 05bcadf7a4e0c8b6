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

/// Where a message's IV and tag go back to: the caller's buffers inside the parameter.
struct WriteBack {
    iv: *mut u8,
    iv_room: usize,
    tag: *mut u8,
    tag_room: usize,
}

/// The caller's `CK_GCM_MESSAGE_PARAMS`. For decryption the tag is read from `pTag`; for
/// encryption `pTag` must have room for it (checked now, before anything is computed).
///
/// # Safety
/// The caller contract (`ffi/entry`): `parameter` NULL or readable for `parameter_len`
/// bytes, its `pIv` readable and writable for `ulIvLen` bytes, its `pTag` readable and
/// writable for the tag's length. The returned `WriteBack` is valid for this call only.
unsafe fn read_params(
    dir: Direction,
    parameter: *mut c_void,
    parameter_len: CK_ULONG,
) -> Result<(MessageParams, WriteBack)> {
    // SAFETY: the caller contract covers the parameter and its IV for this call.
    let g: CK_GCM_MESSAGE_PARAMS =
        unsafe { raw::param_struct(parameter.cast_const(), parameter_len) }?;
    let mut p = MessageParams {
        // SAFETY: as above.
        iv: unsafe { raw::param_bytes(g.pIv.cast_const().cast(), g.ulIvLen) }?,
        iv_fixed_bits: g.ulIvFixedBits as u64,
        generator: g.ivGenerator,
        tag_bits: g.ulTagBits as u64,
        tag: Vec::new(),
    };
    let tag_len = p.tag_len()?;
    match dir {
        Direction::Decrypt => {
            // SAFETY: the caller contract makes `pTag` readable for the tag's length.
            p.tag =
                unsafe { raw::param_bytes(g.pTag.cast_const().cast(), raw::ulong_len(tag_len)) }?;
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
///
/// # Safety
/// `back` came from `read_params` in this same call.
unsafe fn finish(back: &WriteBack, sealed: Sealed, out: &OutBuf) -> Result<()> {
    if let Some(iv) = &sealed.iv {
        // SAFETY: `back.iv` is the caller's pIv, writable for `iv_room` bytes during this
        // call (read_params' contract).
        unsafe { raw::write_param_bytes(back.iv, back.iv_room, iv) }?;
    }
    if let Some(tag) = &sealed.tag {
        // SAFETY: `back.tag` is the caller's pTag, writable for `tag_room` bytes during
        // this call (read_params' contract).
        unsafe { raw::write_param_bytes(back.tag, back.tag_room, tag) }?;
    }
    out.put(sealed.out)
}

/// # Safety
/// The caller contract (`ffi/entry`).
unsafe fn init(
    dir: Direction,
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    let s = lookup(session)?;
    // SAFETY: the caller contract makes `mechanism` NULL or a readable CK_MECHANISM.
    let mech = unsafe { raw::read_struct(mechanism.cast_const()) }
        .ok_or(Error::ArgumentsBad("NULL pMechanism"))?;
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

/// # Safety
/// The caller contract (`ffi/entry`).
#[allow(clippy::too_many_arguments)] // the C signature
unsafe fn once(
    dir: Direction,
    session: CK_SESSION_HANDLE,
    parameter: *mut c_void,
    parameter_len: CK_ULONG,
    associated_data: *mut CK_BYTE,
    associated_data_len: CK_ULONG,
    input: *mut CK_BYTE,
    input_len: CK_ULONG,
    output: *mut CK_BYTE,
    output_len: *mut CK_ULONG,
) -> Result<()> {
    let s = lookup(session)?;
    // SAFETY: the caller contract covers the parameter, both inputs and the output for
    // this call, which the slices, the OutBuf and the WriteBack do not outlive.
    let (p, back, aad, input, out) = unsafe {
        let (p, back) = read_params(dir, parameter, parameter_len)?;
        let aad = raw::in_bytes(associated_data, associated_data_len)?;
        let input = raw::in_bytes(input, input_len)?;
        (p, back, aad, input, OutBuf::new(output, output_len)?)
    };
    let sealed = s.message_once(dir, &p, aad, input, out.capacity)?;
    // SAFETY: `back` is from this call.
    unsafe { finish(&back, sealed, &out) }
}

/// # Safety
/// The caller contract (`ffi/entry`).
unsafe fn begin(
    dir: Direction,
    session: CK_SESSION_HANDLE,
    parameter: *mut c_void,
    parameter_len: CK_ULONG,
    associated_data: *mut CK_BYTE,
    associated_data_len: CK_ULONG,
) -> Result<()> {
    let s = lookup(session)?;
    // SAFETY: the caller contract covers the parameter and the associated data for this
    // call, which the slice and the WriteBack do not outlive.
    let (p, back, aad) = unsafe {
        let (p, back) = read_params(dir, parameter, parameter_len)?;
        (
            p,
            back,
            raw::in_bytes(associated_data, associated_data_len)?,
        )
    };
    if let Some(iv) = s.message_begin(dir, &p, aad)? {
        // SAFETY: `back.iv` is the caller's pIv, writable for `iv_room` bytes during this
        // call (read_params' contract).
        unsafe { raw::write_param_bytes(back.iv, back.iv_room, &iv) }?;
    }
    Ok(())
}

/// # Safety
/// The caller contract (`ffi/entry`).
#[allow(clippy::too_many_arguments)] // the C signature
unsafe fn next(
    dir: Direction,
    session: CK_SESSION_HANDLE,
    parameter: *mut c_void,
    parameter_len: CK_ULONG,
    input: *mut CK_BYTE,
    input_len: CK_ULONG,
    output: *mut CK_BYTE,
    output_len: *mut CK_ULONG,
    flags: CK_FLAGS,
) -> Result<()> {
    let s = lookup(session)?;
    if flags & !CKF_END_OF_MESSAGE != 0 {
        return Err(Error::ArgumentsBad("unknown C_*MessageNext flags"));
    }
    let end = flags & CKF_END_OF_MESSAGE != 0;
    // Only the last part's parameter matters (it carries or receives the tag).
    // SAFETY: the caller contract covers the parameter, the input and the output for this
    // call, which the slice, the OutBuf and the WriteBack do not outlive.
    let (p, back, input, out) = unsafe {
        let (p, back) = read_params(dir, parameter, parameter_len)?;
        let input = raw::in_bytes(input, input_len)?;
        (p, back, input, OutBuf::new(output, output_len)?)
    };
    let sealed = s.message_next(dir, &p, input, out.capacity, end)?;
    // SAFETY: `back` is from this call.
    unsafe { finish(&back, sealed, &out) }
}

fn final_(dir: Direction, session: CK_SESSION_HANDLE) -> Result<()> {
    let s = lookup(session)?;
    s.message_final(dir)
}

/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn encrypt_init(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    // SAFETY: this function's contract is init's.
    unsafe { init(Direction::Encrypt, session, mechanism, key) }
}
/// # Safety
/// The caller contract (`ffi/entry`).
#[allow(clippy::too_many_arguments)] // the C signature
pub(crate) unsafe fn encrypt_message(
    session: CK_SESSION_HANDLE,
    parameter: *mut c_void,
    parameter_len: CK_ULONG,
    associated_data: *mut CK_BYTE,
    associated_data_len: CK_ULONG,
    plaintext: *mut CK_BYTE,
    plaintext_len: CK_ULONG,
    ciphertext: *mut CK_BYTE,
    ciphertext_len: *mut CK_ULONG,
) -> Result<()> {
    // SAFETY: this function's contract is once's.
    unsafe {
        once(
            Direction::Encrypt,
            session,
            parameter,
            parameter_len,
            associated_data,
            associated_data_len,
            plaintext,
            plaintext_len,
            ciphertext,
            ciphertext_len,
        )
    }
}
/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn encrypt_begin(
    session: CK_SESSION_HANDLE,
    parameter: *mut c_void,
    parameter_len: CK_ULONG,
    associated_data: *mut CK_BYTE,
    associated_data_len: CK_ULONG,
) -> Result<()> {
    // SAFETY: this function's contract is begin's.
    unsafe {
        begin(
            Direction::Encrypt,
            session,
            parameter,
            parameter_len,
            associated_data,
            associated_data_len,
        )
    }
}
/// # Safety
/// The caller contract (`ffi/entry`).
#[allow(clippy::too_many_arguments)] // the C signature
pub(crate) unsafe fn encrypt_next(
    session: CK_SESSION_HANDLE,
    parameter: *mut c_void,
    parameter_len: CK_ULONG,
    plaintext_part: *mut CK_BYTE,
    plaintext_part_len: CK_ULONG,
    ciphertext_part: *mut CK_BYTE,
    ciphertext_part_len: *mut CK_ULONG,
    flags: CK_FLAGS,
) -> Result<()> {
    // SAFETY: this function's contract is next's.
    unsafe {
        next(
            Direction::Encrypt,
            session,
            parameter,
            parameter_len,
            plaintext_part,
            plaintext_part_len,
            ciphertext_part,
            ciphertext_part_len,
            flags,
        )
    }
}
pub(crate) fn encrypt_final(session: CK_SESSION_HANDLE) -> Result<()> {
    final_(Direction::Encrypt, session)
}
/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn decrypt_init(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    // SAFETY: this function's contract is init's.
    unsafe { init(Direction::Decrypt, session, mechanism, key) }
}
/// # Safety
/// The caller contract (`ffi/entry`).
#[allow(clippy::too_many_arguments)] // the C signature
pub(crate) unsafe fn decrypt_message(
    session: CK_SESSION_HANDLE,
    parameter: *mut c_void,
    parameter_len: CK_ULONG,
    associated_data: *mut CK_BYTE,
    associated_data_len: CK_ULONG,
    ciphertext: *mut CK_BYTE,
    ciphertext_len: CK_ULONG,
    plaintext: *mut CK_BYTE,
    plaintext_len: *mut CK_ULONG,
) -> Result<()> {
    // SAFETY: this function's contract is once's.
    unsafe {
        once(
            Direction::Decrypt,
            session,
            parameter,
            parameter_len,
            associated_data,
            associated_data_len,
            ciphertext,
            ciphertext_len,
            plaintext,
            plaintext_len,
        )
    }
}
/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn decrypt_begin(
    session: CK_SESSION_HANDLE,
    parameter: *mut c_void,
    parameter_len: CK_ULONG,
    associated_data: *mut CK_BYTE,
    associated_data_len: CK_ULONG,
) -> Result<()> {
    // SAFETY: this function's contract is begin's.
    unsafe {
        begin(
            Direction::Decrypt,
            session,
            parameter,
            parameter_len,
            associated_data,
            associated_data_len,
        )
    }
}
/// # Safety
/// The caller contract (`ffi/entry`).
#[allow(clippy::too_many_arguments)] // the C signature
pub(crate) unsafe fn decrypt_next(
    session: CK_SESSION_HANDLE,
    parameter: *mut c_void,
    parameter_len: CK_ULONG,
    ciphertext_part: *mut CK_BYTE,
    ciphertext_part_len: CK_ULONG,
    plaintext_part: *mut CK_BYTE,
    plaintext_part_len: *mut CK_ULONG,
    flags: CK_FLAGS,
) -> Result<()> {
    // SAFETY: this function's contract is next's.
    unsafe {
        next(
            Direction::Decrypt,
            session,
            parameter,
            parameter_len,
            ciphertext_part,
            ciphertext_part_len,
            plaintext_part,
            plaintext_part_len,
            flags,
        )
    }
}
pub(crate) fn decrypt_final(session: CK_SESSION_HANDLE) -> Result<()> {
    final_(Direction::Decrypt, session)
}
