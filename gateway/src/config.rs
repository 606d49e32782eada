//! Server configuration: `configs/server.toml` (embedded, so it holds every default), then the
//! file given with `--config`, then `WHARF_<SECTION>_<KEY>` environment variables, then flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::{Table, Value};

use wharf_log_store::remote::{
    ObjectStoreRemote, RemoteConfig, RemoteKind, RemoteSettings, RemoteTier, S3Config,
    MAX_MANIFEST_SEGMENTS,
};
use wharf_log_store::{Durability, StoreConfig};

use crate::broker::coordinator::ConsumerProtocolSettings;
use crate::broker::quotas::QuotaWindows;
use crate::broker::{CoordinatorSettings, LoginSettings, TransactionSettings};

/// The defaults, exactly as documented in `configs/server.toml`.
pub const DEFAULTS: &str = include_str!("../../configs/server.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("unknown config key [{section}] {key} (from {origin})")]
    UnknownKey {
        section: String,
        key: String,
        origin: String,
    },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("[{section}] {key}: {message}")]
    Invalid {
        section: &'static str,
        key: &'static str,
        message: String,
    },
}

/// Overrides given on the command line.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub native_addr: Option<String>,
    pub kafka_addr: Option<String>,
    /// `--http-addr`: the HTTP listener's address (`[http] address`; empty turns it off).
    pub http_addr: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: RawServer,
    native: RawNative,
    kafka: RawKafka,
    storage: RawStorage,
    cleaner: RawCleaner,
    auth: RawAuth,
    http: RawHttp,
    metrics: RawMetrics,
    remote_storage: RawRemoteStorage,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRemoteStorage {
    enable: bool,
    kind: String,
    bucket: String,
    region: String,
    endpoint: String,
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    path_style: bool,
    allow_http: bool,
    root: String,
    prefix: String,
    request_timeout: String,
    connect_timeout: String,
    cache_dir: String,
    cache_max_size: String,
    chunk_size: String,
    task_interval: String,
    retry_backoff: String,
    retry_backoff_max: String,
    copy_max_bytes_per_second: SizeOrCount,
    reader_threads: u32,
    reader_max_pending_tasks: u32,
    manifest_max_segments: i64,
}

/// A byte figure written either as a plain integer (`0`) or as a size with a unit
/// (`"10 MiB"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum SizeOrCount {
    Count(i64),
    Size(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    address: String,
    tls_cert_file: String,
    tls_key_file: String,
    tls_client_ca_file: String,
    max_connections: u32,
    max_connections_per_ip: u32,
    request_timeout: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    enable: bool,
    max_lag_series: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKafka {
    address: String,
    advertised_host: String,
    advertised_port: u16,
    max_request_size: String,
    auto_create_topics: bool,
    default_partitions: u32,
    default_stream: String,
    fetch_max_bytes: String,
    max_incremental_fetch_session_cache_slots: u32,
    max_connections: u32,
    max_connections_per_ip: u32,
    connections_max_idle: String,
    request_read_timeout: String,
    group_min_session_timeout: String,
    group_max_session_timeout: String,
    group_initial_rebalance_delay: String,
    group_consumer_session_timeout: String,
    group_consumer_min_session_timeout: String,
    group_consumer_max_session_timeout: String,
    group_consumer_heartbeat_interval: String,
    group_consumer_min_heartbeat_interval: String,
    group_consumer_max_heartbeat_interval: String,
    group_consumer_max_size: u32,
    group_consumer_assignors: String,
    group_consumer_migration_policy: String,
    transaction_max_timeout: String,
    transactional_id_expiration: String,
    transaction_abort_timed_out_transaction_cleanup_interval: String,
    transaction_remove_expired_transaction_cleanup_interval: String,
    max_transactional_ids: u32,
    max_inflight_decompressions: u32,
    quota_window_num: u32,
    quota_window_size: String,
    authentication: String,
    allow_anonymous: bool,
    sasl_enabled_mechanisms: String,
    connections_max_reauth: String,
    failed_authentication_delay: String,
    tls_cert_file: String,
    tls_key_file: String,
    tls_client_ca_file: String,
    listeners: Vec<RawKafkaListener>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKafkaListener {
    address: String,
    #[serde(default)]
    advertised_host: String,
    #[serde(default)]
    advertised_port: u16,
    #[serde(default = "default_authentication")]
    authentication: String,
    #[serde(default)]
    tls: bool,
}

fn default_authentication() -> String {
    "none".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNativeListener {
    address: String,
    #[serde(default)]
    tls: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    data_dir: String,
    queued_max_request_bytes: String,
    peer_log_interval: String,
    max_partitions_per_topic: u32,
    max_partitions: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNative {
    address: String,
    max_request_size: String,
    max_poll_messages: u32,
    max_poll_bytes: String,
    max_connections: u32,
    max_connections_per_ip: u32,
    connections_max_idle: String,
    request_read_timeout: String,
    tls_cert_file: String,
    tls_key_file: String,
    tls_client_ca_file: String,
    listeners: Vec<RawNativeListener>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    segment_size: String,
    segment_max_age: String,
    default_durability: String,
    fsync_interval: String,
    writeback_bytes: String,
    preallocate_bytes: String,
    max_batch_size: String,
    retention_interval: String,
    max_open_files: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCleaner {
    enable: bool,
    dedupe_buffer_size: String,
    io_max_bytes_per_second: String,
    backoff: String,
    min_cleanable_dirty_ratio: String,
    min_compaction_lag: String,
    max_compaction_lag: String,
    delete_retention: String,
}

/// Smallest dedupe buffer (about 40 keys of 24 bytes): small enough for tests to force
/// cleanings in several passes, large enough that each pass makes progress.
const MIN_DEDUPE_BUFFER: u64 = 1 << 10;
/// Largest dedupe buffer: 2 GiB, Kafka's own ceiling (its cleaner thread's map takes
/// `min(log.cleaner.dedupe.buffer.size / threads, Int.MaxValue)` bytes), about 89 million
/// keys a pass. The map is allocated whole at a cleaning's start, so a larger value would be
/// a capacity overflow or an out-of-memory abort in the cleaner thread, not a bigger map.
pub const MAX_DEDUPE_BUFFER: u64 = 2 << 30;

impl RawCleaner {
    fn resolve(&self) -> Result<wharf_log_store::CleanerConfig, ConfigError> {
        let invalid = |key, message: String| ConfigError::Invalid {
            section: "cleaner",
            key,
            message,
        };
        // An empty value means "none" (unlimited, no maximum), as for the TLS files.
        let unset = |text: &str| text.trim().is_empty();
        let dedupe_buffer_size = parse_size(&self.dedupe_buffer_size)
            .and_then(|v| {
                (MIN_DEDUPE_BUFFER..=MAX_DEDUPE_BUFFER)
                    .contains(&v)
                    .then_some(v)
                    .ok_or_else(|| "must be 1 KiB..=2 GiB".to_string())
            })
            .map_err(|m| invalid("dedupe_buffer_size", m))?;
        let io_max_bytes_per_second = if unset(&self.io_max_bytes_per_second) {
            None
        } else {
            Some(
                parse_size(&self.io_max_bytes_per_second)
                    .and_then(|v| {
                        (v > 0)
                            .then_some(v)
                            .ok_or_else(|| "must be positive; leave it empty for unlimited".into())
                    })
                    .map_err(|m| invalid("io_max_bytes_per_second", m))?,
            )
        };
        let backoff = parse_duration(&self.backoff)
            .and_then(|d| {
                (!d.is_zero())
                    .then_some(d)
                    .ok_or_else(|| "must be positive".to_string())
            })
            .map_err(|m| invalid("backoff", m))?;
        let min_cleanable_dirty_ratio = self
            .min_cleanable_dirty_ratio
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(wharf_log_store::Ratio::new)
            .ok_or_else(|| {
                invalid(
                    "min_cleanable_dirty_ratio",
                    format!(
                        "'{}' is not a number between 0 and 1",
                        self.min_cleanable_dirty_ratio
                    ),
                )
            })?;
        let min_compaction_lag = parse_duration(&self.min_compaction_lag)
            .map_err(|m| invalid("min_compaction_lag", m))?;
        let max_compaction_lag = if unset(&self.max_compaction_lag) {
            None
        } else {
            Some(
                parse_duration(&self.max_compaction_lag)
                    .and_then(|d| {
                        (!d.is_zero()).then_some(d).ok_or_else(|| {
                            "must be positive; leave it empty for no maximum".to_string()
                        })
                    })
                    .map_err(|m| invalid("max_compaction_lag", m))?,
            )
        };
        if let Some(max) = max_compaction_lag.filter(|max| min_compaction_lag > *max) {
            return Err(invalid(
                "min_compaction_lag",
                format!("must not exceed max_compaction_lag ({max:?})"),
            ));
        }
        Ok(wharf_log_store::CleanerConfig {
            enabled: self.enable,
            dedupe_buffer_size,
            io_max_bytes_per_second,
            backoff,
            min_cleanable_dirty_ratio,
            min_compaction_lag,
            max_compaction_lag,
            delete_retention: parse_duration(&self.delete_retention)
                .map_err(|m| invalid("delete_retention", m))?,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    root_username: String,
    root_password: String,
    password_verifications: u32,
    max_failed_logins: u32,
    failed_login_window: String,
    failed_login_lockout: String,
    end_sessions_on_password_change: bool,
    scram_iterations: u32,
}

/// What one door lets its connections spend: how many, how long they may sit idle, and how long
/// a request may take to arrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once on this door.
    pub max_connections: u32,
    /// Connections open at once from one IP address on this door.
    pub max_connections_per_ip: u32,
    /// A connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// A request that has started arriving must be whole within this.
    pub request_read_timeout: Duration,
}

/// The files that give a door's listeners TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Certificate chain, PEM.
    pub cert_file: PathBuf,
    /// Private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// Set: clients must present a certificate signed by one of these CAs (mutual TLS).
    pub client_ca_file: Option<PathBuf>,
}

/// Who may use a Kafka listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaAuthentication {
    /// Anyone who can connect, as `User:ANONYMOUS` with every right.
    None,
    /// SaslHandshake and SaslAuthenticate first, as a Wharf user.
    Sasl,
}

/// A SASL mechanism the Kafka door can offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    pub const ALL: [SaslMechanism; 3] = [
        SaslMechanism::Plain,
        SaslMechanism::ScramSha256,
        SaslMechanism::ScramSha512,
    ];

    /// The mechanism's name as SASL and Kafka spell it.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism named `name` (case as SASL spells it).
    pub fn from_name(name: &str) -> Option<SaslMechanism> {
        SaslMechanism::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// One Kafka listener: where it listens, what it advertises, its security protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaListener {
    pub address: SocketAddr,
    /// Host given to clients in metadata; `None`: the address each client connected to.
    pub advertised_host: Option<String>,
    /// Port given to clients; `None`: the port listened on.
    pub advertised_port: Option<u16>,
    pub authentication: KafkaAuthentication,
    /// Speaks TLS with the door's [`TlsSettings`].
    pub tls: bool,
}

impl KafkaListener {
    /// Kafka's name for what the listener accepts (`security.protocol` of its clients).
    pub fn security_protocol(&self) -> &'static str {
        match (self.authentication, self.tls) {
            (KafkaAuthentication::None, false) => "PLAINTEXT",
            (KafkaAuthentication::None, true) => "SSL",
            (KafkaAuthentication::Sasl, false) => "SASL_PLAINTEXT",
            (KafkaAuthentication::Sasl, true) => "SASL_SSL",
        }
    }
}

/// One native listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeListener {
    pub address: SocketAddr,
    /// Speaks TLS with the door's [`TlsSettings`].
    pub tls: bool,
}

/// The Kafka door's settings.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// The main listener's address (`--kafka-addr`); its other settings are the fields below.
    pub address: SocketAddr,
    /// Host given to clients in metadata; `None`: the address each client connected to.
    pub advertised_host: Option<String>,
    /// Port given to clients; `None`: the port listened on.
    pub advertised_port: Option<u16>,
    /// The main listener's authentication.
    pub authentication: KafkaAuthentication,
    /// Listeners with authentication "none" may bind beyond loopback.
    pub allow_anonymous: bool,
    /// SASL mechanisms offered, in the configured order.
    pub sasl_mechanisms: Vec<SaslMechanism>,
    /// How long a SASL session lasts before re-authentication (KIP-368); `None`: forever.
    pub connections_max_reauth: Option<Duration>,
    /// How long a connection stays open after a failed SASL authentication was answered
    /// (Kafka's connection.failed.authentication.delay.ms).
    pub failed_authentication_delay: Duration,
    /// TLS for the main listener (when set) and for further listeners with `tls = true`.
    pub tls: Option<TlsSettings>,
    /// Listeners beside the main one.
    pub more_listeners: Vec<KafkaListener>,
    pub max_request_size: u32,
    /// Most record bytes in one Fetch answer (Kafka's fetch.max.bytes).
    pub fetch_max_bytes: u32,
    /// Incremental fetch sessions kept (Kafka's max.incremental.fetch.session.cache.slots);
    /// 0 declines every session.
    pub max_incremental_fetch_session_cache_slots: u32,
    pub limits: ConnectionLimits,
    pub auto_create_topics: bool,
    pub default_partitions: u32,
    /// The stream whose topics Kafka clients see under their plain names.
    pub default_stream: String,
    /// Consumer group coordinator settings.
    pub groups: CoordinatorSettings,
    /// Transaction coordinator settings.
    pub transactions: TransactionSettings,
    /// Produce requests that may decompress batches at once, for a compacted topic's keyless
    /// check or a rebuild with the topic's `compression.type` (each batch at most 256 MiB
    /// decompressed; a rebuilt batch, kept until appended, at most the topic's
    /// `max.message.bytes`); 1..=[`MAX_INFLIGHT_DECOMPRESSIONS`].
    pub max_inflight_decompressions: usize,
    /// The client quotas' rate windows (Kafka's `quota.window.num` and
    /// `quota.window.size.seconds`).
    pub quota_windows: QuotaWindows,
}

/// Most `[kafka] max_inflight_decompressions`: 64 × 256 MiB is already 16 GiB.
pub const MAX_INFLIGHT_DECOMPRESSIONS: u32 = 64;

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub native: NativeConfig,
    pub kafka: KafkaConfig,
    pub store: StoreConfig,
    pub root_username: String,
    pub root_password: String,
    /// Request bytes held at once across both doors (Kafka's queued.max.request.bytes).
    pub queued_max_request_bytes: u64,
    /// One log line per misbehaving peer per this interval.
    pub peer_log_interval: Duration,
    pub max_partitions_per_topic: u32,
    pub max_partitions: u32,
    pub logins: LoginSettings,
    /// The HTTP listener for `/metrics`, `/health` and `/ready` (`[http]`).
    pub http: HttpConfig,
    /// Whether the request and traffic counters are kept (`[metrics] enable`).
    pub metrics: MetricsConfig,
}

