//! The TOML configuration, read once in `C_Initialize`.
//!
//! Where it comes from, first match wins: the path given in `C_Initialize`'s `pReserved`,
//! the `KMSHSM_CONF` environment variable, `$XDG_CONFIG_HOME/kmshsm/kmshsm.toml` (or
//! `~/.config/...`) if that file exists, and otherwise built-in defaults. A file that was
//! named but cannot be read or parsed is an error, never silently replaced by defaults.
//! This module only reads and validates; it must not create directories or open tokens.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// Log verbosity, as named in the configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Off,
    Error,
    #[default]
    Warn,
    Info,
    Debug,
    Trace,
}

/// The largest Argon2id cost a PIN may be set with or stored with: 1 GiB of memory, 64
/// passes, 16 lanes.
pub(crate) const KDF_MAX_MEMORY_KIB: u32 = 1024 * 1024;
pub(crate) const KDF_MAX_ITERATIONS: u32 = 64;
pub(crate) const KDF_MAX_PARALLELISM: u32 = 16;

/// Argon2id cost for the keys derived from PINs. New PINs use these values; each stored
/// PIN keeps the parameters it was set with, so changing them never locks a token out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KdfConfig {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for KdfConfig {
    /// OWASP's Argon2id baseline: m = 19 MiB, t = 2, p = 1 (about 13 ms here with huge
    /// pages, 24 ms without).
    fn default() -> Self {
        KdfConfig {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the token databases live; created with mode 0700 if missing.
    pub token_dir: PathBuf,
    pub log_level: LogLevel,
    /// A file to append log lines to; standard error when absent.
    pub log_file: Option<PathBuf>,
    /// Consecutive wrong PINs before the PIN locks; 0 never locks.
    pub max_pin_failures: u32,
    pub kdf: KdfConfig,
    /// Refuse keys created from now on that could both wrap and decrypt, or both unwrap
    /// and encrypt (docs/security.md, "separation of duties"); off by default.
    pub separation_of_duties: bool,
    /// Turn on DES, Triple-DES and RSA key generation from 1024 bits, for legacy
    /// applications and test suites (docs/security.md, "Legacy algorithms"); off by
    /// default.
    pub legacy_algorithms: bool,
    /// A PostgreSQL connection URL: tokens live in that database instead of `token_dir`.
    pub store_url: Option<StoreUrl>,
    /// How the PostgreSQL store connects, times out and notices other hosts' changes.
    pub postgres: PostgresConfig,
    /// How many days audit events are kept before `kmshsm audit prune` may remove them
    /// (leaving an authenticated checkpoint; docs/audit.md); 0 keeps every event.
    pub audit_retention_days: u32,
}

/// A `store_url`. Its `Debug` form hides the password, so a logged configuration never
/// shows it; `expose` gives the whole text, for connecting only.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct StoreUrl(String);

impl StoreUrl {
    pub fn new(url: &str) -> StoreUrl {
        StoreUrl(url.to_string())
    }

    /// The URL as written, password included: pass it to the connector, never to a log.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`, for messages.
    pub(crate) fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreUrl({})", self.redacted())
    }
}

/// A configuration that does not parse, said without quoting it: the parser's own text
/// quotes the line it stopped at, which may be `store_url`'s, password and all (review
/// 17c). Where it stopped, then the parser's message, unless that message may hold a
/// secret: its quoting of a value cannot be relied on to be undone (backticks for an
/// unknown variant, `\"` inside a string, review 18a), so a message naming a URL or a
/// password is left out whole.
fn parse_error(text: &str, e: &toml::de::Error) -> Error {
    let at = e.span().map(|span| {
        let before = text.get(..span.start).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.len() - line_start + 1;
        // The key the line sets, when it is a plain one (a key holds no secret; the
        // value after `=` may).
        let line_text = text[line_start..].lines().next().unwrap_or_default();
        let key = line_text
            .split_once('=')
            .map(|(key, _)| key.trim())
            .filter(|key| {
                !key.is_empty()
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            })
            .map(|key| format!(" (`{key}`)"))
            .unwrap_or_default();
        format!("line {line}, column {column}{key}: ")
    });
    let message = e.message().trim();
    let may_hold_secret =
        message.contains("://") || message.to_ascii_lowercase().contains("password");
    let message = if may_hold_secret {
        "a value there is not valid (the parser's message is not shown: it quotes a value \
         that may hold a password)"
    } else {
        message
    };
    Error::Config(format!(
        "the configuration does not parse: {}{message}",
        at.unwrap_or_default()
    ))
}

