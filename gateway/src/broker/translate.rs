//! The one rule that turns Kafka records into native (Iggy 0.8) messages and back, applied one
//! stored batch at a time when a reader of one protocol meets a batch written by the other.
//!
//! | Kafka record | native message |
//! |---|---|
//! | value | payload (empty for a null value) |
//! | null value (tombstone) | user header `kafka.tombstone` = Bool true, empty payload; back: any message with that header, its payload dropped |
//! | key | user header `kafka.key` (Raw); absent when the key is null |
//! | each header `k: v`, in order | user header String `k` -> Raw `v` (a null value becomes empty) |
//! | timestamp (ms) | origin timestamp (µs); the message timestamp is the batch's append time |
//! | offset | offset |
//!
//! A native message is a tombstone whenever it carries `kafka.tombstone` = true (the value
//! byte 1), whatever its payload: Iggy and its SDK refuse an empty payload, so a native client
//! marks a tombstone by the header alone, and its payload is not part of the record.
//!
//! Native messages read by Kafka clients come out as one uncompressed CreateTime batch per
//! stored batch, with the message's origin timestamp (or its server timestamp when the origin
//! is 0) in ms. Same-protocol reads never pass through here: they get the stored bytes.
//!
//! Offsets are the stored ones both ways, never counted: a compacted log's batch may hold fewer
//! records than the offsets it spans (its envelope's `record_count`), so a converted native
//! batch puts each message at its own offset delta and keeps `lastOffsetDelta` at the span's
//! end, as Kafka's cleaned batches do.

use bytes::{BufMut, Bytes, BytesMut};
use wharf_log_store::{BatchFormat, StoredBatch};
use wharf_protocol::message::{MessageView, Messages, HEADER_LEN as NATIVE_HEADER_LEN};

use super::kafka_batch::{self, BatchHeader, KafkaBatchError, NewRecord};

/// The user header that carries a Kafka record's key.
pub const KEY_HEADER: &str = "kafka.key";
/// The user header that marks a Kafka record whose value was null.
pub const TOMBSTONE_HEADER: &str = "kafka.tombstone";

const KIND_RAW: u8 = 1;
const KIND_STRING: u8 = 2;
const KIND_BOOL: u8 = 3;

/// Native messages (back to back, checksummed) for a stored Kafka batch.
pub fn kafka_to_native(batch: &StoredBatch) -> Result<Bytes, KafkaBatchError> {
    let payload = batch.payload();
    let h = BatchHeader::parse(&payload)?;
    let section = kafka_batch::records_section(&payload)?;
    let append_us = batch.envelope().append_timestamp;
    let base = batch.base_offset();
    let mut out = BytesMut::with_capacity(section.len() + h.records_count.max(0) as usize * 96);
    kafka_batch::walk_records(&section, h.records_count, |r| {
        let ts_ms = if h.log_append_time() {
            h.max_timestamp
        } else {
            h.base_timestamp.saturating_add(r.timestamp_delta)
        };
        let mut headers = Vec::new();
        if let Some(k) = r.key {
            put_header(&mut headers, KIND_STRING, KEY_HEADER.as_bytes());
            put_header(&mut headers, KIND_RAW, k);
        }
        if r.value.is_none() {
            put_header(&mut headers, KIND_STRING, TOMBSTONE_HEADER.as_bytes());
            put_header(&mut headers, KIND_BOOL, &[1]);
        }
        for (k, v) in &r.headers {
            put_header(&mut headers, KIND_STRING, k);
            put_header(&mut headers, KIND_RAW, v.unwrap_or_default());
        }
        let value = r.value.unwrap_or_default();
        let start = out.len();
        out.put_u64_le(0);
        out.put_u128_le(0);
        out.put_u64_le(base + u64::try_from(r.offset_delta).unwrap_or(0));
        out.put_u64_le(append_us);
        out.put_u64_le(u64::try_from(ts_ms).unwrap_or(0).saturating_mul(1000));
        out.put_u32_le(headers.len() as u32);
        out.put_u32_le(value.len() as u32);
        out.put_u64_le(0);
        out.put_slice(value);
        out.put_slice(&headers);
        let sum = wharf_protocol::message::checksum(&out[start..]);
        out[start..start + 8].copy_from_slice(&sum.to_le_bytes());
    })?;
    Ok(out.freeze())
}

