//! Phase `store`: the PostgreSQL column (issue 15, item 9). kmshsm on its SQLite store,
//! kmshsm on a PostgreSQL store (a private server started for the run, reached over TCP
//! on loopback, `change_check` at its default, notify) and SoftHSMv2, one after the other
//! in every round (the order alternating), for what the store has a say in: ECDSA P-256
//! sign and verify (it should have none), token-object creation (one durable commit
//! each), the first lookup of a key another process has just created, and token open in
//! a fresh process (C_Initialize + C_OpenSession + C_Login).
//!
//! It appends its own table to the report's details; it must not change the other
//! phases' rows. The server is the tests' private cluster (`tests/common/pg.rs`, shared
//! through `#[path]`), so it runs as the `postgres` user when the bench runs as root.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};

use crate::keys::{aes_key, aes_template, destroy, ec_pair, short, MSG};
use crate::open::run_child;
use crate::timing::{median, rate, rate_timed};
use crate::token::{start, stop, Which};
use crate::{err, Cfg, Res};

// The main suite's PostgreSQL helper, shared as is: written as test code (a failed
// unwrap ends the run, which is what the benchmark wants too), its items `pub` for the
// test crates that include it.
#[allow(clippy::unwrap_used, unreachable_pub)]
#[path = "../../tests/common/pg.rs"]
pub(crate) mod pg;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Target {
    Sqlite,
    Postgres,
    Soft,
}

impl Target {
    const ALL: [Target; 3] = [Target::Sqlite, Target::Postgres, Target::Soft];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Target::Sqlite => "kmshsm SQLite",
            Target::Postgres => "kmshsm PostgreSQL",
            Target::Soft => "SoftHSMv2",
        }
    }
}

const LINES: [&str; 5] = [
    "ECDSA P-256 sign (ops/s)",
    "ECDSA P-256 verify (ops/s)",
    "token object creation, one creator (objects/s)",
    "first lookup of a key another process created (µs)",
    "token open in a fresh process: init + session + login (ms)",
];

pub(crate) struct Setup {
    pub(crate) module: PathBuf,
    /// The environment variable naming this target's configuration, and its file.
    conf_var: &'static str,
    conf: PathBuf,
}

impl Setup {
    pub(crate) fn activate(&self) {
        std::env::set_var(self.conf_var, &self.conf);
    }
}

/// Writes the three configurations under `dir` (kmshsm with its default KDF, as users
/// get it).
pub(crate) fn setups(cfg: &Cfg, dir: &Path, store_url: &str) -> Res<Vec<(Target, Setup)>> {
    let mut out = Vec::new();
    for target in Target::ALL {
        let own = dir.join(format!("{target:?}").to_lowercase());
        let tokens = own.join("tokens");
        std::fs::create_dir_all(&tokens).map_err(err("mkdir"))?;
        let log = own.join("module.log");
        let (module, conf_var, conf, text) = match target {
            Target::Soft => (
                cfg.soft_so.clone(),
                "SOFTHSM2_CONF",
                own.join("softhsm2.conf"),
                format!(
                    "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                    tokens.display()
                ),
            ),
            _ => {
                let store = if target == Target::Postgres {
                    format!("store_url = {store_url:?}\n")
                } else {
                    String::new()
                };
                (
                    cfg.kms_so.clone(),
                    "KMSHSM_CONF",
                    own.join("kmshsm.toml"),
                    format!(
                        "token_dir = {:?}\nlog_level = \"error\"\nlog_file = {:?}\n{store}",
                        tokens.to_str().unwrap_or_default(),
                        log.to_str().unwrap_or_default()
                    ),
                )
            }
        };
        std::fs::write(&conf, text).map_err(err("write configuration"))?;
        out.push((
            target,
            Setup {
                module,
                conf_var,
                conf,
            },
        ));
    }
    Ok(out)
}

pub(crate) fn which(target: Target) -> Which {
    match target {
        Target::Soft => Which::Soft,
        _ => Which::Kms,
    }
}

/// `--child-create MODULE LABEL`: creates one token AES key labelled LABEL in the bench
/// token and exits (the configuration comes from the environment).
pub(crate) fn child_create(module: &Path, label: &str) -> Res<()> {
    let which = if module.to_string_lossy().contains("softhsm") {
        Which::Soft
    } else {
        Which::Kms
    };
    let m = start(which, module, false)?;
    aes_key(&m.s, label)?;
    stop(m);
    Ok(())
}

