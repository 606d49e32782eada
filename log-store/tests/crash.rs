//! Crash test: a child process appends under load and reports every acknowledged batch; the
//! parent kills it with SIGKILL at a random moment, reopens the store and checks that every
//! acknowledged batch reads back intact, that committed offsets are kept, and that no partial
//! batch is visible. Repeated for both durability modes, 24 times.
//!
//! The child is this same test binary running the ignored test `crash_child_process` with
//! `WHARF_CRASH_DIR` set; run by hand it does nothing.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use wharf_log_store::{
    CommittedOffset, Durability, Ident, LogStore, OffsetKey, OffsetOwner, StoreConfig,
    TopicSettings,
};

const DIR_ENV: &str = "WHARF_CRASH_DIR";
const SEED_ENV: &str = "WHARF_CRASH_SEED";
const KILLS: usize = 24;
const TOPICS: [(&str, Durability); 2] = [("os", Durability::Os), ("fsync", Durability::Fsync)];
const PARTITIONS: u32 = 2;

/// Count and message size of the batch made from `seed`.
fn shape(seed: u64) -> (usize, usize) {
    ((seed % 7 + 1) as usize, (seed % 301 + 1) as usize)
}

fn group_key(topic: u32, partition: u32) -> OffsetKey {
    OffsetKey {
        owner: OffsetOwner::Group("crash".into()),
        stream: 0,
        topic,
        partition,
    }
}

