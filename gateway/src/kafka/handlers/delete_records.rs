//! DeleteRecords: moves a partition's log start (durably); -1 means up to the high watermark.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::Request;
use crate::kafka::errors::{self, code};

pub fn handle(req: &Request<'_>, r: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = r
        .topics
        .into_iter()
        .map(|t| {
            let info = req.topic(t.name.0.as_str());
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let out = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    let part = match &info {
                        Ok(i) => req.partition(i, p.partition_index),
                        Err(e) => return out.with_error_code(errors::for_broker(e)),
                    };
                    let Ok(part) = part else {
                        return out.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION);
                    };
                    let hw = part.high_watermark();
                    let target = match p.offset {
                        -1 => hw,
                        o if o >= 0 && (o as u64) <= hw => o as u64,
                        _ => return out.with_error_code(code::OFFSET_OUT_OF_RANGE),
                    };
                    match part.delete_records_before(target) {
                        Ok(start) => out.with_low_watermark(start as i64),
                        Err(e) => {
                            tracing::warn!(partition = %part.key(), "delete records failed: {e}");
                            out.with_error_code(code::UNKNOWN_SERVER_ERROR)
                        }
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
