//! §5.8-5.13 encryption, decryption, digests, signatures and verification.
//!
//! An `Init` call given no mechanism (a null `pMechanism`) ends the active operation of
//! its kind, as PKCS#11 3.0 has it (`CKR_ARGUMENTS_BAD` where none is active, as before).
//!
//! Every error of a step (`C_Encrypt`, `C_EncryptUpdate`, `C_EncryptFinal` and their
//! kin) ends the active operation of its kind, as §5.2 and each of those functions say
//! (`operation`): here, the caller's pointers refused before the session's step runs
//! (`CKR_ARGUMENTS_BAD`) end it too. A refused `Init` ends nothing.
//!
//! Deviations: `C_SignRecover*`, `C_VerifyRecover*` and the dual-function updates are
//! not supported. Single-part and multi-part calls on one operation may not be mixed
//! (`CKR_OPERATION_ACTIVE`, which ends it).

use cryptoki_sys::*;

use super::session::lookup;
use crate::error::Result;
use crate::ffi::raw::{self, OutBuf};
use crate::ids::ObjectHandle;
use crate::session::crypto::{Cancel, Direction};
use crate::session::Session;

/// An `Init` call given no mechanism: ends the active operation of its kind; with none
/// active there is nothing to end and no mechanism to start one, `ArgumentsBad`.
fn cancel(s: &Session, which: Cancel) -> Result<()> {
    if s.cancel(which) {
        Ok(())
    } else {
        Err(crate::error::Error::ArgumentsBad(
            "no mechanism and no operation to end",
        ))
    }
}

/// A step's arguments, read before the session's step runs: refused, they end the active
/// operation `which` as any error of the step does (§5.2), and the refusal is returned.
fn arguments_of<T>(s: &Session, which: Cancel, read: Result<T>) -> Result<T> {
    if read.is_err() {
        s.cancel(which);
    }
    read
}

/// The input and the output buffer of a step, read (and checked) in that order: a
/// refused input leaves the output's pointers untouched.
///
/// # Safety
/// `input` readable for `input_len` bytes and `output` writable for `*output_len` bytes
/// during the call, `output_len` readable and writable (the caller contract, `ffi/entry`).
unsafe fn in_and_out<'a>(
    input: *mut CK_BYTE,
    input_len: CK_ULONG,
    output: *mut CK_BYTE,
    output_len: *mut CK_ULONG,
) -> Result<(&'a [u8], OutBuf)> {
    // SAFETY: this function's contract.
    let input = unsafe { raw::in_bytes(input, input_len) }?;
    // SAFETY: this function's contract.
    Ok((input, unsafe { OutBuf::new(output, output_len) }?))
}

/// # Safety
/// The caller contract (`ffi/entry`): `mechanism` as `C_EncryptInit`'s `pMechanism`.
unsafe fn cipher_init(
    dir: Direction,
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    let s = lookup(session)?;
    if mechanism.is_null() {
        return cancel(&s, Cancel::Cipher(dir));
    }
    // SAFETY: the caller contract covers the mechanism and its parameter for this call.
    let mech = unsafe { raw::read_mechanism(mechanism) }?;
    s.cipher_init(dir, &mech, ObjectHandle::from_raw(key))
}

/// # Safety
/// The caller contract (`ffi/entry`): `input` readable for `input_len` bytes, `output`
/// writable for `*output_len` bytes, `output_len` readable and writable.
unsafe fn cipher_once(
    dir: Direction,
    session: CK_SESSION_HANDLE,
    input: *mut CK_BYTE,
    input_len: CK_ULONG,
    output: *mut CK_BYTE,
    output_len: *mut CK_ULONG,
) -> Result<()> {
    let s = lookup(session)?;
    // SAFETY: the caller contract covers both buffers for this call, which the slice and
    // the OutBuf do not outlive.
    let read = unsafe { in_and_out(input, input_len, output, output_len) };
    let (input, mut out) = arguments_of(&s, Cancel::Cipher(dir), read)?;
    let capacity = out.capacity;
    let buffer = &mut out;
    let direct = Some(move |len| {
        let buffer = buffer; // moved: the slice may live as long as the borrow of `out`
        buffer.direct(input, len)
    });
    let done = s.cipher_once_into(dir, input, capacity, direct)?;
    out.put(done)
}

/// # Safety
/// As `cipher_once`.
unsafe fn cipher_update(
    dir: Direction,
    session: CK_SESSION_HANDLE,
    input: *mut CK_BYTE,
    input_len: CK_ULONG,
    output: *mut CK_BYTE,
    output_len: *mut CK_ULONG,
) -> Result<()> {
    let s = lookup(session)?;
    // SAFETY: the caller contract covers both buffers for this call, which the slice and
    // the OutBuf do not outlive.
    let read = unsafe { in_and_out(input, input_len, output, output_len) };
    let (input, out) = arguments_of(&s, Cancel::Cipher(dir), read)?;
    out.put(s.cipher_update(dir, input, out.capacity)?)
}

