//! Settings: the store-wide defaults and each topic's own settings.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::disk::Disk;
use crate::error::{Result, StoreError};

/// When an append is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Acknowledged once handed to the kernel with `write`: survives a killed process. A
    /// background fsync runs every [`StoreConfig::fsync_interval`].
    Os,
    /// Acknowledged once `fdatasync` covers the batch (group commit): survives power loss.
    Fsync,
}

impl std::str::FromStr for Durability {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "os" => Ok(Durability::Os),
            "fsync" => Ok(Durability::Fsync),
            other => Err(StoreError::InvalidSetting(format!(
                "durability '{other}' is not 'os' or 'fsync'"
            ))),
        }
    }
}

/// Which timestamp a topic's Kafka batches carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum TimestampType {
    /// The producer's timestamps are kept.
    #[default]
    CreateTime,
    /// The server stamps its append time on every batch.
    LogAppendTime,
}

/// What happens to a topic's old data (Kafka's `cleanup.policy`, a list of `delete` and
/// `compact`). Both may be off: data is then kept until deleted by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CleanupPolicy {
    /// Retention (`message_expiry`, `max_size`) deletes whole sealed segments.
    pub delete: bool,
    /// The cleaner keeps only the latest record of each key in sealed segments.
    pub compact: bool,
}

impl Default for CleanupPolicy {
    fn default() -> Self {
        CleanupPolicy {
            delete: true,
            compact: false,
        }
    }
}

/// A ratio in 0.0..=1.0 kept as millionths, so that settings stay `Eq` and print back as they
/// were given (Kafka's `min.cleanable.dirty.ratio`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Ratio(u32);

impl Ratio {
    pub const ONE: Ratio = Ratio(1_000_000);

    /// `None` unless `value` lies in 0.0..=1.0.
    pub fn new(value: f64) -> Option<Ratio> {
        (0.0..=1.0)
            .contains(&value)
            .then(|| Ratio((value * 1_000_000.0).round() as u32))
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 1_000_000.0
    }
}

impl std::fmt::Display for Ratio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.as_f64())
    }
}

/// Per-topic settings. `None` means "use the store default" where a default exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicSettings {
    /// Sealed segments whose newest batch is older than this are deleted. `None`: kept forever.
    pub message_expiry: Option<Duration>,
    /// The topic's size (all partitions) is kept at or below this by deleting the oldest sealed
    /// segments. `None`: unlimited.
    pub max_size: Option<u64>,
    /// A segment is sealed once it holds this many bytes. `None`: the store default.
    pub segment_size: Option<u64>,
    /// A segment is sealed once its first batch is this old. `None`: the store default.
    pub segment_max_age: Option<Duration>,
    /// `None`: the store default.
    pub durability: Option<Durability>,
    pub timestamp_type: TimestampType,
    /// Largest batch accepted, in payload bytes. `None`: the store default.
    pub max_batch_bytes: Option<u32>,
    /// Retention, compaction, or both (Kafka's `cleanup.policy`).
    #[serde(default)]
    pub cleanup_policy: CleanupPolicy,
    /// A partition is compacted once this share of its sealed bytes is dirty (written since the
    /// last cleaning). `None`: the store default.
    #[serde(default)]
    pub min_cleanable_dirty_ratio: Option<Ratio>,
    /// A record is not compacted away before it is this old. `None`: the store default.
    #[serde(default)]
    pub min_compaction_lag: Option<Duration>,
    /// A dirty record older than this is compacted whatever the dirty ratio. `None`: the store
    /// default.
    #[serde(default)]
    pub max_compaction_lag: Option<Duration>,
    /// How long a tombstone (and a transaction marker) survives compaction. `None`: the store
    /// default.
    #[serde(default)]
    pub delete_retention: Option<Duration>,
    /// Sealed segments are copied to the store's remote tier (Kafka's `remote.storage.enable`).
    /// Needs a remote tier in the store's config; not with compaction.
    #[serde(default)]
    pub remote_storage: bool,
    /// With remote storage: sealed segments are kept on local disk until their newest batch is
    /// this old, once uploaded (Kafka's `local.retention.ms`; 0: deleted locally as soon as
    /// uploaded). `None`: as long as `message_expiry` (Kafka's -2);
    /// [`LOCAL_RETENTION_FOREVER`]: kept forever (Kafka's -1, only while `message_expiry` is
    /// `None`). Never longer than `message_expiry` on a topic with remote storage.
    #[serde(default)]
    pub local_retention: Option<Duration>,
    /// With remote storage: uploaded sealed segments are deleted locally, oldest first, while
    /// the topic's local size is above this (Kafka's `local.retention.bytes`, which Wharf
    /// applies to the topic as a whole like `max_size`). `None`: as `max_size` (Kafka's -2);
    /// [`LOCAL_RETENTION_BYTES_FOREVER`]: no bound (Kafka's -1, only while `max_size` is
    /// `None`).
    #[serde(default)]
    pub local_retention_bytes: Option<u64>,
    /// `local_retention` / `local_retention_bytes` set to Kafka's -2 explicitly: a topic
    /// override (as Kafka describes it) that follows the total like an unset one. Written only
    /// when set, so older catalogs read, and are written, as before.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local_retention_follows: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local_retention_bytes_follows: bool,
    /// Kafka's `compression.type` and `compression.*.level` set on the topic. The broker
    /// gives them meaning (it recompresses produced batches); the store only keeps them.
    /// Written only when set, so older catalogs read, and are written, as before.
    #[serde(default, skip_serializing_if = "TopicCompression::is_unset")]
    pub compression: TopicCompression,
}