/// The operator's HTTP listener: Prometheus metrics and health endpoints (`[http]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Where to listen; `None` (an empty `address`) keeps the listener off.
    pub address: Option<SocketAddr>,
    /// HTTPS instead of HTTP when set.
    pub tls: Option<TlsSettings>,
    /// HTTP connections open at once; more are refused at accept.
    pub max_connections: u32,
    /// HTTP connections open at once from one address (IPv6: one /64); more are refused.
    pub max_connections_per_ip: u32,
    /// A request must arrive whole, and its answer be taken, within this.
    pub request_timeout: Duration,
}

/// Which metrics the server keeps (`[metrics]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Count requests, traffic and latencies on the hot paths (scrape-time gauges such as
    /// offsets, lag and process figures are always available).
    pub enable: bool,
    /// At most this many (group, partition) series of consumer lag per scrape, the largest
    /// lags first (`[metrics] max_lag_series`, at least 1); the native lag command answers as
    /// many rows.
    pub max_lag_series: u32,
}

#[derive(Debug, Clone)]
pub struct NativeConfig {
    /// The main listener's address (`--native-addr`); TLS when `tls` is set.
    pub address: SocketAddr,
    /// TLS for the main listener (when set) and for further listeners with `tls = true`.
    pub tls: Option<TlsSettings>,
    /// Listeners beside the main one.
    pub more_listeners: Vec<NativeListener>,
    pub max_request_size: u32,
    pub max_poll_messages: u32,
    /// Most message bytes one poll returns (at least one message always).
    pub max_poll_bytes: u32,
    pub limits: ConnectionLimits,
}

impl ServerConfig {
    /// Resolves the configuration from the embedded defaults, an optional file, the process
    /// environment and the command-line overrides.
    pub fn load(overrides: &Overrides) -> Result<ServerConfig, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(overrides, &env)
    }

    pub fn load_from(
        overrides: &Overrides,
        env: &[(String, String)],
    ) -> Result<ServerConfig, ConfigError> {
        let mut table = parse(DEFAULTS, "embedded defaults")?;
        if let Some(path) = &overrides.config_file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            let file = parse(&text, &path.display().to_string())?;
            merge(&mut table, file, &path.display().to_string())?;
        }
        apply_env(&mut table, env)?;
        let set = |table: &mut Table, section: &str, key: &str, v: String| {
            if let Some(Value::Table(s)) = table.get_mut(section) {
                s.insert(key.to_string(), Value::String(v));
            }
        };
        if let Some(d) = &overrides.data_dir {
            set(&mut table, "server", "data_dir", d.display().to_string());
        }
        if let Some(a) = &overrides.native_addr {
            set(&mut table, "native", "address", a.clone());
        }
        if let Some(a) = &overrides.kafka_addr {
            set(&mut table, "kafka", "address", a.clone());
        }
        if let Some(a) = &overrides.http_addr {
            set(&mut table, "http", "address", a.clone());
        }
        let raw: RawConfig = Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                path: "merged configuration".into(),
                message: e.to_string(),
            })?;
        raw.resolve()
    }
}

impl RawConfig {
    fn resolve(self) -> Result<ServerConfig, ConfigError> {
        let invalid = |section, key, message: String| ConfigError::Invalid {
            section,
            key,
            message,
        };
        let address = self.native.address.parse::<SocketAddr>().map_err(|e| {
            invalid(
                "native",
                "address",
                format!("'{}': {e}", self.native.address),
            )
        })?;
        let max_request_size = parse_size(&self.native.max_request_size)
            .and_then(|v| u32::try_from(v).map_err(|_| "must be below 4 GiB".to_string()))
            .map_err(|m| invalid("native", "max_request_size", m))?;
        let durability = self
            .storage
            .default_durability
            .parse::<Durability>()
            .map_err(|e| invalid("storage", "default_durability", e.to_string()))?;
        let max_batch = parse_size(&self.storage.max_batch_size)
            .and_then(|v| u32::try_from(v).map_err(|_| "must be below 4 GiB".to_string()))
            .map_err(|m| invalid("storage", "max_batch_size", m))?;
        let store = StoreConfig {
            default_segment_size: parse_size(&self.storage.segment_size)
                .map_err(|m| invalid("storage", "segment_size", m))?,
            default_segment_max_age: parse_duration(&self.storage.segment_max_age)
                .map_err(|m| invalid("storage", "segment_max_age", m))?,
            default_durability: durability,
            default_max_batch_bytes: max_batch,
            fsync_interval: parse_duration(&self.storage.fsync_interval)
                .map_err(|m| invalid("storage", "fsync_interval", m))?,
            writeback_bytes: parse_size(&self.storage.writeback_bytes)
                .map_err(|m| invalid("storage", "writeback_bytes", m))?,
            preallocate_bytes: parse_size(&self.storage.preallocate_bytes)
                .map_err(|m| invalid("storage", "preallocate_bytes", m))?,
            retention_interval: parse_duration(&self.storage.retention_interval)
                .map_err(|m| invalid("storage", "retention_interval", m))?,
            background_tasks: true,
            disk: wharf_log_store::Disk::real(),
            max_open_files: usize::try_from(self.storage.max_open_files)
                .ok()
                .filter(|&n| n >= 8)
                .ok_or_else(|| invalid("storage", "max_open_files", "must be at least 8".into()))?,
            cleaner: self.cleaner.resolve()?,
            remote: self
                .remote_storage
                .resolve(Path::new(&self.server.data_dir))?,
        };
        let kafka = self.kafka.resolve()?;
        let native_limits = connection_limits(
            "native",
            self.native.max_connections,
            self.native.max_connections_per_ip,
            &self.native.connections_max_idle,
            &self.native.request_read_timeout,
        )?;
        let max_poll_bytes = parse_size(&self.native.max_poll_bytes)
            .and_then(|v| {
                u32::try_from(v)
                    .ok()
                    .filter(|&v| v >= 1024)
                    .ok_or_else(|| "must be between 1 KiB and 4 GiB".to_string())
            })
            .map_err(|m| invalid("native", "max_poll_bytes", m))?;
        let queued_max_request_bytes = parse_size(&self.server.queued_max_request_bytes)
            .map_err(|m| invalid("server", "queued_max_request_bytes", m))?;
        let largest_request = u64::from(max_request_size.max(kafka.max_request_size));
        if queued_max_request_bytes < largest_request {
            return Err(invalid(
                "server",
                "queued_max_request_bytes",
                format!("must be at least the largest max_request_size ({largest_request} B)"),
            ));
        }
        let peer_log_interval = parse_duration(&self.server.peer_log_interval)
            .map_err(|m| invalid("server", "peer_log_interval", m))?;
        if self.server.max_partitions_per_topic == 0
            || self.server.max_partitions < self.server.max_partitions_per_topic
        {
            return Err(invalid(
                "server",
                "max_partitions",
                "max_partitions_per_topic must be at least 1 and max_partitions at least that"
                    .into(),
            ));
        }
        let auth_duration =
            |key, text: &str| parse_duration(text).map_err(|m| invalid("auth", key, m));
        if self.auth.password_verifications == 0 || self.auth.max_failed_logins == 0 {
            return Err(invalid(
                "auth",
                "password_verifications",
                "password_verifications and max_failed_logins must be at least 1".into(),
            ));
        }
        let logins = LoginSettings {
            password_verifications: self.auth.password_verifications as usize,
            max_failed_logins: self.auth.max_failed_logins,
            failed_login_window: auth_duration(
                "failed_login_window",
                &self.auth.failed_login_window,
            )?,
            failed_login_lockout: auth_duration(
                "failed_login_lockout",
                &self.auth.failed_login_lockout,
            )?,
            end_sessions_on_password_change: self.auth.end_sessions_on_password_change,
            scram_iterations: self.auth.scram_iterations,
        };
        if !(4096..=1_000_000).contains(&self.auth.scram_iterations) {
            return Err(invalid(
                "auth",
                "scram_iterations",
                "must be between 4096 (Kafka's minimum) and 1000000".into(),
            ));
        }
        let native_tls = tls_settings(
            "native",
            &self.native.tls_cert_file,
            &self.native.tls_key_file,
            &self.native.tls_client_ca_file,
        )?;
        let mut native_listeners = Vec::with_capacity(self.native.listeners.len());
        for l in &self.native.listeners {
            let address = l.address.parse::<SocketAddr>().map_err(|e| {
                invalid(
                    "native",
                    "listeners",
                    format!("address '{}': {e}", l.address),
                )
            })?;
            if l.tls && native_tls.is_none() {
                return Err(invalid(
                    "native",
                    "listeners",
                    format!("listener {address} has tls = true but tls_cert_file and tls_key_file are not set"),
                ));
            }
            native_listeners.push(NativeListener {
                address,
                tls: l.tls,
            });
        }
        if self.auth.root_username.is_empty() || self.auth.root_password.is_empty() {
            return Err(invalid(
                "auth",
                "root_username",
                "root username and password must not be empty".into(),
            ));
        }
        Ok(ServerConfig {
            data_dir: PathBuf::from(self.server.data_dir),
            native: NativeConfig {
                address,
                max_request_size,
                max_poll_messages: self.native.max_poll_messages.max(1),
                max_poll_bytes,
                limits: native_limits,
                tls: native_tls,
                more_listeners: native_listeners,
            },
            kafka,
            store,
            root_username: self.auth.root_username,
            root_password: self.auth.root_password,
            queued_max_request_bytes,
            peer_log_interval,
            max_partitions_per_topic: self.server.max_partitions_per_topic,
            max_partitions: self.server.max_partitions,
            logins,
            http: self.http.resolve()?,
            metrics: self.metrics.resolve()?,
        })
    }
}

