//! Steady writeback of the active segment's log in `os` mode (RocksDB's `bytes_per_sync`).
//!
//! `os`-mode data reaches the disk through the background `fdatasync` every `fsync_interval`.
//! Left alone, a second's worth of appends piles up as dirty pages and that one `fdatasync` has
//! to write all of it, stalling the writer behind it (the 50-470 ms p99.9 spikes measured in
//! `BENCHMARKS.md`). Here the writer starts the kernel's writeback of each `writeback_bytes`
//! stride of the log as soon as it is written (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which
//! only queues the IO), and waits for the stride before the previous one to be written
//! (`SYNC_FILE_RANGE_WAIT_BEFORE`), so no more than about two strides are ever in flight and
//! the periodic `fdatasync` finds little left to do.
//!
//! This is smoothing, never a durability promise: `sync_file_range` writes no metadata and
//! flushes no device cache. The durability of `os` mode stays the periodic `fdatasync` and the
//! syncs on roll, close and shutdown. A failed `sync_file_range` (a file system that refuses
//! it) never fails an append: it is counted and writeback stops for that segment.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Strides end on a page boundary: a partly written last page would be written out now and
/// dirtied again by the next append.
const PAGE: u64 = 4096;

/// The writeback state of one active segment log: how far writeback was started and waited
/// for. Owned by the segment's writer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Writeback {
    /// Writeback was started for every byte below this.
    started_to: u64,
    /// Where the last range started (`started_to` is where it ended).
    last_start: u64,
    /// Writeback was waited for below this.
    waited_to: u64,
    /// A call failed: no more writeback for this segment.
    off: bool,
    /// What was done, for tests and the operator.
    pub stats: WritebackStats,
}

/// Counts of the writeback calls of one segment log.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WritebackStats {
    /// Ranges whose writeback was started.
    pub ranges: u64,
    /// Bytes in them.
    pub bytes: u64,
    /// Calls the kernel refused (after which the segment has no more writeback).
    pub failures: u64,
}

impl Writeback {
    /// The state of a log already `size` bytes long: what was written before is left to the
    /// periodic `fdatasync`.
    pub fn at(size: u64) -> Writeback {
        let start = size - size % PAGE;
        Writeback {
            started_to: start,
            last_start: start,
            waited_to: start,
            ..Writeback::default()
        }
    }

    /// Called after an append took the log to `end` bytes: starts writeback of the bytes not
    /// yet started once they make at least `stride` bytes (0: never). Never fails.
    pub fn after_append(&mut self, log: &File, end: u64, stride: u64) {
        self.after_append_with(end, stride, |offset, len, flags| {
            sync_file_range(log, offset, len, flags)
        });
    }

    /// [`Writeback::after_append`] with the system call given (tests count or fail it).
    fn after_append_with(
        &mut self,
        end: u64,
        stride: u64,
        mut call: impl FnMut(u64, u64, Flags) -> io::Result<()>,
    ) {
        if stride == 0 || self.off {
            return;
        }
        let to = end - end % PAGE;
        if to < self.started_to.saturating_add(stride) {
            return;
        }
        // Wait for the range before the last one: the writer never runs more than two strides
        // ahead of the disk, and dirty pages never pile up behind it.
        let wait = (self.waited_to < self.last_start).then(|| {
            call(
                self.waited_to,
                self.last_start - self.waited_to,
                Flags::Wait,
            )
        });
        let result = wait
            .unwrap_or(Ok(()))
            .and_then(|()| call(self.started_to, to - self.started_to, Flags::Write));
        match result {
            Ok(()) => {
                self.waited_to = self.last_start;
                self.stats.ranges += 1;
                self.stats.bytes += to - self.started_to;
                self.last_start = self.started_to;
                self.started_to = to;
            }
            Err(e) => {
                // The periodic fdatasync still covers everything; only the smoothing is lost.
                tracing::debug!("sync_file_range failed, writeback off for this segment: {e}");
                self.stats.failures += 1;
                self.off = true;
            }
        }
    }
}

/// Which `sync_file_range` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flags {
    /// `SYNC_FILE_RANGE_WAIT_BEFORE`: wait for writeback already started in the range.
    Wait,
    /// `SYNC_FILE_RANGE_WRITE`: start writeback of the range's dirty pages, without waiting.
    Write,
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn sync_file_range(file: &File, offset: u64, len: u64, flags: Flags) -> io::Result<()> {
    let flags = match flags {
        Flags::Wait => libc::SYNC_FILE_RANGE_WAIT_BEFORE,
        Flags::Write => libc::SYNC_FILE_RANGE_WRITE,
    };
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(io::ErrorKind::InvalidInput.into());
    };
    // SAFETY: `file` is a live descriptor borrowed for the call; sync_file_range takes no
    // pointers and touches no memory of ours.
    let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Elsewhere there is no such call: writeback is left to the periodic `fdatasync`.
