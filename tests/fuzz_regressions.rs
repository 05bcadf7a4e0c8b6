//! Fuzz regressions: every input kept in `fuzz/regressions/<target>/` (inputs that once
//! crashed a target; see fuzz/regressions/README.md), plus hand-picked edge cases, replayed
//! through the very harness functions the cargo-fuzz targets run (`fuzz/src/harness.rs`,
//! included here by path), so a fixed crash stays fixed without a nightly toolchain.
//!
//! Run with `cargo nextest run --test fuzz_regressions`; scripts/fuzz.sh runs the fuzzers.

#[path = "../fuzz/src/harness.rs"]
mod harness;

use std::path::PathBuf;

/// Runs `f` on every kept input of `target` and on `extra`; returns how many ran.
fn replay(target: &str, f: fn(&[u8]), extra: &[&[u8]]) -> usize {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut inputs: Vec<(String, Vec<u8>)> = extra
        .iter()
        .enumerate()
        .map(|(i, b)| (format!("inline #{i}"), b.to_vec()))
        .collect();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries {
            let path = e.unwrap().path();
            if path.is_file() {
                inputs.push((path.display().to_string(), std::fs::read(&path).unwrap()));
            }
        }
    }
    for (name, bytes) in &inputs {
        let outcome = std::panic::catch_unwind(|| f(bytes));
        assert!(
            outcome.is_ok(),
            "{target}: input {name} panics ({} bytes)",
            bytes.len()
        );
    }
    inputs.len()
}

/// A store record entry: type, tag, declared length, payload.
fn entry(ty: u64, tag: u8, len: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = ty.to_le_bytes().to_vec();
    out.push(tag);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

#[test]
fn store_records_that_once_broke_or_could_break_decoding_are_refused_cleanly() {
    let mut lying = vec![1u8];
    lying.extend(entry(3, 2, u32::MAX, b"abc"));
    let mut nested = vec![1u8];
    let inner = entry(0x40000211, 4, 0, &[]);
    nested.extend(entry(0x40000211, 4, inner.len() as u32, &inner));
    let mut deep = vec![1u8];
    let mut payload = entry(1, 0, 1, &[1]);
    for _ in 0..3 {
        payload = entry(0x40000211, 4, payload.len() as u32, &payload);
    }
    deep.extend(payload);
    let n = replay(
        "attr_decode",
        harness::attr_decode,
        &[b"", &[1], &[0], &[1, 0, 0], &lying, &nested, &deep],
    );
    assert!(n >= 7);
}

#[test]
fn configuration_texts_that_could_break_parsing_are_refused_cleanly() {
    let inputs: &[&[u8]] = &[
        b"",
        b"token_dir = \"\"",
        b"[kdf]\nparallelism = 0",
        b"[kdf]\nmemory_kib = 4294967295\nparallelism = 16777215",
        b"max_pin_failures = -1",
        b"log_level = 7",
        b"token_dir = \"/x\"\n[kdf]\niterations = 0",
        b"\xff\xfe",
    ];
    replay("config_parse", harness::config_parse, inputs);
}

#[test]
fn import_tokens_of_every_length_and_authenticated_garbage_are_refused_cleanly() {
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
fn der_key_encodings_with_lying_lengths_are_refused_cleanly() {
    let inputs: &[&[u8]] = &[
        b"",
        &[0x30],
        &[0x30, 0x80],
        &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
        &[0x30, 0x89, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        &[0x30, 0x03, 0x02, 0x01, 0x00],
        &[0x30, 0x05, 0x02, 0x01, 0x00, 0x30, 0x00],
        &[0x02, 0x00],
    ];
    replay("pkcs8_spki", harness::pkcs8_spki, inputs);
    replay("rsa_pkcs1", harness::rsa_pkcs1, inputs);
}

#[test]
fn templates_with_nested_and_odd_sized_values_are_refused_cleanly() {
    let inputs: &[&[u8]] = &[b"", &[0], &[0, 0xEE, 0xEE, 0xEE], &[1, 3, 200], &[4, 0xFB]];
    replay("template", harness::template, inputs);
}

#[test]
fn wrapped_blobs_of_every_unwrap_mechanism_are_refused_cleanly() {
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
fn mechanism_parameters_of_every_kind_are_refused_or_used_cleanly() {
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
