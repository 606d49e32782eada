//! Compaction under faults and contention (review 17): a failed manifest commit, a cleaning
//! with nothing to do, batches the record format cannot read, leftovers in a reused partition
//! folder, a damaged manifest, a failed swap, and what waits (or must not wait) for a cleaning
//! in progress: cached reads, retention and appends.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::toy::*;
use wharf_log_store::compaction::{BatchFacts, CleanRecord, CodecError, RecordKeys};
use wharf_log_store::{
    CleanerConfig, CleanupPolicy, Disk, FileHook, FileOp, Ident, LogStore, Partition, PartitionKey,
    Ratio, StoreConfig, StoreError, StoredBatch, TopicSettings,
};

/// How long a bounded wait in these tests may take before it fails.
const WAIT: Duration = Duration::from_secs(60);
/// `delete.retention.ms` of these tests: one hour.
const RETENTION: Duration = Duration::from_secs(3600);

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn config(disk: Disk) -> StoreConfig {
    StoreConfig {
        background_tasks: false,
        disk,
        cleaner: CleanerConfig {
            dedupe_buffer_size: 1 << 20,
            min_cleanable_dirty_ratio: Ratio::new(0.0).unwrap(),
            delete_retention: RETENTION,
            ..CleanerConfig::default()
        },
        ..StoreConfig::default()
    }
}

/// A compacted topic whose every append is its own segment (sealed by age), so that one
/// cleaning merges many segments into one group.
fn settings(delete: bool) -> TopicSettings {
    TopicSettings {
        segment_size: Some(1 << 20),
        segment_max_age: Some(Duration::from_micros(1)),
        cleanup_policy: CleanupPolicy {
            delete,
            compact: true,
        },
        ..TopicSettings::default()
    }
}

fn value(key: u8, i: usize) -> Toy {
    Toy::Value {
        key: vec![b'k', key],
        value: format!("v{i}").into_bytes(),
    }
}

/// A store in `dir` with topic 0 (`settings`) holding `batches` one-record batches over 4
/// keys: 12 batches make 11 sealed segments.
fn build(
    dir: &Path,
    disk: Disk,
    settings: &TopicSettings,
    batches: usize,
    rt: &tokio::runtime::Runtime,
) -> (LogStore, Arc<Partition>) {
    let (store, _) = LogStore::open(dir, config(disk)).unwrap();
    store.create_stream("s").unwrap();
    store
        .create_topic(Ident::Id(0), "t", 1, settings.clone())
        .unwrap();
    let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
    for i in 0..batches {
        rt.block_on(p.append(toy_batch(&[value((i % 4) as u8, i)], 0)))
            .unwrap();
    }
    (store, p)
}

fn reopen(dir: &Path) -> (LogStore, Arc<Partition>) {
    let (store, _) = LogStore::open(dir, config(Disk::real())).unwrap();
    let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
    (store, p)
}

fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if path.is_dir() {
                stack.push(path);
            } else if name.contains(".cleaned") || name.starts_with("cleaner-swap") {
                out.push(path);
            }
        }
    }
    out
}

fn partition_dir(root: &Path, partition: u32) -> PathBuf {
    root.join(format!("streams/0/topics/0/partitions/{partition}"))
}

/// Where the manifest's commit fails.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ManifestFault {
    /// The rename of `cleaner-swap.tmp` into place.
    Rename,
    /// The folder sync right after that rename (the manifest is visible, not durable).
    SyncAfterRename,
    /// That folder sync and every operation after it (a disk that went away).
    SyncAfterRenameAndAllAfter,
}

#[derive(Debug)]
struct ManifestHook {
    fault: ManifestFault,
    renamed: AtomicBool,
    fired: AtomicBool,
}

impl FileHook for ManifestHook {
    fn before(&self, op: FileOp, path: &Path) -> io::Result<()> {
        let err = || Err(io::Error::other("injected manifest fault"));
        if self.fired.load(Ordering::SeqCst) {
            return match self.fault {
                ManifestFault::SyncAfterRenameAndAllAfter => err(),
                _ => Ok(()),
            };
        }
        let is_manifest_rename =
            op == FileOp::Rename && path.file_name().is_some_and(|n| n == "cleaner-swap.tmp");
        if is_manifest_rename {
            if self.fault == ManifestFault::Rename {
                self.fired.store(true, Ordering::SeqCst);
                return err();
            }
            self.renamed.store(true, Ordering::SeqCst);
            return Ok(());
        }
        if op == FileOp::SyncDir && self.renamed.load(Ordering::SeqCst) {
            self.fired.store(true, Ordering::SeqCst);
            return err();
        }
        Ok(())
    }
}

