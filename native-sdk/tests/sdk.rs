//! wharf-sdk against a real wharf-server (started in-process on an ephemeral port), with a TCP
//! proxy in between where a test needs to cut connections or make the server stop reading.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use wharf_gateway::config::{Overrides, ServerConfig};
use wharf_sdk::wire::{PartitionLagWire, MAX_GROUP_ID_LEN, MAX_SNAPSHOT_LAG_ROWS};
use wharf_sdk::{
    AutoCommit, BackgroundConfig, Backpressure, Client, ClientConfig, Consumer, ConsumerKind,
    Error, HeaderValue, Identifier, Message, Partitioner, Partitioning, PollingStrategy, Producer,
    TopicOptions,
};

const WAIT: Duration = Duration::from_secs(60);

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out after {WAIT:?}: {what}"))
}

struct Server {
    addr: SocketAddr,
    _running: wharf_gateway::Running,
    _dir: tempfile::TempDir,
}

async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let overrides = Overrides {
        data_dir: Some(dir.path().to_path_buf()),
        native_addr: Some("127.0.0.1:0".into()),
        kafka_addr: Some("127.0.0.1:0".into()),
        ..Overrides::default()
    };
    let running = wharf_gateway::start(ServerConfig::load_from(&overrides, &[]).unwrap())
        .await
        .unwrap();
    Server {
        addr: running.native_addr,
        _running: running,
        _dir: dir,
    }
}

fn id(s: &str) -> Identifier {
    Identifier::Name(s.into())
}

async fn connect(addr: impl ToString) -> Client {
    let mut config = ClientConfig::new(addr.to_string()).with_password("iggy", "iggy");
    config.reconnect_backoff = Duration::from_millis(20);
    config.heartbeat = None;
    within("connect", Client::connect(config)).await.unwrap()
}

async fn topic(client: &Client, partitions: u32) {
    client.create_stream("s").await.unwrap();
    client
        .create_topic(&id("s"), "t", partitions, TopicOptions::default())
        .await
        .unwrap();
}

fn seq(m: &wharf_sdk::ReceivedMessage) -> u64 {
    match m
        .headers
        .iter()
        .find(|(k, _)| k == "seq")
        .map(|(_, v)| v.clone())
    {
        Some(HeaderValue::U64(v)) => v,
        other => panic!("message without a seq header: {other:?}"),
    }
}

/// Every message of a partition, in stored order.
async fn read_partition(client: &Client, partition: u32) -> Vec<wharf_sdk::ReceivedMessage> {
    let mut out = Vec::new();
    loop {
        let polled = client
            .poll_messages(
                &id("s"),
                &id("t"),
                Some(partition),
                &ConsumerKind::Single(id("reader")),
                PollingStrategy::Offset(out.len() as u64),
                1000,
                false,
            )
            .await
            .unwrap();
        if polled.messages.is_empty() {
            return out;
        }
        out.extend(polled.messages);
    }
}

async fn stored_count(client: &Client) -> u64 {
    client
        .get_topic(&id("s"), &id("t"))
        .await
        .unwrap()
        .unwrap()
        .0
        .messages_count
}

