//! DescribeProducers: the idempotent and transactional producers active on partitions.

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use super::{str_bytes, Request};
use crate::broker::acl::{Operation, Resource};
use crate::broker::names::validate_kafka_name;
use crate::kafka::errors::{self, code};

pub async fn handle(req: &Request<'_>, r: DescribeProducersRequest) -> DescribeProducersResponse {
    let mut topics = Vec::with_capacity(r.topics.len());
    for t in r.topics {
        let name = t.name.0.as_str();
        // Kafka's order: a valid name, READ on the topic, the topic known; a topic-level
        // failure is answered for each partition asked.
        let topic = validate_kafka_name(name)
            .map_err(|e| errors::answer("describe producers failed", &e))
            .and_then(|()| {
                if req.may(Operation::Read, Resource::Topic(name)) {
                    Ok(())
                } else {
                    Err((
                        code::TOPIC_AUTHORIZATION_FAILED,
                        format!("not authorized to read topic `{name}`"),
                    ))
                }
            })
            .and_then(|()| {
                req.topic(name)
                    .map_err(|e| errors::answer("describe producers failed", &e))
            });
        let mut partitions = Vec::with_capacity(t.partition_indexes.len());
        for &index in &t.partition_indexes {
            let out = PartitionResponse::default().with_partition_index(index);
            let info = match &topic {
                Ok(info) => info,
                Err((error, message)) => {
                    partitions.push(
                        out.with_error_code(*error)
                            .with_error_message(Some(str_bytes(message.clone()))),
                    );
                    continue;
                }
            };
            partitions.push(match req.broker().active_producers(info, index).await {
                Ok(active) => out.with_active_producers(
                    active
                        .into_iter()
                        .map(|p| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(p.producer_id))
                                .with_producer_epoch(i32::from(p.epoch))
                                .with_last_sequence(p.last_sequence)
                                .with_last_timestamp(p.last_timestamp)
                                .with_coordinator_epoch(p.coordinator_epoch)
                                .with_current_txn_start_offset(p.current_txn_start_offset)
                        })
                        .collect(),
                ),
                Err(e) => {
                    let (error, message) = errors::answer("describe producers failed", &e);
                    out.with_error_code(error)
                        .with_error_message(Some(str_bytes(message)))
                }
            });
        }
        topics.push(
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    DescribeProducersResponse::default().with_topics(topics)
}
