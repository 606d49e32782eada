//! `GET /metrics`: everything in [`super::Metrics`] and what is read at scrape time, in the
//! Prometheus text format (OpenMetrics), encoded with the `prometheus-client` crate.

use crate::broker::Broker;

use super::Metrics;

/// The exposition now. `broker` is `None` while the store is still opening (recovery): then
/// only the process's own figures are given.
pub fn exposition(metrics: &Metrics, broker: Option<&Broker>) -> String {
    // SEAM: the metrics part fills this in.
    let _ = (metrics, broker);
    String::from("# EOF\n")
}
