//! The sparse segment index: one fixed-size, checksummed entry per stored batch.
//!
//! Entry layout (40 bytes, little-endian):
//!
//! | off | size | field |
//! |---|---|---|
//! | 0 | 4 | offset of the batch's first record, relative to the segment's base offset |
//! | 4 | 4 | offset span (the envelope's `record_count`: last offset - first + 1) |
//! | 8 | 8 | position of the batch's envelope in the `.log` file |
//! | 16 | 4 | stored length (envelope + payload) |
//! | 20 | 4 | CRC-32C over bytes 0..20 and 24..40 |
//! | 24 | 8 | max timestamp (µs) |
//! | 32 | 8 | append timestamp (µs) |
//!
//! The index is derived data: it can always be rebuilt from the `.log`, so it is synced lazily
//! and any entry that fails its checksum or disagrees with the log is dropped and rebuilt.

use crate::batch::{le_u32, le_u64, Envelope};

pub(crate) const INDEX_ENTRY_LEN: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub relative_offset: u32,
    pub record_count: u32,
    pub position: u64,
    pub length: u32,
    pub max_timestamp: u64,
    pub append_timestamp: u64,
}

impl IndexEntry {
    pub fn for_batch(segment_base: u64, position: u64, env: &Envelope) -> IndexEntry {
        IndexEntry {
            relative_offset: (env.base_offset - segment_base) as u32,
            record_count: env.record_count,
            position,
            length: env.stored_len() as u32,
            max_timestamp: env.max_timestamp,
            append_timestamp: env.append_timestamp,
        }
    }

    /// Position just past this batch in the log.
    pub fn end_position(&self) -> u64 {
        self.position + u64::from(self.length)
    }

    /// Relative offset just past this batch.
    pub fn end_relative_offset(&self) -> u64 {
        u64::from(self.relative_offset) + u64::from(self.record_count)
    }

    pub fn encode(&self) -> [u8; INDEX_ENTRY_LEN] {
        let mut b = [0u8; INDEX_ENTRY_LEN];
        b[0..4].copy_from_slice(&self.relative_offset.to_le_bytes());
        b[4..8].copy_from_slice(&self.record_count.to_le_bytes());
        b[8..16].copy_from_slice(&self.position.to_le_bytes());
        b[16..20].copy_from_slice(&self.length.to_le_bytes());
        b[24..32].copy_from_slice(&self.max_timestamp.to_le_bytes());
        b[32..40].copy_from_slice(&self.append_timestamp.to_le_bytes());
        let crc = entry_crc(&b);
        b[20..24].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes one entry; `None` when its checksum does not match.
    pub fn decode(b: &[u8]) -> Option<IndexEntry> {
        if b.len() < INDEX_ENTRY_LEN || le_u32(b, 20) != entry_crc(b) {
            return None;
        }
        let entry = IndexEntry {
            relative_offset: le_u32(b, 0),
            record_count: le_u32(b, 4),
            position: le_u64(b, 8),
            length: le_u32(b, 16),
            max_timestamp: le_u64(b, 24),
            append_timestamp: le_u64(b, 32),
        };
        (entry.record_count > 0).then_some(entry)
    }
}

fn entry_crc(b: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&b[0..20]), &b[24..40])
}

/// Decodes the longest valid prefix of an index file: entries whose checksums match, that
/// follow each other without gaps in positions, and whose offsets never go back. Offsets may
/// skip: compaction removes whole batches, leaving holes between the ones it keeps.
pub(crate) fn decode_prefix(bytes: &[u8]) -> Vec<IndexEntry> {
    let mut entries: Vec<IndexEntry> = Vec::with_capacity(bytes.len() / INDEX_ENTRY_LEN);
    for chunk in bytes.chunks_exact(INDEX_ENTRY_LEN) {
        let Some(entry) = IndexEntry::decode(chunk) else {
            break;
        };
        let (want_rel, want_pos) = entries
            .last()
            .map_or((0, 0), |p| (p.end_relative_offset(), p.end_position()));
        if u64::from(entry.relative_offset) < want_rel
            || entry.position != want_pos
            || entry.end_relative_offset() > u64::from(u32::MAX)
        {
            break;
        }
        entries.push(entry);
    }
    entries
}

