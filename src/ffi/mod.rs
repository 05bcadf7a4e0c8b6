//! The C ABI: the function tables and the three exported symbols.
//!
//! One macro invocation lists every PKCS#11 function once; it generates the `extern "C"`
//! functions (each inside the panic guard) and both tables: the 2.40 `CK_FUNCTION_LIST`
//! and the 3.0 `CK_FUNCTION_LIST_3_0`. Only `C_GetFunctionList`, `C_GetInterfaceList` and
//! `C_GetInterface` are exported by name; everything else is reached through a table.
//! Functions not implemented answer `CKR_FUNCTION_NOT_SUPPORTED` (after
//! `CKR_CRYPTOKI_NOT_INITIALIZED` when the library is not initialised).
//! This module holds no policy: each entry decodes, calls, encodes.

mod entry;
mod guard;
#[allow(unsafe_code)]
mod raw;
mod rv;

use std::ffi::c_void;
use std::ptr::addr_of;

use cryptoki_sys::*;

use entry::{crypto, general, keys, message, object, random, session, slot_token, unsupported};
use raw::InterfaceTable;

macro_rules! entry_fn {
    (#[export] $name:ident ( $($arg:tt : $ty:ty),* ) $body:block) => {
        #[allow(non_snake_case, unsafe_code, unreachable_pub)] // no_mangle: an exported PKCS#11 symbol, reached from C, not through Rust paths
        #[no_mangle]
        pub extern "C" fn $name($($arg: $ty),*) -> CK_RV {
            guard::run(stringify!($name), || $body)
        }
    };
    ($name:ident ( $($arg:tt : $ty:ty),* ) $body:block) => {
        #[allow(non_snake_case)]
        extern "C" fn $name($($arg: $ty),*) -> CK_RV {
            guard::run(stringify!($name), || $body)
        }
    };
}

