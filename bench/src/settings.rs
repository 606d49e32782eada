//! What to run: the command line, checked and resolved into [`Settings`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::BenchError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Each producer sends to its own partition.
    PinnedProducer,
    /// Each consumer reads its own partitions (filled first, not timed): consumer i of n reads
    /// partitions i, i+n, ...; `--consumers 1 --partitions 4` has one consumer read all four
    /// (Kafka: in one Fetch request; native: one poll per partition in turn).
    PinnedConsumer,
    /// Producers spread their batches over all partitions.
    BalancedProducer,
    /// Consumers in one consumer group share the partitions (filled first, not timed).
    BalancedConsumerGroup,
    /// Producers and consumers at once; latency from the producer's timestamp to receipt.
    EndToEnd,
    /// `--connections` connections one after another, each closed once ready: TCP, the TLS
    /// handshake with --tls, and login (native) or the first Metadata answer (Kafka).
    Connect,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::PinnedProducer => "pinned-producer",
            Workload::PinnedConsumer => "pinned-consumer",
            Workload::BalancedProducer => "balanced-producer",
            Workload::BalancedConsumerGroup => "balanced-consumer-group",
            Workload::EndToEnd => "end-to-end",
            Workload::Connect => "connect",
        }
    }

    pub fn produces(self) -> bool {
        matches!(
            self,
            Workload::PinnedProducer | Workload::BalancedProducer | Workload::EndToEnd
        )
    }

    pub fn consumes(self) -> bool {
        matches!(
            self,
            Workload::PinnedConsumer | Workload::BalancedConsumerGroup | Workload::EndToEnd
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Iggy 0.8's binary protocol over TCP, through wharf-sdk.
    Native,
    /// The Kafka protocol, through librdkafka.
    Kafka,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityArg {
    Os,
    Fsync,
}

/// wharf-bench: drives a Wharf server (or an Iggy 0.8 server, or any Kafka broker) with
/// producers and consumers and reports throughput and latency percentiles.
#[derive(Debug, Parser)]
#[command(name = "wharf-bench", version)]
pub struct Args {
    /// What to run.
    #[arg(value_enum)]
    pub workload: Workload,
    /// Which protocol to speak.
    #[arg(long, value_enum, default_value = "native")]
    pub protocol: Protocol,
    /// HOST:PORT of the server (default 127.0.0.1:8090 native, 127.0.0.1:9092 kafka).
    #[arg(long)]
    pub server: Option<String>,
    /// Producers (each with its own connection).
    #[arg(long, default_value_t = 1)]
    pub producers: u32,
    /// Consumers (each with its own connection).
    #[arg(long, default_value_t = 1)]
    pub consumers: u32,
    /// Partitions of the topic it creates (default: one per producer or consumer). More
    /// partitions than consumers in pinned-consumer: each consumer reads several (consumer i of
    /// n reads i, i+n, ...), --messages spread evenly over all of them.
    #[arg(long)]
    pub partitions: Option<u32>,
    /// Payload bytes per message (at least 9: a timestamp and a flag lead every payload).
    #[arg(long, default_value_t = 1000)]
    pub message_size: usize,
    /// Messages per request (native); for Kafka, librdkafka's batch.num.messages and a
    /// batch.size that holds that many.
    #[arg(long, default_value_t = 1000)]
    pub batch: u32,
    /// Messages in total, over all producers (or for consumers to read).
    #[arg(long, conflicts_with = "bytes")]
    pub messages: Option<u64>,
    /// Payload bytes in total instead of --messages (e.g. "1 GiB").
    #[arg(long)]
    pub bytes: Option<String>,
    /// Limit, in messages per second over all producers.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Durability of the topic it creates (Wharf only; default: the server's).
    #[arg(long, value_enum)]
    pub durability: Option<DurabilityArg>,
    /// Run this long first without measuring (e.g. "5 s").
    #[arg(long, default_value = "0 s")]
    pub warmup: String,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Connections the `connect` workload opens (per kind it measures).
    #[arg(long, default_value_t = 200)]
    pub connections: u64,
    /// `connect` over the native protocol: a ping instead of a login (whose password hashing,
    /// Argon2, is slow on purpose and would hide the connection's own cost).
    #[arg(long)]
    pub no_login: bool,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Native login.
    #[arg(long, default_value = "iggy")]
    pub username: String,
    /// Native login.
    #[arg(long, default_value = "iggy")]
    pub password: String,
    /// Kafka producer acks: -1 (all), 0 or 1.
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub acks: i32,
    /// Kafka producer linger.ms.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u32,
    /// Kafka producer queue.buffering.max.messages: messages librdkafka holds before a send
    /// waits (default: librdkafka's, 100000). A flat-out producer's send-to-ack latency is
    /// about this many messages over the throughput.
    #[arg(long, value_name = "N")]
    pub max_in_queue: Option<u32>,
    /// Kafka producer enable.idempotence (the Java client's default since Kafka 3.0).
    #[arg(long)]
    pub idempotent: bool,
    /// Kafka: transactional producers (implies --idempotent; needs acks -1). Producer i uses
    /// the transactional.id "ID-i"; each produces flat out inside a transaction committed every
    /// --commit-interval, and a message counts as delivered once its transaction committed.
    #[arg(long, value_name = "ID")]
    pub transactional_id: Option<String>,
    /// With --transactional-id: how long each transaction stays open before it is committed
    /// (e.g. "100 ms"; default 100 ms).
    #[arg(long, requires = "transactional_id")]
    pub commit_interval: Option<String>,
    /// Kafka: each record gets a key drawn (uniformly, from a fixed seed per producer) from N
    /// distinct keys, as a compacted topic needs; without it records have no key.
    #[arg(long, value_name = "N")]
    pub keys: Option<u64>,
    /// Kafka: a config of the topic it creates, as in CreateTopics (e.g.
    /// "cleanup.policy=compact"); repeat for several.
    #[arg(long = "topic-config", value_name = "KEY=VALUE")]
    pub topic_config: Vec<String>,
    /// Kafka: leave the topic it created instead of deleting it, e.g. for
    /// the log cleaner to work on afterwards.
    #[arg(long)]
    pub keep_topic: bool,
    /// Kafka: the name of the topic it creates, instead of "wharf-bench-<run id>" (so a later
    /// run can read it with --existing-topic).
    #[arg(long, value_name = "NAME", conflicts_with = "existing_topic")]
    pub topic: Option<String>,
    /// Kafka, pinned-consumer: read --messages from the start of this topic, which already
    /// holds them (e.g. kept by an earlier run with --keep-topic), instead of creating and
    /// filling one; it is neither filled nor deleted.
    #[arg(long, value_name = "NAME")]
    pub existing_topic: Option<String>,
    /// No live progress line.
    #[arg(long)]
    pub quiet: bool,
}

/// TLS to the server (both protocols). Any of the file or domain flags turns TLS on by itself.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// Connect over TLS (Kafka: security.protocol=SSL).
    #[arg(long)]
    pub tls: bool,
    /// PEM file of the CA(s) that signed the server's certificate (default: the system's CAs).
    #[arg(long, value_name = "FILE")]
    pub tls_ca_file: Option<PathBuf>,
    /// Native only: the name the server's certificate must carry (default: the address's host,
    /// or localhost for an IP address). librdkafka verifies the broker's advertised host.
    #[arg(long, value_name = "NAME")]
    pub tls_domain: Option<String>,
    /// A client certificate (PEM) for servers that require one (mutual TLS).
    #[arg(long, value_name = "FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert-file.
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
}

/// TLS settings of a run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tls {
    pub ca_file: Option<PathBuf>,
    pub domain: Option<String>,
    /// (certificate, key) files for mutual TLS.
    pub client_certificate: Option<(PathBuf, PathBuf)>,
}

