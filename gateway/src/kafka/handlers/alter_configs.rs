//! AlterConfigs (the legacy API, key 33): each resource's configs are its whole config set, so
//! every topic config not listed returns to its default, as Kafka does. The rules are the
//! broker core's, as for IncrementalAlterConfigs ([`super::configs`]).

use kafka_protocol::messages::alter_configs_request::AlterableConfig;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use super::configs::{alter_resource, refuse_duplicates, Refusal};
use super::{str_bytes, Request};
use crate::broker::topic_config::{AlterMode, ConfigChange};
use crate::kafka::errors::code;

/// A resource's configs as the topic's new config set; a config without a value is refused
/// (Kafka's INVALID_REQUEST), as is a name given twice.
fn replacement(configs: &[AlterableConfig]) -> Result<Vec<ConfigChange>, Refusal> {
    refuse_duplicates(configs.iter().map(|c| c.name.as_str()))?;
    configs
        .iter()
        .map(|c| match &c.value {
            Some(v) => Ok(ConfigChange::set(c.name.as_str(), v.as_str())),
            None => Err((
                code::INVALID_REQUEST,
                format!("Null value not supported for : {}", c.name.as_str()),
            )),
        })
        .collect()
}

pub async fn handle(req: &Request<'_>, r: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(r.resources.len());
    for res in r.resources {
        let out = AlterConfigsResourceResponse::default()
            .with_resource_type(res.resource_type)
            .with_resource_name(res.resource_name.clone());
        let outcome = alter_resource(
            req,
            res.resource_type,
            res.resource_name.as_str(),
            AlterMode::Replace,
            replacement(&res.configs),
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
    AlterConfigsResponse::default().with_responses(responses)
}
