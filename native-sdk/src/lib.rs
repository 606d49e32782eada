//! `wharf-sdk`: a Rust client for Wharf's native protocol (Apache Iggy 0.8's, so it also talks to
//! Iggy 0.8 servers).
//!
//! - [`Client`]: one connection, plain or TLS ([`TlsConfig`]: a CA file, the name to verify, a
//!   client certificate for mutual TLS), login (password or token), reconnection with backoff, a
//!   heartbeat, and a typed async method for every command.
//! - [`Producer`]: direct (`send` returns when acknowledged) or background (`send` returns at
//!   once; workers batch by count, bytes and linger time, with a bounded buffer, backpressure,
//!   retries, delivery handles and an error callback).
//! - [`Consumer`]: single or group, polling strategies, auto-commit, a `futures::Stream`.
//! - Wharf's own commands beyond Iggy 0.8: topic durability and configs, consumer lag
//!   ([`Client::consumer_lag`]) and the metrics snapshot behind `wharf top`
//!   ([`Client::metrics_snapshot`]).
//!
//! Producing in the background:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use wharf_sdk::{BackgroundConfig, Client, ClientConfig, Identifier, Message, Producer};
//!
//! let client = Client::connect(ClientConfig::new("127.0.0.1:8090").with_password("iggy", "iggy")).await?;
//! let producer = Producer::builder(&client, Identifier::Name("shop".into()), Identifier::Name("orders".into()))
//!     .background(BackgroundConfig::default())
//!     .on_error(|failure| eprintln!("{} messages lost: {}", failure.messages.len(), failure.error))
//!     .build()
//!     .await?;
//! let delivery = producer.send(Message::new("hello").with_header("kind", "greeting")).await?;
//! delivery.await?; // optional: wait for this message's acknowledgement
//! producer.shutdown().await; // flushes everything still buffered
//! # Ok(())
//! # }
//! ```
//!
//! Consuming as a group member:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use futures_util::StreamExt;
//! use wharf_sdk::{AutoCommit, Client, ClientConfig, Consumer, Identifier};
//!
//! let client = Client::connect(ClientConfig::new("127.0.0.1:8090").with_password("iggy", "iggy")).await?;
//! let mut consumer = Consumer::group(&client, "workers", Identifier::Name("shop".into()), Identifier::Name("orders".into()))
//!     .auto_commit(AutoCommit::OnPoll)
//!     .build()
//!     .await?;
//! while let Some(message) = consumer.next().await {
//!     let message = message?;
//!     println!("{}: {:?}", message.offset, message.payload);
//! #   break;
//! }
//! consumer.shutdown().await?; // stores the final offsets and leaves the group
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod client;
mod consumer;
mod error;
mod message;
mod producer;
mod tls;

pub use client::{Client, ClientConfig, Credentials, Durability, TopicConfigEntry, TopicOptions};
pub use consumer::{AutoCommit, Consumer, ConsumerBuilder};
pub use error::{describe, Error, Result};
pub use message::{HeaderValue, Message, Polled, ReceivedMessage};
pub use producer::{
    BackgroundConfig, Backpressure, Delivery, DeliveryHandle, Partitioner, Producer,
    ProducerBuilder, SendError, SendFailure,
};
pub use tls::{ClientCertificate, TlsConfig, TlsError};
pub use wharf_protocol::{
    units, Consumer as ConsumerKind, Identifier, Partitioning, PollingStrategy,
};

/// The wire-level records some calls return (streams, topics, partitions, users, groups, ...).
pub mod wire {
    pub use wharf_protocol::requests::{
        WirePermissions, WireStreamPermissions, WireTopicPermissions,
    };
    pub use wharf_protocol::requests::{MAX_GROUP_ID_LEN, MAX_SNAPSHOT_LAG_ROWS};
    pub use wharf_protocol::responses::{
        ClientWire, GroupWire, MetricsSnapshotWire, PartitionLagWire, PartitionWire, StatsWire,
        StreamWire, TopicTrafficWire, TopicWire, UserWire,
    };
}
