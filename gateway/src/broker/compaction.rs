//! What the store's log cleaner asks of the broker core: the keys, tombstones, transaction
//! markers and aborted records of stored batches of both formats, how a batch is rebuilt with
//! fewer records, and how far a partition is stable (its last stable offset).

use std::sync::{Arc, Weak};

use bytes::Bytes;
use wharf_log_store::compaction::{BatchFacts, CleanRecord, CodecError, RecordKeys};
use wharf_log_store::{PartitionKey, StoredBatch};

use super::Broker;

/// The broker core's [`RecordKeys`], handed to the store's cleaner.
#[derive(Debug)]
pub struct BrokerRecordKeys {
    /// Weak: the store (inside the broker) owns the cleaner that holds this.
    broker: Weak<Broker>,
}

impl Broker {
    /// Starts the store's log cleaner with the broker core's record knowledge.
    pub fn start_cleaner(self: &Arc<Self>) {
        self.store.start_cleaner(self.record_keys());
    }

    /// The record knowledge the store's cleaner needs, for [`wharf_log_store::LogStore::start_cleaner`].
    pub fn record_keys(self: &Arc<Self>) -> Arc<dyn RecordKeys> {
        Arc::new(BrokerRecordKeys {
            broker: Arc::downgrade(self),
        })
    }
}

impl RecordKeys for BrokerRecordKeys {
    fn stable_offset(&self, _partition: PartitionKey) -> u64 {
        // Seam: nothing is cleanable until the broker core answers (filled in by the
        // compaction codec work).
        let _ = self.broker.upgrade();
        0
    }

    fn scan(
        &self,
        _partition: PartitionKey,
        _batch: &StoredBatch,
        _visit: &mut dyn FnMut(CleanRecord<'_>),
    ) -> Result<BatchFacts, CodecError> {
        Err(CodecError("not yet".into()))
    }

    fn retain(
        &self,
        _partition: PartitionKey,
        _batch: &StoredBatch,
        _keep: &dyn Fn(u64) -> bool,
        _keep_empty: bool,
    ) -> Result<Option<Bytes>, CodecError> {
        Err(CodecError("not yet".into()))
    }
}
