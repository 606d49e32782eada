//! Kafka consumer groups with librdkafka (the `rdkafka` crate) against a real server: members
//! split a topic, a newcomer gets its share, a killed member's partitions move after its
//! session times out, no message is lost, and committed offsets survive a restart.
//!
//! Members that may be killed run as processes of their own (`kafka-group-member`), so a kill
//! is a real crash: no LeaveGroup, no last commit.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use compat_tests::TestServer;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(60);
const PARTITIONS: i32 = 4;
/// Short, so a killed member is noticed quickly (the test server allows 1 s and up).
const SESSION_MS: &str = "3000";

/// Produces `per_partition` records to each partition; returns their (partition, offset).
async fn produce(
    producer: &FutureProducer,
    topic: &str,
    partitions: i32,
    per_partition: usize,
) -> BTreeSet<(i32, i64)> {
    let mut sent = Vec::new();
    for i in 0..per_partition {
        for p in 0..partitions {
            let value = format!("p{p} n{i}");
            let record = FutureRecord::<(), _>::to(topic)
                .partition(p)
                .payload(&value);
            sent.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
        }
    }
    let mut out = BTreeSet::new();
    for f in sent {
        let delivered = tokio::time::timeout(WAIT, f)
            .await
            .expect("delivery in time")
            .unwrap()
            .map_err(|(e, _)| e)
            .unwrap();
        out.insert((delivered.partition, delivered.offset));
    }
    out
}

/// Polls `cond` until it holds, failing with `what` after [`WAIT`].
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out after {WAIT:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `kafka-group-member` process and what it has printed so far.
struct Member {
    name: &'static str,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Member {
    fn spawn(
        server: &TestServer,
        name: &'static str,
        group: &str,
        topic: &str,
        assignor: &str,
    ) -> Member {
        Member::spawn_with(server, name, &[group, topic, assignor, SESSION_MS])
    }

    /// A static member (`group.instance.id` = `name`).
    fn spawn_static(
        server: &TestServer,
        name: &'static str,
        group: &str,
        topic: &str,
        session_ms: &str,
    ) -> Member {
        Member::spawn_with(server, name, &[group, topic, "range", session_ms, name])
    }

    fn spawn_with(server: &TestServer, name: &'static str, args: &[&str]) -> Member {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kafka-group-member"))
            .arg(server.kafka_addr.to_string())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        Member { name, child, lines }
    }

    /// Every assignment it reported, in order.
    fn assignments(&self) -> Vec<BTreeSet<i32>> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.strip_prefix("ASSIGNED "))
            .map(|list| list.split(',').filter_map(|p| p.parse().ok()).collect())
            .collect()
    }

    fn assignment(&self) -> BTreeSet<i32> {
        self.assignments().pop().unwrap_or_default()
    }

    fn consumed(&self) -> BTreeSet<(i32, i64)> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.strip_prefix("MSG "))
            .filter_map(|m| {
                let (p, o) = m.split_once(' ')?;
                Some((p.parse().ok()?, o.parse().ok()?))
            })
            .collect()
    }

    /// Crashes it: no LeaveGroup, no final commit.
    async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    /// Closes its input, so it leaves the group and exits.
    async fn close(mut self) {
        drop(self.child.stdin.take());
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not exit within {WAIT:?}", self.name))
            .unwrap();
        assert!(status.success(), "{} exited with {status}", self.name);
    }
}

/// True when the members' current assignments are non-empty, disjoint and cover the topic.
fn spread(members: &[&Member]) -> bool {
    let mut all = BTreeSet::new();
    for m in members {
        let a = m.assignment();
        if a.is_empty() || a.iter().any(|p| !all.insert(*p)) {
            return false;
        }
    }
    all == (0..PARTITIONS).collect()
}

fn consumed_by(members: &[&Member]) -> BTreeSet<(i32, i64)> {
    members.iter().flat_map(|m| m.consumed()).collect()
}

/// The group's committed offsets, read the way an application does (OffsetFetch).
fn committed(
    server: &TestServer,
    group: &str,
    topic: &str,
    partitions: i32,
) -> BTreeMap<i32, Offset> {
    let consumer: BaseConsumer = server
        .kafka_config()
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .map(|e| (e.partition(), e.offset()))
        .collect()
}

