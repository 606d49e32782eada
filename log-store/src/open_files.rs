//! The store's open segment files: one bounded cache of file descriptors shared by every
//! partition, and the process's open-files limit it must fit under.
//!
//! A [`SegmentFile`] names one `.log` or `.index` file of a segment and holds it open only while
//! the cache lets it: it is opened (through the store's [`Disk`]) when it is read, written or
//! synced, and closed when the cache needs its place. [`OpenFiles`] keeps at most `capacity`
//! files open at once and picks what to close with the CLOCK rule: every use sets a file's
//! `used` bit; the hand passes over the files, clearing set bits, and closes the first one found
//! unused since its last pass. A data directory with any number of partitions therefore holds
//! at most `capacity` segment descriptors (plus the few a read, a write or a sync holds for the
//! length of the call). When an open or a create finds no descriptor left (EMFILE, ENFILE),
//! the cache closes one of its files and the call tries once more, so a process short of
//! descriptors (sockets took them) costs reopenings, not failed appends.
//!
//! Closing never weakens what a sync promises. Each file knows whether it was written since its
//! last `fdatasync` (`dirty`); a dirty file is synced before the cache closes it, and if that
//! sync fails the error is kept and returned by the file's next [`SegmentFile::sync`], so an
//! `fsync` append is never acknowledged on a later sync that cannot vouch for the earlier
//! writes. A file written through a handle the cache has already let go of stays dirty, and its
//! next sync opens it again for the `fdatasync`. Writers append with `O_APPEND` and keep the
//! write position in memory, so a writer whose file was closed just reopens it.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::disk::Disk;
use crate::error::{Result, StoreError};

/// How a segment file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// A sealed segment's log: positional reads only.
    Read,
    /// The active segment's log: positional reads and appends.
    ReadAppend,
    /// The active segment's index: appends only.
    Append,
}

impl Access {
    fn options(self) -> OpenOptions {
        let mut o = OpenOptions::new();
        match self {
            Access::Read => o.read(true),
            Access::ReadAppend => o.read(true).append(true),
            Access::Append => o.append(true),
        };
        o
    }
}

/// The bounded set of open segment files of one store.
pub(crate) struct OpenFiles {
    disk: Disk,
    /// The store's figures, here because every partition and segment file holds this.
    metrics: Arc<crate::metrics::StoreMetrics>,
    capacity: usize,
    ring: Mutex<Ring>,
}

/// The CLOCK: one place per open file, and the hand.
struct Ring {
    places: Vec<Weak<SegmentFile>>,
    hand: usize,
}

