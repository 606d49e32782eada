//! Every Kafka API authorizes through the broker core: each request runs through
//! `kafka::connection::handle_frame` as a Wharf user with a real broker in a temporary
//! directory, and the answer carries Kafka's code in Kafka's place (per partition, per topic,
//! per group, or at the top).
//!
//! The user `alice` may poll topic `a` (a topic-level right, nothing else); `b` exists too.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use wharf_gateway::broker::kafka_batch::{encode_batch, NewRecord};
use wharf_gateway::broker::users::{StreamPermissions, TopicPermissions, UserStatus};
use wharf_gateway::broker::{Broker, BrokerSettings, Permissions, Principal, StoreConfig};
use wharf_gateway::config::{KafkaListener, Overrides, ServerConfig};
use wharf_gateway::kafka::connection::handle_frame;
use wharf_gateway::kafka::Door;

const TOPIC_DENIED: i16 = ResponseError::TopicAuthorizationFailed.code();
const GROUP_DENIED: i16 = ResponseError::GroupAuthorizationFailed.code();
const CLUSTER_DENIED: i16 = ResponseError::ClusterAuthorizationFailed.code();
const TXN_DENIED: i16 = ResponseError::TransactionalIdAuthorizationFailed.code();
const INVALID_REQUEST: i16 = ResponseError::InvalidRequest.code();

const ROOT: Principal = Principal::User(0);

struct Harness {
    _dir: tempfile::TempDir,
    door: Door,
    listener: KafkaListener,
    alice: Principal,
    alice_id: u32,
    bob: Principal,
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let overrides = Overrides {
        data_dir: Some(dir.path().to_path_buf()),
        native_addr: Some("127.0.0.1:0".into()),
        kafka_addr: Some("127.0.0.1:0".into()),
        ..Overrides::default()
    };
    let config = ServerConfig::load_from(&overrides, &[]).unwrap();
    let settings = BrokerSettings {
        root_username: "iggy".into(),
        root_password: "iggy".into(),
        kafka_default_stream: "default".into(),
        groups: Default::default(),
        transactions: Default::default(),
        logins: Default::default(),
        max_partitions_per_topic: 1000,
        max_partitions: 100_000,
    };
    let broker = Broker::open(dir.path(), StoreConfig::default(), settings).unwrap();
    let a = broker
        .create_kafka_topic("a", 2, Default::default(), false)
        .await
        .unwrap()
        .unwrap();
    broker
        .create_kafka_topic("b", 1, Default::default(), false)
        .await
        .unwrap()
        .unwrap();
    let mut perms = Permissions::default();
    perms.streams.insert(
        a.stream_id,
        StreamPermissions {
            topics: [(
                a.id,
                TopicPermissions {
                    poll_messages: true,
                    ..Default::default()
                },
            )]
            .into(),
            ..Default::default()
        },
    );
    let alice = broker
        .create_user("alice", "alice-pw", UserStatus::Active, Some(perms))
        .await
        .unwrap();
    let bob = broker
        .create_user("bob", "bob-pw", UserStatus::Active, None)
        .await
        .unwrap();
    let listener = config.kafka.listeners().remove(0);
    Harness {
        _dir: dir,
        door: Door {
            broker: Arc::new(broker),
            fetch_sessions: wharf_gateway::kafka::fetch_sessions::FetchSessions::new(
                config.kafka.max_incremental_fetch_session_cache_slots,
            ),
            config: config.kafka,
            cluster_id: "authz-test-cluster".into(),
        },
        listener,
        alice: Principal::User(alice.id),
        alice_id: alice.id,
        bob: Principal::User(bob.id),
    }
}

impl Harness {
    async fn call<Req, Resp>(&self, who: &Principal, key: ApiKey, v: i16, req: &Req) -> Resp
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(v)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("authz-test")))
            .encode(&mut buf, Req::header_version(v))
            .unwrap();
        req.encode(&mut buf, v).unwrap();
        let local: SocketAddr = "127.0.0.1:9092".parse().unwrap();
        let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap();
        let parts = handle_frame(&self.door, &self.listener, who, local, peer, buf.freeze())
            .await
            .unwrap()
            .into_parts()
            .expect("an answer");
        let mut all = BytesMut::new();
        for p in parts {
            all.extend_from_slice(&p);
        }
        let mut body: Bytes = all.freeze();
        body.advance(4); // the size
        ResponseHeader::decode(&mut body, Resp::header_version(v)).unwrap();
        Resp::decode(&mut body, v).unwrap()
    }

    fn broker(&self) -> &Broker {
        &self.door.broker
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn topic(n: &str) -> TopicName {
    TopicName(s(n))
}

fn records() -> Bytes {
    encode_batch(
        0,
        &[NewRecord {
            timestamp_ms: 1_700_000_000_000,
            key: None,
            value: Some(b"v"),
            headers: Vec::new(),
        }],
    )
}

fn produce(topics: &[&str]) -> ProduceRequest {
    use produce_request::{PartitionProduceData, TopicProduceData};
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(
            topics
                .iter()
                .map(|t| {
                    TopicProduceData::default()
                        .with_name(topic(t))
                        .with_partition_data(vec![PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(records()))])
                })
                .collect(),
        )
}

async fn produce_codes(h: &Harness, who: &Principal, topics: &[&str]) -> Vec<i16> {
    let r: ProduceResponse = h.call(who, ApiKey::Produce, 9, &produce(topics)).await;
    r.responses
        .iter()
        .flat_map(|t| t.partition_responses.iter().map(|p| p.error_code))
        .collect()
}

