//! DeleteRecords: moves a partition's log start (durably); -1 means up to the high watermark.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::Request;
use crate::broker::acl::{Operation, Resource};
use crate::kafka::errors;

pub async fn handle(req: &Request<'_>, r: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(r.topics.len());
    for t in r.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        let may = req.may(Operation::Delete, Resource::Topic(t.name.0.as_str()));
        for p in t.partitions {
            let out = DeleteRecordsPartitionResult::default()
                .with_partition_index(p.partition_index)
                .with_low_watermark(-1);
            if !may {
                partitions.push(out.with_error_code(errors::code::TOPIC_AUTHORIZATION_FAILED));
                continue;
            }
            partitions.push(
                match req
                    .broker()
                    .delete_records(t.name.0.as_str(), p.partition_index, p.offset)
                    .await
                {
                    Ok(start) => out.with_low_watermark(start as i64),
                    Err(e) => out.with_error_code(errors::answer("delete records failed", &e).0),
                },
            );
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
