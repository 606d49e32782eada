//! DescribeConfigs and IncrementalAlterConfigs: topic configs and the server defaults behind
//! them, under Kafka's names. What each config means and how it is checked is the broker
//! core's ([`crate::broker::topic_config`]), shared with the native door and AlterConfigs.

use crate::broker::acl::{Operation, Resource};
use crate::broker::topic_config::{self, AlterMode, ConfigChange, ConfigEntry, ConfigOp};
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};

use super::{str_bytes, Request};
use crate::kafka::errors::{self, code};

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

fn broker_entries(req: &Request<'_>) -> Vec<ConfigEntry> {
    use topic_config::{ConfigSource, ConfigType};
    let store = req.broker().store_defaults();
    let c = &req.door.config;
    let e = |name: &str, value: String, config_type| ConfigEntry {
        name: name.into(),
        value,
        source: ConfigSource::StaticBroker,
        config_type,
    };
    let mut entries = vec![
        e(
            "num.partitions",
            c.default_partitions.to_string(),
            ConfigType::Int,
        ),
        e(
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
            ConfigType::Boolean,
        ),
        e(
            "log.segment.bytes",
            store.default_segment_size.to_string(),
            ConfigType::Int,
        ),
        e(
            "log.roll.ms",
            store.default_segment_max_age.as_millis().to_string(),
            ConfigType::Long,
        ),
        e(
            "message.max.bytes",
            store.default_max_batch_bytes.to_string(),
            ConfigType::Int,
        ),
        e("log.retention.ms", "-1".into(), ConfigType::Long),
        e(
            "wharf.default.durability",
            match store.default_durability {
                crate::broker::Durability::Os => "os".into(),
                crate::broker::Durability::Fsync => "fsync".into(),
            },
            ConfigType::String,
        ),
        e("default.replication.factor", "1".into(), ConfigType::Int),
        e("min.insync.replicas", "1".into(), ConfigType::Int),
    ];
    entries.extend(topic_config::broker_defaults(store));
    entries
}

/// The authorization failure for `op` on a config resource, if the principal may not: a
/// topic's is TOPIC_AUTHORIZATION_FAILED, the broker's CLUSTER_AUTHORIZATION_FAILED.
fn denied(req: &Request<'_>, op: Operation, resource_type: i8, name: &str) -> Option<i16> {
    let (resource, error) = match resource_type {
        RESOURCE_TOPIC => (Resource::Topic(name), code::TOPIC_AUTHORIZATION_FAILED),
        RESOURCE_BROKER => (Resource::Cluster, code::CLUSTER_AUTHORIZATION_FAILED),
        _ => return None,
    };
    (!req.may(op, resource)).then_some(error)
}

