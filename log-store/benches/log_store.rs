//! Log-store benchmarks: appends of 1000 x 1 KB batches in `os` and `fsync` modes with 1 and 8
//! writers (8 partitions), a sequential read, reopening a partition of 1,000 segments, offset
//! commits, and the machine's own sequential write speed as the yardstick for appends.
//!
//! `cargo bench -p wharf-log-store` (add `-- append` etc. to pick some). Data goes to a temporary
//! folder under `WHARF_BENCH_DIR` if set, else under `target/`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wharf_log_store::{
    CommittedOffset, Durability, Ident, LogStore, NewBatch, OffsetKey, OffsetOwner, StoreConfig,
    TopicSettings, NATIVE_MESSAGE_HEADER_LEN,
};

const MESSAGES: usize = 1000;
const MESSAGE_SIZE: usize = 1024;

fn bench_root() -> PathBuf {
    let root = std::env::var_os("WHARF_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data"));
    std::fs::create_dir_all(&root).expect("create bench folder");
    root
}

/// 1000 Iggy messages of 1 KB payload each.
fn payload() -> BytesMut {
    let mut out = BytesMut::with_capacity(MESSAGES * (NATIVE_MESSAGE_HEADER_LEN + MESSAGE_SIZE));
    for i in 0..MESSAGES {
        let mut header = [0u8; NATIVE_MESSAGE_HEADER_LEN];
        header[8..24].copy_from_slice(&(i as u128 + 1).to_le_bytes());
        header[52..56].copy_from_slice(&(MESSAGE_SIZE as u32).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend((0..MESSAGE_SIZE).map(|j| (i + j) as u8));
    }
    out
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn store_with_topic(durability: Durability, partitions: u32) -> (tempfile::TempDir, LogStore) {
    let dir = tempfile::tempdir_in(bench_root()).expect("temp dir");
    let (store, _) = LogStore::open(dir.path(), StoreConfig::default()).expect("open");
    store.create_stream("bench").expect("stream");
    let settings = TopicSettings {
        durability: Some(durability),
        ..TopicSettings::default()
    };
    store
        .create_topic(Ident::Id(0), "t", partitions, settings)
        .expect("topic");
    (dir, store)
}

fn append(c: &mut Criterion) {
    let rt = runtime();
    let template = payload();
    let mut group = c.benchmark_group("append");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    for durability in [Durability::Os, Durability::Fsync] {
        for writers in [1u32, 8] {
            let (_dir, store) = store_with_topic(durability, 8);
            let partitions = store
                .partitions(Ident::Id(0), Ident::Id(0))
                .expect("partitions");
            group.throughput(Throughput::Bytes(
                (template.len() * writers as usize) as u64,
            ));
            let id = BenchmarkId::new(
                format!("{durability:?}").to_lowercase(),
                format!("{writers}-writers"),
            );
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    rt.block_on(async {
                        let mut tasks = Vec::new();
                        for p in partitions.iter().take(writers as usize) {
                            let p = Arc::clone(p);
                            let template = template.clone();
                            tasks.push(tokio::spawn(async move {
                                for _ in 0..iters {
                                    let batch = NewBatch::native(template.clone()).expect("batch");
                                    p.append(batch).await.expect("append");
                                }
                            }));
                        }
                        for t in tasks {
                            t.await.expect("writer");
                        }
                    });
                    start.elapsed()
                })
            });
            store.close().expect("close");
        }
    }
    group.finish();
}

/// The yardstick: plain 1 MiB `write` calls to a file on the same disk, as `dd bs=1M` does.
fn disk(c: &mut Criterion) {
    let mut group = c.benchmark_group("disk");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    let block = vec![7u8; 1 << 20];
    group.throughput(Throughput::Bytes(block.len() as u64));
    let dir = tempfile::tempdir_in(bench_root()).expect("temp dir");
    let mut file = std::fs::File::create(dir.path().join("dd")).expect("file");
    group.bench_function("write_1MiB_blocks", |b| {
        b.iter(|| file.write_all(&block).expect("write"))
    });
    group.finish();
}

fn read(c: &mut Criterion) {
    let rt = runtime();
    let (_dir, store) = store_with_topic(Durability::Os, 1);
    let p = store
        .partition(Ident::Id(0), Ident::Id(0), 0)
        .expect("partition");
    let template = payload();
    let batches = 256;
    rt.block_on(async {
        for _ in 0..batches {
            p.append(NewBatch::native(template.clone()).expect("batch"))
                .await
                .expect("append");
        }
    });
    let total: u64 = p.stats().size_bytes;
    let mut group = c.benchmark_group("read");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Bytes(total));
    group.bench_function("sequential_8MiB_reads", |b| {
        b.iter(|| {
            let mut offset = 0;
            let mut bytes = 0u64;
            loop {
                let r = p.read(offset, 8 << 20).expect("read");
                let Some(last) = r.batches.last() else { break };
                offset = last.last_offset() + 1;
                bytes += r
                    .batches
                    .iter()
                    .map(|b| b.as_bytes().len() as u64)
                    .sum::<u64>();
            }
            assert_eq!(bytes, total);
        })
    });
    group.finish();
}

fn reopen(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir_in(bench_root()).expect("temp dir");
    {
        let (store, _) = LogStore::open(dir.path(), StoreConfig::default()).expect("open");
        store.create_stream("bench").expect("stream");
        // Segments of one byte: every batch seals the segment before it.
        let settings = TopicSettings {
            segment_size: Some(1),
            ..TopicSettings::default()
        };
        store
            .create_topic(Ident::Id(0), "t", 1, settings)
            .expect("topic");
        let p = store
            .partition(Ident::Id(0), Ident::Id(0), 0)
            .expect("partition");
        let mut small = payload();
        small.truncate((NATIVE_MESSAGE_HEADER_LEN + MESSAGE_SIZE) * 10);
        rt.block_on(async {
            for _ in 0..1000 {
                p.append(NewBatch::native(small.clone()).expect("batch"))
                    .await
                    .expect("append");
            }
        });
        assert_eq!(p.stats().segments, 1000);
        store.close().expect("close");
    }
    let mut group = c.benchmark_group("reopen");
    group.sample_size(10);
    group.bench_function("partition_of_1000_segments", |b| {
        b.iter(|| {
            let config = StoreConfig {
                background_tasks: false,
                ..StoreConfig::default()
            };
            let (store, report) = LogStore::open(dir.path(), config).expect("reopen");
            assert!(report.repaired.is_empty());
            store.close().expect("close");
        })
    });
    group.finish();
}

fn offsets(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(bench_root()).expect("temp dir");
    let (store, _) = LogStore::open(dir.path(), StoreConfig::default()).expect("open");
    let mut group = c.benchmark_group("offsets");
    group.throughput(Throughput::Elements(1));
    let mut next = 0u64;
    group.bench_function("commit", |b| {
        b.iter(|| {
            next += 1;
            let key = OffsetKey {
                owner: OffsetOwner::Group("bench-group".into()),
                stream: 0,
                topic: 0,
                partition: (next % 16) as u32,
            };
            let value = CommittedOffset {
                next_offset: next,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp: 0,
            };
            store.offsets().commit(key, value).expect("commit")
        })
    });
    group.finish();
}

criterion_group!(benches, disk, append, read, reopen, offsets);
criterion_main!(benches);
