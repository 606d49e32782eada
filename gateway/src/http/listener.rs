//! The HTTP listener's accept loop and its connections: each admitted connection (within
//! `max_connections`) gets its TLS handshake and its request head within `request_timeout`
//! of the accept, one answer written within `request_timeout`, and is closed.
//!
//! Closing: after the answer the write side is shut (the client sees the end of the answer)
//! and what the client still sends is read and dropped, at most [`LINGER_BYTES`] within
//! [`LINGER`], so that the close does not reset the connection while the answer is still
//! on its way (a reset can discard it).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_rustls::TlsAcceptor;

use super::request::{parse_head, BadRequest, HeadScanner, MAX_HEAD};
use super::response::{Response, Status};
use super::{routes, ServerState, DOOR};
use crate::peer_log::{Misbehaviour, PeerLog};
use crate::server::limits::ConnectionCaps;
use crate::server::stream::Connection;
use crate::server::{until_stopped, STOP_GRACE};

/// Longest wait, after an answer, for the client to close.
pub const LINGER: Duration = Duration::from_secs(1);
/// Most bytes read and dropped after an answer.
pub const LINGER_BYTES: usize = 64 * 1024;

/// The `[http]` bounds the listener applies.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub max_connections: u32,
    pub request_timeout: Duration,
}

/// Accepts until `stopped` turns true, then waits at most [`STOP_GRACE`] for the connections
/// and drops the rest. A connection over `max_connections` is closed at once and noted in the
/// peer log.
pub async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    settings: Settings,
    state: Arc<ServerState>,
    peer_log: Arc<PeerLog>,
    stopped: watch::Receiver<bool>,
) {
    // Scrapers and probes come from few addresses: the cap is on connections in all only.
    let caps = ConnectionCaps::new(settings.max_connections, settings.max_connections);
    let mut connections = JoinSet::new();
    let mut stop = stopped;
    loop {
        tokio::select! {
            () = until_stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let slot = match caps.admit(peer.ip()) {
                        Ok(slot) => slot,
                        Err(over) => {
                            peer_log.note(DOOR, peer.ip(), Misbehaviour::OverLimit, &over);
                            drop(socket);
                            continue;
                        }
                    };
                    if let Err(e) = socket.set_nodelay(true) {
                        tracing::debug!(%peer, "cannot set TCP_NODELAY: {e}");
                    }
                    let connection = Exchange {
                        peer,
                        settings,
                        state: Arc::clone(&state),
                        peer_log: Arc::clone(&peer_log),
                    };
                    let tls = tls.clone();
                    connections.spawn(async move {
                        connection.run(socket, tls).await;
                        drop(slot);
                    });
                }
                Err(e) => {
                    // Out of descriptors and the like: keep serving the connections we have.
                    peer_log.accept_failed(DOOR, &e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drained = timeout(STOP_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
}

/// Why no request head was read.
#[derive(Debug, thiserror::Error)]
enum HeadError {
    #[error("closed by peer")]
    Closed,
    #[error("{0}")]
    Bad(#[from] BadRequest),
    #[error("read failed: {0}")]
    Io(std::io::Error),
}

/// One connection: one request and its answer.
struct Exchange {
    peer: SocketAddr,
    settings: Settings,
    state: Arc<ServerState>,
    peer_log: Arc<PeerLog>,
}

impl Exchange {
    fn note(&self, kind: Misbehaviour, what: &dyn std::fmt::Display) {
        self.peer_log.note(DOOR, self.peer.ip(), kind, what);
    }

    async fn run(self, socket: TcpStream, tls: Option<TlsAcceptor>) {
        let limit = self.settings.request_timeout;
        let deadline = Instant::now() + limit;
        let connection = match tls {
            None => Connection::Plain(socket),
            Some(acceptor) => match timeout_at(deadline, acceptor.accept(socket)).await {
                Ok(Ok(tls)) => Connection::Tls(Box::new(tls)),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    tracing::debug!(peer = %self.peer, "closed during the TLS handshake");
                    return;
                }
                Ok(Err(e)) => {
                    self.note(
                        Misbehaviour::TlsHandshake,
                        &format_args!("TLS handshake failed: {e}"),
                    );
                    return;
                }
                Err(_) => {
                    self.note(
                        Misbehaviour::TlsHandshake,
                        &format_args!("TLS handshake not done within {limit:?} (request_timeout)"),
                    );
                    return;
                }
            },
        };
        let (mut rd, mut wr) = connection.into_split();
        let mut buf = vec![0u8; MAX_HEAD];
        let mut filled = 0;
        let read = timeout_at(deadline, read_head(&mut rd, &mut buf, &mut filled)).await;
        let response = match read {
            Err(_) if filled == 0 => return,
            Err(_) => {
                let what = format!("request not whole within {limit:?} (request_timeout)");
                self.note(Misbehaviour::ReadTimeout, &what);
                Response::text(Status::RequestTimeout, what + "\n")
            }
            Ok(Err(HeadError::Closed)) => return,
            Ok(Err(HeadError::Io(e))) => {
                tracing::debug!(peer = %self.peer, "HTTP read failed: {e}");
                return;
            }
            Ok(Err(HeadError::Bad(bad))) => self.refuse(&bad),
            Ok(Ok(len)) => match parse_head(&buf[..len]) {
                Ok(request) => routes::answer(&request, &self.state).await,
                Err(bad) => self.refuse(&bad),
            },
        };
        drop(buf);
        let bytes = response.to_bytes();
        let written = timeout(limit, async {
            wr.write_all(&bytes).await?;
            wr.shutdown().await
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(peer = %self.peer, "HTTP answer not written: {e}");
                return;
            }
            Err(_) => {
                tracing::debug!(peer = %self.peer, "HTTP answer not taken within {limit:?}");
                return;
            }
        }
        let _ = timeout(LINGER.min(limit), linger(&mut rd)).await;
    }

    /// The answer to a head that cannot be served, noted in the peer log.
    fn refuse(&self, bad: &BadRequest) -> Response {
        self.note(
            Misbehaviour::RefusedFrame,
            &format_args!("HTTP request refused: {bad}"),
        );
        Response::text(bad.status(), format!("{bad}\n"))
    }
}

/// Reads into `buf` (counting in `filled`, which the caller sees after a timeout) until a whole
/// head is there, returning its length; refuses as soon as the bytes cannot be a head.
async fn read_head<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut [u8],
    filled: &mut usize,
) -> Result<usize, HeadError> {
    let mut scanner = HeadScanner::default();
    loop {
        // `buf` is MAX_HEAD long and the scanner refuses a full buffer without a head, so
        // there is always room here.
        let n = rd.read(&mut buf[*filled..]).await.map_err(HeadError::Io)?;
        if n == 0 {
            return Err(HeadError::Closed);
        }
        *filled += n;
        if let Some(len) = scanner.advance(&buf[..*filled])? {
            return Ok(len);
        }
    }
}

/// Reads and drops what the client still sends, up to [`LINGER_BYTES`], until it closes.
async fn linger<R: AsyncRead + Unpin>(rd: &mut R) {
    let mut sink = [0u8; 4096];
    let mut left = LINGER_BYTES;
    while left > 0 {
        match rd.read(&mut sink).await {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}
