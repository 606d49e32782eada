//! `GET /metrics`: everything in [`super::Metrics`] and what is read at scrape time, in the
//! Prometheus text format (version 0.0.4, or OpenMetrics when asked), encoded with the
//! `prometheus-client` crate.
//!
//! A scrape first reads every figure into an owned [`Scrape`] (hot-path atomics, the store's
//! histograms, partition offsets, consumer lag, `/proc`), then registers it as the one
//! collector of a registry made for this scrape and encodes that: no global registry, so
//! several servers in one process (tests) never mix their series.
//!
//! Series, with their labels (see the README's "Operating Wharf" for Kafka's counterparts):
//! - `wharf_requests_total`, `wharf_request_duration_seconds` {door, api}: requests per door
//!   and API and their latency; `wharf_request_errors_total` {door, api, error}: the errors in
//!   their answers, by Kafka's or Iggy's error name (fixed tables, so bounded);
//! - `wharf_topic_{bytes,messages}_{in,out}_total` {stream, topic}: produced and fetched;
//! - `wharf_connections`, `wharf_connections_accepted_total`,
//!   `wharf_connections_refused_total` {door};
//! - `wharf_kafka_quota_mutes_total`, `wharf_kafka_quota_muted_seconds_total`: connections
//!   muted over client quotas (KIP-219) and for how long;
//! - `wharf_append_duration_seconds`, `wharf_fsync_duration_seconds`,
//!   `wharf_append_group_messages`, `wharf_append_group_bytes`: the store's histograms;
//! - `wharf_partition_log_start_offset`, `wharf_partition_high_watermark`,
//!   `wharf_partition_size_bytes` {stream, topic, partition};
//! - `wharf_consumer_group_committed_offset`, `wharf_consumer_group_lag`
//!   {group, stream, topic, partition}: the `[metrics] max_lag_series` largest lags, group ids
//!   cut to 255 bytes; `wharf_consumer_group_lag_series_omitted`: how many were left out;
//! - `wharf_group_rebalances_total` {protocol}; `wharf_retention_deleted_segments_total`,
//!   `wharf_retention_deleted_bytes_total`; `wharf_data_dir_bytes`;
//! - the remote tier (`[remote_storage]`): `wharf_remote_storage_enabled`,
//!   `wharf_remote_failing_rounds` (the alert: the object store unreachable),
//!   `wharf_remote_uploaded_{segments,bytes}_total`, `wharf_remote_upload_failures_total`,
//!   `wharf_remote_local_deleted_{segments,bytes}_total`,
//!   `wharf_remote_deleted_{segments,bytes,objects}_total`, `wharf_remote_read_bytes_total`,
//!   `wharf_remote_fetched_bytes_total`, `wharf_remote_cache_{hits,misses}_total`,
//!   `wharf_remote_cache_bytes`, `wharf_remote_pending_{segments,bytes}`,
//!   `wharf_remote_{segments,bytes}`;
//! - `wharf_up`, `wharf_ready`, `wharf_metrics_enabled`, `wharf_build_info` {version};
//! - `process_cpu_seconds_total`, `process_resident_memory_bytes`,
//!   `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`,
//!   `process_start_time_seconds`, `process_threads`.

use std::borrow::Cow;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use wharf_log_store::remote::RemoteStatus;
use wharf_log_store::{HistogramSnapshot, RemoteMetrics};

use super::process::{dir_bytes_cached, ProcessSample};
use super::{DoorKind, Metrics};
use crate::broker::Broker;

