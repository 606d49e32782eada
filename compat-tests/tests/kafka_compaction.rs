//! Log compaction (#17) with real clients against a real server: librdkafka (the `rdkafka`
//! crate) and kafka-python (a program in `compat-tests/kafka-clients/`) write many updates per
//! key and tombstones to compacted topics (`cleanup.policy=compact`, small segments, a small
//! dirty ratio) on a server whose cleaner looks for work every few milliseconds; the tests read
//! the topics back from the beginning until the cleaner has done its work, and the official
//! `iggy` SDK reads the same log over the native door. A crash test SIGKILLs a server that is
//! cleaning under continued keyed writes at seeded points (`WHARF_COMPACTION_SEED` replays a
//! run) and checks after every restart that nothing acknowledged was lost in a way compaction
//! does not allow.
//!
//! What every read is checked against, at any moment (not only once compacted): offsets
//! strictly increase; each record read is one the test wrote, at the offset its produce was
//! acknowledged with; for every key, the last record read is the latest one written (a latest
//! value is never lost, an older value never shows through as the latest); a tombstone whose
//! `delete.retention.ms` has not passed is never removed. Compaction is complete when every key
//! other than the filler's has exactly one record (its latest value), or none when its latest
//! is a tombstone past its retention; the log then has holes.
//!
//! The cleaner only cleans sealed segments, so every wait appends "filler" records under one
//! key of their own: they seal the segments holding the data and keep giving the cleaner new
//! dirty segments (the cleanings that drop expired tombstones). Waits poll that condition,
//! bounded by [`COMPACTION_WAIT`]; nothing sleeps to synchronise.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use compat_tests::{
    child_server, client_programs, iggy_root_client, seed_from_env, test_config, within, Rng,
    TestServer, WAIT,
};
use iggy::prelude::{
    Consumer as IggyConsumer, HeaderKey, HeaderValue, Identifier, IggyMessage, MessageClient as _,
    Partitioning, PollingStrategy,
};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer, PurgeConfig};
use rdkafka::{Offset, TopicPartitionList};
use wharf_gateway::config::ServerConfig;

/// `segment.bytes` of the test topics: small, so a few hundred records fill many segments and
/// the data is sealed (cleanable) soon after it is written.
const SEGMENT_BYTES: usize = 16 * 1024;
/// `delete.retention.ms` of the topics whose tombstones must go: short, so the test sees them go.
const SHORT_TOMBSTONE_RETENTION_MS: u64 = 1000;
/// `delete.retention.ms` of the topics whose tombstones must stay (Kafka's default, one day).
const LONG_TOMBSTONE_RETENTION_MS: u64 = 86_400_000;
/// How long a test waits for the cleaner to finish a topic.
const COMPACTION_WAIT: Duration = Duration::from_secs(90);
/// The key of the filler records (never a data key).
const FILLER_KEY: &[u8] = b"~filler";
/// Payload bytes of a data record (its value is `k<key>-u<update>-` padded to this).
const VALUE_SIZE: usize = 200;

/// The server's cleaner looks for work this often (Kafka's `log.cleaner.backoff.ms`, 15 s by
/// default), so a test waits on the cleaner's work, not on its idle time.
fn cleaning_config(data_dir: &Path, backoff: Duration) -> ServerConfig {
    let mut config = test_config(data_dir);
    config.store.cleaner.enabled = true;
    config.store.cleaner.backoff = backoff;
    config
}

async fn start_cleaning_server() -> TestServer {
    TestServer::start_with(|c| {
        c.store.cleaner.enabled = true;
        c.store.cleaner.backoff = Duration::from_millis(20);
    })
    .await
}

/// librdkafka settings for the Kafka listener at `addr`.
fn client(addr: SocketAddr) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", addr.to_string())
        .set("broker.address.family", "v4");
    c
}

/// The Kafka configs of a compacted test topic: compaction only, [`SEGMENT_BYTES`] segments,
/// cleaned as soon as 1 % of it is dirty, no compaction lag, tombstones kept `tombstone_ms`.
fn compacted_configs(tombstone_ms: u64) -> Vec<(&'static str, String)> {
    vec![
        ("cleanup.policy", "compact".into()),
        ("segment.bytes", SEGMENT_BYTES.to_string()),
        ("min.cleanable.dirty.ratio", "0.01".into()),
        ("min.compaction.lag.ms", "0".into()),
        ("delete.retention.ms", tombstone_ms.to_string()),
    ]
}

