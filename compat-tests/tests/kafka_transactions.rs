//! Kafka transactions (#16) with real clients against a real server: librdkafka's
//! transactional producer (the `rdkafka` crate), the confluent-kafka and kafka-python
//! transactional producers (programs in `compat-tests/kafka-clients/`), a
//! consume-transform-produce loop SIGKILLed at seeded random points, and a server SIGKILLed in
//! the middle of transactions (open ones abort after their timeout, committed ones stay) and at
//! seeded points of a stream of commits (each transaction all or nothing after the restart).
//! Kill points come from a printed seed; `WHARF_TXN_SEED` replays one.
//!
//! What every test checks is what a Kafka client can see: the records a `read_committed` and a
//! `read_uncommitted` consumer get, the offsets (each commit or abort marker takes one, as in
//! Kafka), the end offsets ListOffsets gives for each isolation level (the last stable offset
//! for `read_committed`), committed group offsets, and the errors a fenced producer gets.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use compat_tests::{
    child_server, client_programs, seed_from_env, test_config_with_toml, within, KafkaWire, Rng,
    TestServer, WAIT,
};
use kafka_protocol::messages::{
    offset_fetch_request, ApiKey, GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use wharf_gateway::config::ServerConfig;

/// The server's transaction settings for tests that need a transaction to time out: Kafka's
/// `transaction.abort.timed.out.transaction.cleanup.interval.ms` made short, so an open
/// transaction is aborted within 100 ms of its timeout rather than Kafka's 10 s.
const SHORT_TXN_CLEANUP: &str = r#"
[kafka]
transaction_abort_timed_out_transaction_cleanup_interval = "100 ms"
"#;

fn short_cleanup_config(data_dir: &Path) -> ServerConfig {
    test_config_with_toml(data_dir, SHORT_TXN_CLEANUP)
}

/// Runs a blocking librdkafka call (the transactional API, a consumer poll loop) on a test's
/// runtime thread without stalling the server's tasks.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// librdkafka settings for the Kafka listener at `addr`.
fn client(addr: SocketAddr) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", addr.to_string())
        .set("broker.address.family", "v4");
    c
}

/// A transactional producer with transactional id `id` and transaction timeout `timeout`,
/// initialised (`init_transactions`, which fences any earlier producer of `id`).
fn txn_producer(addr: SocketAddr, id: &str, timeout: Duration) -> FutureProducer {
    let ms = timeout.as_millis().to_string();
    let producer: FutureProducer = client(addr)
        .set("transactional.id", id)
        .set("transaction.timeout.ms", &ms)
        // librdkafka refuses a message timeout longer than the transaction timeout.
        .set("message.timeout.ms", &ms)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    blocking(|| producer.init_transactions(WAIT))
        .unwrap_or_else(|e| panic!("init_transactions of {id}: {e}"));
    producer
}

/// A plain (neither idempotent nor transactional) producer.
fn plain_producer(addr: SocketAddr) -> FutureProducer {
    client(addr)
        .set("message.timeout.ms", "30000")
        .set("linger.ms", "0")
        .create()
        .unwrap()
}

/// Sends `values` to `topic`/`partition` and returns the offsets they were stored at, failing
/// the test on a delivery error.
async fn send(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    values: &[String],
) -> Vec<i64> {
    let mut offsets = Vec::with_capacity(values.len());
    for r in try_send(producer, topic, partition, values).await {
        offsets.push(r.unwrap_or_else(|e| panic!("delivery to {topic}/{partition}: {e}")));
    }
    offsets
}

/// Sends `values` and returns each one's delivery: its offset or the error.
async fn try_send(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    values: &[String],
) -> Vec<Result<i64, KafkaError>> {
    let futures: Vec<_> = values
        .iter()
        .map(|v| {
            producer
                .send_result(
                    FutureRecord::<(), _>::to(topic)
                        .partition(partition)
                        .payload(v),
                )
                .map_err(|(e, _)| e)
                .unwrap_or_else(|e| panic!("cannot queue a record for {topic}/{partition}: {e}"))
        })
        .collect();
    let mut out = Vec::with_capacity(futures.len());
    for f in futures {
        let delivered = within("a delivery report", f)
            .await
            .expect("the producer dropped a delivery");
        out.push(delivered.map(|d| d.offset).map_err(|(e, _)| e));
    }
    out
}

/// `n` values `<tag>-<partition>-<i>`.
fn values(tag: &str, partition: i32, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{tag}-{partition}-{i}")).collect()
}

fn offsets(range: std::ops::Range<i64>) -> Vec<i64> {
    range.collect()
}

/// A consumer that never commits, reading with `isolation` (`read_committed` or
/// `read_uncommitted`), reporting the end of each partition.
fn reader(addr: SocketAddr, isolation: &str) -> BaseConsumer {
    client(addr)
        .set("group.id", "txn-reader-never-commits")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", isolation)
        .create()
        .unwrap()
}

