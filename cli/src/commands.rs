//! Running commands: connect, call the server through wharf-sdk, print the result, and turn
//! failures into one clear line with an exit code.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wharf_sdk::units::{format_duration, format_size, parse_duration, parse_size};
use wharf_sdk::wire::{PartitionLagWire, PartitionWire, TopicWire, WirePermissions};
use wharf_sdk::{
    describe, Client, ClientConfig, ConsumerKind, Durability, Error, HeaderValue, Identifier,
    Message, Partitioning, PollingStrategy, TlsConfig, TlsError, TopicOptions,
};

use crate::args::*;
use crate::context::{Context, Contexts};
use crate::output::{json, properties, timestamp, Table};

/// A failure to report: one line, and the process exit code.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub code: i32,
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            code: 2,
        }
    }
    fn refused(message: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            code: 1,
        }
    }
}

/// Writes a line to stdout; a closed pipe (`wharf ... | head`) ends the program quietly.
pub(crate) fn emit(line: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{line}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

/// What a command was about, so errors can name it.
#[derive(Debug, Default, Clone)]
struct About<'a> {
    stream: Option<&'a str>,
    topic: Option<&'a str>,
    partition: Option<u32>,
    group: Option<&'a str>,
    user: Option<&'a str>,
    server: Option<&'a str>,
}

fn quoted(s: &str) -> String {
    match s.parse::<u32>() {
        Ok(_) => s.to_string(),
        Err(_) => format!("'{s}'"),
    }
}

fn explain(e: Error, a: &About<'_>) -> CliError {
    use wharf_sdk::Error as E;
    let s = a.stream.map(quoted).unwrap_or_default();
    let t = a.topic.map(quoted).unwrap_or_default();
    let g = a.group.map(quoted).unwrap_or_default();
    let code = match &e {
        E::Server { code } => *code,
        E::Disconnected(m) => {
            return CliError {
                message: format!(
                    "cannot reach the server at {}: {m}",
                    a.server.unwrap_or("?")
                ),
                code: 3,
            }
        }
        E::Timeout(d) => {
            return CliError {
                message: format!(
                    "the server at {} did not answer within {d:?}",
                    a.server.unwrap_or("?")
                ),
                code: 3,
            }
        }
        E::Tls(tls) => {
            let server = a.server.unwrap_or("?");
            return match tls {
                // Files or flags to fix on this side.
                TlsError::CaFile { .. }
                | TlsError::SystemTrustStore(_)
                | TlsError::ClientCertificate { .. }
                | TlsError::InvalidDomain(_) => CliError::usage(format!("TLS: {tls}")),
                TlsError::ClientCertificateRefused(_) => CliError {
                    message: format!("authentication failed: TLS: {tls}"),
                    code: 4,
                },
                _ => CliError {
                    message: format!("cannot connect securely to {server}: {tls}"),
                    code: 3,
                },
            };
        }
        other => return CliError::refused(other.to_string()),
    };
    let message = match code {
        1009 | 1010 => format!("stream {s} not found"),
        2010 | 2011 => format!("topic {t} not found in stream {s}"),
        3007 => format!(
            "partition {} not found in topic {t}",
            a.partition.unwrap_or(0)
        ),
        1012 => format!("stream {s} already exists"),
        2013 => format!("topic {t} already exists in stream {s}"),
        5000 | 5003 => format!("consumer group {g} not found in topic {t}"),
        5004 => format!("consumer group {g} already exists in topic {t}"),
        20 if a.user.is_some() => {
            format!("user {} not found", a.user.map(quoted).unwrap_or_default())
        }
        46 => format!(
            "user {} already exists",
            a.user.map(quoted).unwrap_or_default()
        ),
        40 | 42 | 53 | 54 => {
            return CliError {
                message: format!("authentication failed: {}", describe(code)),
                code: 4,
            }
        }
        41 => "permission denied".to_string(),
        3021 => "no offset stored".to_string(),
        _ => format!("the server refused: {} (error {code})", describe(code)),
    };
    CliError::refused(message)
}

fn ident(s: &str) -> Identifier {
    match s.parse::<u32>() {
        Ok(n) => Identifier::Numeric(n),
        Err(_) => Identifier::Name(s.to_string()),
    }
}

/// The connection settings: flags and environment over the active context over defaults.
fn settings(cli: &Cli) -> Result<ClientConfig, CliError> {
    let contexts = Contexts::load().map_err(CliError::usage)?;
    let ctx = contexts.current().cloned().unwrap_or_default();
    let tls = tls_settings(&cli.tls, &ctx);
    let server = cli
        .server
        .clone()
        .or(ctx.server)
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    let mut config = ClientConfig::new(server);
    config.tls = tls;
    config.reconnect_retries = Some(0);
    config.heartbeat = None;
    config.request_timeout = Duration::from_secs(30);
    if let Some(token) = cli
        .token
        .clone()
        .or(ctx.token)
        .filter(|_| cli.username.is_none())
    {
        return Ok(config.with_token(&token));
    }
    let username = cli
        .username
        .clone()
        .or(ctx.username)
        .unwrap_or_else(|| "iggy".into());
    let password = cli
        .password
        .clone()
        .or(ctx.password)
        .unwrap_or_else(|| "iggy".into());
    Ok(config.with_password(&username, &password))
}

/// What the flags (and environment) and the context say about TLS: on with `--tls` or any of
/// the file and domain flags, or when the context says so; `--no-tls` turns it off.
fn tls_settings(flags: &TlsArgs, ctx: &Context) -> Option<TlsConfig> {
    let from_flags =
        flags.tls_ca_file.is_some() || flags.tls_domain.is_some() || flags.tls_cert_file.is_some();
    if flags.no_tls || !(flags.tls || from_flags || ctx.tls) {
        return None;
    }
    let path = |s: &Option<String>| s.as_ref().map(std::path::PathBuf::from);
    let client_certificate = match (&flags.tls_cert_file, &flags.tls_key_file) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        _ => path(&ctx.tls_cert_file).zip(path(&ctx.tls_key_file)),
    };
    let mut tls = TlsConfig {
        ca_file: flags.tls_ca_file.clone().or_else(|| path(&ctx.tls_ca_file)),
        domain: flags.tls_domain.clone().or_else(|| ctx.tls_domain.clone()),
        client_certificate: None,
    };
    if let Some((cert, key)) = client_certificate {
        tls = tls.client_certificate(cert, key);
    }
    Some(tls)
}

struct Out {
    format: Output,
    quiet: bool,
}

impl Out {
    /// Prints `value` as JSON, or `table()` for people; nothing with --quiet.
    fn show(&self, value: Value, table: impl FnOnce() -> String) {
        if self.quiet {
            return;
        }
        match self.format {
            Output::Json => emit(&json(&value)),
            Output::Table => emit(&table()),
        }
    }

