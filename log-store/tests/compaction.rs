//! Compaction at store level: crash safety of the swap (a failure injected at every file
//! operation of a cleaning, then a reopen), reads across holes and after recovery, the key
//! map's bound (passes), reads running during swaps, retention and compaction policies, the
//! cleaner thread and the roll at `max.compaction.lag.ms`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::toy::*;
use wharf_log_store::{
    CleanerConfig, CleanupPolicy, Disk, FileHook, FileOp, Ident, LogStore, Partition, Ratio,
    StoreConfig, TopicSettings,
};

/// How long a bounded wait in these tests may take before it fails.
const WAIT: Duration = Duration::from_secs(60);

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

/// Fails every file operation from the `fail_at`-th one counted after arming (a process that
/// died there), or only that one (`only_one`).
#[derive(Debug)]
struct Crash {
    armed: AtomicBool,
    seen: AtomicU64,
    fail_at: AtomicU64,
    only_one: bool,
}

impl Crash {
    fn new(only_one: bool) -> Arc<Crash> {
        Arc::new(Crash {
            armed: AtomicBool::new(false),
            seen: AtomicU64::new(0),
            fail_at: AtomicU64::new(u64::MAX),
            only_one,
        })
    }

    fn arm(&self, fail_at: u64) {
        self.seen.store(0, Ordering::SeqCst);
        self.fail_at.store(fail_at, Ordering::SeqCst);
        self.armed.store(true, Ordering::SeqCst);
    }
}

impl FileHook for Crash {
    fn before(&self, _op: FileOp, _path: &Path) -> io::Result<()> {
        if !self.armed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let n = self.seen.fetch_add(1, Ordering::SeqCst);
        let at = self.fail_at.load(Ordering::SeqCst);
        if n == at || (!self.only_one && n > at) {
            return Err(io::Error::other("injected crash"));
        }
        Ok(())
    }
}

fn compacted(segment_size: u64, segment_max_age: Option<Duration>) -> TopicSettings {
    TopicSettings {
        segment_size: Some(segment_size),
        segment_max_age,
        cleanup_policy: CleanupPolicy {
            delete: false,
            compact: true,
        },
        ..TopicSettings::default()
    }
}

fn config(disk: Disk, map_bytes: u64) -> StoreConfig {
    StoreConfig {
        background_tasks: false,
        disk,
        cleaner: CleanerConfig {
            dedupe_buffer_size: map_bytes,
            min_cleanable_dirty_ratio: Ratio::new(0.0).unwrap(),
            delete_retention: Duration::from_secs(1),
            ..CleanerConfig::default()
        },
        ..StoreConfig::default()
    }
}

/// The record written at `offset` by [`fill`]: 8 keys, every 11th a tombstone, every 13th
/// keyless.
fn record_at(offset: u64) -> Toy {
    let key = vec![b'k', (offset % 8) as u8];
    if offset % 13 == 5 {
        Toy::Keyless {
            value: format!("free{offset}").into_bytes(),
        }
    } else if offset % 11 == 3 {
        Toy::Tombstone { key }
    } else {
        Toy::Value {
            key,
            value: format!("value-{offset}-{}", "x".repeat((offset % 40) as usize)).into_bytes(),
        }
    }
}

/// Appends `batches` batches of 1..=3 records (contents fixed by offset) starting at the
/// partition's high watermark.
fn fill(rt: &tokio::runtime::Runtime, p: &Arc<Partition>, batches: u64) {
    for i in 0..batches {
        let base = p.high_watermark();
        let recs: Vec<Toy> = (0..=(i % 3)).map(|j| record_at(base + j)).collect();
        let r = rt.block_on(p.append(toy_batch(&recs, 0))).unwrap();
        assert_eq!(r.base_offset, base);
    }
}

