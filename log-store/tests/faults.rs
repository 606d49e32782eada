//! Fault injection: a [`FileHook`] fails chosen file operations of the store (a segment write,
//! a full disk, an `fdatasync`, a segment roll, a catalog save, an offsets-journal write) and
//! the tests check what the store promises then: the failing call reports an error, nothing
//! acknowledged is lost or changed, nothing that failed is visible, the store (or the partition,
//! where a failed sync leaves it in doubt) goes on as documented, and reopening is clean.
//!
//! Every test asserts that the fault it sets up actually fired, so none can pass vacuously.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::*;
use parking_lot::Mutex;
use wharf_log_store::{
    AppendResult, CommittedOffset, Disk, Durability, FileHook, FileOp, Ident, LogStore, OffsetKey,
    OffsetOwner, OpenReport, Partition, StoreConfig, StoreError, TopicSettings,
};

/// ENOSPC: what `write` reports when the disk is full.
const ENOSPC: i32 = 28;
/// EIO: what a failing disk reports.
const EIO: i32 = 5;
/// EMFILE: what `open` reports when the process has no descriptor left.
const EMFILE: i32 = 24;
/// The longest a test waits for the store's writer to reach a point.
const WAIT: Duration = Duration::from_secs(60);

/// Which files a rule or a count applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Files {
    /// Files with this extension (`log`, `index`).
    Ext(&'static str),
    /// Files with exactly this name (`catalog.tmp`, `journal`).
    Name(&'static str),
}

impl Files {
    fn matches(self, path: &Path) -> bool {
        match self {
            Files::Ext(ext) => path.extension().is_some_and(|e| e == ext),
            Files::Name(name) => path.file_name().is_some_and(|n| n == name),
        }
    }
}

#[derive(Debug)]
struct Rule {
    op: FileOp,
    files: Files,
    /// `Some(n)`: fail the next `n` matching operations; `None`: every one from now on.
    remaining: Option<usize>,
    errno: i32,
    /// Before failing a `Write`, append this many bytes of junk to the file, as a write that
    /// got part of the way before the disk filled up would.
    torn: usize,
    fired: usize,
}

/// Holds the next `Write` of a `.log` until the test releases it.
#[derive(Debug)]
struct Gate {
    entered: mpsc::Sender<()>,
    release: mpsc::Receiver<()>,
}

/// Fails chosen operations and records every operation it sees (closes included).
#[derive(Debug, Default)]
struct Faults {
    rules: Mutex<Vec<Rule>>,
    seen: Mutex<Vec<(FileOp, PathBuf)>>,
    gate: Mutex<Option<Gate>>,
}

impl Faults {
    fn new() -> Arc<Faults> {
        Arc::new(Faults::default())
    }

    /// Fails the next matching operation with `errno`.
    fn fail_once(&self, op: FileOp, files: Files, errno: i32) {
        self.add(op, files, Some(1), errno, 0);
    }

    /// Fails the next `n` matching operations with `errno`.
    fn fail_times(&self, op: FileOp, files: Files, n: usize, errno: i32) {
        self.add(op, files, Some(n), errno, 0);
    }

    /// Drops every rule (and their counts): nothing fails from now on.
    fn clear(&self) {
        self.rules.lock().clear();
    }

    /// Makes the next `Write` of a `.log` wait until the returned sender sends (or is
    /// dropped); the returned receiver hears when that write has started waiting.
    fn hold_next_log_write(&self) -> (mpsc::Receiver<()>, mpsc::Sender<()>) {
        let (entered, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        *self.gate.lock() = Some(Gate {
            entered,
            release: release_rx,
        });
        (started, release)
    }

    /// Fails the next matching `Write` with `errno` after writing `torn` junk bytes.
    fn fail_write_torn(&self, files: Files, errno: i32, torn: usize) {
        self.add(FileOp::Write, files, Some(1), errno, torn);
    }

    fn add(&self, op: FileOp, files: Files, remaining: Option<usize>, errno: i32, torn: usize) {
        self.rules.lock().push(Rule {
            op,
            files,
            remaining,
            errno,
            torn,
            fired: 0,
        });
    }

    /// How many operations the rules for (`op`, `files`) failed.
    fn fired(&self, op: FileOp, files: Files) -> usize {
        self.rules
            .lock()
            .iter()
            .filter(|r| r.op == op && r.files == files)
            .map(|r| r.fired)
            .sum()
    }

    /// How many (`op`, `files`) operations were attempted.
    fn count(&self, op: FileOp, files: Files) -> usize {
        self.seen
            .lock()
            .iter()
            .filter(|(o, p)| *o == op && files.matches(p))
            .count()
    }
}

impl FileHook for Faults {
    fn after(&self, op: FileOp, path: &Path, _to: Option<&Path>) {
        if op == FileOp::Close {
            self.seen.lock().push((op, path.to_path_buf()));
        }
    }

    fn before(&self, op: FileOp, path: &Path) -> io::Result<()> {
        self.seen.lock().push((op, path.to_path_buf()));
        if op == FileOp::Write && Files::Ext("log").matches(path) {
            let gate = self.gate.lock().take();
            if let Some(gate) = gate {
                let _ = gate.entered.send(());
                let _ = gate.release.recv_timeout(WAIT);
            }
        }
        let mut rules = self.rules.lock();
        let Some(rule) = rules
            .iter_mut()
            .find(|r| r.op == op && r.remaining != Some(0) && r.files.matches(path))
        else {
            return Ok(());
        };
        if let Some(n) = rule.remaining.as_mut() {
            *n -= 1;
        }
        rule.fired += 1;
        if rule.torn > 0 {
            let mut f = OpenOptions::new().append(true).open(path)?;
            f.write_all(&vec![0xA5; rule.torn])?;
        }
        Err(io::Error::from_raw_os_error(rule.errno))
    }
}

fn config(faults: &Arc<Faults>) -> StoreConfig {
    let hook: Arc<dyn FileHook> = faults.clone();
    StoreConfig {
        disk: Disk::with_hook(hook),
        ..common::config()
    }
}

fn open_faulty(dir: &Path, faults: &Arc<Faults>) -> LogStore {
    LogStore::open(dir, config(faults)).expect("open store").0
}

fn reopen_plain(dir: &Path) -> (LogStore, OpenReport) {
    LogStore::open(dir, common::config()).expect("reopen store")
}

fn topic(durability: Durability, segment_size: Option<u64>) -> TopicSettings {
    TopicSettings {
        durability: Some(durability),
        segment_size,
        ..TopicSettings::default()
    }
}

/// A store with stream 0 and one topic (id 0) of one partition.
fn store_with_topic(dir: &Path, faults: &Arc<Faults>, settings: TopicSettings) -> LogStore {
    let store = open_faulty(dir, faults);
    store.create_stream("s").unwrap();
    store.create_topic(Ident::Id(0), "t", 1, settings).unwrap();
    store
}

fn partition(store: &LogStore) -> Arc<Partition> {
    store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap()
}

/// An acknowledged batch: where it went and the bodies of its messages.
#[derive(Debug, Clone)]
struct Acked {
    at: AppendResult,
    bodies: Vec<Vec<u8>>,
}

fn bodies(seed: u64) -> Vec<Vec<u8>> {
    let count = (seed % 4 + 1) as usize;
    (0..count)
        .map(|i| seeded_body(seed, i, (seed % 97 + 3) as usize))
        .collect()
}

async fn append_ok(p: &Arc<Partition>, seed: u64, ledger: &mut Vec<Acked>) {
    let b = bodies(seed);
    let at = p.append(native_batch(&b)).await.unwrap();
    ledger.push(Acked { at, bodies: b });
}

/// Asserts that the partition holds exactly the acknowledged batches, in order, at their offsets.
fn assert_holds_exactly(p: &Partition, ledger: &[Acked]) {
    let read = p.read(0, u64::MAX).unwrap();
    let got: Vec<(u64, u64, Vec<Vec<u8>>)> = read
        .batches
        .iter()
        .map(|b| {
            b.verify().unwrap();
            (
                b.base_offset(),
                b.last_offset(),
                native_bodies(&b.payload()),
            )
        })
        .collect();
    let want: Vec<(u64, u64, Vec<Vec<u8>>)> = ledger
        .iter()
        .map(|a| (a.at.base_offset, a.at.last_offset, a.bodies.clone()))
        .collect();
    assert_eq!(
        got, want,
        "the partition does not hold exactly the acknowledged batches"
    );
    let end = ledger.last().map_or(0, |a| a.at.last_offset + 1);
    assert_eq!(read.high_watermark, end);
}

fn raw_os_error(e: &StoreError) -> Option<i32> {
    match e {
        StoreError::Io { source, .. } => source.raw_os_error(),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_segment_write_is_cut_back_and_later_appends_work() {
    // (what fails, errno, junk a torn write leaves behind)
    let cases = [
        (Files::Ext("log"), EIO, 0),
        (Files::Ext("log"), ENOSPC, 0),
        (Files::Ext("log"), ENOSPC, 37), // disk full part-way through the batch
        (Files::Ext("index"), ENOSPC, 11), // the log write went through, the index's did not
    ];
    for (files, errno, torn) in cases {
        for durability in [Durability::Os, Durability::Fsync] {
            let what = format!("{files:?} errno {errno} torn {torn} {durability:?}");
            let dir = tempfile::tempdir().unwrap();
            let faults = Faults::new();
            let store = store_with_topic(dir.path(), &faults, topic(durability, None));
            let p = partition(&store);
            let mut ledger = Vec::new();
            for seed in 1..=3 {
                append_ok(&p, seed, &mut ledger).await;
            }

            faults.fail_write_torn(files, errno, torn);
            let err = p.append(native_batch(&bodies(99))).await.unwrap_err();
            assert_eq!(
                faults.fired(FileOp::Write, files),
                1,
                "{what}: fault not reached"
            );
            assert_eq!(raw_os_error(&err), Some(errno), "{what}: {err}");
            assert_holds_exactly(&p, &ledger);

            // The write was cut back, so the partition goes on, with no gap in the offsets.
            for seed in 4..=5 {
                append_ok(&p, seed, &mut ledger).await;
            }
            assert_eq!(
                ledger[3].at.base_offset,
                ledger[2].at.last_offset + 1,
                "{what}"
            );
            assert_holds_exactly(&p, &ledger);
            store.close().unwrap();
            drop(p);
            drop(store);

            let (store, report) = reopen_plain(dir.path());
            assert!(
                report.repaired.is_empty(),
                "{what}: reopening had to repair {:?}",
                report.repaired
            );
            assert_holds_exactly(&partition(&store), &ledger);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fdatasync_fails_its_appends_and_stops_the_partition() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let store = store_with_topic(dir.path(), &faults, topic(Durability::Fsync, None));
    let p = partition(&store);
    let mut ledger = Vec::new();
    for seed in 1..=3 {
        append_ok(&p, seed, &mut ledger).await;
    }
    let syncs_before = faults.count(FileOp::SyncData, Files::Ext("log"));
    assert!(syncs_before >= 3, "fsync appends did not sync the log");

    faults.fail_once(FileOp::SyncData, Files::Ext("log"), EIO);
    // Several appends waiting together: the one sync that fails covers all of them.
    let waiting: Vec<_> = (10..16)
        .map(|seed| p.submit(native_batch(&bodies(seed))))
        .collect();
    let mut io_errors = 0;
    for w in waiting {
        match w.await {
            Ok(r) => panic!("an append was acknowledged after a failed fdatasync: {r:?}"),
            Err(e) if raw_os_error(&e) == Some(EIO) => io_errors += 1,
            Err(StoreError::PartitionFailed(_)) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(
        faults.fired(FileOp::SyncData, Files::Ext("log")),
        1,
        "fault not reached"
    );
    assert!(io_errors >= 1, "no append saw the failed sync's error");

    // No later sync is trusted to cover what the failed one did not: the partition refuses
    // appends until a restart, and readers still get everything acknowledged.
    let syncs_after = faults.count(FileOp::SyncData, Files::Ext("log"));
    let later = p.append(native_batch(&bodies(20))).await.unwrap_err();
    assert!(matches!(later, StoreError::PartitionFailed(_)), "{later}");
    assert_eq!(
        faults.count(FileOp::SyncData, Files::Ext("log")),
        syncs_after,
        "a refused append synced"
    );
    assert_holds_exactly(&p, &ledger);
    let _ = store.close();
    drop(p);
    drop(store);

    // After a restart every acknowledged batch is there; the unacknowledged ones (written, but
    // their sync failed) may be too, whole, after them.
    let (store, _) = reopen_plain(dir.path());
    let p = partition(&store);
    let read = p.read(0, u64::MAX).unwrap();
    assert!(read.batches.len() >= ledger.len());
    for (a, b) in ledger.iter().zip(&read.batches) {
        assert_eq!(b.base_offset(), a.at.base_offset);
        assert_eq!(native_bodies(&b.payload()), a.bodies);
    }
    let failed: Vec<Vec<Vec<u8>>> = (10..16).map(bodies).collect();
    for b in &read.batches[ledger.len()..] {
        b.verify().unwrap();
        assert!(failed.contains(&native_bodies(&b.payload())));
    }
    // And the restarted partition takes appends again.
    p.append(native_batch(&bodies(30))).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_background_sync_of_os_data_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let store = store_with_topic(dir.path(), &faults, topic(Durability::Os, None));
    let p = partition(&store);
    let mut ledger = Vec::new();
    append_ok(&p, 1, &mut ledger).await;
    faults.fail_once(FileOp::SyncData, Files::Ext("log"), EIO);
    let err = store.sync_all().unwrap_err();
    assert_eq!(raw_os_error(&err), Some(EIO), "{err}");
    assert_eq!(
        faults.fired(FileOp::SyncData, Files::Ext("log")),
        1,
        "fault not reached"
    );
    let syncs = faults.count(FileOp::SyncData, Files::Ext("log"));
    store.sync_all().unwrap();
    assert_eq!(
        faults.count(FileOp::SyncData, Files::Ext("log")),
        syncs + 1,
        "the failed sync was not retried"
    );
    // `os` appends are acknowledged on write; the partition goes on.
    append_ok(&p, 2, &mut ledger).await;
    assert_holds_exactly(&p, &ledger);
}

/// The faults a roll meets when it cannot create the new segment's files: a full disk, and no
/// descriptor left even after the open-files cache closed one of its files for it (so EMFILE
/// fails both tries).
const CREATE_FAULTS: [(i32, usize); 2] = [(ENOSPC, 1), (EMFILE, 2)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_segment_roll_fails_its_append_and_the_partition_goes_on() {
    for durability in [Durability::Os, Durability::Fsync] {
        for files in [Files::Ext("log"), Files::Ext("index")] {
            for (errno, times) in CREATE_FAULTS {
                let what = format!("{durability:?}, create of the new {files:?} fails ({errno})");
                let dir = tempfile::tempdir().unwrap();
                let faults = Faults::new();
                // One byte: every batch gets a segment of its own, so every append rolls.
                let store = store_with_topic(dir.path(), &faults, topic(durability, Some(1)));
                let p = partition(&store);
                let mut ledger = Vec::new();
                for seed in 1..=2 {
                    append_ok(&p, seed, &mut ledger).await;
                }
                assert_eq!(p.stats().segments, 2, "{what}: the segments did not roll");

                faults.fail_times(FileOp::Create, files, times, errno);
                let err = p.append(native_batch(&bodies(99))).await.unwrap_err();
                assert!(
                    faults.fired(FileOp::Create, files) >= 1,
                    "{what}: fault not reached"
                );
                faults.clear();
                assert_eq!(raw_os_error(&err), Some(errno), "{what}: {err}");
                assert_holds_exactly(&p, &ledger);
                assert_eq!(p.stats().segments, 2, "{what}");
                // Nothing of the new segment was left, so the partition goes on: the next
                // append rolls, with no gap in the offsets.
                append_ok(&p, 3, &mut ledger).await;
                assert_eq!(p.stats().segments, 3, "{what}");
                assert_eq!(ledger[2].at.base_offset, ledger[1].at.last_offset + 1);
                assert_holds_exactly(&p, &ledger);
                store.close().unwrap();
                drop(p);
                drop(store);

                let (store, report) = reopen_plain(dir.path());
                assert!(
                    report.repaired.is_empty(),
                    "{what}: reopening had to repair {:?}",
                    report.repaired
                );
                let p = partition(&store);
                assert_holds_exactly(&p, &ledger);
                append_ok(&p, 4, &mut ledger).await;
                assert_holds_exactly(&p, &ledger);
                assert_eq!(p.stats().segments, 4, "{what}");
            }
        }
    }
}

/// One message of `len` bytes: batches of known sizes, to place a roll between two of them.
fn sized_batch(seed: u64, len: usize) -> Vec<Vec<u8>> {
    vec![seeded_body(seed, 0, len)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_roll_that_fails_after_a_write_in_the_same_group_keeps_what_was_written() {
    /// Holds the first two small batches, not the large third one.
    const SEGMENT: u64 = 1_000;
    for durability in [Durability::Os, Durability::Fsync] {
        for (errno, times) in CREATE_FAULTS {
            let what = format!("{durability:?}, create of the new log fails ({errno})");
            let dir = tempfile::tempdir().unwrap();
            let faults = Faults::new();
            let store = store_with_topic(dir.path(), &faults, topic(durability, Some(SEGMENT)));
            let p = partition(&store);
            let (first, second, third) = (
                sized_batch(1, 10),
                sized_batch(2, 10),
                sized_batch(3, 2_000),
            );

            // The writer is held in the first batch's write, so the next two wait together and
            // go in one group: the second is written to the active segment, then the third
            // needs a new segment, whose creation fails. The first is submitted from a thread
            // of its own: an `os` append to an idle partition is written by its submitter.
            let (started, release) = faults.hold_next_log_write();
            let a = {
                let (p, batch) = (Arc::clone(&p), native_batch(&first));
                tokio::task::spawn_blocking(move || p.submit(batch))
            };
            started
                .recv_timeout(WAIT)
                .expect("the first write did not start");
            let b = p.submit(native_batch(&second));
            let c = p.submit(native_batch(&third));
            faults.fail_times(FileOp::Create, Files::Ext("log"), times, errno);
            release.send(()).unwrap();
            let mut ledger = vec![
                Acked {
                    at: a.await.unwrap().await.unwrap(),
                    bodies: first,
                },
                Acked {
                    at: b.await.expect("the batch written before the failed roll"),
                    bodies: second,
                },
            ];
            let err = c.await.unwrap_err();
            assert!(
                faults.fired(FileOp::Create, Files::Ext("log")) >= 1,
                "{what}: fault not reached"
            );
            faults.clear();
            assert_eq!(raw_os_error(&err), Some(errno), "{what}: {err}");
            assert_holds_exactly(&p, &ledger);
            assert_eq!(p.stats().segments, 1, "{what}");

            // The fault has cleared: the same batch goes in now, in a new segment.
            let at = p.append(native_batch(&third)).await.unwrap();
            ledger.push(Acked { at, bodies: third });
            assert_eq!(p.stats().segments, 2, "{what}");
            assert_holds_exactly(&p, &ledger);
            store.close().unwrap();
            drop(p);
            drop(store);

            let (store, report) = reopen_plain(dir.path());
            assert!(report.repaired.is_empty(), "{what}: {:?}", report.repaired);
            assert_holds_exactly(&partition(&store), &ledger);
        }
    }
}

#[test]
fn a_failed_catalog_save_leaves_the_catalog_as_it_was() {
    for op in [FileOp::Write, FileOp::SyncData, FileOp::Rename] {
        let what = format!("{op:?} of catalog.tmp fails");
        let dir = tempfile::tempdir().unwrap();
        let faults = Faults::new();
        let store = store_with_topic(dir.path(), &faults, TopicSettings::default());
        let streams = store.streams();
        let topics = store.topics(Ident::Id(0)).unwrap();
        let catalog = std::fs::read(dir.path().join("catalog")).unwrap();
        let files = Files::Name("catalog.tmp");

        faults.fail_once(op, files, EIO);
        let err = store
            .create_topic(Ident::Id(0), "u", 2, TopicSettings::default())
            .unwrap_err();
        assert_eq!(faults.fired(op, files), 1, "{what}: fault not reached");
        assert_eq!(raw_os_error(&err), Some(EIO), "{what}: {err}");
        faults.fail_once(op, files, ENOSPC);
        let err = store.create_stream("s2").unwrap_err();
        assert_eq!(faults.fired(op, files), 2, "{what}: fault not reached");
        assert_eq!(raw_os_error(&err), Some(ENOSPC), "{what}: {err}");

        assert_eq!(store.streams(), streams, "{what}");
        assert_eq!(store.topics(Ident::Id(0)).unwrap(), topics, "{what}");
        assert!(store.topic(Ident::Id(0), "u".into()).is_err(), "{what}");
        assert_eq!(
            std::fs::read(dir.path().join("catalog")).unwrap(),
            catalog,
            "{what}"
        );
        assert!(
            !dir.path().join("catalog.tmp").exists(),
            "{what}: tmp left behind"
        );
        let streams_dir = dir.path().join("streams");
        assert!(
            !streams_dir.join("1").exists(),
            "{what}: the new stream's folder is left"
        );
        assert!(
            !streams_dir.join("0/topics/1").exists(),
            "{what}: the new topic's folder is left"
        );
        drop(store);

        let (store, report) = reopen_plain(dir.path());
        assert!(
            report.removed_orphans.is_empty(),
            "{what}: {:?}",
            report.removed_orphans
        );
        assert_eq!(store.streams(), streams, "{what}");
        assert_eq!(store.topics(Ident::Id(0)).unwrap(), topics, "{what}");
        // Nothing is stuck: the same changes work now.
        store
            .create_topic(Ident::Id(0), "u", 2, TopicSettings::default())
            .unwrap();
        store.create_stream("s2").unwrap();
    }
}

fn offset_key(partition: u32) -> OffsetKey {
    OffsetKey {
        owner: OffsetOwner::Group("g".into()),
        stream: 0,
        topic: 0,
        partition,
    }
}

fn offset(next: u64) -> CommittedOffset {
    CommittedOffset {
        next_offset: next,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp: 1,
    }
}

#[test]
fn a_failed_offsets_journal_write_keeps_the_previous_value() {
    for torn in [0, 9] {
        let dir = tempfile::tempdir().unwrap();
        let faults = Faults::new();
        let store = open_faulty(dir.path(), &faults);
        let offsets = store.offsets();
        offsets.commit(offset_key(0), offset(1)).unwrap();
        let journal = Files::Name("journal");

        faults.fail_write_torn(journal, ENOSPC, torn);
        let err = offsets
            .commit_many(vec![(offset_key(0), offset(2)), (offset_key(1), offset(2))])
            .unwrap_err();
        assert_eq!(faults.fired(FileOp::Write, journal), 1, "fault not reached");
        assert_eq!(raw_os_error(&err), Some(ENOSPC), "{err}");
        assert_eq!(offsets.get(&offset_key(0)), Some(offset(1)));
        assert_eq!(offsets.get(&offset_key(1)), None);

        offsets.commit(offset_key(2), offset(3)).unwrap();
        offsets.commit(offset_key(0), offset(4)).unwrap();
        assert_eq!(offsets.get(&offset_key(0)), Some(offset(4)));
        store.close().unwrap();
        drop(store);

        let (store, _) = reopen_plain(dir.path());
        let offsets = store.offsets();
        assert_eq!(offsets.get(&offset_key(0)), Some(offset(4)), "torn {torn}");
        assert_eq!(offsets.get(&offset_key(1)), None, "torn {torn}");
        assert_eq!(offsets.get(&offset_key(2)), Some(offset(3)), "torn {torn}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_open_of_a_segment_file_fails_one_call_and_changes_nothing() {
    for files in [Files::Ext("log"), Files::Ext("index")] {
        for durability in [Durability::Os, Durability::Fsync] {
            let what = format!("{files:?} {durability:?}");
            let dir = tempfile::tempdir().unwrap();
            let faults = Faults::new();
            // One file open at a time: the log and the index push each other out, so every
            // append opens both.
            let config = StoreConfig {
                max_open_files: 1,
                ..config(&faults)
            };
            let store = LogStore::open(dir.path(), config).unwrap().0;
            store.create_stream("s").unwrap();
            store
                .create_topic(Ident::Id(0), "t", 1, topic(durability, None))
                .unwrap();
            let p = partition(&store);
            let mut ledger = Vec::new();
            for seed in 1..=3 {
                append_ok(&p, seed, &mut ledger).await;
            }
            let opens = faults.count(FileOp::Open, files);
            assert!(
                opens >= 3,
                "{what}: the file was not reopened ({opens} opens)"
            );

            // One EMFILE: the cache closes another of its files and the open goes through.
            let closes = faults.count(FileOp::Close, Files::Ext("log"))
                + faults.count(FileOp::Close, Files::Ext("index"));
            faults.fail_once(FileOp::Open, files, EMFILE);
            append_ok(&p, 4, &mut ledger).await;
            assert_eq!(
                faults.fired(FileOp::Open, files),
                1,
                "{what}: fault not reached"
            );
            let closed = faults.count(FileOp::Close, Files::Ext("log"))
                + faults.count(FileOp::Close, Files::Ext("index"))
                - closes;
            assert!(
                closed >= 1,
                "{what}: no cached file was closed to make room"
            );
            faults.clear();

            // EMFILE again after that: the call fails.
            faults.fail_times(FileOp::Open, files, 2, EMFILE);
            let err = p.append(native_batch(&bodies(99))).await.unwrap_err();
            assert_eq!(
                faults.fired(FileOp::Open, files),
                2,
                "{what}: fault not reached"
            );
            faults.clear();
            assert_eq!(raw_os_error(&err), Some(EMFILE), "{what}: {err}");
            assert_holds_exactly(&p, &ledger);
            // Nothing was written, so the partition goes on with no gap in the offsets.
            for seed in 5..=6 {
                append_ok(&p, seed, &mut ledger).await;
            }
            assert_eq!(
                ledger[4].at.base_offset,
                ledger[3].at.last_offset + 1,
                "{what}"
            );

            // The append opened the index last, so the log is closed: a read that cannot open
            // it fails alone.
            if files == Files::Ext("log") {
                faults.fail_times(FileOp::Open, files, 2, EMFILE);
                let err = p.read(0, u64::MAX).unwrap_err();
                assert_eq!(
                    faults.fired(FileOp::Open, files),
                    2,
                    "{what}: fault not reached"
                );
                faults.clear();
                assert_eq!(raw_os_error(&err), Some(EMFILE), "{what}: {err}");
            }
            assert_holds_exactly(&p, &ledger);
            store.close().unwrap();
            drop(p);
            drop(store);
            let (store, report) = reopen_plain(dir.path());
            assert!(report.repaired.is_empty(), "{what}: {:?}", report.repaired);
            assert_holds_exactly(&partition(&store), &ledger);
        }
    }
}
