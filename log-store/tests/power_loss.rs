//! Power-loss test, in the manner of redb's crash tests: a [`FileHook`] keeps a *durable
//! image* of the data directory beside the live one, updated only by the operations that make
//! something durable. Several tasks append concurrently to an `fsync` topic (three partitions,
//! small segments, so segments roll) and commit consumer offsets, recording every batch and
//! offset acknowledged; at a seeded, random file operation the power "fails": the image is
//! copied into a fresh directory, a store is opened there, and every batch acknowledged before
//! the power failed must be present at its offset with identical bytes, with nothing after it
//! but whole batches that were sent. Run for a handful of seeds; each is printed, and
//! `WHARF_TEST_SEED` picks another base seed.
//!
//! What the model assumes of the file system (roughly ext4 and XFS with barriers on a disk that
//! honours flushes):
//!
//! - `fdatasync` of a file makes its current contents and size durable: the image takes a copy
//!   of the whole file. Data belongs to the file (inode), not the name, so it follows renames.
//! - Bytes written after a file's last sync may partly survive: at the crash, a file that has
//!   only grown since its last sync keeps, at random, nothing more, a prefix of the new bytes,
//!   or that many zero bytes (size updated, data not). Synced bytes are never damaged, and a
//!   truncation (`set_len`) counts only once a later sync of the file records it.
//! - A name (a created file, a rename, a removal) becomes durable only when its folder is
//!   synced; until then the folder keeps its old entries. Removals therefore wait for a folder
//!   sync too (the store does not promise that retention's deletions survive power loss).
//! - Folders made by `create_dir_all` are entries of their parents like files: one becomes
//!   durable when its parent is synced (the store syncs the ancestors of a new partition). A
//!   file or folder survives only if every folder above it does. The data directory itself
//!   exists.
//! - A file whose name is durable but whose data never was appears empty (plus any torn tail).
//! - The power fails before file operation number K of the whole run (counted across threads,
//!   from opening the store), K drawn from the seed: sometimes during setup, usually while the
//!   appends run.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use common::power::PowerLoss;
use common::*;
use parking_lot::Mutex;
use wharf_log_store::{
    CommittedOffset, Disk, Durability, FileHook, Ident, LogStore, OffsetKey, OffsetOwner,
    StoreConfig, TopicSettings,
};

const SEEDS: u64 = 8;
const PARTITIONS: u32 = 3;
const WRITERS_PER_PARTITION: u32 = 2;
const MAX_APPENDS_PER_WRITER: u64 = 200;
/// The power fails before an operation drawn from 0..this.
const CRASH_WINDOW: u64 = 1500;

/// A batch acknowledged before the power failed, as the live store stored it.
#[derive(Debug)]
struct Acked {
    base: u64,
    bytes: bytes::Bytes,
}

#[derive(Debug, Default)]
struct Ledger {
    /// Per partition: batches acknowledged before the power failed.
    acked: BTreeMap<u32, Vec<Acked>>,
    /// Per partition: the message bodies of every batch sent, acknowledged or not.
    sent: BTreeMap<u32, Vec<Vec<Vec<u8>>>>,
    /// Per writer: the next offset it committed and synced before the power failed, and
    /// every one it committed.
    offsets_synced: BTreeMap<(u32, u32), u64>,
    offsets_committed: BTreeMap<(u32, u32), Vec<u64>>,
}

fn offset_key(partition: u32, writer: u32) -> OffsetKey {
    OffsetKey {
        owner: OffsetOwner::Consumer(format!("w{writer}")),
        stream: 0,
        topic: 0,
        partition,
    }
}

fn batch_seed(run: u64, partition: u32, writer: u32, i: u64) -> u64 {
    run ^ (u64::from(partition) << 48) ^ (u64::from(writer) << 40) ^ i.wrapping_mul(0x9E37_79B9)
}

