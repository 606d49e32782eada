//! The `wharf-server` binary itself: it starts with flags, serves, and on SIGTERM (and SIGINT)
//! finishes, syncs and exits 0; bad configuration is refused with a message naming the problem;
//! and a data directory with far more partitions than the open-files limit allows files opens,
//! serves and stops, with the doors' connection caps fitted to the limit.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    fetch_request, ApiKey, FetchRequest, FetchResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use wharf_log_store::{Ident, LogStore, NewBatch, StoreConfig, TopicSettings};

const WAIT: Duration = Duration::from_secs(60);

/// Starts the server and returns it with the (native) address it logged.
fn start(data_dir: &Path) -> (Child, String) {
    let server = start_limited(data_dir, None);
    (server.child, server.native_addr)
}

/// A running server, its addresses and everything it logged so far.
struct Server {
    child: Child,
    native_addr: String,
    kafka_addr: String,
    log: Arc<Mutex<Vec<String>>>,
    /// Reads the server's output until it closes (the server exited).
    reader: std::thread::JoinHandle<()>,
}

/// Starts the server, with soft and hard `RLIMIT_NOFILE` set to `nofile` when given (by the
/// shell's `ulimit -n`, which sets both, before it `exec`s the server in its place).
fn start_limited(data_dir: &Path, nofile: Option<u32>) -> Server {
    let server = env!("CARGO_BIN_EXE_wharf-server");
    let mut command = match nofile {
        None => Command::new(server),
        Some(n) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .arg(server);
            c
        }
    };
    let mut child = command
        .args([
            "--native-addr",
            "127.0.0.1:0",
            "--kafka-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let lines = Arc::clone(&log);
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listener on ").nth(1) {
                let addr = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let _ = tx.send((line.contains("Kafka"), addr));
            }
            lines.lock().unwrap().push(line);
        }
    });
    let (mut native_addr, mut kafka_addr) = (None, None);
    while native_addr.is_none() || kafka_addr.is_none() {
        let (kafka, addr) = rx
            .recv_timeout(WAIT)
            .expect("the server did not log its listening addresses");
        if kafka {
            kafka_addr = Some(addr);
        } else {
            native_addr = Some(addr);
        }
    }
    Server {
        child,
        native_addr: native_addr.unwrap_or_default(),
        kafka_addr: kafka_addr.unwrap_or_default(),
        log,
        reader,
    }
}

fn ping(addr: &str) -> u32 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(&[4, 0, 0, 0, 1, 0, 0, 0]).unwrap();
    let mut head = [0u8; 8];
    s.read_exact(&mut head).unwrap();
    u32::from_le_bytes(head[..4].try_into().unwrap())
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn wait_exit(mut child: Child) -> std::process::ExitStatus {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    rx.recv_timeout(WAIT)
        .expect("the server did not exit in time")
        .unwrap()
}

#[test]
fn serves_then_stops_cleanly_on_sigterm_and_sigint() {
    let dir = tempfile::tempdir().unwrap();
    for sig in ["-TERM", "-INT"] {
        let (child, addr) = start(dir.path());
        assert_eq!(ping(&addr), 0);
        signal(&child, sig);
        let status = wait_exit(child);
        assert!(status.success(), "exit after {sig}: {status:?}");
    }
    assert!(dir.path().join("catalog").exists() || dir.path().join("users").exists());
}

#[test]
fn bad_configuration_is_refused_with_its_name() {
    let out = Command::new(env!("CARGO_BIN_EXE_wharf-server"))
        .args(["--native-addr", "not-an-address"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[native] address"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_wharf-server"))
        .env("WHARF_STORAGE_DEFAULT_DURABILITY", "sometimes")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("default_durability"));
}

/// Partitions in the data directory of the open-files test: two files each, far more than the
/// limit below would allow held open.
const MANY_PARTITIONS: u32 = 3_000;
/// Soft and hard `RLIMIT_NOFILE` the server runs under in that test.
const NOFILE: u32 = 256;
/// Partitions read back through the server: more than the store may keep open under `NOFILE`.
const FETCHED: u32 = 300;
/// Each door's connection cap under `NOFILE`: what is left of the limit after the segment-file
/// cache (half of it) and the server's reserve of 64, shared evenly by the two doors' equal
/// defaults: (256 - 128 - 64) / 2.
const CONNECTIONS_PER_DOOR: usize = 32;
/// Native connections the test opens at once: far more than fit beside the cache.
const FLOOD: usize = 200;

/// True when the server answers a ping on `s` (a connection over the cap is closed unanswered).
fn answers_ping(s: &mut TcpStream) -> bool {
    let mut head = [0u8; 8];
    s.write_all(&[4, 0, 0, 0, 1, 0, 0, 0]).is_ok()
        && s.read_exact(&mut head).is_ok()
        && head[..4] == [0, 0, 0, 0]
}

/// A temporary folder, on tmpfs when there is one: the test makes thousands of folders and
/// syncs each, and what it checks is descriptors, not the disk's speed.
fn temp_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

/// One Iggy 0.8 message whose body is `body` (what the native door stores).
fn native_batch(body: &[u8]) -> NewBatch {
    let mut payload = BytesMut::new();
    let mut header = [0u8; 64];
    header[8..24].copy_from_slice(&1u128.to_le_bytes());
    header[52..56].copy_from_slice(&(body.len() as u32).to_le_bytes());
    payload.extend_from_slice(&header);
    payload.extend_from_slice(body);
    NewBatch::native(payload).unwrap()
}

