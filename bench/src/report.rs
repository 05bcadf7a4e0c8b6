//! The results report: the markdown table, the derived figures, the token-open breakdown,
//! the preparation times, the raw samples, and the description of the machine.
//!
//! It only formats what the phases measured; it must not measure anything or reorder rows.

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use crate::timing::{fmt_cell, fmt_rate, Cell, Row};
use crate::Cfg;

fn machine() -> String {
    let sh = |c: &str| {
        Command::new("sh")
            .arg("-c")
            .arg(c)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    format!(
        "- CPU: {} ({} logical CPUs)\n- memory: {}\n- kernel: {}\n- OS: {}\n- SoftHSMv2: {}\n- rustc: {}\n- load average at the end of the run: {}\n",
        sh("lscpu | sed -n 's/^Model name: *//p' | head -1"),
        sh("nproc"),
        sh("free -h | awk '/^Mem:/{print $2}'"),
        sh("uname -sr"),
        sh(". /etc/os-release && echo $PRETTY_NAME"),
        sh("dpkg-query -W -f='${Version}' softhsm2 2>/dev/null"),
        sh("rustc --version"),
        sh("cut -d' ' -f1-3 /proc/loadavg"),
    )
}

pub(crate) fn report(
    cfg: &Cfg,
    rows: &[Row],
    details: &str,
    builds: &str,
    total: Duration,
) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "## Machine\n\n{}", machine());
    let _ = writeln!(
        o,
        "Settings: {} rounds (after one warm-up), {} ms per module per round (×4 for RSA key \
         generation, ×2 for the two-thread line), modules alternated within each round; medians \
         reported. Token open: {} fresh processes per module (after one warm-up each). \
         Whole run: {:.0} s.\n",
        cfg.rounds,
        cfg.budget.as_millis(),
        cfg.open_runs,
        total.as_secs_f64()
    );
    let _ = writeln!(
        o,
        "| operation | kmshsm ops/s | SoftHSMv2 ops/s | ratio | raw primitive ops/s | kmshsm / raw |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|");
    let measured = |r: &&Row| {
        [&r.kms, &r.soft, &r.raw]
            .iter()
            .any(|c| !matches!(c, Cell::Na(e) if e.is_empty()))
    };
    for r in rows.iter().filter(measured) {
        let ratio = match (r.kms.val(), r.soft.val()) {
            (Some(a), Some(b)) => format!("{:.2}×", a / b),
            _ => "—".into(),
        };
        let vs_raw = match (r.kms.val(), r.raw.val()) {
            (Some(a), Some(b)) => format!("{:.0}%", 100.0 * a / b),
            _ => "—".into(),
        };
        let na = |c: &Cell| match c {
            Cell::Na(e) if !e.is_empty() => format!("n/a ({})", e.replace('|', "/")),
            c => fmt_cell(c),
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} |",
            r.op,
            na(&r.kms),
            na(&r.soft),
            ratio,
            na(&r.raw),
            vs_raw
        );
    }
    // Derived figures.
    let get = |p: &str| rows.iter().find(|r| r.op.starts_with(p));
    let _ = writeln!(o, "\n### Derived\n");
    if let (Some(one), Some(two)) = (
        get("C_Sign RSA-2048 CKM_SHA256_RSA_PKCS, 64 B"),
        get("C_Sign RSA-2048 CKM_SHA256_RSA_PKCS, 2 threads"),
    ) {
        for (name, a, b) in [
            ("kmshsm", one.kms.val(), two.kms.val()),
            ("SoftHSMv2", one.soft.val(), two.soft.val()),
            ("raw aws-lc-rs", one.raw.val(), two.raw.val()),
        ] {
            if let (Some(a), Some(b)) = (a, b) {
                let _ = writeln!(
                    o,
                    "- two-thread RSA-2048 signing, {name}: {} ops/s against {} single-thread = {:.2}×",
                    fmt_rate(b),
                    fmt_rate(a),
                    b / a
                );
            }
        }
    }
    let counts = &cfg.counts;
    if counts.len() >= 2 {
        let (lo, hi) = (counts[0], counts[counts.len() - 1]);
        let allowed = (hi as f64).ln() / (lo as f64).ln();
        for p in [
            "C_FindObjects by CKA_LABEL",
            "C_FindObjects by CKA_ID",
            "token open",
        ] {
            let at = |n: usize| {
                rows.iter()
                    .find(|r| r.op.starts_with(p) && r.op.contains(&format!(" {n} keys")))
            };
            if let (Some(a), Some(b)) = (at(lo), at(hi)) {
                for (name, x, y) in [
                    ("kmshsm", a.kms.val(), b.kms.val()),
                    ("SoftHSMv2", a.soft.val(), b.soft.val()),
                ] {
                    if let (Some(x), Some(y)) = (x, y) {
                        let _ = writeln!(
                            o,
                            "- {p}, {name}: cost per call at {hi} keys is {:.2}× the cost at {lo} keys \
                             (logarithmic growth would be ≤ {:.2}×, linear {:.0}×)",
                            x / y,
                            allowed,
                            hi as f64 / lo as f64
                        );
                    }
                }
            }
        }
    }
    let _ = writeln!(
        o,
        "\n### Token open, breakdown (medians, milliseconds)\n\n\
         | keys | module | C_Initialize | slot lookup + C_OpenSession | C_Login | sum | then first C_FindObjects by label (not in the sum) | whole child process |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|\n{details}"
    );
    if !builds.is_empty() {
        let _ = writeln!(
            o,
            "\n### Token preparation (C_CreateObject of every key, one-time, cached)\n\n{builds}"
        );
    }
    let _ = writeln!(
        o,
        "\n### Raw samples (ops/s per round: kmshsm / SoftHSMv2 / raw)\n"
    );
    for r in rows.iter().filter(measured) {
        let s = |c: &Cell| match c {
            Cell::Val(_, v) => v.iter().map(|x| fmt_rate(*x)).collect::<Vec<_>>().join(" "),
            _ => "—".into(),
        };
        let _ = writeln!(
            o,
            "- {}: [{}] / [{}] / [{}]",
            r.op,
            s(&r.kms),
            s(&r.soft),
            s(&r.raw)
        );
    }
    o
}
