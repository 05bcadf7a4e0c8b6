//! The two-thread signing line: two workers released together, each with its own session
//! (or, for the raw column, its own signature buffer), counted over the wall-clock time.
//!
//! It must not decide rounds or module order: `timing::line` does that, as for every line.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use aws_lc_rs::signature::RSA_PKCS1_SHA256;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::ObjectHandle;

use crate::keys::MSG;
use crate::raw::Raw;
use crate::token::{user_session, Loaded};
use crate::{err, Res};

/// Two threads, each with its own session, signing for `budget`; total signatures per second.
pub(crate) fn two_thread_sign(m: &Loaded, key: ObjectHandle, budget: Duration) -> Res<f64> {
    let workers = [user_session(&m.ctx, m.slot)?, user_session(&m.ctx, m.slot)?].map(|s| {
        move || -> Res<()> {
            s.sign(&Mechanism::Sha256RsaPkcs, key, &MSG)
                .map_err(err("C_Sign"))?;
            Ok(())
        }
    });
    threads_rate(workers, budget)
}

/// The raw primitive's two-thread line: aws-lc-rs RSA-2048 PKCS#1 v1.5 signing.
pub(crate) fn raw_two_thread_sign(raw: &Raw, budget: Duration) -> Res<f64> {
    let workers = [0, 1].map(|_| {
        let mut sig = vec![0; raw.rsa.public_modulus_len()];
        move || -> Res<()> {
            raw.rsa
                .sign(&RSA_PKCS1_SHA256, &raw.rng, &MSG, &mut sig)
                .map_err(err("sign"))
        }
    });
    threads_rate(workers, budget)
}

/// Runs each worker in its own thread, all released together, each repeating its operation
/// for `budget`; returns the total operations per second over the wall-clock time.
fn threads_rate<W>(workers: impl IntoIterator<Item = W>, budget: Duration) -> Res<f64>
where
    W: FnMut() -> Res<()> + Send,
{
    let workers: Vec<W> = workers.into_iter().collect();
    let barrier = Barrier::new(workers.len() + 1);
    let (total, elapsed) = std::thread::scope(|sc| -> Res<(usize, f64)> {
        let handles: Vec<_> = workers
            .into_iter()
            .map(|mut work| {
                let barrier = &barrier;
                sc.spawn(move || -> Res<usize> {
                    barrier.wait();
                    let start = Instant::now();
                    let mut n = 0;
                    while start.elapsed() < budget {
                        work()?;
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let mut total = 0;
        for h in handles {
            total += h.join().map_err(|_| "thread panicked".to_string())??;
        }
        Ok((total, start.elapsed().as_secs_f64()))
    })?;
    Ok(total as f64 / elapsed)
}
