//! The store's attribute-record decoding (`object::attr::decode`): a corrupted or hostile
//! token database must give `StoreError::Malformed`, never a panic. A record that decodes
//! must survive the encode/decode round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kmshsm_fuzz::harness::attr_decode(data));