/// Creates the one-partition compacted topic `name` through librdkafka's admin API (configs
/// in CreateTopics, as Kafka Connect and Kafka Streams create theirs).
async fn create_compacted_topic(addr: SocketAddr, name: &str, tombstone_ms: u64) {
    let admin: AdminClient<DefaultClientContext> = client(addr).create().unwrap();
    let configs = compacted_configs(tombstone_ms);
    let mut topic = NewTopic::new(name, 1, TopicReplication::Fixed(1));
    for (k, v) in &configs {
        topic = topic.set(k, v);
    }
    let made = within(
        "create a compacted topic",
        admin.create_topics(&[topic], &AdminOptions::new()),
    )
    .await
    .unwrap_or_else(|e| panic!("CreateTopics {name}: {e}"));
    for r in made {
        r.unwrap_or_else(|(t, e)| panic!("cannot create compacted topic {t} {configs:?}: {e}"));
    }
}

// ---------------------------------------------------------------------------------------------
// What was written, and the checks every read passes
// ---------------------------------------------------------------------------------------------

/// One record: its key and its value (`None`: a tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

impl Rec {
    fn keyed(key: &[u8], value: Option<Vec<u8>>) -> Rec {
        Rec {
            key: Some(key.to_vec()),
            value,
        }
    }
}

impl std::fmt::Display for Rec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |b: &Option<Vec<u8>>| match b {
            None => "null".to_string(),
            Some(b) => {
                let s = String::from_utf8_lossy(b);
                s.trim_end_matches('.').chars().take(40).collect()
            }
        };
        write!(f, "{}={}", show(&self.key), show(&self.value))
    }
}

/// Key `k` of the data plan.
fn data_key(k: usize) -> Vec<u8> {
    format!("key-{k:04}").into_bytes()
}

/// A value that names its key and update, padded to [`VALUE_SIZE`].
fn padded(tag: String) -> Vec<u8> {
    let mut v = tag.into_bytes();
    v.resize(v.len().max(VALUE_SIZE), b'.');
    v
}

/// The data: `updates` rounds over `keys` keys (round-robin, so each key's versions are spread
/// over many segments). Key k with k % 6 == 0 ends with a tombstone; k % 6 == 3 gets a
/// tombstone in its second-to-last update and a value again after it (a tombstone must not
/// delete what follows it).
fn plan(keys: usize, updates: usize) -> Vec<Rec> {
    let mut out = Vec::with_capacity(keys * updates);
    for u in 0..updates {
        for k in 0..keys {
            let tombstone = (k % 6 == 0 && u + 1 == updates) || (k % 6 == 3 && u + 2 == updates);
            let value = (!tombstone).then(|| padded(format!("k{k}-u{u}-")));
            out.push(Rec::keyed(&data_key(k), value));
        }
    }
    out
}

/// What the test knows it wrote to one partition: the record acknowledged at each offset, and
/// when the first write with tombstones began (none may go before their retention after that:
/// a tombstone's retention runs from its append, which is later).
#[derive(Debug, Default)]
struct Written {
    at: BTreeMap<i64, Rec>,
    tombstones_from: Option<Instant>,
    fillers: u64,
}

impl Written {
    fn add(&mut self, offsets: &[i64], recs: &[Rec]) {
        for (o, r) in offsets.iter().zip(recs) {
            assert!(
                self.at.insert(*o, r.clone()).is_none(),
                "offset {o} acknowledged twice"
            );
        }
    }

    /// Each key's latest offset.
    fn latest(&self) -> BTreeMap<Vec<u8>, i64> {
        let mut latest = BTreeMap::new();
        for (o, r) in &self.at {
            if let Some(k) = &r.key {
                latest.insert(k.clone(), *o);
            }
        }
        latest
    }

    /// `n` filler records (1 KB values, unique), to append after the data.
    fn next_fillers(&mut self, n: usize) -> Vec<Rec> {
        (0..n)
            .map(|_| {
                self.fillers += 1;
                let mut v = format!("filler-{}-", self.fillers).into_bytes();
                v.resize(1000, b'.');
                Rec::keyed(FILLER_KEY, Some(v))
            })
            .collect()
    }
}

/// Whether a topic's tombstones must go (short retention) or stay (long retention).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tombstones {
    /// `delete.retention.ms` is [`SHORT_TOMBSTONE_RETENTION_MS`].
    Go,
    /// `delete.retention.ms` is [`LONG_TOMBSTONE_RETENTION_MS`].
    Stay,
}

impl Tombstones {
    fn retention_ms(self) -> u64 {
        match self {
            Tombstones::Go => SHORT_TOMBSTONE_RETENTION_MS,
            Tombstones::Stay => LONG_TOMBSTONE_RETENTION_MS,
        }
    }
}

/// One read of a partition from offset 0 to its end.
#[derive(Debug, Clone)]
struct Read {
    records: Vec<(i64, Rec)>,
    /// Each record's `tag` header (the crash test names its records with it).
    tags: Vec<Option<Vec<u8>>>,
    /// The high watermark the read went up to.
    end: i64,
    /// When the read ended.
    ended: Instant,
}

