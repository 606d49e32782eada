//! A partition's manifest: which of its segments are in the remote store, with their sizes,
//! checksums, offsets and timestamps. One document per partition, rewritten whole on every
//! change: in the remote store beside the segments (`<partition prefix>manifest`) and durably in
//! the partition folder (`remote-manifest`). Both copies are the same bytes: a magic, the
//! length and a CRC-32C of a JSON body, so a damaged or truncated copy is refused, never
//! half-read.

use serde::{Deserialize, Serialize};

use super::RemoteError;

/// The manifest format this code writes and reads.
pub const MANIFEST_VERSION: u32 = 1;

const MAGIC: &[u8; 8] = b"WHARFRM1";
const HEADER_LEN: usize = 16;
/// The most segments one manifest may name, whatever the configured bound
/// ([`super::RemoteSettings::manifest_max_segments`] is at most this): `encode` refuses more,
/// so that every manifest written fits [`MAX_MANIFEST_BYTES`] and reads back.
pub const MAX_MANIFEST_SEGMENTS: usize = 1 << 20;
/// The JSON of one segment entry at its longest (every number at its largest): 427 bytes,
/// rounded up. Checked by a test.
const MAX_SEGMENT_JSON_BYTES: usize = 512;
/// The JSON of a manifest without its segments at its longest, rounded up well beyond it.
const MAX_MANIFEST_HEAD_JSON_BYTES: usize = 4096;
/// A manifest body larger than this is refused before it is parsed: what
/// [`MAX_MANIFEST_SEGMENTS`] segments take at most (512 MiB and 4 KiB).
pub(crate) const MAX_MANIFEST_BYTES: usize =
    MAX_MANIFEST_HEAD_JSON_BYTES + MAX_MANIFEST_SEGMENTS * MAX_SEGMENT_JSON_BYTES;

/// One uploaded segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteSegment {
    /// The first offset the segment may hold (its file name).
    pub base_offset: u64,
    /// The epoch of the manifest that first named it: part of its objects' keys
    /// ([`super::PartitionPrefix::log`]).
    pub upload_epoch: u64,
    /// One past the last offset of its last batch.
    pub next_offset: u64,
    /// Size of the `.log` object, and its CRC-32C.
    pub log_size: u64,
    pub log_crc32c: u32,
    /// Size of the `.index` object, and its CRC-32C.
    pub index_size: u64,
    pub index_crc32c: u32,
    /// How many batches it holds (index entries).
    pub batches: u64,
    /// Server append time of its first and last batch (µs since the epoch).
    pub first_append_timestamp: u64,
    pub last_append_timestamp: u64,
    /// The greatest max timestamp of its batches and the first offset of that batch.
    pub max_timestamp: u64,
    pub max_timestamp_offset: u64,
    /// Aborted transactions with batches in it, as the broker core reported them at upload
    /// ([`super::TieringHooks`]); absent in manifests written before this field existed.
    #[serde(default)]
    pub aborted: Vec<super::AbortedRange>,
}

/// What a partition has in the remote store.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteManifest {
    pub version: u32,
    /// Which partition this is, so that a manifest is never read for another one.
    pub stream: u32,
    pub topic: u32,
    pub topic_created_us: u64,
    pub partition: u32,
    /// Bumped on every rewrite: of two copies, the higher epoch is the newer.
    pub epoch: u64,
    /// Offsets below this are deleted (retention or DeleteRecords reached into the remote
    /// tier), even where a listed segment still spans them.
    pub log_start: u64,
    /// Uploaded segments, oldest first, contiguous in offsets (each one's `base_offset` is at
    /// or above the previous one's `next_offset`).
    pub segments: Vec<RemoteSegment>,
}

