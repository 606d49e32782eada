//! What the tiering thread asks of whoever owns the records' meaning (the broker core): how far
//! a partition may be uploaded (Kafka's last stable offset: a segment holding an undecided
//! transaction never leaves local disk) and which aborted transactions lie in a segment being
//! uploaded (kept in its manifest entry, opaque to the store, so that `read_committed` readers
//! still skip them once the segment is only in the remote tier, also after a restore).
//!
//! The broker installs its hooks on the store as it opens it
//! ([`crate::LogStore::open_with_tiering_hooks`], so no round runs before them; or later with
//! [`crate::LogStore::set_tiering_hooks`]), as it hands the log cleaner its
//! [`crate::compaction::RecordKeys`]. A store without hooks knows no transactions: every
//! sealed segment may be uploaded and carries none.

use std::ops::Range;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::partition::{Partition, UploadCandidate};

/// An aborted transaction with batches in an uploaded segment: its producer, the offset of its
/// first batch in the partition and the offset of its abort marker (Kafka's `AbortedTxn`, as
/// Fetch reports it). The store keeps it and hands it back; it never reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortedRange {
    pub producer_id: i64,
    pub first_offset: u64,
    pub last_offset: u64,
}

/// The broker core's answers to the tiering thread. Called on the tiering thread (or a test's
/// `tier_once`), possibly on an async worker: answers must not wait on async work.
pub trait TieringHooks: Send + Sync + std::fmt::Debug {
    /// The offset below which `partition` may be uploaded: its last stable offset. A segment
    /// is uploaded only when it ends at or below it. 0 while it is not known yet.
    fn upload_limit(&self, partition: &Arc<Partition>) -> u64;

    /// The aborted transactions with batches in `offsets` of `partition` (marker at or after
    /// `offsets.start`, first batch before `offsets.end`); `None` when they are not known now:
    /// the segment then waits for a later round.
    fn aborted_transactions(
        &self,
        partition: &Arc<Partition>,
        offsets: Range<u64>,
    ) -> Option<Vec<AbortedRange>>;
}

/// Where the tiering thread keeps the installed hooks (none until the broker installs them).
#[derive(Debug, Default)]
pub(crate) struct HooksSlot(RwLock<Option<Arc<dyn TieringHooks>>>);

impl HooksSlot {
    pub fn set(&self, hooks: Arc<dyn TieringHooks>) {
        *self.0.write() = Some(hooks);
    }

    /// The segments of `p` to upload now: at most [`crate::partition::MAX_UPLOAD_CANDIDATES`],
    /// none past the upload limit, each with its aborted transactions. A segment whose
    /// transactions are not known ends the list (uploads stay in offset order).
    pub fn upload_candidates(&self, p: &Arc<Partition>) -> Vec<UploadCandidate> {
        let hooks = self.0.read().clone();
        let Some(hooks) = hooks else {
            return p.upload_candidates(u64::MAX);
        };
        let mut candidates = p.upload_candidates(hooks.upload_limit(p));
        for (i, c) in candidates.iter_mut().enumerate() {
            let range = c.segment.base_offset..c.segment.next_offset;
            match hooks.aborted_transactions(p, range) {
                Some(aborted) => c.segment.aborted = aborted,
                None => {
                    candidates.truncate(i);
                    break;
                }
            }
        }
        candidates
    }
}
