//! The HTTP listener's accept loop and its connections: each admitted connection (within
//! `max_connections`, and `max_connections_per_ip` from one address) gets its TLS handshake
//! and its request head within `request_timeout` of the accept, its answer made within
//! `request_timeout` (503 beyond) and written within `request_timeout` again, and is closed.
//!
//! Closing: after the answer the write side is shut (the client sees the end of the answer)
//! and what the client still sends is read and dropped, at most [`LINGER_BYTES`] within
//! [`LINGER`], so that the close does not reset the connection while the answer is still
//! on its way (a reset can discard it).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
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
    /// So that one peer cannot take every slot and fail the others' health probes.
    pub max_connections_per_ip: u32,
    pub request_timeout: Duration,
}

/// Accepts until `stopped` turns true, then waits at most [`STOP_GRACE`] for the connections
/// and drops the rest. A connection over `max_connections` or `max_connections_per_ip` is
/// closed at once and noted in the peer log. `open` is told how many connections are open
/// (their slots taken) each time that changes.
pub async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    settings: Settings,
    state: Arc<ServerState>,
    peer_log: Arc<PeerLog>,
    stopped: watch::Receiver<bool>,
    open: watch::Sender<usize>,
) {
    let caps = ConnectionCaps::new(settings.max_connections, settings.max_connections_per_ip);
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
                    open.send_replace(connections.len());
                }
                Err(e) => {
                    // Out of descriptors and the like: keep serving the connections we have.
                    peer_log.accept_failed(DOOR, &e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {
                // Its slot was given back before its task ended.
                open.send_replace(connections.len());
            }
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
        let (rd, wr) = connection.into_split();
        self.serve(rd, wr, deadline).await;
    }

    /// Reads one request (its head by `deadline`), answers it and lingers.
    async fn serve<R, W>(&self, mut rd: R, mut wr: W, deadline: Instant)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let limit = self.settings.request_timeout;
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
                Ok(request) => match timeout(limit, routes::answer(&request, &self.state)).await {
                    Ok(response) => response,
                    Err(_) => Response::text(
                        Status::ServiceUnavailable,
                        format!("the answer was not ready within {limit:?} (request_timeout)\n"),
                    ),
                },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use tokio::io::{duplex, split, DuplexStream};

    const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n";

    fn exchange(request_timeout: Duration) -> Exchange {
        Exchange {
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
            settings: Settings {
                max_connections: 1,
                max_connections_per_ip: 1,
                request_timeout,
            },
            state: ServerState::new(Metrics::new(true)),
            peer_log: Arc::new(PeerLog::new(Duration::from_secs(60))),
        }
    }

    /// Serves one exchange over `server`, the head due within `limit`.
    async fn serve(limit: Duration, server: DuplexStream) {
        let (rd, wr) = split(server);
        exchange(limit).serve(rd, wr, Instant::now() + limit).await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_never_taken_is_dropped_after_request_timeout() {
        // Bound: request_timeout for the answer to be taken (the pipe holds 64 bytes, far less
        // than the answer, and the client never reads).
        const LIMIT: Duration = Duration::from_secs(10);
        const PIPE: usize = 64;
        let full = Response::text(Status::Ok, "ok\n").to_bytes().len();
        assert!(full > PIPE);
        let (mut client, server) = duplex(PIPE);
        client.write_all(HEALTH).await.unwrap();
        let began = Instant::now();
        timeout(3 * LIMIT, serve(LIMIT, server))
            .await
            .expect("the connection was dropped, not held, while its answer was not taken");
        assert!(began.elapsed() >= LIMIT, "dropped before request_timeout");
        assert!(began.elapsed() < 2 * LIMIT);
        // What the client gets then is the part that fitted in the pipe, and the end.
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert!(got.len() <= PIPE && got.len() < full, "{}", got.len());
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_answer_a_silent_client_is_left_after_linger() {
        // Bound: LINGER after the answer, for the client to close.
        const LIMIT: Duration = Duration::from_secs(10);
        assert!(LINGER < LIMIT);
        let (mut client, server) = duplex(4096);
        client.write_all(HEALTH).await.unwrap();
        let began = Instant::now();
        let served = tokio::spawn(serve(LIMIT, server));
        // The whole answer, then the end of it (the write side shut)...
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
        // ...and the client neither closes nor sends: let go after LINGER.
        timeout(3 * LINGER, served)
            .await
            .expect("the server let go of a silent client within LINGER")
            .unwrap();
        assert!(began.elapsed() >= LINGER && began.elapsed() < 2 * LINGER);
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_answer_at_most_linger_bytes_are_read() {
        // Bound: LINGER_BYTES read and dropped after the answer (counted: the client writes
        // until the server lets go of the pipe, which holds PIPE bytes).
        const LIMIT: Duration = Duration::from_secs(10);
        const PIPE: usize = 4096;
        let (client, server) = duplex(PIPE);
        let (mut from_server, mut to_server) = split(client);
        let served = tokio::spawn(serve(LIMIT, server));
        to_server.write_all(HEALTH).await.unwrap();
        let mut got = Vec::new();
        from_server.read_to_end(&mut got).await.unwrap();
        assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
        let began = Instant::now();
        let mut sent = 0usize;
        let chunk = [b'x'; 1024];
        // Four times the bound: without it, all of this would be read (within LINGER).
        while sent < 4 * LINGER_BYTES {
            match to_server.write(&chunk).await {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        timeout(3 * LINGER, served).await.unwrap().unwrap();
        assert!(
            sent <= LINGER_BYTES + PIPE,
            "{sent} bytes taken after the answer, bound {LINGER_BYTES} (+ {PIPE} in the pipe)"
        );
        // Stopped for the bytes, not for the time.
        assert!(began.elapsed() < LINGER);
    }

    #[tokio::test]
    async fn an_answer_not_made_within_request_timeout_is_503() {
        // Bound: request_timeout for the answer to be made (here the exposition waits for one
        // that is held); the scrape gives up, the connection is not held.
        const LIMIT: Duration = Duration::from_millis(200);
        let ex = exchange(LIMIT);
        let (release, held) = std::sync::mpsc::channel::<()>();
        let state = Arc::clone(&ex.state);
        let slow = tokio::spawn(async move {
            state
                .expositions()
                .get(super::super::scrape::Format::Prometheus, move || {
                    let _ = held.recv();
                    String::new()
                })
                .await
        });
        for _ in 0..10_000 {
            if ex.state.expositions().busy() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(ex.state.expositions().busy());
        let (mut client, server) = duplex(64 * 1024);
        client
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let (rd, wr) = split(server);
        timeout(
            Duration::from_secs(30),
            ex.serve(rd, wr, Instant::now() + LIMIT),
        )
        .await
        .expect("answered within request_timeout, not when the exposition was made");
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        let got = String::from_utf8_lossy(&got);
        assert!(got.starts_with("HTTP/1.1 503 "), "{got}");
        assert!(got.contains("request_timeout"), "{got}");
        release.send(()).unwrap();
        slow.await.unwrap().unwrap();
    }
}
