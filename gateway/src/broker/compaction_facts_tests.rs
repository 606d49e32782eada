#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! [`BrokerRecordKeys::header_facts`]: a batch's facts from its header alone, agreeing with
//! what a full scan finds.

use std::sync::Arc;

use bytes::Bytes;
use wharf_log_store::compaction::BatchFacts;
use wharf_log_store::{BatchFormat, Envelope, PartitionKey, StoreConfig, StoredBatch};
use wharf_protocol::message::encode_message;

use super::BrokerRecordKeys;
use crate::broker::kafka_batch::{compress, encode_batch, Codec, NewRecord, HEADER_LEN};
use crate::broker::{Broker, BrokerSettings};

const ANY: PartitionKey = PartitionKey {
    stream: 0,
    topic: 0,
    partition: 0,
};

fn open(dir: &std::path::Path) -> Arc<Broker> {
    let settings = BrokerSettings {
        root_username: "iggy".into(),
        root_password: "iggy".into(),
        kafka_default_stream: "default".into(),
        groups: Default::default(),
        transactions: Default::default(),
        logins: Default::default(),
        max_partitions_per_topic: 1000,
        max_partitions: 100_000,
    };
    let config = StoreConfig {
        background_tasks: false,
        ..StoreConfig::default()
    };
    Arc::new(Broker::open(dir, config, settings).unwrap())
}

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

/// Two keyed records at `base`, zstd-compressed, from producer `pid` (or none: -1), CRC set.
fn kafka(base: i64, pid: i64, body: Option<&[u8]>) -> Bytes {
    let r = NewRecord {
        timestamp_ms: 0,
        key: Some(b"k"),
        value: Some(b"v"),
        headers: Vec::new(),
    };
    let plain = encode_batch(base, &[r.clone(), r]);
    let zipped = compress(Codec::Zstd, &plain[HEADER_LEN..], false).unwrap();
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
        let b = stored(BatchFormat::Kafka, 40, 2, &kafka(40, pid, None));
        let facts = BrokerRecordKeys::header_facts(&b).unwrap();
        assert_eq!(facts, keys.scan(ANY, &b, &mut |_| {}).unwrap(), "pid {pid}");
        assert_eq!(facts.producer_id, (pid >= 0).then_some(pid));
    }
    let garbage = stored(BatchFormat::Kafka, 40, 2, &kafka(40, 9, Some(b"not zstd")));
    assert!(keys.scan(ANY, &garbage, &mut |_| {}).is_err());
    assert_eq!(
        BrokerRecordKeys::header_facts(&garbage).unwrap(),
        BatchFacts {
            producer_id: Some(9)
        }
    );
    let elsewhere = stored(BatchFormat::Kafka, 41, 2, &kafka(40, 9, None));
    assert!(BrokerRecordKeys::header_facts(&elsewhere).is_err());
    let wider = stored(BatchFormat::Kafka, 40, 3, &kafka(40, 9, None));
    assert!(BrokerRecordKeys::header_facts(&wider).is_err());
    let short = kafka(40, 9, None);
    let short = stored(BatchFormat::Kafka, 40, 2, &short[..HEADER_LEN - 1]);
    assert!(BrokerRecordKeys::header_facts(&short).is_err());
    let mut blob = bytes::BytesMut::new();
    encode_message(1, 0, b"m", &[], &mut blob);
    let native = stored(BatchFormat::Native, 0, 1, &blob);
    assert_eq!(
        BrokerRecordKeys::header_facts(&native).unwrap(),
        keys.scan(ANY, &native, &mut |_| {}).unwrap()
    );
}
