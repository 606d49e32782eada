//! One Kafka connection: read a size-prefixed frame, check it, decode it, hand it to its API's
//! handler, write the answer; one request at a time, in order, as Kafka brokers do.
//!
//! An answer is encoded into a [`ResponseFrame`], in which a large field (a Fetch answer's
//! records) may be a part of its own: the parts are written from where they already are with
//! vectored writes, not copied into one buffer.
//!
//! Before any decoder of the `kafka-protocol` crate sees a frame, the frame must be of an
//! advertised API and version and pass [`guard::check_request`]. An ApiVersions request of a
//! version above ours is answered in the v0 layout with UNSUPPORTED_VERSION (KIP-511); any
//! other unadvertised request, or a frame the guard refuses, closes the connection, as Kafka
//! does.
//!
//! Each connection has a [`Session`]: on a SASL listener it decides, before a frame is decoded,
//! whether the request may be served (see [`super::session`]); SaslHandshake and
//! SaslAuthenticate are run against it here, and an answer that ends the exchange (a failed
//! authentication, an unsupported mechanism) is written before the connection closes.
//!
//! Client quotas (KIP-219): a Produce's request bytes are recorded here against the producer's
//! byte-rate quota ([`crate::broker::quotas`]); a Fetch answer is measured against the
//! consumer's by the Fetch handler, which alone knows the throttled answer's shape (no
//! partitions, its fetch session untouched). Over a quota, the answer carries
//! `throttle_time_ms` and goes out at once, and nothing more is read from the connection until
//! that time is over.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::handlers::{self, sasl_authenticate, sasl_handshake, Request};
use super::session::{After, Gate, Session};
use super::{guard, versions, Door};

/// Largest frame read before SASL authentication on a SASL listener: Kafka's default
/// `sasl.server.max.receive.size` (512 KiB).
pub const MAX_UNAUTHENTICATED_FRAME: u32 = 512 * 1024;
use crate::broker::quotas::QuotaKind;
use crate::broker::Principal;
use crate::config::KafkaListener;

/// Kafka's UNSUPPORTED_VERSION, the answer to an ApiVersions above our range.
const UNSUPPORTED_VERSION: i16 = 35;
use crate::server::stream::Connection;
use crate::server::writer::AnswerWriter;
use crate::server::{answer_before_stop, Accepted, Head, RequestReader};

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

