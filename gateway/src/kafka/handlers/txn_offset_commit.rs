//! TxnOffsetCommit: a group's positions committed inside the producer's transaction, visible
//! (stored in the group's committed offsets) only when it commits.

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::Request;
use crate::broker::acl::{Operation, Resource};
use crate::broker::coordinator::MemberRef;
use crate::broker::offsets::{GroupCommit, PartitionOffsetError};
use crate::broker::transactions::TxnError;
use crate::broker::BrokerError;
use crate::kafka::errors::{code, for_partition_offset, for_txn};

/// The first TxnOffsetCommit version answered TRANSACTION_ABORTABLE (KIP-890).
const ABORTABLE_FROM: i16 = 4;

pub async fn handle(req: &Request<'_>, r: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse {
    let id = r.transactional_id.as_str();
    let group = r.group_id.as_str();
    // Kafka's checks: Write on the transactional id, Read on the group (each failing every
    // partition), then Read on each topic.
    let refused_all = if !req.may(Operation::Write, Resource::TransactionalId(id)) {
        Some(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    } else if !req.may(Operation::Read, Resource::Group(group)) {
        Some(code::GROUP_AUTHORIZATION_FAILED)
    } else {
        None
    };
    let mut commits = Vec::new();
    let mut shape = Vec::with_capacity(r.topics.len());
    for t in r.topics {
        let refused = refused_all.or_else(|| {
            (!req.may(Operation::Read, Resource::Topic(t.name.as_str())))
                .then_some(code::TOPIC_AUTHORIZATION_FAILED)
        });
        let mut indexes = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            indexes.push(p.partition_index);
            if refused.is_some() {
                continue;
            }
            commits.push(GroupCommit {
                topic: t.name.as_str().to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if req.version >= 2 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                metadata: p
                    .committed_metadata
                    .as_ref()
                    .map_or(String::new(), |m| m.to_string()),
            });
        }
        shape.push((t.name, indexes, refused));
    }
    let (member_id, instance_id, generation) = if req.version >= 3 {
        (
            r.member_id.as_str(),
            r.group_instance_id.as_ref().map(|s| s.as_str()),
            r.generation_id,
        )
    } else {
        ("", None, -1)
    };
    let who = MemberRef {
        member_id,
        group_instance_id: instance_id,
        generation,
    };
    let mut outcomes = if commits.is_empty() {
        Vec::new()
    } else {
        req.broker()
            .txn_offset_commit(id, r.producer_id.0, r.producer_epoch, group, who, commits)
            .await
    }
    .into_iter();
    let topics = shape
        .into_iter()
        .map(|(name, indexes, refused)| {
            let partitions = indexes
                .into_iter()
                .map(|index| {
                    let error = match refused {
                        Some(error) => error,
                        None => match outcomes.next() {
                            Some(Ok(())) => code::NONE,
                            // Kafka's group coordinator verifies the transaction as the produce
                            // path does: a fenced epoch is INVALID_PRODUCER_EPOCH at every
                            // version.
                            // A group the transaction has not added fails Kafka's
                            // verification: TRANSACTION_ABORTABLE from v4 (its
                            // CoordinatorPartitionWriter's genericError), INVALID_TXN_STATE
                            // before, for older clients.
                            Some(Err(PartitionOffsetError::Broker(BrokerError::Transaction(
                                TxnError::GroupNotInTransaction(_),
                            )))) if req.version >= ABORTABLE_FROM => code::TRANSACTION_ABORTABLE,
                            Some(Err(PartitionOffsetError::Broker(e))) => {
                                e.log_if_internal("TxnOffsetCommit failed");
                                for_txn(&e, req.version, i16::MAX)
                            }
                            Some(Err(e)) => for_partition_offset(&e),
                            None => code::UNKNOWN_SERVER_ERROR,
                        },
                    };
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(error)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}
