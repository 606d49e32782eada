//! Corruption test: random truncations and bit flips in the tail of the last segment, and
//! damage to index files, are detected and repaired on open, with no panic and nothing lost
//! that lay before the damage.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use wharf_log_store::{Ident, LogStore, TopicSettings};

const TRIALS: u64 = 150;

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else if entry.file_name() != ".lock" {
            fs::copy(entry.path(), dest).unwrap();
        }
    }
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// An original batch: its offsets, the seed of its contents and its stored length.
struct Original {
    base: u64,
    last: u64,
    seed: u64,
    len: u64,
}

#[derive(Debug)]
enum Damage {
    TruncateLog { at: u64 },
    FlipLog { byte: u64, bit: u8 },
    DeleteIndex { segment: usize },
    TruncateIndex { segment: usize, at: u64 },
    FlipIndex { segment: usize, byte: u64, bit: u8 },
}

#[test]
fn damage_is_detected_and_repaired_without_panic() {
    let pristine = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let original = {
        let store = open(pristine.path());
        store.create_stream("s").unwrap();
        let settings = TopicSettings {
            segment_size: Some(8 * 1024),
            ..TopicSettings::default()
        };
        store.create_topic(Ident::Id(0), "t", 1, settings).unwrap();
        let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
        let mut seeds = Vec::new();
        for i in 0..60u64 {
            rt.block_on(p.append(seeded_batch(i, (i % 4 + 1) as usize, 200)))
                .unwrap();
            seeds.push(i);
        }
        let read = p.read(0, u64::MAX).unwrap();
        store.close().unwrap();
        read.batches
            .iter()
            .zip(seeds)
            .map(|(b, seed)| Original {
                base: b.base_offset(),
                last: b.last_offset(),
                seed,
                len: b.as_bytes().len() as u64,
            })
            .collect::<Vec<_>>()
    };
    let pdir_of = |root: &Path| root.join("streams/0/topics/0/partitions/0");
    let logs = files(&pdir_of(pristine.path()), "log");
    assert!(
        logs.len() >= 4,
        "expected several segments, got {}",
        logs.len()
    );
    let last_log = logs.last().unwrap().clone();
    let last_base: u64 = last_log
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let last_len = fs::metadata(&last_log).unwrap().len();

    let seed = test_seed();
    eprintln!("corruption test seed {seed}");
    let mut rng = Rng(seed);
    for trial in 0..TRIALS {
        let work = tempfile::tempdir().unwrap();
        copy_dir(pristine.path(), work.path());
        let pdir = pdir_of(work.path());
        let indexes = files(&pdir, "index");
        let log = pdir.join(last_log.file_name().unwrap());
        let tail = last_len.min(4096);
        let damage = match rng.below(5) {
            0 => Damage::TruncateLog {
                at: last_len - 1 - rng.below(tail),
            },
            1 => Damage::FlipLog {
                byte: last_len - 1 - rng.below(tail),
                bit: rng.below(8) as u8,
            },
            2 => Damage::DeleteIndex {
                segment: rng.below(indexes.len() as u64) as usize,
            },
            3 => {
                let segment = rng.below(indexes.len() as u64) as usize;
                let len = fs::metadata(&indexes[segment]).unwrap().len();
                Damage::TruncateIndex {
                    segment,
                    at: rng.below(len),
                }
            }
            _ => {
                let segment = rng.below(indexes.len() as u64) as usize;
                let len = fs::metadata(&indexes[segment]).unwrap().len();
                Damage::FlipIndex {
                    segment,
                    byte: rng.below(len),
                    bit: rng.below(8) as u8,
                }
            }
        };
        // The byte from which log data is damaged, if the log is.
        let damaged_from = match damage {
            Damage::TruncateLog { at } => {
                fs::OpenOptions::new()
                    .write(true)
                    .open(&log)
                    .unwrap()
                    .set_len(at)
                    .unwrap();
                Some(at)
            }
            Damage::FlipLog { byte, bit } => {
                let mut b = fs::read(&log).unwrap();
                b[byte as usize] ^= 1 << bit;
                fs::write(&log, b).unwrap();
                Some(byte)
            }
            Damage::DeleteIndex { segment } => {
                fs::remove_file(&indexes[segment]).unwrap();
                None
            }
            Damage::TruncateIndex { segment, at } => {
                fs::OpenOptions::new()
                    .write(true)
                    .open(&indexes[segment])
                    .unwrap()
                    .set_len(at)
                    .unwrap();
                None
            }
            Damage::FlipIndex { segment, byte, bit } => {
                let mut b = fs::read(&indexes[segment]).unwrap();
                b[byte as usize] ^= 1 << bit;
                fs::write(&indexes[segment], b).unwrap();
                None
            }
        };

        let (store, report) = LogStore::open(work.path(), config())
            .unwrap_or_else(|e| panic!("trial {trial} {damage:?}: open failed: {e}"));
        assert!(
            !report.repaired.is_empty(),
            "trial {trial} {damage:?}: damage went unnoticed"
        );
        let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
        let mut next = 0;
        let mut seen = Vec::new();
        loop {
            let r = p.read(next, 1 << 20).unwrap();
            if r.batches.is_empty() {
                assert_eq!(next, r.high_watermark, "trial {trial} {damage:?}");
                break;
            }
            for b in r.batches {
                b.verify().unwrap_or_else(|e| {
                    panic!("trial {trial} {damage:?}: corrupt batch served: {e}")
                });
                assert_eq!(b.base_offset(), next, "trial {trial} {damage:?}: gap");
                next = b.last_offset() + 1;
                seen.push(b);
            }
        }
        // Everything before the damage is intact; a damaged log loses only what follows it.
        let mut pos_in_last = 0u64;
        for (i, o) in original.iter().enumerate() {
            let before_damage = match damaged_from {
                Some(from) if o.base >= last_base => {
                    pos_in_last += o.len;
                    pos_in_last <= from
                }
                _ => true,
            };
            if before_damage {
                let b = seen.get(i).unwrap_or_else(|| {
                    panic!(
                        "trial {trial} {damage:?}: batch {}..={} before the damage was lost",
                        o.base, o.last
                    )
                });
                assert_eq!((b.base_offset(), b.last_offset()), (o.base, o.last));
                let count = (o.seed % 4 + 1) as usize;
                let want: Vec<Vec<u8>> = (0..count).map(|k| seeded_body(o.seed, k, 200)).collect();
                assert_eq!(
                    native_bodies(&b.payload()),
                    want,
                    "trial {trial} {damage:?}"
                );
            }
        }
        if damaged_from.is_none() {
            assert_eq!(
                seen.len(),
                original.len(),
                "trial {trial} {damage:?}: index damage lost data"
            );
        } else {
            assert!(
                seen.len() < original.len(),
                "trial {trial} {damage:?}: damaged batch served"
            );
        }
        // Writes go on where the repaired log ends, and a second open finds nothing to repair.
        let r = rt.block_on(p.append(seeded_batch(999, 1, 10))).unwrap();
        assert_eq!(r.base_offset, next);
        store.close().unwrap();
        drop(store);
        let (_store, report) = LogStore::open(work.path(), config()).unwrap();
        assert!(
            report.repaired.is_empty(),
            "trial {trial} {damage:?}: repair did not stick: {report:?}"
        );
    }
}
