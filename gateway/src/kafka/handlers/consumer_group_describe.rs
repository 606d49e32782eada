//! KIP-848's ConsumerGroupDescribe: members, epochs and assignments of consumer-protocol groups.

use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse};

use super::Request;

// SEAM (#18): not advertised or guarded yet; the part that serves this API replaces the body.
pub async fn handle(
    req: &Request<'_>,
    r: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let _ = (req, r);
    ConsumerGroupDescribeResponse::default()
}
