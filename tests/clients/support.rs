//! Helpers shared by the real-client tests (tests/clients_*.rs): a token set up and
//! released so an outside program can open it, and running outside programs with a time
//! limit, their output kept for the failure message together with the module's log.
//!
//! Included by each clients_*.rs file as `#[path = "clients/support.rs"] mod support;`
//! after `mod common;`. Every program is found with [`require_tool`], so a missing one
//! fails the test with the package that provides it.

#![allow(dead_code)]

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// How long one client command may take before the test fails (RSA key generation in a
/// debug build of the module is the slowest step: a few seconds).
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// A token labelled [`TOKEN_LABEL`] with both PINs set, in a fresh environment whose
/// configuration logs failing PKCS#11 calls at debug level; the module is finalised
/// again so the outside program is the only one holding the token. `KMSHSM_CONF` is
/// set in this process, so every program started from here inherits it.
pub fn released_token() -> TestEnv {
    let env = TestEnv::with_options(Options {
        log_level: "debug",
        ..Options::default()
    });
    let ctx = env.load();
    init_token(&ctx);
    ctx.finalize().expect("C_Finalize");
    env
}

/// The slot ID of the token labelled [`TOKEN_LABEL`], as PKCS#11 numbers it.
pub fn token_slot_id(env: &TestEnv) -> u64 {
    let ctx = env.load();
    let id = slot_of_token(&ctx, TOKEN_LABEL).id();
    ctx.finalize().expect("C_Finalize");
    id
}

/// What a finished program left.
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Standard output and standard error, for messages.
    pub fn text(&self) -> String {
        format!(
            "--- exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// A program to run: the command, and what to say about it.
pub struct Program {
    command: Command,
    shown: String,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
}

impl Program {
    /// `tool` from PATH (the test fails naming `package` when it is missing).
    pub fn new(tool: &str, package: &str) -> Self {
        Self::at(&require_tool(tool, package))
    }

    /// The program at `path`.
    pub fn at(path: &Path) -> Self {
        Program {
            command: Command::new(path),
            shown: path.display().to_string(),
            stdin: None,
            timeout: TIMEOUT,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Self {
        self.shown.push(' ');
        self.shown.push_str(&arg.as_ref().to_string_lossy());
        self.command.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        for arg in args {
            self = self.arg(arg);
        }
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.command.current_dir(dir);
        self
    }

    pub fn stdin(mut self, bytes: &[u8]) -> Self {
        self.stdin = Some(bytes.to_vec());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The command line, for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Runs to completion within the time limit (killed and failed otherwise).
    pub fn run(mut self) -> Output {
        let mut out = tempfile::tempfile().expect("temporary file");
        let mut err = tempfile::tempfile().expect("temporary file");
        self.command
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(out.try_clone().unwrap())
            .stderr(err.try_clone().unwrap());
        let mut child = self
            .command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.shown));
        if let Some(bytes) = self.stdin.take() {
            let mut pipe = child.stdin.take().unwrap();
            // A program that exits without reading is not an error here.
            let _ = pipe.write_all(&bytes);
        }
        let status = wait_within(&mut child, self.timeout).unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} did not finish within {:?}:\n{}",
                self.shown,
                self.timeout,
                read_all(&mut out, &mut err)
            )
        });
        let (stdout, stderr) = read_pair(&mut out, &mut err);
        Output {
            status,
            stdout,
            stderr,
        }
    }

    /// Runs and requires success; the failure message holds the output and the module's
    /// log (failing `C_*` calls with their return codes).
    pub fn ok(self, env: &TestEnv) -> Output {
        let shown = self.shown.clone();
        let output = self.run();
        assert!(
            output.success(),
            "{shown} failed:\n{}\n--- kmshsm log (failing PKCS#11 calls)\n{}",
            output.text(),
            log_tail(env)
        );
        output
    }

    /// Starts in the background, standard output piped (for servers).
    pub fn spawn(mut self) -> Child {
        self.command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.shown))
    }
}

fn wait_within(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_pair(out: &mut std::fs::File, err: &mut std::fs::File) -> (String, String) {
    let read = |f: &mut std::fs::File| {
        let mut bytes = Vec::new();
        f.rewind().unwrap();
        f.read_to_end(&mut bytes).unwrap();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    (read(out), read(err))
}

fn read_all(out: &mut std::fs::File, err: &mut std::fs::File) -> String {
    let (o, e) = read_pair(out, err);
    format!("--- stdout\n{o}\n--- stderr\n{e}")
}

/// The last lines of the module's log.
pub fn log_tail(env: &TestEnv) -> String {
    let log = env.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// pkcs11-tool on the module under test and the test token, logged in as the user.
pub fn pkcs11_tool() -> Program {
    Program::new("pkcs11-tool", "opensc")
        .arg("--module")
        .arg(module_path())
        .args(["--token-label", TOKEN_LABEL, "--login", "--pin", USER_PIN])
}

/// openssl with no engine configuration of its own.
pub fn openssl_cli() -> Program {
    Program::new("openssl", "openssl").env("OPENSSL_CONF", "/dev/null")
}

/// The `kmshsm` command line of this build, with the user PIN in `KMSHSM_PIN`.
pub fn kmshsm_cli() -> Program {
    Program::at(Path::new(env!("CARGO_BIN_EXE_kmshsm"))).env("KMSHSM_PIN", USER_PIN)
}

/// Runs a `kmshsm` command that must succeed and returns its JSON answer.
pub fn cli_json(env: &TestEnv, args: &[&str]) -> serde_json::Value {
    let out = kmshsm_cli().args(args).ok(env);
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("kmshsm {args:?} printed no JSON ({e}): {}", out.stdout))
}

/// Runs a `kmshsm` command that must fail and returns the `Code` of its error.
pub fn cli_error(args: &[&str], extra_env: &[(&str, &str)]) -> String {
    let mut program = kmshsm_cli().args(args);
    for (k, v) in extra_env {
        program = program.env(k, v);
    }
    let out = program.run();
    assert!(!out.success(), "kmshsm {args:?} should have failed");
    let json: serde_json::Value = serde_json::from_str(&out.stderr).unwrap_or_else(|e| {
        panic!(
            "kmshsm {args:?} printed no JSON error ({e}): {}",
            out.stderr
        )
    });
    json["Code"].as_str().unwrap_or_default().to_owned()
}

/// A string field of a JSON answer.
pub fn field(json: &serde_json::Value, path: &[&str]) -> String {
    let mut v = json;
    for p in path {
        v = &v[*p];
    }
    v.as_str()
        .unwrap_or_else(|| panic!("no string at {path:?} in {json}"))
        .to_owned()
}

/// A file in the environment's directory holding `bytes`; its path.
pub fn write_file(env: &TestEnv, name: &str, bytes: &[u8]) -> PathBuf {
    let path = env.dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A path in the environment's directory (not created).
pub fn path_in(env: &TestEnv, name: &str) -> PathBuf {
    env.dir.path().join(name)
}

/// The path as text (all test paths are UTF-8).
pub fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn unb64(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap_or_else(|e| panic!("not base64 ({e}): {text}"))
}

/// `n` random bytes from the system.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    bytes
}

/// Unix time now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Kills and reaps a background child when dropped (servers started by a test).
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
