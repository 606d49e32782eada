//! Kafka error codes, and which one a broker error is. The numbers come from the
//! `kafka-protocol` crate's [`ResponseError`], never typed in by hand.

use kafka_protocol::error::ResponseError;

use crate::broker::coordinator::GroupError;
use crate::broker::offsets::PartitionOffsetError;
use crate::broker::transactions::TxnError;
use crate::broker::{BrokerError, KafkaBatchError, PartitionLimit, SequenceError, StoreError};

/// The codes this door answers with.
pub mod code {
    use kafka_protocol::error::ResponseError as E;

    pub const NONE: i16 = 0;
    pub const UNKNOWN_SERVER_ERROR: i16 = E::UnknownServerError.code();
    pub const OFFSET_OUT_OF_RANGE: i16 = E::OffsetOutOfRange.code();
    pub const REQUEST_TIMED_OUT: i16 = E::RequestTimedOut.code();
    pub const CORRUPT_MESSAGE: i16 = E::CorruptMessage.code();
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = E::UnknownTopicOrPartition.code();
    pub const NOT_LEADER_OR_FOLLOWER: i16 = E::NotLeaderOrFollower.code();
    pub const MESSAGE_TOO_LARGE: i16 = E::MessageTooLarge.code();
    pub const OFFSET_METADATA_TOO_LARGE: i16 = E::OffsetMetadataTooLarge.code();
    pub const COORDINATOR_NOT_AVAILABLE: i16 = E::CoordinatorNotAvailable.code();
    pub const NOT_COORDINATOR: i16 = E::NotCoordinator.code();
    pub const INVALID_TOPIC_EXCEPTION: i16 = E::InvalidTopicException.code();
    pub const INVALID_REQUIRED_ACKS: i16 = E::InvalidRequiredAcks.code();
    pub const ILLEGAL_GENERATION: i16 = E::IllegalGeneration.code();
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = E::InconsistentGroupProtocol.code();
    pub const INVALID_GROUP_ID: i16 = E::InvalidGroupId.code();
    pub const UNKNOWN_MEMBER_ID: i16 = E::UnknownMemberId.code();
    pub const INVALID_SESSION_TIMEOUT: i16 = E::InvalidSessionTimeout.code();
    pub const REBALANCE_IN_PROGRESS: i16 = E::RebalanceInProgress.code();
    pub const INVALID_COMMIT_OFFSET_SIZE: i16 = E::InvalidCommitOffsetSize.code();
    pub const UNSUPPORTED_VERSION: i16 = E::UnsupportedVersion.code();
    pub const TOPIC_ALREADY_EXISTS: i16 = E::TopicAlreadyExists.code();
    pub const INVALID_PARTITIONS: i16 = E::InvalidPartitions.code();
    pub const INVALID_REPLICATION_FACTOR: i16 = E::InvalidReplicationFactor.code();
    pub const INVALID_REPLICA_ASSIGNMENT: i16 = E::InvalidReplicaAssignment.code();
    pub const INVALID_CONFIG: i16 = E::InvalidConfig.code();
    pub const INVALID_REQUEST: i16 = E::InvalidRequest.code();
    pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = E::UnsupportedForMessageFormat.code();
    pub const POLICY_VIOLATION: i16 = E::PolicyViolation.code();
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = E::OutOfOrderSequenceNumber.code();
    pub const DUPLICATE_SEQUENCE_NUMBER: i16 = E::DuplicateSequenceNumber.code();
    pub const INVALID_PRODUCER_EPOCH: i16 = E::InvalidProducerEpoch.code();
    pub const KAFKA_STORAGE_ERROR: i16 = E::KafkaStorageError.code();
    pub const NON_EMPTY_GROUP: i16 = E::NonEmptyGroup.code();
    pub const GROUP_ID_NOT_FOUND: i16 = E::GroupIdNotFound.code();
    pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = E::UnsupportedCompressionType.code();
    pub const MEMBER_ID_REQUIRED: i16 = E::MemberIdRequired.code();
    pub const GROUP_MAX_SIZE_REACHED: i16 = E::GroupMaxSizeReached.code();
    pub const FENCED_INSTANCE_ID: i16 = E::FencedInstanceId.code();
    pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = E::GroupSubscribedToTopic.code();
    pub const INVALID_RECORD: i16 = E::InvalidRecord.code();
    pub const TOPIC_AUTHORIZATION_FAILED: i16 = E::TopicAuthorizationFailed.code();
    pub const GROUP_AUTHORIZATION_FAILED: i16 = E::GroupAuthorizationFailed.code();
    pub const CLUSTER_AUTHORIZATION_FAILED: i16 = E::ClusterAuthorizationFailed.code();
    pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 =
        E::TransactionalIdAuthorizationFailed.code();
    pub const SECURITY_DISABLED: i16 = E::SecurityDisabled.code();
    pub const NOT_ENOUGH_REPLICAS: i16 = E::NotEnoughReplicas.code();
    pub const INVALID_PRODUCER_ID_MAPPING: i16 = E::InvalidProducerIdMapping.code();
    pub const INVALID_TRANSACTION_TIMEOUT: i16 = E::InvalidTransactionTimeout.code();
    pub const CONCURRENT_TRANSACTIONS: i16 = E::ConcurrentTransactions.code();
    pub const INVALID_TXN_STATE: i16 = E::InvalidTxnState.code();
    pub const OPERATION_NOT_ATTEMPTED: i16 = E::OperationNotAttempted.code();
    pub const UNSTABLE_OFFSET_COMMIT: i16 = E::UnstableOffsetCommit.code();
    pub const PRODUCER_FENCED: i16 = E::ProducerFenced.code();
    pub const TRANSACTIONAL_ID_NOT_FOUND: i16 = E::TransactionalIdNotFound.code();
    pub const TRANSACTION_ABORTABLE: i16 = E::TransactionAbortable.code();
    pub const UNKNOWN_TOPIC_ID: i16 = E::UnknownTopicId.code();
}