fn batch_bodies(seed: u64) -> Vec<Vec<u8>> {
    let count = (seed % 4 + 1) as usize;
    let size = (seed % 200 + 1) as usize;
    (0..count).map(|i| seeded_body(seed, i, size)).collect()
}

async fn run_writer(
    store: LogStore,
    power: Arc<PowerLoss>,
    ledger: Arc<Mutex<Ledger>>,
    run: u64,
    partition: u32,
    writer: u32,
) {
    let p = store
        .partition(Ident::Id(0), Ident::Id(0), partition)
        .unwrap();
    for i in 0..MAX_APPENDS_PER_WRITER {
        let bodies = batch_bodies(batch_seed(run, partition, writer, i));
        ledger
            .lock()
            .sent
            .entry(partition)
            .or_default()
            .push(bodies.clone());
        let res = p.append(native_batch(&bodies)).await.unwrap();
        if power.crashed() {
            return;
        }
        // Acknowledged before the power failed: it must survive. Record it as stored.
        let read = p.read(res.base_offset, 1).unwrap();
        let stored = read.batches.first().unwrap();
        assert_eq!(stored.base_offset(), res.base_offset);
        ledger
            .lock()
            .acked
            .entry(partition)
            .or_default()
            .push(Acked {
                base: res.base_offset,
                bytes: stored.as_bytes().clone(),
            });
        if i % 8 == 7 {
            let key = offset_key(partition, writer);
            let next = res.last_offset + 1;
            let value = CommittedOffset {
                next_offset: next,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp: 1,
            };
            let offsets = store.clone();
            tokio::task::spawn_blocking(move || {
                offsets.offsets().commit(key, value).unwrap();
            })
            .await
            .unwrap();
            ledger
                .lock()
                .offsets_committed
                .entry((partition, writer))
                .or_default()
                .push(next);
            let syncing = store.clone();
            tokio::task::spawn_blocking(move || syncing.offsets().sync().unwrap())
                .await
                .unwrap();
            if power.crashed() {
                return;
            }
            ledger
                .lock()
                .offsets_synced
                .insert((partition, writer), next);
        }
    }
}

