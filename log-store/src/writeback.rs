//! Steady writeback of the active segment's log in `os` mode (RocksDB's `bytes_per_sync`).
//!
//! `os`-mode data reaches the disk through the background `fdatasync` every `fsync_interval`.
//! Left alone, a second's worth of appends piles up as dirty pages and that one `fdatasync` has
//! to write all of it, stalling appends behind it (the 50-470 ms p99.9 spikes measured in
//! `BENCHMARKS.md`). Here each `writeback_bytes` stride of the log, once written, is handed to
//! one writeback thread per process, which has the kernel start writing it
//! (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), so the periodic `fdatasync` finds little left to
//! do. The call is off the writer's thread because it blocks whenever the device's queue is
//! full (a first version that made it, and waited for older ranges, in the writer measured a
//! worse p99.9: the writer then runs at the disk's pace instead of the page cache's).
//!
//! This is smoothing, never a durability promise: `sync_file_range` writes no metadata and
//! flushes no device cache. The durability of `os` mode stays the periodic `fdatasync` and the
//! syncs on roll, close and shutdown. Nothing here can fail an append: a range the thread has no
//! room for is left to the next one (or the `fdatasync`), and a call the kernel refuses (a file
//! system without it) is counted.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, OnceLock};

use crate::open_files::Handle;

/// Strides end on a page boundary: a partly written last page would be written out now and
/// dirtied again by the next append.
const PAGE: u64 = 4096;

/// Ranges waiting for the writeback thread, over all partitions. Each holds its log's
/// descriptor until its call is made; with the default stride this is 16 MiB of writes queued.
const QUEUE: usize = 16;

/// The writeback state of one active segment log: how far writeback was started. Owned by the
/// segment's writer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Writeback {
    /// Writeback was handed off for every byte below this.
    started_to: u64,
    /// What was done, for tests and the operator.
    pub stats: WritebackStats,
}

/// Counts of the writeback hand-offs of one segment log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WritebackStats {
    /// Ranges handed to the writeback thread.
    pub ranges: u64,
    /// Bytes in them.
    pub bytes: u64,
    /// Times the thread's queue was full: the range waits for the next stride.
    pub deferred: u64,
}

/// Whole-process counts of the writeback thread's calls.
#[derive(Debug)]
pub(crate) struct ThreadCounts {
    /// `sync_file_range` calls made.
    pub calls: AtomicU64,
    /// Calls the kernel refused (counted, otherwise ignored).
    pub failures: AtomicU64,
}

pub(crate) static THREAD_COUNTS: ThreadCounts = ThreadCounts {
    calls: AtomicU64::new(0),
    failures: AtomicU64::new(0),
};

/// What the writeback thread is handed.
enum Job {
    /// Start writeback of `len` bytes at `offset` of `file`.
    Range {
        file: Box<dyn AsFd + Send>,
        offset: u64,
        len: u64,
    },
    /// Answer once every job before this one is done (tests).
    #[cfg(test)]
    Barrier(mpsc::Sender<()>),
}

/// A log descriptor kept open for the writeback thread.
struct HeldLog(Arc<Handle>);

impl AsFd for HeldLog {
    fn as_fd(&self) -> BorrowedFd<'_> {
        let file: &File = &self.0;
        file.as_fd()
    }
}

/// The queue of the process's writeback thread, started on first use; `None` if no thread
/// could be started (then there is no writeback, only the periodic `fdatasync`).
fn queue() -> Option<&'static SyncSender<Job>> {
    static QUEUE_TX: OnceLock<Option<SyncSender<Job>>> = OnceLock::new();
    QUEUE_TX
        .get_or_init(|| {
            let (tx, rx) = mpsc::sync_channel(QUEUE);
            match std::thread::Builder::new()
                .name("wharf-writeback".into())
                .spawn(move || run(rx))
            {
                Ok(_) => Some(tx),
                Err(e) => {
                    tracing::warn!("no writeback thread ({e}): os-mode data is written by the periodic fsync alone");
                    None
                }
            }
        })
        .as_ref()
}

