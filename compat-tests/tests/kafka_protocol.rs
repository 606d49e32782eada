//! The Kafka door at the wire: the corner cases clients rely on, driven with hand-built
//! requests (the `kafka-protocol` crate as the client), each against a fresh server.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use compat_tests::TestServer;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(30);

/// One Kafka connection speaking raw frames.
struct Conn {
    stream: TcpStream,
    correlation: i32,
}

impl Conn {
    async fn open(server: &TestServer) -> Conn {
        let stream = TcpStream::connect(server.kafka_addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            correlation: 0,
        }
    }

    async fn send_raw(&mut self, frame: &[u8]) {
        let mut out = BytesMut::new();
        out.put_i32(frame.len() as i32);
        out.put_slice(frame);
        self.stream.write_all(&out).await.unwrap();
    }

    /// Reads one answer frame; `None` when the server closed the connection.
    async fn read_raw(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        let read = tokio::time::timeout(WAIT, self.stream.read_exact(&mut len))
            .await
            .expect("answer in time");
        read.ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body).await.ok()?;
        Some(Bytes::from(body))
    }

    fn frame<R: Encodable + HeaderVersion>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &R,
    ) -> BytesMut {
        self.correlation += 1;
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("wire-test")))
            .encode(&mut buf, R::header_version(version))
            .unwrap();
        req.encode(&mut buf, version).unwrap();
        buf
    }

    async fn call<R, T>(&mut self, key: ApiKey, version: i16, req: &R) -> T
    where
        R: Encodable + HeaderVersion,
        T: Decodable + HeaderVersion,
    {
        let frame = self.frame(key, version, req);
        self.send_raw(&frame).await;
        let mut answer = self
            .read_raw()
            .await
            .expect("an answer, not a closed connection");
        let header = ResponseHeader::decode(&mut answer, T::header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation);
        let body = T::decode(&mut answer, version).unwrap();
        assert_eq!(answer.remaining(), 0, "{key:?} v{version}: bytes left over");
        body
    }
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

async fn create(conn: &mut Conn, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        create_topics_request::CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_value(Some(StrBytes::from_string(v.to_string())))
                    })
                    .collect(),
            ),
    ]);
    let resp: CreateTopicsResponse = conn.call(ApiKey::CreateTopics, 7, &req).await;
    assert_eq!(
        resp.topics[0].error_code, 0,
        "{:?}",
        resp.topics[0].error_message
    );
}

/// A record batch of `n` records, optionally from an idempotent producer.
fn batch(n: usize, producer: Option<(i64, i16, i32)>, ts: i64, value_len: usize) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| {
            let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
            Record {
                transactional: false,
                control: false,
                partition_leader_epoch: 0,
                producer_id: pid,
                producer_epoch: epoch,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The crate starts a new batch whenever offset - sequence changes, so records
                // without a producer still count up (the broker ignores their sequence).
                sequence: seq.max(0) + i as i32,
                timestamp: ts + i as i64,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(vec![b'v'; value_len])),
                headers: IndexMap::new(),
                delete_horizon: false,
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

fn produce_req(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(records)),
            ])])
}

async fn produce(
    conn: &mut Conn,
    topic: &str,
    records: Bytes,
) -> produce_response::PartitionProduceResponse {
    let resp: ProduceResponse = conn
        .call(ApiKey::Produce, 9, &produce_req(topic, 0, records, -1))
        .await;
    resp.responses[0].partition_responses[0].clone()
}

fn fetch_req(
    topic: &str,
    offset: i64,
    max_wait: i32,
    min_bytes: i32,
    max_bytes: i32,
    part_max: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(max_wait)
        .with_min_bytes(min_bytes)
        .with_max_bytes(max_bytes)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(name(topic))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(part_max)])])
}

async fn fetch(conn: &mut Conn, req: &FetchRequest) -> fetch_response::PartitionData {
    let resp: FetchResponse = conn.call(ApiKey::Fetch, 12, req).await;
    assert_eq!(resp.session_id, 0, "a sessionless fetch (epoch -1)");
    resp.responses[0].partitions[0].clone()
}

/// Base offsets of the whole batches in a fetch answer.
fn batch_offsets(records: &Bytes) -> Vec<i64> {
    let mut out = Vec::new();
    let mut b = records.clone();
    while b.remaining() >= 12 {
        let base = b.get_i64();
        let len = b.get_i32() as usize;
        out.push(base);
        b.advance(len.min(b.remaining()));
    }
    out
}

#[tokio::test]
async fn api_versions_above_ours_gets_the_v0_layout_answer() {
    let server = TestServer::start().await;
    let mut c = Conn::open(&server).await;
    let frame = c.frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let mut raw = frame.to_vec();
    raw[3] = 9; // version 9: above what we serve (and above what the crate knows)
    c.send_raw(&raw).await;
    let mut answer = c.read_raw().await.unwrap();
    let header = ResponseHeader::decode(&mut answer, 0).unwrap();
    assert_eq!(header.correlation_id, 1);
    let body = ApiVersionsResponse::decode(&mut answer, 0).unwrap();
    assert_eq!(body.error_code, 35);
    let av = body.api_keys.iter().find(|k| k.api_key == 18).unwrap();
    assert_eq!((av.min_version, av.max_version), (0, 4));
    let produce = body.api_keys.iter().find(|k| k.api_key == 0).unwrap();
    assert_eq!(produce.min_version, 0, "Produce is advertised from v0");

    // The connection still works, at a version we serve.
    let ok: ApiVersionsResponse = c
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    assert_eq!(ok.error_code, 0);
    let fetch = ok.api_keys.iter().find(|k| k.api_key == 1).unwrap();
    assert_eq!(fetch.max_version, 18);

    // An unadvertised API (or Produce v2) closes the connection, as Kafka does.
    let mut produce_v2 = c.frame(ApiKey::Produce, 3, &produce_req("t", 0, Bytes::new(), 1));
    produce_v2[3] = 2; // the crate cannot encode v2; the server must not decode it either
    c.send_raw(&produce_v2).await;
    assert!(c.read_raw().await.is_none());
}

