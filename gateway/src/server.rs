//! What both doors' listeners share: one accept loop with the connection caps ([`limits`]), one
//! request reader that applies the idle timeout, the request read timeout and the request
//! budget ([`budget`]), TLS for the listeners that speak it ([`stream`]), the peer log, and one
//! shutdown signal. A door brings only its connection handler and its framing.
//!
//! A TLS handshake runs on the connection's own task, after the caps admitted it, within the
//! door's `request_read_timeout`: a client that opens a connection and stalls the handshake
//! holds one slot for that long at most.
//!
//! Timing of one request, as the reader applies it:
//! - idle: from the end of the previous answer (or the accept) to the first byte of the next
//!   request, at most `connections_max_idle`;
//! - read: from that first byte until the frame is whole, at most `request_read_timeout`, not
//!   counting the time spent waiting for the budget (that wait is the server's doing, and it
//!   ends when the server stops);
//! - budget: taken for the frame's declared size once its head has been checked and before any
//!   memory is reserved for its body, held until the request is answered (within the peer's
//!   share, with a reserve for small requests: [`budget`]);
//! - answer: a write the client takes no byte of for `connections_max_idle` ends the connection
//!   ([`writer::AnswerWriter`]).
//!
//! Stopping: no connection starts reading a new request; an answer being written (or written
//! after stop) gets [`STOP_GRACE`], after which its connection is dropped
//! ([`answer_before_stop`]); the accept loop waits at most [`STOP_DRAIN`] for its connections and
//! then abandons the rest, so a client that stops reading cannot hold the server open.

pub mod budget;
pub mod limits;
pub mod stream;
pub mod writer;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_rustls::TlsAcceptor;

use crate::config::ConnectionLimits;
use crate::peer_log::{Misbehaviour, PeerLog};
use budget::{BudgetError, BudgetGrant, RequestBudget};
use limits::ConnectionCaps;
use stream::Connection;

/// How long an answer may still take to write once the server is stopping.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// How long the accept loop waits, once stopping, for its connections to finish the requests
/// in hand (handlers, then answers within [`STOP_GRACE`]) before it abandons them.
pub const STOP_DRAIN: Duration = Duration::from_secs(10);

/// Largest first read reservation for a frame: a client that declares a large frame and sends
/// nothing pins at most this much (within its budget grant).
pub const READ_CHUNK: usize = 1 << 20;

/// The server-wide stop signal, as each task holds it.
pub type Stopped = watch::Receiver<bool>;

/// Resolves once the server is told to stop (or the signal is gone).
pub async fn until_stopped(stopped: &mut Stopped) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// Writes an answer with `write`, unless the server has been stopping for [`STOP_GRACE`]: a
/// client that does not read its answers cannot hold the shutdown up.
pub async fn answer_before_stop<T>(
    stopped: &mut Stopped,
    write: impl Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    tokio::select! {
        r = write => r,
        () = async {
            until_stopped(stopped).await;
            tokio::time::sleep(STOP_GRACE).await;
        } => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("server stopping; answer not taken within {STOP_GRACE:?}"),
        )),
    }
}

/// What both doors share: the request budget, the peer log and the metrics.
#[derive(Debug, Clone)]
pub struct Shared {
    pub budget: Arc<RequestBudget>,
    pub peer_log: Arc<PeerLog>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// What the accept loop hands each connection it admits.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub door: &'static str,
    pub peer: SocketAddr,
    pub limits: ConnectionLimits,
    pub shared: Shared,
    pub stopped: Stopped,
}

/// One listener as the accept loop runs it: its door, the door's limits and connection caps
/// (shared by all the door's listeners), and the TLS acceptor when it speaks TLS.
#[derive(Clone)]
pub struct Entrance {
    pub door: &'static str,
    pub limits: ConnectionLimits,
    pub caps: Arc<ConnectionCaps>,
    pub tls: Option<TlsAcceptor>,
}