/// Checks what `p` holds: records as written, the latest value of every key present, and
/// (from `read_all`) offsets strictly increasing.
fn check_latest(p: &Partition, context: &str) -> Vec<(u64, Toy)> {
    let got = read_all(p);
    for (o, r) in &got {
        assert_eq!(*r, record_at(*o), "{context}: offset {o}");
    }
    let mut latest = BTreeMap::new();
    for o in 0..p.high_watermark() {
        if let Some(k) = record_at(o).key().map(<[u8]>::to_vec) {
            latest.insert(k, o);
        }
    }
    for (k, o) in latest {
        if matches!(record_at(o), Toy::Value { .. }) {
            assert!(
                got.iter().any(|(g, _)| *g == o),
                "{context}: the latest value of {k:?} at {o} is gone"
            );
        }
    }
    got
}

fn leftovers(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in walk(dir) {
        let name = e.file_name().unwrap().to_string_lossy().to_string();
        if name.contains(".cleaned") || name.starts_with("cleaner-swap") {
            out.push(e.display().to_string());
        }
    }
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Builds the same partition in `dir` every time; returns the store (with `hook`) and it.
fn build(
    dir: &Path,
    hook: Arc<Crash>,
    settings: &TopicSettings,
    rt: &tokio::runtime::Runtime,
) -> (LogStore, Arc<Partition>) {
    let (store, _) = LogStore::open(dir, config(Disk::with_hook(hook), 1 << 20)).unwrap();
    store.create_stream("s").unwrap();
    store
        .create_topic(Ident::Id(0), "t", 1, settings.clone())
        .unwrap();
    let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
    fill(rt, &p, 14);
    (store, p)
}

/// Far enough in the future that every latest tombstone is past its retention.
fn later() -> u64 {
    now_us() + 3_600_000_000
}

/// The crash test: for every file operation n of a cleaning, a store whose disk fails from
/// operation n on (or only at n) is reopened with a sound disk. Recovery must leave the old
/// log or the new one (exactly one of the two when the cleaning swaps a single group), every
/// latest value, no leftover files, and a log that a second open finds whole.
fn swap_fails_at_every_operation(settings: TopicSettings, single_group: bool, only_one: bool) {
    let rt = rt();
    let keys = ToyKeys::default();
    // The reference run: the old log, the new one, and how many operations the cleaning takes.
    let dir = tempfile::tempdir().unwrap();
    let hook = Crash::new(only_one);
    let (store, p) = build(dir.path(), Arc::clone(&hook), &settings, &rt);
    let old = read_all(&p);
    let now = later();
    hook.arm(u64::MAX);
    let report = store.clean_once(&keys, now).unwrap();
    let ops = hook.seen.load(Ordering::SeqCst);
    assert_eq!(report.cleaned.len(), 1, "{report:?}");
    let new = check_latest(&p, "reference");
    assert!(
        new.len() < old.len(),
        "the reference cleaning removed nothing"
    );
    drop(p);
    store.close().unwrap();
    drop(store);
    assert!(ops > 10, "only {ops} file operations counted");

    for n in 0..ops {
        let dir = tempfile::tempdir().unwrap();
        let hook = Crash::new(only_one);
        let (store, p) = build(dir.path(), Arc::clone(&hook), &settings, &rt);
        hook.arm(n);
        let result = store.clean_once(&keys, now);
        assert!(
            result.is_err(),
            "operation {n} of {ops} failed, yet the cleaning succeeded"
        );
        drop(p);
        let _ = store.close();
        drop(store);

        let context = format!("failure at operation {n} of {ops}");
        let (store, _) = LogStore::open(dir.path(), config(Disk::real(), 1 << 20)).unwrap();
        let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
        let got = check_latest(&p, &context);
        if single_group {
            assert!(
                got == old || got == new,
                "{context}: neither the old log nor the new one: {got:?}"
            );
        }
        assert!(
            leftovers(dir.path()).is_empty(),
            "{context}: {:?}",
            leftovers(dir.path())
        );
        // What the recovered store cleans next is the reference's result.
        store.clean_once(&keys, now).unwrap();
        assert_eq!(check_latest(&p, &context), new, "{context}: cleaning again");
        drop(p);
        store.close().unwrap();
        drop(store);
        let (_store, report) = LogStore::open(dir.path(), config(Disk::real(), 1 << 20)).unwrap();
        assert!(
            report.repaired.is_empty(),
            "{context}: second open repaired {report:?}"
        );
    }
}

#[test]
fn crash_at_every_swap_operation_leaves_old_or_new_single_group() {
    // Every append its own segment (sealed by age), all merged into one cleaned segment.
    let settings = compacted(1 << 20, Some(Duration::from_micros(1)));
    swap_fails_at_every_operation(settings, true, false);
}

#[test]
fn crash_at_every_swap_operation_keeps_latest_values_across_groups() {
    swap_fails_at_every_operation(compacted(600, None), false, false);
}

#[test]
fn one_failed_operation_at_every_step_of_a_swap_is_recovered() {
    swap_fails_at_every_operation(compacted(600, None), false, true);
}

#[test]
fn reads_across_holes_and_recovery_with_holes() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let keys = ToyKeys::default();
    let (store, p) = build(dir.path(), Crash::new(false), &compacted(600, None), &rt);
    let hw = p.high_watermark();
    store.clean_once(&keys, later()).unwrap();
    let batches = {
        let mut all = Vec::new();
        let mut from = 0;
        loop {
            let r = p.read(from, u64::MAX).unwrap();
            let Some(last) = r.batches.last() else { break };
            from = last.last_offset() + 1;
            all.extend(r.batches);
        }
        all
    };
    let spans: Vec<(u64, u64)> = batches
        .iter()
        .map(|b| (b.base_offset(), b.last_offset()))
        .collect();
    assert!(
        spans.windows(2).any(|w| w[1].0 > w[0].1 + 1),
        "compaction left no hole between batches: {spans:?}"
    );
    // The batch before any offset (how a native `Last` poll walks back) is the last one
    // starting below it, across holes.
    for o in 0..=hw + 1 {
        let want = spans.iter().rev().find(|(base, _)| *base < o).map(|s| s.0);
        assert_eq!(p.batch_before(o).unwrap(), want, "batch before {o}");
    }
    // A read from any offset starts with the batch holding it, or the next one after a hole.
    for o in 0..hw {
        let r = p.read(o, 1).unwrap();
        let want = spans.iter().find(|(_, last)| *last >= o).copied();
        let got = r
            .batches
            .first()
            .map(|b| (b.base_offset(), b.last_offset()));
        assert_eq!(got, want, "read from {o}");
    }
    // Timestamp look-ups land on batches that exist.
    let first = p.offset_for_timestamp(0).unwrap().unwrap();
    assert!(
        spans.iter().any(|(b, _)| *b == first),
        "{first} is no batch's base"
    );
    let before = read_all(&p);
    drop(p);
    store.close().unwrap();
    drop(store);

    // Recovery accepts the holes: nothing cut, nothing rebuilt.
    let (store, report) = LogStore::open(dir.path(), config(Disk::real(), 1 << 20)).unwrap();
    assert!(report.repaired.is_empty(), "{report:?}");
    let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
    assert_eq!(read_all(&p), before);
    assert_eq!(p.high_watermark(), hw);
    drop(p);
    store.close().unwrap();
    drop(store);

    // Indexes rebuilt from logs with holes come back the same.
    for f in walk(dir.path()) {
        if f.extension().is_some_and(|e| e == "index") {
            std::fs::remove_file(&f).unwrap();
        }
    }
    let (store, report) = LogStore::open(dir.path(), config(Disk::real(), 1 << 20)).unwrap();
    assert!(!report.repaired.is_empty());
    for (_, repair) in &report.repaired {
        for (_, seg) in &repair.segments {
            assert!(seg.truncated.is_none(), "a log with holes was cut: {seg:?}");
        }
    }
    let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
    assert_eq!(read_all(&p), before);
    // Appends go on at the high watermark.
    fill(&rt, &p, 2);
    assert!(p.high_watermark() > hw);
}

