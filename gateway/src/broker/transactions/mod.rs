//! The Kafka transaction coordinator (transactions v1, the protocol of today's clients).
//!
//! Owns every transactional id's state ([`state::TxnMetadata`]: producer id and epoch, the
//! partitions and groups of its current transaction, the offsets committed in it, its timeout)
//! and decides every transition as Kafka's `TransactionCoordinator` does: InitProducerId (epoch
//! bumps, fencing of an ongoing transaction, KIP-360 retries, a new producer id when the epochs
//! run out), AddPartitionsToTxn / AddOffsetsToTxn, EndTxn, TxnOffsetCommit, timeouts and the
//! expiry of idle ids; and verifies that a transactional batch belongs to an ongoing
//! transaction holding its partition (KIP-890 part 1, [`TransactionCoordinator::verify_produce`]).
//!
//! **Durable before effective.** Each transition is one record in a [`KeyedJournal`] (the
//! whole metadata of the id, JSON, last record wins), written under the table's lock before the
//! table changes and fsynced before the request is answered (per transition, not on the store's
//! cadence: a transaction is a few records, and a `Prepare*` lost to a power cut after its
//! markers were written would leave partitions that disagree). The journal is replayed in
//! [`TransactionCoordinator::open`], before any listener opens; `Prepare*` transactions found
//! there are completed by [`ops`] before the Kafka listeners bind.
//!
//! **EndTxn is synchronous**: `Prepare*` durable -> markers written to every partition (all at
//! once) -> pending offsets stored (commit) or dropped -> `Complete*` durable -> answer. The
//! next AddPartitionsToTxn of the producer therefore never meets CONCURRENT_TRANSACTIONS. If a
//! marker cannot be written the transaction stays `Prepare*` (the client is answered
//! CONCURRENT_TRANSACTIONS and retries) and the background task completes it.
//!
//! The decisions here are synchronous and take the time as an argument, so tests drive them
//! directly; the markers and offsets go through [`TxnEffects`], which the broker implements.

pub mod ops;
pub mod state;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use wharf_log_store::{CompactionMark, KeyedJournal};

use super::{BrokerError, PartitionKey};
use state::{epoch_exhausted, EndPlan, PendingOffset, TxnMetadata, TxnState};

/// The journal file, under the data directory.
const JOURNAL: &str = "transactions/journal";
/// The journal is rewritten once it holds four times the records (at least this many) or the
/// bytes (at least [`COMPACT_MIN_BYTES`]) its live ids need.
const COMPACT_MIN_RECORDS: usize = 10_000;
const COMPACT_MIN_BYTES: u64 = 16 << 20;
/// Most groups one transaction may add (AddOffsetsToTxn), and most offsets it may hold
/// pending (TxnOffsetCommit): Wharf's bounds on what a producer makes the coordinator keep
/// (Kafka's are its 50 offsets-topic partitions and its partitions' count).
pub const MAX_TXN_GROUPS: usize = 1_000;
pub const MAX_TXN_PENDING_OFFSETS: usize = 100_000;
/// Most bytes of pending offsets (group, metadata and a fixed [`PENDING_OFFSET_OVERHEAD`]
/// each) one transaction may hold: each TxnOffsetCommit journals the whole transaction, so
/// this also bounds the bytes one request writes.
pub const MAX_TXN_PENDING_OFFSET_BYTES: usize = 4 << 20;
/// Most bytes of pending offsets all transactions together may hold.
pub const MAX_PENDING_OFFSET_BYTES: usize = 256 << 20;
/// What one pending offset costs besides its group's name and metadata.
pub const PENDING_OFFSET_OVERHEAD: usize = 64;

