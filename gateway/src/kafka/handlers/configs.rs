//! DescribeConfigs and IncrementalAlterConfigs on Kafka's config resources: TOPIC (topic
//! configs and the server defaults behind them), BROKER (the server's settings under Kafka's
//! names, read-only but for the dynamic ones, cluster-wide with an empty name or for this node
//! by its id) and GROUP (KIP-848's group configs). What each config means and how it is
//! checked is the broker core's ([`crate::broker::topic_config`],
//! [`crate::broker::broker_config`], [`crate::broker::group_config`]), shared with the native
//! door and AlterConfigs; here are Kafka's resource rules (names, authorization, each resource
//! at most once) and the encoding.

use std::collections::HashSet;

use crate::broker::acl::{Operation, Resource};
use crate::broker::broker_config::{BrokerConfigError, Scope, DYNAMIC};
use crate::broker::group_config::GroupConfigError;
use crate::broker::topic_config::{
    self, AlterMode, ConfigChange, ConfigEntry, ConfigOp, ConfigSource, ConfigType,
};
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};

use super::{str_bytes, Request};
use crate::kafka::errors::{self, code};
use crate::kafka::NODE_ID;

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
pub const RESOURCE_BROKER_LOGGER: i8 = 8;
pub const RESOURCE_CLIENT_METRICS: i8 = 16;
pub const RESOURCE_GROUP: i8 = 32;