/// Index of the entry holding `relative` (the last entry starting at or before it), if any
/// entry covers it.
pub(crate) fn find_by_relative_offset(entries: &[IndexEntry], relative: u64) -> Option<usize> {
    let after = entries.partition_point(|e| u64::from(e.relative_offset) <= relative);
    let i = after.checked_sub(1)?;
    (relative < entries[i].end_relative_offset()).then_some(i)
}

/// Index of the first entry whose max timestamp is at or after `ts`.
///
/// Max timestamps of Kafka batches (client clocks) need not grow from batch to batch, so this is
/// a scan, not a binary search: the answer is the first batch in offset order that qualifies.
pub(crate) fn find_by_timestamp(entries: &[IndexEntry], ts: u64) -> Option<usize> {
    entries.iter().position(|e| e.max_timestamp >= ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(rel: u32, count: u32, pos: u64, len: u32, ts: u64) -> IndexEntry {
        IndexEntry {
            relative_offset: rel,
            record_count: count,
            position: pos,
            length: len,
            max_timestamp: ts,
            append_timestamp: ts,
        }
    }

    #[test]
    fn entries_round_trip_and_every_flip_is_caught() {
        let e = entry(3, 10, 4096, 100, 77);
        let b = e.encode();
        assert_eq!(IndexEntry::decode(&b), Some(e));
        for bit in 0..INDEX_ENTRY_LEN * 8 {
            let mut c = b;
            c[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(IndexEntry::decode(&c), None, "bit {bit}");
        }
    }

    #[test]
    fn prefix_stops_at_position_gap_offset_overlap_corruption_or_torn_entry() {
        let a = entry(0, 2, 0, 100, 1);
        let b = entry(2, 3, 100, 50, 2);
        let position_gap = entry(9, 1, 151, 10, 3);
        let mut bytes = [a.encode(), b.encode(), position_gap.encode()].concat();
        assert_eq!(decode_prefix(&bytes), vec![a, b]);
        let overlap = entry(4, 1, 150, 10, 3);
        let bytes2 = [a.encode(), b.encode(), overlap.encode()].concat();
        assert_eq!(decode_prefix(&bytes2), vec![a, b]);
        bytes.truncate(INDEX_ENTRY_LEN * 2 - 1);
        assert_eq!(decode_prefix(&bytes), vec![a]);
        let mut bytes = [a.encode(), b.encode()].concat();
        bytes[45] ^= 0xff;
        assert_eq!(decode_prefix(&bytes), vec![a]);
    }

    #[test]
    fn offset_holes_between_entries_are_accepted() {
        // Compaction removed offsets 2..9 and 11..20: the entries skip them.
        let a = entry(0, 2, 0, 100, 1);
        let b = entry(9, 2, 100, 50, 2);
        let c = entry(20, 1, 150, 10, 3);
        let bytes = [a.encode(), b.encode(), c.encode()].concat();
        assert_eq!(decode_prefix(&bytes), vec![a, b, c]);
        assert_eq!(find_by_relative_offset(&[a, b, c], 5), None);
        assert_eq!(find_by_relative_offset(&[a, b, c], 10), Some(1));
        assert_eq!(find_by_relative_offset(&[a, b, c], 20), Some(2));
    }

    #[test]
    fn lookups() {
        let es = [
            entry(0, 2, 0, 10, 5),
            entry(2, 3, 10, 10, 9),
            entry(5, 1, 20, 10, 7),
        ];
        assert_eq!(find_by_relative_offset(&es, 0), Some(0));
        assert_eq!(find_by_relative_offset(&es, 1), Some(0));
        assert_eq!(find_by_relative_offset(&es, 4), Some(1));
        assert_eq!(find_by_relative_offset(&es, 5), Some(2));
        assert_eq!(find_by_relative_offset(&es, 6), None);
        assert_eq!(find_by_timestamp(&es, 6), Some(1));
        assert_eq!(find_by_timestamp(&es, 10), None);
    }
}
