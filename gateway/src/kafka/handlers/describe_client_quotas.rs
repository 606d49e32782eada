//! DescribeClientQuotas: the quotas set for users and client ids.

use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};

use super::Request;

// SEAM (#18): not advertised or guarded yet; the part that serves this API replaces the body.
pub async fn handle(
    req: &Request<'_>,
    r: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let _ = (req, r);
    DescribeClientQuotasResponse::default()
}
