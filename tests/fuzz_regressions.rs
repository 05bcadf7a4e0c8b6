//! Fuzz regressions: every input kept in `fuzz/regressions/<target>/` (inputs that once
//! broke a target, or would have, named after what they exercise; see
//! fuzz/regressions/README.md), plus generated edge cases, replayed through the very
//! harness functions the cargo-fuzz targets run (`fuzz/src/harness.rs`, included here by
//! path), so a fixed crash stays fixed without a nightly toolchain. Where the decoder's
//! answer is known the test checks it (refused, with its error), not only that nothing
//! panics; the generated cases of the other targets check that nothing panics.
//!
//! Run with `cargo nextest run --test fuzz_regressions`; scripts/fuzz.sh runs the fuzzers.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

#[path = "../fuzz/src/harness.rs"]
mod harness;

use std::path::PathBuf;

/// The inputs kept in `fuzz/regressions/<target>/`, by file name, in order. A target
/// listed here must have some: an empty directory would make its test check nothing.
fn kept(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut inputs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "{} holds no input", dir.display());
    inputs
}

/// Runs the target's harness `f` on every kept input of `target` and on `extra`: none
/// may panic. Answers the kept inputs.
fn replay(target: &str, f: fn(&[u8]), extra: &[&[u8]]) -> Vec<(String, Vec<u8>)> {
    let kept = kept_or_none(target);
    let inline = extra
        .iter()
        .enumerate()
        .map(|(i, b)| (format!("inline #{i}"), b.to_vec()));
    for (name, bytes) in kept.iter().cloned().chain(inline) {
        let outcome = std::panic::catch_unwind(|| f(&bytes));
        assert!(
            outcome.is_ok(),
            "{target}: input {name} panics ({} bytes)",
            bytes.len()
        );
    }
    kept
}

/// [`kept`], for targets that may have none kept yet.
fn kept_or_none(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    if dir.is_dir() {
        kept(target)
    } else {
        Vec::new()
    }
}

#[test]
fn store_records_kept_as_regressions_are_refused_as_malformed_without_panicking() {
    let kept = replay("attr_decode", harness::attr_decode, &[]);
    assert!(kept.len() >= 6, "{kept:?}");
    for (name, bytes) in &kept {
        match kmshsm::object::attr::decode(bytes) {
            Err(kmshsm::error::Error::Store(kmshsm::error::StoreError::Malformed(_))) => {}
            other => panic!("attr_decode {name}: {other:?}, not Malformed"),
        }
    }
    // The smallest valid record, for contrast: the format byte and no attribute.
    assert_eq!(kmshsm::object::attr::decode(&[1]).unwrap().len(), 0);
}

#[test]
fn configuration_texts_kept_as_regressions_are_refused_without_panicking() {
    let kept = replay("config_parse", harness::config_parse, &[b"", b"\xff\xfe"]);
    for (name, bytes) in &kept {
        let text = std::str::from_utf8(bytes).unwrap();
        match kmshsm::config::Config::parse(text) {
            Err(kmshsm::error::Error::Config(_)) => {}
            other => panic!("config_parse {name}: {other:?}, not a configuration error"),
        }
    }
}

#[test]
fn import_tokens_of_every_length_and_authenticated_garbage_never_panic() {
    let mut inputs: Vec<Vec<u8>> = (0..200).map(|n| vec![0x41; n]).collect();
    // Authenticated bodies (mode byte odd): the right length with junk behind the MAC,
    // KMT1 (mode 1, 77-byte body) and KMT2 (mode 3, 93-byte body).
    for (mode, body) in [(1u8, 77usize), (3, 93)] {
        inputs.push([&[mode][..], &vec![0xff; body]].concat());
        inputs.push([&[mode][..], &vec![0x00; body]].concat());
        inputs.push([&[mode][..], &[0x7f; 8], &vec![0x61; body - 8]].concat());
    }
    let refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
    replay("import_token", harness::import_token, &refs);
}

#[test]
fn der_key_encodings_kept_as_regressions_are_refused_without_panicking() {
    for (name, bytes) in &replay("pkcs8_spki", harness::pkcs8_spki, &[b""]) {
        assert!(
            kmshsm::crypto::pkcs8::decode_private_key_info(bytes).is_err(),
            "pkcs8_spki {name}: decoded as a PrivateKeyInfo"
        );
        assert!(
            kmshsm::crypto::pkcs8::decode_spki(bytes).is_err(),
            "pkcs8_spki {name}: decoded as a SubjectPublicKeyInfo"
        );
    }
    for (name, bytes) in &replay("rsa_pkcs1", harness::rsa_pkcs1, &[b""]) {
        assert!(
            kmshsm::crypto::rsa::RsaComponents::from_pkcs1_der(bytes).is_err(),
            "rsa_pkcs1 {name}: decoded as an RSAPrivateKey"
        );
    }
}

#[test]
fn templates_with_nested_and_odd_sized_values_never_panic() {
    let inputs: &[&[u8]] = &[b"", &[0], &[0, 0xEE, 0xEE, 0xEE], &[1, 3, 200], &[4, 0xFB]];
    replay("template", harness::template, inputs);
}

#[test]
fn wrapped_blobs_of_every_unwrap_mechanism_never_panic() {
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    for mech in 0..24u8 {
        for param in 0..8u8 {
            for key in [0u8, 1, 2] {
                for len in [0usize, 16, 256, 300] {
                    inputs.push([&[mech, param, key][..], &vec![0x5a; len]].concat());
                }
            }
        }
    }
    let refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
    replay("unwrap", harness::unwrap, &refs);
}

#[test]
fn mechanism_parameters_of_every_kind_never_panic() {
    // Every mechanism index, every parameter kind, every key; the rest of the input is
    // one repeated byte, which also picks the operation and fills the parameter fields.
    let mut inputs: Vec<Vec<u8>> = Vec::new();
    let mechanisms = u8::try_from(kmshsm::mechanism::list().len()).expect("under 256");
    for mech in 0..mechanisms {
        for param in 0..15u8 {
            for fill in [0u8, 1, 2, 3, 4, 5, 6, 7, 0x21] {
                inputs.push([&[mech, param][..], &[fill; 48]].concat());
            }
        }
    }
    // And a fixed pseudo-random spread (xorshift64), which varies every field.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..4000 {
        let bytes: Vec<u8> = (0..96)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        inputs.push(bytes);
    }
    let refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
    replay("mech_params", harness::mech_params, &refs);
}
