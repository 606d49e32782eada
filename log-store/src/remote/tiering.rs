//! The tiering work: in rounds (every `task_interval` on the "wharf-tiering" thread, or one at a
//! time through [`crate::LogStore::tier_once`]) it uploads the sealed segments of topics with
//! remote storage on, stores each partition's manifest (remotely, then durably in the partition
//! folder), deletes local copies past the local retention and remote segments past the total
//! retention, keeps a copy of the catalog in the remote store, removes the objects of deleted
//! topics and partitions, and sweeps objects no manifest names. Failures are retried with
//! exponential backoff per partition; local data that is not uploaded is never deleted
//! meanwhile, and appends never wait for any of this.
//!
//! This module owns the per-partition tiering state (backoff, what the remote copy of the
//! manifest is), the record of pending remote deletions (`remote-deletions` in the data
//! directory) and the read-ahead cache the partitions' remote readers share.

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};

use super::{
    PartitionPrefix, ReadCache, RemoteError, RemoteManifest, RemoteReader, RemoteSegment,
    RemoteSettings, RemoteStatus, RemoteStore, RemoteTier, CATALOG_KEY,
};
use crate::compaction::throttle::Throttle;
use crate::config::TopicSettings;
use crate::disk::Disk;
use crate::durable_file::read_durable;
use crate::error::{Result, StoreError};
use crate::metrics::{RemoteMetrics, StoreMetrics};
use crate::partition::{Partition, PartitionKey, UploadCandidate};

/// The durable record of remote prefixes whose objects are to be deleted, in the data directory.
pub(crate) const DELETIONS_FILE: &str = "remote-deletions";

/// `PartitionState::synced_epoch` of a partition whose remote copy is not known but whose
/// installed manifest is trusted: it is stored again (no check of the bucket's copy) before
/// any sweep.
const REPUBLISH: u64 = u64::MAX;

/// What one tiering round did ([`crate::LogStore::tier_once`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TierReport {
    /// Segments uploaded and named by an installed manifest, and their `.log` bytes.
    pub uploaded_segments: u64,
    pub uploaded_bytes: u64,
    /// Local copies of uploaded segments deleted by the local retention, and their bytes.
    pub local_deleted_segments: u64,
    pub local_deleted_bytes: u64,
    /// Remote segments dropped from a manifest by the total retention (or the log start), and
    /// their `.log` bytes.
    pub remote_deleted_segments: u64,
    pub remote_deleted_bytes: u64,
    /// Objects deleted because no manifest names them (left by a kill, a purge, a failure).
    pub orphans_deleted: u64,
    /// The catalog's copy was stored this round.
    pub catalog_uploaded: bool,
    /// Prefixes of deleted topics or partitions emptied (and their objects deleted).
    pub prefixes_deleted: u64,
    pub objects_deleted: u64,
    /// Partitions whose work failed this round (retried after their backoff).
    pub failed_partitions: Vec<PartitionKey>,
    /// Partitions skipped because they are waiting out a backoff.
    pub backed_off_partitions: Vec<PartitionKey>,
    /// What failed, one line each.
    pub errors: Vec<String>,
}

impl TierReport {
    /// True when every part of the round reached the object store.
    pub fn succeeded(&self) -> bool {
        self.errors.is_empty() && self.backed_off_partitions.is_empty()
    }
}

/// A remote-storage topic as a round sees it.
pub(crate) struct TopicWork {
    pub stream: u32,
    pub topic: u32,
    pub created_us: u64,
    pub settings: TopicSettings,
    pub partitions: Vec<Arc<Partition>>,
}

impl TopicWork {
    fn prefix(&self, partition: u32) -> PartitionPrefix {
        PartitionPrefix::new(self.stream, self.topic, self.created_us, partition)
    }
}

/// What the store hands a round.
pub(crate) struct RoundInput<'a> {
    pub now_us: u64,
    /// Topics with remote storage on.
    pub topics: Vec<TopicWork>,
    /// The local catalog file, when there is one.
    pub catalog_path: Option<PathBuf>,
    /// True when a topic or partition prefix is in the catalog as it is at the call (checked
    /// under the store's `changes` lock, so that a deletion in progress has either recorded
    /// and saved or not started): a recorded deletion of a live prefix (its catalog change
    /// failed after the record was written) is dropped, not done. Never a snapshot taken
    /// before the round: a topic deleted during the round would look live and keep its objects.
    pub is_live: Box<dyn Fn(&str) -> bool + 'a>,
}

/// Stops the tiering thread: its waits (interval, upload throttle) end when the store closes.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    stop: Mutex<bool>,
    wake: Condvar,
}

impl Signal {
    pub fn stopping(&self) -> bool {
        *self.stop.lock()
    }

    /// Waits up to `d`; false when the store is closing.
    pub fn pause(&self, d: Duration) -> bool {
        let mut stop = self.stop.lock();
        if !*stop && !d.is_zero() {
            self.wake.wait_for(&mut stop, d);
        }
        !*stop
    }

    pub fn stop(&self) {
        *self.stop.lock() = true;
        self.wake.notify_all();
    }
}

/// One partition's tiering state, kept across rounds.
#[derive(Debug)]
struct PartitionState {
    /// The manifest epoch the remote copy is known to hold; `None`: not known (first round
    /// after open), so the remote copy is checked, the local manifest stored again and the
    /// prefix swept; `Some(REPUBLISH)`: a new partition took over a removed one's prefix, or
    /// a commit failed after its put may have happened (no check of the bucket's copy, the
    /// installed manifest stored again, then the prefix swept).
    synced_epoch: Option<u64>,
    /// Objects under the prefix may not all be named by the manifest.
    sweep_needed: bool,
    /// A recreated prefix whose durable mark goes once it is swept.
    recreated: bool,
    /// Consecutive failed rounds, and when (server µs) the next attempt may run.
    failures: u32,
    retry_at_us: u64,
}

