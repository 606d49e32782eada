//! A Kafka transaction through the broker core, end to end: InitProducerId, AddPartitionsToTxn,
//! transactional batches, AddOffsetsToTxn and TxnOffsetCommit, then EndTxn, which answers only
//! once a commit marker is in every partition of the transaction and the offsets committed in
//! it are the group's. A restart finds the coordinator's state as it was.
//!
//! Needs the partition side of #16 (`Broker::write_txn_marker`, the produce path accepting
//! transactional batches): until it is merged these tests fail at the first marker.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use wharf_gateway::broker::consume::{FetchLimits, FetchWant};
use wharf_gateway::broker::coordinator::MemberRef;
use wharf_gateway::broker::kafka_batch::{encode_batch, NewRecord};
use wharf_gateway::broker::offsets::GroupCommit;
use wharf_gateway::broker::produce::{KafkaPartitionWrite, KafkaTopicWrite};
use wharf_gateway::broker::transactions::TxnError;
use wharf_gateway::broker::{Broker, BrokerError, BrokerSettings, StoreConfig, TopicSettings};

const TOPIC: &str = "orders";

fn open(dir: &Path) -> Broker {
    Broker::open(
        dir,
        StoreConfig {
            background_tasks: false,
            ..StoreConfig::default()
        },
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
    .unwrap()
}

/// A transactional batch (attributes bit 4) of one record.
fn transactional_batch(producer_id: i64, epoch: i16, seq: i32, value: &[u8]) -> Bytes {
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
    b[21..23].copy_from_slice(&0x10i16.to_be_bytes());
    b[43..51].copy_from_slice(&producer_id.to_be_bytes());
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

/// The record batches of `partition`, from offset 0.
async fn batches(broker: &Broker, partition: i32) -> Vec<Bytes> {
    let want = FetchWant {
        topic: Arc::from(TOPIC),
        partition,
        offset: 0,
        max_bytes: 1 << 20,
    };
    let mut fetched = broker
        .fetch(
            vec![want],
            FetchLimits::new(1 << 20, 1 << 20, 0, Duration::ZERO),
        )
        .await;
    let mut out = Vec::new();
    for chunk in fetched.remove(0).records.unwrap() {
        let mut rest = &chunk[..];
        while rest.len() >= 12 {
            let len = 12 + i32::from_be_bytes(rest[8..12].try_into().unwrap()) as usize;
            out.push(Bytes::copy_from_slice(&rest[..len]));
            rest = &rest[len..];
        }
    }
    out
}

/// (producer id, control?, marker type) of a batch; the marker type is the control record's
/// key `[version i16, type i16]`: 0 abort, 1 commit.
fn describe(batch: &[u8]) -> (i64, bool, Option<i16>) {
    let attributes = i16::from_be_bytes([batch[21], batch[22]]);
    let producer_id = i64::from_be_bytes(batch[43..51].try_into().unwrap());
    let control = attributes & 0x20 != 0;
    // Record: length, attributes, timestamp delta, offset delta (varints of 1 byte here),
    // key length varint (4 -> 8 zigzag, 1 byte), then the key.
    let marker = control.then(|| {
        let key = &batch[61 + 5..61 + 9];
        i16::from_be_bytes([key[2], key[3]])
    });
    (producer_id, control, marker)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_transaction_has_its_markers_and_offsets_before_end_txn_answers() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    broker
        .create_kafka_topic(TOPIC, 2, TopicSettings::default(), false)
        .await
        .unwrap();
    let (pid, epoch) = broker
        .init_producer_id(Some("app-1"), 60_000, -1, -1)
        .await
        .unwrap();
    assert_eq!(epoch, 0);
    let keys: Vec<_> = (0..2)
        .map(|p| broker.kafka_partition_key(TOPIC, p).unwrap())
        .collect();
    broker
        .add_partitions_to_txn("app-1", pid, epoch, keys.clone())
        .await
        .unwrap();
    let write = KafkaTopicWrite {
        name: TOPIC.into(),
        partitions: (0..2)
            .map(|p| KafkaPartitionWrite {
                index: p,
                records: Some(transactional_batch(pid, epoch, 0, b"in a transaction")),
            })
            .collect(),
    };
    for (p, o) in broker.produce_kafka(Some("app-1"), vec![write], true).await[0]
        .iter()
        .enumerate()
    {
        o.as_ref()
            .unwrap_or_else(|e| panic!("transactional batch to partition {p}: {e}"));
    }
    broker
        .add_offsets_to_txn("app-1", pid, epoch, "readers")
        .await
        .unwrap();
    let who = MemberRef {
        member_id: "",
        group_instance_id: None,
        generation: -1,
    };
    let commit = GroupCommit {
        topic: TOPIC.into(),
        partition: 1,
        offset: 17,
        leader_epoch: -1,
        metadata: "m".into(),
    };
    let outcomes = broker
        .txn_offset_commit("app-1", pid, epoch, "readers", who, vec![commit])
        .await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert!(broker.has_pending_txn_offset("readers", TOPIC, 1));
    assert!(
        broker.group_offset("readers", TOPIC, 1).is_none(),
        "not visible before the commit"
    );

    broker.end_txn("app-1", pid, epoch, true).await.unwrap();

    for p in 0..2 {
        let found: Vec<_> = batches(&broker, p)
            .await
            .iter()
            .map(|b| describe(b))
            .collect();
        assert_eq!(
            found,
            vec![(pid, false, None), (pid, true, Some(1))],
            "partition {p}: the data batch, then the commit marker"
        );
    }
    assert_eq!(
        broker
            .group_offset("readers", TOPIC, 1)
            .unwrap()
            .next_offset,
        17
    );
    assert!(!broker.has_pending_txn_offset("readers", TOPIC, 1));
    // A retried EndTxn of the completed commit succeeds; an abort of it is refused.
    broker.end_txn("app-1", pid, epoch, true).await.unwrap();
    assert!(matches!(
        broker.end_txn("app-1", pid, epoch, false).await,
        Err(BrokerError::Transaction(TxnError::InvalidTxnState(_)))
    ));

    // The next transaction aborts: an abort marker, and its offsets are dropped.
    broker
        .add_partitions_to_txn("app-1", pid, epoch, vec![keys[0]])
        .await
        .unwrap();
    broker.end_txn("app-1", pid, epoch, false).await.unwrap();
    let last = batches(&broker, 0).await.last().map(|b| describe(b));
    assert_eq!(last, Some((pid, true, Some(0))));

    // A restart finds the id as it was; a new producer of it fences the old one.
    broker.close().await.unwrap();
    drop(broker);
    let broker = open(dir.path());
    let (meta, _) = broker.describe_transaction("app-1").unwrap();
    assert_eq!(meta.state.name(), "CompleteAbort");
    assert_eq!(
        broker
            .init_producer_id(Some("app-1"), 60_000, -1, -1)
            .await
            .unwrap(),
        (pid, epoch + 1)
    );
    assert!(matches!(
        broker
            .add_partitions_to_txn("app-1", pid, epoch, vec![keys[0]])
            .await,
        Err(BrokerError::Transaction(TxnError::ProducerFenced { .. }))
    ));
}

/// Works without the partition side: an id fenced, refused and bounded by the coordinator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_init_refusals_reach_the_broker_api() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    assert!(matches!(
        broker.init_producer_id(Some("t"), 0, -1, -1).await,
        Err(BrokerError::Transaction(TxnError::InvalidTimeout { .. }))
    ));
    assert!(matches!(
        broker.init_producer_id(Some("t"), 1000, 5, -1).await,
        Err(BrokerError::Transaction(TxnError::InvalidRequest(_)))
    ));
    let (pid, e) = broker
        .init_producer_id(Some("t"), 1000, -1, -1)
        .await
        .unwrap();
    // Without a transactional id: always a fresh id with epoch 0, as Kafka's
    // handleInitProducerId, even when the request names a producer id and epoch (review M4:
    // bumping the named id would let any idempotent producer fence a transactional one).
    let (other, e0) = broker.init_producer_id(None, 0, -1, -1).await.unwrap();
    assert_ne!(other, pid);
    assert_eq!(e0, 0);
    let (again, e1) = broker.init_producer_id(None, 0, other, 0).await.unwrap();
    assert!(again != other && again != pid && e1 == 0, "({again}, {e1})");
    let (stolen, e2) = broker.init_producer_id(None, 0, pid, e).await.unwrap();
    assert!(stolen != pid && e2 == 0, "({stolen}, {e2})");
    assert_eq!(broker.describe_transaction("t").unwrap().0.epoch, e);
    assert!(broker
        .transactions()
        .verify_produce("t", pid, e, broker_key(&broker).await)
        .is_err());
}

