//! Model-based test of compaction: random appends of keyed records, tombstones and keyless
//! records (the toy format of `common::toy`), cleanings at random server times, changes of the
//! stable offset and reopenings, against a plain map of everything written. After every step:
//! every record read back is the one written at its offset, offsets strictly increase, the
//! latest value of every key is there, and whatever is gone went by a compaction rule
//! (superseded by a later record of its key, keyless, or a latest tombstone older than
//! `delete.retention.ms` at some cleaning), below the stable offset of some cleaning.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::toy::*;
use proptest::prelude::*;
use wharf_log_store::{
    CleanerConfig, CleanupPolicy, Ident, LogStore, Partition, Ratio, StoreConfig, TopicSettings,
};

const KEYS: u8 = 6;
/// `delete.retention.ms` of the topic.
const RETENTION: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
enum Op {
    /// Records as (key, kind): kinds 0..=5 a value, 6 a tombstone, 7 keyless.
    Append {
        records: Vec<(u8, u8)>,
        producer: u8,
    },
    /// A cleaning at server time now + `skew`, after the skew grows by `advance_s` seconds.
    Clean {
        advance_s: u64,
    },
    /// The stable offset: `hw - back`, or none undecided when `back` is 0.
    Stable {
        back: u64,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (proptest::collection::vec((0..KEYS, 0..8u8), 1..5), 0..3u8)
            .prop_map(|(records, producer)| Op::Append { records, producer }),
        3 => prop_oneof![Just(0u64), Just(1), Just(30)].prop_map(|advance_s| Op::Clean { advance_s }),
        1 => prop_oneof![Just(0u64), 0..20u64].prop_map(|back| Op::Stable { back }),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    segment_size: u64,
    /// Key map slots (24 bytes each): 2 holds one key, so tiny maps clean in many passes.
    map_slots: u64,
    dirty_ratio: f64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        150..1500u64,
        prop_oneof![Just(2u64), 3..8u64, Just(4096)],
        prop_oneof![Just(0.0), Just(0.5)],
    )
        .prop_map(|(segment_size, map_slots, dirty_ratio)| Case {
            segment_size,
            map_slots,
            dirty_ratio,
        })
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

fn open(dir: &std::path::Path, c: &Case) -> (LogStore, std::sync::Arc<Partition>) {
    let config = StoreConfig {
        background_tasks: false,
        cleaner: CleanerConfig {
            dedupe_buffer_size: c.map_slots * 24,
            min_cleanable_dirty_ratio: Ratio::new(c.dirty_ratio).unwrap(),
            delete_retention: RETENTION,
            ..CleanerConfig::default()
        },
        ..StoreConfig::default()
    };
    let (store, report) = LogStore::open(dir, config).unwrap();
    assert!(
        report.repaired.is_empty(),
        "a clean close needed repairs: {report:?}"
    );
    if store.streams().is_empty() {
        store.create_stream("s").unwrap();
        let settings = TopicSettings {
            segment_size: Some(c.segment_size),
            cleanup_policy: CleanupPolicy {
                delete: false,
                compact: true,
            },
            ..TopicSettings::default()
        };
        store.create_topic(Ident::Id(0), "t", 1, settings).unwrap();
    }
    let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
    (store, p)
}

fn toy(key: u8, kind: u8, offset: u64) -> Toy {
    let key = vec![b'k', key];
    match kind {
        0..=5 => Toy::Value {
            key,
            value: format!("v{offset}-{}", "x".repeat(kind as usize * 7)).into_bytes(),
        },
        6 => Toy::Tombstone { key },
        _ => Toy::Keyless {
            value: format!("free{offset}").into_bytes(),
        },
    }
}

#[derive(Default)]
struct Model {
    written: BTreeMap<u64, Toy>,
    append_ts: BTreeMap<u64, u64>,
    next: u64,
    /// Latest server time of a cleaning, and highest stable offset a cleaning saw.
    max_clean_now: u64,
    max_clean_stable: u64,
}

impl Model {
    fn check(&self, p: &Partition, step: usize) -> Result<(), TestCaseError> {
        let got = read_all(p);
        let got_map: BTreeMap<u64, &Toy> = got.iter().map(|(o, r)| (*o, r)).collect();
        for (o, r) in &got {
            prop_assert_eq!(
                self.written.get(o),
                Some(r),
                "step {}: offset {} differs",
                step,
                o
            );
        }
        let mut latest: BTreeMap<&[u8], u64> = BTreeMap::new();
        for (o, r) in &self.written {
            if let Some(k) = r.key() {
                latest.insert(k, *o);
            }
        }
        let retention = RETENTION.as_micros() as u64;
        for (o, r) in &self.written {
            if got_map.contains_key(o) {
                continue;
            }
            prop_assert!(
                *o < self.max_clean_stable,
                "step {}: offset {} is gone but no cleaning had a stable offset above it",
                step,
                o
            );
            match r {
                Toy::Keyless { .. } | Toy::Marker => {}
                Toy::Value { key, .. } => prop_assert!(
                    latest[key.as_slice()] > *o,
                    "step {}: the latest value of {:?} at {} is gone",
                    step,
                    key,
                    o
                ),
                Toy::Tombstone { key } => {
                    if latest[key.as_slice()] == *o {
                        prop_assert!(
                            self.append_ts[o] + retention < self.max_clean_now,
                            "step {}: the tombstone at {} went before its retention",
                            step,
                            o
                        );
                    }
                }
            }
        }
        prop_assert_eq!(p.high_watermark(), self.next);
        Ok(())
    }
}

fn run(c: Case, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let keys = ToyKeys::default();
    let (mut store, mut p) = open(dir.path(), &c);
    let mut m = Model::default();
    let mut skew = 0u64;
    let mut cleanings = 0;
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Append { records, producer } => {
                let recs: Vec<Toy> = records
                    .iter()
                    .enumerate()
                    .map(|(i, &(k, kind))| toy(k, kind, m.next + i as u64))
                    .collect();
                let r = rt
                    .block_on(p.append(toy_batch(&recs, u64::from(producer))))
                    .unwrap();
                prop_assert_eq!(r.base_offset, m.next);
                for (i, rec) in recs.into_iter().enumerate() {
                    m.written.insert(r.base_offset + i as u64, rec);
                    m.append_ts
                        .insert(r.base_offset + i as u64, r.append_timestamp);
                }
                m.next = r.last_offset + 1;
            }
            Op::Clean { advance_s } => {
                skew += advance_s * 1_000_000;
                let now = now_us() + skew;
                let stable = keys.stable.load(Ordering::Acquire);
                // Recorded before the cleaning: its reads must already agree with it.
                m.max_clean_now = m.max_clean_now.max(now);
                m.max_clean_stable = m.max_clean_stable.max(stable.min(m.next));
                let report = store.clean_once(&keys, now).unwrap();
                cleanings += report.cleaned.len();
                for done in &report.cleaned {
                    prop_assert!(done.map_keys <= done.map_capacity);
                    prop_assert!(store.cleaner_stats().map_bytes <= (c.map_slots * 24).max(48));
                }
            }
            Op::Stable { back } => {
                let stable = if back == 0 {
                    u64::MAX
                } else {
                    m.next.saturating_sub(back)
                };
                keys.stable.store(stable, Ordering::Release);
            }
            Op::Reopen => {
                drop(p);
                store.close().unwrap();
                drop(store);
                (store, p) = open(dir.path(), &c);
            }
        }
        m.check(&p, step)?;
    }
    let _ = cleanings;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn compaction_agrees_with_model(c in case(), ops in proptest::collection::vec(op(), 1..60)) {
        run(c, ops)?;
    }
}

