//! Topic configs under Kafka's names, for both doors: what each name means in
//! [`TopicSettings`], how it is set, reset, appended to and subtracted from, how it is checked
//! (Kafka's validators, and its rule that `min.compaction.lag.ms` may not exceed
//! `max.compaction.lag.ms`), how a topic's configs are described with their sources, and the
//! server defaults behind them. The Kafka door (CreateTopics, DescribeConfigs, AlterConfigs,
//! IncrementalAlterConfigs) and the native door (Wharf's 10_003/10_004 commands) both call here.
//!
//! | Kafka config | Wharf topic setting |
//! |---|---|
//! | `retention.ms` (-1: forever) | message expiry |
//! | `retention.bytes` (-1: unlimited) | max size (Wharf applies it to the topic as a whole) |
//! | `segment.bytes` | segment size |
//! | `segment.ms` | segment max age |
//! | `max.message.bytes` | largest batch |
//! | `message.timestamp.type` | `CreateTime` or `LogAppendTime` |
//! | `wharf.durability` | `os` or `fsync` |
//! | `cleanup.policy` | a list of `delete` and `compact` (may be empty) |
//! | `min.cleanable.dirty.ratio` | dirty share of sealed bytes that triggers a cleaning |
//! | `min.compaction.lag.ms` | records younger than this are not compacted |
//! | `max.compaction.lag.ms` | dirty records older than this are compacted whatever the ratio |
//! | `delete.retention.ms` | how long tombstones and transaction markers survive compaction |
//! | `compression.type` | the codec produced batches are stored with (`producer`: as sent) |
//! | `compression.gzip.level`, `.lz4.level`, `.zstd.level` | the level the broker compresses at |
//! | `remote.storage.enable` | sealed segments go to the remote tier (KIP-405) |
//! | `local.retention.ms` (-2: as `retention.ms`) | how long uploaded segments stay on local disk |
//! | `local.retention.bytes` (-2: as `retention.bytes`) | local bytes kept (topic as a whole) |
//!
//! Tiered storage follows Kafka's `LogConfig` rules: remote storage needs a server with a
//! remote tier, is refused for compacted topics, cannot be turned off once on, and the local
//! retentions may not exceed the total ones (nor be -1 while those are finite).
//!
//! `compression.type` follows Kafka's `LogValidator`: a topic whose codec differs from a
//! produced batch's has the batch rebuilt with its own codec ([`TargetCompression`], used by
//! [`super::produce`]); the server default is the dynamic broker config of the same name
//! ([`super::broker_config`]), else `producer`.

use std::sync::Arc;
use std::time::Duration;

use wharf_log_store::remote::RemoteSettings;
use wharf_log_store::{
    CleanerConfig, CleanupPolicy, Ratio, LOCAL_RETENTION_BYTES_FOREVER, LOCAL_RETENTION_FOREVER,
};

use super::kafka_batch::Codec;
use super::{
    Broker, BrokerError, Durability, Ident, StoreConfig, StoreError, TimestampType, TopicInfo,
    TopicSettings,
};

/// A config that cannot be applied, and why (Kafka's INVALID_CONFIG; the native door's
/// InvalidConfiguration).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl From<ConfigError> for BrokerError {
    fn from(e: ConfigError) -> BrokerError {
        BrokerError::Store(StoreError::InvalidSetting(e.0))
    }
}

/// One change to one config (Kafka's IncrementalAlterConfigs operations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    /// Gives the config this value.
    Set(String),
    /// Returns the config to its default.
    Delete,
    /// Adds the listed values that are missing (list configs only).
    Append(String),
    /// Removes the listed values (list configs only).
    Subtract(String),
}

/// A config change by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigChange {
    pub name: String,
    pub op: ConfigOp,
}

impl ConfigChange {
    pub fn set(name: impl Into<String>, value: impl Into<String>) -> ConfigChange {
        ConfigChange {
            name: name.into(),
            op: ConfigOp::Set(value.into()),
        }
    }

    pub fn delete(name: impl Into<String>) -> ConfigChange {
        ConfigChange {
            name: name.into(),
            op: ConfigOp::Delete,
        }
    }
}

/// How a set of changes relates to the topic's current configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlterMode {
    /// Only the named configs change (IncrementalAlterConfigs, the native set command).
    Incremental,
    /// The changes are the topic's whole config set: every config not named returns to its
    /// default (Kafka's legacy AlterConfigs).
    Replace,
}

/// Where a described value comes from (Kafka's DescribeConfigs `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic.
    DynamicTopic,
    /// Set at run time on this node (a BROKER resource named by its id).
    DynamicBroker,
    /// Set at run time cluster-wide (the BROKER resource with an empty name).
    DynamicDefaultBroker,
    /// The server's configuration sets it (for a topic config: the default it follows).
    StaticBroker,
    /// The built-in default.
    Default,
    /// Set on a group (a GROUP resource).
    Group,
}

impl ConfigSource {
    /// Kafka's code for it.
    pub fn kafka_code(self) -> i8 {
        match self {
            ConfigSource::DynamicTopic => 1,
            ConfigSource::DynamicBroker => 2,
            ConfigSource::DynamicDefaultBroker => 3,
            ConfigSource::StaticBroker => 4,
            ConfigSource::Default => 5,
            ConfigSource::Group => 8,
        }
    }

    /// Kafka's name for it (the native door's answer carries it as text).
    pub fn name(self) -> &'static str {
        match self {
            ConfigSource::DynamicTopic => "DYNAMIC_TOPIC_CONFIG",
            ConfigSource::DynamicBroker => "DYNAMIC_BROKER_CONFIG",
            ConfigSource::DynamicDefaultBroker => "DYNAMIC_DEFAULT_BROKER_CONFIG",
            ConfigSource::StaticBroker => "STATIC_BROKER_CONFIG",
            ConfigSource::Default => "DEFAULT_CONFIG",
            ConfigSource::Group => "GROUP_CONFIG",
        }
    }
}

/// A config's type as DescribeConfigs v3+ reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Short,
    Long,
    Double,
    List,
}

impl ConfigType {
    /// Kafka's code for it.
    pub fn kafka_code(self) -> i8 {
        match self {
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Short => 4,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
        }
    }
}

/// One config as described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: String,
    pub source: ConfigSource,
    pub config_type: ConfigType,
}

/// `max.compaction.lag.ms`'s "no limit", Kafka's default (Long.MAX_VALUE).
pub const NO_MAX_COMPACTION_LAG_MS: i64 = i64::MAX;
/// `log.cleaner.io.max.bytes.per.second`'s "unlimited", Kafka's default (Double.MAX_VALUE).
pub const UNLIMITED_IO: &str = "1.7976931348623157E308";

fn long(name: &str, v: &str) -> Result<i64, ConfigError> {
    v.trim()
        .parse::<i64>()
        .map_err(|_| ConfigError(format!("{name}: '{v}' is not a number")))
}

fn at_least(name: &str, v: &str, min: i64) -> Result<u64, ConfigError> {
    let n = long(name, v)?;
    if n < min {
        return Err(ConfigError(format!(
            "Invalid value {n} for configuration {name}: Value must be at least {min}"
        )));
    }
    // n >= min >= 0 here.
    Ok(n.unsigned_abs())
}

fn ratio(name: &str, v: &str) -> Result<Ratio, ConfigError> {
    let x = v
        .trim()
        .parse::<f64>()
        .map_err(|_| ConfigError(format!("{name}: '{v}' is not a number")))?;
    Ratio::new(x).ok_or_else(|| {
        ConfigError(format!(
            "Invalid value {v} for configuration {name}: Value must be between 0 and 1"
        ))
    })
}

/// The values of a `cleanup.policy` list: comma separated, each `delete` or `compact`; an
/// empty list means neither (Kafka allows it: data then stays until deleted by hand).
pub fn parse_policy(v: &str) -> Result<CleanupPolicy, ConfigError> {
    let mut p = CleanupPolicy {
        delete: false,
        compact: false,
    };
    for item in policy_items(v)? {
        match item {
            PolicyItem::Delete => p.delete = true,
            PolicyItem::Compact => p.compact = true,
        }
    }
    Ok(p)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PolicyItem {
    Delete,
    Compact,
}

fn policy_items(v: &str) -> Result<Vec<PolicyItem>, ConfigError> {
    if v.trim().is_empty() {
        return Ok(Vec::new());
    }
    v.split(',')
        .map(|item| match item.trim() {
            "delete" => Ok(PolicyItem::Delete),
            "compact" => Ok(PolicyItem::Compact),
            other => Err(ConfigError(format!(
                "Invalid value {other} for configuration cleanup.policy: String must be one of: compact, delete"
            ))),
        })
        .collect()
}

/// How a cleanup policy is described: Kafka's list form, `compact,delete` for both.
pub fn policy_text(p: CleanupPolicy) -> &'static str {
    match (p.compact, p.delete) {
        (true, true) => "compact,delete",
        (true, false) => "compact",
        (false, true) => "delete",
        (false, false) => "",
    }
}

