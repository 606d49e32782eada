//! Reading uploaded segments: whole batches from an offset, the offset for a timestamp, the
//! batch before an offset. A segment's index object is fetched once and kept parsed (in the
//! store-wide bounded set the [`ReadCache`] holds for every partition); its log is read
//! through the read-ahead cache. Every batch read is checked (envelope checksum) before it is
//! handed out.
//!
//! Every call may block on the object store: callers are the partition's blocking paths, never
//! an async worker. Each call first takes a turn from the store-wide read limit (Kafka's
//! `remote.log.reader.threads` and `.max.pending.tasks`), so a slow object store holds a
//! bounded number of threads and further reads are refused at once, retriable.

use std::sync::Arc;

use super::{PartitionPrefix, ReadCache, RemoteError, RemoteSegment};
use crate::batch::StoredBatch;
use crate::index::INDEX_ENTRY_LEN;
use crate::index::{decode_prefix, find_by_relative_offset, find_by_timestamp, IndexEntry};

/// Reads one partition's uploaded segments.
#[derive(Debug)]
pub(crate) struct RemoteReader {
    prefix: PartitionPrefix,
    cache: Arc<ReadCache>,
}

impl RemoteReader {
    /// A reader of the partition whose objects are under `prefix`, through the store's cache.
    pub fn new(prefix: PartitionPrefix, cache: Arc<ReadCache>) -> RemoteReader {
        RemoteReader { prefix, cache }
    }

    /// Where this reader's objects are.
    #[cfg(test)]
    pub fn prefix(&self) -> &PartitionPrefix {
        &self.prefix
    }

    /// Whole batches of `segment` starting with the one that holds `from` (or the first one
    /// after it), up to `max_bytes` of stored bytes but at least one; empty when the segment
    /// holds nothing at or after `from`. Every batch's checksum is verified.
    pub fn read(
        &self,
        segment: &RemoteSegment,
        from: u64,
        max_bytes: u64,
    ) -> Result<Vec<StoredBatch>, RemoteError> {
        let _turn = self.cache.reads().turn()?;
        let entries = self.parsed_index(segment)?;
        let start = first_entry_at(segment.base_offset, &entries, from);
        let mut taken = 0u64;
        let mut count = 0usize;
        for e in &entries[start..] {
            if count > 0 && taken + u64::from(e.length) > max_bytes {
                break;
            }
            taken += u64::from(e.length);
            count += 1;
        }
        let picked = &entries[start..start + count];
        let (Some(first), Some(last)) = (picked.first(), picked.last()) else {
            return Ok(Vec::new());
        };
        let key = self.prefix.log(segment.base_offset, segment.upload_epoch);
        let corrupt = |reason: String| RemoteError::Corrupt {
            key: key.clone(),
            reason,
        };
        let range = first.position..last.end_position();
        let bytes = self.cache.read(&key, segment.log_size, range.clone())?;
        if bytes.len() as u64 != range.end - range.start {
            return Err(corrupt(format!(
                "{} bytes read for {}..{}",
                bytes.len(),
                range.start,
                range.end
            )));
        }
        let mut batches = Vec::with_capacity(picked.len());
        let mut at = 0usize;
        for e in picked {
            let len = e.length as usize;
            let batch = StoredBatch::from_bytes(bytes.slice(at..at + len))
                .and_then(|b| b.verify().map(|()| b))
                .map_err(|err| corrupt(format!("batch at byte {}: {err}", e.position)))?;
            let want = segment.base_offset + u64::from(e.relative_offset);
            if batch.envelope().base_offset != want {
                return Err(corrupt(format!(
                    "batch at byte {} holds offset {}, its index says {want}",
                    e.position,
                    batch.envelope().base_offset
                )));
            }
            batches.push(batch);
            at += len;
        }
        Ok(batches)
    }