fn run(rx: Receiver<Job>) {
    for job in rx {
        match job {
            Job::Range { file, offset, len } => {
                THREAD_COUNTS.calls.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = sync_file_range(file.as_fd(), offset, len) {
                    // The periodic fdatasync still covers everything; only the smoothing is lost.
                    if THREAD_COUNTS.failures.fetch_add(1, Ordering::Relaxed) == 0 {
                        tracing::debug!("sync_file_range refused ({e}); counted, no other effect");
                    }
                }
            }
            #[cfg(test)]
            Job::Barrier(done) => {
                let _ = done.send(());
            }
        }
    }
}

impl Writeback {
    /// The state of a log already `size` bytes long: what was written before is left to the
    /// periodic `fdatasync`.
    pub fn at(size: u64) -> Writeback {
        Writeback {
            started_to: size - size % PAGE,
            ..Writeback::default()
        }
    }

    /// Called after an append through `log` took it to `end` bytes: hands the bytes whose
    /// writeback was not started yet to the writeback thread once they make at least `stride`
    /// bytes (0: never). Never blocks on the disk, never fails.
    pub fn after_append(&mut self, log: &Arc<Handle>, end: u64, stride: u64) {
        self.after_append_with(end, stride, |offset, len| {
            hand_off(Box::new(HeldLog(Arc::clone(log))), offset, len)
        });
    }

    /// [`Writeback::after_append`] with the hand-off given (tests count or refuse it); it
    /// answers whether the range was taken.
    fn after_append_with(
        &mut self,
        end: u64,
        stride: u64,
        hand_off: impl FnOnce(u64, u64) -> bool,
    ) {
        if stride == 0 {
            return;
        }
        let to = end - end % PAGE;
        if to < self.started_to.saturating_add(stride) {
            return;
        }
        if hand_off(self.started_to, to - self.started_to) {
            self.stats.ranges += 1;
            self.stats.bytes += to - self.started_to;
            self.started_to = to;
        } else {
            // The next stride's range takes this one in.
            self.stats.deferred += 1;
        }
    }
}

