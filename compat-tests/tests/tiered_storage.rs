//! Tiered storage end to end, against a real S3-compatible server (moto in server mode, which
//! `scripts/test` installs) on a loopback port: sealed segments of `remote.storage.enable`
//! topics uploaded to the bucket, local copies deleted past the local retention, offloaded data
//! read back byte-exact by librdkafka and the `iggy` SDK, ListOffsets -4/-5 on the wire, the
//! object store down (producers unaffected, the alert metric, nothing deleted locally), a
//! SIGKILL during an upload, and a restore onto an empty data directory.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use compat_tests::{
    child_server, iggy_root_client_at, remote_storage_toml, test_config_with_toml, within,
    KafkaWire, Rng, S3Server, TestServer, WAIT,
};
use iggy::prelude::{
    Consumer as IggyConsumer, HeaderKey, Identifier, IggyTimestamp, MessageClient as _,
    PollingStrategy,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{Message as _, Timestamp};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use wharf_gateway::config::ServerConfig;
use wharf_log_store::remote::{ObjectStoreRemote, RemoteError, RemoteManifest, RemoteStore as _};

/// The helper's own check: the remote tier's client (`ObjectStoreRemote`, path-style) puts,
/// lists, reads (whole and ranged) and deletes in moto's bucket; with the server stopped a call
/// fails as `Unavailable` (retriable) within the request timeout rather than hanging, and after
/// a start on the same port the objects are still there.
#[test]
fn s3_server_serves_the_remote_tier_and_comes_back_on_its_port() {
    let mut s3 = S3Server::start();
    let remote = wharf_log_store::remote::ObjectStoreRemote::open(
        s3.remote_config("self-test", Duration::from_secs(3)),
    )
    .expect("a client for moto");
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    remote
        .put("a/one", &mut body.as_slice(), body.len() as u64)
        .expect("put");
    remote.put("a/two", &mut &b"two"[..], 3).expect("put");
    remote.put("b/three", &mut &b"three"[..], 5).expect("put");
    let mut keys = remote.list("a/").expect("list");
    keys.sort();
    assert_eq!(keys, ["a/one", "a/two"]);
    assert_eq!(
        s3.keys("self-test/"),
        ["self-test/a/one", "self-test/a/two", "self-test/b/three"],
        "path-style keys land under the prefix"
    );
    assert_eq!(
        remote.get("a/one").expect("get").as_deref(),
        Some(&body[..])
    );
    assert_eq!(
        remote.get_range("a/one", 1000..1010).expect("ranged get"),
        body[1000..1010]
    );
    assert!(remote.get("a/none").expect("get of nothing").is_none());
    remote.delete("a/two").expect("delete");
    remote
        .delete("a/two")
        .expect("deleting a missing object is no error");
    assert_eq!(remote.list("a/").expect("list"), ["a/one"]);

    let port = s3.port;
    s3.stop();
    match remote.get("a/one") {
        Err(e @ RemoteError::Unavailable { .. }) => assert!(e.is_retriable()),
        other => panic!("a get from a stopped S3 server answered {other:?}"),
    }
    s3.start_again();
    assert_eq!(s3.port, port);
    assert_eq!(
        remote
            .get("a/one")
            .expect("get after the restart")
            .as_deref(),
        Some(&body[..]),
        "the objects survive a stop and start"
    );
}

// ---------------------------------------------------------------------------------------------
// The workload and what the tests look at.

/// Every key the server writes lives under this prefix of the bucket.
const PREFIX: &str = "wharf";
/// The Kafka topic of every test (one partition, in the Kafka door's default stream).
const TOPIC: &str = "tiered";
/// Small segments, so a few hundred records make a dozen sealed segments to upload.
const SEGMENT_BYTES: &str = "8192";
/// Records of the workload: about 80 KB, ten-odd segments.
const RECORDS: usize = 300;
/// Records per produced batch (about 2.5 KB).
const BATCH: usize = 10;
/// The first record's CreateTime (ms); record `i` has `BASE_TS_MS + i`.
const BASE_TS_MS: i64 = 1_700_000_000_000;

/// `[remote_storage]` settings that make the tiering thread act within a test: a round every
/// 100 ms, quick retries, and small cache chunks so that a read crosses several of them.
const QUICK_TIERING: &str = "task_interval = \"100 ms\"\n\
                             retry_backoff = \"100 ms\"\n\
                             retry_backoff_max = \"400 ms\"\n\
                             request_timeout = \"5 s\"\n\
                             connect_timeout = \"2 s\"\n\
                             chunk_size = \"16 KiB\"\n\
                             cache_max_size = \"64 KiB\"";

/// One record of the workload.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    key: Vec<u8>,
    value: Vec<u8>,
    timestamp_ms: i64,
}

