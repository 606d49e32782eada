//! Kafka 4's current API versions at the wire: Fetch 13-18 and Produce 13 by topic id
//! (KIP-516), incremental fetch sessions (KIP-227) and their bounded cache, Metadata 13,
//! DescribeCluster 2, DescribeTopicPartitions (KIP-966), ApiVersions 4 and authorized
//! operations; then real clients (kafka-python, confluent-kafka) using them.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use compat_tests::{client_programs, KafkaWire, TestServer};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

const UNKNOWN_TOPIC_ID: i16 = ResponseError::UnknownTopicId.code();
const SESSION_NOT_FOUND: i16 = ResponseError::FetchSessionIdNotFound.code();
const BAD_EPOCH: i16 = ResponseError::InvalidFetchSessionEpoch.code();
const SESSION_TOPIC_ID_ERROR: i16 = ResponseError::FetchSessionTopicIdError.code();
const UNKNOWN_TOPIC: i16 = ResponseError::UnknownTopicOrPartition.code();
const INVALID_REQUEST: i16 = ResponseError::InvalidRequest.code();

/// Kafka's operation codes, as bits of an authorized-operations field.
fn ops(codes: &[i32]) -> i32 {
    codes.iter().fold(0, |b, c| b | (1 << c))
}
/// Every topic operation (READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS,
/// ALTER_CONFIGS), as the unauthenticated test principal holds them.
fn all_topic_ops() -> i32 {
    ops(&[3, 4, 5, 6, 7, 8, 10, 11])
}
/// Every cluster operation (CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS,
/// ALTER_CONFIGS, IDEMPOTENT_WRITE).
fn all_cluster_ops() -> i32 {
    ops(&[5, 7, 8, 9, 10, 11, 12])
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// A record batch of `n` small records.
fn batch(n: usize) -> Bytes {
    compat_tests::record_batch((0..n).map(|i| {
        (
            Some(Bytes::from(format!("k{i}"))),
            Some(Bytes::from(format!("v{i}"))),
        )
    }))
}

/// The topic's id, from Metadata v12.
async fn topic_id(conn: &mut KafkaWire, topic: &str) -> Uuid {
    let req = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(name(topic))),
    ]));
    let resp: MetadataResponse = conn.call(ApiKey::Metadata, 12, &req).await;
    assert_eq!(resp.topics[0].error_code, 0, "{topic}");
    let id = resp.topics[0].topic_id;
    assert!(!id.is_nil(), "{topic} has an id");
    id
}

/// Produces one batch of `n` records to `partition` by name (Produce v11); its base offset.
async fn produce(conn: &mut KafkaWire, topic: &str, partition: i32, n: usize) -> i64 {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch(n))),
            ])]);
    let resp: ProduceResponse = conn.call(ApiKey::Produce, 11, &req).await;
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "{:?}", p.error_message);
    p.base_offset
}

/// A topic of a Fetch: by name before v13, by id from it.
fn fetch_topic(
    version: i16,
    topic: &str,
    id: Uuid,
    parts: &[(i32, i64)],
) -> fetch_request::FetchTopic {
    let t = fetch_request::FetchTopic::default().with_partitions(
        parts
            .iter()
            .map(|&(p, offset)| {
                fetch_request::FetchPartition::default()
                    .with_partition(p)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)
            })
            .collect(),
    );
    if version >= 13 {
        t.with_topic_id(id)
    } else {
        t.with_topic(name(topic))
    }
}

fn forget(version: i16, topic: &str, id: Uuid, parts: &[i32]) -> fetch_request::ForgottenTopic {
    let t = fetch_request::ForgottenTopic::default().with_partitions(parts.to_vec());
    if version >= 13 {
        t.with_topic_id(id)
    } else {
        t.with_topic(name(topic))
    }
}

/// A Fetch that waits for nothing, in session `session` at `epoch`.
fn fetch_req(session: i32, epoch: i32, topics: Vec<fetch_request::FetchTopic>) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(50 << 20)
        .with_session_id(session)
        .with_session_epoch(epoch)
        .with_topics(topics)
}

async fn fetch(conn: &mut KafkaWire, version: i16, req: FetchRequest) -> FetchResponse {
    conn.call(ApiKey::Fetch, version, &req).await
}

