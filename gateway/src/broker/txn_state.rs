//! One partition's Kafka transactions as its log records them (Kafka's transaction index and the
//! transactional half of its producer state): the transactions still open, each producer's
//! first offset in its current transaction, which bound the **last stable offset**; and the
//! aborted ones, whose batches `read_committed` readers (and native polls) skip.
//!
//! Rebuilt from the log like the idempotent producers' state it lives beside
//! ([`super::producers`]): a transactional batch opens its producer's transaction, a control
//! batch (commit or abort marker) closes it, an abort adds an entry here.
//!
//! **How readers stay safe.** The writer registers a transaction as open *before* its first
//! batch is appended (at an offset no later than where the batch lands) and closes it only
//! *after* the marker is appended. A reader reads the partition's high watermark first and this
//! state second; then every batch below the watermark that belongs to a transaction still open
//! is at or after that transaction's registered first offset, so
//! [`PartitionTxns::last_stable_offset`] never lets a reader past an undecided batch.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// An aborted transaction in one partition: its producer, the offset of its first batch here
/// and the offset of its abort marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: u64,
    pub last_offset: u64,
}

/// Open and aborted transactions of one partition.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PartitionTxns {
    /// Open transactions: producer id -> offset of its first batch in the transaction.
    open: HashMap<i64, u64>,
    /// Aborted transactions in the order of their markers (so by `last_offset`).
    aborted: VecDeque<AbortedTxn>,
}

impl PartitionTxns {
    /// Opens `producer_id`'s transaction at `first_offset`, unless it is open already.
    pub fn begin(&mut self, producer_id: i64, first_offset: u64) {
        self.open.entry(producer_id).or_insert(first_offset);
    }

    /// Moves an open transaction's first offset to where its first batch actually landed
    /// (registered earlier at an offset no later than that).
    pub fn settle_first_offset(&mut self, producer_id: i64, first_offset: u64) {
        if let Some(first) = self.open.get_mut(&producer_id) {
            *first = (*first).max(first_offset);
        }
    }

    /// Forgets an open transaction whose first batch was never stored (the append failed).
    pub fn forget_open(&mut self, producer_id: i64) {
        self.open.remove(&producer_id);
    }

    /// Closes `producer_id`'s transaction with the marker at `marker_offset`. An abort is
    /// remembered (and returned) so readers can skip its batches; a marker for a producer with
    /// no open transaction here (a marker written again after a crash) covers only itself.
    pub fn end(
        &mut self,
        producer_id: i64,
        marker_offset: u64,
        commit: bool,
    ) -> Option<AbortedTxn> {
        let first = self.open.remove(&producer_id).unwrap_or(marker_offset);
        if commit {
            return None;
        }
        let txn = AbortedTxn {
            producer_id,
            first_offset: first,
            last_offset: marker_offset,
        };
        // Markers are appended in offset order, so this keeps `aborted` sorted; one seeded
        // from the remote tier's manifest may already be there, with its real first offset.
        let at = self
            .aborted
            .partition_point(|t| t.last_offset < marker_offset);
        if let Some(known) = self
            .aborted
            .range(at..)
            .take_while(|t| t.last_offset == marker_offset)
            .find(|t| t.producer_id == producer_id)
        {
            return Some(*known);
        }
        self.aborted.insert(at, txn);
        Some(txn)
    }

    pub fn is_open(&self, producer_id: i64) -> bool {
        self.open.contains_key(&producer_id)
    }