/// Review 17 #1, the bound: a commit that failed at the manifest (its rename, or the folder
/// sync after it, once or for good) leaves, after a reopen, exactly the old log or exactly
/// the new one of a group of at least 2 segments: never lost segments.
#[test]
fn a_failed_manifest_commit_leaves_the_old_log_or_the_new_one() {
    let rt = rt();
    let keys = ToyKeys::default();
    let now = now_us() + 2 * RETENTION.as_micros() as u64;
    // The reference: the old log and the new one.
    let dir = tempfile::tempdir().unwrap();
    let (store, p) = build(dir.path(), Disk::real(), &settings(false), 12, &rt);
    let old = read_all(&p);
    let report = store.clean_once(&keys, now).unwrap();
    assert_eq!(report.cleaned.len(), 1, "{report:?}");
    assert!(
        report.cleaned[0].segments_before >= 2,
        "the group must span at least 2 segments: {report:?}"
    );
    let new = read_all(&p);
    assert!(
        new.len() < old.len(),
        "the reference cleaning removed nothing"
    );
    drop((p, store));

    for fault in [
        ManifestFault::Rename,
        ManifestFault::SyncAfterRename,
        ManifestFault::SyncAfterRenameAndAllAfter,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let hook = Arc::new(ManifestHook {
            fault,
            renamed: AtomicBool::new(false),
            fired: AtomicBool::new(false),
        });
        let (store, p) = build(
            dir.path(),
            Disk::with_hook(hook.clone()),
            &settings(false),
            12,
            &rt,
        );
        assert!(
            store.clean_once(&keys, now).is_err(),
            "{fault:?}: the cleaning succeeded"
        );
        assert!(
            hook.fired.load(Ordering::SeqCst),
            "{fault:?} never injected"
        );
        drop(p);
        let _ = store.close();
        drop(store);

        let (store, p) = reopen(dir.path());
        let got = read_all(&p);
        assert!(
            got == old || got == new,
            "{fault:?}: neither the old log nor the new one after a reopen:\n got {got:?}\n old {old:?}\n new {new:?}"
        );
        assert!(
            leftovers(dir.path()).is_empty(),
            "{fault:?}: {:?}",
            leftovers(dir.path())
        );
        // And the recovered partition cleans to the reference's result.
        store.clean_once(&keys, now).unwrap();
        assert_eq!(read_all(&p), new, "{fault:?}: cleaning again");
    }
}

/// Review 17 #2: with no tombstone and no marker, a cleaning leaves nothing due, so a second
/// cleaning with nothing new (even past `delete.retention.ms`) does nothing: 0 bytes written.
#[test]
fn a_second_cleaning_with_nothing_new_and_no_tombstones_does_nothing() {
    let rt = rt();
    let keys = ToyKeys::default();
    let dir = tempfile::tempdir().unwrap();
    let (store, _p) = build(dir.path(), Disk::real(), &settings(false), 12, &rt);
    let report = store.clean_once(&keys, now_us()).unwrap();
    assert_eq!(report.cleaned.len(), 1, "{report:?}");
    let written = store.cleaner_stats().bytes_written;
    assert!(written > 0);
    let later = now_us() + 2 * RETENTION.as_micros() as u64;
    let again = store.clean_once(&keys, later).unwrap();
    assert!(again.cleaned.is_empty(), "cleaned again: {again:?}");
    assert_eq!(store.cleaner_stats().bytes_written, written);
}

/// The toy format, except that a batch holding key `bad` cannot be read (after its records
/// were visited): what a producer's malformed batch looks like to the cleaner.
#[derive(Debug, Default)]
struct Picky(ToyKeys);

const BAD: &[u8] = b"bad";

impl RecordKeys for Picky {
    fn stable_offset(&self, p: PartitionKey) -> u64 {
        self.0.stable_offset(p)
    }

