//! A partition: an ordered run of segments with one writer and many readers.
//!
//! Appends are queued; whoever finds the queue idle becomes the writer. For `os` topics it writes
//! that one batch itself (a page-cache write, cheaper than a hop to another thread and back) and
//! hands anything queued meanwhile to a writer on tokio's blocking pool; `fsync` topics always
//! start the writer on the blocking pool, since they wait for the disk. Every batch waiting when the writer looks is written with one vectored `write` (and,
//! for `fsync` topics, covered by one `fdatasync`): concurrent appends coalesce by themselves, and
//! group commit falls out of the same loop. Readers never wait for the writer: they see segments
//! and index entries through a read lock that the writer takes only to publish what it wrote, and
//! they read with positional reads. A `watch` channel carries the high watermark to long polls.
//! Every change to the partition's files goes through the store's [`Disk`], and their
//! descriptors are opened and closed by the store's open-files cache: a partition holds none of
//! its own between uses.
//!
//! With remote storage, the view also holds the partition's installed remote manifest: offsets
//! below the local segments that it names are read from the object store through a
//! [`RemoteReader`], only where blocking is allowed (the cached read and look-ups answer "not
//! here" for them, so the local hot path never pays for the remote tier). The manifest is
//! written durably in the folder before the view follows it, and a local segment is deleted
//! only once an installed manifest covers it.

use std::fs;
use std::io::IoSlice;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{oneshot, watch};

use crate::batch::{NewBatch, Stamped, StoredBatch};
use crate::config::{Durability, EffectiveSettings};
use crate::disk::Disk;
use crate::error::{Result, StoreError};
use crate::index::{find_by_relative_offset, find_by_timestamp, IndexEntry};
use crate::open_files::{Handle, OpenFiles, SegmentFile};
use crate::remote::{RemoteManifest, RemoteReader, RemoteSegment, MANIFEST_FILE};
use crate::segment::{list_segments, Segment, SegmentRepair, SegmentWriter, INDEX_EXT, LOG_EXT};

/// Where a partition sits: (stream id, topic id, partition id).
#[derive(
    Debug,
    Default,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct PartitionKey {
    pub stream: u32,
    pub topic: u32,
    pub partition: u32,
}

impl std::fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.stream, self.topic, self.partition)
    }
}

/// What an acknowledged append got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    pub base_offset: u64,
    pub last_offset: u64,
    /// Server time of the append, µs since the Unix epoch.
    pub append_timestamp: u64,
}

/// Whole batches read from a partition, with the partition's bounds at the time of the read.
#[derive(Debug, Clone, Default)]
pub struct ReadResult {
    pub batches: Vec<StoredBatch>,
    pub log_start_offset: u64,
    pub high_watermark: u64,
}

/// A snapshot of a partition's size and bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionStats {
    pub log_start_offset: u64,
    pub high_watermark: u64,
    pub size_bytes: u64,
    pub segments: usize,
}

/// Most segments one [`Partition::upload_candidates`] call returns: the rest wait for the next
/// call, so a backlog (the object store down for a day) never makes one call walk or hold
/// thousands of segments.
pub(crate) const MAX_UPLOAD_CANDIDATES: usize = 64;

/// A sealed local segment ready to upload ([`Partition::upload_candidates`]).
#[derive(Debug, Clone)]
pub(crate) struct UploadCandidate {
    /// Its manifest entry, `log_crc32c` still 0 and `upload_epoch` still to be set.
    pub segment: RemoteSegment,
    pub log_path: PathBuf,
    /// Its index entries, shared with the view (not copied): encoded only when uploaded.
    entries: Arc<[IndexEntry]>,
}

impl UploadCandidate {
    /// The index as uploaded: every entry encoded, as in the `.index` file. Built on each
    /// call, so only the segment being uploaded has its index in memory.
    pub fn index(&self) -> Bytes {
        let mut index = Vec::with_capacity(self.entries.len() * crate::index::INDEX_ENTRY_LEN);
        for e in self.entries.iter() {
            index.extend_from_slice(&e.encode());
        }
        Bytes::from(index)
    }
}

/// What recovery did to one partition.
#[derive(Debug, Clone, Default)]
pub struct PartitionRepair {
    pub segments: Vec<(u64, SegmentRepair)>,
}

const OPEN: u8 = 0;
const CLOSED: u8 = 1;
const FAILED: u8 = 2;

#[derive(Debug)]
struct View {
    segments: Vec<Segment>,
    high_watermark: u64,
    /// Where a delete-records request moved the log start inside a segment (0: nowhere).
    records_start: u64,
    /// Bumped twice by each compaction swap: odd while files are being renamed, even
    /// otherwise. A read planned at one generation and finished at another may have read a
    /// renamed file at old positions, so it is discarded and planned again.
    generation: u64,
    /// What the remote tier holds (the installed manifest; empty, epoch 0, when nothing was
    /// ever uploaded). Replaced whole by [`Partition::install_manifest`].
    remote: Arc<RemoteManifest>,
}

impl View {
    /// The first offset on local disk that is readable.
    fn local_start(&self) -> u64 {
        self.segments
            .first()
            .map_or(self.high_watermark, |s| s.base_offset)
            .max(self.records_start)
    }

    /// The first readable offset: in the remote tier when it holds older data than the local
    /// disk, else the local start.
    fn log_start(&self) -> u64 {
        let local = self.local_start();
        match self.remote.start_offset() {
            Some(remote) if remote < local => remote.max(self.records_start),
            _ => local,
        }
    }

    /// The base offset of the first local segment: offsets below it are only remote.
    fn first_local_base(&self) -> u64 {
        self.segments
            .first()
            .map_or(self.high_watermark, |s| s.base_offset)
    }

    /// The uploaded segment a read of `from` (at or above the log start) must come from, if
    /// `from` is below the local segments and the remote tier holds it (or the first batch
    /// after it, still below the local segments).
    fn remote_segment_for(&self, from: u64) -> Option<&RemoteSegment> {
        let local = self.first_local_base();
        if from >= local {
            return None;
        }
        self.remote
            .segment_for(from)
            .filter(|s| s.base_offset < local && s.batches > 0)
    }

    /// The uploaded segments that hold readable offsets no local segment holds, oldest first.
    fn remote_only_segments(&self) -> impl Iterator<Item = &RemoteSegment> {
        let local = self.first_local_base();
        let start = self.log_start();
        self.remote
            .segments
            .iter()
            .filter(move |s| s.next_offset > start && s.base_offset < local && s.batches > 0)
    }
}

/// What a partition has in the remote tier and what waits for it, kept up to date where the
/// manifest is installed and where segments are sealed, deleted or swapped (always under the
/// view's write lock), so that reading them (every `/metrics` scrape) copies nothing.
#[derive(Debug, Default)]
struct TierCounters {
    remote_segments: AtomicU64,
    remote_bytes: AtomicU64,
    pending_segments: AtomicU64,
    pending_bytes: AtomicU64,
}

/// One partition's share of [`crate::remote::RemoteStatus`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TierCounts {
    /// Segments and `.log` bytes its installed manifest names.
    pub remote_segments: u64,
    pub remote_bytes: u64,
    /// Sealed local segments holding batches, not uploaded yet, and their bytes.
    pub pending_segments: u64,
    pub pending_bytes: u64,
}

/// True for a sealed segment that waits to be uploaded (as `upload_candidates` picks them:
/// from the manifest's end on, holding at least one batch).
fn waits_for_upload(view: &View, s: &Segment) -> bool {
    s.base_offset >= view.remote.next_offset().unwrap_or(0) && !s.entries.is_empty()
}

/// The file in a partition folder that keeps a log start set inside a segment.
const RECORDS_START_FILE: &str = "records-start";

#[cfg(test)]
type CandidatesHook = Box<dyn Fn(&Partition, usize) + Send + Sync>;

struct Pending {
    batch: NewBatch,
    done: oneshot::Sender<Result<AppendResult>>,
}

#[derive(Default)]
struct Queue {
    pending: Vec<Pending>,
    writing: bool,
}

/// One partition of a topic.
pub struct Partition {
    key: PartitionKey,
    dir: PathBuf,
    disk: Disk,
    files: Arc<OpenFiles>,
    settings: RwLock<EffectiveSettings>,
    view: RwLock<View>,
    queue: Mutex<Queue>,
    writer: Mutex<Option<SegmentWriter>>,
    /// Files of segments sealed since the last background sync.
    unsynced_sealed: Mutex<Vec<Arc<SegmentFile>>>,
    high_watermark: watch::Sender<u64>,
    dirty: AtomicBool,
    /// Held across [`Partition::sync`], so that a sync returns only once what was written
    /// before it is synced, even when a concurrent caller's sync is the one doing it.
    syncing: Mutex<()>,
    state: AtomicU8,
    /// Reads served ([`Partition::reads`]).
    reads: std::sync::atomic::AtomicU64,
    /// Held by the cleaner while it reads, writes and swaps (released for its rate-limit
    /// pauses) and by whatever deletes segment files (retention, which only tries it,
    /// delete-records, purge, closing a partition that is deleted), so the two never work on
    /// the same segments. Taken before `writer`, never after.
    maintenance: Mutex<()>,
    /// Callers waiting for `maintenance` (retention excepted: it never waits). A cleaning
    /// that sees one gives up at its next batch, so that DeleteRecords, purge and deleting a
    /// topic wait for one batch of a cleaning, not all of it.
    maintenance_waiters: std::sync::atomic::AtomicUsize,
    /// Held while a compaction swap renames files; a reader that keeps losing the race with
    /// swaps holds it for its whole read.
    swapping: Mutex<()>,
    /// How far the cleaner has cleaned (`cleaner-checkpoint`).
    checkpoint: Mutex<crate::compaction::Checkpoint>,
    /// A compaction swap failed halfway: the view no longer matches the files, so reads fail
    /// too until a restart recovers the swap from its manifest.
    swap_failed: AtomicBool,
    /// Reads the uploaded segments (attached when the store has a remote tier). Touched only
    /// by reads of remote data, never on the local read path.
    remote_reader: RwLock<Option<Arc<RemoteReader>>>,
    /// Held while a manifest is checked, written and installed, so that two installs (the
    /// tiering thread's and a purge's) never interleave and the epoch check holds.
    manifest_install: Mutex<()>,
    /// Read by [`Partition::tier_counts`].
    tier: TierCounters,
    /// Test hook run by `upload_candidates` once the view lock is released.
    #[cfg(test)]
    after_candidates_taken: Mutex<Option<CandidatesHook>>,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition")
            .field("key", &self.key)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl Partition {
    /// Creates an empty partition in `dir`.
    pub(crate) fn create(
        files: &Arc<OpenFiles>,
        key: PartitionKey,
        dir: &Path,
        settings: EffectiveSettings,
    ) -> Result<Arc<Partition>> {
        Partition::create_after(files, key, dir, settings, None)
    }

    /// Creates a partition in `dir` with no local segment but the first one, empty: at 0, or
    /// (`remote`: its manifest, kept in the folder) where the uploaded segments end, as after
    /// a restore from the remote tier.
    fn create_after(
        files: &Arc<OpenFiles>,
        key: PartitionKey,
        dir: &Path,
        settings: EffectiveSettings,
        remote: Option<RemoteManifest>,
    ) -> Result<Arc<Partition>> {
        let disk = files.disk();
        disk.create_dir_all(dir)?;
        remove_stale_files(disk, dir, remote.is_some())?;
        // Make the new folders (partition, and the topic and stream above it, up to the
        // `streams` folder) durable too. The partition folder itself is synced by
        // `SegmentWriter::create`.
        if let Some(parent) = dir.parent() {
            disk.sync_dir_and_ancestors(parent, 4)?;
        }
        let remote = remote.unwrap_or_else(|| empty_manifest(key));
        let base = remote.next_offset().unwrap_or(0);
        let (segment, writer) = SegmentWriter::create(files, dir, base).map_err(|n| n.error)?;
        let partition = Partition::assemble(files, key, dir, settings, vec![segment], writer);
        {
            let mut view = partition.view.write();
            view.remote = Arc::new(remote);
            partition.recount_tier(&view);
        }
        Ok(partition)
    }

    /// Opens a partition, verifying the tail of its last segment and repairing what it must.
    pub(crate) fn open(
        files: &Arc<OpenFiles>,
        key: PartitionKey,
        dir: &Path,
        settings: EffectiveSettings,
    ) -> Result<(Arc<Partition>, PartitionRepair)> {
        let disk = files.disk();
        disk.create_dir_all(dir)?;
        // A compaction swap cut short is finished (or its leftovers removed) before the
        // segments are listed.
        crate::compaction::swap::recover(disk, dir)?;
        let checkpoint = crate::compaction::Checkpoint::load(dir)?;
        let bases = list_segments(dir)?;
        remove_orphan_indexes(disk, dir, &bases);
        let remote = load_manifest(dir, key)?;
        if bases.is_empty() {
            // Everything uploaded and nothing local (a restored data directory): the local log
            // goes on where the remote one ends. An empty manifest is kept too: its epoch
            // keeps new uploads' keys apart from older objects.
            return Ok((
                Partition::create_after(files, key, dir, settings, remote)?,
                PartitionRepair::default(),
            ));
        }
        let mut repair = PartitionRepair::default();
        let mut segments = Vec::with_capacity(bases.len());
        for (i, &base) in bases.iter().enumerate() {
            let (segment, seg_repair) = Segment::recover(files, dir, base, i + 1 == bases.len())?;
            if seg_repair != SegmentRepair::default() {
                if let Some((bytes, why)) = &seg_repair.truncated {
                    tracing::warn!(partition = %key, segment = base, "cut {bytes} bytes from the log {why}");
                }
                if seg_repair.index_rebuilt {
                    tracing::warn!(partition = %key, segment = base, "rebuilt the index from the log");
                }
                repair.segments.push((base, seg_repair));
            }
            segments.push(segment);
        }
        // All but the last are sealed: their entries are shared from now on.
        let n = segments.len().saturating_sub(1);
        for s in &mut segments[..n] {
            s.entries.seal();
        }
        let last = segments
            .last_mut()
            .ok_or_else(|| StoreError::io(dir, std::io::ErrorKind::NotFound.into()))?;
        let writer = SegmentWriter::resume(files, last);
        let partition = Partition::assemble(files, key, dir, settings, segments, writer);
        *partition.checkpoint.lock() = checkpoint;
        {
            let mut view = partition.view.write();
            if let Some(remote) = remote {
                view.remote = Arc::new(remote);
            }
            partition.recount_tier(&view);
        }
        if let Some(doc) = crate::durable_file::read_durable(&dir.join(RECORDS_START_FILE))? {
            let start = doc
                .get(..8)
                .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
            let mut view = partition.view.write();
            view.records_start = start.min(view.high_watermark);
        }
        Ok((partition, repair))
    }

    fn assemble(
        files: &Arc<OpenFiles>,
        key: PartitionKey,
        dir: &Path,
        settings: EffectiveSettings,
        segments: Vec<Segment>,
        writer: SegmentWriter,
    ) -> Arc<Partition> {
        let hw = writer.base_offset + writer.next_relative;
        Arc::new(Partition {
            key,
            dir: dir.to_path_buf(),
            disk: files.disk().clone(),
            files: Arc::clone(files),
            settings: RwLock::new(settings),
            view: RwLock::new(View {
                segments,
                high_watermark: hw,
                records_start: 0,
                generation: 0,
                remote: Arc::new(empty_manifest(key)),
            }),
            queue: Mutex::new(Queue::default()),
            writer: Mutex::new(Some(writer)),
            unsynced_sealed: Mutex::new(Vec::new()),
            high_watermark: watch::Sender::new(hw),
            dirty: AtomicBool::new(false),
            syncing: Mutex::new(()),
            state: AtomicU8::new(OPEN),
            reads: std::sync::atomic::AtomicU64::new(0),
            maintenance: Mutex::new(()),
            maintenance_waiters: std::sync::atomic::AtomicUsize::new(0),
            swapping: Mutex::new(()),
            checkpoint: Mutex::new(crate::compaction::Checkpoint::default()),
            swap_failed: AtomicBool::new(false),
            #[cfg(test)]
            after_candidates_taken: Mutex::new(None),
            remote_reader: RwLock::new(None),
            manifest_install: Mutex::new(()),
            tier: TierCounters::default(),
        })
    }

    pub fn key(&self) -> PartitionKey {
        self.key
    }

    pub(crate) fn set_settings(&self, settings: EffectiveSettings) {
        *self.settings.write() = settings;
    }

    fn check_open(&self) -> Result<()> {
        match self.state.load(Ordering::Acquire) {
            OPEN => Ok(()),
            FAILED => Err(StoreError::PartitionFailed(self.key.to_string())),
            _ => Err(StoreError::PartitionClosed(self.key.to_string())),
        }
    }

    /// Appends one batch: assigns its offsets, stamps it, writes it and returns once it is as
    /// durable as the topic's durability mode promises.
    pub async fn append(self: &Arc<Self>, batch: NewBatch) -> Result<AppendResult> {
        self.submit(batch).await
    }

    /// Queues one batch for appending now (so batches submitted one after another are stored
    /// in that order) and returns the future that resolves when [`Partition::append`] would.
    pub fn submit(
        self: &Arc<Self>,
        batch: NewBatch,
    ) -> impl std::future::Future<Output = Result<AppendResult>> + Send + 'static {
        let queued = self.try_submit(batch);
        async move { queued?.await }
    }

