//! AlterConfigs (the legacy API, key 33): each resource's configs are its whole config set, so
//! every config of the resource not listed returns to its default, as Kafka does, on TOPIC,
//! BROKER (the dynamic settings) and GROUP resources alike (BROKER_LOGGER is refused, as
//! Kafka refuses it on this API). The rules are the broker core's, as for
//! IncrementalAlterConfigs ([`super::configs`]).

use kafka_protocol::messages::alter_configs_request::AlterableConfig;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use super::configs::{
    alter_resource, refuse_duplicates, repeated, repeated_resources, Refusal,
    RESOURCE_BROKER_LOGGER,
};
use super::{str_bytes, Request};
use crate::broker::topic_config::{AlterMode, ConfigChange};
use crate::kafka::errors::code;

/// A resource's configs as the topic's new config set; a config without a value is refused
/// (Kafka's INVALID_REQUEST), as is a name given twice.
fn replacement(configs: &[AlterableConfig]) -> Result<Vec<ConfigChange>, Refusal> {
    refuse_duplicates(configs.iter().map(|c| c.name.as_str()))?;
    let missing: Vec<&str> = configs
        .iter()
        .filter(|c| c.value.is_none())
        .map(|c| c.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err((
            code::INVALID_REQUEST,
            format!("Null value not supported for : {}", missing.join(", ")),
        ));
    }
    Ok(configs
        .iter()
        .map(|c| {
            let value = c.value.as_ref().map_or("", |v| v.as_str());
            ConfigChange::set(c.name.as_str(), value)
        })
        .collect())
}

pub async fn handle(req: &Request<'_>, r: AlterConfigsRequest) -> AlterConfigsResponse {
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
        } else if res.resource_type == RESOURCE_BROKER_LOGGER {
            Err((
                code::INVALID_REQUEST,
                format!("Unknown resource type {RESOURCE_BROKER_LOGGER}"),
            ))
        } else {
            alter_resource(
                req,
                res.resource_type,
                res.resource_name.as_str(),
                AlterMode::Replace,
                replacement(&res.configs),
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
    AlterConfigsResponse::default().with_responses(responses)
}
