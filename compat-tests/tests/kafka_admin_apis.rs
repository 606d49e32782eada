//! The cluster-administration APIs of a one-node cluster at the wire, at every advertised
//! version (the `kafka-protocol` crate as the client): DescribeLogDirs, AlterReplicaLogDirs,
//! ElectLeaders, List/AlterPartitionReassignments, DescribeQuorum, ListConfigResources,
//! DescribeProducers, and CreateTopics/CreatePartitions with manual replica assignments; each
//! with Kafka's authorization check and error codes. Then kafka-python's and confluent-kafka's
//! admin clients calling each of these they expose (`kafka-clients/admin_apis.py`).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::time::Duration;

use compat_tests::{client_programs, iggy_root_client, within, KafkaWire, TestServer};
use iggy::prelude::{UserClient as _, UserStatus};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use wharf_gateway::config::{KafkaAuthentication, KafkaListener};

const NONE: i16 = 0;
const UNKNOWN_PARTITION: i16 = ResponseError::UnknownTopicOrPartition.code();
const INVALID_TOPIC: i16 = ResponseError::InvalidTopicException.code();
const CLUSTER_DENIED: i16 = ResponseError::ClusterAuthorizationFailed.code();
const TOPIC_DENIED: i16 = ResponseError::TopicAuthorizationFailed.code();
const LOG_DIR_NOT_FOUND: i16 = ResponseError::LogDirNotFound.code();
const ELECTION_NOT_NEEDED: i16 = ResponseError::ElectionNotNeeded.code();
const NO_REASSIGNMENT: i16 = ResponseError::NoReassignmentInProgress.code();
const INVALID_ASSIGNMENT: i16 = ResponseError::InvalidReplicaAssignment.code();
const INVALID_REQUEST: i16 = ResponseError::InvalidRequest.code();
const UNSUPPORTED_VERSION: i16 = ResponseError::UnsupportedVersion.code();

/// The node id Wharf gives itself.
const NODE: i32 = 1;
/// Longest a client program may run.
const LIMIT: Duration = Duration::from_secs(600);
const WAIT: Duration = Duration::from_secs(30);

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn name(v: &str) -> TopicName {
    TopicName(s(v))
}

/// The advertised range of `key` (from ApiVersions), so a test covers every version served.
async fn versions(wire: &mut KafkaWire, key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let r: ApiVersionsResponse = wire
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    let v = r
        .api_keys
        .iter()
        .find(|k| k.api_key == key as i16)
        .unwrap_or_else(|| panic!("{key:?} is not advertised"));
    v.min_version..=v.max_version
}

async fn create(wire: &mut KafkaWire, topic: &str, partitions: i32) {
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1),
    ]);
    let r: CreateTopicsResponse = wire.call(ApiKey::CreateTopics, 7, &req).await;
    assert_eq!(
        r.topics[0].error_code, NONE,
        "{:?}",
        r.topics[0].error_message
    );
}

/// Partition count of `topic` from Metadata v12.
async fn partition_count(wire: &mut KafkaWire, topic: &str) -> usize {
    let req = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(name(topic))),
    ]));
    let r: MetadataResponse = wire.call(ApiKey::Metadata, 12, &req).await;
    assert_eq!(r.topics[0].error_code, NONE);
    r.topics[0].partitions.len()
}

fn producer(addr: SocketAddr, extra: &[(&str, &str)]) -> FutureProducer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", addr.to_string())
        .set("broker.address.family", "v4")
        .set("message.timeout.ms", "30000")
        .set("linger.ms", "0");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().unwrap()
}

/// Sends `n` records to `topic`/`partition`; the offset of the first.
async fn send(p: &FutureProducer, topic: &str, partition: i32, n: usize) -> i64 {
    let mut first = None;
    for i in 0..n {
        let payload = format!("record-{i}");
        let d = within(
            "a delivery",
            p.send(
                FutureRecord::<(), _>::to(topic)
                    .partition(partition)
                    .payload(&payload),
                WAIT,
            ),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("delivery to {topic}/{partition}: {e}"));
        first.get_or_insert(d.offset);
    }
    first.unwrap()
}

