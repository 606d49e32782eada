//! What a careless or hostile client can hold on both doors, and that the bounds hold: connection
//! caps per door and per address, the idle timeout, the request read timeout, the global request
//! budget (backpressure instead of memory) with its share per address and its reserve for small
//! requests, a shutdown that a client which reads nothing cannot hold up, and the native answer
//! to an oversize request reaching the client. Limits are scaled down in each server's configuration.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::time::Duration;

use compat_tests::{native_frame, root_login_frame, within, TestServer};
use iggy::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use wharf_gateway::config::ServerConfig;
use wharf_protocol::{codes, status};

#[derive(Debug, Clone, Copy)]
enum Door {
    Native,
    Kafka,
}

impl Door {
    fn addr(self, server: &TestServer) -> SocketAddr {
        match self {
            Door::Native => server.addr,
            Door::Kafka => server.kafka_addr,
        }
    }
}

/// Kafka ApiVersions v0: key 18, version 0, correlation id 7, null client id.
const API_VERSIONS_V0: [u8; 14] = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff];

/// Reads one native answer; its status.
async fn native_answer(c: &mut TcpStream) -> std::io::Result<u32> {
    let mut head = [0u8; 8];
    c.read_exact(&mut head).await?;
    let len = u32::from_le_bytes(head[4..].try_into().unwrap()) as usize;
    assert!(len < 1 << 20, "absurd answer length {len}");
    let mut body = vec![0u8; len];
    c.read_exact(&mut body).await?;
    Ok(u32::from_le_bytes(head[..4].try_into().unwrap()))
}

/// Sends the door's cheapest request (native ping, Kafka ApiVersions) and waits for the answer.
async fn served(door: Door, c: &mut TcpStream) -> bool {
    let ok = async {
        match door {
            Door::Native => {
                c.write_all(&native_frame(codes::PING, &[])).await?;
                Ok::<bool, std::io::Error>(native_answer(c).await? == 0)
            }
            Door::Kafka => {
                c.write_all(&API_VERSIONS_V0).await?;
                let mut len = [0u8; 4];
                c.read_exact(&mut len).await?;
                let mut body = vec![0u8; u32::from_be_bytes(len).min(1 << 20) as usize];
                c.read_exact(&mut body).await?;
                Ok(body[..4] == 7i32.to_be_bytes())
            }
        }
    };
    within("an answer or a close", ok).await.unwrap_or(false)
}

/// Waits until the server closes `c` (end of stream or reset), failing on any data.
async fn closed_by_server(what: &str, c: &mut TcpStream) {
    let mut buf = [0u8; 64];
    match within(what, c.read(&mut buf)).await {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("{what}: expected the server to close, got {n} bytes"),
    }
}

/// Connects to `to` from the loopback address `from` (127.0.0.x are all this host).
async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((from, 0)))
        .expect("bind a loopback source address");
    within("connect", socket.connect(to)).await.unwrap()
}

/// Polls `cond` until it holds (bounded by [`compat_tests::WAIT`]).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

