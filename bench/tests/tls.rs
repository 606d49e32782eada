//! wharf-bench's TLS flags against a server whose native and Kafka listeners both speak TLS:
//! the connect workload and a produce/consume pair over each protocol complete with every
//! message counted. Checks counts, never speed. Certificates: compat-tests' `TestCerts` (rcgen).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::time::Duration;

use compat_tests::{TestCerts, TestServer};

const LIMIT: Duration = Duration::from_secs(180);
const MESSAGES: u64 = 2000;
const CONNECTIONS: u64 = 5;

/// Runs `wharf-bench` over TLS and returns its JSON report.
async fn bench(server: &TestServer, ca: &Path, protocol: &str, args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let address = match protocol {
        "kafka" => server.kafka_addr,
        _ => server.addr,
    };
    let out = tokio::time::timeout(
        LIMIT,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_wharf-bench"))
            .args(args)
            .args(["--protocol", protocol, "--server", &address.to_string()])
            .arg("--tls-ca-file")
            .arg(ca)
            .args(["--messages", &MESSAGES.to_string(), "--message-size", "100"])
            .args(["--connections", &CONNECTIONS.to_string()])
            .args(["--batch", "100", "--quiet", "--json"])
            .arg(&json)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("wharf-bench {args:?} over {protocol} took over {LIMIT:?}"))
    .unwrap();
    assert!(
        out.status.success(),
        "wharf-bench {args:?} over {protocol} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["errors"], 0, "{report}");
    assert!(
        report["settings"]["tls"]["ca_file"].is_string(),
        "the report says TLS: {}",
        report["settings"]
    );
    report
}

async fn over_tls(protocol: &str, connectors: u64) {
    // The server certificate names localhost and 127.0.0.1: the Kafka listener advertises the
    // address a client reached, and librdkafka checks that name.
    let certs = TestCerts::new();
    let tls = certs.tls_settings(false);
    let server = TestServer::start_with(|c| {
        c.native.tls = Some(tls.clone());
        c.kafka.tls = Some(tls);
    })
    .await;
    let ca = certs.ca.clone();

    for args in [&["connect"][..], &["connect", "--no-login"][..]] {
        let r = bench(&server, &ca, protocol, args).await;
        assert_eq!(r["latency"]["kind"], "connect");
        assert_eq!(r["messages"], CONNECTIONS * connectors, "{r}");
        assert_eq!(r["latency"]["samples"], CONNECTIONS * connectors);
    }

    let r = bench(&server, &ca, protocol, &["pinned-producer"]).await;
    assert_eq!(r["producers"]["messages"], MESSAGES);
    let r = bench(&server, &ca, protocol, &["pinned-consumer"]).await;
    assert_eq!(r["consumers"]["messages"], MESSAGES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_produce_and_consume_over_native_tls() {
    // Native: a new client per connection, then one client reconnecting.
    over_tls("native", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_produce_and_consume_over_kafka_ssl() {
    over_tls("kafka", 1).await;
}
