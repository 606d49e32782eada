//! FindCoordinator: this broker coordinates every group and every transactional id the
//! principal may describe.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::{str_bytes, Request};
use crate::broker::acl::{Operation, Resource};
use crate::kafka::errors::code;
use crate::kafka::NODE_ID;

/// The error and message for one coordinator key (`NONE`: this broker).
fn outcome(req: &Request<'_>, key_type: i8, key: &str) -> (i16, Option<StrBytes>) {
    match key_type {
        0 if req.may(Operation::Describe, Resource::Group(key)) => (code::NONE, None),
        0 => (code::GROUP_AUTHORIZATION_FAILED, None),
        1 if !req.may(Operation::Describe, Resource::TransactionalId(key)) => {
            (code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED, None)
        }
        // Kafka refuses the empty transactional id.
        1 if key.is_empty() => (
            code::INVALID_REQUEST,
            Some(str_bytes("the transactional id must not be empty")),
        ),
        1 => (code::NONE, None),
        other => (
            code::INVALID_REQUEST,
            Some(str_bytes(format!("unknown coordinator key type {other}"))),
        ),
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