    /// [`Partition::submit`], telling a refusal before anything is written (the outer error:
    /// the batch is too large or the partition is not open) from a failure after the batch
    /// was queued (the future's error), when its bytes may already be in the log.
    pub fn try_submit(
        self: &Arc<Self>,
        batch: NewBatch,
    ) -> Result<impl std::future::Future<Output = Result<AppendResult>> + Send + 'static> {
        let queued = self.enqueue(batch)?;
        let key = self.key;
        Ok(async move {
            queued
                .await
                .map_err(|_| StoreError::PartitionClosed(key.to_string()))?
        })
    }

    fn enqueue(
        self: &Arc<Self>,
        batch: NewBatch,
    ) -> Result<oneshot::Receiver<Result<AppendResult>>> {
        self.check_open()?;
        let limit = self.settings.read().max_batch_bytes;
        if batch.payload_len() > limit as usize {
            return Err(StoreError::BatchTooLarge {
                size: batch.payload_len(),
                limit,
            });
        }
        let (done, result) = oneshot::channel();
        let start_writer = {
            let mut queue = self.queue.lock();
            queue.pending.push(Pending { batch, done });
            !std::mem::replace(&mut queue.writing, true)
        };
        if start_writer {
            // `os` mode: the group is a page-cache write (microseconds, measured: fewer thread
            // switches per append than a hop to the blocking pool and back), done in the
            // calling task; `fsync` groups wait for the disk, so they go to the blocking pool.
            if self.settings.read().durability == Durability::Os {
                self.write_inline();
            } else {
                let me = Arc::clone(self);
                tokio::task::spawn_blocking(move || me.drain());
            }
        }
        Ok(result)
    }

    /// Writes the queue's group (the batch just queued) in the calling task, then hands
    /// anything queued meanwhile to the blocking pool, so the caller writes one group at most
    /// and later submitters still share one group commit.
    fn write_inline(self: &Arc<Self>) {
        let group = std::mem::take(&mut self.queue.lock().pending);
        self.write_group(group);
        let more = {
            let mut queue = self.queue.lock();
            queue.writing = !queue.pending.is_empty();
            queue.writing
        };
        if more {
            let me = Arc::clone(self);
            tokio::task::spawn_blocking(move || me.drain());
        }
    }

    /// The writer loop: runs until the queue is empty.
    fn drain(&self) {
        loop {
            let group = {
                let mut queue = self.queue.lock();
                if queue.pending.is_empty() {
                    queue.writing = false;
                    return;
                }
                std::mem::take(&mut queue.pending)
            };
            self.write_group(group);
        }
    }

    fn write_group(&self, group: Vec<Pending>) {
        let mut guard = self.writer.lock();
        // Timed from holding the writer: the wait for it is the previous group's time.
        let started = self.files.metrics().clock();
        let writer = match (self.check_open(), guard.as_mut()) {
            (Ok(()), Some(w)) => w,
            (Err(e), _) => return fail_all(group.into_iter().map(|p| p.done), &e),
            (Ok(()), None) => {
                let e = StoreError::PartitionClosed(self.key.to_string());
                return fail_all(group.into_iter().map(|p| p.done), &e);
            }
        };
        let settings = self.settings.read().clone();
        let now = now_us();

        // Batches go into a chunk for the active segment; when the segment must roll, the chunk
        // is written first. Only what is written (and synced, for `fsync`) is published and acked.
        let mut published: Vec<Chunk> = Vec::new();
        let mut acked: Vec<(Done, AppendResult)> = Vec::new();
        let mut chunk = Chunk::new(writer.base_offset);
        let mut waiting: Vec<(Done, AppendResult)> = Vec::new();
        let mut failure: Option<(StoreError, Vec<Done>)> = None;
        // The log descriptor the last chunk went through: the group's `fdatasync` uses it, so
        // that it never needs a descriptor of its own (the call holds it, then lets it go).
        let mut held: Option<Arc<Handle>> = None;
        let (mut group_messages, mut group_bytes) = (0u64, 0u64);
        let mut group = group.into_iter();
        for Pending { batch, done } in group.by_ref() {
            let size = writer.size + chunk.len;
            let next_relative = writer.next_relative + chunk.records;
            let first_ts = writer.first_append_timestamp.or(chunk.first_timestamp);
            let overflows = next_relative + u64::from(batch.record_count()) > u64::from(u32::MAX);
            let too_big = size + batch.stored_len() > settings.segment_size;
            let too_old =
                first_ts.is_some_and(|t| now.saturating_sub(t) >= settings.segment_max_age_us);
            if size > 0 && (overflows || too_big || too_old) {
                let written = if chunk.parts.is_empty() {
                    Ok(())
                } else {
                    self.write_chunk(writer, &chunk, &settings)
                        .map(|h| held = Some(h))
                };
                let rolled = written
                    .map_err(|e| (e, false))
                    .and_then(|()| self.roll(writer, settings.durability, &chunk, held.as_deref()));
                if let Err((e, kept)) = rolled {
                    if kept {
                        // The new segment could not be made, but the chunk written to the old
                        // one is as durable as promised and published: only what needed the
                        // new segment fails.
                        acked.append(&mut waiting);
                    }
                    let mut failed: Vec<Done> = waiting.drain(..).map(|(d, _)| d).collect();
                    failed.push(done);
                    failure = Some((e, failed));
                    break;
                }
                // roll() published the chunk with the segment it sealed.
                chunk = Chunk::new(writer.base_offset);
                acked.append(&mut waiting);
            }
            let base_offset = writer.base_offset + writer.next_relative + chunk.records;
            let position = writer.size + chunk.len;
            let stamped = batch.stamp(base_offset, now, settings.log_append_time);
            let env = *stamped.envelope();
            chunk
                .entries
                .push(IndexEntry::for_batch(writer.base_offset, position, &env));
            chunk.len += env.stored_len();
            chunk.records += u64::from(env.record_count);
            group_messages += u64::from(env.record_count);
            group_bytes += env.stored_len();
            chunk.first_timestamp.get_or_insert(now);
            chunk.parts.push(stamped);
            let result = AppendResult {
                base_offset,
                last_offset: env.last_offset(),
                append_timestamp: now,
            };
            waiting.push((done, result));
        }
        if let Some((_, failed)) = failure.as_mut() {
            failed.extend(group.map(|p| p.done));
        } else if !chunk.parts.is_empty() {
            match self.write_chunk(writer, &chunk, &settings) {
                Ok(h) => {
                    held = Some(h);
                    published.push(chunk);
                    acked.append(&mut waiting);
                }
                Err(e) => failure = Some((e, waiting.drain(..).map(|(d, _)| d).collect())),
            }
        }
        if settings.durability == Durability::Fsync && !acked.is_empty() {
            if let Err(e) = writer.sync_log(held.as_deref()) {
                // We cannot know what reached the disk: nothing of this group is acknowledged.
                self.state.store(FAILED, Ordering::Release);
                let mut failed: Vec<Done> = acked.drain(..).map(|(d, _)| d).collect();
                published.clear();
                if let Some((_, more)) = failure.take() {
                    failed.extend(more);
                }
                failure = Some((e, failed));
            }
        } else if !acked.is_empty() {
            self.dirty.store(true, Ordering::Release);
        }

        // Publish to readers, then acknowledge.
        if !published.is_empty() {
            let mut view = self.view.write();
            for chunk in &published {
                self.publish_locked(&mut view, chunk);
            }
        }
        drop(guard);
        if failure.is_none() && !acked.is_empty() {
            // A group stored whole (a failed one's time says nothing about group commit).
            self.files
                .metrics()
                .append_group(started, group_messages, group_bytes);
        }
        for (done, result) in acked {
            let _ = done.send(Ok(result));
        }
        if let Some((e, failed)) = failure {
            // Every waiting producer gets the error; the broker logs it, rate-limited.
            tracing::debug!(partition = %self.key, "append failed: {e}");
            fail_all(failed, &e);
        }
    }

    /// Makes a written chunk visible to readers and moves the high watermark past it. Empty
    /// chunks change nothing (the watermark never moves back).
    fn publish_locked(&self, view: &mut View, chunk: &Chunk) {
        let Some(last) = chunk.entries.last() else {
            return;
        };
        if let Some(seg) = view
            .segments
            .iter_mut()
            .rev()
            .find(|s| s.base_offset == chunk.base)
        {
            seg.entries.extend_from_slice(&chunk.entries);
            seg.size += chunk.len;
        }
        let hw = chunk.base + last.end_relative_offset();
        if hw > view.high_watermark {
            view.high_watermark = hw;
            self.high_watermark.send_replace(hw);
        }
    }

    /// Writes one chunk to the active segment; returns the log descriptor it wrote through. An
    /// error that leaves the files in doubt (the cut-back after a failed write failed too) stops
    /// the partition taking writes.
    fn write_chunk(
        &self,
        writer: &mut SegmentWriter,
        chunk: &Chunk,
        settings: &EffectiveSettings,
    ) -> Result<Arc<Handle>> {
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(chunk.parts.len() * 2);
        for stamped in &chunk.parts {
            slices.push(IoSlice::new(stamped.head()));
            slices.push(IoSlice::new(stamped.body()));
        }
        let index: Vec<u8> = chunk.entries.iter().flat_map(|e| e.encode()).collect();
        writer.reserve(chunk.len, settings.preallocate_bytes, settings.segment_size);
        let log = match writer.append(&mut slices, chunk.len, &index) {
            Ok(log) => log,
            Err(e) => {
                if writer.broken {
                    self.state.store(FAILED, Ordering::Release);
                }
                return Err(e);
            }
        };
        writer.next_relative += chunk.records;
        if writer.first_append_timestamp.is_none() {
            writer.first_append_timestamp = chunk.first_timestamp;
        }
        // `os` mode: keep the disk writing as data arrives, so the periodic fdatasync has little
        // left (`fsync` mode's group fdatasync writes it all anyway).
        // The group's snapshot of the settings: no second look under the settings lock per chunk.
        if settings.durability == Durability::Os {
            writer.write_back(&log, settings.writeback_bytes);
        }
        Ok(log)
    }

    /// Seals the active segment and starts a new one at the next offset; `written` (the chunk
    /// just written to the old segment, through `held`) is published with the seal.
    ///
    /// On failure, the flag says whether `written` was kept: the new segment's files could not
    /// be created (no descriptor, no space) and nothing of them is left, so the old segment
    /// stays active, `written` is published as durable as its mode promises, and the partition
    /// goes on (the next append tries the roll again). Any other failure (the old log's
    /// `fdatasync`, a sync or cleanup of the new files) leaves the files in doubt and stops the
    /// partition taking writes; a restart recovers it.
    fn roll(
        &self,
        writer: &mut SegmentWriter,
        durability: Durability,
        written: &Chunk,
        held: Option<&Handle>,
    ) -> Result<(), (StoreError, bool)> {
        let fail = |e: StoreError| {
            self.state.store(FAILED, Ordering::Release);
            (e, false)
        };
        if durability == Durability::Fsync {
            // What was written to the old segment is acknowledged with this group.
            writer.sync_log(held).map_err(fail)?;
        }
        let next = writer.base_offset + writer.next_relative;
        let (segment, new_writer) = match SegmentWriter::create(&self.files, &self.dir, next) {
            Ok(made) => made,
            Err(not) if not.clean => {
                if !written.parts.is_empty() {
                    let mut view = self.view.write();
                    self.publish_locked(&mut view, written);
                    drop(view);
                    // `os` writes just made: the background sync covers them.
                    self.dirty.store(true, Ordering::Release);
                }
                return Err((not.error, true));
            }
            Err(not) => return Err(fail(not.error)),
        };
        let mut old = std::mem::replace(writer, new_writer);
        old.release_reserved();
        {
            // The sealed segment's last batches become visible in the same step that seals it,
            // so retention never sees it sealed without them.
            let mut view = self.view.write();
            self.publish_locked(&mut view, written);
            if let Some(sealed) = view.segments.last_mut() {
                sealed.entries.seal();
            }
            if let Some(sealed) = view.segments.last() {
                if waits_for_upload(&view, sealed) {
                    self.tier.pending_segments.fetch_add(1, Ordering::Relaxed);
                    self.tier
                        .pending_bytes
                        .fetch_add(sealed.size, Ordering::Relaxed);
                }
            }
            view.segments.push(segment);
        }
        self.unsynced_sealed.lock().extend(old.files());
        self.dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// Reads whole batches starting with the one that contains `from` (or the first one after
    /// it), up to `max_bytes` of stored bytes but always at least one batch when there is one.
    /// An offset below the log start reads from the log start: callers that must refuse such
    /// reads compare with `log_start_offset` in the result.
    pub fn read(&self, from: u64, max_bytes: u64) -> Result<ReadResult> {
        self.read_bounded(from, ReadBounds::at_least_one(max_bytes))
    }

    /// Reads as [`Partition::read`] does, within `bounds`: only batches that begin before
    /// `bounds.until`, and with [`Fill::Fitting`] only batches that fit whole in
    /// `bounds.max_bytes` (none when the first one is larger). For a reader that knows how much
    /// it can still use: it reads no batch it would have to drop.
    pub fn read_bounded(&self, from: u64, bounds: ReadBounds) -> Result<ReadResult> {
        self.read_from(from, bounds, false)
            .map(Option::unwrap_or_default)
    }

    /// Reads as [`Partition::read`] does, but only what the page cache already holds:
    /// `Ok(None)` when some byte would have to come from the disk (or the kernel cannot tell),
    /// so that the caller can do the read where blocking is allowed. Callers on an async
    /// runtime's worker use this first: the common read of recent data costs no thread hop, and
    /// a slow disk never stalls the worker.
    pub fn read_cached(&self, from: u64, max_bytes: u64) -> Result<Option<ReadResult>> {
        self.read_bounded_cached(from, ReadBounds::at_least_one(max_bytes))
    }

    /// [`Partition::read_bounded`] from the page cache alone, as [`Partition::read_cached`].
    pub fn read_bounded_cached(&self, from: u64, bounds: ReadBounds) -> Result<Option<ReadResult>> {
        self.read_from(from, bounds, true)
    }

    /// How many reads ([`Partition::read`], [`Partition::read_cached`]) this partition has
    /// served since it was opened: what a caller's work costs in store reads, countable.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    fn read_from(
        &self,
        from: u64,
        bounds: ReadBounds,
        cached_only: bool,
    ) -> Result<Option<ReadResult>> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.check_readable()?;
        for _ in 0..READ_ATTEMPTS {
            let (result, generation) = self.read_planned(from, bounds, cached_only);
            // `Ok(None)` (cached reads only) sends the caller to a blocking read anyway.
            if matches!(result, Ok(None)) || self.view.read().generation == generation {
                return self.check_readable().and(result);
            }
            // A compaction swap ran during the read: what it read may mix old and new files.
        }
        // Lost the race every time: hold the swaps off for one last read, which then cannot
        // lose it. A cached read on an async worker does not wait for a swap: it goes to the
        // blocking read instead.
        let _no_swap = if cached_only {
            match self.swapping.try_lock() {
                Some(g) => g,
                None => return Ok(None),
            }
        } else {
            self.swapping.lock()
        };
        let result = self.read_planned(from, bounds, cached_only).0;
        self.check_readable().and(result)
    }

    fn check_readable(&self) -> Result<()> {
        if self.swap_failed.load(Ordering::Acquire) {
            return Err(StoreError::PartitionFailed(format!(
                "{}: a compaction swap failed; reads wait for a restart",
                self.key
            )));
        }
        Ok(())
    }

    /// One read planned against the view as it is now, with the generation it was planned at.
    /// While a swap is renaming files (odd generation) this waits for it first, except for a
    /// cached read, which answers `Ok(None)` (go read where blocking is allowed).
    fn read_planned(
        &self,
        from: u64,
        bounds: ReadBounds,
        cached_only: bool,
    ) -> (Result<Option<ReadResult>>, u64) {
        let max_bytes = bounds.max_bytes;
        let mut from = from;
        let mut remote_attempts = 0;
        loop {
            let (ranges, log_start, hw, generation) = loop {
                let view = self.view.read();
                if view.generation % 2 == 1 {
                    let generation = view.generation;
                    drop(view);
                    if cached_only {
                        return (Ok(None), generation);
                    }
                    drop(self.swapping.lock());
                    continue;
                }
                let log_start = view.log_start();
                from = from.max(log_start);
                if let Some(segment) = view.remote_segment_for(from) {
                    // Only in the remote tier: never read on an async worker.
                    let generation = view.generation;
                    if cached_only {
                        return (Ok(None), generation);
                    }
                    let (segment, hw, epoch) =
                        (segment.clone(), view.high_watermark, view.remote.epoch);
                    drop(view);
                    match self.read_remote(&segment, from, max_bytes) {
                        Ok(batches) if batches.is_empty() => {
                            // Nothing at or after `from` in that segment: the next one has it.
                            from = segment.next_offset.max(from + 1);
                            continue;
                        }
                        Ok(mut batches) => {
                            // The remote reader returns at least one batch and knows no
                            // `until`: keep what the bounds allow (maybe nothing).
                            let mut taken = 0u64;
                            let keep = batches
                                .iter()
                                .enumerate()
                                .take_while(|(i, b)| {
                                    taken += b.as_bytes().len() as u64;
                                    b.base_offset() < bounds.until
                                        && (taken <= max_bytes
                                            || (*i == 0 && bounds.fill == Fill::AtLeastOne))
                                })
                                .count();
                            batches.truncate(keep);
                            let result = ReadResult {
                                batches,
                                log_start_offset: log_start,
                                high_watermark: hw,
                            };
                            return (Ok(Some(result)), generation);
                        }
                        // The segment went (total retention) while we read: plan again against
                        // the new manifest, a few times at most.
                        Err(StoreError::Remote(crate::remote::RemoteError::NotFound(_)))
                            if remote_attempts < READ_ATTEMPTS
                                && self.view.read().remote.epoch != epoch =>
                        {
                            remote_attempts += 1;
                            continue;
                        }
                        Err(e) => return (Err(e), generation),
                    }
                }
                break (
                    plan_read(&view, from, bounds),
                    log_start,
                    view.high_watermark,
                    view.generation,
                );
            };
            match self.read_ranges(ranges, log_start, hw, cached_only) {
                // The local segment planned went (uploaded, then deleted by the local
                // retention) while we read: its batches are remote now, read them there.
                Err(ReadFailure::Moved(_)) if remote_attempts < READ_ATTEMPTS => {
                    remote_attempts += 1;
                }
                Err(ReadFailure::Moved(e) | ReadFailure::Store(e)) => return (Err(e), generation),
                Ok(result) => return (Ok(result), generation),
            }
        }
    }

    /// Batches of one uploaded segment from `from` (blocking on the object store).
    fn read_remote(
        &self,
        segment: &RemoteSegment,
        from: u64,
        max_bytes: u64,
    ) -> Result<Vec<StoredBatch>> {
        Ok(self.reader()?.read(segment, from, max_bytes)?)
    }

    /// The attached remote reader; an error when uploaded data must be read and the store has
    /// no remote tier (configured off after data was uploaded).
    fn reader(&self) -> Result<Arc<RemoteReader>> {
        self.remote_reader.read().clone().ok_or_else(|| {
            StoreError::Remote(crate::remote::RemoteError::Config(format!(
                "partition {} has data in the remote tier, but the server has no remote storage configured",
                self.key
            )))
        })
    }

    fn read_ranges(
        &self,
        ranges: Vec<ReadRange>,
        log_start: u64,
        hw: u64,
        cached_only: bool,
    ) -> Result<Option<ReadResult>, ReadFailure> {
        let mut batches = Vec::new();
        for range in ranges {
            let file = if cached_only {
                // Opening may block; the caller reads again where blocking is allowed.
                match range.segment.log.if_open() {
                    Some(f) => f,
                    None => return Ok(None),
                }
            } else {
                match range.segment.log.handle() {
                    Ok(f) => f,
                    Err(e @ StoreError::Io { .. }) if is_not_found(&e) && batches.is_empty() => {
                        if self
                            .view
                            .read()
                            .remote_segment_for(range.first_offset)
                            .is_some()
                        {
                            return Err(ReadFailure::Moved(e));
                        }
                        // Retention deleted the segment after we planned: what remains starts
                        // later.
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
            };
            let len = (range.end - range.start) as usize;
            // Not zeroed: the reads below fill it, and it holds only what they filled.
            let mut buf = Vec::with_capacity(len);
            if cached_only {
                let whole = read_at_cached(&file, &mut buf, len, range.start)
                    .map_err(|e| StoreError::io(&range.segment.log_path, e))?;
                if !whole {
                    return Ok(None);
                }
            } else {
                read_exact_at(&file, &mut buf, len, range.start)
                    .map_err(|e| StoreError::io(&range.segment.log_path, e))?;
            }
            let buf = Bytes::from(buf);
            let mut at = 0usize;
            for len in range.lengths {
                let bytes = buf.slice(at..at + len as usize);
                batches.push(StoredBatch::from_bytes(bytes).map_err(StoreError::from)?);
                at += len as usize;
            }
        }
        Ok(Some(ReadResult {
            batches,
            log_start_offset: log_start,
            high_watermark: hw,
        }))
    }

    /// The first offset of the first batch whose max timestamp is at or after `timestamp_us`,
    /// or `None` when no batch is that recent. Uploaded segments are searched first; one whose
    /// manifest entry says it is too old is skipped unread, so only a look-up whose answer is
    /// remote fetches (one index). May block on the object store when
    /// [`Partition::has_remote_data`]: async callers run it on the blocking pool then.
    pub fn offset_for_timestamp(&self, timestamp_us: u64) -> Result<Option<u64>> {
        let remote: Vec<RemoteSegment> = {
            let view = self.view.read();
            let remote: Vec<RemoteSegment> = view
                .remote_only_segments()
                .filter(|s| s.max_timestamp >= timestamp_us)
                .cloned()
                .collect();
            if remote.is_empty() {
                return Ok(local_offset_for_timestamp(&view, timestamp_us));
            }
            remote
        };
        let reader = self.reader()?;
        for segment in &remote {
            if let Some(offset) = reader.offset_for_timestamp(segment, timestamp_us)? {
                let view = self.view.read();
                return Ok((offset < view.high_watermark).then_some(offset.max(view.log_start())));
            }
        }
        Ok(local_offset_for_timestamp(&self.view.read(), timestamp_us))
    }

    /// The first offset of the last batch that starts below `offset` (and below the high
    /// watermark), from the in-memory index, or below the local segments from the uploaded
    /// ones' indexes: how a reader that wants the records just before an offset walks the log
    /// back batch by batch, over a compacted log's holes. It may start below the log start when
    /// the log start is inside it; `None` when no batch is that old. May block on the object
    /// store when [`Partition::has_remote_data`].
    pub fn batch_before(&self, offset: u64) -> Result<Option<u64>> {
        let (remote, end) = {
            let view = self.view.read();
            let end = offset.min(view.high_watermark);
            let local = local_batch_before(&view, end);
            if local.is_some() {
                return Ok(local);
            }
            let remote: Vec<RemoteSegment> = view
                .remote_only_segments()
                .filter(|s| s.base_offset < end)
                .cloned()
                .collect();
            (remote, end)
        };
        if remote.is_empty() {
            return Ok(None);
        }
        let reader = self.reader()?;
        for segment in remote.iter().rev() {
            if let Some(base) = reader.batch_before(segment, end)? {
                return Ok(Some(base));
            }
        }
        Ok(None)
    }

    /// [`Partition::offset_for_timestamp`] where blocking is not allowed: `None` when the
    /// answer needs an uploaded segment's index (ask on the blocking pool then).
    pub fn offset_for_timestamp_cached(&self, timestamp_us: u64) -> Option<Option<u64>> {
        let view = self.view.read();
        if view
            .remote_only_segments()
            .any(|s| s.max_timestamp >= timestamp_us)
        {
            return None;
        }
        Some(local_offset_for_timestamp(&view, timestamp_us))
    }

    /// [`Partition::batch_before`] where blocking is not allowed: `None` when the answer needs
    /// an uploaded segment's index.
    pub fn batch_before_cached(&self, offset: u64) -> Option<Option<u64>> {
        let view = self.view.read();
        let end = offset.min(view.high_watermark);
        match local_batch_before(&view, end) {
            Some(base) => Some(Some(base)),
            None if view.remote_only_segments().any(|s| s.base_offset < end) => None,
            None => Some(None),
        }
    }

    /// The offset of the batch with the greatest max timestamp, and that timestamp (the first
    /// such batch on a tie). Uploaded segments count through their manifest entries, so this
    /// never reads the remote tier.
    pub fn max_timestamp(&self) -> Option<(u64, u64)> {
        let view = self.view.read();
        let mut best: Option<(u64, u64)> = None;
        for seg in view.remote_only_segments() {
            if best.is_none_or(|(_, ts)| seg.max_timestamp > ts) {
                best = Some((seg.max_timestamp_offset, seg.max_timestamp));
            }
        }
        for seg in &view.segments {
            for e in seg.entries.iter() {
                if best.is_none_or(|(_, ts)| e.max_timestamp > ts) {
                    best = Some((
                        seg.base_offset + u64::from(e.relative_offset),
                        e.max_timestamp,
                    ));
                }
            }
        }
        best
    }

    pub fn log_start_offset(&self) -> u64 {
        self.view.read().log_start()
    }

    /// The first offset on local disk (Kafka's earliest-local, ListOffsets `-4`): the log
    /// start, unless older data is only in the remote tier.
    pub fn local_log_start_offset(&self) -> u64 {
        self.view.read().local_start()
    }

    /// The last offset uploaded to the remote tier (Kafka's latest-tiered, ListOffsets `-5`);
    /// `None` when nothing is.
    pub fn last_remote_offset(&self) -> Option<u64> {
        self.view
            .read()
            .remote
            .next_offset()
            .and_then(|n| n.checked_sub(1))
    }

    /// What this partition has in the remote tier, as its installed manifest says now (no
    /// segments and epoch 0: nothing was ever uploaded; its `topic_created_us` is then 0 too,
    /// for the uploader to fill in).
    pub fn remote_manifest(&self) -> RemoteManifest {
        RemoteManifest::clone(&self.view.read().remote)
    }

    /// True when some readable offsets are only in the remote tier: reads and look-ups there
    /// may block on the object store, so async callers run them on the blocking pool.
    pub fn has_remote_data(&self) -> bool {
        let view = self.view.read();
        view.log_start() < view.first_local_base()
    }

    /// Lets reads below the local log start go to the remote tier through `reader`.
    pub(crate) fn attach_remote(&self, reader: Arc<RemoteReader>) {
        *self.remote_reader.write() = Some(reader);
    }

    /// The sealed local segments not yet named by the manifest (from the manifest's end on)
    /// that end at or below `limit` (the broker's last stable offset: a segment holding an
    /// undecided transaction is never uploaded), oldest first, at most
    /// [`MAX_UPLOAD_CANDIDATES`] of them, each with what its manifest entry will say (all but
    /// `log_crc32c`, which the uploader computes while it reads the file, and `upload_epoch`).
    /// Segments holding no batch are skipped: there is nothing to upload.
    ///
    /// Under the view lock only the segments' shared entries are taken; their statistics and
    /// index checksums are computed after it is released, so an append (which publishes under
    /// the write lock) never waits for them.
    pub(crate) fn upload_candidates(&self, limit: u64) -> Vec<UploadCandidate> {
        if self.swap_failed.load(Ordering::Acquire) {
            // The view may no longer match the files: nothing is uploaded until a restart.
            return Vec::new();
        }
        let taken: Vec<(u64, u64, PathBuf, Arc<[IndexEntry]>)> = {
            let view = self.view.read();
            let uploaded_to = view.remote.next_offset().unwrap_or(0);
            let n = view.segments.len().saturating_sub(1);
            let sealed = &view.segments[..n];
            let first = sealed.partition_point(|s| s.base_offset < uploaded_to);
            sealed[first..]
                .iter()
                .filter(|s| !s.entries.is_empty())
                .take_while(|s| s.next_offset() <= limit)
                .take(MAX_UPLOAD_CANDIDATES)
                .map(|s| {
                    (
                        s.base_offset,
                        s.size,
                        s.log_path.clone(),
                        s.entries.shared(),
                    )
                })
                .collect()
        };
        #[cfg(test)]
        self.candidates_taken(&taken);
        taken
            .into_iter()
            .map(|(base_offset, size, log_path, entries)| UploadCandidate {
                segment: remote_entry(base_offset, size, &entries),
                log_path,
                entries,
            })
            .collect()
    }

    /// Test hook: runs between the view lock's release and the candidates' statistics.
    #[cfg(test)]
    fn candidates_taken(&self, taken: &[(u64, u64, PathBuf, Arc<[IndexEntry]>)]) {
        if let Some(hook) = self.after_candidates_taken.lock().as_ref() {
            hook(self, taken.len());
        }
    }

    /// Makes `manifest` this partition's: written durably to `remote-manifest` in the folder,
    /// then the view follows (reads, log start). Refused unless it is this partition's and its
    /// epoch is above the current one's (a purge may have installed a newer one meanwhile).
    // The tiering thread installs through `update_manifest` (epoch check and remote put under
    // the lock); this plain install is for tests.
    #[cfg(test)]
    pub(crate) fn install_manifest(&self, manifest: RemoteManifest) -> Result<()> {
        let _install = self.manifest_install.lock();
        self.install_manifest_locked(manifest)
    }

    /// Calls `change` with the installed manifest under the manifest-install lock, then
    /// installs what it returns (if anything): the tiering thread checks the epoch and stores
    /// the manifest remotely with no other install (a purge) in between, so the remote copy
    /// never names data a newer local manifest dropped. A purge waits for the call.
    pub(crate) fn update_manifest(
        &self,
        change: impl FnOnce(&RemoteManifest) -> Result<Option<RemoteManifest>>,
    ) -> Result<()> {
        let _install = self.manifest_install.lock();
        let current = Arc::clone(&self.view.read().remote);
        match change(&current)? {
            Some(next) => self.install_manifest_locked(next),
            None => Ok(()),
        }
    }

    fn install_manifest_locked(&self, manifest: RemoteManifest) -> Result<()> {
        let (current, current_segments) = {
            let view = self.view.read();
            (view.remote.epoch, view.remote.segments.len())
        };
        if (manifest.stream, manifest.topic, manifest.partition)
            != (self.key.stream, self.key.topic, self.key.partition)
        {
            return Err(StoreError::InvalidSetting(format!(
                "manifest of partition {}/{}/{} offered to {}",
                manifest.stream, manifest.topic, manifest.partition, self.key
            )));
        }
        if manifest.epoch <= current {
            return Err(StoreError::InvalidSetting(format!(
                "{}: manifest epoch {} is not above the installed {current}",
                self.key, manifest.epoch
            )));
        }
        if manifest.segments.len() > current_segments {
            // Only growth is refused: a manifest over a lowered bound may still shrink.
            manifest.check_size(self.manifest_max_segments())?;
        }
        self.disk
            .write_durable(&self.dir.join(MANIFEST_FILE), &manifest.encode()?)?;
        let mut view = self.view.write();
        view.remote = Arc::new(manifest);
        self.recount_tier(&view);
        Ok(())
    }

    /// The bound on this partition's manifest ([`RemoteSettings::manifest_max_segments`]).
    ///
    /// [`RemoteSettings::manifest_max_segments`]: crate::remote::RemoteSettings::manifest_max_segments
    fn manifest_max_segments(&self) -> usize {
        self.settings.read().manifest_max_segments
    }

    /// How many more segments the manifest may name; [`RemoteError::ManifestFull`] when none,
    /// so that the uploader stops (and alerts) rather than uploads what it cannot commit.
    ///
    /// [`RemoteError::ManifestFull`]: crate::remote::RemoteError::ManifestFull
    pub(crate) fn manifest_room(&self) -> Result<usize> {
        let max = self.manifest_max_segments();
        let view = self.view.read();
        let named = view.remote.segments.len();
        if named >= max {
            return Err(crate::remote::RemoteError::ManifestFull {
                partition: self.key.to_string(),
                segments: named + 1,
                max,
            }
            .into());
        }
        Ok(max - named)
    }

    /// What this partition has in the remote tier and what waits for it: four counters, no
    /// copy of the manifest or of the segment list.
    pub(crate) fn tier_counts(&self) -> TierCounts {
        let t = &self.tier;
        TierCounts {
            remote_segments: t.remote_segments.load(Ordering::Relaxed),
            remote_bytes: t.remote_bytes.load(Ordering::Relaxed),
            pending_segments: t.pending_segments.load(Ordering::Relaxed),
            pending_bytes: t.pending_bytes.load(Ordering::Relaxed),
        }
    }

    /// Sets the tier counters from `view` (the caller holds its write lock): after a manifest
    /// install, a purge, a compaction swap, an open. Sealing and deleting a segment adjust
    /// them instead.
    fn recount_tier(&self, view: &View) {
        let n = view.segments.len().saturating_sub(1);
        let (mut segments, mut bytes) = (0, 0);
        for s in view.segments[..n]
            .iter()
            .filter(|s| waits_for_upload(view, s))
        {
            segments += 1;
            bytes += s.size;
        }
        let t = &self.tier;
        t.pending_segments.store(segments, Ordering::Relaxed);
        t.pending_bytes.store(bytes, Ordering::Relaxed);
        t.remote_segments
            .store(view.remote.segments.len() as u64, Ordering::Relaxed);
        t.remote_bytes
            .store(view.remote.log_bytes(), Ordering::Relaxed);
    }

    /// Deletes the oldest local sealed segment if its base offset is `base` and the manifest
    /// covers all of it (uploaded, and the manifest naming it durable), unless maintenance
    /// holds the partition (then `None`, as retention). Returns the bytes freed.
    pub(crate) fn delete_uploaded_segment(&self, base: u64) -> Result<Option<u64>> {
        let Some(_maintenance) = self.maintenance.try_lock() else {
            return Ok(None);
        };
        let uploaded = {
            let view = self.view.read();
            match (view.segments.first(), view.remote.next_offset()) {
                (Some(s), Some(uploaded_to)) => {
                    s.base_offset == base
                        && uploaded_to >= s.next_offset()
                        && view.remote.segment_for(s.base_offset).is_some_and(|r| {
                            r.base_offset <= s.base_offset && s.next_offset() <= r.next_offset
                        })
                }
                _ => false,
            }
        };
        if !uploaded {
            return Ok(None);
        }
        self.delete_oldest_segment_locked(base)
    }

    /// The offset the next batch will get; everything below it is readable.
    pub fn high_watermark(&self) -> u64 {
        self.view.read().high_watermark
    }

    pub fn stats(&self) -> PartitionStats {
        let view = self.view.read();
        PartitionStats {
            log_start_offset: view.log_start(),
            high_watermark: view.high_watermark,
            size_bytes: view.segments.iter().map(|s| s.size).sum(),
            segments: view.segments.len(),
        }
    }

    /// Waits until the high watermark passes `offset` or `deadline` comes. True when data is
    /// there. This is what a long poll awaits: appends wake it, nothing polls.
    pub async fn wait_for_data(&self, offset: u64, deadline: tokio::time::Instant) -> bool {
        let mut rx = self.high_watermark.subscribe();
        let arrived = tokio::time::timeout_at(deadline, rx.wait_for(|&hw| hw > offset)).await;
        matches!(arrived, Ok(Ok(_)))
    }

    /// Syncs whatever `os`-mode writes have not been synced yet. Called by the background syncer
    /// and on close; the writer is held only long enough to borrow its handles.
    pub fn sync(&self) -> Result<()> {
        let _syncing = self.syncing.lock();
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let sealed = std::mem::take(&mut *self.unsynced_sealed.lock());
        let active = self.writer.lock().as_ref().map(SegmentWriter::files);
        let result = sealed
            .iter()
            .chain(active.iter().flatten())
            .try_for_each(|f| f.sync());
        if result.is_err() {
            // Try again next time rather than forget what is unsynced.
            self.unsynced_sealed.lock().extend(sealed);
            self.dirty.store(true, Ordering::Release);
        }
        result
    }

    /// The sealed segments, oldest first: (base offset, size, last append timestamp).
    pub(crate) fn sealed_segments(&self) -> Vec<(u64, u64, u64)> {
        #[cfg(test)]
        tests::SEALED_LISTS.with(|c| c.set(c.get() + 1));
        let view = self.view.read();
        let n = view.segments.len().saturating_sub(1);
        view.segments[..n]
            .iter()
            .map(|s| {
                (
                    s.base_offset,
                    s.size,
                    s.last_append_timestamp().unwrap_or(0),
                )
            })
            .collect()
    }

    /// Deletes the oldest sealed segment if its base offset is `base`, unless a cleaning holds
    /// the partition (retention runs on the store's background thread, which must not wait for
    /// a cleaning: it tries again next round). Returns its size; `None`: nothing deleted.
    pub(crate) fn try_delete_oldest_segment(&self, base: u64) -> Result<Option<u64>> {
        let Some(_maintenance) = self.maintenance.try_lock() else {
            return Ok(None);
        };
        self.delete_oldest_segment_locked(base)
    }

    /// [`Partition::try_delete_oldest_segment`] for a caller holding the maintenance lock.
    fn delete_oldest_segment_locked(&self, base: u64) -> Result<Option<u64>> {
        // A failed partition's view may no longer match its files (a swap that failed half
        // way): deleting by the view could remove a segment that now holds newer data.
        if !self.is_open() {
            return Ok(None);
        }
        let removed = {
            let mut view = self.view.write();
            if view.segments.len() < 2 || view.segments[0].base_offset != base {
                return Ok(None);
            }
            if waits_for_upload(&view, &view.segments[0]) {
                let size = view.segments[0].size;
                sub_counter(&self.tier.pending_segments, 1);
                sub_counter(&self.tier.pending_bytes, size);
            }
            view.segments.remove(0)
        };
        for path in [&removed.log_path, &removed.index_path] {
            self.disk.remove_file(path)?;
        }
        Ok(Some(removed.size))
    }

    /// Moves the log start to `offset` (Kafka's DeleteRecords): records below it are no longer
    /// readable, sealed segments wholly below it are deleted, and the new start survives a
    /// restart. Returns the log start afterwards (it never moves back).
    pub fn delete_records_before(&self, offset: u64) -> Result<u64> {
        // Maintenance first, then the writer: appends never wait for a cleaning.
        let _maintenance = self.maintenance();
        let _writer = self.writer.lock();
        self.check_open()?;
        let start = {
            let view = self.view.read();
            let target = offset.min(view.high_watermark);
            if target <= view.log_start() {
                return Ok(view.log_start());
            }
            target
        };
        self.disk
            .write_durable(&self.dir.join(RECORDS_START_FILE), &start.to_le_bytes())?;
        self.view.write().records_start = start;
        // Sealed segments that end at or before the new start hold nothing readable.
        loop {
            let sealed = self.sealed_segments();
            let view_end = {
                let view = self.view.read();
                view.segments.get(1).map(|s| s.base_offset)
            };
            match (sealed.first(), view_end) {
                (Some(&(base, _, _)), Some(next_base)) if next_base <= start => {
                    if self.delete_oldest_segment_locked(base)?.is_none() {
                        break;
                    }
                }
                _ => break,
            }
        }
        Ok(self.view.read().log_start())
    }

    /// Deletes up to `count` of the oldest sealed segments. Returns how many went.
    pub fn delete_segments(&self, count: u32) -> Result<u32> {
        let _maintenance = self.maintenance();
        let mut deleted = 0;
        while deleted < count {
            let Some(&(base, _, _)) = self.sealed_segments().first() else {
                break;
            };
            if self.delete_oldest_segment_locked(base)?.is_none() {
                break;
            }
            deleted += 1;
        }
        Ok(deleted)
    }

    /// Deletes sealed segments whose newest batch was appended at or before `now_us - expiry_us`.
    /// Skipped (0) while a cleaning holds the partition: the next round does it.
    pub(crate) fn expire(&self, now_us: u64, expiry_us: u64) -> Result<u64> {
        let Some(_maintenance) = self.maintenance.try_lock() else {
            return Ok(0);
        };
        let mut freed = 0;
        for (base, _, last_ts) in self.sealed_segments() {
            if last_ts.saturating_add(expiry_us) > now_us {
                break;
            }
            match self.delete_oldest_segment_locked(base)? {
                Some(size) => {
                    freed += size;
                    self.files.metrics().retention_deleted(size);
                }
                None => break,
            }
        }
        Ok(freed)
    }

    /// Deletes every batch and starts again at offset 0, as Iggy's purge does.
    /// The caller holds the maintenance lock ([`Partition::maintenance`]), taken before the
    /// writer's so that appends never wait for a cleaning.
    pub(crate) fn purge_locked(&self) -> Result<()> {
        let mut guard = self.writer.lock();
        self.check_open()?;
        {
            // The remote tier forgets the partition first (a new, empty manifest: the tiering
            // thread's sweep deletes the old objects), so that a crash half-way never brings
            // purged data back from it; the next epoch keeps the new uploads' keys apart.
            let _install = self.manifest_install.lock();
            let current = Arc::clone(&self.view.read().remote);
            if current.epoch > 0 || !current.segments.is_empty() {
                self.install_manifest_locked(RemoteManifest {
                    epoch: current.epoch + 1,
                    log_start: 0,
                    segments: Vec::new(),
                    ..RemoteManifest::clone(&current)
                })?;
            }
        }
        self.unsynced_sealed.lock().clear();
        let old = {
            let mut view = self.view.write();
            let old = std::mem::take(&mut view.segments);
            self.recount_tier(&view);
            old
        };
        let fail = |e: StoreError| {
            // Half-purged: refuse writes until a restart recovers what is on disk.
            self.state.store(FAILED, Ordering::Release);
            e
        };
        for seg in &old {
            for path in [&seg.log_path, &seg.index_path] {
                self.disk.remove_file(path).map_err(fail)?;
            }
        }
        // Gone before the new segment is created, so that the folder sync making the new
        // segment durable makes this removal durable too.
        self.disk
            .remove_file(&self.dir.join(RECORDS_START_FILE))
            .map_err(fail)?;
        // Offsets start again at 0: what was cleaned is gone.
        crate::compaction::Checkpoint::remove(&self.disk, &self.dir).map_err(fail)?;
        *self.checkpoint.lock() = crate::compaction::Checkpoint::default();
        let (segment, writer) =
            SegmentWriter::create(&self.files, &self.dir, 0).map_err(|n| fail(n.error))?;
        *guard = Some(writer);
        let mut view = self.view.write();
        view.segments = vec![segment];
        view.high_watermark = 0;
        view.records_start = 0;
        self.recount_tier(&view);
        drop(view);
        self.high_watermark.send_replace(0);
        Ok(())
    }

    /// Stops accepting appends, syncs and releases the files. Appends still queued fail.
    pub(crate) fn close(&self) -> Result<()> {
        let mut guard = self.writer.lock();
        let _ = self
            .state
            .compare_exchange(OPEN, CLOSED, Ordering::AcqRel, Ordering::Acquire);
        let result = self.sync_locked(guard.as_ref());
        *guard = None;
        let pending = std::mem::take(&mut self.queue.lock().pending);
        let e = StoreError::PartitionClosed(self.key.to_string());
        fail_all(pending.into_iter().map(|p| p.done), &e);
        result
    }

    /// Syncs the files written since their last sync (and only those: a partition nobody wrote
    /// to costs no system call to close).
    fn sync_locked(&self, writer: Option<&SegmentWriter>) -> Result<()> {
        for f in std::mem::take(&mut *self.unsynced_sealed.lock()) {
            f.sync()?;
        }
        for f in writer.map(SegmentWriter::files).iter().flatten() {
            f.sync()?;
        }
        self.dirty.store(false, Ordering::Release);
        Ok(())
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    // ----- what the cleaner needs -----

    pub(crate) fn disk(&self) -> &Disk {
        &self.disk
    }

    /// Stops the partition taking writes until a restart recovers its files.
    pub(crate) fn fail(&self) {
        self.state.store(FAILED, Ordering::Release);
    }

    pub(crate) fn is_open(&self) -> bool {
        self.check_open().is_ok()
    }

    pub(crate) fn maintenance(&self) -> parking_lot::MutexGuard<'_, ()> {
        if let Some(guard) = self.maintenance.try_lock() {
            return guard;
        }
        self.maintenance_waiters.fetch_add(1, Ordering::AcqRel);
        let guard = self.maintenance.lock();
        self.maintenance_waiters.fetch_sub(1, Ordering::AcqRel);
        guard
    }

    /// Someone waits for the maintenance lock a cleaning holds (DeleteRecords, purge, a
    /// deletion): the cleaning gives up at its next batch.
    pub fn maintenance_wanted(&self) -> bool {
        self.maintenance_waiters.load(Ordering::Acquire) > 0
    }

    pub(crate) fn try_maintenance(&self) -> Option<parking_lot::MutexGuard<'_, ()>> {
        self.maintenance.try_lock()
    }

    /// Whether the view still holds `group` as sealed segments, as the cleaner read them (the
    /// same base offsets, sizes and newest index entries): retention, delete-records or a
    /// purge may have run while the cleaner had released the maintenance lock.
    pub(crate) fn holds_sealed(&self, group: &[&SealedSegment]) -> bool {
        if !self.is_open() {
            return false;
        }
        let view = self.view.read();
        let n = view.segments.len().saturating_sub(1);
        let sealed = &view.segments[..n];
        group.iter().all(|g| {
            sealed.iter().any(|s| {
                s.base_offset == g.base_offset
                    && s.size == g.size
                    && s.entries.last() == g.entries.last()
            })
        })
    }

    pub(crate) fn checkpoint(&self) -> &Mutex<crate::compaction::Checkpoint> {
        &self.checkpoint
    }

    /// The sealed segments as they are now, oldest first, and the base offset of the active
    /// segment.
    pub(crate) fn sealed_snapshot(&self) -> (Vec<SealedSegment>, u64) {
        let view = self.view.read();
        let n = view.segments.len().saturating_sub(1);
        let sealed = view.segments[..n]
            .iter()
            .map(|s| SealedSegment {
                base_offset: s.base_offset,
                entries: s.entries.shared(),
                size: s.size,
                log_path: s.log_path.clone(),
            })
            .collect();
        let active = view
            .segments
            .last()
            .map_or(view.high_watermark, |s| s.base_offset);
        (sealed, active)
    }

    /// Replaces the sealed segments `replaced` (consecutive, oldest first) with `new` (a base
    /// offset, its index entries and size; `None`: with nothing) in the view, after `rename`
    /// has put the files in place. Readers planned before see the generation change and read
    /// again. A failed `rename` leaves the files in doubt: the partition refuses writes until
    /// a restart recovers the swap from its manifest.
    pub(crate) fn swap_segments(
        &self,
        replaced: &[u64],
        new: Option<(u64, Vec<IndexEntry>, u64)>,
        rename: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        let _swapping = self.swapping.lock();
        self.view.write().generation += 1;
        let renamed = rename();
        let mut view = self.view.write();
        view.generation += 1;
        if let Err(e) = renamed {
            self.state.store(FAILED, Ordering::Release);
            self.swap_failed.store(true, Ordering::Release);
            return Err(e);
        }
        // The maintenance lock kept the replaced segments where the cleaner found them.
        let first = view
            .segments
            .iter()
            .position(|s| Some(&s.base_offset) == replaced.first())
            .filter(|&i| {
                let found = view.segments[i..].iter().map(|s| s.base_offset);
                replaced.len() < view.segments.len() - i
                    && found.take(replaced.len()).eq(replaced.iter().copied())
            });
        let Some(first) = first else {
            self.state.store(FAILED, Ordering::Release);
            return Err(StoreError::PartitionFailed(format!(
                "{}: compaction swapped segments {replaced:?} the view does not hold",
                self.key
            )));
        };
        let count = replaced.len();
        let new_segment = new.map(|(base_offset, entries, size)| {
            let log_path = self
                .dir
                .join(crate::segment::file_name(base_offset, LOG_EXT));
            Segment {
                base_offset,
                entries: crate::segment::Entries::Sealed(entries.into()),
                size,
                log: SegmentFile::new(
                    &self.files,
                    log_path.clone(),
                    crate::open_files::Access::Read,
                ),
                log_path,
                index_path: self
                    .dir
                    .join(crate::segment::file_name(base_offset, INDEX_EXT)),
            }
        });
        view.segments.splice(first..first + count, new_segment);
        self.recount_tier(&view);
        Ok(())
    }
}