/// DescribeLogDirs at every version: the one data directory, by its absolute path, with each
/// partition's size on disk (a written partition has bytes, an empty one none), only the
/// partitions asked for (a null list: all; unknown ones left out), and from v4 the volume's
/// total and usable bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_log_dirs_shows_the_data_directory_and_partition_sizes() {
    let server = TestServer::start().await;
    let mut wire = KafkaWire::open(server.kafka_addr).await;
    create(&mut wire, "sized", 2).await;
    create(&mut wire, "other", 1).await;
    send(&producer(server.kafka_addr, &[]), "sized", 0, 20).await;
    let dir = std::path::absolute(server.data_dir()).unwrap();
    let range = versions(&mut wire, ApiKey::DescribeLogDirs).await;
    assert_eq!(range, 1..=4);
    for v in range {
        let all = DescribeLogDirsRequest::default().with_topics(None);
        let r: DescribeLogDirsResponse = wire.call(ApiKey::DescribeLogDirs, v, &all).await;
        assert_eq!(r.error_code, NONE, "v{v}");
        assert_eq!(r.results.len(), 1, "v{v}: one data directory");
        let d = &r.results[0];
        assert_eq!(d.error_code, NONE);
        assert_eq!(d.log_dir.as_str(), dir.display().to_string(), "v{v}");
        let sized = d
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == "sized")
            .unwrap();
        let sizes: Vec<(i32, i64)> = sized
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.partition_size))
            .collect();
        assert_eq!(sizes.len(), 2, "v{v}: {sizes:?}");
        assert!(
            sizes.contains(&(1, 0)),
            "v{v}: partition 1 is empty: {sizes:?}"
        );
        assert!(
            sizes.iter().any(|&(p, n)| p == 0 && n > 20 * 8),
            "v{v}: partition 0 holds 20 records: {sizes:?}"
        );
        assert!(sized
            .partitions
            .iter()
            .all(|p| p.offset_lag == 0 && !p.is_future_key));
        assert!(d.topics.iter().any(|t| t.name.0.as_str() == "other"));
        if v >= 4 {
            assert!(d.total_bytes > 0 && d.usable_bytes >= 0, "v{v}: {d:?}");
            assert!(d.usable_bytes <= d.total_bytes);
        }

        // Only what is asked for; unknown partitions and topics are left out.
        let req = DescribeLogDirsRequest::default().with_topics(Some(vec![
            describe_log_dirs_request::DescribableLogDirTopic::default()
                .with_topic(name("sized"))
                .with_partitions(vec![1, 7]),
            describe_log_dirs_request::DescribableLogDirTopic::default()
                .with_topic(name("nope"))
                .with_partitions(vec![0]),
        ]));
        let r: DescribeLogDirsResponse = wire.call(ApiKey::DescribeLogDirs, v, &req).await;
        let topics: Vec<(&str, Vec<i32>)> = r.results[0]
            .topics
            .iter()
            .map(|t| {
                (
                    t.name.0.as_str(),
                    t.partitions.iter().map(|p| p.partition_index).collect(),
                )
            })
            .collect();
        assert_eq!(topics, [("sized", vec![1])], "v{v}");
    }
}

/// AlterReplicaLogDirs at every version: naming the data directory succeeds (the replica is
/// there), any other path is LOG_DIR_NOT_FOUND, an unknown partition UNKNOWN_TOPIC_OR_PARTITION.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_replica_log_dirs_accepts_only_the_data_directory() {
    let server = TestServer::start().await;
    let mut wire = KafkaWire::open(server.kafka_addr).await;
    create(&mut wire, "moved", 1).await;
    let dir = std::path::absolute(server.data_dir()).unwrap();
    let range = versions(&mut wire, ApiKey::AlterReplicaLogDirs).await;
    assert_eq!(range, 1..=2);
    for v in range {
        let entry = |path: &str, topic: &str, partitions: Vec<i32>| {
            alter_replica_log_dirs_request::AlterReplicaLogDir::default()
                .with_path(s(path))
                .with_topics(vec![
                    alter_replica_log_dirs_request::AlterReplicaLogDirTopic::default()
                        .with_name(name(topic))
                        .with_partitions(partitions),
                ])
        };
        let req = AlterReplicaLogDirsRequest::default().with_dirs(vec![
            entry(&dir.display().to_string(), "moved", vec![0, 3]),
            entry("/somewhere/else", "elsewhere", vec![0]),
        ]);
        let r: AlterReplicaLogDirsResponse = wire.call(ApiKey::AlterReplicaLogDirs, v, &req).await;
        let mut codes: Vec<(&str, i32, i16)> = r
            .results
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (t.topic_name.0.as_str(), p.partition_index, p.error_code))
            })
            .collect();
        codes.sort();
        assert_eq!(
            codes,
            [
                ("elsewhere", 0, LOG_DIR_NOT_FOUND),
                ("moved", 0, NONE),
                ("moved", 3, UNKNOWN_PARTITION)
            ],
            "v{v}"
        );
    }
}

