//! CreatePartitions: grows a topic to the requested count (never shrinks it).

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::{str_bytes, Request};
use crate::broker::acl::{Operation, Resource};
use crate::broker::admin;
use crate::kafka::errors::{self, code};
use crate::kafka::NODE_ID;

pub async fn handle(req: &Request<'_>, r: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(r.topics.len());
    for t in r.topics {
        let out = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        let fail = |error: i16, message: String| {
            out.clone()
                .with_error_code(error)
                .with_error_message(Some(str_bytes(message)))
        };
        if !req.may(Operation::Alter, Resource::Topic(t.name.0.as_str())) {
            results.push(fail(
                code::TOPIC_AUTHORIZATION_FAILED,
                format!("not authorized to alter topic `{}`", t.name.0.as_str()),
            ));
            continue;
        }
        let info = match req.topic(t.name.0.as_str()) {
            Ok(i) => i,
            Err(e) => {
                let (error, message) = errors::answer("create partitions failed", &e);
                results.push(fail(error, message));
                continue;
            }
        };
        let current = info.partitions as i32;
        if t.count <= current {
            results.push(fail(
                code::INVALID_PARTITIONS,
                format!(
                    "topic has {current} partitions; the new count {} must be larger",
                    t.count
                ),
            ));
            continue;
        }
        // A manual assignment (null: none) must give each new partition this node, once, as
        // Kafka's controller checks it against the cluster's brokers.
        if let Some(given) = &t.assignments {
            let replicas: Vec<Vec<i32>> = given
                .iter()
                .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                .collect();
            let lists: Vec<&[i32]> = replicas.iter().map(Vec::as_slice).collect();
            let additional = usize::try_from(t.count - current).unwrap_or(usize::MAX);
            if let Err(e) = admin::added_partitions_assignment(&lists, additional, NODE_ID) {
                results.push(fail(
                    code::INVALID_REPLICA_ASSIGNMENT,
                    format!("invalid manual partition assignment: {e}"),
                ));
                continue;
            }
        }
        let adding = (t.count - current) as u32;
        let added = if r.validate_only {
            req.broker()
                .check_add_partitions(info.stream_id, info.id, adding)
                .map(|()| 0)
        } else {
            req.broker()
                .add_partitions(info.stream_id, info.id, adding)
                .await
        };
        results.push(match added {
            Ok(_) => out,
            Err(e) => {
                let (error, message) = errors::answer("create partitions failed", &e);
                fail(error, message)
            }
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}
