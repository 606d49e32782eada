//! The tiering rounds against a real remote store (a local folder through `object_store`),
//! wrapped in a `FaultyRemote` to take it down, fail chosen puts and hold calls in flight.
//! Rounds are driven by hand with `LogStore::tier_once(now_us)`; no test sleeps.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::remote::*;
use common::*;
use wharf_log_store::remote::{
    FaultyRemote, RemoteManifest, RemoteSettings, RemoteStore, RemoteTier, CATALOG_KEY,
};
use wharf_log_store::{
    read_durable, Disk, FileHook, FileOp, Ident, LogStore, StoreConfig, StoreError, TopicSettings,
};

struct Rig {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    remote: Arc<FaultyRemote>,
    settings: RemoteSettings,
}

impl Rig {
    fn new() -> Rig {
        let tmp = tempfile::tempdir().unwrap();
        let settings = RemoteSettings {
            retry_backoff: Duration::from_secs(1),
            retry_backoff_max: Duration::from_secs(4),
            task_interval: Duration::from_secs(3600),
            ..RemoteSettings::default()
        };
        Rig {
            data: tmp.path().join("data"),
            remote: folder_remote(&tmp.path().join("bucket")),
            _tmp: tmp,
            settings,
        }
    }

    fn config(&self, background: bool) -> StoreConfig {
        StoreConfig {
            background_tasks: background,
            remote: Some(RemoteTier {
                store: Arc::clone(&self.remote) as Arc<dyn RemoteStore>,
                settings: self.settings.clone(),
            }),
            ..config()
        }
    }

    fn open(&self) -> LogStore {
        LogStore::open(&self.data, self.config(false)).unwrap().0
    }

    fn open_with_disk(&self, disk: Disk) -> LogStore {
        let config = StoreConfig {
            disk,
            ..self.config(false)
        };
        LogStore::open(&self.data, config).unwrap().0
    }

    /// Keys under `prefix` in the real store (faults bypassed), sorted.
    fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys = self.remote.inner().list(prefix).unwrap();
        keys.sort();
        keys
    }

    fn object(&self, key: &str) -> Vec<u8> {
        self.remote.inner().get(key).unwrap().expect(key).to_vec()
    }

    fn manifest(&self, prefix: &str) -> RemoteManifest {
        let key = format!("{prefix}manifest");
        RemoteManifest::decode(&self.object(&key), &key).unwrap()
    }

    fn partition_dir(&self, p: u32) -> PathBuf {
        self.data.join(format!("streams/0/topics/0/partitions/{p}"))
    }
}

const SEC: u64 = 1_000_000;

/// The `.log` files in a partition folder, sorted by name.
fn local_logs(dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}

fn prefix(created: u64, p: u32) -> String {
    format!("topics/0-0-{created}/{p}/")
}

/// Every batch from `from` to the high watermark, bytes as stored, read as a consumer does
/// (the blocking read, which goes to the remote tier below the local segments).
fn read_all(p: &wharf_log_store::Partition, mut from: u64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let r = p.read(from, 1 << 20).unwrap();
        let Some(last) = r.batches.last() else { break };
        from = last.last_offset() + 1;
        out.extend(r.batches.iter().map(|b| b.as_bytes().to_vec()));
    }
    out
}

async fn append_batches(store: &LogStore, n: usize, seed: u64) {
    let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
    for i in 0..n {
        p.append(seeded_batch(seed + i as u64, 2, 100))
            .await
            .unwrap();
    }
}

/// Sealed segments go up log, index and manifest; the manifest's checksums are those of the
/// objects, and the local copy goes only once the manifest naming it is installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_sealed_segments_with_a_checksummed_manifest_then_deletes_local_copies() {
    let rig = Rig::new();
    let store = rig.open();
    store.create_stream("s").unwrap();
    let topic = store.create_topic(Ident::Id(0), "t", 1, tiered()).unwrap();
    append_batches(&store, 5, 1).await;
    let pdir = rig.partition_dir(0);
    let logs = local_logs(&pdir);
    assert_eq!(logs.len(), 5, "one segment per batch");
    let sealed: Vec<Vec<u8>> = logs[..4]
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
    let local_batches = read_all(&p, 0);
    assert_eq!(local_batches.len(), 5);

    let report = store.tier_once(now_us()).unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.uploaded_segments, 4, "{report:?}");
    assert_eq!(
        report.uploaded_bytes,
        sealed.iter().map(|s| s.len() as u64).sum::<u64>()
    );
    assert!(report.catalog_uploaded);

    let prefix = prefix(topic.created_at, 0);
    let manifest = rig.manifest(&prefix);
    assert_eq!(manifest.epoch, 4, "one commit per uploaded segment");
    assert_eq!(
        (manifest.stream, manifest.topic, manifest.partition),
        (0, 0, 0)
    );
    assert_eq!(manifest.topic_created_us, topic.created_at);
    assert_eq!(manifest.segments.len(), 4);
    assert_eq!(manifest.next_offset(), Some(8), "2 messages per batch");
    for ((seg, local), epoch) in manifest.segments.iter().zip(&sealed).zip(1..) {
        assert_eq!(
            seg.upload_epoch, epoch,
            "the epoch of the manifest naming it first"
        );
        let log = rig.object(&format!("{prefix}{:020}-{epoch}.log", seg.base_offset));
        assert_eq!(
            &log, local,
            "the uploaded log is the local file byte for byte"
        );
        assert_eq!(seg.log_crc32c, crc32c::crc32c(&log));
        assert_eq!(seg.log_size, log.len() as u64);
        let index = rig.object(&format!("{prefix}{:020}-{epoch}.index", seg.base_offset));
        assert_eq!(seg.index_crc32c, crc32c::crc32c(&index));
        assert_eq!(seg.index_size, index.len() as u64);
    }
    assert_eq!(
        rig.keys(&prefix).len(),
        1 + 2 * 4,
        "manifest + log and index per segment"
    );
    // The local durable copy is the same manifest.
    let local_manifest = read_durable(&pdir.join("remote-manifest"))
        .unwrap()
        .unwrap();
    let key = format!("{prefix}manifest");
    assert_eq!(
        RemoteManifest::decode(&local_manifest, &key).unwrap(),
        manifest
    );
    // Local retention (1 byte): every uploaded sealed segment left local disk; the active
    // one stays.
    assert_eq!(report.local_deleted_segments, 4);
    assert_eq!(local_logs(&pdir), logs[4..].to_vec());
    assert_eq!(p.local_log_start_offset(), 8);
    assert_eq!(
        read_all(&p, 0),
        local_batches,
        "offloaded batches read back byte-exact"
    );
    assert_eq!(
        p.log_start_offset(),
        0,
        "older data is still readable remotely"
    );
    assert_eq!(p.last_remote_offset(), Some(7));
    let m = &store.metrics().remote;
    assert_eq!(wharf_log_store::RemoteMetrics::get(&m.uploaded_segments), 4);
    assert_eq!(
        wharf_log_store::RemoteMetrics::get(&m.local_deleted_segments),
        4
    );
    // The catalog copy is the local file's exact bytes.
    assert_eq!(
        rig.object(CATALOG_KEY),
        std::fs::read(rig.data.join("catalog")).unwrap()
    );

    // Nothing new: the next round puts nothing at all.
    rig.remote.reset_counts();
    let report = store.tier_once(now_us()).unwrap();
    assert_eq!(report.uploaded_segments, 0);
    assert!(!report.catalog_uploaded);
    assert_eq!(rig.remote.counts().puts, 0, "{:?}", rig.remote.counts());
    let status = store.remote_status().unwrap();
    assert_eq!((status.remote_segments, status.pending_segments), (4, 0));
    store.close().unwrap();
}

