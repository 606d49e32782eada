//! The error codes of a Kafka answer, for `wharf_request_errors_total{door,api,error}`: as
//! Kafka's `RequestMetrics ErrorsPerSec{request,error}`, each error code an answer carries
//! (top-level, or per topic, partition, group or member) counts once under Kafka's name for it
//! ([`KAFKA_ERRORS`]); NONE (0) is not counted. Answers of APIs not listed here carry their
//! errors in ways an operator does not count per request (ACL and config results) and count
//! no error. A request that ended its connection counts as `CONNECTION_CLOSED`. An acks=0
//! Produce gets no answer; one with an error still counts its errors and closes the
//! connection, as Kafka's KafkaApis (`closeConnection` with the error counts).

use std::any::Any;

use kafka_protocol::messages::{
    AddOffsetsToTxnResponse, AddPartitionsToTxnResponse, ApiVersionsResponse, CreateTopicsResponse,
    DeleteGroupsResponse, DeleteTopicsResponse, DescribeGroupsResponse, EndTxnResponse,
    FetchResponse, FindCoordinatorResponse, HeartbeatResponse, InitProducerIdResponse,
    JoinGroupResponse, LeaveGroupResponse, ListGroupsResponse, ListOffsetsResponse,
    MetadataResponse, OffsetCommitResponse, OffsetFetchResponse, ProduceResponse,
    SaslAuthenticateResponse, SaslHandshakeResponse, SyncGroupResponse, TxnOffsetCommitResponse,
};
use kafka_protocol::messages::{
    AlterClientQuotasResponse, AlterPartitionReassignmentsResponse, AlterReplicaLogDirsResponse,
    ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatResponse, DescribeClientQuotasResponse,
    DescribeClusterResponse, DescribeLogDirsResponse, DescribeProducersResponse,
    DescribeQuorumResponse, DescribeTopicPartitionsResponse, ElectLeadersResponse,
    ListConfigResourcesResponse, ListPartitionReassignmentsResponse,
};

