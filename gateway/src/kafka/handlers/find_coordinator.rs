//! FindCoordinator: this broker coordinates every group. Transactions are not supported, so a
//! transaction coordinator is never available.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};

use super::{str_bytes, Request};
use crate::kafka::errors::code;
use crate::kafka::NODE_ID;

pub fn handle(req: &Request<'_>, r: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let (host, port) = req.advertised();
    let (error, message) = if r.key_type == 0 {
        (code::NONE, None)
    } else {
        (
            code::COORDINATOR_NOT_AVAILABLE,
            Some(str_bytes("Wharf does not support transactions")),
        )
    };
    let mut resp = FindCoordinatorResponse::default()
        .with_error_code(error)
        .with_node_id(if error == code::NONE { NODE_ID } else { -1 }.into())
        .with_host(str_bytes(if error == code::NONE {
            host.clone()
        } else {
            String::new()
        }))
        .with_port(if error == code::NONE { port } else { -1 });
    if req.version >= 1 {
        resp = resp.with_error_message(message.clone());
    }
    if req.version >= 4 {
        resp = resp.with_coordinators(
            r.coordinator_keys
                .into_iter()
                .map(|k| {
                    Coordinator::default()
                        .with_key(k)
                        .with_node_id(NODE_ID.into())
                        .with_host(str_bytes(host.clone()))
                        .with_port(port)
                        .with_error_code(error)
                        .with_error_message(message.clone())
                })
                .collect(),
        );
    }
    resp
}