/// Reads `topic` with `isolation` from `start` (partition -> offset) until every partition
/// reports its end (for `read_committed` the last stable offset, else the high watermark);
/// returns each partition's (offset, value)s in order.
fn read_from(
    addr: SocketAddr,
    topic: &str,
    start: &[(i32, i64)],
    isolation: &str,
) -> BTreeMap<i32, Vec<(i64, String)>> {
    let consumer = reader(addr, isolation);
    let mut tpl = TopicPartitionList::new();
    for &(p, o) in start {
        tpl.add_partition_offset(topic, p, Offset::Offset(o))
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out: BTreeMap<i32, Vec<(i64, String)>> =
        start.iter().map(|&(p, _)| (p, Vec::new())).collect();
    let mut at_end = BTreeSet::new();
    let deadline = Instant::now() + WAIT;
    while at_end.len() < start.len() {
        assert!(
            Instant::now() < deadline,
            "{isolation} read of {topic}: only partitions {at_end:?} reached their end within \
             {WAIT:?}; read so far {out:?}"
        );
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("{isolation} read of {topic}: {e}"),
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                out.entry(m.partition())
                    .or_default()
                    .push((m.offset(), value));
            }
        }
    }
    out
}

/// [`read_from`] the start of partitions `0..partitions`.
fn read_all(
    addr: SocketAddr,
    topic: &str,
    partitions: i32,
    isolation: &str,
) -> BTreeMap<i32, Vec<(i64, String)>> {
    let start: Vec<(i32, i64)> = (0..partitions).map(|p| (p, 0)).collect();
    read_from(addr, topic, &start, isolation)
}

/// The values of one partition's records, in order.
fn vals(read: &BTreeMap<i32, Vec<(i64, String)>>, partition: i32) -> Vec<String> {
    read[&partition].iter().map(|(_, v)| v.clone()).collect()
}

/// The offsets of one partition's records, in order.
fn offs(read: &BTreeMap<i32, Vec<(i64, String)>>, partition: i32) -> Vec<i64> {
    read[&partition].iter().map(|(o, _)| *o).collect()
}

/// ListOffsets through librdkafka with `isolation`: (log start, end), the end being the last
/// stable offset for `read_committed` and the high watermark for `read_uncommitted`.
fn watermarks(addr: SocketAddr, topic: &str, partition: i32, isolation: &str) -> (i64, i64) {
    reader(addr, isolation)
        .fetch_watermarks(topic, partition, WAIT)
        .unwrap_or_else(|e| panic!("ListOffsets {isolation} {topic}/{partition}: {e}"))
}

/// Polls ListOffsets until `read_committed`'s end equals `read_uncommitted`'s (no transaction
/// is open on the partition), failing with `what` after [`WAIT`]; returns that end.
fn wait_until_stable(addr: SocketAddr, topic: &str, partition: i32, what: &str) -> i64 {
    let deadline = Instant::now() + WAIT;
    let committed = reader(addr, "read_committed");
    let uncommitted = reader(addr, "read_uncommitted");
    loop {
        let (_, lso) = committed.fetch_watermarks(topic, partition, WAIT).unwrap();
        let (_, hwm) = uncommitted
            .fetch_watermarks(topic, partition, WAIT)
            .unwrap();
        if lso == hwm {
            return lso;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {topic}/{partition} still has last stable offset {lso} below the high \
             watermark {hwm} after {WAIT:?}"
        );
        // Polling interval of a bounded wait, not synchronisation.
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The offsets `group` has committed for `topic`'s partitions `0..partitions` (`None`: none),
/// as a `read_uncommitted` consumer asks for them (OffsetFetch without `require_stable`, so a
/// pending transactional commit does not hold the answer).
fn committed(addr: SocketAddr, group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
    let consumer: BaseConsumer = client(addr)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_uncommitted")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = consumer
        .committed_offsets(tpl, WAIT)
        .unwrap_or_else(|e| panic!("committed offsets of {group}: {e}"));
    got.elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        })
        .collect()
}

/// The transactional API's error, checked to be the fatal "fenced" error librdkafka reports
/// when the coordinator answers PRODUCER_FENCED or INVALID_PRODUCER_EPOCH.
fn assert_fenced(result: Result<(), KafkaError>, what: &str) {
    match result {
        Ok(()) => panic!("{what} succeeded; a fenced producer must fail"),
        Err(KafkaError::Transaction(e)) => {
            assert!(e.is_fatal(), "{what}: {e} is not fatal, but fencing is");
            assert!(
                matches!(
                    e.code(),
                    RDKafkaErrorCode::Fenced
                        | RDKafkaErrorCode::ProducerFenced
                        | RDKafkaErrorCode::InvalidProducerEpoch
                ),
                "{what}: {e} ({:?}), want the fenced error",
                e.code()
            );
        }
        Err(e) => panic!("{what}: {e}, want a fatal transaction error (fenced)"),
    }
}

// ---------------------------------------------------------------------------------------------
// librdkafka's transactional producer
// ---------------------------------------------------------------------------------------------