/// Kafka's transaction settings.
#[derive(Debug, Clone)]
pub struct TransactionSettings {
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a producer may ask.
    pub max_timeout: Duration,
    /// `transactional.id.expiration.ms`: an idle transactional id is forgotten after this.
    pub id_expiration: Duration,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    pub abort_timed_out_interval: Duration,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`.
    pub remove_expired_interval: Duration,
    /// Most transactional ids known at once (Wharf's bound; InitProducerId for a new id past it
    /// is answered POLICY_VIOLATION once the expired ids are gone).
    pub max_transactional_ids: usize,
}

impl Default for TransactionSettings {
    fn default() -> Self {
        TransactionSettings {
            max_timeout: Duration::from_millis(900_000),
            id_expiration: Duration::from_millis(604_800_000),
            abort_timed_out_interval: Duration::from_millis(10_000),
            remove_expired_interval: Duration::from_millis(3_600_000),
            max_transactional_ids: 100_000,
        }
    }
}

/// Why the coordinator refused a request, in Kafka's terms (the door picks the code per API
/// and version).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the transactional id must not be empty")]
    EmptyTransactionalId,
    #[error("transaction timeout {asked} ms is outside 1..={max} ms")]
    InvalidTimeout { asked: i32, max: u128 },
    #[error("producer id {0} is not the one of this transactional id")]
    InvalidProducerIdMapping(i64),
    #[error("producer {producer_id} epoch {epoch} is fenced: the current epoch is {current}")]
    ProducerFenced {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error("a commit or abort of this transactional id is in progress")]
    ConcurrentTransactions,
    #[error("{0}")]
    InvalidTxnState(String),
    /// KIP-890 part 1: a transactional batch for a partition the transaction has not added.
    #[error("partition {0} was not added to the transaction")]
    NotInTransaction(PartitionKey),
    /// TxnOffsetCommit for a group the ongoing transaction has not added (AddOffsetsToTxn):
    /// Kafka's verification answers TRANSACTION_ABORTABLE from TxnOffsetCommit v4,
    /// INVALID_TXN_STATE before.
    #[error("group '{0}' was not added to the transaction (AddOffsetsToTxn)")]
    GroupNotInTransaction(String),
    #[error("at most {0} transactional ids may exist at once")]
    TooManyTransactionalIds(usize),
    #[error("transactional id not found")]
    TransactionalIdNotFound,
    /// A transaction past [`MAX_TXN_GROUPS`], [`MAX_TXN_PENDING_OFFSETS`] or a bound in bytes
    /// (POLICY_VIOLATION, as other bounds of this server).
    #[error("too large: at most {limit} {what}")]
    TransactionTooLarge { what: &'static str, limit: usize },
}

/// What InitProducerId led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitOutcome {
    /// The producer id and epoch to answer with; journaled up to `sync_to`.
    Ready {
        producer_id: i64,
        epoch: i16,
        sync_to: u64,
    },
    /// An ongoing transaction was fenced (its epoch bumped, `PrepareAbort` journaled up to
    /// `sync_to`): abort it, then answer CONCURRENT_TRANSACTIONS so the client retries.
    Fenced { plan: EndPlan, sync_to: u64 },
}

/// What EndTxn leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndOutcome {
    /// Already done (a retry of a completed commit or abort): answer at once.
    Done,
    /// `Prepare*` journaled up to `sync_to`: write the markers, then complete.
    Prepared { plan: EndPlan, sync_to: u64 },
}

/// One row of ListTransactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnListing {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: TxnState,
}

/// What the coordinator needs done outside itself to finish a transaction: the broker writes
/// markers into partitions and stores offsets; tests record them.
pub trait TxnEffects: Send + Sync {
    /// Writes a commit or abort marker for (`producer_id`, `epoch`) into `partition`. A
    /// partition that no longer exists answers a store `*NotFound` error.
    fn write_marker(
        &self,
        partition: PartitionKey,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> impl std::future::Future<Output = Result<u64, BrokerError>> + Send;

    /// Stores offsets committed inside a transaction that committed.
    fn store_offsets(
        &self,
        offsets: Vec<PendingOffset>,
    ) -> impl std::future::Future<Output = Result<(), BrokerError>> + Send;
}

#[derive(Debug, Default)]
struct Table {
    ids: HashMap<String, TxnMetadata>,
    /// Producer id -> transactional id, for the produce path's verification.
    by_producer: HashMap<i64, String>,
    /// The ids whose transaction someone is finishing, with the claim's token: EndTxn, an
    /// InitProducerId fence, a timeout or the background task; never two at once (Kafka's
    /// `pendingTransitionInProgress`), or a late marker of one could close the next
    /// transaction of the producer.
    finishing: HashMap<String, u64>,
    next_claim: u64,
    /// A compaction made due by the last transition: run once the table's lock is let go.
    due_compaction: Option<(CompactionMark, Vec<(String, TxnMetadata)>)>,
    /// (group, partition) -> how many transactions in progress hold a pending offset there:
    /// OffsetFetch's `require_stable` check in O(1).
    pending_index: HashMap<(String, PartitionKey), usize>,
    /// The bytes of every transaction's pending offsets ([`pending_bytes`]).
    pending_bytes: usize,
    /// With the table at its bound on ids: no id can expire before this (ms), so a new id is
    /// refused without scanning them all again.
    next_expiry_ms: i64,
}

/// The bytes `meta`'s pending offsets count for (the bounds in bytes).
fn pending_bytes(meta: &TxnMetadata) -> usize {
    meta.pending_offsets
        .iter()
        .map(|p| PENDING_OFFSET_OVERHEAD + p.group.len() + p.metadata.len())
        .sum()
}

impl Table {
    /// Counts `meta`'s pending offsets in (`add`) or out of the index.
    fn index(&mut self, meta: &TxnMetadata, add: bool) {
        if !meta.state.is_pending() {
            return;
        }
        for p in &meta.pending_offsets {
            let k = (p.group.clone(), p.partition);
            if add {
                *self.pending_index.entry(k).or_insert(0) += 1;
            } else if let Some(n) = self.pending_index.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    self.pending_index.remove(&k);
                }
            }
        }
        let bytes = pending_bytes(meta);
        if add {
            self.pending_bytes += bytes;
        } else {
            self.pending_bytes = self.pending_bytes.saturating_sub(bytes);
        }
    }

    /// Claims the finishing of `id`'s transaction and returns its plan.
    fn claim(&mut self, id: &str, meta: &TxnMetadata, commit: bool) -> EndPlan {
        self.next_claim += 1;
        self.finishing.insert(id.to_string(), self.next_claim);
        EndPlan {
            claim: self.next_claim,
            ..plan_of(id, meta, commit)
        }
    }
}

/// The table, locked; letting it go runs a compaction the transitions made due, outside the
/// lock (the journal carries over the records put meanwhile).
struct TableGuard<'a> {
    guard: Option<parking_lot::MutexGuard<'a, Table>>,
    coordinator: &'a TransactionCoordinator,
    /// False: leave a due compaction for [`TransactionCoordinator::compact_if_due`] (the
    /// caller holds another lock that must not wait on the file I/O).
    compact: bool,
}

impl std::ops::Deref for TableGuard<'_> {
    type Target = Table;
    fn deref(&self) -> &Table {
        self.guard.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for TableGuard<'_> {
    fn deref_mut(&mut self) -> &mut Table {
        self.guard.as_mut().expect("held until dropped")
    }
}

impl Drop for TableGuard<'_> {
    fn drop(&mut self) {
        let due = if self.compact {
            self.guard.as_mut().and_then(|t| t.due_compaction.take())
        } else {
            None
        };
        drop(self.guard.take());
        if let Some((mark, rows)) = due {
            self.coordinator.compact(mark, rows);
        }
    }
}

/// A claim on finishing one transaction; let go when dropped (also when the finishing future
/// is dropped half way), unless the transaction completed or was claimed anew meanwhile.
#[derive(Debug)]
pub struct Claim {
    coordinator: Arc<TransactionCoordinator>,
    id: String,
    token: u64,
}

impl Claim {
    pub fn of(coordinator: &Arc<TransactionCoordinator>, plan: &EndPlan) -> Claim {
        Claim {
            coordinator: Arc::clone(coordinator),
            id: plan.transactional_id.clone(),
            token: plan.claim,
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut table = self.coordinator.table.lock();
        if table.finishing.get(&self.id) == Some(&self.token) {
            table.finishing.remove(&self.id);
        }
    }
}

/// Every transactional id's state.
#[derive(Debug)]
pub struct TransactionCoordinator {
    settings: TransactionSettings,
    table: Mutex<Table>,
    journal: KeyedJournal,
}

fn now_ms() -> i64 {
    (super::now_us() / 1000) as i64
}

impl TransactionCoordinator {
    /// Opens the journal under `dir` and replays it (a torn tail is cut).
    pub fn open(dir: &Path, settings: TransactionSettings) -> Result<Self, BrokerError> {
        let (journal, contents) = KeyedJournal::open(&dir.join(JOURNAL))?;
        let mut table = Table::default();
        for (id, bytes) in contents.rows {
            let meta: TxnMetadata = serde_json::from_slice(&bytes).map_err(|e| {
                BrokerError::Internal(format!(
                    "unreadable transaction state of '{id}' in the journal: {e}"
                ))
            })?;
            table.by_producer.insert(meta.producer_id, id.clone());
            table.index(&meta, true);
            table.ids.insert(id, meta);
        }
        let open = table.ids.values().filter(|m| m.state.is_pending()).count();
        if !table.ids.is_empty() {
            tracing::info!(
                "transaction coordinator: {} transactional ids, {open} transactions in progress",
                table.ids.len()
            );
        }
        Ok(TransactionCoordinator {
            settings,
            table: Mutex::new(table),
            journal,
        })
    }

    pub fn settings(&self) -> &TransactionSettings {
        &self.settings
    }

    /// Fsyncs the journal up to `pos` (a position a transition returned).
    pub fn sync(&self, pos: u64) -> Result<(), BrokerError> {
        Ok(self.journal.sync(pos)?)
    }

    /// Journals `meta` as `id`'s state, then makes it the table's. Returns the journal position
    /// to sync to.
    fn record(&self, table: &mut Table, id: &str, meta: TxnMetadata) -> Result<u64, BrokerError> {
        let bytes = serde_json::to_vec(&meta)
            .map_err(|e| BrokerError::Internal(format!("cannot encode transaction state: {e}")))?;
        if bytes.len() > wharf_log_store::MAX_JOURNAL_VALUE {
            return Err(TxnError::TransactionTooLarge {
                what: "bytes of state per transactional id",
                limit: wharf_log_store::MAX_JOURNAL_VALUE,
            }
            .into());
        }
        let pos = self.journal.put(id, Some(&bytes))?;
        if let Some(old) = table.ids.remove(id) {
            if old.producer_id != meta.producer_id
                && table.by_producer.get(&old.producer_id).map(String::as_str) == Some(id)
            {
                table.by_producer.remove(&old.producer_id);
            }
            table.index(&old, false);
        }
        table.by_producer.insert(meta.producer_id, id.to_string());
        table.index(&meta, true);
        table.ids.insert(id.to_string(), meta);
        self.maybe_compact(table);
        Ok(pos)
    }

    fn forget(&self, table: &mut Table, id: &str) -> Result<u64, BrokerError> {
        let pos = self.journal.put(id, None)?;
        if let Some(old) = table.ids.remove(id) {
            if table.by_producer.get(&old.producer_id).map(String::as_str) == Some(id) {
                table.by_producer.remove(&old.producer_id);
            }
            table.index(&old, false);
        }
        self.maybe_compact(table);
        Ok(pos)
    }

    /// Locks the table (see [`TableGuard`]).
    fn lock(&self) -> TableGuard<'_> {
        TableGuard {
            guard: Some(self.table.lock()),
            coordinator: self,
            compact: true,
        }
    }

    /// Runs a compaction the last transitions made due, if any (after a transition made
    /// under another lock).
    pub fn compact_if_due(&self) {
        drop(self.lock());
    }

    /// When the journal has grown well past the live ids: marks it and copies the rows, for a
    /// compaction once the table's lock is let go (serialising and writing them happen then).
    fn maybe_compact(&self, table: &mut Table) {
        if table.due_compaction.is_some()
            || !self
                .journal
                .wants_compaction(COMPACT_MIN_RECORDS, COMPACT_MIN_BYTES)
        {
            return;
        }
        let Some(mark) = self.journal.compaction_mark() else {
            return;
        };
        let rows = table
            .ids
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        table.due_compaction = Some((mark, rows));
    }

    fn compact(&self, mark: CompactionMark, rows: Vec<(String, TxnMetadata)>) {
        let rows: Vec<(String, Vec<u8>)> = rows
            .into_iter()
            .filter_map(|(k, v)| serde_json::to_vec(&v).ok().map(|b| (k, b)))
            .collect();
        if let Err(e) = self
            .journal
            .compact(mark, rows.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
        {
            // The journal as it is stays valid; try again after the next transition.
            tracing::warn!("cannot compact the transaction journal: {e}");
        }
    }

    /// InitProducerId with a transactional id. `fresh_producer_id` hands out a new producer id
    /// (for a new transactional id, or when the epochs of the current one run out).
    pub fn init_producer_id(
        &self,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        fresh_producer_id: &mut dyn FnMut() -> Result<i64, BrokerError>,
        now: i64,
    ) -> Result<InitOutcome, BrokerError> {
        if id.is_empty() {
            return Err(TxnError::EmptyTransactionalId.into());
        }
        let max = self.settings.max_timeout.as_millis();
        if timeout_ms <= 0 || timeout_ms as u128 > max {
            return Err(TxnError::InvalidTimeout {
                asked: timeout_ms,
                max,
            }
            .into());
        }
        let mut table = self.lock();
        let meta = match table.ids.get(id) {
            Some(m) => m.clone(),
            None => {
                if table.ids.len() >= self.settings.max_transactional_ids
                    && now >= table.next_expiry_ms
                {
                    self.expire_locked(&mut table, now)?;
                }
                if table.ids.len() >= self.settings.max_transactional_ids {
                    return Err(TxnError::TooManyTransactionalIds(
                        self.settings.max_transactional_ids,
                    )
                    .into());
                }
                TxnMetadata {
                    producer_id: fresh_producer_id()?,
                    last_producer_id: -1,
                    epoch: -1,
                    last_epoch: -1,
                    timeout_ms,
                    state: TxnState::Empty,
                    partitions: BTreeSet::new(),
                    groups: BTreeSet::new(),
                    pending_offsets: Vec::new(),
                    start_ms: -1,
                    last_update_ms: now,
                }
            }
        };
        // KIP-360: a producer that names its id and epoch is fenced unless the id is new, it
        // is this id's producer, or it is the previous one retrying a bump that rotated the id.
        if let Some((pid, epoch)) = expected {
            let valid = meta.epoch == -1
                || pid == meta.producer_id
                || (pid == meta.last_producer_id && epoch_exhausted(epoch));
            if !valid {
                return Err(TxnError::ProducerFenced {
                    producer_id: pid,
                    epoch,
                    current: meta.epoch,
                }
                .into());
            }
        }
        match meta.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                Err(TxnError::ConcurrentTransactions.into())
            }
            TxnState::Ongoing => {
                // Fence the producer of the ongoing transaction and abort it with the bumped
                // epoch; the client retries and then gets the next epoch (or a new id).
                let mut next = meta;
                next.epoch = next.epoch.saturating_add(1);
                next.last_epoch = -1;
                next.state = TxnState::PrepareAbort;
                next.last_update_ms = now;
                let sync_to = self.record(&mut table, id, next.clone())?;
                let plan = table.claim(id, &next, false);
                Ok(InitOutcome::Fenced { plan, sync_to })
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let mut next = meta.clone();
                if epoch_exhausted(meta.epoch) && expected.is_none_or(|(_, e)| e == meta.epoch) {
                    next.last_producer_id = meta.producer_id;
                    next.producer_id = fresh_producer_id()?;
                    next.epoch = 0;
                    next.last_epoch = if expected.is_some() { meta.epoch } else { -1 };
                } else {
                    let (epoch, last) = match expected {
                        None => (meta.epoch + 1, -1),
                        Some((_, e)) if meta.epoch == -1 || e == meta.epoch => {
                            (meta.epoch + 1, meta.epoch)
                        }
                        // A retry of a bump that succeeded: the same epoch again.
                        Some((_, e)) if e == meta.last_epoch => (meta.epoch, meta.last_epoch),
                        Some((pid, e)) => {
                            return Err(TxnError::ProducerFenced {
                                producer_id: pid,
                                epoch: e,
                                current: meta.epoch,
                            }
                            .into())
                        }
                    };
                    next.epoch = epoch;
                    next.last_epoch = last;
                }
                next.state = TxnState::Empty;
                next.timeout_ms = timeout_ms;
                next.partitions.clear();
                next.groups.clear();
                next.pending_offsets.clear();
                next.start_ms = -1;
                next.last_update_ms = now;
                let (producer_id, epoch) = (next.producer_id, next.epoch);
                let sync_to = self.record(&mut table, id, next)?;
                Ok(InitOutcome::Ready {
                    producer_id,
                    epoch,
                    sync_to,
                })
            }
        }
    }

    /// The checks every request of a transaction's producer passes: the id exists, the
    /// producer id is its, the epoch is current.
    fn producer_of<'a>(
        table: &'a Table,
        id: &str,
        producer_id: i64,
        epoch: i16,
    ) -> Result<&'a TxnMetadata, BrokerError> {
        if id.is_empty() {
            return Err(TxnError::EmptyTransactionalId.into());
        }
        let meta = table
            .ids
            .get(id)
            .filter(|m| m.producer_id == producer_id)
            .ok_or(TxnError::InvalidProducerIdMapping(producer_id))?;
        if meta.epoch != epoch {
            return Err(TxnError::ProducerFenced {
                producer_id,
                epoch,
                current: meta.epoch,
            }
            .into());
        }
        Ok(meta)
    }

    /// AddPartitionsToTxn (and, with a group, AddOffsetsToTxn): the transaction becomes (or
    /// stays) Ongoing with these partitions and groups. `None`: nothing new, nothing journaled.
    pub fn add_to_transaction(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[PartitionKey],
        groups: &[String],
        now: i64,
    ) -> Result<Option<u64>, BrokerError> {
        let mut table = self.lock();
        let meta = Self::producer_of(&table, id, producer_id, epoch)?;
        if meta.state.is_preparing() {
            return Err(TxnError::ConcurrentTransactions.into());
        }
        if meta.state == TxnState::Ongoing
            && partitions.iter().all(|p| meta.partitions.contains(p))
            && groups.iter().all(|g| meta.groups.contains(g))
        {
            return Ok(None);
        }
        let mut next = meta.clone();
        if next.state != TxnState::Ongoing {
            next.start_ms = now;
            next.partitions.clear();
            next.groups.clear();
            next.pending_offsets.clear();
        }
        next.state = TxnState::Ongoing;
        next.partitions.extend(partitions.iter().copied());
        next.groups.extend(groups.iter().cloned());
        if next.groups.len() > MAX_TXN_GROUPS {
            return Err(TxnError::TransactionTooLarge {
                what: "groups",
                limit: MAX_TXN_GROUPS,
            }
            .into());
        }
        next.last_update_ms = now;
        Ok(Some(self.record(&mut table, id, next)?))
    }

    /// TxnOffsetCommit: `offsets` (all of one group) become pending in the transaction,
    /// replacing earlier ones of the same partitions. The group must have been added by
    /// AddOffsetsToTxn. A compaction this makes due runs at [`Self::compact_if_due`] (or the
    /// next transition), not here.
    pub fn add_pending_offsets(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
        offsets: Vec<PendingOffset>,
        now: i64,
    ) -> Result<u64, BrokerError> {
        // Called under the group coordinator's lock: a compaction waits for compact_if_due.
        let mut table = self.lock();
        table.compact = false;
        let meta = Self::producer_of(&table, id, producer_id, epoch)?;
        if meta.state.is_preparing() {
            return Err(TxnError::ConcurrentTransactions.into());
        }
        if meta.state != TxnState::Ongoing || !meta.groups.contains(group) {
            return Err(TxnError::GroupNotInTransaction(group.to_string()).into());
        }
        let mut next = meta.clone();
        next.pending_offsets.retain(|p| {
            !offsets
                .iter()
                .any(|o| o.group == p.group && o.partition == p.partition)
        });
        next.pending_offsets.extend(offsets);
        if next.pending_offsets.len() > MAX_TXN_PENDING_OFFSETS {
            return Err(TxnError::TransactionTooLarge {
                what: "pending offsets",
                limit: MAX_TXN_PENDING_OFFSETS,
            }
            .into());
        }
        let (before, after) = (pending_bytes(meta), pending_bytes(&next));
        if after > MAX_TXN_PENDING_OFFSET_BYTES {
            return Err(TxnError::TransactionTooLarge {
                what: "bytes of pending offsets in one transaction",
                limit: MAX_TXN_PENDING_OFFSET_BYTES,
            }
            .into());
        }
        if after > before && table.pending_bytes - before + after > MAX_PENDING_OFFSET_BYTES {
            return Err(TxnError::TransactionTooLarge {
                what: "bytes of pending offsets in all transactions",
                limit: MAX_PENDING_OFFSET_BYTES,
            }
            .into());
        }
        next.last_update_ms = now;
        self.record(&mut table, id, next)
    }

    /// EndTxn from the client: `Prepare*` for an ongoing transaction; a retry of a finished
    /// one is done; anything else is refused as Kafka does.
    pub fn end_transaction(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now: i64,
    ) -> Result<EndOutcome, BrokerError> {
        let mut table = self.lock();
        let meta = Self::producer_of(&table, id, producer_id, epoch)?;
        let wrong = |state: TxnState| {
            Err(TxnError::InvalidTxnState(format!(
                "cannot {} a transaction in state {}",
                if commit { "commit" } else { "abort" },
                state.name()
            ))
            .into())
        };
        match (meta.state, commit) {
            (TxnState::Ongoing, _) => {
                let mut next = meta.clone();
                next.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                next.last_update_ms = now;
                let sync_to = self.record(&mut table, id, next.clone())?;
                let plan = table.claim(id, &next, commit);
                Ok(EndOutcome::Prepared { plan, sync_to })
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
                Ok(EndOutcome::Done)
            }
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(TxnError::ConcurrentTransactions.into())
            }
            (state, _) => wrong(state),
        }
    }

    /// Records `Complete*` for a transaction whose markers are written (and offsets stored).
    /// A transaction that moved on meanwhile is left alone.
    pub fn complete(&self, plan: &EndPlan, now: i64) -> Result<Option<u64>, BrokerError> {
        let mut table = self.lock();
        if table.ids.get(&plan.transactional_id).is_some_and(|m| {
            m.producer_id == plan.producer_id && m.epoch == plan.epoch && m.state.is_preparing()
        }) {
            // Done (or about to be): no claim stands any more.
            table.finishing.remove(&plan.transactional_id);
        }
        let Some(meta) = table.ids.get(&plan.transactional_id) else {
            return Ok(None);
        };
        let preparing = if plan.commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        if meta.state != preparing || meta.producer_id != plan.producer_id {
            return Ok(None);
        }
        let mut next = meta.clone();
        next.state = if plan.commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        next.partitions.clear();
        next.groups.clear();
        next.pending_offsets.clear();
        next.last_update_ms = now;
        Ok(Some(self.record(
            &mut table,
            &plan.transactional_id,
            next,
        )?))
    }

    /// Transactions whose markers are still to be written (found after a restart, or whose
    /// markers failed) and that nobody is finishing: each is claimed for the caller.
    pub fn unfinished(&self) -> Vec<EndPlan> {
        let mut table = self.lock();
        let mut ids: Vec<String> = table
            .ids
            .iter()
            .filter(|(id, m)| m.state.is_preparing() && !table.finishing.contains_key(*id))
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        let mut plans = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(meta) = table.ids.get(&id).cloned() {
                let commit = meta.state == TxnState::PrepareCommit;
                plans.push(table.claim(&id, &meta, commit));
            }
        }
        plans
    }

    /// Ongoing transactions past their timeout at `now` are fenced (epoch bumped, as Kafka's
    /// `prepareFenceProducerEpoch`) and moved to `PrepareAbort`: their plans, to abort.
    pub fn fence_timed_out(&self, now: i64) -> Result<(Vec<EndPlan>, u64), BrokerError> {
        let mut table = self.lock();
        let due: Vec<String> = table
            .ids
            .iter()
            .filter(|(_, m)| {
                m.state == TxnState::Ongoing && m.start_ms + i64::from(m.timeout_ms) < now
            })
            .map(|(id, _)| id.clone())
            .collect();
        let mut plans = Vec::with_capacity(due.len());
        let mut sync_to = 0;
        for id in due {
            let Some(mut next) = table.ids.get(&id).cloned() else {
                continue;
            };
            next.epoch = next.epoch.saturating_add(1);
            next.last_epoch = -1;
            next.state = TxnState::PrepareAbort;
            next.last_update_ms = now;
            sync_to = self.record(&mut table, &id, next.clone())?;
            plans.push(table.claim(&id, &next, false));
        }
        Ok((plans, sync_to))
    }

    /// Forgets the ids idle past `transactional.id.expiration.ms` with no transaction in
    /// progress. Returns how many, and the journal position to sync to.
    pub fn expire_ids(&self, now: i64) -> Result<(usize, u64), BrokerError> {
        let mut table = self.lock();
        self.expire_locked(&mut table, now)
    }

    fn expire_locked(&self, table: &mut Table, now: i64) -> Result<(usize, u64), BrokerError> {
        let expiration = self.settings.id_expiration.as_millis() as i64;
        let horizon = now.saturating_sub(expiration);
        let mut doomed = Vec::new();
        // The soonest a remaining id can expire: an id in progress, or one that moves later,
        // is updated after now, so expires after every id idle now.
        let mut next = now.saturating_add(expiration);
        for (id, m) in &table.ids {
            if m.state.is_pending() {
                continue;
            }
            if m.last_update_ms <= horizon {
                doomed.push(id.clone());
            } else {
                next = next.min(m.last_update_ms.saturating_add(expiration));
            }
        }
        table.next_expiry_ms = next;
        let mut pos = 0;
        for id in &doomed {
            pos = self.forget(table, id)?;
        }
        Ok((doomed.len(), pos))
    }

    /// KIP-890 part 1: a transactional batch of (`producer_id`, `producer_epoch`) sent with
    /// `transactional_id` may be stored in `partition` only while that id's current producer
    /// is `producer_id` (else INVALID_PRODUCER_ID_MAPPING, as Kafka: a principal allowed on one
    /// id cannot write into another id's transaction) and its transaction is ongoing and holds
    /// the partition. The errors are those of Kafka's produce path (the door maps them).
    pub fn verify_produce(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partition: PartitionKey,
    ) -> Result<(), BrokerError> {
        let table = self.lock();
        let meta = table
            .ids
            .get(transactional_id)
            .filter(|m| m.producer_id == producer_id)
            .ok_or(BrokerError::TxnProduce(TxnError::InvalidProducerIdMapping(
                producer_id,
            )))?;
        if meta.epoch != producer_epoch {
            return Err(BrokerError::TxnProduce(TxnError::ProducerFenced {
                producer_id,
                epoch: producer_epoch,
                current: meta.epoch,
            }));
        }
        if meta.state.is_preparing() {
            return Err(BrokerError::TxnProduce(TxnError::ConcurrentTransactions));
        }
        if meta.state != TxnState::Ongoing || !meta.partitions.contains(&partition) {
            return Err(BrokerError::TxnProduce(TxnError::NotInTransaction(
                partition,
            )));
        }
        Ok(())
    }

    /// True when a transaction in progress holds an offset of `group` on `partition` not yet
    /// committed (OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT).
    pub fn has_pending_offset(&self, group: &str, partition: PartitionKey) -> bool {
        self.table
            .lock()
            .pending_index
            .contains_key(&(group.to_string(), partition))
    }

    /// One id's state (DescribeTransactions).
    pub fn describe(&self, id: &str) -> Result<TxnMetadata, TxnError> {
        if id.is_empty() {
            return Err(TxnError::EmptyTransactionalId);
        }
        self.table
            .lock()
            .ids
            .get(id)
            .cloned()
            .ok_or(TxnError::TransactionalIdNotFound)
    }

    /// ListTransactions: the ids matching every filter given (empty: no filter; a negative
    /// `min_duration_ms`: none), sorted by id.
    pub fn list(
        &self,
        states: &[TxnState],
        producer_ids: &[i64],
        min_duration_ms: i64,
        now: i64,
    ) -> Vec<TxnListing> {
        let table = self.lock();
        let mut out: Vec<TxnListing> = table
            .ids
            .iter()
            .filter(|(_, m)| states.is_empty() || states.contains(&m.state))
            .filter(|(_, m)| producer_ids.is_empty() || producer_ids.contains(&m.producer_id))
            .filter(|(_, m)| min_duration_ms < 0 || now - m.start_ms > min_duration_ms)
            .map(|(id, m)| TxnListing {
                transactional_id: id.clone(),
                producer_id: m.producer_id,
                state: m.state,
            })
            .collect();
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        out
    }

    /// How many transactional ids are known.
    pub fn len(&self) -> usize {
        self.table.lock().ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn plan_of(id: &str, meta: &TxnMetadata, commit: bool) -> EndPlan {
    EndPlan {
        transactional_id: id.to_string(),
        producer_id: meta.producer_id,
        epoch: meta.epoch,
        commit,
        partitions: meta.partitions.iter().copied().collect(),
        offsets: meta.pending_offsets.clone(),
        claim: 0,
    }
}

/// Finishes a prepared transaction: every marker (all partitions at once; a partition deleted
/// since is skipped), then the offsets (commit only), then `Complete*`, durable. On a failed
/// marker the transaction stays `Prepare*` and the error is returned: it is finished later.
pub async fn finish(
    coordinator: &Arc<TransactionCoordinator>,
    effects: &impl TxnEffects,
    plan: EndPlan,
) -> Result<(), BrokerError> {
    let _claim = Claim::of(coordinator, &plan);
    let markers = plan
        .partitions
        .iter()
        .map(|&p| effects.write_marker(p, plan.producer_id, plan.epoch, plan.commit));
    for (partition, written) in plan
        .partitions
        .iter()
        .zip(futures_util::future::join_all(markers).await)
    {
        match written {
            Ok(_) => {}
            Err(BrokerError::Store(
                super::StoreError::PartitionNotFound { .. }
                | super::StoreError::TopicNotFound { .. }
                | super::StoreError::StreamNotFound(_),
            )) => {
                tracing::debug!(
                    %partition,
                    "transaction '{}': partition deleted, no marker",
                    plan.transactional_id
                );
            }
            // The partition knows a newer epoch of the producer: this marker can never be
            // written, and the producer has moved on. Kafka gives up on such a partition too
            // (INVALID_PRODUCER_EPOCH from WriteTxnMarkers: "this txn can now be ignored").
            Err(BrokerError::Sequence(crate::broker::SequenceError::Fenced(why))) => {
                tracing::warn!(
                    %partition,
                    "transaction '{}': marker refused, the producer's epoch there is newer: {why}",
                    plan.transactional_id
                );
            }
            Err(e) => return Err(e),
        }
    }
    if plan.commit && !plan.offsets.is_empty() {
        effects.store_offsets(plan.offsets.clone()).await?;
    }
    let c = Arc::clone(coordinator);
    blocking(move || {
        if let Some(pos) = c.complete(&plan, now_ms())? {
            c.sync(pos)?;
        }
        Ok(())
    })
    .await
}

/// Runs coordinator work that writes the journal on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BrokerError> + Send + 'static,
) -> Result<T, BrokerError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(BrokerError::Internal(format!("blocking task failed: {e}"))))
}