    /// The first offset of the first batch of `segment` whose max timestamp is at or after
    /// `timestamp_us`.
    pub fn offset_for_timestamp(
        &self,
        segment: &RemoteSegment,
        timestamp_us: u64,
    ) -> Result<Option<u64>, RemoteError> {
        let _turn = self.cache.reads().turn()?;
        let entries = self.parsed_index(segment)?;
        Ok(find_by_timestamp(&entries, timestamp_us)
            .map(|i| segment.base_offset + u64::from(entries[i].relative_offset)))
    }

    /// The first offset of the last batch of `segment` that starts below `end`.
    pub fn batch_before(
        &self,
        segment: &RemoteSegment,
        end: u64,
    ) -> Result<Option<u64>, RemoteError> {
        let Some(rel) = end.checked_sub(segment.base_offset) else {
            return Ok(None);
        };
        let _turn = self.cache.reads().turn()?;
        let entries = self.parsed_index(segment)?;
        let i = entries.partition_point(|e| u64::from(e.relative_offset) < rel);
        Ok(i.checked_sub(1)
            .map(|i| segment.base_offset + u64::from(entries[i].relative_offset)))
    }

    /// The parsed index of `segment`, fetched (and checked against the manifest) on a miss.
    #[cfg(test)]
    pub fn index(&self, segment: &RemoteSegment) -> Result<Arc<[IndexEntry]>, RemoteError> {
        let _turn = self.cache.reads().turn()?;
        self.parsed_index(segment)
    }

    /// [`Self::index`] within a turn the caller holds.
    fn parsed_index(&self, segment: &RemoteSegment) -> Result<Arc<[IndexEntry]>, RemoteError> {
        let key = self.prefix.index(segment.base_offset, segment.upload_epoch);
        if let Some(entries) = self.cache.parsed_index(&key) {
            return Ok(entries);
        }
        // Fetched without a lock held: a slow store never holds up hits on other indexes.
        let entries = self.fetch_index(segment)?;
        self.cache.keep_index(&key, Arc::clone(&entries));
        Ok(entries)
    }

    /// Forgets what is kept of `segment` (tests; the tiering thread forgets deleted objects'
    /// keys in the cache itself).
    #[cfg(test)]
    pub fn forget(&self, segment: &RemoteSegment) {
        self.cache
            .forget(&self.prefix.log(segment.base_offset, segment.upload_epoch));
        self.cache
            .forget(&self.prefix.index(segment.base_offset, segment.upload_epoch));
    }

    fn fetch_index(&self, segment: &RemoteSegment) -> Result<Arc<[IndexEntry]>, RemoteError> {
        let key = self.prefix.index(segment.base_offset, segment.upload_epoch);
        let corrupt = |reason: String| RemoteError::Corrupt {
            key: key.clone(),
            reason,
        };
        // The manifest's own checksum vouches for these sizes; they are checked against each
        // other before anything is read, so nothing is allocated from a length that lies.
        let expected = segment
            .batches
            .checked_mul(INDEX_ENTRY_LEN as u64)
            .filter(|&n| n == segment.index_size)
            .ok_or_else(|| {
                corrupt(format!(
                    "{} bytes in the manifest for {} batches",
                    segment.index_size, segment.batches
                ))
            })?;
        let bytes = self.cache.read(&key, expected, 0..expected)?;
        if bytes.len() as u64 != expected {
            return Err(corrupt(format!(
                "{} bytes, expected {expected}",
                bytes.len()
            )));
        }
        if crc32c::crc32c(&bytes) != segment.index_crc32c {
            return Err(corrupt("checksum mismatch".into()));
        }
        let entries = decode_prefix(&bytes);
        let whole = entries.len() as u64 == segment.batches
            && entries.last().is_some_and(|e| {
                e.end_position() == segment.log_size
                    && segment.base_offset + e.end_relative_offset() == segment.next_offset
            });
        if !whole {
            return Err(corrupt(format!(
                "{} of {} entries readable, or they do not end where the manifest says",
                entries.len(),
                segment.batches
            )));
        }
        Ok(entries.into())
    }
}