/// Whether `name` is a list config (APPEND and SUBTRACT apply to it).
pub fn is_list(name: &str) -> bool {
    name == "cleanup.policy"
}

/// Applies one change to `s`. Checks of the whole set (the lag rule, sizes) are [`check`]'s.
pub fn apply(s: &mut TopicSettings, name: &str, op: &ConfigOp) -> Result<(), ConfigError> {
    match op {
        ConfigOp::Set(v) => set(s, name, Some(v)),
        ConfigOp::Delete => set(s, name, None),
        ConfigOp::Append(v) | ConfigOp::Subtract(v) => {
            if !is_list(name) {
                // Kafka's controller words it so, before it looks at the name.
                let op = if matches!(op, ConfigOp::Append(_)) {
                    "APPEND"
                } else {
                    "SUBTRACT"
                };
                return Err(ConfigError(format!(
                    "Can't {op} to key {name} because its type is not LIST."
                )));
            }
            let mut p = s.cleanup_policy;
            let on = matches!(op, ConfigOp::Append(_));
            for item in policy_items(v)? {
                match item {
                    PolicyItem::Delete => p.delete = on,
                    PolicyItem::Compact => p.compact = on,
                }
            }
            s.cleanup_policy = p;
            Ok(())
        }
    }
}

/// The topic config names Wharf has.
pub const NAMES: &[&str] = &[
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "segment.ms",
    "max.message.bytes",
    "message.timestamp.type",
    "wharf.durability",
    "cleanup.policy",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "max.compaction.lag.ms",
    "delete.retention.ms",
    "compression.type",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
    "remote.storage.enable",
    "local.retention.ms",
    "local.retention.bytes",
];

/// Kafka's `local.retention.*` value for "as the total retention" (their default).
pub const FOLLOW_RETENTION: i64 = -2;

/// Sets (`Some`) or resets to the default (`None`) one config on `s`.
pub fn set(s: &mut TopicSettings, name: &str, value: Option<&str>) -> Result<(), ConfigError> {
    let positive = |v: &str| -> Result<Option<u64>, ConfigError> {
        match long(name, v)? {
            -1 => Ok(None),
            n if n > 0 => Ok(Some(n.unsigned_abs())),
            n => Err(ConfigError(format!("{name}: {n} must be positive or -1"))),
        }
    };
    match (name, value) {
        ("retention.ms", None) => s.message_expiry = None,
        ("retention.ms", Some(v)) => s.message_expiry = positive(v)?.map(Duration::from_millis),
        ("retention.bytes", None) => s.max_size = None,
        ("retention.bytes", Some(v)) => s.max_size = positive(v)?,
        ("segment.bytes", None) => s.segment_size = None,
        ("segment.bytes", Some(v)) => {
            s.segment_size = Some(
                positive(v)?
                    .ok_or_else(|| ConfigError("segment.bytes: -1 is not a size".into()))?,
            )
        }
        ("segment.ms", None) => s.segment_max_age = None,
        ("segment.ms", Some(v)) => s.segment_max_age = positive(v)?.map(Duration::from_millis),
        ("max.message.bytes", None) => s.max_batch_bytes = None,
        ("max.message.bytes", Some(v)) => {
            let n = positive(v)?
                .ok_or_else(|| ConfigError("max.message.bytes: -1 is not a size".into()))?;
            s.max_batch_bytes = Some(
                u32::try_from(n)
                    .map_err(|_| ConfigError(format!("max.message.bytes: {n} is above 4 GiB")))?,
            );
        }
        ("message.timestamp.type", None) => s.timestamp_type = TimestampType::CreateTime,
        ("message.timestamp.type", Some("CreateTime")) => {
            s.timestamp_type = TimestampType::CreateTime
        }
        ("message.timestamp.type", Some("LogAppendTime")) => {
            s.timestamp_type = TimestampType::LogAppendTime
        }
        ("wharf.durability", None) => s.durability = None,
        ("wharf.durability", Some(v)) => {
            s.durability = Some(
                v.parse::<Durability>()
                    .map_err(|e| ConfigError(format!("wharf.durability: {e}")))?,
            )
        }
        ("cleanup.policy", None) => s.cleanup_policy = CleanupPolicy::default(),
        ("cleanup.policy", Some(v)) => s.cleanup_policy = parse_policy(v)?,
        ("min.cleanable.dirty.ratio", None) => s.min_cleanable_dirty_ratio = None,
        ("min.cleanable.dirty.ratio", Some(v)) => {
            s.min_cleanable_dirty_ratio = Some(ratio(name, v)?)
        }
        ("min.compaction.lag.ms", None) => s.min_compaction_lag = None,
        ("min.compaction.lag.ms", Some(v)) => {
            s.min_compaction_lag = Some(Duration::from_millis(at_least(name, v, 0)?))
        }
        ("max.compaction.lag.ms", None) => s.max_compaction_lag = None,
        ("max.compaction.lag.ms", Some(v)) => {
            // Kafka's Long.MAX_VALUE means no limit; it is kept as the explicit value so that
            // a topic can opt out of a server default that has one.
            s.max_compaction_lag = Some(Duration::from_millis(at_least(name, v, 1)?))
        }
        ("delete.retention.ms", None) => s.delete_retention = None,
        ("delete.retention.ms", Some(v)) => {
            s.delete_retention = Some(Duration::from_millis(at_least(name, v, 0)?))
        }
        ("compression.type", None) => s.compression.codec = None,
        ("compression.type", Some(v)) => {
            compression_type(name, v)?;
            s.compression.codec = Some(v.to_string());
        }
        (GZIP_LEVEL, None) => s.compression.gzip_level = None,
        (GZIP_LEVEL, Some(v)) => s.compression.gzip_level = Some(compression_level(name, v)?),
        (LZ4_LEVEL, None) => s.compression.lz4_level = None,
        (LZ4_LEVEL, Some(v)) => s.compression.lz4_level = Some(compression_level(name, v)?),
        (ZSTD_LEVEL, None) => s.compression.zstd_level = None,
        (ZSTD_LEVEL, Some(v)) => s.compression.zstd_level = Some(compression_level(name, v)?),
        ("remote.storage.enable", None) => s.remote_storage = false,
        ("remote.storage.enable", Some(v)) => s.remote_storage = boolean(name, v)?,
        ("local.retention.ms", None) => {
            s.local_retention = None;
            s.local_retention_follows = false;
        }
        ("local.retention.ms", Some(v)) => {
            let value = local_retention(name, v)?;
            s.local_retention_follows = matches!(value, LocalRetention::Follow);
            s.local_retention = match value {
                LocalRetention::Follow => None,
                LocalRetention::Forever => Some(LOCAL_RETENTION_FOREVER),
                LocalRetention::Limit(ms) => Some(Duration::from_millis(ms)),
            }
        }
        ("local.retention.bytes", None) => {
            s.local_retention_bytes = None;
            s.local_retention_bytes_follows = false;
        }
        ("local.retention.bytes", Some(v)) => {
            let value = local_retention(name, v)?;
            s.local_retention_bytes_follows = matches!(value, LocalRetention::Follow);
            s.local_retention_bytes = match value {
                LocalRetention::Follow => None,
                LocalRetention::Forever => Some(LOCAL_RETENTION_BYTES_FOREVER),
                LocalRetention::Limit(bytes) => Some(bytes),
            }
        }
        ("message.timestamp.type", Some(v)) => {
            return Err(ConfigError(format!(
                "{name}: '{v}' is not supported by Wharf"
            )))
        }
        (other, _) => {
            return Err(ConfigError(format!(
                "{other} is not a topic config Wharf has"
            )))
        }
    }
    Ok(())
}

/// A boolean config as Kafka's `ConfigDef` reads one: `true` or `false`, any case.
fn boolean(name: &str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ConfigError(format!(
            "Invalid value {v} for configuration {name}: Expected value to be either true or false"
        ))),
    }
}

/// `compression.gzip.level`
pub const GZIP_LEVEL: &str = "compression.gzip.level";
/// `compression.lz4.level`
pub const LZ4_LEVEL: &str = "compression.lz4.level";
/// `compression.zstd.level`
pub const ZSTD_LEVEL: &str = "compression.zstd.level";
/// Kafka's `compression.type` values (`BrokerCompressionType`), in Kafka's order.
pub const COMPRESSION_TYPES: &[&str] =
    &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];
/// Kafka's default levels: gzip's -1 (zlib's default, 6), LZ4 9, zstd 3.
const DEFAULT_GZIP_LEVEL: i32 = -1;
const DEFAULT_LZ4_LEVEL: i32 = 9;
const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// A `compression.type` value, checked as Kafka's `ValidString` does (case-sensitive).
pub fn compression_type(name: &str, v: &str) -> Result<(), ConfigError> {
    if COMPRESSION_TYPES.contains(&v) {
        Ok(())
    } else {
        Err(ConfigError(format!(
            "Invalid value {v} for configuration {name}: String must be one of: {}",
            COMPRESSION_TYPES.join(", ")
        )))
    }
}

