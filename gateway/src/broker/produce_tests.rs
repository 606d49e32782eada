//! Transactional produce and transaction markers on a real store: what the log holds, what
//! replay rebuilds from it, and the bound readers rely on (the last stable offset never passes
//! a batch of an undecided transaction).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::atomic::{AtomicBool, Ordering};

use super::*;
use crate::broker::kafka_batch::{encode_batch, ControlType, NewRecord};
use crate::broker::txn_state::AbortedTxn;
use crate::broker::BrokerSettings;
use wharf_log_store::StoreConfig;

fn open(dir: &std::path::Path) -> Broker {
    let settings = BrokerSettings::for_tests();
    Broker::open(dir, StoreConfig::default(), settings).unwrap()
}

async fn topic(b: &Broker, name: &str) -> (PartitionKey, Arc<Partition>) {
    let t = b
        .create_kafka_topic(name, 1, Default::default(), false)
        .await
        .unwrap()
        .unwrap();
    let p = b.partition_handle(t.stream_id, t.id, 0).unwrap();
    (p.key(), p)
}

/// A batch of `n` records from producer `pid`/`epoch` at sequence `seq` (-1 pid: none).
fn batch(pid: i64, epoch: i16, seq: i32, n: usize, transactional: bool) -> Bytes {
    let records: Vec<NewRecord<'_>> = (0..n)
        .map(|i| NewRecord {
            timestamp_ms: 1_000 + i as i64,
            value: Some(b"v"),
            ..Default::default()
        })
        .collect();
    let mut b = encode_batch(0, &records).to_vec();
    let attrs: i16 = if transactional { 0x10 } else { 0 };
    b[21..23].copy_from_slice(&attrs.to_be_bytes());
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

/// The partition side of a Kafka produce: the batch checks, then the append with the
/// coordinator's verification (KIP-890 part 1) answering yes. The coordinator is not what
/// these tests are about: its own tests and `gateway/tests/transactions.rs` cover it, and
/// [`the_coordinator_is_asked_about_every_transactional_batch_before_it_is_stored`] that it
/// is asked.
async fn append(
    b: &Broker,
    p: &Arc<Partition>,
    records: Bytes,
) -> Result<AppendResult, BrokerError> {
    let checked = check_batches(&records, true)?;
    b.append_idempotent(p, checked, &|_, _, _| Ok(())).await
}

/// A whole Kafka produce of one partition of topic `name`.
async fn produce(b: &Broker, name: &str, records: Bytes) -> Result<Produced, BrokerError> {
    produce_as(b, None, name, records).await
}

/// [`produce`] with the request's transactional id.
async fn produce_as(
    b: &Broker,
    transactional_id: Option<&str>,
    name: &str,
    records: Bytes,
) -> Result<Produced, BrokerError> {
    let mut out = b
        .produce_kafka(
            transactional_id,
            vec![KafkaTopicWrite {
                name: name.into(),
                partitions: vec![KafkaPartitionWrite {
                    index: 0,
                    records: Some(records),
                }],
            }],
            true,
        )
        .await;
    out.remove(0).remove(0)
}

/// What readers see of a partition's transactions: open ones, aborted ones, the LSO.
async fn seen_state(b: &Broker, p: &Arc<Partition>) -> (Vec<(i64, u64)>, Vec<AbortedTxn>, u64) {
    let hw = p.high_watermark();
    let txns = b.partition_txns(p).await.unwrap();
    let t = txns.read();
    let mut open: Vec<_> = t.open_transactions().collect();
    open.sort_unstable();
    (
        open,
        t.aborted_between(0, u64::MAX),
        t.last_stable_offset(hw),
    )
}

/// Every stored batch of the partition.
fn stored(p: &Partition) -> Vec<wharf_log_store::StoredBatch> {
    let mut out = Vec::new();
    let mut from = p.log_start_offset();
    while from < p.high_watermark() {
        let read = p.read(from, 1 << 20).unwrap();
        for b in read.batches {
            from = b.last_offset() + 1;
            out.push(b);
        }
    }
    out
}

#[tokio::test]
async fn replay_rebuilds_open_aborted_and_the_lso_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (key, before) = {
        let b = open(dir.path());
        let (key, p) = topic(&b, "t").await;
        produce(&b, "t", batch(-1, -1, -1, 2, false)).await.unwrap(); // 0..=1
        append(&b, &p, batch(10, 0, 0, 2, true)).await.unwrap(); // 2..=3
        append(&b, &p, batch(11, 0, 0, 1, true)).await.unwrap(); // 4
        append(&b, &p, batch(12, 0, 0, 1, true)).await.unwrap(); // 5
        append(&b, &p, batch(10, 0, 2, 1, true)).await.unwrap(); // 6
        assert_eq!(b.write_txn_marker(key, 10, 0, true).await.unwrap(), 7);
        assert_eq!(b.write_txn_marker(key, 11, 0, false).await.unwrap(), 8);
        append(&b, &p, batch(11, 0, 1, 1, true)).await.unwrap(); // 9: a second txn
        let before = seen_state(&b, &p).await;
        assert_eq!(before.0, vec![(11, 9), (12, 5)]);
        assert_eq!(
            before.1,
            vec![AbortedTxn {
                producer_id: 11,
                first_offset: 4,
                last_offset: 8
            }]
        );
        assert_eq!(before.2, 5, "the earliest open transaction bounds the LSO");
        b.close().await.unwrap();
        (key, before)
    };
    // A restart without a snapshot (as after SIGKILL): everything comes from the log.
    let b = open(dir.path());
    let p = b.partition_handle(key.stream, key.topic, 0).unwrap();
    assert_eq!(seen_state(&b, &p).await, before);
    // The sequences came back too: the next batch of 10 follows 2, a replayed one is a duplicate.
    append(&b, &p, batch(11, 0, 2, 1, true)).await.unwrap(); // 10
    assert_eq!(
        append(&b, &p, batch(10, 0, 2, 1, true))
            .await
            .unwrap()
            .base_offset,
        6
    );
    // A snapshot, then more log: the restart loads the one and replays the other.
    b.save_producers().await.unwrap();
    b.write_txn_marker(key, 12, 0, false).await.unwrap(); // 11
    b.write_txn_marker(key, 11, 0, true).await.unwrap(); // 12
    append(&b, &p, batch(12, 0, 1, 1, true)).await.unwrap(); // 13
    let before = seen_state(&b, &p).await;
    assert_eq!(before.0, vec![(12, 13)]);
    assert_eq!(before.1.len(), 2);
    assert_eq!(before.2, 13);
    b.close().await.unwrap();
    drop(b);
    let b = open(dir.path());
    let p = b.partition_handle(key.stream, key.topic, 0).unwrap();
    assert_eq!(seen_state(&b, &p).await, before);
}

