//! What the server counts about itself, for the operator: one [`Metrics`] per server, shared by
//! both doors and the broker core, read by `GET /metrics`, the native stats command and
//! `wharf top`.
//!
//! Hot-path counters are plain atomics (no lock, no allocation per message): per topic traffic
//! ([`TopicTraffic`], counted in the broker core where produce and fetch run, so both doors are
//! counted alike), per door connections. Figures that already live elsewhere (offsets, lag,
//! process and disk) are read at scrape time, never kept twice.
//!
//! - [`exposition`]: the Prometheus text of it all, for `GET /metrics`.
//! - [`process`]: CPU, memory, open files and I/O of this process, from `/proc`.

pub mod exposition;
pub mod process;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

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

/// The server's metrics. Cheap to share (`Arc`); every method is callable from any thread.
#[derive(Debug)]
pub struct Metrics {
    enabled: bool,
    /// Per (stream id, topic id): names are looked up at scrape time, so a rename shows at once.
    topics: RwLock<HashMap<(u32, u32), Arc<TopicTraffic>>>,
    connections: [AtomicU64; 2],
}

impl Metrics {
    /// `enabled` false (`[metrics] enable = false`) turns the hot-path counters into no-ops.
    pub fn new(enabled: bool) -> Arc<Metrics> {
        Arc::new(Metrics {
            enabled,
            topics: RwLock::default(),
            connections: Default::default(),
        })
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn traffic(&self, stream: u32, topic: u32) -> Arc<TopicTraffic> {
        if let Some(t) = self.topics.read().get(&(stream, topic)) {
            return Arc::clone(t);
        }
        Arc::clone(self.topics.write().entry((stream, topic)).or_default())
    }

    /// `messages` messages of `bytes` bytes were appended to a topic.
    pub fn topic_in(&self, stream: u32, topic: u32, bytes: u64, messages: u64) {
        if !self.enabled || messages == 0 {
            return;
        }
        let t = self.traffic(stream, topic);
        t.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        t.messages_in.fetch_add(messages, Ordering::Relaxed);
    }

    /// `messages` messages of `bytes` bytes were read from a topic by a client.
    pub fn topic_out(&self, stream: u32, topic: u32, bytes: u64, messages: u64) {
        if !self.enabled || messages == 0 {
            return;
        }
        let t = self.traffic(stream, topic);
        t.bytes_out.fetch_add(bytes, Ordering::Relaxed);
        t.messages_out.fetch_add(messages, Ordering::Relaxed);
    }

    /// Forgets a deleted topic's counters.
    pub fn forget_topic(&self, stream: u32, topic: u32) {
        self.topics.write().remove(&(stream, topic));
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

    /// One request of `api` on `door` took `elapsed` and ended as `outcome`.
    pub fn request(&self, door: DoorKind, api: &'static str, elapsed: Duration, outcome: Outcome) {
        if !self.enabled {
            return;
        }
        // The per-API families and histograms are the exposition's (to be filled in).
        let _ = (door, api, elapsed, outcome);
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
