//! §5.4 general-purpose functions and the §5.4/§5.5 interface functions of PKCS#11 3.0.
//!
//! Deviations: `C_Initialize` reads `pReserved`, which the specification reserves (must
//! be NULL), as an optional NUL-terminated configuration file path. A caller that follows
//! the specification and passes garbage there cannot be told apart by a flag, so the
//! pointer is never dereferenced: the kernel copies the string (`os::own_memory`), and
//! an address below 64 KiB, unreadable memory or no NUL within 4 KiB is
//! `CKR_ARGUMENTS_BAD` (pkcs11test's `(void *)1` among them); readable bytes up to a NUL
//! name the file (an empty string names none), and a name that cannot be read is
//! `CKR_FUNCTION_FAILED` (docs/configuration.md). Mutex callbacks
//! without `CKF_OS_LOCKING_OK` are refused with `CKR_CANT_LOCK` (the module uses its own
//! OS locks), which §5.4 allows.

use std::ffi::c_void;
use std::ptr::addr_of;

use cryptoki_sys::*;

use crate::error::{Error, Result};
use crate::ffi::{guard, raw, FUNCTION_LIST_2_40, INTERFACES};
use crate::provider::{self, InitOptions};

pub(crate) const LIBRARY_DESCRIPTION: &str = "kmshsm PKCS#11 module (BYOK)";
pub(crate) const MANUFACTURER: &str = "kmshsm project";

pub(crate) fn library_version() -> CK_VERSION {
    CK_VERSION {
        major: env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap_or(0),
        minor: env!("CARGO_PKG_VERSION_MINOR").parse().unwrap_or(0),
    }
}

/// # Safety
/// The caller contract (`ffi/entry`): `init_args` NULL or a readable
/// `CK_C_INITIALIZE_ARGS` (its `pReserved` may be anything).
pub(crate) unsafe fn initialize(init_args: *mut c_void) -> Result<()> {
    // SAFETY: the caller contract covers `init_args` for this call.
    let args = unsafe { raw::read_init_args(init_args) }?;
    if args.callbacks && args.flags & CKF_OS_LOCKING_OK == 0 {
        return Err(Error::CantLock);
    }
    // CKF_LIBRARY_CANT_CREATE_OS_THREADS needs nothing: the module never starts a thread.
    provider::initialize(InitOptions {
        config_path: args.config_path,
    })?;
    guard::clear_poison();
    Ok(())
}

pub(crate) fn finalize(reserved: *mut c_void) -> Result<()> {
    if !reserved.is_null() {
        return Err(Error::ArgumentsBad("pReserved must be NULL"));
    }
    provider::finalize()
}

/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn info(info: *mut CK_INFO) -> Result<()> {
    provider::get()?;
    let value = CK_INFO {
        cryptokiVersion: CK_VERSION { major: 3, minor: 0 },
        manufacturerID: raw::padded(MANUFACTURER),
        flags: 0,
        libraryDescription: raw::padded(LIBRARY_DESCRIPTION),
        libraryVersion: library_version(),
    };
    // SAFETY: the caller contract makes `info` NULL or writable for this call.
    unsafe { raw::write(info, value) }
}

/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn function_list(function_list: *mut *mut CK_FUNCTION_LIST) -> Result<()> {
    // SAFETY: the caller contract makes `function_list` NULL or writable for this call.
    unsafe { raw::write(function_list, addr_of!(FUNCTION_LIST_2_40).cast_mut()) }
}

/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn interface_list(
    interfaces_list: *mut CK_INTERFACE,
    count: *mut CK_ULONG,
) -> Result<()> {
    // SAFETY: the caller contract makes `count` NULL or readable and writable, and
    // `interfaces_list` NULL or writable for `*count` interfaces, for this call.
    unsafe { raw::out_array(interfaces_list, count, &INTERFACES.0) }
}

/// `C_GetInterface`: NULL name or "PKCS 11"; NULL version (the default, 3.0) or 3.0 or
/// 2.40; no interface flags are offered, so asking for any gives no match.
///
/// # Safety
/// The caller contract (`ffi/entry`): `interface_name` NULL or NUL-terminated.
pub(crate) unsafe fn interface(
    interface_name: *mut CK_UTF8CHAR,
    version: *mut CK_VERSION,
    interface: *mut *mut CK_INTERFACE,
    flags: CK_FLAGS,
) -> Result<()> {
    if interface.is_null() {
        return Err(Error::ArgumentsBad("NULL ppInterface"));
    }
    // SAFETY: the caller contract makes `interface_name` NULL or a NUL-terminated string
    // for this call, which the name does not outlive.
    if let Some(n) = unsafe { raw::c_name(interface_name) }? {
        if n != b"PKCS 11" {
            return Err(Error::ArgumentsBad("unknown interface name"));
        }
    }
    // SAFETY: the caller contract makes `version` NULL or a readable CK_VERSION.
    let wanted = unsafe { raw::read_struct(version) };
    let index = match wanted.map(|v| (v.major, v.minor)) {
        None | Some((3, 0)) => 0,
        Some((2, 40)) => 1,
        Some(_) => return Err(Error::ArgumentsBad("unsupported interface version")),
    };
    if flags & !INTERFACES.0[index].flags != 0 {
        return Err(Error::ArgumentsBad("no interface with those flags"));
    }
    // SAFETY: the caller contract makes `interface` (not NULL) writable for this call.
    unsafe { raw::write(interface, addr_of!(INTERFACES.0[index]).cast_mut()) }
}