/// Hides the password of a `scheme://user:password@host/...` URL and of every
/// `password=` parameter. The PostgreSQL client reads the user and password up to the
/// first `@` (a `/` or `?` inside the password included); a password that holds an
/// unencoded `@` (the URL then fails to connect, and is shown in the error) goes on to
/// the last `@` before the query. A parameter is anything after a `?` or an `&`, its
/// name percent-decoded before it is compared (`pass%77ord`), and a password's value
/// runs to the next `&`: so one is found wherever a `?` or an `@` elsewhere leaves the
/// query. Where the text is ambiguous it hides more, never less (reviews 22c, 22d).
fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest = scheme_end + 3;
        if let Some(at) = out[rest..].find('@').map(|at| rest + at) {
            if let Some(colon) = out[rest..at].find(':').map(|c| rest + c) {
                let after = &out[at + 1..];
                let host = &after[..after.find('?').unwrap_or(after.len())];
                let end = host.rfind('@').map_or(at, |more| at + 1 + more);
                out.replace_range(colon + 1..end, "***");
            }
        }
    }
    redact_password_parameters(&out)
}

/// `text` with the value of every `password` parameter (after a `?` or an `&`, up to
/// the next `&`) replaced by `***`.
fn redact_password_parameters(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(p) = rest.find(['?', '&']) {
        out.push_str(&rest[..=p]);
        rest = &rest[p + 1..];
        let pair = &rest[..rest.find('&').unwrap_or(rest.len())];
        if let Some((name, _)) = pair.split_once('=') {
            if percent_decoded(name).eq_ignore_ascii_case("password") {
                out.push_str(name);
                out.push_str("=***");
                rest = &rest[pair.len()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `text` with its `%XX` escapes decoded (one that is not two hex digits kept as it is),
/// lossily as UTF-8: only compared with a parameter name.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The largest timeout PostgreSQL accepts for `statement_timeout`, in milliseconds.
const MAX_SERVER_TIMEOUT_MS: u64 = i32::MAX as u64;

/// How other hosts' commits are noticed (docs/configuration.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ChangeCheck {
    /// LISTEN/NOTIFY on a second connection, polled without blocking; one `SELECT` at
    /// most every `check_interval_ms` when no notification came.
    #[default]
    Notify,
    /// One `SELECT` round trip per call: exact, and slower.
    Query,
}

/// The `[postgres]` table: used only with `store_url`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// Giving up on connecting after this long (unless the URL sets `connect_timeout`).
    pub connect_timeout_ms: u64,
    /// The server cancels a statement running longer than this (and ends a session idle
    /// inside a transaction as long).
    pub statement_timeout_ms: u64,
    /// The client's kernel drops the connection when data sent stays unacknowledged
    /// this long (`TCP_USER_TIMEOUT`), and probes an idle connection after this long.
    pub network_timeout_ms: u64,
    /// A PEM file of CA certificates the server's certificate must chain to (with
    /// `sslmode=require` in the URL); the system's CAs when absent.
    pub tls_ca_file: Option<PathBuf>,
    pub change_check: ChangeCheck,
    /// With `change_check = "notify"`: ask the server anyway when no notification has
    /// come for this long.
    pub check_interval_ms: u64,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            connect_timeout_ms: 5_000,
            statement_timeout_ms: 10_000,
            network_timeout_ms: 10_000,
            tls_ca_file: None,
            change_check: ChangeCheck::default(),
            check_interval_ms: 100,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            token_dir: default_token_dir(),
            log_level: LogLevel::default(),
            log_file: None,
            max_pin_failures: 10,
            kdf: KdfConfig::default(),
            separation_of_duties: false,
            legacy_algorithms: false,
            store_url: None,
            postgres: PostgresConfig::default(),
            audit_retention_days: 0,
        }
    }
}

fn home_subdir(xdg_var: &str, fallback: &str) -> Option<PathBuf> {
    match std::env::var_os(xdg_var) {
        Some(d) if !d.is_empty() => Some(PathBuf::from(d)),
        _ => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(fallback)),
    }
}

