//! One cleaning of one partition: pick what is cleanable, build the key map over the dirty
//! section, rewrite the sealed segments from the log start up to where the map ends, and swap
//! each rewritten group of segments in crash-safely ([`super::swap`]).

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::map::{OffsetMap, Put};
use super::swap::{cleaned_path, Checkpoint, Manifest};
use super::throttle::Throttle;
use super::{CleanRecord, PartitionCleaning, RecordKeys};
use crate::batch::{Envelope, StoredBatch, ENVELOPE_LEN};
use crate::config::{CleanerConfig, StoreConfig, TopicSettings};
use crate::disk::Disk;
use crate::error::{Result, StoreError};
use crate::index::IndexEntry;
use crate::partition::{Partition, SealedSegment};
use crate::segment::{INDEX_EXT, LOG_EXT};

/// Bytes read from a segment at once (more when a single batch is larger).
const READ_CHUNK: u64 = 1 << 20;
/// Bytes of cleaned output buffered before they are written.
const WRITE_CHUNK: usize = 1 << 20;

/// A compacted topic's cleaning settings with the store defaults filled in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    pub min_dirty_ratio: f64,
    pub min_lag_us: u64,
    pub max_lag_us: Option<u64>,
    pub delete_retention_us: u64,
    pub segment_size: u64,
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

impl Policy {
    pub fn resolve(topic: &TopicSettings, store: &StoreConfig) -> Policy {
        let c: &CleanerConfig = &store.cleaner;
        Policy {
            min_dirty_ratio: topic
                .min_cleanable_dirty_ratio
                .unwrap_or(c.min_cleanable_dirty_ratio)
                .as_f64(),
            min_lag_us: micros(topic.min_compaction_lag.unwrap_or(c.min_compaction_lag)),
            max_lag_us: topic
                .max_compaction_lag
                .or(c.max_compaction_lag)
                .map(micros),
            delete_retention_us: micros(topic.delete_retention.unwrap_or(c.delete_retention)),
            segment_size: topic.segment_size.unwrap_or(store.default_segment_size),
        }
    }
}

/// What the cleaner's loop lends one cleaning.
pub(crate) struct Work<'a> {
    pub keys: &'a dyn RecordKeys,
    pub now_us: u64,
    pub throttle: &'a mut Throttle,
    /// True once the store is closing: the cleaning gives up before its next commit.
    pub stopping: &'a dyn Fn() -> bool,
    /// Waits up to the given time (less when the store closes): the rate limit's pause.
    pub pause: &'a dyn Fn(Duration),
}

impl Work<'_> {
    fn pace(&mut self, bytes: u64) {
        let wait = self.throttle.charge(bytes, Instant::now());
        if !wait.is_zero() {
            (self.pause)(wait);
        }
    }
}

/// Why a partition is worth cleaning, and what of it may be cleaned.
#[derive(Debug)]
pub(crate) struct Assessment {
    /// Dirty share of the sealed bytes.
    pub dirty_ratio: f64,
    /// The cleanable sealed segments, oldest first: a prefix of the sealed ones.
    cleanable: Vec<SealedSegment>,
    /// Where the dirty section starts.
    dirty_start: u64,
    /// The first offset past the cleanable segments.
    cleanable_end: u64,
}