/// Serves one connection that came in on `listener`.
pub async fn serve(
    socket: Connection,
    accepted: Accepted,
    door: Arc<Door>,
    listener: Arc<KafkaListener>,
) {
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
    let mut stopped = reader.stop_signal();
    let max_request_size = door.config.max_request_size;
    let mut session = Session::new(&listener, peer);
    let reason: String = loop {
        let head: Head<4> = match reader.head().await {
            Ok(h) => h,
            Err(e) => break e.to_string(),
        };
        let size = i32::from_be_bytes(head.bytes);
        // Before SASL authentication, frames are capped as Kafka's
        // `sasl.server.max.receive.size`: an unauthenticated peer cannot make the server read
        // and budget max_request_size bytes.
        let max = if session.requires_sasl() && session.user_id().is_none() {
            max_request_size.min(MAX_UNAUTHENTICATED_FRAME)
        } else {
            max_request_size
        };
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
        let api_key = i16::from_be_bytes([frame[0], frame[1]]);
        let handled = match session.gate(&door, api_key, tokio::time::Instant::now()) {
            Gate::Close(why) => {
                tracing::info!(%peer, "closing kafka connection: {why}");
                break why.to_string();
            }
            Gate::Serve => {
                handle_frame(&door, &listener, session.principal(), local, peer, frame).await
            }
            Gate::Sasl => handle_sasl_frame(&door, &listener, &mut session, local, peer, frame)
                .await
                .map(|(answer, after)| Handled::Answer(answer, after, Duration::ZERO)),
        };
        let (answer, after, mute) = match handled {
            Ok(Handled::Answer(answer, after, mute)) => (answer, after, mute),
            Ok(Handled::Unanswered(mute)) => {
                // acks=0: no answer, but a producer over its quota is muted all the same.
                drop(grant);
                if muted(&door, mute, &mut stopped).await {
                    break "stopped".into();
                }
                continue;
            }
            Ok(Handled::Close) => {
                // acks=0 with an error: as Kafka, close so the producer refreshes its metadata.
                tracing::debug!(%peer, "closing kafka connection: acks=0 produce failed");
                break "acks=0 produce failed".into();
            }
            Err(e) => {
                if e.is_peer_error() {
                    reader.refused(&e);
                } else {
                    tracing::warn!(%peer, "closing kafka connection: {e}");
                }
                break e.to_string();
            }
        };
        if answer_before_stop(&mut stopped, write_frame(&mut wr, answer))
            .await
            .is_err()
        {
            break "write failed".into();
        }
        // The request's bytes count against the budget until it is answered.
        drop(grant);
        // quota (KIP-219): the answer carries throttle_time_ms and goes out at once; the
        // connection then reads nothing more from the client until the throttle time is over.
        if muted(&door, mute, &mut stopped).await {
            break "stopped".into();
        }
        if after == After::Close {
            // As Kafka (connection.failed.authentication.delay.ms): the failure answer is read
            // before the close, and a client that retries at once is slowed down. Some clients
            // (kafka-python) drop data that arrives together with the close.
            let delay = door.config.failed_authentication_delay;
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = crate::server::until_stopped(&mut stopped) => {}
            }
            break "SASL authentication failed".into();
        }
    };
    session.close(&door);
    tracing::debug!(%peer, reason, "kafka connection closed");
}

/// Waits out a quota's throttle time (nothing is read from the client meanwhile) and counts
/// it once over, before the next read (`wharf_kafka_quota_muted_seconds_total`); true when
/// the server stopped during the wait.
async fn muted(door: &Door, mute: Duration, stopped: &mut crate::server::Stopped) -> bool {
    if mute.is_zero() {
        return false;
    }
    tokio::select! {
        () = tokio::time::sleep(mute) => {
            door.broker.metrics().kafka_quota_muted(mute);
            false
        }
        () = crate::server::until_stopped(stopped) => true,
    }
}

impl ConnectionError {
    /// True when the peer sent something the door refuses (as opposed to a failure of ours).
    pub fn is_peer_error(&self) -> bool {
        !matches!(self, ConnectionError::Encode(_))
    }
}

/// A frame that passed the version firewall and the guard.
enum Checked {
    /// Answered already (an ApiVersions of a version above ours).
    Answered(Vec<Bytes>),
    Request {
        api_key: i16,
        version: i16,
        header: RequestHeader,
        body: Bytes,
    },
}

/// Checks a frame's API and version and its lengths, and decodes its header.
fn check_frame(frame: Bytes) -> Result<Checked, ConnectionError> {
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    if !versions::accepted(api_key, version) {
        if api_key == versions::API_VERSIONS && version >= 0 {
            // KIP-511: a client that asked too high reads our range from a v0-layout answer.
            let body = handlers::api_versions::unsupported_version();
            return encode(correlation_id, api_key, 0, &body).map(Checked::Answered);
        }
        return Err(ConnectionError::Unsupported(api_key, version));
    }
    guard::check_request(&frame)?;
    let api =
        ApiKey::try_from(api_key).map_err(|_| ConnectionError::Unsupported(api_key, version))?;
    let mut body = frame;
    let header = RequestHeader::decode(&mut body, api.request_header_version(version))
        .map_err(|e| ConnectionError::Decode(e.to_string()))?;
    Ok(Checked::Request {
        api_key,
        version,
        header,
        body,
    })
}