/// What a native message is as a Kafka record: its key (the first `kafka.key` user header),
/// whether it is a tombstone (a `kafka.tombstone` header set to true, whatever the payload: a
/// record whose value is null), and its other user headers.
#[derive(Debug, Default)]
pub struct NativeRecord<'a> {
    pub key: Option<&'a [u8]>,
    pub tombstone: bool,
    pub headers: Vec<(&'a [u8], Option<&'a [u8]>)>,
}

/// The Kafka key and tombstone of a native message ([`NativeRecord`] without its other
/// headers, and without allocating): what log compaction and the produce check of a
/// compacted topic ask of a native message.
pub fn native_key<'a>(m: &MessageView<'a>) -> (Option<&'a [u8]>, bool) {
    let mut key = None;
    let mut tombstone = false;
    walk_native_headers(m, |k, v| {
        if k == KEY_HEADER.as_bytes() {
            key.get_or_insert(v);
        } else if k == TOMBSTONE_HEADER.as_bytes() && v == [1] {
            tombstone = true;
        }
    });
    (key, tombstone)
}

/// A native message as a Kafka record's key, tombstone and headers.
pub fn native_record<'a>(m: &MessageView<'a>) -> NativeRecord<'a> {
    let mut r = NativeRecord::default();
    walk_native_headers(m, |k, v| {
        if k == KEY_HEADER.as_bytes() && r.key.is_none() {
            r.key = Some(v);
        } else if k == TOMBSTONE_HEADER.as_bytes() && v == [1] {
            r.tombstone = true;
        } else {
            r.headers.push((k, Some(v)));
        }
    });
    r
}

/// Calls `each(key, value)` for the user headers of `m`, stopping at anything malformed.
fn walk_native_headers<'a>(m: &MessageView<'a>, mut each: impl FnMut(&'a [u8], &'a [u8])) {
    let mut it = UserHeaders(m.user_headers());
    while let (Some((_, k)), Some((_, v))) = (it.next(), it.next()) {
        each(k, v);
    }
}

/// One Kafka record batch (uncompressed, offsets as stored) for a stored native batch: each
/// message at its own offset, the batch spanning the stored batch's offsets (a compacted
/// batch's holes stay holes; one with no message left is an empty batch Kafka readers step
/// over).
pub fn native_to_kafka(batch: &StoredBatch) -> Bytes {
    let payload = batch.payload();
    let base = batch.base_offset();
    // The span is the envelope's; the messages are at most what the bytes can hold.
    let span = batch.record_count();
    let last_offset_delta = i32::try_from(span.saturating_sub(1)).unwrap_or(i32::MAX);
    let mut records = Vec::with_capacity(payload.len() / NATIVE_HEADER_LEN);
    for m in Messages::new(&payload) {
        let delta = m
            .offset()
            .checked_sub(base)
            .and_then(|d| i32::try_from(d).ok())
            .unwrap_or(0)
            .min(last_offset_delta);
        let kafka = native_record(&m);
        let r = NewRecord {
            timestamp_ms: ms(if m.origin_timestamp() > 0 {
                m.origin_timestamp()
            } else {
                m.timestamp()
            }),
            key: kafka.key,
            value: (!kafka.tombstone).then(|| m.payload()),
            headers: kafka.headers,
        };
        records.push((delta, r));
    }
    kafka_batch::encode_sparse_batch(
        base as i64,
        last_offset_delta,
        records.iter().map(|(d, r)| (*d, r)),
    )
}

/// A stored batch in the Kafka format: verbatim when it is one, converted when native.
pub fn as_kafka(batch: &StoredBatch) -> Bytes {
    match batch.format() {
        BatchFormat::Kafka => batch.payload(),
        BatchFormat::Native => native_to_kafka(batch),
    }
}

