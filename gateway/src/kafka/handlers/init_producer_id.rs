//! InitProducerId: a fresh producer id with epoch 0 for idempotent producers, or (KIP-360) the
//! same id with the next epoch when the client asks to bump its own. Transactional ids are
//! refused: Wharf does not support transactions.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};

use super::Request;
use crate::broker::acl::{Operation, Resource};
use crate::kafka::errors::code;

pub async fn handle(req: &Request<'_>, r: InitProducerIdRequest) -> InitProducerIdResponse {
    let refused = |error| {
        InitProducerIdResponse::default()
            .with_error_code(error)
            .with_producer_id((-1).into())
            .with_producer_epoch(-1)
    };
    if let Some(id) = &r.transactional_id {
        if !req.may(Operation::Write, Resource::TransactionalId(id.as_str())) {
            return refused(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
        }
        return refused(code::INVALID_REQUEST);
    }
    // Idempotence needs IdempotentWrite on the cluster, which any right to send implies
    // (KIP-679).
    if !req.may(Operation::IdempotentWrite, Resource::Cluster) {
        return refused(code::CLUSTER_AUTHORIZATION_FAILED);
    }
    if r.producer_id.0 >= 0 {
        // A bump: the next epoch, until the epoch space runs out, then a new id.
        if r.producer_epoch >= 0 && r.producer_epoch < i16::MAX - 1 {
            return InitProducerIdResponse::default()
                .with_producer_id(r.producer_id)
                .with_producer_epoch(r.producer_epoch + 1);
        }
    }
    match req.broker().next_producer_id().await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(id.into())
            .with_producer_epoch(0),
        Err(e) => {
            tracing::warn!("cannot hand out a producer id: {e}");
            refused(code::UNKNOWN_SERVER_ERROR)
        }
    }
}