/// A topic's compression configs as set on it; `None`: not set (the server default holds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicCompression {
    /// `producer`, `uncompressed`, `gzip`, `snappy`, `lz4` or `zstd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gzip_level: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lz4_level: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zstd_level: Option<i32>,
}

impl TopicCompression {
    /// Nothing set on the topic.
    pub fn is_unset(&self) -> bool {
        *self == TopicCompression::default()
    }
}

/// [`TopicSettings::local_retention`] of a topic that keeps uploaded segments locally forever
/// (Kafka's `local.retention.ms=-1`), which a describe must tell from following
/// `message_expiry` (`None`, Kafka's -2). The largest duration: the tiering's age arithmetic
/// saturates, so it never expires; the catalog stores it like any other value, so older
/// catalogs read as before.
pub const LOCAL_RETENTION_FOREVER: Duration = Duration::MAX;
/// [`TopicSettings::local_retention_bytes`] without a bound (Kafka's
/// `local.retention.bytes=-1`), told apart from following `max_size` (`None`).
pub const LOCAL_RETENTION_BYTES_FOREVER: u64 = u64::MAX;

impl Default for TopicSettings {
    fn default() -> Self {
        TopicSettings {
            message_expiry: None,
            max_size: None,
            segment_size: None,
            segment_max_age: None,
            durability: None,
            timestamp_type: TimestampType::CreateTime,
            max_batch_bytes: None,
            cleanup_policy: CleanupPolicy::default(),
            min_cleanable_dirty_ratio: None,
            min_compaction_lag: None,
            max_compaction_lag: None,
            delete_retention: None,
            remote_storage: false,
            local_retention: None,
            local_retention_bytes: None,
            local_retention_follows: false,
            local_retention_bytes_follows: false,
            compression: TopicCompression::default(),
        }
    }
}

