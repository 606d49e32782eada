//! Messages as the SDK sends and receives them, and their user headers.

use bytes::{Bytes, BytesMut};
use wharf_protocol::message::{encode_message, Messages, HEADER_LEN};

use crate::error::{Error, Result};

/// A user header value. Keys are strings; values carry their kind, as Iggy's do.
#[derive(Debug, Clone, PartialEq)]
pub enum HeaderValue {
    /// Bytes (kind 1).
    Raw(Vec<u8>),
    /// UTF-8 text (kind 2).
    String(String),
    /// A boolean (kind 3).
    Bool(bool),
    /// An unsigned 32-bit integer (kind 11).
    U32(u32),
    /// An unsigned 64-bit integer (kind 12).
    U64(u64),
    /// A signed 64-bit integer (kind 7).
    I64(i64),
    /// A 64-bit float (kind 15).
    F64(f64),
}

impl HeaderValue {
    fn kind_and_bytes(&self) -> (u8, Vec<u8>) {
        match self {
            HeaderValue::Raw(b) => (1, b.clone()),
            HeaderValue::String(s) => (2, s.as_bytes().to_vec()),
            HeaderValue::Bool(b) => (3, vec![u8::from(*b)]),
            HeaderValue::U32(v) => (11, v.to_le_bytes().to_vec()),
            HeaderValue::U64(v) => (12, v.to_le_bytes().to_vec()),
            HeaderValue::I64(v) => (7, v.to_le_bytes().to_vec()),
            HeaderValue::F64(v) => (15, v.to_le_bytes().to_vec()),
        }
    }

    fn from_kind(kind: u8, b: &[u8]) -> HeaderValue {
        // Fixed-size kinds are decoded only when the length is exactly theirs; anything else
        // (including kinds this SDK does not model) comes back as raw bytes.
        let arr8 = |b: &[u8]| -> Option<[u8; 8]> { b.try_into().ok() };
        let arr4 = |b: &[u8]| -> Option<[u8; 4]> { b.try_into().ok() };
        match kind {
            2 => match std::str::from_utf8(b) {
                Ok(s) => HeaderValue::String(s.to_string()),
                Err(_) => HeaderValue::Raw(b.to_vec()),
            },
            3 if b.len() == 1 => HeaderValue::Bool(b[0] != 0),
            11 => arr4(b).map_or_else(
                || HeaderValue::Raw(b.to_vec()),
                |a| HeaderValue::U32(u32::from_le_bytes(a)),
            ),
            12 => arr8(b).map_or_else(
                || HeaderValue::Raw(b.to_vec()),
                |a| HeaderValue::U64(u64::from_le_bytes(a)),
            ),
            7 => arr8(b).map_or_else(
                || HeaderValue::Raw(b.to_vec()),
                |a| HeaderValue::I64(i64::from_le_bytes(a)),
            ),
            15 => arr8(b).map_or_else(
                || HeaderValue::Raw(b.to_vec()),
                |a| HeaderValue::F64(f64::from_le_bytes(a)),
            ),
            _ => HeaderValue::Raw(b.to_vec()),
        }
    }
}

impl From<&str> for HeaderValue {
    fn from(s: &str) -> Self {
        HeaderValue::String(s.to_string())
    }
}

impl From<u64> for HeaderValue {
    fn from(v: u64) -> Self {
        HeaderValue::U64(v)
    }
}

/// A message to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// 0: the server assigns a random UUIDv4.
    pub id: u128,
    /// The message body.
    pub payload: Bytes,
    /// User headers, in order.
    pub headers: Vec<(String, HeaderValue)>,
    /// Used by key partitioning; not sent.
    pub key: Option<Bytes>,
}

impl Message {
    /// A message with this payload, no headers, id 0 (the server assigns one).
    pub fn new(payload: impl Into<Bytes>) -> Message {
        Message {
            id: 0,
            payload: payload.into(),
            headers: Vec::new(),
            key: None,
        }
    }

    /// Sets the message id (0: the server assigns a random UUIDv4).
    pub fn with_id(mut self, id: u128) -> Message {
        self.id = id;
        self
    }

    /// Adds a user header.
    pub fn with_header(mut self, key: &str, value: impl Into<HeaderValue>) -> Message {
        self.headers.push((key.to_string(), value.into()));
        self
    }

    /// The key a key partitioner hashes (XxHash32, as Iggy's servers do).
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Message {
        self.key = Some(key.into());
        self
    }

    fn encoded_headers(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        for (k, v) in &self.headers {
            let (kind, bytes) = v.kind_and_bytes();
            for (kind, b) in [(2u8, k.as_bytes()), (kind, &bytes[..])] {
                if b.is_empty() || b.len() > 255 {
                    return Err(Error::InvalidInput(format!(
                        "header '{k}': keys and values must be 1..=255 bytes"
                    )));
                }
                out.push(kind);
                out.extend_from_slice(&(b.len() as u32).to_le_bytes());
                out.extend_from_slice(b);
            }
        }
        Ok(out)
    }

    /// Bytes this message takes on the wire.
    pub fn wire_len(&self) -> usize {
        HEADER_LEN
            + self.payload.len()
            + self
                .headers
                .iter()
                .map(|(k, v)| 10 + k.len() + v.kind_and_bytes().1.len())
                .sum::<usize>()
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.payload.is_empty() {
            return Err(Error::InvalidInput(
                "message payload must not be empty".into(),
            ));
        }
        if self.payload.len() > wharf_protocol::message::MAX_PAYLOAD_LEN {
            return Err(Error::InvalidInput("message payload too large".into()));
        }
        self.encoded_headers().map(drop)
    }

