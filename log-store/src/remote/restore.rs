//! Rebuilding a data directory from the remote tier: the catalog from its copy, each
//! partition's manifest, and an empty local log starting where the uploaded data ends, so that
//! everything uploaded is readable again and new appends continue after it.
//!
//! Order: the manifests are written first and the catalog last. A restore cut short (the
//! object store failing, a kill) leaves no catalog, so it can simply be run again; the
//! manifests it wrote are overwritten. The store opened afterwards starts each partition's
//! local log at its manifest's end (`Partition::open`).
//!
//! What is not in the remote tier does not come back: data of topics without remote storage
//! and segments not uploaded yet (those topics and partitions restart empty, after their
//! uploaded offsets), and consumer offsets (kept only locally).

use std::path::Path;

use super::{PartitionPrefix, RemoteError, RemoteManifest, CATALOG_KEY, MANIFEST_FILE};
use crate::error::{Result, StoreError};
use crate::store::{lock_data_dir, partition_dir, CatalogDoc};

/// What a restore brought back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    pub streams: usize,
    pub topics: usize,
    pub partitions: usize,
    /// Uploaded segments now readable, and their bytes.
    pub segments: usize,
    pub bytes: u64,
    /// Topics without remote storage: they come back empty (their data was only local).
    pub local_only_topics: usize,
    /// Partitions of remote-storage topics with no manifest in the store (nothing was
    /// uploaded yet): they come back empty.
    pub partitions_without_manifest: usize,
}

/// Restores into `dir`, which must hold no catalog.
pub(crate) fn restore_from_remote(
    dir: &Path,
    config: &crate::StoreConfig,
) -> Result<RestoreReport> {
    let tier = config.remote.as_ref().ok_or_else(|| {
        RemoteError::Config("restoring needs a remote tier, and none is configured".into())
    })?;
    let disk = &config.disk;
    let catalog_path = dir.join("catalog");
    refuse_catalog(&catalog_path)?;
    disk.create_dir_all(&dir.join("streams"))?;
    // A server running on this folder holds the lock; restoring under it would corrupt both.
    let _lock = lock_data_dir(disk, dir)?;
    // Again under the lock: a store may have made one since.
    refuse_catalog(&catalog_path)?;

    let store = &tier.store;
    let copy = store
        .get(CATALOG_KEY)?
        .ok_or_else(|| RemoteError::NotFound(CATALOG_KEY.to_string()))?;
    let corrupt = |key: &str, reason: String| RemoteError::Corrupt {
        key: key.to_string(),
        reason,
    };
    let body = crate::durable_file::decode_durable(&copy)
        .map_err(|reason| corrupt(CATALOG_KEY, reason.to_string()))?;
    let doc: CatalogDoc = serde_json::from_slice(body)
        .map_err(|e| corrupt(CATALOG_KEY, format!("not a catalog: {e}")))?;

    let mut report = RestoreReport {
        streams: doc.streams.len(),
        ..RestoreReport::default()
    };
    for s in &doc.streams {
        for t in &s.topics {
            report.topics += 1;
            report.partitions += t.partitions as usize;
            if !t.settings.remote_storage {
                report.local_only_topics += 1;
                continue;
            }
            for p in 0..t.partitions {
                let prefix = PartitionPrefix::new(s.id, t.id, t.created_at, p);
                let key = prefix.manifest();
                let Some(bytes) = store.get(&key)? else {
                    report.partitions_without_manifest += 1;
                    continue;
                };
                let manifest = RemoteManifest::decode(&bytes, &key)?;
                let identity = (
                    manifest.stream,
                    manifest.topic,
                    manifest.topic_created_us,
                    manifest.partition,
                );
                if identity != (s.id, t.id, t.created_at, p) {
                    return Err(corrupt(
                        &key,
                        format!(
                            "the manifest is partition {}/{}/{} of the topic created at {} µs, \
                             not {}/{}/{p} created at {} µs",
                            manifest.stream,
                            manifest.topic,
                            manifest.partition,
                            manifest.topic_created_us,
                            s.id,
                            t.id,
                            t.created_at
                        ),
                    )
                    .into());
                }
                // Every object the manifest names must be there: a restore that succeeded
                // with reads failing later would be worse than none. The listing streams:
                // only the named keys are held (as many as the manifest, which is in
                // memory anyway), never every key under the prefix (orphans included).
                let mut missing: std::collections::HashSet<String> = manifest
                    .segments
                    .iter()
                    .flat_map(|seg| {
                        [
                            prefix.log(seg.base_offset, seg.upload_epoch),
                            prefix.index(seg.base_offset, seg.upload_epoch),
                        ]
                    })
                    .collect();
                store.list_each(prefix.as_str(), &mut |object| {
                    missing.remove(&object);
                    Ok(())
                })?;
                if let Some(object) = missing.iter().min() {
                    return Err(corrupt(
                        object,
                        format!("named by '{key}' but not in the remote store"),
                    )
                    .into());
                }
                let pdir = partition_dir(dir, s.id, t.id, p);
                refuse_local_data(&pdir)?;
                disk.create_dir_all(&pdir)?;
                disk.write_durable(&pdir.join(MANIFEST_FILE), &bytes)?;
                report.segments += manifest.segments.len();
                report.bytes += manifest.log_bytes();
            }
        }
    }
    // Last: with the catalog written, the folder is a store (and a second restore refused).
    disk.write_durable(&catalog_path, body)?;
    Ok(report)
}

/// Refuses a data directory that holds a catalog: it is a store, whatever else it lacks.
fn refuse_catalog(catalog_path: &Path) -> Result<()> {
    if catalog_path.exists() {
        return Err(StoreError::io(
            catalog_path,
            std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the data directory already holds a catalog: restore only into an empty one",
            ),
        ));
    }
    Ok(())
}

/// Refuses a partition folder holding anything but a manifest (left by an earlier, cut-short
/// restore): local segments beside a restored manifest would not be the uploaded data.
fn refuse_local_data(pdir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(pdir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io(pdir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(pdir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name != MANIFEST_FILE && name != format!("{MANIFEST_FILE}.tmp") {
            return Err(StoreError::io(
                entry.path(),
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "the partition folder already holds data: restore only into an empty data \
                     directory",
                ),
            ));
        }
    }
    Ok(())
}
