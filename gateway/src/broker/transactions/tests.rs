//! The coordinator's decisions, driven directly (time given as an argument), with the
//! markers and offsets recorded by a [`TxnEffects`] of the tests' own instead of the broker's.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::state::{EndPlan, PendingOffset, TxnMetadata, TxnState};
use super::*;
use crate::broker::StoreError;

fn key(p: u32) -> PartitionKey {
    PartitionKey {
        stream: 1,
        topic: 1,
        partition: p,
    }
}

fn settings() -> TransactionSettings {
    TransactionSettings {
        max_timeout: Duration::from_secs(900),
        id_expiration: Duration::from_secs(3600),
        max_transactional_ids: 1000,
        ..TransactionSettings::default()
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    c: Arc<TransactionCoordinator>,
    next_pid: AtomicI64,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with(settings())
    }

    fn with(s: TransactionSettings) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let c = Arc::new(TransactionCoordinator::open(dir.path(), s).unwrap());
        Fixture {
            dir,
            c,
            next_pid: AtomicI64::new(1000),
        }
    }

    fn reopen(&mut self) {
        let s = self.c.settings().clone();
        self.c = Arc::new(TransactionCoordinator::open(self.dir.path(), s).unwrap());
    }

    fn init(
        &self,
        id: &str,
        expected: Option<(i64, i16)>,
        now: i64,
    ) -> Result<InitOutcome, BrokerError> {
        self.c.init_producer_id(
            id,
            60_000,
            expected,
            &mut || Ok(self.next_pid.fetch_add(1, Ordering::SeqCst)),
            now,
        )
    }

    fn ready(&self, id: &str, expected: Option<(i64, i16)>, now: i64) -> (i64, i16) {
        match self.init(id, expected, now).unwrap() {
            InitOutcome::Ready {
                producer_id, epoch, ..
            } => (producer_id, epoch),
            other => panic!("expected Ready, got {other:?}"),
        }
    }
}

fn txn_err(r: Result<impl std::fmt::Debug, BrokerError>) -> TxnError {
    match r {
        Err(BrokerError::Transaction(t)) => t,
        other => panic!("expected a coordinator refusal, got {other:?}"),
    }
}

fn produce_err(r: Result<(), BrokerError>) -> TxnError {
    match r {
        Err(BrokerError::TxnProduce(t)) => t,
        other => panic!("expected a produce refusal, got {other:?}"),
    }
}

/// Records what finishing a transaction does; a partition in `fail` refuses its marker.
#[derive(Default)]
struct Recorder {
    markers: Mutex<Vec<(PartitionKey, i64, i16, bool)>>,
    offsets: Mutex<Vec<PendingOffset>>,
    fail: Mutex<HashMap<PartitionKey, Fail>>,
}

/// How a partition refuses its marker.
#[derive(Clone, Copy)]
enum Fail {
    Deleted,
    Io,
    /// The partition knows a newer epoch of the producer.
    Fenced,
}

