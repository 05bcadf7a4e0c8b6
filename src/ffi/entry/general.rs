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

pub(crate) fn initialize(args: *mut c_void) -> Result<()> {
    let args = raw::read_init_args(args)?;
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

pub(crate) fn info(out: *mut CK_INFO) -> Result<()> {
    provider::get()?;
    raw::write(
        out,
        CK_INFO {
            cryptokiVersion: CK_VERSION { major: 3, minor: 0 },
            manufacturerID: raw::padded(MANUFACTURER),
            flags: 0,
            libraryDescription: raw::padded(LIBRARY_DESCRIPTION),
            libraryVersion: library_version(),
        },
    )
}

pub(crate) fn function_list(out: *mut *mut CK_FUNCTION_LIST) -> Result<()> {
    raw::write(out, addr_of!(FUNCTION_LIST_2_40).cast_mut())
}

pub(crate) fn interface_list(list: *mut CK_INTERFACE, count: *mut CK_ULONG) -> Result<()> {
    raw::out_array(list, count, &INTERFACES.0)
}

/// `C_GetInterface`: NULL name or "PKCS 11"; NULL version (the default, 3.0) or 3.0 or
/// 2.40; no interface flags are offered, so asking for any gives no match.
pub(crate) fn interface(
    name: *mut CK_UTF8CHAR,
    version: *mut CK_VERSION,
    out: *mut *mut CK_INTERFACE,
    flags: CK_FLAGS,
) -> Result<()> {
    if out.is_null() {
        return Err(Error::ArgumentsBad("NULL ppInterface"));
    }
    if let Some(n) = raw::c_name(name)? {
        if n != b"PKCS 11" {
            return Err(Error::ArgumentsBad("unknown interface name"));
        }
    }
    let wanted = raw::read_struct(version);
    let index = match wanted.map(|v| (v.major, v.minor)) {
        None | Some((3, 0)) => 0,
        Some((2, 40)) => 1,
        Some(_) => return Err(Error::ArgumentsBad("unsupported interface version")),
    };
    if flags & !INTERFACES.0[index].flags != 0 {
        return Err(Error::ArgumentsBad("no interface with those flags"));
    }
    raw::write(out, addr_of!(INTERFACES.0[index]).cast_mut())
}