impl Default for PartitionState {
    fn default() -> Self {
        PartitionState {
            synced_epoch: None,
            sweep_needed: true,
            recreated: false,
            failures: 0,
            retry_at_us: 0,
        }
    }
}

/// State held across a whole round: rounds run one at a time.
#[derive(Debug)]
struct Rounds {
    partitions: HashMap<PartitionPrefix, PartitionState>,
    catalog_uploaded: u64,
    /// Backoff of the store-wide work (the catalog's copy, deletions of removed topics).
    store_failures: u32,
    store_retry_at_us: u64,
    throttle: Throttle,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct DeletionsDoc {
    version: u32,
    /// Prefixes whose objects are to be deleted.
    prefixes: Vec<String>,
    /// Partition prefixes given to a new partition while a removed one's objects (and
    /// manifest) may be left there, until the new partition's first sweep: kept durably so
    /// that a restart before that sweep does not check the old manifest (and refuse the new
    /// partition for good).
    #[serde(default)]
    recreated: Vec<String>,
}

/// The store's remote tier at work.
#[derive(Debug)]
pub(crate) struct Tiering {
    store: Arc<dyn RemoteStore>,
    settings: RemoteSettings,
    cache: Arc<ReadCache>,
    metrics: Arc<StoreMetrics>,
    disk: Disk,
    signal: Arc<Signal>,
    thread: Mutex<Option<JoinHandle<()>>>,
    rounds: Mutex<Rounds>,
    /// Pending remote deletions and recreated prefixes, and the file that makes them durable
    /// (written under the lock).
    deletions: Mutex<DeletionsDoc>,
    deletions_path: PathBuf,
    /// Bumped whenever the catalog file changes; the round stores a copy when it moved.
    catalog_generation: AtomicU64,
    /// Partition prefixes given to a new partition while objects of a removed one with the
    /// same number may be left there, not yet taken up by a round: their first round sweeps by
    /// the new (empty) manifest instead of checking the old remote one (which would refuse the
    /// new partition). Loaded from the durable record at open.
    recreated: Mutex<HashSet<String>>,
    /// The broker core's answers: how far a partition may be uploaded, its aborted transactions.
    pub(crate) hooks: super::HooksSlot,
}

impl Tiering {
    /// Opens the tier of a store in `data_dir`: empties the read-ahead cache and loads the
    /// pending deletions.
    pub fn open(
        tier: &RemoteTier,
        data_dir: &Path,
        disk: &Disk,
        metrics: Arc<StoreMetrics>,
    ) -> Result<Tiering> {
        let settings = tier.settings.clone();
        let cache_dir = settings
            .cache_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("remote-cache"));
        let cache = ReadCache::open(
            &cache_dir,
            settings.cache_max_bytes,
            settings.chunk_size,
            Arc::clone(&tier.store),
            Arc::clone(&metrics),
        )?
        .with_read_limits(settings.reader_threads, settings.reader_max_pending_tasks);
        let deletions_path = data_dir.join(DELETIONS_FILE);
        let deletions = match read_durable(&deletions_path)? {
            Some(bytes) => {
                let doc: DeletionsDoc =
                    serde_json::from_slice(&bytes).map_err(|e| StoreError::CorruptMetadata {
                        path: deletions_path.clone(),
                        reason: e.to_string(),
                    })?;
                doc
            }
            None => DeletionsDoc::default(),
        };
        let recreated = deletions.recreated.iter().cloned().collect();
        let throttle = Throttle::new(settings.copy_max_bytes_per_second);
        Ok(Tiering {
            store: Arc::clone(&tier.store),
            settings,
            cache: Arc::new(cache),
            metrics,
            disk: disk.clone(),
            signal: Arc::new(Signal::default()),
            thread: Mutex::new(None),
            rounds: Mutex::new(Rounds {
                partitions: HashMap::new(),
                catalog_uploaded: 0,
                store_failures: 0,
                store_retry_at_us: 0,
                throttle,
            }),
            deletions: Mutex::new(deletions),
            deletions_path,
            catalog_generation: AtomicU64::new(1),
            recreated: Mutex::new(recreated),
            hooks: super::HooksSlot::default(),
        })
    }

    pub fn settings(&self) -> &RemoteSettings {
        &self.settings
    }

    pub fn signal(&self) -> &Arc<Signal> {
        &self.signal
    }

    /// The reader a partition uses for its data below the local log start.
    pub fn reader(&self, prefix: PartitionPrefix) -> Arc<RemoteReader> {
        Arc::new(RemoteReader::new(prefix, Arc::clone(&self.cache)))
    }

    /// `prefixes` belong to partitions just added (under the store's `changes` lock): a
    /// pending deletion of a removed partition with the same number is taken back, and the
    /// new partition's first round sweeps what the removed one left instead.
    ///
    /// Both are durable in one write (the pending deletion dropped, the prefix marked
    /// recreated until its first sweep). If that write fails the marks still hold until the
    /// next restart (logged).
    pub fn partitions_added(&self, prefixes: &[PartitionPrefix]) {
        let added: Vec<String> = prefixes.iter().map(|p| p.as_str().to_string()).collect();
        let mut doc = self.deletions.lock();
        let mut next = doc.clone();
        next.prefixes.retain(|p| !added.contains(p));
        for p in &added {
            if !next.recreated.contains(p) {
                next.recreated.push(p.clone());
            }
        }
        match self.write_deletions(&next) {
            Ok(()) => *doc = next,
            Err(e) => {
                tracing::warn!("recording re-added partitions failed (kept until a restart): {e}");
                doc.prefixes = next.prefixes;
            }
        }
        self.recreated.lock().extend(added);
    }

