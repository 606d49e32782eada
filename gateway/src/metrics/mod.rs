//! What the server counts about itself, for the operator: one [`Metrics`] per server, shared by
//! both doors and the broker core, read by `GET /metrics`, the native stats command and
//! `wharf top`.
//!
//! Hot-path counters are plain atomics (no lock, no allocation per message): per topic traffic
//! ([`TopicTraffic`], counted in the broker core where produce and fetch run, so both doors are
//! counted alike), per door connections. Figures that already live elsewhere (offsets, lag,
//! process and disk) are read at scrape time, never kept twice.
//!
//! Requests are counted per door and API in fixed slots ([`apis`]): a request costs one table
//! search and a few relaxed atomic adds (a latency histogram bucket; one per error). Errors
//! are counted per door, API and error name, from fixed tables ([`kafka_errors`],
//! [`native_errors`]). With metrics off, the doors and the store read no clock and classify no
//! answer.
//!
//! - [`exposition`]: the Prometheus text of it all, for `GET /metrics`.
//! - [`apis`]: the bounded set of `api` label values of each door.
//! - [`kafka_errors`]: the error codes a Kafka answer carries and Kafka's names for them.
//! - [`native_errors`]: Iggy's names for the native door's error statuses.
//! - [`process`]: CPU, memory, open files and I/O of this process, from `/proc`.

pub mod apis;
pub mod exposition;
pub mod kafka_errors;
pub mod native_errors;
pub mod process;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use wharf_log_store::metrics::{Histogram, HistogramSnapshot, DURATION_BOUNDS_NANOS};

/// Which front door a request or connection came through (a label value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DoorKind {
    Native,
    Kafka,
}

impl DoorKind {
    pub const ALL: [DoorKind; 2] = [DoorKind::Native, DoorKind::Kafka];

    /// The label value: `native` or `kafka`.
    pub fn label(self) -> &'static str {
        match self {
            DoorKind::Native => "native",
            DoorKind::Kafka => "kafka",
        }
    }

    /// The door of an accept loop's name (`"native"`, `"kafka"`).
    pub fn from_label(door: &str) -> Option<DoorKind> {
        match door {
            "native" => Some(DoorKind::Native),
            "kafka" => Some(DoorKind::Kafka),
            _ => None,
        }
    }
}

/// Bytes and messages in (produced) and out (fetched or polled) of one topic, both doors.
#[derive(Debug, Default)]
pub struct TopicTraffic {
    pub bytes_in: AtomicU64,
    pub messages_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub messages_out: AtomicU64,
}

/// A copy of one topic's [`TopicTraffic`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficTotals {
    pub bytes_in: u64,
    pub messages_in: u64,
    pub bytes_out: u64,
    pub messages_out: u64,
}

/// One door's requests of one API: how many and how long they took.
#[derive(Debug)]
struct RequestStats {
    /// Nanoseconds from a whole request read to its answer ready; its count is the requests'.
    duration: Histogram,
}

impl RequestStats {
    fn new() -> RequestStats {
        RequestStats {
            duration: Histogram::new(DURATION_BOUNDS_NANOS),
        }
    }
}

/// A copy of one door's requests of one API at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTotals {
    pub door: DoorKind,
    /// The `api` label ([`apis`]).
    pub api: &'static str,
    pub requests: u64,
    /// Latency, in nanoseconds.
    pub duration: HistogramSnapshot,
}

/// A copy of one door's error count of one API and one error at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorTotals {
    pub door: DoorKind,
    /// The `api` label ([`apis`]).
    pub api: &'static str,
    /// The `error` label: Kafka's error name ([`kafka_errors::KAFKA_ERRORS`]) or Iggy's
    /// ([`native_errors::NATIVE_ERRORS`]), from a fixed table.
    pub error: &'static str,
    pub count: u64,
}

