//! Kafka clients in other languages against a real server: `confluent-kafka` and
//! `kafka-python` (Python) and `kafkajs` (Node). The programs live in
//! `compat-tests/kafka-clients/`; `scripts/kafka-clients` (run by `scripts/test`) installs the
//! clients under `target/kafka-clients/`. Each program gets a fresh server.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use compat_tests::{client_programs, TestServer};

/// Longest a client program may run.
const LIMIT: Duration = Duration::from_secs(600);

async fn run(program: &str, interpreter: &Path, env: &[(String, OsString)]) {
    let server = TestServer::start().await;
    client_programs::run(
        program,
        interpreter,
        &server.kafka_addr.to_string(),
        env,
        LIMIT,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_python() {
    run("confluent_kafka_test.py", &client_programs::python(), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python() {
    run("kafka_python_test.py", &client_programs::python(), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafkajs() {
    let (node, env) = client_programs::node();
    run("kafkajs_test.js", &node, &env).await;
}
