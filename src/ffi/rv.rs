//! The one table from `Error` to `CK_RV`. Each row has a test in `tests` below.
//!
//! `CKR_GENERAL_ERROR` is reserved for bugs (internal invariants, caught panics); nothing
//! a caller can cause maps to it. Store failures map to `CKR_DEVICE_ERROR` (the token's
//! storage failed) or `CKR_DEVICE_MEMORY` (disk full).

use cryptoki_sys::*;

use crate::error::{Error, StoreError};
use crate::kms::KmsError;
use crate::vendor as v;

pub(super) fn of(e: &Error) -> CK_RV {
    match e {
        Error::NotInitialized => CKR_CRYPTOKI_NOT_INITIALIZED,
        Error::AlreadyInitialized => CKR_CRYPTOKI_ALREADY_INITIALIZED,
        Error::ArgumentsBad(_) => CKR_ARGUMENTS_BAD,
        Error::CantLock => CKR_CANT_LOCK,
        Error::FunctionNotSupported => CKR_FUNCTION_NOT_SUPPORTED,
        Error::FunctionNotParallel => CKR_FUNCTION_NOT_PARALLEL,
        Error::Config(_) => CKR_FUNCTION_FAILED,
        Error::Poisoned => CKR_GENERAL_ERROR,
        Error::SlotIdInvalid => CKR_SLOT_ID_INVALID,
        Error::TokenNotRecognized => CKR_TOKEN_NOT_RECOGNIZED,
        Error::SessionExists => CKR_SESSION_EXISTS,
        Error::SessionReadOnlyExists => CKR_SESSION_READ_ONLY_EXISTS,
        Error::SessionReadWriteSoExists => CKR_SESSION_READ_WRITE_SO_EXISTS,
        Error::PinIncorrect => CKR_PIN_INCORRECT,
        Error::PinLocked => CKR_PIN_LOCKED,
        Error::PinLenRange => CKR_PIN_LEN_RANGE,
        Error::PinInvalid => CKR_PIN_INVALID,
        Error::UserNotLoggedIn => CKR_USER_NOT_LOGGED_IN,
        Error::UserAlreadyLoggedIn => CKR_USER_ALREADY_LOGGED_IN,
        Error::UserAnotherAlreadyLoggedIn => CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
        Error::UserPinNotInitialized => CKR_USER_PIN_NOT_INITIALIZED,
        Error::UserTypeInvalid => CKR_USER_TYPE_INVALID,
        Error::SessionHandleInvalid => CKR_SESSION_HANDLE_INVALID,
        Error::SessionClosed => CKR_SESSION_CLOSED,
        Error::TokenReinitialized => CKR_DEVICE_REMOVED,
        Error::SessionParallelNotSupported => CKR_SESSION_PARALLEL_NOT_SUPPORTED,
        Error::SessionReadOnly => CKR_SESSION_READ_ONLY,
        Error::OperationActive => CKR_OPERATION_ACTIVE,
        Error::OperationNotInitialized => CKR_OPERATION_NOT_INITIALIZED,
        Error::ObjectHandleInvalid => CKR_OBJECT_HANDLE_INVALID,
        Error::AttributeTypeInvalid => CKR_ATTRIBUTE_TYPE_INVALID,
        Error::AttributeValueInvalid => CKR_ATTRIBUTE_VALUE_INVALID,
        Error::AttributeReadOnly => CKR_ATTRIBUTE_READ_ONLY,
        Error::AttributeSensitive => CKR_ATTRIBUTE_SENSITIVE,
        Error::TemplateIncomplete => CKR_TEMPLATE_INCOMPLETE,
        Error::TemplateInconsistent => CKR_TEMPLATE_INCONSISTENT,
        Error::ActionProhibited => CKR_ACTION_PROHIBITED,
        Error::BufferTooSmall => CKR_BUFFER_TOO_SMALL,
        Error::MechanismInvalid => CKR_MECHANISM_INVALID,
        Error::MechanismParamInvalid => CKR_MECHANISM_PARAM_INVALID,
        Error::KeyHandleInvalid => CKR_KEY_HANDLE_INVALID,
        Error::KeySizeRange => CKR_KEY_SIZE_RANGE,
        Error::KeyTypeInconsistent => CKR_KEY_TYPE_INCONSISTENT,
        Error::KeyFunctionNotPermitted => CKR_KEY_FUNCTION_NOT_PERMITTED,
        Error::KeyNotWrappable => CKR_KEY_NOT_WRAPPABLE,
        Error::KeyUnextractable => CKR_KEY_UNEXTRACTABLE,
        Error::DataInvalid => CKR_DATA_INVALID,
        Error::DataLenRange => CKR_DATA_LEN_RANGE,
        Error::EncryptedDataInvalid => CKR_ENCRYPTED_DATA_INVALID,
        Error::EncryptedDataLenRange => CKR_ENCRYPTED_DATA_LEN_RANGE,
        Error::SignatureInvalid => CKR_SIGNATURE_INVALID,
        Error::SignatureLenRange => CKR_SIGNATURE_LEN_RANGE,
        Error::WrappedKeyInvalid => CKR_WRAPPED_KEY_INVALID,
        Error::WrappedKeyLenRange => CKR_WRAPPED_KEY_LEN_RANGE,
        Error::WrappingKeyHandleInvalid => CKR_WRAPPING_KEY_HANDLE_INVALID,
        Error::UnwrappingKeyHandleInvalid => CKR_UNWRAPPING_KEY_HANDLE_INVALID,
        Error::WrappingKeyTypeInconsistent => CKR_WRAPPING_KEY_TYPE_INCONSISTENT,
        Error::UnwrappingKeyTypeInconsistent => CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT,
        Error::CurveNotSupported => CKR_CURVE_NOT_SUPPORTED,
        Error::KeyIndigestible => CKR_KEY_INDIGESTIBLE,
        Error::RandomSeedNotSupported => CKR_RANDOM_SEED_NOT_SUPPORTED,
        Error::RandomFailed => CKR_DEVICE_ERROR,
        Error::Store(StoreError::Io(io)) if io.raw_os_error() == Some(28) => CKR_DEVICE_MEMORY,
        Error::Store(StoreError::Database(rusqlite::Error::SqliteFailure(f, _)))
            if f.code == rusqlite::ErrorCode::DiskFull =>
        {
            CKR_DEVICE_MEMORY
        }
        Error::Store(StoreError::Tampered) => v::CKR_KMSHSM_RECORD_TAMPERED,
        // C_SetPIN: the old PIN opened a record replaced since; it is not the PIN now.
        Error::Store(StoreError::PinRecordChanged) => CKR_PIN_INCORRECT,
        Error::Store(_) => CKR_DEVICE_ERROR,
        Error::Kms(k) => kms(k),
        Error::CacheContention => CKR_FUNCTION_FAILED,
        Error::ObjectContention => CKR_FUNCTION_FAILED,
        Error::Internal(_) => CKR_GENERAL_ERROR,
    }
}