/// Three transactions across two partitions: committed, aborted, committed. `read_committed`
/// gets the two committed ones only, `read_uncommitted` all three; each marker takes one offset
/// (A 0..19, marker 20, B 21..30, marker 31, C 32..36, marker 37), and ListOffsets gives 38 for
/// both isolation levels once nothing is open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdkafka_read_committed_gets_committed_transactions_and_skips_aborted_ones() {
    let server = TestServer::start().await;
    let addr = server.kafka_addr;
    server.create_kafka_topic("txn-vis", 2).await;
    let producer = blocking(|| txn_producer(addr, "txn-vis", Duration::from_secs(30)));
    let plan = [
        ("A", 20, true, 0..20),
        ("B", 10, false, 21..31),
        ("C", 5, true, 32..37),
    ];
    for (tag, n, commit, at) in plan.clone() {
        producer.begin_transaction().unwrap();
        for p in 0..2 {
            let got = send(&producer, "txn-vis", p, &values(tag, p, n)).await;
            assert_eq!(
                got,
                offsets(at.clone()),
                "offsets of transaction {tag} in partition {p}"
            );
        }
        if commit {
            blocking(|| producer.commit_transaction(WAIT)).unwrap();
        } else {
            blocking(|| producer.abort_transaction(WAIT)).unwrap();
        }
    }
    let committed_read = blocking(|| read_all(addr, "txn-vis", 2, "read_committed"));
    let uncommitted_read = blocking(|| read_all(addr, "txn-vis", 2, "read_uncommitted"));
    for p in 0..2 {
        let want: Vec<String> = [values("A", p, 20), values("C", p, 5)].concat();
        assert_eq!(
            vals(&committed_read, p),
            want,
            "read_committed, partition {p}"
        );
        assert_eq!(
            offs(&committed_read, p),
            [offsets(0..20), offsets(32..37)].concat(),
            "read_committed offsets, partition {p}"
        );
        let want: Vec<String> =
            [values("A", p, 20), values("B", p, 10), values("C", p, 5)].concat();
        assert_eq!(
            vals(&uncommitted_read, p),
            want,
            "read_uncommitted, partition {p}"
        );
        for isolation in ["read_committed", "read_uncommitted"] {
            assert_eq!(
                blocking(|| watermarks(addr, "txn-vis", p, isolation)),
                (0, 38),
                "ListOffsets {isolation}, partition {p}: three records sets and three markers"
            );
        }
    }
}

/// An open transaction holds `read_committed` readers at its first offset (the last stable
/// offset), also for records other producers write after it; committing releases them all, and
/// an aborted transaction's records are skipped while a plain producer's records written in
/// the middle of it are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdkafka_open_transaction_holds_read_committed_at_its_first_offset() {
    let server = TestServer::start().await;
    let addr = server.kafka_addr;
    server.create_kafka_topic("txn-lso", 1).await;
    let plain = plain_producer(addr);
    let txn = blocking(|| txn_producer(addr, "txn-lso", Duration::from_secs(30)));

    assert_eq!(
        send(&plain, "txn-lso", 0, &values("before", 0, 3)).await,
        offsets(0..3)
    );
    txn.begin_transaction().unwrap();
    assert_eq!(
        send(&txn, "txn-lso", 0, &values("open", 0, 4)).await,
        offsets(3..7)
    );
    assert_eq!(
        send(&plain, "txn-lso", 0, &values("after", 0, 2)).await,
        offsets(7..9)
    );

    assert_eq!(
        blocking(|| watermarks(addr, "txn-lso", 0, "read_committed")),
        (0, 3),
        "ListOffsets read_committed while the transaction at 3 is open: its first offset"
    );
    assert_eq!(
        blocking(|| watermarks(addr, "txn-lso", 0, "read_uncommitted")),
        (0, 9)
    );
    let held = blocking(|| read_all(addr, "txn-lso", 1, "read_committed"));
    assert_eq!(
        vals(&held, 0),
        values("before", 0, 3),
        "read_committed stops at the open transaction"
    );
    let all = blocking(|| read_all(addr, "txn-lso", 1, "read_uncommitted"));
    let want = [
        values("before", 0, 3),
        values("open", 0, 4),
        values("after", 0, 2),
    ]
    .concat();
    assert_eq!(
        vals(&all, 0),
        want,
        "read_uncommitted reads past an open transaction"
    );

    blocking(|| txn.commit_transaction(WAIT)).unwrap();
    assert_eq!(
        blocking(|| watermarks(addr, "txn-lso", 0, "read_committed")),
        (0, 10)
    );
    let released = blocking(|| read_all(addr, "txn-lso", 1, "read_committed"));
    assert_eq!(
        vals(&released, 0),
        want,
        "read_committed after the commit (marker at 9)"
    );
    assert_eq!(offs(&released, 0), offsets(0..9));

    // Aborted: 10..12 skipped, the plain record at 12 kept, the marker at 13.
    txn.begin_transaction().unwrap();
    assert_eq!(
        send(&txn, "txn-lso", 0, &values("aborted", 0, 2)).await,
        offsets(10..12)
    );
    assert_eq!(
        send(&plain, "txn-lso", 0, &values("between", 0, 1)).await,
        offsets(12..13)
    );
    blocking(|| txn.abort_transaction(WAIT)).unwrap();
    let tail = blocking(|| read_from(addr, "txn-lso", &[(0, 10)], "read_committed"));
    assert_eq!(
        tail[&0],
        vec![(12, "between-0-0".to_string())],
        "read_committed from 10"
    );
    let tail = blocking(|| read_from(addr, "txn-lso", &[(0, 10)], "read_uncommitted"));
    assert_eq!(offs(&tail, 0), vec![10, 11, 12], "read_uncommitted from 10");
    assert_eq!(
        blocking(|| watermarks(addr, "txn-lso", 0, "read_committed")),
        (0, 14)
    );
}

