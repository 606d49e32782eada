//! The operator's HTTP listener (`[http]`): `GET /metrics` (Prometheus text or OpenMetrics),
//! `/health` (the process is up) and `/ready` (the store is open and every listener is bound).
//! It is bound before the store opens, so health checks and scrapes are answered during
//! recovery, and stopped only when the store is about to close, so `/ready` says 503 while the
//! server drains.
//!
//! Bounds, each from `[http]` or below: connections open at once (`max_connections`, and
//! `max_connections_per_ip` from one address; more are closed at accept), one request per
//! connection, its head at most [`request::MAX_HEAD`] bytes, its TLS handshake and head within
//! `request_timeout` from the accept, its answer made within `request_timeout` and taken within
//! `request_timeout` again; one `/metrics` exposition made at a time.
//!
//! - [`listener`]: accept loop, connection caps, TLS, timeouts, one request and its answer.
//! - [`request`]: finding and parsing the request head.
//! - [`routes`]: what each path answers.
//! - [`scrape`]: `/metrics` expositions made one at a time, shared by concurrent scrapes.
//! - [`response`]: the answer as sent.

pub mod listener;
pub mod request;
pub mod response;
pub mod routes;
pub mod scrape;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::broker::Broker;
use crate::config::HttpConfig;
use crate::metrics::Metrics;
use crate::peer_log::PeerLog;

/// The listener's name in the peer log and in log lines.
pub const DOOR: &str = "http";

/// Where the server is in its life, as `/ready` reports it. The phases only move forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// The store is being opened (recovery).
    OpeningStore = 0,
    /// The store is open; the doors' listeners are being bound.
    StartingListeners = 1,
    /// Serving.
    Ready = 2,
    /// Told to stop: draining connections, then closing the store.
    Stopping = 3,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::OpeningStore,
            1 => Phase::StartingListeners,
            2 => Phase::Ready,
            _ => Phase::Stopping,
        }
    }
}

/// What the endpoints read about the server: its phase, its metrics and, while the store is
/// open, its broker.
pub struct ServerState {
    metrics: Arc<Metrics>,
    phase: AtomicU8,
    broker: RwLock<Option<Arc<Broker>>>,
    expositions: scrape::Expositions,
}

impl std::fmt::Debug for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerState")
            .field("phase", &self.phase())
            .field("store_open", &self.broker.read().is_some())
            .finish_non_exhaustive()
    }
}

impl ServerState {
    /// A server whose store is not open yet.
    pub fn new(metrics: Arc<Metrics>) -> Arc<ServerState> {
        Arc::new(ServerState {
            metrics,
            phase: AtomicU8::new(Phase::OpeningStore as u8),
            broker: RwLock::new(None),
            expositions: scrape::Expositions::default(),
        })
    }

    pub fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::Acquire))
    }

    /// Moves to `phase` unless the server is already past it.
    fn advance(&self, phase: Phase) {
        self.phase.fetch_max(phase as u8, Ordering::AcqRel);
    }

    /// The store is open: `/metrics` reads it from now on.
    pub fn store_opened(&self, broker: Arc<Broker>) {
        *self.broker.write() = Some(broker);
        self.advance(Phase::StartingListeners);
    }

    /// Every door's listener is bound: ready, unless already stopping. Whether it turned ready.
    pub fn listeners_bound(&self) -> bool {
        self.advance(Phase::Ready);
        self.phase() == Phase::Ready
    }

    /// Told to stop: not ready any more.
    pub fn stopping(&self) {
        self.advance(Phase::Stopping);
    }

    /// The store is about to close: `/metrics` stops reading it.
    pub fn store_closing(&self) {
        *self.broker.write() = None;
    }

    /// The broker while the store is open.
    pub fn broker(&self) -> Option<Arc<Broker>> {
        self.broker.read().clone()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The `/metrics` expositions, made one at a time.
    pub fn expositions(&self) -> &scrape::Expositions {
        &self.expositions
    }
}

/// The running listener: its address and what stops it.
#[derive(Debug)]
pub struct HttpListener {
    /// The address actually bound.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    open: watch::Receiver<usize>,
}

impl HttpListener {
    /// Serves `listener` (bound at `addr`) in the background until [`HttpListener::stop`].
    pub fn spawn(
        listener: TcpListener,
        addr: SocketAddr,
        tls: Option<TlsAcceptor>,
        config: &HttpConfig,
        state: Arc<ServerState>,
        peer_log: Arc<PeerLog>,
    ) -> HttpListener {
        let (stop, stopped) = watch::channel(false);
        let settings = listener::Settings {
            max_connections: config.max_connections,
            max_connections_per_ip: config.max_connections_per_ip,
            request_timeout: config.request_timeout,
        };
        state
            .expositions()
            .keep_for(scrape::kept_for(config.request_timeout));
        let (opened, open) = watch::channel(0);
        let task = tokio::spawn(listener::accept_loop(
            listener, tls, settings, state, peer_log, stopped, opened,
        ));
        HttpListener {
            addr,
            stop,
            task,
            open,
        }
    }

    /// The connections open now (their slots taken), as they change.
    pub fn open_connections(&self) -> watch::Receiver<usize> {
        self.open.clone()
    }

    /// Stops accepting, gives answers being written [`crate::server::STOP_GRACE`], and waits.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::warn!("the HTTP listener ended abnormally: {e}");
        }
    }
}

/// What the HTTP listener accepts, for its log line.
pub fn accepts(config: &HttpConfig) -> &'static str {
    match &config.tls {
        None => "plain HTTP; no login",
        Some(t) if t.client_ca_file.is_some() => "HTTPS; client certificates required",
        Some(_) => "HTTPS; no login",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_only_move_forward() {
        let state = ServerState::new(Metrics::new(true));
        assert_eq!(state.phase(), Phase::OpeningStore);
        assert!(state.listeners_bound());
        assert_eq!(state.phase(), Phase::Ready);
        state.stopping();
        // A late "bound" cannot make a stopping server ready again.
        assert!(!state.listeners_bound());
        assert_eq!(state.phase(), Phase::Stopping);
        assert!(state.broker().is_none());
    }
}
