//! The unit of storage: a batch of records in a fixed, checksummed envelope.
//!
//! On disk every batch is `[envelope 64 B][payload]`. The payload is what the client sent, with only
//! the fields the server owns stamped in place:
//!
//! - `native`: Iggy 0.8 messages back to back (64-byte header + payload + user headers); the store
//!   stamps each message's offset, timestamp and XXH3-64 checksum.
//! - `kafka`: one Kafka record batch v2; the store stamps `baseOffset` (bytes 0..8, outside the
//!   Kafka CRC), and for LogAppendTime topics the timestamp type and `maxTimestamp` (re-computing
//!   the Kafka CRC). Compressed batches stay compressed.
//!
//! Envelope layout (little-endian):
//!
//! | off | size | field |
//! |---|---|---|
//! | 0 | 4 | payload length |
//! | 4 | 1 | format (1 native, 2 kafka) |
//! | 5 | 1 | envelope version (1) |
//! | 6 | 2 | reserved, 0 |
//! | 8 | 8 | base offset |
//! | 16 | 4 | record count: the offsets the batch spans (last - first + 1) |
//! | 20 | 4 | reserved, 0 |
//! | 24 | 8 | first timestamp (µs) |
//! | 32 | 8 | max timestamp (µs) |
//! | 40 | 8 | append timestamp (µs, server clock) |
//! | 48 | 12 | reserved, 0 |
//! | 60 | 4 | CRC-32C over bytes 0..60 and the payload |

use bytes::{Bytes, BytesMut};

use crate::error::BatchError;

/// Size of the envelope in front of every stored batch.
pub const ENVELOPE_LEN: usize = 64;
const ENVELOPE_VERSION: u8 = 1;

/// Largest payload a stored batch can carry: the envelope's length fields are u32.
pub const MAX_PAYLOAD_LEN: usize = u32::MAX as usize - ENVELOPE_LEN;

/// Size of an Iggy 0.8 message header.
pub const NATIVE_MESSAGE_HEADER_LEN: usize = 64;
/// Size of a Kafka record batch v2 header (up to and including `recordsCount`).
pub const KAFKA_BATCH_HEADER_LEN: usize = 61;

/// How a stored batch's payload is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BatchFormat {
    /// Iggy 0.8 messages back to back.
    Native,
    /// One Kafka record batch, magic 2.
    Kafka,
}

impl BatchFormat {
    fn code(self) -> u8 {
        match self {
            BatchFormat::Native => 1,
            BatchFormat::Kafka => 2,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(BatchFormat::Native),
            2 => Some(BatchFormat::Kafka),
            _ => None,
        }
    }
}

/// The decoded envelope of a stored batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope {
    pub payload_len: u32,
    pub format: BatchFormat,
    pub base_offset: u64,
    /// The offsets the batch spans: last offset - base offset + 1. A batch written by a client
    /// holds that many records; one rewritten by compaction keeps its span and may hold fewer
    /// (offsets never change, so a compacted batch has holes).
    pub record_count: u32,
    pub first_timestamp: u64,
    pub max_timestamp: u64,
    pub append_timestamp: u64,
}

impl Envelope {
    /// Total stored size: envelope plus payload.
    pub fn stored_len(&self) -> u64 {
        ENVELOPE_LEN as u64 + u64::from(self.payload_len)
    }

    /// Offset of the last record in the batch.
    pub fn last_offset(&self) -> u64 {
        self.base_offset + u64::from(self.record_count) - 1
    }

    /// Encodes the envelope, computing the checksum over it and `payload`.
    pub fn encode(&self, payload: &[u8]) -> [u8; ENVELOPE_LEN] {
        let mut buf = self.fields();
        let crc = crc32c::crc32c_append(crc32c::crc32c(&buf[..60]), payload);
        buf[60..64].copy_from_slice(&crc.to_le_bytes());
        buf
    }

    /// The envelope's bytes without the checksum (bytes 60..64 left zero).
    fn fields(&self) -> [u8; ENVELOPE_LEN] {
        let mut buf = [0u8; ENVELOPE_LEN];
        buf[0..4].copy_from_slice(&self.payload_len.to_le_bytes());
        buf[4] = self.format.code();
        buf[5] = ENVELOPE_VERSION;
        buf[8..16].copy_from_slice(&self.base_offset.to_le_bytes());
        buf[16..20].copy_from_slice(&self.record_count.to_le_bytes());
        buf[24..32].copy_from_slice(&self.first_timestamp.to_le_bytes());
        buf[32..40].copy_from_slice(&self.max_timestamp.to_le_bytes());
        buf[40..48].copy_from_slice(&self.append_timestamp.to_le_bytes());
        buf
    }