#[tokio::test]
async fn produce_validates_batches_and_limits() {
    let server = TestServer::start().await;
    let mut c = Conn::open(&server).await;
    create(&mut c, "p", 1, &[("max.message.bytes", "2000")]).await;
    let good = batch(3, None, 1000, 10);
    let r = produce(&mut c, "p", good.clone()).await;
    assert_eq!((r.error_code, r.base_offset), (0, 0));
    let r = produce(&mut c, "p", good.clone()).await;
    assert_eq!((r.error_code, r.base_offset), (0, 3));

    let mut corrupt = good.to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    let r = produce(&mut c, "p", Bytes::from(corrupt)).await;
    assert_eq!(r.error_code, 2, "CORRUPT_MESSAGE for a CRC mismatch");

    let r = produce(&mut c, "p", batch(1, None, 1000, 5000)).await;
    assert_eq!(
        r.error_code, 10,
        "MESSAGE_TOO_LARGE above max.message.bytes"
    );

    let r = produce(&mut c, "missing", good.clone()).await;
    assert_eq!(r.error_code, 3);

    // acks=0: no answer; the next request's answer is the next frame.
    let frame = c.frame(ApiKey::Produce, 9, &produce_req("p", 0, good.clone(), 0));
    c.send_raw(&frame).await;
    let md: MetadataResponse = c
        .call(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_name(Some(name("p"))),
            ])),
        )
        .await;
    assert_eq!(md.topics[0].partitions.len(), 1);
    let list: ListOffsetsResponse = c.call(ApiKey::ListOffsets, 7, &list_offsets("p", -1)).await;
    assert_eq!(
        list.topics[0].partitions[0].offset, 9,
        "the acks=0 batch is stored"
    );
}

fn list_offsets(topic: &str, ts: i64) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(ts),
            ])])
}

#[tokio::test]
async fn log_append_time_topics_stamp_the_server_time() {
    let server = TestServer::start().await;
    let mut c = Conn::open(&server).await;
    create(
        &mut c,
        "lat",
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    )
    .await;
    let r = produce(&mut c, "lat", batch(2, None, 5, 1)).await;
    assert!(
        r.log_append_time_ms > 1_600_000_000_000,
        "{}",
        r.log_append_time_ms
    );
    let d = fetch(&mut c, &fetch_req("lat", 0, 0, 1, 1 << 20, 1 << 20)).await;
    let records = d.records.unwrap();
    // maxTimestamp (bytes 35..43) is the append time; clients use it for every record.
    let max_ts = i64::from_be_bytes(records[35..43].try_into().unwrap());
    assert_eq!(max_ts, r.log_append_time_ms);
    let mut records = records;
    let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut records).unwrap();
    assert_eq!(
        set.records[0].timestamp_type,
        TimestampType::LogAppend,
        "CRC re-computed too"
    );
}

#[tokio::test]
async fn idempotent_sequences_dedup_refuse_gaps_and_survive_a_restart() {
    let mut server = TestServer::start().await;
    let mut c = Conn::open(&server).await;
    create(&mut c, "idem", 1, &[]).await;
    let init: InitProducerIdResponse = c
        .call(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(-1)
                .with_producer_id((-1).into())
                .with_producer_epoch(-1),
        )
        .await;
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id.0;
    assert!(pid >= 0);

    let first = batch(5, Some((pid, 0, 0)), 1, 1);
    assert_eq!(produce(&mut c, "idem", first.clone()).await.base_offset, 0);
    let second = batch(5, Some((pid, 0, 5)), 1, 1);
    assert_eq!(produce(&mut c, "idem", second.clone()).await.base_offset, 5);
    // A retry of the first batch: success with its original offset, nothing stored.
    let retry = produce(&mut c, "idem", first.clone()).await;
    assert_eq!((retry.error_code, retry.base_offset), (0, 0));
    // A gap.
    let gap = produce(&mut c, "idem", batch(1, Some((pid, 0, 42)), 1, 1)).await;
    assert_eq!(gap.error_code, 45, "OUT_OF_ORDER_SEQUENCE_NUMBER");

    // After a crash there is no fresh snapshot: remove the one written at stop, so the state
    // must come back from replaying the log.
    drop(c);
    server.stop().await;
    std::fs::remove_file(server.data_dir().join("kafka-producers")).unwrap();
    server.restart().await;
    let mut c = Conn::open(&server).await;
    let retry = produce(&mut c, "idem", second.clone()).await;
    assert_eq!(
        (retry.error_code, retry.base_offset),
        (0, 5),
        "dedup after restart"
    );
    let next = produce(&mut c, "idem", batch(2, Some((pid, 0, 10)), 1, 1)).await;
    assert_eq!((next.error_code, next.base_offset), (0, 10));
    let list: ListOffsetsResponse = c
        .call(ApiKey::ListOffsets, 7, &list_offsets("idem", -1))
        .await;
    assert_eq!(list.topics[0].partitions[0].offset, 12);

    // A new id after the restart is not one handed out before.
    let again: InitProducerIdResponse = c
        .call(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(-1)
                .with_producer_id((-1).into())
                .with_producer_epoch(-1),
        )
        .await;
    assert!(again.producer_id.0 > pid);
}

