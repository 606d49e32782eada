//! Committed consumer positions: one record per (consumer or group, stream, topic, partition),
//! shared by both protocols. The value is the **next offset to read** (Kafka's meaning; the
//! native adapter converts from Iggy's "last consumed").
//!
//! Stored as an append-only journal of checksummed records (`[len u32][crc32c u32][body]`):
//! a commit returns once its records are handed to the kernel with `write`, so a killed process
//! loses no acknowledged commit; the background syncer fsyncs the journal. On open the journal
//! is replayed and a torn or corrupt tail is cut off.
//!
//! **Group commit.** Callers (threads of tokio's blocking pool) encode their records and put
//! them in a queue. One caller at a time is the *writer*: whoever finds no writer active becomes
//! it and writes everything queued with one `write`, again and again until the queue is empty;
//! the others wait on a condition variable for the outcome of the write that covered them. A
//! write that fails fails exactly the commits in it and is cut back, leaving the journal and the
//! positions as they were before them. Deletions go through the same queue; the writer decides
//! which of the keys a deletion names are still there at its place in the journal.
//!
//! **Readers** (`get`, `list`, ...) never wait for file I/O: the positions are a map behind
//! their own lock, which the writer takes only to apply a write that succeeded, in journal order.
//!
//! **Compaction.** When the journal has grown well past the live entries, the writer that
//! notices it takes a snapshot of the positions (and the journal length they correspond to)
//! after answering its group, then, with commits flowing meanwhile, writes and syncs the
//! snapshot to `journal.compact`. Holding the writer role again only for the end, it copies the
//! records written since the snapshot, syncs, renames the file over the journal and syncs the
//! folder. Every file operation goes through the store's [`Disk`].

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};

use crate::batch::{le_u32, le_u64};
use crate::disk::Disk;
use crate::error::{Result, StoreError};

/// Largest committed metadata string kept, in bytes.
pub const MAX_OFFSET_METADATA: usize = 64 * 1024;
const MAX_OWNER_ID: usize = u16::MAX as usize;
const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const JOURNAL_FILE: &str = "journal";
const COMPACT_FILE: &str = "journal.compact";

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

/// One caller's change, waiting for the writer.
enum Change {
    /// Positions to store, and their records, encoded by the caller.
    Put {
        items: Vec<(OffsetKey, CommittedOffset)>,
        records: Vec<u8>,
    },
    /// Keys to delete; the writer encodes deletions for those still present.
    Delete(Vec<OffsetKey>),
}

struct Queued {
    ticket: u64,
    change: Change,
}

/// The commit queue. `writing` is the writer role: whoever sets it owns the journal file until
/// it clears it (and then it notifies the condition variable).
#[derive(Default)]
struct Queue {
    pending: Vec<Queued>,
    writing: bool,
    /// A compaction is under way (between its snapshot and its rename).
    compacting: bool,
    /// A compaction waits for the writer role: the writer hands it over after its current
    /// group instead of draining the queue, and no waiter takes it meanwhile.
    handover: bool,
    next_ticket: u64,
    /// Outcomes of written changes that their callers have not collected yet.
    finished: HashMap<u64, Result<usize>>,
}

/// The journal file as the writer sees it. Only the holder of the writer role locks it.
struct Journal {
    /// Bytes in the journal, so a failed write can be cut back without asking the kernel.
    len: u64,
    /// Records in the journal (puts and deletes), to decide when to compact.
    records: usize,
    /// A failed write could not be cut back: the journal may hold half a record, after which
    /// nothing may be appended. Commits fail until a restart cuts the tail.
    broken: bool,
}

/// A compaction's snapshot: the live positions as records, and where the journal stood.
struct Snapshot {
    bytes: Vec<u8>,
    records: usize,
    at_len: u64,
    at_records: usize,
}