/// The server's settings under Kafka's broker config names, with their values in this
/// server: what clients and tools read (listeners, log dirs, topic defaults, the group
/// coordinator's bounds), then the log and cleaner defaults, then the dynamic ones.
fn broker_entries(req: &Request<'_>) -> Vec<ConfigEntry> {
    let broker = req.broker();
    let store = broker.store_defaults();
    let c = &req.door.config;
    let e = |name: &str, value: String, config_type| ConfigEntry {
        name: name.into(),
        value,
        source: ConfigSource::StaticBroker,
        config_type,
    };
    let ms = |d: std::time::Duration| d.as_millis().to_string();
    // A listener bound to port 0 is known by the port it got: the one this client reached,
    // when it came in on it.
    let bound = |l: &crate::config::KafkaListener| {
        let this = l.address == req.listener.address
            || (l.address.port() == 0
                && l.address.ip() == req.listener.address.ip()
                && l.security_protocol() == req.listener.security_protocol());
        if this {
            req.local
        } else {
            l.address
        }
    };
    let listeners = c.listeners();
    let listeners_text = listeners
        .iter()
        .map(|l| format!("{}://{}", l.security_protocol(), bound(l)))
        .collect::<Vec<_>>()
        .join(",");
    let advertised_text = listeners
        .iter()
        .map(|l| {
            let (host, port) = crate::kafka::advertised(l, bound(l));
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host
            };
            format!("{}://{host}:{port}", l.security_protocol())
        })
        .collect::<Vec<_>>()
        .join(",");
    let groups = &c.groups;
    let consumer = &groups.consumer;
    let mut entries = vec![
        e("node.id", NODE_ID.to_string(), ConfigType::Int),
        e("broker.id", NODE_ID.to_string(), ConfigType::Int),
        e(
            "process.roles",
            "broker,controller".into(),
            ConfigType::List,
        ),
        e("listeners", listeners_text, ConfigType::List),
        e("advertised.listeners", advertised_text, ConfigType::String),
        e(
            "log.dirs",
            broker.data_dir().display().to_string(),
            ConfigType::String,
        ),
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
        e("delete.topic.enable", "true".into(), ConfigType::Boolean),
        e("default.replication.factor", "1".into(), ConfigType::Int),
        e("min.insync.replicas", "1".into(), ConfigType::Int),
        e(
            "offsets.topic.replication.factor",
            "1".into(),
            ConfigType::Short,
        ),
        e(
            "transaction.state.log.replication.factor",
            "1".into(),
            ConfigType::Short,
        ),
        e("transaction.state.log.min.isr", "1".into(), ConfigType::Int),
        e(
            "socket.request.max.bytes",
            c.max_request_size.to_string(),
            ConfigType::Int,
        ),
        e(
            "fetch.max.bytes",
            c.fetch_max_bytes.to_string(),
            ConfigType::Int,
        ),
        e(
            "max.connections",
            c.limits.max_connections.to_string(),
            ConfigType::Int,
        ),
        e(
            "max.connections.per.ip",
            c.limits.max_connections_per_ip.to_string(),
            ConfigType::Int,
        ),
        e(
            "connections.max.idle.ms",
            ms(c.limits.idle_timeout),
            ConfigType::Long,
        ),
        e(
            "sasl.enabled.mechanisms",
            c.sasl_mechanisms
                .iter()
                .map(|m| m.name())
                .collect::<Vec<_>>()
                .join(","),
            ConfigType::List,
        ),
        e(
            "group.min.session.timeout.ms",
            ms(groups.min_session_timeout),
            ConfigType::Int,
        ),
        e(
            "group.max.session.timeout.ms",
            ms(groups.max_session_timeout),
            ConfigType::Int,
        ),
        e(
            "group.initial.rebalance.delay.ms",
            ms(groups.initial_rebalance_delay),
            ConfigType::Int,
        ),
        e(
            "group.max.size",
            groups.max_group_size.to_string(),
            ConfigType::Int,
        ),
        e(
            "group.consumer.session.timeout.ms",
            ms(consumer.session_timeout),
            ConfigType::Int,
        ),
        e(
            "group.consumer.min.session.timeout.ms",
            ms(consumer.min_session_timeout),
            ConfigType::Int,
        ),
        e(
            "group.consumer.max.session.timeout.ms",
            ms(consumer.max_session_timeout),
            ConfigType::Int,
        ),
        e(
            "group.consumer.heartbeat.interval.ms",
            ms(consumer.heartbeat_interval),
            ConfigType::Int,
        ),
        e(
            "group.consumer.min.heartbeat.interval.ms",
            ms(consumer.min_heartbeat_interval),
            ConfigType::Int,
        ),
        e(
            "group.consumer.max.heartbeat.interval.ms",
            ms(consumer.max_heartbeat_interval),
            ConfigType::Int,
        ),
        e(
            "group.consumer.max.size",
            consumer.max_size.to_string(),
            ConfigType::Int,
        ),
        e(
            "group.consumer.assignors",
            consumer.assignors.join(","),
            ConfigType::List,
        ),
        e(
            "group.consumer.migration.policy",
            consumer.migration_policy.clone(),
            ConfigType::String,
        ),
        e(
            "transaction.max.timeout.ms",
            ms(c.transactions.max_timeout),
            ConfigType::Int,
        ),
        e(
            "transactional.id.expiration.ms",
            ms(c.transactions.id_expiration),
            ConfigType::Int,
        ),
        // The client quotas' rate windows (Kafka's names for `[kafka] quota_window_num` and
        // `quota_window_size`) and the fetch session cache (KIP-227).
        e(
            "quota.window.num",
            c.quota_windows.samples.to_string(),
            ConfigType::Int,
        ),
        e(
            "quota.window.size.seconds",
            c.quota_windows.size.as_secs().to_string(),
            ConfigType::Int,
        ),
        e(
            "max.incremental.fetch.session.cache.slots",
            c.max_incremental_fetch_session_cache_slots.to_string(),
            ConfigType::Int,
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
        e("log.retention.bytes", "-1".into(), ConfigType::Long),
        e(
            "wharf.default.durability",
            match store.default_durability {
                crate::broker::Durability::Os => "os".into(),
                crate::broker::Durability::Fsync => "fsync".into(),
            },
            ConfigType::String,
        ),
    ];
    entries.extend(topic_config::broker_defaults(store));
    // The dynamic ones: set at run time (this node's value, else the cluster-wide one), else
    // Kafka's defaults.
    let builtin = topic_config::describe(&crate::broker::TopicSettings::default(), store);
    for name in DYNAMIC {
        let default = builtin.iter().find(|d| d.name == *name);
        let (value, source) = broker.broker_configs().value(name).unwrap_or_else(|| {
            (
                default.map_or_else(String::new, |d| d.value.clone()),
                ConfigSource::Default,
            )
        });
        entries.push(ConfigEntry {
            name: (*name).into(),
            value,
            source,
            config_type: default.map_or(ConfigType::String, |d| d.config_type),
        });
    }
    entries
}