    /// The recreated `prefix` was swept by its new partition's manifest: a restart may check
    /// the bucket's manifest again. False when the record could not be written (retried).
    fn recreated_swept(&self, prefix: &str) -> bool {
        let mut doc = self.deletions.lock();
        if !doc.recreated.iter().any(|p| p == prefix) {
            return true;
        }
        let mut next = doc.clone();
        next.recreated.retain(|p| p != prefix);
        match self.write_deletions(&next) {
            Ok(()) => {
                *doc = next;
                true
            }
            Err(_) => false,
        }
    }

    /// The catalog file changed: its copy is stored again next round.
    pub fn catalog_changed(&self) {
        self.catalog_generation.fetch_add(1, Ordering::AcqRel);
    }

    pub fn set_thread(&self, handle: JoinHandle<()>) {
        *self.thread.lock() = Some(handle);
    }

    /// Stops the thread (a round in progress ends after its current call) and returns its
    /// handle to join.
    pub fn stop(&self) -> Option<JoinHandle<()>> {
        self.signal.stop();
        self.thread.lock().take()
    }

    /// Records, durably, that everything under `prefixes` is to be deleted. Called before the
    /// catalog stops naming them, so that a crash in between leaves the record (a record of a
    /// topic still in the catalog is dropped undone).
    pub fn record_deletions(&self, prefixes: &[String]) -> Result<()> {
        if prefixes.is_empty() {
            return Ok(());
        }
        let mut doc = self.deletions.lock();
        let mut next = doc.clone();
        for p in prefixes {
            if !next.prefixes.contains(p) {
                next.prefixes.push(p.clone());
            }
        }
        // A recreated partition removed again: its prefix is emptied, no sweep to wait for.
        next.recreated.retain(|p| !prefixes.contains(p));
        self.write_deletions(&next)?;
        *doc = next;
        Ok(())
    }

    /// Takes back a record whose catalog change failed (best effort: a leftover record of a
    /// live topic is dropped by the round).
    pub fn unrecord_deletions(&self, prefixes: &[String]) {
        let mut doc = self.deletions.lock();
        let mut next = doc.clone();
        next.prefixes.retain(|p| !prefixes.contains(p));
        if self.write_deletions(&next).is_ok() {
            *doc = next;
        }
    }

    /// Prefixes waiting to be emptied.
    pub fn pending_deletions(&self) -> Vec<String> {
        self.deletions.lock().prefixes.clone()
    }

    fn write_deletions(&self, doc: &DeletionsDoc) -> Result<()> {
        let doc = DeletionsDoc {
            version: 1,
            ..doc.clone()
        };
        let bytes = serde_json::to_vec(&doc).map_err(|e| StoreError::CorruptMetadata {
            path: self.deletions_path.clone(),
            reason: e.to_string(),
        })?;
        self.disk.write_durable(&self.deletions_path, &bytes)
    }

    /// The tier's state now, for the topics given: the partitions' counters summed (no
    /// manifest or segment list is copied, so a scrape costs the same whatever their length).
    pub fn status(&self, topics: &[TopicWork]) -> RemoteStatus {
        let mut status = RemoteStatus {
            cache_bytes: self.cache.cached_bytes(),
            ..RemoteStatus::default()
        };
        for p in topics.iter().flat_map(|t| &t.partitions) {
            let c = p.tier_counts();
            status.remote_segments += c.remote_segments;
            status.remote_bytes += c.remote_bytes;
            status.pending_segments += c.pending_segments;
            status.pending_bytes += c.pending_bytes;
        }
        status
    }

