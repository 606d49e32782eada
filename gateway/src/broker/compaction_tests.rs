//! The broker's record knowledge for log compaction, and the readers of a compacted log: every
//! codec rebuilt and read back by an independent decoder (the `kafka-protocol` crate, as
//! clients decode), record classification (keyed, tombstone, keyless, control, aborted),
//! emptied batches, native batches kept byte for byte, the stable offset, and the readers that
//! must not assume a batch holds as many records as offsets (fetch, native polls, ListOffsets
//! by time, producer replay, conversion between the formats).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use bytes::BufMut;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType as KafkaTimestampType,
};
use wharf_log_store::{Envelope, NewBatch, StoreConfig};
use wharf_protocol::message::encode_message;
use wharf_protocol::{Consumer, Identifier, PollingStrategy};

use super::*;
use crate::broker::consume::{self, FetchLimits, FetchWant, PollRequest};
use crate::broker::kafka_batch::{
    encode_batch, encode_txn_marker, BatchHeader, Codec, NewRecord, HEADER_LEN,
};
use crate::broker::{producers, BrokerSettings};

/// Any partition: only transactional batches make the scan look at the partition's state.
const ANY: PartitionKey = PartitionKey {
    stream: 0,
    topic: 0,
    partition: 0,
};

fn open(dir: &std::path::Path) -> Arc<Broker> {
    let settings = BrokerSettings::for_tests();
    let config = StoreConfig {
        background_tasks: false,
        ..StoreConfig::default()
    };
    Arc::new(Broker::open(dir, config, settings).unwrap())
}

async fn kafka_topic(b: &Broker, name: &str) -> (wharf_log_store::TopicInfo, Arc<Partition>) {
    let t = b
        .create_kafka_topic(name, 1, Default::default(), false)
        .await
        .unwrap()
        .unwrap();
    let p = b.partition_handle(t.stream_id, t.id, 0).unwrap();
    (t, p)
}

/// A stored batch as the store hands it to the cleaner: envelope and payload.
fn stored(format: BatchFormat, base: u64, span: u32, payload: &[u8]) -> StoredBatch {
    let env = Envelope {
        payload_len: payload.len() as u32,
        format,
        base_offset: base,
        record_count: span,
        first_timestamp: 0,
        max_timestamp: 0,
        append_timestamp: 0,
    };
    let mut bytes = env.encode(payload).to_vec();
    bytes.extend_from_slice(payload);
    StoredBatch::from_bytes(Bytes::from(bytes)).unwrap()
}

/// A [`CleanRecord`] that owns its key, for comparing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Keyed(u64, Vec<u8>, bool),
    Keyless(u64),
    Aborted(u64),
    Control(u64),
}

fn scan(keys: &dyn RecordKeys, batch: &StoredBatch) -> (Vec<Seen>, BatchFacts) {
    scan_in(keys, ANY, batch).unwrap()
}

fn scan_in(
    keys: &dyn RecordKeys,
    partition: PartitionKey,
    batch: &StoredBatch,
) -> Result<(Vec<Seen>, BatchFacts), CodecError> {
    let mut seen = Vec::new();
    let facts = keys.scan(partition, batch, &mut |r| {
        seen.push(match r {
            CleanRecord::Keyed {
                offset,
                key,
                tombstone,
            } => Seen::Keyed(offset, key.to_vec(), tombstone),
            CleanRecord::Keyless { offset } => Seen::Keyless(offset),
            CleanRecord::Aborted { offset } => Seen::Aborted(offset),
            CleanRecord::Control { offset } => Seen::Control(offset),
        })
    })?;
    Ok((seen, facts))
}

fn retain(
    keys: &dyn RecordKeys,
    batch: &StoredBatch,
    kept: &[u64],
    keep_empty: bool,
) -> Option<Bytes> {
    keys.retain(ANY, batch, &|o| kept.contains(&o), keep_empty)
        .unwrap()
}

