//! Heartbeat: keeps a member's session alive; REBALANCE_IN_PROGRESS tells it to rejoin.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::Request;
use crate::broker::acl::{Operation, Resource};
use crate::broker::coordinator::MemberRef;
use crate::kafka::errors::{code, for_group_result};

pub fn handle(req: &Request<'_>, r: HeartbeatRequest) -> HeartbeatResponse {
    if !req.may(Operation::Read, Resource::Group(r.group_id.0.as_str())) {
        return HeartbeatResponse::default().with_error_code(code::GROUP_AUTHORIZATION_FAILED);
    }
    let who = MemberRef {
        member_id: r.member_id.as_str(),
        group_instance_id: r.group_instance_id.as_ref().map(|s| s.as_str()),
        generation: r.generation_id,
    };
    let result = req.broker().heartbeat(r.group_id.0.as_str(), who);
    HeartbeatResponse::default().with_error_code(for_group_result(result.err().as_ref()))
}
