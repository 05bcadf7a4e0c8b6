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

pub(crate) fn slot_list(
    _present: CK_BBOOL,
    list: *mut CK_SLOT_ID,
    count: *mut CK_ULONG,
) -> Result<()> {
    let p = provider::get()?;
    if count.is_null() {
        return Err(Error::ArgumentsBad("NULL pulCount"));
    }
    if list.is_null() {
        p.rescan()?;
    }
    // Every slot holds a token (the free slot an uninitialised one), so the
    // tokenPresent filter changes nothing.
    let ids: Vec<CK_SLOT_ID> = p.slot_ids().into_iter().map(|i| i.raw()).collect();
    raw::out_array(list, count, &ids)
}

pub(crate) fn slot_info(slot: CK_SLOT_ID, out: *mut CK_SLOT_INFO) -> Result<()> {
    let view = provider::get()?.slot(SlotId::from_raw(slot))?;
    raw::write(
        out,
        CK_SLOT_INFO {
            slotDescription: raw::padded(&format!("kmshsm slot {}", view.id)),
            manufacturerID: raw::padded(general::MANUFACTURER),
            flags: CKF_TOKEN_PRESENT,
            hardwareVersion: general::library_version(),
            firmwareVersion: general::library_version(),
        },
    )
}

fn pin_flags(
    failures: u32,
    max: u32,
    low: CK_FLAGS,
    final_try: CK_FLAGS,
    locked: CK_FLAGS,
) -> CK_FLAGS {
    if max > 0 && failures >= max {
        locked
    } else if max > 0 && failures + 1 == max {
        low | final_try
    } else if failures > 0 {
        low
    } else {
        0
    }
}

pub(crate) fn token_info(slot: CK_SLOT_ID, out: *mut CK_TOKEN_INFO) -> Result<()> {
    let view = provider::get()?.slot(SlotId::from_raw(slot))?;
    let mut info = CK_TOKEN_INFO {
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
        info.label = s.label;
        info.flags |= CKF_TOKEN_INITIALIZED | CKF_RESTORE_KEY_NOT_NEEDED;
        if s.user_pin_initialized {
            info.flags |= CKF_USER_PIN_INITIALIZED;
        }
        info.flags |= pin_flags(
            s.user_failures.unwrap_or(0),
            s.max_failures,
            CKF_USER_PIN_COUNT_LOW,
            CKF_USER_PIN_FINAL_TRY,
            CKF_USER_PIN_LOCKED,
        );
        info.flags |= pin_flags(
            s.so_failures,
            s.max_failures,
            CKF_SO_PIN_COUNT_LOW,
            CKF_SO_PIN_FINAL_TRY,
            CKF_SO_PIN_LOCKED,
        );
        info.ulSessionCount = raw::ulong_len(s.session_count);
        info.ulRwSessionCount = raw::ulong_len(s.rw_session_count);
    }
    raw::write(out, info)
}

pub(crate) fn mechanism_list(
    slot: CK_SLOT_ID,
    list: *mut CK_MECHANISM_TYPE,
    count: *mut CK_ULONG,
) -> Result<()> {
    provider::get()?.slot(SlotId::from_raw(slot))?;
    let mechanisms: Vec<CK_MECHANISM_TYPE> = crate::mechanism::list()
        .into_iter()
        .map(MechType::raw)
        .collect();
    raw::out_array(list, count, &mechanisms)
}

pub(crate) fn mechanism_info(
    slot: CK_SLOT_ID,
    mechanism: CK_MECHANISM_TYPE,
    out: *mut CK_MECHANISM_INFO,
) -> Result<()> {
    provider::get()?.slot(SlotId::from_raw(slot))?;
    let info =
        crate::mechanism::info_of(MechType::from_raw(mechanism)).ok_or(Error::MechanismInvalid)?;
    raw::write(out, info)
}

pub(crate) fn wait_for_slot_event(
    _flags: CK_FLAGS,
    _slot: *mut CK_SLOT_ID,
    _reserved: *mut std::ffi::c_void,
) -> Result<()> {
    provider::get()?;
    Err(Error::FunctionNotSupported)
}

fn pin<'a>(ptr: *const CK_UTF8CHAR, len: CK_ULONG) -> Result<&'a [u8]> {
    if ptr.is_null() {
        return Err(Error::ArgumentsBad(
            "NULL PIN (no protected authentication path)",
        ));
    }
    raw::in_bytes(ptr, len)
}

pub(crate) fn init_token(
    slot: CK_SLOT_ID,
    so_pin: *mut CK_UTF8CHAR,
    len: CK_ULONG,
    label: *mut CK_UTF8CHAR,
) -> Result<()> {
    let p = provider::get()?;
    let so_pin = pin(so_pin, len)?;
    let label: [u8; LABEL_LEN] = raw::in_array(label)?;
    p.init_token(SlotId::from_raw(slot), so_pin, label)
}

pub(crate) fn init_pin(h: CK_SESSION_HANDLE, new: *mut CK_UTF8CHAR, len: CK_ULONG) -> Result<()> {
    let (_, s) = super::session(h)?;
    s.token.init_pin(s.rw, pin(new, len)?)
}

pub(crate) fn set_pin(
    h: CK_SESSION_HANDLE,
    old: *mut CK_UTF8CHAR,
    old_len: CK_ULONG,
    new: *mut CK_UTF8CHAR,
    new_len: CK_ULONG,
) -> Result<()> {
    let (_, s) = super::session(h)?;
    s.token
        .set_pin(s.rw, pin(old, old_len)?, pin(new, new_len)?)
}

pub(crate) fn login(
    h: CK_SESSION_HANDLE,
    user: CK_USER_TYPE,
    p: *mut CK_UTF8CHAR,
    len: CK_ULONG,
) -> Result<()> {
    let (_, s) = super::session(h)?;
    let kind = match user {
        CKU_SO => UserKind::So,
        CKU_USER => UserKind::User,
        CKU_CONTEXT_SPECIFIC => return s.context_login(pin(p, len)?),
        _ => return Err(Error::UserTypeInvalid),
    };
    s.token.login(kind, pin(p, len)?)
}

pub(crate) fn logout(h: CK_SESSION_HANDLE) -> Result<()> {
    let (_, s) = super::session(h)?;
    s.token.logout()
}