/// Kafka's error codes with Kafka's names for them (`org.apache.kafka.common.protocol.Errors`),
/// -1 to 133 by code, then Wharf's one word for a request that ended its connection instead of
/// an answer. The `error` label takes only these values: a code outside the table counts as
/// UNKNOWN_SERVER_ERROR, as Kafka's `Errors.forCode` reads it.
pub const KAFKA_ERRORS: &[(i16, &str)] = &[
    (-1, "UNKNOWN_SERVER_ERROR"),
    (0, "NONE"),
    (1, "OFFSET_OUT_OF_RANGE"),
    (2, "CORRUPT_MESSAGE"),
    (3, "UNKNOWN_TOPIC_OR_PARTITION"),
    (4, "INVALID_FETCH_SIZE"),
    (5, "LEADER_NOT_AVAILABLE"),
    (6, "NOT_LEADER_OR_FOLLOWER"),
    (7, "REQUEST_TIMED_OUT"),
    (8, "BROKER_NOT_AVAILABLE"),
    (9, "REPLICA_NOT_AVAILABLE"),
    (10, "MESSAGE_TOO_LARGE"),
    (11, "STALE_CONTROLLER_EPOCH"),
    (12, "OFFSET_METADATA_TOO_LARGE"),
    (13, "NETWORK_EXCEPTION"),
    (14, "COORDINATOR_LOAD_IN_PROGRESS"),
    (15, "COORDINATOR_NOT_AVAILABLE"),
    (16, "NOT_COORDINATOR"),
    (17, "INVALID_TOPIC_EXCEPTION"),
    (18, "RECORD_LIST_TOO_LARGE"),
    (19, "NOT_ENOUGH_REPLICAS"),
    (20, "NOT_ENOUGH_REPLICAS_AFTER_APPEND"),
    (21, "INVALID_REQUIRED_ACKS"),
    (22, "ILLEGAL_GENERATION"),
    (23, "INCONSISTENT_GROUP_PROTOCOL"),
    (24, "INVALID_GROUP_ID"),
    (25, "UNKNOWN_MEMBER_ID"),
    (26, "INVALID_SESSION_TIMEOUT"),
    (27, "REBALANCE_IN_PROGRESS"),
    (28, "INVALID_COMMIT_OFFSET_SIZE"),
    (29, "TOPIC_AUTHORIZATION_FAILED"),
    (30, "GROUP_AUTHORIZATION_FAILED"),
    (31, "CLUSTER_AUTHORIZATION_FAILED"),
    (32, "INVALID_TIMESTAMP"),
    (33, "UNSUPPORTED_SASL_MECHANISM"),
    (34, "ILLEGAL_SASL_STATE"),
    (35, "UNSUPPORTED_VERSION"),
    (36, "TOPIC_ALREADY_EXISTS"),
    (37, "INVALID_PARTITIONS"),
    (38, "INVALID_REPLICATION_FACTOR"),
    (39, "INVALID_REPLICA_ASSIGNMENT"),
    (40, "INVALID_CONFIG"),
    (41, "NOT_CONTROLLER"),
    (42, "INVALID_REQUEST"),
    (43, "UNSUPPORTED_FOR_MESSAGE_FORMAT"),
    (44, "POLICY_VIOLATION"),
    (45, "OUT_OF_ORDER_SEQUENCE_NUMBER"),
    (46, "DUPLICATE_SEQUENCE_NUMBER"),
    (47, "INVALID_PRODUCER_EPOCH"),
    (48, "INVALID_TXN_STATE"),
    (49, "INVALID_PRODUCER_ID_MAPPING"),
    (50, "INVALID_TRANSACTION_TIMEOUT"),
    (51, "CONCURRENT_TRANSACTIONS"),
    (52, "TRANSACTION_COORDINATOR_FENCED"),
    (53, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"),
    (54, "SECURITY_DISABLED"),
    (55, "OPERATION_NOT_ATTEMPTED"),
    (56, "KAFKA_STORAGE_ERROR"),
    (57, "LOG_DIR_NOT_FOUND"),
    (58, "SASL_AUTHENTICATION_FAILED"),
    (59, "UNKNOWN_PRODUCER_ID"),
    (60, "REASSIGNMENT_IN_PROGRESS"),
    (61, "DELEGATION_TOKEN_AUTH_DISABLED"),
    (62, "DELEGATION_TOKEN_NOT_FOUND"),
    (63, "DELEGATION_TOKEN_OWNER_MISMATCH"),
    (64, "DELEGATION_TOKEN_REQUEST_NOT_ALLOWED"),
    (65, "DELEGATION_TOKEN_AUTHORIZATION_FAILED"),
    (66, "DELEGATION_TOKEN_EXPIRED"),
    (67, "INVALID_PRINCIPAL_TYPE"),
    (68, "NON_EMPTY_GROUP"),
    (69, "GROUP_ID_NOT_FOUND"),
    (70, "FETCH_SESSION_ID_NOT_FOUND"),
    (71, "INVALID_FETCH_SESSION_EPOCH"),
    (72, "LISTENER_NOT_FOUND"),
    (73, "TOPIC_DELETION_DISABLED"),
    (74, "FENCED_LEADER_EPOCH"),
    (75, "UNKNOWN_LEADER_EPOCH"),
    (76, "UNSUPPORTED_COMPRESSION_TYPE"),
    (77, "STALE_BROKER_EPOCH"),
    (78, "OFFSET_NOT_AVAILABLE"),
    (79, "MEMBER_ID_REQUIRED"),
    (80, "PREFERRED_LEADER_NOT_AVAILABLE"),
    (81, "GROUP_MAX_SIZE_REACHED"),
    (82, "FENCED_INSTANCE_ID"),
    (83, "ELIGIBLE_LEADERS_NOT_AVAILABLE"),
    (84, "ELECTION_NOT_NEEDED"),
    (85, "NO_REASSIGNMENT_IN_PROGRESS"),
    (86, "GROUP_SUBSCRIBED_TO_TOPIC"),
    (87, "INVALID_RECORD"),
    (88, "UNSTABLE_OFFSET_COMMIT"),
    (89, "THROTTLING_QUOTA_EXCEEDED"),
    (90, "PRODUCER_FENCED"),
    (91, "RESOURCE_NOT_FOUND"),
    (92, "DUPLICATE_RESOURCE"),
    (93, "UNACCEPTABLE_CREDENTIAL"),
    (94, "INCONSISTENT_VOTER_SET"),
    (95, "INVALID_UPDATE_VERSION"),
    (96, "FEATURE_UPDATE_FAILED"),
    (97, "PRINCIPAL_DESERIALIZATION_FAILURE"),
    (98, "SNAPSHOT_NOT_FOUND"),
    (99, "POSITION_OUT_OF_RANGE"),
    (100, "UNKNOWN_TOPIC_ID"),
    (101, "DUPLICATE_BROKER_REGISTRATION"),
    (102, "BROKER_ID_NOT_REGISTERED"),
    (103, "INCONSISTENT_TOPIC_ID"),
    (104, "INCONSISTENT_CLUSTER_ID"),
    (105, "TRANSACTIONAL_ID_NOT_FOUND"),
    (106, "FETCH_SESSION_TOPIC_ID_ERROR"),
    (107, "INELIGIBLE_REPLICA"),
    (108, "NEW_LEADER_ELECTED"),
    (109, "OFFSET_MOVED_TO_TIERED_STORAGE"),
    (110, "FENCED_MEMBER_EPOCH"),
    (111, "UNRELEASED_INSTANCE_ID"),
    (112, "UNSUPPORTED_ASSIGNOR"),
    (113, "STALE_MEMBER_EPOCH"),
    (114, "MISMATCHED_ENDPOINT_TYPE"),
    (115, "UNSUPPORTED_ENDPOINT_TYPE"),
    (116, "UNKNOWN_CONTROLLER_ID"),
    (117, "UNKNOWN_SUBSCRIPTION_ID"),
    (118, "TELEMETRY_TOO_LARGE"),
    (119, "INVALID_REGISTRATION"),
    (120, "TRANSACTION_ABORTABLE"),
    (121, "INVALID_RECORD_STATE"),
    (122, "SHARE_SESSION_NOT_FOUND"),
    (123, "INVALID_SHARE_SESSION_EPOCH"),
    (124, "FENCED_STATE_EPOCH"),
    (125, "INVALID_VOTER_KEY"),
    (126, "DUPLICATE_VOTER"),
    (127, "VOTER_NOT_FOUND"),
    (128, "INVALID_REGULAR_EXPRESSION"),
    (129, "REBOOTSTRAP_REQUIRED"),
    (130, "STREAMS_INVALID_TOPOLOGY"),
    (131, "STREAMS_INVALID_TOPOLOGY_EPOCH"),
    (132, "STREAMS_TOPOLOGY_FENCED"),
    (133, "SHARE_SESSION_LIMIT_REACHED"),
    (i16::MIN, "CONNECTION_CLOSED"),
];

/// The slot of [`KAFKA_ERRORS`]'s last row.
pub const CONNECTION_CLOSED_SLOT: usize = KAFKA_ERRORS.len() - 1;

/// The slot of `code` in [`KAFKA_ERRORS`] (a plain index: the table runs -1, 0, 1, ...).
pub fn slot(code: i16) -> usize {
    match usize::try_from(i32::from(code) + 1) {
        Ok(i) if i < CONNECTION_CLOSED_SLOT => i,
        _ => 0,
    }
}

/// Calls `each` with every error code of a Fetch answer (its records are kept apart from it
/// by the door): the top-level one, then each partition's.
pub fn fetch(r: &FetchResponse, each: &mut dyn FnMut(i16)) {
    each(r.error_code);
    r.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .for_each(|p| each(p.error_code));
}

/// Calls `each` with every error code (NONE, 0, included) an answer of a type listed here
/// carries: its top-level code and each topic's, partition's, group's or member's. A few type
/// comparisons: no allocation, no encoding. Called only when metrics are on.
pub fn each_error(answer: &dyn Any, each: &mut dyn FnMut(i16)) {
    if let Some(r) = answer.downcast_ref::<ProduceResponse>() {
        return r
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .for_each(|p| each(p.error_code));
    }
    if let Some(r) = answer.downcast_ref::<FetchResponse>() {
        return fetch(r, each);
    }
    if let Some(r) = answer.downcast_ref::<ListOffsetsResponse>() {
        return r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| each(p.error_code));
    }
    if let Some(r) = answer.downcast_ref::<MetadataResponse>() {
        each(r.error_code);
        return r.topics.iter().for_each(|t| each(t.error_code));
    }
    if let Some(r) = answer.downcast_ref::<OffsetCommitResponse>() {
        return r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| each(p.error_code));
    }
    if let Some(r) = answer.downcast_ref::<TxnOffsetCommitResponse>() {
        return r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| each(p.error_code));
    }
    if let Some(r) = answer.downcast_ref::<OffsetFetchResponse>() {
        each(r.error_code);
        r.topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| each(p.error_code));
        return r.groups.iter().for_each(|g| {
            each(g.error_code);
            g.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| each(p.error_code));
        });
    }
    if let Some(r) = answer.downcast_ref::<FindCoordinatorResponse>() {
        each(r.error_code);
        return r.coordinators.iter().for_each(|c| each(c.error_code));
    }
    if let Some(r) = answer.downcast_ref::<LeaveGroupResponse>() {
        each(r.error_code);
        return r.members.iter().for_each(|m| each(m.error_code));
    }
    if let Some(r) = answer.downcast_ref::<DescribeGroupsResponse>() {
        return r.groups.iter().for_each(|g| each(g.error_code));
    }
    if let Some(r) = answer.downcast_ref::<DeleteGroupsResponse>() {
        return r.results.iter().for_each(|g| each(g.error_code));
    }
    if let Some(r) = answer.downcast_ref::<CreateTopicsResponse>() {
        return r.topics.iter().for_each(|t| each(t.error_code));
    }
    if let Some(r) = answer.downcast_ref::<DeleteTopicsResponse>() {
        return r.responses.iter().for_each(|t| each(t.error_code));
    }
    if let Some(r) = answer.downcast_ref::<AddPartitionsToTxnResponse>() {
        each(r.error_code);
        return r
            .results_by_transaction
            .iter()
            .flat_map(|t| &t.topic_results)
            .flat_map(|t| &t.results_by_partition)
            .for_each(|p| each(p.partition_error_code));
    }
    if let Some(r) = answer.downcast_ref::<AlterClientQuotasResponse>() {
        return r.entries.iter().for_each(|e| each(e.error_code));
    }
    if let Some(r) = answer.downcast_ref::<ConsumerGroupDescribeResponse>() {
        return r.groups.iter().for_each(|g| each(g.error_code));
    }
    if let Some(r) = answer.downcast_ref::<DescribeTopicPartitionsResponse>() {
        return r.topics.iter().for_each(|t| each(t.error_code));
    }
    if let Some(r) = answer.downcast_ref::<DescribeQuorumResponse>() {
        each(r.error_code);
        return r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| each(p.error_code));
    }
    if let Some(r) = answer.downcast_ref::<DescribeProducersResponse>() {
        return r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| each(p.error_code));
    }
    if let Some(r) = answer.downcast_ref::<ElectLeadersResponse>() {
        each(r.error_code);
        return r
            .replica_election_results
            .iter()
            .flat_map(|t| &t.partition_result)
            .for_each(|p| each(p.error_code));
    }
    if let Some(r) = answer.downcast_ref::<AlterPartitionReassignmentsResponse>() {
        each(r.error_code);
        return r
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| each(p.error_code));
    }
    if let Some(r) = answer.downcast_ref::<DescribeLogDirsResponse>() {
        each(r.error_code);
        return r.results.iter().for_each(|d| each(d.error_code));
    }
    if let Some(r) = answer.downcast_ref::<AlterReplicaLogDirsResponse>() {
        return r
            .results
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| each(p.error_code));
    }
    macro_rules! top_level {
        ($($t:ty),*) => {
            $(if let Some(r) = answer.downcast_ref::<$t>() {
                return each(r.error_code);
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
        ApiVersionsResponse,
        DescribeClientQuotasResponse,
        ConsumerGroupHeartbeatResponse,
        DescribeClusterResponse,
        ListPartitionReassignmentsResponse,
        ListConfigResourcesResponse
    );
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };

    use super::*;

    fn codes(answer: &dyn Any) -> Vec<i16> {
        let mut out = Vec::new();
        each_error(answer, &mut |c| out.push(c));
        out
    }

    #[test]
    fn every_partition_code_is_reported_and_untracked_types_report_none() {
        let answer =
            ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
                .with_partition_responses(vec![
                    PartitionProduceResponse::default(),
                    PartitionProduceResponse::default().with_error_code(3),
                ])]);
        assert_eq!(codes(&answer), vec![0, 3]);
        assert_eq!(
            codes(&HeartbeatResponse::default().with_error_code(27)),
            vec![27]
        );
        assert_eq!(codes(&42u32), Vec::<i16>::new());
    }

    /// Bound: the `error` label has at most `KAFKA_ERRORS.len()` values whatever code comes.
    #[test]
    fn the_name_table_is_indexed_by_code_and_unknown_codes_are_unknown_server_error() {
        for (i, &(code, _)) in KAFKA_ERRORS[..CONNECTION_CLOSED_SLOT].iter().enumerate() {
            assert_eq!(slot(code), i, "code {code}");
        }
        assert_eq!(KAFKA_ERRORS[slot(79)].1, "MEMBER_ID_REQUIRED");
        assert_eq!(KAFKA_ERRORS[slot(3)].1, "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(KAFKA_ERRORS[slot(27)].1, "REBALANCE_IN_PROGRESS");
        assert_eq!(KAFKA_ERRORS[slot(120)].1, "TRANSACTION_ABORTABLE");
        assert_eq!(KAFKA_ERRORS[slot(128)].1, "INVALID_REGULAR_EXPRESSION");
        for code in [134, 999, i16::MAX, -2, i16::MIN] {
            assert_eq!(
                KAFKA_ERRORS[slot(code)].1,
                "UNKNOWN_SERVER_ERROR",
                "code {code}"
            );
        }
    }
}