impl std::fmt::Debug for Entrance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entrance")
            .field("door", &self.door)
            .field("limits", &self.limits)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Entrance {
    /// A listener of `door` under `limits`, with connection caps of its own.
    pub fn new(door: &'static str, limits: ConnectionLimits) -> Entrance {
        let caps = ConnectionCaps::new(limits.max_connections, limits.max_connections_per_ip);
        Entrance {
            door,
            limits,
            caps,
            tls: None,
        }
    }

    /// The same door's caps and limits for another listener, speaking TLS with `tls`.
    pub fn with_tls(&self, tls: Option<TlsAcceptor>) -> Entrance {
        Entrance {
            tls,
            ..self.clone()
        }
    }
}

/// Why a TLS handshake did not complete.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("server stopping")]
    Stopped,
    #[error("TLS handshake not done within {0:?} (request_read_timeout)")]
    Timeout(Duration),
    #[error("TLS handshake failed: {0}")]
    Failed(std::io::Error),
}

/// Runs the server side of a TLS handshake on `socket`, within the door's request read timeout
/// and until the server stops.
async fn handshake(
    acceptor: &TlsAcceptor,
    socket: TcpStream,
    accepted: &Accepted,
) -> Result<Connection, HandshakeError> {
    let limit = accepted.limits.request_read_timeout;
    let mut stopped = accepted.stopped.clone();
    tokio::select! {
        () = until_stopped(&mut stopped) => Err(HandshakeError::Stopped),
        r = timeout(limit, acceptor.accept(socket)) => match r {
            Err(_) => Err(HandshakeError::Timeout(limit)),
            Ok(Err(e)) => Err(HandshakeError::Failed(e)),
            Ok(Ok(tls)) => Ok(Connection::Tls(Box::new(tls))),
        },
    }
}

