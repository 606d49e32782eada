//! Broker errors as Iggy error codes, so the `iggy` crate's `IggyError` reads right.

use wharf_protocol::status as code_values;

use crate::broker::{BrokerError, NameKind, StoreError};

pub mod code {
    pub use wharf_protocol::status::*;
}

/// Iggy's `InvalidHeaderKey`: a send's messages lack the `kafka.key` header a compacted topic
/// needs (see [`status_for`]).
pub const INVALID_HEADER_KEY: u32 = 4018;

/// The Iggy status code for a broker error.
pub fn status_for(e: &BrokerError) -> u32 {
    use code_values as c;
    use BrokerError as E;
    match e {
        E::Unauthenticated => c::UNAUTHENTICATED,
        E::Unauthorized => c::UNAUTHORIZED,
        E::InvalidCredentials => c::INVALID_CREDENTIALS,
        E::UserInactive => c::USER_INACTIVE,
        E::InvalidUsername => c::INVALID_USERNAME,
        E::InvalidPassword => c::INVALID_PASSWORD,
        E::UserExists(_) => c::USER_ALREADY_EXISTS,
        E::UserNotFound(_) => c::RESOURCE_NOT_FOUND,
        E::CannotChangeRoot => c::CANNOT_DELETE_USER,
        E::CannotChangePermissions => c::CANNOT_CHANGE_PERMISSIONS,
        E::InvalidToken => c::INVALID_PAT,
        E::TokenExpired(_) => c::PAT_EXPIRED,
        E::TokenExists(_) => c::PAT_ALREADY_EXISTS,
        E::TokenNotFound(_) | E::NoScramCredential { .. } => c::RESOURCE_NOT_FOUND,
        E::TooManyTokens => c::PATS_LIMIT_REACHED,
        E::InvalidTokenName => c::INVALID_PAT_NAME,
        E::InvalidName { kind, .. } => match kind {
            NameKind::Stream => c::INVALID_STREAM_NAME,
            NameKind::Topic => c::INVALID_TOPIC_NAME,
            NameKind::ConsumerGroup => c::INVALID_CONSUMER_GROUP_NAME,
        },
        // Iggy's nearest: the name is taken (by what Kafka clients would see).
        E::NameCollision(_) => c::TOPIC_NAME_ALREADY_EXISTS,
        E::InvalidPartitionCount(_) => c::INVALID_PARTITIONS_COUNT,
        // Iggy's answer for a partition count over its bound (`CreateTopic`/`CreatePartitions`
        // validation in iggy_common): TooManyPartitions.
        E::PartitionLimit { .. } => c::TOO_MANY_PARTITIONS,
        E::GroupNotFound(_) => c::CONSUMER_GROUP_ID_NOT_FOUND,
        E::GroupExists(_) => c::CONSUMER_GROUP_NAME_ALREADY_EXISTS,
        E::NotGroupMember(_) => c::CONSUMER_GROUP_MEMBER_NOT_FOUND,
        E::InvalidMessages(_) => c::INVALID_MESSAGES_SIZE,
        // A send to a compacted topic with messages that have no `kafka.key` user header (the
        // native message's key). Iggy has no word for a missing key; its nearest is
        // InvalidHeaderKey (4018): the message is refused for a user header, the one it lacks.
        E::KeylessRecords(_) => INVALID_HEADER_KEY,
        E::OffsetNotFound => c::CONSUMER_OFFSET_NOT_FOUND,
        E::Store(s) => store_status(s),
        // Kafka-only refusals never reach this door; a plain error if one did.
        E::InvalidRecords(_)
        | E::CannotChangeRootCredentials
        | E::TooManyNewUsers(_)
        | E::ZstdNeedsNewerProduce
        | E::ZstdNeedsNewerFetch
        | E::Sequence(_)
        | E::Transaction(_)
        | E::TxnProduce(_)
        | E::OffsetOutOfRange { .. }
        | E::DeletePolicy(_)
        | E::Internal(_) => c::ERROR,
    }
}

/// The Iggy status code for a store failure.
fn store_status(e: &StoreError) -> u32 {
    use code_values as c;
    match e {
        StoreError::StreamNotFound(_) => c::STREAM_ID_NOT_FOUND,
        StoreError::StreamExists(_) => c::STREAM_NAME_ALREADY_EXISTS,
        StoreError::TopicNotFound { .. } => c::TOPIC_ID_NOT_FOUND,
        StoreError::TopicExists { .. } => c::TOPIC_NAME_ALREADY_EXISTS,
        StoreError::PartitionNotFound { .. } => c::PARTITION_NOT_FOUND,
        StoreError::InvalidName(_) => c::INVALID_STREAM_NAME,
        StoreError::InvalidPartitionCount(_) => c::INVALID_PARTITIONS_COUNT,
        StoreError::InvalidSetting(_) => c::INVALID_CONFIGURATION,
        StoreError::InvalidBatch(_) => c::INVALID_MESSAGES_SIZE,
        StoreError::BatchTooLarge { .. } => c::TOO_BIG_MESSAGE_PAYLOAD,
        // Iggy answers a segment write that failed with CannotWriteToFile (its messages
        // writer maps any write error to it). A full disk can only be a write; so is a
        // partition that stopped taking writes after one.
        StoreError::Io { source, .. } if is_disk_full(source) => c::CANNOT_WRITE_TO_FILE,
        StoreError::PartitionFailed(_) => c::CANNOT_WRITE_TO_FILE,
        // Anything else (a read or write that failed otherwise): Iggy's IoError.
        StoreError::PartitionClosed(_)
        | StoreError::CorruptMetadata { .. }
        | StoreError::Remote(_)
        | StoreError::Io { .. } => c::IO_ERROR,
    }
}

/// True for the OS errors of a disk (or quota, or file size limit) with no room left.
fn is_disk_full(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::StorageFull | K::QuotaExceeded | K::FileTooLarge
    )
}
