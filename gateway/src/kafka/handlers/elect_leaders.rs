//! ElectLeaders: every partition's only replica leads it and is its preferred leader, so an
//! election is never needed (ELECTION_NOT_NEEDED, as Kafka's controller answers for a
//! partition that has its preferred leader, or any leader for an unclean election).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};

use super::{str_bytes, Request};
use crate::broker::acl::{Operation, Resource};
use crate::broker::admin::Election;
use crate::kafka::errors::code;

/// Kafka's election types: PREFERRED (0) and UNCLEAN (1).
const ELECTION_TYPES: [i8; 2] = [0, 1];

pub async fn handle(req: &Request<'_>, r: ElectLeadersRequest) -> ElectLeadersResponse {
    // Kafka's controller: ALTER on the cluster, then a known election type; either failing
    // fails the whole request, every partition asked for carrying the error.
    if !req.may(Operation::Alter, Resource::Cluster) {
        return refuse(
            &r,
            code::CLUSTER_AUTHORIZATION_FAILED,
            "not authorized to elect leaders (ALTER on the cluster)".into(),
        );
    }
    if !ELECTION_TYPES.contains(&r.election_type) {
        return refuse(
            &r,
            code::INVALID_REQUEST,
            format!("unknown election type {}", r.election_type),
        );
    }
    let not_needed = ResponseError::ElectionNotNeeded.code();
    let results = match r.topic_partitions {
        // Every partition: those that need no election are left out, as Kafka does.
        None => req
            .broker()
            .kafka_topics()
            .into_iter()
            .map(|(name, _)| {
                ReplicaElectionResult::default().with_topic(TopicName(str_bytes(name)))
            })
            .collect(),
        Some(topics) => topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|&p| {
                        let (error, message) =
                            match req.broker().elect_leader(t.topic.0.as_str(), p) {
                                Election::NotNeeded => (not_needed, None),
                                Election::UnknownPartition => (
                                    code::UNKNOWN_TOPIC_OR_PARTITION,
                                    Some(str_bytes(format!(
                                        "no partition {p} of topic {}",
                                        t.topic.0.as_str()
                                    ))),
                                ),
                            };
                        PartitionResult::default()
                            .with_partition_id(p)
                            .with_error_code(error)
                            .with_error_message(message)
                    })
                    .collect();
                ReplicaElectionResult::default()
                    .with_topic(t.topic)
                    .with_partition_result(partitions)
            })
            .collect(),
    };
    ElectLeadersResponse::default().with_replica_election_results(results)
}

/// The whole request failed: the top-level code (v1+) and each partition asked for.
fn refuse(r: &ElectLeadersRequest, error: i16, message: String) -> ElectLeadersResponse {
    let results = r
        .topic_partitions
        .iter()
        .flatten()
        .map(|t| {
            ReplicaElectionResult::default()
                .with_topic(t.topic.clone())
                .with_partition_result(
                    t.partitions
                        .iter()
                        .map(|&p| {
                            PartitionResult::default()
                                .with_partition_id(p)
                                .with_error_code(error)
                                .with_error_message(Some(str_bytes(message.clone())))
                        })
                        .collect(),
                )
        })
        .collect();
    ElectLeadersResponse::default()
        .with_error_code(error)
        .with_replica_election_results(results)
}
