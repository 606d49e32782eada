//! The broker's rules as real clients meet them (issue 14, items 6, 7 and 9), on both doors:
//!
//! - A full disk is KAFKA_STORAGE_ERROR (56, retriable) to Kafka clients and Iggy's
//!   CannotWriteToFile (10006) to native ones, and no answer shows a server path; librdkafka
//!   retries through a transient full disk and delivers once it has room again.
//! - Partitions are bounded per topic and in total, checked before anything is created.
//! - New stream and topic names follow Kafka's rule; names made before it keep working natively.
//!
//! Faults come from the store's seam (`store.disk` with a hook), not from a real full disk.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use compat_tests::{iggy_root_client, within, KafkaWire, TestServer, WAIT};
use iggy::prelude::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::producer::{FutureProducer, FutureRecord};
use wharf_gateway::broker::{Disk, FileHook, FileOp};

const KAFKA_STORAGE_ERROR: i16 = 56;
const INVALID_PARTITIONS: i16 = 37;
const POLICY_VIOLATION: i16 = 44;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// Iggy's CannotWriteToFile: what Iggy answers when a segment write fails.
const CANNOT_WRITE_TO_FILE: u32 = 10006;
/// Iggy's TooManyPartitions.
const TOO_MANY_PARTITIONS: u32 = 2015;
const INVALID_STREAM_NAME: u32 = 1013;
const INVALID_TOPIC_NAME: u32 = 2014;
/// ENOSPC on Linux.
const ENOSPC: i32 = 28;

/// A disk that fails writes of segment logs with ENOSPC: while `full`, and for the next
/// `writes_to_fail` writes. Counts the writes it failed.
#[derive(Debug, Default)]
struct FullDisk {
    full: AtomicBool,
    writes_to_fail: AtomicUsize,
    failed: AtomicUsize,
}

impl FileHook for FullDisk {
    fn before(&self, op: FileOp, path: &Path) -> std::io::Result<()> {
        if op != FileOp::Write || path.extension().is_none_or(|e| e != "log") {
            return Ok(());
        }
        let fail = self.full.load(Ordering::SeqCst)
            || self
                .writes_to_fail
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if fail {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Err(std::io::Error::from_raw_os_error(ENOSPC));
        }
        Ok(())
    }
}

async fn server_with_disk(disk: &Arc<FullDisk>) -> TestServer {
    let hook = Arc::clone(disk) as Arc<dyn FileHook>;
    TestServer::start_with(|c| c.store.disk = Disk::with_hook(hook)).await
}

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

    async fn create(&mut self, topic: &str, partitions: i32) -> (i16, String) {
        let req = CreateTopicsRequest::default().with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(1),
        ]);
        let resp: CreateTopicsResponse = self.call(ApiKey::CreateTopics, 7, &req).await;
        let t = &resp.topics[0];
        (t.error_code, text(&t.error_message))
    }

    async fn add_partitions(
        &mut self,
        topic: &str,
        count: i32,
        validate_only: bool,
    ) -> (i16, String) {
        let req = CreatePartitionsRequest::default()
            .with_timeout_ms(10_000)
            .with_validate_only(validate_only)
            .with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(name(topic))
                    .with_count(count)
                    // Null: no manual assignment (an empty list is one, refused as in Kafka).
                    .with_assignments(None),
            ]);
        let resp: CreatePartitionsResponse = self.call(ApiKey::CreatePartitions, 3, &req).await;
        let r = &resp.results[0];
        (r.error_code, text(&r.error_message))
    }

    async fn produce(&mut self, topic: &str) -> produce_response::PartitionProduceResponse {
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch(3))),
                ])]);
        let resp: ProduceResponse = self.call(ApiKey::Produce, 9, &req).await;
        resp.responses[0].partition_responses[0].clone()
    }

    /// Metadata for `topics` (all topics when `None`), never creating any.
    async fn metadata(&mut self, topics: Option<&[&str]>) -> Vec<(String, i16, usize)> {
        let req = MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(topics.map(|list| {
                list.iter()
                    .map(|t| {
                        metadata_request::MetadataRequestTopic::default().with_name(Some(name(t)))
                    })
                    .collect()
            }));
        self.metadata_with(req).await
    }

    async fn metadata_with(&mut self, req: MetadataRequest) -> Vec<(String, i16, usize)> {
        let resp: MetadataResponse = self.call(ApiKey::Metadata, 12, &req).await;
        resp.topics
            .iter()
            .map(|t| {
                (
                    t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                    t.error_code,
                    t.partitions.len(),
                )
            })
            .collect()
    }
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn text(s: &Option<StrBytes>) -> String {
    s.as_ref().map(|m| m.to_string()).unwrap_or_default()
}