impl TopicSettings {
    pub fn validate(&self) -> Result<()> {
        if let Some(size) = self.segment_size {
            if !(MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&size) {
                return Err(StoreError::InvalidSetting(format!(
                    "segment size {size} is outside {MIN_SEGMENT_SIZE}..={MAX_SEGMENT_SIZE} bytes"
                )));
            }
        }
        if self.max_size == Some(0) {
            return Err(StoreError::InvalidSetting(
                "max size 0 would delete everything; leave it unset for unlimited".into(),
            ));
        }
        if self.max_batch_bytes == Some(0) {
            return Err(StoreError::InvalidSetting(
                "max batch bytes must be positive".into(),
            ));
        }
        if self.message_expiry == Some(Duration::ZERO)
            || self.segment_max_age == Some(Duration::ZERO)
            || self.max_compaction_lag == Some(Duration::ZERO)
        {
            return Err(StoreError::InvalidSetting(
                "durations must be positive; leave them unset for none".into(),
            ));
        }
        if self.remote_storage && self.cleanup_policy.compact {
            // Kafka refuses the same: uploaded segments are never rewritten.
            return Err(StoreError::InvalidSetting(
                "remote storage is not supported for compacted topics".into(),
            ));
        }
        // As Kafka's `LogConfig`: the local retentions are checked against the total ones only
        // on a topic with remote storage (elsewhere they do nothing). 0 is allowed: uploaded
        // segments then leave the local disk at the next tiering round.
        if self.remote_storage {
            if let (Some(local), Some(total)) = (self.local_retention, self.message_expiry) {
                if local == LOCAL_RETENTION_FOREVER {
                    return Err(StoreError::InvalidSetting(format!(
                        "local retention forever (-1) with a retention of {} ms",
                        total.as_millis()
                    )));
                }
                if local > total {
                    return Err(StoreError::InvalidSetting(format!(
                        "local retention {} ms is above retention {} ms",
                        local.as_millis(),
                        total.as_millis()
                    )));
                }
            }
            if let (Some(local), Some(total)) = (self.local_retention_bytes, self.max_size) {
                if local == LOCAL_RETENTION_BYTES_FOREVER {
                    return Err(StoreError::InvalidSetting(format!(
                        "local retention unbounded (-1) with a retention of {total} bytes"
                    )));
                }
                if local > total {
                    return Err(StoreError::InvalidSetting(format!(
                        "local retention {local} bytes is above retention {total} bytes"
                    )));
                }
            }
        }
        if let (Some(min), Some(max)) = (self.min_compaction_lag, self.max_compaction_lag) {
            // Kafka refuses the same conflict.
            if min > max {
                return Err(StoreError::InvalidSetting(format!(
                    "min compaction lag {} ms is above max compaction lag {} ms",
                    min.as_millis(),
                    max.as_millis()
                )));
            }
        }
        Ok(())
    }
}

/// Smallest segment size accepted: one byte, so tests can put every batch in its own segment.
pub const MIN_SEGMENT_SIZE: u64 = 1;
/// Largest segment size accepted: positions are u64 but we keep segments to a size that a
/// single file comfortably holds and retention can delete in one step.
pub const MAX_SEGMENT_SIZE: u64 = 64 << 30;

/// Default of [`StoreConfig::writeback_bytes`]: off. RocksDB's usual `bytes_per_sync` (1 MiB)
/// cost a flat-out producer a quarter to a half of its throughput on a 2-CPU machine and did not
/// lower its p99.9 (BENCHMARKS.md, "Performance").
pub const DEFAULT_WRITEBACK_BYTES: u64 = 0;

/// Default of [`StoreConfig::preallocate_bytes`]: 4 MiB. Without preallocation the periodic
/// fsync's block allocation held the file's allocation lock while it waited for disk reads, and
/// appends queued behind it: a 60 s `os` producer's p99.9 was 18-25 ms against 5 ms with it, and
/// a flat-out one 4 % slower (a quarter slower on memory the host had to back anew;
/// BENCHMARKS.md, "Preallocation").
pub const DEFAULT_PREALLOCATE_BYTES: u64 = 4 << 20;

/// Store-wide settings and topic defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub default_segment_size: u64,
    pub default_segment_max_age: Duration,
    pub default_durability: Durability,
    pub default_max_batch_bytes: u32,
    /// How often the background syncer fsyncs `os`-mode partitions and the offsets journal.
    pub fsync_interval: Duration,
    /// Every this many bytes appended to an `os`-mode segment log, a writeback thread has the
    /// kernel start writing them (`sync_file_range`, RocksDB's `bytes_per_sync`), so that the
    /// periodic fsync finds little left to write and the writer never stalls behind a second's
    /// worth of dirty pages. Smoothing only: durability stays the periodic fsync. 0: off.
    pub writeback_bytes: u64,
    /// The active segment's log reserves its disk blocks ahead of its end (`fallocate` keeping
    /// the size; Kafka's `log.preallocate`, in steps instead of a whole segment), so neither
    /// appends nor the kernel's writeback allocate blocks as data arrives. Each step is at
    /// least this and at least what the segment holds (steps double, up to the segment size),
    /// so a log holds at most the larger of the two beyond its data. A rolled segment gives
    /// the unused rest back. 0: off.
    pub preallocate_bytes: u64,
    /// How often retention runs.
    pub retention_interval: Duration,
    /// Run the background syncer and retention thread (tests turn it off to drive them by hand).
    pub background_tasks: bool,
    /// Every file operation of the store goes through this; [`Disk::real`] in production, a
    /// [`Disk::with_hook`] in tests that watch or fail them.
    pub disk: Disk,
    /// Segment files kept open at once across all partitions; the rest are opened on demand.
    pub max_open_files: usize,
    /// The log cleaner (compaction) and the compaction defaults of topics.
    pub cleaner: CleanerConfig,
    /// The remote tier for topics with remote storage on; `None`: no remote tier (such topics
    /// are refused).
    pub remote: Option<crate::remote::RemoteTier>,
}