/// Store down: appends go on, nothing local is deleted (not even by the plain retention with
/// a 1-byte max size), the failing-rounds alert counts up, retries wait out a doubling
/// backoff without calling the store, and everything goes up once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_down_keeps_local_data_and_appends_then_uploads_resume_after_backoff() {
    let rig = Rig::new();
    let store = rig.open();
    store.create_stream("s").unwrap();
    let settings = TopicSettings {
        max_size: Some(1),
        ..tiered()
    };
    store.create_topic(Ident::Id(0), "t", 1, settings).unwrap();
    rig.remote.set_down(true);
    append_batches(&store, 3, 10).await;
    let pdir = rig.partition_dir(0);

    let t0 = now_us() + 3600 * SEC;
    let report = store.tier_once(t0).unwrap();
    assert_eq!(report.failed_partitions.len(), 1, "{report:?}");
    assert_eq!(report.uploaded_segments, 0);
    // The plain retention skips remote-storage topics: their data is not uploaded.
    assert_eq!(store.enforce_retention(t0).unwrap(), 0);
    append_batches(&store, 2, 20).await;
    assert_eq!(
        local_logs(&pdir).len(),
        5,
        "nothing local deleted while down"
    );
    let m = &store.metrics().remote;
    let failing = || wharf_log_store::RemoteMetrics::get(&m.failing_rounds);
    assert_eq!(failing(), 1);
    assert!(wharf_log_store::RemoteMetrics::get(&m.upload_failures) >= 1);
    let status = store.remote_status().unwrap();
    assert_eq!(status.pending_segments, 4, "sealed and waiting");

    // Backoff 1 s, doubling to at most 4 s, measured on the rounds' clock: no call before it.
    rig.remote.reset_counts();
    let report = store.tier_once(t0 + SEC / 2).unwrap();
    assert_eq!(report.backed_off_partitions.len(), 1);
    let counts = rig.remote.counts();
    assert_eq!(counts.puts + counts.lists + counts.deletes, 0, "{counts:?}");
    assert_eq!(
        failing(),
        2,
        "a round with a partition backing off is still failing"
    );
    let report = store.tier_once(t0 + SEC).unwrap();
    assert_eq!(
        report.failed_partitions.len(),
        1,
        "tried again after 1 s: {report:?}"
    );
    let report = store.tier_once(t0 + 2 * SEC).unwrap();
    assert_eq!(report.backed_off_partitions.len(), 1, "now 2 s: {report:?}");

    rig.remote.set_down(false);
    let report = store.tier_once(t0 + 3 * SEC).unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.uploaded_segments, 4);
    assert_eq!(
        failing(),
        0,
        "the alert clears once a round reaches the store"
    );
    assert_eq!(local_logs(&pdir).len(), 1, "uploaded, then deleted locally");
    store.close().unwrap();
}

/// A kill between the segment objects and the manifest (simulated: the manifest put fails,
/// then the store is reopened): nothing local is deleted, and the next round uploads the same
/// keys again and finishes, leaving no stray object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_manifest_put_is_finished_by_the_next_round_after_reopen() {
    let rig = Rig::new();
    let created = {
        let store = rig.open();
        store.create_stream("s").unwrap();
        let topic = store.create_topic(Ident::Id(0), "t", 1, tiered()).unwrap();
        append_batches(&store, 4, 30).await;
        rig.remote.fail_puts_matching(Some("/manifest"));
        let report = store.tier_once(now_us()).unwrap();
        assert_eq!(report.failed_partitions.len(), 1, "{report:?}");
        assert_eq!(report.uploaded_segments, 0);
        assert_eq!(local_logs(&rig.partition_dir(0)).len(), 4);
        assert!(!rig.partition_dir(0).join("remote-manifest").exists());
        store.close().unwrap();
        topic.created_at
    };
    let prefix = prefix(created, 0);
    assert_eq!(
        rig.keys(&prefix).len(),
        2,
        "the first segment's objects up, its manifest not (so no second segment)"
    );
    rig.remote.fail_puts_matching(None);

    let store = rig.open();
    let report = store.tier_once(now_us()).unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.uploaded_segments, 3);
    assert_eq!(rig.keys(&prefix).len(), 1 + 2 * 3, "same keys, no orphan");
    assert_eq!(rig.manifest(&prefix).epoch, 3, "one commit per segment");
    assert_eq!(local_logs(&rig.partition_dir(0)).len(), 1);
    store.close().unwrap();
}

/// Objects under a partition's prefix that no manifest names (a kill mid-upload of a segment
/// that is gone since) are deleted by the first round after open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_round_after_open_sweeps_unnamed_objects() {
    let rig = Rig::new();
    let store = rig.open();
    store.create_stream("s").unwrap();
    let topic = store.create_topic(Ident::Id(0), "t", 1, tiered()).unwrap();
    append_batches(&store, 2, 40).await;
    store.tier_once(now_us()).unwrap();
    store.close().unwrap();
    drop(store);
    let prefix = prefix(topic.created_at, 0);
    let stray = format!("{prefix}{:020}-7.log", 99);
    rig.remote.inner().put(&stray, &mut &b"x"[..], 1).unwrap();
    let before = rig.keys(&prefix);

    let store = rig.open();
    let report = store.tier_once(now_us()).unwrap();
    assert_eq!(report.orphans_deleted, 1, "{report:?}");
    let after = rig.keys(&prefix);
    assert!(!after.contains(&stray));
    assert_eq!(after.len(), before.len() - 1);
    store.close().unwrap();
}