impl std::fmt::Debug for OpenFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenFiles")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl OpenFiles {
    /// A cache holding at most `capacity` (at least 1) files open.
    pub fn new(disk: Disk, capacity: usize) -> Arc<OpenFiles> {
        let capacity = capacity.max(1);
        Arc::new(OpenFiles {
            disk,
            metrics: Arc::default(),
            capacity,
            ring: Mutex::new(Ring {
                places: Vec::with_capacity(capacity.min(4096)),
                hand: 0,
            }),
        })
    }

    pub fn disk(&self) -> &Disk {
        &self.disk
    }

    pub fn metrics(&self) -> &Arc<crate::metrics::StoreMetrics> {
        &self.metrics
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Runs `open` (an open or create of a file); when it fails because the process or the
    /// system has no descriptor left (EMFILE, ENFILE), closes one cached file other than
    /// `except` and runs it once more. The cache is the one holder of descriptors the store can
    /// give back on demand, so running out costs one file's reopening, not a failed call.
    pub(crate) fn retry_out_of_descriptors<T>(
        &self,
        except: Option<&SegmentFile>,
        mut open: impl FnMut() -> Result<T>,
    ) -> Result<T> {
        match open() {
            Err(e) if out_of_descriptors(&e) && self.evict_one(except) => open(),
            other => other,
        }
    }

    /// Closes one open cached file other than `except`, chosen by the CLOCK rule, and frees its
    /// place. False when the cache holds no other open file.
    fn evict_one(&self, except: Option<&SegmentFile>) -> bool {
        let victim = {
            let mut ring = self.ring.lock();
            let n = ring.places.len();
            let mut victim = None;
            // As in `admit`: two passes clear every bit, the third takes what it finds.
            for step in 0..3 * n {
                let i = ring.hand % n;
                ring.hand = (i + 1) % n;
                let Some(other) = ring.places[i].upgrade() else {
                    continue;
                };
                // Never a file's handle lock under the ring's: `admit` takes them the other way.
                if except.is_some_and(|e| std::ptr::eq(e, Arc::as_ptr(&other))) {
                    continue;
                }
                if step < 2 * n && other.used.swap(false, Ordering::AcqRel) {
                    continue;
                }
                ring.places[i] = Weak::new();
                victim = Some(other);
                break;
            }
            victim
        };
        match victim {
            Some(other) => {
                other.close();
                true
            }
            None => false,
        }
    }

    /// Gives `file` (just opened, not in the ring) a place; returns the file that must be
    /// closed to make room, if any. Called with `file`'s handle lock held, never with another.
    fn admit(&self, file: &Arc<SegmentFile>) -> Option<Arc<SegmentFile>> {
        let mut ring = self.ring.lock();
        if ring.places.len() < self.capacity {
            ring.places.push(Arc::downgrade(file));
            return None;
        }
        // Two passes clear every bit; a third would only meet bits set again since, so after two
        // the hand takes what it finds.
        for step in 0..=2 * self.capacity {
            let i = ring.hand;
            ring.hand = (i + 1) % self.capacity;
            match ring.places[i].upgrade() {
                None => {
                    ring.places[i] = Arc::downgrade(file);
                    return None;
                }
                Some(other)
                    if step < 2 * self.capacity && other.used.swap(false, Ordering::AcqRel) => {}
                Some(other) => {
                    ring.places[i] = Arc::downgrade(file);
                    return Some(other);
                }
            }
        }
        None
    }
}

/// An open descriptor of a segment file. Dropping the last clone closes it, and the store's
/// [`Disk`] hears of it ([`crate::FileOp::Close`]).
#[derive(Debug)]
pub(crate) struct Handle {
    file: File,
    path: Arc<Path>,
    disk: Disk,
}

impl Deref for Handle {
    type Target = File;
    fn deref(&self) -> &File {
        &self.file
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.disk.closed(&self.path);
    }
}

/// One segment file, open only while the store's [`OpenFiles`] keeps it so.
pub(crate) struct SegmentFile {
    path: Arc<Path>,
    access: Access,
    files: Arc<OpenFiles>,
    /// The open descriptor; `Some` exactly while the file has a place in the ring.
    handle: Mutex<Option<Arc<Handle>>>,
    /// Used since the hand last passed.
    used: AtomicBool,
    /// Written since the last `fdatasync` that began after the write.
    dirty: AtomicBool,
    /// Held across every `fdatasync` of this file; keeps the error of a sync made while closing
    /// the file (nobody was there to hear it) for the next [`SegmentFile::sync`].
    sync: Mutex<Option<StoreError>>,
}

impl std::fmt::Debug for SegmentFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentFile")
            .field("path", &self.path)
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