/// The server's metrics. Cheap to share (`Arc`); every method is callable from any thread.
#[derive(Debug)]
pub struct Metrics {
    enabled: bool,
    /// `[metrics] max_lag_series`: lag rows per scrape (and per native lag answer).
    max_lag_series: usize,
    /// Per (stream id, topic id), in [`TRAFFIC_SHARDS`] maps by topic so that producers and
    /// consumers of different topics never share a lock; names are looked up at scrape time,
    /// so a rename shows at once.
    topics: Box<[RwLock<TrafficShard>]>,
    connections: [AtomicU64; 2],
    accepted: [AtomicU64; 2],
    refused: [AtomicU64; 2],
    /// Kafka connections muted over a client quota (KIP-219), and for how long in all (ms).
    kafka_quota_mutes: AtomicU64,
    kafka_quota_muted_ms: AtomicU64,
    /// By [`apis::kafka_slot`], the last one `Unknown`.
    kafka_requests: Box<[RequestStats]>,
    /// By [`apis::native_slot`], the last one `Unknown`.
    native_requests: Box<[RequestStats]>,
    /// By `apis::kafka_slot * KAFKA_ERRORS.len() + kafka_errors::slot`: a fixed table, so the
    /// `error` label is bounded whatever codes an answer carries.
    kafka_errors: Box<[AtomicU64]>,
    /// By `apis::native_slot * NATIVE_ERRORS.len() + native_errors::slot`.
    native_errors: Box<[AtomicU64]>,
}

/// `[metrics] max_lag_series` unless configured.
pub const DEFAULT_MAX_LAG_SERIES: usize = 10_000;

/// The longest `group` label (and group name in a native lag answer), in bytes.
pub const MAX_GROUP_LABEL: usize = 255;

/// The `max` rows of `rows` with the largest lag (ties by group, topic, partition), their
/// group ids cut to [`MAX_GROUP_LABEL`] bytes ([`group_label`]), and how many were left out.
/// Group ids come from clients and committed offsets never expire, so every reader of lag for
/// an operator goes through this bound.
pub fn largest_lags(
    mut rows: Vec<crate::broker::lag::PartitionLag>,
    max: usize,
) -> (Vec<crate::broker::lag::PartitionLag>, usize) {
    let omitted = rows.len().saturating_sub(max);
    if omitted > 0 {
        let order = |a: &crate::broker::lag::PartitionLag, b: &crate::broker::lag::PartitionLag| {
            b.lag
                .cmp(&a.lag)
                .then_with(|| a.group.cmp(&b.group))
                .then_with(|| a.topic.cmp(&b.topic))
                .then_with(|| a.partition.cmp(&b.partition))
        };
        if max > 0 {
            rows.select_nth_unstable_by(max - 1, order);
        }
        rows.truncate(max);
        rows.sort_by(order);
    }
    for row in &mut rows {
        if let std::borrow::Cow::Owned(cut) = group_label(&row.group) {
            row.group = cut;
        }
    }
    (rows, omitted)
}

/// A group id as a label: itself when at most [`MAX_GROUP_LABEL`] bytes; longer, its first
/// bytes (cut at a character boundary) then `~` and 16 hex digits of an FNV-1a hash of the
/// whole id, [`MAX_GROUP_LABEL`] bytes at most, so two long ids with one prefix stay distinct.
pub fn group_label(group: &str) -> std::borrow::Cow<'_, str> {
    if group.len() <= MAX_GROUP_LABEL {
        return std::borrow::Cow::Borrowed(group);
    }
    let hash = group.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let mut end = MAX_GROUP_LABEL - 17;
    while !group.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!("{}~{hash:016x}", &group[..end]))
}

/// How many locks the topic traffic map is split into.
const TRAFFIC_SHARDS: usize = 16;

#[derive(Debug, Default)]
struct TrafficShard {
    topics: HashMap<(u32, u32), TopicTraffic>,
    /// Recently deleted topics and streams, oldest first, stamped when deleted: a count that
    /// lands after the delete (a produce that resolved the topic just before) must not make
    /// their entry again. Ids are never reused (the store's next ids only grow), so a
    /// tombstone never hides a new topic. Bounded: dropped after [`TOMBSTONE_GRACE`] (such a
    /// late count comes within a request's time, not minutes later), and at most
    /// [`MAX_TOMBSTONES`] per shard, the oldest dropped first.
    forgotten: std::collections::VecDeque<(Tombstone, Instant)>,
}

/// A deleted topic or stream in [`TrafficShard::forgotten`]: the stream has a variant of its
/// own, so no topic id (`u32::MAX` included) can be mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tombstone {
    Topic(u32, u32),
    Stream(u32),
}

/// How long a deleted topic's late counts are dropped; a count after that makes an entry no
/// scrape shows (the exposition names only existing topics) until the process ends.
pub const TOMBSTONE_GRACE: Duration = Duration::from_secs(60);

/// At most this many tombstones per traffic shard (so [`TRAFFIC_SHARDS`] times as many in
/// all), however fast topics are deleted.
pub const MAX_TOMBSTONES: usize = 1024;

