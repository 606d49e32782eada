//! AlterClientQuotas: set and remove quotas for users and client ids.

use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse};

use super::Request;

// SEAM (#18): not advertised or guarded yet; the part that serves this API replaces the body.
pub async fn handle(req: &Request<'_>, r: AlterClientQuotasRequest) -> AlterClientQuotasResponse {
    let _ = (req, r);
    AlterClientQuotasResponse::default()
}