fn acl(
    kind: i8,
    name: &str,
    pattern: i8,
    principal: &str,
    op: i8,
) -> create_acls_request::AclCreation {
    create_acls_request::AclCreation::default()
        .with_resource_type(kind)
        .with_resource_name(s(name))
        .with_resource_pattern_type(pattern)
        .with_principal(s(principal))
        .with_host(s("*"))
        .with_operation(op)
        .with_permission_type(3)
}

const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const READ: i8 = 3;
const WRITE: i8 = 4;
const DESCRIBE: i8 = 8;

#[tokio::test]
async fn topic_and_cluster_apis_answer_kafkas_authorization_codes() {
    let h = harness().await;
    let alice = &h.alice;

    // Produce: Write on each topic, TOPIC_AUTHORIZATION_FAILED per partition.
    assert_eq!(
        produce_codes(&h, alice, &["a", "b"]).await,
        [TOPIC_DENIED; 2]
    );

    // Fetch: Read, per partition.
    use fetch_request::{FetchPartition, FetchTopic};
    let fetch = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(
            ["a", "b"]
                .iter()
                .map(|t| {
                    FetchTopic::default()
                        .with_topic(topic(t))
                        .with_partitions(vec![FetchPartition::default()
                            .with_partition(0)
                            .with_partition_max_bytes(1 << 20)])
                })
                .collect(),
        );
    let r: FetchResponse = h.call(alice, ApiKey::Fetch, 12, &fetch).await;
    let codes: Vec<(String, i16)> = r
        .responses
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.topic.0.to_string(), p.error_code))
        })
        .collect();
    assert_eq!(codes, [("a".into(), 0), ("b".into(), TOPIC_DENIED)]);

    // ListOffsets: Describe.
    use list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let lo = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(
            ["a", "b"]
                .iter()
                .map(|t| {
                    ListOffsetsTopic::default()
                        .with_name(topic(t))
                        .with_partitions(vec![ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(-1)])
                })
                .collect(),
        );
    let r: ListOffsetsResponse = h.call(alice, ApiKey::ListOffsets, 7, &lo).await;
    let codes: Vec<i16> = r
        .topics
        .iter()
        .map(|t| t.partitions[0].error_code)
        .collect();
    assert_eq!(codes, [0, TOPIC_DENIED]);

    // Metadata: all topics lists only what alice may describe; an explicit topic she may not
    // describe is TOPIC_AUTHORIZATION_FAILED, existing or not (never UNKNOWN_TOPIC).
    let all = MetadataRequest::default()
        .with_topics(None)
        .with_include_topic_authorized_operations(true);
    let r: MetadataResponse = h.call(alice, ApiKey::Metadata, 12, &all).await;
    let listed: Vec<String> = r
        .topics
        .iter()
        .map(|t| t.name.as_ref().unwrap().0.to_string())
        .collect();
    assert_eq!(listed, ["a"]);
    assert_eq!(
        r.topics[0].topic_authorized_operations,
        (1 << READ) | (1 << DESCRIBE),
        "Read and the Describe it implies"
    );
    let explicit = MetadataRequest::default()
        .with_allow_auto_topic_creation(true)
        .with_topics(Some(
            ["a", "b", "ghost"]
                .iter()
                .map(|t| {
                    metadata_request::MetadataRequestTopic::default().with_name(Some(topic(t)))
                })
                .collect(),
        ));
    let r: MetadataResponse = h.call(alice, ApiKey::Metadata, 12, &explicit).await;
    let codes: Vec<i16> = r.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, [0, TOPIC_DENIED, TOPIC_DENIED]);
    assert!(
        h.broker().kafka_topic("ghost").is_err(),
        "no auto-creation without Create"
    );

    // CreateTopics: Create.
    let ct = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(topic("c"))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    let r: CreateTopicsResponse = h.call(alice, ApiKey::CreateTopics, 7, &ct).await;
    assert_eq!(r.topics[0].error_code, TOPIC_DENIED);

    // DeleteTopics, DeleteRecords: Delete. CreatePartitions: Alter.
    let dt = DeleteTopicsRequest::default().with_topic_names(vec![topic("b")]);
    let r: DeleteTopicsResponse = h.call(alice, ApiKey::DeleteTopics, 5, &dt).await;
    assert_eq!(r.responses[0].error_code, TOPIC_DENIED);
    assert!(h.broker().kafka_topic("b").is_ok());
    let dr = DeleteRecordsRequest::default().with_topics(vec![
        delete_records_request::DeleteRecordsTopic::default()
            .with_name(topic("a"))
            .with_partitions(vec![
                delete_records_request::DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(-1),
            ]),
    ]);
    let r: DeleteRecordsResponse = h.call(alice, ApiKey::DeleteRecords, 2, &dr).await;
    assert_eq!(r.topics[0].partitions[0].error_code, TOPIC_DENIED);
    let cp = CreatePartitionsRequest::default().with_topics(vec![
        create_partitions_request::CreatePartitionsTopic::default()
            .with_name(topic("a"))
            .with_count(3),
    ]);
    let r: CreatePartitionsResponse = h.call(alice, ApiKey::CreatePartitions, 3, &cp).await;
    assert_eq!(r.results[0].error_code, TOPIC_DENIED);

    // Configs: a topic's is TOPIC_AUTHORIZATION_FAILED, the broker's CLUSTER_.
    let dc = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("a")),
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(s("1")),
    ]);
    let r: DescribeConfigsResponse = h.call(alice, ApiKey::DescribeConfigs, 4, &dc).await;
    let codes: Vec<i16> = r.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, [TOPIC_DENIED, CLUSTER_DENIED]);
    let ia = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("a"))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_config_operation(0)
                    .with_value(Some(s("1000"))),
            ]),
    ]);
    let r: IncrementalAlterConfigsResponse =
        h.call(alice, ApiKey::IncrementalAlterConfigs, 1, &ia).await;
    assert_eq!(r.responses[0].error_code, TOPIC_DENIED);
    let la = AlterConfigsRequest::default().with_resources(vec![
        alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("a"))
            .with_configs(vec![alter_configs_request::AlterableConfig::default()
                .with_name(s("cleanup.policy"))
                .with_value(Some(s("compact")))]),
    ]);
    let r: AlterConfigsResponse = h.call(alice, ApiKey::AlterConfigs, 2, &la).await;
    assert_eq!(r.responses[0].error_code, TOPIC_DENIED);

    // InitProducerId: IdempotentWrite (any right to send), and Write on a transactional id.
    let ip = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id((-1).into())
        .with_producer_epoch(-1);
    let r: InitProducerIdResponse = h.call(alice, ApiKey::InitProducerId, 4, &ip).await;
    assert_eq!(r.error_code, CLUSTER_DENIED);
    let tx = ip.clone().with_transactional_id(Some(s("tx-1").into()));
    let r: InitProducerIdResponse = h.call(alice, ApiKey::InitProducerId, 4, &tx).await;
    assert_eq!(r.error_code, TXN_DENIED);

    // DescribeCluster answers, with no cluster operations for alice.
    let dcl = DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
    let r: DescribeClusterResponse = h.call(alice, ApiKey::DescribeCluster, 1, &dcl).await;
    assert_eq!((r.error_code, r.cluster_authorized_operations), (0, 0));
    let r: DescribeClusterResponse = h.call(&ROOT, ApiKey::DescribeCluster, 1, &dcl).await;
    assert_ne!(r.cluster_authorized_operations & (1 << DESCRIBE), 0);

    // Nothing was changed by any refused request; allowed paths still work for root.
    assert_eq!(produce_codes(&h, &ROOT, &["a", "b"]).await, [0, 0]);
    let r: InitProducerIdResponse = h.call(&ROOT, ApiKey::InitProducerId, 4, &ip).await;
    assert_eq!(r.error_code, 0);
}

