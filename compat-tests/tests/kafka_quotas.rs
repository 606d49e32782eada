//! Client quotas against a real server: DescribeClientQuotas and AlterClientQuotas at every
//! advertised version on the wire (the `kafka-protocol` crate as the client), kafka-python's
//! encoders and confluent-kafka's throttle callbacks (`client_quotas.py`), byte-rate quotas
//! enforced by throttle time (counted in bytes and throttled answers, never in speed), user
//! quotas for SASL principals, authorization, and quotas kept across a restart.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use compat_tests::client_programs;
use compat_tests::{KafkaWire, TestServer};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use wharf_gateway::config::{KafkaAuthentication, KafkaListener};

const INVALID_REQUEST: i16 = ResponseError::InvalidRequest.code();
const UNSUPPORTED_VERSION: i16 = ResponseError::UnsupportedVersion.code();
const CLUSTER_DENIED: i16 = ResponseError::ClusterAuthorizationFailed.code();

/// The client id [`KafkaWire`] sends.
const WIRE_CLIENT: &str = "compat-test";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// `[(entity type, name)]` (`None`: `<default>`) with `[(key, Some(value) | None to remove)]`.
fn alteration(
    entity: &[(&str, Option<&str>)],
    ops: &[(&str, Option<f64>)],
) -> alter_client_quotas_request::EntryData {
    alter_client_quotas_request::EntryData::default()
        .with_entity(
            entity
                .iter()
                .map(|(t, n)| {
                    alter_client_quotas_request::EntityData::default()
                        .with_entity_type(s(t))
                        .with_entity_name(n.map(s))
                })
                .collect(),
        )
        .with_ops(
            ops.iter()
                .map(|(k, v)| {
                    alter_client_quotas_request::OpData::default()
                        .with_key(s(k))
                        .with_value(v.unwrap_or(0.0))
                        .with_remove(v.is_none())
                })
                .collect(),
        )
}

async fn alter(
    conn: &mut KafkaWire,
    v: i16,
    entries: Vec<alter_client_quotas_request::EntryData>,
    validate_only: bool,
) -> Vec<(i16, Option<String>)> {
    let resp: AlterClientQuotasResponse = conn
        .call(
            ApiKey::AlterClientQuotas,
            v,
            &AlterClientQuotasRequest::default()
                .with_entries(entries)
                .with_validate_only(validate_only),
        )
        .await;
    resp.entries
        .into_iter()
        .map(|e| (e.error_code, e.error_message.map(|m| m.to_string())))
        .collect()
}

/// `(match type, entity type, name)` components.
async fn describe(
    conn: &mut KafkaWire,
    v: i16,
    components: &[(i8, &str, Option<&str>)],
    strict: bool,
) -> DescribeClientQuotasResponse {
    conn.call(
        ApiKey::DescribeClientQuotas,
        v,
        &DescribeClientQuotasRequest::default()
            .with_components(
                components
                    .iter()
                    .map(|(m, t, n)| {
                        describe_client_quotas_request::ComponentData::default()
                            .with_entity_type(s(t))
                            .with_match_type(*m)
                            .with_match(n.map(s))
                    })
                    .collect(),
            )
            .with_strict(strict),
    )
    .await
}

