//! DescribeConfigs and IncrementalAlterConfigs: the topic settings Wharf has, under Kafka's
//! names, and the server defaults behind them.
//!
//! | Kafka config | Wharf topic setting |
//! |---|---|
//! | `retention.ms` (-1: forever) | message expiry |
//! | `retention.bytes` (-1: unlimited) | max size (Wharf applies it to the topic as a whole) |
//! | `segment.bytes` | segment size |
//! | `segment.ms` | segment max age |
//! | `max.message.bytes` | largest batch |
//! | `message.timestamp.type` | `CreateTime` or `LogAppendTime` |
//! | `wharf.durability` | `os` or `fsync` |
//! | `cleanup.policy` | only `delete` |
//! | `compression.type` | only `producer` (batches are kept as sent) |

use std::time::Duration;

use crate::broker::acl::{Operation, Resource};
use crate::broker::{Durability, TimestampType, TopicSettings};
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

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_LIST: i8 = 7;

/// A config that cannot be applied, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

/// One config as described.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub value: String,
    pub source: i8,
    pub config_type: i8,
}

fn number(name: &str, v: &str) -> Result<i64, ConfigError> {
    v.trim()
        .parse::<i64>()
        .map_err(|_| ConfigError(format!("{name}: '{v}' is not a number")))
}

/// Sets (`Some`) or resets to the default (`None`) one Kafka config on `s`.
pub fn set(s: &mut TopicSettings, name: &str, value: Option<&str>) -> Result<(), ConfigError> {
    let positive = |v: &str| -> Result<Option<u64>, ConfigError> {
        match number(name, v)? {
            -1 => Ok(None),
            n if n > 0 => Ok(Some(n as u64)),
            n => Err(ConfigError(format!("{name}: {n} must be positive or -1"))),
        }
    };
    match (name, value) {
        ("retention.ms", None) => s.message_expiry = None,
        ("retention.ms", Some(v)) => s.message_expiry = positive(v)?.map(Duration::from_millis),
        ("retention.bytes", None) => s.max_size = None,
        ("retention.bytes", Some(v)) => s.max_size = positive(v)?,
        ("segment.bytes", None) => s.segment_size = None,
        ("segment.bytes", Some(v)) => {
            s.segment_size = Some(
                positive(v)?
                    .ok_or_else(|| ConfigError("segment.bytes: -1 is not a size".into()))?,
            )
        }
        ("segment.ms", None) => s.segment_max_age = None,
        ("segment.ms", Some(v)) => s.segment_max_age = positive(v)?.map(Duration::from_millis),
        ("max.message.bytes", None) => s.max_batch_bytes = None,
        ("max.message.bytes", Some(v)) => {
            let n = positive(v)?
                .ok_or_else(|| ConfigError("max.message.bytes: -1 is not a size".into()))?;
            s.max_batch_bytes = Some(
                u32::try_from(n)
                    .map_err(|_| ConfigError(format!("max.message.bytes: {n} is above 4 GiB")))?,
            );
        }
        ("message.timestamp.type", None) => s.timestamp_type = TimestampType::CreateTime,
        ("message.timestamp.type", Some("CreateTime")) => {
            s.timestamp_type = TimestampType::CreateTime
        }
        ("message.timestamp.type", Some("LogAppendTime")) => {
            s.timestamp_type = TimestampType::LogAppendTime
        }
        ("wharf.durability", None) => s.durability = None,
        ("wharf.durability", Some(v)) => {
            s.durability = Some(
                v.parse::<Durability>()
                    .map_err(|e| ConfigError(format!("wharf.durability: {e}")))?,
            )
        }
        ("cleanup.policy", None | Some("delete")) => {}
        ("compression.type", None | Some("producer")) => {}
        ("message.timestamp.type" | "cleanup.policy" | "compression.type", Some(v)) => {
            return Err(ConfigError(format!(
                "{name}: '{v}' is not supported by Wharf"
            )))
        }
        (other, _) => {
            return Err(ConfigError(format!(
                "{other} is not a topic config Wharf has"
            )))
        }
    }
    Ok(())
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("-1".into(), |d| d.as_millis().to_string())
}

/// A topic's configs, each with its source (set on the topic, or the server default).
pub fn topic_entries(req: &Request<'_>, s: &TopicSettings) -> Vec<Entry> {
    let store = req.broker().store_defaults();
    let e = |name: &str, value: String, set: bool, config_type: i8| Entry {
        name: name.into(),
        value,
        source: if set {
            SOURCE_DYNAMIC_TOPIC
        } else {
            SOURCE_DEFAULT
        },
        config_type,
    };
    vec![
        e(
            "retention.ms",
            ms(s.message_expiry),
            s.message_expiry.is_some(),
            TYPE_LONG,
        ),
        e(
            "retention.bytes",
            s.max_size.map_or("-1".into(), |b| b.to_string()),
            s.max_size.is_some(),
            TYPE_LONG,
        ),
        e(
            "segment.bytes",
            s.segment_size
                .unwrap_or(store.default_segment_size)
                .to_string(),
            s.segment_size.is_some(),
            TYPE_INT,
        ),
        e(
            "segment.ms",
            ms(Some(
                s.segment_max_age.unwrap_or(store.default_segment_max_age),
            )),
            s.segment_max_age.is_some(),
            TYPE_LONG,
        ),
        e(
            "max.message.bytes",
            s.max_batch_bytes
                .unwrap_or(store.default_max_batch_bytes)
                .to_string(),
            s.max_batch_bytes.is_some(),
            TYPE_INT,
        ),
        e(
            "message.timestamp.type",
            match s.timestamp_type {
                TimestampType::CreateTime => "CreateTime".into(),
                TimestampType::LogAppendTime => "LogAppendTime".into(),
            },
            s.timestamp_type != TimestampType::CreateTime,
            TYPE_STRING,
        ),
        e(
            "wharf.durability",
            durability(s.durability.unwrap_or(store.default_durability)),
            s.durability.is_some(),
            TYPE_STRING,
        ),
        e("cleanup.policy", "delete".into(), false, TYPE_LIST),
        e("compression.type", "producer".into(), false, TYPE_STRING),
    ]
}

