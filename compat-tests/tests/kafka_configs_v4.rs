//! Kafka 4's config details on the wire and with real clients: the topic setting
//! `compression.type` (set, described, refused as Kafka refuses bad values) and the broker's
//! recompression of produced batches whose codec differs (the stored batches read raw by
//! Fetch, consumers reading them); group configs (KIP-848) on GROUP resources; the broker's
//! DescribeConfigs keys and its dynamic settings through IncrementalAlterConfigs and legacy
//! AlterConfigs on BROKER resources, surviving a restart; APPEND/SUBTRACT on list settings;
//! Kafka's resource rules (each resource once, broker ids). Every config API at every
//! advertised version.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use bytes::Bytes;
use compat_tests::{client_programs, within, KafkaWire, TestServer};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use wharf_gateway::broker::kafka_batch::{self, Codec as Compression, NewRecord};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const GROUP: i8 = 32;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// One IncrementalAlterConfigs resource: (name, operation, value) changes.
fn inc_resource(
    kind: i8,
    name: &str,
    changes: &[(&str, i8, Option<&str>)],
) -> incremental_alter_configs_request::AlterConfigsResource {
    incremental_alter_configs_request::AlterConfigsResource::default()
        .with_resource_type(kind)
        .with_resource_name(s(name))
        .with_configs(
            changes
                .iter()
                .map(|(n, op, v)| {
                    incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(s(n))
                        .with_config_operation(*op)
                        .with_value(v.map(s))
                })
                .collect(),
        )
}

/// IncrementalAlterConfigs of `resources` at `version`: each resource's (error, message).
async fn inc(
    c: &mut KafkaWire,
    version: i16,
    resources: Vec<incremental_alter_configs_request::AlterConfigsResource>,
) -> Vec<(i16, String)> {
    let r: IncrementalAlterConfigsResponse = c
        .call(
            ApiKey::IncrementalAlterConfigs,
            version,
            &IncrementalAlterConfigsRequest::default().with_resources(resources),
        )
        .await;
    r.responses
        .iter()
        .map(|x| {
            (
                x.error_code,
                x.error_message.as_ref().map_or("", |m| m.as_str()).into(),
            )
        })
        .collect()
}

/// Legacy AlterConfigs of one resource's whole config set: its (error, message).
async fn legacy(
    c: &mut KafkaWire,
    version: i16,
    kind: i8,
    name: &str,
    configs: &[(&str, &str)],
) -> (i16, String) {
    let r: AlterConfigsResponse = c
        .call(
            ApiKey::AlterConfigs,
            version,
            &AlterConfigsRequest::default().with_resources(vec![
                alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(kind)
                    .with_resource_name(s(name))
                    .with_configs(
                        configs
                            .iter()
                            .map(|(n, v)| {
                                alter_configs_request::AlterableConfig::default()
                                    .with_name(s(n))
                                    .with_value(Some(s(v)))
                            })
                            .collect(),
                    ),
            ]),
        )
        .await;
    let x = &r.responses[0];
    (
        x.error_code,
        x.error_message.as_ref().map_or("", |m| m.as_str()).into(),
    )
}

/// DescribeConfigs of one resource at `version`.
async fn describe(
    c: &mut KafkaWire,
    version: i16,
    kind: i8,
    name: &str,
) -> describe_configs_response::DescribeConfigsResult {
    let r: DescribeConfigsResponse = c
        .call(
            ApiKey::DescribeConfigs,
            version,
            &DescribeConfigsRequest::default()
                .with_include_synonyms(version >= 1)
                .with_resources(vec![
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(kind)
                        .with_resource_name(s(name))
                        .with_configuration_keys(None),
                ]),
        )
        .await;
    r.results.into_iter().next().unwrap()
}

