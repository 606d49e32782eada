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
//! search and a few relaxed atomic adds (count, errors, a latency histogram bucket).
//!
//! - [`exposition`]: the Prometheus text of it all, for `GET /metrics`.
//! - [`apis`]: the bounded set of `api` label values of each door.
//! - [`kafka_errors`]: whether a Kafka answer carries an error code, for the error counters.
//! - [`process`]: CPU, memory, open files and I/O of this process, from `/proc`.

pub mod apis;
pub mod exposition;
pub mod kafka_errors;
pub mod process;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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

/// How a request ended, for the error counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The answer carried an error code (any partition's, for a partitioned API).
    Error,
}

/// One door's requests of one API: how many, how many failed, how long they took.
#[derive(Debug)]
struct RequestStats {
    /// Nanoseconds from a whole request read to its answer ready; its count is the requests'.
    duration: Histogram,
    errors: AtomicU64,
}

impl RequestStats {
    fn new() -> RequestStats {
        RequestStats {
            duration: Histogram::new(DURATION_BOUNDS_NANOS),
            errors: AtomicU64::new(0),
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
    pub errors: u64,
    /// Latency, in nanoseconds.
    pub duration: HistogramSnapshot,
}

/// The server's metrics. Cheap to share (`Arc`); every method is callable from any thread.
#[derive(Debug)]
pub struct Metrics {
    enabled: bool,
    /// When this server started (its metrics were made), for its uptime.
    started: SystemTime,
    /// Per (stream id, topic id): names are looked up at scrape time, so a rename shows at once.
    topics: RwLock<HashMap<(u32, u32), TopicTraffic>>,
    connections: [AtomicU64; 2],
    accepted: [AtomicU64; 2],
    refused: [AtomicU64; 2],
    /// By [`apis::kafka_slot`], the last one `Unknown`.
    kafka_requests: Box<[RequestStats]>,
    /// By [`apis::native_slot`], the last one `Unknown`.
    native_requests: Box<[RequestStats]>,
}

impl Metrics {
    /// `enabled` false (`[metrics] enable = false`) turns the hot-path counters (requests,
    /// topic traffic) into no-ops; connections are counted either way.
    pub fn new(enabled: bool) -> Arc<Metrics> {
        let slots = |n: usize| (0..=n).map(|_| RequestStats::new()).collect();
        Arc::new(Metrics {
            enabled,
            started: SystemTime::now(),
            topics: RwLock::default(),
            connections: Default::default(),
            accepted: Default::default(),
            refused: Default::default(),
            kafka_requests: slots(apis::KAFKA_APIS.len()),
            native_requests: slots(apis::NATIVE_APIS.len()),
        })
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// How long since this server started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed().unwrap_or_default()
    }

    /// Runs `count` on a topic's traffic counters (made on first use), under the map's read
    /// lock in the common case: no allocation, no reference count traffic.
    fn with_traffic(&self, stream: u32, topic: u32, count: impl Fn(&TopicTraffic)) {
        if let Some(t) = self.topics.read().get(&(stream, topic)) {
            return count(t);
        }
        count(self.topics.write().entry((stream, topic)).or_default());
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
        if !self.enabled || messages == 0 {
            return;
        }
        self.with_traffic(stream, topic, |t| {
            t.bytes_out.fetch_add(bytes, Ordering::Relaxed);
            t.messages_out.fetch_add(messages, Ordering::Relaxed);
        });
    }

    /// Forgets a deleted topic's counters.
    pub fn forget_topic(&self, stream: u32, topic: u32) {
        self.topics.write().remove(&(stream, topic));
    }

    /// Forgets the counters of every topic of a deleted stream.
    pub fn forget_stream(&self, stream: u32) {
        self.topics.write().retain(|&(s, _), _| s != stream);
    }

    /// Every topic's totals so far, by (stream id, topic id).
    pub fn topic_totals(&self) -> Vec<((u32, u32), TrafficTotals)> {
        let mut out: Vec<_> = self
            .topics
            .read()
            .iter()
            .map(|(k, t)| {
                (
                    *k,
                    TrafficTotals {
                        bytes_in: t.bytes_in.load(Ordering::Relaxed),
                        messages_in: t.messages_in.load(Ordering::Relaxed),
                        bytes_out: t.bytes_out.load(Ordering::Relaxed),
                        messages_out: t.messages_out.load(Ordering::Relaxed),
                    },
                )
            })
            .collect();
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

    /// One Kafka request of API `key` took `elapsed` and ended as `outcome`.
    pub fn kafka_request(&self, key: i16, elapsed: Duration, outcome: Outcome) {
        if self.enabled {
            self.kafka_requests[apis::kafka_slot(key)].record(elapsed, outcome);
        }
    }

    /// One native command of `code` took `elapsed` and ended as `outcome`.
    pub fn native_request(&self, code: u32, elapsed: Duration, outcome: Outcome) {
        if self.enabled {
            self.native_requests[apis::native_slot(code)].record(elapsed, outcome);
        }
    }

    /// One request of `api` (a name of [`apis`]'s tables) on `door` took `elapsed` and ended
    /// as `outcome`. The doors use [`Metrics::kafka_request`] and [`Metrics::native_request`],
    /// which find the slot by code.
    pub fn request(&self, door: DoorKind, api: &'static str, elapsed: Duration, outcome: Outcome) {
        if !self.enabled {
            return;
        }
        let (slots, slot) = match door {
            DoorKind::Kafka => (
                &self.kafka_requests,
                apis::KAFKA_APIS.iter().position(|&(_, n)| n == api),
            ),
            DoorKind::Native => (
                &self.native_requests,
                apis::NATIVE_APIS.iter().position(|&(_, n)| n == api),
            ),
        };
        slots[slot.unwrap_or(slots.len() - 1)].record(elapsed, outcome);
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
            // Errors before the histogram: never more errors than requests in one reading.
            let errors = s.errors.load(Ordering::Acquire);
            let duration = s.duration.snapshot();
            (duration.count > 0).then(|| RequestTotals {
                door,
                api: apis::slot_name(table, i),
                requests: duration.count,
                errors,
                duration,
            })
        })
        .collect()
}

impl RequestStats {
    fn record(&self, elapsed: Duration, outcome: Outcome) {
        // The request before its error, released with it: a reader that loads the errors
        // first (acquiring) never sees more errors than requests.
        self.duration.observe_duration(elapsed);
        if outcome == Outcome::Error {
            self.errors.fetch_add(1, Ordering::Release);
        }
    }
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