/// Total retention by time: the new manifest is stored and installed before the objects of
/// the expired segments are deleted; the log start moves to the local data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_retention_by_time_deletes_remote_segments_after_the_new_manifest() {
    let rig = Rig::new();
    let store = rig.open();
    store.create_stream("s").unwrap();
    let settings = TopicSettings {
        message_expiry: Some(Duration::from_secs(3600)),
        ..tiered()
    };
    let topic = store.create_topic(Ident::Id(0), "t", 1, settings).unwrap();
    append_batches(&store, 4, 50).await;
    let report = store.tier_once(now_us()).unwrap();
    assert_eq!(
        (report.uploaded_segments, report.remote_deleted_segments),
        (3, 0)
    );
    let prefix = prefix(topic.created_at, 0);
    let uploaded = rig.manifest(&prefix);
    assert_eq!(rig.keys(&prefix).len(), 7);

    let report = store.tier_once(now_us() + 2 * 3600 * SEC).unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.remote_deleted_segments, 3);
    assert_eq!(report.remote_deleted_bytes, uploaded.log_bytes());
    let manifest = rig.manifest(&prefix);
    assert_eq!(manifest.epoch, uploaded.epoch + 1);
    assert!(manifest.segments.is_empty());
    assert_eq!(rig.keys(&prefix), vec![format!("{prefix}manifest")]);
    let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
    assert_eq!(
        p.log_start_offset(),
        6,
        "the active segment is all that is left"
    );
    assert_eq!(p.remote_manifest(), manifest);
    let m = &store.metrics().remote;
    assert_eq!(
        wharf_log_store::RemoteMetrics::get(&m.remote_deleted_segments),
        3
    );
    store.close().unwrap();
}

/// Total retention by size counts remote bytes plus local bytes not uploaded; the oldest
/// remote segment goes first, its local copy before it when still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_retention_by_size_keeps_the_topic_under_max_size() {
    let rig = Rig::new();
    let store = rig.open();
    store.create_stream("s").unwrap();
    create_plain_topic(&store);
    let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
    for i in 0..6 {
        p.append(seeded_batch(60 + i, 2, 100)).await.unwrap();
    }
    let seg = std::fs::metadata(&local_logs(&rig.partition_dir(0))[0])
        .unwrap()
        .len();
    // Room for three segments in all.
    let max = 3 * seg;
    let settings = TopicSettings {
        max_size: Some(max),
        local_retention_bytes: Some(max),
        ..tiered()
    };
    store
        .update_topic(Ident::Id(0), Ident::Id(0), None, settings)
        .unwrap();
    let report = store.tier_once(now_us()).unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.uploaded_segments, 5);
    let manifest = p.remote_manifest();
    let local = p.stats().size_bytes;
    let not_uploaded = std::fs::metadata(local_logs(&rig.partition_dir(0)).last().unwrap())
        .unwrap()
        .len();
    assert!(
        manifest.log_bytes() + not_uploaded <= max,
        "remote {} + local not uploaded {not_uploaded} over max_size {max}",
        manifest.log_bytes()
    );
    assert!(
        local <= max,
        "local {local} over local.retention.bytes {max}"
    );
    assert_eq!(manifest.segments.len(), 2, "{manifest:?}");
    assert_eq!(manifest.start_offset(), Some(6), "the oldest went first");
    assert_eq!(p.log_start_offset(), 6);
    store.close().unwrap();
}

fn create_plain_topic(store: &LogStore) {
    let settings = TopicSettings {
        segment_size: Some(1),
        ..TopicSettings::default()
    };
    store.create_topic(Ident::Id(0), "t", 1, settings).unwrap();
}

/// Purge: the partition installs an empty manifest; the next round stores it and sweeps the
/// old objects; new uploads use keys of the next epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_empties_the_remote_prefix_and_uploads_start_again() {
    let rig = Rig::new();
    let store = rig.open();
    store.create_stream("s").unwrap();
    let topic = store.create_topic(Ident::Id(0), "t", 1, tiered()).unwrap();
    append_batches(&store, 3, 70).await;
    store.tier_once(now_us()).unwrap();
    let prefix = prefix(topic.created_at, 0);
    assert_eq!(rig.keys(&prefix).len(), 5);

    store.purge_topic(Ident::Id(0), Ident::Id(0)).unwrap();
    let report = store.tier_once(now_us()).unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.orphans_deleted, 4, "two segments' log and index");
    assert_eq!(rig.keys(&prefix), vec![format!("{prefix}manifest")]);
    let purged = rig.manifest(&prefix);
    assert!(purged.segments.is_empty());
    assert_eq!(purged.epoch, 3, "two commits, then the purge's");

    append_batches(&store, 2, 80).await;
    let report = store.tier_once(now_us()).unwrap();
    assert_eq!(report.uploaded_segments, 1);
    let manifest = rig.manifest(&prefix);
    assert_eq!(manifest.segments[0].base_offset, 0);
    assert_eq!(manifest.segments[0].upload_epoch, 4);
    assert!(rig
        .keys(&prefix)
        .contains(&format!("{prefix}{:020}-4.log", 0)));
    store.close().unwrap();
}

/// Deleting a topic records its prefix durably before the catalog changes; the record
/// survives the store down and a reopen, and the round that reaches the store empties the
/// prefix and drops the record. The catalog copy follows the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_topics_objects_are_deleted_through_a_durable_record() {
    let rig = Rig::new();
    let created = {
        let store = rig.open();
        store.create_stream("s").unwrap();
        let topic = store.create_topic(Ident::Id(0), "t", 2, tiered()).unwrap();
        append_batches(&store, 3, 90).await;
        store.tier_once(now_us()).unwrap();
        assert!(!rig.keys(&prefix(topic.created_at, 0)).is_empty());
        rig.remote.set_down(true);
        store.delete_topic(Ident::Id(0), Ident::Id(0)).unwrap();
        let report = store.tier_once(now_us()).unwrap();
        assert!(!report.succeeded());
        assert_eq!(report.prefixes_deleted, 0);
        store.close().unwrap();
        topic.created_at
    };
    let record = read_durable(&rig.data.join("remote-deletions"))
        .unwrap()
        .expect("record");
    let topic_prefix = format!("topics/0-0-{created}/");
    assert!(
        String::from_utf8_lossy(&record).contains(&topic_prefix),
        "{}",
        String::from_utf8_lossy(&record)
    );
    rig.remote.set_down(false);

    let store = rig.open();
    let report = store.tier_once(now_us()).unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.prefixes_deleted, 1);
    assert!(
        rig.keys(&topic_prefix).is_empty(),
        "{:?}",
        rig.keys(&topic_prefix)
    );
    let record = read_durable(&rig.data.join("remote-deletions"))
        .unwrap()
        .expect("record");
    assert!(!String::from_utf8_lossy(&record).contains(&topic_prefix));
    assert!(report.catalog_uploaded);
    assert_eq!(
        rig.object(CATALOG_KEY),
        std::fs::read(rig.data.join("catalog")).unwrap()
    );
    store.close().unwrap();
}

