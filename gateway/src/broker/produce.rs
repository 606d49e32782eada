//! Produce, for both doors: a native send (partition choice, message ids, one append) and a
//! Kafka produce (batch checks, idempotent producers' sequence rules, transactional batches
//! and the transaction markers the coordinator has written, appends). Every partition
//! of a Kafka request is appended concurrently, so partitions of an `fsync` topic share one
//! group-commit round instead of paying one sync after another.
//!
//! A compacted topic (`cleanup.policy` with `compact`) takes only records with a key, on both
//! doors ([`KeylessRecords`]): Kafka's rule, which compaction needs (a keyless record has no
//! latest value to keep). Topics that are not compacted never pay for the check.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use wharf_log_store::{AppendResult, NewBatch, Partition};
use wharf_protocol::message::{Messages, ID_AT};
use wharf_protocol::{partition_for_key, Partitioning};

use super::kafka_batch::{self, BatchHeader, Codec, KafkaBatchError};
use super::producers::SequenceCheck;
use super::txn_state::TxnHandle;
use super::{
    Broker, BrokerError, Ident, PartitionKey, SequenceError, StoreError, TimestampType, TopicInfo,
};

/// A partition's part of a Kafka produce request.
#[derive(Debug, Clone)]
pub struct KafkaPartitionWrite {
    pub index: i32,
    pub records: Option<Bytes>,
}

/// A topic's part of a Kafka produce request.
#[derive(Debug, Clone)]
pub struct KafkaTopicWrite {
    pub name: String,
    pub partitions: Vec<KafkaPartitionWrite>,
}

/// What an acknowledged Kafka write reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    pub base_offset: u64,
    /// The broker's append time in ms, when the topic stamps log-append time.
    pub log_append_time_ms: Option<i64>,
    pub log_start_offset: u64,
}

/// Most keyless records a refusal lists one by one (the count says how many there were): a
/// compressed batch may expand to millions of records, and the answer stays small.
pub const MAX_RECORD_ERRORS: usize = 1000;

/// Records without a key sent to a compacted topic, refused whole (Kafka's `LogValidator`:
/// INVALID_RECORD with one record error per keyless record). For a Kafka produce, the indexes
/// are of records in the first batch that has keyless ones; for a native send, of messages
/// in the send. A native message's key is its `kafka.key` user header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeylessRecords {
    /// The partition as Kafka names it in the message: `<topic>-<partition>`.
    pub partition: String,
    /// Index of each keyless record (at most [`MAX_RECORD_ERRORS`] of them).
    pub indexes: Vec<u32>,
    /// How many keyless records there were.
    pub total: usize,
}

impl KeylessRecords {
    /// What Kafka says of each keyless record.
    pub fn record_message(&self) -> String {
        format!(
            "Compacted topic cannot accept message without key in topic partition {}.",
            self.partition
        )
    }
}

impl std::fmt::Display for KeylessRecords {
    /// Kafka's `InvalidRecordException` message for record errors.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let message = self.record_message();
        let first: Vec<String> = self
            .indexes
            .iter()
            .take(3)
            .map(|i| format!("RecordError(batchIndex={i}, message='{message}')"))
            .collect();
        write!(
            f,
            "One or more records have been rejected due to {} record errors in total, and only \
             showing the first three errors at most: [{}]",
            self.total,
            first.join(", ")
        )
    }
}

/// Refuses a native send to a compacted topic whose messages lack a key (a `kafka.key` user
/// header), listing the indexes of those messages.
fn keyless_native(messages: &[u8], partition: String) -> Result<(), BrokerError> {
    let mut refusal = KeylessRecords {
        partition,
        indexes: Vec::new(),
        total: 0,
    };
    for (i, m) in Messages::new(messages).enumerate() {
        if super::translate::native_key(&m).0.is_none() {
            refusal.total += 1;
            if refusal.indexes.len() < MAX_RECORD_ERRORS {
                refusal.indexes.push(i as u32);
            }
        }
    }
    match refusal.total {
        0 => Ok(()),
        _ => Err(BrokerError::KeylessRecords(refusal)),
    }
}

