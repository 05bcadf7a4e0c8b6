//! The C ABI: the function tables and the three exported symbols.
//!
//! One macro invocation lists every PKCS#11 function once; it generates the `extern "C"`
//! functions (each inside the panic guard) and both tables: the 2.40 `CK_FUNCTION_LIST`
//! and the 3.0 `CK_FUNCTION_LIST_3_0`. Only `C_GetFunctionList`, `C_GetInterfaceList` and
//! `C_GetInterface` are exported by name; everything else is reached through a table.
//! Functions not implemented answer `CKR_FUNCTION_NOT_SUPPORTED` (after
//! `CKR_CRYPTOKI_NOT_INITIALIZED` when the library is not initialised).
//! This module holds no policy: each entry decodes, calls, encodes.
//!
//! The generated functions are `unsafe extern "C"` (the type the tables hold): their
//! caller must keep the PKCS#11 contract for the pointers it passes, which they hand on
//! to the `unsafe` entry functions (`ffi/entry`, "the caller contract"). Parameters are
//! named after the specification's (`hSession` is `session`, `pMechanism` `mechanism`,
//! `ulDataLen` `data_len`).

// The entry functions are `unsafe fn`s passing the caller's pointers to `raw`; their
// `unsafe` blocks only call `raw`'s decoders (ffi/entry/mod.rs).
#[allow(unsafe_code)]
mod entry;
mod guard;
#[allow(unsafe_code)]
mod raw;
mod repeats;
mod rv;

use std::ffi::c_void;
use std::ptr::addr_of;

use cryptoki_sys::*;

use entry::{crypto, general, keys, message, object, random, session, slot_token, unsupported};
use raw::InterfaceTable;