async fn broker_key(broker: &Broker) -> wharf_gateway::broker::PartitionKey {
    broker
        .create_kafka_topic(TOPIC, 1, TopicSettings::default(), false)
        .await
        .unwrap();
    broker.kafka_partition_key(TOPIC, 0).unwrap()
}

/// Review S9: offsets committed in a transaction are applied on its commit only where no plain
/// OffsetCommit of the group came later (Kafka's completePendingTxnOffsetCommit): a late or
/// retried completion never moves the group back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactions_offsets_never_overwrite_a_newer_plain_commit() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path());
    broker
        .create_kafka_topic(TOPIC, 2, TopicSettings::default(), false)
        .await
        .unwrap();
    let (pid, epoch) = broker
        .init_producer_id(Some("app-2"), 60_000, -1, -1)
        .await
        .unwrap();
    broker
        .add_offsets_to_txn("app-2", pid, epoch, "readers")
        .await
        .unwrap();
    let who = || MemberRef {
        member_id: "",
        group_instance_id: None,
        generation: -1,
    };
    let commit = |partition: i32, offset: i64| GroupCommit {
        topic: TOPIC.into(),
        partition,
        offset,
        leader_epoch: -1,
        metadata: String::new(),
    };
    let outcomes = broker
        .txn_offset_commit(
            "app-2",
            pid,
            epoch,
            "readers",
            who(),
            vec![commit(0, 10), commit(1, 10)],
        )
        .await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    // A plain commit of partition 0 after the transactional one.
    let outcomes = broker
        .commit_group_offsets("readers", who(), vec![commit(0, 50)])
        .await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    broker.end_txn("app-2", pid, epoch, true).await.unwrap();
    let at = |p| {
        broker
            .group_offset("readers", TOPIC, p)
            .unwrap()
            .next_offset
    };
    assert_eq!(at(0), 50, "the newer plain commit stays");
    assert_eq!(
        at(1),
        10,
        "the transaction's offset applies where nothing newer is"
    );
}