/// The described entries as `[(entity, [(key, value)])]`, entities and keys in order.
#[allow(clippy::type_complexity)]
fn entries(
    r: &DescribeClientQuotasResponse,
) -> Vec<(Vec<(String, Option<String>)>, Vec<(String, f64)>)> {
    let mut out: Vec<_> = r
        .entries
        .as_ref()
        .expect("entries")
        .iter()
        .map(|e| {
            let mut entity: Vec<(String, Option<String>)> = e
                .entity
                .iter()
                .map(|d| {
                    (
                        d.entity_type.to_string(),
                        d.entity_name.as_ref().map(|n| n.to_string()),
                    )
                })
                .collect();
            entity.sort();
            let mut values: Vec<(String, f64)> = e
                .values
                .iter()
                .map(|v| (v.key.to_string(), v.value))
                .collect();
            values.sort_by(|a, b| a.0.cmp(&b.0));
            (entity, values)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn ent(pairs: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
    let mut e: Vec<_> = pairs
        .iter()
        .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
        .collect();
    e.sort();
    e
}

fn vals(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// Every advertised version of both APIs: set, read back with each match type and strict,
/// validate_only, remove, and Kafka's refusals with their codes.
#[tokio::test]
async fn quota_apis_at_every_advertised_version() {
    let server = TestServer::start().await;
    let mut conn = KafkaWire::open(server.kafka_addr).await;
    let versions: ApiVersionsResponse = conn
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    for key in [ApiKey::DescribeClientQuotas, ApiKey::AlterClientQuotas] {
        let k = versions
            .api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .unwrap_or_else(|| panic!("{key:?} advertised"));
        assert_eq!((k.min_version, k.max_version), (0, 1), "{key:?}");
    }
    for v in 0..=1i16 {
        let user = format!("alice{v}");
        let user = user.as_str();
        let set = alter(
            &mut conn,
            v,
            vec![
                alteration(
                    &[("user", Some(user))],
                    &[("producer_byte_rate", Some(1024.0))],
                ),
                alteration(
                    &[("user", Some(user)), ("client-id", None)],
                    &[
                        ("consumer_byte_rate", Some(2048.0)),
                        ("request_percentage", Some(12.5)),
                    ],
                ),
                alteration(
                    &[("client-id", Some("c"))],
                    &[("controller_mutation_rate", Some(3.0))],
                ),
            ],
            false,
        )
        .await;
        assert_eq!(set, vec![(0, None), (0, None), (0, None)], "v{v}");

        // EXACT, not strict: both of alice's entities.
        let r = describe(&mut conn, v, &[(0, "user", Some(user))], false).await;
        assert_eq!(r.error_code, 0);
        assert_eq!(
            entries(&r),
            vec![
                (
                    ent(&[("client-id", None), ("user", Some(user))]),
                    vals(&[("consumer_byte_rate", 2048.0), ("request_percentage", 12.5)])
                ),
                (
                    ent(&[("user", Some(user))]),
                    vals(&[("producer_byte_rate", 1024.0)])
                ),
            ],
            "v{v}"
        );
        // Strict: only the user-only entity.
        let r = describe(&mut conn, v, &[(0, "user", Some(user))], true).await;
        assert_eq!(entries(&r).len(), 1, "v{v}");
        // DEFAULT client id with the user.
        let r = describe(
            &mut conn,
            v,
            &[(0, "user", Some(user)), (1, "client-id", None)],
            true,
        )
        .await;
        assert_eq!(
            entries(&r),
            vec![(
                ent(&[("client-id", None), ("user", Some(user))]),
                vals(&[("consumer_byte_rate", 2048.0), ("request_percentage", 12.5)])
            )]
        );
        // SPECIFIED client id, strict: the client-only entity.
        let r = describe(&mut conn, v, &[(2, "client-id", None)], true).await;
        assert_eq!(
            entries(&r),
            vec![(
                ent(&[("client-id", Some("c"))]),
                vals(&[("controller_mutation_rate", 3.0)])
            )]
        );

        // validate_only changes nothing.
        let checked = alter(
            &mut conn,
            v,
            vec![alteration(
                &[("user", Some(user))],
                &[("producer_byte_rate", None)],
            )],
            true,
        )
        .await;
        assert_eq!(checked, vec![(0, None)]);
        let r = describe(&mut conn, v, &[(0, "user", Some(user))], true).await;
        assert_eq!(entries(&r)[0].1, vals(&[("producer_byte_rate", 1024.0)]));

        // Refusals, each with INVALID_REQUEST for its own entry only.
        let refused = alter(
            &mut conn,
            v,
            vec![
                alteration(&[("user", Some(user))], &[("no_such_quota", Some(1.0))]),
                alteration(
                    &[("user", Some(user))],
                    &[("producer_byte_rate", Some(-1.0))],
                ),
                alteration(
                    &[("group", Some("g"))],
                    &[("producer_byte_rate", Some(1.0))],
                ),
                alteration(&[("user", Some(""))], &[("producer_byte_rate", Some(1.0))]),
                alteration(&[("ip", Some("10.0.0.1")), ("user", None)], &[]),
                alteration(
                    &[("client-id", Some("d"))],
                    &[("producer_byte_rate", Some(0.5))],
                ),
            ],
            false,
        )
        .await;
        assert!(
            refused
                .iter()
                .all(|(code, m)| *code == INVALID_REQUEST && m.is_some()),
            "v{v}: {refused:?}"
        );
        // A filter naming an unknown entity type: UNSUPPORTED_VERSION, as Kafka; a bad match:
        // INVALID_REQUEST. Both without entries.
        let r = describe(&mut conn, v, &[(0, "group", Some("g"))], false).await;
        assert_eq!(
            (r.error_code, r.entries.is_none()),
            (UNSUPPORTED_VERSION, true)
        );
        let r = describe(&mut conn, v, &[(0, "user", None)], false).await;
        assert_eq!((r.error_code, r.entries.is_none()), (INVALID_REQUEST, true));

        // Remove everything set at this version.
        let removed = alter(
            &mut conn,
            v,
            vec![
                alteration(&[("user", Some(user))], &[("producer_byte_rate", None)]),
                alteration(
                    &[("user", Some(user)), ("client-id", None)],
                    &[("consumer_byte_rate", None), ("request_percentage", None)],
                ),
                alteration(
                    &[("client-id", Some("c"))],
                    &[("controller_mutation_rate", None)],
                ),
            ],
            false,
        )
        .await;
        assert_eq!(removed, vec![(0, None), (0, None), (0, None)]);
        let r = describe(&mut conn, v, &[], false).await;
        assert_eq!(entries(&r), vec![], "v{v}: all removed");
    }
}

fn batch(records: usize, value_len: usize) -> Bytes {
    compat_tests::record_batch(
        (0..records).map(|_| (None, Some(Bytes::from(vec![b'q'; value_len])))),
    )
}

fn produce_req(topic: &str, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(s(topic)))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(records)),
            ])])
}

