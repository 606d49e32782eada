//! ListConfigResources (KIP-1142): the resources that have configs.

use kafka_protocol::messages::{ListConfigResourcesRequest, ListConfigResourcesResponse};

use super::Request;

// SEAM (#18): not advertised or guarded yet; the part that serves this API replaces the body.
pub async fn handle(
    req: &Request<'_>,
    r: ListConfigResourcesRequest,
) -> ListConfigResourcesResponse {
    let _ = (req, r);
    ListConfigResourcesResponse::default()
}
