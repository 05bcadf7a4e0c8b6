//! Connecting to PostgreSQL: the settings taken from the configuration (URL, TLS,
//! timeouts), and `Conn`, one connection driven by a one-thread runtime of its own in the
//! calling thread, each round trip bounded by a deadline; and telling a lost or
//! unreachable server from a statement the server refused.
//!
//! The URL may hold a password: it is parsed here and only its redacted form ever leaves
//! this file (in errors and logs). This module must not interpret records.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Socket, Statement};

use crate::config::{ChangeCheck, PostgresConfig, StoreUrl};
use crate::error::StoreError;
use crate::store::StoreResult;

pub(super) type PgResult<T> = Result<T, Failure>;

/// A failure of a round trip: the client's or the server's, no answer within the
/// deadline, or a record that did not decode.
#[derive(Debug)]
pub(super) enum Failure {
    Pg(tokio_postgres::Error),
    Timeout,
    Store(StoreError),
}

impl Failure {
    /// The connection is gone or cannot be trusted any more.
    pub(super) fn is_lost(&self) -> bool {
        match self {
            Failure::Pg(e) => connection_lost(e),
            Failure::Timeout => true,
            Failure::Store(_) => false,
        }
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Pg(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

/// How to reach the server; one per provider, shared by its tokens' stores.
pub struct PgSettings {
    config: tokio_postgres::Config,
    /// `None` when the URL says `sslmode=disable`.
    tls: Option<postgres_openssl::MakeTlsConnector>,
    /// The URL without its password, for messages.
    shown: String,
    connect_timeout: Duration,
    statement_timeout: Duration,
    network_timeout: Duration,
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
        let connect_timeout = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(ms(options.connect_timeout_ms));
        if config.get_application_name().is_none() {
            config.application_name("kmshsm");
        }
        // A silent peer is noticed: an idle connection is probed after the network
        // timeout, and data left unacknowledged that long drops the connection.
        // (The kernel counts keepalive times in whole seconds, at least one.)
        let keepalive = |n: u64| Duration::from_secs(n.div_ceil(1000).max(1));
        config
            .keepalives(true)
            .keepalives_idle(keepalive(options.network_timeout_ms))
            .keepalives_interval(keepalive(options.network_timeout_ms.div_ceil(3)))
            .tcp_user_timeout(ms(options.network_timeout_ms));
        let tls = match config.get_ssl_mode() {
            SslMode::Disable => None,
            _ => Some(tls_connector(options.tls_ca_file.as_deref(), &shown)?),
        };
        Ok(PgSettings {
            config,
            tls,
            shown,
            connect_timeout,
            statement_timeout: ms(options.statement_timeout_ms),
            network_timeout: ms(options.network_timeout_ms),
            change_check: options.change_check,
            check_interval: ms(options.check_interval_ms),
        })
    }

    pub(super) fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The TLS connector, unless the URL says `sslmode=disable`.
    pub(super) fn tls(&self) -> Option<&postgres_openssl::MakeTlsConnector> {
        self.tls.as_ref()
    }

    /// A new connection, with the session's timeouts set; the whole of connecting (TCP,
    /// TLS, authentication) bounded by the connect timeout.
    pub(super) fn connect(&self) -> StoreResult<Conn> {
        let runtime = one_thread_runtime()?;
        let connecting = match &self.tls {
            None => runtime.block_on(self.start(tokio_postgres::NoTls)),
            Some(tls) => runtime.block_on(self.start(tls.clone())),
        };
        let client = match connecting {
            Ok(client) => client,
            Err(Failure::Pg(e)) => return Err(self.failure(e)),
            Err(Failure::Timeout) => return Err(self.unanswered(self.connect_timeout)),
            Err(Failure::Store(e)) => return Err(e),
        };
        let mut conn = Conn {
            runtime,
            client,
            deadline: self.round_trip_deadline(),
            statements: HashMap::new(),
            in_transaction: false,
        };
        let t = self.statement_timeout.as_millis();
        // A transaction left open by a client that vanished releases its locks after
        // the same time a statement may take.
        conn.batch_execute(&format!(
            "SET statement_timeout = {t}; SET idle_in_transaction_session_timeout = {t};"
        ))
        .map_err(|e| self.classify(e, false))?;
        Ok(conn)
    }

    /// Connects within the connect timeout and starts the connection's task.
    pub(super) async fn start<T>(&self, tls: T) -> Result<tokio_postgres::Client, Failure>
    where
        T: MakeTlsConnect<Socket> + 'static,
        T::Stream: Send + 'static,
    {
        self.start_forwarding(tls, None).await
    }

    /// `start`, the task forwarding each notification's payload to `heard` (and `None`
    /// when the connection ends): for the listener, `listen.rs`.
    pub(super) async fn start_forwarding<T>(
        &self,
        tls: T,
        heard: Option<std::sync::mpsc::Sender<Option<String>>>,
    ) -> Result<tokio_postgres::Client, Failure>
    where
        T: MakeTlsConnect<Socket> + 'static,
        T::Stream: Send + 'static,
    {
        let (client, mut connection) =
            match tokio::time::timeout(self.connect_timeout, self.config.connect(tls)).await {
                Ok(made) => made?,
                Err(_) => return Err(Failure::Timeout),
            };
        tokio::spawn(async move {
            loop {
                let message = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
                match message {
                    Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                        if let Some(heard) = &heard {
                            if heard.send(Some(n.payload().to_string())).is_err() {
                                return;
                            }
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => {
                        if let Some(heard) = &heard {
                            let _ = heard.send(None);
                        }
                        return;
                    }
                }
            }
        });
        Ok(client)
    }

    /// How long one round trip may take before the connection is given up: the
    /// server's own statement timeout, and then the network's.
    fn round_trip_deadline(&self) -> Duration {
        self.statement_timeout + self.network_timeout
    }

    fn unanswered(&self, after: Duration) -> StoreError {
        StoreError::Unreachable(format!(
            "{}: no answer within {} ms",
            self.shown,
            after.as_millis()
        ))
    }

    /// The error of a failed round trip. `committing`: a COMMIT that writes was in
    /// flight, so a lost connection leaves its outcome unknown.
    pub(super) fn classify(&self, failure: Failure, committing: bool) -> StoreError {
        match failure {
            Failure::Store(e) => e,
            Failure::Timeout | Failure::Pg(_) if committing && failure.is_lost() => {
                StoreError::CommitUnknown
            }
            Failure::Timeout => self.unanswered(self.round_trip_deadline()),
            Failure::Pg(e) => self.failure(e),
        }
    }

    /// Classifies a client error: a lost or refused connection is `Unreachable` (named
    /// with the redacted URL and the error's causes, or the server's answer without the
    /// parts that may quote rows), anything else the server's own error.
    pub(super) fn failure(&self, e: tokio_postgres::Error) -> StoreError {
        if connection_lost(&e) {
            StoreError::Unreachable(format!("{}: {}", self.shown, crate::error::server_text(&e)))
        } else {
            StoreError::from(e)
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
/// timeout of the client, the server shutting down or not accepting connections, or the
/// server ending a session it found idle (`idle_session_timeout`, or
/// `idle_in_transaction_session_timeout`: the FATAL it sent while the connection waited
/// comes back as the answer to the next request; review 18b found the first call after
/// an idle period failing with CKR_DEVICE_ERROR).
pub(super) fn connection_lost(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        return code.code().starts_with("08")
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
            || *code == SqlState::IDLE_SESSION_TIMEOUT
            || *code == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT;
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

fn one_thread_runtime() -> StoreResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(StoreError::Io)
}

/// Runs `f` on `runtime` until it ends or `deadline` passes.
fn block<T>(
    runtime: &tokio::runtime::Runtime,
    deadline: Duration,
    f: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, Failure> {
    // The timer is made inside the runtime, whose time driver it needs.
    match runtime.block_on(async move { tokio::time::timeout(deadline, f).await }) {
        Ok(done) => Ok(done?),
        Err(_) => Err(Failure::Timeout),
    }
}

/// One connection: its runtime (run only inside calls, in the calling thread), its
/// client, and its prepared statements. A round trip that outlasts the deadline leaves
/// the connection unusable: the caller drops it (closing the socket), and the server
/// rolls back whatever it had begun when it notices.
pub(super) struct Conn {
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
    deadline: Duration,
    statements: HashMap<String, Statement>,
    in_transaction: bool,
}

impl Conn {
    pub(super) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    fn statement(&mut self, sql: &str) -> Result<Statement, Failure> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = block(&self.runtime, self.deadline, self.client.prepare(sql))?;
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    pub(super) fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Failure> {
        let s = self.statement(sql)?;
        block(&self.runtime, self.deadline, self.client.query(&s, params))
    }

    pub(super) fn query_one(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, Failure> {
        let s = self.statement(sql)?;
        block(
            &self.runtime,
            self.deadline,
            self.client.query_one(&s, params),
        )
    }

    pub(super) fn query_opt(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Failure> {
        let s = self.statement(sql)?;
        block(
            &self.runtime,
            self.deadline,
            self.client.query_opt(&s, params),
        )
    }

    pub(super) fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Failure> {
        let s = self.statement(sql)?;
        block(
            &self.runtime,
            self.deadline,
            self.client.execute(&s, params),
        )
    }

    /// Statements without parameters, in one round trip (the simple protocol).
    pub(super) fn batch_execute(&mut self, sql: &str) -> Result<(), Failure> {
        block(&self.runtime, self.deadline, self.client.batch_execute(sql))
    }

    /// `BEGIN` with `mode` (an isolation level and access mode, or nothing).
    pub(super) fn begin(&mut self, mode: &str) -> Result<(), Failure> {
        self.in_transaction = true;
        self.batch_execute(&format!("BEGIN {mode}"))
    }

    pub(super) fn commit(&mut self) -> Result<(), Failure> {
        self.batch_execute("COMMIT")?;
        self.in_transaction = false;
        Ok(())
    }

    /// Ends a transaction the caller left open (on an error, or deciding to write
    /// nothing); answers whether the connection is still usable.
    pub(super) fn end_transaction(&mut self) -> bool {
        if !self.in_transaction {
            return true;
        }
        self.in_transaction = false;
        self.batch_execute("ROLLBACK").is_ok()
    }
}
