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

/// Kafka's error codes these tests expect.
mod code {
    pub const NONE: i16 = 0;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_REQUEST: i16 = 42;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
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
            let record = FutureRecord::<(), _>::to(topic)
                .partition(p)
                .payload(&value);
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
    /// How many (topic, partition) it was last assigned.
    assigned: usize,
}

/// A librdkafka consumer with `group.protocol=consumer`, polling on its own thread.
struct Member {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Member {
    fn start(
        server: &TestServer,
        group: &str,
        subscription: &str,
        extra: &[(&str, &str)],
    ) -> Member {
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
                let tpl = consumer.assignment().unwrap_or_default();
                let assignment: BTreeSet<i32> =
                    tpl.elements().iter().map(|e| e.partition()).collect();
                {
                    let mut seen = seen2.lock().unwrap();
                    seen.assigned = tpl.count();
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
        assert!(
            start.elapsed() < WAIT,
            "timed out after {WAIT:?}: {what}; {}",
            state()
        );
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
        || {
            format!(
                "a {:?} b {:?} c {:?}",
                a.history(),
                b.history(),
                c.history()
            )
        },
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
        let next = produced
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, o)| o + 1)
            .max();
        assert_eq!(Some(first), next, "partition {p} resumed at its commit");
    }
    d.stop().await;
}

// ---- the wire: every advertised version, Kafka's error codes ----

/// A heartbeat request: `owned` None leaves the field null (as a plain heartbeat may).
fn beat(
    group: &str,
    member: &str,
    epoch: i32,
    topics: Option<&[&str]>,
    owned: Option<Vec<(uuid::Uuid, Vec<i32>)>>,
) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(if epoch == 0 { 30_000 } else { -1 })
        .with_subscribed_topic_names(topics.map(|t| t.iter().map(|n| TopicName(s(n))).collect()))
        .with_topic_partitions(owned.map(|o| {
            o.into_iter()
                .map(|(id, p)| {
                    OwnedPartitions::default()
                        .with_topic_id(id)
                        .with_partitions(p)
                })
                .collect()
        }))
}

async fn heartbeat(
    wire: &mut KafkaWire,
    v: i16,
    req: &ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    wire.call(ApiKey::ConsumerGroupHeartbeat, v, req).await
}

/// The assignment of an answer as (topic id, sorted partitions).
fn parts(r: &ConsumerGroupHeartbeatResponse) -> Option<Vec<(uuid::Uuid, Vec<i32>)>> {
    r.assignment.as_ref().map(|a| {
        let mut out: Vec<(uuid::Uuid, Vec<i32>)> = a
            .topic_partitions
            .iter()
            .map(|t| {
                let mut p = t.partitions.clone();
                p.sort_unstable();
                (t.topic_id, p)
            })
            .collect();
        out.sort();
        out
    })
}

