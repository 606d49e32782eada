//! The cleaner's key-to-offset map: for each key hash (XXH3-128 of the key), the latest offset
//! seen. Open addressing with linear probing in two arrays allocated once, so its memory is
//! exactly `slots * 24` bytes (16 B hash, 8 B offset), within `log.cleaner.dedupe.buffer.size`.
//! It takes keys until [`LOAD_FACTOR`] of its slots are used (Kafka's
//! `log.cleaner.io.buffer.load.factor`); then it is full and the cleaning covers what it holds,
//! leaving the rest to the next pass.

use xxhash_rust::xxh3::xxh3_128;

/// Bytes one slot costs: the 16-byte key hash and the 8-byte offset.
pub const SLOT_BYTES: u64 = 24;
/// Share of the slots the map fills before it reports itself full (probe chains stay short).
const LOAD_FACTOR: f64 = 0.9;
/// Marks an empty slot (no record has this offset: offsets stay below `u64::MAX`).
const EMPTY: u64 = u64::MAX;

/// A bounded map from key hash to latest offset.
#[derive(Debug)]
pub struct OffsetMap {
    hashes: Vec<u128>,
    offsets: Vec<u64>,
    used: usize,
    limit: usize,
}

/// What [`OffsetMap::put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Stored,
    /// The key is new and the map is full: nothing changed.
    Full,
}

impl OffsetMap {
    /// A map within `memory_bytes` (at least two slots, so a cleaning always makes progress).
    pub fn with_memory(memory_bytes: u64) -> OffsetMap {
        let slots = usize::try_from(memory_bytes / SLOT_BYTES)
            .unwrap_or(usize::MAX)
            .max(2);
        let limit = ((slots as f64 * LOAD_FACTOR) as usize).clamp(1, slots - 1);
        OffsetMap {
            hashes: vec![0; slots],
            offsets: vec![EMPTY; slots],
            used: 0,
            limit,
        }
    }

    pub fn hash(key: &[u8]) -> u128 {
        xxh3_128(key)
    }

    /// Bytes the map holds, whatever it contains.
    pub fn memory_bytes(&self) -> u64 {
        self.hashes.len() as u64 * SLOT_BYTES
    }

    /// Keys it can take before it is full.
    pub fn capacity(&self) -> usize {
        self.limit
    }

    pub fn len(&self) -> usize {
        self.used
    }

    pub fn clear(&mut self) {
        self.offsets.fill(EMPTY);
        self.used = 0;
    }

    fn slot(&self, hash: u128) -> usize {
        ((hash as u64) % self.hashes.len() as u64) as usize
    }

    /// Records `offset` as the latest of the key with `hash`.
    pub fn put(&mut self, hash: u128, offset: u64) -> Put {
        let n = self.hashes.len();
        let mut i = self.slot(hash);
        loop {
            if self.offsets[i] == EMPTY {
                if self.used >= self.limit {
                    return Put::Full;
                }
                self.hashes[i] = hash;
                self.offsets[i] = offset;
                self.used += 1;
                return Put::Stored;
            }
            if self.hashes[i] == hash {
                self.offsets[i] = offset;
                return Put::Stored;
            }
            i = (i + 1) % n;
        }
    }

    /// The latest offset of the key with `hash`, if the map has it.
    pub fn get(&self, hash: u128) -> Option<u64> {
        let n = self.hashes.len();
        let mut i = self.slot(hash);
        // At most `limit < n` slots are used, so an empty one ends every probe.
        loop {
            if self.offsets[i] == EMPTY {
                return None;
            }
            if self.hashes[i] == hash {
                return Some(self.offsets[i]);
            }
            i = (i + 1) % n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_exactly_slots_times_24_and_full_refuses_only_new_keys() {
        let mut map = OffsetMap::with_memory(24 * 10);
        assert_eq!(map.memory_bytes(), 240);
        assert_eq!(map.capacity(), 9);
        for k in 0..9u64 {
            assert_eq!(map.put(OffsetMap::hash(&k.to_le_bytes()), k), Put::Stored);
        }
        assert_eq!(map.put(OffsetMap::hash(b"new"), 100), Put::Full);
        // An update of a key it holds needs no slot.
        assert_eq!(
            map.put(OffsetMap::hash(&3u64.to_le_bytes()), 50),
            Put::Stored
        );
        assert_eq!(map.get(OffsetMap::hash(&3u64.to_le_bytes())), Some(50));
        assert_eq!(map.get(OffsetMap::hash(b"new")), None);
        assert_eq!(map.len(), 9);
        map.clear();
        assert_eq!(map.get(OffsetMap::hash(&3u64.to_le_bytes())), None);
    }

    #[test]
    fn a_tiny_buffer_still_holds_one_key() {
        let mut map = OffsetMap::with_memory(0);
        assert_eq!(map.memory_bytes(), 48);
        assert_eq!(map.put(1, 7), Put::Stored);
        assert_eq!(map.put(2, 8), Put::Full);
        assert_eq!(map.get(1), Some(7));
    }
}