/// The key map's bound: a map of 20 slots (480 bytes) over 300 keys cleans in many passes and
/// ends where one big map ends.
#[test]
fn a_small_key_map_cleans_in_passes_to_the_same_result() {
    let rt = rt();
    const KEYS: u64 = 300;
    let run = |map_bytes: u64| {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = LogStore::open(dir.path(), config(Disk::real(), map_bytes)).unwrap();
        store.create_stream("s").unwrap();
        store
            .create_topic(Ident::Id(0), "t", 1, compacted(2000, None))
            .unwrap();
        let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
        for i in 0..KEYS * 3 {
            let key = format!("key{}", (i * 7) % KEYS).into_bytes();
            let rec = Toy::Value {
                key,
                value: i.to_le_bytes().to_vec(),
            };
            rt.block_on(p.append(toy_batch(&[rec], 0))).unwrap();
        }
        let keys = ToyKeys::default();
        let mut cleanings = 0;
        for _ in 0..200 {
            let report = store.clean_once(&keys, now_us()).unwrap();
            if report.cleaned.is_empty() {
                break;
            }
            for done in &report.cleaned {
                assert!(done.map_keys <= done.map_capacity);
            }
            cleanings += report.cleaned.len();
        }
        assert!(store.cleaner_stats().map_bytes <= map_bytes.max(48));
        (read_all(&p), cleanings)
    };
    let (big, big_cleanings) = run(1 << 20);
    let (small, small_cleanings) = run(20 * 24);
    assert_eq!(big_cleanings, 1);
    // 18 keys a pass (90 % of 20 slots) over 300 keys.
    assert!(
        small_cleanings >= (KEYS / 18) as usize,
        "{small_cleanings} passes"
    );
    assert_eq!(small, big);
    assert!(
        big.len() < (KEYS * 2) as usize,
        "nothing was compacted: {}",
        big.len()
    );
}