/// A `compression.*.level` value within Kafka's bounds for its codec (gzip 1..=9 or -1,
/// LZ4 1..=17, zstd -131072..=22).
pub fn compression_level(name: &str, v: &str) -> Result<i32, ConfigError> {
    let n = v.trim().parse::<i32>().map_err(|_| {
        ConfigError(format!(
            "Invalid value {v} for configuration {name}: Not a number of type INT"
        ))
    })?;
    let bad = |why: String| {
        Err(ConfigError(format!(
            "Invalid value {n} for configuration {name}: {why}"
        )))
    };
    match name {
        GZIP_LEVEL if n > 9 || (n < 1 && n != DEFAULT_GZIP_LEVEL) => {
            bad("Value must be between 1 and 9 or equal to -1".into())
        }
        LZ4_LEVEL if n < 1 => bad("Value must be at least 1".into()),
        LZ4_LEVEL if n > 17 => bad("Value must be no more than 17".into()),
        ZSTD_LEVEL if n < -131_072 => bad("Value must be at least -131072".into()),
        ZSTD_LEVEL if n > 22 => bad("Value must be no more than 22".into()),
        _ => Ok(n),
    }
}

/// The codec and level the broker stores a topic's produced batches with (Kafka's
/// `LogConfig.compression`): `codec` `None` for `producer` (each batch as it was sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetCompression {
    pub codec: Option<Codec>,
    /// The level for `codec` (snappy and uncompressed have none).
    pub level: Option<i32>,
}

impl TargetCompression {
    /// Whether a batch compressed with `source` must be rebuilt: Kafka rewrites a batch whose
    /// codec is not the topic's, and keeps one that has it, whatever its level.
    pub fn recompresses(&self, source: Codec) -> bool {
        self.codec.is_some_and(|target| target != source)
    }
}

