//! DescribeTopicPartitions (KIP-966): topics with their ids and partitions, in name order,
//! paged by a cursor, as Kafka's `DescribeTopicPartitionsRequestHandler` answers: at most
//! `response_partition_limit` partitions (clamped to 1..=[`MAX_PARTITIONS`], Kafka's
//! `max.request.partition.size.limit`), then a next cursor naming where to go on. Topics the
//! principal may not describe are TOPIC_AUTHORIZATION_FAILED when named and left out when all
//! are asked for; every topic answered carries its authorized operations.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};

use super::{str_bytes, Request};
use crate::broker::acl::{Operation, Resource};
use crate::broker::names::{topic_uuid, validate_kafka_name};
use crate::broker::TopicInfo;
use crate::kafka::errors::code;
use crate::kafka::NODE_ID;

/// Kafka's default `max.request.partition.size.limit`.
pub const MAX_PARTITIONS: i32 = 2000;

pub async fn handle(
    req: &Request<'_>,
    r: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let all = r.topics.is_empty();
    let cursor_topic = r.cursor.as_ref().map(|c| c.topic_name.0.to_string());
    let from = cursor_topic.clone().unwrap_or_default();
    // The topics at or after the cursor's, in name order (a set: each once).
    let known: BTreeMap<String, TopicInfo> = if all {
        req.broker().kafka_topics().into_iter().collect()
    } else {
        BTreeMap::new()
    };
    let names: BTreeSet<String> = if all {
        known.keys().filter(|n| **n >= from).cloned().collect()
    } else {
        r.topics
            .iter()
            .map(|t| t.name.0.to_string())
            .filter(|n| *n >= from)
            .collect()
    };
    // A cursor must name one of the topics asked for, and a partition that can exist: else
    // the whole request is INVALID_REQUEST, told per topic asked (Kafka's error response).
    let bad_cursor = r.cursor.as_ref().is_some_and(|c| {
        (!all && !names.contains(c.topic_name.0.as_str())) || c.partition_index < 0
    });
    if bad_cursor {
        let topics = r
            .topics
            .into_iter()
            .map(|t| {
                DescribeTopicPartitionsResponseTopic::default()
                    .with_name(Some(t.name))
                    .with_error_code(code::INVALID_REQUEST)
            })
            .collect();
        return DescribeTopicPartitionsResponse::default().with_topics(topics);
    }
    let mut refused = Vec::new();
    let mut remaining = r.response_partition_limit.clamp(1, MAX_PARTITIONS);
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names {
        if !req.may(Operation::Describe, Resource::Topic(&name)) {
            // Named topics the principal may not describe: refused without their id (their
            // existence is not disclosed); with every topic asked, just left out.
            if !all {
                refused.push(
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_name(Some(TopicName(str_bytes(name))))
                        .with_error_code(code::TOPIC_AUTHORIZATION_FAILED),
                );
            }
            continue;
        }
        if remaining == 0 {
            // Every partition of the topics before was given: go on from this one.
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(TopicName(str_bytes(name)))
                    .with_partition_index(0),
            );
            break;
        }
        let found = match known.get(&name) {
            Some(t) => Ok(t.clone()),
            None => match validate_kafka_name(&name) {
                Err(_) => Err(code::INVALID_TOPIC_EXCEPTION),
                Ok(()) => req
                    .topic(&name)
                    .map_err(|_| code::UNKNOWN_TOPIC_OR_PARTITION),
            },
        };
        let info = match found {
            Ok(t) => t,
            Err(error) => {
                if !all {
                    topics.push(
                        DescribeTopicPartitionsResponseTopic::default()
                            .with_name(Some(TopicName(str_bytes(name))))
                            .with_error_code(error),
                    );
                }
                continue;
            }
        };
        let count = i32::try_from(info.partitions).unwrap_or(i32::MAX);
        let start = if cursor_topic.as_deref() == Some(name.as_str()) {
            r.cursor.as_ref().map_or(0, |c| c.partition_index)
        } else {
            0
        };
        let upper = count.min(start.saturating_add(remaining));
        let partitions: Vec<_> = (start..upper).map(partition).collect();
        let given = partitions.len() as i32;
        let topic_name = TopicName(str_bytes(name));
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(topic_name.clone()))
                .with_topic_id(topic_uuid(&info))
                .with_partitions(partitions),
        );
        if upper < count {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(topic_name)
                    .with_partition_index(upper),
            );
            break;
        }
        remaining -= given;
    }
    for t in &mut topics {
        let name = t.name.as_ref().map_or("", |n| n.0.as_str());
        t.topic_authorized_operations = req
            .broker()
            .kafka_authorized_operations(req.principal, Resource::Topic(name));
    }
    topics.extend(refused);
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}

/// One partition: this node leads it and is its only replica; no leader epochs (as Metadata)
/// and no eligible leader replicas (KIP-966's ELR lists are empty).
fn partition(index: i32) -> DescribeTopicPartitionsResponsePartition {
    DescribeTopicPartitionsResponsePartition::default()
        .with_partition_index(index)
        .with_leader_id(NODE_ID.into())
        .with_leader_epoch(-1)
        .with_replica_nodes(vec![NODE_ID.into()])
        .with_isr_nodes(vec![NODE_ID.into()])
        .with_eligible_leader_replicas(Some(Vec::new()))
        .with_last_known_elr(Some(Vec::new()))
}
