//! The workloads over the native (Iggy 0.8) protocol, through wharf-sdk: one connection per
//! producer and consumer. Creates a stream of its own and deletes it afterwards, so it can be
//! pointed at any Wharf or Iggy 0.8 server.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wharf_sdk::{
    Client, ClientConfig, ConsumerKind, Durability, Identifier, Message, Partitioning,
    PollingStrategy, TlsConfig, TopicOptions,
};

use crate::payload;
use crate::report::{record, ActorStats, Coverage, LatencyKind, Progress, Role};
use crate::settings::{DurabilityArg, Settings, Workload};
use crate::{BenchError, IDLE_LIMIT};

const TOPIC: &str = "bench";
const GROUP: &str = "wharf-bench";

fn client_config(s: &Settings) -> ClientConfig {
    let mut config = ClientConfig::new(s.server.clone()).with_password(&s.username, &s.password);
    if let Some(tls) = &s.tls {
        let mut t = TlsConfig {
            ca_file: tls.ca_file.clone(),
            domain: tls.domain.clone(),
            ..TlsConfig::default()
        };
        if let Some((cert, key)) = &tls.client_certificate {
            t = t.client_certificate(cert, key);
        }
        config = config.with_tls(t);
    }
    config
}

async fn connect(s: &Settings) -> Result<Client, BenchError> {
    Ok(Client::connect(client_config(s)).await?)
}

/// The `connect` workload: connector 0 makes a new client for every connection (its TLS
/// settings read and a full handshake each time: what a new process pays); connector 1
/// reconnects one client (`duplicate`: the same TLS settings, so rustls may resume the
/// session). Each connection logs in (or, with --no-login, answers one ping), then closes; only
/// getting that far is timed.
async fn connections(s: &Settings, progress: &Progress) -> Result<Vec<ActorStats>, BenchError> {
    let mut config = client_config(s);
    config.heartbeat = None;
    config.reconnect_retries = Some(0);
    if !s.login {
        config.credentials = wharf_sdk::Credentials::None;
    }
    let warm_until = Instant::now() + s.warmup;
    while Instant::now() < warm_until {
        drop(ready(s, Client::connect(config.clone()).await?).await?);
    }
    progress.begin("connecting", s.messages * 2);
    let fresh = timed(0, s, progress, || Client::connect(config.clone())).await?;
    let first = Client::connect(config.clone()).await?;
    let again = timed(1, s, progress, || first.duplicate()).await?;
    Ok(vec![fresh, again])
}

/// A connection that has logged in is ready; one that does not log in is once it has answered
/// a ping (so the server has finished its side of the TLS handshake too).
async fn ready(s: &Settings, client: Client) -> Result<Client, BenchError> {
    if !s.login {
        client.ping().await?;
    }
    Ok(client)
}

/// Makes `--connections` connections with `open` one after another; times each until it is
/// ready (the rate counts that time only, not closing).
async fn timed<F: std::future::Future<Output = wharf_sdk::Result<Client>>>(
    id: u32,
    s: &Settings,
    progress: &Progress,
    mut open: impl FnMut() -> F,
) -> Result<ActorStats, BenchError> {
    let mut stats = ActorStats::new(Role::Connector, id, LatencyKind::Connect);
    for _ in 0..s.messages {
        let t = Instant::now();
        let client = ready(s, open().await?).await?;
        let took = t.elapsed();
        stats.elapsed += took;
        record(&mut stats.latency, took.as_micros() as u64, 1);
        drop(client);
        stats.messages += 1;
        progress.add(1, 0);
    }
    Ok(stats)
}

/// Where the run's data lives.
#[derive(Debug, Clone)]
struct Place {
    stream: Identifier,
    topic: Identifier,
}

pub async fn run(s: Arc<Settings>, progress: Arc<Progress>) -> Result<Vec<ActorStats>, BenchError> {
    if s.workload == Workload::Connect {
        return connections(&s, &progress).await;
    }
    let admin = connect(&s).await?;
    let stream_name = format!("wharf-bench-{}", s.run_id);
    admin.create_stream(&stream_name).await?;
    let place = Place {
        stream: Identifier::Name(stream_name),
        topic: Identifier::Name(TOPIC.into()),
    };
    let result = run_in(&admin, &place, Arc::clone(&s), progress).await;
    // Clean up whatever happened.
    if let Err(e) = admin.delete_stream(&place.stream).await {
        eprintln!("wharf-bench: could not delete the benchmark stream: {e}");
    }
    result
}