/// Accepts connections on `listener` until `stopped` turns true, serving each with `serve` on a
/// task of its own (after the TLS handshake, for a TLS listener); then waits (at most
/// [`STOP_DRAIN`]) for every connection to finish the request it is serving, and drops those
/// that have not. A connection over the door's caps is closed at once and noted in the peer
/// log, as is a failed TLS handshake.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    entrance: Entrance,
    shared: Shared,
    stopped: Stopped,
    serve: F,
) where
    F: Fn(Connection, Accepted) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Entrance {
        door,
        limits,
        caps,
        tls,
    } = entrance;
    let serve = Arc::new(serve);
    let door_kind = crate::metrics::DoorKind::from_label(door);
    let mut connections = JoinSet::new();
    let mut stop = stopped.clone();
    loop {
        tokio::select! {
            () = until_stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let slot = match caps.admit(peer.ip()) {
                        Ok(slot) => slot,
                        Err(over) => {
                            if let Some(d) = door_kind {
                                shared.metrics.connection_refused(d);
                            }
                            shared.peer_log.note(door, peer.ip(), Misbehaviour::OverLimit, &over);
                            drop(socket);
                            continue;
                        }
                    };
                    if let Err(e) = socket.set_nodelay(true) {
                        tracing::debug!(%peer, "cannot set TCP_NODELAY: {e}");
                    }
                    let accepted = Accepted {
                        door,
                        peer,
                        limits: limits.clone(),
                        shared: shared.clone(),
                        stopped: stopped.clone(),
                    };
                    let serve = Arc::clone(&serve);
                    let tls = tls.clone();
                    // Counted open from admission (TLS handshake included) until its task ends.
                    let counted = door_kind.map(|d| shared.metrics.connection_opened(d));
                    connections.spawn(async move {
                        let _counted = counted;
                        let connection = match tls {
                            None => Connection::Plain(socket),
                            Some(acceptor) => match handshake(&acceptor, socket, &accepted).await {
                                Ok(c) => c,
                                Err(e) => {
                                    handshake_failed(&accepted, &e);
                                    return;
                                }
                            },
                        };
                        serve(connection, accepted).await;
                        drop(slot);
                    });
                }
                Err(e) => {
                    // Out of descriptors and the like: keep serving the connections we have.
                    shared.peer_log.accept_failed(door, &e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drained = timeout(STOP_DRAIN, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            door,
            left = connections.len(),
            "connections still busy {STOP_DRAIN:?} after the stop; dropping them"
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
}

/// Notes a TLS handshake that did not complete in the peer log; a client that closes before
/// sending anything (a port check) is not misbehaving and is only traced.
fn handshake_failed(accepted: &Accepted, e: &HandshakeError) {
    let peer = accepted.peer;
    match e {
        HandshakeError::Stopped => {}
        HandshakeError::Failed(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            tracing::debug!(%peer, door = accepted.door, "closed during the TLS handshake");
        }
        HandshakeError::Timeout(_) | HandshakeError::Failed(_) => {
            accepted
                .shared
                .peer_log
                .note(accepted.door, peer.ip(), Misbehaviour::TlsHandshake, e);
        }
    }
}

/// Why a connection stops reading requests.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("server stopping")]
    Stopped,
    #[error("closed by peer")]
    Closed,
    #[error("closed mid-request")]
    ClosedMidRequest,
    #[error("idle for {0:?} (connections_max_idle)")]
    Idle(Duration),
    #[error("request not whole within {0:?} (request_read_timeout)")]
    ReadTimeout(Duration),
    #[error("{0}")]
    Budget(#[from] BudgetError),
    #[error("read failed: {0}")]
    Io(std::io::Error),
}

/// The head of a request (a door's fixed-size prefix) and the time by which its frame must be
/// whole.
#[derive(Debug)]
pub struct Head<const N: usize> {
    pub bytes: [u8; N],
    deadline: Instant,
}

/// Reads a connection's requests under the idle timeout, the request read timeout and the
/// request budget.
#[derive(Debug)]
pub struct RequestReader<R> {
    rd: R,
    connection: Accepted,
}

impl<R: AsyncRead + Unpin> RequestReader<R> {
    pub fn new(rd: R, connection: Accepted) -> Self {
        RequestReader { rd, connection }
    }

    /// The stop signal, for the door's answer writes ([`answer_before_stop`]).
    pub fn stop_signal(&self) -> Stopped {
        self.connection.stopped.clone()
    }

    /// Notes in the peer log that this connection's peer sent a frame the door refuses.
    pub fn refused(&self, what: &dyn std::fmt::Display) {
        let c = &self.connection;
        c.shared
            .peer_log
            .note(c.door, c.peer.ip(), Misbehaviour::RefusedFrame, what);
    }

    /// Waits (at most the idle timeout) for the next request to begin, then reads its `N`-byte
    /// head (within the request read timeout).
    pub async fn head<const N: usize>(&mut self) -> Result<Head<N>, ReadError> {
        let mut bytes = [0u8; N];
        let idle = self.connection.limits.idle_timeout;
        let first = tokio::select! {
            () = until_stopped(&mut self.connection.stopped) => return Err(ReadError::Stopped),
            r = timeout(idle, self.rd.read(&mut bytes[..1.min(N)])) => r,
        };
        match first {
            Err(_) => return Err(ReadError::Idle(idle)),
            Ok(Ok(0)) if N > 0 => return Err(ReadError::Closed),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(ReadError::Io(e)),
        }
        let deadline = Instant::now() + self.connection.limits.request_read_timeout;
        if N > 1 {
            tokio::select! {
                () = until_stopped(&mut self.connection.stopped) => return Err(ReadError::Stopped),
                r = timeout_at(deadline, self.rd.read_exact(&mut bytes[1..])) => {
                    self.finished(r)?;
                }
            }
        }
        Ok(Head { bytes, deadline })
    }

    /// Takes `len` bytes of the request budget (waiting, unread, until they are free), then
    /// reads the `len`-byte body of the request begun by `head`. The grant is to be held until
    /// the request is answered.
    pub async fn body<const N: usize>(
        &mut self,
        head: &Head<N>,
        len: usize,
    ) -> Result<(BytesMut, BudgetGrant), ReadError> {
        let waiting_since = Instant::now();
        let grant = tokio::select! {
            () = until_stopped(&mut self.connection.stopped) => return Err(ReadError::Stopped),
            g = self.connection.shared.budget.acquire(self.connection.peer.ip(), len) => g?,
        };
        // The wait for the budget does not count against the client.
        let deadline = head.deadline + waiting_since.elapsed();
        let body = tokio::select! {
            () = until_stopped(&mut self.connection.stopped) => return Err(ReadError::Stopped),
            r = timeout_at(deadline, read_frame(&mut self.rd, len)) => self.finished(r)?,
        };
        Ok((body, grant))
    }

    /// Reads and throws away the `len`-byte body of the request begun by `head` (within the
    /// request read timeout), so that an answer refusing it reaches a client that sends the
    /// whole frame before reading. Uses no buffer beyond a small fixed one and no budget.
    pub async fn discard<const N: usize>(
        &mut self,
        head: &Head<N>,
        len: usize,
    ) -> Result<(), ReadError> {
        let mut scratch = [0u8; 8192];
        let mut left = len;
        while left > 0 {
            let want = left.min(scratch.len());
            let n = tokio::select! {
                () = until_stopped(&mut self.connection.stopped) => return Err(ReadError::Stopped),
                r = timeout_at(head.deadline, self.rd.read(&mut scratch[..want])) => self.finished(r)?,
            };
            if n == 0 {
                return Err(ReadError::ClosedMidRequest);
            }
            left -= n;
        }
        Ok(())
    }

    /// Maps the outcome of a read inside a request, noting a timeout in the peer log.
    fn finished<T>(
        &self,
        r: Result<std::io::Result<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, ReadError> {
        match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(ReadError::ClosedMidRequest)
            }
            Ok(Err(e)) => Err(ReadError::Io(e)),
            Err(_) => {
                let limit = self.connection.limits.request_read_timeout;
                let e = ReadError::ReadTimeout(limit);
                let c = &self.connection;
                c.shared
                    .peer_log
                    .note(c.door, c.peer.ip(), Misbehaviour::ReadTimeout, &e);
                Err(e)
            }
        }
    }
}

/// Reads exactly `len` bytes. The buffer grows as bytes arrive (first [`READ_CHUNK`], then
/// doubling) and never beyond `len`, so what a frame pins stays within its budget grant.
/// `len` must already be checked against the door's frame limit.
pub async fn read_frame(
    rd: &mut (impl AsyncRead + Unpin),
    len: usize,
) -> std::io::Result<BytesMut> {
    let mut buf: Vec<u8> = Vec::with_capacity(len.min(READ_CHUNK));
    while buf.len() < len {
        if buf.capacity() == buf.len() {
            let target = buf.capacity().saturating_mul(2).max(READ_CHUNK).min(len);
            buf.reserve_exact(target - buf.len());
        }
        let want = (buf.capacity() - buf.len()).min(len - buf.len());
        let n = (&mut *rd).take(want as u64).read_buf(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    // Capacity equals length here, so both conversions keep the allocation (no copy).
    Ok(BytesMut::from(bytes::Bytes::from(buf)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_frame_buffer_never_grows_beyond_the_declared_length() {
        // Bound: the memory a frame pins is within its budget grant (its declared length), for
        // lengths around the first reservation and the doublings after it.
        for len in [
            0,
            1,
            READ_CHUNK - 1,
            READ_CHUNK,
            READ_CHUNK + 1,
            3 * READ_CHUNK + 7,
        ] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut rd = &data[..];
            let frame = read_frame(&mut rd, len).await.unwrap();
            assert_eq!(&frame[..], &data[..]);
            assert!(
                frame.capacity() <= len.max(1),
                "{len}: capacity {}",
                frame.capacity()
            );
        }
        // A frame cut short is an error, not a short frame.
        let mut rd = &[1u8, 2, 3][..];
        let e = read_frame(&mut rd, 4).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