/// Smallest and largest `[remote_storage] chunk_size`: a remote read fetches a chunk and the
/// next one in one request and holds them in memory while they are written to the cache.
pub const MIN_REMOTE_CHUNK: u64 = 1 << 10;
pub const MAX_REMOTE_CHUNK: u64 = 64 << 20;

/// Largest `reader_threads` and `reader_max_pending_tasks`: every remote read running or
/// waiting holds one of the server's blocking threads (tokio's pool has 512), so together
/// they stay well below it.
pub const MAX_REMOTE_READERS: u32 = 128;

/// The read cache's default folder in the data directory: the only place inside it the cache
/// may be.
pub const DEFAULT_REMOTE_CACHE_DIR: &str = "remote-cache";

impl RawRemoteStorage {
    /// The remote tier (`None` while `enable` is false). Every setting is checked either way;
    /// the object store's client is built only when enabled, and makes no request yet, so a
    /// server starts while its object store is down.
    fn resolve(&self, data_dir: &Path) -> Result<Option<RemoteTier>, ConfigError> {
        let invalid = |key, message: String| ConfigError::Invalid {
            section: "remote_storage",
            key,
            message,
        };
        let positive = |key, text: &str| {
            parse_duration(text)
                .and_then(|d| {
                    (!d.is_zero())
                        .then_some(d)
                        .ok_or_else(|| "must be positive".to_string())
                })
                .map_err(|m| invalid(key, m))
        };
        let text = |v: &str| {
            let v = v.trim();
            (!v.is_empty()).then(|| v.to_string())
        };
        let request_timeout = positive("request_timeout", &self.request_timeout)?;
        let connect_timeout = positive("connect_timeout", &self.connect_timeout)?;
        let chunk_size = parse_size(&self.chunk_size)
            .and_then(|v| {
                (MIN_REMOTE_CHUNK..=MAX_REMOTE_CHUNK)
                    .contains(&v)
                    .then_some(v)
                    .ok_or_else(|| "must be 1 KiB..=64 MiB".to_string())
            })
            .map_err(|m| invalid("chunk_size", m))?;
        // A read fetches a chunk and the one after it: the cache holds at least both.
        let cache_max_bytes = parse_size(&self.cache_max_size)
            .and_then(|v| {
                (v >= 2 * chunk_size)
                    .then_some(v)
                    .ok_or_else(|| format!("must be at least two chunks ({} B)", 2 * chunk_size))
            })
            .map_err(|m| invalid("cache_max_size", m))?;
        let task_interval = positive("task_interval", &self.task_interval)?;
        let retry_backoff = positive("retry_backoff", &self.retry_backoff)?;
        let retry_backoff_max = positive("retry_backoff_max", &self.retry_backoff_max)?;
        if retry_backoff_max < retry_backoff {
            return Err(invalid(
                "retry_backoff_max",
                format!("must be at least retry_backoff ({retry_backoff:?})"),
            ));
        }
        let copy_max_bytes_per_second = match &self.copy_max_bytes_per_second {
            SizeOrCount::Count(n) => u64::try_from(*n)
                .map_err(|_| "must be 0 (unlimited) or a positive number of bytes".to_string()),
            SizeOrCount::Size(t) => parse_size(t),
        }
        .map_err(|m| invalid("copy_max_bytes_per_second", m))?;
        // Kafka: atLeast(1) for both.
        let readers = |key, n: u32| {
            (1..=MAX_REMOTE_READERS)
                .contains(&n)
                .then_some(n as usize)
                .ok_or_else(|| invalid(key, format!("must be 1..={MAX_REMOTE_READERS}, not {n}")))
        };
        let reader_threads = readers("reader_threads", self.reader_threads)?;
        let reader_max_pending_tasks =
            readers("reader_max_pending_tasks", self.reader_max_pending_tasks)?;
        let cache_dir = text(&self.cache_dir).map(PathBuf::from);
        if let Some(dir) = &cache_dir {
            check_cache_dir(dir, data_dir).map_err(|m| invalid("cache_dir", m))?;
        }
        let manifest_max_segments = usize::try_from(self.manifest_max_segments)
            .ok()
            .filter(|n| (1..=MAX_MANIFEST_SEGMENTS).contains(n))
            .ok_or_else(|| {
                invalid(
                    "manifest_max_segments",
                    format!("must be 1..={MAX_MANIFEST_SEGMENTS}"),
                )
            })?;
        let settings = RemoteSettings {
            cache_dir,
            cache_max_bytes,
            chunk_size,
            task_interval,
            retry_backoff,
            retry_backoff_max,
            copy_max_bytes_per_second: (copy_max_bytes_per_second > 0)
                .then_some(copy_max_bytes_per_second),
            reader_threads,
            reader_max_pending_tasks,
            manifest_max_segments,
        };
        let kind = match self.kind.trim() {
            "s3" => {
                if self.enable && text(&self.bucket).is_none() {
                    return Err(invalid("bucket", "must be set for kind = \"s3\"".into()));
                }
                // object_store would refuse it only at the first request, while running.
                let plain = text(&self.endpoint)
                    .is_some_and(|e| e.to_ascii_lowercase().starts_with("http://"));
                if plain && !self.allow_http {
                    return Err(invalid(
                        "allow_http",
                        "the endpoint is plain http://: set allow_http = true (trusted networks \
                         only) or use https://"
                            .into(),
                    ));
                }
                RemoteKind::S3(S3Config {
                    bucket: self.bucket.trim().to_string(),
                    region: text(&self.region),
                    endpoint: text(&self.endpoint),
                    access_key_id: text(&self.access_key_id),
                    secret_access_key: text(&self.secret_access_key),
                    session_token: text(&self.session_token),
                    path_style: self.path_style,
                    allow_http: self.allow_http,
                })
            }
            "filesystem" => match text(&self.root) {
                Some(root) => RemoteKind::Filesystem {
                    root: PathBuf::from(root),
                },
                None if self.enable => {
                    return Err(invalid(
                        "root",
                        "must be set for kind = \"filesystem\"".into(),
                    ))
                }
                None => return Ok(None),
            },
            other => {
                return Err(invalid(
                    "kind",
                    format!("'{other}' is not \"s3\" or \"filesystem\""),
                ))
            }
        };
        if !self.enable {
            return Ok(None);
        }
        let config = RemoteConfig {
            kind,
            prefix: self.prefix.trim().to_string(),
            request_timeout,
            connect_timeout,
        };
        let store = ObjectStoreRemote::open(config).map_err(|e| invalid("kind", e.to_string()))?;
        Ok(Some(RemoteTier {
            store: Arc::new(store),
            settings,
        }))
    }
}

/// Refuses a read-cache folder that would share files with the data directory: the same
/// folder, one holding it, or one inside it other than the default `remote-cache`. The cache
/// removes its own files when the server starts; its folder must be its own.
fn check_cache_dir(cache_dir: &Path, data_dir: &Path) -> Result<(), String> {
    let cache = full_path(cache_dir)?;
    let data = full_path(data_dir)?;
    if cache == data.join(DEFAULT_REMOTE_CACHE_DIR) {
        return Ok(());
    }
    let clash = if cache == data {
        "is the data directory"
    } else if data.starts_with(&cache) {
        "contains the data directory"
    } else if cache.starts_with(&data) {
        "is inside the data directory"
    } else {
        return Ok(());
    };
    Err(format!(
        "'{}' {clash} ('{}'); use a folder of its own, or leave it empty for \
         '{DEFAULT_REMOTE_CACHE_DIR}' in the data directory",
        cache_dir.display(),
        data_dir.display()
    ))
}

/// `path` absolute, with `.` and `..` resolved and symbolic links followed as far as the
/// path exists (what does not exist yet is appended as written).
fn full_path(path: &Path) -> Result<PathBuf, String> {
    use std::path::Component;
    let absolute = std::path::absolute(path).map_err(|e| format!("'{}': {e}", path.display()))?;
    let mut lexical = PathBuf::new();
    for c in absolute.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                lexical.pop();
            }
            other => lexical.push(other),
        }
    }
    // The longest part that exists, with its links resolved, then the rest.
    let mut rest = Vec::new();
    let mut existing = lexical.as_path();
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut out = real;
            out.extend(rest.iter().rev());
            return Ok(out);
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return Ok(lexical),
        }
    }
}

