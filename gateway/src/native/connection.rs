//! One native connection: read a frame (under the idle and read timeouts and the request budget
//! of [`crate::server`]), dispatch it, write the answer, until the peer closes, a frame is
//! refused, a timeout ends it, or the server stops (after the request in hand, whose answer
//! gets [`crate::server::STOP_GRACE`]).

use std::io::IoSlice;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use wharf_protocol::framing::{response_header, FrameError, RequestHeader, REQUEST_HEADER_LEN};

use super::errors::code;
use super::session::Session;
use crate::broker::Broker;
use crate::config::NativeConfig;
use crate::metrics::Outcome;
use crate::server::stream::Connection;
use crate::server::writer::AnswerWriter;
use crate::server::{answer_before_stop, Accepted, Head, RequestReader};

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
    socket: Connection,
    accepted: Accepted,
    broker: Arc<Broker>,
    config: Arc<NativeConfig>,
) {
    let peer = accepted.peer;
    let client_id = broker.connect_client(peer, "TCP");
    tracing::debug!(client_id, %peer, "connection opened");
    let mut session = Session::new(Arc::clone(&broker), client_id, Arc::clone(&config));
    let (rd, wr) = socket.into_split();
    let mut wr = AnswerWriter::new(wr, accepted.limits.idle_timeout);
    let mut reader = RequestReader::new(rd, accepted);
    let mut stopped = reader.stop_signal();
    let reason: String = loop {
        let head: Head<REQUEST_HEADER_LEN> = match reader.head().await {
            Ok(h) => h,
            Err(e) => break e.to_string(),
        };
        let header = match RequestHeader::parse(&head.bytes, config.max_request_size) {
            Ok(h) => h,
            Err(e) => {
                reader.refused(&e);
                let body = match e {
                    FrameError::TooLarge { len, .. } => Some(len),
                    FrameError::TooShort(_) => None,
                };
                refuse(
                    &mut reader,
                    &mut wr,
                    &head,
                    body,
                    code::INVALID_COMMAND,
                    &config,
                )
                .await;
                break format!("refused frame: {e}");
            }
        };
        // Before login only small requests (ping, login) make sense: a stranger cannot make
        // the server buffer a large payload.
        if !session.authenticated() && header.payload_len > MAX_UNAUTHENTICATED_PAYLOAD {
            reader.refused(&format_args!(
                "request of {} bytes before login (at most {MAX_UNAUTHENTICATED_PAYLOAD})",
                header.payload_len
            ));
            let body = Some(header.payload_len);
            refuse(
                &mut reader,
                &mut wr,
                &head,
                body,
                code::UNAUTHENTICATED,
                &config,
            )
            .await;
            break "large request before login".into();
        }
        let (payload, grant) = match reader.body(&head, header.payload_len as usize).await {
            Ok(p) => p,
            Err(e) => break e.to_string(),
        };
        let started = Instant::now();
        let reply = session.handle(header.code, payload).await;
        let outcome = match reply {
            Reply::Ok(_) => Outcome::Ok,
            Reply::Error(_) => Outcome::Error,
        };
        broker
            .metrics()
            .native_request(header.code, started.elapsed(), outcome);
        let written = answer_before_stop(&mut stopped, write_reply(&mut wr, reply)).await;
        // The request's bytes count against the budget until it is answered.
        drop(grant);
        if written.is_err() {
            break "write failed".into();
        }
    };
    session.close();
    tracing::debug!(client_id, %peer, reason, "connection closed");
}

/// Answers a refused frame with `status` and ends the connection. Clients (the Iggy SDK among
/// them) send a whole frame before reading the answer, and closing on unread bytes resets the
/// connection, so the client would see a broken pipe instead of the code: the rest of the
/// frame (`body` bytes) is read and thrown away first, if it is at most twice
/// `max_request_size` (within the request read timeout). Longer frames are answered at once.
async fn refuse<const N: usize>(
    reader: &mut RequestReader<impl AsyncRead + Unpin>,
    wr: &mut (impl AsyncWrite + Unpin),
    head: &Head<N>,
    body: Option<u32>,
    status: u32,
    config: &NativeConfig,
) {
    let bound = 2 * u64::from(config.max_request_size);
    if let Some(len) = body.filter(|&len| u64::from(len) <= bound) {
        if reader.discard(head, len as usize).await.is_err() {
            return;
        }
    }
    if write_reply(wr, Reply::Error(status)).await.is_ok() {
        // The answer and then the end of the stream: the client reads the code, then EOF.
        let _ = wr.shutdown().await;
    }
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
