//! Native command handlers, one module per command group. Each is an `impl Session` block that
//! checks permissions, calls the broker and encodes the answer.

mod groups;
mod messages;
mod observe;
mod offsets;
mod streams;
mod system;
mod users;

use wharf_protocol::responses::{PartitionWire, StreamWire, TopicWire};
use wharf_protocol::Identifier;

use super::session::{ident, Session};
use crate::broker::{Action, BrokerError, Ident, TopicInfo};

impl Session {
    /// Resolves a stream and topic to the topic's catalog entry.
    pub(crate) fn topic_info(
        &self,
        stream: &Identifier,
        topic: &Identifier,
    ) -> Result<TopicInfo, BrokerError> {
        self.broker.topic(ident(stream), ident(topic))
    }

    /// Resolves a topic and checks the logged-in user may do `action` on it.
    pub(crate) fn authorized_topic(
        &self,
        stream: &Identifier,
        topic: &Identifier,
        action: fn(u32, u32) -> Action<'static>,
    ) -> Result<TopicInfo, BrokerError> {
        let t = self.topic_info(stream, topic)?;
        self.broker
            .authorize(&self.principal()?, action(t.stream_id, t.id))?;
        Ok(t)
    }

    pub(crate) fn stream_wire(&self, id: u32) -> Result<(StreamWire, Vec<TopicWire>), BrokerError> {
        let s = self.broker.stream(Ident::Id(id))?;
        let topics: Vec<TopicWire> = self
            .broker
            .topics(id)?
            .iter()
            .map(|t| self.topic_wire(t).0)
            .collect();
        Ok((
            StreamWire {
                id: s.id,
                created_at: s.created_at,
                topics_count: topics.len() as u32,
                size_bytes: topics.iter().map(|t| t.size_bytes).sum(),
                messages_count: topics.iter().map(|t| t.messages_count).sum(),
                name: s.name,
            },
            topics,
        ))
    }

    pub(crate) fn topic_wire(&self, t: &TopicInfo) -> (TopicWire, Vec<PartitionWire>) {
        let partitions: Vec<PartitionWire> = self
            .broker
            .partition_stats(t.stream_id, t.id)
            .iter()
            .zip(0u32..)
            .map(|(s, id)| PartitionWire {
                id,
                created_at: t.created_at,
                segments_count: s.segments as u32,
                current_offset: s.high_watermark.saturating_sub(1),
                size_bytes: s.size_bytes,
                // Offsets, not records: on a compacted topic the holes count too (the records
                // left are known only by reading the log; README, Compaction).
                messages_count: s.high_watermark.saturating_sub(s.log_start_offset),
            })
            .collect();
        let topic = TopicWire {
            id: t.id,
            created_at: t.created_at,
            partitions_count: partitions.len() as u32,
            message_expiry: t.settings.message_expiry.map_or(u64::MAX, |d| {
                d.as_micros().min(u128::from(u64::MAX - 1)) as u64
            }),
            compression: 1,
            max_topic_size: t.settings.max_size.unwrap_or(u64::MAX),
            replication_factor: 1,
            size_bytes: partitions.iter().map(|p| p.size_bytes).sum(),
            messages_count: partitions.iter().map(|p| p.messages_count).sum(),
            name: t.name.clone(),
        };
        (topic, partitions)
    }
}