#[tokio::test]
async fn markers_are_stored_as_kafka_writes_them_and_move_the_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    let (key, p) = topic(&b, "t").await;
    append(&b, &p, batch(7, 3, 0, 2, true)).await.unwrap(); // 0..=1
    let at = b.write_txn_marker(key, 7, 3, false).await.unwrap();
    assert_eq!(at, 2);
    let marker = stored(&p).pop().unwrap();
    assert_eq!(marker.base_offset(), 2);
    let payload = marker.payload();
    let h = BatchHeader::parse(&payload).unwrap();
    assert_eq!(h.attributes & 0x30, 0x30, "control | transactional");
    assert_eq!(
        (
            h.producer_id,
            h.producer_epoch,
            h.base_sequence,
            h.records_count
        ),
        (7, 3, -1, 1)
    );
    assert_eq!(
        kafka_batch::control_type(&payload),
        Some(ControlType::Abort)
    );
    // The store stamped the offset; the CRC still covers what it covers.
    let crc = u32::from_be_bytes(payload[17..21].try_into().unwrap());
    assert_eq!(crc, crc32c::crc32c(&payload[21..]));

    // The epoch's sequences continue across transactions of one epoch.
    append(&b, &p, batch(7, 3, 2, 1, true)).await.unwrap();
    b.write_txn_marker(key, 7, 3, true).await.unwrap();
    // A coordinator abort with a bumped epoch (timeout, fencing) fences the old epoch ...
    b.write_txn_marker(key, 7, 4, false).await.unwrap();
    let old = append(&b, &p, batch(7, 3, 3, 1, true)).await.unwrap_err();
    assert!(
        matches!(old, BrokerError::Sequence(SequenceError::Fenced(_))),
        "{old:?}"
    );
    // ... and the new epoch starts again at sequence 0.
    let gap = append(&b, &p, batch(7, 4, 5, 1, true)).await.unwrap_err();
    assert!(
        matches!(gap, BrokerError::Sequence(SequenceError::OutOfOrder(_))),
        "{gap:?}"
    );
    append(&b, &p, batch(7, 4, 0, 1, true)).await.unwrap();
    // A marker older than the producer's epoch is refused (INVALID_PRODUCER_EPOCH).
    let stale = b.write_txn_marker(key, 7, 3, true).await.unwrap_err();
    assert!(
        matches!(stale, BrokerError::Sequence(SequenceError::Fenced(_))),
        "{stale:?}"
    );
    // A marker written again (the coordinator completing after a restart) is harmless.
    b.write_txn_marker(key, 7, 4, true).await.unwrap();
    b.write_txn_marker(key, 7, 4, true).await.unwrap();
    let (open, aborted, lso) = seen_state(&b, &p).await;
    assert!(open.is_empty());
    assert_eq!(lso, p.high_watermark());
    assert_eq!(
        aborted.iter().map(|a| a.first_offset).collect::<Vec<_>>(),
        vec![0, 5],
        "the first abort covers its batches, the fencing one only itself"
    );

    // Partitions that are gone: the store's own errors, which the coordinator recognises.
    let missing = PartitionKey {
        partition: 5,
        ..key
    };
    let e = b.write_txn_marker(missing, 7, 4, true).await.unwrap_err();
    assert!(
        matches!(e, BrokerError::Store(StoreError::PartitionNotFound { .. })),
        "{e:?}"
    );
    let gone = PartitionKey {
        topic: key.topic + 100,
        ..key
    };
    let e = b.write_txn_marker(gone, 7, 4, true).await.unwrap_err();
    assert!(
        matches!(e, BrokerError::Store(StoreError::TopicNotFound { .. })),
        "{e:?}"
    );
}

