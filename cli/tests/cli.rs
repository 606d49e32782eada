//! The built `wharf` binary against a real wharf-server (in-process, ephemeral port, temporary
//! data directory): every command's success path, JSON output parsed back, and the error paths
//! with their exit codes and messages.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use wharf_gateway::config::{Overrides, ServerConfig};

struct Env {
    server: String,
    config_dir: tempfile::TempDir,
    _data: tempfile::TempDir,
    _running: wharf_gateway::Running,
    _rt: tokio::runtime::Runtime,
}

fn start() -> Env {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let overrides = Overrides {
        data_dir: Some(data.path().to_path_buf()),
        native_addr: Some("127.0.0.1:0".into()),
        kafka_addr: Some("127.0.0.1:0".into()),
        ..Overrides::default()
    };
    let running = rt
        .block_on(wharf_gateway::start(
            ServerConfig::load_from(&overrides, &[]).unwrap(),
        ))
        .unwrap();
    Env {
        server: running.native_addr.to_string(),
        config_dir: tempfile::tempdir().unwrap(),
        _data: data,
        _running: running,
        _rt: rt,
    }
}

impl Env {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_wharf"));
        c.args(args)
            .env("WHARF_SERVER", &self.server)
            .env("WHARF_CONFIG_DIR", self.config_dir.path())
            .env_remove("WHARF_USERNAME")
            .env_remove("WHARF_PASSWORD")
            .env_remove("WHARF_TOKEN")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "wharf {args:?} failed ({:?}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command with `--output json` and parses what it printed.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        let text = self.ok(&all);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("wharf {args:?} printed invalid JSON ({e}): {text}"))
    }

    /// Runs a command that must fail; returns (exit code, stderr).
    fn fails(&self, args: &[&str]) -> (i32, String) {
        let out = self.run(args);
        assert!(!out.status.success(), "wharf {args:?} should have failed");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "errors are one line: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{err}"
        );
        (out.status.code().unwrap(), err.trim_end().to_string())
    }
}