/// The cluster-wide dynamic settings (the BROKER resource with an empty name lists only
/// those, as Kafka does).
fn cluster_entries(req: &Request<'_>) -> Vec<ConfigEntry> {
    req.broker()
        .broker_configs()
        .of(Scope::Cluster)
        .into_iter()
        .map(|(name, value)| ConfigEntry {
            config_type: if name == "compression.type" {
                ConfigType::String
            } else {
                ConfigType::Int
            },
            name,
            value,
            source: ConfigSource::DynamicDefaultBroker,
        })
        .collect()
}

/// The authorization failure for `op` on a config resource, if the principal may not: a
/// topic's is TOPIC_AUTHORIZATION_FAILED, a group's GROUP_AUTHORIZATION_FAILED, the
/// broker's (and its loggers' and client metrics') CLUSTER_AUTHORIZATION_FAILED.
fn denied(req: &Request<'_>, op: Operation, resource_type: i8, name: &str) -> Option<i16> {
    let (resource, error) = match resource_type {
        RESOURCE_TOPIC => (Resource::Topic(name), code::TOPIC_AUTHORIZATION_FAILED),
        RESOURCE_GROUP => (Resource::Group(name), code::GROUP_AUTHORIZATION_FAILED),
        RESOURCE_BROKER | RESOURCE_BROKER_LOGGER | RESOURCE_CLIENT_METRICS => {
            (Resource::Cluster, code::CLUSTER_AUTHORIZATION_FAILED)
        }
        _ => return None,
    };
    (!req.may(op, resource)).then_some(error)
}

/// Kafka's message for an authorization failure (`Errors.message()`).
fn denied_message(error: i16) -> &'static str {
    match error {
        code::TOPIC_AUTHORIZATION_FAILED => "Topic authorization failed.",
        code::GROUP_AUTHORIZATION_FAILED => "Group authorization failed.",
        _ => "Cluster authorization failed.",
    }
}

/// A refusal of one resource: its error code and message.
pub type Refusal = (i16, String);

/// Which BROKER resource `name` is: "" the cluster-wide one, this node's id this node's.
fn broker_scope(name: &str, describe: bool) -> Result<Scope, Refusal> {
    if name.is_empty() {
        return Ok(Scope::Cluster);
    }
    let id = name.parse::<i32>().map_err(|_| {
        let what = if describe { "Broker id" } else { "Node id" };
        (
            code::INVALID_REQUEST,
            format!("{what} must be an integer, but it is: {name}"),
        )
    })?;
    if id != NODE_ID {
        let expected = if describe {
            format!("{NODE_ID} or empty string")
        } else {
            NODE_ID.to_string()
        };
        return Err((
            code::INVALID_REQUEST,
            format!("Unexpected broker id, expected {expected}, but received {name}"),
        ));
    }
    Ok(Scope::Node)
}

