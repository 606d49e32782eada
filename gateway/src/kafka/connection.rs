//! One Kafka connection: read a size-prefixed frame, check it, decode it, hand it to its API's
//! handler, write the answer; one request at a time, in order, as Kafka brokers do.
//!
//! Before any decoder of the `kafka-protocol` crate sees a frame, the frame must be of an
//! advertised API and version and pass [`guard::check_request`]. An ApiVersions request of a
//! version above ours is answered in the v0 layout with UNSUPPORTED_VERSION (KIP-511); any
//! other unadvertised request, or a frame the guard refuses, closes the connection, as Kafka
//! does.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::handlers::{self, Request};
use super::{guard, versions, Door};
use crate::server::writer::AnswerWriter;
use crate::server::{Accepted, Head, RequestReader};

/// Why a connection ends early.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("frame of {0} bytes is outside 8..={1}")]
    FrameSize(i32, u32),
    #[error("API key {0} version {1} is not supported")]
    Unsupported(i16, i16),
    #[error("refused by the bounds guard: {0}")]
    Guard(#[from] guard::GuardError),
    #[error("cannot decode: {0}")]
    Decode(String),
    #[error("cannot encode the answer: {0}")]
    Encode(String),
}

pub async fn serve(socket: TcpStream, accepted: Accepted, door: Arc<Door>) {
    let peer = accepted.peer;
    let local = match socket.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!(%peer, "no local address: {e}");
            return;
        }
    };
    tracing::debug!(%peer, "kafka connection opened");
    let (rd, wr) = socket.into_split();
    let mut wr = AnswerWriter::new(wr, accepted.limits.idle_timeout);
    let mut reader = RequestReader::new(rd, accepted);
    let max = door.config.max_request_size;
    let reason: String = loop {
        let head: Head<4> = match reader.head().await {
            Ok(h) => h,
            Err(e) => break e.to_string(),
        };
        let size = i32::from_be_bytes(head.bytes);
        if size < 8 || size as u32 > max {
            // Kafka closes the connection without an answer.
            let e = ConnectionError::FrameSize(size, max);
            reader.refused(&e);
            break e.to_string();
        }
        let (frame, grant) = match reader.body(&head, size as usize).await {
            Ok((f, grant)) => (f.freeze(), grant),
            Err(e) => break e.to_string(),
        };
        let answer = match handle_frame(&door, local, peer, frame).await {
            Ok(Some(answer)) => answer,
            Ok(None) => continue, // acks=0
            Err(e) => {
                if e.is_peer_error() {
                    reader.refused(&e);
                } else {
                    tracing::warn!(%peer, "closing kafka connection: {e}");
                }
                break e.to_string();
            }
        };
        if wr.write_all(&answer).await.is_err() {
            break "write failed".into();
        }
        // The request's bytes count against the budget until it is answered.
        drop(grant);
    };
    tracing::debug!(%peer, reason, "kafka connection closed");
}

impl ConnectionError {
    /// True when the peer sent something the door refuses (as opposed to a failure of ours).
    pub fn is_peer_error(&self) -> bool {
        !matches!(self, ConnectionError::Encode(_))
    }
}

/// Checks, decodes and answers one frame. `Ok(None)`: nothing to send back (acks=0).
pub async fn handle_frame(
    door: &Door,
    local: SocketAddr,
    peer: SocketAddr,
    frame: Bytes,
) -> Result<Option<BytesMut>, ConnectionError> {
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    if !versions::accepted(api_key, version) {
        if api_key == versions::API_VERSIONS && version >= 0 {
            // KIP-511: a client that asked too high reads our range from a v0-layout answer.
            let body = handlers::api_versions::unsupported_version();
            return encode(correlation_id, api_key, 0, &body).map(Some);
        }
        return Err(ConnectionError::Unsupported(api_key, version));
    }
    guard::check_request(&frame)?;
    let api =
        ApiKey::try_from(api_key).map_err(|_| ConnectionError::Unsupported(api_key, version))?;
    let mut buf = frame;
    let header = RequestHeader::decode(&mut buf, api.request_header_version(version))
        .map_err(|e| ConnectionError::Decode(e.to_string()))?;
    let request = Request {
        door,
        local,
        peer,
        version,
        client_id: header.client_id.as_ref().map(|c| c.as_str().to_string()),
    };
    let body = handlers::dispatch(&request, api_key, &mut buf).await?;
    match body {
        None => Ok(None),
        Some(body) => encode(header.correlation_id, api_key, version, body.as_ref()).map(Some),
    }
}

/// A response body ready to encode at the request's version.
pub trait ResponseBody: Send {
    fn encode_body(&self, buf: &mut BytesMut, version: i16) -> anyhow::Result<()>;
}

impl<T: Encodable + Send> ResponseBody for T {
    fn encode_body(&self, buf: &mut BytesMut, version: i16) -> anyhow::Result<()> {
        self.encode(buf, version)
    }
}

fn encode(
    correlation_id: i32,
    api_key: i16,
    version: i16,
    body: &dyn ResponseBody,
) -> Result<BytesMut, ConnectionError> {
    let header_version = ApiKey::try_from(api_key)
        .map(|k| k.response_header_version(version))
        .unwrap_or(0);
    let mut out = BytesMut::with_capacity(256);
    out.extend_from_slice(&[0; 4]);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut out, header_version)
        .map_err(|e| ConnectionError::Encode(e.to_string()))?;
    body.encode_body(&mut out, version)
        .map_err(|e| ConnectionError::Encode(e.to_string()))?;
    let len = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok(out)
}

/// Decodes a request body of type `T` at `version`.
pub fn decode<T: Decodable>(buf: &mut Bytes, version: i16) -> Result<T, ConnectionError> {
    T::decode(buf, version).map_err(|e| ConnectionError::Decode(e.to_string()))
}
