//! The cost of the audit trail on lifecycle operations (docs/audit.md, "Cost"): times
//! Disable+Enable pairs and C_CreateObject+C_DestroyObject of EXTERNAL keys through
//! PKCS#11, on whatever module `KMSHSM_TEST_MODULE` names, so a build without the trail
//! and one with it are timed by the same code. Ignored by default (a measurement, not a
//! check); run with
//! `KMSHSM_TEST_MODULE=... cargo nextest run --test audit_cost --run-ignored all --no-capture`.

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
    let key = create_external(&session, Spec::Aes256, "k");
    let work = Work::new(&env);
    import_with(
        &session,
        &work,
        key,
        WRAP_RSAES_OAEP_SHA_256,
        &[1; 32],
        None,
    )
    .unwrap();
    let started = Instant::now();
    for _ in 0..rounds {
        set_state(&session, key, STATE_DISABLED).unwrap();
        set_state(&session, key, STATE_ENABLED).unwrap();
    }
    let state_us = started.elapsed().as_micros() as f64 / (2 * rounds) as f64;
    let started = Instant::now();
    for n in 0..rounds {
        let k = create_external(&session, Spec::Aes256, &format!("c{n}"));
        session.destroy_object(k).unwrap();
    }
    let create_us = started.elapsed().as_micros() as f64 / (2 * rounds) as f64;
    let started = Instant::now();
    for _ in 0..rounds {
        encrypt_with(&session, Spec::Aes256, key).unwrap();
    }
    let encrypt_us = started.elapsed().as_micros() as f64 / rounds as f64;
    println!(
        "COST state-change {state_us:.0} us/op, create-or-destroy {create_us:.0} us/op, \
         encrypt {encrypt_us:.0} us/op ({rounds} rounds, {})",
        module_path().display()
    );
}