impl TrafficShard {
    fn is_forgotten(&self, stream: u32, topic: u32) -> bool {
        self.forgotten
            .iter()
            .any(|&(t, _)| t == Tombstone::Topic(stream, topic) || t == Tombstone::Stream(stream))
    }

    /// Adds a tombstone stamped `now`, dropping those past the grace and the oldest over the cap.
    fn bury(&mut self, tombstone: Tombstone, now: Instant) {
        while self
            .forgotten
            .front()
            .is_some_and(|&(_, at)| now.saturating_duration_since(at) >= TOMBSTONE_GRACE)
        {
            self.forgotten.pop_front();
        }
        while self.forgotten.len() >= MAX_TOMBSTONES {
            self.forgotten.pop_front();
        }
        self.forgotten.push_back((tombstone, now));
    }
}

impl Metrics {
    /// `enabled` false (`[metrics] enable = false`) turns the hot-path counters (requests,
    /// topic traffic) into no-ops; connections are counted either way.
    pub fn new(enabled: bool) -> Arc<Metrics> {
        let slots = |n: usize| (0..=n).map(|_| RequestStats::new()).collect();
        let counters = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect();
        Arc::new(Metrics {
            enabled,
            max_lag_series: DEFAULT_MAX_LAG_SERIES,
            topics: (0..TRAFFIC_SHARDS).map(|_| RwLock::default()).collect(),
            connections: Default::default(),
            accepted: Default::default(),
            refused: Default::default(),
            kafka_quota_mutes: AtomicU64::new(0),
            kafka_quota_muted_ms: AtomicU64::new(0),
            kafka_requests: slots(apis::KAFKA_APIS.len()),
            native_requests: slots(apis::NATIVE_APIS.len()),
            kafka_errors: counters((apis::KAFKA_APIS.len() + 1) * kafka_errors::KAFKA_ERRORS.len()),
            native_errors: counters(
                (apis::NATIVE_APIS.len() + 1) * native_errors::NATIVE_ERRORS.len(),
            ),
        })
    }