/// Readers running while the cleaner swaps segments always read records as written, in
/// strictly increasing offsets (a read that raced a swap is planned again).
#[test]
fn reads_during_swaps_see_a_consistent_log() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let keys = ToyKeys::default();
    let (store, p) = build(dir.path(), Crash::new(false), &compacted(500, None), &rt);
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let p = Arc::clone(&p);
            let done = Arc::clone(&done);
            let reads = Arc::clone(&reads);
            std::thread::spawn(move || {
                while !done.load(Ordering::Acquire) {
                    for (o, r) in read_all(&p) {
                        assert_eq!(r, record_at(o), "offset {o}");
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let mut swaps = 0;
    for _ in 0..40 {
        fill(&rt, &p, 4);
        swaps += store
            .clean_once(&keys, later())
            .unwrap()
            .cleaned
            .iter()
            .map(|c| c.segments_before)
            .sum::<usize>();
    }
    done.store(true, Ordering::Release);
    for r in readers {
        r.join().unwrap();
    }
    assert!(swaps >= 40, "{swaps} segments swapped");
    assert!(reads.load(Ordering::Relaxed) > 0);
    check_latest(&p, "after the swaps");
}

#[test]
fn retention_applies_only_with_the_delete_policy() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = LogStore::open(dir.path(), config(Disk::real(), 1 << 20)).unwrap();
    store.create_stream("s").unwrap();
    let mut compact_only = compacted(300, None);
    compact_only.message_expiry = Some(Duration::from_secs(1));
    let mut both = compact_only.clone();
    both.cleanup_policy.delete = true;
    store
        .create_topic(Ident::Id(0), "c", 1, compact_only)
        .unwrap();
    store.create_topic(Ident::Id(0), "cd", 1, both).unwrap();
    let c = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
    let cd = store.partition(Ident::Id(0), Ident::Id(1), 0).unwrap();
    fill(&rt, &c, 10);
    fill(&rt, &cd, 10);
    let segments = c.stats().segments;
    store.enforce_retention(later()).unwrap();
    assert_eq!(
        c.stats().segments,
        segments,
        "compact-only topic lost segments"
    );
    assert_eq!(
        cd.stats().segments,
        1,
        "compact,delete topic kept expired segments"
    );
}

#[test]
fn max_compaction_lag_rolls_the_active_segment() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = LogStore::open(dir.path(), config(Disk::real(), 1 << 20)).unwrap();
    store.create_stream("s").unwrap();
    let mut settings = compacted(1 << 20, None);
    settings.max_compaction_lag = Some(Duration::from_millis(1));
    store
        .create_topic(Ident::Id(0), "t", 1, settings.clone())
        .unwrap();
    settings.cleanup_policy.compact = false;
    store
        .create_topic(Ident::Id(0), "plain", 1, settings)
        .unwrap();
    let t = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
    let plain = store.partition(Ident::Id(0), Ident::Id(1), 0).unwrap();
    fill(&rt, &t, 1);
    fill(&rt, &plain, 1);
    // The server clock must pass the lag; a bounded spin on the clock, no sleep.
    let start = now_us();
    let deadline = Instant::now() + WAIT;
    while now_us() < start + 2_000 {
        assert!(Instant::now() < deadline, "the clock did not move");
        std::hint::spin_loop();
    }
    fill(&rt, &t, 1);
    fill(&rt, &plain, 1);
    assert_eq!(
        t.stats().segments,
        2,
        "the compacted topic did not roll at the lag"
    );
    assert_eq!(
        plain.stats().segments,
        1,
        "a topic without compaction rolled at the lag"
    );
}

#[test]
fn the_cleaner_thread_cleans_and_stops_on_close() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(Disk::real(), 1 << 20);
    cfg.cleaner.backoff = Duration::from_secs(3600);
    let (store, _) = LogStore::open(dir.path(), cfg).unwrap();
    store.create_stream("s").unwrap();
    store
        .create_topic(Ident::Id(0), "t", 1, compacted(600, None))
        .unwrap();
    let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
    fill(&rt, &p, 24);
    store.start_cleaner(Arc::new(ToyKeys::default()));
    let deadline = Instant::now() + WAIT;
    while store.cleaner_stats().cleanings == 0 {
        assert!(
            Instant::now() < deadline,
            "the cleaner thread never cleaned"
        );
        std::thread::yield_now();
    }
    let stats = store.cleaner_stats();
    assert!(
        stats.records_removed > 0 && stats.bytes_read > 0,
        "{stats:?}"
    );
    check_latest(&p, "after the thread's cleaning");
    // With an hour's backoff, close returns only if it wakes the sleeping thread.
    store.close().unwrap();
}