async fn describe(
    conn: &mut KafkaWire,
    req: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    conn.call(ApiKey::DescribeTopicPartitions, 0, &req).await
}

/// (partition, error, has records) of each partition answered, in order.
fn answered(r: &FetchResponse) -> Vec<(i32, i16, bool)> {
    r.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| {
            (
                p.partition_index,
                p.error_code,
                p.records.as_ref().is_some_and(|r| !r.is_empty()),
            )
        })
        .collect()
}

#[tokio::test]
async fn fetch_and_produce_by_topic_id_at_every_new_version() {
    let server = TestServer::start().await;
    server.create_kafka_topic("by-id", 2).await;
    let mut conn = KafkaWire::open(server.kafka_addr).await;
    let id = topic_id(&mut conn, "by-id").await;
    let unknown = Uuid::from_u128(0x5eed);

    // Produce v12 names the topic; v13 gives its id (KIP-516) and is answered by id.
    for version in [12, 13] {
        let topic = produce_request::TopicProduceData::default().with_partition_data(vec![
            produce_request::PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch(2))),
        ]);
        let topic = if version >= 13 {
            topic.with_topic_id(id)
        } else {
            topic.with_name(name("by-id"))
        };
        let lost = produce_request::TopicProduceData::default()
            .with_name(name("by-id"))
            .with_topic_id(unknown)
            .with_partition_data(vec![produce_request::PartitionProduceData::default()
                .with_index(1)
                .with_records(Some(batch(1)))]);
        let mut topics = vec![topic];
        if version >= 13 {
            topics.push(lost);
        }
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(topics);
        let resp: ProduceResponse = conn.call(ApiKey::Produce, version, &req).await;
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "Produce v{version}: {:?}", p.error_message);
        if version >= 13 {
            assert_eq!(resp.responses[0].topic_id, id, "answered by id");
            assert_eq!(
                resp.responses[1].topic_id, unknown,
                "the unknown id is answered as asked"
            );
            let lost = &resp.responses[1].partition_responses[0];
            assert_eq!(
                lost.error_code, UNKNOWN_TOPIC_ID,
                "Produce v13 to an unknown id"
            );
        } else {
            assert_eq!(resp.responses[0].name, name("by-id"));
        }
    }

    // Fetch v13-18 by id, sessionless: both batches come back under the topic's id; an id no
    // topic has is UNKNOWN_TOPIC_ID (Kafka's answer, not UNKNOWN_TOPIC_OR_PARTITION).
    for version in 13..=18 {
        let req = fetch_req(
            0,
            -1,
            vec![
                fetch_topic(version, "by-id", id, &[(0, 0), (1, 0)]),
                fetch_topic(version, "", unknown, &[(0, 0)]),
            ],
        );
        let resp: FetchResponse = conn.call(ApiKey::Fetch, version, &req).await;
        assert_eq!((resp.error_code, resp.session_id), (0, 0), "v{version}");
        assert_eq!(resp.responses[0].topic_id, id, "v{version}");
        assert_eq!(resp.responses[1].topic_id, unknown, "v{version}");
        assert_eq!(
            answered(&resp),
            [(0, 0, true), (1, 0, false), (0, UNKNOWN_TOPIC_ID, false)],
            "v{version}"
        );
        assert_eq!(
            resp.responses[0].partitions[0].high_watermark, 4,
            "v{version}"
        );
    }
    // And by name below v13, as before.
    for version in 4..=12 {
        let req = fetch_req(0, -1, vec![fetch_topic(version, "by-id", id, &[(0, 2)])]);
        let resp: FetchResponse = conn.call(ApiKey::Fetch, version, &req).await;
        assert_eq!(answered(&resp), [(0, 0, true)], "v{version}");
        assert_eq!(resp.responses[0].topic, name("by-id"), "v{version}");
    }
}

