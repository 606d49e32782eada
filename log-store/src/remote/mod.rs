//! The remote tier: sealed segments of topics with `remote.storage.enable` copied to object
//! storage (S3 or an S3-compatible server, or a local folder), read back transparently below
//! the local log start, and a durable record of what is there (one checksummed manifest per
//! partition, plus a copy of the catalog for restoring a lost data directory).
//!
//! - [`RemoteStore`]: the narrow trait the store talks to; [`ObjectStoreRemote`] implements it
//!   with the `object_store` crate (S3 and a local folder). Tests wrap it to fail on demand.
//! - [`RemoteManifest`] (`manifest`): what a partition has uploaded, checksummed, kept both in
//!   the partition folder (`remote-manifest`) and beside the segments in the remote store.
//! - `cache`: the bounded read-ahead cache on local disk through which remote reads go.
//! - `reader`: reading whole batches (and timestamp and offset look-ups) of uploaded segments.
//! - `tiering`: the background thread that uploads sealed segments, writes manifests, deletes
//!   local copies past the local retention and remote ones past the total retention, with
//!   retries and backoff while the object store is down.
//! - `restore`: rebuilding an empty data directory from the remote catalog and manifests.
//!
//! The order that keeps data safe: segment objects are uploaded, then the manifest naming them
//! is stored remotely and written durably in the partition folder, and only then may the local
//! copy go. A kill at any point leaves either the old manifest (and objects re-uploaded next
//! time) or the new one.
//!
//! Remote layout under the configured prefix:
//!
//! ```text
//! <prefix>catalog                                           the catalog (streams, topics, settings)
//! <prefix>topics/<stream>-<topic>-<created_us>/<partition>/manifest
//! <prefix>topics/<stream>-<topic>-<created_us>/<partition>/<base:020>-<epoch>.log
//! <prefix>topics/<stream>-<topic>-<created_us>/<partition>/<base:020>-<epoch>.index
//! ```
//!
//! The topic's creation time is part of the key, so a topic deleted and created again under the
//! same id never meets the old topic's objects. A segment's objects carry the epoch of the
//! manifest that first names them, so a purged partition's new segment 0 never overwrites (or
//! is deleted as) the old one, and an upload cut short by a kill is redone under the same keys.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

mod cache;
mod faults;
mod hooks;
mod manifest;
mod object;
mod reader;
mod restore;
mod tiering;

pub(crate) use cache::ReadCache;
#[doc(hidden)]
pub use faults::{FaultyRemote, RemoteCallCounts};
pub(crate) use hooks::HooksSlot;
pub use hooks::{AbortedRange, TieringHooks};
#[cfg(test)]
pub(crate) use manifest::CLONES;
pub use manifest::{RemoteManifest, RemoteSegment, MANIFEST_VERSION, MAX_MANIFEST_SEGMENTS};
pub use object::{ObjectStoreRemote, RemoteConfig, RemoteKind, S3Config};
pub(crate) use reader::RemoteReader;
pub(crate) use restore::restore_from_remote;
pub use restore::RestoreReport;
pub use tiering::TierReport;
pub(crate) use tiering::{RoundInput, Signal as TieringSignal, Tiering, TopicWork};

/// An object store as the log store needs it: whole objects in, whole objects or ranges out.
///
/// Every call blocks until done; callers are the store's own threads and tokio's blocking pool,
/// never an async worker. Implementations bound each call by a timeout and report a store that
/// cannot be reached as [`RemoteError::Unavailable`].
pub trait RemoteStore: Send + Sync + std::fmt::Debug {
    /// Stores `len` bytes read from `source` under `key`, replacing any object there. Large
    /// objects are sent in parts, so memory stays bounded whatever `len` is.
    fn put(&self, key: &str, source: &mut dyn std::io::Read, len: u64) -> Result<(), RemoteError>;

    /// The whole object, or `None` when there is none under `key`. Only small documents
    /// (manifests, the catalog) are got whole: an object over [`MAX_GET_BYTES`] is
    /// [`RemoteError::Corrupt`], refused before its bytes are read.
    fn get(&self, key: &str) -> Result<Option<Bytes>, RemoteError>;

    /// Bytes `range` of the object under `key` (the object must hold them all).
    fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, RemoteError>;