    /// Metrics as `[metrics]` says.
    pub fn configured(config: &crate::config::MetricsConfig) -> Arc<Metrics> {
        let mut metrics = Metrics::new(config.enable);
        if let Some(m) = Arc::get_mut(&mut metrics) {
            m.max_lag_series = config.max_lag_series as usize;
        }
        metrics
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// At most this many consumer-lag rows per scrape or native lag answer.
    pub fn max_lag_series(&self) -> usize {
        self.max_lag_series
    }

    fn shard(&self, stream: u32, topic: u32) -> &RwLock<TrafficShard> {
        // Topics of one stream spread over the shards; the multiplier mixes the stream in.
        let h = topic.wrapping_add(stream.wrapping_mul(0x9E37_79B9));
        &self.topics[h as usize % TRAFFIC_SHARDS]
    }

    /// Runs `count` on a topic's traffic counters (made on first use), under its shard's read
    /// lock in the common case: no allocation, no reference count traffic, and producers of
    /// other topics mostly take other locks. A deleted topic's counts are dropped.
    fn with_traffic(&self, stream: u32, topic: u32, count: impl Fn(&TopicTraffic)) {
        let shard = self.shard(stream, topic);
        if let Some(t) = shard.read().topics.get(&(stream, topic)) {
            return count(t);
        }
        let mut shard = shard.write();
        if shard.is_forgotten(stream, topic) {
            return;
        }
        count(shard.topics.entry((stream, topic)).or_default());
    }

    /// `messages` messages of `bytes` bytes were appended to a topic.
    pub fn topic_in(&self, stream: u32, topic: u32, bytes: u64, messages: u64) {
        if !self.enabled || messages == 0 {
            return;
        }
        self.with_traffic(stream, topic, |t| {
            t.bytes_in.fetch_add(bytes, Ordering::Relaxed);
            t.messages_in.fetch_add(messages, Ordering::Relaxed);
        });
    }

    /// `messages` messages of `bytes` bytes were read from a topic by a client.
    pub fn topic_out(&self, stream: u32, topic: u32, bytes: u64, messages: u64) {
        if !self.enabled || (messages == 0 && bytes == 0) {
            return;
        }
        self.with_traffic(stream, topic, |t| {
            t.bytes_out.fetch_add(bytes, Ordering::Relaxed);
            t.messages_out.fetch_add(messages, Ordering::Relaxed);
        });
    }

    /// Forgets a deleted topic's counters, for good: counts that land later are dropped.
    pub fn forget_topic(&self, stream: u32, topic: u32) {
        self.forget_topic_at(stream, topic, Instant::now());
    }

    fn forget_topic_at(&self, stream: u32, topic: u32, now: Instant) {
        let mut shard = self.shard(stream, topic).write();
        shard.topics.remove(&(stream, topic));
        shard.bury(Tombstone::Topic(stream, topic), now);
    }

    /// Forgets the counters of every topic of a deleted stream, for good.
    pub fn forget_stream(&self, stream: u32) {
        self.forget_stream_at(stream, Instant::now());
    }

    fn forget_stream_at(&self, stream: u32, now: Instant) {
        for shard in self.topics.iter() {
            let mut shard = shard.write();
            shard.topics.retain(|&(s, _), _| s != stream);
            shard.bury(Tombstone::Stream(stream), now);
        }
    }

    /// How many tombstones the traffic map holds now (for the bound's test).
    #[cfg(test)]
    fn tombstones(&self) -> usize {
        self.topics.iter().map(|s| s.read().forgotten.len()).sum()
    }

    /// Every topic's totals so far, by (stream id, topic id).
    pub fn topic_totals(&self) -> Vec<((u32, u32), TrafficTotals)> {
        let mut out = Vec::new();
        for shard in self.topics.iter() {
            out.extend(shard.read().topics.iter().map(|(k, t)| {
                (
                    *k,
                    TrafficTotals {
                        bytes_in: t.bytes_in.load(Ordering::Relaxed),
                        messages_in: t.messages_in.load(Ordering::Relaxed),
                        bytes_out: t.bytes_out.load(Ordering::Relaxed),
                        messages_out: t.messages_out.load(Ordering::Relaxed),
                    },
                )
            }));
        }
        out.sort_by_key(|(k, _)| *k);
        out
    }

    /// A connection of `door` was admitted; it is counted until the guard drops.
    pub fn connection_opened(self: &Arc<Self>, door: DoorKind) -> ConnectionGuard {
        self.accepted[door as usize].fetch_add(1, Ordering::Relaxed);
        self.connections[door as usize].fetch_add(1, Ordering::Relaxed);
        ConnectionGuard {
            metrics: Arc::clone(self),
            door,
        }
    }

    /// Connections open now on `door`.
    pub fn connections(&self, door: DoorKind) -> u64 {
        self.connections[door as usize].load(Ordering::Relaxed)
    }

    /// A connection of `door` was closed at once: over the door's connection caps.
    pub fn connection_refused(&self, door: DoorKind) {
        self.refused[door as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Connections of `door` admitted since the start.
    pub fn connections_accepted(&self, door: DoorKind) -> u64 {
        self.accepted[door as usize].load(Ordering::Relaxed)
    }

    /// Connections of `door` refused (over its caps) since the start.
    pub fn connections_refused(&self, door: DoorKind) -> u64 {
        self.refused[door as usize].load(Ordering::Relaxed)
    }

    /// A Kafka connection over a client quota was muted for `mute` (counted once the mute
    /// is over, before anything more is read from it; counted whether metrics are on or not,
    /// as connections: a rare path).
    pub fn kafka_quota_muted(&self, mute: Duration) {
        let ms = u64::try_from(mute.as_millis()).unwrap_or(u64::MAX);
        self.kafka_quota_mutes.fetch_add(1, Ordering::Relaxed);
        self.kafka_quota_muted_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Kafka connections muted over a client quota since the start, and the milliseconds
    /// they were muted in all.
    pub fn kafka_quota_mutes(&self) -> (u64, u64) {
        (
            self.kafka_quota_mutes.load(Ordering::Relaxed),
            self.kafka_quota_muted_ms.load(Ordering::Relaxed),
        )
    }

    /// The start of a request to time: `None` when metrics are off, so the doors read no
    /// clock then.
    pub fn clock(&self) -> Option<Instant> {
        self.enabled.then(Instant::now)
    }

    /// One Kafka request of API `key`, started at `started` ([`Metrics::clock`]), is answered
    /// (or ended its connection).
    pub fn kafka_request(&self, key: i16, started: Option<Instant>) {
        if let Some(started) = started {
            self.kafka_request_took(key, started.elapsed());
        }
    }

    /// One Kafka request of API `key` took `elapsed` ([`Metrics::kafka_request`] measures it).
    pub fn kafka_request_took(&self, key: i16, elapsed: Duration) {
        if self.enabled {
            self.kafka_requests[apis::kafka_slot(key)]
                .duration
                .observe_duration(elapsed);
        }
    }

    /// A Kafka answer of API `key` carried error `code` (once per occurrence: per partition for
    /// a partitioned API, as Kafka's `ErrorsPerSec`); NONE (0) is not counted.
    pub fn kafka_error(&self, key: i16, code: i16) {
        if self.enabled && code != 0 {
            self.kafka_error_slot(key, kafka_errors::slot(code));
        }
    }

    /// A Kafka request of API `key` ended its connection instead of being answered.
    pub fn kafka_connection_closed(&self, key: i16) {
        if self.enabled {
            self.kafka_error_slot(key, kafka_errors::CONNECTION_CLOSED_SLOT);
        }
    }

    fn kafka_error_slot(&self, key: i16, error: usize) {
        let i = apis::kafka_slot(key) * kafka_errors::KAFKA_ERRORS.len() + error;
        self.kafka_errors[i].fetch_add(1, Ordering::Relaxed);
    }

    /// One native command of `code`, started at `started` ([`Metrics::clock`]), is answered;
    /// `status` is the answer's Iggy status when it is an error.
    pub fn native_request(&self, code: u32, started: Option<Instant>, status: Option<u32>) {
        if let Some(started) = started {
            self.native_request_took(code, started.elapsed(), status);
        }
    }

    /// One native command of `code` took `elapsed` ([`Metrics::native_request`] measures it).
    pub fn native_request_took(&self, code: u32, elapsed: Duration, status: Option<u32>) {
        if !self.enabled {
            return;
        }
        let slot = apis::native_slot(code);
        self.native_requests[slot]
            .duration
            .observe_duration(elapsed);
        if let Some(status) = status {
            let i = slot * native_errors::NATIVE_ERRORS.len() + native_errors::slot(status);
            self.native_errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every door's requests so far, of the APIs that were asked for at least once.
    pub fn request_totals(&self) -> Vec<RequestTotals> {
        let mut out = door_totals(DoorKind::Native, apis::NATIVE_APIS, &self.native_requests);
        out.extend(door_totals(
            DoorKind::Kafka,
            apis::KAFKA_APIS,
            &self.kafka_requests,
        ));
        out
    }

    /// Every door's errors so far, per API and error, of those seen at least once.
    pub fn error_totals(&self) -> Vec<ErrorTotals> {
        let mut out = error_totals(
            DoorKind::Native,
            apis::NATIVE_APIS,
            native_errors::NATIVE_ERRORS.len(),
            |e| native_errors::NATIVE_ERRORS[e].1,
            &self.native_errors,
        );
        out.extend(error_totals(
            DoorKind::Kafka,
            apis::KAFKA_APIS,
            kafka_errors::KAFKA_ERRORS.len(),
            |e| kafka_errors::KAFKA_ERRORS[e].1,
            &self.kafka_errors,
        ));
        out
    }
}

/// One door's [`RequestTotals`], of the APIs asked for at least once.
fn door_totals<K: Copy>(
    door: DoorKind,
    table: &[(K, &'static str)],
    slots: &[RequestStats],
) -> Vec<RequestTotals> {
    slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let duration = s.duration.snapshot();
            (duration.count > 0).then(|| RequestTotals {
                door,
                api: apis::slot_name(table, i),
                requests: duration.count,
                duration,
            })
        })
        .collect()
}

/// One door's [`ErrorTotals`], of the (API, error) pairs seen at least once.
fn error_totals<K: Copy>(
    door: DoorKind,
    table: &[(K, &'static str)],
    errors_per_api: usize,
    error_name: impl Fn(usize) -> &'static str,
    counters: &[AtomicU64],
) -> Vec<ErrorTotals> {
    counters
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let count = c.load(Ordering::Relaxed);
            (count > 0).then(|| ErrorTotals {
                door,
                api: apis::slot_name(table, i / errors_per_api),
                error: error_name(i % errors_per_api),
                count,
            })
        })
        .collect()
}

/// Counts one open connection of a door until dropped.
#[derive(Debug)]
pub struct ConnectionGuard {
    metrics: Arc<Metrics>,
    door: DoorKind,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.metrics.connections[self.door as usize].fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