fn durability(d: Durability) -> String {
    match d {
        Durability::Os => "os".into(),
        Durability::Fsync => "fsync".into(),
    }
}

fn broker_entries(req: &Request<'_>) -> Vec<Entry> {
    let store = req.broker().store_defaults();
    let c = &req.door.config;
    let e = |name: &str, value: String, config_type: i8| Entry {
        name: name.into(),
        value,
        source: SOURCE_STATIC_BROKER,
        config_type,
    };
    vec![
        e("num.partitions", c.default_partitions.to_string(), TYPE_INT),
        e(
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
            TYPE_BOOLEAN,
        ),
        e(
            "log.segment.bytes",
            store.default_segment_size.to_string(),
            TYPE_INT,
        ),
        e(
            "log.roll.ms",
            store.default_segment_max_age.as_millis().to_string(),
            TYPE_LONG,
        ),
        e(
            "message.max.bytes",
            store.default_max_batch_bytes.to_string(),
            TYPE_INT,
        ),
        e("log.retention.ms", "-1".into(), TYPE_LONG),
        e(
            "wharf.default.durability",
            durability(store.default_durability),
            TYPE_STRING,
        ),
        e("default.replication.factor", "1".into(), TYPE_INT),
        e("min.insync.replicas", "1".into(), TYPE_INT),
    ]
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
                    Ok(t) => topic_entries(req, &t.settings),
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
                        .with_config_source(e.source);
                    if req.version >= 3 {
                        c = c.with_config_type(e.config_type);
                    }
                    c
                })
                .collect();
            out.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// IncrementalAlterConfigs: SET and DELETE of topic configs (validated whole, then applied).
pub async fn incremental_alter(
    req: &Request<'_>,
    r: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(r.resources.len());
    for res in r.resources {
        let out = AlterConfigsResourceResponse::default()
            .with_resource_type(res.resource_type)
            .with_resource_name(res.resource_name.clone());
        let fail = |error: i16, message: String| {
            out.clone()
                .with_error_code(error)
                .with_error_message(Some(str_bytes(message)))
        };
        if let Some(error) = denied(
            req,
            Operation::AlterConfigs,
            res.resource_type,
            &res.resource_name,
        ) {
            responses.push(fail(
                error,
                "not authorized to alter this resource's configs".into(),
            ));
            continue;
        }
        if res.resource_type != RESOURCE_TOPIC {
            responses.push(fail(
                code::INVALID_REQUEST,
                "only topic configs can be altered; server settings live in server.toml".into(),
            ));
            continue;
        }
        let t = match req.topic(res.resource_name.as_str()) {
            Ok(t) => t,
            Err(e) => {
                let (error, message) = errors::answer("alter configs failed", &e);
                responses.push(fail(error, message));
                continue;
            }
        };
        let mut settings = t.settings.clone();
        let applied = res.configs.iter().try_for_each(|c| {
            let name = c.name.as_str();
            match c.config_operation {
                0 => set(&mut settings, name, c.value.as_ref().map(|v| v.as_str())),
                1 => set(&mut settings, name, None),
                2 | 3 => Err(ConfigError(format!(
                    "{name}: APPEND and SUBTRACT apply to list configs only"
                ))),
                op => Err(ConfigError(format!("unknown config operation {op}"))),
            }
        });
        if let Err(ConfigError(why)) = applied {
            responses.push(fail(code::INVALID_CONFIG, why));
            continue;
        }
        if let Err(e) = settings.validate() {
            responses.push(fail(code::INVALID_CONFIG, e.to_string()));
            continue;
        }
        if r.validate_only {
            responses.push(out);
            continue;
        }
        let updated = req
            .broker()
            .update_topic(t.stream_id, t.id, None, settings)
            .await;
        responses.push(match updated {
            Ok(_) => out,
            Err(e) => {
                let (error, message) = errors::answer("alter configs failed", &e);
                fail(error, message)
            }
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_map_onto_settings() {
        let mut s = TopicSettings::default();
        set(&mut s, "retention.ms", Some("60000")).unwrap();
        set(&mut s, "max.message.bytes", Some("1024")).unwrap();
        set(&mut s, "message.timestamp.type", Some("LogAppendTime")).unwrap();
        set(&mut s, "wharf.durability", Some("fsync")).unwrap();
        assert_eq!(s.message_expiry, Some(Duration::from_secs(60)));
        assert_eq!(s.max_batch_bytes, Some(1024));
        assert_eq!(s.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(s.durability, Some(Durability::Fsync));
        set(&mut s, "retention.ms", Some("-1")).unwrap();
        assert_eq!(s.message_expiry, None);
        assert!(set(&mut s, "cleanup.policy", Some("compact")).is_err());
        assert!(set(&mut s, "retention.ms", Some("soon")).is_err());
        assert!(set(&mut s, "no.such.config", Some("1")).is_err());
    }
}
