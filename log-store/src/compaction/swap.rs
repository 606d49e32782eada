//! The crash-safe swap of cleaned segments, its manifest, and the recovery of a swap cut short.
//!
//! A cleaning writes `<base>.log.cleaned` and `<base>.index.cleaned` and makes them durable,
//! then writes the manifest `cleaner-swap` (checksummed, replaced atomically): from that moment
//! the new files ARE the log. Then the `.cleaned` files are renamed over the old ones, the other
//! replaced segments' files are removed, the folder is synced, and the manifest goes. Opening a
//! partition redoes the renames and removals of a manifest it finds (each step can be redone: a
//! missing `.cleaned` was renamed already), and without a manifest removes every `.cleaned`
//! file: a crash leaves the old segments or the new ones, never a mix. A manifest that cannot
//! be read (damaged after its commit), or whose renamed log is not the cleaned one (by length),
//! makes the partition refuse to open rather than guess.

use std::fs;
use std::path::{Path, PathBuf};

use crate::disk::Disk;
use crate::durable_file::read_durable;
use crate::error::{Result, StoreError};
use crate::segment::{file_name, INDEX_EXT, LOG_EXT};

pub(crate) const MANIFEST_FILE: &str = "cleaner-swap";
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";
/// Version 1 had no `new_len`; it is still read.
const MANIFEST_VERSION: u8 = 2;
/// `new_base` of a swap whose output was empty and is dropped.
const NO_OUTPUT: u64 = u64::MAX;

/// One committed swap: the segments it replaces, and the segment (named by the first replaced
/// base) that takes their place, if any batch is left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub new_base: Option<u64>,
    /// The byte length of the new segment's log: recovery checks, before it removes anything,
    /// that a `<base>.log` whose `.cleaned` file is gone is indeed the cleaned one. `None` in
    /// a version 1 manifest.
    pub new_len: Option<u64>,
    pub replaced: Vec<u64>,
}

impl Manifest {
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(21 + 8 * self.replaced.len());
        b.push(MANIFEST_VERSION);
        b.extend_from_slice(&self.new_base.unwrap_or(NO_OUTPUT).to_le_bytes());
        b.extend_from_slice(&self.new_len.unwrap_or(u64::MAX).to_le_bytes());
        b.extend_from_slice(&(self.replaced.len() as u32).to_le_bytes());
        for base in &self.replaced {
            b.extend_from_slice(&base.to_le_bytes());
        }
        b
    }

    fn decode(b: &[u8]) -> Option<Manifest> {
        let (new_len, b) = match b.first() {
            Some(1) => (None, std::borrow::Cow::Borrowed(b)),
            Some(&MANIFEST_VERSION) if b.len() >= 21 => {
                let len = u64::from_le_bytes(b[9..17].try_into().ok()?);
                // The same layout as version 1 from here, the length cut out.
                let mut v1 = b[..9].to_vec();
                v1.extend_from_slice(&b[17..]);
                (
                    Some(len).filter(|&l| l != u64::MAX),
                    std::borrow::Cow::Owned(v1),
                )
            }
            _ => return None,
        };
        let b: &[u8] = &b;
        if b.len() < 13 {
            return None;
        }
        let new_base = u64::from_le_bytes(b[1..9].try_into().ok()?);
        let count = u32::from_le_bytes(b[9..13].try_into().ok()?) as usize;
        let rest = &b[13..];
        if rest.len() != count.checked_mul(8)? {
            return None;
        }
        let replaced = rest
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();
        Some(Manifest {
            new_base: (new_base != NO_OUTPUT).then_some(new_base),
            new_len,
            replaced,
        })
    }

    /// Writes the manifest durably: the commit point of the swap.
    pub fn commit(&self, disk: &Disk, dir: &Path) -> Result<()> {
        disk.write_durable(&dir.join(MANIFEST_FILE), &self.encode())
    }

    /// Puts the new files in place and removes the replaced ones; every step may be redone.
    pub fn apply(&self, disk: &Disk, dir: &Path) -> Result<()> {
        if let Some(base) = self.new_base {
            let log = dir.join(file_name(base, LOG_EXT));
            let cleaned = cleaned_path(dir, base, LOG_EXT);
            if let (Some(len), false) = (self.new_len, cleaned.exists()) {
                // Renamed already, so `<base>.log` must be the cleaned log. If it is not, the
                // cleaned files were lost: removing the other segments would lose the log.
                let found = fs::metadata(&log).map(|m| m.len()).ok();
                if found != Some(len) {
                    return Err(StoreError::CorruptMetadata {
                        path: dir.join(MANIFEST_FILE),
                        reason: format!(
                            "the compaction manifest names a {len}-byte segment {base} but \
                             finds {found:?} bytes and no cleaned file: the swap cannot be \
                             finished; nothing was removed"
                        ),
                    });
                }
            }
            for ext in [LOG_EXT, INDEX_EXT] {
                let cleaned = cleaned_path(dir, base, ext);
                if cleaned.exists() {
                    disk.rename(&cleaned, &dir.join(file_name(base, ext)))?;
                }
            }
        }
        for &base in &self.replaced {
            if Some(base) == self.new_base {
                continue;
            }
            for ext in [LOG_EXT, INDEX_EXT] {
                disk.remove_file(&dir.join(file_name(base, ext)))?;
            }
        }
        disk.sync_dir(dir)
    }

    /// Removes the manifest, durably: a manifest reappearing after a later cleaning made new
    /// `.cleaned` files would rename them in half-written.
    pub fn finish(disk: &Disk, dir: &Path) -> Result<()> {
        if disk.remove_file(&dir.join(MANIFEST_FILE))? {
            disk.sync_dir(dir)?;
        }
        Ok(())
    }
}

