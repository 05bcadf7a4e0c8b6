//! Connecting to PostgreSQL: the settings taken from the configuration (URL, TLS,
//! timeouts), opening a connection with them, and telling a lost or unreachable server
//! from a statement the server refused.
//!
//! The URL may hold a password: it is parsed here and only its redacted form ever leaves
//! this file (in errors and logs). This module must not interpret records.

use std::path::Path;
use std::time::Duration;

use postgres::config::SslMode;
use postgres::error::SqlState;
use postgres::{Client, NoTls};

use crate::config::{ChangeCheck, PostgresConfig, StoreUrl};
use crate::error::StoreError;
use crate::store::StoreResult;

/// How to reach the server; one per provider, shared by its tokens' stores.
pub struct PgSettings {
    config: tokio_postgres::Config,
    /// `None` when the URL says `sslmode=disable`.
    tls: Option<postgres_openssl::MakeTlsConnector>,
    /// The URL without its password, for messages.
    shown: String,
    statement_timeout: Duration,
    pub(super) change_check: ChangeCheck,
    pub(super) check_interval: Duration,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

impl PgSettings {
    /// Reads `store_url` and the `[postgres]` options; connects to nothing yet.
    pub fn new(url: &StoreUrl, options: &PostgresConfig) -> StoreResult<PgSettings> {
        let shown = url.redacted();
        let mut config: tokio_postgres::Config = url
            .expose()
            .parse()
            .map_err(|e| StoreError::Config(format!("store_url {shown}: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(ms(options.connect_timeout_ms));
        }
        if config.get_application_name().is_none() {
            config.application_name("kmshsm");
        }
        // A silent peer is noticed: an idle connection is probed after the network
        // timeout, and data left unacknowledged that long drops the connection.
        config
            .keepalives(true)
            .keepalives_idle(ms(options.network_timeout_ms))
            .keepalives_interval(ms(options.network_timeout_ms.div_ceil(3)))
            .tcp_user_timeout(ms(options.network_timeout_ms));
        let tls = match config.get_ssl_mode() {
            SslMode::Disable => None,
            _ => Some(tls_connector(options.tls_ca_file.as_deref(), &shown)?),
        };
        Ok(PgSettings {
            config,
            tls,
            shown,
            statement_timeout: ms(options.statement_timeout_ms),
            change_check: options.change_check,
            check_interval: ms(options.check_interval_ms),
        })
    }

    /// The URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The connection parameters (for the listener, `listen.rs`).
    pub(super) fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The TLS connector, unless the URL says `sslmode=disable`.
    pub(super) fn tls(&self) -> Option<&postgres_openssl::MakeTlsConnector> {
        self.tls.as_ref()
    }

    /// A new connection, with the session's timeouts set.
    pub(super) fn connect(&self) -> StoreResult<Client> {
        let config = postgres::Config::from(self.config.clone());
        let made = match &self.tls {
            None => config.connect(NoTls),
            Some(tls) => config.connect(tls.clone()),
        };
        let mut client = made.map_err(|e| self.failure(e))?;
        let t = self.statement_timeout.as_millis();
        // A transaction left open by a client that vanished releases its locks after
        // the same time a statement may take.
        client
            .batch_execute(&format!(
                "SET statement_timeout = {t}; SET idle_in_transaction_session_timeout = {t};"
            ))
            .map_err(|e| self.failure(e))?;
        Ok(client)
    }

    /// Classifies a client error: a lost or refused connection is `Unreachable` (named
    /// with the redacted URL), anything else the server's own error.
    pub(super) fn failure(&self, e: postgres::Error) -> StoreError {
        if connection_lost(&e) {
            StoreError::Unreachable(format!("{}: {e}", self.shown))
        } else {
            StoreError::Server(e)
        }
    }
}

fn tls_connector(
    ca_file: Option<&Path>,
    shown: &str,
) -> StoreResult<postgres_openssl::MakeTlsConnector> {
    let bad = |e: openssl::error::ErrorStack| StoreError::Config(format!("TLS for {shown}: {e}"));
    // The builder verifies the server's certificate against the system's CAs and its
    // host name; a CA file adds the CAs the server's certificate chains to.
    let mut builder =
        openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls_client()).map_err(bad)?;
    if let Some(ca) = ca_file {
        builder.set_ca_file(ca).map_err(|e| {
            StoreError::Config(format!("postgres.tls_ca_file {}: {e}", ca.display()))
        })?;
    }
    Ok(postgres_openssl::MakeTlsConnector::new(builder.build()))
}

/// Whether `e` means the connection is gone (or never came): closed, an I/O error, a
/// timeout of the client, or the server shutting down or not accepting connections.
pub(super) fn connection_lost(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        return code.code().starts_with("08")
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW;
    }
    // No SQLSTATE: the client's own failure (I/O, TLS, a timeout while connecting).
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>().is_some() {
            return true;
        }
        source = s.source();
    }
    e.to_string().contains("timed out") || e.to_string().contains("error connecting")
}
