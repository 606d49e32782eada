//! Idempotent and transactional producers' state per partition: producer ids, per producer
//! and partition its epoch and the last five batches' sequence ranges, so a retried batch is
//! answered with its original offset and a gap is refused; and the partition's transactions
//! ([`PartitionTxns`]: open ones, aborted ones). Kafka's `ProducerStateManager`, in small.
//!
//! Durability works as in Kafka: the state is rebuilt from the log. A snapshot of every
//! partition's state, with the offset it covers, is written now and then and on shutdown; a
//! partition's state is loaded on first use and brought up to date by replaying the Kafka
//! batches stored after the snapshot (after a SIGKILL that is everything since the last one):
//! a transactional batch opens its producer's transaction, a transaction marker (control
//! batch) closes it and moves the producer's epoch. Producer ids are handed out from blocks
//! reserved durably, so none is ever given twice.
//!
//! Once a partition's state has been loaded it is kept current by the writers (every
//! producer's batch and marker is appended under its lock), so readers of the transactions
//! get the handle without waiting for that lock ([`Producers::ready_txns`]), and what the log
//! holds past the last applied batch (native messages, Kafka batches without a producer) is
//! never read again: the state covers the whole log up to the high watermark seen under the
//! lock, and its snapshot says so, so a restart replays only what came after it.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use serde::{Deserialize, Serialize};
use wharf_log_store::{BatchFormat, Partition, PartitionKey};

use super::kafka_batch::{self, add_sequence, BatchHeader, ControlType};
use super::txn_state::{AbortedTxn, PartitionTxns, TxnHandle};
use super::{BrokerError, SequenceError};

/// Batches remembered per producer and partition (Kafka's window).
pub const WINDOW: usize = 5;
const ID_BLOCK: i64 = 1000;
const IDS_FILE: &str = "kafka-producer-ids";
const SNAPSHOT_FILE: &str = "kafka-producers";

/// What to do with an idempotent producer's batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// The next batch in sequence (or the first seen from this producer): store it.
    Append,
    /// A retry of a batch already stored at this base offset: answer success, store nothing.
    Duplicate { base_offset: u64 },
    /// Older than the batches remembered: already stored, offset no longer known.
    TooOld,
    /// A gap or overlap: OUT_OF_ORDER_SEQUENCE_NUMBER.
    OutOfOrder,
    /// An epoch older than the producer's current one: INVALID_PRODUCER_EPOCH.
    Fenced,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct StoredRange {
    first_seq: i32,
    last_seq: i32,
    base_offset: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<StoredRange>,
    /// The newest batch's max timestamp (Kafka's `lastTimestamp`, shown by DescribeProducers);
    /// -1 until a batch is recorded, and in snapshots written before it was kept.
    #[serde(default = "no_value")]
    last_timestamp: i64,
    /// The coordinator epoch of the producer's last transaction marker; -1 before any. Wharf's
    /// one coordinator writes markers with epoch 0.
    #[serde(default = "no_value")]
    coordinator_epoch: i32,
}

impl Default for ProducerEntry {
    fn default() -> ProducerEntry {
        ProducerEntry {
            epoch: 0,
            batches: VecDeque::new(),
            last_timestamp: -1,
            coordinator_epoch: -1,
        }
    }
}

fn no_value<T: From<i8>>() -> T {
    T::from(-1)
}

/// One producer with state on a partition, as DescribeProducers shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub epoch: i16,
    /// The last sequence number of its newest batch; -1 when its epoch has none yet.
    pub last_sequence: i32,
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
    /// The first offset of its open transaction; -1 when none is open.
    pub current_txn_start_offset: i64,
}

/// One partition's producer state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PartitionProducers {
    /// Every Kafka batch below this offset has been applied.
    covered_to: u64,
    producers: HashMap<i64, ProducerEntry>,
    /// The partition's transactions; shared with readers (a clone shares it too). Absent in
    /// snapshots written before transactions existed, when none could have been stored.
    #[serde(default, with = "shared_txns")]
    txns: TxnHandle,
}

