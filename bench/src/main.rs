//! Side-by-side benchmark of libkmshsm.so against SoftHSMv2.
//!
//! Both modules are loaded into this one process and driven by the same `cryptoki` client
//! code; within every round the two are measured one after the other, in alternating
//! order, and the reported figure is the median over the rounds. A third column calls the
//! raw primitive (aws-lc-rs, no PKCS#11) so the module's own overhead is visible.
//!
//! Usage: `kmshsm-bench [--quick] [--rounds N] [--budget-ms MS] [--counts 1000,10000,100000]
//!         [--open-runs N] [--phases crypto,find,open] [--only TEXT] [--kmshsm PATH]
//!         [--softhsm PATH] [--out FILE] [--counts-million 1000,…] [--sweep-counts 1000,…]
//!         [--charts DIR] [--soft-prep-budget-s S]` (`--only`: measure only the lines whose name
//!         contains TEXT; the token-open lines are not filtered)
//! Internal: `kmshsm-bench --child-open MODULE_PATH` (the fresh-process token-open probe),
//! `kmshsm-bench --child-million MODULE_PATH OBJECTS` (the same for phase `million`;
//! with phase `prepare-only` beside it, `million` only prepares its tokens),
//! `kmshsm-bench --child-create MODULE_PATH LABEL` (the other process of phase `store`),
//! `kmshsm-bench --child-creator MODULE_PATH BUDGET_MS TAG` (a creator of phase `creators`).
//!
//! Token directories with many keys are prepared once and cached under
//! `bench/target/token-cache/<module>-<count>/`; every measurement works on a copy.
//!
//! This file parses the command line, runs the selected phases in order and serves the
//! child entries; it measures nothing itself and holds no PKCS#11 code. The phases
//! are `crypto`, `find`, `open` (with `prepare` building the large tokens they use) and
//! `store` (kmshsm on SQLite and on PostgreSQL beside SoftHSMv2), `creators` (1, 2 and 4
//! concurrent creators of token objects, `creators.rs`), `million` (mixed tokens up to a
//! million objects, prepared by `mixed` and `external`) and `charts` (SVGs);
//! `token`, `keys`, `crypto_keys`, `raw` and `threads` hold what they share, `timing`
//! measures a table line and `report` renders the results.

mod charts;
mod creators;
mod crypto;
mod crypto_aead;
mod crypto_keys;
mod external;
mod find;
mod keys;
mod million;
mod mixed;
mod open;
mod prepare;
mod raw;
mod report;
mod store;
mod threads;
mod timing;
mod token;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::crypto::crypto_phase;
use crate::find::find_phase;
use crate::open::{child_open, open_phase};
use crate::prepare::prepare;
use crate::report::report;
use crate::token::Which;

type Res<T> = Result<T, String>;

fn err<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

// ---------------------------------------------------------------------------------------
// configuration and paths

#[derive(Clone)]
struct Cfg {
    rounds: usize,
    budget: Duration,
    counts: Vec<usize>,
    open_runs: usize,
    kms_so: PathBuf,
    soft_so: PathBuf,
    target: PathBuf,
    out: PathBuf,
    phases: Vec<String>,
    only: Option<String>,
    /// Phase `million`: sizes of the mixed tokens, those with the sweep, where the charts
    /// go, and how long SoftHSMv2 may take to prepare one token.
    counts_million: Vec<usize>,
    sweep_counts: Vec<usize>,
    charts: PathBuf,
    soft_prep_budget: Duration,
}