/// Records `from..from + n`: distinct keys, values of varied length with bytes from a seeded
/// generator (so a byte moved or dropped anywhere shows), timestamps one ms apart.
fn records(from: usize, n: usize) -> Vec<Rec> {
    (from..from + n)
        .map(|i| {
            let mut rng = Rng(i as u64);
            let len = 150 + (i % 7) * 29;
            Rec {
                key: format!("key-{i}").into_bytes(),
                value: (0..len).map(|_| rng.next_u64() as u8).collect(),
                timestamp_ms: BASE_TS_MS + i as i64,
            }
        })
        .collect()
}

/// The test configuration on `data` with the remote tier on `s3`, quick tiering and `extra`
/// settings, and the HTTP listener on (for `/metrics`).
fn tiered_config(data: &Path, s3_port: u16, extra: &str) -> ServerConfig {
    let mut config = test_config_with_toml(
        data,
        &remote_storage_toml(
            s3_port,
            "wharf-test",
            PREFIX,
            &format!("{QUICK_TIERING}\n{extra}"),
        ),
    );
    config.http.address = Some("127.0.0.1:0".parse().expect("an address"));
    config
}

fn kafka_client(kafka: SocketAddr) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", kafka.to_string())
        .set("broker.address.family", "v4")
        .set("message.timeout.ms", "30000");
    c
}

/// Creates the topic with remote storage on, small segments, and a local retention of one
/// byte: every sealed segment leaves the local disk once it is uploaded.
async fn create_tiered_topic(kafka: SocketAddr) {
    let admin: AdminClient<DefaultClientContext> =
        kafka_client(kafka).create().expect("admin client");
    let topic = NewTopic::new(TOPIC, 1, TopicReplication::Fixed(1))
        .set("remote.storage.enable", "true")
        .set("segment.bytes", SEGMENT_BYTES)
        .set("local.retention.bytes", "1");
    let made = within(
        "create the tiered topic",
        admin.create_topics(&[topic], &AdminOptions::new()),
    )
    .await
    .expect("CreateTopics answered");
    for r in made {
        if let Err((topic, e)) = r {
            panic!("cannot create {topic}: {e}");
        }
    }
}

/// Produces `recs` (idempotent, so in order) in batches of [`BATCH`] records, checking that
/// record `i` lands at offset `first + i`. Small batches make many segments: a batch never
/// straddles two.
async fn produce(kafka: SocketAddr, recs: &[Rec], first: i64) {
    let producer: FutureProducer = kafka_client(kafka)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    for (n, chunk) in recs.chunks(BATCH).enumerate() {
        let sends = chunk.iter().map(|r| {
            let producer = &producer;
            async move {
                producer
                    .send(
                        FutureRecord::to(TOPIC)
                            .partition(0)
                            .key(&r.key)
                            .payload(&r.value)
                            .timestamp(r.timestamp_ms),
                        Duration::from_secs(30),
                    )
                    .await
            }
        });
        let delivered = within("produce", futures_util::future::join_all(sends)).await;
        for (j, d) in delivered.into_iter().enumerate() {
            let i = n * BATCH + j;
            let delivery = d.unwrap_or_else(|(e, _)| panic!("record {i} not produced: {e}"));
            assert_eq!(delivery.offset, first + i as i64, "record {i}'s offset");
        }
    }
}