/// AlterReplicaLogDirs takes one destination per partition, as Kafka's map of them does: a
/// partition named under several directories is answered once, for the last one. The bound:
/// a request naming one partition 60000 times gets one answer entry (no work per repeat).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_replica_log_dirs_answers_each_partition_once() {
    let server = TestServer::start().await;
    let mut wire = KafkaWire::open(server.kafka_addr).await;
    create(&mut wire, "twice", 1).await;
    let dir = std::path::absolute(server.data_dir())
        .unwrap()
        .display()
        .to_string();
    let entry = |path: &str, partitions: Vec<i32>| {
        alter_replica_log_dirs_request::AlterReplicaLogDir::default()
            .with_path(s(path))
            .with_topics(vec![
                alter_replica_log_dirs_request::AlterReplicaLogDirTopic::default()
                    .with_name(name("twice"))
                    .with_partitions(partitions),
            ])
    };
    let req = AlterReplicaLogDirsRequest::default().with_dirs(vec![
        entry(&dir, vec![0; 60_000]),
        entry("/elsewhere", vec![0]),
    ]);
    let r: AlterReplicaLogDirsResponse = wire.call(ApiKey::AlterReplicaLogDirs, 2, &req).await;
    assert_eq!(r.results.len(), 1);
    let codes: Vec<i16> = r.results[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(codes, [LOG_DIR_NOT_FOUND], "the last destination named");
    let req = AlterReplicaLogDirsRequest::default()
        .with_dirs(vec![entry("/elsewhere", vec![0]), entry(&dir, vec![0])]);
    let r: AlterReplicaLogDirsResponse = wire.call(ApiKey::AlterReplicaLogDirs, 2, &req).await;
    assert_eq!(r.results[0].partitions[0].error_code, NONE);
}

fn elect(election_type: i8, topics: Option<Vec<(&str, Vec<i32>)>>) -> ElectLeadersRequest {
    ElectLeadersRequest::default()
        .with_election_type(election_type)
        .with_timeout_ms(10_000)
        .with_topic_partitions(topics.map(|ts| {
            ts.into_iter()
                .map(|(t, ps)| {
                    elect_leaders_request::TopicPartitions::default()
                        .with_topic(name(t))
                        .with_partitions(ps)
                })
                .collect()
        }))
}

/// ElectLeaders at every version: a partition's only replica leads it already, so each one asked
/// for is ELECTION_NOT_NEEDED (preferred and unclean alike), an unknown one
/// UNKNOWN_TOPIC_OR_PARTITION; asking for all lists each topic with no partitions (those needing
/// no election are left out); an unknown election type fails the request with INVALID_REQUEST.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elect_leaders_is_never_needed_on_one_node() {
    let server = TestServer::start().await;
    let mut wire = KafkaWire::open(server.kafka_addr).await;
    create(&mut wire, "led", 2).await;
    let range = versions(&mut wire, ApiKey::ElectLeaders).await;
    assert_eq!(range, 0..=2);
    for v in range {
        let types: &[i8] = if v == 0 { &[0] } else { &[0, 1] };
        for &t in types {
            let req = elect(t, Some(vec![("led", vec![0, 1, 5]), ("nope", vec![0])]));
            let r: ElectLeadersResponse = wire.call(ApiKey::ElectLeaders, v, &req).await;
            assert_eq!(r.error_code, NONE);
            let codes: Vec<(&str, i32, i16)> = r
                .replica_election_results
                .iter()
                .flat_map(|t| {
                    t.partition_result
                        .iter()
                        .map(move |p| (t.topic.0.as_str(), p.partition_id, p.error_code))
                })
                .collect();
            assert_eq!(
                codes,
                [
                    ("led", 0, ELECTION_NOT_NEEDED),
                    ("led", 1, ELECTION_NOT_NEEDED),
                    ("led", 5, UNKNOWN_PARTITION),
                    ("nope", 0, UNKNOWN_PARTITION)
                ],
                "v{v} type {t}"
            );
        }
        let r: ElectLeadersResponse = wire.call(ApiKey::ElectLeaders, v, &elect(0, None)).await;
        let led = r
            .replica_election_results
            .iter()
            .find(|t| t.topic.0.as_str() == "led")
            .unwrap_or_else(|| panic!("v{v}: every topic is listed"));
        assert!(led.partition_result.is_empty(), "v{v}: {led:?}");
        if v >= 1 {
            let r: ElectLeadersResponse = wire
                .call(
                    ApiKey::ElectLeaders,
                    v,
                    &elect(7, Some(vec![("led", vec![0])])),
                )
                .await;
            assert_eq!(r.error_code, INVALID_REQUEST, "v{v}");
            assert_eq!(
                r.replica_election_results[0].partition_result[0].error_code,
                INVALID_REQUEST
            );
        }
    }
}