    /// One round over `input`. Per-partition failures are counted in the report and backed
    /// off; the round goes on with the other partitions.
    pub fn round(&self, input: RoundInput<'_>) -> TierReport {
        let mut rounds = self.rounds.lock();
        let mut report = TierReport::default();
        if self.signal.stopping() {
            return report;
        }
        let now = input.now_us;
        let store_work = rounds.store_failures == 0 || now >= rounds.store_retry_at_us;
        let mut store_failed = false;
        if store_work {
            let before = report.errors.len();
            self.store_catalog(&mut rounds, input.catalog_path.as_deref(), &mut report);
            store_failed = report.errors.len() > before;
        }

        let mut seen = HashSet::new();
        for topic in &input.topics {
            // Uploads (and the remote copy of the manifest) first, partition by partition.
            let mut ready = Vec::with_capacity(topic.partitions.len());
            let mut open = Vec::with_capacity(topic.partitions.len());
            // In sync but at the manifest bound: retention runs on them (it is what frees
            // room); they fail the round only if they are still full after it.
            let mut full: Vec<(PartitionKey, StoreError)> = Vec::new();
            for p in &topic.partitions {
                if self.signal.stopping() {
                    return report;
                }
                let prefix = topic.prefix(p.key().partition);
                seen.insert(prefix.clone());
                if !p.is_open() {
                    continue;
                }
                open.push((Arc::clone(p), prefix.clone()));
                let Rounds {
                    partitions,
                    throttle,
                    ..
                } = &mut *rounds;
                let state = partitions.entry(prefix.clone()).or_default();
                if self.recreated.lock().remove(prefix.as_str()) {
                    // Known not to be the bucket's old manifest's partition: no first-round
                    // check, a sweep by the new manifest.
                    *state = PartitionState {
                        synced_epoch: Some(REPUBLISH),
                        recreated: true,
                        ..PartitionState::default()
                    };
                }
                if state.failures > 0 && now < state.retry_at_us {
                    report.backed_off_partitions.push(p.key());
                    continue;
                }
                match self.copy_partition(topic, p, &prefix, state, throttle, &mut report) {
                    Ok(None) => ready.push((Arc::clone(p), prefix)),
                    Ok(Some(e)) => {
                        full.push((p.key(), e));
                        ready.push((Arc::clone(p), prefix));
                    }
                    Err(e) => self.failed(p, state, now, e, &mut report),
                }
            }
            if self.signal.stopping() {
                return report;
            }
            // The local retention over every open partition, the store reachable or not: it
            // deletes only what the installed (durable) manifest names, local work that never
            // waits for the object store. The total retention (remote work) runs over the
            // partitions that reached the store.
            // Its errors are local (a file that would not go): reported and retried next round,
            // but neither an upload failure nor a reason to back the uploads off.
            let local = self.local_retention(topic, &open, now, &mut report);
            for (key, e) in &local {
                tracing::warn!(partition = %key, "local retention of uploaded segments failed: {e}");
                report.errors.push(format!("{key}: local retention: {e}"));
            }
            ready.retain(|(p, _)| {
                !report.failed_partitions.contains(&p.key())
                    && !local.iter().any(|(k, _)| *k == p.key())
            });
            let total = self.total_retention(topic, &ready, &mut rounds, now, &mut report);
            for (p, prefix) in &ready {
                let state = rounds.partitions.entry(prefix.clone()).or_default();
                if total.iter().any(|(k, _)| *k == p.key()) {
                    continue;
                }
                match full.iter().position(|(k, _)| *k == p.key()) {
                    // Still no room after the retention: the alert, and a retry after backoff.
                    Some(i) if p.manifest_room().is_err() => {
                        let (_, e) = full.swap_remove(i);
                        self.failed(p, state, now, e, &mut report);
                    }
                    // Room again: the next round uploads.
                    _ => self.recovered(p, state),
                }
            }
            for (key, e) in total {
                if let Some((p, prefix)) = ready.iter().find(|(p, _)| p.key() == key) {
                    let state = rounds.partitions.entry(prefix.clone()).or_default();
                    self.failed(p, state, now, e, &mut report);
                }
            }
        }
        // Partitions gone from the catalog (or no longer tiered) are forgotten.
        rounds.partitions.retain(|k, _| seen.contains(k));
        if store_work && !self.signal.stopping() {
            let before = report.errors.len();
            // Not while the bucket's catalog copy is behind (its put failed, or the catalog
            // changed since): it would name topics whose objects are gone, and a restore
            // would bring them back empty.
            if !store_failed {
                self.delete_prefixes(&rounds, input.is_live.as_ref(), &mut report);
            }
            if store_failed || report.errors.len() > before {
                rounds.store_failures = rounds.store_failures.saturating_add(1);
                let delay = self.backoff(rounds.store_failures);
                rounds.store_retry_at_us = now.saturating_add(delay);
            } else {
                rounds.store_failures = 0;
            }
        } else if !store_work {
            report
                .errors
                .push("catalog copy and deletions: waiting out a backoff".into());
        }
        let failing = &self.metrics.remote.failing_rounds;
        if report.succeeded() {
            failing.store(0, Ordering::Relaxed);
        } else {
            RemoteMetrics::add(failing, 1);
        }
        report
    }

    fn failed(
        &self,
        p: &Partition,
        state: &mut PartitionState,
        now: u64,
        e: StoreError,
        report: &mut TierReport,
    ) {
        if self.signal.stopping() {
            // Interrupted by close, not a failure of the object store.
            return;
        }
        state.failures = state.failures.saturating_add(1);
        state.retry_at_us = now.saturating_add(self.backoff(state.failures));
        RemoteMetrics::add(&self.metrics.remote.upload_failures, 1);
        if state.failures == 1 {
            tracing::warn!(
                partition = %p.key(),
                "tiering to the remote store failed, retrying with backoff (local data is kept): {e}"
            );
        } else {
            tracing::debug!(partition = %p.key(), failures = state.failures, "tiering failed again: {e}");
        }
        report.failed_partitions.push(p.key());
        report.errors.push(format!("{}: {e}", p.key()));
    }

    /// The wait (µs) after `failures` failures in a row: `retry_backoff`, doubled after each
    /// further failure, at most `retry_backoff_max`.
    fn backoff(&self, failures: u32) -> u64 {
        let shift = failures.saturating_sub(1).min(31);
        let wait = self
            .settings
            .retry_backoff
            .saturating_mul(1u32 << shift)
            .min(self.settings.retry_backoff_max);
        wait.as_micros().min(u128::from(u64::MAX)) as u64
    }

    fn recovered(&self, p: &Partition, state: &mut PartitionState) {
        if state.failures > 0 {
            tracing::info!(
                partition = %p.key(),
                failures = state.failures,
                "tiering to the remote store recovered"
            );
        }
        state.failures = 0;
        state.retry_at_us = 0;
    }

    /// Stores the catalog's copy when the catalog changed since the last copy.
    fn store_catalog(&self, rounds: &mut Rounds, path: Option<&Path>, report: &mut TierReport) {
        let generation = self.catalog_generation.load(Ordering::Acquire);
        let Some(path) = path else { return };
        if rounds.catalog_uploaded == generation {
            return;
        }
        // The exact bytes of the durable file: a restore writes them back as they are.
        let stored = match std::fs::read(path) {
            Ok(bytes) => self
                .put_bytes(CATALOG_KEY, &bytes)
                .map_err(StoreError::from),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => Err(StoreError::io(path, e)),
        };
        match stored {
            Ok(()) => {
                rounds.catalog_uploaded = generation;
                report.catalog_uploaded = true;
            }
            Err(e) => report.errors.push(format!("catalog copy: {e}")),
        }
    }

    fn put_bytes(&self, key: &str, bytes: &[u8]) -> std::result::Result<(), RemoteError> {
        self.store.put(key, &mut &bytes[..], bytes.len() as u64)
    }

