//! Many processes on one token at once (DESIGN.md §3: "several processes may use one token
//! at once ... each sees the others' committed changes"). Four or more children, started
//! together, each for a few seconds: create token data objects, destroy some of them,
//! create EXTERNAL AES keys and import material (GetParametersForImport + C_UnwrapKey),
//! delete the material of some (DeleteKeyMaterial), and read the token. Each child reports
//! every change that returned CKR_OK and every object of another process it saw.
//! Afterwards: every committed object is on the token exactly once, every destroyed one is
//! gone, every key is in the state its last committed change left it in, and every process
//! saw objects of every other process while it ran.
//!
//! `KMSHSM_PROCESSES` (default 4) children for `KMSHSM_PROCESS_SECONDS` (default 4; 2 when
//! `CI` is set). Run with `cargo nextest run --test many_processes`.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use common::kms::*;
use common::*;

const CHILD_ENTRY: &str = "child_process_entry_point";

fn env_number(name: &str, default: u64, ci: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{name}")),
        Err(_) if std::env::var_os("CI").is_some() => ci,
        Err(_) => default,
    }
}

fn labels(session: &Session, class: ObjectClass) -> Vec<(ObjectHandle, String)> {
    session
        .find_objects(&[Attribute::Class(class)])
        .unwrap()
        .into_iter()
        // Another process may destroy an object between the search and the read: that
        // object is simply gone (CKR_OBJECT_HANDLE_INVALID), not an error of this test.
        .filter_map(|h| {
            let label = match session.get_attributes(h, &[AttributeType::Label]) {
                Ok(mut attrs) => match attrs.pop() {
                    Some(Attribute::Label(l)) => l,
                    _ => return None,
                },
                Err(cryptoki::error::Error::Pkcs11(
                    cryptoki::error::RvError::ObjectHandleInvalid,
                    _,
                )) => return None,
                Err(e) => panic!("reading a label: {e}"),
            };
            Some((h, String::from_utf8(label).unwrap()))
        })
        .collect()
}

/// Not a test: one worker process.
#[test]
#[ignore = "child-process entry point: this file's tests run it in a child (--ignored --exact)"]
fn child_process_entry_point() {
    let Some(role) = child_role() else { return };
    let me: usize = role.strip_prefix("worker-").unwrap().parse().unwrap();
    let seconds: u64 = std::env::var("KMSHSM_PROCESS_SECONDS")
        .unwrap()
        .parse()
        .unwrap();
    let work = Work {
        dir: PathBuf::from(std::env::var("KMSHSM_WORK_DIR").unwrap()),
    };
    let ctx = load_module();
    initialize(&ctx).unwrap();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let session = match user_session_tolerant(&ctx, slot) {
        Some(s) => s,
        None => panic!("worker {me}: cannot log in"),
    };
    // Start together: logins take write transactions (the PIN attempt reservation), and
    // a worker already committing in a tight loop can hold them off for longer than the
    // run lasts, so a late worker would find the others finished. The contract is about
    // processes running at the same time.
    let processes: usize = std::env::var("KMSHSM_PROCESSES_STARTING")
        .unwrap()
        .parse()
        .unwrap();
    std::fs::write(work.dir.join(format!("ready-{me}")), b"").unwrap();
    let started = Instant::now();
    while std::fs::read_dir(&work.dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("ready-"))
        .count()
        < processes
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "worker {me}: the other workers did not log in within 120 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut imported: Vec<(String, ObjectHandle)> = Vec::new();
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut n = 0;
    // At least four rounds whatever the clock says: on a loaded machine the first round
    // (an import, with its RSA key generation) can outlast the time given, and a worker
    // that never reached a search would have seen nothing.
    while Instant::now() < until || n < 4 {
        n += 1;
        let label = format!("p{me}-o{n}");
        let h = session
            .create_object(&data_template(&label, label.as_bytes(), true))
            .unwrap();
        tell_parent(&format!("created {label}"));
        if n % 3 == 0 {
            session.destroy_object(h).unwrap();
            tell_parent(&format!("destroyed {label}"));
        }
        if n % 4 == 1 {
            let key_label = format!("p{me}-k{n}");
            let key = create_external(&session, Spec::Aes256, &key_label);
            tell_parent(&format!("created {key_label}"));
            let material = [me as u8 + 1; 32];
            import_with(&session, &work, key, WRAP_RSAES_OAEP_SHA_1, &material, None).unwrap();
            tell_parent(&format!("enabled {key_label}"));
            imported.push((key_label, key));
        }
        if n % 6 == 0 {
            if let Some((key_label, key)) = imported.pop() {
                set_state(&session, key, STATE_PENDING_IMPORT).unwrap();
                tell_parent(&format!("pending {key_label}"));
            }
        }
        if n % 2 == 0 {
            for (_, l) in labels(&session, ObjectClass::DATA) {
                if !l.starts_with(&format!("p{me}-")) && seen.insert(l.clone()) {
                    tell_parent(&format!("saw {l}"));
                }
            }
        }
    }
    tell_parent("done");
}

