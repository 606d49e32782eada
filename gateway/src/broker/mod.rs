//! The protocol-neutral broker core: the log store, users, connected clients and consumer
//! groups. Adapters translate their protocol's requests into calls here and the errors back into
//! their protocol's codes; this is the only place where a Kafka concept could meet a native one.

pub mod clients;
pub mod coordinator;
pub mod groups;
pub mod kafka_batch;
pub mod producers;
pub mod translate;
pub mod users;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use wharf_log_store::{LogStore, StoreConfig, StoreError};

pub use clients::{ClientInfo, Clients};
pub use coordinator::{CoordinatorSettings, GroupCoordinator};
pub use groups::{ConsumerGroups, GroupInfo};
pub use producers::Producers;
pub use users::{Action, Permissions, User, Users};

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Every way a broker operation can fail, in the broker's own terms.
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
    #[error("stream {0} not found")]
    StreamNotFound(String),
    #[error("stream '{0}' already exists")]
    StreamExists(String),
    #[error("topic {topic} not found in stream {stream}")]
    TopicNotFound { stream: String, topic: String },
    #[error("topic '{topic}' already exists in stream {stream}")]
    TopicExists { stream: String, topic: String },
    #[error("partition {0} not found")]
    PartitionNotFound(u32),
    #[error("{0}")]
    InvalidName(String),
    #[error("{0}")]
    InvalidPartitionCount(String),
    #[error("{0}")]
    InvalidSetting(String),
    #[error("consumer group {0} not found")]
    GroupNotFound(String),
    #[error("consumer group '{0}' already exists")]
    GroupExists(String),
    #[error("this client is not a member of consumer group {0}")]
    NotGroupMember(String),
    #[error("invalid messages: {0}")]
    InvalidMessages(String),
    #[error("batch of {size} bytes exceeds the limit of {limit}")]
    BatchTooLarge { size: usize, limit: u32 },
    #[error("consumer offset not found")]
    OffsetNotFound,
    #[error("{0}")]
    Store(StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for BrokerError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::StreamNotFound(s) => BrokerError::StreamNotFound(s),
            StoreError::StreamExists(s) => BrokerError::StreamExists(s),
            StoreError::TopicNotFound { stream, topic } => {
                BrokerError::TopicNotFound { stream, topic }
            }
            StoreError::TopicExists { stream, topic } => BrokerError::TopicExists { stream, topic },
            StoreError::PartitionNotFound { partition, .. } => {
                BrokerError::PartitionNotFound(partition)
            }
            StoreError::InvalidName(m) => BrokerError::InvalidName(m),
            StoreError::InvalidPartitionCount(m) => BrokerError::InvalidPartitionCount(m),
            StoreError::InvalidSetting(m) => BrokerError::InvalidSetting(m),
            StoreError::BatchTooLarge { size, limit } => BrokerError::BatchTooLarge { size, limit },
            StoreError::InvalidBatch(b) => BrokerError::InvalidMessages(b.to_string()),
            other => BrokerError::Store(other),
        }
    }
}

/// The broker: shared by every connection of every protocol.
#[derive(Debug)]
pub struct Broker {
    pub store: LogStore,
    pub users: Users,
    pub clients: Clients,
    pub groups: ConsumerGroups,
    /// Classic (Kafka) consumer groups: membership, rebalances, offset commit checks.
    pub coordinator: GroupCoordinator,
    /// Kafka idempotent producers' ids and sequence state.
    pub producers: Producers,
    pub started_at: u64,
    /// Per-topic counters for balanced sends.
    balanced: parking_lot::Mutex<std::collections::HashMap<(u32, u32), u32>>,
}

impl Broker {
    pub fn open(
        data_dir: &Path,
        store_config: StoreConfig,
        root_username: &str,
        root_password: &str,
        group_settings: CoordinatorSettings,
    ) -> Result<Broker, BrokerError> {
        let (store, report) = LogStore::open(data_dir, store_config)?;
        for (partition, repair) in &report.repaired {
            tracing::warn!(%partition, "recovered: {:?}", repair.segments);
        }
        let users = Users::open(data_dir, root_username, root_password)?;
        let groups = ConsumerGroups::open(data_dir)?;
        let producers = Producers::open(data_dir)?;
        Ok(Broker {
            store,
            users,
            clients: Clients::default(),
            groups,
            coordinator: GroupCoordinator::new(group_settings),
            producers,
            started_at: now_us(),
            balanced: parking_lot::Mutex::default(),
        })
    }

    /// The partition a balanced send goes to: the topic's partitions in turn.
    pub fn next_balanced(&self, stream: u32, topic: u32, partitions: u32) -> u32 {
        let mut counters = self.balanced.lock();
        let c = counters.entry((stream, topic)).or_insert(0);
        let p = *c % partitions.max(1);
        *c = c.wrapping_add(1);
        p
    }

    /// Deletes a stream with its topics, their stored offsets and their consumer groups,
    /// whichever protocol asked.
    pub fn delete_stream(&self, stream: u32) -> Result<(), BrokerError> {
        self.store
            .delete_stream(wharf_log_store::Ident::Id(stream))?;
        self.groups.drop_topics(stream, None)
    }

    /// Deletes a topic with its stored offsets and its consumer groups.
    pub fn delete_topic(&self, stream: u32, topic: u32) -> Result<(), BrokerError> {
        self.store.delete_topic(
            wharf_log_store::Ident::Id(stream),
            wharf_log_store::Ident::Id(topic),
        )?;
        self.groups.drop_topics(stream, Some(topic))
    }

    /// Fails unless `user` may do `action`.
    pub fn authorize(&self, user: &User, action: Action) -> Result<(), BrokerError> {
        if user.permissions().allows(action) {
            Ok(())
        } else {
            Err(BrokerError::Unauthorized)
        }
    }
}
