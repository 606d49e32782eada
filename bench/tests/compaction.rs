//! wharf-bench's keyed Kafka records (`--keys`) and topic configs (`--topic-config`) against a
//! real server: a run to a compacted topic (`cleanup.policy=compact`) stores every keyed record,
//! and the same run without keys has every record refused (a compacted topic takes no record
//! without a key), which shows the configs reached the topic. Checks counts, never speed.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use compat_tests::TestServer;

const LIMIT: Duration = Duration::from_secs(180);
const MESSAGES: u64 = 2000;

/// Runs `wharf-bench pinned-producer` over Kafka with `args` and returns its JSON report.
async fn bench(server: &TestServer, args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let out = tokio::time::timeout(
        LIMIT,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_wharf-bench"))
            .arg("pinned-producer")
            .args(args)
            .args(["--protocol", "kafka", "--server"])
            .arg(server.kafka_addr.to_string())
            .args(["--messages", &MESSAGES.to_string(), "--message-size", "100"])
            .args(["--batch", "100", "--quiet", "--json"])
            .arg(&json)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("wharf-bench {args:?} took over {LIMIT:?}"))
    .unwrap();
    assert!(
        out.status.success(),
        "wharf-bench {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap()
}

const COMPACTED: [&str; 4] = [
    "--topic-config",
    "cleanup.policy=compact",
    "--topic-config",
    "segment.bytes=65536",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_records_go_to_a_compacted_topic_and_keyless_ones_are_refused() {
    let server = TestServer::start().await;

    let keyed: Vec<&str> = COMPACTED.iter().copied().chain(["--keys", "50"]).collect();
    let r = bench(&server, &keyed).await;
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["producers"]["messages"], MESSAGES, "{r}");
    assert_eq!(r["settings"]["keys"], 50, "{}", r["settings"]);
    assert_eq!(
        r["settings"]["topic_configs"],
        serde_json::json!([["cleanup.policy", "compact"], ["segment.bytes", "65536"]]),
    );

    let r = bench(&server, &COMPACTED).await;
    assert_eq!(r["producers"]["messages"], 0, "keyless records stored: {r}");
    assert_eq!(r["errors"], MESSAGES, "every keyless record refused: {r}");
}
