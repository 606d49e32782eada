//! OffsetDelete: drops a group's committed offsets for some partitions, unless the group has
//! members subscribed to the topic (GROUP_SUBSCRIBED_TO_TOPIC).

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::Request;
use crate::kafka::errors::{code, for_partition_offset};

pub async fn handle(req: &Request<'_>, r: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let asked: Vec<(String, Vec<i32>)> = r
        .topics
        .iter()
        .map(|t| {
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
            let topics = r
                .topics
                .into_iter()
                .zip(per_topic)
                .map(|(t, results)| {
                    let partitions = t
                        .partitions
                        .iter()
                        .zip(results)
                        .map(|(p, result)| {
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(match result {
                                    Ok(()) => code::NONE,
                                    Err(e) => for_partition_offset(&e),
                                })
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
