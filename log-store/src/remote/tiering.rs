//! The tiering thread: every `task_interval` (and when a segment is sealed) it uploads the
//! sealed segments of topics with remote storage on, then stores the partition's manifest
//! (remotely, then durably in the partition folder), then deletes local copies past the local
//! retention and remote segments past the total retention. Failures are retried with backoff
//! per partition; local data that is not uploaded is never deleted meanwhile.

/// The tiering thread's handle.
#[derive(Debug, Default)]
pub(crate) struct Tiering {}
