//! DescribeQuorum: the metadata quorum of a one-node cluster, one voter, this node, its leader
//! since the server started (epoch 1). Wharf keeps its catalog in the data directory, not in
//! a replicated metadata log, so the log's high watermark and end offset are -1, Kafka's
//! "unknown". As Kafka's KRaft leader answers, the request must name `__cluster_metadata`
//! partition 0 and nothing else, else UNKNOWN_TOPIC_OR_PARTITION.

use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};

use super::{str_bytes, Request};
use crate::broker::acl::{Operation, Resource};
use crate::broker::now_us;
use crate::kafka::errors::code;
use crate::kafka::NODE_ID;

/// The metadata log's topic and partition in Kafka.
const METADATA_TOPIC: &str = "__cluster_metadata";
const METADATA_PARTITION: i32 = 0;
/// The one election this node's quorum has had.
const LEADER_EPOCH: i32 = 1;
/// Kafka's "unknown offset".
const UNKNOWN_OFFSET: i64 = -1;

pub async fn handle(req: &Request<'_>, r: DescribeQuorumRequest) -> DescribeQuorumResponse {
    // Kafka's controller: DESCRIBE on the cluster, else a top-level error and nothing else.
    if !req.may(Operation::Describe, Resource::Cluster) {
        return DescribeQuorumResponse::default()
            .with_error_code(code::CLUSTER_AUTHORIZATION_FAILED);
    }
    let valid = matches!(r.topics.as_slice(), [t]
        if t.topic_name.0.as_str() == METADATA_TOPIC
            && matches!(t.partitions.as_slice(), [p] if p.partition_index == METADATA_PARTITION));
    let topic = TopicData::default().with_topic_name(TopicName(str_bytes(METADATA_TOPIC)));
    let partition = PartitionData::default().with_partition_index(METADATA_PARTITION);
    if !valid {
        return DescribeQuorumResponse::default().with_topics(vec![topic.with_partitions(vec![
            partition.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION),
        ])]);
    }
    // The leader's own fetch and catch-up times are "now", as Kafka reports its leader's.
    let now_ms = i64::try_from(now_us() / 1000).unwrap_or(i64::MAX);
    let voter = ReplicaState::default()
        .with_replica_id(BrokerId(NODE_ID))
        .with_log_end_offset(UNKNOWN_OFFSET)
        .with_last_fetch_timestamp(now_ms)
        .with_last_caught_up_timestamp(now_ms);
    let partition = partition
        .with_leader_id(BrokerId(NODE_ID))
        .with_leader_epoch(LEADER_EPOCH)
        .with_high_watermark(UNKNOWN_OFFSET)
        .with_current_voters(vec![voter]);
    let mut resp =
        DescribeQuorumResponse::default().with_topics(vec![topic.with_partitions(vec![partition])]);
    if req.version >= 2 {
        let (host, port) = req.advertised();
        resp = resp.with_nodes(vec![Node::default()
            .with_node_id(BrokerId(NODE_ID))
            .with_listeners(vec![Listener::default()
                .with_name(str_bytes(req.listener.security_protocol()))
                .with_host(str_bytes(host))
                .with_port(u16::try_from(port).unwrap_or(0))])]);
    }
    resp
}