/// Six records at offsets `base..base + 6` encoded by the `kafka-protocol` crate (an encoder
/// that is not ours) with `compression`, from producer 42 epoch 3 at sequence 10: keys k0, k1,
/// none, k0, k1 (a tombstone: null value), k2; a header each; timestamps 10 ms apart.
fn crate_batch(base: i64, compression: Compression) -> (Bytes, Vec<Record>) {
    let records: Vec<Record> = (0..6)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: 42,
            producer_epoch: 3,
            timestamp_type: KafkaTimestampType::Creation,
            offset: base + i,
            sequence: 10 + i as i32,
            timestamp: 1_700_000_000_000 + 10 * i,
            key: (i != 2).then(|| Bytes::from(format!("k{}", i % 3))),
            value: (i != 4).then(|| Bytes::from(vec![b'v'; 100 + i as usize])),
            headers: [(
                kafka_protocol::protocol::StrBytes::from_static_str("h"),
                Some(Bytes::from(format!("{i}"))),
            )]
            .into_iter()
            .collect(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    (buf.freeze(), records)
}

const CODECS: [(Compression, Codec); 5] = [
    (Compression::None, Codec::None),
    (Compression::Gzip, Codec::Gzip),
    (Compression::Snappy, Codec::Snappy),
    (Compression::Lz4, Codec::Lz4),
    (Compression::Zstd, Codec::Zstd),
];

/// Every codec: the scan sees each record at its offset with its key (tombstone and keyless
/// told apart); the rebuilt batch keeps base offset, offset span, producer, sequence, codec and
/// timestamps, holds exactly the kept records, has a valid CRC-32C (our parser) and decodes with
/// the `kafka-protocol` crate to the very records that went in; keeping all returns the batch
/// as it was, keeping none returns nothing.
#[tokio::test]
async fn kafka_batches_of_every_codec_are_scanned_and_rebuilt_with_their_codec() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let keys = broker.record_keys();
    for (compression, codec) in CODECS {
        let (wire, records) = crate_batch(100, compression);
        let batch = stored(BatchFormat::Kafka, 100, 6, &wire);
        let (seen, facts) = scan(&*keys, &batch);
        assert_eq!(facts.producer_id, Some(42), "{codec:?}");
        assert_eq!(
            seen,
            [
                Seen::Keyed(100, b"k0".to_vec(), false),
                Seen::Keyed(101, b"k1".to_vec(), false),
                Seen::Keyless(102),
                Seen::Keyed(103, b"k0".to_vec(), false),
                Seen::Keyed(104, b"k1".to_vec(), true),
                Seen::Keyed(105, b"k2".to_vec(), false),
            ],
            "{codec:?}"
        );

        let rebuilt = retain(&*keys, &batch, &[101, 104, 105], false).unwrap();
        let (h, section) = kafka_batch::open_stored(&rebuilt).expect("CRC-32C and length valid");
        let before = BatchHeader::parse(&wire).unwrap();
        assert_eq!(h.codec().unwrap(), codec);
        assert_eq!(h.records_count, 3, "{codec:?}");
        assert_eq!(
            (h.base_offset, h.last_offset_delta, h.attributes),
            (100, 5, before.attributes),
            "{codec:?}: the offsets spanned and the attributes stay"
        );
        assert_eq!(
            (
                h.producer_id,
                h.producer_epoch,
                h.base_sequence,
                h.base_timestamp,
                h.max_timestamp
            ),
            (42, 3, 10, before.base_timestamp, before.max_timestamp),
            "{codec:?}"
        );
        assert_eq!(h.total_len(), rebuilt.len());
        assert_eq!(
            kafka_batch::walk_stored(&h, &section, |_| {}).unwrap(),
            3,
            "{codec:?}"
        );
        let decoded = RecordBatchDecoder::decode(&mut rebuilt.clone()).unwrap();
        let want: Vec<Record> = [1, 4, 5].iter().map(|&i| records[i].clone()).collect();
        assert_eq!(decoded.records, want, "{codec:?}");
        assert_eq!(decoded.compression, compression, "{codec:?}");

        // Stored again (the cleaner's output is read back the same way), it scans the same.
        let again = stored(BatchFormat::Kafka, 100, 6, &rebuilt);
        assert_eq!(
            scan(&*keys, &again).0,
            [
                Seen::Keyed(101, b"k1".to_vec(), false),
                Seen::Keyed(104, b"k1".to_vec(), true),
                Seen::Keyed(105, b"k2".to_vec(), false),
            ]
        );
        // Kafka's cleaner sets a CreateTime batch's maxTimestamp to its records' newest.
        let older = retain(&*keys, &batch, &[100, 102], false).unwrap();
        let oh = kafka_batch::open_stored(&older).expect("CRC valid").0;
        assert_eq!(
            (oh.base_timestamp, oh.max_timestamp),
            (before.base_timestamp, 1_700_000_000_020),
            "{codec:?}"
        );
        // From there, one more record goes.
        let twice = retain(&*keys, &again, &[105], false).unwrap();
        let decoded = RecordBatchDecoder::decode(&mut twice.clone()).unwrap();
        assert_eq!(decoded.records, [records[5].clone()], "{codec:?}");

        let all: Vec<u64> = (100..106).collect();
        assert_eq!(retain(&*keys, &batch, &all, false).unwrap(), wire);
        assert_eq!(retain(&*keys, &batch, &[], false), None);
    }
}

/// A LogAppendTime batch keeps its maxTimestamp (the append time every record reads as).
#[tokio::test]
async fn a_log_append_time_batch_keeps_its_append_time() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let keys = broker.record_keys();
    let (plain, _) = crate_batch(0, Compression::None);
    let mut stamped = plain.to_vec();
    kafka_batch::stamp_log_append_time(&mut stamped, 99);
    let rebuilt = retain(
        &*keys,
        &stored(BatchFormat::Kafka, 0, 6, &stamped),
        &[0, 2],
        false,
    )
    .unwrap();
    let h = kafka_batch::open_stored(&rebuilt).unwrap().0;
    assert!(h.log_append_time());
    assert_eq!((h.max_timestamp, h.records_count), (99, 2));
}

/// Snappy comes in two framings (xerial's from Java clients, one raw block from librdkafka):
/// a rebuilt batch keeps the one it came in, and both read back.
#[tokio::test]
async fn snappy_keeps_its_framing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let keys = broker.record_keys();
    let (xerial, _) = crate_batch(0, Compression::Snappy);
    let (plain, records) = crate_batch(0, Compression::None);
    assert_eq!(
        &xerial[HEADER_LEN..HEADER_LEN + 2],
        b"\x82S",
        "the crate writes xerial"
    );
    // The same records as one raw snappy block, compressed here with `snap` directly.
    let raw_block = snap::raw::Encoder::new()
        .compress_vec(&plain[HEADER_LEN..])
        .unwrap();
    let mut raw = BytesMut::from(&plain[..HEADER_LEN]);
    raw.put_slice(&raw_block);
    let len = (raw.len() - 12) as i32;
    raw[8..12].copy_from_slice(&len.to_be_bytes());
    raw[21..23].copy_from_slice(&2i16.to_be_bytes());
    let crc = crc32c::crc32c(&raw[21..]);
    raw[17..21].copy_from_slice(&crc.to_be_bytes());

    for (wire, xerial_framed) in [(xerial, true), (raw.freeze(), false)] {
        let batch = stored(BatchFormat::Kafka, 0, 6, &wire);
        let rebuilt = retain(&*keys, &batch, &[0, 5], false).unwrap();
        let body = &rebuilt[HEADER_LEN..];
        assert_eq!(body.starts_with(b"\x82SNAPPY\0"), xerial_framed);
        if !xerial_framed {
            // One raw block: `snap` alone reads it.
            let section = snap::raw::Decoder::new().decompress_vec(body).unwrap();
            let h = BatchHeader::parse(&rebuilt).unwrap();
            assert_eq!(kafka_batch::walk_stored(&h, &section, |_| {}).unwrap(), 2);
        }
        let (h, section) = kafka_batch::open_stored(&rebuilt).unwrap();
        let mut offsets = Vec::new();
        kafka_batch::walk_stored(&h, &section, |r| offsets.push(r.offset_delta)).unwrap();
        assert_eq!(offsets, [0, 5]);
        if xerial_framed {
            let decoded = RecordBatchDecoder::decode(&mut rebuilt.clone()).unwrap();
            assert_eq!(decoded.records, [records[0].clone(), records[5].clone()]);
        }
    }
}