/// One resource's configs, or why not.
fn described(
    req: &Request<'_>,
    resource_type: i8,
    name: &str,
) -> Result<(Vec<ConfigEntry>, bool), Refusal> {
    match resource_type {
        RESOURCE_TOPIC => {
            let t = req
                .topic(name)
                .map_err(|e| errors::answer("describe configs failed", &e))?;
            Ok((req.broker().topic_config(&t), false))
        }
        RESOURCE_BROKER => match broker_scope(name, true)? {
            Scope::Cluster => Ok((cluster_entries(req), true)),
            Scope::Node => Ok((broker_entries(req), true)),
        },
        RESOURCE_GROUP => {
            if name.is_empty() {
                return Err((code::INVALID_REQUEST, "Group name must not be empty".into()));
            }
            Ok((req.broker().describe_group_config(name), false))
        }
        other => Err((
            code::INVALID_REQUEST,
            format!("Unsupported resource type: {other}"),
        )),
    }
}

pub fn describe(req: &Request<'_>, r: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let synonyms_wanted = r.include_synonyms;
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
                    .with_error_message(Some(str_bytes(denied_message(error))));
            }
            let (entries, broker) =
                match described(req, res.resource_type, res.resource_name.as_str()) {
                    Ok(found) => found,
                    Err((error, message)) => {
                        return out
                            .with_error_code(error)
                            .with_error_message(Some(str_bytes(message)))
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
                    // A broker setting is read-only unless it is one Wharf changes at run time.
                    let read_only = broker && !DYNAMIC.contains(&e.name.as_str());
                    let synonyms = if synonyms_wanted {
                        vec![DescribeConfigsSynonym::default()
                            .with_name(str_bytes(e.name.clone()))
                            .with_value(Some(str_bytes(e.value.clone())))
                            .with_source(e.source.kafka_code())]
                    } else {
                        Vec::new()
                    };
                    let mut c = DescribeConfigsResourceResult::default()
                        .with_name(str_bytes(e.name))
                        .with_value(Some(str_bytes(e.value)))
                        .with_read_only(read_only)
                        .with_config_source(e.source.kafka_code())
                        .with_synonyms(synonyms);
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

/// Kafka refuses a resource that names a config twice (INVALID_REQUEST).
pub fn refuse_duplicates<'a>(names: impl Iterator<Item = &'a str>) -> Result<(), Refusal> {
    let mut seen = HashSet::new();
    for n in names {
        if !seen.insert(n) {
            return Err((
                code::INVALID_REQUEST,
                "Error due to duplicate config keys".into(),
            ));
        }
    }
    Ok(())
}

/// The indexes of resources that appear more than once in one alter request: Kafka refuses
/// every copy ("Each resource must appear at most once.", INVALID_REQUEST).
pub fn repeated_resources<'a>(resources: impl Iterator<Item = (i8, &'a str)>) -> HashSet<usize> {
    let all: Vec<(i8, &str)> = resources.collect();
    let mut count = std::collections::HashMap::new();
    for r in &all {
        *count.entry(*r).or_insert(0usize) += 1;
    }
    all.iter()
        .enumerate()
        .filter(|(_, r)| count.get(*r).copied().unwrap_or(0) > 1)
        .map(|(i, _)| i)
        .collect()
}

/// The refusal for a resource named more than once.
pub fn repeated() -> Refusal {
    (
        code::INVALID_REQUEST,
        "Each resource must appear at most once.".into(),
    )
}