/// Removing partitions records their prefixes; the others are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_partitions_lose_their_objects_and_the_others_keep_theirs() {
    let rig = Rig::new();
    let store = rig.open();
    store.create_stream("s").unwrap();
    let topic = store.create_topic(Ident::Id(0), "t", 2, tiered()).unwrap();
    for part in 0..2 {
        let p = store.partition(Ident::Id(0), Ident::Id(0), part).unwrap();
        for i in 0..2 {
            p.append(seeded_batch(100 + i, 1, 50)).await.unwrap();
        }
    }
    store.tier_once(now_us()).unwrap();
    let (p0, p1) = (prefix(topic.created_at, 0), prefix(topic.created_at, 1));
    assert_eq!((rig.keys(&p0).len(), rig.keys(&p1).len()), (3, 3));
    store
        .remove_partitions(Ident::Id(0), Ident::Id(0), 1)
        .unwrap();
    let report = store.tier_once(now_us()).unwrap();
    assert_eq!(report.prefixes_deleted, 1, "{report:?}");
    assert!(rig.keys(&p1).is_empty());
    assert_eq!(rig.keys(&p0).len(), 3);
    store.close().unwrap();
}

/// Kafka's refusals: remote storage without a remote tier, and turning it off once on.
#[test]
fn remote_storage_is_refused_without_a_tier_and_cannot_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let plain = open(dir.path());
    plain.create_stream("s").unwrap();
    let err = plain
        .create_topic(Ident::Id(0), "t", 1, tiered())
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::InvalidSetting(m) if m.contains("Tiered Storage functionality is disabled")),
        "{err}"
    );
    assert!(plain.tier_once(now_us()).is_err());
    assert!(plain.remote_status().is_none());
    plain.close().unwrap();

    let rig = Rig::new();
    let store = rig.open();
    store.create_stream("s").unwrap();
    store.create_topic(Ident::Id(0), "t", 1, tiered()).unwrap();
    let off = TopicSettings {
        remote_storage: false,
        ..tiered()
    };
    let err = store
        .update_topic(Ident::Id(0), Ident::Id(0), None, off)
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::InvalidSetting(m) if m.contains("Disabling remote storage")),
        "{err}"
    );
    store.close().unwrap();
    drop(store);

    // As Kafka refuses to start: the remote tier taken out of the config while a topic has
    // remote storage on would leave its uploaded data unreadable.
    let err = LogStore::open(&rig.data, config()).unwrap_err();
    assert!(
        matches!(&err, StoreError::InvalidSetting(m) if m.contains("'s.t'") && m.contains("remote.storage.enable=true")),
        "{err}"
    );
    // With the tier back, it opens as before.
    rig.open().close().unwrap();
}

/// The "wharf-tiering" thread runs rounds by itself, and closing the store stops it with at
/// most the call in flight finishing, plus the manifest put that commits a segment whose
/// objects are whole by then (review item 6: what finished is kept): bound = at most one store
/// call, a put, starts after close was asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tiering_thread_runs_rounds_and_close_stops_it_after_the_call_in_flight() {
    let mut rig = Rig::new();
    rig.settings.task_interval = Duration::from_millis(10);
    let store = LogStore::open(&rig.data, rig.config(true)).unwrap().0;
    store.create_stream("s").unwrap();
    store.create_topic(Ident::Id(0), "t", 1, tiered()).unwrap();
    append_batches(&store, 3, 110).await;
    // Hold the thread's next call to the store: proof that it runs rounds unasked.
    rig.remote.set_paused(true);
    assert!(
        rig.remote.wait_for_held_calls(1, Duration::from_secs(30)),
        "the tiering thread made no call to the store within 30 s"
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let closing = store.clone();
    let closer = std::thread::spawn(move || {
        let result = closing.close();
        let _ = tx.send(());
        result
    });
    // Bounded wait (no sleep) until close has asked the thread to stop.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !store.is_closing() {
        assert!(std::time::Instant::now() < deadline, "close never began");
        std::thread::yield_now();
    }
    let before = rig.remote.counts();
    rig.remote.set_paused(false);
    rx.recv_timeout(Duration::from_secs(30))
        .expect("close did not return within 30 s of the held call ending");
    closer.join().unwrap().unwrap();
    let after = rig.remote.counts();
    let others = |c: wharf_log_store::remote::RemoteCallCounts| {
        c.gets + c.lists + c.streamed_lists + c.deletes + c.get_ranges
    };
    assert!(
        others(after) == others(before) && after.puts <= before.puts + 1,
        "calls after close was asked: before {before:?}, after {after:?}"
    );
    // Whatever was committed, the bucket's manifest names only objects that are there.
    let keys = rig.keys("topics/");
    for key in keys.iter().filter(|k| k.ends_with("/manifest")) {
        let manifest = RemoteManifest::decode(&rig.object(key), key).unwrap();
        let prefix = key.trim_end_matches("manifest");
        for named in named_keys(&manifest, prefix) {
            assert!(
                keys.contains(&named),
                "{named} is named but missing: {keys:?}"
            );
        }
    }
}

/// DeleteRecords into the remote tier: the next round drops the segments wholly below the new
/// log start from the manifest (then deletes their objects) and records the start inside the
/// first kept segment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_below_the_local_data_shrinks_the_manifest() {
    let rig = Rig::new();
    let store = rig.open();
    store.create_stream("s").unwrap();
    let topic = store.create_topic(Ident::Id(0), "t", 1, tiered()).unwrap();
    append_batches(&store, 4, 120).await;
    store.tier_once(now_us()).unwrap();
    let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
    assert_eq!((p.log_start_offset(), p.local_log_start_offset()), (0, 6));
    assert_eq!(p.delete_records_before(5).unwrap(), 5);

    let report = store.tier_once(now_us()).unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.remote_deleted_segments, 2, "[0,2) and [2,4)");
    let prefix = prefix(topic.created_at, 0);
    let manifest = rig.manifest(&prefix);
    assert_eq!(manifest.segments.len(), 1);
    assert_eq!(manifest.start_offset(), Some(5));
    assert_eq!(
        rig.keys(&prefix).len(),
        1 + 2,
        "manifest and the kept segment"
    );
    assert_eq!(p.log_start_offset(), 5);
    let first = read_all(&p, 0);
    assert_eq!(first.len(), 2, "the batch holding 5, then the active one");
    store.close().unwrap();
}