/// Two members split four partitions, a third joins and gets a share, one is killed and its
/// partitions move to the others after its session timeout; every message is consumed at
/// least once and the group's commits end at the log end.
async fn members_share_rebalance_and_take_over(assignor: &str) {
    let server = TestServer::start().await;
    let topic = format!("split-{assignor}");
    let group = format!("workers-{assignor}");
    server.create_kafka_topic(&topic, PARTITIONS).await;
    let producer: FutureProducer = server.kafka_config().create().unwrap();
    let mut produced = BTreeSet::new();

    let a = Member::spawn(&server, "a", &group, &topic, assignor);
    let b = Member::spawn(&server, "b", &group, &topic, assignor);
    wait_until("a and b split the partitions", || spread(&[&a, &b])).await;
    produced.extend(produce(&producer, &topic, PARTITIONS, 50).await);
    wait_until("a and b consume the first batch", || {
        consumed_by(&[&a, &b]).is_superset(&produced)
    })
    .await;

    let c = Member::spawn(&server, "c", &group, &topic, assignor);
    wait_until("a, b and c split the partitions", || spread(&[&a, &b, &c])).await;
    let batch = produce(&producer, &topic, PARTITIONS, 50).await;
    produced.extend(batch.iter().copied());
    wait_until("a, b and c consume the second batch", || {
        consumed_by(&[&a, &b, &c]).is_superset(&batch)
    })
    .await;
    for m in [&a, &b, &c] {
        assert!(
            m.consumed().iter().any(|r| batch.contains(r)),
            "{} got no message of the second batch",
            m.name
        );
    }
    if assignor == "cooperative-sticky" {
        // Incremental rebalancing: a and b kept some partitions throughout.
        for m in [&a, &b] {
            let history = m.assignments();
            let first = history.iter().position(|s| !s.is_empty()).unwrap();
            assert!(
                history[first..].iter().all(|s| !s.is_empty()),
                "{} lost all its partitions during a cooperative rebalance: {history:?}",
                m.name
            );
        }
    }

    let mut a = a;
    a.kill().await;
    let batch = produce(&producer, &topic, PARTITIONS, 50).await;
    produced.extend(batch.iter().copied());
    wait_until("b and c take over a's partitions", || spread(&[&b, &c])).await;
    wait_until("b and c consume the third batch", || {
        consumed_by(&[&b, &c]).is_superset(&batch)
    })
    .await;

    // At least once: every produced message was handed to some member.
    let consumed = consumed_by(&[&a, &b, &c]);
    let missing: Vec<_> = produced.difference(&consumed).collect();
    assert!(missing.is_empty(), "never consumed: {missing:?}");
    // Every partition's commit reaches the end of the log.
    let ends: BTreeMap<i32, Offset> = (0..PARTITIONS).map(|p| (p, Offset::Offset(150))).collect();
    let start = Instant::now();
    loop {
        let now = committed(&server, &group, &topic, PARTITIONS);
        if now == ends {
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "commits stop short of the log end: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.close().await;
    c.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_members_share_rebalance_and_take_over_a_killed_members_partitions() {
    members_share_rebalance_and_take_over("range").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_members_share_rebalance_and_take_over() {
    members_share_rebalance_and_take_over("cooperative-sticky").await;
}

/// Reads messages until `n` have arrived or [`WAIT`] passes.
fn poll_n(consumer: &BaseConsumer, n: usize) -> Vec<(i32, i64)> {
    let start = Instant::now();
    let mut got = Vec::new();
    while got.len() < n {
        assert!(
            start.elapsed() < WAIT,
            "only {} of {n} messages within {WAIT:?}",
            got.len()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            got.push((m.partition(), m.offset()));
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_a_restart_and_a_new_member_resumes_there() {
    let mut server = TestServer::start().await;
    server.create_kafka_topic("resume", 2).await;
    let producer: FutureProducer = server.kafka_config().create().unwrap();
    produce(&producer, "resume", 2, 100).await;
    drop(producer);

    let group_config = |server: &TestServer| {
        let mut c = server.kafka_config();
        c.set("group.id", "resumers")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", SESSION_MS);
        c
    };
    let first: BaseConsumer = group_config(&server).create().unwrap();
    first.subscribe(&["resume"]).unwrap();
    poll_n(&first, 200);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("resume", 0, Offset::Offset(40))
        .unwrap();
    tpl.add_partition_offset("resume", 1, Offset::Offset(60))
        .unwrap();
    first.commit(&tpl, CommitMode::Sync).unwrap();
    first.unsubscribe();
    drop(first);

    server.restart().await;
    let at = committed(&server, "resumers", "resume", 2);
    assert_eq!(
        at,
        BTreeMap::from([(0, Offset::Offset(40)), (1, Offset::Offset(60))])
    );

    let second: BaseConsumer = group_config(&server).create().unwrap();
    second.subscribe(&["resume"]).unwrap();
    let got = poll_n(&second, 100);
    let firsts: BTreeMap<i32, i64> = got.iter().fold(BTreeMap::new(), |mut m, (p, o)| {
        m.entry(*p).or_insert(*o);
        m
    });
    assert_eq!(firsts, BTreeMap::from([(0, 40), (1, 60)]));
    let distinct: BTreeSet<_> = got.iter().collect();
    assert_eq!(distinct.len(), 100, "each remaining message once");
}

/// KIP-345: a static member that crashes and comes back within its session timeout takes its
/// old place without a rebalance: it gets its partitions back and the other member's assignment
/// never changes (the scenario of librdkafka's test 0102 and redpanda#3842).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_restarting_within_its_session_gets_its_partitions_back() {
    let server = TestServer::start().await;
    server.create_kafka_topic("statics", PARTITIONS).await;
    let producer: FutureProducer = server.kafka_config().create().unwrap();
    // A long session: the restart must be recognised, not waited out.
    let session = "30000";
    let a = Member::spawn_static(&server, "static-a", "statics", "statics", session);
    let b = Member::spawn_static(&server, "static-b", "statics", "statics", session);
    wait_until("a and b split the partitions", || spread(&[&a, &b])).await;
    let first = produce(&producer, "statics", PARTITIONS, 20).await;
    wait_until("a and b consume", || {
        consumed_by(&[&a, &b]).is_superset(&first)
    })
    .await;
    let a_partitions = a.assignment();
    let b_history = b.assignments().len();

    let mut a = a;
    a.kill().await;
    let again = Member::spawn_static(&server, "static-a", "statics", "statics", session);
    let batch = produce(&producer, "statics", PARTITIONS, 20).await;
    let started = Instant::now();
    wait_until("the restarted a and b consume the next batch", || {
        consumed_by(&[&again, &b]).is_superset(&batch)
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}: the session timeout was waited out",
        started.elapsed()
    );
    assert_eq!(
        again.assignment(),
        a_partitions,
        "the same partitions come back"
    );
    assert_eq!(
        b.assignments().len(),
        b_history,
        "b was never rebalanced: {:?}",
        b.assignments()
    );
    again.close().await;
    b.close().await;
}