/// A topic's target compression: its own `compression.type` and level, else the server's
/// (`server`: the dynamic broker config of a name, if set), else Kafka's defaults.
pub fn target_compression(
    s: &TopicSettings,
    server: &dyn Fn(&str) -> Option<String>,
) -> TargetCompression {
    let codec_name = s
        .compression
        .codec
        .clone()
        .or_else(|| server("compression.type"))
        .unwrap_or_else(|| "producer".into());
    let level = |own: Option<i32>, name: &str, default: i32| {
        own.or_else(|| server(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(default)
    };
    let (codec, level) = match codec_name.as_str() {
        "uncompressed" => (Some(Codec::None), None),
        "gzip" => (
            Some(Codec::Gzip),
            Some(level(
                s.compression.gzip_level,
                GZIP_LEVEL,
                DEFAULT_GZIP_LEVEL,
            )),
        ),
        "snappy" => (Some(Codec::Snappy), None),
        "lz4" => (
            Some(Codec::Lz4),
            Some(level(s.compression.lz4_level, LZ4_LEVEL, DEFAULT_LZ4_LEVEL)),
        ),
        "zstd" => (
            Some(Codec::Zstd),
            Some(level(
                s.compression.zstd_level,
                ZSTD_LEVEL,
                DEFAULT_ZSTD_LEVEL,
            )),
        ),
        _ => (None, None),
    };
    TargetCompression { codec, level }
}

/// The compression configs of a topic as described: its own value, else the server's dynamic
/// one (with that source), else Kafka's default.
fn compression_entries(
    s: &TopicSettings,
    server: &dyn Fn(&str) -> Option<(String, ConfigSource)>,
) -> Vec<ConfigEntry> {
    let entry = |name: &str, own: Option<String>, default: String, config_type| {
        let (value, source) = match own {
            Some(v) => (v, ConfigSource::DynamicTopic),
            None => server(name).unwrap_or((default, ConfigSource::Default)),
        };
        ConfigEntry {
            name: name.into(),
            value,
            source,
            config_type,
        }
    };
    let c = &s.compression;
    vec![
        entry(
            "compression.type",
            c.codec.clone(),
            "producer".into(),
            ConfigType::String,
        ),
        entry(
            GZIP_LEVEL,
            c.gzip_level.map(|l| l.to_string()),
            DEFAULT_GZIP_LEVEL.to_string(),
            ConfigType::Int,
        ),
        entry(
            LZ4_LEVEL,
            c.lz4_level.map(|l| l.to_string()),
            DEFAULT_LZ4_LEVEL.to_string(),
            ConfigType::Int,
        ),
        entry(
            ZSTD_LEVEL,
            c.zstd_level.map(|l| l.to_string()),
            DEFAULT_ZSTD_LEVEL.to_string(),
            ConfigType::Int,
        ),
    ]
}

/// A `local.retention.ms` or `.bytes` value.
enum LocalRetention {
    /// -2: as the total retention.
    Follow,
    /// -1: forever, which Kafka accepts only while the total retention is -1 too
    /// ([`check_remote`]).
    Forever,
    /// 0 or more (0, as in Kafka, deletes uploaded segments locally at once).
    Limit(u64),
}

/// `local.retention.ms` or `.bytes`: at least -2 (Kafka's validator).
fn local_retention(name: &str, v: &str) -> Result<LocalRetention, ConfigError> {
    match long(name, v)? {
        FOLLOW_RETENTION => Ok(LocalRetention::Follow),
        -1 => Ok(LocalRetention::Forever),
        n if n >= 0 => Ok(LocalRetention::Limit(n.unsigned_abs())),
        n => Err(ConfigError(format!(
            "Invalid value {n} for configuration {name}: Value must be at least -2"
        ))),
    }
}

/// A local retention as Kafka describes it: -2 when it follows the total, -1 forever.
fn local_text(follow: bool, forever: bool, value: u64) -> String {
    if follow {
        FOLLOW_RETENTION.to_string()
    } else if forever {
        "-1".into()
    } else {
        value.to_string()
    }
}

/// Kafka's tiered-storage rules for a topic with `remote.storage.enable=true`
/// (`LogConfig.validate`): the server must have a remote tier, the topic must not be
/// compacted, and the local retentions may not exceed the total ones.
fn check_remote(s: &TopicSettings, defaults: &StoreConfig) -> Result<(), ConfigError> {
    if !s.remote_storage {
        return Ok(());
    }
    if defaults.remote.is_none() {
        return Err(ConfigError(
            "Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage."
                .into(),
        ));
    }
    if s.cleanup_policy.compact {
        return Err(ConfigError(
            "Remote log storage is unsupported for the compacted topics".into(),
        ));
    }
    // Kafka's `validateRemoteStorageRetentionSize/Time`, on the whole resulting config.
    if let (Some(local), Some(total)) = (s.local_retention_bytes, s.max_size) {
        if local == LOCAL_RETENTION_BYTES_FOREVER {
            return Err(ConfigError(format!(
                "Invalid value -1 for configuration local.retention.bytes: Value must not be -1 as retention.bytes value is set as {total}."
            )));
        }
        if local > total {
            return Err(ConfigError(format!(
                "Invalid value {local} for configuration local.retention.bytes: Value must not be more than retention.bytes property value: {total}"
            )));
        }
    }
    if let (Some(local), Some(total)) = (s.local_retention, s.message_expiry) {
        if local == LOCAL_RETENTION_FOREVER {
            return Err(ConfigError(format!(
                "Invalid value -1 for configuration local.retention.ms: Value must not be -1 as retention.ms value is set as {}.",
                millis(total)
            )));
        }
        if local > total {
            return Err(ConfigError(format!(
                "Invalid value {} for configuration local.retention.ms: Value must not be more than retention.ms property value: {}",
                millis(local),
                millis(total)
            )));
        }
    }
    Ok(())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The topic's `min.compaction.lag.ms` and `max.compaction.lag.ms` in force (its own or the
/// server default); `None`: no maximum.
fn lags(s: &TopicSettings, cleaner: &CleanerConfig) -> (Duration, Option<Duration>) {
    let min = s.min_compaction_lag.unwrap_or(cleaner.min_compaction_lag);
    let max = s.max_compaction_lag.or(cleaner.max_compaction_lag);
    (min, max)
}

/// Checks a whole set of settings: the store's own rules and Kafka's cross-config rule.
pub fn check(s: &TopicSettings, defaults: &StoreConfig) -> Result<(), ConfigError> {
    // The lags first: the store's own check of them words it otherwise, and clients see
    // Kafka's message.
    if let (min, Some(max)) = lags(s, &defaults.cleaner) {
        if min > max {
            return Err(ConfigError(format!(
                "conflict topic config setting min.compaction.lag.ms ({}) > max.compaction.lag.ms ({})",
                millis(min),
                millis(max)
            )));
        }
    }
    check_remote(s, defaults)?;
    s.validate().map_err(|e| match e {
        StoreError::InvalidSetting(why) => ConfigError(why),
        other => ConfigError(other.to_string()),
    })?;
    Ok(())
}

/// Applies `changes` to `current` (or to the defaults, in [`AlterMode::Replace`]) and checks
/// the result.
pub fn changed(
    current: &TopicSettings,
    mode: AlterMode,
    changes: &[ConfigChange],
    defaults: &StoreConfig,
) -> Result<TopicSettings, ConfigError> {
    let mut s = match mode {
        AlterMode::Incremental => current.clone(),
        AlterMode::Replace => TopicSettings::default(),
    };
    for c in changes {
        apply(&mut s, &c.name, &c.op)?;
    }
    // Kafka 3.x: remote storage, once on, stays on (its data would otherwise be orphaned).
    if current.remote_storage && !s.remote_storage {
        return Err(ConfigError(
            "Disabling remote storage feature on the topic level is not supported.".into(),
        ));
    }
    check(&s, defaults)?;
    Ok(s)
}

/// A ratio as Kafka prints a double (`0.5`, `1.0`).
fn double(r: Ratio) -> String {
    let x = r.as_f64();
    if x.fract() == 0.0 {
        format!("{x:.1}")
    } else {
        x.to_string()
    }
}

fn ms_or_forever(d: Option<Duration>) -> String {
    d.map_or("-1".into(), |d| millis(d).to_string())
}

fn max_lag_text(d: Option<Duration>) -> String {
    d.map_or(NO_MAX_COMPACTION_LAG_MS.to_string(), |d| {
        millis(d)
            .min(NO_MAX_COMPACTION_LAG_MS.unsigned_abs())
            .to_string()
    })
}

fn durability_text(d: Durability) -> String {
    match d {
        Durability::Os => "os".into(),
        Durability::Fsync => "fsync".into(),
    }
}

/// A topic's configs, each with its source: set on the topic, else the server's default
/// (`STATIC_BROKER_CONFIG` for a compaction default the server config changed from Kafka's,
/// `DEFAULT_CONFIG` otherwise).
pub fn describe(s: &TopicSettings, defaults: &StoreConfig) -> Vec<ConfigEntry> {
    describe_with(s, defaults, &|_| None)
}

/// [`describe`], with the server's dynamic broker configs (`server`: a name's value and source,
/// if set) behind the topic's compression configs.
pub fn describe_with(
    s: &TopicSettings,
    defaults: &StoreConfig,
    server: &dyn Fn(&str) -> Option<(String, ConfigSource)>,
) -> Vec<ConfigEntry> {
    let builtin = CleanerConfig::default();
    let cleaner = &defaults.cleaner;
    let entry = |name: &str, value: String, source: ConfigSource, config_type| ConfigEntry {
        name: name.into(),
        value,
        source,
        config_type,
    };
    let topic_or = |set: bool| {
        if set {
            ConfigSource::DynamicTopic
        } else {
            ConfigSource::Default
        }
    };
    // A compaction setting: the topic's, else the server default, which the server config
    // may have changed from Kafka's.
    let cleaner_source = |set: bool, server_changed: bool| match (set, server_changed) {
        (true, _) => ConfigSource::DynamicTopic,
        (false, true) => ConfigSource::StaticBroker,
        (false, false) => ConfigSource::Default,
    };
    let (min_lag, max_lag) = lags(s, cleaner);
    let mut entries = vec![
        entry(
            "retention.ms",
            ms_or_forever(s.message_expiry),
            topic_or(s.message_expiry.is_some()),
            ConfigType::Long,
        ),
        entry(
            "retention.bytes",
            s.max_size.map_or("-1".into(), |b| b.to_string()),
            topic_or(s.max_size.is_some()),
            ConfigType::Long,
        ),
        entry(
            "segment.bytes",
            s.segment_size
                .unwrap_or(defaults.default_segment_size)
                .to_string(),
            topic_or(s.segment_size.is_some()),
            ConfigType::Int,
        ),
        entry(
            "segment.ms",
            millis(
                s.segment_max_age
                    .unwrap_or(defaults.default_segment_max_age),
            )
            .to_string(),
            topic_or(s.segment_max_age.is_some()),
            ConfigType::Long,
        ),
        entry(
            "max.message.bytes",
            s.max_batch_bytes
                .unwrap_or(defaults.default_max_batch_bytes)
                .to_string(),
            topic_or(s.max_batch_bytes.is_some()),
            ConfigType::Int,
        ),
        entry(
            "message.timestamp.type",
            match s.timestamp_type {
                TimestampType::CreateTime => "CreateTime".into(),
                TimestampType::LogAppendTime => "LogAppendTime".into(),
            },
            topic_or(s.timestamp_type != TimestampType::CreateTime),
            ConfigType::String,
        ),
        entry(
            "wharf.durability",
            durability_text(s.durability.unwrap_or(defaults.default_durability)),
            topic_or(s.durability.is_some()),
            ConfigType::String,
        ),
        entry(
            "cleanup.policy",
            policy_text(s.cleanup_policy).into(),
            topic_or(s.cleanup_policy != CleanupPolicy::default()),
            ConfigType::List,
        ),
        entry(
            "min.cleanable.dirty.ratio",
            double(
                s.min_cleanable_dirty_ratio
                    .unwrap_or(cleaner.min_cleanable_dirty_ratio),
            ),
            cleaner_source(
                s.min_cleanable_dirty_ratio.is_some(),
                cleaner.min_cleanable_dirty_ratio != builtin.min_cleanable_dirty_ratio,
            ),
            ConfigType::Double,
        ),
        entry(
            "min.compaction.lag.ms",
            millis(min_lag).to_string(),
            cleaner_source(
                s.min_compaction_lag.is_some(),
                cleaner.min_compaction_lag != builtin.min_compaction_lag,
            ),
            ConfigType::Long,
        ),
        entry(
            "max.compaction.lag.ms",
            max_lag_text(max_lag),
            cleaner_source(
                s.max_compaction_lag.is_some(),
                cleaner.max_compaction_lag != builtin.max_compaction_lag,
            ),
            ConfigType::Long,
        ),
        entry(
            "delete.retention.ms",
            millis(s.delete_retention.unwrap_or(cleaner.delete_retention)).to_string(),
            cleaner_source(
                s.delete_retention.is_some(),
                cleaner.delete_retention != builtin.delete_retention,
            ),
            ConfigType::Long,
        ),
        entry(
            "remote.storage.enable",
            s.remote_storage.to_string(),
            topic_or(s.remote_storage),
            ConfigType::Boolean,
        ),
        entry(
            "local.retention.ms",
            local_text(
                s.local_retention.is_none(),
                s.local_retention == Some(LOCAL_RETENTION_FOREVER),
                s.local_retention.map_or(0, millis),
            ),
            // An explicit -2 is a topic override too (Kafka keeps it).
            topic_or(s.local_retention.is_some() || s.local_retention_follows),
            ConfigType::Long,
        ),
        entry(
            "local.retention.bytes",
            local_text(
                s.local_retention_bytes.is_none(),
                s.local_retention_bytes == Some(LOCAL_RETENTION_BYTES_FOREVER),
                s.local_retention_bytes.unwrap_or(0),
            ),
            topic_or(s.local_retention_bytes.is_some() || s.local_retention_bytes_follows),
            ConfigType::Long,
        ),
    ];
    entries.extend(compression_entries(s, server));
    entries
}

/// The server's log and cleaner settings under Kafka's broker config names, as the server's
/// configuration sets them.
pub fn broker_defaults(defaults: &StoreConfig) -> Vec<ConfigEntry> {
    let c = &defaults.cleaner;
    // Without a remote tier, the remote log manager's settings are the server's defaults.
    let builtin_remote = RemoteSettings::default();
    let remote = defaults
        .remote
        .as_ref()
        .map_or(&builtin_remote, |r| &r.settings);
    let entry = |name: &str, value: String, config_type| ConfigEntry {
        name: name.into(),
        value,
        source: ConfigSource::StaticBroker,
        config_type,
    };
    vec![
        entry(
            "log.cleanup.policy",
            policy_text(CleanupPolicy::default()).into(),
            ConfigType::List,
        ),
        entry(
            "log.cleaner.enable",
            c.enabled.to_string(),
            ConfigType::Boolean,
        ),
        entry(
            "log.cleaner.dedupe.buffer.size",
            c.dedupe_buffer_size.to_string(),
            ConfigType::Long,
        ),
        entry(
            "log.cleaner.io.max.bytes.per.second",
            c.io_max_bytes_per_second
                .map_or(UNLIMITED_IO.into(), |b| format!("{b}.0")),
            ConfigType::Double,
        ),
        entry(
            "log.cleaner.backoff.ms",
            millis(c.backoff).to_string(),
            ConfigType::Long,
        ),
        entry(
            "log.cleaner.min.cleanable.ratio",
            double(c.min_cleanable_dirty_ratio),
            ConfigType::Double,
        ),
        entry(
            "log.cleaner.min.compaction.lag.ms",
            millis(c.min_compaction_lag).to_string(),
            ConfigType::Long,
        ),
        entry(
            "log.cleaner.max.compaction.lag.ms",
            max_lag_text(c.max_compaction_lag),
            ConfigType::Long,
        ),
        entry(
            "log.cleaner.delete.retention.ms",
            millis(c.delete_retention).to_string(),
            ConfigType::Long,
        ),
        entry(
            "remote.log.storage.system.enable",
            defaults.remote.is_some().to_string(),
            ConfigType::Boolean,
        ),
        entry(
            "remote.log.manager.task.interval.ms",
            millis(remote.task_interval).to_string(),
            ConfigType::Long,
        ),
        entry(
            "remote.log.manager.task.retry.backoff.ms",
            millis(remote.retry_backoff).to_string(),
            ConfigType::Long,
        ),
        entry(
            "remote.log.manager.task.retry.backoff.max.ms",
            millis(remote.retry_backoff_max).to_string(),
            ConfigType::Long,
        ),
        entry(
            "remote.log.manager.copy.max.bytes.per.second",
            remote
                .copy_max_bytes_per_second
                .map_or(i64::MAX.to_string(), |b| b.to_string()),
            ConfigType::Long,
        ),
        entry(
            "remote.log.index.file.cache.total.size.bytes",
            remote.cache_max_bytes.to_string(),
            ConfigType::Long,
        ),
    ]
}

/// Settings for a new topic from its configs (CreateTopics' configs, a native create).
pub fn new_topic_settings(
    changes: &[ConfigChange],
    defaults: &StoreConfig,
) -> Result<TopicSettings, ConfigError> {
    changed(
        &TopicSettings::default(),
        AlterMode::Replace,
        changes,
        defaults,
    )
}

impl Broker {
    /// A topic's configs with their sources.
    pub fn topic_config(&self, topic: &TopicInfo) -> Vec<ConfigEntry> {
        describe_with(&topic.settings, self.store_defaults(), &|name| {
            self.broker_configs.value(name)
        })
    }

    /// The codec and level `topic`'s produced batches are stored with.
    pub fn target_compression(&self, topic: &TopicInfo) -> TargetCompression {
        target_compression(&topic.settings, &|name| {
            self.broker_configs.value(name).map(|(v, _)| v)
        })
    }

    /// Changes a topic's configs (checked whole, then stored), or only checks them when
    /// `validate_only`. The current settings are read under the catalog lock, so concurrent
    /// changes of different configs do not undo each other.
    pub async fn alter_topic_config(
        &self,
        stream: u32,
        topic: u32,
        mode: AlterMode,
        changes: Vec<ConfigChange>,
        validate_only: bool,
    ) -> Result<TopicSettings, BrokerError> {
        let lock = Arc::clone(&self.catalog_changes);
        self.blocking(move |store| {
            let _changing = lock.lock();
            let current = store.topic(Ident::Id(stream), Ident::Id(topic))?;
            let settings = changed(&current.settings, mode, &changes, store.config())?;
            if !validate_only && settings != current.settings {
                store.update_topic(Ident::Id(stream), Ident::Id(topic), None, settings.clone())?;
            }
            Ok(settings)
        })
        .await
    }
}

impl Broker {
    /// Kafka's rule for DeleteRecords (both doors would share it; only Kafka's has the API):
    /// records are deleted only from a topic whose `cleanup.policy` includes `delete`. A
    /// compacted-only topic is its keys' latest values; moving its log start would drop some.
    pub(crate) fn deletable(&self, topic: &str, partition: i32) -> Result<(), BrokerError> {
        if self.kafka_topic(topic)?.settings.cleanup_policy.delete {
            Ok(())
        } else {
            Err(BrokerError::DeletePolicy(format!("{topic}-{partition}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(s: &TopicSettings) -> &'static str {
        policy_text(s.cleanup_policy)
    }

    fn apply_all(s: &mut TopicSettings, ops: &[(&str, ConfigOp)]) -> Result<(), ConfigError> {
        ops.iter().try_for_each(|(n, op)| apply(s, n, op))
    }

    #[test]
    fn configs_map_onto_settings() {
        let mut s = TopicSettings::default();
        set(&mut s, "retention.ms", Some("60000")).unwrap();
        set(&mut s, "max.message.bytes", Some("1024")).unwrap();
        set(&mut s, "message.timestamp.type", Some("LogAppendTime")).unwrap();
        set(&mut s, "wharf.durability", Some("fsync")).unwrap();
        assert_eq!(s.message_expiry, Some(Duration::from_secs(60)));
        assert_eq!(s.max_batch_bytes, Some(1024));
        assert_eq!(s.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(s.durability, Some(Durability::Fsync));
        set(&mut s, "retention.ms", Some("-1")).unwrap();
        assert_eq!(s.message_expiry, None);
        assert!(set(&mut s, "retention.ms", Some("soon")).is_err());
        assert!(set(&mut s, "no.such.config", Some("1")).is_err());
    }

    #[test]
    fn cleanup_policy_is_a_list_of_delete_and_compact() {
        let mut s = TopicSettings::default();
        assert_eq!(policy(&s), "delete");
        for (given, described) in [
            ("compact", "compact"),
            ("delete", "delete"),
            ("compact,delete", "compact,delete"),
            ("delete,compact", "compact,delete"),
            (" compact , delete ", "compact,delete"),
            ("", ""),
        ] {
            set(&mut s, "cleanup.policy", Some(given)).unwrap();
            assert_eq!(policy(&s), described, "{given:?}");
        }
        for bad in ["Compact", "compact,", "retain", "compact,,delete"] {
            let e = set(&mut s, "cleanup.policy", Some(bad)).unwrap_err();
            assert!(e.0.contains("cleanup.policy"), "{bad:?}: {e}");
        }
        set(&mut s, "cleanup.policy", None).unwrap();
        assert_eq!(s.cleanup_policy, CleanupPolicy::default());
    }

    #[test]
    fn append_and_subtract_edit_the_policy_list_only() {
        let mut s = TopicSettings::default();
        let append = |v: &str| ConfigOp::Append(v.into());
        let subtract = |v: &str| ConfigOp::Subtract(v.into());
        apply_all(&mut s, &[("cleanup.policy", append("compact"))]).unwrap();
        assert_eq!(policy(&s), "compact,delete");
        // Appending a value already there changes nothing.
        apply_all(&mut s, &[("cleanup.policy", append("delete"))]).unwrap();
        assert_eq!(policy(&s), "compact,delete");
        apply_all(&mut s, &[("cleanup.policy", subtract("delete"))]).unwrap();
        assert_eq!(policy(&s), "compact");
        // Subtracting a value that is not there changes nothing.
        apply_all(&mut s, &[("cleanup.policy", subtract("delete"))]).unwrap();
        assert_eq!(policy(&s), "compact");
        apply_all(&mut s, &[("cleanup.policy", subtract("compact"))]).unwrap();
        assert_eq!(policy(&s), "");
        apply_all(&mut s, &[("cleanup.policy", append("delete,compact"))]).unwrap();
        assert_eq!(policy(&s), "compact,delete");
        assert!(apply(&mut s, "cleanup.policy", &append("shred")).is_err());
        // Kafka: APPEND/SUBTRACT on a config that is not a list is INVALID_CONFIG.
        for name in [
            "retention.ms",
            "min.cleanable.dirty.ratio",
            "delete.retention.ms",
        ] {
            let e = apply(&mut s, name, &append("1")).unwrap_err();
            assert!(
                e.0.ends_with("because its type is not LIST."),
                "{name}: {e}"
            );
            assert!(apply(&mut s, name, &subtract("1")).is_err(), "{name}");
        }
        // Kafka's controller says so before it looks at the name.
        assert_eq!(
            apply(&mut s, "no.such.config", &append("1")).unwrap_err().0,
            "Can't APPEND to key no.such.config because its type is not LIST."
        );
        assert!(apply(&mut s, "no.such.config", &ConfigOp::Set("1".into()))
            .unwrap_err()
            .0
            .contains("not a topic config"));
    }

    #[test]
    fn compaction_settings_follow_kafkas_validators() {
        let mut s = TopicSettings::default();
        set(&mut s, "min.cleanable.dirty.ratio", Some("0.25")).unwrap();
        assert_eq!(s.min_cleanable_dirty_ratio, Ratio::new(0.25));
        for ok in ["0", "1", "1.0", "0.0"] {
            set(&mut s, "min.cleanable.dirty.ratio", Some(ok)).unwrap();
        }
        for bad in ["-0.1", "1.01", "NaN", "half", ""] {
            assert!(
                set(&mut s, "min.cleanable.dirty.ratio", Some(bad)).is_err(),
                "{bad:?}"
            );
        }
        set(&mut s, "min.compaction.lag.ms", Some("0")).unwrap();
        assert_eq!(s.min_compaction_lag, Some(Duration::ZERO));
        assert!(set(&mut s, "min.compaction.lag.ms", Some("-1")).is_err());
        // max.compaction.lag.ms is at least 1.
        assert!(set(&mut s, "max.compaction.lag.ms", Some("0")).is_err());
        set(&mut s, "max.compaction.lag.ms", Some("1")).unwrap();
        set(&mut s, "delete.retention.ms", Some("0")).unwrap();
        assert_eq!(s.delete_retention, Some(Duration::ZERO));
        assert!(set(&mut s, "delete.retention.ms", Some("-5")).is_err());
        set(&mut s, "delete.retention.ms", None).unwrap();
        assert_eq!(s.delete_retention, None);
    }

    #[test]
    fn min_compaction_lag_may_not_exceed_max_compaction_lag() {
        let defaults = StoreConfig::default();
        let change = |n: &str, v: &str| ConfigChange::set(n, v);
        let s = new_topic_settings(
            &[
                change("min.compaction.lag.ms", "1000"),
                change("max.compaction.lag.ms", "1000"),
            ],
            &defaults,
        )
        .unwrap();
        assert_eq!(s.max_compaction_lag, Some(Duration::from_secs(1)));
        let e = new_topic_settings(
            &[
                change("min.compaction.lag.ms", "1001"),
                change("max.compaction.lag.ms", "1000"),
            ],
            &defaults,
        )
        .unwrap_err();
        assert!(e
            .0
            .contains("min.compaction.lag.ms (1001) > max.compaction.lag.ms (1000)"));
        // Against a server default maximum too.
        let mut server = StoreConfig::default();
        server.cleaner.max_compaction_lag = Some(Duration::from_secs(10));
        assert!(new_topic_settings(&[change("min.compaction.lag.ms", "20000")], &server).is_err());
        // ... which a topic can lift with Kafka's Long.MAX_VALUE.
        let s = new_topic_settings(
            &[
                change("min.compaction.lag.ms", "20000"),
                change("max.compaction.lag.ms", &i64::MAX.to_string()),
            ],
            &server,
        )
        .unwrap();
        let described = describe(&s, &server);
        let max = described
            .iter()
            .find(|e| e.name == "max.compaction.lag.ms")
            .unwrap();
        assert_eq!(max.value, i64::MAX.to_string());
        assert_eq!(max.source, ConfigSource::DynamicTopic);
    }

    #[test]
    fn replace_returns_unnamed_configs_to_their_defaults() {
        let defaults = StoreConfig::default();
        let mut current = TopicSettings::default();
        set(&mut current, "retention.ms", Some("60000")).unwrap();
        set(&mut current, "cleanup.policy", Some("compact")).unwrap();
        let incremental = changed(
            &current,
            AlterMode::Incremental,
            &[ConfigChange::set("delete.retention.ms", "100")],
            &defaults,
        )
        .unwrap();
        assert_eq!(incremental.message_expiry, Some(Duration::from_secs(60)));
        assert!(incremental.cleanup_policy.compact);
        let replaced = changed(
            &current,
            AlterMode::Replace,
            &[ConfigChange::set("delete.retention.ms", "100")],
            &defaults,
        )
        .unwrap();
        assert_eq!(replaced.message_expiry, None);
        assert_eq!(replaced.cleanup_policy, CleanupPolicy::default());
        assert_eq!(replaced.delete_retention, Some(Duration::from_millis(100)));
    }

    #[test]
    fn describe_reports_values_types_and_sources() {
        let mut server = StoreConfig::default();
        let get = |entries: &[ConfigEntry], name: &str| {
            entries.iter().find(|e| e.name == name).cloned().unwrap()
        };
        let plain = describe(&TopicSettings::default(), &server);
        let policy = get(&plain, "cleanup.policy");
        assert_eq!(
            (policy.value.as_str(), policy.source, policy.config_type),
            ("delete", ConfigSource::Default, ConfigType::List)
        );
        let ratio = get(&plain, "min.cleanable.dirty.ratio");
        assert_eq!(
            (
                ratio.value.as_str(),
                ratio.source,
                ratio.config_type.kafka_code()
            ),
            ("0.5", ConfigSource::Default, 6)
        );
        assert_eq!(get(&plain, "min.compaction.lag.ms").value, "0");
        assert_eq!(
            get(&plain, "max.compaction.lag.ms").value,
            "9223372036854775807"
        );
        assert_eq!(get(&plain, "delete.retention.ms").value, "86400000");
        assert_eq!(
            get(&plain, "delete.retention.ms").config_type,
            ConfigType::Long
        );

        // A server default changed in the server config is STATIC_BROKER_CONFIG.
        server.cleaner.delete_retention = Duration::from_secs(60);
        let s = new_topic_settings(
            &[
                ConfigChange::set("cleanup.policy", "compact"),
                ConfigChange::set("min.cleanable.dirty.ratio", "1"),
            ],
            &server,
        )
        .unwrap();
        let d = describe(&s, &server);
        let policy = get(&d, "cleanup.policy");
        assert_eq!(
            (policy.value.as_str(), policy.source),
            ("compact", ConfigSource::DynamicTopic)
        );
        assert_eq!(get(&d, "min.cleanable.dirty.ratio").value, "1.0");
        let retention = get(&d, "delete.retention.ms");
        assert_eq!(
            (retention.value.as_str(), retention.source),
            ("60000", ConfigSource::StaticBroker)
        );
        // Every described name is one `set` knows.
        let mut fresh = TopicSettings::default();
        for e in &d {
            set(&mut fresh, &e.name, Some(&e.value)).unwrap_or_else(|err| panic!("{err}"));
        }
    }

    #[test]
    fn broker_defaults_carry_kafkas_names_and_defaults() {
        let d = broker_defaults(&StoreConfig::default());
        let value = |n: &str| d.iter().find(|e| e.name == n).unwrap().value.clone();
        assert_eq!(value("log.cleanup.policy"), "delete");
        assert_eq!(value("log.cleaner.enable"), "true");
        assert_eq!(value("log.cleaner.dedupe.buffer.size"), "134217728");
        assert_eq!(
            value("log.cleaner.io.max.bytes.per.second"),
            "1.7976931348623157E308"
        );
        assert_eq!(value("log.cleaner.backoff.ms"), "15000");
        assert_eq!(value("log.cleaner.min.cleanable.ratio"), "0.5");
        assert_eq!(value("log.cleaner.min.compaction.lag.ms"), "0");
        assert_eq!(
            value("log.cleaner.max.compaction.lag.ms"),
            "9223372036854775807"
        );
        assert_eq!(value("log.cleaner.delete.retention.ms"), "86400000");
        assert!(d.iter().all(|e| e.source == ConfigSource::StaticBroker));
    }
}

#[cfg(test)]
mod compression_tests {
    use super::*;

    /// `compression.type` and its levels: Kafka's values and bounds, the topic's own value
    /// over the server's dynamic one over Kafka's default, in what is described and in the
    /// codec and level batches are stored with; Kafka keeps a batch already in the topic's
    /// codec whatever its level.
    #[test]
    fn compression_follows_the_topic_then_the_server_then_kafkas_default() {
        let defaults = StoreConfig::default();
        let mut s = TopicSettings::default();
        for v in COMPRESSION_TYPES {
            set(&mut s, "compression.type", Some(v)).unwrap();
        }
        assert!(
            set(&mut s, "compression.type", Some("GZIP")).is_err(),
            "case-sensitive"
        );
        for (name, ok, bad) in [
            (GZIP_LEVEL, ["-1", "1", "9"], ["0", "10", "-2"]),
            (LZ4_LEVEL, ["1", "9", "17"], ["0", "18", "-1"]),
            (ZSTD_LEVEL, ["-131072", "3", "22"], ["-131073", "23", "x"]),
        ] {
            for v in ok {
                set(&mut s, name, Some(v)).unwrap_or_else(|e| panic!("{name}={v}: {e}"));
            }
            for v in bad {
                assert!(set(&mut s, name, Some(v)).is_err(), "{name}={v}");
            }
        }
        let s = TopicSettings::default();
        let none = |_: &str| None;
        assert_eq!(
            target_compression(&s, &none),
            TargetCompression {
                codec: None,
                level: None
            }
        );
        let server = |name: &str| match name {
            "compression.type" => Some("zstd".to_string()),
            ZSTD_LEVEL => Some("7".to_string()),
            _ => None,
        };
        assert_eq!(
            target_compression(&s, &server),
            TargetCompression {
                codec: Some(Codec::Zstd),
                level: Some(7)
            }
        );
        let own = changed(
            &s,
            AlterMode::Incremental,
            &[
                ConfigChange::set("compression.type", "lz4"),
                ConfigChange::set(LZ4_LEVEL, "4"),
            ],
            &defaults,
        )
        .unwrap();
        let t = target_compression(&own, &server);
        assert_eq!((t.codec, t.level), (Some(Codec::Lz4), Some(4)));
        assert!(t.recompresses(Codec::Gzip) && t.recompresses(Codec::None));
        assert!(!t.recompresses(Codec::Lz4), "same codec, any level: kept");
        let gzip = target_compression(
            &changed(
                &s,
                AlterMode::Incremental,
                &[ConfigChange::set("compression.type", "gzip")],
                &defaults,
            )
            .unwrap(),
            &none,
        );
        assert_eq!(gzip.level, Some(-1), "Kafka's default gzip level");
        let described = |s: &TopicSettings| {
            describe_with(s, &defaults, &|name| {
                (name == "compression.type")
                    .then(|| ("zstd".to_string(), ConfigSource::DynamicDefaultBroker))
            })
            .into_iter()
            .find(|e| e.name == "compression.type")
            .map(|e| (e.value, e.source))
            .unwrap()
        };
        assert_eq!(
            described(&s),
            ("zstd".into(), ConfigSource::DynamicDefaultBroker)
        );
        assert_eq!(described(&own), ("lz4".into(), ConfigSource::DynamicTopic));
        let plain = describe(&s, &defaults);
        let level = plain.iter().find(|e| e.name == ZSTD_LEVEL).unwrap();
        assert_eq!(
            (level.value.as_str(), level.source),
            ("3", ConfigSource::Default)
        );
    }
}

#[cfg(test)]
mod remote_storage_tests {
    use super::*;
    use wharf_log_store::remote::{ObjectStoreRemote, RemoteConfig, RemoteTier};

    /// A server config with a remote tier (a local folder as the object store).
    fn tiered(dir: &std::path::Path) -> StoreConfig {
        let store = ObjectStoreRemote::open(RemoteConfig::filesystem(dir)).unwrap();
        StoreConfig {
            remote: Some(RemoteTier {
                store: Arc::new(store),
                settings: RemoteSettings::default(),
            }),
            ..StoreConfig::default()
        }
    }

    fn create(changes: &[(&str, &str)], defaults: &StoreConfig) -> Result<TopicSettings, String> {
        let changes: Vec<_> = changes
            .iter()
            .map(|(n, v)| ConfigChange::set(*n, *v))
            .collect();
        new_topic_settings(&changes, defaults).map_err(|e| e.0)
    }

    fn get(entries: &[ConfigEntry], name: &str) -> ConfigEntry {
        entries.iter().find(|e| e.name == name).cloned().unwrap()
    }

    #[test]
    fn tiered_configs_have_kafkas_names_defaults_and_sources() {
        let dir = tempfile::tempdir().unwrap();
        let server = tiered(dir.path());
        let plain = describe(&TopicSettings::default(), &server);
        for (name, value, config_type) in [
            ("remote.storage.enable", "false", ConfigType::Boolean),
            ("local.retention.ms", "-2", ConfigType::Long),
            ("local.retention.bytes", "-2", ConfigType::Long),
        ] {
            let e = get(&plain, name);
            assert_eq!(
                (e.value.as_str(), e.source, e.config_type),
                (value, ConfigSource::Default, config_type),
                "{name}"
            );
        }
        let s = create(
            &[
                ("remote.storage.enable", "TRUE"),
                ("retention.ms", "86400000"),
                ("local.retention.ms", "3600000"),
                ("retention.bytes", "1000000"),
                ("local.retention.bytes", "100000"),
            ],
            &server,
        )
        .unwrap();
        assert!(s.remote_storage);
        assert_eq!(s.local_retention, Some(Duration::from_secs(3600)));
        assert_eq!(s.local_retention_bytes, Some(100_000));
        let d = describe(&s, &server);
        for (name, value) in [
            ("remote.storage.enable", "true"),
            ("local.retention.ms", "3600000"),
            ("local.retention.bytes", "100000"),
        ] {
            let e = get(&d, name);
            assert_eq!(
                (e.value.as_str(), e.source),
                (value, ConfigSource::DynamicTopic),
                "{name}"
            );
        }
        // -2 (and a delete) return them to following the total retention; an explicit -2
        // stays a topic override, as in Kafka (review item N9), a delete goes back to DEFAULT.
        let mut back = s.clone();
        set(&mut back, "local.retention.ms", Some("-2")).unwrap();
        set(&mut back, "local.retention.bytes", None).unwrap();
        assert_eq!(
            (back.local_retention, back.local_retention_bytes),
            (None, None)
        );
        let d = describe(&back, &server);
        for (name, source) in [
            ("local.retention.ms", ConfigSource::DynamicTopic),
            ("local.retention.bytes", ConfigSource::Default),
        ] {
            let e = get(&d, name);
            assert_eq!((e.value.as_str(), e.source), ("-2", source), "{name}");
        }
        set(&mut back, "local.retention.ms", None).unwrap();
        let e = get(&describe(&back, &server), "local.retention.ms");
        assert_eq!(e.source, ConfigSource::Default, "deleted");
        // The catalog keeps the explicit -2, and writes nothing new for an unset one.
        let doc = serde_json::to_string(&TopicSettings::default()).unwrap();
        assert!(!doc.contains("follows"), "{doc}");
        set(&mut back, "local.retention.ms", Some("-2")).unwrap();
        let doc = serde_json::to_string(&back).unwrap();
        let again: TopicSettings = serde_json::from_str(&doc).unwrap();
        assert!(again.local_retention_follows);
    }

    /// Kafka's validators: a boolean is true or false in any case; the local retentions are
    /// at least -2.
    #[test]
    fn malformed_tiered_values_are_refused_with_kafkas_words() {
        let mut s = TopicSettings::default();
        let e = set(&mut s, "remote.storage.enable", Some("yes")).unwrap_err();
        assert_eq!(
            e.0,
            "Invalid value yes for configuration remote.storage.enable: Expected value to be either true or false"
        );
        for name in ["local.retention.ms", "local.retention.bytes"] {
            let e = set(&mut s, name, Some("-3")).unwrap_err();
            assert_eq!(
                e.0,
                format!("Invalid value -3 for configuration {name}: Value must be at least -2")
            );
            assert!(set(&mut s, name, Some("soon")).is_err(), "{name}");
        }
        assert_eq!(s, TopicSettings::default(), "nothing applied");
        // Kafka takes 0: uploaded segments leave the local disk at once.
        set(&mut s, "local.retention.ms", Some("0")).unwrap();
        set(&mut s, "local.retention.bytes", Some("0")).unwrap();
        assert_eq!(s.local_retention, Some(Duration::ZERO));
        assert_eq!(s.local_retention_bytes, Some(0));
    }

    /// Kafka: "Tiered Storage functionality is disabled in the broker" without a remote tier,
    /// answered as INVALID_CONFIG on the Kafka door.
    #[test]
    fn remote_storage_needs_a_server_with_a_remote_tier() {
        let e = create(
            &[("remote.storage.enable", "true")],
            &StoreConfig::default(),
        )
        .unwrap_err();
        assert_eq!(
            e,
            "Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage."
        );
        let broker_error = BrokerError::from(ConfigError(e));
        assert_eq!(
            crate::kafka::errors::for_broker(&broker_error),
            crate::kafka::errors::code::INVALID_CONFIG
        );
        // The local retentions alone are accepted (Kafka ignores them without remote storage).
        create(&[("local.retention.ms", "1000")], &StoreConfig::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        assert!(create(&[("remote.storage.enable", "true")], &tiered(dir.path())).is_ok());
    }

    #[test]
    fn remote_storage_is_refused_for_compacted_topics() {
        let dir = tempfile::tempdir().unwrap();
        let server = tiered(dir.path());
        for policy in ["compact", "compact,delete"] {
            let e = create(
                &[
                    ("remote.storage.enable", "true"),
                    ("cleanup.policy", policy),
                ],
                &server,
            )
            .unwrap_err();
            assert_eq!(
                e,
                "Remote log storage is unsupported for the compacted topics"
            );
        }
        // Nor may a tiered topic become compacted later.
        let s = create(&[("remote.storage.enable", "true")], &server).unwrap();
        let append = ConfigChange {
            name: "cleanup.policy".into(),
            op: ConfigOp::Append("compact".into()),
        };
        assert!(changed(&s, AlterMode::Incremental, &[append], &server).is_err());
    }

    /// Kafka 3.x refuses `remote.storage.enable=false` on a topic that has it on, by a set, a
    /// delete (back to the default) or a legacy AlterConfigs that leaves it out.
    #[test]
    fn remote_storage_once_on_stays_on() {
        let dir = tempfile::tempdir().unwrap();
        let server = tiered(dir.path());
        let s = create(&[("remote.storage.enable", "true")], &server).unwrap();
        let refused = "Disabling remote storage feature on the topic level is not supported.";
        for (mode, change) in [
            (
                AlterMode::Incremental,
                ConfigChange::set("remote.storage.enable", "false"),
            ),
            (
                AlterMode::Incremental,
                ConfigChange::delete("remote.storage.enable"),
            ),
            (
                AlterMode::Replace,
                ConfigChange::set("retention.ms", "1000"),
            ),
        ] {
            let e = changed(&s, mode, std::slice::from_ref(&change), &server).unwrap_err();
            assert_eq!(e.0, refused, "{mode:?} {change:?}");
        }
        // Setting it on again, or changing anything else, is fine.
        let again = changed(
            &s,
            AlterMode::Incremental,
            &[
                ConfigChange::set("remote.storage.enable", "true"),
                ConfigChange::set("local.retention.ms", "1000"),
            ],
            &server,
        )
        .unwrap();
        assert!(again.remote_storage);
    }

    /// Kafka's `validateRemoteStorageRetentionTime/Size`: the local retention may not exceed
    /// the total one, nor be -1 while that is finite; -1 with a total of -1 is accepted.
    #[test]
    fn local_retention_stays_within_the_total_retention() {
        let dir = tempfile::tempdir().unwrap();
        let server = tiered(dir.path());
        let on = ("remote.storage.enable", "true");
        let e = create(
            &[on, ("retention.ms", "1000"), ("local.retention.ms", "2000")],
            &server,
        )
        .unwrap_err();
        assert_eq!(
            e,
            "Invalid value 2000 for configuration local.retention.ms: Value must not be more than retention.ms property value: 1000"
        );
        let e = create(
            &[
                on,
                ("retention.bytes", "1000"),
                ("local.retention.bytes", "2000"),
            ],
            &server,
        )
        .unwrap_err();
        assert_eq!(
            e,
            "Invalid value 2000 for configuration local.retention.bytes: Value must not be more than retention.bytes property value: 1000"
        );
        let e = create(
            &[on, ("retention.ms", "1000"), ("local.retention.ms", "-1")],
            &server,
        )
        .unwrap_err();
        assert_eq!(
            e,
            "Invalid value -1 for configuration local.retention.ms: Value must not be -1 as retention.ms value is set as 1000."
        );
        let e = create(
            &[
                on,
                ("retention.bytes", "5000"),
                ("local.retention.bytes", "-1"),
            ],
            &server,
        )
        .unwrap_err();
        assert!(
            e.contains("as retention.bytes value is set as 5000."),
            "{e}"
        );
        // Forever locally while forever in total: kept as -1, apart from -2.
        let s = create(&[on, ("local.retention.ms", "-1")], &server).unwrap();
        assert_eq!(s.local_retention, Some(LOCAL_RETENTION_FOREVER));
        // Equal is allowed.
        create(
            &[on, ("retention.ms", "1000"), ("local.retention.ms", "1000")],
            &server,
        )
        .unwrap();
    }

    /// Kafka describes `local.retention.ms/bytes = -1` back as -1 with source
    /// DYNAMIC_TOPIC_CONFIG, an explicit -2 as -2 DYNAMIC_TOPIC_CONFIG too (nothing set: -2
    /// DEFAULT); a topic at -1 may
    /// not then get a finite total retention.
    #[test]
    fn local_retention_forever_round_trips_through_describe_as_minus_one() {
        let dir = tempfile::tempdir().unwrap();
        let server = tiered(dir.path());
        let s = create(
            &[
                ("remote.storage.enable", "true"),
                ("local.retention.ms", "-1"),
                ("local.retention.bytes", "-1"),
            ],
            &server,
        )
        .unwrap();
        let d = describe(&s, &server);
        for name in ["local.retention.ms", "local.retention.bytes"] {
            let e = get(&d, name);
            assert_eq!(
                (e.value.as_str(), e.source),
                ("-1", ConfigSource::DynamicTopic),
                "{name}"
            );
        }
        let mut follow = s.clone();
        set(&mut follow, "local.retention.ms", Some("-2")).unwrap();
        let e = get(&describe(&follow, &server), "local.retention.ms");
        assert_eq!(
            (e.value.as_str(), e.source),
            ("-2", ConfigSource::DynamicTopic)
        );
        // Kafka checks the whole resulting config: a finite total under a local -1 is refused.
        for (total, total_value, local) in [
            ("retention.ms", "1000", "local.retention.ms"),
            ("retention.bytes", "5000", "local.retention.bytes"),
        ] {
            let e = changed(
                &s,
                AlterMode::Incremental,
                &[ConfigChange::set(total, total_value)],
                &server,
            )
            .unwrap_err();
            assert_eq!(
                e.0,
                format!("Invalid value -1 for configuration {local}: Value must not be -1 as {total} value is set as {total_value}.")
            );
        }
    }

    #[test]
    fn the_broker_describes_its_remote_log_settings() {
        let value = |d: &[ConfigEntry], n: &str| get(d, n).value;
        let off = broker_defaults(&StoreConfig::default());
        assert_eq!(value(&off, "remote.log.storage.system.enable"), "false");
        assert_eq!(value(&off, "remote.log.manager.task.interval.ms"), "30000");
        assert_eq!(
            value(&off, "remote.log.manager.task.retry.backoff.ms"),
            "500"
        );
        assert_eq!(
            value(&off, "remote.log.manager.task.retry.backoff.max.ms"),
            "30000"
        );
        assert_eq!(
            value(&off, "remote.log.manager.copy.max.bytes.per.second"),
            i64::MAX.to_string()
        );
        let dir = tempfile::tempdir().unwrap();
        let mut server = tiered(dir.path());
        if let Some(r) = server.remote.as_mut() {
            r.settings.copy_max_bytes_per_second = Some(1 << 20);
            r.settings.task_interval = Duration::from_secs(5);
        }
        let on = broker_defaults(&server);
        assert_eq!(value(&on, "remote.log.storage.system.enable"), "true");
        assert_eq!(value(&on, "remote.log.manager.task.interval.ms"), "5000");
        assert_eq!(
            value(&on, "remote.log.manager.copy.max.bytes.per.second"),
            "1048576"
        );
        assert!(on.iter().all(|e| e.source == ConfigSource::StaticBroker));
    }
}

#[cfg(test)]
mod delete_policy_tests {
    use super::*;
    use crate::broker::kafka_batch::{encode_batch, NewRecord};
    use crate::broker::produce::{KafkaPartitionWrite, KafkaTopicWrite};
    use crate::broker::BrokerSettings;

    fn open(dir: &std::path::Path) -> Broker {
        let settings = BrokerSettings::for_tests();
        Broker::open(dir, StoreConfig::default(), settings).unwrap()
    }

    async fn topic_with_two_records(b: &Broker, name: &str, policy: CleanupPolicy) {
        let settings = TopicSettings {
            cleanup_policy: policy,
            ..TopicSettings::default()
        };
        b.create_kafka_topic(name, 1, settings, false)
            .await
            .unwrap();
        let r = NewRecord {
            timestamp_ms: 0,
            key: Some(b"k"),
            value: Some(b"v"),
            headers: Vec::new(),
        };
        let write = KafkaTopicWrite {
            name: name.into(),
            partitions: vec![KafkaPartitionWrite {
                index: 0,
                records: Some(encode_batch(0, &[r.clone(), r])),
            }],
        };
        let produced = b.produce_kafka(None, vec![write], true).await;
        produced[0][0].as_ref().expect("produce");
    }

    /// Kafka (`Partition.deleteRecordsOnLeader`): DeleteRecords on a topic whose
    /// cleanup.policy lacks `delete` is refused with POLICY_VIOLATION (44) and the log start
    /// stays; with `compact,delete` or `delete` it moves.
    #[tokio::test]
    async fn delete_records_needs_the_delete_policy() {
        let dir = tempfile::tempdir().unwrap();
        let b = open(dir.path());
        let compact = CleanupPolicy {
            delete: false,
            compact: true,
        };
        topic_with_two_records(&b, "state", compact).await;
        let e = b.delete_records("state", 0, 1).await.unwrap_err();
        assert!(
            matches!(&e, BrokerError::DeletePolicy(p) if p == "state-0"),
            "{e:?}"
        );
        assert_eq!(crate::kafka::errors::for_broker(&e), 44, "POLICY_VIOLATION");
        assert_eq!(
            e.to_string(),
            "Records of partition state-0 can not be deleted due to the configured policy"
        );
        let p = b.kafka_partition_key("state", 0).unwrap();
        let p = b.partition_handle(p.stream, p.topic, 0).unwrap();
        assert_eq!(p.log_start_offset(), 0, "nothing deleted");
        // A partition that does not exist is still UNKNOWN_TOPIC_OR_PARTITION first.
        assert!(!matches!(
            b.delete_records("state", 5, 1).await,
            Err(BrokerError::DeletePolicy(_))
        ));
        for (name, delete, compact) in [("both", true, true), ("plain", true, false)] {
            topic_with_two_records(&b, name, CleanupPolicy { delete, compact }).await;
            assert_eq!(b.delete_records(name, 0, 1).await.unwrap(), 1, "{name}");
        }
    }
}