/// How far a read shows the log compacted.
#[derive(Debug)]
struct Progress {
    done: bool,
    /// Data keys with more than one record.
    duplicated: usize,
    /// Tombstones still present that must go.
    tombstones_left: usize,
}

/// Checks `read` against `written` (the invariants of the module's doc); `Ok` tells how far
/// compaction has come, `Err` names a broken invariant.
fn check(read: &Read, written: &Written, tombstones: Tombstones) -> Result<Progress, String> {
    let mut last = -1;
    let mut present: BTreeMap<&[u8], Vec<i64>> = BTreeMap::new();
    for (o, r) in &read.records {
        if *o <= last {
            return Err(format!(
                "offset {o} after {last}: offsets must strictly increase"
            ));
        }
        last = *o;
        match written.at.get(o) {
            Some(w) if w == r => {}
            Some(w) => return Err(format!("offset {o} holds {r}, but {w} was written there")),
            None => {
                return Err(format!(
                    "offset {o} holds {r}, which was never acknowledged"
                ))
            }
        }
        let key = r
            .key
            .as_deref()
            .ok_or(format!("offset {o}: a record without a key"))?;
        present.entry(key).or_default().push(*o);
    }
    // Before this, no tombstone may have gone: its retention runs from its append.
    let may_go = written
        .tombstones_from
        .map(|t| t + Duration::from_millis(tombstones.retention_ms()));
    let mut progress = Progress {
        done: true,
        duplicated: 0,
        tombstones_left: 0,
    };
    for (key, latest) in written.latest() {
        let shown = String::from_utf8_lossy(&key).into_owned();
        let is_tombstone = written.at[&latest].value.is_none();
        let offsets = present.get(key.as_slice()).cloned().unwrap_or_default();
        match offsets.last() {
            Some(&o) if o == latest => {}
            Some(&o) => {
                return Err(format!(
                    "key {shown}: the last record read is at {o} ({}), but its latest is at \
                     {latest} ({})",
                    written.at[&o], written.at[&latest]
                ))
            }
            None if is_tombstone && may_go.is_some_and(|t| read.ended >= t) => {}
            None if is_tombstone => {
                return Err(format!(
                    "key {shown}: its tombstone at {latest} is gone within its retention \
                     ({} ms)",
                    tombstones.retention_ms()
                ))
            }
            None => {
                return Err(format!(
                    "key {shown}: its latest value (at {latest}) is gone: {}",
                    written.at[&latest]
                ))
            }
        }
        if is_tombstone && !offsets.is_empty() && tombstones == Tombstones::Go {
            progress.tombstones_left += 1;
            progress.done = false;
        }
        if key.as_slice() != FILLER_KEY && offsets.len() > 1 {
            progress.duplicated += 1;
            progress.done = false;
        }
    }
    if progress.done && read.records.len() as i64 >= read.end {
        return Err(format!(
            "{} records read up to offset {}: compacted, yet no holes",
            read.records.len(),
            read.end
        ));
    }
    Ok(progress)
}

// ---------------------------------------------------------------------------------------------
// librdkafka: writing and reading
// ---------------------------------------------------------------------------------------------

fn producer(addr: SocketAddr) -> FutureProducer {
    client(addr)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()
        .unwrap()
}

/// Sends `recs` to partition 0 of `topic` and returns their offsets, failing the test on a
/// delivery error.
async fn produce(producer: &FutureProducer, topic: &str, recs: &[Rec]) -> Vec<i64> {
    let futures: Vec<_> = recs
        .iter()
        .map(|r| {
            let mut record = FutureRecord::<[u8], [u8]>::to(topic).partition(0);
            if let Some(k) = &r.key {
                record = record.key(k.as_slice());
            }
            if let Some(v) = &r.value {
                record = record.payload(v.as_slice());
            }
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .unwrap_or_else(|e| panic!("cannot queue a record for {topic}: {e}"))
        })
        .collect();
    let mut offsets = Vec::with_capacity(futures.len());
    for (f, r) in futures.into_iter().zip(recs) {
        let delivered = within("a delivery report", f)
            .await
            .expect("the producer dropped a delivery");
        offsets.push(
            delivered
                .map(|d| d.offset)
                .unwrap_or_else(|(e, _)| panic!("delivery of {r} to {topic}: {e}")),
        );
    }
    offsets
}

