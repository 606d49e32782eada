//! The Kafka door: the Kafka wire protocol over TCP, onto the same partitions and offsets as
//! the native door.
//!
//! - this module: what every handler shares ([`Door`]); the accept loop is [`crate::server`]'s;
//! - [`connection`]: framing, the version firewall, the bounds guard, dispatch, answers;
//! - [`session`]: a connection's SASL authentication and who it is;
//! - [`guard`]: walks a request's lengths before the `kafka-protocol` decoders allocate;
//! - [`versions`]: which API versions are advertised and accepted;
//! - [`errors`]: Kafka error codes and the broker errors they stand for;
//! - [`fetch_sessions`]: the incremental fetch sessions (KIP-227) kept between Fetch requests;
//! - [`handlers`]: one module per API, like franz-go's `kfake`.

pub mod connection;
pub mod errors;
pub mod fetch_sessions;
pub mod guard;
pub mod handlers;
pub mod session;
pub mod versions;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::broker::{Broker, BrokerError};
use crate::config::{KafkaConfig, KafkaListener};
use crate::server::{accept_loop, Entrance, Shared, Stopped};

/// The node id this server gives itself in metadata.
pub const NODE_ID: i32 = 1;

/// What every Kafka connection shares.
#[derive(Debug)]
pub struct Door {
    pub broker: Arc<Broker>,
    pub config: KafkaConfig,
    /// Stable across restarts: kept in the data directory.
    pub cluster_id: String,
    /// The incremental fetch sessions of every connection (a session outlives its connection,
    /// as in Kafka).
    pub fetch_sessions: fetch_sessions::FetchSessions,
}

/// The host and port this server tells a client of `listener` to connect to: the listener's
/// advertised address, else the address the client reached us on (right for IPv4 and IPv6
/// alike).
pub fn advertised(listener: &KafkaListener, local: SocketAddr) -> (String, i32) {
    let host = listener
        .advertised_host
        .clone()
        .unwrap_or_else(|| local.ip().to_string());
    let port = listener.advertised_port.unwrap_or(local.port());
    (host, i32::from(port))
}

/// Reads the cluster id from the data directory, creating it on first start.
pub async fn cluster_id(broker: &Broker) -> Result<String, BrokerError> {
    let doc = broker
        .stable_document("kafka-cluster-id", || new_cluster_id().into_bytes())
        .await?;
    String::from_utf8(doc)
        .map_err(|_| BrokerError::Internal("the stored Kafka cluster id is not UTF-8".into()))
}

/// Kafka's ids are 16 random bytes in URL-safe base64 without padding (22 characters).
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes: [u8; 16] = rand::random();
    let mut bits = u128::from_be_bytes(bytes);
    let mut id = String::with_capacity(22);
    for _ in 0..22 {
        id.push(ALPHABET[(bits & 63) as usize] as char);
        bits >>= 6;
    }
    id
}

/// Accepts connections on `listener` (configured as `settings`; plain or TLS as `entrance`
/// says) until `stopped` turns true, then waits for every connection to finish the request it
/// is serving.
pub async fn serve(
    listener: TcpListener,
    settings: KafkaListener,
    entrance: Entrance,
    door: Arc<Door>,
    shared: Shared,
    stopped: Stopped,
) {
    let settings = Arc::new(settings);
    accept_loop(
        listener,
        entrance,
        shared,
        stopped,
        move |connection, accepted| {
            connection::serve(
                connection,
                accepted,
                Arc::clone(&door),
                Arc::clone(&settings),
            )
        },
    )
    .await;
}
