//! The native door: Apache Iggy 0.8's binary protocol over TCP, plain or TLS.
//!
//! - this module: starts the shared accept loop ([`crate::server`]) with this door's handler;
//! - [`connection`]: one task per connection reading frames and writing answers;
//! - [`session`]: per-connection state (client id, logged-in user) and command dispatch;
//! - [`handlers`]: one module per command group, translating to broker calls;
//! - [`errors`]: broker errors to Iggy error codes.

pub mod connection;
pub mod errors;
pub mod handlers;
pub mod session;

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::broker::Broker;
use crate::config::NativeConfig;
use crate::server::{accept_loop, Entrance, Shared, Stopped};

/// Accepts connections on `listener` (as `entrance` says: plain or TLS) until `stopped` turns
/// true, then waits for every connection to finish the request it is serving. `config.address`
/// is the listener's bound address (what cluster metadata reports).
pub async fn serve(
    listener: TcpListener,
    entrance: Entrance,
    broker: Arc<Broker>,
    config: NativeConfig,
    shared: Shared,
    stopped: Stopped,
) {
    let config = Arc::new(config);
    accept_loop(
        listener,
        entrance,
        shared,
        stopped,
        move |connection, accepted| {
            connection::serve(
                connection,
                accepted,
                Arc::clone(&broker),
                Arc::clone(&config),
            )
        },
    )
    .await;
}