/// Reads partition 0 of `topic` from offset 0 up to its high watermark.
fn read_partition(addr: SocketAddr, topic: &str) -> Read {
    let consumer: BaseConsumer = client(addr)
        .set("group.id", "compaction-reader-never-commits")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let (_, end) = consumer
        .fetch_watermarks(topic, 0, WAIT)
        .unwrap_or_else(|e| panic!("ListOffsets {topic}: {e}"));
    let mut records = Vec::new();
    let mut tags = Vec::new();
    if end == 0 {
        return Read {
            records,
            tags,
            end,
            ended: Instant::now(),
        };
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(0))
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(
            Instant::now() < deadline,
            "read of {topic}: {} records read, not at its end ({end}) after {WAIT:?}",
            records.len()
        );
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => panic!("read of {topic}: {e}"),
            Some(Ok(m)) => {
                tags.push(m.headers().and_then(|h| {
                    h.iter()
                        .find(|h| h.key == "tag")
                        .and_then(|h| h.value.map(<[u8]>::to_vec))
                }));
                records.push((
                    m.offset(),
                    Rec {
                        key: m.key().map(<[u8]>::to_vec),
                        value: m.payload().map(<[u8]>::to_vec),
                    },
                ));
            }
        }
    }
    Read {
        records,
        tags,
        end,
        ended: Instant::now(),
    }
}

/// Appends filler to each topic and reads it back until `check` says it is compacted (the
/// checks hold at every read), failing after [`COMPACTION_WAIT`]; returns the final reads.
async fn wait_until_compacted(
    addr: SocketAddr,
    producer: &FutureProducer,
    topics: &mut [(&str, &mut Written, Tombstones)],
) -> Vec<Read> {
    let started = Instant::now();
    let mut finals: Vec<Option<Read>> = vec![None; topics.len()];
    let mut rounds = 0u32;
    loop {
        rounds += 1;
        for (i, (topic, written, tombstones)) in topics.iter_mut().enumerate() {
            if finals[i].is_some() {
                continue;
            }
            // Two segments' worth: seals what is there and gives the cleaner new dirty bytes.
            let filler = written.next_fillers(2 * SEGMENT_BYTES / 1000);
            let offsets = produce(producer, topic, &filler).await;
            written.add(&offsets, &filler);
            let topic_name = topic.to_string();
            let read = tokio::task::block_in_place(|| read_partition(addr, &topic_name));
            let progress = check(&read, written, *tombstones).unwrap_or_else(|e| {
                panic!("{topic} (read {rounds}, {:?} in): {e}", started.elapsed())
            });
            if progress.done {
                println!(
                    "{topic}: compacted after {:?} ({rounds} reads): {} records up to offset {}",
                    started.elapsed(),
                    read.records.len(),
                    read.end
                );
                finals[i] = Some(read);
            } else {
                assert!(
                    started.elapsed() < COMPACTION_WAIT,
                    "{topic}: not compacted after {COMPACTION_WAIT:?} ({rounds} reads): {} \
                     keys still have older versions, {} tombstones left (retention {} ms); \
                     last read {} records up to offset {}. Is the cleaner running?",
                    progress.duplicated,
                    progress.tombstones_left,
                    tombstones.retention_ms(),
                    read.records.len(),
                    read.end
                );
            }
        }
        if finals.iter().all(Option::is_some) {
            return finals.into_iter().map(Option::unwrap).collect();
        }
    }
}

/// Writes the data plan to `topic`, recording it in `written`.
async fn write_plan(producer: &FutureProducer, topic: &str, written: &mut Written, recs: &[Rec]) {
    if recs.iter().any(|r| r.value.is_none()) {
        written.tombstones_from.get_or_insert_with(Instant::now);
    }
    let offsets = produce(producer, topic, recs).await;
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "{topic}: offsets of a sequential produce must increase"
    );
    written.add(&offsets, recs);
}

/// A record without a key, produced to a compacted topic, is refused with INVALID_RECORD (as
/// Kafka does: "Compacted topic cannot accept message without key") and nothing is stored.
async fn keyless_is_refused(addr: SocketAddr, producer: &FutureProducer, topic: &str) {
    let before = tokio::task::block_in_place(|| read_partition(addr, topic).end);
    let got = within(
        "the answer to a keyless produce",
        producer.send(
            FutureRecord::<[u8], _>::to(topic)
                .partition(0)
                .payload("no key"),
            WAIT,
        ),
    )
    .await;
    match got {
        Err((KafkaError::MessageProduction(RDKafkaErrorCode::InvalidRecord), _)) => {}
        other => panic!("a keyless record to compacted {topic}: {other:?}, want INVALID_RECORD"),
    }
    let after = tokio::task::block_in_place(|| read_partition(addr, topic).end);
    assert_eq!(
        before, after,
        "{topic}: a refused record moved the end offset"
    );
}

// ---------------------------------------------------------------------------------------------
// librdkafka
// ---------------------------------------------------------------------------------------------