fn count(a: &Option<Vec<(uuid::Uuid, Vec<i32>)>>) -> usize {
    a.iter().flatten().map(|(_, p)| p.len()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_at_every_version_joins_heartbeats_and_leaves_with_kafkas_errors() {
    let server = server().await;
    server.create_kafka_topic("wire-a", 3).await;
    let mut wire = KafkaWire::open(server.kafka_addr).await;
    for v in 0..=1i16 {
        let group = format!("wire-g{v}");
        // v0: the coordinator names the member (Kafka's 22-character base64 UUID); v1
        // (KIP-1082): the client must, and an empty id is INVALID_REQUEST.
        let mut join = beat(&group, "", 0, Some(&["wire-a"]), Some(vec![]));
        if v >= 1 {
            let r = heartbeat(&mut wire, v, &join).await;
            assert_eq!(r.error_code, code::INVALID_REQUEST, "v{v} empty member id");
            join = join.with_member_id(s("client-made-id"));
        }
        let r = heartbeat(&mut wire, v, &join).await;
        assert_eq!(r.error_code, code::NONE, "v{v} join: {:?}", r.error_message);
        let member = r.member_id.clone().unwrap().to_string();
        if v == 0 {
            assert_eq!(member.len(), 22, "a Kafka-shaped member id");
        } else {
            assert_eq!(member, "client-made-id");
        }
        assert_eq!(r.member_epoch, 1);
        assert_eq!(r.heartbeat_interval_ms, 300);
        assert_eq!(count(&parts(&r)), 3, "the only member gets every partition");
        let owned = parts(&r).unwrap();

        // A plain heartbeat (no fields changed) answers no assignment.
        let plain = beat(&group, &member, 1, None, None);
        let r = heartbeat(&mut wire, v, &plain).await;
        assert_eq!((r.error_code, r.member_epoch), (code::NONE, 1));
        assert!(r.assignment.is_none(), "unchanged assignment not re-sent");
        // A full heartbeat (rebalance timeout, topics, owned partitions) gets it again.
        let full = beat(&group, &member, 1, Some(&["wire-a"]), Some(owned.clone()))
            .with_rebalance_timeout_ms(30_000);
        assert_eq!(parts(&heartbeat(&mut wire, v, &full).await), Some(owned));

        // Kafka's errors.
        let ahead = beat(&group, &member, 7, None, None);
        assert_eq!(
            heartbeat(&mut wire, v, &ahead).await.error_code,
            code::FENCED_MEMBER_EPOCH
        );
        let stranger = beat(&group, "nobody", 1, None, None);
        assert_eq!(
            heartbeat(&mut wire, v, &stranger).await.error_code,
            code::UNKNOWN_MEMBER_ID
        );
        let assignor = beat(&group, &member, 1, None, None).with_server_assignor(Some(s("sticky")));
        assert_eq!(
            heartbeat(&mut wire, v, &assignor).await.error_code,
            code::UNSUPPORTED_ASSIGNOR
        );
        let bad_epoch = beat(&group, &member, -3, None, None);
        assert_eq!(
            heartbeat(&mut wire, v, &bad_epoch).await.error_code,
            code::INVALID_REQUEST
        );
        let no_timeout =
            beat(&group, "x", 0, Some(&["wire-a"]), Some(vec![])).with_rebalance_timeout_ms(-1);
        assert_eq!(
            heartbeat(&mut wire, v, &no_timeout).await.error_code,
            code::INVALID_REQUEST
        );
        let owning_on_join = beat(&group, "x", 0, Some(&["wire-a"]), None);
        assert_eq!(
            heartbeat(&mut wire, v, &owning_on_join).await.error_code,
            code::INVALID_REQUEST
        );
        if v >= 1 {
            let regex = beat(&group, "y", 0, None, Some(vec![]))
                .with_subscribed_topic_regex(Some(s("wire-(")));
            assert_eq!(
                heartbeat(&mut wire, v, &regex).await.error_code,
                code::INVALID_REGULAR_EXPRESSION
            );
        }
        let lost = beat("no-such-group", &member, 1, None, None);
        assert_eq!(
            heartbeat(&mut wire, v, &lost).await.error_code,
            code::GROUP_ID_NOT_FOUND
        );

        // Leaving: epoch -1 is echoed; the member is gone afterwards, and so is the group it
        // left empty without offsets (dropped at once, as Kafka's cleanup later drops it).
        let leave = beat(&group, &member, -1, None, None);
        let r = heartbeat(&mut wire, v, &leave).await;
        assert_eq!((r.error_code, r.member_epoch), (code::NONE, -1));
        assert_eq!(
            heartbeat(&mut wire, v, &plain).await.error_code,
            code::GROUP_ID_NOT_FOUND
        );
    }
}

/// Two members by hand: the second gets nothing until the first has reported releasing the
/// partitions it must give up; the first stays at its epoch until then; OffsetCommit checks
/// the member epoch (STALE_MEMBER_EPOCH); ConsumerGroupDescribe (v0, v1) shows the epochs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_are_revoked_before_they_are_assigned() {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
    let server = server().await;
    server.create_kafka_topic("rev-a", 4).await;
    let mut wire = KafkaWire::open(server.kafka_addr).await;
    let g = "rev-g";
    let r1 = heartbeat(
        &mut wire,
        1,
        &beat(g, "m1", 0, Some(&["rev-a"]), Some(vec![])),
    )
    .await;
    assert_eq!(
        (r1.error_code, r1.member_epoch, count(&parts(&r1))),
        (code::NONE, 1, 4)
    );
    let all_four = parts(&r1).unwrap();
    let topic_id = all_four[0].0;

    let r2 = heartbeat(
        &mut wire,
        1,
        &beat(g, "m2", 0, Some(&["rev-a"]), Some(vec![])),
    )
    .await;
    assert_eq!(r2.error_code, code::NONE);
    assert_eq!(r2.member_epoch, 2, "the join bumped the group epoch");
    assert_eq!(count(&parts(&r2)), 0, "m1 still owns every partition");

    // m1, still owning all four, is asked to keep two: its epoch stays 1 until it releases.
    let r = heartbeat(
        &mut wire,
        1,
        &beat(g, "m1", 1, None, Some(all_four.clone())),
    )
    .await;
    assert_eq!((r.error_code, r.member_epoch), (code::NONE, 1));
    let kept = parts(&r).unwrap();
    assert_eq!(count(&Some(kept.clone())), 2);

    // A commit at the group's new epoch by m1 is stale; at its own epoch it is accepted.
    let commit = |epoch: i32| {
        OffsetCommitRequest::default()
            .with_group_id(GroupId(s(g)))
            .with_member_id(s("m1"))
            .with_generation_id_or_member_epoch(epoch)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(s("rev-a")))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(kept[0].1[0])
                    .with_committed_offset(0)])])
    };
    let stale: OffsetCommitResponse = wire.call(ApiKey::OffsetCommit, 9, &commit(2)).await;
    assert_eq!(
        stale.topics[0].partitions[0].error_code,
        code::STALE_MEMBER_EPOCH
    );
    let fine: OffsetCommitResponse = wire.call(ApiKey::OffsetCommit, 9, &commit(1)).await;
    assert_eq!(fine.topics[0].partitions[0].error_code, code::NONE);
    // Below v9 a consumer-protocol member's commit is refused, as Kafka refuses it.
    let old: OffsetCommitResponse = wire.call(ApiKey::OffsetCommit, 8, &commit(1)).await;
    assert_eq!(
        old.topics[0].partitions[0].error_code,
        code::UNSUPPORTED_VERSION
    );

    // m2 still gets nothing: m1 has not reported the release.
    let r = heartbeat(&mut wire, 1, &beat(g, "m2", 2, None, Some(vec![]))).await;
    assert_eq!((r.error_code, count(&parts(&r))), (code::NONE, 0));

    // m1 reports owning only what it keeps: it moves to epoch 2; then m2 gets the rest.
    let r = heartbeat(&mut wire, 1, &beat(g, "m1", 1, None, Some(kept.clone()))).await;
    assert_eq!((r.error_code, r.member_epoch), (code::NONE, 2));
    let r = heartbeat(&mut wire, 1, &beat(g, "m2", 2, None, Some(vec![]))).await;
    assert_eq!((r.error_code, r.member_epoch), (code::NONE, 2));
    let given = parts(&r).unwrap();
    assert_eq!(count(&Some(given.clone())), 2);
    let mut union: Vec<i32> = kept[0].1.iter().chain(given[0].1.iter()).copied().collect();
    union.sort_unstable();
    assert_eq!(union, vec![0, 1, 2, 3]);

    for v in 0..=1i16 {
        let d: ConsumerGroupDescribeResponse = wire
            .call(
                ApiKey::ConsumerGroupDescribe,
                v,
                &ConsumerGroupDescribeRequest::default()
                    .with_group_ids(vec![GroupId(s(g)), GroupId(s("rev-none"))]),
            )
            .await;
        let group = &d.groups[0];
        assert_eq!(group.error_code, code::NONE);
        assert_eq!(group.group_state.as_str(), "Stable");
        assert_eq!((group.group_epoch, group.assignment_epoch), (2, 2));
        assert_eq!(group.assignor_name.as_str(), "uniform");
        assert_eq!(group.members.len(), 2);
        for m in &group.members {
            assert_eq!(m.member_epoch, 2);
            assert_eq!(m.assignment.topic_partitions[0].topic_id, topic_id);
            assert_eq!(
                m.assignment.topic_partitions[0].topic_name.as_str(),
                "rev-a"
            );
            assert_eq!(m.member_type, if v >= 1 { 1 } else { -1 });
        }
        assert_eq!(d.groups[1].error_code, code::GROUP_ID_NOT_FOUND);
    }

    // ListGroups v5 filters by type.
    for (types, expect) in [
        (vec!["consumer"], true),
        (vec!["classic"], false),
        (vec![], true),
    ] {
        let l: ListGroupsResponse = wire
            .call(
                ApiKey::ListGroups,
                5,
                &ListGroupsRequest::default()
                    .with_types_filter(types.iter().map(|t| s(t)).collect()),
            )
            .await;
        let found = l.groups.iter().find(|x| x.group_id.as_str() == g);
        assert_eq!(found.is_some(), expect, "types {types:?}");
        if let Some(x) = found {
            assert_eq!(
                (
                    x.group_type.as_str(),
                    x.protocol_type.as_str(),
                    x.group_state.as_str()
                ),
                ("consumer", "consumer", "Stable")
            );
        }
    }
}

