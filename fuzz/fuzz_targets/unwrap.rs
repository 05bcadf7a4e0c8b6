//! C_UnwrapKey's wrapped blobs for every wrapping mechanism: the registry's unwrap of each
//! mechanism that has `CKF_UNWRAP`, with an RSA-2048, an SM2 and an AES-256 unwrapping key
//! (the key of the wrong kind must be refused with an error, not a panic) and a parameter
//! chosen by the first input byte. This is the code `C_UnwrapKey` (and so ImportKeyMaterial)
//! runs after the C ABI has decoded the mechanism.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kmshsm_fuzz::harness::unwrap(data));
