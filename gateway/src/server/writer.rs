//! The write side of a connection under the idle timeout: an answer the client does not take
//! (no byte of it accepted by the socket for `connections_max_idle`) ends the connection, as
//! Kafka closes connections with no activity. Without it a client that sends requests and never
//! reads would keep its connection, and the budget its request holds, forever.

use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::time::{Instant, Sleep};

/// Wraps a connection's write half; a write that makes no progress for `limit` fails with
/// `TimedOut`.
#[derive(Debug)]
pub struct AnswerWriter<W> {
    inner: W,
    limit: Duration,
    stall: Pin<Box<Sleep>>,
    /// True while a write is waiting on the socket and `stall` runs for it.
    armed: bool,
}

impl<W> AnswerWriter<W> {
    pub fn new(inner: W, limit: Duration) -> Self {
        AnswerWriter {
            inner,
            limit,
            stall: Box::pin(tokio::time::sleep(limit)),
            armed: false,
        }
    }

    /// Maps the inner poll: progress disarms the stall timer; waiting arms it (once) and fails
    /// when it fires.
    fn guard<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match polled {
            Poll::Ready(r) => {
                self.armed = false;
                Poll::Ready(r)
            }
            Poll::Pending => {
                if !self.armed {
                    self.stall.as_mut().reset(Instant::now() + self.limit);
                    self.armed = true;
                }
                match self.stall.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("the client took no answer bytes for {:?}", self.limit),
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for AnswerWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.guard(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.guard(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.guard(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.guard(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn a_write_without_progress_for_the_limit_fails_and_progress_keeps_it_alive() {
        // A pipe with room for 4 bytes that nobody reads.
        let (client, server) = tokio::io::duplex(4);
        let mut w = AnswerWriter::new(server, Duration::from_secs(600));
        let started = Instant::now();
        let e = w.write_all(b"answer").await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert!(
            started.elapsed() >= Duration::from_secs(600),
            "bound: connections_max_idle"
        );
        drop(client);

        // A slow reader that takes a byte now and then is not cut off.
        let (mut client, server) = tokio::io::duplex(1);
        let mut w = AnswerWriter::new(server, Duration::from_secs(600));
        let reader = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut got = Vec::new();
            let mut b = [0u8; 1];
            while client.read(&mut b).await.unwrap() == 1 {
                got.push(b[0]);
                tokio::time::sleep(Duration::from_secs(300)).await;
            }
            got
        });
        w.write_all(b"slowly").await.unwrap();
        drop(w);
        assert_eq!(reader.await.unwrap(), b"slowly");
    }
}