    /// A confirmation line (or `{"ok": true, ...}` in JSON).
    fn done(&self, value: Value, line: String) {
        self.show(value, || line);
    }
}

fn topic_limits(l: &TopicLimits) -> Result<TopicOptions, CliError> {
    Ok(TopicOptions {
        message_expiry: l
            .message_expiry
            .as_deref()
            .map(|d| parse_duration(d).map(|d| d.as_micros() as u64))
            .transpose()
            .map_err(|e| CliError::usage(format!("--message-expiry: {e}")))?,
        max_size: l
            .max_size
            .as_deref()
            .map(parse_size)
            .transpose()
            .map_err(|e| CliError::usage(format!("--max-size: {e}")))?,
    })
}

/// `NAME=VALUE` split at its first `=` (values may hold `=`; an empty value is a value).
fn name_value(text: &str, what: &str) -> Result<(String, String), CliError> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.to_string()))
        }
        _ => Err(CliError::usage(format!(
            "{what}: '{text}' is not NAME=VALUE"
        ))),
    }
}

/// The topic configs a create or update names: `--cleanup-policy` and each `--config`.
fn topic_configs(l: &TopicLimits) -> Result<Vec<(String, Option<String>)>, CliError> {
    let mut out = Vec::new();
    if let Some(p) = &l.cleanup_policy {
        out.push(("cleanup.policy".to_string(), Some(p.clone())));
    }
    for c in &l.configs {
        let (name, value) = name_value(c, "--config")?;
        out.push((name, Some(value)));
    }
    Ok(out)
}

