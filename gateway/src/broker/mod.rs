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

pub mod acl;
pub mod admin;
pub mod assignor;
pub mod broker_config;
pub mod catalog;
pub mod clients;
pub mod compaction;
pub mod consume;
pub mod consumer_protocol;
pub mod coordinator;
pub mod group_config;
pub mod groups;
pub mod identity;
pub mod kafka_batch;
pub mod lag;
pub mod logins;
pub mod membership;
pub mod names;
pub mod offsets;
pub mod produce;
pub mod producers;
pub mod quotas;
pub mod scram;
mod tiering_hooks;
#[cfg(test)]
mod tiering_hooks_tests;
pub mod topic_config;
pub mod transactions;
pub mod translate;
pub mod txn_state;
pub mod users;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use wharf_log_store::LogStore;

pub use clients::{ClientInfo, Clients};
pub use coordinator::{CoordinatorSettings, GroupCoordinator};
pub use groups::{ConsumerGroups, GroupInfo};
pub use identity::Principal;
pub use kafka_batch::KafkaBatchError;
pub use logins::LoginSettings;
pub use producers::Producers;
pub use transactions::{TransactionCoordinator, TransactionSettings};
pub use users::{Action, Permissions, User, Users};
/// What a [`StoreError::Remote`] carries: the doors map its kinds to their error codes.
pub use wharf_log_store::remote::RemoteError;
/// The store's vocabulary that the broker's use cases speak in (settings, catalog entries,
/// positions and errors, and the file-system seam [`StoreConfig`] holds, where tests put
/// faults). Doors name them through here, never through the store.
pub use wharf_log_store::{
    CommittedOffset, Disk, Durability, FileHook, FileOp, Ident, OffsetKey, OffsetOwner,
    PartitionKey, PartitionStats, StoreConfig, StoreError, StreamInfo, TimestampType, TopicInfo,
    TopicSettings,
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

/// Which partition limit a create or add would break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionLimit {
    /// `server.max_partitions_per_topic` (or Iggy's 1000 per request).
    PerTopic,
    /// `server.max_partitions`, all topics together.
    Total,
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
    /// A batch that does not fit the producer's transaction state here (INVALID_TXN_STATE).
    #[error("{0}")]
    InvalidTxnState(String),
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
    #[error("only the root user may change the root user's credentials")]
    CannotChangeRootCredentials,
    #[error("at most {0} users may be created by one request")]
    TooManyNewUsers(usize),
    #[error("the root user's permissions cannot be changed")]
    CannotChangePermissions,
    #[error("invalid personal access token")]
    InvalidToken,
    #[error("personal access token '{0}' has expired")]
    TokenExpired(String),
    #[error("user '{user}' has no {mechanism} credential")]
    NoScramCredential {
        user: String,
        mechanism: &'static str,
    },
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
    /// A create or add that would take a topic, or the server, past its partition limit.
    #[error("{message}")]
    PartitionLimit {
        limit: PartitionLimit,
        message: String,
    },
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
    /// A reader that cannot decode zstd (Kafka's Fetch before v10) asked for a topic stored
    /// as zstd (Kafka's UNSUPPORTED_COMPRESSION_TYPE).
    #[error("the topic is stored as zstd, which needs Fetch v10 or later")]
    ZstdNeedsNewerFetch,
    /// Records without a key for a compacted topic (both doors; Kafka's INVALID_RECORD).
    #[error("{0}")]
    KeylessRecords(produce::KeylessRecords),
    /// DeleteRecords on a topic whose `cleanup.policy` lacks `delete` (Kafka's
    /// PolicyViolationException, POLICY_VIOLATION).
    #[error("Records of partition {0} can not be deleted due to the configured policy")]
    DeletePolicy(String),
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
    /// A transaction coordinator refusal of a transactional API.
    #[error("{0}")]
    Transaction(#[from] transactions::TxnError),
    /// A transactional batch the coordinator does not accept (KIP-890 part 1): the same
    /// refusals, answered with the produce path's codes.
    #[error("{0}")]
    TxnProduce(transactions::TxnError),
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

    /// The text a client may be shown. A failure of the server itself says only what kind of
    /// failure it was: its details (file paths under the data directory, internal state) are
    /// the operator's and go to the server log ([`log_server_failure`]). Every other error is
    /// about the request and is shown whole.
    pub fn client_message(&self) -> String {
        match self {
            BrokerError::Store(StoreError::Io { source, .. }) => match source.raw_os_error() {
                // The OS's words for its own code ("No space left on device (os error 28)")
                // hold no path.
                Some(code) => format!(
                    "storage error on the server: {}",
                    std::io::Error::from_raw_os_error(code)
                ),
                None => format!("storage error on the server: {}", source.kind()),
            },
            BrokerError::Store(StoreError::PartitionFailed(_)) => {
                "storage error on the server: the partition stopped taking writes after a failed write"
                    .into()
            }
            BrokerError::Store(StoreError::CorruptMetadata { .. }) => {
                "storage error on the server: unreadable metadata".into()
            }
            BrokerError::Store(StoreError::PartitionClosed(_)) => {
                "the partition is closed (deleted, or the server is stopping)".into()
            }
            BrokerError::Internal(_) => "internal server error".into(),
            other => other.to_string(),
        }
    }
}

/// Logs a failure of the server's own (storage, internal) in full, for the operator: at most
/// one line per [`SERVER_FAILURE_LOG_INTERVAL`], with a count of the lines left out, so a full
/// disk under load does not also flood the log.
pub fn log_server_failure(context: &str, e: &BrokerError) {
    static FAILURES: LogThrottle = LogThrottle::new(SERVER_FAILURE_LOG_INTERVAL);
    match FAILURES.admit(std::time::Instant::now()) {
        Some(0) => tracing::warn!("{context}: {e}"),
        Some(n) => tracing::warn!("{context}: {e} ({n} more such failures since the last line)"),
        None => {}
    }
}

/// How often [`log_server_failure`] writes a line at most.
pub const SERVER_FAILURE_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// At most one log line per interval: says whether a line may be written now, and how many
/// were left out since the last one.
#[derive(Debug)]
pub struct LogThrottle {
    interval: std::time::Duration,
    /// When the last line was written, and how many were left out since.
    last: parking_lot::Mutex<Option<(std::time::Instant, u64)>>,
}

impl LogThrottle {
    pub const fn new(interval: std::time::Duration) -> LogThrottle {
        LogThrottle {
            interval,
            last: parking_lot::Mutex::new(None),
        }
    }

    /// `Some(left_out)` when a line may be written at `now`; `None` when it is left out.
    pub fn admit(&self, now: std::time::Instant) -> Option<u64> {
        let mut last = self.last.lock();
        match last.as_mut() {
            Some((at, left_out)) if now.saturating_duration_since(*at) < self.interval => {
                *left_out += 1;
                None
            }
            Some((at, left_out)) => {
                let n = std::mem::take(left_out);
                *at = now;
                Some(n)
            }
            None => {
                *last = Some((now, 0));
                Some(0)
            }
        }
    }
}

impl BrokerError {
    /// Logs this error with [`log_server_failure`] when it is the server's (see
    /// [`BrokerError::is_internal`]); a refusal of the request is not logged.
    pub fn log_if_internal(&self, context: &str) {
        if self.is_internal() {
            log_server_failure(context, self);
        }
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
    /// The Kafka transaction coordinator's settings.
    pub transactions: TransactionSettings,
    /// How logins are bounded on both doors.
    pub logins: LoginSettings,
    /// Most partitions one topic may have, and all topics together.
    pub max_partitions_per_topic: u32,
    pub max_partitions: u32,
}

#[cfg(test)]
impl BrokerSettings {
    /// What the unit tests open a broker with: root `iggy`/`iggy` (the server's defaults), the
    /// Kafka default stream `default`, and every other setting at its default.
    pub(crate) fn for_tests() -> BrokerSettings {
        BrokerSettings {
            root_username: "iggy".into(),
            root_password: "iggy".into(),
            kafka_default_stream: "default".into(),
            groups: Default::default(),
            transactions: Default::default(),
            logins: Default::default(),
            max_partitions_per_topic: 1000,
            max_partitions: 100_000,
        }
    }
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
    /// Per-group configs (`consumer.session.timeout.ms`, ...) set by operators.
    group_configs: std::sync::Arc<group_config::GroupConfigs>,
    /// Dynamic broker configs (`compression.type`, ...) set by operators.
    broker_configs: std::sync::Arc<broker_config::BrokerConfigs>,
    /// Kafka idempotent producers' ids and sequence state.
    producers: std::sync::Arc<Producers>,
    /// Kafka transactional ids and their transactions.
    transactions: std::sync::Arc<TransactionCoordinator>,
    /// Client quotas (persisted) and their byte-rate sensors.
    quotas: quotas::ClientQuotas,
    /// Most partitions one topic may have, and all topics together (checked before a create).
    max_partitions_per_topic: u32,
    max_partitions: u32,
    pub started_at: u64,
    /// When this broker opened, on the monotonic clock: its uptime ([`Broker::uptime`]).
    started: std::time::Instant,
    /// Per-topic counters for balanced sends.
    balanced: parking_lot::Mutex<std::collections::HashMap<(u32, u32), u32>>,
    /// Permits to decompress a produce's batches for a compacted topic's keyless check
    /// ([`Broker::with_max_inflight_decompressions`]).
    decompressions: std::sync::Arc<tokio::sync::Semaphore>,
    /// What is counted for the operator ([`crate::metrics`]), shared with the doors.
    metrics: std::sync::Arc<crate::metrics::Metrics>,
}

impl Broker {
    pub fn open(
        data_dir: &Path,
        store_config: StoreConfig,
        settings: BrokerSettings,
    ) -> Result<Broker, BrokerError> {
        // The producers' state first: the store's tiering thread asks it how far each partition
        // may be uploaded, so its hooks are in place before the thread's first round.
        let producers = std::sync::Arc::new(Producers::open(data_dir)?);
        let hooks = tiering_hooks::BrokerTieringHooks::new(std::sync::Arc::clone(&producers));
        let (store, report) = LogStore::open_with_tiering_hooks(
            data_dir,
            store_config,
            Some(std::sync::Arc::new(hooks)),
        )?;
        for (partition, repair) in &report.repaired {
            tracing::warn!(%partition, "recovered: {:?}", repair.segments);
        }
        let logins = logins::Logins::new(settings.logins, logins::stand_in_secret(data_dir)?)?;
        let users = Users::open(
            data_dir,
            &settings.root_username,
            &settings.root_password,
            &logins.slots,
            logins.settings.scram_iterations,
        )?;
        let groups = ConsumerGroups::open(data_dir)?;
        let group_configs = group_config::GroupConfigs::open(data_dir)?;
        let broker_configs = broker_config::BrokerConfigs::open(data_dir)?;
        let transactions = TransactionCoordinator::open(data_dir, settings.transactions)?;
        let quotas = quotas::ClientQuotas::open(data_dir)?;
        let outside = names::outside_rules(&settings.kafka_default_stream, &store.streams(), |s| {
            store.topics(Ident::Id(s)).unwrap_or_default()
        });
        if !outside.is_empty() {
            tracing::warn!(
                "{} stream or topic names predate the naming rule (Kafka's: 1..=249 of \
                 [a-zA-Z0-9._-]; stream names without '.'); they keep working on the native \
                 door, but Kafka clients cannot use them and new names must follow it: {}",
                outside.len(),
                names::summary(&outside)
            );
        }
        Ok(Broker {
            store,
            default_stream: settings.kafka_default_stream,
            catalog_changes: std::sync::Arc::default(),
            users: std::sync::Arc::new(users),
            logins,
            clients: Clients::default(),
            groups: std::sync::Arc::new(groups),
            coordinator: std::sync::Arc::new(GroupCoordinator::new(settings.groups)),
            group_configs: std::sync::Arc::new(group_configs),
            broker_configs: std::sync::Arc::new(broker_configs),
            producers,
            transactions: std::sync::Arc::new(transactions),
            quotas,
            max_partitions_per_topic: settings.max_partitions_per_topic,
            max_partitions: settings.max_partitions,
            started_at: now_us(),
            started: std::time::Instant::now(),
            balanced: parking_lot::Mutex::default(),
            decompressions: std::sync::Arc::new(tokio::sync::Semaphore::new(
                produce::DEFAULT_MAX_INFLIGHT_DECOMPRESSIONS,
            )),
            metrics: crate::metrics::Metrics::new(true),
        })
    }

    /// Lets at most `permits` (at least 1) produce requests decompress batches at once for a
    /// compacted topic's keyless check (`[kafka] max_inflight_decompressions`), each batch
    /// bounded by [`kafka_batch::MAX_DECOMPRESSED`]; the others wait their turn.
    pub fn with_max_inflight_decompressions(mut self, permits: usize) -> Broker {
        self.decompressions = std::sync::Arc::new(tokio::sync::Semaphore::new(permits.max(1)));
        self
    }

    /// Counts into `metrics` (the server's, made before the store opens so `/metrics` can answer
    /// during recovery) instead of a set of its own.
    pub fn with_metrics(mut self, metrics: std::sync::Arc<crate::metrics::Metrics>) -> Broker {
        // The store's histograms follow the same switch as the hot-path counters.
        self.store.metrics().set_enabled(metrics.enabled());
        self.metrics = metrics;
        self
    }

    /// What is counted for the operator.
    pub fn metrics(&self) -> &std::sync::Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// What the store counts: append-group, `fdatasync` and group-commit histograms,
    /// retention deletions.
    pub fn store_metrics(&self) -> &std::sync::Arc<wharf_log_store::StoreMetrics> {
        self.store.metrics()
    }

    /// The remote tier's state now (uploads pending, bytes in the object store, the read
    /// cache's bytes); `None` when the server has no remote tier.
    pub fn remote_status(&self) -> Option<wharf_log_store::remote::RemoteStatus> {
        self.store.remote_status()
    }

    /// Rebalances since the start: (Kafka groups' completed rebalances, native groups'
    /// reassignments on a membership or partition-count change).
    pub fn group_rebalances(&self) -> (u64, u64) {
        (self.coordinator.rebalances(), self.groups.rebalances())
    }

    /// `group`'s config overrides (KIP-848 group configs).
    pub fn group_config(&self, group: &str) -> group_config::GroupConfig {
        self.group_configs.get(group)
    }

    /// Every group's config overrides (DescribeConfigs and the alter APIs on GROUP resources).
    pub fn group_configs(&self) -> &group_config::GroupConfigs {
        &self.group_configs
    }

    /// The dynamic broker configs (the alter APIs on BROKER resources).
    pub fn broker_configs(&self) -> &broker_config::BrokerConfigs {
        &self.broker_configs
    }

    /// The consumer protocol's broker-wide settings (the bounds of group configs).
    pub fn consumer_protocol_settings(&self) -> &coordinator::ConsumerProtocolSettings {
        &self.coordinator.settings().consumer
    }

    /// `group`'s configs as DescribeConfigs shows them: its own values, else the broker's
    /// `group.consumer.*` defaults.
    pub fn describe_group_config(&self, group: &str) -> Vec<topic_config::ConfigEntry> {
        group_config::describe(
            &self.group_configs.get(group),
            self.consumer_protocol_settings(),
        )
    }

    /// Changes `group`'s configs (KIP-848 group configs), checked against the broker's
    /// `group.consumer.*` bounds as Kafka's `GroupConfig` is, and stored unless
    /// `validate_only`. Written on the blocking pool; readers of group configs (every
    /// heartbeat) never wait for the write.
    pub async fn alter_group_config(
        &self,
        group: &str,
        mode: topic_config::AlterMode,
        changes: Vec<topic_config::ConfigChange>,
        validate_only: bool,
    ) -> Result<group_config::GroupConfig, group_config::GroupConfigError> {
        let configs = std::sync::Arc::clone(&self.group_configs);
        let bounds = self.consumer_protocol_settings().clone();
        let group = group.to_string();
        tokio::task::spawn_blocking(move || {
            configs.alter(&group, mode, &changes, &bounds, validate_only)
        })
        .await
        .unwrap_or_else(|e| Err(BrokerError::Internal(format!("blocking task failed: {e}")).into()))
    }

    /// Changes the dynamic broker configs of `scope` (Kafka's checks of a BROKER resource
    /// change), stored unless `validate_only`. Written on the blocking pool; readers of the
    /// settings (every Kafka produce) never wait for the write.
    pub async fn alter_broker_config(
        &self,
        scope: broker_config::Scope,
        mode: topic_config::AlterMode,
        changes: Vec<topic_config::ConfigChange>,
        validate_only: bool,
    ) -> Result<(), broker_config::BrokerConfigError> {
        let configs = std::sync::Arc::clone(&self.broker_configs);
        tokio::task::spawn_blocking(move || configs.alter(scope, mode, &changes, validate_only))
            .await
            .unwrap_or_else(|e| {
                Err(BrokerError::Internal(format!("blocking task failed: {e}")).into())
            })
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.store.dir()
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

    /// The one authorization function of both doors: fails unless `principal` may do
    /// `action`. A user's rights are read as they are now, so a change of permissions applies
    /// to the next request; a user deleted or deactivated since the session began may do
    /// nothing. Kafka's operations reach it through [`acl`]'s mapping.
    ///
    /// The anonymous principal (a Kafka listener without authentication) has every right on
    /// data (topics, groups, transactional ids, configs, the cluster) but none on users: it
    /// may not read or change users, their SCRAM credentials or their permissions (the ACLs),
    /// which the native door's logins rely on, as a Kafka broker with an authorizer denies
    /// `User:ANONYMOUS`.
    pub fn authorize(&self, principal: &Principal, action: Action<'_>) -> Result<(), BrokerError> {
        match principal {
            Principal::Anonymous => match action {
                Action::ReadUsers | Action::ManageUsers => Err(BrokerError::Unauthorized),
                _ => Ok(()),
            },
            Principal::User(id) => match self.user(*id) {
                Some(user)
                    if user.status == users::UserStatus::Active
                        && user.permissions().allows(action) =>
                {
                    Ok(())
                }
                _ => Err(BrokerError::Unauthorized),
            },
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// Bound: one server-failure line per interval, the next one counting those left out.
    #[test]
    fn server_failures_are_logged_once_per_interval() {
        let throttle = LogThrottle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(throttle.admit(t0), Some(0));
        for s in 1..10 {
            assert_eq!(throttle.admit(t0 + Duration::from_secs(s)), None);
        }
        assert_eq!(throttle.admit(t0 + Duration::from_secs(10)), Some(9));
        assert_eq!(throttle.admit(t0 + Duration::from_secs(11)), None);
        assert_eq!(throttle.admit(t0 + Duration::from_secs(25)), Some(1));
    }

    /// Bound: no answer to a client shows a server path; storage failures say what kind.
    #[test]
    fn client_messages_hold_no_server_paths() {
        let full = BrokerError::Store(StoreError::Io {
            path: "/srv/wharf/data/streams/1/topics/1/partitions/0/00000000000000000000.log".into(),
            source: std::io::Error::from_raw_os_error(28),
        });
        assert!(full.to_string().contains("/srv/wharf"), "the log keeps it");
        let shown = full.client_message();
        assert!(shown.starts_with("storage error on the server"), "{shown}");
        assert!(!shown.contains('/'), "{shown}");
        let corrupt = BrokerError::Store(StoreError::CorruptMetadata {
            path: "/srv/wharf/data/streams/1/stream.json".into(),
            reason: "bad".into(),
        });
        assert!(!corrupt.client_message().contains('/'));
        let failed = BrokerError::Store(StoreError::PartitionFailed("/srv/x".into()));
        assert!(!failed.client_message().contains('/'));
        let internal = BrokerError::Internal("blocking task failed at /srv/x".into());
        assert_eq!(internal.client_message(), "internal server error");
    }
}
