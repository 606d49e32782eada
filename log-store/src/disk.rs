//! The store's door to the file system, and the seam where tests put faults.
//!
//! Every operation of the store that changes what is on disk (creating a file or folder,
//! writing, truncating, `fdatasync`, syncing a folder, renaming, removing), and every opening and
//! closing of a segment file, goes through a [`Disk`]. In production a `Disk` holds no hook and each operation costs one branch more than
//! the bare system call. Tests give it a [`FileHook`] that watches every operation and may fail
//! any of them, which drives the store's failure paths (a full disk, a failed `fdatasync`) and
//! lets a test keep its own picture of what would survive a power loss.
//!
//! Reads, and reading whole small files (an index on recovery, a durable document), do not go
//! through the seam.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::path::Path;
use std::sync::Arc;

use crate::error::{Result, StoreError};

/// A file operation of the store, as the fault seam sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileOp {
    /// A new (or truncated-to-empty) file; or, for [`Disk::create_dir_all`], a folder and the
    /// parents it lacks (`path` is then the deepest folder).
    Create,
    /// One whole `write_all` (however many system calls it takes).
    Write,
    /// `set_len`: cutting a file back (or extending it).
    Truncate,
    /// `fdatasync` of a file.
    SyncData,
    /// `fsync` of a folder, which makes new, renamed and removed names in it durable.
    SyncDir,
    /// A rename; `path` is the source and the destination comes with `after`.
    Rename,
    /// Removing a file, or (for [`Disk::remove_dir_all`]) a folder with everything in it.
    Remove,
    /// Opening an existing segment file ([`Disk::open`]); a hook may fail it (say with EMFILE).
    Open,
    /// Reserving disk blocks ahead of a log's end ([`Disk::reserve`]); a failure is never an
    /// append's error.
    Reserve,
    /// A segment file's descriptor was closed. Reported only to [`FileHook::after`]: a close
    /// cannot be refused.
    Close,
}

/// Watches (and may fail) the store's file operations. Tests implement it; production has none.
pub trait FileHook: Send + Sync + std::fmt::Debug {
    /// Called before `op` on `path` (for Rename, `path` is the source). An `Err` makes the
    /// operation fail with that error without doing it. May block (it runs on blocking threads).
    fn before(&self, op: FileOp, path: &Path) -> io::Result<()> {
        let _ = (op, path);
        Ok(())
    }
    /// Called after `op` succeeded; `to` is the destination of a Rename.
    fn after(&self, op: FileOp, path: &Path, to: Option<&Path>) {
        let _ = (op, path, to);
    }
}

/// The store's door to the file system: every create, write, truncate, fdatasync, directory
/// sync, rename and remove of the store goes through it.
///
/// Errors name the path they happened on ([`StoreError::Io`]); an error returned by a hook is
/// reported exactly like the same error from the kernel.
#[derive(Clone, Default)]
pub struct Disk {
    hook: Option<Arc<dyn FileHook>>,
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disk")
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

impl PartialEq for Disk {
    fn eq(&self, other: &Disk) -> bool {
        match (&self.hook, &other.hook) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Disk {}

impl Disk {
    /// The file system as it is, with no hook.
    pub fn real() -> Disk {
        Disk { hook: None }
    }

    /// The file system with `hook` watching every operation.
    pub fn with_hook(hook: Arc<dyn FileHook>) -> Disk {
        Disk { hook: Some(hook) }
    }

    /// Runs `f` as `op` on `path`: without a hook just `f`, with one `before`, `f`, `after`.
    #[inline]
    fn run<T>(
        &self,
        op: FileOp,
        path: &Path,
        to: Option<&Path>,
        f: impl FnOnce() -> io::Result<T>,
    ) -> Result<T> {
        let result = match &self.hook {
            None => f(),
            Some(hook) => hook.before(op, path).and_then(|()| {
                let value = f()?;
                hook.after(op, path, to);
                Ok(value)
            }),
        };
        result.map_err(|e| StoreError::io(to.unwrap_or(path), e))
    }

    /// Creates `path` empty (truncating a file already there) and opens it for writing.
    pub fn create(&self, path: &Path) -> Result<File> {
        self.run(FileOp::Create, path, None, || File::create(path))
    }

    /// Opens the existing file `path` with `options` (never creating it).
    pub fn open(&self, path: &Path, options: &OpenOptions) -> Result<File> {
        self.run(FileOp::Open, path, None, || options.open(path))
    }

    /// Reserves the disk blocks of `len` bytes at `offset` of `file` without changing its size
    /// (`fallocate(FALLOC_FL_KEEP_SIZE)`), so later writes there need no block allocation.
    pub fn reserve(&self, file: &File, path: &Path, offset: u64, len: u64) -> Result<()> {
        self.run(FileOp::Reserve, path, None, || {
            rustix::fs::fallocate(file, rustix::fs::FallocateFlags::KEEP_SIZE, offset, len)
                .map_err(io::Error::from)
        })
    }

    /// Tells the hook that the store closed its descriptor of `path`.
    pub(crate) fn closed(&self, path: &Path) {
        if let Some(hook) = &self.hook {
            hook.after(FileOp::Close, path, None);
        }
    }

    /// Creates `path` for appending if it does not exist; returns whether it did not.
    pub fn create_if_missing(&self, path: &Path) -> Result<bool> {
        match fs::symlink_metadata(path) {
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(path, e)),
        }
        self.run(FileOp::Create, path, None, || {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map(drop)
        })?;
        Ok(true)
    }

    /// `fs::create_dir_all`, seen by the hook as one `Create` of the deepest folder. Nothing
    /// happens (and the hook sees nothing) when the folder exists.
    pub fn create_dir_all(&self, dir: &Path) -> Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        self.run(FileOp::Create, dir, None, || fs::create_dir_all(dir))
    }

