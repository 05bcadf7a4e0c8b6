//! RSAPrivateKey DER (`crypto::rsa::RsaComponents::from_pkcs1_der`), the inner encoding of
//! imported RSA material. Whatever decodes is also handed to the key constructor, which
//! must refuse inconsistent components with an error. The RSAPublicKey decoder
//! (`from_public_der`) reads the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kmshsm_fuzz::harness::rsa_pkcs1(data));
