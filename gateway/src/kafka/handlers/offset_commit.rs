//! OffsetCommit: a group's positions, checked against the member and generation, stored in the
//! log store's offsets (shared with native groups of the same name).

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use wharf_log_store::{CommittedOffset, OffsetKey, OffsetOwner};

use super::Request;
use crate::broker::coordinator::MemberRef;
use crate::broker::now_us;
use crate::kafka::errors::{code, for_group};

/// Kafka's `offset.metadata.max.bytes` default.
pub const MAX_METADATA: usize = 4096;

pub fn handle(req: &Request<'_>, r: OffsetCommitRequest) -> OffsetCommitResponse {
    let group = r.group_id.0.to_string();
    let now = now_us();
    // Each partition's answer, and the commits of those that are fine so far.
    let mut topics: Vec<OffsetCommitResponseTopic> = Vec::with_capacity(r.topics.len());
    let mut items = Vec::new();
    let mut slots = Vec::new();
    for (ti, t) in r.topics.into_iter().enumerate() {
        let topic = req.topic(t.name.0.as_str());
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for (pi, p) in t.partitions.into_iter().enumerate() {
            let metadata = p.committed_metadata.as_ref().map_or("", |m| m.as_str());
            let error = match &topic {
                _ if group.is_empty() => code::INVALID_GROUP_ID,
                Err(_) => code::UNKNOWN_TOPIC_OR_PARTITION,
                Ok(info)
                    if p.partition_index < 0 || p.partition_index as u32 >= info.partitions =>
                {
                    code::UNKNOWN_TOPIC_OR_PARTITION
                }
                Ok(_) if metadata.len() > MAX_METADATA => code::OFFSET_METADATA_TOO_LARGE,
                Ok(_) if p.committed_offset < 0 => code::INVALID_COMMIT_OFFSET_SIZE,
                Ok(info) => {
                    items.push((
                        OffsetKey {
                            owner: OffsetOwner::Group(group.clone()),
                            stream: info.stream_id,
                            topic: info.id,
                            partition: p.partition_index as u32,
                        },
                        CommittedOffset {
                            next_offset: p.committed_offset as u64,
                            leader_epoch: if req.version >= 6 {
                                p.committed_leader_epoch
                            } else {
                                -1
                            },
                            metadata: metadata.to_string(),
                            commit_timestamp: now,
                        },
                    ));
                    slots.push((ti, pi));
                    code::NONE
                }
            };
            partitions.push(
                OffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(error),
            );
        }
        topics.push(
            OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    if !items.is_empty() {
        let who = MemberRef {
            member_id: r.member_id.as_str(),
            group_instance_id: r.group_instance_id.as_ref().map(|s| s.as_str()),
            generation: r.generation_id_or_member_epoch,
        };
        let offsets = req.broker().store.offsets();
        let outcome = req
            .broker()
            .coordinator
            .commit_offsets(&group, who, || offsets.commit_many(items));
        let error = match outcome {
            Ok(Ok(())) => code::NONE,
            Ok(Err(e)) => {
                tracing::warn!(%group, "cannot store committed offsets: {e}");
                code::UNKNOWN_SERVER_ERROR
            }
            Err(e) => for_group(&e),
        };
        for (ti, pi) in slots {
            topics[ti].partitions[pi].error_code = error;
        }
    }
    OffsetCommitResponse::default().with_topics(topics)
}