    /// Decodes and sanity-checks an envelope header. The payload checksum is checked separately
    /// by [`Envelope::verify_payload`], because a reader may want the header alone.
    pub fn decode(buf: &[u8]) -> Result<Envelope, BatchError> {
        if buf.len() < ENVELOPE_LEN {
            return Err(BatchError::Envelope("shorter than 64 bytes"));
        }
        if buf[5] != ENVELOPE_VERSION {
            return Err(BatchError::Envelope("unknown envelope version"));
        }
        if buf[6..8] != [0, 0] || buf[20..24] != [0; 4] || buf[48..60] != [0; 12] {
            return Err(BatchError::Envelope("reserved bytes are not zero"));
        }
        let format =
            BatchFormat::from_code(buf[4]).ok_or(BatchError::Envelope("unknown batch format"))?;
        let env = Envelope {
            payload_len: le_u32(buf, 0),
            format,
            base_offset: le_u64(buf, 8),
            record_count: le_u32(buf, 16),
            first_timestamp: le_u64(buf, 24),
            max_timestamp: le_u64(buf, 32),
            append_timestamp: le_u64(buf, 40),
        };
        if env.record_count == 0 {
            return Err(BatchError::Envelope("record count is zero"));
        }
        if env
            .base_offset
            .checked_add(u64::from(env.record_count))
            .is_none()
        {
            return Err(BatchError::Envelope("offset range overflows"));
        }
        Ok(env)
    }

    /// Checks the envelope's CRC-32C against the header bytes and the payload.
    pub fn verify_payload(header: &[u8], payload: &[u8]) -> Result<(), BatchError> {
        let stored = le_u32(header, 60);
        let computed = crc32c::crc32c_append(crc32c::crc32c(&header[..60]), payload);
        if stored == computed {
            Ok(())
        } else {
            Err(BatchError::Checksum { stored, computed })
        }
    }
}

/// A batch read back from the store: the envelope and the stored bytes, shared without copying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBatch {
    envelope: Envelope,
    bytes: Bytes,
}

impl StoredBatch {
    /// Wraps `bytes` (envelope + payload) after checking that the header is sane and the length
    /// agrees with it. The checksum is not verified here; call [`StoredBatch::verify`] for that.
    pub fn from_bytes(bytes: Bytes) -> Result<StoredBatch, BatchError> {
        let envelope = Envelope::decode(&bytes)?;
        if envelope.stored_len() != bytes.len() as u64 {
            return Err(BatchError::Envelope("length does not match the envelope"));
        }
        Ok(StoredBatch { envelope, bytes })
    }

    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }
    pub fn format(&self) -> BatchFormat {
        self.envelope.format
    }
    pub fn base_offset(&self) -> u64 {
        self.envelope.base_offset
    }
    pub fn last_offset(&self) -> u64 {
        self.envelope.last_offset()
    }
    /// The offsets the batch spans (see [`Envelope::record_count`]); after compaction it may
    /// hold fewer records.
    pub fn record_count(&self) -> u32 {
        self.envelope.record_count
    }
    /// The payload exactly as stored (client bytes with server fields stamped).
    pub fn payload(&self) -> Bytes {
        self.bytes.slice(ENVELOPE_LEN..)
    }
    /// Envelope and payload, as on disk.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }
    /// Verifies the envelope checksum.
    pub fn verify(&self) -> Result<(), BatchError> {
        Envelope::verify_payload(&self.bytes[..ENVELOPE_LEN], &self.bytes[ENVELOPE_LEN..])
    }
}

/// A batch accepted for appending: its structure has been walked and its record count is known.
/// The store stamps it when it assigns offsets.
#[derive(Debug)]
pub struct NewBatch {
    format: BatchFormat,
    payload: Payload,
    record_count: u32,
    /// Kafka only: client timestamps in µs (first, max).
    client_timestamps: (u64, u64),
    /// Native only: byte position of each message, so stamping does not walk twice.
    message_positions: Vec<u32>,
}

