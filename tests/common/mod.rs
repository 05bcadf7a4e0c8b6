//! Shared helpers for the integration tests: finding and loading the module under test,
//! writing its configuration, setting up tokens, the few raw PKCS#11 calls the `cryptoki`
//! crate cannot express, and re-executing the test binary as a child process.
//!
//! The runner is `cargo nextest run`. It runs every test in its own process, and that is what
//! lets each test point `KMSHSM_CONF` at its own temporary token directory and call
//! `C_Initialize`: PKCS#11 state is per process. Under plain `cargo test` the tests of one
//! file share a process and trip over each other's `C_Initialize`; use nextest.
//!
//! The module is `target/<profile>/libkmshsm.so` beside the test binary's `deps/` directory,
//! or whatever `KMSHSM_TEST_MODULE` names. When that path contains "softhsm" the helpers also
//! write a SoftHSMv2 configuration, so the module-independent tests can be checked against
//! libsofthsm2.so. Where the kmshsm contract and SoftHSMv2 differ, the tests follow the
//! contract; [`is_softhsm`] lets a test say so in its failure message.
//!
//! This module must not hold policy of its own: expectations live in the test files.

#![allow(dead_code)]

pub mod audit;
pub mod duties;
pub mod hostile;
pub mod kms;
pub mod material;
pub mod mech;
pub mod memory;
pub mod pg;
pub mod race;
pub mod raw;
pub mod records;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use tempfile::TempDir;

/// SO PIN of every token the helpers initialise.
pub const SO_PIN: &str = "so-pin-0000";
/// User PIN set by [`init_token`].
pub const USER_PIN: &str = "user-pin-1111";
/// Label given by [`init_token`].
pub const TOKEN_LABEL: &str = "kmshsm-test";
/// Lockout threshold written into the default test configuration.
pub const MAX_PIN_FAILURES: u32 = 3;

/// Environment variable naming the module under test (overrides the built library).
pub const MODULE_ENV: &str = "KMSHSM_TEST_MODULE";
/// Environment variable selecting a child-process role (see [`child_command`]).
pub const CHILD_ROLE_ENV: &str = "KMSHSM_TEST_CHILD_ROLE";
/// Lines a child prints for its parent start with this, so libtest's own output is ignored.
pub const CHILD_LINE_PREFIX: &str = "KMSHSM-CHILD ";

/// Path of the PKCS#11 module under test.
pub fn module_path() -> PathBuf {
    if let Some(path) = std::env::var_os(MODULE_ENV) {
        return PathBuf::from(path);
    }
    // The test binary is target/<profile>/deps/<name>-<hash>.
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary is not inside target/<profile>/deps");
    let path = profile_dir.join("libkmshsm.so");
    assert!(
        path.exists(),
        "{} does not exist: build the library first (cargo build), or set {MODULE_ENV}",
        path.display()
    );
    assert_module_is_current(&path);
    path
}

/// `cargo test` and `cargo nextest run` build the test binaries and the rlib, not the
/// cdylib the tests load: without `cargo build --lib` first, they would test an old
/// module and pass or fail for the wrong reason. Refuse a module older than the sources
/// (the unit-test modules, `*tests.rs`, left out).
fn assert_module_is_current(module: &Path) {
    static CHECKED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    CHECKED.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let built = modified(module).expect("module mtime");
        let mut newest = None;
        let mut pending = vec![root.join("src"), root.join("Cargo.toml"), root.join("build.rs")];
        // The command-line tool's sources (src/bin) are not the library's.
        let tool = root.join("src/bin");
        while let Some(p) = pending.pop() {
            if p == tool {
                continue;
            }
            if let Ok(entries) = std::fs::read_dir(&p) {
                pending.extend(entries.flatten().map(|e| e.path()));
            } else if p.to_string_lossy().ends_with("tests.rs") {
                // A unit-test module (`#[cfg(test)]`, this crate's naming): not in the
                // library, so a rebuild of it would not make the library newer.
                continue;
            } else if let Some(t) = modified(&p) {
                if newest.as_ref().is_none_or(|(n, _)| t > *n) {
                    newest = Some((t, p));
                }
            }
        }
        if let Some((t, source)) = newest {
            assert!(
                t <= built,
                "{} is older than {}: run `cargo build --lib` before the tests (scripts/test.sh does)",
                module.display(),
                source.display()
            );
        }
    });
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Whether the module under test is SoftHSMv2 (used to check the tests' own expectations).
pub fn is_softhsm() -> bool {
    module_path().to_string_lossy().contains("softhsm")
}

/// Knobs of the configuration written by [`TestEnv::with_options`].
#[derive(Clone, Debug)]
pub struct Options {
    pub max_pin_failures: u32,
    pub log_level: &'static str,
    /// Create the token directory before loading (kmshsm must create it itself otherwise).
    pub create_token_dir: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_pin_failures: MAX_PIN_FAILURES,
            log_level: "warn",
            create_token_dir: false,
        }
    }
}

