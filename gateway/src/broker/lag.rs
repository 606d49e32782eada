//! What the operator is shown of the broker, for both doors and the metrics endpoint alike:
//! consumer lag (how far each group's committed position on a partition is behind the
//! partition's end), each topic's traffic totals under its names, and the broker's uptime.
//! Kafka groups and Iggy groups share their committed positions by name
//! ([`super::offsets`]), so one list covers both.
//!
//! Lag is Kafka's: the high watermark minus the committed next offset (0 when the group is at
//! or past the end). A position below the log start (retention or compaction removed what it
//! points to) still counts every offset up to the end, as Kafka's tools report it.

use std::collections::HashMap;
use std::time::Duration;

use super::{names, Broker, OffsetOwner};
use crate::metrics::TrafficTotals;

/// One group's position on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub group: String,
    /// The topic's stream, by name.
    pub stream: String,
    /// The topic's name as Kafka clients know it: its own name in the Kafka default stream,
    /// `stream.topic` in another.
    pub topic: String,
    pub partition: u32,
    /// The next offset the group will read.
    pub committed: u64,
    /// The partition's high watermark.
    pub end_offset: u64,
    /// `end_offset - committed`, at least 0.
    pub lag: u64,
}

/// Where a topic's series and rows are labelled: (stream name, Kafka name).
pub type TopicLabels = HashMap<(u32, u32), (String, String)>;

/// One topic's traffic totals (both doors) under the names it is shown by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTraffic {
    /// The topic's stream, by name.
    pub stream: String,
    /// The topic's Kafka name (see [`PartitionLag::topic`]).
    pub topic: String,
    pub totals: TrafficTotals,
}

impl Broker {
    /// How long since this broker opened, on the monotonic clock: a step of the wall clock
    /// (NTP, an operator's `date`) never moves it, so rates over two uptimes stay true.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Every topic that exists with its traffic totals (0 until it is used; a deleted topic's
    /// are gone), sorted by stream and topic name.
    pub fn topic_traffic(&self) -> Vec<TopicTraffic> {
        let totals: HashMap<(u32, u32), TrafficTotals> =
            self.metrics.topic_totals().into_iter().collect();
        let mut out: Vec<TopicTraffic> = self
            .topic_labels()
            .into_iter()
            .map(|(key, (stream, topic))| TopicTraffic {
                stream,
                topic,
                totals: totals.get(&key).copied().unwrap_or_default(),
            })
            .collect();
        out.sort_by(|a, b| (&a.stream, &a.topic).cmp(&(&b.stream, &b.topic)));
        out
    }

    /// The `n` group partitions with the largest lag, largest first (equal lags by group,
    /// topic and partition), group ids cut as the metrics label them
    /// ([`crate::metrics::largest_lags`], the one selection every lag reader shares).
    pub fn largest_lags(&self, n: usize) -> Vec<PartitionLag> {
        let (mut rows, _omitted) = crate::metrics::largest_lags(self.consumer_lag(None), n);
        // Sorted there only when rows were left out; stable, so equal lags keep
        // consumer_lag's (group, topic, partition) order.
        rows.sort_by_key(|l| std::cmp::Reverse(l.lag));
        rows
    }

    /// The names every topic is shown under, by (stream id, topic id).
    pub fn topic_labels(&self) -> TopicLabels {
        let mut out = HashMap::new();
        for s in self.store.streams() {
            for t in self
                .store
                .topics(super::Ident::Id(s.id))
                .unwrap_or_default()
            {
                let kafka = names::kafka_name(&self.default_stream, &s.name, &t.name);
                out.insert((s.id, t.id), (s.name.clone(), kafka));
            }
        }
        out
    }