/// The content type of [`exposition`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The content type of [`exposition_openmetrics`]'s text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The exposition now, in the Prometheus text format 0.0.4 ([`CONTENT_TYPE`]). `broker` is
/// `None` while the store is still opening (recovery): then only what the server counts itself
/// (process, connections, requests) is given. `ready`: what `/ready` says (`wharf_ready`).
pub fn exposition(metrics: &Metrics, broker: Option<&Broker>, ready: bool) -> String {
    let registry = registry(Scrape::read(metrics, broker, ready));
    let mut out = String::new();
    // Writing into a String cannot fail, and our collector only fails on a failed write.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

/// [`exposition`] in the OpenMetrics text format ([`OPENMETRICS_CONTENT_TYPE`]), for a
/// scraper that asks for it.
pub fn exposition_openmetrics(metrics: &Metrics, broker: Option<&Broker>, ready: bool) -> String {
    let registry = registry(Scrape::read(metrics, broker, ready));
    let mut out = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

fn registry(scrape: Scrape) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(scrape));
    registry
}

type Labels = Vec<(&'static str, Cow<'static, str>)>;

/// One of a topic's traffic totals.
type TrafficField = fn(&super::TrafficTotals) -> u64;

#[derive(Debug)]
enum Value {
    Counter(u64),
    CounterF(f64),
    Gauge(i64),
    GaugeF(f64),
    /// Sum (in the series' unit), count, per-bucket (not cumulative) counts by upper bound,
    /// the last bound `+Inf`.
    Histogram(f64, u64, Vec<(f64, u64)>),
    /// An Info sample: its labels are the information, its value 1.
    Info,
}

#[derive(Debug)]
struct Family {
    /// A counter's name without `_total` (the encoder adds it).
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    samples: Vec<(Labels, Value)>,
}

/// Every series of one scrape, read from the server.
#[derive(Debug, Default)]
struct Scrape {
    families: Vec<Family>,
}

