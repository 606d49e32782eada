//! AlterPartitionReassignments: the only valid assignment names this node alone.

use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
};

use super::Request;

// SEAM (#18): not advertised or guarded yet; the part that serves this API replaces the body.
pub async fn handle(
    req: &Request<'_>,
    r: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let _ = (req, r);
    AlterPartitionReassignmentsResponse::default()
}
