//! librdkafka (the `rdkafka` crate, building its bundled librdkafka) against a real
//! `wharf-server`: what an unmodified Kafka application does must work.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::time::Duration;

use compat_tests::{within, TestServer, WAIT};
use rdkafka::admin::{
    AdminClient, AdminOptions, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

fn admin(server: &TestServer) -> AdminClient<DefaultClientContext> {
    server.kafka_config().create().unwrap()
}

/// One produced record, as it must come back.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rec {
    partition: i32,
    key: Vec<u8>,
    value: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
}

fn expected(n: usize, partitions: i32, tag: &str) -> Vec<Rec> {
    (0..n)
        .map(|i| Rec {
            partition: (i % partitions as usize) as i32,
            key: format!("key-{i}").into_bytes(),
            value: format!("{tag} value {i} {}", "x".repeat(i % 50)).into_bytes(),
            headers: vec![
                ("n".into(), i.to_string().into_bytes()),
                ("tag".into(), tag.as_bytes().to_vec()),
            ],
        })
        .collect()
}

async fn produce(producer: &FutureProducer, topic: &str, records: &[Rec]) {
    let sends = records.iter().map(|r| {
        let mut headers = OwnedHeaders::new();
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        producer.send(
            FutureRecord::to(topic)
                .partition(r.partition)
                .key(&r.key)
                .payload(&r.value)
                .headers(headers),
            Duration::from_secs(30),
        )
    });
    let results = within("deliveries", futures_util::future::join_all(sends)).await;
    for r in results {
        r.map_err(|(e, _)| e).unwrap();
    }
}