    fn scan(
        &self,
        p: PartitionKey,
        batch: &StoredBatch,
        visit: &mut dyn FnMut(CleanRecord<'_>),
    ) -> Result<BatchFacts, CodecError> {
        let mut bad = false;
        let facts = self.0.scan(p, batch, &mut |r| {
            if matches!(r, CleanRecord::Keyed { key, .. } if key == BAD) {
                bad = true;
            }
            visit(r);
        })?;
        if bad {
            return Err(CodecError("a record's offset delta is out of order".into()));
        }
        Ok(facts)
    }

    fn retain(
        &self,
        p: PartitionKey,
        batch: &StoredBatch,
        keep: &dyn Fn(u64) -> bool,
        keep_empty: bool,
    ) -> Result<Option<Bytes>, CodecError> {
        self.0.retain(p, batch, keep, keep_empty)
    }
}

/// Review 17 #3: a batch the record format cannot read is kept as it is and counted; the
/// partition's other batches are still compacted (the superseded values go).
#[test]
fn a_batch_the_format_cannot_read_is_kept_and_the_rest_compacted() {
    let rt = rt();
    let keys = Picky::default();
    let dir = tempfile::tempdir().unwrap();
    let (store, p) = build(dir.path(), Disk::real(), &settings(false), 6, &rt);
    let bad = Toy::Value {
        key: BAD.to_vec(),
        value: b"opaque".to_vec(),
    };
    // The unreadable batch also holds a superseded value of k0: nothing of it may go.
    let k0_old = value(0, 100);
    rt.block_on(p.append(toy_batch(&[k0_old.clone(), bad.clone()], 0)))
        .unwrap();
    for i in 6..12 {
        rt.block_on(p.append(toy_batch(&[value((i % 4) as u8, i)], 0)))
            .unwrap();
    }
    let before = read_all(&p);
    let report = store.clean_once(&keys, now_us()).unwrap();
    assert_eq!(report.cleaned.len(), 1, "{report:?}");
    assert_eq!(report.cleaned[0].batches_unreadable, 1, "{report:?}");
    assert_eq!(store.cleaner_stats().batches_unreadable, 1);
    let after = read_all(&p);
    assert!(after.len() < before.len(), "nothing compacted: {after:?}");
    for rec in [&bad, &k0_old] {
        assert!(
            after.iter().any(|(_, r)| r == rec),
            "the unreadable batch lost {rec:?}: {after:?}"
        );
    }
    // Every key's latest value is there.
    for k in 0..4u8 {
        let latest = before
            .iter()
            .rev()
            .find(|(_, r)| r.key() == Some(&[b'k', k][..]))
            .unwrap();
        assert!(after.contains(latest), "latest of k{k} gone");
    }
}

/// Review 17 #7: a manifest (and a checkpoint) left in the folder of a removed partition does
/// not touch the partition created later under the same index: its data survive a reopen.
#[test]
fn a_leftover_manifest_in_a_reused_partition_folder_deletes_nothing() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = LogStore::open(dir.path(), config(Disk::real())).unwrap();
    store.create_stream("s").unwrap();
    store
        .create_topic(Ident::Id(0), "t", 2, settings(false))
        .unwrap();
    store
        .remove_partitions(Ident::Id(0), Ident::Id(0), 1)
        .unwrap();
    // What a cleaning racing the removal could leave: a committed manifest replacing segment
    // 0 (with no output) and a checkpoint.
    let pdir = partition_dir(dir.path(), 1);
    std::fs::create_dir_all(&pdir).unwrap();
    let mut manifest = vec![1u8];
    manifest.extend_from_slice(&u64::MAX.to_le_bytes());
    manifest.extend_from_slice(&1u32.to_le_bytes());
    manifest.extend_from_slice(&0u64.to_le_bytes());
    wharf_log_store::write_durable(&pdir.join("cleaner-swap"), &manifest).unwrap();
    wharf_log_store::write_durable(&pdir.join("cleaner-checkpoint"), &[0u8; 16]).unwrap();

    store.add_partitions(Ident::Id(0), Ident::Id(0), 1).unwrap();
    let p = store.partition(Ident::Id(0), Ident::Id(0), 1).unwrap();
    for i in 0..3 {
        rt.block_on(p.append(toy_batch(&[value(i, i as usize)], 0)))
            .unwrap();
    }
    let written = read_all(&p);
    assert_eq!(written.len(), 3);
    drop(p);
    store.close().unwrap();
    drop(store);

    let (store, _) = LogStore::open(dir.path(), config(Disk::real())).unwrap();
    let p = store.partition(Ident::Id(0), Ident::Id(0), 1).unwrap();
    assert_eq!(
        read_all(&p),
        written,
        "the new partition's data were touched"
    );
    assert!(leftovers(dir.path()).is_empty());
}

