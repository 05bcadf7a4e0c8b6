//! Group commit (issue 18, item 2): the SQLite store commits with `synchronous=NORMAL`
//! and syncs the WAL itself, outside its write lock, before it acknowledges anything.
//!
//! - Ordering, seen by the kernel: a child creating token keys runs under
//!   `strace -f -y`; for every C_CreateObject that returned CKR_OK, an fdatasync/fsync
//!   of the token's `-wal` file that *began after* the call's last write to that file
//!   *ended before* the call returned (the child marks both moments with a write to a
//!   file of its own). One creator, four threads creating at once (then the fsync
//!   that covers a thread may be another thread's), and four processes creating at once
//!   (then it may be another process's, through the sync board). Without strace the
//!   test fails and says what to install.
//! - Nothing acknowledged is lost: four threads of one process, and four processes,
//!   create keys until they are killed with SIGKILL; reopened, the token holds every key
//!   whose creation a creator reported as returned.
//!
//! Power loss itself cannot be staged here; the strace test is what shows that no
//! acknowledgement comes before its fsync.

#![allow(clippy::unwrap_used, unreachable_pub)] // test code: a failed unwrap is a failed test; helpers are pub for the test crates sharing them

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const CHILD_ENTRY: &str = "child_process_entry_point";

/// Children: `strace-T` or `strace-P-T` (T threads, `KMSHSM_KEYS_EACH` keys each,
/// marking each call and its return, tagged with the process P, in the file
/// `KMSHSM_MARKS`), `launch-P-T` (starts P children `strace-p-T`, each marking in
/// `p.marks` beside `KMSHSM_MARKS`, and waits for them: what `strace -f` follows) and
/// `creator-P-T` (T threads creating keys labelled `P-thread-i` until killed, telling
/// the parent each one that returned).
#[test]
#[ignore = "child-process entry point: this file's tests run it in a child (--ignored --exact)"]
fn child_process_entry_point() {
    let Some(role) = child_role() else { return };
    if let Some(spec) = role.strip_prefix("launch-") {
        let (processes, threads) = spec.split_once('-').unwrap();
        let marks = std::path::PathBuf::from(std::env::var("KMSHSM_MARKS").unwrap());
        // Released together once every one is logged in, so that they create at once.
        let (mut children, _outputs) =
            spawn_ready((0..processes.parse::<usize>().unwrap()).map(|p| {
                let mut command = child_command(CHILD_ENTRY, &format!("strace-{p}-{threads}"));
                command
                    .env("KMSHSM_MARKS", marks.with_file_name(format!("{p}.marks")))
                    .stdin(Stdio::piped());
                command
            }));
        for child in &mut children {
            child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        }
        for mut child in children {
            assert!(child.wait().unwrap().success(), "a traced creator failed");
        }
        return;
    }
    let ctx = load_module();
    initialize(&ctx).unwrap();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let first = user_session(&ctx, slot);
    let parts: Vec<&str> = role.split('-').collect();
    let threads: usize = parts[parts.len() - 1].parse().unwrap();
    let sessions: Vec<_> = std::iter::once(first)
        .chain((1..threads).map(|_| ctx.open_rw_session(slot).unwrap()))
        .collect();
    match parts[0] {
        "strace" => {
            let each: usize = std::env::var("KMSHSM_KEYS_EACH").unwrap().parse().unwrap();
            let marks = std::fs::File::create(std::env::var("KMSHSM_MARKS").unwrap()).unwrap();
            let me = if parts.len() == 3 { parts[1] } else { "0" };
            if parts.len() == 3 {
                // Started by `launch`: waits to be released with the others.
                tell_parent("ready");
                let mut go = String::new();
                std::io::stdin().read_line(&mut go).unwrap();
            }
            std::thread::scope(|sc| {
                for (t, session) in sessions.into_iter().enumerate() {
                    let mut marks = &marks;
                    sc.spawn(move || {
                        for i in 0..each {
                            let label = format!("strace-{me}.{t}-{i}");
                            // One write() each: a File is unbuffered.
                            marks
                                .write_all(format!("call {me}.{t} {i}\n").as_bytes())
                                .unwrap();
                            session
                                .create_object(&aes_template(&label, &[7; 32], true))
                                .unwrap();
                            marks
                                .write_all(format!("ack {me}.{t} {i}\n").as_bytes())
                                .unwrap();
                        }
                    });
                }
            });
        }
        "creator" => {
            let me = parts[1];
            std::thread::scope(|sc| {
                for (t, session) in sessions.into_iter().enumerate() {
                    sc.spawn(move || {
                        for i in 0.. {
                            let label = format!("{me}-{t}-{i}");
                            session
                                .create_object(&aes_template(&label, &[7; 32], true))
                                .unwrap();
                            tell_parent(&format!("acked {label}"));
                        }
                    });
                }
            });
        }
        other => panic!("unknown role {other}"),
    }
}

