//! wharf-bench's TLS flags against a server whose native and Kafka listeners both speak TLS:
//! the connect workload and a produce/consume pair over each protocol complete with every
//! message counted. Checks counts, never speed. Certificates are made here with rcgen.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::time::Duration;

use compat_tests::TestServer;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use wharf_gateway::config::TlsSettings;

const LIMIT: Duration = Duration::from_secs(180);
const MESSAGES: u64 = 2000;
const CONNECTIONS: u64 = 5;

/// A CA (`ca.pem`) and a server certificate it signed for `localhost` and `127.0.0.1` (the
/// Kafka listener advertises the address a client reached, and librdkafka checks that name).
fn certificates(dir: &Path) -> TlsSettings {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "bench test CA");
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.as_ref().pem()).unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    TlsSettings {
        cert_file: dir.join("server.pem"),
        key_file: dir.join("server.key"),
        client_ca_file: None,
    }
}

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
    let certs = tempfile::tempdir().unwrap();
    let tls = certificates(certs.path());
    let server = TestServer::start_with(|c| {
        c.native.tls = Some(tls.clone());
        c.kafka.tls = Some(tls);
    })
    .await;
    let ca = certs.path().join("ca.pem");

    let r = bench(&server, &ca, protocol, &["connect"]).await;
    assert_eq!(r["latency"]["kind"], "connect");
    assert_eq!(r["messages"], CONNECTIONS * connectors, "{r}");
    assert_eq!(r["latency"]["samples"], CONNECTIONS * connectors);

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
