//! Reads of offloaded data through the store's public API: a store with a filesystem remote
//! tier (behind a fault switch) uploads a topic's sealed segments and deletes the local copies
//! (`tier_once`), then reads, look-ups and log bounds must answer as they did when everything
//! was local, byte for byte, across a restart; with the object store down, reads of remote
//! data fail with an error while local reads and appends go on.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::sync::Arc;

use common::remote::{folder_remote, now_us};
use common::*;
use wharf_log_store::remote::{FaultyRemote, RemoteError, RemoteSettings, RemoteStore, RemoteTier};
use wharf_log_store::{Ident, LogStore, Partition, StoreError, StoreMetrics, TopicSettings};

/// Batches appended; with 4 KiB segments and ~1.1 KiB batches, several segments seal.
const BATCHES: u64 = 16;
const PER_BATCH: usize = 5;

fn tiered_config(faulty: &Arc<FaultyRemote>) -> wharf_log_store::StoreConfig {
    let store: Arc<dyn RemoteStore> = faulty.clone();
    wharf_log_store::StoreConfig {
        remote: Some(RemoteTier {
            store,
            settings: RemoteSettings {
                chunk_size: 4096,
                cache_max_bytes: 64 << 10,
                ..RemoteSettings::default()
            },
        }),
        ..config()
    }
}

fn open_tiered(dir: &Path, faulty: &Arc<FaultyRemote>) -> LogStore {
    LogStore::open(dir, tiered_config(faulty)).unwrap().0
}

fn topic_settings() -> TopicSettings {
    TopicSettings {
        remote_storage: true,
        segment_size: Some(4096),
        // Keep as little as possible locally: every uploaded segment goes.
        local_retention_bytes: Some(1),
        ..TopicSettings::default()
    }
}

async fn filled(store: &LogStore) -> Arc<Partition> {
    store.create_stream("s").unwrap();
    store
        .create_topic(Ident::Id(0), "t", 1, topic_settings())
        .unwrap();
    let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
    for seed in 0..BATCHES {
        p.append(seeded_batch(seed, PER_BATCH, 200)).await.unwrap();
    }
    p
}

/// Every batch from `from` to the high watermark, read one at a time (where blocking is
/// allowed), as `(first offset, stored bytes)`.
fn read_all(p: &Partition, from: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let mut out = Vec::new();
    let mut at = from;
    while at < p.high_watermark() {
        let r = p.read(at, 1)?;
        let Some(b) = r.batches.first() else {
            panic!("no batch at {at} below the high watermark");
        };
        out.push((b.base_offset(), b.as_bytes().to_vec()));
        at = b.last_offset() + 1;
    }
    Ok(out)
}

/// What the look-ups answer, for every batch's time and offset.
fn look_ups(p: &Partition, batches: &[(u64, Vec<u8>)]) -> Vec<(Option<u64>, Option<u64>)> {
    let mut out = Vec::new();
    for (offset, _) in batches {
        let r = p.read(*offset, 1).unwrap();
        let ts = r.batches[0].envelope().max_timestamp;
        out.push((
            p.offset_for_timestamp(ts).unwrap(),
            p.batch_before(offset + 1).unwrap(),
        ));
    }
    out
}

fn offload(store: &LogStore, p: &Partition) {
    let report = store.tier_once(now_us()).unwrap();
    assert!(report.uploaded_segments >= 3, "{report:?}");
    assert!(report.local_deleted_segments >= 3, "{report:?}");
    assert!(p.local_log_start_offset() > 0, "local copies deleted");
}

