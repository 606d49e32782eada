//! SyncGroup: the leader hands in everyone's assignment; every member gets its own.

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::{str_bytes, Request};
use crate::broker::acl::{Operation, Resource};
use crate::broker::coordinator::SyncRequest;
use crate::kafka::errors::{code, for_group_result};

pub async fn handle(req: &Request<'_>, r: SyncGroupRequest) -> SyncGroupResponse {
    let v = req.version;
    if !req.may(Operation::Read, Resource::Group(r.group_id.0.as_str())) {
        return SyncGroupResponse::default().with_error_code(code::GROUP_AUTHORIZATION_FAILED);
    }
    let sync = SyncRequest {
        group_id: r.group_id.0.to_string(),
        generation: r.generation_id,
        member_id: r.member_id.to_string(),
        group_instance_id: r.group_instance_id.map(|s| s.to_string()),
        protocol_type: r.protocol_type.map(|s| s.to_string()),
        protocol_name: r.protocol_name.map(|s| s.to_string()),
        assignments: r
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let res = req.broker().sync_group(sync).await;
    let mut resp = SyncGroupResponse::default()
        .with_error_code(for_group_result(res.error.as_ref()))
        .with_assignment(res.assignment);
    if v >= 5 {
        resp = resp
            .with_protocol_type(res.protocol_type.map(str_bytes))
            .with_protocol_name(res.protocol_name.map(str_bytes));
    }
    resp
}