impl Scrape {
    fn family(
        &mut self,
        name: &'static str,
        help: &'static str,
        kind: MetricType,
    ) -> &mut Vec<(Labels, Value)> {
        self.families.push(Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        });
        &mut self.families.last_mut().expect("just pushed").samples
    }

    fn one(&mut self, name: &'static str, help: &'static str, kind: MetricType, value: Value) {
        self.family(name, help, kind).push((Vec::new(), value));
    }

    fn read(metrics: &Metrics, broker: Option<&Broker>, ready: bool) -> Scrape {
        let mut s = Scrape::default();
        s.one(
            "wharf_up",
            "1 while the server process runs.",
            MetricType::Gauge,
            Value::Gauge(1),
        );
        s.one(
            "wharf_ready",
            "1 while /ready answers 200: store open, every listener bound, not stopping.",
            MetricType::Gauge,
            Value::Gauge(i64::from(ready)),
        );
        s.one(
            "wharf_metrics_enabled",
            "1 when request and traffic counting is on ([metrics] enable).",
            MetricType::Gauge,
            Value::Gauge(i64::from(metrics.enabled())),
        );
        // An Info family: `wharf_build_info{version} 1`, typed `info` in OpenMetrics (where the
        // `_info` suffix belongs to that type) and `gauge` in 0.0.4.
        s.family(
            "wharf_build",
            "The server's version; always 1.",
            MetricType::Info,
        )
        .push((
            vec![("version", Cow::Borrowed(env!("CARGO_PKG_VERSION")))],
            Value::Info,
        ));
        s.read_process();
        s.read_connections(metrics);
        s.read_requests(metrics);
        if let Some(broker) = broker {
            s.read_broker(metrics, broker);
        }
        s
    }

    fn read_process(&mut self) {
        let p = ProcessSample::now();
        self.one(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            MetricType::Counter,
            Value::CounterF(p.cpu_seconds),
        );
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                p.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                p.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                p.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                p.max_fds,
            ),
            ("process_threads", "Number of OS threads.", p.threads),
        ];
        for (name, help, v) in gauges {
            self.one(name, help, MetricType::Gauge, Value::Gauge(gauge(v)));
        }
        if let Some(start) = process_start_time() {
            self.one(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                MetricType::Gauge,
                Value::GaugeF(start),
            );
        }
    }

    fn read_connections(&mut self, metrics: &Metrics) {
        let per_door = |f: &dyn Fn(DoorKind) -> u64, counter: bool| {
            DoorKind::ALL
                .iter()
                .map(|&d| {
                    let v = f(d);
                    let value = if counter {
                        Value::Counter(v)
                    } else {
                        Value::Gauge(gauge(v))
                    };
                    (door_label(d), value)
                })
                .collect::<Vec<_>>()
        };
        *self.family(
            "wharf_connections",
            "Client connections open now, per door.",
            MetricType::Gauge,
        ) = per_door(&|d| metrics.connections(d), false);
        *self.family(
            "wharf_connections_accepted",
            "Client connections admitted since the start, per door.",
            MetricType::Counter,
        ) = per_door(&|d| metrics.connections_accepted(d), true);
        *self.family(
            "wharf_connections_refused",
            "Client connections closed at once for being over the door's connection caps.",
            MetricType::Counter,
        ) = per_door(&|d| metrics.connections_refused(d), true);
        let (mutes, muted_ms) = metrics.kafka_quota_mutes();
        *self.family(
            "wharf_kafka_quota_mutes",
            "Kafka answers over a client quota after which the connection was muted for the \
             answer's throttle_time_ms (KIP-219), counted as each mute ends.",
            MetricType::Counter,
        ) = vec![(Vec::new(), Value::Counter(mutes))];
        *self.family(
            "wharf_kafka_quota_muted_seconds",
            "Time Kafka connections were muted over client quotas (Kafka's throttle-time).",
            MetricType::Counter,
        ) = vec![(Vec::new(), Value::CounterF(muted_ms as f64 / 1000.0))];
    }

    fn read_requests(&mut self, metrics: &Metrics) {
        let totals = metrics.request_totals();
        let labels = |t: &super::RequestTotals| -> Labels {
            vec![
                ("door", Cow::Borrowed(t.door.label())),
                ("api", Cow::Borrowed(t.api)),
            ]
        };
        *self.family(
            "wharf_requests",
            "Requests answered (or that ended their connection), per door and API.",
            MetricType::Counter,
        ) = totals
            .iter()
            .map(|t| (labels(t), Value::Counter(t.requests)))
            .collect();
        *self.family(
            "wharf_request_errors",
            "Errors in answers, per door, API and error (as Kafka's ErrorsPerSec): Kafka's \
             error name, once per error code an answer carries (per partition for partitioned \
             APIs), or CONNECTION_CLOSED for a request that ended its connection; Iggy's error \
             name for the native door. An acks=0 produce with an error counts its errors and closes its connection, as Kafka.",
            MetricType::Counter,
        ) = metrics
            .error_totals()
            .into_iter()
            .map(|e| {
                (
                    vec![
                        ("door", Cow::Borrowed(e.door.label())),
                        ("api", Cow::Borrowed(e.api)),
                        ("error", Cow::Borrowed(e.error)),
                    ],
                    Value::Counter(e.count),
                )
            })
            .collect();
        *self.family(
            "wharf_request_duration_seconds",
            "Time from a request read whole to its answer ready, per door and API.",
            MetricType::Histogram,
        ) = totals
            .iter()
            .map(|t| (labels(t), seconds_histogram(&t.duration)))
            .collect();
    }

    fn read_broker(&mut self, metrics: &Metrics, broker: &Broker) {
        let names = broker.topic_labels();
        let mut topics: Vec<_> = names.iter().collect();
        topics.sort_by(|a, b| a.1.cmp(b.1));
        let topic_labels = |(stream, topic): &(String, String)| -> Labels {
            vec![
                ("stream", Cow::Owned(stream.clone())),
                ("topic", Cow::Owned(topic.clone())),
            ]
        };

        // Traffic: every topic that exists, 0 until it is used; a deleted one's are gone. The
        // broker counts into the server's metrics (`with_metrics`), so its join is this one's.
        debug_assert!(std::ptr::eq(metrics, &**broker.metrics()));
        let traffic = broker.topic_traffic();
        let traffic_families: [(&'static str, &'static str, TrafficField); 4] = [
            (
                "wharf_topic_bytes_in",
                "Bytes of messages (record batches) appended to the topic, both doors.",
                |t| t.bytes_in,
            ),
            (
                "wharf_topic_messages_in",
                "Messages (records) appended to the topic, both doors.",
                |t| t.messages_in,
            ),
            (
                "wharf_topic_bytes_out",
                "Bytes of messages (record batches) returned to consumers, both doors.",
                |t| t.bytes_out,
            ),
            (
                "wharf_topic_messages_out",
                "Messages (records) returned to consumers, both doors.",
                |t| t.messages_out,
            ),
        ];
        for (name, help, field) in traffic_families {
            *self.family(name, help, MetricType::Counter) = traffic
                .iter()
                .map(|t| {
                    let labels = vec![
                        ("stream", Cow::Owned(t.stream.clone())),
                        ("topic", Cow::Owned(t.topic.clone())),
                    ];
                    (labels, Value::Counter(field(&t.totals)))
                })
                .collect();
        }

        // Partition offsets and sizes.
        let mut start = Vec::new();
        let mut end = Vec::new();
        let mut size = Vec::new();
        for ((stream_id, topic_id), n) in &topics {
            for (p, stats) in broker
                .partition_stats(*stream_id, *topic_id)
                .iter()
                .enumerate()
            {
                let mut labels = topic_labels(n);
                labels.push(("partition", Cow::Owned(p.to_string())));
                start.push((labels.clone(), Value::Gauge(gauge(stats.log_start_offset))));
                end.push((labels.clone(), Value::Gauge(gauge(stats.high_watermark))));
                size.push((labels, Value::Gauge(gauge(stats.size_bytes))));
            }
        }
        *self.family(
            "wharf_partition_log_start_offset",
            "The partition's first readable offset (Kafka's log start offset).",
            MetricType::Gauge,
        ) = start;
        *self.family(
            "wharf_partition_high_watermark",
            "The offset the partition's next message gets (Kafka's high watermark).",
            MetricType::Gauge,
        ) = end;
        *self.family(
            "wharf_partition_size_bytes",
            "Bytes of the partition's segments.",
            MetricType::Gauge,
        ) = size;

        // Consumer lag, Kafka groups and native groups alike: the largest lags, bounded.
        let mut committed = Vec::new();
        let mut lag = Vec::new();
        let (rows, omitted) =
            super::largest_lags(broker.consumer_lag(None), metrics.max_lag_series());
        for l in rows {
            let labels: Labels = vec![
                ("group", Cow::Owned(l.group)),
                ("stream", Cow::Owned(l.stream)),
                ("topic", Cow::Owned(l.topic)),
                ("partition", Cow::Owned(l.partition.to_string())),
            ];
            committed.push((labels.clone(), Value::Gauge(gauge(l.committed))));
            lag.push((labels, Value::Gauge(gauge(l.lag))));
        }
        *self.family(
            "wharf_consumer_group_committed_offset",
            "The next offset the group reads on the partition (its committed position). \
             Group ids over 255 bytes are cut (then ~ and a hash of the whole id).",
            MetricType::Gauge,
        ) = committed;
        *self.family(
            "wharf_consumer_group_lag",
            "High watermark minus the group's committed offset, at least 0; the \
             [metrics] max_lag_series largest only. Group ids over 255 bytes are cut (then ~ \
             and a hash of the whole id).",
            MetricType::Gauge,
        ) = lag;
        self.one(
            "wharf_consumer_group_lag_series_omitted",
            "(group, partition) lag series left out of this scrape by [metrics] max_lag_series.",
            MetricType::Gauge,
            Value::Gauge(gauge(omitted as u64)),
        );

        let (kafka, native) = broker.group_rebalances();
        *self.family(
            "wharf_group_rebalances",
            "Group rebalances since the start: Kafka groups' completed rebalances, native \
             groups' reassignments on a membership or partition-count change.",
            MetricType::Counter,
        ) = vec![
            (
                vec![("protocol", Cow::Borrowed("kafka"))],
                Value::Counter(kafka),
            ),
            (
                vec![("protocol", Cow::Borrowed("native"))],
                Value::Counter(native),
            ),
        ];

        let store = broker.store_metrics();
        self.one(
            "wharf_append_duration_seconds",
            "Time to write one append group (group commit), including its fdatasync for \
             fsync topics.",
            MetricType::Histogram,
            seconds_histogram(&store.append_group_duration.snapshot()),
        );
        self.one(
            "wharf_fsync_duration_seconds",
            "Time of one fdatasync of a segment file.",
            MetricType::Histogram,
            seconds_histogram(&store.fsync_duration.snapshot()),
        );
        self.one(
            "wharf_append_group_messages",
            "Messages (records) per append group: how much group commit coalesces.",
            MetricType::Histogram,
            plain_histogram(&store.append_group_messages.snapshot()),
        );
        self.one(
            "wharf_append_group_bytes",
            "Stored bytes per append group.",
            MetricType::Histogram,
            plain_histogram(&store.append_group_bytes.snapshot()),
        );
        self.one(
            "wharf_retention_deleted_segments",
            "Segments deleted by time or size retention since the start.",
            MetricType::Counter,
            Value::Counter(store.retention_deleted_segments()),
        );
        self.one(
            "wharf_retention_deleted_bytes",
            "Bytes of the segments deleted by retention since the start.",
            MetricType::Counter,
            Value::Counter(store.retention_deleted_bytes()),
        );
        self.one(
            "wharf_data_dir_bytes",
            "Bytes of the files under the data directory.",
            MetricType::Gauge,
            Value::Gauge(gauge(dir_bytes_cached(broker.data_dir()))),
        );
        self.read_remote(&store.remote, broker.remote_status());
    }

    /// The remote tier's counters (zero without one) and its state now (`status`, `None`
    /// without a remote tier: then zeros, and `wharf_remote_storage_enabled` 0).
    fn read_remote(&mut self, r: &RemoteMetrics, status: Option<RemoteStatus>) {
        let count = RemoteMetrics::get;
        self.one(
            "wharf_remote_storage_enabled",
            "1 when the server has a remote tier ([remote_storage] enable, Kafka's \
             remote.log.storage.system.enable).",
            MetricType::Gauge,
            Value::Gauge(i64::from(status.is_some())),
        );
        self.one(
            "wharf_remote_failing_rounds",
            "Consecutive tiering rounds that could not reach the object store; 0 once one \
             does. Alert on > 0 for a while: uploads wait and local disk fills with what \
             waits (never deleted before it is uploaded).",
            MetricType::Gauge,
            Value::Gauge(gauge(count(&r.failing_rounds))),
        );
        let counters: [(&'static str, &'static str, u64); 12] = [
            (
                "wharf_remote_uploaded_segments",
                "Sealed segments uploaded to the object store (log, index and manifest stored).",
                count(&r.uploaded_segments),
            ),
            (
                "wharf_remote_uploaded_bytes",
                "Log bytes of the segments uploaded.",
                count(&r.uploaded_bytes),
            ),
            (
                "wharf_remote_upload_failures",
                "Failed attempts to upload a segment or store a manifest (each retried with \
                 backoff).",
                count(&r.upload_failures),
            ),
            (
                "wharf_remote_local_deleted_segments",
                "Local copies of uploaded segments deleted by local.retention.ms/.bytes.",
                count(&r.local_deleted_segments),
            ),
            (
                "wharf_remote_local_deleted_bytes",
                "Bytes of the local copies deleted by the local retention.",
                count(&r.local_deleted_bytes),
            ),
            (
                "wharf_remote_deleted_segments",
                "Segments deleted from the object store by retention.ms/.bytes, \
                 DeleteRecords or a purge.",
                count(&r.remote_deleted_segments),
            ),
            (
                "wharf_remote_deleted_bytes",
                "Log bytes of the segments deleted from the object store.",
                count(&r.remote_deleted_bytes),
            ),
            (
                "wharf_remote_deleted_objects",
                "Objects deleted from the object store: segments past the total retention, \
                 objects no manifest names (sweeps after a purge or a failed upload), and \
                 deleted topics' and partitions' objects.",
                count(&r.remote_deleted_objects),
            ),
            (
                "wharf_remote_read_bytes",
                "Bytes served to consumers from the remote tier (through the read cache).",
                count(&r.read_bytes),
            ),
            (
                "wharf_remote_fetched_bytes",
                "Bytes fetched from the object store into the read cache (read-ahead included).",
                count(&r.fetched_bytes),
            ),
            (
                "wharf_remote_cache_hits",
                "Remote reads of a chunk already in the read cache.",
                count(&r.cache_hits),
            ),
            (
                "wharf_remote_cache_misses",
                "Remote reads that fetched their chunk from the object store.",
                count(&r.cache_misses),
            ),
        ];
        for (name, help, v) in counters {
            self.one(name, help, MetricType::Counter, Value::Counter(v));
        }
        let s = status.unwrap_or_default();
        let gauges = [
            (
                "wharf_remote_pending_segments",
                "Sealed segments of remote-storage topics not uploaded yet (grows while the \
                 object store is down).",
                s.pending_segments,
            ),
            (
                "wharf_remote_pending_bytes",
                "Bytes of the segments waiting for upload.",
                s.pending_bytes,
            ),
            (
                "wharf_remote_segments",
                "Segments the partitions' manifests name (in the object store).",
                s.remote_segments,
            ),
            (
                "wharf_remote_bytes",
                "Log bytes in the object store.",
                s.remote_bytes,
            ),
            (
                "wharf_remote_cache_bytes",
                "Bytes the read cache holds on local disk ([remote_storage] cache_max_size at \
                 most).",
                s.cache_bytes,
            ),
        ];
        for (name, help, v) in gauges {
            self.one(name, help, MetricType::Gauge, Value::Gauge(gauge(v)));
        }
    }
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.families {
            let mut metric = encoder.encode_descriptor(f.name, f.help, None, f.kind)?;
            for (labels, value) in &f.samples {
                if labels.is_empty() {
                    encode_value(&mut metric, value)?;
                } else {
                    encode_value(&mut metric.encode_family(labels)?, value)?;
                }
            }
        }
        Ok(())
    }
}

