//! Timing and statistics: the operations-per-second loops, the median, and `line`, which
//! measures one table row (warm-up, rounds, alternating module order) into a [`Row`].
//!
//! It knows nothing about PKCS#11 or the modules: what is measured comes in as closures.

use std::time::{Duration, Instant};

use crate::{Cfg, Res};

/// The clock is read between batches of operations, not after each: a read costs
/// ~25 ns, a sixth of a raw 64-byte AES-GCM seal, and would weigh on the fastest lines
/// (and on their raw baselines most). A batch doubles while it takes less than this.
const BATCH_TIME: Duration = Duration::from_micros(200);
const LARGEST_BATCH: usize = 4096;

/// Runs `op` for about `budget` (and at least `min` times); returns operations per second.
pub(crate) fn rate(budget: Duration, min: usize, mut op: impl FnMut() -> Res<()>) -> Res<f64> {
    let start = Instant::now();
    let mut n = 0usize;
    let mut batch = 1usize;
    let mut last = Duration::ZERO;
    loop {
        for _ in 0..batch {
            op()?;
        }
        n += batch;
        let now = start.elapsed();
        if n >= min && now >= budget {
            return Ok(n as f64 / now.as_secs_f64());
        }
        if now - last < BATCH_TIME {
            batch = (batch * 2).min(LARGEST_BATCH);
        }
        last = now;
    }
}

/// Like [`rate`], but `op` returns the duration of its measured part (untimed clean-up, e.g.
/// destroying the object just created, stays out of the figure).
pub(crate) fn rate_timed(
    budget: Duration,
    min: usize,
    mut op: impl FnMut() -> Res<Duration>,
) -> Res<f64> {
    let start = Instant::now();
    let mut n = 0usize;
    let mut timed = Duration::ZERO;
    while n < min || start.elapsed() < budget {
        timed += op()?;
        n += 1;
    }
    Ok(n as f64 / timed.as_secs_f64())
}

pub(crate) fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    // The samples are measured durations, never NaN.
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Cell {
    Val(f64, Vec<f64>),
    Na(String),
}

impl Cell {
    pub(crate) fn val(&self) -> Option<f64> {
        match self {
            Cell::Val(v, _) => Some(*v),
            Cell::Na(_) => None,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub(crate) op: String,
    pub(crate) kms: Cell,
    pub(crate) soft: Cell,
    pub(crate) raw: Cell,
}

pub(crate) type Runner<'a> = Box<dyn FnMut(Duration) -> Res<f64> + 'a>;

pub(crate) fn boxed<'a>(f: impl FnMut(Duration) -> Res<f64> + 'a) -> Runner<'a> {
    Box::new(f)
}

/// Measures one line: a warm-up, then `rounds` rounds; in each round kmshsm and SoftHSMv2
/// are measured back to back (order alternating between rounds), then the raw primitive.
pub(crate) fn line<'a>(
    cfg: &Cfg,
    op: &str,
    budget_factor: u32,
    mut kms: Option<Runner<'a>>,
    mut soft: Option<Runner<'a>>,
    mut raw: Option<Runner<'a>>,
) -> Row {
    let budget = cfg.budget * budget_factor;
    if cfg.only.as_ref().is_some_and(|o| !op.contains(o.as_str())) {
        kms = None;
        soft = None;
        raw = None;
    }
    eprint!("  {op:<62}");
    let mut samples: [Vec<f64>; 3] = Default::default();
    let mut errors: [Option<String>; 3] = Default::default();
    for round in 0..=cfg.rounds {
        let warm = round == 0;
        let b = if warm { budget / 4 } else { budget };
        let order: [usize; 3] = if round % 2 == 0 { [0, 1, 2] } else { [1, 0, 2] };
        for col in order {
            let r = match col {
                0 => kms.as_mut(),
                1 => soft.as_mut(),
                _ => raw.as_mut(),
            };
            let Some(r) = r else { continue };
            if errors[col].is_some() {
                continue;
            }
            match r(b) {
                Ok(v) if !warm => samples[col].push(v),
                Ok(_) => {}
                Err(e) => errors[col] = Some(e),
            }
        }
    }
    let cell = |col: usize, present: bool| -> Cell {
        if let Some(e) = &errors[col] {
            Cell::Na(e.clone())
        } else if !present || samples[col].is_empty() {
            Cell::Na(String::new())
        } else {
            Cell::Val(median(&samples[col]), samples[col].clone())
        }
    };
    let row = Row {
        op: op.to_string(),
        kms: cell(0, kms.is_some()),
        soft: cell(1, soft.is_some()),
        raw: cell(2, raw.is_some()),
    };
    eprintln!(
        "{:>12} {:>12} {:>12}",
        fmt_cell(&row.kms),
        fmt_cell(&row.soft),
        fmt_cell(&row.raw)
    );
    row
}

pub(crate) fn fmt_rate(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub(crate) fn fmt_cell(c: &Cell) -> String {
    match c {
        Cell::Val(v, _) => fmt_rate(*v),
        Cell::Na(e) if e.is_empty() => "—".into(),
        Cell::Na(_) => "error".into(),
    }
}