/// Review 17 #8: a manifest damaged after its commit cannot be decided: the store refuses to
/// open (naming the manifest) rather than guess and maybe drop the log.
#[test]
fn a_damaged_manifest_refuses_to_open() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let (store, p) = build(dir.path(), Disk::real(), &settings(false), 3, &rt);
    drop(p);
    store.close().unwrap();
    drop(store);
    let manifest = partition_dir(dir.path(), 0).join("cleaner-swap");
    let mut m = vec![1u8];
    m.extend_from_slice(&0u64.to_le_bytes());
    m.extend_from_slice(&1u32.to_le_bytes());
    m.extend_from_slice(&0u64.to_le_bytes());
    wharf_log_store::write_durable(&manifest, &m).unwrap();
    let mut bytes = std::fs::read(&manifest).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&manifest, &bytes).unwrap();
    match LogStore::open(dir.path(), config(Disk::real())) {
        Err(StoreError::CorruptMetadata { path, reason }) => {
            assert_eq!(path, manifest);
            assert!(reason.contains("compaction swap"), "{reason}");
        }
        other => panic!("opened over a damaged manifest: {:?}", other.map(|_| ())),
    }
    assert!(manifest.exists(), "the damaged manifest was removed");
}

/// Fails the first removal of a replaced segment's log during a swap (after the cleaned log
/// was renamed over the first one).
#[derive(Debug, Default)]
struct FailRemove {
    armed: AtomicBool,
    fired: AtomicBool,
}

impl FileHook for FailRemove {
    fn before(&self, op: FileOp, path: &Path) -> io::Result<()> {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if self.armed.load(Ordering::SeqCst)
            && op == FileOp::Remove
            && name.ends_with(".log")
            && !self.fired.swap(true, Ordering::SeqCst)
        {
            return Err(io::Error::other("injected remove failure"));
        }
        Ok(())
    }
}

/// Review 17 #8: once a swap failed halfway, reads fail too (the view no longer matches the
/// files) until a reopen, which finishes the swap.
#[test]
fn reads_fail_after_a_swap_failed_halfway_until_a_reopen() {
    let rt = rt();
    let keys = ToyKeys::default();
    let dir = tempfile::tempdir().unwrap();
    let hook = Arc::new(FailRemove::default());
    let (store, p) = build(
        dir.path(),
        Disk::with_hook(hook.clone()),
        &settings(false),
        12,
        &rt,
    );
    let old = read_all(&p);
    hook.armed.store(true, Ordering::SeqCst);
    assert!(store.clean_once(&keys, now_us()).is_err());
    assert!(hook.fired.load(Ordering::SeqCst));
    assert!(
        matches!(p.read(0, 1 << 20), Err(StoreError::PartitionFailed(_))),
        "a read served the old view over renamed files"
    );
    drop(p);
    let _ = store.close();
    drop(store);
    let (_store, p) = reopen(dir.path());
    let got = read_all(&p);
    assert!(got.len() < old.len(), "the committed swap was not finished");
}

/// Holds the swap's rename of a cleaned log until released: a cleaning caught mid-swap
/// (holding the maintenance lock, the view's generation odd).
#[derive(Debug)]
struct HoldSwap {
    entered: Mutex<Option<mpsc::Sender<()>>>,
    release: Mutex<Option<mpsc::Receiver<()>>>,
}

impl FileHook for HoldSwap {
    fn before(&self, op: FileOp, path: &Path) -> io::Result<()> {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if op == FileOp::Rename && name.ends_with(".log.cleaned") {
            if let Some(tx) = self.entered.lock().unwrap().take() {
                let _ = tx.send(());
                if let Some(rx) = self.release.lock().unwrap().take() {
                    let _ = rx.recv_timeout(WAIT);
                }
            }
        }
        Ok(())
    }
}

