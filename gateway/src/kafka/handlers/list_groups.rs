//! ListGroups: the groups with members here and the groups with committed offsets (Empty),
//! optionally filtered by state (v4+) and by type (v5+: `classic` or `consumer`).

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::{str_bytes, Request};
use crate::broker::acl::{Operation, Resource};
use crate::kafka::errors::code;

pub fn handle(req: &Request<'_>, r: ListGroupsRequest) -> ListGroupsResponse {
    let groups = req
        .broker()
        .list_kafka_groups()
        .into_iter()
        // Only the groups the principal may describe (Kafka lists them all with Describe on
        // the cluster; Wharf's cluster rights say nothing about groups).
        .filter(|g| req.may(Operation::Describe, Resource::Group(&g.group_id)))
        .filter(|g| {
            r.states_filter.is_empty()
                || r.states_filter
                    .iter()
                    .any(|s| s.as_str().trim().eq_ignore_ascii_case(g.state))
        })
        // v5: Kafka's group types (`classic`, `consumer`), case-insensitive.
        .filter(|g| {
            r.types_filter.is_empty()
                || r.types_filter
                    .iter()
                    .any(|t| t.as_str().trim().eq_ignore_ascii_case(g.group_type))
        })
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(str_bytes(g.group_id)))
                .with_protocol_type(str_bytes(g.protocol_type))
                .with_group_state(str_bytes(g.state))
                .with_group_type(str_bytes(g.group_type))
        })
        .collect();
    ListGroupsResponse::default()
        .with_error_code(code::NONE)
        .with_groups(groups)
}
