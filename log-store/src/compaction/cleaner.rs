//! One cleaning of one partition: pick what is cleanable, build the key map over the dirty
//! section, rewrite the sealed segments from the log start up to where the map ends, and swap
//! each rewritten group of segments in crash-safely ([`super::swap`]).

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use parking_lot::MutexGuard;

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
    /// Set when a cleaning gave up because someone waited for the partition's maintenance
    /// lock: not a failure, the partition is cleaned again later.
    pub yielded: bool,
}

impl Work<'_> {
    /// Charges `bytes` to the rate limit. The wait it asks for is paid by [`Work::settle`],
    /// outside the partition's maintenance lock.
    fn pace(&mut self, bytes: u64) {
        self.throttle.charge(bytes, Instant::now());
    }

    /// Pays what the rate limit asks with the maintenance lock released, so that retention,
    /// delete-records, purge and topic deletion never wait out a throttle pause. Fails when the
    /// partition was closed meanwhile.
    fn settle(&mut self, p: &Partition, maintenance: &mut MutexGuard<'_, ()>) -> Result<()> {
        let wait = self.throttle.charge(0, Instant::now());
        if !wait.is_zero() {
            MutexGuard::unlocked(maintenance, || (self.pause)(wait));
        }
        if p.maintenance_wanted() {
            self.yielded = true;
            return Err(aborted(p));
        }
        if !p.is_open() || (self.stopping)() {
            return Err(aborted(p));
        }
        Ok(())
    }
}

/// Producer ids a cleaning keeps track of (in each of its two per-producer tables). Beyond it
/// the cleaning keeps what it cannot decide: a producer it lost count of has its batches kept
/// as if each were its last, and its transaction markers kept as if data were left. One
/// entry costs about 40 bytes, so the tables stay under 10 MB whatever the log holds.
pub(crate) const MAX_PRODUCERS_PER_CLEANING: usize = 100_000;

/// What one cleaning knows of the producers in the rewritten range.
#[derive(Debug, Default)]
struct Producers {
    /// Producer id -> base offset of its last batch in the range.
    last_batch: HashMap<i64, u64>,
    /// A producer id did not fit in `last_batch`.
    last_overflow: bool,
    /// Producers whose current transaction still has records in the rewritten log.
    txn_data_kept: HashSet<i64>,
    /// A producer id did not fit in `txn_data_kept`.
    txn_overflow: bool,
    /// A batch was kept unread: whose transaction its records belong to is unknown.
    opaque: bool,
}

impl Producers {
    fn saw_batch(&mut self, pid: i64, base: u64) {
        if let Some(last) = self.last_batch.get_mut(&pid) {
            *last = (*last).max(base);
        } else if self.last_batch.len() < MAX_PRODUCERS_PER_CLEANING {
            self.last_batch.insert(pid, base);
        } else {
            self.last_overflow = true;
        }
    }

    /// Whether the batch at `base` may hold `pid`'s last sequence (kept even when emptied).
    fn is_last(&self, pid: i64, base: u64) -> bool {
        match self.last_batch.get(&pid) {
            Some(&last) => last == base,
            None => self.last_overflow,
        }
    }

    fn data_kept(&mut self, pid: i64) {
        if self.txn_data_kept.len() < MAX_PRODUCERS_PER_CLEANING
            || self.txn_data_kept.contains(&pid)
        {
            self.txn_data_kept.insert(pid);
        } else {
            self.txn_overflow = true;
        }
    }