/// The configuration of `env` with PIN lockout limit `max` and PIN records whose Argon2id
/// costs `memory_kib` KiB and `iterations` passes. Each record keeps the parameters it
/// was written with, so a costly one keeps an attempt at it in flight for as long as it
/// derives, whichever process tries it.
pub fn kdf_config(env: &TestEnv, max: u32, memory_kib: u32, iterations: u32) -> String {
    format!(
        "token_dir = {:?}\nlog_level = \"warn\"\nlog_file = {:?}\nmax_pin_failures = {max}\n\n\
         [kdf]\nmemory_kib = {memory_kib}\niterations = {iterations}\nparallelism = 1\n",
        env.token_dir.to_str().unwrap(),
        env.log_path.to_str().unwrap(),
    )
}

/// The user PIN flags `C_GetTokenInfo` reports: (count low, final try, locked).
pub fn user_flags(ctx: &Pkcs11, slot: Slot) -> (bool, bool, bool) {
    let info = ctx.get_token_info(slot).unwrap();
    (
        info.user_pin_count_low(),
        info.user_pin_final_try(),
        info.user_pin_locked(),
    )
}

/// One test's private world: a temporary directory holding the configuration, the token
/// directory and the log file. Dropping it deletes everything.
pub struct TestEnv {
    pub dir: TempDir,
    pub token_dir: PathBuf,
    pub conf_path: PathBuf,
    pub log_path: PathBuf,
    /// The private PostgreSQL server whose database holds the tokens, for
    /// [`TestEnv::postgres`]; stopped when the environment is dropped (after the test's
    /// module context, declared later, has been finalised).
    pub pg: Option<pg::Cluster>,
    /// The `store_url` written into the configuration, if any.
    pub store_url: Option<String>,
}

impl TestEnv {
    /// A fresh environment with the default (cheap KDF) configuration, already activated.
    pub fn new() -> Self {
        Self::with_options(Options::default())
    }

    /// A fresh environment with the given configuration knobs, already activated.
    pub fn with_options(options: Options) -> Self {
        Self::build(options, None)
    }

    /// A fresh environment whose tokens live in a database of a private PostgreSQL
    /// server started for it (`common/pg.rs`), already activated. `postgres_table` is
    /// the body of the configuration's `[postgres]` table.
    pub fn postgres_with(options: Options, postgres_table: &str) -> Self {
        let cluster = pg::Cluster::start();
        let url = cluster.database("kmshsm");
        let mut env = Self::build(options, Some((&url, postgres_table)));
        env.pg = Some(cluster);
        env.store_url = Some(url);
        env
    }

    /// An environment whose tokens live in database `db` of the running `cluster`,
    /// reached by `url` (`common/pg.rs`), already activated.
    pub fn postgres_on(cluster: pg::Cluster, url: &str, postgres_table: &str) -> Self {
        let mut env = Self::build(Options::default(), Some((url, postgres_table)));
        env.pg = Some(cluster);
        env.store_url = Some(url.to_string());
        env
    }

