//! Cross-protocol round trips: messages sent with the official `iggy` SDK are read by a Kafka
//! consumer (librdkafka), and records produced by a Kafka producer are polled by the `iggy` SDK,
//! with key, headers, payload and timestamps intact (the rule in `broker::translate`); an iggy
//! SDK tombstone (the `kafka.tombstone` header on a non-empty payload) reads as a null value.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use compat_tests::{iggy_root_client, within, TestServer, WAIT};
use iggy::prelude::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

fn id(s: &str) -> Identifier {
    Identifier::named(s).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iggy_messages_are_read_by_a_kafka_consumer() {
    let server = TestServer::start().await;
    let client = iggy_root_client(&server).await;
    compat_tests::create_stream_with_topic(&client, "cross", "events", 1).await;
    let origin_us = 1_700_000_000_123_000u64;
    let mut messages: Vec<IggyMessage> = (0..100u32)
        .map(|i| {
            let mut headers = BTreeMap::new();
            headers.insert(
                HeaderKey::try_from("kafka.key").unwrap(),
                HeaderValue::try_from(format!("key-{i}").as_bytes()).unwrap(),
            );
            headers.insert(
                HeaderKey::try_from("trace").unwrap(),
                HeaderValue::try_from(format!("t-{i}").as_str()).unwrap(),
            );
            let mut m = IggyMessage::builder()
                .payload(Bytes::from(format!("payload {i}")))
                .user_headers(headers)
                .build()
                .unwrap();
            m.header.origin_timestamp = origin_us + u64::from(i) * 1000;
            m
        })
        .collect();
    within(
        "send",
        client.send_messages(
            &id("cross"),
            &id("events"),
            &Partitioning::partition_id(0),
            &mut messages,
        ),
    )
    .await
    .unwrap();

    let consumer: BaseConsumer = server
        .kafka_config()
        .set("group.id", "unused")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("cross.events", 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    let mut seen = 0u32;
    while seen < 100 {
        assert!(std::time::Instant::now() < deadline, "read {seen} of 100");
        let Some(m) = tokio::task::block_in_place(|| consumer.poll(Duration::from_millis(200)))
        else {
            continue;
        };
        let m = m.unwrap();
        let i = seen;
        assert_eq!(m.offset(), i64::from(i));
        assert_eq!(m.key(), Some(format!("key-{i}").as_bytes()));
        assert_eq!(m.payload(), Some(format!("payload {i}").as_bytes()));
        let headers: Vec<(String, Vec<u8>)> = m
            .headers()
            .unwrap()
            .iter()
            .map(|h| (h.key.to_string(), h.value.unwrap().to_vec()))
            .collect();
        assert_eq!(
            headers,
            vec![("trace".to_string(), format!("t-{i}").into_bytes())]
        );
        assert_eq!(
            m.timestamp().to_millis(),
            Some(((origin_us + u64::from(i) * 1000) / 1000) as i64)
        );
        seen += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_records_are_polled_by_the_iggy_sdk() {
    let server = TestServer::start().await;
    for codec in ["none", "gzip", "zstd"] {
        let topic = format!("from-kafka-{codec}");
        let producer: FutureProducer = server
            .kafka_config()
            .set("compression.codec", codec)
            .set("linger.ms", "5")
            .create()
            .unwrap();
        let sends = (0..50i64).map(|i| {
            let key = format!("k{i}");
            let value = format!("v{i}");
            let topic = topic.clone();
            let producer = &producer;
            async move {
                let headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "h1",
                        value: Some(b"one".as_slice()),
                    })
                    .insert(Header {
                        key: "h2",
                        value: Some(value.as_bytes()),
                    });
                let mut record = FutureRecord::to(&topic)
                    .partition(0)
                    .key(&key)
                    .headers(headers)
                    .timestamp(1_600_000_000_000 + i);
                // Every tenth record is a tombstone (null value).
                if i % 10 != 9 {
                    record = record.payload(&value);
                }
                producer.send(record, Duration::from_secs(30)).await
            }
        });
        for r in within("produce", futures_util::future::join_all(sends)).await {
            r.map_err(|(e, _)| e).unwrap();
        }

        // The topic was auto-created in the default stream.
        let client = iggy_root_client(&server).await;
        let polled = within(
            "poll",
            client.poll_messages(
                &id("default"),
                &id(&topic),
                Some(0),
                &iggy::prelude::Consumer::new(id("reader")),
                &PollingStrategy::offset(0),
                100,
                false,
            ),
        )
        .await
        .unwrap();
        assert_eq!(polled.messages.len(), 50, "{codec}");
        for (i, m) in polled.messages.iter().enumerate() {
            assert_eq!(m.header.offset, i as u64);
            let headers = m.user_headers_map().unwrap().unwrap();
            let raw = |k: &str| {
                headers
                    .get(&HeaderKey::try_from(k).unwrap())
                    .map(|v| v.as_raw().unwrap().to_vec())
            };
            assert_eq!(
                raw("kafka.key"),
                Some(format!("k{i}").into_bytes()),
                "{codec}"
            );
            assert_eq!(raw("h1"), Some(b"one".to_vec()));
            assert_eq!(raw("h2"), Some(format!("v{i}").into_bytes()));
            if i % 10 == 9 {
                assert!(m.payload.is_empty());
                assert!(headers.contains_key(&HeaderKey::try_from("kafka.tombstone").unwrap()));
            } else {
                assert_eq!(m.payload, Bytes::from(format!("v{i}")), "{codec}");
            }
            assert_eq!(
                m.header.origin_timestamp,
                (1_600_000_000_000 + i as u64) * 1000
            );
        }
    }
}

/// Reads `n` messages through a Kafka consumer in `group` (subscribed), returning their offsets,
/// and commits the position after the last one.
fn kafka_group_reads(server: &TestServer, group: &str, topic: &str, n: usize) -> Vec<i64> {
    let consumer: BaseConsumer = server
        .kafka_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    let mut offsets = Vec::new();
    while offsets.len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "read {offsets:?} of {n}"
        );
        let Some(m) = tokio::task::block_in_place(|| consumer.poll(Duration::from_millis(200)))
        else {
            continue;
        };
        let m = m.unwrap();
        offsets.push(m.offset());
        if offsets.len() == n {
            consumer
                .commit_message(&m, rdkafka::consumer::CommitMode::Sync)
                .unwrap();
        }
    }
    consumer.unsubscribe();
    offsets
}

