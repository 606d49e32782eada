//! Bad input at the Kafka door: random, truncated and mutated frames, and frames declaring huge
//! array counts (which the `kafka-protocol` crate would allocate from), never crash the server
//! or touch stored data, while a well-behaved client keeps working on its own connection.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use compat_tests::TestServer;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(20);
/// How long a thrown frame may take: a mutated Fetch may rightly long-poll for the server's
/// longest wait (30 s).
const THROW_WAIT: Duration = Duration::from_secs(45);

struct Rng(u64);
impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("WHARF_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5eed_cafe_f00d_u64);
        eprintln!("WHARF_TEST_SEED={seed}");
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn frame<R: Encodable + HeaderVersion>(key: ApiKey, version: i16, req: &R) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("fuzz")))
        .encode(&mut buf, R::header_version(version))
        .unwrap();
    req.encode(&mut buf, version).unwrap();
    buf.to_vec()
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// Valid requests of several APIs and versions, to cut and mutate.
fn seeds() -> Vec<Vec<u8>> {
    let topics = Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(name("good")))
    ]);
    let records = {
        let mut b = BytesMut::new();
        kafka_protocol::records::RecordBatchEncoder::encode(
            &mut b,
            &[kafka_protocol::records::Record {
                transactional: false,
                control: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: kafka_protocol::records::TimestampType::Creation,
                offset: 0,
                sequence: 0,
                timestamp: 1,
                key: Some(Bytes::from_static(b"k")),
                value: Some(Bytes::from_static(b"v")),
                headers: Default::default(),
                delete_horizon: false,
            }],
            &kafka_protocol::records::RecordEncodeOptions {
                version: 2,
                compression: kafka_protocol::records::Compression::None,
            },
        )
        .unwrap();
        b.freeze()
    };
    let produce = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(name("scratch"))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(records)),
            ])]);
    let create = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(name("made-by-fuzz"))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    let fetch = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(name("good"))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(1 << 20)])]);
    vec![
        frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()),
        frame(
            ApiKey::Metadata,
            0,
            &MetadataRequest::default().with_topics(topics.clone()),
        ),
        frame(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(topics),
        ),
        frame(ApiKey::Produce, 3, &produce),
        frame(ApiKey::Produce, 9, &produce),
        frame(ApiKey::CreateTopics, 5, &create),
        frame(ApiKey::Fetch, 4, &fetch),
        frame(ApiKey::Fetch, 12, &fetch),
        frame(
            ApiKey::DescribeConfigs,
            4,
            &DescribeConfigsRequest::default(),
        ),
    ]
    .into_iter()
    .chain(group_seeds())
    .collect()
}

/// Group requests that answer at once whatever they say (JoinGroup is left out: waiting in it
/// until a rebalance ends is its job, so a mutated one may rightly take its rebalance timeout).
fn group_seeds() -> Vec<Vec<u8>> {
    let g = || GroupId(StrBytes::from_static_str("fuzz"));
    let member = || StrBytes::from_static_str("member-1");
    let commit = OffsetCommitRequest::default()
        .with_group_id(g())
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(name("good"))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_committed_offset(1)
                        .with_committed_metadata(Some(StrBytes::from_static_str("m"))),
                ]),
        ]);
    let fetch = OffsetFetchRequest::default()
        .with_group_id(g())
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(name("good"))
                .with_partition_indexes(vec![0, 1]),
        ]));
    let sync = SyncGroupRequest::default()
        .with_group_id(g())
        .with_member_id(member())
        .with_assignments(vec![
            sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(member())
                .with_assignment(Bytes::from_static(b"abc")),
        ]);
    let leave = LeaveGroupRequest::default()
        .with_group_id(g())
        .with_members(vec![
            leave_group_request::MemberIdentity::default().with_member_id(member())
        ]);
    let offset_delete = OffsetDeleteRequest::default()
        .with_group_id(g())
        .with_topics(vec![
            offset_delete_request::OffsetDeleteRequestTopic::default()
                .with_name(name("good"))
                .with_partitions(vec![
                    offset_delete_request::OffsetDeleteRequestPartition::default(),
                ]),
        ]);
    vec![
        frame(ApiKey::OffsetCommit, 2, &commit),
        frame(ApiKey::OffsetCommit, 8, &commit),
        frame(ApiKey::OffsetFetch, 1, &fetch),
        frame(ApiKey::OffsetFetch, 7, &fetch),
        frame(
            ApiKey::Heartbeat,
            4,
            &HeartbeatRequest::default()
                .with_group_id(g())
                .with_member_id(member()),
        ),
        frame(ApiKey::SyncGroup, 5, &sync),
        frame(ApiKey::LeaveGroup, 5, &leave),
        frame(
            ApiKey::DescribeGroups,
            5,
            &DescribeGroupsRequest::default().with_groups(vec![g(), g()]),
        ),
        frame(ApiKey::ListGroups, 4, &ListGroupsRequest::default()),
        frame(
            ApiKey::DeleteGroups,
            2,
            &DeleteGroupsRequest::default().with_groups_names(vec![g()]),
        ),
        frame(ApiKey::OffsetDelete, 0, &offset_delete),
    ]
}