#[tokio::test]
async fn client_control_batches_and_malformed_transactional_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    let (_, p) = topic(&b, "t").await;
    let marker = kafka_batch::encode_txn_marker(7, 0, true, 0, 1_000);
    let e = produce(&b, "t", marker).await.unwrap_err();
    assert!(
        matches!(e, BrokerError::InvalidRecords(KafkaBatchError::Control)),
        "{e:?}"
    );
    let e = append(&b, &p, batch(-1, -1, -1, 1, true))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            BrokerError::InvalidRecords(KafkaBatchError::Transactional)
        ),
        "{e:?}"
    );
    let e = append(&b, &p, batch(7, 0, -1, 1, true)).await.unwrap_err();
    assert!(
        matches!(
            e,
            BrokerError::InvalidRecords(KafkaBatchError::NoSequence(-1))
        ),
        "{e:?}"
    );
    assert_eq!(p.high_watermark(), 0, "nothing stored");
    // With a transaction open here, the producer may not write outside it (INVALID_TXN_STATE).
    append(&b, &p, batch(7, 0, 0, 1, true)).await.unwrap();
    let e = produce(&b, "t", batch(7, 0, 1, 1, false))
        .await
        .unwrap_err();
    assert!(
        matches!(e, BrokerError::Sequence(SequenceError::InvalidTxnState(_))),
        "{e:?}"
    );
    assert_eq!(p.high_watermark(), 1);
}

#[tokio::test]
async fn the_coordinator_is_asked_about_every_transactional_batch_before_it_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    let (key, p) = topic(&b, "t").await;
    let asked = parking_lot::Mutex::new(Vec::new());
    let refuse = |pid, epoch, key| {
        asked.lock().push((pid, epoch, key));
        Err(BrokerError::Internal("no such transaction".into()))
    };
    let accept = |pid, epoch, key| {
        asked.lock().push((pid, epoch, key));
        Ok(())
    };
    let checked = |records| check_batches(&records, true).unwrap();
    // Refused: nothing stored, no transaction opened, even for a batch out of sequence.
    for seq in [0, 5] {
        let e = b
            .append_idempotent(&p, checked(batch(7, 2, seq, 1, true)), &refuse)
            .await
            .unwrap_err();
        assert!(matches!(e, BrokerError::Internal(_)), "{e:?}");
    }
    assert_eq!(*asked.lock(), vec![(7, 2, key), (7, 2, key)]);
    assert_eq!(p.high_watermark(), 0);
    assert!(seen_state(&b, &p).await.0.is_empty());
    // An idempotent producer's batch is not the coordinator's business.
    b.append_idempotent(&p, checked(batch(8, 0, 0, 1, false)), &refuse)
        .await
        .unwrap();
    assert_eq!(asked.lock().len(), 2);
    // Accepted: stored, and its transaction is open from its offset.
    b.append_idempotent(&p, checked(batch(7, 2, 0, 1, true)), &accept)
        .await
        .unwrap();
    assert_eq!(asked.lock().len(), 3);
    assert_eq!(seen_state(&b, &p).await.0, vec![(7, 1)]);
}

