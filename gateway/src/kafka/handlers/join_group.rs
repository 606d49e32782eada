//! JoinGroup: a member (re)joins a classic group and waits until the rebalance's join phase
//! ends; the leader's answer lists every member's subscription.

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use super::{str_bytes, Request};
use crate::broker::acl::{Operation, Resource};
use crate::broker::coordinator::JoinRequest;
use crate::kafka::errors::{code, for_group_result};

pub async fn handle(req: &Request<'_>, r: JoinGroupRequest) -> JoinGroupResponse {
    let v = req.version;
    if !req.may(Operation::Read, Resource::Group(r.group_id.0.as_str())) {
        let mut resp = JoinGroupResponse::default()
            .with_error_code(code::GROUP_AUTHORIZATION_FAILED)
            .with_generation_id(-1)
            .with_member_id(r.member_id);
        if v < 7 {
            resp = resp.with_protocol_name(Some(str_bytes("")));
        }
        return resp;
    }
    let join = JoinRequest {
        group_id: r.group_id.0.to_string(),
        member_id: r.member_id.to_string(),
        group_instance_id: r.group_instance_id.map(|s| s.to_string()),
        client_id: req.client_id.clone().unwrap_or_default(),
        client_host: req.client_host(),
        session_timeout_ms: r.session_timeout_ms,
        rebalance_timeout_ms: if v >= 1 { r.rebalance_timeout_ms } else { -1 },
        protocol_type: r.protocol_type.to_string(),
        protocols: r
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: v >= 4,
    };
    let res = req.broker().join_group(join).await;
    let members = res
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(str_bytes(m.member_id))
                .with_group_instance_id(if v >= 5 {
                    m.group_instance_id.map(str_bytes)
                } else {
                    None
                })
                .with_metadata(m.metadata)
        })
        .collect();
    // Before v7 the protocol name is not nullable: "" stands for none.
    let protocol_name = match res.protocol_name {
        Some(p) => Some(str_bytes(p)),
        None if v < 7 => Some(str_bytes("")),
        None => None,
    };
    let mut resp = JoinGroupResponse::default()
        .with_error_code(for_group_result(res.error.as_ref()))
        .with_generation_id(res.generation)
        .with_protocol_name(protocol_name)
        .with_leader(str_bytes(res.leader))
        .with_member_id(str_bytes(res.member_id))
        .with_members(members);
    if v >= 7 {
        resp = resp.with_protocol_type(res.protocol_type.map(str_bytes));
    }
    if v >= 9 {
        resp = resp.with_skip_assignment(res.skip_assignment);
    }
    resp
}