fn default_token_dir() -> PathBuf {
    home_subdir("XDG_DATA_HOME", ".local/share")
        .unwrap_or_else(|| PathBuf::from("."))
        .join("kmshsm/tokens")
}

/// The longest configuration file read; a real one is a few hundred bytes.
const MAX_CONFIG_LEN: u64 = 1 << 20;

/// The text of the configuration file at `path`, read only from a regular file of at most
/// [`MAX_CONFIG_LEN`] bytes. It is opened without blocking and checked before it is read:
/// a caller may name any path (`pReserved`), and a FIFO would wait for a writer for
/// ever, `/dev/zero` never end (review 24a).
fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::{Error as IoError, ErrorKind, Read};
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    if !file.metadata()?.is_file() {
        return Err(IoError::new(ErrorKind::InvalidInput, "not a regular file"));
    }
    let mut text = String::new();
    file.take(MAX_CONFIG_LEN + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_CONFIG_LEN {
        return Err(IoError::new(
            ErrorKind::InvalidData,
            "larger than the 1 MiB a configuration may be",
        ));
    }
    Ok(text)
}

impl Config {
    /// Finds and reads the configuration. `explicit` is the path from `pReserved`.
    pub fn load(explicit: Option<&Path>) -> Result<Config> {
        if let Some(path) = explicit {
            return Config::from_file(path);
        }
        if let Some(path) = std::env::var_os("KMSHSM_CONF").filter(|p| !p.is_empty()) {
            return Config::from_file(Path::new(&path));
        }
        if let Some(dir) = home_subdir("XDG_CONFIG_HOME", ".config") {
            let path = dir.join("kmshsm/kmshsm.toml");
            if path.is_file() {
                return Config::from_file(&path);
            }
        }
        Ok(Config::default())
    }