#[test]
fn a_disabled_cleaner_starts_no_thread() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(Disk::real(), 1 << 20);
    cfg.cleaner.enabled = false;
    let (store, _) = LogStore::open(dir.path(), cfg).unwrap();
    store.create_stream("s").unwrap();
    store
        .create_topic(Ident::Id(0), "t", 1, compacted(600, None))
        .unwrap();
    let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
    fill(&rt, &p, 24);
    store.start_cleaner(Arc::new(ToyKeys::default()));
    store.close().unwrap();
    assert_eq!(store.cleaner_stats().cleanings, 0);
}

/// Holds the first open of one path until released: a reader stopped between planning its
/// read and opening the segment file.
#[derive(Debug)]
struct OpenGate {
    path: std::path::PathBuf,
    gate: parking_lot::Mutex<Option<(std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>)>>,
}

impl FileHook for OpenGate {
    fn before(&self, op: FileOp, path: &Path) -> io::Result<()> {
        if op == FileOp::Open && path == self.path {
            let gate = self.gate.lock().take();
            if let Some((entered, release)) = gate {
                entered.send(()).unwrap();
                release.recv_timeout(WAIT).unwrap();
            }
        }
        Ok(())
    }
}

/// A read planned before a swap and reading after it would read the renamed-in file at the old
/// positions; the swap generation makes it plan again and read what the log now holds.
#[test]
fn a_read_planned_before_a_swap_and_done_after_it_is_planned_again() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let (store, p) = build(dir.path(), Crash::new(false), &compacted(600, None), &rt);
    drop(p);
    store.close().unwrap();
    drop(store);

    let first_log = walk(dir.path())
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "log"))
        .min()
        .unwrap();
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    let gate = Arc::new(OpenGate {
        path: first_log,
        gate: parking_lot::Mutex::new(None),
    });
    let (store, _) =
        LogStore::open(dir.path(), config(Disk::with_hook(gate.clone()), 1 << 20)).unwrap();
    let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
    *gate.gate.lock() = Some((entered_tx, release_rx));
    let reader = {
        let p = Arc::clone(&p);
        std::thread::spawn(move || p.read(0, u64::MAX))
    };
    entered.recv_timeout(WAIT).unwrap();
    // The reader has planned against the old segments and waits to open the first one.
    let report = store.clean_once(&ToyKeys::default(), later()).unwrap();
    assert_eq!(report.cleaned.len(), 1);
    release.send(()).unwrap();
    let read = reader.join().unwrap().expect("the raced read failed");
    let direct = p.read(0, u64::MAX).unwrap();
    assert_eq!(
        read.batches, direct.batches,
        "the raced read saw a mix of old and new files"
    );
    check_latest(&p, "after the raced read");
}