/// A described config's (value, source, read_only).
fn entry(r: &describe_configs_response::DescribeConfigsResult, name: &str) -> (String, i8, bool) {
    let e = r
        .configs
        .iter()
        .find(|c| c.name.as_str() == name)
        .unwrap_or_else(|| panic!("{name} not described: {r:?}"));
    (
        e.value.as_ref().map_or("", |v| v.as_str()).into(),
        e.config_source,
        e.read_only,
    )
}

/// A batch of `n` keyed records compressed with `codec`, as a client builds it (compressed
/// with the same libraries Kafka's clients use; the consumers below read it independently).
fn batch(n: usize, codec: Compression) -> Bytes {
    let keys: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
    let values: Vec<String> = (0..n)
        .map(|i| format!("value number {i} ").repeat(20))
        .collect();
    let records: Vec<NewRecord<'_>> = (0..n)
        .map(|i| NewRecord {
            timestamp_ms: 1_700_000_000_000 + i as i64,
            key: Some(keys[i].as_bytes()),
            value: Some(values[i].as_bytes()),
            headers: Vec::new(),
        })
        .collect();
    let plain = kafka_batch::encode_batch(0, &records);
    if codec == Compression::None {
        return plain;
    }
    kafka_batch::recompress(&plain, codec, None).unwrap()
}

async fn produce(c: &mut KafkaWire, topic: &str, records: Bytes) -> i16 {
    let r: ProduceResponse = c
        .call(
            ApiKey::Produce,
            9,
            &ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(10_000)
                .with_topic_data(vec![produce_request::TopicProduceData::default()
                    .with_name(TopicName(s(topic)))
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(records)),
                    ])]),
        )
        .await;
    r.responses[0].partition_responses[0].error_code
}

/// The codec bits of every stored batch of partition 0 of `topic` from offset 0 (read raw with
/// Fetch), and how many records they hold.
async fn stored_codecs(c: &mut KafkaWire, topic: &str) -> (Vec<i16>, usize) {
    let r: FetchResponse = c
        .call(
            ApiKey::Fetch,
            12,
            &FetchRequest::default()
                .with_replica_id((-1).into())
                .with_max_wait_ms(0)
                .with_min_bytes(1)
                .with_max_bytes(8 << 20)
                .with_session_id(0)
                .with_session_epoch(-1)
                .with_topics(vec![fetch_request::FetchTopic::default()
                    .with_topic(TopicName(s(topic)))
                    .with_partitions(vec![fetch_request::FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(8 << 20)])]),
        )
        .await;
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let raw = p.records.clone().unwrap_or_default();
    let mut codecs = Vec::new();
    let mut records = 0usize;
    let mut at = 0usize;
    while raw.len() >= at + 61 {
        let len = i32::from_be_bytes(raw[at + 8..at + 12].try_into().unwrap()) as usize + 12;
        let b = raw.get(at..at + len).expect("whole batches");
        // The header checks out, CRC included; every codec's records section opens.
        let h = kafka_batch::validate(b).unwrap_or_else(|e| panic!("{topic}: {e}"));
        kafka_batch::records_section(b).unwrap_or_else(|e| panic!("{topic}: {e}"));
        codecs.push(h.attributes & 7);
        records += h.records_count as usize;
        at += len;
    }
    (codecs, records)
}

