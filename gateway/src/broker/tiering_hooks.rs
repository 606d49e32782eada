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
//! At most [`MAX_BACKGROUND_LOADS`] such loads run at once, the others waiting their turn: each
//! replays a partition's local log on the blocking pool, which appends and reads share, and
//! the first round after a start asks about every tiered partition.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use wharf_log_store::remote::{AbortedRange, TieringHooks};
use wharf_log_store::{Partition, PartitionKey};

use super::Producers;

/// Producer-state loads started here that run at once (each a replay of a partition's local
/// log on the blocking pool); the others wait for a turn.
pub(crate) const MAX_BACKGROUND_LOADS: usize = 2;

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
    /// Turns to run a load: [`MAX_BACKGROUND_LOADS`].
    turns: Arc<tokio::sync::Semaphore>,
    /// Loads waiting for their turn (tests).
    #[cfg(test)]
    waiting: Arc<std::sync::atomic::AtomicUsize>,
}

impl BrokerTieringHooks {
    pub fn new(producers: Arc<Producers>) -> BrokerTieringHooks {
        BrokerTieringHooks {
            producers,
            runtime: tokio::runtime::Handle::try_current().ok(),
            loading: Arc::default(),
            turns: Arc::new(tokio::sync::Semaphore::new(MAX_BACKGROUND_LOADS)),
            #[cfg(test)]
            waiting: Arc::default(),
        }
    }

    /// Starts loading `partition`'s producer and transaction state on the runtime when a turn
    /// is free, unless a load is under way; returns at once.
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
        let turns = Arc::clone(&self.turns);
        #[cfg(test)]
        let waiting = Arc::clone(&self.waiting);
        runtime.spawn(async move {
            #[cfg(test)]
            waiting.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            // Never closed: an error cannot happen, and would only mean loading without a turn.
            let turn = turns.acquire_owned().await;
            #[cfg(test)]
            waiting.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            let loaded = producers.partition(&partition).await;
            drop(turn);
            if let Err(e) = loaded {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use wharf_log_store::{Ident, LogStore, StoreConfig, TopicSettings};

    use super::*;

    /// Yields until `done` holds, failing with `what` after a bound (no sleep).
    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::task::yield_now().await;
        }
    }

    /// The first round after a start asks about every tiered partition whose state is not
    /// loaded: at most `MAX_BACKGROUND_LOADS` replays run at once, the rest wait their turn
    /// and all are loaded in the end.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_start_replays_at_most_max_background_loads_partitions_at_once() {
        const PARTITIONS: u32 = 8;
        let tmp = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            background_tasks: false,
            ..StoreConfig::default()
        };
        let (store, _) = LogStore::open(tmp.path().join("data"), config).unwrap();
        store.create_stream("s").unwrap();
        store
            .create_topic(Ident::Id(0), "t", PARTITIONS, TopicSettings::default())
            .unwrap();
        let producers = Arc::new(Producers::open(tmp.path()).unwrap());
        let hooks = BrokerTieringHooks::new(Arc::clone(&producers));
        let probe = Arc::clone(&producers.replay_probe);
        probe.hold(true);
        // Held replays are let go on any failure too: the runtime waits for them at its end.
        struct LetGo(Arc<crate::broker::producers::ReplayProbe>);
        impl Drop for LetGo {
            fn drop(&mut self) {
                self.0.hold(false);
            }
        }
        let _let_go = LetGo(Arc::clone(&probe));
        let partitions: Vec<_> = (0..PARTITIONS)
            .map(|p| store.partition(Ident::Id(0), Ident::Id(0), p).unwrap())
            .collect();
        for p in &partitions {
            assert_eq!(hooks.upload_limit(p), 0, "not loaded yet");
        }
        // Every load has either started its replay (held at its start) or waits for a turn.
        until("every load started or waiting", || {
            probe.counts().0 + hooks.waiting.load(Ordering::SeqCst) == PARTITIONS as usize
        })
        .await;
        assert_eq!(
            probe.counts().0,
            MAX_BACKGROUND_LOADS,
            "replays started at once (bound MAX_BACKGROUND_LOADS)"
        );
        probe.hold(false);
        until("every partition loaded", || {
            partitions
                .iter()
                .all(|p| producers.ready_txns(&p.key()).is_some())
        })
        .await;
        assert!(
            probe.counts().1 <= MAX_BACKGROUND_LOADS,
            "most replays at once: {} (bound MAX_BACKGROUND_LOADS)",
            probe.counts().1
        );
        store.close().unwrap();
    }
}