/// librdkafka writes 8 updates of each of 120 keys (with tombstones) to two compacted topics,
/// one keeping tombstones a second, one a day. Once cleaned, each reads back as exactly one
/// record per key (its latest value) at the offset its produce was acknowledged with, offsets
/// increasing with holes; tombstones are gone from the first and still there in the second; a
/// keyless record is refused with INVALID_RECORD.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdkafka_compacted_topic_keeps_the_latest_value_per_key() {
    let server = start_cleaning_server().await;
    let addr = server.kafka_addr;
    let p = producer(addr);
    let data = plan(120, 8);
    let mut go = Written::default();
    let mut stay = Written::default();
    for (topic, tombstones, written) in [
        ("compact-go", Tombstones::Go, &mut go),
        ("compact-stay", Tombstones::Stay, &mut stay),
    ] {
        create_compacted_topic(addr, topic, tombstones.retention_ms()).await;
        write_plan(&p, topic, written, &data).await;
    }
    keyless_is_refused(addr, &p, "compact-go").await;

    let reads = wait_until_compacted(
        addr,
        &p,
        &mut [
            ("compact-go", &mut go, Tombstones::Go),
            ("compact-stay", &mut stay, Tombstones::Stay),
        ],
    )
    .await;
    // Spelled out for one key of each kind.
    let values = |read: &Read| -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        read.records
            .iter()
            .map(|(_, r)| (r.key.clone().unwrap(), r.value.clone()))
            .collect()
    };
    let (go_values, stay_values) = (values(&reads[0]), values(&reads[1]));
    assert_eq!(go_values[&data_key(1)], Some(padded("k1-u7-".into())));
    assert_eq!(
        go_values.get(&data_key(0)),
        None,
        "tombstoned, retention passed"
    );
    assert_eq!(go_values[&data_key(3)], Some(padded("k3-u7-".into())));
    assert_eq!(stay_values[&data_key(0)], None, "the tombstone stays a day");
    assert_eq!(stay_values[&data_key(3)], Some(padded("k3-u7-".into())));
    let data_records = |read: &Read| {
        read.records
            .iter()
            .filter(|(_, r)| r.key.as_deref() != Some(FILLER_KEY))
            .count()
    };
    assert_eq!(
        data_records(&reads[0]),
        120 - 20,
        "one per key but the 20 tombstoned"
    );
    assert_eq!(
        data_records(&reads[1]),
        120,
        "one per key, tombstones included"
    );
}

// ---------------------------------------------------------------------------------------------
// kafka-python
// ---------------------------------------------------------------------------------------------

