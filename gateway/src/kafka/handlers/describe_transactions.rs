//! DescribeTransactions: each transactional id's state, producer, timeout and partitions
//! (those of topics the principal may describe).

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, TopicName,
};

use super::{str_bytes, Request};
use crate::broker::acl::{Operation, Resource};
use crate::broker::BrokerError;
use crate::kafka::errors::{code, for_broker};

pub fn handle(req: &Request<'_>, r: DescribeTransactionsRequest) -> DescribeTransactionsResponse {
    let states = r
        .transactional_ids
        .into_iter()
        .map(|id| {
            let state = TransactionState::default()
                .with_transactional_id(id.clone())
                .with_transaction_state(str_bytes(""))
                .with_transaction_timeout_ms(0)
                .with_transaction_start_time_ms(-1)
                .with_producer_id((-1).into())
                .with_producer_epoch(-1);
            if !req.may(Operation::Describe, Resource::TransactionalId(id.as_str())) {
                return state.with_error_code(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
            }
            match req.broker().describe_transaction(id.as_str()) {
                Ok((meta, topics)) => state
                    .with_error_code(code::NONE)
                    .with_transaction_state(str_bytes(meta.state.name()))
                    .with_transaction_timeout_ms(meta.timeout_ms)
                    .with_transaction_start_time_ms(meta.start_ms)
                    .with_producer_id(meta.producer_id.into())
                    .with_producer_epoch(meta.epoch)
                    .with_topics(
                        topics
                            .into_iter()
                            .filter(|(name, _)| req.may(Operation::Describe, Resource::Topic(name)))
                            .map(|(name, partitions)| {
                                TopicData::default()
                                    .with_topic(TopicName(str_bytes(name)))
                                    .with_partitions(partitions)
                            })
                            .collect(),
                    ),
                Err(e) => state.with_error_code(for_broker(&BrokerError::Transaction(e))),
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}