/// A user session; C_Login may answer "already logged in" when another session of this
/// process logged in first.
fn user_session_tolerant(
    ctx: &cryptoki::context::Pkcs11,
    slot: cryptoki::slot::Slot,
) -> Option<Session> {
    let s = ctx.open_rw_session(slot).ok()?;
    match s.login(cryptoki::session::UserType::User, Some(&pin(USER_PIN))) {
        Ok(()) => Some(s),
        Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {
            Some(s)
        }
        Err(_) => None,
    }
}

#[test]
fn four_processes_on_one_token_see_each_other_and_every_committed_change_is_there_once() {
    four_processes(TestEnv::new());
}

/// The same on a PostgreSQL token (tests/postgres.rs): hosts simulated by processes.
#[test]
fn four_processes_on_one_postgres_token_see_each_other_and_every_committed_change_is_there_once() {
    four_processes(TestEnv::postgres());
}

fn four_processes(env: TestEnv) {
    let ctx = env.load();
    init_token(&ctx);
    ctx.finalize().unwrap();
    let work = Work::new(&env);
    let processes = env_number("KMSHSM_PROCESSES", 4, 4) as usize;
    assert!(
        processes >= 4,
        "the contract is about at least four processes"
    );
    let seconds = env_number("KMSHSM_PROCESS_SECONDS", 4, 2);

    let children: Vec<_> = (0..processes)
        .map(|i| {
            let mut child = child_command(CHILD_ENTRY, &format!("worker-{i}"))
                .env("KMSHSM_PROCESS_SECONDS", seconds.to_string())
                .env("KMSHSM_PROCESSES_STARTING", processes.to_string())
                .env("KMSHSM_WORK_DIR", &work.dir)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn worker");
            let out = child.stdout.take().unwrap();
            let reader = std::thread::spawn(move || {
                BufReader::new(out)
                    .lines()
                    .map_while(Result::ok)
                    .filter_map(|l| child_line(&l).map(str::to_owned))
                    .collect::<Vec<String>>()
            });
            (child, reader)
        })
        .collect();
    let mut reports = Vec::new();
    for (i, (child, reader)) in children.into_iter().enumerate() {
        let output = child.wait_with_output().unwrap();
        let lines = reader.join().unwrap();
        assert!(
            output.status.success() && lines.last().map(String::as_str) == Some("done"),
            "worker {i} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        reports.push(lines);
    }

    // The final state each committed change implies, in each process's order.
    let mut expected: BTreeMap<String, &str> = BTreeMap::new();
    let mut saw: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); processes];
    for (i, lines) in reports.iter().enumerate() {
        for line in lines {
            let Some((event, label)) = line.split_once(' ') else {
                continue;
            };
            match event {
                "created" => expected.insert(label.into(), "present"),
                "destroyed" => expected.insert(label.into(), "absent"),
                "enabled" => expected.insert(label.into(), "enabled"),
                "pending" => expected.insert(label.into(), "pending"),
                "saw" => {
                    let other: usize = label[1..label.find('-').unwrap()].parse().unwrap();
                    saw[i].insert(other);
                    None
                }
                _ => None,
            };
        }
    }

    let ctx = env.load();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let session = user_session(&ctx, slot);
    let mut on_token: BTreeMap<String, Vec<ObjectHandle>> = BTreeMap::new();
    for class in [ObjectClass::DATA, ObjectClass::SECRET_KEY] {
        for (h, l) in labels(&session, class) {
            on_token.entry(l).or_default().push(h);
        }
    }
    let mut problems = Vec::new();
    for (label, want) in &expected {
        let handles = on_token.get(label).map_or(&[][..], Vec::as_slice);
        let ok = match *want {
            "absent" => handles.is_empty(),
            "present" => handles.len() == 1,
            "enabled" | "pending" => {
                handles.len() == 1 && {
                    let s = state(&session, handles[0]);
                    s == if *want == "enabled" {
                        STATE_ENABLED
                    } else {
                        STATE_PENDING_IMPORT
                    }
                }
            }
            _ => unreachable!(),
        };
        if !ok {
            problems.push(format!(
                "{label}: expected {want}, {} objects on the token",
                handles.len()
            ));
        }
    }
    let committed = expected.values().filter(|w| **w != "absent").count();
    let stray: Vec<&String> = on_token
        .keys()
        .filter(|l| !expected.contains_key(*l))
        .collect();
    println!(
        "{processes} processes, {} changes committed, {} objects kept; seen: {saw:?}",
        reports.iter().map(Vec::len).sum::<usize>(),
        committed
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(stray.is_empty(), "objects no process committed: {stray:?}");
    for (i, others) in saw.iter().enumerate() {
        let expected_others: BTreeSet<usize> = (0..processes).filter(|j| *j != i).collect();
        assert_eq!(
            *others,
            expected_others,
            "process {i} did not see every other process's objects while running \
             (it reported {} changes)",
            reports[i].len()
        );
    }
}
