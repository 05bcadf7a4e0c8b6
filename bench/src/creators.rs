//! Phase `creators` (issue 18, item 2): token-object creation by 1, 2 and 4 concurrent
//! creators, as threads of this process (each with its own session) and as separate
//! processes (children of the bench, each loading the module itself), for kmshsm on its
//! SQLite store, kmshsm on a PostgreSQL store (the private durable server of phase
//! `store`) and SoftHSMv2. A creator makes AES-256 token secret keys with C_CreateObject
//! for the budget; the figure is keys per second summed over the creators, and its ratio
//! to one creator of the same module and mode.
//!
//! It appends its table to the report's details and writes `creators.csv` beside the
//! report (format in docs/performance.md); it must not change the other phases' rows.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use cryptoki::object::Attribute;
use cryptoki::session::Session;

use crate::keys::{aes_template, short};
use crate::store::{pg, setups, which, Target};
use crate::timing::median;
use crate::token::{start, stop, user_session, Loaded, Which};
use crate::{err, Cfg, Res};

const CREATORS: [usize; 3] = [1, 2, 4];
const MODES: [&str; 2] = ["threads", "processes"];

/// Creates keys in `s` until `budget` has passed; the count and the time it took.
fn create_for(s: &Session, tag: &str, budget: Duration) -> Res<(usize, f64)> {
    let start = Instant::now();
    let mut n = 0usize;
    while start.elapsed() < budget {
        let mut t = aes_template(&format!("creators-{tag}-{n}"));
        t.push(Attribute::Value(vec![7u8; 32]));
        s.create_object(&t).map_err(|e| short(&e))?;
        n += 1;
    }
    Ok((n, start.elapsed().as_secs_f64()))
}

/// `n` threads of this process, each with its own session, released together.
fn threads_rate(m: &Loaded, n: usize, budget: Duration, tag: &str) -> Res<f64> {
    let sessions: Vec<Session> = (0..n)
        .map(|_| user_session(&m.ctx, m.slot))
        .collect::<Res<_>>()?;
    let barrier = Barrier::new(n);
    let results = std::thread::scope(|sc| {
        let handles: Vec<_> = sessions
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let barrier = &barrier;
                sc.spawn(move || {
                    barrier.wait();
                    create_for(&s, &format!("{tag}-t{i}"), budget)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| "creator thread panicked".to_string())?
            })
            .collect::<Res<Vec<_>>>()
    })?;
    Ok(results.iter().map(|(c, s)| *c as f64 / s).sum())
}

/// `--child-creator MODULE BUDGET_MS TAG [THREADS]`: loads the module (configuration
/// from the environment), logs in, says `ready`, waits for a line on stdin, creates keys
/// for the budget (in THREADS threads, a session each, when given) and says
/// `done COUNT SECONDS` (for threads, the summed rate times the budget).
pub(crate) fn child_creator(module: &Path, budget_ms: &str, tag: &str, threads: &str) -> Res<()> {
    let which = if module.to_string_lossy().contains("softhsm") {
        Which::Soft
    } else {
        Which::Kms
    };
    let budget = Duration::from_millis(budget_ms.parse().map_err(err("budget"))?);
    let m = start(which, module, false)?;
    println!("ready");
    std::io::stdout().flush().map_err(err("stdout"))?;
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).map_err(err("stdin"))?;
    let threads: usize = threads.parse().map_err(err("threads"))?;
    let (count, secs) = if threads > 1 {
        let rate = threads_rate(&m, threads, budget, tag)?;
        (rate * budget.as_secs_f64(), budget.as_secs_f64())
    } else {
        let (count, secs) = create_for(&m.s, tag, budget)?;
        (count as f64, secs)
    };
    println!("done {count} {secs}");
    stop(m);
    Ok(())
}