    pub(crate) fn encode(&self, out: &mut BytesMut) -> Result<()> {
        let headers = self.encoded_headers()?;
        let origin = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        encode_message(self.id, origin, &self.payload, &headers, out);
        Ok(())
    }
}

/// Encodes a whole SendMessages request body into `out`: metadata, index, then each message
/// written straight behind it (no intermediate copy of the messages).
pub(crate) fn encode_send(
    stream: &wharf_protocol::Identifier,
    topic: &wharf_protocol::Identifier,
    partitioning: &wharf_protocol::Partitioning,
    messages: &[Message],
    out: &mut BytesMut,
) -> Result<()> {
    use wharf_protocol::message::SendMessages;
    out.reserve(64 + messages.len() * 16 + messages.iter().map(Message::wire_len).sum::<usize>());
    let index_at =
        SendMessages::encode_head(stream, topic, partitioning, messages.len() as u32, out);
    let first = out.len();
    for (i, m) in messages.iter().enumerate() {
        m.encode(out)?;
        SendMessages::set_index_end(out, index_at, i, (out.len() - first) as u32);
    }
    Ok(())
}

/// Encodes messages back to back, as a SendMessages body carries them.
#[cfg(test)]
pub(crate) fn encode_all(messages: &[Message]) -> Result<BytesMut> {
    let mut out = BytesMut::with_capacity(messages.iter().map(Message::wire_len).sum());
    for m in messages {
        m.encode(&mut out)?;
    }
    Ok(out)
}

/// A message read from a partition.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedMessage {
    /// The partition it was read from.
    pub partition_id: u32,
    /// Its offset in the partition.
    pub offset: u64,
    /// Server append time, µs since the Unix epoch.
    pub timestamp: u64,
    /// The producer's timestamp, µs since the Unix epoch.
    pub origin_timestamp: u64,
    /// Its id.
    pub id: u128,
    /// XXH3-64 of the message as stored.
    pub checksum: u64,
    /// The message body.
    pub payload: Bytes,
    /// User headers, in order.
    pub headers: Vec<(String, HeaderValue)>,
}

/// The answer to a poll.
#[derive(Debug, Clone, PartialEq)]
pub struct Polled {
    /// The partition it was read from.
    pub partition_id: u32,
    /// The partition's newest offset.
    pub current_offset: u64,
    /// The messages, in offset order.
    pub messages: Vec<ReceivedMessage>,
}

pub(crate) fn decode_polled(body: Bytes) -> Result<Polled> {
    let mut r = wharf_protocol::Reader::new(&body);
    let (partition_id, current_offset, count) =
        wharf_protocol::responses::decode_poll_header(&mut r)?;
    let blob = body.slice(16..);
    let base = blob.as_ptr() as usize;
    let mut messages = Vec::with_capacity((count as usize).min(blob.len() / HEADER_LEN));
    for m in Messages::new(&blob) {
        let at = m.payload().as_ptr() as usize - base;
        let payload = blob.slice(at..at + m.payload().len());
        let mut headers = Vec::new();
        let mut hr = wharf_protocol::Reader::new(m.user_headers());
        while hr.remaining() > 0 {
            let _kk = hr.u8("header.key_kind")?;
            let kl = hr.u32("header.key_length")? as usize;
            let key = String::from_utf8_lossy(hr.take(kl, "header.key")?).into_owned();
            let vk = hr.u8("header.value_kind")?;
            let vl = hr.u32("header.value_length")? as usize;
            headers.push((
                key,
                HeaderValue::from_kind(vk, hr.take(vl, "header.value")?),
            ));
        }
        messages.push(ReceivedMessage {
            partition_id,
            offset: m.offset(),
            timestamp: m.timestamp(),
            origin_timestamp: m.origin_timestamp(),
            id: m.id(),
            checksum: m.checksum(),
            payload,
            headers,
        });
    }
    if messages.len() != count as usize {
        return Err(Error::Protocol(format!(
            "poll said {count} messages, carried {}",
            messages.len()
        )));
    }
    Ok(Polled {
        partition_id,
        current_offset,
        messages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_of_every_kind_and_length_decode_without_panic() {
        let m = Message::new("x")
            .with_header("s", "checkout-service")
            .with_header("n", 7u64)
            .with_header("b", HeaderValue::Bool(true))
            .with_header("r", HeaderValue::Raw(vec![1; 200]));
        let mut blob = encode_all(std::slice::from_ref(&m)).unwrap();
        let mut body = bytes::BytesMut::new();
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(&0u64.to_le_bytes());
        body.extend_from_slice(&1u32.to_le_bytes());
        body.extend_from_slice(&blob);
        let polled = decode_polled(body.freeze()).unwrap();
        assert_eq!(polled.messages[0].headers, m.headers);
        // Odd lengths for fixed kinds come back raw.
        for kind in [3u8, 7, 11, 12, 15] {
            for len in [0usize, 1, 3, 9, 255] {
                let _ = HeaderValue::from_kind(kind, &vec![0xAB; len]);
            }
        }
        blob.clear();
    }
}