/// kafka-python (`kafka_python_compaction.py`, against a server cleaning every 20 ms): the same
/// checks as the librdkafka test, through kafka-python's producer, consumer and admin client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_compacted_topic_keeps_the_latest_value_per_key() {
    let server = start_cleaning_server().await;
    let addr = server.kafka_addr.to_string();
    let python = client_programs::python();
    client_programs::run(
        "kafka_python_compaction.py",
        &python,
        &addr,
        &[],
        Duration::from_secs(240),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// The iggy SDK over the native door
// ---------------------------------------------------------------------------------------------

fn named(s: &str) -> Identifier {
    Identifier::named(s).unwrap()
}

/// Every message of partition 0 of `topic` (in the `default` stream, where Kafka creates
/// topics) polled with the official iggy SDK, offset after offset, as (offset, key, value):
/// the key from the `kafka.key` header, a `kafka.tombstone` message as a null value.
async fn native_read(client: &iggy::prelude::IggyClient, topic: &str, end: i64) -> Vec<(i64, Rec)> {
    let mut out = Vec::new();
    let mut next = 0u64;
    let reader = IggyConsumer::new(named("compaction-native-reader"));
    let deadline = Instant::now() + WAIT;
    while (next as i64) < end {
        assert!(
            Instant::now() < deadline,
            "native read of {topic} stuck at {next} (end {end})"
        );
        let polled = within(
            "native poll",
            client.poll_messages(
                &named("default"),
                &named(topic),
                Some(0),
                &reader,
                &PollingStrategy::offset(next),
                100,
                false,
            ),
        )
        .await
        .unwrap_or_else(|e| panic!("native poll of {topic} at {next}: {e}"));
        let Some(last) = polled.messages.last() else {
            break;
        };
        next = last.header.offset + 1;
        for m in &polled.messages {
            let headers = m.user_headers_map().unwrap().unwrap_or_default();
            let raw = |k: &str| {
                headers
                    .get(&HeaderKey::try_from(k).unwrap())
                    .map(|v| v.as_raw().map(<[u8]>::to_vec).unwrap_or_default())
            };
            let tombstone = raw("kafka.tombstone").is_some();
            out.push((
                m.header.offset as i64,
                Rec {
                    key: raw("kafka.key"),
                    value: (!tombstone).then(|| m.payload.to_vec()),
                },
            ));
        }
    }
    out
}

/// A compacted topic written by librdkafka and, for some keys' last updates, by the iggy SDK
/// (key in the `kafka.key` header): once cleaned, the iggy SDK polling it over the native door
/// sees exactly what a Kafka consumer sees (the same offsets with the same holes, the same
/// latest value per key); a native message without `kafka.key` is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iggy_sdk_reads_the_same_compacted_log() {
    let server = start_cleaning_server().await;
    let addr = server.kafka_addr;
    let topic = "compact-native";
    create_compacted_topic(addr, topic, LONG_TOMBSTONE_RETENTION_MS).await;
    let p = producer(addr);
    let mut written = Written::default();
    let keys = 60;
    write_plan(&p, topic, &mut written, &plan(keys, 6)).await;

    // The iggy SDK writes a last update of every fourth key.
    let client = iggy_root_client(&server).await;
    let native: Vec<Rec> = (0..keys)
        .step_by(4)
        .map(|k| Rec::keyed(&data_key(k), Some(padded(format!("k{k}-native-")))))
        .collect();
    let mut messages: Vec<IggyMessage> = native
        .iter()
        .map(|r| {
            let mut headers = BTreeMap::new();
            headers.insert(
                HeaderKey::try_from("kafka.key").unwrap(),
                HeaderValue::try_from(r.key.as_deref().unwrap()).unwrap(),
            );
            IggyMessage::builder()
                .payload(Bytes::from(r.value.clone().unwrap()))
                .user_headers(headers)
                .build()
                .unwrap()
        })
        .collect();
    let before = tokio::task::block_in_place(|| read_partition(addr, topic).end);
    within(
        "native send",
        client.send_messages(
            &named("default"),
            &named(topic),
            &Partitioning::partition_id(0),
            &mut messages,
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("native send of keyed messages to {topic}: {e}"));
    // One native batch, offsets in send order from the old end.
    let offsets: Vec<i64> = (before..before + native.len() as i64).collect();
    written.add(&offsets, &native);

    let mut keyless = vec![IggyMessage::builder()
        .payload(Bytes::from_static(b"no key"))
        .build()
        .unwrap()];
    let refused = within(
        "native keyless send",
        client.send_messages(
            &named("default"),
            &named(topic),
            &Partitioning::partition_id(0),
            &mut keyless,
        ),
    )
    .await;
    assert!(
        refused.is_err(),
        "a native message without kafka.key was accepted by compacted {topic}"
    );

    let reads =
        wait_until_compacted(addr, &p, &mut [(topic, &mut written, Tombstones::Stay)]).await;
    let kafka_view: Vec<(i64, Rec)> = reads[0]
        .records
        .iter()
        .filter(|(_, r)| r.key.as_deref() != Some(FILLER_KEY))
        .cloned()
        .collect();
    let native_view: Vec<(i64, Rec)> = native_read(&client, topic, reads[0].end)
        .await
        .into_iter()
        .filter(|(_, r)| r.key.as_deref() != Some(FILLER_KEY))
        .collect();
    let show =
        |v: &[(i64, Rec)]| -> Vec<String> { v.iter().map(|(o, r)| format!("{o}:{r}")).collect() };
    assert_eq!(
        show(&native_view),
        show(&kafka_view),
        "the native reader sees the data keys as the Kafka reader does"
    );
    assert_eq!(kafka_view.len(), keys, "one record per key");
    for (o, r) in &native_view {
        assert_eq!(written.at.get(o), Some(r));
    }
    let native_latest = native_view
        .iter()
        .filter(|(_, r)| {
            r.value
                .as_ref()
                .is_some_and(|v| v.windows(7).any(|w| w == b"native-"))
        })
        .count();
    assert_eq!(
        native_latest,
        native.len(),
        "the natively written last updates are the latest"
    );
}

// ---------------------------------------------------------------------------------------------
// A server SIGKILLed while cleaning
// ---------------------------------------------------------------------------------------------

/// Set (to a data directory) when this test binary runs as the server process of
/// [`server_sigkill_while_cleaning_loses_no_latest_value`].
const SERVER_DIR_VAR: &str = "WHARF_COMPACTION_SERVER_DIR";

/// The crash test's server, as a process of its own so the kill is real: started with
/// [`SERVER_DIR_VAR`] set, its cleaner looking for work every 5 ms, it prints its Kafka address
/// and serves until killed (or until its standard input closes, should the test itself die).
/// Without the variable (a plain `--ignored` run) it does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the server process of the compaction SIGKILL test, which starts it"]
async fn compaction_server_process() {
    let Some(dir) = std::env::var_os(SERVER_DIR_VAR) else {
        return;
    };
    let config = cleaning_config(Path::new(&dir), Duration::from_millis(5));
    child_server::serve_as_child_process(config).await;
}

/// Starts [`compaction_server_process`] on `dir`; returns it and its Kafka address.
fn spawn_server_process(dir: &Path) -> (Child, SocketAddr) {
    child_server::spawn("compaction_server_process", SERVER_DIR_VAR, dir)
}

fn seed() -> u64 {
    seed_from_env("WHARF_COMPACTION_SEED", 0x17_C0_11_EC)
}

const CRASH_TOPIC: &str = "compact-crash";
const CRASH_KEYS: u64 = 40;
const CRASH_KILLS: usize = 15;

/// One record of the crash test, named by its tag (key and sequence number), which travels
/// in a `tag` header so that tombstones (no value) are named too.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CrashRec {
    key: Vec<u8>,
    tombstone: bool,
}

