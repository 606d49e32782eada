//! Wharf's append-only log.
//!
//! Streams hold topics, topics hold partitions, partitions hold segments, and segments hold
//! **stored batches**: a checksummed envelope followed by the batch exactly as a client sent it
//! (Iggy 0.8 messages or a Kafka record batch), with only server-owned fields stamped. This crate
//! knows nothing of sockets or protocols beyond the byte layout it must stamp.
//!
//! - [`LogStore`]: the catalog of streams and topics, persisted crash-safely, and the background
//!   syncer and retention.
//! - [`Partition`]: appends (coalesced, single writer), reads of whole batches, timestamp
//!   look-ups and long-poll waits.
//! - [`compaction`]: the log cleaner of compacted topics (`cleanup.policy=compact`): keeps the
//!   latest record of each key in sealed segments, asking the broker's [`compaction::RecordKeys`]
//!   what a record's key is; offsets never change, so a compacted log has holes between
//!   batches and inside them ([`LogStore::start_cleaner`], [`LogStore::clean_once`]).
//! - [`ConsumerOffsets`]: committed consumer and group positions, in a checksummed journal
//!   written with group commit.
//! - [`KeyedJournal`]: a checksummed journal of keyed records, last one wins (the Kafka
//!   transaction coordinator's state).
//! - [`StoreMetrics`]: append-group, `fdatasync` and group-commit histograms and retention
//!   counts, for the operator ([`LogStore::metrics`]).
//! - [`remote`]: the remote tier (KIP-405's tiered storage): sealed segments of topics with
//!   remote storage on are uploaded to an object store with a checksummed manifest per
//!   partition, deleted locally past the local retention, and read back transparently below the
//!   local log start ([`LogStore::restore_from_remote`] rebuilds a lost data directory).
//! - [`Disk`]: the door every file operation of the store goes through, and the seam where tests
//!   watch and fail them ([`FileHook`]).
//! - Segment files are held open by one bounded cache per store (`max_open_files`): any number
//!   of partitions fits a fixed number of descriptors ([`raise_open_files_limit`] for servers).
//!
//! Durability is per topic: [`Durability::Os`] acknowledges after `write` (a killed process loses
//! nothing acknowledged), [`Durability::Fsync`] after `fdatasync` (group commit). Opening a store
//! verifies the tail of every partition and cuts a torn or corrupt tail back to the last whole
//! batch.

mod batch;
pub mod compaction;
mod config;
mod disk;
mod durable_file;
mod error;
mod index;
mod journal;
pub mod metrics;
mod names;
mod offsets;
mod open_files;
mod partition;
pub mod remote;
mod segment;
mod store;
mod writeback;

pub use batch::{
    BatchFormat, Envelope, NewBatch, StoredBatch, ENVELOPE_LEN, NATIVE_MESSAGE_HEADER_LEN,
};
pub use compaction::{CleanReport, CleanerStats, PartitionCleaning};
pub use config::{
    CleanerConfig, CleanupPolicy, Durability, Ratio, StoreConfig, TimestampType, TopicCompression,
    TopicSettings, DEFAULT_PREALLOCATE_BYTES, DEFAULT_WRITEBACK_BYTES,
    LOCAL_RETENTION_BYTES_FOREVER, LOCAL_RETENTION_FOREVER, MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE,
};
pub use disk::{Disk, FileHook, FileOp};
pub use durable_file::{read_durable, write_durable};
pub use error::{BatchError, Result, StoreError};
pub use journal::{
    CompactionMark, JournalContents, KeyedJournal, MAX_JOURNAL_KEY, MAX_JOURNAL_VALUE,
};
pub use metrics::{Histogram, HistogramSnapshot, RemoteMetrics, StoreMetrics};
pub use names::validate_name;
pub use offsets::{CommittedOffset, ConsumerOffsets, OffsetKey, OffsetOwner};
pub use open_files::{open_files_limit, raise_open_files_limit, OpenFilesLimit};
pub use partition::{
    AppendResult, Fill, Partition, PartitionKey, PartitionRepair, PartitionStats, ReadBounds,
    ReadResult,
};
pub use segment::SegmentRepair;
pub use store::{Ident, LogStore, OpenReport, StreamInfo, TopicInfo};
