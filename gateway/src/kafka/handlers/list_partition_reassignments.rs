//! ListPartitionReassignments: none are ever in progress on one node.

use kafka_protocol::messages::{
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};

use super::Request;

// SEAM (#18): not advertised or guarded yet; the part that serves this API replaces the body.
pub async fn handle(
    req: &Request<'_>,
    r: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let _ = (req, r);
    ListPartitionReassignmentsResponse::default()
}