/// Waits (bounded) until the topic holds `n` messages.
async fn until_stored(client: &Client, n: u64) {
    within(&format!("{n} messages stored"), async {
        while stored_count(client).await < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(stored_count(client).await, n);
}

fn message(i: u64) -> Message {
    Message::new(format!("m{i}"))
        .with_header("seq", i)
        .with_key(format!("k{}", i % 5))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_producer_keeps_order_per_key_and_shutdown_delivers_everything() {
    let server = server().await;
    let client = connect(server.addr).await;
    topic(&client, 3).await;
    let producer = Producer::builder(&client, id("s"), id("t"))
        .background(BackgroundConfig {
            linger: Duration::from_millis(2),
            batch_messages: 100,
            ..BackgroundConfig::default()
        })
        .partitioner(Partitioner::Key)
        .build()
        .await
        .unwrap();
    let mut handles = Vec::new();
    for i in 0..5000 {
        handles.push(producer.send(message(i)).await.unwrap());
    }
    for h in handles.drain(..100) {
        within("delivery", h).await.unwrap();
    }
    within("shutdown", producer.shutdown()).await;
    assert_eq!(
        stored_count(&client).await,
        5000,
        "count stored equals count sent after shutdown()"
    );
    for p in 0..3 {
        let msgs = read_partition(&client, p).await;
        let seqs: Vec<u64> = msgs.iter().map(seq).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "partition {p} out of order"
        );
        for s in &seqs {
            assert_eq!(
                wharf_protocol::partition_for_key(format!("k{}", s % 5).as_bytes(), 3),
                p,
                "key rule"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_producer_still_delivers_what_it_holds() {
    let server = server().await;
    let client = connect(server.addr).await;
    topic(&client, 2).await;
    let producer = Producer::builder(&client, id("s"), id("t"))
        .background(BackgroundConfig {
            linger: Duration::from_millis(50),
            ..BackgroundConfig::default()
        })
        .build()
        .await
        .unwrap();
    for i in 0..3000 {
        producer.send(message(i)).await.unwrap();
    }
    drop(producer);
    until_stored(&client, 3000).await;
}

/// A TCP proxy that can cut every connection through it, or stop reading from clients.
struct Proxy {
    addr: SocketAddr,
    paused: watch::Sender<bool>,
    generation: watch::Sender<u64>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (paused, paused_rx) = watch::channel(false);
        let (generation, gen_rx) = watch::channel(0u64);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let mut paused = paused_rx.clone();
                let mut cut1 = gen_rx.clone();
                let mut cut2 = gen_rx.clone();
                cut1.borrow_and_update();
                cut2.borrow_and_update();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        // While paused, nothing is read from the client: its writes back up.
                        tokio::select! {
                            r = paused.wait_for(|p| !*p) => if r.is_err() { return },
                            _ = cut1.changed() => return,
                        }
                        tokio::select! {
                            n = cr.read(&mut buf) => match n {
                                Ok(0) | Err(_) => return,
                                Ok(n) => if sw.write_all(&buf[..n]).await.is_err() { return },
                            },
                            _ = cut1.changed() => return,
                        }
                    }
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        tokio::select! {
                            n = sr.read(&mut buf) => match n {
                                Ok(0) | Err(_) => return,
                                Ok(n) => if cw.write_all(&buf[..n]).await.is_err() { return },
                            },
                            _ = cut2.changed() => return,
                        }
                    }
                });
            }
        });
        Proxy {
            addr,
            paused,
            generation,
        }
    }

    fn cut(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    fn pause(&self, p: bool) {
        self.paused.send_replace(p);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_per_partition_holds_when_connections_are_cut_mid_send() {
    let server = server().await;
    let admin = connect(server.addr).await;
    topic(&admin, 2).await;
    let proxy = Proxy::start(server.addr).await;
    let client = connect(proxy.addr).await;
    let producer = Producer::builder(&client, id("s"), id("t"))
        .background(BackgroundConfig {
            linger: Duration::from_millis(1),
            batch_messages: 50,
            retries: 20,
            retry_backoff: Duration::from_millis(10),
            ..BackgroundConfig::default()
        })
        .partitioner(Partitioner::Key)
        .build()
        .await
        .unwrap();
    let mut handles = Vec::new();
    for i in 0..4000u64 {
        handles.push(producer.send(message(i)).await.unwrap());
        if i % 500 == 250 {
            proxy.cut();
        }
    }
    for h in handles {
        within("delivery after cuts", h).await.unwrap();
    }
    within("shutdown", producer.shutdown()).await;
    let mut seen = std::collections::HashSet::new();
    for p in 0..2 {
        // A batch the server stored just before its connection was cut is sent again (at least
        // once); after dropping such repeats, each partition is in send order with nothing lost.
        let mut last = None;
        for m in read_partition(&admin, p).await {
            let s = seq(&m);
            if !seen.insert(s) {
                continue;
            }
            assert!(
                last.is_none_or(|l| l < s),
                "partition {p}: {s} after {last:?}"
            );
            last = Some(s);
        }
    }
    assert_eq!(seen.len(), 4000, "messages lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_modes_when_the_server_stops_reading() {
    let server = server().await;
    let admin = connect(server.addr).await;
    topic(&admin, 1).await;
    let proxy = Proxy::start(server.addr).await;
    let client = connect(proxy.addr).await;
    let big = || Message::new(vec![7u8; 64 * 1024]);
    let build = |mode| {
        Producer::builder(&client, id("s"), id("t")).background(BackgroundConfig {
            buffer_bytes: 512 * 1024,
            linger: Duration::from_millis(1),
            backpressure: mode,
            ..BackgroundConfig::default()
        })
    };

    // FailImmediately: once the buffer is full, send errs at once and gives the message back.
    let producer = build(Backpressure::FailImmediately).build().await.unwrap();
    proxy.pause(true);
    let mut refused = None;
    for _ in 0..1000 {
        if let Err(e) = producer.send(big()).await {
            refused = Some(e);
            break;
        }
    }
    let refused = refused.expect("the buffer never filled");
    assert_eq!(refused.message.payload.len(), 64 * 1024);
    proxy.pause(false);
    within("shutdown", producer.shutdown()).await;

    // BlockWithTimeout: errs after its timeout.
    let producer = build(Backpressure::BlockWithTimeout(Duration::from_millis(300)))
        .build()
        .await
        .unwrap();
    proxy.pause(true);
    let started = tokio::time::Instant::now();
    let err = within("timeout", async {
        loop {
            if let Err(e) = producer.send(big()).await {
                return e;
            }
        }
    })
    .await;
    assert!(matches!(err.error, Error::Timeout(_)), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    proxy.pause(false);
    within("shutdown", producer.shutdown()).await;

    // Block: waits while the server does not read, and goes on once it does.
    let producer = Arc::new(build(Backpressure::Block).build().await.unwrap());
    proxy.pause(true);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let sender = {
        let producer = Arc::clone(&producer);
        tokio::spawn(async move {
            for i in 0..40 {
                producer.send(big()).await.unwrap();
                let _ = tx.send(i);
            }
        })
    };
    // Fill the buffer, then check the sender is stuck: no progress while paused.
    let mut sent = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
        sent += 1;
    }
    assert!(sent < 40, "send never blocked");
    proxy.pause(false);
    within("blocked sends resume", sender).await.unwrap();
    let producer = Arc::into_inner(producer).unwrap();
    within("shutdown", producer.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_error_callback_gets_exactly_the_undelivered_messages() {
    let server = server().await;
    let client = connect(server.addr).await;
    topic(&client, 1).await;
    let failed: Arc<Mutex<Vec<u64>>> = Arc::default();
    let sink = Arc::clone(&failed);
    let producer = Producer::builder(&client, id("s"), id("t"))
        .background(BackgroundConfig {
            linger: Duration::from_millis(1),
            ..BackgroundConfig::default()
        })
        .on_error(move |f| {
            sink.lock()
                .unwrap()
                .extend(f.messages.iter().map(|m| match &m.headers[0].1 {
                    HeaderValue::U64(v) => *v,
                    _ => u64::MAX,
                }));
        })
        .build()
        .await
        .unwrap();
    for i in 0..100 {
        producer.send(message(i)).await.unwrap();
    }
    producer.flush().await;
    client.delete_topic(&id("s"), &id("t")).await.unwrap();
    let mut handles = Vec::new();
    for i in 100..150 {
        handles.push(producer.send(message(i)).await.unwrap());
    }
    for h in handles {
        assert!(within("failed delivery", h).await.is_err());
    }
    producer.flush().await;
    let mut got = failed.lock().unwrap().clone();
    got.sort_unstable();
    assert_eq!(got, (100..150).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_group_of_two_splits_and_rebalances_when_one_leaves() {
    let server = server().await;
    let admin = connect(server.addr).await;
    topic(&admin, 4).await;
    for p in 0..4u32 {
        let msgs: Vec<Message> = (0..25).map(|i| message(u64::from(p) * 100 + i)).collect();
        admin
            .send_messages(
                &id("s"),
                &id("t"),
                &wharf_sdk::Partitioning::PartitionId(p),
                &msgs,
            )
            .await
            .unwrap();
    }
    let (c1, c2) = (connect(server.addr).await, connect(server.addr).await);
    let mut first = Consumer::group(&c1, "g", id("s"), id("t"))
        .auto_commit(AutoCommit::OnPoll)
        .build()
        .await
        .unwrap();
    let mut second = Consumer::group(&c2, "g", id("s"), id("t"))
        .auto_commit(AutoCommit::AfterEach)
        .build()
        .await
        .unwrap();
    let group = admin
        .get_consumer_group(&id("s"), &id("t"), &id("g"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(group.members.len(), 2);
    let owned: HashMap<u32, Vec<u32>> = group.members.iter().cloned().collect();
    assert!(owned.values().all(|p| p.len() == 2), "{owned:?}");

    // Each reads 50 messages, all from its own two partitions.
    let mut from_first = std::collections::HashSet::new();
    for _ in 0..50 {
        let m = within("first member", first.next()).await.unwrap().unwrap();
        from_first.insert(m.partition_id);
    }
    assert_eq!(from_first.len(), 2);
    within("first leaves", first.shutdown()).await.unwrap();
    let group = admin
        .get_consumer_group(&id("s"), &id("t"), &id("g"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(group.members.len(), 1);
    assert_eq!(group.members[0].1, vec![0, 1, 2, 3]);
    // The remaining member now gets everything not yet consumed: the other 50 messages.
    let mut rest = 0;
    while rest < 50 {
        let m = within("second member after rebalance", second.next_message())
            .await
            .unwrap()
            .unwrap();
        assert!(
            !from_first.contains(&m.partition_id),
            "re-read a partition the first member finished"
        );
        rest += 1;
    }
    within("second leaves", second.shutdown()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_waits_for_earlier_messages_not_for_concurrent_senders() {
    let server = server().await;
    let client = connect(server.addr).await;
    topic(&client, 1).await;
    let producer = Arc::new(
        Producer::builder(&client, id("s"), id("t"))
            .background(BackgroundConfig {
                linger: Duration::from_millis(20),
                ..BackgroundConfig::default()
            })
            .build()
            .await
            .unwrap(),
    );
    let mine: Vec<_> = {
        let mut v = Vec::new();
        for i in 0..100 {
            v.push(producer.send(message(i)).await.unwrap());
        }
        v
    };
    // Another task keeps sending the whole time flush() runs.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy = {
        let (producer, stop) = (Arc::clone(&producer), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut i = 1000;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 500_000 {
                producer.send(message(i)).await.unwrap();
                i += 1;
                if i % 64 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    within("flush while another task sends", producer.flush()).await;
    for h in mine {
        // Everything sent before flush() is resolved by the time it returns.
        assert!(
            tokio::time::timeout(Duration::ZERO, h).await.is_ok(),
            "flush returned before an earlier message resolved"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    busy.await.unwrap();
    let producer = Arc::into_inner(producer).unwrap();
    within("shutdown", producer.shutdown()).await;
}

/// Review 17 #12: a config value over the wire's 1024 bytes whose cut would fall inside a
/// UTF-8 character is refused by the SDK (InvalidInput) before anything is sent, never cut;
/// the topic's config is unchanged and the connection still works. At the limit it is sent
/// whole (and judged by the server: here an unknown policy, so refused there).
#[tokio::test]
async fn an_over_long_config_value_is_refused_not_cut() {
    let server = server().await;
    let client = connect(server.addr).await;
    topic(&client, 1).await;
    let value = format!("{}é", "x".repeat(1023));
    let e = client
        .set_topic_config(&id("s"), &id("t"), &[("cleanup.policy", Some(&value))])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidInput(m) if m.contains("1025 bytes")),
        "{e:?}"
    );
    let policy = |entries: Vec<wharf_sdk::TopicConfigEntry>| {
        entries
            .into_iter()
            .find(|c| c.name == "cleanup.policy")
            .map(|c| c.value)
    };
    let configs = within("get config", client.get_topic_config(&id("s"), &id("t")))
        .await
        .unwrap();
    assert_eq!(policy(configs).as_deref(), Some("delete"));
    let at_limit = format!("{}é", "x".repeat(1022));
    let e = within(
        "set config",
        client.set_topic_config(&id("s"), &id("t"), &[("cleanup.policy", Some(&at_limit))]),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, Error::Server { .. }), "{e:?}");
    within(
        "set config",
        client.set_topic_config(&id("s"), &id("t"), &[("cleanup.policy", Some("compact"))]),
    )
    .await
    .unwrap();
}

/// Sends `count` messages of 10 bytes to one partition of s/t.
async fn send_to(client: &Client, partition: u32, count: usize) {
    let messages: Vec<Message> = (0..count).map(|_| Message::new("0123456789")).collect();
    within(
        "send",
        client.send_messages(
            &id("s"),
            &id("t"),
            &Partitioning::PartitionId(partition),
            &messages,
        ),
    )
    .await
    .unwrap();
}

/// Consumer lag through Wharf's command 10_005 and the top lags of the snapshot (10_006), with
/// exact values: 5 and 3 messages on two partitions, the group's last consumed offsets 1 and
/// 2, so committed next offsets 2 and 3 and lags 3 and 0. The topic of stream `s` (not the
/// Kafka default stream) is named `s.t`, as Kafka clients see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_lag_and_the_metrics_snapshot_report_exact_positions() {
    let before_start = std::time::Instant::now();
    let server = server().await;
    let client = connect(server.addr).await;
    topic(&client, 2).await;
    client
        .create_consumer_group(&id("s"), &id("t"), "workers")
        .await
        .unwrap();
    send_to(&client, 0, 5).await;
    send_to(&client, 1, 3).await;
    let group = ConsumerKind::Group(id("workers"));
    for (partition, last_consumed) in [(0, 1), (1, 2)] {
        within(
            "store offset",
            client.store_consumer_offset(
                &group,
                &id("s"),
                &id("t"),
                Some(partition),
                last_consumed,
            ),
        )
        .await
        .unwrap();
    }
    let row = |partition, committed, end_offset, lag| PartitionLagWire {
        group: "workers".into(),
        stream: "s".into(),
        topic: "s.t".into(),
        partition,
        committed,
        end_offset,
        lag,
    };
    let all = within("lag", client.consumer_lag(None)).await.unwrap();
    assert_eq!(all, vec![row(0, 2, 5, 3), row(1, 3, 3, 0)]);
    let one = within("lag of workers", client.consumer_lag(Some("workers")))
        .await
        .unwrap();
    assert_eq!(one, all);
    let none = within("lag of nobody", client.consumer_lag(Some("nobody")))
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");
    // Refused before sending: an empty id, and an id over the store's bound.
    for bad in [String::new(), "g".repeat(MAX_GROUP_ID_LEN + 1)] {
        let e = client.consumer_lag(Some(&bad)).await.unwrap_err();
        assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
    }

    // The server runs in this process: the kernel's CPU count for it, made non-zero first
    // (bounded), brackets the snapshot's.
    let cpu_before = cpu_seconds_counted();
    let snapshot = within("snapshot", client.metrics_snapshot(1))
        .await
        .unwrap();
    let cpu_after = proc_cpu_seconds();
    assert_eq!(snapshot.lag, vec![row(0, 2, 5, 3)], "the largest lag only");
    assert_eq!(
        snapshot
            .topics
            .iter()
            .map(|t| (t.stream.as_str(), t.topic.as_str()))
            .collect::<Vec<_>>(),
        vec![("s", "s.t")],
        "every topic is listed, counted or not"
    );
    assert!(snapshot.resident_bytes > 0 && snapshot.threads > 0 && snapshot.open_fds > 0);
    assert!(
        cpu_before <= snapshot.cpu_seconds && snapshot.cpu_seconds <= cpu_after,
        "{cpu_before} <= {} <= {cpu_after}",
        snapshot.cpu_seconds
    );
    // The uptime is the monotonic clock's since the broker opened: within this test's.
    let uptime = Duration::from_micros(snapshot.uptime_us);
    assert!(
        uptime > Duration::ZERO && uptime <= before_start.elapsed(),
        "{uptime:?}"
    );
    let e = client
        .metrics_snapshot(MAX_SNAPSHOT_LAG_ROWS + 1)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
}

/// The two Wharf commands need read_servers, as Iggy's stats do: a user without it is refused
/// with Iggy's Unauthorized (41).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_and_snapshot_need_read_servers() {
    let server = server().await;
    let root = connect(server.addr).await;
    root.create_user("viewer", "secret-pw", true, None)
        .await
        .unwrap();
    let mut config =
        ClientConfig::new(server.addr.to_string()).with_password("viewer", "secret-pw");
    config.heartbeat = None;
    let viewer = within("connect", Client::connect(config)).await.unwrap();
    let e = viewer.consumer_lag(None).await.unwrap_err();
    assert_eq!(e.server_code(), Some(41), "{e:?}");
    let e = viewer.metrics_snapshot(5).await.unwrap_err();
    assert_eq!(e.server_code(), Some(41), "{e:?}");
}

/// This process's I/O counters (`/proc/self/io`): (read_bytes, write_bytes), what stats report.
fn proc_io() -> (u64, u64) {
    let io = std::fs::read_to_string("/proc/self/io").unwrap();
    let field = |key: &str| -> u64 {
        io.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in /proc/self/io: {io}"))
    };
    (field("read_bytes:"), field("write_bytes:"))
}

/// This process's CPU seconds as the kernel counts them (utime + stime of `/proc/self/stat`,
/// in USER_HZ = 100 ticks a second).
fn proc_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The command name (field 2) may hold spaces: count from the last ')'.
    let after_name = &stat[stat.rfind(')').unwrap() + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of `man 5 proc`; field 3 is the first after the name.
    let ticks = |n: usize| -> u64 { fields[n - 3].parse().unwrap() };
    (ticks(14) + ticks(15)) as f64 / 100.0
}

/// Works until the kernel has counted at least one more CPU tick for this process (bounded).
fn burn_one_cpu_tick() {
    let start = proc_cpu_seconds();
    let mut x = 0u64;
    for i in 0..4_000_000_000u64 {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i);
        if i % 1_000_000 == 0 && proc_cpu_seconds() > start {
            std::hint::black_box(x);
            return;
        }
    }
    panic!("the kernel counted no more CPU time for this process after 4e9 rounds of work");
}

/// [`proc_cpu_seconds`] once the kernel has counted at least one tick for this process:
/// works until it has (bounded), so a test may require a non-zero count.
fn cpu_seconds_counted() -> f64 {
    let mut x = 0u64;
    for i in 0..4_000_000_000u64 {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i);
        if i % 1_000_000 == 0 {
            let cpu = proc_cpu_seconds();
            if cpu > 0.0 {
                std::hint::black_box(x);
                return cpu;
            }
        }
    }
    panic!("the kernel counted no CPU time for this process after 4e9 rounds of work");
}

/// The stats fields that were 0 before issue 19 are filled, checked only where the kernel
/// guarantees an answer: RSS, threads, the run time (monotonic) and the data directory's disk
/// are never 0; the I/O counters are this process's `/proc/self/io` (the server runs here),
/// bracketed by the test's own readings (on tmpfs they stay 0, so no lower bound beyond
/// that); CPU use is a percentage of one core and of the machine (up to 100), non-zero once
/// this process has burnt CPU. The CPU meter's
/// arithmetic is tested with injected readings in `gateway/src/metrics/process.rs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_report_cpu_memory_io_threads_and_disk() {
    let before_start = std::time::Instant::now();
    let server = server().await;
    let client = connect(server.addr).await;
    topic(&client, 1).await;
    send_to(&client, 0, 100).await;
    // CPU: this process burns CPU (at least one kernel tick more each round), then asks; the
    // meter answers for its last closed window (at least a second), so a few rounds may pass
    // before a window holding the work closes. Bound: `CPU_ROUNDS` rounds of one tick each.
    // Stats hard-coding 0 (issue 19's complaint) fail here.
    const CPU_ROUNDS: usize = 1000;
    let mut busy = None;
    for _ in 0..CPU_ROUNDS {
        burn_one_cpu_tick();
        let s = within("stats", client.get_stats()).await.unwrap();
        if s.cpu_usage > 0.0 && s.total_cpu_usage > 0.0 {
            busy = Some(s);
            break;
        }
    }
    let s = busy.unwrap_or_else(|| {
        panic!("cpu_usage and total_cpu_usage stayed 0 over {CPU_ROUNDS} rounds of CPU work")
    });
    // A percentage of one core: not bounded here by the CPU count, as 10 ms ticks against a
    // young process's age may overshoot it a little.
    assert!(s.cpu_usage.is_finite(), "cpu_usage {}", s.cpu_usage);
    assert!(
        s.total_cpu_usage <= 100.0,
        "total_cpu_usage {}",
        s.total_cpu_usage
    );
    let (read_before, written_before) = proc_io();
    let s = within("stats", client.get_stats()).await.unwrap();
    let (read_after, written_after) = proc_io();
    assert!(
        s.memory_usage > 0 && s.memory_usage < s.total_memory,
        "{s:?}"
    );
    assert!(
        (written_before..=written_after).contains(&s.written_bytes),
        "written_bytes {} not within this process's {written_before}..={written_after}",
        s.written_bytes
    );
    assert!(
        (read_before..=read_after).contains(&s.read_bytes),
        "read_bytes {} not within this process's {read_before}..={read_after}",
        s.read_bytes
    );
    // The runtime's workers and the test's own thread at least.
    assert!(s.threads_count >= 3, "threads {}", s.threads_count);
    // The run time is the monotonic clock's since the broker opened: within this test's.
    let run_time = Duration::from_micros(s.run_time);
    assert!(
        run_time > Duration::ZERO && run_time <= before_start.elapsed(),
        "{run_time:?}"
    );
    assert!(
        s.total_disk_space > 0 && s.free_disk_space <= s.total_disk_space,
        "{s:?}"
    );
}