/// `records()` as a transactional producer's batch (producer 1, epoch 0, sequence 0).
fn transactional_records() -> Bytes {
    let mut b = records().to_vec();
    b[21..23].copy_from_slice(&0x10i16.to_be_bytes());
    b[43..51].copy_from_slice(&1i64.to_be_bytes());
    b[51..53].copy_from_slice(&0i16.to_be_bytes());
    b[53..57].copy_from_slice(&0i32.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

#[tokio::test]
async fn transactional_produce_needs_write_on_its_transactional_id() {
    let h = harness().await;
    let txn_produce = |id: Option<&str>| {
        let mut r = produce(&["a", "b"]).with_transactional_id(id.map(|i| s(i).into()));
        for t in &mut r.topic_data {
            t.partition_data[0].records = Some(transactional_records());
        }
        r
    };
    let codes = |r: ProduceResponse| -> Vec<i16> {
        r.responses
            .iter()
            .flat_map(|t| t.partition_responses.iter().map(|p| p.error_code))
            .collect()
    };
    // Without a transactional id, or without Write on it: the whole request, every
    // partition, before any topic's own rights are looked at.
    for id in [None, Some("tx-1")] {
        let r: ProduceResponse = h.call(&h.alice, ApiKey::Produce, 9, &txn_produce(id)).await;
        assert_eq!(codes(r), [TXN_DENIED; 2], "{id:?}");
        let r: ProduceResponse = h.call(&ROOT, ApiKey::Produce, 9, &txn_produce(None)).await;
        assert_eq!(codes(r), [TXN_DENIED; 2], "no transactional id");
    }
    // With the right, the batches reach the broker (whose coordinator then judges them).
    let r: ProduceResponse = h
        .call(&ROOT, ApiKey::Produce, 9, &txn_produce(Some("tx-1")))
        .await;
    let invalid = ResponseError::InvalidRequest.code();
    assert!(
        codes(r).iter().all(|&c| c != TXN_DENIED && c != invalid),
        "refused at the door"
    );
}

#[tokio::test]
async fn group_apis_answer_group_authorization_failed_until_granted() {
    let h = harness().await;
    let alice = &h.alice;
    let g = || GroupId(s("g"));

    let fc = FindCoordinatorRequest::default().with_key(s("g"));
    let r: FindCoordinatorResponse = h.call(alice, ApiKey::FindCoordinator, 3, &fc).await;
    assert_eq!(r.error_code, GROUP_DENIED);
    let join = JoinGroupRequest::default()
        .with_group_id(g())
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
        )
        .with_name(s("range"))
        .with_metadata(Bytes::from_static(b"m"))]);
    let r: JoinGroupResponse = h.call(alice, ApiKey::JoinGroup, 9, &join).await;
    assert_eq!(r.error_code, GROUP_DENIED);
    let sync = SyncGroupRequest::default()
        .with_group_id(g())
        .with_member_id(s("m"));
    let r: SyncGroupResponse = h.call(alice, ApiKey::SyncGroup, 5, &sync).await;
    assert_eq!(r.error_code, GROUP_DENIED);
    let hb = HeartbeatRequest::default()
        .with_group_id(g())
        .with_member_id(s("m"));
    let r: HeartbeatResponse = h.call(alice, ApiKey::Heartbeat, 4, &hb).await;
    assert_eq!(r.error_code, GROUP_DENIED);
    let lg = LeaveGroupRequest::default()
        .with_group_id(g())
        .with_members(vec![
            leave_group_request::MemberIdentity::default().with_member_id(s("m"))
        ]);
    let r: LeaveGroupResponse = h.call(alice, ApiKey::LeaveGroup, 5, &lg).await;
    assert_eq!(r.error_code, GROUP_DENIED);
    let dg = DescribeGroupsRequest::default().with_groups(vec![g()]);
    let r: DescribeGroupsResponse = h.call(alice, ApiKey::DescribeGroups, 5, &dg).await;
    assert_eq!(r.groups[0].error_code, GROUP_DENIED);
    let del = DeleteGroupsRequest::default().with_groups_names(vec![g()]);
    let r: DeleteGroupsResponse = h.call(alice, ApiKey::DeleteGroups, 2, &del).await;
    assert_eq!(r.results[0].error_code, GROUP_DENIED);
    let od = OffsetDeleteRequest::default()
        .with_group_id(g())
        .with_topics(vec![
            offset_delete_request::OffsetDeleteRequestTopic::default()
                .with_name(topic("a"))
                .with_partitions(vec![
                    offset_delete_request::OffsetDeleteRequestPartition::default()
                        .with_partition_index(0),
                ]),
        ]);
    let r: OffsetDeleteResponse = h.call(alice, ApiKey::OffsetDelete, 0, &od).await;
    assert_eq!(r.error_code, GROUP_DENIED);
    let of = OffsetFetchRequest::default()
        .with_group_id(g())
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(topic("b"))
                .with_partition_indexes(vec![0]),
        ]));
    let r: OffsetFetchResponse = h.call(alice, ApiKey::OffsetFetch, 7, &of).await;
    assert_eq!(r.error_code, GROUP_DENIED);
    let commit = OffsetCommitRequest::default()
        .with_group_id(g())
        .with_generation_id_or_member_epoch(-1)
        .with_topics(
            ["a", "b"]
                .iter()
                .map(|t| {
                    offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(topic(t))
                        .with_partitions(vec![
                            offset_commit_request::OffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(0),
                        ])
                })
                .collect(),
        );
    let commit_codes = |r: OffsetCommitResponse| -> Vec<i16> {
        r.topics
            .iter()
            .map(|t| t.partitions[0].error_code)
            .collect()
    };
    let r = h.call(alice, ApiKey::OffsetCommit, 9, &commit).await;
    assert_eq!(commit_codes(r), [GROUP_DENIED; 2]);

    // Root grants Read on group `g` through CreateAcls: the group answers, and each topic is
    // still judged on its own (Read on `b` is missing).
    let ca = CreateAclsRequest::default().with_creations(vec![acl(
        GROUP,
        "g",
        LITERAL,
        "User:alice",
        READ,
    )]);
    let r: CreateAclsResponse = h.call(&ROOT, ApiKey::CreateAcls, 3, &ca).await;
    assert_eq!(
        r.results[0].error_code, 0,
        "{:?}",
        r.results[0].error_message
    );
    let r: FindCoordinatorResponse = h.call(alice, ApiKey::FindCoordinator, 3, &fc).await;
    assert_eq!(r.error_code, 0);
    let r = h.call(alice, ApiKey::OffsetCommit, 9, &commit).await;
    assert_eq!(commit_codes(r), [0, TOPIC_DENIED]);
    let r: OffsetFetchResponse = h.call(alice, ApiKey::OffsetFetch, 7, &of).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(r.topics[0].partitions[0].error_code, TOPIC_DENIED);
    let r: OffsetDeleteResponse = h.call(alice, ApiKey::OffsetDelete, 0, &od).await;
    assert_eq!(r.error_code, GROUP_DENIED, "Read does not imply Delete");

    // ListGroups lists only the groups the principal may describe.
    let list = ListGroupsRequest::default();
    let r: ListGroupsResponse = h.call(alice, ApiKey::ListGroups, 4, &list).await;
    let groups: Vec<String> = r.groups.iter().map(|g| g.group_id.0.to_string()).collect();
    assert_eq!(groups, ["g"]);
    let r: ListGroupsResponse = h.call(&h.bob, ApiKey::ListGroups, 4, &list).await;
    assert!(r.groups.is_empty(), "bob may describe no group");
    let r: DescribeGroupsResponse = h
        .call(
            alice,
            ApiKey::DescribeGroups,
            5,
            &dg.clone().with_include_authorized_operations(true),
        )
        .await;
    assert_eq!(r.groups[0].error_code, 0);
    assert_eq!(
        r.groups[0].authorized_operations,
        (1 << READ) | (1 << DESCRIBE)
    );
}