/// The entry holding `from`, or the first one after it (`entries.len()`: none).
fn first_entry_at(base: u64, entries: &[IndexEntry], from: u64) -> usize {
    let Some(rel) = from.checked_sub(base) else {
        return 0;
    };
    find_by_relative_offset(entries, rel)
        .unwrap_or_else(|| entries.partition_point(|e| u64::from(e.relative_offset) < rel))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use std::time::Duration;

    use super::*;
    use crate::remote::{FaultyRemote, ObjectStoreRemote, RemoteConfig, RemoteStore};

    /// One segment of `batches` one-record batches of 100 bytes, as a manifest entry and the
    /// index bytes uploaded for it.
    fn segment(base: u64, batches: u64) -> (RemoteSegment, Vec<u8>) {
        let entries: Vec<IndexEntry> = (0..batches)
            .map(|i| IndexEntry {
                relative_offset: i as u32,
                record_count: 1,
                position: i * 100,
                length: 100,
                max_timestamp: i,
                append_timestamp: i,
            })
            .collect();
        let index: Vec<u8> = entries.iter().flat_map(|e| e.encode()).collect();
        let seg = RemoteSegment {
            base_offset: base,
            upload_epoch: 1,
            next_offset: base + batches,
            log_size: batches * 100,
            log_crc32c: 0,
            index_size: index.len() as u64,
            index_crc32c: crc32c::crc32c(&index),
            batches,
            first_append_timestamp: 0,
            last_append_timestamp: batches - 1,
            max_timestamp: batches - 1,
            max_timestamp_offset: base + batches - 1,
            aborted: Vec::new(),
        };
        (seg, index)
    }

    /// A filesystem store behind a fault switch, and one cache (as the store has one) with
    /// `max_entries` parsed index entries store-wide and `threads`/`pending` read turns.
    fn shared_cache(
        root: &std::path::Path,
        max_entries: usize,
        threads: usize,
        pending: usize,
    ) -> (Arc<FaultyRemote>, Arc<ReadCache>) {
        let store = ObjectStoreRemote::open(RemoteConfig::filesystem(root.join("b"))).unwrap();
        let faulty = FaultyRemote::new(Arc::new(store));
        let metrics = Arc::new(crate::metrics::StoreMetrics::default());
        let dyn_store: Arc<dyn RemoteStore> = faulty.clone();
        let cache = ReadCache::open(&root.join("c"), 1 << 20, 1 << 12, dyn_store, metrics)
            .unwrap()
            .with_index_bound(max_entries)
            .with_read_limits(threads, pending);
        (faulty, Arc::new(cache))
    }

    /// A reader of partition `partition` on `cache`, and its segment of `batches` uploaded.
    fn partition_with_segment(
        faulty: &FaultyRemote,
        cache: &Arc<ReadCache>,
        partition: u32,
        batches: u64,
    ) -> (RemoteReader, RemoteSegment) {
        let reader = RemoteReader::new(PartitionPrefix::new(0, 0, 1, partition), Arc::clone(cache));
        let (seg, index) = segment(0, batches);
        let key = reader.prefix().index(seg.base_offset, seg.upload_epoch);
        faulty
            .put(&key, &mut &index[..], index.len() as u64)
            .unwrap();
        (reader, seg)
    }

    /// Bound attacked: the parsed indexes of many partitions' readers together stay within
    /// one store-wide bound (not one bound per partition), the most recent ones kept.
    #[test]
    fn parsed_indexes_of_every_partition_stay_under_one_store_wide_bound() {
        let root = tempfile::tempdir().unwrap();
        let bound = 3_000;
        let (faulty, cache) = shared_cache(root.path(), bound, 4, 4);
        // 20 partitions, each index a third of the bound: a per-partition bound would keep
        // all 20 (20 000 entries).
        let parts: Vec<(RemoteReader, RemoteSegment)> = (0..20)
            .map(|p| partition_with_segment(&faulty, &cache, p, 1_000))
            .collect();
        for (reader, seg) in &parts {
            assert_eq!(reader.index(seg).unwrap().len(), 1_000);
            assert!(
                cache.parsed_index_entries() <= bound,
                "store-wide bound of {bound} parsed index entries exceeded: {}",
                cache.parsed_index_entries()
            );
        }
        assert_eq!(cache.parsed_index_entries(), bound);
        faulty.reset_counts();
        // The most recent ones are kept: no fetch, not even from the chunk cache's store.
        parts[19].0.index(&parts[19].1).unwrap();
        parts[18].0.index(&parts[18].1).unwrap();
        assert_eq!(faulty.counts().get_ranges + faulty.counts().gets, 0);
        // An index bigger than the whole bound is served, and not kept.
        let (big_reader, big) = partition_with_segment(&faulty, &cache, 99, bound as u64 + 1);
        assert_eq!(big_reader.index(&big).unwrap().len(), bound + 1);
        assert!(cache.parsed_index_entries() <= bound);
        // Forgetting a segment drops its parsed index.
        parts[19].0.forget(&parts[19].1);
        assert!(cache.parsed_index_entries() <= bound - 1_000);
        // An index that disagrees with its manifest entry is refused.
        let mut lying = parts[1].1.clone();
        lying.batches += 1;
        parts[1].0.forget(&lying);
        parts[1].0.forget(&parts[1].1);
        assert!(matches!(
            parts[1].0.index(&lying),
            Err(RemoteError::Corrupt { .. })
        ));
    }

    /// Bound attacked: remote reads in progress store-wide. With the object store stalled,
    /// at most `reader_threads` reads reach it, `reader_max_pending_tasks` more wait, and any
    /// further one is refused at once with a retriable error instead of holding a thread.
    #[test]
    fn remote_reads_beyond_reader_threads_and_pending_tasks_are_refused_at_once() {
        let root = tempfile::tempdir().unwrap();
        let (threads, pending) = (2, 1);
        let (faulty, cache) = shared_cache(root.path(), 1 << 20, threads, pending);
        let parts: Vec<(RemoteReader, RemoteSegment)> = (0..6)
            .map(|p| partition_with_segment(&faulty, &cache, p, 10))
            .collect();
        let parts = Arc::new(parts);
        faulty.reset_counts();
        faulty.set_paused(true);
        let mut held = Vec::new();
        for i in 0..threads + pending {
            let parts = Arc::clone(&parts);
            held.push(std::thread::spawn(move || {
                let (reader, seg) = &parts[i];
                reader.index(seg).map(|e| e.len())
            }));
            if i < threads {
                assert!(
                    faulty.wait_for_held_calls(i + 1, Duration::from_secs(20)),
                    "read {i} never reached the stalled store"
                );
            }
        }
        assert!(
            cache
                .reads()
                .wait_for_pending(pending, Duration::from_secs(20)),
            "the reads over reader_threads never queued"
        );
        // Full: the next reads, of any partition, are refused at once.
        for (reader, seg) in &parts[threads + pending..] {
            let refused = reader.index(seg).unwrap_err();
            assert!(matches!(refused, RemoteError::Busy { .. }), "{refused}");
            assert!(refused.is_retriable());
            let refused = reader.read(seg, 0, 1 << 20).unwrap_err();
            assert!(matches!(refused, RemoteError::Busy { .. }), "{refused}");
        }
        assert_eq!(
            faulty.held_calls(),
            threads,
            "more remote reads reached the store than reader_threads"
        );
        assert_eq!(cache.reads().in_progress(), (threads, pending));
        faulty.set_paused(false);
        for h in held {
            assert_eq!(h.join().unwrap().unwrap(), 10);
        }
        assert_eq!(cache.reads().in_progress(), (0, 0));
        // Turns come back: the refused reads now succeed.
        let (reader, seg) = &parts[threads + pending];
        assert_eq!(reader.index(seg).unwrap().len(), 10);
    }
}
