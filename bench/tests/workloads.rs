//! Every workload over both protocols, briefly, against a real server: the tool must keep
//! working. Checks counts and the report's shape, never speed.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use compat_tests::TestServer;

const LIMIT: Duration = Duration::from_secs(180);
const MESSAGES: u64 = 3000;

/// Runs `wharf-bench` and returns its JSON report and the last line it printed.
async fn bench(server: &TestServer, protocol: &str, args: &[&str]) -> (serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let address = match protocol {
        "kafka" => server.kafka_addr,
        _ => server.addr,
    };
    let out = tokio::time::timeout(
        LIMIT,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_wharf-bench"))
            .args(args)
            .args(["--protocol", protocol, "--server", &address.to_string()])
            .args(["--messages", &MESSAGES.to_string(), "--message-size", "100"])
            .args(["--batch", "100", "--quiet", "--json"])
            .arg(&json)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("wharf-bench {args:?} over {protocol} took over {LIMIT:?}"))
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "wharf-bench {args:?} over {protocol} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let last = stdout.lines().last().unwrap_or_default().to_string();
    (report, last)
}

fn check(report: &serde_json::Value, last: &str, producers: bool, consumers: bool) {
    let what = &report["settings"]["workload"];
    assert!(
        last.starts_with("throughput: ") && last.contains(" MB/s, ") && last.ends_with(" ms"),
        "{what}: last line {last:?}"
    );
    assert_eq!(report["errors"], 0, "{what}");
    if producers {
        assert_eq!(
            report["producers"]["messages"], MESSAGES,
            "{what}: produced"
        );
        assert_eq!(report["producers"]["bytes"], MESSAGES * 100, "{what}");
    }
    if consumers {
        let read = report["consumers"]["messages"].as_u64().unwrap();
        assert!(read >= MESSAGES, "{what}: consumed {read} of {MESSAGES}");
    }
    let samples = report["latency"]["samples"].as_u64().unwrap();
    assert!(samples > 0, "{what}: no latency samples");
    let p = &report["latency"];
    for (lo, hi) in [
        ("p50", "p90"),
        ("p90", "p99"),
        ("p99", "p999"),
        ("p999", "max"),
    ] {
        assert!(
            p[lo].as_f64().unwrap() <= p[hi].as_f64().unwrap(),
            "{what}: {p}"
        );
    }
}

async fn every_workload(protocol: &str) {
    let server = TestServer::start().await;
    let (r, last) = bench(&server, protocol, &["pinned-producer", "--producers", "2"]).await;
    check(&r, &last, true, false);
    assert_eq!(r["actors"].as_array().unwrap().len(), 2);
    assert_eq!(r["latency"]["kind"], "send");

    let (r, last) = bench(
        &server,
        protocol,
        &[
            "balanced-producer",
            "--producers",
            "2",
            "--partitions",
            "3",
            "--rate",
            "20000",
        ],
    )
    .await;
    check(&r, &last, true, false);

    let (r, last) = bench(&server, protocol, &["pinned-consumer", "--consumers", "2"]).await;
    check(&r, &last, false, true);
    assert_eq!(r["consumers"]["messages"], MESSAGES, "each message once");
    assert_eq!(r["latency"]["kind"], "poll");

    let (r, last) = bench(
        &server,
        protocol,
        &[
            "balanced-consumer-group",
            "--consumers",
            "2",
            "--partitions",
            "4",
        ],
    )
    .await;
    check(&r, &last, false, true);

    let (r, last) = bench(
        &server,
        protocol,
        &[
            "end-to-end",
            "--producers",
            "2",
            "--consumers",
            "2",
            "--warmup",
            "200 ms",
        ],
    )
    .await;
    check(&r, &last, true, true);
    assert_eq!(
        r["consumers"]["messages"], MESSAGES,
        "warm-up messages are not counted"
    );
    assert_eq!(r["latency"]["kind"], "end-to-end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_runs_over_the_native_protocol() {
    every_workload("native").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_runs_over_the_kafka_protocol() {
    every_workload("kafka").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_are_named() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wharf-bench"))
        .args(["pinned-producer", "--message-size", "4"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--message-size"), "{err}");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wharf-bench"))
        .args([
            "pinned-producer",
            "--server",
            "127.0.0.1:1",
            "--messages",
            "10",
            "--quiet",
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("wharf-bench: "), "{err}");
}

/// `--topic NAME --keep-topic` leaves the produced topic under that name, and `pinned-consumer
/// --existing-topic NAME` reads those messages from its start (what
/// `scripts/bench tiered` does with a topic offloaded to object storage).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_topic_is_read_again_with_existing_topic() {
    let server = TestServer::start().await;
    let (r, last) = bench(
        &server,
        "kafka",
        &["pinned-producer", "--topic", "kept", "--keep-topic"],
    )
    .await;
    check(&r, &last, true, false);
    let (r, last) = bench(
        &server,
        "kafka",
        &["pinned-consumer", "--existing-topic", "kept"],
    )
    .await;
    check(&r, &last, false, true);
    assert_eq!(
        r["consumers"]["messages"], MESSAGES,
        "the kept topic's messages, read from its start"
    );
}

/// `pinned-consumer --consumers 1 --partitions 4` (the multi-partition fetch rows of
/// `scripts/bench`): the one consumer reads all four partitions, each its even share of
/// --messages, the same total as a one-partition run.
async fn one_consumer_reads_four_partitions(protocol: &str) {
    let server = TestServer::start().await;
    let (r, last) = bench(
        &server,
        protocol,
        &["pinned-consumer", "--consumers", "1", "--partitions", "4"],
    )
    .await;
    check(&r, &last, false, true);
    assert_eq!(r["settings"]["partitions"], 4);
    let actors = r["actors"].as_array().unwrap();
    assert_eq!(actors.len(), 1, "one consumer: {actors:?}");
    let per_partition = actors[0]["partitions"].as_object().unwrap();
    let expected: serde_json::Map<String, serde_json::Value> = (0..4)
        .map(|p| (p.to_string(), serde_json::Value::from(MESSAGES / 4)))
        .collect();
    assert_eq!(per_partition, &expected, "messages read per partition");
    assert_eq!(r["consumers"]["messages"], MESSAGES, "each message once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_kafka_consumer_reads_four_partitions() {
    one_consumer_reads_four_partitions("kafka").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_native_consumer_reads_four_partitions() {
    one_consumer_reads_four_partitions("native").await;
}
