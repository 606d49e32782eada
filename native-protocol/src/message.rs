//! Iggy 0.8 messages: the 64-byte header, user headers, checksums, and the SendMessages body.
//!
//! | off | size | field | set by |
//! |---|---|---|---|
//! | 0 | 8 | checksum: XXH3-64 over bytes 8..end of the message | server |
//! | 8 | 16 | id (0: the server assigns a random UUIDv4) | client |
//! | 24 | 8 | offset | server |
//! | 32 | 8 | timestamp, µs | server |
//! | 40 | 8 | origin timestamp, µs | client |
//! | 48 | 4 | user headers length | client |
//! | 52 | 4 | payload length | client |
//! | 56 | 8 | reserved, 0 | |
//! | 64 | P | payload | |
//! | 64+P | H | user headers: `[kind u8][len u32][1..255 bytes]` key then value, repeated | |

use bytes::{Bytes, BytesMut};

use crate::primitives::{Identifier, Partitioning};
use crate::wire::{err, invalid, DecodeError, Problem, Reader};

pub const HEADER_LEN: usize = 64;
pub const INDEX_ENTRY_LEN: usize = 16;
pub const CHECKSUM_AT: usize = 0;
pub const ID_AT: usize = 8;
pub const OFFSET_AT: usize = 24;
pub const TIMESTAMP_AT: usize = 32;
pub const ORIGIN_TIMESTAMP_AT: usize = 40;
pub const HEADERS_LEN_AT: usize = 48;
pub const PAYLOAD_LEN_AT: usize = 52;
pub const RESERVED_AT: usize = 56;

/// Largest message payload accepted (Iggy's limit).
pub const MAX_PAYLOAD_LEN: usize = 64 * 1024 * 1024;
/// Largest user-headers block accepted per message (Iggy's limit).
pub const MAX_USER_HEADERS_LEN: usize = 100 * 1024;
/// Most messages one SendMessages may carry; more would be a suspect count, not a batch.
pub const MAX_MESSAGES_PER_SEND: u32 = 1_000_000;

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// The XXH3-64 checksum of a whole message (bytes 8..end).
pub fn checksum(message: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(&message[CHECKSUM_AT + 8..])
}

/// A view of one message inside a batch.
#[derive(Debug, Clone, Copy)]
pub struct MessageView<'a> {
    bytes: &'a [u8],
}

impl<'a> MessageView<'a> {
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    pub fn checksum(&self) -> u64 {
        le_u64(self.bytes, CHECKSUM_AT)
    }
    pub fn id(&self) -> u128 {
        let mut a = [0u8; 16];
        a.copy_from_slice(&self.bytes[ID_AT..ID_AT + 16]);
        u128::from_le_bytes(a)
    }
    pub fn offset(&self) -> u64 {
        le_u64(self.bytes, OFFSET_AT)
    }
    pub fn timestamp(&self) -> u64 {
        le_u64(self.bytes, TIMESTAMP_AT)
    }
    pub fn origin_timestamp(&self) -> u64 {
        le_u64(self.bytes, ORIGIN_TIMESTAMP_AT)
    }
    pub fn payload(&self) -> &'a [u8] {
        let p = le_u32(self.bytes, PAYLOAD_LEN_AT) as usize;
        &self.bytes[HEADER_LEN..HEADER_LEN + p]
    }
    pub fn user_headers(&self) -> &'a [u8] {
        let p = le_u32(self.bytes, PAYLOAD_LEN_AT) as usize;
        &self.bytes[HEADER_LEN + p..]
    }
}

/// Iterates over the messages of a batch that has been validated (by [`validate_messages`] or
/// because it came from the store). Stops at the first message that does not fit.
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Messages<'a> {
    pub fn new(blob: &'a [u8]) -> Self {
        Messages { rest: blob }
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = MessageView<'a>;
    fn next(&mut self) -> Option<MessageView<'a>> {
        if self.rest.len() < HEADER_LEN {
            return None;
        }
        let h = le_u32(self.rest, HEADERS_LEN_AT) as usize;
        let p = le_u32(self.rest, PAYLOAD_LEN_AT) as usize;
        let len = HEADER_LEN.checked_add(p)?.checked_add(h)?;
        if len > self.rest.len() {
            return None;
        }
        let (msg, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(MessageView { bytes: msg })
    }
}

/// Why a message in a SendMessages body is refused; the server maps each to an Iggy error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("message {0}: empty payload")]
    EmptyPayload(u32),
    #[error("message {0}: payload over {MAX_PAYLOAD_LEN} bytes")]
    PayloadTooLarge(u32),
    #[error("message {0}: user headers over {MAX_USER_HEADERS_LEN} bytes")]
    HeadersTooLarge(u32),
    #[error("message {0}: malformed user headers")]
    InvalidHeaders(u32),
    #[error("message {0}: reserved field is not zero")]
    Reserved(u32),
    #[error("message {0}: runs past the end of the batch")]
    Truncated(u32),
    #[error("batch holds {found} messages, the request said {declared}")]
    CountMismatch { declared: u32, found: u32 },
    #[error("messages count must be positive")]
    NoMessages,
}

