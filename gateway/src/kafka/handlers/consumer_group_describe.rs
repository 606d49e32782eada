//! KIP-848's ConsumerGroupDescribe: members, epochs and assignments of consumer-protocol groups.

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};

use super::{str_bytes, Request};
use crate::broker::acl::{Operation, Resource};
use crate::broker::assignor;
use crate::kafka::errors::{code, for_group};

/// Kafka's `MemberType` (v1): a member using the consumer protocol.
const MEMBER_TYPE_CONSUMER: i8 = 1;

pub async fn handle(
    req: &Request<'_>,
    r: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    // Only the ids the assignments name are looked up (one broker look-up each).
    let mut names: std::collections::HashMap<uuid::Uuid, String> = Default::default();
    let mut assignment = |a: assignor::Assignment| {
        Assignment::default().with_topic_partitions(
            a.into_iter()
                .map(|(id, parts)| {
                    let name = names
                        .entry(id)
                        .or_insert_with(|| {
                            req.broker()
                                .kafka_topic_by_id(id)
                                .map(|(n, _)| n)
                                .unwrap_or_default()
                        })
                        .clone();
                    TopicPartitions::default()
                        .with_topic_id(id)
                        .with_topic_name(TopicName(str_bytes(name)))
                        .with_partitions(parts.into_iter().collect())
                })
                .collect(),
        )
    };
    let groups = r
        .group_ids
        .into_iter()
        .map(|id| {
            let name = id.0.to_string();
            let out = DescribedGroup::default()
                .with_group_id(id)
                .with_authorized_operations(i32::MIN);
            // Kafka: Describe on the group, else GROUP_AUTHORIZATION_FAILED.
            if !req.may(Operation::Describe, Resource::Group(&name)) {
                return out.with_error_code(code::GROUP_AUTHORIZATION_FAILED);
            }
            let out = if r.include_authorized_operations {
                out.with_authorized_operations(
                    req.broker()
                        .kafka_authorized_operations(req.principal, Resource::Group(&name)),
                )
            } else {
                out
            };
            match req.broker().describe_consumer_group(&name) {
                // Kafka fills in the operations only for a group it describes.
                Err(e) => out
                    .with_authorized_operations(i32::MIN)
                    .with_error_code(for_group(&e))
                    .with_error_message(Some(str_bytes(format!("Group {name} not found.")))),
                Ok(g) => out
                    .with_error_code(code::NONE)
                    .with_group_state(str_bytes(g.state.name()))
                    .with_group_epoch(g.group_epoch)
                    .with_assignment_epoch(g.assignment_epoch)
                    .with_assignor_name(str_bytes(g.assignor_name))
                    .with_members(
                        g.members
                            .into_iter()
                            .map(|m| {
                                Member::default()
                                    .with_member_id(str_bytes(m.member_id))
                                    .with_instance_id(m.instance_id.map(str_bytes))
                                    .with_rack_id(m.rack_id.map(str_bytes))
                                    .with_member_epoch(m.member_epoch)
                                    .with_client_id(str_bytes(m.client_id))
                                    .with_client_host(str_bytes(m.client_host))
                                    .with_subscribed_topic_names(
                                        m.subscribed_topic_names
                                            .into_iter()
                                            .map(|n| TopicName(str_bytes(n)))
                                            .collect(),
                                    )
                                    .with_subscribed_topic_regex(
                                        m.subscribed_topic_regex.map(str_bytes),
                                    )
                                    .with_assignment(assignment(m.assignment))
                                    .with_target_assignment(assignment(m.target_assignment))
                                    .with_member_type(if req.version >= 1 {
                                        MEMBER_TYPE_CONSUMER
                                    } else {
                                        -1
                                    })
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