fn reassign(
    allow_rf_change: bool,
    partitions: Vec<(i32, Option<Vec<i32>>)>,
) -> AlterPartitionReassignmentsRequest {
    AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(10_000)
        .with_allow_replication_factor_change(allow_rf_change)
        .with_topics(vec![
            alter_partition_reassignments_request::ReassignableTopic::default()
                .with_name(name("moving"))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(p, rs)| {
                            alter_partition_reassignments_request::ReassignablePartition::default()
                                .with_partition_index(p)
                                .with_replicas(rs.map(|rs| rs.into_iter().map(BrokerId).collect()))
                        })
                        .collect(),
                ),
        ])
}

/// AlterPartitionReassignments and ListPartitionReassignments at every version: the only valid
/// target, this node, is accepted and complete at once (so none is ever listed as ongoing);
/// another broker, a broker twice or an empty list is INVALID_REPLICA_ASSIGNMENT; cancelling is
/// NO_REASSIGNMENT_IN_PROGRESS; an unknown partition UNKNOWN_TOPIC_OR_PARTITION.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reassignments_to_this_node_complete_at_once() {
    let server = TestServer::start().await;
    let mut wire = KafkaWire::open(server.kafka_addr).await;
    create(&mut wire, "moving", 2).await;
    let alter_range = versions(&mut wire, ApiKey::AlterPartitionReassignments).await;
    assert_eq!(alter_range, 0..=1);
    let list_range = versions(&mut wire, ApiKey::ListPartitionReassignments).await;
    assert_eq!(list_range, 0..=0);
    for v in alter_range {
        // v0 has no allow_replication_factor_change: it is true.
        let allow = v == 0;
        let req = reassign(
            allow,
            vec![
                (0, Some(vec![NODE])),
                (1, Some(vec![2])),
                (1, Some(vec![NODE, NODE])),
                (1, Some(vec![])),
                (0, None),
                (9, Some(vec![NODE])),
            ],
        );
        let r: AlterPartitionReassignmentsResponse = wire
            .call(ApiKey::AlterPartitionReassignments, v, &req)
            .await;
        assert_eq!(r.error_code, NONE);
        if v >= 1 {
            assert_eq!(r.allow_replication_factor_change, allow);
        }
        let codes: Vec<i16> = r.responses[0]
            .partitions
            .iter()
            .map(|p| p.error_code)
            .collect();
        assert_eq!(
            codes,
            [
                NONE,
                INVALID_ASSIGNMENT,
                INVALID_ASSIGNMENT,
                INVALID_ASSIGNMENT,
                NO_REASSIGNMENT,
                UNKNOWN_PARTITION
            ],
            "v{v}: {r:?}"
        );
        for v in list_range.clone() {
            for topics in [
                None,
                Some(vec![
                    list_partition_reassignments_request::ListPartitionReassignmentsTopics::default()
                        .with_name(name("moving"))
                        .with_partition_indexes(vec![0, 1]),
                ]),
            ] {
                let req = ListPartitionReassignmentsRequest::default()
                    .with_timeout_ms(10_000)
                    .with_topics(topics);
                let r: ListPartitionReassignmentsResponse =
                    wire.call(ApiKey::ListPartitionReassignments, v, &req).await;
                assert_eq!(r.error_code, NONE);
                assert!(r.topics.is_empty(), "v{v}: nothing in progress: {r:?}");
            }
        }
    }
    assert_eq!(partition_count(&mut wire, "moving").await, 2);
}

fn quorum(topic: &str, partitions: &[i32]) -> DescribeQuorumRequest {
    DescribeQuorumRequest::default().with_topics(vec![describe_quorum_request::TopicData::default(
    )
    .with_topic_name(name(topic))
    .with_partitions(
        partitions
            .iter()
            .map(|&p| describe_quorum_request::PartitionData::default().with_partition_index(p))
            .collect(),
    )])
}

