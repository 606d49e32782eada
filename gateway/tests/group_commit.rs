//! An idempotent Kafka produce to eight partitions of an `fsync` topic costs one group-commit
//! round, not eight in a row: the broker appends every partition of a request concurrently.
//!
//! Counted through the store's fault seam, not by wall time: the hook holds each partition's
//! `fdatasync` until all eight are waiting together (or 30 s pass). Appended one partition after
//! another, only one sync would ever be waiting and the test fails with the count it saw.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parking_lot::{Condvar, Mutex};
use wharf_gateway::broker::kafka_batch::{encode_batch, NewRecord};
use wharf_gateway::broker::produce::{KafkaPartitionWrite, KafkaTopicWrite};
use wharf_gateway::broker::{Broker, BrokerSettings, Durability, StoreConfig, TopicSettings};
use wharf_log_store::{Disk, FileHook, FileOp};

const PARTITIONS: usize = 8;
const GATHER: Duration = Duration::from_secs(30);

/// Counts `fdatasync`s of segment logs and holds each until `PARTITIONS` are in flight.
#[derive(Debug, Default)]
struct SyncRounds {
    state: Mutex<Rounds>,
    all_here: Condvar,
}

#[derive(Debug, Default)]
struct Rounds {
    armed: bool,
    in_flight: usize,
    most_in_flight: usize,
    syncs: usize,
}

impl FileHook for SyncRounds {
    fn before(&self, op: FileOp, path: &Path) -> std::io::Result<()> {
        if op != FileOp::SyncData || path.extension().is_none_or(|e| e != "log") {
            return Ok(());
        }
        let mut s = self.state.lock();
        if !s.armed {
            return Ok(());
        }
        s.syncs += 1;
        s.in_flight += 1;
        s.most_in_flight = s.most_in_flight.max(s.in_flight);
        if s.in_flight >= PARTITIONS {
            self.all_here.notify_all();
        } else {
            let deadline = std::time::Instant::now() + GATHER;
            while s.in_flight < PARTITIONS && s.armed {
                if self.all_here.wait_until(&mut s, deadline).timed_out() {
                    break;
                }
            }
        }
        Ok(())
    }

    fn after(&self, op: FileOp, path: &Path, _to: Option<&Path>) {
        if op == FileOp::SyncData && path.extension().is_some_and(|e| e == "log") {
            let mut s = self.state.lock();
            if s.armed {
                s.in_flight = s.in_flight.saturating_sub(1);
            }
        }
    }
}

/// An idempotent producer's batch: producer id, epoch 0, base sequence `seq`.
fn idempotent_batch(producer_id: i64, seq: i32, value: &[u8]) -> Bytes {
    let plain = encode_batch(
        0,
        &[NewRecord {
            timestamp_ms: 1_700_000_000_000,
            key: None,
            value: Some(value),
            headers: Vec::new(),
        }],
    );
    let mut b = BytesMut::from(&plain[..]);
    b[43..51].copy_from_slice(&producer_id.to_be_bytes());
    b[51..53].copy_from_slice(&0i16.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_produce_to_eight_fsync_partitions_is_one_sync_round() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Arc::new(SyncRounds::default());
    let store = StoreConfig {
        background_tasks: false,
        disk: Disk::with_hook(Arc::clone(&hook) as Arc<dyn FileHook>),
        ..StoreConfig::default()
    };
    let broker = Broker::open(
        dir.path(),
        store,
        BrokerSettings {
            root_username: "iggy".into(),
            root_password: "iggy".into(),
            kafka_default_stream: "default".into(),
            groups: Default::default(),
            transactions: Default::default(),
            logins: Default::default(),
            max_partitions_per_topic: 1000,
            max_partitions: 100_000,
        },
    )
    .unwrap();
    let settings = TopicSettings {
        durability: Some(Durability::Fsync),
        ..TopicSettings::default()
    };
    broker
        .create_kafka_topic("orders", PARTITIONS as u32, settings, false)
        .await
        .unwrap();

    hook.state.lock().armed = true;
    let write = KafkaTopicWrite {
        name: "orders".into(),
        partitions: (0..PARTITIONS as i32)
            .map(|p| KafkaPartitionWrite {
                index: p,
                records: Some(idempotent_batch(42, 0, format!("to {p}").as_bytes())),
            })
            .collect(),
    };
    let outcomes = broker.produce_kafka(None, vec![write], true).await;
    let seen = std::mem::take(&mut *hook.state.lock());

    for (p, o) in outcomes[0].iter().enumerate() {
        let produced = o.as_ref().unwrap_or_else(|e| panic!("partition {p}: {e}"));
        assert_eq!(produced.base_offset, 0, "partition {p}");
    }
    assert_eq!(
        seen.syncs, PARTITIONS,
        "one fdatasync per partition's segment log"
    );
    assert_eq!(
        seen.most_in_flight, PARTITIONS,
        "the {PARTITIONS} partitions' syncs must be in flight together (one group-commit \
         round); at most {} were",
        seen.most_in_flight
    );
}
