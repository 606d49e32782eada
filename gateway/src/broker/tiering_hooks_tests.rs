//! Transactions over the remote tier, end to end through the broker core with a folder as the
//! object store: a segment holding an open transaction is not uploaded until the transaction
//! ends, and `read_committed` reads from the start skip an aborted transaction whose batches
//! are only in the remote tier, on the same server, after a restart that lost the producer
//! snapshot, and after a restore onto an empty data directory.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use wharf_log_store::remote::{ObjectStoreRemote, RemoteConfig, RemoteSettings, RemoteTier};
use wharf_log_store::{LogStore, TopicSettings};

use wharf_protocol::message::Messages;
use wharf_protocol::{Consumer, PollingStrategy};

use super::consume::{FetchLimits, FetchWant, Isolation, PollRequest};
use super::kafka_batch::{encode_batch, NewRecord};
use super::produce::{KafkaPartitionWrite, KafkaTopicWrite};
use super::{Broker, BrokerSettings, StoreConfig};

const TOPIC: &str = "ledger";

fn config(bucket: &Path) -> StoreConfig {
    let remote = ObjectStoreRemote::open(RemoteConfig::filesystem(bucket)).unwrap();
    StoreConfig {
        background_tasks: false,
        remote: Some(RemoteTier {
            store: Arc::new(remote),
            settings: RemoteSettings::default(),
        }),
        ..StoreConfig::default()
    }
}