/// DescribeQuorum at every version: one voter, this node, the leader; from v2 the node and the
/// listener it was reached on. Anything but `__cluster_metadata` partition 0 alone is
/// UNKNOWN_TOPIC_OR_PARTITION, as Kafka's KRaft leader answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_quorum_shows_this_node_as_the_only_voter() {
    let server = TestServer::start().await;
    let mut wire = KafkaWire::open(server.kafka_addr).await;
    let range = versions(&mut wire, ApiKey::DescribeQuorum).await;
    assert_eq!(range, 0..=2);
    for v in range {
        let r: DescribeQuorumResponse = wire
            .call(
                ApiKey::DescribeQuorum,
                v,
                &quorum("__cluster_metadata", &[0]),
            )
            .await;
        assert_eq!(r.error_code, NONE);
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.error_code, p.partition_index), (NONE, 0));
        assert_eq!(p.leader_id, BrokerId(NODE));
        assert!(p.leader_epoch >= 1);
        let voters: Vec<BrokerId> = p.current_voters.iter().map(|r| r.replica_id).collect();
        assert_eq!(voters, [BrokerId(NODE)], "v{v}");
        assert!(p.observers.is_empty());
        if v >= 1 {
            assert!(p.current_voters[0].last_fetch_timestamp > 0, "v{v}");
        }
        if v >= 2 {
            assert_eq!(r.nodes.len(), 1);
            assert_eq!(r.nodes[0].node_id, BrokerId(NODE));
            let l = &r.nodes[0].listeners[0];
            assert_eq!(
                (l.host.as_str(), l.port),
                ("127.0.0.1", server.kafka_addr.port())
            );
        }
        for bad in [quorum("__cluster_metadata", &[1]), quorum("other", &[0])] {
            let r: DescribeQuorumResponse = wire.call(ApiKey::DescribeQuorum, v, &bad).await;
            let t = &r.topics[0];
            assert_eq!(t.topic_name.0.as_str(), "__cluster_metadata");
            assert_eq!(t.partitions[0].error_code, UNKNOWN_PARTITION, "v{v}");
        }
    }
}

/// ListConfigResources at every version: v0 lists client-metrics resources only (Wharf has
/// none); v1 every topic, this broker (and its logger), and groups with configs, or only the
/// types asked for; a type v1 does not know is UNSUPPORTED_VERSION.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_config_resources_lists_topics_and_this_broker() {
    let server = TestServer::start().await;
    let mut wire = KafkaWire::open(server.kafka_addr).await;
    create(&mut wire, "configured", 1).await;
    let range = versions(&mut wire, ApiKey::ListConfigResources).await;
    assert_eq!(range, 0..=1);
    let r: ListConfigResourcesResponse = wire
        .call(
            ApiKey::ListConfigResources,
            0,
            &ListConfigResourcesRequest::default(),
        )
        .await;
    assert_eq!((r.error_code, r.config_resources.len()), (NONE, 0));
    let list = |types: Vec<i8>| ListConfigResourcesRequest::default().with_resource_types(types);
    let listed = |r: &ListConfigResourcesResponse| {
        let mut v: Vec<(i8, String)> = r
            .config_resources
            .iter()
            .map(|c| (c.resource_type, c.resource_name.to_string()))
            .collect();
        v.sort();
        v
    };
    let r: ListConfigResourcesResponse = wire
        .call(ApiKey::ListConfigResources, 1, &list(vec![]))
        .await;
    assert_eq!(r.error_code, NONE);
    assert_eq!(
        listed(&r),
        [
            (2, "configured".to_string()),
            (4, NODE.to_string()),
            (8, NODE.to_string())
        ]
    );
    let r: ListConfigResourcesResponse = wire
        .call(ApiKey::ListConfigResources, 1, &list(vec![2, 32]))
        .await;
    assert_eq!(listed(&r), [(2, "configured".to_string())]);
    let r: ListConfigResourcesResponse = wire
        .call(ApiKey::ListConfigResources, 1, &list(vec![2, 99]))
        .await;
    assert_eq!(
        (r.error_code, r.config_resources.len()),
        (UNSUPPORTED_VERSION, 0)
    );
}