/// Bound: a read_committed reader never gets past a batch of an undecided transaction.
/// Readers read the high watermark, then the transactions (the LSO), then the watermark
/// again, as fast as they can while transactional and plain producers append on other
/// threads. Afterwards, from the log: every transactional batch below an observed LSO must
/// have its marker (appended before its transaction is closed) below that second watermark.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_lso_never_passes_an_undecided_batch_under_concurrent_appends() {
    const TXNS: i32 = 300;
    const READERS: usize = 2;
    let dir = tempfile::tempdir().unwrap();
    let b = Arc::new(open(dir.path()));
    let (key, p) = topic(&b, "t").await;
    produce(&b, "t", batch(-1, -1, -1, 1, false)).await.unwrap();
    b.partition_txns(&p).await.unwrap(); // loaded: readers take the fast path from here
    let done = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for pid in [1i64, 2, 3] {
        let (b, p) = (Arc::clone(&b), Arc::clone(&p));
        writers.push(tokio::spawn(async move {
            let mut seq = 0;
            for i in 0..TXNS {
                for _ in 0..2 {
                    append(&b, &p, batch(pid, 0, seq, 1, true)).await.unwrap();
                    seq += 1;
                }
                b.write_txn_marker(key, pid, 0, i % 3 != 0).await.unwrap();
            }
        }));
    }
    let plain = {
        let (b, done) = (Arc::clone(&b), Arc::clone(&done));
        tokio::spawn(async move {
            while !done.load(Ordering::Acquire) {
                produce(&b, "t", batch(-1, -1, -1, 1, false)).await.unwrap();
            }
        })
    };
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (b, p, done) = (Arc::clone(&b), Arc::clone(&p), Arc::clone(&done));
            tokio::spawn(async move {
                // (LSO, watermark read after it), each new pair once.
                let mut seen: Vec<(u64, u64)> = Vec::new();
                while !done.load(Ordering::Acquire) {
                    let hw = p.high_watermark();
                    let txns = b.partition_txns(&p).await.unwrap();
                    let lso = txns.read().last_stable_offset(hw);
                    let after = p.high_watermark();
                    if seen.last() != Some(&(lso, after)) {
                        seen.push((lso, after));
                    }
                    tokio::task::yield_now().await;
                }
                seen
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, Ordering::Release);
    plain.await.unwrap();
    let mut seen = Vec::new();
    for r in readers {
        seen.extend(r.await.unwrap());
    }
    // Each transactional batch with its marker's offset, in log order.
    let mut batches: Vec<(i64, u64, u64)> = Vec::new();
    for s in stored(&p) {
        let h = BatchHeader::parse(&s.payload()).unwrap();
        if h.is_control() {
            for d in batches.iter_mut().filter(|d| d.0 == h.producer_id) {
                d.2 = d.2.min(s.base_offset());
            }
        } else if h.is_transactional() {
            batches.push((h.producer_id, s.base_offset(), u64::MAX));
        }
    }
    assert_eq!(batches.len(), 3 * 2 * TXNS as usize);
    // The latest marker among the batches below each offset (prefix maximum).
    let mut latest_marker = Vec::with_capacity(batches.len());
    let mut max = 0;
    for d in &batches {
        max = max.max(d.2);
        latest_marker.push(max);
    }
    let mut inside = 0;
    for &(lso, after) in &seen {
        let below = batches.partition_point(|d| d.1 < lso);
        if below > 0 {
            let m = latest_marker[below - 1];
            assert!(
                m < after,
                "LSO {lso} passes a batch whose marker at {m} was not stored by {after}"
            );
        }
        inside += usize::from(below < batches.len() && lso < after);
    }
    assert!(
        inside > 0,
        "no reader saw an open transaction hold the LSO back"
    );
    let (open, _, lso) = seen_state(&b, &p).await;
    assert!(open.is_empty(), "every transaction ended");
    assert_eq!(lso, p.high_watermark());
}