pub(crate) fn cleaned_path(dir: &Path, base: u64, ext: &str) -> PathBuf {
    dir.join(format!("{}{CLEANED_SUFFIX}", file_name(base, ext)))
}

/// Recovers a partition folder: finishes a committed swap, or removes the leftovers of one that
/// never committed.
pub(crate) fn recover(disk: &Disk, dir: &Path) -> Result<()> {
    let path = dir.join(MANIFEST_FILE);
    // A manifest is replaced atomically, so a damaged one was damaged after its commit: whether
    // its swap had begun cannot be told, and guessing either way may lose the log. The
    // partition refuses to open until someone looks.
    let refuse = |reason: String| StoreError::CorruptMetadata {
        path: path.clone(),
        reason: format!(
            "{reason}: a compaction swap cannot be decided; the partition stays closed (restore \
             the folder or remove the manifest by hand knowing what it replaced)"
        ),
    };
    let manifest = match read_durable(&path) {
        Ok(Some(bytes)) => match Manifest::decode(&bytes) {
            Some(m) => Some(m),
            None => return Err(refuse("unreadable compaction manifest".into())),
        },
        Ok(None) => None,
        Err(StoreError::CorruptMetadata { reason, .. }) => return Err(refuse(reason)),
        Err(e) => return Err(e),
    };
    if let Some(m) = &manifest {
        tracing::warn!(dir = %dir.display(), "finishing a compaction swap cut short: {m:?}");
        m.apply(disk, dir)?;
    }
    let mut removed = false;
    for entry in fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let leftover = name.ends_with(CLEANED_SUFFIX)
            || name == format!("{MANIFEST_FILE}.tmp")
            || (name == MANIFEST_FILE && manifest.is_none());
        if leftover {
            tracing::warn!(path = %entry.path().display(), "removing a leftover of an unfinished compaction");
            removed |= disk.remove_file(&entry.path())?;
        }
    }
    if removed {
        disk.sync_dir(dir)?;
    }
    if manifest.is_some() {
        Manifest::finish(disk, dir)?;
    }
    Ok(())
}