#[test]
#[ignore = "child process of crash_test_every_acknowledged_batch_survives_sigkill"]
fn crash_child_process() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let run_seed: u64 = std::env::var(SEED_ENV).unwrap().parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = StoreConfig {
        fsync_interval: Duration::from_millis(20),
        ..StoreConfig::default()
    };
    let (store, _) = LogStore::open(&dir, config).unwrap();
    if store.streams().is_empty() {
        store.create_stream("crash").unwrap();
        for (name, durability) in TOPICS {
            let settings = TopicSettings {
                durability: Some(durability),
                segment_size: Some(16 * 1024),
                ..TopicSettings::default()
            };
            store
                .create_topic(Ident::Id(0), name, PARTITIONS, settings)
                .unwrap();
        }
    }
    rt.block_on(async {
        let mut tasks = Vec::new();
        for topic in 0..TOPICS.len() as u32 {
            for partition in 0..PARTITIONS {
                let p = store
                    .partition(Ident::Id(0), Ident::Id(topic), partition)
                    .unwrap();
                let store = store.clone();
                tasks.push(tokio::spawn(async move {
                    for n in 0u64.. {
                        let seed = (run_seed << 24)
                            ^ (u64::from(topic * PARTITIONS + partition) << 20)
                            ^ n;
                        let (count, size) = shape(seed);
                        let r = p.append(seeded_batch(seed, count, size)).await.unwrap();
                        println!(
                            "ack {topic} {partition} {} {} {seed}",
                            r.base_offset, r.last_offset
                        );
                        let next = r.last_offset + 1;
                        let value = CommittedOffset {
                            next_offset: next,
                            leader_epoch: -1,
                            ..CommittedOffset::default()
                        };
                        store
                            .offsets()
                            .commit(group_key(topic, partition), value)
                            .unwrap();
                        println!("commit {topic} {partition} {next}");
                        std::io::stdout().flush().unwrap();
                    }
                }));
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[derive(Debug, Clone, Copy)]
struct Ack {
    base: u64,
    last: u64,
    seed: u64,
}

#[test]
fn crash_test_every_acknowledged_batch_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let seed = test_seed();
    eprintln!("crash test seed {seed}");
    let mut rng = Rng(seed);
    let mut acks: HashMap<(u32, u32), Vec<Ack>> = HashMap::new();
    let mut commits: HashMap<(u32, u32), u64> = HashMap::new();
    let exe = std::env::current_exe().unwrap();

    for run in 0..KILLS {
        let kill_after = 1 + rng.next() % 400;
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_process",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_ENV, dir.path())
            .env(SEED_ENV, (run as u64 + 1).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut acked = 0;
        while acked < kill_after {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    acked += u64::from(line.starts_with("ack "));
                    lines.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let out = child.wait_with_output().unwrap();
                    panic!(
                        "run {run}: child gave {acked} of {kill_after} acks before the deadline or exited; stderr:\n{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
        }
        // Let it run on for a random moment so the kill lands anywhere in the write path.
        let spin = Instant::now() + Duration::from_micros(rng.next() % 3000);
        while Instant::now() < spin {
            std::hint::spin_loop();
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());

        for line in &lines {
            let f: Vec<&str> = line.split(' ').collect();
            let num = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok());
            match (f.first(), num(1), num(2)) {
                (Some(&"ack"), Some(t), Some(p)) => {
                    if let (Some(base), Some(last), Some(seed)) = (num(3), num(4), num(5)) {
                        acks.entry((t as u32, p as u32)).or_default().push(Ack {
                            base,
                            last,
                            seed,
                        });
                    }
                }
                (Some(&"commit"), Some(t), Some(p)) => {
                    if let Some(next) = num(3) {
                        commits.insert((t as u32, p as u32), next);
                    }
                }
                _ => {}
            }
        }

        verify(dir.path(), &acks, &commits, run);
    }
    let total: usize = acks.values().map(Vec::len).sum();
    eprintln!("{KILLS} kills, {total} acknowledged batches verified");
}

fn verify(
    dir: &std::path::Path,
    acks: &HashMap<(u32, u32), Vec<Ack>>,
    commits: &HashMap<(u32, u32), u64>,
    run: usize,
) {
    let (store, report) = LogStore::open(dir, config()).unwrap();
    if !report.repaired.is_empty() {
        eprintln!("run {run}: recovery repaired {:?}", report.repaired);
    }
    for topic in 0..TOPICS.len() as u32 {
        for partition in 0..PARTITIONS {
            let p = store
                .partition(Ident::Id(0), Ident::Id(topic), partition)
                .unwrap();
            // Every visible batch is whole, checksummed and follows the one before.
            let mut next = 0;
            let mut by_base = HashMap::new();
            loop {
                let r = p.read(next, 1 << 20).unwrap();
                if r.batches.is_empty() {
                    assert_eq!(
                        next, r.high_watermark,
                        "run {run}: reads stop short of the high watermark"
                    );
                    break;
                }
                for b in r.batches {
                    b.verify()
                        .unwrap_or_else(|e| panic!("run {run}: batch at {}: {e}", b.base_offset()));
                    assert_eq!(
                        b.base_offset(),
                        next,
                        "run {run}: gap or overlap in {topic}/{partition}"
                    );
                    next = b.last_offset() + 1;
                    by_base.insert(b.base_offset(), b);
                }
            }
            // Every acknowledged batch is there with its contents.
            for ack in acks.get(&(topic, partition)).into_iter().flatten() {
                let b = by_base.get(&ack.base).unwrap_or_else(|| {
                    panic!("run {run}: acknowledged batch {ack:?} of {topic}/{partition} is lost")
                });
                assert_eq!(b.last_offset(), ack.last, "run {run}: {ack:?}");
                let (count, size) = shape(ack.seed);
                let want: Vec<Vec<u8>> =
                    (0..count).map(|i| seeded_body(ack.seed, i, size)).collect();
                assert_eq!(
                    native_bodies(&b.payload()),
                    want,
                    "run {run}: contents of {ack:?}"
                );
            }
            if let Some(&committed) = commits.get(&(topic, partition)) {
                let stored = store
                    .offsets()
                    .get(&group_key(topic, partition))
                    .map(|c| c.next_offset);
                assert!(
                    stored.is_some_and(|s| s >= committed),
                    "run {run}: committed {committed} on {topic}/{partition}, found {stored:?}"
                );
            }
        }
    }
    store.close().unwrap();
}
