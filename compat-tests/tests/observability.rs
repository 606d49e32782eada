//! Observability end to end (#19): real clients (librdkafka through the `rdkafka` crate, the
//! official `iggy` SDK) run a known workload against a server with its HTTP listener on; then
//! `GET /metrics` is scraped over a real socket and parsed WHOLE by the Prometheus project's own
//! Python parsers (`prometheus_client.parser` for the text format 0.0.4 and its strict
//! OpenMetrics parser, `compat-tests/programs/parse_metrics.py`; `scripts/test` installs them):
//! a parse failure fails the test. The counters, offsets, connections and consumer lag read
//! back from the parsed exposition are checked exactly against the workload.
//!
//! `[metrics] enable = false` is checked to count nothing on the hot path while offsets and lag
//! are still served. `/ready` is checked on a server process restarted on a data directory with
//! data after a SIGKILL and held before its store opens (`/ready` 503, `/health` 200,
//! `wharf_ready 0`): from the first 200 after the recovery on, every record written before the
//! kill is readable.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use compat_tests::{client_programs, test_config, within, KafkaWire, WAIT};
use iggy::prelude::{
    Client as _, CompressionAlgorithm, Consumer, ConsumerGroupClient as _,
    ConsumerOffsetClient as _, Identifier, IggyClient, IggyExpiry, IggyMessage, MaxTopicSize,
    MessageClient as _, Partitioning, PollingStrategy, StreamClient as _, TopicClient as _,
    UserClient as _,
};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wharf_gateway::config::ServerConfig;
use wharf_gateway::Running;

// ---------------------------------------------------------------------------------------------
// A server with its HTTP listener on.

/// A server started in this process with `[http] address = "127.0.0.1:0"`.
struct Server {
    running: Option<Running>,
    http: SocketAddr,
    kafka: SocketAddr,
    native: SocketAddr,
    _data: tempfile::TempDir,
}

impl Server {
    async fn start(tweak: impl FnOnce(&mut ServerConfig)) -> Server {
        let data = tempfile::tempdir().unwrap();
        let mut config = with_http(test_config(data.path()));
        tweak(&mut config);
        let running = within("the server starts", wharf_gateway::start(config))
            .await
            .expect("the server starts");
        Server {
            http: running
                .http_addr
                .expect("an HTTP listener, as [http] address asks"),
            kafka: running.kafka_addr,
            native: running.native_addr,
            running: Some(running),
            _data: data,
        }
    }

    fn kafka_config(&self) -> ClientConfig {
        kafka_config(self.kafka)
    }

    async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.unwrap();
        }
    }
}

/// `config` with the HTTP listener on an ephemeral loopback port.
fn with_http(mut config: ServerConfig) -> ServerConfig {
    config.http.address = Some("127.0.0.1:0".parse().unwrap());
    config
}

/// librdkafka settings for a Kafka listener (IPv4, a 30 s message timeout).
fn kafka_config(kafka: SocketAddr) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", kafka.to_string())
        .set("broker.address.family", "v4")
        .set("message.timeout.ms", "30000");
    c
}

async fn create_kafka_topic(kafka: SocketAddr, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = kafka_config(kafka).create().unwrap();
    let made = within(
        "create topic",
        admin.create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ),
    )
    .await
    .unwrap();
    assert!(made.iter().all(Result::is_ok), "{made:?}");
}

/// The official `iggy` client on `native`, logged in as root.
async fn iggy_client(native: SocketAddr) -> IggyClient {
    let client = IggyClient::builder()
        .with_tcp()
        .with_server_address(native.to_string())
        .with_no_delay()
        .build()
        .unwrap();
    within("connect", client.connect()).await.unwrap();
    within(
        "login",
        client.login_user(
            iggy::prelude::DEFAULT_ROOT_USERNAME,
            iggy::prelude::DEFAULT_ROOT_PASSWORD,
        ),
    )
    .await
    .unwrap();
    client
}

fn id(s: &str) -> Identifier {
    Identifier::named(s).unwrap()
}

// ---------------------------------------------------------------------------------------------
// HTTP by hand: one request per connection, the answer read by its Content-Length.

/// Most bytes of an answer head this client reads before giving up.
const MAX_HEAD: usize = 16 * 1024;

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("a UTF-8 body")
    }
}