/// The Kafka error for a group coordinator refusal.
pub fn group_error(e: &GroupError) -> ResponseError {
    use ResponseError as K;
    match e {
        GroupError::CoordinatorNotAvailable => K::CoordinatorNotAvailable,
        GroupError::NotCoordinator => K::NotCoordinator,
        GroupError::InvalidGroupId => K::InvalidGroupId,
        GroupError::InvalidSessionTimeout => K::InvalidSessionTimeout,
        GroupError::InconsistentGroupProtocol => K::InconsistentGroupProtocol,
        GroupError::UnknownMemberId => K::UnknownMemberId,
        GroupError::IllegalGeneration => K::IllegalGeneration,
        GroupError::RebalanceInProgress => K::RebalanceInProgress,
        GroupError::MemberIdRequired => K::MemberIdRequired,
        GroupError::FencedInstanceId => K::FencedInstanceId,
        GroupError::GroupMaxSizeReached => K::GroupMaxSizeReached,
        GroupError::NonEmptyGroup => K::NonEmptyGroup,
        GroupError::GroupIdNotFound => K::GroupIdNotFound,
        GroupError::FencedMemberEpoch => K::FencedMemberEpoch,
        GroupError::StaleMemberEpoch => K::StaleMemberEpoch,
        GroupError::UnreleasedInstanceId => K::UnreleasedInstanceId,
        GroupError::UnsupportedAssignor => K::UnsupportedAssignor,
        GroupError::InvalidRegularExpression => K::InvalidRegularExpression,
        GroupError::InvalidRequest(_) => K::InvalidRequest,
    }
}

/// The code for a group coordinator refusal.
pub fn for_group(e: &GroupError) -> i16 {
    group_error(e).code()
}

/// The code of an optional group error (`None`: success).
pub fn for_group_result(e: Option<&GroupError>) -> i16 {
    e.map_or(code::NONE, for_group)
}