#[cfg(test)]
thread_local! {
    /// Manifests cloned by this thread: tests check that what must not copy one does not.
    pub(crate) static CLONES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

// By hand only so that tests can count clones (a whole manifest is O(segments) to copy).
impl Clone for RemoteManifest {
    fn clone(&self) -> Self {
        #[cfg(test)]
        CLONES.with(|c| c.set(c.get() + 1));
        RemoteManifest {
            version: self.version,
            stream: self.stream,
            topic: self.topic,
            topic_created_us: self.topic_created_us,
            partition: self.partition,
            epoch: self.epoch,
            log_start: self.log_start,
            segments: self.segments.clone(),
        }
    }
}

impl RemoteManifest {
    /// An empty manifest for a partition.
    pub fn new(stream: u32, topic: u32, topic_created_us: u64, partition: u32) -> RemoteManifest {
        RemoteManifest {
            version: MANIFEST_VERSION,
            stream,
            topic,
            topic_created_us,
            partition,
            ..RemoteManifest::default()
        }
    }

    /// The first readable offset in the remote tier, `None` when it holds nothing.
    pub fn start_offset(&self) -> Option<u64> {
        let first = self.segments.first()?;
        Some(first.base_offset.max(self.log_start))
    }

    /// One past the last uploaded offset, `None` when nothing is uploaded.
    pub fn next_offset(&self) -> Option<u64> {
        self.segments.last().map(|s| s.next_offset)
    }

    /// The uploaded segment holding `offset`, or the first one after it.
    pub fn segment_for(&self, offset: u64) -> Option<&RemoteSegment> {
        let i = self.segments.partition_point(|s| s.next_offset <= offset);
        self.segments.get(i)
    }

    /// Total bytes of the uploaded `.log` objects.
    pub fn log_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.log_size).sum()
    }

    /// Refuses a manifest naming more than `max` segments.
    pub fn check_size(&self, max: usize) -> Result<(), RemoteError> {
        if self.segments.len() > max {
            return Err(RemoteError::ManifestFull {
                partition: format!("{}/{}/{}", self.stream, self.topic, self.partition),
                segments: self.segments.len(),
                max,
            });
        }
        Ok(())
    }

    /// The manifest as stored: magic, length, CRC-32C, JSON body. Refused
    /// ([`RemoteError::ManifestFull`]) when it names more than [`MAX_MANIFEST_SEGMENTS`]
    /// segments: what is written must always be readable by [`RemoteManifest::decode`].
    pub fn encode(&self) -> Result<Vec<u8>, RemoteError> {
        self.check_size(MAX_MANIFEST_SEGMENTS)?;
        let refuse = |reason: String| RemoteError::Corrupt {
            key: format!(
                "manifest of partition {}/{}/{}",
                self.stream, self.topic, self.partition
            ),
            reason,
        };
        let body = serde_json::to_vec(self).map_err(|e| refuse(e.to_string()))?;
        if body.len() > MAX_MANIFEST_BYTES {
            // Only the aborted-transaction lists can take an entry past the longest one the
            // bound assumes (a test checks it without them): refused rather than written.
            return Err(refuse(format!(
                "{} bytes is over {MAX_MANIFEST_BYTES}",
                body.len()
            )));
        }
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Reads a stored manifest; `key` names it in errors. Anything but a whole, checksummed
    /// manifest of a known version is [`RemoteError::Corrupt`].
    pub fn decode(bytes: &[u8], key: &str) -> Result<RemoteManifest, RemoteError> {
        let corrupt = |reason: String| RemoteError::Corrupt {
            key: key.to_string(),
            reason,
        };
        if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
            return Err(corrupt("not a Wharf manifest (bad magic)".into()));
        }
        let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        let crc = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        if len > MAX_MANIFEST_BYTES {
            return Err(corrupt(format!(
                "length {len} is over {MAX_MANIFEST_BYTES}"
            )));
        }
        let body = bytes.get(HEADER_LEN..HEADER_LEN + len).ok_or_else(|| {
            corrupt(format!(
                "{} bytes, header says {len}",
                bytes.len() - HEADER_LEN
            ))
        })?;
        if bytes.len() != HEADER_LEN + len {
            return Err(corrupt(format!(
                "{} trailing bytes",
                bytes.len() - HEADER_LEN - len
            )));
        }
        if crc32c::crc32c(body) != crc {
            return Err(corrupt("checksum mismatch".into()));
        }
        let m: RemoteManifest =
            serde_json::from_slice(body).map_err(|e| corrupt(format!("malformed: {e}")))?;
        if m.version != MANIFEST_VERSION {
            return Err(corrupt(format!(
                "version {} is not {MANIFEST_VERSION}",
                m.version
            )));
        }
        for pair in m.segments.windows(2) {
            if pair[1].base_offset < pair[0].next_offset {
                return Err(corrupt(format!(
                    "segment {} overlaps segment {}",
                    pair[1].base_offset, pair[0].base_offset
                )));
            }
        }
        if m.segments.iter().any(|s| s.next_offset < s.base_offset) {
            return Err(corrupt("a segment ends before it starts".into()));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(base: u64, next: u64) -> RemoteSegment {
        RemoteSegment {
            base_offset: base,
            upload_epoch: 1,
            next_offset: next,
            log_size: 100,
            log_crc32c: 1,
            index_size: 40,
            index_crc32c: 2,
            batches: 1,
            first_append_timestamp: 10,
            last_append_timestamp: 20,
            max_timestamp: 20,
            max_timestamp_offset: base,
            aborted: Vec::new(),
        }
    }

    #[test]
    fn round_trips_and_refuses_damage() {
        let mut m = RemoteManifest::new(1, 2, 3, 4);
        m.segments = vec![seg(0, 10), seg(10, 25)];
        let bytes = m.encode().unwrap();
        assert_eq!(RemoteManifest::decode(&bytes, "k").ok(), Some(m.clone()));
        for cut in [0, 7, 15, bytes.len() - 1] {
            assert!(
                RemoteManifest::decode(&bytes[..cut], "k").is_err(),
                "cut at {cut}"
            );
        }
        let mut flipped = bytes.clone();
        let last = flipped.len() - 2;
        flipped[last] ^= 1;
        assert!(matches!(
            RemoteManifest::decode(&flipped, "k"),
            Err(RemoteError::Corrupt { .. })
        ));
        let mut long = bytes;
        long.push(0);
        assert!(RemoteManifest::decode(&long, "k").is_err());
    }

    #[test]
    fn refuses_overlapping_segments() {
        let mut m = RemoteManifest::new(1, 2, 3, 4);
        m.segments = vec![seg(0, 10), seg(5, 25)];
        assert!(RemoteManifest::decode(&m.encode().unwrap(), "k").is_err());
    }

    #[test]
    fn finds_segments_by_offset() {
        let mut m = RemoteManifest::new(1, 2, 3, 4);
        m.segments = vec![seg(0, 10), seg(10, 25)];
        assert_eq!(m.segment_for(0).map(|s| s.base_offset), Some(0));
        assert_eq!(m.segment_for(9).map(|s| s.base_offset), Some(0));
        assert_eq!(m.segment_for(10).map(|s| s.base_offset), Some(10));
        assert!(m.segment_for(25).is_none());
        assert_eq!(m.next_offset(), Some(25));
        m.log_start = 12;
        assert_eq!(m.start_offset(), Some(12));
    }

    fn longest_segment() -> RemoteSegment {
        RemoteSegment {
            base_offset: u64::MAX,
            upload_epoch: u64::MAX,
            next_offset: u64::MAX,
            log_size: u64::MAX,
            log_crc32c: u32::MAX,
            index_size: u64::MAX,
            index_crc32c: u32::MAX,
            batches: u64::MAX,
            first_append_timestamp: u64::MAX,
            last_append_timestamp: u64::MAX,
            max_timestamp: u64::MAX,
            max_timestamp_offset: u64::MAX,
            aborted: Vec::new(),
        }
    }

    /// The bound `MAX_MANIFEST_BYTES` is derived from: no entry and no head is longer than
    /// assumed, so `MAX_MANIFEST_SEGMENTS` segments always encode to what `decode` accepts.
    #[test]
    fn the_longest_entry_and_head_fit_the_assumed_sizes() {
        let mut m = RemoteManifest::new(u32::MAX, u32::MAX, u64::MAX, u32::MAX);
        m.version = u32::MAX;
        m.epoch = u64::MAX;
        m.log_start = u64::MAX;
        let head = serde_json::to_vec(&m).unwrap().len();
        assert!(head <= MAX_MANIFEST_HEAD_JSON_BYTES, "head {head}");
        m.segments = vec![longest_segment(); 2];
        // Each entry adds its JSON and one comma.
        let per_entry = (serde_json::to_vec(&m).unwrap().len() - head) / 2;
        assert!(per_entry <= MAX_SEGMENT_JSON_BYTES, "entry {per_entry}");
    }

    /// Bound: `MAX_MANIFEST_SEGMENTS`. One more segment is refused by `encode`, so no manifest
    /// is ever written that `decode` refuses.
    #[test]
    fn encode_refuses_more_segments_than_decode_reads_back() {
        // (At the bound itself the size follows from the test above; encoding a million
        // entries here would only cost time.)
        let mut m = RemoteManifest::new(1, 2, 3, 4);
        m.segments = vec![seg(0, 1); MAX_MANIFEST_SEGMENTS + 1];
        match m.encode() {
            Err(RemoteError::ManifestFull {
                partition,
                segments,
                max,
            }) => {
                assert_eq!(partition, "1/2/4");
                assert_eq!(
                    (segments, max),
                    (MAX_MANIFEST_SEGMENTS + 1, MAX_MANIFEST_SEGMENTS)
                );
            }
            other => panic!("expected a refusal, got {:?}", other.map(|b| b.len())),
        }
        m.segments.truncate(3);
        assert!(m.encode().is_ok());
    }
}