/// A record batch of `n` small records.
fn batch(n: usize) -> Bytes {
    compat_tests::record_batch((0..n).map(|i| (None, Some(Bytes::from(format!("v{i}"))))))
}

fn id(s: &str) -> Identifier {
    Identifier::named(s).unwrap()
}

fn messages(n: usize) -> Vec<IggyMessage> {
    (0..n)
        .map(|i| {
            IggyMessage::builder()
                .payload(format!("m{i}").into())
                .build()
                .unwrap()
        })
        .collect()
}

async fn native_topic(
    client: &IggyClient,
    stream: &str,
    topic: &str,
    partitions: u32,
) -> Result<(), IggyError> {
    within(
        "create topic",
        client.create_topic(
            &id(stream),
            topic,
            partitions,
            CompressionAlgorithm::None,
            None,
            IggyExpiry::NeverExpire,
            MaxTopicSize::ServerDefault,
        ),
    )
    .await
    .map(|_| ())
}

async fn native_send(client: &IggyClient, stream: &str, topic: &str) -> Result<(), IggyError> {
    let mut batch = messages(3);
    within(
        "send",
        client.send_messages(
            &id(stream),
            &id(topic),
            &Partitioning::balanced(),
            &mut batch,
        ),
    )
    .await
}

/// Every folder under `dir`, counted (partitions are folders).
fn folders(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| 1 + folders(&e.path()))
        .sum()
}

// ----- item 6: a full disk -----

/// Bound: a write that fails with ENOSPC answers 56 (Kafka) / 10006 (native), with no path
/// in the answer; once the disk has room, the same partition takes writes from offset 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_storage_error_on_both_doors_and_shows_no_path() {
    let disk = Arc::new(FullDisk::default());
    let server = server_with_disk(&disk).await;
    let mut conn = Conn::open(&server).await;
    assert_eq!(conn.create("full", 1).await.0, 0);
    let client = iggy_root_client(&server).await;
    within("create stream", client.create_stream("native"))
        .await
        .unwrap();
    native_topic(&client, "native", "t", 1).await.unwrap();

    disk.full.store(true, Ordering::SeqCst);
    let refused = conn.produce("full").await;
    assert_eq!(refused.error_code, KAFKA_STORAGE_ERROR, "{refused:?}");
    let message = text(&refused.error_message);
    assert!(message.contains("No space left on device"), "{message}");
    let data_dir = server.data_dir().to_string_lossy().to_string();
    for leak in [data_dir.as_str(), "/", ".log", "streams"] {
        assert!(!message.contains(leak), "{leak:?} in {message:?}");
    }
    let refused = native_send(&client, "native", "t")
        .await
        .expect_err("a send to a full disk fails");
    assert_eq!(refused.as_code(), CANNOT_WRITE_TO_FILE, "{refused}");
    assert!(disk.failed.load(Ordering::SeqCst) >= 2);

    disk.full.store(false, Ordering::SeqCst);
    let stored = conn.produce("full").await;
    assert_eq!(stored.error_code, 0, "{stored:?}");
    assert_eq!(
        stored.base_offset, 0,
        "the failed write left nothing behind"
    );
    native_send(&client, "native", "t").await.unwrap();
}

/// Bound: librdkafka retries KAFKA_STORAGE_ERROR; a record produced while the disk refuses the
/// next 3 writes is delivered once, at offset 0, after exactly those 3 failures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_retries_through_a_transient_full_disk() {
    let disk = Arc::new(FullDisk::default());
    let server = server_with_disk(&disk).await;
    server.create_kafka_topic("retried", 1).await;
    disk.writes_to_fail.store(3, Ordering::SeqCst);
    let producer: FutureProducer = server
        .kafka_config()
        .set("retry.backoff.ms", "50")
        .create()
        .unwrap();
    let delivered = within(
        "delivery",
        producer.send(
            FutureRecord::<(), _>::to("retried").payload("r"),
            Duration::from_secs(30),
        ),
    )
    .await;
    let (partition, offset) = match delivered {
        Ok(d) => (d.partition, d.offset),
        Err((e, _)) => panic!("not delivered through a transient full disk: {e}"),
    };
    assert_eq!((partition, offset), (0, 0));
    assert_eq!(
        disk.failed.load(Ordering::SeqCst),
        3,
        "three writes met the full disk"
    );
    let consumer: BaseConsumer = server.kafka_config().create().unwrap();
    let (low, high) = consumer.fetch_watermarks("retried", 0, WAIT).unwrap();
    assert_eq!((low, high), (0, 1), "stored exactly once");
}