/// Native messages for a stored batch: verbatim when native, converted when Kafka.
pub fn as_native(batch: &StoredBatch) -> Result<Bytes, KafkaBatchError> {
    match batch.format() {
        BatchFormat::Native => Ok(batch.payload()),
        BatchFormat::Kafka => kafka_to_native(batch),
    }
}

fn ms(us: u64) -> i64 {
    i64::try_from(us / 1000).unwrap_or(i64::MAX)
}

fn put_header(out: &mut Vec<u8>, kind: u8, v: &[u8]) {
    out.push(kind);
    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    out.extend_from_slice(v);
}

/// The entries of a native user-headers block, `(kind, bytes)`, stopping at anything malformed.
struct UserHeaders<'a>(&'a [u8]);

impl<'a> Iterator for UserHeaders<'a> {
    type Item = (u8, &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        let b = self.0;
        if b.len() < 5 {
            return None;
        }
        let len = u32::from_le_bytes([b[1], b[2], b[3], b[4]]) as usize;
        let v = b.get(5..5usize.checked_add(len)?)?;
        self.0 = &b[5 + len..];
        Some((b[0], v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_log_store::{LogStore, NewBatch, StoreConfig};

    #[tokio::test]
    async fn records_survive_both_directions() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = LogStore::open(dir.path(), StoreConfig::default()).unwrap();
        store.create_stream("s").unwrap();
        store
            .create_topic("s".into(), "t", 1, Default::default())
            .unwrap();
        let p = store.partition("s".into(), "t".into(), 0).unwrap();
        let kafka = kafka_batch::encode_batch(
            0,
            &[
                NewRecord {
                    timestamp_ms: 1_700_000_000_000,
                    key: Some(b"key"),
                    value: Some(b"value"),
                    headers: vec![(b"a", Some(b"1")), (b"a", Some(b"2"))],
                },
                NewRecord {
                    timestamp_ms: 1_700_000_000_001,
                    key: None,
                    value: None,
                    headers: vec![],
                },
            ],
        );
        p.append(NewBatch::kafka(BytesMut::from(&kafka[..])).unwrap())
            .await
            .unwrap();
        let stored = p.read(0, 1 << 20).unwrap().batches.remove(0);
        assert_eq!(as_kafka(&stored), kafka, "Kafka -> Kafka is verbatim");
        let native = as_native(&stored).unwrap();
        let msgs: Vec<_> = Messages::new(&native).collect();
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].payload(), b"value");
        assert_eq!(msgs[1].offset(), 1);
        assert_eq!(msgs[0].origin_timestamp(), 1_700_000_000_000_000);
        assert_eq!(
            msgs[0].checksum(),
            wharf_protocol::message::checksum(msgs[0].bytes())
        );
        wharf_protocol::message::validate_user_headers(msgs[0].user_headers()).unwrap();

        // And back: append the converted messages as a native batch, read them as Kafka.
        p.append(NewBatch::native(BytesMut::from(&native[..])).unwrap())
            .await
            .unwrap();
        let stored = p.read(2, 1 << 20).unwrap().batches.remove(0);
        let again = as_kafka(&stored);
        let h = kafka_batch::validate(&again).unwrap();
        assert_eq!((h.base_offset, h.records_count), (2, 2));
        let section = kafka_batch::records_section(&again).unwrap();
        let mut seen = Vec::new();
        kafka_batch::walk_records(&section, 2, |r| {
            seen.push((
                r.key.map(<[u8]>::to_vec),
                r.value.map(<[u8]>::to_vec),
                r.headers.len(),
                h.base_timestamp + r.timestamp_delta,
            ))
        })
        .unwrap();
        assert_eq!(
            seen,
            vec![
                (
                    Some(b"key".to_vec()),
                    Some(b"value".to_vec()),
                    2,
                    1_700_000_000_000
                ),
                (None, None, 0, 1_700_000_000_001),
            ]
        );
    }
}
