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

use std::time::Duration;

use bytes::Bytes;

use crate::batch::StoredBatch;
use crate::partition::PartitionKey;

pub(crate) mod cleaner;
pub(crate) mod map;
pub(crate) mod swap;
pub(crate) mod throttle;

pub(crate) use swap::Checkpoint;

/// What one cleaning of one partition did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartitionCleaning {
    pub partition: PartitionKey,
    /// Dirty share of the sealed bytes when the cleaning began.
    pub dirty_ratio: f64,
    /// Stored bytes read (the key map's pass and the rewrite's).
    pub bytes_read: u64,
    /// Stored bytes of the cleaned segments written.
    pub bytes_written: u64,
    /// Bytes the rewritten segments shrank by.
    pub bytes_removed: u64,
    /// Records dropped (superseded, expired tombstones and markers, keyless, aborted).
    pub records_removed: u64,
    /// Batches left with no record and dropped whole.
    pub batches_removed: u64,
    /// Batches the [`RecordKeys`] could not read, kept as they were (and left out of the key
    /// map) rather than stopping the partition's compaction.
    pub batches_unreadable: u64,
    /// Sealed segments rewritten, and the segments they became.
    pub segments_before: usize,
    pub segments_after: usize,
    /// The checkpoint afterwards: offsets below it have been deduplicated. Below the end of the
    /// cleanable section when the key map filled up (another pass follows).
    pub cleaned_to: u64,
    /// Keys the key map held, and how many it could hold (its memory is
    /// [`CleanerStats::map_bytes`]).
    pub map_keys: usize,
    pub map_capacity: usize,
    pub duration: Duration,
}

/// What [`crate::LogStore::clean_once`] did: one entry per partition cleaned, dirtiest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CleanReport {
    pub cleaned: Vec<PartitionCleaning>,
}

/// The cleaner's totals since the store was opened ([`crate::LogStore::cleaner_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanerStats {
    pub cleanings: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Bytes the log shrank by.
    pub bytes_removed: u64,
    pub records_removed: u64,
    /// Batches kept as they were because the record format could not read them.
    pub batches_unreadable: u64,
    pub time_spent: Duration,
    /// Memory held by the key map: at most `dedupe_buffer_size` (two 24-byte slots at least).
    pub map_bytes: u64,
}

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

    /// What the cleaner needs to know of `batch` without its records (its producer). The
    /// default reads the whole batch through [`RecordKeys::scan`]; a format whose header says
    /// it should read only the header.
    fn facts(
        &self,
        partition: PartitionKey,
        batch: &StoredBatch,
    ) -> Result<BatchFacts, CodecError> {
        self.scan(partition, batch, &mut |_| {})
    }

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
