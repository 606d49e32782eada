//! One segment of a partition: a `.log` file of stored batches and its `.index` beside it, both
//! named by the segment's base offset (20 digits). This module owns their on-disk handling:
//! creating, appending with vectored writes, reading ranges, and recovering on open. Every change
//! to the files goes through the partition's [`Disk`]; their descriptors are the store's
//! [`OpenFiles`] cache's to open and close.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::{Envelope, ENVELOPE_LEN};
use crate::disk::Disk;
use crate::error::{Result, StoreError};
use crate::index::{decode_prefix, IndexEntry, INDEX_ENTRY_LEN};
use crate::open_files::{Access, Handle, OpenFiles, SegmentFile};
use crate::writeback::Writeback;

pub(crate) const LOG_EXT: &str = "log";
pub(crate) const INDEX_EXT: &str = "index";

pub(crate) fn file_name(base_offset: u64, ext: &str) -> String {
    format!("{base_offset:020}.{ext}")
}

/// The base offsets of the segments found in a partition folder, in order.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".log") {
            if stem.len() == 20 {
                if let Ok(base) = stem.parse::<u64>() {
                    bases.push(base);
                }
            }
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// What recovery had to do to a segment; empty when it was whole.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SegmentRepair {
    /// Bytes cut from the end of the `.log`, and why.
    pub truncated: Option<(u64, String)>,
    /// The `.index` was missing, short or corrupt and was rebuilt from the log.
    pub index_rebuilt: bool,
}

/// A segment's index entries: a list that grows while the segment is active, shared once it
/// is sealed, so that a snapshot of the sealed segments (the cleaner's, every round) costs a
/// reference count per segment instead of a copy of every entry.
#[derive(Debug)]
pub(crate) enum Entries {
    Open(Vec<IndexEntry>),
    Sealed(Arc<[IndexEntry]>),
}

impl Default for Entries {
    fn default() -> Self {
        Entries::Open(Vec::new())
    }
}

impl From<Vec<IndexEntry>> for Entries {
    fn from(v: Vec<IndexEntry>) -> Self {
        Entries::Open(v)
    }
}

impl std::ops::Deref for Entries {
    type Target = [IndexEntry];

    fn deref(&self) -> &[IndexEntry] {
        match self {
            Entries::Open(v) => v,
            Entries::Sealed(a) => a,
        }
    }
}

impl Entries {
    pub fn extend_from_slice(&mut self, more: &[IndexEntry]) {
        if let Entries::Sealed(a) = self {
            *self = Entries::Open(a.to_vec());
        }
        if let Entries::Open(v) = self {
            v.extend_from_slice(more);
        }
    }

    /// The segment will take no more entries: share them from now on.
    pub fn seal(&mut self) {
        if let Entries::Open(v) = self {
            *self = Entries::Sealed(Arc::from(std::mem::take(v)));
        }
    }

    /// The entries, shared (copied once if the segment was never sealed).
    pub fn shared(&self) -> Arc<[IndexEntry]> {
        match self {
            Entries::Sealed(a) => Arc::clone(a),
            Entries::Open(v) => Arc::from(v.as_slice()),
        }
    }
}

/// A segment as readers see it: where its batches are and what they hold.
#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: u64,
    pub entries: Entries,
    pub size: u64,
    pub log_path: PathBuf,
    pub index_path: PathBuf,
    /// The log as readers (and, for the active segment, the writer) reach it: opened on demand
    /// through the store's open-files cache.
    pub log: Arc<SegmentFile>,
}

impl Segment {
    pub fn next_offset(&self) -> u64 {
        self.base_offset
            + self
                .entries
                .last()
                .map_or(0, IndexEntry::end_relative_offset)
    }

    pub fn first_append_timestamp(&self) -> Option<u64> {
        self.entries.first().map(|e| e.append_timestamp)
    }

    pub fn last_append_timestamp(&self) -> Option<u64> {
        self.entries.last().map(|e| e.append_timestamp)
    }