/// Takes `n` from a counter, never below 0.
fn sub_counter(counter: &AtomicU64, n: u64) {
    let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_sub(n))
    });
}

/// [`Partition::batch_before`] over the local segments.
fn local_batch_before(view: &View, end: u64) -> Option<u64> {
    let below = view.segments.partition_point(|s| s.base_offset < end);
    view.segments[..below].iter().rev().find_map(|seg| {
        let rel = end - seg.base_offset;
        let i = seg
            .entries
            .partition_point(|e| u64::from(e.relative_offset) < rel);
        let e = seg.entries.get(i.checked_sub(1)?)?;
        Some(seg.base_offset + u64::from(e.relative_offset))
    })
}

/// [`Partition::offset_for_timestamp`] over the local segments.
fn local_offset_for_timestamp(view: &View, timestamp_us: u64) -> Option<u64> {
    let hw = view.high_watermark;
    for seg in &view.segments {
        if let Some(i) = find_by_timestamp(&seg.entries, timestamp_us) {
            let offset = seg.base_offset + u64::from(seg.entries[i].relative_offset);
            return (offset < hw).then_some(offset.max(view.log_start()));
        }
    }
    None
}

/// A local segment's manifest entry, `log_crc32c` and `upload_epoch` left for the uploader.
/// The index checksum is computed entry by entry: the encoded index is not built here.
fn remote_entry(base_offset: u64, size: u64, entries: &[IndexEntry]) -> RemoteSegment {
    let at = |e: &IndexEntry| base_offset + u64::from(e.relative_offset);
    let mut max: Option<&IndexEntry> = None;
    let mut index_crc32c = 0;
    for e in entries {
        if max.is_none_or(|m| e.max_timestamp > m.max_timestamp) {
            max = Some(e);
        }
        index_crc32c = crc32c::crc32c_append(index_crc32c, &e.encode());
    }
    RemoteSegment {
        base_offset,
        upload_epoch: 0,
        next_offset: base_offset + entries.last().map_or(0, IndexEntry::end_relative_offset),
        log_size: size,
        log_crc32c: 0,
        index_size: (entries.len() * crate::index::INDEX_ENTRY_LEN) as u64,
        index_crc32c,
        batches: entries.len() as u64,
        first_append_timestamp: entries.first().map_or(0, |e| e.append_timestamp),
        last_append_timestamp: entries.last().map_or(0, |e| e.append_timestamp),
        max_timestamp: max.map_or(0, |e| e.max_timestamp),
        max_timestamp_offset: max.map_or(base_offset, at),
        aborted: Vec::new(),
    }
}

