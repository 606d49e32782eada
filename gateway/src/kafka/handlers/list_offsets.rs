//! ListOffsets: each partition's answer comes from [`Broker::kafka_offset_for_time`] (-1
//! latest, -2 earliest, -3 the record with the largest timestamp, -4 the earliest offset on
//! local disk (v8+, KIP-1005), -5 the last offset in the remote tier (v9+, -1 when nothing is
//! uploaded), else the first record at or after the timestamp; offset -1 when there is none),
//! at the request's `isolation_level` (v2+; `read_committed` answers are bounded by the last
//! stable offset, as Kafka's).
//!
//! From v10 the request carries `timeout_ms`: the time its look-ups may take, which matters
//! when a timestamp look-up has to fetch an index from the object store. A partition not
//! answered by then is REQUEST_TIMED_OUT, as Kafka's `DelayedRemoteListOffsets` answers it;
//! the others keep their answers.
//!
//! [`Broker::kafka_offset_for_time`]: crate::broker::Broker::kafka_offset_for_time

use std::future::Future;
use std::time::Duration;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use tokio::time::Instant;

use super::Request;
use crate::broker::acl::{Operation, Resource};
use crate::broker::consume::Isolation;
use crate::kafka::errors;

/// The first version whose request carries `timeout_ms`.
const TIMEOUT_VERSION: i16 = 10;

/// When the request's look-ups must be answered: `timeout_ms` after `now` from v10. Earlier
/// versions (and a v10 client sending 0) leave them unbounded here; each object-store call is
/// bounded by its own request timeout.
fn deadline(version: i16, timeout_ms: i32, now: Instant) -> Option<Instant> {
    (version >= TIMEOUT_VERSION && timeout_ms > 0)
        .then(|| now + Duration::from_millis(timeout_ms.unsigned_abs().into()))
}

/// `look_up`'s answer, or `None` when the deadline passes first.
async fn by<T>(deadline: Option<Instant>, look_up: impl Future<Output = T>) -> Option<T> {
    match deadline {
        Some(at) => tokio::time::timeout_at(at, look_up).await.ok(),
        None => Some(look_up.await),
    }
}

pub async fn handle(req: &Request<'_>, r: ListOffsetsRequest) -> ListOffsetsResponse {
    let isolation = Isolation::from_kafka(r.isolation_level);
    // Earlier versions (and a v10 client sending 0) leave the look-ups unbounded here; they
    // are bounded by the object store's own request timeout.
    let deadline = deadline(req.version, r.timeout_ms, Instant::now());
    let mut topics = Vec::with_capacity(r.topics.len());
    for t in r.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        let may = req.may(Operation::Describe, Resource::Topic(t.name.0.as_str()));
        for p in t.partitions {
            if !may {
                partitions.push(
                    ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(errors::code::TOPIC_AUTHORIZATION_FAILED)
                        .with_offset(-1)
                        .with_timestamp(-1),
                );
                continue;
            }
            let out =
                ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
            let look_up = req.broker().kafka_offset_for_time(
                t.name.0.as_str(),
                p.partition_index,
                p.timestamp,
                isolation,
            );
            partitions.push(match by(deadline, look_up).await {
                Some(Ok((offset, timestamp))) => out.with_offset(offset).with_timestamp(timestamp),
                Some(Err(e)) => out.with_error_code(errors::for_broker(&e)),
                None => out
                    .with_error_code(errors::code::REQUEST_TIMED_OUT)
                    .with_offset(-1)
                    .with_timestamp(-1),
            });
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_v10_bounds_the_look_ups_by_its_timeout() {
        let now = Instant::now();
        assert_eq!(deadline(9, 300, now), None, "v9 has no timeout_ms");
        assert_eq!(deadline(10, 0, now), None);
        assert_eq!(deadline(10, -1, now), None);
        assert_eq!(
            deadline(10, 300, now),
            Some(now + Duration::from_millis(300))
        );
    }

    /// A look-up stuck on a slow object store is answered (as REQUEST_TIMED_OUT by the
    /// caller) once the request's timeout_ms has passed, not whenever the store answers.
    #[tokio::test(start_paused = true)]
    async fn a_look_up_past_the_deadline_gives_up() {
        let start = Instant::now();
        let at = deadline(10, 300, start);
        assert_eq!(by(at, std::future::pending::<()>()).await, None);
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(300),
            "bound: timeout_ms"
        );
        assert_eq!(by(at, async { 7 }).await, Some(7), "a ready answer is kept");
        assert_eq!(by(None, async { 7 }).await, Some(7));
    }
}