impl TxnEffects for Recorder {
    async fn write_marker(
        &self,
        partition: PartitionKey,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<u64, BrokerError> {
        match self.fail.lock().get(&partition).copied() {
            Some(Fail::Fenced) => {
                return Err(crate::broker::SequenceError::Fenced(format!(
                    "marker of producer {producer_id} epoch {epoch}"
                ))
                .into())
            }
            Some(Fail::Deleted) => {
                return Err(StoreError::PartitionNotFound {
                    topic: "t".into(),
                    partition: partition.partition,
                    count: 0,
                }
                .into())
            }
            Some(Fail::Io) => {
                return Err(StoreError::Io {
                    path: "/x".into(),
                    source: std::io::Error::other("disk gone"),
                }
                .into())
            }
            None => {}
        }
        let mut m = self.markers.lock();
        m.push((partition, producer_id, epoch, commit));
        Ok(m.len() as u64)
    }

    async fn store_offsets(&self, offsets: Vec<PendingOffset>) -> Result<(), BrokerError> {
        self.offsets.lock().extend(offsets);
        Ok(())
    }
}

fn pending(group: &str, p: u32, offset: u64) -> PendingOffset {
    PendingOffset {
        group: group.into(),
        partition: key(p),
        offset,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp: 1,
    }
}

#[test]
fn a_new_id_gets_epoch_0_and_each_init_bumps_and_fences_the_older_producer() {
    let f = Fixture::new();
    let (pid, e0) = f.ready("t", None, 1);
    assert_eq!(e0, 0);
    let (pid2, e1) = f.ready("t", None, 2);
    assert_eq!((pid2, e1), (pid, 1), "same producer id, next epoch");
    // The zombie (epoch 0) is fenced on every request of its transaction.
    assert!(matches!(
        txn_err(f.c.add_to_transaction("t", pid, 0, &[key(0)], &[], 3)),
        TxnError::ProducerFenced { current: 1, .. }
    ));
    assert!(matches!(
        txn_err(f.c.end_transaction("t", pid, 0, true, 3)),
        TxnError::ProducerFenced { .. }
    ));
    assert_eq!(
        txn_err(f.c.add_to_transaction("t", pid + 1, 1, &[key(0)], &[], 3)),
        TxnError::InvalidProducerIdMapping(pid + 1)
    );
    assert_eq!(
        txn_err(f.c.add_to_transaction("nobody", pid, 1, &[key(0)], &[], 3)),
        TxnError::InvalidProducerIdMapping(pid)
    );
}

#[test]
fn init_refuses_bad_timeouts_and_empty_ids() {
    let f = Fixture::new();
    let mut pid = || Ok(1);
    for bad in [0, -5, 900_001] {
        assert!(matches!(
            txn_err(f.c.init_producer_id("t", bad, None, &mut pid, 1)),
            TxnError::InvalidTimeout { .. }
        ));
    }
    assert_eq!(
        txn_err(f.c.init_producer_id("", 1000, None, &mut pid, 1)),
        TxnError::EmptyTransactionalId
    );
    assert!(f.c.is_empty(), "a refused init leaves no state");
}

/// Kafka: InitProducerId while a transaction is ongoing bumps the epoch, aborts the
/// transaction with it and answers CONCURRENT_TRANSACTIONS; the retry bumps again.
#[tokio::test]
async fn init_during_an_ongoing_transaction_fences_and_aborts_it() {
    let f = Fixture::new();
    let (pid, _) = f.ready("t", None, 1);
    f.c.add_to_transaction("t", pid, 0, &[key(0), key(1)], &[], 2)
        .unwrap();
    let plan = match f.init("t", None, 3).unwrap() {
        InitOutcome::Fenced { plan, .. } => plan,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (
            plan.producer_id,
            plan.epoch,
            plan.commit,
            plan.partitions.clone()
        ),
        (pid, 1, false, vec![key(0), key(1)])
    );
    assert_eq!(f.c.describe("t").unwrap().state, TxnState::PrepareAbort);
    assert_eq!(
        txn_err(f.init("t", None, 4)),
        TxnError::ConcurrentTransactions,
        "markers not written yet"
    );
    let effects = Recorder::default();
    finish(&f.c, &effects, plan).await.unwrap();
    assert_eq!(
        *effects.markers.lock(),
        vec![(key(0), pid, 1, false), (key(1), pid, 1, false)],
        "abort markers carry the fencing epoch"
    );
    assert_eq!(f.c.describe("t").unwrap().state, TxnState::CompleteAbort);
    assert_eq!(f.ready("t", None, 5), (pid, 2));
}

/// KIP-360: a producer naming its current id and epoch gets the next epoch; a retry of that
/// same call gets the same answer; any other epoch is fenced.
#[test]
fn kip_360_expected_epochs() {
    let f = Fixture::new();
    let (pid, _) = f.ready("t", None, 1);
    assert_eq!(f.ready("t", Some((pid, 0)), 2), (pid, 1));
    assert_eq!(
        f.ready("t", Some((pid, 0)), 3),
        (pid, 1),
        "a retry of a bump"
    );
    assert!(matches!(
        txn_err(f.init("t", Some((pid, 7)), 4)),
        TxnError::ProducerFenced { .. }
    ));
    assert!(matches!(
        txn_err(f.init("t", Some((pid + 50, 1)), 4)),
        TxnError::ProducerFenced { .. }
    ));
    // A bump without an expected epoch forgets the last one: the old retry is now fenced.
    assert_eq!(f.ready("t", None, 5), (pid, 2));
    assert!(matches!(
        txn_err(f.init("t", Some((pid, 0)), 6)),
        TxnError::ProducerFenced { .. }
    ));
}

/// Epochs stop at `i16::MAX - 1` (the last one is kept for fencing): the next init hands out a
/// new producer id at epoch 0; the old id stays known for a KIP-360 retry.
#[test]
fn an_exhausted_epoch_rotates_the_producer_id() {
    let mut f = Fixture::new();
    let meta = TxnMetadata {
        producer_id: 7,
        last_producer_id: -1,
        epoch: i16::MAX - 1,
        last_epoch: -1,
        timeout_ms: 1000,
        state: TxnState::CompleteCommit,
        partitions: BTreeSet::new(),
        groups: BTreeSet::new(),
        pending_offsets: Vec::new(),
        start_ms: -1,
        last_update_ms: 1,
    };
    let (j, _) = KeyedJournal::open(&f.dir.path().join(JOURNAL)).unwrap();
    j.put("t", Some(&serde_json::to_vec(&meta).unwrap()))
        .unwrap();
    drop(j);
    f.reopen();
    let (pid, epoch) = f.ready("t", Some((7, i16::MAX - 1)), 2);
    assert_eq!((pid, epoch), (1000, 0));
    let m = f.c.describe("t").unwrap();
    assert_eq!((m.last_producer_id, m.last_epoch), (7, i16::MAX - 1));
    // The previous producer retrying with its exhausted epoch is not fenced.
    assert_eq!(f.ready("t", Some((7, i16::MAX - 1)), 3).0, 1000);
    assert!(matches!(
        produce_err(f.c.verify_produce("t", 7, i16::MAX - 1, key(0))),
        TxnError::InvalidProducerIdMapping(7)
    ));
}

#[test]
fn add_partitions_is_journaled_once_and_refused_while_preparing() {
    let f = Fixture::new();
    let (pid, e) = f.ready("t", None, 1);
    let before = f.c.journal.records();
    assert!(f
        .c
        .add_to_transaction("t", pid, e, &[key(0)], &[], 2)
        .unwrap()
        .is_some());
    assert_eq!(f.c.describe("t").unwrap().start_ms, 2);
    assert_eq!(
        f.c.add_to_transaction("t", pid, e, &[key(0)], &[], 3)
            .unwrap(),
        None,
        "already in the transaction: nothing to journal"
    );
    f.c.add_to_transaction("t", pid, e, &[key(1)], &["g".into()], 4)
        .unwrap();
    assert_eq!(f.c.journal.records(), before + 2);
    let m = f.c.describe("t").unwrap();
    assert_eq!(m.partitions.len(), 2);
    assert_eq!(
        m.start_ms, 2,
        "the transaction began with its first partition"
    );
    f.c.end_transaction("t", pid, e, true, 5).unwrap();
    assert_eq!(
        txn_err(f.c.add_to_transaction("t", pid, e, &[key(2)], &[], 6)),
        TxnError::ConcurrentTransactions
    );
}

#[tokio::test]
async fn end_txn_follows_kafkas_state_rules() {
    let f = Fixture::new();
    let (pid, e) = f.ready("t", None, 1);
    assert!(matches!(
        txn_err(f.c.end_transaction("t", pid, e, true, 2)),
        TxnError::InvalidTxnState(_)
    ));
    f.c.add_to_transaction("t", pid, e, &[key(0)], &[], 2)
        .unwrap();
    let plan = match f.c.end_transaction("t", pid, e, true, 3).unwrap() {
        EndOutcome::Prepared { plan, .. } => plan,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        txn_err(f.c.end_transaction("t", pid, e, true, 4)),
        TxnError::ConcurrentTransactions,
        "a retried commit while its markers are written"
    );
    assert!(matches!(
        txn_err(f.c.end_transaction("t", pid, e, false, 4)),
        TxnError::InvalidTxnState(_)
    ));
    finish(&f.c, &Recorder::default(), plan).await.unwrap();
    assert_eq!(
        f.c.end_transaction("t", pid, e, true, 5).unwrap(),
        EndOutcome::Done,
        "a retried commit after it completed"
    );
    assert!(matches!(
        txn_err(f.c.end_transaction("t", pid, e, false, 5)),
        TxnError::InvalidTxnState(_)
    ));
    let m = f.c.describe("t").unwrap();
    assert_eq!(m.state, TxnState::CompleteCommit);
    assert!(m.partitions.is_empty());
}

/// KIP-890 part 1: each refusal of the produce path.
#[test]
fn verify_produce_accepts_only_the_ongoing_transactions_partitions() {
    let f = Fixture::new();
    assert_eq!(
        produce_err(f.c.verify_produce("t", 5, 0, key(0))),
        TxnError::InvalidProducerIdMapping(5)
    );
    let (pid, e) = f.ready("t", None, 1);
    assert_eq!(
        produce_err(f.c.verify_produce("t", pid, e, key(0))),
        TxnError::NotInTransaction(key(0)),
        "no transaction yet"
    );
    f.c.add_to_transaction("t", pid, e, &[key(0)], &[], 2)
        .unwrap();
    f.c.verify_produce("t", pid, e, key(0)).unwrap();
    // Another id's producer: refused whatever the producer's own transaction holds.
    f.ready("u", None, 2);
    assert_eq!(
        produce_err(f.c.verify_produce("u", pid, e, key(0))),
        TxnError::InvalidProducerIdMapping(pid)
    );
    assert_eq!(
        produce_err(f.c.verify_produce("none", pid, e, key(0))),
        TxnError::InvalidProducerIdMapping(pid)
    );
    assert_eq!(
        produce_err(f.c.verify_produce("t", pid, e, key(1))),
        TxnError::NotInTransaction(key(1))
    );
    assert!(matches!(
        produce_err(f.c.verify_produce("t", pid, e + 1, key(0))),
        TxnError::ProducerFenced { .. }
    ));
    f.c.end_transaction("t", pid, e, false, 3).unwrap();
    assert_eq!(
        produce_err(f.c.verify_produce("t", pid, e, key(0))),
        TxnError::ConcurrentTransactions
    );
}

#[tokio::test]
async fn offsets_committed_in_a_transaction_are_stored_only_if_it_commits() {
    let f = Fixture::new();
    let (pid, e) = f.ready("t", None, 1);
    f.c.add_to_transaction("t", pid, e, &[key(0)], &[], 2)
        .unwrap();
    assert!(
        matches!(
            txn_err(f.c.add_pending_offsets("t", pid, e, "g", vec![pending("g", 0, 5)], 3)),
            TxnError::GroupNotInTransaction(_)
        ),
        "AddOffsetsToTxn first"
    );
    f.c.add_to_transaction("t", pid, e, &[], &["g".into()], 3)
        .unwrap();
    f.c.add_pending_offsets("t", pid, e, "g", vec![pending("g", 0, 5)], 4)
        .unwrap();
    f.c.add_pending_offsets(
        "t",
        pid,
        e,
        "g",
        vec![pending("g", 0, 9), pending("g", 1, 3)],
        5,
    )
    .unwrap();
    assert!(f.c.has_pending_offset("g", key(0)));
    assert!(!f.c.has_pending_offset("other", key(0)));
    let EndOutcome::Prepared { plan, .. } = f.c.end_transaction("t", pid, e, true, 6).unwrap()
    else {
        panic!("prepared")
    };
    let effects = Recorder::default();
    finish(&f.c, &effects, plan).await.unwrap();
    let stored: Vec<(u32, u64)> = effects
        .offsets
        .lock()
        .iter()
        .map(|o| (o.partition.partition, o.offset))
        .collect();
    assert_eq!(
        stored,
        vec![(0, 9), (1, 3)],
        "the last commit of a partition wins"
    );
    assert!(!f.c.has_pending_offset("g", key(0)));

    // An aborted transaction's offsets are dropped.
    f.c.add_to_transaction("t", pid, e, &[], &["g".into()], 7)
        .unwrap();
    f.c.add_pending_offsets("t", pid, e, "g", vec![pending("g", 0, 20)], 8)
        .unwrap();
    let EndOutcome::Prepared { plan, .. } = f.c.end_transaction("t", pid, e, false, 9).unwrap()
    else {
        panic!("prepared")
    };
    let effects = Recorder::default();
    finish(&f.c, &effects, plan).await.unwrap();
    assert!(effects.offsets.lock().is_empty());
    assert!(!f.c.has_pending_offset("g", key(0)));
}

/// `transaction.timeout.ms` counts from the transaction's start: past it, the coordinator
/// fences the producer (epoch + 1) and aborts; the producer's next request is fenced.
#[tokio::test]
async fn a_transaction_past_its_timeout_is_fenced_and_aborted() {
    let f = Fixture::new();
    let (pid, e) = f.ready("t", None, 1);
    f.c.add_to_transaction("t", pid, e, &[key(0)], &[], 1_000)
        .unwrap();
    let (plans, _) = f.c.fence_timed_out(1_000 + 60_000).unwrap();
    assert!(plans.is_empty(), "exactly at the timeout: not yet");
    let (plans, _) = f.c.fence_timed_out(1_000 + 60_001).unwrap();
    assert_eq!(plans.len(), 1);
    assert_eq!((plans[0].epoch, plans[0].commit), (e + 1, false));
    let effects = Recorder::default();
    finish(&f.c, &effects, plans[0].clone()).await.unwrap();
    assert_eq!(*effects.markers.lock(), vec![(key(0), pid, e + 1, false)]);
    assert!(matches!(
        txn_err(f.c.end_transaction("t", pid, e, true, 70_000)),
        TxnError::ProducerFenced { .. }
    ));
    assert!(matches!(
        produce_err(f.c.verify_produce("t", pid, e, key(0))),
        TxnError::ProducerFenced { .. }
    ));
    assert_eq!(f.ready("t", None, 70_001), (pid, e + 2));
}

/// Bound: at most `max_transactional_ids` ids; idle ones expire after
/// `transactional.id.expiration.ms` (never one with a transaction in progress), which makes
/// room again.
#[test]
fn transactional_ids_are_bounded_and_expire_when_idle() {
    let f = Fixture::with(TransactionSettings {
        max_transactional_ids: 2,
        id_expiration: Duration::from_millis(1_000),
        ..settings()
    });
    let (a, _) = f.ready("a", None, 0);
    f.ready("b", None, 0);
    f.c.add_to_transaction("a", a, 0, &[key(0)], &[], 10)
        .unwrap();
    assert_eq!(
        txn_err(f.init("c", None, 500)),
        TxnError::TooManyTransactionalIds(2)
    );
    assert_eq!(f.c.len(), 2, "a refused id leaves no state");
    // The scan found nothing to expire before b's 1000: until then new ids are refused
    // without scanning every id again (review S3).
    assert_eq!(f.c.table.lock().next_expiry_ms, 1_000);
    assert_eq!(
        txn_err(f.init("d", None, 999)),
        TxnError::TooManyTransactionalIds(2)
    );
    // At 1000 "b" has been idle for the expiration time; "a" is in a transaction.
    f.ready("c", None, 1_000);
    assert_eq!(f.c.describe("b"), Err(TxnError::TransactionalIdNotFound));
    assert!(f.c.describe("a").is_ok());
    let (n, _) = f.c.expire_ids(5_000).unwrap();
    assert_eq!(n, 1, "only c: a's transaction is in progress");
}

/// The journal is the state: a restart finds every id as it was, a `Prepare*` transaction is
/// found unfinished, and a torn last record is cut (the transition before it stands).
#[tokio::test]
async fn state_survives_a_restart_and_prepared_transactions_are_finished() {
    let mut f = Fixture::new();
    let (pid, e) = f.ready("t", None, 1);
    f.c.add_to_transaction("t", pid, e, &[key(0), key(3)], &["g".into()], 2)
        .unwrap();
    f.c.add_pending_offsets("t", pid, e, "g", vec![pending("g", 3, 11)], 3)
        .unwrap();
    f.ready("idle", None, 4);
    f.c.end_transaction("t", pid, e, true, 5).unwrap();
    let before = f.c.describe("t").unwrap();
    f.reopen();
    assert_eq!(f.c.describe("t").unwrap(), before);
    assert_eq!(f.c.len(), 2);
    let plans = f.c.unfinished();
    assert_eq!(
        plans,
        vec![EndPlan {
            claim: 0,
            transactional_id: "t".into(),
            producer_id: pid,
            epoch: e,
            commit: true,
            partitions: vec![key(0), key(3)],
            offsets: vec![pending("g", 3, 11)],
        }]
    );
    // The produce path knows the producer again.
    assert_eq!(
        produce_err(f.c.verify_produce("t", pid, e, key(0))),
        TxnError::ConcurrentTransactions
    );
    let effects = Recorder::default();
    finish(&f.c, &effects, plans[0].clone()).await.unwrap();
    assert_eq!(effects.markers.lock().len(), 2);
    assert_eq!(effects.offsets.lock().len(), 1);

    // A torn record at the end (a crash inside the write) is cut on the next open.
    let path = f.dir.path().join(JOURNAL);
    let mut bytes = std::fs::read(&path).unwrap();
    let whole = bytes.len();
    bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3]);
    std::fs::write(&path, &bytes).unwrap();
    f.reopen();
    assert_eq!(f.c.describe("t").unwrap().state, TxnState::CompleteCommit);
    assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, whole);
}