/// KIP-227 at each session-capable version family: names (v7, v12) and ids (v13, v18).
#[tokio::test]
async fn incremental_fetch_sessions_answer_only_what_changed() {
    let server = TestServer::start().await;
    let mut conn = KafkaWire::open(server.kafka_addr).await;
    for version in [7, 12, 13, 18] {
        let topic = format!("inc-{version}");
        server.create_kafka_topic(&topic, 3).await;
        let id = topic_id(&mut conn, &topic).await;
        for p in 0..3 {
            produce(&mut conn, &topic, p, 1).await;
        }
        let all = [(0, 0), (1, 0), (2, 0)];

        // Full request at epoch 0: every partition, and a new session.
        let full = fetch(
            &mut conn,
            version,
            fetch_req(0, 0, vec![fetch_topic(version, &topic, id, &all)]),
        )
        .await;
        assert_eq!(full.error_code, 0, "v{version}");
        let session = full.session_id;
        assert!(session > 0, "v{version}: a session was created");
        assert_eq!(
            answered(&full),
            [(0, 0, true), (1, 0, true), (2, 0, true)],
            "v{version}"
        );

        // Epoch 1 moves every position past the record: nothing changed, nothing answered.
        let moved = [(0, 1), (1, 1), (2, 1)];
        let quiet = fetch(
            &mut conn,
            version,
            fetch_req(session, 1, vec![fetch_topic(version, &topic, id, &moved)]),
        )
        .await;
        assert_eq!(
            (quiet.error_code, quiet.session_id),
            (0, session),
            "v{version}"
        );
        assert_eq!(answered(&quiet), [], "v{version}: no news");

        // A record in partition 1: epoch 2 names no partition and hears only about that one.
        produce(&mut conn, &topic, 1, 1).await;
        let news = fetch(&mut conn, version, fetch_req(session, 2, vec![])).await;
        assert_eq!(news.error_code, 0, "v{version}");
        assert_eq!(answered(&news), [(1, 0, true)], "v{version}");

        // Epoch 2 again (a duplicate): the session is at epoch 3.
        let dup = fetch(&mut conn, version, fetch_req(session, 2, vec![])).await;
        assert_eq!(dup.error_code, BAD_EPOCH, "v{version}");
        assert_eq!(answered(&dup), [], "v{version}");

        // Forget partitions 1 and 2; partition 1 is still at its old position for the
        // session, so a record in partition 2 is not news any more.
        let forgotten = fetch_req(session, 3, vec![]).with_forgotten_topics_data(vec![forget(
            version,
            &topic,
            id,
            &[1, 2],
        )]);
        let after = fetch(&mut conn, version, forgotten).await;
        assert_eq!(after.error_code, 0, "v{version}");
        produce(&mut conn, &topic, 2, 1).await;
        let silent = fetch(&mut conn, version, fetch_req(session, 4, vec![])).await;
        assert_eq!(
            answered(&silent),
            [],
            "v{version}: partition 2 was forgotten"
        );

        // A session made by name cannot go on by id, nor the reverse.
        let other = if version >= 13 { 12 } else { 13 };
        let mixed: FetchResponse = conn
            .call(ApiKey::Fetch, other, &fetch_req(session, 5, vec![]))
            .await;
        assert_eq!(mixed.error_code, SESSION_TOPIC_ID_ERROR, "v{version}");
        assert_eq!(mixed.session_id, 0);

        // A session id nobody has.
        let lost = fetch(&mut conn, version, fetch_req(session ^ 1, 5, vec![])).await;
        assert_eq!(lost.error_code, SESSION_NOT_FOUND, "v{version}");

        // Epoch -1 closes the session: a sessionless answer, then the session is gone.
        let closing = fetch(
            &mut conn,
            version,
            fetch_req(session, -1, vec![fetch_topic(version, &topic, id, &all)]),
        )
        .await;
        assert_eq!((closing.error_code, closing.session_id), (0, 0));
        assert_eq!(answered(&closing).len(), 3);
        let gone = fetch(&mut conn, version, fetch_req(session, 5, vec![])).await;
        assert_eq!(gone.error_code, SESSION_NOT_FOUND, "v{version}");
    }
}

