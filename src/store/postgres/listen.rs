//! The listening connection: LISTEN on one token's channel, and take in the
//! notifications that have arrived without ever waiting for one.
//!
//! The connection is a task of a one-thread runtime of its own (run only inside calls, in
//! the calling thread) that forwards notifications; `drain` turns the loop twice without
//! waiting (one look at the socket, one run of the task it woke) and collects what the
//! task forwarded. This
//! module must not interpret records; it reads only the payloads the store writes (the
//! writer's id and the new sequence number).

use std::sync::mpsc;
use std::time::Instant;

use crate::error::StoreError;
use crate::store::StoreResult;

use super::conn::Failure;
use super::conn::PgSettings;
use super::{channel, Inner, PgStore};

/// The least time between attempts to start a listener that failed.
const LISTENER_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

pub(super) struct Listener {
    runtime: tokio::runtime::Runtime,
    /// Kept: dropping the client would end the connection.
    _client: tokio_postgres::Client,
    /// A payload, or `None` once the connection has ended (error or end of file).
    heard: mpsc::Receiver<Option<String>>,
}

/// What a `drain` found.
pub(super) struct Drained {
    pub payloads: Vec<String>,
    /// The connection is gone; notifications may have been missed.
    pub lost: bool,
}

impl Listener {
    /// Connects (within the connect timeout) and LISTENs on `channel` (an identifier
    /// made by the store).
    pub(super) fn start(settings: &PgSettings, channel: &str) -> StoreResult<Listener> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(StoreError::Io)?;
        let (tx, heard) = mpsc::channel();
        let listen = format!("LISTEN {channel}");
        let started = runtime.block_on(async {
            let client = match settings.tls() {
                None => {
                    settings
                        .start_forwarding(tokio_postgres::NoTls, Some(tx))
                        .await?
                }
                Some(tls) => settings.start_forwarding(tls.clone(), Some(tx)).await?,
            };
            match tokio::time::timeout(settings.connect_timeout(), client.batch_execute(&listen))
                .await
            {
                Ok(done) => done?,
                Err(_) => return Err(Failure::Timeout),
            }
            Ok(client)
        });
        let client = started.map_err(|f| settings.classify(f, false))?;
        Ok(Listener {
            runtime,
            _client: client,
            heard,
        })
    }

    /// The notifications received so far; never waits for the network.
    pub(super) fn drain(&mut self) -> Drained {
        // First turn: the event loop polls the socket (a zero-timeout epoll) and wakes
        // the connection task if it has data; second: the task runs and forwards it.
        self.runtime.block_on(async {
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
        });
        let mut drained = Drained {
            payloads: Vec::new(),
            lost: false,
        };
        loop {
            match self.heard.try_recv() {
                Ok(Some(p)) => drained.payloads.push(p),
                Ok(None) | Err(mpsc::TryRecvError::Disconnected) => {
                    drained.lost = true;
                    break;
                }
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        drained
    }
}

impl PgStore {
    /// `Store::changed_elsewhere`: a notification of another writer past what this
    /// handle knows, or, when none came for the check interval (or the listener may have
    /// missed some, or notifications are off), the server's sequence number.
    pub(super) fn check_for_changes(&self) -> StoreResult<bool> {
        let mut inner = self.inner.lock();
        if self.settings.change_check == crate::config::ChangeCheck::Notify {
            self.poll_listener(&mut inner);
            if inner.pending {
                return Ok(true);
            }
            if !inner.need_query && inner.checked_at.elapsed() < self.settings.check_interval {
                return Ok(false);
            }
        } else if inner.pending {
            return Ok(true);
        }
        let token = self.token;
        let seq: i64 = self.run(&mut inner, |c, _| {
            Ok(
                c.query_one("SELECT seq FROM kmshsm_tokens WHERE id = $1", &[&token])?
                    .get(0),
            )
        })?;
        inner.checked_at = Instant::now();
        inner.need_query = false;
        if seq as u64 != inner.known_seq {
            inner.pending = true;
        }
        Ok(inner.pending)
    }

    /// Takes in the notifications that arrived, (re)connecting the listener if needed.
    fn poll_listener(&self, inner: &mut Inner) {
        if inner.listener.is_none() {
            // Whatever came before LISTEN took effect was not heard: ask once.
            inner.need_query = true;
            // Not while the main connection is down (the round trip that follows finds
            // out, within one connect timeout rather than two), nor again soon after a
            // failed attempt: meanwhile every call asks the server.
            if inner.client.is_none() || inner.listener_retry_at.is_some_and(|t| Instant::now() < t)
            {
                return;
            }
            match Listener::start(&self.settings, &channel(self.token)) {
                Ok(listener) => {
                    inner.listener = Some(listener);
                    inner.listener_retry_at = None;
                }
                Err(e) => {
                    log::debug!("token {}: no listener ({e}); asking instead", self.serial);
                    inner.listener_retry_at =
                        Some(Instant::now() + self.settings.check_interval.max(LISTENER_RETRY));
                    return;
                }
            }
        }
        let Some(listener) = inner.listener.as_mut() else {
            return;
        };
        let drained = listener.drain();
        if drained.lost {
            inner.listener = None;
            inner.need_query = true;
        }
        let mut newest = None;
        for payload in drained.payloads {
            let mut parts = payload.split(' ');
            let writer = parts.next().unwrap_or_default();
            match parts.next().and_then(|s| s.parse::<u64>().ok()) {
                Some(seq) if writer != self.writer => newest = newest.max(Some(seq)),
                Some(_) => {}
                // Not a payload this module wrote: taken as a change, to be safe.
                None => newest = Some(u64::MAX),
            }
        }
        if newest.is_some_and(|s| s > inner.known_seq) {
            inner.pending = true;
        }
    }
}
