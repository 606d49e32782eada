//! DescribeCluster: this one broker, which is also the controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::DescribeClusterResponse;

use super::{str_bytes, Request};
use crate::kafka::NODE_ID;

pub fn handle(req: &Request<'_>) -> DescribeClusterResponse {
    let (host, port) = req.advertised();
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(req.door.cluster_id.clone()))
        .with_controller_id(NODE_ID.into())
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(NODE_ID.into())
            .with_host(str_bytes(host))
            .with_port(port)])
}
