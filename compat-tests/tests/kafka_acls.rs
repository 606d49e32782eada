//! Kafka ACLs and authorization against a real server: one permission model behind both
//! doors. Bindings made with Kafka's CreateAcls are the permissions the official `iggy` SDK
//! reads; permissions set natively are what a SASL-authenticated Kafka client may do.
//! (rdkafka's AdminClient has no ACL API, so the ACL requests are built with the
//! `kafka-protocol` crate.)
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;

use bytes::Bytes;
use compat_tests::{create_stream_with_topic, iggy_root_client, within, KafkaWire, TestServer};
use iggy::prelude::{
    Identifier, Permissions, StreamClient as _, StreamPermissions, TopicClient as _,
    TopicPermissions, UserClient as _, UserStatus,
};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use wharf_gateway::config::{KafkaAuthentication, KafkaListener};

const TOPIC_DENIED: i16 = ResponseError::TopicAuthorizationFailed.code();
const CLUSTER_DENIED: i16 = ResponseError::ClusterAuthorizationFailed.code();

/// One Kafka connection speaking raw frames ([`KafkaWire`]), with this file's requests.
struct Conn(KafkaWire);

impl std::ops::Deref for Conn {
    type Target = KafkaWire;
    fn deref(&self) -> &KafkaWire {
        &self.0
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut KafkaWire {
        &mut self.0
    }
}

impl Conn {
    async fn open(server: &TestServer) -> Conn {
        Conn(KafkaWire::open(server.kafka_addr).await)
    }

    async fn open_at(addr: std::net::SocketAddr) -> Conn {
        Conn(KafkaWire::open(addr).await)
    }
}

impl Conn {
    /// Authenticates with SASL/PLAIN.
    async fn plain(&mut self, user: &str, password: &str) {
        let hs: SaslHandshakeResponse = self
            .call(
                ApiKey::SaslHandshake,
                1,
                &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
            )
            .await;
        assert_eq!(hs.error_code, 0, "PLAIN offered: {:?}", hs.mechanisms);
        let auth: SaslAuthenticateResponse = self
            .call(
                ApiKey::SaslAuthenticate,
                2,
                &SaslAuthenticateRequest::default()
                    .with_auth_bytes(Bytes::from(format!("\0{user}\0{password}"))),
            )
            .await;
        assert_eq!(auth.error_code, 0, "{:?}", auth.error_message);
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn binding(kind: i8, name: &str, pattern: i8, op: i8) -> create_acls_request::AclCreation {
    create_acls_request::AclCreation::default()
        .with_resource_type(kind)
        .with_resource_name(s(name))
        .with_resource_pattern_type(pattern)
        .with_principal(s("User:alice"))
        .with_host(s("*"))
        .with_operation(op)
        .with_permission_type(3)
}

fn describe_alice() -> DescribeAclsRequest {
    DescribeAclsRequest::default()
        .with_resource_type_filter(1)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(1)
        .with_principal_filter(Some(s("User:alice")))
        .with_host_filter(None)
        .with_operation(1)
        .with_permission_type(1)
}

fn id(name: &str) -> Identifier {
    Identifier::named(name).unwrap()
}

/// Bindings made with Kafka's CreateAcls are the permissions the official iggy SDK reads;
/// a native UpdatePermissions keeps the group grants its wire format cannot carry; DeleteAcls
/// takes the binding away from the same model. The anonymous listener may not use the ACL
/// APIs; root, authenticated with SASL on a second listener, may.
#[tokio::test]
async fn kafka_acls_and_native_permissions_are_one_model() {
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
    let root = iggy_root_client(&server).await;
    create_stream_with_topic(&root, "shop", "orders", 1).await;
    within(
        "create alice",
        root.create_user("alice", "alice-pw", UserStatus::Active, None),
    )
    .await
    .unwrap();
    let stream = root.get_stream(&id("shop")).await.unwrap().unwrap();
    let topic = root
        .get_topic(&id("shop"), &id("orders"))
        .await
        .unwrap()
        .unwrap();

    let create = CreateAclsRequest::default().with_creations(vec![
        binding(2, "shop.orders", 3, 3), // Topic LITERAL Read
        binding(2, "shop.", 4, 4),       // Topic PREFIXED (the stream) Write
        binding(3, "billing-", 4, 3),    // Group PREFIXED Read
        binding(2, "shop.nope", 3, 3),   // a topic that does not exist
    ]);
    // The anonymous listener may use data, not the ACLs (users' rights).
    let mut anonymous = Conn::open(&server).await;
    let r: CreateAclsResponse = anonymous.call(ApiKey::CreateAcls, 3, &create).await;
    let codes: Vec<i16> = r.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, [CLUSTER_DENIED; 4]);
    let r: DescribeAclsResponse = anonymous
        .call(ApiKey::DescribeAcls, 3, &describe_alice())
        .await;
    assert_eq!(r.error_code, CLUSTER_DENIED);

    // Root, authenticated with SASL on the second listener.
    assert_eq!(server.kafka_listeners.len(), 2);
    let mut kafka = Conn::open_at(server.kafka_listeners[1]).await;
    kafka.plain("iggy", "iggy").await;
    let r: CreateAclsResponse = kafka.call(ApiKey::CreateAcls, 3, &create).await;
    let codes: Vec<i16> = r.results.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, [0, 0, 0, ResponseError::InvalidRequest.code()]);
    let why = r.results[3].error_message.as_ref().unwrap().to_string();
    assert!(why.contains("does not exist"), "{why}");

