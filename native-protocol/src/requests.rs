//! Request payloads, decoded from untrusted bytes. `SendMessages` is decoded by
//! [`crate::message::SendMessages`] because its body stays in the receive buffer.
//!
//! Every other command is one struct implementing [`Command`]: its code, its decoder and its
//! encoder side by side, in a submodule by command group. [`Request`], the decoded sum the server
//! dispatches on, is generated from the one list in the `commands!` invocation below, so adding a
//! command is its struct plus its name in that list:
//!
//! 1. the struct and its `impl Command` in its group's module, re-exported below (its code goes
//!    in [`crate::codes`] with a log name in [`codes::command_name`]);
//! 2. its name in `commands!`, which gives `Request::Name(Name)`, its decoding, `code()`,
//!    `encode()`, `From<Name> for Request` and its place in [`Request::CODES`].
//!
//! The server's exhaustive match on [`Request`] then fails to compile until the command has a
//! handler, and the round-trip test fails until it has a sample value.

use crate::codes;
use crate::primitives::Identifier;
use crate::wire::{DecodeError, Reader};

mod groups;
mod messages;
mod offsets;
mod streams;
mod system;
mod topics;
mod users;

pub use groups::{
    CreateConsumerGroup, DeleteConsumerGroup, GetConsumerGroup, GetConsumerGroups,
    JoinConsumerGroup, LeaveConsumerGroup,
};
pub use messages::{FlushUnsavedBuffer, PollMessages};
pub use offsets::{DeleteConsumerOffset, GetConsumerOffset, StoreConsumerOffset};
pub use streams::{CreateStream, DeleteStream, GetStream, GetStreams, PurgeStream, UpdateStream};
pub use system::{
    GetClient, GetClients, GetClusterMetadata, GetConsumerLag, GetMe, GetMetricsSnapshot, GetStats,
    Ping, MAX_GROUP_ID_LEN, MAX_SNAPSHOT_LAG_ROWS,
};
pub use topics::{
    CreatePartitions, CreateTopic, DeletePartitions, DeleteSegments, DeleteTopic, GetTopic,
    GetTopicConfig, GetTopicDurability, GetTopics, PurgeTopic, SetTopicConfig, SetTopicDurability,
    TopicConfigChange, TopicConfigError, UpdateTopic, MAX_CONFIG_VALUE_LEN,
    MAX_TOPIC_CONFIG_CHANGES,
};
pub use users::{
    ChangePassword, CreatePersonalAccessToken, CreateUser, DeletePersonalAccessToken, DeleteUser,
    GetPersonalAccessTokens, GetUser, GetUsers, LoginUser, LoginWithPersonalAccessToken,
    LogoutUser, UpdatePermissions, UpdateUser, WirePermissions, WireStreamPermissions,
    WireTopicPermissions,
};

/// One native command (every one but SendMessages): its code and payload layout.
pub trait Command: Sized {
    /// The command code on the wire.
    const CODE: u32;
    /// Decodes the payload (every length and count checked before anything is allocated).
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
    /// Appends the payload.
    fn encode(&self, out: &mut bytes::BytesMut);
}

/// Why a request could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("unknown command code {0}")]
    UnknownCommand(u32),
    #[error("command {0} is not supported by this server")]
    Unsupported(u32),
    #[error(transparent)]
    Malformed(#[from] DecodeError),
}

/// Generates [`Request`] (one tuple variant per command struct, named after it), its
/// `decode`/`code`/`encode`, the list of codes and a `From` per struct, all from one list of
/// [`Command`] types.
macro_rules! commands {
    ($($command:ident),+ $(,)?) => {
        /// Every request but SendMessages, decoded: one variant per [`Command`] struct.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Request {
            $($command($command),)+
        }

        impl Request {
            /// The code of every command [`Request::decode`] accepts, in list order.
            pub const CODES: &'static [u32] = &[$(<$command as Command>::CODE,)+];

            /// Iggy commands that [`Request::decode`] knows but refuses as unsupported:
            /// SendMessages (decoded in place by its own type) and snapshots.
            pub const UNSUPPORTED_CODES: &'static [u32] =
                &[codes::SEND_MESSAGES, codes::GET_SNAPSHOT_FILE];

            /// Decodes the payload of command `code` (anything but SendMessages). A payload
            /// longer than its command allows is malformed.
            pub fn decode(code: u32, payload: &[u8]) -> Result<Request, RequestError> {
                let r = &mut Reader::new(payload);
                let request = match code {
                    $(<$command as Command>::CODE => {
                        Request::$command(<$command as Command>::decode(r)?)
                    })+
                    other if Request::UNSUPPORTED_CODES.contains(&other) => {
                        return Err(RequestError::Unsupported(other))
                    }
                    other => return Err(RequestError::UnknownCommand(other)),
                };
                r.finish(codes::command_name(code).unwrap_or("request"))?;
                Ok(request)
            }

            /// The command code of this request.
            pub fn code(&self) -> u32 {
                match self {
                    $(Request::$command(_) => <$command as Command>::CODE,)+
                }
            }

            /// Encodes the payload as a client sends it (the inverse of [`Request::decode`]).
            pub fn encode(&self, out: &mut bytes::BytesMut) {
                match self {
                    $(Request::$command(c) => c.encode(out),)+
                }
            }
        }

        $(
            impl From<$command> for Request {
                fn from(c: $command) -> Request {
                    Request::$command(c)
                }
            }
        )+
    };
}

