//! wharf-sdk over TLS against a real wharf-server whose native listener speaks TLS: connecting
//! with a CA file, login, send and poll (direct and through the pipelined background producer),
//! reconnecting with the same settings; an untrusted certificate, a wrong name and a missing or
//! refused client certificate fail at once with an error naming the problem. Certificates are
//! made here with rcgen, in a temporary directory.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use wharf_gateway::config::{Overrides, ServerConfig, TlsSettings};
use wharf_sdk::{
    BackgroundConfig, Client, ClientConfig, ConsumerKind, Error, Identifier, Message,
    PollingStrategy, Producer, TlsConfig, TlsError, TopicOptions,
};

/// Every wait in these tests: a TLS failure must surface well within it, never hang.
const WAIT: Duration = Duration::from_secs(60);

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out after {WAIT:?}: {what}"))
}

/// A CA, plus certificates it signed, written as PEM files into one temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
            ca,
        };
        std::fs::write(pki.ca_file(), pki.ca.as_ref().pem()).unwrap();
        pki
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A leaf certificate for `names` with `purpose`; returns (cert file, key file).
    fn issue(
        &self,
        file: &str,
        names: &[&str],
        purpose: ExtendedKeyUsagePurpose,
    ) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, file);
        params.extended_key_usages = vec![purpose];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let cert_file = self.dir.path().join(format!("{file}.pem"));
        let key_file = self.dir.path().join(format!("{file}.key"));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }

    /// Server certificate for `localhost` (the name a client verifies for 127.0.0.1 by default).
    fn server_tls(&self, client_ca_file: Option<&Path>) -> TlsSettings {
        let (cert_file, key_file) = self.issue(
            "server",
            &["localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        TlsSettings {
            cert_file,
            key_file,
            client_ca_file: client_ca_file.map(Path::to_path_buf),
        }
    }
}

struct Server {
    addr: SocketAddr,
    _running: wharf_gateway::Running,
    _dir: tempfile::TempDir,
}

async fn server(tls: Option<TlsSettings>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let overrides = Overrides {
        data_dir: Some(dir.path().to_path_buf()),
        native_addr: Some("127.0.0.1:0".into()),
        kafka_addr: Some("127.0.0.1:0".into()),
        ..Overrides::default()
    };
    let mut config = ServerConfig::load_from(&overrides, &[]).unwrap();
    config.native.tls = tls;
    let running = wharf_gateway::start(config).await.unwrap();
    Server {
        addr: running.native_addr,
        _running: running,
        _dir: dir,
    }
}

/// Root's settings for `server` over TLS; few quick retries so failures show at once.
fn config(server: &Server, tls: TlsConfig) -> ClientConfig {
    let mut config = ClientConfig::new(server.addr.to_string())
        .with_password("iggy", "iggy")
        .with_tls(tls);
    config.heartbeat = None;
    config.reconnect_retries = Some(2);
    config.reconnect_backoff = Duration::from_millis(20);
    config.request_timeout = Duration::from_secs(10);
    config
}

fn id(s: &str) -> Identifier {
    Identifier::Name(s.into())
}

/// Creates stream `s` with topic `t` (one partition), sends `count` messages directly and reads
/// them back from offset 0.
async fn round_trip(client: &Client, count: u64) {
    within("create stream", client.create_stream("s"))
        .await
        .unwrap();
    within(
        "create topic",
        client.create_topic(&id("s"), "t", 1, TopicOptions::default()),
    )
    .await
    .unwrap();
    let messages: Vec<Message> = (0..count).map(|i| Message::new(format!("m{i}"))).collect();
    within(
        "send",
        client.send_messages(
            &id("s"),
            &id("t"),
            &wharf_sdk::Partitioning::Balanced,
            &messages,
        ),
    )
    .await
    .unwrap();
    let polled = within("poll", poll_all(client, count)).await;
    let payloads: Vec<String> = polled
        .iter()
        .map(|p| String::from_utf8_lossy(p).into())
        .collect();
    let expected: Vec<String> = (0..count).map(|i| format!("m{i}")).collect();
    assert_eq!(payloads, expected, "what was polled is what was sent");
}

async fn poll_all(client: &Client, count: u64) -> Vec<bytes::Bytes> {
    let mut out = Vec::new();
    while (out.len() as u64) < count {
        let polled = client
            .poll_messages(
                &id("s"),
                &id("t"),
                Some(0),
                &ConsumerKind::Single(id("reader")),
                PollingStrategy::Offset(out.len() as u64),
                1000,
                false,
            )
            .await
            .unwrap();
        assert!(
            !polled.messages.is_empty(),
            "poll at {} came back empty",
            out.len()
        );
        out.extend(polled.messages.into_iter().map(|m| m.payload));
    }
    out
}

