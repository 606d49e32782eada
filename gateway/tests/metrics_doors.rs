//! Both doors count their requests and connections where they serve them, over real sockets:
//! each Kafka request by its API name and each native command by its name, the errors in
//! answers by Kafka's or Iggy's error name (`error` label), an acks=0 produce with an error
//! (its errors counted, its connection closed, as Kafka), the connections open now, admitted and refused (over the door's `max_connections` cap).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ProduceRequest, RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use wharf_gateway::broker::{Broker, BrokerSettings, StoreConfig};
use wharf_gateway::config::{Overrides, ServerConfig};
use wharf_gateway::kafka::Door;
use wharf_gateway::metrics::exposition::exposition;
use wharf_gateway::metrics::{DoorKind, Metrics};
use wharf_gateway::peer_log::PeerLog;
use wharf_gateway::server::budget::RequestBudget;
use wharf_gateway::server::{Entrance, Shared};
use wharf_protocol::framing::encode_request;

/// Longest any step may take before the test fails.
const BOUND: Duration = Duration::from_secs(30);

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, f)
        .await
        .unwrap_or_else(|_| panic!("{what} not done within {BOUND:?}"))
}

fn try_sample(text: &str, series: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(str::to_string)
}

fn sample(text: &str, series: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
        .to_string()
}

fn kafka_frame<R: Encodable + HeaderVersion>(key: ApiKey, version: i16, req: &R) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("metrics-test")))
        .encode(&mut buf, R::header_version(version))
        .unwrap();
    req.encode(&mut buf, version).unwrap();
    let mut frame = (buf.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&buf);
    frame
}

