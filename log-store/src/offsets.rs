//! Committed consumer positions: one record per (consumer or group, stream, topic, partition),
//! shared by both protocols. The value is the **next offset to read** (Kafka's meaning; the
//! native adapter converts from Iggy's "last consumed").
//!
//! Stored as an append-only journal of checksummed records (`[len u32][crc32c u32][body]`):
//! a commit is one `write`, so a killed process loses no acknowledged commit; the background
//! syncer fsyncs it. On open the journal is replayed and a torn or corrupt tail is cut off. When
//! the journal grows well past the live entries it is compacted into a new file, written and
//! synced beside the old one and renamed over it.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use crate::batch::{le_u32, le_u64};
use crate::durable_file::sync_dir;
use crate::error::{Result, StoreError};

/// Largest committed metadata string kept, in bytes.
pub const MAX_OFFSET_METADATA: usize = 64 * 1024;
const MAX_OWNER_ID: usize = u16::MAX as usize;
const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;

/// Whose position it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OffsetOwner {
    /// A single consumer, by its id or name.
    Consumer(String),
    /// A consumer group (Kafka group id, or Iggy group name), shared across protocols.
    Group(String),
}

impl OffsetOwner {
    fn kind(&self) -> u8 {
        match self {
            OffsetOwner::Consumer(_) => 1,
            OffsetOwner::Group(_) => 2,
        }
    }
    pub fn id(&self) -> &str {
        match self {
            OffsetOwner::Consumer(id) | OffsetOwner::Group(id) => id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OffsetKey {
    pub owner: OffsetOwner,
    pub stream: u32,
    pub topic: u32,
    pub partition: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommittedOffset {
    /// The next offset the owner will read.
    pub next_offset: u64,
    /// Kafka's committed leader epoch, -1 when none.
    pub leader_epoch: i32,
    pub metadata: String,
    /// When the commit was made, µs since the Unix epoch.
    pub commit_timestamp: u64,
}

struct Journal {
    path: PathBuf,
    file: File,
    /// Bytes in the journal, so a failed write can be cut back without asking the kernel.
    len: u64,
    entries: HashMap<OffsetKey, CommittedOffset>,
    records: usize,
    dirty: bool,
}

/// The consumer offsets store.
pub struct ConsumerOffsets {
    journal: Mutex<Journal>,
}

impl std::fmt::Debug for ConsumerOffsets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let j = self.journal.lock();
        f.debug_struct("ConsumerOffsets")
            .field("path", &j.path)
            .field("entries", &j.entries.len())
            .finish()
    }
}

impl ConsumerOffsets {
    /// Opens (or creates) the journal in `dir`, replaying it and cutting a damaged tail.
    pub fn open(dir: &Path) -> Result<ConsumerOffsets> {
        fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let path = dir.join("journal");
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(StoreError::io(&path, e)),
        };
        let mut entries = HashMap::new();
        let mut records = 0;
        let mut pos = 0;
        let mut cut = None;
        while pos < bytes.len() {
            match decode_record(&bytes[pos..]) {
                Ok((len, op)) => {
                    match op {
                        Record::Put(k, v) => entries.insert(k, v),
                        Record::Delete(k) => entries.remove(&k),
                    };
                    records += 1;
                    pos += len;
                }
                Err(why) => {
                    cut = Some(why);
                    break;
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        if let Some(why) = cut {
            tracing::warn!(
                path = %path.display(),
                "cut {} bytes from the offsets journal at byte {pos}: {why}",
                bytes.len() - pos
            );
            file.set_len(pos as u64)
                .and_then(|()| file.sync_all())
                .map_err(|e| StoreError::io(&path, e))?;
        }
        let mut journal = Journal {
            path,
            file,
            len: pos as u64,
            entries,
            records,
            dirty: false,
        };
        if journal.records > 2 * journal.entries.len() + 1000 {
            journal.compact()?;
        }
        Ok(ConsumerOffsets {
            journal: Mutex::new(journal),
        })
    }

    /// Stores one position. Returns once the record is written to the kernel.
    pub fn commit(&self, key: OffsetKey, value: CommittedOffset) -> Result<()> {
        self.commit_many(vec![(key, value)])
    }

    /// Stores several positions with one write.
    pub fn commit_many(&self, items: Vec<(OffsetKey, CommittedOffset)>) -> Result<()> {
        let mut buf = Vec::new();
        for (k, v) in &items {
            check_key(k)?;
            if v.metadata.len() > MAX_OFFSET_METADATA {
                return Err(StoreError::InvalidSetting(format!(
                    "offset metadata of {} bytes exceeds {MAX_OFFSET_METADATA}",
                    v.metadata.len()
                )));
            }
            encode_record(&mut buf, k, Some(v));
        }
        let mut j = self.journal.lock();
        j.append(&buf)?;
        j.records += items.len();
        for (k, v) in items {
            j.entries.insert(k, v);
        }
        j.maybe_compact()
    }

    pub fn get(&self, key: &OffsetKey) -> Option<CommittedOffset> {
        self.journal.lock().entries.get(key).cloned()
    }

    /// All positions that `keep` selects, sorted by key.
    pub fn list(&self, keep: impl Fn(&OffsetKey) -> bool) -> Vec<(OffsetKey, CommittedOffset)> {
        let j = self.journal.lock();
        let mut out: Vec<_> = j
            .entries
            .iter()
            .filter(|(k, _)| keep(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// True when any stored position matches.
    pub fn any(&self, matches: impl Fn(&OffsetKey) -> bool) -> bool {
        self.journal.lock().entries.keys().any(matches)
    }

    /// The names of the groups that have at least one stored position, sorted.
    pub fn group_names(&self) -> Vec<String> {
        let j = self.journal.lock();
        let names: std::collections::BTreeSet<&str> = j
            .entries
            .keys()
            .filter_map(|k| match &k.owner {
                OffsetOwner::Group(g) => Some(g.as_str()),
                OffsetOwner::Consumer(_) => None,
            })
            .collect();
        names.into_iter().map(str::to_string).collect()
    }

    /// Deletes one position; false when there was none.
    pub fn delete(&self, key: &OffsetKey) -> Result<bool> {
        Ok(self.delete_where(|k| k == key)? == 1)
    }

    /// Deletes every position that `matches` selects (a deleted topic's, a deleted group's).
    pub fn delete_where(&self, matches: impl Fn(&OffsetKey) -> bool) -> Result<usize> {
        let mut j = self.journal.lock();
        let doomed: Vec<OffsetKey> = j.entries.keys().filter(|k| matches(k)).cloned().collect();
        if doomed.is_empty() {
            return Ok(0);
        }
        let mut buf = Vec::new();
        for k in &doomed {
            encode_record(&mut buf, k, None);
        }
        j.append(&buf)?;
        j.records += doomed.len();
        for k in &doomed {
            j.entries.remove(k);
        }
        j.maybe_compact()?;
        Ok(doomed.len())
    }

    /// Fsyncs the journal if anything was written since the last sync.
    pub fn sync(&self) -> Result<()> {
        let mut j = self.journal.lock();
        if j.dirty {
            j.file.sync_data().map_err(|e| StoreError::io(&j.path, e))?;
            j.dirty = false;
        }
        Ok(())
    }
}

impl Journal {
    fn append(&mut self, buf: &[u8]) -> Result<()> {
        if let Err(e) = self.file.write_all(buf) {
            // Never leave half a record behind a later whole one.
            let _ = self.file.set_len(self.len);
            return Err(StoreError::io(&self.path, e));
        }
        self.len += buf.len() as u64;
        self.dirty = true;
        Ok(())
    }

    /// Compacts when the journal has grown well past the live entries. A failed compaction is
    /// logged, not returned: the commit that triggered it is already written.
    fn maybe_compact(&mut self) -> Result<()> {
        if self.records > (4 * self.entries.len()).max(100_000) {
            if let Err(e) = self.compact() {
                tracing::warn!(path = %self.path.display(), "compacting the offsets journal failed: {e}");
            }
        }
        Ok(())
    }

    /// Rewrites the journal as one put per live entry.
    fn compact(&mut self) -> Result<()> {
        let mut buf = Vec::new();
        for (k, v) in &self.entries {
            encode_record(&mut buf, k, Some(v));
        }
        let tmp = self.path.with_file_name("journal.compact");
        let mut f = File::create(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
        f.write_all(&buf)
            .and_then(|()| f.sync_all())
            .map_err(|e| StoreError::io(&tmp, e))?;
        fs::rename(&tmp, &self.path).map_err(|e| StoreError::io(&self.path, e))?;
        // From the rename on, commits must go to the new file, whatever fails next.
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| StoreError::io(&self.path, e))?;
        self.records = self.entries.len();
        self.len = buf.len() as u64;
        self.dirty = false;
        if let Some(dir) = self.path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

fn check_key(k: &OffsetKey) -> Result<()> {
    let id = k.owner.id();
    if id.is_empty() || id.len() > MAX_OWNER_ID {
        return Err(StoreError::InvalidName(format!(
            "consumer or group id must be 1..={MAX_OWNER_ID} bytes, got {}",
            id.len()
        )));
    }
    Ok(())
}

enum Record {
    Put(OffsetKey, CommittedOffset),
    Delete(OffsetKey),
}

fn encode_record(out: &mut Vec<u8>, k: &OffsetKey, v: Option<&CommittedOffset>) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    out.push(if v.is_some() { OP_PUT } else { OP_DELETE });
    out.push(k.owner.kind());
    let id = k.owner.id().as_bytes();
    out.extend_from_slice(&(id.len() as u16).to_le_bytes());
    out.extend_from_slice(id);
    out.extend_from_slice(&k.stream.to_le_bytes());
    out.extend_from_slice(&k.topic.to_le_bytes());
    out.extend_from_slice(&k.partition.to_le_bytes());
    if let Some(v) = v {
        out.extend_from_slice(&v.next_offset.to_le_bytes());
        out.extend_from_slice(&v.leader_epoch.to_le_bytes());
        out.extend_from_slice(&v.commit_timestamp.to_le_bytes());
        out.extend_from_slice(&(v.metadata.len() as u32).to_le_bytes());
        out.extend_from_slice(v.metadata.as_bytes());
    }
    let body_len = (out.len() - start - 8) as u32;
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start..start + 4].copy_from_slice(&body_len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes the record at the start of `b`: its total length and content.
fn decode_record(b: &[u8]) -> Result<(usize, Record), &'static str> {
    if b.len() < 8 {
        return Err("torn record header");
    }
    let len = le_u32(b, 0) as usize;
    let body = b.get(8..8 + len).ok_or("torn record")?;
    if crc32c::crc32c(body) != le_u32(b, 4) {
        return Err("checksum mismatch");
    }
    let mut r = Reader { b: body, at: 0 };
    let op = r.u8()?;
    let kind = r.u8()?;
    let id_len = r.u16()? as usize;
    let id = std::str::from_utf8(r.take(id_len)?)
        .map_err(|_| "owner id is not UTF-8")?
        .to_string();
    let owner = match kind {
        1 => OffsetOwner::Consumer(id),
        2 => OffsetOwner::Group(id),
        _ => return Err("unknown owner kind"),
    };
    let key = OffsetKey {
        owner,
        stream: r.u32()?,
        topic: r.u32()?,
        partition: r.u32()?,
    };
    let record = match op {
        OP_PUT => {
            let next_offset = r.u64()?;
            let leader_epoch = r.u32()? as i32;
            let commit_timestamp = r.u64()?;
            let meta_len = r.u32()? as usize;
            let metadata = std::str::from_utf8(r.take(meta_len)?)
                .map_err(|_| "metadata is not UTF-8")?
                .to_string();
            Record::Put(
                key,
                CommittedOffset {
                    next_offset,
                    leader_epoch,
                    metadata,
                    commit_timestamp,
                },
            )
        }
        OP_DELETE => Record::Delete(key),
        _ => return Err("unknown record kind"),
    };
    if r.at != body.len() {
        return Err("record has trailing bytes");
    }
    Ok((8 + len, record))
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let s = self
            .b
            .get(self.at..self.at.checked_add(n).ok_or("length overflows")?)
            .ok_or("record too short")?;
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, &'static str> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(le_u32(self.take(4)?, 0))
    }
    fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(le_u64(self.take(8)?, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(owner: &str, p: u32) -> OffsetKey {
        OffsetKey {
            owner: OffsetOwner::Group(owner.into()),
            stream: 1,
            topic: 2,
            partition: p,
        }
    }

    fn val(o: u64) -> CommittedOffset {
        CommittedOffset {
            next_offset: o,
            leader_epoch: -1,
            metadata: format!("m{o}"),
            commit_timestamp: 5,
        }
    }

    #[test]
    fn commits_survive_reopen_and_deletes_stick() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = ConsumerOffsets::open(dir.path()).unwrap();
            s.commit(key("g", 0), val(1)).unwrap();
            s.commit(key("g", 0), val(2)).unwrap();
            s.commit(key("g", 1), val(7)).unwrap();
            s.commit(
                OffsetKey {
                    owner: OffsetOwner::Consumer("c".into()),
                    ..key("x", 0)
                },
                val(3),
            )
            .unwrap();
            assert!(s.delete(&key("g", 1)).unwrap());
            assert!(!s.delete(&key("g", 1)).unwrap());
        }
        let s = ConsumerOffsets::open(dir.path()).unwrap();
        assert_eq!(s.get(&key("g", 0)), Some(val(2)));
        assert_eq!(s.get(&key("g", 1)), None);
        assert_eq!(
            s.list(|k| matches!(k.owner, OffsetOwner::Consumer(_)))
                .len(),
            1
        );
    }

    #[test]
    fn damaged_tail_is_cut_and_earlier_commits_kept() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = ConsumerOffsets::open(dir.path()).unwrap();
            for i in 0..10 {
                s.commit(key("g", 0), val(i)).unwrap();
            }
        }
        let path = dir.path().join("journal");
        let good = fs::read(&path).unwrap();
        let rec = good.len() / 10;
        // Torn last record.
        fs::write(&path, &good[..good.len() - 3]).unwrap();
        assert_eq!(
            ConsumerOffsets::open(dir.path()).unwrap().get(&key("g", 0)),
            Some(val(8))
        );
        // A flipped bit in record 5 cuts everything from it on.
        let mut bad = good.clone();
        bad[5 * rec + 12] ^= 1;
        fs::write(&path, &bad).unwrap();
        let s = ConsumerOffsets::open(dir.path()).unwrap();
        assert_eq!(s.get(&key("g", 0)), Some(val(4)));
        s.commit(key("g", 0), val(99)).unwrap();
        drop(s);
        assert_eq!(
            ConsumerOffsets::open(dir.path()).unwrap().get(&key("g", 0)),
            Some(val(99))
        );
    }

    #[test]
    fn compaction_keeps_live_entries() {
        let dir = tempfile::tempdir().unwrap();
        let s = ConsumerOffsets::open(dir.path()).unwrap();
        for i in 0..100_010u64 {
            s.commit(key("g", (i % 3) as u32), val(i)).unwrap();
        }
        let len = fs::metadata(dir.path().join("journal")).unwrap().len();
        assert!(
            len < 100_000 * 20,
            "journal was not compacted ({len} bytes)"
        );
        drop(s);
        let s = ConsumerOffsets::open(dir.path()).unwrap();
        assert_eq!(s.get(&key("g", 0)).unwrap().next_offset, 100_008);
        assert_eq!(s.get(&key("g", 2)).unwrap().next_offset, 100_007);
    }

    #[test]
    fn oversized_inputs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = ConsumerOffsets::open(dir.path()).unwrap();
        let mut v = val(1);
        v.metadata = "x".repeat(MAX_OFFSET_METADATA + 1);
        assert!(s.commit(key("g", 0), v).is_err());
        assert!(s.commit(key("", 0), val(1)).is_err());
        assert_eq!(s.get(&key("g", 0)), None);
    }
}