impl SegmentFile {
    /// A segment file that exists on disk, not yet opened.
    pub fn new(files: &Arc<OpenFiles>, path: PathBuf, access: Access) -> Arc<SegmentFile> {
        Arc::new(SegmentFile {
            path: path.into(),
            access,
            files: Arc::clone(files),
            handle: Mutex::new(None),
            used: AtomicBool::new(false),
            dirty: AtomicBool::new(false),
            sync: Mutex::new(None),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open_file(&self) -> Result<Handle> {
        let disk = self.files.disk();
        let file = disk.open(&self.path, &self.access.options())?;
        Ok(Handle {
            file,
            path: Arc::clone(&self.path),
            disk: disk.clone(),
        })
    }

    /// The open descriptor, opening the file (and closing another) if it is not open. When no
    /// descriptor is left, another cached file is closed and the open tried once more.
    pub fn handle(self: &Arc<Self>) -> Result<Arc<Handle>> {
        // Our own handle lock is not held while another file is closed: two files making room
        // for each other at once must not wait on each other's locks.
        match self.try_handle() {
            Err(e) if out_of_descriptors(&e) && self.files.evict_one(Some(self)) => {
                self.try_handle()
            }
            other => other,
        }
    }

    fn try_handle(self: &Arc<Self>) -> Result<Arc<Handle>> {
        let (handle, evict) = {
            let mut slot = self.handle.lock();
            if let Some(h) = slot.as_ref() {
                self.used.store(true, Ordering::Release);
                return Ok(Arc::clone(h));
            }
            // A file comes in unused: one read of a cold segment does not push out a file used
            // again and again.
            self.used.store(false, Ordering::Release);
            let h = Arc::new(self.open_file()?);
            *slot = Some(Arc::clone(&h));
            (h, self.files.admit(self))
        };
        if let Some(other) = evict {
            other.close();
        }
        Ok(handle)
    }

    /// The descriptor if the file is open now; never opens it (for callers that must not block).
    pub fn if_open(&self) -> Option<Arc<Handle>> {
        let slot = self.handle.lock();
        let h = slot.as_ref().map(Arc::clone);
        if h.is_some() {
            self.used.store(true, Ordering::Release);
        }
        h
    }

    /// Records that a write (or a cut-back) reached the file: its next sync must `fdatasync`.
    pub fn written(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    /// `fdatasync` if anything was written since the last one; returns the error of a sync made
    /// while the cache closed the file, if one failed since. Opens the file for the sync when
    /// the cache has closed it (without taking a place: the handle is let go at once).
    pub fn sync(&self) -> Result<()> {
        self.sync_with(None)
    }

    /// [`SegmentFile::sync`], with `held` (a descriptor of this file the caller still holds,
    /// say the one it just wrote through) doing the `fdatasync` when the cache has closed the
    /// file meanwhile: a sync that covers a write just made never needs a new descriptor.
    pub fn sync_with(&self, held: Option<&Handle>) -> Result<()> {
        let mut kept = self.sync.lock();
        if let Some(e) = kept.take() {
            return Err(e);
        }
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let disk = self.files.disk();
        let open = self.handle.lock().as_ref().map(Arc::clone);
        let timed = |file: &File| {
            let started = std::time::Instant::now();
            let result = disk.sync_data(file, &self.path);
            self.files.metrics().fsync(started.elapsed());
            result
        };
        let result = match (open, held) {
            (Some(h), _) => timed(&h),
            (None, Some(h)) => timed(h),
            // No other file is closed to make room here: that would take its sync lock while
            // this one's is held, and two syncs could then wait on each other.
            (None, None) => match self.open_file() {
                Ok(h) => timed(&h),
                // Deleted (retention, purge) since it was written: nothing left to make durable.
                Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                    Ok(())
                }
                Err(e) => Err(e),
            },
        };
        if result.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        result
    }

    /// Lets the descriptor go (the cache needs its place), syncing first if the file is dirty.
    fn close(&self) {
        let Some(h) = self.handle.lock().take() else {
            return;
        };
        let mut kept = self.sync.lock();
        if self.dirty.swap(false, Ordering::AcqRel) {
            let started = std::time::Instant::now();
            let synced = self.files.disk().sync_data(&h, &self.path);
            self.files.metrics().fsync(started.elapsed());
            if let Err(e) = synced {
                tracing::warn!(path = %self.path.display(), "fdatasync before closing failed: {e}");
                self.dirty.store(true, Ordering::Release);
                *kept = Some(e);
            }
        }
        drop(kept);
        drop(h);
    }
}

/// True when `e` says the process (EMFILE) or the whole system (ENFILE) has no descriptor left.
pub(crate) fn out_of_descriptors(e: &StoreError) -> bool {
    use rustix::io::Errno;
    match e {
        StoreError::Io { source, .. } => matches!(
            Errno::from_io_error(source),
            Some(Errno::MFILE | Errno::NFILE)
        ),
        _ => false,
    }
}

/// The process's limit on open files (`RLIMIT_NOFILE`); `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFilesLimit {
    /// The soft limit before [`raise_open_files_limit`] changed it.
    pub soft_before: Option<u64>,
    /// The soft limit now: what the process may open.
    pub soft: Option<u64>,
    /// The hard limit: what the soft one may be raised to.
    pub hard: Option<u64>,
}

/// The process's open-files limit as it is.
pub fn open_files_limit() -> OpenFilesLimit {
    use rustix::process::{getrlimit, Resource};
    let now = getrlimit(Resource::Nofile);
    OpenFilesLimit {
        soft_before: now.current,
        soft: now.current,
        hard: now.maximum,
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (a server should use what the operator
/// allowed). An unlimited hard limit is not a value the kernel accepts for open files, so the
/// soft limit then goes to the kernel's own ceiling (`/proc/sys/fs/nr_open`).
pub fn raise_open_files_limit() -> io::Result<OpenFilesLimit> {
    use rustix::process::{setrlimit, Resource, Rlimit};
    let before = open_files_limit();
    let target = match before.hard {
        Some(hard) => Some(hard),
        None => std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok()),
    };
    let Some(target) = target else {
        return Ok(before);
    };
    if before.soft.is_some_and(|soft| soft >= target) || before.soft.is_none() {
        return Ok(before);
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(target),
            maximum: before.hard,
        },
    )?;
    let after = open_files_limit();
    Ok(OpenFilesLimit {
        soft_before: before.soft,
        ..after
    })
}

/// The cache capacity to use: `wanted`, but at most half the soft open-files limit, so that
/// sockets, the offsets journal and recovery's own opens keep the other half.
pub(crate) fn capacity_within_limit(wanted: usize) -> usize {
    let Some(soft) = open_files_limit().soft else {
        return wanted.max(1);
    };
    let half = usize::try_from(soft / 2).unwrap_or(usize::MAX).max(1);
    if wanted > half {
        tracing::warn!(
            max_open_files = wanted,
            soft_limit = soft,
            "max_open_files is more than half the open-files limit; keeping {half} segment files open"
        );
        half
    } else {
        wanted.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path, n: usize, cap: usize) -> (Arc<OpenFiles>, Vec<Arc<SegmentFile>>) {
        let cache = OpenFiles::new(Disk::real(), cap);
        let fs = (0..n)
            .map(|i| {
                let p = dir.join(format!("{i}.log"));
                std::fs::write(&p, b"x").unwrap();
                SegmentFile::new(&cache, p, Access::ReadAppend)
            })
            .collect();
        (cache, fs)
    }

    fn open_count(fs: &[Arc<SegmentFile>]) -> usize {
        fs.iter().filter(|f| f.handle.lock().is_some()).count()
    }

    #[test]
    fn never_more_open_than_capacity_and_recently_used_stay() {
        let dir = tempfile::tempdir().unwrap();
        let (_cache, fs) = files(dir.path(), 20, 4);
        for f in &fs {
            f.handle().unwrap();
            assert!(open_count(&fs) <= 4);
        }
        // The file used over and over is never the one closed.
        for f in &fs[..10] {
            fs[19].handle().unwrap();
            f.handle().unwrap();
            assert!(fs[19].if_open().is_some());
            assert!(open_count(&fs) <= 4);
        }
    }

    #[test]
    fn a_dropped_file_frees_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let (_cache, mut fs) = files(dir.path(), 3, 2);
        fs[0].handle().unwrap();
        fs[1].handle().unwrap();
        fs.remove(0);
        fs[1].handle().unwrap();
        // The place of the dropped file went to the new one: nothing else was closed.
        assert!(fs[0].if_open().is_some());
        assert!(fs[1].if_open().is_some());
    }

    #[test]
    fn a_dirty_file_is_synced_before_it_is_closed_and_clean_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let (_cache, fs) = files(dir.path(), 2, 1);
        fs[0].handle().unwrap();
        fs[0].written();
        fs[1].handle().unwrap();
        assert!(fs[0].if_open().is_none());
        assert!(
            !fs[0].dirty.load(Ordering::Acquire),
            "closed without a sync"
        );
        fs[1].handle().unwrap();
        fs[0].sync().unwrap();
    }
}