#[tokio::test]
async fn fetch_returns_whole_batches_within_limits_and_long_polls() {
    let server = TestServer::start().await;
    let mut c = Conn::open(&server).await;
    create(&mut c, "f", 1, &[]).await;
    for _ in 0..3 {
        produce(&mut c, "f", batch(10, None, 1, 100)).await;
    }
    // An offset inside the second batch returns the whole second batch first.
    let d = fetch(&mut c, &fetch_req("f", 15, 0, 1, 1 << 20, 1 << 20)).await;
    assert_eq!(d.error_code, 0);
    assert_eq!(batch_offsets(d.records.as_ref().unwrap()), vec![10, 20]);
    assert_eq!(
        (d.high_watermark, d.log_start_offset, d.last_stable_offset),
        (30, 0, 30)
    );
    // KIP-74: a limit smaller than one batch still returns that batch, and only it.
    let d = fetch(&mut c, &fetch_req("f", 0, 0, 1, 10, 10)).await;
    assert_eq!(batch_offsets(d.records.as_ref().unwrap()), vec![0]);
    // Past the high watermark: OFFSET_OUT_OF_RANGE; at it: nothing, no error.
    let d = fetch(&mut c, &fetch_req("f", 31, 0, 1, 1 << 20, 1 << 20)).await;
    assert_eq!(d.error_code, 1);
    // A long poll at the end is woken by an append from another connection.
    let mut other = Conn::open(&server).await;
    let waiter = tokio::spawn(async move {
        let d = fetch(&mut c, &fetch_req("f", 30, 20_000, 1, 1 << 20, 1 << 20)).await;
        (d, std::time::Instant::now())
    });
    tokio::task::yield_now().await;
    let sent_at = std::time::Instant::now();
    produce(&mut other, "f", batch(1, None, 1, 1)).await;
    let (d, woke) = tokio::time::timeout(WAIT, waiter).await.unwrap().unwrap();
    assert_eq!(batch_offsets(d.records.as_ref().unwrap()), vec![30]);
    assert!(
        woke.duration_since(sent_at) < Duration::from_secs(15),
        "woken by the append, not the 20 s timeout"
    );
}

/// The server's cap on one Fetch answer in the fetch-limit tests (Kafka's `fetch.max.bytes`).
const FETCH_MAX: usize = 1 << 20;

async fn fetch_capped_server() -> TestServer {
    TestServer::start_with(|c| c.kafka.fetch_max_bytes = FETCH_MAX as u32).await
}

async fn produce_to(conn: &mut Conn, topic: &str, partition: i32, records: Bytes) {
    let resp: ProduceResponse = conn
        .call(
            ApiKey::Produce,
            9,
            &produce_req(topic, partition, records, -1),
        )
        .await;
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
}

/// A fetch of `(partition, offset, partition max_bytes)` in this order, at most `max_bytes`.
fn fetch_partitions(topic: &str, wants: &[(i32, i64, i32)], max_bytes: i32) -> FetchRequest {
    fetch_req(topic, 0, 0, 1, max_bytes, 0).with_topics(vec![fetch_request::FetchTopic::default()
        .with_topic(name(topic))
        .with_partitions(
            wants
                .iter()
                .map(|&(p, offset, max)| {
                    fetch_request::FetchPartition::default()
                        .with_partition(p)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(max)
                })
                .collect(),
        )])
}

/// `(partition, record bytes)` of each partition of a fetch answer, in answer order.
async fn fetch_sizes(conn: &mut Conn, version: i16, req: &FetchRequest) -> Vec<(i32, usize)> {
    let resp: FetchResponse = conn.call(ApiKey::Fetch, version, req).await;
    resp.responses[0]
        .partitions
        .iter()
        .map(|p| {
            assert_eq!(p.error_code, 0, "partition {}", p.partition_index);
            (p.partition_index, p.records.as_ref().map_or(0, Bytes::len))
        })
        .collect()
}