impl TlsArgs {
    fn resolve(self) -> Option<Tls> {
        let on = self.tls
            || self.tls_ca_file.is_some()
            || self.tls_domain.is_some()
            || self.tls_cert_file.is_some();
        on.then(|| Tls {
            ca_file: self.tls_ca_file,
            domain: self.tls_domain,
            client_certificate: self.tls_cert_file.zip(self.tls_key_file),
        })
    }
}

/// Transactional producing (Kafka): what `--transactional-id` and `--commit-interval` asked for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Transactions {
    /// Producer i's transactional.id is `"{id}-{i}"` (two producers sharing one would fence
    /// each other).
    pub id: String,
    #[serde(serialize_with = "seconds")]
    pub commit_interval: Duration,
}

/// A transaction is committed this long after it began unless told otherwise.
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_millis(100);

impl Transactions {
    /// The transactional.id of producer `producer`.
    pub fn id_of(&self, producer: u32) -> String {
        format!("{}-{producer}", self.id)
    }
}

/// The checked run description every part works from.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Settings {
    pub workload: Workload,
    pub protocol: Protocol,
    pub server: String,
    pub producers: u32,
    pub consumers: u32,
    pub partitions: u32,
    pub message_size: usize,
    pub batch: u32,
    pub messages: u64,
    pub rate: Option<u64>,
    pub durability: Option<DurabilityArg>,
    #[serde(serialize_with = "seconds")]
    pub warmup: Duration,
    #[serde(skip)]
    pub username: String,
    #[serde(skip)]
    pub password: String,
    pub acks: i32,
    pub linger_ms: u32,
    pub max_in_queue: Option<u32>,
    pub idempotent: bool,
    /// `Some`: Kafka producers are transactional (and idempotent).
    pub transactions: Option<Transactions>,
    /// `Some(n)`: Kafka records are keyed, over `n` distinct keys.
    pub keys: Option<u64>,
    /// Configs of the topic the run creates (Kafka), in the order given.
    pub topic_configs: Vec<(String, String)>,
    /// Kafka: the topic stays after the run.
    pub keep_topic: bool,
    /// Kafka: the topic's name, when given (--topic or --existing-topic).
    pub topic: Option<String>,
    /// Kafka: `topic` exists with the messages already: no create, fill or delete.
    pub existing_topic: bool,
    /// `connect`: each native connection logs in (else it pings).
    pub login: bool,
    /// `Some`: every connection speaks TLS.
    pub tls: Option<Tls>,
    #[serde(skip)]
    pub quiet: bool,
    #[serde(skip)]
    pub json: Option<PathBuf>,
    /// Unique per run: names of what it creates.
    #[serde(skip)]
    pub run_id: String,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// The smallest payload: 8 bytes of send time (µs) and a byte saying measured or warm-up.
