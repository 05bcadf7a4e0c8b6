//! Phase `million` (issue 18, item 3): the mixed tokens of `mixed` at 1,000 … 1,000,000
//! objects, measured on copies on disk: token open in a fresh process (with the resident
//! memory per key), C_FindObjects by label and by id (the first lookups of that fresh
//! process, answered by the store, and lookups once everything is cached), and kmshsm's expiry sweep when 10,000
//! imported materials expire at once. Writes `data/million.csv` for the charts and a
//! markdown section for the results.
//!
//! The child side (`--child-million`) prints one `MILLION` line the parent parses; the two
//! must not change independently. `KMSHSM_BENCH_SWEEP_KEYS` sets fewer expiring keys for
//! profiling runs. Nothing here may modify the cached tokens, and nothing
//! moves the module's clock: the sweep waits for real time to pass the expiry.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::Attribute;
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;

use crate::external::{import, prepare_external, vulong, CKA_KEY_STATE, STATE_PENDING_IMPORT};
use crate::keys::id_bytes;
use crate::mixed::{build_seconds_file, gave_up_file, mixed_dir, prepare_mixed};
use crate::timing::{boxed, line, median, rate};
use crate::token::{configure, copy_dir, find_token, start, stop, Which, USER_PIN};
use crate::{err, Cfg, Res};

/// Materials that expire at once in the sweep measurement.
const SWEEP_KEYS: usize = 10_000;
/// Lookups timed one by one in the fresh-process probe before anything is cached (fewer
/// than the module's 64 store-answered lookups after which it may load the whole token).
const COLD_LOOKUPS: usize = 50;

fn vm_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// The fresh-process probe: C_Initialize, C_OpenSession, C_Login, the first find (by label
/// `k0`, expected `expect` times), VmRSS after it, the cold lookups (the median of
/// [`COLD_LOOKUPS`] finds by label, timed one by one; a token with objects only), then a
/// listing of every token object (C_FindObjects by CKA_TOKEN, which makes kmshsm load
/// everything) and VmRSS after that.
///
/// The cold lookups are measured here, in a process that has done nothing else, so that
/// every size starts from the same state: in the bench's own long-lived process the small
/// tokens' lookups found heap memory that earlier phases had already faulted in.
pub(crate) fn child_million(module: &Path, expect: usize) -> Res<()> {
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
    let rss_find = vm_rss_kb();
    if found.len() != expect.min(1) {
        return Err(format!("first find: {} objects labelled k0", found.len()));
    }
    let cold = if expect > 0 {
        let mut lcg = Lcg(777);
        let mut t = Vec::with_capacity(COLD_LOOKUPS);
        for _ in 0..COLD_LOOKUPS {
            let st = Instant::now();
            find_one(&s, lcg.next(expect), false)?;
            t.push(st.elapsed().as_secs_f64() * 1e6);
        }
        median(&t)
    } else {
        f64::NAN
    };
    let t4b = Instant::now();
    let all = s
        .find_objects(&[Attribute::Token(true)])
        .map_err(err("C_FindObjects(all)"))?;
    let t5 = Instant::now();
    let rss_all = vm_rss_kb();
    if all.len() != expect {
        return Err(format!("listing: {} objects, expected {expect}", all.len()));
    }
    let us = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e6;
    println!(
        "MILLION {} {} {} {} {} {} {} {}",
        us(t0, t1),
        us(t1, t2),
        us(t2, t3),
        us(t3, t4),
        rss_find,
        us(t4b, t5),
        rss_all,
        cold
    );
    drop(s);
    let _ = ctx.finalize();
    Ok(())
}

#[derive(Clone, Copy, Default)]
struct Probe {
    init: f64,
    open: f64,
    login: f64,
    first_find: f64,
    rss_find_kb: f64,
    listing: f64,
    rss_all_kb: f64,
    cold_us: f64,
}

