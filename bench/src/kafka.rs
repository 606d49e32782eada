//! The workloads over the Kafka protocol, through librdkafka: `acks=all` producers (unless
//! told otherwise) batching `--batch` messages, optionally idempotent or transactional (a
//! transaction committed every `--commit-interval`), consumers assigned their partitions or
//! subscribed as one group (librdkafka's default `read_committed`). Creates a topic of its own
//! (with the `--topic-config` configs) and deletes it afterwards, so it can be pointed at any
//! Kafka broker. With `--keys N` every record carries a key drawn from N distinct keys (what a
//! compacted topic needs).

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
use crate::report::{
    histogram, record, ActorStats, Coverage, LatencyKind, Progress, Role, TxnCounts,
};
use crate::settings::{DurabilityArg, Settings, Transactions, Workload};
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
        // librdkafka leaves Nagle on by default; its small first requests then wait out the
        // server's delayed ACK (about 40 ms on Linux), which would hide what is measured.
        let c: BaseConsumer = base(s).set("socket.nagle.disable", "true").create()?;
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
    let topic = s
        .topic
        .clone()
        .unwrap_or_else(|| format!("wharf-bench-{}", s.run_id));
    if s.existing_topic {
        let (s, topic) = (Arc::clone(&s), topic.clone());
        return tokio::task::spawn_blocking(move || run_threads(&s, &topic, &progress))
            .await
            .map_err(|e| BenchError::Run(format!("the run failed: {e}")))
            .and_then(|r| r);
    }
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
    for (k, v) in &s.topic_configs {
        new = new.set(k, v);
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
    if s.keep_topic {
        eprintln!("wharf-bench: topic {topic} kept (--keep-topic)");
        return result;
    }
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
            // --existing-topic: the messages are there already.
            if !s.existing_topic {
                fill(s, topic, &counts, progress)?;
            }
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
///
/// A transactional producer's acknowledged messages wait in `pending` until their transaction
/// ends: committed, they count as delivered (latency: send to commit); aborted, as failed.
/// librdkafka's commit first flushes, serving every delivery report of the transaction, so
/// `pending` holds exactly the open transaction's messages when it is settled.
struct Deliveries {
    base: Instant,
    latency: Mutex<Histogram<u64>>,
    delivered: AtomicU64,
    failed: AtomicU64,
    message_size: u64,
    progress: Arc<Progress>,
    transactional: bool,
    /// µs since `base` at which the open transaction began.
    txn_began: AtomicU64,
    /// Acknowledged measured messages of the open transaction: µs from `txn_began` to their
    /// send (relative to the transaction so the histogram's 3 digits stay precise).
    pending: Mutex<Histogram<u64>>,
}

const MEASURED: usize = 1 << (usize::BITS - 1);

impl Deliveries {
    fn new(s: &Settings, progress: &Arc<Progress>, transactional: bool) -> Deliveries {
        Deliveries {
            base: Instant::now(),
            latency: Mutex::new(histogram()),
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            message_size: s.message_size as u64,
            progress: Arc::clone(progress),
            transactional,
            txn_began: AtomicU64::new(0),
            pending: Mutex::new(histogram()),
        }
    }

    /// A transactional producer's measured message, sent `sent` µs after `base`, was
    /// acknowledged: it waits for its transaction's end.
    fn hold(&self, sent: u64) {
        let began = self.txn_began.load(Ordering::Relaxed);
        if let Ok(mut h) = self.pending.lock() {
            record(&mut h, sent.saturating_sub(began), 1);
        }
    }

    fn now_us(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }

    /// Ends the open transaction's count: `committed` or aborted.
    fn settle(&self, committed: bool) {
        let now = self.now_us();
        let began = self.txn_began.load(Ordering::Relaxed);
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        let n = pending.len();
        if committed {
            if let Ok(mut latency) = self.latency.lock() {
                let waited = now.saturating_sub(began);
                for v in pending.iter_recorded() {
                    let sent = v.value_iterated_to();
                    record(
                        &mut latency,
                        waited.saturating_sub(sent),
                        v.count_at_value(),
                    );
                }
            }
            self.delivered.fetch_add(n, Ordering::Relaxed);
            self.progress.add(n, n * self.message_size);
        } else {
            self.failed.fetch_add(n, Ordering::Relaxed);
            self.progress.errors.fetch_add(n, Ordering::Relaxed);
        }
        pending.reset();
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        let measured = opaque & MEASURED != 0;
        match result {
            Ok(_) if measured && self.transactional => self.hold((opaque & !MEASURED) as u64),
            Ok(_) if measured => {
                let sent = (opaque & !MEASURED) as u64;
                if let Ok(mut h) = self.latency.lock() {
                    record(&mut h, self.now_us().saturating_sub(sent), 1);
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

/// A producer; transactional with `transactional_id`.
fn producer(
    s: &Settings,
    progress: &Arc<Progress>,
    transactional_id: Option<&str>,
) -> Result<ThreadedProducer<Deliveries>, BenchError> {
    // librdkafka's batch.size is in bytes: room for --batch messages with record overhead.
    let batch_bytes = (u64::from(s.batch) * (s.message_size as u64 + 64)).clamp(1_000, 100_000_000);
    let context = Deliveries::new(s, progress, transactional_id.is_some());
    let mut config = base(s);
    config.set("message.timeout.ms", "120000");
    if let Some(id) = transactional_id {
        // librdkafka wants message.timeout.ms <= transaction.timeout.ms; the transaction
        // timeout stays the clients' default (60 s), which any broker's
        // transaction.max.timeout.ms (15 min by default) accepts.
        config
            .set("transactional.id", id)
            .set("message.timeout.ms", "60000");
    }
    if let Some(n) = s.max_in_queue {
        config.set("queue.buffering.max.messages", n.to_string());
    }
    let p: ThreadedProducer<Deliveries> = config
        .set("acks", s.acks.to_string())
        .set("linger.ms", s.linger_ms.to_string())
        .set("enable.idempotence", s.idempotent.to_string())
        .set("batch.num.messages", s.batch.to_string())
        .set("batch.size", batch_bytes.to_string())
        .set("message.max.bytes", (batch_bytes + 1_000_000).to_string())
        .set("queue.buffering.max.kbytes", "1048576")
        .create_with_context(context)?;
    Ok(p)
}

/// The keys of `--keys N`, drawn uniformly by a splitmix64 sequence of a fixed seed per
/// producer (so runs are repeatable).
struct KeyDraw {
    keys: Vec<Vec<u8>>,
    state: u64,
}

impl KeyDraw {
    /// Producer `id`'s draw over `n` keys (`key-00000000` ...); `None` without `--keys`.
    fn new(n: Option<u64>, id: u32) -> Option<KeyDraw> {
        n.map(|n| KeyDraw {
            keys: (0..n).map(|i| format!("key-{i:08}").into_bytes()).collect(),
            state: 0x17C0_11EC ^ u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        })
    }

    fn next(&mut self) -> &[u8] {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        &self.keys[(z % self.keys.len() as u64) as usize]
    }
}

/// The next key of `draw`, if the run is keyed.
fn next_key(draw: &mut Option<KeyDraw>) -> Option<&[u8]> {
    draw.as_mut().map(KeyDraw::next)
}

/// Sends one message (with `key` if given), waiting while librdkafka's queue is full.
fn send(
    p: &ThreadedProducer<Deliveries>,
    topic: &str,
    partition: i32,
    key: Option<&[u8]>,
    body: &[u8],
    opaque: usize,
) -> Result<(), BenchError> {
    let mut record = BaseRecord::<[u8], [u8], usize>::with_opaque_to(topic, opaque)
        .partition(partition)
        .payload(body);
    if let Some(k) = key {
        record = record.key(k);
    }
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

/// Waits (at most `limit`) until librdkafka holds none of `p`'s messages: each one answered
/// and its delivery report served by the producer's polling thread.
///
/// Call it before `flush` and `commit_transaction`: rust-rdkafka's flush (which its commit
/// starts with) waits by `poll(100 ms)` on the calling thread, and that poll always runs its
/// full timeout, so any flush that finds a message in flight took 100 ms or more however soon
/// the last report came (a commit every 100 ms then cycled in 200 ms). Once this returns,
/// that flush finds nothing in flight and returns at once.
fn drain(p: &ThreadedProducer<Deliveries>, limit: Duration) {
    let deadline = Instant::now() + limit;
    while p.in_flight_count() > 0 && Instant::now() < deadline {
        std::thread::sleep(DRAIN_STEP);
    }
}

/// How often [`drain`] looks at librdkafka's in-flight count: small beside a transaction's
/// end (EndTxn, the next transaction's first produce), cheap beside a message's send.
const DRAIN_STEP: Duration = Duration::from_micros(200);

/// How long librdkafka may take to commit or abort a transaction, flushing the
/// transaction's messages included (as long as a message may take).
const TXN_CALL_LIMIT: Duration = Duration::from_secs(120);

/// How long a producer may take to deliver what it holds at the end of a run.
const FLUSH_LIMIT: Duration = Duration::from_secs(300);

/// How long `init_transactions` may take (finding the coordinator, InitProducerId): a server
/// without transactions fails the run after this long.
const TXN_INIT_LIMIT: Duration = Duration::from_secs(30);

/// Commit attempts that end in a retriable error before the run gives up.
const COMMIT_RETRIES: u32 = 10;

/// Where a producer's messages go: straight to librdkafka, or (transactional) inside a
/// transaction that is committed once `commit_interval` has passed since it began and a new
/// one begun; [`Outbox::finish`] flushes or commits the tail. Commits are synchronous, as in
/// any transactional client: the producer does not send while one is in progress.
struct Outbox {
    producer: ThreadedProducer<Deliveries>,
    txn: Option<OpenTxn>,
}

struct OpenTxn {
    commit_interval: Duration,
    began: Instant,
    counts: TxnCounts,
}

impl Outbox {
    /// Producer `id`'s outbox; transactional (transactions initialised, the first one begun)
    /// when the run is.
    fn new(s: &Settings, progress: &Arc<Progress>, id: u32) -> Result<Outbox, BenchError> {
        let t: Option<&Transactions> = s.transactions.as_ref();
        let producer = producer(s, progress, t.map(|t| t.id_of(id)).as_deref())?;
        let mut outbox = Outbox {
            producer,
            txn: None,
        };
        if let Some(t) = t {
            outbox
                .producer
                .init_transactions(TXN_INIT_LIMIT)
                .map_err(|e| {
                    BenchError::Setup(format!(
                        "cannot start transactions as {:?} (does the broker support them?): {e}",
                        t.id_of(id)
                    ))
                })?;
            outbox.txn = Some(OpenTxn {
                commit_interval: t.commit_interval,
                began: Instant::now(),
                counts: TxnCounts::default(),
            });
            outbox.begin()?;
        }
        Ok(outbox)
    }

    fn begin(&mut self) -> Result<(), BenchError> {
        let ctx = self.producer.context();
        ctx.txn_began.store(ctx.now_us(), Ordering::Relaxed);
        if let Some(t) = &mut self.txn {
            t.began = Instant::now();
        }
        self.producer.begin_transaction()?;
        Ok(())
    }

    /// Commits the open transaction; one that hit an abortable error is aborted instead (its
    /// messages count as failed) and the run goes on; a fatal error ends the run.
    fn commit(&mut self) -> Result<(), BenchError> {
        let Some(t) = &mut self.txn else {
            return Ok(());
        };
        drain(&self.producer, TXN_CALL_LIMIT);
        let mut retries = 0;
        loop {
            let e = match self.producer.commit_transaction(TXN_CALL_LIMIT) {
                Ok(()) => {
                    self.producer.context().settle(true);
                    t.counts.committed += 1;
                    return Ok(());
                }
                Err(KafkaError::Transaction(e)) => e,
                Err(e) => return Err(e.into()),
            };
            if e.is_retriable() && retries < COMMIT_RETRIES {
                retries += 1;
            } else if e.txn_requires_abort() {
                self.producer.abort_transaction(TXN_CALL_LIMIT)?;
                self.producer.context().settle(false);
                t.counts.aborted += 1;
                return Ok(());
            } else {
                return Err(KafkaError::Transaction(e).into());
            }
        }
    }

    fn send(
        &mut self,
        topic: &str,
        partition: i32,
        key: Option<&[u8]>,
        body: &[u8],
        opaque: usize,
    ) -> Result<(), BenchError> {
        if let Some(t) = &self.txn {
            if t.began.elapsed() >= t.commit_interval {
                self.commit()?;
                self.begin()?;
            }
        }
        send(&self.producer, topic, partition, key, body, opaque)
    }

    /// The warm-up is over: transactions count from here (the open one included).
    fn start_measuring(&mut self) {
        if let Some(t) = &mut self.txn {
            t.counts = TxnCounts::default();
        }
    }

    /// Delivers everything sent: flushes, or commits the last transaction. Returns the
    /// transactions' counts when transactional.
    fn finish(&mut self) -> Result<Option<TxnCounts>, BenchError> {
        if self.txn.is_some() {
            self.commit()?;
        } else {
            drain(&self.producer, FLUSH_LIMIT);
            self.producer.flush(FLUSH_LIMIT)?;
        }
        Ok(self.txn.as_ref().map(|t| t.counts))
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
    // Not transactional: the flag is refused for the consumer workloads.
    let p = producer(s, progress, None)?;
    let mut body = vec![0u8; s.message_size];
    let mut keys = KeyDraw::new(s.keys, 0);
    for (partition, &count) in counts.iter().enumerate() {
        for _ in 0..count {
            payload::stamp_into(&mut body, payload::now_us(), true);
            send(&p, topic, partition as i32, next_key(&mut keys), &body, 0)?;
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
    let mut outbox = Outbox::new(s, progress, id)?;
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
    let mut keys = KeyDraw::new(s.keys, id);
    let base = outbox.producer.context().base;
    let warm_start = Instant::now();
    let mut warm_sent = 0u64;
    while warm_start.elapsed() < s.warmup {
        pace(warm_start, warm_sent, rate);
        payload::stamp_into(&mut body, payload::now_us(), false);
        outbox.send(
            topic,
            partition_of(warm_sent),
            next_key(&mut keys),
            &body,
            0,
        )?;
        warm_sent += 1;
    }
    outbox.start_measuring();
    let start = Instant::now();
    for sent in 0..count {
        pace(start, sent, rate);
        payload::stamp_into(&mut body, payload::now_us(), true);
        let opaque = (base.elapsed().as_micros() as usize & !MEASURED) | MEASURED;
        outbox.send(
            topic,
            partition_of(sent),
            next_key(&mut keys),
            &body,
            opaque,
        )?;
    }
    let transactions = outbox.finish()?;
    let ctx = outbox.producer.context();
    let kind = if transactions.is_some() {
        LatencyKind::Commit
    } else {
        LatencyKind::Send
    };
    let mut stats = ActorStats::new(Role::Producer, id, kind);
    stats.transactions = transactions;
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

/// A consumer assigned its partitions (pinned-consumer and end-to-end). One librdkafka consumer
/// assigned several partitions (e.g. `--consumers 1 --partitions 4`) fetches them all in one
/// Fetch request per broker.
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
    // The clock starts with the first measured message: in end-to-end the producers may still
    // be warming up before that, and otherwise librdkafka spends about half a second joining
    // its coordinator and asking ListOffsets after an assignment, which is not reading.
    let mut start = Instant::now();
    let mut started = false;
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
            batch_started = start;
            started = true;
        }
        stats.messages += 1;
        stats.bytes += body.len() as u64;
        *stats.per_partition.entry(m.partition() as u32).or_default() += 1;
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
        *stats.per_partition.entry(m.partition() as u32).or_default() += 1;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Args;
    use clap::Parser;

    #[test]
    fn keys_are_drawn_from_n_and_repeat_per_producer() {
        assert!(KeyDraw::new(None, 0).is_none());
        let draw = |id| {
            let mut d = KeyDraw::new(Some(100), id).unwrap();
            (0..10_000).map(|_| d.next().to_vec()).collect::<Vec<_>>()
        };
        let a = draw(0);
        assert_eq!(a, draw(0), "the same producer draws the same keys");
        assert_ne!(a, draw(1), "producers draw differently");
        let distinct: std::collections::BTreeSet<_> = a.iter().collect();
        assert_eq!(
            distinct.len(),
            100,
            "10,000 draws over 100 keys hit every key"
        );
        assert!(distinct
            .iter()
            .all(|k| k.starts_with(b"key-") && k.len() == 12));
        let first = a.iter().filter(|k| k.as_slice() == b"key-00000000").count();
        assert!((50..200).contains(&first), "about 100 of each: {first}");
    }

    #[test]
    fn a_transactions_messages_count_when_it_ends() {
        let s = Settings::from_args(Args::parse_from([
            "wharf-bench",
            "pinned-producer",
            "--protocol",
            "kafka",
            "--message-size",
            "100",
            "--transactional-id",
            "t",
        ]))
        .unwrap();
        let progress = Arc::new(Progress::default());
        let d = Deliveries::new(&s, &progress, true);
        // A transaction that began 10 s into the run; its messages acknowledged, not yet
        // delivered.
        d.txn_began.store(10_000_000, Ordering::Relaxed);
        for sent in [10_000_000, 10_001_000, 10_002_000] {
            d.hold(sent);
        }
        assert_eq!(
            d.delivered.load(Ordering::Relaxed),
            0,
            "not before the commit"
        );
        assert_eq!(progress.messages.load(Ordering::Relaxed), 0);
        d.settle(true);
        assert_eq!(d.delivered.load(Ordering::Relaxed), 3);
        assert_eq!(progress.bytes.load(Ordering::Relaxed), 300);
        {
            let latency = d.latency.lock().unwrap();
            assert_eq!(latency.len(), 3, "one latency per committed message");
            // Settled at "now" (about 0 µs into the test's run), before the transaction's
            // made-up start: latencies clamp to the smallest value, never wrap.
            assert_eq!(latency.max(), 1);
        }
        // The next transaction is aborted: its messages count as failed, none as delivered.
        d.txn_began.store(0, Ordering::Relaxed);
        d.hold(5);
        d.hold(6);
        d.settle(false);
        assert_eq!(d.delivered.load(Ordering::Relaxed), 3);
        assert_eq!(d.failed.load(Ordering::Relaxed), 2);
        assert_eq!(progress.errors.load(Ordering::Relaxed), 2);
        // Settling an empty transaction changes nothing.
        d.settle(true);
        assert_eq!(d.delivered.load(Ordering::Relaxed), 3);
        assert_eq!(d.latency.lock().unwrap().len(), 3);
    }

    #[test]
    fn commit_latency_runs_from_send_to_commit() {
        let s = Settings::from_args(Args::parse_from([
            "wharf-bench",
            "pinned-producer",
            "--protocol",
            "kafka",
            "--transactional-id",
            "t",
        ]))
        .unwrap();
        let progress = Arc::new(Progress::default());
        let mut d = Deliveries::new(&s, &progress, true);
        // Move the clock's origin 2 s back: "now" is 2 s into the run.
        d.base = Instant::now().checked_sub(Duration::from_secs(2)).unwrap();
        d.txn_began.store(1_000_000, Ordering::Relaxed);
        d.hold(1_500_000);
        d.settle(true);
        let latency = d.latency.lock().unwrap();
        // Sent 1.5 s into the run, committed at 2 s (and a little): about 500 ms (the
        // histogram keeps 3 significant digits of the send time within the transaction).
        let ms = latency.max() / 1000;
        assert!((495..600).contains(&ms), "{ms} ms");
    }
}