/// Offsets sent with `send_offsets_to_transaction` count only when the transaction commits:
/// an aborted one leaves the group's offsets as they were, an open one is not visible to
/// OffsetFetch (and with `require_stable`, OffsetFetch v7+ answers UNSTABLE_OFFSET_COMMIT for
/// the partition, as Kafka), a committed one is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdkafka_offsets_sent_in_a_transaction_count_only_when_it_commits() {
    let server = TestServer::start().await;
    let addr = server.kafka_addr;
    server.create_kafka_topic("txn-offs-in", 1).await;
    server.create_kafka_topic("txn-offs-out", 1).await;
    let group = "txn-offs-group";
    let plain = plain_producer(addr);
    send(&plain, "txn-offs-in", 0, &values("in", 0, 10)).await;
    let consumer: BaseConsumer = client(addr)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = consumer
        .group_metadata()
        .expect("a consumer with a group id has metadata");
    let txn = blocking(|| txn_producer(addr, "txn-offs", Duration::from_secs(30)));
    let offsets_at = |o: i64| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("txn-offs-in", 0, Offset::Offset(o))
            .unwrap();
        tpl
    };

    txn.begin_transaction().unwrap();
    send(&txn, "txn-offs-out", 0, &values("out", 0, 4)).await;
    blocking(|| txn.send_offsets_to_transaction(&offsets_at(4), &metadata, WAIT)).unwrap();
    blocking(|| txn.abort_transaction(WAIT)).unwrap();
    assert_eq!(
        blocking(|| committed(addr, group, "txn-offs-in", 1)),
        vec![None],
        "offsets of an aborted transaction"
    );

    txn.begin_transaction().unwrap();
    send(&txn, "txn-offs-out", 0, &values("out", 0, 7)).await;
    blocking(|| txn.send_offsets_to_transaction(&offsets_at(7), &metadata, WAIT)).unwrap();
    assert_eq!(
        blocking(|| committed(addr, group, "txn-offs-in", 1)),
        vec![None],
        "offsets of an open transaction"
    );
    let mut wire = KafkaWire::open(addr).await;
    let fetch = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("txn-offs-group")))
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("txn-offs-in")))
                .with_partition_indexes(vec![0]),
        ]))
        .with_require_stable(true);
    let answer: OffsetFetchResponse = wire.call(ApiKey::OffsetFetch, 7, &fetch).await;
    assert_eq!(
        answer.topics[0].partitions[0].error_code, 88,
        "OffsetFetch v7 require_stable with a pending transactional commit: UNSTABLE_OFFSET_COMMIT"
    );

    blocking(|| txn.commit_transaction(WAIT)).unwrap();
    assert_eq!(
        blocking(|| committed(addr, group, "txn-offs-in", 1)),
        vec![Some(7)]
    );
    let answer: OffsetFetchResponse = wire.call(ApiKey::OffsetFetch, 7, &fetch).await;
    let part = &answer.topics[0].partitions[0];
    assert_eq!(
        (part.error_code, part.committed_offset),
        (0, 7),
        "require_stable after the commit"
    );
}

/// Zombie fencing: a second producer with the same transactional id aborts the first one's open
/// transaction; the first (the zombie) can neither write nor commit any more (a fatal fenced
/// error), and only the second one's records are committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdkafka_second_producer_of_a_transactional_id_fences_the_first() {
    let server = TestServer::start().await;
    let addr = server.kafka_addr;
    server.create_kafka_topic("txn-zombie", 1).await;
    let zombie = blocking(|| txn_producer(addr, "txn-zombie", Duration::from_secs(30)));
    zombie.begin_transaction().unwrap();
    assert_eq!(
        send(&zombie, "txn-zombie", 0, &values("zombie", 0, 5)).await,
        offsets(0..5)
    );

    // Its InitProducerId aborts the zombie's transaction (marker at 5) and bumps the epoch.
    let successor = blocking(|| txn_producer(addr, "txn-zombie", Duration::from_secs(30)));
    let late = try_send(&zombie, "txn-zombie", 0, &values("late", 0, 1)).await;
    assert!(
        late[0].is_err(),
        "a fenced producer's record was stored at {:?}",
        late[0]
    );
    assert_fenced(
        blocking(|| zombie.commit_transaction(WAIT)),
        "the zombie's commit",
    );

    successor.begin_transaction().unwrap();
    assert_eq!(
        send(&successor, "txn-zombie", 0, &values("successor", 0, 3)).await,
        offsets(6..9)
    );
    blocking(|| successor.commit_transaction(WAIT)).unwrap();

    let committed_read = blocking(|| read_all(addr, "txn-zombie", 1, "read_committed"));
    assert_eq!(vals(&committed_read, 0), values("successor", 0, 3));
    let uncommitted_read = blocking(|| read_all(addr, "txn-zombie", 1, "read_uncommitted"));
    assert_eq!(
        vals(&uncommitted_read, 0),
        [values("zombie", 0, 5), values("successor", 0, 3)].concat(),
        "the zombie's records are there (aborted), its late record is not"
    );
}