/// A partition deleted since it joined the transaction gets no marker and does not hold the
/// transaction up; a marker that fails otherwise leaves it prepared, to be finished later.
#[tokio::test]
async fn finishing_skips_deleted_partitions_and_retries_failed_markers() {
    let f = Fixture::new();
    let (pid, e) = f.ready("t", None, 1);
    f.c.add_to_transaction("t", pid, e, &[key(0), key(1)], &[], 2)
        .unwrap();
    let EndOutcome::Prepared { plan, .. } = f.c.end_transaction("t", pid, e, true, 3).unwrap()
    else {
        panic!("prepared")
    };
    let effects = Recorder::default();
    effects.fail.lock().insert(key(1), Fail::Io);
    assert!(finish(&f.c, &effects, plan.clone()).await.is_err());
    assert_eq!(f.c.describe("t").unwrap().state, TxnState::PrepareCommit);
    assert_eq!(f.c.unfinished(), vec![plan.clone()]);
    effects.fail.lock().insert(key(1), Fail::Deleted);
    finish(&f.c, &effects, plan).await.unwrap();
    assert_eq!(f.c.describe("t").unwrap().state, TxnState::CompleteCommit);
    assert!(f.c.unfinished().is_empty());
}

#[test]
fn list_filters_by_state_producer_and_duration() {
    let f = Fixture::new();
    let (a, _) = f.ready("a", None, 0);
    let (b, _) = f.ready("b", None, 0);
    f.c.add_to_transaction("a", a, 0, &[key(0)], &[], 100)
        .unwrap();
    let ids =
        |l: Vec<TxnListing>| -> Vec<String> { l.into_iter().map(|t| t.transactional_id).collect() };
    assert_eq!(ids(f.c.list(&[], &[], -1, 1000)), vec!["a", "b"]);
    assert_eq!(
        ids(f.c.list(&[TxnState::Ongoing], &[], -1, 1000)),
        vec!["a"]
    );
    assert_eq!(ids(f.c.list(&[], &[b], -1, 1000)), vec!["b"]);
    assert_eq!(
        ids(f.c.list(&[TxnState::Ongoing], &[], 899, 1000)),
        vec!["a"]
    );
    assert!(f.c.list(&[TxnState::Ongoing], &[], 900, 1000).is_empty());
}