/// `b` with producer `pid`/`epoch`/`seq`, transactional or not, CRC re-computed; and its base
/// offset set to `base` (outside the CRC, as the store stamps it).
fn with_producer(b: &[u8], base: i64, pid: i64, epoch: i16, seq: i32, txn: bool) -> Bytes {
    let mut b = b.to_vec();
    b[0..8].copy_from_slice(&base.to_be_bytes());
    let attrs = i16::from_be_bytes([b[21], b[22]]) | if txn { 0x10 } else { 0 };
    b[21..23].copy_from_slice(&attrs.to_be_bytes());
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

fn keyed(keys: &[&'static [u8]], ts: i64) -> Vec<NewRecord<'static>> {
    keys.iter()
        .enumerate()
        .map(|(i, k)| NewRecord {
            timestamp_ms: ts + i as i64,
            key: Some(k),
            value: Some(b"value"),
            headers: Vec::new(),
        })
        .collect()
}

/// Transaction markers are Control records; the records of a transaction the partition's state
/// lists as aborted are Aborted (whatever their keys), those of a committed one keyed as usual;
/// keyless records and tombstones are told apart in plain batches. Without the partition's
/// transaction state a transactional batch is an error, never "not aborted".
#[tokio::test]
async fn markers_aborted_and_committed_transactions_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let keys = broker.record_keys();
    let (_, p) = kafka_topic(&broker, "txns").await;
    let key = p.key();
    let txns = broker.partition_txns(&p).await.unwrap();
    {
        let mut t = txns.write();
        t.begin(7, 0);
        t.end(7, 3, false); // aborted: producer 7, offsets 0..=3
        t.begin(8, 4);
        t.end(8, 6, true); // committed
        t.begin(7, 10);
        t.end(7, 12, true); // producer 7 again, committed this time
    }
    let two = encode_batch(0, &keyed(&[b"a", b"b"], 1_000));
    let aborted = stored(
        BatchFormat::Kafka,
        0,
        2,
        &with_producer(&two, 0, 7, 0, 0, true),
    );
    let (seen, facts) = scan_in(&*keys, key, &aborted).unwrap();
    assert_eq!(seen, [Seen::Aborted(0), Seen::Aborted(1)]);
    assert_eq!(facts.producer_id, Some(7));

    let mut marker = encode_txn_marker(7, 0, false, 0, 1_000).to_vec();
    marker[0..8].copy_from_slice(&3i64.to_be_bytes());
    let marker = stored(BatchFormat::Kafka, 3, 1, &marker);
    let (seen, facts) = scan_in(&*keys, key, &marker).unwrap();
    assert_eq!(seen, [Seen::Control(3)]);
    assert_eq!(
        facts.producer_id,
        Some(7),
        "a marker is its producer's batch"
    );

    for (base, pid) in [(4, 8), (10, 7)] {
        let committed = stored(
            BatchFormat::Kafka,
            base,
            2,
            &with_producer(&two, base as i64, pid, 0, 2, true),
        );
        assert_eq!(
            scan_in(&*keys, key, &committed).unwrap().0,
            [
                Seen::Keyed(base, b"a".to_vec(), false),
                Seen::Keyed(base + 1, b"b".to_vec(), false)
            ],
            "producer {pid} at {base}"
        );
    }

    let plain = encode_batch(
        20,
        &[
            NewRecord {
                timestamp_ms: 5,
                key: None,
                value: Some(b"x"),
                headers: Vec::new(),
            },
            NewRecord {
                timestamp_ms: 6,
                key: Some(b"gone"),
                value: None,
                headers: Vec::new(),
            },
            NewRecord {
                timestamp_ms: 7,
                key: Some(b""),
                value: Some(b""),
                headers: Vec::new(),
            },
        ],
    );
    let (seen, facts) = scan_in(&*keys, key, &stored(BatchFormat::Kafka, 20, 3, &plain)).unwrap();
    assert_eq!(
        seen,
        [
            Seen::Keyless(20),
            Seen::Keyed(21, b"gone".to_vec(), true),
            Seen::Keyed(22, Vec::new(), false),
        ],
        "an empty key is a key (Kafka's hasKey), an empty value no tombstone"
    );
    assert_eq!(facts.producer_id, None);

    // Another partition, whose transactions were never loaded.
    let (_, other) = kafka_topic(&broker, "unloaded").await;
    assert!(scan_in(&*keys, other.key(), &aborted).is_err());
}

/// Bound: a batch the cleaner cannot trust is refused, never rebuilt with a fresh CRC: a flipped
/// byte under the Kafka CRC, a header that disagrees with the envelope, offset deltas past the
/// span, a native batch with trailing bytes or offsets outside its span.
#[tokio::test]
async fn batches_that_cannot_be_trusted_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let keys = broker.record_keys();
    let pk = ANY;
    let (wire, _) = crate_batch(0, Compression::Lz4);
    let mut flipped = wire.to_vec();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let bad = [
        stored(BatchFormat::Kafka, 0, 6, &flipped),
        stored(BatchFormat::Kafka, 1, 6, &wire), // the envelope says base 1
        stored(BatchFormat::Kafka, 0, 7, &wire), // and here a span of 7
    ];
    for b in &bad {
        assert!(scan_in(&*keys, pk, b).is_err());
        assert!(keys.retain(pk, b, &|_| false, true).is_err());
    }
    // A record at delta 3 in a batch that says lastOffsetDelta 1.
    let mut past = encode_batch(0, &keyed(&[b"a", b"b", b"c", b"d"], 0)).to_vec();
    past[23..27].copy_from_slice(&1i32.to_be_bytes());
    let crc = crc32c::crc32c(&past[21..]);
    past[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(scan_in(&*keys, pk, &stored(BatchFormat::Kafka, 0, 2, &past)).is_err());

    let mut messages = native_messages();
    stamp_offsets(&mut messages, 0);
    let mut trailing = messages.to_vec();
    trailing.extend_from_slice(&[0; 10]);
    assert!(scan_in(&*keys, pk, &stored(BatchFormat::Native, 0, 5, &trailing)).is_err());
    // Offsets 0..=4 in a batch whose envelope says it starts at 1.
    assert!(scan_in(&*keys, pk, &stored(BatchFormat::Native, 1, 5, &messages)).is_err());
}

/// Kafka's way of keeping a producer's last batch: no record left, the header alone, with its
/// offsets, producer and sequence, uncompressed, CRC valid; clients decode it as no records;
/// and replaying the log over it (a transactional one, whose marker the cleaner may have
/// removed) opens no transaction: the last stable offset is not held back forever.
#[tokio::test]
async fn an_emptied_batch_keeps_the_producer_and_opens_no_transaction_on_replay() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path());
        let keys = broker.record_keys();
        let (_, p) = kafka_topic(&broker, "empty").await;
        for (compression, codec) in CODECS {
            let (wire, _) = crate_batch(0, compression);
            let txn = with_producer(&wire, 0, 42, 3, 10, true);
            let batch = stored(BatchFormat::Kafka, 0, 6, &txn);
            let empty = retain(&*keys, &batch, &[], true).unwrap();
            let (h, section) = kafka_batch::open_stored(&empty).expect("CRC valid");
            assert!(section.is_empty());
            assert_eq!(h.records_count, 0, "{codec:?}");
            assert_eq!(h.codec().unwrap(), Codec::None, "{codec:?}");
            assert_eq!(
                (
                    h.base_offset,
                    h.last_offset_delta,
                    h.producer_id,
                    h.producer_epoch,
                    h.base_sequence
                ),
                (0, 5, 42, 3, 10)
            );
            assert!(h.is_transactional());
            assert_eq!(h.last_sequence(), 15);
            let decoded = RecordBatchDecoder::decode(&mut empty.clone()).unwrap();
            assert!(decoded.records.is_empty());
            let (seen, facts) = scan(&*keys, &stored(BatchFormat::Kafka, 0, 6, &empty));
            assert!(seen.is_empty());
            assert_eq!(facts.producer_id, Some(42));
        }
        // An emptied transactional batch (its marker gone), then a plain batch.
        let (wire, _) = crate_batch(0, Compression::None);
        let txn = with_producer(&wire, 0, 42, 3, 10, true);
        let empty = retain(&*keys, &stored(BatchFormat::Kafka, 0, 6, &txn), &[], true).unwrap();
        p.append(NewBatch::kafka(BytesMut::from(&empty[..])).unwrap())
            .await
            .unwrap();
        let plain = encode_batch(0, &keyed(&[b"x"], 0));
        p.append(NewBatch::kafka(BytesMut::from(&plain[..])).unwrap())
            .await
            .unwrap();
        assert_eq!(
            p.high_watermark(),
            7,
            "the empty batch still spans 6 offsets"
        );
        broker.close().await.unwrap();
    }
    // Reopened without a producer snapshot: the state comes from replaying the log.
    std::fs::remove_file(dir.path().join("kafka-producers")).ok();
    let broker = open(dir.path());
    let t = broker.kafka_topic("empty").unwrap();
    let p = broker.partition_handle(t.stream_id, t.id, 0).unwrap();
    let state = broker.producers.partition(&p).await.unwrap();
    let txns = state.txns();
    assert_eq!(
        txns.read().last_stable_offset(7),
        7,
        "an emptied transactional batch opens no transaction"
    );
    let next = |seq| BatchHeader {
        base_offset: 0,
        batch_length: 0,
        attributes: 0,
        last_offset_delta: 0,
        base_timestamp: 0,
        max_timestamp: 0,
        producer_id: 42,
        producer_epoch: 3,
        base_sequence: seq,
        records_count: 1,
    };
    assert_eq!(
        state.check(&next(16)),
        producers::SequenceCheck::Append,
        "the producer's sequence survived"
    );
    assert_eq!(state.check(&next(17)), producers::SequenceCheck::OutOfOrder);
}

