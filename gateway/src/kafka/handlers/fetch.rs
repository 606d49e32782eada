//! Fetch: decodes the request, makes one broker call ([`Broker::fetch`]: whole batches in the
//! Kafka format, at least one batch per response (KIP-74), a long poll woken by appends) and
//! encodes the answer. Fetch sessions are declined (session id 0), so clients send full
//! requests; without transactions the last stable offset is the high watermark.
//!
//! [`Broker::fetch`]: crate::broker::Broker::fetch

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};

use super::Request;
use crate::broker::consume::{FetchLimits, FetchWant, Fetched};
use crate::kafka::errors;

pub async fn handle(req: &Request<'_>, r: FetchRequest) -> FetchResponse {
    let limits = FetchLimits {
        max_bytes: usize::try_from(r.max_bytes).unwrap_or(0),
        min_bytes: usize::try_from(r.min_bytes).unwrap_or(0),
        max_wait: Duration::from_millis(u64::try_from(r.max_wait_ms).unwrap_or(0)),
    };
    let mut wants = Vec::new();
    let mut shape = Vec::with_capacity(r.topics.len());
    for t in r.topics {
        let mut indexes = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            indexes.push(p.partition);
            wants.push(FetchWant {
                topic: t.topic.0.as_str().to_string(),
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: usize::try_from(p.partition_max_bytes).unwrap_or(0),
            });
        }
        shape.push((t.topic, indexes));
    }
    let mut fetched = req.broker().fetch(wants, limits).await.into_iter();
    let responses = shape
        .into_iter()
        .map(|(name, indexes)| {
            let partitions = indexes
                .into_iter()
                .zip(fetched.by_ref())
                .map(|(index, f)| partition(req.version, index, f))
                .collect();
            FetchableTopicResponse::default()
                .with_topic(name)
                .with_partitions(partitions)
        })
        .collect();
    FetchResponse::default().with_responses(responses)
}

fn partition(version: i16, index: i32, f: Fetched) -> PartitionData {
    let mut data = PartitionData::default().with_partition_index(index);
    if let Some(b) = f.bounds {
        data = data
            .with_high_watermark(b.high_watermark as i64)
            .with_log_start_offset(b.log_start_offset as i64);
        if version >= 4 {
            data = data
                .with_last_stable_offset(b.high_watermark as i64)
                .with_aborted_transactions(Some(Vec::new()));
        }
    }
    match f.records {
        Ok(records) => data.with_records(Some(records)),
        Err(e) => data
            .with_error_code(errors::for_broker(&e))
            .with_records(Some(Bytes::new())),
    }
}