/// Everything the crash test's writers sent (tag -> record) and what was acknowledged
/// (offset -> tag), over all server runs.
#[derive(Debug, Default)]
struct CrashLog {
    sent: BTreeMap<Vec<u8>, CrashRec>,
    acked: BTreeMap<i64, Vec<u8>>,
}

/// What one server run's writer did.
#[derive(Debug, Default)]
struct Writes {
    sent: BTreeMap<Vec<u8>, CrashRec>,
    acked: BTreeMap<i64, Vec<u8>>,
    last_seq: u64,
}

/// One server run's writer: keyed records over [`CRASH_KEYS`] keys (every tenth a tombstone)
/// in groups of 20, each group awaited, until `stop` is set or a delivery fails (the server
/// was killed and the test purged the producer). Reports the acknowledged count after each
/// group.
async fn crash_writer(
    producer: Arc<FutureProducer>,
    mut rng: Rng,
    first_seq: u64,
    stop: Arc<std::sync::atomic::AtomicBool>,
    acks: tokio::sync::watch::Sender<u64>,
) -> Writes {
    let mut w = Writes {
        last_seq: first_seq,
        ..Writes::default()
    };
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let mut group = Vec::new();
        for _ in 0..20 {
            w.last_seq += 1;
            let k = rng.below(CRASH_KEYS);
            let key = format!("ck-{k:02}").into_bytes();
            let tag = padded(format!("ck-{k:02}-s{}-", w.last_seq));
            let tombstone = rng.below(10) == 0;
            let mut record = FutureRecord::<[u8], [u8]>::to(CRASH_TOPIC)
                .partition(0)
                .key(&key)
                .headers(
                    rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
                        key: "tag",
                        value: Some(tag.as_slice()),
                    }),
                );
            if !tombstone {
                record = record.payload(tag.as_slice());
            }
            let Ok(future) = producer.send_result(record) else {
                return w;
            };
            w.sent.insert(tag.clone(), CrashRec { key, tombstone });
            group.push((tag, future));
        }
        let mut failed = false;
        for (tag, future) in group {
            match future.await {
                Ok(Ok(d)) => {
                    w.acked.insert(d.offset, tag);
                }
                _ => failed = true,
            }
        }
        if failed {
            return w;
        }
        let _ = acks.send(w.acked.len() as u64);
    }
    w
}

/// Files a cleaning in progress leaves in `dir` (any depth): cleaned segments not yet swapped
/// in (`*.cleaned`) and the swap manifest (`cleaner-swap`). Found after a kill, they show the
/// kill landed inside a cleaning (counted and printed: when a kill lands is up to the timing).
fn cleaning_leftovers(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map_while(Result::ok)
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                cleaning_leftovers(&e.path())
            } else {
                usize::from(name.ends_with(".cleaned") || name == "cleaner-swap")
            }
        })
        .sum()
}

/// Checks a read of the crash topic against `log`: offsets strictly increase; every record
/// is one that was sent (acknowledged or not: a write the kill cut off may be stored); every
/// acknowledged record is there at its offset, or a newer record of its key is (the only loss
/// compaction allows). So each key's latest acknowledged value, or something newer, is there.
fn check_crash(read: &Read, log: &CrashLog) -> Result<(), String> {
    let mut last = -1;
    let mut at: BTreeMap<i64, &[u8]> = BTreeMap::new();
    let mut newest: BTreeMap<&[u8], i64> = BTreeMap::new();
    for ((o, r), tag) in read.records.iter().zip(&read.tags) {
        if *o <= last {
            return Err(format!(
                "offset {o} after {last}: offsets must strictly increase"
            ));
        }
        last = *o;
        let tag = tag
            .as_deref()
            .ok_or(format!("offset {o}: a record without its tag header ({r})"))?;
        let shown = String::from_utf8_lossy(tag);
        let sent = log
            .sent
            .get(tag)
            .ok_or(format!("offset {o}: {shown} was never sent"))?;
        let want_value = (!sent.tombstone).then(|| tag.to_vec());
        if r.key.as_deref() != Some(sent.key.as_slice()) || r.value != want_value {
            return Err(format!("offset {o}: {r} is not what was sent as {shown}"));
        }
        at.insert(*o, tag);
        newest.insert(&sent.key, *o);
    }
    for (o, tag) in &log.acked {
        if at.get(o) == Some(&tag.as_slice()) {
            continue;
        }
        let key = &log.sent[tag].key;
        if newest.get(key.as_slice()).is_some_and(|n| n > o) {
            continue;
        }
        return Err(format!(
            "{} acknowledged at offset {o} is gone, and no newer record of its key is there \
             (newest at {:?})",
            String::from_utf8_lossy(tag).trim_end_matches('.'),
            newest.get(key.as_slice())
        ));
    }
    Ok(())
}

