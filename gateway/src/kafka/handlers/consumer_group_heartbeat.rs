//! KIP-848's ConsumerGroupHeartbeat: join, heartbeat, reconcile and leave a consumer-protocol group.

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};

use super::{str_bytes, Request};
use crate::broker::acl::{Operation, Resource};
use crate::broker::consumer_protocol::Heartbeat;
use crate::broker::coordinator::GroupError;
use crate::kafka::errors::{code, for_group};

pub async fn handle(
    req: &Request<'_>,
    r: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    // Kafka's KafkaApis: Read on the group, then Describe on every subscribed topic name.
    if !req.may(Operation::Read, Resource::Group(r.group_id.0.as_str())) {
        return failed(code::GROUP_AUTHORIZATION_FAILED, None);
    }
    let names: Option<Vec<String>> = r
        .subscribed_topic_names
        .as_ref()
        .map(|n| n.iter().map(|t| t.0.to_string()).collect());
    if let Some(names) = &names {
        if names
            .iter()
            .any(|n| !req.may(Operation::Describe, Resource::Topic(n)))
        {
            return failed(code::TOPIC_AUTHORIZATION_FAILED, None);
        }
    }
    let hb = Heartbeat {
        version: req.version,
        group_id: r.group_id.0.to_string(),
        member_id: r.member_id.to_string(),
        member_epoch: r.member_epoch,
        instance_id: r.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: r.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: r.rebalance_timeout_ms,
        subscribed_topic_names: names,
        subscribed_topic_regex: r.subscribed_topic_regex.as_ref().map(|s| s.to_string()),
        server_assignor: r.server_assignor.as_ref().map(|s| s.to_string()),
        owned: r.topic_partitions.as_ref().map(|tps| {
            tps.iter()
                .map(|tp| (tp.topic_id, tp.partitions.clone()))
                .collect()
        }),
        client_id: req.client_id.clone().unwrap_or_default(),
        client_host: req.client_host(),
    };
    let may_describe = |topic: &str| req.may(Operation::Describe, Resource::Topic(topic));
    match req.broker().consumer_group_heartbeat(&hb, may_describe) {
        Err(e) => {
            let message = match &e {
                GroupError::InvalidRequest(m) => Some((*m).to_string()),
                other => Some(other.to_string()),
            };
            failed(for_group(&e), message)
        }
        Ok(a) => ConsumerGroupHeartbeatResponse::default()
            .with_error_code(code::NONE)
            .with_member_id(Some(str_bytes(a.member_id)))
            .with_member_epoch(a.member_epoch)
            .with_heartbeat_interval_ms(a.heartbeat_interval_ms)
            .with_assignment(a.assignment.map(|parts| {
                Assignment::default().with_topic_partitions(
                    parts
                        .into_iter()
                        .map(|(topic, p)| {
                            TopicPartitions::default()
                                .with_topic_id(topic)
                                .with_partitions(p.into_iter().collect())
                        })
                        .collect(),
                )
            })),
    }
}

fn failed(error: i16, message: Option<String>) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(error)
        .with_error_message(message.map(str_bytes))
}
