//! Rebuilding a lost data directory from the remote tier (`LogStore::restore_from_remote`):
//! data produced, uploaded by a tiering round, the data directory thrown away, then restored
//! into a fresh one, opened, read back byte for byte, and appended to after the uploaded
//! offsets. The remote store is a real one (a local folder through `object_store`), wrapped
//! in a `FaultyRemote` to take it down; damaged or foreign objects are put through the public
//! API. No test sleeps.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::remote::*;
use common::*;
use wharf_log_store::remote::{
    FaultyRemote, PartitionPrefix, RemoteError, RemoteManifest, RemoteSettings, RemoteStore,
    RemoteTier, RestoreReport, CATALOG_KEY,
};
use wharf_log_store::{Ident, LogStore, RemoteMetrics, StoreConfig, StoreError, TopicSettings};

/// The read-ahead cache's bound in these tests (the uploaded data is about 6 KB).
const CACHE_MAX_BYTES: u64 = 2_000;

struct Rig {
    tmp: tempfile::TempDir,
    remote: Arc<FaultyRemote>,
}

impl Rig {
    fn new() -> Rig {
        let tmp = tempfile::tempdir().unwrap();
        let remote = folder_remote(&tmp.path().join("bucket"));
        Rig { tmp, remote }
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn config(&self) -> StoreConfig {
        StoreConfig {
            remote: Some(RemoteTier {
                store: Arc::clone(&self.remote) as Arc<dyn RemoteStore>,
                settings: RemoteSettings {
                    // Small chunks and a cache smaller than the uploaded data: restored reads
                    // cross chunk boundaries and evict.
                    chunk_size: 1_000,
                    cache_max_bytes: CACHE_MAX_BYTES,
                    task_interval: Duration::from_secs(3600),
                    ..RemoteSettings::default()
                },
            }),
            ..config()
        }
    }

    fn open(&self, dir: &Path) -> LogStore {
        LogStore::open(dir, self.config()).unwrap().0
    }

    fn restore(&self, dir: &Path) -> wharf_log_store::Result<RestoreReport> {
        LogStore::restore_from_remote(dir, &self.config())
    }

    fn object(&self, key: &str) -> Bytes {
        self.remote.inner().get(key).unwrap().expect(key)
    }

    fn put(&self, key: &str, bytes: &[u8]) {
        self.remote
            .inner()
            .put(key, &mut &bytes[..], bytes.len() as u64)
            .unwrap();
    }
}

/// Every batch of the partition from `from` on, read through the blocking path (which may
/// go to the remote tier).
fn read_all(store: &LogStore, topic: u32, partition: u32, from: u64) -> Vec<Bytes> {
    let p = store
        .partition(Ident::Id(0), Ident::Id(topic), partition)
        .unwrap();
    let mut out = Vec::new();
    let mut at = from;
    while at < p.high_watermark() {
        let read = p.read(at, 1 << 20).unwrap();
        assert!(!read.batches.is_empty(), "nothing read at {at}");
        for b in &read.batches {
            b.verify().unwrap();
            out.push(b.as_bytes().clone());
            at = b.last_offset() + 1;
        }
    }
    out
}

/// A store with a tiered topic of two partitions (5 batches of 2 messages each, 4 of them in
/// sealed segments, uploaded and gone from local disk) and a topic without remote storage.
/// Returns the batches each tiered partition held, and the tiered topic's creation time.
async fn produce_and_upload(rig: &Rig, dir: &Path) -> (Vec<Vec<Bytes>>, u64) {
    let store = rig.open(dir);
    store.create_stream("s").unwrap();
    let topic = store.create_topic(Ident::Id(0), "t", 2, tiered()).unwrap();
    store
        .create_topic(Ident::Id(0), "local", 1, TopicSettings::default())
        .unwrap();
    for p in 0..2 {
        let part = store.partition(Ident::Id(0), Ident::Id(0), p).unwrap();
        for i in 0..5 {
            part.append(seeded_batch(100 * u64::from(p) + i, 2, 300))
                .await
                .unwrap();
        }
    }
    let local = store.partition(Ident::Id(0), Ident::Id(1), 0).unwrap();
    local.append(seeded_batch(999, 1, 10)).await.unwrap();
    let before: Vec<Vec<Bytes>> = (0..2).map(|p| read_all(&store, 0, p, 0)).collect();
    let report = store.tier_once(now_us()).unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.uploaded_segments, 8, "{report:?}");
    assert_eq!(report.local_deleted_segments, 8, "{report:?}");
    assert!(report.catalog_uploaded);
    for p in 0..2 {
        let part = store.partition(Ident::Id(0), Ident::Id(0), p).unwrap();
        assert_eq!(
            part.local_log_start_offset(),
            8,
            "only the active segment is local"
        );
    }
    store.close().unwrap();
    (before, topic.created_at)
}

