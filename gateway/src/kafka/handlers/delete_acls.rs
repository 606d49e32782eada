//! DeleteAcls: each filter takes away the bindings it matches (at their own scope, the Wharf
//! permissions they are listed from), all in one durable change of the users document
//! ([`Broker::delete_acls`]); each filter's answer lists the bindings it removed, or is
//! INVALID_REQUEST with a message when those permissions also grant rights the filter does
//! not name (nothing is removed for it). Needs the
//! right to manage users (Kafka's Alter on the cluster for ACLs), else
//! CLUSTER_AUTHORIZATION_FAILED for every filter.
//!
//! [`Broker::delete_acls`]: crate::broker::Broker::delete_acls

use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};

use super::{str_bytes, Request};
use crate::broker::acl::{AclFilter, ALLOW};
use crate::broker::BrokerError;
use crate::kafka::errors::{self, code};

pub async fn handle(req: &Request<'_>, r: DeleteAclsRequest) -> DeleteAclsResponse {
    let count = r.filters.len();
    let filters = r
        .filters
        .into_iter()
        .map(|f| AclFilter {
            resource_type: f.resource_type_filter,
            name: f.resource_name_filter.map(|n| n.to_string()),
            pattern: f.pattern_type_filter,
            principal: f.principal_filter.map(|p| p.to_string()),
            host: f.host_filter.map(|h| h.to_string()),
            operation: f.operation,
            permission: f.permission_type,
        })
        .collect();
    let failed = |error: i16, message: &str| {
        DeleteAclsFilterResult::default()
            .with_error_code(error)
            .with_error_message(Some(str_bytes(message)))
    };
    let results = match req.broker().delete_acls(req.principal, filters).await {
        Err(BrokerError::Unauthorized) => vec![
            failed(
                code::CLUSTER_AUTHORIZATION_FAILED,
                "deleting ACLs needs the right to manage users"
            );
            count
        ],
        Err(e) => {
            let (error, message) = errors::answer("delete acls failed", &e);
            vec![failed(error, &message); count]
        }
        Ok(outcomes) => outcomes
            .into_iter()
            .map(|o| match o {
                Err(refusal) => failed(code::INVALID_REQUEST, &refusal.0),
                Ok(removed) => DeleteAclsFilterResult::default()
                    .with_error_code(code::NONE)
                    .with_matching_acls(
                        removed
                            .into_iter()
                            .map(|b| {
                                DeleteAclsMatchingAcl::default()
                                    .with_resource_type(b.resource_type.code())
                                    .with_resource_name(str_bytes(b.name))
                                    .with_pattern_type(b.pattern.code())
                                    .with_principal(str_bytes(b.principal))
                                    .with_host(str_bytes("*"))
                                    .with_operation(b.operation.code())
                                    .with_permission_type(ALLOW)
                            })
                            .collect(),
                    ),
            })
            .collect(),
    };
    DeleteAclsResponse::default().with_filter_results(results)
}