async fn run_in(
    admin: &Client,
    place: &Place,
    s: Arc<Settings>,
    progress: Arc<Progress>,
) -> Result<Vec<ActorStats>, BenchError> {
    admin
        .create_topic(&place.stream, TOPIC, s.partitions, TopicOptions::default())
        .await?;
    if let Some(d) = s.durability {
        let d = match d {
            DurabilityArg::Os => Durability::Os,
            DurabilityArg::Fsync => Durability::Fsync,
        };
        admin
            .set_topic_durability(&place.stream, &place.topic, Some(d))
            .await
            .map_err(|e| BenchError::Setup(format!("--durability needs a Wharf server: {e}")))?;
    }
    let per_partition: Vec<u64> = match s.workload {
        Workload::PinnedConsumer | Workload::BalancedConsumerGroup => {
            let counts: Vec<u64> = (0..s.partitions)
                .map(|p| Settings::share(s.messages, s.partitions, p))
                .collect();
            fill(&s, place, &counts, &progress).await?;
            counts
        }
        _ => s.per_partition_pinned(),
    };
    if s.workload == Workload::BalancedConsumerGroup {
        admin
            .create_consumer_group(&place.stream, &place.topic, GROUP)
            .await?;
    }

    progress.begin("measuring", s.messages);
    let coverage = Arc::new(Coverage::new(s.partitions));
    let mut tasks = tokio::task::JoinSet::new();
    if s.workload.produces() {
        for id in 0..s.producers {
            let client = connect(&s).await?;
            let (s, place, progress) = (Arc::clone(&s), place.clone(), Arc::clone(&progress));
            tasks.spawn(async move { produce(&s, id, &client, &place, &progress).await });
        }
    }
    if s.workload.consumes() {
        for id in 0..s.consumers {
            let client = connect(&s).await?;
            let (s, place, progress) = (Arc::clone(&s), place.clone(), Arc::clone(&progress));
            let per_partition = per_partition.clone();
            let coverage = Arc::clone(&coverage);
            tasks.spawn(async move {
                if s.workload == Workload::BalancedConsumerGroup {
                    consume_group(&s, id, &client, &place, &progress, &coverage).await
                } else {
                    consume(&s, id, &client, &place, &per_partition, &progress).await
                }
            });
        }
    }
    let mut actors = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(a)) => actors.push(a),
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(BenchError::Run(format!("an actor failed: {e}"))),
        }
    }
    actors.sort_by_key(|a| (a.role == Role::Consumer, a.id));
    Ok(actors)
}