fn kafka_committed(server: &TestServer, group: &str, topic: &str) -> Offset {
    let consumer: BaseConsumer = server
        .kafka_config()
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let got = tokio::task::block_in_place(|| consumer.committed_offsets(tpl, WAIT)).unwrap();
    got.elements()[0].offset()
}

/// ARCHITECTURE.md: a group's committed position is one record whichever protocol committed
/// it. A Kafka group `g` commits; an Iggy group `g` polling `next` continues from there and
/// commits in turn; a Kafka consumer of `g` continues from that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_and_iggy_groups_of_the_same_name_share_committed_offsets() {
    let server = TestServer::start().await;
    let client = iggy_root_client(&server).await;
    compat_tests::create_stream_with_topic(&client, "shared", "log", 1).await;
    let mut messages: Vec<IggyMessage> = (0..100)
        .map(|i| {
            IggyMessage::builder()
                .payload(Bytes::from(format!("m{i}")))
                .build()
                .unwrap()
        })
        .collect();
    client
        .send_messages(
            &id("shared"),
            &id("log"),
            &Partitioning::partition_id(0),
            &mut messages,
        )
        .await
        .unwrap();

    // Kafka group "g" reads 30 and commits: next is 30.
    let read = kafka_group_reads(&server, "g", "shared.log", 30);
    assert_eq!(read, (0..30).collect::<Vec<_>>());
    assert_eq!(
        kafka_committed(&server, "g", "shared.log"),
        Offset::Offset(30)
    );

    // Iggy group "g" sees it as "last consumed 29" and polls on from 30.
    client
        .create_consumer_group(&id("shared"), &id("log"), "g")
        .await
        .unwrap();
    client
        .join_consumer_group(&id("shared"), &id("log"), &id("g"))
        .await
        .unwrap();
    let group = Consumer::group(id("g"));
    let stored = client
        .get_consumer_offset(&group, &id("shared"), &id("log"), Some(0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.stored_offset, 29);
    let polled = within(
        "iggy group poll",
        client.poll_messages(
            &id("shared"),
            &id("log"),
            None,
            &group,
            &PollingStrategy::next(),
            10,
            true,
        ),
    )
    .await
    .unwrap();
    let offsets: Vec<u64> = polled.messages.iter().map(|m| m.header.offset).collect();
    assert_eq!(offsets, (30..40).collect::<Vec<_>>());

    // Its auto-commit is Kafka's committed 40; a Kafka member of "g" resumes there.
    assert_eq!(
        kafka_committed(&server, "g", "shared.log"),
        Offset::Offset(40)
    );
    let read = kafka_group_reads(&server, "g", "shared.log", 5);
    assert_eq!(read, (40..45).collect::<Vec<_>>());
    let stored = client
        .get_consumer_offset(&group, &id("shared"), &id("log"), Some(0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.stored_offset, 44);
}

/// A tombstone from the iggy SDK, which refuses an empty payload: a keyed message with the
/// `kafka.tombstone` header (Bool true) and a one-byte payload, sent to a compacted topic (made
/// by a Kafka admin client), is stored, and a Kafka consumer reads its key with a null value
/// (the payload dropped); a plain value of the same key before it reads as itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iggy_sdk_tombstone_is_read_by_kafka_as_a_null_value() {
    let server = TestServer::start().await;
    let admin: AdminClient<DefaultClientContext> = server.kafka_config().create().unwrap();
    let created = within(
        "CreateTopics",
        admin.create_topics(
            &[NewTopic::new("states", 1, TopicReplication::Fixed(1))
                .set("cleanup.policy", "compact")],
            &AdminOptions::new(),
        ),
    )
    .await
    .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");

    let client = iggy_root_client(&server).await;
    let message = |payload: &'static [u8], tombstone: bool| {
        let mut headers = BTreeMap::new();
        headers.insert(
            HeaderKey::try_from("kafka.key").unwrap(),
            HeaderValue::try_from(&b"k"[..]).unwrap(),
        );
        if tombstone {
            headers.insert(HeaderKey::try_from("kafka.tombstone").unwrap(), true.into());
        }
        IggyMessage::builder()
            .payload(Bytes::from_static(payload))
            .user_headers(headers)
            .build()
            .unwrap()
    };
    let mut messages = vec![message(b"value", false), message(b"x", true)];
    within(
        "send",
        client.send_messages(
            &id("default"),
            &id("states"),
            &Partitioning::partition_id(0),
            &mut messages,
        ),
    )
    .await
    .unwrap();

    let consumer: BaseConsumer = server
        .kafka_config()
        .set("group.id", "unused")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("states", 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    // (offset, key, value) of each record read.
    type Read = (i64, Option<Vec<u8>>, Option<Vec<u8>>);
    let mut seen: Vec<Read> = Vec::new();
    while seen.len() < 2 {
        assert!(std::time::Instant::now() < deadline, "read {seen:?}");
        let Some(m) = tokio::task::block_in_place(|| consumer.poll(Duration::from_millis(200)))
        else {
            continue;
        };
        let m = m.unwrap();
        seen.push((
            m.offset(),
            m.key().map(<[u8]>::to_vec),
            m.payload().map(<[u8]>::to_vec),
        ));
    }
    assert_eq!(
        seen,
        [
            (0, Some(b"k".to_vec()), Some(b"value".to_vec())),
            (1, Some(b"k".to_vec()), None),
        ]
    );
}
