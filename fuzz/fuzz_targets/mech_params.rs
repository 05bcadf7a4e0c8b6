//! Mechanism parameters: every parameter structure, filled from the input, given to every
//! registered mechanism's operations with keys of every kind (`harness::mech_params`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kmshsm_fuzz::harness::mech_params(data));
