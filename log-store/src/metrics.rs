//! What the store counts about its own work, for the operator: how long each append group
//! (group commit) and each `fdatasync` takes, how many messages and bytes a group carries, and
//! what retention deleted. One [`StoreMetrics`] per store ([`crate::LogStore::metrics`]).
//!
//! Histograms are fixed buckets of atomics ([`Histogram`]): recording is a few relaxed atomic
//! adds, never a lock or an allocation, so the writer thread pays next to nothing. Readers
//! (a scrape) take a [`HistogramSnapshot`]; its figures may be a few observations apart from
//! each other while appends run, as any lock-free reading is.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Upper bounds of the duration buckets, in nanoseconds: 50 µs to 10 s.
pub const DURATION_BOUNDS_NANOS: &[u64] = &[
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Upper bounds of the message-count buckets of one append group: 1 to 65536.
pub const MESSAGE_BOUNDS: &[u64] = &[
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16_384, 65_536,
];

/// Upper bounds of the byte-size buckets of one append group: 1 KiB to 64 MiB.
pub const BYTE_BOUNDS: &[u64] = &[
    1 << 10,
    4 << 10,
    16 << 10,
    64 << 10,
    256 << 10,
    1 << 20,
    4 << 20,
    16 << 20,
    64 << 20,
];

/// A histogram of `u64` observations in fixed buckets (each bucket `<=` its bound, plus one
/// for what is above the last bound), lock-free.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    /// Per bucket (not cumulative), one more than `bounds`; the count is their sum, so a
    /// reading's buckets never exceed its count.
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
}