    /// Open transactions: (producer id, first offset).
    pub fn open_transactions(&self) -> impl Iterator<Item = (i64, u64)> + '_ {
        self.open.iter().map(|(&p, &o)| (p, o))
    }

    /// The first offset of the earliest open transaction, if any.
    pub fn first_open_offset(&self) -> Option<u64> {
        self.open.values().copied().min()
    }

    /// Kafka's last stable offset: `high_watermark`, or the first offset of the earliest open
    /// transaction when that is lower. Read `high_watermark` *before* this state (see the
    /// module's doc).
    pub fn last_stable_offset(&self, high_watermark: u64) -> u64 {
        self.first_open_offset()
            .map_or(high_watermark, |o| o.min(high_watermark))
    }

    /// Aborted transactions that overlap the offsets `from..to`: marker at or after `from`,
    /// first batch before `to` (what Fetch reports as `aborted_transactions`).
    pub fn aborted_between(&self, from: u64, to: u64) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|t| t.last_offset < from);
        self.aborted
            .range(start..)
            .filter(|t| t.first_offset < to)
            .copied()
            .collect()
    }

    /// True when the batch of `producer_id` at `offset` belongs to an aborted transaction
    /// (the log cleaner asks batch by batch; readers take [`PartitionTxns::aborted_between`]
    /// once for their range instead).
    pub fn is_aborted(&self, producer_id: i64, offset: u64) -> bool {
        let start = self.aborted.partition_point(|t| t.last_offset < offset);
        self.aborted
            .range(start..)
            .any(|t| t.producer_id == producer_id && t.first_offset <= offset)
    }

    /// Drops aborted transactions wholly below `log_start` (deleted by retention or
    /// DeleteRecords): the index is bounded by the log it describes.
    pub fn forget_before(&mut self, log_start: u64) {
        while self
            .aborted
            .front()
            .is_some_and(|t| t.last_offset < log_start)
        {
            self.aborted.pop_front();
        }
    }

    /// Adds aborted transactions known from elsewhere (the remote tier's manifest, for offsets
    /// no longer on local disk), keeping the list in marker order. One already known (same
    /// producer and marker) is kept once, with the earlier first offset.
    pub fn seed_aborted(&mut self, known: impl IntoIterator<Item = AbortedTxn>) {
        let mut all: Vec<AbortedTxn> = self.aborted.drain(..).chain(known).collect();
        all.sort_by_key(|t| (t.last_offset, t.producer_id, t.first_offset));
        all.dedup_by(|later, kept| {
            (later.last_offset, later.producer_id) == (kept.last_offset, kept.producer_id)
        });
        self.aborted = all.into();
    }

    /// Forgets open transactions whose first batch lies in `offsets`: offsets uploaded to the
    /// remote tier, which only takes segments below the last stable offset, so every
    /// transaction with a batch there was decided (its abort, if it was one, comes with the
    /// segment).
    pub fn close_decided(&mut self, offsets: std::ops::Range<u64>) {
        self.open.retain(|_, first| !offsets.contains(first));
    }

    /// Number of aborted transactions remembered.
    pub fn aborted_count(&self) -> usize {
        self.aborted.len()
    }
}

/// A shared handle on one partition's [`PartitionTxns`]: the writer updates it under the
/// partition's producer lock, readers take the read lock briefly.
pub type TxnHandle = Arc<parking_lot::RwLock<PartitionTxns>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_transactions_bound_the_last_stable_offset() {
        let mut t = PartitionTxns::default();
        assert_eq!(t.last_stable_offset(10), 10);
        t.begin(7, 4);
        t.begin(8, 6);
        t.begin(7, 9); // already open: keeps 4
        assert_eq!(t.last_stable_offset(10), 4);
        assert_eq!(t.end(7, 10, true), None);
        assert_eq!(t.last_stable_offset(11), 6);
        let aborted = t.end(8, 11, false).expect("an abort is remembered");
        assert_eq!((aborted.first_offset, aborted.last_offset), (6, 11));
        assert_eq!(t.last_stable_offset(12), 12);
    }

    #[test]
    fn aborted_lookups_and_pruning() {
        let mut t = PartitionTxns::default();
        t.begin(1, 0);
        t.end(1, 5, false);
        t.begin(2, 3);
        t.end(2, 8, false);
        t.begin(1, 10);
        t.end(1, 12, true);
        assert_eq!(t.aborted_between(0, 100).len(), 2);
        assert_eq!(t.aborted_between(6, 100).len(), 1);
        assert_eq!(t.aborted_between(0, 3).len(), 1, "txn 2 starts at 3");
        assert!(t.is_aborted(1, 2));
        assert!(t.is_aborted(2, 7));
        assert!(!t.is_aborted(1, 11), "committed");
        assert!(!t.is_aborted(3, 2), "another producer");
        t.forget_before(6);
        assert_eq!(t.aborted_count(), 1);
    }

    #[test]
    fn seeded_aborts_merge_in_marker_order_once_each() {
        let mut t = PartitionTxns::default();
        t.begin(1, 10);
        t.end(1, 12, false);
        let txn = |producer_id, first_offset, last_offset| AbortedTxn {
            producer_id,
            first_offset,
            last_offset,
        };
        // The same abort replayed from its marker (first offset unknown there) and seeded.
        t.end(2, 20, false);
        t.seed_aborted([txn(3, 1, 5), txn(2, 15, 20), txn(1, 10, 12)]);
        assert_eq!(
            t.aborted_between(0, 100),
            vec![txn(3, 1, 5), txn(1, 10, 12), txn(2, 15, 20)]
        );
        t.begin(4, 30);
        t.begin(5, 40);
        t.close_decided(0..35);
        assert_eq!(t.first_open_offset(), Some(40));
    }

    #[test]
    fn a_marker_without_an_open_transaction_covers_only_itself() {
        let mut t = PartitionTxns::default();
        let a = t.end(5, 20, false).expect("abort");
        assert_eq!((a.first_offset, a.last_offset), (20, 20));
        assert!(!t.is_aborted(5, 19));
    }
}
