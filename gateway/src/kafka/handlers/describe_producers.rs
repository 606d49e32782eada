//! DescribeProducers: the idempotent and transactional producers active on partitions.

use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse};

use super::Request;

// SEAM (#18): not advertised or guarded yet; the part that serves this API replaces the body.
pub async fn handle(req: &Request<'_>, r: DescribeProducersRequest) -> DescribeProducersResponse {
    let _ = (req, r);
    DescribeProducersResponse::default()
}
