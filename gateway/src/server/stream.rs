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

    /// The client's certificate chain (end entity first), when it presented one (mutual TLS):
    /// the hook for a door that wants to record who connected (not used yet).
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// A server and a client config over one self-signed certificate for `localhost`.
    fn configs() -> (rustls::ServerConfig, rustls::ClientConfig) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let provider = || Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
            )
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(cert.pem().as_bytes()).unwrap())
            .unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (server, client)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tls_answer_reaches_the_client_whole_without_a_flush() {
        // The doors write an answer and then wait for the next request, without flushing: the
        // whole answer must still reach a client that reads slowly, so that the server's last
        // write finds the socket full and rustls keeps records it could not send yet. Small
        // socket buffers and a paced reader make that last write wait on the socket.
        const ANSWER: usize = 2 << 20;
        let (server, client) = configs();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_send_buffer_size(8192).unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener: TcpListener = socket.listen(1).unwrap();
        let addr = listener.local_addr().unwrap();
        let serving = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let tls = tokio_rustls::TlsAcceptor::from(Arc::new(server))
                .accept(socket)
                .await
                .unwrap();
            let (rd, mut wr) = Connection::Tls(Box::new(tls)).into_split();
            let answer: Vec<u8> = (0..ANSWER).map(|i| i as u8).collect();
            wr.write_all(&answer).await.unwrap();
            // Hold the connection open, as a door waiting for the next request does.
            (rd, wr)
        });
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(8192).unwrap();
        let socket: TcpStream = socket.connect(addr).await.unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(client))
            .connect(ServerName::try_from("localhost").unwrap(), socket)
            .await
            .unwrap();
        let mut got = vec![0u8; ANSWER];
        let mut filled = 0;
        let read_all = async {
            while filled < ANSWER {
                let end = (filled + 4096).min(ANSWER);
                let n = tls.read(&mut got[filled..end]).await.unwrap();
                assert!(n > 0, "closed after {filled} bytes");
                filled += n;
                // Pacing only (the outcome does not depend on it): a reader slower than the
                // writer keeps the server's socket full.
                if filled % (64 << 10) < n {
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), read_all)
            .await
            .unwrap_or_else(|_| panic!("only {filled} of {ANSWER} answer bytes arrived"));
        assert!(got.iter().enumerate().all(|(i, &b)| b == i as u8));
        let _halves = serving.await.unwrap();
    }
}