/// Bound: `[kafka] max_incremental_fetch_session_cache_slots` sessions at most, whatever the
/// clients ask (Kafka's max.incremental.fetch.session.cache.slots, split over 8 shards);
/// a full request finding no room is answered sessionless, and the sessions made go on.
#[tokio::test]
async fn the_session_cache_holds_at_most_its_slots() {
    const SLOTS: u32 = 16;
    let server = TestServer::start_with(|c| {
        c.kafka.max_incremental_fetch_session_cache_slots = SLOTS;
    })
    .await;
    server.create_kafka_topic("slots", 1).await;
    let mut conn = KafkaWire::open(server.kafka_addr).await;
    let id = topic_id(&mut conn, "slots").await;
    let mut sessions = BTreeSet::new();
    let mut sessionless = 0;
    for _ in 0..5 * SLOTS {
        let req = fetch_req(0, 0, vec![fetch_topic(18, "slots", id, &[(0, 0)])]);
        let resp: FetchResponse = conn.call(ApiKey::Fetch, 18, &req).await;
        assert_eq!(resp.error_code, 0);
        assert_eq!(
            answered(&resp).len(),
            1,
            "answered whether or not a session was made"
        );
        if resp.session_id == 0 {
            sessionless += 1;
        } else {
            assert!(sessions.insert(resp.session_id), "session ids are unique");
        }
    }
    assert_eq!(
        sessions.len(),
        SLOTS as usize,
        "at most the configured slots"
    );
    assert_eq!(sessionless, 4 * SLOTS);
    // The sessions in the cache all work (none was evicted: all are recent and equal).
    for &s in &sessions {
        let resp: FetchResponse = conn.call(ApiKey::Fetch, 18, &fetch_req(s, 1, vec![])).await;
        assert_eq!((resp.error_code, resp.session_id), (0, s));
    }
}

#[tokio::test]
async fn no_slots_declines_every_session() {
    let server = TestServer::start_with(|c| {
        c.kafka.max_incremental_fetch_session_cache_slots = 0;
    })
    .await;
    server.create_kafka_topic("none", 1).await;
    let mut conn = KafkaWire::open(server.kafka_addr).await;
    let req = fetch_req(0, 0, vec![fetch_topic(12, "none", Uuid::nil(), &[(0, 0)])]);
    let resp: FetchResponse = conn.call(ApiKey::Fetch, 12, &req).await;
    assert_eq!((resp.error_code, resp.session_id), (0, 0));
}

#[tokio::test]
async fn metadata_finds_topics_by_id_and_tells_their_operations() {
    let server = TestServer::start().await;
    server.create_kafka_topic("meta", 2).await;
    let mut conn = KafkaWire::open(server.kafka_addr).await;
    let id = topic_id(&mut conn, "meta").await;
    let unknown = Uuid::from_u128(7);
    for version in [12, 13] {
        let req = MetadataRequest::default()
            .with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default()
                    .with_name(None)
                    .with_topic_id(id),
                metadata_request::MetadataRequestTopic::default()
                    .with_name(None)
                    .with_topic_id(unknown),
                metadata_request::MetadataRequestTopic::default().with_name(Some(name("meta"))),
            ]))
            .with_include_topic_authorized_operations(true);
        let resp: MetadataResponse = conn.call(ApiKey::Metadata, version, &req).await;
        assert_eq!(resp.error_code, 0, "v{version}");
        let by_id = &resp.topics[0];
        assert_eq!(
            (by_id.error_code, by_id.name.clone(), by_id.topic_id),
            (0, Some(name("meta")), id),
            "v{version}"
        );
        assert_eq!(by_id.partitions.len(), 2);
        assert_eq!(by_id.topic_authorized_operations, all_topic_ops());
        let lost = &resp.topics[1];
        assert_eq!(
            (lost.error_code, lost.name.clone(), lost.topic_id),
            (UNKNOWN_TOPIC_ID, None, unknown),
            "v{version}"
        );
        assert_eq!(
            lost.topic_authorized_operations,
            i32::MIN,
            "none for an unknown id"
        );
        assert_eq!(resp.topics[2].topic_id, id);
    }
    // Cluster operations in Metadata v8-v10 only.
    let req = MetadataRequest::default()
        .with_topics(Some(vec![]))
        .with_include_cluster_authorized_operations(true);
    let resp: MetadataResponse = conn.call(ApiKey::Metadata, 10, &req).await;
    assert_eq!(resp.cluster_authorized_operations, all_cluster_ops());
}