/// One resource of IncrementalAlterConfigs or AlterConfigs, after its changes were read:
/// authorization (AlterConfigs on the topic, group or cluster), then the resource's own
/// rules in the broker core.
pub async fn alter_resource(
    req: &Request<'_>,
    resource_type: i8,
    name: &str,
    mode: AlterMode,
    changes: Result<Vec<ConfigChange>, Refusal>,
    validate_only: bool,
) -> Result<(), Refusal> {
    if let Some(error) = denied(req, Operation::AlterConfigs, resource_type, name) {
        return Err((error, denied_message(error).into()));
    }
    let changes = changes?;
    match resource_type {
        RESOURCE_TOPIC => {
            let t = req
                .topic(name)
                .map_err(|e| errors::answer("alter configs failed", &e))?;
            req.broker()
                .alter_topic_config(t.stream_id, t.id, mode, changes, validate_only)
                .await
                .map(drop)
                .map_err(|e| match e {
                    // Kafka's validator's words, as they are.
                    crate::broker::BrokerError::Store(
                        crate::broker::StoreError::InvalidSetting(why),
                    ) => (code::INVALID_CONFIG, why),
                    e => errors::answer("alter configs failed", &e),
                })
        }
        RESOURCE_BROKER => {
            let scope = broker_scope(name, false)?;
            req.broker()
                .alter_broker_config(scope, mode, changes, validate_only)
                .await
                .map_err(|e| match e {
                    BrokerConfigError::InvalidRequest(m) => (code::INVALID_REQUEST, m),
                    BrokerConfigError::InvalidConfig(m) => (code::INVALID_CONFIG, m),
                    BrokerConfigError::Broker(e) => errors::answer("alter configs failed", &e),
                })
        }
        RESOURCE_GROUP => req
            .broker()
            .alter_group_config(name, mode, changes, validate_only)
            .await
            .map(drop)
            .map_err(|e| match e {
                GroupConfigError::InvalidRequest(m) => (code::INVALID_REQUEST, m),
                GroupConfigError::InvalidConfig(m) => (code::INVALID_CONFIG, m),
                GroupConfigError::Broker(e) => errors::answer("alter configs failed", &e),
            }),
        other => Err((
            code::INVALID_REQUEST,
            format!("Unknown resource type {other}"),
        )),
    }
}

/// The changes of one IncrementalAlterConfigs resource (operations 0 SET, 1 DELETE, 2 APPEND,
/// 3 SUBTRACT), refused as Kafka does: duplicate names, a missing value (but for DELETE), an
/// unknown operation.
fn incremental_changes(
    configs: &[kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig],
) -> Result<Vec<ConfigChange>, Refusal> {
    refuse_duplicates(configs.iter().map(|c| c.name.as_str()))?;
    let missing: Vec<&str> = configs
        .iter()
        .filter(|c| c.config_operation != 1 && c.value.is_none())
        .map(|c| c.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err((
            code::INVALID_REQUEST,
            format!("Null value not supported for : {}", missing.join(", ")),
        ));
    }
    configs
        .iter()
        .map(|c| {
            let name = c.name.as_str().to_string();
            let value = || {
                c.value
                    .as_ref()
                    .map(|v| v.as_str().to_string())
                    .unwrap_or_default()
            };
            let op = match c.config_operation {
                0 => ConfigOp::Set(value()),
                1 => ConfigOp::Delete,
                2 => ConfigOp::Append(value()),
                3 => ConfigOp::Subtract(value()),
                op => {
                    return Err((
                        code::INVALID_REQUEST,
                        format!("Unknown operations type {op}"),
                    ))
                }
            };
            Ok(ConfigChange { name, op })
        })
        .collect()
}

/// IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT of topic, broker and group
/// configs (each resource checked whole, then applied).
pub async fn incremental_alter(
    req: &Request<'_>,
    r: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let repeats = repeated_resources(
        r.resources
            .iter()
            .map(|res| (res.resource_type, res.resource_name.as_str())),
    );
    let mut responses = Vec::with_capacity(r.resources.len());
    for (i, res) in r.resources.into_iter().enumerate() {
        let out = AlterConfigsResourceResponse::default()
            .with_resource_type(res.resource_type)
            .with_resource_name(res.resource_name.clone());
        let outcome = if repeats.contains(&i) {
            Err(repeated())
        } else {
            alter_resource(
                req,
                res.resource_type,
                res.resource_name.as_str(),
                AlterMode::Incremental,
                incremental_changes(&res.configs),
                r.validate_only,
            )
            .await
        };
        responses.push(match outcome {
            Ok(()) => out,
            Err((error, message)) => out
                .with_error_code(error)
                .with_error_message(Some(str_bytes(message))),
        });
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
