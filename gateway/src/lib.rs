//! `wharf-server`: configuration, listeners, the protocol adapters and the broker core.
//!
//! - [`config`]: `configs/server.toml`, environment and flags.
//! - [`broker`]: the protocol-neutral core (log store, users, clients, consumer groups).
//! - [`native`]: the Apache Iggy 0.8 TCP adapter.
//! - [`kafka`]: the Kafka wire protocol adapter.
//! - [`server`]: what both listeners share (accept loop and connection caps, request reader
//!   with its timeouts, the request budget, stop signal).
//! - [`peer_log`]: rate-limited log lines about misbehaving peers and failed accepts.

pub mod broker;
pub mod config;
pub mod kafka;
pub mod native;
pub mod peer_log;
pub mod server;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use broker::{Broker, BrokerError, BrokerSettings};
use config::ServerConfig;
use peer_log::PeerLog;
use server::budget::RequestBudget;
use server::Shared;
use tokio::sync::watch;

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

/// A running server, for tests and embedding: its listening address and a handle to stop it.
#[derive(Debug)]
pub struct Running {
    pub native_addr: std::net::SocketAddr,
    pub kafka_addr: std::net::SocketAddr,
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

/// Opens the broker and binds the listeners, then serves in the background.
pub async fn start(config: ServerConfig) -> Result<Running, ServerError> {
    let broker = Broker::open(
        &config.data_dir,
        config.store.clone(),
        BrokerSettings {
            root_username: config.root_username.clone(),
            root_password: config.root_password.clone(),
            kafka_default_stream: config.kafka.default_stream.clone(),
            groups: config.kafka.groups.clone(),
            logins: config.logins.clone(),
            max_partitions_per_topic: config.max_partitions_per_topic,
            max_partitions: config.max_partitions,
        },
    )?;
    if broker.root_has_password("iggy") {
        tracing::warn!(
            "the root user '{}' still has the default password; change it",
            config.root_username
        );
    }
    let broker = Arc::new(broker);
    let listener = tokio::net::TcpListener::bind(config.native.address)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.native.address,
            source,
        })?;
    let native_addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: config.native.address,
        source,
    })?;
    let kafka_listener = tokio::net::TcpListener::bind(config.kafka.address)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.kafka.address,
            source,
        })?;
    let kafka_addr = kafka_listener
        .local_addr()
        .map_err(|source| ServerError::Bind {
            addr: config.kafka.address,
            source,
        })?;
    let door = Arc::new(kafka::Door {
        broker: Arc::clone(&broker),
        cluster_id: kafka::cluster_id(&broker).await?,
        config: config.kafka.clone(),
    });
    tracing::info!(data_dir = %config.data_dir.display(), "native (Iggy) listener on {native_addr}");
    tracing::info!("Kafka listener on {kafka_addr}");
    let largest_request = config
        .native
        .max_request_size
        .max(config.kafka.max_request_size);
    let shared = Shared {
        budget: RequestBudget::new(config.queued_max_request_bytes, u64::from(largest_request)),
        peer_log: Arc::new(PeerLog::new(config.peer_log_interval)),
    };
    let request_budget = Arc::clone(&shared.budget);
    let (stop, stopped) = watch::channel(false);
    let mut native = config.native.clone();
    // Report the port actually bound (the config may say 0) in cluster metadata.
    native.address = native_addr;
    let mut kafka_settings = config.kafka.listeners().swap_remove(0);
    kafka_settings.address = kafka_addr;
    let serving = {
        let broker = Arc::clone(&broker);
        let stopped = stopped.clone();
        tokio::spawn(async move {
            tokio::join!(
                native::serve(
                    listener,
                    Arc::clone(&broker),
                    native,
                    shared.clone(),
                    stopped.clone()
                ),
                kafka::serve(
                    kafka_listener,
                    kafka_settings,
                    door,
                    shared.clone(),
                    stopped.clone()
                ),
                shared.peer_log.drive(stopped.clone()),
                broker.drive_group_timers(stopped.clone()),
                broker.drive_producer_snapshots(stopped),
            );
        })
    };
    let task = tokio::spawn(async move {
        let mut stopped = stopped;
        server::until_stopped(&mut stopped).await;
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
        tracing::info!("syncing data");
        broker.close().await?;
        tracing::info!("stopped");
        Ok(())
    });
    Ok(Running {
        native_addr,
        kafka_addr,
        request_budget,
        stop,
        task,
    })
}

/// Runs the server until `shutdown` resolves, then stops it cleanly.
pub async fn run(
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let running = start(config).await?;
    shutdown.await;
    tracing::info!("shutting down: no new connections, finishing requests in flight");
    // Bounded: connections get STOP_DRAIN, everything else SERVING_WAIT, and then the
    // producer state is saved and the store closed in any case.
    running.shutdown().await
}