commands! {
    // system
    Ping,
    GetStats,
    GetClusterMetadata,
    GetMe,
    GetClient,
    GetClients,
    // users and personal access tokens
    GetUser,
    GetUsers,
    CreateUser,
    DeleteUser,
    UpdateUser,
    UpdatePermissions,
    ChangePassword,
    LoginUser,
    LogoutUser,
    GetPersonalAccessTokens,
    CreatePersonalAccessToken,
    DeletePersonalAccessToken,
    LoginWithPersonalAccessToken,
    // messages
    PollMessages,
    FlushUnsavedBuffer,
    // consumer offsets
    GetConsumerOffset,
    StoreConsumerOffset,
    DeleteConsumerOffset,
    // streams
    GetStream,
    GetStreams,
    CreateStream,
    DeleteStream,
    UpdateStream,
    PurgeStream,
    // topics, partitions, segments
    GetTopic,
    GetTopics,
    CreateTopic,
    DeleteTopic,
    UpdateTopic,
    PurgeTopic,
    CreatePartitions,
    DeletePartitions,
    DeleteSegments,
    // consumer groups
    GetConsumerGroup,
    GetConsumerGroups,
    CreateConsumerGroup,
    DeleteConsumerGroup,
    JoinConsumerGroup,
    LeaveConsumerGroup,
    // Wharf only
    GetTopicDurability,
    SetTopicDurability,
    GetTopicConfig,
    SetTopicConfig,
    GetConsumerLag,
    GetMetricsSnapshot,
}

/// Iggy's `IggyExpiry` / `MaxTopicSize` style value: 0 = server default, u64::MAX = never or
/// unlimited, anything else the value itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    ServerDefault,
    Unlimited,
    Value(u64),
}

impl Limit {
    fn from_wire(v: u64) -> Limit {
        match v {
            0 => Limit::ServerDefault,
            u64::MAX => Limit::Unlimited,
            v => Limit::Value(v),
        }
    }

    fn to_wire(self) -> u64 {
        match self {
            Limit::ServerDefault => 0,
            Limit::Unlimited => u64::MAX,
            Limit::Value(v) => v,
        }
    }

    fn decode(r: &mut Reader<'_>, field: &'static str) -> Result<Limit, DecodeError> {
        Ok(Limit::from_wire(r.u64(field)?))
    }

    fn encode(self, out: &mut bytes::BytesMut) {
        use bytes::BufMut;
        out.put_u64_le(self.to_wire());
    }
}

// ----- pieces several command groups share -----

/// `[stream_id][topic_id]`, the start of most topic-scoped payloads.
fn stream_topic(r: &mut Reader<'_>) -> Result<(Identifier, Identifier), DecodeError> {
    Ok((
        Identifier::decode(r, "stream_id")?,
        Identifier::decode(r, "topic_id")?,
    ))
}

fn put_stream_topic(out: &mut bytes::BytesMut, stream_id: &Identifier, topic_id: &Identifier) {
    stream_id.encode(out);
    topic_id.encode(out);
}

/// A one-byte-length string, cut at 255 bytes (the decoder's limit).
fn put_name(out: &mut bytes::BytesMut, s: &str) {
    use bytes::BufMut;
    let b = &s.as_bytes()[..s.len().min(255)];
    out.put_u8(b.len() as u8);
    out.put_slice(b);
}

/// `[u8]` where anything but 0 is true.
fn flag(r: &mut Reader<'_>, field: &'static str) -> Result<bool, DecodeError> {
    Ok(r.u8(field)? != 0)
}

#[cfg(test)]
mod tests;
