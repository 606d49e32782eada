//! What each path answers: `/metrics` (the exposition, in the format the scraper prefers),
//! `/health` (the process is up), `/ready` (the store is open and every listener is bound, and
//! the server is not stopping); 404 for any other path, 405 for a method other than GET and
//! HEAD.

use std::sync::Arc;

use super::request::{Method, Request};
use super::response::{Response, Status};
use super::{Phase, ServerState};

/// The Prometheus text format, version 0.0.4: what a scraper gets unless it asks for
/// OpenMetrics.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// OpenMetrics text 1.0.0, for a scraper whose `Accept` prefers it (Prometheus does).
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The answer to `request`.
pub async fn answer(request: &Request, state: &Arc<ServerState>) -> Response {
    let mut response = match request.path.as_str() {
        "/metrics" | "/health" | "/ready"
            if !matches!(request.method, Method::Get | Method::Head) =>
        {
            Response::text(Status::MethodNotAllowed, "only GET and HEAD\n")
        }
        "/metrics" => metrics(request, state).await,
        "/health" => Response::text(Status::Ok, "ok\n"),
        "/ready" => ready(state.phase()),
        _ => Response::text(
            Status::NotFound,
            "not found: try /metrics, /health or /ready\n",
        ),
    };
    response.head_only = request.method == Method::Head;
    response
}

/// `/ready`: 200 only while serving.
fn ready(phase: Phase) -> Response {
    match phase {
        Phase::Ready => Response::text(Status::Ok, "ready\n"),
        Phase::OpeningStore => {
            Response::text(Status::ServiceUnavailable, "not ready: opening the store\n")
        }
        Phase::StartingListeners => Response::text(
            Status::ServiceUnavailable,
            "not ready: starting the listeners\n",
        ),
        Phase::Stopping => Response::text(Status::ServiceUnavailable, "not ready: stopping\n"),
    }
}

/// `/metrics`: the exposition, made off the runtime's threads (it reads `/proc` and walks the
/// data directory).
async fn metrics(request: &Request, state: &Arc<ServerState>) -> Response {
    let openmetrics = prefers_openmetrics(request.accept.as_deref());
    let content_type = if openmetrics {
        OPENMETRICS_TEXT
    } else {
        PROMETHEUS_TEXT
    };
    let metrics = Arc::clone(&state.metrics);
    let broker = state.broker();
    let made = tokio::task::spawn_blocking(move || {
        // The body in the format the content type names (OpenMetrics names counters without
        // `_total` in its metadata and ends with `# EOF`; 0.0.4 does neither).
        if openmetrics {
            crate::metrics::exposition::exposition_openmetrics(&metrics, broker.as_deref())
        } else {
            crate::metrics::exposition::exposition(&metrics, broker.as_deref())
        }
    })
    .await;
    match made {
        Ok(body) => Response {
            status: Status::Ok,
            content_type,
            body,
            head_only: false,
        },
        Err(e) => {
            tracing::warn!("the metrics exposition failed: {e}");
            Response::text(Status::InternalServerError, "the exposition failed\n")
        }
    }
}

/// Whether an `Accept` field prefers OpenMetrics text to the Prometheus text format: it names
/// `application/openmetrics-text` with a quality above zero and at least that of the best
/// range matching `text/plain`.
pub fn prefers_openmetrics(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    let (mut openmetrics, mut plain) = (0.0f32, 0.0f32);
    for range in accept.split(',') {
        let mut params = range.split(';').map(str::trim);
        let media = params.next().unwrap_or_default().to_ascii_lowercase();
        let q = params
            .filter_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "application/openmetrics-text" => openmetrics = openmetrics.max(q),
            "text/plain" | "text/*" | "*/*" => plain = plain.max(q),
            _ => {}
        }
    }
    openmetrics > 0.0 && openmetrics >= plain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_only_when_preferred() {
        // What Prometheus 2.x/3.x sends.
        assert!(prefers_openmetrics(Some(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        )));
        assert!(!prefers_openmetrics(None));
        assert!(!prefers_openmetrics(Some("*/*")));
        assert!(!prefers_openmetrics(Some("text/plain")));
        assert!(!prefers_openmetrics(Some(
            "application/openmetrics-text;q=0.2, text/plain"
        )));
        assert!(!prefers_openmetrics(Some(
            "application/openmetrics-text;q=0"
        )));
    }

    #[test]
    fn ready_says_why_not() {
        assert_eq!(ready(Phase::Ready).status, Status::Ok);
        for phase in [
            Phase::OpeningStore,
            Phase::StartingListeners,
            Phase::Stopping,
        ] {
            let r = ready(phase);
            assert_eq!(r.status, Status::ServiceUnavailable);
            assert!(r.body.starts_with("not ready: "), "{}", r.body);
        }
    }
}
