//! LeaveGroup: members leave at once instead of waiting out their session (v3+: several at a
//! time, by member id or group instance id).

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::{str_bytes, Request};
use crate::broker::acl::{Operation, Resource};
use crate::kafka::errors::{code, for_group, for_group_result};

pub fn handle(req: &Request<'_>, r: LeaveGroupRequest) -> LeaveGroupResponse {
    let v = req.version;
    if !req.may(Operation::Read, Resource::Group(r.group_id.0.as_str())) {
        return LeaveGroupResponse::default().with_error_code(code::GROUP_AUTHORIZATION_FAILED);
    }
    let leaving: Vec<(String, Option<String>)> = if v >= 3 {
        r.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(r.member_id.to_string(), None)]
    };
    let results = req.broker().leave_group(r.group_id.0.as_str(), &leaving);
    let per_member = match results {
        Ok(results) => results,
        Err(e) => return LeaveGroupResponse::default().with_error_code(for_group(&e)),
    };
    if v < 3 {
        let error = per_member.first().and_then(|r| r.as_ref().err());
        return LeaveGroupResponse::default().with_error_code(for_group_result(error));
    }
    LeaveGroupResponse::default()
        .with_error_code(code::NONE)
        .with_members(
            leaving
                .into_iter()
                .zip(per_member)
                .map(|((member_id, instance), result)| {
                    MemberResponse::default()
                        .with_member_id(str_bytes(member_id))
                        .with_group_instance_id(instance.map(str_bytes))
                        .with_error_code(for_group_result(result.err().as_ref()))
                })
                .collect(),
        )
}