/// The log cleaner's settings, under Kafka's names where Kafka has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanerConfig {
    /// Run the cleaner at all (`log.cleaner.enable`).
    pub enabled: bool,
    /// Memory for the key-to-offset map of one cleaning (`log.cleaner.dedupe.buffer.size`);
    /// a dirty section with more keys is cleaned in several passes.
    pub dedupe_buffer_size: u64,
    /// Bytes per second the cleaner reads and writes at most
    /// (`log.cleaner.io.max.bytes.per.second`); `None`: unlimited.
    pub io_max_bytes_per_second: Option<u64>,
    /// Sleep between looks when no partition needs cleaning (`log.cleaner.backoff.ms`).
    pub backoff: Duration,
    /// Topic default of `min.cleanable.dirty.ratio` (`log.cleaner.min.cleanable.ratio`).
    pub min_cleanable_dirty_ratio: Ratio,
    /// Topic default of `min.compaction.lag.ms` (`log.cleaner.min.compaction.lag.ms`).
    pub min_compaction_lag: Duration,
    /// Topic default of `max.compaction.lag.ms` (`log.cleaner.max.compaction.lag.ms`);
    /// `None`: no limit.
    pub max_compaction_lag: Option<Duration>,
    /// Topic default of `delete.retention.ms` (`log.cleaner.delete.retention.ms`).
    pub delete_retention: Duration,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            enabled: true,
            dedupe_buffer_size: 128 << 20,
            io_max_bytes_per_second: None,
            backoff: Duration::from_secs(15),
            min_cleanable_dirty_ratio: Ratio(500_000),
            min_compaction_lag: Duration::ZERO,
            max_compaction_lag: None,
            delete_retention: Duration::from_secs(24 * 3600),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            default_segment_size: 1 << 30,
            default_segment_max_age: Duration::from_secs(7 * 24 * 3600),
            default_durability: Durability::Os,
            default_max_batch_bytes: 16 << 20,
            fsync_interval: Duration::from_secs(1),
            writeback_bytes: DEFAULT_WRITEBACK_BYTES,
            preallocate_bytes: DEFAULT_PREALLOCATE_BYTES,
            retention_interval: Duration::from_secs(60),
            background_tasks: true,
            disk: Disk::real(),
            max_open_files: 512,
            cleaner: CleanerConfig::default(),
            remote: None,
        }
    }
}

/// The age at which the active segment is sealed: `segment.ms`, or `max.compaction.lag.ms`
/// when the topic is compacted and that is sooner (as Kafka does), so that data older than the
/// lag becomes cleanable.
fn roll_age(topic: &TopicSettings, store: &StoreConfig) -> u64 {
    let mut age = topic
        .segment_max_age
        .unwrap_or(store.default_segment_max_age);
    if topic.cleanup_policy.compact {
        if let Some(lag) = topic
            .max_compaction_lag
            .or(store.cleaner.max_compaction_lag)
        {
            age = age.min(lag.max(Duration::from_millis(1)));
        }
    }
    age.as_micros().min(u128::from(u64::MAX)) as u64
}

