//! Kafka clients in other languages against a real server: `confluent-kafka` and
//! `kafka-python` (Python) and `kafkajs` (Node). The programs live in
//! `compat-tests/kafka-clients/`; `scripts/kafka-clients` (run by `scripts/test`) installs the
//! clients under `target/kafka-clients/`. Each program gets a fresh server.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::time::Duration;

use compat_tests::TestServer;

/// Longest a client program may run.
const LIMIT: Duration = Duration::from_secs(600);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn installed(path: &Path) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run scripts/kafka-clients first (scripts/test does)",
        path.display()
    );
    path.to_path_buf()
}

async fn run(program: &str, interpreter: PathBuf, env: &[(&str, PathBuf)]) {
    let server = TestServer::start().await;
    let script = repo().join("compat-tests/kafka-clients").join(program);
    let mut cmd = tokio::process::Command::new(interpreter);
    cmd.arg(&script)
        .arg(server.kafka_addr.to_string())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(LIMIT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{program} did not finish within {LIMIT:?}"))
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "{program} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

fn python() -> PathBuf {
    installed(&repo().join("target/kafka-clients/venv/bin/python"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_python() {
    run("confluent_kafka_test.py", python(), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python() {
    run("kafka_python_test.py", python(), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafkajs() {
    let modules = installed(&repo().join("target/kafka-clients/node/node_modules"));
    run(
        "kafkajs_test.js",
        PathBuf::from("node"),
        &[("NODE_PATH", modules)],
    )
    .await;
}
