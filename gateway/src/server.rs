//! What both doors' listeners share: one accept loop, one bounded frame reader and one shutdown
//! signal. A door brings only its connection handler.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Largest read reservation made ahead of bytes arriving: a client that declares a large frame
/// and sends nothing pins at most this much.
pub const READ_CHUNK: usize = 1 << 20;

/// The server-wide stop signal, as each task holds it.
pub type Stopped = watch::Receiver<bool>;

/// Resolves once the server is told to stop (or the signal is gone).
pub async fn until_stopped(stopped: &mut Stopped) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// Accepts connections until `stopped` turns true, serving each with `serve` on a task of its
/// own; then waits for every connection to finish the request it is serving.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    door: &'static str,
    stopped: Stopped,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr, Stopped) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    let mut stop = stopped.clone();
    loop {
        tokio::select! {
            () = until_stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    if let Err(e) = socket.set_nodelay(true) {
                        tracing::warn!(%peer, "cannot set TCP_NODELAY: {e}");
                    }
                    connections.spawn(serve(socket, peer, stopped.clone()));
                }
                Err(e) => {
                    // Out of descriptors and the like: keep serving the connections we have.
                    tracing::warn!("{door} accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Reads exactly `len` bytes, reserving memory only as they arrive (at most [`READ_CHUNK`]
/// ahead). `len` must already be checked against the door's frame limit.
pub async fn read_frame(
    rd: &mut (impl AsyncRead + Unpin),
    len: usize,
) -> std::io::Result<BytesMut> {
    let mut buf = BytesMut::with_capacity(len.min(READ_CHUNK));
    while buf.len() < len {
        let want = (len - buf.len()).min(READ_CHUNK);
        buf.reserve(want);
        let n = rd.take(want as u64).read_buf(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(buf)
}
