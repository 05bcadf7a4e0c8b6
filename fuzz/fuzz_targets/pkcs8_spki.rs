//! DER decoding of imported key material: PKCS#8 PrivateKeyInfo and SubjectPublicKeyInfo
//! (`crypto::pkcs8`), plus the SEC1 EC private key and EC point helpers they lead to.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kmshsm_fuzz::harness::pkcs8_spki(data));
