//! CreateAcls: each ALLOW binding becomes the narrowest Wharf permission that implies it, all
//! in one durable change of the users document ([`Broker::create_acls`]); a binding the model
//! cannot express is refused with INVALID_REQUEST and a message saying why. Needs the right to
//! manage users (Kafka's Alter on the cluster for ACLs), else CLUSTER_AUTHORIZATION_FAILED
//! for every binding.
//!
//! [`Broker::create_acls`]: crate::broker::Broker::create_acls

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};

use super::{str_bytes, Request};
use crate::broker::acl::AclRequest;
use crate::broker::BrokerError;
use crate::kafka::errors::{self, code};

pub async fn handle(req: &Request<'_>, r: CreateAclsRequest) -> CreateAclsResponse {
    let count = r.creations.len();
    let acls = r
        .creations
        .into_iter()
        .map(|c| AclRequest {
            resource_type: c.resource_type,
            name: c.resource_name.to_string(),
            pattern: c.resource_pattern_type,
            principal: c.principal.to_string(),
            host: c.host.to_string(),
            operation: c.operation,
            permission: c.permission_type,
        })
        .collect();
    let failed = |error: i16, message: &str| {
        AclCreationResult::default()
            .with_error_code(error)
            .with_error_message(Some(str_bytes(message)))
    };
    let results = match req.broker().create_acls(req.principal, acls).await {
        Err(BrokerError::Unauthorized) => vec![
            failed(
                code::CLUSTER_AUTHORIZATION_FAILED,
                "creating ACLs needs the right to manage users"
            );
            count
        ],
        Err(e) => {
            let (error, message) = errors::answer("create acls failed", &e);
            vec![failed(error, &message); count]
        }
        Ok(outcomes) => outcomes
            .into_iter()
            .map(|o| match o {
                Ok(()) => AclCreationResult::default().with_error_code(code::NONE),
                Err(refusal) => failed(code::INVALID_REQUEST, &refusal.0),
            })
            .collect(),
    };
    CreateAclsResponse::default().with_results(results)
}
