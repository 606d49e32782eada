//! DescribeGroups: state, protocol and members of each group (metadata and assignments only
//! while the group is Stable, as Kafka does). A group nobody knows reads as Dead (v6:
//! GROUP_ID_NOT_FOUND with a message, as is a consumer-protocol group).

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use super::{str_bytes, Request};
use crate::broker::acl::{Operation, Resource};
use crate::broker::coordinator::{GroupError, GroupState};
use crate::kafka::errors::{code, for_group};

pub fn handle(req: &Request<'_>, r: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let v = req.version;
    let groups = r
        .groups
        .into_iter()
        .map(|id| {
            let name = id.0.to_string();
            let mut out = DescribedGroup::default().with_group_id(id);
            if v >= 3 {
                out = out.with_authorized_operations(if r.include_authorized_operations {
                    req.broker()
                        .kafka_authorized_operations(req.principal, Resource::Group(&name))
                } else {
                    i32::MIN
                });
            }
            if !req.may(Operation::Describe, Resource::Group(&name)) {
                return out
                    .with_error_code(code::GROUP_AUTHORIZATION_FAILED)
                    .with_group_state(str_bytes(""));
            }
            if name.is_empty() {
                return out
                    .with_error_code(code::INVALID_GROUP_ID)
                    .with_group_state(str_bytes("Dead"));
            }
            match req.broker().describe_kafka_group(&name) {
                // A consumer-protocol group is not a classic group: v6 says so (KIP-1043),
                // older versions read it as Dead, as Kafka 4 answers.
                Err(GroupError::GroupIdNotFound) => {
                    let out = out.with_group_state(str_bytes("Dead"));
                    if v >= 6 {
                        out.with_error_code(code::GROUP_ID_NOT_FOUND)
                            .with_error_message(Some(str_bytes(format!(
                                "Group {name} is not a classic group."
                            ))))
                    } else {
                        out.with_error_code(code::NONE)
                    }
                }
                Err(e) => out.with_error_code(for_group(&e)),
                // v6: a group nobody knows is GROUP_ID_NOT_FOUND.
                Ok(s) if v >= 6 && s.state == GroupState::Dead => out
                    .with_group_state(str_bytes("Dead"))
                    .with_error_code(code::GROUP_ID_NOT_FOUND)
                    .with_error_message(Some(str_bytes(format!("Group {name} not found.")))),
                Ok(s) => out
                    .with_error_code(code::NONE)
                    .with_group_state(str_bytes(s.state.name()))
                    .with_protocol_type(str_bytes(s.protocol_type))
                    .with_protocol_data(str_bytes(s.protocol_name))
                    .with_members(
                        s.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(str_bytes(m.member_id))
                                    .with_group_instance_id(if v >= 4 {
                                        m.group_instance_id.map(str_bytes)
                                    } else {
                                        None
                                    })
                                    .with_client_id(str_bytes(m.client_id))
                                    .with_client_host(str_bytes(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