fn fetch_req(topic: &str, offset: i64, max_bytes: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(s(topic)))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(max_bytes)])])
}

/// A server whose quotas are measured over 2 windows of 1 s (Kafka's default is 11): the first
/// throttle comes after one second's worth of bytes, so the tests stay short.
async fn start_with_short_windows(
    tweak: impl FnOnce(&mut wharf_gateway::config::ServerConfig),
) -> TestServer {
    TestServer::start_with(|c| {
        c.kafka.quota_windows.samples = 2;
        c.kafka.quota_windows.size = Duration::from_secs(1);
        // `/metrics`, for the server's own count of muted time.
        c.http.address = Some("127.0.0.1:0".parse().unwrap());
        tweak(c);
    })
    .await
}

/// The server's count of quota mutes (KIP-219) and the milliseconds they lasted in all
/// (`wharf_kafka_quota_mutes_total`, `wharf_kafka_quota_muted_seconds_total`). A mute is
/// counted when it ends, before the connection reads again, so an answer to a request sent
/// after a throttled answer is only ever seen once that throttle's mute is in the count.
async fn quota_mutes(server: &TestServer) -> (u64, u64) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let http = server.http_addr.expect("the HTTP listener is on");
    let text = compat_tests::within("GET /metrics", async {
        let mut conn = tokio::net::TcpStream::connect(http).await.unwrap();
        let req = format!("GET /metrics HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n");
        conn.write_all(req.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer).await.unwrap();
        String::from_utf8(answer).unwrap()
    })
    .await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
            .trim()
            .parse()
            .unwrap()
    };
    let mutes = value("wharf_kafka_quota_mutes_total") as u64;
    let muted_ms = (value("wharf_kafka_quota_muted_seconds_total") * 1000.0).round() as u64;
    (mutes, muted_ms)
}

/// What a run of requests got: bytes counted by the quota, answers throttled, the throttle
/// time they announced.
#[derive(Debug, Default)]
struct Tally {
    bytes: u64,
    throttled: u32,
    announced_ms: u64,
}