    /// A marker of `pid` closes its transaction: whether records of it may be left.
    fn marker_closes(&mut self, pid: Option<i64>) -> bool {
        let kept = pid.is_some_and(|pid| self.txn_data_kept.remove(&pid));
        kept || self.txn_overflow || self.opaque
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
        for e in s.entries.iter() {
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

fn aborted(p: &Partition) -> StoreError {
    StoreError::PartitionClosed(p.key().to_string())
}

/// Batches whose records the [`RecordKeys`] could not read in one cleaning: each is kept as it
/// is (left out of the key map), counted, and the first reason is logged once.
#[derive(Debug, Default)]
struct Unreadable {
    first: Option<String>,
}

impl Unreadable {
    fn note(&mut self, base: u64, e: &super::CodecError) {
        self.first
            .get_or_insert_with(|| format!("batch at offset {base}: {e}"));
    }
}

/// Cleans `p` once as `a` says. Holds the partition's maintenance lock while it reads and
/// writes, and releases it to pay the rate limit's waits; each group of segments is checked
/// against the view again before it is rewritten and before its swap is committed.
pub(crate) fn clean(
    p: &Partition,
    policy: &Policy,
    map: &mut OffsetMap,
    work: &mut Work<'_>,
) -> Result<Option<PartitionCleaning>> {
    let started = Instant::now();
    let mut maintenance = p.maintenance();
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
    let mut unreadable = Unreadable::default();

    // 1. The key map over the dirty section, until it is full or the section ends.
    map.clear();
    let mut map_end = a.cleanable_end;
    let mut full = false;
    let mut producers = Producers::default();
    let mut scanned_until = a.dirty_start;
    // A batch's keys, put in the map only once the whole batch was read.
    let mut batch_keys: Vec<(u128, u64)> = Vec::new();
    for seg in &a.cleanable {
        if full || seg.end_offset() <= a.dirty_start {
            continue;
        }
        for_each_batch(
            &disk,
            seg,
            |base, e| base + e.end_relative_offset() > a.dirty_start,
            |batch| {
                work.settle(p, &mut maintenance)?;
                work.pace(batch.as_bytes().len() as u64);
                report.bytes_read += batch.as_bytes().len() as u64;
                let dirty_start = a.dirty_start;
                batch_keys.clear();
                let scanned = work.keys.scan(key, &batch, &mut |r| {
                    if r.offset() < dirty_start {
                        return;
                    }
                    if let CleanRecord::Keyed { offset, key, .. } = r {
                        batch_keys.push((OffsetMap::hash(key), offset));
                    }
                });
                match scanned {
                    Ok(facts) => {
                        for &(hash, offset) in &batch_keys {
                            if map.put(hash, offset) == Put::Full {
                                full = true;
                                map_end = offset;
                                break;
                            }
                        }
                        if let Some(pid) = facts.producer_id {
                            producers.saw_batch(pid, batch.base_offset());
                        }
                    }
                    // Kept as it is by the rewrite: nothing of it goes in the map.
                    Err(e) => unreadable.note(batch.base_offset(), &e),
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
                work.settle(p, &mut maintenance)?;
                match work.keys.facts(key, &batch) {
                    Ok(facts) => {
                        if let Some(pid) = facts.producer_id {
                            producers.saw_batch(pid, batch.base_offset());
                        }
                    }
                    Err(e) => unreadable.note(batch.base_offset(), &e),
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
    let map: &OffsetMap = map;
    let mut complete = true;
    for group in groups {
        // Retention or a purge may have removed segments while the lock was released.
        if !p.holds_sealed(&group) {
            complete = false;
            break;
        }
        let rules = Rules {
            map,
            map_end,
            now_us: work.now_us,
            retention_us: policy.delete_retention_us,
        };
        let mut step = Step {
            work,
            report: &mut report,
            tombstones_due: &mut tombstones_due,
            producers: &mut producers,
            unreadable: &mut unreadable,
            maintenance: &mut maintenance,
        };
        let out = rewrite_group(p, &disk, &dir, &group, &rules, &mut step)?;
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
        // Checked under the lock that the swap then holds: a partition closed (deleted) or
        // segments removed since the group was read must not be swapped.
        if (work.stopping)() || !p.is_open() || !p.holds_sealed(&group) {
            remove_cleaned(&disk, &dir, base);
            if (work.stopping)() || !p.is_open() {
                return Err(aborted(p));
            }
            complete = false;
            break;
        }
        let manifest = Manifest {
            new_base: new,
            new_len: new.map(|_| out.size),
            replaced: replaced.clone(),
        };
        if let Err(e) = manifest.commit(&disk, &dir) {
            // The manifest may be in place (its rename done, the folder sync failed): the
            // cleaned files are then the log, for the next open. They may go only once the
            // manifest's removal is durable; otherwise recovery decides.
            match Manifest::finish(&disk, &dir) {
                Ok(()) => remove_cleaned(&disk, &dir, base),
                Err(finish) => {
                    tracing::error!(partition = %key, "compaction commit in doubt, the partition waits for a restart: {finish}");
                    p.fail();
                }
            }
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
        report.segments_before += group.len();
        report.segments_after += usize::from(new.is_some());
        report.bytes_written += out.size;
        report.bytes_removed += group_size.saturating_sub(out.size);
    }
    if let Some(first) = &unreadable.first {
        tracing::warn!(
            partition = %key,
            "compaction kept {} batches it cannot read as they are; the first: {first}",
            report.batches_unreadable
        );
    }
    if !complete {
        // Some groups were not rewritten against this map: the checkpoint stays.
        report.cleaned_to = p.checkpoint().lock().cleaned_to;
        report.duration = started.elapsed();
        return Ok((report.segments_before > 0).then_some(report));
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
}

/// What rewriting one group updates.
struct Step<'s, 'w, 'g> {
    work: &'s mut Work<'w>,
    report: &'s mut PartitionCleaning,
    tombstones_due: &'s mut u64,
    producers: &'s mut Producers,
    unreadable: &'s mut Unreadable,
    maintenance: &'s mut MutexGuard<'g, ()>,
}

/// A rewritten group: its index entries and size.
struct Output {
    entries: Vec<IndexEntry>,
    size: u64,
}

/// What becomes of one batch: dropped whole (`None`), or these bytes.
fn filter_batch(
    p: &Partition,
    batch: &StoredBatch,
    rules: &Rules<'_>,
    step: &mut Step<'_, '_, '_>,
) -> std::result::Result<Option<Bytes>, super::CodecError> {
    let key = p.key();
    let keys = step.work.keys;
    let append = batch.envelope().append_timestamp;
    let due = append.saturating_add(rules.retention_us);
    let expired = due < rules.now_us;
    let mut dropped: Vec<u64> = Vec::new();
    let mut kept = 0u64;
    let mut keeps_marker = false;
    // Markers are decided once the batch's producer is known (after the scan).
    let mut markers: Vec<u64> = Vec::new();
    // After a batch kept unread, a tombstone may be all that hides an older value of its key
    // in that batch: it stays.
    let opaque_before = step.producers.opaque;
    let facts = keys.scan(key, batch, &mut |r| {
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
                    expired && !opaque_before
                } else {
                    false
                }
            }
            CleanRecord::Keyless { .. } | CleanRecord::Aborted { .. } => true,
            CleanRecord::Control { offset } => {
                markers.push(offset);
                return;
            }
        };
        if drop {
            dropped.push(r.offset());
        } else {
            kept += 1;
        }
    })?;
    if markers.is_empty() {
        if let Some(pid) = facts.producer_id.filter(|_| kept > 0) {
            step.producers.data_kept(pid);
        }
    } else {
        // A marker closes its producer's transaction: it may go once old enough and once
        // none of the transaction's records is left.
        let data_left = step.producers.marker_closes(facts.producer_id);
        keeps_marker |= !expired;
        if expired && !data_left {
            dropped.extend_from_slice(&markers);
            dropped.sort_unstable();
        } else {
            kept += markers.len() as u64;
        }
    }
    if keeps_marker {
        *step.tombstones_due = (*step.tombstones_due).min(due);
    }
    if dropped.is_empty() {
        return Ok(Some(batch.as_bytes().clone()));
    }
    let keep_empty = facts
        .producer_id
        .is_some_and(|pid| step.producers.is_last(pid, batch.base_offset()));
    if kept == 0 && !keep_empty {
        step.report.records_removed += dropped.len() as u64;
        return Ok(None);
    }
    let keep = |o: u64| dropped.binary_search(&o).is_err();
    let Some(payload) = keys.retain(key, batch, &keep, keep_empty)? else {
        step.report.records_removed += dropped.len() as u64;
        return Ok(None);
    };
    let env = Envelope {
        payload_len: payload.len() as u32,
        max_timestamp: rebuilt_max_timestamp(batch, &payload),
        ..*batch.envelope()
    };
    let mut b = BytesMut::with_capacity(ENVELOPE_LEN + payload.len());
    b.extend_from_slice(&env.encode(&payload));
    b.extend_from_slice(&payload);
    let out = StoredBatch::from_bytes(b.freeze())
        .map_err(|e| super::CodecError(format!("rebuilt batch: {e}")))?;
    check_rebuilt(&out)?;
    step.report.records_removed += dropped.len() as u64;
    Ok(Some(out.as_bytes().clone()))
}

/// The newest timestamp of a rebuilt batch, for its envelope and index entry (time look-ups
/// must not land on a batch whose newest record went). A Kafka batch says it in its header
/// (`maxTimestamp`, rewritten by [`RecordKeys::retain`]); a native batch's timestamps are its
/// append time, which compaction does not change.
fn rebuilt_max_timestamp(batch: &StoredBatch, payload: &[u8]) -> u64 {
    let env = batch.envelope();
    match batch.format() {
        crate::batch::BatchFormat::Kafka => payload
            .get(35..43)
            .and_then(|b| b.try_into().ok())
            .map(i64::from_be_bytes)
            .filter(|&ms| ms >= 0)
            .map_or(env.max_timestamp, |ms| {
                (ms as u64).saturating_mul(1000).max(env.first_timestamp)
            }),
        crate::batch::BatchFormat::Native => env.max_timestamp,
    }
}

fn rewrite_group(
    p: &Partition,
    disk: &Disk,
    dir: &Path,
    group: &[&SealedSegment],
    rules: &Rules<'_>,
    step: &mut Step<'_, '_, '_>,
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
        for seg in group {
            for_each_batch(
                disk,
                seg,
                |_, _| true,
                |batch| {
                    step.work.settle(p, step.maintenance)?;
                    let stored = batch.as_bytes().len() as u64;
                    step.report.bytes_read += stored;
                    let bytes = match filter_batch(p, &batch, rules, step) {
                        Ok(Some(bytes)) => bytes,
                        Ok(None) => {
                            step.report.batches_removed += 1;
                            step.work.pace(stored);
                            return Ok(true);
                        }
                        Err(e) => {
                            // Kept as it is: one batch the record format cannot read must not
                            // stop the partition's compaction for good.
                            step.unreadable.note(batch.base_offset(), &e);
                            step.report.batches_unreadable += 1;
                            step.producers.opaque = true;
                            batch.as_bytes().clone()
                        }
                    };
                    let out_batch = StoredBatch::from_bytes(bytes).map_err(StoreError::from)?;
                    let env = *out_batch.envelope();
                    out.entries
                        .push(IndexEntry::for_batch(base, out.size, &env));
                    out.size += env.stored_len();
                    buf.extend_from_slice(out_batch.as_bytes());
                    if buf.len() >= WRITE_CHUNK {
                        disk.write_all(&log, &log_path, &buf)?;
                        buf.clear();
                    }
                    step.work.pace(stored + env.stored_len());
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

    /// Review 17 #6, the bound: the per-producer tables never hold more than
    /// MAX_PRODUCERS_PER_CLEANING ids, and past it the cleaning keeps what it cannot decide.
    #[test]
    fn producer_tables_are_bounded_and_keep_what_overflows() {
        let mut p = Producers::default();
        let max = MAX_PRODUCERS_PER_CLEANING as i64;
        for pid in 0..max + 10 {
            p.saw_batch(pid, pid as u64 * 10);
            p.data_kept(pid);
        }
        assert_eq!(p.last_batch.len(), MAX_PRODUCERS_PER_CLEANING);
        assert_eq!(p.txn_data_kept.len(), MAX_PRODUCERS_PER_CLEANING);
        // Known producers stay exact; a later batch of a known one still moves its last.
        p.saw_batch(3, 5_000_000);
        assert!(p.is_last(3, 5_000_000) && !p.is_last(3, 30));
        // A producer past the bound: every batch of it counts as its last (kept).
        assert!(p.is_last(max + 5, 1) && p.is_last(max + 5, 2));
        // Its markers, and everyone's once the table overflowed, keep as if data were left.
        assert!(p.marker_closes(Some(max + 5)));
        assert!(p.marker_closes(Some(1)));
        let mut q = Producers::default();
        q.data_kept(7);
        assert!(q.marker_closes(Some(7)));
        assert!(
            !q.marker_closes(Some(7)),
            "the transaction's data were counted once"
        );
        assert!(!q.marker_closes(None));
        q.opaque = true;
        assert!(
            q.marker_closes(Some(8)),
            "an unread batch may hold its data"
        );
    }

    /// Review 17 #10: a rebuilt Kafka batch's envelope takes its header's new maxTimestamp.
    #[test]
    fn a_rebuilt_kafka_batch_takes_its_new_max_timestamp() {
        let mut old = kafka(10, 4);
        old[35..43].copy_from_slice(&9_000i64.to_be_bytes());
        let mut b = stored(BatchFormat::Kafka, 10, 5, &old);
        let env = Envelope {
            first_timestamp: 1_000_000,
            max_timestamp: 9_000_000,
            ..*b.envelope()
        };
        let mut bytes = env.encode(&old).to_vec();
        bytes.extend_from_slice(&old);
        b = StoredBatch::from_bytes(Bytes::from(bytes)).unwrap();
        let mut rebuilt = kafka(10, 4);
        rebuilt[35..43].copy_from_slice(&4_000i64.to_be_bytes());
        assert_eq!(rebuilt_max_timestamp(&b, &rebuilt), 4_000_000);
        // Never below the first timestamp; unknown (-1) keeps the old one.
        rebuilt[35..43].copy_from_slice(&500i64.to_be_bytes());
        assert_eq!(rebuilt_max_timestamp(&b, &rebuilt), 1_000_000);
        rebuilt[35..43].copy_from_slice(&(-1i64).to_be_bytes());
        assert_eq!(rebuilt_max_timestamp(&b, &rebuilt), 9_000_000);
        let n = stored(BatchFormat::Native, 10, 5, &native(&[10]));
        assert_eq!(rebuilt_max_timestamp(&n, &native(&[10])), 0);
    }
}