/// `compression.type` at every version of both alter APIs and of DescribeConfigs: set,
/// described with its source, refused with Kafka's words (INVALID_CONFIG), levels within
/// Kafka's bounds; APPEND/SUBTRACT only on list settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_type_is_a_topic_config_as_in_kafka() {
    let mut server = TestServer::start().await;
    server.create_kafka_topic("zipped", 1).await;
    let mut c = KafkaWire::open(server.kafka_addr).await;
    for version in 1..=4 {
        let d = describe(&mut c, version, TOPIC, "zipped").await;
        assert_eq!(d.error_code, 0);
        assert_eq!(entry(&d, "compression.type"), ("producer".into(), 5, false));
        assert_eq!(entry(&d, "compression.zstd.level").0, "3");
        assert_eq!(entry(&d, "compression.lz4.level").0, "9");
        assert_eq!(entry(&d, "compression.gzip.level").0, "-1");
    }
    for (version, codec) in [(0, "gzip"), (1, "zstd")] {
        let r = inc(
            &mut c,
            version,
            vec![inc_resource(
                TOPIC,
                "zipped",
                &[("compression.type", 0, Some(codec))],
            )],
        )
        .await;
        assert_eq!(r[0].0, 0, "{r:?}");
        let d = describe(&mut c, 4, TOPIC, "zipped").await;
        assert_eq!(entry(&d, "compression.type"), (codec.into(), 1, false));
    }
    for version in 0..=2 {
        let r = legacy(
            &mut c,
            version,
            TOPIC,
            "zipped",
            &[("compression.type", "lz4"), ("compression.lz4.level", "12")],
        )
        .await;
        assert_eq!(r.0, 0, "{r:?}");
        let d = describe(&mut c, 4, TOPIC, "zipped").await;
        assert_eq!(entry(&d, "compression.type"), ("lz4".into(), 1, false));
        assert_eq!(entry(&d, "compression.lz4.level"), ("12".into(), 1, false));
    }
    let refused = inc(
        &mut c,
        1,
        vec![inc_resource(
            TOPIC,
            "zipped",
            &[("compression.type", 0, Some("brotli"))],
        )],
    )
    .await;
    assert_eq!(
        refused[0],
        (
            INVALID_CONFIG,
            "Invalid value brotli for configuration compression.type: String must be one of: \
             uncompressed, zstd, lz4, snappy, gzip, producer"
                .into()
        )
    );
    for (name, value) in [
        ("compression.gzip.level", "10"),
        ("compression.gzip.level", "0"),
        ("compression.lz4.level", "18"),
        ("compression.zstd.level", "23"),
    ] {
        let r = inc(
            &mut c,
            1,
            vec![inc_resource(TOPIC, "zipped", &[(name, 0, Some(value))])],
        )
        .await;
        assert_eq!(r[0].0, INVALID_CONFIG, "{name}={value}: {r:?}");
    }
    // APPEND and SUBTRACT: lists only, in Kafka's words; cleanup.policy is one.
    let r = inc(
        &mut c,
        1,
        vec![inc_resource(
            TOPIC,
            "zipped",
            &[("compression.type", 2, Some("gzip"))],
        )],
    )
    .await;
    assert_eq!(
        r[0],
        (
            INVALID_CONFIG,
            "Can't APPEND to key compression.type because its type is not LIST.".into()
        )
    );
    let r = inc(
        &mut c,
        1,
        vec![inc_resource(
            TOPIC,
            "zipped",
            &[("cleanup.policy", 2, Some("compact"))],
        )],
    )
    .await;
    assert_eq!(r[0].0, 0, "{r:?}");
    let d = describe(&mut c, 4, TOPIC, "zipped").await;
    assert_eq!(entry(&d, "cleanup.policy").0, "compact,delete");
    let r = inc(
        &mut c,
        1,
        vec![inc_resource(
            TOPIC,
            "zipped",
            &[("cleanup.policy", 3, Some("delete"))],
        )],
    )
    .await;
    assert_eq!(r[0].0, 0, "{r:?}");
    let d = describe(&mut c, 4, TOPIC, "zipped").await;
    assert_eq!(entry(&d, "cleanup.policy").0, "compact");
    // A value missing for SET is a malformed request; DELETE needs none.
    let r = inc(
        &mut c,
        1,
        vec![inc_resource(
            TOPIC,
            "zipped",
            &[("compression.type", 0, None), ("cleanup.policy", 1, None)],
        )],
    )
    .await;
    assert_eq!(
        r[0],
        (
            INVALID_REQUEST,
            "Null value not supported for : compression.type".into()
        )
    );
    // The topic's compression settings are in its catalog entry: a restart keeps them.
    server.restart().await;
    let mut c = KafkaWire::open(server.kafka_addr).await;
    let d = describe(&mut c, 4, TOPIC, "zipped").await;
    assert_eq!(entry(&d, "compression.type"), ("lz4".into(), 1, false));
    assert_eq!(entry(&d, "compression.lz4.level"), ("12".into(), 1, false));
}