    // The official SDK sees them as Iggy permissions.
    let alice = root.get_user(&id("alice")).await.unwrap().unwrap();
    let perms = alice.permissions.expect("alice has permissions now");
    let sp = &perms.streams.as_ref().unwrap()[&(stream.id as usize)];
    assert!(
        sp.send_messages,
        "Write on the stream prefix is the stream's send right"
    );
    let tp = &sp.topics.as_ref().unwrap()[&(topic.id as usize)];
    assert!(
        tp.poll_messages && !tp.send_messages,
        "Read on the topic is its poll right"
    );

    // A native update keeps the group grant it cannot carry.
    let native = Permissions {
        global: Default::default(),
        streams: Some(BTreeMap::from([(
            stream.id as usize,
            StreamPermissions {
                topics: Some(BTreeMap::from([(
                    topic.id as usize,
                    TopicPermissions {
                        poll_messages: true,
                        read_topic: true,
                        ..TopicPermissions::default()
                    },
                )])),
                ..StreamPermissions::default()
            },
        )])),
    };
    root.update_permissions(&id("alice"), Some(native))
        .await
        .unwrap();
    let r: DescribeAclsResponse = kafka.call(ApiKey::DescribeAcls, 3, &describe_alice()).await;
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
            // Read, Describe, DescribeConfigs: Describe is implied by Read.
            (2, "shop.orders".to_string(), 3, vec![3, 10]),
            (3, "billing-".to_string(), 4, vec![3]),
        ],
        "the native update replaced the stream's Write and kept the group grant"
    );

    // DeleteAcls changes what the SDK reads. Read alone is refused: the topic's read right it
    // comes from also grants DescribeConfigs, which the filter does not name.
    let delete = |operation: i8| {
        DeleteAclsRequest::default().with_filters(vec![
            delete_acls_request::DeleteAclsFilter::default()
                .with_resource_type_filter(2)
                .with_resource_name_filter(Some(s("shop.orders")))
                .with_pattern_type_filter(3)
                .with_principal_filter(Some(s("User:alice")))
                .with_host_filter(None)
                .with_operation(operation)
                .with_permission_type(3),
        ])
    };
    let r: DeleteAclsResponse = kafka.call(ApiKey::DeleteAcls, 3, &delete(3)).await;
    assert_eq!(
        r.filter_results[0].error_code,
        ResponseError::InvalidRequest.code()
    );
    let why = r.filter_results[0]
        .error_message
        .as_ref()
        .unwrap()
        .to_string();
    assert!(why.contains("read_topic"), "{why}");
    let r: DeleteAclsResponse = kafka.call(ApiKey::DeleteAcls, 3, &delete(1)).await;
    assert_eq!(r.filter_results[0].error_code, 0);
    let ops: Vec<i8> = r.filter_results[0]
        .matching_acls
        .iter()
        .map(|m| m.operation)
        .collect();
    assert_eq!(ops, [3, 10], "Read and DescribeConfigs");
    let alice = root.get_user(&id("alice")).await.unwrap().unwrap();
    let perms = alice.permissions.unwrap();
    let tp = &perms.streams.as_ref().unwrap()[&(stream.id as usize)]
        .topics
        .as_ref()
        .unwrap()[&(topic.id as usize)];
    // Every right of the topic that implies Read is gone: Iggy's read right on a topic
    // allows polling it too.
    assert!(!tp.poll_messages && !tp.read_topic, "Read is gone");
    let r: DescribeAclsResponse = kafka.call(ApiKey::DescribeAcls, 3, &describe_alice()).await;
    let names: Vec<String> = r
        .resources
        .iter()
        .map(|r| r.resource_name.to_string())
        .collect();
    assert_eq!(names, ["billing-"]);
}

