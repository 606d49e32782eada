//! What the store's tiering thread asks of the broker core: how far a partition may be uploaded
//! to the remote tier (its last stable offset, so a segment holding an undecided transaction
//! never leaves local disk) and the aborted transactions whose batches lie in a segment being
//! uploaded (kept in its manifest entry, from which [`super::producers`] takes them back when
//! those offsets are no longer local: `read_committed` readers keep skipping them over
//! offloaded data, also after a restore or a crash). KIP-405 uploads a transaction index with
//! each segment and copies only segments below the last stable offset, for the same reasons.
//!
//! The tiering thread is a plain thread (and tests call its round on async workers), so nothing
//! here waits on async work: a partition whose transaction state is not loaded yet may not be
//! uploaded (limit 0) until a load, started here on the broker's runtime, has finished.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use wharf_log_store::remote::{AbortedRange, TieringHooks};
use wharf_log_store::{Partition, PartitionKey};

use super::Producers;

/// The broker core's [`TieringHooks`], installed on the store when the broker opens.
#[derive(Debug)]
pub(crate) struct BrokerTieringHooks {
    /// The partitions' transaction state (not the broker: the store holds this, and the
    /// broker holds the store).
    producers: Arc<Producers>,
    /// Where a partition's state is loaded when the tiering thread first asks about it;
    /// `None` outside a runtime (the state then loads on the partition's first produce or
    /// fetch).
    runtime: Option<tokio::runtime::Handle>,
    /// Partitions whose load has been started and has not finished: one load each.
    loading: Arc<parking_lot::Mutex<HashSet<PartitionKey>>>,
}

impl BrokerTieringHooks {
    pub fn new(producers: Arc<Producers>) -> BrokerTieringHooks {
        BrokerTieringHooks {
            producers,
            runtime: tokio::runtime::Handle::try_current().ok(),
            loading: Arc::default(),
        }
    }

    /// Starts loading `partition`'s producer and transaction state on the runtime, unless a
    /// load is under way; returns at once.
    fn load_in_background(&self, partition: &Arc<Partition>) {
        let Some(runtime) = &self.runtime else {
            return;
        };
        let key = partition.key();
        if !self.loading.lock().insert(key) {
            return;
        }
        let (producers, loading) = (Arc::clone(&self.producers), Arc::clone(&self.loading));
        let partition = Arc::clone(partition);
        runtime.spawn(async move {
            if let Err(e) = producers.partition(&partition).await {
                super::log_server_failure(
                    &format!("loading the transactions of {key} for the remote tier"),
                    &e,
                );
            }
            loading.lock().remove(&key);
        });
    }
}

impl TieringHooks for BrokerTieringHooks {
    /// Kafka's last stable offset: the high watermark, or the first offset of the oldest open
    /// transaction. 0 while the transaction state is not loaded (the load is started).
    fn upload_limit(&self, partition: &Arc<Partition>) -> u64 {
        // The high watermark before the transaction state (see `txn_state`'s doc).
        let high_watermark = partition.high_watermark();
        match self.producers.ready_txns(&partition.key()) {
            Some(txns) => txns.read().last_stable_offset(high_watermark),
            None => {
                self.load_in_background(partition);
                0
            }
        }
    }

    fn aborted_transactions(
        &self,
        partition: &Arc<Partition>,
        offsets: Range<u64>,
    ) -> Option<Vec<AbortedRange>> {
        let txns = self.producers.ready_txns(&partition.key())?;
        let aborted = txns.read().aborted_between(offsets.start, offsets.end);
        Some(
            aborted
                .into_iter()
                .map(|t| AbortedRange {
                    producer_id: t.producer_id,
                    first_offset: t.first_offset,
                    last_offset: t.last_offset,
                })
                .collect(),
        )
    }
}
