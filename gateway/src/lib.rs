//! `wharf-server`: configuration, listeners, the protocol adapters and the broker core.
//!
//! - [`config`]: `configs/server.toml`, environment and flags.
//! - [`broker`]: the protocol-neutral core (log store, users, clients, consumer groups).
//! - [`native`]: the Apache Iggy 0.8 TCP adapter.
//! - [`kafka`]: the Kafka wire protocol adapter.
//! - [`server`]: what both listeners share (accept loop and connection caps, request reader
//!   with its timeouts, the request budget, stop signal).
//! - [`tls`]: a door's certificate, key and client CA turned into its TLS acceptor.
//! - [`metrics`]: what the server counts about itself for the operator.
//! - [`http`]: the operator's HTTP listener (`/metrics`, `/health`, `/ready`).
//! - [`peer_log`]: rate-limited log lines about misbehaving peers and failed accepts.

pub mod broker;
pub mod config;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod native;
pub mod peer_log;
pub mod server;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use broker::{Broker, BrokerError, BrokerSettings};
use config::{KafkaAuthentication, KafkaConfig, KafkaListener, ServerConfig, TlsSettings};
use peer_log::PeerLog;
use server::budget::RequestBudget;
use server::{Entrance, Shared};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio_rustls::TlsAcceptor;

