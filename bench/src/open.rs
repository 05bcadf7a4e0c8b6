//! Phase `open`: token open (C_Initialize, C_OpenSession, C_Login) in a fresh process on
//! tokens with many keys, and the `--child-open` probe that runs in that process.
//!
//! The child prints one `OPEN` line that the parent parses; the two sides must not change
//! independently. It must not modify the cached tokens: it works on copies.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::Attribute;
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;

use crate::timing::{fmt_cell, median, Cell, Row};
use crate::token::{cache_dir, configure, copy_dir, find_token, Which, USER_PIN};
use crate::{err, Cfg, Res};

/// What the child prints: microseconds of C_Initialize, slot lookup + C_OpenSession,
/// C_Login, and (after the timed window) the first C_FindObjects by label, which shows
/// whether loading the objects was only put off to the first search.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct OpenTimes {
    pub(crate) init: f64,
    pub(crate) open: f64,
    pub(crate) login: f64,
    pub(crate) first_find: f64,
    pub(crate) process: f64,
}

pub(crate) fn child_open(module: &Path) -> Res<()> {
    let ctx = Pkcs11::new(module).map_err(err("load module"))?;
    let t0 = Instant::now();
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(err("C_Initialize"))?;
    let t1 = Instant::now();
    let slot = find_token(&ctx)?.ok_or("token not found")?;
    let s = ctx.open_rw_session(slot).map_err(err("C_OpenSession"))?;
    let t2 = Instant::now();
    s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
        .map_err(err("C_Login"))?;
    let t3 = Instant::now();
    let found = s
        .find_objects(&[Attribute::Label(b"k0".to_vec())])
        .map_err(err("C_FindObjects"))?;
    let t4 = Instant::now();
    if found.len() != 1 {
        return Err(format!(
            "first find: {} objects labelled k0, expected 1",
            found.len()
        ));
    }
    println!(
        "OPEN {} {} {} {}",
        (t1 - t0).as_secs_f64() * 1e6,
        (t2 - t1).as_secs_f64() * 1e6,
        (t3 - t2).as_secs_f64() * 1e6,
        (t4 - t3).as_secs_f64() * 1e6
    );
    drop(s);
    let _ = ctx.finalize();
    Ok(())
}

pub(crate) fn run_child(module: &Path) -> Res<OpenTimes> {
    let exe = std::env::current_exe().map_err(err("current_exe"))?;
    let st = Instant::now();
    let out = Command::new(exe)
        .arg("--child-open")
        .arg(module)
        .output()
        .map_err(err("spawn child"))?;
    let process = st.elapsed().as_secs_f64() * 1e6;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("OPEN "))
        .ok_or_else(|| {
            format!(
                "child failed: {}{}",
                text,
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    let v: Vec<f64> = line[5..]
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(f64::NAN))
        .collect();
    if v.len() != 4 {
        return Err(format!("child printed {line:?}"));
    }
    Ok(OpenTimes {
        init: v[0],
        open: v[1],
        login: v[2],
        first_find: v[3],
        process,
    })
}

pub(crate) fn open_phase(
    cfg: &Cfg,
    n: usize,
    rows: &mut Vec<Row>,
    details: &mut String,
) -> Res<()> {
    eprintln!("== token open in a fresh process, {n} keys");
    let dir = cfg.work().join(format!("open-{n}"));
    let kdir = dir.join("kmshsm-tokens");
    let sdir = dir.join("softhsm-tokens");
    copy_dir(&cache_dir(cfg, Which::Kms, n), &kdir)?;
    copy_dir(&cache_dir(cfg, Which::Soft, n), &sdir)?;
    configure(&dir, &kdir, &sdir)?;
    let mut samples: [Vec<OpenTimes>; 2] = Default::default();
    // One warm-up run each (page cache), then alternating runs.
    run_child(&cfg.kms_so)?;
    run_child(&cfg.soft_so)?;
    for r in 0..cfg.open_runs {
        let order = if r % 2 == 0 { [0, 1] } else { [1, 0] };
        for col in order {
            let path = if col == 0 { &cfg.kms_so } else { &cfg.soft_so };
            samples[col].push(run_child(path)?);
        }
    }
    let med =
        |v: &[OpenTimes], f: fn(&OpenTimes) -> f64| median(&v.iter().map(f).collect::<Vec<_>>());
    let cell = |v: &[OpenTimes]| {
        let totals: Vec<f64> = v
            .iter()
            .map(|t| 1e6 / (t.init + t.open + t.login))
            .collect();
        Cell::Val(median(&totals), totals)
    };
    let name = format!("token open: C_Initialize+C_OpenSession+C_Login, {n} keys (fresh process)");
    let row = Row {
        op: name,
        kms: cell(&samples[0]),
        soft: cell(&samples[1]),
        raw: Cell::Na(String::new()),
    };
    eprintln!(
        "  {:<62}{:>12} {:>12}",
        row.op,
        fmt_cell(&row.kms),
        fmt_cell(&row.soft)
    );
    rows.push(row);
    for (col, w) in [(0, "kmshsm"), (1, "SoftHSMv2")] {
        let v = &samples[col];
        let _ = writeln!(
            details,
            "| {n} | {w} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} |",
            med(v, |t| t.init) / 1e3,
            med(v, |t| t.open) / 1e3,
            med(v, |t| t.login) / 1e3,
            med(v, |t| t.init + t.open + t.login) / 1e3,
            med(v, |t| t.first_find) / 1e3,
            med(v, |t| t.process) / 1e3,
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
