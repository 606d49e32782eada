//! One segment of a partition: a `.log` file of stored batches and its `.index` beside it, both
//! named by the segment's base offset (20 digits). This module owns their on-disk handling:
//! creating, appending with vectored writes, reading ranges, and recovering on open. Every change
//! to the files goes through the partition's [`Disk`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::{Envelope, ENVELOPE_LEN};
use crate::disk::Disk;
use crate::error::{Result, StoreError};
use crate::index::{decode_prefix, IndexEntry, INDEX_ENTRY_LEN};

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

/// A segment as readers see it: where its batches are and what they hold.
#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: u64,
    pub entries: Vec<IndexEntry>,
    pub size: u64,
    pub log_path: PathBuf,
    pub index_path: PathBuf,
    /// Open handle of the active segment's log, shared with readers; sealed segments open theirs
    /// on demand so a partition with many segments holds few descriptors.
    pub log: Option<Arc<File>>,
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
    pub fn recover(
        disk: &Disk,
        dir: &Path,
        base_offset: u64,
        verify_all: bool,
    ) -> Result<(Segment, SegmentRepair)> {
        let log_path = dir.join(file_name(base_offset, LOG_EXT));
        let index_path = dir.join(file_name(base_offset, INDEX_EXT));
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(|e| StoreError::io(&log_path, e))?;
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
                    if u64::from(u32::MAX) < next_rel + u64::from(env.record_count) {
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
        Ok((
            Segment {
                base_offset,
                entries,
                size: pos,
                log_path,
                index_path,
                log: None,
            },
            repair,
        ))
    }
}

/// Reads the batch at `pos`, checking that it is whole, sane, at the expected offset and that its
/// checksum matches. The error says what was wrong.
fn read_verified(
    log: &File,
    pos: u64,
    log_len: u64,
    expected_base: u64,
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
    if env.base_offset != expected_base {
        return Err(format!(
            "batch claims offset {} where {} was expected",
            env.base_offset, expected_base
        ));
    }
    // The length is bounded by the file size checked above, so this allocation is too.
    buf.resize(env.payload_len as usize, 0);
    log.read_exact_at(buf, pos + ENVELOPE_LEN as u64)
        .map_err(|e| format!("read failed: {e}"))?;
    Envelope::verify_payload(&header, buf).map_err(|e| e.to_string())?;
    Ok(env)
}

/// The writing end of the active segment. Only the partition's single writer holds it.
#[derive(Debug)]
pub(crate) struct SegmentWriter {
    pub base_offset: u64,
    pub size: u64,
    /// Relative offset the next batch gets.
    pub next_relative: u64,
    pub first_append_timestamp: Option<u64>,
    pub log: Arc<File>,
    index: Arc<File>,
    /// A failed write could not be cut back: the files are in doubt until recovery.
    pub broken: bool,
    index_len: u64,
    log_path: PathBuf,
    index_path: PathBuf,
    disk: Disk,
}

/// What a sync that must not hold up the writer needs: the files and their paths.
#[derive(Debug, Clone)]
pub(crate) struct SyncHandles {
    pub log: Arc<File>,
    pub log_path: PathBuf,
    pub index: Arc<File>,
    pub index_path: PathBuf,
}

impl SegmentWriter {
    /// Creates the files of a new, empty segment.
    pub fn create(disk: &Disk, dir: &Path, base_offset: u64) -> Result<(Segment, SegmentWriter)> {
        let log_path = dir.join(file_name(base_offset, LOG_EXT));
        let index_path = dir.join(file_name(base_offset, INDEX_EXT));
        // The new files' names must survive power loss before anything written to them is
        // acknowledged.
        let made = disk
            .create(&log_path)
            .and_then(|_| disk.create(&index_path))
            .and_then(|_| disk.sync_dir(dir));
        if let Err(e) = made {
            // Leave no half-made segment for recovery to find.
            for p in [&log_path, &index_path] {
                let _ = disk.remove_file(p);
            }
            return Err(e);
        }
        let mut segment = Segment {
            base_offset,
            entries: Vec::new(),
            size: 0,
            log_path,
            index_path,
            log: None,
        };
        let writer = SegmentWriter::resume(disk, &mut segment)?;
        Ok((segment, writer))
    }

    /// Opens a recovered (or just created) segment for appending and gives it a shared read
    /// handle. Both files exist: [`Segment::recover`] rebuilds a missing index.
    pub fn resume(disk: &Disk, segment: &mut Segment) -> Result<SegmentWriter> {
        let log = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&segment.log_path)
            .map_err(|e| StoreError::io(&segment.log_path, e))?;
        let index = OpenOptions::new()
            .append(true)
            .open(&segment.index_path)
            .map_err(|e| StoreError::io(&segment.index_path, e))?;
        let log = Arc::new(log);
        let index = Arc::new(index);
        segment.log = Some(Arc::clone(&log));
        Ok(SegmentWriter {
            base_offset: segment.base_offset,
            size: segment.size,
            next_relative: segment.next_offset() - segment.base_offset,
            first_append_timestamp: segment.first_append_timestamp(),
            log,
            index,
            broken: false,
            index_len: (segment.entries.len() * INDEX_ENTRY_LEN) as u64,
            log_path: segment.log_path.clone(),
            index_path: segment.index_path.clone(),
            disk: disk.clone(),
        })
    }

    /// Appends stored batches (`slices`, `len` bytes in all) and their index entries. On failure
    /// both files are cut back to where they were, so a failed write leaves no partial batch.
    pub fn append(
        &mut self,
        slices: &mut [IoSlice<'_>],
        len: u64,
        index_bytes: &[u8],
    ) -> Result<()> {
        let disk = &self.disk;
        let result = disk
            .write_all_vectored(&self.log, &self.log_path, slices)
            .and_then(|()| disk.write_all(&self.index, &self.index_path, index_bytes));
        if let Err(e) = result {
            let cut = disk
                .set_len(&self.log, &self.log_path, self.size)
                .and_then(|()| disk.set_len(&self.index, &self.index_path, self.index_len));
            if let Err(cut_err) = cut {
                tracing::error!(log = %self.log_path.display(), "cannot cut back a failed write: {cut_err}");
                self.broken = true;
            }
            return Err(e);
        }
        self.size += len;
        self.index_len += index_bytes.len() as u64;
        Ok(())
    }

    /// `fdatasync` of the log: what the `fsync` durability mode waits for.
    pub fn sync_log(&self) -> Result<()> {
        self.disk.sync_data(&self.log, &self.log_path)
    }

    /// Handles for a sync that must not hold up the writer.
    pub fn sync_handles(&self) -> SyncHandles {
        SyncHandles {
            log: Arc::clone(&self.log),
            log_path: self.log_path.clone(),
            index: Arc::clone(&self.index),
            index_path: self.index_path.clone(),
        }
    }

    /// Syncs both files (on roll and close, and from the background syncer).
    pub fn sync_all(&self) -> Result<()> {
        self.sync_log()?;
        self.disk.sync_data(&self.index, &self.index_path)
    }
}

impl SyncHandles {
    /// Syncs the log, then the index.
    pub fn sync(&self, disk: &Disk) -> Result<()> {
        disk.sync_data(&self.log, &self.log_path)?;
        disk.sync_data(&self.index, &self.index_path)
    }
}