/// A sealed segment as the cleaner sees it: its index (shared with the view), taken under the
/// view lock.
#[derive(Debug, Clone)]
pub(crate) struct SealedSegment {
    pub base_offset: u64,
    pub entries: Arc<[IndexEntry]>,
    pub size: u64,
    pub log_path: PathBuf,
}

impl SealedSegment {
    /// The offset just past its last batch (its base offset when it has none).
    pub fn end_offset(&self) -> u64 {
        self.base_offset
            + self
                .entries
                .last()
                .map_or(0, IndexEntry::end_relative_offset)
    }
}

/// Reads planned and discarded because a compaction swap ran meanwhile, before a reader holds
/// the swaps off.
const READ_ATTEMPTS: usize = 4;

/// Batches bound for one segment within a write group.
#[derive(Default)]
struct Chunk {
    base: u64,
    parts: Vec<Stamped>,
    entries: Vec<IndexEntry>,
    len: u64,
    records: u64,
    first_timestamp: Option<u64>,
}

type Done = oneshot::Sender<Result<AppendResult>>;

impl Chunk {
    fn new(base: u64) -> Chunk {
        Chunk {
            base,
            ..Chunk::default()
        }
    }
}

/// Why a planned local read failed.
enum ReadFailure {
    Store(StoreError),
    /// Its segment was deleted locally after the plan, but the remote tier holds it: plan
    /// again (the error is what to answer if that keeps happening).
    Moved(StoreError),
}