impl RawMetrics {
    fn resolve(self) -> Result<MetricsConfig, ConfigError> {
        // 0 would make every lag answer empty, read as "no committed offsets": refused.
        if self.max_lag_series == 0 {
            return Err(ConfigError::Invalid {
                section: "metrics",
                key: "max_lag_series",
                message: "must be at least 1".into(),
            });
        }
        Ok(MetricsConfig {
            enable: self.enable,
            max_lag_series: self.max_lag_series,
        })
    }
}

impl RawKafka {
    fn resolve(self) -> Result<KafkaConfig, ConfigError> {
        let invalid = |key, message: String| ConfigError::Invalid {
            section: "kafka",
            key,
            message,
        };
        let address = self
            .address
            .parse::<SocketAddr>()
            .map_err(|e| invalid("address", format!("'{}': {e}", self.address)))?;
        let max_request_size = parse_size(&self.max_request_size)
            .and_then(|v| {
                u32::try_from(v)
                    .ok()
                    .filter(|&v| (1024..=i32::MAX as u32).contains(&v))
                    .ok_or_else(|| "must be between 1 KiB and 2 GiB".to_string())
            })
            .map_err(|m| invalid("max_request_size", m))?;
        let fetch_max_bytes = parse_size(&self.fetch_max_bytes)
            .and_then(|v| {
                u32::try_from(v)
                    .ok()
                    .filter(|&v| (1024..=i32::MAX as u32).contains(&v))
                    .ok_or_else(|| "must be between 1 KiB and 2 GiB".to_string())
            })
            .map_err(|m| invalid("fetch_max_bytes", m))?;
        let limits = connection_limits(
            "kafka",
            self.max_connections,
            self.max_connections_per_ip,
            &self.connections_max_idle,
            &self.request_read_timeout,
        )?;
        if self.default_partitions == 0 {
            return Err(invalid("default_partitions", "must be at least 1".into()));
        }
        wharf_log_store::validate_name("stream", &self.default_stream)
            .map_err(|e| invalid("default_stream", e.to_string()))?;
        let host = self.advertised_host.trim();
        if host.contains(char::is_whitespace) {
            return Err(invalid(
                "advertised_host",
                format!("'{host}' is not a host"),
            ));
        }
        let duration = |key, text: &str| parse_duration(text).map_err(|m| invalid(key, m));
        let min_session = duration("group_min_session_timeout", &self.group_min_session_timeout)?;
        let max_session = duration("group_max_session_timeout", &self.group_max_session_timeout)?;
        if min_session > max_session || max_session.as_millis() > i32::MAX as u128 {
            return Err(invalid(
                "group_max_session_timeout",
                "must be at least group_min_session_timeout and below 24 days".into(),
            ));
        }
        // KIP-848's `group.consumer.*`, checked as Kafka's GroupCoordinatorConfig does.
        let consumer = ConsumerProtocolSettings {
            session_timeout: duration(
                "group_consumer_session_timeout",
                &self.group_consumer_session_timeout,
            )?,
            min_session_timeout: duration(
                "group_consumer_min_session_timeout",
                &self.group_consumer_min_session_timeout,
            )?,
            max_session_timeout: duration(
                "group_consumer_max_session_timeout",
                &self.group_consumer_max_session_timeout,
            )?,
            heartbeat_interval: duration(
                "group_consumer_heartbeat_interval",
                &self.group_consumer_heartbeat_interval,
            )?,
            min_heartbeat_interval: duration(
                "group_consumer_min_heartbeat_interval",
                &self.group_consumer_min_heartbeat_interval,
            )?,
            max_heartbeat_interval: duration(
                "group_consumer_max_heartbeat_interval",
                &self.group_consumer_max_heartbeat_interval,
            )?,
            max_size: usize::try_from(self.group_consumer_max_size).unwrap_or(usize::MAX),
            assignors: self
                .group_consumer_assignors
                .split(',')
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect(),
            migration_policy: self.group_consumer_migration_policy.trim().to_lowercase(),
        };
        let c = &consumer;
        if !(c.min_session_timeout..=c.max_session_timeout).contains(&c.session_timeout)
            || c.max_session_timeout.as_millis() > i32::MAX as u128
        {
            return Err(invalid(
                "group_consumer_session_timeout",
                "must lie within group_consumer_min_session_timeout and group_consumer_max_session_timeout".into(),
            ));
        }
        if !(c.min_heartbeat_interval..=c.max_heartbeat_interval).contains(&c.heartbeat_interval)
            || c.heartbeat_interval.is_zero()
        {
            return Err(invalid(
                "group_consumer_heartbeat_interval",
                "must lie within group_consumer_min_heartbeat_interval and group_consumer_max_heartbeat_interval".into(),
            ));
        }
        if c.heartbeat_interval >= c.session_timeout {
            return Err(invalid(
                "group_consumer_heartbeat_interval",
                "must be below group_consumer_session_timeout".into(),
            ));
        }
        if c.max_size == 0 {
            return Err(invalid(
                "group_consumer_max_size",
                "must be at least 1".into(),
            ));
        }
        if c.assignors.is_empty()
            || c.assignors
                .iter()
                .any(|a| crate::broker::assignor::Assignor::from_name(a).is_none())
        {
            return Err(invalid(
                "group_consumer_assignors",
                "a comma-separated list of uniform and range".into(),
            ));
        }
        if !["bidirectional", "upgrade", "downgrade", "disabled"]
            .contains(&c.migration_policy.as_str())
        {
            return Err(invalid(
                "group_consumer_migration_policy",
                "one of bidirectional, upgrade, downgrade, disabled".into(),
            ));
        }
        let groups = CoordinatorSettings {
            min_session_timeout: min_session,
            max_session_timeout: max_session,
            initial_rebalance_delay: duration(
                "group_initial_rebalance_delay",
                &self.group_initial_rebalance_delay,
            )?,
            consumer,
            ..CoordinatorSettings::default()
        };
        let transactions = TransactionSettings {
            max_timeout: duration("transaction_max_timeout", &self.transaction_max_timeout)?,
            id_expiration: duration(
                "transactional_id_expiration",
                &self.transactional_id_expiration,
            )?,
            abort_timed_out_interval: duration(
                "transaction_abort_timed_out_transaction_cleanup_interval",
                &self.transaction_abort_timed_out_transaction_cleanup_interval,
            )?,
            remove_expired_interval: duration(
                "transaction_remove_expired_transaction_cleanup_interval",
                &self.transaction_remove_expired_transaction_cleanup_interval,
            )?,
            max_transactional_ids: self.max_transactional_ids as usize,
        };
        if transactions.max_timeout.is_zero()
            || transactions.max_timeout.as_millis() > i32::MAX as u128
        {
            return Err(invalid(
                "transaction_max_timeout",
                "must be above 0 and below 24 days (an i32 of ms, as Kafka's)".into(),
            ));
        }
        if transactions.abort_timed_out_interval.is_zero()
            || transactions.remove_expired_interval.is_zero()
        {
            return Err(invalid(
                "transaction_abort_timed_out_transaction_cleanup_interval",
                "the cleanup intervals must be above 0".into(),
            ));
        }
        if transactions.max_transactional_ids == 0 {
            return Err(invalid(
                "max_transactional_ids",
                "must be at least 1".into(),
            ));
        }
        if !(1..=MAX_INFLIGHT_DECOMPRESSIONS).contains(&self.max_inflight_decompressions) {
            return Err(invalid(
                "max_inflight_decompressions",
                format!("must be 1..={MAX_INFLIGHT_DECOMPRESSIONS}"),
            ));
        }
        if self.quota_window_num == 0 {
            return Err(invalid("quota_window_num", "must be at least 1".into()));
        }
        let quota_window_size =
            parse_duration(&self.quota_window_size).map_err(|m| invalid("quota_window_size", m))?;
        if quota_window_size < Duration::from_secs(1) {
            return Err(invalid(
                "quota_window_size",
                "must be at least 1 s, as Kafka's quota.window.size.seconds".into(),
            ));
        }
        let authentication =
            kafka_authentication(&self.authentication).map_err(|m| invalid("authentication", m))?;
        let mut sasl_mechanisms = Vec::new();
        for name in self.sasl_enabled_mechanisms.split(',').map(str::trim) {
            if name.is_empty() {
                continue;
            }
            let m = SaslMechanism::from_name(name).ok_or_else(|| {
                invalid(
                    "sasl_enabled_mechanisms",
                    format!("'{name}' is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
                )
            })?;
            if !sasl_mechanisms.contains(&m) {
                sasl_mechanisms.push(m);
            }
        }
        let connections_max_reauth =
            duration("connections_max_reauth", &self.connections_max_reauth)?;
        let failed_authentication_delay = duration(
            "failed_authentication_delay",
            &self.failed_authentication_delay,
        )?;
        if failed_authentication_delay >= limits.idle_timeout {
            return Err(invalid(
                "failed_authentication_delay",
                "must be below connections_max_idle, as Kafka requires".into(),
            ));
        }
        let tls = tls_settings(
            "kafka",
            &self.tls_cert_file,
            &self.tls_key_file,
            &self.tls_client_ca_file,
        )?;
        let advertised_host = advertised(host);
        let main = KafkaListener {
            address,
            advertised_host: advertised_host.clone(),
            advertised_port: (self.advertised_port != 0).then_some(self.advertised_port),
            authentication,
            tls: tls.is_some(),
        };
        let mut more_listeners = Vec::with_capacity(self.listeners.len());
        for l in &self.listeners {
            let address = l
                .address
                .parse::<SocketAddr>()
                .map_err(|e| invalid("listeners", format!("address '{}': {e}", l.address)))?;
            let host = l.advertised_host.trim();
            if host.contains(char::is_whitespace) {
                return Err(invalid(
                    "listeners",
                    format!("listener {address}: advertised_host '{host}' is not a host"),
                ));
            }
            let authentication = kafka_authentication(&l.authentication)
                .map_err(|m| invalid("listeners", format!("listener {address}: {m}")))?;
            if l.tls && tls.is_none() {
                return Err(invalid(
                    "listeners",
                    format!("listener {address} has tls = true but tls_cert_file and tls_key_file are not set"),
                ));
            }
            more_listeners.push(KafkaListener {
                address,
                advertised_host: advertised(host),
                advertised_port: (l.advertised_port != 0).then_some(l.advertised_port),
                authentication,
                tls: l.tls,
            });
        }
        for l in std::iter::once(&main).chain(&more_listeners) {
            if l.authentication == KafkaAuthentication::Sasl && sasl_mechanisms.is_empty() {
                return Err(invalid(
                    "sasl_enabled_mechanisms",
                    format!(
                        "listener {} uses SASL but no mechanism is enabled",
                        l.address
                    ),
                ));
            }
            if l.authentication == KafkaAuthentication::None
                && !l.address.ip().is_loopback()
                && !self.allow_anonymous
            {
                return Err(invalid(
                    "authentication",
                    format!(
                        "listener {} is not on loopback and has authentication = \"none\": anyone \
                         who reaches it could read, write and delete every topic. Set \
                         authentication = \"sasl\", or allow_anonymous = true to accept that",
                        l.address
                    ),
                ));
            }
        }
        Ok(KafkaConfig {
            groups,
            transactions,
            address,
            advertised_host,
            advertised_port: main.advertised_port,
            authentication,
            allow_anonymous: self.allow_anonymous,
            sasl_mechanisms,
            connections_max_reauth: (!connections_max_reauth.is_zero())
                .then_some(connections_max_reauth),
            failed_authentication_delay,
            tls,
            more_listeners,
            max_request_size,
            fetch_max_bytes,
            max_incremental_fetch_session_cache_slots: self
                .max_incremental_fetch_session_cache_slots,
            limits,
            auto_create_topics: self.auto_create_topics,
            default_partitions: self.default_partitions,
            default_stream: self.default_stream,
            max_inflight_decompressions: self.max_inflight_decompressions as usize,
            quota_windows: QuotaWindows {
                samples: self.quota_window_num,
                size: quota_window_size,
            },
        })
    }
}

impl KafkaConfig {
    /// Every Kafka listener, the main one (`address`) first.
    pub fn listeners(&self) -> Vec<KafkaListener> {
        let main = KafkaListener {
            address: self.address,
            advertised_host: self.advertised_host.clone(),
            advertised_port: self.advertised_port,
            authentication: self.authentication,
            tls: self.tls.is_some(),
        };
        std::iter::once(main)
            .chain(self.more_listeners.iter().cloned())
            .collect()
    }
}

impl NativeConfig {
    /// Every native listener, the main one (`address`) first.
    pub fn listeners(&self) -> Vec<NativeListener> {
        let main = NativeListener {
            address: self.address,
            tls: self.tls.is_some(),
        };
        std::iter::once(main)
            .chain(self.more_listeners.iter().cloned())
            .collect()
    }
}

fn kafka_authentication(text: &str) -> Result<KafkaAuthentication, String> {
    match text.trim() {
        "none" => Ok(KafkaAuthentication::None),
        "sasl" => Ok(KafkaAuthentication::Sasl),
        other => Err(format!("'{other}' is not \"none\" or \"sasl\"")),
    }
}

/// An advertised host as written in the config: empty is none; IPv6 without brackets.
fn advertised(host: &str) -> Option<String> {
    (!host.is_empty()).then(|| host.trim_matches(['[', ']']).to_string())
}

/// A door's TLS files: none, or certificate and key (and perhaps a client CA), each readable.
fn tls_settings(
    section: &'static str,
    cert: &str,
    key: &str,
    client_ca: &str,
) -> Result<Option<TlsSettings>, ConfigError> {
    let invalid = |key, message: String| ConfigError::Invalid {
        section,
        key,
        message,
    };
    let (cert, key, client_ca) = (cert.trim(), key.trim(), client_ca.trim());
    match (cert.is_empty(), key.is_empty()) {
        (true, true) => {
            if !client_ca.is_empty() {
                return Err(invalid(
                    "tls_client_ca_file",
                    "needs tls_cert_file and tls_key_file".into(),
                ));
            }
            Ok(None)
        }
        (false, false) => Ok(Some(TlsSettings {
            cert_file: PathBuf::from(cert),
            key_file: PathBuf::from(key),
            client_ca_file: (!client_ca.is_empty()).then(|| PathBuf::from(client_ca)),
        })),
        (true, false) => Err(invalid(
            "tls_cert_file",
            "tls_key_file is set but tls_cert_file is not".into(),
        )),
        (false, true) => Err(invalid(
            "tls_key_file",
            "tls_cert_file is set but tls_key_file is not".into(),
        )),
    }
}

impl RawHttp {
    fn resolve(self) -> Result<HttpConfig, ConfigError> {
        let invalid = |key, message: String| ConfigError::Invalid {
            section: "http",
            key,
            message,
        };
        let address = match self.address.trim() {
            "" => None,
            a => Some(
                a.parse::<SocketAddr>()
                    .map_err(|e| invalid("address", format!("'{a}': {e}")))?,
            ),
        };
        if !(1..=4096).contains(&self.max_connections) {
            return Err(invalid(
                "max_connections",
                "must be between 1 and 4096".into(),
            ));
        }
        // Above max_connections it is simply not reached: the total cap holds first.
        if !(1..=4096).contains(&self.max_connections_per_ip) {
            return Err(invalid(
                "max_connections_per_ip",
                "must be between 1 and 4096".into(),
            ));
        }
        let request_timeout = parse_duration(&self.request_timeout)
            .and_then(|d| {
                if d.is_zero() {
                    Err("must be positive".to_string())
                } else {
                    Ok(d)
                }
            })
            .map_err(|m| invalid("request_timeout", m))?;
        Ok(HttpConfig {
            address,
            tls: tls_settings(
                "http",
                &self.tls_cert_file,
                &self.tls_key_file,
                &self.tls_client_ca_file,
            )?,
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            request_timeout,
        })
    }
}

/// A door's connection limits, checked.
fn connection_limits(
    section: &'static str,
    max_connections: u32,
    max_connections_per_ip: u32,
    idle: &str,
    read: &str,
) -> Result<ConnectionLimits, ConfigError> {
    let invalid = |key, message: String| ConfigError::Invalid {
        section,
        key,
        message,
    };
    if max_connections == 0 || max_connections_per_ip == 0 {
        return Err(invalid(
            "max_connections",
            "max_connections and max_connections_per_ip must be at least 1".into(),
        ));
    }
    let positive = |key, text: &str| {
        parse_duration(text)
            .and_then(|d| {
                if d.is_zero() {
                    Err("must be positive".to_string())
                } else {
                    Ok(d)
                }
            })
            .map_err(|m| invalid(key, m))
    };
    Ok(ConnectionLimits {
        max_connections,
        max_connections_per_ip,
        idle_timeout: positive("connections_max_idle", idle)?,
        request_read_timeout: positive("request_read_timeout", read)?,
    })
}

fn parse(text: &str, origin: &str) -> Result<Table, ConfigError> {
    text.parse::<Table>().map_err(|e| ConfigError::Parse {
        path: origin.to_string(),
        message: e.to_string(),
    })
}

/// Merges `overlay` into `base`, refusing sections or keys the defaults do not have.
fn merge(base: &mut Table, overlay: Table, origin: &str) -> Result<(), ConfigError> {
    for (section, value) in overlay {
        let Some(Value::Table(target)) = base.get_mut(&section) else {
            return Err(ConfigError::UnknownKey {
                section,
                key: String::new(),
                origin: origin.to_string(),
            });
        };
        let Value::Table(values) = value else {
            return Err(ConfigError::Parse {
                path: origin.to_string(),
                message: format!("[{section}] must be a table"),
            });
        };
        for (key, v) in values {
            if !target.contains_key(&key) {
                return Err(ConfigError::UnknownKey {
                    section,
                    key,
                    origin: origin.to_string(),
                });
            }
            target.insert(key, v);
        }
    }
    Ok(())
}

/// Applies `WHARF_<SECTION>_<KEY>` variables, typed like the default they replace.
fn apply_env(table: &mut Table, env: &[(String, String)]) -> Result<(), ConfigError> {
    for (section, values) in table.iter_mut() {
        let Value::Table(values) = values else {
            continue;
        };
        for (key, value) in values.iter_mut() {
            let var = format!("WHARF_{}_{}", section.to_uppercase(), key.to_uppercase());
            let Some((_, raw)) = env.iter().find(|(k, _)| *k == var) else {
                continue;
            };
            let bad = |message: String| ConfigError::Env {
                var: var.clone(),
                message,
            };
            *value = match value {
                Value::String(_) => Value::String(raw.clone()),
                Value::Boolean(_) => Value::Boolean(
                    raw.parse::<bool>()
                        .map_err(|_| bad(format!("'{raw}' is not true or false")))?,
                ),
                Value::Integer(_) => Value::Integer(
                    raw.parse::<i64>()
                        .map_err(|_| bad(format!("'{raw}' is not an integer")))?,
                ),
                other => return Err(bad(format!("cannot override a {} value", other.type_str()))),
            };
        }
    }
    Ok(())
}

pub use wharf_protocol::units::{parse_duration, parse_size};

impl ServerConfig {
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn defaults_match_the_documented_values() {
        let c = ServerConfig::load_from(&Overrides::default(), &[]).unwrap();
        assert_eq!(c.native.address.to_string(), "127.0.0.1:8090");
        assert_eq!(c.kafka.address.to_string(), "127.0.0.1:9092");
        assert_eq!(c.kafka.default_stream, "default");
        assert!(c.kafka.auto_create_topics);
        assert_eq!(c.kafka.default_partitions, 1);
        assert_eq!(c.kafka.advertised_host, None);
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.root_username, "iggy");
        assert_eq!(c.queued_max_request_bytes, 512 << 20);
        assert_eq!(c.kafka.fetch_max_bytes, 55 << 20);
        assert_eq!(c.kafka.max_incremental_fetch_session_cache_slots, 1000);
        assert_eq!(c.native.max_poll_bytes, 55 << 20);
        assert_eq!(c.kafka.limits.idle_timeout, Duration::from_secs(600));
        assert_eq!(
            c.native.limits.request_read_timeout,
            Duration::from_secs(30)
        );
        assert_eq!(c.store.max_open_files, 512);
        assert_eq!(c.logins, LoginSettings::default());
        assert_eq!(
            (c.max_partitions_per_topic, c.max_partitions),
            (1000, 100_000)
        );
        assert_eq!(c.store.default_segment_size, 1 << 30);
        assert_eq!(c.store.default_durability, Durability::Os);
        assert_eq!(c.store.fsync_interval, Duration::from_secs(1));
        assert_eq!(
            c.store.writeback_bytes,
            wharf_log_store::DEFAULT_WRITEBACK_BYTES
        );
        assert_eq!(
            c.store.preallocate_bytes,
            wharf_log_store::DEFAULT_PREALLOCATE_BYTES
        );
        assert_eq!(c.kafka.groups.min_session_timeout, Duration::from_secs(6));
        assert_eq!(
            c.kafka.groups.max_session_timeout,
            Duration::from_secs(1800)
        );
        assert_eq!(
            c.kafka.groups.initial_rebalance_delay,
            Duration::from_secs(3)
        );
        // Kafka's defaults for its transaction settings.
        let t = &c.kafka.transactions;
        let kafka = crate::broker::TransactionSettings::default();
        assert_eq!(
            (t.max_timeout, t.id_expiration, t.abort_timed_out_interval),
            (
                kafka.max_timeout,
                kafka.id_expiration,
                kafka.abort_timed_out_interval
            )
        );
        assert_eq!(t.remove_expired_interval, kafka.remove_expired_interval);
        assert_eq!(t.max_transactional_ids, 100_000);
    }

