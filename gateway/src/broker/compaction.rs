//! What the store's log cleaner asks of the broker core: the keys, tombstones, transaction
//! markers and aborted records of stored batches of both formats, how a batch is rebuilt with
//! fewer records, and how far a partition is stable (its last stable offset).
//!
//! - Kafka batches: a record's key is its key, a null value is a tombstone; every record of a
//!   control batch is a transaction marker; the records of a transactional batch whose
//!   transaction the partition's state ([`super::txn_state`]) lists as aborted are aborted
//!   data. A rebuilt batch keeps its header (base offset, offset span, producer, sequence,
//!   timestamps, codec) and the kept records byte for byte ([`kafka_batch::retain_records`]).
//! - Native batches: the key is the `kafka.key` user header and a tombstone is any message
//!   with the `kafka.tombstone` header set to true, whatever its payload (Iggy refuses empty
//!   payloads; [`translate::native_key`]); a rebuilt batch is the kept messages' bytes exactly
//!   (their own offsets and checksums).
//!
//! The cleaner calls this from its own plain thread, so nothing here waits on async work: the
//! transaction state is read through its `parking_lot` lock, and a partition whose state has
//! not been loaded yet is not cleanable (its stable offset is 0) until a load, started here on
//! the broker's runtime without waiting for it, has finished.

use std::collections::HashSet;
use std::sync::{Arc, Weak};

use bytes::{Bytes, BytesMut};
use wharf_log_store::compaction::{BatchFacts, CleanRecord, CodecError, RecordKeys};
use wharf_log_store::{BatchFormat, Partition, PartitionKey, StoredBatch};
use wharf_protocol::message::Messages;

use super::kafka_batch::{self, KafkaBatchError, Retained};
use super::{translate, Broker, Ident};

/// The broker core's [`RecordKeys`], handed to the store's cleaner.
#[derive(Debug)]
pub struct BrokerRecordKeys {
    /// Weak: the store (inside the broker) owns the cleaner that holds this.
    broker: Weak<Broker>,
    /// The broker's runtime, where a partition's transaction state is loaded when the cleaner
    /// first asks about it; `None` outside a runtime (the state then loads on the partition's
    /// first produce or fetch).
    runtime: Option<tokio::runtime::Handle>,
    /// Partitions whose load has been started and has not finished: one load each.
    loading: Arc<parking_lot::Mutex<HashSet<PartitionKey>>>,
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
            runtime: tokio::runtime::Handle::try_current().ok(),
            loading: Arc::default(),
        })
    }
}

impl BrokerRecordKeys {
    /// Starts loading `partition`'s producer and transaction state on the runtime, unless a
    /// load is under way; returns at once.
    fn load_in_background(&self, broker: Arc<Broker>, partition: Arc<Partition>) {
        let Some(runtime) = &self.runtime else {
            return;
        };
        let key = partition.key();
        if !self.loading.lock().insert(key) {
            return;
        }
        let loading = Arc::clone(&self.loading);
        runtime.spawn(async move {
            if let Err(e) = broker.partition_txns(&partition).await {
                super::log_server_failure(
                    &format!("loading the transactions of {key} for the log cleaner"),
                    &e,
                );
            }
            loading.lock().remove(&key);
        });
    }

    /// True when the transactional batch of `producer_id` at `offset` of `key` belongs to an
    /// aborted transaction. Only asked below the stable offset, which is 0 until the state is
    /// loaded, so a missing state is an error, not "not aborted".
    fn aborted(
        &self,
        key: PartitionKey,
        producer_id: i64,
        offset: u64,
    ) -> Result<bool, CodecError> {
        let broker = self
            .broker
            .upgrade()
            .ok_or_else(|| CodecError("the broker is closing".into()))?;
        let txns = broker
            .producers
            .ready_txns(&key)
            .ok_or_else(|| CodecError(format!("the transactions of {key} are not loaded")))?;
        let aborted = txns.read().is_aborted(producer_id, offset);
        Ok(aborted)
    }
}