/// A user allowed to read topic A but not B, authenticated with SASL/PLAIN, gets
/// TOPIC_AUTHORIZATION_FAILED on B (Fetch and Metadata) and reads A.
#[tokio::test]
async fn a_sasl_user_may_read_topic_a_but_not_b() {
    let server =
        TestServer::start_with(|c| c.kafka.authentication = KafkaAuthentication::Sasl).await;
    let root = iggy_root_client(&server).await;
    create_stream_with_topic(&root, "shop", "a", 1).await;
    within(
        "create topic b",
        root.create_topic(
            &id("shop"),
            "b",
            1,
            iggy::prelude::CompressionAlgorithm::None,
            None,
            iggy::prelude::IggyExpiry::NeverExpire,
            iggy::prelude::MaxTopicSize::ServerDefault,
        ),
    )
    .await
    .unwrap();
    let stream = root.get_stream(&id("shop")).await.unwrap().unwrap();
    let a = root
        .get_topic(&id("shop"), &id("a"))
        .await
        .unwrap()
        .unwrap();
    let perms = Permissions {
        global: Default::default(),
        streams: Some(BTreeMap::from([(
            stream.id as usize,
            StreamPermissions {
                topics: Some(BTreeMap::from([(
                    a.id as usize,
                    TopicPermissions {
                        poll_messages: true,
                        ..TopicPermissions::default()
                    },
                )])),
                ..StreamPermissions::default()
            },
        )])),
    };
    within(
        "create alice",
        root.create_user("alice", "alice-pw", UserStatus::Active, Some(perms)),
    )
    .await
    .unwrap();

    let mut kafka = Conn::open(&server).await;
    let hs: SaslHandshakeResponse = kafka
        .call(
            ApiKey::SaslHandshake,
            1,
            &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
        )
        .await;
    assert_eq!(hs.error_code, 0, "PLAIN offered: {:?}", hs.mechanisms);
    let auth: SaslAuthenticateResponse = kafka
        .call(
            ApiKey::SaslAuthenticate,
            2,
            &SaslAuthenticateRequest::default()
                .with_auth_bytes(Bytes::from_static(b"\0alice\0alice-pw")),
        )
        .await;
    assert_eq!(auth.error_code, 0, "{:?}", auth.error_message);

    use fetch_request::{FetchPartition, FetchTopic};
    let fetch = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(
            ["shop.a", "shop.b"]
                .iter()
                .map(|t| {
                    FetchTopic::default()
                        .with_topic(TopicName(s(t)))
                        .with_partitions(vec![FetchPartition::default()
                            .with_partition(0)
                            .with_partition_max_bytes(1 << 20)])
                })
                .collect(),
        );
    let r: FetchResponse = kafka.call(ApiKey::Fetch, 12, &fetch).await;
    let codes: Vec<(String, i16)> = r
        .responses
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.topic.0.to_string(), p.error_code))
        })
        .collect();
    assert_eq!(
        codes,
        [
            ("shop.a".to_string(), 0),
            ("shop.b".to_string(), TOPIC_DENIED)
        ]
    );
    let md = MetadataRequest::default().with_topics(Some(
        ["shop.a", "shop.b"]
            .iter()
            .map(|t| {
                metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s(t))))
            })
            .collect(),
    ));
    let r: MetadataResponse = kafka.call(ApiKey::Metadata, 12, &md).await;
    let codes: Vec<i16> = r.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, [0, TOPIC_DENIED]);
}
