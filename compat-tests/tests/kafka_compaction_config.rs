//! Compaction settings through real admin clients and across both doors: librdkafka's
//! (rdkafka crate) CreateTopics with configs, DescribeConfigs of topics and of the broker, the
//! legacy AlterConfigs (a topic's whole config set), their survival of a restart; confluent-kafka's
//! IncrementalAlterConfigs APPEND/SUBTRACT on `cleanup.policy` (a Python program, as rdkafka
//! 0.38 has no incremental API); and Wharf's native config commands (10_003/10_004) agreeing
//! with the Kafka door on the same topic.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use compat_tests::{
    client_programs, native_frame, root_login_frame, test_config_with_toml, within, TestServer,
};
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigResource, ConfigSource, NewTopic,
    ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wharf_protocol::codes;
use wharf_protocol::requests::{Command, GetTopicConfig, SetTopicConfig, TopicConfigChange};
use wharf_protocol::responses::TopicConfigWire;
use wharf_protocol::{Identifier, Reader};

/// The server's compaction defaults in these tests: a changed tombstone retention (so its
/// source is the server config) and Kafka's defaults otherwise.
const CLEANER: &str = "[cleaner]\ndelete_retention = \"1 h\"\n";

async fn server() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_config(test_config_with_toml(dir.path(), CLEANER)).await;
    (server, dir)
}

fn admin(server: &TestServer) -> AdminClient<DefaultClientContext> {
    server.kafka_config().create().unwrap()
}

async fn describe(
    admin: &AdminClient<DefaultClientContext>,
    resource: ResourceSpecifier<'_>,
) -> ConfigResource {
    let mut r = within(
        "DescribeConfigs",
        admin.describe_configs(&[resource], &AdminOptions::new()),
    )
    .await
    .unwrap();
    r.remove(0).unwrap()
}

fn value(r: &ConfigResource, name: &str) -> (String, ConfigSource) {
    let e = r
        .get(name)
        .unwrap_or_else(|| panic!("{name} is not described"));
    let source = match e.source {
        ConfigSource::DynamicTopic => ConfigSource::DynamicTopic,
        ConfigSource::StaticBroker => ConfigSource::StaticBroker,
        ConfigSource::Default => ConfigSource::Default,
        ref other => panic!("{name}: unexpected source {other:?}"),
    };
    (e.value.clone().unwrap_or_default(), source)
}

async fn create(
    admin: &AdminClient<DefaultClientContext>,
    topic: NewTopic<'_>,
    validate_only: bool,
) -> Result<(), RDKafkaErrorCode> {
    let r = within(
        "CreateTopics",
        admin.create_topics(&[topic], &AdminOptions::new().validate_only(validate_only)),
    )
    .await
    .unwrap();
    match r.into_iter().next().unwrap() {
        Ok(_) => Ok(()),
        Err((_, code)) => Err(code),
    }
}