/// Review 17 #9 and #4: while a cleaning is in the middle of a swap, a cached read (run on
/// async workers) answers `None` instead of waiting, retention skips the partition instead of
/// blocking the background thread, an append is not held up by a delete-records waiting for
/// the cleaning, nor a stream creation by a purge waiting for it. Each is bounded by WAIT;
/// without the fixes they wait for the swap, which is held until they answer: the bounded
/// wait fails. (The delete-records and purge threads may not be waiting yet when the append
/// and the creation run: those two checks can pass by luck, never fail wrongly.)
#[test]
fn nothing_on_the_hot_paths_waits_for_a_swap_in_progress() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let hook = Arc::new(HoldSwap {
        entered: Mutex::new(Some(entered_tx)),
        release: Mutex::new(Some(release_rx)),
    });
    let mut topic = settings(true);
    topic.message_expiry = Some(Duration::from_micros(1));
    let (store, p) = build(dir.path(), Disk::with_hook(hook), &topic, 12, &rt);
    let cleaner = {
        let store = store.clone();
        std::thread::spawn(move || store.clean_once(&ToyKeys::default(), now_us()))
    };
    entered
        .recv_timeout(WAIT)
        .expect("the cleaning never reached its swap");

    let (tx, rx) = mpsc::channel();
    let reader = Arc::clone(&p);
    std::thread::spawn(move || {
        let _ = tx.send(reader.read_cached(0, 1 << 20).map(|r| r.is_none()));
    });
    let cached = rx.recv_timeout(WAIT);

    let (tx, rx) = mpsc::channel();
    let retention = store.clone();
    std::thread::spawn(move || {
        let _ = tx.send(retention.enforce_retention(now_us() + 1_000_000).is_ok());
    });
    let retained = rx.recv_timeout(WAIT);

    let deleter = Arc::clone(&p);
    let delete = std::thread::spawn(move || deleter.delete_records_before(1));
    let (tx, rx) = mpsc::channel();
    let appender = Arc::clone(&p);
    let handle = rt.handle().clone();
    std::thread::spawn(move || {
        let r = handle.block_on(appender.append(toy_batch(&[value(0, 99)], 0)));
        let _ = tx.send(r.is_ok());
    });
    let appended = rx.recv_timeout(WAIT);

    // A purge waiting for the cleaning does not hold up other metadata changes.
    let purger = store.clone();
    let purge = std::thread::spawn(move || purger.purge_topic(Ident::Id(0), Ident::Id(0)));
    let (tx, rx) = mpsc::channel();
    let creator = store.clone();
    std::thread::spawn(move || {
        let _ = tx.send(creator.create_stream("other").is_ok());
    });
    let created = rx.recv_timeout(WAIT);

    let _ = release.send(());
    cleaner.join().unwrap().unwrap();
    delete.join().unwrap().unwrap();
    purge.join().unwrap().unwrap();
    assert_eq!(p.high_watermark(), 0, "the purge did not run");
    assert_eq!(
        created,
        Ok(true),
        "a metadata change waited for the cleaning"
    );
    assert!(
        matches!(cached, Ok(Ok(true))),
        "a cached read waited for the swap (or did not answer None): {cached:?}"
    );
    assert_eq!(retained, Ok(true), "retention waited for the cleaning");
    assert_eq!(appended, Ok(true), "an append waited for the cleaning");
}

/// Review 17b B1: retention leaves a partition whose swap failed half way alone. Its view
/// still lists segments whose files the swap merged: deleting the first by its old age would
/// delete the newer values merged into it, and leave a manifest the next start cannot finish.
#[test]
fn retention_leaves_a_partition_whose_swap_failed_alone() {
    let rt = rt();
    let keys = ToyKeys::default();
    let dir = tempfile::tempdir().unwrap();
    let hook = Arc::new(FailRemove::default());
    let mut compact_delete = settings(true);
    compact_delete.message_expiry = Some(Duration::from_secs(1));
    let (store, p) = build(
        dir.path(),
        Disk::with_hook(hook.clone()),
        &compact_delete,
        12,
        &rt,
    );
    let old = read_all(&p);
    hook.armed.store(true, Ordering::SeqCst);
    assert!(store.clean_once(&keys, now_us()).is_err());
    assert!(hook.fired.load(Ordering::SeqCst));
    let freed = store.enforce_retention(now_us() + 3_600_000_000).unwrap();
    assert_eq!(freed, 0, "retention deleted segments of a failed partition");
    drop(p);
    let _ = store.close();
    drop(store);
    let (_store, p) = reopen(dir.path());
    let got = read_all(&p);
    for k in 0..4u8 {
        let latest = old
            .iter()
            .rev()
            .find(|(_, r)| r.key() == Some(&[b'k', k][..]))
            .unwrap();
        assert!(got.contains(latest), "latest of k{k} gone: {got:?}");
    }
}

