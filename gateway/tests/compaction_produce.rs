//! Records without a key are refused by a compacted topic (`cleanup.policy` with `compact`), on
//! both doors of a running server, as Kafka refuses them: the Kafka door answers the partition
//! INVALID_RECORD (87) with a record error per keyless record (Produce v8+), compressed batches
//! included; the native door refuses the send with Iggy's InvalidHeaderKey (4018: the
//! `kafka.key` user header, a native message's key, is missing). Nothing refused is stored, and
//! topics that are not compacted take keyless records as before. A native client's tombstone
//! (the `kafka.tombstone` header with a non-empty payload, as Iggy requires one) is stored and
//! read by Kafka clients as a null value.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wharf_gateway::config::{Overrides, ServerConfig};
use wharf_log_store::{CleanupPolicy, Ident, LogStore, StoreConfig, TopicSettings};
use wharf_protocol::codes::{LOGIN_USER, SEND_MESSAGES};
use wharf_protocol::framing::encode_request;
use wharf_protocol::message::{encode_message, SendMessages};
use wharf_protocol::requests::LoginUser;
use wharf_protocol::{Command, Identifier, Partitioning};

const INVALID_RECORD: i16 = ResponseError::InvalidRecord.code();
/// Iggy's InvalidHeaderKey.
const INVALID_HEADER_KEY: u32 = 4018;
/// Bound on every exchange with the server.
const WAIT: Duration = Duration::from_secs(30);

/// A server whose default stream holds `compacted` (compact only) and `plain` (delete).
async fn server(dir: &std::path::Path) -> wharf_gateway::Running {
    {
        let (store, _) = LogStore::open(dir, StoreConfig::default()).unwrap();
        store.create_stream("default").unwrap();
        let compact = TopicSettings {
            cleanup_policy: CleanupPolicy {
                delete: false,
                compact: true,
            },
            ..TopicSettings::default()
        };
        store
            .create_topic(Ident::Name("default"), "compacted", 1, compact)
            .unwrap();
        store
            .create_topic(Ident::Name("default"), "plain", 1, TopicSettings::default())
            .unwrap();
        store.close().unwrap();
    }
    let overrides = Overrides {
        data_dir: Some(dir.to_path_buf()),
        native_addr: Some("127.0.0.1:0".into()),
        kafka_addr: Some("127.0.0.1:0".into()),
        ..Overrides::default()
    };
    let config = ServerConfig::load_from(&overrides, &[]).unwrap();
    wharf_gateway::start(config).await.unwrap()
}

/// One Kafka request and its answer on `s`.
async fn kafka_call<Req, Resp>(s: &mut TcpStream, key: ApiKey, v: i16, req: &Req) -> Resp
where
    Req: Encodable + HeaderVersion,
    Resp: Decodable + HeaderVersion,
{
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(v)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("compaction-test")))
        .encode(&mut buf, Req::header_version(v))
        .unwrap();
    req.encode(&mut buf, v).unwrap();
    let exchange = async {
        s.write_all(&(buf.len() as i32).to_be_bytes())
            .await
            .unwrap();
        s.write_all(&buf).await.unwrap();
        let mut size = [0u8; 4];
        s.read_exact(&mut size).await.unwrap();
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        s.read_exact(&mut body).await.unwrap();
        body
    };
    let mut body = Bytes::from(
        tokio::time::timeout(WAIT, exchange)
            .await
            .expect("an answer"),
    );
    ResponseHeader::decode(&mut body, Resp::header_version(v)).unwrap();
    Resp::decode(&mut body, v).unwrap()
}

/// A batch of records with these keys, encoded by the `kafka-protocol` crate.
fn batch(keys: &[Option<&str>], compression: Compression) -> Bytes {
    let records: Vec<Record> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // Offsets and sequences in step: the crate puts such records in one batch.
            sequence: i as i32,
            timestamp: 1_700_000_000_000,
            key: k.map(|k| Bytes::from(k.to_string())),
            value: Some(Bytes::from_static(b"value")),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf.freeze()
}

async fn produce(
    s: &mut TcpStream,
    v: i16,
    topic: &str,
    records: Bytes,
) -> produce_response::PartitionProduceResponse {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let mut r: ProduceResponse = kafka_call(s, ApiKey::Produce, v, &req).await;
    r.responses.remove(0).partition_responses.remove(0)
}

