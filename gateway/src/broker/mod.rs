//! The protocol-neutral broker core: the use-case layer between the doors and the log store.
//!
//! Each door decodes a request, makes one call here and encodes the answer. Every rule that must
//! hold for both doors lives in this module tree: names and their collisions ([`names`]), topic
//! lifecycle ([`catalog`]), produce with idempotence ([`produce`]), reads, long polls and offset
//! look-ups ([`consume`]), committed offsets ([`offsets`]), both kinds of consumer group, users
//! and authorization. The store stays private: doors never reach it, and it knows no protocol.
//!
//! Disk work never runs on the runtime's worker threads: every call that may touch a file hands
//! it to the blocking pool ([`Broker::blocking`]), as partition appends already do.

pub mod catalog;
pub mod clients;
pub mod consume;
pub mod coordinator;
pub mod groups;
pub mod identity;
pub mod kafka_batch;
pub mod logins;
pub mod membership;
pub mod names;
pub mod offsets;
pub mod produce;
pub mod producers;
pub mod translate;
pub mod users;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use wharf_log_store::LogStore;

pub use clients::{ClientInfo, Clients};
pub use coordinator::{CoordinatorSettings, GroupCoordinator};
pub use groups::{ConsumerGroups, GroupInfo};
pub use kafka_batch::KafkaBatchError;
pub use logins::LoginSettings;
pub use producers::Producers;
pub use users::{Action, Permissions, User, Users};
/// The store's vocabulary that the broker's use cases speak in (settings, catalog entries,
/// positions and errors). Doors name them through here, never through the store.
pub use wharf_log_store::{
    CommittedOffset, Durability, Ident, OffsetKey, OffsetOwner, PartitionKey, PartitionStats,
    StoreConfig, StoreError, StreamInfo, TimestampType, TopicInfo, TopicSettings,
};

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// What kind of thing a refused name was meant to name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Stream,
    Topic,
    ConsumerGroup,
}

impl std::fmt::Display for NameKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NameKind::Stream => "stream",
            NameKind::Topic => "topic",
            NameKind::ConsumerGroup => "consumer group",
        })
    }
}

/// Why an idempotent producer's batch was refused (Kafka's sequence rules).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error("{0} is older than the batches remembered")]
    Duplicate(String),
    #[error("{0} does not follow the last stored batch")]
    OutOfOrder(String),
    #[error("{0} is older than the current epoch")]
    Fenced(String),
}

/// Every way a broker operation can fail, in the broker's own terms. The store's errors are
/// nested whole ([`BrokerError::Store`]), not mirrored.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("not logged in")]
    Unauthenticated,
    #[error("permission denied")]
    Unauthorized,
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("user is inactive")]
    UserInactive,
    #[error("invalid username: 3..=50 letters, digits, '.', '_' or '-'")]
    InvalidUsername,
    #[error("invalid password: 3..=100 characters")]
    InvalidPassword,
    #[error("user '{0}' already exists")]
    UserExists(String),
    #[error("user {0} not found")]
    UserNotFound(String),
    #[error("the root user cannot be deleted or deactivated, and no user can delete itself")]
    CannotChangeRoot,
    #[error("the root user's permissions cannot be changed")]
    CannotChangePermissions,
    #[error("invalid personal access token")]
    InvalidToken,
    #[error("personal access token '{0}' has expired")]
    TokenExpired(String),
    #[error("personal access token '{0}' already exists")]
    TokenExists(String),
    #[error("personal access token '{0}' not found")]
    TokenNotFound(String),
    #[error("too many personal access tokens")]
    TooManyTokens,
    #[error("invalid personal access token name: 3..=30 characters")]
    InvalidTokenName,
    #[error("invalid {kind} name: {reason}")]
    InvalidName { kind: NameKind, reason: String },
    /// A create or rename that would give two topics one Kafka name, or hide one.
    #[error("{0}")]
    NameCollision(String),
    #[error("{0}")]
    InvalidPartitionCount(String),
    #[error("consumer group {0} not found")]
    GroupNotFound(String),
    #[error("consumer group '{0}' already exists")]
    GroupExists(String),
    #[error("this client is not a member of consumer group {0}")]
    NotGroupMember(String),
    #[error("invalid messages: {0}")]
    InvalidMessages(String),
    #[error("invalid record batch: {0}")]
    InvalidRecords(#[from] KafkaBatchError),
    #[error("zstd needs Produce v7 or later")]
    ZstdNeedsNewerProduce,
    #[error("{0}")]
    Sequence(#[from] SequenceError),
    #[error("consumer offset not found")]
    OffsetNotFound,
    #[error("offset {offset} is outside the partition's {log_start}..={high_watermark}")]
    OffsetOutOfRange {
        offset: i64,
        log_start: u64,
        high_watermark: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl BrokerError {
    /// A store refusal of a name, typed by what the name was for.
    pub fn for_name(kind: NameKind, e: StoreError) -> BrokerError {
        match e {
            StoreError::InvalidName(reason) => BrokerError::InvalidName { kind, reason },
            other => BrokerError::Store(other),
        }
    }

    /// True when the failure is the server's (I/O, corrupt state), not the request's.
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            BrokerError::Internal(_)
                | BrokerError::Store(
                    StoreError::Io { .. }
                        | StoreError::CorruptMetadata { .. }
                        | StoreError::PartitionFailed(_)
                        | StoreError::PartitionClosed(_)
                )
        )
    }
}

/// What the broker needs to know beyond the store's own settings.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    pub root_username: String,
    pub root_password: String,
    /// The stream whose topics Kafka clients see under their plain names.
    pub kafka_default_stream: String,
    pub groups: CoordinatorSettings,
    /// How logins are bounded on both doors.
    pub logins: LoginSettings,
    /// Most partitions one topic may have, and all topics together.
    pub max_partitions_per_topic: u32,
    pub max_partitions: u32,
}

