//! AddOffsetsToTxn: a group's offsets may be committed in the producer's transaction.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use super::Request;
use crate::broker::acl::{Operation, Resource};
use crate::kafka::errors::{code, for_txn};

/// AddOffsetsToTxn answers PRODUCER_FENCED from v2 (KIP-588).
const FENCED_FROM: i16 = 2;

pub async fn handle(req: &Request<'_>, r: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    let id = r.transactional_id.as_str();
    let group = r.group_id.as_str();
    // Kafka's order: Write on the transactional id, then Read on the group.
    let error = if !req.may(Operation::Write, Resource::TransactionalId(id)) {
        code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    } else if !req.may(Operation::Read, Resource::Group(group)) {
        code::GROUP_AUTHORIZATION_FAILED
    } else {
        match req
            .broker()
            .add_offsets_to_txn(id, r.producer_id.0, r.producer_epoch, group)
            .await
        {
            Ok(()) => code::NONE,
            Err(e) => {
                e.log_if_internal("AddOffsetsToTxn failed");
                for_txn(&e, req.version, FENCED_FROM)
            }
        }
    };
    AddOffsetsToTxnResponse::default().with_error_code(error)
}