/// The partition's latest offset (its high watermark), by ListOffsets.
async fn latest(s: &mut TcpStream, topic: &str) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
    let r: ListOffsetsResponse = kafka_call(s, ApiKey::ListOffsets, 1, &req).await;
    r.topics[0].partitions[0].offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_produce_of_keyless_records_to_a_compacted_topic_is_invalid_record() {
    let dir = tempfile::tempdir().unwrap();
    let running = server(dir.path()).await;
    let mut s = TcpStream::connect(running.kafka_addr).await.unwrap();

    let mixed = [Some("a"), None, Some("b"), None];
    for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let p = produce(&mut s, 9, "compacted", batch(&mixed, compression)).await;
        assert_eq!(p.error_code, INVALID_RECORD, "{compression:?}");
        assert_eq!(p.base_offset, -1);
        let errors: Vec<(i32, String)> = p
            .record_errors
            .iter()
            .map(|e| {
                (
                    e.batch_index,
                    e.batch_index_error_message
                        .as_deref()
                        .unwrap_or("")
                        .to_string(),
                )
            })
            .collect();
        let each = "Compacted topic cannot accept message without key in topic partition \
                    compacted-0."
            .to_string();
        assert_eq!(errors, [(1, each.clone()), (3, each)], "{compression:?}");
        let message = p.error_message.as_deref().unwrap_or("").to_string();
        assert!(
            message.starts_with("One or more records have been rejected due to 2 record errors"),
            "{message}"
        );
    }
    // Before v8 there are no record errors to list: the code alone.
    let p = produce(&mut s, 5, "compacted", batch(&[None], Compression::None)).await;
    assert_eq!(p.error_code, INVALID_RECORD);
    assert_eq!(
        latest(&mut s, "compacted").await,
        0,
        "nothing refused was stored"
    );

    let p = produce(
        &mut s,
        9,
        "compacted",
        batch(&[Some("a"), Some("")], Compression::Gzip),
    )
    .await;
    assert_eq!(
        (p.error_code, p.base_offset),
        (0, 0),
        "keyed records (an empty key is one)"
    );
    let p = produce(&mut s, 9, "plain", batch(&[None, None], Compression::None)).await;
    assert_eq!(
        (p.error_code, p.base_offset),
        (0, 0),
        "a topic that is not compacted"
    );
    assert_eq!(latest(&mut s, "compacted").await, 2);
    running.shutdown().await.unwrap();
}

/// One native request and its status.
async fn native_call(s: &mut TcpStream, code: u32, payload: &[u8]) -> u32 {
    let mut frame = BytesMut::new();
    encode_request(code, payload, &mut frame);
    let exchange = async {
        s.write_all(&frame).await.unwrap();
        let mut head = [0u8; 8];
        s.read_exact(&mut head).await.unwrap();
        let mut head = &head[..];
        let status = head.get_u32_le();
        let len = head.get_u32_le() as usize;
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).await.unwrap();
        status
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .expect("an answer")
}

/// A native message, with a `kafka.key` header when `key` is given.
fn message(key: Option<&[u8]>, out: &mut BytesMut) {
    let mut headers = Vec::new();
    if let Some(k) = key {
        for (kind, v) in [(2u8, &b"kafka.key"[..]), (1, k)] {
            headers.put_u8(kind);
            headers.put_u32_le(v.len() as u32);
            headers.put_slice(v);
        }
    }
    encode_message(0, 0, b"payload", &headers, out);
}

fn send(topic: &str, keys: &[Option<&[u8]>]) -> BytesMut {
    let mut messages = BytesMut::new();
    for k in keys {
        message(*k, &mut messages);
    }
    let mut payload = BytesMut::new();
    SendMessages::encode(
        &Identifier::Name("default".into()),
        &Identifier::Name(topic.into()),
        &Partitioning::PartitionId(0),
        &messages,
        &mut payload,
    );
    payload
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_send_of_keyless_messages_to_a_compacted_topic_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let running = server(dir.path()).await;
    let mut s = TcpStream::connect(running.native_addr).await.unwrap();
    let mut login = BytesMut::new();
    LoginUser {
        username: "iggy".into(),
        password: "iggy".into(),
        version: None,
        context: None,
    }
    .encode(&mut login);
    assert_eq!(native_call(&mut s, LOGIN_USER, &login).await, 0);

    let refused = send("compacted", &[Some(b"a"), None]);
    assert_eq!(
        native_call(&mut s, SEND_MESSAGES, &refused).await,
        INVALID_HEADER_KEY
    );
    let keyed = send("compacted", &[Some(b"a"), Some(b"b")]);
    assert_eq!(native_call(&mut s, SEND_MESSAGES, &keyed).await, 0);
    let plain = send("plain", &[None]);
    assert_eq!(native_call(&mut s, SEND_MESSAGES, &plain).await, 0);

    let mut k = TcpStream::connect(running.kafka_addr).await.unwrap();
    assert_eq!(
        latest(&mut k, "compacted").await,
        2,
        "only the keyed send was stored"
    );
    running.shutdown().await.unwrap();
}

