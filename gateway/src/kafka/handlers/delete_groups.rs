//! DeleteGroups: an empty group is forgotten with its committed offsets; a group with members
//! is NON_EMPTY_GROUP, one nobody knows GROUP_ID_NOT_FOUND.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};
use wharf_log_store::OffsetOwner;

use super::Request;
use crate::kafka::errors::{code, for_group};

pub fn handle(req: &Request<'_>, r: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let offsets = req.broker().store.offsets();
    let results = r
        .groups_names
        .into_iter()
        .map(|id| {
            let name = id.0.to_string();
            let owner = OffsetOwner::Group(name.clone());
            let mut failed = None;
            let outcome = if name.is_empty() {
                Err(code::INVALID_GROUP_ID)
            } else {
                req.broker()
                    .coordinator
                    .delete(&name, || match offsets.delete_where(|k| k.owner == owner) {
                        Ok(n) => n > 0,
                        Err(e) => {
                            failed = Some(e);
                            true
                        }
                    })
                    .map_err(|e| for_group(&e))
            };
            let error = match (outcome, failed) {
                (Err(c), _) => c,
                (Ok(()), Some(e)) => {
                    tracing::warn!(group = %name, "cannot delete the group's offsets: {e}");
                    code::UNKNOWN_SERVER_ERROR
                }
                (Ok(()), None) => code::NONE,
            };
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(error)
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}