async fn alter(
    admin: &AdminClient<DefaultClientContext>,
    config: AlterConfig<'_>,
) -> Result<(), RDKafkaErrorCode> {
    let r = within(
        "AlterConfigs",
        admin.alter_configs(&[config], &AdminOptions::new()),
    )
    .await
    .unwrap();
    match r.into_iter().next().unwrap() {
        Ok(_) => Ok(()),
        Err((_, code)) => Err(code),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdkafka_creates_describes_and_replaces_compaction_configs() {
    let (mut server, _dir) = server().await;
    let a = admin(&server);
    let ledger = || {
        NewTopic::new("ledger", 1, TopicReplication::Fixed(1))
            .set("cleanup.policy", "compact")
            .set("min.compaction.lag.ms", "1000")
    };

    // validate_only: checked, answered, nothing created.
    create(&a, ledger(), true).await.unwrap();
    let r = within(
        "DescribeConfigs",
        a.describe_configs(&[ResourceSpecifier::Topic("ledger")], &AdminOptions::new()),
    )
    .await
    .unwrap();
    // An unknown topic: librdkafka gives its resource error or an empty entry list.
    assert!(
        r[0].as_ref().map_or(true, |c| c.entries.is_empty()),
        "validate_only created the topic: {:?}",
        r[0]
    );
    // Kafka's validators: INVALID_CONFIG, nothing created.
    let bad =
        NewTopic::new("bad", 1, TopicReplication::Fixed(1)).set("min.cleanable.dirty.ratio", "2");
    assert_eq!(
        create(&a, bad, false).await,
        Err(RDKafkaErrorCode::InvalidConfig)
    );
    let bad = NewTopic::new("bad", 1, TopicReplication::Fixed(1))
        .set("min.compaction.lag.ms", "10")
        .set("max.compaction.lag.ms", "5");
    assert_eq!(
        create(&a, bad, false).await,
        Err(RDKafkaErrorCode::InvalidConfig)
    );
    let bad = NewTopic::new("bad", 1, TopicReplication::Fixed(1)).set("cleanup.policy", "keep");
    assert_eq!(
        create(&a, bad, false).await,
        Err(RDKafkaErrorCode::InvalidConfig)
    );

    create(&a, ledger(), false).await.unwrap();
    let d = describe(&a, ResourceSpecifier::Topic("ledger")).await;
    assert_eq!(
        value(&d, "cleanup.policy"),
        ("compact".into(), ConfigSource::DynamicTopic)
    );
    assert_eq!(
        value(&d, "min.compaction.lag.ms"),
        ("1000".into(), ConfigSource::DynamicTopic)
    );
    // The server config's default (1 h) is STATIC_BROKER_CONFIG; Kafka's own are DEFAULT.
    assert_eq!(
        value(&d, "delete.retention.ms"),
        ("3600000".into(), ConfigSource::StaticBroker)
    );
    assert_eq!(
        value(&d, "min.cleanable.dirty.ratio"),
        ("0.5".into(), ConfigSource::Default)
    );
    assert_eq!(
        value(&d, "max.compaction.lag.ms"),
        ("9223372036854775807".into(), ConfigSource::Default)
    );

    // The broker's cleaner settings under Kafka's names.
    let b = describe(&a, ResourceSpecifier::Broker(1)).await;
    for (name, expected) in [
        ("log.cleanup.policy", "delete"),
        ("log.cleaner.enable", "true"),
        ("log.cleaner.dedupe.buffer.size", "134217728"),
        (
            "log.cleaner.io.max.bytes.per.second",
            "1.7976931348623157E308",
        ),
        ("log.cleaner.backoff.ms", "15000"),
        ("log.cleaner.min.cleanable.ratio", "0.5"),
        ("log.cleaner.min.compaction.lag.ms", "0"),
        ("log.cleaner.max.compaction.lag.ms", "9223372036854775807"),
        ("log.cleaner.delete.retention.ms", "3600000"),
    ] {
        assert_eq!(
            value(&b, name),
            (expected.into(), ConfigSource::StaticBroker),
            "{name}"
        );
    }

    // Legacy AlterConfigs replaces the whole set: min.compaction.lag.ms, not listed, returns
    // to its default.
    alter(
        &a,
        AlterConfig::new(ResourceSpecifier::Topic("ledger"))
            .set("cleanup.policy", "compact,delete")
            .set("delete.retention.ms", "100"),
    )
    .await
    .unwrap();
    let d = describe(&a, ResourceSpecifier::Topic("ledger")).await;
    assert_eq!(
        value(&d, "cleanup.policy"),
        ("compact,delete".into(), ConfigSource::DynamicTopic)
    );
    assert_eq!(
        value(&d, "delete.retention.ms"),
        ("100".into(), ConfigSource::DynamicTopic)
    );
    assert_eq!(
        value(&d, "min.compaction.lag.ms"),
        ("0".into(), ConfigSource::Default)
    );
    // A refused set changes nothing. (rdkafka 0.38 drops AlterConfigs' per-resource errors, so
    // the code, INVALID_CONFIG, is checked by the confluent-kafka program; here the effect.)
    let _ = alter(
        &a,
        AlterConfig::new(ResourceSpecifier::Topic("ledger"))
            .set("cleanup.policy", "compact")
            .set("delete.retention.ms", "-1"),
    )
    .await;
    let d = describe(&a, ResourceSpecifier::Topic("ledger")).await;
    assert_eq!(value(&d, "cleanup.policy").0, "compact,delete");
    assert_eq!(value(&d, "delete.retention.ms").0, "100");
    drop(a);

    // The settings are stored with the topic.
    server.restart().await;
    let a = admin(&server);
    let d = describe(&a, ResourceSpecifier::Topic("ledger")).await;
    assert_eq!(
        value(&d, "cleanup.policy"),
        ("compact,delete".into(), ConfigSource::DynamicTopic)
    );
    assert_eq!(value(&d, "delete.retention.ms").0, "100");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_appends_and_subtracts_cleanup_policy() {
    let (server, _dir) = server().await;
    client_programs::run(
        "compaction_config.py",
        &client_programs::python(),
        &server.kafka_addr.to_string(),
        &[],
        Duration::from_secs(180),
    )
    .await;
}

/// A logged-in native connection speaking raw frames.
struct Native(TcpStream);

impl Native {
    async fn open(server: &TestServer) -> Native {
        let mut n = Native(TcpStream::connect(server.addr).await.unwrap());
        n.0.write_all(&root_login_frame()).await.unwrap();
        assert_eq!(n.answer().await.0, 0, "login");
        n
    }

    /// (status, payload) of the next answer.
    async fn answer(&mut self) -> (u32, Vec<u8>) {
        within("a native answer", async {
            let mut head = [0u8; 8];
            self.0.read_exact(&mut head).await.unwrap();
            let status = u32::from_le_bytes(head[..4].try_into().unwrap());
            let len = u32::from_le_bytes(head[4..].try_into().unwrap());
            assert!(len < 1 << 20, "answer of {len} bytes");
            let mut payload = vec![0u8; len as usize];
            self.0.read_exact(&mut payload).await.unwrap();
            (status, payload)
        })
        .await
    }

    async fn call<C: Command>(&mut self, command: C) -> (u32, Vec<u8>) {
        let mut payload = BytesMut::new();
        command.encode(&mut payload);
        self.0
            .write_all(&native_frame(C::CODE, &payload))
            .await
            .unwrap();
        self.answer().await
    }

    async fn configs(&mut self, stream: &str, topic: &str) -> Vec<TopicConfigWire> {
        let (status, body) = self
            .call(GetTopicConfig {
                stream_id: Identifier::Name(stream.into()),
                topic_id: Identifier::Name(topic.into()),
            })
            .await;
        assert_eq!(status, 0, "get topic config");
        let mut r = Reader::new(&body);
        let mut out = Vec::new();
        while r.remaining() > 0 {
            out.push(TopicConfigWire::decode(&mut r).unwrap());
        }
        out
    }

    async fn set(&mut self, stream: &str, topic: &str, changes: &[(&str, Option<&str>)]) -> u32 {
        self.call(SetTopicConfig {
            stream_id: Identifier::Name(stream.into()),
            topic_id: Identifier::Name(topic.into()),
            changes: changes
                .iter()
                .map(|(n, v)| TopicConfigChange {
                    name: (*n).into(),
                    value: v.map(str::to_owned),
                })
                .collect(),
        })
        .await
        .0
    }
}

fn find<'a>(entries: &'a [TopicConfigWire], name: &str) -> (&'a str, &'a str) {
    let e = entries.iter().find(|e| e.name == name).unwrap();
    (e.value.as_str(), e.source.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_config_commands_agree_with_the_kafka_door() {
    let (server, _dir) = server().await;
    server.create_kafka_topic("orders", 1).await;
    let a = admin(&server);
    let mut n = Native::open(&server).await;

    // Set on the native door, seen by Kafka's DescribeConfigs.
    let status = n
        .set(
            "default",
            "orders",
            &[
                ("cleanup.policy", Some("compact")),
                ("min.cleanable.dirty.ratio", Some("0.2")),
            ],
        )
        .await;
    assert_eq!(status, 0);
    let d = describe(&a, ResourceSpecifier::Topic("orders")).await;
    assert_eq!(
        value(&d, "cleanup.policy"),
        ("compact".into(), ConfigSource::DynamicTopic)
    );
    assert_eq!(value(&d, "min.cleanable.dirty.ratio").0, "0.2");

    // Set on the Kafka door, seen by the native get, with Kafka's source names.
    alter(
        &a,
        AlterConfig::new(ResourceSpecifier::Topic("orders"))
            .set("cleanup.policy", "compact")
            .set("max.compaction.lag.ms", "60000"),
    )
    .await
    .unwrap();
    let c = n.configs("default", "orders").await;
    assert_eq!(
        find(&c, "max.compaction.lag.ms"),
        ("60000", "DYNAMIC_TOPIC_CONFIG")
    );
    assert_eq!(
        find(&c, "min.cleanable.dirty.ratio"),
        ("0.5", "DEFAULT_CONFIG"),
        "AlterConfigs replaced the set"
    );
    assert_eq!(
        find(&c, "delete.retention.ms"),
        ("3600000", "STATIC_BROKER_CONFIG")
    );

    // The same rules: the lag rule and the validators refuse with InvalidConfiguration (2),
    // changing nothing; a reset returns a config to its default.
    let status = n
        .set(
            "default",
            "orders",
            &[
                ("cleanup.policy", Some("delete")),
                ("min.compaction.lag.ms", Some("120000")),
            ],
        )
        .await;
    assert_eq!(status, wharf_protocol::status::INVALID_CONFIGURATION);
    assert_eq!(
        find(&n.configs("default", "orders").await, "cleanup.policy").0,
        "compact"
    );
    let status = n
        .set("default", "orders", &[("segment.bytes", Some("lots"))])
        .await;
    assert_eq!(status, wharf_protocol::status::INVALID_CONFIGURATION);
    let status = n
        .set("default", "orders", &[("max.compaction.lag.ms", None)])
        .await;
    assert_eq!(status, 0);
    assert_eq!(
        find(
            &n.configs("default", "orders").await,
            "max.compaction.lag.ms"
        ),
        ("9223372036854775807", "DEFAULT_CONFIG")
    );

    // A count past the bound is refused as malformed before any change is read.
    let mut payload = BytesMut::new();
    GetTopicConfig {
        stream_id: Identifier::Name("default".into()),
        topic_id: Identifier::Name("orders".into()),
    }
    .encode(&mut payload);
    payload.put_u32_le(u32::MAX);
    n.0.write_all(&native_frame(codes::WHARF_SET_TOPIC_CONFIG, &payload))
        .await
        .unwrap();
    let (status, _) = n.answer().await;
    assert_eq!(status, wharf_protocol::status::INVALID_FORMAT);
}

/// What no admin client sends, at the wire: every AlterConfigs version (v2 is flexible), and
/// Kafka's INVALID_REQUEST for a config named twice or given no value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_configs_versions_and_request_refusals_at_the_wire() {
    use compat_tests::KafkaWire;
    use kafka_protocol::messages::{
        alter_configs_request as legacy, incremental_alter_configs_request as incremental,
        AlterConfigsRequest, AlterConfigsResponse, ApiKey, ApiVersionsRequest, ApiVersionsResponse,
        IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    };
    use kafka_protocol::protocol::StrBytes;
    const INVALID_REQUEST: i16 = 42;
    const INVALID_CONFIG: i16 = 40;

    let (server, _dir) = server().await;
    server.create_kafka_topic("t", 1).await;
    let mut c = KafkaWire::open(server.kafka_addr).await;
    let s = |v: &str| StrBytes::from_string(v.into());

    let versions: ApiVersionsResponse = c
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    let alter = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::AlterConfigs as i16)
        .map(|k| (k.min_version, k.max_version));
    assert_eq!(alter, Some((0, 2)), "AlterConfigs advertised");

    let legacy_req = |configs: &[(&str, Option<&str>)]| {
        AlterConfigsRequest::default().with_resources(vec![legacy::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("t"))
            .with_configs(
                configs
                    .iter()
                    .map(|(n, v)| {
                        legacy::AlterableConfig::default()
                            .with_name(s(n))
                            .with_value(v.map(s))
                    })
                    .collect(),
            )])
    };
    for version in 0..=2 {
        let policy = if version % 2 == 0 {
            "compact"
        } else {
            "delete"
        };
        let r: AlterConfigsResponse = c
            .call(
                ApiKey::AlterConfigs,
                version,
                &legacy_req(&[("cleanup.policy", Some(policy))]),
            )
            .await;
        assert_eq!(r.responses[0].error_code, 0, "v{version}");
    }
    let r: AlterConfigsResponse = c
        .call(
            ApiKey::AlterConfigs,
            2,
            &legacy_req(&[
                ("cleanup.policy", Some("compact")),
                ("cleanup.policy", Some("delete")),
            ]),
        )
        .await;
    assert_eq!(r.responses[0].error_code, INVALID_REQUEST, "a name twice");
    let r: AlterConfigsResponse = c
        .call(
            ApiKey::AlterConfigs,
            1,
            &legacy_req(&[("segment.ms", None)]),
        )
        .await;
    assert_eq!(r.responses[0].error_code, INVALID_REQUEST, "no value");
    let r: AlterConfigsResponse = c
        .call(
            ApiKey::AlterConfigs,
            1,
            &legacy_req(&[("min.cleanable.dirty.ratio", Some("-1"))]),
        )
        .await;
    assert_eq!(r.responses[0].error_code, INVALID_CONFIG);

    let incremental_req = |configs: &[(&str, i8, Option<&str>)]| {
        IncrementalAlterConfigsRequest::default().with_resources(vec![
            incremental::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("t"))
                .with_configs(
                    configs
                        .iter()
                        .map(|(n, op, v)| {
                            incremental::AlterableConfig::default()
                                .with_name(s(n))
                                .with_config_operation(*op)
                                .with_value(v.map(s))
                        })
                        .collect(),
                ),
        ])
    };
    for (configs, expected, what) in [
        (
            vec![
                ("cleanup.policy", 2, Some("delete")),
                ("cleanup.policy", 3, Some("compact")),
            ],
            INVALID_REQUEST,
            "a name twice",
        ),
        (
            vec![("cleanup.policy", 2, None)],
            INVALID_REQUEST,
            "APPEND without a value",
        ),
        (
            vec![("cleanup.policy", 9, Some("x"))],
            INVALID_REQUEST,
            "an unknown operation",
        ),
        (
            vec![("segment.ms", 3, Some("1"))],
            INVALID_CONFIG,
            "SUBTRACT on a non-list",
        ),
        (vec![("cleanup.policy", 2, Some("delete"))], 0, "APPEND"),
    ] {
        let r: IncrementalAlterConfigsResponse = c
            .call(
                ApiKey::IncrementalAlterConfigs,
                1,
                &incremental_req(&configs),
            )
            .await;
        assert_eq!(r.responses[0].error_code, expected, "{what}");
    }
    let a = admin(&server);
    let d = describe(&a, ResourceSpecifier::Topic("t")).await;
    assert_eq!(value(&d, "cleanup.policy").0, "compact,delete");
}