    /// Writes all of `buf` to `file` (whose path is `path`).
    pub fn write_all(&self, file: &File, path: &Path, buf: &[u8]) -> Result<()> {
        self.run(FileOp::Write, path, None, || {
            let mut file = file;
            file.write_all(buf)
        })
    }

    /// Writes all of `slices` to `file` with vectored writes; `slices` is consumed.
    pub fn write_all_vectored(
        &self,
        file: &File,
        path: &Path,
        slices: &mut [IoSlice<'_>],
    ) -> Result<()> {
        self.run(FileOp::Write, path, None, || {
            write_all_vectored(file, slices)
        })
    }

    /// `set_len`: cuts `file` back to `len` bytes.
    pub fn set_len(&self, file: &File, path: &Path, len: u64) -> Result<()> {
        self.run(FileOp::Truncate, path, None, || file.set_len(len))
    }

    /// `fdatasync` of `file`: its data, and the size needed to read it back, reach the disk.
    pub fn sync_data(&self, file: &File, path: &Path) -> Result<()> {
        self.run(FileOp::SyncData, path, None, || file.sync_data())
    }

    /// `fsync` of the folder `dir`: new, renamed and removed names in it become durable.
    pub fn sync_dir(&self, dir: &Path) -> Result<()> {
        self.run(FileOp::SyncDir, dir, None, || {
            File::open(dir).and_then(|d| d.sync_all())
        })
    }

    /// Renames `from` to `to` (replacing `to` if it exists).
    pub fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.run(FileOp::Rename, from, Some(to), || fs::rename(from, to))
    }

    /// Removes the file `path`; `Ok(false)` when there was none.
    pub fn remove_file(&self, path: &Path) -> Result<bool> {
        self.run(FileOp::Remove, path, None, || match fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        })
    }

    /// Removes the folder `dir` with everything in it; `Ok(false)` when there was none.
    pub fn remove_dir_all(&self, dir: &Path) -> Result<bool> {
        self.run(FileOp::Remove, dir, None, || {
            match fs::remove_dir_all(dir) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            }
        })
    }

    /// Replaces `path` with `contents` atomically and durably: writes `<path>.tmp`, syncs it,
    /// renames it over `path` and syncs the folder. The file carries a magic, its length and a
    /// CRC-32C; read it back with [`crate::read_durable`].
    pub fn write_durable(&self, path: &Path, contents: &[u8]) -> Result<()> {
        crate::durable_file::write_durable_with(self, path, contents)
    }

    /// Syncs the folder `dir` and up to `levels` of its ancestors, innermost first, so that a
    /// folder path just made by [`Disk::create_dir_all`] survives power loss.
    pub(crate) fn sync_dir_and_ancestors(&self, dir: &Path, levels: usize) -> Result<()> {
        for d in dir.ancestors().take(levels + 1) {
            if d.as_os_str().is_empty() {
                break;
            }
            self.sync_dir(d)?;
        }
        Ok(())
    }
}

fn write_all_vectored(mut file: &File, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
