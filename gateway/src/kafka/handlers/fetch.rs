//! Fetch: whole batches starting with the one that holds the fetch offset, converted to record
//! batches when they were written natively. At least one batch is returned even when it is
//! larger than the limits (KIP-74); otherwise `max_bytes` and `partition_max_bytes` hold.
//! `min_bytes` with `max_wait_ms` is a long poll woken by appends. Fetch sessions are declined
//! (session id 0), so clients send full requests; without transactions the last stable offset
//! is the high watermark.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use tokio::time::Instant;
use wharf_log_store::Partition;

use super::Request;
use crate::broker::translate;
use crate::kafka::errors::{self, code};

/// Longest long poll honoured, whatever the client asks.
const MAX_WAIT: Duration = Duration::from_secs(30);

struct Wanted {
    partition_index: i32,
    partition: Result<Arc<Partition>, i16>,
    fetch_offset: i64,
    max_bytes: usize,
}

pub async fn handle(req: &Request<'_>, r: FetchRequest) -> FetchResponse {
    let wait = Duration::from_millis(u64::try_from(r.max_wait_ms).unwrap_or(0)).min(MAX_WAIT);
    let deadline = Instant::now() + wait;
    let min_bytes = usize::try_from(r.min_bytes).unwrap_or(0);
    let max_bytes = usize::try_from(r.max_bytes).unwrap_or(0);
    let mut wanted: Vec<(TopicName, Vec<Wanted>)> = Vec::with_capacity(r.topics.len());
    for t in r.topics {
        let info = req.topic(t.topic.0.as_str());
        let parts = t
            .partitions
            .into_iter()
            .map(|p| Wanted {
                partition_index: p.partition,
                partition: match &info {
                    Ok(info) => req
                        .partition(info, p.partition)
                        .map_err(|_| code::UNKNOWN_TOPIC_OR_PARTITION),
                    Err(e) => Err(errors::for_broker(e)),
                },
                fetch_offset: p.fetch_offset,
                max_bytes: usize::try_from(p.partition_max_bytes).unwrap_or(0),
            })
            .collect();
        wanted.push((t.topic, parts));
    }
    loop {
        let (responses, bytes) = collect(req, &wanted, max_bytes);
        if bytes >= min_bytes.max(1) || Instant::now() >= deadline {
            return FetchResponse::default().with_responses(responses);
        }
        if !wait_for_any(&wanted, deadline).await {
            // Nothing arrived in time: answer with what there is (which is nothing new).
            let (responses, _) = collect(req, &wanted, max_bytes);
            return FetchResponse::default().with_responses(responses);
        }
    }
}

/// Reads every wanted partition once. Returns the answer and the record bytes in it.
fn collect(
    req: &Request<'_>,
    wanted: &[(TopicName, Vec<Wanted>)],
    max_bytes: usize,
) -> (Vec<FetchableTopicResponse>, usize) {
    let mut total = 0usize;
    let mut out = Vec::with_capacity(wanted.len());
    for (name, parts) in wanted {
        let mut datas = Vec::with_capacity(parts.len());
        for w in parts {
            let data = PartitionData::default().with_partition_index(w.partition_index);
            let p = match &w.partition {
                Ok(p) => p,
                Err(e) => {
                    datas.push(data.with_error_code(*e).with_records(Some(Bytes::new())));
                    continue;
                }
            };
            let stats = p.stats();
            let mut data = data
                .with_high_watermark(stats.high_watermark as i64)
                .with_log_start_offset(stats.log_start_offset as i64);
            if req.version >= 4 {
                data = data
                    .with_last_stable_offset(stats.high_watermark as i64)
                    .with_aborted_transactions(Some(Vec::new()));
            }
            let in_range = u64::try_from(w.fetch_offset)
                .ok()
                .filter(|&o| o >= stats.log_start_offset && o <= stats.high_watermark);
            let Some(from) = in_range else {
                datas.push(
                    data.with_error_code(code::OFFSET_OUT_OF_RANGE)
                        .with_records(Some(Bytes::new())),
                );
                continue;
            };
            let budget = w.max_bytes.min(max_bytes.saturating_sub(total));
            let records = if from == stats.high_watermark {
                Bytes::new()
            } else {
                match read(p, from, budget, total == 0) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(partition = %p.key(), "fetch read failed: {e}");
                        datas.push(
                            data.with_error_code(code::UNKNOWN_SERVER_ERROR)
                                .with_records(Some(Bytes::new())),
                        );
                        continue;
                    }
                }
            };
            total += records.len();
            datas.push(data.with_records(Some(records)));
        }
        out.push(
            FetchableTopicResponse::default()
                .with_topic(name.clone())
                .with_partitions(datas),
        );
    }
    (out, total)
}

/// Whole batches from `from`, in the Kafka format, within `budget` bytes, or one batch past it
/// when `first_in_response` (KIP-74: a consumer must always be able to make progress).
fn read(
    p: &Partition,
    from: u64,
    budget: usize,
    first_in_response: bool,
) -> Result<Bytes, wharf_log_store::StoreError> {
    let result = p.read(from, budget.max(1) as u64)?;
    let mut batches: Vec<Bytes> = Vec::with_capacity(result.batches.len());
    let mut size = 0usize;
    for b in &result.batches {
        let kafka = translate::as_kafka(b);
        if size + kafka.len() > budget && !(first_in_response && batches.is_empty()) {
            break;
        }
        size += kafka.len();
        batches.push(kafka);
    }
    Ok(match batches.len() {
        0 => Bytes::new(),
        1 => batches.remove(0),
        _ => {
            let mut all = BytesMut::with_capacity(size);
            for b in &batches {
                all.extend_from_slice(b);
            }
            all.freeze()
        }
    })
}

/// Waits until a wanted partition gets data past its fetch offset, or the deadline. True when
/// something arrived.
async fn wait_for_any(wanted: &[(TopicName, Vec<Wanted>)], deadline: Instant) -> bool {
    let mut waits = tokio::task::JoinSet::new();
    for w in wanted.iter().flat_map(|(_, parts)| parts) {
        if let (Ok(p), Ok(offset)) = (&w.partition, u64::try_from(w.fetch_offset)) {
            let p = Arc::clone(p);
            waits.spawn(async move { p.wait_for_data(offset, deadline).await });
        }
    }
    if waits.is_empty() {
        tokio::time::sleep_until(deadline).await;
        return false;
    }
    while let Some(done) = waits.join_next().await {
        if matches!(done, Ok(true)) {
            return true;
        }
    }
    false
}