/// Bound: a producer over `producer_byte_rate` gets `throttle_time_ms` > 0 and its connection
/// is not read from for that long: each request is answered only after every throttle
/// announced before it was waited out in full (the server's own count of muted time, exact,
/// no clock in the test), so the bytes the server takes stay within the quota over the time
/// they took plus the measuring window (counted in bytes; the elapsed time is only the
/// denominator, so a slow machine can only make the bound easier to meet). A client id
/// without a quota on the same server is never throttled.
#[tokio::test]
async fn a_producer_over_its_quota_is_throttled_and_held_to_it() {
    let server = start_with_short_windows(|_| {}).await;
    server.create_kafka_topic("throttled", 1).await;
    let mut admin = KafkaWire::open(server.kafka_addr).await;
    let quota = 40_000.0;
    let set = alter(
        &mut admin,
        1,
        vec![alteration(
            &[("client-id", Some(WIRE_CLIENT))],
            &[("producer_byte_rate", Some(quota))],
        )],
        false,
    )
    .await;
    assert_eq!(set, vec![(0, None)]);

    let mut conn = KafkaWire::open(server.kafka_addr).await;
    let records = batch(10, 1000); // about 10 KB a request
    let mut tally = Tally::default();
    let started = Instant::now();
    for i in 0..30 {
        let req = produce_req("throttled", records.clone());
        let r: ProduceResponse = conn.call(ApiKey::Produce, 9, &req).await;
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "request {i} stored");
        // Muted: request i was read only once every throttle announced before it was over.
        assert_eq!(
            quota_mutes(&server).await,
            (u64::from(tally.throttled), tally.announced_ms),
            "request {i} was read before the mutes announced to it ended: {tally:?}"
        );
        tally.bytes += records.len() as u64;
        if r.throttle_time_ms > 0 {
            tally.throttled += 1;
            tally.announced_ms += r.throttle_time_ms as u64;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert!(tally.throttled >= 5, "{tally:?}");
    // About 300 KB at 40 KB/s: the server announced several seconds of throttling.
    assert!(tally.announced_ms >= 3000, "{tally:?}");
    let bound = quota * (elapsed + 2.0) + 2.0 * records.len() as f64;
    assert!(
        (tally.bytes as f64) <= bound,
        "{tally:?} in {elapsed:.1} s is above the quota's {bound} bytes"
    );

    // Another client id has no quota: never throttled.
    let mut other = KafkaWire::open(server.kafka_addr).await;
    for _ in 0..10 {
        let req = produce_req("throttled", records.clone());
        let r: ProduceResponse = call_as(&mut other, "unlimited", ApiKey::Produce, 9, &req).await;
        assert_eq!(r.throttle_time_ms, 0);
    }
}

/// Bound: a consumer over `consumer_byte_rate` gets Kafka's throttled answer (throttle_time_ms
/// > 0, no partitions, its bytes not counted, its connection muted for that long before the
/// next request is read), and each answer holds at most the quota's worth
/// of the window (Kafka bounds `max_bytes` by it) however much is asked for; the bytes it gets
/// stay within the quota over the time taken plus the window. Every record is read exactly
/// once, in order.
#[tokio::test]
async fn a_consumer_over_its_quota_gets_throttled_answers() {
    let server = start_with_short_windows(|_| {}).await;
    server.create_kafka_topic("read-quota", 1).await;
    let mut producer = KafkaWire::open(server.kafka_addr).await;
    let records = batch(5, 1000); // about 5 KB a batch
    let batches = 40;
    for _ in 0..batches {
        let r: ProduceResponse = producer
            .call(
                ApiKey::Produce,
                9,
                &produce_req("read-quota", records.clone()),
            )
            .await;
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
    let quota = 30_000.0;
    let set = alter(
        &mut producer,
        0,
        vec![alteration(
            &[("client-id", Some(WIRE_CLIENT))],
            &[("consumer_byte_rate", Some(quota))],
        )],
        false,
    )
    .await;
    assert_eq!(set, vec![(0, None)]);

    let mut conn = KafkaWire::open(server.kafka_addr).await;
    let mut offset = 0i64;
    let mut tally = Tally::default();
    let started = Instant::now();
    let total = (batches * 5) as i64;
    let mut answers = 0;
    while offset < total {
        answers += 1;
        assert!(
            answers < 500,
            "still reading after {answers} answers: {tally:?}"
        );
        let r: FetchResponse = conn
            .call(
                ApiKey::Fetch,
                12,
                &fetch_req("read-quota", offset, 50 << 20),
            )
            .await;
        assert_eq!(r.error_code, 0);
        // Muted: this request was read only once every throttle announced before it was over.
        assert_eq!(
            quota_mutes(&server).await,
            (u64::from(tally.throttled), tally.announced_ms),
            "answer {answers} came before the mutes announced to it ended: {tally:?}"
        );
        if r.throttle_time_ms > 0 {
            tally.throttled += 1;
            tally.announced_ms += r.throttle_time_ms as u64;
            assert!(
                r.responses.is_empty(),
                "a throttled Fetch answers no partitions"
            );
            continue;
        }
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        let data = p.records.clone().unwrap_or_default();
        // At most quota × (2 - 1) windows × 1 s, but at least one batch (KIP-74).
        assert!(
            data.len() as f64 <= quota.max(records.len() as f64),
            "{} bytes in one answer, above the quota's window of {quota}",
            data.len()
        );
        tally.bytes += data.len() as u64;
        let mut buf = data;
        let sets = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut buf).unwrap();
        for b in sets.into_iter().flat_map(|set| set.records) {
            assert_eq!(b.offset, offset, "records in order, each once");
            offset += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert!(tally.throttled >= 2, "{tally:?}");
    let bound = quota * (elapsed + 2.0);
    assert!(
        (tally.bytes as f64) <= bound,
        "{tally:?} in {elapsed:.1} s is above the quota's {bound} bytes"
    );
}

/// Sets `consumer_byte_rate` for the wire's client id: 1 byte/s, so every Fetch answer it gets
/// is over the quota (an answer of a few dozen bytes measured over a window of at least 1 s).
async fn throttle_every_fetch(admin: &mut KafkaWire) {
    let set = alter(
        admin,
        1,
        vec![alteration(
            &[("client-id", Some(WIRE_CLIENT))],
            &[("consumer_byte_rate", Some(1.0))],
        )],
        false,
    )
    .await;
    assert_eq!(set, vec![(0, None)]);
}

/// A Fetch (v12, by topic name) of `topic`'s partition 0 in session `session` at `epoch`,
/// listing the partition at `offset` when given.
fn session_fetch(topic: &str, session: i32, epoch: i32, offset: Option<i64>) -> FetchRequest {
    let topics = offset.map_or_else(Vec::new, |o| {
        vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(s(topic)))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(o)
                .with_partition_max_bytes(1 << 20)])]
    });
    FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_id(session)
        .with_session_epoch(epoch)
        .with_topics(topics)
}

