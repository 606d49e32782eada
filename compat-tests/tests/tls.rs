//! TLS on both doors with real clients: the official `iggy` SDK's TLS option, librdkafka's
//! `security.protocol=SSL` (with and without a client certificate), plain and TLS listeners
//! side by side, and what a TLS listener does with clients that do not speak TLS, stall the
//! handshake or bring no certificate to a listener that requires one. Certificates are made in
//! the test ([`TestCerts`]).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use compat_tests::{within, TestCerts, TestServer, WAIT};
use iggy::prelude::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use wharf_gateway::config::{KafkaAuthentication, KafkaListener, NativeListener};

fn loopback_any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// An iggy client for `addr`, over TLS trusting the test CA when `tls`.
fn iggy_client(addr: SocketAddr, certs: Option<&TestCerts>) -> IggyClient {
    let mut b = IggyClient::builder()
        .with_tcp()
        .with_server_address(addr.to_string())
        .with_no_delay();
    if let Some(certs) = certs {
        b = b
            .with_tls_enabled(true)
            .with_tls_domain("localhost".into())
            .with_tls_ca_file(TestCerts::path(&certs.ca));
    }
    b.build().unwrap()
}

async fn login_root(client: &IggyClient) {
    within("connect", client.connect()).await.unwrap();
    within(
        "login",
        client.login_user(DEFAULT_ROOT_USERNAME, DEFAULT_ROOT_PASSWORD),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_iggy_sdk_logs_in_sends_and_polls_over_tls_beside_a_plain_listener() {
    let certs = TestCerts::new();
    let server = TestServer::start_with(|c| {
        c.native.tls = Some(certs.tls_settings(false));
        c.native.more_listeners = vec![NativeListener {
            address: loopback_any_port(),
            tls: false,
        }];
    })
    .await;
    assert_eq!(server.native_listeners.len(), 2);
    assert_eq!(server.native_listeners[0], server.addr);

    let client = iggy_client(server.addr, Some(&certs));
    login_root(&client).await;
    compat_tests::create_stream_with_topic(&client, "secure", "events", 1).await;
    let stream = Identifier::named("secure").unwrap();
    let topic = Identifier::named("events").unwrap();
    let payloads: Vec<String> = (0..20).map(|i| format!("sealed {i}")).collect();
    let mut messages: Vec<IggyMessage> = payloads
        .iter()
        .map(|p| {
            IggyMessage::builder()
                .payload(p.clone().into())
                .build()
                .unwrap()
        })
        .collect();
    within(
        "send over TLS",
        client.send_messages(
            &stream,
            &topic,
            &Partitioning::partition_id(0),
            &mut messages,
        ),
    )
    .await
    .unwrap();
    let polled = within(
        "poll over TLS",
        client.poll_messages(
            &stream,
            &topic,
            Some(0),
            &iggy::prelude::Consumer::new(Identifier::named("reader").unwrap()),
            &PollingStrategy::offset(0),
            100,
            false,
        ),
    )
    .await
    .unwrap();
    let got: Vec<String> = polled
        .messages
        .iter()
        .map(|m| String::from_utf8(m.payload.to_vec()).unwrap())
        .collect();
    assert_eq!(got, payloads);

    // The plain listener beside it serves the same data to a plain client.
    let plain = iggy_client(server.native_listeners[1], None);
    login_root(&plain).await;
    let polled = within(
        "poll over plain TCP",
        plain.poll_messages(
            &stream,
            &topic,
            Some(0),
            &iggy::prelude::Consumer::new(Identifier::named("reader").unwrap()),
            &PollingStrategy::offset(0),
            100,
            false,
        ),
    )
    .await
    .unwrap();
    assert_eq!(polled.messages.len(), payloads.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_iggy_client_gets_an_error_from_a_tls_listener_not_a_hang() {
    let certs = TestCerts::new();
    let server = TestServer::start_with(|c| c.native.tls = Some(certs.tls_settings(false))).await;
    let client = IggyClient::builder()
        .with_tcp()
        .with_server_address(server.addr.to_string())
        .with_reconnection_max_retries(Some(0))
        .build()
        .unwrap();
    // The TCP connection opens; the first request is not a ClientHello and the server closes.
    let login = async {
        client.connect().await?;
        client
            .login_user(DEFAULT_ROOT_USERNAME, DEFAULT_ROOT_PASSWORD)
            .await
    };
    let outcome = within("the plain client's login to fail", login).await;
    assert!(
        outcome.is_err(),
        "a plain client logged in on a TLS listener"
    );
}

/// librdkafka settings for the listener at `addr` speaking TLS, trusting the test CA, with the
/// client certificate when `client_cert`.
fn kafka_tls(
    server: &TestServer,
    addr: SocketAddr,
    certs: &TestCerts,
    client_cert: bool,
) -> ClientConfig {
    let mut c = server.kafka_config();
    c.set("bootstrap.servers", addr.to_string())
        .set("security.protocol", "SSL")
        .set("ssl.ca.location", TestCerts::path(&certs.ca));
    if client_cert {
        c.set(
            "ssl.certificate.location",
            TestCerts::path(&certs.client_cert),
        )
        .set("ssl.key.location", TestCerts::path(&certs.client_key));
    }
    c
}

/// Produces `n` records to partition 0 of `topic` with `config`, then reads them back from the
/// beginning with `config`, checking each value.
async fn produce_and_consume(config: &ClientConfig, topic: &str, n: usize) {
    let producer: FutureProducer = config.create().unwrap();
    let values: Vec<String> = (0..n).map(|i| format!("{topic} record {i}")).collect();
    for v in &values {
        within(
            "delivery over TLS",
            producer.send(
                FutureRecord::<(), _>::to(topic).partition(0).payload(v),
                Duration::from_secs(30),
            ),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    }
    let consumer: BaseConsumer = config
        .clone()
        .set("group.id", "unused-no-commits")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    let mut got = Vec::new();
    while got.len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "consumed only {} of {n} records within {WAIT:?}",
            got.len()
        );
        match consumer.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Err(e)) => panic!("consumer error: {e}"),
            Some(Ok(m)) => got.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap()),
        }
    }
    assert_eq!(got, values);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_produces_and_consumes_over_ssl() {
    let certs = TestCerts::new();
    let server = TestServer::start_with(|c| c.kafka.tls = Some(certs.tls_settings(false))).await;
    let config = kafka_tls(&server, server.kafka_addr, &certs, false);
    produce_and_consume(&config, "sealed", 10).await;
}

/// The brokers librdkafka reads from the Metadata answer of the listener `config` names.
fn metadata_brokers(config: &ClientConfig) -> Vec<(String, i32)> {
    let consumer: BaseConsumer = config.create().unwrap();
    let md = consumer
        .fetch_metadata(None, Duration::from_secs(30))
        .unwrap();
    md.brokers()
        .iter()
        .map(|b| (b.host().to_string(), b.port()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_and_a_tls_kafka_listener_each_advertise_their_own_port() {
    let certs = TestCerts::new();
    let server = TestServer::start_with(|c| {
        c.kafka.tls = Some(certs.tls_settings(false));
        c.kafka.more_listeners = vec![KafkaListener {
            address: loopback_any_port(),
            advertised_host: None,
            advertised_port: None,
            authentication: KafkaAuthentication::None,
            tls: false,
        }];
    })
    .await;
    assert_eq!(server.kafka_listeners.len(), 2);
    let (tls_addr, plain_addr) = (server.kafka_listeners[0], server.kafka_listeners[1]);
    assert_eq!(tls_addr, server.kafka_addr);
    assert_ne!(tls_addr.port(), plain_addr.port());

    let tls = kafka_tls(&server, tls_addr, &certs, false);
    assert_eq!(
        metadata_brokers(&tls),
        vec![("127.0.0.1".to_string(), i32::from(tls_addr.port()))]
    );
    let mut plain = server.kafka_config();
    plain.set("bootstrap.servers", plain_addr.to_string());
    assert_eq!(
        metadata_brokers(&plain),
        vec![("127.0.0.1".to_string(), i32::from(plain_addr.port()))]
    );
    // Both reach the same data: written over TLS, read over plain TCP.
    produce_and_consume(&tls, "shared", 3).await;
    produce_and_consume(&plain, "shared-too", 3).await;
}

/// A rustls client trusting the test CA, presenting the client certificate when `client_cert`.
fn tls_connector(certs: &TestCerts, client_cert: bool) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(&certs.ca).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = if client_cert {
        let chain = CertificateDer::pem_file_iter(&certs.client_cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&certs.client_key).unwrap();
        builder.with_client_auth_cert(chain, key).unwrap()
    } else {
        builder.with_no_client_auth()
    };
    TlsConnector::from(Arc::new(config))
}

/// A Kafka ApiVersions v0 request (correlation id 7, no client id).
const API_VERSIONS: [u8; 14] = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff];

/// Sends ApiVersions and reads its answer's correlation id; an error if the connection ends
/// first.
async fn api_versions<S>(stream: &mut S) -> std::io::Result<i32>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream.write_all(&API_VERSIONS).await?;
    stream.flush().await?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).await?;
    let mut body = vec![0u8; u32::from_be_bytes(size).min(1 << 20) as usize];
    stream.read_exact(&mut body).await?;
    Ok(i32::from_be_bytes([body[0], body[1], body[2], body[3]]))
}