/// A static member leaving with epoch -2 keeps its partitions; a new member with the same
/// instance id takes them over at once. While the instance is held, another join with it is
/// UNRELEASED_INSTANCE_ID, and the replaced member id is FENCED_INSTANCE_ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_comes_back_to_its_partitions() {
    let server = server().await;
    server.create_kafka_topic("static-a", 4).await;
    let mut wire = KafkaWire::open(server.kafka_addr).await;
    let g = "static-g";
    let join = |member: &str, instance: &str| {
        beat(g, member, 0, Some(&["static-a"]), Some(vec![])).with_instance_id(Some(s(instance)))
    };
    let r = heartbeat(&mut wire, 1, &join("s1", "i1")).await;
    assert_eq!((r.error_code, r.member_epoch), (code::NONE, 1));
    let r = heartbeat(&mut wire, 1, &join("other", "i2")).await;
    assert_eq!(r.error_code, code::NONE);
    // Let the first give up half, so both are settled.
    let all = heartbeat(
        &mut wire,
        1,
        &beat(g, "s1", 1, None, None).with_instance_id(Some(s("i1"))),
    )
    .await;
    let mine = parts(&all).unwrap();
    let r = heartbeat(
        &mut wire,
        1,
        &beat(g, "s1", 1, None, Some(mine.clone())).with_instance_id(Some(s("i1"))),
    )
    .await;
    assert_eq!(r.member_epoch, 2);

    let r = heartbeat(&mut wire, 1, &join("s1-again", "i1")).await;
    assert_eq!(r.error_code, code::UNRELEASED_INSTANCE_ID);

    let leave = beat(g, "s1", -2, None, None).with_instance_id(Some(s("i1")));
    let r = heartbeat(&mut wire, 1, &leave).await;
    assert_eq!((r.error_code, r.member_epoch), (code::NONE, -2));

    let r = heartbeat(&mut wire, 1, &join("s1-new", "i1")).await;
    assert_eq!(r.error_code, code::NONE);
    assert_eq!(
        parts(&r),
        Some(mine),
        "the new instance holds the same partitions"
    );
    assert_eq!(
        r.member_epoch, 2,
        "no rebalance: the group epoch did not move"
    );

    let old = beat(g, "s1", 2, None, None).with_instance_id(Some(s("i1")));
    assert_eq!(
        heartbeat(&mut wire, 1, &old).await.error_code,
        code::FENCED_INSTANCE_ID
    );
}

