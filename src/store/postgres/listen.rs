//! The listening connection: LISTEN on one token's channel, and take in the
//! notifications that have arrived without ever waiting for one.
//!
//! The connection is a task of a one-thread runtime of its own (run only inside calls, in
//! the calling thread) that forwards notifications; `drain` turns the loop twice without
//! waiting (one look at the socket, one run of the task it woke) and collects what the
//! task forwarded. This
//! module must not interpret records or notification payloads.

use std::sync::mpsc;

use crate::error::StoreError;
use crate::store::StoreResult;

use super::conn::PgSettings;
use super::records::Failure;

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
