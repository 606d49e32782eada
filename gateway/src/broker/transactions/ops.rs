//! The transaction use cases of the broker: each Kafka transactional API is one call here,
//! which runs the coordinator's decision on the blocking pool (it writes the journal), fsyncs
//! it, and carries out what follows (markers, offsets) through the broker.

use std::sync::Arc;

use super::state::{EndPlan, PendingOffset, TxnMetadata, TxnState};
use super::{
    blocking, finish, now_ms, Claim, EndOutcome, InitOutcome, TxnEffects, TxnError, TxnListing,
};
use crate::broker::coordinator::MemberRef;
use crate::broker::offsets::{GroupCommit, PartitionOffsetError};
use crate::broker::{
    now_us, Broker, BrokerError, CommittedOffset, OffsetKey, OffsetOwner, PartitionKey,
};

impl TxnEffects for Broker {
    async fn write_marker(
        &self,
        partition: PartitionKey,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<u64, BrokerError> {
        self.write_txn_marker(partition, producer_id, epoch, commit)
            .await
    }

    async fn store_offsets(&self, offsets: Vec<PendingOffset>) -> Result<(), BrokerError> {
        let items: Vec<(OffsetKey, CommittedOffset)> = offsets
            .into_iter()
            .map(|o| {
                (
                    OffsetKey {
                        owner: OffsetOwner::Group(o.group),
                        stream: o.partition.stream,
                        topic: o.partition.topic,
                        partition: o.partition.partition,
                    },
                    CommittedOffset {
                        next_offset: o.offset,
                        leader_epoch: o.leader_epoch,
                        metadata: o.metadata,
                        commit_timestamp: o.commit_timestamp,
                    },
                )
            })
            .collect();
        // As Kafka's completePendingTxnOffsetCommit: a plain commit made after the offset was
        // committed in the transaction stays (a late or retried completion never moves the
        // group back). Read and written under the groups' commit lock, as plain commits are.
        let groups = Arc::clone(&self.coordinator);
        self.blocking(move |store| {
            groups.with_commit_lock(|| {
                let offsets = store.offsets();
                let newer: Vec<(OffsetKey, CommittedOffset)> = items
                    .into_iter()
                    .filter(|(key, pending)| {
                        offsets.get(key).is_none_or(|stored| {
                            stored.commit_timestamp <= pending.commit_timestamp
                        })
                    })
                    .collect();
                if newer.is_empty() {
                    return Ok(());
                }
                Ok(offsets.commit_many(newer)?)
            })
        })
        .await
    }
}

/// A Kafka name and the partition indexes of a transaction's partitions in one topic.
pub type TopicPartitions = (String, Vec<i32>);

impl Broker {
    /// InitProducerId. Without a transactional id: always a fresh producer id with epoch 0, as
    /// Kafka's `handleInitProducerId` (an idempotent producer that asks to bump its epoch,
    /// KIP-360, gets a new id instead: nothing ties the id it names to the caller, and bumping
    /// another producer's epoch would fence it). With one: the coordinator's answer
    /// ([`super::TransactionCoordinator::init_producer_id`]); an ongoing transaction of the id
    /// is aborted first and the client told CONCURRENT_TRANSACTIONS, to retry.
    pub async fn init_producer_id(
        &self,
        transactional_id: Option<&str>,
        timeout_ms: i32,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<(i64, i16), BrokerError> {
        let Some(id) = transactional_id else {
            return Ok((self.next_producer_id().await?, 0));
        };
        let expected = match (producer_id, producer_epoch) {
            (-1, -1) => None,
            (-1, _) | (_, -1) => {
                return Err(TxnError::InvalidRequest(
                    "producer id and epoch must both be given, or neither".into(),
                )
                .into())
            }
            (p, e) => Some((p, e)),
        };
        let c = Arc::clone(&self.transactions);
        let producers = Arc::clone(&self.producers);
        let id = id.to_string();
        let outcome = blocking(move || {
            let out = c.init_producer_id(
                &id,
                timeout_ms,
                expected,
                &mut || producers.next_producer_id(),
                now_ms(),
            )?;
            // Held from the moment the plan exists, so a dropped request lets it go.
            let claim = match &out {
                InitOutcome::Fenced { plan, .. } => Some(Claim::of(&c, plan)),
                InitOutcome::Ready { .. } => None,
            };
            let (InitOutcome::Ready { sync_to, .. } | InitOutcome::Fenced { sync_to, .. }) = &out;
            c.sync(*sync_to)?;
            Ok((out, claim))
        })
        .await?;
        match outcome {
            (
                InitOutcome::Ready {
                    producer_id, epoch, ..
                },
                _,
            ) => Ok((producer_id, epoch)),
            (InitOutcome::Fenced { plan, .. }, _claim) => {
                self.finish_transaction(plan).await?;
                Err(TxnError::ConcurrentTransactions.into())
            }
        }
    }

    /// AddPartitionsToTxn: `partitions` (existing ones, checked by the caller) join the
    /// producer's transaction, durably, before this returns.
    pub async fn add_partitions_to_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: Vec<PartitionKey>,
    ) -> Result<(), BrokerError> {
        self.add_to_txn(transactional_id, producer_id, epoch, partitions, Vec::new())
            .await
    }

