//! DescribeCluster: this one broker, which is also the controller. Asked through a broker's
//! endpoint (endpoint type 1, the only kind Wharf has), as Kafka's brokers answer it; the
//! cluster's authorized operations when asked, 0 when the principal may not describe it. v2's
//! fenced brokers: this broker is never fenced.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse};

use super::{str_bytes, Request};
use crate::broker::acl::Resource;
use crate::kafka::errors::code;
use crate::kafka::NODE_ID;

/// Kafka's `EndpointType` ids.
const BROKER_ENDPOINT: i8 = 1;
const CONTROLLER_ENDPOINT: i8 = 2;

pub fn handle(req: &Request<'_>, r: DescribeClusterRequest) -> DescribeClusterResponse {
    // Kafka's AuthHelper.computeDescribeClusterResponse: v0 knows no endpoint types, so both
    // refusals are INVALID_REQUEST there.
    let refusal = match r.endpoint_type {
        BROKER_ENDPOINT => None,
        CONTROLLER_ENDPOINT => Some((
            ResponseError::MismatchedEndpointType.code(),
            "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of \
             type CONTROLLER"
                .to_string(),
        )),
        other => Some((
            ResponseError::UnsupportedEndpointType.code(),
            format!("Unsupported endpoint type {other}"),
        )),
    };
    if let Some((error, message)) = refusal {
        let error = if req.version == 0 {
            code::INVALID_REQUEST
        } else {
            error
        };
        return DescribeClusterResponse::default()
            .with_error_code(error)
            .with_error_message(Some(str_bytes(message)));
    }
    let (host, port) = req.advertised();
    let operations = if r.include_cluster_authorized_operations {
        req.broker()
            .kafka_disclosed_operations(req.principal, Resource::Cluster)
    } else {
        i32::MIN
    };
    DescribeClusterResponse::default()
        .with_endpoint_type(BROKER_ENDPOINT)
        .with_cluster_authorized_operations(operations)
        .with_cluster_id(str_bytes(req.door.cluster_id.clone()))
        .with_controller_id(NODE_ID.into())
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(NODE_ID.into())
            .with_host(str_bytes(host))
            .with_port(port)
            .with_is_fenced(false)])
}