/// Bound: the stored batch's codec is the topic's. A gzip batch produced into a zstd topic is
/// stored as zstd (read raw with Fetch), an uncompressed one too, a zstd one as it came; an
/// `uncompressed` topic stores a gzip batch uncompressed; librdkafka's consumer reads every
/// record back; a `producer` topic keeps the producer's codec.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produced_batches_are_stored_with_the_topics_codec() {
    let server = TestServer::start().await;
    let mut c = KafkaWire::open(server.kafka_addr).await;
    for (topic, codec) in [
        ("to-zstd", "zstd"),
        ("to-none", "uncompressed"),
        ("as-sent", "producer"),
    ] {
        server.create_kafka_topic(topic, 1).await;
        let r = inc(
            &mut c,
            1,
            vec![inc_resource(
                TOPIC,
                topic,
                &[("compression.type", 0, Some(codec))],
            )],
        )
        .await;
        assert_eq!(r[0].0, 0, "{r:?}");
    }
    for codec in [Compression::Gzip, Compression::None, Compression::Zstd] {
        assert_eq!(produce(&mut c, "to-zstd", batch(10, codec)).await, 0);
    }
    assert_eq!(stored_codecs(&mut c, "to-zstd").await, (vec![4, 4, 4], 30));
    assert_eq!(
        produce(&mut c, "to-none", batch(10, Compression::Gzip)).await,
        0
    );
    assert_eq!(stored_codecs(&mut c, "to-none").await, (vec![0], 10));
    assert_eq!(
        produce(&mut c, "as-sent", batch(10, Compression::Gzip)).await,
        0
    );
    assert_eq!(stored_codecs(&mut c, "as-sent").await, (vec![1], 10));

    // librdkafka: a gzip producer into the zstd topic, a consumer reading all 40 records.
    let producer: FutureProducer = server
        .kafka_config()
        .set("compression.codec", "gzip")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for i in 0..10 {
        let payload = format!("rdkafka {i}");
        within(
            "a produce",
            producer.send(
                FutureRecord::to("to-zstd").key("k").payload(&payload),
                Duration::from_secs(10),
            ),
        )
        .await
        .unwrap();
    }
    let (codecs, records) = stored_codecs(&mut c, "to-zstd").await;
    assert_eq!(records, 40);
    assert!(codecs.iter().all(|&k| k == 4), "{codecs:?}");
    let consumer: StreamConsumer = server
        .kafka_config()
        .set("group.id", "zstd-readers")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["to-zstd"]).unwrap();
    let mut read = 0;
    within("40 records", async {
        while read < 40 {
            let m = consumer.recv().await.unwrap();
            if read >= 30 {
                let want = format!("rdkafka {}", read - 30);
                assert_eq!(m.payload(), Some(want.as_bytes()));
            }
            read += 1;
        }
    })
    .await;
}