// ----- item 7: partition limits -----

/// Bound: `server.max_partitions_per_topic` (default 1000): a CreateTopics for 10,000
/// partitions is INVALID_PARTITIONS with a message naming the limit, and makes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_for_10000_partitions_is_refused_before_anything_is_made() {
    let server = TestServer::start().await;
    let before = folders(server.data_dir());
    let mut conn = Conn::open(&server).await;
    let (code, message) = conn.create("huge", 10_000).await;
    assert_eq!(code, INVALID_PARTITIONS, "{message}");
    assert!(
        message.contains("1000") && message.contains("max_partitions_per_topic"),
        "{message}"
    );
    assert_eq!(
        conn.metadata(Some(&["huge"])).await,
        [("huge".to_string(), UNKNOWN_TOPIC_OR_PARTITION, 0)]
    );
    assert_eq!(folders(server.data_dir()), before, "no folder was made");
    assert_eq!(
        conn.create("huge", 1000).await.0,
        0,
        "the limit itself is allowed"
    );
}

/// Bound: 4 partitions per topic and 6 in all, on both doors and for auto-created topics:
/// over the per-topic limit is INVALID_PARTITIONS / TooManyPartitions, over the total
/// POLICY_VIOLATION / TooManyPartitions, and the server keeps exactly 6 partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_limits_hold_per_topic_and_in_total_on_both_doors() {
    let server = TestServer::start_with(|c| {
        c.max_partitions_per_topic = 4;
        c.max_partitions = 6;
        c.kafka.auto_create_topics = true;
        c.kafka.default_partitions = 1;
    })
    .await;
    let mut conn = Conn::open(&server).await;
    assert_eq!(conn.create("a", 4).await.0, 0);
    let (code, message) = conn.create("b", 5).await;
    assert_eq!(code, INVALID_PARTITIONS, "{message}");
    let (code, message) = conn.create("b", 3).await;
    assert_eq!(code, POLICY_VIOLATION, "{message}");
    assert!(
        message.contains("max_partitions") && message.contains('6'),
        "{message}"
    );
    assert_eq!(conn.create("b", 2).await.0, 0, "6 in all is allowed");
    for validate_only in [true, false] {
        let (code, message) = conn.add_partitions("a", 5, validate_only).await;
        assert_eq!(code, INVALID_PARTITIONS, "{message}");
        let (code, message) = conn.add_partitions("b", 3, validate_only).await;
        assert_eq!(code, POLICY_VIOLATION, "{message}");
    }
    // Auto-creation is a create like any other.
    let auto = conn
        .metadata_with(
            MetadataRequest::default()
                .with_allow_auto_topic_creation(true)
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(name("auto")))])),
        )
        .await;
    assert_eq!(auto, [("auto".to_string(), POLICY_VIOLATION, 0)]);

    let client = iggy_root_client(&server).await;
    within("create stream", client.create_stream("n"))
        .await
        .unwrap();
    let refused = native_topic(&client, "n", "t", 1)
        .await
        .expect_err("a 7th partition");
    assert_eq!(refused.as_code(), TOO_MANY_PARTITIONS, "{refused}");
    let refused = within(
        "create partitions",
        client.create_partitions(&id("default"), &id("b"), 1),
    )
    .await
    .expect_err("a 7th partition");
    assert_eq!(refused.as_code(), TOO_MANY_PARTITIONS, "{refused}");

    let listed = conn.metadata(None).await;
    let total: usize = listed.iter().map(|(_, _, p)| p).sum();
    assert_eq!(total, 6, "{listed:?}");
}

// ----- item 9: names -----