/// Whether `p` needs cleaning now, and what may be cleaned. `None`: nothing to do.
pub(crate) fn assess(
    p: &Partition,
    policy: &Policy,
    keys: &dyn RecordKeys,
    now_us: u64,
) -> Option<Assessment> {
    if !p.is_open() {
        return None;
    }
    let (sealed, active_base) = p.sealed_snapshot();
    let first_base = sealed.first()?.base_offset;
    let checkpoint = *p.checkpoint().lock();
    let dirty_start = checkpoint.cleaned_to.max(first_base);
    let stable = keys.stable_offset(p.key());
    let cleanable_count = sealed
        .iter()
        .take_while(|s| {
            s.end_offset() <= stable
                && s.entries
                    .last()
                    .is_none_or(|e| e.append_timestamp.saturating_add(policy.min_lag_us) <= now_us)
        })
        .count();
    let cleanable_end = sealed
        .get(cleanable_count)
        .map_or(active_base, |s| s.base_offset);
    let mut sealed_bytes = 0u64;
    let mut dirty_bytes = 0u64;
    let mut first_dirty_append = None;
    for s in &sealed {
        sealed_bytes += s.size;
        for e in &s.entries {
            if s.base_offset + e.end_relative_offset() > dirty_start {
                dirty_bytes += u64::from(e.length);
                first_dirty_append.get_or_insert(e.append_timestamp);
            }
        }
    }
    let dirty_ratio = if sealed_bytes == 0 {
        0.0
    } else {
        dirty_bytes as f64 / sealed_bytes as f64
    };
    let cleanable = sealed[..cleanable_count].to_vec();
    let dirty_cleanable = cleanable.iter().any(|s| s.end_offset() > dirty_start);
    let overdue = match (policy.max_lag_us, first_dirty_append) {
        (Some(lag), Some(t)) => t.saturating_add(lag) <= now_us,
        _ => false,
    };
    let tombstones_due = checkpoint.tombstones_due_us <= now_us && !cleanable.is_empty();
    let wanted = dirty_cleanable
        && (dirty_ratio >= policy.min_dirty_ratio || overdue || policy.min_dirty_ratio <= 0.0);
    (wanted || tombstones_due).then_some(Assessment {
        dirty_ratio,
        cleanable,
        dirty_start,
        cleanable_end,
    })
}

/// Reads the batches of `seg` whose index entries `want` accepts, in order, checking each
/// against its checksum and its index entry; `visit` returns false to stop.
fn for_each_batch(
    disk: &Disk,
    seg: &SealedSegment,
    want: impl Fn(u64, &IndexEntry) -> bool,
    mut visit: impl FnMut(StoredBatch) -> Result<bool>,
) -> Result<()> {
    let wanted: Vec<&IndexEntry> = seg
        .entries
        .iter()
        .filter(|e| want(seg.base_offset, e))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let path = &seg.log_path;
    let file = disk.open(path, OpenOptions::new().read(true))?;
    let result = (|| {
        let mut i = 0;
        while i < wanted.len() {
            // A run of batches lying back to back, up to READ_CHUNK bytes (at least one batch).
            let start = wanted[i].position;
            let mut end = wanted[i].end_position();
            let mut j = i + 1;
            while j < wanted.len()
                && wanted[j].position == end
                && wanted[j].end_position() - start <= READ_CHUNK
            {
                end = wanted[j].end_position();
                j += 1;
            }
            // Bounded by the segment's size, which recovery checked against the file.
            let mut buf = BytesMut::zeroed((end - start) as usize);
            file.read_exact_at(&mut buf, start)
                .map_err(|e| StoreError::io(path, e))?;
            let buf: Bytes = buf.freeze();
            for e in &wanted[i..j] {
                let at = (e.position - start) as usize;
                let bytes = buf.slice(at..at + e.length as usize);
                let batch = StoredBatch::from_bytes(bytes)?;
                batch.verify()?;
                if batch.base_offset() != seg.base_offset + u64::from(e.relative_offset)
                    || batch.record_count() != e.record_count
                {
                    return Err(StoreError::CorruptMetadata {
                        path: path.clone(),
                        reason: format!(
                            "batch at byte {} disagrees with its index entry",
                            e.position
                        ),
                    });
                }
                if !visit(batch)? {
                    return Ok(());
                }
            }
            i = j;
        }
        Ok(())
    })();
    drop(file);
    disk.closed(path);
    result
}

fn codec(p: &Partition, e: super::CodecError) -> StoreError {
    StoreError::CorruptMetadata {
        path: p.dir().to_path_buf(),
        reason: format!("compaction cannot read a batch: {e}"),
    }
}

fn aborted(p: &Partition) -> StoreError {
    StoreError::PartitionClosed(p.key().to_string())
}