impl Cfg {
    fn from_args() -> Res<Cfg> {
        let bench_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        // bench/ is a directory of the repository, never the file system's root.
        let root = bench_dir
            .parent()
            .expect("bench/ has a parent")
            .to_path_buf();
        let target = bench_dir.join("target");
        let mut cfg = Cfg {
            rounds: 5,
            budget: Duration::from_millis(400),
            counts: vec![1_000, 10_000, 100_000],
            open_runs: 5,
            kms_so: root.join("target/release/libkmshsm.so"),
            soft_so: PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"),
            out: target.join("results.md"),
            only: None,
            phases: vec![
                "crypto".into(),
                "find".into(),
                "open".into(),
                "store".into(),
                "creators".into(),
                "million".into(),
                "charts".into(),
            ],
            counts_million: vec![1_000, 10_000, 100_000, 1_000_000],
            sweep_counts: vec![1_000, 1_000_000],
            charts: root.join("docs/img"),
            soft_prep_budget: Duration::from_secs(240),
            target,
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            let mut val = || args.next().ok_or(format!("{a} needs a value"));
            match a.as_str() {
                "--quick" => {
                    cfg.rounds = 3;
                    cfg.budget = Duration::from_millis(150);
                    cfg.counts = vec![1_000, 10_000];
                    cfg.counts_million = vec![1_000, 10_000];
                    cfg.sweep_counts = vec![1_000];
                    cfg.open_runs = 3;
                }
                "--rounds" => cfg.rounds = val()?.parse().map_err(err("--rounds"))?,
                "--budget-ms" => {
                    cfg.budget = Duration::from_millis(val()?.parse().map_err(err("--budget-ms"))?)
                }
                "--counts" => {
                    cfg.counts = val()?
                        .split(',')
                        .map(|s| s.trim().parse::<usize>().map_err(err("--counts")))
                        .collect::<Res<_>>()?
                }
                "--counts-million" => cfg.counts_million = list(&val()?, "--counts-million")?,
                "--sweep-counts" => cfg.sweep_counts = list(&val()?, "--sweep-counts")?,
                "--charts" => cfg.charts = PathBuf::from(val()?),
                "--soft-prep-budget-s" => {
                    cfg.soft_prep_budget =
                        Duration::from_secs(val()?.parse().map_err(err("--soft-prep-budget-s"))?)
                }
                "--open-runs" => cfg.open_runs = val()?.parse().map_err(err("--open-runs"))?,
                "--kmshsm" => cfg.kms_so = PathBuf::from(val()?),
                "--softhsm" => cfg.soft_so = PathBuf::from(val()?),
                "--out" => cfg.out = PathBuf::from(val()?),
                "--only" => cfg.only = Some(val()?),
                "--phases" => cfg.phases = val()?.split(',').map(str::to_string).collect(),
                other => return Err(format!("unknown argument {other}")),
            }
        }
        Ok(cfg)
    }
    fn cache(&self) -> PathBuf {
        self.target.join("token-cache")
    }
    fn work(&self) -> PathBuf {
        self.target.join("work")
    }
}

fn list(v: &str, what: &str) -> Res<Vec<usize>> {
    v.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse::<usize>().map_err(err(what)))
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "--child-create" {
        if let Err(e) = store::child_create(Path::new(&args[2]), &args[3]) {
            eprintln!("child: {e}");
            std::process::exit(1);
        }
        return;
    }
    if (args.len() == 5 || args.len() == 6) && args[1] == "--child-creator" {
        let threads = args.get(5).map_or("1", String::as_str);
        if let Err(e) = creators::child_creator(Path::new(&args[2]), &args[3], &args[4], threads) {
            eprintln!("child: {e}");
            std::process::exit(1);
        }
        return;
    }
    if args.len() == 4 && args[1] == "--child-million" {
        let n = args[3].parse().unwrap_or(0);
        if let Err(e) = million::child_million(Path::new(&args[2]), n) {
            eprintln!("child: {e}");
            std::process::exit(1);
        }
        return;
    }
    if args.len() == 3 && args[1] == "--child-open" {
        if let Err(e) = child_open(Path::new(&args[2])) {
            eprintln!("child: {e}");
            std::process::exit(1);
        }
        return;
    }
    let cfg = match Cfg::from_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kmshsm-bench: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&cfg) {
        eprintln!("kmshsm-bench: {e}");
        std::process::exit(1);
    }
}

fn run(cfg: &Cfg) -> Res<()> {
    let t0 = Instant::now();
    for p in [&cfg.kms_so, &cfg.soft_so] {
        if !p.exists() {
            return Err(format!("{} does not exist", p.display()));
        }
    }
    std::fs::create_dir_all(cfg.cache()).map_err(err("mkdir"))?;
    let _ = std::fs::remove_dir_all(cfg.work());
    let mut rows = vec![];
    let on = |p: &str| cfg.phases.iter().any(|x| x == p);
    if on("crypto") {
        crypto_phase(cfg, &mut rows)?;
    }
    let mut builds = String::new();
    for &n in &cfg.counts {
        if !on("find") && !on("open") {
            break;
        }
        prepare(cfg, n)?;
        for w in [Which::Kms, Which::Soft] {
            if let Ok(s) =
                std::fs::read_to_string(cfg.cache().join(format!("{}-{n}.build-seconds", w.tag())))
            {
                let _ = writeln!(builds, "- {} keys, {}: {} s", n, w.tag(), s.trim());
            }
        }
    }
    for &n in &cfg.counts {
        if on("find") {
            find_phase(cfg, n, &mut rows)?;
        }
    }
    let mut details = String::new();
    for &n in &cfg.counts {
        if on("open") {
            open_phase(cfg, n, &mut rows, &mut details)?;
        }
    }
    if on("store") {
        store::store_phase(cfg, &mut details)?;
    }
    if on("creators") {
        creators::creators_phase(cfg, &mut details)?;
    }
    let mut extra = String::new();
    if on("million") {
        million::million_phase(cfg, &mut extra)?;
    }
    if on("charts") {
        charts::charts_phase(cfg, &mut extra)?;
    }
    let _ = std::fs::remove_dir_all(cfg.work());
    let mut text = report(cfg, &rows, &details, &builds, t0.elapsed());
    text.push_str(&extra);
    println!("{text}");
    std::fs::write(&cfg.out, &text).map_err(err("write results"))?;
    eprintln!("results written to {}", cfg.out.display());
    Ok(())
}
