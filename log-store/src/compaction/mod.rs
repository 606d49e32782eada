//! Log compaction: the cleaner that keeps, in the sealed segments of a compacted topic's
//! partitions, only the latest record of each key (Kafka's `cleanup.policy=compact`).
//!
//! The store knows no protocol, so what a record's key is, whether it is a tombstone, a
//! transaction marker or aborted data, and how a batch is rebuilt with fewer records are asked
//! of a [`RecordKeys`] that the broker core supplies. The store owns everything else: which
//! partitions and segments are cleaned and when (dirty ratio, compaction lags), the bounded
//! key-to-offset map, the rate limit, writing the cleaned segments and swapping them in
//! crash-safely.
//!
//! Offsets never change: a cleaned batch keeps its base offset and the span of offsets it
//! covered (its envelope's `record_count`), so a compacted log has holes, as in Kafka.

use bytes::Bytes;

use crate::batch::StoredBatch;
use crate::partition::PartitionKey;

/// One record of a batch, as the cleaner sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanRecord<'a> {
    /// A record with a key. `tombstone` when its value is null: it deletes the key, and goes
    /// itself once older than the topic's `delete.retention.ms`.
    Keyed {
        offset: u64,
        key: &'a [u8],
        tombstone: bool,
    },
    /// A record without a key: compaction drops it, as Kafka's cleaner does.
    Keyless { offset: u64 },
    /// A record of an aborted transaction: compaction drops it.
    Aborted { offset: u64 },
    /// A transaction marker (a record of a control batch): kept until older than
    /// `delete.retention.ms`.
    Control { offset: u64 },
}

impl CleanRecord<'_> {
    pub fn offset(&self) -> u64 {
        match *self {
            CleanRecord::Keyed { offset, .. }
            | CleanRecord::Keyless { offset }
            | CleanRecord::Aborted { offset }
            | CleanRecord::Control { offset } => offset,
        }
    }
}

/// What the cleaner needs to know about a batch beyond its records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchFacts {
    /// The idempotent or transactional producer that wrote the batch. The last batch of each
    /// producer in a cleaned range is kept (emptied if need be), so that the producer's
    /// sequence survives compaction, as Kafka does.
    pub producer_id: Option<i64>,
}

/// Why a batch could not be read or rebuilt for compaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(pub String);

/// The record format knowledge the cleaner borrows from the broker core.
pub trait RecordKeys: Send + Sync + 'static {
    /// The offset below which `partition` may be compacted: Kafka's last stable offset, the
    /// first offset of the oldest transaction still open. The cleaner never touches a batch at
    /// or above it. `u64::MAX` when nothing is undecided.
    fn stable_offset(&self, partition: PartitionKey) -> u64;

    /// Calls `visit` for every record of `batch`, in offset order (decompressing if need be).
    fn scan(
        &self,
        partition: PartitionKey,
        batch: &StoredBatch,
        visit: &mut dyn FnMut(CleanRecord<'_>),
    ) -> Result<BatchFacts, CodecError>;

    /// The payload of `batch` rebuilt with only the records whose offsets `keep` accepts, in
    /// the batch's own format and codec, keeping its base offset and offset span. `None` when
    /// no record is kept, unless `keep_empty` (the batch holds a producer's last sequence):
    /// then a batch with no records.
    fn retain(
        &self,
        partition: PartitionKey,
        batch: &StoredBatch,
        keep: &dyn Fn(u64) -> bool,
        keep_empty: bool,
    ) -> Result<Option<Bytes>, CodecError>;
}