/// Bound: a transaction whose first batch was never stored does not hold the LSO back.
#[tokio::test]
async fn a_failed_first_append_leaves_no_open_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    let settings = wharf_log_store::TopicSettings {
        max_batch_bytes: Some(128),
        ..Default::default()
    };
    let t = b
        .create_kafka_topic("small", 1, settings, false)
        .await
        .unwrap()
        .unwrap();
    let p = b.partition_handle(t.stream_id, t.id, 0).unwrap();
    produce(&b, "small", batch(-1, -1, -1, 1, false))
        .await
        .unwrap();
    let e = append(&b, &p, batch(7, 0, 0, 20, true)).await.unwrap_err();
    assert!(
        matches!(e, BrokerError::Store(StoreError::BatchTooLarge { .. })),
        "{e:?}"
    );
    let (open, _, lso) = seen_state(&b, &p).await;
    assert!(open.is_empty(), "{open:?}");
    assert_eq!(lso, 1);
    // The producer's next try is its first batch again, and opens the transaction.
    append(&b, &p, batch(7, 0, 0, 1, true)).await.unwrap();
    assert_eq!(seen_state(&b, &p).await.0, vec![(7, 1)]);
}

/// M5, KIP-890 part 1 as Kafka: a transactional batch is verified with the request's
/// transactional id, so a producer id that is not that id's current one is refused
/// (INVALID_PRODUCER_ID_MAPPING), even when the producer's own transaction holds the partition.
#[tokio::test]
async fn a_transactional_produce_is_verified_with_the_requests_transactional_id() {
    use crate::broker::transactions::TxnError;
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    let (key, p) = topic(&b, "t").await;
    let (pa, ea) = b.init_producer_id(Some("a"), 60_000, -1, -1).await.unwrap();
    b.init_producer_id(Some("b"), 60_000, -1, -1).await.unwrap();
    b.add_partitions_to_txn("a", pa, ea, vec![key])
        .await
        .unwrap();
    for other in [Some("b"), Some("nobody"), None] {
        let e = produce_as(&b, other, "t", batch(pa, ea, 0, 1, true))
            .await
            .unwrap_err();
        assert!(
            matches!(e, BrokerError::TxnProduce(TxnError::InvalidProducerIdMapping(p)) if p == pa),
            "{other:?}: {e:?}"
        );
    }
    assert_eq!(p.high_watermark(), 0, "nothing stored");
    assert!(seen_state(&b, &p).await.0.is_empty());
    produce_as(&b, Some("a"), "t", batch(pa, ea, 0, 1, true))
        .await
        .unwrap();
    assert_eq!(seen_state(&b, &p).await.0, vec![(pa, 0)]);
}

/// S1, as Kafka: the coordinator is asked only about the batch that opens a producer's
/// transaction in a partition; the later batches of that transaction (open here, same epoch)
/// are checked by the partition's own state. A marker closes it: the next batch asks again.
#[tokio::test]
async fn the_coordinator_is_asked_only_about_a_transactions_first_batch_in_a_partition() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    let (key, p) = topic(&b, "t").await;
    let asked = std::sync::atomic::AtomicUsize::new(0);
    let verify = |_, _, _| {
        asked.fetch_add(1, Ordering::Relaxed);
        Ok(())
    };
    let checked = |records: Bytes| check_batches(&records, true).unwrap();
    b.append_idempotent(&p, checked(batch(7, 0, 0, 1, true)), &verify)
        .await
        .unwrap();
    assert_eq!(asked.load(Ordering::Relaxed), 1);
    let two = Bytes::from([batch(7, 0, 1, 1, true), batch(7, 0, 2, 1, true)].concat());
    b.append_idempotent(&p, checked(two), &verify)
        .await
        .unwrap();
    assert_eq!(
        asked.load(Ordering::Relaxed),
        1,
        "the transaction is open here"
    );
    b.write_txn_marker(key, 7, 0, true).await.unwrap();
    b.append_idempotent(&p, checked(batch(7, 0, 3, 1, true)), &verify)
        .await
        .unwrap();
    assert_eq!(
        asked.load(Ordering::Relaxed),
        2,
        "a new transaction is verified"
    );
    // Another producer's first batch is its own transaction's first.
    b.append_idempotent(&p, checked(batch(8, 0, 0, 1, true)), &verify)
        .await
        .unwrap();
    assert_eq!(asked.load(Ordering::Relaxed), 3);
}