/// The journal is rewritten from the live ids once it holds far more records than ids.
#[test]
fn the_journal_is_compacted_as_it_grows() {
    let mut f = Fixture::new();
    f.ready("other", None, 0);
    for i in 0..(COMPACT_MIN_RECORDS as i64 + 10) {
        f.ready("t", None, i);
    }
    assert!(
        f.c.journal.records() < COMPACT_MIN_RECORDS,
        "{} records",
        f.c.journal.records()
    );
    let before = f.c.describe("t").unwrap();
    f.reopen();
    assert_eq!(f.c.describe("t").unwrap(), before);
}

/// Bound: a transaction holds at most MAX_TXN_GROUPS groups and MAX_TXN_PENDING_OFFSETS
/// pending offsets; past them the request is refused and the transaction stays as it was.
#[test]
fn a_transaction_holds_a_bounded_number_of_groups_and_offsets() {
    let f = Fixture::new();
    let (pid, e) = f.ready("t", None, 1);
    let groups: Vec<String> = (0..MAX_TXN_GROUPS).map(|i| format!("g{i}")).collect();
    f.c.add_to_transaction("t", pid, e, &[], &groups, 2)
        .unwrap();
    assert_eq!(
        txn_err(f.c.add_to_transaction("t", pid, e, &[], &["one-more".into()], 3)),
        TxnError::TransactionTooLarge {
            what: "groups",
            limit: MAX_TXN_GROUPS
        }
    );
    assert_eq!(f.c.describe("t").unwrap().groups.len(), MAX_TXN_GROUPS);
    let many: Vec<PendingOffset> = (0..=MAX_TXN_PENDING_OFFSETS as u32)
        .map(|p| pending("g0", p, 1))
        .collect();
    assert!(matches!(
        txn_err(f.c.add_pending_offsets("t", pid, e, "g0", many, 4)),
        TxnError::TransactionTooLarge { .. }
    ));
    assert!(f.c.describe("t").unwrap().pending_offsets.is_empty());
}

