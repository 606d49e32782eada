//! The native door: Apache Iggy 0.8's binary protocol over TCP.
//!
//! - this module: the accept loop and graceful stop;
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
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::config::NativeConfig;

/// Accepts connections until `stopped` turns true, then waits for every connection to finish
/// the request it is serving.
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    config: NativeConfig,
    stopped: watch::Receiver<bool>,
) {
    let config = Arc::new(config);
    let mut connections = JoinSet::new();
    let mut stop = stopped.clone();
    loop {
        tokio::select! {
            () = until_stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let broker = Arc::clone(&broker);
                    let config = Arc::clone(&config);
                    let stopped = stopped.clone();
                    connections.spawn(connection::serve(socket, peer, broker, config, stopped));
                }
                Err(e) => {
                    // Out of descriptors and the like: keep serving the connections we have.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Resolves once the server is told to stop (or the signal is gone).
pub(crate) async fn until_stopped(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}