/// Checks a blob of messages back to back: exact count, lengths, reserved field, user headers.
pub fn validate_messages(blob: &[u8], declared: u32) -> Result<(), MessageError> {
    if declared == 0 {
        return Err(MessageError::NoMessages);
    }
    let mut pos = 0usize;
    let mut n = 0u32;
    while pos < blob.len() {
        let rest = &blob[pos..];
        if rest.len() < HEADER_LEN {
            return Err(MessageError::Truncated(n));
        }
        let h = le_u32(rest, HEADERS_LEN_AT) as usize;
        let p = le_u32(rest, PAYLOAD_LEN_AT) as usize;
        if p == 0 {
            return Err(MessageError::EmptyPayload(n));
        }
        if p > MAX_PAYLOAD_LEN {
            return Err(MessageError::PayloadTooLarge(n));
        }
        if h > MAX_USER_HEADERS_LEN {
            return Err(MessageError::HeadersTooLarge(n));
        }
        if le_u64(rest, RESERVED_AT) != 0 {
            return Err(MessageError::Reserved(n));
        }
        let len = HEADER_LEN + p + h;
        if len > rest.len() {
            return Err(MessageError::Truncated(n));
        }
        validate_user_headers(&rest[HEADER_LEN + p..len])
            .map_err(|_| MessageError::InvalidHeaders(n))?;
        pos += len;
        n += 1;
        if n > declared {
            break;
        }
    }
    if n != declared {
        return Err(MessageError::CountMismatch { declared, found: n });
    }
    Ok(())
}

/// User headers are TLV entries `[kind 1..=15][len u32 1..=255][bytes]`, in key/value pairs.
pub fn validate_user_headers(buf: &[u8]) -> Result<(), DecodeError> {
    let mut r = Reader::new(buf);
    let mut entries = 0u32;
    while r.remaining() > 0 {
        let kind = r.u8("user_headers.kind")?;
        if !(1..=15).contains(&kind) {
            return Err(err("user_headers.kind", Problem::Unknown(u64::from(kind))));
        }
        let len = r.u32("user_headers.length")? as usize;
        if !(1..=255).contains(&len) {
            return Err(invalid("user_headers.length", "must be 1..=255"));
        }
        r.take(len, "user_headers.value")?;
        entries += 1;
    }
    if entries.is_multiple_of(2) {
        Ok(())
    } else {
        Err(invalid("user_headers", "a key without a value"))
    }
}

/// A decoded SendMessages request. `messages` is the blob of messages back to back, still the
/// buffer that came off the socket (the server stamps it in place).
#[derive(Debug)]
pub struct SendMessages {
    pub stream_id: Identifier,
    pub topic_id: Identifier,
    pub partitioning: Partitioning,
    pub messages_count: u32,
    pub messages: BytesMut,
}

impl SendMessages {
    /// Decodes the request: `[metadata_length u32][stream][topic][partitioning][count u32]`,
    /// `count` 16-byte index entries, then the messages. Message contents are checked by
    /// [`validate_messages`].
    pub fn decode(mut payload: BytesMut) -> Result<SendMessages, DecodeError> {
        let mut r = Reader::new(&payload);
        let metadata_len = r.u32("metadata_length")? as usize;
        let start = r.position();
        let stream_id = Identifier::decode(&mut r, "stream_id")?;
        let topic_id = Identifier::decode(&mut r, "topic_id")?;
        let partitioning = Partitioning::decode(&mut r)?;
        let messages_count = r.u32("messages_count")?;
        if r.position() - start != metadata_len {
            return Err(invalid("metadata_length", "does not match the metadata"));
        }
        if messages_count == 0 {
            return Err(invalid("messages_count", "must be positive"));
        }
        if messages_count > MAX_MESSAGES_PER_SEND {
            return Err(err(
                "messages_count",
                Problem::TooLong {
                    len: messages_count as usize,
                    max: MAX_MESSAGES_PER_SEND as usize,
                },
            ));
        }
        let index_len = messages_count as usize * INDEX_ENTRY_LEN;
        r.take(index_len, "index")?;
        let blob_at = r.position();
        let messages = payload.split_off(blob_at);
        Ok(SendMessages {
            stream_id,
            topic_id,
            partitioning,
            messages_count,
            messages,
        })
    }

    /// Encodes a request (for clients and tests).
    pub fn encode(
        stream_id: &Identifier,
        topic_id: &Identifier,
        partitioning: &Partitioning,
        messages: &[u8],
        out: &mut BytesMut,
    ) {
        let views: Vec<MessageView<'_>> = Messages::new(messages).collect();
        let index_at =
            SendMessages::encode_head(stream_id, topic_id, partitioning, views.len() as u32, out);
        let mut end = 0u32;
        for (i, v) in views.iter().enumerate() {
            end += v.bytes().len() as u32;
            SendMessages::set_index_end(out, index_at, i, end);
        }
        out.extend_from_slice(messages);
    }