fn producers_of(topics: &[(&str, &[i32])]) -> DescribeProducersRequest {
    DescribeProducersRequest::default().with_topics(
        topics
            .iter()
            .map(|(t, ps)| {
                describe_producers_request::TopicRequest::default()
                    .with_name(name(t))
                    .with_partition_indexes(ps.to_vec())
            })
            .collect(),
    )
}

/// DescribeProducers at its version: an idempotent producer's id, epoch, last sequence and
/// timestamp; a transactional one's open transaction (its first offset) until it commits, then
/// the marker's coordinator epoch; no producers on an untouched partition; an unknown
/// partition or topic UNKNOWN_TOPIC_OR_PARTITION, an illegal name INVALID_TOPIC_EXCEPTION.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_producers_shows_idempotent_and_transactional_state() {
    let server = TestServer::start().await;
    let mut wire = KafkaWire::open(server.kafka_addr).await;
    create(&mut wire, "produced", 2).await;
    let range = versions(&mut wire, ApiKey::DescribeProducers).await;
    assert_eq!(range, 0..=0);
    let idempotent = producer(server.kafka_addr, &[("enable.idempotence", "true")]);
    send(&idempotent, "produced", 0, 5).await;

    let req = producers_of(&[
        ("produced", &[0, 1, 4]),
        ("nope", &[0]),
        ("bad name!", &[0]),
    ]);
    let r: DescribeProducersResponse = wire.call(ApiKey::DescribeProducers, 0, &req).await;
    let p0 = &r.topics[0].partitions[0];
    assert_eq!(p0.error_code, NONE);
    assert_eq!(p0.active_producers.len(), 1, "{p0:?}");
    let state = &p0.active_producers[0];
    assert!(state.producer_id.0 >= 0);
    assert_eq!(state.producer_epoch, 0);
    assert_eq!(state.last_sequence, 4, "five records, sequences 0..=4");
    assert!(state.last_timestamp > 0);
    assert_eq!(
        (state.coordinator_epoch, state.current_txn_start_offset),
        (-1, -1)
    );
    let p1 = &r.topics[0].partitions[1];
    assert_eq!((p1.error_code, p1.active_producers.len()), (NONE, 0));
    assert_eq!(r.topics[0].partitions[2].error_code, UNKNOWN_PARTITION);
    assert_eq!(r.topics[1].partitions[0].error_code, UNKNOWN_PARTITION);
    assert_eq!(r.topics[2].partitions[0].error_code, INVALID_TOPIC);

    let txn = producer(
        server.kafka_addr,
        &[
            ("transactional.id", "admin-apis-txn"),
            ("transaction.timeout.ms", "60000"),
        ],
    );
    tokio::task::block_in_place(|| txn.init_transactions(WAIT)).unwrap();
    txn.begin_transaction().unwrap();
    let first = send(&txn, "produced", 1, 3).await;
    let open: DescribeProducersResponse = wire
        .call(
            ApiKey::DescribeProducers,
            0,
            &producers_of(&[("produced", &[1])]),
        )
        .await;
    let p1 = &open.topics[0].partitions[0].active_producers;
    assert_eq!(p1.len(), 1, "{p1:?}");
    assert_eq!(
        p1[0].current_txn_start_offset, first,
        "the open transaction"
    );
    let txn_id = p1[0].producer_id;
    tokio::task::block_in_place(|| txn.commit_transaction(WAIT)).unwrap();
    let done: DescribeProducersResponse = wire
        .call(
            ApiKey::DescribeProducers,
            0,
            &producers_of(&[("produced", &[1])]),
        )
        .await;
    let p1 = &done.topics[0].partitions[0].active_producers;
    assert_eq!(p1[0].producer_id, txn_id);
    assert_eq!(
        (p1[0].current_txn_start_offset, p1[0].coordinator_epoch),
        (-1, 0),
        "committed: no open transaction, the marker's coordinator epoch"
    );
}

fn new_topic(
    topic: &str,
    partitions: i32,
    factor: i16,
    assignments: &[(i32, &[i32])],
) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(factor)
            .with_assignments(
                assignments
                    .iter()
                    .map(|(p, rs)| {
                        create_topics_request::CreatableReplicaAssignment::default()
                            .with_partition_index(*p)
                            .with_broker_ids(rs.iter().copied().map(BrokerId).collect())
                    })
                    .collect(),
            )])
}