/// The whole story: a lost data directory comes back from the remote tier with everything
/// that was uploaded readable byte for byte (from the object store, through the cache),
/// the catalog as it was, new appends after the uploaded offsets, and tiering going on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_data_directory_is_rebuilt_from_the_uploaded_data() {
    let rig = Rig::new();
    let lost = rig.dir("data");
    let (before, created) = produce_and_upload(&rig, &lost).await;
    std::fs::remove_dir_all(&lost).unwrap();

    let fresh = rig.dir("restored");
    let report = rig.restore(&fresh).unwrap();
    let uploaded: u64 = (0..2)
        .map(|p| {
            let key = PartitionPrefix::new(0, 0, created, p).manifest();
            RemoteManifest::decode(&rig.object(&key), &key)
                .unwrap()
                .log_bytes()
        })
        .sum();
    assert_eq!(
        report,
        RestoreReport {
            streams: 1,
            topics: 2,
            partitions: 3,
            segments: 8,
            bytes: uploaded,
            local_only_topics: 1,
            partitions_without_manifest: 0,
        }
    );

    let store = rig.open(&fresh);
    let topics = store.topics(Ident::Id(0)).unwrap();
    let names: Vec<&str> = topics.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["t", "local"]);
    assert_eq!(
        topics[0].created_at, created,
        "the same topic, not a new one"
    );
    assert!(topics[0].settings.remote_storage);
    let local = store.partition(Ident::Id(0), Ident::Id(1), 0).unwrap();
    assert_eq!(
        local.high_watermark(),
        0,
        "a topic without remote storage comes back empty"
    );

    rig.remote.reset_counts();
    for p in 0..2u32 {
        let part = store.partition(Ident::Id(0), Ident::Id(0), p).unwrap();
        assert_eq!(part.log_start_offset(), 0);
        assert_eq!(
            part.local_log_start_offset(),
            8,
            "the local log starts after the upload"
        );
        assert_eq!(part.high_watermark(), 8);
        assert_eq!(part.last_remote_offset(), Some(7));
        let restored = read_all(&store, 0, p, 0);
        // The fifth batch was in the active segment, never uploaded: lost with the disk.
        assert_eq!(
            restored,
            before[p as usize][..4],
            "partition {p} byte for byte"
        );
        // Timestamps look-ups reach the uploaded indexes.
        assert_eq!(part.offset_for_timestamp(0).unwrap(), Some(0));
    }
    assert!(
        rig.remote.counts().get_ranges > 0,
        "the restored data was read from the object store"
    );
    // Bound CACHE_MAX_BYTES: reading all the uploaded data (more than the bound) through
    // the store leaves at most that much in the cache folder, counted on disk.
    let cache_dir = fresh.join("remote-cache");
    let on_disk: u64 = std::fs::read_dir(&cache_dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let fetched = RemoteMetrics::get(&store.metrics().remote.fetched_bytes);
    assert!(
        fetched > CACHE_MAX_BYTES,
        "only {fetched} bytes went through the cache"
    );
    assert!(on_disk > 0, "remote reads went through the cache folder");
    assert!(
        on_disk <= CACHE_MAX_BYTES,
        "cache folder {on_disk} bytes > {CACHE_MAX_BYTES}"
    );
    assert_eq!(store.remote_status().unwrap().cache_bytes, on_disk);

    // Appends continue after the uploaded offsets, and the next round uploads them under a
    // new manifest epoch.
    let part = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
    let first = part.append(seeded_batch(7, 2, 300)).await.unwrap();
    assert_eq!(first.base_offset, 8);
    part.append(seeded_batch(8, 2, 300)).await.unwrap();
    let report = store.tier_once(now_us()).unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.uploaded_segments, 1, "{report:?}");
    assert_eq!(part.last_remote_offset(), Some(9));
    store.close().unwrap();
    drop((store, part, local));

    // And it all survives a plain restart.
    let store = rig.open(&fresh);
    let again = read_all(&store, 0, 0, 0);
    assert_eq!(again[..4], before[0][..4]);
    assert_eq!(again.len(), 6);
    store.close().unwrap();
}

