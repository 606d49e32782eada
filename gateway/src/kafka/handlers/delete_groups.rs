//! DeleteGroups: an empty group is forgotten with its committed offsets; a group with members
//! is NON_EMPTY_GROUP, one nobody knows GROUP_ID_NOT_FOUND.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::Request;
use crate::broker::acl::{Operation, Resource};
use crate::kafka::errors::{code, for_partition_offset};

pub async fn handle(req: &Request<'_>, r: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(r.groups_names.len());
    for id in r.groups_names {
        let error = if !req.may(Operation::Delete, Resource::Group(id.0.as_str())) {
            code::GROUP_AUTHORIZATION_FAILED
        } else {
            match req.broker().delete_kafka_group(id.0.as_str()).await {
                Ok(()) => code::NONE,
                Err(e) => for_partition_offset(&e),
            }
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(error),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