    /// Brings the remote copy of the manifest in line, sweeps when needed, then uploads the
    /// sealed segments not uploaded yet, committing each (manifest stored remotely, then
    /// installed) as soon as its objects are up: a close or a kill keeps what finished.
    /// `Ok(Some(ManifestFull))`: the remote copy is in sync but the manifest is at its bound,
    /// so nothing was uploaded (the retention may still run on it).
    fn copy_partition(
        &self,
        topic: &TopicWork,
        p: &Arc<Partition>,
        prefix: &PartitionPrefix,
        state: &mut PartitionState,
        throttle: &mut Throttle,
        report: &mut TierReport,
    ) -> Result<Option<StoreError>> {
        let installed = p.remote_manifest().epoch;
        if state.synced_epoch != Some(installed) {
            // Someone else installed it (a purge) or this is the first round since open: the
            // remote copy may be older (or, first round, not ours: checked before any sweep).
            let first = state.synced_epoch.is_none();
            state.synced_epoch = Some(self.publish_installed(topic, p, prefix, first)?);
            state.sweep_needed = true;
        }
        if self.signal.stopping() {
            return Ok(None);
        }
        if state.sweep_needed {
            let manifest = current_manifest(topic, p);
            report.orphans_deleted += self.sweep(prefix, &manifest)?;
            state.sweep_needed = false;
        }
        if state.recreated && self.recreated_swept(prefix.as_str()) {
            state.recreated = false;
        }
        let candidates = self.hooks.upload_candidates(p);
        if candidates.is_empty() {
            return Ok(None);
        }
        // A manifest at its bound takes nothing more: an error (the alert) instead of uploads.
        let room = match p.manifest_room() {
            Ok(room) => room,
            Err(full) => return Ok(Some(full)),
        };
        for c in candidates.iter().take(room) {
            if self.signal.stopping() {
                return Ok(None);
            }
            let manifest = current_manifest(topic, p);
            if manifest
                .next_offset()
                .is_some_and(|end| c.segment.base_offset < end)
            {
                continue;
            }
            // The epoch of the manifest that will name it is part of its keys; a retry after
            // a failure or a kill overwrites the same keys.
            let epoch = manifest.epoch + 1;
            let segment = match self.upload_segment(prefix, epoch, c, throttle) {
                Ok(segment) => segment,
                Err(e) => {
                    // What went up may never be named (the retry can come under another
                    // epoch, or the segment may be gone by then).
                    state.sweep_needed = true;
                    return Err(e);
                }
            };
            // Committed even when the store is closing: the objects are whole.
            let bytes = segment.log_size;
            let mut next = manifest.clone();
            next.epoch = epoch;
            next.segments.push(segment);
            match self.commit(p, prefix, manifest.epoch, next) {
                Ok(true) => {}
                Ok(false) => {
                    // A purge installed a newer manifest meanwhile: the objects just put are
                    // not named by it; its copy goes up and the next round sweeps them.
                    state.sweep_needed = true;
                    let installed = self.publish_installed(topic, p, prefix, false)?;
                    state.synced_epoch = Some(installed);
                    return Ok(None);
                }
                Err(e) => {
                    // The put may have happened (the install then failed): the bucket may
                    // name objects the installed manifest does not, so the installed one goes
                    // up again before any sweep by it.
                    state.synced_epoch = Some(REPUBLISH);
                    state.sweep_needed = true;
                    return Err(e);
                }
            }
            state.synced_epoch = Some(epoch);
            let m = &self.metrics.remote;
            RemoteMetrics::add(&m.uploaded_segments, 1);
            RemoteMetrics::add(&m.uploaded_bytes, bytes);
            report.uploaded_segments += 1;
            report.uploaded_bytes += bytes;
        }
        Ok(None)
    }

    /// Stores the installed manifest remotely (when anything was ever installed), under the
    /// partition's manifest-install lock so that no install overtakes the put. Returns its
    /// epoch. `first` (the first round since open): the remote copy is read first, and a copy
    /// that is not this partition's, or that is ahead of what a crash can leave (more than one
    /// epoch above, or naming remote-only data the local manifest lost) is refused: sweeping by
    /// the local manifest would delete data only the bucket holds.
    fn publish_installed(
        &self,
        topic: &TopicWork,
        p: &Partition,
        prefix: &PartitionPrefix,
        first: bool,
    ) -> Result<u64> {
        let mut epoch = 0;
        p.update_manifest(|installed| {
            if first {
                self.check_remote_manifest(topic, p, prefix, installed)?;
            }
            if installed.epoch > 0 {
                self.put_bytes(&prefix.manifest(), &installed.encode()?)?;
            }
            epoch = installed.epoch;
            Ok(None)
        })?;
        Ok(epoch)
    }