/// What a new batch carries, as stamping needs it.
#[derive(Debug)]
enum Payload {
    /// Native messages: every message is stamped, in place.
    Native(BytesMut),
    /// A Kafka batch: the client's bytes stay shared (stamping writes a copy of the 61-byte
    /// header only), with the CRC-32C of bytes 21.. (what the Kafka batch CRC covers), from
    /// which the envelope checksum is derived without reading the records again.
    Kafka { bytes: Bytes, body_crc: u32 },
}

impl Payload {
    fn len(&self) -> usize {
        match self {
            Payload::Native(b) => b.len(),
            Payload::Kafka { bytes, .. } => bytes.len(),
        }
    }
}

/// The most bytes written in front of a stamped batch's shared body: the envelope and, for a
/// Kafka batch, its stamped header.
const STAMPED_HEAD_MAX: usize = ENVELOPE_LEN + KAFKA_BATCH_HEADER_LEN;

/// A batch stamped for writing: `head` (the envelope, then for Kafka the stamped batch header)
/// followed by `body`, which together are the stored bytes.
#[derive(Debug)]
pub(crate) struct Stamped {
    head: [u8; STAMPED_HEAD_MAX],
    head_len: usize,
    body: Bytes,
    envelope: Envelope,
}

impl Stamped {
    /// The envelope, then any stamped payload bytes that are not in [`Stamped::body`].
    pub(crate) fn head(&self) -> &[u8] {
        &self.head[..self.head_len]
    }
    /// The rest of the payload.
    pub(crate) fn body(&self) -> &[u8] {
        &self.body
    }
    pub(crate) fn envelope(&self) -> &Envelope {
        &self.envelope
    }
}

/// CRC-32C's polynomial, bits reflected as the checksum keeps them.
const CRC32C_POLY: u32 = 0x82F6_3B78;

/// `a * b` modulo the CRC-32C polynomial, bits reflected (bit 31 holds x^0).
const fn crc_mul(a: u32, mut b: u32) -> u32 {
    let mut product = 0;
    let mut bit = 0;
    while bit < 32 {
        if a & (1 << (31 - bit)) != 0 {
            product ^= b;
        }
        // b *= x
        b = if b & 1 != 0 {
            (b >> 1) ^ CRC32C_POLY
        } else {
            b >> 1
        };
        bit += 1;
    }
    product
}

/// x^(2^k) modulo the polynomial, for k = 0..64.
const CRC_X_POW2: [u32; 64] = {
    let mut table = [0u32; 64];
    table[0] = 1 << 30; // x^1
    let mut k = 1;
    while k < 64 {
        table[k] = crc_mul(table[k - 1], table[k - 1]);
        k += 1;
    }
    table
};

/// The CRC-32C of `a` followed by `len` bytes whose own CRC-32C is `b`, given `crc_a`: what
/// `crc32c::crc32c_combine` gives, with a few multiplications instead of its matrix squarings,
/// so the envelope checksum of a large batch costs no more than a small one.
fn crc_concat(crc_a: u32, crc_b: u32, len: usize) -> u32 {
    // Appending `len` bytes multiplies the first CRC by x^(8 len).
    let mut shift = 1u32 << 31; // x^0
    let mut n = len as u64;
    let mut k = 3;
    while n != 0 {
        if n & 1 != 0 {
            shift = crc_mul(shift, CRC_X_POW2[k]);
        }
        n >>= 1;
        k += 1;
    }
    crc_mul(shift, crc_a) ^ crc_b
}