/// One event of an strace log: a system call's entry or exit, in the order strace saw it.
#[derive(Debug, Clone)]
struct Event {
    pid: String,
    call: String,
    path: String,
    /// Whether this is the call's entry (a whole line is an entry and an exit).
    enter: bool,
    exit: bool,
    /// The quoted payload's start (for the marks) and the return value text.
    text: String,
}

/// Parses `strace -f -y -o` output into events (entries and exits, in order).
fn events(trace: &str) -> Vec<Event> {
    let mut pending: BTreeMap<String, Event> = BTreeMap::new();
    let mut out = Vec::new();
    for line in trace.lines() {
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(resumed) = rest.strip_prefix("<... ") {
            let call = resumed.split(' ').next().unwrap_or_default().to_string();
            let mut e = pending.remove(pid).unwrap_or(Event {
                pid: pid.to_string(),
                call: call.clone(),
                path: String::new(),
                enter: false,
                exit: false,
                text: String::new(),
            });
            e.enter = false;
            e.exit = true;
            e.text.push_str(rest);
            out.push(e);
            continue;
        }
        let Some(open) = rest.find('(') else { continue };
        let call = rest[..open].to_string();
        let args = &rest[open + 1..];
        // `-y`: the first argument, a descriptor, is printed as `3</path/of/file>`.
        let path = args
            .find('<')
            .and_then(|a| {
                args[a + 1..]
                    .find('>')
                    .map(|b| args[a + 1..a + 1 + b].to_string())
            })
            .unwrap_or_default();
        let whole = !rest.ends_with("<unfinished ...>");
        let e = Event {
            pid: pid.to_string(),
            call,
            path,
            enter: true,
            exit: whole,
            text: rest.to_string(),
        };
        if !whole {
            pending.insert(pid.to_string(), e.clone());
        }
        out.push(e);
    }
    out
}

fn is_wal_write(e: &Event) -> bool {
    (e.call == "pwrite64" || e.call == "write") && e.path.ends_with(".db-wal")
}

fn is_wal_sync(e: &Event) -> bool {
    (e.call == "fdatasync" || e.call == "fsync") && e.path.ends_with(".db-wal")
}

/// The marker (`call t i` / `ack t i`) an event writes, if it is one.
fn mark(e: &Event) -> Option<String> {
    if e.call != "write" || !e.path.ends_with("marks") || !e.enter {
        return None;
    }
    let q = e.text.find('"')?;
    let body = &e.text[q + 1..];
    Some(body[..body.find("\\n")?].to_string())
}

/// Whether a call's line ends with a return value of 0 (strace pads before the `=`).
fn returned_zero(text: &str) -> bool {
    text.rfind(')')
        .is_some_and(|at| text[at + 1..].trim_start().starts_with("= 0"))
}

/// What [`check`] found: how many acknowledged calls it checked, and how many of them
/// only another process's fsync covered.
#[derive(Debug, Default, PartialEq, Eq)]
struct Checked {
    calls: usize,
    by_another_process: usize,
}