/// Cleans `p` once as `a` says. Holds the partition's maintenance lock throughout.
pub(crate) fn clean(
    p: &Partition,
    policy: &Policy,
    map: &mut OffsetMap,
    work: &mut Work<'_>,
) -> Result<Option<PartitionCleaning>> {
    let started = Instant::now();
    let _maintenance = p.maintenance();
    // Assessed again under the lock: retention may have deleted segments meanwhile.
    let Some(a) = assess(p, policy, work.keys, work.now_us) else {
        return Ok(None);
    };
    let disk = p.disk().clone();
    let dir = p.dir().to_path_buf();
    let key = p.key();
    let mut report = PartitionCleaning {
        partition: key,
        dirty_ratio: a.dirty_ratio,
        ..PartitionCleaning::default()
    };

    // 1. The key map over the dirty section, until it is full or the section ends.
    map.clear();
    let mut map_end = a.cleanable_end;
    let mut full = false;
    // Producer id -> base offset of its last batch seen; and the batches whose facts are known.
    let mut last_of_producer: HashMap<i64, u64> = HashMap::new();
    let mut scanned_until = a.dirty_start;
    for seg in &a.cleanable {
        if full || seg.end_offset() <= a.dirty_start {
            continue;
        }
        for_each_batch(
            &disk,
            seg,
            |base, e| base + e.end_relative_offset() > a.dirty_start,
            |batch| {
                if (work.stopping)() {
                    return Err(aborted(p));
                }
                work.pace(batch.as_bytes().len() as u64);
                report.bytes_read += batch.as_bytes().len() as u64;
                let map = &mut *map;
                let dirty_start = a.dirty_start;
                let facts = work
                    .keys
                    .scan(key, &batch, &mut |r| {
                        if full || r.offset() < dirty_start {
                            return;
                        }
                        if let CleanRecord::Keyed { offset, key, .. } = r {
                            if map.put(OffsetMap::hash(key), offset) == Put::Full {
                                full = true;
                                map_end = offset;
                            }
                        }
                    })
                    .map_err(|e| codec(p, e))?;
                if let Some(pid) = facts.producer_id {
                    last_of_producer.insert(pid, batch.base_offset());
                }
                scanned_until = batch.last_offset() + 1;
                Ok(!full)
            },
        )?;
    }

    report.map_keys = map.len();
    report.map_capacity = map.capacity();

    // 2. The segments rewritten: from the log start up to the one holding map_end - 1.
    let range: Vec<&SealedSegment> = a
        .cleanable
        .iter()
        .take_while(|s| s.base_offset < map_end)
        .collect();
    let Some(first) = range.first() else {
        return Ok(None);
    };
    let log_start_base = first.base_offset;
    // Facts of the batches the map did not scan, for "the last batch of each producer".
    for seg in &range {
        for_each_batch(
            &disk,
            seg,
            |base, e| {
                let b = base + u64::from(e.relative_offset);
                let end = base + e.end_relative_offset();
                end <= a.dirty_start || b >= scanned_until
            },
            |batch| {
                if (work.stopping)() {
                    return Err(aborted(p));
                }
                let facts = work
                    .keys
                    .scan(key, &batch, &mut |_| {})
                    .map_err(|e| codec(p, e))?;
                if let Some(pid) = facts.producer_id {
                    let last = last_of_producer.entry(pid).or_insert(0);
                    *last = (*last).max(batch.base_offset());
                }
                Ok(true)
            },
        )?;
    }

    // 3. Groups of consecutive segments, each rewritten into one and swapped in.
    let mut tombstones_due = u64::MAX;
    let mut groups: Vec<Vec<&SealedSegment>> = Vec::new();
    for seg in range {
        let fits = groups.last().is_some_and(|g: &Vec<&SealedSegment>| {
            let size: u64 = g.iter().map(|s| s.size).sum::<u64>() + seg.size;
            size <= policy.segment_size
                && seg.end_offset() - g[0].base_offset <= u64::from(u32::MAX)
        });
        match groups.last_mut() {
            Some(g) if fits => g.push(seg),
            _ => groups.push(vec![seg]),
        }
    }
    report.segments_before = groups.iter().map(Vec::len).sum();
    let map: &OffsetMap = map;
    for group in groups {
        let rules = Rules {
            map,
            map_end,
            now_us: work.now_us,
            retention_us: policy.delete_retention_us,
            last_of_producer: &last_of_producer,
        };
        let out = rewrite_group(
            p,
            &disk,
            &dir,
            &group,
            &rules,
            work,
            &mut report,
            &mut tombstones_due,
        )?;
        let replaced: Vec<u64> = group.iter().map(|s| s.base_offset).collect();
        let group_size: u64 = group.iter().map(|s| s.size).sum();
        let base = group[0].base_offset;
        // An emptied segment goes, unless it is the first: the log start stays where it was.
        let new = if out.entries.is_empty() && base != log_start_base {
            for ext in [LOG_EXT, INDEX_EXT] {
                disk.remove_file(&cleaned_path(&dir, base, ext))?;
            }
            None
        } else {
            Some(base)
        };
        if (work.stopping)() {
            remove_cleaned(&disk, &dir, base);
            return Err(aborted(p));
        }
        let manifest = Manifest {
            new_base: new,
            replaced: replaced.clone(),
        };
        if let Err(e) = manifest.commit(&disk, &dir) {
            remove_cleaned(&disk, &dir, base);
            return Err(e);
        }
        // Committed: from here the new files are the log.
        p.swap_segments(&replaced, new.map(|b| (b, out.entries, out.size)), || {
            manifest.apply(&disk, &dir)
        })?;
        if let Err(e) = Manifest::finish(&disk, &dir) {
            // A manifest left behind would be redone over the next cleaning's files.
            p.fail();
            return Err(e);
        }
        report.segments_after += usize::from(new.is_some());
        report.bytes_written += out.size;
        report.bytes_removed += group_size.saturating_sub(out.size);
    }

    let checkpoint = Checkpoint {
        cleaned_to: map_end.max(a.dirty_start),
        tombstones_due_us: tombstones_due,
    };
    checkpoint.save(&disk, &dir)?;
    *p.checkpoint().lock() = checkpoint;
    report.cleaned_to = checkpoint.cleaned_to;
    report.duration = started.elapsed();
    Ok(Some(report))
}