/// Sets `configs` on a topic in one call (the server applies all or none).
async fn set_configs(
    client: &Client,
    stream: &Identifier,
    topic: &Identifier,
    configs: &[(String, Option<String>)],
    a: &About<'_>,
) -> Result<(), CliError> {
    if configs.is_empty() {
        return Ok(());
    }
    let changes: Vec<(&str, Option<&str>)> = configs
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_deref()))
        .collect();
    client
        .set_topic_config(stream, topic, &changes)
        .await
        .map_err(|e| match e.server_code() {
            // InvalidConfiguration: name the configs, the server's answer is only a code.
            Some(2) => CliError::refused(format!(
                "the server refused the topic configs {}: an unknown name or an invalid value \
                 (names and values as Kafka's topic configs)",
                configs
                    .iter()
                    .map(|(n, v)| match v {
                        Some(v) => format!("{n}={v}"),
                        None => format!("{n} (reset)"),
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
            _ => explain(e, a),
        })
}

fn durability(d: Option<DurabilityArg>) -> Option<Durability> {
    d.map(|d| match d {
        DurabilityArg::Os => Durability::Os,
        DurabilityArg::Fsync => Durability::Fsync,
    })
}

fn expiry_text(us: u64) -> String {
    if us == 0 || us == u64::MAX {
        "never".into()
    } else {
        format_duration(Duration::from_micros(us))
    }
}

fn max_size_text(b: u64) -> String {
    if b == 0 || b == u64::MAX {
        "unlimited".into()
    } else {
        format_size(b)
    }
}

fn topic_json(
    t: &TopicWire,
    partitions: Option<&[PartitionWire]>,
    durability: Option<Option<Durability>>,
) -> Value {
    let mut v = json!({
        "id": t.id, "name": t.name, "created_at": t.created_at, "partitions_count": t.partitions_count,
        "message_expiry_us": (t.message_expiry != 0 && t.message_expiry != u64::MAX).then_some(t.message_expiry),
        "max_size": (t.max_topic_size != 0 && t.max_topic_size != u64::MAX).then_some(t.max_topic_size),
        "size_bytes": t.size_bytes, "messages_count": t.messages_count,
    });
    if let Some(ps) = partitions {
        v["partitions"] = ps
            .iter()
            .map(|p| json!({"id": p.id, "segments_count": p.segments_count, "current_offset": p.current_offset, "size_bytes": p.size_bytes, "messages_count": p.messages_count}))
            .collect();
    }
    if let Some(d) = durability {
        v["durability"] = json!(match d {
            None => "server default",
            Some(Durability::Os) => "os",
            Some(Durability::Fsync) => "fsync",
        });
    }
    v
}

/// Parses `KEY:KIND:VALUE`.
fn header(spec: &str) -> Result<(String, HeaderValue), CliError> {
    let bad = |why: &str| {
        CliError::usage(format!(
            "malformed header '{spec}': {why} (expected KEY:KIND:VALUE, e.g. source:string:cli)"
        ))
    };
    let mut parts = spec.splitn(3, ':');
    let (Some(key), Some(kind), Some(value)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("missing parts"));
    };
    if key.is_empty() {
        return Err(bad("empty key"));
    }
    let v = match kind {
        "raw" => HeaderValue::Raw(value.as_bytes().to_vec()),
        "string" | "str" => HeaderValue::String(value.into()),
        "bool" => HeaderValue::Bool(value.parse().map_err(|_| bad("not true or false"))?),
        "u32" => HeaderValue::U32(value.parse().map_err(|_| bad("not a u32"))?),
        "u64" => HeaderValue::U64(value.parse().map_err(|_| bad("not a u64"))?),
        "i64" => HeaderValue::I64(value.parse().map_err(|_| bad("not an i64"))?),
        "f64" => HeaderValue::F64(value.parse().map_err(|_| bad("not an f64"))?),
        _ => return Err(bad("unknown kind")),
    };
    Ok((key.to_string(), v))
}

fn header_text(v: &HeaderValue) -> String {
    match v {
        HeaderValue::Raw(b) => format!("{b:?}"),
        HeaderValue::String(s) => s.clone(),
        HeaderValue::Bool(b) => b.to_string(),
        HeaderValue::U32(n) => n.to_string(),
        HeaderValue::U64(n) => n.to_string(),
        HeaderValue::I64(n) => n.to_string(),
        HeaderValue::F64(n) => n.to_string(),
    }
}

fn header_json(v: &HeaderValue) -> Value {
    match v {
        HeaderValue::Raw(b) => json!(b),
        HeaderValue::String(s) => json!(s),
        HeaderValue::Bool(b) => json!(b),
        HeaderValue::U32(n) => json!(n),
        HeaderValue::U64(n) => json!(n),
        HeaderValue::I64(n) => json!(n),
        HeaderValue::F64(n) => json!(n),
    }
}

const PERMISSIONS: [&str; 10] = [
    "manage_servers",
    "read_servers",
    "manage_users",
    "read_users",
    "manage_streams",
    "read_streams",
    "manage_topics",
    "read_topics",
    "poll_messages",
    "send_messages",
];

fn permissions(list: &str) -> Result<WirePermissions, CliError> {
    let mut p = WirePermissions::default();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let i = PERMISSIONS.iter().position(|n| *n == name).ok_or_else(|| {
            CliError::usage(format!(
                "unknown permission '{name}'; known: {}",
                PERMISSIONS.join(", ")
            ))
        })?;
        p.global[i] = true;
    }
    Ok(p)
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    let out = Out {
        format: cli.output,
        quiet: cli.quiet,
    };
    // Commands that need no server.
    match &cli.command {
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "wharf", &mut std::io::stdout());
            return Ok(());
        }
        Command::Context(c) => return context(&cli, c, &out),
        _ => {}
    }
    let config = settings(&cli)?;
    let server = config.server.clone();
    let conn = About {
        server: Some(&server),
        ..About::default()
    };
    let client = Client::connect(config)
        .await
        .map_err(|e| explain(e, &conn))?;
    match &cli.command {
        Command::Ping { count } => {
            for i in 0..*count {
                let t = Instant::now();
                client.ping().await.map_err(|e| explain(e, &conn))?;
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                out.done(
                    json!({"seq": i + 1, "time_ms": ms}),
                    format!("pong from {server}: seq {} time {ms:.2} ms", i + 1),
                );
            }
        }
        Command::Me => {
            let me = client.get_me().await.map_err(|e| explain(e, &conn))?;
            out.show(
                json!({"client_id": me.client_id, "user_id": me.user_id, "address": me.address, "consumer_groups": me.groups_count}),
                || {
                    properties(&[
                        ("client id", me.client_id.to_string()),
                        ("user id", me.user_id.map_or("-".into(), |u| u.to_string())),
                        ("address", me.address.clone()),
                        ("transport", "TCP".into()),
                        ("consumer groups", me.groups_count.to_string()),
                    ])
                },
            );
        }
        Command::Stats => {
            let s = client.get_stats().await.map_err(|e| explain(e, &conn))?;
            out.show(
                json!({"streams": s.streams_count, "topics": s.topics_count, "partitions": s.partitions_count, "segments": s.segments_count,
                       "messages": s.messages_count, "messages_size_bytes": s.messages_size_bytes, "clients": s.clients_count,
                       "consumer_groups": s.consumer_groups_count, "memory_usage": s.memory_usage, "run_time_us": s.run_time,
                       "server_version": s.server_version, "hostname": s.hostname,
                       "cpu_usage": s.cpu_usage, "total_cpu_usage": s.total_cpu_usage, "threads": s.threads_count,
                       "read_bytes": s.read_bytes, "written_bytes": s.written_bytes,
                       "free_disk_space": s.free_disk_space, "total_disk_space": s.total_disk_space}),
                || {
                    properties(&[
                        ("server version", s.server_version.clone()),
                        ("hostname", s.hostname.clone()),
                        ("up for", format_duration(Duration::from_secs(s.run_time / 1_000_000))),
                        ("cpu (process, of one core)", format!("{:.1} %", s.cpu_usage)),
                        ("cpu (machine)", format!("{:.1} %", s.total_cpu_usage)),
                        ("memory", format_size(s.memory_usage)),
                        ("threads", s.threads_count.to_string()),
                        ("disk read / written", format!("{} / {}", format_size(s.read_bytes), format_size(s.written_bytes))),
                        ("disk free / total", format!("{} / {}", format_size(s.free_disk_space), format_size(s.total_disk_space))),
                        ("streams", s.streams_count.to_string()),
                        ("topics", s.topics_count.to_string()),
                        ("partitions", s.partitions_count.to_string()),
                        ("segments", s.segments_count.to_string()),
                        ("messages", s.messages_count.to_string()),
                        ("messages size", format_size(s.messages_size_bytes)),
                        ("clients", s.clients_count.to_string()),
                        ("consumer groups", s.consumer_groups_count.to_string()),
                    ])
                },
            );
        }
        Command::Stream(c) => stream(&client, c, &out, &conn).await?,
        Command::Topic(c) => topic(&client, c, &out, &conn).await?,
        Command::Partition(c) => match c {
            PartitionCmd::Create {
                stream,
                topic,
                count,
            }
            | PartitionCmd::Delete {
                stream,
                topic,
                count,
            } => {
                let a = About {
                    stream: Some(stream),
                    topic: Some(topic),
                    ..conn.clone()
                };
                let create = matches!(c, PartitionCmd::Create { .. });
                let r = if create {
                    client
                        .create_partitions(&ident(stream), &ident(topic), *count)
                        .await
                } else {
                    client
                        .delete_partitions(&ident(stream), &ident(topic), *count)
                        .await
                };
                r.map_err(|e| explain(e, &a))?;
                let verb = if create { "added" } else { "removed" };
                out.done(
                    json!({"ok": true, verb: count}),
                    format!(
                        "{verb} {count} partition(s) of topic {} in stream {}",
                        quoted(topic),
                        quoted(stream)
                    ),
                );
            }
        },
        Command::Message(c) => message(&client, c, &out, &conn).await?,
        Command::ConsumerGroup(c) => group(&client, c, &out, &conn).await?,
        Command::Top {
            interval,
            iterations,
            limit,
        } => {
            let every = parse_duration(interval)
                .map_err(|e| CliError::usage(format!("--interval: {e}")))?;
            if every.is_zero() {
                return Err(CliError::usage("--interval: must be more than 0"));
            }
            let view = crate::top::View {
                server: &server,
                every,
                iterations: *iterations,
                limit: *limit,
                json: out.format == Output::Json,
            };
            crate::top::run(&client, &view)
                .await
                .map_err(|e| explain(e, &conn))?;
        }
        Command::ConsumerOffset(c) => offset(&client, c, &out, &conn).await?,
        Command::User(c) => user(&client, c, &out, &conn).await?,
        Command::Pat(c) => pat(&client, c, &out, &conn).await?,
        Command::Completions { .. } | Command::Context(_) => {}
    }
    Ok(())
}

/// A file named in a context, made absolute so the context works from any directory.
fn absolute(file: &Option<std::path::PathBuf>) -> Option<String> {
    file.as_ref().map(|f| {
        std::path::absolute(f)
            .unwrap_or_else(|_| f.clone())
            .display()
            .to_string()
    })
}