fn tls_error(r: Result<Client, Error>) -> TlsError {
    match r {
        Err(Error::Tls(e)) => e,
        Err(other) => panic!("expected a TLS error, got {other:?}"),
        Ok(_) => panic!("expected a TLS error, but the client connected"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_ca_file_the_sdk_logs_in_sends_polls_and_reconnects_over_tls() {
    let pki = Pki::new("wharf");
    let server = server(Some(pki.server_tls(None))).await;
    let client = within(
        "connect over TLS",
        Client::connect(config(&server, TlsConfig::with_ca_file(pki.ca_file()))),
    )
    .await
    .unwrap();
    round_trip(&client, 100).await;

    // The background producer pipelines over connections of its own: TLS too.
    let producer = Producer::builder(&client, id("s"), id("t"))
        .background(BackgroundConfig {
            linger: Duration::from_millis(2),
            batch_messages: 50,
            ..BackgroundConfig::default()
        })
        .build()
        .await
        .unwrap();
    for i in 100..1100 {
        producer.send(Message::new(format!("m{i}"))).await.unwrap();
    }
    within("producer shutdown", producer.shutdown()).await;

    // A reconnect uses the same TLS settings (and logs in again).
    client.disconnect().await;
    let all = within("poll after reconnect", poll_all(&client, 1100)).await;
    assert_eq!(all.len(), 1100);
    assert_eq!(all[1099].as_ref(), b"m1099");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_domain_can_be_named_explicitly() {
    let pki = Pki::new("wharf");
    let server = server(Some(pki.server_tls(None))).await;
    let tls = TlsConfig::with_ca_file(pki.ca_file()).domain("localhost");
    let client = within("connect", Client::connect(config(&server, tls)))
        .await
        .unwrap();
    within("ping", client.ping()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_from_another_ca_is_not_trusted() {
    let pki = Pki::new("wharf");
    let stranger = Pki::new("stranger");
    let server = server(Some(pki.server_tls(None))).await;
    let r = within(
        "connect trusting the wrong CA",
        Client::connect(config(&server, TlsConfig::with_ca_file(stranger.ca_file()))),
    )
    .await;
    let e = tls_error(r);
    assert!(matches!(e, TlsError::UntrustedCertificate(_)), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_name_is_a_name_mismatch() {
    let pki = Pki::new("wharf");
    let server = server(Some(pki.server_tls(None))).await;
    let tls = TlsConfig::with_ca_file(pki.ca_file()).domain("wharf.example.com");
    let e = tls_error(within("connect", Client::connect(config(&server, tls))).await);
    assert!(
        matches!(&e, TlsError::NameMismatch { domain, .. } if domain == "wharf.example.com"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_ca_file_fails_before_connecting() {
    let pki = Pki::new("wharf");
    let server = server(Some(pki.server_tls(None))).await;
    let missing = pki.dir.path().join("missing.pem");
    let e = tls_error(
        within(
            "connect",
            Client::connect(config(&server, TlsConfig::with_ca_file(&missing))),
        )
        .await,
    );
    assert!(
        matches!(&e, TlsError::CaFile { path, .. } if *path == missing),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_takes_a_client_certificate_from_the_trusted_ca_and_refuses_others() {
    let pki = Pki::new("wharf");
    let clients = Pki::new("clients");
    let server = server(Some(pki.server_tls(Some(&clients.ca_file())))).await;

    let (cert, key) = clients.issue("alice", &["alice"], ExtendedKeyUsagePurpose::ClientAuth);
    let tls = TlsConfig::with_ca_file(pki.ca_file()).client_certificate(&cert, &key);
    let client = within(
        "connect with a certificate",
        Client::connect(config(&server, tls)),
    )
    .await
    .unwrap();
    round_trip(&client, 10).await;

    // No certificate: TLS 1.3 reports the refusal on the first read (the login), not a hang.
    let none = TlsConfig::with_ca_file(pki.ca_file());
    let e = tls_error(
        within(
            "connect without a certificate",
            Client::connect(config(&server, none)),
        )
        .await,
    );
    assert!(matches!(e, TlsError::ClientCertificateRefused(_)), "{e}");

    // A certificate from a CA the server does not trust for clients.
    let (cert, key) = pki.issue("mallory", &["mallory"], ExtendedKeyUsagePurpose::ClientAuth);
    let wrong = TlsConfig::with_ca_file(pki.ca_file()).client_certificate(&cert, &key);
    let e = tls_error(
        within(
            "connect with a foreign certificate",
            Client::connect(config(&server, wrong)),
        )
        .await,
    );
    assert!(matches!(e, TlsError::ClientCertificateRefused(_)), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_key_that_does_not_fit_its_certificate_is_refused_before_connecting() {
    let pki = Pki::new("wharf");
    let server = server(Some(pki.server_tls(None))).await;
    let (cert, _) = pki.issue("alice", &["alice"], ExtendedKeyUsagePurpose::ClientAuth);
    let (_, other_key) = pki.issue("bob", &["bob"], ExtendedKeyUsagePurpose::ClientAuth);
    let tls = TlsConfig::with_ca_file(pki.ca_file()).client_certificate(&cert, &other_key);
    let e = tls_error(within("connect", Client::connect(config(&server, tls))).await);
    assert!(matches!(e, TlsError::ClientCertificate { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_against_a_plain_listener_fails_within_the_request_timeout() {
    let pki = Pki::new("wharf");
    let plain = server(None).await;
    let mut settings = config(&plain, TlsConfig::with_ca_file(pki.ca_file()));
    // The bound under test: a plain server may wait for the rest of what it takes for a frame.
    settings.request_timeout = Duration::from_secs(3);
    let e = tls_error(within("TLS to a plain listener", Client::connect(settings)).await);
    assert!(matches!(e, TlsError::Handshake { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_client_cannot_talk_to_a_tls_listener() {
    let pki = Pki::new("wharf");
    let server = server(Some(pki.server_tls(None))).await;
    let mut settings = config(&server, TlsConfig::default());
    settings.tls = None;
    let r = within("plain to a TLS listener", Client::connect(settings)).await;
    assert!(
        matches!(r, Err(Error::Disconnected(_) | Error::Timeout(_))),
        "a plain client must not get through a TLS listener: {:?}",
        r.map(drop)
    );
}