/// The process of each thread that marked something: the marks file it wrote to (each
/// process has its own).
fn processes_of(ev: &[Event]) -> BTreeMap<String, String> {
    ev.iter()
        .filter(|e| mark(e).is_some())
        .map(|e| (e.pid.clone(), e.path.clone()))
        .collect()
}

/// Checks every acknowledged call of the trace; answers how many were checked.
fn check(trace: &str) -> Result<usize, String> {
    check_processes(trace).map(|c| c.calls)
}

/// [`check`], also counting the calls covered only by another process's fsync.
fn check_processes(trace: &str) -> Result<Checked, String> {
    let ev = events(trace);
    // A sync: where it began and where it ended (its exit event, paired by thread).
    let mut syncs = Vec::new();
    let mut open_sync: BTreeMap<String, usize> = BTreeMap::new();
    for (at, e) in ev.iter().enumerate() {
        if e.enter && is_wal_sync(e) {
            if e.exit {
                if !returned_zero(&e.text) {
                    return Err(format!("a WAL sync failed: {}", e.text));
                }
                syncs.push((at, at));
            } else {
                open_sync.insert(e.pid.clone(), at);
            }
        } else if e.exit && !e.enter && (e.call == "fdatasync" || e.call == "fsync") {
            if let Some(began) = open_sync.remove(&e.pid) {
                if !returned_zero(&e.text) {
                    return Err(format!("a WAL sync failed: {}", e.text));
                }
                syncs.push((began, at));
            }
        }
    }
    // A thread that marked nothing (the one that opened the token) is a process of its
    // own here: its fsyncs cover nobody's call anyway, as they come before any call.
    let process = processes_of(&ev);
    let process_of = |pid: &str| process.get(pid).cloned().unwrap_or_else(|| pid.to_string());
    let mut calls: BTreeMap<String, (String, usize)> = BTreeMap::new();
    let mut checked = Checked::default();
    for (at, e) in ev.iter().enumerate() {
        let Some(m) = mark(e) else { continue };
        if let Some(tag) = m.strip_prefix("call ") {
            calls.insert(tag.to_string(), (e.pid.clone(), at));
            continue;
        }
        let Some(tag) = m.strip_prefix("ack ") else {
            continue;
        };
        let (pid, called) = calls
            .remove(tag)
            .ok_or_else(|| format!("ack {tag} without its call"))?;
        let last_write = (called..at)
            .filter(|&k| ev[k].pid == pid && ev[k].exit && is_wal_write(&ev[k]))
            .max()
            .ok_or_else(|| format!("call {tag} returned without writing the WAL"))?;
        let covering: Vec<usize> = syncs
            .iter()
            .filter(|&&(b, e)| b > last_write && e < at)
            .map(|&(b, _)| b)
            .collect();
        if covering.is_empty() {
            return Err(format!(
                "call {tag} returned with no WAL fsync begun after its last WAL write \
                 (event {last_write}) and ended before it returned (event {at})"
            ));
        }
        let mine = process_of(&pid);
        if covering.iter().all(|&b| process_of(&ev[b].pid) != mine) {
            checked.by_another_process += 1;
        }
        checked.calls += 1;
    }
    Ok(checked)
}

/// Makes every fsync and fdatasync of `command` and its children take `us` longer, as
/// on a disk whose flush is slow, one flush at a time (`bench/slowflush`, built here
/// with `cc`).
fn slow_flush(command: &mut Command, env: &TestEnv, us: u32) {
    let cc = require_tool("cc", "gcc");
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("bench")
        .join("slowflush")
        .join("slowflush.c");
    let library = env.dir.path().join("slowflush.so");
    if !library.exists() {
        let built = Command::new(cc)
            .args(["-O2", "-shared", "-fPIC", "-o"])
            .arg(&library)
            .arg(&source)
            .args(["-ldl", "-lpthread"])
            .output()
            .unwrap();
        assert!(
            built.status.success(),
            "building {}: {}",
            source.display(),
            String::from_utf8_lossy(&built.stderr)
        );
    }
    command
        .env("LD_PRELOAD", &library)
        .env("SLOWFLUSH_US", us.to_string())
        .env("SLOWFLUSH_STATE", env.dir.path().join("slowflush.state"));
}