/// Queues a range for the writeback thread without waiting; false if the queue is full (or
/// there is no thread).
fn hand_off(file: Box<dyn AsFd + Send>, offset: u64, len: u64) -> bool {
    queue().is_some_and(|tx| tx.try_send(Job::Range { file, offset, len }).is_ok())
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn sync_file_range(fd: BorrowedFd<'_>, offset: u64, len: u64) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(io::ErrorKind::InvalidInput.into());
    };
    // SAFETY: `fd` is a live descriptor borrowed for the call; sync_file_range takes no
    // pointers and touches no memory of ours.
    let rc =
        unsafe { libc::sync_file_range(fd.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Elsewhere there is no such call: writeback is left to the periodic `fdatasync`.
#[cfg(not(target_os = "linux"))]
fn sync_file_range(_: BorrowedFd<'_>, _: u64, _: u64) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs appends of `sizes` bytes each through a writeback of `stride` and returns every
    /// range handed off: (offset, length).
    fn ranges(stride: u64, sizes: &[u64]) -> (Writeback, Vec<(u64, u64)>) {
        let mut wb = Writeback::at(0);
        let mut made = Vec::new();
        let mut end = 0;
        for &n in sizes {
            end += n;
            wb.after_append_with(end, stride, |o, l| {
                made.push((o, l));
                true
            });
        }
        (wb, made)
    }

    /// Bound: one range per `stride` bytes written, each at least `stride` long (at most an
    /// append and a page more), contiguous from the start.
    #[test]
    fn writeback_hands_off_one_range_per_stride() {
        let stride = 64 << 10;
        // 128 appends of 8 KiB: 1 MiB, exactly 16 strides.
        let (wb, made) = ranges(stride, &[8192; 128]);
        let expected: Vec<(u64, u64)> = (0..16).map(|i| (i * stride, stride)).collect();
        assert_eq!(made, expected);
        assert_eq!((wb.stats.ranges, wb.stats.bytes), (16, 1 << 20));
        // Appends of odd sizes: less than a stride and an append is left to the fdatasync.
        let (wb, made) = ranges(stride, &[10_000; 100]);
        let mut next = 0;
        for &(offset, len) in &made {
            assert_eq!(offset, next, "contiguous");
            assert!(len >= stride && len < stride + 10_000 + PAGE, "{len}");
            next = offset + len;
        }
        assert_eq!(wb.stats.bytes, next);
        assert!(1_000_000 - next < stride + 10_000, "{next}");
    }

    /// One append larger than many strides is one range, not many.
    #[test]
    fn a_large_append_is_one_range() {
        let (wb, made) = ranges(4096, &[1 << 20]);
        assert_eq!(made, vec![(0, 1 << 20)]);
        assert_eq!(wb.stats.bytes, 1 << 20);
    }

    #[test]
    fn a_stride_of_zero_hands_off_nothing() {
        let (wb, made) = ranges(0, &[1 << 20; 8]);
        assert!(made.is_empty());
        assert_eq!(wb.stats, WritebackStats::default());
    }

    /// A range the thread has no room for is counted and taken in by the next one: nothing is
    /// skipped, nothing fails.
    #[test]
    fn a_refused_hand_off_is_counted_and_the_next_range_covers_it() {
        let mut wb = Writeback::at(0);
        let mut made = Vec::new();
        for (end, take) in [(8192, false), (16384, true)] {
            wb.after_append_with(end, 4096, |o, l| {
                made.push((o, l));
                take
            });
        }
        assert_eq!(made, vec![(0, 8192), (0, 16384)]);
        assert_eq!((wb.stats.ranges, wb.stats.deferred), (1, 1));
    }

    /// A resumed segment starts at its size (page-aligned): what was there is the fdatasync's.
    #[test]
    fn a_resumed_segment_starts_writeback_where_it_ends() {
        let mut wb = Writeback::at(10_000);
        let mut made = Vec::new();
        wb.after_append_with(10_000 + 8192, 4096, |o, l| {
            made.push((o, l));
            true
        });
        assert_eq!(made, vec![(8192, 16384 - 8192)]);
    }

    /// Waits until the writeback thread has done every job queued before this call.
    fn drained() {
        let (tx, rx) = mpsc::channel();
        queue()
            .expect("a writeback thread")
            .send(Job::Barrier(tx))
            .expect("the writeback thread runs");
        rx.recv_timeout(std::time::Duration::from_secs(30))
            .expect("the writeback thread answered within 30 s");
    }

    /// The thread makes the real call on a real file; one the kernel refuses (a character
    /// device: ESPIPE) is counted, and the thread goes on.
    #[test]
    fn the_writeback_thread_calls_the_kernel_and_counts_refusals() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let mut f = File::create(dir.path().join("log")).unwrap();
        f.write_all(&[7u8; 1 << 16]).unwrap();
        let f = Arc::new(f);
        drained();
        let calls = THREAD_COUNTS.calls.load(Ordering::Relaxed);
        let failures = THREAD_COUNTS.failures.load(Ordering::Relaxed);
        #[derive(Debug)]
        struct Shared(Arc<File>);
        impl AsFd for Shared {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.0.as_fd()
            }
        }
        // Other tests share the thread: a full queue is waited out.
        let queue_it = |job: &dyn Fn() -> Box<dyn AsFd + Send>, offset| {
            while !hand_off(job(), offset, 16384) {
                drained();
            }
        };
        for i in 0..4 {
            queue_it(&|| Box::new(Shared(Arc::clone(&f))), i * 16384);
        }
        queue_it(
            &|| Box::new(File::options().write(true).open("/dev/null").unwrap()),
            0,
        );
        drained();
        assert!(THREAD_COUNTS.calls.load(Ordering::Relaxed) >= calls + 5);
        assert!(
            THREAD_COUNTS.failures.load(Ordering::Relaxed) > failures,
            "the refusal was counted"
        );
        // The file's own calls were accepted: they are the only ones a refusal could come from
        // besides /dev/null's, and this file system takes them.
        assert_eq!(
            sync_file_range(f.as_fd(), 0, 1 << 16).map_err(|e| e.kind()),
            Ok(())
        );
    }
}