fn context(cli: &Cli, c: &ContextCmd, out: &Out) -> Result<(), CliError> {
    let mut all = Contexts::load().map_err(CliError::usage)?;
    match c {
        ContextCmd::List => {
            let rows: Vec<Value> = all
                .contexts
                .iter()
                .map(|(n, c)| json!({"name": n, "active": all.active.as_deref() == Some(n.as_str()), "server": c.server, "username": c.username}))
                .collect();
            out.show(json!(rows), || {
                let mut t = Table::new(&["ACTIVE", "NAME", "SERVER", "USERNAME"]);
                for (n, c) in &all.contexts {
                    let active = if all.active.as_deref() == Some(n.as_str()) {
                        "*"
                    } else {
                        ""
                    };
                    t.row(vec![
                        active.into(),
                        n.clone(),
                        c.server.clone().unwrap_or_default(),
                        c.username.clone().unwrap_or_default(),
                    ]);
                }
                t.render()
            });
        }
        ContextCmd::Use { name } => {
            if !all.contexts.contains_key(name) {
                return Err(CliError::refused(format!("context '{name}' not found")));
            }
            all.active = Some(name.clone());
            all.save().map_err(CliError::refused)?;
            out.done(
                json!({"ok": true, "active": name}),
                format!("now using context '{name}'"),
            );
        }
        ContextCmd::Create { name } => {
            all.contexts.insert(
                name.clone(),
                Context {
                    server: cli.server.clone(),
                    username: cli.username.clone(),
                    password: cli.password.clone(),
                    token: cli.token.clone(),
                    tls: tls_settings(&cli.tls, &Context::default()).is_some(),
                    tls_ca_file: absolute(&cli.tls.tls_ca_file),
                    tls_domain: cli.tls.tls_domain.clone(),
                    tls_cert_file: absolute(&cli.tls.tls_cert_file),
                    tls_key_file: absolute(&cli.tls.tls_key_file),
                },
            );
            if all.active.is_none() {
                all.active = Some(name.clone());
            }
            all.save().map_err(CliError::refused)?;
            out.done(
                json!({"ok": true, "created": name}),
                format!("context '{name}' saved"),
            );
        }
        ContextCmd::Delete { name } => {
            if all.contexts.remove(name).is_none() {
                return Err(CliError::refused(format!("context '{name}' not found")));
            }
            if all.active.as_deref() == Some(name.as_str()) {
                all.active = None;
            }
            all.save().map_err(CliError::refused)?;
            out.done(
                json!({"ok": true, "deleted": name}),
                format!("context '{name}' deleted"),
            );
        }
    }
    Ok(())
}

async fn stream(
    client: &Client,
    c: &StreamCmd,
    out: &Out,
    conn: &About<'_>,
) -> Result<(), CliError> {
    match c {
        StreamCmd::Create { name } => {
            let a = About {
                stream: Some(name),
                ..conn.clone()
            };
            let s = client
                .create_stream(name)
                .await
                .map_err(|e| explain(e, &a))?;
            out.done(
                json!({"id": s.id, "name": s.name}),
                format!("stream '{}' created with id {}", s.name, s.id),
            );
        }
        StreamCmd::List => {
            let streams = client.get_streams().await.map_err(|e| explain(e, conn))?;
            let rows: Vec<Value> = streams
                .iter()
                .map(|s| json!({"id": s.id, "name": s.name, "created_at": s.created_at, "topics_count": s.topics_count, "size_bytes": s.size_bytes, "messages_count": s.messages_count}))
                .collect();
            out.show(json!(rows), || {
                let mut t = Table::new(&["ID", "NAME", "TOPICS", "MESSAGES", "SIZE", "CREATED"]);
                for s in &streams {
                    t.row(vec![
                        s.id.to_string(),
                        s.name.clone(),
                        s.topics_count.to_string(),
                        s.messages_count.to_string(),
                        format_size(s.size_bytes),
                        timestamp(s.created_at),
                    ]);
                }
                t.render()
            });
        }
        StreamCmd::Get { stream } => {
            let a = About {
                stream: Some(stream),
                ..conn.clone()
            };
            let (s, topics) = client
                .get_stream(&ident(stream))
                .await
                .map_err(|e| explain(e, &a))?
                .ok_or_else(|| CliError::refused(format!("stream {} not found", quoted(stream))))?;
            out.show(
                json!({"id": s.id, "name": s.name, "created_at": s.created_at, "size_bytes": s.size_bytes, "messages_count": s.messages_count,
                       "topics": topics.iter().map(|t| topic_json(t, None, None)).collect::<Vec<_>>()}),
                || {
                    let mut text = properties(&[
                        ("id", s.id.to_string()),
                        ("name", s.name.clone()),
                        ("created", timestamp(s.created_at)),
                        ("size", format_size(s.size_bytes)),
                        ("messages", s.messages_count.to_string()),
                        ("topics", s.topics_count.to_string()),
                    ]);
                    if !topics.is_empty() {
                        let mut t = Table::new(&["TOPIC ID", "NAME", "PARTITIONS", "MESSAGES", "SIZE"]);
                        for tp in &topics {
                            t.row(vec![tp.id.to_string(), tp.name.clone(), tp.partitions_count.to_string(), tp.messages_count.to_string(), format_size(tp.size_bytes)]);
                        }
                        text.push_str("\n\n");
                        text.push_str(&t.render());
                    }
                    text
                },
            );
        }
        StreamCmd::Update { stream, name } => {
            let a = About {
                stream: Some(stream),
                ..conn.clone()
            };
            client
                .update_stream(&ident(stream), name)
                .await
                .map_err(|e| explain(e, &a))?;
            out.done(
                json!({"ok": true}),
                format!("stream {} renamed to '{name}'", quoted(stream)),
            );
        }
        StreamCmd::Delete { stream } => {
            let a = About {
                stream: Some(stream),
                ..conn.clone()
            };
            client
                .delete_stream(&ident(stream))
                .await
                .map_err(|e| explain(e, &a))?;
            out.done(
                json!({"ok": true}),
                format!("stream {} deleted", quoted(stream)),
            );
        }
        StreamCmd::Purge { stream } => {
            let a = About {
                stream: Some(stream),
                ..conn.clone()
            };
            client
                .purge_stream(&ident(stream))
                .await
                .map_err(|e| explain(e, &a))?;
            out.done(
                json!({"ok": true}),
                format!("stream {} purged", quoted(stream)),
            );
        }
    }
    Ok(())
}

