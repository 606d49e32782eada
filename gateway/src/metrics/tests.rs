//! The exposition after known calls on a real broker: exact counter values, both doors' traffic
//! counted in the core, lag from committed offsets, escaping, deleted topics, metrics off.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use wharf_log_store::StoreConfig;
use wharf_protocol::message::encode_message;
use wharf_protocol::{Consumer, Identifier, Partitioning, PollingStrategy};

use super::exposition::exposition;
use super::{DoorKind, Metrics, Outcome};
use crate::broker::consume::{FetchLimits, FetchWant, PollRequest};
use crate::broker::coordinator::MemberRef;
use crate::broker::kafka_batch::{encode_batch, NewRecord};
use crate::broker::offsets::GroupCommit;
use crate::broker::produce::{KafkaPartitionWrite, KafkaTopicWrite};
use crate::broker::{Broker, BrokerSettings};

fn open(dir: &std::path::Path, metrics: &Arc<Metrics>) -> Broker {
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
    Broker::open(dir, StoreConfig::default(), settings)
        .unwrap()
        .with_metrics(Arc::clone(metrics))
}

/// The value of the one sample named exactly `series` (name and labels as written).
fn sample(text: &str, series: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(str::to_string)
}

fn value(text: &str, series: &str) -> String {
    sample(text, series).unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

/// Every line is a comment or a sample of the family the last `# TYPE` named (a histogram's
/// with its suffixes), names and label blocks well formed: what a Prometheus parser needs.
fn check_well_formed(text: &str) {
    let mut family: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            let (name, kind) = t.split_once(' ').unwrap();
            family = Some((name.to_string(), kind.to_string()));
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (name, kind) = family.as_ref().unwrap_or_else(|| panic!("no TYPE: {line}"));
        let series_end = line.find(['{', ' ']).unwrap();
        let series = &line[..series_end];
        let ok = match kind.as_str() {
            "histogram" => [
                format!("{name}_bucket"),
                format!("{name}_sum"),
                format!("{name}_count"),
            ]
            .contains(&series.to_string()),
            _ => series == name,
        };
        assert!(ok, "{series} is not of family {name} ({kind})");
        let rest = &line[series_end..];
        let value = if let Some(labels) = rest.strip_prefix('{') {
            let close = labels.rfind("} ").unwrap();
            &labels[close + 2..]
        } else {
            rest.trim_start()
        };
        assert!(
            value.parse::<f64>().is_ok() || value == "+Inf",
            "bad value in {line}"
        );
    }
}

fn kafka_batch(records: usize) -> Bytes {
    let values: Vec<Vec<u8>> = (0..records).map(|i| vec![b'v'; 10 + i]).collect();
    let records: Vec<NewRecord<'_>> = values
        .iter()
        .map(|v| NewRecord {
            timestamp_ms: 1_000,
            value: Some(v),
            ..Default::default()
        })
        .collect();
    encode_batch(0, &records)
}

async fn produce(broker: &Broker, topic: &str, partition: i32, batch: Bytes) {
    let results = broker
        .produce_kafka(
            None,
            vec![KafkaTopicWrite {
                name: topic.into(),
                partitions: vec![KafkaPartitionWrite {
                    index: partition,
                    records: Some(batch),
                }],
            }],
            true,
        )
        .await;
    assert!(results[0][0].is_ok(), "{results:?}");
}

