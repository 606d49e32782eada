//! DescribeLogDirs: the one data directory and the size of each partition in it.

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use super::{str_bytes, Request};
use crate::broker::acl::{Operation, Resource};
use crate::kafka::errors::code;

pub async fn handle(req: &Request<'_>, r: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    // Kafka: DESCRIBE on the cluster, else CLUSTER_AUTHORIZATION_FAILED and no directories.
    if !req.may(Operation::Describe, Resource::Cluster) {
        return DescribeLogDirsResponse::default()
            .with_error_code(code::CLUSTER_AUTHORIZATION_FAILED);
    }
    // A null topic list asks for every partition.
    let wanted: Option<Vec<(String, Vec<i32>)>> = r.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.topic.0.as_str().to_string(), t.partitions))
            .collect()
    });
    let dir = req.broker().describe_log_dir(wanted.as_deref());
    let topics = dir
        .topics
        .into_iter()
        .map(|t| {
            DescribeLogDirsTopic::default()
                .with_name(TopicName(str_bytes(t.name)))
                .with_partitions(
                    t.partitions
                        .into_iter()
                        .map(|(index, size)| {
                            DescribeLogDirsPartition::default()
                                .with_partition_index(index)
                                .with_partition_size(i64::try_from(size).unwrap_or(i64::MAX))
                                // The only replica is the leader: nothing to catch up.
                                .with_offset_lag(0)
                                .with_is_future_key(false)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeLogDirsResponse::default().with_results(vec![DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(dir.path))
        .with_topics(topics)
        .with_total_bytes(dir.total_bytes)
        .with_usable_bytes(dir.usable_bytes)])
}