fn encode_value(metric: &mut MetricEncoder<'_>, value: &Value) -> Result<(), std::fmt::Error> {
    match value {
        Value::Counter(v) => metric.encode_counter::<NoLabelSet, _, u64>(v, None),
        Value::CounterF(v) => metric.encode_counter::<NoLabelSet, _, f64>(v, None),
        Value::Gauge(v) => metric.encode_gauge(v),
        Value::GaugeF(v) => metric.encode_gauge(v),
        Value::Histogram(sum, count, buckets) => {
            metric.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)
        }
        Value::Info => metric.encode_info(&Labels::new()),
    }
}

fn door_label(door: DoorKind) -> Labels {
    vec![("door", Cow::Borrowed(door.label()))]
}

/// A figure as a gauge's `i64` (figures past `i64::MAX` do not occur; they would saturate).
fn gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A histogram of nanoseconds, in seconds.
fn seconds_histogram(h: &HistogramSnapshot) -> Value {
    histogram(h, 1e-9)
}

fn plain_histogram(h: &HistogramSnapshot) -> Value {
    histogram(h, 1.0)
}

/// A histogram's buckets, ending with `+Inf` (what is above the last bound): the OpenMetrics
/// encoder writes only the buckets it is given, and a histogram without `le="+Inf"` is
/// invalid there (and gives no quantile); the 0.0.4 encoder then adds none of its own.
fn histogram(h: &HistogramSnapshot, scale: f64) -> Value {
    let mut below = 0;
    let mut buckets: Vec<(f64, u64)> = h
        .bounds
        .iter()
        .zip(&h.cumulative)
        .map(|(&bound, &cumulative)| {
            let in_bucket = cumulative.saturating_sub(below);
            below = cumulative;
            (bound as f64 * scale, in_bucket)
        })
        .collect();
    buckets.push((f64::INFINITY, h.count.saturating_sub(below)));
    Value::Histogram(h.sum as f64 * scale, h.count, buckets)
}