#[tokio::test]
async fn fetch_answers_hold_at_most_fetch_max_bytes_whatever_the_client_asks() {
    let server = fetch_capped_server().await;
    let mut c = Conn::open(&server).await;
    create(&mut c, "big", 1, &[]).await;
    // 8 MiB in one partition, as 128 batches of about 64 KiB.
    let one = batch(64, None, 1, 1000);
    let batches = 128;
    for _ in 0..batches {
        produce_to(&mut c, "big", 0, one.clone()).await;
    }
    // Bound: one answer holds at most fetch_max_bytes (1 MiB) of records, filled with whole
    // batches, even when the client asks for i32::MAX; in both encodings (v4 and v12), and a
    // consumer reading on from each answer's end gets every batch once, in order.
    for version in [4, 12] {
        let mut next = 0i64;
        let mut answers = 0;
        while next < batches * 64 {
            let req = fetch_req("big", next, 0, 1, i32::MAX, i32::MAX);
            let resp: FetchResponse = c.call(ApiKey::Fetch, version, &req).await;
            let records = resp.responses[0].partitions[0].records.clone().unwrap();
            assert!(
                records.len() <= FETCH_MAX,
                "v{version}: answer of {} record bytes, cap {FETCH_MAX}",
                records.len()
            );
            let offsets = batch_offsets(&records);
            let expected: Vec<i64> = (0..offsets.len() as i64).map(|i| next + i * 64).collect();
            assert_eq!(offsets, expected, "v{version}: whole batches in order");
            if next + (offsets.len() as i64) * 64 < batches * 64 {
                assert!(
                    records.len() + one.len() > FETCH_MAX,
                    "v{version}: answer of {} bytes not filled up to the cap",
                    records.len()
                );
            }
            next += offsets.len() as i64 * 64;
            answers += 1;
        }
        let per_answer = FETCH_MAX / one.len();
        assert_eq!(
            answers,
            (batches as usize).div_ceil(per_answer),
            "v{version}: read in answers of {per_answer} batches"
        );
    }
}

#[tokio::test]
async fn a_partition_listed_many_times_in_one_fetch_is_answered_once() {
    let server = fetch_capped_server().await;
    let mut c = Conn::open(&server).await;
    create(&mut c, "dup", 2, &[]).await;
    let huge = batch(2, None, 1, 1 << 20);
    assert!(huge.len() > FETCH_MAX);
    produce_to(&mut c, "dup", 0, huge.clone()).await;
    let small = batch(1, None, 1, 10);
    produce_to(&mut c, "dup", 1, small.clone()).await;
    let part = |p: i32, offset: i64| {
        fetch_request::FetchPartition::default()
            .with_partition(p)
            .with_fetch_offset(offset)
            .with_partition_max_bytes(i32::MAX)
    };
    let topic = |partitions| {
        fetch_request::FetchTopic::default()
            .with_topic(name("dup"))
            .with_partitions(partitions)
    };
    // Bound: as Kafka keeps a fetch's partitions (a map by topic and partition, in first-seen
    // order, the last listing's offset winning), partition 0 listed 10,000 times is answered
    // once: one entry, its huge batch once (KIP-74), and partition 1 after it with no records
    // (the cap is used up) but its high watermark.
    for version in [4, 12] {
        let listed = |last_offset| {
            let mut first: Vec<_> = (0..9_999).map(|_| part(0, 0)).collect();
            first.push(part(1, 0));
            fetch_req("dup", 0, 0, 1, i32::MAX, i32::MAX)
                .with_topics(vec![topic(first), topic(vec![part(0, last_offset)])])
        };
        let resp: FetchResponse = c.call(ApiKey::Fetch, version, &listed(0)).await;
        assert_eq!(resp.responses.len(), 1, "v{version}: one topic entry");
        let parts = &resp.responses[0].partitions;
        assert_eq!(parts.len(), 2, "v{version}: partitions answered");
        let answered: Vec<i32> = parts.iter().map(|p| p.partition_index).collect();
        assert_eq!(answered, [0, 1], "v{version}: each partition once");
        assert_eq!(parts[0].records.as_ref(), Some(&huge), "v{version}");
        assert_eq!(parts[1].records.as_ref().map_or(0, Bytes::len), 0);
        assert_eq!((parts[0].high_watermark, parts[1].high_watermark), (2, 1));

        // The last listing's offset (the end of partition 0) is the one fetched from.
        let resp: FetchResponse = c.call(ApiKey::Fetch, version, &listed(2)).await;
        let parts = &resp.responses[0].partitions;
        assert_eq!(parts.len(), 2, "v{version}");
        assert_eq!(parts[0].records.as_ref().map_or(0, Bytes::len), 0);
        assert_eq!(parts[1].records.as_ref(), Some(&small), "v{version}");
    }
}

#[tokio::test]
async fn a_batch_larger_than_every_limit_is_still_returned_whole() {
    let server = fetch_capped_server().await;
    let mut c = Conn::open(&server).await;
    create(&mut c, "huge", 1, &[]).await;
    // Bound (KIP-74): the first batch comes whole even when larger than the request's and the
    // partition's max_bytes and the server's fetch_max_bytes, and nothing comes after it.
    let huge = batch(2, None, 1, 1 << 20);
    assert!(huge.len() > FETCH_MAX);
    produce_to(&mut c, "huge", 0, huge.clone()).await;
    produce_to(&mut c, "huge", 0, batch(1, None, 1, 10)).await;
    for (max, part_max) in [(i32::MAX, i32::MAX), (i32::MAX, 1000), (10, 10)] {
        let req = fetch_req("huge", 0, 0, 1, max, part_max);
        let d = fetch(&mut c, &req).await;
        let records = d.records.unwrap();
        assert_eq!(
            records, huge,
            "max_bytes {max}, partition max_bytes {part_max}"
        );
    }
}

