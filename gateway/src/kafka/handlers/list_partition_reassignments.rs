//! ListPartitionReassignments: the reassignments in progress. On one node a reassignment
//! (to this node, the only valid target) completes when it is accepted, so there are none:
//! Kafka lists only partitions with one in progress, for the topics asked or all.

use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};

use crate::kafka::NODE_ID;

use super::{str_bytes, Request};
use crate::broker::acl::{Operation, Resource};
use crate::kafka::errors::code;

pub async fn handle(
    req: &Request<'_>,
    r: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    // Kafka's controller: DESCRIBE on the cluster, else the whole request fails.
    if !req.may(Operation::Describe, Resource::Cluster) {
        return ListPartitionReassignmentsResponse::default()
            .with_error_code(code::CLUSTER_AUTHORIZATION_FAILED)
            .with_error_message(Some(str_bytes(
                "not authorized to list reassignments (DESCRIBE on the cluster)",
            )));
    }
    // Kafka filters by the topics asked (null: all) and leaves out topics without any.
    let wanted = |name: &str, p: i32| {
        r.topics.as_ref().is_none_or(|ts| {
            ts.iter()
                .any(|t| t.name.0.as_str() == name && t.partition_indexes.contains(&p))
        })
    };
    let topics = req
        .broker()
        .reassignments_in_progress()
        .into_iter()
        .filter_map(|(name, partitions)| {
            let partitions: Vec<OngoingPartitionReassignment> = partitions
                .into_iter()
                .filter(|&p| wanted(&name, p))
                .map(|p| {
                    OngoingPartitionReassignment::default()
                        .with_partition_index(p)
                        .with_replicas(vec![BrokerId(NODE_ID)])
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                OngoingTopicReassignment::default()
                    .with_name(TopicName(str_bytes(name)))
                    .with_partitions(partitions)
            })
        })
        .collect();
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