/// The key of every object the manifest under `prefix` names, and the manifest's own.
fn named_keys(manifest: &RemoteManifest, prefix: &str) -> Vec<String> {
    let mut keys = vec![format!("{prefix}manifest")];
    for s in &manifest.segments {
        keys.push(format!(
            "{prefix}{:020}-{}.log",
            s.base_offset, s.upload_epoch
        ));
        keys.push(format!(
            "{prefix}{:020}-{}.index",
            s.base_offset, s.upload_epoch
        ));
    }
    keys.sort();
    keys
}

fn metric(
    store: &LogStore,
    pick: fn(&wharf_log_store::RemoteMetrics) -> &std::sync::atomic::AtomicU64,
) -> u64 {
    wharf_log_store::RemoteMetrics::get(pick(&store.metrics().remote))
}

/// Runs a round on another thread while the remote store holds its first call; returns the
/// round's handle once that call is held.
fn round_held_in_flight(
    rig: &Rig,
    store: &LogStore,
    now: u64,
) -> std::thread::JoinHandle<wharf_log_store::remote::TierReport> {
    rig.remote.set_paused(true);
    let s = store.clone();
    let round = std::thread::spawn(move || s.tier_once(now).unwrap());
    assert!(
        rig.remote.wait_for_held_calls(1, Duration::from_secs(30)),
        "the round made no call to the store within 30 s"
    );
    round
}

/// Review 3: a topic deleted while a round is in flight (held in a segment upload) keeps its
/// deletion record, checked against the catalog as it is when processed. Bound: after the
/// next round the topic's prefix is empty and no record is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_deleted_during_a_round_loses_its_objects() {
    let rig = Rig::new();
    let store = rig.open();
    store.create_stream("s").unwrap();
    let topic = store.create_topic(Ident::Id(0), "t", 1, tiered()).unwrap();
    append_batches(&store, 3, 200).await;
    store.tier_once(now_us()).unwrap();
    let topic_prefix = format!("topics/0-0-{}/", topic.created_at);
    assert!(!rig.keys(&topic_prefix).is_empty());
    append_batches(&store, 1, 210).await;

    let round = round_held_in_flight(&rig, &store, now_us());
    store.delete_topic(Ident::Id(0), Ident::Id(0)).unwrap();
    rig.remote.set_paused(false);
    round.join().unwrap();

    let report = store.tier_once(now_us() + 10 * SEC).unwrap();
    assert_eq!(report.prefixes_deleted, 1, "{report:?}");
    assert!(
        rig.keys(&topic_prefix).is_empty(),
        "{:?}",
        rig.keys(&topic_prefix)
    );
    let record = read_durable(&rig.data.join("remote-deletions"))
        .unwrap()
        .expect("record");
    assert!(!String::from_utf8_lossy(&record).contains(&topic_prefix));
    assert_eq!(
        metric(&store, |m| &m.remote_deleted_objects),
        report.objects_deleted,
        "a topic deletion's objects are counted"
    );
    store.close().unwrap();
}

/// Review 5: the object store down does not stop the local retention of segments already
/// uploaded (their installed manifest is durable); only the remote work waits. Bound: all 5
/// uploaded segments past local.retention.ms leave local disk, the one not uploaded stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_retention_of_uploaded_segments_goes_on_while_the_store_is_down() {
    let rig = Rig::new();
    let store = rig.open();
    store.create_stream("s").unwrap();
    let settings = TopicSettings {
        local_retention_bytes: None,
        local_retention: Some(Duration::from_secs(3600)),
        ..tiered()
    };
    store.create_topic(Ident::Id(0), "t", 1, settings).unwrap();
    append_batches(&store, 6, 300).await;
    let t0 = now_us();
    let report = store.tier_once(t0).unwrap();
    assert_eq!(
        (report.uploaded_segments, report.local_deleted_segments),
        (5, 0),
        "{report:?}"
    );
    append_batches(&store, 1, 310).await;
    rig.remote.set_down(true);

    let report = store.tier_once(t0 + 2 * 3600 * SEC).unwrap();
    assert_eq!(report.failed_partitions.len(), 1, "{report:?}");
    assert_eq!(report.local_deleted_segments, 5, "{report:?}");
    assert_eq!(metric(&store, |m| &m.local_deleted_segments), 5);
    assert_eq!(
        local_logs(&rig.partition_dir(0)).len(),
        2,
        "the segment not uploaded and the active one stay"
    );
    let status = store.remote_status().unwrap();
    assert_eq!(status.pending_segments, 1);
    store.close().unwrap();
}

/// Review 6: each uploaded segment is committed (manifest stored, then installed) as soon as
/// its objects are up, so a kill keeps what finished. Simulated kill: every partition put
/// after the 9th fails (3 segments x log, index, manifest), then the store is reopened.
/// Bound: the round after reopen uploads only the 3 segments not committed, not all 6.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_mid_round_keeps_the_segments_already_committed() {
    let rig = Rig::new();
    let created = {
        let store = rig.open();
        store.create_stream("s").unwrap();
        let topic = store.create_topic(Ident::Id(0), "t", 1, tiered()).unwrap();
        append_batches(&store, 7, 400).await;
        rig.remote.fail_puts_matching_after(Some("topics/"), 9);
        let report = store.tier_once(now_us()).unwrap();
        assert_eq!(report.uploaded_segments, 3, "{report:?}");
        assert_eq!(report.failed_partitions.len(), 1, "{report:?}");
        let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
        assert_eq!(p.remote_manifest().segments.len(), 3, "installed locally");
        assert_eq!(
            local_logs(&rig.partition_dir(0)).len(),
            4,
            "3 committed went"
        );
        drop(p);
        store.close().unwrap();
        topic.created_at
    };
    let prefix = prefix(created, 0);
    assert_eq!(rig.manifest(&prefix).segments.len(), 3);
    rig.remote.fail_puts_matching(None);

    let store = rig.open();
    let report = store.tier_once(now_us()).unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.uploaded_segments, 3, "only what was not committed");
    assert_eq!(report.orphans_deleted, 0, "{report:?}");
    let manifest = rig.manifest(&prefix);
    assert_eq!(manifest.segments.len(), 6);
    assert_eq!(rig.keys(&prefix), named_keys(&manifest, &prefix));
    store.close().unwrap();
}