/// A regex subscription (v1) takes topics created later, on the next heartbeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regex_subscription_picks_up_new_topics() {
    let server = server().await;
    server.create_kafka_topic("rx-one", 2).await;
    server.create_kafka_topic("other-topic", 2).await;
    let mut wire = KafkaWire::open(server.kafka_addr).await;
    let join =
        beat("rx-g", "m", 0, None, Some(vec![])).with_subscribed_topic_regex(Some(s("rx-.*")));
    let r = heartbeat(&mut wire, 1, &join).await;
    assert_eq!(
        (r.error_code, count(&parts(&r))),
        (code::NONE, 2),
        "{:?}",
        r.error_message
    );
    server.create_kafka_topic("rx-two", 3).await;
    let r = heartbeat(
        &mut wire,
        1,
        &beat("rx-g", "m", 1, None, Some(parts(&r).unwrap())),
    )
    .await;
    assert_eq!(r.error_code, code::NONE);
    assert_eq!(r.member_epoch, 2, "a new matching topic bumps the epoch");
    assert_eq!(
        count(&parts(&r)),
        5,
        "both matching topics, not other-topic"
    );
}

/// librdkafka's own regex subscription (`^rx-.*`) with the consumer protocol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_regex_subscription() {
    let server = server().await;
    server.create_kafka_topic("lre-a", 2).await;
    server.create_kafka_topic("lre-b", 1).await;
    server.create_kafka_topic("unrelated", 1).await;
    let produced: BTreeSet<(i32, i64)> = produce(&server, "lre-a", 2, 2).await;
    let mut m = Member::start(&server, "lre-g", "^lre-.*", &[]);
    wait_until(
        "the regex member reads lre-a",
        || m.records().len() >= produced.len(),
        || format!("{:?}", m.history()),
    )
    .await;
    wait_until(
        "lre-a's two partitions and lre-b's one, not unrelated's",
        || m.seen.lock().unwrap().assigned == 3,
        || format!("{:?}", m.history()),
    )
    .await;
    m.stop().await;
}

