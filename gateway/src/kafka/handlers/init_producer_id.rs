//! InitProducerId: for an idempotent producer always a new producer id with epoch 0 (as
//! Kafka, even when the request names an id and epoch to bump); for a transactional id, the
//! transaction coordinator's answer (epoch bumps, fencing, KIP-360 retries).

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};

use super::Request;
use crate::broker::acl::{Operation, Resource};
use crate::kafka::errors::{code, for_txn};

/// InitProducerId answers PRODUCER_FENCED from v4 (KIP-588).
const FENCED_FROM: i16 = 4;

pub async fn handle(req: &Request<'_>, r: InitProducerIdRequest) -> InitProducerIdResponse {
    let refused = |error| {
        InitProducerIdResponse::default()
            .with_error_code(error)
            .with_producer_id((-1).into())
            .with_producer_epoch(-1)
    };
    let transactional_id = r.transactional_id.as_ref().map(|id| id.as_str());
    match transactional_id {
        Some(id) if !req.may(Operation::Write, Resource::TransactionalId(id)) => {
            return refused(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
        }
        // Idempotence needs IdempotentWrite on the cluster, which any right to send implies
        // (KIP-679).
        None if !req.may(Operation::IdempotentWrite, Resource::Cluster) => {
            return refused(code::CLUSTER_AUTHORIZATION_FAILED);
        }
        _ => {}
    }
    let (producer_id, producer_epoch) = if req.version >= 3 {
        (r.producer_id.0, r.producer_epoch)
    } else {
        (-1, -1)
    };
    match req
        .broker()
        .init_producer_id(
            transactional_id,
            r.transaction_timeout_ms,
            producer_id,
            producer_epoch,
        )
        .await
    {
        Ok((id, epoch)) => InitProducerIdResponse::default()
            .with_producer_id(id.into())
            .with_producer_epoch(epoch),
        Err(e) => {
            e.log_if_internal("InitProducerId failed");
            refused(for_txn(&e, req.version, FENCED_FROM))
        }
    }
}