/// A native user header `kind`, `value`.
fn header(out: &mut Vec<u8>, kind: u8, value: &[u8]) {
    out.push(kind);
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}

/// Stamps offsets `base..` on native messages, as the store does.
fn stamp_offsets(blob: &mut BytesMut, base: u64) {
    let mut at = 0;
    let mut offset = base;
    while let Some(m) = Messages::new(&blob[at..]).next() {
        let len = m.bytes().len();
        blob[at + 24..at + 32].copy_from_slice(&offset.to_le_bytes());
        at += len;
        offset += 1;
    }
}

/// Native messages: `kafka.key` a; no key; key b as a tombstone (empty payload); key a again;
/// two `kafka.key` headers (the first counts).
fn native_messages() -> BytesMut {
    let key = |k: &[u8], h: &mut Vec<u8>| {
        header(h, 2, b"kafka.key");
        header(h, 1, k);
    };
    let mut blob = BytesMut::new();
    let mut h = Vec::new();
    key(b"a", &mut h);
    header(&mut h, 2, b"other");
    header(&mut h, 1, b"1");
    encode_message(1, 0, b"first", &h, &mut blob);
    encode_message(2, 0, b"keyless", &[], &mut blob);
    let mut h = Vec::new();
    key(b"b", &mut h);
    header(&mut h, 2, b"kafka.tombstone");
    header(&mut h, 3, &[1]);
    encode_message(3, 0, b"", &h, &mut blob);
    let mut h = Vec::new();
    key(b"a", &mut h);
    encode_message(4, 0, b"second", &h, &mut blob);
    let mut h = Vec::new();
    key(b"c", &mut h);
    key(b"d", &mut h);
    encode_message(5, 0, b"two keys", &h, &mut blob);
    blob
}