/// The high watermark of partition 0 after producing one batch there.
async fn produce_one(conn: &mut KafkaWire, topic: &str) -> i64 {
    let r: ProduceResponse = conn
        .call(ApiKey::Produce, 9, &produce_req(topic, batch(2, 10)))
        .await;
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0);
    p.base_offset + 2
}

/// Bound: a throttled incremental Fetch leaves its session as it was (Kafka's
/// `IncrementalFetchContext.getThrottledResponse`): the answer carries the session id, no
/// error, no partitions, and the news it could not deliver (a high watermark that moved) is
/// still news for the first answer after it. Sessions are not tied to connections, so the
/// unthrottled request comes from another client id.
#[tokio::test]
async fn a_throttled_incremental_fetch_keeps_its_news_for_the_next_answer() {
    let server = start_with_short_windows(|_| {}).await;
    server.create_kafka_topic("session-news", 1).await;
    let mut admin = KafkaWire::open(server.kafka_addr).await;
    let h0 = produce_one(&mut admin, "session-news").await;
    let mut conn = KafkaWire::open(server.kafka_addr).await;
    // A full request at the end of the log: a session caching high watermark h0.
    let full: FetchResponse = conn
        .call(
            ApiKey::Fetch,
            12,
            &session_fetch("session-news", 0, 0, Some(h0)),
        )
        .await;
    assert_eq!((full.error_code, full.throttle_time_ms), (0, 0));
    let session = full.session_id;
    assert_ne!(session, 0, "a session is made");
    assert_eq!(full.responses[0].partitions[0].high_watermark, h0);

    let h1 = produce_one(&mut admin, "session-news").await;
    throttle_every_fetch(&mut admin).await;
    // Epoch 1, the partition moved on to h1: the answer would say the high watermark is h1,
    // but it is throttled.
    let throttled: FetchResponse = conn
        .call(
            ApiKey::Fetch,
            12,
            &session_fetch("session-news", session, 1, Some(h1)),
        )
        .await;
    assert!(throttled.throttle_time_ms > 0, "over 1 byte/s: throttled");
    assert_eq!(
        (throttled.error_code, throttled.session_id),
        (0, session),
        "Kafka's throttled incremental answer: the session's id, no error"
    );
    assert!(throttled.responses.is_empty(), "no partitions");

    // Epoch 2 from an unthrottled client: the new high watermark, never delivered, is news.
    let mut other = KafkaWire::open(server.kafka_addr).await;
    let next: FetchResponse = call_as(
        &mut other,
        "unthrottled",
        ApiKey::Fetch,
        12,
        &session_fetch("session-news", session, 2, None),
    )
    .await;
    assert_eq!(
        (next.error_code, next.session_id, next.throttle_time_ms),
        (0, session, 0)
    );
    let told: Vec<(i32, i64)> = next
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| (p.partition_index, p.high_watermark))
        .collect();
    assert_eq!(
        told,
        vec![(0, h1)],
        "the high watermark the throttled answer did not deliver"
    );
}