/// Reads `want.len()` records from offset `from` with librdkafka and checks each byte-exact
/// (offset, key, value, timestamp).
fn rdkafka_reads(kafka: SocketAddr, from: i64, want: &[Rec]) {
    let consumer: BaseConsumer = kafka_client(kafka)
        .set("group.id", "tiered-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Offset(from))
        .expect("a partition to assign");
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + WAIT;
    let mut got = 0usize;
    while got < want.len() {
        assert!(
            Instant::now() < deadline,
            "librdkafka read {got} of {} records from offset {from} within {WAIT:?}",
            want.len()
        );
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.unwrap_or_else(|e| panic!("librdkafka consumer error after {got} records: {e}"));
        let w = &want[got];
        assert_eq!(m.offset(), from + got as i64, "offset of record {got}");
        assert_eq!(m.key(), Some(&w.key[..]), "key at offset {}", m.offset());
        assert_eq!(
            m.payload(),
            Some(&w.value[..]),
            "value at offset {}",
            m.offset()
        );
        assert_eq!(
            m.timestamp(),
            Timestamp::CreateTime(w.timestamp_ms),
            "timestamp at offset {}",
            m.offset()
        );
        got += 1;
    }
}

/// The base offsets of the topic's segment files on local disk, sorted (the server holds this
/// one topic; its files live under `streams/<s>/topics/<t>/partitions/0`).
fn local_segments(data: &Path) -> Vec<u64> {
    fn walk(dir: &Path, out: &mut Vec<u64>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.map_while(Result::ok) {
            let path = e.path();
            if path.is_dir() {
                walk(&path, out);
            } else if let Some(base) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(|n| n.parse().ok())
            {
                out.push(base);
            }
        }
    }
    let mut out = Vec::new();
    walk(&data.join("streams"), &mut out);
    out.sort_unstable();
    out
}

/// The topic's manifest in the bucket (`remote` is a client under [`PREFIX`]), if one is there.
fn remote_manifest(remote: &ObjectStoreRemote) -> Option<RemoteManifest> {
    let keys = remote.list("topics/").expect("list the bucket");
    let key = keys.iter().find(|k| k.ends_with("/manifest"))?;
    let bytes = remote.get(key).expect("get the manifest")?;
    Some(RemoteManifest::decode(&bytes, key).expect("a manifest that decodes"))
}

/// Waits until every sealed segment is uploaded and gone from local disk: one local segment
/// (the active one) left, starting where the bucket's manifest ends. Returns that offset.
async fn wait_until_offloaded(remote: &ObjectStoreRemote, data: &Path, what: &str) -> u64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let local = local_segments(data);
        let manifest = remote_manifest(remote);
        if let (Some(m), [active]) = (&manifest, local.as_slice()) {
            if *active > 0 && m.next_offset() == Some(*active) {
                return *active;
            }
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT:?}: {what}; local segments {local:?}, uploaded up to {:?}, \
             bucket {:?}",
            manifest.map(|m| m.next_offset()),
            remote.list("").expect("list the bucket")
        );
        // A bounded poll: the uploads happen on the server's own thread on its interval, with
        // nothing in this process to await.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `/metrics` scrape: the sum of the samples of each family name.
async fn scrape(http: SocketAddr) -> HashMap<String, f64> {
    let body = within("GET /metrics", async {
        let mut s = tokio::net::TcpStream::connect(http)
            .await
            .expect("connect to the HTTP listener");
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: wharf\r\nConnection: close\r\n\r\n")
            .await
            .expect("send GET /metrics");
        let mut body = String::new();
        s.read_to_string(&mut body).await.expect("read /metrics");
        body
    })
    .await;
    assert!(body.starts_with("HTTP/1.1 200"), "/metrics: {body}");
    let mut families = HashMap::new();
    for line in body.lines().filter(|l| l.starts_with("wharf_")) {
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let name = series.split('{').next().unwrap_or(series);
        let value: f64 = value.parse().expect("a sample value");
        *families.entry(name.to_string()).or_insert(0.0) += value;
    }
    families
}

/// A counter or gauge of a scrape, under its family name with or without `_total`; 0 when
/// absent.
fn metric(scrape: &HashMap<String, f64>, name: &str) -> f64 {
    scrape
        .get(name)
        .or_else(|| scrape.get(&format!("{name}_total")))
        .copied()
        .unwrap_or(0.0)
}

