//! The operator's HTTP listener over real sockets: what `/health`, `/ready` and `/metrics`
//! answer and with which content types; `/ready` held at 503 while the store opens (a real
//! gate in the start) and again while stopping; HTTPS; and the attacks, each against its bound:
//! more connections than `max_connections`, a head over 8 KiB, a request that stalls, garbage,
//! other methods. Last, the `wharf-server` binary with `--log-format json` and `--http-addr`.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::{timeout, Instant};
use wharf_gateway::config::{Overrides, ServerConfig, TlsSettings};
use wharf_gateway::http::request::MAX_HEAD;
use wharf_gateway::http::routes::{OPENMETRICS_TEXT, PROMETHEUS_TEXT};
use wharf_gateway::{start, start_with, StartHooks};

/// Longest any step of a test waits; far beyond what each needs.
const WAIT: Duration = Duration::from_secs(30);

/// A server config on loopback ephemeral ports, the HTTP listener on.
fn config(data_dir: &Path) -> ServerConfig {
    let overrides = Overrides {
        data_dir: Some(data_dir.to_path_buf()),
        native_addr: Some("127.0.0.1:0".into()),
        kafka_addr: Some("127.0.0.1:0".into()),
        http_addr: Some("127.0.0.1:0".into()),
        ..Overrides::default()
    };
    ServerConfig::load_from(&overrides, &[]).unwrap()
}

/// An HTTP answer as the client got it.
#[derive(Debug)]
struct Answer {
    status: u16,
    fields: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Parses a whole answer; `Content-Length` must be the body's length unless `head`.
    fn parse(bytes: &[u8], head: bool) -> Answer {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(bytes)));
        let head_text = std::str::from_utf8(&bytes[..end]).unwrap();
        let mut lines = head_text.split("\r\n");
        let status_line = lines.next().unwrap();
        assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
        let status = status_line[9..12].parse().unwrap();
        let fields: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.to_string(), v.trim().to_string())
            })
            .collect();
        let answer = Answer {
            status,
            fields,
            body: bytes[end + 4..].to_vec(),
        };
        let length: usize = answer.field("content-length").unwrap().parse().unwrap();
        if head {
            assert!(answer.body.is_empty(), "a HEAD answer has no body");
        } else {
            assert_eq!(length, answer.body.len(), "Content-Length");
        }
        assert_eq!(answer.field("connection"), Some("close"));
        answer
    }
}

/// Sends `request` on `stream` and reads until the server closes, within [`WAIT`].
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, request: &[u8]) -> Vec<u8> {
    timeout(WAIT, async {
        stream.write_all(request).await.unwrap();
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.unwrap();
        out
    })
    .await
    .expect("the server answered and closed within WAIT")
}

/// Sends raw `request` bytes to `addr` and parses the answer.
async fn raw(addr: SocketAddr, request: &[u8]) -> Answer {
    let stream = TcpStream::connect(addr).await.unwrap();
    let head = request.starts_with(b"HEAD ");
    Answer::parse(&exchange(stream, request).await, head)
}

/// `METHOD path` over HTTP/1.1 with a Host field and the `extra` fields.
async fn request(addr: SocketAddr, method: &str, path: &str, extra: &str) -> Answer {
    let text = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}\r\n");
    raw(addr, text.as_bytes()).await
}

async fn get(addr: SocketAddr, path: &str) -> Answer {
    request(addr, "GET", path, "").await
}

