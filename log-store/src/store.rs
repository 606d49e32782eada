//! The store: the catalog of streams and topics, the partitions it opens, the consumer offsets,
//! and the background thread that syncs `os`-mode data and applies retention.
//!
//! Layout under the data directory:
//!
//! ```text
//! .lock                                  held while a process has the store open
//! catalog                                streams, topics and settings (durable_file format)
//! offsets/journal                        consumer offsets
//! streams/<sid>/topics/<tid>/partitions/<pid>/<base offset, 20 digits>.{log,index}
//!                                             cleaner-checkpoint   how far compaction got
//!                                             cleaner-swap         a committed swap, until done
//!                                             <base>.{log,index}.cleaned   a cleaning's output
//! ```
//!
//! Metadata changes are serialised. A change that adds files creates them before the catalog
//! names them; one that removes files drops them from the catalog first. Folders the catalog
//! does not name (left by a crash between the two steps) are removed on open.
//!
//! Every file operation of the store goes through the [`Disk`] of its [`StoreConfig`].

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::compaction::cleaner::{self, Policy, Work};
use crate::compaction::map::OffsetMap;
use crate::compaction::throttle::Throttle;
use crate::compaction::{CleanReport, CleanerStats, RecordKeys};
use crate::config::{EffectiveSettings, StoreConfig, TopicSettings};
use crate::disk::Disk;
use crate::durable_file::read_durable;
use crate::error::{Result, StoreError};
use crate::names::validate_name;
use crate::offsets::ConsumerOffsets;
use crate::open_files::{capacity_within_limit, OpenFiles};
use crate::partition::{now_us, Partition, PartitionKey, PartitionRepair};
use crate::remote::{PartitionPrefix, RoundInput, TierReport, Tiering, TopicWork};

/// Most partitions one topic may have.
pub const MAX_PARTITIONS: u32 = 10_000;

/// A stream or topic named by its id or its name, as both protocols allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ident<'a> {
    Id(u32),
    Name(&'a str),
}

impl From<u32> for Ident<'_> {
    fn from(id: u32) -> Self {
        Ident::Id(id)
    }
}

impl<'a> From<&'a str> for Ident<'a> {
    fn from(name: &'a str) -> Self {
        Ident::Name(name)
    }
}

impl std::fmt::Display for Ident<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ident::Id(id) => write!(f, "{id}"),
            Ident::Name(name) => write!(f, "'{name}'"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub id: u32,
    pub name: String,
    /// µs since the Unix epoch.
    pub created_at: u64,
    pub topics: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub stream_id: u32,
    pub id: u32,
    pub name: String,
    pub created_at: u64,
    pub partitions: u32,
    pub settings: TopicSettings,
}

