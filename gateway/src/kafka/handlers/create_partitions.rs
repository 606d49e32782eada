//! CreatePartitions: grows a topic to the requested count (never shrinks it).

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use wharf_log_store::Ident;

use super::{str_bytes, Request};
use crate::kafka::errors::{self, code};

pub fn handle(req: &Request<'_>, r: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let results = r
        .topics
        .into_iter()
        .map(|t| {
            let out = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            let fail = |error: i16, message: String| {
                out.clone()
                    .with_error_code(error)
                    .with_error_message(Some(str_bytes(message)))
            };
            let info = match req.topic(t.name.0.as_str()) {
                Ok(i) => i,
                Err(e) => return fail(errors::for_broker(&e), e.to_string()),
            };
            if t.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
                return fail(
                    code::INVALID_REPLICA_ASSIGNMENT,
                    "replica assignments are not supported on a single broker".into(),
                );
            }
            let current = info.partitions as i32;
            if t.count <= current {
                return fail(
                    code::INVALID_PARTITIONS,
                    format!(
                        "topic has {current} partitions; the new count {} must be larger",
                        t.count
                    ),
                );
            }
            if r.validate_only {
                return out;
            }
            match req.broker().store.add_partitions(
                Ident::Id(info.stream_id),
                Ident::Id(info.id),
                (t.count - current) as u32,
            ) {
                Ok(_) => out,
                Err(e) => {
                    let e = crate::broker::BrokerError::from(e);
                    fail(errors::for_broker(&e), e.to_string())
                }
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