/// Review 10: a purge while a segment upload is in flight: the round's commit is checked
/// against the epoch under the partition's manifest-install lock, so the bucket never gets a
/// manifest naming purged data, and the refused commit is no upload failure. Bound: right
/// after the round the remote manifest is the purge's (empty, epoch 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_during_an_upload_leaves_the_purges_manifest_in_the_bucket() {
    let rig = Rig::new();
    let store = rig.open();
    store.create_stream("s").unwrap();
    let topic = store.create_topic(Ident::Id(0), "t", 1, tiered()).unwrap();
    append_batches(&store, 3, 500).await;
    store.tier_once(now_us()).unwrap();
    let prefix = prefix(topic.created_at, 0);
    assert_eq!(rig.manifest(&prefix).epoch, 2);
    append_batches(&store, 1, 510).await;
    let failures = metric(&store, |m| &m.upload_failures);

    let round = round_held_in_flight(&rig, &store, now_us());
    store.purge_topic(Ident::Id(0), Ident::Id(0)).unwrap();
    rig.remote.set_paused(false);
    let report = round.join().unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.uploaded_segments, 0, "{report:?}");
    assert_eq!(metric(&store, |m| &m.upload_failures), failures);
    let manifest = rig.manifest(&prefix);
    assert_eq!(manifest.epoch, 3, "the purge's manifest");
    assert!(manifest.segments.is_empty(), "{manifest:?}");

    let deleted = metric(&store, |m| &m.remote_deleted_objects);
    let report = store.tier_once(now_us()).unwrap();
    assert_eq!(report.orphans_deleted, 2 * 2 + 2, "{report:?}");
    assert_eq!(rig.keys(&prefix), vec![format!("{prefix}manifest")]);
    assert_eq!(
        metric(&store, |m| &m.remote_deleted_objects) - deleted,
        report.orphans_deleted,
        "a purge's objects are counted"
    );
    store.close().unwrap();
}

/// Review 13b: no prefix is emptied in a round whose catalog copy failed: the bucket's
/// catalog must never name a topic whose objects are gone. Bound: the deleted topic's
/// objects stay until a round has stored the new catalog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_topic_objects_are_deleted_while_the_catalog_copy_fails() {
    let rig = Rig::new();
    let store = rig.open();
    store.create_stream("s").unwrap();
    let topic = store.create_topic(Ident::Id(0), "t", 1, tiered()).unwrap();
    append_batches(&store, 3, 600).await;
    store.tier_once(now_us()).unwrap();
    let topic_prefix = format!("topics/0-0-{}/", topic.created_at);
    let before = rig.keys(&topic_prefix);
    assert!(!before.is_empty());
    let t0 = now_us();

    rig.remote.fail_puts_matching(Some(CATALOG_KEY));
    store.delete_topic(Ident::Id(0), Ident::Id(0)).unwrap();
    let report = store.tier_once(t0).unwrap();
    assert!(!report.succeeded());
    assert_eq!(report.prefixes_deleted, 0, "{report:?}");
    assert_eq!(rig.keys(&topic_prefix), before);

    rig.remote.fail_puts_matching(None);
    let report = store.tier_once(t0 + 10 * SEC).unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert!(report.catalog_uploaded);
    assert_eq!(report.prefixes_deleted, 1, "{report:?}");
    assert!(rig.keys(&topic_prefix).is_empty());
    assert_eq!(
        rig.object(CATALOG_KEY),
        std::fs::read(rig.data.join("catalog")).unwrap()
    );
    store.close().unwrap();
}

/// Review 14: an upload error (here the second segment's index put) leaves objects that may
/// never be named (the segment is gone by the retry: DeleteRecords); the partition's sweep is
/// then due. Bound: after recovery every key under the prefix is named by the manifest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_error_makes_the_next_round_sweep() {
    let rig = Rig::new();
    let store = rig.open();
    store.create_stream("s").unwrap();
    let topic = store.create_topic(Ident::Id(0), "t", 1, tiered()).unwrap();
    append_batches(&store, 4, 700).await;
    rig.remote.fail_puts_matching_after(Some(".index"), 1);
    let t0 = now_us();
    let report = store.tier_once(t0).unwrap();
    assert_eq!(report.uploaded_segments, 1, "{report:?}");
    assert_eq!(report.failed_partitions.len(), 1, "{report:?}");
    let prefix = prefix(topic.created_at, 0);
    let stray = format!("{prefix}{:020}-2.log", 2);
    assert!(
        rig.keys(&prefix).contains(&stray),
        "{:?}",
        rig.keys(&prefix)
    );
    rig.remote.fail_puts_matching(None);
    let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
    assert_eq!(p.delete_records_before(8).unwrap(), 8);

    let report = store.tier_once(t0 + 10 * SEC).unwrap();
    assert!(report.succeeded(), "{report:?}");
    let manifest = rig.manifest(&prefix);
    assert_eq!(rig.keys(&prefix), named_keys(&manifest, &prefix));
    store.close().unwrap();
}

/// Review 15: the first round after open reads the remote manifest before it overwrites or
/// sweeps: with the local `remote-manifest` lost while the bucket's names data only it holds,
/// the round refuses (error, alert) instead of sweeping. Bound: no object deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_local_manifest_is_refused_not_swept() {
    let rig = Rig::new();
    let created = {
        let store = rig.open();
        store.create_stream("s").unwrap();
        let topic = store.create_topic(Ident::Id(0), "t", 1, tiered()).unwrap();
        append_batches(&store, 4, 800).await;
        let report = store.tier_once(now_us()).unwrap();
        assert_eq!(report.local_deleted_segments, 3, "{report:?}");
        store.close().unwrap();
        topic.created_at
    };
    std::fs::remove_file(rig.partition_dir(0).join("remote-manifest")).unwrap();
    let prefix = prefix(created, 0);
    let before = rig.keys(&prefix);
    assert_eq!(before.len(), 1 + 2 * 3);

    let store = rig.open();
    rig.remote.reset_counts();
    let report = store.tier_once(now_us()).unwrap();
    assert_eq!(report.failed_partitions.len(), 1, "{report:?}");
    assert!(
        report.errors.iter().any(|e| e.contains("refusing")),
        "{report:?}"
    );
    assert_eq!(rig.remote.counts().deletes, 0, "{:?}", rig.remote.counts());
    assert_eq!(rig.keys(&prefix), before);
    assert_eq!(rig.manifest(&prefix).segments.len(), 3, "not overwritten");
    assert!(metric(&store, |m| &m.failing_rounds) > 0, "the alert is up");
    // Still refused on the retry: the partition's data is never swept away.
    let report = store.tier_once(now_us() + 3600 * SEC).unwrap();
    assert_eq!(report.failed_partitions.len(), 1, "{report:?}");
    assert_eq!(rig.keys(&prefix), before);
    store.close().unwrap();
}

