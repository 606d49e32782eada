//! KIP-848's ConsumerGroupHeartbeat: join, heartbeat, reconcile and leave a consumer-protocol group.

use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};

use super::Request;

// SEAM (#18): not advertised or guarded yet; the part that serves this API replaces the body.
pub async fn handle(
    req: &Request<'_>,
    r: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let _ = (req, r);
    ConsumerGroupHeartbeatResponse::default()
}