/// The keyless records of the first batch of a Kafka produce that has any (decompressed when
/// need be: the batches were checked by [`check_batches`]). The walk also refuses offset
/// deltas that do not run 0, 1, 2, ... ([`kafka_batch::walk_produced`]): the only place a
/// compressed batch is opened on produce, so its deltas are checked here, for compacted topics.
fn keyless_kafka(checked: &[(BatchHeader, Bytes)], partition: String) -> Result<(), BrokerError> {
    for (h, b) in checked {
        let section = kafka_batch::records_section(b)?;
        let mut refusal = KeylessRecords {
            partition: String::new(),
            indexes: Vec::new(),
            total: 0,
        };
        let mut index = 0u32;
        kafka_batch::walk_produced(&section, h.records_count, |r| {
            if r.key.is_none() {
                refusal.total += 1;
                if refusal.indexes.len() < MAX_RECORD_ERRORS {
                    refusal.indexes.push(index);
                }
            }
            index += 1;
        })?;
        if refusal.total > 0 {
            refusal.partition = partition;
            return Err(BrokerError::KeylessRecords(refusal));
        }
    }
    Ok(())
}

/// How many produce requests may decompress batches for the keyless check at once, unless
/// the server config says otherwise (`[kafka] max_inflight_decompressions`): with at most
/// [`kafka_batch::MAX_DECOMPRESSED`] (256 MiB) per batch opened, 2 hold at most 512 MiB.
pub const DEFAULT_MAX_INFLIGHT_DECOMPRESSIONS: usize = 2;

/// A compacted topic's check of a Kafka produce's batches ([`keyless_kafka`]), off the
/// runtime's workers when a batch has to be decompressed; hands the batches back. A request
/// that has to decompress waits for one of `decompressions`' permits first and holds it while
/// it does, so at most that many requests hold decompressed batches at once, however many
/// connections send compressed batches to compacted topics.
async fn refuse_keyless(
    checked: Vec<(BatchHeader, Bytes)>,
    partition: String,
    decompressions: &Arc<tokio::sync::Semaphore>,
) -> Result<Vec<(BatchHeader, Bytes)>, BrokerError> {
    if checked.iter().all(|(h, _)| h.codec() == Ok(Codec::None)) {
        keyless_kafka(&checked, partition)?;
        return Ok(checked);
    }
    let permit = Arc::clone(decompressions)
        .acquire_owned()
        .await
        .map_err(|e| BrokerError::Internal(format!("decompression permits closed: {e}")))?;
    tokio::task::spawn_blocking(move || {
        let checked = keyless_kafka(&checked, partition).map(|()| checked);
        drop(permit);
        checked
    })
    .await
    .map_err(|e| BrokerError::Internal(format!("keyless record check failed: {e}")))?
}

/// A topic's batches rebuilt with its `compression.type` where their codec differs (Kafka's
/// `LogValidator`: a batch keeps its bytes only when its codec is the topic's, or the topic
/// keeps the producer's), off the runtime's workers. Like the keyless check, the request holds
/// one of `permits` while it decompresses and compresses; unlike it, the permit is handed back
/// with the rebuilt batch and kept until the batch is appended, so the rebuilt bytes are
/// counted by the permits too. What a permit covers is bounded: a partition's rebuilt records
/// are one batch (Kafka's `LogValidator` takes one v2 batch per partition: INVALID_RECORD
/// past it) of at most `max_batch` bytes, the topic's `max.message.bytes` (Kafka re-validates
/// the size after recompressing: MESSAGE_TOO_LARGE), checked while decompressing for an
/// uncompressed target ([`kafka_batch::recompress_within`]).
async fn recompress(
    checked: Vec<(BatchHeader, Bytes)>,
    target: super::topic_config::TargetCompression,
    max_batch: usize,
    permits: &Arc<tokio::sync::Semaphore>,
) -> Result<
    (
        Vec<(BatchHeader, Bytes)>,
        Option<tokio::sync::OwnedSemaphorePermit>,
    ),
    BrokerError,
> {
    let Some(codec) = target.codec else {
        return Ok((checked, None));
    };
    if !checked
        .iter()
        .any(|(h, _)| h.codec().is_ok_and(|c| target.recompresses(c)))
    {
        return Ok((checked, None));
    }
    if checked.len() > 1 {
        return Err(KafkaBatchError::MoreThanOneBatch(checked.len()).into());
    }
    let permit = Arc::clone(permits)
        .acquire_owned()
        .await
        .map_err(|e| BrokerError::Internal(format!("decompression permits closed: {e}")))?;
    let rebuilt = tokio::task::spawn_blocking(move || {
        checked
            .into_iter()
            .map(|(h, b)| {
                if !target.recompresses(h.codec()?) {
                    return Ok((h, b));
                }
                let b = kafka_batch::recompress_within(&b, codec, target.level, max_batch)?;
                Ok((BatchHeader::parse(&b)?, b))
            })
            .collect::<Result<Vec<_>, KafkaBatchError>>()
    })
    .await
    .map_err(|e| BrokerError::Internal(format!("recompression failed: {e}")))?;
    Ok((rebuilt?, Some(permit)))
}