fn remove_cleaned(disk: &Disk, dir: &Path, base: u64) {
    for ext in [LOG_EXT, INDEX_EXT] {
        if let Err(e) = disk.remove_file(&cleaned_path(dir, base, ext)) {
            tracing::warn!("cannot remove an unused cleaned file: {e}");
        }
    }
}

/// The record rule of one cleaning.
struct Rules<'a> {
    map: &'a OffsetMap,
    map_end: u64,
    now_us: u64,
    retention_us: u64,
    last_of_producer: &'a HashMap<i64, u64>,
}

/// A rewritten group: its index entries and size.
struct Output {
    entries: Vec<IndexEntry>,
    size: u64,
}

#[allow(clippy::too_many_arguments)]
fn rewrite_group(
    p: &Partition,
    disk: &Disk,
    dir: &Path,
    group: &[&SealedSegment],
    rules: &Rules<'_>,
    work: &mut Work<'_>,
    report: &mut PartitionCleaning,
    tombstones_due: &mut u64,
) -> Result<Output> {
    let base = group[0].base_offset;
    let log_path = cleaned_path(dir, base, LOG_EXT);
    let index_path = cleaned_path(dir, base, INDEX_EXT);
    let result = (|| {
        let log = disk.create(&log_path)?;
        let index = disk.create(&index_path)?;
        let mut out = Output {
            entries: Vec::new(),
            size: 0,
        };
        let mut buf: Vec<u8> = Vec::with_capacity(WRITE_CHUNK);
        let key = p.key();
        for seg in group {
            for_each_batch(
                disk,
                seg,
                |_, _| true,
                |batch| {
                    if (work.stopping)() {
                        return Err(aborted(p));
                    }
                    let stored = batch.as_bytes().len() as u64;
                    report.bytes_read += stored;
                    let expired = batch
                        .envelope()
                        .append_timestamp
                        .saturating_add(rules.retention_us)
                        < rules.now_us;
                    let due = batch
                        .envelope()
                        .append_timestamp
                        .saturating_add(rules.retention_us);
                    let mut dropped: Vec<u64> = Vec::new();
                    let mut kept = 0u64;
                    let mut keeps_marker = false;
                    let facts = work
                        .keys
                        .scan(key, &batch, &mut |r| {
                            let drop = match r {
                                CleanRecord::Keyed {
                                    offset,
                                    key,
                                    tombstone,
                                } => {
                                    let latest = rules.map.get(OffsetMap::hash(key));
                                    if latest.is_some_and(|l| l > offset) {
                                        true
                                    } else if tombstone && offset < rules.map_end {
                                        keeps_marker |= !expired;
                                        expired
                                    } else {
                                        false
                                    }
                                }
                                CleanRecord::Keyless { .. } | CleanRecord::Aborted { .. } => true,
                                CleanRecord::Control { .. } => {
                                    keeps_marker |= !expired;
                                    expired
                                }
                            };
                            if drop {
                                dropped.push(r.offset());
                            } else {
                                kept += 1;
                            }
                        })
                        .map_err(|e| codec(p, e))?;
                    if keeps_marker {
                        *tombstones_due = (*tombstones_due).min(due);
                    }
                    report.records_removed += dropped.len() as u64;
                    let rebuilt: Option<Bytes> = if dropped.is_empty() {
                        Some(batch.as_bytes().clone())
                    } else {
                        let keep_empty = facts.producer_id.is_some_and(|pid| {
                            rules.last_of_producer.get(&pid) == Some(&batch.base_offset())
                        });
                        if kept == 0 && !keep_empty {
                            None
                        } else {
                            let keep = |o: u64| dropped.binary_search(&o).is_err();
                            let payload = work
                                .keys
                                .retain(key, &batch, &keep, keep_empty)
                                .map_err(|e| codec(p, e))?;
                            payload.map(|payload| {
                                let env = Envelope {
                                    payload_len: payload.len() as u32,
                                    ..*batch.envelope()
                                };
                                let mut b = BytesMut::with_capacity(ENVELOPE_LEN + payload.len());
                                b.extend_from_slice(&env.encode(&payload));
                                b.extend_from_slice(&payload);
                                b.freeze()
                            })
                        }
                    };
                    let Some(bytes) = rebuilt else {
                        report.batches_removed += 1;
                        work.pace(stored);
                        return Ok(true);
                    };
                    let out_batch = StoredBatch::from_bytes(bytes).map_err(StoreError::from)?;
                    if !dropped.is_empty() {
                        check_rebuilt(&out_batch).map_err(|e| codec(p, e))?;
                    }
                    let env = *out_batch.envelope();
                    out.entries
                        .push(IndexEntry::for_batch(base, out.size, &env));
                    out.size += env.stored_len();
                    buf.extend_from_slice(out_batch.as_bytes());
                    if buf.len() >= WRITE_CHUNK {
                        disk.write_all(&log, &log_path, &buf)?;
                        buf.clear();
                    }
                    work.pace(stored + env.stored_len());
                    Ok(true)
                },
            )?;
        }
        if !buf.is_empty() {
            disk.write_all(&log, &log_path, &buf)?;
        }
        let index_bytes: Vec<u8> = out.entries.iter().flat_map(|e| e.encode()).collect();
        disk.write_all(&index, &index_path, &index_bytes)?;
        disk.sync_data(&log, &log_path)?;
        disk.sync_data(&index, &index_path)?;
        drop(log);
        drop(index);
        disk.sync_dir(dir)?;
        Ok(out)
    })();
    if result.is_err() {
        remove_cleaned(disk, dir, base);
    }
    result
}