#[tokio::test]
async fn fetch_limits_fill_partitions_in_request_order() {
    let server = fetch_capped_server().await;
    let mut c = Conn::open(&server).await;
    create(&mut c, "m", 3, &[]).await;
    // Partition 0 empty, 1 one batch of 1.5 MiB, 2 three batches of about 100 KiB.
    let large = batch(3, None, 1, 512 << 10);
    produce_to(&mut c, "m", 1, large.clone()).await;
    let small = batch(100, None, 1, 1000);
    for _ in 0..3 {
        produce_to(&mut c, "m", 2, small.clone()).await;
    }
    let all = i32::MAX;
    // Only the first partition with data may go past the limits (KIP-74); it leaves no room
    // for those after it.
    let order = fetch_sizes(
        &mut c,
        12,
        &fetch_partitions("m", &[(0, 0, all), (1, 0, all), (2, 0, all)], all),
    )
    .await;
    assert_eq!(order, vec![(0, 0), (1, large.len()), (2, 0)]);
    // The other way round: partition 2 fills first, partition 1's batch no longer fits in
    // what is left of the 1 MiB.
    let order = fetch_sizes(
        &mut c,
        12,
        &fetch_partitions("m", &[(2, 0, all), (1, 0, all), (0, 0, all)], all),
    )
    .await;
    assert_eq!(order, vec![(2, 3 * small.len()), (1, 0), (0, 0)]);
    // A partition's own max_bytes still holds: one batch of partition 2 fits in 150 KiB.
    let order = fetch_sizes(
        &mut c,
        4,
        &fetch_partitions("m", &[(2, 0, 150 << 10), (1, 0, all)], all),
    )
    .await;
    assert_eq!(order, vec![(2, small.len()), (1, 0)]);
    // The request's own max_bytes below the server's cap holds too.
    let req = fetch_partitions("m", &[(2, 0, all)], (2 * small.len() + 1) as i32);
    assert_eq!(
        fetch_sizes(&mut c, 12, &req).await,
        vec![(2, 2 * small.len())]
    );
}

#[tokio::test]
async fn delete_records_moves_the_log_start_durably() {
    let mut server = TestServer::start().await;
    let mut c = Conn::open(&server).await;
    create(&mut c, "dr", 1, &[]).await;
    for _ in 0..4 {
        produce(&mut c, "dr", batch(5, None, 1, 1)).await;
    }
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(1000)
        .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
            .with_name(name("dr"))
            .with_partitions(vec![
                delete_records_request::DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(7),
            ])]);
    let resp: DeleteRecordsResponse = c.call(ApiKey::DeleteRecords, 2, &req).await;
    assert_eq!(resp.topics[0].partitions[0].low_watermark, 7);
    drop(c);
    server.restart().await;
    let mut c = Conn::open(&server).await;
    let list: ListOffsetsResponse = c
        .call(ApiKey::ListOffsets, 7, &list_offsets("dr", -2))
        .await;
    assert_eq!(list.topics[0].partitions[0].offset, 7);
    let d = fetch(&mut c, &fetch_req("dr", 3, 0, 1, 1 << 20, 1 << 20)).await;
    assert_eq!(d.error_code, 1, "below the log start is out of range");
    assert_eq!(d.log_start_offset, 7);
}

#[tokio::test]
async fn list_offsets_by_timestamp_and_max_timestamp() {
    let server = TestServer::start().await;
    let mut c = Conn::open(&server).await;
    create(&mut c, "ts", 1, &[]).await;
    produce(&mut c, "ts", batch(5, None, 1000, 1)).await; // 1000..1004
    produce(&mut c, "ts", batch(5, None, 9000, 1)).await; // 9000..9004
    produce(&mut c, "ts", batch(5, None, 2000, 1)).await; // 2000..2004
    let at = |resp: ListOffsetsResponse| {
        let p = &resp.topics[0].partitions[0];
        (p.offset, p.timestamp)
    };
    assert_eq!(
        at(c.call(ApiKey::ListOffsets, 7, &list_offsets("ts", 1003))
            .await),
        (3, 1003)
    );
    assert_eq!(
        at(c.call(ApiKey::ListOffsets, 7, &list_offsets("ts", 1005))
            .await),
        (5, 9000)
    );
    assert_eq!(
        at(c.call(ApiKey::ListOffsets, 7, &list_offsets("ts", 9005))
            .await),
        (-1, -1)
    );
    assert_eq!(
        at(c.call(ApiKey::ListOffsets, 7, &list_offsets("ts", -3))
            .await),
        (9, 9004)
    );
    assert_eq!(
        at(c.call(ApiKey::ListOffsets, 7, &list_offsets("ts", -1))
            .await)
        .0,
        15
    );
    assert_eq!(
        at(c.call(ApiKey::ListOffsets, 1, &list_offsets("ts", -2))
            .await)
        .0,
        0
    );
}