/// The Kafka error for a store failure.
fn store_error(e: &StoreError) -> ResponseError {
    use ResponseError as K;
    match e {
        StoreError::StreamNotFound(_)
        | StoreError::TopicNotFound { .. }
        | StoreError::PartitionNotFound { .. } => K::UnknownTopicOrPartition,
        StoreError::TopicExists { .. } | StoreError::StreamExists(_) => K::TopicAlreadyExists,
        StoreError::InvalidName(_) => K::InvalidTopicException,
        StoreError::InvalidPartitionCount(_) => K::InvalidPartitions,
        StoreError::InvalidSetting(_) => K::InvalidConfig,
        StoreError::BatchTooLarge { .. } => K::MessageTooLarge,
        StoreError::InvalidBatch(_) => K::CorruptMessage,
        // Kafka's answer for a log it cannot write or read (a full disk, an I/O error, a log
        // directory gone offline): KAFKA_STORAGE_ERROR, retriable, so producers retry until
        // the disk has room again instead of failing every record at once.
        StoreError::Io { .. }
        | StoreError::PartitionFailed(_)
        | StoreError::CorruptMetadata { .. } => K::KafkaStorageError,
        // The object store unreachable or slow, remote reads at their bound, or a local file
        // of the transfer failing: a log that cannot be read now, retriable, as the local
        // disk's failures are.
        StoreError::Remote(r) if r.is_retriable() => K::KafkaStorageError,
        // A remote object damaged or missing, or remote data with no remote tier configured:
        // retrying will not help. Kafka's RemoteStorageException is not an ApiException, so
        // its Errors.forException answers UNKNOWN_SERVER_ERROR (not retriable).
        StoreError::Remote(_) => K::UnknownServerError,
        // Deleted under the request, or the server is stopping: look again and retry.
        StoreError::PartitionClosed(_) => K::NotLeaderOrFollower,
    }
}

/// The Kafka error for a broker failure.
pub fn broker_error(e: &BrokerError) -> ResponseError {
    use ResponseError as K;
    match e {
        BrokerError::Store(s) => store_error(s),
        BrokerError::InvalidName { .. } | BrokerError::NameCollision(_) => K::InvalidTopicException,
        BrokerError::InvalidPartitionCount(_) => K::InvalidPartitions,
        // A count one topic may not have is an invalid count; the server-wide cap is a policy
        // of this server, as Kafka's create-topic policies answer.
        BrokerError::PartitionLimit {
            limit: PartitionLimit::PerTopic,
            ..
        } => K::InvalidPartitions,
        BrokerError::PartitionLimit {
            limit: PartitionLimit::Total,
            ..
        } => K::PolicyViolation,
        BrokerError::InvalidMessages(_) => K::CorruptMessage,
        BrokerError::InvalidRecords(r) => match r {
            KafkaBatchError::Control
            | KafkaBatchError::Transactional
            | KafkaBatchError::NoSequence(_)
            | KafkaBatchError::OffsetDelta { .. }
            | KafkaBatchError::MoreThanOneBatch(_) => K::InvalidRecord,
            KafkaBatchError::TooLarge { .. } => K::MessageTooLarge,
            KafkaBatchError::Magic(_) => K::UnsupportedForMessageFormat,
            _ => K::CorruptMessage,
        },
        BrokerError::ZstdNeedsNewerProduce | BrokerError::ZstdNeedsNewerFetch => {
            K::UnsupportedCompressionType
        }
        BrokerError::KeylessRecords(_) => K::InvalidRecord,
        BrokerError::DeletePolicy(_) => K::PolicyViolation,
        BrokerError::Sequence(SequenceError::Duplicate(_)) => K::DuplicateSequenceNumber,
        BrokerError::Sequence(SequenceError::OutOfOrder(_)) => K::OutOfOrderSequenceNumber,
        BrokerError::Sequence(SequenceError::Fenced(_)) => K::InvalidProducerEpoch,
        BrokerError::Sequence(SequenceError::InvalidTxnState(_)) => K::InvalidTxnState,
        BrokerError::OffsetOutOfRange { .. } => K::OffsetOutOfRange,
        BrokerError::Unauthenticated | BrokerError::Unauthorized => K::TopicAuthorizationFailed,
        BrokerError::Transaction(t) => txn_error(t),
        BrokerError::TxnProduce(t) => match t {
            // Kafka's produce path (ReplicaManager, AddPartitionsToTxnManager) answers a fenced
            // epoch INVALID_PRODUCER_EPOCH, and a verification that may succeed on retry
            // NOT_ENOUGH_REPLICAS, which every client retries without a metadata refresh.
            TxnError::ProducerFenced { .. } => K::InvalidProducerEpoch,
            TxnError::ConcurrentTransactions => K::NotEnoughReplicas,
            other => txn_error(other),
        },
        _ => K::UnknownServerError,
    }
}

