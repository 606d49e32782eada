//! The workloads over the Kafka protocol, through librdkafka: `acks=all` producers (unless
//! told otherwise) batching `--batch` messages, consumers assigned their partitions or
//! subscribed as one group. Creates a topic of its own and deletes it afterwards, so it can be
//! pointed at any Kafka broker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use crate::payload;
use crate::report::{histogram, record, ActorStats, Coverage, LatencyKind, Progress, Role};
use crate::settings::{DurabilityArg, Settings, Workload};
use crate::{BenchError, IDLE_LIMIT};

fn base(s: &Settings) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &s.server);
    if let Some(tls) = &s.tls {
        c.set("security.protocol", "ssl");
        if let Some(ca) = &tls.ca_file {
            c.set("ssl.ca.location", ca.display().to_string());
        }
        if let Some((cert, key)) = &tls.client_certificate {
            c.set("ssl.certificate.location", cert.display().to_string());
            c.set("ssl.key.location", key.display().to_string());
        }
    }
    c
}

/// The `connect` workload over Kafka: a new librdkafka client per connection, timed until its
/// first Metadata answer (TCP, the TLS handshake with --tls, ApiVersions, Metadata); creating
/// the client (and, with TLS, loading the CA file) is part of it, closing is not.
fn connections(s: &Settings, progress: &Progress) -> Result<Vec<ActorStats>, BenchError> {
    let one = || -> Result<BaseConsumer, BenchError> {
        let c: BaseConsumer = base(s).create()?;
        c.fetch_metadata(None, Duration::from_secs(30))?;
        Ok(c)
    };
    let warm_until = Instant::now() + s.warmup;
    while Instant::now() < warm_until {
        drop(one()?);
    }
    progress.begin("connecting", s.messages);
    let mut stats = ActorStats::new(Role::Connector, 0, LatencyKind::Connect);
    let mut ready = Duration::ZERO;
    for _ in 0..s.messages {
        let t = Instant::now();
        let client = one()?;
        let took = t.elapsed();
        ready += took;
        record(&mut stats.latency, took.as_micros() as u64, 1);
        drop(client);
        stats.messages += 1;
        progress.add(1, 0);
    }
    // Closing a librdkafka client waits for its threads; the rate counts connecting only.
    stats.elapsed = ready;
    Ok(vec![stats])
}

pub async fn run(s: Arc<Settings>, progress: Arc<Progress>) -> Result<Vec<ActorStats>, BenchError> {
    if s.workload == Workload::Connect {
        return tokio::task::spawn_blocking(move || connections(&s, &progress))
            .await
            .map_err(|e| BenchError::Run(format!("the run failed: {e}")))?;
    }
    let admin: AdminClient<DefaultClientContext> = base(&s).create()?;
    let topic = format!("wharf-bench-{}", s.run_id);
    let mut new = NewTopic::new(&topic, s.partitions as i32, TopicReplication::Fixed(1));
    if let Some(d) = s.durability {
        new = new.set(
            "wharf.durability",
            match d {
                DurabilityArg::Os => "os",
                DurabilityArg::Fsync => "fsync",
            },
        );
    }
    for r in admin.create_topics(&[new], &AdminOptions::new()).await? {
        r.map_err(|(t, e)| BenchError::Setup(format!("cannot create topic {t}: {e}")))?;
    }
    let result = {
        let (s, topic) = (Arc::clone(&s), topic.clone());
        tokio::task::spawn_blocking(move || run_threads(&s, &topic, &progress))
            .await
            .map_err(|e| BenchError::Run(format!("the run failed: {e}")))
            .and_then(|r| r)
    };
    match admin
        .delete_topics(&[topic.as_str()], &AdminOptions::new())
        .await
    {
        Ok(rs) => {
            for r in rs {
                if let Err((t, e)) = r {
                    eprintln!("wharf-bench: could not delete topic {t}: {e}");
                }
            }
        }
        Err(e) => eprintln!("wharf-bench: could not delete the benchmark topic: {e}"),
    }
    result
}

