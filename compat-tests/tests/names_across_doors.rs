//! One name, one topic, whichever door asks: the broker core refuses creates and renames that
//! would give two topics one Kafka name (a topic `t` of stream `s` is `s.t` to Kafka clients;
//! a default-stream topic named `s.t` would be too). Checked from the native door with the
//! official `iggy` SDK and from the Kafka door with librdkafka, in both orders.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use compat_tests::{iggy_root_client, within, TestServer, WAIT};
use iggy::prelude::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

/// Iggy's TOPIC_NAME_ALREADY_EXISTS: the name is taken (here: by what Kafka clients see).
const NAME_TAKEN: u32 = 2013;

fn id(s: &str) -> Identifier {
    Identifier::named(s).unwrap()
}

async fn create_native_topic(
    client: &IggyClient,
    stream: &str,
    topic: &str,
) -> Result<(), IggyError> {
    within(
        "create topic",
        client.create_topic(
            &id(stream),
            topic,
            1,
            CompressionAlgorithm::None,
            None,
            IggyExpiry::NeverExpire,
            MaxTopicSize::ServerDefault,
        ),
    )
    .await
    .map(|_| ())
}

/// The Kafka names the server lists, sorted.
fn kafka_topic_names(server: &TestServer) -> Vec<String> {
    let consumer: BaseConsumer = server
        .kafka_config()
        .set("group.id", "names")
        .create()
        .unwrap();
    let md = consumer.fetch_metadata(None, WAIT).unwrap();
    let mut names: Vec<String> = md.topics().iter().map(|t| t.name().to_string()).collect();
    names.sort();
    names
}

/// Records of partition 0 of a Kafka topic, read from the start.
fn kafka_records(server: &TestServer, topic: &str) -> usize {
    let consumer: BaseConsumer = server
        .kafka_config()
        .set("group.id", "names-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let (_, high) = consumer.fetch_watermarks(topic, 0, WAIT).unwrap();
    let mut n = 0;
    let deadline = std::time::Instant::now() + WAIT;
    while (n as i64) < high {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out reading {topic}"
        );
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            m.unwrap();
            n += 1;
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_stream_cannot_capture_a_kafka_topic_name() {
    let server = TestServer::start().await;
    server.create_kafka_topic("s.t", 1).await;
    let producer: FutureProducer = server.kafka_config().create().unwrap();
    for i in 0..5 {
        let payload = format!("r{i}");
        within(
            "produce",
            producer.send(
                FutureRecord::<(), _>::to("s.t").payload(&payload),
                Duration::from_secs(30),
            ),
        )
        .await
        .unwrap();
    }

    let client = iggy_root_client(&server).await;
    let refused = within("create stream s", client.create_stream("s"))
        .await
        .expect_err("stream 's' would take the Kafka name 's.t'");
    assert_eq!(refused.as_code(), NAME_TAKEN, "{refused}");
    // A rename onto the name is refused too.
    within("create stream other", client.create_stream("other"))
        .await
        .unwrap();
    let refused = within("rename stream", client.update_stream(&id("other"), "s"))
        .await
        .expect_err("renaming a stream to 's' would take the Kafka name 's.t'");
    assert_eq!(refused.as_code(), NAME_TAKEN, "{refused}");

    // Kafka clients still see one `s.t`, with all five records.
    let names = kafka_topic_names(&server);
    assert_eq!(names.iter().filter(|n| *n == "s.t").count(), 1, "{names:?}");
    assert_eq!(kafka_records(&server, "s.t"), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_name_of_a_native_topic_is_taken_from_both_doors() {
    let server = TestServer::start().await;
    let client = iggy_root_client(&server).await;
    within("create stream s", client.create_stream("s"))
        .await
        .unwrap();
    create_native_topic(&client, "s", "t").await.unwrap();

    // Kafka door: `s.t` is the native topic, so creating it again is TOPIC_ALREADY_EXISTS.
    let admin: AdminClient<DefaultClientContext> = server.kafka_config().create().unwrap();
    let results = within(
        "kafka create s.t",
        admin.create_topics(
            &[NewTopic::new("s.t", 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ),
    )
    .await
    .unwrap();
    match results.first() {
        Some(Err((_, code))) => assert_eq!(*code, RDKafkaErrorCode::TopicAlreadyExists),
        other => panic!("expected TOPIC_ALREADY_EXISTS, got {other:?}"),
    }

    // Native door: a default-stream topic named `s.t` (the stream Kafka's topics live in is
    // made by the first Kafka topic) would be a second `s.t`.
    server.create_kafka_topic("plain", 1).await;
    let refused = create_native_topic(&client, "default", "s.t")
        .await
        .expect_err("default-stream topic 's.t' would collide with stream s topic t");
    assert_eq!(refused.as_code(), NAME_TAKEN, "{refused}");
    create_native_topic(&client, "default", "plain2")
        .await
        .unwrap();
    let refused = within(
        "rename topic",
        client.update_topic(
            &id("default"),
            &id("plain2"),
            "s.u",
            CompressionAlgorithm::None,
            None,
            IggyExpiry::NeverExpire,
            MaxTopicSize::ServerDefault,
        ),
    )
    .await
    .expect_err("renaming a default-stream topic to 's.u' would resolve to stream s");
    assert_eq!(refused.as_code(), NAME_TAKEN, "{refused}");

    let names = kafka_topic_names(&server);
    assert_eq!(names, ["plain", "plain2", "s.t"], "one name per topic");
}