/// Native batches: keys from `kafka.key`, tombstones by the `kafka.tombstone` convention; a
/// rebuilt batch is the kept messages' stored bytes exactly (offsets, checksums untouched);
/// read by a Kafka client it puts each message at its own offset and spans the whole batch;
/// with no message left it is an empty Kafka batch of the same span.
#[tokio::test]
async fn native_batches_keep_their_messages_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let keys = broker.record_keys();
    let (_, p) = kafka_topic(&broker, "native").await;
    p.append(NewBatch::native(native_messages()).unwrap())
        .await
        .unwrap();
    let batch = p.read(0, 1 << 20).unwrap().batches.remove(0);
    let (seen, facts) = scan(&*keys, &batch);
    assert_eq!(
        seen,
        [
            Seen::Keyed(0, b"a".to_vec(), false),
            Seen::Keyless(1),
            Seen::Keyed(2, b"b".to_vec(), true),
            Seen::Keyed(3, b"a".to_vec(), false),
            Seen::Keyed(4, b"c".to_vec(), false),
        ]
    );
    assert_eq!(facts.producer_id, None);

    let payload = batch.payload();
    let originals: Vec<&[u8]> = Messages::new(&payload).map(|m| m.bytes()).collect();
    let rebuilt = retain(&*keys, &batch, &[0, 2, 4], false).unwrap();
    assert_eq!(
        rebuilt,
        [originals[0], originals[2], originals[4]].concat(),
        "the kept messages' bytes, exactly"
    );
    for m in Messages::new(&rebuilt) {
        assert_eq!(m.checksum(), wharf_protocol::message::checksum(m.bytes()));
    }
    assert_eq!(
        retain(&*keys, &batch, &[0, 1, 2, 3, 4], false).unwrap(),
        payload
    );
    assert_eq!(retain(&*keys, &batch, &[], false), None);
    assert_eq!(retain(&*keys, &batch, &[], true), Some(Bytes::new()));

    // The cleaned batch, as the store keeps it: offsets 0..=4, messages at 0, 2 and 4.
    let holey = stored(BatchFormat::Native, 0, 5, &rebuilt);
    assert_eq!(
        scan(&*keys, &holey).0,
        [
            Seen::Keyed(0, b"a".to_vec(), false),
            Seen::Keyed(2, b"b".to_vec(), true),
            Seen::Keyed(4, b"c".to_vec(), false),
        ]
    );
    let kafka = translate::native_to_kafka(&holey);
    let (h, _) = kafka_batch::open_stored(&kafka).expect("CRC valid");
    assert_eq!(
        (h.base_offset, h.last_offset_delta, h.records_count),
        (0, 4, 3),
        "lastOffsetDelta is the span's end, not the record count's"
    );
    let decoded = RecordBatchDecoder::decode(&mut kafka.clone()).unwrap();
    let got: Vec<(i64, Option<Bytes>, Option<Bytes>)> = decoded
        .records
        .iter()
        .map(|r| (r.offset, r.key.clone(), r.value.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (0, Some(Bytes::from("a")), Some(Bytes::from("first"))),
            (2, Some(Bytes::from("b")), None),
            (4, Some(Bytes::from("c")), Some(Bytes::from("two keys"))),
        ]
    );

    let emptied = stored(BatchFormat::Native, 10, 3, &[]);
    assert!(scan(&*keys, &emptied).0.is_empty());
    let kafka = translate::native_to_kafka(&emptied);
    let (h, _) = kafka_batch::open_stored(&kafka).unwrap();
    assert_eq!(
        (h.base_offset, h.last_offset_delta, h.records_count),
        (10, 2, 0)
    );
    assert!(RecordBatchDecoder::decode(&mut kafka.clone())
        .unwrap()
        .records
        .is_empty());
}

/// A compacted Kafka batch read by a native client: each message at its record's own offset.
#[tokio::test]
async fn a_compacted_kafka_batch_reads_natively_at_its_real_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let keys = broker.record_keys();
    for (compression, codec) in CODECS {
        let (wire, _) = crate_batch(100, compression);
        let rebuilt = retain(
            &*keys,
            &stored(BatchFormat::Kafka, 100, 6, &wire),
            &[101, 103, 105],
            false,
        )
        .unwrap();
        let native = translate::as_native(&stored(BatchFormat::Kafka, 100, 6, &rebuilt)).unwrap();
        let offsets: Vec<u64> = Messages::new(&native).map(|m| m.offset()).collect();
        assert_eq!(offsets, [101, 103, 105], "{codec:?}");
    }
}