/// The error series of one door and API in `text`, whatever their error name.
fn any_errors_in(text: &str, door: &str, api: &str) -> usize {
    let prefix = format!(r#"wharf_request_errors_total{{door="{door}",api="{api}","#);
    text.lines().filter(|l| l.starts_with(&prefix)).count()
}

async fn kafka_call(s: &mut TcpStream, frame: &[u8]) {
    s.write_all(frame).await.unwrap();
    let size = within("a Kafka answer", s.read_u32()).await.unwrap();
    let mut body = vec![0; size as usize];
    s.read_exact(&mut body).await.unwrap();
}

/// Sends a native command and returns the answer's status.
async fn native_call(s: &mut TcpStream, code: u32, payload: &[u8]) -> u32 {
    let mut frame = BytesMut::new();
    encode_request(code, payload, &mut frame);
    s.write_all(&frame).await.unwrap();
    let mut head = [0u8; 8];
    within("a native answer", s.read_exact(&mut head))
        .await
        .unwrap();
    let mut head = &head[..];
    let (status, len) = (head.get_u32_le(), head.get_u32_le());
    let mut body = vec![0; len as usize];
    s.read_exact(&mut body).await.unwrap();
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_doors_count_requests_errors_and_connections() {
    let dir = tempfile::tempdir().unwrap();
    let overrides = Overrides {
        data_dir: Some(dir.path().to_path_buf()),
        native_addr: Some("127.0.0.1:0".into()),
        kafka_addr: Some("127.0.0.1:0".into()),
        ..Overrides::default()
    };
    let mut config = ServerConfig::load_from(&overrides, &[]).unwrap();
    // The bound under attack: one Kafka connection at a time.
    config.kafka.limits.max_connections = 1;
    let settings = BrokerSettings {
        root_username: "iggy".into(),
        root_password: "iggy".into(),
        kafka_default_stream: "default".into(),
        groups: Default::default(),
        transactions: Default::default(),
        logins: Default::default(),
        max_partitions_per_topic: 1000,
        max_partitions: 100_000,
    };
    let metrics = Metrics::new(true);
    let broker = Arc::new(
        Broker::open(dir.path(), StoreConfig::default(), settings)
            .unwrap()
            .with_metrics(Arc::clone(&metrics)),
    );
    let shared = Shared {
        budget: RequestBudget::new(64 << 20, 16 << 20),
        peer_log: Arc::new(PeerLog::new(Duration::from_secs(60))),
        metrics: Arc::clone(&metrics),
    };
    let (stop, stopped) = watch::channel(false);
    let native_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let native_addr = native_listener.local_addr().unwrap();
    let kafka_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let kafka_addr = kafka_listener.local_addr().unwrap();
    let kafka_settings = config.kafka.listeners().remove(0);
    let native = tokio::spawn(wharf_gateway::native::serve(
        native_listener,
        Entrance::new("native", config.native.limits.clone()),
        Arc::clone(&broker),
        config.native.clone(),
        shared.clone(),
        stopped.clone(),
    ));
    let kafka = tokio::spawn(wharf_gateway::kafka::serve(
        kafka_listener,
        kafka_settings,
        Entrance::new("kafka", config.kafka.limits.clone()),
        Arc::new(Door {
            broker: Arc::clone(&broker),
            config: config.kafka.clone(),
            cluster_id: "metrics-test".into(),
            fetch_sessions: wharf_gateway::kafka::fetch_sessions::FetchSessions::new(
                config.kafka.max_incremental_fetch_session_cache_slots,
            ),
        }),
        shared,
        stopped,
    ));

    // Kafka: ApiVersions answered; a Produce to a topic that does not exist answered with
    // UNKNOWN_TOPIC_OR_PARTITION in its partition: an error.
    let mut k = TcpStream::connect(kafka_addr).await.unwrap();
    kafka_call(
        &mut k,
        &kafka_frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()),
    )
    .await;
    let missing = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("missing")))
            .with_partition_data(
                vec![PartitionProduceData::default().with_index(0)],
            )]);
    kafka_call(&mut k, &kafka_frame(ApiKey::Produce, 9, &missing)).await;
    kafka_call(
        &mut k,
        &kafka_frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()),
    )
    .await;

    // A second Kafka connection is over the cap: closed at once, counted as refused.
    let mut over = TcpStream::connect(kafka_addr).await.unwrap();
    let mut byte = [0u8; 1];
    let n = within("the refused connection's close", over.read(&mut byte))
        .await
        .unwrap_or(0);
    assert_eq!(n, 0, "the connection over the cap is closed");

    // Native: a ping (allowed before login) and a stream list (refused before login).
    let mut n = TcpStream::connect(native_addr).await.unwrap();
    assert_eq!(native_call(&mut n, 1, &[]).await, 0);
    assert_ne!(native_call(&mut n, 201, &[]).await, 0);

    let text = exposition(&metrics, Some(&broker), true);
    let series = |door: &str, api: &str| format!(r#"{{door="{door}",api="{api}"}}"#);
    let errors = |door: &str, api: &str, error: &str| {
        format!(r#"wharf_request_errors_total{{door="{door}",api="{api}",error="{error}"}}"#)
    };
    // The errors of one door and API, whatever their name.
    let any_errors = |door: &str, api: &str| any_errors_in(&text, door, api);
    let versions = series("kafka", "ApiVersions");
    assert_eq!(
        sample(&text, &format!("wharf_requests_total{versions}")),
        "2"
    );
    assert_eq!(any_errors("kafka", "ApiVersions"), 0, "{text}");
    let produce = series("kafka", "Produce");
    assert_eq!(
        sample(&text, &format!("wharf_requests_total{produce}")),
        "1"
    );
    assert_eq!(
        sample(
            &text,
            &errors("kafka", "Produce", "UNKNOWN_TOPIC_OR_PARTITION")
        ),
        "1"
    );
    assert_eq!(any_errors("kafka", "Produce"), 1, "{text}");
    let ping = series("native", "Ping");
    assert_eq!(sample(&text, &format!("wharf_requests_total{ping}")), "1");
    assert_eq!(any_errors("native", "Ping"), 0, "{text}");
    let streams = series("native", "GetStreams");
    assert_eq!(
        sample(&text, &format!("wharf_requests_total{streams}")),
        "1"
    );
    assert_eq!(
        sample(&text, &errors("native", "GetStreams", "unauthenticated")),
        "1"
    );
    assert_eq!(
        try_sample(&text, &errors("native", "GetStreams", "other")),
        None
    );
    assert_eq!(sample(&text, r#"wharf_connections{door="kafka"}"#), "1");
    assert_eq!(sample(&text, r#"wharf_connections{door="native"}"#), "1");
    assert_eq!(
        sample(&text, r#"wharf_connections_accepted_total{door="kafka"}"#),
        "1"
    );
    assert_eq!(
        sample(&text, r#"wharf_connections_refused_total{door="kafka"}"#),
        "1"
    );

    // An acks=0 Produce to the same missing topic: no answer, but as Kafka's KafkaApis
    // (`closeConnection`) its error counts and the connection is closed, so the producer
    // refreshes its metadata. Bound: the close is seen within `within`'s wait.
    let unanswered = missing.clone().with_acks(0);
    k.write_all(&kafka_frame(ApiKey::Produce, 9, &unanswered))
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let n_read = within("the acks=0 connection's close", k.read(&mut byte))
        .await
        .unwrap_or(0);
    assert_eq!(
        n_read, 0,
        "an acks=0 produce with an error closes its connection"
    );
    let text = exposition(&metrics, Some(&broker), true);
    assert_eq!(
        sample(&text, &format!("wharf_requests_total{produce}")),
        "2",
        "the acks=0 produce counts as a request"
    );
    assert_eq!(
        sample(
            &text,
            &errors("kafka", "Produce", "UNKNOWN_TOPIC_OR_PARTITION")
        ),
        "2",
        "the acks=0 produce's UNKNOWN_TOPIC_OR_PARTITION counts 1 (the answered one's 1 before)"
    );
    assert_eq!(
        any_errors_in(&text, "kafka", "Produce"),
        1,
        "no CONNECTION_CLOSED or other error for it: {text}"
    );

    // Closed by the client: no longer counted open once the server has seen it go.
    drop(k);
    drop(n);
    let _ = stop.send(true);
    within("the doors stopping", async {
        native.await.unwrap();
        kafka.await.unwrap();
    })
    .await;
    assert_eq!(metrics.connections(DoorKind::Kafka), 0);
    assert_eq!(metrics.connections(DoorKind::Native), 0);
}