impl BrokerRecordKeys {
    /// What the cleaner needs of a batch beyond its records, from the batch header alone:
    /// nothing is decompressed or walked (review 17 #5: the producer id is in a Kafka batch's
    /// header; a native batch has none). The header's base offset and offset span must agree
    /// with the store's envelope, as in a scan. What `RecordKeys::facts` answers.
    pub fn header_facts(batch: &StoredBatch) -> Result<BatchFacts, CodecError> {
        match batch.format() {
            BatchFormat::Native => Ok(BatchFacts { producer_id: None }),
            BatchFormat::Kafka => {
                let payload = batch.payload();
                let h =
                    kafka_batch::BatchHeader::parse(&payload).map_err(|e| codec_error(batch, e))?;
                if h.total_len() != payload.len()
                    || u64::try_from(h.base_offset).ok() != Some(batch.base_offset())
                    || i64::from(h.last_offset_delta) + 1 != i64::from(batch.record_count())
                {
                    return Err(CodecError(format!(
                        "Kafka batch at offset {} spanning {} offsets ({} bytes) has a header \
                         for base {}, lastOffsetDelta {}, {} bytes",
                        batch.base_offset(),
                        batch.record_count(),
                        payload.len(),
                        h.base_offset,
                        h.last_offset_delta,
                        h.total_len()
                    )));
                }
                Ok(BatchFacts {
                    producer_id: h.has_producer().then_some(h.producer_id),
                })
            }
        }
    }
}

impl RecordKeys for BrokerRecordKeys {
    /// The producer of a batch from its header alone: the cleaner's pass over the clean
    /// section that only wants producers decompresses nothing.
    fn facts(
        &self,
        _partition: PartitionKey,
        batch: &StoredBatch,
    ) -> Result<BatchFacts, CodecError> {
        Self::header_facts(batch)
    }

    /// Kafka's last stable offset of the partition: its high watermark, or the first offset of
    /// its oldest open transaction. 0 (nothing cleanable) while its transaction state is not
    /// loaded: the load is started then, and a later round finds it.
    fn stable_offset(&self, key: PartitionKey) -> u64 {
        let Some(broker) = self.broker.upgrade() else {
            return 0;
        };
        let Ok(partition) =
            broker
                .store
                .partition(Ident::Id(key.stream), Ident::Id(key.topic), key.partition)
        else {
            return 0;
        };
        // The high watermark before the transaction state (see `txn_state`'s doc).
        let high_watermark = partition.high_watermark();
        match broker.producers.ready_txns(&key) {
            Some(txns) => txns.read().last_stable_offset(high_watermark),
            None => {
                self.load_in_background(broker, partition);
                0
            }
        }
    }