async fn topic(client: &Client, c: &TopicCmd, out: &Out, conn: &About<'_>) -> Result<(), CliError> {
    match c {
        TopicCmd::Create {
            stream,
            name,
            partitions,
            limits,
        } => {
            let a = About {
                stream: Some(stream),
                topic: Some(name),
                ..conn.clone()
            };
            let options = topic_limits(limits)?;
            let configs = topic_configs(limits)?;
            let (t, _) = client
                .create_topic(&ident(stream), name, *partitions, options)
                .await
                .map_err(|e| explain(e, &a))?;
            if let Some(d) = durability(limits.durability) {
                client
                    .set_topic_durability(&ident(stream), &Identifier::Numeric(t.id), Some(d))
                    .await
                    .map_err(|e| explain(e, &a))?;
            }
            let id = Identifier::Numeric(t.id);
            if let Err(e) = set_configs(client, &ident(stream), &id, &configs, &a).await {
                // The native create carries no configs: a topic whose configs were refused is
                // removed again, so a failed create leaves nothing behind.
                let _ = client.delete_topic(&ident(stream), &id).await;
                return Err(e);
            }
            out.done(
                json!({"id": t.id, "name": t.name, "partitions_count": t.partitions_count}),
                format!(
                    "topic '{}' created in stream {} with id {} and {} partition(s)",
                    t.name,
                    quoted(stream),
                    t.id,
                    t.partitions_count
                ),
            );
        }
        TopicCmd::List { stream } => {
            let a = About {
                stream: Some(stream),
                ..conn.clone()
            };
            let topics = client
                .get_topics(&ident(stream))
                .await
                .map_err(|e| explain(e, &a))?;
            out.show(
                json!(topics
                    .iter()
                    .map(|t| topic_json(t, None, None))
                    .collect::<Vec<_>>()),
                || {
                    let mut tb = Table::new(&[
                        "ID",
                        "NAME",
                        "PARTITIONS",
                        "MESSAGES",
                        "SIZE",
                        "EXPIRY",
                        "MAX SIZE",
                        "CREATED",
                    ]);
                    for t in &topics {
                        tb.row(vec![
                            t.id.to_string(),
                            t.name.clone(),
                            t.partitions_count.to_string(),
                            t.messages_count.to_string(),
                            format_size(t.size_bytes),
                            expiry_text(t.message_expiry),
                            max_size_text(t.max_topic_size),
                            timestamp(t.created_at),
                        ]);
                    }
                    tb.render()
                },
            );
        }
        TopicCmd::Get { stream, topic } => {
            let a = About {
                stream: Some(stream),
                topic: Some(topic),
                ..conn.clone()
            };
            let (t, parts) = client
                .get_topic(&ident(stream), &ident(topic))
                .await
                .map_err(|e| explain(e, &a))?
                .ok_or_else(|| {
                    CliError::refused(format!(
                        "topic {} not found in stream {}",
                        quoted(topic),
                        quoted(stream)
                    ))
                })?;
            let d = client
                .get_topic_durability(&ident(stream), &ident(topic))
                .await
                .ok();
            out.show(topic_json(&t, Some(&parts), d), || {
                let mut text = properties(&[
                    ("id", t.id.to_string()),
                    ("name", t.name.clone()),
                    ("created", timestamp(t.created_at)),
                    ("partitions", t.partitions_count.to_string()),
                    ("messages", t.messages_count.to_string()),
                    ("size", format_size(t.size_bytes)),
                    ("message expiry", expiry_text(t.message_expiry)),
                    ("max size", max_size_text(t.max_topic_size)),
                    (
                        "durability",
                        match d {
                            Some(Some(Durability::Os)) => "os".into(),
                            Some(Some(Durability::Fsync)) => "fsync".into(),
                            Some(None) => "server default".into(),
                            None => "-".into(),
                        },
                    ),
                ]);
                let mut tb = Table::new(&[
                    "PARTITION",
                    "MESSAGES",
                    "CURRENT OFFSET",
                    "SEGMENTS",
                    "SIZE",
                ]);
                for p in &parts {
                    tb.row(vec![
                        p.id.to_string(),
                        p.messages_count.to_string(),
                        p.current_offset.to_string(),
                        p.segments_count.to_string(),
                        format_size(p.size_bytes),
                    ]);
                }
                text.push_str("\n\n");
                text.push_str(&tb.render());
                text
            });
        }
        TopicCmd::Update {
            stream,
            topic,
            name,
            limits,
        } => {
            let a = About {
                stream: Some(stream),
                topic: Some(topic),
                ..conn.clone()
            };
            // Limits not given keep their current values.
            let (current, _) = client
                .get_topic(&ident(stream), &ident(topic))
                .await
                .map_err(|e| explain(e, &a))?
                .ok_or_else(|| {
                    CliError::refused(format!(
                        "topic {} not found in stream {}",
                        quoted(topic),
                        quoted(stream)
                    ))
                })?;
            let keep = |v: u64| (v != 0 && v != u64::MAX).then_some(v);
            let given = topic_limits(limits)?;
            topic_configs(limits)?;
            let options = TopicOptions {
                message_expiry: given.message_expiry.or(keep(current.message_expiry)),
                max_size: given.max_size.or(keep(current.max_topic_size)),
            };
            client
                .update_topic(&ident(stream), &ident(topic), name, options)
                .await
                .map_err(|e| explain(e, &a))?;
            if let Some(d) = durability(limits.durability) {
                client
                    .set_topic_durability(&ident(stream), &Identifier::Name(name.clone()), Some(d))
                    .await
                    .map_err(|e| explain(e, &a))?;
            }
            set_configs(
                client,
                &ident(stream),
                &Identifier::Name(name.clone()),
                &topic_configs(limits)?,
                &a,
            )
            .await?;
            out.done(
                json!({"ok": true}),
                format!(
                    "topic {} in stream {} updated",
                    quoted(topic),
                    quoted(stream)
                ),
            );
        }
        TopicCmd::Delete { stream, topic } => {
            let a = About {
                stream: Some(stream),
                topic: Some(topic),
                ..conn.clone()
            };
            client
                .delete_topic(&ident(stream), &ident(topic))
                .await
                .map_err(|e| explain(e, &a))?;
            out.done(
                json!({"ok": true}),
                format!(
                    "topic {} deleted from stream {}",
                    quoted(topic),
                    quoted(stream)
                ),
            );
        }
        TopicCmd::Purge { stream, topic } => {
            let a = About {
                stream: Some(stream),
                topic: Some(topic),
                ..conn.clone()
            };
            client
                .purge_topic(&ident(stream), &ident(topic))
                .await
                .map_err(|e| explain(e, &a))?;
            out.done(
                json!({"ok": true}),
                format!(
                    "topic {} in stream {} purged",
                    quoted(topic),
                    quoted(stream)
                ),
            );
        }
        TopicCmd::Config(TopicConfigCmd::Get { stream, topic }) => {
            let a = About {
                stream: Some(stream),
                topic: Some(topic),
                ..conn.clone()
            };
            let entries = client
                .get_topic_config(&ident(stream), &ident(topic))
                .await
                .map_err(|e| explain(e, &a))?;
            out.show(
                json!(entries
                    .iter()
                    .map(|e| json!({"name": e.name, "value": e.value, "source": e.source}))
                    .collect::<Vec<_>>()),
                || {
                    let mut tb = Table::new(&["NAME", "VALUE", "SOURCE"]);
                    for e in &entries {
                        tb.row(vec![e.name.clone(), e.value.clone(), e.source.clone()]);
                    }
                    tb.render()
                },
            );
        }
        TopicCmd::Config(TopicConfigCmd::Set {
            stream,
            topic,
            settings,
            reset,
        }) => {
            let a = About {
                stream: Some(stream),
                topic: Some(topic),
                ..conn.clone()
            };
            let mut configs = Vec::with_capacity(settings.len() + reset.len());
            for text in settings {
                let (name, value) = name_value(text, "config")?;
                configs.push((name, Some(value)));
            }
            configs.extend(reset.iter().map(|n| (n.clone(), None)));
            if configs.is_empty() {
                return Err(CliError::usage(
                    "give at least one NAME=VALUE or --reset NAME",
                ));
            }
            set_configs(client, &ident(stream), &ident(topic), &configs, &a).await?;
            out.done(
                json!({"ok": true}),
                format!(
                    "configs of topic {} in stream {} updated",
                    quoted(topic),
                    quoted(stream)
                ),
            );
        }
    }
    Ok(())
}

