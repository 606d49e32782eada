//! ListOffsets: -1 latest (the high watermark), -2 earliest (the log start), -3 the record with
//! the largest timestamp, and any other value the first record whose timestamp is at or after
//! it (offset -1 when there is none). Look-ups go through the time index to a batch, then
//! through that batch's records.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use wharf_log_store::Partition;

use super::Request;
use crate::broker::translate;
use crate::kafka::errors::{self, code};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

pub fn handle(req: &Request<'_>, r: ListOffsetsRequest) -> ListOffsetsResponse {
    let topics = r
        .topics
        .into_iter()
        .map(|t| {
            let info = req.topic(t.name.0.as_str());
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let out = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    let part = match &info {
                        Ok(i) => req.partition(i, p.partition_index),
                        Err(e) => return out.with_error_code(errors::for_broker(e)),
                    };
                    let part = match part {
                        Ok(x) => x,
                        Err(_) => return out.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION),
                    };
                    let (offset, timestamp) = look_up(&part, p.timestamp);
                    out.with_offset(offset).with_timestamp(timestamp)
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// `(offset, timestamp)` for a ListOffsets timestamp; `(-1, -1)` when nothing matches.
pub fn look_up(p: &Partition, timestamp: i64) -> (i64, i64) {
    let stats = p.stats();
    match timestamp {
        LATEST => (stats.high_watermark as i64, -1),
        EARLIEST => (stats.log_start_offset as i64, -1),
        MAX_TIMESTAMP => {
            let Some((batch_offset, _)) = p.max_timestamp() else {
                return (-1, -1);
            };
            record_times(p, batch_offset)
                .into_iter()
                .filter(|&(o, _)| o >= stats.log_start_offset as i64)
                .fold(None, |best: Option<(i64, i64)>, (o, ts)| match best {
                    Some((_, b)) if b >= ts => best,
                    _ => Some((o, ts)),
                })
                .unwrap_or((-1, -1))
        }
        ts if ts >= 0 => {
            let Some(batch_offset) = p.offset_for_timestamp((ts as u64).saturating_mul(1000))
            else {
                return (-1, -1);
            };
            // The batch found is the first whose newest record is recent enough; the answer is
            // its first record at or after the timestamp, or the next batch's first.
            let mut from = batch_offset;
            loop {
                let times = record_times(p, from);
                let Some(&(last, _)) = times.last() else {
                    return (-1, -1);
                };
                if let Some(&(o, t)) = times
                    .iter()
                    .find(|&&(o, t)| t >= ts && o >= stats.log_start_offset as i64)
                {
                    return (o, t);
                }
                from = last as u64 + 1;
                if from >= stats.high_watermark {
                    return (-1, -1);
                }
            }
        }
        _ => (-1, -1),
    }
}

/// `(offset, timestamp ms)` of every record of the batch that holds `offset`.
fn record_times(p: &Partition, offset: u64) -> Vec<(i64, i64)> {
    let Ok(read) = p.read(offset, 1) else {
        return Vec::new();
    };
    let Some(batch) = read.batches.first() else {
        return Vec::new();
    };
    let Ok(native) = translate::as_native(batch) else {
        return Vec::new();
    };
    wharf_protocol::message::Messages::new(&native)
        .map(|m| {
            let us = if m.origin_timestamp() > 0 {
                m.origin_timestamp()
            } else {
                m.timestamp()
            };
            (m.offset() as i64, (us / 1000) as i64)
        })
        .collect()
}