/// Reads `n` records from the start of every partition.
fn consume(server: &TestServer, topic: &str, partitions: i32, n: usize) -> Vec<Rec> {
    let consumer: BaseConsumer = server
        .kafka_config()
        .set("group.id", "unused-no-commits")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "consumed only {} of {n} records within {WAIT:?}",
            out.len()
        );
        match consumer.poll(Duration::from_millis(200)) {
            None => continue,
            Some(Err(e)) => panic!("consumer error: {e}"),
            Some(Ok(m)) => out.push(Rec {
                partition: m.partition(),
                key: m.key().unwrap_or_default().to_vec(),
                value: m.payload().unwrap_or_default().to_vec(),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
        }
    }
    // Nothing more than what was produced.
    if let Some(Ok(m)) = consumer.poll(Duration::from_millis(300)) {
        panic!("unexpected extra record at offset {}", m.offset());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_codec_round_trips_10000_records_with_keys_and_headers() {
    let server = TestServer::start().await;
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        server.create_kafka_topic(&topic, 3).await;
        let producer: FutureProducer = server
            .kafka_config()
            .set("compression.codec", codec)
            .set("acks", "all")
            .set("linger.ms", "5")
            .create()
            .unwrap();
        let records = expected(10_000, 3, codec);
        produce(&producer, &topic, &records).await;
        let server_ref = &server;
        let got = tokio::task::block_in_place(|| consume(server_ref, &topic, 3, records.len()));
        let mut want = records.clone();
        want.sort();
        let mut got_sorted = got.clone();
        got_sorted.sort();
        assert_eq!(got_sorted.len(), want.len(), "{codec}");
        assert!(got_sorted == want, "{codec}: records differ");
        // Per partition, records come back in the order they were produced.
        for p in 0..3 {
            let order: Vec<_> = got
                .iter()
                .filter(|r| r.partition == p)
                .map(|r| &r.key)
                .collect();
            let sent: Vec<_> = records
                .iter()
                .filter(|r| r.partition == p)
                .map(|r| &r.key)
                .collect();
            assert_eq!(order, sent, "{codec} partition {p} order");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_stores_each_record_once_in_order() {
    let server = TestServer::start().await;
    server.create_kafka_topic("idem", 1).await;
    let producer: FutureProducer = server
        .kafka_config()
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .create()
        .unwrap();
    let records = expected(5_000, 1, "idem");
    produce(&producer, "idem", &records).await;
    let server_ref = &server;
    let got = tokio::task::block_in_place(|| consume(server_ref, "idem", 1, records.len()));
    assert!(
        got == records,
        "idempotent records differ or are out of order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_create_list_describe_grow_and_delete_topics() {
    let server = TestServer::start().await;
    let admin = admin(&server);
    let opts = AdminOptions::new();
    let made = within(
        "create",
        admin.create_topics(
            &[
                NewTopic::new("a1", 2, TopicReplication::Fixed(1)).set("retention.ms", "3600000"),
                NewTopic::new("a2", 1, TopicReplication::Fixed(1)),
            ],
            &opts,
        ),
    )
    .await
    .unwrap();
    assert!(made.iter().all(Result::is_ok), "{made:?}");
    let again = within(
        "create existing",
        admin.create_topics(&[NewTopic::new("a1", 2, TopicReplication::Fixed(1))], &opts),
    )
    .await
    .unwrap();
    assert!(matches!(
        &again[0],
        Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists))
    ));

    let consumer: BaseConsumer = server.kafka_config().create().unwrap();
    let md = tokio::task::block_in_place(|| consumer.fetch_metadata(None, WAIT)).unwrap();
    let names: BTreeSet<_> = md.topics().iter().map(|t| t.name().to_string()).collect();
    assert!(names.contains("a1") && names.contains("a2"), "{names:?}");
    let a1 = md.topics().iter().find(|t| t.name() == "a1").unwrap();
    assert_eq!(a1.partitions().len(), 2);

    let described = within(
        "describe",
        admin.describe_configs(&[ResourceSpecifier::Topic("a1")], &opts),
    )
    .await
    .unwrap();
    let cfg = described[0].as_ref().unwrap();
    assert_eq!(
        cfg.get("retention.ms").and_then(|e| e.value.as_deref()),
        Some("3600000")
    );
    assert!(cfg.get("max.message.bytes").is_some());

    let grown = within(
        "create partitions",
        admin.create_partitions(&[NewPartitions::new("a1", 4)], &opts),
    )
    .await
    .unwrap();
    assert!(grown[0].is_ok(), "{grown:?}");
    let md = tokio::task::block_in_place(|| consumer.fetch_metadata(Some("a1"), WAIT)).unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 4);

    let deleted = within("delete", admin.delete_topics(&["a1", "a2"], &opts))
        .await
        .unwrap();
    assert!(deleted.iter().all(Result::is_ok), "{deleted:?}");
    let md = tokio::task::block_in_place(|| consumer.fetch_metadata(None, WAIT)).unwrap();
    assert!(md
        .topics()
        .iter()
        .all(|t| t.name() != "a1" && t.name() != "a2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_for_times_finds_the_first_record_at_or_after() {
    let server = TestServer::start().await;
    server.create_kafka_topic("times", 1).await;
    let producer: FutureProducer = server
        .kafka_config()
        .set("linger.ms", "0")
        .create()
        .unwrap();
    let base = 1_700_000_000_000i64;
    for i in 0..10i64 {
        within(
            "send",
            producer.send(
                FutureRecord::to("times")
                    .partition(0)
                    .key("k")
                    .payload("v")
                    .timestamp(base + i * 1000),
                Duration::from_secs(30),
            ),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    }
    let consumer: BaseConsumer = server.kafka_config().create().unwrap();
    let lookup = |ts: i64| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("times", 0, Offset::Offset(ts))
            .unwrap();
        let found = tokio::task::block_in_place(|| consumer.offsets_for_times(tpl, WAIT)).unwrap();
        found.elements()[0].offset()
    };
    assert_eq!(lookup(base + 3500), Offset::Offset(4));
    assert_eq!(lookup(base), Offset::Offset(0));
    assert_eq!(lookup(base + 9000), Offset::Offset(9));
    assert_eq!(lookup(base + 60_000), Offset::End);
    let (lo, hi) =
        tokio::task::block_in_place(|| consumer.fetch_watermarks("times", 0, WAIT)).unwrap();
    assert_eq!((lo, hi), (0, 10));
}