/// The stable offset: 0 while the partition's transactions are not loaded (asked from a plain
/// thread, it returns without the runtime running anything: the cleaner never waits on async
/// work), the load started in the background; then the high watermark, held back by an open
/// transaction to its first offset.
#[tokio::test]
async fn the_stable_offset_is_zero_until_loaded_then_the_last_stable_offset() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let keys = broker.record_keys();
    let (_, p) = kafka_topic(&broker, "lso").await;
    let plain = encode_batch(0, &keyed(&[b"a", b"b", b"c"], 0));
    p.append(NewBatch::kafka(BytesMut::from(&plain[..])).unwrap())
        .await
        .unwrap();
    let key = p.key();
    // This test's runtime has one thread, blocked in `join` here: the call cannot wait on it.
    let first = std::thread::scope(|s| s.spawn(|| keys.stable_offset(key)).join().unwrap());
    assert_eq!(first, 0, "not loaded yet: nothing is cleanable");
    let loaded = tokio::time::timeout(Duration::from_secs(30), async {
        while broker.producers.ready_txns(&key).is_none() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(loaded.is_ok(), "the background load did not finish in 30 s");
    assert_eq!(keys.stable_offset(key), 3, "the high watermark");
    let txns = broker.producers.ready_txns(&key).unwrap();
    txns.write().begin(9, 1);
    assert_eq!(
        keys.stable_offset(key),
        1,
        "an open transaction holds it back"
    );
    txns.write().end(9, 3, true);
    assert_eq!(keys.stable_offset(key), 3);
    let gone = PartitionKey {
        partition: 99,
        ..key
    };
    assert_eq!(keys.stable_offset(gone), 0, "no such partition");
}

/// A batch as the cleaner leaves it: its records' keys, first timestamp, the offset deltas kept
/// and whether it is kept when empty.
type CleanedBatch<'a> = (&'a [&'static [u8]], i64, &'a [u64], bool);

/// A compacted log, written as the cleaner leaves it: batches with holes inside and at their
/// end, an emptied one, a whole one. Offsets 0..=3 (records 0, 1), 4..=7 (5, 7), 8..=9 (none),
/// 10..=11 (10, 11).
async fn compacted_log(broker: &Broker, keys: &dyn RecordKeys, name: &str) -> Arc<Partition> {
    let (_, p) = kafka_topic(broker, name).await;
    let parts: [CleanedBatch<'_>; 4] = [
        (&[b"a", b"b", b"c", b"d"], 1_000, &[0, 1], false),
        (&[b"e", b"f", b"g", b"h"], 5_000, &[1, 3], false),
        (&[b"i", b"j"], 7_000, &[], true),
        (&[b"k", b"l"], 9_000, &[0, 1], false),
    ];
    for (batch_keys, ts, kept, keep_empty) in parts {
        let whole = encode_batch(0, &keyed(batch_keys, ts));
        let n = batch_keys.len() as u32;
        let rebuilt = retain(
            keys,
            &stored(BatchFormat::Kafka, 0, n, &whole),
            kept,
            keep_empty,
        )
        .unwrap();
        let mut rebuilt = rebuilt.to_vec();
        if ts == 1_000 {
            // The time index may know a cleaned batch by the newest time it had before (the
            // store keeps a cleaned batch's envelope times): here 1_003, its dropped record's.
            rebuilt[35..43].copy_from_slice(&1_003i64.to_be_bytes());
            let crc = crc32c::crc32c(&rebuilt[21..]);
            rebuilt[17..21].copy_from_slice(&crc.to_be_bytes());
        }
        p.append(NewBatch::kafka(BytesMut::from(&rebuilt[..])).unwrap())
            .await
            .unwrap();
    }
    assert_eq!(p.high_watermark(), 12);
    p
}

/// Readers of a compacted log: a Kafka fetch returns the batches with their spans (from a hole
/// too), a native poll counts messages, not offsets, and resumes past holes, and a ListOffsets
/// time look-up steps over a batch ending in a hole and an emptied batch (it looped forever on
/// the first before: the next offset after a batch's last record was still inside the batch).
#[tokio::test]
async fn fetch_polls_and_time_look_ups_read_across_holes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let keys = broker.record_keys();
    let p = compacted_log(&broker, &*keys, "holes").await;

    let fetch = |offset: i64| {
        let broker = Arc::clone(&broker);
        async move {
            let want = FetchWant {
                topic: Arc::from("holes"),
                partition: 0,
                offset,
                max_bytes: 1 << 20,
            };
            let mut f = broker
                .fetch(
                    vec![want],
                    FetchLimits::new(1 << 20, 1 << 20, 0, Duration::ZERO),
                )
                .await;
            let batches = f.remove(0).records.unwrap();
            batches
                .iter()
                .map(|b| {
                    let h = BatchHeader::parse(b).unwrap();
                    (h.base_offset, h.last_offset_delta, h.records_count)
                })
                .collect::<Vec<_>>()
        }
    };
    let all = [(0, 3, 2), (4, 3, 2), (8, 1, 0), (10, 1, 2)];
    assert_eq!(fetch(0).await, all);
    assert_eq!(fetch(2).await, all, "from a hole: the batch around it");
    assert_eq!(fetch(8).await, all[2..]);

    let t = broker.kafka_topic("holes").unwrap();
    let poll = |strategy, auto_commit| PollRequest {
        client_id: 1,
        consumer: Consumer::Single(Identifier::Numeric(1)),
        stream: t.stream_id,
        topic: t.id,
        partition: Some(0),
        strategy,
        count: 3,
        auto_commit,
    };
    let offsets = |polled: consume::Polled| {
        let joined = polled.messages.concat();
        let offsets: Vec<u64> = Messages::new(&joined).map(|m| m.offset()).collect();
        assert_eq!(offsets.len(), polled.count as usize);
        offsets
    };
    let first = broker
        .poll_messages(poll(PollingStrategy::Offset(0), true), 1000, 1 << 20)
        .await
        .unwrap();
    assert_eq!(
        offsets(first),
        [0, 1, 5],
        "three messages, not three offsets"
    );
    let next = broker
        .poll_messages(poll(PollingStrategy::Next, true), 1000, 1 << 20)
        .await
        .unwrap();
    assert_eq!(offsets(next), [7, 10, 11]);
    let from_hole = broker
        .poll_messages(poll(PollingStrategy::Offset(8), false), 1000, 1 << 20)
        .await
        .unwrap();
    assert_eq!(offsets(from_hole), [10, 11]);

    // 1_002 ms: batch 0's header still says max 1_003 (its dropped records), so the time index
    // points there; its records left are older: the answer is in the next batch.
    for (ts, want) in [
        (1_000, (0, 1_000)),
        (1_002, (5, 5_001)),
        (6_000, (10, 9_000)),
    ] {
        let found = tokio::time::timeout(
            Duration::from_secs(30),
            broker.kafka_offset_for_time("holes", 0, ts, consume::Isolation::ReadUncommitted),
        )
        .await
        .expect("the look-up ends (bound: one pass over the batches)")
        .unwrap();
        assert_eq!(found, want, "timestamp {ts}");
    }
    assert_eq!(
        broker
            .kafka_offset_for_time("holes", 0, 9_500, consume::Isolation::ReadUncommitted)
            .await
            .unwrap(),
        (-1, -1)
    );
    drop(p);
}

