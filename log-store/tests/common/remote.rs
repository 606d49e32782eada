//! The remote tier as the tiering, restore and remote-read tests set it up: a folder behind a
//! fault switch, topics whose every batch seals a segment, and the wall clock the rounds take.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use wharf_log_store::remote::{FaultyRemote, ObjectStoreRemote, RemoteConfig};
use wharf_log_store::TopicSettings;

/// A folder at `root` as the object store, behind a [`FaultyRemote`] the test can switch off.
pub fn folder_remote(root: &Path) -> Arc<FaultyRemote> {
    let real = ObjectStoreRemote::open(RemoteConfig::filesystem(root)).expect("filesystem remote");
    FaultyRemote::new(Arc::new(real))
}

/// Every batch in its own segment; uploaded sealed segments leave local disk at once.
pub fn tiered() -> TopicSettings {
    TopicSettings {
        segment_size: Some(1),
        remote_storage: true,
        local_retention_bytes: Some(1),
        ..TopicSettings::default()
    }
}

/// Now, in µs since the epoch: what `tier_once` is given.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}