    /// Opens an existing segment, checking and repairing it. With `verify_all`, every batch's
    /// checksum is verified (the last segment, whose tail may be torn); otherwise the index is
    /// trusted as far as it agrees with the log and only what lies beyond it is walked.
    ///
    /// The log is open only while this runs: recovery holds one descriptor at a time.
    pub fn recover(
        files: &Arc<OpenFiles>,
        dir: &Path,
        base_offset: u64,
        verify_all: bool,
    ) -> Result<(Segment, SegmentRepair)> {
        let disk = files.disk();
        let log_path = dir.join(file_name(base_offset, LOG_EXT));
        let index_path = dir.join(file_name(base_offset, INDEX_EXT));
        let log = files.retry_out_of_descriptors(None, || {
            disk.open(&log_path, OpenOptions::new().read(true).write(true))
        })?;
        let log_len = log
            .metadata()
            .map_err(|e| StoreError::io(&log_path, e))?
            .len();
        let (index_bytes, index_missing) = match fs::read(&index_path) {
            Ok(b) => (b, false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => (Vec::new(), true),
            Err(e) => return Err(StoreError::io(&index_path, e)),
        };
        let mut trusted = decode_prefix(&index_bytes);
        trusted.retain(|e| e.end_position() <= log_len);

        let keep = if verify_all { 0 } else { trusted.len() };
        let mut entries: Vec<IndexEntry> = trusted[..keep].to_vec();
        let mut pos = entries.last().map_or(0, IndexEntry::end_position);
        let mut cut = None;
        let mut buf = Vec::new();
        while pos < log_len {
            let next_rel = entries.last().map_or(0, IndexEntry::end_relative_offset);
            match read_verified(&log, pos, log_len, base_offset + next_rel, &mut buf) {
                Ok(env) => {
                    let rel = env.base_offset - base_offset;
                    if u64::from(u32::MAX) < rel + u64::from(env.record_count) {
                        cut = Some("relative offset overflows the index".to_string());
                        break;
                    }
                    entries.push(IndexEntry::for_batch(base_offset, pos, &env));
                    pos += env.stored_len();
                }
                Err(reason) => {
                    cut = Some(reason);
                    break;
                }
            }
        }

        let mut repair = SegmentRepair::default();
        if let Some(reason) = cut {
            repair.truncated = Some((log_len - pos, format!("at byte {pos}: {reason}")));
            disk.set_len(&log, &log_path, pos)?;
            disk.sync_data(&log, &log_path)?;
        }
        let index_whole = !index_missing
            && index_bytes.len() == entries.len() * INDEX_ENTRY_LEN
            && trusted.len() == entries.len()
            && trusted == entries;
        if !index_whole {
            repair.index_rebuilt = true;
            let bytes: Vec<u8> = entries.iter().flat_map(|e| e.encode()).collect();
            let f = disk.create(&index_path)?;
            disk.write_all(&f, &index_path, &bytes)?;
            disk.sync_data(&f, &index_path)?;
        }
        drop(log);
        disk.closed(&log_path);
        Ok((
            Segment {
                base_offset,
                entries: entries.into(),
                size: pos,
                log: SegmentFile::new(files, log_path.clone(), Access::Read),
                log_path,
                index_path,
            },
            repair,
        ))
    }
}

/// Reads the batch at `pos`, checking that it is whole, sane, at or after `min_base` (where the
/// previous batch ended: compaction leaves holes between batches, never overlaps) and that its
/// checksum matches. The error says what was wrong.
fn read_verified(
    log: &File,
    pos: u64,
    log_len: u64,
    min_base: u64,
    buf: &mut Vec<u8>,
) -> Result<Envelope, String> {
    let remaining = log_len - pos;
    if remaining < ENVELOPE_LEN as u64 {
        return Err(format!("torn envelope ({remaining} bytes)"));
    }
    let mut header = [0u8; ENVELOPE_LEN];
    log.read_exact_at(&mut header, pos)
        .map_err(|e| format!("read failed: {e}"))?;
    let env = Envelope::decode(&header).map_err(|e| e.to_string())?;
    if env.stored_len() > remaining {
        return Err(format!(
            "torn batch ({} of {} bytes present)",
            remaining,
            env.stored_len()
        ));
    }
    if env.base_offset < min_base {
        return Err(format!(
            "batch claims offset {} below {}, where the previous batch ended",
            env.base_offset, min_base
        ));
    }
    // The length is bounded by the file size checked above, so this allocation is too.
    buf.resize(env.payload_len as usize, 0);
    log.read_exact_at(buf, pos + ENVELOPE_LEN as u64)
        .map_err(|e| format!("read failed: {e}"))?;
    Envelope::verify_payload(&header, buf).map_err(|e| e.to_string())?;
    Ok(env)
}

/// Why [`SegmentWriter::create`] made no segment, and whether the partition's files are as they
/// were before it tried.
#[derive(Debug)]
pub(crate) struct NotCreated {
    pub error: StoreError,
    /// True when nothing is left of the attempt: a file could not be created (no descriptor,
    /// no space), what was created is removed, and the removal is durable. False when a sync
    /// failed or the half-made segment could not be removed: the files are in doubt.
    pub clean: bool,
}

/// The writing end of the active segment. Only the partition's single writer holds it. Its
/// files are opened on demand through the store's open-files cache and may be closed between
/// appends; the write position lives here, not in a descriptor.
#[derive(Debug)]
pub(crate) struct SegmentWriter {
    pub base_offset: u64,
    pub size: u64,
    /// Relative offset the next batch gets.
    pub next_relative: u64,
    pub first_append_timestamp: Option<u64>,
    pub log: Arc<SegmentFile>,
    index: Arc<SegmentFile>,
    /// A failed write could not be cut back: the files are in doubt until recovery.
    pub broken: bool,
    index_len: u64,
    disk: Disk,
    /// The steady writeback of the log (`os` mode).
    pub(crate) writeback: Writeback,
    /// The log's disk blocks are reserved (preallocated, beyond its size) up to here; at most
    /// `size` when nothing is known to be.
    reserved_to: u64,
}

impl SegmentWriter {
    /// Creates the files of a new, empty segment.
    pub fn create(
        files: &Arc<OpenFiles>,
        dir: &Path,
        base_offset: u64,
    ) -> Result<(Segment, SegmentWriter), NotCreated> {
        let disk = files.disk();
        let log_path = dir.join(file_name(base_offset, LOG_EXT));
        let index_path = dir.join(file_name(base_offset, INDEX_EXT));
        let create = |path: &Path| files.retry_out_of_descriptors(None, || disk.create(path));
        // The new files' names must survive power loss before anything written to them is
        // acknowledged.
        let made = create(&log_path)
            .and_then(|_| create(&index_path))
            .map_err(|e| (e, true))
            .and_then(|_| {
                files
                    .retry_out_of_descriptors(None, || disk.sync_dir(dir))
                    // A folder that could not even be opened was not synced: nothing in doubt.
                    .map_err(|e| {
                        let clean = crate::open_files::out_of_descriptors(&e);
                        (e, clean)
                    })
            });
        if let Err((error, mut clean)) = made {
            // Leave no half-made segment for recovery to find: an empty segment above data the
            // old one takes later would hand out its offsets again. The removal is made durable
            // before the partition is trusted to go on.
            let mut removed = false;
            for p in [&log_path, &index_path] {
                match disk.remove_file(p) {
                    Ok(gone) => removed |= gone,
                    Err(e) => {
                        tracing::error!("cannot remove a half-made segment file: {e}");
                        clean = false;
                    }
                }
            }
            if removed && clean {
                if let Err(e) = files.retry_out_of_descriptors(None, || disk.sync_dir(dir)) {
                    tracing::error!("cannot sync the removal of a half-made segment: {e}");
                    clean = false;
                }
            }
            return Err(NotCreated { error, clean });
        }
        let mut segment = Segment {
            base_offset,
            entries: Entries::default(),
            size: 0,
            log: SegmentFile::new(files, log_path.clone(), Access::Read),
            log_path,
            index_path,
        };
        let writer = SegmentWriter::resume(files, &mut segment);
        Ok((segment, writer))
    }