/// A server cleaning a compacted topic (16 KiB segments, a dirty ratio of 1 %, the cleaner
/// looking for work every 5 ms) under continued keyed writes (40 keys, tombstones) is
/// SIGKILLed 15 times, each after a seeded number of acknowledged records, and restarted on the
/// same data directory. After each restart (and at the end) the log is checked by
/// [`check_crash`]: every key's latest acknowledged value (or a newer one) is there, nothing
/// acknowledged is lost in a way compaction does not allow, nothing unsent appears, offsets
/// increase. At the end the log must have been compacted (fewer than half the offsets hold a
/// record), or the test proved nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sigkill_while_cleaning_loses_no_latest_value() {
    let seed = seed();
    println!("compaction crash seed {seed} (WHARF_COMPACTION_SEED replays it)");
    let mut rng = Rng(seed);
    let data = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (mut process, mut addr) = tokio::task::block_in_place(|| spawn_server_process(data.path()));
    create_compacted_topic(addr, CRASH_TOPIC, LONG_TOMBSTONE_RETENTION_MS).await;
    let mut log = CrashLog::default();
    let mut seq = 0;
    let mut kills = Vec::new();
    let mut mid_cleaning = 0;
    let mut read = None;
    for round in 0..=CRASH_KILLS {
        let killing = round < CRASH_KILLS;
        let producer: Arc<FutureProducer> = Arc::new(
            client(addr)
                .set("linger.ms", "2")
                .set("message.timeout.ms", "10000")
                .create()
                .unwrap(),
        );
        let (acks_tx, mut acks) = tokio::sync::watch::channel(0u64);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut writer = tokio::spawn(crash_writer(
            Arc::clone(&producer),
            Rng(rng.next_u64()),
            seq,
            Arc::clone(&stop),
            acks_tx,
        ));
        let target = 100 + rng.below(500);
        within(
            "acknowledged writes before the kill",
            acks.wait_for(|n| *n >= target),
        )
        .await
        .unwrap_or_else(|_| {
            panic!(
                "round {round}: the writer stopped before {target} acknowledgements (seed {seed})"
            )
        });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let writes = if killing {
            process.kill().unwrap();
            process.wait().unwrap();
            kills.push(target);
            if cleaning_leftovers(data.path()) > 0 {
                mid_cleaning += 1;
            }
            // Whatever librdkafka still holds can never be acknowledged: purge it (again, until
            // the writer has seen it) so the writer ends now rather than at its timeout.
            let deadline = Instant::now() + WAIT;
            loop {
                producer.purge(PurgeConfig::default().queue().inflight());
                if let Ok(w) = tokio::time::timeout(Duration::from_millis(50), &mut writer).await {
                    break w.unwrap();
                }
                assert!(
                    Instant::now() < deadline,
                    "the writer did not stop after the kill"
                );
            }
        } else {
            within("the last writes", &mut writer).await.unwrap()
        };
        seq = writes.last_seq;
        log.sent.extend(writes.sent);
        for (o, tag) in writes.acked {
            assert!(
                log.acked.insert(o, tag).is_none(),
                "offset {o} acknowledged twice (seed {seed})"
            );
        }
        if killing {
            (process, addr) = tokio::task::block_in_place(|| spawn_server_process(data.path()));
        }
        let r = tokio::task::block_in_place(|| read_partition(addr, CRASH_TOPIC));
        check_crash(&r, &log).unwrap_or_else(|e| {
            panic!(
                "after kill {} (seed {seed}, kills after {kills:?} acks): {e}",
                kills.len()
            )
        });
        read = Some(r);
    }
    let read = read.unwrap();
    println!(
        "{} kills after {kills:?} acknowledgements in {:?} ({mid_cleaning} left a cleaning's \
         files behind); {} records sent, {} acknowledged; the log holds {} records up to offset {}",
        kills.len(),
        started.elapsed(),
        log.sent.len(),
        log.acked.len(),
        read.records.len(),
        read.end
    );
    assert!(
        (read.records.len() as i64) < read.end / 2,
        "{} records up to offset {}: the log was hardly compacted (seed {seed})",
        read.records.len(),
        read.end
    );
    drop(process);
}
