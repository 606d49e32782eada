//! Wharf's two observability commands on the native door: consumer lag (10_005, for
//! `wharf consumer-group lag`) and the metrics snapshot (10_006, for `wharf top`). Both read
//! what the broker core and [`crate::metrics`] already keep; both need the `read_servers`
//! permission, as Iggy's stats and client lists do.

use bytes::BytesMut;
use wharf_protocol::responses::{MetricsSnapshotWire, PartitionLagWire, TopicTrafficWire};

use crate::broker::lag::PartitionLag;
use crate::broker::{now_us, Action, BrokerError};
use crate::metrics::process::ProcessSample;
use crate::metrics::DoorKind;
use crate::native::connection::Reply;
use crate::native::session::Session;

fn lag_wire(l: PartitionLag) -> PartitionLagWire {
    PartitionLagWire {
        group: l.group,
        stream: l.stream,
        topic: l.topic,
        partition: l.partition,
        committed: l.committed,
        end_offset: l.end_offset,
        lag: l.lag,
    }
}

impl Session {
    /// Every group's lag (or `group`'s) on every partition it has committed a position on,
    /// sorted by group, topic and partition.
    pub(crate) fn get_consumer_lag(&self, group: Option<&str>) -> Result<Reply, BrokerError> {
        self.broker
            .authorize(&self.principal()?, Action::ReadServers)?;
        let mut out = BytesMut::new();
        for row in self.broker.consumer_lag(group) {
            lag_wire(row).encode(&mut out);
        }
        Ok(Reply::body(out))
    }

    /// Traffic totals of every topic, connections per door, process figures and the
    /// `lag_rows` group partitions with the largest lag (ties by group, topic, partition).
    pub(crate) fn get_metrics_snapshot(&self, lag_rows: u32) -> Result<Reply, BrokerError> {
        self.broker
            .authorize(&self.principal()?, Action::ReadServers)?;
        let metrics = self.broker.metrics();
        let totals: std::collections::HashMap<(u32, u32), _> =
            metrics.topic_totals().into_iter().collect();
        let mut topics: Vec<TopicTrafficWire> = self
            .broker
            .topic_labels()
            .into_iter()
            .map(|(key, (stream, topic))| {
                let t = totals.get(&key).copied().unwrap_or_default();
                TopicTrafficWire {
                    stream,
                    topic,
                    bytes_in: t.bytes_in,
                    messages_in: t.messages_in,
                    bytes_out: t.bytes_out,
                    messages_out: t.messages_out,
                }
            })
            .collect();
        topics.sort_by(|a, b| (&a.stream, &a.topic).cmp(&(&b.stream, &b.topic)));
        let mut lag = self.broker.consumer_lag(None);
        // Stable: equal lags keep consumer_lag's (group, topic, partition) order.
        lag.sort_by_key(|l| std::cmp::Reverse(l.lag));
        lag.truncate(lag_rows as usize);
        let process = ProcessSample::now();
        let snapshot = MetricsSnapshotWire {
            uptime_us: now_us().saturating_sub(self.broker.started_at),
            metrics_enabled: metrics.enabled(),
            native_connections: metrics.connections(DoorKind::Native),
            kafka_connections: metrics.connections(DoorKind::Kafka),
            cpu_seconds: process.cpu_seconds,
            resident_bytes: process.resident_bytes,
            virtual_bytes: process.virtual_bytes,
            open_fds: process.open_fds,
            threads: process.threads,
            topics,
            lag: lag.into_iter().map(lag_wire).collect(),
        };
        let mut out = BytesMut::new();
        snapshot.encode(&mut out);
        Ok(Reply::body(out))
    }
}