/// A Kafka batch of one record; transactional (attributes bit 4) for `Some(producer)`.
fn batch(producer: Option<(i64, i16)>, value: &[u8]) -> Bytes {
    let plain = encode_batch(
        0,
        &[NewRecord {
            timestamp_ms: 1_700_000_000_000,
            key: None,
            value: Some(value),
            headers: Vec::new(),
        }],
    );
    let Some((producer_id, epoch)) = producer else {
        return plain;
    };
    let mut b = BytesMut::from(&plain[..]);
    b[21..23].copy_from_slice(&0x10i16.to_be_bytes());
    b[43..51].copy_from_slice(&producer_id.to_be_bytes());
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    b[53..57].copy_from_slice(&0i32.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

async fn produce(b: &Broker, transactional_id: Option<&str>, records: Bytes) -> u64 {
    let write = KafkaTopicWrite {
        name: TOPIC.into(),
        partitions: vec![KafkaPartitionWrite {
            index: 0,
            records: Some(records),
        }],
    };
    let mut out = b.produce_kafka(transactional_id, vec![write], true).await;
    out.remove(0).remove(0).unwrap().base_offset
}

/// Starts a transaction of `id` and stores one batch in it; returns (producer, epoch, offset).
async fn begin(b: &Broker, id: &str, value: &[u8]) -> (i64, i16, u64) {
    let (pid, epoch) = b.init_producer_id(Some(id), 60_000, -1, -1).await.unwrap();
    let key = b.kafka_partition_key(TOPIC, 0).unwrap();
    b.add_partitions_to_txn(id, pid, epoch, vec![key])
        .await
        .unwrap();
    let offset = produce(b, Some(id), batch(Some((pid, epoch)), value)).await;
    (pid, epoch, offset)
}

async fn tier(b: &Broker) -> wharf_log_store::remote::TierReport {
    let now = super::now_us();
    b.blocking(move |store| Ok(store.tier_once(now)?))
        .await
        .unwrap()
}

/// A read_committed consumer from offset 0 to `end`, as a Kafka client filters: the data
/// batches it keeps (their base offsets) and the aborted transactions the answers reported
/// (producer, first offset).
async fn read_committed(b: &Broker, end: u64) -> (Vec<u64>, Vec<(i64, u64)>) {
    let mut batches: Vec<Bytes> = Vec::new();
    let mut reported = Vec::new();
    let mut offset = 0;
    for _ in 0..64 {
        if offset >= end {
            break;
        }
        let want = FetchWant {
            topic: Arc::from(TOPIC),
            partition: 0,
            offset: offset as i64,
            max_bytes: 1 << 20,
        };
        let limits = FetchLimits::new(1 << 20, 1 << 20, 0, Duration::ZERO)
            .with_isolation(Isolation::ReadCommitted);
        let fetched = b.fetch(vec![want], limits).await.remove(0);
        let aborted = fetched
            .aborted
            .expect("read_committed reports aborted transactions");
        reported.extend(aborted.iter().map(|t| (t.producer_id, t.first_offset)));
        for chunk in fetched.records.unwrap() {
            let mut rest = &chunk[..];
            while rest.len() >= 12 {
                let len = 12 + i32::from_be_bytes(rest[8..12].try_into().unwrap()) as usize;
                let one = Bytes::copy_from_slice(&rest[..len]);
                offset = u64::from_be_bytes(one[0..8].try_into().unwrap()) + 1;
                batches.push(one);
                rest = &rest[len..];
            }
        }
    }
    assert!(offset >= end, "read_committed reached {offset}, not {end}");
    reported.sort_unstable();
    reported.dedup();
    // The consumer's filter (Kafka's `Fetcher`): from an aborted transaction's first offset on,
    // its producer's data batches are dropped until its abort marker.
    let mut aborting = std::collections::HashSet::new();
    let mut kept = Vec::new();
    for one in &batches {
        let base = u64::from_be_bytes(one[0..8].try_into().unwrap());
        let attributes = i16::from_be_bytes([one[21], one[22]]);
        let producer = i64::from_be_bytes(one[43..51].try_into().unwrap());
        for &(p, first) in &reported {
            if first <= base && p == producer && attributes & 0x20 == 0 {
                aborting.insert(p);
            }
        }
        if attributes & 0x20 != 0 {
            aborting.remove(&producer);
        } else if !(attributes & 0x10 != 0 && aborting.contains(&producer)) {
            kept.push(base);
        }
    }
    (kept, reported)
}

/// A native consumer polling from offset 0: the payloads it is handed (the server skips aborted
/// transactions' records and markers for native readers).
async fn native_payloads(b: &Broker) -> Vec<Vec<u8>> {
    let t = b.kafka_topic(TOPIC).unwrap();
    let mut payloads = Vec::new();
    let mut next = 0;
    for _ in 0..64 {
        let req = PollRequest {
            client_id: 1,
            consumer: Consumer::Single(wharf_protocol::Identifier::Numeric(1)),
            stream: t.stream_id,
            topic: t.id,
            partition: Some(0),
            strategy: PollingStrategy::Offset(next),
            count: 100,
            auto_commit: false,
        };
        let polled = b.poll_messages(req, 100, 1 << 20).await.unwrap();
        if polled.count == 0 {
            break;
        }
        let joined: Vec<u8> = polled.messages.concat();
        for m in Messages::new(&joined) {
            next = m.offset() + 1;
            payloads.push(m.payload().to_vec());
        }
    }
    payloads
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_skips_aborted_transactions_over_offloaded_data_after_restart_and_restore() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = tmp.path().join("bucket");
    let first = tmp.path().join("first");
    let b = Broker::open(&first, config(&bucket), BrokerSettings::for_tests()).unwrap();
    let settings = TopicSettings {
        remote_storage: true,
        // One batch per segment; every uploaded segment leaves the local disk.
        segment_size: Some(1),
        local_retention_bytes: Some(1),
        ..Default::default()
    };
    b.create_kafka_topic(TOPIC, 1, settings, false)
        .await
        .unwrap()
        .unwrap();
    let (a, a_epoch, a_at) = begin(&b, "committer", b"kept").await;
    b.end_txn("committer", a, a_epoch, true).await.unwrap();
    let (aborter, b_epoch, aborted_at) = begin(&b, "aborter", b"dropped").await;
    b.end_txn("aborter", aborter, b_epoch, false).await.unwrap();
    let (c, c_epoch, open_at) = begin(&b, "slow", b"decided late").await;
    let plain = [
        produce(&b, None, batch(None, b"p1")).await,
        produce(&b, None, batch(None, b"p2")).await,
    ];
    assert_eq!((a_at, aborted_at, open_at, plain), (0, 2, 4, [5, 6]));
    let t = b.kafka_topic(TOPIC).unwrap();
    let p = b.partition_handle(t.stream_id, t.id, 0).unwrap();

    // Segments [0..4) are decided and uploaded; [4] holds the open transaction and [5] comes
    // after it: both wait (the upload limit is the last stable offset, 4), and stay local.
    let report = tier(&b).await;
    assert_eq!(report.uploaded_segments, 4, "{report:?}");
    assert_eq!(p.last_remote_offset(), Some(3));
    assert_eq!(p.local_log_start_offset(), 4);
    let manifest = p.remote_manifest();
    let with_abort: Vec<u64> = manifest
        .segments
        .iter()
        .filter(|s| {
            s.aborted
                .iter()
                .any(|t| (t.producer_id, t.first_offset, t.last_offset) == (aborter, 2, 3))
        })
        .map(|s| s.base_offset)
        .collect();
    assert_eq!(
        with_abort,
        vec![2, 3],
        "the abort travels with its segments"
    );
    assert_eq!(
        tier(&b).await.uploaded_segments,
        0,
        "still open: nothing more"
    );
    assert_eq!(p.last_remote_offset(), Some(3));

    b.end_txn("slow", c, c_epoch, true).await.unwrap();
    let report = tier(&b).await;
    assert_eq!(
        report.uploaded_segments, 3,
        "ended: [4], [5] and the marker's [6]"
    );
    assert_eq!(p.last_remote_offset(), Some(6));
    let end = p.high_watermark();
    assert_eq!(end, 8);
    let expected = (vec![0, 4, 5, 6], vec![(aborter, 2)]);
    assert_eq!(read_committed(&b, end).await, expected, "same server");
    let committed: Vec<Vec<u8>> = [&b"kept"[..], b"decided late", b"p1", b"p2"]
        .iter()
        .map(|v| v.to_vec())
        .collect();
    assert_eq!(native_payloads(&b).await, committed, "native, same server");
    b.close().await.unwrap();
    drop((b, p));

    // A restart whose producer snapshot is gone (a crash before the first one was written):
    // the local log starts at 7, the aborted transaction is known from the manifest only.
    assert!(
        !first.join("kafka-producers").exists(),
        "no snapshot was taken"
    );
    let b = Broker::open(&first, config(&bucket), BrokerSettings::for_tests()).unwrap();
    assert_eq!(read_committed(&b, end).await, expected, "after a restart");
    assert_eq!(
        native_payloads(&b).await,
        committed,
        "native, after a restart"
    );
    b.close().await.unwrap();
    drop(b);

    // A restore onto an empty data directory: nothing local but the manifests.
    let restored = tmp.path().join("restored");
    LogStore::restore_from_remote(&restored, &config(&bucket)).unwrap();
    let b = Broker::open(&restored, config(&bucket), BrokerSettings::for_tests()).unwrap();
    let t = b.kafka_topic(TOPIC).unwrap();
    let p = b.partition_handle(t.stream_id, t.id, 0).unwrap();
    // Only what was uploaded comes back: the active segment (the commit marker at 7) did not.
    assert_eq!(p.local_log_start_offset(), 7);
    assert_eq!(p.high_watermark(), 7);
    assert_eq!(read_committed(&b, 7).await, expected, "after a restore");
    assert_eq!(
        native_payloads(&b).await,
        committed,
        "native, after a restore"
    );
    b.close().await.unwrap();
}
