//! FindCoordinator: this broker coordinates every group the principal may describe.
//! Transactions are not supported, so a transaction coordinator is never available.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::{str_bytes, Request};
use crate::broker::acl::{Operation, Resource};
use crate::kafka::errors::code;
use crate::kafka::NODE_ID;

/// The error and message for one coordinator key (`NONE`: this broker).
fn outcome(req: &Request<'_>, key_type: i8, key: &str) -> (i16, Option<StrBytes>) {
    if key_type == 0 {
        if req.may(Operation::Describe, Resource::Group(key)) {
            (code::NONE, None)
        } else {
            (code::GROUP_AUTHORIZATION_FAILED, None)
        }
    } else if !req.may(Operation::Describe, Resource::TransactionalId(key)) {
        (code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED, None)
    } else {
        (
            code::COORDINATOR_NOT_AVAILABLE,
            Some(str_bytes("Wharf does not support transactions")),
        )
    }
}

pub fn handle(req: &Request<'_>, r: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let (host, port) = req.advertised();
    if req.version >= 4 {
        return FindCoordinatorResponse::default().with_coordinators(
            r.coordinator_keys
                .into_iter()
                .map(|k| {
                    let (error, message) = outcome(req, r.key_type, k.as_str());
                    let found = error == code::NONE;
                    Coordinator::default()
                        .with_key(k)
                        .with_node_id(if found { NODE_ID } else { -1 }.into())
                        .with_host(str_bytes(if found { host.clone() } else { String::new() }))
                        .with_port(if found { port } else { -1 })
                        .with_error_code(error)
                        .with_error_message(message)
                })
                .collect(),
        );
    }
    let (error, message) = outcome(req, r.key_type, r.key.as_str());
    let found = error == code::NONE;
    let mut resp = FindCoordinatorResponse::default()
        .with_error_code(error)
        .with_node_id(if found { NODE_ID } else { -1 }.into())
        .with_host(str_bytes(if found { host } else { String::new() }))
        .with_port(if found { port } else { -1 });
    if req.version >= 1 {
        resp = resp.with_error_message(message);
    }
    resp
}