fn remote_metrics(m: &StoreMetrics) -> (u64, u64) {
    use wharf_log_store::RemoteMetrics as R;
    (
        R::get(&m.remote.fetched_bytes),
        R::get(&m.remote.cache_misses),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offloaded_data_reads_back_byte_exact_with_the_same_look_ups_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = tempfile::tempdir().unwrap();
    let faulty = folder_remote(bucket.path());
    let store = open_tiered(dir.path(), &faulty);
    let p = filled(&store).await;
    let hw = p.high_watermark();
    let local = read_all(&p, 0).unwrap();
    let local_look_ups = look_ups(&p, &local);
    let max_ts = p.max_timestamp();
    assert_eq!(p.last_remote_offset(), None, "nothing uploaded yet");

    offload(&store, &p);
    let local_start = p.local_log_start_offset();
    assert_eq!(p.log_start_offset(), 0, "offloaded offsets stay readable");
    assert_eq!(p.high_watermark(), hw);
    assert_eq!(p.last_remote_offset(), Some(local_start - 1));
    // An async worker never waits on the object store: the cached read says "go block".
    assert!(p.read_cached(0, 1 << 20).unwrap().is_none());
    assert!(p.offset_for_timestamp_cached(0).is_none());

    let before = remote_metrics(store.metrics());
    let p2 = Arc::clone(&p);
    let (remote_read, remote_look_ups, max_after) = tokio::task::spawn_blocking(move || {
        let all = read_all(&p2, 0).unwrap();
        let looks = look_ups(&p2, &all);
        (all, looks, p2.max_timestamp())
    })
    .await
    .unwrap();
    assert_eq!(remote_read, local, "byte-exact");
    assert_eq!(remote_look_ups, local_look_ups);
    assert_eq!(max_after, max_ts);
    let after = remote_metrics(store.metrics());
    assert!(after.0 > before.0, "the reads went to the object store");

    // A read that starts in the remote tier stays in one uploaded segment and returns whole
    // batches, at least one whatever max_bytes says.
    let r = p.read(0, 0).unwrap();
    assert_eq!(r.batches.len(), 1);
    let r = p.read(0, 1 << 30).unwrap();
    assert!(r.batches.last().unwrap().last_offset() < local_start);

    // Restarted: the manifest is read from the partition folder, nothing is fetched to open.
    drop(p);
    store.close().unwrap();
    drop(store);
    faulty.reset_counts();
    let store = open_tiered(dir.path(), &faulty);
    let opened = faulty.counts();
    assert_eq!(opened.gets + opened.get_ranges, 0, "{opened:?}");
    let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
    assert_eq!(
        (p.log_start_offset(), p.local_log_start_offset()),
        (0, local_start)
    );
    let p2 = Arc::clone(&p);
    let again = tokio::task::spawn_blocking(move || read_all(&p2, 0).unwrap())
        .await
        .unwrap();
    assert_eq!(again, local, "byte-exact after a restart");
    store.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_object_store_down_fails_remote_reads_only() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = tempfile::tempdir().unwrap();
    let faulty = folder_remote(bucket.path());
    let store = open_tiered(dir.path(), &faulty);
    let p = filled(&store).await;
    offload(&store, &p);
    let local_start = p.local_log_start_offset();

    faulty.set_down(true);
    let p2 = Arc::clone(&p);
    let (remote_read, remote_ts, local_read) = tokio::task::spawn_blocking(move || {
        (
            p2.read(0, 1 << 20),
            p2.offset_for_timestamp(0),
            p2.read(local_start, 1 << 20),
        )
    })
    .await
    .unwrap();
    assert!(
        matches!(
            remote_read,
            Err(StoreError::Remote(RemoteError::Unavailable { .. }))
        ),
        "{remote_read:?}"
    );
    assert!(remote_ts.is_err());
    assert!(
        !local_read.unwrap().batches.is_empty(),
        "local data is read"
    );
    // Producers are unaffected.
    let r = p.append(seeded_batch(99, 1, 10)).await.unwrap();
    assert_eq!(r.base_offset, BATCHES * PER_BATCH as u64);

    faulty.set_down(false);
    let p2 = Arc::clone(&p);
    let first = tokio::task::spawn_blocking(move || p2.read(0, 1).unwrap())
        .await
        .unwrap();
    assert_eq!(
        first.batches[0].base_offset(),
        0,
        "readable again once it is back"
    );
    store.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_moves_the_log_start_into_the_remote_tier() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = tempfile::tempdir().unwrap();
    let faulty = folder_remote(bucket.path());
    let store = open_tiered(dir.path(), &faulty);
    let p = filled(&store).await;
    offload(&store, &p);
    let local_start = p.local_log_start_offset();
    let start = PER_BATCH as u64 + 2;
    assert!(start < local_start);
    assert_eq!(p.delete_records_before(start).unwrap(), start);
    assert_eq!(p.log_start_offset(), start);
    assert_eq!(p.local_log_start_offset(), local_start);
    let p2 = Arc::clone(&p);
    let r = tokio::task::spawn_blocking(move || p2.read(0, 1).unwrap())
        .await
        .unwrap();
    assert_eq!(r.log_start_offset, start);
    assert_eq!(
        r.batches[0].base_offset(),
        PER_BATCH as u64,
        "the batch holding the new log start"
    );
    // Survives a restart.
    drop(p);
    store.close().unwrap();
    drop(store);
    let store = open_tiered(dir.path(), &faulty);
    let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
    assert_eq!(p.log_start_offset(), start);
    store.close().unwrap();
}
