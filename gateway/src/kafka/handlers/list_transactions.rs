//! ListTransactions: the transactional ids the principal may describe, filtered by state,
//! producer id and (v1) how long their transaction has run.

use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, TransactionalId,
};

use super::{str_bytes, Request};
use crate::broker::acl::{Operation, Resource};

pub fn handle(req: &Request<'_>, r: ListTransactionsRequest) -> ListTransactionsResponse {
    let states: Vec<String> = r.state_filters.iter().map(|s| s.to_string()).collect();
    let producers: Vec<i64> = r.producer_id_filters.iter().map(|p| p.0).collect();
    let duration = if req.version >= 1 {
        r.duration_filter
    } else {
        -1
    };
    let (listed, unknown) = req
        .broker()
        .list_transactions(&states, &producers, duration);
    let transaction_states = listed
        .into_iter()
        .filter(|t| {
            req.may(
                Operation::Describe,
                Resource::TransactionalId(&t.transactional_id),
            )
        })
        .map(|t| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(str_bytes(t.transactional_id)))
                .with_producer_id(t.producer_id.into())
                .with_transaction_state(str_bytes(t.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown.into_iter().map(str_bytes).collect())
        .with_transaction_states(transaction_states)
}
