//! Import tokens (`kms::import::ImportToken::open`). Half the inputs are taken as they are
//! (the MAC check must refuse them without panicking); the other half get a valid
//! HMAC-SHA256 tag under the fuzzer's key, so the parsing behind the MAC (KeyId, wrapping
//! algorithm code, expiry) is reached with arbitrary bodies.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kmshsm_fuzz::harness::import_token(data));
