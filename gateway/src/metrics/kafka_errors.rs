//! Whether a Kafka answer carries an error, for `wharf_request_errors_total`: as Kafka's
//! `RequestMetrics ErrorsPerSec`, an answer counts as failed when its top-level error code or
//! any topic's, partition's, group's or member's is not NONE (0). Answers of APIs not listed
//! here carry their errors in ways an operator does not count per request (ACL and config
//! results) and count as answered.

use std::any::Any;

use kafka_protocol::messages::{
    AddOffsetsToTxnResponse, AddPartitionsToTxnResponse, ApiVersionsResponse, CreateTopicsResponse,
    DeleteGroupsResponse, DeleteTopicsResponse, DescribeGroupsResponse, EndTxnResponse,
    FetchResponse, FindCoordinatorResponse, HeartbeatResponse, InitProducerIdResponse,
    JoinGroupResponse, LeaveGroupResponse, ListGroupsResponse, ListOffsetsResponse,
    MetadataResponse, OffsetCommitResponse, OffsetFetchResponse, ProduceResponse,
    SaslAuthenticateResponse, SaslHandshakeResponse, SyncGroupResponse, TxnOffsetCommitResponse,
};

use super::Outcome;

fn outcome(failed: bool) -> Outcome {
    if failed {
        Outcome::Error
    } else {
        Outcome::Ok
    }
}

/// A Fetch answer's outcome (its records are kept apart from it by the door).
pub fn fetch(r: &FetchResponse) -> Outcome {
    outcome(
        r.error_code != 0
            || r.responses
                .iter()
                .flat_map(|t| &t.partitions)
                .any(|p| p.error_code != 0),
    )
}

/// The outcome of an answer of any type: failed when it is of a type listed here and carries
/// an error code. A few type comparisons: no allocation, no encoding.
pub fn outcome_of(answer: &dyn Any) -> Outcome {
    if let Some(r) = answer.downcast_ref::<ProduceResponse>() {
        return outcome(
            r.responses
                .iter()
                .flat_map(|t| &t.partition_responses)
                .any(|p| p.error_code != 0),
        );
    }
    if let Some(r) = answer.downcast_ref::<FetchResponse>() {
        return fetch(r);
    }
    if let Some(r) = answer.downcast_ref::<ListOffsetsResponse>() {
        return outcome(
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .any(|p| p.error_code != 0),
        );
    }
    if let Some(r) = answer.downcast_ref::<MetadataResponse>() {
        return outcome(r.error_code != 0 || r.topics.iter().any(|t| t.error_code != 0));
    }
    if let Some(r) = answer.downcast_ref::<OffsetCommitResponse>() {
        return outcome(
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .any(|p| p.error_code != 0),
        );
    }
    if let Some(r) = answer.downcast_ref::<TxnOffsetCommitResponse>() {
        return outcome(
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .any(|p| p.error_code != 0),
        );
    }
    if let Some(r) = answer.downcast_ref::<OffsetFetchResponse>() {
        let old = r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .any(|p| p.error_code != 0);
        let groups = r.groups.iter().any(|g| {
            g.error_code != 0
                || g.topics
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .any(|p| p.error_code != 0)
        });
        return outcome(r.error_code != 0 || old || groups);
    }
    if let Some(r) = answer.downcast_ref::<FindCoordinatorResponse>() {
        return outcome(r.error_code != 0 || r.coordinators.iter().any(|c| c.error_code != 0));
    }
    if let Some(r) = answer.downcast_ref::<LeaveGroupResponse>() {
        return outcome(r.error_code != 0 || r.members.iter().any(|m| m.error_code != 0));
    }
    if let Some(r) = answer.downcast_ref::<DescribeGroupsResponse>() {
        return outcome(r.groups.iter().any(|g| g.error_code != 0));
    }
    if let Some(r) = answer.downcast_ref::<DeleteGroupsResponse>() {
        return outcome(r.results.iter().any(|g| g.error_code != 0));
    }
    if let Some(r) = answer.downcast_ref::<CreateTopicsResponse>() {
        return outcome(r.topics.iter().any(|t| t.error_code != 0));
    }
    if let Some(r) = answer.downcast_ref::<DeleteTopicsResponse>() {
        return outcome(r.responses.iter().any(|t| t.error_code != 0));
    }
    if let Some(r) = answer.downcast_ref::<AddPartitionsToTxnResponse>() {
        return outcome(
            r.error_code != 0
                || r.results_by_transaction
                    .iter()
                    .flat_map(|t| &t.topic_results)
                    .flat_map(|t| &t.results_by_partition)
                    .any(|p| p.partition_error_code != 0),
        );
    }
    macro_rules! top_level {
        ($($t:ty),*) => {
            $(if let Some(r) = answer.downcast_ref::<$t>() {
                return outcome(r.error_code != 0);
            })*
        };
    }
    top_level!(
        JoinGroupResponse,
        HeartbeatResponse,
        SyncGroupResponse,
        ListGroupsResponse,
        InitProducerIdResponse,
        EndTxnResponse,
        AddOffsetsToTxnResponse,
        SaslHandshakeResponse,
        SaslAuthenticateResponse,
        ApiVersionsResponse
    );
    Outcome::Ok
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };

    use super::*;

    #[test]
    fn a_partition_error_fails_the_answer_and_untracked_types_are_answered() {
        let ok = ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
            .with_partition_responses(vec![PartitionProduceResponse::default()])]);
        assert_eq!(outcome_of(&ok), Outcome::Ok);
        let failed =
            ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
                .with_partition_responses(vec![
                    PartitionProduceResponse::default(),
                    PartitionProduceResponse::default().with_error_code(3),
                ])]);
        assert_eq!(outcome_of(&failed), Outcome::Error);
        assert_eq!(
            outcome_of(&HeartbeatResponse::default().with_error_code(27)),
            Outcome::Error
        );
        assert_eq!(outcome_of(&HeartbeatResponse::default()), Outcome::Ok);
        assert_eq!(outcome_of(&42u32), Outcome::Ok);
    }
}