/// # Safety
/// The caller contract (`ffi/entry`): `output` writable for `*output_len` bytes,
/// `output_len` readable and writable.
unsafe fn cipher_final(
    dir: Direction,
    session: CK_SESSION_HANDLE,
    output: *mut CK_BYTE,
    output_len: *mut CK_ULONG,
) -> Result<()> {
    let s = lookup(session)?;
    // SAFETY: the caller contract covers the output buffer for this call.
    let read = unsafe { OutBuf::new(output, output_len) };
    let out = arguments_of(&s, Cancel::Cipher(dir), read)?;
    out.put(s.cipher_final(dir, out.capacity)?)
}

/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn encrypt_init(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    // SAFETY: this function's contract is cipher_init's.
    unsafe { cipher_init(Direction::Encrypt, session, mechanism, key) }
}
/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn encrypt(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    encrypted_data: *mut CK_BYTE,
    encrypted_data_len: *mut CK_ULONG,
) -> Result<()> {
    // SAFETY: this function's contract is cipher_once's.
    unsafe {
        cipher_once(
            Direction::Encrypt,
            session,
            data,
            data_len,
            encrypted_data,
            encrypted_data_len,
        )
    }
}
/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn encrypt_update(
    session: CK_SESSION_HANDLE,
    part: *mut CK_BYTE,
    part_len: CK_ULONG,
    encrypted_part: *mut CK_BYTE,
    encrypted_part_len: *mut CK_ULONG,
) -> Result<()> {
    // SAFETY: this function's contract is cipher_update's.
    unsafe {
        cipher_update(
            Direction::Encrypt,
            session,
            part,
            part_len,
            encrypted_part,
            encrypted_part_len,
        )
    }
}
/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn encrypt_final(
    session: CK_SESSION_HANDLE,
    last_encrypted_part: *mut CK_BYTE,
    last_encrypted_part_len: *mut CK_ULONG,
) -> Result<()> {
    // SAFETY: this function's contract is cipher_final's.
    unsafe {
        cipher_final(
            Direction::Encrypt,
            session,
            last_encrypted_part,
            last_encrypted_part_len,
        )
    }
}
/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn decrypt_init(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    // SAFETY: this function's contract is cipher_init's.
    unsafe { cipher_init(Direction::Decrypt, session, mechanism, key) }
}
/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn decrypt(
    session: CK_SESSION_HANDLE,
    encrypted_data: *mut CK_BYTE,
    encrypted_data_len: CK_ULONG,
    data: *mut CK_BYTE,
    data_len: *mut CK_ULONG,
) -> Result<()> {
    // SAFETY: this function's contract is cipher_once's.
    unsafe {
        cipher_once(
            Direction::Decrypt,
            session,
            encrypted_data,
            encrypted_data_len,
            data,
            data_len,
        )
    }
}
/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn decrypt_update(
    session: CK_SESSION_HANDLE,
    encrypted_part: *mut CK_BYTE,
    encrypted_part_len: CK_ULONG,
    part: *mut CK_BYTE,
    part_len: *mut CK_ULONG,
) -> Result<()> {
    // SAFETY: this function's contract is cipher_update's.
    unsafe {
        cipher_update(
            Direction::Decrypt,
            session,
            encrypted_part,
            encrypted_part_len,
            part,
            part_len,
        )
    }
}
/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn decrypt_final(
    session: CK_SESSION_HANDLE,
    last_part: *mut CK_BYTE,
    last_part_len: *mut CK_ULONG,
) -> Result<()> {
    // SAFETY: this function's contract is cipher_final's.
    unsafe { cipher_final(Direction::Decrypt, session, last_part, last_part_len) }
}