/// A fixed run that must remove something: proves the model test is not vacuous (a cleaner
/// that keeps everything would pass the model's checks).
#[test]
fn cleaning_removes_superseded_values_and_expired_tombstones() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let c = Case {
        segment_size: 300,
        map_slots: 4096,
        dirty_ratio: 0.0,
    };
    let (store, p) = open(dir.path(), &c);
    let keys = ToyKeys::default();
    for i in 0..40u64 {
        let rec = if i == 30 {
            toy(5, 6, i)
        } else {
            toy((i % 4) as u8, 0, i)
        };
        rt.block_on(p.append(toy_batch(&[rec], 0))).unwrap();
    }
    let before = read_all(&p).len();
    let report = store.clean_once(&keys, now_us()).unwrap();
    assert_eq!(report.cleaned.len(), 1, "{report:?}");
    let after = read_all(&p);
    assert!(
        after.len() < before / 2,
        "{} of {before} records left",
        after.len()
    );
    // The tombstone of key 5 is the latest and younger than its retention: kept.
    assert!(after
        .iter()
        .any(|(_, r)| matches!(r, Toy::Tombstone { .. })));
    // Later, past its retention, the next cleaning is due for it alone and removes it.
    let later = now_us() + RETENTION.as_micros() as u64 + 1_000_000;
    let report = store.clean_once(&keys, later).unwrap();
    assert_eq!(report.cleaned.len(), 1, "{report:?}");
    let last = read_all(&p);
    assert!(
        !last.iter().any(|(_, r)| matches!(r, Toy::Tombstone { .. })),
        "{last:?}"
    );
    // Offsets never change: the high watermark and every surviving offset are as written.
    assert_eq!(p.high_watermark(), 40);
    assert!(store.cleaner_stats().records_removed >= 20);
}
