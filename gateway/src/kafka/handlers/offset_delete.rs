//! OffsetDelete: drops a group's committed offsets for some partitions, unless the group has
//! members subscribed to the topic (GROUP_SUBSCRIBED_TO_TOPIC).

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::Request;
use crate::broker::acl::{Operation, Resource};
use crate::kafka::errors::{code, for_partition_offset};

pub async fn handle(req: &Request<'_>, r: OffsetDeleteRequest) -> OffsetDeleteResponse {
    if !req.may(Operation::Delete, Resource::Group(r.group_id.0.as_str())) {
        return OffsetDeleteResponse::default().with_error_code(code::GROUP_AUTHORIZATION_FAILED);
    }
    // Topics the principal may not read: their partitions TOPIC_AUTHORIZATION_FAILED.
    let denied: Vec<bool> = r
        .topics
        .iter()
        .map(|t| !req.may(Operation::Read, Resource::Topic(t.name.0.as_str())))
        .collect();
    let asked: Vec<(String, Vec<i32>)> = r
        .topics
        .iter()
        .zip(&denied)
        .filter(|(_, &d)| !d)
        .map(|(t, _)| {
            (
                t.name.0.as_str().to_string(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let outcome = req
        .broker()
        .delete_group_offsets(r.group_id.0.as_str(), asked)
        .await;
    match outcome {
        Err(e) => OffsetDeleteResponse::default().with_error_code(for_partition_offset(&e)),
        Ok(per_topic) => {
            let mut per_topic = per_topic.into_iter();
            let topics = r
                .topics
                .into_iter()
                .zip(denied)
                .map(|(t, denied)| {
                    let mut results = if denied {
                        Vec::new()
                    } else {
                        per_topic.next().unwrap_or_default()
                    }
                    .into_iter();
                    let partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            let error = if denied {
                                code::TOPIC_AUTHORIZATION_FAILED
                            } else {
                                match results.next() {
                                    Some(Ok(())) => code::NONE,
                                    Some(Err(e)) => for_partition_offset(&e),
                                    None => code::UNKNOWN_SERVER_ERROR,
                                }
                            };
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(error)
                        })
                        .collect();
                    OffsetDeleteResponseTopic::default()
                        .with_name(t.name)
                        .with_partitions(partitions)
                })
                .collect();
            OffsetDeleteResponse::default()
                .with_error_code(code::NONE)
                .with_topics(topics)
        }
    }
}