    pub fn from_file(path: &Path) -> Result<Config> {
        let text = read_bounded(path)
            .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
        Config::parse(&text).map_err(|e| match e {
            Error::Config(m) => Error::Config(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Config> {
        let config: Config = toml::from_str(text).map_err(|e| parse_error(text, &e))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if self.token_dir.as_os_str().is_empty() {
            return Err(Error::Config("token_dir is empty".into()));
        }
        if let Some(url) = &self.store_url {
            let u = url.expose();
            if !(u.starts_with("postgresql://") || u.starts_with("postgres://")) {
                return Err(Error::Config(format!(
                    "store_url must start with postgresql:// (got {})",
                    url.redacted()
                )));
            }
        }
        let p = &self.postgres;
        if p.connect_timeout_ms == 0 || p.statement_timeout_ms == 0 || p.network_timeout_ms == 0 {
            return Err(Error::Config(
                "postgres timeouts must be at least 1 ms".into(),
            ));
        }
        // The server takes `statement_timeout` (and the idle-in-transaction timeout set
        // from it) in milliseconds as a 32-bit integer: more would fail every connection.
        if p.statement_timeout_ms > MAX_SERVER_TIMEOUT_MS {
            return Err(Error::Config(format!(
                "postgres statement_timeout_ms must be at most {MAX_SERVER_TIMEOUT_MS} \
                 (about 24.8 days)"
            )));
        }
        let k = &self.kdf;
        // The bounds a stored PIN record may carry (`store::seal::PinKdf::decode`): a
        // PIN set with a cost outside them could never be checked again, and a memory
        // cost of terabytes would fail the allocation, ending the host process.
        if !(1..=KDF_MAX_PARALLELISM).contains(&k.parallelism) {
            return Err(Error::Config(format!(
                "kdf.parallelism must be between 1 and {KDF_MAX_PARALLELISM}"
            )));
        }
        if !(1..=KDF_MAX_ITERATIONS).contains(&k.iterations) {
            return Err(Error::Config(format!(
                "kdf.iterations must be between 1 and {KDF_MAX_ITERATIONS}"
            )));
        }
        if !(8 * k.parallelism..=KDF_MAX_MEMORY_KIB).contains(&k.memory_kib) {
            return Err(Error::Config(format!(
                "kdf.memory_kib must be between 8 x parallelism and {KDF_MAX_MEMORY_KIB} (1 GiB)"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line that does not parse is not quoted back: it may hold `store_url`'s password.
    #[test]
    fn a_configuration_that_does_not_parse_is_not_quoted_back() {
        for text in [
            "token_dir = \"/t\"\nstore_uri = \"postgresql://u:s3cret-pw@h/d\"\n",
            "token_dir = \"/t\"\nstore_url = \"postgresql://u:s3cret-pw@h/d\n",
            "token_dir = \"/t\"\nstore_url = \"postgresql://u:s3\\cret-pw@h/d\"\n",
            "token_dir = \"/t\"\nmax_pin_failures = \"postgresql://u:s3cret-pw@h/d\"\n",
        ] {
            let Err(Error::Config(said)) = Config::parse(text) else {
                panic!("{text:?} parsed");
            };
            assert!(!said.contains("s3"), "{said}");
            assert!(said.contains("line 2"), "{said}");
        }
        // The key the line sets is named, its value is not.
        let Err(Error::Config(said)) = Config::parse("max_pin_failures = \"three\"\n") else {
            panic!("a string for a number parsed");
        };
        assert!(said.contains("`max_pin_failures`"), "{said}");
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.max_pin_failures, 10);
        assert_eq!(c.kdf, KdfConfig::default());
        assert!(c.token_dir.ends_with("kmshsm/tokens"));
        assert!(!c.legacy_algorithms);
    }

    #[test]
    fn legacy_algorithms_is_read() {
        assert!(
            Config::parse("legacy_algorithms = true")
                .unwrap()
                .legacy_algorithms
        );
        assert!(Config::parse("legacy_algorithms = \"yes\"").is_err());
    }

    #[test]
    fn every_key_is_read() {
        let c = Config::parse(
            "token_dir = \"/t\"\nlog_level = \"debug\"\nlog_file = \"/l\"\n\
             max_pin_failures = 3\n[kdf]\nmemory_kib = 64\niterations = 1\nparallelism = 2\n",
        )
        .unwrap();
        assert_eq!(c.token_dir, PathBuf::from("/t"));
        assert_eq!(c.log_level, LogLevel::Debug);
        assert_eq!(c.log_file, Some(PathBuf::from("/l")));
        assert_eq!(c.max_pin_failures, 3);
        assert_eq!(c.kdf.parallelism, 2);
    }

    #[test]
    fn unknown_key_is_refused_with_its_name() {
        let e = Config::parse("token_dri = \"/t\"").unwrap_err().to_string();
        assert!(e.contains("token_dri"), "{e}");
    }

    #[test]
    fn wrong_type_is_refused() {
        assert!(Config::parse("max_pin_failures = \"ten\"").is_err());
    }

    #[test]
    fn broken_toml_is_refused() {
        assert!(Config::parse("token_dir = ").is_err());
    }

    #[test]
    fn impossible_kdf_cost_is_refused() {
        assert!(Config::parse("[kdf]\niterations = 0").is_err());
        assert!(Config::parse("[kdf]\nmemory_kib = 4\nparallelism = 1").is_err());
        // Costs no stored PIN record may carry: a PIN set with them could never be
        // checked, and 4 TiB of Argon2 memory would end the host process.
        assert!(Config::parse("[kdf]\nmemory_kib = 4294967295").is_err());
        assert!(Config::parse("[kdf]\nmemory_kib = 1048577").is_err());
        assert!(Config::parse("[kdf]\niterations = 65").is_err());
        assert!(Config::parse("[kdf]\nparallelism = 17\nmemory_kib = 65536").is_err());
        let most = Config::parse("[kdf]\nmemory_kib = 1048576\niterations = 64\nparallelism = 16");
        assert!(most.is_ok());
    }

    #[test]
    fn store_url_and_postgres_options_are_read() {
        let c = Config::parse(
            "store_url = \"postgresql://u:sekret@h:5433/db?sslmode=require\"\n\
             [postgres]\nconnect_timeout_ms = 100\nchange_check = \"query\"\n",
        )
        .unwrap();
        let url = c.store_url.as_ref().unwrap();
        assert_eq!(
            url.expose(),
            "postgresql://u:sekret@h:5433/db?sslmode=require"
        );
        assert_eq!(c.postgres.connect_timeout_ms, 100);
        assert_eq!(c.postgres.change_check, ChangeCheck::Query);
        assert_eq!(c.postgres.statement_timeout_ms, 10_000);
        let shown = format!("{c:?}");
        assert!(!shown.contains("sekret"), "{shown}");
        assert!(shown.contains("u:***@h:5433"), "{shown}");
    }

    #[test]
    fn passwords_are_redacted_wherever_the_url_holds_them() {
        let r = |u: &str| StoreUrl::new(u).redacted();
        assert_eq!(r("postgresql://u:p@h/d"), "postgresql://u:***@h/d");
        assert_eq!(r("postgresql://u@h/d"), "postgresql://u@h/d");
        assert_eq!(
            r("postgresql://h/d?user=u&password=p&sslmode=require"),
            "postgresql://h/d?user=u&password=***&sslmode=require"
        );
        assert_eq!(r("postgresql://u:p:q@h"), "postgresql://u:***@h");
        // An unencoded `@` in a password or in a query value (review 22c).
        assert_eq!(r("postgresql://u:p@ss@h/d"), "postgresql://u:***@h/d");
        assert_eq!(
            r("postgresql://h/d?password=a@b&sslmode=require"),
            "postgresql://h/d?password=***&sslmode=require"
        );
        assert_eq!(
            r("postgresql://u@h/d?password=x@y"),
            "postgresql://u@h/d?password=***"
        );
        let hidden = r("postgresql://u:pw@h/d?application_name=a@b&password=zz");
        assert!(!hidden.contains("pw") && !hidden.contains("zz"), "{hidden}");
        // Review 22d: no user part, a `:` and an `@` in the query (a value after the
        // password, or the password itself): the `:` was taken for the user part's.
        let hidden = r("postgresql://h/d?password=secret&application_name=svc:a@b");
        assert!(!hidden.contains("secret"), "{hidden}");
        let hidden = r("postgresql://h/d?password=se:cret@x");
        assert!(!hidden.contains("se"), "{hidden}");
        // A `?` in the password: the host is still shown (review 14e), the query's
        // password hidden too.
        assert_eq!(
            r("postgresql://u:pw?x@127.0.0.1:1/db?sslmode=disable&password=zz"),
            "postgresql://u:***@127.0.0.1:1/db?sslmode=disable&password=***"
        );
        assert_eq!(
            r("postgresql://u@h/d?sslmode=disable&pass%77ord=p?q&x=1"),
            "postgresql://u@h/d?sslmode=disable&pass%77ord=***&x=1"
        );
    }

    #[test]
    fn a_store_url_of_another_kind_is_refused_without_its_password() {
        let e = Config::parse("store_url = \"mysql://u:sekret@h/db\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("postgresql://") && !e.contains("sekret"), "{e}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let e = Config::from_file(Path::new("/nonexistent/kmshsm.toml")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/kmshsm.toml"));
    }
}