/// A transaction left open past its `transaction.timeout.ms` (2 s) is aborted by the
/// coordinator (cleanup interval 100 ms), which bumps the epoch: the producer is fenced, its
/// records are never read by `read_committed`, and a new producer of the id works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdkafka_transaction_past_its_timeout_is_aborted_and_its_producer_fenced() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::start_config(short_cleanup_config(data.path())).await;
    let addr = server.kafka_addr;
    server.create_kafka_topic("txn-expire", 1).await;
    let timeout = Duration::from_secs(2);
    let slow = blocking(|| txn_producer(addr, "txn-expire", timeout));
    slow.begin_transaction().unwrap();
    let started = Instant::now();
    assert_eq!(
        send(&slow, "txn-expire", 0, &values("slow", 0, 3)).await,
        offsets(0..3)
    );
    let (_, lso) = blocking(|| watermarks(addr, "txn-expire", 0, "read_committed"));
    if started.elapsed() < timeout / 2 {
        assert_eq!(lso, 0, "aborted before its timeout");
    }
    let end = blocking(|| {
        wait_until_stable(
            addr,
            "txn-expire",
            0,
            "a transaction past its 2 s timeout is aborted",
        )
    });
    assert_eq!(end, 4, "three records and the abort marker");
    assert_fenced(
        blocking(|| slow.commit_transaction(WAIT)),
        "commit after the timeout abort",
    );
    let read = blocking(|| read_all(addr, "txn-expire", 1, "read_committed"));
    assert!(
        read[&0].is_empty(),
        "read_committed got records of a timed-out transaction: {read:?}"
    );

    let next = blocking(|| txn_producer(addr, "txn-expire", timeout));
    next.begin_transaction().unwrap();
    send(&next, "txn-expire", 0, &values("next", 0, 2)).await;
    blocking(|| next.commit_transaction(WAIT)).unwrap();
    let read = blocking(|| read_all(addr, "txn-expire", 1, "read_committed"));
    assert_eq!(vals(&read, 0), values("next", 0, 2));
}

// ---------------------------------------------------------------------------------------------
// confluent-kafka and kafka-python
// ---------------------------------------------------------------------------------------------