/// Puts `counts[p]` messages into each partition before a consumer workload (not timed).
async fn fill(
    s: &Arc<Settings>,
    place: &Place,
    counts: &[u64],
    progress: &Arc<Progress>,
) -> Result<(), BenchError> {
    progress.begin("filling", counts.iter().sum());
    let mut tasks = tokio::task::JoinSet::new();
    for (p, &count) in counts.iter().enumerate() {
        let client = connect(s).await?;
        let (s, place, progress) = (Arc::clone(s), place.clone(), Arc::clone(progress));
        tasks.spawn(async move {
            let mut sent = 0;
            let mut pool = payload::Pool::default();
            while sent < count {
                let n = (count - sent).min(u64::from(s.batch));
                let (all, parts) = pool.batch(n as usize, s.message_size, true);
                let messages: Vec<Message> = parts.into_iter().map(Message::new).collect();
                client
                    .send_messages(
                        &place.stream,
                        &place.topic,
                        &Partitioning::PartitionId(p as u32),
                        &messages,
                    )
                    .await?;
                drop(messages);
                pool.give_back(all);
                sent += n;
                progress.add(n, n * s.message_size as u64);
            }
            Ok::<(), BenchError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| BenchError::Run(format!("filling failed: {e}")))??;
    }
    Ok(())
}

/// Waits so that `sent` messages take at least `sent / per_second` from `start`.
async fn pace(start: Instant, sent: u64, per_second: Option<f64>) {
    if let Some(r) = per_second {
        let due = start + Duration::from_secs_f64(sent as f64 / r);
        tokio::time::sleep_until(due.into()).await;
    }
}

fn per_actor_rate(s: &Settings, actors: u32) -> Option<f64> {
    s.rate.map(|r| r as f64 / f64::from(actors.max(1)))
}

async fn produce(
    s: &Settings,
    id: u32,
    client: &Client,
    place: &Place,
    progress: &Progress,
) -> Result<ActorStats, BenchError> {
    let count = Settings::share(s.messages, s.producers, id);
    let partitioning = match s.workload {
        Workload::BalancedProducer => Partitioning::Balanced,
        _ => Partitioning::PartitionId(id),
    };
    let rate = per_actor_rate(s, s.producers);
    let mut stats = ActorStats::new(Role::Producer, id, LatencyKind::Send);
    let mut pool = payload::Pool::default();
    let warm_until = Instant::now() + s.warmup;
    let warm_start = Instant::now();
    let mut warm_sent = 0u64;
    while Instant::now() < warm_until {
        pace(warm_start, warm_sent, rate).await;
        let n = u64::from(s.batch);
        let (all, parts) = pool.batch(n as usize, s.message_size, false);
        let messages: Vec<Message> = parts.into_iter().map(Message::new).collect();
        send(client, place, &partitioning, id, &messages).await?;
        drop(messages);
        pool.give_back(all);
        warm_sent += n;
    }
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < count {
        pace(start, sent, rate).await;
        let n = (count - sent).min(u64::from(s.batch));
        let (all, parts) = pool.batch(n as usize, s.message_size, true);
        let messages: Vec<Message> = parts.into_iter().map(Message::new).collect();
        let t = Instant::now();
        let retries = send(client, place, &partitioning, id, &messages).await?;
        drop(messages);
        pool.give_back(all);
        record(&mut stats.latency, t.elapsed().as_micros() as u64, n);
        stats.errors += retries;
        progress.errors.fetch_add(retries, Ordering::Relaxed);
        sent += n;
        progress.add(n, n * s.message_size as u64);
    }
    stats.elapsed = start.elapsed();
    stats.messages = sent;
    stats.bytes = sent * s.message_size as u64;
    Ok(stats)
}

/// Sends one request; a failed one is retried a few times (the client reconnects in between).
/// Returns the retries it took.
async fn send(
    client: &Client,
    place: &Place,
    partitioning: &Partitioning,
    id: u32,
    messages: &[Message],
) -> Result<u64, BenchError> {
    let mut tries = 0;
    loop {
        match client
            .send_messages(&place.stream, &place.topic, partitioning, messages)
            .await
        {
            Ok(()) => return Ok(tries),
            Err(e) if tries < 3 => {
                eprintln!("wharf-bench: producer {id}: send failed, retrying: {e}");
                tries += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A consumer reading its partitions by offset (pinned-consumer and end-to-end), one poll
/// request per partition in turn: with more partitions than consumers (e.g. `--consumers 1
/// --partitions 4`) one connection polls each of its partitions round-robin.
async fn consume(
    s: &Settings,
    id: u32,
    client: &Client,
    place: &Place,
    per_partition: &[u64],
    progress: &Progress,
) -> Result<ActorStats, BenchError> {
    let mine = s.partitions_of(id, s.consumers);
    let end_to_end = s.workload == Workload::EndToEnd;
    let kind = if end_to_end {
        LatencyKind::EndToEnd
    } else {
        LatencyKind::Poll
    };
    let mut stats = ActorStats::new(Role::Consumer, id, kind);
    let who = ConsumerKind::Single(Identifier::Name(format!("wharf-bench-{id}")));
    let want: Vec<u64> = mine.iter().map(|&p| per_partition[p as usize]).collect();
    let expected: u64 = want.iter().sum();

    // Warm-up (pinned-consumer): read for a while from the start, then measure from the start.
    if !end_to_end && !s.warmup.is_zero() {
        let until = Instant::now() + s.warmup;
        let mut next = vec![0u64; mine.len()];
        while Instant::now() < until {
            for (i, &p) in mine.iter().enumerate() {
                let polled = client
                    .poll_messages(
                        &place.stream,
                        &place.topic,
                        Some(p),
                        &who,
                        PollingStrategy::Offset(next[i]),
                        s.batch,
                        false,
                    )
                    .await?;
                next[i] = polled.messages.last().map_or(0, |m| m.offset + 1);
            }
        }
    }

    let mut next = vec![0u64; mine.len()];
    let mut got = vec![0u64; mine.len()];
    // In end-to-end the clock starts with the first measured message (the producers may still
    // be warming up before that).
    let mut start = Instant::now();
    let mut started = !end_to_end;
    let mut last_news = Instant::now();
    while stats.messages < expected {
        let mut any = false;
        for (i, &p) in mine.iter().enumerate() {
            if got[i] >= want[i] {
                continue;
            }
            let t = Instant::now();
            let polled = client
                .poll_messages(
                    &place.stream,
                    &place.topic,
                    Some(p),
                    &who,
                    PollingStrategy::Offset(next[i]),
                    s.batch,
                    false,
                )
                .await?;
            let took = t.elapsed().as_micros() as u64;
            let received = payload::now_us();
            let mut n = 0u64;
            for m in &polled.messages {
                next[i] = m.offset + 1;
                let Some((sent_at, measured)) = payload::read(&m.payload) else {
                    continue;
                };
                if !measured {
                    continue;
                }
                if !started {
                    start = Instant::now();
                    started = true;
                }
                n += 1;
                stats.bytes += m.payload.len() as u64;
                if end_to_end {
                    record(&mut stats.latency, received.saturating_sub(sent_at), 1);
                }
            }
            if !polled.messages.is_empty() {
                any = true;
                if !end_to_end {
                    record(&mut stats.latency, took, 1);
                }
            }
            got[i] += n;
            stats.messages += n;
            progress.add(n, n * s.message_size as u64);
        }
        if any {
            last_news = Instant::now();
        } else {
            if last_news.elapsed() > IDLE_LIMIT {
                return Err(BenchError::Run(format!(
                    "consumer {id}: nothing new for {IDLE_LIMIT:?} (read {} of {expected})",
                    stats.messages
                )));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    stats.elapsed = start.elapsed();
    stats.per_partition = mine.iter().copied().zip(got).collect();
    Ok(stats)
}

/// A member of one consumer group; the server assigns the partitions, and the members stop
/// when the group has read everything.
async fn consume_group(
    s: &Settings,
    id: u32,
    client: &Client,
    place: &Place,
    progress: &Progress,
    coverage: &Coverage,
) -> Result<ActorStats, BenchError> {
    let group = Identifier::Name(GROUP.into());
    client
        .join_consumer_group(&place.stream, &place.topic, &group)
        .await?;
    let who = ConsumerKind::Group(group.clone());
    let mut stats = ActorStats::new(Role::Consumer, id, LatencyKind::Poll);
    let start = Instant::now();
    let mut last_news = Instant::now();
    while coverage.total() < s.messages {
        let t = Instant::now();
        let polled = client
            .poll_messages(
                &place.stream,
                &place.topic,
                None,
                &who,
                PollingStrategy::Next,
                s.batch,
                true,
            )
            .await?;
        let n = polled.messages.len() as u64;
        if n == 0 {
            if last_news.elapsed() > IDLE_LIMIT {
                return Err(BenchError::Run(format!(
                    "group member {id}: nothing new for {IDLE_LIMIT:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        last_news = Instant::now();
        record(&mut stats.latency, t.elapsed().as_micros() as u64, 1);
        stats.messages += n;
        *stats.per_partition.entry(polled.partition_id).or_default() += n;
        stats.bytes += polled
            .messages
            .iter()
            .map(|m| m.payload.len() as u64)
            .sum::<u64>();
        if let Some(last) = polled.messages.last() {
            coverage.saw(polled.partition_id, last.offset);
        }
        progress.add(n, n * s.message_size as u64);
    }
    stats.elapsed = start.elapsed();
    if let Err(e) = client
        .leave_consumer_group(&place.stream, &place.topic, &group)
        .await
    {
        eprintln!("wharf-bench: group member {id}: leaving failed: {e}");
    }
    Ok(stats)
}
