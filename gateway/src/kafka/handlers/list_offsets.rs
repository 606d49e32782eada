//! ListOffsets: each partition's answer comes from [`Broker::kafka_offset_for_time`] (-1
//! latest, -2 earliest, -3 the record with the largest timestamp, else the first record at or
//! after the timestamp; offset -1 when there is none), at the request's `isolation_level` (v2+;
//! `read_committed` answers are bounded by the last stable offset, as Kafka's).
//!
//! [`Broker::kafka_offset_for_time`]: crate::broker::Broker::kafka_offset_for_time

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::Request;
use crate::broker::acl::{Operation, Resource};
use crate::broker::consume::Isolation;
use crate::kafka::errors;

pub async fn handle(req: &Request<'_>, r: ListOffsetsRequest) -> ListOffsetsResponse {
    let isolation = Isolation::from_kafka(r.isolation_level);
    let mut topics = Vec::with_capacity(r.topics.len());
    for t in r.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        let may = req.may(Operation::Describe, Resource::Topic(t.name.0.as_str()));
        for p in t.partitions {
            if !may {
                partitions.push(
                    ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(errors::code::TOPIC_AUTHORIZATION_FAILED)
                        .with_offset(-1)
                        .with_timestamp(-1),
                );
                continue;
            }
            let out =
                ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
            partitions.push(
                match req
                    .broker()
                    .kafka_offset_for_time(
                        t.name.0.as_str(),
                        p.partition_index,
                        p.timestamp,
                        isolation,
                    )
                    .await
                {
                    Ok((offset, timestamp)) => out.with_offset(offset).with_timestamp(timestamp),
                    Err(e) => out.with_error_code(errors::for_broker(&e)),
                },
            );
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}