/// An idempotent producer's batch with holes, replayed after a restart: its sequence range is
/// the batch's (from `lastOffsetDelta`, not the records left), so the producer's next batch is
/// in sequence and a retry of the original batch is still a duplicate.
#[tokio::test]
async fn producer_replay_reads_a_compacted_batch_by_its_span() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path());
        let keys = broker.record_keys();
        let (_, p) = kafka_topic(&broker, "replay").await;
        let whole = encode_batch(0, &keyed(&[b"a", b"b", b"c", b"d"], 0));
        let idempotent = with_producer(&whole, 0, 5, 0, 0, false);
        let rebuilt = retain(
            &*keys,
            &stored(BatchFormat::Kafka, 0, 4, &idempotent),
            &[0, 2],
            false,
        )
        .unwrap();
        p.append(NewBatch::kafka(BytesMut::from(&rebuilt[..])).unwrap())
            .await
            .unwrap();
        broker.close().await.unwrap();
    }
    std::fs::remove_file(dir.path().join("kafka-producers")).ok();
    let broker = open(dir.path());
    let t = broker.kafka_topic("replay").unwrap();
    let p = broker.partition_handle(t.stream_id, t.id, 0).unwrap();
    let state = broker.producers.partition(&p).await.unwrap();
    let header = |seq, n| BatchHeader {
        base_offset: 0,
        batch_length: 0,
        attributes: 0,
        last_offset_delta: n - 1,
        base_timestamp: 0,
        max_timestamp: 0,
        producer_id: 5,
        producer_epoch: 0,
        base_sequence: seq,
        records_count: n,
    };
    assert_eq!(state.check(&header(4, 1)), producers::SequenceCheck::Append);
    assert_eq!(
        state.check(&header(0, 4)),
        producers::SequenceCheck::Duplicate { base_offset: 0 }
    );
}

/// A native tombstone is the `kafka.tombstone` header set to true alone, whatever the payload
/// (Iggy and its SDK refuse an empty payload): such a message with a one-byte payload is
/// scanned as a tombstone, reads as a null value for Kafka, and the cleaner removes it (and the
/// value it deletes) once past `delete.retention.ms`; the header set to false makes none.
#[tokio::test]
async fn a_native_tombstone_is_its_header_whatever_its_payload() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let keys = broker.record_keys();
    let settings = wharf_log_store::TopicSettings {
        segment_size: Some(1),
        cleanup_policy: wharf_log_store::CleanupPolicy {
            delete: false,
            compact: true,
        },
        ..Default::default()
    };
    let t = broker
        .create_kafka_topic("native-tombstones", 1, settings, false)
        .await
        .unwrap()
        .unwrap();
    let p = broker.partition_handle(t.stream_id, t.id, 0).unwrap();
    let message = |key: &[u8], tombstone: Option<u8>, payload: &[u8]| {
        let mut h = Vec::new();
        header(&mut h, 2, b"kafka.key");
        header(&mut h, 1, key);
        if let Some(flag) = tombstone {
            header(&mut h, 2, b"kafka.tombstone");
            header(&mut h, 3, &[flag]);
        }
        let mut blob = BytesMut::new();
        encode_message(1, 0, payload, &h, &mut blob);
        NewBatch::native(blob).unwrap()
    };
    // One batch (and one segment) each: a's value, a's tombstone with a payload, b's value
    // with the header set to false, c's value (the active segment).
    for batch in [
        message(b"a", None, b"v1"),
        message(b"a", Some(1), b"x"),
        message(b"b", Some(0), b"y"),
        message(b"c", None, b"v2"),
    ] {
        p.append(batch).await.unwrap();
    }
    let batches = p.read(0, 1 << 20).unwrap().batches;
    let seen: Vec<Seen> = batches[..3]
        .iter()
        .flat_map(|b| scan(&*keys, b).0)
        .collect();
    assert_eq!(
        seen,
        [
            Seen::Keyed(0, b"a".to_vec(), false),
            Seen::Keyed(1, b"a".to_vec(), true),
            Seen::Keyed(2, b"b".to_vec(), false),
        ]
    );
    let as_kafka = |b: &StoredBatch| {
        let kafka = translate::native_to_kafka(b);
        let r = RecordBatchDecoder::decode(&mut kafka.clone()).unwrap();
        r.records
            .iter()
            .map(|r| (r.key.clone(), r.value.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        as_kafka(&batches[1]),
        [(Some(Bytes::from("a")), None)],
        "the tombstone's payload is dropped: a null value"
    );
    assert_eq!(
        as_kafka(&batches[2]),
        [(Some(Bytes::from("b")), Some(Bytes::from("y")))]
    );

    // Past the default delete.retention.ms (1 day): a's value and tombstone go, b and c stay.
    broker.partition_txns(&p).await.unwrap();
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let later = now_us + 2 * 86_400_000_000;
    let report = broker.store.clean_once(&*keys, later).unwrap();
    assert_eq!(report.cleaned.len(), 1, "the partition was cleaned");
    let mut left = Vec::new();
    for b in p.read(0, 1 << 20).unwrap().batches {
        let payload = b.payload();
        left.extend(Messages::new(&payload).map(|m| (m.offset(), m.payload().to_vec())));
    }
    assert_eq!(left, [(2, b"y".to_vec()), (3, b"v2".to_vec())]);
}

/// A native `Last` poll of N messages on a compacted log returns the last N messages that
/// exist (not what is left of the last N offsets), walking back over holes and an emptied
/// batch, from the log start when fewer exist; bound: within the poll's byte limit, the last
/// messages that fit (the walk back stops there).
#[tokio::test]
async fn a_last_poll_returns_the_last_messages_across_holes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let keys = broker.record_keys();
    let _p = compacted_log(&broker, &*keys, "last").await;
    let t = broker.kafka_topic("last").unwrap();
    let poll = |count: u32, max_bytes: usize| {
        let broker = Arc::clone(&broker);
        async move {
            let req = PollRequest {
                client_id: 1,
                consumer: Consumer::Single(Identifier::Numeric(1)),
                stream: t.stream_id,
                topic: t.id,
                partition: Some(0),
                strategy: PollingStrategy::Last,
                count,
                auto_commit: false,
            };
            let polled = broker.poll_messages(req, 1000, max_bytes).await.unwrap();
            let joined = polled.messages.concat();
            let got: Vec<(u64, usize)> = Messages::new(&joined)
                .map(|m| (m.offset(), m.bytes().len()))
                .collect();
            assert_eq!(got.len(), polled.count as usize);
            got
        }
    };
    let offsets = |got: Vec<(u64, usize)>| got.into_iter().map(|(o, _)| o).collect::<Vec<_>>();
    // Records at 0, 1, 5, 7, 10, 11; the high watermark is 12 (12 - 3 = 9 holds two).
    assert_eq!(offsets(poll(1, 1 << 20).await), [11]);
    assert_eq!(offsets(poll(3, 1 << 20).await), [7, 10, 11]);
    assert_eq!(
        offsets(poll(5, 1 << 20).await),
        [1, 5, 7, 10, 11],
        "over the emptied batch 8..=9 and the holes of 4..=7"
    );
    let all = poll(10, 1 << 20).await;
    assert_eq!(offsets(all.clone()), [0, 1, 5, 7, 10, 11], "fewer exist");
    // A byte limit that holds the last two messages: those two, not the first two of the last
    // four.
    let two: usize = all[4..].iter().map(|(_, len)| len).sum();
    assert_eq!(offsets(poll(4, two).await), [10, 11]);
    assert_eq!(
        offsets(poll(4, two - 1).await),
        [11],
        "the last one, whatever its size"
    );
}