/// The Kafka error for a transaction coordinator refusal (PRODUCER_FENCED as it is: the
/// APIs that predate it turn it into INVALID_PRODUCER_EPOCH, [`for_txn`]).
fn txn_error(t: &TxnError) -> ResponseError {
    use ResponseError as K;
    match t {
        TxnError::InvalidRequest(_) | TxnError::EmptyTransactionalId => K::InvalidRequest,
        TxnError::InvalidTimeout { .. } => K::InvalidTransactionTimeout,
        TxnError::InvalidProducerIdMapping(_) => K::InvalidProducerIdMapping,
        TxnError::ProducerFenced { .. } => K::ProducerFenced,
        TxnError::ConcurrentTransactions => K::ConcurrentTransactions,
        TxnError::InvalidTxnState(_)
        | TxnError::NotInTransaction(_)
        | TxnError::GroupNotInTransaction(_) => K::InvalidTxnState,
        // Wharf's bound on transactional ids: a policy of this server, not retriable (the
        // table drains only as ids expire).
        TxnError::TooManyTransactionalIds(_) | TxnError::TransactionTooLarge { .. } => {
            K::PolicyViolation
        }
        TxnError::TransactionalIdNotFound => K::TransactionalIdNotFound,
    }
}

/// The code of a transactional API's failure at `version`: PRODUCER_FENCED (KIP-588) only from
/// `fenced_from` on, INVALID_PRODUCER_EPOCH before, as Kafka answers older clients.
pub fn for_txn(e: &BrokerError, version: i16, fenced_from: i16) -> i16 {
    let code = for_broker(e);
    if code == code::PRODUCER_FENCED && version < fenced_from {
        code::INVALID_PRODUCER_EPOCH
    } else {
        code
    }
}

/// The code of a refused Produce partition at `version`: a transactional batch for a partition
/// its transaction never added is TRANSACTION_ABORTABLE from Produce v11 (KIP-890), which
/// older clients do not know and get as INVALID_TXN_STATE.
pub fn for_produce(e: &BrokerError, version: i16) -> i16 {
    match e {
        BrokerError::TxnProduce(TxnError::NotInTransaction(_)) if version >= 11 => {
            code::TRANSACTION_ABORTABLE
        }
        other => for_broker(other),
    }
}

/// The code for a broker failure.
pub fn for_broker(e: &BrokerError) -> i16 {
    broker_error(e).code()
}

/// The code and the `error_message` for a broker failure answered to a client. The message
/// never holds the server's paths or internal state: a failure of the server's own is logged
/// in full here (rate-limited) and answered with its kind only.
pub fn answer(context: &str, e: &BrokerError) -> (i16, String) {
    e.log_if_internal(context);
    (for_broker(e), e.client_message())
}

/// The code for one partition of an offset commit or delete.
pub fn for_partition_offset(e: &PartitionOffsetError) -> i16 {
    match e {
        PartitionOffsetError::UnknownPartition => code::UNKNOWN_TOPIC_OR_PARTITION,
        PartitionOffsetError::MetadataTooLarge(_) => code::OFFSET_METADATA_TOO_LARGE,
        PartitionOffsetError::InvalidOffset(_) => code::INVALID_COMMIT_OFFSET_SIZE,
        PartitionOffsetError::Subscribed => code::GROUP_SUBSCRIBED_TO_TOPIC,
        PartitionOffsetError::Group(g) => for_group(g),
        PartitionOffsetError::Broker(b) => {
            crate::broker::log_server_failure("offset operation failed", b);
            for_broker(b)
        }
    }
}

