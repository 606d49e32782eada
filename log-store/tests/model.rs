//! Model-based test: random sequences of appends, reads, timestamp look-ups, retention and
//! close/reopen must agree with a plain in-memory model of partitions and segments.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::*;
use proptest::prelude::*;
use wharf_log_store::{Ident, LogStore, NewBatch, TopicSettings, ENVELOPE_LEN};

const TOPICS: usize = 2;
const PARTITIONS: usize = 2;

#[derive(Debug, Clone)]
enum Op {
    Append {
        topic: usize,
        partition: usize,
        count: usize,
        size: usize,
        kafka: Option<(i64, i64)>,
    },
    Read {
        topic: usize,
        partition: usize,
        from: u64,
        budget: u64,
    },
    OffsetForTimestamp {
        topic: usize,
        partition: usize,
        pick: usize,
        delta: i64,
    },
    Retention {
        advance_us: u64,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let tp = (0..TOPICS, 0..PARTITIONS);
    prop_oneof![
        6 => (tp.clone(), 1..5usize, 0..300usize, proptest::option::of((0..5_000i64, 0..100i64)))
            .prop_map(|((topic, partition), count, size, kafka)| Op::Append {
                topic,
                partition,
                count,
                size,
                kafka: kafka.map(|(first, extra)| (first, first + extra)),
            }),
        3 => (tp.clone(), 0..60u64, prop_oneof![Just(0u64), 0..3000u64, Just(u64::MAX)])
            .prop_map(|((topic, partition), from, budget)| Op::Read { topic, partition, from, budget }),
        2 => (tp, 0..50usize, -2..3i64).prop_map(|((topic, partition), pick, delta)| {
            Op::OffsetForTimestamp { topic, partition, pick, delta }
        }),
        1 => prop_oneof![Just(0u64), 0..2_000u64, Just(3_600_000_000u64)]
            .prop_map(|advance_us| Op::Retention { advance_us }),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Debug, Clone)]
struct MBatch {
    base: u64,
    count: u64,
    stored_len: u64,
    max_ts: u64,
    append_ts: u64,
    bodies: Option<Vec<Vec<u8>>>,
}

#[derive(Debug, Clone)]
struct MSegment {
    base: u64,
    size: u64,
    batches: Vec<MBatch>,
}

#[derive(Debug, Clone)]
struct MPartition {
    segments: Vec<MSegment>,
    next: u64,
}

impl MPartition {
    fn new() -> Self {
        MPartition {
            segments: vec![MSegment {
                base: 0,
                size: 0,
                batches: vec![],
            }],
            next: 0,
        }
    }
    fn log_start(&self) -> u64 {
        self.segments[0].base
    }
    fn batches(&self) -> impl Iterator<Item = &MBatch> {
        self.segments.iter().flat_map(|s| s.batches.iter())
    }
    fn size(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }
}

#[derive(Debug, Clone)]
struct Config {
    segment_size: u64,
    max_size: Option<u64>,
    expiry_us: Option<u64>,
}

fn config_strategy() -> impl Strategy<Value = Config> {
    (
        prop_oneof![Just(1u64), Just(700), Just(2_500), Just(1 << 20)],
        proptest::option::of(prop_oneof![Just(1u64), Just(3_000), Just(20_000)]),
        proptest::option::of(prop_oneof![Just(1u64), Just(1_000), Just(1_000_000)]),
    )
        .prop_map(|(segment_size, max_size, expiry_us)| Config {
            segment_size,
            max_size,
            expiry_us,
        })
}

fn settings(c: &Config) -> TopicSettings {
    TopicSettings {
        segment_size: Some(c.segment_size),
        max_size: c.max_size,
        message_expiry: c.expiry_us.map(Duration::from_micros),
        ..TopicSettings::default()
    }
}

fn run(configs: Vec<Config>, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    store.create_stream("s").unwrap();
    for (i, c) in configs.iter().enumerate() {
        store
            .create_topic(
                Ident::Id(0),
                &format!("t{i}"),
                PARTITIONS as u32,
                settings(c),
            )
            .unwrap();
    }
    let mut model: Vec<Vec<MPartition>> = vec![vec![MPartition::new(); PARTITIONS]; TOPICS];
    let mut stamps: Vec<u64> = Vec::new();
    let mut latest = 0u64;
    let mut seed = 0u64;

    for op in ops {
        match op {
            Op::Append {
                topic,
                partition,
                count,
                size,
                kafka,
            } => {
                seed += 1;
                let (batch, bodies): (NewBatch, Option<Vec<Vec<u8>>>) = match kafka {
                    Some((first, max)) => (kafka_batch(count as u32, first, max, size), None),
                    None => {
                        let bodies: Vec<Vec<u8>> = (0..count)
                            .map(|i| seeded_body(seed, i, size / count))
                            .collect();
                        (native_batch(&bodies), Some(bodies))
                    }
                };
                let stored_len = batch.stored_len();
                let p = store
                    .partition(Ident::Id(0), Ident::Id(topic as u32), partition as u32)
                    .unwrap();
                let r = rt.block_on(p.append(batch)).unwrap();
                let m = &mut model[topic][partition];
                prop_assert_eq!(r.base_offset, m.next);
                prop_assert_eq!(r.last_offset, m.next + count as u64 - 1);
                let active = m.segments.last().unwrap();
                if active.size > 0 && active.size + stored_len > configs[topic].segment_size {
                    m.segments.push(MSegment {
                        base: m.next,
                        size: 0,
                        batches: vec![],
                    });
                }
                let max_ts = match kafka {
                    Some((_, max)) => max as u64 * 1000,
                    None => r.append_timestamp,
                };
                let seg = m.segments.last_mut().unwrap();
                seg.size += stored_len;
                seg.batches.push(MBatch {
                    base: m.next,
                    count: count as u64,
                    stored_len,
                    max_ts,
                    append_ts: r.append_timestamp,
                    bodies,
                });
                m.next += count as u64;
                stamps.push(max_ts);
                latest = latest.max(r.append_timestamp);
            }
            Op::Read {
                topic,
                partition,
                from,
                budget,
            } => {
                let p = store
                    .partition(Ident::Id(0), Ident::Id(topic as u32), partition as u32)
                    .unwrap();
                let got = p.read(from, budget).unwrap();
                let m = &model[topic][partition];
                prop_assert_eq!(got.high_watermark, m.next);
                prop_assert_eq!(got.log_start_offset, m.log_start());
                let from = from.max(m.log_start());
                let mut want = Vec::new();
                let mut taken = 0;
                for b in m.batches().filter(|b| b.base + b.count > from) {
                    if !want.is_empty() && taken + b.stored_len > budget {
                        break;
                    }
                    taken += b.stored_len;
                    want.push(b);
                }
                prop_assert_eq!(got.batches.len(), want.len());
                for (g, w) in got.batches.iter().zip(want) {
                    prop_assert!(g.verify().is_ok());
                    prop_assert_eq!(g.base_offset(), w.base);
                    prop_assert_eq!(u64::from(g.record_count()), w.count);
                    prop_assert_eq!(g.as_bytes().len() as u64, w.stored_len);
                    prop_assert_eq!(g.envelope().append_timestamp, w.append_ts);
                    prop_assert_eq!(g.as_bytes().len(), ENVELOPE_LEN + g.payload().len());
                    if let Some(bodies) = &w.bodies {
                        prop_assert_eq!(&native_bodies(&g.payload()), bodies);
                        let offsets: Vec<u64> = (w.base..w.base + w.count).collect();
                        prop_assert_eq!(native_offsets(&g.payload()), offsets);
                    }
                }
            }
            Op::OffsetForTimestamp {
                topic,
                partition,
                pick,
                delta,
            } => {
                let ts = stamps
                    .get(pick)
                    .copied()
                    .unwrap_or(latest)
                    .saturating_add_signed(delta);
                let p = store
                    .partition(Ident::Id(0), Ident::Id(topic as u32), partition as u32)
                    .unwrap();
                let m = &model[topic][partition];
                let want = m.batches().find(|b| b.max_ts >= ts).map(|b| b.base);
                prop_assert_eq!(p.offset_for_timestamp(ts).unwrap(), want);
            }
            Op::Retention { advance_us } => {
                let now = latest.saturating_add(advance_us);
                store.enforce_retention(now).unwrap();
                for (t, c) in configs.iter().enumerate() {
                    if let Some(expiry) = c.expiry_us {
                        for m in model[t].iter_mut() {
                            while m.segments.len() > 1
                                && m.segments[0].batches.last().map_or(0, |b| b.append_ts) + expiry
                                    <= now
                            {
                                m.segments.remove(0);
                            }
                        }
                    }
                    if let Some(max) = c.max_size {
                        loop {
                            let size: u64 = model[t].iter().map(MPartition::size).sum();
                            if size <= max {
                                break;
                            }
                            let oldest = model[t]
                                .iter()
                                .enumerate()
                                .filter(|(_, m)| m.segments.len() > 1)
                                .min_by_key(|(i, m)| {
                                    let s = &m.segments[0];
                                    (s.batches.last().map_or(0, |b| b.append_ts), *i, s.base)
                                })
                                .map(|(i, _)| i);
                            let Some(i) = oldest else { break };
                            model[t][i].segments.remove(0);
                        }
                    }
                }
                for (t, parts) in model.iter().enumerate() {
                    for (part, m) in parts.iter().enumerate() {
                        let p = store
                            .partition(Ident::Id(0), Ident::Id(t as u32), part as u32)
                            .unwrap();
                        prop_assert_eq!(p.log_start_offset(), m.log_start());
                        prop_assert_eq!(p.stats().segments, m.segments.len());
                        prop_assert_eq!(p.stats().size_bytes, m.size());
                    }
                }
            }
            Op::Reopen => {
                store.close().unwrap();
                drop(store);
                let (reopened, report) = LogStore::open(dir.path(), config()).unwrap();
                prop_assert!(
                    report.repaired.is_empty(),
                    "clean reopen repaired {:?}",
                    report
                );
                store = reopened;
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn store_agrees_with_model(
        configs in proptest::collection::vec(config_strategy(), TOPICS),
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        run(configs, ops)?;
    }
}