/// Every record of partition 0 of `topic` from offset 0, by one Kafka Fetch (v4).
async fn fetch_all(s: &mut TcpStream, topic: &str) -> Vec<Record> {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_isolation_level(1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let r: FetchResponse = kafka_call(s, ApiKey::Fetch, 4, &req).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let mut records = p.records.clone().unwrap_or_default();
    RecordBatchDecoder::decode_all(&mut records)
        .unwrap()
        .into_iter()
        .flat_map(|set| set.records)
        .collect()
}

/// A native client cannot send an empty payload (Iggy and its SDK refuse one), so its tombstone
/// is the `kafka.tombstone` header (Bool true) on any payload: sent with a one-byte payload to a
/// compacted topic, it is stored, and a Kafka fetch sees the key with a null value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_tombstone_with_a_payload_reads_as_a_null_value() {
    let dir = tempfile::tempdir().unwrap();
    let running = server(dir.path()).await;
    let mut s = TcpStream::connect(running.native_addr).await.unwrap();
    let mut login = BytesMut::new();
    LoginUser {
        username: "iggy".into(),
        password: "iggy".into(),
        version: None,
        context: None,
    }
    .encode(&mut login);
    assert_eq!(native_call(&mut s, LOGIN_USER, &login).await, 0);

    let mut messages = BytesMut::new();
    message(Some(b"k"), &mut messages);
    let mut headers = Vec::new();
    for (kind, v) in [
        (2u8, &b"kafka.key"[..]),
        (1, b"k"),
        (2, b"kafka.tombstone"),
        (3, &[1]),
    ] {
        headers.put_u8(kind);
        headers.put_u32_le(v.len() as u32);
        headers.put_slice(v);
    }
    encode_message(0, 0, b"x", &headers, &mut messages);
    let mut payload = BytesMut::new();
    SendMessages::encode(
        &Identifier::Name("default".into()),
        &Identifier::Name("compacted".into()),
        &Partitioning::PartitionId(0),
        &messages,
        &mut payload,
    );
    assert_eq!(native_call(&mut s, SEND_MESSAGES, &payload).await, 0);

    let mut k = TcpStream::connect(running.kafka_addr).await.unwrap();
    let got: Vec<(i64, Option<Bytes>, Option<Bytes>)> = fetch_all(&mut k, "compacted")
        .await
        .into_iter()
        .map(|r| (r.offset, r.key, r.value))
        .collect();
    assert_eq!(
        got,
        [
            (0, Some(Bytes::from("k")), Some(Bytes::from("payload"))),
            (1, Some(Bytes::from("k")), None),
        ],
        "the tombstone's payload is dropped: a null value"
    );
    running.shutdown().await.unwrap();
}

/// `encode_sparse_batch`'s records at offset deltas `deltas`, all keyed, compressed with zstd
/// (codec 4) when `zstd`, header fixed up (length, codec, CRC).
fn with_deltas(deltas: &[i32], zstd: bool) -> Bytes {
    use wharf_gateway::broker::kafka_batch::{self, Codec, NewRecord, HEADER_LEN};
    let r = NewRecord {
        timestamp_ms: 1_700_000_000_000,
        key: Some(b"k"),
        value: Some(b"v"),
        headers: Vec::new(),
    };
    let last = deltas.len() as i32 - 1;
    let plain = kafka_batch::encode_sparse_batch(0, last, deltas.iter().map(|&d| (d, &r)));
    if !zstd {
        return plain;
    }
    let body = kafka_batch::compress(Codec::Zstd, &plain[HEADER_LEN..], false).unwrap();
    let mut b = plain[..HEADER_LEN].to_vec();
    b.extend_from_slice(&body);
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    b[21..23].copy_from_slice(&4i16.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

/// Review 17 #3, on the wire: a keyed batch whose records' offset deltas do not run 0, 1, 2
/// is INVALID_RECORD (87), as Kafka's LogValidator answers, and nothing is stored: compressed
/// (checked where a compacted topic decompresses anyway) or not (checked on every topic).
/// Kafka semantics: DeleteRecords on a topic whose cleanup.policy lacks `delete` is
/// POLICY_VIOLATION (44), and the log start stays; on a `delete` topic it moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_offset_deltas_are_invalid_record_and_delete_records_needs_delete() {
    let dir = tempfile::tempdir().unwrap();
    let running = server(dir.path()).await;
    let mut s = TcpStream::connect(running.kafka_addr).await.unwrap();
    for (topic, zstd) in [("compacted", true), ("compacted", false), ("plain", false)] {
        let p = produce(&mut s, 9, topic, with_deltas(&[0, 0, 0], zstd)).await;
        assert_eq!(p.error_code, INVALID_RECORD, "{topic} zstd {zstd}");
        let message = p.error_message.as_deref().unwrap_or("").to_string();
        assert!(message.contains("offsetDelta 0, expected 1"), "{message}");
        assert_eq!(latest(&mut s, topic).await, 0, "{topic}: nothing stored");
    }
    for topic in ["compacted", "plain"] {
        let p = produce(&mut s, 9, topic, with_deltas(&[0, 1, 2], true)).await;
        assert_eq!(p.error_code, 0, "{topic}");
        assert_eq!(latest(&mut s, topic).await, 3);
    }
    let delete = |topic: &str| {
        DeleteRecordsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.into())))
                .with_partitions(vec![
                    delete_records_request::DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(2),
                ])])
    };
    for (topic, code, low) in [
        ("compacted", ResponseError::PolicyViolation.code(), -1),
        ("plain", 0, 2),
    ] {
        let r: DeleteRecordsResponse =
            kafka_call(&mut s, ApiKey::DeleteRecords, 2, &delete(topic)).await;
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.error_code, p.low_watermark), (code, low), "{topic}");
    }
}
