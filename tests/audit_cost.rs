//! The cost of the audit trail on lifecycle operations (docs/audit.md, "Cost"): times
//! Disable+Enable pairs of a KMS key and C_CreateObject+C_DestroyObject of EXTERNAL keys
//! through
//! PKCS#11, on whatever module `KMSHSM_TEST_MODULE` names, so a build without the trail
//! and one with it are timed by the same code. Ignored by default (a measurement, not a
//! check); run with
//! `KMSHSM_TEST_MODULE=... cargo nextest run --test audit_cost --run-ignored all --no-capture`.
//! `KMSHSM_COST_PHASE` (`state`, `create`, `encrypt`) runs one loop only, for counting
//! instructions under callgrind at two round counts (`bench/audit_cost.sh`), which a
//! loaded machine cannot disturb.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::time::Instant;

use common::kms::*;
use common::*;

#[test]
#[ignore = "a measurement; see the module comment"]
fn lifecycle_operations_per_second() {
    let rounds: usize = std::env::var("KMSHSM_COST_ROUNDS")
        .map(|n| n.parse().unwrap())
        .unwrap_or(200);
    let env = TestEnv::new();
    let (_ctx, _slot, session) = ready_token(&env);
    // A KMS key (no import: RSA key generation for the import parameters would make the
    // setup's instruction count vary far more than the loops').
    let key = session
        .generate_key(
            &cryptoki::mechanism::Mechanism::AesKeyGen,
            &[
                cryptoki::object::Attribute::Token(true),
                cryptoki::object::Attribute::ValueLen(32.into()),
            ],
        )
        .unwrap();
    let phase = std::env::var("KMSHSM_COST_PHASE").ok();
    let runs = |p: &str| phase.as_deref().is_none_or(|q| q == p);
    let rounds_of = |p: &str| if runs(p) { rounds } else { 0 };
    let started = Instant::now();
    let cpu = thread_cpu_ns();
    for _ in 0..rounds_of("state") {
        set_state(&session, key, STATE_DISABLED).unwrap();
        set_state(&session, key, STATE_ENABLED).unwrap();
    }
    let state_us = started.elapsed().as_micros() as f64 / (2 * rounds) as f64;
    let state_cpu = (thread_cpu_ns() - cpu) as f64 / 1e3 / (2 * rounds) as f64;
    let started = Instant::now();
    let cpu = thread_cpu_ns();
    for n in 0..rounds_of("create") {
        let k = create_external(&session, Spec::Aes256, &format!("c{n}"));
        session.destroy_object(k).unwrap();
    }
    let create_us = started.elapsed().as_micros() as f64 / (2 * rounds) as f64;
    let create_cpu = (thread_cpu_ns() - cpu) as f64 / 1e3 / (2 * rounds) as f64;
    let started = Instant::now();
    for _ in 0..rounds_of("encrypt") {
        encrypt_with(&session, Spec::Aes256, key).unwrap();
    }
    let encrypt_us = started.elapsed().as_micros() as f64 / rounds as f64;
    println!(
        "COST state-change {state_us:.0} us/op, create-or-destroy {create_us:.0} us/op, \
         encrypt {encrypt_us:.0} us/op ({rounds} rounds, {})",
        module_path().display()
    );
    // CPU time of this thread (the module works in the caller's thread): what the trail
    // adds, without the fsync's wait, and little disturbed by other load on the machine.
    println!("CPU state-change {state_cpu:.1} us/op, create-or-destroy {create_cpu:.1} us/op");
}

/// Nanoseconds this thread has run on a CPU (the scheduler's own account).
fn thread_cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    stat.split_whitespace().next().unwrap().parse().unwrap()
}