/// CreateTopics at every version with a manual assignment: each partition on this node, once,
/// numbered from 0, creates the topic with that many partitions; another broker, a gap, or a
/// partition count or replication factor besides the assignment (not -1) is refused with
/// Kafka's codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_topics_takes_a_manual_assignment_naming_this_node() {
    let server = TestServer::start().await;
    let mut wire = KafkaWire::open(server.kafka_addr).await;
    let range = versions(&mut wire, ApiKey::CreateTopics).await;
    for v in range {
        let topic = format!("assigned-v{v}");
        let one: &[i32] = &[NODE];
        let cases: [(CreateTopicsRequest, i16); 5] = [
            (new_topic(&topic, -1, -1, &[(0, &[2])]), INVALID_ASSIGNMENT),
            (
                new_topic(&topic, -1, -1, &[(0, one), (2, one)]),
                INVALID_ASSIGNMENT,
            ),
            (new_topic(&topic, -1, 1, &[(0, one)]), INVALID_REQUEST),
            (new_topic(&topic, 1, -1, &[(0, one)]), INVALID_REQUEST),
            (
                new_topic(&topic, -1, -1, &[(1, one), (0, one), (2, one)]),
                NONE,
            ),
        ];
        for (req, want) in cases {
            let r: CreateTopicsResponse = wire.call(ApiKey::CreateTopics, v, &req).await;
            let t = &r.topics[0];
            assert_eq!(t.error_code, want, "v{v}: {:?}", t.error_message);
            if want == NONE && v >= 5 {
                assert_eq!((t.num_partitions, t.replication_factor), (3, 1));
            }
        }
        assert_eq!(partition_count(&mut wire, &topic).await, 3, "v{v}");
    }
}

fn grow(topic: &str, count: i32, assignments: Option<&[&[i32]]>) -> CreatePartitionsRequest {
    CreatePartitionsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(name(topic))
                .with_count(count)
                .with_assignments(assignments.map(|a| {
                    a.iter()
                        .map(|rs| {
                            create_partitions_request::CreatePartitionsAssignment::default()
                                .with_broker_ids(rs.iter().copied().map(BrokerId).collect())
                        })
                        .collect()
                })),
        ])
}

/// CreatePartitions at every version: a manual assignment giving each new partition this node
/// adds them; another broker, or a number of assignments other than the partitions added (an
/// empty list included, as Kafka's controller refuses it), is INVALID_REPLICA_ASSIGNMENT; no
/// assignment (null) lets the broker place them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_partitions_takes_a_manual_assignment_naming_this_node() {
    let server = TestServer::start().await;
    let mut wire = KafkaWire::open(server.kafka_addr).await;
    let range = versions(&mut wire, ApiKey::CreatePartitions).await;
    for v in range {
        let topic = format!("growing-v{v}");
        create(&mut wire, &topic, 1).await;
        let one: &[i32] = &[NODE];
        let cases: [(CreatePartitionsRequest, i16, usize); 5] = [
            (grow(&topic, 3, Some(&[one, &[2]])), INVALID_ASSIGNMENT, 1),
            (grow(&topic, 3, Some(&[one])), INVALID_ASSIGNMENT, 1),
            (grow(&topic, 3, Some(&[])), INVALID_ASSIGNMENT, 1),
            (grow(&topic, 3, Some(&[one, one])), NONE, 3),
            (grow(&topic, 4, None), NONE, 4),
        ];
        for (req, want, count) in cases {
            let r: CreatePartitionsResponse = wire.call(ApiKey::CreatePartitions, v, &req).await;
            assert_eq!(
                r.results[0].error_code, want,
                "v{v}: {:?}",
                r.results[0].error_message
            );
            assert_eq!(partition_count(&mut wire, &topic).await, count, "v{v}");
        }
    }
}