/// The consumer offsets store.
pub struct ConsumerOffsets {
    path: PathBuf,
    disk: Disk,
    /// The positions, as of the last successful write.
    entries: RwLock<HashMap<OffsetKey, CommittedOffset>>,
    queue: Mutex<Queue>,
    /// Signalled when a group has been written (or the writer role is released).
    written: Condvar,
    journal: Mutex<Journal>,
    /// The journal's handle (opened for appending), replaced by compaction; a sync clones it
    /// rather than wait for a write.
    file: Mutex<Arc<File>>,
    /// Written since the last sync.
    dirty: AtomicBool,
    /// Held across a sync, so that a sync returns only once everything written before it
    /// started is synced, even when another caller's sync is the one doing it.
    syncing: Mutex<()>,
    /// The journal is compacted once it holds more than this many records and four times the
    /// live entries.
    compact_min_records: usize,
}

impl std::fmt::Debug for ConsumerOffsets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerOffsets")
            .field("path", &self.path)
            .field("entries", &self.entries.read().len())
            .finish_non_exhaustive()
    }
}

impl ConsumerOffsets {
    /// Opens (or creates) the journal in `dir`, replaying it and cutting a damaged tail.
    pub fn open(dir: &Path) -> Result<ConsumerOffsets> {
        ConsumerOffsets::open_with(dir, Disk::real())
    }