    /// [`TestEnv::postgres_with`] with the default options and `[postgres]` table.
    pub fn postgres() -> Self {
        Self::postgres_with(Options::default(), "")
    }

    fn build(options: Options, store: Option<(&str, &str)>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("kmshsm-test-")
            .tempdir()
            .expect("tempdir");
        let token_dir = dir.path().join("tokens");
        let conf_path = dir.path().join("kmshsm.toml");
        let log_path = dir.path().join("kmshsm.log");
        let env = TestEnv {
            dir,
            token_dir,
            conf_path,
            log_path,
            pg: None,
            store_url: None,
        };
        let (store_url, postgres_table) = match store {
            Some((url, table)) => (
                format!("store_url = {url:?}\n"),
                format!("\n[postgres]\n{table}\n"),
            ),
            None => (String::new(), String::new()),
        };
        env.write_config(&format!(
            "token_dir = {token_dir:?}\n\
             log_level = {level:?}\n\
             log_file = {log:?}\n\
             max_pin_failures = {max}\n\
             {store_url}\
             \n\
             [kdf]\n\
             memory_kib = 1024\n\
             iterations = 1\n\
             parallelism = 1\n\
             {postgres_table}",
            token_dir = env.token_dir.to_str().unwrap(),
            level = options.log_level,
            log = env.log_path.to_str().unwrap(),
            max = options.max_pin_failures,
        ));
        if options.create_token_dir || is_softhsm() {
            // SoftHSMv2 refuses to start without an existing token directory.
            std::fs::create_dir_all(&env.token_dir).unwrap();
        }
        let softhsm_conf = env.dir.path().join("softhsm2.conf");
        std::fs::write(
            &softhsm_conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                env.token_dir.display()
            ),
        )
        .unwrap();
        env.activate();
        env
    }

    /// Replaces the kmshsm configuration file with `text` (for the bad-configuration tests).
    pub fn write_config(&self, text: &str) {
        std::fs::write(&self.conf_path, text).unwrap();
    }

    /// Points this process (and children it spawns later) at this environment.
    pub fn activate(&self) {
        std::env::set_var("KMSHSM_CONF", &self.conf_path);
        std::env::set_var("SOFTHSM2_CONF", self.dir.path().join("softhsm2.conf"));
    }

    /// Loads the module and calls C_Initialize.
    pub fn load(&self) -> Pkcs11 {
        self.activate();
        let ctx = load_module();
        initialize(&ctx).expect("C_Initialize");
        ctx
    }

    /// The log file's contents ("" if the module has not written it).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Every regular file under the token directory, recursively, sorted.
    pub fn token_files(&self) -> Vec<PathBuf> {
        files_under(&self.token_dir)
    }

    /// The single token database (`<serial>.db`) in the token directory.
    pub fn token_database(&self) -> PathBuf {
        let dbs: Vec<PathBuf> = self
            .token_files()
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "db"))
            .collect();
        assert_eq!(
            dbs.len(),
            1,
            "expected exactly one .db file in the token directory: {dbs:?}"
        );
        dbs.into_iter().next().unwrap()
    }
}

/// Every regular file under `dir`, recursively, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, &mut files);
    files.sort();
    files
}

/// Loads the module without initialising it.
pub fn load_module() -> Pkcs11 {
    let path = module_path();
    Pkcs11::new(&path).unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()))
}

/// C_Initialize with OS locking, as most applications call it.
pub fn initialize(ctx: &Pkcs11) -> cryptoki::error::Result<()> {
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
}

/// The PKCS#11 return code of a call that must fail; panics if it succeeded or failed
/// outside PKCS#11.
pub fn rv<T: std::fmt::Debug>(result: cryptoki::error::Result<T>) -> RvError {
    match result {
        Err(Error::Pkcs11(rv, _)) => rv,
        Err(other) => panic!("expected a PKCS#11 error, got {other:?}"),
        Ok(value) => panic!("expected a PKCS#11 error, the call succeeded with {value:?}"),
    }
}

