//! Phase `charts` (issue 18, item 5): SVG charts for docs/performance.md, drawn with
//! `plotters` (SVG backend only; text is left to the SVG viewer, no system fonts) from small
//! CSV files under `bench/target/data/` that the phases write:
//!
//! - `million.csv` (phase `million`): `size,module,metric,value`, module `kmshsm` or
//!   `softhsm`, metrics `open_ms`, `find_label_us`, `find_id_us`, `find_cold_us`, … →
//!   `million-lookup.svg` (cost per lookup against token size) and `million-open.svg`
//!   (token open against token size);
//! - `creators.csv` beside the results (phase `creators`):
//!   `creators,mode,module,keys_per_s,ratio_to_one` → `creators.svg` (creation rate
//!   against concurrent creators, one line per module and mode);
//! - `percall.csv` beside the results (phase `crypto`):
//!   `line,payload_bytes,us_per_call_kmshsm,us_per_call_raw,us_per_call_softhsm`, the
//!   line's name quoted → `percall.svg` (per-call cost of the C_Encrypt and C_Decrypt
//!   lines against payload size, the raw primitive as the floor).
//!
//! Every axis is logarithmic. A chart whose file is missing or empty is not drawn, and
//! that is said on stderr and in the results. It reads only those files and writes only
//! the SVGs; it measures nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::{Cfg, Res};

type Series = Vec<(String, Vec<(f64, f64)>)>;

/// Rows of a CSV file with the given header, as string fields.
fn read_csv(path: &Path, header: &str) -> Res<Vec<Vec<String>>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{} could not be read ({e})", path.display()))?;
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("").trim();
    if first != header {
        return Err(format!(
            "{}: header {first:?}, expected {header:?}",
            path.display()
        ));
    }
    let n = header.split(',').count();
    let rows: Vec<Vec<String>> = lines
        .filter(|l| !l.trim().is_empty())
        .map(split_fields)
        .filter(|r: &Vec<String>| r.len() == n)
        .collect();
    if rows.is_empty() {
        return Err(format!("{} has no data rows", path.display()));
    }
    Ok(rows)
}

/// The fields of one CSV line; a field in double quotes may hold commas.
fn split_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field).trim().to_string()),
            c => field.push(c),
        }
    }
    fields.push(field.trim().to_string());
    fields
}

fn num(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite() && *v > 0.0)
}

fn fmt_tick(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{}k", v / 1e3)
    } else if v >= 1.0 {
        format!("{v}")
    } else {
        format!("{v:.2}")
    }
}

/// One chart, both axes logarithmic, a line with markers per series.
fn draw(path: &Path, title: &str, x_desc: &str, y_desc: &str, series: &Series) -> Res<()> {
    let pts = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return Err("no points".into());
    }
    let e = |e: DrawingAreaErrorKind<_>| format!("plotting {}: {e}", path.display());
    let root = SVGBackend::new(path, (860, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(e)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(18)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(
            (x0 / 1.5..x1 * 1.5).log_scale(),
            // Whole decades on the y axis: plotters then labels every decade.
            (10f64.powf(y0.log10().floor())..10f64.powf(y1.log10().ceil())).log_scale(),
        )
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|v| fmt_tick(*v))
        .y_label_formatter(&|v| fmt_tick(*v))
        .draw()
        .map_err(e)?;
    for (i, (name, p)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(p.clone(), color.stroke_width(2)))
            .map_err(e)?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(p.iter().map(|q| Circle::new(*q, 3, color.filled())))
            .map_err(e)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

fn million_series(cfg: &Cfg, wanted: &[(&str, &str, &str)]) -> Res<Series> {
    let rows = read_csv(
        &cfg.target.join("data/million.csv"),
        "size,module,metric,value",
    )?;
    let mut out = Series::new();
    for (module, metric, name) in wanted {
        let mut p: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r[1] == *module && r[2] == *metric)
            .filter_map(|r| Some((num(&r[0])?, num(&r[3])?)))
            .collect();
        p.sort_by(|a, b| a.0.total_cmp(&b.0));
        if !p.is_empty() {
            out.push((name.to_string(), p));
        }
    }
    Ok(out)
}