/// The KMS errors of the kms-docs: a standard code where one says exactly the same,
/// a vendor code from `include/kmshsm.h` where a standard one would mislead
/// (docs/errors.md).
fn kms(e: &KmsError) -> CK_RV {
    match e {
        KmsError::InvalidKeyMaterial => v::CKR_KMSHSM_INVALID_KEY_MATERIAL,
        KmsError::InvalidImportToken => v::CKR_KMSHSM_INVALID_IMPORT_TOKEN,
        KmsError::ExpiredImportToken => v::CKR_KMSHSM_EXPIRED_IMPORT_TOKEN,
        KmsError::UnsupportedOrigin => v::CKR_KMSHSM_UNSUPPORTED_ORIGIN,
        KmsError::InvalidParameter(_) => CKR_ATTRIBUTE_VALUE_INVALID,
        KmsError::NotFound => v::CKR_KMSHSM_KEY_NOT_FOUND,
        KmsError::IncorrectKeyState(_) => v::CKR_KMSHSM_INCORRECT_KEY_STATE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_maps_to_its_code() {
        let rows: Vec<(Error, CK_RV)> = vec![
            (Error::NotInitialized, CKR_CRYPTOKI_NOT_INITIALIZED),
            (Error::AlreadyInitialized, CKR_CRYPTOKI_ALREADY_INITIALIZED),
            (Error::ArgumentsBad("x"), CKR_ARGUMENTS_BAD),
            (Error::CantLock, CKR_CANT_LOCK),
            (Error::FunctionNotSupported, CKR_FUNCTION_NOT_SUPPORTED),
            (Error::FunctionNotParallel, CKR_FUNCTION_NOT_PARALLEL),
            (Error::Config("x".into()), CKR_FUNCTION_FAILED),
            (Error::Poisoned, CKR_GENERAL_ERROR),
            (Error::SlotIdInvalid, CKR_SLOT_ID_INVALID),
            (Error::TokenNotRecognized, CKR_TOKEN_NOT_RECOGNIZED),
            (Error::SessionExists, CKR_SESSION_EXISTS),
            (Error::SessionReadOnlyExists, CKR_SESSION_READ_ONLY_EXISTS),
            (
                Error::SessionReadWriteSoExists,
                CKR_SESSION_READ_WRITE_SO_EXISTS,
            ),
            (Error::PinIncorrect, CKR_PIN_INCORRECT),
            (Error::PinLocked, CKR_PIN_LOCKED),
            (Error::PinLenRange, CKR_PIN_LEN_RANGE),
            (Error::PinInvalid, CKR_PIN_INVALID),
            (Error::UserNotLoggedIn, CKR_USER_NOT_LOGGED_IN),
            (Error::UserAlreadyLoggedIn, CKR_USER_ALREADY_LOGGED_IN),
            (
                Error::UserAnotherAlreadyLoggedIn,
                CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
            ),
            (Error::UserPinNotInitialized, CKR_USER_PIN_NOT_INITIALIZED),
            (Error::UserTypeInvalid, CKR_USER_TYPE_INVALID),
            (Error::SessionHandleInvalid, CKR_SESSION_HANDLE_INVALID),
            (Error::SessionClosed, CKR_SESSION_CLOSED),
            (Error::TokenReinitialized, CKR_DEVICE_REMOVED),
            (
                Error::SessionParallelNotSupported,
                CKR_SESSION_PARALLEL_NOT_SUPPORTED,
            ),
            (Error::SessionReadOnly, CKR_SESSION_READ_ONLY),
            (Error::OperationActive, CKR_OPERATION_ACTIVE),
            (
                Error::OperationNotInitialized,
                CKR_OPERATION_NOT_INITIALIZED,
            ),
            (Error::ObjectHandleInvalid, CKR_OBJECT_HANDLE_INVALID),
            (Error::AttributeTypeInvalid, CKR_ATTRIBUTE_TYPE_INVALID),
            (Error::AttributeValueInvalid, CKR_ATTRIBUTE_VALUE_INVALID),
            (Error::AttributeReadOnly, CKR_ATTRIBUTE_READ_ONLY),
            (Error::AttributeSensitive, CKR_ATTRIBUTE_SENSITIVE),
            (Error::TemplateIncomplete, CKR_TEMPLATE_INCOMPLETE),
            (Error::TemplateInconsistent, CKR_TEMPLATE_INCONSISTENT),
            (Error::ActionProhibited, CKR_ACTION_PROHIBITED),
            (Error::BufferTooSmall, CKR_BUFFER_TOO_SMALL),
            (Error::MechanismInvalid, CKR_MECHANISM_INVALID),
            (Error::MechanismParamInvalid, CKR_MECHANISM_PARAM_INVALID),
            (Error::KeyHandleInvalid, CKR_KEY_HANDLE_INVALID),
            (Error::KeySizeRange, CKR_KEY_SIZE_RANGE),
            (Error::KeyTypeInconsistent, CKR_KEY_TYPE_INCONSISTENT),
            (
                Error::KeyFunctionNotPermitted,
                CKR_KEY_FUNCTION_NOT_PERMITTED,
            ),
            (Error::KeyNotWrappable, CKR_KEY_NOT_WRAPPABLE),
            (Error::KeyUnextractable, CKR_KEY_UNEXTRACTABLE),
            (Error::DataInvalid, CKR_DATA_INVALID),
            (Error::DataLenRange, CKR_DATA_LEN_RANGE),
            (Error::EncryptedDataInvalid, CKR_ENCRYPTED_DATA_INVALID),
            (Error::EncryptedDataLenRange, CKR_ENCRYPTED_DATA_LEN_RANGE),
            (Error::SignatureInvalid, CKR_SIGNATURE_INVALID),
            (Error::SignatureLenRange, CKR_SIGNATURE_LEN_RANGE),
            (Error::WrappedKeyInvalid, CKR_WRAPPED_KEY_INVALID),
            (Error::WrappedKeyLenRange, CKR_WRAPPED_KEY_LEN_RANGE),
            (
                Error::WrappingKeyHandleInvalid,
                CKR_WRAPPING_KEY_HANDLE_INVALID,
            ),
            (
                Error::UnwrappingKeyHandleInvalid,
                CKR_UNWRAPPING_KEY_HANDLE_INVALID,
            ),
            (
                Error::WrappingKeyTypeInconsistent,
                CKR_WRAPPING_KEY_TYPE_INCONSISTENT,
            ),
            (
                Error::UnwrappingKeyTypeInconsistent,
                CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT,
            ),
            (Error::CurveNotSupported, CKR_CURVE_NOT_SUPPORTED),
            (Error::KeyIndigestible, CKR_KEY_INDIGESTIBLE),
            (Error::RandomSeedNotSupported, CKR_RANDOM_SEED_NOT_SUPPORTED),
            (Error::RandomFailed, CKR_DEVICE_ERROR),
            (StoreError::Unseal.into(), CKR_DEVICE_ERROR),
            (StoreError::Unreachable("x".into()).into(), CKR_DEVICE_ERROR),
            (StoreError::CommitUnknown.into(), CKR_DEVICE_ERROR),
            (StoreError::OlderSchema(6).into(), CKR_DEVICE_ERROR),
            (StoreError::Tampered.into(), v::CKR_KMSHSM_RECORD_TAMPERED),
            (StoreError::PinRecordChanged.into(), CKR_PIN_INCORRECT),
            (
                StoreError::Io(std::io::Error::from_raw_os_error(28)).into(),
                CKR_DEVICE_MEMORY,
            ),
            (Error::CacheContention, CKR_FUNCTION_FAILED),
            (Error::ObjectContention, CKR_FUNCTION_FAILED),
            (Error::Internal("x"), CKR_GENERAL_ERROR),
            (
                KmsError::InvalidKeyMaterial.into(),
                0x8000_0000 | 0x4B4D_0001,
            ),
            (
                KmsError::InvalidImportToken.into(),
                0x8000_0000 | 0x4B4D_0002,
            ),
            (
                KmsError::ExpiredImportToken.into(),
                0x8000_0000 | 0x4B4D_0003,
            ),
            (
                KmsError::UnsupportedOrigin.into(),
                0x8000_0000 | 0x4B4D_0004,
            ),
            (KmsError::NotFound.into(), 0x8000_0000 | 0x4B4D_0005),
            (
                KmsError::IncorrectKeyState("Disabled").into(),
                0x8000_0000 | 0x4B4D_0006,
            ),
            (
                KmsError::InvalidParameter("x").into(),
                CKR_ATTRIBUTE_VALUE_INVALID,
            ),
        ];
        for (e, code) in rows {
            assert_eq!(of(&e), code, "{e:?}");
        }
    }
}