/// Records one request of `api_key` that started at `started` (`None`: metrics off) in the
/// server's metrics; one that ended the connection counts as a `CONNECTION_CLOSED` error (the
/// answer's own error codes were counted when it was encoded).
fn count_request<T>(
    door: &Door,
    api_key: i16,
    started: Option<Instant>,
    result: Result<T, ConnectionError>,
) -> Result<T, ConnectionError> {
    let metrics = door.broker.metrics();
    metrics.kafka_request(api_key, started);
    if result.is_err() {
        metrics.kafka_connection_closed(api_key);
    }
    result
}

/// Counts the error codes of an answer of `api_key` (only when metrics are on: classifying
/// walks every partition of the answer).
fn count_errors(door: &Door, api_key: i16, body: &dyn ResponseBody) {
    let metrics = door.broker.metrics();
    if metrics.enabled() {
        body.errors(&mut |code| metrics.kafka_error(api_key, code));
    }
}

/// What a handled frame leaves the connection to do.
#[derive(Debug)]
pub enum Handled {
    /// Write these parts, then keep the connection open or close it; then read nothing more
    /// for the duration (a client over its byte-rate quota, KIP-219).
    Answer(Vec<Bytes>, After, Duration),
    /// Nothing to send back: an acks=0 Produce that succeeded; then read nothing more for the
    /// duration (a producer over its quota).
    Unanswered(Duration),
    /// Close without an answer: an acks=0 Produce with an error (Kafka's `closeConnection`).
    Close,
}

impl Handled {
    /// The parts to write, when there is an answer.
    pub fn into_parts(self) -> Option<Vec<Bytes>> {
        match self {
            Handled::Answer(parts, _, _) => Some(parts),
            Handled::Unanswered(_) | Handled::Close => None,
        }
    }
}

/// Checks, decodes and answers one frame.
pub async fn handle_frame(
    door: &Door,
    listener: &KafkaListener,
    principal: &Principal,
    local: SocketAddr,
    peer: SocketAddr,
    frame: Bytes,
) -> Result<Handled, ConnectionError> {
    let started = door.broker.metrics().clock();
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let result = answer_frame(door, listener, principal, local, peer, frame).await;
    count_request(door, api_key, started, result)
}

async fn answer_frame(
    door: &Door,
    listener: &KafkaListener,
    principal: &Principal,
    local: SocketAddr,
    peer: SocketAddr,
    frame: Bytes,
) -> Result<Handled, ConnectionError> {
    // Kafka's `request.sizeInBytes`: the header and body, what a producer's quota counts.
    let request_size = frame.len();
    let (api_key, version, header, mut buf) = match check_frame(frame)? {
        // An ApiVersions above our range, answered UNSUPPORTED_VERSION.
        Checked::Answered(answer) => {
            door.broker
                .metrics()
                .kafka_error(versions::API_VERSIONS, UNSUPPORTED_VERSION);
            return Ok(Handled::Answer(answer, After::KeepOpen, Duration::ZERO));
        }
        Checked::Request {
            api_key,
            version,
            header,
            body,
        } => (api_key, version, header, body),
    };
    let request = Request {
        door,
        local,
        peer,
        version,
        client_id: header.client_id.as_ref().map(|c| c.as_str().to_string()),
        listener,
        principal,
    };
    let body = handlers::dispatch(&request, api_key, &mut buf).await?;
    let client_id = request.client_id.as_deref().unwrap_or("");
    // A Produce's request bytes count against its producer's byte rate, answered or not
    // (Kafka's KafkaApis records them once the produce is done).
    let produce_throttle = if api_key == versions::PRODUCE {
        door.broker.record_quota_bytes(
            QuotaKind::Produce,
            principal,
            client_id,
            request_size,
            Instant::now(),
        )
    } else {
        0
    };
    // No body: an acks=0 Produce that succeeded; it has no answer and counts as a request.
    let Some(mut body) = body else {
        return Ok(Handled::Unanswered(throttle_time(produce_throttle)));
    };
    if body.unanswered() {
        // An acks=0 Produce with an error: as Kafka's KafkaApis, its errors are counted and
        // the connection is closed without an answer.
        count_errors(door, api_key, body.as_ref());
        return Ok(Handled::Close);
    }
    if produce_throttle > 0 {
        body.throttle(produce_throttle);
    }
    // A Fetch's throttle was decided by its handler (the answer measured against the
    // consumer's quota before its fetch session was told anything).
    let mute = produce_throttle.max(body.throttled_ms());
    let answer = encode(header.correlation_id, api_key, version, body.as_ref())?;
    count_errors(door, api_key, body.as_ref());
    Ok(Handled::Answer(
        answer,
        After::KeepOpen,
        throttle_time(mute),
    ))
}