#[tokio::test]
async fn acl_apis_read_and_change_the_one_permission_model() {
    let h = harness().await;
    let alice = &h.alice;

    // The ACL APIs need the rights to read / manage users.
    let describe_all = DescribeAclsRequest::default()
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_resource_type_filter(1)
        .with_pattern_type_filter(1)
        .with_operation(1)
        .with_permission_type(1);
    let r: DescribeAclsResponse = h.call(alice, ApiKey::DescribeAcls, 3, &describe_all).await;
    assert_eq!(r.error_code, CLUSTER_DENIED);
    let grant_write = CreateAclsRequest::default().with_creations(vec![acl(
        TOPIC,
        "a",
        LITERAL,
        "User:alice",
        WRITE,
    )]);
    let r: CreateAclsResponse = h.call(alice, ApiKey::CreateAcls, 3, &grant_write).await;
    assert_eq!(r.results[0].error_code, CLUSTER_DENIED);
    let delete_write = DeleteAclsRequest::default().with_filters(vec![
        delete_acls_request::DeleteAclsFilter::default()
            .with_resource_type_filter(TOPIC)
            .with_resource_name_filter(Some(s("a")))
            .with_pattern_type_filter(LITERAL)
            .with_principal_filter(Some(s("User:alice")))
            .with_host_filter(None)
            .with_operation(WRITE)
            .with_permission_type(1),
    ]);
    let r: DeleteAclsResponse = h.call(alice, ApiKey::DeleteAcls, 3, &delete_write).await;
    assert_eq!(r.filter_results[0].error_code, CLUSTER_DENIED);
    assert_eq!(produce_codes(&h, alice, &["a"]).await, [TOPIC_DENIED]);

    // Root: what the model holds is granted, the rest refused with a reason.
    let deny = acl(TOPIC, "a", LITERAL, "User:alice", READ).with_permission_type(2);
    let creations = vec![
        acl(TOPIC, "a", LITERAL, "User:alice", WRITE),
        acl(GROUP, "app-", PREFIXED, "User:alice", READ),
        acl(TOPIC, "ghost", LITERAL, "User:alice", READ),
        deny,
        acl(TOPIC, "a", LITERAL, "User:alice", READ).with_host(s("10.0.0.1")),
        acl(TOPIC, "x", PREFIXED, "User:alice", READ),
        acl(TOPIC, "a", LITERAL, "User:nobody", READ),
        acl(TOPIC, "a", LITERAL, "User:iggy", READ),
    ];
    let r: CreateAclsResponse = h
        .call(
            &ROOT,
            ApiKey::CreateAcls,
            3,
            &CreateAclsRequest::default().with_creations(creations),
        )
        .await;
    let codes: Vec<i16> = r.results.iter().map(|r| r.error_code).collect();
    assert_eq!(
        codes,
        [
            0,
            0,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST
        ]
    );
    assert!(r.results[2..]
        .iter()
        .all(|r| r.error_message.as_ref().is_some_and(|m| !m.is_empty())));

    // The grants are the native permissions: alice now sends to `a` natively and via Kafka.
    let p = h.broker().user(h.alice_id).unwrap().permissions.unwrap();
    let a = h.broker().kafka_topic("a").unwrap();
    let tp = &p.streams[&a.stream_id].topics[&a.id];
    assert!(tp.poll_messages && tp.send_messages);
    assert_eq!(p.groups.len(), 1);
    assert_eq!(produce_codes(&h, alice, &["a"]).await, [0]);

    // DescribeAcls answers the bindings the model implies.
    let mine = describe_all
        .clone()
        .with_principal_filter(Some(s("User:alice")));
    let r: DescribeAclsResponse = h.call(&ROOT, ApiKey::DescribeAcls, 3, &mine).await;
    assert_eq!(r.error_code, 0);
    let seen: Vec<(i8, String, i8, Vec<i8>)> = r
        .resources
        .iter()
        .map(|res| {
            (
                res.resource_type,
                res.resource_name.to_string(),
                res.pattern_type,
                res.acls.iter().map(|a| a.operation).collect(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (TOPIC, "a".to_string(), LITERAL, vec![READ, WRITE]),
            (GROUP, "app-".to_string(), PREFIXED, vec![READ]),
        ]
    );
    let r: DescribeAclsResponse = h
        .call(
            &ROOT,
            ApiKey::DescribeAcls,
            3,
            &describe_all
                .clone()
                .with_principal_filter(Some(s("User:bob"))),
        )
        .await;
    assert!(r.resources.is_empty());

    // DeleteAcls takes the binding away from the same model.
    let r: DeleteAclsResponse = h.call(&ROOT, ApiKey::DeleteAcls, 3, &delete_write).await;
    assert_eq!(r.filter_results[0].error_code, 0);
    let removed: Vec<(String, i8)> = r.filter_results[0]
        .matching_acls
        .iter()
        .map(|m| (m.resource_name.to_string(), m.operation))
        .collect();
    assert_eq!(removed, [("a".to_string(), WRITE)]);
    let p = h.broker().user(h.alice_id).unwrap().permissions.unwrap();
    let tp = &p.streams[&a.stream_id].topics[&a.id];
    assert!(
        tp.poll_messages && !tp.send_messages,
        "Read stays, Write is gone"
    );
    assert_eq!(produce_codes(&h, alice, &["a"]).await, [TOPIC_DENIED]);
}

/// Bound: the anonymous principal (a listener without authentication) has every right on
/// data but none on users: the ACL APIs and the SCRAM credential APIs answer
/// CLUSTER_AUTHORIZATION_FAILED and change nothing.
#[tokio::test]
async fn anonymous_principals_may_use_data_but_not_administer_users() {
    let h = harness().await;
    let anonymous = &Principal::Anonymous;
    assert_eq!(produce_codes(&h, anonymous, &["a", "b"]).await, [0, 0]);
    let all = MetadataRequest::default().with_topics(None);
    let r: MetadataResponse = h.call(anonymous, ApiKey::Metadata, 12, &all).await;
    assert_eq!(r.topics.len(), 2);
    let ct = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(topic("c"))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    let r: CreateTopicsResponse = h.call(anonymous, ApiKey::CreateTopics, 7, &ct).await;
    assert_eq!(r.topics[0].error_code, 0);
    let fc = FindCoordinatorRequest::default().with_key(s("g"));
    let r: FindCoordinatorResponse = h.call(anonymous, ApiKey::FindCoordinator, 3, &fc).await;
    assert_eq!(r.error_code, 0);

    let describe = DescribeAclsRequest::default()
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_resource_type_filter(1)
        .with_pattern_type_filter(1)
        .with_operation(1)
        .with_permission_type(1);
    let r: DescribeAclsResponse = h.call(anonymous, ApiKey::DescribeAcls, 3, &describe).await;
    assert_eq!(r.error_code, CLUSTER_DENIED);
    let before = h.broker().user(h.alice_id).unwrap().permissions;
    let grant = CreateAclsRequest::default().with_creations(vec![acl(
        TOPIC,
        "b",
        LITERAL,
        "User:alice",
        WRITE,
    )]);
    let r: CreateAclsResponse = h.call(anonymous, ApiKey::CreateAcls, 3, &grant).await;
    assert_eq!(r.results[0].error_code, CLUSTER_DENIED);
    let delete = DeleteAclsRequest::default().with_filters(vec![
        delete_acls_request::DeleteAclsFilter::default()
            .with_resource_type_filter(1)
            .with_resource_name_filter(None)
            .with_pattern_type_filter(1)
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_operation(1)
            .with_permission_type(1),
    ]);
    let r: DeleteAclsResponse = h.call(anonymous, ApiKey::DeleteAcls, 3, &delete).await;
    assert_eq!(r.filter_results[0].error_code, CLUSTER_DENIED);
    assert_eq!(
        h.broker().user(h.alice_id).unwrap().permissions,
        before,
        "no permission changed"
    );

    let r: DescribeUserScramCredentialsResponse = h
        .call(
            anonymous,
            ApiKey::DescribeUserScramCredentials,
            0,
            &DescribeUserScramCredentialsRequest::default().with_users(None),
        )
        .await;
    assert_eq!(r.error_code, CLUSTER_DENIED);
    let upsert = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
        alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
            .with_name(s("mallory"))
            .with_mechanism(2)
            .with_iterations(4096)
            .with_salt(Bytes::from_static(b"0123456789abcdef"))
            .with_salted_password(Bytes::from_static(&[7; 64])),
    ]);
    let r: AlterUserScramCredentialsResponse = h
        .call(anonymous, ApiKey::AlterUserScramCredentials, 0, &upsert)
        .await;
    assert_eq!(r.results[0].error_code, CLUSTER_DENIED);
    assert!(h.broker().user_by_name("mallory").is_none(), "no user made");
    // Root may (the APIs themselves work).
    let r: DescribeAclsResponse = h.call(&ROOT, ApiKey::DescribeAcls, 3, &describe).await;
    assert_eq!(r.error_code, 0);
}