/// Runs one seed: appends until the power fails, then checks the recovered store.
async fn one_run(run: u64) {
    let mut rng = Rng(run);
    let crash_before = rng.below(CRASH_WINDOW);
    println!("power-loss seed {run:#x}: the power fails before file operation {crash_before}");
    let live = tempfile::tempdir().unwrap();
    let power = PowerLoss::new(live.path(), crash_before, rng.next());
    let hook: Arc<dyn FileHook> = power.clone();
    let config = StoreConfig {
        disk: Disk::with_hook(hook),
        ..common::config()
    };
    let (store, _) = LogStore::open(live.path(), config).unwrap();
    store.create_stream("power").unwrap();
    let settings = TopicSettings {
        durability: Some(Durability::Fsync),
        segment_size: Some(2048),
        ..TopicSettings::default()
    };
    store
        .create_topic(Ident::Id(0), "t", PARTITIONS, settings)
        .unwrap();

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut tasks = Vec::new();
    for partition in 0..PARTITIONS {
        for writer in 0..WRITERS_PER_PARTITION {
            tasks.push(tokio::spawn(run_writer(
                store.clone(),
                Arc::clone(&power),
                Arc::clone(&ledger),
                run,
                partition,
                writer,
            )));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    if !power.crashed() {
        println!("  (the writers finished first; the power fails at the end)");
    }
    power.crash_now();
    store.close().unwrap();
    drop(store);

    let image = power.image();
    let after = tempfile::tempdir().unwrap();
    image.materialise(after.path());
    let ledger = std::mem::take(&mut *ledger.lock());
    let acked_batches: usize = ledger.acked.values().map(Vec::len).sum();
    println!(
        "  {acked_batches} batches acknowledged before the power failed; {} files survive",
        image.files.len()
    );

    let (store, _report) = LogStore::open(after.path(), common::config())
        .unwrap_or_else(|e| panic!("seed {run:#x}: the store does not open after the crash: {e}"));
    check_recovered(run, &store, &ledger);
    store.close().unwrap();
    drop(store);

    // Recovery leaves a store that opens cleanly and works.
    let (store, report) = LogStore::open(after.path(), common::config()).unwrap();
    assert!(
        report.repaired.is_empty() && report.removed_orphans.is_empty(),
        "seed {run:#x}: a second open still repaired {report:?}"
    );
    check_recovered(run, &store, &ledger);
    if let Ok(p) = store.partition(Ident::Id(0), Ident::Id(0), 0) {
        p.append(native_batch(&[b"after"])).await.unwrap();
    }
}

fn check_recovered(run: u64, store: &LogStore, ledger: &Ledger) {
    let Ok(parts) = store.partitions(Ident::Id(0), Ident::Id(0)) else {
        assert!(
            ledger.acked.is_empty() && ledger.offsets_synced.is_empty(),
            "seed {run:#x}: the topic is gone, but batches were acknowledged"
        );
        return;
    };
    assert_eq!(parts.len(), PARTITIONS as usize);
    for p in &parts {
        let partition = p.key().partition;
        let mut batches = Vec::new();
        let mut from = 0;
        loop {
            let read = p.read(from, u64::MAX).unwrap();
            let Some(last) = read.batches.last() else {
                break;
            };
            from = last.last_offset() + 1;
            batches.extend(read.batches);
        }
        // Whole batches with dense offsets from 0, and no stray bytes after the last one.
        let mut next = 0;
        let mut size = 0;
        for b in &batches {
            b.verify()
                .unwrap_or_else(|e| panic!("seed {run:#x}: partition {partition}: {e}"));
            assert_eq!(
                b.base_offset(),
                next,
                "seed {run:#x}: partition {partition}"
            );
            next = b.last_offset() + 1;
            size += b.as_bytes().len() as u64;
        }
        let stats = p.stats();
        assert_eq!(
            stats.high_watermark, next,
            "seed {run:#x}: partition {partition}"
        );
        assert_eq!(
            stats.size_bytes, size,
            "seed {run:#x}: partition {partition} keeps bytes that are not whole batches"
        );
        // Every acknowledged batch, at its offset, byte for byte.
        let by_base: HashMap<u64, &bytes::Bytes> = batches
            .iter()
            .map(|b| (b.base_offset(), b.as_bytes()))
            .collect();
        let acked = ledger.acked.get(&partition).map_or(&[][..], Vec::as_slice);
        for a in acked {
            let got = by_base.get(&a.base).unwrap_or_else(|| {
                panic!(
                    "seed {run:#x}: partition {partition}: acknowledged batch at {} is lost \
                     (high watermark {next})",
                    a.base
                )
            });
            assert_eq!(
                **got, a.bytes,
                "seed {run:#x}: partition {partition}: batch at {} changed",
                a.base
            );
        }
        // Whatever else is there was sent (acknowledged after the crash or not at all).
        let sent = ledger.sent.get(&partition).map_or(&[][..], Vec::as_slice);
        for b in &batches {
            assert!(
                sent.contains(&native_bodies(&b.payload())),
                "seed {run:#x}: partition {partition}: batch at {} was never sent",
                b.base_offset()
            );
        }
    }
    for (&(partition, writer), &synced) in &ledger.offsets_synced {
        let got = store
            .offsets()
            .get(&offset_key(partition, writer))
            .unwrap_or_else(|| panic!("seed {run:#x}: synced offset of w{writer} lost"));
        let committed = &ledger.offsets_committed[&(partition, writer)];
        assert!(
            got.next_offset >= synced && committed.contains(&got.next_offset),
            "seed {run:#x}: w{writer} on {partition}: synced {synced}, recovered {}",
            got.next_offset
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_batches_survive_power_loss() {
    let base = test_seed();
    for i in 0..SEEDS {
        one_run(base.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1).await;
    }
}