fn spawn_create(module: &Path, label: &str) -> Res<()> {
    let exe = std::env::current_exe().map_err(err("current_exe"))?;
    let out = Command::new(exe)
        .arg("--child-create")
        .arg(module)
        .arg(label)
        .output()
        .map_err(err("spawn child"))?;
    if !out.status.success() {
        return Err(format!(
            "child-create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// One round of every line for one target: the values in the order of [`LINES`].
fn round(cfg: &Cfg, target: Target, setup: &Setup, first: bool, r: usize) -> Res<Vec<f64>> {
    setup.activate();
    let m = start(which(target), &setup.module, first)?;
    if first {
        aes_key(&m.s, "k0")?;
    }
    let (public, private) = ec_pair(&m.s, "store-bench-ec")?;
    let mech = Mechanism::Ecdsa;
    let digest = &MSG[..32];
    let sign = rate(cfg.budget, 20, || {
        m.s.sign(&mech, private, digest)
            .map(|_| ())
            .map_err(|e| short(&e))
    })?;
    let signature = m.s.sign(&mech, private, digest).map_err(|e| short(&e))?;
    let verify = rate(cfg.budget, 20, || {
        m.s.verify(&mech, public, digest, &signature)
            .map_err(|e| short(&e))
    })?;
    let mut n = 0usize;
    let create = rate_timed(cfg.budget, 5, || {
        n += 1;
        let mut t = aes_template(&format!("store-bench-create-{r}-{n}"));
        t.push(Attribute::Value(vec![7u8; 32]));
        let t0 = Instant::now();
        let h = m.s.create_object(&t).map_err(|e| short(&e))?;
        let took = t0.elapsed();
        destroy(&m.s, h)?;
        Ok(took)
    })?;
    // Another process creates a key; this one, warm, looks it up by label. A lookup that
    // does not find it yet (a change not yet noticed) is asked again, and counted in.
    let mut lookups = Vec::new();
    for k in 0..5 {
        let label = format!("store-bench-other-{r}-{k}");
        spawn_create(&setup.module, &label)?;
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(label.clone().into_bytes()),
        ];
        let t0 = Instant::now();
        loop {
            let found = m.s.find_objects(&template).map_err(|e| short(&e))?;
            if found.len() == 1 {
                break;
            }
            if t0.elapsed() > Duration::from_secs(5) {
                return Err(format!("{}: {label} not found after 5 s", target.name()));
            }
        }
        lookups.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    let _ = m.s.destroy_object(public);
    let _ = m.s.destroy_object(private);
    stop(m);
    let mut opens = Vec::new();
    for _ in 0..cfg.open_runs.max(1) {
        let t = run_child(&setup.module)?;
        opens.push((t.init + t.open + t.login) / 1e3);
    }
    Ok(vec![sign, verify, create, median(&lookups), median(&opens)])
}

pub(crate) fn store_phase(cfg: &Cfg, details: &mut String) -> Res<()> {
    eprintln!("store phase: starting a private PostgreSQL server");
    let cluster = pg::Cluster::start_durable();
    let url = cluster.database("bench");
    let dir = cfg.work().join("store");
    let _ = std::fs::remove_dir_all(&dir);
    let targets = setups(cfg, &dir, &url)?;
    let mut samples = vec![vec![Vec::new(); LINES.len()]; Target::ALL.len()];
    for r in 0..cfg.rounds {
        let mut order: Vec<usize> = (0..targets.len()).collect();
        if r % 2 == 1 {
            order.reverse();
        }
        for t in order {
            let (target, setup) = &targets[t];
            eprintln!(
                "store phase: round {} of {}, {}",
                r + 1,
                cfg.rounds,
                target.name()
            );
            let values = round(cfg, *target, setup, r == 0, r)?;
            for (line, v) in values.into_iter().enumerate() {
                samples[t][line].push(v);
            }
        }
    }
    let med = |t: usize, line: usize| median(&samples[t][line]);
    let _ = writeln!(
        details,
        "\n## The store: SQLite, PostgreSQL, SoftHSMv2 (phase `store`)\n\n\
         Medians of {} rounds; PostgreSQL 15 on this machine (`fsync=on`, \
         `synchronous_commit=on`: durable like SQLite's `synchronous=FULL`) over TCP loopback \
         (a network between hosts adds its round trips), `change_check = \"notify\"`.\n\n\
         | line | kmshsm SQLite | kmshsm PostgreSQL | SoftHSMv2 | PostgreSQL ÷ SQLite | PostgreSQL ÷ SoftHSMv2 |\n\
         |---|---|---|---|---|---|",
        cfg.rounds
    );
    for (line, name) in LINES.iter().enumerate() {
        let (s, p, h) = (med(0, line), med(1, line), med(2, line));
        let _ = writeln!(
            details,
            "| {name} | {s:.1} | {p:.1} | {h:.1} | {:.2} | {:.2} |",
            p / s,
            p / h
        );
    }
    drop(cluster);
    Ok(())
}