fn run_probe(module: &Path, n: usize) -> Res<Probe> {
    let exe = std::env::current_exe().map_err(err("current_exe"))?;
    let out = Command::new(exe)
        .arg("--child-million")
        .arg(module)
        .arg(n.to_string())
        .output()
        .map_err(err("spawn child"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("MILLION "))
        .ok_or_else(|| {
            format!(
                "child failed: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
    let v: Vec<f64> = line[8..]
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(f64::NAN))
        .collect();
    if v.len() != 8 {
        return Err(format!("child printed {line:?}"));
    }
    Ok(Probe {
        init: v[0],
        open: v[1],
        login: v[2],
        first_find: v[3],
        rss_find_kb: v[4],
        listing: v[5],
        rss_all_kb: v[6],
        cold_us: v[7],
    })
}

/// What one module gave at one size (NaN: not measured).
#[derive(Clone, Copy)]
pub(crate) struct Figures {
    n: usize,
    which: Which,
    prep_s: f64,
    open_ms: f64,
    login_ms: f64,
    first_find_ms: f64,
    rss_find_kb: f64,
    listing_ms: f64,
    rss_all_kb: f64,
    cold_us: f64,
    label_us: f64,
    id_us: f64,
    sweep_ms: f64,
}

impl Figures {
    fn new(n: usize, which: Which) -> Figures {
        let nan = f64::NAN;
        Figures {
            n,
            which,
            prep_s: nan,
            open_ms: nan,
            login_ms: nan,
            first_find_ms: nan,
            rss_find_kb: nan,
            listing_ms: nan,
            rss_all_kb: nan,
            cold_us: nan,
            label_us: nan,
            id_us: nan,
            sweep_ms: nan,
        }
    }
}

fn probes(cfg: &Cfg, w: Which, n: usize, f: &mut Figures) -> Res<()> {
    let module = if w == Which::Kms {
        &cfg.kms_so
    } else {
        &cfg.soft_so
    };
    run_probe(module, n)?; // warm-up (page cache)
    let mut v = vec![];
    for _ in 0..cfg.open_runs {
        v.push(run_probe(module, n)?);
    }
    let med = |g: fn(&Probe) -> f64| median(&v.iter().map(g).collect::<Vec<_>>());
    f.open_ms = med(|p| p.init + p.open + p.login) / 1e3;
    f.login_ms = med(|p| p.login) / 1e3;
    f.first_find_ms = med(|p| p.first_find) / 1e3;
    f.rss_find_kb = med(|p| p.rss_find_kb);
    f.listing_ms = med(|p| p.listing) / 1e3;
    f.rss_all_kb = med(|p| p.rss_all_kb);
    if n > 0 {
        f.cold_us = med(|p| p.cold_us);
    }
    Ok(())
}

/// Deterministic pseudo-random object index sequence.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

fn find_one(s: &cryptoki::session::Session, j: usize, by_id: bool) -> Res<()> {
    let t = if by_id {
        [Attribute::Id(id_bytes(j))]
    } else {
        [Attribute::Label(format!("k{j}").into_bytes())]
    };
    let found = s.find_objects(&t).map_err(err("C_FindObjects"))?;
    if found.len() != 1 {
        return Err(format!("found {} objects for k{j}", found.len()));
    }
    Ok(())
}

/// Lookups in a warm process once a listing has cached everything (the steady state), with
/// `line`; the first lookups are the probes' (`child_million`).
fn finds(cfg: &Cfg, n: usize, both: &mut [Figures; 2], have_soft: bool) -> Res<()> {
    let k = start(Which::Kms, &cfg.kms_so, false)?;
    let s = if have_soft {
        Some(start(Which::Soft, &cfg.soft_so, false)?)
    } else {
        None
    };
    for m in [Some(&k), s.as_ref()].into_iter().flatten() {
        m.s.find_objects(&[Attribute::Token(true)])
            .map_err(err("C_FindObjects(all)"))?;
    }
    for by_id in [false, true] {
        let name = format!(
            "mixed token: C_FindObjects by CKA_{}, {n} objects",
            if by_id { "ID" } else { "LABEL" }
        );
        fn mk(m: &crate::token::Loaded, n: usize, by_id: bool) -> crate::timing::Runner<'_> {
            let mut lcg = Lcg(12345);
            let s = &m.s;
            boxed(move |b| rate(b, 1, || find_one(s, lcg.next(n), by_id)))
        }
        let row = line(
            cfg,
            &name,
            1,
            Some(mk(&k, n, by_id)),
            s.as_ref().map(|m| mk(m, n, by_id)),
            None,
        );
        for (col, c) in [(0, &row.kms), (1, &row.soft)] {
            if let Some(v) = c.val() {
                let us = 1e6 / v;
                if by_id {
                    both[col].id_us = us;
                } else {
                    both[col].label_us = us;
                }
            }
        }
    }
    stop(k);
    if let Some(s) = s {
        stop(s);
    }
    Ok(())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// kmshsm's expiry sweep: 10,000 EXTERNAL keys (labels `k<n>` … ) get imported material
/// that expires at one instant; once it has passed, the next call (a find by label of a
/// key that does not expire) runs the sweep; it is timed, then the wiped keys are counted.
fn sweep(cfg: &Cfg, n: usize, f: &mut Figures, notes: &mut String) -> Res<()> {
    // For profiling runs: fewer keys (the table's header still names SWEEP_KEYS).
    let keys = std::env::var("KMSHSM_BENCH_SWEEP_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SWEEP_KEYS);
    eprintln!("  sweep: importing {keys} materials that will expire together");
    let k = start(Which::Kms, &cfg.kms_so, false)?;
    let st = Instant::now();
    let mut pending = Vec::with_capacity(keys);
    for j in 0..keys {
        pending.push(prepare_external(&k.s, n + j)?);
    }
    let stage_a = st.elapsed();
    // The import step makes one commit per key where the CreateKey +
    // GetParametersForImport step just timed made two: 0.9 of that time and a margin lie
    // after the last import (an import past the expiry would be refused, and say so).
    let expiry = unix_now() + (stage_a.as_secs_f64() * 0.9) as u64 + 20;
    let st = Instant::now();
    for p in pending {
        // The wrapping pairs stay (their tokens expire in 24 h): two commits fewer per key.
        import(&k.s, p, expiry, false)?;
    }
    let stage_b = st.elapsed();
    eprintln!("  sweep: waiting for the expiry");
    while unix_now() <= expiry {
        std::thread::sleep(Duration::from_millis(200));
    }
    let st = Instant::now();
    find_one(&k.s, 0, false)?;
    f.sweep_ms = st.elapsed().as_secs_f64() * 1e3;
    let wiped =
        k.s.find_objects(&[vulong(CKA_KEY_STATE, STATE_PENDING_IMPORT)])
            .map_err(err("C_FindObjects(PendingImport)"))?
            .len();
    stop(k);
    let _ = writeln!(
        notes,
        "- {n} objects: {keys} imports prepared in {:.1} s and made in {:.1} s; the sweep \
         took {:.0} ms and left {wiped} keys PendingImport",
        stage_a.as_secs_f64(),
        stage_b.as_secs_f64(),
        f.sweep_ms
    );
    if wiped != keys {
        return Err(format!("the sweep wiped {wiped} keys, expected {keys}"));
    }
    Ok(())
}

fn read_f64(p: &Path) -> f64 {
    std::fs::read_to_string(p)
        .ok()
        .and_then(|s| s.split_whitespace().last().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

pub(crate) fn million_phase(cfg: &Cfg, out: &mut String) -> Res<()> {
    let mut sizes = vec![0];
    sizes.extend(cfg.counts_million.iter().copied());
    for &n in &sizes {
        prepare_mixed(cfg, n)?;
    }
    if cfg.phases.iter().any(|p| p == "prepare-only") {
        return Ok(());
    }
    let mut all: Vec<[Figures; 2]> = vec![];
    let mut notes = String::new();
    for &n in &sizes {
        eprintln!("== mixed token, {n} objects");
        let mut both = [Figures::new(n, Which::Kms), Figures::new(n, Which::Soft)];
        let have_soft = mixed_dir(cfg, Which::Soft, n).exists();
        let dir = cfg.work().join(format!("million-{n}"));
        let (kdir, sdir) = (dir.join("kmshsm-tokens"), dir.join("softhsm-tokens"));
        copy_dir(&mixed_dir(cfg, Which::Kms, n), &kdir)?;
        if have_soft {
            copy_dir(&mixed_dir(cfg, Which::Soft, n), &sdir)?;
        }
        configure(&dir, &kdir, &sdir)?;
        for (col, w) in [(0, Which::Kms), (1, Which::Soft)] {
            both[col].prep_s = read_f64(&build_seconds_file(cfg, w, n));
            if w == Which::Kms || have_soft {
                probes(cfg, w, n, &mut both[col])?;
            }
        }
        if n > 0 {
            finds(cfg, n, &mut both, have_soft)?;
            if cfg.sweep_counts.contains(&n) {
                sweep(cfg, n, &mut both[0], &mut notes)?;
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        all.push(both);
    }
    write_csv(cfg, &all)?;
    render(cfg, &all, &notes, out);
    Ok(())
}

fn write_csv(cfg: &Cfg, all: &[[Figures; 2]]) -> Res<()> {
    let dir = cfg.target.join("data");
    std::fs::create_dir_all(&dir).map_err(err("mkdir data"))?;
    let mut o = String::from("size,module,metric,value\n");
    for f in all.iter().flatten() {
        let base = |kb: f64| if f.n > 0 { kb } else { f64::NAN };
        for (m, v) in [
            ("prep_s", f.prep_s),
            ("open_ms", f.open_ms),
            ("login_ms", f.login_ms),
            ("first_find_ms", f.first_find_ms),
            ("rss_find_kb", base(f.rss_find_kb)),
            ("listing_ms", f.listing_ms),
            ("rss_all_kb", base(f.rss_all_kb)),
            ("find_cold_us", f.cold_us),
            ("find_label_us", f.label_us),
            ("find_id_us", f.id_us),
            ("sweep_ms", f.sweep_ms),
        ] {
            if v.is_finite() {
                let _ = writeln!(o, "{},{},{m},{v}", f.n, f.which.tag());
            }
        }
    }
    std::fs::write(dir.join("million.csv"), o).map_err(err("write million.csv"))
}

fn fmt(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "—".into()
    }
}

fn render(cfg: &Cfg, all: &[[Figures; 2]], notes: &str, o: &mut String) {
    let _ = writeln!(
        o,
        "\n## A million keys (issue 18)\n\n\
         Mixed tokens (module `mixed`), measured on copies on disk. Open: medians of {} fresh \
         processes (C_Initialize + C_OpenSession + C_Login, kmshsm's default Argon2id). RSS per \
         object: the child's VmRSS minus the same child's on the empty token, divided by the \
         objects, after login + one find, and after a listing of every object. Cold lookup: \
         median of the first {COLD_LOOKUPS} finds by label after that first find, in the same \
         fresh processes (answered through the store's index; the median of the processes' \
         medians); the find lines: after that listing, as in the table above.\n\n\
         | objects | module | prepared in (s) | open (ms) | of it C_Login | first find (ms) | RSS/object after login+find (B) | listing all (ms) | RSS/object, all cached (B) | cold lookup (µs) | find by label (µs) | find by id (µs) | sweep of {SWEEP_KEYS} expiries (ms) |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        cfg.open_runs
    );
    let empty = all.iter().find(|b| b[0].n == 0);
    for b in all {
        for f in b {
            if !f.open_ms.is_finite() && f.which == Which::Soft {
                let why = match std::fs::read_to_string(gave_up_file(cfg, f.n)) {
                    Ok(s) => format!(
                        "not prepared: gave up after {} objects in {} s",
                        s.split_whitespace().next().unwrap_or("?"),
                        s.split_whitespace().nth(1).unwrap_or("?")
                    ),
                    Err(_) => {
                        "not prepared (a smaller size already ran out of its time budget)".into()
                    }
                };
                let _ = writeln!(o, "| {} | SoftHSMv2 | {why} ||||||||||||", f.n);
                continue;
            }
            let e = empty.map(|e| if f.which == Which::Kms { e[0] } else { e[1] });
            let per = |kb: f64, base: Option<f64>| match base {
                Some(b) if f.n > 0 => fmt((kb - b) * 1024.0 / f.n as f64, 0),
                _ => "—".into(),
            };
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                f.n,
                if f.which == Which::Kms {
                    "kmshsm"
                } else {
                    "SoftHSMv2"
                },
                fmt(f.prep_s, 1),
                fmt(f.open_ms, 2),
                fmt(f.login_ms, 2),
                fmt(f.first_find_ms, 2),
                per(f.rss_find_kb, e.map(|e| e.rss_find_kb)),
                fmt(f.listing_ms, 1),
                per(f.rss_all_kb, e.map(|e| e.rss_all_kb)),
                fmt(f.cold_us, 1),
                fmt(f.label_us, 2),
                fmt(f.id_us, 2),
                fmt(f.sweep_ms, 0),
            );
        }
    }
    let sized: Vec<&[Figures; 2]> = all.iter().filter(|b| b[0].n > 0).collect();
    if let (Some(lo), Some(hi), true) = (sized.first(), sized.last(), sized.len() > 1) {
        let (a, b) = (lo[0].n as f64, hi[0].n as f64);
        let _ = writeln!(
            o,
            "\nGrowth from {} to {} objects (logarithmic bound: log2({}) / log2({}) = {:.2}×, linear {:.0}×):\n",
            lo[0].n,
            hi[0].n,
            hi[0].n,
            lo[0].n,
            b.log2() / a.log2(),
            b / a
        );
        for (col, name) in [(0, "kmshsm"), (1, "SoftHSMv2")] {
            for (what, g) in [
                (
                    "token open",
                    (|f: &Figures| f.open_ms) as fn(&Figures) -> f64,
                ),
                ("cold lookup", |f| f.cold_us),
                ("find by label", |f| f.label_us),
                ("find by id", |f| f.id_us),
                ("sweep", |f| f.sweep_ms),
            ] {
                // The largest size this module was measured at.
                let top = sized.iter().rev().find(|b| g(&b[col]).is_finite());
                if let (true, Some(top)) = (g(&lo[col]).is_finite(), top) {
                    if top[col].n == lo[col].n {
                        continue;
                    }
                    let _ = writeln!(
                        o,
                        "- {what}, {name}: {:.2}× from {} to {} objects",
                        g(&top[col]) / g(&lo[col]),
                        lo[col].n,
                        top[col].n
                    );
                }
            }
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(o, "\nThe sweep (kmshsm):\n\n{notes}");
    }
}