/// OffsetFetch v8 asks for several groups at once; v9 names the member, which a consumer
/// group checks (UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH) while an anonymous fetch (admin
/// clients) passes. DescribeGroups v6 says a consumer group is not a classic group, and an
/// unknown one is GROUP_ID_NOT_FOUND; v5 reads both as Dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_fetch_v8_v9_and_describe_groups_v6() {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopics,
    };
    use kafka_protocol::messages::{
        DescribeGroupsRequest, DescribeGroupsResponse, OffsetCommitRequest, OffsetCommitResponse,
        OffsetFetchRequest, OffsetFetchResponse,
    };
    let server = server().await;
    server.create_kafka_topic("of-a", 2).await;
    let mut wire = KafkaWire::open(server.kafka_addr).await;
    let r = heartbeat(
        &mut wire,
        1,
        &beat("of-g", "m", 0, Some(&["of-a"]), Some(vec![])),
    )
    .await;
    assert_eq!((r.error_code, r.member_epoch), (code::NONE, 1));
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(s("of-g")))
        .with_member_id(s("m"))
        .with_generation_id_or_member_epoch(1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(s("of-a")))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(1)
                .with_committed_offset(17)])]);
    let c: OffsetCommitResponse = wire.call(ApiKey::OffsetCommit, 9, &commit).await;
    assert_eq!(c.topics[0].partitions[0].error_code, code::NONE);

    let group = |id: &str, member: Option<&str>, epoch: i32| {
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s(id)))
            .with_member_id(member.map(s))
            .with_member_epoch(epoch)
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(TopicName(s("of-a")))
                .with_partition_indexes(vec![0, 1])]))
    };
    for v in 8..=9i16 {
        let mut groups = vec![group("of-g", None, -1), group("of-other", None, -1)];
        if v >= 9 {
            groups.push(group("of-g", Some("m"), 1));
            groups.push(group("of-g", Some("m"), 5));
            groups.push(group("of-g", Some("ghost"), 1));
        }
        let f: OffsetFetchResponse = wire
            .call(
                ApiKey::OffsetFetch,
                v,
                &OffsetFetchRequest::default().with_groups(groups),
            )
            .await;
        let offsets = |i: usize| -> Vec<i64> {
            f.groups[i].topics[0]
                .partitions
                .iter()
                .map(|p| p.committed_offset)
                .collect()
        };
        assert_eq!(f.groups[0].error_code, code::NONE, "v{v}");
        assert_eq!(offsets(0), vec![-1, 17], "v{v}: the commit, -1 where none");
        assert_eq!(offsets(1), vec![-1, -1], "v{v}: a group without commits");
        if v >= 9 {
            assert_eq!(offsets(2), vec![-1, 17], "the member at its epoch");
            assert_eq!(f.groups[3].error_code, code::STALE_MEMBER_EPOCH);
            assert_eq!(f.groups[4].error_code, code::UNKNOWN_MEMBER_ID);
        }
    }

    // OffsetDelete: a topic the consumer group's members subscribe to is refused.
    {
        use kafka_protocol::messages::offset_delete_request::{
            OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
        };
        use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
        let del: OffsetDeleteResponse = wire
            .call(
                ApiKey::OffsetDelete,
                0,
                &OffsetDeleteRequest::default()
                    .with_group_id(GroupId(s("of-g")))
                    .with_topics(vec![OffsetDeleteRequestTopic::default()
                        .with_name(TopicName(s("of-a")))
                        .with_partitions(vec![
                            OffsetDeleteRequestPartition::default().with_partition_index(1)
                        ])]),
            )
            .await;
        assert_eq!(del.error_code, code::NONE);
        assert_eq!(
            del.topics[0].partitions[0].error_code,
            code::GROUP_SUBSCRIBED_TO_TOPIC
        );
    }

    for v in [5i16, 6] {
        let d: DescribeGroupsResponse = wire
            .call(
                ApiKey::DescribeGroups,
                v,
                &DescribeGroupsRequest::default()
                    .with_groups(vec![GroupId(s("of-g")), GroupId(s("of-nobody"))]),
            )
            .await;
        for g in &d.groups {
            assert_eq!(g.group_state.as_str(), "Dead", "v{v}");
            let expect = if v >= 6 {
                code::GROUP_ID_NOT_FOUND
            } else {
                code::NONE
            };
            assert_eq!(g.error_code, expect, "v{v} {:?}", g.group_id);
        }
        if v >= 6 {
            assert_eq!(
                d.groups[0].error_message.as_deref(),
                Some("Group of-g is not a classic group.")
            );
        }
    }
}

