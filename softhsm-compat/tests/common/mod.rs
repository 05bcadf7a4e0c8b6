//! Helpers of the SoftHSMv2 compatibility tests: where the two modules and the two tools
//! are, a private token directory per test for each, and child processes.
//!
//! Every test that loads a PKCS#11 module does it in a child process it spawns itself
//! (PKCS#11 state is per process), so the suite runs the same under `cargo nextest run`
//! and plain `cargo test`.

#![allow(dead_code)]

pub mod keys;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// Environment variable naming the kmshsm module (else the one built beside this crate).
pub const MODULE_ENV: &str = "KMSHSM_TEST_MODULE";
pub const CHILD_ENV: &str = "KMSHSM_COMPAT_CHILD";
pub const LINE_PREFIX: &str = "COMPAT-LINE ";

/// The two implementations under comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Module {
    SoftHsm,
    Kmshsm,
}

impl Module {
    pub const BOTH: [Module; 2] = [Module::SoftHsm, Module::Kmshsm];

    pub fn name(self) -> &'static str {
        match self {
            Module::SoftHsm => "softhsm",
            Module::Kmshsm => "kmshsm",
        }
    }

    pub fn from_name(name: &str) -> Module {
        match name {
            "softhsm" => Module::SoftHsm,
            "kmshsm" => Module::Kmshsm,
            other => panic!("unknown module {other}"),
        }
    }

    pub fn path(self) -> PathBuf {
        match self {
            Module::SoftHsm => {
                let p = PathBuf::from(SOFTHSM_MODULE);
                assert!(
                    p.exists(),
                    "{SOFTHSM_MODULE} is missing: apt-get install -y softhsm2"
                );
                p
            }
            Module::Kmshsm => kmshsm_module(),
        }
    }
}

/// The kmshsm module: `$KMSHSM_TEST_MODULE`, else the copy cargo built for this crate's
/// `kmshsm` dependency (the workspace's target/<profile>/deps/libkmshsm.so, same
/// sources), else the main crate's target/debug/libkmshsm.so.
pub fn kmshsm_module() -> PathBuf {
    if let Some(p) = std::env::var_os(MODULE_ENV) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let candidates = [
        deps.join("libkmshsm.so"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/libkmshsm.so"),
    ];
    candidates.into_iter().find(|p| p.exists()).expect(
        "libkmshsm.so not found: run `cargo build -p kmshsm-softhsm2-util` (or set KMSHSM_TEST_MODULE)",
    )
}

/// A private world for both modules: a token directory each, and the two configuration
/// files (kmshsm's with a cheap KDF, as the main suite's).
pub struct Env {
    pub dir: TempDir,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("kmshsm-compat-")
            .tempdir()
            .unwrap();
        let p = dir.path();
        std::fs::create_dir_all(p.join("softhsm-tokens")).unwrap();
        std::fs::write(
            p.join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                p.join("softhsm-tokens").display()
            ),
        )
        .unwrap();
        std::fs::write(
            p.join("kmshsm.toml"),
            format!(
                "token_dir = {:?}\nlog_level = \"error\"\nlog_file = {:?}\nmax_pin_failures = 0\n\n\
                 [kdf]\nmemory_kib = 1024\niterations = 1\nparallelism = 1\n",
                p.join("kmshsm-tokens").to_str().unwrap(),
                p.join("kmshsm.log").to_str().unwrap(),
            ),
        )
        .unwrap();
        Env { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Sets both configuration variables on `command`.
    pub fn apply(&self, command: &mut Command) {
        command
            .env("SOFTHSM2_CONF", self.path().join("softhsm2.conf"))
            .env("KMSHSM_CONF", self.path().join("kmshsm.toml"));
    }

    /// Sets both configuration variables in this process.
    pub fn activate(&self) {
        std::env::set_var("SOFTHSM2_CONF", self.path().join("softhsm2.conf"));
        std::env::set_var("KMSHSM_CONF", self.path().join("kmshsm.toml"));
    }
}

impl Default for Env {
    fn default() -> Self {
        Env::new()
    }
}

/// Re-runs this test binary for test `entry` only, with `CHILD_ENV=role`.
pub fn child(entry: &str, role: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", entry, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, role);
    command
}

pub fn child_role() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}

/// Prints one protocol line for the parent.
pub fn emit(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{LINE_PREFIX}{line}").unwrap();
    out.flush().unwrap();
}

/// The protocol lines of a child's output (the prefix may follow libtest's own text).
pub fn lines_of(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| {
            l.find(LINE_PREFIX)
                .map(|at| l[at + LINE_PREFIX.len()..].to_string())
        })
        .collect()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// `openssl` (the key files of the tool tests are made with it).
pub fn openssl(args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is missing: apt-get install -y openssl");
    assert!(status.status.success(), "openssl {args:?}: {status:?}");
}
