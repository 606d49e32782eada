//! Metadata: one broker (this server) leads every partition; topics are listed or looked up by
//! name (or by id from v12), and created on request when `kafka.auto_create_topics` allows it.
//! Topic and cluster authorized operations are given when asked (v8+; the cluster's only
//! v8-v10, then DescribeCluster's).

use super::{str_bytes, Request};
use crate::broker::acl::{Operation, Resource};
use crate::broker::names::{topic_uuid, validate_kafka_name};
use crate::broker::TopicInfo;
use crate::kafka::errors::{self, code};
use crate::kafka::NODE_ID;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use std::collections::HashMap;
use std::sync::Arc;

const UNKNOWN_TOPIC_ID: i16 = kafka_protocol::error::ResponseError::UnknownTopicId.code();

pub async fn handle(req: &Request<'_>, r: MetadataRequest) -> MetadataResponse {
    let (host, port) = req.advertised();
    let broker = MetadataResponseBroker::default()
        .with_node_id(NODE_ID.into())
        .with_host(str_bytes(host))
        .with_port(port);
    // v0: an empty list means every topic; v1+: null means every topic.
    let wanted = match r.topics {
        None => None,
        Some(t) if t.is_empty() && req.version == 0 => None,
        Some(t) => Some(t),
    };
    let topics = match wanted {
        // Every topic the principal may describe: the others are not listed, as in Kafka.
        None => req
            .broker()
            .kafka_topics()
            .into_iter()
            .filter(|(name, _)| req.may(Operation::Describe, Resource::Topic(name)))
            .map(|(name, t)| topic(req, name, Ok(t)))
            .collect(),
        Some(list) => {
            let auto = req.door.config.auto_create_topics
                && (req.version < 4 || r.allow_auto_topic_creation);
            let mut out = Vec::with_capacity(list.len());
            for wanted in list {
                // v12+: a topic may be named by id instead (KIP-516). An id no topic has is
                // UNKNOWN_TOPIC_ID; ids are not secret, so a topic the principal may not
                // describe is TOPIC_AUTHORIZATION_FAILED with its id and no name (as Kafka).
                if req.version >= 12 && !wanted.topic_id.is_nil() {
                    let id = wanted.topic_id;
                    let unnamed = MetadataResponseTopic::default()
                        .with_name(None)
                        .with_topic_id(id);
                    out.push(match req.broker().kafka_topic_by_id(id).map(|(n, _)| n) {
                        None => unnamed.with_error_code(UNKNOWN_TOPIC_ID),
                        Some(name) if !req.may(Operation::Describe, Resource::Topic(&name)) => {
                            unnamed.with_error_code(code::TOPIC_AUTHORIZATION_FAILED)
                        }
                        Some(name) => {
                            let found = req.topic(&name).map_err(|e| errors::for_broker(&e));
                            topic(req, name, found)
                        }
                    });
                    continue;
                }
                let name = wanted
                    .name
                    .map(|n| n.0.as_str().to_string())
                    .unwrap_or_default();
                // A topic the principal may not describe is TOPIC_AUTHORIZATION_FAILED whether
                // it exists or not (never UNKNOWN_TOPIC_OR_PARTITION, which clients retry).
                let found = if req.may(Operation::Describe, Resource::Topic(&name)) {
                    let create = auto && req.may(Operation::Create, Resource::Topic(&name));
                    lookup(req, &name, create).await
                } else {
                    Err(code::TOPIC_AUTHORIZATION_FAILED)
                };
                out.push(topic(req, name, found));
            }
            out
        }
    };
    let mut resp = MetadataResponse::default()
        .with_brokers(vec![broker])
        .with_topics(topics);
    if req.version >= 1 {
        resp = resp.with_controller_id(NODE_ID.into());
    }
    if req.version >= 2 {
        resp = resp.with_cluster_id(Some(str_bytes(req.door.cluster_id.clone())));
    }
    if (8..=10).contains(&req.version) && r.include_cluster_authorized_operations {
        resp = resp.with_cluster_authorized_operations(
            req.broker()
                .kafka_disclosed_operations(req.principal, Resource::Cluster),
        );
    }
    // As Kafka: every topic the principal may describe gets its operations, whether it exists
    // or not; refused topics and unknown ids keep the default.
    if req.version >= 8 && r.include_topic_authorized_operations {
        for t in &mut resp.topics {
            if t.error_code != code::TOPIC_AUTHORIZATION_FAILED && t.error_code != UNKNOWN_TOPIC_ID
            {
                let name = t.name.as_ref().map_or("", |n| n.0.as_str());
                t.topic_authorized_operations = req
                    .broker()
                    .kafka_authorized_operations(req.principal, Resource::Topic(name));
            }
        }
    }
    resp
}

async fn lookup(req: &Request<'_>, name: &str, auto_create: bool) -> Result<TopicInfo, i16> {
    if let Err(e) = validate_kafka_name(name) {
        return Err(errors::for_broker(&e));
    }
    match req.topic(name) {
        Ok(t) => Ok(t),
        Err(_) if auto_create => {
            let partitions = req.door.config.default_partitions;
            let created = req
                .broker()
                .create_kafka_topic(name, partitions, Default::default(), false)
                .await;
            match created {
                Ok(Some(t)) => Ok(t),
                Ok(None) => req.topic(name).map_err(|e| errors::for_broker(&e)),
                // Another connection may have made it first.
                Err(e) => req
                    .topic(name)
                    .map_err(|_| errors::answer("auto-create failed", &e).0),
            }
        }
        Err(e) => Err(errors::for_broker(&e)),
    }
}

fn topic(req: &Request<'_>, name: String, found: Result<TopicInfo, i16>) -> MetadataResponseTopic {
    let out = MetadataResponseTopic::default().with_name(Some(TopicName(str_bytes(name))));
    match found {
        Err(e) => out.with_error_code(e),
        Ok(t) => {
            let partitions = (0..t.partitions as i32)
                .map(|p| {
                    let mut part = MetadataResponsePartition::default()
                        .with_partition_index(p)
                        .with_leader_id(NODE_ID.into())
                        .with_replica_nodes(vec![NODE_ID.into()])
                        .with_isr_nodes(vec![NODE_ID.into()]);
                    // No leader epochs: clients skip KIP-320 truncation checks.
                    if req.version >= 7 {
                        part = part.with_leader_epoch(-1);
                    }
                    part
                })
                .collect();
            let mut out = out.with_partitions(partitions);
            if req.version >= 10 {
                out = out.with_topic_id(topic_uuid(&t));
            }
            out
        }
    }
}

/// The Kafka names of the topics `ids` name (KIP-516), ids no topic has left out: how Fetch
/// v13+, Produce v13 and Metadata v12+ find the topics a request names by id. One broker
/// look-up per distinct id, never a map of every topic.
pub fn topic_names_by_id(
    req: &Request<'_>,
    ids: impl IntoIterator<Item = uuid::Uuid>,
) -> HashMap<uuid::Uuid, Arc<str>> {
    let mut out = HashMap::new();
    for id in ids {
        if let std::collections::hash_map::Entry::Vacant(e) = out.entry(id) {
            if let Some((name, _)) = req.broker().kafka_topic_by_id(id) {
                e.insert(Arc::from(name));
            }
        }
    }
    out
}
