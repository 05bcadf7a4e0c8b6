//! The configuration file (`config::Config::parse`): any text gives a configuration or
//! `Error::Config`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kmshsm_fuzz::harness::config_parse(data));
