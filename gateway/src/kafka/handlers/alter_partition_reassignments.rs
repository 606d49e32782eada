//! AlterPartitionReassignments: on one node the only valid target of a partition is this
//! node, where its replica already is, so a valid reassignment is accepted and complete at
//! once; any other replica list is INVALID_REPLICA_ASSIGNMENT, and a cancellation
//! NO_REASSIGNMENT_IN_PROGRESS, as Kafka's controller answers.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
};

use super::{str_bytes, Request};
use crate::broker::acl::{Operation, Resource};
use crate::broker::admin::ReassignError;
use crate::kafka::errors::code;
use crate::kafka::NODE_ID;

pub async fn handle(
    req: &Request<'_>,
    r: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    // Kafka's controller: ALTER on the cluster, else every partition and the request fail.
    let refused = (!req.may(Operation::Alter, Resource::Cluster)).then(|| {
        (
            code::CLUSTER_AUTHORIZATION_FAILED,
            "not authorized to reassign partitions (ALTER on the cluster)".to_string(),
        )
    });
    let responses = r
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let outcome = match &refused {
                        Some(why) => Err(why.clone()),
                        None => req
                            .broker()
                            .reassign_partition(
                                t.name.0.as_str(),
                                p.partition_index,
                                p.replicas
                                    .as_ref()
                                    .map(|rs| rs.iter().map(|b| b.0).collect::<Vec<_>>())
                                    .as_deref(),
                                NODE_ID,
                                r.allow_replication_factor_change,
                            )
                            .map_err(|e| (error_code(&e), e.to_string())),
                    };
                    let (error, message) = match outcome {
                        Ok(()) => (code::NONE, None),
                        Err((error, message)) => (error, Some(str_bytes(message))),
                    };
                    ReassignablePartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error)
                        .with_error_message(message)
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    let mut resp = AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(r.allow_replication_factor_change)
        .with_responses(responses);
    if let Some((error, message)) = refused {
        resp = resp
            .with_error_code(error)
            .with_error_message(Some(str_bytes(message)));
    }
    resp
}

fn error_code(e: &ReassignError) -> i16 {
    match e {
        ReassignError::UnknownPartition { .. } => code::UNKNOWN_TOPIC_OR_PARTITION,
        ReassignError::NoneInProgress => ResponseError::NoReassignmentInProgress.code(),
        ReassignError::Assignment(_) => code::INVALID_REPLICA_ASSIGNMENT,
        ReassignError::ReplicationFactorChange { .. } => code::INVALID_REPLICATION_FACTOR,
    }
}
