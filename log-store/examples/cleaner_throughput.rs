//! Measures the log cleaner's throughput: appends `MB` megabytes (default 256) of 1 KB records
//! keyed over 10,000 keys (the toy format of the compaction tests) to a compacted topic, then
//! times one cleaning of the sealed segments and prints what it read and wrote per second.
//!
//! `cargo run --release -p wharf-log-store --example cleaner_throughput [MB] [dir]`

#![allow(clippy::unwrap_used)] // a measuring tool: a failed unwrap is a failed run

#[path = "../tests/common/toy.rs"]
mod toy;

use std::time::{Duration, Instant};

use toy::{toy_batch, Toy, ToyKeys};
use wharf_log_store::{CleanerConfig, CleanupPolicy, Ident, LogStore, StoreConfig, TopicSettings};

const RECORD: usize = 1024;
const KEYS: u64 = 10_000;
const PER_BATCH: u64 = 64;

fn main() {
    let mut args = std::env::args().skip(1);
    let mb: u64 = args.next().map_or(256, |a| a.parse().unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let dir = args
        .next()
        .map_or_else(|| tmp.path().to_path_buf(), Into::into);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = StoreConfig {
        background_tasks: false,
        cleaner: CleanerConfig {
            min_cleanable_dirty_ratio: wharf_log_store::Ratio::new(0.0).unwrap(),
            ..CleanerConfig::default()
        },
        ..StoreConfig::default()
    };
    let (store, _) = LogStore::open(&dir, config).unwrap();
    store.create_stream("bench").unwrap();
    let settings = TopicSettings {
        segment_size: Some(((mb << 20) / 4).max(1 << 20)),
        cleanup_policy: CleanupPolicy {
            delete: false,
            compact: true,
        },
        ..TopicSettings::default()
    };
    store.create_topic(Ident::Id(0), "t", 1, settings).unwrap();
    let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();

    let records = (mb << 20) / RECORD as u64;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let value_len = RECORD - 64 - 2 - 8;
    let started = Instant::now();
    let mut n = 0u64;
    while n < records {
        let batch: Vec<Toy> = (0..PER_BATCH.min(records - n))
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                Toy::Value {
                    key: format!("{:08}", x % KEYS).into_bytes(),
                    value: vec![(n + i) as u8; value_len],
                }
            })
            .collect();
        n += batch.len() as u64;
        rt.block_on(p.append(toy_batch(&batch, 0))).unwrap();
    }
    store.sync_all().unwrap();
    let appended = started.elapsed();
    let before = p.stats();
    println!(
        "appended {} records, {:.1} MB in {:.1} s; {} segments",
        records,
        before.size_bytes as f64 / 1e6,
        appended.as_secs_f64(),
        before.segments
    );

    let keys = ToyKeys::default();
    let started = Instant::now();
    let report = store.clean_once(&keys, u64::MAX / 2).unwrap();
    let took = started.elapsed().max(Duration::from_micros(1));
    let after = p.stats();
    for c in &report.cleaned {
        let sealed_in = c.bytes_removed + c.bytes_written;
        println!(
            "cleaned {}: {} sealed segments ({:.1} MB) -> {} ({:.1} MB); read {:.1} MB, removed {} records, map {} keys",
            c.partition,
            c.segments_before,
            sealed_in as f64 / 1e6,
            c.segments_after,
            c.bytes_written as f64 / 1e6,
            c.bytes_read as f64 / 1e6,
            c.records_removed,
            c.map_keys
        );
        println!(
            "throughput: {:.1} MB/s of sealed log cleaned, {:.1} MB/s read + written, in {:.2} s",
            sealed_in as f64 / 1e6 / took.as_secs_f64(),
            (c.bytes_read + c.bytes_written) as f64 / 1e6 / took.as_secs_f64(),
            took.as_secs_f64()
        );
    }
    println!(
        "log {:.1} MB -> {:.1} MB",
        before.size_bytes as f64 / 1e6,
        after.size_bytes as f64 / 1e6
    );
    store.close().unwrap();
}
