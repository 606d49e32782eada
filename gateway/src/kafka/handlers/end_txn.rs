//! EndTxn: commits or aborts the producer's transaction. Answered once the markers are in
//! every partition of the transaction (see `broker::transactions`).

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

use super::Request;
use crate::broker::acl::{Operation, Resource};
use crate::kafka::errors::{code, for_txn};

/// EndTxn answers PRODUCER_FENCED from v2 (KIP-588).
const FENCED_FROM: i16 = 2;

pub async fn handle(req: &Request<'_>, r: EndTxnRequest) -> EndTxnResponse {
    let id = r.transactional_id.as_str();
    let error = if !req.may(Operation::Write, Resource::TransactionalId(id)) {
        code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    } else {
        match req
            .broker()
            .end_txn(id, r.producer_id.0, r.producer_epoch, r.committed)
            .await
        {
            Ok(()) => code::NONE,
            Err(e) => {
                e.log_if_internal("EndTxn failed");
                for_txn(&e, req.version, FENCED_FROM)
            }
        }
    };
    // Transactions v1: the producer id and epoch fields (v5, transactions v2) stay unset.
    EndTxnResponse::default()
        .with_error_code(error)
        .with_producer_id((-1).into())
        .with_producer_epoch(-1)
}