/// Review M2: a transaction that EndTxn (or an InitProducerId fence) is finishing is never
/// handed to the background task as well, whose late marker could otherwise close the
/// producer's NEXT transaction on a partition. A claim let go without finishing (a dropped
/// request) hands it over.
#[tokio::test]
async fn a_transaction_being_finished_has_one_finisher() {
    let f = Fixture::new();
    let (pid, e) = f.ready("t", None, 1);
    f.c.add_to_transaction("t", pid, e, &[key(0)], &[], 2)
        .unwrap();
    let EndOutcome::Prepared { plan, .. } = f.c.end_transaction("t", pid, e, true, 3).unwrap()
    else {
        panic!("prepared")
    };
    assert!(f.c.unfinished().is_empty(), "EndTxn is finishing it");
    let effects = Recorder::default();
    finish(&f.c, &effects, plan).await.unwrap();
    f.c.add_to_transaction("t", pid, e, &[key(0)], &[], 4)
        .unwrap();
    assert!(f.c.unfinished().is_empty(), "the next transaction is open");
    assert_eq!(effects.markers.lock().len(), 1, "one commit marker");

    // A fence by InitProducerId claims the abort it starts.
    let InitOutcome::Fenced { plan, .. } = f.init("t", None, 5).unwrap() else {
        panic!("fenced")
    };
    assert!(
        f.c.unfinished().is_empty(),
        "InitProducerId is finishing it"
    );
    // Its request is dropped before the markers: the claim goes with it.
    drop(Claim::of(&f.c, &plan));
    let plans = f.c.unfinished();
    assert_eq!(plans, vec![plan]);
    assert!(f.c.unfinished().is_empty(), "claimed by the first call");
    finish(&f.c, &effects, plans[0].clone()).await.unwrap();
    assert_eq!(f.c.describe("t").unwrap().state, TxnState::CompleteAbort);
}

