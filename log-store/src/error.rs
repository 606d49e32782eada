//! The log store's error type: one enum, each variant naming what went wrong and where.

use std::io;
use std::path::PathBuf;

/// Everything the log store can refuse or fail at.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid name: {0}")]
    InvalidName(String),
    #[error("stream {0} not found")]
    StreamNotFound(String),
    #[error("stream '{0}' already exists")]
    StreamExists(String),
    #[error("topic {topic} not found in stream {stream}")]
    TopicNotFound { stream: String, topic: String },
    #[error("topic '{topic}' already exists in stream {stream}")]
    TopicExists { stream: String, topic: String },
    #[error("partition {partition} not found in topic {topic} (it has {count})")]
    PartitionNotFound {
        topic: String,
        partition: u32,
        count: u32,
    },
    #[error("invalid partition count: {0}")]
    InvalidPartitionCount(String),
    #[error("invalid topic setting: {0}")]
    InvalidSetting(String),
    #[error("invalid batch: {0}")]
    InvalidBatch(#[from] BatchError),
    #[error("batch of {size} bytes exceeds the topic's limit of {limit} bytes")]
    BatchTooLarge { size: usize, limit: u32 },
    #[error("partition {0} is closed (deleted, or the store is shutting down)")]
    PartitionClosed(String),
    #[error("partition {0} stopped accepting writes after an I/O failure; restart to recover")]
    PartitionFailed(String),
    #[error("corrupt metadata in {path}: {reason}")]
    CorruptMetadata { path: PathBuf, reason: String },
    /// The remote tier failed (object store unreachable, a corrupt remote object, a bad
    /// remote configuration). Reads of uploaded data fail with it; appends never do.
    #[error(transparent)]
    Remote(#[from] crate::remote::RemoteError),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Why a batch handed to `append` (or found on disk) is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch is empty")]
    Empty,
    #[error("batch holds {0} records; at most u32::MAX - 1 fit one batch")]
    TooManyRecords(u64),
    #[error("message {index} at byte {position}: {reason}")]
    NativeMessage {
        index: u32,
        position: usize,
        reason: &'static str,
    },
    #[error("kafka record batch: {0}")]
    Kafka(&'static str),
    #[error("stored batch envelope: {0}")]
    Envelope(&'static str),
    #[error("stored batch checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Checksum { stored: u32, computed: u32 },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
