//! Reading uploaded segments: whole batches from an offset, the offset for a timestamp, the
//! batch before an offset. A segment's index object is fetched once and kept parsed (a bounded
//! number of them); its log is read through the read-ahead [`ReadCache`]. Every batch read is
//! checked (envelope checksum) before it is handed out.
//!
//! Every call may block on the object store: callers are the partition's blocking paths, never
//! an async worker.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{PartitionPrefix, ReadCache, RemoteError, RemoteSegment};
use crate::batch::StoredBatch;
use crate::index::INDEX_ENTRY_LEN;
use crate::index::{decode_prefix, find_by_relative_offset, find_by_timestamp, IndexEntry};

/// Parsed indexes a reader keeps, counted in entries (about 40 bytes each in memory): 64 Ki
/// entries, 2.5 MiB, whatever the number of segments. The most recent one is always kept, so
/// a segment whose index alone is larger is still read with one fetch of its index.
const MAX_CACHED_INDEX_ENTRIES: usize = 64 * 1024;

/// An uploaded segment's identity: (base offset, upload epoch).
type SegmentId = (u64, u64);

/// Reads one partition's uploaded segments.
#[derive(Debug)]
pub(crate) struct RemoteReader {
    prefix: PartitionPrefix,
    cache: Arc<ReadCache>,
    metrics: Arc<crate::metrics::StoreMetrics>,
    /// Recently used parsed indexes, least recent first.
    indexes: Mutex<VecDeque<(SegmentId, Arc<[IndexEntry]>)>>,
}

impl RemoteReader {
    /// A reader of the partition whose objects are under `prefix`, through the store's cache.
    pub fn new(
        prefix: PartitionPrefix,
        cache: Arc<ReadCache>,
        metrics: Arc<crate::metrics::StoreMetrics>,
    ) -> RemoteReader {
        RemoteReader {
            prefix,
            cache,
            metrics,
            indexes: Mutex::new(VecDeque::new()),
        }
    }

    /// Where this reader's objects are.
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
        let entries = self.index(segment)?;
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
        let entries = self.index(segment)?;
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
        let entries = self.index(segment)?;
        let i = entries.partition_point(|e| u64::from(e.relative_offset) < rel);
        Ok(i.checked_sub(1)
            .map(|i| segment.base_offset + u64::from(entries[i].relative_offset)))
    }

    /// The parsed index of `segment`, fetched (and checked against the manifest) on a miss.
    pub fn index(&self, segment: &RemoteSegment) -> Result<Arc<[IndexEntry]>, RemoteError> {
        let id = (segment.base_offset, segment.upload_epoch);
        {
            let mut indexes = self.indexes.lock();
            if let Some(i) = indexes.iter().position(|(k, _)| *k == id) {
                let hit = indexes.remove(i).map(|(_, e)| e);
                if let Some(entries) = hit {
                    indexes.push_back((id, Arc::clone(&entries)));
                    return Ok(entries);
                }
            }
        }
        // Fetched without the lock held: a slow store never holds up hits on other indexes.
        let entries = self.fetch_index(segment)?;
        let mut indexes = self.indexes.lock();
        indexes.retain(|(k, _)| *k != id);
        indexes.push_back((id, Arc::clone(&entries)));
        let mut held: usize = indexes.iter().map(|(_, e)| e.len()).sum();
        while held > MAX_CACHED_INDEX_ENTRIES && indexes.len() > 1 {
            if let Some((_, old)) = indexes.pop_front() {
                held -= old.len();
            }
        }
        Ok(entries)
    }

    /// Forgets what is kept of `segment` (its objects are being deleted).
    pub fn forget(&self, segment: &RemoteSegment) {
        let id = (segment.base_offset, segment.upload_epoch);
        self.indexes.lock().retain(|(k, _)| *k != id);
        self.cache
            .forget(&self.prefix.log(segment.base_offset, segment.upload_epoch));
        self.cache
            .forget(&self.prefix.index(segment.base_offset, segment.upload_epoch));
    }

    /// Parsed indexes held now, in entries (for tests of the bound).
    #[cfg(test)]
    fn cached_index_entries(&self) -> usize {
        self.indexes.lock().iter().map(|(_, e)| e.len()).sum()
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

    #[test]
    fn parsed_indexes_stay_under_their_entry_bound() {
        let root = tempfile::tempdir().unwrap();
        let store =
            ObjectStoreRemote::open(RemoteConfig::filesystem(root.path().join("b"))).unwrap();
        let faulty = FaultyRemote::new(Arc::new(store));
        let metrics = Arc::new(crate::metrics::StoreMetrics::default());
        let dyn_store: Arc<dyn RemoteStore> = faulty.clone();
        // A cache far smaller than one index: what is not fetched again is the reader's doing.
        let cache = ReadCache::open(
            &root.path().join("c"),
            1 << 13,
            1 << 12,
            dyn_store,
            Arc::clone(&metrics),
        )
        .unwrap();
        let reader = RemoteReader::new(PartitionPrefix::new(0, 0, 1, 0), Arc::new(cache), metrics);
        // Each index holds a third of the bound: at most three stay parsed.
        let per = (MAX_CACHED_INDEX_ENTRIES / 3) as u64;
        let segments: Vec<RemoteSegment> = (0..6)
            .map(|i| {
                let (seg, index) = segment(i * per, per);
                let key = reader.prefix().index(seg.base_offset, seg.upload_epoch);
                faulty
                    .put(&key, &mut &index[..], index.len() as u64)
                    .unwrap();
                seg
            })
            .collect();
        for seg in &segments {
            assert_eq!(reader.index(seg).unwrap().len() as u64, per);
            assert!(
                reader.cached_index_entries() <= MAX_CACHED_INDEX_ENTRIES,
                "bound MAX_CACHED_INDEX_ENTRIES exceeded"
            );
        }
        faulty.reset_counts();
        // The most recent ones are kept: no fetch.
        reader.index(&segments[5]).unwrap();
        reader.index(&segments[4]).unwrap();
        assert_eq!(faulty.counts().get_ranges + faulty.counts().gets, 0);
        // The oldest went: fetched again.
        reader.index(&segments[0]).unwrap();
        assert!(faulty.counts().get_ranges + faulty.counts().gets > 0);
        // A bigger index than the bound alone is still served (and kept alone).
        let (big, index) = segment(10 * per, MAX_CACHED_INDEX_ENTRIES as u64 + 1);
        let key = reader.prefix().index(big.base_offset, big.upload_epoch);
        faulty
            .put(&key, &mut &index[..], index.len() as u64)
            .unwrap();
        assert_eq!(
            reader.index(&big).unwrap().len(),
            MAX_CACHED_INDEX_ENTRIES + 1
        );
        assert_eq!(reader.cached_index_entries(), MAX_CACHED_INDEX_ENTRIES + 1);
        // An index that disagrees with its manifest entry is refused.
        let mut lying = segments[1].clone();
        lying.upload_epoch = 1;
        lying.batches += 1;
        reader.forget(&lying);
        assert!(matches!(
            reader.index(&lying),
            Err(RemoteError::Corrupt { .. })
        ));
    }
}