/// The broker: shared by every connection of every protocol.
#[derive(Debug)]
pub struct Broker {
    store: LogStore,
    default_stream: String,
    /// Serialises catalog changes, so a name checked for collisions is still free when it is
    /// created.
    catalog_changes: std::sync::Arc<parking_lot::Mutex<()>>,
    /// Users, passwords (Argon2) and personal access tokens. Changes go through
    /// [`Broker::change_users`].
    users: std::sync::Arc<Users>,
    /// Password slots, the failed-login limiter and the login policy, for both doors.
    logins: logins::Logins,
    clients: Clients,
    /// Native (Iggy) consumer groups: definitions (persisted) and membership.
    groups: std::sync::Arc<ConsumerGroups>,
    /// Classic (Kafka) consumer groups: membership, rebalances, offset commit checks.
    coordinator: std::sync::Arc<GroupCoordinator>,
    /// Kafka idempotent producers' ids and sequence state.
    producers: std::sync::Arc<Producers>,
    pub started_at: u64,
    /// Per-topic counters for balanced sends.
    balanced: parking_lot::Mutex<std::collections::HashMap<(u32, u32), u32>>,
}

impl Broker {
    pub fn open(
        data_dir: &Path,
        store_config: StoreConfig,
        settings: BrokerSettings,
    ) -> Result<Broker, BrokerError> {
        let (store, report) = LogStore::open(data_dir, store_config)?;
        for (partition, repair) in &report.repaired {
            tracing::warn!(%partition, "recovered: {:?}", repair.segments);
        }
        let logins = logins::Logins::new(settings.logins)?;
        let users = Users::open(
            data_dir,
            &settings.root_username,
            &settings.root_password,
            &logins.slots,
        )?;
        let groups = ConsumerGroups::open(data_dir)?;
        let producers = Producers::open(data_dir)?;
        Ok(Broker {
            store,
            default_stream: settings.kafka_default_stream,
            catalog_changes: std::sync::Arc::default(),
            users: std::sync::Arc::new(users),
            logins,
            clients: Clients::default(),
            groups: std::sync::Arc::new(groups),
            coordinator: std::sync::Arc::new(GroupCoordinator::new(settings.groups)),
            producers: std::sync::Arc::new(producers),
            started_at: now_us(),
            balanced: parking_lot::Mutex::default(),
        })
    }

    /// Runs `work` on the blocking pool with the store, so a slow disk call holds up one
    /// blocking thread rather than a runtime worker and every connection on it.
    pub(crate) async fn blocking<T, F>(&self, work: F) -> Result<T, BrokerError>
    where
        T: Send + 'static,
        F: FnOnce(&LogStore) -> Result<T, BrokerError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || work(&store))
            .await
            .unwrap_or_else(|e| Err(BrokerError::Internal(format!("blocking task failed: {e}"))))
    }

    /// Fails unless `user` may do `action`.
    pub fn authorize(&self, user: &User, action: Action) -> Result<(), BrokerError> {
        if user.permissions().allows(action) {
            Ok(())
        } else {
            Err(BrokerError::Unauthorized)
        }
    }

    /// The store's settings: topic defaults that describe-configs answers report.
    pub fn store_defaults(&self) -> &StoreConfig {
        self.store.config()
    }

    /// Reads the document `name` in the data directory, creating it with `make` on first use
    /// (the Kafka cluster id, for one).
    pub async fn stable_document(
        &self,
        name: &'static str,
        make: impl FnOnce() -> Vec<u8> + Send + 'static,
    ) -> Result<Vec<u8>, BrokerError> {
        self.blocking(move |store| {
            let path = store.dir().join(name);
            if let Some(doc) = wharf_log_store::read_durable(&path)? {
                return Ok(doc);
            }
            let doc = make();
            wharf_log_store::write_durable(&path, &doc)?;
            Ok(doc)
        })
        .await
    }

    /// Saves the idempotent producers' state (periodically and at shutdown).
    pub async fn save_producers(&self) -> Result<(), BrokerError> {
        let producers = std::sync::Arc::clone(&self.producers);
        tokio::task::spawn_blocking(move || producers.snapshot())
            .await
            .unwrap_or_else(|e| Err(BrokerError::Internal(e.to_string())))
    }

    /// Saves the idempotent producers' state every 10 s until `stopped`, so a restart replays
    /// only the log written since.
    pub async fn drive_producer_snapshots(&self, mut stopped: crate::server::Stopped) {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(10));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            tokio::select! {
                () = crate::server::until_stopped(&mut stopped) => break,
                _ = every.tick() => {
                    if let Err(e) = self.save_producers().await {
                        tracing::warn!("cannot save the idempotent producer state: {e}");
                    }
                }
            }
        }
    }

    /// Stops the store: syncs and closes every partition.
    pub async fn close(&self) -> Result<(), BrokerError> {
        self.blocking(|store| Ok(store.close()?)).await
    }
}