macro_rules! function_tables {
    (
        v2 { $( $(#[$m2:ident])? $n2:ident ( $($a2:tt : $t2:ty),* ) $b2:block )* }
        v3 { $( $(#[$m3:ident])? $n3:ident ( $($a3:tt : $t3:ty),* ) $b3:block )* }
    ) => {
        $( entry_fn!($(#[$m2])? $n2 ( $($a2 : $t2),* ) $b2); )*
        $( entry_fn!($(#[$m3])? $n3 ( $($a3 : $t3),* ) $b3); )*

        /// The PKCS#11 2.40 function table, as `C_GetFunctionList` returns it.
        pub(crate) static FUNCTION_LIST_2_40: CK_FUNCTION_LIST = CK_FUNCTION_LIST {
            version: CK_VERSION { major: 2, minor: 40 },
            $( $n2: Some($n2), )*
        };

        /// The PKCS#11 3.0 function table.
        pub(crate) static FUNCTION_LIST_3_0: CK_FUNCTION_LIST_3_0 = CK_FUNCTION_LIST_3_0 {
            version: CK_VERSION { major: 3, minor: 0 },
            $( $n2: Some($n2), )*
            $( $n3: Some($n3), )*
        };
    };
}

function_tables! {
    v2 {
        C_Initialize(a1: *mut c_void) { general::initialize(a1) }
        C_Finalize(a1: *mut c_void) { general::finalize(a1) }
        C_GetInfo(a1: *mut CK_INFO) { general::info(a1) }
        #[export] C_GetFunctionList(a1: *mut *mut CK_FUNCTION_LIST) { general::function_list(a1) }
        C_GetSlotList(a1: CK_BBOOL, a2: *mut CK_SLOT_ID, a3: *mut CK_ULONG) { slot_token::slot_list(a1, a2, a3) }
        C_GetSlotInfo(a1: CK_SLOT_ID, a2: *mut CK_SLOT_INFO) { slot_token::slot_info(a1, a2) }
        C_GetTokenInfo(a1: CK_SLOT_ID, a2: *mut CK_TOKEN_INFO) { slot_token::token_info(a1, a2) }
        C_GetMechanismList(a1: CK_SLOT_ID, a2: *mut CK_MECHANISM_TYPE, a3: *mut CK_ULONG) { slot_token::mechanism_list(a1, a2, a3) }
        C_GetMechanismInfo(a1: CK_SLOT_ID, a2: CK_MECHANISM_TYPE, a3: *mut CK_MECHANISM_INFO) { slot_token::mechanism_info(a1, a2, a3) }
        C_InitToken(a1: CK_SLOT_ID, a2: *mut CK_UTF8CHAR, a3: CK_ULONG, a4: *mut CK_UTF8CHAR) { slot_token::init_token(a1, a2, a3, a4) }
        C_InitPIN(a1: CK_SESSION_HANDLE, a2: *mut CK_UTF8CHAR, a3: CK_ULONG) { slot_token::init_pin(a1, a2, a3) }
        C_SetPIN(a1: CK_SESSION_HANDLE, a2: *mut CK_UTF8CHAR, a3: CK_ULONG, a4: *mut CK_UTF8CHAR, a5: CK_ULONG) { slot_token::set_pin(a1, a2, a3, a4, a5) }
        C_OpenSession(a1: CK_SLOT_ID, a2: CK_FLAGS, a3: *mut c_void, a4: CK_NOTIFY, a5: *mut CK_SESSION_HANDLE) { session::open(a1, a2, a3, a4, a5) }
        C_CloseSession(a1: CK_SESSION_HANDLE) { session::close(a1) }
        C_CloseAllSessions(a1: CK_SLOT_ID) { session::close_all(a1) }
        C_GetSessionInfo(a1: CK_SESSION_HANDLE, a2: *mut CK_SESSION_INFO) { session::info(a1, a2) }
        C_GetOperationState(_: CK_SESSION_HANDLE, _: *mut CK_BYTE, _: *mut CK_ULONG) { unsupported() }
        C_SetOperationState(_: CK_SESSION_HANDLE, _: *mut CK_BYTE, _: CK_ULONG, _: CK_OBJECT_HANDLE, _: CK_OBJECT_HANDLE) { unsupported() }
        C_Login(a1: CK_SESSION_HANDLE, a2: CK_USER_TYPE, a3: *mut CK_UTF8CHAR, a4: CK_ULONG) { slot_token::login(a1, a2, a3, a4) }
        C_Logout(a1: CK_SESSION_HANDLE) { slot_token::logout(a1) }
        C_CreateObject(a1: CK_SESSION_HANDLE, a2: *mut CK_ATTRIBUTE, a3: CK_ULONG, a4: *mut CK_OBJECT_HANDLE) { object::create(a1, a2, a3, a4) }
        C_CopyObject(a1: CK_SESSION_HANDLE, a2: CK_OBJECT_HANDLE, a3: *mut CK_ATTRIBUTE, a4: CK_ULONG, a5: *mut CK_OBJECT_HANDLE) { object::copy(a1, a2, a3, a4, a5) }
        C_DestroyObject(a1: CK_SESSION_HANDLE, a2: CK_OBJECT_HANDLE) { object::destroy(a1, a2) }
        C_GetObjectSize(a1: CK_SESSION_HANDLE, a2: CK_OBJECT_HANDLE, a3: *mut CK_ULONG) { object::size(a1, a2, a3) }
        C_GetAttributeValue(a1: CK_SESSION_HANDLE, a2: CK_OBJECT_HANDLE, a3: *mut CK_ATTRIBUTE, a4: CK_ULONG) { object::get_attributes(a1, a2, a3, a4) }
        C_SetAttributeValue(a1: CK_SESSION_HANDLE, a2: CK_OBJECT_HANDLE, a3: *mut CK_ATTRIBUTE, a4: CK_ULONG) { object::set_attributes(a1, a2, a3, a4) }
        C_FindObjectsInit(a1: CK_SESSION_HANDLE, a2: *mut CK_ATTRIBUTE, a3: CK_ULONG) { object::find_init(a1, a2, a3) }
        C_FindObjects(a1: CK_SESSION_HANDLE, a2: *mut CK_OBJECT_HANDLE, a3: CK_ULONG, a4: *mut CK_ULONG) { object::find(a1, a2, a3, a4) }
        C_FindObjectsFinal(a1: CK_SESSION_HANDLE) { object::find_final(a1) }
        C_EncryptInit(a1: CK_SESSION_HANDLE, a2: *mut CK_MECHANISM, a3: CK_OBJECT_HANDLE) { crypto::encrypt_init(a1, a2, a3) }
        C_Encrypt(a1: CK_SESSION_HANDLE, a2: *mut CK_BYTE, a3: CK_ULONG, a4: *mut CK_BYTE, a5: *mut CK_ULONG) { crypto::encrypt(a1, a2, a3, a4, a5) }
        C_EncryptUpdate(a1: CK_SESSION_HANDLE, a2: *mut CK_BYTE, a3: CK_ULONG, a4: *mut CK_BYTE, a5: *mut CK_ULONG) { crypto::encrypt_update(a1, a2, a3, a4, a5) }
        C_EncryptFinal(a1: CK_SESSION_HANDLE, a2: *mut CK_BYTE, a3: *mut CK_ULONG) { crypto::encrypt_final(a1, a2, a3) }
        C_DecryptInit(a1: CK_SESSION_HANDLE, a2: *mut CK_MECHANISM, a3: CK_OBJECT_HANDLE) { crypto::decrypt_init(a1, a2, a3) }
        C_Decrypt(a1: CK_SESSION_HANDLE, a2: *mut CK_BYTE, a3: CK_ULONG, a4: *mut CK_BYTE, a5: *mut CK_ULONG) { crypto::decrypt(a1, a2, a3, a4, a5) }
        C_DecryptUpdate(a1: CK_SESSION_HANDLE, a2: *mut CK_BYTE, a3: CK_ULONG, a4: *mut CK_BYTE, a5: *mut CK_ULONG) { crypto::decrypt_update(a1, a2, a3, a4, a5) }
        C_DecryptFinal(a1: CK_SESSION_HANDLE, a2: *mut CK_BYTE, a3: *mut CK_ULONG) { crypto::decrypt_final(a1, a2, a3) }
        C_DigestInit(a1: CK_SESSION_HANDLE, a2: *mut CK_MECHANISM) { crypto::digest_init(a1, a2) }
        C_Digest(a1: CK_SESSION_HANDLE, a2: *mut CK_BYTE, a3: CK_ULONG, a4: *mut CK_BYTE, a5: *mut CK_ULONG) { crypto::digest(a1, a2, a3, a4, a5) }
        C_DigestUpdate(a1: CK_SESSION_HANDLE, a2: *mut CK_BYTE, a3: CK_ULONG) { crypto::digest_update(a1, a2, a3) }
        C_DigestKey(a1: CK_SESSION_HANDLE, a2: CK_OBJECT_HANDLE) { crypto::digest_key(a1, a2) }
        C_DigestFinal(a1: CK_SESSION_HANDLE, a2: *mut CK_BYTE, a3: *mut CK_ULONG) { crypto::digest_final(a1, a2, a3) }
        C_SignInit(a1: CK_SESSION_HANDLE, a2: *mut CK_MECHANISM, a3: CK_OBJECT_HANDLE) { crypto::sign_init(a1, a2, a3) }
        C_Sign(a1: CK_SESSION_HANDLE, a2: *mut CK_BYTE, a3: CK_ULONG, a4: *mut CK_BYTE, a5: *mut CK_ULONG) { crypto::sign(a1, a2, a3, a4, a5) }
        C_SignUpdate(a1: CK_SESSION_HANDLE, a2: *mut CK_BYTE, a3: CK_ULONG) { crypto::sign_update(a1, a2, a3) }
        C_SignFinal(a1: CK_SESSION_HANDLE, a2: *mut CK_BYTE, a3: *mut CK_ULONG) { crypto::sign_final(a1, a2, a3) }
        C_SignRecoverInit(_: CK_SESSION_HANDLE, _: *mut CK_MECHANISM, _: CK_OBJECT_HANDLE) { unsupported() }
        C_SignRecover(_: CK_SESSION_HANDLE, _: *mut CK_BYTE, _: CK_ULONG, _: *mut CK_BYTE, _: *mut CK_ULONG) { unsupported() }
        C_VerifyInit(a1: CK_SESSION_HANDLE, a2: *mut CK_MECHANISM, a3: CK_OBJECT_HANDLE) { crypto::verify_init(a1, a2, a3) }
        C_Verify(a1: CK_SESSION_HANDLE, a2: *mut CK_BYTE, a3: CK_ULONG, a4: *mut CK_BYTE, a5: CK_ULONG) { crypto::verify(a1, a2, a3, a4, a5) }
        C_VerifyUpdate(a1: CK_SESSION_HANDLE, a2: *mut CK_BYTE, a3: CK_ULONG) { crypto::verify_update(a1, a2, a3) }
        C_VerifyFinal(a1: CK_SESSION_HANDLE, a2: *mut CK_BYTE, a3: CK_ULONG) { crypto::verify_final(a1, a2, a3) }
        C_VerifyRecoverInit(_: CK_SESSION_HANDLE, _: *mut CK_MECHANISM, _: CK_OBJECT_HANDLE) { unsupported() }
        C_VerifyRecover(_: CK_SESSION_HANDLE, _: *mut CK_BYTE, _: CK_ULONG, _: *mut CK_BYTE, _: *mut CK_ULONG) { unsupported() }
        C_DigestEncryptUpdate(_: CK_SESSION_HANDLE, _: *mut CK_BYTE, _: CK_ULONG, _: *mut CK_BYTE, _: *mut CK_ULONG) { unsupported() }
        C_DecryptDigestUpdate(_: CK_SESSION_HANDLE, _: *mut CK_BYTE, _: CK_ULONG, _: *mut CK_BYTE, _: *mut CK_ULONG) { unsupported() }
        C_SignEncryptUpdate(_: CK_SESSION_HANDLE, _: *mut CK_BYTE, _: CK_ULONG, _: *mut CK_BYTE, _: *mut CK_ULONG) { unsupported() }
        C_DecryptVerifyUpdate(_: CK_SESSION_HANDLE, _: *mut CK_BYTE, _: CK_ULONG, _: *mut CK_BYTE, _: *mut CK_ULONG) { unsupported() }
        C_GenerateKey(a1: CK_SESSION_HANDLE, a2: *mut CK_MECHANISM, a3: *mut CK_ATTRIBUTE, a4: CK_ULONG, a5: *mut CK_OBJECT_HANDLE) { keys::generate_key(a1, a2, a3, a4, a5) }
        C_GenerateKeyPair(a1: CK_SESSION_HANDLE, a2: *mut CK_MECHANISM, a3: *mut CK_ATTRIBUTE, a4: CK_ULONG, a5: *mut CK_ATTRIBUTE, a6: CK_ULONG, a7: *mut CK_OBJECT_HANDLE, a8: *mut CK_OBJECT_HANDLE) { keys::generate_key_pair(a1, a2, a3, a4, a5, a6, a7, a8) }
        C_WrapKey(a1: CK_SESSION_HANDLE, a2: *mut CK_MECHANISM, a3: CK_OBJECT_HANDLE, a4: CK_OBJECT_HANDLE, a5: *mut CK_BYTE, a6: *mut CK_ULONG) { keys::wrap_key(a1, a2, a3, a4, a5, a6) }
        C_UnwrapKey(a1: CK_SESSION_HANDLE, a2: *mut CK_MECHANISM, a3: CK_OBJECT_HANDLE, a4: *mut CK_BYTE, a5: CK_ULONG, a6: *mut CK_ATTRIBUTE, a7: CK_ULONG, a8: *mut CK_OBJECT_HANDLE) { keys::unwrap_key(a1, a2, a3, a4, a5, a6, a7, a8) }
        C_DeriveKey(a1: CK_SESSION_HANDLE, a2: *mut CK_MECHANISM, a3: CK_OBJECT_HANDLE, a4: *mut CK_ATTRIBUTE, a5: CK_ULONG, a6: *mut CK_OBJECT_HANDLE) { keys::derive_key(a1, a2, a3, a4, a5, a6) }
        C_SeedRandom(a1: CK_SESSION_HANDLE, a2: *mut CK_BYTE, a3: CK_ULONG) { random::seed(a1, a2, a3) }
        C_GenerateRandom(a1: CK_SESSION_HANDLE, a2: *mut CK_BYTE, a3: CK_ULONG) { random::generate(a1, a2, a3) }
        C_GetFunctionStatus(a1: CK_SESSION_HANDLE) { session::function_status(a1) }
        C_CancelFunction(a1: CK_SESSION_HANDLE) { session::cancel_function(a1) }
        C_WaitForSlotEvent(a1: CK_FLAGS, a2: *mut CK_SLOT_ID, a3: *mut c_void) { slot_token::wait_for_slot_event(a1, a2, a3) }
    }
    v3 {
        #[export] C_GetInterfaceList(a1: *mut CK_INTERFACE, a2: *mut CK_ULONG) { general::interface_list(a1, a2) }
        #[export] C_GetInterface(a1: *mut CK_UTF8CHAR, a2: *mut CK_VERSION, a3: *mut *mut CK_INTERFACE, a4: CK_FLAGS) { general::interface(a1, a2, a3, a4) }
        C_LoginUser(_: CK_SESSION_HANDLE, _: CK_USER_TYPE, _: *mut CK_UTF8CHAR, _: CK_ULONG, _: *mut CK_UTF8CHAR, _: CK_ULONG) { unsupported() }
        C_SessionCancel(_: CK_SESSION_HANDLE, _: CK_FLAGS) { unsupported() }
        C_MessageEncryptInit(a1: CK_SESSION_HANDLE, a2: *mut CK_MECHANISM, a3: CK_OBJECT_HANDLE) { message::encrypt_init(a1, a2, a3) }
        C_EncryptMessage(a1: CK_SESSION_HANDLE, a2: *mut c_void, a3: CK_ULONG, a4: *mut CK_BYTE, a5: CK_ULONG, a6: *mut CK_BYTE, a7: CK_ULONG, a8: *mut CK_BYTE, a9: *mut CK_ULONG) { message::encrypt_message(a1, a2, a3, a4, a5, a6, a7, a8, a9) }
        C_EncryptMessageBegin(a1: CK_SESSION_HANDLE, a2: *mut c_void, a3: CK_ULONG, a4: *mut CK_BYTE, a5: CK_ULONG) { message::encrypt_begin(a1, a2, a3, a4, a5) }
        C_EncryptMessageNext(a1: CK_SESSION_HANDLE, a2: *mut c_void, a3: CK_ULONG, a4: *mut CK_BYTE, a5: CK_ULONG, a6: *mut CK_BYTE, a7: *mut CK_ULONG, a8: CK_FLAGS) { message::encrypt_next(a1, a2, a3, a4, a5, a6, a7, a8) }
        C_MessageEncryptFinal(a1: CK_SESSION_HANDLE) { message::encrypt_final(a1) }
        C_MessageDecryptInit(a1: CK_SESSION_HANDLE, a2: *mut CK_MECHANISM, a3: CK_OBJECT_HANDLE) { message::decrypt_init(a1, a2, a3) }
        C_DecryptMessage(a1: CK_SESSION_HANDLE, a2: *mut c_void, a3: CK_ULONG, a4: *mut CK_BYTE, a5: CK_ULONG, a6: *mut CK_BYTE, a7: CK_ULONG, a8: *mut CK_BYTE, a9: *mut CK_ULONG) { message::decrypt_message(a1, a2, a3, a4, a5, a6, a7, a8, a9) }
        C_DecryptMessageBegin(a1: CK_SESSION_HANDLE, a2: *mut c_void, a3: CK_ULONG, a4: *mut CK_BYTE, a5: CK_ULONG) { message::decrypt_begin(a1, a2, a3, a4, a5) }
        C_DecryptMessageNext(a1: CK_SESSION_HANDLE, a2: *mut c_void, a3: CK_ULONG, a4: *mut CK_BYTE, a5: CK_ULONG, a6: *mut CK_BYTE, a7: *mut CK_ULONG, a8: CK_FLAGS) { message::decrypt_next(a1, a2, a3, a4, a5, a6, a7, a8) }
        C_MessageDecryptFinal(a1: CK_SESSION_HANDLE) { message::decrypt_final(a1) }
        C_MessageSignInit(_: CK_SESSION_HANDLE, _: *mut CK_MECHANISM, _: CK_OBJECT_HANDLE) { unsupported() }
        C_SignMessage(_: CK_SESSION_HANDLE, _: *mut c_void, _: CK_ULONG, _: *mut CK_BYTE, _: CK_ULONG, _: *mut CK_BYTE, _: *mut CK_ULONG) { unsupported() }
        C_SignMessageBegin(_: CK_SESSION_HANDLE, _: *mut c_void, _: CK_ULONG) { unsupported() }
        C_SignMessageNext(_: CK_SESSION_HANDLE, _: *mut c_void, _: CK_ULONG, _: *mut CK_BYTE, _: CK_ULONG, _: *mut CK_BYTE, _: *mut CK_ULONG) { unsupported() }
        C_MessageSignFinal(_: CK_SESSION_HANDLE) { unsupported() }
        C_MessageVerifyInit(_: CK_SESSION_HANDLE, _: *mut CK_MECHANISM, _: CK_OBJECT_HANDLE) { unsupported() }
        C_VerifyMessage(_: CK_SESSION_HANDLE, _: *mut c_void, _: CK_ULONG, _: *mut CK_BYTE, _: CK_ULONG, _: *mut CK_BYTE, _: CK_ULONG) { unsupported() }
        C_VerifyMessageBegin(_: CK_SESSION_HANDLE, _: *mut c_void, _: CK_ULONG) { unsupported() }
        C_VerifyMessageNext(_: CK_SESSION_HANDLE, _: *mut c_void, _: CK_ULONG, _: *mut CK_BYTE, _: CK_ULONG, _: *mut CK_BYTE, _: CK_ULONG) { unsupported() }
        C_MessageVerifyFinal(_: CK_SESSION_HANDLE) { unsupported() }
    }
}

static INTERFACE_NAME: [u8; 8] = *b"PKCS 11\0";

/// The interfaces `C_GetInterfaceList` offers: 3.0 first (the default), then 2.40.
pub(crate) static INTERFACES: InterfaceTable = InterfaceTable([
    CK_INTERFACE {
        pInterfaceName: addr_of!(INTERFACE_NAME) as *mut CK_UTF8CHAR,
        pFunctionList: addr_of!(FUNCTION_LIST_3_0) as *mut c_void,
        flags: 0,
    },
    CK_INTERFACE {
        pInterfaceName: addr_of!(INTERFACE_NAME) as *mut CK_UTF8CHAR,
        pFunctionList: addr_of!(FUNCTION_LIST_2_40) as *mut c_void,
        flags: 0,
    },
]);