/// Random UUIDv4 message ids, as the u128 Iggy stores them (the UUID's bytes read
/// little-endian), as Iggy 0.8 gives messages sent with id 0 (`Uuid::new_v4().to_u128_le()`).
/// One seed from the thread's cryptographic generator per send, then a SplitMix64 stream per
/// half: the 122 random bits of each id come from a bijective mix of the seed and a counter,
/// so the ids of one send are distinct and the ids of different sends are as unlikely to meet
/// as independent UUIDv4s, at a few nanoseconds an id instead of a generator call each.
struct MessageIds {
    low: u64,
    high: u64,
}

impl MessageIds {
    fn new() -> MessageIds {
        let [low, high]: [u64; 2] = rand::random();
        MessageIds { low, high }
    }

    fn next_id(&mut self) -> u128 {
        const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
        self.low = self.low.wrapping_add(GOLDEN);
        self.high = self.high.wrapping_add(GOLDEN);
        let id = u128::from(splitmix64(self.low)) | (u128::from(splitmix64(self.high)) << 64);
        let mut b = id.to_le_bytes();
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        u128::from_le_bytes(b)
    }
}

/// SplitMix64's output function: a bijection of u64 that mixes every input bit into every
/// output bit.
fn splitmix64(x: u64) -> u64 {
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Gives every message with id 0 a random one, in place.
fn assign_ids(blob: &mut BytesMut) {
    // Walks the (already validated) headers in place: no per-request allocation.
    let mut ids: Option<MessageIds> = None;
    let mut at = 0;
    while let Some(m) = Messages::new(&blob[at..]).next() {
        let len = m.bytes().len();
        let id = &mut blob[at + ID_AT..at + ID_AT + 16];
        if id.iter().all(|&b| b == 0) {
            let next = ids.get_or_insert_with(MessageIds::new).next_id();
            id.copy_from_slice(&next.to_le_bytes());
        }
        at += len;
    }
}

type Append = Pin<Box<dyn Future<Output = Result<AppendResult, StoreError>> + Send>>;

impl Broker {
    /// The partition a balanced send goes to: the topic's partitions in turn.
    fn next_balanced(&self, stream: u32, topic: u32, partitions: u32) -> u32 {
        let mut counters = self.balanced.lock();
        let c = counters.entry((stream, topic)).or_insert(0);
        let p = *c % partitions.max(1);
        *c = c.wrapping_add(1);
        p
    }

    /// A native send: validated messages (`count` of them) appended as one batch to the
    /// partition `partitioning` picks; messages without an id get a random one.
    pub async fn send_messages(
        &self,
        topic: &TopicInfo,
        partitioning: &Partitioning,
        mut messages: BytesMut,
    ) -> Result<AppendResult, BrokerError> {
        if topic.partitions == 0 {
            return Err(StoreError::PartitionNotFound {
                topic: topic.name.clone(),
                partition: 0,
                count: 0,
            }
            .into());
        }
        let partition_id = match partitioning {
            Partitioning::Balanced => {
                self.next_balanced(topic.stream_id, topic.id, topic.partitions)
            }
            Partitioning::PartitionId(p) => *p,
            Partitioning::MessagesKey(key) => partition_for_key(key, topic.partitions),
        };
        let partition = self.store.partition(
            Ident::Id(topic.stream_id),
            Ident::Id(topic.id),
            partition_id,
        )?;
        if topic.settings.cleanup_policy.compact {
            keyless_native(&messages, format!("{}-{partition_id}", topic.name))?;
        }
        assign_ids(&mut messages);
        let batch = NewBatch::native(messages).map_err(StoreError::from)?;
        let (bytes, count) = (batch.payload_len() as u64, u64::from(batch.record_count()));
        let appended = partition.append(batch).await?;
        self.metrics
            .topic_in(topic.stream_id, topic.id, bytes, count);
        Ok(appended)
    }

    /// A Kafka produce: each topic's partitions in request order, each with its outcome. All
    /// partitions are appended concurrently; a partition's own batches keep their order.
    /// `allow_zstd` is false for requests older than Produce v7. Transactional batches are
    /// verified against the request's `transactional_id` (KIP-890 part 1).
    pub async fn produce_kafka(
        &self,
        transactional_id: Option<&str>,
        topics: Vec<KafkaTopicWrite>,
        allow_zstd: bool,
    ) -> Vec<Vec<Result<Produced, BrokerError>>> {
        let mut shape = Vec::with_capacity(topics.len());
        let mut work = Vec::new();
        for t in topics {
            shape.push(t.partitions.len());
            // Looked up per partition: an in-memory read, and each answer owns its error.
            for p in t.partitions {
                work.push(self.produce_partition(transactional_id, t.name.clone(), p, allow_zstd));
            }
        }
        let mut results = futures_util::future::join_all(work).await.into_iter();
        shape
            .into_iter()
            .map(|n| results.by_ref().take(n).collect())
            .collect()
    }

    async fn produce_partition(
        &self,
        transactional_id: Option<&str>,
        topic: String,
        write: KafkaPartitionWrite,
        allow_zstd: bool,
    ) -> Result<Produced, BrokerError> {
        let topic_name = topic;
        let topic = self.kafka_topic(&topic_name)?;
        let index = u32::try_from(write.index).map_err(|_| StoreError::PartitionNotFound {
            topic: topic.name.clone(),
            partition: u32::MAX,
            count: topic.partitions,
        })?;
        let partition =
            self.store
                .partition(Ident::Id(topic.stream_id), Ident::Id(topic.id), index)?;
        let checked = check_batches(&write.records.unwrap_or_default(), allow_zstd)?;
        // What the client sent, counted once stored: record batch bytes and records.
        let (bytes, records) = checked.iter().fold((0u64, 0u64), |(b, r), (h, batch)| {
            (
                b + batch.len() as u64,
                r + u64::try_from(h.records_count).unwrap_or(0),
            )
        });
        let checked = if topic.settings.cleanup_policy.compact {
            refuse_keyless(
                checked,
                format!("{topic_name}-{index}"),
                &self.decompressions,
            )
            .await?
        } else {
            checked
        };
        let max_batch = topic
            .settings
            .max_batch_bytes
            .unwrap_or(self.store.config().default_max_batch_bytes);
        // Held until the rebuilt batch is appended (dropped at the end of this call).
        let (checked, _rebuilt) = recompress(
            checked,
            self.target_compression(&topic),
            usize::try_from(max_batch).unwrap_or(usize::MAX),
            &self.decompressions,
        )
        .await?;
        let log_append_time = topic.settings.timestamp_type == TimestampType::LogAppendTime;
        let first = if checked.iter().any(|(h, _)| h.has_producer()) {
            let verify = |producer_id, producer_epoch, key| match transactional_id {
                Some(id) => self
                    .transactions
                    .verify_produce(id, producer_id, producer_epoch, key),
                // Transactional records without a transactional id: no transaction of the
                // producer's can be verified (the door refuses such requests before this).
                None => Err(BrokerError::TxnProduce(
                    super::transactions::TxnError::InvalidProducerIdMapping(producer_id),
                )),
            };
            self.append_idempotent(&partition, checked, &verify).await?
        } else {
            // Queue every batch now (so they are stored in request order), then wait.
            let mut appends: Vec<Append> = Vec::with_capacity(checked.len());
            for (_, b) in checked {
                let nb = NewBatch::kafka_crc_checked(b).map_err(StoreError::from)?;
                appends.push(Box::pin(partition.submit(nb)));
            }
            let mut first: Option<AppendResult> = None;
            let mut error: Option<StoreError> = None;
            for a in appends {
                match a.await {
                    Ok(res) => {
                        first.get_or_insert(res);
                    }
                    Err(e) => {
                        error.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = error {
                return Err(e.into());
            }
            first.ok_or(KafkaBatchError::Empty)?
        };
        self.metrics
            .topic_in(topic.stream_id, topic.id, bytes, records);
        Ok(Produced {
            base_offset: first.base_offset,
            log_append_time_ms: log_append_time.then_some((first.append_timestamp / 1000) as i64),
            log_start_offset: partition.log_start_offset(),
        })
    }

    /// Appends an idempotent or transactional producer's batches one by one under the
    /// partition's producer lock: a duplicate answers with the offset it got first, a gap or
    /// an old epoch is refused. A transactional batch that opens the producer's transaction
    /// here must belong to its ongoing transaction holding this partition (KIP-890 part 1:
    /// `verify`, the coordinator's word, asked under the lock so no marker slips between the
    /// answer and the append); later batches of a transaction open here are checked by the
    /// partition's own state (open for this producer, same epoch), as Kafka verifies only a
    /// transaction's first batch per partition. The opening batch registers the transaction
    /// open *before* it is queued, at the high watermark (no later than where the batch
    /// lands), so no reader's last stable offset passes it; moved to its real offset once
    /// stored. It is forgotten only when the store refused the batch before writing anything
    /// (too large, partition closed): after any later failure the bytes may be in the log, so
    /// the transaction stays open until its marker covers them.
    async fn append_idempotent(
        &self,
        partition: &Arc<Partition>,
        checked: Vec<(BatchHeader, Bytes)>,
        verify: &(dyn Fn(i64, i16, PartitionKey) -> Result<(), BrokerError> + Sync),
    ) -> Result<AppendResult, BrokerError> {
        let mut state = self.producers.partition(partition).await?;
        let txns = state.txns();
        let mut first: Option<AppendResult> = None;
        for (h, b) in checked {
            if !h.has_producer() {
                // A batch without a producer among idempotent ones: no sequence to follow.
                let nb = NewBatch::kafka_crc_checked(b).map_err(StoreError::from)?;
                let res = partition.submit(nb).await?;
                first.get_or_insert(res);
                continue;
            }
            // Open here at the batch's epoch: the marker that would have closed it has not
            // been written, so the coordinator's transaction is still the one verified.
            let opens = h.is_transactional()
                && !(txns.read().is_open(h.producer_id)
                    && state.epoch_of(h.producer_id) == Some(h.producer_epoch));
            if opens {
                verify(h.producer_id, h.producer_epoch, partition.key())?;
            }
            let res = match state.check(&h) {
                SequenceCheck::Duplicate { base_offset } => AppendResult {
                    base_offset,
                    last_offset: base_offset + h.last_offset_delta as u64,
                    append_timestamp: 0,
                },
                SequenceCheck::Append => {
                    state.check_txn_state(&h)?;
                    let nb = NewBatch::kafka_crc_checked(b).map_err(StoreError::from)?;
                    let opens = opens && !txns.read().is_open(h.producer_id);
                    if opens {
                        txns.write()
                            .begin(h.producer_id, partition.high_watermark());
                    }
                    let queued = match partition.try_submit(nb) {
                        Ok(queued) => queued,
                        Err(e) => {
                            // Refused before anything was written: nothing to cover.
                            if opens {
                                txns.write().forget_open(h.producer_id);
                            }
                            return Err(e.into());
                        }
                    };
                    let res = queued.await?;
                    if opens {
                        txns.write()
                            .settle_first_offset(h.producer_id, res.base_offset);
                    }
                    state.record(&h, res.base_offset);
                    res
                }
                SequenceCheck::TooOld => {
                    return Err(SequenceError::Duplicate(describe_sequence(&h)).into())
                }
                SequenceCheck::OutOfOrder => {
                    return Err(SequenceError::OutOfOrder(describe_sequence(&h)).into())
                }
                SequenceCheck::Fenced => {
                    return Err(SequenceError::Fenced(format!(
                        "producer {} epoch {}",
                        h.producer_id, h.producer_epoch
                    ))
                    .into())
                }
            };
            first.get_or_insert(res);
        }
        Ok(first.ok_or(KafkaBatchError::Empty)?)
    }

    /// Writes a transaction marker (a Kafka control batch, commit or abort, of `producer_id`
    /// at `producer_epoch`, coordinator epoch 0: one node) into `partition` as Kafka writes
    /// it, durable as the topic's batches are, then closes the producer's transaction there
    /// and moves its epoch to the marker's (Kafka's `appendEndTxnMarker`). Returns the
    /// marker's offset. A marker older than the producer's epoch is refused
    /// (INVALID_PRODUCER_EPOCH); a partition that no longer exists fails with the store's
    /// `StreamNotFound`/`TopicNotFound`/`PartitionNotFound`. Writing a marker again (after a
    /// restart) is harmless: it closes nothing and covers only itself.
    pub(crate) async fn write_txn_marker(
        &self,
        key: PartitionKey,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Result<u64, BrokerError> {
        let partition =
            self.store
                .partition(Ident::Id(key.stream), Ident::Id(key.topic), key.partition)?;
        // The producer lock orders the marker after every batch verified before it.
        let mut state = self.producers.partition(&partition).await?;
        state.check_marker(producer_id, producer_epoch)?;
        let now_ms = i64::try_from(super::now_us() / 1000).unwrap_or(i64::MAX);
        let marker = kafka_batch::encode_txn_marker(producer_id, producer_epoch, commit, 0, now_ms);
        let nb = NewBatch::kafka(marker).map_err(StoreError::from)?;
        let res = partition.submit(nb).await?;
        state.record_marker(producer_id, producer_epoch, res.base_offset, commit);
        state
            .txns()
            .write()
            .forget_before(partition.log_start_offset());
        Ok(res.base_offset)
    }

    /// The transactions of `partition` (open ones bound its last stable offset, aborted ones
    /// are skipped by `read_committed` readers), loaded and replayed from the log on first
    /// use; after that, kept current by the writers and returned without waiting for an
    /// append in flight. Read the partition's high watermark *before* reading this state.
    pub(crate) async fn partition_txns(
        &self,
        partition: &Arc<Partition>,
    ) -> Result<TxnHandle, BrokerError> {
        if let Some(txns) = self.producers.ready_txns(&partition.key()) {
            return Ok(txns);
        }
        Ok(self.producers.partition(partition).await?.txns())
    }

    /// A fresh producer id for an idempotent Kafka producer (never handed out before).
    pub async fn next_producer_id(&self) -> Result<i64, BrokerError> {
        let producers = Arc::clone(&self.producers);
        tokio::task::spawn_blocking(move || producers.next_producer_id())
            .await
            .unwrap_or_else(|e| Err(BrokerError::Internal(e.to_string())))
    }
}

/// Splits and checks a partition's record batches (magic, CRC, codec, counts).
fn check_batches(
    records: &Bytes,
    allow_zstd: bool,
) -> Result<Vec<(BatchHeader, Bytes)>, BrokerError> {
    let batches = kafka_batch::split(records)?;
    if batches.is_empty() {
        return Err(KafkaBatchError::Empty.into());
    }
    let mut checked = Vec::with_capacity(batches.len());
    for b in batches {
        let h = kafka_batch::validate(&b)?;
        if h.codec() == Ok(Codec::Zstd) && !allow_zstd {
            return Err(BrokerError::ZstdNeedsNewerProduce);
        }
        checked.push((h, b));
    }
    Ok(checked)
}

fn describe_sequence(h: &BatchHeader) -> String {
    format!(
        "producer {} epoch {} sequence {}..={}",
        h.producer_id,
        h.producer_epoch,
        h.base_sequence,
        h.last_sequence()
    )
}

#[cfg(test)]
#[path = "produce_tests.rs"]
mod txn_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_protocol::message::HEADER_LEN;

    /// Bound: a compressed batch of 5,000 keyless records (it could expand to millions) is
    /// refused with at most [`MAX_RECORD_ERRORS`] record errors and the true count, in Kafka's
    /// words.
    #[test]
    fn keyless_refusals_list_a_bounded_number_of_records_in_kafkas_words() {
        use super::kafka_batch::{compress, encode_batch, NewRecord};
        let records: Vec<NewRecord<'_>> = (0..5_000)
            .map(|i| NewRecord {
                timestamp_ms: i,
                key: None,
                value: Some(b"v"),
                headers: Vec::new(),
            })
            .collect();
        let plain = encode_batch(0, &records);
        let body = compress(Codec::Zstd, &plain[kafka_batch::HEADER_LEN..], false).unwrap();
        let mut b = plain[..kafka_batch::HEADER_LEN].to_vec();
        b.extend_from_slice(&body);
        let len = (b.len() - 12) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        b[21..23].copy_from_slice(&4i16.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        let checked = check_batches(&Bytes::from(b), true).unwrap();
        let Err(BrokerError::KeylessRecords(k)) = keyless_kafka(&checked, "t-0".into()) else {
            panic!("keyless records accepted");
        };
        assert_eq!((k.indexes.len(), k.total), (MAX_RECORD_ERRORS, 5_000));
        assert_eq!(k.indexes[..3], [0, 1, 2]);
        let each = "Compacted topic cannot accept message without key in topic partition t-0.";
        assert_eq!(k.record_message(), each);
        assert_eq!(
            k.to_string(),
            format!(
                "One or more records have been rejected due to 5000 record errors in total, and \
                 only showing the first three errors at most: [RecordError(batchIndex=0, \
                 message='{each}'), RecordError(batchIndex=1, message='{each}'), \
                 RecordError(batchIndex=2, message='{each}')]"
            )
        );
        // Keyed records pass; so does a native send whose messages all have `kafka.key`.
        let keyed = encode_batch(
            0,
            &[NewRecord {
                timestamp_ms: 0,
                key: Some(b"k"),
                value: None,
                headers: Vec::new(),
            }],
        );
        assert!(keyless_kafka(&check_batches(&keyed, true).unwrap(), "t-0".into()).is_ok());
        let mut blob = BytesMut::new();
        let mut headers = Vec::new();
        for (kind, v) in [(2u8, &b"kafka.key"[..]), (1, b"k")] {
            headers.push(kind);
            headers.extend_from_slice(&(v.len() as u32).to_le_bytes());
            headers.extend_from_slice(v);
        }
        wharf_protocol::message::encode_message(0, 0, b"a", &headers, &mut blob);
        assert!(keyless_native(&blob, "t-0".into()).is_ok());
        wharf_protocol::message::encode_message(0, 0, b"b", &[], &mut blob);
        let Err(BrokerError::KeylessRecords(k)) = keyless_native(&blob, "t-0".into()) else {
            panic!("a keyless message accepted");
        };
        assert_eq!((k.indexes, k.total), (vec![1], 1));
    }

    /// A batch of `records` compressed with zstd, as a client sends it.
    fn zstd_batch(plain: &[u8]) -> Bytes {
        let body = compress(Codec::Zstd, &plain[kafka_batch::HEADER_LEN..], false).unwrap();
        let mut b = plain[..kafka_batch::HEADER_LEN].to_vec();
        b.extend_from_slice(&body);
        let len = (b.len() - 12) as i32;
        b[8..12].copy_from_slice(&len.to_be_bytes());
        b[21..23].copy_from_slice(&4i16.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        Bytes::from(b)
    }

    use super::kafka_batch::{compress, encode_sparse_batch, NewRecord};

    /// Review 17 #3: a compressed batch to a compacted topic whose offset deltas repeat is
    /// refused (Kafka's INVALID_RECORD), even with every record keyed: stored, it would stop
    /// the partition's compaction for good.
    #[test]
    fn a_compressed_batch_with_repeated_offset_deltas_is_refused() {
        let r = NewRecord {
            timestamp_ms: 0,
            key: Some(b"k"),
            value: Some(b"v"),
            headers: Vec::new(),
        };
        let bad = zstd_batch(&encode_sparse_batch(
            0,
            2,
            [0, 0, 0].iter().map(|&d| (d, &r)),
        ));
        let checked = check_batches(&bad, true).unwrap();
        assert!(matches!(
            keyless_kafka(&checked, "t-0".into()),
            Err(BrokerError::InvalidRecords(KafkaBatchError::OffsetDelta {
                index: 1,
                found: 0
            }))
        ));
        let good = zstd_batch(&encode_sparse_batch(
            0,
            2,
            [0, 1, 2].iter().map(|&d| (d, &r)),
        ));
        assert!(keyless_kafka(&check_batches(&good, true).unwrap(), "t-0".into()).is_ok());
    }

    /// Bound (review 17 #5): at most `max_inflight_decompressions` requests decompress for the
    /// keyless check at once. With the only permit taken, a compressed produce to a compacted
    /// topic waits (paused time: the timeout fires once nothing else can run) and decompresses
    /// nothing; an uncompressed one needs no permit; once the permit is back, it goes through.
    #[tokio::test(start_paused = true)]
    async fn keyless_checks_that_decompress_wait_for_a_permit() {
        let r = NewRecord {
            timestamp_ms: 0,
            key: Some(b"k"),
            value: Some(b"v"),
            headers: Vec::new(),
        };
        let plain = encode_sparse_batch(0, 0, [(0, &r)].into_iter());
        let zipped = zstd_batch(&plain);
        let permits = Arc::new(tokio::sync::Semaphore::new(1));
        let held = Arc::clone(&permits).acquire_owned().await.unwrap();
        let waiting = refuse_keyless(
            check_batches(&zipped, true).unwrap(),
            "t-0".into(),
            &permits,
        );
        let waited = tokio::time::timeout(std::time::Duration::from_secs(60), waiting).await;
        assert!(waited.is_err(), "decompressed without a permit");
        let uncompressed =
            refuse_keyless(check_batches(&plain, true).unwrap(), "t-0".into(), &permits).await;
        assert_eq!(
            uncompressed.unwrap().len(),
            1,
            "no permit needed without compression"
        );
        drop(held);
        let done = refuse_keyless(
            check_batches(&zipped, true).unwrap(),
            "t-0".into(),
            &permits,
        )
        .await
        .unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(permits.available_permits(), 1, "the permit is given back");
    }

    /// Bound: recompression (Kafka's rebuild of a batch whose codec is not the topic's) holds
    /// one of the same `max_inflight_decompressions` permits as the keyless check while it
    /// opens batches. With the only permit taken, a gzip batch for a zstd topic waits (paused
    /// time) and nothing is rebuilt; a batch already in the topic's codec, or a `producer`
    /// topic, needs no permit; once the permit is back, the batch is rebuilt as zstd.
    #[tokio::test(start_paused = true)]
    async fn recompression_waits_for_a_permit_and_rebuilds_only_other_codecs() {
        use super::super::topic_config::TargetCompression;
        let r = NewRecord {
            timestamp_ms: 0,
            key: Some(b"k"),
            value: Some(b"v"),
            headers: Vec::new(),
        };
        let plain = encode_sparse_batch(0, 0, [(0, &r)].into_iter());
        let gzip = kafka_batch::recompress(&plain, Codec::Gzip, None).unwrap();
        let zstd = TargetCompression {
            codec: Some(Codec::Zstd),
            level: Some(3),
        };
        let producer = TargetCompression {
            codec: None,
            level: None,
        };
        let permits = Arc::new(tokio::sync::Semaphore::new(1));
        let held = Arc::clone(&permits).acquire_owned().await.unwrap();
        let waiting = recompress(check_batches(&gzip, true).unwrap(), zstd, 1 << 20, &permits);
        let waited = tokio::time::timeout(std::time::Duration::from_secs(60), waiting).await;
        assert!(waited.is_err(), "recompressed without a permit");
        let (same, _) = recompress(
            check_batches(&zstd_batch(&plain), true).unwrap(),
            zstd,
            1 << 20,
            &permits,
        )
        .await
        .unwrap();
        assert_eq!(same[0].0.codec(), Ok(Codec::Zstd), "kept as sent");
        let (kept, _) = recompress(
            check_batches(&gzip, true).unwrap(),
            producer,
            1 << 20,
            &permits,
        )
        .await
        .unwrap();
        assert_eq!(
            kept[0].1, gzip,
            "a producer topic keeps the batch byte for byte"
        );
        drop(held);
        let (rebuilt, permit) =
            recompress(check_batches(&gzip, true).unwrap(), zstd, 1 << 20, &permits)
                .await
                .unwrap();
        assert_eq!(rebuilt[0].0.codec(), Ok(Codec::Zstd));
        assert_eq!(
            kafka_batch::records_section(&rebuilt[0].1).unwrap(),
            kafka_batch::records_section(&plain).unwrap()
        );
        assert_eq!(
            permits.available_permits(),
            0,
            "the permit stays with the rebuilt batch until it is appended"
        );
        drop(permit);
        assert_eq!(permits.available_permits(), 1, "the permit is given back");
    }

    #[test]
    fn zero_ids_get_uuid_v4s_and_others_stay() {
        let mut blob = BytesMut::new();
        wharf_protocol::message::encode_message(0, 0, b"a", &[], &mut blob);
        wharf_protocol::message::encode_message(7, 0, b"b", &[], &mut blob);
        assign_ids(&mut blob);
        let ids: Vec<u128> = Messages::new(&blob).map(|m| m.id()).collect();
        assert_ne!(ids[0], 0);
        assert_eq!(ids[0].to_le_bytes()[6] >> 4, 4, "version nibble");
        assert_eq!(ids[1], 7);
        assert_eq!(blob.len(), 2 * (HEADER_LEN + 1));
    }

    /// The ids given to a send's messages with id 0 are distinct, nonzero and UUIDv4-shaped
    /// (version 4, RFC 4122 variant), within one send and across sends.
    #[test]
    fn generated_ids_are_distinct_nonzero_uuid_v4s() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..3 {
            let mut blob = BytesMut::new();
            for _ in 0..2_000 {
                wharf_protocol::message::encode_message(0, 0, b"x", &[], &mut blob);
            }
            assign_ids(&mut blob);
            for m in Messages::new(&blob) {
                let id = m.id();
                let b = id.to_le_bytes();
                assert_ne!(id, 0);
                assert_eq!(b[6] >> 4, 4, "version nibble of {id:x}");
                assert_eq!(b[8] >> 6, 0b10, "variant bits of {id:x}");
                assert!(seen.insert(id), "id {id:x} given twice");
            }
        }
        assert_eq!(seen.len(), 6_000);
    }
}