/// A folder that holds a catalog (a live or intact store) is never overwritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_a_directory_holding_a_catalog() {
    let rig = Rig::new();
    let dir = rig.dir("data");
    let (before, _) = produce_and_upload(&rig, &dir).await;
    let catalog = std::fs::read(dir.join("catalog")).unwrap();
    let err = rig.restore(&dir).unwrap_err();
    assert!(err.to_string().contains("already holds a catalog"), "{err}");
    assert_eq!(std::fs::read(dir.join("catalog")).unwrap(), catalog);
    let store = rig.open(&dir);
    assert_eq!(read_all(&store, 0, 0, 0), before[0]);
}

/// A store open on the folder (no catalog yet) holds its lock: restore refuses.
#[test]
fn restore_refuses_a_directory_in_use() {
    let rig = Rig::new();
    let dir = rig.dir("data");
    let _store = rig.open(&dir);
    assert!(!dir.join("catalog").exists());
    let err = rig.restore(&dir).unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");
    assert!(!dir.join("catalog").exists());
}

/// Without a remote tier, or without a catalog copy in it, nothing is written.
#[test]
fn restore_needs_a_remote_tier_and_its_catalog_copy() {
    let rig = Rig::new();
    let dir = rig.dir("data");
    let err = LogStore::restore_from_remote(&dir, &config()).unwrap_err();
    assert!(
        matches!(err, StoreError::Remote(RemoteError::Config(_))),
        "{err}"
    );
    let err = rig.restore(&dir).unwrap_err();
    assert!(
        matches!(err, StoreError::Remote(RemoteError::NotFound(ref k)) if k == CATALOG_KEY),
        "{err}"
    );
    assert!(!dir.join("catalog").exists());
}

/// The object store down: the restore fails with a retriable error and writes no catalog;
/// once the store is back the same command succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_with_the_store_down_fails_retriably_then_succeeds() {
    let rig = Rig::new();
    let (before, _) = produce_and_upload(&rig, &rig.dir("data")).await;
    let fresh = rig.dir("restored");
    rig.remote.set_down(true);
    let err = rig.restore(&fresh).unwrap_err();
    assert!(
        matches!(&err, StoreError::Remote(e) if e.is_retriable()),
        "{err}"
    );
    assert!(!fresh.join("catalog").exists());
    rig.remote.set_down(false);
    assert_eq!(rig.restore(&fresh).unwrap().segments, 8);
    let store = rig.open(&fresh);
    assert_eq!(read_all(&store, 0, 1, 0), before[1][..4]);
}

/// A damaged catalog copy is refused before anything is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_catalog_copy_is_refused() {
    let rig = Rig::new();
    produce_and_upload(&rig, &rig.dir("data")).await;
    let good = rig.object(CATALOG_KEY);
    for at in [0, 10, good.len() / 2, good.len() - 1] {
        let mut bad = good.to_vec();
        bad[at] ^= 0x40;
        rig.put(CATALOG_KEY, &bad);
        let fresh = rig.dir(&format!("restored-{at}"));
        let err = rig.restore(&fresh).unwrap_err();
        assert!(
            matches!(&err, StoreError::Remote(RemoteError::Corrupt { key, .. }) if key == CATALOG_KEY),
            "flip at {at}: {err}"
        );
        assert!(!fresh.join("catalog").exists());
        assert!(!fresh.join("streams/0").exists(), "nothing written");
    }
}

/// A manifest that is not the partition's (another partition's, put under its key) is
/// refused, naming the object, and no catalog is written; put right, the same restore is run
/// again over the half-restored folder and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_manifest_stops_the_restore_which_can_then_be_run_again() {
    let rig = Rig::new();
    let (before, created) = produce_and_upload(&rig, &rig.dir("data")).await;
    let key0 = PartitionPrefix::new(0, 0, created, 0).manifest();
    let key1 = PartitionPrefix::new(0, 0, created, 1).manifest();
    let own = rig.object(&key1);
    rig.put(&key1, &rig.object(&key0));
    let fresh = rig.dir("restored");
    let err = rig.restore(&fresh).unwrap_err();
    assert!(
        matches!(&err, StoreError::Remote(RemoteError::Corrupt { key, .. }) if *key == key1),
        "{err}"
    );
    assert!(
        !fresh.join("catalog").exists(),
        "a cut-short restore leaves no catalog"
    );
    assert!(fresh
        .join("streams/0/topics/0/partitions/0/remote-manifest")
        .exists());

    rig.put(&key1, &own);
    assert_eq!(rig.restore(&fresh).unwrap().segments, 8);
    let store = rig.open(&fresh);
    assert_eq!(read_all(&store, 0, 0, 0), before[0][..4]);
    assert_eq!(read_all(&store, 0, 1, 0), before[1][..4]);
}

