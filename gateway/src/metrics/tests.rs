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
use super::{DoorKind, Metrics};
use crate::broker::consume::{FetchLimits, FetchWant, PollRequest};
use crate::broker::coordinator::MemberRef;
use crate::broker::kafka_batch::{encode_batch, NewRecord};
use crate::broker::offsets::GroupCommit;
use crate::broker::produce::{KafkaPartitionWrite, KafkaTopicWrite};
use crate::broker::{Broker, BrokerSettings};

fn open(dir: &std::path::Path, metrics: &Arc<Metrics>) -> Broker {
    let settings = BrokerSettings::for_tests();
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
            "info" => series == format!("{name}_info"),
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
    metrics.kafka_request_took(0, Duration::from_millis(3));
    metrics.kafka_request_took(0, Duration::from_millis(30));
    // The second Produce's answer: one partition NOT_LEADER_OR_FOLLOWER, two
    // UNKNOWN_TOPIC_OR_PARTITION, one NONE (not counted).
    for code in [6, 3, 3, 0] {
        metrics.kafka_error(0, code);
    }
    metrics.kafka_error(11, 79);
    metrics.kafka_connection_closed(1);
    metrics.native_request_took(101, Duration::from_micros(70), None);
    metrics.native_request_took(300, Duration::from_micros(70), Some(2010));
    let _connection = metrics.connection_opened(DoorKind::Native);

    let text = exposition(&metrics, Some(&broker), true);
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
    // Errors by Kafka's name, once per code in the answer (as ErrorsPerSec{request,error}).
    let err = |door: &str, api: &str, error: &str| {
        value(
            &text,
            &format!(r#"wharf_request_errors_total{{door="{door}",api="{api}",error="{error}"}}"#),
        )
    };
    assert_eq!(err("kafka", "Produce", "UNKNOWN_TOPIC_OR_PARTITION"), "2");
    assert_eq!(err("kafka", "Produce", "NOT_LEADER_OR_FOLLOWER"), "1");
    assert_eq!(err("kafka", "JoinGroup", "MEMBER_ID_REQUIRED"), "1");
    assert_eq!(err("kafka", "Fetch", "CONNECTION_CLOSED"), "1");
    assert_eq!(err("native", "GetTopic", "topic_id_not_found"), "1");
    assert!(!text.contains(r#"error="NONE""#), "{text}");
    // Bound: the error label set is the fixed tables' names, nothing from a client.
    for line in text
        .lines()
        .filter(|l| l.starts_with("wharf_request_errors_total{"))
    {
        let error = line
            .split("error=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert!(
            super::kafka_errors::KAFKA_ERRORS
                .iter()
                .any(|&(_, n)| n == error)
                || super::native_errors::NATIVE_ERRORS
                    .iter()
                    .any(|&(_, n)| n == error),
            "{line}"
        );
    }
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
    assert!(
        !text.contains(r#"wharf_request_errors_total{door="native",api="SendMessages""#),
        "{text}"
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
    // Bound: off, the doors read no clock (and so time and classify nothing).
    assert_eq!(metrics.clock(), None);
    metrics.kafka_request(0, metrics.clock());
    metrics.kafka_request_took(0, Duration::from_millis(3));
    metrics.kafka_error(0, 3);
    metrics.kafka_connection_closed(1);
    metrics.native_request_took(101, Duration::from_millis(3), Some(2010));
    assert!(metrics.error_totals().is_empty());
    let _connection = metrics.connection_opened(DoorKind::Kafka);

    let text = exposition(&metrics, Some(&broker), true);
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
    let text = exposition(&metrics, Some(&broker), true);
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
    let before = exposition(&metrics, Some(&broker), true);
    assert!(before.contains(r#"topic="gone""#));
    broker.delete_topic(t.stream_id, t.id).await.unwrap();
    let after = exposition(&metrics, Some(&broker), true);
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
    let again = exposition(&metrics, Some(&broker), true);
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
    let text = exposition(&metrics, None, false);
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

/// The remote tier's series come from the broker's store: its counters as they are, and
/// `wharf_remote_storage_enabled` 0 for a server without a remote tier.
#[tokio::test]
async fn the_remote_tier_series_read_the_stores_counters() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new(true);
    let broker = open(dir.path(), &metrics);
    let remote = &broker.store_metrics().remote;
    wharf_log_store::RemoteMetrics::add(&remote.failing_rounds, 3);
    wharf_log_store::RemoteMetrics::add(&remote.upload_failures, 7);
    let text = exposition(&metrics, Some(&broker), true);
    check_well_formed(&text);
    assert_eq!(value(&text, "wharf_remote_storage_enabled"), "0");
    assert_eq!(value(&text, "wharf_remote_failing_rounds"), "3");
    assert_eq!(value(&text, "wharf_remote_upload_failures_total"), "7");
    assert_eq!(value(&text, "wharf_remote_bytes"), "0");
}

/// A server with a remote tier (a folder): sealed segments waiting show as pending, a tiering
/// round moves them to the remote figures (uploaded, remote bytes, local deletions), and a
/// fetch of the offloaded data counts its remote bytes, misses and fetches.
#[tokio::test]
async fn the_remote_tier_series_follow_uploads_and_remote_reads() {
    use wharf_log_store::remote::{ObjectStoreRemote, RemoteConfig, RemoteSettings, RemoteTier};
    let dir = tempfile::tempdir().unwrap();
    let bucket =
        ObjectStoreRemote::open(RemoteConfig::filesystem(dir.path().join("bucket"))).unwrap();
    let config = StoreConfig {
        background_tasks: false,
        remote: Some(RemoteTier {
            store: Arc::new(bucket),
            settings: RemoteSettings::default(),
        }),
        ..StoreConfig::default()
    };
    let metrics = Metrics::new(true);
    let broker = Broker::open(
        &dir.path().join("data"),
        config,
        BrokerSettings::for_tests(),
    )
    .unwrap()
    .with_metrics(Arc::clone(&metrics));
    // Every batch in its own segment; uploaded segments leave local disk at once.
    let settings = wharf_log_store::TopicSettings {
        segment_size: Some(1),
        remote_storage: true,
        local_retention_bytes: Some(1),
        ..Default::default()
    };
    broker
        .create_kafka_topic("audit", 1, settings, false)
        .await
        .unwrap();
    let batches: Vec<Bytes> = (1..=3).map(kafka_batch).collect();
    for b in &batches {
        produce(&broker, "audit", 0, b.clone()).await;
    }
    // Two sealed segments wait; the third is the active one.
    let sealed = (batches[0].len() + batches[1].len()) as u64;
    let text = exposition(&metrics, Some(&broker), true);
    check_well_formed(&text);
    assert_eq!(value(&text, "wharf_remote_storage_enabled"), "1");
    assert_eq!(value(&text, "wharf_remote_pending_segments"), "2");
    assert_eq!(value(&text, "wharf_remote_segments"), "0");

    // Uploads wait for the partition's transaction state (its last stable offset bounds them).
    let t = broker.kafka_topic("audit").unwrap();
    let p = broker.partition_handle(t.stream_id, t.id, 0).unwrap();
    broker.partition_txns(&p).await.unwrap();
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    broker
        .blocking(move |store| Ok(store.tier_once(now_us)?))
        .await
        .unwrap();
    let text = exposition(&metrics, Some(&broker), true);
    assert_eq!(value(&text, "wharf_remote_pending_segments"), "0");
    assert_eq!(value(&text, "wharf_remote_pending_bytes"), "0");
    assert_eq!(value(&text, "wharf_remote_uploaded_segments_total"), "2");
    assert_eq!(value(&text, "wharf_remote_segments"), "2");
    assert_eq!(
        value(&text, "wharf_remote_local_deleted_segments_total"),
        "2"
    );
    assert_eq!(value(&text, "wharf_remote_failing_rounds"), "0");
    let uploaded: u64 = value(&text, "wharf_remote_uploaded_bytes_total")
        .parse()
        .unwrap();
    assert!(
        uploaded >= sealed,
        "{uploaded} bytes uploaded for {sealed} sealed"
    );
    assert_eq!(
        value(&text, "wharf_remote_bytes"),
        uploaded.to_string(),
        "the manifests name what was uploaded"
    );
    assert_eq!(value(&text, "wharf_remote_read_bytes_total"), "0");

    // Offset 0 is now only in the object store.
    let fetched = broker
        .fetch(
            vec![FetchWant {
                topic: "audit".into(),
                partition: 0,
                offset: 0,
                max_bytes: 1 << 20,
            }],
            FetchLimits::new(1 << 20, 1 << 20, 1, Duration::ZERO),
        )
        .await;
    let records = fetched[0].records.as_ref().expect("offloaded records");
    assert_eq!(records[0], batches[0], "byte-exact from the object store");
    let text = exposition(&metrics, Some(&broker), true);
    let read: u64 = value(&text, "wharf_remote_read_bytes_total")
        .parse()
        .unwrap();
    assert!(read >= batches[0].len() as u64, "{read}");
    assert_ne!(value(&text, "wharf_remote_cache_misses_total"), "0");
    assert_ne!(value(&text, "wharf_remote_fetched_bytes_total"), "0");
    assert_ne!(value(&text, "wharf_remote_cache_bytes"), "0");
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
    metrics.kafka_request_took(1, Duration::from_millis(2));
    let text = super::exposition::exposition_openmetrics(&metrics, None, false);
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("# TYPE wharf_requests counter\n"), "{text}");
    assert_eq!(
        value(&text, r#"wharf_requests_total{door="kafka",api="Fetch"}"#),
        "1"
    );
}

/// A sample line's name, its labels other than `le` (in order), its `le`, and its value.
fn bucket_parts(line: &str) -> (&str, Vec<&str>, Option<&str>, &str) {
    let (series, value) = line.rsplit_once(' ').unwrap();
    let Some((name, labels)) = series.split_once('{') else {
        return (series, Vec::new(), None, value);
    };
    let labels = labels.strip_suffix('}').unwrap();
    let mut le = None;
    let mut others = Vec::new();
    // No label value in these tests holds `",`.
    for label in labels.split(r#"","#) {
        match label.strip_prefix(r#"le=""#) {
            Some(v) => le = Some(v.trim_end_matches('"')),
            None => others.push(label.trim_end_matches('"')),
        }
    }
    (name, others, le, value)
}

/// Every histogram series has one `le="+Inf"` bucket equal to its `_count` (whichever order
/// the format writes the labels in); how many histogram series there are.
fn check_inf_buckets(text: &str) -> usize {
    let samples: Vec<_> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(bucket_parts)
        .collect();
    let counts: Vec<_> = samples
        .iter()
        .filter(|(n, ..)| n.ends_with("_count"))
        .collect();
    for (name, labels, _, count) in &counts {
        let family = name.strip_suffix("_count").unwrap();
        let inf: Vec<_> = samples
            .iter()
            .filter(|(n, l, le, _)| {
                *n == format!("{family}_bucket") && l == labels && *le == Some("+Inf")
            })
            .collect();
        assert_eq!(inf.len(), 1, "one +Inf bucket of {name}{labels:?}:\n{text}");
        assert_eq!(
            inf[0].3, *count,
            "+Inf bucket of {name}{labels:?} = its count"
        );
    }
    counts.len()
}

/// The value of the bucket `le` of `family`'s series with labels `labels`.
fn bucket(text: &str, family: &str, labels: &[&str], le: &str) -> Option<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(bucket_parts)
        .find(|(n, l, b, _)| *n == format!("{family}_bucket") && l == labels && *b == Some(le))
        .map(|(.., v)| v.to_string())
}

/// Review #19 item 3: an OpenMetrics histogram without `le="+Inf"` is invalid (and has no
/// quantile); the 0.0.4 one must not get two.
#[tokio::test]
async fn every_histogram_has_an_inf_bucket_equal_to_its_count_in_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new(true);
    let broker = open(dir.path(), &metrics);
    broker
        .create_kafka_topic("orders", 1, Default::default(), false)
        .await
        .unwrap();
    produce(&broker, "orders", 0, kafka_batch(3)).await;
    metrics.kafka_request_took(0, Duration::from_millis(3));
    // Above the last bound (10 s): only in +Inf.
    metrics.kafka_request_took(0, Duration::from_secs(20));
    for text in [
        exposition(&metrics, Some(&broker), true),
        super::exposition::exposition_openmetrics(&metrics, Some(&broker), true),
    ] {
        // Request, append, fsync, group messages, group bytes.
        assert!(check_inf_buckets(&text) >= 4, "{text}");
        let produce = [r#"door="kafka"#, r#"api="Produce"#];
        let family = "wharf_request_duration_seconds";
        assert_eq!(
            bucket(&text, family, &produce, "+Inf").as_deref(),
            Some("2")
        );
        // The last finite bound, 10 s (written `10` in 0.0.4, `10.0` in OpenMetrics).
        let ten = bucket(&text, family, &produce, "10").or(bucket(&text, family, &produce, "10.0"));
        assert_eq!(ten.as_deref(), Some("1"), "{text}");
    }
    let open_metrics = super::exposition::exposition_openmetrics(&metrics, None, false);
    let version = env!("CARGO_PKG_VERSION");
    // `_info` belongs to the Info type in OpenMetrics; 0.0.4 has none and says gauge.
    assert!(
        open_metrics.contains("# TYPE wharf_build info\n"),
        "{open_metrics}"
    );
    assert_eq!(
        value(
            &open_metrics,
            &format!(r#"wharf_build_info{{version="{version}"}}"#)
        ),
        "1"
    );
    let text = exposition(&metrics, None, false);
    check_well_formed(&text);
    assert!(text.contains("# TYPE wharf_build_info gauge\n"), "{text}");
    assert_eq!(
        value(
            &text,
            &format!(r#"wharf_build_info{{version="{version}"}}"#)
        ),
        "1"
    );
}

/// Review #19 item 4. Bound: at most `[metrics] max_lag_series` lag series (the largest lags),
/// the rest counted as omitted; a group label is at most 255 bytes, cut at a char boundary.
#[tokio::test]
async fn lag_series_are_bounded_largest_first_and_group_labels_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let max = 2;
    let metrics = Metrics::configured(&crate::config::MetricsConfig {
        enable: true,
        max_lag_series: max,
    });
    let broker = open(dir.path(), &metrics);
    broker
        .create_kafka_topic("orders", 1, Default::default(), false)
        .await
        .unwrap();
    produce(&broker, "orders", 0, kafka_batch(10)).await;
    // max + 1 groups, lags 8, 5 and 1; the one with lag 5 has a 300-byte id of 3-byte chars.
    let long = "é".repeat(150);
    for (group, offset) in [("small", 9), (long.as_str(), 5), ("big", 2)] {
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
                    offset,
                    leader_epoch: -1,
                    metadata: String::new(),
                }],
            )
            .await;
        assert!(committed.iter().all(Result::is_ok), "{committed:?}");
    }
    let text = exposition(&metrics, Some(&broker), true);
    check_well_formed(&text);
    let lag_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("wharf_consumer_group_lag{"))
        .collect();
    assert_eq!(lag_lines.len(), max as usize, "{text}");
    assert_eq!(value(&text, "wharf_consumer_group_lag_series_omitted"), "1");
    let rest = r#"stream="default",topic="orders",partition="0"}"#;
    assert_eq!(
        value(
            &text,
            &format!(r#"wharf_consumer_group_lag{{group="big",{rest}"#)
        ),
        "8"
    );
    assert!(!text.contains(r#"group="small""#), "{text}");
    let cut = super::group_label(&long);
    assert!(
        cut.len() <= super::MAX_GROUP_LABEL && cut.len() > 200,
        "{cut}"
    );
    assert!(cut.starts_with("éé"));
    assert_eq!(
        value(
            &text,
            &format!(r#"wharf_consumer_group_lag{{group="{cut}",{rest}"#)
        ),
        "5"
    );
    // Two long ids with one prefix stay two labels.
    let other = format!("{}x", "é".repeat(150));
    assert_ne!(super::group_label(&other), cut);
    assert_eq!(super::group_label("short"), "short");
    // max 0: no lag series at all, every one counted as omitted.
    let (rows, omitted) = super::largest_lags(broker.consumer_lag(None), 0);
    assert_eq!((rows.len(), omitted), (0, 3));
}

/// Review #19 item 7: a count that lands after its topic (or stream) was deleted (a produce
/// that resolved the topic just before the delete) makes no entry again.
#[test]
fn a_count_after_its_topic_was_forgotten_makes_no_entry() {
    let metrics = Metrics::new(true);
    metrics.topic_in(1, 1, 10, 1);
    metrics.topic_in(1, 2, 10, 1);
    metrics.topic_in(2, 7, 10, 1);
    metrics.forget_topic(1, 1);
    metrics.topic_in(1, 1, 10, 1);
    metrics.topic_out(1, 1, 10, 1);
    metrics.forget_stream(2);
    metrics.topic_in(2, 7, 10, 1);
    metrics.topic_out(2, 8, 10, 1);
    let keys: Vec<_> = metrics.topic_totals().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec![(1, 2)]);
    // Topics of other streams, in every shard, are counted as before.
    for topic in 0..64 {
        metrics.topic_in(3, topic, 1, 1);
    }
    assert_eq!(metrics.topic_totals().len(), 65);
}

/// Second review B2: tombstones are bounded: dropped after `TOMBSTONE_GRACE`, at most
/// `MAX_TOMBSTONES` per shard (the oldest dropped), and topic id `u32::MAX` is a topic like
/// any other, not a deleted stream.
#[test]
fn tombstones_are_dropped_after_the_grace_and_capped() {
    use super::{MAX_TOMBSTONES, TOMBSTONE_GRACE, TRAFFIC_SHARDS};
    let metrics = Metrics::new(true);
    let t0 = std::time::Instant::now();
    // Topic u32::MAX of stream 5 deleted: stream 5's other topics still count.
    metrics.forget_topic_at(5, u32::MAX, t0);
    metrics.topic_in(5, 1, 10, 1);
    metrics.topic_in(5, u32::MAX, 10, 1);
    let keys: Vec<_> = metrics.topic_totals().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        vec![(5, 1)],
        "only the deleted topic's late count is dropped"
    );
    // Churn: many deleted topics, all within the grace: at most the cap per shard.
    for topic in 0..(4 * MAX_TOMBSTONES * TRAFFIC_SHARDS) as u32 {
        metrics.forget_topic_at(6, topic, t0);
    }
    assert!(
        metrics.tombstones() <= MAX_TOMBSTONES * TRAFFIC_SHARDS,
        "{} tombstones over the cap",
        metrics.tombstones()
    );
    // Past the grace, the next delete drops every older tombstone of its shards.
    metrics.forget_stream_at(7, t0 + TOMBSTONE_GRACE);
    assert_eq!(
        metrics.tombstones(),
        TRAFFIC_SHARDS,
        "only the new stream's tombstone (one per shard) is left"
    );
    metrics.topic_in(7, 3, 10, 1);
    assert!(
        metrics.topic_totals().iter().all(|((s, _), _)| *s != 7),
        "the deleted stream's late counts are still dropped"
    );
}

/// Review #19 item 9: a Kafka fetch from inside a batch counts the records from the fetch
/// offset on, not the whole batch.
#[tokio::test]
async fn kafka_messages_out_count_only_records_from_the_fetch_offset() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new(true);
    let broker = open(dir.path(), &metrics);
    broker
        .create_kafka_topic("orders", 1, Default::default(), false)
        .await
        .unwrap();
    produce(&broker, "orders", 0, kafka_batch(3)).await;
    produce(&broker, "orders", 0, kafka_batch(2)).await;
    let fetched = broker
        .fetch(
            vec![FetchWant {
                topic: "orders".into(),
                partition: 0,
                offset: 1,
                max_bytes: 1 << 20,
            }],
            FetchLimits::new(1 << 20, 1 << 20, 1, Duration::ZERO),
        )
        .await;
    // The whole first batch is sent (bytes), but offset 0 is before the fetch offset.
    let batches = fetched[0].records.as_ref().unwrap();
    assert_eq!(batches.len(), 2);
    let sent: u64 = batches.iter().map(|b| b.len() as u64).sum();
    let text = exposition(&metrics, Some(&broker), true);
    let orders = r#"{stream="default",topic="orders"}"#;
    assert_eq!(
        value(&text, &format!("wharf_topic_messages_out_total{orders}")),
        "4"
    );
    assert_eq!(
        value(&text, &format!("wharf_topic_bytes_out_total{orders}")),
        sent.to_string()
    );
}