/// What stops the server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{0}")]
    Broker(#[from] BrokerError),
    #[error("{0}")]
    Store(#[from] wharf_log_store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// A door's TLS files cannot be used (named in the message).
    #[error("{door} door: {source}")]
    Tls {
        door: &'static str,
        source: tls::TlsError,
    },
}

/// Listens for SIGINT and SIGTERM from the moment it is called (so a signal that arrives while
/// the server is still starting is not lost to the default action) and returns a future that
/// resolves on the first of them. Call it inside the runtime, before [`run`].
pub fn shutdown_signal() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => Box::pin(async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(
                    "cannot listen for SIGTERM/SIGINT ({e}); falling back to Ctrl-C only"
                );
                Box::pin(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
            }
        }
    }
    #[cfg(not(unix))]
    {
        Box::pin(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// How long, once stopping, the listeners and background drivers get before they are abandoned
/// and the store is closed anyway (beyond the connections' [`server::STOP_DRAIN`]).
const SERVING_WAIT: Duration = Duration::from_secs(20);

/// A running server, for tests and embedding: its listening addresses and a handle to stop it.
#[derive(Debug)]
pub struct Running {
    /// The main native listener (`--native-addr`).
    pub native_addr: SocketAddr,
    /// The main Kafka listener (`--kafka-addr`).
    pub kafka_addr: SocketAddr,
    /// Every native listener's bound address, in config order (the main one first).
    pub native_listeners: Vec<SocketAddr>,
    /// Every Kafka listener's bound address, in config order (the main one first).
    pub kafka_listeners: Vec<SocketAddr>,
    /// The HTTP listener's bound address (`/metrics`, `/health`, `/ready`), when it is on.
    pub http_addr: Option<SocketAddr>,
    /// The HTTP connections open now, as they change (when the listener is on): tests wait on
    /// it for a slot to come back.
    pub http_connections: Option<watch::Receiver<usize>>,
    /// Request bytes in memory across both doors, with its gauges.
    pub request_budget: Arc<RequestBudget>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), ServerError>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish (within [`server::STOP_DRAIN`]; answers
    /// within [`server::STOP_GRACE`]), saves the producer state, syncs and closes the store,
    /// and waits for it all.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        let _ = self.stop.send(true);
        self.task
            .await
            .unwrap_or_else(|e| Err(ServerError::Broker(BrokerError::Internal(e.to_string()))))
    }
}

/// Test seams in the start: what a test may learn and hold between its steps.
#[derive(Debug, Default)]
pub struct StartHooks {
    /// Told the HTTP listener's address as soon as it is bound, before the store opens
    /// (dropped unsent when the listener is off).
    pub http_bound: Option<oneshot::Sender<SocketAddr>>,
    /// Awaited after the HTTP listener is bound and before the store opens: holds the server
    /// in recovery, as a slow one would be (a dropped sender lets it go on).
    pub before_open: Option<oneshot::Receiver<()>>,
    /// Awaited once stopping, after the connections are drained and before the HTTP listener
    /// stops and the store closes: holds the server in its stopping phase.
    pub before_close: Option<oneshot::Receiver<()>>,
    /// Told when the server turns ready (`/ready` says 200); dropped unsent if it never does.
    pub ready: Option<oneshot::Sender<()>>,
    /// Told as soon as the server is stopping (`/ready` says 503 from then on).
    pub stopping: Option<oneshot::Sender<()>>,
    /// A stop asked for while the server starts (what [`run`] passes its shutdown signal
    /// through): once it is true, the server never turns ready and its doors serve no client;
    /// the start still finishes (the store opened cleanly) and returns a server that only
    /// closes.
    pub stop: Option<watch::Receiver<bool>>,
}

/// Opens the broker and binds the listeners, then serves in the background.
pub async fn start(config: ServerConfig) -> Result<Running, ServerError> {
    start_with(config, StartHooks::default()).await
}

/// [`start`], with the [`StartHooks`] a test holds. The HTTP listener is bound first, so that
/// `/health` answers and `/ready` says 503 while the store recovers; `/ready` turns 200 once
/// every door's listener is bound.
pub async fn start_with(config: ServerConfig, hooks: StartHooks) -> Result<Running, ServerError> {
    // TLS files first: a bad one stops the start before the store opens or anything listens.
    let native_tls = door_tls("native", config.native.tls.as_ref())?;
    let kafka_tls = door_tls("kafka", config.kafka.tls.as_ref())?;
    let http_tls = door_tls(http::DOOR, config.http.tls.as_ref())?;
    let metrics = metrics::Metrics::configured(&config.metrics);
    let peer_log = Arc::new(PeerLog::new(config.peer_log_interval));
    let state = http::ServerState::new(Arc::clone(&metrics));
    let http_listener = match config.http.address {
        None => None,
        Some(address) => {
            let (listener, addr) = bind(address).await?;
            tracing::info!(
                "HTTP listener on {addr} ({}): /metrics, /health, /ready",
                http::accepts(&config.http)
            );
            Some(http::HttpListener::spawn(
                listener,
                addr,
                http_tls,
                &config.http,
                Arc::clone(&state),
                Arc::clone(&peer_log),
            ))
        }
    };
    if let (Some(tx), Some(l)) = (hooks.http_bound, &http_listener) {
        let _ = tx.send(l.addr);
    }
    if let Some(gate) = hooks.before_open {
        let _ = gate.await;
    }
    let doors = Doors {
        native_tls,
        kafka_tls,
        metrics,
        peer_log,
        state,
        before_close: hooks.before_close,
        ready: hooks.ready,
        stopping: hooks.stopping,
        stop: hooks.stop,
    };
    // Whatever stops the start, the HTTP listener stops with it.
    let http_addr = http_listener.as_ref().map(|l| l.addr);
    let http_connections = http_listener.as_ref().map(|l| l.open_connections());
    let mut http_listener = http_listener;
    match open_and_serve(config, doors, &mut http_listener).await {
        Ok(mut running) => {
            running.http_addr = http_addr;
            running.http_connections = http_connections;
            Ok(running)
        }
        Err(e) => {
            if let Some(l) = http_listener {
                l.stop().await;
            }
            Err(e)
        }
    }
}

/// What the start made before the store opens, for [`open_and_serve`].
struct Doors {
    native_tls: Option<TlsAcceptor>,
    kafka_tls: Option<TlsAcceptor>,
    metrics: Arc<metrics::Metrics>,
    peer_log: Arc<PeerLog>,
    state: Arc<http::ServerState>,
    before_close: Option<oneshot::Receiver<()>>,
    ready: Option<oneshot::Sender<()>>,
    stopping: Option<oneshot::Sender<()>>,
    stop: Option<watch::Receiver<bool>>,
}

/// Opens the store (recovery runs on the blocking pool, so the HTTP listener answers
/// meanwhile), binds the doors' listeners and serves. Takes the HTTP listener once nothing
/// can fail any more: the serving task stops it just before the store closes.
async fn open_and_serve(
    config: ServerConfig,
    doors: Doors,
    http_listener: &mut Option<http::HttpListener>,
) -> Result<Running, ServerError> {
    let Doors {
        native_tls,
        kafka_tls,
        metrics,
        peer_log,
        state,
        before_close,
        ready,
        stopping,
        stop: stop_asked,
    } = doors;
    let broker = {
        let data_dir = config.data_dir.clone();
        let store = config.store.clone();
        let settings = BrokerSettings {
            root_username: config.root_username.clone(),
            root_password: config.root_password.clone(),
            kafka_default_stream: config.kafka.default_stream.clone(),
            groups: config.kafka.groups.clone(),
            transactions: config.kafka.transactions.clone(),
            logins: config.logins.clone(),
            max_partitions_per_topic: config.max_partitions_per_topic,
            max_partitions: config.max_partitions,
        };
        let inflight = config.kafka.max_inflight_decompressions;
        let quota_windows = config.kafka.quota_windows;
        let metrics = Arc::clone(&metrics);
        tokio::task::spawn_blocking(move || {
            Broker::open(&data_dir, store, settings).map(|b| {
                b.with_max_inflight_decompressions(inflight)
                    .with_quota_windows(quota_windows)
                    .with_metrics(metrics)
            })
        })
        .await
        .map_err(|e| ServerError::Broker(BrokerError::Internal(e.to_string())))??
    };
    if broker.root_has_password("iggy") {
        tracing::warn!(
            "the root user '{}' still has the default password; change it",
            config.root_username
        );
    }
    let broker = Arc::new(broker);
    state.store_opened(Arc::clone(&broker));
    // Transactions left prepared by the last run get their markers before any Kafka client
    // can read or write again.
    broker.recover_transactions().await;
    // Compaction asks the broker core about transactions, so it starts once they are recovered.
    broker.start_cleaner();
    let mut native_bound = Vec::new();
    for l in config.native.listeners() {
        let (listener, addr) = bind(l.address).await?;
        native_bound.push((listener, addr, l.tls));
    }
    let mut kafka_bound = Vec::new();
    for mut l in config.kafka.listeners() {
        let (listener, addr) = bind(l.address).await?;
        // Report the port actually bound (the config may say 0) in metadata.
        l.address = addr;
        kafka_bound.push((listener, l));
    }
    let door = Arc::new(kafka::Door {
        broker: Arc::clone(&broker),
        cluster_id: kafka::cluster_id(&broker).await?,
        fetch_sessions: kafka::fetch_sessions::FetchSessions::new(
            config.kafka.max_incremental_fetch_session_cache_slots,
        )
        .with_max_partitions(config.max_partitions as usize),
        config: config.kafka.clone(),
    });
    let native_listeners: Vec<SocketAddr> = native_bound.iter().map(|(_, a, _)| *a).collect();
    let kafka_listeners: Vec<SocketAddr> = kafka_bound.iter().map(|(_, l)| l.address).collect();
    // Asked to stop while starting (recovery can be long): never ready, and no client is let
    // in; the listeners close unserved and the serving task below only closes the store.
    let stop_asked = stop_asked.is_some_and(|s| *s.borrow());
    if stop_asked {
        state.stopping();
        tracing::info!("stop asked while starting: not serving");
        native_bound.clear();
        kafka_bound.clear();
    }
    // Every listener is bound (connections wait in its backlog until its loop runs) and nothing
    // below can fail: ready, before the listener lines, so whoever reads them finds /ready 200.
    // (After a stop, the phase stays Stopping: it only moves forward.)
    if state.listeners_bound() {
        if let Some(tx) = ready {
            let _ = tx.send(());
        }
    }
    for (i, (_, addr, tls)) in native_bound.iter().enumerate() {
        let accepts = native_accepts(*tls, config.native.tls.as_ref());
        if i == 0 {
            tracing::info!(data_dir = %config.data_dir.display(), "native (Iggy) listener on {addr} ({accepts})");
        } else {
            tracing::info!("native (Iggy) listener on {addr} ({accepts})");
        }
    }
    for (_, l) in &kafka_bound {
        tracing::info!(
            "Kafka listener on {} ({})",
            l.address,
            kafka_accepts(l, &config.kafka)
        );
    }
    let largest_request = config
        .native
        .max_request_size
        .max(config.kafka.max_request_size);
    let shared = Shared {
        budget: RequestBudget::new(config.queued_max_request_bytes, u64::from(largest_request)),
        peer_log,
        metrics,
    };
    let request_budget = Arc::clone(&shared.budget);
    let (stop, stopped) = watch::channel(stop_asked);
    // Each door's caps hold across all its listeners.
    let native_entrance = Entrance::new("native", config.native.limits.clone());
    let kafka_entrance = Entrance::new("kafka", config.kafka.limits.clone());
    let mut listeners = tokio::task::JoinSet::new();
    for (listener, addr, tls) in native_bound {
        let mut native = config.native.clone();
        // What cluster metadata reports to a client of this listener.
        native.address = addr;
        let entrance = native_entrance.with_tls(native_tls.clone().filter(|_| tls));
        listeners.spawn(native::serve(
            listener,
            entrance,
            Arc::clone(&broker),
            native,
            shared.clone(),
            stopped.clone(),
        ));
    }
    for (listener, settings) in kafka_bound {
        let entrance = kafka_entrance.with_tls(kafka_tls.clone().filter(|_| settings.tls));
        listeners.spawn(kafka::serve(
            listener,
            settings,
            entrance,
            Arc::clone(&door),
            shared.clone(),
            stopped.clone(),
        ));
    }
    let serving = {
        let broker = Arc::clone(&broker);
        let stopped = stopped.clone();
        tokio::spawn(async move {
            tokio::join!(
                async move { while listeners.join_next().await.is_some() {} },
                shared.peer_log.drive(stopped.clone()),
                broker.drive_group_timers(stopped.clone()),
                broker.drive_transactions(stopped.clone()),
                broker.drive_producer_snapshots(stopped),
            );
        })
    };
    let http_listener = http_listener.take();
    let task = tokio::spawn(async move {
        let mut stopped = stopped;
        server::until_stopped(&mut stopped).await;
        state.stopping();
        if let Some(tx) = stopping {
            let _ = tx.send(());
        }
        // The listeners give their connections STOP_DRAIN; this is the last resort, so that
        // whatever still runs then, the producer state is saved and the store closed.
        let mut serving = serving;
        if tokio::time::timeout(SERVING_WAIT, &mut serving)
            .await
            .is_err()
        {
            tracing::warn!("still serving {SERVING_WAIT:?} after the stop; abandoning it");
            serving.abort();
            let _ = serving.await;
        }
        if let Err(e) = broker.save_producers().await {
            tracing::warn!("cannot save the idempotent producer state: {e}");
        }
        if let Some(gate) = before_close {
            let _ = gate.await;
        }
        // No scrape reads the store while it closes.
        if let Some(l) = http_listener {
            l.stop().await;
        }
        state.store_closing();
        tracing::info!("syncing data");
        broker.close().await?;
        tracing::info!("stopped");
        Ok(())
    });
    Ok(Running {
        native_addr: native_listeners[0],
        kafka_addr: kafka_listeners[0],
        native_listeners,
        kafka_listeners,
        http_addr: None,
        http_connections: None,
        request_budget,
        stop,
        task,
    })
}

/// Binds `addr`, returning the listener and the address actually bound.
async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServerError> {
    let bind_error = |source| ServerError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    Ok((listener, bound))
}

/// The TLS acceptor for a door's TLS listeners, when it has TLS settings.
fn door_tls(
    door: &'static str,
    settings: Option<&TlsSettings>,
) -> Result<Option<TlsAcceptor>, ServerError> {
    settings
        .map(tls::acceptor)
        .transpose()
        .map_err(|source| ServerError::Tls { door, source })
}

/// What a native listener accepts, for its log line.
fn native_accepts(tls: bool, settings: Option<&TlsSettings>) -> String {
    match settings.filter(|_| tls) {
        None => "plain TCP; login required".into(),
        Some(s) if s.client_ca_file.is_some() => {
            "TLS; client certificates required; login required".into()
        }
        Some(_) => "TLS; login required".into(),
    }
}

/// What a Kafka listener accepts, for its log line: its security protocol, SASL mechanisms,
/// client certificates and advertised address.
fn kafka_accepts(l: &KafkaListener, kafka: &KafkaConfig) -> String {
    let mut out = l.security_protocol().to_string();
    match l.authentication {
        KafkaAuthentication::Sasl => {
            let names: Vec<&str> = kafka.sasl_mechanisms.iter().map(|m| m.name()).collect();
            out.push_str(": ");
            out.push_str(&names.join(", "));
        }
        KafkaAuthentication::None => out.push_str("; no authentication"),
    }
    if l.tls
        && kafka
            .tls
            .as_ref()
            .is_some_and(|t| t.client_ca_file.is_some())
    {
        out.push_str("; client certificates required");
    }
    match (&l.advertised_host, l.advertised_port) {
        (Some(_), _) => {
            let (host, port) = kafka::advertised(l, l.address);
            out.push_str(&format!("; advertised as {host}:{port}"));
        }
        (None, Some(port)) => out.push_str(&format!("; advertised port {port}")),
        (None, None) => {}
    }
    out
}

/// Runs the server until `shutdown` resolves, then stops it cleanly. A `shutdown` that
/// resolves while the store still opens is seen at once: the server never turns ready.
pub async fn run(
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let (stop, stop_asked) = watch::channel(false);
    let hooks = StartHooks {
        stop: Some(stop_asked),
        ..StartHooks::default()
    };
    let starting = start_with(config, hooks);
    tokio::pin!(starting, shutdown);
    let mut shutdown_seen = false;
    let running = loop {
        tokio::select! {
            started = &mut starting => break started?,
            () = &mut shutdown, if !shutdown_seen => {
                shutdown_seen = true;
                tracing::info!("shutdown asked while starting: stopping once the store is open");
                let _ = stop.send(true);
            }
        }
    };
    if !shutdown_seen {
        shutdown.await;
    }
    tracing::info!("shutting down: no new connections, finishing requests in flight");
    // Bounded: connections get STOP_DRAIN, everything else SERVING_WAIT, and then the
    // producer state is saved and the store closed in any case.
    running.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::Overrides;

    #[test]
    fn each_listener_line_says_what_it_accepts() {
        let env: Vec<(String, String)> = [
            ("WHARF_KAFKA_AUTHENTICATION", "sasl"),
            ("WHARF_KAFKA_TLS_CERT_FILE", "/c.pem"),
            ("WHARF_KAFKA_TLS_KEY_FILE", "/k.pem"),
            ("WHARF_KAFKA_TLS_CLIENT_CA_FILE", "/ca.pem"),
            ("WHARF_KAFKA_ADVERTISED_HOST", "kafka.example.com"),
            ("WHARF_KAFKA_ADVERTISED_PORT", "9093"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let c = ServerConfig::load_from(&Overrides::default(), &env).unwrap();
        let main = &c.kafka.listeners()[0];
        assert_eq!(
            kafka_accepts(main, &c.kafka),
            "SASL_SSL: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; client certificates required; \
             advertised as kafka.example.com:9093"
        );
        let plain = KafkaListener {
            authentication: KafkaAuthentication::None,
            tls: false,
            advertised_host: None,
            advertised_port: None,
            ..main.clone()
        };
        assert_eq!(
            kafka_accepts(&plain, &c.kafka),
            "PLAINTEXT; no authentication"
        );
        assert_eq!(native_accepts(false, None), "plain TCP; login required");
        let tls = TlsSettings {
            cert_file: "/c.pem".into(),
            key_file: "/k.pem".into(),
            client_ca_file: None,
        };
        assert_eq!(native_accepts(true, Some(&tls)), "TLS; login required");
        // A plain listener beside a TLS one says plain.
        assert_eq!(
            native_accepts(false, Some(&tls)),
            "plain TCP; login required"
        );
    }
}