/// `n` child processes released together; the sum of their rates. The children start one
/// after the other (each is ready, logged in, before the next starts: SoftHSMv2 fails
/// when processes open its token at once) and are killed if anything goes wrong.
fn processes_rate(module: &Path, n: usize, budget: Duration, tag: &str) -> Res<f64> {
    let mut children: Vec<Creator> = Vec::new();
    let result = run_creators(module, n, budget, tag, &mut children);
    for c in &mut children {
        let _ = c.child.kill();
        let _ = c.child.wait();
    }
    result
}

struct Creator {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Creator {
    fn line(&mut self) -> Res<String> {
        let mut l = String::new();
        self.stdout.read_line(&mut l).map_err(err("read child"))?;
        Ok(l.trim().to_string())
    }
}

fn run_creators(
    module: &Path,
    n: usize,
    budget: Duration,
    tag: &str,
    children: &mut Vec<Creator>,
) -> Res<f64> {
    let exe = std::env::current_exe().map_err(err("current_exe"))?;
    for i in 0..n {
        let mut child = Command::new(&exe)
            .arg("--child-creator")
            .arg(module)
            .arg(budget.as_millis().to_string())
            .arg(format!("{tag}-p{i}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(err("spawn creator"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        children.push(Creator {
            child,
            stdin,
            stdout,
        });
        let last = children.len() - 1;
        let l = children[last].line()?;
        if l != "ready" {
            return Err(format!(
                "a creator process failed to start: {}",
                stderr_of(&mut children[last])
            ));
        }
    }
    for c in children.iter_mut() {
        c.stdin.write_all(b"go\n").map_err(err("release child"))?;
    }
    let mut total = 0.0;
    for c in children.iter_mut() {
        let l = c.line()?;
        let mut parts = l.split(' ').skip(1);
        let (Some(count), Some(secs)) = (
            parts.next().and_then(|v| v.parse::<f64>().ok()),
            parts.next().and_then(|v| v.parse::<f64>().ok()),
        ) else {
            return Err(format!("a creator process failed: {}", stderr_of(c)));
        };
        total += count / secs;
    }
    for c in children.iter_mut() {
        let status = c.child.wait().map_err(err("wait child"))?;
        if !status.success() {
            return Err(format!("a creator process ended with {status}"));
        }
    }
    Ok(total)
}

/// The first line of what a failed child wrote to stderr (its error).
fn stderr_of(c: &mut Creator) -> String {
    let _ = c.child.kill();
    let mut text = String::new();
    if let Some(mut e) = c.child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut text);
    }
    text.lines().next().unwrap_or("no message").to_string()
}

/// Said in the report when the run is under `bench/slowflush.sh`'s modelled disk.
fn slow_flush_note() -> String {
    match std::env::var("SLOWFLUSH_US") {
        Ok(us) if std::env::var_os("LD_PRELOAD").is_some() => format!(
            " **Modelled disk** (`bench/slowflush.sh`): every fsync and fdatasync of this run \
             also waited for a device flush of {us} µs, one flush at a time."
        ),
        _ => String::new(),
    }
}