/// Scrapes until `metric` is above zero, failing with `what` after [`WAIT`].
async fn wait_for_metric(http: SocketAddr, name: &str, what: &str) -> f64 {
    within(what, async {
        loop {
            let v = metric(&scrape(http).await, name);
            if v > 0.0 {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

/// ListOffsets for the topic's partition 0 at `timestamp` (-1 latest, -2 earliest, -4 earliest
/// local, -5 latest tiered) in version `version`: the offset, checking there is no error.
async fn list_offset(kafka: SocketAddr, version: i16, timestamp: i64) -> i64 {
    let mut wire = KafkaWire::open(kafka).await;
    let req = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp)])]);
    let answer: ListOffsetsResponse = wire.call(ApiKey::ListOffsets, version, &req).await;
    let p = &answer.topics[0].partitions[0];
    assert_eq!(
        p.error_code, 0,
        "ListOffsets v{version} at {timestamp}: error {}",
        p.error_code
    );
    p.offset
}

/// The official `iggy` client on `native`, logged in as root.
fn named(s: &str) -> Identifier {
    Identifier::named(s).expect("a valid name")
}

/// Polls the topic with the `iggy` SDK from `strategy` until `want.len()` messages have come
/// (the first at offset `from`), checking each byte-exact: payload, the Kafka key header and the
/// timestamp.
async fn iggy_reads(native: SocketAddr, strategy: PollingStrategy, from: u64, want: &[Rec]) {
    let client = iggy_root_client_at(native).await;
    let consumer = IggyConsumer::new(named("tiered-reader"));
    let mut strategy = strategy;
    let mut got = 0usize;
    within("the iggy SDK reads the offloaded records", async {
        while got < want.len() {
            let polled = client
                .poll_messages(
                    &named("default"),
                    &named(TOPIC),
                    Some(0),
                    &consumer,
                    &strategy,
                    100,
                    false,
                )
                .await
                .unwrap_or_else(|e| panic!("poll after {got} messages: {e}"));
            assert!(
                !polled.messages.is_empty(),
                "the iggy SDK's poll ({strategy:?}) after {got} of {} messages came back empty",
                want.len()
            );
            for m in &polled.messages {
                let w = &want[got];
                let offset = from + got as u64;
                assert_eq!(m.header.offset, offset, "offset of message {got}");
                assert_eq!(
                    m.payload,
                    Bytes::from(w.value.clone()),
                    "payload at {offset}"
                );
                let headers = m
                    .user_headers_map()
                    .expect("headers that decode")
                    .expect("the Kafka key header");
                let key = headers
                    .get(&HeaderKey::try_from("kafka.key").expect("a header key"))
                    .map(|v| v.as_raw().expect("raw").to_vec());
                assert_eq!(key, Some(w.key.clone()), "key at {offset}");
                assert_eq!(
                    m.header.origin_timestamp,
                    w.timestamp_ms as u64 * 1000,
                    "timestamp at {offset}"
                );
                got += 1;
                if got == want.len() {
                    break;
                }
            }
            strategy = PollingStrategy::offset(from + got as u64);
        }
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Upload, local deletion, reads of offloaded data.

/// Sealed segments are uploaded to the bucket (a `.log` and an `.index` object each, named by a
/// checksummed manifest) and leave the local disk (local.retention.bytes = 1: only the active
/// segment stays); then the offloaded records, only in the object store, are read from the
/// start byte-exact by librdkafka and by the `iggy` SDK (offset and timestamp strategies), and
/// ListOffsets answers earliest (-2) = 0, earliest local (-4) = the active segment's base,
/// latest tiered (-5) = the last uploaded offset, and a timestamp inside the remote tier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offloaded_records_are_read_byte_exact_by_librdkafka_and_the_iggy_sdk() {
    let s3 = S3Server::start();
    let remote = s3.remote(PREFIX);
    let data = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start_config(tiered_config(data.path(), s3.port, "")).await;
    let kafka = server.kafka_addr;
    create_tiered_topic(kafka).await;
    let recs = records(0, RECORDS);
    produce(kafka, &recs, 0).await;

    let local_start = wait_until_offloaded(
        &remote,
        data.path(),
        "every sealed segment uploaded and deleted locally",
    )
    .await;
    let manifest = remote_manifest(&remote).expect("the manifest");
    assert_eq!(manifest.start_offset(), Some(0), "{manifest:?}");
    assert!(
        manifest.segments.len() >= 5,
        "the workload should seal several segments: {manifest:?}"
    );
    let keys = remote.list("").expect("list the bucket");
    for seg in &manifest.segments {
        for ext in ["log", "index"] {
            let key = format!(
                "{}{:020}-{}.{ext}",
                manifest_dir(&keys),
                seg.base_offset,
                seg.upload_epoch
            );
            assert!(keys.contains(&key), "{key} is not in the bucket: {keys:?}");
        }
    }
    assert!(
        keys.iter().any(|k| k == "catalog"),
        "the catalog's copy is in the bucket: {keys:?}"
    );

    tokio::task::block_in_place(|| rdkafka_reads(kafka, 0, &recs));
    iggy_reads(server.addr, PollingStrategy::offset(0), 0, &recs).await;
    // Record 30 starts a produced batch: the native door finds batches by their timestamps.
    iggy_reads(
        server.addr,
        PollingStrategy::timestamp(IggyTimestamp::from((BASE_TS_MS as u64 + 30) * 1000)),
        30,
        &recs[30..60],
    )
    .await;
    assert_eq!(list_offset(kafka, 9, -2).await, 0, "earliest");
    assert_eq!(
        list_offset(kafka, 9, -4).await,
        local_start as i64,
        "earliest local (-4)"
    );
    assert_eq!(
        list_offset(kafka, 9, -5).await,
        local_start as i64 - 1,
        "latest tiered (-5)"
    );
    assert_eq!(list_offset(kafka, 9, -1).await, RECORDS as i64, "latest");
    assert_eq!(
        list_offset(kafka, 9, BASE_TS_MS + 37).await,
        37,
        "a timestamp look-up inside the remote tier"
    );

    let m = scrape(server.http_addr.expect("the HTTP listener")).await;
    assert!(
        metric(&m, "wharf_remote_uploaded_segments") >= manifest.segments.len() as f64,
        "uploaded segments on /metrics: {m:?}"
    );
    assert!(
        metric(&m, "wharf_remote_local_deleted_segments") >= manifest.segments.len() as f64,
        "locally deleted segments on /metrics: {m:?}"
    );
    assert!(
        metric(&m, "wharf_remote_fetched_bytes") > 0.0,
        "the reads came from the object store: {m:?}"
    );
}

/// The folder of the partition's objects in `keys` (where its manifest is).
fn manifest_dir(keys: &[String]) -> String {
    let manifest = keys
        .iter()
        .find(|k| k.ends_with("/manifest"))
        .expect("a manifest in the bucket");
    manifest.trim_end_matches("manifest").to_string()
}

// ---------------------------------------------------------------------------------------------
// Faults: the object store down, a kill during an upload, a lost data directory.

/// The object store down from before the server starts: the server starts and serves,
/// producers are unaffected (every record acknowledged at its offset), the alert metric
/// `wharf_remote_failing_rounds` rises, and nothing is deleted locally (offset 0 stays on disk,
/// no sealed segment goes, -5 answers -1: nothing tiered); a restart with the store still down
/// works too. Then the store comes back on its port: the uploads resume, the local copies go,
/// the alert gauge returns to 0, and every record reads back byte-exact from the object store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_store_down_leaves_producers_unaffected_and_local_data_in_place() {
    let mut s3 = S3Server::start();
    let remote = s3.remote(PREFIX);
    s3.stop();
    let data = tempfile::tempdir().expect("temp dir");
    let mut server = TestServer::start_config(tiered_config(data.path(), s3.port, "")).await;
    create_tiered_topic(server.kafka_addr).await;
    let recs = records(0, RECORDS);
    let half = RECORDS / 2;
    produce(server.kafka_addr, &recs[..half], 0).await;
    let http = server.http_addr.expect("the HTTP listener");
    wait_for_metric(
        http,
        "wharf_remote_failing_rounds",
        "wharf_remote_failing_rounds above 0 while the object store is down",
    )
    .await;
    wait_for_metric(
        http,
        "wharf_remote_upload_failures",
        "upload failures counted while the object store is down",
    )
    .await;
    let before = local_segments(data.path());
    assert!(
        before.len() >= 3 && before[0] == 0,
        "every segment stays local while nothing can be uploaded: {before:?}"
    );

    server.restart().await;
    produce(server.kafka_addr, &recs[half..], half as i64).await;
    let http = server.http_addr.expect("the HTTP listener");
    wait_for_metric(
        http,
        "wharf_remote_failing_rounds",
        "wharf_remote_failing_rounds above 0 after a restart with the object store down",
    )
    .await;
    let after = local_segments(data.path());
    assert!(
        before.iter().all(|b| after.contains(b)),
        "a segment was deleted locally while the object store was down: {before:?} -> {after:?}"
    );
    let m = scrape(http).await;
    assert_eq!(
        metric(&m, "wharf_remote_local_deleted_segments"),
        0.0,
        "{m:?}"
    );
    assert_eq!(
        list_offset(server.kafka_addr, 9, -4).await,
        0,
        "earliest local"
    );
    assert_eq!(
        list_offset(server.kafka_addr, 9, -5).await,
        -1,
        "latest tiered with nothing uploaded"
    );

    s3.start_again();
    let local_start = wait_until_offloaded(
        &remote,
        data.path(),
        "the uploads resume once the object store is back",
    )
    .await;
    assert!(local_start > 0);
    within(
        "the alert clears: wharf_remote_failing_rounds back to 0",
        async {
            // A bounded poll: the gauge is reset by the server's next successful round.
            while metric(&scrape(http).await, "wharf_remote_failing_rounds") > 0.0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        },
    )
    .await;
    tokio::task::block_in_place(|| rdkafka_reads(server.kafka_addr, 0, &recs));
}

/// The environment variables of [`tiered_server_process`]: its data directory and the S3
/// server's port.
const SERVER_DIR_VAR: &str = "WHARF_TIERED_TEST_DIR";
const S3_PORT_VAR: &str = "WHARF_TIERED_TEST_S3_PORT";
/// Uploads in the killed server: 16 KiB/s, two 8 KiB segments a second, so the dozen sealed
/// segments of the workload take several seconds and the kill lands among them.
const SLOW_UPLOADS: &str = "copy_max_bytes_per_second = 16384";

/// The server process that [`sigkill_during_uploads_then_restart_uploads_everything`] kills:
/// tiered, with slow uploads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a process by sigkill_during_uploads_then_restart_uploads_everything"]
async fn tiered_server_process() {
    let dir = std::env::var(SERVER_DIR_VAR).expect("the data directory");
    let port: u16 = std::env::var(S3_PORT_VAR)
        .expect("the S3 port")
        .parse()
        .expect("a port");
    child_server::serve_as_child_process(tiered_config(Path::new(&dir), port, SLOW_UPLOADS)).await;
}

/// A server process SIGKILLed while it uploads (some segment objects in the bucket, the rest
/// not, the manifest behind), then started again on the same data directory: it finishes the
/// uploads, reusing the keys (no object the manifest does not name is left in the bucket),
/// deletes the local copies, and every record reads back byte-exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_uploads_then_restart_uploads_everything() {
    let s3 = S3Server::start();
    let remote = s3.remote(PREFIX);
    let data = tempfile::tempdir().expect("temp dir");
    let port = s3.port.to_string();
    let (mut child, kafka) = child_server::spawn_with_env(
        "tiered_server_process",
        &[
            (SERVER_DIR_VAR, data.path().as_os_str()),
            (S3_PORT_VAR, port.as_ref()),
        ],
    );
    create_tiered_topic(kafka).await;
    let recs = records(0, RECORDS);
    produce(kafka, &recs, 0).await;
    within("the first segment object in the bucket", async {
        // A bounded poll: the upload runs in the other process.
        while !remote
            .list("topics/")
            .expect("list the bucket")
            .iter()
            .any(|k| k.ends_with(".log"))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    child.kill().expect("SIGKILL the server");
    child.wait().expect("the killed server's status");
    let sealed_end = *local_segments(data.path())
        .last()
        .expect("the active segment");
    let uploaded_end = remote_manifest(&remote).and_then(|m| m.next_offset());
    assert!(
        uploaded_end.is_none_or(|end| end < sealed_end),
        "the kill should come before every sealed segment is uploaded (the uploads are \
         throttled to {SLOW_UPLOADS}): uploaded to {uploaded_end:?} of {sealed_end}"
    );

    let server = TestServer::start_config(tiered_config(data.path(), s3.port, "")).await;
    let local_start = wait_until_offloaded(
        &remote,
        data.path(),
        "the restarted server uploads what the killed one had not",
    )
    .await;
    assert!(local_start >= sealed_end, "{local_start} < {sealed_end}");
    within("no object left that the manifest does not name", async {
        loop {
            let manifest = remote_manifest(&remote).expect("the manifest");
            let keys = remote.list("topics/").expect("list the bucket");
            let dir = manifest_dir(&keys);
            let mut named: Vec<String> = manifest
                .segments
                .iter()
                .flat_map(|s| {
                    ["log", "index"]
                        .map(|ext| format!("{dir}{:020}-{}.{ext}", s.base_offset, s.upload_epoch))
                })
                .chain([format!("{dir}manifest")])
                .collect();
            named.sort();
            let mut keys = keys;
            keys.sort();
            if keys == named {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    tokio::task::block_in_place(|| rdkafka_reads(server.kafka_addr, 0, &recs));
}

/// A lost data directory rebuilt from the object store (what `wharf-server
/// --restore-from-remote` does): refused onto a directory that holds a catalog; onto an empty
/// one it brings the topic back with everything uploaded, librdkafka reads it byte-exact from
/// offset 0, and new records continue after the old offsets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_onto_an_empty_data_directory_reads_everything_uploaded() {
    let s3 = S3Server::start();
    let remote = s3.remote(PREFIX);
    let lost = tempfile::tempdir().expect("temp dir");
    let mut server = TestServer::start_config(tiered_config(lost.path(), s3.port, "")).await;
    create_tiered_topic(server.kafka_addr).await;
    let recs = records(0, RECORDS);
    produce(server.kafka_addr, &recs, 0).await;
    let uploaded_end =
        wait_until_offloaded(&remote, lost.path(), "everything sealed uploaded").await as usize;
    within("the catalog's copy in the bucket", async {
        while remote.get("catalog").expect("get the catalog").is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    server.stop().await;
    let lost_config = tiered_config(lost.path(), s3.port, "");
    assert!(
        wharf_log_store::LogStore::restore_from_remote(lost.path(), &lost_config.store).is_err(),
        "a restore onto a data directory that holds a catalog is refused"
    );

    let empty = tempfile::tempdir().expect("temp dir");
    let config = tiered_config(empty.path(), s3.port, "");
    let report = wharf_log_store::LogStore::restore_from_remote(empty.path(), &config.store)
        .expect("the restore");
    let manifest = remote_manifest(&remote).expect("the manifest");
    assert_eq!(report.partitions, 1, "{report:?}");
    assert_eq!(report.segments, manifest.segments.len(), "{report:?}");
    let server = TestServer::start_config(config).await;
    let kafka = server.kafka_addr;
    assert_eq!(
        list_offset(kafka, 9, -2).await,
        0,
        "earliest after the restore"
    );
    assert_eq!(
        list_offset(kafka, 9, -1).await,
        uploaded_end as i64,
        "latest after the restore: the end of what was uploaded"
    );
    tokio::task::block_in_place(|| rdkafka_reads(kafka, 0, &recs[..uploaded_end]));
    let more = records(RECORDS + 1000, 20);
    produce(kafka, &more, uploaded_end as i64).await;
    tokio::task::block_in_place(|| rdkafka_reads(kafka, uploaded_end as i64, &more));
}
