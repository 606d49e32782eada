//! wharf-bench's transactional Kafka producer (`--transactional-id`, `--commit-interval`)
//! against a real server: every message is counted once its transaction committed, every
//! producer commits several transactions, and a `read_committed` consumer (librdkafka's
//! default) receives every one of them; the idempotent mode it is compared with counts the
//! same. Checks counts, never speed.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use compat_tests::TestServer;

const LIMIT: Duration = Duration::from_secs(180);
const MESSAGES: u64 = 3000;
/// Paced at this rate, the 3000 messages take at least 150 ms to send, so with a 20 ms commit
/// interval every producer commits at least one transaction before its tail.
const RATE: &str = "20000";
const COMMIT_INTERVAL: &str = "20 ms";

/// Runs `wharf-bench` over Kafka and returns its JSON report.
async fn bench(server: &TestServer, args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let out = tokio::time::timeout(
        LIMIT,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_wharf-bench"))
            .args(args)
            .args(["--protocol", "kafka", "--server"])
            .arg(server.kafka_addr.to_string())
            .args(["--messages", &MESSAGES.to_string(), "--message-size", "100"])
            .args(["--batch", "100", "--rate", RATE, "--quiet", "--json"])
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
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["producers"]["messages"], MESSAGES, "{report}");
    assert_eq!(report["producers"]["bytes"], MESSAGES * 100, "{report}");
    report
}

/// Checks a transactional run's transactions: none aborted, each producer committed at least
/// two (one when its commit interval passed mid-run, and its tail).
fn check_transactions(r: &serde_json::Value, producers: u64) {
    assert_eq!(r["settings"]["idempotent"], true, "{}", r["settings"]);
    assert!(r["settings"]["transactions"]["id"].is_string(), "{r}");
    assert_eq!(r["transactions"]["aborted"], 0, "{r}");
    let committed = r["transactions"]["committed"].as_u64().unwrap();
    assert!(committed >= 2 * producers, "{committed} transactions: {r}");
    let actors = r["actors"].as_array().unwrap();
    let producing: Vec<_> = actors.iter().filter(|a| a["role"] == "producer").collect();
    assert_eq!(producing.len() as u64, producers, "{r}");
    for a in producing {
        assert_eq!(a["latency"]["kind"], "commit", "{a}");
        assert!(a["transactions"]["committed"].as_u64().unwrap() >= 2, "{a}");
        assert_eq!(
            a["latency"]["samples"], a["messages"],
            "one latency per message: {a}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_producers_count_committed_messages() {
    let server = TestServer::start().await;

    // Two producers: each needs its own transactional.id, or one would fence the other.
    let r = bench(
        &server,
        &[
            "pinned-producer",
            "--producers",
            "2",
            "--transactional-id",
            "bench-test",
            "--commit-interval",
            COMMIT_INTERVAL,
            "--warmup",
            "100 ms",
        ],
    )
    .await;
    check_transactions(&r, 2);
    assert_eq!(r["latency"]["kind"], "commit");

    // Consumers (read_committed) receive every committed message, once.
    let r = bench(
        &server,
        &[
            "end-to-end",
            "--transactional-id",
            "bench-test-e2e",
            "--commit-interval",
            COMMIT_INTERVAL,
        ],
    )
    .await;
    check_transactions(&r, 1);
    assert_eq!(r["consumers"]["messages"], MESSAGES, "{r}");

    // The idempotent mode it is compared with: the same counts, no transactions.
    let r = bench(&server, &["pinned-producer", "--idempotent"]).await;
    assert_eq!(r["settings"]["idempotent"], true);
    assert!(r["settings"]["transactions"].is_null(), "{}", r["settings"]);
    assert!(r.get("transactions").is_none(), "{r}");
    assert_eq!(r["latency"]["kind"], "send");
}
