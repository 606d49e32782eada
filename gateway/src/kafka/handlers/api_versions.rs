//! ApiVersions: the first request of every client; answers with [`versions::ADVERTISED`].

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiVersionsResponse;

use super::Request;
use crate::kafka::errors::code;
use crate::kafka::versions;

fn api_keys() -> Vec<ApiVersion> {
    versions::ADVERTISED
        .iter()
        .map(|&(key, lo, hi)| {
            ApiVersion::default()
                .with_api_key(key)
                .with_min_version(lo)
                .with_max_version(hi)
        })
        .collect()
}

pub fn handle(_req: &Request<'_>) -> ApiVersionsResponse {
    // Tagged fields keep their defaults, so none is sent: kcat (librdkafka 2.0.2) chokes on them.
    ApiVersionsResponse::default().with_api_keys(api_keys())
}

/// The answer to an ApiVersions request above our range, in the v0 layout.
pub fn unsupported_version() -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(code::UNSUPPORTED_VERSION)
        .with_api_keys(api_keys())
}