fn run_threads(
    s: &Arc<Settings>,
    topic: &str,
    progress: &Arc<Progress>,
) -> Result<Vec<ActorStats>, BenchError> {
    let per_partition: Vec<u64> = match s.workload {
        Workload::PinnedConsumer | Workload::BalancedConsumerGroup => {
            let counts: Vec<u64> = (0..s.partitions)
                .map(|p| Settings::share(s.messages, s.partitions, p))
                .collect();
            fill(s, topic, &counts, progress)?;
            counts
        }
        _ => s.per_partition_pinned(),
    };
    progress.begin("measuring", s.messages);
    let coverage = Coverage::new(s.partitions);
    let coverage = &coverage;
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        if s.workload.produces() {
            for id in 0..s.producers {
                handles.push(scope.spawn(move || produce(s, id, topic, progress)));
            }
        }
        if s.workload.consumes() {
            for id in 0..s.consumers {
                let per_partition = &per_partition;
                handles.push(scope.spawn(move || {
                    if s.workload == Workload::BalancedConsumerGroup {
                        consume_group(s, id, topic, progress, coverage)
                    } else {
                        consume(s, id, topic, per_partition, progress)
                    }
                }));
            }
        }
        let mut actors = Vec::new();
        for h in handles {
            actors.push(
                h.join()
                    .map_err(|_| BenchError::Run("an actor thread panicked".into()))??,
            );
        }
        actors.sort_by_key(|a| (a.role == Role::Consumer, a.id));
        Ok(actors)
    })
}

/// Counts deliveries and their latency. The opaque of each message is the µs since `base` at
/// which it was sent, with the top bit set for measured messages.
struct Deliveries {
    base: Instant,
    latency: Mutex<Histogram<u64>>,
    delivered: AtomicU64,
    failed: AtomicU64,
    message_size: u64,
    progress: Arc<Progress>,
}