/// Runs the child `role` under `strace -f`, `each` keys per creator thread, with every
/// fsync taking `flush_us` longer when given (`bench/slowflush`, built here with `cc`:
/// a disk whose flush is slow, on which syncs hold back for other writers); the trace,
/// and the folder holding the marks files.
fn strace_child(
    role: &str,
    each: usize,
    flush_us: Option<u32>,
) -> (String, std::path::PathBuf, TestEnv) {
    let strace = require_tool("strace", "strace");
    let env = TestEnv::new();
    {
        let (ctx, _slot, session) = ready_token(&env);
        drop(session);
        ctx.finalize().unwrap();
    }
    let trace_path = env.dir.path().join("trace");
    let marks = env.dir.path().join("marks");
    let child = child_command(CHILD_ENTRY, role);
    let mut command = Command::new(strace);
    command
        .args(["-f", "-qq", "-y", "-e", "signal=none"])
        .args(["-e", "trace=pwrite64,write,fdatasync,fsync", "-o"])
        .arg(&trace_path)
        .arg(child.get_program())
        .args(child.get_args())
        .envs(
            child
                .get_envs()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
        )
        .env("KMSHSM_MARKS", &marks)
        .env("KMSHSM_KEYS_EACH", each.to_string());
    if let Some(us) = flush_us {
        slow_flush(&mut command, &env, us);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "the traced child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trace = std::fs::read_to_string(&trace_path).unwrap();
    let dir = env.dir.path().to_path_buf();
    (trace, dir, env)
}

fn strace_creators(threads: usize, each: usize) {
    let (trace, _dir, _env) = strace_child(&format!("strace-{threads}"), each, None);
    let checked = check(&trace).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        checked,
        threads * each,
        "every acknowledged creation is checked"
    );
}

#[test]
fn every_acknowledged_creation_was_fsynced_after_its_wal_write_by_one_creator() {
    strace_creators(1, 20);
}

#[test]
fn every_acknowledged_creation_was_fsynced_after_its_wal_write_by_four_threads() {
    strace_creators(4, 15);
}

/// Four processes creating at once, under one `strace -f`, on a modelled slow disk
/// (1 ms a flush): every acknowledged creation of each was covered by an fsync that
/// began after its write, its own process's or another's (the sync board lets a process
/// skip its own when another's covers it, and there a sync holds back for the other
/// processes' writers, so some must have been).
#[test]
fn every_acknowledged_creation_was_fsynced_after_its_wal_write_by_four_processes() {
    let (trace, dir, _env) = strace_child("launch-4-1", 15, Some(1000));
    for p in 0..4 {
        assert!(
            dir.join(format!("{p}.marks")).exists(),
            "process {p} marked nothing"
        );
    }
    let checked = check_processes(&trace).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        checked.calls,
        4 * 15,
        "every acknowledged creation is checked"
    );
    println!(
        "{} of {} acknowledged creations were covered only by another process's fsync",
        checked.by_another_process, checked.calls
    );
    assert!(
        checked.by_another_process > 0,
        "no process's creation was covered by another's fsync: the processes did not share"
    );
}

