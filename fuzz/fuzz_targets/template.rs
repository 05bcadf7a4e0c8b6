//! Attribute templates as `C_CreateObject`, `C_FindObjectsInit` and `C_SetAttributeValue`
//! receive them after the C ABI has copied them: `object::template::build` (every
//! provenance) and `parse_search`, with types drawn from the attributes the module knows
//! (so the value checks are reached) and arbitrary values, nested templates included.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kmshsm_fuzz::harness::template(data));