    /// Every group's lag on every partition it has committed a position on (only `group`'s
    /// when given), sorted by group, topic and partition. Partitions deleted since are left out.
    pub fn consumer_lag(&self, group: Option<&str>) -> Vec<PartitionLag> {
        let labels = self.topic_labels();
        let mut out: Vec<PartitionLag> = self
            .store
            .offsets()
            .list(|k| match &k.owner {
                OffsetOwner::Group(g) => group.is_none_or(|want| want == g),
                OffsetOwner::Consumer(_) => false,
            })
            .into_iter()
            .filter_map(|(k, committed)| {
                let (stream, topic) = labels.get(&(k.stream, k.topic))?;
                let end = self
                    .partition_handle(k.stream, k.topic, k.partition)
                    .ok()?
                    .high_watermark();
                Some(PartitionLag {
                    group: k.owner.id().to_string(),
                    stream: stream.clone(),
                    topic: topic.clone(),
                    partition: k.partition,
                    committed: committed.next_offset,
                    end_offset: end,
                    lag: end.saturating_sub(committed.next_offset),
                })
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.group, &a.topic, a.partition).cmp(&(&b.group, &b.topic, b.partition))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use std::sync::Arc;
    use std::time::Instant;

    use bytes::BytesMut;
    use wharf_log_store::{NewBatch, OffsetKey, Partition, StoreConfig};

    use super::*;
    use crate::broker::{now_us, BrokerSettings, TopicSettings};

    fn broker(dir: &std::path::Path) -> Broker {
        let settings = BrokerSettings::for_tests();
        Broker::open(dir, StoreConfig::default(), settings).unwrap()
    }

    /// Appends `n` one-byte messages, so the high watermark moves up by `n`.
    async fn append(p: &Arc<Partition>, n: usize) {
        let mut blob = BytesMut::new();
        for i in 0..n {
            wharf_protocol::message::encode_message(i as u128 + 1, 0, b"x", &[], &mut blob);
        }
        p.append(NewBatch::native(blob).unwrap()).await.unwrap();
    }

    fn commit(b: &Broker, group: &str, p: &Arc<Partition>, next_offset: u64) {
        let k = p.key();
        let key = OffsetKey {
            owner: OffsetOwner::Group(group.into()),
            stream: k.stream,
            topic: k.topic,
            partition: k.partition,
        };
        crate::broker::consume::commit_position(&b.store, key, next_offset).unwrap();
    }

    /// Every topic is listed under its stream and Kafka name with the hot-path totals, 0 when
    /// never used; a deleted topic is gone with its counts.
    #[tokio::test]
    async fn topic_traffic_names_every_topic_with_its_totals() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        let orders = b
            .create_kafka_topic("orders", 1, Default::default(), false)
            .await
            .unwrap()
            .unwrap();
        let s = b.create_stream("s").await.unwrap();
        let t = b
            .create_topic(s.id, "t", 1, TopicSettings::default())
            .await
            .unwrap();
        b.metrics().topic_in(orders.stream_id, orders.id, 100, 2);
        b.metrics().topic_out(orders.stream_id, orders.id, 50, 1);
        let counted = TrafficTotals {
            bytes_in: 100,
            messages_in: 2,
            bytes_out: 50,
            messages_out: 1,
        };
        let row = |stream: &str, topic: &str, totals| TopicTraffic {
            stream: stream.into(),
            topic: topic.into(),
            totals,
        };
        assert_eq!(
            b.topic_traffic(),
            vec![
                row("default", "orders", counted),
                row("s", "s.t", TrafficTotals::default())
            ]
        );
        b.delete_topic(orders.stream_id, orders.id).await.unwrap();
        assert_eq!(
            b.topic_traffic(),
            vec![row("s", "s.t", TrafficTotals::default())]
        );
        b.delete_topic(s.id, t.id).await.unwrap();
        assert!(b.topic_traffic().is_empty());
    }

    /// The n largest lags, largest first, equal lags by group then partition; n = 0 gives
    /// nothing and n beyond the rows gives them all.
    #[tokio::test]
    async fn largest_lags_are_the_n_largest_first() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        let t = b
            .create_kafka_topic("orders", 3, Default::default(), false)
            .await
            .unwrap()
            .unwrap();
        let p: Vec<_> = (0..3)
            .map(|i| b.partition_handle(t.stream_id, t.id, i).unwrap())
            .collect();
        for (partition, n) in p.iter().zip([5, 7, 2]) {
            append(partition, n).await;
        }
        // Lags: a/0 = 5, a/1 = 1, a/2 = 2, b/0 = 5, b/1 = 7, c/2 = 0.
        commit(&b, "a", &p[0], 0);
        commit(&b, "a", &p[1], 6);
        commit(&b, "a", &p[2], 0);
        commit(&b, "b", &p[0], 0);
        commit(&b, "b", &p[1], 0);
        commit(&b, "c", &p[2], 2);
        let lags = |n| -> Vec<(String, u32, u64)> {
            b.largest_lags(n)
                .into_iter()
                .map(|l| (l.group, l.partition, l.lag))
                .collect()
        };
        let row = |g: &str, p, lag| (g.to_string(), p, lag);
        assert_eq!(
            lags(3),
            vec![row("b", 1, 7), row("a", 0, 5), row("b", 0, 5)]
        );
        assert_eq!(lags(1), vec![row("b", 1, 7)]);
        assert!(lags(0).is_empty());
        assert_eq!(
            lags(100),
            vec![
                row("b", 1, 7),
                row("a", 0, 5),
                row("b", 0, 5),
                row("a", 2, 2),
                row("a", 1, 1),
                row("c", 2, 0)
            ]
        );
    }

    /// The uptime is the monotonic clock's: moving the wall-clock start (as a clock step
    /// would move `now_us` against it) changes nothing; it never exceeds the time since before
    /// the open and never goes back.
    #[tokio::test]
    async fn uptime_is_the_monotonic_clock_not_the_wall_clock() {
        let dir = tempfile::tempdir().unwrap();
        let before_open = Instant::now();
        let mut b = broker(dir.path());
        // The wall clock stepped forward decades, then back an hour past the start.
        b.started_at = 0;
        let first = b.uptime();
        assert!(first <= before_open.elapsed(), "{first:?}");
        b.started_at = now_us() + 3_600_000_000;
        let second = b.uptime();
        assert!(second >= first, "{second:?} < {first:?}");
        assert!(second <= before_open.elapsed(), "{second:?}");
    }
}