/// Serialises the shared transaction state by value.
mod shared_txns {
    use super::{PartitionTxns, TxnHandle};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(t: &TxnHandle, s: S) -> Result<S::Ok, S::Error> {
        t.read().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TxnHandle, D::Error> {
        Ok(TxnHandle::new(parking_lot::RwLock::new(
            PartitionTxns::deserialize(d)?,
        )))
    }
}

impl PartitionProducers {
    pub fn check(&self, h: &BatchHeader) -> SequenceCheck {
        let Some(entry) = self.producers.get(&h.producer_id) else {
            return SequenceCheck::Append;
        };
        if h.producer_epoch < entry.epoch {
            return SequenceCheck::Fenced;
        }
        if h.producer_epoch > entry.epoch {
            // A new epoch starts its sequences again at 0 (KIP-360).
            return if h.base_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::OutOfOrder
            };
        }
        let last_seq = h.last_sequence();
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq)
        {
            return SequenceCheck::Duplicate {
                base_offset: dup.base_offset,
            };
        }
        match (entry.batches.front(), entry.batches.back()) {
            (_, Some(last)) if h.base_sequence == add_sequence(last.last_seq, 1) => {
                SequenceCheck::Append
            }
            (Some(first), _) if h.base_sequence < first.first_seq && last_seq < first.first_seq => {
                SequenceCheck::TooOld
            }
            // Emptied by a marker that moved the epoch: the new epoch starts at 0, as in Kafka.
            (None, None) if h.base_sequence == 0 => SequenceCheck::Append,
            _ => SequenceCheck::OutOfOrder,
        }
    }

    /// Every producer with state on this partition (read-only; for DescribeProducers).
    pub fn active(&self) -> Vec<ActiveProducer> {
        let txns = self.txns.read();
        let open: HashMap<i64, u64> = txns.open_transactions().collect();
        let mut out: Vec<ActiveProducer> = self
            .producers
            .iter()
            .map(|(&producer_id, e)| ActiveProducer {
                producer_id,
                epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                current_txn_start_offset: open
                    .get(&producer_id)
                    .and_then(|&o| i64::try_from(o).ok())
                    .unwrap_or(-1),
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }

    /// The epoch of `producer_id`'s batches here, if it has written any.
    pub fn epoch_of(&self, producer_id: i64) -> Option<i16> {
        self.producers.get(&producer_id).map(|e| e.epoch)
    }

    /// The partition's transactions (the handle readers share).
    pub fn txns(&self) -> TxnHandle {
        TxnHandle::clone(&self.txns)
    }

    /// Kafka's rule for a data batch that passed the sequence check: a producer with a
    /// transaction open here may write only transactional batches (INVALID_TXN_STATE).
    pub fn check_txn_state(&self, h: &BatchHeader) -> Result<(), SequenceError> {
        if !h.is_transactional() && self.txns.read().is_open(h.producer_id) {
            return Err(SequenceError::InvalidTxnState(format!(
                "producer {} has a transaction open and wrote a non-transactional batch",
                h.producer_id
            )));
        }
        Ok(())
    }

    /// Kafka's rule for a transaction marker: its epoch may not be older than the producer's
    /// (INVALID_PRODUCER_EPOCH).
    pub fn check_marker(&self, producer_id: i64, producer_epoch: i16) -> Result<(), SequenceError> {
        match self.producers.get(&producer_id) {
            Some(e) if producer_epoch < e.epoch => Err(SequenceError::Fenced(format!(
                "marker for producer {producer_id} epoch {producer_epoch}, current epoch {}",
                e.epoch
            ))),
            _ => Ok(()),
        }
    }

    /// Applies a stored transaction marker: closes the producer's transaction (an abort is
    /// remembered) and moves its epoch when the marker's is newer (a coordinator abort after a
    /// timeout or fencing bumps it; the new epoch's sequences start again at 0).
    pub fn record_marker(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        marker_offset: u64,
        commit: bool,
    ) {
        let entry = self.producers.entry(producer_id).or_default();
        if producer_epoch > entry.epoch {
            entry.epoch = producer_epoch;
            entry.batches.clear();
        }
        // Wharf's markers all carry coordinator epoch 0 (one node, see `Broker::write_txn_marker`).
        entry.coordinator_epoch = 0;
        self.txns.write().end(producer_id, marker_offset, commit);
        self.covered_to = self.covered_to.max(marker_offset + 1);
    }

    /// Records a stored batch of an idempotent producer.
    pub fn record(&mut self, h: &BatchHeader, base_offset: u64) {
        let entry = self.producers.entry(h.producer_id).or_default();
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(StoredRange {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            base_offset,
        });
        entry.last_timestamp = h.max_timestamp;
        while entry.batches.len() > WINDOW {
            entry.batches.pop_front();
        }
        let last = base_offset + u64::try_from(h.last_offset_delta).unwrap_or(0) + 1;
        self.covered_to = self.covered_to.max(last);
    }

    /// Takes what the remote tier's manifest says about transactions: the aborted ones with
    /// batches in uploaded segments are remembered, and a transaction still open here whose
    /// first batch was uploaded is closed (segments are uploaded only below the last stable
    /// offset, so it was decided; an abort of it is among the seeded ones).
    fn seed_from_remote(&mut self, partition: &Partition) {
        let manifest = partition.remote_manifest();
        let mut txns = self.txns.write();
        for segment in &manifest.segments {
            txns.close_decided(segment.base_offset..segment.next_offset);
        }
        txns.seed_aborted(manifest.segments.iter().flat_map(|segment| {
            segment.aborted.iter().map(|a| AbortedTxn {
                producer_id: a.producer_id,
                first_offset: a.first_offset,
                last_offset: a.last_offset,
            })
        }));
    }

    /// Applies what the log holds from `covered_to` on.
    fn replay(&mut self, partition: &Partition) -> Result<(), BrokerError> {
        let hw = partition.high_watermark();
        if self.covered_to > hw {
            // The partition was purged or re-created: what we knew is about another log. The
            // transactions are emptied in place: readers may hold their handle.
            self.covered_to = 0;
            self.producers.clear();
            *self.txns.write() = PartitionTxns::default();
        }
        // From the local log start: what is only in the remote tier is never downloaded to
        // rebuild producer state (Kafka rebuilds it from the local log and its snapshots).
        // What this state never saw there (a restore, or a snapshot older than a local
        // deletion) comes from the manifest instead: its segments carry their aborted
        // transactions, and none of them holds an undecided one.
        let local_start = partition.local_log_start_offset();
        if self.covered_to < local_start {
            self.seed_from_remote(partition);
        }
        let mut from = self.covered_to.max(local_start);
        while from < hw {
            let read = partition.read(from, 4 << 20)?;
            if read.batches.is_empty() {
                break;
            }
            for b in &read.batches {
                from = b.last_offset() + 1;
                if b.format() != BatchFormat::Kafka {
                    continue;
                }
                let payload = b.payload();
                let Ok(h) = BatchHeader::parse(&payload) else {
                    continue;
                };
                if !h.has_producer() {
                    continue;
                }
                if h.is_control() {
                    match kafka_batch::control_type(&payload) {
                        Some(ControlType::Commit) => self.record_marker(
                            h.producer_id,
                            h.producer_epoch,
                            b.base_offset(),
                            true,
                        ),
                        Some(ControlType::Abort) => self.record_marker(
                            h.producer_id,
                            h.producer_epoch,
                            b.base_offset(),
                            false,
                        ),
                        // Not a transaction marker: nothing a producer's state follows.
                        _ => {}
                    }
                    continue;
                }
                // A batch with no records left was emptied by the log cleaner, which works only
                // below the last stable offset: its transaction was decided, and its marker
                // may be gone, so it opens nothing (it still carries the producer's sequence).
                if h.is_transactional() && h.records_count > 0 {
                    self.txns.write().begin(h.producer_id, b.base_offset());
                }
                self.record(&h, b.base_offset());
            }
        }
        self.covered_to = self.covered_to.max(hw);
        self.txns
            .write()
            .forget_before(partition.log_start_offset());
        Ok(())
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Snapshot {
    partitions: Vec<(PartitionKey, PartitionProducers)>,
}

/// Producer ids and every partition's producer state.
#[derive(Debug)]
pub struct Producers {
    dir: PathBuf,
    /// (next id to hand out, first id not reserved on disk).
    ids: parking_lot::Mutex<(i64, i64)>,
    /// Loaded from the snapshot, waiting for a partition's first use.
    loaded: parking_lot::Mutex<HashMap<PartitionKey, PartitionProducers>>,
    /// Read by every fetch and poll ([`Producers::ready_txns`]), written once per partition.
    live: parking_lot::RwLock<HashMap<PartitionKey, Live>>,
    /// What the last snapshot wrote for partitions in use: written again for one that is busy
    /// producing when the next snapshot is taken.
    written: parking_lot::Mutex<HashMap<PartitionKey, PartitionProducers>>,
    /// Counts (and may hold) the replays running (tests of the bound on loads at once).
    #[cfg(test)]
    pub(crate) replay_probe: Arc<ReplayProbe>,
}

/// The replays of a partition's log running now and the most seen at once; while held, a
/// replay waits at its start (counted), so a test sees how many were started together.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct ReplayProbe {
    /// (held, running, most at once).
    state: parking_lot::Mutex<(bool, usize, usize)>,
    changed: parking_lot::Condvar,
}

#[cfg(test)]
impl ReplayProbe {
    pub(crate) fn hold(&self, held: bool) {
        self.state.lock().0 = held;
        self.changed.notify_all();
    }

    /// (running now, most at once).
    pub(crate) fn counts(&self) -> (usize, usize) {
        let s = self.state.lock();
        (s.1, s.2)
    }

    fn enter(&self) {
        let mut s = self.state.lock();
        s.1 += 1;
        s.2 = s.2.max(s.1);
        while s.0 {
            self.changed.wait(&mut s);
        }
    }

    fn leave(&self) {
        self.state.lock().1 -= 1;
    }
}

/// A partition's state in use.
#[derive(Debug, Clone)]
struct Live {
    state: Arc<tokio::sync::Mutex<PartitionProducers>>,
    /// The same handle as `state`'s, reachable without its lock.
    txns: TxnHandle,
    /// Set once `state` has been replayed up to the log's end: from then on the writers keep
    /// `txns` current, and readers take it without waiting for `state`'s lock.
    replayed: Arc<std::sync::atomic::AtomicBool>,
    /// The partition, for its high watermark when a snapshot is taken.
    partition: Weak<Partition>,
}

impl Producers {
    pub fn open(dir: &Path) -> Result<Producers, BrokerError> {
        let reserved = wharf_log_store::read_durable(&dir.join(IDS_FILE))?
            .and_then(|b| {
                b.get(..8)
                    .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            })
            .unwrap_or(0);
        let snapshot: Snapshot = match wharf_log_store::read_durable(&dir.join(SNAPSHOT_FILE))? {
            Some(doc) => serde_json::from_slice(&doc).map_err(|e| {
                BrokerError::Internal(format!("kafka producer snapshot is unreadable: {e}"))
            })?,
            None => Snapshot::default(),
        };
        Ok(Producers {
            dir: dir.to_path_buf(),
            // Ids of a block reserved before a restart may have been given out: skip it.
            ids: parking_lot::Mutex::new((reserved.max(1), reserved.max(1))),
            loaded: parking_lot::Mutex::new(snapshot.partitions.into_iter().collect()),
            live: parking_lot::RwLock::default(),
            written: parking_lot::Mutex::default(),
            #[cfg(test)]
            replay_probe: Arc::default(),
        })
    }

    /// A producer id never handed out before, on this server or before any restart of it.
    pub fn next_producer_id(&self) -> Result<i64, BrokerError> {
        let mut ids = self.ids.lock();
        if ids.0 >= ids.1 {
            let reserve = ids.1 + ID_BLOCK;
            wharf_log_store::write_durable(&self.dir.join(IDS_FILE), &reserve.to_le_bytes())?;
            ids.1 = reserve;
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }

    /// The producer state of `partition`, loaded and replayed up to its high watermark (once:
    /// after that the writers keep it current, see the module's doc). Hold its lock from the
    /// sequence check until the batch is recorded.
    pub async fn partition(
        &self,
        partition: &Arc<Partition>,
    ) -> Result<tokio::sync::OwnedMutexGuard<PartitionProducers>, BrokerError> {
        let key = partition.key();
        let known = self.live.read().get(&key).cloned();
        let live = match known {
            Some(l) => l,
            None => {
                let mut live = self.live.write();
                match live.get(&key) {
                    Some(l) => l.clone(),
                    None => {
                        // `written` first: a snapshot taken meanwhile finds the entry in one of them.
                        let mut written = self.written.lock();
                        let loaded = self.loaded.lock().remove(&key);
                        if let Some(entry) = &loaded {
                            // Written again by a snapshot taken while the partition is busy.
                            written.insert(key, entry.clone());
                        }
                        drop(written);
                        let loaded = loaded.unwrap_or_default();
                        let l = Live {
                            txns: loaded.txns(),
                            state: Arc::new(tokio::sync::Mutex::new(loaded)),
                            replayed: Arc::default(),
                            partition: Arc::downgrade(partition),
                        };
                        live.insert(key, l.clone());
                        l
                    }
                }
            }
        };
        let mut guard = Arc::clone(&live.state).lock_owned().await;
        if live.replayed.load(Ordering::Acquire) {
            // Every producer's batch and marker is applied under this lock: what lies between
            // the last one and the high watermark has nothing for this state.
            let hw = partition.high_watermark();
            if guard.covered_to <= hw {
                guard.covered_to = hw;
                return Ok(guard);
            }
        }
        // Replaying reads the log: off the runtime's workers.
        let partition = Arc::clone(partition);
        #[cfg(test)]
        let probe = Arc::clone(&self.replay_probe);
        let guard = tokio::task::spawn_blocking(move || {
            #[cfg(test)]
            probe.enter();
            let replayed = guard.replay(&partition);
            #[cfg(test)]
            probe.leave();
            replayed?;
            Ok(guard)
        })
        .await
        .unwrap_or_else(|e| {
            Err(BrokerError::Internal(format!(
                "producer replay failed: {e}"
            )))
        })?;
        live.replayed.store(true, Ordering::Release);
        Ok(guard)
    }

    /// The transactions of a partition whose state has been loaded and replayed (kept current
    /// since by its writers), without waiting for an append in flight; `None` before that.
    pub fn ready_txns(&self, key: &PartitionKey) -> Option<TxnHandle> {
        let live = self.live.read();
        let l = live.get(key)?;
        l.replayed
            .load(Ordering::Acquire)
            .then(|| TxnHandle::clone(&l.txns))
    }

    /// Forgets the state of partitions that no longer exist.
    pub fn forget(&self, keep: impl Fn(&PartitionKey) -> bool) {
        self.live.write().retain(|k, _| keep(k));
        self.loaded.lock().retain(|k, _| keep(k));
        self.written.lock().retain(|k, _| keep(k));
    }

    /// True when the snapshot this was opened from has an entry for `key` (tests).
    #[cfg(test)]
    pub(crate) fn has_snapshot_entry(&self, key: &PartitionKey) -> bool {
        self.loaded.lock().contains_key(key)
    }

    /// Writes every partition's state; a restart replays only what came after.
    pub fn snapshot(&self) -> Result<(), BrokerError> {
        let mut partitions: Vec<(PartitionKey, PartitionProducers)> = self
            .loaded
            .lock()
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        let live: Vec<Live> = self.live.read().values().cloned().collect();
        let mut written = self.written.lock();
        for l in live {
            let Some(p) = l.partition.upgrade() else {
                continue;
            };
            let k = p.key();
            // Busy producing: what the last snapshot wrote (or loaded) still holds: the log
            // after it is replayed on a restart, not the whole log.
            if let Ok(mut s) = l.state.try_lock() {
                // Under the lock a replayed state covers the log up to the high watermark (see
                // `partition`): a restart reads nothing before it.
                let hw = p.high_watermark();
                if l.replayed.load(Ordering::Acquire) && s.covered_to <= hw {
                    s.covered_to = hw;
                }
                written.insert(k, s.clone());
            }
        }
        partitions.extend(written.iter().map(|(k, v)| (*k, v.clone())));
        drop(written);
        let doc = serde_json::to_vec(&Snapshot { partitions })
            .map_err(|e| BrokerError::Internal(e.to_string()))?;
        wharf_log_store::write_durable(&self.dir.join(SNAPSHOT_FILE), &doc)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, n: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 0,
            attributes: 0,
            last_offset_delta: n - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: n,
        }
    }

    #[test]
    fn duplicates_gaps_and_fencing() {
        let mut s = PartitionProducers::default();
        let h0 = header(7, 0, 0, 3);
        assert_eq!(s.check(&h0), SequenceCheck::Append);
        s.record(&h0, 100);
        assert_eq!(s.check(&h0), SequenceCheck::Duplicate { base_offset: 100 });
        assert_eq!(s.check(&header(7, 0, 4, 1)), SequenceCheck::OutOfOrder);
        let h1 = header(7, 0, 3, 2);
        assert_eq!(s.check(&h1), SequenceCheck::Append);
        s.record(&h1, 103);
        for i in 0..WINDOW as i32 {
            let h = header(7, 0, 5 + i, 1);
            s.record(&h, 105 + i as u64);
        }
        assert_eq!(s.check(&h0), SequenceCheck::TooOld);
        assert_eq!(s.check(&header(7, -1, 0, 1)), SequenceCheck::Fenced);
        assert_eq!(s.check(&header(7, 1, 0, 1)), SequenceCheck::Append);
        assert_eq!(s.check(&header(7, 1, 5, 1)), SequenceCheck::OutOfOrder);
        assert_eq!(s.check(&header(8, 0, 42, 1)), SequenceCheck::Append);
    }

    fn txn_header(pid: i64, epoch: i16, seq: i32, n: i32) -> BatchHeader {
        BatchHeader {
            attributes: 0x10,
            ..header(pid, epoch, seq, n)
        }
    }

    #[test]
    fn active_producers_show_what_describe_producers_reports() {
        let mut s = PartitionProducers::default();
        s.record(
            &BatchHeader {
                max_timestamp: 1_700,
                ..header(5, 1, 0, 3)
            },
            10,
        );
        s.txns.write().begin(9, 13);
        s.record(&txn_header(9, 0, 0, 2), 13);
        let active = s.active();
        assert_eq!(
            active,
            [
                ActiveProducer {
                    producer_id: 5,
                    epoch: 1,
                    last_sequence: 2,
                    last_timestamp: 1_700,
                    coordinator_epoch: -1,
                    current_txn_start_offset: -1,
                },
                ActiveProducer {
                    producer_id: 9,
                    epoch: 0,
                    last_sequence: 1,
                    last_timestamp: 0,
                    coordinator_epoch: -1,
                    current_txn_start_offset: 13,
                },
            ]
        );
        // The marker closes the transaction and records the coordinator epoch (0, one node);
        // a bumped epoch has no sequences yet.
        s.record_marker(9, 1, 15, false);
        let nine = &s.active()[1];
        assert_eq!(
            (nine.epoch, nine.last_sequence, nine.coordinator_epoch),
            (1, -1, 0)
        );
        assert_eq!(nine.current_txn_start_offset, -1);
        // Snapshots written before these were kept load as "unknown".
        let old = br#"{"covered_to":3,"producers":{"4":{"epoch":2,"batches":[]}}}"#;
        let old: PartitionProducers = serde_json::from_slice(old).unwrap();
        let four = &old.active()[0];
        assert_eq!((four.last_timestamp, four.coordinator_epoch), (-1, -1));
    }

    #[test]
    fn markers_move_the_epoch_as_kafka_does() {
        let mut s = PartitionProducers::default();
        s.txns.write().begin(7, 0);
        s.record(&txn_header(7, 2, 0, 2), 0);
        // A marker of the producer's epoch: its sequences go on in the next transaction.
        assert_eq!(s.check_marker(7, 2), Ok(()));
        s.record_marker(7, 2, 2, true);
        assert!(!s.txns.read().is_open(7));
        assert_eq!(s.check(&txn_header(7, 2, 2, 1)), SequenceCheck::Append);
        assert_eq!(
            s.check(&txn_header(7, 2, 0, 2)),
            SequenceCheck::Duplicate { base_offset: 0 }
        );
        // A bumped epoch (the coordinator aborting a timed-out or fenced transaction).
        s.record_marker(7, 3, 3, false);
        assert_eq!(s.check(&txn_header(7, 2, 2, 1)), SequenceCheck::Fenced);
        assert_eq!(s.check(&txn_header(7, 3, 4, 1)), SequenceCheck::OutOfOrder);
        assert_eq!(s.check(&txn_header(7, 3, 0, 1)), SequenceCheck::Append);
        assert!(matches!(
            s.check_marker(7, 2),
            Err(SequenceError::Fenced(_))
        ));
        assert_eq!(s.check_marker(8, 0), Ok(()), "a producer never seen here");
        assert_eq!(s.covered_to, 4);
    }

    #[test]
    fn an_open_transaction_takes_only_transactional_batches() {
        let s = PartitionProducers::default();
        s.txns.write().begin(7, 0);
        assert!(matches!(
            s.check_txn_state(&header(7, 0, 1, 1)),
            Err(SequenceError::InvalidTxnState(_))
        ));
        assert_eq!(s.check_txn_state(&txn_header(7, 0, 1, 1)), Ok(()));
        assert_eq!(s.check_txn_state(&header(8, 0, 0, 1)), Ok(()));
    }

    #[test]
    fn snapshots_carry_the_transactions_and_older_ones_still_load() {
        let mut s = PartitionProducers::default();
        s.record(&txn_header(7, 0, 0, 1), 0);
        s.txns.write().begin(7, 0);
        s.txns.write().begin(9, 4);
        s.record_marker(9, 0, 5, false);
        let doc = serde_json::to_vec(&s).unwrap();
        let back: PartitionProducers = serde_json::from_slice(&doc).unwrap();
        assert_eq!(back.txns.read().last_stable_offset(10), 0);
        assert!(back.txns.read().is_aborted(9, 4));
        assert_eq!(back.covered_to, 6);
        let old = br#"{"covered_to":3,"producers":{}}"#;
        let old: PartitionProducers = serde_json::from_slice(old).unwrap();
        assert_eq!(old.txns.read().last_stable_offset(3), 3);
    }

    #[test]
    fn ids_are_never_reused_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let a = Producers::open(dir.path()).unwrap();
        let first = a.next_producer_id().unwrap();
        let second = a.next_producer_id().unwrap();
        assert!(second > first);
        drop(a);
        let b = Producers::open(dir.path()).unwrap();
        assert!(b.next_producer_id().unwrap() > second);
    }
}