#[tokio::test]
async fn deleted_users_may_do_nothing() {
    let h = harness().await;
    let all = MetadataRequest::default().with_topics(None);
    // A session whose user is gone may do nothing (rights are read at each request).
    let alice_id = h.alice_id;
    h.broker()
        .change_users(move |users| users.delete(alice_id))
        .await
        .unwrap();
    let r: MetadataResponse = h.call(&h.alice, ApiKey::Metadata, 12, &all).await;
    assert!(r.topics.is_empty());
}

/// Bound: deleting a binding takes away no right on another resource. `Group:* Read` of a
/// user with the global poll right is refused (INVALID_REQUEST naming `poll_messages`), and
/// the user still reads every topic.
#[tokio::test]
async fn delete_acls_never_takes_rights_on_other_resources() {
    let h = harness().await;
    let mut perms = Permissions::default();
    perms.global.poll_messages = true;
    h.broker()
        .change_users({
            let id = h.alice_id;
            move |users| users.set_permissions(id, Some(perms))
        })
        .await
        .unwrap();
    let group_star = DeleteAclsRequest::default().with_filters(vec![
        delete_acls_request::DeleteAclsFilter::default()
            .with_resource_type_filter(GROUP)
            .with_resource_name_filter(Some(s("*")))
            .with_pattern_type_filter(LITERAL)
            .with_principal_filter(Some(s("User:alice")))
            .with_host_filter(None)
            .with_operation(READ)
            .with_permission_type(1),
    ]);
    let r: DeleteAclsResponse = h.call(&ROOT, ApiKey::DeleteAcls, 3, &group_star).await;
    let result = &r.filter_results[0];
    assert_eq!(result.error_code, INVALID_REQUEST);
    let why = result.error_message.as_ref().unwrap().to_string();
    assert!(why.contains("poll_messages"), "{why}");
    assert!(result.matching_acls.is_empty());
    let p = h.broker().user(h.alice_id).unwrap().permissions.unwrap();
    assert!(p.global.poll_messages, "the topic reads stay");

    // One filter naming every binding the right is listed as (Topic `*` Read and Group `*`
    // Read) removes it.
    let all_of_alice = DeleteAclsRequest::default().with_filters(vec![
        delete_acls_request::DeleteAclsFilter::default()
            .with_resource_type_filter(1)
            .with_resource_name_filter(None)
            .with_pattern_type_filter(1)
            .with_principal_filter(Some(s("User:alice")))
            .with_host_filter(None)
            .with_operation(1)
            .with_permission_type(1),
    ]);
    let r: DeleteAclsResponse = h.call(&ROOT, ApiKey::DeleteAcls, 3, &all_of_alice).await;
    let result = &r.filter_results[0];
    assert_eq!(result.error_code, 0, "{:?}", result.error_message);
    let removed: Vec<(i8, String, i8)> = result
        .matching_acls
        .iter()
        .map(|m| (m.resource_type, m.resource_name.to_string(), m.operation))
        .collect();
    assert_eq!(
        removed,
        [
            (TOPIC, "*".to_string(), READ),
            (GROUP, "*".to_string(), READ)
        ]
    );
    let p = h.broker().user(h.alice_id).unwrap().permissions.unwrap();
    assert!(!p.global.poll_messages);
}

