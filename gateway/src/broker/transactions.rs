//! The Kafka transaction coordinator (SKELETON: filled in by the coordinator work of #16).
//!
//! Owns every transactional id's state (producer id and epoch, the partitions and groups in
//! its current transaction, its timeout), durable in the store and replayed before the Kafka
//! listener opens; decides commits and aborts and has the markers written; verifies that a
//! transactional batch belongs to an ongoing transaction holding its partition (KIP-890 part 1).

use std::path::Path;
use std::time::Duration;

use super::{BrokerError, PartitionKey};

/// Kafka's transaction settings.
#[derive(Debug, Clone)]
pub struct TransactionSettings {
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a producer may ask.
    pub max_timeout: Duration,
    /// `transactional.id.expiration.ms`: an idle transactional id is forgotten after this.
    pub id_expiration: Duration,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    pub abort_timed_out_interval: Duration,
}

impl Default for TransactionSettings {
    fn default() -> Self {
        TransactionSettings {
            max_timeout: Duration::from_millis(900_000),
            id_expiration: Duration::from_millis(604_800_000),
            abort_timed_out_interval: Duration::from_millis(10_000),
        }
    }
}

/// Every transactional id's state.
#[derive(Debug)]
pub struct TransactionCoordinator {
    #[allow(dead_code)]
    settings: TransactionSettings,
}

impl TransactionCoordinator {
    pub fn open(_dir: &Path, settings: TransactionSettings) -> Result<Self, BrokerError> {
        Ok(TransactionCoordinator { settings })
    }

    /// KIP-890 part 1: a transactional batch of (`producer_id`, `producer_epoch`) may be
    /// stored in `partition` only while that producer's transaction is ongoing and holds the
    /// partition. (SKELETON: accepts everything until the coordinator lands.)
    pub fn verify_produce(
        &self,
        _producer_id: i64,
        _producer_epoch: i16,
        _partition: PartitionKey,
    ) -> Result<(), BrokerError> {
        Ok(())
    }
}