    fn scan(
        &self,
        key: PartitionKey,
        batch: &StoredBatch,
        visit: &mut dyn FnMut(CleanRecord<'_>),
    ) -> Result<BatchFacts, CodecError> {
        match batch.format() {
            BatchFormat::Native => {
                let payload = batch.payload();
                check_native(batch, &payload)?;
                for m in Messages::new(&payload) {
                    let offset = m.offset();
                    visit(match translate::native_key(&m) {
                        (Some(key), tombstone) => CleanRecord::Keyed {
                            offset,
                            key,
                            tombstone,
                        },
                        (None, _) => CleanRecord::Keyless { offset },
                    });
                }
                Ok(BatchFacts { producer_id: None })
            }
            BatchFormat::Kafka => {
                let payload = batch.payload();
                let (h, section) = open_kafka(batch, &payload)?;
                let base = batch.base_offset();
                // An emptied batch has nothing to classify: its state is not asked for.
                let aborted = !h.is_control()
                    && h.is_transactional()
                    && h.records_count > 0
                    && self.aborted(key, h.producer_id, base)?;
                kafka_batch::walk_stored(&h, &section, |r| {
                    // Non-negative and within the span: `walk_stored` checked.
                    let offset = base + r.offset_delta as u64;
                    visit(if h.is_control() {
                        CleanRecord::Control { offset }
                    } else if aborted {
                        CleanRecord::Aborted { offset }
                    } else {
                        match r.key {
                            Some(key) => CleanRecord::Keyed {
                                offset,
                                key,
                                tombstone: r.value.is_none(),
                            },
                            None => CleanRecord::Keyless { offset },
                        }
                    });
                })
                .map_err(|e| codec_error(batch, e))?;
                Ok(BatchFacts {
                    producer_id: h.has_producer().then_some(h.producer_id),
                })
            }
        }
    }

    fn retain(
        &self,
        _key: PartitionKey,
        batch: &StoredBatch,
        keep: &dyn Fn(u64) -> bool,
        keep_empty: bool,
    ) -> Result<Option<Bytes>, CodecError> {
        let payload = batch.payload();
        match batch.format() {
            BatchFormat::Native => {
                check_native(batch, &payload)?;
                let mut kept = BytesMut::new();
                let (mut all, mut any) = (true, false);
                for m in Messages::new(&payload) {
                    if keep(m.offset()) {
                        kept.extend_from_slice(m.bytes());
                        any = true;
                    } else {
                        all = false;
                    }
                }
                Ok(match (any, all) {
                    (false, _) if keep_empty => Some(Bytes::new()),
                    (false, _) => None,
                    (true, true) => Some(payload),
                    (true, false) => Some(kept.freeze()),
                })
            }
            BatchFormat::Kafka => {
                let (h, section) = open_kafka(batch, &payload)?;
                let base = batch.base_offset();
                let retained = kafka_batch::retain_records(&payload, &h, &section, |delta| {
                    keep(base + delta as u64)
                })
                .map_err(|e| codec_error(batch, e))?;
                Ok(match retained {
                    Retained::All => Some(payload),
                    Retained::Some(rebuilt) => Some(rebuilt),
                    Retained::Nothing if keep_empty => Some(
                        kafka_batch::empty_batch_like(&payload)
                            .map_err(|e| codec_error(batch, e))?,
                    ),
                    Retained::Nothing => None,
                })
            }
        }
    }
}

/// Opens a stored Kafka batch, checking that its header agrees with the store's envelope
/// (base offset, offsets spanned): what the cleaner's map and the rebuilt batch rely on.
fn open_kafka(
    batch: &StoredBatch,
    payload: &[u8],
) -> Result<(kafka_batch::BatchHeader, Bytes), CodecError> {
    let (h, section) = kafka_batch::open_stored(payload).map_err(|e| codec_error(batch, e))?;
    let span = i64::from(h.last_offset_delta) + 1;
    if u64::try_from(h.base_offset).ok() != Some(batch.base_offset())
        || span != i64::from(batch.record_count())
    {
        return Err(CodecError(format!(
            "Kafka batch at offset {} spanning {} offsets says base {} and lastOffsetDelta {}",
            batch.base_offset(),
            batch.record_count(),
            h.base_offset,
            h.last_offset_delta
        )));
    }
    Ok((h, section))
}

/// Checks that a stored native batch is whole messages back to back whose offsets increase
/// within the envelope's span, before any of it is visited or kept.
fn check_native(batch: &StoredBatch, payload: &[u8]) -> Result<(), CodecError> {
    let base = batch.base_offset();
    let end = base + u64::from(batch.record_count());
    let mut walked = 0usize;
    let mut next = base;
    for m in Messages::new(payload) {
        let offset = m.offset();
        if offset < next || offset >= end {
            return Err(CodecError(format!(
                "native message at offset {offset} outside {next}..{end} in the batch at {base}"
            )));
        }
        next = offset + 1;
        walked += m.bytes().len();
    }
    if walked != payload.len() {
        return Err(CodecError(format!(
            "native batch at offset {base} has {} bytes after its last whole message",
            payload.len() - walked
        )));
    }
    Ok(())
}

fn codec_error(batch: &StoredBatch, e: KafkaBatchError) -> CodecError {
    CodecError(format!(
        "Kafka batch at offset {}: {e}",
        batch.base_offset()
    ))
}

#[cfg(test)]
#[path = "compaction_tests.rs"]
mod tests;