pub fn describe(req: &Request<'_>, r: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let results = r
        .resources
        .into_iter()
        .map(|res| {
            let out = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            if let Some(error) = denied(
                req,
                Operation::DescribeConfigs,
                res.resource_type,
                &res.resource_name,
            ) {
                return out
                    .with_error_code(error)
                    .with_error_message(Some(str_bytes(
                        "not authorized to describe this resource's configs",
                    )));
            }
            let entries = match res.resource_type {
                RESOURCE_TOPIC => match req.topic(res.resource_name.as_str()) {
                    Ok(t) => req.broker().topic_config(&t),
                    Err(e) => {
                        let (error, message) = errors::answer("describe configs failed", &e);
                        return out
                            .with_error_code(error)
                            .with_error_message(Some(str_bytes(message)));
                    }
                },
                RESOURCE_BROKER => broker_entries(req),
                other => {
                    return out
                        .with_error_code(code::INVALID_REQUEST)
                        .with_error_message(Some(str_bytes(format!(
                            "resource type {other} has no configs in Wharf"
                        ))))
                }
            };
            let wanted = res.configuration_keys;
            let configs = entries
                .into_iter()
                .filter(|e| {
                    wanted.as_ref().is_none_or(|keys| {
                        keys.is_empty() || keys.iter().any(|k| k.as_str() == e.name)
                    })
                })
                .map(|e| {
                    let mut c = DescribeConfigsResourceResult::default()
                        .with_name(str_bytes(e.name))
                        .with_value(Some(str_bytes(e.value)))
                        .with_config_source(e.source.kafka_code());
                    if req.version >= 3 {
                        c = c.with_config_type(e.config_type.kafka_code());
                    }
                    c
                })
                .collect();
            out.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// A refusal of one resource of an alter request: its error code and message.
pub type Refusal = (i16, String);

/// Kafka refuses a resource that names a config twice (INVALID_REQUEST).
pub fn refuse_duplicates<'a>(names: impl Iterator<Item = &'a str>) -> Result<(), Refusal> {
    let mut seen = std::collections::HashSet::new();
    for n in names {
        if !seen.insert(n) {
            return Err((
                code::INVALID_REQUEST,
                format!("Error due to duplicate config keys: {n}"),
            ));
        }
    }
    Ok(())
}

/// One resource of IncrementalAlterConfigs or AlterConfigs, after its changes were read:
/// authorization (AlterConfigs on the topic), the resource type, then the broker core.
pub async fn alter_resource(
    req: &Request<'_>,
    resource_type: i8,
    name: &str,
    mode: AlterMode,
    changes: Result<Vec<ConfigChange>, Refusal>,
    validate_only: bool,
) -> Result<(), Refusal> {
    if let Some(error) = denied(req, Operation::AlterConfigs, resource_type, name) {
        return Err((
            error,
            "not authorized to alter this resource's configs".into(),
        ));
    }
    if resource_type != RESOURCE_TOPIC {
        return Err((
            code::INVALID_REQUEST,
            "only topic configs can be altered; server settings live in server.toml".into(),
        ));
    }
    let changes = changes?;
    let t = req
        .topic(name)
        .map_err(|e| errors::answer("alter configs failed", &e))?;
    req.broker()
        .alter_topic_config(t.stream_id, t.id, mode, changes, validate_only)
        .await
        .map(drop)
        .map_err(|e| errors::answer("alter configs failed", &e))
}

/// The changes of one IncrementalAlterConfigs resource (operations 0 SET, 1 DELETE, 2 APPEND,
/// 3 SUBTRACT), refused as Kafka does: duplicate names, a missing value, an unknown operation.
fn incremental_changes(
    configs: &[kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig],
) -> Result<Vec<ConfigChange>, Refusal> {
    refuse_duplicates(configs.iter().map(|c| c.name.as_str()))?;
    configs
        .iter()
        .map(|c| {
            let name = c.name.as_str().to_string();
            let value = || {
                c.value
                    .as_ref()
                    .map(|v| v.as_str().to_string())
                    .ok_or_else(|| {
                        (
                            code::INVALID_REQUEST,
                            format!("Null value not supported for : {name}"),
                        )
                    })
            };
            let op = match c.config_operation {
                0 => ConfigOp::Set(value()?),
                1 => ConfigOp::Delete,
                2 => ConfigOp::Append(value()?),
                3 => ConfigOp::Subtract(value()?),
                op => {
                    return Err((
                        code::INVALID_REQUEST,
                        format!("unknown config operation {op} for {name}"),
                    ))
                }
            };
            Ok(ConfigChange { name, op })
        })
        .collect()
}

/// IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT of topic configs (checked whole,
/// then applied).
pub async fn incremental_alter(
    req: &Request<'_>,
    r: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(r.resources.len());
    for res in r.resources {
        let out = AlterConfigsResourceResponse::default()
            .with_resource_type(res.resource_type)
            .with_resource_name(res.resource_name.clone());
        let outcome = alter_resource(
            req,
            res.resource_type,
            res.resource_name.as_str(),
            AlterMode::Incremental,
            incremental_changes(&res.configs),
            r.validate_only,
        )
        .await;
        responses.push(match outcome {
            Ok(()) => out,
            Err((error, message)) => out
                .with_error_code(error)
                .with_error_message(Some(str_bytes(message))),
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
