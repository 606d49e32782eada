//! Broker errors as Iggy error codes, so the `iggy` crate's `IggyError` reads right.

use wharf_protocol::status as code_values;

use crate::broker::BrokerError;

pub mod code {
    pub use wharf_protocol::status::*;
}

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
        E::TokenNotFound(_) => c::RESOURCE_NOT_FOUND,
        E::TooManyTokens => c::PATS_LIMIT_REACHED,
        E::InvalidTokenName => c::INVALID_PAT_NAME,
        E::StreamNotFound(_) => c::STREAM_ID_NOT_FOUND,
        E::StreamExists(_) => c::STREAM_NAME_ALREADY_EXISTS,
        E::TopicNotFound { .. } => c::TOPIC_ID_NOT_FOUND,
        E::TopicExists { .. } => c::TOPIC_NAME_ALREADY_EXISTS,
        E::PartitionNotFound(_) => c::PARTITION_NOT_FOUND,
        E::InvalidName(m) if m.starts_with("topic name") => c::INVALID_TOPIC_NAME,
        E::InvalidName(m) if m.starts_with("consumer group name") => c::INVALID_CONSUMER_GROUP_NAME,
        E::InvalidName(_) => c::INVALID_STREAM_NAME,
        E::InvalidPartitionCount(_) => c::INVALID_PARTITIONS_COUNT,
        E::InvalidSetting(_) => c::INVALID_CONFIGURATION,
        E::GroupNotFound(_) => c::CONSUMER_GROUP_ID_NOT_FOUND,
        E::GroupExists(_) => c::CONSUMER_GROUP_NAME_ALREADY_EXISTS,
        E::NotGroupMember(_) => c::CONSUMER_GROUP_MEMBER_NOT_FOUND,
        E::InvalidMessages(_) => c::INVALID_MESSAGES_SIZE,
        E::BatchTooLarge { .. } => c::TOO_BIG_MESSAGE_PAYLOAD,
        E::OffsetNotFound => c::CONSUMER_OFFSET_NOT_FOUND,
        E::Store(_) => c::IO_ERROR,
        E::Internal(_) => c::ERROR,
    }
}
