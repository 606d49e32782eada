//! The Kafka door: the Kafka wire protocol over TCP, onto the same partitions and offsets as
//! the native door.
//!
//! - this module: the accept loop, graceful stop, and what every handler shares ([`Door`]);
//! - [`connection`]: framing, the version firewall, the bounds guard, dispatch, answers;
//! - [`guard`]: walks a request's lengths before the `kafka-protocol` decoders allocate;
//! - [`versions`]: which API versions are advertised and accepted;
//! - [`names`]: Kafka topic names to (stream, topic) and back;
//! - [`errors`]: Kafka error codes and the broker errors they stand for;
//! - [`handlers`]: one module per API, like franz-go's `kfake`.

pub mod connection;
pub mod errors;
pub mod guard;
pub mod handlers;
pub mod names;
pub mod versions;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::broker::{Broker, BrokerError};
use crate::config::KafkaConfig;

/// The node id this server gives itself in metadata.
pub const NODE_ID: i32 = 1;

/// What every Kafka connection shares.
#[derive(Debug)]
pub struct Door {
    pub broker: Arc<Broker>,
    pub config: KafkaConfig,
    /// Stable across restarts: kept in the data directory.
    pub cluster_id: String,
}

impl Door {
    /// The host and port this server tells clients to connect to: the configured advertised
    /// address, else the address the client reached us on (right for IPv4 and IPv6 alike).
    pub fn advertised(&self, local: SocketAddr) -> (String, i32) {
        let host = self
            .config
            .advertised_host
            .clone()
            .unwrap_or_else(|| local.ip().to_string());
        let port = self.config.advertised_port.unwrap_or(local.port());
        (host, i32::from(port))
    }
}

/// Reads the cluster id from the data directory, creating it on first start.
pub fn cluster_id(broker: &Broker) -> Result<String, BrokerError> {
    let path = broker.store.dir().join("kafka-cluster-id");
    if let Some(doc) = wharf_log_store::read_durable(&path)? {
        if let Ok(id) = String::from_utf8(doc) {
            return Ok(id);
        }
    }
    // Kafka's ids are 16 random bytes in URL-safe base64 without padding (22 characters).
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes: [u8; 16] = rand::random();
    let mut bits = u128::from_be_bytes(bytes);
    let mut id = String::with_capacity(22);
    for _ in 0..22 {
        id.push(ALPHABET[(bits & 63) as usize] as char);
        bits >>= 6;
    }
    wharf_log_store::write_durable(&path, id.as_bytes())?;
    Ok(id)
}

/// Accepts connections until `stopped` turns true, then waits for every connection to finish
/// the request it is serving. Snapshots the idempotent-producer state now and then, and last.
pub async fn serve(listener: TcpListener, door: Arc<Door>, stopped: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    let mut stop = stopped.clone();
    let mut snapshot = tokio::time::interval(Duration::from_secs(10));
    snapshot.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = crate::native::until_stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let door = Arc::clone(&door);
                    let stopped = stopped.clone();
                    connections.spawn(connection::serve(socket, peer, door, stopped));
                }
                Err(e) => {
                    tracing::warn!("kafka accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = snapshot.tick() => save_producers(&door).await,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
    save_producers(&door).await;
}

async fn save_producers(door: &Arc<Door>) {
    let door = Arc::clone(door);
    let saved = tokio::task::spawn_blocking(move || door.broker.producers.snapshot()).await;
    if let Ok(Err(e)) = saved {
        tracing::warn!("cannot save the idempotent producer state: {e}");
    }
}
