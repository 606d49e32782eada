//! Consumer lag, for both doors' groups alike: how far each group's committed position on a
//! partition is behind the partition's end. Kafka groups and Iggy groups share their committed
//! positions by name ([`super::offsets`]), so one list covers both.
//!
//! Lag is Kafka's: the high watermark minus the committed next offset (0 when the group is at
//! or past the end). A position below the log start (retention or compaction removed what it
//! points to) still counts every offset up to the end, as Kafka's tools report it.

use std::collections::HashMap;

use super::{names, Broker, OffsetOwner};

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

impl Broker {
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