/// Every one of these APIs checks authorization as Kafka does: a user without rights on the
/// cluster is refused DescribeLogDirs, AlterReplicaLogDirs, ElectLeaders, the reassignment
/// APIs, DescribeQuorum and ListConfigResources with CLUSTER_AUTHORIZATION_FAILED, in the
/// places Kafka puts it, and DescribeProducers of a topic it may not read with
/// TOPIC_AUTHORIZATION_FAILED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_rights_is_refused_as_kafka_refuses() {
    let server = TestServer::start_with(|c| {
        c.kafka.more_listeners = vec![KafkaListener {
            address: "127.0.0.1:0".parse().unwrap(),
            advertised_host: None,
            advertised_port: None,
            authentication: KafkaAuthentication::Sasl,
            tls: false,
        }];
    })
    .await;
    let mut anonymous = KafkaWire::open(server.kafka_addr).await;
    create(&mut anonymous, "guarded", 1).await;
    let root = iggy_root_client(&server).await;
    within(
        "create mallory",
        root.create_user("mallory", "mallory-pw", UserStatus::Active, None),
    )
    .await
    .unwrap();
    let mut wire = KafkaWire::open(server.kafka_listeners[1]).await;
    let hs: SaslHandshakeResponse = wire
        .call(
            ApiKey::SaslHandshake,
            1,
            &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
        )
        .await;
    assert_eq!(hs.error_code, NONE);
    let auth: SaslAuthenticateResponse = wire
        .call(
            ApiKey::SaslAuthenticate,
            2,
            &SaslAuthenticateRequest::default()
                .with_auth_bytes(bytes::Bytes::from_static(b"\0mallory\0mallory-pw")),
        )
        .await;
    assert_eq!(auth.error_code, NONE);

    let r: DescribeLogDirsResponse = wire
        .call(
            ApiKey::DescribeLogDirs,
            4,
            &DescribeLogDirsRequest::default().with_topics(None),
        )
        .await;
    assert_eq!((r.error_code, r.results.len()), (CLUSTER_DENIED, 0));

    let req = AlterReplicaLogDirsRequest::default().with_dirs(vec![
        alter_replica_log_dirs_request::AlterReplicaLogDir::default()
            .with_path(s(&std::path::absolute(server.data_dir())
                .unwrap()
                .display()
                .to_string()))
            .with_topics(vec![
                alter_replica_log_dirs_request::AlterReplicaLogDirTopic::default()
                    .with_name(name("guarded"))
                    .with_partitions(vec![0]),
            ]),
    ]);
    let r: AlterReplicaLogDirsResponse = wire.call(ApiKey::AlterReplicaLogDirs, 2, &req).await;
    assert_eq!(r.results[0].partitions[0].error_code, CLUSTER_DENIED);

    let r: ElectLeadersResponse = wire
        .call(
            ApiKey::ElectLeaders,
            2,
            &elect(0, Some(vec![("guarded", vec![0])])),
        )
        .await;
    assert_eq!(r.error_code, CLUSTER_DENIED);
    assert_eq!(
        r.replica_election_results[0].partition_result[0].error_code,
        CLUSTER_DENIED
    );

    let r: ListPartitionReassignmentsResponse = wire
        .call(
            ApiKey::ListPartitionReassignments,
            0,
            &ListPartitionReassignmentsRequest::default().with_topics(None),
        )
        .await;
    assert_eq!(r.error_code, CLUSTER_DENIED);

    let req = reassign(true, vec![(0, Some(vec![NODE]))]);
    let r: AlterPartitionReassignmentsResponse = wire
        .call(ApiKey::AlterPartitionReassignments, 1, &req)
        .await;
    assert_eq!(r.error_code, CLUSTER_DENIED);
    assert_eq!(r.responses[0].partitions[0].error_code, CLUSTER_DENIED);

    let r: DescribeQuorumResponse = wire
        .call(
            ApiKey::DescribeQuorum,
            2,
            &quorum("__cluster_metadata", &[0]),
        )
        .await;
    assert_eq!((r.error_code, r.topics.len()), (CLUSTER_DENIED, 0));

    let r: ListConfigResourcesResponse = wire
        .call(
            ApiKey::ListConfigResources,
            1,
            &ListConfigResourcesRequest::default(),
        )
        .await;
    assert_eq!(
        (r.error_code, r.config_resources.len()),
        (CLUSTER_DENIED, 0)
    );

    let r: DescribeProducersResponse = wire
        .call(
            ApiKey::DescribeProducers,
            0,
            &producers_of(&[("guarded", &[0])]),
        )
        .await;
    assert_eq!(r.topics[0].partitions[0].error_code, TOPIC_DENIED);
}

/// kafka-python's and confluent-kafka's admin clients call each of these APIs they expose.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_admin_clients_call_every_admin_api() {
    let server = TestServer::start().await;
    let dir = std::path::absolute(server.data_dir()).unwrap();
    client_programs::run(
        "admin_apis.py",
        &client_programs::python(),
        &server.kafka_addr.to_string(),
        &[("WHARF_LOG_DIR".into(), dir.into_os_string())],
        LIMIT,
    )
    .await;
}
