//! Produce: decodes the request, makes one broker call ([`Broker::produce_kafka`]: batch
//! checks, idempotence, transactions, concurrent appends) and encodes each partition's outcome. acks 0, 1 and
//! -1 are accepted (an acks=0 Produce with an error closes the connection, as Kafka's); 1 and -1 both wait for the topic's durability mode (there are no replicas
//! to wait for). v13 names topics by id (KIP-516). v12 (KIP-890's "the broker adds the
//! partition to the transaction") is served as v11: clients send it for transactional records
//! only when the `transaction.version` feature is finalized at 2, which ApiVersions never says.
//!
//! [`Broker::produce_kafka`]: crate::broker::Broker::produce_kafka

use std::collections::HashMap;

use bytes::BytesMut;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::Encodable;

use super::{str_bytes, Request};
use crate::broker::acl::{Operation, Resource};
use crate::broker::kafka_batch;
use crate::broker::produce::{KafkaPartitionWrite, KafkaTopicWrite, Produced};
use crate::broker::BrokerError;
use crate::kafka::connection::ResponseBody;
use crate::kafka::errors::{self, code};

/// First version naming topics by id (KIP-516).
const FIRST_TOPIC_IDS: i16 = 13;
const UNKNOWN_TOPIC_ID: i16 = kafka_protocol::error::ResponseError::UnknownTopicId.code();

/// `None`: an acks=0 Produce without error, which has no answer.
pub async fn handle(req: &Request<'_>, r: ProduceRequest) -> Option<ProduceAnswer> {
    let acks = r.acks;
    // Transactional records need Write on the request's transactional id, checked first for
    // the whole request (Kafka's KafkaApis).
    let transactional = r
        .topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .any(|p| {
            p.records
                .as_deref()
                .is_some_and(kafka_batch::has_transactional)
        });
    let txn_allowed = || {
        r.transactional_id
            .as_ref()
            .is_some_and(|id| req.may(Operation::Write, Resource::TransactionalId(id.as_str())))
    };
    // Refusals of the whole request still answer per partition, as Kafka does.
    let refusal = if transactional && !txn_allowed() {
        Some((code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED, None::<&str>))
    } else if !matches!(acks, -1..=1) {
        Some((code::INVALID_REQUIRED_ACKS, None))
    } else {
        None
    };
    // v13 names topics by id (KIP-516): an id no topic has is UNKNOWN_TOPIC_ID, before any
    // authorization (as Kafka).
    let ids = if req.version >= FIRST_TOPIC_IDS {
        super::metadata::topic_names_by_id(req, r.topic_data.iter().map(|t| t.topic_id))
    } else {
        HashMap::new()
    };
    let mut heads = Vec::with_capacity(r.topic_data.len());
    let mut writes = Vec::with_capacity(r.topic_data.len());
    // Topics refused whole: every partition answers with the code.
    let mut denied: Vec<Option<i16>> = Vec::with_capacity(r.topic_data.len());
    for t in r.topic_data {
        let (name, unknown) = if req.version >= FIRST_TOPIC_IDS {
            match ids.get(&t.topic_id) {
                Some(n) => (n.to_string(), None),
                None => (String::new(), Some(UNKNOWN_TOPIC_ID)),
            }
        } else {
            (t.name.0.as_str().to_string(), None)
        };
        denied.push(unknown.or_else(|| {
            (!req.may(Operation::Write, Resource::Topic(&name)))
                .then_some(code::TOPIC_AUTHORIZATION_FAILED)
        }));
        writes.push(KafkaTopicWrite {
            name,
            partitions: t
                .partition_data
                .into_iter()
                .map(|p| KafkaPartitionWrite {
                    index: p.index,
                    records: p.records,
                })
                .collect(),
        });
        // The answer names the topic as the request did: by name before v13, by id from it.
        heads.push(
            TopicProduceResponse::default()
                .with_name(t.name)
                .with_topic_id(t.topic_id),
        );
    }
    let responses: Vec<TopicProduceResponse> = if let Some((error, message)) = refusal {
        heads
            .into_iter()
            .zip(writes)
            .map(|(head, w)| {
                let parts = w
                    .partitions
                    .iter()
                    .map(|p| failed(req.version, p.index, error, message.map(String::from)))
                    .collect();
                head.with_partition_responses(parts)
            })
            .collect()
    } else {
        let indexes: Vec<Vec<i32>> = writes
            .iter()
            .map(|w| w.partitions.iter().map(|p| p.index).collect())
            .collect();
        let allowed: Vec<KafkaTopicWrite> = writes
            .into_iter()
            .zip(&denied)
            .filter(|(_, d)| d.is_none())
            .map(|(w, _)| w)
            .collect();
        let mut outcomes = req
            .broker()
            .produce_kafka(
                r.transactional_id.as_ref().map(|id| id.as_str()),
                allowed,
                req.version >= 7,
            )
            .await
            .into_iter();
        heads
            .into_iter()
            .zip(indexes)
            .zip(denied)
            .map(|((head, indexes), denied)| {
                let parts = match denied {
                    Some(error) => indexes
                        .into_iter()
                        .map(|index| failed(req.version, index, error, None))
                        .collect(),
                    None => indexes
                        .into_iter()
                        .zip(outcomes.next().unwrap_or_default())
                        .map(|(index, outcome)| answer(req.version, index, outcome))
                        .collect(),
                };
                head.with_partition_responses(parts)
            })
            .collect()
    };
    let response = ProduceResponse::default().with_responses(responses);
    if acks != 0 {
        return Some(ProduceAnswer {
            response,
            unanswered: false,
        });
    }
    // acks=0: everything was stored (or refused) all the same; there is just no answer. One
    // refused partition closes the connection, as Kafka's KafkaApis (`closeConnection`), so the
    // producer refreshes its metadata; the errors are still counted.
    let failed = response
        .responses
        .iter()
        .flat_map(|t| &t.partition_responses)
        .any(|p| p.error_code != code::NONE);
    failed.then_some(ProduceAnswer {
        response,
        unanswered: true,
    })
}