/// A topic's settings with the store defaults filled in: what the partitions act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EffectiveSettings {
    pub segment_size: u64,
    pub segment_max_age_us: u64,
    pub durability: Durability,
    pub log_append_time: bool,
    pub max_batch_bytes: u32,
    /// The bound on the partition's remote manifest (the store's remote tier's
    /// `manifest_max_segments`; its default without one).
    pub manifest_max_segments: usize,
    /// The store's `writeback_bytes`, used by `os`-mode appends.
    pub writeback_bytes: u64,
    /// The store's `preallocate_bytes`.
    pub preallocate_bytes: u64,
}

impl EffectiveSettings {
    pub fn resolve(topic: &TopicSettings, store: &StoreConfig) -> Self {
        EffectiveSettings {
            segment_size: topic.segment_size.unwrap_or(store.default_segment_size),
            segment_max_age_us: roll_age(topic, store),
            durability: topic.durability.unwrap_or(store.default_durability),
            log_append_time: topic.timestamp_type == TimestampType::LogAppendTime,
            max_batch_bytes: topic
                .max_batch_bytes
                .unwrap_or(store.default_max_batch_bytes),
            manifest_max_segments: store
                .remote
                .as_ref()
                .map_or(crate::remote::DEFAULT_MANIFEST_MAX_SEGMENTS, |r| {
                    r.settings.manifest_max_segments
                }),
            writeback_bytes: store.writeback_bytes,
            preallocate_bytes: store.preallocate_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's `LogConfig` checks the local retentions against the total ones only on topics
    /// with remote storage, and takes 0 (deleted locally once uploaded).
    #[test]
    fn local_retentions_are_checked_only_with_remote_storage_and_may_be_zero() {
        let above = TopicSettings {
            message_expiry: Some(Duration::from_secs(60)),
            local_retention: Some(Duration::from_secs(120)),
            max_size: Some(1000),
            local_retention_bytes: Some(2000),
            ..TopicSettings::default()
        };
        assert!(above.validate().is_ok(), "no remote storage: not checked");
        let tiered = TopicSettings {
            remote_storage: true,
            ..above.clone()
        };
        assert!(tiered.validate().is_err());
        let bytes_only = TopicSettings {
            local_retention: None,
            ..tiered.clone()
        };
        assert!(bytes_only.validate().is_err(), "bytes above the total");
        let zero = TopicSettings {
            local_retention: Some(Duration::ZERO),
            local_retention_bytes: Some(0),
            ..tiered
        };
        assert!(zero.validate().is_ok());
        let compacted = TopicSettings {
            cleanup_policy: CleanupPolicy {
                delete: false,
                compact: true,
            },
            ..zero
        };
        assert!(
            compacted.validate().is_err(),
            "remote storage with compaction"
        );
    }

    /// Kafka's -1 (keep locally forever) is stored apart from -2 (follow the total) and
    /// survives the catalog's JSON; a catalog written before it existed reads the same.
    #[test]
    fn local_retention_forever_is_kept_apart_and_round_trips_through_the_catalog() {
        let forever = TopicSettings {
            remote_storage: true,
            local_retention: Some(LOCAL_RETENTION_FOREVER),
            local_retention_bytes: Some(LOCAL_RETENTION_BYTES_FOREVER),
            ..TopicSettings::default()
        };
        assert!(
            forever.validate().is_ok(),
            "with a total retention of forever"
        );
        let json = serde_json::to_string(&forever).unwrap();
        let back: TopicSettings = serde_json::from_str(&json).unwrap();
        assert_eq!(back, forever);
        assert_ne!(back.local_retention, None);
        // A catalog from before the tiered settings existed.
        let mut old = serde_json::to_value(TopicSettings::default()).unwrap();
        let fields = old.as_object_mut().unwrap();
        for k in ["remote_storage", "local_retention", "local_retention_bytes"] {
            fields.remove(k);
        }
        let read: TopicSettings = serde_json::from_value(old).unwrap();
        assert_eq!(read, TopicSettings::default());
        // Kafka: -1 locally only while the total is -1 too.
        let finite = TopicSettings {
            message_expiry: Some(Duration::from_secs(60)),
            ..forever.clone()
        };
        assert!(finite.validate().is_err());
        let bounded = TopicSettings {
            max_size: Some(1000),
            ..forever
        };
        assert!(bounded.validate().is_err());
    }
}
