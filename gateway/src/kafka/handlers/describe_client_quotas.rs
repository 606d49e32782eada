//! DescribeClientQuotas: the quotas set for users and client ids (and IP addresses) that match
//! a filter ([`Broker::describe_client_quotas`]). Needs DescribeConfigs on the cluster, as
//! Kafka's KafkaApis checks.
//!
//! [`Broker::describe_client_quotas`]: crate::broker::Broker::describe_client_quotas

use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};

use super::{str_bytes, Request};
use crate::broker::acl::{Operation, Resource};
use crate::broker::quotas::{FilterComponent, QuotaError};
use crate::kafka::errors::code;

pub async fn handle(
    req: &Request<'_>,
    r: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    if !req.may(Operation::DescribeConfigs, Resource::Cluster) {
        return failed(code::CLUSTER_AUTHORIZATION_FAILED, None);
    }
    let filter: Vec<FilterComponent> = r
        .components
        .into_iter()
        .map(|c| FilterComponent {
            entity_type: c.entity_type.to_string(),
            match_type: c.match_type,
            name: c._match.map(|m| m.to_string()),
        })
        .collect();
    match req.broker().describe_client_quotas(&filter, r.strict) {
        Ok(found) => DescribeClientQuotasResponse::default().with_entries(Some(
            found
                .into_iter()
                .map(|(entity, values)| {
                    EntryData::default()
                        .with_entity(
                            entity
                                .into_iter()
                                .map(|(t, n)| {
                                    EntityData::default()
                                        .with_entity_type(str_bytes(t))
                                        .with_entity_name(n.map(str_bytes))
                                })
                                .collect(),
                        )
                        .with_values(
                            values
                                .into_iter()
                                .map(|(k, v)| {
                                    ValueData::default().with_key(str_bytes(k)).with_value(v)
                                })
                                .collect(),
                        )
                })
                .collect(),
        )),
        Err(e) => {
            let error = match e {
                QuotaError::InvalidRequest(_) => code::INVALID_REQUEST,
                QuotaError::UnsupportedEntityType(_) => code::UNSUPPORTED_VERSION,
            };
            failed(error, Some(e.to_string()))
        }
    }
}

/// Kafka's error answer: the code and message, no entries.
fn failed(error: i16, message: Option<String>) -> DescribeClientQuotasResponse {
    DescribeClientQuotasResponse::default()
        .with_error_code(error)
        .with_error_message(message.map(str_bytes))
        .with_entries(None)
}