impl From<StoreError> for ReadFailure {
    fn from(e: StoreError) -> Self {
        ReadFailure::Store(e)
    }
}

fn is_not_found(e: &StoreError) -> bool {
    matches!(e, StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

/// A contiguous byte range of one segment to read, and the lengths of the batches in it.
struct ReadRange {
    segment: SegmentRef,
    /// The first offset of its first batch.
    first_offset: u64,
    start: u64,
    end: u64,
    lengths: Vec<u32>,
}

/// What a reader needs of a segment once the view's lock is released.
struct SegmentRef {
    log_path: PathBuf,
    log: Arc<SegmentFile>,
}

/// How many batches a read returns when the first one is larger than its `max_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// That batch: a reader must always be able to make progress.
    AtLeastOne,
    /// None.
    Fitting,
}

/// What a read ([`Partition::read_bounded`]) may return from its start on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadBounds {
    /// Stored bytes (envelopes included) of the batches returned; see [`Fill`] for a first
    /// batch larger than this.
    pub max_bytes: u64,
    /// Only batches that begin before this offset are returned (`u64::MAX`: no bound).
    pub until: u64,
    pub fill: Fill,
}

impl ReadBounds {
    /// [`Partition::read`]'s bounds: `max_bytes`, but at least one batch.
    pub fn at_least_one(max_bytes: u64) -> ReadBounds {
        ReadBounds {
            max_bytes,
            until: u64::MAX,
            fill: Fill::AtLeastOne,
        }
    }
}

fn plan_read(view: &View, from: u64, bounds: ReadBounds) -> Vec<ReadRange> {
    let ReadBounds {
        max_bytes,
        until,
        fill,
    } = bounds;
    let end = view.high_watermark.min(until);
    let mut ranges = Vec::new();
    if from >= end {
        return ranges;
    }
    let first = view
        .segments
        .partition_point(|s| s.base_offset <= from)
        .saturating_sub(1);
    let mut taken = 0u64;
    // Whether a batch may be taken past `max_bytes`: only a first one, and only for
    // `Fill::AtLeastOne`.
    let mut any = fill == Fill::Fitting;
    'segments: for seg in &view.segments[first..] {
        let start = if seg.base_offset <= from {
            let rel = from - seg.base_offset;
            match find_by_relative_offset(&seg.entries, rel) {
                Some(i) => i,
                None => seg
                    .entries
                    .partition_point(|e| u64::from(e.relative_offset) < rel),
            }
        } else {
            0
        };
        let mut range: Option<ReadRange> = None;
        for e in &seg.entries[start..] {
            if seg.base_offset + u64::from(e.relative_offset) >= end {
                break;
            }
            if any && taken + u64::from(e.length) > max_bytes {
                if let Some(r) = range.take() {
                    ranges.push(r);
                }
                break 'segments;
            }
            let r = range.get_or_insert_with(|| ReadRange {
                segment: SegmentRef {
                    log_path: seg.log_path.clone(),
                    log: Arc::clone(&seg.log),
                },
                first_offset: seg.base_offset + u64::from(e.relative_offset),
                start: e.position,
                end: e.position,
                lengths: Vec::new(),
            });
            r.end = e.end_position();
            r.lengths.push(e.length);
            taken += u64::from(e.length);
            any = true;
        }
        if let Some(r) = range {
            ranges.push(r);
        }
    }
    ranges
}

/// Set once the kernel or file system refuses `RWF_NOWAIT`: every cached read then says "not
/// cached" at once and callers read on their blocking threads.
static NOWAIT_UNSUPPORTED: AtomicBool = AtomicBool::new(false);

/// Appends the `len` bytes at `offset` to `buf` (empty, with room for them) if the page cache
/// holds all of them (`preadv2` with `RWF_NOWAIT`). False when some of them would have to come
/// from the disk; `buf` then holds a prefix of them at most, never bytes the file did not give.
fn read_at_cached(
    file: &std::fs::File,
    buf: &mut Vec<u8>,
    len: usize,
    offset: u64,
) -> std::io::Result<bool> {
    use rustix::io::Errno;
    if NOWAIT_UNSUPPORTED.load(Ordering::Relaxed) {
        return Ok(false);
    }
    buf.reserve_exact(len.saturating_sub(buf.len()));
    while buf.len() < len {
        let done = buf.len();
        match preadv2_nowait(file, buf, len - done, offset + done as u64) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(Errno::AGAIN) => return Ok(false),
            Err(Errno::INTR) => {}
            Err(Errno::OPNOTSUPP | Errno::NOSYS | Errno::INVAL) => {
                NOWAIT_UNSUPPORTED.store(true, Ordering::Relaxed);
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

/// One `preadv2(RWF_NOWAIT)` of at most `want` bytes at `offset` into `buf`'s spare capacity
/// (at least `want`), not zeroed first: `buf` grows by exactly the bytes the kernel wrote.
/// rustix's `preadv2` only takes initialised slices, and zeroing them first cost as much CPU as
/// the read itself.
#[allow(unsafe_code)]
fn preadv2_nowait(
    file: &std::fs::File,
    buf: &mut Vec<u8>,
    want: usize,
    offset: u64,
) -> rustix::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let spare = &mut buf.spare_capacity_mut()[..want];
    let offset = libc::off_t::try_from(offset).map_err(|_| rustix::io::Errno::INVAL)?;
    let iov = libc::iovec {
        iov_base: spare.as_mut_ptr().cast(),
        iov_len: spare.len(),
    };
    // SAFETY: `iov` describes `spare`, memory this function borrows mutably for the call, and
    // the kernel writes at most `iov_len` bytes into it; no reference to it is read meanwhile.
    let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, offset, libc::RWF_NOWAIT) };
    let Ok(n) = usize::try_from(n) else {
        return Err(
            rustix::io::Errno::from_io_error(&std::io::Error::last_os_error())
                .unwrap_or(rustix::io::Errno::IO),
        );
    };
    let n = n.min(want);
    // SAFETY: the kernel initialised the first `n` bytes of the spare capacity (`n` is what it
    // returned, at most `want`, within the capacity).
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// Appends the `len` bytes at `offset` to `buf` (empty, with room for them), without zeroing
/// them first; an error (`UnexpectedEof` when the file is shorter) and never bytes the file did
/// not give otherwise.
fn read_exact_at(
    file: &std::fs::File,
    buf: &mut Vec<u8>,
    len: usize,
    offset: u64,
) -> std::io::Result<()> {
    use rustix::io::Errno;
    buf.reserve_exact(len.saturating_sub(buf.len()));
    while buf.len() < len {
        let done = buf.len();
        // Reads into the spare capacity, which may be larger than `len`: the excess is cut.
        match rustix::io::pread(
            file,
            rustix::buffer::spare_capacity(buf),
            offset + done as u64,
        ) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    buf.truncate(len);
    Ok(())
}

/// Removes what a folder reused for a new partition (a partition index removed and added
/// again) may still hold of an earlier one: a compaction manifest or checkpoint, cleaned files,
/// a log start, segments. A leftover manifest would otherwise be applied to the new partition's
/// segments at the next open. Made durable by the folder sync of the new first segment.
/// With `keep_manifest` (a restore), the remote manifest stays: it is this partition's.
fn remove_stale_files(disk: &Disk, dir: &Path, keep_manifest: bool) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let stale = name.starts_with("cleaner-")
            || name.ends_with(crate::compaction::swap::CLEANED_SUFFIX)
            || name == RECORDS_START_FILE
            || (name == MANIFEST_FILE && !keep_manifest)
            || name.ends_with(&format!(".{LOG_EXT}"))
            || name.ends_with(&format!(".{INDEX_EXT}"));
        if stale && entry.file_type().is_ok_and(|t| t.is_file()) {
            tracing::warn!(path = %entry.path().display(), "removing a file left by an earlier partition");
            disk.remove_file(&entry.path())?;
        }
    }
    Ok(())
}

/// The manifest nothing was uploaded under yet.
fn empty_manifest(key: PartitionKey) -> RemoteManifest {
    RemoteManifest::new(key.stream, key.topic, 0, key.partition)
}

/// The partition's remote manifest from its folder, `None` when there is none. A damaged one,
/// or one of another partition, is refused: guessing what was uploaded could delete the only
/// copy of data.
fn load_manifest(dir: &Path, key: PartitionKey) -> Result<Option<RemoteManifest>> {
    let path = dir.join(MANIFEST_FILE);
    let Some(bytes) = crate::durable_file::read_durable(&path)? else {
        return Ok(None);
    };
    let corrupt = |reason: String| StoreError::CorruptMetadata {
        path: path.clone(),
        reason,
    };
    let manifest =
        RemoteManifest::decode(&bytes, MANIFEST_FILE).map_err(|e| corrupt(e.to_string()))?;
    if (manifest.stream, manifest.topic, manifest.partition)
        != (key.stream, key.topic, key.partition)
    {
        return Err(corrupt(format!(
            "the manifest is partition {}/{}/{}'s, not {key}'s",
            manifest.stream, manifest.topic, manifest.partition
        )));
    }
    Ok(Some(manifest))
}

fn remove_orphan_indexes(disk: &Disk, dir: &Path, bases: &[u64]) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(&format!(".{INDEX_EXT}")) else {
            continue;
        };
        let orphan = stem.parse::<u64>().is_ok_and(|b| !bases.contains(&b));
        if orphan {
            tracing::warn!(path = %entry.path().display(), "removing an index without its .{LOG_EXT}");
            let _ = disk.remove_file(&entry.path());
        }
    }
}