/// librdkafka static members (`group.instance.id`): one closes and comes back under the same
/// instance id, and gets back exactly the partitions it had while the other keeps its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_static_member_comes_back_to_its_partitions() {
    let server = server().await;
    server.create_kafka_topic("lst-a", 4).await;
    let mut one = Member::start(&server, "lst-g", "lst-a", &[("group.instance.id", "one")]);
    let mut two = Member::start(&server, "lst-g", "lst-a", &[("group.instance.id", "two")]);
    wait_until(
        "two static members split four partitions",
        || one.assignment().len() == 2 && two.assignment().len() == 2,
        || format!("one {:?} two {:?}", one.history(), two.history()),
    )
    .await;
    let (had, kept) = (one.assignment(), two.assignment());
    one.stop().await;
    let mut back = Member::start(&server, "lst-g", "lst-a", &[("group.instance.id", "one")]);
    wait_until(
        "the instance gets its partitions back",
        || back.assignment() == had,
        || format!("back {:?} two {:?}", back.history(), two.history()),
    )
    .await;
    assert_eq!(two.assignment(), kept, "the other member was not disturbed");
    assert!(
        two.history()
            .iter()
            .skip_while(|s| **s != kept)
            .all(|s| *s == kept),
        "two's assignment never changed: {:?}",
        two.history()
    );
    back.stop().await;
    two.stop().await;
}