/// KIP-848 group configs on GROUP resources at every version: described with the broker's
/// defaults (DEFAULT_CONFIG) until set (GROUP_CONFIG), checked against the broker's
/// `group.consumer.*` bounds (INVALID_CONFIG in Kafka's words), the default group resource
/// refused (INVALID_REQUEST), legacy AlterConfigs replacing the group's set, kept across a
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_configs_are_kafkas_group_resource() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_in(dir.path()).await;
    let mut c = KafkaWire::open(server.kafka_addr).await;
    for version in 1..=4 {
        let d = describe(&mut c, version, GROUP, "billing").await;
        assert_eq!(d.error_code, 0);
        assert_eq!(
            entry(&d, "consumer.session.timeout.ms"),
            ("45000".into(), 5, false)
        );
        assert_eq!(
            entry(&d, "consumer.heartbeat.interval.ms"),
            ("5000".into(), 5, false)
        );
    }
    let d = describe(&mut c, 4, GROUP, "").await;
    assert_eq!(
        (d.error_code, d.error_message.unwrap().as_str()),
        (INVALID_REQUEST, "Group name must not be empty")
    );
    for version in 0..=1 {
        let r = inc(
            &mut c,
            version,
            vec![inc_resource(
                GROUP,
                "billing",
                &[("consumer.session.timeout.ms", 0, Some("50000"))],
            )],
        )
        .await;
        assert_eq!(r[0].0, 0, "{r:?}");
    }
    let d = describe(&mut c, 4, GROUP, "billing").await;
    assert_eq!(
        entry(&d, "consumer.session.timeout.ms"),
        ("50000".into(), 8, false)
    );
    let r = inc(
        &mut c,
        1,
        vec![inc_resource(
            GROUP,
            "billing",
            &[("consumer.heartbeat.interval.ms", 0, Some("20000"))],
        )],
    )
    .await;
    assert_eq!(
        r[0],
        (
            INVALID_CONFIG,
            "consumer.heartbeat.interval.ms must be less than or equal to \
             group.consumer.max.heartbeat.interval.ms"
                .into()
        )
    );
    let r = inc(
        &mut c,
        1,
        vec![inc_resource(
            GROUP,
            "",
            &[("consumer.session.timeout.ms", 0, Some("50000"))],
        )],
    )
    .await;
    assert_eq!(r[0].0, INVALID_REQUEST, "{r:?}");
    let r = inc(
        &mut c,
        1,
        vec![inc_resource(GROUP, "billing", &[("no.such", 0, Some("1"))])],
    )
    .await;
    assert_eq!(
        r[0],
        (INVALID_CONFIG, "Unknown group config name: no.such".into())
    );
    for version in 0..=2 {
        let r = legacy(
            &mut c,
            version,
            GROUP,
            "billing",
            &[("consumer.heartbeat.interval.ms", "6000")],
        )
        .await;
        assert_eq!(r.0, 0, "{r:?}");
    }
    server.restart().await;
    let mut c = KafkaWire::open(server.kafka_addr).await;
    let d = describe(&mut c, 4, GROUP, "billing").await;
    // Legacy AlterConfigs replaced the set: the session timeout is back to the default.
    assert_eq!(
        entry(&d, "consumer.session.timeout.ms"),
        ("45000".into(), 5, false)
    );
    assert_eq!(
        entry(&d, "consumer.heartbeat.interval.ms"),
        ("6000".into(), 8, false)
    );
}