/// `GET path` on `addr` (with `Accept: accept` when given), within [`WAIT`].
async fn http_get(addr: SocketAddr, path: &str, accept: Option<&str>) -> Answer {
    within(&format!("GET {path}"), async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the HTTP listener {addr}: {e}"));
        let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            assert!(
                buf.len() < MAX_HEAD,
                "no end of the answer head in {MAX_HEAD} bytes"
            );
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "the server closed before the answer head ended: {buf:?}"
            );
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8(buf[..head_end].to_vec()).expect("an ASCII head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(
            parts.next(),
            Some("HTTP/1.1"),
            "status line {status_line:?}"
        );
        let status: u16 = parts.next().unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap_or_else(|| panic!("header {l:?}"));
                (k.trim().to_string(), v.trim().to_string())
            })
            .collect();
        let mut body = buf[head_end + 4..].to_vec();
        let length = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse::<usize>().unwrap());
        match length {
            Some(len) => {
                while body.len() < len {
                    let mut chunk = vec![0u8; 64 * 1024];
                    let n = s.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "the body ended at {} of {len} bytes", body.len());
                    body.extend_from_slice(&chunk[..n]);
                }
                assert_eq!(body.len(), len, "more body than Content-Length");
            }
            // Without a length the body ends with the connection (it said `close`).
            None => {
                s.read_to_end(&mut body).await.unwrap();
            }
        }
        Answer {
            status,
            headers,
            body,
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// The exposition, as Prometheus's own parser reads it.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// The Prometheus text format 0.0.4 (`text/plain; version=0.0.4`).
    Text,
    /// OpenMetrics 1.0 (`application/openmetrics-text`).
    OpenMetrics,
}

#[derive(Debug)]
struct Family {
    name: String,
    kind: String,
    samples: Vec<Sample>,
}

#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// One scrape of `/metrics`, parsed by `prometheus_client`.
#[derive(Debug)]
struct Scrape {
    families: Vec<Family>,
}

/// Runs the Prometheus parser for `format` over `body`; fails the test if it rejects any of it.
async fn parse(body: &str, format: Format) -> Scrape {
    let program = client_programs::repo().join("compat-tests/programs/parse_metrics.py");
    let mut child = tokio::process::Command::new(client_programs::python())
        .arg(&program)
        .arg(match format {
            Format::Text => "text",
            Format::OpenMetrics => "openmetrics",
        })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let mut stdin = child.stdin.take().unwrap();
    let input = body.as_bytes().to_vec();
    let writer = tokio::spawn(async move {
        stdin.write_all(&input).await.unwrap();
    });
    let out = within("the Prometheus parser", child.wait_with_output())
        .await
        .unwrap();
    writer.await.unwrap();
    assert!(
        out.status.success(),
        "the Prometheus {format:?} parser rejected the exposition: {}\n--- exposition ---\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let families = json["families"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| Family {
            name: f["name"].as_str().unwrap().to_string(),
            kind: f["type"].as_str().unwrap().to_string(),
            samples: f["samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| Sample {
                    name: s["name"].as_str().unwrap().to_string(),
                    labels: s["labels"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                        .collect(),
                    value: s["value"].as_str().unwrap().parse().unwrap(),
                })
                .collect(),
        })
        .collect();
    Scrape { families }
}

impl Scrape {
    fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.families.iter().flat_map(|f| f.samples.iter())
    }

    /// The one sample named `name` whose labels are exactly `labels`; `None` if there is none.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let found: Vec<f64> = self
            .samples()
            .filter(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
            .collect();
        assert!(
            found.len() <= 1,
            "{name}{want:?} appears {} times",
            found.len()
        );
        found.first().copied()
    }

    /// Like [`Scrape::get`], failing the test (listing the samples of that name) if absent.
    /// The sum of `name`'s samples whose labels include `labels` (the error counters carry an
    /// `error` label beside `door` and `api`).
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or_else(|| {
            let seen: Vec<_> = self
                .samples()
                .filter(|s| s.name == name)
                .map(|s| (&s.labels, s.value))
                .collect();
            panic!("no sample {name} with labels {labels:?}; samples of that name: {seen:?}")
        })
    }

    fn family(&self, name: &str) -> &Family {
        self.families
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| {
                let names: Vec<_> = self.families.iter().map(|f| &f.name).collect();
                panic!("no metric family {name}; families: {names:?}")
            })
    }

    /// Checks that every family has a type the format defines: the text parser turns samples
    /// it cannot place under their `# TYPE` (a counter family named without `_total` in the
    /// 0.0.4 format, say) into an untyped family of their own, which Prometheus would store
    /// without the type.
    fn assert_all_typed(&self, format: Format) {
        let untyped: Vec<_> = self
            .families
            .iter()
            .filter(|f| f.kind == "unknown" || f.kind == "untyped")
            .map(|f| &f.name)
            .collect();
        assert!(
            untyped.is_empty(),
            "{format:?}: families without a type: {untyped:?}"
        );
    }
}