/// M6. Bound: once a partition's producer state has been replayed, the log is never read for
/// it again: 0 store reads for a later `partition()` after appends that carry no producer
/// state, and 0 after a snapshot and a restart (the snapshot covers up to the high watermark).
#[tokio::test]
async fn a_replayed_partition_is_not_read_again_after_other_appends_or_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let key = {
        let b = open(dir.path());
        let (key, p) = topic(&b, "t").await;
        append(&b, &p, batch(7, 0, 0, 1, true)).await.unwrap(); // 0: replayed here
        for _ in 0..3 {
            produce(&b, "t", batch(-1, -1, -1, 2, false)).await.unwrap();
        }
        let reads = p.reads();
        drop(b.producers.partition(&p).await.unwrap());
        drop(b.producers.partition(&p).await.unwrap());
        assert_eq!(p.reads() - reads, 0, "store reads of a loaded partition");
        b.producers.snapshot().unwrap();
        b.close().await.unwrap();
        key
    };
    let b = open(dir.path());
    let p = b
        .partition_handle(key.stream, key.topic, key.partition)
        .unwrap();
    let reads = p.reads();
    assert_eq!(seen_state(&b, &p).await, (vec![(7, 0)], Vec::new(), 0));
    assert_eq!(
        p.reads() - reads,
        0,
        "store reads after a snapshot and a restart"
    );
}

/// M6: a partition busy producing when a snapshot is taken keeps the entry the previous
/// snapshot wrote (a restart replays the log after it), instead of being dropped (a replay
/// from the log start).
#[tokio::test]
async fn a_partition_busy_at_a_snapshot_keeps_its_previous_entry() {
    let dir = tempfile::tempdir().unwrap();
    let key = {
        let b = open(dir.path());
        let (key, p) = topic(&b, "t").await;
        append(&b, &p, batch(7, 0, 0, 1, true)).await.unwrap(); // 0
        b.producers.snapshot().unwrap();
        append(&b, &p, batch(8, 0, 0, 1, true)).await.unwrap(); // 1
        let busy = b.producers.partition(&p).await.unwrap();
        b.producers.snapshot().unwrap();
        drop(busy);
        b.close().await.unwrap();
        key
    };
    let b = open(dir.path());
    assert!(
        b.producers.has_snapshot_entry(&key),
        "the busy partition's entry"
    );
    let p = b
        .partition_handle(key.stream, key.topic, key.partition)
        .unwrap();
    assert_eq!(seen_state(&b, &p).await.0, vec![(7, 0), (8, 1)]);
}

/// Fails the next fdatasync of a segment log once armed: the batch written before it stays in
/// the file, unacknowledged.
#[derive(Debug, Default)]
struct FailNextLogSync(AtomicBool);

impl wharf_log_store::FileHook for FailNextLogSync {
    fn before(&self, op: wharf_log_store::FileOp, path: &std::path::Path) -> std::io::Result<()> {
        let log = path.extension().is_some_and(|e| e == "log");
        if op == wharf_log_store::FileOp::SyncData && log && self.0.swap(false, Ordering::AcqRel) {
            return Err(std::io::Error::from_raw_os_error(5)); // EIO
        }
        Ok(())
    }
}

/// S11: a first append that fails after its bytes were written (a failed fdatasync on an
/// `fsync` topic) keeps the producer's transaction open from where the batch may lie, so the
/// LSO stays below it until the transaction's marker (an abort then covers the batch). Only a
/// refusal before anything is written forgets it ([`a_failed_first_append_leaves_no_open_transaction`]).
#[tokio::test]
async fn a_first_append_that_failed_after_writing_keeps_the_transaction_open() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Arc::new(FailNextLogSync::default());
    let store = StoreConfig {
        background_tasks: false,
        disk: wharf_log_store::Disk::with_hook(Arc::clone(&hook) as _),
        ..StoreConfig::default()
    };
    let settings = BrokerSettings::for_tests();
    let b = Broker::open(dir.path(), store, settings).unwrap();
    let fsync = wharf_log_store::TopicSettings {
        durability: Some(wharf_log_store::Durability::Fsync),
        ..Default::default()
    };
    let t = b
        .create_kafka_topic("synced", 1, fsync, false)
        .await
        .unwrap()
        .unwrap();
    let p = b.partition_handle(t.stream_id, t.id, 0).unwrap();
    produce(&b, "synced", batch(-1, -1, -1, 1, false))
        .await
        .unwrap();
    hook.0.store(true, Ordering::Release);
    append(&b, &p, batch(7, 0, 0, 1, true)).await.unwrap_err();
    assert!(!hook.0.load(Ordering::Acquire), "the fault was reached");
    let (open, _, lso) = seen_state(&b, &p).await;
    assert_eq!(open, vec![(7, 1)], "open from where the batch may lie");
    assert_eq!(lso, 1);
}