#[cfg(test)]
mod txn_tests {
    use super::*;
    use crate::broker::PartitionKey;

    fn fenced() -> TxnError {
        TxnError::ProducerFenced {
            producer_id: 1,
            epoch: 0,
            current: 1,
        }
    }

    /// Kafka answers PRODUCER_FENCED only to versions that know it (KIP-588): InitProducerId
    /// v4+, EndTxn/AddPartitionsToTxn/AddOffsetsToTxn v2+; INVALID_PRODUCER_EPOCH before.
    #[test]
    fn producer_fenced_depends_on_the_version() {
        let e = BrokerError::Transaction(fenced());
        assert_eq!(for_txn(&e, 3, 4), code::INVALID_PRODUCER_EPOCH);
        assert_eq!(for_txn(&e, 4, 4), code::PRODUCER_FENCED);
        assert_eq!(for_txn(&e, 1, 2), code::INVALID_PRODUCER_EPOCH);
        let other = BrokerError::Transaction(TxnError::ConcurrentTransactions);
        assert_eq!(for_txn(&other, 0, 2), code::CONCURRENT_TRANSACTIONS);
        assert_eq!(
            for_broker(&BrokerError::Transaction(
                TxnError::TooManyTransactionalIds(1)
            )),
            code::POLICY_VIOLATION
        );
    }

    /// The produce path's codes for a batch the coordinator refuses (Kafka's ReplicaManager).
    #[test]
    fn produce_verification_codes() {
        let key = PartitionKey {
            stream: 1,
            topic: 1,
            partition: 0,
        };
        let not_added = BrokerError::TxnProduce(TxnError::NotInTransaction(key));
        assert_eq!(for_produce(&not_added, 10), code::INVALID_TXN_STATE);
        assert_eq!(for_produce(&not_added, 11), code::TRANSACTION_ABORTABLE);
        assert_eq!(
            for_produce(&BrokerError::TxnProduce(fenced()), 11),
            code::INVALID_PRODUCER_EPOCH
        );
        assert_eq!(
            for_produce(
                &BrokerError::TxnProduce(TxnError::ConcurrentTransactions),
                9
            ),
            code::NOT_ENOUGH_REPLICAS
        );
        assert_eq!(
            for_produce(
                &BrokerError::TxnProduce(TxnError::InvalidProducerIdMapping(3)),
                9
            ),
            code::INVALID_PRODUCER_ID_MAPPING
        );
    }
}

#[cfg(test)]
mod remote_tests {
    use super::*;
    // The store's error values, built here as the store would return them.
    use crate::broker::RemoteError;

    fn code_of(e: RemoteError) -> i16 {
        for_broker(&BrokerError::Store(StoreError::Remote(e)))
    }

    /// Bound attacked: how long clients retry a remote failure. What recovers by itself (the
    /// object store down, reads at their bound) is KAFKA_STORAGE_ERROR, retriable; what never
    /// does (no remote tier, a corrupt or missing object) is UNKNOWN_SERVER_ERROR, as Kafka
    /// answers a RemoteStorageException, so clients do not retry it forever.
    #[test]
    fn only_remote_failures_that_recover_are_retriable() {
        let unavailable = RemoteError::Unavailable {
            key: "k".into(),
            reason: "down".into(),
        };
        assert_eq!(code_of(unavailable), code::KAFKA_STORAGE_ERROR);
        let busy = RemoteError::Busy {
            running: 10,
            pending: 100,
        };
        assert_eq!(code_of(busy), code::KAFKA_STORAGE_ERROR);
        assert_eq!(
            code_of(RemoteError::Config("no remote tier".into())),
            code::UNKNOWN_SERVER_ERROR
        );
        let corrupt = RemoteError::Corrupt {
            key: "k".into(),
            reason: "checksum".into(),
        };
        assert_eq!(code_of(corrupt), code::UNKNOWN_SERVER_ERROR);
        assert_eq!(
            code_of(RemoteError::NotFound("k".into())),
            code::UNKNOWN_SERVER_ERROR
        );
    }
}