fn limits(config: &mut ServerConfig, f: impl Fn(&mut wharf_gateway::config::ConnectionLimits)) {
    f(&mut config.native.limits);
    f(&mut config.kafka.limits);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_over_a_cap_is_closed_and_the_others_keep_working() {
    // Bounds: max_connections_per_ip = 2 and max_connections = 3, on each door.
    let server = TestServer::start_with(|c| {
        limits(c, |l| {
            l.max_connections = 3;
            l.max_connections_per_ip = 2;
        })
    })
    .await;
    for door in [Door::Native, Door::Kafka] {
        let to = door.addr(&server);
        let mut a1 = connect_from([127, 0, 0, 1], to).await;
        assert!(served(door, &mut a1).await, "{door:?}: first connection");
        let mut a2 = connect_from([127, 0, 0, 1], to).await;
        assert!(served(door, &mut a2).await, "{door:?}: second connection");
        // Third from the same address: over max_connections_per_ip.
        let mut a3 = connect_from([127, 0, 0, 1], to).await;
        closed_by_server("the third connection from one address", &mut a3).await;
        // Another address still gets in, up to max_connections ...
        let mut b1 = connect_from([127, 0, 0, 2], to).await;
        assert!(served(door, &mut b1).await, "{door:?}: another address");
        // ... and no further, whatever the address.
        let mut c1 = connect_from([127, 0, 0, 3], to).await;
        closed_by_server("a connection over max_connections", &mut c1).await;
        // The admitted ones never noticed.
        assert!(
            served(door, &mut a1).await,
            "{door:?}: a1 after the refusals"
        );
        assert!(
            served(door, &mut a2).await,
            "{door:?}: a2 after the refusals"
        );
        assert!(
            served(door, &mut b1).await,
            "{door:?}: b1 after the refusals"
        );
        // A closed connection gives its slot back.
        drop(a1);
        within("a slot freed by a closed connection", async {
            loop {
                let mut again = connect_from([127, 0, 0, 1], to).await;
                if served(door, &mut again).await {
                    break;
                }
            }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_after_connections_max_idle() {
    // Bound: connections_max_idle = 300 ms.
    let idle = Duration::from_millis(300);
    let server = TestServer::start_with(|c| limits(c, |l| l.idle_timeout = idle)).await;
    for door in [Door::Native, Door::Kafka] {
        let mut c = TcpStream::connect(door.addr(&server)).await.unwrap();
        let asked = Instant::now();
        assert!(served(door, &mut c).await, "{door:?}: served before idling");
        closed_by_server("an idle connection", &mut c).await;
        assert!(
            asked.elapsed() >= idle,
            "{door:?}: closed before connections_max_idle"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_takes_no_answers_is_closed_after_connections_max_idle() {
    // Bound: connections_max_idle = 300 ms also limits an answer the client takes no byte of.
    let idle = Duration::from_millis(300);
    let server = TestServer::start_with(|c| limits(c, |l| l.idle_timeout = idle)).await;
    let socket = TcpSocket::new_v4().unwrap();
    // A small receive window, so that unread answers soon stop the server's writes.
    socket.set_recv_buffer_size(4096).unwrap();
    let mut c = within("connect", socket.connect(server.kafka_addr))
        .await
        .unwrap();
    // About 15 MB of answers: more than the socket buffers hold.
    let pipelined: Vec<u8> = API_VERSIONS_V0.repeat(50_000);
    // Never reading: once the server gives up on an answer it closes, and our writes fail.
    within(
        "the server closes a connection that takes no answers",
        async {
            if c.write_all(&pipelined).await.is_err() {
                return;
            }
            while c.write_all(&API_VERSIONS_V0).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_is_closed_after_request_read_timeout() {
    // Bound: request_read_timeout = 300 ms (idle timeout far away, so it is not what fires).
    let read_timeout = Duration::from_millis(300);
    let server = TestServer::start_with(|c| {
        limits(c, |l| {
            l.request_read_timeout = read_timeout;
            l.idle_timeout = Duration::from_secs(600);
        })
    })
    .await;
    let half_frames: [(Door, &[u8]); 4] = [
        // Head whole, body declared 100 bytes, 10 sent.
        (
            Door::Native,
            &[104, 0, 0, 0, 1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        ),
        // Head cut short.
        (Door::Native, &[104, 0]),
        (
            Door::Kafka,
            &[0, 0, 0, 100, 0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff],
        ),
        (Door::Kafka, &[0, 0]),
    ];
    for (door, bytes) in half_frames {
        let mut c = TcpStream::connect(door.addr(&server)).await.unwrap();
        let started = Instant::now();
        c.write_all(bytes).await.unwrap();
        closed_by_server("a half-sent request", &mut c).await;
        assert!(
            started.elapsed() >= read_timeout,
            "{door:?} {bytes:?}: closed before request_read_timeout"
        );
    }
}

/// Sends the first half of a `frame`-byte request of `door` on `c`: its size prefix (and the
/// native command code) and half the body, so that the server takes a grant for `frame` bytes.
async fn send_half_frame(door: Door, c: &mut TcpStream, frame: usize) {
    let mut half = Vec::with_capacity(8 + frame / 2);
    match door {
        Door::Kafka => half.extend_from_slice(&(frame as u32).to_be_bytes()),
        Door::Native => {
            half.extend_from_slice(&(frame as u32 + 4).to_le_bytes());
            half.extend_from_slice(&codes::SEND_MESSAGES.to_le_bytes());
        }
    }
    half.resize(half.len() + frame / 2, 0);
    within("send half a frame", c.write_all(&half))
        .await
        .unwrap();
}

/// Reads one Kafka answer and checks its correlation id.
async fn kafka_answer(what: &str, c: &mut TcpStream, correlation_id: i32) {
    let mut len = [0u8; 4];
    within(what, c.read_exact(&mut len)).await.unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len).min(1 << 20) as usize];
    within(what, c.read_exact(&mut body)).await.unwrap();
    assert_eq!(body[..4], correlation_id.to_be_bytes(), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_frames_hold_no_more_than_the_request_budget_and_wait_unread() {
    // Bound: queued_max_request_bytes = 8 MiB across both doors, of which 1/16 is kept for
    // small requests: frames of 2 MiB declared, 1 MiB sent, on 10 connections (5 per door, each
    // from an address of its own): three are read at a time (6 of the 7.5 MiB general pool),
    // the rest wait unread, and a small request is still answered.
    const BUDGET: u64 = 8 << 20;
    const FRAME: usize = 2 << 20;
    let server = TestServer::start_with(|c| {
        // Nothing may time out while the test looks at the budget.
        limits(c, |l| l.request_read_timeout = Duration::from_secs(600));
        c.queued_max_request_bytes = BUDGET;
        c.native.max_request_size = FRAME as u32;
        c.kafka.max_request_size = FRAME as u32;
    })
    .await;
    let budget = server.request_budget();
    let mut hogs = Vec::new();
    for i in 0..10u8 {
        let from = [127, 0, 0, 10 + i];
        hogs.push(if i % 2 == 0 {
            (Door::Kafka, connect_from(from, server.kafka_addr).await)
        } else {
            let mut c = connect_from(from, server.addr).await;
            c.write_all(&root_login_frame()).await.unwrap();
            assert_eq!(within("login", native_answer(&mut c)).await.unwrap(), 0);
            (Door::Native, c)
        });
    }
    for (door, c) in &mut hogs {
        send_half_frame(*door, c, FRAME).await;
    }
    eventually("three frames granted, seven waiting", || {
        budget.in_use() == 3 * FRAME as u64 && budget.waiting() == 7
    })
    .await;
    assert!(
        budget.peak() <= BUDGET,
        "peak {} over the budget",
        budget.peak()
    );

    // A small request on a fresh connection is not queued behind them: the small-request
    // reserve answers it while they still wait.
    let mut late = TcpStream::connect(server.kafka_addr).await.unwrap();
    late.write_all(&API_VERSIONS_V0).await.unwrap();
    kafka_answer("the small request answered", &mut late, 7).await;
    assert_eq!(
        (budget.in_use(), budget.waiting()),
        (3 * FRAME as u64, 7),
        "the large frames still hold and wait"
    );

    // The hogs go away; each waiting one is granted in turn, finds the end of its stream and
    // gives its grant back.
    drop(hogs);
    eventually("every grant given back", || {
        budget.in_use() == 0 && budget.waiting() == 0
    })
    .await;
    assert!(
        budget.peak() <= BUDGET,
        "peak {} over the budget",
        budget.peak()
    );
    assert!(served(Door::Kafka, &mut late).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_holding_its_share_does_not_delay_another_address() {
    // Bound: one address holds at most max(queued_max_request_bytes / 4, largest
    // max_request_size) = 2 MiB of the 8 MiB budget. One address declares five 2 MiB frames on
    // the Kafka door (no account needed) and sends half of each: it holds 2 MiB and its other
    // four connections wait in its own line; another address's 1 MiB request is answered.
    const BUDGET: u64 = 8 << 20;
    const FRAME: usize = 2 << 20;
    let server = TestServer::start_with(|c| {
        limits(c, |l| l.request_read_timeout = Duration::from_secs(600));
        c.queued_max_request_bytes = BUDGET;
        c.native.max_request_size = FRAME as u32;
        c.kafka.max_request_size = FRAME as u32;
    })
    .await;
    let budget = server.request_budget();
    assert_eq!(budget.share(), FRAME as u64);
    let mut other = connect_from([127, 0, 0, 3], server.addr).await;
    other.write_all(&root_login_frame()).await.unwrap();
    assert_eq!(within("login", native_answer(&mut other)).await.unwrap(), 0);

    let mut hogs = Vec::new();
    for _ in 0..5 {
        let mut c = connect_from([127, 0, 0, 2], server.kafka_addr).await;
        send_half_frame(Door::Kafka, &mut c, FRAME).await;
        hogs.push(c);
    }
    eventually(
        "one frame of the address granted, four waiting for its share",
        || budget.in_use() == FRAME as u64 && budget.waiting() == 4,
    )
    .await;

    // Another address's large request (1 MiB, well over the small-request size) is read and
    // answered while the first address still holds its share and waits.
    let payload = vec![0u8; 1 << 20];
    within(
        "send 1 MiB",
        other.write_all(&native_frame(codes::PING, &payload)),
    )
    .await
    .unwrap();
    within(
        "the other address's large request answered",
        native_answer(&mut other),
    )
    .await
    .unwrap();
    // The answered request gives its bytes back just after its answer is written: wait for
    // that, not for a race with it.
    eventually("the first address still holds its share and waits", || {
        budget.in_use() == FRAME as u64 && budget.waiting() == 4
    })
    .await;
    assert!(
        budget.peak() <= 2 * FRAME as u64,
        "peak {} beyond one share and the 1 MiB request",
        budget.peak()
    );
    drop(hogs);
    eventually("every grant given back", || {
        budget.in_use() == 0 && budget.waiting() == 0
    })
    .await;
    assert!(served(Door::Native, &mut other).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_does_not_hold_up_the_shutdown() {
    // Bound: once stopping, an answer gets STOP_GRACE (2 s) and a connection STOP_DRAIN (10 s);
    // the idle timeout (which would also end it) is 10 min away. A poll whose answer (32 MiB)
    // is larger than the socket buffers and is never read must not keep the server from
    // stopping, saving and closing its store.
    let mut server = TestServer::start_with(|c| {
        limits(c, |l| l.idle_timeout = Duration::from_secs(600));
    })
    .await;
    let good = compat_tests::iggy_root_client(&server).await;
    compat_tests::create_stream_with_topic(&good, "s", "t", 1).await;
    for _ in 0..32 {
        let mut batch: Vec<IggyMessage> = (0..16)
            .map(|_| {
                IggyMessage::builder()
                    .payload(vec![7u8; 64 << 10].into())
                    .build()
                    .unwrap()
            })
            .collect();
        within(
            "send 1 MiB",
            good.send_messages(
                &Identifier::named("s").unwrap(),
                &Identifier::named("t").unwrap(),
                &Partitioning::partition_id(0),
                &mut batch,
            ),
        )
        .await
        .unwrap();
    }

    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut c = within("connect", socket.connect(server.addr))
        .await
        .unwrap();
    c.write_all(&root_login_frame()).await.unwrap();
    assert_eq!(within("login", native_answer(&mut c)).await.unwrap(), 0);
    // Consumer "c", stream "s", topic "t", partition 0, from the first offset, up to 10^6.
    let mut poll = vec![1, 2, 1, b'c', 2, 1, b's', 2, 1, b't', 1, 0, 0, 0, 0, 3];
    poll.extend_from_slice(&0u64.to_le_bytes());
    poll.extend_from_slice(&1_000_000u32.to_le_bytes());
    poll.push(0);
    c.write_all(&native_frame(codes::POLL_MESSAGES, &poll))
        .await
        .unwrap();
    // The poll holds its grant until its answer is written, which cannot happen: no more
    // than a few MiB fit in the socket buffers and we read none of it.
    let budget = server.request_budget();
    eventually("the poll answered into a full socket", || {
        budget.in_use() > 0
    })
    .await;

    within("shutdown with a client that reads no answer", server.stop()).await;
    drop(c);
    drop(good);
    // The store was closed cleanly: it reopens with every message.
    server.restart().await;
    let good = compat_tests::iggy_root_client(&server).await;
    let polled = within(
        "poll after the restart",
        good.poll_messages(
            &Identifier::named("s").unwrap(),
            &Identifier::named("t").unwrap(),
            Some(0),
            &Consumer::new(Identifier::named("c").unwrap()),
            &PollingStrategy::offset(511),
            1,
            false,
        ),
    )
    .await
    .unwrap();
    assert_eq!(polled.messages.len(), 1, "the 512th message is there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_native_request_gets_its_error_code_not_a_broken_pipe() {
    // Bound: max_request_size = 1 MiB; a frame 1 byte over it (and one just under twice it) is
    // read and discarded, then answered with INVALID_COMMAND.
    const MAX: u32 = 1 << 20;
    let server = TestServer::start_with(|c| c.native.max_request_size = MAX).await;
    for payload in [MAX as usize + 1, 2 * MAX as usize - 1] {
        let mut c = TcpStream::connect(server.addr).await.unwrap();
        c.write_all(&root_login_frame()).await.unwrap();
        assert_eq!(within("login", native_answer(&mut c)).await.unwrap(), 0);
        let frame = native_frame(codes::SEND_MESSAGES, &vec![0u8; payload]);
        within("send the oversize frame", c.write_all(&frame))
            .await
            .expect("the whole frame is taken, no broken pipe");
        let code = within("the error code", native_answer(&mut c))
            .await
            .expect("the error code arrives before the connection ends");
        assert_eq!(code, status::INVALID_COMMAND);
        closed_by_server("after the refusal", &mut c).await;
    }
    // Before login the limit is 64 KiB; the answer reaches the client the same way.
    let mut c = TcpStream::connect(server.addr).await.unwrap();
    let frame = native_frame(codes::PING, &vec![0u8; 100 << 10]);
    within("send a large request before login", c.write_all(&frame))
        .await
        .unwrap();
    assert_eq!(
        within("the error code", native_answer(&mut c))
            .await
            .unwrap(),
        status::UNAUTHENTICATED
    );

    // The official client: its request fails with the server's code, not a broken connection.
    let client = compat_tests::iggy_root_client(&server).await;
    compat_tests::create_stream_with_topic(&client, "s", "t", 1).await;
    let mut messages = vec![IggyMessage::builder()
        .payload(vec![7u8; MAX as usize + 1024].into())
        .build()
        .unwrap()];
    let sent = within(
        "the oversize send answered",
        client.send_messages(
            &Identifier::named("s").unwrap(),
            &Identifier::named("t").unwrap(),
            &Partitioning::partition_id(0),
            &mut messages,
        ),
    )
    .await;
    match sent {
        Err(IggyError::InvalidCommand) => {}
        other => panic!("expected the server's InvalidCommand (3), got {other:?}"),
    }
}
