//! Behaviour of the store through its public API: catalog, appends, reads, rolls, retention,
//! long polls, offsets and reopening.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use wharf_log_store::{
    BatchFormat, CommittedOffset, Durability, Ident, LogStore, OffsetKey, OffsetOwner, StoreError,
    TimestampType, TopicSettings,
};

fn settings() -> TopicSettings {
    TopicSettings::default()
}

#[test]
fn catalog_is_persisted_and_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        let shop = store.create_stream("shop").unwrap();
        assert_eq!(shop.id, 0);
        assert!(matches!(
            store.create_stream("shop"),
            Err(StoreError::StreamExists(_))
        ));
        let err = store.create_stream("").unwrap_err().to_string();
        assert!(err.contains("must not be empty"), "{err}");
        store.create_stream("other").unwrap();

        let t = store
            .create_topic("shop".into(), "orders", 3, settings())
            .unwrap();
        assert_eq!((t.stream_id, t.id, t.partitions), (0, 0, 3));
        let err = store
            .topic("shop".into(), "missing".into())
            .unwrap_err()
            .to_string();
        assert_eq!(err, "topic 'missing' not found in stream 'shop'");
        let err = store.stream(Ident::Id(9)).unwrap_err().to_string();
        assert_eq!(err, "stream 9 not found");
        assert!(matches!(
            store.create_topic(Ident::Id(0), "orders", 1, settings()),
            Err(StoreError::TopicExists { .. })
        ));
        let bad = TopicSettings {
            segment_size: Some(0),
            ..settings()
        };
        assert!(matches!(
            store.create_topic(Ident::Id(0), "x", 1, bad),
            Err(StoreError::InvalidSetting(_))
        ));
        assert!(store.partition(Ident::Id(0), Ident::Id(0), 3).is_err());

        store.rename_stream("other".into(), "renamed").unwrap();
        let updated = TopicSettings {
            durability: Some(Durability::Fsync),
            max_size: Some(1 << 20),
            ..settings()
        };
        store
            .update_topic(
                "shop".into(),
                "orders".into(),
                Some("purchases"),
                updated.clone(),
            )
            .unwrap();
        store
            .create_topic("renamed".into(), "gone", 1, settings())
            .unwrap();
        store.delete_topic("renamed".into(), "gone".into()).unwrap();
        assert_eq!(
            store
                .add_partitions("shop".into(), "purchases".into(), 2)
                .unwrap(),
            5
        );
        assert_eq!(
            store
                .remove_partitions("shop".into(), "purchases".into(), 1)
                .unwrap(),
            4
        );
        assert!(store
            .remove_partitions("shop".into(), "purchases".into(), 5)
            .is_err());
        store.close().unwrap();
    }
    let store = open(dir.path());
    let names: Vec<String> = store.streams().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["shop", "renamed"]);
    let t = store.topic("shop".into(), "purchases".into()).unwrap();
    assert_eq!(t.partitions, 4);
    assert_eq!(t.settings.durability, Some(Durability::Fsync));
    assert!(store.topics("renamed".into()).unwrap().is_empty());
    store.delete_stream("renamed".into()).unwrap();
    assert_eq!(store.streams().len(), 1);
    // A new stream never reuses an id.
    assert_eq!(store.create_stream("again").unwrap().id, 2);
}

#[test]
fn a_second_process_cannot_open_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let _store = open(dir.path());
    let err = wharf_log_store::LogStore::open(dir.path(), config()).unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");
}