/// The checker itself refuses what it must: a sync that began before the call's write,
/// a missing sync, a sync that ended after the return.
#[test]
fn the_trace_checker_refuses_a_sync_that_began_too_early_or_ended_too_late() {
    let good = "\
1 write(5</t/marks>, \"call 0 0\\n\", 9) = 9
1 pwrite64(4</t/x.db-wal>, \"...\"..., 4096, 0) = 4096
1 fdatasync(4</t/x.db-wal>) = 0
1 write(5</t/marks>, \"ack 0 0\\n\", 8) = 8
";
    assert_eq!(check(good), Ok(1));
    let early = "\
1 write(5</t/marks>, \"call 0 0\\n\", 9) = 9
2 fdatasync(4</t/x.db-wal> <unfinished ...>
1 pwrite64(4</t/x.db-wal>, \"...\"..., 4096, 0) = 4096
2 <... fdatasync resumed>) = 0
1 write(5</t/marks>, \"ack 0 0\\n\", 8) = 8
";
    assert!(check(early).is_err());
    let late = "\
1 write(5</t/marks>, \"call 0 0\\n\", 9) = 9
1 pwrite64(4</t/x.db-wal>, \"...\"..., 4096, 0) = 4096
2 fdatasync(4</t/x.db-wal> <unfinished ...>
1 write(5</t/marks>, \"ack 0 0\\n\", 8) = 8
2 <... fdatasync resumed>) = 0
";
    assert!(check(late).is_err());
    let none = "\
1 write(5</t/marks>, \"call 0 0\\n\", 9) = 9
1 pwrite64(4</t/x.db-wal>, \"...\"..., 4096, 0) = 4096
1 write(5</t/marks>, \"ack 0 0\\n\", 8) = 8
";
    assert!(check(none).is_err());
}

/// Creator processes started on a new token ([`start_creators`]).
struct Creators {
    children: Vec<std::process::Child>,
    /// The threads reading the children's output.
    readers: Vec<std::thread::JoinHandle<()>>,
    /// The label of every key a child reported as created (its C_CreateObject returned).
    acked: std::sync::mpsc::Receiver<String>,
}

/// Makes the test token and starts `processes` children of `threads` creators each
/// (keys labelled `pP-thread-i`), on a disk whose flush takes `flush_us` longer when
/// given ([`slow_flush`]).
fn start_creators(
    env: &TestEnv,
    processes: usize,
    threads: usize,
    flush_us: Option<u32>,
) -> Creators {
    {
        let (ctx, _slot, session) = ready_token(env);
        drop(session);
        ctx.finalize().unwrap();
    }
    let (tx, acked) = std::sync::mpsc::channel::<String>();
    let mut children = Vec::new();
    let mut readers = Vec::new();
    for p in 0..processes {
        let mut command = child_command(CHILD_ENTRY, &format!("creator-p{p}-{threads}"));
        if let Some(us) = flush_us {
            slow_flush(&mut command, env, us);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let tx = tx.clone();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(label) = child_line(&line).and_then(|l| l.strip_prefix("acked ")) {
                    let _ = tx.send(label.to_string());
                }
            }
        }));
        children.push(child);
    }
    Creators {
        children,
        readers,
        acked,
    }
}

/// Starts `processes` children of `threads` creators each, collects what they report as
/// returned for a while, kills them all with SIGKILL, and checks the reopened token holds
/// every one of those keys.
fn creators_killed_lose_nothing_acknowledged(processes: usize, threads: usize) {
    let env = TestEnv::new();
    let Creators {
        children,
        readers,
        acked: rx,
    } = start_creators(&env, processes, threads, None);
    // Let every process get going, then kill them mid-stream.
    let started = Instant::now();
    let mut acked = BTreeSet::new();
    while started.elapsed() < Duration::from_secs(20) {
        if let Ok(label) = rx.recv_timeout(Duration::from_millis(50)) {
            acked.insert(label);
        }
        let per_process = (0..processes)
            .filter(|p| acked.iter().any(|l| l.starts_with(&format!("p{p}-"))))
            .count();
        if per_process == processes && acked.len() >= 40 * processes {
            break;
        }
    }
    kill_creators(children, readers);
    // Whatever was still in the pipe was acknowledged before the kill too.
    acked.extend(rx.try_iter());
    assert!(
        acked.len() >= 10 * processes,
        "too few creations were reported to test anything: {}",
        acked.len()
    );
    assert_none_lost(&env, &acked);
}

/// Kills `children` (creators, which never end by themselves) with SIGKILL, checks
/// that the kill ended them, and waits for the threads reading their output.
fn kill_creators(
    mut children: Vec<std::process::Child>,
    readers: Vec<std::thread::JoinHandle<()>>,
) {
    for child in &mut children {
        child.kill().unwrap();
    }
    for mut child in children {
        assert_killed(child.wait().unwrap(), "a creator");
    }
    for r in readers {
        r.join().unwrap();
    }
}

/// Checks that the token, reopened by a fresh load of the module, holds every key in
/// `acked` (by label).
fn assert_none_lost(env: &TestEnv, acked: &BTreeSet<String>) {
    let ctx = env.load();
    let slot = slot_of_token(&ctx, TOKEN_LABEL);
    let session = user_session(&ctx, slot);
    let present: BTreeSet<String> = session
        .find_objects(&[])
        .unwrap()
        .into_iter()
        .filter_map(|h| {
            let label = attribute_bytes(&session, h, cryptoki::object::AttributeType::Label);
            String::from_utf8(label).ok()
        })
        .collect();
    let lost: Vec<&String> = acked.difference(&present).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged keys are missing after the kill, e.g. {:?}",
        lost.len(),
        acked.len(),
        lost.iter().take(5).collect::<Vec<_>>()
    );
}

/// Four creator processes on a modelled slow disk (1 ms a flush), where the sync board
/// groups them: one process's fsync covers the others', which wait for it. One is
/// killed with SIGKILL mid-stream, perhaps holding a claim, perhaps with others waiting
/// for it. The other three go on creating within a bounded time (a claimant found dead
/// stops the board; they then sync alone), and once they are killed too, the reopened
/// token holds every key whose creation any of the four reported as returned.
#[test]
fn one_of_four_creator_processes_killed_the_others_go_on_and_lose_nothing() {
    let env = TestEnv::new();
    let Creators {
        mut children,
        readers,
        acked: rx,
    } = start_creators(&env, 4, 1, Some(1000));
    let mut acked = BTreeSet::new();
    let count = |acked: &BTreeSet<String>, p: usize| {
        acked
            .iter()
            .filter(|l| l.starts_with(&format!("p{p}-")))
            .count()
    };
    // Until each has created 20 keys; then the first is killed.
    let started = Instant::now();
    while (0..4).any(|p| count(&acked, p) < 20) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the creators did not get going: {:?}",
            (0..4).map(|p| count(&acked, p)).collect::<Vec<_>>()
        );
        if let Ok(label) = rx.recv_timeout(Duration::from_millis(50)) {
            acked.insert(label);
        }
    }
    children[0].kill().unwrap();
    assert_killed(children[0].wait().unwrap(), "the first creator");
    acked.extend(rx.try_iter());
    let at_kill: Vec<usize> = (0..4).map(|p| count(&acked, p)).collect();
    // The others go on: 20 more keys each, within a bound far above the board's waits.
    let killed = Instant::now();
    while (1..4).any(|p| count(&acked, p) < at_kill[p] + 20) {
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "the other creators stalled after one was killed: {:?} at the kill, {:?} now",
            at_kill,
            (0..4).map(|p| count(&acked, p)).collect::<Vec<_>>()
        );
        if let Ok(label) = rx.recv_timeout(Duration::from_millis(50)) {
            acked.insert(label);
        }
    }
    kill_creators(children.into_iter().skip(1).collect(), readers);
    acked.extend(rx.try_iter());
    assert_none_lost(&env, &acked);
}

#[test]
fn four_threads_creating_at_once_killed_lose_no_acknowledged_key() {
    creators_killed_lose_nothing_acknowledged(1, 4);
}

#[test]
fn four_processes_creating_at_once_killed_lose_no_acknowledged_key() {
    creators_killed_lose_nothing_acknowledged(4, 1);
}