/// Stream `s`, topic `t` (Kafka name `s.t`) of `MANY_PARTITIONS` partitions, one message in each.
fn make_many_partitions(dir: &Path) {
    let config = StoreConfig {
        background_tasks: false,
        ..StoreConfig::default()
    };
    let (store, _) = LogStore::open(dir, config).unwrap();
    store.create_stream("s").unwrap();
    store
        .create_topic(Ident::Id(0), "t", MANY_PARTITIONS, TopicSettings::default())
        .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        for p in store.partitions(Ident::Id(0), Ident::Id(0)).unwrap() {
            let body = format!("message of partition {}", p.key().partition);
            p.append(native_batch(body.as_bytes())).await.unwrap();
        }
    });
    store.close().unwrap();
}

/// One Kafka Fetch (v4) of offset 0 of `partitions` of `topic`.
fn kafka_fetch(addr: &str, topic: &str, partitions: &[u32]) -> FetchResponse {
    const VERSION: i16 = 4;
    let request = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(64 << 20)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&p| {
                        fetch_request::FetchPartition::default()
                            .with_partition(p as i32)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(1 << 20)
                    })
                    .collect(),
            )]);
    let mut frame = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(ApiKey::Fetch as i16)
        .with_request_api_version(VERSION)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("nofile-test")))
        .encode(&mut frame, FetchRequest::header_version(VERSION))
        .unwrap();
    request.encode(&mut frame, VERSION).unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut out = BytesMut::new();
    out.put_i32(frame.len() as i32);
    out.put_slice(&frame);
    s.write_all(&out).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    let mut answer = Bytes::from(body);
    let header =
        ResponseHeader::decode(&mut answer, FetchResponse::header_version(VERSION)).unwrap();
    assert_eq!(header.correlation_id, 7);
    let response = FetchResponse::decode(&mut answer, VERSION).unwrap();
    assert_eq!(answer.remaining(), 0, "bytes left over in the fetch answer");
    response
}

/// The soft and hard open-files limits of process `pid`, as the kernel reports them.
fn nofile_of(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut fields = line["Max open files".len()..].split_whitespace();
    (
        fields.next().unwrap_or_default().to_string(),
        fields.next().unwrap_or_default().to_string(),
    )
}

#[test]
fn many_partitions_open_serve_and_stop_under_a_low_open_files_limit() {
    let dir = temp_dir();
    make_many_partitions(dir.path());

    let server = start_limited(dir.path(), Some(NOFILE));
    let pid = server.child.id();
    assert_eq!(
        nofile_of(pid),
        (NOFILE.to_string(), NOFILE.to_string()),
        "the server does not run under the limit this test means to set"
    );
    assert_eq!(ping(&server.native_addr), 0);

    // A flood of connections on one door is refused at its cap, before it takes the
    // descriptors the store needs to read the partitions below.
    let mut flood: Vec<TcpStream> = (0..FLOOD)
        .map(|_| {
            let s = TcpStream::connect(&server.native_addr).unwrap();
            s.set_read_timeout(Some(WAIT)).unwrap();
            s
        })
        .collect();
    let served = flood.iter_mut().map(answers_ping).filter(|&ok| ok).count();
    assert!(
        (1..=CONNECTIONS_PER_DOOR).contains(&served),
        "{served} of {FLOOD} native connections served; the cap under nofile={NOFILE} is \
         {CONNECTIONS_PER_DOOR}"
    );

    // Spread over the whole topic, and more partitions than the store may hold open here.
    let step = MANY_PARTITIONS / FETCHED;
    let wanted: Vec<u32> = (0..FETCHED).map(|i| i * step + i % step).collect();
    let response = kafka_fetch(&server.kafka_addr, "s.t", &wanted);
    assert_eq!(response.error_code, 0);
    assert_eq!(response.responses.len(), 1);
    let answered = &response.responses[0].partitions;
    assert_eq!(answered.len(), wanted.len());
    for (p, want) in answered.iter().zip(&wanted) {
        assert_eq!(p.partition_index, *want as i32);
        assert_eq!(p.error_code, 0, "partition {want}");
        assert_eq!(p.high_watermark, 1, "partition {want}");
        let records = p.records.clone().unwrap_or_default();
        let body = format!("message of partition {want}");
        assert!(
            records.windows(body.len()).any(|w| w == body.as_bytes()),
            "partition {want}: its message is not in the answer"
        );
    }
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    assert!(open < NOFILE as usize, "{open} descriptors open");
    drop(flood);

    signal(&server.child, "-TERM");
    let status = wait_exit(server.child);
    server.reader.join().unwrap();
    let log = server.log.lock().unwrap().join("\n");
    assert!(status.success(), "exit after SIGTERM: {status:?}\n{log}");
    assert!(!log.contains("Too many open files"), "{log}");
    assert!(
        log.contains("open files limit") && log.contains(&format!("hard={NOFILE}")),
        "the server did not log its open-files limit:\n{log}"
    );
    assert!(
        log.contains(&format!("keeping {} segment files open", NOFILE / 2)),
        "the open-files cache was not kept within half the limit:\n{log}"
    );
    assert!(
        log.contains(&format!(
            "keeping {CONNECTIONS_PER_DOOR} native and {CONNECTIONS_PER_DOOR} Kafka connections"
        )),
        "the doors' max_connections were not fitted to the limit:\n{log}"
    );
}
