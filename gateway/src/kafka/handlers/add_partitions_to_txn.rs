//! AddPartitionsToTxn (v0-3, the client's form): partitions join the producer's transaction.
//! As Kafka: every partition must be writable and exist, else the failing ones carry their
//! error and the others OPERATION_NOT_ATTEMPTED, and nothing is added.

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};

use super::Request;
use crate::broker::acl::{Operation, Resource};
use crate::kafka::errors::{code, for_txn};

/// AddPartitionsToTxn answers PRODUCER_FENCED from v2 (KIP-588).
const FENCED_FROM: i16 = 2;

pub async fn handle(req: &Request<'_>, r: AddPartitionsToTxnRequest) -> AddPartitionsToTxnResponse {
    let id = r.v3_and_below_transactional_id.as_str();
    let topics = r.v3_and_below_topics;
    let mut checked = Vec::with_capacity(topics.len());
    let mut keys = Vec::new();
    let mut failed = false;
    let id_denied = !req.may(Operation::Write, Resource::TransactionalId(id));
    for t in &topics {
        let writable = req.may(Operation::Write, Resource::Topic(t.name.as_str()));
        let mut parts = Vec::with_capacity(t.partitions.len());
        for &p in &t.partitions {
            let error = if id_denied {
                Some(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
            } else if !writable {
                Some(code::TOPIC_AUTHORIZATION_FAILED)
            } else {
                match req.broker().kafka_partition_key(t.name.as_str(), p) {
                    Some(key) => {
                        keys.push(key);
                        None
                    }
                    None => Some(code::UNKNOWN_TOPIC_OR_PARTITION),
                }
            };
            failed |= error.is_some();
            parts.push((p, error));
        }
        checked.push(parts);
    }
    let shared = if failed {
        code::OPERATION_NOT_ATTEMPTED
    } else {
        match req
            .broker()
            .add_partitions_to_txn(
                id,
                r.v3_and_below_producer_id.0,
                r.v3_and_below_producer_epoch,
                keys,
            )
            .await
        {
            Ok(()) => code::NONE,
            Err(e) => {
                e.log_if_internal("AddPartitionsToTxn failed");
                for_txn(&e, req.version, FENCED_FROM)
            }
        }
    };
    let results = topics
        .into_iter()
        .zip(checked)
        .map(|(t, parts)| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name)
                .with_results_by_partition(
                    parts
                        .into_iter()
                        .map(|(p, error)| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(p)
                                .with_partition_error_code(error.unwrap_or(shared))
                        })
                        .collect(),
                )
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}