/// Asserts that `expr` fails with the PKCS#11 code `expected`.
#[macro_export]
macro_rules! assert_rv {
    ($expr:expr, $expected:expr $(,)?) => {{
        let got = $crate::common::rv($expr);
        assert_eq!(got, $expected, "{} returned {:?}", stringify!($expr), got);
    }};
    ($expr:expr, $expected:expr, $($msg:tt)+) => {{
        let got = $crate::common::rv($expr);
        assert_eq!(got, $expected, $($msg)+);
    }};
}

pub fn pin(text: &str) -> AuthPin {
    AuthPin::from(text)
}

/// The slot holding the uninitialised token (the contract: first slot with a token on a
/// fresh token directory; in general, the one whose token is not initialised).
pub fn free_slot(ctx: &Pkcs11) -> Slot {
    ctx.get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|slot| !ctx.get_token_info(*slot).unwrap().token_initialized())
        .expect("no slot with an uninitialised token")
}

/// Initialises the free token with [`SO_PIN`] and the given label, and sets [`USER_PIN`].
pub fn init_token_labelled(ctx: &Pkcs11, label: &str) -> Slot {
    let slot = free_slot(ctx);
    ctx.init_token(slot, &pin(SO_PIN), label)
        .expect("C_InitToken");
    let session = ctx.open_rw_session(slot).expect("C_OpenSession");
    session
        .login(UserType::So, Some(&pin(SO_PIN)))
        .expect("C_Login(SO)");
    session.init_pin(&pin(USER_PIN)).expect("C_InitPIN");
    session.logout().expect("C_Logout");
    session.close().expect("C_CloseSession");
    slot
}

/// Initialises the free token as [`TOKEN_LABEL`] with both PINs set.
pub fn init_token(ctx: &Pkcs11) -> Slot {
    init_token_labelled(ctx, TOKEN_LABEL)
}

/// The slot of the initialised token labelled `label` (slot IDs are looked up, not assumed).
/// The serial of the initialised token labelled `label` of `env` (the module loaded,
/// asked, and finalised again).
pub fn token_serial(env: &TestEnv, label: &str) -> String {
    let ctx = env.load();
    let slot = slot_of_token(&ctx, label);
    let serial = ctx
        .get_token_info(slot)
        .unwrap()
        .serial_number()
        .trim()
        .to_string();
    ctx.finalize().unwrap();
    serial
}

pub fn slot_of_token(ctx: &Pkcs11, label: &str) -> Slot {
    ctx.get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|slot| ctx.get_token_info(*slot).unwrap().label() == label)
        .unwrap_or_else(|| panic!("no initialised token labelled {label:?}"))
}

/// A read-write session logged in as the normal user.
pub fn user_session(ctx: &Pkcs11, slot: Slot) -> Session {
    let session = ctx.open_rw_session(slot).expect("C_OpenSession");
    session
        .login(UserType::User, Some(&pin(USER_PIN)))
        .expect("C_Login(USER)");
    session
}

/// Loads, initialises, sets up a token and returns a logged-in read-write user session.
pub fn ready_token(env: &TestEnv) -> (Pkcs11, Slot, Session) {
    let ctx = env.load();
    let slot = init_token(&ctx);
    let session = user_session(&ctx, slot);
    (ctx, slot, session)
}