/// A throttle time in milliseconds as a duration (none when not positive).
fn throttle_time(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Checks, decodes and answers a SaslHandshake or SaslAuthenticate frame against `session`;
/// says whether the connection stays open after the answer.
async fn handle_sasl_frame(
    door: &Door,
    listener: &KafkaListener,
    session: &mut Session,
    local: SocketAddr,
    peer: SocketAddr,
    frame: Bytes,
) -> Result<(Vec<Bytes>, After), ConnectionError> {
    let started = door.broker.metrics().clock();
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let result = answer_sasl_frame(door, listener, session, local, peer, frame).await;
    count_request(door, api_key, started, result)
}

async fn answer_sasl_frame(
    door: &Door,
    listener: &KafkaListener,
    session: &mut Session,
    local: SocketAddr,
    peer: SocketAddr,
    frame: Bytes,
) -> Result<(Vec<Bytes>, After), ConnectionError> {
    let (api_key, version, header, mut buf) = match check_frame(frame)? {
        Checked::Answered(answer) => {
            door.broker
                .metrics()
                .kafka_error(versions::API_VERSIONS, UNSUPPORTED_VERSION);
            return Ok((answer, After::KeepOpen));
        }
        Checked::Request {
            api_key,
            version,
            header,
            body,
        } => (api_key, version, header, body),
    };
    let principal = session.principal().clone();
    let request = Request {
        door,
        local,
        peer,
        version,
        client_id: header.client_id.as_ref().map(|c| c.as_str().to_string()),
        listener,
        principal: &principal,
    };
    let (body, after): (Box<dyn ResponseBody>, After) = match api_key {
        versions::SASL_HANDSHAKE => {
            let (r, after) = sasl_handshake::handle(&request, session, decode(&mut buf, version)?);
            (Box::new(r), after)
        }
        versions::SASL_AUTHENTICATE => {
            let (r, after) =
                sasl_authenticate::handle(&request, session, decode(&mut buf, version)?).await;
            (Box::new(r), after)
        }
        other => return Err(ConnectionError::Unsupported(other, version)),
    };
    count_errors(door, api_key, body.as_ref());
    encode(header.correlation_id, api_key, version, body.as_ref()).map(|a| (a, after))
}

/// A response body ready to encode at the request's version.
pub trait ResponseBody: Send {
    fn encode_body(&self, buf: &mut BytesMut, version: i16) -> anyhow::Result<()>;

    /// Calls `each` with every error code the answer carries, for the request error counters
    /// (called only while metrics are on).
    fn errors(&self, each: &mut dyn FnMut(i16)) {
        let _ = each;
    }

    /// Sets the answer's `throttle_time_ms` for a producer over its byte-rate quota (KIP-219).
    fn throttle(&mut self, ms: i32) {
        let _ = ms;
    }

    /// The throttle time the answer's handler decided (a Fetch over its consumer quota:
    /// Kafka's throttled answer); the connection is muted that long after sending it.
    fn throttled_ms(&self) -> i32 {
        0
    }

    /// True for an answer that must not be sent (an acks=0 Produce with an error): the
    /// connection is closed instead.
    fn unanswered(&self) -> bool {
        false
    }

    /// Encodes into `frame`, where large fields may be parts of their own; by default the
    /// whole body goes into the frame's buffer.
    fn encode_frame(&self, frame: &mut ResponseFrame, version: i16) -> anyhow::Result<()> {
        self.encode_body(frame.buf(), version)
    }
}

impl<T: Encodable + Send + 'static> ResponseBody for T {
    fn encode_body(&self, buf: &mut BytesMut, version: i16) -> anyhow::Result<()> {
        self.encode(buf, version)
    }

    fn errors(&self, each: &mut dyn FnMut(i16)) {
        crate::metrics::kafka_errors::each_error(self, each);
    }
}