/// Local segment files in a partition folder (no catalog beside them) are not mixed with a
/// restored manifest: the restore refuses and leaves them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_leftover_local_data() {
    let rig = Rig::new();
    produce_and_upload(&rig, &rig.dir("data")).await;
    let fresh = rig.dir("restored");
    let pdir = fresh.join("streams/0/topics/0/partitions/0");
    std::fs::create_dir_all(&pdir).unwrap();
    std::fs::write(pdir.join("00000000000000000000.log"), b"old").unwrap();
    let err = rig.restore(&fresh).unwrap_err();
    assert!(err.to_string().contains("already holds data"), "{err}");
    assert!(!fresh.join("catalog").exists());
    assert_eq!(
        std::fs::read(pdir.join("00000000000000000000.log")).unwrap(),
        b"old"
    );
}

/// An object the manifest names but the store lost is reported (naming it) before the
/// restore finishes, not found out later by a failing read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_segment_object_stops_the_restore() {
    let rig = Rig::new();
    let (_, created) = produce_and_upload(&rig, &rig.dir("data")).await;
    let prefix = PartitionPrefix::new(0, 0, created, 1);
    let key = prefix.manifest();
    let manifest = RemoteManifest::decode(&rig.object(&key), &key).unwrap();
    let seg = &manifest.segments[2];
    let lost = prefix.index(seg.base_offset, seg.upload_epoch);
    rig.remote.inner().delete(&lost).unwrap();
    let fresh = rig.dir("restored");
    let err = rig.restore(&fresh).unwrap_err();
    assert!(
        matches!(&err, StoreError::Remote(RemoteError::Corrupt { key, .. }) if *key == lost),
        "{err}"
    );
    assert!(!fresh.join("catalog").exists());
}

/// A remote store whose whole listings fail: restore must check objects through the
/// streamed listing (`list_each`), which this counts in keys.
#[derive(Debug)]
struct StreamedListingsOnly {
    inner: Arc<dyn RemoteStore>,
    whole_listings: std::sync::atomic::AtomicU64,
    streamed_keys: std::sync::atomic::AtomicU64,
}

impl RemoteStore for StreamedListingsOnly {
    fn put(&self, key: &str, source: &mut dyn std::io::Read, len: u64) -> Result<(), RemoteError> {
        self.inner.put(key, source, len)
    }

    fn get(&self, key: &str) -> Result<Option<Bytes>, RemoteError> {
        self.inner.get(key)
    }

    fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> Result<Bytes, RemoteError> {
        self.inner.get_range(key, range)
    }

    fn delete(&self, key: &str) -> Result<(), RemoteError> {
        self.inner.delete(key)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, RemoteError> {
        self.whole_listings
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(RemoteError::Config(format!(
            "a whole listing of '{prefix}' (every key held at once)"
        )))
    }

    fn list_each(
        &self,
        prefix: &str,
        each: &mut dyn FnMut(String) -> Result<(), RemoteError>,
    ) -> Result<(), RemoteError> {
        self.inner.list_each(prefix, &mut |key| {
            self.streamed_keys
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            each(key)
        })
    }
}

/// Review item N7: restore checks the named objects against the streamed listing, holding
/// only the keys the manifest names, however many orphans share the prefix (more than one
/// listing page here). Bound: 0 whole listings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_streams_the_listing_instead_of_holding_every_key() {
    const ORPHANS: u64 = 1_001;
    let rig = Rig::new();
    let (_, created) = produce_and_upload(&rig, &rig.dir("data")).await;
    let prefix = PartitionPrefix::new(0, 0, created, 0);
    for n in 0..ORPHANS {
        rig.put(&prefix.log(1_000_000 + n, 99), b"orphan");
    }
    let streamed = Arc::new(StreamedListingsOnly {
        inner: Arc::clone(rig.remote.inner()),
        whole_listings: Default::default(),
        streamed_keys: Default::default(),
    });
    let mut config = rig.config();
    if let Some(tier) = config.remote.as_mut() {
        tier.store = Arc::clone(&streamed) as Arc<dyn RemoteStore>;
    }
    let fresh = rig.dir("restored");
    let report = LogStore::restore_from_remote(&fresh, &config).unwrap();
    assert_eq!(report.segments, 8, "{report:?}");
    let load = std::sync::atomic::Ordering::SeqCst;
    assert_eq!(streamed.whole_listings.load(load), 0, "whole listings");
    assert!(
        streamed.streamed_keys.load(load) > ORPHANS,
        "the orphans went through the streamed listing"
    );
}