    #[test]
    fn cleaner_defaults_are_kafkas() {
        let c = ServerConfig::load_from(&Overrides::default(), &[]).unwrap();
        // The embedded server.toml and the store's built-in defaults (Kafka's) agree, so
        // DescribeConfigs reports DEFAULT_CONFIG for an untouched server.
        assert_eq!(c.store.cleaner, wharf_log_store::CleanerConfig::default());
        let k = &c.store.cleaner;
        assert!(k.enabled);
        assert_eq!(k.dedupe_buffer_size, 128 << 20);
        assert_eq!(k.io_max_bytes_per_second, None);
        assert_eq!(k.backoff, Duration::from_secs(15));
        assert_eq!(k.min_cleanable_dirty_ratio.as_f64(), 0.5);
        assert_eq!(k.min_compaction_lag, Duration::ZERO);
        assert_eq!(k.max_compaction_lag, None);
        assert_eq!(k.delete_retention, Duration::from_secs(86_400));
    }

    #[test]
    fn cleaner_settings_come_from_file_and_env_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.toml");
        std::fs::write(
            &file,
            "[cleaner]\nenable = false\nio_max_bytes_per_second = \"10 MiB\"\nmax_compaction_lag = \"1 h\"\n",
        )
        .unwrap();
        let overrides = Overrides {
            config_file: Some(file),
            ..Overrides::default()
        };
        let c = ServerConfig::load_from(
            &overrides,
            &env(&[
                ("WHARF_CLEANER_BACKOFF", "200 ms"),
                ("WHARF_CLEANER_DEDUPE_BUFFER_SIZE", "4 KiB"),
                ("WHARF_CLEANER_MIN_CLEANABLE_DIRTY_RATIO", "0.1"),
                ("WHARF_CLEANER_MIN_COMPACTION_LAG", "1 s"),
                ("WHARF_CLEANER_DELETE_RETENTION", "100 ms"),
            ]),
        )
        .unwrap();
        let k = &c.store.cleaner;
        assert!(!k.enabled);
        assert_eq!(k.io_max_bytes_per_second, Some(10 << 20));
        assert_eq!(k.max_compaction_lag, Some(Duration::from_secs(3600)));
        assert_eq!(k.backoff, Duration::from_millis(200));
        assert_eq!(k.dedupe_buffer_size, 4096);
        assert_eq!(k.min_cleanable_dirty_ratio.as_f64(), 0.1);
        assert_eq!(k.min_compaction_lag, Duration::from_secs(1));
        assert_eq!(k.delete_retention, Duration::from_millis(100));
        for (var, value, key) in [
            ("WHARF_CLEANER_ENABLE", "yes", "WHARF_CLEANER_ENABLE"),
            (
                "WHARF_CLEANER_DEDUPE_BUFFER_SIZE",
                "512 B",
                "dedupe_buffer_size",
            ),
            (
                "WHARF_CLEANER_IO_MAX_BYTES_PER_SECOND",
                "0",
                "io_max_bytes_per_second",
            ),
            ("WHARF_CLEANER_BACKOFF", "0 s", "backoff"),
            (
                "WHARF_CLEANER_MIN_CLEANABLE_DIRTY_RATIO",
                "1.5",
                "min_cleanable_dirty_ratio",
            ),
            (
                "WHARF_CLEANER_MIN_CLEANABLE_DIRTY_RATIO",
                "half",
                "min_cleanable_dirty_ratio",
            ),
            (
                "WHARF_CLEANER_MAX_COMPACTION_LAG",
                "0 s",
                "max_compaction_lag",
            ),
            ("WHARF_CLEANER_DELETE_RETENTION", "1", "delete_retention"),
        ] {
            let e = ServerConfig::load_from(&Overrides::default(), &env(&[(var, value)]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{var}={value}: {e}");
        }
        // Kafka's rule: the minimum lag may not exceed the maximum.
        let e = ServerConfig::load_from(
            &Overrides::default(),
            &env(&[
                ("WHARF_CLEANER_MIN_COMPACTION_LAG", "2 h"),
                ("WHARF_CLEANER_MAX_COMPACTION_LAG", "1 h"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("min_compaction_lag"), "{e}");
    }

    /// Bound (review 17 #11): `dedupe_buffer_size` at most [`MAX_DEDUPE_BUFFER`] (2 GiB,
    /// Kafka's ceiling per cleaner thread); above it the server refuses to start, naming the
    /// key, instead of failing to allocate the map in the cleaner thread later.
    /// `[kafka] max_inflight_decompressions`: 1..=64, default 2.
    #[test]
    fn the_dedupe_buffer_and_inflight_decompressions_are_bounded() {
        let load = |var: &str, value: &str| {
            ServerConfig::load_from(&Overrides::default(), &env(&[(var, value)]))
        };
        let dedupe = "WHARF_CLEANER_DEDUPE_BUFFER_SIZE";
        let c = load(dedupe, "2 GiB").unwrap();
        assert_eq!(c.store.cleaner.dedupe_buffer_size, MAX_DEDUPE_BUFFER);
        for too_big in ["2147483649", "3 GiB", "16 TiB"] {
            let e = load(dedupe, too_big).unwrap_err().to_string();
            assert!(
                e.contains("[cleaner] dedupe_buffer_size") && e.contains("2 GiB"),
                "{too_big}: {e}"
            );
        }
        let inflight = "WHARF_KAFKA_MAX_INFLIGHT_DECOMPRESSIONS";
        let c = ServerConfig::load_from(&Overrides::default(), &[]).unwrap();
        assert_eq!(c.kafka.max_inflight_decompressions, 2);
        assert_eq!(
            load(inflight, "64")
                .unwrap()
                .kafka
                .max_inflight_decompressions,
            64
        );
        for bad in ["0", "65"] {
            let e = load(inflight, bad).unwrap_err().to_string();
            assert!(
                e.contains("[kafka] max_inflight_decompressions"),
                "{bad}: {e}"
            );
        }
    }

    /// `[kafka] quota_window_num` (at least 1, default Kafka's 11) and `quota_window_size` (at
    /// least 1 s, default 1 s).
    #[test]
    fn quota_windows_are_read_and_checked() {
        let load = |var: &str, value: &str| {
            ServerConfig::load_from(&Overrides::default(), &env(&[(var, value)]))
        };
        let c = ServerConfig::load_from(&Overrides::default(), &[]).unwrap();
        assert_eq!(c.kafka.quota_windows, QuotaWindows::default());
        assert_eq!(c.kafka.quota_windows.samples, 11);
        let c = load("WHARF_KAFKA_QUOTA_WINDOW_NUM", "3").unwrap();
        assert_eq!(c.kafka.quota_windows.samples, 3);
        let c = load("WHARF_KAFKA_QUOTA_WINDOW_SIZE", "2 s").unwrap();
        assert_eq!(c.kafka.quota_windows.size, Duration::from_secs(2));
        let e = load("WHARF_KAFKA_QUOTA_WINDOW_NUM", "0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[kafka] quota_window_num"), "{e}");
        let e = load("WHARF_KAFKA_QUOTA_WINDOW_SIZE", "500 ms")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[kafka] quota_window_size"), "{e}");
    }

    #[test]
    fn transaction_settings_are_read_and_checked() {
        let var = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let env = var(
            "WHARF_KAFKA_TRANSACTION_ABORT_TIMED_OUT_TRANSACTION_CLEANUP_INTERVAL",
            "200 ms",
        );
        let c = ServerConfig::load_from(&Overrides::default(), &env).unwrap();
        assert_eq!(
            c.kafka.transactions.abort_timed_out_interval,
            Duration::from_millis(200)
        );
        for (k, v) in [
            ("WHARF_KAFKA_TRANSACTION_MAX_TIMEOUT", "0 ms"),
            ("WHARF_KAFKA_TRANSACTION_MAX_TIMEOUT", "30 days"),
            ("WHARF_KAFKA_MAX_TRANSACTIONAL_IDS", "0"),
            ("WHARF_KAFKA_TRANSACTIONAL_ID_EXPIRATION", "soon"),
        ] {
            assert!(
                ServerConfig::load_from(&Overrides::default(), &var(k, v)).is_err(),
                "{k}={v}"
            );
        }
    }

    #[test]
    fn group_timeouts_are_checked() {
        let var = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let env = var("WHARF_KAFKA_GROUP_INITIAL_REBALANCE_DELAY", "0 ms");
        let c = ServerConfig::load_from(&Overrides::default(), &env).unwrap();
        assert_eq!(c.kafka.groups.initial_rebalance_delay, Duration::ZERO);
        let env = var("WHARF_KAFKA_GROUP_MAX_SESSION_TIMEOUT", "1 s");
        let e = ServerConfig::load_from(&Overrides::default(), &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("group_max_session_timeout"), "{e}");
        let env = var("WHARF_KAFKA_GROUP_MIN_SESSION_TIMEOUT", "soon");
        let e = ServerConfig::load_from(&Overrides::default(), &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("group_min_session_timeout"), "{e}");
    }

    /// KIP-848's group.consumer.* keys: Kafka 4's defaults, and Kafka's bounds enforced.
    #[test]
    fn consumer_protocol_settings_are_read_and_checked() {
        let c = ServerConfig::load_from(&Overrides::default(), &[]).unwrap();
        let d = &c.kafka.groups.consumer;
        assert_eq!(d.session_timeout, Duration::from_secs(45));
        assert_eq!(d.heartbeat_interval, Duration::from_secs(5));
        assert_eq!(d.assignors, ["uniform", "range"]);
        assert_eq!(d.migration_policy, "bidirectional");
        let var = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let env = var("WHARF_KAFKA_GROUP_CONSUMER_ASSIGNORS", "range, uniform");
        let c = ServerConfig::load_from(&Overrides::default(), &env).unwrap();
        assert_eq!(c.kafka.groups.consumer.assignors, ["range", "uniform"]);
        for (key, value, named) in [
            (
                "WHARF_KAFKA_GROUP_CONSUMER_SESSION_TIMEOUT",
                "10 s",
                "group_consumer_session_timeout",
            ),
            (
                "WHARF_KAFKA_GROUP_CONSUMER_HEARTBEAT_INTERVAL",
                "1 s",
                "group_consumer_heartbeat_interval",
            ),
            (
                "WHARF_KAFKA_GROUP_CONSUMER_ASSIGNORS",
                "sticky",
                "group_consumer_assignors",
            ),
            (
                "WHARF_KAFKA_GROUP_CONSUMER_MIGRATION_POLICY",
                "sideways",
                "group_consumer_migration_policy",
            ),
            (
                "WHARF_KAFKA_GROUP_CONSUMER_MAX_SIZE",
                "0",
                "group_consumer_max_size",
            ),
        ] {
            let e = ServerConfig::load_from(&Overrides::default(), &var(key, value))
                .unwrap_err()
                .to_string();
            assert!(e.contains(named), "{key}={value}: {e}");
        }
    }

    #[test]
    fn file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[native]\naddress = \"127.0.0.1:1\"\n[storage]\ndefault_durability = \"fsync\"\n",
        )
        .unwrap();
        let env = vec![
            (
                "WHARF_NATIVE_ADDRESS".to_string(),
                "127.0.0.1:2".to_string(),
            ),
            (
                "WHARF_NATIVE_MAX_POLL_MESSAGES".to_string(),
                "7".to_string(),
            ),
        ];
        let mut o = Overrides {
            config_file: Some(file),
            ..Overrides::default()
        };
        let c = ServerConfig::load_from(&o, &env).unwrap();
        assert_eq!(c.native.address.port(), 2);
        assert_eq!(c.native.max_poll_messages, 7);
        assert_eq!(c.store.default_durability, Durability::Fsync);
        o.native_addr = Some("127.0.0.1:3".into());
        o.data_dir = Some("/tmp/x".into());
        let c = ServerConfig::load_from(&o, &env).unwrap();
        assert_eq!(c.native.address.port(), 3);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn mistakes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[native]\nadress = \"x\"\n").unwrap();
        let o = Overrides {
            config_file: Some(file),
            ..Overrides::default()
        };
        let e = ServerConfig::load_from(&o, &[]).unwrap_err().to_string();
        assert!(e.contains("unknown config key [native] adress"), "{e}");
        let env = vec![(
            "WHARF_NATIVE_MAX_POLL_MESSAGES".to_string(),
            "many".to_string(),
        )];
        let e = ServerConfig::load_from(&Overrides::default(), &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("WHARF_NATIVE_MAX_POLL_MESSAGES"), "{e}");
        let env = vec![(
            "WHARF_STORAGE_SEGMENT_SIZE".to_string(),
            "12 parsecs".to_string(),
        )];
        let e = ServerConfig::load_from(&Overrides::default(), &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("segment_size"), "{e}");
        // The storage sizes where 0 turns a mechanism off: the steady writeback of `os` mode
        // and preallocation ahead of the log's end. Each takes a size and names itself when
        // given something else.
        type Field = fn(&ServerConfig) -> u64;
        let sizes: [(&str, &str, Field); 2] = [
            ("WRITEBACK_BYTES", "writeback_bytes", |c| {
                c.store.writeback_bytes
            }),
            ("PREALLOCATE_BYTES", "preallocate_bytes", |c| {
                c.store.preallocate_bytes
            }),
        ];
        for (var, name, field) in sizes {
            let var = format!("WHARF_STORAGE_{var}");
            for (value, bytes) in [("0", 0), ("256 KiB", 256 << 10), ("8 MiB", 8 << 20)] {
                let env = vec![(var.clone(), value.to_string())];
                let c = ServerConfig::load_from(&Overrides::default(), &env).unwrap();
                assert_eq!(field(&c), bytes, "{var}={value}");
            }
            let env = vec![(var.clone(), "lots".to_string())];
            let e = ServerConfig::load_from(&Overrides::default(), &env)
                .unwrap_err()
                .to_string();
            assert!(e.contains(name), "{var}: {e}");
        }
    }

