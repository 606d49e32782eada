//! AlterReplicaLogDirs: moving a replica to another log directory. There is one, the data
//! directory: naming it succeeds (the replica is there already), any other path is
//! LOG_DIR_NOT_FOUND, as Kafka answers for a directory not in its `log.dirs`.

use std::collections::HashMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::{AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse};

use super::Request;
use crate::broker::acl::{Operation, Resource};
use crate::broker::admin::LogDirError;
use crate::kafka::errors::code;

pub async fn handle(
    req: &Request<'_>,
    r: AlterReplicaLogDirsRequest,
) -> AlterReplicaLogDirsResponse {
    // Kafka: ALTER on the cluster, else every partition CLUSTER_AUTHORIZATION_FAILED.
    let authorized = req.may(Operation::Alter, Resource::Cluster);
    // As Kafka, one destination per partition (a partition named twice takes the last) and
    // one answer per topic.
    let mut topics: Vec<AlterReplicaLogDirTopicResult> = Vec::new();
    let mut topic_at: HashMap<String, usize> = HashMap::new();
    let mut dest_of: HashMap<(usize, i32), String> = HashMap::new();
    for dir in &r.dirs {
        for topic in &dir.topics {
            let name = topic.name.0.as_str().to_string();
            let at = *topic_at.entry(name).or_insert_with(|| {
                topics.push(
                    AlterReplicaLogDirTopicResult::default().with_topic_name(topic.name.clone()),
                );
                topics.len() - 1
            });
            for &p in &topic.partitions {
                if dest_of.insert((at, p), dir.path.to_string()).is_none() {
                    if let Some(t) = topics.get_mut(at) {
                        t.partitions.push(
                            AlterReplicaLogDirPartitionResult::default().with_partition_index(p),
                        );
                    }
                }
            }
        }
    }
    for (at, t) in topics.iter_mut().enumerate() {
        let name = t.topic_name.0.as_str().to_string();
        for p in &mut t.partitions {
            let dest = dest_of
                .get(&(at, p.partition_index))
                .map_or("", String::as_str);
            p.error_code = if !authorized {
                code::CLUSTER_AUTHORIZATION_FAILED
            } else {
                match req
                    .broker()
                    .alter_replica_log_dir(dest, &name, p.partition_index)
                {
                    Ok(()) => code::NONE,
                    Err(LogDirError::NotFound(_)) => ResponseError::LogDirNotFound.code(),
                    Err(LogDirError::UnknownPartition { .. }) => code::UNKNOWN_TOPIC_OR_PARTITION,
                }
            };
        }
    }
    AlterReplicaLogDirsResponse::default().with_results(topics)
}