#[test]
fn orphan_folders_from_an_interrupted_change_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store.create_stream("s").unwrap();
        store
            .create_topic(Ident::Id(0), "t", 1, settings())
            .unwrap();
    }
    std::fs::create_dir_all(dir.path().join("streams/7/topics/0/partitions/0")).unwrap();
    std::fs::create_dir_all(dir.path().join("streams/0/topics/0/partitions/5")).unwrap();
    let (_store, report) = LogStore::open(dir.path(), config()).unwrap();
    assert_eq!(report.removed_orphans.len(), 2);
    assert!(!dir.path().join("streams/7").exists());
    assert!(dir.path().join("streams/0/topics/0/partitions/0").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_get_dense_offsets_and_reads_return_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.create_stream("s").unwrap();
    store
        .create_topic(Ident::Id(0), "t", 1, settings())
        .unwrap();
    let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();

    let a = p
        .append(native_batch(&[b"a0", b"a1", b"a2"]))
        .await
        .unwrap();
    let b = p.append(native_batch(&[b"b0"])).await.unwrap();
    let c = p.append(native_batch(&[b"c0", b"c1"])).await.unwrap();
    assert_eq!((a.base_offset, a.last_offset), (0, 2));
    assert_eq!((b.base_offset, b.last_offset), (3, 3));
    assert_eq!((c.base_offset, c.last_offset), (4, 5));
    assert!(b.append_timestamp >= a.append_timestamp);

    // From the middle of the first batch: that whole batch first.
    let r = p.read(1, u64::MAX).unwrap();
    assert_eq!(r.high_watermark, 6);
    assert_eq!(r.log_start_offset, 0);
    let bases: Vec<u64> = r.batches.iter().map(|b| b.base_offset()).collect();
    assert_eq!(bases, [0, 3, 4]);
    for batch in &r.batches {
        batch.verify().unwrap();
        assert_eq!(batch.format(), BatchFormat::Native);
    }
    assert_eq!(native_offsets(&r.batches[0].payload()), [0, 1, 2]);
    assert_eq!(
        native_bodies(&r.batches[2].payload()),
        [b"c0".to_vec(), b"c1".to_vec()]
    );

    // A budget smaller than one batch still returns one whole batch, and no more.
    let r = p.read(3, 1).unwrap();
    assert_eq!(r.batches.len(), 1);
    assert_eq!(r.batches[0].base_offset(), 3);
    let two = r.batches[0].as_bytes().len() as u64;
    let r = p.read(3, two + 1).unwrap();
    assert_eq!(r.batches.len(), 1);
    // At the high watermark there is nothing (yet); below the log start reads from it.
    assert!(p.read(6, u64::MAX).unwrap().batches.is_empty());
    assert!(p.read(600, u64::MAX).unwrap().batches.is_empty());

    // A cached read is the same read, or nothing when the page cache cannot serve all of it
    // (just written, it can, unless the kernel cannot say: RWF_NOWAIT unsupported).
    for (from, budget) in [(0, u64::MAX), (1, 1), (3, two + 1), (6, u64::MAX)] {
        let plain = p.read(from, budget).unwrap();
        if let Some(cached) = p.read_cached(from, budget).unwrap() {
            let bytes = |r: &wharf_log_store::ReadResult| -> Vec<Vec<u8>> {
                r.batches.iter().map(|b| b.as_bytes().to_vec()).collect()
            };
            assert_eq!(
                bytes(&cached),
                bytes(&plain),
                "from {from}, budget {budget}"
            );
            assert_eq!(cached.high_watermark, plain.high_watermark);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_batches_and_timestamp_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.create_stream("s").unwrap();
    store
        .create_topic(Ident::Id(0), "t", 1, settings())
        .unwrap();
    let lat = TopicSettings {
        timestamp_type: TimestampType::LogAppendTime,
        ..settings()
    };
    store.create_topic(Ident::Id(0), "lat", 1, lat).unwrap();
    let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();

    p.append(kafka_batch(5, 1_000, 1_004, 40)).await.unwrap();
    p.append(kafka_batch(2, 2_000, 2_001, 40)).await.unwrap();
    let r = p.append(kafka_batch(1, 3_000, 3_000, 40)).await.unwrap();
    assert_eq!(r.base_offset, 7);
    let read = p.read(6, u64::MAX).unwrap();
    assert_eq!(read.batches[0].base_offset(), 5);
    let payload = read.batches[0].payload();
    assert_eq!(i64::from_be_bytes(payload[0..8].try_into().unwrap()), 5);

    assert_eq!(p.offset_for_timestamp(0).unwrap(), Some(0));
    assert_eq!(p.offset_for_timestamp(1_004_000).unwrap(), Some(0));
    assert_eq!(p.offset_for_timestamp(1_004_001).unwrap(), Some(5));
    assert_eq!(p.offset_for_timestamp(3_000_000).unwrap(), Some(7));
    assert_eq!(p.offset_for_timestamp(3_000_001).unwrap(), None);
    assert_eq!(p.max_timestamp(), Some((7, 3_000_000)));

    let lat = store.partition(Ident::Id(0), "lat".into(), 0).unwrap();
    let r = lat.append(kafka_batch(1, 1, 1, 0)).await.unwrap();
    let read = lat.read(0, u64::MAX).unwrap();
    assert_eq!(
        read.batches[0].envelope().max_timestamp / 1000,
        r.append_timestamp / 1000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_to_one_partition_are_serialised_without_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.create_stream("s").unwrap();
    for (name, durability) in [("os", Durability::Os), ("fsync", Durability::Fsync)] {
        let s = TopicSettings {
            durability: Some(durability),
            ..settings()
        };
        store.create_topic(Ident::Id(0), name, 1, s).unwrap();
        let p = store.partition(Ident::Id(0), name.into(), 0).unwrap();
        let mut tasks = Vec::new();
        for i in 0..64u64 {
            let p = Arc::clone(&p);
            tasks.push(tokio::spawn(async move {
                let n = (i % 5 + 1) as usize;
                (n, p.append(seeded_batch(i, n, 100)).await.unwrap())
            }));
        }
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        results.sort_by_key(|(_, r)| r.base_offset);
        let mut next = 0;
        for (n, r) in &results {
            assert_eq!(r.base_offset, next);
            assert_eq!(r.last_offset, next + *n as u64 - 1);
            next += *n as u64;
        }
        let read = p.read(0, u64::MAX).unwrap();
        assert_eq!(read.batches.len(), 64);
        assert_eq!(read.high_watermark, next);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_roll_by_size_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let small = TopicSettings {
        segment_size: Some(4096),
        ..settings()
    };
    {
        let store = open(dir.path());
        store.create_stream("s").unwrap();
        store.create_topic(Ident::Id(0), "t", 1, small).unwrap();
        let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
        for i in 0..40 {
            p.append(seeded_batch(i, 3, 300)).await.unwrap();
        }
        assert!(p.stats().segments > 5, "{:?}", p.stats());
        store.close().unwrap();
        let err = p.append(seeded_batch(0, 1, 1)).await.unwrap_err();
        assert!(matches!(err, StoreError::PartitionClosed(_)), "{err}");
    }
    let (store, report) = LogStore::open(dir.path(), config()).unwrap();
    assert!(report.repaired.is_empty(), "{report:?}");
    let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
    assert_eq!(p.high_watermark(), 120);
    let mut offset = 0;
    let mut seen = 0;
    while offset < 120 {
        let r = p.read(offset, 2000).unwrap();
        for b in &r.batches {
            b.verify().unwrap();
            assert_eq!(
                native_bodies(&b.payload())[0],
                seeded_body(b.base_offset() / 3, 0, 300)
            );
            seen += 1;
        }
        offset = r.batches.last().unwrap().last_offset() + 1;
    }
    assert_eq!(seen, 40);
    assert_eq!(
        p.append(seeded_batch(40, 3, 300))
            .await
            .unwrap()
            .base_offset,
        120
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_whole_sealed_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.create_stream("s").unwrap();
    let by_size = TopicSettings {
        segment_size: Some(1000),
        max_size: Some(5000),
        ..settings()
    };
    let by_time = TopicSettings {
        segment_size: Some(1000),
        message_expiry: Some(Duration::from_secs(60)),
        ..settings()
    };
    store
        .create_topic(Ident::Id(0), "size", 2, by_size)
        .unwrap();
    store
        .create_topic(Ident::Id(0), "time", 1, by_time)
        .unwrap();
    for part in 0..2 {
        let p = store.partition(Ident::Id(0), "size".into(), part).unwrap();
        for i in 0..10 {
            p.append(seeded_batch(i, 1, 900)).await.unwrap();
        }
    }
    let t = store.partition(Ident::Id(0), "time".into(), 0).unwrap();
    let mut last = 0;
    for i in 0..5 {
        last = t
            .append(seeded_batch(i, 1, 900))
            .await
            .unwrap()
            .append_timestamp;
    }
    // Nothing is old enough yet.
    store.enforce_retention(last).unwrap();
    assert_eq!(t.log_start_offset(), 0);
    let size: u64 = store
        .partitions(Ident::Id(0), "size".into())
        .unwrap()
        .iter()
        .map(|p| p.stats().size_bytes)
        .sum();
    assert!(size <= 5000, "size retention left {size} bytes");

    // An hour later every sealed segment has expired; the active one stays.
    store.enforce_retention(last + 3_600_000_000).unwrap();
    assert_eq!(t.log_start_offset(), 4);
    assert_eq!(t.stats().segments, 1);
    let r = t.read(0, u64::MAX).unwrap();
    assert_eq!(r.log_start_offset, 4);
    assert_eq!(r.batches[0].base_offset(), 4);
    for part in 0..2 {
        let p = store.partition(Ident::Id(0), "size".into(), part).unwrap();
        let stats = p.stats();
        assert!(stats.log_start_offset > 0);
        assert_eq!(stats.high_watermark, 10);
    }
    // Explicit deletion of the oldest sealed segments (Iggy's DeleteSegments).
    let p = store.partition(Ident::Id(0), "size".into(), 0).unwrap();
    let before = p.stats().segments;
    assert_eq!(p.delete_segments(100).unwrap() as usize, before - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_wakes_on_append_and_times_out_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.create_stream("s").unwrap();
    store
        .create_topic(Ident::Id(0), "t", 1, settings())
        .unwrap();
    let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();

    let soon = tokio::time::Instant::now() + Duration::from_millis(50);
    assert!(!p.wait_for_data(0, soon).await);

    let waiter = {
        let p = Arc::clone(&p);
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            p.wait_for_data(0, deadline).await
        })
    };
    p.append(native_batch(&[b"x"])).await.unwrap();
    assert!(tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("the waiter was not woken within 30 s")
        .unwrap());
    // Data already there: no wait at all.
    assert!(p.wait_for_data(0, tokio::time::Instant::now()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_purge_and_offsets_follow_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.create_stream("s").unwrap();
    let limited = TopicSettings {
        max_batch_bytes: Some(100),
        ..settings()
    };
    store.create_topic(Ident::Id(0), "t", 2, limited).unwrap();
    let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
    let err = p.append(seeded_batch(1, 1, 100)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::BatchTooLarge { limit: 100, .. }),
        "{err}"
    );
    p.append(seeded_batch(1, 1, 10)).await.unwrap();
    p.append(seeded_batch(1, 1, 10)).await.unwrap();

    let key = |p| OffsetKey {
        owner: OffsetOwner::Group("g".into()),
        stream: 0,
        topic: 0,
        partition: p,
    };
    let at = |o| CommittedOffset {
        next_offset: o,
        leader_epoch: -1,
        ..CommittedOffset::default()
    };
    store.offsets().commit(key(0), at(2)).unwrap();
    store.offsets().commit(key(1), at(0)).unwrap();
    store
        .remove_partitions(Ident::Id(0), Ident::Id(0), 1)
        .unwrap();
    assert_eq!(store.offsets().get(&key(1)), None);
    assert_eq!(store.offsets().get(&key(0)), Some(at(2)));

    store.purge_topic(Ident::Id(0), Ident::Id(0)).unwrap();
    assert_eq!(p.high_watermark(), 0);
    assert!(p.read(0, u64::MAX).unwrap().batches.is_empty());
    assert_eq!(store.offsets().get(&key(0)), None);
    assert_eq!(
        p.append(seeded_batch(1, 1, 10)).await.unwrap().base_offset,
        0
    );

    store.delete_stream(Ident::Id(0)).unwrap();
    assert!(p.append(seeded_batch(1, 1, 10)).await.is_err());
    assert!(!dir.path().join("streams/0").exists());
}

#[tokio::test]
async fn delete_records_moves_the_log_start_and_it_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = wharf_log_store::StoreConfig {
        default_segment_size: 1,
        background_tasks: false,
        ..wharf_log_store::StoreConfig::default()
    };
    {
        let (store, _) = LogStore::open(dir.path(), config.clone()).unwrap();
        store.create_stream("s").unwrap();
        store
            .create_topic("s".into(), "t", 1, Default::default())
            .unwrap();
        let p = store.partition("s".into(), "t".into(), 0).unwrap();
        for i in 0..5u8 {
            p.append(native_batch(&[[i]])).await.unwrap();
        }
        assert_eq!(p.delete_records_before(3).unwrap(), 3);
        assert_eq!(p.delete_records_before(1).unwrap(), 3, "never moves back");
        assert_eq!(p.log_start_offset(), 3);
        assert!(p.stats().segments <= 3, "segments below the start are gone");
        assert_eq!(p.read(0, 1).unwrap().batches[0].base_offset(), 3);
        store.close().unwrap();
    }
    let (store, _) = LogStore::open(dir.path(), config).unwrap();
    let p = store.partition("s".into(), "t".into(), 0).unwrap();
    assert_eq!(p.log_start_offset(), 3);
    assert_eq!(p.high_watermark(), 5);
}

/// The store's figures after a known workload: every append group is counted with exactly the
/// messages and stored bytes appended, an `fsync` topic's group commit is timed as an
/// `fdatasync`, and retention counts exactly the segments and bytes it deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_metrics_count_groups_syncs_and_retention_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.create_stream("s").unwrap();
    let synced = TopicSettings {
        durability: Some(Durability::Fsync),
        segment_size: Some(1000),
        message_expiry: Some(Duration::from_secs(60)),
        ..settings()
    };
    store.create_topic(Ident::Id(0), "t", 1, synced).unwrap();
    let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
    let m = Arc::clone(store.metrics());
    let mut stored = 0;
    let mut last = 0;
    for i in 0..5 {
        let batch = seeded_batch(i, 2, 400);
        stored += batch.stored_len();
        // One append at a time: each is a group of its own.
        last = p.append(batch).await.unwrap().append_timestamp;
    }
    let groups = m.append_group_duration.snapshot();
    assert_eq!(groups.count, 5);
    let messages = m.append_group_messages.snapshot();
    assert_eq!((messages.count, messages.sum), (5, 10));
    assert_eq!(m.append_group_bytes.snapshot().sum, stored);
    // Each group of an `fsync` topic waits for at least one `fdatasync` of the log.
    assert!(m.fsync_duration.snapshot().count >= 5);

    let before = p.stats();
    assert!(before.segments > 1, "{before:?}");
    store.enforce_retention(last + 3_600_000_000).unwrap();
    let after = p.stats();
    assert_eq!(after.segments, 1);
    assert_eq!(
        m.retention_deleted_segments(),
        (before.segments - after.segments) as u64
    );
    assert_eq!(
        m.retention_deleted_bytes(),
        before.size_bytes - after.size_bytes
    );
}