const MEASURED: usize = 1 << (usize::BITS - 1);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        let measured = opaque & MEASURED != 0;
        match result {
            Ok(_) if measured => {
                let sent = (opaque & !MEASURED) as u64;
                let now = self.base.elapsed().as_micros() as u64;
                if let Ok(mut h) = self.latency.lock() {
                    record(&mut h, now.saturating_sub(sent), 1);
                }
                self.delivered.fetch_add(1, Ordering::Relaxed);
                self.progress.add(1, self.message_size);
            }
            Ok(_) => {}
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.progress.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn producer(
    s: &Settings,
    progress: &Arc<Progress>,
) -> Result<ThreadedProducer<Deliveries>, BenchError> {
    // librdkafka's batch.size is in bytes: room for --batch messages with record overhead.
    let batch_bytes = (u64::from(s.batch) * (s.message_size as u64 + 64)).clamp(1_000, 100_000_000);
    let context = Deliveries {
        base: Instant::now(),
        latency: Mutex::new(histogram()),
        delivered: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        message_size: s.message_size as u64,
        progress: Arc::clone(progress),
    };
    let p: ThreadedProducer<Deliveries> = base(s)
        .set("acks", s.acks.to_string())
        .set("linger.ms", s.linger_ms.to_string())
        .set("enable.idempotence", s.idempotent.to_string())
        .set("batch.num.messages", s.batch.to_string())
        .set("batch.size", batch_bytes.to_string())
        .set("message.max.bytes", (batch_bytes + 1_000_000).to_string())
        .set("queue.buffering.max.kbytes", "1048576")
        .set("message.timeout.ms", "120000")
        .create_with_context(context)?;
    Ok(p)
}

/// Sends one message, waiting while librdkafka's queue is full.
fn send(
    p: &ThreadedProducer<Deliveries>,
    topic: &str,
    partition: i32,
    body: &[u8],
    opaque: usize,
) -> Result<(), BenchError> {
    let mut record = BaseRecord::<(), [u8], usize>::with_opaque_to(topic, opaque)
        .partition(partition)
        .payload(body);
    loop {
        match p.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                std::thread::sleep(Duration::from_micros(200));
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

fn pace(start: Instant, sent: u64, per_second: Option<f64>) {
    if let Some(r) = per_second {
        let due = start + Duration::from_secs_f64(sent as f64 / r);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

/// Puts `counts[p]` messages into each partition before a consumer workload (not timed).
fn fill(
    s: &Settings,
    topic: &str,
    counts: &[u64],
    progress: &Arc<Progress>,
) -> Result<(), BenchError> {
    progress.begin("filling", counts.iter().sum());
    let p = producer(s, progress)?;
    let mut body = vec![0u8; s.message_size];
    for (partition, &count) in counts.iter().enumerate() {
        for _ in 0..count {
            payload::stamp_into(&mut body, payload::now_us(), true);
            send(&p, topic, partition as i32, &body, 0)?;
        }
    }
    p.flush(Duration::from_secs(300))?;
    let failed = p.context().failed.load(Ordering::Relaxed);
    if failed > 0 {
        return Err(BenchError::Setup(format!(
            "{failed} messages could not be stored"
        )));
    }
    progress.add(counts.iter().sum(), 0);
    Ok(())
}

fn produce(
    s: &Settings,
    id: u32,
    topic: &str,
    progress: &Arc<Progress>,
) -> Result<ActorStats, BenchError> {
    let count = Settings::share(s.messages, s.producers, id);
    let rate = s.rate.map(|r| r as f64 / f64::from(s.producers.max(1)));
    let p = producer(s, progress)?;
    let partition_of = |sent: u64| -> i32 {
        match s.workload {
            // Balanced: batch by batch over every partition, each producer starting elsewhere.
            Workload::BalancedProducer => {
                ((sent / u64::from(s.batch) + u64::from(id)) % u64::from(s.partitions)) as i32
            }
            _ => id as i32,
        }
    };
    let mut body = vec![0u8; s.message_size];
    let base = p.context().base;
    let warm_start = Instant::now();
    let mut warm_sent = 0u64;
    while warm_start.elapsed() < s.warmup {
        pace(warm_start, warm_sent, rate);
        payload::stamp_into(&mut body, payload::now_us(), false);
        send(&p, topic, partition_of(warm_sent), &body, 0)?;
        warm_sent += 1;
    }
    let start = Instant::now();
    for sent in 0..count {
        pace(start, sent, rate);
        payload::stamp_into(&mut body, payload::now_us(), true);
        let opaque = (base.elapsed().as_micros() as usize & !MEASURED) | MEASURED;
        send(&p, topic, partition_of(sent), &body, opaque)?;
    }
    p.flush(Duration::from_secs(300))?;
    let ctx = p.context();
    let mut stats = ActorStats::new(Role::Producer, id, LatencyKind::Send);
    stats.elapsed = start.elapsed();
    stats.messages = ctx.delivered.load(Ordering::Relaxed);
    stats.bytes = stats.messages * s.message_size as u64;
    stats.errors = ctx.failed.load(Ordering::Relaxed);
    if let Ok(h) = ctx.latency.lock() {
        stats.latency = h.clone();
    }
    Ok(stats)
}

fn consumer(s: &Settings, group: &str) -> Result<BaseConsumer, BenchError> {
    Ok(base(s)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?)
}

fn assign_from_start(c: &BaseConsumer, topic: &str, partitions: &[u32]) -> Result<(), BenchError> {
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition_offset(topic, p as i32, Offset::Beginning)?;
    }
    c.assign(&tpl)?;
    Ok(())
}

/// A consumer assigned its partitions (pinned-consumer and end-to-end).
fn consume(
    s: &Settings,
    id: u32,
    topic: &str,
    per_partition: &[u64],
    progress: &Arc<Progress>,
) -> Result<ActorStats, BenchError> {
    let mine = s.partitions_of(id, s.consumers);
    let expected: u64 = mine.iter().map(|&p| per_partition[p as usize]).sum();
    let end_to_end = s.workload == Workload::EndToEnd;
    let c = consumer(s, &format!("wharf-bench-{}", s.run_id))?;
    assign_from_start(&c, topic, &mine)?;
    if !end_to_end && !s.warmup.is_zero() {
        let until = Instant::now() + s.warmup;
        while Instant::now() < until {
            let _ = c.poll(Duration::from_millis(10));
        }
        assign_from_start(&c, topic, &mine)?;
    }
    let kind = if end_to_end {
        LatencyKind::EndToEnd
    } else {
        LatencyKind::Poll
    };
    let mut stats = ActorStats::new(Role::Consumer, id, kind);
    // In end-to-end the clock starts with the first measured message (the producers may still
    // be warming up before that).
    let mut start = Instant::now();
    let mut started = !end_to_end;
    let mut last_news = Instant::now();
    let mut batch_started = Instant::now();
    while stats.messages < expected {
        let Some(m) = c.poll(Duration::from_millis(100)) else {
            if last_news.elapsed() > IDLE_LIMIT {
                return Err(BenchError::Run(format!(
                    "consumer {id}: nothing new for {IDLE_LIMIT:?} (read {} of {expected})",
                    stats.messages
                )));
            }
            continue;
        };
        let m = m?;
        last_news = Instant::now();
        let body = m.payload().unwrap_or_default();
        let Some((sent_at, true)) = payload::read(body) else {
            continue;
        };
        if !started {
            start = Instant::now();
            started = true;
        }
        stats.messages += 1;
        stats.bytes += body.len() as u64;
        progress.add(1, body.len() as u64);
        if end_to_end {
            record(
                &mut stats.latency,
                payload::now_us().saturating_sub(sent_at),
                1,
            );
        } else if stats.messages.is_multiple_of(u64::from(s.batch)) || stats.messages == expected {
            // librdkafka prefetches, so a consumer's latency is per batch's worth received.
            record(
                &mut stats.latency,
                batch_started.elapsed().as_micros() as u64,
                1,
            );
            batch_started = Instant::now();
        }
    }
    stats.elapsed = start.elapsed();
    Ok(stats)
}

/// A member of one consumer group (subscribe); the members stop when the group has read
/// everything.
fn consume_group(
    s: &Settings,
    id: u32,
    topic: &str,
    progress: &Arc<Progress>,
    coverage: &Coverage,
) -> Result<ActorStats, BenchError> {
    let c = consumer(s, &format!("wharf-bench-group-{}", s.run_id))?;
    c.subscribe(&[topic])?;
    let mut stats = ActorStats::new(Role::Consumer, id, LatencyKind::Poll);
    let start = Instant::now();
    let mut last_news = Instant::now();
    let mut batch_started = Instant::now();
    let mut done = false;
    while !done {
        let Some(m) = c.poll(Duration::from_millis(50)) else {
            done = coverage.total() >= s.messages;
            if !done && last_news.elapsed() > IDLE_LIMIT {
                return Err(BenchError::Run(format!(
                    "group member {id}: nothing new for {IDLE_LIMIT:?}"
                )));
            }
            continue;
        };
        let m = m?;
        last_news = Instant::now();
        let len = m.payload().map_or(0, <[u8]>::len) as u64;
        stats.messages += 1;
        stats.bytes += len;
        coverage.saw(m.partition() as u32, m.offset() as u64);
        progress.add(1, len);
        if stats.messages.is_multiple_of(100) {
            done = coverage.total() >= s.messages;
        }
        if stats.messages.is_multiple_of(u64::from(s.batch)) {
            record(
                &mut stats.latency,
                batch_started.elapsed().as_micros() as u64,
                1,
            );
            batch_started = Instant::now();
        }
    }
    stats.elapsed = start.elapsed();
    c.unsubscribe();
    Ok(stats)
}
