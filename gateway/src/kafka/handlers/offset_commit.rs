//! OffsetCommit: a group's positions, checked against the member and generation by the broker
//! and stored in the offsets shared with native groups of the same name.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::Request;
use crate::broker::coordinator::MemberRef;
use crate::broker::offsets::GroupCommit;
use crate::kafka::errors::{code, for_partition_offset};

pub async fn handle(req: &Request<'_>, r: OffsetCommitRequest) -> OffsetCommitResponse {
    let group = r.group_id.0.to_string();
    let mut commits = Vec::new();
    let mut shape = Vec::with_capacity(r.topics.len());
    for t in r.topics {
        let mut indexes = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            indexes.push(p.partition_index);
            commits.push(GroupCommit {
                topic: t.name.0.as_str().to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if req.version >= 6 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                metadata: p
                    .committed_metadata
                    .as_ref()
                    .map_or(String::new(), |m| m.to_string()),
            });
        }
        shape.push((t.name, indexes));
    }
    let who = MemberRef {
        member_id: r.member_id.as_str(),
        group_instance_id: r.group_instance_id.as_ref().map(|s| s.as_str()),
        generation: r.generation_id_or_member_epoch,
    };
    let mut outcomes = req
        .broker()
        .commit_group_offsets(&group, who, commits)
        .await
        .into_iter();
    let topics = shape
        .into_iter()
        .map(|(name, indexes)| {
            let partitions = indexes
                .into_iter()
                .zip(outcomes.by_ref())
                .map(|(index, outcome)| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(match outcome {
                            Ok(()) => code::NONE,
                            Err(e) => for_partition_offset(&e),
                        })
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