fn fail_all(dones: impl IntoIterator<Item = Done>, e: &StoreError) {
    for done in dones {
        let _ = done.send(Err(clone_err(e)));
    }
}

/// Errors are not `Clone` (they hold `io::Error`); a group's failure is reported to each waiter
/// with the same kind, OS error code and message.
fn clone_err(e: &StoreError) -> StoreError {
    match e {
        StoreError::PartitionClosed(k) => StoreError::PartitionClosed(k.clone()),
        StoreError::PartitionFailed(k) => StoreError::PartitionFailed(k.clone()),
        StoreError::Io { path, source } => StoreError::Io {
            path: path.clone(),
            // The OS error code survives, so callers can tell a full disk from a failing one.
            source: match source.raw_os_error() {
                Some(code) => std::io::Error::from_raw_os_error(code),
                None => std::io::Error::new(source.kind(), source.to_string()),
            },
        },
        other => StoreError::PartitionFailed(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;
    use crate::batch::tests::native_payload;

    const KEY: PartitionKey = PartitionKey {
        stream: 1,
        topic: 2,
        partition: 3,
    };

    fn settings() -> EffectiveSettings {
        EffectiveSettings {
            // Small enough that every batch of the tests below gets a segment of its own.
            segment_size: 100,
            segment_max_age_us: u64::MAX,
            durability: Durability::Os,
            log_append_time: false,
            max_batch_bytes: 1 << 20,
            manifest_max_segments: crate::remote::DEFAULT_MANIFEST_MAX_SEGMENTS,
            writeback_bytes: 0,
            preallocate_bytes: 0,
        }
    }

    fn files() -> Arc<OpenFiles> {
        OpenFiles::new(Disk::real(), 64)
    }

    /// A partition with `sealed` sealed segments of one batch of 2 messages each, and the
    /// active segment after them holding one more such batch (a segment rolls when the next
    /// batch would not fit).
    async fn filled(dir: &Path, sealed: usize) -> Arc<Partition> {
        let p = Partition::create(&files(), KEY, dir, settings()).unwrap();
        for i in 0..=sealed {
            let payload = native_payload(2, |m| vec![i as u8; 40 + m]);
            p.append(NewBatch::native(payload).unwrap()).await.unwrap();
        }
        p
    }

    /// An `os`-mode append to an idle partition is written in the submitting task: stored and
    /// readable when `try_submit` returns, before its future is polled; an `fsync`-mode one is
    /// written by the blocking pool. Batches submitted one after another keep their order.
    #[tokio::test]
    async fn an_idle_os_partition_writes_in_the_submitting_task() {
        let dir = tempfile::tempdir().unwrap();
        let os = Partition::create(&files(), KEY, dir.path(), settings()).unwrap();
        let first = os
            .try_submit(NewBatch::native(native_payload(2, |_| vec![1; 10])).unwrap())
            .unwrap();
        assert_eq!(os.high_watermark(), 2, "stored before the future is polled");
        let second = os
            .try_submit(NewBatch::native(native_payload(3, |_| vec![2; 10])).unwrap())
            .unwrap();
        assert_eq!(os.high_watermark(), 5);
        assert_eq!(first.await.unwrap().base_offset, 0);
        assert_eq!(second.await.unwrap().base_offset, 2);

        let dir = tempfile::tempdir().unwrap();
        let fsync = EffectiveSettings {
            durability: Durability::Fsync,
            ..settings()
        };
        let synced = Partition::create(&files(), KEY, dir.path(), fsync).unwrap();
        let queued = synced
            .try_submit(NewBatch::native(native_payload(1, |_| vec![1; 10])).unwrap())
            .unwrap();
        assert_eq!(queued.await.unwrap().last_offset, 0);
        assert_eq!(synced.high_watermark(), 1);
    }

    /// The manifest an uploader would install after uploading `candidates`.
    fn uploaded(p: &Partition, candidates: &[UploadCandidate]) -> RemoteManifest {
        let mut m = p.remote_manifest();
        m.epoch += 1;
        m.topic_created_us = 42;
        m.segments.extend(candidates.iter().map(|c| RemoteSegment {
            upload_epoch: m.epoch,
            log_crc32c: 7,
            ..c.segment.clone()
        }));
        m
    }

    #[tokio::test]
    async fn upload_candidates_are_the_sealed_segments_past_the_manifest_with_their_stats() {
        let dir = tempfile::tempdir().unwrap();
        let p = filled(dir.path(), 3).await;
        let c = p.upload_candidates(u64::MAX);
        let bases: Vec<u64> = c.iter().map(|c| c.segment.base_offset).collect();
        // Three sealed segments; the active one (base 6, one batch) is never a candidate.
        assert_eq!(bases, vec![0, 2, 4]);
        let first = &c[0];
        assert_eq!(first.segment.next_offset, 2);
        assert_eq!(first.segment.batches, 1);
        assert_eq!(
            first.segment.log_size,
            fs::metadata(&first.log_path).unwrap().len()
        );
        let index = fs::read(dir.path().join(crate::segment::file_name(0, INDEX_EXT))).unwrap();
        assert_eq!(
            &first.index()[..],
            &index[..],
            "the index as in the .index file"
        );
        assert_eq!(first.segment.index_size, index.len() as u64);
        assert_eq!(first.segment.index_crc32c, crc32c::crc32c(&index));
        assert_eq!(first.segment.max_timestamp_offset, 0);
        assert!(first.segment.first_append_timestamp > 0);

        p.install_manifest(uploaded(&p, &c[..2])).unwrap();
        let left: Vec<u64> = p
            .upload_candidates(u64::MAX)
            .iter()
            .map(|c| c.segment.base_offset)
            .collect();
        assert_eq!(
            left,
            vec![4],
            "what the manifest names is not offered again"
        );
    }

    /// The upload limit (the broker's last stable offset): a segment is a candidate only when
    /// it ends at or below it, and the ones after a refused segment wait too (uploads stay in
    /// offset order).
    #[tokio::test]
    async fn upload_candidates_end_at_or_below_the_upload_limit() {
        let dir = tempfile::tempdir().unwrap();
        let p = filled(dir.path(), 3).await; // sealed [0,2) [2,4) [4,6)
        let bases = |limit| -> Vec<u64> {
            p.upload_candidates(limit)
                .iter()
                .map(|c| c.segment.base_offset)
                .collect()
        };
        assert_eq!(bases(0), Vec::<u64>::new(), "limit 0: nothing");
        assert_eq!(
            bases(3),
            vec![0],
            "[2,4) ends past 3: an open transaction at 3"
        );
        assert_eq!(
            bases(4),
            vec![0, 2],
            "a segment ending exactly at the limit"
        );
        assert_eq!(bases(u64::MAX), vec![0, 2, 4]);
        p.install_manifest(uploaded(&p, &p.upload_candidates(2)))
            .unwrap();
        assert_eq!(
            bases(5),
            vec![2],
            "from the manifest's end, up to the limit"
        );
    }

    /// Bound: at most MAX_UPLOAD_CANDIDATES segments per call, and none of their indexes is
    /// copied or encoded by the call: each candidate shares its entries with the view (the
    /// only index bytes built are the one segment's being uploaded, by `index()`).
    #[tokio::test]
    async fn upload_candidates_are_bounded_per_call_and_share_the_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let sealed = MAX_UPLOAD_CANDIDATES + 5;
        let p = filled(dir.path(), sealed).await;
        let c = p.upload_candidates(u64::MAX);
        assert_eq!(c.len(), MAX_UPLOAD_CANDIDATES, "bounded per call");
        let (view_sealed, _) = p.sealed_snapshot();
        assert_eq!(view_sealed.len(), sealed);
        for (candidate, in_view) in c.iter().zip(&view_sealed) {
            assert!(
                Arc::ptr_eq(&candidate.entries, &in_view.entries),
                "segment {}: entries shared, not copied",
                candidate.segment.base_offset
            );
            let index = candidate.index();
            assert_eq!(candidate.segment.index_size, index.len() as u64);
            assert_eq!(candidate.segment.index_crc32c, crc32c::crc32c(&index));
        }
        // The rest comes with the next calls, once the first ones are in the manifest.
        p.install_manifest(uploaded(&p, &c)).unwrap();
        assert_eq!(p.upload_candidates(u64::MAX).len(), 5);
    }

    /// An append is never blocked by `upload_candidates`: the view lock (which an append's
    /// publish takes for writing) is free while the candidates' statistics are computed, and
    /// an append made right then lands. Counted, not timed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_append_is_not_blocked_while_upload_candidates_are_prepared() {
        let dir = tempfile::tempdir().unwrap();
        let p = filled(dir.path(), 3).await;
        let free = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (f, n) = (Arc::clone(&free), Arc::clone(&calls));
        *p.after_candidates_taken.lock() = Some(Box::new(move |p: &Partition, taken| {
            assert_eq!(taken, 3);
            n.fetch_add(1, Ordering::SeqCst);
            if p.view.try_write().is_some() {
                f.fetch_add(1, Ordering::SeqCst);
            }
        }));
        let c = p.upload_candidates(u64::MAX);
        assert_eq!(c.len(), 3);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            free.load(Ordering::SeqCst),
            1,
            "the view lock is released before the candidates are prepared"
        );
        // And an append during the preparation completes (on another thread, joined there).
        let appended = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (a, handle) = (Arc::clone(&appended), tokio::runtime::Handle::current());
        let target = Arc::clone(&p);
        *p.after_candidates_taken.lock() = Some(Box::new(move |_: &Partition, _| {
            let (target, a, handle) = (Arc::clone(&target), Arc::clone(&a), handle.clone());
            std::thread::spawn(move || {
                let payload = native_payload(2, |m| vec![9; 40 + m]);
                handle
                    .block_on(target.append(NewBatch::native(payload).unwrap()))
                    .unwrap();
                a.fetch_add(1, Ordering::SeqCst);
            })
            .join()
            .unwrap();
        }));
        let before = p.high_watermark();
        tokio::task::block_in_place(|| p.upload_candidates(u64::MAX));
        assert_eq!(appended.load(Ordering::SeqCst), 1);
        assert_eq!(
            p.high_watermark(),
            before + 2,
            "the append landed meanwhile"
        );
        *p.after_candidates_taken.lock() = None;
    }

    /// The broker's hooks: the limit bounds the candidates, and each carries the aborted
    /// transactions reported for its offsets; a segment whose transactions are not known yet
    /// ends the list (it waits for a later round).
    #[tokio::test]
    async fn the_hooks_bound_the_candidates_and_fill_their_aborted_transactions() {
        use crate::remote::{AbortedRange, HooksSlot, TieringHooks};
        #[derive(Debug)]
        struct Hooks {
            limit: u64,
            unknown_from: u64,
        }
        impl TieringHooks for Hooks {
            fn upload_limit(&self, _: &Arc<Partition>) -> u64 {
                self.limit
            }
            fn aborted_transactions(
                &self,
                _: &Arc<Partition>,
                offsets: std::ops::Range<u64>,
            ) -> Option<Vec<AbortedRange>> {
                (offsets.start < self.unknown_from).then(|| {
                    vec![AbortedRange {
                        producer_id: 7,
                        first_offset: offsets.start,
                        last_offset: offsets.end,
                    }]
                })
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let p = filled(dir.path(), 3).await;
        let slot = HooksSlot::default();
        assert_eq!(
            slot.upload_candidates(&p).len(),
            3,
            "no hooks: no transactions"
        );
        slot.set(Arc::new(Hooks {
            limit: 4,
            unknown_from: u64::MAX,
        }));
        let c = slot.upload_candidates(&p);
        let got: Vec<(u64, Vec<AbortedRange>)> = c
            .iter()
            .map(|c| (c.segment.base_offset, c.segment.aborted.clone()))
            .collect();
        let aborted = |first, last| AbortedRange {
            producer_id: 7,
            first_offset: first,
            last_offset: last,
        };
        assert_eq!(
            got,
            vec![(0, vec![aborted(0, 2)]), (2, vec![aborted(2, 4)])]
        );
        slot.set(Arc::new(Hooks {
            limit: u64::MAX,
            unknown_from: 2,
        }));
        assert_eq!(
            slot.upload_candidates(&p).len(),
            1,
            "stops at the unknown one"
        );
    }

    #[tokio::test]
    async fn install_manifest_needs_a_growing_epoch_and_this_partition_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = filled(dir.path(), 3).await;
        let c = p.upload_candidates(u64::MAX);
        let m = uploaded(&p, &c[..2]);
        p.install_manifest(m.clone()).unwrap();
        assert_eq!(p.last_remote_offset(), Some(3));
        assert!(
            p.install_manifest(m.clone()).is_err(),
            "the same epoch again is refused"
        );
        let other = RemoteManifest {
            partition: 9,
            epoch: m.epoch + 1,
            ..m.clone()
        };
        assert!(
            p.install_manifest(other).is_err(),
            "another partition's manifest"
        );
        p.close().unwrap();
        drop(p);

        let (p, _) = Partition::open(&files(), KEY, dir.path(), settings()).unwrap();
        assert_eq!(p.remote_manifest(), m, "loaded from the folder");
        assert_eq!(p.last_remote_offset(), Some(3));
        p.close().unwrap();
        drop(p);

        // A damaged manifest is refused, naming the file, never guessed around.
        let path = dir.path().join(MANIFEST_FILE);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).unwrap();
        match Partition::open(&files(), KEY, dir.path(), settings()) {
            Err(StoreError::CorruptMetadata { path: named, .. }) => assert_eq!(named, path),
            other => panic!("a corrupt manifest was accepted: {other:?}"),
        }
    }

    #[tokio::test]
    async fn only_uploaded_segments_are_deleted_and_the_log_start_stays_remote() {
        let dir = tempfile::tempdir().unwrap();
        let p = filled(dir.path(), 3).await;
        let c = p.upload_candidates(u64::MAX);
        // Nothing uploaded: nothing deleted.
        assert_eq!(p.delete_uploaded_segment(0).unwrap(), None);
        p.install_manifest(uploaded(&p, &c[..1])).unwrap();
        // Not the oldest local segment: refused.
        assert_eq!(p.delete_uploaded_segment(2).unwrap(), None);
        let size = p.delete_uploaded_segment(0).unwrap();
        assert_eq!(size, Some(c[0].segment.log_size));
        assert!(!c[0].log_path.exists());
        // Segment 2 is not uploaded yet: it stays.
        assert_eq!(p.delete_uploaded_segment(2).unwrap(), None);
        assert!(c[1].log_path.exists());
        assert_eq!(
            p.log_start_offset(),
            0,
            "offsets 0..2 are still readable, remotely"
        );
        assert_eq!(p.local_log_start_offset(), 2);
        assert!(p.has_remote_data());
        // A busy maintenance lock: deletion waits for the next round, as retention does.
        p.install_manifest(uploaded(&p, &c[1..2])).unwrap();
        let held = p.maintenance();
        assert_eq!(p.delete_uploaded_segment(2).unwrap(), None);
        drop(held);
        assert_eq!(
            p.delete_uploaded_segment(2).unwrap(),
            Some(c[1].segment.log_size)
        );
    }

    #[tokio::test]
    async fn an_empty_folder_with_a_manifest_goes_on_after_the_uploaded_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let p = filled(dir.path(), 3).await;
        let c = p.upload_candidates(u64::MAX);
        let m = uploaded(&p, &c);
        p.install_manifest(m.clone()).unwrap();
        p.close().unwrap();
        drop(p);
        // The local disk lost, the manifest restored into an empty folder.
        let fresh = tempfile::tempdir().unwrap();
        crate::durable_file::write_durable(&fresh.path().join(MANIFEST_FILE), &m.encode().unwrap())
            .unwrap();
        let (p, _) = Partition::open(&files(), KEY, fresh.path(), settings()).unwrap();
        assert_eq!(p.high_watermark(), 6);
        assert_eq!(p.local_log_start_offset(), 6);
        assert_eq!(p.log_start_offset(), 0);
        let r = p
            .append(NewBatch::native(native_payload(1, |_| vec![1; 10])).unwrap())
            .await
            .unwrap();
        assert_eq!(
            r.base_offset, 6,
            "new appends continue after the uploaded offsets"
        );
    }

    /// Bound: `manifest_max_segments`. A manifest naming more segments than it is refused
    /// (nothing written, nothing installed) and the uploader is told there is no room; one
    /// that shrinks is taken even over a lowered bound.
    #[tokio::test]
    async fn a_manifest_over_its_bound_is_refused_and_leaves_no_room_for_uploads() {
        use crate::remote::RemoteError;
        let dir = tempfile::tempdir().unwrap();
        let p = filled(dir.path(), 4).await;
        p.set_settings(EffectiveSettings {
            manifest_max_segments: 2,
            ..settings()
        });
        assert_eq!(p.manifest_room().unwrap(), 2);
        let c = p.upload_candidates(u64::MAX);
        match p.install_manifest(uploaded(&p, &c[..3])) {
            Err(StoreError::Remote(RemoteError::ManifestFull { segments, max, .. })) => {
                assert_eq!((segments, max), (3, 2));
            }
            other => panic!("a manifest over the bound was installed: {other:?}"),
        }
        assert!(!dir.path().join(MANIFEST_FILE).exists(), "nothing written");
        assert_eq!(p.last_remote_offset(), None);

        let at_bound = uploaded(&p, &c[..2]);
        p.install_manifest(at_bound.clone()).unwrap();
        assert!(matches!(
            p.manifest_room(),
            Err(StoreError::Remote(RemoteError::ManifestFull {
                segments: 3,
                max: 2,
                ..
            }))
        ));
        p.set_settings(EffectiveSettings {
            manifest_max_segments: 1,
            ..settings()
        });
        let mut shrunk = at_bound.clone();
        shrunk.epoch += 1;
        shrunk.segments.truncate(1);
        p.install_manifest(shrunk)
            .expect("a shrinking manifest over a lowered bound");
        p.set_settings(EffectiveSettings {
            manifest_max_segments: 5,
            ..settings()
        });
        assert_eq!(p.manifest_room().unwrap(), 4);
    }

    thread_local! {
        /// Sealed-segment lists built by this thread ([`Partition::sealed_segments`]).
        pub(crate) static SEALED_LISTS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    /// Bound: a status (every `/metrics` scrape) copies no manifest and builds no
    /// sealed-segment list, whatever the number of partitions and segments: counted, the old
    /// status made one of each per partition.
    #[tokio::test]
    async fn remote_status_copies_no_manifest_and_no_segment_list() {
        use crate::remote::{
            ObjectStoreRemote, RemoteConfig, RemoteSettings, RemoteStore, RemoteTier, CLONES,
        };
        use crate::Ident;
        use std::cell::Cell;
        let dir = tempfile::tempdir().unwrap();
        let remote =
            ObjectStoreRemote::open(RemoteConfig::filesystem(dir.path().join("bucket"))).unwrap();
        let config = crate::StoreConfig {
            background_tasks: false,
            remote: Some(RemoteTier {
                store: Arc::new(remote) as Arc<dyn RemoteStore>,
                settings: RemoteSettings::default(),
            }),
            ..crate::StoreConfig::default()
        };
        let (store, _) = crate::LogStore::open(dir.path().join("data"), config).unwrap();
        store.create_stream("s").unwrap();
        let tiered = crate::TopicSettings {
            segment_size: Some(1),
            remote_storage: true,
            ..crate::TopicSettings::default()
        };
        store.create_topic(Ident::Id(0), "t", 3, tiered).unwrap();
        for partition in 0..3 {
            let p = store
                .partition(Ident::Id(0), Ident::Id(0), partition)
                .unwrap();
            for i in 0..8u8 {
                let payload = native_payload(1, |_| vec![i; 40]);
                p.append(NewBatch::native(payload).unwrap()).await.unwrap();
            }
        }
        assert!(store.tier_once(now_us()).unwrap().succeeded());
        let p = store.partition(Ident::Id(0), Ident::Id(0), 0).unwrap();
        for i in 0..3u8 {
            let payload = native_payload(1, |_| vec![i; 40]);
            p.append(NewBatch::native(payload).unwrap()).await.unwrap();
        }
        let (clones, lists) = (CLONES.with(Cell::get), SEALED_LISTS.with(Cell::get));
        let status = store.remote_status().unwrap();
        assert_eq!(
            CLONES.with(Cell::get),
            clones,
            "manifests cloned by a status"
        );
        assert_eq!(
            SEALED_LISTS.with(Cell::get),
            lists,
            "sealed lists built by a status"
        );
        assert_eq!((status.remote_segments, status.pending_segments), (21, 3));
        let remote_bytes: u64 = (0..3)
            .map(|i| {
                let p = store.partition(Ident::Id(0), Ident::Id(0), i).unwrap();
                p.remote_manifest().log_bytes()
            })
            .sum();
        assert_eq!(status.remote_bytes, remote_bytes);
        store.close().unwrap();
    }

    /// The counters `Tiering::status` sums, against a count from scratch after each change.
    fn counted_from_scratch(p: &Partition) -> TierCounts {
        let m = p.remote_manifest();
        let end = m.next_offset().unwrap_or(0);
        let view = p.view.read();
        let n = view.segments.len() - 1;
        let pending: Vec<u64> = view.segments[..n]
            .iter()
            .filter(|s| s.base_offset >= end && !s.entries.is_empty())
            .map(|s| s.size)
            .collect();
        TierCounts {
            remote_segments: m.segments.len() as u64,
            remote_bytes: m.log_bytes(),
            pending_segments: pending.len() as u64,
            pending_bytes: pending.iter().sum(),
        }
    }

    #[tokio::test]
    async fn tier_counters_follow_seals_installs_deletions_reopen_and_purge() {
        let dir = tempfile::tempdir().unwrap();
        let p = filled(dir.path(), 3).await;
        let counts = p.tier_counts();
        assert_eq!(counts.pending_segments, 3);
        assert!(counts.pending_bytes > 0);
        assert_eq!(counts, counted_from_scratch(&p));
        let c = p.upload_candidates(u64::MAX);
        p.install_manifest(uploaded(&p, &c[..2])).unwrap();
        let counts = p.tier_counts();
        assert_eq!((counts.remote_segments, counts.pending_segments), (2, 1));
        assert_eq!(counts, counted_from_scratch(&p));
        // Deleting an uploaded local copy changes neither count.
        let first = p.sealed_segments()[0].0;
        assert!(p.delete_uploaded_segment(first).unwrap().is_some());
        assert_eq!(p.tier_counts(), counts);
        // A roll seals one more waiting segment.
        let payload = native_payload(2, |m| vec![9; 40 + m]);
        p.append(NewBatch::native(payload).unwrap()).await.unwrap();
        assert_eq!(p.tier_counts().pending_segments, 2);
        assert_eq!(p.tier_counts(), counted_from_scratch(&p));
        let counts = p.tier_counts();
        p.close().unwrap();
        drop(p);
        let (p, _) = Partition::open(&files(), KEY, dir.path(), settings()).unwrap();
        assert_eq!(p.tier_counts(), counts, "the same after a reopen");
        // Deleting a segment that waits (as a plain topic's retention does) takes it out.
        for _ in 0..2 {
            let base = p.sealed_segments()[0].0;
            assert!(p.try_delete_oldest_segment(base).unwrap().is_some());
        }
        assert_eq!(p.tier_counts().pending_segments, 1);
        assert_eq!(p.tier_counts(), counted_from_scratch(&p));
        {
            let _m = p.maintenance();
            p.purge_locked().unwrap();
        }
        assert_eq!(p.tier_counts(), TierCounts::default());
    }

    /// The bound: a fitting read returns only whole batches within its `max_bytes` (none when
    /// the first is larger) and plans no file read for a batch it would not return.
    #[tokio::test]
    async fn a_fitting_read_returns_no_batch_past_its_max_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = filled(dir.path(), 2).await;
        let all = p.read(0, u64::MAX).unwrap();
        let lens: Vec<u64> = all
            .batches
            .iter()
            .map(|b| b.as_bytes().len() as u64)
            .collect();
        assert_eq!(lens.len(), 3);

        assert_eq!(
            p.read(0, lens[0] - 1).unwrap().batches.len(),
            1,
            "at least one"
        );
        let reads = p.reads();
        let fitting = |max_bytes| ReadBounds {
            max_bytes,
            until: u64::MAX,
            fill: Fill::Fitting,
        };
        let none = p.read_bounded(0, fitting(lens[0] - 1)).unwrap();
        assert!(none.batches.is_empty());
        assert_eq!(none.high_watermark, all.high_watermark);
        assert_eq!(p.reads(), reads + 1);
        assert_eq!(
            p.read_bounded(0, fitting(lens[0])).unwrap().batches.len(),
            1
        );
        let two = p
            .read_bounded(0, fitting(lens[0] + lens[1] + lens[2] - 1))
            .unwrap();
        assert_eq!(two.batches.len(), 2, "across segments, within the bytes");
        assert_eq!(two.batches[1].base_offset(), all.batches[1].base_offset());
        // `None`: the kernel could not say what is cached.
        if let Some(r) = p.read_bounded_cached(2, fitting(lens[1] - 1)).unwrap() {
            assert!(r.batches.is_empty());
        }
        // The plan itself holds no range for such a read: no bytes are read and dropped.
        let view = p.view.read();
        assert!(plan_read(&view, 0, fitting(lens[0] - 1)).is_empty());
        let one = ReadBounds::at_least_one(lens[0] - 1);
        assert_eq!(plan_read(&view, 0, one).len(), 1);
        // `until` bounds the batches by their first offset (2 messages each): a batch that
        // begins at it is not planned, not even as the first one.
        let until = |until| ReadBounds {
            until,
            ..ReadBounds::at_least_one(u64::MAX)
        };
        assert_eq!(plan_read(&view, 0, until(2))[0].lengths.len(), 1);
        assert_eq!(plan_read(&view, 0, until(3)).len(), 2);
        assert!(plan_read(&view, 2, until(2)).is_empty());
        drop(view);
        assert_eq!(p.read_bounded(1, until(4)).unwrap().batches.len(), 2);
    }

    /// The bound: a read buffer holds only bytes the file gave (it is not zeroed first), so a
    /// read past the end of a file is an error and the buffer holds a prefix of the file.
    #[test]
    fn a_read_past_the_end_of_a_file_fails_and_keeps_only_the_bytes_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ten");
        let content: Vec<u8> = (1..=10).collect();
        std::fs::write(&path, &content).unwrap();
        let file = std::fs::File::open(&path).unwrap();

        let mut buf = Vec::with_capacity(6);
        read_exact_at(&file, &mut buf, 6, 4).unwrap();
        assert_eq!(buf, content[4..]);

        let mut buf = Vec::with_capacity(20);
        let e = read_exact_at(&file, &mut buf, 20, 0).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        assert_eq!(buf, content, "only what the file gave");

        let mut buf = Vec::with_capacity(6);
        match read_at_cached(&file, &mut buf, 6, 4) {
            Ok(true) => assert_eq!(buf, content[4..]),
            // The kernel may not know (RWF_NOWAIT unsupported) or the page went: not cached.
            Ok(false) => assert!(content[4..].starts_with(&buf)),
            Err(e) => panic!("cached read of cached bytes: {e}"),
        }
        let mut buf = Vec::with_capacity(20);
        match read_at_cached(&file, &mut buf, 20, 0) {
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof),
            Ok(whole) => assert!(!whole, "a read past the end is never whole"),
        }
        assert!(
            content.starts_with(&buf),
            "only what the file gave: {buf:?}"
        );
    }

    /// A segment file cut short under the read plan (its index still lists the batches) gives
    /// an error or, for a cached read, "not cached": never batches made of unread bytes.
    #[tokio::test]
    async fn a_segment_truncated_under_the_read_plan_is_an_error_not_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::create(&files(), KEY, dir.path(), settings()).unwrap();
        let payload = native_payload(2, |m| vec![7u8; 10 + m]);
        p.append(NewBatch::native(payload).unwrap()).await.unwrap();
        let whole = p.read(0, u64::MAX).unwrap();
        assert_eq!(whole.batches.len(), 1);
        let stored = whole.batches[0].as_bytes().len() as u64;

        let log = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|path| path.extension().is_some_and(|x| x == LOG_EXT))
            .unwrap();
        let cut = fs::OpenOptions::new().write(true).open(&log).unwrap();
        cut.set_len(stored / 2).unwrap();

        assert!(p.read(0, u64::MAX).is_err(), "a cut batch is an error");
        match p.read_cached(0, u64::MAX) {
            Err(_) | Ok(None) => {}
            Ok(Some(r)) => panic!("a cut batch read from the cache: {r:?}"),
        }
    }

    #[tokio::test]
    async fn purge_installs_an_empty_manifest_of_the_next_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let p = filled(dir.path(), 3).await;
        let c = p.upload_candidates(u64::MAX);
        let m = uploaded(&p, &c);
        p.install_manifest(m.clone()).unwrap();
        {
            let _m = p.maintenance();
            p.purge_locked().unwrap();
        }
        let after = p.remote_manifest();
        assert_eq!(after.epoch, m.epoch + 1);
        assert!(after.segments.is_empty());
        assert_eq!(after.topic_created_us, 42);
        assert_eq!(p.last_remote_offset(), None);
        assert_eq!((p.log_start_offset(), p.high_watermark()), (0, 0));
        let on_disk = crate::durable_file::read_durable(&dir.path().join(MANIFEST_FILE))
            .unwrap()
            .unwrap();
        assert_eq!(RemoteManifest::decode(&on_disk, "m").unwrap(), after);
    }

    #[tokio::test]
    async fn a_new_partition_in_a_reused_folder_drops_an_old_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let p = filled(dir.path(), 2).await;
        let c = p.upload_candidates(u64::MAX);
        p.install_manifest(uploaded(&p, &c)).unwrap();
        p.close().unwrap();
        drop(p);
        let p = Partition::create(&files(), KEY, dir.path(), settings()).unwrap();
        assert_eq!(p.remote_manifest().epoch, 0);
        assert!(!dir.path().join(MANIFEST_FILE).exists());
    }

    // ----- reads of uploaded data -----

    use crate::remote::{
        FaultyRemote, ObjectStoreRemote, PartitionPrefix, ReadCache, RemoteConfig, RemoteError,
        RemoteStore,
    };

    /// A filesystem object store behind a fault switch, and a reader of this partition's
    /// objects in it.
    fn tier(root: &Path) -> (Arc<FaultyRemote>, Arc<RemoteReader>) {
        let store = ObjectStoreRemote::open(RemoteConfig::filesystem(root.join("bucket"))).unwrap();
        let faulty = FaultyRemote::new(Arc::new(store));
        let reader = reader_on(&faulty, root);
        (faulty, reader)
    }

    /// A new reader (nothing kept parsed, an empty cache) through `faulty`.
    fn reader_on(faulty: &Arc<FaultyRemote>, root: &Path) -> Arc<RemoteReader> {
        let metrics = Arc::new(crate::metrics::StoreMetrics::default());
        let as_store: Arc<dyn RemoteStore> = faulty.clone();
        let cache = ReadCache::open(
            &root.join("cache"),
            1 << 20,
            4096,
            as_store,
            Arc::clone(&metrics),
        )
        .unwrap();
        let prefix = PartitionPrefix::new(KEY.stream, KEY.topic, 42, KEY.partition);
        Arc::new(RemoteReader::new(prefix, Arc::new(cache)))
    }

    /// Uploads every candidate as the tiering thread does (objects, then the manifest), and
    /// deletes the local copies.
    fn offload(p: &Partition, store: &dyn RemoteStore, prefix: &PartitionPrefix) {
        for candidate in &upload(p, store, prefix) {
            let base = candidate.segment.base_offset;
            assert!(p.delete_uploaded_segment(base).unwrap().is_some());
        }
    }

    /// Uploads every candidate and installs the manifest naming them; returns them.
    fn upload(
        p: &Partition,
        store: &dyn RemoteStore,
        prefix: &PartitionPrefix,
    ) -> Vec<UploadCandidate> {
        let c = p.upload_candidates(u64::MAX);
        let mut m = uploaded(p, &c);
        for (entry, candidate) in m.segments.iter_mut().rev().zip(c.iter().rev()) {
            let log = fs::read(&candidate.log_path).unwrap();
            entry.log_crc32c = crc32c::crc32c(&log);
            let key = prefix.log(entry.base_offset, entry.upload_epoch);
            store.put(&key, &mut &log[..], log.len() as u64).unwrap();
            let key = prefix.index(entry.base_offset, entry.upload_epoch);
            let index = candidate.index();
            store
                .put(&key, &mut &index[..], index.len() as u64)
                .unwrap();
        }
        p.install_manifest(m).unwrap();
        c
    }

    /// A read planned against a local segment that the local retention deletes (uploaded)
    /// before the read opens it is planned again and served from the remote tier: it never
    /// skips to the next local segment, which would hand a consumer a gap.
    #[tokio::test]
    async fn a_local_segment_deleted_under_a_planned_read_is_read_remotely() {
        let dir = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let p = filled(dir.path(), 3).await;
        let (faulty, reader) = tier(root.path());
        upload(&p, &**faulty.inner(), reader.prefix());
        p.close().unwrap();
        drop(p);
        // Reopened: no segment's descriptor is open, so the read opens the file after the plan.
        let (p, _) = Partition::open(&files(), KEY, dir.path(), settings()).unwrap();
        p.attach_remote(Arc::clone(&reader));
        let (ranges, hw) = {
            let view = p.view.read();
            (
                plan_read(&view, 0, ReadBounds::at_least_one(1)),
                view.high_watermark,
            )
        };
        assert_eq!(ranges[0].first_offset, 0);
        assert!(p.delete_uploaded_segment(0).unwrap().is_some());
        assert!(matches!(
            p.read_ranges(ranges, 0, hw, false),
            Err(ReadFailure::Moved(_))
        ));
        let r = p.read(0, 1).unwrap();
        assert_eq!(r.batches[0].base_offset(), 0, "no gap");
    }

    fn read_all(p: &Partition, from: u64) -> Vec<StoredBatch> {
        let mut out = Vec::new();
        let mut at = from;
        while at < p.high_watermark() {
            let r = p.read(at, 1).unwrap();
            let last = r.batches.last().unwrap().envelope().last_offset();
            out.extend(r.batches);
            at = last + 1;
        }
        out
    }

    #[tokio::test]
    async fn uploaded_data_reads_back_byte_exact_only_where_blocking_is_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let p = filled(dir.path(), 3).await;
        let before = read_all(&p, 0);
        let max_ts = p.max_timestamp();
        let (faulty, reader) = tier(root.path());
        p.attach_remote(Arc::clone(&reader));
        offload(&p, &**faulty.inner(), reader.prefix());
        assert_eq!(p.stats().segments, 1, "only the active segment is local");
        assert_eq!((p.log_start_offset(), p.local_log_start_offset()), (0, 6));

        // An async worker never reads the remote tier: it is sent to the blocking pool.
        assert!(p.read_cached(0, 1 << 20).unwrap().is_none());
        assert!(p.read_cached(3, 1 << 20).unwrap().is_none());
        faulty.reset_counts();
        let after = tokio::task::spawn_blocking({
            let p = Arc::clone(&p);
            move || read_all(&p, 0)
        })
        .await
        .unwrap();
        assert_eq!(after, before, "byte-exact");
        // A read inside a batch starts with that batch, from the segment holding it only.
        let r = p.read(3, 1 << 20).unwrap();
        assert_eq!(r.batches.len(), 1);
        assert_eq!(r.batches[0].envelope().base_offset, 2);
        assert_eq!((r.log_start_offset, r.high_watermark), (0, 8));
        // A fitting read of remote data returns what fits, and nothing when the batch does not.
        let len = r.batches[0].as_bytes().len() as u64;
        let fitting = |max_bytes| ReadBounds {
            max_bytes,
            until: u64::MAX,
            fill: Fill::Fitting,
        };
        assert_eq!(p.read_bounded(3, fitting(len)).unwrap().batches, r.batches);
        let none = p.read_bounded(3, fitting(len - 1)).unwrap();
        assert!(none.batches.is_empty());
        let before_it = ReadBounds {
            until: 2,
            ..ReadBounds::at_least_one(1 << 20)
        };
        assert_eq!(p.read_bounded(0, before_it).unwrap().batches.len(), 1);
        assert!(none.batches.is_empty());
        assert_eq!((none.log_start_offset, none.high_watermark), (0, 8));

        // Each segment's index was fetched once and is kept parsed: look-ups fetch nothing.
        faulty.reset_counts();
        assert_eq!(p.max_timestamp(), max_ts, "from the manifest's stats");
        let ts = before[1].envelope().max_timestamp;
        assert_eq!(p.offset_for_timestamp(ts).unwrap(), Some(2));
        assert_eq!(p.offset_for_timestamp(0).unwrap(), Some(0));
        assert_eq!(p.batch_before(6).unwrap(), Some(4));
        assert_eq!(p.batch_before(5).unwrap(), Some(4));
        assert_eq!(p.batch_before(2).unwrap(), Some(0));
        assert_eq!(p.batch_before(0).unwrap(), None);
        // Where blocking is not allowed, answers that need a remote index are refused.
        assert_eq!(p.offset_for_timestamp_cached(ts), None);
        assert_eq!(p.batch_before_cached(5), None);
        assert_eq!(p.batch_before_cached(7), Some(Some(6)));
        assert_eq!(p.offset_for_timestamp_cached(u64::MAX), Some(None));
        let c = faulty.counts();
        assert_eq!(c.gets + c.get_ranges, 0, "{c:?}");

        // The store down: reads and look-ups of remote data fail, local ones do not.
        faulty.set_down(true);
        p.attach_remote(reader_on(&faulty, root.path()));
        assert!(matches!(
            p.read(0, 1 << 20),
            Err(StoreError::Remote(RemoteError::Unavailable { .. }))
        ));
        assert!(p.offset_for_timestamp(ts).is_err());
        assert!(p.batch_before(2).is_err());
        assert_eq!(p.read(6, 1 << 20).unwrap().batches.len(), 1);
        assert_eq!(
            p.offset_for_timestamp(u64::MAX).unwrap(),
            None,
            "no segment is that recent"
        );
    }

    #[tokio::test]
    async fn a_damaged_remote_object_is_an_error_never_data() {
        let dir = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let p = filled(dir.path(), 2).await;
        let (faulty, reader) = tier(root.path());
        p.attach_remote(Arc::clone(&reader));
        offload(&p, &**faulty.inner(), reader.prefix());
        let m = p.remote_manifest();
        let seg = &m.segments[0];
        let key = reader.prefix().log(seg.base_offset, seg.upload_epoch);
        let mut log = faulty.inner().get(&key).unwrap().unwrap().to_vec();
        let last = log.len() - 1;
        log[last] ^= 0x40;
        faulty
            .inner()
            .put(&key, &mut &log[..], log.len() as u64)
            .unwrap();
        assert!(matches!(
            p.read(0, 1 << 20),
            Err(StoreError::Remote(RemoteError::Corrupt { .. }))
        ));
        // A manifest whose index checksum disagrees with the object.
        let mut bad = m.clone();
        bad.epoch += 1;
        bad.segments[1].index_crc32c ^= 1;
        p.install_manifest(bad).unwrap();
        assert!(matches!(
            p.read(2, 1 << 20),
            Err(StoreError::Remote(RemoteError::Corrupt { .. }))
        ));
    }

    #[tokio::test]
    async fn uploaded_data_without_a_remote_tier_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let p = filled(dir.path(), 1).await;
        let (faulty, reader) = tier(root.path());
        offload(&p, &**faulty.inner(), reader.prefix());
        assert!(matches!(
            p.read(0, 1 << 20),
            Err(StoreError::Remote(RemoteError::Config(_)))
        ));
        assert_eq!(p.read(2, 1 << 20).unwrap().batches.len(), 1);
    }

    #[tokio::test]
    async fn delete_records_moves_the_log_start_inside_the_remote_tier() {
        let dir = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let p = filled(dir.path(), 3).await;
        let (faulty, reader) = tier(root.path());
        p.attach_remote(Arc::clone(&reader));
        offload(&p, &**faulty.inner(), reader.prefix());
        assert_eq!(p.delete_records_before(3).unwrap(), 3);
        assert_eq!((p.log_start_offset(), p.local_log_start_offset()), (3, 6));
        let r = p.read(0, 1).unwrap();
        assert_eq!(r.log_start_offset, 3);
        assert_eq!(
            r.batches[0].envelope().base_offset,
            2,
            "the batch holding the start"
        );
        assert_eq!(p.offset_for_timestamp(0).unwrap(), Some(3));
    }

    /// Bound: `preallocate_bytes`. The active log's blocks are reserved ahead of its end in
    /// steps of at least `preallocate_bytes` that grow with the segment (so never more than
    /// the larger of a step and the data is held beyond it); a rolled segment gives the rest
    /// back; 0 reserves nothing; a file system that refuses `fallocate` fails no append.
    #[tokio::test]
    async fn logs_reserve_blocks_ahead_in_growing_steps_and_give_the_rest_back_on_roll() {
        use std::os::unix::fs::MetadataExt;
        #[derive(Debug, Default)]
        struct Refuse(bool, std::sync::atomic::AtomicU64);
        impl crate::disk::FileHook for Refuse {
            fn before(&self, op: crate::disk::FileOp, _: &Path) -> std::io::Result<()> {
                if op != crate::disk::FileOp::Reserve {
                    return Ok(());
                }
                self.1.fetch_add(1, Ordering::Relaxed);
                if self.0 {
                    Err(std::io::Error::from_raw_os_error(95)) // EOPNOTSUPP
                } else {
                    Ok(())
                }
            }
        }
        let step: u64 = 256 << 10;
        let segment_size: u64 = 4 << 20;
        // (len, allocated bytes) of every log file in `dir`, oldest first.
        let logs = |dir: &Path| -> Vec<(u64, u64)> {
            let mut names: Vec<_> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == LOG_EXT))
                .collect();
            names.sort();
            names
                .iter()
                .map(|p| {
                    let m = std::fs::metadata(p).unwrap();
                    (m.len(), m.blocks() * 512)
                })
                .collect()
        };
        for (preallocate_bytes, refuse) in [(step, false), (0, false), (step, true)] {
            let case = format!("preallocate_bytes {preallocate_bytes}, refused {refuse}");
            let dir = tempfile::tempdir().unwrap();
            let hook = Arc::new(Refuse(refuse, Default::default()));
            let files = OpenFiles::new(Disk::with_hook(hook.clone()), 64);
            let p = Partition::create(
                &files,
                KEY,
                dir.path(),
                EffectiveSettings {
                    segment_size,
                    preallocate_bytes,
                    ..settings()
                },
            )
            .unwrap();
            let mut rolled = false;
            for i in 0..60u8 {
                // About 100 KB a batch: a segment takes about 40.
                let payload = native_payload(100, |_| vec![i; 1000]);
                p.append(NewBatch::native(payload).unwrap()).await.unwrap();
                let now = logs(dir.path());
                let (len, allocated) = *now.last().unwrap();
                if preallocate_bytes > 0 && !refuse {
                    // Reserved past the data, by no more than the bound (plus a page and the
                    // file's own extent blocks).
                    assert!(allocated >= len.max(step), "{case}: batch {i}: {now:?}");
                    assert!(
                        allocated <= len + len.max(step) + (64 << 10),
                        "{case}: batch {i}: {now:?}"
                    );
                } else {
                    assert!(allocated <= len + (64 << 10), "{case}: batch {i}: {now:?}");
                }
                if now.len() > 1 {
                    rolled = true;
                    // The rolled segment holds no more than its data.
                    let (len, allocated) = now[0];
                    assert!(allocated <= len + (64 << 10), "{case}: {now:?}");
                }
            }
            assert!(rolled, "{case}: the test must roll a segment");
            let calls = hook.1.load(Ordering::Relaxed);
            if preallocate_bytes == 0 {
                assert_eq!(calls, 0, "{case}");
            } else {
                // Growing steps: a handful per segment, not one per append.
                assert!((2..=20).contains(&calls), "{case}: {calls} reservations");
            }
            // Everything appended reads back.
            let r = p.read(0, u64::MAX).unwrap();
            let messages: u64 = r
                .batches
                .iter()
                .map(|b| u64::from(b.envelope().record_count))
                .sum();
            assert_eq!(messages, 6000, "{case}");
        }
    }

    /// Bound: `writeback_bytes`. An `os`-mode writer starts the log's writeback once per
    /// stride written (never with a stride of 0, never in `fsync` mode, whose group fdatasync
    /// writes it all), and writeback changes nothing of durability: the periodic sync still
    /// fdatasyncs the log.
    #[tokio::test]
    async fn os_mode_appends_start_writeback_every_stride_and_the_sync_still_fdatasyncs() {
        #[derive(Debug, Default)]
        struct LogSyncs(std::sync::atomic::AtomicU64);
        impl crate::disk::FileHook for LogSyncs {
            fn after(&self, op: crate::disk::FileOp, path: &Path, _: Option<&Path>) {
                if op == crate::disk::FileOp::SyncData
                    && path.extension().is_some_and(|e| e == LOG_EXT)
                {
                    self.0.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let stride = 16 << 10;
        for (durability, writeback_bytes) in [
            (Durability::Os, stride),
            (Durability::Os, 0),
            (Durability::Fsync, stride),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let syncs = Arc::new(LogSyncs::default());
            let files = OpenFiles::new(Disk::with_hook(syncs.clone()), 64);
            let p = Partition::create(
                &files,
                KEY,
                dir.path(),
                EffectiveSettings {
                    segment_size: 1 << 30,
                    durability,
                    writeback_bytes,
                    ..settings()
                },
            )
            .unwrap();
            for i in 0..100u8 {
                let payload = native_payload(3, |m| vec![i; 1000 + 7 * m]);
                let r = p.append(NewBatch::native(payload).unwrap()).await.unwrap();
                assert_eq!(r.base_offset, 3 * u64::from(i));
            }
            let (size, stats) = {
                let w = p.writer.lock();
                let w = w.as_ref().unwrap();
                (w.size, w.writeback.stats)
            };
            let case = format!("{durability:?}, writeback_bytes {writeback_bytes}");
            if durability == Durability::Os && writeback_bytes > 0 {
                // Each range handed off is at least a stride, and they cover the log from its
                // start; how many is the writeback module's to pin down (the thread's queue may
                // have been full for one, which the next then takes in).
                let batch = size / 100;
                assert!(size > 20 * stride, "{case}: a test of {size} bytes");
                assert!(
                    (1..=size / stride).contains(&stats.ranges),
                    "{case}: {stats:?} of {size} bytes"
                );
                assert!(stats.bytes <= size, "{case}: {stats:?}");
                if stats.deferred == 0 {
                    assert!(
                        size - stats.bytes < stride + batch + 4096,
                        "{case}: {stats:?}"
                    );
                }
            } else {
                assert_eq!(stats, Default::default(), "{case}");
            }
            let before = syncs.0.load(Ordering::Relaxed);
            p.sync().unwrap();
            let synced = syncs.0.load(Ordering::Relaxed) - before;
            match durability {
                Durability::Os => assert_eq!(synced, 1, "{case}: the periodic fdatasync"),
                Durability::Fsync => assert_eq!(synced, 0, "{case}: each group was synced"),
            }
            if durability == Durability::Fsync {
                assert!(syncs.0.load(Ordering::Relaxed) >= 1, "{case}");
            }
        }
    }
}