    /// Makes a recovered (or just created) segment the one appended to; readers share its log
    /// file. Both files exist: [`Segment::recover`] rebuilds a missing index. Nothing is opened
    /// until the first append.
    pub fn resume(files: &Arc<OpenFiles>, segment: &mut Segment) -> SegmentWriter {
        let log = SegmentFile::new(files, segment.log_path.clone(), Access::ReadAppend);
        let index = SegmentFile::new(files, segment.index_path.clone(), Access::Append);
        segment.log = Arc::clone(&log);
        SegmentWriter {
            base_offset: segment.base_offset,
            size: segment.size,
            next_relative: segment.next_offset() - segment.base_offset,
            first_append_timestamp: segment.first_append_timestamp(),
            log,
            index,
            broken: false,
            index_len: (segment.entries.len() * INDEX_ENTRY_LEN) as u64,
            disk: files.disk().clone(),
            writeback: Writeback::at(segment.size),
            // Blocks reserved before a restart are found again by the first reservation
            // (reserving reserved blocks is free).
            reserved_to: segment.size,
        }
    }

    /// Before appending `len` bytes: reserves the log's disk blocks ahead of its end, in steps
    /// of at least `step` and at least what the segment holds (within `segment_size`, or the
    /// append's end past it), so the append and the kernel's later writeback find them
    /// allocated. With delayed allocation, the
    /// writeback (the periodic fsync of `os` mode) allocates blocks holding the file's
    /// allocation lock, sometimes for as long as a read of the free-block map queued behind
    /// the device's writes takes; every append needs that lock to reserve the blocks it
    /// dirties. Reserved blocks take neither. 0: off. Never fails the append: a file system
    /// without `fallocate` or a full disk just leaves allocation to the write, which reports
    /// what matters.
    pub fn reserve(&mut self, len: u64, step: u64, segment_size: u64) {
        let end = self.size.saturating_add(len);
        if step == 0 || end <= self.reserved_to {
            return;
        }
        let from = self.reserved_to.max(self.size);
        // Steps grow with the segment (at least `step`, else as much as it holds already), so
        // a busy log makes few calls and an idle one holds little: what is reserved beyond the
        // data is at most the larger of `step` and the data itself.
        let to = from
            .saturating_add(step.max(self.size))
            .min(segment_size.max(end))
            .max(end);
        // Whatever the outcome, the next try is a step further on: a refused call is not
        // repeated per append.
        self.reserved_to = to;
        let Ok(log) = self.log.handle() else {
            return;
        };
        if let Err(e) = self.disk.reserve(&log, self.log.path(), from, to - from) {
            tracing::debug!(log = %self.log.path().display(), "cannot reserve blocks ahead: {e}");
        }
    }