#[test]
fn streams_topics_partitions_and_system_commands() {
    let env = start();
    assert!(env.ok(&["ping", "--count", "2"]).contains("pong"));
    assert_eq!(env.json(&["me"])["user_id"], 0);
    let stats = env.json(&["stats"]);
    assert!(stats["server_version"].as_str().unwrap().contains("wharf"));
    // Filled since issue 19 (0 before): process threads, the data directory's disk.
    assert!(stats["threads"].as_u64().unwrap() >= 2, "{stats}");
    assert!(stats["total_disk_space"].as_u64().unwrap() > 0, "{stats}");
    assert!(env.ok(&["stats"]).contains("cpu (machine)"));

    assert_eq!(env.json(&["stream", "create", "shop"])["id"], 0);
    assert!(env.ok(&["s", "create", "other"]).contains("created"));
    let list = env.json(&["stream", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(env.ok(&["stream", "ls"]).starts_with("ID"));
    env.ok(&["stream", "update", "other", "renamed"]);
    assert_eq!(env.json(&["stream", "get", "renamed"])["name"], "renamed");

    let t = env.json(&[
        "topic",
        "create",
        "shop",
        "orders",
        "3",
        "--message-expiry",
        "7 days",
        "--max-size",
        "1 GiB",
        "--durability",
        "fsync",
    ]);
    assert_eq!(t["partitions_count"], 3);
    let got = env.json(&["topic", "get", "shop", "orders"]);
    assert_eq!(got["message_expiry_us"], 7 * 86_400 * 1_000_000u64);
    assert_eq!(got["max_size"], 1u64 << 30);
    assert_eq!(got["durability"], "fsync");
    assert_eq!(got["partitions"].as_array().unwrap().len(), 3);
    let table = env.ok(&["topic", "get", "shop", "orders"]);
    assert!(
        table.contains("7 days") && table.contains("1.0 GiB") && table.contains("fsync"),
        "{table}"
    );
    env.ok(&[
        "topic",
        "update",
        "shop",
        "orders",
        "orders",
        "--message-expiry",
        "2 h",
        "--durability",
        "os",
    ]);
    let got = env.json(&["t", "get", "0", "0"]);
    assert_eq!(got["message_expiry_us"], 2 * 3_600 * 1_000_000u64);
    assert_eq!(got["max_size"], 1u64 << 30, "a limit not given is kept");
    assert_eq!(got["durability"], "os");
    assert_eq!(
        env.json(&["topic", "list", "shop"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    env.ok(&["partition", "create", "shop", "orders", "2"]);
    assert_eq!(
        env.json(&["topic", "get", "shop", "orders"])["partitions_count"],
        5
    );
    env.ok(&["p", "delete", "shop", "orders", "1"]);
    assert_eq!(
        env.json(&["topic", "get", "shop", "orders"])["partitions_count"],
        4
    );

    env.ok(&["message", "send", "shop", "orders", "x", "--partition", "0"]);
    env.ok(&["topic", "purge", "shop", "orders"]);
    env.ok(&["stream", "purge", "shop"]);
    assert_eq!(
        env.json(&["topic", "get", "shop", "orders"])["messages_count"],
        0
    );
    env.ok(&["topic", "delete", "shop", "orders"]);
    env.ok(&["stream", "rm", "renamed"]);
    assert_eq!(env.json(&["stream", "list"]).as_array().unwrap().len(), 1);
    assert!(env.ok(&["--quiet", "stream", "delete", "shop"]).is_empty());
}

#[test]
fn messages_offsets_and_groups() {
    let env = start();
    env.ok(&["stream", "create", "shop"]);
    env.ok(&["topic", "create", "shop", "orders", "2"]);

    // From arguments, with a header; by key; from stdin; from a file.
    env.ok(&[
        "message",
        "send",
        "shop",
        "orders",
        "a",
        "b",
        "--partition",
        "1",
        "--header",
        "source:string:cli",
        "--header",
        "n:u64:7",
    ]);
    env.ok(&["m", "send", "shop", "orders", "keyed", "--key", "user-1"]);
    let mut child = env
        .cmd(&["message", "send", "shop", "orders", "--partition", "1"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"c\nd\n").unwrap();
    assert!(child.wait().unwrap().success());
    let file = env.config_dir.path().join("lines.txt");
    std::fs::write(
        &file,
        (0..2500).map(|i| format!("line {i}\n")).collect::<String>(),
    )
    .unwrap();
    let sent = env.json(&[
        "message",
        "send",
        "shop",
        "orders",
        "--partition",
        "0",
        "--input-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(sent["sent"], 2500);

    let text = env.ok(&[
        "message",
        "poll",
        "shop",
        "orders",
        "1",
        "--first",
        "--count",
        "10",
        "--show-headers",
    ]);
    assert!(
        text.contains("source=cli") && text.contains("n=7"),
        "{text}"
    );
    // JSON polls print one object per message.
    let lines = env.ok(&[
        "--output", "json", "message", "poll", "shop", "orders", "1", "--last", "--count", "2",
    ]);
    let polled: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        polled
            .iter()
            .map(|m| m["payload"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["c", "d"]
    );
    let last = env.ok(&[
        "--quiet", "message", "poll", "shop", "orders", "0", "--last", "--count", "1",
    ]);
    assert_eq!(last.trim(), "line 2499");
    // --next with --auto-commit walks forward and stores the offset.
    let a = env.ok(&[
        "-q",
        "message",
        "poll",
        "shop",
        "orders",
        "0",
        "--next",
        "--consumer",
        "audit",
        "--auto-commit",
        "--count",
        "3",
    ]);
    let b = env.ok(&[
        "-q",
        "message",
        "poll",
        "shop",
        "orders",
        "0",
        "--next",
        "--consumer",
        "audit",
        "--auto-commit",
        "--count",
        "3",
    ]);
    assert_eq!(
        a.lines().collect::<Vec<_>>(),
        ["line 0", "line 1", "line 2"]
    );
    assert_eq!(
        b.lines().collect::<Vec<_>>(),
        ["line 3", "line 4", "line 5"]
    );
    assert_eq!(
        env.json(&["consumer-offset", "get", "audit", "shop", "orders", "0"])["stored_offset"],
        5
    );
    env.ok(&[
        "consumer-offset",
        "set",
        "audit",
        "shop",
        "orders",
        "0",
        "100",
    ]);
    assert_eq!(
        env.json(&["o", "get", "audit", "shop", "orders", "0"])["stored_offset"],
        100
    );

    // --follow prints what arrives until interrupted.
    let mut follow = env
        .cmd(&[
            "-q", "message", "poll", "shop", "orders", "1", "--offset", "5", "--follow",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    env.ok(&[
        "message",
        "send",
        "shop",
        "orders",
        "live",
        "--partition",
        "1",
    ]);
    assert_eq!(lines.next().unwrap().unwrap(), "live");
    Command::new("kill")
        .args(["-INT", &follow.id().to_string()])
        .status()
        .unwrap();
    assert!(
        follow.wait().unwrap().success(),
        "--follow ends cleanly on Ctrl-C"
    );

    // Consumer groups.
    assert_eq!(
        env.json(&["consumer-group", "create", "shop", "orders", "workers"])["name"],
        "workers"
    );
    assert_eq!(
        env.json(&["g", "list", "shop", "orders"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        env.json(&["consumer-group", "get", "shop", "orders", "workers"])["partitions_count"],
        2
    );
    env.ok(&[
        "consumer-offset",
        "set",
        "workers",
        "shop",
        "orders",
        "1",
        "2",
        "--group",
    ]);
    assert_eq!(
        env.json(&[
            "consumer-offset",
            "get",
            "workers",
            "shop",
            "orders",
            "1",
            "--group"
        ])["stored_offset"],
        2
    );
    env.ok(&["consumer-group", "delete", "shop", "orders", "workers"]);
    assert!(env
        .json(&["consumer-group", "list", "shop", "orders"])
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn users_tokens_contexts_and_completions() {
    let env = start();
    assert_eq!(
        env.json(&[
            "user",
            "create",
            "alice",
            "alice-pw",
            "--global",
            "read_streams,poll_messages"
        ])["username"],
        "alice"
    );
    let alice = env.json(&["user", "get", "alice"]);
    assert_eq!(
        alice["permissions"],
        serde_json::json!(["read_streams", "poll_messages"])
    );
    assert_eq!(env.json(&["user", "list"]).as_array().unwrap().len(), 2);
    env.ok(&[
        "user",
        "permissions",
        "alice",
        "read_streams,manage_streams",
    ]);
    assert_eq!(
        env.json(&["u", "get", "alice"])["permissions"],
        serde_json::json!(["manage_streams", "read_streams"])
    );
    env.ok(&["user", "password", "alice", "alice-pw", "new-pw"]);
    assert!(env
        .ok(&["-u", "alice", "-p", "new-pw", "stream", "create", "alices"])
        .contains("created"));

    let token = env
        .ok(&["pat", "create", "deploy", "--expiry", "30 days"])
        .trim()
        .to_string();
    assert_eq!(token.len(), 50);
    let pats = env.json(&["pat", "list"]);
    assert_eq!(pats[0]["name"], "deploy");
    assert!(pats[0]["expiry_at"].as_u64().is_some());
    // Log in with the token through the environment.
    let out = env
        .cmd(&["me"])
        .env("WHARF_TOKEN", &token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.ok(&["pat", "delete", "deploy"]);
    assert!(env.json(&["pat", "list"]).as_array().unwrap().is_empty());
    env.ok(&["user", "delete", "alice"]);

    // Contexts: a profile supplies the server when no flag or variable does.
    let ctx = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_wharf"));
        c.args(args)
            .env("WHARF_CONFIG_DIR", env.config_dir.path())
            .env_remove("WHARF_SERVER");
        c.output().unwrap()
    };
    assert!(ctx(&[
        "--server",
        &env.server,
        "-u",
        "iggy",
        "-p",
        "iggy",
        "context",
        "create",
        "local"
    ])
    .status
    .success());
    assert!(
        ctx(&["--server", "127.0.0.1:1", "context", "create", "nowhere"])
            .status
            .success()
    );
    let listed: Value =
        serde_json::from_slice(&ctx(&["-o", "json", "context", "list"]).stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(
        ctx(&["ping"]).status.success(),
        "the first context became active"
    );
    assert!(ctx(&["context", "use", "nowhere"]).status.success());
    assert_eq!(ctx(&["ping"]).status.code(), Some(3));
    assert!(ctx(&["context", "delete", "nowhere"]).status.success());
    assert!(ctx(&["context", "use", "local"]).status.success());
    assert!(ctx(&["ping"]).status.success());
    assert_eq!(ctx(&["context", "use", "missing"]).status.code(), Some(1));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(env.config_dir.path().join("contexts.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "contexts.json holds passwords: owner-only");
    }

    for shell in ["bash", "zsh", "fish"] {
        let script = env.ok(&["completions", shell]);
        assert!(script.contains("consumer-group"), "{shell} completions");
    }
}

#[test]
fn errors_are_one_clear_line_with_an_exit_code() {
    let env = start();
    let (code, err) = env.fails(&["--server", "127.0.0.1:1", "ping"]);
    assert_eq!(code, 3);
    assert!(
        err.starts_with("error: cannot reach the server at 127.0.0.1:1"),
        "{err}"
    );
    let (code, err) = env.fails(&["-p", "wrong", "ping"]);
    assert_eq!(code, 4);
    assert_eq!(
        err,
        "error: authentication failed: invalid username or password"
    );
    let (code, err) = env.fails(&["stream", "get", "nope"]);
    assert_eq!((code, err.as_str()), (1, "error: stream 'nope' not found"));
    let (code, err) = env.fails(&["topic", "create", "nope", "orders", "1"]);
    assert_eq!((code, err.as_str()), (1, "error: stream 'nope' not found"));
    env.ok(&["stream", "create", "shop"]);
    let (_, err) = env.fails(&["stream", "create", "shop"]);
    assert_eq!(err, "error: stream 'shop' already exists");
    let (code, err) = env.fails(&["topic", "get", "shop", "orders"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "error: topic 'orders' not found in stream 'shop'")
    );
    env.ok(&["topic", "create", "shop", "orders", "1"]);
    let (code, err) = env.fails(&[
        "message", "send", "shop", "orders", "x", "--header", "nokind",
    ]);
    assert_eq!(code, 2);
    assert!(err.starts_with("error: malformed header 'nokind'"), "{err}");
    let (code, _) = env.fails(&[
        "message",
        "send",
        "shop",
        "orders",
        "x",
        "--header",
        "k:u64:notanumber",
    ]);
    assert_eq!(code, 2);
    let (code, err) = env.fails(&[
        "topic",
        "create",
        "shop",
        "t2",
        "1",
        "--max-size",
        "12 parsecs",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("--max-size"), "{err}");
    let (code, err) = env.fails(&["message", "send", "shop", "orders", "x", "--partition", "9"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "error: partition 9 not found in topic 'orders'")
    );
    // A user without rights is told so.
    env.ok(&["user", "create", "bob", "bob-pw"]);
    let (code, err) = env.fails(&["-u", "bob", "-p", "bob-pw", "stream", "create", "mine"]);
    assert_eq!((code, err.as_str()), (1, "error: permission denied"));
    // Bad usage is clap's, exit 2.
    let out = env.run(&["stream", "create"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn topic_configs_on_create_get_and_set() {
    let env = start();
    env.ok(&["stream", "create", "shop"]);
    env.ok(&[
        "topic",
        "create",
        "shop",
        "ledger",
        "1",
        "--cleanup-policy",
        "compact",
        "--config",
        "delete.retention.ms=60000",
    ]);
    let configs = env.json(&["topic", "config", "get", "shop", "ledger"]);
    let get = |configs: &Value, name: &str| {
        configs
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing from {configs}"))
    };
    assert_eq!(get(&configs, "cleanup.policy")["value"], "compact");
    assert_eq!(
        get(&configs, "cleanup.policy")["source"],
        "DYNAMIC_TOPIC_CONFIG"
    );
    assert_eq!(get(&configs, "delete.retention.ms")["value"], "60000");
    assert_eq!(
        get(&configs, "min.cleanable.dirty.ratio")["source"],
        "DEFAULT_CONFIG"
    );
    let table = env.ok(&["topic", "config", "get", "shop", "ledger"]);
    assert!(
        table.starts_with("NAME") && table.contains("compact"),
        "{table}"
    );

    env.ok(&[
        "topic",
        "config",
        "set",
        "shop",
        "ledger",
        "cleanup.policy=compact,delete",
        "min.compaction.lag.ms=10",
        "--reset",
        "delete.retention.ms",
    ]);
    let configs = env.json(&["topic", "config", "get", "shop", "ledger"]);
    assert_eq!(get(&configs, "cleanup.policy")["value"], "compact,delete");
    assert_eq!(get(&configs, "min.compaction.lag.ms")["value"], "10");
    assert_eq!(get(&configs, "delete.retention.ms")["value"], "86400000");

    // Refused configs: exit code 1, the configs named, nothing changed.
    let (code, err) = env.fails(&[
        "topic",
        "config",
        "set",
        "shop",
        "ledger",
        "cleanup.policy=delete",
        "min.cleanable.dirty.ratio=7",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("min.cleanable.dirty.ratio=7"), "{err}");
    let configs = env.json(&["topic", "config", "get", "shop", "ledger"]);
    assert_eq!(get(&configs, "cleanup.policy")["value"], "compact,delete");
    let (code, _) = env.fails(&["topic", "config", "set", "shop", "ledger", "novalue"]);
    assert_eq!(code, 2);
    let (code, _) = env.fails(&["topic", "config", "set", "shop", "ledger"]);
    assert_eq!(code, 2);

    // A create whose configs are refused leaves no topic behind.
    let (code, _) = env.fails(&[
        "topic",
        "create",
        "shop",
        "bad",
        "1",
        "--config",
        "max.compaction.lag.ms=0",
    ]);
    assert_eq!(code, 1);
    assert_eq!(
        env.json(&["topic", "list", "shop"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let out = env.run(&[
        "topic",
        "create",
        "shop",
        "bad",
        "1",
        "--cleanup-policy",
        "shred",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown policy is a usage error"
    );
}

/// Produces 5 and 3 messages to the two partitions of shop/orders and stores the group
/// `workers`' last consumed offsets 1 and 2, through the SDK: committed next offsets 2 and 3,
/// lags 3 and 0.
fn lagging_group(env: &Env) -> wharf_sdk::Client {
    use wharf_sdk::{Client, ClientConfig, ConsumerKind, Identifier, Message, Partitioning};
    env.ok(&["stream", "create", "shop"]);
    env.ok(&["topic", "create", "shop", "orders", "2"]);
    env.ok(&["consumer-group", "create", "shop", "orders", "workers"]);
    env._rt.block_on(async {
        let mut config = ClientConfig::new(env.server.clone()).with_password("iggy", "iggy");
        config.heartbeat = None;
        let client = Client::connect(config).await.unwrap();
        let (s, t) = (
            Identifier::Name("shop".into()),
            Identifier::Name("orders".into()),
        );
        for (partition, count, last_consumed) in [(0u32, 5usize, 1u64), (1, 3, 2)] {
            let messages: Vec<Message> =
                (0..count).map(|i| Message::new(format!("m{i}"))).collect();
            client
                .send_messages(&s, &t, &Partitioning::PartitionId(partition), &messages)
                .await
                .unwrap();
            client
                .store_consumer_offset(
                    &ConsumerKind::Group(Identifier::Name("workers".into())),
                    &s,
                    &t,
                    Some(partition),
                    last_consumed,
                )
                .await
                .unwrap();
        }
        client
    })
}

fn lag_row(partition: u32, committed: u64, end_offset: u64, lag: u64) -> Value {
    serde_json::json!({"group": "workers", "stream": "shop", "topic": "shop.orders",
        "partition": partition, "committed": committed, "end_offset": end_offset, "lag": lag})
}

/// `wharf consumer-group lag`: exact rows in JSON and as a table, one group or all; a group
/// with nothing committed is an error (exit 1), not an empty table.
#[test]
fn consumer_group_lag_prints_exact_positions() {
    let env = start();
    let _client = lagging_group(&env);
    let all = env.json(&["consumer-group", "lag"]);
    assert_eq!(
        all,
        serde_json::json!([lag_row(0, 2, 5, 3), lag_row(1, 3, 3, 0)])
    );
    assert_eq!(env.json(&["g", "lag", "workers"]), all);
    let text = env.ok(&["consumer-group", "lag", "workers"]);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        vec![
            vec!["GROUP", "TOPIC", "PARTITION", "COMMITTED", "END", "LAG"],
            vec!["workers", "shop.orders", "0", "2", "5", "3"],
            vec!["workers", "shop.orders", "1", "3", "3", "0"],
        ]
    );
    let (code, err) = env.fails(&["consumer-group", "lag", "nobody"]);
    assert_eq!(code, 1);
    assert!(err.contains("'nobody' has no committed offsets"), "{err}");
}

/// `wharf top --iterations 2`: two frames, then exit 0. Frame 1 has totals only; frame 2 has
/// rates, exactly 0 here since nothing is produced between the frames; the totals are the
/// server's (as its snapshot reports them); the lag rows are the largest first and cut at
/// --limit.
#[test]
fn top_draws_the_asked_number_of_frames() {
    let env = start();
    let client = lagging_group(&env);
    let out = env.ok(&[
        "--output",
        "json",
        "top",
        "--iterations",
        "2",
        "--interval",
        "100ms",
    ]);
    let frames: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(frames.len(), 2, "{out}");
    let server = env._rt.block_on(client.metrics_snapshot(10)).unwrap();
    let expected_totals = &server.topics[0];
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f["frame"], i as u64 + 1);
        assert_eq!(
            f["lag"],
            serde_json::json!([lag_row(0, 2, 5, 3), lag_row(1, 3, 3, 0)])
        );
        let topics = f["topics"].as_array().unwrap();
        assert_eq!(topics.len(), 1, "{f}");
        assert_eq!(topics[0]["topic"], "shop.orders");
        assert_eq!(topics[0]["messages_in"], expected_totals.messages_in);
        assert_eq!(topics[0]["bytes_in"], expected_totals.bytes_in);
        assert!(f["process"]["resident_bytes"].as_u64().unwrap() > 0, "{f}");
    }
    assert!(frames[0]["topics"][0]["messages_in_per_s"].is_null());
    assert!(frames[0]["process"]["cpu_percent"].is_null());
    assert_eq!(frames[1]["topics"][0]["messages_in_per_s"], 0.0);
    assert_eq!(frames[1]["topics"][0]["bytes_out_per_s"], 0.0);
    assert!(frames[1]["seconds"].as_f64().unwrap() > 0.0);

    // For people: frames one after another (no terminal), the lag cut at --limit 1.
    let text = env.ok(&[
        "top",
        "--iterations",
        "2",
        "--interval",
        "100ms",
        "--limit",
        "1",
    ]);
    let heads: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("wharf top - "))
        .collect();
    assert_eq!(heads.len(), 2, "{text}");
    assert!(heads[1].contains("frame 2/2 every 100 ms"), "{}", heads[1]);
    let lag_lines: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.starts_with("workers"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lag_lines,
        vec![vec!["workers", "shop.orders", "0", "2", "5", "3"]; 2]
    );
    assert!(!text.contains('\x1b'), "no terminal, no escape codes");

    let (code, err) = env.fails(&["top", "--interval", "0ms", "--iterations", "1"]);
    assert_eq!(code, 2, "{err}");
}