/// What opening the store found and repaired.
#[derive(Debug, Clone, Default)]
pub struct OpenReport {
    pub repaired: Vec<(PartitionKey, PartitionRepair)>,
    /// Folders removed because the catalog does not name them.
    pub removed_orphans: Vec<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct CatalogDoc {
    pub(crate) version: u32,
    pub(crate) next_stream_id: u32,
    pub(crate) streams: Vec<StreamDoc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StreamDoc {
    pub(crate) id: u32,
    pub(crate) name: String,
    pub(crate) created_at: u64,
    pub(crate) next_topic_id: u32,
    pub(crate) topics: Vec<TopicDoc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TopicDoc {
    pub(crate) id: u32,
    pub(crate) name: String,
    pub(crate) created_at: u64,
    pub(crate) partitions: u32,
    pub(crate) settings: TopicSettings,
}

impl CatalogDoc {
    fn stream(&self, s: Ident<'_>) -> Result<&StreamDoc> {
        self.streams
            .iter()
            .find(|d| match s {
                Ident::Id(id) => d.id == id,
                Ident::Name(n) => d.name == n,
            })
            .ok_or_else(|| StoreError::StreamNotFound(s.to_string()))
    }

    fn stream_mut(&mut self, s: Ident<'_>) -> Result<&mut StreamDoc> {
        self.streams
            .iter_mut()
            .find(|d| match s {
                Ident::Id(id) => d.id == id,
                Ident::Name(n) => d.name == n,
            })
            .ok_or_else(|| StoreError::StreamNotFound(s.to_string()))
    }
}

impl StreamDoc {
    fn topic(&self, t: Ident<'_>) -> Result<&TopicDoc> {
        self.topics
            .iter()
            .find(|d| match t {
                Ident::Id(id) => d.id == id,
                Ident::Name(n) => d.name == n,
            })
            .ok_or_else(|| StoreError::TopicNotFound {
                stream: format!("'{}'", self.name),
                topic: t.to_string(),
            })
    }

    fn topic_mut(&mut self, t: Ident<'_>) -> Result<&mut TopicDoc> {
        let stream = format!("'{}'", self.name);
        self.topics
            .iter_mut()
            .find(|d| match t {
                Ident::Id(id) => d.id == id,
                Ident::Name(n) => d.name == n,
            })
            .ok_or(StoreError::TopicNotFound {
                stream,
                topic: t.to_string(),
            })
    }

    fn info(&self) -> StreamInfo {
        StreamInfo {
            id: self.id,
            name: self.name.clone(),
            created_at: self.created_at,
            topics: self.topics.len(),
        }
    }
}

impl TopicDoc {
    fn info(&self, stream_id: u32) -> TopicInfo {
        TopicInfo {
            stream_id,
            id: self.id,
            name: self.name.clone(),
            created_at: self.created_at,
            partitions: self.partitions,
            settings: self.settings.clone(),
        }
    }
}

struct Catalog {
    doc: CatalogDoc,
    partitions: HashMap<(u32, u32), Vec<Arc<Partition>>>,
}

struct Inner {
    dir: PathBuf,
    config: StoreConfig,
    /// The segment files held open, shared by every partition.
    files: Arc<OpenFiles>,
    catalog: RwLock<Catalog>,
    /// Serialises metadata changes (held across their file operations, unlike `catalog`).
    changes: Mutex<()>,
    offsets: ConsumerOffsets,
    stop: Mutex<bool>,
    wake: Condvar,
    background: Mutex<Option<JoinHandle<()>>>,
    cleaner: Cleaner,
    /// The remote tier at work, with a remote tier in the config.
    tiering: Option<Tiering>,
    _lock: File,
}

/// The log cleaner's share of the store.
struct Cleaner {
    /// Held by the cleaner thread without the store, so the store can be dropped while the
    /// thread waits.
    signal: Arc<CleanerSignal>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The key map and the rate limit; held across a whole `clean_once`, so cleanings run one
    /// at a time.
    work: Mutex<CleanerWork>,
    stats: Mutex<CleanerStats>,
}

#[derive(Default)]
struct CleanerSignal {
    stop: Mutex<bool>,
    wake: Condvar,
}

impl CleanerSignal {
    fn stopping(&self) -> bool {
        *self.stop.lock()
    }

    /// Waits up to `d`, less when the store closes.
    fn pause(&self, d: Duration) {
        let mut stop = self.stop.lock();
        if !*stop {
            self.wake.wait_for(&mut stop, d);
        }
    }
}

struct CleanerWork {
    /// Allocated at the first cleaning, then kept: its size is the configured bound.
    map: Option<OffsetMap>,
    throttle: Throttle,
}

/// The log store. Cheap to clone; all clones share one store.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

/// Takes the data directory's lock file (`.lock`), held for as long as the returned file is:
/// one process at a time works on a data directory (a store, or a restore into it).
pub(crate) fn lock_data_dir(disk: &Disk, dir: &Path) -> Result<File> {
    let lock_path = dir.join(".lock");
    let lock = disk.create(&lock_path)?;
    lock.try_lock().map_err(|e| {
        StoreError::io(
            &lock_path,
            std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                format!("the data directory is in use by another process ({e})"),
            ),
        )
    })?;
    Ok(lock)
}

fn stream_dir(root: &Path, s: u32) -> PathBuf {
    root.join("streams").join(s.to_string())
}
fn topic_dir(root: &Path, s: u32, t: u32) -> PathBuf {
    stream_dir(root, s).join("topics").join(t.to_string())
}
pub(crate) fn partition_dir(root: &Path, s: u32, t: u32, p: u32) -> PathBuf {
    topic_dir(root, s, t).join("partitions").join(p.to_string())
}

impl LogStore {
    /// Opens the store in `dir` (created if missing), recovering every partition.
    pub fn open(dir: impl AsRef<Path>, config: StoreConfig) -> Result<(LogStore, OpenReport)> {
        Self::open_with_tiering_hooks(dir, config, None)
    }

    /// [`LogStore::open`], with the tiering hooks in place before the tiering thread starts
    /// (see [`LogStore::set_tiering_hooks`]): no round ever runs without them.
    pub fn open_with_tiering_hooks(
        dir: impl AsRef<Path>,
        config: StoreConfig,
        hooks: Option<Arc<dyn crate::remote::TieringHooks>>,
    ) -> Result<(LogStore, OpenReport)> {
        let dir = dir.as_ref().to_path_buf();
        let disk = &config.disk;
        disk.create_dir_all(&dir.join("streams"))?;
        let lock = lock_data_dir(disk, &dir)?;
        let catalog_path = dir.join("catalog");
        let doc: CatalogDoc = match read_durable(&catalog_path)? {
            Some(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| StoreError::CorruptMetadata {
                    path: catalog_path.clone(),
                    reason: e.to_string(),
                })?
            }
            None => CatalogDoc {
                version: 1,
                ..CatalogDoc::default()
            },
        };
        // As Kafka refuses to start with tiered storage disabled while topics have it on: their
        // uploaded data would be unreadable and their local copies would never be deleted.
        if config.remote.is_none() {
            let tiered: Vec<String> = doc
                .streams
                .iter()
                .flat_map(|s| s.topics.iter().map(move |t| (s, t)))
                .filter(|(_, t)| t.settings.remote_storage)
                .map(|(s, t)| format!("'{}.{}'", s.name, t.name))
                .collect();
            if !tiered.is_empty() {
                return Err(StoreError::InvalidSetting(format!(
                    "topics {} have remote storage on, but the server has no remote tier: \
                     configure [remote_storage] again, or delete all topics with \
                     remote.storage.enable=true before disabling tiered storage",
                    tiered.join(", ")
                )));
            }
        }
        let files = OpenFiles::new(disk.clone(), capacity_within_limit(config.max_open_files));
        let tiering = match &config.remote {
            Some(tier) => Some(Tiering::open(
                tier,
                &dir,
                disk,
                Arc::clone(files.metrics()),
            )?),
            None => None,
        };
        if let (Some(tiering), Some(hooks)) = (&tiering, hooks) {
            tiering.hooks.set(hooks);
        }
        let mut report = OpenReport::default();
        let mut partitions = HashMap::new();
        for s in &doc.streams {
            for t in &s.topics {
                let settings = EffectiveSettings::resolve(&t.settings, &config);
                let mut parts = Vec::with_capacity(t.partitions as usize);
                for p in 0..t.partitions {
                    let key = PartitionKey {
                        stream: s.id,
                        topic: t.id,
                        partition: p,
                    };
                    let pdir = partition_dir(&dir, s.id, t.id, p);
                    let (partition, repair) =
                        Partition::open(&files, key, &pdir, settings.clone())?;
                    if let Some(tiering) = &tiering {
                        partition.attach_remote(tiering.reader(PartitionPrefix::new(
                            s.id,
                            t.id,
                            t.created_at,
                            p,
                        )));
                    }
                    if !repair.segments.is_empty() {
                        report.repaired.push((key, repair));
                    }
                    parts.push(partition);
                }
                partitions.insert((s.id, t.id), parts);
            }
        }
        report.removed_orphans = remove_orphans(disk, &dir, &doc);
        let offsets = ConsumerOffsets::open_with(&dir.join("offsets"), disk.clone())?;
        let config_cleaner = config.cleaner.clone();
        let inner = Arc::new(Inner {
            dir,
            config,
            files,
            catalog: RwLock::new(Catalog { doc, partitions }),
            changes: Mutex::new(()),
            offsets,
            stop: Mutex::new(false),
            wake: Condvar::new(),
            background: Mutex::new(None),
            cleaner: Cleaner {
                signal: Arc::new(CleanerSignal::default()),
                thread: Mutex::new(None),
                work: Mutex::new(CleanerWork {
                    map: None,
                    throttle: Throttle::new(config_io_rate(&config_cleaner)),
                }),
                stats: Mutex::new(CleanerStats::default()),
            },
            tiering,
            _lock: lock,
        });
        if inner.config.background_tasks {
            let weak = Arc::downgrade(&inner);
            let handle = std::thread::Builder::new()
                .name("wharf-store-bg".into())
                .spawn(move || background(weak))
                .map_err(|e| StoreError::io(&inner.dir, e))?;
            *inner.background.lock() = Some(handle);
            if let Some(tiering) = &inner.tiering {
                let weak = Arc::downgrade(&inner);
                let signal = Arc::clone(tiering.signal());
                let interval = tiering.settings().task_interval;
                let handle = std::thread::Builder::new()
                    .name("wharf-tiering".into())
                    .spawn(move || tiering_loop(weak, signal, interval))
                    .map_err(|e| StoreError::io(&inner.dir, e))?;
                tiering.set_thread(handle);
            }
        }
        Ok((LogStore { inner }, report))
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The remote tier's state now, `None` without one.
    pub fn remote_status(&self) -> Option<crate::remote::RemoteStatus> {
        let tiering = self.inner.tiering.as_ref()?;
        Some(tiering.status(&self.tiered_topics()))
    }

    /// Runs one tiering round as of server time `now_us` (µs since the epoch): uploads sealed
    /// segments of topics with remote storage, stores and installs their manifests, applies
    /// their local and total retention, stores the catalog's copy when it changed, empties the
    /// remote prefixes of deleted topics and sweeps unnamed objects. The "wharf-tiering"
    /// thread calls this every `task_interval`; tests call it to run a round at a chosen
    /// moment. Rounds run one at a time. Partitions that fail are retried after a backoff
    /// (measured against `now_us`) and listed in the report; refused without a remote tier.
    pub fn tier_once(&self, now_us: u64) -> Result<TierReport> {
        let Some(tiering) = &self.inner.tiering else {
            return Err(StoreError::InvalidSetting(
                "the store has no remote tier".into(),
            ));
        };
        // Checked when a deletion record is processed, under `changes`: a deletion in progress
        // has then either recorded and saved, or not begun.
        let is_live = |prefix: &str| {
            let _changing = self.inner.changes.lock();
            let catalog = self.inner.catalog.read();
            catalog.doc.streams.iter().any(|s| {
                s.topics.iter().any(|t| {
                    PartitionPrefix::topic(s.id, t.id, t.created_at) == prefix
                        || (0..t.partitions).any(|p| {
                            PartitionPrefix::new(s.id, t.id, t.created_at, p).as_str() == prefix
                        })
                })
            })
        };
        let catalog_path = self.inner.dir.join("catalog");
        Ok(tiering.round(RoundInput {
            now_us,
            topics: self.tiered_topics(),
            catalog_path: Some(catalog_path),
            is_live: Box::new(is_live),
        }))
    }

    /// The topics with remote storage on, with their partitions.
    fn tiered_topics(&self) -> Vec<TopicWork> {
        let catalog = self.inner.catalog.read();
        catalog
            .doc
            .streams
            .iter()
            .flat_map(|s| s.topics.iter().map(move |t| (s.id, t)))
            .filter(|(_, t)| t.settings.remote_storage)
            .map(|(sid, t)| TopicWork {
                stream: sid,
                topic: t.id,
                created_us: t.created_at,
                settings: t.settings.clone(),
                partitions: catalog
                    .partitions
                    .get(&(sid, t.id))
                    .cloned()
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// Lets `parts` (of topic `sid`/`tid` created at `created_us`) read their uploaded data.
    fn attach_remote(&self, sid: u32, tid: u32, created_us: u64, parts: &[Arc<Partition>]) {
        if let Some(tiering) = &self.inner.tiering {
            for p in parts {
                p.attach_remote(tiering.reader(PartitionPrefix::new(
                    sid,
                    tid,
                    created_us,
                    p.key().partition,
                )));
            }
        }
    }

    /// Records, durably and before the catalog stops naming them, the remote prefixes whose
    /// objects the tiering thread is to delete. Nothing to do without a remote tier.
    fn record_remote_deletions(&self, prefixes: &[String]) -> Result<()> {
        match &self.inner.tiering {
            Some(tiering) => tiering.record_deletions(prefixes),
            None => Ok(()),
        }
    }

    /// Saves `doc` after recording `prefixes` for deletion; takes the record back when the
    /// save fails.
    fn save_deleting(&self, doc: &CatalogDoc, prefixes: &[String]) -> Result<()> {
        self.record_remote_deletions(prefixes)?;
        let saved = self.save(doc);
        if saved.is_err() && !prefixes.is_empty() {
            if let Some(tiering) = &self.inner.tiering {
                tiering.unrecord_deletions(prefixes);
            }
        }
        saved
    }

    /// Refuses remote storage on a store without a remote tier, as Kafka does.
    fn check_remote_storage(&self, settings: &TopicSettings) -> Result<()> {
        if settings.remote_storage && self.inner.config.remote.is_none() {
            return Err(StoreError::InvalidSetting(
                "Tiered Storage functionality is disabled in the broker. Topic cannot be \
                 configured with remote log storage"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Rebuilds the data directory `dir` (which must hold no catalog) from the remote tier of
    /// `config`: the catalog's copy, every partition's manifest, and empty local logs that
    /// continue after the uploaded data. Open the store afterwards as usual.
    pub fn restore_from_remote(
        dir: impl AsRef<Path>,
        config: &StoreConfig,
    ) -> Result<crate::remote::RestoreReport> {
        crate::remote::restore_from_remote(dir.as_ref(), config)
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// How many segment files the store keeps open at most: `max_open_files` of its config,
    /// clamped to half the process's soft open-files limit when that is lower.
    pub fn open_files_capacity(&self) -> usize {
        self.inner.files.capacity()
    }

    /// The store's own figures: append-group, `fdatasync` and group-commit histograms and
    /// retention counts.
    pub fn metrics(&self) -> &Arc<crate::metrics::StoreMetrics> {
        self.inner.files.metrics()
    }

    pub fn offsets(&self) -> &ConsumerOffsets {
        &self.inner.offsets
    }

    /// The door through which the store reaches the file system (the one in its config).
    pub fn disk(&self) -> &Disk {
        &self.inner.config.disk
    }

    fn save(&self, doc: &CatalogDoc) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(doc).map_err(|e| StoreError::CorruptMetadata {
            path: self.inner.dir.join("catalog"),
            reason: e.to_string(),
        })?;
        self.disk()
            .write_durable(&self.inner.dir.join("catalog"), &bytes)?;
        if let Some(tiering) = &self.inner.tiering {
            tiering.catalog_changed();
        }
        Ok(())
    }

    fn doc(&self) -> CatalogDoc {
        self.inner.catalog.read().doc.clone()
    }

    // ----- streams -----

    pub fn create_stream(&self, name: &str) -> Result<StreamInfo> {
        validate_name("stream", name)?;
        let _changing = self.inner.changes.lock();
        let mut doc = self.doc();
        if doc.streams.iter().any(|s| s.name == name) {
            return Err(StoreError::StreamExists(name.to_string()));
        }
        let id = doc.next_stream_id;
        doc.next_stream_id = id
            .checked_add(1)
            .ok_or_else(|| StoreError::InvalidSetting("stream ids exhausted".into()))?;
        let sdir = stream_dir(&self.inner.dir, id);
        self.disk().create_dir_all(&sdir)?;
        let stream = StreamDoc {
            id,
            name: name.to_string(),
            created_at: now_us(),
            next_topic_id: 0,
            topics: Vec::new(),
        };
        let info = stream.info();
        doc.streams.push(stream);
        if let Err(e) = self.save(&doc) {
            let _ = self.disk().remove_dir_all(&sdir);
            return Err(e);
        }
        self.inner.catalog.write().doc = doc;
        Ok(info)
    }

    pub fn streams(&self) -> Vec<StreamInfo> {
        self.inner
            .catalog
            .read()
            .doc
            .streams
            .iter()
            .map(StreamDoc::info)
            .collect()
    }

    pub fn stream(&self, s: Ident<'_>) -> Result<StreamInfo> {
        self.inner.catalog.read().doc.stream(s).map(StreamDoc::info)
    }

    pub fn rename_stream(&self, s: Ident<'_>, new_name: &str) -> Result<StreamInfo> {
        validate_name("stream", new_name)?;
        let _changing = self.inner.changes.lock();
        let mut doc = self.doc();
        let id = doc.stream(s)?.id;
        if doc.streams.iter().any(|d| d.name == new_name && d.id != id) {
            return Err(StoreError::StreamExists(new_name.to_string()));
        }
        let stream = doc.stream_mut(Ident::Id(id))?;
        stream.name = new_name.to_string();
        let info = stream.info();
        self.save(&doc)?;
        self.inner.catalog.write().doc = doc;
        Ok(info)
    }

    pub fn delete_stream(&self, s: Ident<'_>) -> Result<()> {
        let _changing = self.inner.changes.lock();
        let mut doc = self.doc();
        let stream = doc.stream(s)?;
        let id = stream.id;
        let prefixes: Vec<String> = stream
            .topics
            .iter()
            .filter(|t| t.settings.remote_storage)
            .map(|t| PartitionPrefix::topic(id, t.id, t.created_at))
            .collect();
        doc.streams.retain(|d| d.id != id);
        self.save_deleting(&doc, &prefixes)?;
        let dropped: Vec<Arc<Partition>> = {
            let mut catalog = self.inner.catalog.write();
            catalog.doc = doc;
            let keys: Vec<_> = catalog
                .partitions
                .keys()
                .filter(|k| k.0 == id)
                .copied()
                .collect();
            keys.into_iter()
                .flat_map(|k| catalog.partitions.remove(&k).unwrap_or_default())
                .collect()
        };
        close_all(&dropped);
        remove_dir(self.disk(), &stream_dir(&self.inner.dir, id))?;
        self.inner.offsets.delete_where(|k| k.stream == id)?;
        Ok(())
    }

    pub fn purge_stream(&self, s: Ident<'_>) -> Result<()> {
        let stream = self.stream(s)?;
        for t in self.topics(Ident::Id(stream.id))? {
            self.purge_topic(Ident::Id(stream.id), Ident::Id(t.id))?;
        }
        Ok(())
    }

    // ----- topics -----

    pub fn create_topic(
        &self,
        s: Ident<'_>,
        name: &str,
        partitions: u32,
        settings: TopicSettings,
    ) -> Result<TopicInfo> {
        validate_name("topic", name)?;
        settings.validate()?;
        self.check_remote_storage(&settings)?;
        check_partition_count(partitions)?;
        let _changing = self.inner.changes.lock();
        let mut doc = self.doc();
        let stream = doc.stream_mut(s)?;
        if stream.topics.iter().any(|t| t.name == name) {
            return Err(StoreError::TopicExists {
                stream: format!("'{}'", stream.name),
                topic: name.to_string(),
            });
        }
        let (sid, tid) = (stream.id, stream.next_topic_id);
        stream.next_topic_id = tid
            .checked_add(1)
            .ok_or_else(|| StoreError::InvalidSetting("topic ids exhausted".into()))?;
        let effective = EffectiveSettings::resolve(&settings, &self.inner.config);
        let tdir = topic_dir(&self.inner.dir, sid, tid);
        let created = (0..partitions)
            .map(|p| {
                let key = PartitionKey {
                    stream: sid,
                    topic: tid,
                    partition: p,
                };
                Partition::create(
                    &self.inner.files,
                    key,
                    &partition_dir(&self.inner.dir, sid, tid, p),
                    effective.clone(),
                )
            })
            .collect::<Result<Vec<_>>>();
        let topic = TopicDoc {
            id: tid,
            name: name.to_string(),
            created_at: now_us(),
            partitions,
            settings,
        };
        let info = topic.info(sid);
        stream.topics.push(topic);
        let parts = match created.and_then(|parts| self.save(&doc).map(|()| parts)) {
            Ok(parts) => parts,
            Err(e) => {
                let _ = self.disk().remove_dir_all(&tdir);
                return Err(e);
            }
        };
        self.attach_remote(sid, tid, info.created_at, &parts);
        let mut catalog = self.inner.catalog.write();
        catalog.doc = doc;
        catalog.partitions.insert((sid, tid), parts);
        Ok(info)
    }

    pub fn topics(&self, s: Ident<'_>) -> Result<Vec<TopicInfo>> {
        let catalog = self.inner.catalog.read();
        let stream = catalog.doc.stream(s)?;
        Ok(stream.topics.iter().map(|t| t.info(stream.id)).collect())
    }

    pub fn topic(&self, s: Ident<'_>, t: Ident<'_>) -> Result<TopicInfo> {
        let catalog = self.inner.catalog.read();
        let stream = catalog.doc.stream(s)?;
        Ok(stream.topic(t)?.info(stream.id))
    }

    /// Renames a topic and/or replaces its settings; the partitions act on the new settings
    /// from their next append.
    pub fn update_topic(
        &self,
        s: Ident<'_>,
        t: Ident<'_>,
        new_name: Option<&str>,
        settings: TopicSettings,
    ) -> Result<TopicInfo> {
        if let Some(n) = new_name {
            validate_name("topic", n)?;
        }
        settings.validate()?;
        self.check_remote_storage(&settings)?;
        let _changing = self.inner.changes.lock();
        let mut doc = self.doc();
        let stream = doc.stream_mut(s)?;
        let sid = stream.id;
        let old = stream.topic(t)?;
        let tid = old.id;
        if old.settings.remote_storage && !settings.remote_storage {
            // Kafka 3.x refuses the same: the uploaded data would be neither read nor deleted.
            return Err(StoreError::InvalidSetting(
                "Disabling remote storage feature on the topic level is not supported".into(),
            ));
        }
        if let Some(n) = new_name {
            if stream.topics.iter().any(|d| d.name == n && d.id != tid) {
                return Err(StoreError::TopicExists {
                    stream: format!("'{}'", stream.name),
                    topic: n.to_string(),
                });
            }
        }
        let topic = stream.topic_mut(Ident::Id(tid))?;
        if let Some(n) = new_name {
            topic.name = n.to_string();
        }
        topic.settings = settings;
        let info = topic.info(sid);
        self.save(&doc)?;
        let effective = EffectiveSettings::resolve(&info.settings, &self.inner.config);
        let mut catalog = self.inner.catalog.write();
        catalog.doc = doc;
        for p in catalog.partitions.get(&(sid, tid)).into_iter().flatten() {
            p.set_settings(effective.clone());
        }
        Ok(info)
    }

    pub fn delete_topic(&self, s: Ident<'_>, t: Ident<'_>) -> Result<()> {
        let _changing = self.inner.changes.lock();
        let mut doc = self.doc();
        let stream = doc.stream_mut(s)?;
        let topic = stream.topic(t)?;
        let (sid, tid) = (stream.id, topic.id);
        let prefixes: Vec<String> = if topic.settings.remote_storage {
            vec![PartitionPrefix::topic(sid, tid, topic.created_at)]
        } else {
            Vec::new()
        };
        stream.topics.retain(|d| d.id != tid);
        self.save_deleting(&doc, &prefixes)?;
        let dropped = {
            let mut catalog = self.inner.catalog.write();
            catalog.doc = doc;
            catalog.partitions.remove(&(sid, tid)).unwrap_or_default()
        };
        close_all(&dropped);
        remove_dir(self.disk(), &topic_dir(&self.inner.dir, sid, tid))?;
        self.inner
            .offsets
            .delete_where(|k| k.stream == sid && k.topic == tid)?;
        Ok(())
    }

    /// Deletes every message of the topic; offsets start again at 0 and stored consumer
    /// positions on it are dropped (Iggy's purge).
    pub fn purge_topic(&self, s: Ident<'_>, t: Ident<'_>) -> Result<()> {
        // A partition being cleaned is waited for without the store's `changes` lock (which
        // every metadata change needs), a few times; then under it. Never the other way round:
        // deleting a topic holds `changes` while it takes the maintenance locks.
        let mut attempts = 0;
        loop {
            let changing = self.inner.changes.lock();
            let info = self.topic(s, t)?;
            let parts = self.partitions(Ident::Id(info.stream_id), Ident::Id(info.id))?;
            let busy = {
                let mut guards = Vec::with_capacity(parts.len());
                let mut busy = None;
                for p in &parts {
                    match p.try_maintenance() {
                        Some(g) => guards.push(g),
                        None if attempts < PURGE_ATTEMPTS => {
                            busy = Some(Arc::clone(p));
                            break;
                        }
                        None => guards.push(p.maintenance()),
                    }
                }
                if busy.is_none() {
                    for p in &parts {
                        p.purge_locked()?;
                    }
                }
                busy
            };
            let Some(busy) = busy else {
                self.inner
                    .offsets
                    .delete_where(|k| k.stream == info.stream_id && k.topic == info.id)?;
                return Ok(());
            };
            drop(changing);
            attempts += 1;
            drop(busy.maintenance());
        }
    }

    /// Adds `count` partitions at the end. Returns the new partition count.
    pub fn add_partitions(&self, s: Ident<'_>, t: Ident<'_>, count: u32) -> Result<u32> {
        let _changing = self.inner.changes.lock();
        let mut doc = self.doc();
        let stream = doc.stream_mut(s)?;
        let sid = stream.id;
        let topic = stream.topic_mut(t)?;
        let tid = topic.id;
        let old = topic.partitions;
        let new = old
            .checked_add(count)
            .filter(|&n| n <= MAX_PARTITIONS && count > 0)
            .ok_or_else(|| {
                StoreError::InvalidPartitionCount(format!(
                    "adding {count} to {old} partitions; a topic has 1..={MAX_PARTITIONS}"
                ))
            })?;
        topic.partitions = new;
        let effective = EffectiveSettings::resolve(&topic.settings, &self.inner.config);
        let mut created = Vec::new();
        for p in old..new {
            let key = PartitionKey {
                stream: sid,
                topic: tid,
                partition: p,
            };
            let pdir = partition_dir(&self.inner.dir, sid, tid, p);
            match Partition::create(&self.inner.files, key, &pdir, effective.clone()) {
                Ok(part) => created.push(part),
                Err(e) => {
                    for q in old..=p {
                        let _ = self.disk().remove_dir_all(&partition_dir(
                            &self.inner.dir,
                            sid,
                            tid,
                            q,
                        ));
                    }
                    return Err(e);
                }
            }
        }
        if let Err(e) = self.save(&doc) {
            for q in old..new {
                let _ = self
                    .disk()
                    .remove_dir_all(&partition_dir(&self.inner.dir, sid, tid, q));
            }
            return Err(e);
        }
        let (created_us, tiered) = {
            let topic = doc.stream(Ident::Id(sid))?.topic(Ident::Id(tid))?;
            (topic.created_at, topic.settings.remote_storage)
        };
        self.attach_remote(sid, tid, created_us, &created);
        if let (Some(tiering), true) = (&self.inner.tiering, tiered) {
            let prefixes: Vec<PartitionPrefix> = (old..new)
                .map(|p| PartitionPrefix::new(sid, tid, created_us, p))
                .collect();
            tiering.partitions_added(&prefixes);
        }
        let mut catalog = self.inner.catalog.write();
        catalog.doc = doc;
        catalog
            .partitions
            .entry((sid, tid))
            .or_default()
            .extend(created);
        Ok(new)
    }

    /// Removes the last `count` partitions with their data and stored positions. Returns the
    /// new partition count.
    pub fn remove_partitions(&self, s: Ident<'_>, t: Ident<'_>, count: u32) -> Result<u32> {
        let _changing = self.inner.changes.lock();
        let mut doc = self.doc();
        let stream = doc.stream_mut(s)?;
        let sid = stream.id;
        let topic = stream.topic_mut(t)?;
        let tid = topic.id;
        let old = topic.partitions;
        let new = old
            .checked_sub(count)
            .filter(|_| count > 0)
            .ok_or_else(|| {
                StoreError::InvalidPartitionCount(format!(
                    "cannot remove {count} of {old} partitions"
                ))
            })?;
        topic.partitions = new;
        let prefixes: Vec<String> = if topic.settings.remote_storage {
            (new..old)
                .map(|p| {
                    PartitionPrefix::new(sid, tid, topic.created_at, p)
                        .as_str()
                        .to_string()
                })
                .collect()
        } else {
            Vec::new()
        };
        self.save_deleting(&doc, &prefixes)?;
        let dropped: Vec<Arc<Partition>> = {
            let mut catalog = self.inner.catalog.write();
            catalog.doc = doc;
            let parts = catalog.partitions.entry((sid, tid)).or_default();
            parts.split_off(new as usize)
        };
        close_all(&dropped);
        for p in &dropped {
            remove_dir(self.disk(), p.dir())?;
        }
        self.inner
            .offsets
            .delete_where(|k| k.stream == sid && k.topic == tid && k.partition >= new)?;
        Ok(new)
    }

    // ----- partitions -----

    pub fn partition(&self, s: Ident<'_>, t: Ident<'_>, partition: u32) -> Result<Arc<Partition>> {
        let catalog = self.inner.catalog.read();
        let stream = catalog.doc.stream(s)?;
        let topic = stream.topic(t)?;
        catalog
            .partitions
            .get(&(stream.id, topic.id))
            .and_then(|ps| ps.get(partition as usize))
            .cloned()
            .ok_or_else(|| StoreError::PartitionNotFound {
                topic: format!("'{}'", topic.name),
                partition,
                count: topic.partitions,
            })
    }

    pub fn partitions(&self, s: Ident<'_>, t: Ident<'_>) -> Result<Vec<Arc<Partition>>> {
        let catalog = self.inner.catalog.read();
        let stream = catalog.doc.stream(s)?;
        let topic = stream.topic(t)?;
        Ok(catalog
            .partitions
            .get(&(stream.id, topic.id))
            .cloned()
            .unwrap_or_default())
    }

    fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.inner
            .catalog
            .read()
            .partitions
            .values()
            .flatten()
            .cloned()
            .collect()
    }

    // ----- maintenance -----

    /// Applies every topic's time and size retention as of `now_us`. Only whole sealed segments
    /// are deleted; the active segment never is. Returns the bytes freed.
    pub fn enforce_retention(&self, now_us: u64) -> Result<u64> {
        let topics: Vec<(TopicSettings, Vec<Arc<Partition>>)> = {
            let catalog = self.inner.catalog.read();
            catalog
                .doc
                .streams
                .iter()
                .flat_map(|s| s.topics.iter().map(move |t| (s.id, t)))
                .map(|(sid, t)| {
                    let parts = catalog
                        .partitions
                        .get(&(sid, t.id))
                        .cloned()
                        .unwrap_or_default();
                    (t.settings.clone(), parts)
                })
                .collect()
        };
        let mut freed = 0;
        for (settings, parts) in topics {
            // A compacted topic keeps its data unless its policy also says `delete`.
            if !settings.cleanup_policy.delete {
                continue;
            }
            // Remote storage: the tiering round applies both retentions, and never deletes
            // local data that is not uploaded.
            if settings.remote_storage {
                continue;
            }
            if let Some(expiry) = settings.message_expiry {
                let expiry_us = expiry.as_micros().min(u128::from(u64::MAX)) as u64;
                for p in &parts {
                    freed += p.expire(now_us, expiry_us)?;
                }
            }
            if let Some(max) = settings.max_size {
                let mut size: u64 = parts.iter().map(|p| p.stats().size_bytes).sum();
                while size > max {
                    // The oldest sealed segment across the topic's partitions goes first.
                    let oldest = parts
                        .iter()
                        .filter_map(|p| p.sealed_segments().first().map(|s| (s.2, s.0, p)))
                        .min_by_key(|&(ts, base, p)| (ts, p.key().partition, base));
                    let Some((_, base, p)) = oldest else { break };
                    // `None` also when a cleaning holds the partition: next round.
                    match p.try_delete_oldest_segment(base)? {
                        Some(bytes) => {
                            size = size.saturating_sub(bytes);
                            freed += bytes;
                            self.inner.files.metrics().retention_deleted(bytes);
                        }
                        None => break,
                    }
                }
            }
        }
        Ok(freed)
    }

    /// Installs the broker core's answers to the tiering thread: how far each partition may be
    /// uploaded (its last stable offset) and the aborted transactions kept with each uploaded
    /// segment ([`crate::remote::TieringHooks`]). Until then every sealed segment may be
    /// uploaded. Does nothing without a remote tier.
    pub fn set_tiering_hooks(&self, hooks: Arc<dyn crate::remote::TieringHooks>) {
        if let Some(tiering) = &self.inner.tiering {
            tiering.hooks.set(hooks);
        }
    }

    /// Starts the log cleaner: a background thread that compacts the partitions of topics whose
    /// cleanup policy includes `compact`, asking `keys` what the records are. It stops when
    /// the store closes. Does nothing when the cleaner is disabled in the config.
    pub fn start_cleaner(&self, keys: Arc<dyn RecordKeys>) {
        let cleaner = &self.inner.cleaner;
        if !self.inner.config.cleaner.enabled || cleaner.signal.stopping() {
            return;
        }
        let mut thread = cleaner.thread.lock();
        if thread.is_some() {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let signal = Arc::clone(&cleaner.signal);
        let backoff = self.inner.config.cleaner.backoff;
        let spawned = std::thread::Builder::new()
            .name("wharf-cleaner".into())
            .spawn(move || loop {
                if signal.stopping() {
                    return;
                }
                let Some(inner) = weak.upgrade() else { return };
                let store = LogStore { inner };
                let worked = match store.clean_once(&*keys, now_us()) {
                    Ok(report) => !report.cleaned.is_empty(),
                    Err(e) => {
                        if !signal.stopping() {
                            tracing::debug!("log cleaner: {e}");
                        }
                        false
                    }
                };
                // Not held while waiting: the store may be dropped meanwhile.
                drop(store);
                if !worked {
                    signal.pause(backoff);
                }
            });
        match spawned {
            Ok(handle) => *thread = Some(handle),
            Err(e) => tracing::error!("cannot start the log cleaner: {e}"),
        }
    }

    /// Cleans, once, every partition of a compacted topic that needs it (dirtiest first), as
    /// of server time `now_us`, asking `keys` what the records are. The cleaner thread calls
    /// this in a loop; tests call it to clean at a chosen moment. Cleanings run one at a time.
    /// A partition whose cleaning fails is skipped (its files are as before, or as after a
    /// committed swap) and the first such error is returned once the others are cleaned.
    pub fn clean_once(&self, keys: &dyn RecordKeys, now_us: u64) -> Result<CleanReport> {
        let candidates: Vec<(Policy, Arc<Partition>)> = {
            let catalog = self.inner.catalog.read();
            catalog
                .doc
                .streams
                .iter()
                .flat_map(|s| s.topics.iter().map(move |t| (s.id, t)))
                .filter(|(_, t)| t.settings.cleanup_policy.compact)
                .flat_map(|(sid, t)| {
                    let policy = Policy::resolve(&t.settings, &self.inner.config);
                    catalog
                        .partitions
                        .get(&(sid, t.id))
                        .into_iter()
                        .flatten()
                        .map(move |p| (policy, Arc::clone(p)))
                })
                .collect()
        };
        let mut ranked: Vec<(f64, Policy, Arc<Partition>)> = candidates
            .into_iter()
            .filter_map(|(policy, p)| {
                cleaner::assess(&p, &policy, keys, now_us).map(|a| (a.dirty_ratio, policy, p))
            })
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut report = CleanReport::default();
        if ranked.is_empty() {
            return Ok(report);
        }
        let cleaner = &self.inner.cleaner;
        let mut guard = cleaner.work.lock();
        let CleanerWork { map, throttle } = &mut *guard;
        let map = map.get_or_insert_with(|| {
            OffsetMap::with_memory(self.inner.config.cleaner.dedupe_buffer_size)
        });
        cleaner.stats.lock().map_bytes = map.memory_bytes();
        let signal = &cleaner.signal;
        let stopping = || signal.stopping();
        let pause = |d| signal.pause(d);
        let mut work = Work {
            keys,
            now_us,
            throttle,
            stopping: &stopping,
            pause: &pause,
            yielded: false,
        };
        // One partition that cannot be cleaned (say, a batch its RecordKeys cannot read) must
        // not hold up the others: its error is reported after they are cleaned.
        let mut failure = None;
        for (_, policy, p) in ranked {
            let done = match cleaner::clean(&p, &policy, map, &mut work) {
                Ok(Some(done)) => done,
                Ok(None) => continue,
                Err(_) if std::mem::take(&mut work.yielded) => {
                    tracing::debug!(partition = %p.key(), "cleaning gave way to a deletion");
                    continue;
                }
                Err(e) => {
                    if signal.stopping() {
                        return Err(e);
                    }
                    tracing::warn!(partition = %p.key(), "cleaning failed: {e}");
                    failure.get_or_insert(e);
                    continue;
                }
            };
            tracing::info!(
                "cleaned {}: read {} B, wrote {} B, removed {} records in {} ms",
                done.partition,
                done.bytes_read,
                done.bytes_written,
                done.records_removed,
                done.duration.as_millis()
            );
            let mut stats = cleaner.stats.lock();
            stats.cleanings += 1;
            stats.bytes_read += done.bytes_read;
            stats.bytes_written += done.bytes_written;
            stats.bytes_removed += done.bytes_removed;
            stats.records_removed += done.records_removed;
            stats.batches_unreadable += done.batches_unreadable;
            stats.time_spent += done.duration;
            drop(stats);
            report.cleaned.push(done);
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// The cleaner's totals since the store was opened.
    pub fn cleaner_stats(&self) -> CleanerStats {
        *self.inner.cleaner.stats.lock()
    }

    /// Syncs every partition with unsynced `os`-mode writes, and the offsets journal.
    pub fn sync_all(&self) -> Result<()> {
        for p in self.all_partitions() {
            p.sync()?;
        }
        self.inner.offsets.sync()
    }

    /// True once [`LogStore::close`] has begun (or the store is being dropped): background
    /// work, tiering included, starts nothing new.
    pub fn is_closing(&self) -> bool {
        *self.inner.stop.lock()
    }

    /// Stops the background thread, fails queued appends, syncs everything and closes the
    /// partitions. The store refuses appends afterwards.
    pub fn close(&self) -> Result<()> {
        self.inner.stop_background();
        close_all(&self.all_partitions());
        self.inner.offsets.sync()
    }
}

impl Inner {
    fn stop_background(&self) {
        // The tiering thread first: once `stop` reads true, no tiering call starts any more.
        let tiering = self.tiering.as_ref().and_then(Tiering::stop);
        *self.stop.lock() = true;
        self.wake.notify_all();
        *self.cleaner.signal.stop.lock() = true;
        self.cleaner.signal.wake.notify_all();
        let handles = [
            self.background.lock().take(),
            self.cleaner.thread.lock().take(),
            tiering,
        ];
        for h in handles.into_iter().flatten() {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop_background();
        let parts: Vec<Arc<Partition>> = self
            .catalog
            .read()
            .partitions
            .values()
            .flatten()
            .cloned()
            .collect();
        close_all(&parts);
        if let Err(e) = self.offsets.sync() {
            tracing::warn!("syncing consumer offsets on close failed: {e}");
        }
    }
}

/// Closes `parts`, each under its maintenance lock: a cleaning finishes (or gives up) its
/// current step first, and makes no file in the partition's folder afterwards, so that the
/// folder can be removed.
fn close_all(parts: &[Arc<Partition>]) {
    for p in parts {
        let _maintenance = p.maintenance();
        if let Err(e) = p.close() {
            tracing::warn!(partition = %p.key(), "closing failed: {e}");
        }
    }
}

fn config_io_rate(c: &crate::config::CleanerConfig) -> Option<u64> {
    c.io_max_bytes_per_second
}

/// Times a purge waits for a cleaning without the store's `changes` lock before it waits
/// under it.
const PURGE_ATTEMPTS: u32 = 3;

fn check_partition_count(n: u32) -> Result<()> {
    if n > MAX_PARTITIONS {
        return Err(StoreError::InvalidPartitionCount(format!(
            "{n} partitions requested; at most {MAX_PARTITIONS} are allowed"
        )));
    }
    Ok(())
}

fn remove_dir(disk: &Disk, path: &Path) -> Result<()> {
    disk.remove_dir_all(path).map(drop)
}

/// Removes stream, topic and partition folders the catalog does not name.
fn remove_orphans(disk: &Disk, root: &Path, doc: &CatalogDoc) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let numbered = |dir: &Path| -> Vec<(u32, PathBuf)> {
        fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| {
                        let n = e.file_name().to_str()?.parse::<u32>().ok()?;
                        Some((n, e.path()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut drop_dir = |path: PathBuf| {
        tracing::warn!(path = %path.display(), "removing a folder the catalog does not name");
        if disk.remove_dir_all(&path).is_ok() {
            removed.push(path);
        }
    };
    for (sid, spath) in numbered(&root.join("streams")) {
        let Ok(stream) = doc.stream(Ident::Id(sid)) else {
            drop_dir(spath);
            continue;
        };
        for (tid, tpath) in numbered(&spath.join("topics")) {
            let Ok(topic) = stream.topic(Ident::Id(tid)) else {
                drop_dir(tpath);
                continue;
            };
            for (pid, ppath) in numbered(&tpath.join("partitions")) {
                if pid >= topic.partitions {
                    drop_dir(ppath);
                }
            }
        }
    }
    removed
}

/// The background loop: syncs `os`-mode partitions every `fsync_interval` and applies retention
/// every `retention_interval`, until the store is closed or dropped.
fn background(store: Weak<Inner>) {
    let mut last_retention = Instant::now();
    loop {
        let Some(inner) = store.upgrade() else { return };
        let interval = inner.config.fsync_interval.max(Duration::from_millis(10));
        {
            let mut stop = inner.stop.lock();
            if !*stop {
                inner.wake.wait_for(&mut stop, interval);
            }
            if *stop {
                return;
            }
        }
        let store = LogStore {
            inner: Arc::clone(&inner),
        };
        drop(inner);
        if let Err(e) = store.sync_all() {
            tracing::warn!("background sync failed: {e}");
        }
        if last_retention.elapsed() >= store.inner.config.retention_interval {
            last_retention = Instant::now();
            match store.enforce_retention(now_us()) {
                Ok(0) => {}
                Ok(freed) => tracing::info!("retention freed {freed} bytes"),
                Err(e) => tracing::warn!("retention failed: {e}"),
            }
        }
        // The store may be dropped while we hold it; let Drop run on its own thread then.
        if Arc::strong_count(&store.inner) == 1 {
            *store.inner.stop.lock() = true;
            return;
        }
    }
}

/// The tiering loop: a round every `interval`, until the store is closed or dropped. The wait
/// and a round's throttle pauses end at once when the store closes; a round in progress ends
/// after its current call to the object store.
fn tiering_loop(store: Weak<Inner>, signal: Arc<crate::remote::TieringSignal>, interval: Duration) {
    loop {
        if !signal.pause(interval.max(Duration::from_millis(10))) {
            return;
        }
        let Some(inner) = store.upgrade() else { return };
        let store = LogStore { inner };
        match store.tier_once(now_us()) {
            Ok(report) => {
                if report.uploaded_segments > 0 {
                    tracing::debug!(
                        segments = report.uploaded_segments,
                        bytes = report.uploaded_bytes,
                        "uploaded to the remote tier"
                    );
                }
            }
            Err(e) => tracing::warn!("tiering round failed: {e}"),
        }
        // The store may be dropped while we hold it; let Drop run on its own thread then.
        if Arc::strong_count(&store.inner) == 1 {
            signal.stop();
            return;
        }
    }
}