/// Sends one frame (with the given size prefix) on a fresh connection and waits until the
/// server answers or closes. Returns true when it answered.
async fn throw(server: &TestServer, size: i32, body: &[u8]) -> bool {
    let mut s = TcpStream::connect(server.kafka_addr).await.unwrap();
    let mut out = BytesMut::new();
    out.put_i32(size);
    out.put_slice(body);
    if s.write_all(&out).await.is_err() {
        return false;
    }
    // Shorter than declared: close our side so the server sees the end of the frame.
    let _ = s.shutdown().await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(THROW_WAIT, s.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "server neither answered nor closed within {THROW_WAIT:?}; the frame: {body:?}"
    );
    !answer.is_empty()
}

/// The well-behaved client: a produce that must be stored and a metadata call.
async fn healthy(server: &TestServer, c: &mut TcpStream, round: i32) {
    let md = frame(
        ApiKey::Metadata,
        9,
        &MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(name("good"))),
        ])),
    );
    let mut out = BytesMut::new();
    out.put_i32(md.len() as i32);
    out.put_slice(&md);
    c.write_all(&out).await.unwrap();
    let mut len = [0u8; 4];
    tokio::time::timeout(WAIT, c.read_exact(&mut len))
        .await
        .unwrap_or_else(|_| panic!("round {round}: no metadata answer"))
        .unwrap_or_else(|e| {
            panic!(
                "round {round}: healthy connection lost: {e} ({})",
                server.kafka_addr
            )
        });
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    c.read_exact(&mut body).await.unwrap();
    let mut body = Bytes::from(body);
    ResponseHeader::decode(&mut body, MetadataResponse::header_version(9)).unwrap();
    let resp = MetadataResponse::decode(&mut body, 9).unwrap();
    assert_eq!(resp.topics[0].error_code, 0, "round {round}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_never_crashes_the_server_and_a_good_client_keeps_working() {
    let server = TestServer::start().await;
    let mut good = TcpStream::connect(server.kafka_addr).await.unwrap();
    healthy(&server, &mut good, -1).await; // auto-creates "good"

    // Allocation bombs: huge declared counts in tiny frames.
    let mut bombs: Vec<Vec<u8>> = Vec::new();
    let mut md0 = frame(
        ApiKey::Metadata,
        0,
        &MetadataRequest::default().with_topics(Some(vec![])),
    );
    let n = md0.len();
    md0[n - 4..].copy_from_slice(&i32::MAX.to_be_bytes());
    bombs.push(md0);
    let mut ct5 = frame(ApiKey::CreateTopics, 5, &CreateTopicsRequest::default());
    // Flexible: header tags, then the compact topics count (varint) where the empty array was.
    let at = ct5.len() - 1 - 4 - 1 - 1; // count, timeout_ms, validate_only, tags
    ct5.splice(at..at + 1, [0xff, 0xff, 0xff, 0xff, 0x0f]);
    bombs.push(ct5);
    let mut fetch = frame(ApiKey::Fetch, 4, &FetchRequest::default());
    let n = fetch.len();
    fetch[n - 4..].copy_from_slice(&0x7fff_fff0i32.to_be_bytes());
    bombs.push(fetch);
    for b in &bombs {
        throw(&server, b.len() as i32, b).await;
    }
    // Sizes the server must refuse before reading.
    for size in [i32::MIN, -1, 0, 3, i32::MAX] {
        throw(&server, size, &[0, 18, 0, 3]).await;
    }

    let seeds = seeds();
    let mut rng = Rng::new();
    for round in 0..1000u32 {
        let seed = &seeds[rng.below(seeds.len())];
        let body: Vec<u8> = match round % 3 {
            // Truncated (with a size prefix that matches what is sent).
            0 => seed[..rng.below(seed.len())].to_vec(),
            // Mutated: a few bytes flipped or replaced with 0xff.
            1 => {
                let mut m = seed.clone();
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(m.len());
                    m[i] = if rng.next().is_multiple_of(2) {
                        0xff
                    } else {
                        m[i] ^ (1 << rng.below(8))
                    };
                }
                m
            }
            // Random bytes behind a plausible header.
            _ => {
                let mut m = seed[..8.min(seed.len())].to_vec();
                m.extend((0..rng.below(300)).map(|_| rng.next() as u8));
                m
            }
        };
        throw(&server, body.len() as i32, &body).await;
        if round.is_multiple_of(50) {
            healthy(&server, &mut good, round as i32).await;
        }
    }
    healthy(&server, &mut good, 1000).await;
}
