//! Kafka clients in other languages over SASL_SSL: `confluent-kafka` and `kafka-python`
//! (Python) and `kafkajs` (Node) against a server whose Kafka listener speaks TLS and requires
//! SASL. This harness makes the certificates ([`TestCerts`]: rcgen, in a temp dir, never
//! committed), starts the server and sets up, through the native door with the official `iggy`
//! SDK, topics `a` and `b` and the two users the programs log in as. The programs
//! (`compat-tests/kafka-clients/secure_*`) log in with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512,
//! produce and read back, check that a wrong password gets the client's authentication error,
//! and that a user who may read `a` only is refused `b` with TOPIC_AUTHORIZATION_FAILED.
//! `scripts/kafka-clients` installs the clients under `target/kafka-clients/`.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use compat_tests::{client_programs, iggy_root_client, within, TestCerts, TestServer};
use iggy::prelude::{
    CompressionAlgorithm, GlobalPermissions, Identifier, IggyExpiry, MaxTopicSize, Permissions,
    StreamClient as _, StreamPermissions, TopicClient as _, TopicPermissions, UserClient as _,
    UserStatus,
};
use wharf_gateway::config::KafkaAuthentication;

/// Longest a client program may run.
const LIMIT: Duration = Duration::from_secs(400);

/// The native stream holding the two topics; Kafka clients see its topic `t` as `secure.t`.
const STREAM: &str = "secure";
/// The user who may send to and poll every topic of [`STREAM`].
const WRITER: (&str, &str) = ("kafka-writer", "writer-pw-1");
/// The user who may read topic A only.
const READER: (&str, &str) = ("kafka-reader", "reader-pw-1");

/// A server whose Kafka listener is SASL_SSL (the native door stays plain, for the setup), with
/// topics `a` and `b` of stream [`STREAM`], [`WRITER`] allowed to send to and poll both, and
/// [`READER`] allowed to read `a` only.
async fn secure_server(certs: &TestCerts) -> TestServer {
    let tls = certs.tls_settings(false);
    let server = TestServer::start_with(|c| {
        c.kafka.authentication = KafkaAuthentication::Sasl;
        c.kafka.tls = Some(tls);
    })
    .await;
    let root = iggy_root_client(&server).await;
    let stream = within("create stream", root.create_stream(STREAM))
        .await
        .unwrap();
    let stream_id = Identifier::numeric(stream.id).unwrap();
    let mut topic_ids = Vec::new();
    for name in ["a", "b"] {
        let topic = within(
            "create topic",
            root.create_topic(
                &stream_id,
                name,
                1,
                CompressionAlgorithm::None,
                None,
                IggyExpiry::NeverExpire,
                MaxTopicSize::ServerDefault,
            ),
        )
        .await
        .unwrap();
        topic_ids.push(topic.id as usize);
    }
    let writer = Permissions {
        global: GlobalPermissions::default(),
        streams: Some(BTreeMap::from([(
            stream.id as usize,
            StreamPermissions {
                read_stream: true,
                read_topics: true,
                send_messages: true,
                poll_messages: true,
                ..StreamPermissions::default()
            },
        )])),
    };
    let reader = Permissions {
        global: GlobalPermissions::default(),
        streams: Some(BTreeMap::from([(
            stream.id as usize,
            StreamPermissions {
                topics: Some(BTreeMap::from([(
                    topic_ids[0],
                    TopicPermissions {
                        read_topic: true,
                        poll_messages: true,
                        ..TopicPermissions::default()
                    },
                )])),
                ..StreamPermissions::default()
            },
        )])),
    };
    for ((name, password), permissions) in [(WRITER, writer), (READER, reader)] {
        within(
            "create user",
            root.create_user(name, password, UserStatus::Active, Some(permissions)),
        )
        .await
        .unwrap();
    }
    server
}

async fn run(program: &str, interpreter: &Path, env: &[(String, OsString)]) {
    let certs = TestCerts::new();
    let server = secure_server(&certs).await;
    let mut env = env.to_vec();
    let mut set = |k: &str, v: OsString| env.push((k.to_string(), v));
    set("WHARF_CA_FILE", certs.ca.clone().into());
    set("WHARF_USER", WRITER.0.into());
    set("WHARF_PASSWORD", WRITER.1.into());
    set("WHARF_READER", READER.0.into());
    set("WHARF_READER_PASSWORD", READER.1.into());
    set("WHARF_TOPIC_A", format!("{STREAM}.a").into());
    set("WHARF_TOPIC_B", format!("{STREAM}.b").into());
    // The root user, who may grant consumer groups (CreateAcls); the server's default root.
    set("WHARF_ADMIN", iggy::prelude::DEFAULT_ROOT_USERNAME.into());
    set(
        "WHARF_ADMIN_PASSWORD",
        iggy::prelude::DEFAULT_ROOT_PASSWORD.into(),
    );
    let bootstrap = server.kafka_addr.to_string();
    client_programs::run(program, interpreter, &bootstrap, &env, LIMIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_python_over_sasl_ssl() {
    run("secure_confluent_kafka.py", &client_programs::python(), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_over_sasl_ssl() {
    run("secure_kafka_python.py", &client_programs::python(), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafkajs_over_sasl_ssl() {
    let (node, env) = client_programs::node();
    run("secure_kafkajs.js", &node, &env).await;
}