/// The toy format, except that partition 0's batches cannot be read.
#[derive(Debug, Default)]
struct BrokenFirst(ToyKeys);

impl wharf_log_store::compaction::RecordKeys for BrokenFirst {
    fn stable_offset(&self, p: wharf_log_store::PartitionKey) -> u64 {
        self.0.stable_offset(p)
    }

    fn scan(
        &self,
        p: wharf_log_store::PartitionKey,
        batch: &wharf_log_store::StoredBatch,
        visit: &mut dyn FnMut(wharf_log_store::compaction::CleanRecord<'_>),
    ) -> Result<wharf_log_store::compaction::BatchFacts, wharf_log_store::compaction::CodecError>
    {
        if p.partition == 0 {
            return Err(wharf_log_store::compaction::CodecError("unreadable".into()));
        }
        self.0.scan(p, batch, visit)
    }

    fn retain(
        &self,
        p: wharf_log_store::PartitionKey,
        batch: &wharf_log_store::StoredBatch,
        keep: &dyn Fn(u64) -> bool,
        keep_empty: bool,
    ) -> Result<Option<bytes::Bytes>, wharf_log_store::compaction::CodecError> {
        self.0.retain(p, batch, keep, keep_empty)
    }
}

#[test]
fn batches_that_cannot_be_read_are_kept_and_do_not_hold_up_the_others() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = LogStore::open(dir.path(), config(Disk::real(), 1 << 20)).unwrap();
    store.create_stream("s").unwrap();
    store
        .create_topic(Ident::Id(0), "t", 2, compacted(600, None))
        .unwrap();
    let parts = store.partitions(Ident::Id(0), Ident::Id(0)).unwrap();
    for p in &parts {
        fill(&rt, p, 14);
    }
    let before: Vec<_> = parts.iter().map(|p| read_all(p)).collect();
    // Batches the record format cannot read are kept as they are and counted; they fail
    // nothing, and the partition's other batches (here: none) and partitions are cleaned.
    let report = store.clean_once(&BrokenFirst::default(), later()).unwrap();
    let unreadable: u64 = report
        .cleaned
        .iter()
        .filter(|c| c.partition.partition == 0)
        .map(|c| c.batches_unreadable)
        .sum();
    assert_eq!(unreadable, 13, "partition 0's sealed batches, counted");
    assert_eq!(
        read_all(&parts[0]),
        before[0],
        "unreadable batches were changed"
    );
    assert!(
        read_all(&parts[1]).len() < before[1].len(),
        "partition 1 was not cleaned"
    );
    assert_eq!(store.cleaner_stats().cleanings, 2);
    // No leftovers of the failed cleaning.
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
}

