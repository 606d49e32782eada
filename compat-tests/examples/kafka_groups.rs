//! Consumer-group figures with librdkafka against a running server's Kafka door (or any Kafka
//! broker):
//!
//! - rebalance latency: two members of a group consume a 6-partition topic under steady
//!   production; a third subscribes; the time until it and both others (on their new
//!   assignments) have received messages;
//! - commit rate: one member commits synchronously after every message it reads.
//!
//! cargo run --release -p compat-tests --example kafka_groups -- 127.0.0.1:9092 \
//!     [--rounds 5] [--heartbeat-ms 3000] [--commits 20000]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

type Error = Box<dyn std::error::Error>;

const PARTITIONS: i32 = 6;
const LIMIT: Duration = Duration::from_secs(120);

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

fn assignment(c: &BaseConsumer) -> BTreeSet<i32> {
    c.assignment()
        .map(|t| t.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

fn member(server: &str, group: &str, heartbeat_ms: &str) -> Result<BaseConsumer, Error> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", server)
        .set("group.id", group)
        .set("heartbeat.interval.ms", heartbeat_ms)
        .set("session.timeout.ms", "30000")
        .set("auto.offset.reset", "latest")
        .create()?)
}

/// One round: returns the rebalance latency.
fn rebalance_round(
    server: &str,
    topic: &str,
    group: &str,
    heartbeat_ms: &str,
    producer: &BaseProducer,
) -> Result<Duration, Error> {
    let mut sent = 0u64;
    let mut produce = |producer: &BaseProducer| {
        // Keep every partition fed: a few messages each turn.
        for _ in 0..PARTITIONS {
            let key = sent.to_string();
            let _ = producer.send(
                BaseRecord::to(topic)
                    .partition((sent % PARTITIONS as u64) as i32)
                    .key(&key)
                    .payload("x"),
            );
            sent += 1;
        }
        producer.poll(Duration::ZERO);
    };
    let members = [
        member(server, group, heartbeat_ms)?,
        member(server, group, heartbeat_ms)?,
    ];
    for m in &members {
        m.subscribe(&[topic])?;
    }
    // Stable pair, both consuming.
    let start = Instant::now();
    let mut consumed = [false; 2];
    loop {
        produce(producer);
        for (i, m) in members.iter().enumerate() {
            if let Some(Ok(_)) = m.poll(Duration::from_millis(5)) {
                consumed[i] = true;
            }
        }
        let (a, b) = (assignment(&members[0]), assignment(&members[1]));
        if consumed.iter().all(|c| *c)
            && !a.is_empty()
            && !b.is_empty()
            && a.len() + b.len() == PARTITIONS as usize
            && a.is_disjoint(&b)
        {
            break;
        }
        if start.elapsed() > LIMIT {
            return Err("the first two members never settled".into());
        }
    }
    let before = [assignment(&members[0]), assignment(&members[1])];

    let newcomer = member(server, group, heartbeat_ms)?;
    let t0 = Instant::now();
    newcomer.subscribe(&[topic])?;
    // Done when the newcomer has read a message and each old member has read one from its new
    // (changed) assignment.
    let mut done = [None::<Duration>; 3];
    while done.iter().any(Option::is_none) {
        produce(producer);
        for (i, m) in members.iter().chain(std::iter::once(&newcomer)).enumerate() {
            let Some(Ok(msg)) = m.poll(Duration::from_millis(2)) else {
                continue;
            };
            if done[i].is_some() {
                continue;
            }
            let now = assignment(m);
            let settled = if i < 2 {
                now != before[i] && !now.is_empty() && now.contains(&msg.partition())
            } else {
                !now.is_empty()
            };
            if settled {
                done[i] = Some(t0.elapsed());
            }
        }
        if t0.elapsed() > LIMIT {
            return Err(
                format!("the group did not settle after the third joined: {done:?}").into(),
            );
        }
    }
    Ok(done.iter().flatten().max().copied().unwrap_or_default())
}

fn commit_rate(server: &str, topic: &str, count: usize) -> Result<f64, Error> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", server)
        .set("group.id", format!("committer-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[topic])?;
    let mut first = None;
    let mut commits = 0usize;
    let start = Instant::now();
    while commits < count {
        if start.elapsed() > LIMIT * 5 {
            return Err(format!("only {commits} commits").into());
        }
        let Some(msg) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let msg = msg?;
        first.get_or_insert_with(Instant::now);
        consumer.commit_message(&msg, CommitMode::Sync)?;
        commits += 1;
    }
    let elapsed = first.map_or(Duration::ZERO, |f| f.elapsed());
    Ok(commits as f64 / elapsed.as_secs_f64())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let server = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    let rounds: usize = arg(&args, "--rounds", "5").parse()?;
    let heartbeat_ms = arg(&args, "--heartbeat-ms", "3000");
    let commits: usize = arg(&args, "--commits", "20000").parse()?;
    let id = std::process::id();
    let topic = format!("rebalance-{id}");
    let commit_topic = format!("commits-{id}");

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &server)
        .create()?;
    for r in admin
        .create_topics(
            &[
                NewTopic::new(&topic, PARTITIONS, TopicReplication::Fixed(1)),
                NewTopic::new(&commit_topic, 1, TopicReplication::Fixed(1)),
            ],
            &AdminOptions::new(),
        )
        .await?
    {
        r.map_err(|(t, e)| format!("cannot create {t}: {e}"))?;
    }
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &server)
        .set("linger.ms", "1")
        .create()?;

    let mut latencies = Vec::new();
    for round in 0..rounds {
        let group = format!("rebalance-{id}-{round}");
        let l = rebalance_round(&server, &topic, &group, &heartbeat_ms, &producer)?;
        println!("round {round}: third member consuming with the others after {l:?}");
        latencies.push(l);
    }
    latencies.sort();
    if let (Some(min), Some(max)) = (latencies.first(), latencies.last()) {
        println!(
            "rebalance latency (heartbeat.interval.ms={heartbeat_ms}): median {:?}, min {min:?}, max {max:?}",
            latencies[latencies.len() / 2]
        );
    }

    for i in 0..commits {
        let key = i.to_string();
        while let Err((e, _)) = producer.send(BaseRecord::to(&commit_topic).key(&key).payload("c"))
        {
            if e.rdkafka_error_code() != Some(rdkafka::types::RDKafkaErrorCode::QueueFull) {
                return Err(e.into());
            }
            producer.poll(Duration::from_millis(10));
        }
    }
    producer.flush(Duration::from_secs(30))?;
    let rate = commit_rate(&server, &commit_topic, commits)?;
    println!("commits: {rate:.0} synchronous commits/s (one per message, {commits} messages)");
    Ok(())
}
