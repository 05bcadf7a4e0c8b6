//! §5.5 slot and token management, and the login functions of §5.6.
//!
//! Deviations: `C_WaitForSlotEvent` is not supported (slots only change by this module's
//! own `C_InitToken`). No protected authentication path: a NULL PIN is
//! `CKR_ARGUMENTS_BAD`. The slot list is re-scanned only on the length query (NULL
//! buffer), so the two-call pattern sees one consistent list.

use cryptoki_sys::*;

use super::general;
use crate::error::{Error, Result};
use crate::ffi::raw;
use crate::ids::{MechType, SlotId};
use crate::provider;
use crate::token::{UserKind, LABEL_LEN, MAX_PIN_LEN, MIN_PIN_LEN};

const MODEL: &str = "kmshsm";

/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn slot_list(
    _token_present: CK_BBOOL,
    slot_list: *mut CK_SLOT_ID,
    count: *mut CK_ULONG,
) -> Result<()> {
    let p = provider::get()?;
    if count.is_null() {
        return Err(Error::ArgumentsBad("NULL pulCount"));
    }
    if slot_list.is_null() {
        p.rescan()?;
    }
    // Every slot holds a token (the free slot an uninitialised one), so the
    // tokenPresent filter changes nothing.
    let ids: Vec<CK_SLOT_ID> = p.slot_ids().into_iter().map(|i| i.raw()).collect();
    // SAFETY: the caller contract makes `count` (not NULL) readable and writable, and
    // `slot_list` NULL or writable for `*count` slot ids, for this call.
    unsafe { raw::out_array(slot_list, count, &ids) }
}

/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn slot_info(slot_id: CK_SLOT_ID, info: *mut CK_SLOT_INFO) -> Result<()> {
    let view = provider::get()?.slot(SlotId::from_raw(slot_id))?;
    let value = CK_SLOT_INFO {
        slotDescription: raw::padded(&format!("kmshsm slot {}", view.id)),
        manufacturerID: raw::padded(general::MANUFACTURER),
        flags: CKF_TOKEN_PRESENT,
        hardwareVersion: general::library_version(),
        firmwareVersion: general::library_version(),
    };
    // SAFETY: the caller contract makes `info` NULL or writable for this call.
    unsafe { raw::write(info, value) }
}

/// A role's PIN flags (`CK_TOKEN_INFO`, PKCS#11 3.0 §5.5): count-low once a wrong PIN
/// was entered since the last success, final-try when one more would lock (with a limit
/// of one, before any wrong PIN), locked alone once locked.
fn pin_flags(
    failures: u32,
    max: u32,
    low: CK_FLAGS,
    final_try: CK_FLAGS,
    locked: CK_FLAGS,
) -> CK_FLAGS {
    if max > 0 && failures >= max {
        return locked;
    }
    let mut flags = 0;
    if failures > 0 {
        flags |= low;
    }
    if max > 0 && failures + 1 == max {
        flags |= final_try;
    }
    flags
}

/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn token_info(slot_id: CK_SLOT_ID, info: *mut CK_TOKEN_INFO) -> Result<()> {
    let view = provider::get()?.slot(SlotId::from_raw(slot_id))?;
    let mut value = CK_TOKEN_INFO {
        label: [b' '; 32],
        manufacturerID: raw::padded(general::MANUFACTURER),
        model: raw::padded(MODEL),
        serialNumber: raw::padded(&view.serial),
        flags: CKF_RNG | CKF_LOGIN_REQUIRED,
        ulMaxSessionCount: CK_EFFECTIVELY_INFINITE,
        ulSessionCount: 0,
        ulMaxRwSessionCount: CK_EFFECTIVELY_INFINITE,
        ulRwSessionCount: 0,
        ulMaxPinLen: raw::ulong_len(MAX_PIN_LEN),
        ulMinPinLen: raw::ulong_len(MIN_PIN_LEN),
        ulTotalPublicMemory: CK_UNAVAILABLE_INFORMATION,
        ulFreePublicMemory: CK_UNAVAILABLE_INFORMATION,
        ulTotalPrivateMemory: CK_UNAVAILABLE_INFORMATION,
        ulFreePrivateMemory: CK_UNAVAILABLE_INFORMATION,
        hardwareVersion: general::library_version(),
        firmwareVersion: general::library_version(),
        utcTime: [b' '; 16],
    };
    if let Some(token) = view.token {
        let s = token.status()?;
        value.label = s.label;
        value.flags |= CKF_TOKEN_INITIALIZED | CKF_RESTORE_KEY_NOT_NEEDED;
        if s.user_pin_initialized {
            value.flags |= CKF_USER_PIN_INITIALIZED;
        }
        value.flags |= pin_flags(
            s.user_failures.unwrap_or(0),
            s.max_failures,
            CKF_USER_PIN_COUNT_LOW,
            CKF_USER_PIN_FINAL_TRY,
            CKF_USER_PIN_LOCKED,
        );
        value.flags |= pin_flags(
            s.so_failures,
            s.max_failures,
            CKF_SO_PIN_COUNT_LOW,
            CKF_SO_PIN_FINAL_TRY,
            CKF_SO_PIN_LOCKED,
        );
        value.ulSessionCount = raw::ulong_len(s.session_count);
        value.ulRwSessionCount = raw::ulong_len(s.rw_session_count);
    }
    // SAFETY: the caller contract makes `info` NULL or writable for this call.
    unsafe { raw::write(info, value) }
}

