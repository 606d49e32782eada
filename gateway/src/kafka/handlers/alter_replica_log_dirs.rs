//! AlterReplicaLogDirs: moving a replica between directories, on a node with one directory.

use kafka_protocol::messages::{AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse};

use super::Request;

// SEAM (#18): not advertised or guarded yet; the part that serves this API replaces the body.
pub async fn handle(
    req: &Request<'_>,
    r: AlterReplicaLogDirsRequest,
) -> AlterReplicaLogDirsResponse {
    let _ = (req, r);
    AlterReplicaLogDirsResponse::default()
}
