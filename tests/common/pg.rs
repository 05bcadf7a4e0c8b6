//! A private PostgreSQL cluster for tests: `initdb` into a temporary folder, the server
//! listening on 127.0.0.1 at a free port (and its socket in that folder), stopped and
//! removed when dropped. No system service is used. As root (CI), the server runs as the
//! `postgres` user that Debian's package makes: `initdb` and `postgres` refuse root.
//!
//! Missing binaries fail the test with the install hint; nothing is skipped. Used by the
//! integration tests (`mod common`) and, through `#[path]`, by the store's unit tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
const HINT: &str = "apt-get update && apt-get install -y postgresql-15 \
                    (or run scripts/install-test-deps.sh)";
/// The cluster's superuser; tests connect as it, without a password (trust on loopback).
pub const USER: &str = "kmshsm";

pub struct Cluster {
    dir: tempfile::TempDir,
    pub port: u16,
    run_as: Option<&'static str>,
    /// The server syncs its writes to disk (`fsync=on`), as in production; tests run
    /// without (faster, and a test never loses power).
    durable: bool,
    /// The server's `listen_addresses`.
    listen: std::cell::RefCell<String>,
}

/// The PostgreSQL program `tool` (`KMSHSM_PG_BIN`, or Debian's PostgreSQL 15 folder).
pub fn bin(tool: &str) -> PathBuf {
    let path = std::env::var_os("KMSHSM_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(BIN_DIR))
        .join(tool);
    assert!(
        path.is_file(),
        "PostgreSQL tests need {} (not found): install it with `{HINT}`",
        path.display()
    );
    path
}

pub fn is_root() -> bool {
    // The effective uid, from the proc file system (no libc call in a test helper).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl Cluster {
    /// A new cluster, started, not syncing to disk (for tests).
    pub fn start() -> Cluster {
        Cluster::start_with(false)
    }

    /// A new cluster, started, syncing every commit to disk as a production server does
    /// (for the benchmark).
    pub fn start_durable() -> Cluster {
        Cluster::start_with(true)
    }

    fn start_with(durable: bool) -> Cluster {
        let run_as = is_root().then_some("postgres");
        let dir = tempfile::Builder::new()
            .prefix("kmshsm-pg-")
            .tempdir()
            .unwrap();
        if let Some(user) = run_as {
            let out = Command::new("chown")
                .args([user, dir.path().to_str().unwrap()])
                .output()
                .unwrap();
            assert!(out.status.success(), "chown: {out:?}");
        }
        let cluster = Cluster {
            dir,
            port: free_port(),
            run_as,
            durable,
            listen: std::cell::RefCell::new("127.0.0.1".to_string()),
        };
        let data = cluster.data_dir();
        cluster.run_ok(
            &bin("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                USER,
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        cluster.start_server();
        cluster
    }

    /// A new cluster that accepts TCP connections over TLS only (`hostssl`; plain ones
    /// are rejected), with a server certificate for IP 127.0.0.1 issued by a test CA
    /// made for it: [`Cluster::ca_file`] holds that CA's certificate.
    pub fn start_tls() -> Cluster {
        let cluster = Cluster::start();
        cluster.stop_server();
        let dir = cluster.dir.path();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .current_dir(dir)
                .args(args)
                .output()
                .expect("openssl (apt-get install openssl)");
            assert!(out.status.success(), "openssl {args:?}: {out:?}");
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"],
                &ec[..],
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.crt",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=kmshsm test CA",
                ],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req"],
                &ec[..],
                &[
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=127.0.0.1",
                ],
            ]
            .concat(),
        );
        std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ]);
        for file in ["server.key", "server.crt"] {
            let to = cluster.data_dir().join(file);
            std::fs::copy(dir.join(file), &to).unwrap();
            if let Some(user) = cluster.run_as {
                let out = Command::new("chown")
                    .args([user, to.to_str().unwrap()])
                    .output()
                    .unwrap();
                assert!(out.status.success(), "chown: {out:?}");
            }
            let out = Command::new("chmod")
                .args(["600", to.to_str().unwrap()])
                .output()
                .unwrap();
            assert!(out.status.success(), "chmod: {out:?}");
        }
        let conf = cluster.data_dir().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(&conf, text).unwrap();
        std::fs::write(
            cluster.data_dir().join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostnossl all all 127.0.0.1/32 reject\n",
        )
        .unwrap();
        cluster.start_server();
        cluster
    }

    /// Restarts the server listening on every address too, and trusting connections from
    /// `cidr` (hosts in other network namespaces, reaching it over virtual links).
    pub fn open_to(&self, cidr: &str) {
        let hba = self.data_dir().join("pg_hba.conf");
        let mut text = std::fs::read_to_string(&hba).unwrap();
        text.push_str(&format!("host all all {cidr} trust\n"));
        std::fs::write(&hba, text).unwrap();
        *self.listen.borrow_mut() = "*".to_string();
        self.restart_server();
    }

    /// The certificate of the CA that issued a [`Cluster::start_tls`] server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A connection URL for database `db` (the `postgres` database when `None`).
    pub fn url(&self, db: Option<&str>) -> String {
        format!(
            "postgresql://{USER}@127.0.0.1:{}/{}?sslmode=disable",
            self.port,
            db.unwrap_or("postgres")
        )
    }

    /// A new empty database; answers its URL.
    pub fn database(&self, name: &str) -> String {
        self.run_ok(
            &bin("createdb"),
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                USER,
                name,
            ],
        );
        self.url(Some(name))
    }

    fn command(&self, program: &Path, args: &[&str]) -> Command {
        match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(program).args(args);
                c
            }
            None => {
                let mut c = Command::new(program);
                c.args(args);
                c
            }
        }
    }

    fn run_ok(&self, program: &Path, args: &[&str]) -> Output {
        let out = self.command(program, args).output().unwrap();
        assert!(
            out.status.success(),
            "{} {args:?} failed: {}{}",
            program.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Starts the server (again) on the same port and data.
    pub fn start_server(&self) {
        let options = format!(
            "-c listen_addresses={} -c port={} -c unix_socket_directories={} \
             -c fsync={} -c max_connections=200 -c shared_buffers=16MB",
            self.listen.borrow(),
            self.port,
            self.socket_dir().display(),
            if self.durable { "on" } else { "off" }
        );
        let log = self.dir.path().join("server.log");
        self.run_ok(
            &bin("pg_ctl"),
            &[
                "-D",
                self.data_dir().to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
    }

    /// Stops the server (`fast`: open connections are ended, nothing committed lost).
    pub fn stop_server(&self) {
        self.run_ok(
            &bin("pg_ctl"),
            &[
                "-D",
                self.data_dir().to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
    }

    pub fn restart_server(&self) {
        self.stop_server();
        self.start_server();
    }

    /// Waits until `f` holds, up to `limit`.
    pub fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .command(
                &bin("pg_ctl"),
                &[
                    "-D",
                    self.data_dir().to_str().unwrap(),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
            )
            .output();
    }
}

impl Cluster {
    /// The server's processes: the postmaster (from `postmaster.pid`) and its children.
    fn server_pids(&self) -> Vec<u32> {
        let text = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).unwrap();
        let main: u32 = text.lines().next().unwrap().trim().parse().unwrap();
        let mut pids = vec![main];
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // The parent pid is the second field after the parenthesised command name.
            let after = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
            let ppid = after
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(main) {
                pids.push(pid);
            }
        }
        pids
    }

    /// Freezes (`SIGSTOP`) or thaws (`SIGCONT`) every process of this server: the host
    /// still answers TCP, nobody answers queries.
    pub fn freeze(&self, frozen: bool) {
        let signal = if frozen { "-STOP" } else { "-CONT" };
        for pid in self.server_pids() {
            let _ = Command::new("kill")
                .args([signal, &pid.to_string()])
                .status();
        }
    }
}

impl Cluster {
    /// `pg_dump` of database `db`, as plain SQL (bytea values as hex): what a database
    /// administrator sees.
    pub fn dump(&self, db: &str) -> Vec<u8> {
        self.run_ok(
            &bin("pg_dump"),
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                USER,
                "-d",
                db,
            ],
        )
        .stdout
    }

    /// Runs `sql` (one or more statements, in one transaction) in database `db` as the
    /// owner, answering what it prints: unaligned rows, `|` between columns.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let out = self.run_ok(
            &bin("psql"),
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                USER,
                "-d",
                db,
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Asks the server to write everything to its data files (`CHECKPOINT`).
    pub fn checkpoint(&self) {
        self.run_ok(
            &bin("psql"),
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                USER,
                "-d",
                "postgres",
                "-c",
                "CHECKPOINT",
            ],
        );
    }
}