#[tokio::test]
async fn configs_describe_and_incremental_alter_cluster_and_auto_create() {
    let server = TestServer::start().await;
    let mut c = Conn::open(&server).await;
    // Metadata auto-creates with the default partition count.
    let md: MetadataResponse = c
        .call(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default()
                .with_allow_auto_topic_creation(true)
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(name("auto")))])),
        )
        .await;
    assert_eq!(md.topics[0].error_code, 0);
    assert_eq!(md.topics[0].partitions.len(), 1);
    assert_eq!(md.brokers[0].port, server.kafka_addr.port() as i32);
    assert_eq!(md.brokers[0].host.as_str(), "127.0.0.1");
    let bad: MetadataResponse = c
        .call(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default()
                .with_allow_auto_topic_creation(false)
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(name("nope")))])),
        )
        .await;
    assert_eq!(bad.topics[0].error_code, 3);

    let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("auto"))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(StrBytes::from_static_str("retention.ms"))
                    .with_config_operation(0)
                    .with_value(Some(StrBytes::from_static_str("86400000"))),
            ]),
    ]);
    let resp: IncrementalAlterConfigsResponse =
        c.call(ApiKey::IncrementalAlterConfigs, 1, &alter).await;
    assert_eq!(resp.responses[0].error_code, 0);
    let describe = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("auto"))
            .with_configuration_keys(None),
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str("1"))
            .with_configuration_keys(None),
    ]);
    let resp: DescribeConfigsResponse = c.call(ApiKey::DescribeConfigs, 4, &describe).await;
    let value = |r: &describe_configs_response::DescribeConfigsResult, n: &str| {
        r.configs
            .iter()
            .find(|c| c.name.as_str() == n)
            .and_then(|c| c.value.as_ref().map(|v| v.as_str().to_string()))
    };
    assert_eq!(
        value(&resp.results[0], "retention.ms").as_deref(),
        Some("86400000")
    );
    assert_eq!(
        value(&resp.results[1], "num.partitions").as_deref(),
        Some("1")
    );

    let cluster: DescribeClusterResponse = c
        .call(
            ApiKey::DescribeCluster,
            1,
            &DescribeClusterRequest::default(),
        )
        .await;
    assert_eq!(cluster.brokers.len(), 1);
    assert_eq!(
        cluster.cluster_id.as_str(),
        md.cluster_id.unwrap().as_str(),
        "one stable cluster id"
    );
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn gid(text: &str) -> GroupId {
    GroupId(s(text))
}

/// A `ConsumerProtocolSubscription` v0 to `topics`, as Java clients and librdkafka send it.
fn subscription(topics: &[&str]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(topics.len() as i32);
    for t in topics {
        b.put_i16(t.len() as i16);
        b.put_slice(t.as_bytes());
    }
    b.put_i32(-1); // no user data
    b.freeze()
}

/// Joins `group` alone (through MEMBER_ID_REQUIRED from v4); returns (member id, generation).
async fn join_alone(conn: &mut Conn, version: i16, group: &str, topic: &str) -> (String, i32) {
    let req = |member: &str| {
        JoinGroupRequest::default()
            .with_group_id(gid(group))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(if version >= 1 { 10_000 } else { -1 })
            .with_member_id(s(member))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
            )
            .with_name(s("range"))
            .with_metadata(subscription(&[topic]))])
    };
    let mut member = String::new();
    if version >= 4 {
        let first: JoinGroupResponse = conn.call(ApiKey::JoinGroup, version, &req("")).await;
        assert_eq!(first.error_code, 79, "v{version}: MEMBER_ID_REQUIRED");
        member = first.member_id.to_string();
        assert!(member.starts_with("wire-test-"), "{member}");
    }
    let joined: JoinGroupResponse = conn.call(ApiKey::JoinGroup, version, &req(&member)).await;
    assert_eq!(joined.error_code, 0, "JoinGroup v{version}");
    if version < 4 {
        member = joined.member_id.to_string();
    }
    assert_eq!(joined.member_id.as_str(), member);
    assert_eq!(joined.leader.as_str(), member, "alone, it leads");
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(joined.members.len(), 1);
    assert_eq!(joined.members[0].metadata, subscription(&[topic]));
    if version >= 7 {
        assert_eq!(joined.protocol_type.as_deref(), Some("consumer"));
    }
    (member, joined.generation_id)
}

fn offset_fetch(group: &str, topic: Option<(&str, Vec<i32>)>) -> OffsetFetchRequest {
    OffsetFetchRequest::default()
        .with_group_id(gid(group))
        .with_topics(topic.map(|(t, partitions)| {
            vec![offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(name(t))
                .with_partition_indexes(partitions)]
        }))
}

fn offset_commit(
    group: &str,
    member: &str,
    generation: i32,
    topic: &str,
    offsets: &[(i32, i64)],
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_retention_time_ms(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(name(topic))
                .with_partitions(
                    offsets
                        .iter()
                        .map(|&(p, o)| {
                            offset_commit_request::OffsetCommitRequestPartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(o)
                                .with_committed_leader_epoch(7)
                                .with_committed_metadata(Some(s(&format!("meta {p}"))))
                        })
                        .collect(),
                ),
        ])
}