#[tokio::test]
async fn describe_cluster_at_every_version() {
    let server = TestServer::start().await;
    let mut conn = KafkaWire::open(server.kafka_addr).await;
    for version in 0..=2 {
        for include in [false, true] {
            let req = DescribeClusterRequest::default()
                .with_include_cluster_authorized_operations(include)
                .with_include_fenced_brokers(version >= 2);
            let resp: DescribeClusterResponse =
                conn.call(ApiKey::DescribeCluster, version, &req).await;
            assert_eq!(resp.error_code, 0, "v{version}");
            assert_eq!(resp.brokers.len(), 1);
            assert!(!resp.brokers[0].is_fenced);
            assert_eq!(resp.brokers[0].port, i32::from(server.kafka_addr.port()));
            let expected = if include { all_cluster_ops() } else { i32::MIN };
            assert_eq!(resp.cluster_authorized_operations, expected, "v{version}");
        }
    }
    // Endpoint types (v1+): a broker answers for brokers only, as Kafka's.
    for (endpoint, error) in [
        (2, ResponseError::MismatchedEndpointType.code()),
        (7, ResponseError::UnsupportedEndpointType.code()),
    ] {
        for version in 1..=2 {
            let req = DescribeClusterRequest::default().with_endpoint_type(endpoint);
            let resp: DescribeClusterResponse =
                conn.call(ApiKey::DescribeCluster, version, &req).await;
            assert_eq!(resp.error_code, error, "v{version} endpoint {endpoint}");
            assert!(resp.brokers.is_empty());
        }
    }
}

fn dtp(topics: &[&str], limit: i32, cursor: Option<(&str, i32)>) -> DescribeTopicPartitionsRequest {
    DescribeTopicPartitionsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|t| {
                    describe_topic_partitions_request::TopicRequest::default().with_name(name(t))
                })
                .collect(),
        )
        .with_response_partition_limit(limit)
        .with_cursor(cursor.map(|(t, p)| {
            describe_topic_partitions_request::Cursor::default()
                .with_topic_name(name(t))
                .with_partition_index(p)
        }))
}

/// A DescribeTopicPartitions page: (topic, error, partitions) of each topic answered, and
/// the next cursor.
type Page = (Vec<(String, i16, Vec<i32>)>, Option<(String, i32)>);

/// (topic, error, partitions) of each topic answered, and the next cursor.
fn pages(r: &DescribeTopicPartitionsResponse) -> Page {
    let topics = r
        .topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().map_or(String::new(), |n| n.0.to_string()),
                t.error_code,
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let next = r
        .next_cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index));
    (topics, next)
}

#[tokio::test]
async fn describe_topic_partitions_pages_by_cursor() {
    let server = TestServer::start().await;
    server.create_kafka_topic("dtp-b", 2).await;
    server.create_kafka_topic("dtp-a", 3).await;
    let mut conn = KafkaWire::open(server.kafka_addr).await;
    let a = topic_id(&mut conn, "dtp-a").await;
    let asked = ["dtp-missing", "dtp-b", "dtp-a"];
    let s = |t: &str| t.to_string();

    // Name order, two partitions a page, the cursor where to go on.
    let first = describe(&mut conn, dtp(&asked, 2, None)).await;
    assert_eq!(
        pages(&first),
        (vec![(s("dtp-a"), 0, vec![0, 1])], Some((s("dtp-a"), 2)))
    );
    assert_eq!(first.topics[0].topic_id, a);
    assert_eq!(first.topics[0].topic_authorized_operations, all_topic_ops());
    let p = &first.topics[0].partitions[0];
    assert_eq!(
        (p.leader_id.0, p.replica_nodes.len(), p.isr_nodes.len()),
        (1, 1, 1)
    );
    let second = describe(&mut conn, dtp(&asked, 2, Some(("dtp-a", 2)))).await;
    assert_eq!(
        pages(&second),
        (
            vec![(s("dtp-a"), 0, vec![2]), (s("dtp-b"), 0, vec![0])],
            Some((s("dtp-b"), 1))
        )
    );
    let last = describe(&mut conn, dtp(&asked, 2, Some(("dtp-b", 1)))).await;
    assert_eq!(
        pages(&last),
        (
            vec![
                (s("dtp-b"), 0, vec![1]),
                (s("dtp-missing"), UNKNOWN_TOPIC, vec![])
            ],
            None
        )
    );
    // A full page ends where the next topic begins.
    let exact = describe(&mut conn, dtp(&asked, 3, None)).await;
    assert_eq!(
        pages(&exact),
        (vec![(s("dtp-a"), 0, vec![0, 1, 2])], Some((s("dtp-b"), 0)))
    );
    // Every topic: the ones that exist, without errors for missing ones.
    let all = describe(&mut conn, dtp(&[], 2000, None)).await;
    assert_eq!(
        pages(&all),
        (
            vec![(s("dtp-a"), 0, vec![0, 1, 2]), (s("dtp-b"), 0, vec![0, 1])],
            None
        )
    );
    // A cursor on a topic not asked for, or a negative partition: INVALID_REQUEST per topic.
    for cursor in [("dtp-zzz", 0), ("dtp-a", -1)] {
        let bad = describe(&mut conn, dtp(&["dtp-a", "dtp-b"], 10, Some(cursor))).await;
        assert_eq!(
            pages(&bad),
            (
                vec![
                    (s("dtp-a"), INVALID_REQUEST, vec![]),
                    (s("dtp-b"), INVALID_REQUEST, vec![])
                ],
                None
            ),
            "{cursor:?}"
        );
    }
}