/// The broker resource: its id's DescribeConfigs lists the keys clients read with this
/// server's values, read-only but for the dynamic settings; the cluster-wide resource ("")
/// lists only what was set dynamically; another id is INVALID_REQUEST. A dynamic
/// `compression.type` set cluster-wide is the default of every topic without its own (a
/// produced batch is stored with it), this node's value wins over it, settings that are not
/// dynamic are refused in Kafka's words, and everything survives a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_configs_are_described_and_the_dynamic_ones_altered() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_in(dir.path()).await;
    server.create_kafka_topic("plain", 1).await;
    let mut c = KafkaWire::open(server.kafka_addr).await;
    for version in 1..=4 {
        let d = describe(&mut c, version, BROKER, "1").await;
        assert_eq!(d.error_code, 0);
        assert_eq!(
            entry(&d, "listeners").0,
            format!("PLAINTEXT://{}", server.kafka_addr)
        );
        assert_eq!(
            entry(&d, "advertised.listeners").0,
            format!("PLAINTEXT://{}", server.kafka_addr)
        );
        assert_eq!(
            entry(&d, "log.dirs").0,
            server.data_dir().display().to_string()
        );
        assert_eq!(entry(&d, "num.partitions"), ("1".into(), 4, true));
        assert_eq!(entry(&d, "default.replication.factor").0, "1");
        assert_eq!(entry(&d, "min.insync.replicas").0, "1");
        assert_eq!(entry(&d, "group.consumer.session.timeout.ms").0, "45000");
        assert_eq!(entry(&d, "compression.type"), ("producer".into(), 5, false));
        // Review 18a #8: the quotas' windows and the fetch session cache, as configured
        // (Kafka's defaults: 11 windows of 1 s, 1000 slots), read-only.
        assert_eq!(entry(&d, "quota.window.num"), ("11".into(), 4, true));
        assert_eq!(
            entry(&d, "quota.window.size.seconds"),
            ("1".into(), 4, true)
        );
        assert_eq!(
            entry(&d, "max.incremental.fetch.session.cache.slots"),
            ("1000".into(), 4, true)
        );
    }
    let d = describe(&mut c, 4, BROKER, "7").await;
    assert_eq!(
        (d.error_code, d.error_message.unwrap().as_str()),
        (
            INVALID_REQUEST,
            "Unexpected broker id, expected 1 or empty string, but received 7"
        )
    );
    assert!(describe(&mut c, 4, BROKER, "").await.configs.is_empty());

    let r = inc(
        &mut c,
        1,
        vec![inc_resource(
            BROKER,
            "",
            &[("num.partitions", 0, Some("3"))],
        )],
    )
    .await;
    assert_eq!(
        r[0],
        (
            INVALID_REQUEST,
            "Cannot update these configs dynamically: Set(num.partitions)".into()
        )
    );
    let r = inc(
        &mut c,
        1,
        vec![inc_resource(
            BROKER,
            "2",
            &[("compression.type", 0, Some("gzip"))],
        )],
    )
    .await;
    assert_eq!(
        r[0],
        (
            INVALID_REQUEST,
            "Unexpected broker id, expected 1, but received 2".into()
        )
    );
    for version in 0..=1 {
        let r = inc(
            &mut c,
            version,
            vec![inc_resource(
                BROKER,
                "",
                &[("compression.type", 0, Some("gzip"))],
            )],
        )
        .await;
        assert_eq!(r[0].0, 0, "{r:?}");
    }
    let d = describe(&mut c, 4, BROKER, "").await;
    assert_eq!(d.configs.len(), 1);
    assert_eq!(entry(&d, "compression.type"), ("gzip".into(), 3, false));
    let d = describe(&mut c, 4, TOPIC, "plain").await;
    assert_eq!(entry(&d, "compression.type"), ("gzip".into(), 3, false));
    assert_eq!(
        produce(&mut c, "plain", batch(5, Compression::None)).await,
        0
    );
    assert_eq!(stored_codecs(&mut c, "plain").await, (vec![1], 5));
    // This node's value wins over the cluster-wide one (legacy AlterConfigs too).
    for version in 0..=2 {
        let r = legacy(&mut c, version, BROKER, "1", &[("compression.type", "lz4")]).await;
        assert_eq!(r.0, 0, "{r:?}");
    }
    server.restart().await;
    let mut c = KafkaWire::open(server.kafka_addr).await;
    let d = describe(&mut c, 4, TOPIC, "plain").await;
    assert_eq!(entry(&d, "compression.type"), ("lz4".into(), 2, false));
    assert_eq!(
        produce(&mut c, "plain", batch(5, Compression::None)).await,
        0
    );
    assert_eq!(stored_codecs(&mut c, "plain").await, (vec![1, 3], 10));
}