/// Checks that a batch rebuilt by [`RecordKeys::retain`] kept its place: a Kafka batch its
/// `baseOffset`, `lastOffsetDelta` and length; native messages offsets inside the batch's span,
/// increasing. A rebuilt batch that moved would hand out offsets twice.
fn check_rebuilt(batch: &StoredBatch) -> Result<(), super::CodecError> {
    let bad = |why: &str| {
        Err(super::CodecError(format!(
            "rebuilt batch at {}: {why}",
            batch.base_offset()
        )))
    };
    let payload = batch.payload();
    match batch.format() {
        crate::batch::BatchFormat::Kafka => {
            if payload.len() < crate::batch::KAFKA_BATCH_HEADER_LEN {
                return bad("shorter than a Kafka batch header");
            }
            let be32 = |at: usize| {
                i32::from_be_bytes([
                    payload[at],
                    payload[at + 1],
                    payload[at + 2],
                    payload[at + 3],
                ])
            };
            let base = u64::from_be_bytes(payload[0..8].try_into().unwrap_or([0; 8]));
            if base != batch.base_offset() {
                return bad("baseOffset changed");
            }
            if be32(8) < 0 || be32(8) as usize + 12 != payload.len() {
                return bad("batchLength does not match its bytes");
            }
            if i64::from(be32(23)) + 1 != i64::from(batch.record_count()) {
                return bad("lastOffsetDelta changed");
            }
        }
        crate::batch::BatchFormat::Native => {
            let mut pos = 0usize;
            let mut prev: Option<u64> = None;
            while pos < payload.len() {
                let Some(m) = payload.get(pos..pos + crate::batch::NATIVE_MESSAGE_HEADER_LEN)
                else {
                    return bad("truncated message header");
                };
                let offset = crate::batch::le_u64(m, 24);
                if offset < batch.base_offset()
                    || offset > batch.last_offset()
                    || prev.is_some_and(|p| p >= offset)
                {
                    return bad("a message offset left its place");
                }
                prev = Some(offset);
                let len = crate::batch::NATIVE_MESSAGE_HEADER_LEN as u64
                    + u64::from(crate::batch::le_u32(m, 48))
                    + u64::from(crate::batch::le_u32(m, 52));
                pos = match usize::try_from(len).ok().and_then(|l| pos.checked_add(l)) {
                    Some(end) if end <= payload.len() => end,
                    _ => return bad("a message runs past the batch"),
                };
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchFormat;

    fn stored(format: BatchFormat, base: u64, span: u32, payload: &[u8]) -> StoredBatch {
        let env = Envelope {
            payload_len: payload.len() as u32,
            format,
            base_offset: base,
            record_count: span,
            first_timestamp: 0,
            max_timestamp: 0,
            append_timestamp: 0,
        };
        let mut b = env.encode(payload).to_vec();
        b.extend_from_slice(payload);
        StoredBatch::from_bytes(Bytes::from(b)).unwrap()
    }

    fn kafka(base: i64, last_delta: i32) -> Vec<u8> {
        let mut b = vec![0u8; 61];
        b[0..8].copy_from_slice(&base.to_be_bytes());
        b[8..12].copy_from_slice(&49i32.to_be_bytes());
        b[23..27].copy_from_slice(&last_delta.to_be_bytes());
        b
    }

    fn native(offsets: &[u64]) -> Vec<u8> {
        let mut out = Vec::new();
        for &o in offsets {
            let mut m = [0u8; 64];
            m[24..32].copy_from_slice(&o.to_le_bytes());
            out.extend_from_slice(&m);
        }
        out
    }

    #[test]
    fn a_rebuilt_batch_must_keep_its_offsets() {
        assert!(check_rebuilt(&stored(BatchFormat::Kafka, 10, 5, &kafka(10, 4))).is_ok());
        assert!(check_rebuilt(&stored(BatchFormat::Kafka, 10, 5, &kafka(11, 4))).is_err());
        assert!(check_rebuilt(&stored(BatchFormat::Kafka, 10, 5, &kafka(10, 3))).is_err());
        assert!(check_rebuilt(&stored(BatchFormat::Native, 10, 5, &native(&[10, 12, 14]))).is_ok());
        assert!(check_rebuilt(&stored(BatchFormat::Native, 10, 5, &[])).is_ok());
        assert!(check_rebuilt(&stored(BatchFormat::Native, 10, 5, &native(&[12, 11]))).is_err());
        assert!(check_rebuilt(&stored(BatchFormat::Native, 10, 5, &native(&[15]))).is_err());
        assert!(check_rebuilt(&stored(BatchFormat::Native, 10, 5, &native(&[9]))).is_err());
    }
}