/// Reads until the server closes the connection (end of stream or an error such as a reset),
/// throwing away what arrives (a TLS alert, say).
async fn closed_by_server(stream: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_refuses_a_client_without_a_certificate_and_serves_one_with_it() {
    let certs = TestCerts::new();
    let server = TestServer::start_with(|c| c.kafka.tls = Some(certs.tls_settings(true))).await;
    let name = ServerName::try_from("localhost").unwrap();

    // Without a certificate: in TLS 1.3 the client's side of the handshake may complete, but
    // the server refuses it and the request is never answered.
    let tcp = TcpStream::connect(server.kafka_addr).await.unwrap();
    let refused = within("the certificate-less client to be refused", async {
        let mut tls = tls_connector(&certs, false)
            .connect(name.clone(), tcp)
            .await?;
        api_versions(&mut tls).await
    })
    .await;
    assert!(
        refused.is_err(),
        "a client without a certificate was answered: {refused:?}"
    );

    // With the client certificate, by hand and with librdkafka.
    let tcp = TcpStream::connect(server.kafka_addr).await.unwrap();
    let mut tls = within(
        "handshake with a client certificate",
        tls_connector(&certs, true).connect(name, tcp),
    )
    .await
    .unwrap();
    assert_eq!(
        within("ApiVersions", api_versions(&mut tls)).await.unwrap(),
        7
    );
    let config = kafka_tls(&server, server.kafka_addr, &certs, true);
    produce_and_consume(&config, "mutual", 3).await;
}

/// Sends the root login frame and reads the answer's status; an error if the connection ends
/// first.
async fn native_login<S>(stream: &mut S) -> std::io::Result<u32>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream.write_all(&compat_tests::root_login_frame()).await?;
    stream.flush().await?;
    let mut head = [0u8; 8];
    stream.read_exact(&mut head).await?;
    Ok(u32::from_le_bytes([head[0], head[1], head[2], head[3]]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_native_door_with_mutual_tls_answers_only_clients_with_a_certificate() {
    let certs = TestCerts::new();
    let server = TestServer::start_with(|c| c.native.tls = Some(certs.tls_settings(true))).await;
    let name = ServerName::try_from("localhost").unwrap();
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let refused = within("the certificate-less client to be refused", async {
        let mut tls = tls_connector(&certs, false)
            .connect(name.clone(), tcp)
            .await?;
        native_login(&mut tls).await
    })
    .await;
    assert!(
        refused.is_err(),
        "a client without a certificate was answered: {refused:?}"
    );
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let mut tls = within(
        "handshake with a client certificate",
        tls_connector(&certs, true).connect(name, tcp),
    )
    .await
    .unwrap();
    assert_eq!(within("login", native_login(&mut tls)).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_tls_handshake_is_dropped_after_the_request_read_timeout() {
    let certs = TestCerts::new();
    let server = TestServer::start_with(|c| {
        c.kafka.tls = Some(certs.tls_settings(false));
        // Bound: request_read_timeout (500 ms here; the idle timeout stays at its default of
        // 10 minutes, far beyond WAIT, so a close within WAIT is the handshake bound's).
        c.kafka.limits.request_read_timeout = Duration::from_millis(500);
        c.native.tls = Some(certs.tls_settings(false));
        c.native.limits.request_read_timeout = Duration::from_millis(500);
    })
    .await;
    for addr in [server.kafka_addr, server.addr] {
        // Nothing at all after the connect.
        let mut silent = TcpStream::connect(addr).await.unwrap();
        within(
            "the silent connection to be closed",
            closed_by_server(&mut silent),
        )
        .await;
        // The head of a TLS record promising 200 bytes of ClientHello that never come.
        let mut stalled = TcpStream::connect(addr).await.unwrap();
        stalled
            .write_all(&[0x16, 0x03, 0x01, 0x00, 0xc8, 0x01])
            .await
            .unwrap();
        within(
            "the stalled handshake to be closed",
            closed_by_server(&mut stalled),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_a_client_hello_closes_that_connection_only() {
    let certs = TestCerts::new();
    let server = TestServer::start_with(|c| c.kafka.tls = Some(certs.tls_settings(false))).await;
    // A plaintext Kafka request, then an HTTP request: neither is a ClientHello.
    for garbage in [&API_VERSIONS[..], b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"] {
        let mut c = TcpStream::connect(server.kafka_addr).await.unwrap();
        c.write_all(garbage).await.unwrap();
        within(
            "the garbage connection to be closed",
            closed_by_server(&mut c),
        )
        .await;
    }
    // The listener still serves TLS clients.
    let tcp = TcpStream::connect(server.kafka_addr).await.unwrap();
    let mut tls = within(
        "handshake after the garbage",
        tls_connector(&certs, false).connect(ServerName::try_from("localhost").unwrap(), tcp),
    )
    .await
    .unwrap();
    assert_eq!(
        within("ApiVersions", api_versions(&mut tls)).await.unwrap(),
        7
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_certificate_file_stops_the_start_with_its_name() {
    let certs = TestCerts::new();
    let temp = tempfile::tempdir().unwrap();
    let mut config = compat_tests::test_config(temp.path());
    let mut tls = certs.tls_settings(false);
    tls.cert_file = temp.path().join("no-such-cert.pem");
    config.kafka.tls = Some(tls);
    let e = wharf_gateway::start(config).await.unwrap_err().to_string();
    assert!(e.contains("no-such-cert.pem"), "{e}");
    assert!(e.contains("kafka"), "{e}");
}