/// Bound: new names follow Kafka's rule (1..=249 of [a-zA-Z0-9._-], stream names without '.',
/// `stream.topic` at most 249): the issue's names are refused with Iggy's invalid-name codes
/// and Kafka's INVALID_TOPIC_EXCEPTION; a name at the bound works from both doors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_names_follow_kafkas_rule_on_both_doors() {
    let server = TestServer::start().await;
    let client = iggy_root_client(&server).await;
    let long_255 = "x".repeat(255);
    let bad = [
        "..",
        "../../x",
        "a/b",
        "zero\u{200b}width",
        "p.q",
        long_255.as_str(),
    ];
    for name in bad {
        let refused = within("create stream", client.create_stream(name))
            .await
            .expect_err(name);
        assert_eq!(
            refused.as_code(),
            INVALID_STREAM_NAME,
            "{name:?}: {refused}"
        );
    }
    within("create stream", client.create_stream("orders"))
        .await
        .unwrap();
    for name in bad.iter().filter(|n| **n != "p.q") {
        let refused = native_topic(&client, "orders", name, 1)
            .await
            .expect_err(name);
        assert_eq!(refused.as_code(), INVALID_TOPIC_NAME, "{name:?}: {refused}");
    }
    native_topic(&client, "orders", "v1.eu", 1).await.unwrap();
    let refused = within("rename stream", client.update_stream(&id("orders"), "p.q"))
        .await
        .expect_err("p.q");
    assert_eq!(refused.as_code(), INVALID_STREAM_NAME, "{refused}");
    let refused = within(
        "rename topic",
        client.update_topic(
            &id("orders"),
            &id("v1.eu"),
            "a b",
            CompressionAlgorithm::None,
            None,
            IggyExpiry::NeverExpire,
            MaxTopicSize::ServerDefault,
        ),
    )
    .await
    .expect_err("a b");
    assert_eq!(refused.as_code(), INVALID_TOPIC_NAME, "{refused}");

    // At the bound: a 247-character stream and a 1-character topic are a 249-character Kafka
    // name; one more character is refused.
    let stream = "s".repeat(247);
    within("create long stream", client.create_stream(&stream))
        .await
        .unwrap();
    native_topic(&client, &stream, "t", 1).await.unwrap();
    let refused = native_topic(&client, &stream, "tt", 1)
        .await
        .expect_err("a 250-character Kafka name");
    assert_eq!(refused.as_code(), INVALID_TOPIC_NAME, "{refused}");

    let mut conn = Conn::open(&server).await;
    let kafka_name = format!("{stream}.t");
    assert_eq!(kafka_name.len(), 249);
    let mut listed: Vec<String> = conn.metadata(None).await.into_iter().map(|t| t.0).collect();
    listed.sort();
    assert_eq!(listed, ["orders.v1.eu".to_string(), kafka_name.clone()]);
    assert_eq!(conn.produce(&kafka_name).await.error_code, 0);
    assert_eq!(conn.produce("orders.v1.eu").await.error_code, 0);

    let (code, message) = conn.create("a/b", 1).await;
    assert_eq!(code, INVALID_TOPIC_EXCEPTION, "{message}");
    assert!(message.contains("may only hold"), "{message}");
}

/// Bound: names made before the rule (written straight into the data directory) still open,
/// and serve native sends and polls; Kafka clients are not shown them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_made_before_the_rule_keep_working_natively() {
    use wharf_log_store::{Ident, LogStore, StoreConfig};
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) = LogStore::open(dir.path(), StoreConfig::default()).unwrap();
        store.create_stream("p.q").unwrap();
        store
            .create_topic(Ident::Name("p.q"), "../../x", 1, Default::default())
            .unwrap();
        store.create_stream("zero\u{200b}width").unwrap();
        store
            .create_topic(Ident::Name("zero\u{200b}width"), "t", 1, Default::default())
            .unwrap();
        store.close().unwrap();
    }
    let server = TestServer::start_in(dir.path()).await;
    let client = iggy_root_client(&server).await;
    for (stream, topic) in [("p.q", "../../x"), ("zero\u{200b}width", "t")] {
        native_send(&client, stream, topic).await.unwrap();
        let polled = within(
            "poll",
            client.poll_messages(
                &id(stream),
                &id(topic),
                Some(0),
                &Consumer::new(id("c")),
                &PollingStrategy::offset(0),
                10,
                false,
            ),
        )
        .await
        .unwrap();
        assert_eq!(polled.messages.len(), 3, "{stream}/{topic}");
    }
    // A new topic in a stream named before the rule is still possible (its own name is checked).
    native_topic(&client, "p.q", "fine", 1).await.unwrap();
    let mut conn = Conn::open(&server).await;
    assert_eq!(
        conn.metadata(None).await,
        [],
        "no illegal Kafka names are listed"
    );
}