    /// AddOffsetsToTxn: `group`'s offsets may be committed in the producer's transaction.
    pub async fn add_offsets_to_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
    ) -> Result<(), BrokerError> {
        self.add_to_txn(
            transactional_id,
            producer_id,
            epoch,
            Vec::new(),
            vec![group.to_string()],
        )
        .await
    }

    async fn add_to_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: Vec<PartitionKey>,
        groups: Vec<String>,
    ) -> Result<(), BrokerError> {
        let c = Arc::clone(&self.transactions);
        let id = transactional_id.to_string();
        blocking(move || {
            if let Some(pos) =
                c.add_to_transaction(&id, producer_id, epoch, &partitions, &groups, now_ms())?
            {
                c.sync(pos)?;
            }
            Ok(())
        })
        .await
    }

    /// The partition key of a Kafka topic's partition, if it exists.
    pub fn kafka_partition_key(&self, topic: &str, partition: i32) -> Option<PartitionKey> {
        let t = self.kafka_topic(topic).ok()?;
        let p = u32::try_from(partition)
            .ok()
            .filter(|p| *p < t.partitions)?;
        Some(PartitionKey {
            stream: t.stream_id,
            topic: t.id,
            partition: p,
        })
    }

    /// EndTxn: commits or aborts the producer's transaction, markers written before this
    /// returns (see the module's doc). A marker that cannot be written leaves the transaction
    /// prepared, to be finished in the background; the client is told CONCURRENT_TRANSACTIONS
    /// and retries until it is.
    pub async fn end_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(), BrokerError> {
        let c = Arc::clone(&self.transactions);
        let id = transactional_id.to_string();
        let outcome = blocking(move || {
            let out = c.end_transaction(&id, producer_id, epoch, commit, now_ms())?;
            let mut claim = None;
            if let EndOutcome::Prepared { sync_to, plan } = &out {
                claim = Some(Claim::of(&c, plan));
                c.sync(*sync_to)?;
            }
            Ok((out, claim))
        })
        .await?;
        match outcome {
            (EndOutcome::Done, _) => Ok(()),
            (EndOutcome::Prepared { plan, .. }, _claim) => self.finish_transaction(plan).await,
        }
    }

    /// Writes a prepared transaction's markers and completes it; a failure is logged and
    /// answered CONCURRENT_TRANSACTIONS (the transaction is finished later).
    async fn finish_transaction(&self, plan: EndPlan) -> Result<(), BrokerError> {
        let id = plan.transactional_id.clone();
        finish(&self.transactions, self, plan).await.map_err(|e| {
            crate::broker::log_server_failure(
                &format!("cannot finish transaction '{id}' yet (retried in the background)"),
                &e,
            );
            TxnError::ConcurrentTransactions.into()
        })
    }

    /// TxnOffsetCommit: each partition's outcome, in order. The group's member and generation
    /// are checked as for OffsetCommit (under the group's lock); the offsets that pass become
    /// pending in the transaction, stored in the group's committed offsets only if it commits.
    pub async fn txn_offset_commit(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
        who: MemberRef<'_>,
        commits: Vec<GroupCommit>,
    ) -> Vec<Result<(), PartitionOffsetError>> {
        let now = now_us();
        let mut outcomes: Vec<Result<(), PartitionOffsetError>> = Vec::with_capacity(commits.len());
        let mut pending = Vec::new();
        let mut slots = Vec::new();
        for c in commits {
            let checked = self
                .kafka_partition_key(&c.topic, c.partition)
                .ok_or(PartitionOffsetError::UnknownPartition)
                .and_then(|key| c.check().map(|()| key));
            match checked {
                Ok(key) => {
                    pending.push(PendingOffset {
                        group: group.to_string(),
                        partition: key,
                        offset: c.offset as u64,
                        leader_epoch: c.leader_epoch,
                        metadata: c.metadata,
                        commit_timestamp: now,
                    });
                    slots.push(outcomes.len());
                    outcomes.push(Ok(()));
                }
                Err(e) => outcomes.push(Err(e)),
            }
        }
        if pending.is_empty() {
            return outcomes;
        }
        let groups = Arc::clone(&self.coordinator);
        let c = Arc::clone(&self.transactions);
        let (id, group, member_id, instance_id, generation) = (
            transactional_id.to_string(),
            group.to_string(),
            who.member_id.to_string(),
            who.group_instance_id.map(str::to_string),
            who.generation,
        );
        let written = blocking(move || {
            let who = MemberRef {
                member_id: &member_id,
                group_instance_id: instance_id.as_deref(),
                generation,
            };
            // Checked and journaled (one write, no fsync) under the group's lock, so a
            // rebalance cannot slip between the generation check and the offsets (KIP-447's
            // fencing of zombies relies on it); a compaction it makes due and the fsync run
            // after the lock is let go.
            let pos = groups.commit_offsets_in_txn(&group, who, || {
                c.add_pending_offsets(&id, producer_id, epoch, &group, pending, now_ms())
            });
            c.compact_if_due();
            match pos {
                Ok(Ok(pos)) => {
                    c.sync(pos)?;
                    Ok(Ok(()))
                }
                Ok(Err(e)) => Ok(Err(PartitionOffsetError::Broker(e))),
                Err(g) => Ok(Err(PartitionOffsetError::Group(g))),
            }
        })
        .await;
        for slot in slots {
            outcomes[slot] = match &written {
                Ok(Ok(())) => Ok(()),
                Ok(Err(PartitionOffsetError::Group(g))) => Err(g.clone().into()),
                Ok(Err(PartitionOffsetError::Broker(BrokerError::Transaction(t)))) => {
                    Err(BrokerError::Transaction(t.clone()).into())
                }
                Ok(Err(e)) => Err(BrokerError::Internal(e.to_string()).into()),
                Err(e) => Err(BrokerError::Internal(e.to_string()).into()),
            };
        }
        outcomes
    }

    /// DescribeTransactions for one id: its state, and its partitions by Kafka topic name
    /// (sorted; partitions of topics deleted since are left out).
    pub fn describe_transaction(
        &self,
        transactional_id: &str,
    ) -> Result<(TxnMetadata, Vec<TopicPartitions>), TxnError> {
        let meta = self.transactions.describe(transactional_id)?;
        let names: std::collections::HashMap<(u32, u32), String> = self
            .kafka_topics()
            .into_iter()
            .map(|(name, t)| ((t.stream_id, t.id), name))
            .collect();
        let mut topics: Vec<TopicPartitions> = Vec::new();
        for p in &meta.partitions {
            let Some(name) = names.get(&(p.stream, p.topic)) else {
                continue;
            };
            let index = i32::try_from(p.partition).unwrap_or(i32::MAX);
            match topics.iter_mut().find(|(n, _)| n == name) {
                Some((_, parts)) => parts.push(index),
                None => topics.push((name.clone(), vec![index])),
            }
        }
        topics.sort();
        Ok((meta, topics))
    }

    /// ListTransactions: the ids matching the filters, and the state names it does not know.
    pub fn list_transactions(
        &self,
        state_names: &[String],
        producer_ids: &[i64],
        min_duration_ms: i64,
    ) -> (Vec<TxnListing>, Vec<String>) {
        let mut states = Vec::new();
        let mut unknown = Vec::new();
        for name in state_names {
            match TxnState::from_name(name) {
                Some(s) => states.push(s),
                None => unknown.push(name.clone()),
            }
        }
        if !state_names.is_empty() && states.is_empty() {
            // Only unknown states asked: nothing matches (Kafka filters by the known ones).
            return (Vec::new(), unknown);
        }
        let listed = self
            .transactions
            .list(&states, producer_ids, min_duration_ms, now_ms());
        (listed, unknown)
    }

    /// True when a transaction in progress holds an uncommitted offset of `group` on the
    /// Kafka partition (OffsetFetch `require_stable`).
    pub fn has_pending_txn_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        self.kafka_partition_key(topic, partition)
            .is_some_and(|key| self.transactions.has_pending_offset(group, key))
    }

    /// Finishes the transactions left prepared by the last run (markers written again: a
    /// repeated marker is harmless). Called before the Kafka listeners bind; a transaction
    /// whose markers still fail is retried by [`Broker::drive_transactions`].
    pub async fn recover_transactions(&self) -> usize {
        let plans = self.transactions.unfinished();
        let _claims: Vec<Claim> = plans
            .iter()
            .map(|p| Claim::of(&self.transactions, p))
            .collect();
        let mut done = 0;
        for plan in plans {
            let id = plan.transactional_id.clone();
            match finish(&self.transactions, self, plan).await {
                Ok(()) => done += 1,
                Err(e) => tracing::warn!("cannot finish transaction '{id}' at start: {e}"),
            }
        }
        if done > 0 {
            tracing::info!("finished {done} transactions left prepared by the last run");
        }
        done
    }

    /// One round of the coordinator's housekeeping: prepared transactions are finished,
    /// ongoing ones past their timeout are fenced and aborted. Returns how many were aborted.
    pub async fn abort_timed_out_transactions(&self) -> Result<usize, BrokerError> {
        self.recover_transactions().await;
        let c = Arc::clone(&self.transactions);
        let plans = blocking(move || {
            let (plans, pos) = c.fence_timed_out(now_ms())?;
            let claims: Vec<Claim> = plans.iter().map(|p| Claim::of(&c, p)).collect();
            if !plans.is_empty() {
                c.sync(pos)?;
            }
            Ok((plans, claims))
        })
        .await?;
        let (plans, _claims) = plans;
        let mut aborted = 0;
        for plan in plans {
            let id = plan.transactional_id.clone();
            match finish(&self.transactions, self, plan).await {
                Ok(()) => {
                    aborted += 1;
                    tracing::info!("aborted transaction '{id}': it ran past its timeout");
                }
                Err(e) => tracing::warn!("cannot abort timed-out transaction '{id}' yet: {e}"),
            }
        }
        Ok(aborted)
    }

    /// Forgets transactional ids idle past `transactional.id.expiration.ms`.
    pub async fn expire_transactional_ids(&self) -> Result<usize, BrokerError> {
        let c = Arc::clone(&self.transactions);
        blocking(move || {
            let (n, pos) = c.expire_ids(now_ms())?;
            if n > 0 {
                c.sync(pos)?;
            }
            Ok(n)
        })
        .await
    }

    /// Aborts timed-out transactions every `abort_timed_out_interval` and forgets expired ids
    /// every `remove_expired_interval`, until `stopped`.
    pub async fn drive_transactions(&self, mut stopped: crate::server::Stopped) {
        let settings = self.transactions.settings().clone();
        let mut abort = tokio::time::interval(settings.abort_timed_out_interval);
        abort.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut expire = tokio::time::interval(settings.remove_expired_interval);
        expire.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        abort.tick().await;
        expire.tick().await;
        loop {
            tokio::select! {
                () = crate::server::until_stopped(&mut stopped) => break,
                _ = abort.tick() => {
                    if let Err(e) = self.abort_timed_out_transactions().await {
                        tracing::warn!("cannot abort timed-out transactions: {e}");
                    }
                }
                _ = expire.tick() => {
                    match self.expire_transactional_ids().await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!("forgot {n} expired transactional ids"),
                        Err(e) => tracing::warn!("cannot expire transactional ids: {e}"),
                    }
                }
            }
        }
    }

    /// The transaction coordinator (the produce path verifies transactional batches with it).
    pub fn transactions(&self) -> &super::TransactionCoordinator {
        &self.transactions
    }
}
