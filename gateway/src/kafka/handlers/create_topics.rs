//! CreateTopics (with `validate_only` and configs): the broker resolves the Kafka name, keeps
//! the naming rules of both doors and creates the topic.

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::{str_bytes, Request};
use crate::broker::acl::{Operation, Resource};
use crate::broker::admin;
use crate::broker::names::topic_uuid;
use crate::broker::topic_config::{self, ConfigChange};
use crate::kafka::errors::{self, code};
use crate::kafka::NODE_ID;

pub async fn handle(req: &Request<'_>, r: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(r.topics.len());
    for t in r.topics {
        let name = t.name.0.as_str().to_string();
        let fail = |error: i16, message: String| {
            CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_error_code(error)
                .with_error_message(Some(str_bytes(message)))
        };
        if !req.may(Operation::Create, Resource::Topic(&name)) {
            results.push(fail(
                code::TOPIC_AUTHORIZATION_FAILED,
                format!("not authorized to create topic `{name}`"),
            ));
            continue;
        }
        let partitions = if t.assignments.is_empty() {
            let partitions = match t.num_partitions {
                -1 => req.door.config.default_partitions as i32,
                n => n,
            };
            if partitions <= 0 {
                results.push(fail(
                    code::INVALID_PARTITIONS,
                    format!("number of partitions {partitions} must be positive"),
                ));
                continue;
            }
            if !matches!(t.replication_factor, -1 | 1) {
                results.push(fail(
                    code::INVALID_REPLICATION_FACTOR,
                    format!(
                        "replication factor {} is impossible: Wharf is one broker",
                        t.replication_factor
                    ),
                ));
                continue;
            }
            partitions
        } else {
            // A manual assignment, as Kafka's controller checks it: the count and factor come
            // from it (both must be -1), and each partition's replicas must be this node.
            if t.replication_factor != -1 || t.num_partitions != -1 {
                let field = if t.replication_factor != -1 {
                    "replication factor"
                } else {
                    "number of partitions"
                };
                results.push(fail(
                    code::INVALID_REQUEST,
                    format!("a manual partition assignment was given, so the {field} must be -1"),
                ));
                continue;
            }
            let replicas: Vec<Vec<i32>> = t
                .assignments
                .iter()
                .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                .collect();
            let assignments: Vec<(i32, &[i32])> = t
                .assignments
                .iter()
                .zip(&replicas)
                .map(|(a, r)| (a.partition_index, r.as_slice()))
                .collect();
            match admin::new_topic_assignment(&assignments, NODE_ID) {
                Ok(count) => i32::try_from(count).unwrap_or(i32::MAX),
                Err(e) => {
                    results.push(fail(
                        code::INVALID_REPLICA_ASSIGNMENT,
                        format!("invalid manual partition assignment: {e}"),
                    ));
                    continue;
                }
            }
        };
        let nulls: Vec<&str> = t
            .configs
            .iter()
            .filter(|c| c.value.is_none())
            .map(|c| c.name.as_str())
            .collect();
        if !nulls.is_empty() {
            results.push(fail(
                code::INVALID_CONFIG,
                format!(
                    "Null value not supported for topic configs: {}",
                    nulls.join(",")
                ),
            ));
            continue;
        }
        let changes: Vec<ConfigChange> = t
            .configs
            .iter()
            .filter_map(|c| {
                let v = c.value.as_ref()?;
                Some(ConfigChange::set(c.name.as_str(), v.as_str()))
            })
            .collect();
        let settings =
            match topic_config::new_topic_settings(&changes, req.broker().store_defaults()) {
                Ok(s) => s,
                Err(why) => {
                    results.push(fail(code::INVALID_CONFIG, why.0));
                    continue;
                }
            };
        let outcome = req
            .broker()
            .create_kafka_topic(&name, partitions as u32, settings.clone(), r.validate_only)
            .await;
        match outcome {
            Err(e) => {
                let (error, message) = errors::answer("create topic failed", &e);
                results.push(fail(error, message));
            }
            Ok(created) => {
                let mut ok = CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_num_partitions(partitions)
                    .with_replication_factor(1);
                if let Some(info) = &created {
                    ok = ok.with_topic_id(topic_uuid(info));
                }
                if req.version >= 5 {
                    let listed = topic_config::describe(&settings, req.broker().store_defaults())
                        .into_iter()
                        .map(|e| {
                            CreatableTopicConfigs::default()
                                .with_name(str_bytes(e.name))
                                .with_value(Some(str_bytes(e.value)))
                                .with_config_source(e.source.kafka_code())
                        })
                        .collect();
                    ok = ok.with_configs(Some(listed));
                }
                results.push(ok);
            }
        }
    }
    CreateTopicsResponse::default().with_topics(results)
}
