//! The module's logger: level and destination come from the configuration.
//!
//! A library inside someone else's process: it writes only where it is told (a file, or
//! standard error), never panics while logging, and must never be handed key material,
//! PINs or token secrets. Callers log handles, names and return codes only.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::config::{Config, LogLevel};
use crate::error::{Error, Result};

struct Sink {
    file: Option<File>,
}

/// The sink's lock is a `std` (futex) lock so that a forked child can release it with
/// nothing but the lock itself (see [`ForkHold`]).
struct Logger {
    sink: Mutex<Sink>,
}

impl Logger {
    /// The sink; poisoning is ignored (a log write leaves no half-changed state).
    fn sink(&self) -> MutexGuard<'_, Sink> {
        self.sink.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The logger's lock, held across a `fork()` so that no other thread of the parent is
/// half-way through a log line when the child is made (the child would otherwise find
/// the lock taken forever). Dropping it releases the lock, in the parent and the child.
pub(crate) struct ForkHold {
    _sink: MutexGuard<'static, Sink>,
}

impl std::fmt::Debug for ForkHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ForkHold")
    }
}

/// Takes the logger's lock for the duration of a `fork()`.
pub(crate) fn hold_for_fork() -> ForkHold {
    ForkHold {
        _sink: LOGGER.sink(),
    }
}

static LOGGER: Logger = Logger {
    sink: Mutex::new(Sink { file: None }),
};

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!(
            "kmshsm[{}] {}: {}\n",
            std::process::id(),
            record.level(),
            record.args()
        );
        let mut sink = self.sink();
        // A failed log write must not fail the caller's operation.
        let _ = match sink.file.as_mut() {
            Some(f) => f.write_all(line.as_bytes()),
            None => std::io::stderr().write_all(line.as_bytes()),
        };
    }

    fn flush(&self) {
        if let Some(f) = self.sink().file.as_mut() {
            let _ = f.flush();
        }
    }
}

fn filter(level: LogLevel) -> log::LevelFilter {
    match level {
        LogLevel::Off => log::LevelFilter::Off,
        LogLevel::Error => log::LevelFilter::Error,
        LogLevel::Warn => log::LevelFilter::Warn,
        LogLevel::Info => log::LevelFilter::Info,
        LogLevel::Debug => log::LevelFilter::Debug,
        LogLevel::Trace => log::LevelFilter::Trace,
    }
}

/// Points the logger at the configured destination. Safe to call on every `C_Initialize`.
pub(crate) fn configure(config: &Config) -> Result<()> {
    let file = match &config.log_file {
        Some(path) => Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| {
                    Error::Config(format!("cannot open log file {}: {e}", path.display()))
                })?,
        ),
        None => None,
    };
    LOGGER.sink().file = file;
    install();
    log::set_max_level(filter(config.log_level));
    Ok(())
}

/// Logs at `warn` to standard error before any configuration is known, so that a broken
/// configuration file can still be reported.
pub(crate) fn install_default() {
    install();
    if log::max_level() == log::LevelFilter::Off {
        log::set_max_level(log::LevelFilter::Warn);
    }
}

fn install() {
    // Fails only when a logger is already set: ours from an earlier C_Initialize, or the
    // host's when the crate is linked as an rlib. Either way the existing one stays.
    let _ = log::set_logger(&LOGGER);
}
