//! ElectLeaders: on one node, every partition's leader is already this node.

use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};

use super::Request;

// SEAM (#18): not advertised or guarded yet; the part that serves this API replaces the body.
pub async fn handle(req: &Request<'_>, r: ElectLeadersRequest) -> ElectLeadersResponse {
    let _ = (req, r);
    ElectLeadersResponse::default()
}