/// Bound: a throttled full Fetch makes no session (Kafka's `FullFetchContext
/// .getThrottledResponse`: session id 0), so throttled clients cannot fill the session cache.
/// With 8 slots (one per shard), 8 throttled full requests leave all 8 free: 8 unthrottled
/// full requests after them each get a session (a cache filled by recent sessions of the same
/// size would decline them).
#[tokio::test]
async fn a_throttled_full_fetch_makes_no_session() {
    const SLOTS: usize = 8;
    let server = start_with_short_windows(|c| {
        c.kafka.max_incremental_fetch_session_cache_slots = SLOTS as u32;
    })
    .await;
    server.create_kafka_topic("no-session", 1).await;
    let mut admin = KafkaWire::open(server.kafka_addr).await;
    let end = produce_one(&mut admin, "no-session").await;
    throttle_every_fetch(&mut admin).await;
    for i in 0..SLOTS {
        // A connection each: a throttled one is muted for the throttle time.
        let mut conn = KafkaWire::open(server.kafka_addr).await;
        let r: FetchResponse = conn
            .call(
                ApiKey::Fetch,
                12,
                &session_fetch("no-session", 0, 0, Some(end)),
            )
            .await;
        assert!(r.throttle_time_ms > 0, "request {i} throttled");
        assert_eq!(
            (r.error_code, r.session_id),
            (0, 0),
            "request {i}: Kafka's throttled full answer names no session"
        );
        assert!(r.responses.is_empty());
    }
    let mut other = KafkaWire::open(server.kafka_addr).await;
    let mut sessions = std::collections::BTreeSet::new();
    for i in 0..SLOTS {
        let r: FetchResponse = call_as(
            &mut other,
            "unthrottled",
            ApiKey::Fetch,
            12,
            &session_fetch("no-session", 0, 0, Some(end)),
        )
        .await;
        assert_eq!((r.error_code, r.throttle_time_ms), (0, 0));
        assert_ne!(
            r.session_id, 0,
            "full request {i} found the cache filled by throttled requests"
        );
        sessions.insert(r.session_id);
    }
    assert_eq!(sessions.len(), SLOTS);
}