/// Review 15, the other refusal: a local `remote-manifest` older than the bucket's by more
/// than a crash can leave (a data-directory backup put back) is refused on the first round,
/// not used to sweep. Bound: no object deleted, the bucket's manifest untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_manifest_more_than_one_epoch_ahead_is_refused() {
    let rig = Rig::new();
    let settings = TopicSettings {
        local_retention_bytes: None,
        ..tiered()
    };
    let (created, old) = {
        let store = rig.open();
        store.create_stream("s").unwrap();
        let topic = store.create_topic(Ident::Id(0), "t", 1, settings).unwrap();
        append_batches(&store, 2, 900).await;
        store.tier_once(now_us()).unwrap();
        let old = std::fs::read(rig.partition_dir(0).join("remote-manifest")).unwrap();
        append_batches(&store, 3, 910).await;
        let report = store.tier_once(now_us()).unwrap();
        assert_eq!(report.uploaded_segments, 3, "{report:?}");
        store.close().unwrap();
        (topic.created_at, old)
    };
    std::fs::write(rig.partition_dir(0).join("remote-manifest"), old).unwrap();
    let prefix = prefix(created, 0);
    let before = rig.keys(&prefix);
    assert_eq!(rig.manifest(&prefix).epoch, 4);

    let store = rig.open();
    rig.remote.reset_counts();
    let report = store.tier_once(now_us()).unwrap();
    assert_eq!(report.failed_partitions.len(), 1, "{report:?}");
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.contains("above the local 1")),
        "{report:?}"
    );
    assert_eq!(rig.remote.counts().deletes, 0, "{:?}", rig.remote.counts());
    assert_eq!(rig.keys(&prefix), before);
    assert_eq!(rig.manifest(&prefix).epoch, 4, "not overwritten");
    store.close().unwrap();
}

/// A partition removed while the store is down, then added back with the same number: the
/// new partition takes the prefix (the removed one's deletion record is taken back) and its
/// first round sweeps what the removed one left, rather than refusing the old manifest as
/// not its own. Bound: afterwards every key under the prefix is named by the new manifest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_added_back_sweeps_what_the_removed_one_left() {
    let rig = Rig::new();
    let store = rig.open();
    store.create_stream("s").unwrap();
    let topic = store.create_topic(Ident::Id(0), "t", 2, tiered()).unwrap();
    let p1 = store.partition(Ident::Id(0), Ident::Id(0), 1).unwrap();
    for i in 0..4 {
        p1.append(seeded_batch(1000 + i, 1, 50)).await.unwrap();
    }
    drop(p1);
    store.tier_once(now_us()).unwrap();
    let prefix1 = prefix(topic.created_at, 1);
    assert_eq!(rig.manifest(&prefix1).epoch, 3);
    rig.remote.set_down(true);
    store
        .remove_partitions(Ident::Id(0), Ident::Id(0), 1)
        .unwrap();
    // A round in between forgets the removed partition's state.
    let report = store.tier_once(now_us()).unwrap();
    assert_eq!(report.prefixes_deleted, 0, "the store is down");
    store.add_partitions(Ident::Id(0), Ident::Id(0), 1).unwrap();
    let p1 = store.partition(Ident::Id(0), Ident::Id(0), 1).unwrap();
    for i in 0..2 {
        p1.append(seeded_batch(1100 + i, 1, 50)).await.unwrap();
    }
    rig.remote.set_down(false);

    let report = store.tier_once(now_us() + 3600 * SEC).unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.uploaded_segments, 1, "{report:?}");
    let manifest = rig.manifest(&prefix1);
    assert_eq!(manifest.epoch, 1, "the new partition's first commit");
    assert_eq!(rig.keys(&prefix1), named_keys(&manifest, &prefix1));
    assert_eq!(read_all(&p1, 0).len(), 2, "the new partition's data only");
    store.close().unwrap();
}

/// Fails the next `armed` operations `op` on a path containing `needle`.
#[derive(Debug)]
struct FailNext {
    op: FileOp,
    needle: &'static str,
    armed: std::sync::atomic::AtomicU64,
}