/// The type ListGroups v5 gives group `g` ("classic", "consumer"), if listed.
async fn group_type(wire: &mut KafkaWire, g: &str) -> Option<String> {
    let l: ListGroupsResponse = wire
        .call(ApiKey::ListGroups, 5, &ListGroupsRequest::default())
        .await;
    l.groups
        .iter()
        .find(|x| x.group_id.as_str() == g)
        .map(|x| x.group_type.to_string())
}

/// Online migration as Kafka 4 does it (`group.consumer.migration.policy=bidirectional`): a
/// librdkafka consumer with the classic protocol owns everything; a consumer-protocol member
/// joining upgrades the group (the classic member keeps speaking JoinGroup/SyncGroup and gets
/// the server's assignment); when that member leaves, the group is classic again and the
/// classic member takes everything back. Every record is consumed exactly once throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classic_group_upgrades_when_a_consumer_member_joins_and_downgrades_when_it_leaves() {
    const PARTITIONS: i32 = 4;
    let server = server().await;
    let topic = "mig-a";
    let group = "mig-g";
    server.create_kafka_topic(topic, PARTITIONS).await;
    let mut wire = KafkaWire::open(server.kafka_addr).await;
    let mut produced = produce(&server, topic, PARTITIONS, 5).await;
    let classic = [
        ("group.protocol", "classic"),
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "300"),
    ];

    let mut old = Member::start(&server, group, topic, &classic);
    wait_until(
        "the classic member owns every partition and reads everything",
        || old.assignment() == all(PARTITIONS) && old.records().len() == produced.len(),
        || format!("{:?} {}", old.history(), old.records().len()),
    )
    .await;
    assert_eq!(
        group_type(&mut wire, group).await.as_deref(),
        Some("classic")
    );

    produced.extend(produce(&server, topic, PARTITIONS, 5).await);
    let mut new = Member::start(&server, group, topic, &[]);
    wait_until(
        "the consumer-protocol member gets a share from the server's assignor",
        || {
            let (x, y) = (old.assignment(), new.assignment());
            x.len() == 2 && y.len() == 2 && x.is_disjoint(&y)
        },
        || format!("old {:?} new {:?}", old.history(), new.history()),
    )
    .await;
    assert_eq!(
        group_type(&mut wire, group).await.as_deref(),
        Some("consumer"),
        "upgraded"
    );
    let d: ConsumerGroupDescribeResponse = wire
        .call(
            ApiKey::ConsumerGroupDescribe,
            0,
            &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group))]),
        )
        .await;
    assert_eq!(d.groups[0].error_code, code::NONE);
    assert_eq!(
        d.groups[0].members.len(),
        2,
        "both members are in the consumer group"
    );

    produced.extend(produce(&server, topic, PARTITIONS, 5).await);
    wait_until(
        "everything produced so far is consumed",
        || consumed(&[&old, &new]).len() >= produced.len(),
        || format!("{} of {}", consumed(&[&old, &new]).len(), produced.len()),
    )
    .await;

    // The consumer-protocol member leaves: downgrade, and the classic member rebalances to
    // everything (as its group's leader, assigning client-side again).
    new.stop().await;
    wait_until(
        "the classic member takes every partition back",
        || old.assignment() == all(PARTITIONS),
        || format!("old {:?}", old.history()),
    )
    .await;
    assert_eq!(
        group_type(&mut wire, group).await.as_deref(),
        Some("classic"),
        "downgraded"
    );
    produced.extend(produce(&server, topic, PARTITIONS, 5).await);
    wait_until(
        "everything is consumed after the downgrade",
        || {
            let got: BTreeSet<(i32, i64)> = consumed(&[&old, &new]).into_iter().collect();
            got == produced
        },
        || format!("{} of {}", consumed(&[&old, &new]).len(), produced.len()),
    )
    .await;
    assert_eq!(
        consumed(&[&old, &new]).len(),
        produced.len(),
        "a record was consumed twice across the migrations"
    );
    old.stop().await;
}