    /// The first round's check of the remote manifest against the installed one.
    fn check_remote_manifest(
        &self,
        topic: &TopicWork,
        p: &Partition,
        prefix: &PartitionPrefix,
        installed: &RemoteManifest,
    ) -> Result<()> {
        let key = prefix.manifest();
        let Some(bytes) = self.store.get(&key)? else {
            return Ok(());
        };
        // The local file is what disagrees with the bucket (lost, or an older copy put back).
        let refuse = |why: String| {
            Err(StoreError::CorruptMetadata {
                path: p.dir().join(super::MANIFEST_FILE),
                reason: format!(
                    "{why} ('{key}'); refusing to overwrite or sweep the bucket's copy (data \
                     only the bucket holds would be lost): put the bucket's manifest back in \
                     place of the local file, or remove the remote objects"
                ),
            })
        };
        let remote = match RemoteManifest::decode(&bytes, &key) {
            Ok(remote) => remote,
            // A damaged copy is replaced by the durable local one, when there is one.
            Err(_) if installed.epoch > 0 => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if (
            remote.stream,
            remote.topic,
            remote.topic_created_us,
            remote.partition,
        ) != (
            topic.stream,
            topic.topic,
            topic.created_us,
            p.key().partition,
        ) {
            return refuse("the remote manifest is another partition's".into());
        }
        if remote.epoch > installed.epoch.saturating_add(1) {
            return refuse(format!(
                "the remote manifest's epoch {} is above the local {} + 1",
                remote.epoch, installed.epoch
            ));
        }
        // A crash between the remote put and the local install leaves the remote copy one
        // epoch ahead, naming segments still on local disk. Segments below the local data that
        // the local manifest does not name are only in the bucket: the local file was lost.
        let local_start = p.local_log_start_offset();
        let remote_only = remote.segments.iter().any(|s| {
            s.base_offset < local_start
                && !installed
                    .segments
                    .iter()
                    .any(|i| (i.base_offset, i.upload_epoch) == (s.base_offset, s.upload_epoch))
        });
        if remote_only {
            return refuse(format!(
                "the remote manifest (epoch {}) names segments below the local log start \
                 {local_start} that the local one (epoch {}) does not",
                remote.epoch, installed.epoch
            ));
        }
        Ok(())
    }

    /// Stores `next` remotely and installs it, both under the partition's manifest-install
    /// lock, if the installed epoch is still `expected`. False: another install (a purge) came
    /// first and nothing was stored.
    fn commit(
        &self,
        p: &Partition,
        prefix: &PartitionPrefix,
        expected: u64,
        next: RemoteManifest,
    ) -> Result<bool> {
        let mut committed = false;
        p.update_manifest(|installed| {
            if installed.epoch != expected {
                return Ok(None);
            }
            self.put_bytes(&prefix.manifest(), &next.encode()?)?;
            committed = true;
            Ok(Some(next))
        })?;
        Ok(committed)
    }

    /// Uploads one segment's log (streamed from its file, CRC-32C computed on the way, at most
    /// `copy_max_bytes_per_second`) and index; returns its manifest entry.
    fn upload_segment(
        &self,
        prefix: &PartitionPrefix,
        epoch: u64,
        c: &UploadCandidate,
        throttle: &mut Throttle,
    ) -> Result<RemoteSegment> {
        let mut segment = c.segment.clone();
        segment.upload_epoch = epoch;
        let file = self.disk.open(&c.log_path, OpenOptions::new().read(true))?;
        let mut source = Upload {
            file,
            crc: 0,
            throttle,
            signal: &self.signal,
        };
        let base = segment.base_offset;
        self.store
            .put(&prefix.log(base, epoch), &mut source, segment.log_size)?;
        segment.log_crc32c = source.crc;
        if self.signal.stopping() {
            return Err(StoreError::PartitionClosed(format!(
                "{prefix:?} (the store is closing)"
            )));
        }
        let index = c.index();
        self.put_bytes(&prefix.index(base, epoch), &index)?;
        segment.index_size = index.len() as u64;
        segment.index_crc32c = crc32c::crc32c(&index);
        Ok(segment)
    }

    /// Deletes every object under `prefix` the manifest does not name. Returns how many.
    fn sweep(&self, prefix: &PartitionPrefix, manifest: &RemoteManifest) -> Result<u64> {
        let mut named: HashSet<String> = manifest
            .segments
            .iter()
            .flat_map(|s| {
                [
                    prefix.log(s.base_offset, s.upload_epoch),
                    prefix.index(s.base_offset, s.upload_epoch),
                ]
            })
            .collect();
        if manifest.epoch > 0 {
            named.insert(prefix.manifest());
        }
        let mut deleted = 0;
        let mut closing = false;
        // Page by page, deleting as the keys arrive: a prefix of many objects is never held.
        self.store
            .list_each(prefix.as_str(), &mut |key| {
                if self.signal.stopping() {
                    closing = true;
                    return Err(RemoteError::Unavailable {
                        key,
                        reason: "the store is closing".into(),
                    });
                }
                if !named.contains(&key) {
                    self.store.delete(&key)?;
                    self.cache.forget(&key);
                    RemoteMetrics::add(&self.metrics.remote.remote_deleted_objects, 1);
                    deleted += 1;
                }
                Ok(())
            })
            .map_err(|e| {
                if closing {
                    // The rest waits for the next sweep.
                    StoreError::PartitionClosed(format!(
                        "{} (the store is closing)",
                        prefix.as_str()
                    ))
                } else {
                    e.into()
                }
            })?;
        if deleted > 0 {
            tracing::info!(
                prefix = prefix.as_str(),
                deleted,
                "removed objects no manifest names"
            );
        }
        Ok(deleted)
    }

    /// Deletes local copies of uploaded segments past the local retention: by age
    /// (`local_retention`, else `message_expiry`) per partition, then by the topic's local size
    /// (`local_retention_bytes`, else `max_size`), oldest first across its partitions. Segments
    /// not uploaded are never deleted. Returns the partitions that failed.
    fn local_retention(
        &self,
        topic: &TopicWork,
        ready: &[(Arc<Partition>, PartitionPrefix)],
        now: u64,
        report: &mut TierReport,
    ) -> Vec<(PartitionKey, StoreError)> {
        let mut failed = Vec::new();
        let mut blocked: HashSet<PartitionKey> = HashSet::new();
        let settings = &topic.settings;
        let note = |bytes: u64, report: &mut TierReport| {
            let m = &self.metrics.remote;
            RemoteMetrics::add(&m.local_deleted_segments, 1);
            RemoteMetrics::add(&m.local_deleted_bytes, bytes);
            report.local_deleted_segments += 1;
            report.local_deleted_bytes += bytes;
        };
        if let Some(age) = settings.local_retention.or(settings.message_expiry) {
            let age_us = age.as_micros().min(u128::from(u64::MAX)) as u64;
            for (p, _) in ready {
                let uploaded_end = uploaded_end(p);
                for (base, _, last_ts) in p.sealed_segments() {
                    if last_ts.saturating_add(age_us) > now || base >= uploaded_end {
                        break;
                    }
                    match p.delete_uploaded_segment(base) {
                        Ok(Some(bytes)) => note(bytes, report),
                        Ok(None) => {
                            blocked.insert(p.key());
                            break;
                        }
                        Err(e) => {
                            blocked.insert(p.key());
                            failed.push((p.key(), e));
                            break;
                        }
                    }
                }
            }
        }
        if let Some(max) = settings.local_retention_bytes.or(settings.max_size) {
            // The topic's local bytes count every partition, tiered or not this round.
            let mut size: u64 = topic.partitions.iter().map(|p| p.stats().size_bytes).sum();
            while size > max {
                let oldest = ready
                    .iter()
                    .filter(|(p, _)| !blocked.contains(&p.key()))
                    .filter_map(|(p, _)| {
                        let &(base, _, ts) = p.sealed_segments().first()?;
                        (base < uploaded_end(p)).then_some((ts, base, p))
                    })
                    .min_by_key(|&(ts, base, p)| (ts, p.key().partition, base));
                let Some((_, base, p)) = oldest else { break };
                match p.delete_uploaded_segment(base) {
                    Ok(Some(bytes)) => {
                        size = size.saturating_sub(bytes);
                        note(bytes, report);
                    }
                    Ok(None) => {
                        blocked.insert(p.key());
                    }
                    Err(e) => {
                        blocked.insert(p.key());
                        failed.push((p.key(), e));
                    }
                }
            }
        }
        failed
    }

    /// Applies the total retention to the manifests: remote segments wholly below the log
    /// start (DeleteRecords), past `message_expiry`, or over `max_size` (remote bytes plus
    /// local bytes not uploaded) are dropped from a new manifest, which is stored and installed
    /// before their objects are deleted. A segment still on local disk goes locally first.
    fn total_retention(
        &self,
        topic: &TopicWork,
        ready: &[(Arc<Partition>, PartitionPrefix)],
        rounds: &mut Rounds,
        now: u64,
        report: &mut TierReport,
    ) -> Vec<(PartitionKey, StoreError)> {
        let mut failed = Vec::new();
        let settings = &topic.settings;
        // Per partition: the manifest now, and the one this step makes.
        let mut plans: Vec<Plan> = ready
            .iter()
            .map(|(p, prefix)| {
                let current = current_manifest(topic, p);
                Plan {
                    p: Arc::clone(p),
                    prefix: prefix.clone(),
                    next: current.clone(),
                    current,
                    blocked: false,
                }
            })
            .collect();
        for plan in &mut plans {
            let start = plan.p.log_start_offset();
            plan.next.segments.retain(|s| s.next_offset > start);
            if plan.next.start_offset().is_some_and(|s| s < start) {
                plan.next.log_start = start;
            }
        }
        let delete_policy = settings.cleanup_policy.delete;
        if let (true, Some(expiry)) = (delete_policy, settings.message_expiry) {
            let expiry_us = expiry.as_micros().min(u128::from(u64::MAX)) as u64;
            for plan in &mut plans {
                while let Some(first) = plan.next.segments.first() {
                    if first.last_append_timestamp.saturating_add(expiry_us) > now {
                        break;
                    }
                    match self.drop_local_copy(plan, report) {
                        Ok(true) => {
                            plan.next.segments.remove(0);
                        }
                        Ok(false) => break,
                        Err(e) => {
                            plan.blocked = true;
                            failed.push((plan.p.key(), e));
                            break;
                        }
                    }
                }
            }
        }
        if let (true, Some(max)) = (delete_policy, settings.max_size) {
            let mut size: u64 = plans.iter().map(|pl| pl.next.log_bytes()).sum::<u64>()
                + topic
                    .partitions
                    .iter()
                    .map(|p| not_uploaded_bytes(p))
                    .sum::<u64>();
            while size > max {
                let oldest = plans
                    .iter()
                    .enumerate()
                    .filter(|(_, pl)| !pl.blocked)
                    .filter_map(|(i, pl)| {
                        let s = pl.next.segments.first()?;
                        Some((
                            s.last_append_timestamp,
                            pl.p.key().partition,
                            s.base_offset,
                            i,
                        ))
                    })
                    .min();
                let Some((_, _, _, i)) = oldest else { break };
                let plan = &mut plans[i];
                match self.drop_local_copy(plan, report) {
                    Ok(true) => {
                        let gone = plan.next.segments.remove(0);
                        size = size.saturating_sub(gone.log_size);
                    }
                    Ok(false) => plan.blocked = true,
                    Err(e) => {
                        plan.blocked = true;
                        failed.push((plan.p.key(), e));
                    }
                }
            }
        }
        for plan in plans {
            if plan.next == plan.current {
                continue;
            }
            if self.signal.stopping() {
                break;
            }
            let state = rounds.partitions.entry(plan.prefix.clone()).or_default();
            match self.shrink(&plan, state, report) {
                Ok(()) => {}
                Err(e) => failed.push((plan.p.key(), e)),
            }
        }
        failed
    }

    /// If the first segment of `plan.next` is still on local disk, deletes the local copy
    /// first (it is uploaded). False: it could not go now (maintenance holds the partition).
    fn drop_local_copy(&self, plan: &mut Plan, report: &mut TierReport) -> Result<bool> {
        let Some(first) = plan.next.segments.first() else {
            return Ok(false);
        };
        if first.next_offset <= plan.p.local_log_start_offset() {
            return Ok(true);
        }
        let base = first.base_offset;
        match plan.p.delete_uploaded_segment(base)? {
            Some(bytes) => {
                let m = &self.metrics.remote;
                RemoteMetrics::add(&m.local_deleted_segments, 1);
                RemoteMetrics::add(&m.local_deleted_bytes, bytes);
                report.local_deleted_segments += 1;
                report.local_deleted_bytes += bytes;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Stores and installs the shrunk manifest, then deletes the objects it no longer names.
    fn shrink(
        &self,
        plan: &Plan,
        state: &mut PartitionState,
        report: &mut TierReport,
    ) -> Result<()> {
        let mut next = plan.next.clone();
        next.epoch = plan.current.epoch + 1;
        let committed = self
            .commit(&plan.p, &plan.prefix, plan.current.epoch, next.clone())
            .inspect_err(|_| {
                // As in `copy_partition`: the bucket may now hold the shrunk manifest while
                // the installed one still names the dropped segments.
                state.synced_epoch = Some(REPUBLISH);
                state.sweep_needed = true;
            })?;
        if !committed {
            // A purge installed a newer manifest meanwhile: nothing was stored; the next
            // round stores the purge's manifest and sweeps.
            return Ok(());
        }
        state.synced_epoch = Some(next.epoch);
        let kept: HashSet<(u64, u64)> = next
            .segments
            .iter()
            .map(|s| (s.base_offset, s.upload_epoch))
            .collect();
        for s in &plan.current.segments {
            if kept.contains(&(s.base_offset, s.upload_epoch)) {
                continue;
            }
            if self.signal.stopping() {
                state.sweep_needed = true;
                break;
            }
            let log = plan.prefix.log(s.base_offset, s.upload_epoch);
            let index = plan.prefix.index(s.base_offset, s.upload_epoch);
            // Neither its chunks nor its parsed index are read again.
            self.cache.forget(&log);
            self.cache.forget(&index);
            // The manifest no longer names them: a failed deletion leaves orphans for the sweep.
            for key in [&log, &index] {
                match self.store.delete(key) {
                    Ok(()) => RemoteMetrics::add(&self.metrics.remote.remote_deleted_objects, 1),
                    Err(_) => state.sweep_needed = true,
                }
            }
            let m = &self.metrics.remote;
            RemoteMetrics::add(&m.remote_deleted_segments, 1);
            RemoteMetrics::add(&m.remote_deleted_bytes, s.log_size);
            report.remote_deleted_segments += 1;
            report.remote_deleted_bytes += s.log_size;
        }
        Ok(())
    }

    /// Empties the prefixes of deleted topics and partitions, then drops their records. Each
    /// record is checked against the catalog as it is then (`is_live`), and only while the
    /// bucket's catalog copy is that of the catalog now (else the rest waits for the next
    /// round, after the copy).
    fn delete_prefixes(
        &self,
        rounds: &Rounds,
        is_live: &dyn Fn(&str) -> bool,
        report: &mut TierReport,
    ) {
        let pending = self.pending_deletions();
        let mut done = Vec::new();
        for prefix in pending {
            if self.signal.stopping() {
                break;
            }
            if is_live(&prefix) {
                // The catalog change that recorded it did not happen.
                done.push(prefix);
                continue;
            }
            // Read after the check: a catalog saved meanwhile only makes this stricter.
            if rounds.catalog_uploaded != self.catalog_generation.load(Ordering::Acquire) {
                break;
            }
            // Deleted as the listing's pages arrive: the keys are never held whole.
            let mut n = 0;
            let emptied = self
                .store
                .list_each(&prefix, &mut |key| {
                    if self.signal.stopping() {
                        return Err(RemoteError::Unavailable {
                            key,
                            reason: "the store is closing".into(),
                        });
                    }
                    self.store.delete(&key)?;
                    self.cache.forget(&key);
                    RemoteMetrics::add(&self.metrics.remote.remote_deleted_objects, 1);
                    n += 1;
                    Ok(())
                })
                .map(|()| n);
            match emptied {
                Ok(n) => {
                    report.objects_deleted += n;
                    report.prefixes_deleted += 1;
                    done.push(prefix);
                }
                Err(e) => report.errors.push(format!("deleting {prefix}: {e}")),
            }
        }
        if !done.is_empty() {
            self.unrecord_deletions(&done);
        }
    }
}

/// A manifest change the total retention is making.
struct Plan {
    p: Arc<Partition>,
    prefix: PartitionPrefix,
    current: RemoteManifest,
    next: RemoteManifest,
    /// Its oldest segment cannot go this round.
    blocked: bool,
}

/// The partition's manifest, with its identity filled in when nothing was ever installed.
fn current_manifest(topic: &TopicWork, p: &Partition) -> RemoteManifest {
    let manifest = p.remote_manifest();
    if manifest.epoch == 0 && manifest.segments.is_empty() {
        RemoteManifest::new(
            topic.stream,
            topic.topic,
            topic.created_us,
            p.key().partition,
        )
    } else {
        manifest
    }
}

/// One past the last uploaded offset (0: nothing uploaded). Local sealed segments starting
/// below it are uploaded: uploads are whole segments.
fn uploaded_end(p: &Partition) -> u64 {
    // Cheap (no copy of the manifest): called for every segment retention looks at.
    p.last_remote_offset().map_or(0, |last| last + 1)
}

/// Local bytes not in the remote tier: sealed segments not uploaded and the active one.
fn not_uploaded_bytes(p: &Partition) -> u64 {
    let end = uploaded_end(p);
    let uploaded: u64 = p
        .sealed_segments()
        .iter()
        .filter(|&&(base, _, _)| base < end)
        .map(|&(_, size, _)| size)
        .sum();
    p.stats().size_bytes.saturating_sub(uploaded)
}

/// A segment file read for upload: computes its CRC-32C and keeps to the rate limit; a wait
/// ends (with an error) when the store closes.
struct Upload<'a> {
    file: std::fs::File,
    crc: u32,
    throttle: &'a mut Throttle,
    signal: &'a Signal,
}

impl Read for Upload<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        let wait = self.throttle.charge(n as u64, Instant::now());
        if !self.signal.pause(wait) {
            return Err(std::io::Error::other("the store is closing"));
        }
        Ok(n)
    }
}
