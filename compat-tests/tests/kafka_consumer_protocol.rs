//! KIP-848's consumer group protocol against a real server: librdkafka (the `rdkafka` crate,
//! librdkafka 2.12) with `group.protocol=consumer` consuming while members join and leave,
//! partitions moving incrementally (a member keeps what it is not asked to give up), commits
//! resuming exactly; ConsumerGroupHeartbeat and ConsumerGroupDescribe at every advertised
//! version on the wire with Kafka's error codes; regex subscriptions, static membership,
//! ListGroups v5's type filter.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use compat_tests::{KafkaWire, TestServer, WAIT};
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions as OwnedPartitions;
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse,
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId, ListGroupsRequest,
    ListGroupsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

/// Kafka's error codes these tests expect.
mod code {
    pub const NONE: i16 = 0;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_REQUEST: i16 = 42;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const FENCED_MEMBER_EPOCH: i16 = 110;
    pub const UNRELEASED_INSTANCE_ID: i16 = 111;
    pub const UNSUPPORTED_ASSIGNOR: i16 = 112;
    pub const STALE_MEMBER_EPOCH: i16 = 113;
    pub const INVALID_REGULAR_EXPRESSION: i16 = 128;
}

/// A server whose consumer groups heartbeat every 300 ms (Kafka's floor is 5 s; tests need
/// rebalances to go quicker, and nothing here depends on the interval's length).
async fn server() -> TestServer {
    TestServer::start_with(|c| {
        let consumer = &mut c.kafka.groups.consumer;
        consumer.heartbeat_interval = Duration::from_millis(300);
        consumer.min_heartbeat_interval = Duration::from_millis(300);
    })
    .await
}

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

/// Produces `per_partition` records to each partition; returns their (partition, offset).
async fn produce(
    server: &TestServer,
    topic: &str,
    partitions: i32,
    per_partition: usize,
) -> BTreeSet<(i32, i64)> {
    let producer: FutureProducer = server.kafka_config().create().unwrap();
    let mut out = BTreeSet::new();
    for i in 0..per_partition {
        for p in 0..partitions {
            let value = format!("p{p} n{i}");
            let record = FutureRecord::<(), _>::to(topic).partition(p).payload(&value);
            let delivered = tokio::time::timeout(WAIT, producer.send(record, WAIT))
                .await
                .expect("delivery in time")
                .map_err(|(e, _)| e)
                .unwrap();
            out.insert((delivered.partition, delivered.offset));
        }
    }
    out
}

/// What a member thread saw.
#[derive(Default)]
struct Seen {
    /// Its assignment each time it changed, in order.
    assignments: Vec<BTreeSet<i32>>,
    /// Every record it consumed (and committed, synchronously, before polling again).
    records: Vec<(i32, i64)>,
    /// The first offset it consumed per partition.
    first: BTreeMap<i32, i64>,
}

/// A librdkafka consumer with `group.protocol=consumer`, polling on its own thread.
struct Member {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Member {
    fn start(server: &TestServer, group: &str, subscription: &str, extra: &[(&str, &str)]) -> Member {
        let mut config = server.kafka_config();
        config
            .set("group.id", group)
            .set("group.protocol", "consumer")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest");
        for (k, v) in extra {
            config.set(*k, *v);
        }
        let consumer: BaseConsumer = config.create().unwrap();
        consumer.subscribe(&[subscription]).unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (Arc::clone(&seen), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let message = consumer.poll(Duration::from_millis(50));
                let assignment: BTreeSet<i32> = consumer
                    .assignment()
                    .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
                    .unwrap_or_default();
                {
                    let mut seen = seen2.lock().unwrap();
                    if seen.assignments.last() != Some(&assignment) {
                        seen.assignments.push(assignment);
                    }
                }
                if let Some(Ok(m)) = message {
                    let (p, o) = (m.partition(), m.offset());
                    consumer.commit_message(&m, CommitMode::Sync).unwrap();
                    let mut seen = seen2.lock().unwrap();
                    seen.records.push((p, o));
                    seen.first.entry(p).or_insert(o);
                }
            }
            // Leaves the group (heartbeat with epoch -1) as it closes.
            consumer.unsubscribe();
            drop(consumer);
        });
        Member {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn assignment(&self) -> BTreeSet<i32> {
        self.seen
            .lock()
            .unwrap()
            .assignments
            .last()
            .cloned()
            .unwrap_or_default()
    }

    fn records(&self) -> Vec<(i32, i64)> {
        self.seen.lock().unwrap().records.clone()
    }

    fn history(&self) -> Vec<BTreeSet<i32>> {
        self.seen.lock().unwrap().assignments.clone()
    }

    fn first_offsets(&self) -> BTreeMap<i32, i64> {
        self.seen.lock().unwrap().first.clone()
    }

    async fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            tokio::task::spawn_blocking(move || t.join().unwrap())
                .await
                .unwrap();
        }
    }
}