    /// Loads the defaults with `text` as the config file.
    fn load_toml(text: &str) -> Result<ServerConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, text).unwrap();
        let o = Overrides {
            config_file: Some(file),
            ..Overrides::default()
        };
        ServerConfig::load_from(&o, &[])
    }

    #[test]
    fn remote_storage_is_off_by_default_and_its_defaults_are_the_stores() {
        let c = ServerConfig::load_from(&Overrides::default(), &[]).unwrap();
        assert!(
            c.store.remote.is_none(),
            "remote.log.storage.system.enable=false"
        );
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("archive");
        let c = load_toml(&format!(
            "[remote_storage]\nenable = true\nkind = \"filesystem\"\nroot = \"{}\"\n",
            root.display()
        ))
        .unwrap();
        let tier = c.store.remote.expect("a remote tier");
        // server.toml documents the store's own defaults (Kafka's where it has them).
        assert_eq!(tier.settings, RemoteSettings::default());
        assert_eq!(tier.settings.task_interval, Duration::from_secs(30));
        assert_eq!(tier.settings.retry_backoff, Duration::from_millis(500));
        assert_eq!(tier.settings.retry_backoff_max, Duration::from_secs(30));
        assert_eq!(tier.settings.copy_max_bytes_per_second, None);
        assert_eq!(tier.settings.cache_max_bytes, 1 << 30);
        assert_eq!(tier.settings.chunk_size, 4 << 20);
        // The folder store works: what is put is there to get.
        tier.store.put("k", &mut &b"abc"[..], 3).unwrap();
        assert_eq!(tier.store.get("k").unwrap().as_deref(), Some(&b"abc"[..]));
        assert!(root.is_dir());
    }

    #[test]
    fn remote_storage_settings_come_from_file_and_env() {
        let text = r#"
[remote_storage]
enable = true
kind = "s3"
bucket = "wharf-archive"
region = "eu-west-1"
endpoint = "http://127.0.0.1:9"
access_key_id = "id"
secret_access_key = "secret"
allow_http = true
prefix = "wharf/test/"
cache_dir = "/var/cache/wharf"
cache_max_size = "64 MiB"
chunk_size = "1 MiB"
task_interval = "2 s"
retry_backoff = "100 ms"
retry_backoff_max = "1 s"
copy_max_bytes_per_second = "10 MiB"
reader_threads = 4
reader_max_pending_tasks = 20
"#;
        // No request is made: a server starts while its object store is down.
        let c = load_toml(text).unwrap();
        let tier = c.store.remote.clone().expect("a remote tier");
        let s = &tier.settings;
        assert_eq!(s.cache_dir, Some(PathBuf::from("/var/cache/wharf")));
        assert_eq!((s.cache_max_bytes, s.chunk_size), (64 << 20, 1 << 20));
        assert_eq!(s.task_interval, Duration::from_secs(2));
        assert_eq!(
            (s.retry_backoff, s.retry_backoff_max),
            (Duration::from_millis(100), Duration::from_secs(1))
        );
        assert_eq!(s.copy_max_bytes_per_second, Some(10 << 20));
        assert_eq!((s.reader_threads, s.reader_max_pending_tasks), (4, 20));
        // The secret is not in the server config's debug form.
        assert!(!format!("{c:?}").contains("secret"), "{c:?}");
        // A plain number of bytes per second, and the environment's overrides.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("archive").display().to_string();
        let env = env(&[
            ("WHARF_REMOTE_STORAGE_ENABLE", "true"),
            ("WHARF_REMOTE_STORAGE_KIND", "filesystem"),
            ("WHARF_REMOTE_STORAGE_ROOT", root.as_str()),
            ("WHARF_REMOTE_STORAGE_COPY_MAX_BYTES_PER_SECOND", "4096"),
        ]);
        let c = ServerConfig::load_from(&Overrides::default(), &env).unwrap();
        let tier = c.store.remote.expect("a remote tier from the environment");
        assert_eq!(tier.settings.copy_max_bytes_per_second, Some(4096));
    }

    /// Bound: `manifest_max_segments` in 1..=MAX_MANIFEST_SEGMENTS (what a manifest that
    /// reads back may name).
    #[test]
    fn manifest_max_segments_is_read_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let base = format!(
            "[remote_storage]\nenable = true\nkind = \"filesystem\"\nroot = \"{}\"\n",
            dir.path().join("archive").display()
        );
        let c = load_toml(&format!("{base}manifest_max_segments = 50\n")).unwrap();
        let tier = c.store.remote.expect("a remote tier");
        assert_eq!(tier.settings.manifest_max_segments, 50);
        for bad in [0, -1, MAX_MANIFEST_SEGMENTS as i64 + 1] {
            let e = load_toml(&format!("{base}manifest_max_segments = {bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("[remote_storage] manifest_max_segments: must be 1..=1048576"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn remote_storage_mistakes_are_named() {
        for (text, key) in [
            ("enable = true", "bucket"),
            ("enable = true\nkind = \"filesystem\"", "root"),
            ("kind = \"gcs\"", "kind"),
            ("chunk_size = \"512 B\"", "chunk_size"),
            ("chunk_size = \"65 MiB\"", "chunk_size"),
            (
                "chunk_size = \"4 MiB\"\ncache_max_size = \"7 MiB\"",
                "cache_max_size",
            ),
            ("request_timeout = \"0 s\"", "request_timeout"),
            ("task_interval = \"soon\"", "task_interval"),
            (
                "retry_backoff = \"2 s\"\nretry_backoff_max = \"1 s\"",
                "retry_backoff_max",
            ),
            (
                "copy_max_bytes_per_second = -1",
                "copy_max_bytes_per_second",
            ),
            (
                "enable = true\nbucket = \"b\"\nendpoint = \"http://127.0.0.1:9000\"",
                "allow_http",
            ),
            (
                "copy_max_bytes_per_second = \"fast\"",
                "copy_max_bytes_per_second",
            ),
            ("reader_threads = 0", "reader_threads"),
            ("reader_threads = 129", "reader_threads"),
            ("reader_max_pending_tasks = 0", "reader_max_pending_tasks"),
        ] {
            let e = load_toml(&format!("[remote_storage]\n{text}\n"))
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!("[remote_storage] {key}:")),
                "{text}: {e}"
            );
        }
        let e = load_toml("[remote_storage]\nbukket = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown config key [remote_storage] bukket"),
            "{e}"
        );
    }

    /// Bound attacked: where the read cache may be. The cache removes its own files at
    /// start, so a `cache_dir` equal to the data directory, holding it, or inside it (other
    /// than the default `remote-cache`) is refused with the key named, however it is spelled.
    #[test]
    fn a_cache_dir_sharing_the_data_dir_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir_all(data.join("1")).unwrap();
        let d = data.display().to_string();
        let t = tmp.path().display().to_string();
        let load = |cache_dir: &str| {
            let text = format!(
                "[server]\ndata_dir = \"{d}\"\n[remote_storage]\ncache_dir = \"{cache_dir}\"\n"
            );
            load_toml(&text)
        };
        for bad in [
            d.clone(),
            format!("{d}/"),
            format!("{d}/1/.."),
            t.clone(),
            "/".to_string(),
            format!("{d}/1"),
            format!("{d}/cache"),
            format!("{d}/remote-cache/x"),
        ] {
            let e = load(&bad).expect_err(&bad).to_string();
            assert!(e.starts_with("[remote_storage] cache_dir:"), "{bad}: {e}");
        }
        for good in [
            format!("{d}/remote-cache"),
            format!("{t}/cache"),
            format!("{t}/data-cache"),
        ] {
            let c = load(&good).unwrap_or_else(|e| panic!("{good}: {e}"));
            // Checked while the tier is off too; it is not on here.
            assert!(c.store.remote.is_none(), "{good}");
        }
        // A relative data directory is compared as the absolute path it names.
        let cwd = std::env::current_dir().unwrap().display().to_string();
        let e = load_toml(&format!(
            "[server]\ndata_dir = \"./data\"\n[remote_storage]\ncache_dir = \"{cwd}/data\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("[remote_storage] cache_dir:"), "{e}");
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_anonymous_listener_beyond_loopback_needs_allow_anonymous() {
        let o = Overrides {
            kafka_addr: Some("0.0.0.0:9092".into()),
            ..Overrides::default()
        };
        let e = ServerConfig::load_from(&o, &[]).unwrap_err().to_string();
        assert!(e.contains("allow_anonymous"), "{e}");
        assert!(e.contains("0.0.0.0:9092"), "{e}");
        let c =
            ServerConfig::load_from(&o, &env(&[("WHARF_KAFKA_ALLOW_ANONYMOUS", "true")])).unwrap();
        assert!(c.kafka.allow_anonymous);
        let c =
            ServerConfig::load_from(&o, &env(&[("WHARF_KAFKA_AUTHENTICATION", "sasl")])).unwrap();
        assert_eq!(c.kafka.authentication, KafkaAuthentication::Sasl);
        assert_eq!(c.kafka.listeners()[0].security_protocol(), "SASL_PLAINTEXT");
        // A further listener is held to the same rule.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[[kafka.listeners]]\naddress = \"0.0.0.0:9094\"\n").unwrap();
        let o = Overrides {
            config_file: Some(file),
            ..Overrides::default()
        };
        let e = ServerConfig::load_from(&o, &[]).unwrap_err().to_string();
        assert!(
            e.contains("allow_anonymous") && e.contains("0.0.0.0:9094"),
            "{e}"
        );
    }

    #[test]
    fn tls_files_come_in_pairs() {
        for (set, named) in [
            ("WHARF_KAFKA_TLS_CERT_FILE", "tls_key_file"),
            ("WHARF_KAFKA_TLS_KEY_FILE", "tls_cert_file"),
            ("WHARF_NATIVE_TLS_CERT_FILE", "tls_key_file"),
        ] {
            let e = ServerConfig::load_from(&Overrides::default(), &env(&[(set, "/x.pem")]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(named), "{set}: {e}");
        }
        let e = ServerConfig::load_from(
            &Overrides::default(),
            &env(&[("WHARF_NATIVE_TLS_CLIENT_CA_FILE", "/ca.pem")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("tls_client_ca_file"), "{e}");
    }

    #[test]
    fn the_tls_files_in_the_environment_make_the_main_kafka_listener_tls() {
        let c = ServerConfig::load_from(
            &Overrides::default(),
            &env(&[
                ("WHARF_KAFKA_TLS_CERT_FILE", "/etc/wharf/cert.pem"),
                ("WHARF_KAFKA_TLS_KEY_FILE", "/etc/wharf/key.pem"),
            ]),
        )
        .unwrap();
        let tls = c.kafka.tls.clone().unwrap();
        assert_eq!(tls.cert_file, PathBuf::from("/etc/wharf/cert.pem"));
        assert_eq!(tls.key_file, PathBuf::from("/etc/wharf/key.pem"));
        assert_eq!(tls.client_ca_file, None);
        let main = &c.kafka.listeners()[0];
        assert!(main.tls);
        assert_eq!(main.security_protocol(), "SSL");
        // The native door is untouched.
        assert!(c.native.tls.is_none() && !c.native.listeners()[0].tls);
    }

    #[test]
    fn further_listeners_come_from_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            r#"
[native]
tls_cert_file = "/c.pem"
tls_key_file = "/k.pem"
[[native.listeners]]
address = "127.0.0.1:8190"

[kafka]
tls_cert_file = "/c.pem"
tls_key_file = "/k.pem"
sasl_enabled_mechanisms = "SCRAM-SHA-512"
[[kafka.listeners]]
address = "127.0.0.1:9192"
advertised_host = "broker.example.com"
advertised_port = 19192
authentication = "sasl"
tls = true
[[kafka.listeners]]
address = "127.0.0.1:9193"
"#,
        )
        .unwrap();
        let o = Overrides {
            config_file: Some(file),
            ..Overrides::default()
        };
        let c = ServerConfig::load_from(&o, &[]).unwrap();
        let kafka = c.kafka.listeners();
        assert_eq!(kafka.len(), 3);
        assert_eq!(kafka[0].address, c.kafka.address);
        assert_eq!(kafka[0].security_protocol(), "SSL");
        assert_eq!(kafka[1].address.to_string(), "127.0.0.1:9192");
        assert_eq!(
            kafka[1].advertised_host.as_deref(),
            Some("broker.example.com")
        );
        assert_eq!(kafka[1].advertised_port, Some(19192));
        assert_eq!(kafka[1].security_protocol(), "SASL_SSL");
        assert_eq!(kafka[2].security_protocol(), "PLAINTEXT");
        assert_eq!(kafka[2].advertised_host, None);
        let native = c.native.listeners();
        assert_eq!(native.len(), 2);
        assert!(native[0].tls && !native[1].tls);
        assert_eq!(native[1].address.to_string(), "127.0.0.1:8190");
    }

    #[test]
    fn a_tls_listener_needs_the_doors_certificate() {
        let dir = tempfile::tempdir().unwrap();
        for (text, section) in [
            (
                "[[kafka.listeners]]\naddress = \"127.0.0.1:9192\"\ntls = true\n",
                "kafka",
            ),
            (
                "[[native.listeners]]\naddress = \"127.0.0.1:8190\"\ntls = true\n",
                "native",
            ),
        ] {
            let file = dir.path().join("c.toml");
            std::fs::write(&file, text).unwrap();
            let o = Overrides {
                config_file: Some(file),
                ..Overrides::default()
            };
            let e = ServerConfig::load_from(&o, &[]).unwrap_err().to_string();
            assert!(
                e.contains(&format!("[{section}] listeners")) && e.contains("tls_cert_file"),
                "{e}"
            );
        }
    }

    #[test]
    fn http_is_off_by_default_and_on_with_an_address() {
        let c = ServerConfig::load_from(&Overrides::default(), &[]).unwrap();
        assert_eq!(
            c.http,
            HttpConfig {
                address: None,
                tls: None,
                max_connections: 64,
                max_connections_per_ip: 16,
                request_timeout: Duration::from_secs(10),
            }
        );
        assert!(c.metrics.enable);
        assert_eq!(c.metrics.max_lag_series, 10_000);
        let c = ServerConfig::load_from(
            &Overrides::default(),
            &env(&[
                ("WHARF_HTTP_ADDRESS", "127.0.0.1:8091"),
                ("WHARF_HTTP_MAX_CONNECTIONS", "3"),
                ("WHARF_HTTP_MAX_CONNECTIONS_PER_IP", "2"),
                ("WHARF_HTTP_REQUEST_TIMEOUT", "250 ms"),
                ("WHARF_METRICS_ENABLE", "false"),
                ("WHARF_METRICS_MAX_LAG_SERIES", "7"),
            ]),
        )
        .unwrap();
        assert_eq!(c.metrics.max_lag_series, 7);
        // Bound: at least one lag row, or a lag answer would be empty whatever was committed.
        let e = ServerConfig::load_from(
            &Overrides::default(),
            &env(&[("WHARF_METRICS_MAX_LAG_SERIES", "0")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("max_lag_series") && e.contains("at least 1"),
            "{e}"
        );
        assert_eq!(c.http.address, Some("127.0.0.1:8091".parse().unwrap()));
        assert_eq!(c.http.max_connections, 3);
        assert_eq!(c.http.max_connections_per_ip, 2);
        assert_eq!(c.http.request_timeout, Duration::from_millis(250));
        assert!(!c.metrics.enable);
        // The flag beats the environment; an empty one turns the listener off again.
        let flag = |a: &str| Overrides {
            http_addr: Some(a.into()),
            ..Overrides::default()
        };
        let on = env(&[("WHARF_HTTP_ADDRESS", "127.0.0.1:8091")]);
        let c = ServerConfig::load_from(&flag("127.0.0.1:0"), &on).unwrap();
        assert_eq!(c.http.address, Some("127.0.0.1:0".parse().unwrap()));
        let c = ServerConfig::load_from(&flag(""), &on).unwrap();
        assert_eq!(c.http.address, None);
    }

    #[test]
    fn http_settings_are_checked_with_their_names() {
        for (var, value, key) in [
            ("WHARF_HTTP_ADDRESS", "localhost", "[http] address"),
            ("WHARF_HTTP_MAX_CONNECTIONS", "0", "[http] max_connections"),
            (
                "WHARF_HTTP_MAX_CONNECTIONS",
                "4097",
                "[http] max_connections",
            ),
            (
                "WHARF_HTTP_MAX_CONNECTIONS_PER_IP",
                "0",
                "[http] max_connections_per_ip",
            ),
            (
                "WHARF_HTTP_MAX_CONNECTIONS_PER_IP",
                "4097",
                "[http] max_connections_per_ip",
            ),
            (
                "WHARF_HTTP_REQUEST_TIMEOUT",
                "0 s",
                "[http] request_timeout",
            ),
            (
                "WHARF_HTTP_REQUEST_TIMEOUT",
                "soon",
                "[http] request_timeout",
            ),
            ("WHARF_HTTP_TLS_KEY_FILE", "/k.pem", "[http] tls_cert_file"),
            ("WHARF_HTTP_TLS_CERT_FILE", "/c.pem", "[http] tls_key_file"),
            (
                "WHARF_HTTP_TLS_CLIENT_CA_FILE",
                "/ca.pem",
                "[http] tls_client_ca_file",
            ),
        ] {
            let e = ServerConfig::load_from(&Overrides::default(), &env(&[(var, value)]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{var}={value}: {e}");
        }
        let e = ServerConfig::load_from(
            &Overrides {
                http_addr: Some("nowhere".into()),
                ..Overrides::default()
            },
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("[http] address"), "{e}");
        let c = ServerConfig::load_from(
            &Overrides::default(),
            &env(&[
                ("WHARF_HTTP_TLS_CERT_FILE", "/c.pem"),
                ("WHARF_HTTP_TLS_KEY_FILE", "/k.pem"),
                ("WHARF_HTTP_TLS_CLIENT_CA_FILE", "/ca.pem"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.http.tls,
            Some(TlsSettings {
                cert_file: "/c.pem".into(),
                key_file: "/k.pem".into(),
                client_ca_file: Some("/ca.pem".into()),
            })
        );
    }
}