pub(crate) fn creators_phase(cfg: &Cfg, details: &mut String) -> Res<()> {
    eprintln!("creators phase: starting a private PostgreSQL server");
    let cluster = pg::Cluster::start_durable();
    let url = cluster.database("bench");
    let dir = cfg.work().join("creators");
    let _ = std::fs::remove_dir_all(&dir);
    let targets = setups(cfg, &dir, &url)?;
    // A creator needs time to reach its pace: at least a second per line.
    let budget = (cfg.budget * 2).max(Duration::from_secs(1));
    // samples[target][mode][count index]
    let mut samples = vec![vec![vec![Vec::new(); CREATORS.len()]; MODES.len()]; targets.len()];
    // Failed process runs (SoftHSMv2 only), per target and creator count.
    let mut failed = vec![vec![0usize; CREATORS.len()]; targets.len()];
    for r in 0..cfg.rounds {
        let mut order: Vec<usize> = (0..targets.len()).collect();
        if r % 2 == 1 {
            order.reverse();
        }
        for t in order {
            let (target, setup) = &targets[t];
            eprintln!(
                "creators phase: round {} of {}, {}",
                r + 1,
                cfg.rounds,
                target.name()
            );
            setup.activate();
            let m = start(which(*target), &setup.module, r == 0)?;
            for (c, &n) in CREATORS.iter().enumerate() {
                let tag = format!("r{r}-n{n}");
                let v = threads_rate(&m, n, budget, &format!("{tag}-threads"))?;
                samples[t][0][c].push(v);
            }
            // The children open the token themselves, with this process's module closed.
            stop(m);
            for (c, &n) in CREATORS.iter().enumerate() {
                let tag = format!("r{r}-n{n}");
                match processes_rate(&setup.module, n, budget, &format!("{tag}-procs")) {
                    Ok(v) => samples[t][1][c].push(v),
                    // SoftHSMv2's file store is not safe for processes writing one token
                    // at once: its failures are counted and reported, not fatal.
                    Err(e) if *target == Target::Soft => {
                        eprintln!("creators phase: {} with {n} processes: {e}", target.name());
                        failed[t][c] += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    let _ = writeln!(
        details,
        "\n## Concurrent creators of token objects (phase `creators`)\n\n\
         AES-256 token secret keys by C_CreateObject; keys per second summed over the \
         creators, median of {} rounds of {} ms each; \"× 1\" is the ratio to one creator \
         of the same module and mode. Threads: one process, a session each. Processes: \
         children of the bench, each its own C_Initialize and login. SoftHSMv2 never \
         calls fsync; kmshsm SQLite fsyncs its WAL before acknowledging (group commit: \
         one fsync covers every commit written before it began); PostgreSQL 15 here runs \
         `fsync=on`, `synchronous_commit=on`.{}\n\n\
         | module | mode | 1 creator | 2 creators | 4 creators | 2 × 1 | 4 × 1 |\n\
         |---|---|---|---|---|---|---|",
        cfg.rounds,
        budget.as_millis(),
        slow_flush_note()
    );
    let mut csv = String::from("creators,mode,module,keys_per_s,ratio_to_one\n");
    for (t, (target, _)) in targets.iter().enumerate() {
        for (mi, mode) in MODES.iter().enumerate() {
            let med: Vec<f64> = (0..CREATORS.len())
                .map(|c| match samples[t][mi][c].is_empty() {
                    true => f64::NAN,
                    false => median(&samples[t][mi][c]),
                })
                .collect();
            let fails: Vec<String> = CREATORS
                .iter()
                .zip(&failed[t])
                .filter(|(_, &f)| mi == 1 && f > 0)
                .map(|(n, f)| format!("{n} creators: {f} of {} runs failed", cfg.rounds))
                .collect();
            let note = if fails.is_empty() {
                String::new()
            } else {
                format!(" ({})", fails.join("; "))
            };
            let _ = writeln!(
                details,
                "| {}{note} | {mode} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} |",
                target.name(),
                med[0],
                med[1],
                med[2],
                med[1] / med[0],
                med[2] / med[0]
            );
            for (c, &n) in CREATORS.iter().enumerate() {
                let _ = writeln!(
                    csv,
                    "{n},{mode},{},{:.1},{:.3}",
                    csv_module(*target),
                    med[c],
                    med[c] / med[0]
                );
            }
        }
    }
    let path = cfg.out.with_file_name("creators.csv");
    std::fs::write(&path, csv).map_err(err("write creators.csv"))?;
    eprintln!("creators phase: {} written", path.display());
    drop(cluster);
    Ok(())
}

fn csv_module(t: Target) -> &'static str {
    match t {
        Target::Sqlite => "kmshsm-sqlite",
        Target::Postgres => "kmshsm-postgres",
        Target::Soft => "softhsm2",
    }
}