/// A progress line with rate, redrawn in place on stderr when it is a terminal.
struct Progress {
    started: Instant,
    last: Instant,
    enabled: bool,
}

impl Progress {
    fn new(enabled: bool) -> Progress {
        Progress {
            started: Instant::now(),
            last: Instant::now(),
            enabled,
        }
    }
    fn update(&mut self, sent: u64, bytes: u64, total: Option<u64>, force: bool) {
        if !self.enabled || (!force && self.last.elapsed() < Duration::from_millis(200)) {
            return;
        }
        self.last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(1e-6);
        let bar = total.map_or(String::new(), |t| {
            let done = if t == 0 {
                30
            } else {
                (bytes * 30 / t.max(1)).min(30) as usize
            };
            format!("[{}{}] ", "#".repeat(done), "-".repeat(30 - done))
        });
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\r{bar}{sent} messages, {} ({:.0} msgs/s, {}/s)   ",
            format_size(bytes),
            sent as f64 / secs,
            format_size((bytes as f64 / secs) as u64)
        );
        let _ = err.flush();
    }
}

async fn message(
    client: &Client,
    c: &MessageCmd,
    out: &Out,
    conn: &About<'_>,
) -> Result<(), CliError> {
    match c {
        MessageCmd::Send {
            stream,
            topic,
            messages,
            partition,
            key,
            headers,
            input_file,
        } => {
            let a = About {
                stream: Some(stream),
                topic: Some(topic),
                partition: *partition,
                ..conn.clone()
            };
            let headers = headers
                .iter()
                .map(|h| header(h))
                .collect::<Result<Vec<_>, _>>()?;
            let partitioning = match (partition, key) {
                (Some(p), _) => Partitioning::PartitionId(*p),
                (None, Some(k)) => Partitioning::MessagesKey(k.as_bytes().to_vec()),
                (None, None) => Partitioning::Balanced,
            };
            let make = |line: String| {
                let mut m = Message::new(line);
                m.headers.clone_from(&headers);
                m
            };
            let mut sent = 0u64;
            let mut bytes = 0u64;
            let mut batch: Vec<Message> = Vec::new();
            let send = |batch: Vec<Message>| {
                let (s, t, p) = (ident(stream), ident(topic), partitioning.clone());
                async move { client.send_messages(&s, &t, &p, &batch).await }
            };
            if !messages.is_empty() {
                let batch: Vec<Message> = messages.iter().cloned().map(make).collect();
                sent = batch.len() as u64;
                send(batch).await.map_err(|e| explain(e, &a))?;
            } else {
                let (reader, total): (Box<dyn BufRead>, Option<u64>) = match input_file {
                    Some(path) => {
                        let f = std::fs::File::open(path).map_err(|e| {
                            CliError::usage(format!("cannot read {}: {e}", path.display()))
                        })?;
                        let len = f.metadata().ok().map(|m| m.len());
                        (Box::new(std::io::BufReader::new(f)), len)
                    }
                    None => (Box::new(std::io::stdin().lock()), None),
                };
                let mut progress = Progress::new(
                    !out.quiet
                        && input_file.is_some()
                        && std::io::IsTerminal::is_terminal(&std::io::stderr()),
                );
                for line in reader.lines() {
                    let line =
                        line.map_err(|e| CliError::usage(format!("cannot read input: {e}")))?;
                    if line.is_empty() {
                        continue;
                    }
                    bytes += line.len() as u64 + 1;
                    batch.push(make(line));
                    if batch.len() == 1000 {
                        sent += batch.len() as u64;
                        send(std::mem::take(&mut batch))
                            .await
                            .map_err(|e| explain(e, &a))?;
                        progress.update(sent, bytes, total, false);
                    }
                }
                if !batch.is_empty() {
                    sent += batch.len() as u64;
                    send(batch).await.map_err(|e| explain(e, &a))?;
                }
                progress.update(sent, bytes, total, true);
                if progress.enabled {
                    eprintln!();
                }
                if sent == 0 {
                    return Err(CliError::usage("no messages to send: give them as arguments, on stdin or with --input-file"));
                }
            }
            out.done(
                json!({"ok": true, "sent": sent}),
                format!(
                    "sent {sent} message(s) to topic {} in stream {}",
                    quoted(topic),
                    quoted(stream)
                ),
            );
        }
        MessageCmd::Poll {
            stream,
            topic,
            partition,
            count,
            offset,
            first,
            last,
            next,
            consumer,
            auto_commit,
            show_headers,
            follow,
        } => {
            let a = About {
                stream: Some(stream),
                topic: Some(topic),
                partition: Some(*partition),
                ..conn.clone()
            };
            let mut strategy = match (offset, first, last, next) {
                (Some(o), ..) => PollingStrategy::Offset(*o),
                (_, true, ..) => PollingStrategy::First,
                (_, _, true, _) => PollingStrategy::Last,
                (_, _, _, true) => PollingStrategy::Next,
                _ => PollingStrategy::First,
            };
            let who = ConsumerKind::Single(ident(consumer));
            let mut printed_header = false;
            loop {
                let polled = client
                    .poll_messages(
                        &ident(stream),
                        &ident(topic),
                        Some(*partition),
                        &who,
                        strategy,
                        *count,
                        *auto_commit,
                    )
                    .await
                    .map_err(|e| explain(e, &a))?;
                if let Some(m) = polled.messages.last() {
                    if !matches!(strategy, PollingStrategy::Next) {
                        strategy = PollingStrategy::Offset(m.offset + 1);
                    }
                }
                match out.format {
                    Output::Json => {
                        for m in &polled.messages {
                            let headers: serde_json::Map<String, Value> = m
                                .headers
                                .iter()
                                .map(|(k, v)| (k.clone(), header_json(v)))
                                .collect();
                            emit(&format!(
                                "{}",
                                json!({"partition": m.partition_id, "offset": m.offset, "timestamp": m.timestamp, "id": m.id.to_string(),
                                       "payload": String::from_utf8_lossy(&m.payload), "headers": headers})
                            ));
                        }
                    }
                    Output::Table => {
                        if !printed_header && !polled.messages.is_empty() && !out.quiet {
                            emit(&format!(
                                "OFFSET  TIMESTAMP            PAYLOAD{}",
                                if *show_headers { "  HEADERS" } else { "" }
                            ));
                            printed_header = true;
                        }
                        for m in &polled.messages {
                            let payload = String::from_utf8_lossy(&m.payload);
                            if out.quiet {
                                emit(&format!("{payload}"));
                                continue;
                            }
                            let mut line =
                                format!("{:<6}  {}  {payload}", m.offset, timestamp(m.timestamp));
                            if *show_headers && !m.headers.is_empty() {
                                let hs: Vec<String> = m
                                    .headers
                                    .iter()
                                    .map(|(k, v)| format!("{k}={}", header_text(v)))
                                    .collect();
                                line.push_str("  ");
                                line.push_str(&hs.join(", "));
                            }
                            emit(&line);
                        }
                    }
                }
                let _ = std::io::stdout().flush();
                if !*follow {
                    if polled.messages.is_empty() && !out.quiet && out.format == Output::Table {
                        eprintln!("no messages");
                    }
                    break;
                }
                if polled.messages.is_empty() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    Ok(())
}

async fn group(client: &Client, c: &GroupCmd, out: &Out, conn: &About<'_>) -> Result<(), CliError> {
    match c {
        GroupCmd::Create {
            stream,
            topic,
            name,
        } => {
            let a = About {
                stream: Some(stream),
                topic: Some(topic),
                group: Some(name),
                ..conn.clone()
            };
            let g = client
                .create_consumer_group(&ident(stream), &ident(topic), name)
                .await
                .map_err(|e| explain(e, &a))?;
            out.done(
                json!({"id": g.id, "name": g.name}),
                format!("consumer group '{}' created with id {}", g.name, g.id),
            );
        }
        GroupCmd::List { stream, topic } => {
            let a = About {
                stream: Some(stream),
                topic: Some(topic),
                ..conn.clone()
            };
            let groups = client
                .get_consumer_groups(&ident(stream), &ident(topic))
                .await
                .map_err(|e| explain(e, &a))?;
            out.show(
                json!(groups.iter().map(|g| json!({"id": g.id, "name": g.name, "partitions_count": g.partitions_count, "members_count": g.members_count})).collect::<Vec<_>>()),
                || {
                    let mut t = Table::new(&["ID", "NAME", "PARTITIONS", "MEMBERS"]);
                    for g in &groups {
                        t.row(vec![g.id.to_string(), g.name.clone(), g.partitions_count.to_string(), g.members_count.to_string()]);
                    }
                    t.render()
                },
            );
        }
        GroupCmd::Get {
            stream,
            topic,
            group,
        } => {
            let a = About {
                stream: Some(stream),
                topic: Some(topic),
                group: Some(group),
                ..conn.clone()
            };
            let g = client
                .get_consumer_group(&ident(stream), &ident(topic), &ident(group))
                .await
                .map_err(|e| explain(e, &a))?
                .ok_or_else(|| {
                    CliError::refused(format!(
                        "consumer group {} not found in topic {}",
                        quoted(group),
                        quoted(topic)
                    ))
                })?;
            out.show(
                json!({"id": g.id, "name": g.name, "partitions_count": g.partitions_count,
                       "members": g.members.iter().map(|(id, ps)| json!({"id": id, "partitions": ps})).collect::<Vec<_>>()}),
                || {
                    let mut text = properties(&[("id", g.id.to_string()), ("name", g.name.clone()), ("partitions", g.partitions_count.to_string()), ("members", g.members_count.to_string())]);
                    if !g.members.is_empty() {
                        let mut t = Table::new(&["MEMBER", "PARTITIONS"]);
                        for (id, ps) in &g.members {
                            t.row(vec![id.to_string(), ps.iter().map(u32::to_string).collect::<Vec<_>>().join(",")]);
                        }
                        text.push_str("\n\n");
                        text.push_str(&t.render());
                    }
                    text
                },
            );
        }
        GroupCmd::Delete {
            stream,
            topic,
            group,
        } => {
            let a = About {
                stream: Some(stream),
                topic: Some(topic),
                group: Some(group),
                ..conn.clone()
            };
            client
                .delete_consumer_group(&ident(stream), &ident(topic), &ident(group))
                .await
                .map_err(|e| explain(e, &a))?;
            out.done(
                json!({"ok": true}),
                format!("consumer group {} deleted", quoted(group)),
            );
        }
        GroupCmd::Lag { group } => {
            let rows = client
                .consumer_lag(group.as_deref())
                .await
                .map_err(|e| explain(e, conn))?;
            if let Some(g) = group.as_deref().filter(|_| rows.is_empty()) {
                // As Kafka's tool does for a group it does not know, rather than an empty table
                // that looks like a group with nothing to read.
                return Err(CliError::refused(format!(
                    "consumer group '{g}' has no committed offsets"
                )));
            }
            out.show(json!(rows.iter().map(lag_json).collect::<Vec<_>>()), || {
                lag_table(&rows)
            });
        }
    }
    Ok(())
}

/// One lag row for scripts.
pub(crate) fn lag_json(l: &PartitionLagWire) -> Value {
    json!({"group": l.group, "stream": l.stream, "topic": l.topic, "partition": l.partition,
           "committed": l.committed, "end_offset": l.end_offset, "lag": l.lag})
}

/// Lag rows for people, with Kafka's topic names.
pub(crate) fn lag_table(rows: &[PartitionLagWire]) -> String {
    let mut t = Table::new(&["GROUP", "TOPIC", "PARTITION", "COMMITTED", "END", "LAG"]);
    for l in rows {
        t.row(vec![
            l.group.clone(),
            l.topic.clone(),
            l.partition.to_string(),
            l.committed.to_string(),
            l.end_offset.to_string(),
            l.lag.to_string(),
        ]);
    }
    t.render()
}

async fn offset(
    client: &Client,
    c: &OffsetCmd,
    out: &Out,
    conn: &About<'_>,
) -> Result<(), CliError> {
    match c {
        OffsetCmd::Get {
            consumer,
            stream,
            topic,
            partition,
            group,
        } => {
            let a = About {
                stream: Some(stream),
                topic: Some(topic),
                partition: Some(*partition),
                group: group.then_some(consumer.as_str()),
                ..conn.clone()
            };
            let who = if *group {
                ConsumerKind::Group(ident(consumer))
            } else {
                ConsumerKind::Single(ident(consumer))
            };
            let (current, stored) = client
                .get_consumer_offset(&who, &ident(stream), &ident(topic), Some(*partition))
                .await
                .map_err(|e| explain(e, &a))?
                .ok_or_else(|| {
                    CliError::refused(format!(
                        "no offset stored for {} on partition {partition} of topic {}",
                        quoted(consumer),
                        quoted(topic)
                    ))
                })?;
            out.show(
                json!({"partition": partition, "current_offset": current, "stored_offset": stored}),
                || {
                    properties(&[
                        ("partition", partition.to_string()),
                        ("current offset", current.to_string()),
                        ("stored offset", stored.to_string()),
                    ])
                },
            );
        }
        OffsetCmd::Set {
            consumer,
            stream,
            topic,
            partition,
            offset,
            group,
        } => {
            let a = About {
                stream: Some(stream),
                topic: Some(topic),
                partition: Some(*partition),
                group: group.then_some(consumer.as_str()),
                ..conn.clone()
            };
            let who = if *group {
                ConsumerKind::Group(ident(consumer))
            } else {
                ConsumerKind::Single(ident(consumer))
            };
            client
                .store_consumer_offset(
                    &who,
                    &ident(stream),
                    &ident(topic),
                    Some(*partition),
                    *offset,
                )
                .await
                .map_err(|e| explain(e, &a))?;
            out.done(
                json!({"ok": true}),
                format!(
                    "offset of {} on partition {partition} set to {offset}",
                    quoted(consumer)
                ),
            );
        }
    }
    Ok(())
}

async fn user(client: &Client, c: &UserCmd, out: &Out, conn: &About<'_>) -> Result<(), CliError> {
    match c {
        UserCmd::Create {
            new_username: username,
            new_password: password,
            inactive,
            global,
        } => {
            let a = About {
                user: Some(username),
                ..conn.clone()
            };
            let perms = global.as_deref().map(permissions).transpose()?;
            let u = client
                .create_user(username, password, !inactive, perms)
                .await
                .map_err(|e| explain(e, &a))?;
            out.done(
                json!({"id": u.id, "username": u.username}),
                format!("user '{}' created with id {}", u.username, u.id),
            );
        }
        UserCmd::List => {
            let users = client.get_users().await.map_err(|e| explain(e, conn))?;
            out.show(
                json!(users.iter().map(|u| json!({"id": u.id, "username": u.username, "active": u.active, "created_at": u.created_at})).collect::<Vec<_>>()),
                || {
                    let mut t = Table::new(&["ID", "USERNAME", "STATUS", "CREATED"]);
                    for u in &users {
                        t.row(vec![u.id.to_string(), u.username.clone(), if u.active { "active" } else { "inactive" }.into(), timestamp(u.created_at)]);
                    }
                    t.render()
                },
            );
        }
        UserCmd::Get { user } => {
            let a = About {
                user: Some(user),
                ..conn.clone()
            };
            let (u, perms) = client
                .get_user(&ident(user))
                .await
                .map_err(|e| explain(e, &a))?
                .ok_or_else(|| CliError::refused(format!("user {} not found", quoted(user))))?;
            let granted: Vec<&str> = perms
                .as_ref()
                .map(|p| {
                    PERMISSIONS
                        .iter()
                        .zip(p.global)
                        .filter(|(_, on)| *on)
                        .map(|(n, _)| *n)
                        .collect()
                })
                .unwrap_or_default();
            out.show(json!({"id": u.id, "username": u.username, "active": u.active, "permissions": granted}), || {
                properties(&[
                    ("id", u.id.to_string()),
                    ("username", u.username.clone()),
                    ("status", if u.active { "active" } else { "inactive" }.into()),
                    ("created", timestamp(u.created_at)),
                    ("permissions", if u.id == 0 { "all (root)".into() } else if granted.is_empty() { "none".into() } else { granted.join(", ") }),
                ])
            });
        }
        UserCmd::Delete { user } => {
            let a = About {
                user: Some(user),
                ..conn.clone()
            };
            client
                .delete_user(&ident(user))
                .await
                .map_err(|e| explain(e, &a))?;
            out.done(
                json!({"ok": true}),
                format!("user {} deleted", quoted(user)),
            );
        }
        UserCmd::Password { user, current, new } => {
            let a = About {
                user: Some(user),
                ..conn.clone()
            };
            client
                .change_password(&ident(user), current, new)
                .await
                .map_err(|e| explain(e, &a))?;
            out.done(
                json!({"ok": true}),
                format!("password of {} changed", quoted(user)),
            );
        }
        UserCmd::Permissions { user, list } => {
            let a = About {
                user: Some(user),
                ..conn.clone()
            };
            client
                .update_permissions(&ident(user), Some(permissions(list)?))
                .await
                .map_err(|e| explain(e, &a))?;
            out.done(
                json!({"ok": true}),
                format!("permissions of {} updated", quoted(user)),
            );
        }
    }
    Ok(())
}

async fn pat(client: &Client, c: &PatCmd, out: &Out, conn: &About<'_>) -> Result<(), CliError> {
    match c {
        PatCmd::Create { name, expiry } => {
            let expiry = expiry
                .as_deref()
                .map(|e| parse_duration(e).map(|d| d.as_micros() as u64))
                .transpose()
                .map_err(|e| CliError::usage(format!("--expiry: {e}")))?;
            let token = client
                .create_personal_access_token(name, expiry)
                .await
                .map_err(|e| explain(e, conn))?;
            // The token is the result: printed even with --quiet.
            match out.format {
                Output::Json => emit(&json(&json!({"name": name, "token": token}))),
                Output::Table => emit(&token),
            }
        }
        PatCmd::List => {
            let tokens = client
                .get_personal_access_tokens()
                .await
                .map_err(|e| explain(e, conn))?;
            out.show(
                json!(tokens
                    .iter()
                    .map(|(n, e)| json!({"name": n, "expiry_at": e}))
                    .collect::<Vec<_>>()),
                || {
                    let mut t = Table::new(&["NAME", "EXPIRES"]);
                    for (n, e) in &tokens {
                        t.row(vec![n.clone(), e.map_or("never".into(), timestamp)]);
                    }
                    t.render()
                },
            );
        }
        PatCmd::Delete { name } => {
            client
                .delete_personal_access_token(name)
                .await
                .map_err(|e| explain(e, conn))?;
            out.done(json!({"ok": true}), format!("token '{name}' deleted"));
        }
    }
    Ok(())
}