#[cfg(not(target_os = "linux"))]
fn sync_file_range(_: &File, _: u64, _: u64, _: Flags) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs appends of `sizes` bytes each through a writeback of `stride` and returns every
    /// call made: (offset, length, flags).
    fn calls(stride: u64, sizes: &[u64]) -> (Writeback, Vec<(u64, u64, Flags)>) {
        let mut wb = Writeback::at(0);
        let mut made = Vec::new();
        let mut end = 0;
        for &n in sizes {
            end += n;
            wb.after_append_with(end, stride, |o, l, f| {
                made.push((o, l, f));
                Ok(())
            });
        }
        (wb, made)
    }

    /// Bound: one write range per `stride` bytes written, each at least `stride` long,
    /// contiguous from the start, and a wait only on the range before the previous one.
    #[test]
    fn writeback_starts_one_range_per_stride_and_waits_two_behind() {
        let stride = 64 << 10;
        // 128 appends of 8 KiB: 1 MiB, exactly 16 strides.
        let (wb, made) = calls(stride, &[8192; 128]);
        let writes: Vec<_> = made.iter().filter(|c| c.2 == Flags::Write).collect();
        let waits: Vec<_> = made.iter().filter(|c| c.2 == Flags::Wait).collect();
        assert_eq!(writes.len(), 16, "{writes:?}");
        assert_eq!(wb.stats.ranges, 16);
        for (i, &&(offset, len, _)) in writes.iter().enumerate() {
            assert_eq!((offset, len), (i as u64 * stride, stride), "range {i}");
        }
        assert_eq!(wb.stats.bytes, 1 << 20);
        // Appends of odd sizes: each range is at least a stride, at most an append and a page
        // more, and contiguous; less than a stride and an append is left to the fdatasync.
        let (wb, made) = calls(stride, &[10_000; 100]);
        let mut next = 0;
        for &(offset, len, flags) in made.iter().filter(|c| c.2 == Flags::Write) {
            assert_eq!((offset, flags), (next, Flags::Write), "contiguous");
            assert!(len >= stride && len < stride + 10_000 + PAGE, "{len}");
            next = offset + len;
        }
        assert_eq!(wb.stats.bytes, next);
        assert!(1_000_000 - next < stride + 10_000, "{next}");
        // The first two ranges go out without a wait; each later one waits for the range two
        // before it, exactly.
        assert_eq!(waits.len(), writes.len() - 2);
        for (i, &&(offset, len, _)) in waits.iter().enumerate() {
            assert_eq!((offset, len), (writes[i].0, writes[i].1), "wait {i}");
        }
    }

    /// One append larger than many strides is one range, not many.
    #[test]
    fn a_large_append_is_one_range() {
        let (wb, made) = calls(4096, &[1 << 20]);
        assert_eq!(made, vec![(0, 1 << 20, Flags::Write)]);
        assert_eq!(wb.stats.bytes, 1 << 20);
    }

    #[test]
    fn a_stride_of_zero_makes_no_call() {
        let (wb, made) = calls(0, &[1 << 20; 8]);
        assert!(made.is_empty());
        assert_eq!(wb.stats, WritebackStats::default());
    }

    /// A refused call fails nothing and is counted; the segment makes no further calls.
    #[test]
    fn a_refused_call_is_counted_and_stops_writeback_for_the_segment() {
        let mut wb = Writeback::at(0);
        let mut n = 0;
        for end in (1..=10).map(|i| i * 8192) {
            wb.after_append_with(end, 4096, |_, _, _| {
                n += 1;
                Err(io::Error::from_raw_os_error(22))
            });
        }
        assert_eq!(n, 1);
        assert_eq!(wb.stats.failures, 1);
        assert_eq!(wb.stats.ranges, 0);
    }

    /// A resumed segment starts at its size (page-aligned): what was there is the fdatasync's.
    #[test]
    fn a_resumed_segment_starts_writeback_where_it_ends() {
        let mut wb = Writeback::at(10_000);
        let mut made = Vec::new();
        wb.after_append_with(10_000 + 8192, 4096, |o, l, f| {
            made.push((o, l, f));
            Ok(())
        });
        assert_eq!(made, vec![(8192, 16384 - 8192, Flags::Write)]);
    }

    /// The real call on a real file: accepted (or, on a file system that refuses it, counted),
    /// never an error to the caller.
    #[test]
    fn the_real_call_on_a_file_and_on_a_device() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let mut f = File::create(dir.path().join("log")).unwrap();
        let mut wb = Writeback::at(0);
        for i in 1..=4u64 {
            f.write_all(&[7u8; 1 << 16]).unwrap();
            wb.after_append(&f, i << 16, 1 << 16);
        }
        let counted = (wb.stats.ranges, wb.stats.failures);
        assert!(counted == (4, 0) || counted == (0, 1), "{counted:?}");
        // A character device: the kernel refuses it (ESPIPE); the append would go on.
        if cfg!(target_os = "linux") {
            let null = File::options().write(true).open("/dev/null").unwrap();
            let mut wb = Writeback::at(0);
            wb.after_append(&null, 1 << 20, 4096);
            assert_eq!((wb.stats.ranges, wb.stats.failures), (0, 1));
        }
    }
}
