//! OffsetFetch: a group's committed positions, for the partitions asked or for all of them.
//! A partition without a commit reads -1. With `require_stable` (v7+), a partition with an
//! offset committed in a transaction still in progress is UNSTABLE_OFFSET_COMMIT (KIP-447).

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};

use super::{str_bytes, Request};
use crate::broker::acl::{Operation, Resource};
use crate::broker::CommittedOffset;
use crate::kafka::errors::code;

pub fn handle(req: &Request<'_>, r: OffsetFetchRequest) -> OffsetFetchResponse {
    let group = r.group_id.0.to_string();
    // Describe on the group (else GROUP_AUTHORIZATION_FAILED: at the top from v2, on each
    // partition asked before), then Describe on each topic: a topic asked for is
    // TOPIC_AUTHORIZATION_FAILED, one not asked for is left out (as Kafka does). The empty
    // group id is authorized like any other (Kafka does), before it is found invalid.
    if !req.may(Operation::Describe, Resource::Group(&group)) {
        let denied = code::GROUP_AUTHORIZATION_FAILED;
        if req.version >= 2 {
            return OffsetFetchResponse::default().with_error_code(denied);
        }
        let topics = r
            .topics
            .unwrap_or_default()
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partition_indexes
                    .into_iter()
                    .map(|index| partition(index, None).with_error_code(denied))
                    .collect();
                OffsetFetchResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect();
        return OffsetFetchResponse::default().with_topics(topics);
    }
    let stable = req.version >= 7 && r.require_stable;
    let unstable = |topic: &str, index: i32| {
        stable && req.broker().has_pending_txn_offset(&group, topic, index)
    };
    let topics: Vec<OffsetFetchResponseTopic> = match r.topics {
        Some(asked) => asked
            .into_iter()
            .map(|t| {
                let may = req.may(Operation::Describe, Resource::Topic(t.name.0.as_str()));
                let partitions = t
                    .partition_indexes
                    .into_iter()
                    .map(|index| {
                        if !may {
                            return partition(index, None)
                                .with_error_code(code::TOPIC_AUTHORIZATION_FAILED);
                        }
                        if unstable(t.name.0.as_str(), index) {
                            return partition(index, None)
                                .with_error_code(code::UNSTABLE_OFFSET_COMMIT);
                        }
                        let committed = req.broker().group_offset(&group, t.name.0.as_str(), index);
                        partition(index, committed)
                    })
                    .collect();
                OffsetFetchResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect(),
        None => {
            // Every partition the group has a position on, by topic (sorted by name).
            let mut topics: Vec<OffsetFetchResponseTopic> = Vec::new();
            let mut may: Option<(String, bool)> = None;
            for (name, p, committed) in req.broker().group_offsets(&group) {
                let allowed = match &may {
                    Some((n, allowed)) if *n == name => *allowed,
                    _ => {
                        let allowed = req.may(Operation::Describe, Resource::Topic(&name));
                        may = Some((name.clone(), allowed));
                        allowed
                    }
                };
                if !allowed {
                    continue;
                }
                let part = if unstable(&name, p as i32) {
                    partition(p as i32, None).with_error_code(code::UNSTABLE_OFFSET_COMMIT)
                } else {
                    partition(p as i32, Some(committed))
                };
                match topics.last_mut() {
                    Some(t) if t.name.0.as_str() == name => t.partitions.push(part),
                    _ => topics.push(
                        OffsetFetchResponseTopic::default()
                            .with_name(TopicName(str_bytes(name)))
                            .with_partitions(vec![part]),
                    ),
                }
            }
            topics
        }
    };
    let error = if group.is_empty() {
        code::INVALID_GROUP_ID
    } else {
        code::NONE
    };
    let mut resp = OffsetFetchResponse::default().with_topics(topics);
    if req.version >= 2 {
        resp = resp.with_error_code(error);
    } else if error != code::NONE {
        for t in &mut resp.topics {
            for p in &mut t.partitions {
                p.error_code = error;
            }
        }
    }
    resp
}

fn partition(index: i32, committed: Option<CommittedOffset>) -> OffsetFetchResponsePartition {
    let p = OffsetFetchResponsePartition::default().with_partition_index(index);
    match committed {
        Some(c) => p
            .with_committed_offset(i64::try_from(c.next_offset).unwrap_or(i64::MAX))
            .with_committed_leader_epoch(c.leader_epoch)
            .with_metadata(Some(str_bytes(c.metadata))),
        None => p
            .with_committed_offset(-1)
            .with_committed_leader_epoch(-1)
            .with_metadata(Some(str_bytes(""))),
    }
}