    /// Deletes the object; a missing object is not an error.
    fn delete(&self, key: &str) -> Result<(), RemoteError>;

    /// The keys of every object whose key starts with `prefix`, in no particular order.
    fn list(&self, prefix: &str) -> Result<Vec<String>, RemoteError>;

    /// Calls `each` with every key starting with `prefix`, as the listing arrives, so a prefix
    /// of many objects is never held whole in memory; `each` returning an error stops the
    /// listing with it. Stores that cannot stream keep the default, which lists first.
    fn list_each(
        &self,
        prefix: &str,
        each: &mut dyn FnMut(String) -> Result<(), RemoteError>,
    ) -> Result<(), RemoteError> {
        self.list(prefix)?.into_iter().try_for_each(each)
    }
}

/// The largest object [`RemoteStore::get`] returns: the largest manifest (or catalog copy) a
/// store may hold. Nothing bigger is ever allocated for a whole-object get.
pub const MAX_GET_BYTES: u64 = manifest::MAX_MANIFEST_BYTES as u64;

/// What went wrong talking to the remote tier.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// No object under the key (from `get_range`; `get` answers `None`).
    #[error("no object '{0}' in the remote store")]
    NotFound(String),
    /// The store could not be reached, refused, or took longer than the timeout: retried later.
    #[error("the remote store is unavailable for '{key}': {reason}")]
    Unavailable { key: String, reason: String },
    /// An object was there but is not what was stored (checksum, length or format).
    #[error("remote object '{key}' is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    /// The configuration cannot work (bucket, endpoint, credentials missing or malformed).
    #[error("remote storage configuration: {0}")]
    Config(String),
    /// Remote reads are at their store-wide bound (`reader_threads` running and
    /// `reader_max_pending_tasks` waiting): refused at once rather than held, retried later.
    #[error("remote reads are at their bound ({running} running, {pending} waiting); retry later")]
    Busy { running: usize, pending: usize },
    /// A partition's manifest would name more segments than the bound
    /// ([`RemoteSettings::manifest_max_segments`], at most [`MAX_MANIFEST_SEGMENTS`]): it is
    /// not written, and the partition's uploads stop until retention shrinks its manifest or the
    /// bound is raised (its local data is kept meanwhile).
    #[error("the remote manifest of partition {partition} would name {segments} segments, over the bound of {max} (remote_storage.manifest_max_segments); uploads of this partition stop until retention shrinks it or the bound is raised")]
    ManifestFull {
        partition: String,
        segments: usize,
        max: usize,
    },
    /// The local side of a transfer failed (reading a segment file, writing the cache).
    #[error("local file {path}: {source}")]
    Local {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RemoteError {
    /// True for failures worth retrying (the store down or slow), false for what will not
    /// change by itself.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            RemoteError::Unavailable { .. } | RemoteError::Local { .. } | RemoteError::Busy { .. }
        )
    }
}

/// The remote tier as the store is configured with it: the object store and how the store
/// uses it. Two tiers are equal when they are the same store with the same settings.
#[derive(Debug, Clone)]
pub struct RemoteTier {
    pub store: Arc<dyn RemoteStore>,
    pub settings: RemoteSettings,
}

impl PartialEq for RemoteTier {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.store, &other.store) && self.settings == other.settings
    }
}

impl Eq for RemoteTier {}