/// Review M3: a marker refused because the partition knows a newer epoch of the producer can
/// never be written; the transaction completes without it (as Kafka gives up on
/// INVALID_PRODUCER_EPOCH) instead of staying prepared forever.
#[tokio::test]
async fn a_marker_refused_as_fenced_does_not_wedge_the_id() {
    let f = Fixture::new();
    let (pid, e) = f.ready("t", None, 1);
    f.c.add_to_transaction("t", pid, e, &[key(0), key(1)], &[], 2)
        .unwrap();
    let EndOutcome::Prepared { plan, .. } = f.c.end_transaction("t", pid, e, false, 3).unwrap()
    else {
        panic!("prepared")
    };
    let effects = Recorder::default();
    effects.fail.lock().insert(key(1), Fail::Fenced);
    finish(&f.c, &effects, plan).await.unwrap();
    assert_eq!(f.c.describe("t").unwrap().state, TxnState::CompleteAbort);
    assert_eq!(*effects.markers.lock(), vec![(key(0), pid, e, false)]);
    assert!(f.c.unfinished().is_empty());
}

/// Review S2: OffsetFetch's `require_stable` looks up an index of (group, partition) ->
/// transactions in progress holding a pending offset there, kept by every transition (and
/// rebuilt on open), instead of scanning every id's offsets.
#[tokio::test]
async fn pending_offsets_are_indexed_by_group_and_partition() {
    let mut f = Fixture::new();
    let (a, ea) = f.ready("a", None, 1);
    let (b, eb) = f.ready("b", None, 1);
    for (id, pid, e) in [("a", a, ea), ("b", b, eb)] {
        f.c.add_to_transaction(id, pid, e, &[key(0)], &["g".into()], 2)
            .unwrap();
        f.c.add_pending_offsets(id, pid, e, "g", vec![pending("g", 3, 1)], 3)
            .unwrap();
    }
    f.c.add_pending_offsets("a", a, ea, "g", vec![pending("g", 3, 2)], 4)
        .unwrap();
    assert_eq!(
        f.c.table.lock().pending_index[&("g".to_string(), key(3))],
        2
    );
    assert!(f.c.has_pending_offset("g", key(3)));
    assert!(!f.c.has_pending_offset("g", key(4)));
    assert!(!f.c.has_pending_offset("h", key(3)));
    f.reopen();
    assert_eq!(
        f.c.table.lock().pending_index[&("g".to_string(), key(3))],
        2
    );
    let EndOutcome::Prepared { plan, .. } = f.c.end_transaction("a", a, ea, true, 5).unwrap()
    else {
        panic!("prepared")
    };
    assert!(
        f.c.has_pending_offset("g", key(3)),
        "pending until complete"
    );
    finish(&f.c, &Recorder::default(), plan).await.unwrap();
    assert_eq!(
        f.c.table.lock().pending_index[&("g".to_string(), key(3))],
        1
    );
    let EndOutcome::Prepared { plan, .. } = f.c.end_transaction("b", b, eb, false, 6).unwrap()
    else {
        panic!("prepared")
    };
    finish(&f.c, &Recorder::default(), plan).await.unwrap();
    assert!(!f.c.has_pending_offset("g", key(3)));
    let t = f.c.table.lock();
    assert!(t.pending_index.is_empty());
    assert_eq!(t.pending_bytes, 0);
}