/// The toy format, with a gate: the first scan of a cleaning says so and waits until the
/// gate opens.
#[derive(Debug, Default)]
struct Gated {
    keys: ToyKeys,
    started: Mutex<Option<mpsc::Sender<()>>>,
    open: (Mutex<bool>, std::sync::Condvar),
}

impl RecordKeys for Gated {
    fn stable_offset(&self, p: PartitionKey) -> u64 {
        self.keys.stable_offset(p)
    }

    fn scan(
        &self,
        p: PartitionKey,
        batch: &StoredBatch,
        visit: &mut dyn FnMut(CleanRecord<'_>),
    ) -> Result<BatchFacts, CodecError> {
        if let Some(tx) = self.started.lock().unwrap().take() {
            tx.send(()).unwrap();
            let (lock, cv) = &self.open;
            let (open, timeout) = cv
                .wait_timeout_while(lock.lock().unwrap(), WAIT, |open| !*open)
                .unwrap();
            assert!(*open && !timeout.timed_out(), "the gate never opened");
        }
        self.keys.scan(p, batch, visit)
    }

    fn retain(
        &self,
        p: PartitionKey,
        batch: &StoredBatch,
        keep: &dyn Fn(u64) -> bool,
        keep_empty: bool,
    ) -> Result<Option<Bytes>, CodecError> {
        self.keys.retain(p, batch, keep, keep_empty)
    }
}

/// Review 17b B2: DeleteRecords waits for one batch of a cleaning, not all of it: a cleaning
/// that finds someone waiting for the partition gives way (and is no failure).
#[test]
fn a_cleaning_gives_way_to_delete_records() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let (store, p) = build(dir.path(), Disk::real(), &settings(true), 12, &rt);
    let store = Arc::new(store);
    let (tx, started) = mpsc::channel();
    let keys = Arc::new(Gated {
        started: Mutex::new(Some(tx)),
        ..Gated::default()
    });
    let cleaning = {
        let (store, keys) = (Arc::clone(&store), Arc::clone(&keys));
        std::thread::spawn(move || store.clean_once(&*keys, now_us()))
    };
    started
        .recv_timeout(WAIT)
        .expect("the cleaning never started");
    let deleting = {
        let p = Arc::clone(&p);
        std::thread::spawn(move || p.delete_records_before(2))
    };
    let deadline = std::time::Instant::now() + WAIT;
    while !p.maintenance_wanted() {
        assert!(
            std::time::Instant::now() < deadline,
            "DeleteRecords never waited for the cleaning"
        );
        std::thread::yield_now();
    }
    *keys.open.0.lock().unwrap() = true;
    keys.open.1.notify_all();
    let report = cleaning.join().unwrap().expect("giving way is no failure");
    assert!(
        report.cleaned.is_empty(),
        "the cleaning ran to its end past a waiting DeleteRecords: {report:?}"
    );
    assert_eq!(deleting.join().unwrap().unwrap(), 2);
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
    // The next round cleans it.
    let report = store.clean_once(&ToyKeys::default(), now_us()).unwrap();
    assert_eq!(report.cleaned.len(), 1, "{report:?}");
}

/// Review 17b B3: a tombstone after a batch kept unread stays past its retention: that batch
/// may hold an older value of the key, which the tombstone alone hides.
#[test]
fn a_tombstone_after_an_unreadable_batch_stays() {
    let rt = rt();
    let keys = Picky::default();
    let dir = tempfile::tempdir().unwrap();
    let (store, p) = build(dir.path(), Disk::real(), &settings(false), 4, &rt);
    let bad = Toy::Value {
        key: BAD.to_vec(),
        value: b"opaque".to_vec(),
    };
    let k0_old = value(0, 100);
    rt.block_on(p.append(toy_batch(&[k0_old.clone(), bad], 0)))
        .unwrap();
    let tombstone = Toy::Tombstone { key: vec![b'k', 0] };
    rt.block_on(p.append(toy_batch(std::slice::from_ref(&tombstone), 0)))
        .unwrap();
    for i in 4..8 {
        rt.block_on(p.append(toy_batch(&[value(1 + (i % 3) as u8, i)], 0)))
            .unwrap();
    }
    // Past the tombstone's retention.
    let later = now_us() + 2 * RETENTION.as_micros() as u64;
    store.clean_once(&keys, later).unwrap();
    let after = read_all(&p);
    assert!(
        after.iter().any(|(_, r)| r == &tombstone),
        "the tombstone went, and k0's old value in the unreadable batch is back: {after:?}"
    );
}