/// The file keeping how far a partition was cleaned.
const CHECKPOINT_FILE: &str = "cleaner-checkpoint";

/// How far the cleaner got in a partition, kept across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Offsets below this were in a key map of some cleaning: the dirty section starts here.
    pub cleaned_to: u64,
    /// Server time (µs) at which the earliest tombstone or marker kept only for
    /// `delete.retention.ms` may go: the partition is worth cleaning again then even if
    /// nothing new was written. `u64::MAX`: none kept.
    pub tombstones_due_us: u64,
}

impl Default for Checkpoint {
    fn default() -> Self {
        Checkpoint {
            cleaned_to: 0,
            tombstones_due_us: u64::MAX,
        }
    }
}

impl Checkpoint {
    pub(crate) fn load(dir: &Path) -> Result<Checkpoint> {
        let path = dir.join(CHECKPOINT_FILE);
        match read_durable(&path) {
            Ok(Some(b)) if b.len() == 16 => Ok(Checkpoint {
                cleaned_to: u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8])),
                tombstones_due_us: u64::from_le_bytes(b[8..].try_into().unwrap_or([0xff; 8])),
            }),
            // A lost or damaged checkpoint costs a cleaning of data already clean, nothing more.
            Ok(_) | Err(StoreError::CorruptMetadata { .. }) => Ok(Checkpoint::default()),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn save(&self, disk: &Disk, dir: &Path) -> Result<()> {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.cleaned_to.to_le_bytes());
        b[8..].copy_from_slice(&self.tombstones_due_us.to_le_bytes());
        disk.write_durable(&dir.join(CHECKPOINT_FILE), &b)
    }

    pub(crate) fn remove(disk: &Disk, dir: &Path) -> Result<()> {
        disk.remove_file(&dir.join(CHECKPOINT_FILE)).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_and_rejects_damage() {
        let m = Manifest {
            new_base: Some(10),
            new_len: Some(4096),
            replaced: vec![10, 20, 35],
        };
        assert_eq!(Manifest::decode(&m.encode()), Some(m.clone()));
        let none = Manifest {
            new_base: None,
            new_len: None,
            replaced: vec![20],
        };
        assert_eq!(Manifest::decode(&none.encode()), Some(none));
        let b = m.encode();
        assert_eq!(Manifest::decode(&b[..b.len() - 1]), None);
        assert_eq!(Manifest::decode(&[]), None);
        // Version 1 (no length) is still read.
        let mut v1 = vec![1u8];
        v1.extend_from_slice(&10u64.to_le_bytes());
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(&10u64.to_le_bytes());
        assert_eq!(
            Manifest::decode(&v1),
            Some(Manifest {
                new_base: Some(10),
                new_len: None,
                replaced: vec![10],
            })
        );
    }

    /// Review 17 #1, recovery's side: a committed manifest whose cleaned files are gone and
    /// whose `<base>.log` is not the cleaned one (another length) removes nothing.
    #[test]
    fn a_manifest_without_its_cleaned_log_removes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for base in [0u64, 5] {
            for ext in [LOG_EXT, INDEX_EXT] {
                fs::write(d.join(file_name(base, ext)), b"old segment").unwrap();
            }
        }
        let m = Manifest {
            new_base: Some(0),
            new_len: Some(3),
            replaced: vec![0, 5],
        };
        let disk = Disk::real();
        m.commit(&disk, d).unwrap();
        assert!(matches!(
            recover(&disk, d),
            Err(StoreError::CorruptMetadata { .. })
        ));
        for base in [0u64, 5] {
            assert!(
                d.join(file_name(base, LOG_EXT)).exists(),
                "segment {base} removed"
            );
        }
        // The renamed cleaned log (its length matches): the swap is finished.
        fs::write(d.join(file_name(0, LOG_EXT)), b"new").unwrap();
        recover(&disk, d).unwrap();
        assert!(!d.join(file_name(5, LOG_EXT)).exists());
        assert!(!d.join(MANIFEST_FILE).exists());
    }
}
