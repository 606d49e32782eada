//! DescribeAcls: the ALLOW bindings Wharf's permissions imply, filtered as Kafka filters them
//! ([`Broker::describe_acls`]; the mapping is in `broker::acl`). Needs the right to read users
//! (Kafka's Describe on the cluster for ACLs), else CLUSTER_AUTHORIZATION_FAILED.
//!
//! [`Broker::describe_acls`]: crate::broker::Broker::describe_acls

use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};

use super::{str_bytes, Request};
use crate::broker::acl::{AclBinding, AclFilter, ALLOW};
use crate::kafka::errors::{self, code};

pub fn handle(req: &Request<'_>, r: DescribeAclsRequest) -> DescribeAclsResponse {
    let filter = AclFilter {
        resource_type: r.resource_type_filter,
        name: r.resource_name_filter.map(|n| n.to_string()),
        pattern: r.pattern_type_filter,
        principal: r.principal_filter.map(|p| p.to_string()),
        host: r.host_filter.map(|h| h.to_string()),
        operation: r.operation,
        permission: r.permission_type,
    };
    let fail = |error: i16, message: String| {
        DescribeAclsResponse::default()
            .with_error_code(error)
            .with_error_message(Some(str_bytes(message)))
    };
    match req.broker().describe_acls(req.principal, &filter) {
        Err(crate::broker::BrokerError::Unauthorized) => fail(
            code::CLUSTER_AUTHORIZATION_FAILED,
            "describing ACLs needs the right to read users".into(),
        ),
        Err(e) => {
            let (error, message) = errors::answer("describe acls failed", &e);
            fail(error, message)
        }
        Ok(Err(refusal)) => fail(code::INVALID_REQUEST, refusal.0),
        Ok(Ok(bindings)) => DescribeAclsResponse::default()
            .with_error_code(code::NONE)
            .with_resources(by_resource(bindings)),
    }
}

/// Bindings grouped by resource pattern, as Kafka answers them (`bindings` sorted).
fn by_resource(bindings: Vec<AclBinding>) -> Vec<DescribeAclsResource> {
    let mut out: Vec<DescribeAclsResource> = Vec::new();
    for b in bindings {
        let acl = AclDescription::default()
            .with_principal(str_bytes(b.principal))
            .with_host(str_bytes("*"))
            .with_operation(b.operation.code())
            .with_permission_type(ALLOW);
        match out.last_mut() {
            Some(r)
                if r.resource_type == b.resource_type.code()
                    && r.resource_name.as_str() == b.name
                    && r.pattern_type == b.pattern.code() =>
            {
                r.acls.push(acl)
            }
            _ => out.push(
                DescribeAclsResource::default()
                    .with_resource_type(b.resource_type.code())
                    .with_resource_name(str_bytes(b.name))
                    .with_pattern_type(b.pattern.code())
                    .with_acls(vec![acl]),
            ),
        }
    }
    out
}
