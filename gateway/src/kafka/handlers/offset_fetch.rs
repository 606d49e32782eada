//! OffsetFetch: a group's committed positions, for the partitions asked or for all of them.
//! A partition without a commit reads -1. With `require_stable` (v7+), a partition with an
//! offset committed in a transaction still in progress is UNSTABLE_OFFSET_COMMIT (KIP-447).
//! v8+ asks for several groups at once, each answered with its own error; v9 names the member
//! (id and epoch), which a consumer-protocol group checks as Kafka's `validateOffsetFetch`
//! (UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH).

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};

use super::{str_bytes, Request};
use crate::broker::acl::{Operation, Resource};
use crate::broker::CommittedOffset;
use crate::kafka::errors::{code, for_group};

/// One partition's answer, whatever the version.
struct Part {
    index: i32,
    committed: Option<CommittedOffset>,
    error: i16,
}

/// One group's answer: its error and its topics' partitions.
struct GroupAnswer {
    error: i16,
    topics: Vec<(TopicName, Vec<Part>)>,
}

pub fn handle(req: &Request<'_>, r: OffsetFetchRequest) -> OffsetFetchResponse {
    let stable = req.version >= 7 && r.require_stable;
    if req.version >= 8 {
        let groups = r
            .groups
            .into_iter()
            .map(|g| {
                let asked = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name, t.partition_indexes))
                        .collect()
                });
                let member = g.member_id.as_ref().map(|m| m.as_str());
                let who = (req.version >= 9 && !(member.is_none() && g.member_epoch < 0))
                    .then(|| (member.unwrap_or(""), g.member_epoch));
                let answer = fetch_group(req, g.group_id.0.as_str(), asked, stable, who);
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_error_code(answer.error)
                    .with_topics(
                        answer
                            .topics
                            .into_iter()
                            .map(|(name, parts)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(name)
                                    .with_partitions(parts.into_iter().map(partitions).collect())
                            })
                            .collect(),
                    )
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let asked = r.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name, t.partition_indexes))
            .collect()
    });
    let answer = fetch_group(req, r.group_id.0.as_str(), asked, stable, None);
    let mut topics: Vec<OffsetFetchResponseTopic> = answer
        .topics
        .into_iter()
        .map(|(name, parts)| {
            OffsetFetchResponseTopic::default()
                .with_name(name)
                .with_partitions(parts.into_iter().map(partition).collect())
        })
        .collect();
    if req.version >= 2 {
        return OffsetFetchResponse::default()
            .with_topics(topics)
            .with_error_code(answer.error);
    }
    // v0-1 have no top-level error: it goes on every partition asked.
    if answer.error != code::NONE {
        for t in &mut topics {
            for p in &mut t.partitions {
                p.error_code = answer.error;
            }
        }
    }
    OffsetFetchResponse::default().with_topics(topics)
}

fn fetch_group(
    req: &Request<'_>,
    group: &str,
    asked: Option<Vec<(TopicName, Vec<i32>)>>,
    stable: bool,
    member: Option<(&str, i32)>,
) -> GroupAnswer {
    // Describe on the group (else GROUP_AUTHORIZATION_FAILED: at the top from v2, on each
    // partition asked before), then Describe on each topic: a topic asked for is
    // TOPIC_AUTHORIZATION_FAILED, one not asked for is left out (as Kafka does). The empty
    // group id is authorized like any other (Kafka does), before it is found invalid.
    if !req.may(Operation::Describe, Resource::Group(group)) {
        let denied = code::GROUP_AUTHORIZATION_FAILED;
        let topics = if req.version >= 2 {
            Vec::new()
        } else {
            asked
                .unwrap_or_default()
                .into_iter()
                .map(|(name, indexes)| {
                    let parts = indexes
                        .into_iter()
                        .map(|index| Part {
                            index,
                            committed: None,
                            error: denied,
                        })
                        .collect();
                    (name, parts)
                })
                .collect()
        };
        return GroupAnswer {
            error: denied,
            topics,
        };
    }
    if let Err(e) = req.broker().check_offset_fetch_member(group, member) {
        return GroupAnswer {
            error: for_group(&e),
            topics: Vec::new(),
        };
    }
    let unstable = |topic: &str, index: i32| {
        stable && req.broker().has_pending_txn_offset(group, topic, index)
    };
    let topics = match asked {
        Some(asked) => asked
            .into_iter()
            .map(|(name, indexes)| {
                let may = req.may(Operation::Describe, Resource::Topic(name.0.as_str()));
                let parts = indexes
                    .into_iter()
                    .map(|index| {
                        let error = if !may {
                            code::TOPIC_AUTHORIZATION_FAILED
                        } else if unstable(name.0.as_str(), index) {
                            code::UNSTABLE_OFFSET_COMMIT
                        } else {
                            code::NONE
                        };
                        let committed = (error == code::NONE)
                            .then(|| req.broker().group_offset(group, name.0.as_str(), index))
                            .flatten();
                        Part {
                            index,
                            committed,
                            error,
                        }
                    })
                    .collect();
                (name, parts)
            })
            .collect(),
        None => {
            // Every partition the group has a position on, by topic (sorted by name).
            let mut topics: Vec<(TopicName, Vec<Part>)> = Vec::new();
            let mut may: Option<(String, bool)> = None;
            for (name, p, committed) in req.broker().group_offsets(group) {
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
                let index = i32::try_from(p).unwrap_or(i32::MAX);
                let part = if unstable(&name, index) {
                    Part {
                        index,
                        committed: None,
                        error: code::UNSTABLE_OFFSET_COMMIT,
                    }
                } else {
                    Part {
                        index,
                        committed: Some(committed),
                        error: code::NONE,
                    }
                };
                match topics.last_mut() {
                    Some((t, parts)) if t.0.as_str() == name => parts.push(part),
                    _ => topics.push((TopicName(str_bytes(name)), vec![part])),
                }
            }
            topics
        }
    };
    // The empty group id is answered like any other, then found invalid.
    let error = if group.is_empty() {
        code::INVALID_GROUP_ID
    } else {
        code::NONE
    };
    GroupAnswer { error, topics }
}

/// (offset, leader epoch, metadata) as the answer carries them: -1, -1, "" without a commit.
fn fields(c: Option<CommittedOffset>) -> (i64, i32, String) {
    match c {
        Some(c) => (
            i64::try_from(c.next_offset).unwrap_or(i64::MAX),
            c.leader_epoch,
            c.metadata,
        ),
        None => (-1, -1, String::new()),
    }
}

fn partition(p: Part) -> OffsetFetchResponsePartition {
    let (offset, epoch, metadata) = fields(p.committed);
    OffsetFetchResponsePartition::default()
        .with_partition_index(p.index)
        .with_committed_offset(offset)
        .with_committed_leader_epoch(epoch)
        .with_metadata(Some(str_bytes(metadata)))
        .with_error_code(p.error)
}

fn partitions(p: Part) -> OffsetFetchResponsePartitions {
    let (offset, epoch, metadata) = fields(p.committed);
    OffsetFetchResponsePartitions::default()
        .with_partition_index(p.index)
        .with_committed_offset(offset)
        .with_committed_leader_epoch(epoch)
        .with_metadata(Some(str_bytes(metadata)))
        .with_error_code(p.error)
}