// ---------------------------------------------------------------------------------------------
// `BrokerRecordKeys::header_facts`: a batch's facts from its header alone
// ---------------------------------------------------------------------------------------------

/// Two keyed records at `base`, zstd-compressed, from producer `pid` (or none: -1), CRC set.
fn zstd_pair(base: i64, pid: i64, body: Option<&[u8]>) -> Bytes {
    let r = NewRecord {
        timestamp_ms: 0,
        key: Some(b"k"),
        value: Some(b"v"),
        headers: Vec::new(),
    };
    let plain = encode_batch(base, &[r.clone(), r]);
    let zipped =
        crate::broker::kafka_batch::compress(Codec::Zstd, &plain[HEADER_LEN..], false).unwrap();
    let mut b = plain[..HEADER_LEN].to_vec();
    b.extend_from_slice(body.unwrap_or(&zipped));
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[21..23].copy_from_slice(&4i16.to_be_bytes());
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[53..57].copy_from_slice(&(if pid >= 0 { 0i32 } else { -1 }).to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

/// The header gives what the scan finds (producer 9 or none; native: none), and it gives it
/// without opening the records: a batch whose compressed body cannot be decompressed still
/// has its facts, where the scan fails. A header that disagrees with the envelope is refused.
#[tokio::test]
async fn header_facts_agree_with_the_scan_without_decompressing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    let keys = broker.record_keys();
    for pid in [9, -1] {
        let b = stored(BatchFormat::Kafka, 40, 2, &zstd_pair(40, pid, None));
        let facts = BrokerRecordKeys::header_facts(&b).unwrap();
        assert_eq!(facts, keys.scan(ANY, &b, &mut |_| {}).unwrap(), "pid {pid}");
        assert_eq!(facts.producer_id, (pid >= 0).then_some(pid));
    }
    let garbage = stored(
        BatchFormat::Kafka,
        40,
        2,
        &zstd_pair(40, 9, Some(b"not zstd")),
    );
    assert!(keys.scan(ANY, &garbage, &mut |_| {}).is_err());
    assert_eq!(
        BrokerRecordKeys::header_facts(&garbage).unwrap(),
        wharf_log_store::compaction::BatchFacts {
            producer_id: Some(9)
        }
    );
    let elsewhere = stored(BatchFormat::Kafka, 41, 2, &zstd_pair(40, 9, None));
    assert!(BrokerRecordKeys::header_facts(&elsewhere).is_err());
    let wider = stored(BatchFormat::Kafka, 40, 3, &zstd_pair(40, 9, None));
    assert!(BrokerRecordKeys::header_facts(&wider).is_err());
    let short = zstd_pair(40, 9, None);
    let short = stored(BatchFormat::Kafka, 40, 2, &short[..HEADER_LEN - 1]);
    assert!(BrokerRecordKeys::header_facts(&short).is_err());
    let mut blob = BytesMut::new();
    encode_message(1, 0, b"m", &[], &mut blob);
    let native = stored(BatchFormat::Native, 0, 1, &blob);
    assert_eq!(
        BrokerRecordKeys::header_facts(&native).unwrap(),
        keys.scan(ANY, &native, &mut |_| {}).unwrap()
    );
}
