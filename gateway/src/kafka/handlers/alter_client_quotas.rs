//! AlterClientQuotas: set and remove quotas for users, client ids and IP addresses
//! ([`Broker::alter_client_quotas`]: each entity's changes applied whole or refused whole, as
//! Kafka's controller does). Needs AlterConfigs on the cluster, as Kafka's KafkaApis checks.
//!
//! [`Broker::alter_client_quotas`]: crate::broker::Broker::alter_client_quotas

use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse};

use super::{str_bytes, Request};
use crate::broker::acl::{Operation, Resource};
use crate::broker::quotas::{QuotaAlteration, QuotaError};
use crate::kafka::errors::{self, code};

pub async fn handle(req: &Request<'_>, r: AlterClientQuotasRequest) -> AlterClientQuotasResponse {
    let alterations: Vec<QuotaAlteration> = r
        .entries
        .iter()
        .map(|e| QuotaAlteration {
            entity: e
                .entity
                .iter()
                .map(|d| {
                    (
                        d.entity_type.to_string(),
                        d.entity_name.as_ref().map(|n| n.to_string()),
                    )
                })
                .collect(),
            ops: e
                .ops
                .iter()
                .map(|o| (o.key.to_string(), (!o.remove).then_some(o.value)))
                .collect(),
        })
        .collect();
    let outcomes: Vec<(i16, Option<String>)> =
        if !req.may(Operation::AlterConfigs, Resource::Cluster) {
            vec![(code::CLUSTER_AUTHORIZATION_FAILED, None); alterations.len()]
        } else {
            match req
                .door
                .broker
                .alter_client_quotas(alterations, r.validate_only)
                .await
            {
                Ok(results) => results
                    .into_iter()
                    .map(|r| match r {
                        Ok(()) => (code::NONE, None),
                        Err(e @ QuotaError::InvalidRequest(_)) => {
                            (code::INVALID_REQUEST, Some(e.to_string()))
                        }
                        Err(e @ QuotaError::UnsupportedEntityType(_)) => {
                            (code::UNSUPPORTED_VERSION, Some(e.to_string()))
                        }
                    })
                    .collect(),
                Err(e) => {
                    let (error, message) = errors::answer("alter client quotas failed", &e);
                    vec![(error, Some(message)); r.entries.len()]
                }
            }
        };
    let entries = r
        .entries
        .into_iter()
        .zip(outcomes)
        .map(|(e, (error, message))| {
            EntryData::default()
                .with_error_code(error)
                .with_error_message(message.map(str_bytes))
                .with_entity(
                    e.entity
                        .into_iter()
                        .map(|d| {
                            EntityData::default()
                                .with_entity_type(d.entity_type)
                                .with_entity_name(d.entity_name)
                        })
                        .collect(),
                )
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}