/// User quotas apply to the authenticated principal: `user=iggy` throttles root on a SASL
/// listener but not the anonymous listener's `ANONYMOUS` with the same client id, whose own
/// `user=<default>` quota applies instead. A user without rights on the cluster may neither
/// describe nor alter quotas (CLUSTER_AUTHORIZATION_FAILED, as Kafka).
#[tokio::test]
async fn user_quotas_follow_the_principal_and_need_cluster_rights() {
    use iggy::prelude::UserClient as _;
    let server = start_with_short_windows(|c| {
        c.kafka.more_listeners = vec![KafkaListener {
            address: "127.0.0.1:0".parse().unwrap(),
            advertised_host: None,
            advertised_port: None,
            authentication: KafkaAuthentication::Sasl,
            tls: false,
        }];
    })
    .await;
    server.create_kafka_topic("users", 1).await;
    let sasl = server.kafka_listeners[1];
    let root_client = compat_tests::iggy_root_client(&server).await;
    root_client
        .create_user(
            "nobody",
            "secret-pass",
            iggy::prelude::UserStatus::Active,
            None,
        )
        .await
        .unwrap();

    let mut anonymous = KafkaWire::open(server.kafka_addr).await;
    let set = alter(
        &mut anonymous,
        1,
        vec![
            alteration(
                &[("user", Some("iggy"))],
                &[("producer_byte_rate", Some(20_000.0))],
            ),
            alteration(&[("user", None)], &[("producer_byte_rate", Some(1e9))]),
        ],
        false,
    )
    .await;
    assert_eq!(set, vec![(0, None), (0, None)]);

    let mut root = KafkaWire::open(sasl).await;
    root.sasl_plain("iggy", "iggy").await;
    let records = batch(10, 1000);
    let mut root_throttled = 0;
    for _ in 0..8 {
        let r: ProduceResponse = root
            .call(ApiKey::Produce, 9, &produce_req("users", records.clone()))
            .await;
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
        root_throttled += u32::from(r.throttle_time_ms > 0);
    }
    assert!(
        root_throttled >= 3,
        "user=iggy's quota throttled root {root_throttled} times"
    );
    for _ in 0..8 {
        let r: ProduceResponse = anonymous
            .call(ApiKey::Produce, 9, &produce_req("users", records.clone()))
            .await;
        assert_eq!(
            r.throttle_time_ms, 0,
            "ANONYMOUS has user=<default>'s large quota"
        );
    }

    let mut nobody = KafkaWire::open(sasl).await;
    nobody.sasl_plain("nobody", "secret-pass").await;
    for v in 0..=1 {
        let r = describe(&mut nobody, v, &[], false).await;
        assert_eq!(
            (r.error_code, r.entries.is_none()),
            (CLUSTER_DENIED, true),
            "v{v}"
        );
        let refused = alter(
            &mut nobody,
            v,
            vec![alteration(
                &[("user", Some("nobody"))],
                &[("producer_byte_rate", None)],
            )],
            false,
        )
        .await;
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].0, CLUSTER_DENIED, "v{v}");
    }
    // Root may.
    let r = describe(&mut root, 1, &[(0, "user", Some("iggy"))], true).await;
    assert_eq!(
        entries(&r),
        vec![(
            ent(&[("user", Some("iggy"))]),
            vals(&[("producer_byte_rate", 20_000.0)])
        )]
    );
}

/// Quotas are kept in the data directory: after a restart they are described as set and still
/// throttle.
#[tokio::test]
async fn quotas_survive_a_restart() {
    let mut server = start_with_short_windows(|_| {}).await;
    server.create_kafka_topic("kept", 1).await;
    let mut conn = KafkaWire::open(server.kafka_addr).await;
    let set = alter(
        &mut conn,
        1,
        vec![alteration(
            &[("client-id", Some(WIRE_CLIENT))],
            &[("producer_byte_rate", Some(10_000.0))],
        )],
        false,
    )
    .await;
    assert_eq!(set, vec![(0, None)]);
    drop(conn);
    server.restart().await;
    let mut conn = KafkaWire::open(server.kafka_addr).await;
    let r = describe(&mut conn, 1, &[], false).await;
    assert_eq!(
        entries(&r),
        vec![(
            ent(&[("client-id", Some(WIRE_CLIENT))]),
            vals(&[("producer_byte_rate", 10_000.0)])
        )]
    );
    let records = batch(10, 1000);
    let mut throttled = 0;
    for _ in 0..4 {
        let r: ProduceResponse = conn
            .call(ApiKey::Produce, 9, &produce_req("kept", records.clone()))
            .await;
        throttled += u32::from(r.throttle_time_ms > 0);
    }
    assert!(
        throttled >= 2,
        "the kept quota throttles after the restart ({throttled})"
    );
}