    /// The segment was rolled: gives back the blocks reserved beyond its end (cutting a file to
    /// its own size frees them). Only a warning if that fails: the space is freed with the
    /// segment.
    pub fn release_reserved(&mut self) {
        if self.reserved_to <= self.size {
            return;
        }
        self.reserved_to = self.size;
        let released = self
            .log
            .handle()
            .and_then(|log| self.disk.set_len(&log, self.log.path(), self.size));
        // A cut like any other: the file's next sync (the sealed segment's) must cover it.
        self.log.written();
        if let Err(e) = released {
            tracing::warn!(log = %self.log.path().display(), "cannot release blocks reserved beyond a rolled segment: {e}");
        }
    }

    /// Appends stored batches (`slices`, `len` bytes in all) and their index entries. On failure
    /// both files are cut back to where they were, so a failed write leaves no partial batch.
    /// Both files are opened before anything is written: a failed open (say, no descriptor
    /// left) changes nothing and leaves the partition taking writes.
    ///
    /// Returns the log's descriptor it wrote through, for [`SegmentWriter::sync_log`].
    pub fn append(
        &mut self,
        slices: &mut [IoSlice<'_>],
        len: u64,
        index_bytes: &[u8],
    ) -> Result<Arc<Handle>> {
        let disk = &self.disk;
        let log = self.log.handle()?;
        let index = self.index.handle()?;
        let written = disk.write_all_vectored(&log, self.log.path(), slices);
        self.log.written();
        let result = written.and_then(|()| {
            let written = disk.write_all(&index, self.index.path(), index_bytes);
            self.index.written();
            written
        });
        if let Err(e) = result {
            let cut = disk
                .set_len(&log, self.log.path(), self.size)
                .and_then(|()| disk.set_len(&index, self.index.path(), self.index_len));
            self.log.written();
            self.index.written();
            // Cutting back frees blocks reserved beyond the end too.
            self.reserved_to = self.size;
            if let Err(cut_err) = cut {
                tracing::error!(log = %self.log.path().display(), "cannot cut back a failed write: {cut_err}");
                self.broken = true;
            }
            return Err(e);
        }
        self.size += len;
        self.index_len += index_bytes.len() as u64;
        Ok(log)
    }

    /// `fdatasync` of the log: what the `fsync` durability mode waits for. `held` is the log's
    /// descriptor the last append wrote through, if the caller kept it: it does the sync if the
    /// cache has closed the file since, so no descriptor has to be found for it.
    pub fn sync_log(&self, held: Option<&Handle>) -> Result<()> {
        self.log.sync_with(held)
    }

    /// Has the kernel's writeback of the log (written through `log`) started once `stride`
    /// bytes (0: never) have been appended since it was last started: smoothing for `os` mode,
    /// never a durability promise (see [`crate::writeback`]). Never blocks, never fails.
    pub fn write_back(&mut self, log: &Arc<Handle>, stride: u64) {
        self.writeback.after_append(log, self.size, stride);
    }

    /// The log and the index, for a sync that must not hold up the writer.
    pub fn files(&self) -> [Arc<SegmentFile>; 2] {
        [Arc::clone(&self.log), Arc::clone(&self.index)]
    }
}