/// Kafka's resource rules: a resource named twice in one alter request is refused in every
/// copy, a config named twice in one resource too (INVALID_REQUEST); the others go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_resource_and_config_appears_once() {
    let server = TestServer::start().await;
    server.create_kafka_topic("once", 1).await;
    let mut c = KafkaWire::open(server.kafka_addr).await;
    let set = |codec| [("compression.type", 0i8, Some(codec))];
    let r = inc(
        &mut c,
        1,
        vec![
            inc_resource(TOPIC, "once", &set("gzip")),
            inc_resource(
                GROUP,
                "g",
                &[("consumer.session.timeout.ms", 0, Some("50000"))],
            ),
            inc_resource(TOPIC, "once", &set("zstd")),
        ],
    )
    .await;
    let dup = (
        INVALID_REQUEST,
        "Each resource must appear at most once.".to_string(),
    );
    assert_eq!(r[0], dup);
    assert_eq!(r[1].0, 0);
    assert_eq!(r[2], dup);
    let r = inc(
        &mut c,
        1,
        vec![inc_resource(
            TOPIC,
            "once",
            &[
                ("compression.type", 0, Some("gzip")),
                ("compression.type", 0, Some("zstd")),
            ],
        )],
    )
    .await;
    assert_eq!(
        r[0],
        (INVALID_REQUEST, "Error due to duplicate config keys".into())
    );
    let d = describe(&mut c, 4, TOPIC, "once").await;
    assert_eq!(entry(&d, "compression.type").0, "producer");
}

/// kafka-python's and confluent-kafka's admin clients on topic compression, group and broker
/// configs, and their consumers reading a gzip producer's records from a zstd topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_clients_use_configs_v4() {
    let server = TestServer::start().await;
    client_programs::run(
        "configs_v4.py",
        &client_programs::python(),
        &server.kafka_addr.to_string(),
        &[],
        Duration::from_secs(240),
    )
    .await;
}

/// Kafka's authorization of config resources: DescribeConfigs needs DESCRIBE_CONFIGS and the
/// alter APIs ALTER_CONFIGS on the group (GROUP_AUTHORIZATION_FAILED), the cluster for the
/// broker (CLUSTER_AUTHORIZATION_FAILED). A user without rights gets those; a Group Describe
/// binding lets the user describe the group's configs, not change them. Both listeners are
/// described, each with its security protocol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_resources_are_authorized_as_in_kafka() {
    use iggy::prelude::{UserClient as _, UserStatus};
    use wharf_gateway::config::{KafkaAuthentication, KafkaListener};
    const GROUP_DENIED: i16 = 30;
    const CLUSTER_DENIED: i16 = 31;
    let server = TestServer::start_with(|c| {
        c.kafka.more_listeners = vec![KafkaListener {
            address: "127.0.0.1:0".parse().unwrap(),
            advertised_host: None,
            advertised_port: None,
            authentication: KafkaAuthentication::Sasl,
            tls: false,
        }];
    })
    .await;
    let root = compat_tests::iggy_root_client(&server).await;
    within(
        "create alice",
        root.create_user("alice", "alice-pw", UserStatus::Active, None),
    )
    .await
    .unwrap();
    let sasl = server.kafka_listeners[1];
    let mut alice = KafkaWire::open(sasl).await;
    alice.sasl_plain("alice", "alice-pw").await;
    let session = [("consumer.session.timeout.ms", 0, Some("50000"))];
    for (kind, name, denied) in [
        (GROUP, "billing", GROUP_DENIED),
        (BROKER, "1", CLUSTER_DENIED),
    ] {
        let d = describe(&mut alice, 4, kind, name).await;
        assert_eq!(d.error_code, denied, "{kind} {name}");
        assert!(d.configs.is_empty());
        let changes: &[(&str, i8, Option<&str>)] = if kind == GROUP {
            &session
        } else {
            &[("compression.type", 0, Some("gzip"))]
        };
        let r = inc(&mut alice, 1, vec![inc_resource(kind, name, changes)]).await;
        assert_eq!(r[0].0, denied, "{kind} {name}: {r:?}");
        assert_eq!(legacy(&mut alice, 2, kind, name, &[]).await.0, denied);
    }
    // Root grants alice Describe on the group.
    let mut admin = KafkaWire::open(sasl).await;
    admin.sasl_plain("iggy", "iggy").await;
    let grant: CreateAclsResponse = admin
        .call(
            ApiKey::CreateAcls,
            3,
            &CreateAclsRequest::default().with_creations(vec![
                create_acls_request::AclCreation::default()
                    .with_resource_type(3)
                    .with_resource_name(s("billing"))
                    .with_resource_pattern_type(3)
                    .with_principal(s("User:alice"))
                    .with_host(s("*"))
                    .with_operation(8)
                    .with_permission_type(3),
            ]),
        )
        .await;
    assert_eq!(grant.results[0].error_code, 0, "{grant:?}");
    let d = describe(&mut alice, 4, GROUP, "billing").await;
    assert_eq!(d.error_code, 0);
    assert_eq!(entry(&d, "consumer.session.timeout.ms").0, "45000");
    let r = inc(
        &mut alice,
        1,
        vec![inc_resource(GROUP, "billing", &session)],
    )
    .await;
    assert_eq!(r[0].0, GROUP_DENIED, "{r:?}");
    // Root may; and sees both listeners.
    let r = inc(
        &mut admin,
        1,
        vec![inc_resource(GROUP, "billing", &session)],
    )
    .await;
    assert_eq!(r[0].0, 0, "{r:?}");
    let d = describe(&mut admin, 4, BROKER, "1").await;
    // The listener this client is on shows the port it was bound to; the other as configured.
    let listeners = entry(&d, "listeners").0;
    assert!(
        listeners.starts_with("PLAINTEXT://127.0.0.1:")
            && listeners.ends_with(&format!(",SASL_PLAINTEXT://{sasl}")),
        "{listeners}"
    );
}