/// Every advertised version of every group API, one member's whole life per JoinGroup version:
/// join, sync, heartbeat, commit (metadata and leader epoch kept), fetch (unknown partition
/// -1), describe, list, leave, delete.
#[tokio::test]
async fn group_apis_answer_at_every_advertised_version() {
    let server = TestServer::start().await;
    let mut conn = Conn::open(&server).await;
    create(&mut conn, "wire", 2, &[]).await;
    for join_v in 0..=9i16 {
        let group = format!("wire-group-v{join_v}");
        let (member, generation) = join_alone(&mut conn, join_v, &group, "wire").await;

        let sync_v = join_v % 6;
        let sync = SyncGroupRequest::default()
            .with_group_id(gid(&group))
            .with_generation_id(generation)
            .with_member_id(s(&member))
            .with_protocol_type((sync_v >= 5).then(|| s("consumer")))
            .with_protocol_name((sync_v >= 5).then(|| s("range")))
            .with_assignments(vec![
                sync_group_request::SyncGroupRequestAssignment::default()
                    .with_member_id(s(&member))
                    .with_assignment(Bytes::from_static(b"assigned")),
            ]);
        let synced: SyncGroupResponse = conn.call(ApiKey::SyncGroup, sync_v, &sync).await;
        assert_eq!(synced.error_code, 0, "SyncGroup v{sync_v}");
        assert_eq!(&synced.assignment[..], b"assigned");

        let hb_v = join_v % 5;
        let hb = HeartbeatRequest::default()
            .with_group_id(gid(&group))
            .with_generation_id(generation)
            .with_member_id(s(&member));
        let beat: HeartbeatResponse = conn.call(ApiKey::Heartbeat, hb_v, &hb).await;
        assert_eq!(beat.error_code, 0, "Heartbeat v{hb_v}");
        let stale = hb.clone().with_generation_id(generation + 1);
        let beat: HeartbeatResponse = conn.call(ApiKey::Heartbeat, hb_v, &stale).await;
        assert_eq!(beat.error_code, 22, "ILLEGAL_GENERATION");
        let stranger = hb.clone().with_member_id(s("stranger"));
        let beat: HeartbeatResponse = conn.call(ApiKey::Heartbeat, hb_v, &stranger).await;
        assert_eq!(beat.error_code, 25, "UNKNOWN_MEMBER_ID");

        let commit_v = 2 + join_v % 8;
        let commit = offset_commit(&group, &member, generation, "wire", &[(0, 42), (9, 1)]);
        let committed: OffsetCommitResponse =
            conn.call(ApiKey::OffsetCommit, commit_v, &commit).await;
        let codes: Vec<i16> = committed.topics[0]
            .partitions
            .iter()
            .map(|p| p.error_code)
            .collect();
        assert_eq!(codes, [0, 3], "OffsetCommit v{commit_v}");
        let stale = offset_commit(&group, &member, generation + 5, "wire", &[(0, 1)]);
        let refused: OffsetCommitResponse = conn.call(ApiKey::OffsetCommit, commit_v, &stale).await;
        assert_eq!(refused.topics[0].partitions[0].error_code, 22);

        let fetch_v = 1 + join_v % 7;
        let fetched: OffsetFetchResponse = conn
            .call(
                ApiKey::OffsetFetch,
                fetch_v,
                &offset_fetch(&group, Some(("wire", vec![0, 1]))),
            )
            .await;
        let parts = &fetched.topics[0].partitions;
        assert_eq!(parts[0].committed_offset, 42, "OffsetFetch v{fetch_v}");
        assert_eq!(parts[0].metadata.as_deref(), Some("meta 0"));
        if fetch_v >= 5 {
            let epoch = if commit_v >= 6 { 7 } else { -1 };
            assert_eq!(parts[0].committed_leader_epoch, epoch);
        }
        assert_eq!(parts[1].committed_offset, -1, "no commit reads -1");
        assert_eq!(parts[1].error_code, 0);

        let describe_v = join_v % 6;
        let described: DescribeGroupsResponse = conn
            .call(
                ApiKey::DescribeGroups,
                describe_v,
                &DescribeGroupsRequest::default()
                    .with_groups(vec![gid(&group), gid("never-seen")])
                    .with_include_authorized_operations(describe_v >= 3),
            )
            .await;
        let g = &described.groups[0];
        assert_eq!((g.error_code, g.group_state.as_str()), (0, "Stable"));
        assert_eq!(g.protocol_type.as_str(), "consumer");
        assert_eq!(g.protocol_data.as_str(), "range");
        assert_eq!(g.members.len(), 1);
        assert_eq!(g.members[0].client_id.as_str(), "wire-test");
        assert_eq!(g.members[0].client_host.as_str(), "/127.0.0.1");
        assert_eq!(&g.members[0].member_assignment[..], b"assigned");
        assert_eq!(g.members[0].member_metadata, subscription(&["wire"]));
        assert_eq!(described.groups[1].group_state.as_str(), "Dead");

        let list_v = join_v % 5;
        let listed: ListGroupsResponse = conn
            .call(ApiKey::ListGroups, list_v, &ListGroupsRequest::default())
            .await;
        let mine = listed
            .groups
            .iter()
            .find(|l| l.group_id.as_str() == group)
            .expect("listed");
        assert_eq!(mine.protocol_type.as_str(), "consumer");
        if list_v >= 4 {
            assert_eq!(mine.group_state.as_str(), "Stable");
            let only_empty: ListGroupsResponse = conn
                .call(
                    ApiKey::ListGroups,
                    list_v,
                    &ListGroupsRequest::default().with_states_filter(vec![s("Empty")]),
                )
                .await;
            assert!(only_empty
                .groups
                .iter()
                .all(|l| l.group_id.as_str() != group));
        }

        let deleted: DeleteGroupsResponse = conn
            .call(
                ApiKey::DeleteGroups,
                join_v % 3,
                &DeleteGroupsRequest::default().with_groups_names(vec![gid(&group)]),
            )
            .await;
        assert_eq!(deleted.results[0].error_code, 68, "NON_EMPTY_GROUP");

        let leave_v = join_v % 6;
        let leave = if leave_v >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(gid(&group))
                .with_members(vec![
                    leave_group_request::MemberIdentity::default().with_member_id(s(&member)),
                    leave_group_request::MemberIdentity::default().with_member_id(s("stranger")),
                ])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(gid(&group))
                .with_member_id(s(&member))
        };
        let left: LeaveGroupResponse = conn.call(ApiKey::LeaveGroup, leave_v, &leave).await;
        assert_eq!(left.error_code, 0, "LeaveGroup v{leave_v}");
        if leave_v >= 3 {
            let codes: Vec<i16> = left.members.iter().map(|m| m.error_code).collect();
            assert_eq!(codes, [0, 25]);
        }

        let deleted: DeleteGroupsResponse = conn
            .call(
                ApiKey::DeleteGroups,
                join_v % 3,
                &DeleteGroupsRequest::default()
                    .with_groups_names(vec![gid(&group), gid("never-seen")]),
            )
            .await;
        let codes: Vec<i16> = deleted.results.iter().map(|r| r.error_code).collect();
        assert_eq!(codes, [0, 69], "deleted, GROUP_ID_NOT_FOUND");
        let fetched: OffsetFetchResponse = conn
            .call(
                ApiKey::OffsetFetch,
                fetch_v,
                &offset_fetch(&group, Some(("wire", vec![0]))),
            )
            .await;
        assert_eq!(fetched.topics[0].partitions[0].committed_offset, -1);
    }
}