    /// Writes the metadata and a zeroed index of `count` entries, for the messages to be
    /// appended right after; returns where the index starts. Fill each entry with
    /// [`SendMessages::set_index_end`] once its message is written (so a client encodes its
    /// messages straight into the request, without an intermediate copy).
    pub fn encode_head(
        stream_id: &Identifier,
        topic_id: &Identifier,
        partitioning: &Partitioning,
        count: u32,
        out: &mut BytesMut,
    ) -> usize {
        use bytes::BufMut;
        let mut meta = BytesMut::new();
        stream_id.encode(&mut meta);
        topic_id.encode(&mut meta);
        partitioning.encode(&mut meta);
        meta.put_u32_le(count);
        out.put_u32_le(meta.len() as u32);
        out.put_slice(&meta);
        let index_at = out.len();
        out.put_bytes(0, count as usize * INDEX_ENTRY_LEN);
        index_at
    }

    /// Sets index entry `i` (of an index written by [`SendMessages::encode_head`] at
    /// `index_at`): `end` is where message `i` ends, counted from the first message.
    pub fn set_index_end(out: &mut BytesMut, index_at: usize, i: usize, end: u32) {
        let at = index_at + i * INDEX_ENTRY_LEN + 4;
        out[at..at + 4].copy_from_slice(&end.to_le_bytes());
    }
}

/// Builds one message (for clients and tests): header, payload, user headers.
pub fn encode_message(
    id: u128,
    origin_timestamp: u64,
    payload: &[u8],
    user_headers: &[u8],
    out: &mut BytesMut,
) {
    use bytes::BufMut;
    out.put_u64_le(0);
    out.put_u128_le(id);
    out.put_u64_le(0);
    out.put_u64_le(0);
    out.put_u64_le(origin_timestamp);
    out.put_u32_le(user_headers.len() as u32);
    out.put_u32_le(payload.len() as u32);
    out.put_u64_le(0);
    out.put_slice(payload);
    out.put_slice(user_headers);
}

/// The bytes of a poll answer's messages, as stored (the store keeps them verbatim).
pub type StoredMessages = Bytes;

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u8, v: &[u8], out: &mut Vec<u8>) {
        out.push(kind);
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v);
    }

    #[test]
    fn send_messages_round_trip_and_validation() {
        let mut headers = Vec::new();
        header(2, b"key", &mut headers);
        header(1, b"\x01\x02", &mut headers);
        let mut blob = BytesMut::new();
        encode_message(5, 10, b"hello", &headers, &mut blob);
        encode_message(0, 11, b"world", &[], &mut blob);
        let mut req = BytesMut::new();
        SendMessages::encode(
            &Identifier::Name("s".into()),
            &Identifier::Numeric(1),
            &Partitioning::MessagesKey(b"k".to_vec()),
            &blob,
            &mut req,
        );
        let send = SendMessages::decode(req).unwrap();
        assert_eq!(send.messages_count, 2);
        assert_eq!(&send.messages[..], &blob[..]);
        validate_messages(&send.messages, 2).unwrap();
        let views: Vec<_> = Messages::new(&send.messages).collect();
        assert_eq!(views[0].id(), 5);
        assert_eq!(views[0].payload(), b"hello");
        assert_eq!(views[0].user_headers(), &headers[..]);
        assert_eq!(views[1].origin_timestamp(), 11);

        assert_eq!(
            validate_messages(&send.messages, 3),
            Err(MessageError::CountMismatch {
                declared: 3,
                found: 2
            })
        );
        let mut bad = blob.clone();
        bad[56] = 1;
        assert_eq!(validate_messages(&bad, 2), Err(MessageError::Reserved(0)));
        let mut empty = BytesMut::new();
        encode_message(1, 0, b"", &[], &mut empty);
        assert_eq!(
            validate_messages(&empty, 1),
            Err(MessageError::EmptyPayload(0))
        );
        let mut odd = BytesMut::new();
        header(2, b"key", &mut headers);
        encode_message(1, 0, b"x", &headers, &mut odd);
        assert_eq!(
            validate_messages(&odd, 1),
            Err(MessageError::InvalidHeaders(0))
        );
    }

    #[test]
    fn hostile_counts_are_refused_before_allocation() {
        let mut req = BytesMut::new();
        SendMessages::encode(
            &Identifier::Numeric(1),
            &Identifier::Numeric(1),
            &Partitioning::Balanced,
            &[],
            &mut req,
        );
        // Claim a huge count with no index behind it.
        let at = req.len() - 4;
        req[at..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(SendMessages::decode(req.clone()).is_err());
        req[at..].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(
            SendMessages::decode(req).unwrap_err().problem,
            Problem::Truncated
        );
    }
}
