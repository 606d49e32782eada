//! DescribeCluster: this one broker, which is also the controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse};

use super::{str_bytes, Request};
use crate::broker::acl::Resource;
use crate::kafka::NODE_ID;

pub fn handle(req: &Request<'_>, r: DescribeClusterRequest) -> DescribeClusterResponse {
    let (host, port) = req.advertised();
    let operations = if r.include_cluster_authorized_operations {
        req.broker()
            .kafka_authorized_operations(req.principal, Resource::Cluster)
    } else {
        i32::MIN
    };
    DescribeClusterResponse::default()
        .with_cluster_authorized_operations(operations)
        .with_cluster_id(str_bytes(req.door.cluster_id.clone()))
        .with_controller_id(NODE_ID.into())
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(NODE_ID.into())
            .with_host(str_bytes(host))
            .with_port(port)])
}