/// The value of the unlabelled gauge `name` in a 0.0.4 `/metrics` answer.
fn gauge(metrics: &Answer, name: &str) -> i64 {
    let text = metrics.text();
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no {name} in {text}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Waits (on the listener's report, within [`WAIT`]) until no HTTP connection is open.
async fn all_slots_back(running: &wharf_gateway::Running) {
    let mut open = running.http_connections.clone().expect("HTTP is on");
    timeout(WAIT, open.wait_for(|n| *n == 0))
        .await
        .expect("every slot came back within WAIT")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_and_metrics_answer_with_their_content_types() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(config(dir.path())).await.unwrap();
    let http = running.http_addr.expect("the HTTP listener is on");
    assert!(http.ip().is_loopback() && http.port() != 0);

    let health = get(http, "/health").await;
    assert_eq!(
        (health.status, health.text().as_str()),
        (200, "ok\n"),
        "{health:?}"
    );
    assert_eq!(
        health.field("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let ready = get(http, "/ready").await;
    assert_eq!((ready.status, ready.text().as_str()), (200, "ready\n"));

    // The Prometheus text format 0.0.4: no `# EOF` (that is OpenMetrics).
    let metrics = get(http, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert_eq!(metrics.field("content-type"), Some(PROMETHEUS_TEXT));
    let text = metrics.text();
    assert!(text.contains("# TYPE wharf_up gauge\n"), "{text}");
    assert!(text.contains("\nwharf_ready 1\n"), "{text}");
    assert!(!text.contains("# EOF"), "{text}");
    // What Prometheus itself sends: OpenMetrics preferred, and then the body is OpenMetrics,
    // which must end with `# EOF` (Prometheus refuses the scrape otherwise).
    let open = request(
        http,
        "GET",
        "/metrics",
        "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n",
    )
    .await;
    assert_eq!(open.status, 200);
    assert_eq!(open.field("content-type"), Some(OPENMETRICS_TEXT));
    let text = open.text();
    assert!(text.contains("# TYPE wharf_up gauge\n"), "{text}");
    assert!(text.ends_with("\n# EOF\n"), "{text}");
    assert_eq!(text.matches("# EOF").count(), 1, "{text}");
    // HEAD: the GET answer's fields, no body (checked by the parser).
    let head = request(http, "HEAD", "/metrics", "").await;
    assert_eq!(head.status, 200);
    assert!(
        head.field("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 0
    );
    let head = request(http, "HEAD", "/health", "").await;
    assert_eq!(
        (head.status, head.field("content-length")),
        (200, Some("3"))
    );
    // A query string does not change the route; HTTP/1.0 needs no Host; absolute form works.
    assert_eq!(get(http, "/health?verbose=1").await.status, 200);
    assert_eq!(raw(http, b"GET /health HTTP/1.0\r\n\r\n").await.status, 200);
    let absolute = format!("GET http://{http}/ready HTTP/1.1\r\nHost: {http}\r\n\r\n");
    assert_eq!(raw(http, absolute.as_bytes()).await.status, 200);

    // Unknown path 404; another method 405 naming the allowed ones.
    assert_eq!(get(http, "/").await.status, 404);
    assert_eq!(get(http, "/metricsx").await.status, 404);
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let a = request(http, method, "/metrics", "Content-Length: 0\r\n").await;
        assert_eq!(a.status, 405, "{method}");
        assert_eq!(a.field("allow"), Some("GET, HEAD"), "{method}");
    }
    // Malformed: 400; not HTTP/1.x: 505.
    assert_eq!(raw(http, b"GET /health HTTP/1.1\r\n\r\n").await.status, 400);
    assert_eq!(
        raw(http, b"GET /health HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n")
            .await
            .status,
        400
    );
    assert_eq!(
        raw(http, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.status,
        505
    );
    running.shutdown().await.unwrap();

    // Off by default: no address, nothing listening for HTTP.
    let mut off = config(dir.path());
    off.http.address = None;
    let running = start(off).await.unwrap();
    assert_eq!(running.http_addr, None);
    running.shutdown().await.unwrap();
}

/// A config whose requests may take far longer than the test waits: an answer that arrives
/// within [`WAIT`] did not wait for the timeout.
fn patient(dir: &Path) -> ServerConfig {
    let mut c = config(dir);
    c.http.request_timeout = Duration::from_secs(600);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_answered_400_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(patient(dir.path())).await.unwrap();
    let http = running.http_addr.unwrap();
    // A TLS ClientHello's start to a plain listener: no line ending ever comes, and the answer
    // must not wait for one (request_timeout is 600 s, the test waits WAIT).
    let a = raw(
        http,
        &[0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1],
    )
    .await;
    assert_eq!(a.status, 400);
    let a = raw(http, b"\x00\xff\x13 garbage\r\n\r\n").await;
    assert_eq!(a.status, 400);
    let a = raw(http, b"GET\r\n\r\n").await;
    assert_eq!(a.status, 400);
    // Still serving, also a request written a byte at a time.
    let mut s = TcpStream::connect(http).await.unwrap();
    for b in format!("GET /health HTTP/1.1\r\nHost: {http}\r\n\r\n").bytes() {
        s.write_all(&[b]).await.unwrap();
    }
    assert_eq!(Answer::parse(&exchange(s, b"").await, false).status, 200);
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_over_8_kib_is_431_without_waiting_for_its_end() {
    // Bound: MAX_HEAD (8 KiB) bytes of request head, blank line included.
    assert_eq!(MAX_HEAD, 8 * 1024);
    let dir = tempfile::tempdir().unwrap();
    let running = start(patient(dir.path())).await.unwrap();
    let http = running.http_addr.unwrap();
    let start_of_head = format!("GET /health HTTP/1.1\r\nHost: {http}\r\nX-Fill: ");
    // Exactly MAX_HEAD bytes: served.
    let mut whole = start_of_head.clone().into_bytes();
    whole.resize(MAX_HEAD - 4, b'a');
    whole.extend_from_slice(b"\r\n\r\n");
    assert_eq!(whole.len(), MAX_HEAD);
    assert_eq!(raw(http, &whole).await.status, 200);
    // One byte more and no end in sight: 431 at once, from the first MAX_HEAD bytes (the
    // server never waits for, nor keeps, more of the head).
    let mut over = start_of_head.into_bytes();
    over.resize(MAX_HEAD + 1, b'a');
    let a = raw(http, &over).await;
    assert_eq!(a.status, 431, "{a:?}");
    // Many small fields over the bound: 431 too.
    let mut fields = format!("GET /health HTTP/1.1\r\nHost: {http}\r\n");
    while fields.len() <= MAX_HEAD {
        fields.push_str("X-A: b\r\n");
    }
    assert_eq!(raw(http, fields.as_bytes()).await.status, 431);
    // A request line alone over the bound: 414.
    let mut line = b"GET /".to_vec();
    line.resize(MAX_HEAD + 1, b'a');
    assert_eq!(raw(http, &line).await.status, 414);
    assert_eq!(get(http, "/health").await.status, 200);
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_is_closed_after_request_timeout() {
    // Bound: request_timeout, from the accept to the whole head.
    const REQUEST_TIMEOUT: Duration = Duration::from_millis(300);
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.http.request_timeout = REQUEST_TIMEOUT;
    let running = start(c).await.unwrap();
    let http = running.http_addr.unwrap();

    // Half a request, then nothing: 408 and closed.
    let began = Instant::now();
    let a = raw(http, b"GET /health HTTP/1.1\r\nHo").await;
    assert_eq!(a.status, 408, "{a:?}");
    assert!(a.text().contains("request_timeout"), "{}", a.text());
    assert!(
        began.elapsed() >= REQUEST_TIMEOUT,
        "not closed before the timeout"
    );
    // Nothing at all: closed without an answer.
    let began = Instant::now();
    let silent = exchange(TcpStream::connect(http).await.unwrap(), b"").await;
    assert!(silent.is_empty(), "{}", String::from_utf8_lossy(&silent));
    assert!(began.elapsed() >= REQUEST_TIMEOUT);
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_max_connections_are_closed_and_the_rest_served() {
    // Bound: max_connections open at once.
    const MAX_CONNECTIONS: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let mut c = patient(dir.path());
    c.http.max_connections = MAX_CONNECTIONS as u32;
    let running = start(c).await.unwrap();
    let http = running.http_addr.unwrap();

    // MAX_CONNECTIONS connections that say nothing (they would be kept 600 s)...
    let mut held = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        held.push(TcpStream::connect(http).await.unwrap());
    }
    // ...then more: the server accepts in order, so each of these finds every slot taken and
    // is closed unanswered.
    for _ in 0..3 {
        let mut extra = TcpStream::connect(http).await.unwrap();
        let got = timeout(WAIT, async {
            let _ = extra
                .write_all(format!("GET /health HTTP/1.1\r\nHost: {http}\r\n\r\n").as_bytes())
                .await;
            let mut out = Vec::new();
            // Closed (EOF) or reset: either way, no answer.
            let _ = extra.read_to_end(&mut out).await;
            out
        })
        .await
        .expect("the extra connection was closed within WAIT");
        assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    }
    // The admitted connections are still served.
    let first = held.remove(0);
    let request = format!("GET /health HTTP/1.1\r\nHost: {http}\r\n\r\n");
    let a = Answer::parse(&exchange(first, request.as_bytes()).await, false);
    assert_eq!(a.status, 200);
    // Once they close, new connections are admitted again (the slots come back when each
    // connection's task ends, which the listener reports).
    drop(held);
    all_slots_back(&running).await;
    assert_eq!(get(http, "/health").await.status, 200);
    running.shutdown().await.unwrap();
}

/// A connection to `addr` from the loopback address `from` (127.0.0.0/8 is all loopback).
async fn connect_from(from: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Sends a `/health` request on `s` and reads until the server closes, within [`WAIT`]:
/// empty when the server closed without answering.
async fn try_health(mut s: TcpStream) -> Vec<u8> {
    timeout(WAIT, async {
        let _ = s
            .write_all(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n")
            .await;
        let mut out = Vec::new();
        // Closed (EOF) or reset: either way what came before is the answer, if any.
        let _ = s.read_to_end(&mut out).await;
        out
    })
    .await
    .expect("answered or closed within WAIT")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_slot() {
    // Bound: max_connections_per_ip open at once from one address.
    const PER_IP: usize = 2;
    let dir = tempfile::tempdir().unwrap();
    let mut c = patient(dir.path());
    c.http.max_connections = 8;
    c.http.max_connections_per_ip = PER_IP as u32;
    let running = start(c).await.unwrap();
    let http = running.http_addr.unwrap();

    // PER_IP silent connections from 127.0.0.1 (kept 600 s)...
    let mut held = Vec::new();
    for _ in 0..PER_IP {
        held.push(connect_from([127, 0, 0, 1], http).await);
    }
    // ...and one more from there is closed unanswered (accepted in order, after those)...
    let over = try_health(connect_from([127, 0, 0, 1], http).await).await;
    assert!(over.is_empty(), "{}", String::from_utf8_lossy(&over));
    // ...while another address, e.g. the orchestrator's probe, is still served.
    let probe = try_health(connect_from([127, 0, 0, 2], http).await).await;
    assert_eq!(Answer::parse(&probe, false).status, 200);
    // Their slots back, 127.0.0.1 is served again.
    drop(held);
    all_slots_back(&running).await;
    let again = try_health(connect_from([127, 0, 0, 1], http).await).await;
    assert_eq!(Answer::parse(&again, false).status, 200);
    running.shutdown().await.unwrap();
}

/// A self-signed certificate for `localhost` (PEM files in `dir`) and a client trusting it.
fn tls_files(dir: &Path) -> (TlsSettings, rustls::ClientConfig) {
    use rustls_pki_types::pem::PemObject;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_slice(cert.pem().as_bytes()).unwrap())
        .unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let settings = TlsSettings {
        cert_file,
        key_file,
        client_ca_file: None,
    };
    (settings, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (settings, client) = tls_files(dir.path());
    let mut c = config(&dir.path().join("data"));
    c.http.tls = Some(settings);
    let running = start(c).await.unwrap();
    let http = running.http_addr.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    for (path, status) in [
        ("/health", 200),
        ("/ready", 200),
        ("/metrics", 200),
        ("/x", 404),
    ] {
        let tcp = TcpStream::connect(http).await.unwrap();
        let tls = timeout(
            WAIT,
            connector.connect(
                rustls_pki_types::ServerName::try_from("localhost").unwrap(),
                tcp,
            ),
        )
        .await
        .unwrap()
        .unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let a = Answer::parse(&exchange(tls, request.as_bytes()).await, false);
        assert_eq!(a.status, status, "{path}");
    }
    // Plain HTTP to the HTTPS listener gets no HTTP answer.
    let mut plain = TcpStream::connect(http).await.unwrap();
    let got = timeout(WAIT, async {
        let _ = plain
            .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await;
        let mut out = Vec::new();
        let _ = plain.read_to_end(&mut out).await;
        out
    })
    .await
    .expect("closed within WAIT");
    assert!(
        !got.starts_with(b"HTTP/"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    running.shutdown().await.unwrap();

    // With a client CA, a scraper without a certificate gets no answer.
    let (mut settings, client) = tls_files(dir.path());
    settings.client_ca_file = Some(settings.cert_file.clone());
    let mut c = config(&dir.path().join("data"));
    c.http.tls = Some(settings);
    let running = start(c).await.unwrap();
    let http = running.http_addr.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = TcpStream::connect(http).await.unwrap();
    let got = timeout(WAIT, async {
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        // TLS 1.3: the client may finish its side before the server refuses it.
        let Ok(mut tls) = connector.connect(name, tcp).await else {
            return Vec::new();
        };
        let _ = tls
            .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await;
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out).await;
        out
    })
    .await
    .expect("refused within WAIT");
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_tls_handshake_is_closed_after_request_timeout() {
    // Bound: request_timeout, from the accept to the end of the TLS handshake.
    const REQUEST_TIMEOUT: Duration = Duration::from_millis(300);
    let dir = tempfile::tempdir().unwrap();
    let (settings, _) = tls_files(dir.path());
    let mut c = config(&dir.path().join("data"));
    c.http.tls = Some(settings);
    c.http.request_timeout = REQUEST_TIMEOUT;
    c.http.max_connections = 2;
    let running = start(c).await.unwrap();
    let http = running.http_addr.unwrap();
    // No ClientHello at all, then the first bytes of one and nothing more: each closed with
    // no answer once request_timeout has passed (the test waits up to WAIT, far longer).
    for sent in [&[][..], &[0x16, 0x03, 0x01, 0x00, 0xa5, 0x01][..]] {
        let began = Instant::now();
        let mut s = TcpStream::connect(http).await.unwrap();
        s.write_all(sent).await.unwrap();
        let mut out = Vec::new();
        let _ = timeout(WAIT, s.read_to_end(&mut out))
            .await
            .expect("the stalled handshake was closed within WAIT");
        assert!(out.is_empty(), "{out:?}");
        assert!(
            began.elapsed() >= REQUEST_TIMEOUT,
            "closed before the timeout"
        );
    }
    // Their slots came back.
    all_slots_back(&running).await;
    running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_is_503_until_the_store_is_open_and_again_while_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let (bound_tx, bound_rx) = oneshot::channel();
    let (open_tx, open_rx) = oneshot::channel();
    let (close_tx, close_rx) = oneshot::channel();
    let (stopping_tx, stopping_rx) = oneshot::channel();
    let (ready_tx, ready_rx) = oneshot::channel();
    let hooks = StartHooks {
        http_bound: Some(bound_tx),
        before_open: Some(open_rx),
        before_close: Some(close_rx),
        ready: Some(ready_tx),
        stopping: Some(stopping_tx),
        stop: None,
    };
    let starting = tokio::spawn(start_with(config(dir.path()), hooks));
    let http = timeout(WAIT, bound_rx)
        .await
        .expect("the HTTP listener bound within WAIT")
        .unwrap();

    // Held before the store opens: alive, not ready, and the scrape answers (process figures).
    let health = get(http, "/health").await;
    assert_eq!(health.status, 200);
    let ready = get(http, "/ready").await;
    assert_eq!(
        (ready.status, ready.text().as_str()),
        (503, "not ready: opening the store\n")
    );
    let metrics = get(http, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert_eq!(gauge(&metrics, "wharf_ready"), 0);
    assert!(!starting.is_finished());

    open_tx.send(()).unwrap();
    let running = timeout(WAIT, starting)
        .await
        .expect("started within WAIT")
        .unwrap()
        .unwrap();
    assert_eq!(running.http_addr, Some(http));
    ready_rx.await.expect("the ready hook was told");
    assert_eq!(get(http, "/ready").await.status, 200);
    assert_eq!(gauge(&get(http, "/metrics").await, "wharf_ready"), 1);

    // Stopping, held before the store closes: not ready, still alive, and the scrape says so
    // too (the store is still open: the gauge follows /ready, not the store).
    let stopping = tokio::spawn(running.shutdown());
    timeout(WAIT, stopping_rx)
        .await
        .expect("stopping within WAIT")
        .unwrap();
    let ready = get(http, "/ready").await;
    assert_eq!(
        (ready.status, ready.text().as_str()),
        (503, "not ready: stopping\n")
    );
    assert_eq!(gauge(&get(http, "/metrics").await, "wharf_ready"), 0);
    assert_eq!(get(http, "/health").await.status, 200);
    close_tx.send(()).unwrap();
    timeout(WAIT, stopping)
        .await
        .expect("stopped within WAIT")
        .unwrap()
        .unwrap();
    // The listener is gone with the server.
    assert!(TcpStream::connect(http).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_asked_during_recovery_never_lets_ready_answer_200() {
    let dir = tempfile::tempdir().unwrap();
    let (bound_tx, bound_rx) = oneshot::channel();
    let (open_tx, open_rx) = oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (ready_tx, ready_rx) = oneshot::channel();
    // The stop makes the server stop on its own, without waiting for `shutdown()`: held
    // before its HTTP listener closes until the checks below are done, or they would race it.
    let (close_tx, close_rx) = oneshot::channel();
    let hooks = StartHooks {
        http_bound: Some(bound_tx),
        before_open: Some(open_rx),
        before_close: Some(close_rx),
        stop: Some(stop_rx),
        ready: Some(ready_tx),
        ..StartHooks::default()
    };
    let starting = tokio::spawn(start_with(config(dir.path()), hooks));
    let http = timeout(WAIT, bound_rx)
        .await
        .expect("the HTTP listener bound within WAIT")
        .unwrap();
    assert_eq!(get(http, "/ready").await.status, 503);
    // Stopped (SIGTERM, as `run` passes it) while recovering; then recovery finishes.
    stop_tx.send(true).unwrap();
    open_tx.send(()).unwrap();
    let running = timeout(WAIT, starting)
        .await
        .expect("the start finished within WAIT")
        .unwrap()
        .unwrap();
    // Never ready (the hook is dropped unsent: not even for a moment).
    assert!(
        ready_rx.await.is_err(),
        "the server turned ready after a stop asked during recovery"
    );
    let ready = get(http, "/ready").await;
    assert_eq!(
        (ready.status, ready.text().as_str()),
        (503, "not ready: stopping\n")
    );
    assert_eq!(gauge(&get(http, "/metrics").await, "wharf_ready"), 0);
    // (That the doors' listeners were closed unserved is not checked by connecting: their
    // freed ephemeral ports may already belong to another test's server.)
    close_tx.send(()).unwrap();
    timeout(WAIT, running.shutdown())
        .await
        .expect("stopped within WAIT")
        .unwrap();
    assert!(TcpStream::connect(http).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_fails_stops_the_http_listener() {
    let dir = tempfile::tempdir().unwrap();
    // The Kafka address is taken: the start fails after the HTTP listener is up.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut c = config(dir.path());
    c.kafka.address = taken.local_addr().unwrap();
    let (bound_tx, bound_rx) = oneshot::channel();
    let hooks = StartHooks {
        http_bound: Some(bound_tx),
        ..StartHooks::default()
    };
    let e = start_with(c, hooks).await.unwrap_err();
    assert!(e.to_string().contains("cannot listen"), "{e}");
    let http = bound_rx.await.unwrap();
    assert!(
        TcpStream::connect(http).await.is_err(),
        "the HTTP listener outlived the failed start"
    );
}

/// `wharf-server --log-format json` writes one JSON object per line (message, level, target,
/// timestamp at the top level), and `--http-addr` turns the listener on.
#[test]
fn the_binary_logs_json_lines() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::{Command, Stdio};
    use std::sync::mpsc;

    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wharf-server"))
        .args([
            "--log-format",
            "json",
            "--http-addr",
            "127.0.0.1:0",
            "--native-addr",
            "127.0.0.1:0",
            "--kafka-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut http = None;
    let mut kafka_up = false;
    let mut lines = Vec::new();
    while http.is_none() || !kafka_up {
        let line = rx.recv_timeout(WAIT).unwrap_or_else(|_| {
            panic!("no listener lines within WAIT; got:\n{}", lines.join("\n"))
        });
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        for key in ["timestamp", "level", "target", "message"] {
            assert!(v.get(key).is_some(), "no {key} in {line}");
        }
        let message = v["message"].as_str().unwrap().to_string();
        if let Some(rest) = message.strip_prefix("HTTP listener on ") {
            http = Some(rest.split_whitespace().next().unwrap().to_string());
        }
        kafka_up |= message.starts_with("Kafka listener on ");
        lines.push(line);
    }
    let http = http.unwrap();
    let mut s = std::net::TcpStream::connect(&http).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"GET /ready HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    assert_eq!(Answer::parse(&answer, false).status, 200);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // The rest of the log, to the exit, is JSON too.
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait());
    });
    let status = done_rx
        .recv_timeout(WAIT)
        .expect("the server exited within WAIT")
        .unwrap();
    assert!(status.success(), "{status:?}");
    reader.join().unwrap();
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(
        rest.iter().any(|l| l.contains("\"stopped\"")),
        "{}",
        rest.join("\n")
    );
    for line in rest {
        serde_json::from_str::<serde_json::Value>(&line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
    }

    // A format it does not know is a usage error, named.
    let out = Command::new(env!("CARGO_BIN_EXE_wharf-server"))
        .args(["--log-format", "yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--log-format"), "{err}");
}