/// When this process started, in seconds since the epoch: its start in clock ticks after boot
/// (`/proc/self/stat` field 22) plus the boot time (`/proc/stat` `btime`).
fn process_start_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the command name the state is field 3, so field 22 is the 20th from here.
    let ticks: u64 = rest.split_whitespace().nth(22 - 3)?.parse().ok()?;
    let boot: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // USER_HZ is 100 for every Linux user-space ABI.
    Some(boot as f64 + ticks as f64 / 100.0)
}

#[cfg(test)]
mod remote_tests {
    use super::*;

    fn encoded(scrape: Scrape) -> String {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry(scrape))
            .expect("encodes");
        out
    }

    fn value<'a>(text: &'a str, series: &str) -> &'a str {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
    }

    /// Every remote-tier series carries its own figure: each counter and gauge is given a
    /// distinct value, so a series wired to the wrong field fails.
    #[test]
    fn remote_tier_series_carry_the_stores_counts_and_status() {
        let r = RemoteMetrics::default();
        let fields = [
            (&r.uploaded_segments, "wharf_remote_uploaded_segments_total"),
            (&r.uploaded_bytes, "wharf_remote_uploaded_bytes_total"),
            (&r.upload_failures, "wharf_remote_upload_failures_total"),
            (&r.failing_rounds, "wharf_remote_failing_rounds"),
            (
                &r.local_deleted_segments,
                "wharf_remote_local_deleted_segments_total",
            ),
            (
                &r.local_deleted_bytes,
                "wharf_remote_local_deleted_bytes_total",
            ),
            (
                &r.remote_deleted_segments,
                "wharf_remote_deleted_segments_total",
            ),
            (&r.remote_deleted_bytes, "wharf_remote_deleted_bytes_total"),
            (
                &r.remote_deleted_objects,
                "wharf_remote_deleted_objects_total",
            ),
            (&r.read_bytes, "wharf_remote_read_bytes_total"),
            (&r.cache_hits, "wharf_remote_cache_hits_total"),
            (&r.cache_misses, "wharf_remote_cache_misses_total"),
            (&r.fetched_bytes, "wharf_remote_fetched_bytes_total"),
        ];
        for (i, (counter, _)) in fields.iter().enumerate() {
            RemoteMetrics::add(counter, 100 + i as u64);
        }
        let status = RemoteStatus {
            pending_segments: 1,
            pending_bytes: 2,
            remote_segments: 3,
            remote_bytes: 4,
            cache_bytes: 5,
        };
        let mut s = Scrape::default();
        s.read_remote(&r, Some(status));
        let text = encoded(s);
        assert_eq!(value(&text, "wharf_remote_storage_enabled"), "1");
        for (i, (_, series)) in fields.iter().enumerate() {
            assert_eq!(value(&text, series), (100 + i).to_string(), "{series}");
        }
        for (series, v) in [
            ("wharf_remote_pending_segments", "1"),
            ("wharf_remote_pending_bytes", "2"),
            ("wharf_remote_segments", "3"),
            ("wharf_remote_bytes", "4"),
            ("wharf_remote_cache_bytes", "5"),
        ] {
            assert_eq!(value(&text, series), v, "{series}");
        }
        assert!(
            text.contains("# TYPE wharf_remote_failing_rounds gauge"),
            "{text}"
        );

        // Without a remote tier: the families are there, at zero, and say so.
        let mut s = Scrape::default();
        s.read_remote(&RemoteMetrics::default(), None);
        let text = encoded(s);
        assert_eq!(value(&text, "wharf_remote_storage_enabled"), "0");
        assert_eq!(value(&text, "wharf_remote_pending_bytes"), "0");
        assert_eq!(value(&text, "wharf_remote_uploaded_bytes_total"), "0");
    }
}