/// What the module logs when an administrator's constraint on the PostgreSQL PIN records
/// makes the module's own write fail: the constraint `admin_rule` with `check` (the SQL
/// after `CHECK`, added `NOT VALID`) goes on `kmshsm_pins` of a ready token, and three
/// wrong-PIN logins on another session must each answer `CKR_DEVICE_ERROR`. Returns the log
/// after the module is finalised, and the hex of every wrapped PIN key the table held
/// (each long enough to search the log for).
pub fn log_after_a_refused_pin_write(check: &str) -> (String, Vec<String>) {
    let env = TestEnv::postgres();
    let (ctx, slot, session) = ready_token(&env);
    session.logout().unwrap();
    let cluster = env.pg.as_ref().unwrap();
    let wrapped = cluster.sql(
        "kmshsm",
        "SELECT encode(wrapped_key, 'hex') FROM kmshsm_pins",
    );
    let wrapped: Vec<String> = wrapped.split_whitespace().map(str::to_owned).collect();
    assert!(
        !wrapped.is_empty() && wrapped.iter().all(|w| w.len() >= 32),
        "the PIN records hold no wrapped key: the test is blind"
    );
    cluster.sql(
        "kmshsm",
        &format!("ALTER TABLE kmshsm_pins ADD CONSTRAINT admin_rule CHECK ({check}) NOT VALID"),
    );
    let other = ctx.open_ro_session(slot).unwrap();
    // The wrong PIN's count cannot be written: the login fails closed, each time.
    for _ in 0..3 {
        assert_rv!(
            other.login(UserType::User, Some(&pin("wrong-pin-9999"))),
            RvError::DeviceError
        );
    }
    drop(other);
    drop(session);
    drop(ctx);
    (env.log(), wrapped)
}

/// Decodes a hex string (test constants only).
pub fn hex(text: &str) -> Vec<u8> {
    assert!(text.len() % 2 == 0, "odd hex length");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// Encodes bytes as lower-case hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Template of an AES secret key with the given value. Extractable, so that tests can read
/// the value back (CKA_EXTRACTABLE defaults to false, as in SoftHSMv2).
pub fn aes_template(label: &str, value: &[u8], token: bool) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(token),
        Attribute::Extractable(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Value(value.to_vec()),
    ]
}

/// Template of a public data object.
pub fn data_template(label: &str, value: &[u8], token: bool) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(token),
        Attribute::Private(false),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Application(b"kmshsm tests".to_vec()),
        Attribute::Value(value.to_vec()),
    ]
}

/// Handles of the objects visible in `session` whose CKA_LABEL is `label`.
pub fn find_by_label(session: &Session, label: &str) -> Vec<ObjectHandle> {
    session
        .find_objects(&[Attribute::Label(label.as_bytes().to_vec())])
        .expect("C_FindObjects")
}

/// One attribute's value as raw bytes (panics if unavailable).
pub fn attribute_bytes(session: &Session, object: ObjectHandle, ty: AttributeType) -> Vec<u8> {
    let mut values = session
        .get_attributes(object, &[ty])
        .expect("C_GetAttributeValue");
    assert_eq!(values.len(), 1, "attribute {ty:?} unavailable");
    let value = values.remove(0);
    let raw: cryptoki_sys::CK_ATTRIBUTE = (&value).into();
    // SAFETY: `raw` points into `value`, which lives until the end of this function.
    unsafe { std::slice::from_raw_parts(raw.pValue as *const u8, raw.ulValueLen as usize) }.to_vec()
}

/// One CK_BBOOL attribute.
pub fn attribute_bool(session: &Session, object: ObjectHandle, ty: AttributeType) -> bool {
    let bytes = attribute_bytes(session, object, ty);
    assert_eq!(bytes.len(), 1, "{ty:?} is not a CK_BBOOL");
    bytes[0] != 0
}

// ---------------------------------------------------------------------------------------
// Child processes

/// The role this process was started in, if it is a child (see [`child_command`]).
pub fn child_role() -> Option<String> {
    std::env::var(CHILD_ROLE_ENV).ok()
}

/// A command re-running this test binary so that only the test `entry` runs, with
/// `CHILD_ROLE_ENV=role`. The child inherits the environment, hence `KMSHSM_CONF`.
/// `entry` must be a test marked `#[ignore]` (it is not a test of its own: `cargo test` and
/// nextest leave it out; `--ignored` runs it here) that returns at once when
/// [`child_role`] is `None`.
pub fn child_command(entry: &str, role: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--ignored",
            "--exact",
            entry,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ROLE_ENV, role);
    command
}