/// One reading of a [`Histogram`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// The buckets' upper bounds, in the histogram's unit.
    pub bounds: &'static [u64],
    /// Observations at or below each bound, cumulative (as Prometheus' `le` buckets).
    pub cumulative: Vec<u64>,
    pub count: u64,
    /// The sum of all observations, in the histogram's unit.
    pub sum: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [u64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    /// Records one observation of `value`.
    pub fn observe(&self, value: u64) {
        let i = self.bounds.partition_point(|&b| b < value);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// Records a duration, in nanoseconds (for histograms over [`DURATION_BOUNDS_NANOS`]).
    pub fn observe_duration(&self, elapsed: Duration) {
        self.observe(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let mut cumulative: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| {
                running += b.load(Ordering::Relaxed);
                running
            })
            .collect();
        // The last bucket (above every bound) is the count.
        let count = cumulative.pop().unwrap_or(0);
        HistogramSnapshot {
            bounds: self.bounds,
            cumulative,
            count,
            sum: self.sum.load(Ordering::Relaxed),
        }
    }
}

/// The store's own figures.
#[derive(Debug)]
pub struct StoreMetrics {
    /// Off: the histograms record nothing (the cost of metrics can be measured against it).
    enabled: AtomicBool,
    /// Writing one append group (the batches that queued up while the previous group was
    /// written), from holding the partition's writer (the wait for it is not counted) to having
    /// written (and, for `fsync` topics, synced) and published it.
    pub append_group_duration: Histogram,
    /// One `fdatasync` of a segment file (log or index): the group commit of `fsync` topics,
    /// the background sync of `os` topics, a sync on close.
    pub fsync_duration: Histogram,
    /// Messages (records) per append group.
    pub append_group_messages: Histogram,
    /// Stored bytes per append group.
    pub append_group_bytes: Histogram,
    retention_deleted_segments: AtomicU64,
    retention_deleted_bytes: AtomicU64,
    /// The remote tier's counts (all zero without one).
    pub remote: RemoteMetrics,
}

/// What the remote tier did since the store opened. Counters are plain atomics; the tiering
/// thread and remote reads bump them, a scrape reads them.
#[derive(Debug, Default)]
pub struct RemoteMetrics {
    /// Segments uploaded (log and index, manifest stored), and their log bytes.
    pub uploaded_segments: AtomicU64,
    pub uploaded_bytes: AtomicU64,
    /// Failed attempts to upload a segment or store a manifest (each retried later).
    pub upload_failures: AtomicU64,
    /// Consecutive failed tiering rounds now: 0 when the last round reached the store. An
    /// alert on `> 0` for a while says the object store is down and local data is piling up.
    pub failing_rounds: AtomicU64,
    /// Local copies of uploaded segments deleted by the local retention, and their bytes.
    pub local_deleted_segments: AtomicU64,
    pub local_deleted_bytes: AtomicU64,
    /// Remote segments deleted by the total retention (or DeleteRecords, or purge), and bytes.
    pub remote_deleted_segments: AtomicU64,
    pub remote_deleted_bytes: AtomicU64,
    /// Objects deleted from the remote store, whatever deleted them: the total retention (a
    /// segment's log and index), sweeps of objects no manifest names (after a purge, a kill,
    /// a failure) and the prefixes of deleted topics and partitions.
    pub remote_deleted_objects: AtomicU64,
    /// Bytes served to readers from the remote tier, and the cache's chunk hits and misses
    /// (a miss fetches the chunk from the object store).
    pub read_bytes: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    /// Bytes fetched from the object store (cache fills and read-ahead).
    pub fetched_bytes: AtomicU64,
}

impl RemoteMetrics {
    /// Adds `n` to `counter` (relaxed: these are statistics).
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

impl Default for StoreMetrics {
    fn default() -> Self {
        StoreMetrics {
            enabled: AtomicBool::new(true),
            append_group_duration: Histogram::new(DURATION_BOUNDS_NANOS),
            fsync_duration: Histogram::new(DURATION_BOUNDS_NANOS),
            append_group_messages: Histogram::new(MESSAGE_BOUNDS),
            append_group_bytes: Histogram::new(BYTE_BOUNDS),
            retention_deleted_segments: AtomicU64::new(0),
            retention_deleted_bytes: AtomicU64::new(0),
            remote: RemoteMetrics::default(),
        }
    }
}

impl StoreMetrics {
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Turns the histograms on or off (`[metrics] enable`). Retention counts are always kept:
    /// they are rare and cost nothing on the hot path.
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Relaxed);
    }

    /// The start of something to time: `None` when the histograms are off, so a store with
    /// metrics off reads no clock on its hot paths.
    pub(crate) fn clock(&self) -> Option<Instant> {
        self.enabled().then(Instant::now)
    }

    /// One append group of `messages` messages and `bytes` stored bytes, started at `started`
    /// (from [`StoreMetrics::clock`]), is done.
    pub(crate) fn append_group(&self, started: Option<Instant>, messages: u64, bytes: u64) {
        let Some(started) = started else { return };
        if !self.enabled() {
            return;
        }
        self.append_group_duration
            .observe_duration(started.elapsed());
        self.append_group_messages.observe(messages);
        self.append_group_bytes.observe(bytes);
    }

    /// One `fdatasync`, started at `started` (from [`StoreMetrics::clock`]), is done.
    pub(crate) fn fsync(&self, started: Option<Instant>) {
        if let Some(started) = started.filter(|_| self.enabled()) {
            self.fsync_duration.observe_duration(started.elapsed());
        }
    }

    /// Retention deleted one segment of `bytes` bytes.
    pub(crate) fn retention_deleted(&self, bytes: u64) {
        self.retention_deleted_segments
            .fetch_add(1, Ordering::Relaxed);
        self.retention_deleted_bytes
            .fetch_add(bytes, Ordering::Relaxed);
    }

    /// Segments retention (time or size) has deleted since the store opened.
    pub fn retention_deleted_segments(&self) -> u64 {
        self.retention_deleted_segments.load(Ordering::Relaxed)
    }

    /// Bytes of the segments retention has deleted since the store opened.
    pub fn retention_deleted_bytes(&self) -> u64 {
        self.retention_deleted_bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_at_or_above_them() {
        let h = Histogram::new(&[10, 100]);
        for v in [0, 10, 11, 100, 101, 5000] {
            h.observe(v);
        }
        let s = h.snapshot();
        // <=10: 0 and 10; <=100: also 11 and 100; 101 and 5000 only in the count (+Inf).
        assert_eq!(s.cumulative, vec![2, 4]);
        assert_eq!(s.count, 6);
        assert_eq!(s.sum, 5222);
    }

    #[test]
    fn a_disabled_store_records_no_histogram_but_counts_retention() {
        let m = StoreMetrics::default();
        m.set_enabled(false);
        // Bound: off, no clock is read at all (nothing to time).
        assert_eq!(m.clock(), None);
        m.append_group(m.clock(), 3, 300);
        m.fsync(m.clock());
        // A start taken while on and finished after turning off records nothing either.
        m.set_enabled(true);
        let started = m.clock();
        assert!(started.is_some());
        m.set_enabled(false);
        m.append_group(started, 3, 300);
        m.fsync(started);
        m.retention_deleted(4096);
        assert_eq!(m.append_group_duration.snapshot().count, 0);
        assert_eq!(m.append_group_messages.snapshot().count, 0);
        assert_eq!(m.fsync_duration.snapshot().count, 0);
        assert_eq!(
            (m.retention_deleted_segments(), m.retention_deleted_bytes()),
            (1, 4096)
        );
    }

    #[test]
    fn durations_are_recorded_in_nanoseconds() {
        let m = StoreMetrics::default();
        m.append_group_duration
            .observe_duration(Duration::from_micros(700));
        m.append_group(m.clock(), 5, 2000);
        let d = m.append_group_duration.snapshot();
        assert!(d.sum >= 700_000, "{}", d.sum);
        assert_eq!(d.count, 2);
        // 700 µs is above 500 µs and at most 1 ms.
        let i = DURATION_BOUNDS_NANOS
            .iter()
            .position(|&b| b == 1_000_000)
            .expect("1 ms bound");
        assert!(d.cumulative[i] - d.cumulative[i - 1] >= 1);
        assert_eq!(m.append_group_messages.snapshot().sum, 5);
        assert_eq!(m.append_group_bytes.snapshot().sum, 2000);
    }
}