pub const MIN_MESSAGE_SIZE: usize = 9;

impl Settings {
    pub fn from_args(a: Args) -> Result<Settings, BenchError> {
        let bad = |m: String| Err(BenchError::Usage(m));
        if a.message_size < MIN_MESSAGE_SIZE {
            return bad(format!(
                "--message-size must be at least {MIN_MESSAGE_SIZE} bytes (a timestamp and a flag lead every payload)"
            ));
        }
        if a.batch == 0 {
            return bad("--batch must be at least 1".into());
        }
        if a.workload.produces() && a.producers == 0 {
            return bad(format!("{} needs at least one producer", a.workload.name()));
        }
        if a.workload.consumes() && a.consumers == 0 {
            return bad(format!("{} needs at least one consumer", a.workload.name()));
        }
        if a.rate == Some(0) {
            return bad("--rate must be at least 1 message per second".into());
        }
        if a.workload == Workload::Connect && a.connections == 0 {
            return bad("--connections must be at least 1".into());
        }
        if a.protocol == Protocol::Kafka && a.tls.tls_domain.is_some() {
            return bad(
                "--tls-domain is for the native protocol; librdkafka verifies the broker's advertised host"
                    .into(),
            );
        }
        if !matches!(a.acks, -1..=1) {
            return bad(format!("--acks {} is not -1, 0 or 1", a.acks));
        }
        let transactions = match &a.transactional_id {
            None => None,
            Some(id) => Some(Settings::transactions(&a, id)?),
        };
        let (keys, topic_configs) = Settings::keys_and_topic_configs(&a)?;
        if a.protocol != Protocol::Kafka && (a.topic.is_some() || a.existing_topic.is_some()) {
            return bad("--topic and --existing-topic are for --protocol kafka".into());
        }
        if a.existing_topic.is_some()
            && (a.workload != Workload::PinnedConsumer
                || a.keys.is_some()
                || !a.topic_config.is_empty()
                || a.keep_topic)
        {
            return bad(
                "--existing-topic is for pinned-consumer, which then creates, fills and deletes \
                 nothing: no --keys, --topic-config or --keep-topic"
                    .into(),
            );
        }
        let warmup = wharf_sdk::units::parse_duration(&a.warmup)
            .map_err(|e| BenchError::Usage(format!("--warmup: {e}")))?;
        let messages = match (&a.messages, &a.bytes) {
            _ if a.workload == Workload::Connect => a.connections,
            (Some(n), _) => *n,
            (None, Some(b)) => {
                let bytes = wharf_sdk::units::parse_size(b)
                    .map_err(|e| BenchError::Usage(format!("--bytes: {e}")))?;
                bytes / a.message_size as u64
            }
            (None, None) => 1_000_000,
        };
        if messages == 0 {
            return bad("nothing to do: --messages (or --bytes) gives 0 messages".into());
        }
        let actors = match a.workload {
            Workload::PinnedProducer | Workload::BalancedProducer => a.producers,
            Workload::PinnedConsumer | Workload::BalancedConsumerGroup => a.consumers,
            Workload::EndToEnd => a.producers.max(a.consumers),
            Workload::Connect => 1,
        };
        let partitions = a.partitions.unwrap_or(actors);
        if partitions == 0 {
            return bad("--partitions must be at least 1".into());
        }
        let pinned_to = match a.workload {
            Workload::PinnedProducer | Workload::EndToEnd => Some(("producer", a.producers)),
            Workload::PinnedConsumer => Some(("consumer", a.consumers)),
            _ => None,
        };
        if let Some((who, n)) = pinned_to {
            if partitions < n {
                return bad(format!(
                    "{}: each {who} needs its own partition, but --partitions {partitions} < {n}",
                    a.workload.name()
                ));
            }
        }
        let server = a.server.unwrap_or_else(|| match a.protocol {
            Protocol::Native => "127.0.0.1:8090".into(),
            Protocol::Kafka => "127.0.0.1:9092".into(),
        });
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Ok(Settings {
            workload: a.workload,
            protocol: a.protocol,
            server,
            producers: a.producers,
            consumers: a.consumers,
            partitions,
            message_size: a.message_size,
            batch: a.batch,
            messages,
            rate: a.rate,
            durability: a.durability,
            warmup,
            username: a.username,
            password: a.password,
            acks: a.acks,
            linger_ms: a.linger_ms,
            max_in_queue: a.max_in_queue,
            // A transactional producer is an idempotent one (librdkafka turns it on by itself).
            idempotent: a.idempotent || transactions.is_some(),
            transactions,
            keys,
            topic_configs,
            keep_topic: a.keep_topic,
            existing_topic: a.existing_topic.is_some(),
            topic: a.existing_topic.or(a.topic),
            login: !a.no_login,
            tls: a.tls.resolve(),
            quiet: a.quiet,
            json: a.json,
            run_id: format!("{}-{stamp}", std::process::id()),
        })
    }