impl NewBatch {
    /// Validates a payload of Iggy 0.8 messages back to back.
    pub fn native(payload: BytesMut) -> Result<NewBatch, BatchError> {
        if payload.is_empty() {
            return Err(BatchError::Empty);
        }
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(BatchError::Envelope("payload larger than 4 GiB"));
        }
        let mut positions = Vec::new();
        let mut pos = 0usize;
        while pos < payload.len() {
            let index = positions.len() as u32;
            let err = |reason| BatchError::NativeMessage {
                index,
                position: pos,
                reason,
            };
            let rest = &payload[pos..];
            if rest.len() < NATIVE_MESSAGE_HEADER_LEN {
                return Err(err("truncated message header"));
            }
            let headers_len = le_u32(rest, 48) as usize;
            let body_len = le_u32(rest, 52) as usize;
            if le_u64(rest, 56) != 0 {
                return Err(err("reserved field is not zero"));
            }
            let len = NATIVE_MESSAGE_HEADER_LEN
                .checked_add(body_len)
                .and_then(|l| l.checked_add(headers_len))
                .ok_or_else(|| err("message length overflows"))?;
            if len > rest.len() {
                return Err(err("message runs past the end of the batch"));
            }
            if positions.len() >= (u32::MAX - 1) as usize {
                return Err(BatchError::TooManyRecords(positions.len() as u64 + 1));
            }
            positions.push(pos as u32);
            pos += len;
        }
        Ok(NewBatch {
            format: BatchFormat::Native,
            record_count: positions.len() as u32,
            payload: Payload::Native(payload),
            client_timestamps: (0, 0),
            message_positions: positions,
        })
    }

    /// Validates the header of one Kafka record batch v2 (magic 2). The Kafka CRC and the records
    /// themselves are the Kafka adapter's to check; this is what the store needs to trust the
    /// batch's length, offsets and timestamps. The bytes are stored without being copied.
    pub fn kafka(payload: impl Into<Bytes>) -> Result<NewBatch, BatchError> {
        let payload = payload.into();
        Self::kafka_with(payload, |p| crc32c::crc32c(&p[21..]))
    }

    /// [`NewBatch::kafka`] for a batch whose Kafka CRC (bytes 17..21, over bytes 21..) the
    /// caller has checked: the store derives its own checksum from it instead of reading the
    /// records again. A wrong CRC here makes the stored batch fail its checksum when read.
    pub fn kafka_crc_checked(payload: Bytes) -> Result<NewBatch, BatchError> {
        Self::kafka_with(payload, |p| be_i32(p, 17) as u32)
    }

    fn kafka_with(
        payload: Bytes,
        body_crc: impl FnOnce(&[u8]) -> u32,
    ) -> Result<NewBatch, BatchError> {
        if payload.is_empty() {
            return Err(BatchError::Empty);
        }
        if payload.len() < KAFKA_BATCH_HEADER_LEN {
            return Err(BatchError::Kafka("shorter than the 61-byte batch header"));
        }
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(BatchError::Kafka("larger than 4 GiB"));
        }
        let batch_length = be_i32(&payload, 8);
        if batch_length < 0 || batch_length as usize + 12 != payload.len() {
            return Err(BatchError::Kafka(
                "batchLength does not match the bytes given (exactly one batch expected)",
            ));
        }
        if payload[16] != 2 {
            return Err(BatchError::Kafka("magic is not 2"));
        }
        let last_offset_delta = be_i32(&payload, 23);
        if last_offset_delta < 0 || last_offset_delta == i32::MAX {
            return Err(BatchError::Kafka("lastOffsetDelta out of range"));
        }
        let ms_to_us = |ms: i64| u64::try_from(ms).unwrap_or(0).saturating_mul(1000);
        let first = ms_to_us(be_i64(&payload, 27));
        let max = ms_to_us(be_i64(&payload, 35)).max(first);
        let body_crc = body_crc(&payload);
        Ok(NewBatch {
            format: BatchFormat::Kafka,
            record_count: last_offset_delta as u32 + 1,
            payload: Payload::Kafka {
                bytes: payload,
                body_crc,
            },
            client_timestamps: (first, max),
            message_positions: Vec::new(),
        })
    }

    pub fn format(&self) -> BatchFormat {
        self.format
    }
    pub fn record_count(&self) -> u32 {
        self.record_count
    }
    pub fn payload_len(&self) -> usize {
        self.payload.len()
    }
    /// Bytes this batch occupies on disk.
    pub fn stored_len(&self) -> u64 {
        (ENVELOPE_LEN + self.payload.len()) as u64
    }

    /// Stamps the server-owned fields for `base_offset` and `now_us` and returns the bytes
    /// ready to be written. The envelope checksum is computed in the same pass as the native
    /// messages' checksums, and derived from the Kafka batch CRC for Kafka batches.
    pub(crate) fn stamp(self, base_offset: u64, now_us: u64, log_append_time: bool) -> Stamped {
        let payload_len = self.payload.len();
        let mut envelope = Envelope {
            payload_len: payload_len as u32,
            format: self.format,
            base_offset,
            record_count: self.record_count,
            first_timestamp: now_us,
            max_timestamp: now_us,
            append_timestamp: now_us,
        };
        let mut head = [0u8; STAMPED_HEAD_MAX];
        match self.payload {
            Payload::Native(mut payload) => {
                let fields = envelope.fields();
                let mut crc = crc32c::crc32c(&fields[..60]);
                for (i, &pos) in self.message_positions.iter().enumerate() {
                    let pos = pos as usize;
                    let end = self
                        .message_positions
                        .get(i + 1)
                        .map_or(payload_len, |&p| p as usize);
                    let msg = &mut payload[pos..end];
                    msg[24..32].copy_from_slice(&(base_offset + i as u64).to_le_bytes());
                    msg[32..40].copy_from_slice(&now_us.to_le_bytes());
                    let checksum = xxhash_rust::xxh3::xxh3_64(&msg[8..]);
                    msg[0..8].copy_from_slice(&checksum.to_le_bytes());
                    // While the message is in cache.
                    crc = crc32c::crc32c_append(crc, msg);
                }
                head[..ENVELOPE_LEN].copy_from_slice(&fields);
                head[60..64].copy_from_slice(&crc.to_le_bytes());
                Stamped {
                    head,
                    head_len: ENVELOPE_LEN,
                    body: payload.freeze(),
                    envelope,
                }
            }
            Payload::Kafka {
                bytes,
                mut body_crc,
            } => {
                let mut header = [0u8; KAFKA_BATCH_HEADER_LEN];
                header.copy_from_slice(&bytes[..KAFKA_BATCH_HEADER_LEN]);
                header[0..8].copy_from_slice(&(base_offset as i64).to_be_bytes());
                let records_len = payload_len - KAFKA_BATCH_HEADER_LEN;
                if log_append_time {
                    // The Kafka CRC covers the changed fields: take the old header's part out
                    // of it and put the new one's in.
                    let records_crc =
                        body_crc ^ crc_concat(crc32c::crc32c(&header[21..]), 0, records_len);
                    let now_ms = (now_us / 1000) as i64;
                    let attributes = u16::from_be_bytes([header[21], header[22]]);
                    header[21..23].copy_from_slice(&(attributes | 0x08).to_be_bytes());
                    header[35..43].copy_from_slice(&now_ms.to_be_bytes());
                    body_crc = crc_concat(crc32c::crc32c(&header[21..]), records_crc, records_len);
                    header[17..21].copy_from_slice(&body_crc.to_be_bytes());
                    let now_ms_us = now_ms as u64 * 1000;
                    (envelope.first_timestamp, envelope.max_timestamp) = (now_ms_us, now_ms_us);
                } else {
                    (envelope.first_timestamp, envelope.max_timestamp) = self.client_timestamps;
                }
                let fields = envelope.fields();
                let crc = crc32c::crc32c_append(crc32c::crc32c(&fields[..60]), &header[..21]);
                let crc = crc_concat(crc, body_crc, payload_len - 21);
                head[..ENVELOPE_LEN].copy_from_slice(&fields);
                head[60..64].copy_from_slice(&crc.to_le_bytes());
                head[ENVELOPE_LEN..].copy_from_slice(&header);
                Stamped {
                    head,
                    head_len: STAMPED_HEAD_MAX,
                    body: bytes.slice(KAFKA_BATCH_HEADER_LEN..),
                    envelope,
                }
            }
        }
    }
}