/// Longest a transactional client program may run.
const PROGRAM_LIMIT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_python_transactions() {
    let server = TestServer::start().await;
    let addr = server.kafka_addr.to_string();
    let python = client_programs::python();
    client_programs::run("confluent_kafka_txn.py", &python, &addr, &[], PROGRAM_LIMIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_transactions() {
    let server = TestServer::start().await;
    let addr = server.kafka_addr.to_string();
    let python = client_programs::python();
    client_programs::run("kafka_python_txn.py", &python, &addr, &[], PROGRAM_LIMIT).await;
}

// ---------------------------------------------------------------------------------------------
// A consume-transform-produce loop killed at random points
// ---------------------------------------------------------------------------------------------

fn seed() -> u64 {
    seed_from_env("WHARF_TXN_SEED", 0x16_7A_11_5E)
}

/// One run of `ctp_confluent_kafka.py`: its stdout lines as they come, its stderr in a file.
struct Loop {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    stderr: tempfile::NamedTempFile,
    seen: Vec<String>,
}

const CTP_INPUT: &str = "ctp-in";
const CTP_OUTPUT: &str = "ctp-out";
const CTP_GROUP: &str = "ctp-group";
const CTP_PARTITIONS: i32 = 3;
const CTP_PER_PARTITION: usize = 500;
/// Records per transaction of the loop.
const CTP_PER_TXN: &str = "25";
/// How many times the loop is killed before it is let finish.
const CTP_KILLS: usize = 20;

impl Loop {
    fn start(addr: SocketAddr) -> Loop {
        let script =
            client_programs::repo().join("compat-tests/kafka-clients/ctp_confluent_kafka.py");
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new(client_programs::python())
            .arg(script)
            .args([
                &addr.to_string(),
                CTP_INPUT,
                CTP_OUTPUT,
                CTP_GROUP,
                "ctp-txn",
                CTP_PER_TXN,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr.reopen().unwrap()))
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Loop {
            child,
            lines,
            stderr,
            seen: Vec::new(),
        }
    }

    fn output(&self) -> String {
        let err = std::fs::read_to_string(self.stderr.path()).unwrap_or_default();
        format!("stdout:\n{}\nstderr:\n{err}", self.seen.join("\n"))
    }

    /// Reads lines until one equals `target` (true) or the program ends having printed DONE
    /// (false: it had no more input before reaching `target`); fails the test otherwise.
    fn wait_for(&mut self, target: &str) -> bool {
        let deadline = Instant::now() + WAIT;
        loop {
            // A read blocks, so the bound below is checked per line; a program that stops
            // printing is ended by its own watchdog (120 s), which ends the read.
            match self.lines.next() {
                Some(Ok(line)) => {
                    let hit = line == target;
                    self.seen.push(line);
                    if hit {
                        return true;
                    }
                }
                Some(Err(e)) => panic!("reading the loop's output: {e}"),
                None => {
                    let status = self.child.wait().unwrap();
                    assert!(
                        status.success() && self.seen.last().map(String::as_str) == Some("DONE"),
                        "the loop ended ({status}) before printing {target:?}:\n{}",
                        self.output()
                    );
                    return false;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the loop did not print {target:?} within {WAIT:?}:\n{}",
                self.output()
            );
        }
    }

    /// SIGKILL: no abort, no flush, no close.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Loop {
    /// A failed test leaves no loop running (a finished or killed one is already reaped).
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A consume-transform-produce loop (confluent-kafka, `send_offsets_to_transaction`, one
/// transactional id) is SIGKILLed at 20 seeded random points (during init, after begin, after
/// producing, after sending offsets, while committing, after committing), restarted each time,
/// then let finish: a `read_committed` consumer of the output sees every input record
/// transformed exactly once, in input order per partition, and the group's committed offsets
/// are the input's end offsets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_transform_produce_killed_at_random_points_outputs_each_record_exactly_once() {
    let server = TestServer::start().await;
    let addr = server.kafka_addr;
    server.create_kafka_topic(CTP_INPUT, CTP_PARTITIONS).await;
    server.create_kafka_topic(CTP_OUTPUT, CTP_PARTITIONS).await;
    let plain = plain_producer(addr);
    let mut input: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for p in 0..CTP_PARTITIONS {
        let vs: Vec<String> = (0..CTP_PER_PARTITION)
            .map(|i| format!("in-{}", p as usize * CTP_PER_PARTITION + i))
            .collect();
        send(&plain, CTP_INPUT, p, &vs).await;
        input.insert(p, vs);
    }

    let seed = seed();
    println!("consume-transform-produce kill seed {seed} (WHARF_TXN_SEED replays it)");
    let mut rng = Rng(seed);
    let phases = ["BEGIN", "PRODUCED", "OFFSETS", "COMMIT", "COMMITTED"];
    let mut kills = Vec::new();
    blocking(|| {
        for _ in 0..CTP_KILLS {
            let target = match rng.below(phases.len() as u64 + 1) as usize {
                0 => "INIT".to_string(),
                i => format!("{} {}", phases[i - 1], 1 + rng.below(2)),
            };
            let mut run = Loop::start(addr);
            if run.wait_for(&target) {
                run.kill();
                kills.push(target);
            } else {
                kills.push(format!("{target} (not reached: input done)"));
            }
        }
        let mut last = Loop::start(addr);
        assert!(
            !last.wait_for("never printed"),
            "the last run must end by itself"
        );
        println!("kill points: {kills:?}");
    });

    let out = blocking(|| read_all(addr, CTP_OUTPUT, CTP_PARTITIONS, "read_committed"));
    let raw = blocking(|| read_all(addr, CTP_OUTPUT, CTP_PARTITIONS, "read_uncommitted"));
    let mut seen = BTreeSet::new();
    for p in 0..CTP_PARTITIONS {
        let want: Vec<String> = input[&p]
            .iter()
            .map(|v| v.replacen("in-", "out-", 1))
            .collect();
        let got = vals(&out, p);
        for v in &got {
            assert!(seen.insert(v.clone()), "{v} read twice by read_committed");
        }
        if got != want {
            let missing: Vec<_> = want.iter().filter(|v| !got.contains(v)).take(10).collect();
            panic!(
                "partition {p}: read_committed got {} records, want {} (each input once, in \
                 order); first missing {missing:?}; kill points {kills:?}",
                got.len(),
                want.len()
            );
        }
    }
    let aborted: usize = (0..CTP_PARTITIONS)
        .map(|p| raw[&p].len() - out[&p].len())
        .sum();
    println!("records of aborted transactions in the output (read_uncommitted only): {aborted}");
    let ends = vec![Some(CTP_PER_PARTITION as i64); CTP_PARTITIONS as usize];
    assert_eq!(
        blocking(|| committed(addr, CTP_GROUP, CTP_INPUT, CTP_PARTITIONS)),
        ends,
        "the group's committed offsets are the input's end offsets"
    );
}

// ---------------------------------------------------------------------------------------------
// A server SIGKILLed in the middle of transactions
// ---------------------------------------------------------------------------------------------

/// Set (to a data directory) when this test binary runs as the server process of
/// [`server_sigkill_mid_transactions_keeps_committed_ones_and_aborts_open_ones_on_timeout`].
const SERVER_DIR_VAR: &str = "WHARF_TXN_SERVER_DIR";

/// The server of the SIGKILL test, as a process of its own so the kill is real: started by the
/// test with [`SERVER_DIR_VAR`] set, it prints its Kafka address and serves until killed (or
/// until its standard input closes, should the test itself die). Without the variable (a plain
/// `--ignored` run) it does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the server process of the server SIGKILL test, which starts it"]
async fn txn_server_process() {
    let Some(dir) = std::env::var_os(SERVER_DIR_VAR) else {
        return;
    };
    child_server::serve_as_child_process(short_cleanup_config(Path::new(&dir))).await;
}

/// Starts [`txn_server_process`] on `dir`; returns it and its Kafka address.
fn spawn_server_process(dir: &Path) -> (Child, SocketAddr) {
    child_server::spawn("txn_server_process", SERVER_DIR_VAR, dir)
}

/// Creates `name` with `partitions` partitions on the server at `addr` (a server process).
async fn create_topic(addr: SocketAddr, name: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = client(addr).create().unwrap();
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

/// A server SIGKILLed with committed transactions (records and group offsets) and an open one
/// (records, a plain producer's records behind it, pending offsets): after a restart the
/// committed ones are all there; the open one holds `read_committed` until its 3 s timeout
/// passes (measured from its start, across the restart), then is aborted: its records are never
/// read by `read_committed`, its offsets never committed, and the records behind it are
/// released. Both transactional ids work again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sigkill_mid_transactions_keeps_committed_ones_and_aborts_open_ones_on_timeout() {
    let data = tempfile::tempdir().unwrap();
    let (mut process, addr) = blocking(|| spawn_server_process(data.path()));
    let group = "crash-group";
    let topic = "txn-crash";
    create_topic(addr, topic, 2).await;
    let consumer: BaseConsumer = client(addr)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = consumer.group_metadata().unwrap();
    let offsets_at = |p: i32, o: i64| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, p, Offset::Offset(o))
            .unwrap();
        tpl
    };

    // Committed: 10 records in each partition (marker at 10), then offsets only.
    let done = blocking(|| txn_producer(addr, "crash-done", Duration::from_secs(30)));
    done.begin_transaction().unwrap();
    for p in 0..2 {
        assert_eq!(
            send(&done, topic, p, &values("done", p, 10)).await,
            offsets(0..10)
        );
    }
    blocking(|| done.commit_transaction(WAIT)).unwrap();
    done.begin_transaction().unwrap();
    blocking(|| done.send_offsets_to_transaction(&offsets_at(0, 3), &metadata, WAIT)).unwrap();
    blocking(|| done.commit_transaction(WAIT)).unwrap();

    // Open: 7 records in each partition (11..18) and offsets for partition 1; a plain record
    // behind it in partition 0 (18).
    let timeout = Duration::from_secs(3);
    let open = blocking(|| txn_producer(addr, "crash-open", timeout));
    open.begin_transaction().unwrap();
    let started = Instant::now();
    for p in 0..2 {
        assert_eq!(
            send(&open, topic, p, &values("open", p, 7)).await,
            offsets(11..18)
        );
    }
    blocking(|| open.send_offsets_to_transaction(&offsets_at(1, 5), &metadata, WAIT)).unwrap();
    let plain = plain_producer(addr);
    assert_eq!(
        send(&plain, topic, 0, &values("behind", 0, 1)).await,
        offsets(18..19)
    );

    process.kill().unwrap();
    process.wait().unwrap();
    // Their drops flush (bounded by librdkafka) against a dead server.
    blocking(|| drop((open, done, plain, consumer)));

    let server = TestServer::start_config(short_cleanup_config(data.path())).await;
    let addr = server.kafka_addr;
    if started.elapsed() < timeout / 2 {
        assert_eq!(
            blocking(|| watermarks(addr, topic, 0, "read_committed")),
            (0, 11),
            "right after the restart, the open transaction (not yet timed out) holds the LSO"
        );
    }
    for p in 0..2 {
        let end = blocking(|| {
            wait_until_stable(
                addr,
                topic,
                p,
                "the open transaction is aborted after its timeout",
            )
        });
        assert_eq!(
            end,
            if p == 0 { 20 } else { 19 },
            "partition {p}: the abort marker is last"
        );
    }
    let read = blocking(|| read_all(addr, topic, 2, "read_committed"));
    assert_eq!(
        vals(&read, 0),
        [values("done", 0, 10), values("behind", 0, 1)].concat()
    );
    assert_eq!(vals(&read, 1), values("done", 1, 10));
    let raw = blocking(|| read_all(addr, topic, 2, "read_uncommitted"));
    assert_eq!(
        vals(&raw, 1),
        [values("done", 1, 10), values("open", 1, 7)].concat(),
        "the open transaction's records were written before the kill"
    );
    assert_eq!(
        blocking(|| committed(addr, group, topic, 2)),
        vec![Some(3), None],
        "committed offsets survive the kill; the open transaction's never count"
    );

    for id in ["crash-done", "crash-open"] {
        let again = blocking(|| txn_producer(addr, id, Duration::from_secs(30)));
        again.begin_transaction().unwrap();
        send(&again, topic, 1, &values(id, 1, 1)).await;
        blocking(|| again.commit_transaction(WAIT)).unwrap();
    }
    let read = blocking(|| read_from(addr, topic, &[(1, 19)], "read_committed"));
    assert_eq!(
        vals(&read, 1),
        [values("crash-done", 1, 1), values("crash-open", 1, 1)].concat()
    );
}

/// What the commit loop of [`server_sigkill_during_commits_leaves_each_transaction_all_or_nothing`]
/// is doing, reported before each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Begun(u64),
    Sent(u64),
    Committing(u64),
    Committed(u64),
}

const ATOMIC_TOPIC: &str = "txn-atomic";
const ATOMIC_PARTITIONS: i32 = 3;

/// Transaction after transaction from `first` on, each writing `t<i>-p<p>` to every partition,
/// reporting each step, until a step fails (the server was killed) or the test stops listening;
/// returns the first transaction number it did not attempt.
fn commit_loop(producer: FutureProducer, first: u64, steps: std::sync::mpsc::Sender<Step>) -> u64 {
    let mut i = first;
    loop {
        if producer.begin_transaction().is_err() || steps.send(Step::Begun(i)).is_err() {
            return i + 1;
        }
        for p in 0..ATOMIC_PARTITIONS {
            let value = format!("t{i}-p{p}");
            let record = FutureRecord::<(), _>::to(ATOMIC_TOPIC)
                .partition(p)
                .payload(&value);
            // The commit flushes; its result is the one that counts.
            if producer.send_result(record).is_err() {
                return i + 1;
            }
        }
        if steps.send(Step::Sent(i)).is_err() || steps.send(Step::Committing(i)).is_err() {
            return i + 1;
        }
        // Short, so the loop ends soon after the server is killed.
        if producer.commit_transaction(Duration::from_secs(5)).is_err() {
            return i + 1;
        }
        if steps.send(Step::Committed(i)).is_err() {
            return i + 1;
        }
        i += 1;
    }
}

/// A server SIGKILLed three times at seeded points of a producer's stream of transactions
/// (each writing one record to each of 3 partitions), while a transaction is begun, sent or
/// being committed (the kill may land between the coordinator's prepare and its markers):
/// after each restart, once nothing is open, every transaction is all or nothing for
/// `read_committed` (all 3 records or none), and every one whose commit returned is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sigkill_during_commits_leaves_each_transaction_all_or_nothing() {
    let data = tempfile::tempdir().unwrap();
    let seed = seed() ^ 0xA70_41C;
    println!("server kill seed {seed} (WHARF_TXN_SEED replays it)");
    let mut rng = Rng(seed);
    let (mut process, mut addr) = blocking(|| spawn_server_process(data.path()));
    create_topic(addr, ATOMIC_TOPIC, ATOMIC_PARTITIONS).await;
    let mut next = 0u64;
    let mut returned = BTreeSet::new();
    let mut kills = Vec::new();
    for _round in 0..3 {
        let producer = blocking(|| txn_producer(addr, "txn-atomic", Duration::from_secs(3)));
        let (tx, rx) = std::sync::mpsc::channel();
        let first = next;
        let looping = std::thread::spawn(move || commit_loop(producer, first, tx));
        let at = first + 1 + rng.below(5);
        let target = match rng.below(3) {
            0 => Step::Begun(at),
            1 => Step::Sent(at),
            _ => Step::Committing(at),
        };
        blocking(|| loop {
            let step = rx
                .recv_timeout(WAIT)
                .unwrap_or_else(|e| panic!("the commit loop did not reach {target:?}: {e}"));
            if let Step::Committed(i) = step {
                returned.insert(i);
            }
            if step == target {
                break;
            }
        });
        process.kill().unwrap();
        process.wait().unwrap();
        kills.push(target);
        next = blocking(|| looping.join().unwrap());
        returned.extend(rx.try_iter().filter_map(|s| match s {
            Step::Committed(i) => Some(i),
            _ => None,
        }));

        (process, addr) = blocking(|| spawn_server_process(data.path()));
        for p in 0..ATOMIC_PARTITIONS {
            blocking(|| {
                wait_until_stable(addr, ATOMIC_TOPIC, p, "transactions open at the kill end")
            });
        }
        let read = blocking(|| read_all(addr, ATOMIC_TOPIC, ATOMIC_PARTITIONS, "read_committed"));
        let mut seen: BTreeMap<u64, BTreeSet<i32>> = BTreeMap::new();
        for (p, records) in &read {
            for (_, v) in records {
                let i = v
                    .strip_prefix('t')
                    .and_then(|r| r.split_once("-p"))
                    .and_then(|(i, q)| Some((i.parse::<u64>().ok()?, q.parse::<i32>().ok()?)))
                    .filter(|&(_, q)| q == *p)
                    .unwrap_or_else(|| panic!("unexpected record {v:?} in partition {p}"))
                    .0;
                assert!(
                    seen.entry(i).or_default().insert(*p),
                    "t{i} twice in partition {p}"
                );
            }
        }
        for (i, partitions) in &seen {
            assert_eq!(
                partitions.len(),
                ATOMIC_PARTITIONS as usize,
                "transaction t{i} is visible in partitions {partitions:?} only (kills at {kills:?})"
            );
        }
        let lost: Vec<_> = returned.iter().filter(|i| !seen.contains_key(i)).collect();
        assert!(
            lost.is_empty(),
            "committed transactions {lost:?} are gone (kills at {kills:?})"
        );
    }
    println!(
        "kills at {kills:?}; {} transactions attempted, {} commits returned",
        next,
        returned.len()
    );
    drop(process);
}
