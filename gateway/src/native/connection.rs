//! One native connection: read a frame, dispatch it, write the answer, until the peer closes,
//! a frame is malformed beyond answering, or the server stops (after the request in hand).

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use wharf_protocol::framing::{response_header, RequestHeader, REQUEST_HEADER_LEN};

use super::errors::code;
use super::session::Session;
use crate::broker::Broker;
use crate::config::NativeConfig;
use crate::server::{read_frame, until_stopped, Stopped};

/// An answer: OK with a body (possibly in several pieces, written with one vectored write), or
/// an Iggy error code with an empty body.
#[derive(Debug)]
pub enum Reply {
    Ok(Vec<Bytes>),
    Error(u32),
}

impl Reply {
    pub fn empty() -> Reply {
        Reply::Ok(Vec::new())
    }
    pub fn body(b: BytesMut) -> Reply {
        Reply::Ok(vec![b.freeze()])
    }
}

/// Largest request accepted before the connection has logged in.
const MAX_UNAUTHENTICATED_PAYLOAD: u32 = 64 * 1024;

pub async fn serve(
    socket: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    config: Arc<NativeConfig>,
    mut stopped: Stopped,
) {
    let client_id = broker.connect_client(peer, "TCP");
    tracing::debug!(client_id, %peer, "connection opened");
    let mut session = Session::new(Arc::clone(&broker), client_id, Arc::clone(&config));
    let (mut rd, mut wr) = socket.into_split();
    let reason = loop {
        let mut head = [0u8; REQUEST_HEADER_LEN];
        tokio::select! {
            () = until_stopped(&mut stopped) => break "server stopping",
            r = rd.read_exact(&mut head) => if r.is_err() { break "closed by peer" },
        }
        let header = match RequestHeader::parse(&head, config.max_request_size) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(client_id, %peer, "refused frame: {e}");
                let _ = write_reply(&mut wr, Reply::Error(code::INVALID_COMMAND)).await;
                break "malformed frame";
            }
        };
        // Before login only small requests (ping, login) make sense: a stranger cannot make
        // the server buffer a large payload.
        if !session.authenticated() && header.payload_len > MAX_UNAUTHENTICATED_PAYLOAD {
            let _ = write_reply(&mut wr, Reply::Error(code::UNAUTHENTICATED)).await;
            break "large request before login";
        }
        let payload = tokio::select! {
            () = until_stopped(&mut stopped) => break "server stopping",
            p = read_frame(&mut rd, header.payload_len as usize) => match p {
                Ok(p) => p,
                Err(_) => break "closed mid-request",
            },
        };
        let reply = session.handle(header.code, payload).await;
        if write_reply(&mut wr, reply).await.is_err() {
            break "write failed";
        }
    };
    session.close();
    tracing::debug!(client_id, %peer, reason, "connection closed");
}

async fn write_reply(wr: &mut (impl AsyncWrite + Unpin), reply: Reply) -> std::io::Result<()> {
    let parts = match reply {
        Reply::Error(status) => return wr.write_all(&response_header(status, 0)).await,
        Reply::Ok(parts) => parts,
    };
    let len: usize = parts.iter().map(Bytes::len).sum();
    let head = response_header(0, len as u32);
    if parts.len() <= 1 && len < 64 * 1024 {
        let mut small = BytesMut::with_capacity(head.len() + len);
        small.extend_from_slice(&head);
        for p in &parts {
            small.extend_from_slice(p);
        }
        return wr.write_all(&small).await;
    }
    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(parts.len() + 1);
    slices.push(IoSlice::new(&head));
    slices.extend(parts.iter().map(|p| IoSlice::new(p)));
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        let n = wr.write_vectored(slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}