/// Which partitions a cleaning picks: the dirty ratio against the checkpoint kept across a
/// reopen, `min.compaction.lag.ms` and `max.compaction.lag.ms`.
#[test]
fn selection_follows_the_dirty_ratio_of_the_persisted_checkpoint_and_the_lags() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(Disk::real(), 1 << 20);
    cfg.cleaner.min_cleanable_dirty_ratio = Ratio::new(0.5).unwrap();
    let open = |cfg: &StoreConfig| LogStore::open(dir.path(), cfg.clone()).unwrap().0;
    let store = open(&cfg);
    store.create_stream("s").unwrap();
    let mut settings = compacted(600, None);
    settings.min_compaction_lag = Some(Duration::from_secs(3600));
    settings.max_compaction_lag = Some(Duration::from_secs(7200));
    store.create_topic(Ident::Id(0), "t", 1, settings).unwrap();
    let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
    fill(&rt, &p, 20);
    let keys = ToyKeys::default();
    let hour = 3_600_000_000u64;
    // Younger than min.compaction.lag.ms: nothing is cleanable yet.
    assert!(store
        .clean_once(&keys, now_us())
        .unwrap()
        .cleaned
        .is_empty());
    let report = store.clean_once(&keys, now_us() + hour + 1).unwrap();
    assert_eq!(report.cleaned.len(), 1, "{report:?}");
    assert!(report.cleaned[0].dirty_ratio > 0.99);
    drop(p);
    store.close().unwrap();
    drop(store);

    // The checkpoint survives the reopen: the cleaned log is not dirty.
    let store = open(&cfg);
    let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
    assert!(store
        .clean_once(&keys, now_us() + hour + 1)
        .unwrap()
        .cleaned
        .is_empty());
    // A little new data: dirty, but below the ratio.
    let size = p.stats().size_bytes;
    while p.stats().size_bytes < size + size / 4 {
        fill(&rt, &p, 1);
    }
    fill(&rt, &p, 3);
    let now = now_us() + hour + 1;
    assert!(
        store.clean_once(&keys, now).unwrap().cleaned.is_empty(),
        "cleaned below the ratio"
    );
    // Once the first dirty append is older than max.compaction.lag.ms, it is cleaned anyway.
    let report = store.clean_once(&keys, now + 2 * hour).unwrap();
    assert_eq!(
        report.cleaned.len(),
        1,
        "max.compaction.lag.ms did not force a cleaning"
    );
    assert!(report.cleaned[0].dirty_ratio < 0.5);
    check_latest(&p, "after the forced cleaning");
}

/// Power loss at every file operation of a cleaning (the durable image of `common::power`,
/// frozen before operation k): the store opened on what survived holds the old log or the new
/// one, every latest value, and no leftovers.
#[test]
fn power_loss_at_every_operation_of_a_cleaning_leaves_old_or_new() {
    use common::power::PowerLoss;
    let rt = rt();
    let keys = ToyKeys::default();
    let mut settings = compacted(1 << 20, Some(Duration::from_micros(1)));
    settings.durability = Some(wharf_log_store::Durability::Fsync);
    let now = later();
    let setup = |crash_before: u64| {
        let live = tempfile::tempdir().unwrap();
        let power = PowerLoss::new(live.path(), crash_before, crash_before ^ 0x5EED);
        let hook: Arc<dyn FileHook> = power.clone();
        let (store, _) =
            LogStore::open(live.path(), config(Disk::with_hook(hook), 1 << 20)).unwrap();
        store.create_stream("s").unwrap();
        store
            .create_topic(Ident::Id(0), "t", 1, settings.clone())
            .unwrap();
        let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
        fill(&rt, &p, 14);
        (live, power, store, p)
    };
    let (_live, power, store, p) = setup(u64::MAX);
    let setup_ops = power.ops();
    let old = read_all(&p);
    assert_eq!(store.clean_once(&keys, now).unwrap().cleaned.len(), 1);
    let clean_ops = power.ops() - setup_ops;
    let new = read_all(&p);
    assert!(new.len() < old.len());
    drop(p);
    store.close().unwrap();
    drop(store);

    for k in 0..=clean_ops {
        let context = format!("power lost before operation {k} of the cleaning's {clean_ops}");
        let (_live, power, store, p) = setup(setup_ops + k);
        assert_eq!(
            power.ops(),
            setup_ops,
            "{context}: the setup is not repeatable"
        );
        store.clean_once(&keys, now).unwrap();
        power.crash_now();
        drop(p);
        store.close().unwrap();
        drop(store);
        let after = tempfile::tempdir().unwrap();
        power.image().materialise(after.path());
        let (store, _) = LogStore::open(after.path(), config(Disk::real(), 1 << 20))
            .unwrap_or_else(|e| panic!("{context}: the store does not open: {e}"));
        let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
        let got = check_latest(&p, &context);
        assert!(
            got == old || got == new,
            "{context}: neither the old log nor the new one"
        );
        assert!(
            leftovers(after.path()).is_empty(),
            "{context}: {:?}",
            leftovers(after.path())
        );
        drop(p);
        store.close().unwrap();
        drop(store);
        let (_store, report) = LogStore::open(after.path(), config(Disk::real(), 1 << 20)).unwrap();
        assert!(
            report.repaired.is_empty(),
            "{context}: second open repaired {report:?}"
        );
    }
}