// Every body runs in an `unsafe` block, which is unused for the bodies that take no
// pointer (`unused_unsafe` allowed for them).
macro_rules! entry_fn {
    (#[export] $name:ident ( $($arg:tt : $ty:ty),* ) $body:block) => {
        /// # Safety
        /// The PKCS#11 caller contract (`ffi/entry`).
        #[allow(non_snake_case, unsafe_code, unreachable_pub, unused_unsafe)] // no_mangle: an exported PKCS#11 symbol, reached from C, not through Rust paths
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> CK_RV {
            guard::run(stringify!($name), || {
                // SAFETY: the arguments are this function's caller's, who keeps the
                // PKCS#11 contract for them (this function's own); the body is the
                // entry function that takes them, which returns within this call.
                unsafe { $body }
            })
        }
    };
    ($name:ident ( $($arg:tt : $ty:ty),* ) $body:block) => {
        /// # Safety
        /// The PKCS#11 caller contract (`ffi/entry`).
        #[allow(non_snake_case, unsafe_code, unused_unsafe)]
        unsafe extern "C" fn $name($($arg: $ty),*) -> CK_RV {
            guard::run(stringify!($name), || {
                // SAFETY: the arguments are this function's caller's, who keeps the
                // PKCS#11 contract for them (this function's own); the body is the
                // entry function that takes them, which returns within this call.
                unsafe { $body }
            })
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
        C_Initialize(init_args: *mut c_void) { general::initialize(init_args) }
        C_Finalize(reserved: *mut c_void) { general::finalize(reserved) }
        C_GetInfo(info: *mut CK_INFO) { general::info(info) }
        #[export] C_GetFunctionList(function_list: *mut *mut CK_FUNCTION_LIST) { general::function_list(function_list) }
        C_GetSlotList(token_present: CK_BBOOL, slot_list: *mut CK_SLOT_ID, count: *mut CK_ULONG) { slot_token::slot_list(token_present, slot_list, count) }
        C_GetSlotInfo(slot_id: CK_SLOT_ID, info: *mut CK_SLOT_INFO) { slot_token::slot_info(slot_id, info) }
        C_GetTokenInfo(slot_id: CK_SLOT_ID, info: *mut CK_TOKEN_INFO) { slot_token::token_info(slot_id, info) }
        C_GetMechanismList(slot_id: CK_SLOT_ID, mechanism_list: *mut CK_MECHANISM_TYPE, count: *mut CK_ULONG) { slot_token::mechanism_list(slot_id, mechanism_list, count) }
        C_GetMechanismInfo(slot_id: CK_SLOT_ID, mechanism_type: CK_MECHANISM_TYPE, info: *mut CK_MECHANISM_INFO) { slot_token::mechanism_info(slot_id, mechanism_type, info) }
        C_InitToken(slot_id: CK_SLOT_ID, pin: *mut CK_UTF8CHAR, pin_len: CK_ULONG, label: *mut CK_UTF8CHAR) { slot_token::init_token(slot_id, pin, pin_len, label) }
        C_InitPIN(session: CK_SESSION_HANDLE, pin: *mut CK_UTF8CHAR, pin_len: CK_ULONG) { slot_token::init_pin(session, pin, pin_len) }
        C_SetPIN(session: CK_SESSION_HANDLE, old_pin: *mut CK_UTF8CHAR, old_len: CK_ULONG, new_pin: *mut CK_UTF8CHAR, new_len: CK_ULONG) { slot_token::set_pin(session, old_pin, old_len, new_pin, new_len) }
        C_OpenSession(slot_id: CK_SLOT_ID, flags: CK_FLAGS, application: *mut c_void, notify: CK_NOTIFY, session: *mut CK_SESSION_HANDLE) { session::open(slot_id, flags, application, notify, session) }
        C_CloseSession(session: CK_SESSION_HANDLE) { session::close(session) }
        C_CloseAllSessions(slot_id: CK_SLOT_ID) { session::close_all(slot_id) }
        C_GetSessionInfo(session: CK_SESSION_HANDLE, info: *mut CK_SESSION_INFO) { session::info(session, info) }
        C_GetOperationState(_: CK_SESSION_HANDLE, _: *mut CK_BYTE, _: *mut CK_ULONG) { unsupported() }
        C_SetOperationState(_: CK_SESSION_HANDLE, _: *mut CK_BYTE, _: CK_ULONG, _: CK_OBJECT_HANDLE, _: CK_OBJECT_HANDLE) { unsupported() }
        C_Login(session: CK_SESSION_HANDLE, user_type: CK_USER_TYPE, pin: *mut CK_UTF8CHAR, pin_len: CK_ULONG) { slot_token::login(session, user_type, pin, pin_len) }
        C_Logout(session: CK_SESSION_HANDLE) { slot_token::logout(session) }
        C_CreateObject(session: CK_SESSION_HANDLE, template: *mut CK_ATTRIBUTE, count: CK_ULONG, object: *mut CK_OBJECT_HANDLE) { object::create(session, template, count, object) }
        C_CopyObject(session: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE, template: *mut CK_ATTRIBUTE, count: CK_ULONG, new_object: *mut CK_OBJECT_HANDLE) { object::copy(session, object, template, count, new_object) }
        C_DestroyObject(session: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) { object::destroy(session, object) }
        C_GetObjectSize(session: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE, size: *mut CK_ULONG) { object::size(session, object, size) }
        C_GetAttributeValue(session: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE, template: *mut CK_ATTRIBUTE, count: CK_ULONG) { object::get_attributes(session, object, template, count) }
        C_SetAttributeValue(session: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE, template: *mut CK_ATTRIBUTE, count: CK_ULONG) { object::set_attributes(session, object, template, count) }
        C_FindObjectsInit(session: CK_SESSION_HANDLE, template: *mut CK_ATTRIBUTE, count: CK_ULONG) { object::find_init(session, template, count) }
        C_FindObjects(session: CK_SESSION_HANDLE, object: *mut CK_OBJECT_HANDLE, max_object_count: CK_ULONG, object_count: *mut CK_ULONG) { object::find(session, object, max_object_count, object_count) }
        C_FindObjectsFinal(session: CK_SESSION_HANDLE) { object::find_final(session) }
        C_EncryptInit(session: CK_SESSION_HANDLE, mechanism: *mut CK_MECHANISM, key: CK_OBJECT_HANDLE) { crypto::encrypt_init(session, mechanism, key) }
        C_Encrypt(session: CK_SESSION_HANDLE, data: *mut CK_BYTE, data_len: CK_ULONG, encrypted_data: *mut CK_BYTE, encrypted_data_len: *mut CK_ULONG) { crypto::encrypt(session, data, data_len, encrypted_data, encrypted_data_len) }
        C_EncryptUpdate(session: CK_SESSION_HANDLE, part: *mut CK_BYTE, part_len: CK_ULONG, encrypted_part: *mut CK_BYTE, encrypted_part_len: *mut CK_ULONG) { crypto::encrypt_update(session, part, part_len, encrypted_part, encrypted_part_len) }
        C_EncryptFinal(session: CK_SESSION_HANDLE, last_encrypted_part: *mut CK_BYTE, last_encrypted_part_len: *mut CK_ULONG) { crypto::encrypt_final(session, last_encrypted_part, last_encrypted_part_len) }
        C_DecryptInit(session: CK_SESSION_HANDLE, mechanism: *mut CK_MECHANISM, key: CK_OBJECT_HANDLE) { crypto::decrypt_init(session, mechanism, key) }
        C_Decrypt(session: CK_SESSION_HANDLE, encrypted_data: *mut CK_BYTE, encrypted_data_len: CK_ULONG, data: *mut CK_BYTE, data_len: *mut CK_ULONG) { crypto::decrypt(session, encrypted_data, encrypted_data_len, data, data_len) }
        C_DecryptUpdate(session: CK_SESSION_HANDLE, encrypted_part: *mut CK_BYTE, encrypted_part_len: CK_ULONG, part: *mut CK_BYTE, part_len: *mut CK_ULONG) { crypto::decrypt_update(session, encrypted_part, encrypted_part_len, part, part_len) }
        C_DecryptFinal(session: CK_SESSION_HANDLE, last_part: *mut CK_BYTE, last_part_len: *mut CK_ULONG) { crypto::decrypt_final(session, last_part, last_part_len) }
        C_DigestInit(session: CK_SESSION_HANDLE, mechanism: *mut CK_MECHANISM) { crypto::digest_init(session, mechanism) }
        C_Digest(session: CK_SESSION_HANDLE, data: *mut CK_BYTE, data_len: CK_ULONG, digest: *mut CK_BYTE, digest_len: *mut CK_ULONG) { crypto::digest(session, data, data_len, digest, digest_len) }
        C_DigestUpdate(session: CK_SESSION_HANDLE, part: *mut CK_BYTE, part_len: CK_ULONG) { crypto::digest_update(session, part, part_len) }
        C_DigestKey(session: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE) { crypto::digest_key(session, key) }
        C_DigestFinal(session: CK_SESSION_HANDLE, digest: *mut CK_BYTE, digest_len: *mut CK_ULONG) { crypto::digest_final(session, digest, digest_len) }
        C_SignInit(session: CK_SESSION_HANDLE, mechanism: *mut CK_MECHANISM, key: CK_OBJECT_HANDLE) { crypto::sign_init(session, mechanism, key) }
        C_Sign(session: CK_SESSION_HANDLE, data: *mut CK_BYTE, data_len: CK_ULONG, signature: *mut CK_BYTE, signature_len: *mut CK_ULONG) { crypto::sign(session, data, data_len, signature, signature_len) }
        C_SignUpdate(session: CK_SESSION_HANDLE, part: *mut CK_BYTE, part_len: CK_ULONG) { crypto::sign_update(session, part, part_len) }
        C_SignFinal(session: CK_SESSION_HANDLE, signature: *mut CK_BYTE, signature_len: *mut CK_ULONG) { crypto::sign_final(session, signature, signature_len) }
        C_SignRecoverInit(_: CK_SESSION_HANDLE, _: *mut CK_MECHANISM, _: CK_OBJECT_HANDLE) { unsupported() }
        C_SignRecover(_: CK_SESSION_HANDLE, _: *mut CK_BYTE, _: CK_ULONG, _: *mut CK_BYTE, _: *mut CK_ULONG) { unsupported() }
        C_VerifyInit(session: CK_SESSION_HANDLE, mechanism: *mut CK_MECHANISM, key: CK_OBJECT_HANDLE) { crypto::verify_init(session, mechanism, key) }
        C_Verify(session: CK_SESSION_HANDLE, data: *mut CK_BYTE, data_len: CK_ULONG, signature: *mut CK_BYTE, signature_len: CK_ULONG) { crypto::verify(session, data, data_len, signature, signature_len) }
        C_VerifyUpdate(session: CK_SESSION_HANDLE, part: *mut CK_BYTE, part_len: CK_ULONG) { crypto::verify_update(session, part, part_len) }
        C_VerifyFinal(session: CK_SESSION_HANDLE, signature: *mut CK_BYTE, signature_len: CK_ULONG) { crypto::verify_final(session, signature, signature_len) }
        C_VerifyRecoverInit(_: CK_SESSION_HANDLE, _: *mut CK_MECHANISM, _: CK_OBJECT_HANDLE) { unsupported() }
        C_VerifyRecover(_: CK_SESSION_HANDLE, _: *mut CK_BYTE, _: CK_ULONG, _: *mut CK_BYTE, _: *mut CK_ULONG) { unsupported() }
        C_DigestEncryptUpdate(_: CK_SESSION_HANDLE, _: *mut CK_BYTE, _: CK_ULONG, _: *mut CK_BYTE, _: *mut CK_ULONG) { unsupported() }
        C_DecryptDigestUpdate(_: CK_SESSION_HANDLE, _: *mut CK_BYTE, _: CK_ULONG, _: *mut CK_BYTE, _: *mut CK_ULONG) { unsupported() }
        C_SignEncryptUpdate(_: CK_SESSION_HANDLE, _: *mut CK_BYTE, _: CK_ULONG, _: *mut CK_BYTE, _: *mut CK_ULONG) { unsupported() }
        C_DecryptVerifyUpdate(_: CK_SESSION_HANDLE, _: *mut CK_BYTE, _: CK_ULONG, _: *mut CK_BYTE, _: *mut CK_ULONG) { unsupported() }
        C_GenerateKey(session: CK_SESSION_HANDLE, mechanism: *mut CK_MECHANISM, template: *mut CK_ATTRIBUTE, count: CK_ULONG, key: *mut CK_OBJECT_HANDLE) { keys::generate_key(session, mechanism, template, count, key) }
        C_GenerateKeyPair(session: CK_SESSION_HANDLE, mechanism: *mut CK_MECHANISM, public_key_template: *mut CK_ATTRIBUTE, public_key_attribute_count: CK_ULONG, private_key_template: *mut CK_ATTRIBUTE, private_key_attribute_count: CK_ULONG, public_key: *mut CK_OBJECT_HANDLE, private_key: *mut CK_OBJECT_HANDLE) { keys::generate_key_pair(session, mechanism, public_key_template, public_key_attribute_count, private_key_template, private_key_attribute_count, public_key, private_key) }
        C_WrapKey(session: CK_SESSION_HANDLE, mechanism: *mut CK_MECHANISM, wrapping_key: CK_OBJECT_HANDLE, key: CK_OBJECT_HANDLE, wrapped_key: *mut CK_BYTE, wrapped_key_len: *mut CK_ULONG) { keys::wrap_key(session, mechanism, wrapping_key, key, wrapped_key, wrapped_key_len) }
        C_UnwrapKey(session: CK_SESSION_HANDLE, mechanism: *mut CK_MECHANISM, unwrapping_key: CK_OBJECT_HANDLE, wrapped_key: *mut CK_BYTE, wrapped_key_len: CK_ULONG, template: *mut CK_ATTRIBUTE, attribute_count: CK_ULONG, key: *mut CK_OBJECT_HANDLE) { keys::unwrap_key(session, mechanism, unwrapping_key, wrapped_key, wrapped_key_len, template, attribute_count, key) }
        C_DeriveKey(session: CK_SESSION_HANDLE, mechanism: *mut CK_MECHANISM, base_key: CK_OBJECT_HANDLE, template: *mut CK_ATTRIBUTE, attribute_count: CK_ULONG, key: *mut CK_OBJECT_HANDLE) { keys::derive_key(session, mechanism, base_key, template, attribute_count, key) }
        C_SeedRandom(session: CK_SESSION_HANDLE, seed: *mut CK_BYTE, seed_len: CK_ULONG) { random::seed(session, seed, seed_len) }
        C_GenerateRandom(session: CK_SESSION_HANDLE, random_data: *mut CK_BYTE, random_len: CK_ULONG) { random::generate(session, random_data, random_len) }
        C_GetFunctionStatus(session: CK_SESSION_HANDLE) { session::function_status(session) }
        C_CancelFunction(session: CK_SESSION_HANDLE) { session::cancel_function(session) }
        C_WaitForSlotEvent(flags: CK_FLAGS, slot: *mut CK_SLOT_ID, reserved: *mut c_void) { slot_token::wait_for_slot_event(flags, slot, reserved) }
    }
    v3 {
        #[export] C_GetInterfaceList(interfaces_list: *mut CK_INTERFACE, count: *mut CK_ULONG) { general::interface_list(interfaces_list, count) }
        #[export] C_GetInterface(interface_name: *mut CK_UTF8CHAR, version: *mut CK_VERSION, interface: *mut *mut CK_INTERFACE, flags: CK_FLAGS) { general::interface(interface_name, version, interface, flags) }
        C_LoginUser(_: CK_SESSION_HANDLE, _: CK_USER_TYPE, _: *mut CK_UTF8CHAR, _: CK_ULONG, _: *mut CK_UTF8CHAR, _: CK_ULONG) { unsupported() }
        C_SessionCancel(_: CK_SESSION_HANDLE, _: CK_FLAGS) { unsupported() }
        C_MessageEncryptInit(session: CK_SESSION_HANDLE, mechanism: *mut CK_MECHANISM, key: CK_OBJECT_HANDLE) { message::encrypt_init(session, mechanism, key) }
        C_EncryptMessage(session: CK_SESSION_HANDLE, parameter: *mut c_void, parameter_len: CK_ULONG, associated_data: *mut CK_BYTE, associated_data_len: CK_ULONG, plaintext: *mut CK_BYTE, plaintext_len: CK_ULONG, ciphertext: *mut CK_BYTE, ciphertext_len: *mut CK_ULONG) { message::encrypt_message(session, parameter, parameter_len, associated_data, associated_data_len, plaintext, plaintext_len, ciphertext, ciphertext_len) }
        C_EncryptMessageBegin(session: CK_SESSION_HANDLE, parameter: *mut c_void, parameter_len: CK_ULONG, associated_data: *mut CK_BYTE, associated_data_len: CK_ULONG) { message::encrypt_begin(session, parameter, parameter_len, associated_data, associated_data_len) }
        C_EncryptMessageNext(session: CK_SESSION_HANDLE, parameter: *mut c_void, parameter_len: CK_ULONG, plaintext_part: *mut CK_BYTE, plaintext_part_len: CK_ULONG, ciphertext_part: *mut CK_BYTE, ciphertext_part_len: *mut CK_ULONG, flags: CK_FLAGS) { message::encrypt_next(session, parameter, parameter_len, plaintext_part, plaintext_part_len, ciphertext_part, ciphertext_part_len, flags) }
        C_MessageEncryptFinal(session: CK_SESSION_HANDLE) { message::encrypt_final(session) }
        C_MessageDecryptInit(session: CK_SESSION_HANDLE, mechanism: *mut CK_MECHANISM, key: CK_OBJECT_HANDLE) { message::decrypt_init(session, mechanism, key) }
        C_DecryptMessage(session: CK_SESSION_HANDLE, parameter: *mut c_void, parameter_len: CK_ULONG, associated_data: *mut CK_BYTE, associated_data_len: CK_ULONG, ciphertext: *mut CK_BYTE, ciphertext_len: CK_ULONG, plaintext: *mut CK_BYTE, plaintext_len: *mut CK_ULONG) { message::decrypt_message(session, parameter, parameter_len, associated_data, associated_data_len, ciphertext, ciphertext_len, plaintext, plaintext_len) }
        C_DecryptMessageBegin(session: CK_SESSION_HANDLE, parameter: *mut c_void, parameter_len: CK_ULONG, associated_data: *mut CK_BYTE, associated_data_len: CK_ULONG) { message::decrypt_begin(session, parameter, parameter_len, associated_data, associated_data_len) }
        C_DecryptMessageNext(session: CK_SESSION_HANDLE, parameter: *mut c_void, parameter_len: CK_ULONG, ciphertext_part: *mut CK_BYTE, ciphertext_part_len: CK_ULONG, plaintext_part: *mut CK_BYTE, plaintext_part_len: *mut CK_ULONG, flags: CK_FLAGS) { message::decrypt_next(session, parameter, parameter_len, ciphertext_part, ciphertext_part_len, plaintext_part, plaintext_part_len, flags) }
        C_MessageDecryptFinal(session: CK_SESSION_HANDLE) { message::decrypt_final(session) }
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