/// Review 18a #3: a reader older than Fetch v10 cannot decode zstd, so a partition of a topic
/// stored as zstd (`compression.type=zstd`) is answered UNSUPPORTED_COMPRESSION_TYPE with no
/// records at v4-v9, as Kafka's `maybeConvertFetchedData` answers; v10 reads the zstd batch.
/// A `producer` topic holding gzip is read at v9 as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_before_v10_of_a_zstd_topic_is_unsupported_compression() {
    let server = TestServer::start().await;
    let mut c = KafkaWire::open(server.kafka_addr).await;
    server.create_kafka_topic("zstd-stored", 1).await;
    server.create_kafka_topic("gzip-as-sent", 1).await;
    let r = inc(
        &mut c,
        1,
        vec![inc_resource(
            TOPIC,
            "zstd-stored",
            &[("compression.type", 0, Some("zstd"))],
        )],
    )
    .await;
    assert_eq!(r[0].0, 0, "{r:?}");
    assert_eq!(
        produce(&mut c, "zstd-stored", batch(3, Compression::Gzip)).await,
        0
    );
    assert_eq!(
        produce(&mut c, "gzip-as-sent", batch(3, Compression::Gzip)).await,
        0
    );
    let fetch = |topic: &'static str| {
        FetchRequest::default()
            .with_replica_id((-1).into())
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(TopicName(s(topic)))
                .with_partitions(vec![fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20)])])
    };
    let unsupported = kafka_protocol::error::ResponseError::UnsupportedCompressionType.code();
    for version in [4i16, 9] {
        let r: FetchResponse = c.call(ApiKey::Fetch, version, &fetch("zstd-stored")).await;
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, unsupported, "v{version}");
        assert!(
            p.records.as_ref().is_none_or(|b| b.is_empty()),
            "v{version}: records sent to a reader without zstd"
        );
        let r: FetchResponse = c.call(ApiKey::Fetch, version, &fetch("gzip-as-sent")).await;
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "v{version}: a gzip topic is readable");
        assert!(p.records.as_ref().is_some_and(|b| !b.is_empty()));
    }
    let r: FetchResponse = c.call(ApiKey::Fetch, 10, &fetch("zstd-stored")).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0, "v10 reads zstd");
    let raw = p.records.clone().unwrap_or_default();
    let h = kafka_batch::validate(&raw).unwrap();
    assert_eq!(h.attributes & 7, 4, "stored as zstd");
}