    /// [`ConsumerOffsets::open`], with every file operation going through `disk`.
    pub fn open_with(dir: &Path, disk: Disk) -> Result<ConsumerOffsets> {
        let made_dir = !dir.is_dir();
        disk.create_dir_all(dir)?;
        let path = dir.join(JOURNAL_FILE);
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
        // A new journal's name (and a new folder's) must survive power loss like its records.
        let created = disk.create_if_missing(&path)?;
        if created || made_dir {
            disk.sync_dir(dir)?;
        }
        if made_dir {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                disk.sync_dir(parent)?;
            }
        }
        let file = OpenOptions::new()
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
            disk.set_len(&file, &path, pos as u64)?;
            disk.sync_data(&file, &path)?;
        }
        let live = entries.len();
        let offsets = ConsumerOffsets {
            path,
            disk,
            entries: RwLock::new(entries),
            queue: Mutex::new(Queue::default()),
            written: Condvar::new(),
            journal: Mutex::new(Journal {
                len: pos as u64,
                records,
                broken: false,
            }),
            file: Mutex::new(Arc::new(file)),
            dirty: AtomicBool::new(false),
            syncing: Mutex::new(()),
            compact_min_records: 100_000,
        };
        if records > 2 * live + 1000 {
            let snapshot = {
                let mut queue = offsets.queue.lock();
                queue.compacting = true;
                offsets.snapshot()
            };
            offsets.compact(snapshot)?;
        }
        Ok(offsets)
    }

    /// Stores one position. Returns once the record is written to the kernel.
    pub fn commit(&self, key: OffsetKey, value: CommittedOffset) -> Result<()> {
        self.commit_many(vec![(key, value)])
    }

    /// Stores several positions with one write (shared with whatever other commits are
    /// waiting). All of them are stored, or none.
    pub fn commit_many(&self, items: Vec<(OffsetKey, CommittedOffset)>) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let mut records = Vec::new();
        for (k, v) in &items {
            check_key(k)?;
            if v.metadata.len() > MAX_OFFSET_METADATA {
                return Err(StoreError::InvalidSetting(format!(
                    "offset metadata of {} bytes exceeds {MAX_OFFSET_METADATA}",
                    v.metadata.len()
                )));
            }
            encode_record(&mut records, k, Some(v));
        }
        self.submit(Change::Put { items, records }).map(drop)
    }

    pub fn get(&self, key: &OffsetKey) -> Option<CommittedOffset> {
        self.entries.read().get(key).cloned()
    }

    /// All positions that `keep` selects, sorted by key.
    pub fn list(&self, keep: impl Fn(&OffsetKey) -> bool) -> Vec<(OffsetKey, CommittedOffset)> {
        let mut out: Vec<_> = self
            .entries
            .read()
            .iter()
            .filter(|(k, _)| keep(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// True when any stored position matches.
    pub fn any(&self, matches: impl Fn(&OffsetKey) -> bool) -> bool {
        self.entries.read().keys().any(matches)
    }

    /// The names of the groups that have at least one stored position, sorted.
    pub fn group_names(&self) -> Vec<String> {
        let entries = self.entries.read();
        let names: std::collections::BTreeSet<&str> = entries
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
    /// Returns how many were deleted.
    ///
    /// The selection is made from the positions stored when this is called; a commit still in
    /// flight at that moment counts as made after the deletion.
    pub fn delete_where(&self, matches: impl Fn(&OffsetKey) -> bool) -> Result<usize> {
        let doomed: Vec<OffsetKey> = self
            .entries
            .read()
            .keys()
            .filter(|k| matches(k))
            .cloned()
            .collect();
        if doomed.is_empty() {
            return Ok(0);
        }
        self.submit(Change::Delete(doomed))
    }

    /// Fsyncs the journal if anything was written since the last sync: every commit that
    /// returned before this was called is durable when it returns. Does not wait for a write
    /// in progress (what that writes is covered by the next sync).
    pub fn sync(&self) -> Result<()> {
        let _syncing = self.syncing.lock();
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let file = Arc::clone(&self.file.lock());
        let result = self.disk.sync_data(&file, &self.path);
        if result.is_err() {
            // Try again next time rather than forget what is unsynced.
            self.dirty.store(true, Ordering::Release);
        }
        result
    }

    /// Queues `change` and returns its outcome: as the writer, after writing it (and whatever
    /// else is queued); otherwise once the writer has written the group holding it.
    fn submit(&self, change: Change) -> Result<usize> {
        let mut queue = self.queue.lock();
        let ticket = queue.next_ticket;
        queue.next_ticket += 1;
        queue.pending.push(Queued { ticket, change });
        #[cfg(test)]
        self.written.notify_all();
        loop {
            if let Some(outcome) = queue.finished.remove(&ticket) {
                return outcome;
            }
            if !queue.writing && !queue.handover {
                queue.writing = true;
                let (outcome, snapshot) = self.drain(queue, Some(ticket));
                if let Some(snapshot) = snapshot {
                    // Our change is written and everyone is answered; only this caller waits
                    // for the compaction it noticed (others only briefly, at its end).
                    if let Err(e) = self.compact(snapshot) {
                        tracing::warn!(path = %self.path.display(), "compacting the offsets journal failed: {e}");
                    }
                }
                match outcome {
                    Some(outcome) => return outcome,
                    // We handed the writer role to a compaction before writing our change;
                    // it writes it once it is done.
                    None => queue = self.queue.lock(),
                }
                continue;
            }
            self.written.wait(&mut queue);
        }
    }

    /// The writer loop: writes what is queued, group by group, until the queue is empty (or a
    /// compaction asks for the writer role), then gives up the writer role. Returns the outcome
    /// of `mine` if it was written, and a compaction snapshot when the journal has grown enough
    /// to need one.
    fn drain<'a>(
        &'a self,
        mut queue: MutexGuard<'a, Queue>,
        mine: Option<u64>,
    ) -> (Option<Result<usize>>, Option<Snapshot>) {
        let mut guard = WriterGuard {
            offsets: self,
            in_flight: Vec::new(),
        };
        let mut outcome = None;
        while !queue.handover {
            let group = std::mem::take(&mut queue.pending);
            if group.is_empty() {
                break;
            }
            guard.in_flight.extend(group.iter().map(|q| q.ticket));
            drop(queue);
            let outcomes = self.write_group(group);
            queue = self.queue.lock();
            guard.in_flight.clear();
            for (ticket, result) in outcomes {
                if Some(ticket) == mine {
                    outcome = Some(result);
                } else {
                    queue.finished.insert(ticket, result);
                }
            }
            self.written.notify_all();
        }
        let snapshot = if !queue.compacting && self.needs_compaction() {
            queue.compacting = true;
            Some(self.snapshot())
        } else {
            None
        };
        queue.writing = false;
        self.written.notify_all();
        (outcome, snapshot)
    }

    /// Writes one group with one `write` and applies it to the positions. Returns each
    /// change's outcome.
    fn write_group(&self, group: Vec<Queued>) -> Vec<(u64, Result<usize>)> {
        let mut journal = self.journal.lock();
        if journal.broken {
            let e = broken_journal(&self.path);
            return group
                .iter()
                .map(|q| (q.ticket, Err(clone_error(&e))))
                .collect();
        }
        let file = Arc::clone(&self.file.lock());

        // Deletions are encoded here, for the keys still present at their place in the journal:
        // the positions as of the last write, overlaid with the group's earlier changes.
        let mut deletions: Vec<Vec<u8>> = Vec::new();
        let mut counts: Vec<usize> = Vec::with_capacity(group.len());
        let mut records = 0;
        {
            let has_deletes = group.iter().any(|q| matches!(q.change, Change::Delete(_)));
            let entries = self.entries.read();
            let mut overlay: HashMap<&OffsetKey, bool> = HashMap::new();
            for queued in &group {
                match &queued.change {
                    Change::Put { items, .. } => {
                        if has_deletes {
                            for (k, _) in items {
                                overlay.insert(k, true);
                            }
                        }
                        counts.push(items.len());
                        records += items.len();
                    }
                    Change::Delete(keys) => {
                        let mut buf = Vec::new();
                        let mut n = 0;
                        for k in keys {
                            let present = overlay
                                .get(k)
                                .copied()
                                .unwrap_or_else(|| entries.contains_key(k));
                            if present {
                                encode_record(&mut buf, k, None);
                                overlay.insert(k, false);
                                n += 1;
                            }
                        }
                        deletions.push(buf);
                        counts.push(n);
                        records += n;
                    }
                }
            }
        }
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(group.len());
        let mut deletion = deletions.iter();
        let mut total = 0u64;
        for queued in &group {
            let bytes: &[u8] = match &queued.change {
                Change::Put { records, .. } => records,
                Change::Delete(_) => deletion.next().map_or(&[][..], Vec::as_slice),
            };
            if !bytes.is_empty() {
                total += bytes.len() as u64;
                slices.push(IoSlice::new(bytes));
            }
        }
        if total > 0 {
            if let Err(e) = self.disk.write_all_vectored(&file, &self.path, &mut slices) {
                // Never leave half a record behind a later whole one.
                if let Err(cut) = self.disk.set_len(&file, &self.path, journal.len) {
                    tracing::error!(path = %self.path.display(), "cannot cut back a failed write, refusing commits until a restart: {cut}");
                    journal.broken = true;
                }
                return group
                    .iter()
                    .map(|q| (q.ticket, Err(clone_error(&e))))
                    .collect();
            }
            journal.len += total;
            journal.records += records;
            self.dirty.store(true, Ordering::Release);
        }
        drop(slices);
        let mut entries = self.entries.write();
        let mut outcomes = Vec::with_capacity(group.len());
        for (queued, n) in group.into_iter().zip(counts) {
            match queued.change {
                Change::Put { items, .. } => {
                    for (k, v) in items {
                        entries.insert(k, v);
                    }
                }
                Change::Delete(keys) => {
                    for k in &keys {
                        entries.remove(k);
                    }
                }
            }
            outcomes.push((queued.ticket, Ok(n)));
        }
        outcomes
    }

    /// The journal has grown well past the live entries.
    fn needs_compaction(&self) -> bool {
        let records = self.journal.lock().records;
        records > (4 * self.entries.read().len()).max(self.compact_min_records)
    }

    /// The live positions as records, and where the journal stands. Taken by the holder of the
    /// writer role (or before anyone else can write), so the two agree.
    fn snapshot(&self) -> Snapshot {
        let journal = self.journal.lock();
        let entries = self.entries.read();
        let mut bytes = Vec::new();
        for (k, v) in entries.iter() {
            encode_record(&mut bytes, k, Some(v));
        }
        Snapshot {
            bytes,
            records: entries.len(),
            at_len: journal.len,
            at_records: journal.records,
        }
    }

    /// Rewrites the journal as `snapshot` plus whatever was written after it: write the new
    /// file and sync it (commits go on meanwhile), then, as the writer, copy the records
    /// written since the snapshot, sync, rename it over the journal and sync the folder.
    fn compact(&self, snapshot: Snapshot) -> Result<()> {
        let tmp = self.path.with_file_name(COMPACT_FILE);
        let bulk = self.disk.create(&tmp).and_then(|f| {
            self.disk.write_all(&f, &tmp, &snapshot.bytes)?;
            self.disk.sync_data(&f, &tmp)?;
            Ok(f)
        });
        let result = match bulk {
            Ok(f) => {
                let mut queue = self.queue.lock();
                queue.handover = true;
                while queue.writing {
                    self.written.wait(&mut queue);
                }
                queue.handover = false;
                queue.writing = true;
                drop(queue);
                let result = self.finish_compaction(&snapshot, &f, &tmp);
                let mut queue = self.queue.lock();
                queue.compacting = false;
                // Answer whatever queued up meanwhile, and give up the writer role.
                let _ = self.drain(queue, None);
                result
            }
            Err(e) => {
                self.queue.lock().compacting = false;
                Err(e)
            }
        };
        if result.is_err() && tmp.exists() {
            let _ = self.disk.remove_file(&tmp);
        }
        result
    }

    /// The end of a compaction, run by the holder of the writer role.
    fn finish_compaction(&self, snapshot: &Snapshot, new: &File, tmp: &Path) -> Result<()> {
        let mut journal = self.journal.lock();
        if journal.broken {
            return Err(broken_journal(&self.path));
        }
        let old = Arc::clone(&self.file.lock());
        let tail_len = journal.len - snapshot.at_len;
        if tail_len > 0 {
            let mut tail = vec![0u8; tail_len as usize];
            old.read_exact_at(&mut tail, snapshot.at_len)
                .map_err(|e| StoreError::io(&self.path, e))?;
            self.disk.write_all(new, tmp, &tail)?;
            self.disk.sync_data(new, tmp)?;
        }
        // Opened before the rename, so that once the rename is done the store has a handle on
        // the new journal, whatever fails next.
        let appender = OpenOptions::new()
            .read(true)
            .append(true)
            .open(tmp)
            .map_err(|e| StoreError::io(tmp, e))?;
        self.disk.rename(tmp, &self.path)?;
        *self.file.lock() = Arc::new(appender);
        journal.len = snapshot.bytes.len() as u64 + tail_len;
        journal.records = snapshot.records + (journal.records - snapshot.at_records);
        // Everything in the new file was synced above.
        self.dirty.store(false, Ordering::Release);
        drop(journal);
        match self.path.parent() {
            Some(dir) => self.disk.sync_dir(dir),
            None => Ok(()),
        }
    }

    /// Changes waiting in the queue (for tests that wait until commits are queued).
    #[cfg(test)]
    fn wait_until_queued(&self, n: usize, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut queue = self.queue.lock();
        while queue.pending.len() < n {
            if self.written.wait_until(&mut queue, deadline).timed_out() {
                return queue.pending.len() >= n;
            }
        }
        true
    }
}

/// Releases the writer role if the writer unwinds, failing the changes it was writing, so that
/// no caller waits for ever. Does nothing otherwise.
struct WriterGuard<'a> {
    offsets: &'a ConsumerOffsets,
    in_flight: Vec<u64>,
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        // The unwinding writer may hold the queue's lock itself.
        let Some(mut queue) = self.offsets.queue.try_lock() else {
            return;
        };
        for ticket in self.in_flight.drain(..) {
            queue
                .finished
                .insert(ticket, Err(lost_outcome(&self.offsets.path)));
        }
        queue.writing = false;
        self.offsets.written.notify_all();
    }
}

