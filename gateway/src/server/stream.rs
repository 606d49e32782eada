//! A connection's byte stream as the doors see it: plain TCP, or TLS over TCP once the handshake
//! is done ([`super::accept_loop`] runs it). Each is split into a read half and a write half;
//! the plain halves are the socket's own (no lock per read or write, as before TLS existed),
//! the TLS halves share the TLS session.
//!
//! A TLS write is complete only once its records are handed to the socket: rustls buffers
//! what it cannot send at once, and the doors write an answer without flushing, so the write
//! half flushes each write before reporting it done. Otherwise the end of an answer could wait
//! in the buffer for the next answer.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// An accepted connection, plain or TLS.
#[derive(Debug)]
pub enum Connection {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection {
    /// The address the client reached us on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            Connection::Plain(s) => s.local_addr(),
            Connection::Tls(s) => s.get_ref().0.local_addr(),
        }
    }

    /// True for a TLS connection.
    pub fn is_tls(&self) -> bool {
        matches!(self, Connection::Tls(_))
    }

    /// The client's certificate chain (end entity first), when it presented one (mutual TLS).
    pub fn peer_certificates(&self) -> Option<&[rustls_pki_types::CertificateDer<'static>]> {
        match self {
            Connection::Plain(_) => None,
            Connection::Tls(s) => s.get_ref().1.peer_certificates(),
        }
    }

    /// Splits into halves that can be read and written independently.
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Connection::Plain(s) => {
                let (rd, wr) = s.into_split();
                (ReadHalf::Plain(rd), WriteHalf::Plain(wr))
            }
            Connection::Tls(s) => {
                let (rd, wr) = tokio::io::split(*s);
                (
                    ReadHalf::Tls(rd),
                    WriteHalf::Tls {
                        inner: wr,
                        taken: None,
                    },
                )
            }
        }
    }
}

/// The read half of a [`Connection`].
#[derive(Debug)]
pub enum ReadHalf {
    Plain(OwnedReadHalf),
    Tls(tokio::io::ReadHalf<TlsStream<TcpStream>>),
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Plain(r) => Pin::new(r).poll_read(cx, buf),
            ReadHalf::Tls(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

/// The write half of a [`Connection`].
#[derive(Debug)]
pub enum WriteHalf {
    Plain(OwnedWriteHalf),
    Tls {
        inner: tokio::io::WriteHalf<TlsStream<TcpStream>>,
        /// Bytes the TLS session took whose records are not all on the socket yet: reported
        /// written once they are.
        taken: Option<usize>,
    },
}

impl WriteHalf {
    /// Writes through the TLS session with `write`, then flushes before reporting the bytes
    /// taken (see the module comment).
    fn poll_tls(
        inner: &mut tokio::io::WriteHalf<TlsStream<TcpStream>>,
        taken: &mut Option<usize>,
        cx: &mut Context<'_>,
        write: impl FnOnce(
            Pin<&mut tokio::io::WriteHalf<TlsStream<TcpStream>>>,
            &mut Context<'_>,
        ) -> Poll<std::io::Result<usize>>,
    ) -> Poll<std::io::Result<usize>> {
        let n = match *taken {
            Some(n) => n,
            None => {
                let n = ready!(write(Pin::new(&mut *inner), cx))?;
                *taken = Some(n);
                n
            }
        };
        let flushed = ready!(Pin::new(&mut *inner).poll_flush(cx));
        *taken = None;
        Poll::Ready(flushed.map(|()| n))
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Plain(w) => Pin::new(w).poll_write(cx, buf),
            WriteHalf::Tls { inner, taken } => {
                WriteHalf::poll_tls(inner, taken, cx, |w, cx| w.poll_write(cx, buf))
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Plain(w) => Pin::new(w).poll_write_vectored(cx, bufs),
            WriteHalf::Tls { inner, taken } => {
                WriteHalf::poll_tls(inner, taken, cx, |w, cx| w.poll_write_vectored(cx, bufs))
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            WriteHalf::Plain(w) => w.is_write_vectored(),
            WriteHalf::Tls { inner, .. } => inner.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Plain(w) => Pin::new(w).poll_flush(cx),
            WriteHalf::Tls { inner, .. } => Pin::new(inner).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Plain(w) => Pin::new(w).poll_shutdown(cx),
            WriteHalf::Tls { inner, .. } => Pin::new(inner).poll_shutdown(cx),
        }
    }
}