/// Bound: OffsetFetch authorizes the empty group id like any other (Kafka does): bob, with no
/// group right, gets GROUP_AUTHORIZATION_FAILED, not the group's positions or INVALID_GROUP_ID.
#[tokio::test]
async fn offset_fetch_authorizes_the_empty_group_id() {
    let h = harness().await;
    let of = OffsetFetchRequest::default()
        .with_group_id(GroupId(s("")))
        .with_topics(None);
    let r: OffsetFetchResponse = h.call(&h.bob, ApiKey::OffsetFetch, 7, &of).await;
    assert_eq!(r.error_code, GROUP_DENIED);
    let r: OffsetFetchResponse = h.call(&ROOT, ApiKey::OffsetFetch, 7, &of).await;
    assert_eq!(r.error_code, ResponseError::InvalidGroupId.code());
}

/// The transactional APIs through the Kafka door: Kafka's authorization (Write or Describe on
/// the transactional id, Read on the group, Write on topics), Kafka's per-version codes
/// (PRODUCER_FENCED only where the version knows it) and `require_stable`. None of this needs
/// a marker written.
#[tokio::test]
async fn transaction_apis_answer_kafkas_codes_per_version() {
    const NONE: i16 = 0;
    const FENCED: i16 = ResponseError::ProducerFenced.code();
    const OLD_FENCED: i16 = ResponseError::InvalidProducerEpoch.code();
    const INVALID_TXN_STATE: i16 = ResponseError::InvalidTxnState.code();
    const NOT_ATTEMPTED: i16 = ResponseError::OperationNotAttempted.code();
    const UNKNOWN: i16 = ResponseError::UnknownTopicOrPartition.code();
    const UNSTABLE: i16 = ResponseError::UnstableOffsetCommit.code();
    let h = harness().await;
    let alice = &h.alice;
    let id = || TransactionalId(s("tx-1"));

    // FindCoordinator for a transactional id: this node, for whoever may describe it.
    let fc = FindCoordinatorRequest::default()
        .with_key(s("tx-1"))
        .with_key_type(1);
    let r: FindCoordinatorResponse = h.call(alice, ApiKey::FindCoordinator, 3, &fc).await;
    assert_eq!(r.error_code, TXN_DENIED);
    let r: FindCoordinatorResponse = h.call(&ROOT, ApiKey::FindCoordinator, 3, &fc).await;
    assert_eq!(
        (r.error_code, r.node_id.0),
        (NONE, wharf_gateway::kafka::NODE_ID)
    );

    let init = InitProducerIdRequest::default()
        .with_transactional_id(Some(id()))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id((-1).into())
        .with_producer_epoch(-1);
    let r: InitProducerIdResponse = h.call(&ROOT, ApiKey::InitProducerId, 4, &init).await;
    assert_eq!((r.error_code, r.producer_epoch), (NONE, 0));
    let pid = r.producer_id;
    let r: InitProducerIdResponse = h.call(&ROOT, ApiKey::InitProducerId, 4, &init).await;
    assert_eq!(
        (r.error_code, r.producer_id, r.producer_epoch),
        (NONE, pid, 1)
    );
    // KIP-360 with an epoch that is neither current nor last: fenced, by version.
    let stale = init.clone().with_producer_id(pid).with_producer_epoch(9);
    let r: InitProducerIdResponse = h.call(&ROOT, ApiKey::InitProducerId, 3, &stale).await;
    assert_eq!(r.error_code, OLD_FENCED);
    let r: InitProducerIdResponse = h.call(&ROOT, ApiKey::InitProducerId, 4, &stale).await;
    assert_eq!(r.error_code, FENCED);

    // EndTxn with no transaction: INVALID_TXN_STATE; without Write on the id: denied.
    let end = EndTxnRequest::default()
        .with_transactional_id(id())
        .with_producer_id(pid)
        .with_producer_epoch(1)
        .with_committed(true);
    let r: EndTxnResponse = h.call(&ROOT, ApiKey::EndTxn, 3, &end).await;
    assert_eq!(r.error_code, INVALID_TXN_STATE);
    let r: EndTxnResponse = h.call(alice, ApiKey::EndTxn, 3, &end).await;
    assert_eq!(r.error_code, TXN_DENIED);

    // AddPartitionsToTxn: the zombie epoch 0 is fenced (INVALID_PRODUCER_EPOCH before v2); one
    // unknown partition fails the request and the others are not attempted.
    let add = |epoch: i16, topics: &[(&str, Vec<i32>)]| {
        AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(id())
            .with_v3_and_below_producer_id(pid)
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(
                topics
                    .iter()
                    .map(|(t, ps)| {
                        add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                            .with_name(topic(t))
                            .with_partitions(ps.clone())
                    })
                    .collect(),
            )
    };
    let codes = |r: &AddPartitionsToTxnResponse| -> Vec<i16> {
        r.results_by_topic_v3_and_below
            .iter()
            .flat_map(|t| {
                t.results_by_partition
                    .iter()
                    .map(|p| p.partition_error_code)
            })
            .collect()
    };
    let r: AddPartitionsToTxnResponse = h
        .call(
            &ROOT,
            ApiKey::AddPartitionsToTxn,
            1,
            &add(0, &[("a", vec![0])]),
        )
        .await;
    assert_eq!(codes(&r), [OLD_FENCED]);
    let r: AddPartitionsToTxnResponse = h
        .call(
            &ROOT,
            ApiKey::AddPartitionsToTxn,
            2,
            &add(0, &[("a", vec![0])]),
        )
        .await;
    assert_eq!(codes(&r), [FENCED]);
    let mixed = add(1, &[("a", vec![0, 7]), ("nope", vec![0])]);
    let r: AddPartitionsToTxnResponse = h.call(&ROOT, ApiKey::AddPartitionsToTxn, 3, &mixed).await;
    assert_eq!(codes(&r), [NOT_ATTEMPTED, UNKNOWN, UNKNOWN]);
    let r: AddPartitionsToTxnResponse = h
        .call(
            alice,
            ApiKey::AddPartitionsToTxn,
            3,
            &add(1, &[("a", vec![0])]),
        )
        .await;
    assert_eq!(codes(&r), [TXN_DENIED]);
    let r: AddPartitionsToTxnResponse = h
        .call(
            &ROOT,
            ApiKey::AddPartitionsToTxn,
            3,
            &add(1, &[("a", vec![0])]),
        )
        .await;
    assert_eq!(codes(&r), [NONE]);

    // Offsets committed in the transaction: pending, so unstable for require_stable readers.
    let ao = AddOffsetsToTxnRequest::default()
        .with_transactional_id(id())
        .with_producer_id(pid)
        .with_producer_epoch(1)
        .with_group_id(GroupId(s("g")));
    let r: AddOffsetsToTxnResponse = h.call(alice, ApiKey::AddOffsetsToTxn, 3, &ao).await;
    assert_eq!(r.error_code, TXN_DENIED);
    let r: AddOffsetsToTxnResponse = h.call(&ROOT, ApiKey::AddOffsetsToTxn, 3, &ao).await;
    assert_eq!(r.error_code, NONE);
    let toc = TxnOffsetCommitRequest::default()
        .with_transactional_id(id())
        .with_group_id(GroupId(s("g")))
        .with_producer_id(pid)
        .with_producer_epoch(1)
        .with_generation_id(-1)
        .with_topics(vec![
            txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                .with_name(topic("a"))
                .with_partitions(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(5),
                ]),
        ]);
    let r: TxnOffsetCommitResponse = h.call(&ROOT, ApiKey::TxnOffsetCommit, 3, &toc).await;
    assert_eq!(r.topics[0].partitions[0].error_code, NONE);
    let fenced_toc = toc.clone().with_producer_epoch(0);
    let r: TxnOffsetCommitResponse = h.call(&ROOT, ApiKey::TxnOffsetCommit, 3, &fenced_toc).await;
    assert_eq!(r.topics[0].partitions[0].error_code, OLD_FENCED);
    // A group the transaction has not added: Kafka's verification answers
    // TRANSACTION_ABORTABLE from v4, INVALID_TXN_STATE to older clients.
    let other_group = toc.clone().with_group_id(GroupId(s("h")));
    let r: TxnOffsetCommitResponse = h
        .call(&ROOT, ApiKey::TxnOffsetCommit, 3, &other_group)
        .await;
    assert_eq!(r.topics[0].partitions[0].error_code, INVALID_TXN_STATE);
    let r: TxnOffsetCommitResponse = h
        .call(&ROOT, ApiKey::TxnOffsetCommit, 4, &other_group)
        .await;
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ResponseError::TransactionAbortable.code()
    );
    let of = |stable: bool| {
        OffsetFetchRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(topic("a"))
                    .with_partition_indexes(vec![0]),
            ]))
            .with_require_stable(stable)
    };
    let r: OffsetFetchResponse = h.call(&ROOT, ApiKey::OffsetFetch, 7, &of(true)).await;
    assert_eq!(r.topics[0].partitions[0].error_code, UNSTABLE);
    let r: OffsetFetchResponse = h.call(&ROOT, ApiKey::OffsetFetch, 7, &of(false)).await;
    let p = &r.topics[0].partitions[0];
    assert_eq!((p.error_code, p.committed_offset), (NONE, -1));

    // DescribeTransactions and ListTransactions show only what the principal may describe.
    let dt = DescribeTransactionsRequest::default().with_transactional_ids(vec![id()]);
    let r: DescribeTransactionsResponse = h.call(alice, ApiKey::DescribeTransactions, 0, &dt).await;
    assert_eq!(r.transaction_states[0].error_code, TXN_DENIED);
    let r: DescribeTransactionsResponse = h.call(&ROOT, ApiKey::DescribeTransactions, 0, &dt).await;
    let st = &r.transaction_states[0];
    assert_eq!(
        (
            st.error_code,
            st.transaction_state.as_str(),
            st.producer_epoch
        ),
        (NONE, "Ongoing", 1)
    );
    assert_eq!(st.topics.len(), 1);
    assert_eq!(
        (st.topics[0].topic.as_str(), &st.topics[0].partitions[..]),
        ("a", &[0][..])
    );
    let lt = ListTransactionsRequest::default().with_state_filters(vec![s("Ongoing"), s("Bogus")]);
    let r: ListTransactionsResponse = h.call(&ROOT, ApiKey::ListTransactions, 1, &lt).await;
    assert_eq!(r.transaction_states.len(), 1);
    assert_eq!(r.unknown_state_filters, vec![s("Bogus")]);
    let r: ListTransactionsResponse = h.call(alice, ApiKey::ListTransactions, 1, &lt).await;
    assert!(r.transaction_states.is_empty());
}