fn lost_outcome(path: &Path) -> StoreError {
    StoreError::io(
        path,
        io::Error::other("the offsets journal writer stopped before writing this commit"),
    )
}

fn broken_journal(path: &Path) -> StoreError {
    StoreError::io(
        path,
        io::Error::other(
            "the offsets journal stopped taking commits after a write that could not be cut \
             back; restart to recover",
        ),
    )
}

/// Errors are not `Clone` (they hold `io::Error`); a failed write is reported to every commit
/// it covered, with the same kind, OS error code and message.
fn clone_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Io { path, source } => StoreError::Io {
            path: path.clone(),
            source: match source.raw_os_error() {
                Some(code) => io::Error::from_raw_os_error(code),
                None => io::Error::new(source.kind(), source.to_string()),
            },
        },
        other => StoreError::io(PathBuf::new(), io::Error::other(other.to_string())),
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

    // ----- group commit -----

    use crate::disk::{FileHook, FileOp};
    use parking_lot::{Condvar, Mutex};
    use std::time::Duration;

    /// Long enough for anything that should happen to happen; a test that waits this long
    /// has failed.
    const PATIENCE: Duration = Duration::from_secs(30);

    #[derive(Debug, Default)]
    struct GateState {
        writes: usize,
        /// Hold the next write until released.
        hold: bool,
        held: bool,
        released: bool,
        /// Fail the next write with ENOSPC.
        fail: bool,
    }

    /// Counts `Write`s to one file (by name) and can hold or fail the next one.
    #[derive(Debug)]
    struct Gate {
        file: &'static str,
        state: Mutex<GateState>,
        cv: Condvar,
    }

    impl Gate {
        fn new(file: &'static str) -> Arc<Gate> {
            Arc::new(Gate {
                file,
                state: Mutex::new(GateState::default()),
                cv: Condvar::new(),
            })
        }
        fn hold_next(&self) {
            self.state.lock().hold = true;
        }
        fn fail_next(&self) {
            self.state.lock().fail = true;
        }
        fn wait_held(&self) {
            let mut s = self.state.lock();
            while !s.held {
                assert!(
                    !self.cv.wait_for(&mut s, PATIENCE).timed_out(),
                    "no write to {} arrived to be held",
                    self.file
                );
            }
        }
        fn release(&self) {
            let mut s = self.state.lock();
            s.released = true;
            self.cv.notify_all();
        }
        fn writes(&self) -> usize {
            self.state.lock().writes
        }
    }

    impl FileHook for Gate {
        fn before(&self, op: FileOp, path: &Path) -> io::Result<()> {
            if op != FileOp::Write || path.file_name().is_none_or(|n| n != self.file) {
                return Ok(());
            }
            let mut s = self.state.lock();
            s.writes += 1;
            if std::mem::take(&mut s.fail) {
                return Err(io::Error::from_raw_os_error(28));
            }
            if std::mem::take(&mut s.hold) {
                s.held = true;
                self.cv.notify_all();
                while !s.released {
                    // Bounded, so a broken test fails instead of hanging.
                    if self.cv.wait_for(&mut s, PATIENCE).timed_out() {
                        break;
                    }
                }
                s.held = false;
                s.released = false;
            }
            Ok(())
        }
    }

    fn open_gated(dir: &Path, gate: &Arc<Gate>) -> Arc<ConsumerOffsets> {
        let hook: Arc<dyn FileHook> = gate.clone();
        Arc::new(ConsumerOffsets::open_with(dir, Disk::with_hook(hook)).unwrap())
    }

    /// Starts `commit(key(owner, p), val(v))` on its own thread; the receiver gets its result.
    fn commit_on_thread(
        s: &Arc<ConsumerOffsets>,
        owner: &str,
        p: u32,
        v: u64,
    ) -> std::sync::mpsc::Receiver<Result<()>> {
        let (tx, rx) = std::sync::mpsc::channel();
        let s = Arc::clone(s);
        let k = key(owner, p);
        std::thread::spawn(move || {
            let _ = tx.send(s.commit(k, val(v)));
        });
        rx
    }

    #[test]
    fn concurrent_commits_go_out_in_one_write_and_readers_do_not_wait() {
        const N: usize = 8;
        let dir = tempfile::tempdir().unwrap();
        let gate = Gate::new("journal");
        let s = open_gated(dir.path(), &gate);
        s.commit(key("g", 100), val(1)).unwrap();
        assert_eq!(gate.writes(), 1);

        gate.hold_next();
        let first = commit_on_thread(&s, "g", 0, 10);
        gate.wait_held();
        let rest: Vec<_> = (1..=N as u32)
            .map(|p| commit_on_thread(&s, "g", p, 10 + u64::from(p)))
            .collect();
        assert!(
            s.wait_until_queued(N, PATIENCE),
            "{N} commits did not queue behind the held write"
        );
        // Readers answer while a write is in progress, from the positions before it.
        assert_eq!(s.get(&key("g", 100)), Some(val(1)));
        assert_eq!(s.get(&key("g", 0)), None);
        assert_eq!(s.list(|_| true).len(), 1);
        assert!(!s.any(|k| k.partition == 3));

        gate.release();
        first.recv_timeout(PATIENCE).unwrap().unwrap();
        for rx in rest {
            rx.recv_timeout(PATIENCE).unwrap().unwrap();
        }
        assert_eq!(
            gate.writes(),
            3,
            "the {N} queued commits should have gone out in one write"
        );
        for p in 0..=N as u32 {
            assert_eq!(s.get(&key("g", p)), Some(val(10 + u64::from(p))));
        }
        drop(s);
        let s = ConsumerOffsets::open(dir.path()).unwrap();
        assert_eq!(s.list(|_| true).len(), N + 2);
        assert_eq!(s.get(&key("g", N as u32)), Some(val(10 + N as u64)));
    }

    #[test]
    fn a_failed_write_fails_exactly_its_group_and_changes_nothing() {
        const N: usize = 5;
        let dir = tempfile::tempdir().unwrap();
        let gate = Gate::new("journal");
        let s = open_gated(dir.path(), &gate);
        for p in 0..=N as u32 {
            s.commit(key("g", p), val(1)).unwrap();
        }
        let journal = dir.path().join("journal");
        let len_before = fs::metadata(&journal).unwrap().len();

        gate.hold_next();
        let first = commit_on_thread(&s, "g", 0, 2);
        gate.wait_held();
        let rest: Vec<_> = (1..=N as u32)
            .map(|p| commit_on_thread(&s, "g", p, 3))
            .collect();
        assert!(s.wait_until_queued(N, PATIENCE), "commits did not queue");
        gate.fail_next();
        gate.release();
        first.recv_timeout(PATIENCE).unwrap().unwrap();
        for rx in rest {
            let err = rx.recv_timeout(PATIENCE).unwrap().unwrap_err();
            match err {
                StoreError::Io { source, .. } => assert_eq!(source.raw_os_error(), Some(28)),
                other => panic!("unexpected error {other}"),
            }
        }
        assert_eq!(gate.writes(), N + 3, "the failed write was not reached");
        assert_eq!(s.get(&key("g", 0)), Some(val(2)));
        for p in 1..=N as u32 {
            assert_eq!(s.get(&key("g", p)), Some(val(1)), "partition {p}");
        }
        let one_record = (len_before) / (N as u64 + 1);
        assert_eq!(
            fs::metadata(&journal).unwrap().len(),
            len_before + one_record,
            "the journal holds more than the commits that succeeded"
        );
        // Later commits work, and the journal replays to what was acknowledged.
        s.commit(key("g", 1), val(4)).unwrap();
        drop(s);
        let s = ConsumerOffsets::open(dir.path()).unwrap();
        assert_eq!(s.get(&key("g", 0)), Some(val(2)));
        assert_eq!(s.get(&key("g", 1)), Some(val(4)));
        assert_eq!(s.get(&key("g", 2)), Some(val(1)));
    }

    #[test]
    fn queued_deletions_of_one_key_delete_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let gate = Gate::new("journal");
        let s = open_gated(dir.path(), &gate);
        s.commit(key("g", 1), val(1)).unwrap();
        s.commit(key("g", 2), val(1)).unwrap();

        gate.hold_next();
        let first = commit_on_thread(&s, "g", 0, 1);
        gate.wait_held();
        let deleters: Vec<_> = (0..3)
            .map(|_| {
                let s = Arc::clone(&s);
                let (tx, rx) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    let _ = tx.send(s.delete(&key("g", 1)));
                });
                rx
            })
            .collect();
        // A commit queued among the deletions, for a key they do not name.
        assert!(s.wait_until_queued(3, PATIENCE), "deletions did not queue");
        let put = commit_on_thread(&s, "g", 2, 9);
        assert!(s.wait_until_queued(4, PATIENCE), "commit did not queue");
        gate.release();
        first.recv_timeout(PATIENCE).unwrap().unwrap();
        put.recv_timeout(PATIENCE).unwrap().unwrap();
        let deleted: usize = deleters
            .into_iter()
            .map(|rx| usize::from(rx.recv_timeout(PATIENCE).unwrap().unwrap()))
            .sum();
        assert_eq!(deleted, 1, "one deletion, and only one, found the key");
        assert_eq!(gate.writes(), 4);
        assert_eq!(s.get(&key("g", 1)), None);
        assert_eq!(s.get(&key("g", 2)), Some(val(9)));
        drop(s);
        let s = ConsumerOffsets::open(dir.path()).unwrap();
        assert_eq!(s.get(&key("g", 1)), None);
        assert_eq!(s.get(&key("g", 2)), Some(val(9)));
        assert_eq!(s.get(&key("g", 0)), Some(val(1)));
    }

    #[test]
    fn commits_go_on_while_compaction_writes_and_are_kept_by_it() {
        let dir = tempfile::tempdir().unwrap();
        let gate = Gate::new(COMPACT_FILE);
        let mut s = ConsumerOffsets::open_with(dir.path(), Disk::with_hook(gate.clone())).unwrap();
        s.compact_min_records = 50;
        let s = Arc::new(s);
        // 3 live keys; the 51st record triggers compaction, whose bulk write is held.
        for i in 0..50u64 {
            s.commit(key("g", (i % 3) as u32), val(i)).unwrap();
        }
        gate.hold_next();
        let trigger = commit_on_thread(&s, "g", 0, 1000);
        gate.wait_held();
        // The triggering commit is already answered to readers; others commit freely.
        assert_eq!(s.get(&key("g", 0)), Some(val(1000)));
        for i in 0..10u64 {
            let rx = commit_on_thread(&s, "h", (i % 2) as u32, 2000 + i);
            rx.recv_timeout(PATIENCE)
                .expect("a commit waited for the compaction's bulk write")
                .unwrap();
        }
        gate.release();
        trigger.recv_timeout(PATIENCE).unwrap().unwrap();
        assert!(
            gate.writes() >= 2,
            "compaction did not copy the records written during it"
        );
        assert!(!dir.path().join(COMPACT_FILE).exists());
        let len = fs::metadata(dir.path().join("journal")).unwrap().len();
        let one = {
            let mut b = Vec::new();
            encode_record(&mut b, &key("g", 0), Some(&val(1000)));
            b.len() as u64
        };
        assert!(len <= 16 * one, "journal of {len} bytes was not compacted");
        // Commits after the compaction go to the new journal.
        s.commit(key("g", 1), val(3000)).unwrap();
        drop(s);
        let s = ConsumerOffsets::open(dir.path()).unwrap();
        assert_eq!(s.get(&key("g", 0)), Some(val(1000)));
        assert_eq!(s.get(&key("g", 1)), Some(val(3000)));
        assert_eq!(s.get(&key("g", 2)), Some(val(47)));
        assert_eq!(s.get(&key("h", 0)), Some(val(2008)));
        assert_eq!(s.get(&key("h", 1)), Some(val(2009)));
    }

    #[test]
    fn many_committers_through_repeated_compactions_lose_nothing() {
        const THREADS: u32 = 6;
        const COMMITS: u64 = 400;
        let dir = tempfile::tempdir().unwrap();
        let mut s = ConsumerOffsets::open(dir.path()).unwrap();
        s.compact_min_records = 150;
        let s = Arc::new(s);
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    for i in 0..COMMITS {
                        s.commit(key("g", t * 2 + (i % 2) as u32), val(i)).unwrap();
                        if i % 50 == 49 {
                            // A key that comes and goes.
                            s.commit(key("tmp", t), val(i)).unwrap();
                            assert!(s.delete(&key("tmp", t)).unwrap());
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let live = s.list(|_| true);
        assert_eq!(live.len(), 2 * THREADS as usize);
        for t in 0..THREADS {
            assert_eq!(s.get(&key("g", t * 2)), Some(val(COMMITS - 2)));
            assert_eq!(s.get(&key("g", t * 2 + 1)), Some(val(COMMITS - 1)));
        }
        let records = s.journal.lock().records;
        assert!(
            records < THREADS as usize * COMMITS as usize,
            "the journal was never compacted ({records} records)"
        );
        drop(s);
        let s = ConsumerOffsets::open(dir.path()).unwrap();
        assert_eq!(s.list(|_| true), live);
    }
}