/// The lines a child writes to its piped standard output.
pub type ChildLines = std::io::Lines<std::io::BufReader<std::process::ChildStdout>>;

/// Spawns `commands` (children of [`child_command`]) with standard output piped, and
/// waits until each has said `ready` ([`tell_parent`]): the children, and the rest of
/// each one's output.
pub fn spawn_ready(
    commands: impl IntoIterator<Item = Command>,
) -> (Vec<std::process::Child>, Vec<ChildLines>) {
    use std::io::{BufRead, BufReader};
    let mut children: Vec<_> = commands
        .into_iter()
        .map(|mut command| {
            command
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut outputs: Vec<_> = children
        .iter_mut()
        .map(|c| BufReader::new(c.stdout.take().unwrap()).lines())
        .collect();
    for lines in &mut outputs {
        let ready = lines.find_map(|l| child_line(&l.unwrap()).map(str::to_owned));
        assert_eq!(ready.as_deref(), Some("ready"), "a child did not start");
    }
    (children, outputs)
}

/// Asserts that a child ended by the SIGKILL the test sent it: not by finishing, not by a
/// panic or another failure of its own (which would end it with a status, not signal 9).
pub fn assert_killed(status: std::process::ExitStatus, what: &str) {
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(9),
        "{what}: the child was not ended by our SIGKILL but with {status} \
         (it finished or failed before the kill)"
    );
}

/// In a child process: takes over the token in `slot`, re-initialised elsewhere, as its
/// new owner (the SO sets a user PIN, the user logs in), and tells the parent how many
/// objects the new user sees (`objects N`).
pub fn report_new_owners_objects(ctx: &Pkcs11, slot: Slot) {
    let session = ctx.open_rw_session(slot).unwrap();
    session.login(UserType::So, Some(&pin(SO_PIN))).unwrap();
    session.init_pin(&pin("new-user-pin")).unwrap();
    session.logout().unwrap();
    session
        .login(UserType::User, Some(&pin("new-user-pin")))
        .unwrap();
    let found = session.find_objects(&[]).expect("C_FindObjects");
    tell_parent(&format!("objects {}", found.len()));
}

/// Prints one protocol line to the parent and flushes, so a SIGKILL right after loses nothing
/// that was printed.
pub fn tell_parent(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{CHILD_LINE_PREFIX}{line}").unwrap();
    out.flush().unwrap();
}

/// The protocol payload of one output line of a child, if it carries one. The prefix may
/// follow other text: with one test thread libtest prints "test <name> ... " and the test's
/// own first output line continues that line.
pub fn child_line(line: &str) -> Option<&str> {
    line.find(CHILD_LINE_PREFIX)
        .map(|at| line[at + CHILD_LINE_PREFIX.len()..].trim_end())
}

/// The protocol lines in a child's output, prefix removed.
pub fn child_lines(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(child_line)
        .map(str::to_owned)
        .collect()
}

/// Runs an external tool, failing the test with an installation hint if it is missing.
pub fn require_tool(tool: &str, apt_package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(tool))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "this test needs `{tool}`, which is not on PATH; install it with \
             `apt-get install -y {apt_package}`"
        )
    })
}

/// The exit code of child process `pid` (`None`: killed by a signal), polled without
/// blocking; after `deadline` the child is killed and reaped and the test fails, naming it
/// `what` (the fork tests: a child that inherited a lock locked hangs).
pub fn wait_for_child(pid: libc::pid_t, deadline: std::time::Duration, what: &str) -> Option<i32> {
    let started = std::time::Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: (test) waits for our own child without blocking.
        let got = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(got >= 0, "waitpid: {}", std::io::Error::last_os_error());
        if got == pid {
            return libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
        }
        if started.elapsed() > deadline {
            // SAFETY: (test) kills and reaps our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("{what} hung for {deadline:?} (a lock inherited locked?)");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
