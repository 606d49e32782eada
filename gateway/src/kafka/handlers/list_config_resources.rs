//! ListConfigResources (KIP-1142): the resources that have configs. v0 asks for client-metrics
//! resources only (Wharf has none); v1 for topics, brokers, broker loggers, client metrics and
//! groups (those with config overrides), or the types listed.

use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{ListConfigResourcesRequest, ListConfigResourcesResponse};

use super::{str_bytes, Request};
use crate::broker::acl::{Operation, Resource};
use crate::kafka::errors::code;
use crate::kafka::NODE_ID;

/// Kafka's `ConfigResource.Type` codes.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;
const CLIENT_METRICS: i8 = 16;
const GROUP: i8 = 32;

pub async fn handle(
    req: &Request<'_>,
    r: ListConfigResourcesRequest,
) -> ListConfigResourcesResponse {
    // Kafka: DESCRIBE_CONFIGS on the cluster, else a top-level error.
    if !req.may(Operation::DescribeConfigs, Resource::Cluster) {
        return ListConfigResourcesResponse::default()
            .with_error_code(code::CLUSTER_AUTHORIZATION_FAILED);
    }
    let supported: &[i8] = if req.version == 0 {
        &[CLIENT_METRICS]
    } else {
        &[TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP]
    };
    // An empty list means every type this version knows; a type it does not know fails the
    // request with UNSUPPORTED_VERSION, as Kafka answers.
    let wanted: &[i8] = if r.resource_types.is_empty() {
        supported
    } else {
        &r.resource_types
    };
    if wanted.iter().any(|t| !supported.contains(t)) {
        return ListConfigResourcesResponse::default().with_error_code(code::UNSUPPORTED_VERSION);
    }
    let resource = |kind: i8, name: String| {
        ConfigResource::default()
            .with_resource_type(kind)
            .with_resource_name(str_bytes(name))
    };
    let mut out = Vec::new();
    if wanted.contains(&GROUP) {
        out.extend(
            req.broker()
                .groups_with_configs()
                .into_iter()
                .map(|g| resource(GROUP, g)),
        );
    }
    // CLIENT_METRICS: Wharf has no client-metrics subscriptions (it does not serve
    // GetTelemetrySubscriptions), so there are none to list.
    for kind in [BROKER_LOGGER, BROKER] {
        if wanted.contains(&kind) {
            out.push(resource(kind, NODE_ID.to_string()));
        }
    }
    if wanted.contains(&TOPIC) {
        out.extend(
            req.broker()
                .kafka_topics()
                .into_iter()
                .map(|(name, _)| resource(TOPIC, name)),
        );
    }
    ListConfigResourcesResponse::default().with_config_resources(out)
}