impl FailNext {
    fn new(op: FileOp, needle: &'static str) -> Arc<FailNext> {
        Arc::new(FailNext {
            op,
            needle,
            armed: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn arm(&self, n: u64) {
        self.armed.store(n, std::sync::atomic::Ordering::SeqCst);
    }
}

impl FileHook for FailNext {
    fn before(&self, op: FileOp, path: &Path) -> std::io::Result<()> {
        use std::sync::atomic::Ordering;
        if op == self.op
            && path.to_string_lossy().contains(self.needle)
            && self
                .armed
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(std::io::Error::other("test fault"));
        }
        Ok(())
    }
}

/// Review N3. Bound: every segment the bucket's manifest names has its objects. A manifest
/// put whose local install fails leaves the bucket one epoch ahead; the next round stores the
/// installed manifest again before it sweeps by it (its uploads then failing changes nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_install_is_republished_before_the_next_sweep() {
    let rig = Rig::new();
    let hook = FailNext::new(FileOp::Rename, "remote-manifest");
    let store = rig.open_with_disk(Disk::with_hook(Arc::clone(&hook) as Arc<dyn FileHook>));
    store.create_stream("s").unwrap();
    let topic = store.create_topic(Ident::Id(0), "t", 1, tiered()).unwrap();
    append_batches(&store, 2, 1200).await;
    let t0 = now_us();
    let report = store.tier_once(t0).unwrap();
    assert_eq!(report.uploaded_segments, 1, "{report:?}");
    let prefix = prefix(topic.created_at, 0);
    assert_eq!(rig.manifest(&prefix).epoch, 1);

    append_batches(&store, 1, 1210).await;
    hook.arm(1);
    let report = store.tier_once(t0 + SEC).unwrap();
    assert_eq!(
        report.failed_partitions.len(),
        1,
        "install refused: {report:?}"
    );
    assert_eq!(rig.manifest(&prefix).epoch, 2, "the put went through");

    rig.remote.fail_puts_matching(Some(".log"));
    let report = store.tier_once(t0 + 10 * SEC).unwrap();
    assert_eq!(report.failed_partitions.len(), 1, "{report:?}");
    let manifest = rig.manifest(&prefix);
    let keys = rig.keys(&prefix);
    for key in named_keys(&manifest, &prefix) {
        assert!(
            keys.contains(&key),
            "the bucket's manifest (epoch {}) names {key}, which is gone: {keys:?}",
            manifest.epoch
        );
    }
    rig.remote.fail_puts_matching(None);
    let report = store.tier_once(t0 + 20 * SEC).unwrap();
    assert!(report.succeeded(), "{report:?}");
    store.close().unwrap();
}

/// Review N10. Bound: `upload_failures` counts uploads only, and the backoff is the uploads'.
/// A local-retention error of a partition waiting out its backoff is reported (round errors)
/// but neither counted as an upload failure nor pushes its retry further out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_retention_errors_in_backoff_are_no_upload_failures() {
    let mut rig = Rig::new();
    rig.settings.retry_backoff = Duration::from_secs(2 * 3600);
    rig.settings.retry_backoff_max = Duration::from_secs(8 * 3600);
    let hook = FailNext::new(FileOp::Remove, ".log");
    let store = rig.open_with_disk(Disk::with_hook(Arc::clone(&hook) as Arc<dyn FileHook>));
    store.create_stream("s").unwrap();
    let settings = TopicSettings {
        local_retention_bytes: None,
        local_retention: Some(Duration::from_secs(3600)),
        ..tiered()
    };
    store.create_topic(Ident::Id(0), "t", 1, settings).unwrap();
    append_batches(&store, 4, 1300).await;
    let t0 = now_us();
    let report = store.tier_once(t0).unwrap();
    assert_eq!(report.uploaded_segments, 3, "{report:?}");
    append_batches(&store, 1, 1310).await;
    rig.remote.set_down(true);
    let report = store.tier_once(t0 + 10 * SEC).unwrap();
    assert_eq!(report.failed_partitions.len(), 1, "{report:?}");
    assert_eq!(metric(&store, |m| &m.upload_failures), 1);

    // In backoff (until t0 + 10 s + 2 h), past the local retention: a local deletion fails.
    hook.arm(1);
    let report = store.tier_once(t0 + 90 * 60 * SEC).unwrap();
    assert_eq!(report.backed_off_partitions.len(), 1, "{report:?}");
    assert_eq!(
        metric(&store, |m| &m.upload_failures),
        1,
        "a local error is no upload failure: {report:?}"
    );
    assert!(
        report.errors.iter().any(|e| e.contains("local retention")),
        "{report:?}"
    );

    // The backoff is still the upload's: over at t0 + 10 s + 2 h.
    let report = store.tier_once(t0 + 2 * 3600 * SEC + 20 * SEC).unwrap();
    assert!(report.backed_off_partitions.is_empty(), "{report:?}");
    assert_eq!(report.failed_partitions.len(), 1, "the store is still down");
    store.close().unwrap();
}

/// Review N4. Bound: a re-added partition is refused by no round. The mark that lets its first
/// round sweep the removed partition's objects (instead of checking their manifest) survives a
/// restart before that round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_added_back_is_not_refused_after_a_restart() {
    let rig = Rig::new();
    let store = rig.open();
    store.create_stream("s").unwrap();
    let topic = store.create_topic(Ident::Id(0), "t", 2, tiered()).unwrap();
    let p1 = store.partition(Ident::Id(0), Ident::Id(0), 1).unwrap();
    for i in 0..3 {
        p1.append(seeded_batch(1400 + i, 1, 50)).await.unwrap();
    }
    drop(p1);
    store.tier_once(now_us()).unwrap();
    let prefix1 = prefix(topic.created_at, 1);
    assert_eq!(rig.manifest(&prefix1).epoch, 2);
    store
        .remove_partitions(Ident::Id(0), Ident::Id(0), 1)
        .unwrap();
    store.add_partitions(Ident::Id(0), Ident::Id(0), 1).unwrap();
    let p1 = store.partition(Ident::Id(0), Ident::Id(0), 1).unwrap();
    for i in 0..2 {
        p1.append(seeded_batch(1500 + i, 1, 50)).await.unwrap();
    }
    drop(p1);
    store.close().unwrap();
    drop(store);

    let store = rig.open();
    let t = now_us() + 3600 * SEC;
    let report = store.tier_once(t).unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.uploaded_segments, 1, "{report:?}");
    let manifest = rig.manifest(&prefix1);
    assert_eq!(manifest.epoch, 1, "the new partition's first commit");
    assert_eq!(rig.keys(&prefix1), named_keys(&manifest, &prefix1));
    // The mark is gone once swept: the next restart checks the bucket's (own) manifest.
    store.close().unwrap();
    drop(store);
    let store = rig.open();
    let report = store.tier_once(t + SEC).unwrap();
    assert!(report.succeeded(), "{report:?}");
    store.close().unwrap();
}

/// Review N7. Bound: no listing is held whole. The orphan sweep and a deleted topic's prefix
/// go through the streamed listing (`list_each`), never the collecting `list`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeps_and_prefix_deletions_stream_the_listing() {
    let rig = Rig::new();
    let store = rig.open();
    store.create_stream("s").unwrap();
    let topic = store.create_topic(Ident::Id(0), "t", 1, tiered()).unwrap();
    append_batches(&store, 3, 1600).await;
    let prefix = prefix(topic.created_at, 0);
    let stray = format!("{prefix}{:020}-9.log", 0);
    rig.remote
        .inner()
        .put(&stray, &mut &b"orphan"[..], 6)
        .unwrap();
    rig.remote.reset_counts();
    let t0 = now_us();
    let report = store.tier_once(t0).unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.orphans_deleted, 1, "{report:?}");
    store.delete_topic(Ident::Id(0), Ident::Id(0)).unwrap();
    let report = store.tier_once(t0 + SEC).unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.prefixes_deleted, 1, "{report:?}");
    assert!(rig.keys(&prefix).is_empty());
    let counts = rig.remote.counts();
    assert_eq!(counts.lists, 0, "nothing listed whole: {counts:?}");
    assert!(counts.streamed_lists >= 2, "{counts:?}");
    store.close().unwrap();
}