#[tokio::test]
async fn api_versions_v4_advertises_the_new_versions_and_no_transactions_v2() {
    let server = TestServer::start().await;
    let mut conn = KafkaWire::open(server.kafka_addr).await;
    for version in 0..=4 {
        let resp: ApiVersionsResponse = conn
            .call(ApiKey::ApiVersions, version, &ApiVersionsRequest::default())
            .await;
        assert_eq!(resp.error_code, 0, "v{version}");
        let range = |key: ApiKey| {
            resp.api_keys
                .iter()
                .find(|k| k.api_key == key as i16)
                .map(|k| (k.min_version, k.max_version))
        };
        assert_eq!(range(ApiKey::Produce), Some((0, 13)));
        assert_eq!(range(ApiKey::Fetch), Some((4, 18)));
        assert_eq!(range(ApiKey::Metadata), Some((0, 13)));
        assert_eq!(range(ApiKey::ApiVersions), Some((0, 4)));
        assert_eq!(range(ApiKey::DescribeCluster), Some((0, 2)));
        assert_eq!(range(ApiKey::DescribeTopicPartitions), Some((0, 0)));
        // KIP-890 part 2: clients use transactions v2 (Produce 12 adding partitions
        // implicitly, EndTxn 5) only when `transaction.version` is finalized at 2+.
        assert!(
            !resp
                .finalized_features
                .iter()
                .any(|f| f.name.as_str() == "transaction.version" && f.max_version_level >= 2),
            "v{version}: transactions v2 is off"
        );
        assert!(
            !resp
                .supported_features
                .iter()
                .any(|f| f.name.as_str() == "transaction.version" && f.max_version >= 2),
            "v{version}"
        );
    }
}

/// kafka-python (Fetch 18, Produce 9, Metadata 13, sessions) consuming many partitions with
/// incremental fetch sessions, and its admin client describing topics and the cluster with
/// their authorized operations; confluent-kafka's admin client likewise.
#[tokio::test]
async fn real_clients_use_sessions_topic_ids_and_authorized_operations() {
    let server = TestServer::start().await;
    client_programs::run(
        "fetch_sessions_clients.py",
        &client_programs::python(),
        &server.kafka_addr.to_string(),
        &[],
        Duration::from_secs(240),
    )
    .await;
}