/// An answer being encoded: the size prefix, then parts to write one after the other. Small
/// fields are copied into a buffer; [`ResponseFrame::splice`] adds a large one without copying.
#[derive(Debug)]
pub struct ResponseFrame {
    parts: Vec<Part>,
    buf: BytesMut,
}

#[derive(Debug)]
enum Part {
    Written(BytesMut),
    Spliced(Bytes),
}

impl ResponseFrame {
    pub(crate) fn new() -> ResponseFrame {
        let mut buf = BytesMut::with_capacity(256);
        buf.extend_from_slice(&[0; 4]); // the size, known at the end
        ResponseFrame {
            parts: Vec::new(),
            buf,
        }
    }

    /// Where the next bytes are written.
    pub fn buf(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Appends `part` as it is, after what was written so far.
    pub fn splice(&mut self, part: Bytes) {
        if part.is_empty() {
            return;
        }
        if !self.buf.is_empty() {
            self.parts.push(Part::Written(self.buf.split()));
        }
        self.parts.push(Part::Spliced(part));
    }

    /// The whole frame as parts in order, its size prefix filled in.
    pub(crate) fn finish(mut self) -> Result<Vec<Bytes>, ConnectionError> {
        if !self.buf.is_empty() {
            self.parts.push(Part::Written(self.buf));
        }
        let total: usize = self
            .parts
            .iter()
            .map(|p| match p {
                Part::Written(b) => b.len(),
                Part::Spliced(b) => b.len(),
            })
            .sum();
        let size = i32::try_from(total - 4)
            .map_err(|_| ConnectionError::Encode(format!("answer of {total} bytes")))?;
        // The first part is the buffer that began with the size's place.
        if let Some(Part::Written(first)) = self.parts.first_mut() {
            first[..4].copy_from_slice(&size.to_be_bytes());
        }
        Ok(self
            .parts
            .into_iter()
            .map(|p| match p {
                Part::Written(b) => b.freeze(),
                Part::Spliced(b) => b,
            })
            .collect())
    }
}

fn encode(
    correlation_id: i32,
    api_key: i16,
    version: i16,
    body: &dyn ResponseBody,
) -> Result<Vec<Bytes>, ConnectionError> {
    let header_version = ApiKey::try_from(api_key)
        .map(|k| k.response_header_version(version))
        .unwrap_or(0);
    let mut frame = ResponseFrame::new();
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(frame.buf(), header_version)
        .map_err(|e| ConnectionError::Encode(e.to_string()))?;
    body.encode_frame(&mut frame, version)
        .map_err(|e| ConnectionError::Encode(e.to_string()))?;
    frame.finish()
}

/// Writes an answer's parts with vectored writes, so that spliced parts are never copied.
async fn write_frame(wr: &mut (impl AsyncWrite + Unpin), parts: Vec<Bytes>) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
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

/// Decodes a request body of type `T` at `version`.
pub fn decode<T: Decodable>(buf: &mut Bytes, version: i16) -> Result<T, ConnectionError> {
    T::decode(buf, version).map_err(|e| ConnectionError::Decode(e.to_string()))
}