/// A transaction marker goes only once it is past `delete.retention.ms` AND no record of its
/// producer's transaction is left in the rewritten log (Kafka's rule: a reader or a replay that
/// met committed data without its marker would take the transaction for open forever). Bound:
/// with retention long expired, the marker stays exactly as long as producer 7's data does.
#[test]
fn a_transaction_marker_stays_while_its_transaction_has_records() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let keys = ToyKeys::default();
    let (store, _) = LogStore::open(dir.path(), config(Disk::real(), 1 << 20)).unwrap();
    store.create_stream("s").unwrap();
    store
        .create_topic(Ident::Id(0), "t", 1, compacted(200, None))
        .unwrap();
    let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
    let value = |key: &[u8], v: &str| Toy::Value {
        key: key.to_vec(),
        value: v.as_bytes().to_vec(),
    };
    let append = |recs: &[Toy], producer: u64| {
        rt.block_on(p.append(toy_batch(recs, producer)))
            .unwrap()
            .base_offset
    };
    // Producer 7's transaction: data at 0, its marker at 1; then other keys (producer 0) so
    // that both sit in sealed segments.
    assert_eq!(append(&[value(b"a", "in-txn")], 7), 0);
    assert_eq!(append(&[Toy::Marker], 7), 1);
    append(&[value(b"f", "filler-1")], 0);
    append(&[value(b"g", "filler-2")], 0);
    assert!(
        p.stats().segments > 2,
        "the transaction is in sealed segments"
    );

    let report = store.clean_once(&keys, later()).unwrap();
    assert_eq!(report.cleaned.len(), 1, "the partition was cleaned");
    let got = read_all(&p);
    assert!(
        got.contains(&(0, value(b"a", "in-txn"))),
        "the latest value of a is kept: {got:?}"
    );
    assert!(
        got.contains(&(1, Toy::Marker)),
        "the marker, past its retention, stays while its transaction's data does: {got:?}"
    );

    // a is superseded by a write outside any transaction: its old value goes, and with it the
    // last record of producer 7's transaction, so the marker goes too.
    let newer = append(&[value(b"a", "plain")], 0);
    append(&[value(b"h", "filler-3")], 0);
    append(&[value(b"i", "filler-4")], 0);
    let report = store.clean_once(&keys, later()).unwrap();
    assert_eq!(report.cleaned.len(), 1, "the partition was cleaned again");
    let got = read_all(&p);
    assert!(
        !got.iter().any(|(o, _)| *o <= 1),
        "neither the old value nor the marker is left: {got:?}"
    );
    assert!(got.contains(&(newer, value(b"a", "plain"))), "{got:?}");
    store.close().unwrap();
}