/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn digest_init(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
) -> Result<()> {
    let s = lookup(session)?;
    if mechanism.is_null() {
        return cancel(&s, Cancel::Digest);
    }
    // SAFETY: the caller contract covers the mechanism and its parameter for this call.
    s.digest_init(&unsafe { raw::read_mechanism(mechanism) }?)
}
/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn digest(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    digest: *mut CK_BYTE,
    digest_len: *mut CK_ULONG,
) -> Result<()> {
    let s = lookup(session)?;
    // SAFETY: the caller contract covers both buffers for this call, which the slice and
    // the OutBuf do not outlive.
    let read = unsafe { in_and_out(data, data_len, digest, digest_len) };
    let (data, out) = arguments_of(&s, Cancel::Digest, read)?;
    out.put(s.digest_once(data, out.capacity)?)
}
/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn digest_update(
    session: CK_SESSION_HANDLE,
    part: *mut CK_BYTE,
    part_len: CK_ULONG,
) -> Result<()> {
    let s = lookup(session)?;
    // SAFETY: the caller contract covers the part for this call.
    let read = unsafe { raw::in_bytes(part, part_len) };
    s.digest_update(arguments_of(&s, Cancel::Digest, read)?)
}
pub(crate) fn digest_key(session: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE) -> Result<()> {
    let s = lookup(session)?;
    s.digest_key(ObjectHandle::from_raw(key))
}
/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn digest_final(
    session: CK_SESSION_HANDLE,
    digest: *mut CK_BYTE,
    digest_len: *mut CK_ULONG,
) -> Result<()> {
    let s = lookup(session)?;
    // SAFETY: the caller contract covers the output buffer for this call.
    let read = unsafe { OutBuf::new(digest, digest_len) };
    let out = arguments_of(&s, Cancel::Digest, read)?;
    out.put(s.digest_final(out.capacity)?)
}

/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn sign_init(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    let s = lookup(session)?;
    if mechanism.is_null() {
        return cancel(&s, Cancel::Sign);
    }
    // SAFETY: the caller contract covers the mechanism and its parameter for this call.
    s.sign_init(
        &unsafe { raw::read_mechanism(mechanism) }?,
        ObjectHandle::from_raw(key),
    )
}
/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn sign(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    signature: *mut CK_BYTE,
    signature_len: *mut CK_ULONG,
) -> Result<()> {
    let s = lookup(session)?;
    // SAFETY: the caller contract covers both buffers for this call, which the slice and
    // the OutBuf do not outlive.
    let read = unsafe { in_and_out(data, data_len, signature, signature_len) };
    let (data, out) = arguments_of(&s, Cancel::Sign, read)?;
    out.put(s.sign_once(data, out.capacity)?)
}
/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn sign_update(
    session: CK_SESSION_HANDLE,
    part: *mut CK_BYTE,
    part_len: CK_ULONG,
) -> Result<()> {
    let s = lookup(session)?;
    // SAFETY: the caller contract covers the part for this call.
    let read = unsafe { raw::in_bytes(part, part_len) };
    s.sign_update(arguments_of(&s, Cancel::Sign, read)?)
}
/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn sign_final(
    session: CK_SESSION_HANDLE,
    signature: *mut CK_BYTE,
    signature_len: *mut CK_ULONG,
) -> Result<()> {
    let s = lookup(session)?;
    // SAFETY: the caller contract covers the output buffer for this call.
    let read = unsafe { OutBuf::new(signature, signature_len) };
    let out = arguments_of(&s, Cancel::Sign, read)?;
    out.put(s.sign_final(out.capacity)?)
}

/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn verify_init(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    key: CK_OBJECT_HANDLE,
) -> Result<()> {
    let s = lookup(session)?;
    if mechanism.is_null() {
        return cancel(&s, Cancel::Verify);
    }
    // SAFETY: the caller contract covers the mechanism and its parameter for this call.
    s.verify_init(
        &unsafe { raw::read_mechanism(mechanism) }?,
        ObjectHandle::from_raw(key),
    )
}
/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn verify(
    session: CK_SESSION_HANDLE,
    data: *mut CK_BYTE,
    data_len: CK_ULONG,
    signature: *mut CK_BYTE,
    signature_len: CK_ULONG,
) -> Result<()> {
    let s = lookup(session)?;
    // SAFETY: the caller contract covers both buffers for this call, which the slices do
    // not outlive.
    let read = unsafe { raw::in_bytes(data, data_len) }
        // SAFETY: as above.
        .and_then(|data| Ok((data, unsafe { raw::in_bytes(signature, signature_len) }?)));
    let (data, signature) = arguments_of(&s, Cancel::Verify, read)?;
    s.verify_once(data, signature)
}
/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn verify_update(
    session: CK_SESSION_HANDLE,
    part: *mut CK_BYTE,
    part_len: CK_ULONG,
) -> Result<()> {
    let s = lookup(session)?;
    // SAFETY: the caller contract covers the part for this call.
    let read = unsafe { raw::in_bytes(part, part_len) };
    s.verify_update(arguments_of(&s, Cancel::Verify, read)?)
}
/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn verify_final(
    session: CK_SESSION_HANDLE,
    signature: *mut CK_BYTE,
    signature_len: CK_ULONG,
) -> Result<()> {
    let s = lookup(session)?;
    // SAFETY: the caller contract covers the signature for this call.
    let read = unsafe { raw::in_bytes(signature, signature_len) };
    s.verify_final(arguments_of(&s, Cancel::Verify, read)?)
}
