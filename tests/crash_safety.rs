//! Crash safety of the token store (DESIGN.md §3: "a kill -9 at any moment loses no
//! committed key and corrupts nothing"). A child creates token objects in a loop and prints
//! each label once C_CreateObject has returned CKR_OK; it is SIGKILLed at a random moment.
//! After every kill: SQLite's integrity check passes, the library initialises, the user logs
//! in, and every printed label is on the token.
//!
//! Needs the `sqlite3` command line (`apt-get install -y sqlite3`). Rounds: 20, or 10 when
//! `CI` is set, or `KMSHSM_CRASH_ROUNDS`. The random seed is printed; set
//! `KMSHSM_CRASH_SEED` to replay. Run with `cargo nextest run`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;

const CHILD_ENTRY: &str = "child_process_entry_point";

/// Not a test: the object-creating child that gets killed.
#[test]
#[ignore = "child-process entry point: this file's tests run it in a child (--ignored --exact)"]
fn child_process_entry_point() {
    let Some(role) = child_role() else { return };
    assert_eq!(role, "writer");
    let round: u32 = std::env::var("KMSHSM_CRASH_ROUND")
        .unwrap()
        .parse()
        .unwrap();
    let ctx = load_module();
    initialize(&ctx).unwrap();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let session = user_session(&ctx, slot);
    for i in 0..1_000_000u32 {
        let label = format!("r{round}-o{i}");
        // Alternate public data objects and sealed secret keys.
        let template = if i % 2 == 0 {
            data_template(&label, label.as_bytes(), true)
        } else {
            aes_template(&label, &[(i % 251) as u8; 32], true)
        };
        session.create_object(&template).unwrap();
        tell_parent(&label);
    }
}

/// xorshift64*, seeded from the clock or KMSHSM_CRASH_SEED.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn rounds() -> u32 {
    if let Ok(n) = std::env::var("KMSHSM_CRASH_ROUNDS") {
        return n.parse().expect("KMSHSM_CRASH_ROUNDS");
    }
    if std::env::var_os("CI").is_some() {
        10
    } else {
        20
    }
}

fn integrity_check(db: &std::path::Path) {
    let sqlite3 = require_tool("sqlite3", "sqlite3");
    let output = Command::new(sqlite3)
        .arg(db)
        .arg("PRAGMA integrity_check;")
        .output()
        .expect("run sqlite3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.trim() == "ok",
        "integrity_check of {}: {}{}",
        db.display(),
        stdout,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs one writer until it has printed at least one label, kills it after a random delay,
/// and returns every label it printed.
fn run_and_kill(round: u32, rng: &mut Rng) -> Vec<String> {
    let mut child = child_command(CHILD_ENTRY, "writer")
        .env("KMSHSM_CRASH_ROUND", round.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn writer");
    let stdout = child.stdout.take().unwrap();
    let (first_tx, first_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut labels = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(label) = child_line(&line) {
                if labels.is_empty() {
                    let _ = first_tx.send(());
                }
                labels.push(label.to_owned());
            }
        }
        labels
    });
    let started = first_rx.recv_timeout(Duration::from_secs(60));
    if started.is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("round {round}: the writer created no object within 60 s");
    }
    std::thread::sleep(Duration::from_millis(rng.next() % 300));
    child.kill().expect("SIGKILL the writer"); // Child::kill is SIGKILL on Unix
    assert_killed(child.wait().unwrap(), &format!("round {round}"));
    reader.join().unwrap()
}

#[test]
fn sigkill_during_object_creation_loses_nothing_committed() {
    require_tool("sqlite3", "sqlite3");
    kill_during_creation(TestEnv::new());
}

/// The same on a PostgreSQL token (tests/postgres.rs).
#[test]
fn sigkill_during_object_creation_on_postgres_loses_nothing_committed() {
    kill_during_creation(TestEnv::postgres());
}

fn kill_during_creation(env: TestEnv) {
    let ctx = env.load();
    init_token(&ctx);
    ctx.finalize().unwrap();

    let seed = std::env::var("KMSHSM_CRASH_SEED")
        .map(|s| s.parse().expect("KMSHSM_CRASH_SEED"))
        .unwrap_or_else(|_| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("crash-safety seed {seed}");
    let mut rng = Rng(seed);
    let mut printed: Vec<String> = Vec::new();
    let begun = Instant::now();

    for round in 0..rounds() {
        let labels = run_and_kill(round, &mut rng);
        printed.extend(labels);

        // (b) the database is intact (checked before the library touches it again).
        if env.pg.is_none() {
            integrity_check(&env.token_database());
        }

        // (a) the library initialises and the user logs in; (c) nothing printed is lost.
        let ctx = load_module();
        initialize(&ctx)
            .unwrap_or_else(|e| panic!("round {round}: C_Initialize: {e} (seed {seed})"));
        let slot = slot_of_token(&ctx, TOKEN_LABEL);
        let session = user_session(&ctx, slot);
        let present: HashSet<String> = session
            .find_objects(&[])
            .unwrap()
            .into_iter()
            .map(|h| {
                String::from_utf8(attribute_bytes(
                    &session,
                    h,
                    cryptoki::object::AttributeType::Label,
                ))
                .unwrap()
            })
            .collect();
        let missing: Vec<&String> = printed.iter().filter(|l| !present.contains(*l)).collect();
        assert!(
            missing.is_empty(),
            "round {round} (seed {seed}): {} committed objects lost, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        drop(session);
        ctx.finalize().unwrap();
    }
    println!(
        "{} objects over {} rounds in {:?}",
        printed.len(),
        rounds(),
        begun.elapsed()
    );
}
