//! The bound on a partition's remote manifest (`RemoteSettings::manifest_max_segments`): a
//! partition at the bound stops uploading with an alert and keeps its local data. (That a
//! status copies no manifest is a unit test in `partition.rs`, where clones can be counted.)

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::remote::{folder_remote, now_us};
use common::*;
use wharf_log_store::remote::{
    FaultyRemote, RemoteManifest, RemoteSettings, RemoteStore, RemoteTier,
};
use wharf_log_store::{Ident, LogStore, StoreConfig, TopicSettings};

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

    fn open(&self, manifest_max_segments: usize) -> LogStore {
        let config = StoreConfig {
            remote: Some(RemoteTier {
                store: Arc::clone(&self.remote) as Arc<dyn RemoteStore>,
                settings: RemoteSettings {
                    retry_backoff: Duration::from_secs(1),
                    retry_backoff_max: Duration::from_secs(4),
                    task_interval: Duration::from_secs(3600),
                    manifest_max_segments,
                    ..RemoteSettings::default()
                },
            }),
            ..config()
        };
        LogStore::open(self.tmp.path().join("data"), config)
            .unwrap()
            .0
    }
}

/// Every batch in its own segment; local copies are kept (no local retention applies).
fn tiered() -> TopicSettings {
    TopicSettings {
        segment_size: Some(1),
        remote_storage: true,
        ..TopicSettings::default()
    }
}

async fn append_batches(store: &LogStore, n: usize) {
    let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
    for i in 0..n {
        p.append(seeded_batch(i as u64, 2, 100)).await.unwrap();
    }
}

/// Bound: `manifest_max_segments`. A partition whose manifest is full uploads nothing more:
/// the round fails for it (a warning, `upload_failures`, `wharf_remote_failing_rounds` > 0),
/// its local data stays, and the manifest written is one the next open reads. A raised bound
/// lets it go on.
#[tokio::test]
async fn a_partition_at_its_manifest_bound_stops_uploading_with_an_alert() {
    let rig = Rig::new();
    let store = rig.open(3);
    store.create_stream("s").unwrap();
    let topic = store.create_topic(Ident::Id(0), "t", 1, tiered()).unwrap();
    append_batches(&store, 6).await;
    let now = now_us();
    let report = store.tier_once(now).unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.uploaded_segments, 3, "no more than the bound");

    let puts = rig.remote.counts().puts;
    let later = now + 60_000_000;
    let report = store.tier_once(later).unwrap();
    assert!(!report.succeeded());
    assert_eq!(report.uploaded_segments, 0);
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.contains("manifest_max_segments")),
        "{report:?}"
    );
    assert_eq!(
        rig.remote.counts().puts,
        puts,
        "nothing uploaded at the bound"
    );
    let m = &store.metrics().remote;
    assert_eq!(m.upload_failures.load(Ordering::Relaxed), 1);
    assert!(m.failing_rounds.load(Ordering::Relaxed) > 0, "the alert");
    let status = store.remote_status().unwrap();
    assert_eq!((status.remote_segments, status.pending_segments), (3, 2));

    let key = format!("topics/0-0-{}/0/manifest", topic.created_at);
    let remote = rig.remote.inner().get(&key).unwrap().unwrap();
    assert_eq!(
        RemoteManifest::decode(&remote, &key)
            .unwrap()
            .segments
            .len(),
        3
    );
    store.close().unwrap();
    drop(store);

    let store = rig.open(10);
    let report = store.tier_once(later + 60_000_000).unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.uploaded_segments, 2);
    assert_eq!(
        store
            .metrics()
            .remote
            .failing_rounds
            .load(Ordering::Relaxed),
        0
    );
    store.close().unwrap();
}

/// Review N1. Bound: `manifest_max_segments`, freed by the total retention. A partition whose
/// manifest is full still gets the total retention: lowering `retention.ms` (message expiry)
/// drops its expired remote segments, and its uploads resume at the next round, all without
/// a restart.
#[tokio::test]
async fn lowering_the_retention_frees_a_full_manifest_without_a_restart() {
    let rig = Rig::new();
    let store = rig.open(3);
    store.create_stream("s").unwrap();
    let topic = store.create_topic(Ident::Id(0), "t", 1, tiered()).unwrap();
    append_batches(&store, 6).await;
    let now = now_us();
    let report = store.tier_once(now).unwrap();
    assert_eq!(report.uploaded_segments, 3, "{report:?}");
    let report = store.tier_once(now + 60_000_000).unwrap();
    assert!(!report.succeeded(), "full: {report:?}");

    store
        .update_topic(
            Ident::Id(0),
            Ident::Id(0),
            None,
            TopicSettings {
                message_expiry: Some(Duration::from_secs(3600)),
                ..tiered()
            },
        )
        .unwrap();
    // Past the backoff and past the new retention.
    let later = now + 2 * 3600 * 1_000_000;
    let report = store.tier_once(later).unwrap();
    assert_eq!(report.remote_deleted_segments, 3, "{report:?}");
    assert!(report.succeeded(), "room again, no alert: {report:?}");
    let key = format!("topics/0-0-{}/0/manifest", topic.created_at);
    let remote = rig.remote.inner().get(&key).unwrap().unwrap();
    assert!(RemoteManifest::decode(&remote, &key)
        .unwrap()
        .segments
        .is_empty());

    let report = store.tier_once(later + 1_000_000).unwrap();
    assert_eq!(report.uploaded_segments, 2, "uploads resume: {report:?}");
    store.close().unwrap();
}
