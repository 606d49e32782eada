//! DescribeQuorum: one voter, this node, the leader of the metadata quorum.

use kafka_protocol::messages::{DescribeQuorumRequest, DescribeQuorumResponse};

use super::Request;

// SEAM (#18): not advertised or guarded yet; the part that serves this API replaces the body.
pub async fn handle(req: &Request<'_>, r: DescribeQuorumRequest) -> DescribeQuorumResponse {
    let _ = (req, r);
    DescribeQuorumResponse::default()
}