    /// Checks `--keys` and `--topic-config` (Kafka only) and splits each config at its `=`.
    #[allow(clippy::type_complexity)]
    fn keys_and_topic_configs(
        a: &Args,
    ) -> Result<(Option<u64>, Vec<(String, String)>), BenchError> {
        let bad = |m: String| Err(BenchError::Usage(m));
        if a.protocol != Protocol::Kafka
            && (a.keys.is_some() || !a.topic_config.is_empty() || a.keep_topic)
        {
            return bad("--keys, --topic-config and --keep-topic are for --protocol kafka".into());
        }
        if a.keys == Some(0) {
            return bad("--keys must be at least 1".into());
        }
        if a.workload == Workload::Connect && (a.keys.is_some() || !a.topic_config.is_empty()) {
            return bad(
                "connect creates no topic and sends no records: no --keys or --topic-config".into(),
            );
        }
        let mut configs = Vec::with_capacity(a.topic_config.len());
        for c in &a.topic_config {
            match c.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    configs.push((k.trim().to_owned(), v.trim().to_owned()))
                }
                _ => return bad(format!("--topic-config {c:?} is not KEY=VALUE")),
            }
        }
        Ok((a.keys, configs))
    }

    /// Checks the transactional flags against the rest of the command line.
    fn transactions(a: &Args, id: &str) -> Result<Transactions, BenchError> {
        let bad = |m: &str| Err(BenchError::Usage(m.into()));
        if a.protocol != Protocol::Kafka {
            return bad("--transactional-id is for --protocol kafka");
        }
        if !a.workload.produces() {
            return bad(
                "--transactional-id is for the workloads that produce (pinned-producer, balanced-producer, end-to-end)",
            );
        }
        if a.acks != -1 {
            return bad("--transactional-id needs --acks -1 (a transactional producer waits for all replicas)");
        }
        if id.is_empty() {
            return bad("--transactional-id must not be empty");
        }
        let commit_interval = match &a.commit_interval {
            None => DEFAULT_COMMIT_INTERVAL,
            Some(d) => wharf_sdk::units::parse_duration(d)
                .map_err(|e| BenchError::Usage(format!("--commit-interval: {e}")))?,
        };
        if commit_interval.is_zero() {
            return bad("--commit-interval must be at least 1 ms");
        }
        Ok(Transactions {
            id: id.to_owned(),
            commit_interval,
        })
    }

    /// Messages for actor `i` of `n` when `total` is shared out (the first ones get the rest).
    pub fn share(total: u64, n: u32, i: u32) -> u64 {
        let n = u64::from(n.max(1));
        total / n + u64::from(u64::from(i) < total % n)
    }

    /// Messages that end up in each partition when producers are pinned (producer `i` writes
    /// partition `i`).
    pub fn per_partition_pinned(&self) -> Vec<u64> {
        (0..self.partitions)
            .map(|p| {
                if p < self.producers {
                    Settings::share(self.messages, self.producers, p)
                } else {
                    0
                }
            })
            .collect()
    }

    /// The partitions consumer `i` of `n` reads in end-to-end and pinned runs.
    pub fn partitions_of(&self, consumer: u32, consumers: u32) -> Vec<u32> {
        (0..self.partitions)
            .filter(|p| p % consumers.max(1) == consumer)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Settings, BenchError> {
        let mut all = vec!["wharf-bench"];
        all.extend_from_slice(args);
        Settings::from_args(
            Args::try_parse_from(all).map_err(|e| BenchError::Usage(e.to_string()))?,
        )
    }

    #[test]
    fn defaults_and_checks() {
        let s = parse(&["pinned-producer", "--producers", "4"]).unwrap();
        assert_eq!((s.partitions, s.messages, s.batch), (4, 1_000_000, 1000));
        assert_eq!(s.server, "127.0.0.1:8090");
        let s = parse(&["end-to-end", "--protocol", "kafka", "--bytes", "10 MB"]).unwrap();
        assert_eq!((s.server.as_str(), s.messages), ("127.0.0.1:9092", 10_000));
        assert!(parse(&["pinned-producer", "--message-size", "8"]).is_err());
        assert!(parse(&["pinned-producer", "--producers", "3", "--partitions", "2"]).is_err());
        assert!(parse(&["pinned-consumer", "--consumers", "0"]).is_err());
        assert!(parse(&["pinned-producer", "--acks", "2"]).is_err());
        assert!(parse(&["pinned-producer", "--warmup", "soon"]).is_err());
        assert!(parse(&["pinned-producer", "--messages", "0"]).is_err());
        assert!(parse(&["sideways"]).is_err());
        let s = parse(&["connect", "--connections", "50"]).unwrap();
        assert_eq!((s.messages, s.partitions, s.tls.is_none()), (50, 1, true));
        assert!(parse(&["connect", "--connections", "0"]).is_err());
    }

    #[test]
    fn tls_flags() {
        let s = parse(&["pinned-producer", "--tls-ca-file", "ca.pem"]).unwrap();
        let tls = s.tls.unwrap();
        assert_eq!(tls.ca_file, Some(PathBuf::from("ca.pem")));
        assert_eq!((tls.domain, tls.client_certificate), (None, None));
        assert!(parse(&["pinned-producer", "--tls"]).unwrap().tls.is_some());
        assert!(parse(&["pinned-producer", "--tls-cert-file", "c.pem"]).is_err());
        let s = parse(&[
            "connect",
            "--tls-cert-file",
            "c.pem",
            "--tls-key-file",
            "k.pem",
        ])
        .unwrap();
        assert_eq!(
            s.tls.unwrap().client_certificate,
            Some((PathBuf::from("c.pem"), PathBuf::from("k.pem")))
        );
        assert!(parse(&["connect", "--protocol", "kafka", "--tls-domain", "x"]).is_err());
    }

    #[test]
    fn transactional_flags() {
        let kafka = ["pinned-producer", "--protocol", "kafka"];
        let with = |more: &[&str]| {
            let mut all = kafka.to_vec();
            all.extend_from_slice(more);
            parse(&all)
        };
        let s = with(&["--transactional-id", "bench"]).unwrap();
        let t = s.transactions.unwrap();
        assert_eq!(t.commit_interval, DEFAULT_COMMIT_INTERVAL);
        assert_eq!(
            (t.id_of(0), t.id_of(3)),
            ("bench-0".into(), "bench-3".into())
        );
        assert!(s.idempotent, "a transactional producer is idempotent");
        let s = with(&["--transactional-id", "b", "--commit-interval", "250ms"]).unwrap();
        assert_eq!(
            s.transactions.unwrap().commit_interval,
            Duration::from_millis(250)
        );
        let s = with(&["--idempotent"]).unwrap();
        assert!(s.idempotent && s.transactions.is_none());
        assert!(with(&["--commit-interval", "1 s"]).is_err(), "needs an id");
        assert!(with(&["--transactional-id", "b", "--commit-interval", "0 ms"]).is_err());
        assert!(with(&["--transactional-id", "b", "--commit-interval", "soon"]).is_err());
        assert!(with(&["--transactional-id", "b", "--acks", "1"]).is_err());
        assert!(with(&["--transactional-id", ""]).is_err());
        assert!(parse(&["pinned-producer", "--transactional-id", "b"]).is_err());
        assert!(parse(&[
            "pinned-consumer",
            "--protocol",
            "kafka",
            "--transactional-id",
            "b"
        ])
        .is_err());
        let s = parse(&[
            "end-to-end",
            "--protocol",
            "kafka",
            "--transactional-id",
            "b",
        ])
        .unwrap();
        assert!(s.transactions.is_some());
    }

    #[test]
    fn topic_names_and_existing_topics() {
        let s = parse(&[
            "pinned-producer",
            "--protocol",
            "kafka",
            "--topic",
            "t",
            "--keep-topic",
        ])
        .unwrap();
        assert_eq!((s.topic.as_deref(), s.existing_topic), (Some("t"), false));
        let s = parse(&[
            "pinned-consumer",
            "--protocol",
            "kafka",
            "--existing-topic",
            "t",
        ])
        .unwrap();
        assert_eq!((s.topic.as_deref(), s.existing_topic), (Some("t"), true));
        for bad in [
            &["pinned-consumer", "--existing-topic", "t"][..],
            &[
                "pinned-producer",
                "--protocol",
                "kafka",
                "--existing-topic",
                "t",
            ],
            &[
                "pinned-consumer",
                "--protocol",
                "kafka",
                "--existing-topic",
                "t",
                "--keep-topic",
            ],
            &[
                "pinned-consumer",
                "--protocol",
                "kafka",
                "--existing-topic",
                "t",
                "--topic",
                "u",
            ],
            &["pinned-producer", "--topic", "t"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys_and_topic_configs() {
        let s = parse(&[
            "pinned-producer",
            "--protocol",
            "kafka",
            "--keys",
            "10000",
            "--topic-config",
            "cleanup.policy=compact",
            "--topic-config",
            "segment.bytes = 1048576",
            "--topic-config",
            "min.cleanable.dirty.ratio=",
        ])
        .unwrap();
        assert_eq!(s.keys, Some(10_000));
        assert_eq!(
            s.topic_configs,
            [
                ("cleanup.policy".to_string(), "compact".to_string()),
                ("segment.bytes".into(), "1048576".into()),
                ("min.cleanable.dirty.ratio".into(), String::new()),
            ]
        );
        let s = parse(&["pinned-producer", "--protocol", "kafka"]).unwrap();
        assert_eq!((s.keys, s.topic_configs.len()), (None, 0));
        assert!(
            parse(&["pinned-producer", "--keys", "5"]).is_err(),
            "native"
        );
        assert!(
            parse(&["pinned-producer", "--topic-config", "a=b"]).is_err(),
            "native"
        );
        let kafka = |more: &[&str]| {
            let mut all = vec!["pinned-producer", "--protocol", "kafka"];
            all.extend_from_slice(more);
            parse(&all)
        };
        assert!(kafka(&["--keys", "0"]).is_err());
        assert!(kafka(&["--topic-config", "cleanup.policy"]).is_err());
        assert!(kafka(&["--topic-config", "=compact"]).is_err());
        assert!(parse(&["connect", "--protocol", "kafka", "--keys", "3"]).is_err());
    }

    #[test]
    fn shares_add_up() {
        let parts: Vec<u64> = (0..3).map(|i| Settings::share(10, 3, i)).collect();
        assert_eq!(parts, [4, 3, 3]);
        let s = parse(&[
            "end-to-end",
            "--producers",
            "2",
            "--consumers",
            "3",
            "--messages",
            "5",
        ])
        .unwrap();
        assert_eq!(s.per_partition_pinned(), [3, 2, 0]);
        assert_eq!(s.partitions_of(0, 3), [0]);
        assert_eq!(s.partitions_of(1, 2), [1]);
    }
}
