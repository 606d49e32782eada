//! DescribeLogDirs: the one data directory and the size of each partition in it.

use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};

use super::Request;

// SEAM (#18): not advertised or guarded yet; the part that serves this API replaces the body.
pub async fn handle(req: &Request<'_>, r: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let _ = (req, r);
    DescribeLogDirsResponse::default()
}