/// kafka-python's own encoders and decoders of both APIs (its admin client has no quota
/// methods, so the script sends its protocol classes through the admin client's connection),
/// and confluent-kafka (librdkafka) clients that see the throttling through their
/// `throttle_cb`.
#[tokio::test]
async fn python_clients_set_quotas_and_are_throttled() {
    let server = start_with_short_windows(|_| {}).await;
    client_programs::run(
        "client_quotas.py",
        &client_programs::python(),
        &server.kafka_addr.to_string(),
        &[],
        Duration::from_secs(240),
    )
    .await;
}

/// Sends `req` with `client_id` instead of the wire's own.
async fn call_as<R, T>(conn: &mut KafkaWire, client_id: &str, key: ApiKey, v: i16, req: &R) -> T
where
    R: kafka_protocol::protocol::Encodable + kafka_protocol::protocol::HeaderVersion,
    T: kafka_protocol::protocol::Decodable + kafka_protocol::protocol::HeaderVersion,
{
    use bytes::{Buf, BufMut};
    use kafka_protocol::protocol::{Decodable, Encodable};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(v)
        .with_correlation_id(1)
        .with_client_id(Some(s(client_id)))
        .encode(&mut buf, R::header_version(v))
        .unwrap();
    req.encode(&mut buf, v).unwrap();
    let mut out = BytesMut::new();
    out.put_i32(buf.len() as i32);
    out.put_slice(&buf);
    conn.stream.write_all(&out).await.unwrap();
    let mut len = [0u8; 4];
    compat_tests::within("an answer", conn.stream.read_exact(&mut len))
        .await
        .unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    compat_tests::within("an answer", conn.stream.read_exact(&mut body))
        .await
        .unwrap();
    let mut body = Bytes::from(body);
    ResponseHeader::decode(&mut body, T::header_version(v)).unwrap();
    let t = T::decode(&mut body, v).unwrap();
    assert_eq!(body.remaining(), 0);
    t
}

/// acks=0 Produce has no answer to carry throttle_time_ms, but its bytes count all the same and
/// the connection is muted as Kafka does: one request of about 25 KB against 10 KB/s, the
/// first the sensor sees (so its window is the minimum of 1 s), asks for Kafka's
/// `(25 KB / 10 KB/s - 1) × 1 s` ≈ 1.5 s of silence, and the next request is read only once
/// that mute is over (the server's own count of muted time, no clock in the test).
#[tokio::test]
async fn an_acks_0_producer_over_its_quota_is_muted() {
    let server = start_with_short_windows(|_| {}).await;
    server.create_kafka_topic("fire-and-forget", 1).await;
    let mut admin = KafkaWire::open(server.kafka_addr).await;
    let set = alter(
        &mut admin,
        1,
        vec![alteration(
            &[("client-id", Some(WIRE_CLIENT))],
            &[("producer_byte_rate", Some(10_000.0))],
        )],
        false,
    )
    .await;
    assert_eq!(set, vec![(0, None)]);
    let mut conn = KafkaWire::open(server.kafka_addr).await;
    let records = batch(25, 1000);
    let req = produce_req("fire-and-forget", records.clone()).with_acks(0);
    conn.send(ApiKey::Produce, 9, &req).await;
    let _: ApiVersionsResponse = conn
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    let (mutes, muted_ms) = quota_mutes(&server).await;
    assert_eq!(
        mutes, 1,
        "the acks=0 produce muted its connection before the next request was read"
    );
    assert!(
        muted_ms >= 1000,
        "muted {muted_ms} ms for {} bytes against 10 KB/s",
        records.len()
    );
    // Every record was stored all the same.
    let r: ListOffsetsResponse = conn
        .call(
            ApiKey::ListOffsets,
            1,
            &ListOffsetsRequest::default()
                .with_replica_id((-1).into())
                .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                    .with_name(TopicName(s("fire-and-forget")))
                    .with_partitions(vec![
                        list_offsets_request::ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(-1),
                    ])]),
        )
        .await;
    assert_eq!(r.topics[0].partitions[0].offset, 25);
}
