//! Failed TLS handshakes are peer misbehaviour like malformed frames: noted in the peer log,
//! one line per peer per `peer_log_interval` with a count of what was left out, never a line
//! each. The test captures what the server logs at INFO and above while one peer opens many
//! connections to a TLS listener and sends bytes that are not a ClientHello.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wharf_gateway::config::{Overrides, ServerConfig, TlsSettings};

/// Connections the peer opens with garbage instead of a ClientHello.
const CONNECTIONS: usize = 300;
/// The bound: lines about the peer within one interval.
const MAX_LINES: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_tls_handshakes_from_one_peer_are_a_line_per_interval() {
    let captured = common::capture_logs();

    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let overrides = Overrides {
        data_dir: Some(dir.path().join("data")),
        native_addr: Some("127.0.0.1:0".into()),
        kafka_addr: Some("127.0.0.1:0".into()),
        ..Overrides::default()
    };
    let mut config = ServerConfig::load_from(&overrides, &[]).unwrap();
    config.kafka.tls = Some(TlsSettings {
        cert_file,
        key_file,
        client_ca_file: None,
    });
    // Longer than the test runs, so every line after the first is left out.
    config.peer_log_interval = Duration::from_secs(3600);
    let running = wharf_gateway::start(config).await.unwrap();
    let kafka = running.kafka_addr;
    let before = captured.0.lock().len();

    let work = async {
        for _ in 0..CONNECTIONS {
            let mut s = TcpStream::connect(kafka).await.unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(120), work)
        .await
        .expect("the garbage connections made within 120 s");

    let log = String::from_utf8_lossy(&captured.0.lock()[before..]).into_owned();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("127.0.0.1")).collect();
    assert!(
        lines.iter().any(|l| l.contains("TLS handshake")),
        "the failed handshake is logged at least once; the log was:\n{log}"
    );
    assert!(
        lines.len() <= MAX_LINES,
        "{} lines for {CONNECTIONS} failed handshakes from one peer (bound {MAX_LINES}):\n{}",
        lines.len(),
        lines.join("\n")
    );
    running.shutdown().await.unwrap();
}