pub(crate) fn le_u32(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(b)
}

pub(crate) fn le_u64(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

fn be_i32(buf: &[u8], at: usize) -> i32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    i32::from_be_bytes(b)
}

fn be_i64(buf: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    i64::from_be_bytes(b)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a native payload of `count` messages whose bodies are `body(i)`.
    pub(crate) fn native_payload(count: usize, body: impl Fn(usize) -> Vec<u8>) -> BytesMut {
        let mut out = BytesMut::new();
        for i in 0..count {
            let b = body(i);
            let mut header = [0u8; NATIVE_MESSAGE_HEADER_LEN];
            header[8..24].copy_from_slice(&(i as u128 + 1).to_le_bytes());
            header[40..48].copy_from_slice(&7u64.to_le_bytes());
            header[52..56].copy_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(&header);
            out.extend_from_slice(&b);
        }
        out
    }

    /// Builds a minimal uncompressed Kafka batch header with `count` records (record bodies are
    /// opaque to the store, so filler bytes stand in for them).
    pub(crate) fn kafka_payload(count: u32, first_ms: i64, max_ms: i64, filler: usize) -> BytesMut {
        let mut b = vec![0u8; KAFKA_BATCH_HEADER_LEN + filler];
        let len = b.len() as i32 - 12;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        b[16] = 2;
        b[23..27].copy_from_slice(&(count as i32 - 1).to_be_bytes());
        b[27..35].copy_from_slice(&first_ms.to_be_bytes());
        b[35..43].copy_from_slice(&max_ms.to_be_bytes());
        b[57..61].copy_from_slice(&(count as i32).to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        BytesMut::from(&b[..])
    }

    /// The stored bytes of a stamped batch: the envelope and the payload.
    fn stored(s: Stamped) -> (Vec<u8>, Vec<u8>) {
        let mut all = s.head().to_vec();
        all.extend_from_slice(s.body());
        let payload = all.split_off(ENVELOPE_LEN);
        (all, payload)
    }

    /// A small deterministic generator for test data.
    fn next(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed >> 33
    }

    #[test]
    fn crc_concat_is_the_crc_of_the_concatenation() {
        let mut seed = 1;
        for len_b in [0usize, 1, 7, 8, 61, 1000, 4096, 70_001] {
            let a: Vec<u8> = (0..next(&mut seed) % 100)
                .map(|_| next(&mut seed) as u8)
                .collect();
            let b: Vec<u8> = (0..len_b).map(|_| next(&mut seed) as u8).collect();
            let whole = crc32c::crc32c_append(crc32c::crc32c(&a), &b);
            let (ca, cb) = (crc32c::crc32c(&a), crc32c::crc32c(&b));
            assert_eq!(crc_concat(ca, cb, b.len()), whole, "len {len_b}");
            assert_eq!(crc32c::crc32c_combine(ca, cb, b.len()), whole);
        }
    }

    /// The derived envelope checksum of a Kafka batch (from its checked batch CRC, without
    /// reading the records) equals the one computed over the stored bytes, for random batches,
    /// with and without log-append time; and the stored bytes are the client's bytes with only
    /// the stamped fields changed.
    #[test]
    fn derived_kafka_envelope_checksum_equals_the_direct_one() {
        let mut seed = 7;
        for round in 0..40 {
            let filler = (next(&mut seed) % 5000) as usize;
            let mut p = kafka_payload(3, 1_000, 2_000, filler);
            for b in &mut p[KAFKA_BATCH_HEADER_LEN..] {
                *b = next(&mut seed) as u8;
            }
            p[21..23].copy_from_slice(&((next(&mut seed) as u16) & 0x07).to_be_bytes());
            let crc = crc32c::crc32c(&p[21..]);
            p[17..21].copy_from_slice(&crc.to_be_bytes());
            let client = p.clone().freeze();
            for log_append_time in [false, true] {
                for checked in [false, true] {
                    let batch = if checked {
                        NewBatch::kafka_crc_checked(client.clone()).unwrap()
                    } else {
                        NewBatch::kafka(client.clone()).unwrap()
                    };
                    let stamped = batch.stamp(round * 1000, 9_999_000, log_append_time);
                    let (header, payload) = stored(stamped);
                    let direct = crc32c::crc32c_append(crc32c::crc32c(&header[..60]), &payload);
                    assert_eq!(
                        le_u32(&header, 60),
                        direct,
                        "round {round} {log_append_time}"
                    );
                    Envelope::verify_payload(&header, &payload).unwrap();
                    let kafka_crc = u32::from_be_bytes(payload[17..21].try_into().unwrap());
                    assert_eq!(kafka_crc, crc32c::crc32c(&payload[21..]));
                    assert_eq!(be_i64(&payload, 0), (round * 1000) as i64);
                    assert_eq!(
                        payload[KAFKA_BATCH_HEADER_LEN..],
                        client[KAFKA_BATCH_HEADER_LEN..]
                    );
                    if !log_append_time {
                        assert_eq!(payload[8..], client[8..]);
                    }
                }
            }
        }
    }

    /// A Kafka batch's records are written from the client's buffer, not from a copy.
    #[test]
    fn kafka_records_are_not_copied() {
        let client = kafka_payload(2, 1, 2, 300).freeze();
        let stamped = NewBatch::kafka(client.clone())
            .unwrap()
            .stamp(5, 1_000, false);
        assert_eq!(
            stamped.body().as_ptr(),
            client[KAFKA_BATCH_HEADER_LEN..].as_ptr()
        );
    }

    #[test]
    fn envelope_round_trips_and_detects_flips() {
        let env = Envelope {
            payload_len: 5,
            format: BatchFormat::Kafka,
            base_offset: 42,
            record_count: 3,
            first_timestamp: 1,
            max_timestamp: 9,
            append_timestamp: 10,
        };
        let payload = b"hello";
        let header = env.encode(payload);
        assert_eq!(Envelope::decode(&header).unwrap(), env);
        Envelope::verify_payload(&header, payload).unwrap();
        for bit in 0..(ENVELOPE_LEN + payload.len()) * 8 {
            let mut all = header.to_vec();
            all.extend_from_slice(payload);
            all[bit / 8] ^= 1 << (bit % 8);
            let bad = Envelope::decode(&all)
                .and_then(|_| Envelope::verify_payload(&all[..ENVELOPE_LEN], &all[ENVELOPE_LEN..]));
            assert!(bad.is_err(), "flip of bit {bit} went unnoticed");
        }
    }

    #[test]
    fn native_batch_is_walked_and_stamped() {
        let batch = NewBatch::native(native_payload(3, |i| vec![i as u8; i + 1])).unwrap();
        assert_eq!(batch.record_count(), 3);
        let (header, payload) = stored(batch.stamp(100, 5_000, false));
        let env = Envelope::decode(&header).unwrap();
        assert_eq!((env.base_offset, env.record_count), (100, 3));
        Envelope::verify_payload(&header, &payload).unwrap();
        let mut pos = 0;
        for i in 0..3u64 {
            let msg = &payload[pos..];
            assert_eq!(le_u64(msg, 24), 100 + i);
            assert_eq!(le_u64(msg, 32), 5_000);
            let len = 64 + le_u32(msg, 52) as usize;
            assert_eq!(le_u64(msg, 0), xxhash_rust::xxh3::xxh3_64(&msg[8..len]));
            pos += len;
        }
    }

    #[test]
    fn native_batch_rejects_bad_lengths() {
        let mut p = native_payload(2, |_| vec![1; 10]);
        p.truncate(p.len() - 1);
        assert!(matches!(
            NewBatch::native(p),
            Err(BatchError::NativeMessage { index: 1, .. })
        ));
        let mut p = native_payload(1, |_| vec![1; 10]);
        p[52..56].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(NewBatch::native(p).is_err());
        let mut p = native_payload(1, |_| vec![1; 10]);
        p[56] = 1;
        assert!(NewBatch::native(p).is_err());
        assert_eq!(
            NewBatch::native(BytesMut::new()).unwrap_err(),
            BatchError::Empty
        );
        assert!(NewBatch::native(BytesMut::from(&[0u8; 63][..])).is_err());
    }

    #[test]
    fn kafka_batch_gets_base_offset_and_log_append_time() {
        let batch = NewBatch::kafka(kafka_payload(4, 1_000, 2_000, 20)).unwrap();
        assert_eq!(batch.record_count(), 4);
        let (header, payload) = stored(batch.stamp(7, 9_999_000, false));
        let env = Envelope::decode(&header).unwrap();
        assert_eq!(
            (env.first_timestamp, env.max_timestamp),
            (1_000_000, 2_000_000)
        );
        assert_eq!(be_i64(&payload, 0), 7);

        let batch = NewBatch::kafka(kafka_payload(1, 1_000, 2_000, 0)).unwrap();
        let (header, payload) = stored(batch.stamp(0, 9_999_000, true));
        let env = Envelope::decode(&header).unwrap();
        assert_eq!(env.max_timestamp, 9_999_000);
        assert_eq!(be_i64(&payload, 35), 9_999);
        assert_eq!(payload[22] & 0x08, 0x08);
        let crc = u32::from_be_bytes([payload[17], payload[18], payload[19], payload[20]]);
        assert_eq!(crc, crc32c::crc32c(&payload[21..]));
    }

    #[test]
    fn kafka_batch_rejects_bad_headers() {
        let mut p = kafka_payload(1, 0, 0, 0);
        p[16] = 1;
        assert!(NewBatch::kafka(p).is_err());
        let mut p = kafka_payload(1, 0, 0, 4);
        p.truncate(p.len() - 1);
        assert!(NewBatch::kafka(p).is_err());
        let mut p = kafka_payload(1, 0, 0, 0);
        p[23..27].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(NewBatch::kafka(p).is_err());
        assert!(NewBatch::kafka(BytesMut::from(&[0u8; 10][..])).is_err());
    }
}
