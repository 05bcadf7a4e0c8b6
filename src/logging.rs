//! The module's logger: level and destination come from the configuration.
//!
//! A library inside someone else's process: it writes only where it is told (a file, or
//! standard error), never panics while logging, and must never be handed key material,
//! PINs or token secrets. Callers log handles, names and return codes only.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use parking_lot::Mutex;

use crate::config::{Config, LogLevel};
use crate::error::{Error, Result};

struct Sink {
    file: Option<File>,
}

struct Logger {
    sink: Mutex<Sink>,
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
        let mut sink = self.sink.lock();
        // A failed log write must not fail the caller's operation.
        let _ = match sink.file.as_mut() {
            Some(f) => f.write_all(line.as_bytes()),
            None => std::io::stderr().write_all(line.as_bytes()),
        };
    }

    fn flush(&self) {
        if let Some(f) = self.sink.lock().file.as_mut() {
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
pub fn configure(config: &Config) -> Result<()> {
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
    LOGGER.sink.lock().file = file;
    install();
    log::set_max_level(filter(config.log_level));
    Ok(())
}

/// Logs at `warn` to standard error before any configuration is known, so that a broken
/// configuration file can still be reported.
pub fn install_default() {
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