/// A zstd batch holding one record whose value is `value_len` zero bytes, compressed as it is
/// streamed (the test never holds the opened record either).
fn zstd_zero_record_batch(value_len: usize) -> Bytes {
    use std::io::Write;
    let zigzag = |out: &mut Vec<u8>, v: i64| {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    };
    // attributes, timestampDelta 0, offsetDelta 0, null key, the value's length; then the
    // value and a header count of 0.
    let mut inner = vec![0u8];
    zigzag(&mut inner, 0);
    zigzag(&mut inner, 0);
    zigzag(&mut inner, -1);
    zigzag(&mut inner, value_len as i64);
    let mut record = Vec::new();
    zigzag(&mut record, (inner.len() + value_len + 1) as i64);
    record.extend_from_slice(&inner);
    let mut z = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    z.write_all(&record).unwrap();
    let zeros = vec![0u8; 1 << 20];
    let mut left = value_len;
    while left > 0 {
        let n = left.min(zeros.len());
        z.write_all(&zeros[..n]).unwrap();
        left -= n;
    }
    z.write_all(&[0]).unwrap();
    let body = z.finish().unwrap();
    let mut b = batch(-1, -1, -1, 1, false)[..kafka_batch::HEADER_LEN].to_vec();
    b.extend_from_slice(&body);
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[21..23].copy_from_slice(&4i16.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

/// Review 18a #1, bound: a zstd batch of a few KiB whose one record is 200 MiB of zeros,
/// produced into a `compression.type=uncompressed` topic with the default
/// `max.message.bytes`, is refused as Kafka refuses a batch too large after recompression
/// (MESSAGE_TOO_LARGE) having opened at most `max.message.bytes + 1` bytes (counted by the
/// refusal), not the 200 MiB; nothing is stored. Two batches of which one is rebuilt are
/// refused as Kafka refuses more than one batch per partition (INVALID_RECORD).
#[tokio::test]
async fn recompression_to_uncompressed_opens_no_more_than_the_batch_bound() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(dir.path());
    let settings = wharf_log_store::TopicSettings {
        compression: wharf_log_store::TopicCompression {
            codec: Some("uncompressed".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let t = b
        .create_kafka_topic("plain", 1, settings, false)
        .await
        .unwrap()
        .unwrap();
    let p = b.partition_handle(t.stream_id, t.id, 0).unwrap();
    let bomb = zstd_zero_record_batch(200 << 20);
    assert!(bomb.len() < 64 << 10, "{} bytes on the wire", bomb.len());
    let limit = StoreConfig::default().default_max_batch_bytes as usize;
    let e = produce(&b, "plain", bomb).await.unwrap_err();
    let BrokerError::InvalidRecords(KafkaBatchError::TooLarge { size, limit: seen }) = e else {
        panic!("not refused as too large after recompression: {e:?}");
    };
    assert_eq!(seen, limit, "the topic's max.message.bytes is the bound");
    assert!(
        size <= limit + 1,
        "opened {size} bytes, bound max.message.bytes + 1 = {}",
        limit + 1
    );
    assert_eq!(p.high_watermark(), 0, "nothing stored");

    let mut two = zstd_zero_record_batch(10).to_vec();
    two.extend_from_slice(&batch(-1, -1, -1, 1, false));
    let e = produce(&b, "plain", Bytes::from(two)).await.unwrap_err();
    assert!(
        matches!(
            e,
            BrokerError::InvalidRecords(KafkaBatchError::MoreThanOneBatch(2))
        ),
        "{e:?}"
    );
    // One small batch is rebuilt and stored.
    produce(&b, "plain", zstd_zero_record_batch(10))
        .await
        .unwrap();
    assert_eq!(p.high_watermark(), 1);
}