/// Review S3: bound: a transaction holds at most MAX_TXN_PENDING_OFFSET_BYTES of pending
/// offsets (each TxnOffsetCommit journals all of them); past it the request is refused and
/// the transaction keeps what it had.
#[test]
fn pending_offsets_are_bounded_in_bytes() {
    let f = Fixture::new();
    let (pid, e) = f.ready("t", None, 1);
    f.c.add_to_transaction("t", pid, e, &[], &["g".into()], 2)
        .unwrap();
    let big = |p: u32| PendingOffset {
        metadata: "m".repeat(crate::broker::offsets::MAX_COMMIT_METADATA),
        ..pending("g", p, 1)
    };
    let each = PENDING_OFFSET_OVERHEAD + 1 + crate::broker::offsets::MAX_COMMIT_METADATA;
    let fit = (MAX_TXN_PENDING_OFFSET_BYTES / each) as u32;
    f.c.add_pending_offsets("t", pid, e, "g", (0..fit).map(big).collect(), 3)
        .unwrap();
    assert_eq!(
        txn_err(f.c.add_pending_offsets("t", pid, e, "g", vec![big(fit)], 4)),
        TxnError::TransactionTooLarge {
            what: "bytes of pending offsets in one transaction",
            limit: MAX_TXN_PENDING_OFFSET_BYTES
        }
    );
    // Replacing an offset already held does not grow the transaction.
    f.c.add_pending_offsets("t", pid, e, "g", vec![big(0)], 5)
        .unwrap();
    assert_eq!(
        f.c.describe("t").unwrap().pending_offsets.len(),
        fit as usize
    );
    assert!(f.c.table.lock().pending_bytes <= MAX_TXN_PENDING_OFFSET_BYTES);
}