/// Polls `cond` until it holds, failing with `what` (and `state()`) after [`WAIT`].
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool, state: impl Fn() -> String) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out after {WAIT:?}: {what}; {}", state());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn all(n: i32) -> BTreeSet<i32> {
    (0..n).collect()
}

fn consumed(members: &[&Member]) -> Vec<(i32, i64)> {
    members.iter().flat_map(|m| m.records()).collect()
}

/// Members join and leave one at a time; each rebalance only moves what it must (a member
/// that keeps partitions never loses all of them in between), nothing is consumed twice or
/// lost, and a new member resumes exactly at the committed offsets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_members_join_and_leave_with_incremental_moves_and_exact_commits() {
    const PARTITIONS: i32 = 6;
    let server = server().await;
    let topic = "kip848-moves";
    server.create_kafka_topic(topic, PARTITIONS).await;
    let mut produced = produce(&server, topic, PARTITIONS, 5).await;

    let mut a = Member::start(&server, "g1", topic, &[]);
    wait_until(
        "the first member gets every partition and reads everything",
        || a.assignment() == all(PARTITIONS) && a.records().len() == produced.len(),
        || format!("{:?} {}", a.history(), a.records().len()),
    )
    .await;

    let mut b = Member::start(&server, "g1", topic, &[]);
    wait_until(
        "a second member gets a share",
        || {
            let (x, y) = (a.assignment(), b.assignment());
            !y.is_empty() && x.is_disjoint(&y) && &x | &y == all(PARTITIONS) && x.len() == 3
        },
        || format!("a {:?} b {:?}", a.history(), b.history()),
    )
    .await;
    // Incremental: from holding all six, a only ever shrinks towards what it keeps.
    let kept = a.assignment();
    let since_full: Vec<BTreeSet<i32>> = a
        .history()
        .into_iter()
        .skip_while(|s| *s != all(PARTITIONS))
        .collect();
    assert!(
        since_full.iter().all(|s| s.is_superset(&kept)),
        "a gave up a partition it kept: {since_full:?}"
    );

    produced.extend(produce(&server, topic, PARTITIONS, 5).await);
    let mut c = Member::start(&server, "g1", topic, &[]);
    wait_until(
        "three members share six partitions two by two",
        || [&a, &b, &c].iter().all(|m| m.assignment().len() == 2),
        || format!("a {:?} b {:?} c {:?}", a.history(), b.history(), c.history()),
    )
    .await;
    wait_until(
        "everything produced so far is consumed",
        || consumed(&[&a, &b, &c]).len() >= produced.len(),
        || format!("{} of {}", consumed(&[&a, &b, &c]).len(), produced.len()),
    )
    .await;

    // b leaves: its partitions go to a and c, who keep theirs.
    let (a_before, c_before) = (a.assignment(), c.assignment());
    b.stop().await;
    wait_until(
        "the two that stay take over the leaver's partitions",
        || &a.assignment() | &c.assignment() == all(PARTITIONS),
        || format!("a {:?} c {:?}", a.history(), c.history()),
    )
    .await;
    assert!(a.assignment().is_superset(&a_before) && c.assignment().is_superset(&c_before));

    produced.extend(produce(&server, topic, PARTITIONS, 5).await);
    wait_until(
        "everything consumed after the leave",
        || {
            let got: BTreeSet<(i32, i64)> = consumed(&[&a, &b, &c]).into_iter().collect();
            got == produced
        },
        || format!("{} of {}", consumed(&[&a, &b, &c]).len(), produced.len()),
    )
    .await;
    // Each record was committed before the next poll and partitions are revoked before
    // they are handed on, so nothing was read twice.
    let every = consumed(&[&a, &b, &c]);
    assert_eq!(every.len(), produced.len(), "a record was consumed twice");
    a.stop().await;
    c.stop().await;

    // A newcomer resumes exactly where the group committed: it reads only what came after.
    let fresh = produce(&server, topic, PARTITIONS, 3).await;
    let mut d = Member::start(&server, "g1", topic, &[]);
    wait_until(
        "the newcomer reads the new records",
        || d.records().len() >= fresh.len(),
        || format!("{:?}", d.records()),
    )
    .await;
    let got: BTreeSet<(i32, i64)> = d.records().into_iter().collect();
    assert_eq!(got, fresh, "resumed exactly at the committed offsets");
    for (p, first) in d.first_offsets() {
        let next = produced.iter().filter(|(q, _)| *q == p).map(|(_, o)| o + 1).max();
        assert_eq!(Some(first), next, "partition {p} resumed at its commit");
    }
    d.stop().await;
}