/// OffsetFetch for every partition, commits from outside group management, OffsetDelete
/// refusing a topic the group's members subscribe to.
#[tokio::test]
async fn offsets_are_fetched_whole_and_deleted_only_when_not_subscribed() {
    let server = TestServer::start().await;
    let mut conn = Conn::open(&server).await;
    create(&mut conn, "subscribed", 2, &[]).await;
    create(&mut conn, "other", 1, &[]).await;
    // An assign()-style consumer commits with generation -1 and no member id.
    for (topic, offsets) in [
        ("subscribed", vec![(0, 5), (1, 6)]),
        ("other", vec![(0, 9)]),
    ] {
        let commit = offset_commit("g", "", -1, topic, &offsets);
        let resp: OffsetCommitResponse = conn.call(ApiKey::OffsetCommit, 8, &commit).await;
        assert!(resp.topics[0].partitions.iter().all(|p| p.error_code == 0));
    }
    let all: OffsetFetchResponse = conn
        .call(ApiKey::OffsetFetch, 7, &offset_fetch("g", None))
        .await;
    let mut got: Vec<(String, i32, i64)> = all
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index, p.committed_offset))
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("other".to_string(), 0, 9),
            ("subscribed".to_string(), 0, 5),
            ("subscribed".to_string(), 1, 6)
        ]
    );
    let listed: ListGroupsResponse = conn
        .call(ApiKey::ListGroups, 4, &ListGroupsRequest::default())
        .await;
    assert!(listed
        .groups
        .iter()
        .any(|l| l.group_id.as_str() == "g" && l.group_state.as_str() == "Empty"));

    let (member, _) = join_alone(&mut conn, 9, "g", "subscribed").await;
    let outside = offset_commit("g", "", -1, "other", &[(0, 10)]);
    let resp: OffsetCommitResponse = conn.call(ApiKey::OffsetCommit, 8, &outside).await;
    assert_eq!(
        resp.topics[0].partitions[0].error_code, 25,
        "no outside commits while the group has members"
    );
    let offset_delete = |topic: &str| {
        OffsetDeleteRequest::default()
            .with_group_id(gid("g"))
            .with_topics(vec![
                offset_delete_request::OffsetDeleteRequestTopic::default()
                    .with_name(name(topic))
                    .with_partitions(vec![
                        offset_delete_request::OffsetDeleteRequestPartition::default()
                            .with_partition_index(0),
                    ]),
            ])
    };
    let resp: OffsetDeleteResponse = conn
        .call(ApiKey::OffsetDelete, 0, &offset_delete("subscribed"))
        .await;
    assert_eq!(resp.error_code, 0);
    assert_eq!(
        resp.topics[0].partitions[0].error_code, 86,
        "GROUP_SUBSCRIBED_TO_TOPIC"
    );
    let resp: OffsetDeleteResponse = conn
        .call(ApiKey::OffsetDelete, 0, &offset_delete("other"))
        .await;
    assert_eq!(resp.topics[0].partitions[0].error_code, 0);
    let after: OffsetFetchResponse = conn
        .call(ApiKey::OffsetFetch, 7, &offset_fetch("g", None))
        .await;
    let topics: Vec<&str> = after.topics.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(topics, ["subscribed"]);

    let leave = LeaveGroupRequest::default()
        .with_group_id(gid("g"))
        .with_member_id(s(&member));
    let _: LeaveGroupResponse = conn.call(ApiKey::LeaveGroup, 2, &leave).await;
    let resp: OffsetDeleteResponse = conn
        .call(ApiKey::OffsetDelete, 0, &offset_delete("subscribed"))
        .await;
    assert_eq!(
        resp.topics[0].partitions[0].error_code, 0,
        "empty group now"
    );
    let resp: OffsetDeleteResponse = conn
        .call(
            ApiKey::OffsetDelete,
            0,
            &offset_delete("other").with_group_id(gid("nobody")),
        )
        .await;
    assert_eq!(resp.error_code, 69, "GROUP_ID_NOT_FOUND");
}
