//! The listening connection: LISTEN on one token's channel, and take in the
//! notifications that have arrived without ever waiting for one.
//!
//! Built on `tokio-postgres` with a runtime of its own (one thread: the caller's) rather
//! than on the blocking client, whose non-blocking notification iterator never lets its
//! event loop look at the socket again once it found nothing. Here the connection is a
//! task of this runtime; `drain` turns the loop twice without waiting (one look at the
//! socket, one run of the task it woke) and collects what the task forwarded. This
//! module must not interpret records or notification payloads.

use std::sync::mpsc;

use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, Socket};

use crate::error::StoreError;
use crate::store::StoreResult;

use super::conn::PgSettings;

/// What the connection task forwards.
enum Heard {
    Payload(String),
    /// The connection ended (error or end of file): the listener must be replaced.
    Lost,
}

pub(super) struct Listener {
    runtime: tokio::runtime::Runtime,
    /// Kept: dropping the client would end the connection.
    _client: tokio_postgres::Client,
    heard: mpsc::Receiver<Heard>,
}

/// What a `drain` found.
pub(super) struct Drained {
    pub payloads: Vec<String>,
    /// The connection is gone; notifications may have been missed.
    pub lost: bool,
}

impl Listener {
    /// Connects and LISTENs on `channel` (an identifier made by the store).
    pub(super) fn start(settings: &PgSettings, channel: &str) -> StoreResult<Listener> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(StoreError::Io)?;
        let (tx, heard) = mpsc::channel();
        let client = match settings.tls() {
            None => runtime.block_on(connect(settings, tokio_postgres::NoTls, tx))?,
            Some(tls) => runtime.block_on(connect(settings, tls.clone(), tx))?,
        };
        runtime
            .block_on(client.batch_execute(&format!("LISTEN {channel}")))
            .map_err(|e| settings.failure(e))?;
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
                Ok(Heard::Payload(p)) => drained.payloads.push(p),
                Ok(Heard::Lost) | Err(mpsc::TryRecvError::Disconnected) => {
                    drained.lost = true;
                    break;
                }
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        drained
    }
}

async fn connect<T>(
    settings: &PgSettings,
    tls: T,
    tx: mpsc::Sender<Heard>,
) -> StoreResult<tokio_postgres::Client>
where
    T: MakeTlsConnect<Socket> + 'static,
    T::Stream: Send + 'static,
{
    let (client, mut connection) = settings
        .config()
        .connect(tls)
        .await
        .map_err(|e| settings.failure(e))?;
    tokio::spawn(async move {
        loop {
            let message = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
            let forwarded = match message {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    tx.send(Heard::Payload(n.payload().to_string()))
                }
                Some(Ok(_)) => Ok(()),
                Some(Err(_)) | None => {
                    let _ = tx.send(Heard::Lost);
                    return;
                }
            };
            if forwarded.is_err() {
                // The listener was dropped.
                return;
            }
        }
    });
    Ok(client)
}