#[tokio::test]
async fn exposition_counts_both_doors_traffic_and_lag_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new(true);
    let broker = open(dir.path(), &metrics);

    // Kafka door: 3 records and then 2 into partition 0 of `orders`.
    broker
        .create_kafka_topic("orders", 2, Default::default(), false)
        .await
        .unwrap();
    let (first, second) = (kafka_batch(3), kafka_batch(2));
    let kafka_bytes = (first.len() + second.len()) as u64;
    produce(&broker, "orders", 0, first).await;
    produce(&broker, "orders", 0, second).await;
    let fetched = broker
        .fetch(
            vec![FetchWant {
                topic: "orders".into(),
                partition: 0,
                offset: 0,
                max_bytes: 1 << 20,
            }],
            FetchLimits::new(1 << 20, 1 << 20, 1, Duration::ZERO),
        )
        .await;
    let fetched_bytes: u64 = fetched[0]
        .records
        .as_ref()
        .unwrap()
        .iter()
        .map(|b| b.len() as u64)
        .sum();
    assert_eq!(fetched_bytes, kafka_bytes);

    // A Kafka group at offset 2 of the 5: lag 3.
    let committed = broker
        .commit_group_offsets(
            "billing",
            MemberRef {
                member_id: "",
                group_instance_id: None,
                generation: -1,
            },
            vec![GroupCommit {
                topic: "orders".into(),
                partition: 0,
                offset: 2,
                leader_epoch: -1,
                metadata: String::new(),
            }],
        )
        .await;
    assert!(committed.iter().all(Result::is_ok), "{committed:?}");

    // Native door: 4 messages into a topic of another stream, then a poll of 3 of them.
    let shop = broker.create_stream("shop").await.unwrap();
    let carts = broker
        .create_topic(shop.id, "carts", 1, Default::default())
        .await
        .unwrap();
    let mut blob = BytesMut::new();
    for i in 0..4u8 {
        encode_message(0, 0, &[i; 7], &[], &mut blob);
    }
    let native_bytes = blob.len() as u64;
    broker
        .send_messages(&carts, &Partitioning::PartitionId(0), blob)
        .await
        .unwrap();
    let polled = broker
        .poll_messages(
            PollRequest {
                client_id: 1,
                consumer: Consumer::Single(Identifier::Numeric(1)),
                stream: shop.id,
                topic: carts.id,
                partition: Some(0),
                strategy: PollingStrategy::Offset(0),
                count: 3,
                auto_commit: false,
            },
            1000,
            1 << 20,
        )
        .await
        .unwrap();
    assert_eq!(polled.count, 3);
    let polled_bytes: u64 = polled.messages.iter().map(|m| m.len() as u64).sum();

    // Requests as the doors record them.
    metrics.kafka_request(0, Duration::from_millis(3), Outcome::Ok);
    metrics.kafka_request(0, Duration::from_millis(30), Outcome::Error);
    metrics.native_request(101, Duration::from_micros(70), Outcome::Ok);
    let _connection = metrics.connection_opened(DoorKind::Native);

    let text = exposition(&metrics, Some(&broker));
    check_well_formed(&text);
    let orders = r#"{stream="default",topic="orders"}"#;
    let carts = r#"{stream="shop",topic="shop.carts"}"#;
    assert_eq!(
        value(&text, &format!("wharf_topic_messages_in_total{orders}")),
        "5"
    );
    assert_eq!(
        value(&text, &format!("wharf_topic_bytes_in_total{orders}")),
        kafka_bytes.to_string()
    );
    assert_eq!(
        value(&text, &format!("wharf_topic_messages_out_total{orders}")),
        "5"
    );
    assert_eq!(
        value(&text, &format!("wharf_topic_bytes_out_total{orders}")),
        fetched_bytes.to_string()
    );
    assert_eq!(
        value(&text, &format!("wharf_topic_messages_in_total{carts}")),
        "4"
    );
    assert_eq!(
        value(&text, &format!("wharf_topic_bytes_in_total{carts}")),
        native_bytes.to_string()
    );
    assert_eq!(
        value(&text, &format!("wharf_topic_messages_out_total{carts}")),
        "3"
    );
    assert_eq!(
        value(&text, &format!("wharf_topic_bytes_out_total{carts}")),
        polled_bytes.to_string()
    );
    let p0 = r#"{stream="default",topic="orders",partition="0"}"#;
    let p1 = r#"{stream="default",topic="orders",partition="1"}"#;
    assert_eq!(
        value(&text, &format!("wharf_partition_high_watermark{p0}")),
        "5"
    );
    assert_eq!(
        value(&text, &format!("wharf_partition_high_watermark{p1}")),
        "0"
    );
    assert_eq!(
        value(&text, &format!("wharf_partition_log_start_offset{p0}")),
        "0"
    );
    let g = r#"{group="billing",stream="default",topic="orders",partition="0"}"#;
    assert_eq!(
        value(&text, &format!("wharf_consumer_group_committed_offset{g}")),
        "2"
    );
    assert_eq!(value(&text, &format!("wharf_consumer_group_lag{g}")), "3");

    let produce = r#"{door="kafka",api="Produce"}"#;
    assert_eq!(value(&text, &format!("wharf_requests_total{produce}")), "2");
    assert_eq!(
        value(&text, &format!("wharf_request_errors_total{produce}")),
        "1"
    );
    assert_eq!(
        value(
            &text,
            &format!("wharf_request_duration_seconds_count{produce}")
        ),
        "2"
    );
    // 3 ms is at most 5 ms, 30 ms is not.
    assert_eq!(
        value(
            &text,
            r#"wharf_request_duration_seconds_bucket{door="kafka",api="Produce",le="0.005"}"#
        ),
        "1"
    );
    let send = r#"{door="native",api="SendMessages"}"#;
    assert_eq!(value(&text, &format!("wharf_requests_total{send}")), "1");
    assert_eq!(
        value(&text, &format!("wharf_request_errors_total{send}")),
        "0"
    );
    assert_eq!(value(&text, r#"wharf_connections{door="native"}"#), "1");
    assert_eq!(value(&text, r#"wharf_connections{door="kafka"}"#), "0");
    assert_eq!(
        value(&text, r#"wharf_connections_accepted_total{door="native"}"#),
        "1"
    );
    // Three appends, each a group of its own (3, 2 and 4 messages).
    assert_eq!(value(&text, "wharf_append_group_messages_count"), "3");
    assert_eq!(value(&text, "wharf_append_group_messages_sum"), "9.0");
    assert_eq!(value(&text, "wharf_append_duration_seconds_count"), "3");
    assert_eq!(value(&text, "wharf_ready"), "1");
    assert_eq!(value(&text, "wharf_metrics_enabled"), "1");
    assert_ne!(value(&text, "wharf_data_dir_bytes"), "0");
    assert_eq!(
        value(&text, r#"wharf_group_rebalances_total{protocol="kafka"}"#),
        "0"
    );
    #[cfg(target_os = "linux")]
    assert_ne!(value(&text, "process_resident_memory_bytes"), "0");
}

#[tokio::test]
async fn with_metrics_off_nothing_is_counted_on_the_hot_path() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new(false);
    let broker = open(dir.path(), &metrics);
    broker
        .create_kafka_topic("orders", 1, Default::default(), false)
        .await
        .unwrap();
    produce(&broker, "orders", 0, kafka_batch(3)).await;
    metrics.kafka_request(0, Duration::from_millis(3), Outcome::Error);
    metrics.native_request(101, Duration::from_millis(3), Outcome::Ok);
    metrics.request(
        DoorKind::Kafka,
        "Fetch",
        Duration::from_millis(3),
        Outcome::Ok,
    );
    let _connection = metrics.connection_opened(DoorKind::Kafka);

    let text = exposition(&metrics, Some(&broker));
    check_well_formed(&text);
    assert_eq!(value(&text, "wharf_metrics_enabled"), "0");
    assert!(metrics.request_totals().is_empty());
    assert!(!text.contains("wharf_requests_total{"), "{text}");
    let orders = r#"{stream="default",topic="orders"}"#;
    assert_eq!(
        value(&text, &format!("wharf_topic_messages_in_total{orders}")),
        "0"
    );
    assert_eq!(value(&text, "wharf_append_duration_seconds_count"), "0");
    assert_eq!(value(&text, "wharf_fsync_duration_seconds_count"), "0");
    // Scrape-time figures are served all the same.
    assert_eq!(
        value(
            &text,
            r#"wharf_partition_high_watermark{stream="default",topic="orders",partition="0"}"#
        ),
        "3"
    );
    assert_eq!(value(&text, r#"wharf_connections{door="kafka"}"#), "1");
}

#[tokio::test]
async fn label_values_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new(true);
    let broker = open(dir.path(), &metrics);
    broker
        .create_kafka_topic("orders", 1, Default::default(), false)
        .await
        .unwrap();
    produce(&broker, "orders", 0, kafka_batch(1)).await;
    // A Kafka group id is any string a client sends.
    let group = "a\"b\\c\nd";
    let committed = broker
        .commit_group_offsets(
            group,
            MemberRef {
                member_id: "",
                group_instance_id: None,
                generation: -1,
            },
            vec![GroupCommit {
                topic: "orders".into(),
                partition: 0,
                offset: 0,
                leader_epoch: -1,
                metadata: String::new(),
            }],
        )
        .await;
    assert!(committed.iter().all(Result::is_ok), "{committed:?}");
    let text = exposition(&metrics, Some(&broker));
    check_well_formed(&text);
    assert_eq!(
        value(
            &text,
            r#"wharf_consumer_group_lag{group="a\"b\\c\nd",stream="default",topic="orders",partition="0"}"#
        ),
        "1"
    );
}

#[tokio::test]
async fn a_deleted_topics_series_vanish() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new(true);
    let broker = open(dir.path(), &metrics);
    let t = broker
        .create_kafka_topic("gone", 1, Default::default(), false)
        .await
        .unwrap()
        .unwrap();
    broker
        .create_kafka_topic("kept", 1, Default::default(), false)
        .await
        .unwrap();
    produce(&broker, "gone", 0, kafka_batch(2)).await;
    produce(&broker, "kept", 0, kafka_batch(1)).await;
    let before = exposition(&metrics, Some(&broker));
    assert!(before.contains(r#"topic="gone""#));
    broker.delete_topic(t.stream_id, t.id).await.unwrap();
    let after = exposition(&metrics, Some(&broker));
    check_well_formed(&after);
    assert!(!after.contains(r#"topic="gone""#), "{after}");
    assert_eq!(
        metrics.topic_totals().len(),
        1,
        "the deleted topic's counters are forgotten"
    );
    assert_eq!(
        value(
            &after,
            r#"wharf_topic_messages_in_total{stream="default",topic="kept"}"#
        ),
        "1"
    );
    // A topic made again under the same name starts from nothing.
    broker
        .create_kafka_topic("gone", 1, Default::default(), false)
        .await
        .unwrap();
    let again = exposition(&metrics, Some(&broker));
    assert_eq!(
        value(
            &again,
            r#"wharf_topic_messages_in_total{stream="default",topic="gone"}"#
        ),
        "0"
    );
}

#[test]
fn while_the_store_opens_only_the_servers_own_figures_are_given() {
    let metrics = Metrics::new(true);
    let text = exposition(&metrics, None);
    check_well_formed(&text);
    assert_eq!(value(&text, "wharf_ready"), "0");
    assert_eq!(value(&text, "wharf_up"), "1");
    assert!(!text.contains("wharf_partition_"), "{text}");
    assert!(!text.contains("wharf_consumer_group_"), "{text}");
    #[cfg(target_os = "linux")]
    {
        assert_ne!(value(&text, "process_open_fds"), "0");
        let start: f64 = value(&text, "process_start_time_seconds").parse().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(start > 1.0e9 && start <= now + 1.0, "{start} vs {now}");
    }
}

#[test]
fn connections_are_counted_until_their_guard_drops() {
    let metrics = Metrics::new(false);
    let a = metrics.connection_opened(DoorKind::Kafka);
    let b = metrics.connection_opened(DoorKind::Kafka);
    metrics.connection_refused(DoorKind::Kafka);
    assert_eq!(metrics.connections(DoorKind::Kafka), 2);
    drop(a);
    drop(b);
    assert_eq!(metrics.connections(DoorKind::Kafka), 0);
    assert_eq!(metrics.connections_accepted(DoorKind::Kafka), 2);
    assert_eq!(metrics.connections_refused(DoorKind::Kafka), 1);
    assert_eq!(metrics.connections(DoorKind::Native), 0);
}

#[test]
fn the_openmetrics_form_names_counter_families_without_total_and_ends_with_eof() {
    let metrics = Metrics::new(true);
    metrics.kafka_request(1, Duration::from_millis(2), Outcome::Ok);
    let text = super::exposition::exposition_openmetrics(&metrics, None);
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("# TYPE wharf_requests counter\n"), "{text}");
    assert_eq!(
        value(&text, r#"wharf_requests_total{door="kafka",api="Fetch"}"#),
        "1"
    );
}
