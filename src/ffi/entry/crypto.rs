//! §5.8-5.13 encryption, decryption, digests, signatures and verification.
//!
//! Deviations: `C_SignRecover*`, `C_VerifyRecover*` and the dual-function updates are
//! not supported. Single-part and multi-part calls on one operation may not be mixed
//! (`CKR_OPERATION_ACTIVE`).

use cryptoki_sys::*;

use super::session::lookup;
use crate::error::Result;
use crate::ffi::raw::{self, OutBuf};
use crate::ids::ObjectHandle;
use crate::session::crypto::Direction;

fn cipher_init(
    dir: Direction,
    h: CK_SESSION_HANDLE,
    m: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    let (_, s) = lookup(h)?;
    let mech = raw::read_mechanism(m)?;
    s.cipher_init(dir, &mech, ObjectHandle::from_raw(key))
}

fn cipher_once(
    dir: Direction,
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> Result<()> {
    let (_, s) = lookup(h)?;
    let input = raw::in_bytes(data, len)?;
    let out = OutBuf::new(out, out_len)?;
    out.put(s.cipher_once(dir, input, out.capacity)?)
}

fn cipher_update(
    dir: Direction,
    h: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    len: CK_ULONG,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> Result<()> {
    let (_, s) = lookup(h)?;
    let input = raw::in_bytes(data, len)?;
    let out = OutBuf::new(out, out_len)?;
    out.put(s.cipher_update(dir, input, out.capacity)?)
}

fn cipher_final(
    dir: Direction,
    h: CK_SESSION_HANDLE,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> Result<()> {
    let (_, s) = lookup(h)?;
    let out = OutBuf::new(out, out_len)?;
    out.put(s.cipher_final(dir, out.capacity)?)
}

pub(crate) fn encrypt_init(
    h: CK_SESSION_HANDLE,
    m: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    cipher_init(Direction::Encrypt, h, m, key)
}
pub(crate) fn encrypt(
    h: CK_SESSION_HANDLE,
    d: *mut CK_BYTE,
    l: CK_ULONG,
    o: *mut CK_BYTE,
    ol: *mut CK_ULONG,
) -> Result<()> {
    cipher_once(Direction::Encrypt, h, d, l, o, ol)
}
pub(crate) fn encrypt_update(
    h: CK_SESSION_HANDLE,
    d: *mut CK_BYTE,
    l: CK_ULONG,
    o: *mut CK_BYTE,
    ol: *mut CK_ULONG,
) -> Result<()> {
    cipher_update(Direction::Encrypt, h, d, l, o, ol)
}
pub(crate) fn encrypt_final(
    h: CK_SESSION_HANDLE,
    o: *mut CK_BYTE,
    ol: *mut CK_ULONG,
) -> Result<()> {
    cipher_final(Direction::Encrypt, h, o, ol)
}
pub(crate) fn decrypt_init(
    h: CK_SESSION_HANDLE,
    m: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    cipher_init(Direction::Decrypt, h, m, key)
}
pub(crate) fn decrypt(
    h: CK_SESSION_HANDLE,
    d: *mut CK_BYTE,
    l: CK_ULONG,
    o: *mut CK_BYTE,
    ol: *mut CK_ULONG,
) -> Result<()> {
    cipher_once(Direction::Decrypt, h, d, l, o, ol)
}
pub(crate) fn decrypt_update(
    h: CK_SESSION_HANDLE,
    d: *mut CK_BYTE,
    l: CK_ULONG,
    o: *mut CK_BYTE,
    ol: *mut CK_ULONG,
) -> Result<()> {
    cipher_update(Direction::Decrypt, h, d, l, o, ol)
}
pub(crate) fn decrypt_final(
    h: CK_SESSION_HANDLE,
    o: *mut CK_BYTE,
    ol: *mut CK_ULONG,
) -> Result<()> {
    cipher_final(Direction::Decrypt, h, o, ol)
}

pub(crate) fn digest_init(h: CK_SESSION_HANDLE, m: *mut CK_MECHANISM) -> Result<()> {
    let (_, s) = lookup(h)?;
    s.digest_init(&raw::read_mechanism(m)?)
}
pub(crate) fn digest(
    h: CK_SESSION_HANDLE,
    d: *mut CK_BYTE,
    l: CK_ULONG,
    o: *mut CK_BYTE,
    ol: *mut CK_ULONG,
) -> Result<()> {
    let (_, s) = lookup(h)?;
    let data = raw::in_bytes(d, l)?;
    let out = OutBuf::new(o, ol)?;
    out.put(s.digest_once(data, out.capacity)?)
}
pub(crate) fn digest_update(h: CK_SESSION_HANDLE, d: *mut CK_BYTE, l: CK_ULONG) -> Result<()> {
    let (_, s) = lookup(h)?;
    s.digest_update(raw::in_bytes(d, l)?)
}
pub(crate) fn digest_key(h: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE) -> Result<()> {
    let (_, s) = lookup(h)?;
    s.digest_key(ObjectHandle::from_raw(key))
}
pub(crate) fn digest_final(h: CK_SESSION_HANDLE, o: *mut CK_BYTE, ol: *mut CK_ULONG) -> Result<()> {
    let (_, s) = lookup(h)?;
    let out = OutBuf::new(o, ol)?;
    out.put(s.digest_final(out.capacity)?)
}

pub(crate) fn sign_init(
    h: CK_SESSION_HANDLE,
    m: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    let (_, s) = lookup(h)?;
    s.sign_init(&raw::read_mechanism(m)?, ObjectHandle::from_raw(key))
}
pub(crate) fn sign(
    h: CK_SESSION_HANDLE,
    d: *mut CK_BYTE,
    l: CK_ULONG,
    o: *mut CK_BYTE,
    ol: *mut CK_ULONG,
) -> Result<()> {
    let (_, s) = lookup(h)?;
    let data = raw::in_bytes(d, l)?;
    let out = OutBuf::new(o, ol)?;
    out.put(s.sign_once(data, out.capacity)?)
}
pub(crate) fn sign_update(h: CK_SESSION_HANDLE, d: *mut CK_BYTE, l: CK_ULONG) -> Result<()> {
    let (_, s) = lookup(h)?;
    s.sign_update(raw::in_bytes(d, l)?)
}
pub(crate) fn sign_final(h: CK_SESSION_HANDLE, o: *mut CK_BYTE, ol: *mut CK_ULONG) -> Result<()> {
    let (_, s) = lookup(h)?;
    let out = OutBuf::new(o, ol)?;
    out.put(s.sign_final(out.capacity)?)
}

pub(crate) fn verify_init(
    h: CK_SESSION_HANDLE,
    m: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    let (_, s) = lookup(h)?;
    s.verify_init(&raw::read_mechanism(m)?, ObjectHandle::from_raw(key))
}
pub(crate) fn verify(
    h: CK_SESSION_HANDLE,
    d: *mut CK_BYTE,
    l: CK_ULONG,
    sig: *mut CK_BYTE,
    sl: CK_ULONG,
) -> Result<()> {
    let (_, s) = lookup(h)?;
    s.verify_once(raw::in_bytes(d, l)?, raw::in_bytes(sig, sl)?)
}
pub(crate) fn verify_update(h: CK_SESSION_HANDLE, d: *mut CK_BYTE, l: CK_ULONG) -> Result<()> {
    let (_, s) = lookup(h)?;
    s.verify_update(raw::in_bytes(d, l)?)
}
pub(crate) fn verify_final(h: CK_SESSION_HANDLE, sig: *mut CK_BYTE, sl: CK_ULONG) -> Result<()> {
    let (_, s) = lookup(h)?;
    s.verify_final(raw::in_bytes(sig, sl)?)
}