/// `GET /metrics` in `format`, with its content type checked, parsed whole.
async fn scrape_as(http: SocketAddr, format: Format) -> Scrape {
    let (accept, want_type) = match format {
        Format::Text => (None, "text/plain; version=0.0.4"),
        Format::OpenMetrics => (
            Some("application/openmetrics-text; version=1.0.0"),
            "application/openmetrics-text",
        ),
    };
    let answer = http_get(http, "/metrics", accept).await;
    assert_eq!(answer.status, 200, "/metrics: {}", answer.text());
    let content_type = answer.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with(want_type),
        "{format:?}: Content-Type {content_type:?}, want {want_type}"
    );
    let scrape = parse(&answer.text(), format).await;
    scrape.assert_all_typed(format);
    scrape
}

async fn scrape(http: SocketAddr) -> Scrape {
    scrape_as(http, Format::Text).await
}

/// Scrapes until `ok` holds (a connection closing is counted down by the server after the
/// client's close arrives), failing with `what` after [`WAIT`]. A bounded poll: the
/// connection gauges are plain atomics with nothing to wait on, and librdkafka closes its
/// sockets on threads of its own, so there is no in-process event to await instead.
async fn scrape_until(http: SocketAddr, what: &str, ok: impl Fn(&Scrape) -> bool) -> Scrape {
    within(what, async {
        loop {
            let s = scrape(http).await;
            if ok(&s) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// The workload.

/// The Kafka topic of the workload: two partitions in the Kafka default stream.
const KAFKA_TOPIC: &str = "obs-kafka";
const KAFKA_GROUP: &str = "obs-kafka-group";
/// Records per partition, each produced (and acknowledged) alone: one Produce request each.
const KAFKA_PER_PARTITION: usize = 10;
/// Every record's value is this long, with no key and no headers.
const KAFKA_VALUE_LEN: usize = 100;
/// What the Kafka group commits: the next offset to read, per partition.
const KAFKA_COMMITS: [(i32, i64); 2] = [(0, 7), (1, 10)];

/// The native stream and topic of the workload (one partition).
const NATIVE_STREAM: &str = "obs";
const NATIVE_TOPIC: &str = "events";
const NATIVE_GROUP: &str = "obs-native-group";
/// Messages per SendMessages, and how many sends.
const NATIVE_BATCH: usize = 10;
const NATIVE_SENDS: usize = 3;
const NATIVE_PAYLOAD_LEN: usize = 50;
/// A native message's bytes as counted in and out: Iggy's 64-byte message header and the payload
/// (no user headers).
const NATIVE_MESSAGE_LEN: usize = wharf_protocol::message::HEADER_LEN + NATIVE_PAYLOAD_LEN;
/// The last consumed offset the native group stores (Iggy's meaning: it reads 25 next).
const NATIVE_STORED: u64 = 24;

fn kafka_value(partition: i32, i: usize) -> Vec<u8> {
    let mut v = format!("p{partition} record {i:04} ").into_bytes();
    v.resize(KAFKA_VALUE_LEN, b'k');
    v
}

fn native_payload(i: usize) -> Bytes {
    let mut v = format!("native message {i:04} ").into_bytes();
    v.resize(NATIVE_PAYLOAD_LEN, b'n');
    Bytes::from(v)
}

/// librdkafka produces [`KAFKA_PER_PARTITION`] records to each partition, one acknowledged
/// request at a time; a group consumer reads them all and commits [`KAFKA_COMMITS`].
async fn kafka_workload(server: &Server) {
    create_kafka_topic(server.kafka, KAFKA_TOPIC, 2).await;
    let producer: FutureProducer = server
        .kafka_config()
        .set("linger.ms", "0")
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .create()
        .unwrap();
    for i in 0..KAFKA_PER_PARTITION {
        for partition in 0..2 {
            let value = kafka_value(partition, i);
            let record: FutureRecord<'_, (), _> = FutureRecord::to(KAFKA_TOPIC)
                .partition(partition)
                .payload(&value);
            let sent = within("delivery", producer.send(record, Duration::from_secs(30))).await;
            let delivery = sent.map_err(|(e, _)| e).unwrap();
            assert_eq!((delivery.partition, delivery.offset), (partition, i as i64));
        }
    }
    drop(producer);

    let consumer: StreamConsumer = server
        .kafka_config()
        .set("group.id", KAFKA_GROUP)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[KAFKA_TOPIC]).unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 * KAFKA_PER_PARTITION {
        let m = within("the group consumer receives", consumer.recv())
            .await
            .unwrap();
        assert_eq!(
            m.payload().unwrap(),
            kafka_value(m.partition(), m.offset() as usize).as_slice()
        );
        seen.push((m.partition(), m.offset()));
    }
    seen.sort_unstable();
    let want: Vec<(i32, i64)> = (0..2)
        .flat_map(|p| (0..KAFKA_PER_PARTITION as i64).map(move |o| (p, o)))
        .collect();
    assert_eq!(seen, want, "each record read once");
    let mut commits = TopicPartitionList::new();
    for (p, next) in KAFKA_COMMITS {
        commits
            .add_partition_offset(KAFKA_TOPIC, p, Offset::Offset(next))
            .unwrap();
    }
    consumer.commit(&commits, CommitMode::Sync).unwrap();
    // Leaves the group (LeaveGroup) and closes its connections.
    tokio::task::spawn_blocking(move || drop(consumer))
        .await
        .unwrap();
}

/// The iggy SDK sends [`NATIVE_SENDS`] batches of [`NATIVE_BATCH`] messages, a group member
/// polls them all in one poll (and an empty one after), then stores [`NATIVE_STORED`]; one poll
/// of a topic that does not exist is refused. Returns the client, still connected.
async fn native_workload(native: SocketAddr) -> IggyClient {
    let client = iggy_client(native).await;
    within("create stream", client.create_stream(NATIVE_STREAM))
        .await
        .unwrap();
    within(
        "create topic",
        client.create_topic(
            &id(NATIVE_STREAM),
            NATIVE_TOPIC,
            1,
            CompressionAlgorithm::None,
            None,
            IggyExpiry::NeverExpire,
            MaxTopicSize::ServerDefault,
        ),
    )
    .await
    .unwrap();
    for send in 0..NATIVE_SENDS {
        let mut messages: Vec<IggyMessage> = (0..NATIVE_BATCH)
            .map(|i| {
                IggyMessage::builder()
                    .payload(native_payload(send * NATIVE_BATCH + i))
                    .build()
                    .unwrap()
            })
            .collect();
        within(
            "send",
            client.send_messages(
                &id(NATIVE_STREAM),
                &id(NATIVE_TOPIC),
                &Partitioning::partition_id(0),
                &mut messages,
            ),
        )
        .await
        .unwrap();
    }
    within(
        "create consumer group",
        client.create_consumer_group(&id(NATIVE_STREAM), &id(NATIVE_TOPIC), NATIVE_GROUP),
    )
    .await
    .unwrap();
    within(
        "join consumer group",
        client.join_consumer_group(&id(NATIVE_STREAM), &id(NATIVE_TOPIC), &id(NATIVE_GROUP)),
    )
    .await
    .unwrap();
    let group = Consumer::group(id(NATIVE_GROUP));
    let total = (NATIVE_SENDS * NATIVE_BATCH) as u64;
    let polled = within(
        "poll",
        client.poll_messages(
            &id(NATIVE_STREAM),
            &id(NATIVE_TOPIC),
            None,
            &group,
            &PollingStrategy::offset(0),
            total as u32 + 10,
            false,
        ),
    )
    .await
    .unwrap();
    assert_eq!(polled.messages.len() as u64, total);
    for (i, m) in polled.messages.iter().enumerate() {
        assert_eq!(m.payload, native_payload(i));
    }
    let past_end = within(
        "poll past the end",
        client.poll_messages(
            &id(NATIVE_STREAM),
            &id(NATIVE_TOPIC),
            None,
            &group,
            &PollingStrategy::offset(total),
            10,
            false,
        ),
    )
    .await
    .unwrap();
    assert!(past_end.messages.is_empty());
    let refused = within(
        "poll a topic that does not exist",
        client.poll_messages(
            &id(NATIVE_STREAM),
            &id("no-such-topic"),
            Some(0),
            &Consumer::new(id("someone")),
            &PollingStrategy::offset(0),
            10,
            false,
        ),
    )
    .await;
    assert!(refused.is_err(), "a poll of a missing topic: {refused:?}");
    within(
        "store the group's offset",
        client.store_consumer_offset(
            &group,
            &id(NATIVE_STREAM),
            &id(NATIVE_TOPIC),
            Some(0),
            NATIVE_STORED,
        ),
    )
    .await
    .unwrap();
    client
}

/// What one Fetch by hand answered for a partition.
#[derive(Debug, PartialEq, Eq)]
struct Fetched {
    error_code: i16,
    /// Records in the answer, counted from the batch headers.
    records: u64,
    /// Bytes of the record batches in the answer.
    bytes: u64,
}

/// One Fetch by hand of `partition` of `topic` from offset 0.
async fn raw_fetch(kafka: &mut KafkaWire, topic: &str, partition: i32) -> Fetched {
    let request = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let answer: FetchResponse = kafka.call(ApiKey::Fetch, 12, &request).await;
    let p = &answer.responses[0].partitions[0];
    let records = p.records.clone().unwrap_or_default();
    Fetched {
        error_code: p.error_code,
        records: count_records(&records),
        bytes: records.len() as u64,
    }
}

/// Records in a run of Kafka record batches (v2: the count is the i32 at byte 57 of a batch).
fn count_records(batches: &Bytes) -> u64 {
    let mut n = 0;
    let mut at = 0;
    while at + 61 <= batches.len() {
        let len = i32::from_be_bytes(batches[at + 8..at + 12].try_into().unwrap()) as usize;
        n += u64::from(u32::from_be_bytes(
            batches[at + 57..at + 61].try_into().unwrap(),
        ));
        at += 12 + len;
    }
    n
}

/// Labels of the Kafka topic's series (the Kafka default stream is `default`).
fn kafka_topic() -> [(&'static str, &'static str); 2] {
    [("stream", "default"), ("topic", KAFKA_TOPIC)]
}

/// Labels of the native topic's series: its Kafka name is `stream.topic`.
fn native_topic() -> [(&'static str, &'static str); 2] {
    [("stream", NATIVE_STREAM), ("topic", "obs.events")]
}

fn with<'a>(base: &[(&'a str, &'a str)], more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    base.iter().chain(more).copied().collect()
}

/// After the workload from librdkafka and the iggy SDK, `/metrics` (parsed whole by
/// Prometheus's parsers, in both formats) says exactly what happened: messages and bytes in and
/// out per topic, requests per door and API (and their latency histograms' counts), errors,
/// partition offsets, the lag of the Kafka group and of the Iggy group from their committed
/// offsets, and the connections open now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_a_known_workload_from_librdkafka_and_the_iggy_sdk_are_exact() {
    let mut server = Server::start(|_| {}).await;

    // Before any traffic: valid, typed, the server up and ready, no connections.
    let before = scrape(server.http).await;
    assert_eq!(before.value("wharf_ready", &[]), 1.0);
    assert_eq!(before.value("wharf_metrics_enabled", &[]), 1.0);
    for door in ["native", "kafka"] {
        assert_eq!(before.value("wharf_connections", &[("door", door)]), 0.0);
    }

    kafka_workload(&server).await;
    let native_client = native_workload(server.native).await;

    // Every librdkafka connection is gone once the server has seen the closes.
    let s = scrape_until(server.http, "librdkafka's connections closed", |s| {
        s.get("wharf_connections", &[("door", "kafka")]) == Some(0.0)
    })
    .await;

    // Kafka topic: 20 records in (20 Produce requests), 20 out to the group consumer.
    let kafka_records = (2 * KAFKA_PER_PARTITION) as f64;
    let kt = kafka_topic();
    assert_eq!(s.value("wharf_topic_messages_in_total", &kt), kafka_records);
    assert_eq!(
        s.value("wharf_topic_messages_out_total", &kt),
        kafka_records
    );
    let produce = [("door", "kafka"), ("api", "Produce")];
    assert_eq!(s.value("wharf_requests_total", &produce), kafka_records);
    assert_eq!(
        s.value("wharf_request_duration_seconds_count", &produce),
        kafka_records
    );
    assert_eq!(s.sum("wharf_request_errors_total", &produce), 0.0);
    let fetch = [("door", "kafka"), ("api", "Fetch")];
    let fetches = s.value("wharf_requests_total", &fetch);
    assert!(fetches >= 1.0, "the group consumer fetched");

    // Native topic: 30 messages in 3 sends, 30 out in one poll (the second one was empty).
    let native_messages = (NATIVE_SENDS * NATIVE_BATCH) as f64;
    let nt = native_topic();
    assert_eq!(
        s.value("wharf_topic_messages_in_total", &nt),
        native_messages
    );
    assert_eq!(
        s.value("wharf_topic_messages_out_total", &nt),
        native_messages
    );
    assert_eq!(
        s.value("wharf_topic_bytes_in_total", &nt),
        native_messages * NATIVE_MESSAGE_LEN as f64
    );
    assert_eq!(
        s.value("wharf_topic_bytes_out_total", &nt),
        native_messages * NATIVE_MESSAGE_LEN as f64
    );
    let send = [("door", "native"), ("api", "SendMessages")];
    assert_eq!(s.value("wharf_requests_total", &send), NATIVE_SENDS as f64);
    assert_eq!(
        s.value("wharf_request_duration_seconds_count", &send),
        NATIVE_SENDS as f64
    );
    let poll = [("door", "native"), ("api", "PollMessages")];
    assert_eq!(s.value("wharf_requests_total", &poll), 3.0);
    assert_eq!(s.value("wharf_request_duration_seconds_count", &poll), 3.0);
    assert_eq!(s.sum("wharf_request_errors_total", &poll), 1.0);

    // Partition offsets.
    for p in ["0", "1"] {
        let labels = with(&kt, &[("partition", p)]);
        assert_eq!(
            s.value("wharf_partition_high_watermark", &labels),
            KAFKA_PER_PARTITION as f64
        );
        assert_eq!(s.value("wharf_partition_log_start_offset", &labels), 0.0);
        assert!(s.value("wharf_partition_size_bytes", &labels) > 0.0);
    }
    let np0 = with(&nt, &[("partition", "0")]);
    assert_eq!(
        s.value("wharf_partition_high_watermark", &np0),
        native_messages
    );

    // Lag = high watermark - committed next offset, for the Kafka group and the Iggy group.
    for (p, next) in KAFKA_COMMITS {
        let part = p.to_string();
        let labels = with(
            &[("group", KAFKA_GROUP)],
            &with(&kt, &[("partition", &part)]),
        );
        assert_eq!(
            s.value("wharf_consumer_group_committed_offset", &labels),
            next as f64
        );
        assert_eq!(
            s.value("wharf_consumer_group_lag", &labels),
            (KAFKA_PER_PARTITION as i64 - next) as f64,
            "lag of {KAFKA_GROUP} on partition {p}"
        );
    }
    let native_lag = with(&[("group", NATIVE_GROUP)], &np0);
    assert_eq!(
        s.value("wharf_consumer_group_committed_offset", &native_lag),
        (NATIVE_STORED + 1) as f64
    );
    assert_eq!(
        s.value("wharf_consumer_group_lag", &native_lag),
        native_messages - (NATIVE_STORED + 1) as f64
    );
    // The group members' joins and leaves: Kafka's coordinator completes a generation when
    // librdkafka's member joins and again when it leaves (the group goes Empty); the native
    // group is assigned once, when its one member joins.
    assert_eq!(
        s.value("wharf_group_rebalances_total", &[("protocol", "kafka")]),
        2.0
    );
    assert_eq!(
        s.value("wharf_group_rebalances_total", &[("protocol", "native")]),
        1.0
    );

    // Connections now: the iggy client, and exactly the two raw Kafka connections opened here.
    let mut k1 = KafkaWire::open(server.kafka).await;
    let mut k2 = KafkaWire::open(server.kafka).await;
    // One Fetch of each partition by hand: the Fetch count moves by exactly that, messages and
    // bytes out by what they returned (the record batches as librdkafka sent them, which is
    // also what bytes in counted); one Fetch of a topic that does not exist counts one error.
    let mut stored_bytes = 0;
    for p in 0..2 {
        let f = raw_fetch(&mut k1, KAFKA_TOPIC, p).await;
        assert_eq!((f.error_code, f.records), (0, KAFKA_PER_PARTITION as u64));
        stored_bytes += f.bytes;
    }
    let f = raw_fetch(&mut k2, "no-such-topic", 0).await;
    assert_eq!(f.error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    let stored_bytes = stored_bytes as f64;
    assert_eq!(s.value("wharf_topic_bytes_in_total", &kt), stored_bytes);
    assert_eq!(
        s.value("wharf_topic_bytes_out_total", &kt),
        stored_bytes,
        "the group consumer read each batch once"
    );
    let s2 = scrape(server.http).await;
    assert_eq!(s2.value("wharf_connections", &[("door", "kafka")]), 2.0);
    assert_eq!(s2.value("wharf_connections", &[("door", "native")]), 1.0);
    assert_eq!(s2.value("wharf_requests_total", &fetch), fetches + 3.0);
    assert_eq!(s2.sum("wharf_request_errors_total", &fetch), 1.0);
    assert_eq!(
        s2.value(
            "wharf_request_errors_total",
            &with(&fetch, &[("error", "UNKNOWN_TOPIC_OR_PARTITION")])
        ),
        1.0,
        "Kafka's ErrorsPerSec names the error"
    );
    assert_eq!(
        s2.value("wharf_topic_messages_out_total", &kt),
        2.0 * kafka_records
    );
    assert_eq!(
        s2.value("wharf_topic_bytes_out_total", &kt),
        2.0 * stored_bytes
    );
    assert_eq!(
        s2.value("wharf_topic_messages_in_total", &kt),
        kafka_records,
        "reads count nothing in"
    );

    // The same exposition as OpenMetrics, through the strict OpenMetrics parser.
    let om = scrape_as(server.http, Format::OpenMetrics).await;
    assert_eq!(
        om.value("wharf_topic_messages_in_total", &kt),
        kafka_records
    );
    assert_eq!(
        om.value("wharf_consumer_group_lag", &native_lag),
        native_messages - (NATIVE_STORED + 1) as f64
    );
    assert_eq!(om.family("wharf_requests").kind, "counter");
    assert_eq!(
        om.family("wharf_request_duration_seconds").kind,
        "histogram"
    );

    drop((k1, k2));
    within("logout", native_client.shutdown()).await.unwrap();
    scrape_until(server.http, "every connection closed", |s| {
        s.get("wharf_connections", &[("door", "kafka")]) == Some(0.0)
            && s.get("wharf_connections", &[("door", "native")]) == Some(0.0)
    })
    .await;
    server.stop().await;
}

/// `[metrics] enable = false` (what the bench compares against): the hot-path counters stay at
/// nothing, while what is read at scrape time (offsets, lag, connections) is still served and
/// the exposition still parses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_off_counts_no_traffic_but_still_serves_offsets_and_lag() {
    let mut server = Server::start(|c| c.metrics.enable = false).await;
    let client = native_workload(server.native).await;
    let s = scrape(server.http).await;
    assert_eq!(s.value("wharf_metrics_enabled", &[]), 0.0);
    let nt = native_topic();
    // Every topic is listed, counted or not: the series must be there, at 0.
    assert_eq!(
        s.value("wharf_topic_messages_in_total", &nt),
        0.0,
        "no traffic counted"
    );
    // A request series appears with its first count: the family is there, with no sample.
    let requests = s.family("wharf_requests");
    assert!(
        requests.samples.is_empty(),
        "requests counted with metrics off: {:?}",
        requests.samples
    );
    let np0 = with(&nt, &[("partition", "0")]);
    let total = (NATIVE_SENDS * NATIVE_BATCH) as f64;
    assert_eq!(s.value("wharf_partition_high_watermark", &np0), total);
    let lag = with(&[("group", NATIVE_GROUP)], &np0);
    assert_eq!(
        s.value("wharf_consumer_group_lag", &lag),
        total - (NATIVE_STORED + 1) as f64
    );
    assert_eq!(s.value("wharf_connections", &[("door", "native")]), 1.0);
    within("logout", client.shutdown()).await.unwrap();
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Readiness after recovery.

/// The data directory of [`ready_server_process`], passed by [`ready_only_after_recovery`].
const READY_DIR_VAR: &str = "WHARF_OBS_SERVER_DIR";

/// Kept by [`ready_only_after_recovery`]: enough records that opening the store is real work.
const READY_TOPIC: &str = "obs-ready";
const READY_PER_PARTITION: usize = 2_000;
const READY_PARTITIONS: i32 = 4;

fn ready_value(partition: i32, i: usize) -> String {
    format!("ready p{partition} record {i:05} {}", "r".repeat(i % 64))
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// The data written before the kill, read back from the start of every partition through
/// librdkafka right after `/ready` said 200.
fn read_back_everything(kafka: SocketAddr) {
    use rdkafka::consumer::BaseConsumer;
    let consumer: BaseConsumer = kafka_config(kafka)
        .set("group.id", "obs-ready-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for p in 0..READY_PARTITIONS {
        assignment
            .add_partition_offset(READY_TOPIC, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut next = vec![0usize; READY_PARTITIONS as usize];
    let deadline = std::time::Instant::now() + WAIT;
    while next.iter().any(|n| *n < READY_PER_PARTITION) {
        assert!(
            std::time::Instant::now() < deadline,
            "records read back so far per partition: {next:?}"
        );
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.unwrap();
        let p = m.partition();
        let i = next[p as usize];
        assert_eq!(m.offset(), i as i64, "partition {p}");
        assert_eq!(m.payload().unwrap(), ready_value(p, i).as_bytes());
        next[p as usize] += 1;
    }
}

/// How [`ready_server_process`] starts: held before the store opens until the test says so.
const READY_HOLD_VAR: &str = "WHARF_OBS_SERVER_HOLD";

/// The server of [`ready_only_after_recovery_and_then_every_record_is_readable`], as a process
/// of its own so it can be SIGKILLed for real. Started with [`READY_DIR_VAR`] set, it prints
/// `HTTP_ADDR <addr>` as soon as its HTTP listener is bound, then (with [`READY_HOLD_VAR`] set)
/// waits for the line `open` on its standard input before the store opens, prints
/// `KAFKA_ADDR <addr>` once started, and serves until killed or until its standard input
/// closes. Without the variable (a plain `--ignored` run) it does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the server process of the readiness test, which starts it"]
async fn ready_server_process() {
    let Some(dir) = std::env::var_os(READY_DIR_VAR) else {
        return;
    };
    let hold = std::env::var_os(READY_HOLD_VAR).is_some();
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
        // End of input: the sender drops, and the server stops.
    });
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let (open_tx, open_rx) = tokio::sync::oneshot::channel();
    let hooks = wharf_gateway::StartHooks {
        http_bound: Some(bound_tx),
        before_open: hold.then_some(open_rx),
        ..Default::default()
    };
    let start = tokio::spawn(wharf_gateway::start_with(
        with_http(test_config(Path::new(&dir))),
        hooks,
    ));
    println!(
        "HTTP_ADDR {}",
        bound_rx.await.expect("the HTTP listener is bound")
    );
    if hold {
        while let Some(line) = lines.recv().await {
            if line == "open" {
                break;
            }
        }
    }
    let _ = open_tx.send(());
    let running = start.await.unwrap().expect("the server starts");
    println!("KAFKA_ADDR {}", running.kafka_addr);
    while lines.recv().await.is_some() {}
    running.shutdown().await.unwrap();
}

/// [`ready_server_process`] running, with its printed addresses.
struct ServerProcess {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl ServerProcess {
    fn spawn(dir: &Path, hold: bool) -> ServerProcess {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "ready_server_process",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(READY_DIR_VAR, dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
        if hold {
            cmd.env(READY_HOLD_VAR, "1");
        }
        let mut child = cmd.spawn().expect("the server process starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        ServerProcess {
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    /// The address the process printed after `key` (libtest may start the same line).
    fn address(&self, key: &str) -> SocketAddr {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("the server process did not print {key} in {WAIT:?}"));
            if let Some(addr) = line.split(&format!("{key} ")).nth(1) {
                return addr.trim().parse().unwrap();
            }
        }
    }

    fn say(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server on a data directory with data, SIGKILLed, then started again and held before its
/// store opens: `/health` answers 200 and `/ready` 503 meanwhile, and `/metrics` still parses
/// (with `wharf_ready 0`); once let go, `/ready` turns 200 after the recovery, and from that
/// first 200 on every record written before the kill is readable (bound: each of the
/// [`READY_PARTITIONS`] x [`READY_PER_PARTITION`] records, in order, at its offset).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_only_after_recovery_and_then_every_record_is_readable() {
    let data = tempfile::tempdir().unwrap();

    let first = blocking(|| ServerProcess::spawn(data.path(), false));
    let kafka = blocking(|| first.address("KAFKA_ADDR"));
    create_kafka_topic(kafka, READY_TOPIC, READY_PARTITIONS).await;
    let producer: FutureProducer = kafka_config(kafka)
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let values: Vec<(i32, String)> = (0..READY_PER_PARTITION)
        .flat_map(|i| (0..READY_PARTITIONS).map(move |p| (p, ready_value(p, i))))
        .collect();
    let sends = values.iter().map(|(p, v)| {
        let record: FutureRecord<'_, (), _> =
            FutureRecord::to(READY_TOPIC).partition(*p).payload(v);
        producer.send(record, Duration::from_secs(30))
    });
    for sent in within("deliveries", futures_util::future::join_all(sends)).await {
        sent.map_err(|(e, _)| e).unwrap();
    }
    drop(producer);
    blocking(|| first.kill());

    let mut second = blocking(|| ServerProcess::spawn(data.path(), true));
    let http = blocking(|| second.address("HTTP_ADDR"));
    let health = http_get(http, "/health", None).await;
    assert_eq!(health.status, 200, "/health while the store is held shut");
    let ready = http_get(http, "/ready", None).await;
    assert_eq!(
        ready.status,
        503,
        "/ready before the store opens: {}",
        ready.text()
    );
    let opening = scrape(http).await;
    assert_eq!(opening.value("wharf_ready", &[]), 0.0);
    assert!(
        opening
            .samples()
            .all(|s| !s.name.starts_with("wharf_partition_")),
        "no partition figures before the store is open"
    );

    second.say("open");
    // A bounded poll: the server is another process, and `/ready` itself is what is checked.
    within("/ready turns 200", async {
        loop {
            let answer = http_get(http, "/ready", None).await;
            match answer.status {
                200 => break,
                503 => tokio::time::sleep(Duration::from_millis(10)).await,
                other => panic!("/ready answered {other}: {}", answer.text()),
            }
        }
    })
    .await;
    let kafka = blocking(|| second.address("KAFKA_ADDR"));
    blocking(|| read_back_everything(kafka));
    let s = scrape(http).await;
    assert_eq!(s.value("wharf_ready", &[]), 1.0);
    for p in 0..READY_PARTITIONS {
        let part = p.to_string();
        let labels = [
            ("stream", "default"),
            ("topic", READY_TOPIC),
            ("partition", part.as_str()),
        ];
        assert_eq!(
            s.value("wharf_partition_high_watermark", &labels),
            READY_PER_PARTITION as f64
        );
    }
}