/// A SASL user who may only read `shop.a`: the operations each answer discloses are hers, the
/// cluster's none (she may not describe it: Kafka discloses nothing then), `shop.b` refused
/// everywhere, in Fetch sessions too.
#[tokio::test]
async fn authorized_operations_are_the_principals() {
    use iggy::prelude::{
        Identifier, Permissions, StreamClient as _, StreamPermissions, TopicClient as _,
        TopicPermissions, UserClient as _, UserStatus,
    };
    use std::collections::BTreeMap;
    use wharf_gateway::config::KafkaAuthentication;

    let server =
        TestServer::start_with(|c| c.kafka.authentication = KafkaAuthentication::Sasl).await;
    let root = compat_tests::iggy_root_client(&server).await;
    compat_tests::create_stream_with_topic(&root, "shop", "a", 2).await;
    compat_tests::create_stream_with_topic(&root, "mall", "b", 1).await;
    let shop = Identifier::named("shop").unwrap();
    let stream = root.get_stream(&shop).await.unwrap().unwrap();
    let a = root
        .get_topic(&shop, &Identifier::named("a").unwrap())
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
    root.create_user("alice", "alice-pw", UserStatus::Active, Some(perms))
        .await
        .unwrap();

    let mut conn = KafkaWire::open(server.kafka_addr).await;
    let hs: SaslHandshakeResponse = conn
        .call(
            ApiKey::SaslHandshake,
            1,
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
        )
        .await;
    assert_eq!(hs.error_code, 0);
    let auth: SaslAuthenticateResponse = conn
        .call(
            ApiKey::SaslAuthenticate,
            2,
            &SaslAuthenticateRequest::default()
                .with_auth_bytes(Bytes::from_static(b"\0alice\0alice-pw")),
        )
        .await;
    assert_eq!(auth.error_code, 0, "{:?}", auth.error_message);

    let denied = ResponseError::TopicAuthorizationFailed.code();
    let (read, write, describe_op) = (1 << 3, 1 << 4, 1 << 8);

    for version in 0..=2 {
        let req =
            DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
        let resp: DescribeClusterResponse = conn.call(ApiKey::DescribeCluster, version, &req).await;
        assert_eq!(
            resp.cluster_authorized_operations, 0,
            "v{version}: nothing disclosed"
        );
    }

    let req = MetadataRequest::default()
        .with_topics(Some(
            ["shop.a", "mall.b"]
                .iter()
                .map(|t| metadata_request::MetadataRequestTopic::default().with_name(Some(name(t))))
                .collect(),
        ))
        .with_include_topic_authorized_operations(true);
    let meta: MetadataResponse = conn.call(ApiKey::Metadata, 13, &req).await;
    let a_ops = meta.topics[0].topic_authorized_operations;
    assert_eq!(meta.topics[0].error_code, 0);
    assert_eq!(
        a_ops & (read | describe_op),
        read | describe_op,
        "{a_ops:b}"
    );
    assert_eq!(a_ops & write, 0, "{a_ops:b}");
    assert_eq!(meta.topics[1].error_code, denied);
    assert_eq!(meta.topics[1].topic_authorized_operations, i32::MIN);
    let a_id = meta.topics[0].topic_id;

    let page = describe(&mut conn, dtp(&["shop.a", "mall.b"], 100, None)).await;
    assert_eq!(
        pages(&page),
        (
            vec![
                ("shop.a".to_string(), 0, vec![0, 1]),
                ("mall.b".to_string(), denied, vec![])
            ],
            None
        )
    );
    assert_eq!(page.topics[0].topic_authorized_operations, a_ops);
    assert!(
        page.topics[1].topic_id.is_nil(),
        "no id for a refused topic"
    );
    let every = describe(&mut conn, dtp(&[], 100, None)).await;
    assert_eq!(
        pages(&every),
        (vec![("shop.a".to_string(), 0, vec![0, 1])], None)
    );

    // A Fetch session: shop.a answered, mall.b refused in the full request and again in each
    // incremental one (the session keeps it; authorization is checked every time).
    let req = fetch_req(
        0,
        0,
        vec![
            fetch_topic(12, "shop.a", a_id, &[(0, 0), (1, 0)]),
            fetch_topic(12, "mall.b", a_id, &[(0, 0)]),
        ],
    );
    let full = fetch(&mut conn, 12, req).await;
    assert_eq!(
        answered(&full),
        [(0, 0, false), (1, 0, false), (0, denied, false)]
    );
    assert!(full.session_id > 0);
    let next = fetch(&mut conn, 12, fetch_req(full.session_id, 1, vec![])).await;
    assert_eq!(next.error_code, 0);
    assert_eq!(
        answered(&next),
        [(0, denied, false)],
        "errors are always carried"
    );
    assert_eq!(next.responses[0].topic, name("mall.b"));
}
