//! One transactional id's state (Kafka's `TransactionMetadata`) as it is journaled: the
//! producer id and epoch it hands out, the transaction in progress (partitions, groups, the
//! offsets committed in it) and its timestamps.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::broker::PartitionKey;

/// Kafka's transaction states (`PrepareEpochFence` is not one here: a fence is journaled as
/// the `PrepareAbort` it leads to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    pub const ALL: [TxnState; 6] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
    ];

    /// The name Kafka's DescribeTransactions and ListTransactions use.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.name() == name)
    }

    /// A transaction is in progress: its producer may not start another one.
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            TxnState::Ongoing | TxnState::PrepareCommit | TxnState::PrepareAbort
        )
    }

    /// Markers are being written: only their completion moves the state on.
    pub fn is_preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// An offset committed inside a transaction (TxnOffsetCommit): stored in the group's committed
/// offsets when the transaction commits, dropped when it aborts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOffset {
    pub group: String,
    pub partition: PartitionKey,
    pub offset: u64,
    pub leader_epoch: i32,
    pub metadata: String,
    /// Microseconds since the epoch, when TxnOffsetCommit was answered.
    pub commit_timestamp: u64,
}

/// A transactional id's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMetadata {
    pub producer_id: i64,
    /// The producer id before the last rotation (-1: none), for KIP-360 retries.
    pub last_producer_id: i64,
    pub epoch: i16,
    /// The epoch before the last bump (-1: none), for KIP-360 retries.
    pub last_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// The partitions the current transaction wrote to (or may write to).
    pub partitions: BTreeSet<PartitionKey>,
    /// The groups added by AddOffsetsToTxn.
    pub groups: BTreeSet<String>,
    pub pending_offsets: Vec<PendingOffset>,
    /// When the current transaction began, ms since the epoch (-1: none).
    pub start_ms: i64,
    pub last_update_ms: i64,
}

/// Kafka keeps the last epoch for fencing: a producer may use epochs up to `i16::MAX - 2`.
pub fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// What a commit or abort must do once its `Prepare*` state is durable: write a marker into
/// each partition, store (commit) or drop (abort) the pending offsets, then record `Complete*`.
/// Equal plans do the same work, whichever claim they were handed out under.
#[derive(Debug, Clone)]
pub struct EndPlan {
    pub transactional_id: String,
    pub producer_id: i64,
    /// The epoch the markers carry (a fence or a timeout bumps it first).
    pub epoch: i16,
    pub commit: bool,
    pub partitions: Vec<PartitionKey>,
    pub offsets: Vec<PendingOffset>,
    /// The coordinator's claim on finishing this transaction (one finisher at a time).
    pub claim: u64,
}

impl PartialEq for EndPlan {
    fn eq(&self, other: &Self) -> bool {
        (
            &self.transactional_id,
            self.producer_id,
            self.epoch,
            self.commit,
            &self.partitions,
            &self.offsets,
        ) == (
            &other.transactional_id,
            other.producer_id,
            other.epoch,
            other.commit,
            &other.partitions,
            &other.offsets,
        )
    }
}

impl Eq for EndPlan {}
