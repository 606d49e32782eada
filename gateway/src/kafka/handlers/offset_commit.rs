//! OffsetCommit: a group's positions, checked against the member and generation by the broker
//! and stored in the offsets shared with native groups of the same name.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::Request;
use crate::broker::acl::{Operation, Resource};
use crate::broker::coordinator::MemberRef;
use crate::broker::offsets::GroupCommit;
use crate::kafka::errors::{code, for_partition_offset};

pub async fn handle(req: &Request<'_>, r: OffsetCommitRequest) -> OffsetCommitResponse {
    let group = r.group_id.0.to_string();
    let mut commits = Vec::new();
    let mut shape = Vec::with_capacity(r.topics.len());
    // Kafka's checks: Read on the group (else every partition GROUP_AUTHORIZATION_FAILED),
    // then Read on each topic (else its partitions TOPIC_AUTHORIZATION_FAILED).
    let group_denied = !req.may(Operation::Read, Resource::Group(&group));
    // A consumer-protocol member must commit with v9+ (its member epoch), as Kafka requires.
    let too_old = !group_denied
        && req.version < 9
        && req
            .broker()
            .offset_commit_needs_v9(&group, r.member_id.as_str());
    for t in r.topics {
        let refused = if group_denied {
            Some(code::GROUP_AUTHORIZATION_FAILED)
        } else if too_old {
            Some(code::UNSUPPORTED_VERSION)
        } else if !req.may(Operation::Read, Resource::Topic(t.name.0.as_str())) {
            Some(code::TOPIC_AUTHORIZATION_FAILED)
        } else {
            None
        };
        let mut indexes = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            indexes.push(p.partition_index);
            if refused.is_some() {
                continue;
            }
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
        shape.push((t.name, indexes, refused));
    }
    let who = MemberRef {
        member_id: r.member_id.as_str(),
        group_instance_id: r.group_instance_id.as_ref().map(|s| s.as_str()),
        generation: r.generation_id_or_member_epoch,
    };
    let mut outcomes = if commits.is_empty() && !shape.is_empty() {
        Vec::new()
    } else {
        req.broker()
            .commit_group_offsets(&group, who, commits)
            .await
    }
    .into_iter();
    let topics = shape
        .into_iter()
        .map(|(name, indexes, refused)| {
            let partitions = indexes
                .into_iter()
                .map(|index| {
                    let error = match refused {
                        Some(error) => error,
                        None => match outcomes.next() {
                            Some(Ok(())) => code::NONE,
                            Some(Err(e)) => for_partition_offset(&e),
                            None => code::UNKNOWN_SERVER_ERROR,
                        },
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(error)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
