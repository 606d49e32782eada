//! Produce: record batches are checked (magic, CRC-32C, codec, counts, record structure when
//! uncompressed) and stored verbatim in the `kafka` format; compressed batches stay compressed.
//! acks 0, 1 and -1 are accepted; 1 and -1 both wait for the topic's durability mode (there
//! are no replicas to wait for). Idempotent producers' batches go through the sequence check
//! in [`crate::broker::producers`], under that partition's producer lock.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use bytes::BytesMut;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use wharf_log_store::{AppendResult, NewBatch, StoreError, TimestampType, TopicInfo};

use super::{str_bytes, Request};
use crate::broker::kafka_batch::{self, BatchHeader, Codec, KafkaBatchError};
use crate::broker::producers::SequenceCheck;
use crate::broker::BrokerError;
use crate::kafka::errors::{self, code};

type Pending = Pin<Box<dyn Future<Output = Result<AppendResult, StoreError>> + Send>>;

/// A partition's outcome: known now, or waiting for its appends.
enum Outcome {
    Done(PartitionProduceResponse),
    Waiting {
        index: i32,
        appends: Vec<Pending>,
        log_append_time: bool,
        partition: std::sync::Arc<wharf_log_store::Partition>,
    },
}

pub async fn handle(req: &Request<'_>, r: ProduceRequest) -> Option<ProduceResponse> {
    let acks = r.acks;
    let mut topics: Vec<(kafka_protocol::messages::TopicName, Vec<Outcome>)> = Vec::new();
    let mut infos: HashMap<String, Result<TopicInfo, BrokerError>> = HashMap::new();
    for t in r.topic_data {
        let name = t.name.0.as_str().to_string();
        let info = infos
            .entry(name.clone())
            .or_insert_with(|| req.topic(&name));
        let mut outcomes = Vec::with_capacity(t.partition_data.len());
        for p in t.partition_data {
            let fail = |error: i16, message: Option<String>| {
                Outcome::Done(failed(req.version, p.index, error, message))
            };
            if r.transactional_id.is_some() {
                outcomes.push(fail(
                    code::INVALID_REQUEST,
                    Some("Wharf does not support transactions".into()),
                ));
                continue;
            }
            if !matches!(acks, -1..=1) {
                outcomes.push(fail(code::INVALID_REQUIRED_ACKS, None));
                continue;
            }
            let info = match info {
                Ok(i) => i,
                Err(e) => {
                    outcomes.push(fail(errors::for_broker(e), Some(e.to_string())));
                    continue;
                }
            };
            outcomes.push(partition(req, info, p.index, p.records).await);
        }
        topics.push((t.name, outcomes));
    }
    // Every append is queued; now wait for them (acks=0 too: the answer is just not sent).
    let mut responses = Vec::with_capacity(topics.len());
    for (name, outcomes) in topics {
        let mut parts = Vec::with_capacity(outcomes.len());
        for o in outcomes {
            parts.push(match o {
                Outcome::Done(r) => r,
                Outcome::Waiting {
                    index,
                    appends,
                    log_append_time,
                    partition,
                } => {
                    let mut first: Option<AppendResult> = None;
                    let mut error = None;
                    for a in appends {
                        match a.await {
                            Ok(res) => {
                                first.get_or_insert(res);
                            }
                            Err(e) => {
                                error.get_or_insert(BrokerError::from(e));
                            }
                        }
                    }
                    match (error, first) {
                        (Some(e), _) => failed(
                            req.version,
                            index,
                            errors::for_broker(&e),
                            Some(e.to_string()),
                        ),
                        (None, Some(res)) => {
                            stored(req.version, index, &res, log_append_time, &partition)
                        }
                        (None, None) => failed(req.version, index, code::CORRUPT_MESSAGE, None),
                    }
                }
            });
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(parts),
        );
    }
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
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

fn stored(
    version: i16,
    index: i32,
    res: &AppendResult,
    log_append_time: bool,
    partition: &wharf_log_store::Partition,
) -> PartitionProduceResponse {
    let mut r = PartitionProduceResponse::default()
        .with_index(index)
        .with_base_offset(res.base_offset as i64);
    if log_append_time {
        r = r.with_log_append_time_ms((res.append_timestamp / 1000) as i64);
    }
    if version >= 5 {
        r = r.with_log_start_offset(partition.log_start_offset() as i64);
    }
    r
}

fn batch_error(e: &KafkaBatchError) -> i16 {
    match e {
        KafkaBatchError::Control | KafkaBatchError::Transactional => code::INVALID_RECORD,
        KafkaBatchError::Magic(_) => code::UNSUPPORTED_FOR_MESSAGE_FORMAT,
        _ => code::CORRUPT_MESSAGE,
    }
}

/// Checks a partition's batches and queues their appends (idempotent ones are appended and
/// recorded here, one after another, under the partition's producer lock).
async fn partition(
    req: &Request<'_>,
    t: &TopicInfo,
    index: i32,
    records: Option<bytes::Bytes>,
) -> Outcome {
    let fail = |error: i16, message: String| {
        Outcome::Done(failed(req.version, index, error, Some(message)))
    };
    let partition = match req.partition(t, index) {
        Ok(p) => p,
        Err(e) => return fail(code::UNKNOWN_TOPIC_OR_PARTITION, e.to_string()),
    };
    let records = records.unwrap_or_default();
    let batches = match kafka_batch::split(&records) {
        Ok(b) if !b.is_empty() => b,
        Ok(_) => return fail(code::CORRUPT_MESSAGE, "no record batch".into()),
        Err(e) => return fail(batch_error(&e), e.to_string()),
    };
    let mut checked = Vec::with_capacity(batches.len());
    for b in batches {
        let h = match kafka_batch::validate(&b) {
            Ok(h) => h,
            Err(e) => return fail(batch_error(&e), e.to_string()),
        };
        if h.codec() == Ok(Codec::Zstd) && req.version < 7 {
            return fail(
                code::UNSUPPORTED_COMPRESSION_TYPE,
                "zstd needs Produce v7 or later".into(),
            );
        }
        checked.push((h, b));
    }
    let log_append_time = t.settings.timestamp_type == TimestampType::LogAppendTime;
    let idempotent = checked.iter().any(|(h, _)| h.has_producer());
    if !idempotent {
        let mut appends: Vec<Pending> = Vec::with_capacity(checked.len());
        for (_, b) in checked {
            match NewBatch::kafka(BytesMut::from(&b[..])) {
                Ok(nb) => appends.push(Box::pin(partition.submit(nb))),
                Err(e) => return fail(code::CORRUPT_MESSAGE, e.to_string()),
            }
        }
        return Outcome::Waiting {
            index,
            appends,
            log_append_time,
            partition,
        };
    }
    let mut state = match req.broker().producers.partition(&partition).await {
        Ok(s) => s,
        Err(e) => return fail(code::UNKNOWN_SERVER_ERROR, e.to_string()),
    };
    let mut first: Option<AppendResult> = None;
    for (h, b) in checked {
        let res = match state.check(&h) {
            SequenceCheck::Duplicate { base_offset } => AppendResult {
                base_offset,
                last_offset: base_offset + h.last_offset_delta as u64,
                append_timestamp: 0,
            },
            SequenceCheck::Append => match append_one(&partition, &b).await {
                Ok(res) => {
                    state.record(&h, res.base_offset);
                    res
                }
                Err(e) => return fail(errors::for_broker(&e), e.to_string()),
            },
            SequenceCheck::TooOld => {
                return fail(
                    code::DUPLICATE_SEQUENCE_NUMBER,
                    describe_sequence(&h, "is older than the batches remembered"),
                )
            }
            SequenceCheck::OutOfOrder => {
                return fail(
                    code::OUT_OF_ORDER_SEQUENCE_NUMBER,
                    describe_sequence(&h, "does not follow the last stored batch"),
                )
            }
            SequenceCheck::Fenced => {
                return fail(
                    code::INVALID_PRODUCER_EPOCH,
                    format!(
                        "producer {} epoch {} is older than the current one",
                        h.producer_id, h.producer_epoch
                    ),
                )
            }
        };
        first.get_or_insert(res);
    }
    match first {
        Some(res) => Outcome::Done(stored(
            req.version,
            index,
            &res,
            log_append_time,
            &partition,
        )),
        None => fail(code::CORRUPT_MESSAGE, "no record batch".into()),
    }
}

fn describe_sequence(h: &BatchHeader, what: &str) -> String {
    format!(
        "producer {} epoch {} sequence {}..={} {what}",
        h.producer_id,
        h.producer_epoch,
        h.base_sequence,
        h.last_sequence()
    )
}

async fn append_one(
    partition: &std::sync::Arc<wharf_log_store::Partition>,
    b: &[u8],
) -> Result<AppendResult, BrokerError> {
    let nb = NewBatch::kafka(BytesMut::from(b)).map_err(StoreError::from)?;
    Ok(partition.submit(nb).await?)
}