/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn mechanism_list(
    slot_id: CK_SLOT_ID,
    mechanism_list: *mut CK_MECHANISM_TYPE,
    count: *mut CK_ULONG,
) -> Result<()> {
    provider::get()?.slot(SlotId::from_raw(slot_id))?;
    let mechanisms: Vec<CK_MECHANISM_TYPE> = crate::mechanism::list()
        .into_iter()
        .map(MechType::raw)
        .collect();
    // SAFETY: the caller contract makes `count` NULL or readable and writable, and
    // `mechanism_list` NULL or writable for `*count` types, for this call.
    unsafe { raw::out_array(mechanism_list, count, &mechanisms) }
}

/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn mechanism_info(
    slot_id: CK_SLOT_ID,
    mechanism_type: CK_MECHANISM_TYPE,
    info: *mut CK_MECHANISM_INFO,
) -> Result<()> {
    provider::get()?.slot(SlotId::from_raw(slot_id))?;
    let value = crate::mechanism::info_of(MechType::from_raw(mechanism_type))
        .ok_or(Error::MechanismInvalid)?;
    // SAFETY: the caller contract makes `info` NULL or writable for this call.
    unsafe { raw::write(info, value) }
}

pub(crate) fn wait_for_slot_event(
    _flags: CK_FLAGS,
    _slot: *mut CK_SLOT_ID,
    _reserved: *mut std::ffi::c_void,
) -> Result<()> {
    provider::get()?;
    Err(Error::FunctionNotSupported)
}

/// A PIN the caller lends for the call; NULL (a protected authentication path) is refused.
///
/// # Safety
/// `ptr` is NULL or valid for reads of `len` bytes, unwritten for the lifetime `'a` the
/// caller chooses (the current call).
unsafe fn pin<'a>(ptr: *const CK_UTF8CHAR, len: CK_ULONG) -> Result<&'a [u8]> {
    if ptr.is_null() {
        return Err(Error::ArgumentsBad(
            "NULL PIN (no protected authentication path)",
        ));
    }
    // SAFETY: this function's contract is in_bytes'.
    unsafe { raw::in_bytes(ptr, len) }
}

/// # Safety
/// The caller contract (`ffi/entry`): `label` NULL or 32 readable bytes.
pub(crate) unsafe fn init_token(
    slot_id: CK_SLOT_ID,
    pin: *mut CK_UTF8CHAR,
    pin_len: CK_ULONG,
    label: *mut CK_UTF8CHAR,
) -> Result<()> {
    let p = provider::get()?;
    // SAFETY: the caller contract covers the SO PIN and the 32-byte label for this call.
    let (so_pin, label) = unsafe { (self::pin(pin, pin_len)?, raw::in_array::<LABEL_LEN>(label)?) };
    p.init_token(SlotId::from_raw(slot_id), so_pin, label)
}

/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn init_pin(
    session: CK_SESSION_HANDLE,
    pin: *mut CK_UTF8CHAR,
    pin_len: CK_ULONG,
) -> Result<()> {
    let s = super::session(session)?;
    // SAFETY: the caller contract covers the PIN for this call.
    s.token.init_pin(s.rw, unsafe { self::pin(pin, pin_len) }?)
}

/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn set_pin(
    session: CK_SESSION_HANDLE,
    old_pin: *mut CK_UTF8CHAR,
    old_len: CK_ULONG,
    new_pin: *mut CK_UTF8CHAR,
    new_len: CK_ULONG,
) -> Result<()> {
    let s = super::session(session)?;
    // SAFETY: the caller contract covers both PINs for this call.
    let (old, new) = unsafe { (pin(old_pin, old_len)?, pin(new_pin, new_len)?) };
    s.token.set_pin(s.rw, old, new)
}

/// # Safety
/// The caller contract (`ffi/entry`).
pub(crate) unsafe fn login(
    session: CK_SESSION_HANDLE,
    user_type: CK_USER_TYPE,
    pin: *mut CK_UTF8CHAR,
    pin_len: CK_ULONG,
) -> Result<()> {
    let s = super::session(session)?;
    let kind = match user_type {
        CKU_SO => UserKind::So,
        CKU_USER => UserKind::User,
        // SAFETY: the caller contract covers the PIN for this call.
        CKU_CONTEXT_SPECIFIC => return s.context_login(unsafe { self::pin(pin, pin_len) }?),
        _ => return Err(Error::UserTypeInvalid),
    };
    // SAFETY: the caller contract covers the PIN for this call.
    s.token
        .login(s.handle, kind, unsafe { self::pin(pin, pin_len) }?)
}

pub(crate) fn logout(session: CK_SESSION_HANDLE) -> Result<()> {
    let s = super::session(session)?;
    s.token.logout()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOW: CK_FLAGS = 1;
    const FINAL: CK_FLAGS = 2;
    const LOCKED: CK_FLAGS = 4;

    fn flags(failures: u32, max: u32) -> CK_FLAGS {
        pin_flags(failures, max, LOW, FINAL, LOCKED)
    }

    #[test]
    fn pin_flags_follow_the_count_and_the_limit() {
        assert_eq!(flags(0, 3), 0);
        assert_eq!(flags(1, 3), LOW);
        assert_eq!(flags(2, 3), LOW | FINAL);
        assert_eq!(flags(3, 3), LOCKED);
        // With a limit of one, every attempt is the last, and none was wrong yet.
        assert_eq!(flags(0, 1), FINAL);
        assert_eq!(flags(1, 1), LOCKED);
        // No limit: never final, never locked.
        assert_eq!(flags(0, 0), 0);
        assert_eq!(flags(7, 0), LOW);
    }
}