/// How the store uses its remote tier, under Kafka's names where Kafka has them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSettings {
    /// The read-ahead cache's folder; `None`: `remote-cache` in the data directory. The
    /// cache's own files in it are removed when the store opens (it is only a cache); nothing
    /// else in the folder is touched.
    pub cache_dir: Option<PathBuf>,
    /// Bytes the read-ahead cache may hold on local disk
    /// (like `remote.log.index.file.cache.total.size.bytes`, for data as well).
    pub cache_max_bytes: u64,
    /// The unit of a remote read: a read of any byte of an uploaded segment fetches the whole
    /// chunk around it, and the next chunk is fetched ahead.
    pub chunk_size: u64,
    /// How often the tiering thread looks for sealed segments to upload and for segments past
    /// their local or total retention (`remote.log.manager.task.interval.ms`).
    pub task_interval: Duration,
    /// First wait after a failed upload (`remote.log.manager.copier.retry.backoff.ms`)...
    pub retry_backoff: Duration,
    /// ...doubled after each failure up to this (`remote.log.manager.copier.retry.backoff.max.ms`).
    pub retry_backoff_max: Duration,
    /// Bytes per second uploads may send at most (`remote.log.manager.copy.max.bytes.per.second`);
    /// `None`: unlimited.
    pub copy_max_bytes_per_second: Option<u64>,
    /// Remote reads (fetches, offset and timestamp look-ups below the local log start) that
    /// run at once, store-wide (`remote.log.reader.threads`)...
    pub reader_threads: usize,
    /// ...and that may wait for a turn (`remote.log.reader.max.pending.tasks`); any further
    /// one is refused at once with a retriable error instead of holding a thread.
    pub reader_max_pending_tasks: usize,
    /// The most segments one partition's manifest may name (1..=[`MAX_MANIFEST_SEGMENTS`]).
    /// The manifest is rewritten whole on every change, so this bounds that cost; a partition
    /// at the bound stops uploading, with an alert, until retention shrinks its manifest.
    pub manifest_max_segments: usize,
}

/// Kafka's defaults for `remote.log.reader.threads` and `remote.log.reader.max.pending.tasks`.
pub const DEFAULT_READER_THREADS: usize = 10;
pub const DEFAULT_READER_MAX_PENDING_TASKS: usize = 100;

impl Default for RemoteSettings {
    fn default() -> Self {
        RemoteSettings {
            cache_dir: None,
            cache_max_bytes: 1 << 30,
            chunk_size: 4 << 20,
            task_interval: Duration::from_secs(30),
            retry_backoff: Duration::from_millis(500),
            retry_backoff_max: Duration::from_secs(30),
            copy_max_bytes_per_second: None,
            reader_threads: DEFAULT_READER_THREADS,
            reader_max_pending_tasks: DEFAULT_READER_MAX_PENDING_TASKS,
            manifest_max_segments: DEFAULT_MANIFEST_MAX_SEGMENTS,
        }
    }
}

/// The remote tier's state, for the operator ([`crate::LogStore::remote_status`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoteStatus {
    /// Sealed segments of remote-storage topics not uploaded yet, and their bytes: what is
    /// waiting (grows while the object store is down).
    pub pending_segments: u64,
    pub pending_bytes: u64,
    /// Segments and `.log` bytes the manifests name.
    pub remote_segments: u64,
    pub remote_bytes: u64,
    /// Bytes held by the read-ahead cache.
    pub cache_bytes: u64,
}

/// Where a partition's objects live, below the configured prefix (the store's prefix is
/// applied by the [`RemoteStore`] itself, so keys here are relative to it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartitionPrefix(String);

impl PartitionPrefix {
    pub fn new(stream: u32, topic: u32, topic_created_us: u64, partition: u32) -> PartitionPrefix {
        PartitionPrefix(format!(
            "{TOPICS_PREFIX}{stream}-{topic}-{topic_created_us}/{partition}/"
        ))
    }

    /// The prefix of every partition of one topic.
    pub fn topic(stream: u32, topic: u32, topic_created_us: u64) -> String {
        format!("{TOPICS_PREFIX}{stream}-{topic}-{topic_created_us}/")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn manifest(&self) -> String {
        format!("{}manifest", self.0)
    }

    pub fn log(&self, base_offset: u64, epoch: u64) -> String {
        format!("{}{base_offset:020}-{epoch}.log", self.0)
    }

    pub fn index(&self, base_offset: u64, epoch: u64) -> String {
        format!("{}{base_offset:020}-{epoch}.index", self.0)
    }
}

/// Default of [`RemoteSettings::manifest_max_segments`]: about 35 MB of manifest, 100 TB of
/// 1 GiB segments.
pub const DEFAULT_MANIFEST_MAX_SEGMENTS: usize = 100_000;

/// The key of the catalog's copy.
pub const CATALOG_KEY: &str = "catalog";
/// Where the topics' objects start.
pub const TOPICS_PREFIX: &str = "topics/";
/// The name of a partition's manifest in its folder.
pub(crate) const MANIFEST_FILE: &str = "remote-manifest";