/// A Produce answer. An `unanswered` one (acks=0 with an error) is never sent: its error codes
/// are counted and the connection is closed.
#[derive(Debug)]
pub struct ProduceAnswer {
    response: ProduceResponse,
    unanswered: bool,
}

impl ResponseBody for ProduceAnswer {
    fn encode_body(&self, buf: &mut BytesMut, version: i16) -> anyhow::Result<()> {
        self.response.encode(buf, version)
    }

    fn errors(&self, each: &mut dyn FnMut(i16)) {
        crate::metrics::kafka_errors::each_error(&self.response, each);
    }

    fn unanswered(&self) -> bool {
        self.unanswered
    }

    // quota
    fn throttle(&mut self, ms: i32) {
        self.response.throttle_time_ms = ms;
    }
}

fn answer(
    version: i16,
    index: i32,
    outcome: Result<Produced, BrokerError>,
) -> PartitionProduceResponse {
    match outcome {
        Ok(p) => {
            let mut r = PartitionProduceResponse::default()
                .with_index(index)
                .with_base_offset(p.base_offset as i64);
            if let Some(ms) = p.log_append_time_ms {
                r = r.with_log_append_time_ms(ms);
            }
            if version >= 5 {
                r = r.with_log_start_offset(p.log_start_offset as i64);
            }
            r
        }
        Err(e) => {
            let (_, message) = errors::answer("produce failed", &e);
            // The transactional refusals' code depends on the version (KIP-890).
            let r = failed(
                version,
                index,
                errors::for_produce(&e, version),
                Some(message),
            );
            match e {
                // Kafka lists each keyless record of a compacted topic's batch (v8+).
                BrokerError::KeylessRecords(k) if version >= 8 => {
                    let each = Some(str_bytes(k.record_message()));
                    r.with_record_errors(
                        k.indexes
                            .iter()
                            .map(|&i| {
                                BatchIndexAndErrorMessage::default()
                                    .with_batch_index(i as i32)
                                    .with_batch_index_error_message(each.clone())
                            })
                            .collect(),
                    )
                }
                _ => r,
            }
        }
    }
}

fn failed(
    version: i16,
    index: i32,
    error: i16,
    message: Option<String>,
) -> PartitionProduceResponse {
    let r = PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error)
        .with_base_offset(-1);
    if version >= 8 {
        r.with_error_message(message.map(str_bytes))
    } else {
        r
    }
}