/// Series keyed by the given columns (joined with a space), x and y from the others.
fn grouped(rows: &[Vec<String>], keys: &[usize], x: usize, y: usize) -> Series {
    let mut m: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in rows {
        if let (Some(a), Some(b)) = (num(&r[x]), num(&r[y])) {
            let k = keys
                .iter()
                .map(|&i| r[i].as_str())
                .collect::<Vec<_>>()
                .join(" ");
            m.entry(k).or_default().push((a, b));
        }
    }
    m.into_iter()
        .map(|(k, mut p)| {
            p.sort_by(|a, b| a.0.total_cmp(&b.0));
            (k, p)
        })
        .collect()
}

/// The per-call series: for each C_Encrypt or C_Decrypt operation (the line's name
/// without its size) and each module, cost against payload size.
fn percall_series(rows: &[Vec<String>]) -> Series {
    let mut long = Vec::new();
    for r in rows {
        let name = r[0].as_str();
        if !(name.starts_with("C_Encrypt") || name.starts_with("C_Decrypt")) {
            continue;
        }
        let op = name.rsplit_once(", ").map_or(name, |(op, _)| op);
        for (col, module) in [(2, "kmshsm"), (3, "raw"), (4, "SoftHSMv2")] {
            long.push(vec![
                format!("{op}: {module}"),
                r[1].clone(),
                r[col].clone(),
            ]);
        }
    }
    grouped(&long, &[0], 1, 2)
}

/// Draws every chart it has data for into `cfg.charts`; says which it could not draw.
pub(crate) fn charts_phase(cfg: &Cfg, out: &mut String) -> Res<()> {
    std::fs::create_dir_all(&cfg.charts).map_err(|e| format!("mkdir charts: {e}"))?;
    type Job<'a> = (
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        Box<dyn Fn() -> Res<Series> + 'a>,
    );
    let jobs: Vec<Job> = vec![
        (
            "million-lookup.svg",
            "C_FindObjects: cost per lookup against token size",
            "objects in the token",
            "µs per call",
            Box::new(|| {
                million_series(
                    cfg,
                    &[
                        ("kmshsm", "find_label_us", "kmshsm, by label"),
                        ("kmshsm", "find_id_us", "kmshsm, by id"),
                        ("kmshsm", "find_cold_us", "kmshsm, first lookups (store)"),
                        ("softhsm", "find_label_us", "SoftHSMv2, by label"),
                        ("softhsm", "find_id_us", "SoftHSMv2, by id"),
                    ],
                )
            }),
        ),
        (
            "million-open.svg",
            "Token open (fresh process, C_Initialize + C_OpenSession + C_Login)",
            "objects in the token",
            "ms",
            Box::new(|| {
                million_series(
                    cfg,
                    &[
                        ("kmshsm", "open_ms", "kmshsm (Argon2id login)"),
                        ("kmshsm", "login_ms", "kmshsm, of it C_Login"),
                        ("softhsm", "open_ms", "SoftHSMv2"),
                    ],
                )
            }),
        ),
        (
            "creators.svg",
            "Token object creation rate against concurrent creators",
            "concurrent creators",
            "objects per second",
            Box::new(|| {
                let rows = read_csv(
                    &cfg.out.with_file_name("creators.csv"),
                    "creators,mode,module,keys_per_s,ratio_to_one",
                )?;
                Ok(grouped(&rows, &[2, 1], 0, 3))
            }),
        ),
        (
            "percall.svg",
            "Per-call cost against payload size (raw primitive = floor)",
            "payload bytes",
            "µs per call",
            Box::new(|| {
                let rows = read_csv(
                    &cfg.out.with_file_name("percall.csv"),
                    "line,payload_bytes,us_per_call_kmshsm,us_per_call_raw,us_per_call_softhsm",
                )?;
                Ok(percall_series(&rows))
            }),
        ),
    ];
    let _ = writeln!(out, "\n## Charts\n");
    for (file, title, xd, yd, series) in jobs {
        let path = cfg.charts.join(file);
        match series().and_then(|s| {
            if s.is_empty() {
                Err("no series with data".into())
            } else {
                draw(&path, title, xd, yd, &s)
            }
        }) {
            Ok(()) => {
                eprintln!("chart written: {}", path.display());
                let _ = writeln!(out, "- {file}: written to {}", path.display());
            }
            Err(why) => {
                eprintln!("CHART NOT DRAWN: {file}: {why}");
                let _ = writeln!(out, "- **{file} not drawn**: {why}");
            }
        }
    }
    Ok(())
}
