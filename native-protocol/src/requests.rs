//! Request payloads, decoded from untrusted bytes. `SendMessages` is decoded by
//! [`crate::message::SendMessages`] because its body stays in the receive buffer.

use crate::codes;
use crate::primitives::{decode_optional_partition, Consumer, Identifier, PollingStrategy};
use crate::wire::{err, invalid, DecodeError, Problem, Reader};

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
}

/// Permissions as carried by CreateUser and UpdatePermissions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WirePermissions {
    /// manage_servers, read_servers, manage_users, read_users, manage_streams, read_streams,
    /// manage_topics, read_topics, poll_messages, send_messages
    pub global: [bool; 10],
    pub streams: Vec<WireStreamPermissions>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WireStreamPermissions {
    pub stream_id: u32,
    /// manage_stream, read_stream, manage_topics, read_topics, poll_messages, send_messages
    pub flags: [bool; 6],
    pub topics: Vec<WireTopicPermissions>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WireTopicPermissions {
    pub topic_id: u32,
    /// manage_topic, read_topic, poll_messages, send_messages
    pub flags: [bool; 4],
}

/// Most streams or topics one permissions block may list.
const MAX_PERMISSION_ENTRIES: usize = 100_000;

fn flags<const N: usize>(
    r: &mut Reader<'_>,
    field: &'static str,
) -> Result<[bool; N], DecodeError> {
    let mut out = [false; N];
    for f in &mut out {
        *f = r.u8(field)? != 0;
    }
    Ok(out)
}

impl WirePermissions {
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let global = flags::<10>(r, "permissions.global")?;
        let mut streams = Vec::new();
        let mut more = r.u8("permissions.has_streams")? == 1;
        while more {
            if streams.len() >= MAX_PERMISSION_ENTRIES {
                return Err(invalid("permissions.streams", "too many entries"));
            }
            let stream_id = r.u32("permissions.stream_id")?;
            let sflags = flags::<6>(r, "permissions.stream")?;
            let mut topics = Vec::new();
            let mut more_topics = r.u8("permissions.has_topics")? == 1;
            while more_topics {
                if topics.len() >= MAX_PERMISSION_ENTRIES {
                    return Err(invalid("permissions.topics", "too many entries"));
                }
                let topic_id = r.u32("permissions.topic_id")?;
                topics.push(WireTopicPermissions {
                    topic_id,
                    flags: flags::<4>(r, "permissions.topic")?,
                });
                more_topics = r.u8("permissions.has_next_topic")? == 1;
            }
            streams.push(WireStreamPermissions {
                stream_id,
                flags: sflags,
                topics,
            });
            more = r.u8("permissions.has_next_stream")? == 1;
        }
        Ok(WirePermissions { global, streams })
    }

    pub fn encode(&self, out: &mut bytes::BytesMut) {
        use bytes::BufMut;
        for f in self.global {
            out.put_u8(u8::from(f));
        }
        out.put_u8(u8::from(!self.streams.is_empty()));
        for (i, s) in self.streams.iter().enumerate() {
            out.put_u32_le(s.stream_id);
            for f in s.flags {
                out.put_u8(u8::from(f));
            }
            out.put_u8(u8::from(!s.topics.is_empty()));
            for (j, t) in s.topics.iter().enumerate() {
                out.put_u32_le(t.topic_id);
                for f in t.flags {
                    out.put_u8(u8::from(f));
                }
                out.put_u8(u8::from(j + 1 < s.topics.len()));
            }
            out.put_u8(u8::from(i + 1 < self.streams.len()));
        }
    }
}

/// `[has u8][len u32][permissions]` as CreateUser and UpdatePermissions carry them.
fn optional_permissions(r: &mut Reader<'_>) -> Result<Option<WirePermissions>, DecodeError> {
    if r.u8("has_permissions")? != 1 {
        return Ok(None);
    }
    let len = r.u32("permissions_length")? as usize;
    let block = r.take(len, "permissions")?;
    let mut inner = Reader::new(block);
    let p = WirePermissions::decode(&mut inner)?;
    inner.finish("permissions")?;
    Ok(Some(p))
}

/// A password: `[len u8][bytes]`, not validated on the wire.
fn password(r: &mut Reader<'_>, field: &'static str) -> Result<String, DecodeError> {
    let len = r.u8(field)? as usize;
    r.utf8(len, field)
}

fn user_status(r: &mut Reader<'_>) -> Result<bool, DecodeError> {
    match r.u8("status")? {
        1 => Ok(true),
        2 => Ok(false),
        v => Err(err("status", Problem::Unknown(u64::from(v)))),
    }
}

/// Every request but SendMessages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Ping,
    GetStats,
    GetClusterMetadata,
    GetMe,
    GetClient {
        client_id: u32,
    },
    GetClients,
    GetUser {
        user_id: Identifier,
    },
    GetUsers,
    CreateUser {
        username: String,
        password: String,
        active: bool,
        permissions: Option<WirePermissions>,
    },
    DeleteUser {
        user_id: Identifier,
    },
    UpdateUser {
        user_id: Identifier,
        username: Option<String>,
        active: Option<bool>,
    },
    UpdatePermissions {
        user_id: Identifier,
        permissions: Option<WirePermissions>,
    },
    ChangePassword {
        user_id: Identifier,
        current: String,
        new: String,
    },
    LoginUser {
        username: String,
        password: String,
        version: Option<String>,
        context: Option<String>,
    },
    LogoutUser,
    GetPersonalAccessTokens,
    CreatePersonalAccessToken {
        name: String,
        expiry: Limit,
    },
    DeletePersonalAccessToken {
        name: String,
    },
    LoginWithPersonalAccessToken {
        token: String,
    },
    PollMessages {
        consumer: Consumer,
        stream_id: Identifier,
        topic_id: Identifier,
        partition_id: Option<u32>,
        strategy: PollingStrategy,
        count: u32,
        auto_commit: bool,
    },
    FlushUnsavedBuffer {
        stream_id: Identifier,
        topic_id: Identifier,
        partition_id: u32,
        fsync: bool,
    },
    GetConsumerOffset {
        consumer: Consumer,
        stream_id: Identifier,
        topic_id: Identifier,
        partition_id: Option<u32>,
    },
    StoreConsumerOffset {
        consumer: Consumer,
        stream_id: Identifier,
        topic_id: Identifier,
        partition_id: Option<u32>,
        offset: u64,
    },
    DeleteConsumerOffset {
        consumer: Consumer,
        stream_id: Identifier,
        topic_id: Identifier,
        partition_id: Option<u32>,
    },
    GetStream {
        stream_id: Identifier,
    },
    GetStreams,
    CreateStream {
        name: String,
    },
    DeleteStream {
        stream_id: Identifier,
    },
    UpdateStream {
        stream_id: Identifier,
        name: String,
    },
    PurgeStream {
        stream_id: Identifier,
    },
    GetTopic {
        stream_id: Identifier,
        topic_id: Identifier,
    },
    GetTopics {
        stream_id: Identifier,
    },
    CreateTopic {
        stream_id: Identifier,
        partitions_count: u32,
        compression: u8,
        message_expiry: Limit,
        max_topic_size: Limit,
        replication_factor: u8,
        name: String,
    },
    DeleteTopic {
        stream_id: Identifier,
        topic_id: Identifier,
    },
    UpdateTopic {
        stream_id: Identifier,
        topic_id: Identifier,
        compression: u8,
        message_expiry: Limit,
        max_topic_size: Limit,
        replication_factor: u8,
        name: String,
    },
    PurgeTopic {
        stream_id: Identifier,
        topic_id: Identifier,
    },
    CreatePartitions {
        stream_id: Identifier,
        topic_id: Identifier,
        count: u32,
    },
    DeletePartitions {
        stream_id: Identifier,
        topic_id: Identifier,
        count: u32,
    },
    DeleteSegments {
        stream_id: Identifier,
        topic_id: Identifier,
        partition_id: u32,
        count: u32,
    },
    GetConsumerGroup {
        stream_id: Identifier,
        topic_id: Identifier,
        group_id: Identifier,
    },
    GetConsumerGroups {
        stream_id: Identifier,
        topic_id: Identifier,
    },
    CreateConsumerGroup {
        stream_id: Identifier,
        topic_id: Identifier,
        name: String,
    },
    DeleteConsumerGroup {
        stream_id: Identifier,
        topic_id: Identifier,
        group_id: Identifier,
    },
    JoinConsumerGroup {
        stream_id: Identifier,
        topic_id: Identifier,
        group_id: Identifier,
    },
    LeaveConsumerGroup {
        stream_id: Identifier,
        topic_id: Identifier,
        group_id: Identifier,
    },
    /// Wharf only: a topic's durability (0 server default, 1 os, 2 fsync).
    GetTopicDurability {
        stream_id: Identifier,
        topic_id: Identifier,
    },
    /// Wharf only: sets a topic's durability (0 server default, 1 os, 2 fsync).
    SetTopicDurability {
        stream_id: Identifier,
        topic_id: Identifier,
        durability: u8,
    },
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

fn stream_topic(r: &mut Reader<'_>) -> Result<(Identifier, Identifier), DecodeError> {
    Ok((
        Identifier::decode(r, "stream_id")?,
        Identifier::decode(r, "topic_id")?,
    ))
}

impl Request {
    /// Decodes the payload of command `code` (anything but SendMessages).
    pub fn decode(code: u32, payload: &[u8]) -> Result<Request, RequestError> {
        let r = &mut Reader::new(payload);
        use Request as R;
        let req = match code {
            codes::PING => R::Ping,
            codes::GET_STATS => R::GetStats,
            codes::GET_CLUSTER_METADATA => R::GetClusterMetadata,
            codes::GET_ME => R::GetMe,
            codes::GET_CLIENT => R::GetClient {
                client_id: r.u32("client_id")?,
            },
            codes::GET_CLIENTS => R::GetClients,
            codes::GET_USER => R::GetUser {
                user_id: Identifier::decode(r, "user_id")?,
            },
            codes::GET_USERS => R::GetUsers,
            codes::CREATE_USER => R::CreateUser {
                username: r.name("username")?,
                password: password(r, "password")?,
                active: user_status(r)?,
                permissions: optional_permissions(r)?,
            },
            codes::DELETE_USER => R::DeleteUser {
                user_id: Identifier::decode(r, "user_id")?,
            },
            codes::UPDATE_USER => {
                let user_id = Identifier::decode(r, "user_id")?;
                let username = if r.u8("has_username")? == 1 {
                    Some(r.name("username")?)
                } else {
                    None
                };
                let active = if r.u8("has_status")? == 1 {
                    Some(user_status(r)?)
                } else {
                    None
                };
                R::UpdateUser {
                    user_id,
                    username,
                    active,
                }
            }
            codes::UPDATE_PERMISSIONS => R::UpdatePermissions {
                user_id: Identifier::decode(r, "user_id")?,
                permissions: optional_permissions(r)?,
            },
            codes::CHANGE_PASSWORD => R::ChangePassword {
                user_id: Identifier::decode(r, "user_id")?,
                current: password(r, "current_password")?,
                new: password(r, "new_password")?,
            },
            codes::LOGIN_USER => {
                let username = r.name("username")?;
                let password = password(r, "password")?;
                // Older clients stop after the password; newer ones add version and context.
                let mut opt = |field| -> Result<Option<String>, DecodeError> {
                    if r.remaining() == 0 {
                        return Ok(None);
                    }
                    let s = r.string_u32(1024, field)?;
                    Ok((!s.is_empty()).then_some(s))
                };
                let version = opt("version")?;
                let context = opt("context")?;
                R::LoginUser {
                    username,
                    password,
                    version,
                    context,
                }
            }
            codes::LOGOUT_USER => R::LogoutUser,
            codes::GET_PERSONAL_ACCESS_TOKENS => R::GetPersonalAccessTokens,
            codes::CREATE_PERSONAL_ACCESS_TOKEN => R::CreatePersonalAccessToken {
                name: r.name("name")?,
                expiry: Limit::from_wire(r.u64("expiry")?),
            },
            codes::DELETE_PERSONAL_ACCESS_TOKEN => R::DeletePersonalAccessToken {
                name: r.name("name")?,
            },
            codes::LOGIN_WITH_PERSONAL_ACCESS_TOKEN => R::LoginWithPersonalAccessToken {
                token: r.name("token")?,
            },
            codes::POLL_MESSAGES => {
                let consumer = Consumer::decode(r)?;
                let (stream_id, topic_id) = stream_topic(r)?;
                R::PollMessages {
                    consumer,
                    stream_id,
                    topic_id,
                    partition_id: decode_optional_partition(r)?,
                    strategy: PollingStrategy::decode(r)?,
                    count: r.u32("count")?,
                    auto_commit: r.u8("auto_commit")? != 0,
                }
            }
            codes::FLUSH_UNSAVED_BUFFER => {
                let (stream_id, topic_id) = stream_topic(r)?;
                R::FlushUnsavedBuffer {
                    stream_id,
                    topic_id,
                    partition_id: r.u32("partition_id")?,
                    fsync: r.u8("fsync")? != 0,
                }
            }
            codes::GET_CONSUMER_OFFSET
            | codes::DELETE_CONSUMER_OFFSET
            | codes::STORE_CONSUMER_OFFSET => {
                let consumer = Consumer::decode(r)?;
                let (stream_id, topic_id) = stream_topic(r)?;
                let partition_id = decode_optional_partition(r)?;
                match code {
                    codes::GET_CONSUMER_OFFSET => R::GetConsumerOffset {
                        consumer,
                        stream_id,
                        topic_id,
                        partition_id,
                    },
                    codes::DELETE_CONSUMER_OFFSET => R::DeleteConsumerOffset {
                        consumer,
                        stream_id,
                        topic_id,
                        partition_id,
                    },
                    _ => R::StoreConsumerOffset {
                        consumer,
                        stream_id,
                        topic_id,
                        partition_id,
                        offset: r.u64("offset")?,
                    },
                }
            }
            codes::GET_STREAM => R::GetStream {
                stream_id: Identifier::decode(r, "stream_id")?,
            },
            codes::GET_STREAMS => R::GetStreams,
            codes::CREATE_STREAM => R::CreateStream {
                name: r.name("name")?,
            },
            codes::DELETE_STREAM => R::DeleteStream {
                stream_id: Identifier::decode(r, "stream_id")?,
            },
            codes::UPDATE_STREAM => R::UpdateStream {
                stream_id: Identifier::decode(r, "stream_id")?,
                name: r.name("name")?,
            },
            codes::PURGE_STREAM => R::PurgeStream {
                stream_id: Identifier::decode(r, "stream_id")?,
            },
            codes::GET_TOPIC => {
                let (stream_id, topic_id) = stream_topic(r)?;
                R::GetTopic {
                    stream_id,
                    topic_id,
                }
            }
            codes::GET_TOPICS => R::GetTopics {
                stream_id: Identifier::decode(r, "stream_id")?,
            },
            codes::CREATE_TOPIC => R::CreateTopic {
                stream_id: Identifier::decode(r, "stream_id")?,
                partitions_count: r.u32("partitions_count")?,
                compression: r.u8("compression_algorithm")?,
                message_expiry: Limit::from_wire(r.u64("message_expiry")?),
                max_topic_size: Limit::from_wire(r.u64("max_topic_size")?),
                replication_factor: r.u8("replication_factor")?,
                name: r.name("name")?,
            },
            codes::DELETE_TOPIC => {
                let (stream_id, topic_id) = stream_topic(r)?;
                R::DeleteTopic {
                    stream_id,
                    topic_id,
                }
            }
            codes::UPDATE_TOPIC => {
                let (stream_id, topic_id) = stream_topic(r)?;
                R::UpdateTopic {
                    stream_id,
                    topic_id,
                    compression: r.u8("compression_algorithm")?,
                    message_expiry: Limit::from_wire(r.u64("message_expiry")?),
                    max_topic_size: Limit::from_wire(r.u64("max_topic_size")?),
                    replication_factor: r.u8("replication_factor")?,
                    name: r.name("name")?,
                }
            }
            codes::PURGE_TOPIC => {
                let (stream_id, topic_id) = stream_topic(r)?;
                R::PurgeTopic {
                    stream_id,
                    topic_id,
                }
            }
            codes::CREATE_PARTITIONS | codes::DELETE_PARTITIONS => {
                let (stream_id, topic_id) = stream_topic(r)?;
                let count = r.u32("partitions_count")?;
                if code == codes::CREATE_PARTITIONS {
                    R::CreatePartitions {
                        stream_id,
                        topic_id,
                        count,
                    }
                } else {
                    R::DeletePartitions {
                        stream_id,
                        topic_id,
                        count,
                    }
                }
            }
            codes::DELETE_SEGMENTS => {
                let (stream_id, topic_id) = stream_topic(r)?;
                R::DeleteSegments {
                    stream_id,
                    topic_id,
                    partition_id: r.u32("partition_id")?,
                    count: r.u32("segments_count")?,
                }
            }
            codes::GET_CONSUMER_GROUPS => {
                let (stream_id, topic_id) = stream_topic(r)?;
                R::GetConsumerGroups {
                    stream_id,
                    topic_id,
                }
            }
            codes::CREATE_CONSUMER_GROUP => {
                let (stream_id, topic_id) = stream_topic(r)?;
                R::CreateConsumerGroup {
                    stream_id,
                    topic_id,
                    name: r.name("name")?,
                }
            }
            codes::GET_CONSUMER_GROUP
            | codes::DELETE_CONSUMER_GROUP
            | codes::JOIN_CONSUMER_GROUP
            | codes::LEAVE_CONSUMER_GROUP => {
                let (stream_id, topic_id) = stream_topic(r)?;
                let group_id = Identifier::decode(r, "group_id")?;
                match code {
                    codes::GET_CONSUMER_GROUP => R::GetConsumerGroup {
                        stream_id,
                        topic_id,
                        group_id,
                    },
                    codes::DELETE_CONSUMER_GROUP => R::DeleteConsumerGroup {
                        stream_id,
                        topic_id,
                        group_id,
                    },
                    codes::JOIN_CONSUMER_GROUP => R::JoinConsumerGroup {
                        stream_id,
                        topic_id,
                        group_id,
                    },
                    _ => R::LeaveConsumerGroup {
                        stream_id,
                        topic_id,
                        group_id,
                    },
                }
            }
            codes::WHARF_GET_TOPIC_DURABILITY => {
                let (stream_id, topic_id) = stream_topic(r)?;
                R::GetTopicDurability {
                    stream_id,
                    topic_id,
                }
            }
            codes::WHARF_SET_TOPIC_DURABILITY => {
                let (stream_id, topic_id) = stream_topic(r)?;
                let durability = r.u8("durability")?;
                if durability > 2 {
                    return Err(err("durability", Problem::Unknown(u64::from(durability))).into());
                }
                R::SetTopicDurability {
                    stream_id,
                    topic_id,
                    durability,
                }
            }
            codes::SEND_MESSAGES | codes::GET_SNAPSHOT_FILE => {
                return Err(RequestError::Unsupported(code))
            }
            other => return Err(RequestError::UnknownCommand(other)),
        };
        r.finish(codes::command_name(code).unwrap_or("request"))?;
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};

    #[test]
    fn login_as_the_iggy_crate_sends_it() {
        // From the 0.10 client: user iggy / iggy, version "0.10.0", empty context.
        let payload = [
            4, b'i', b'g', b'g', b'y', 4, b'i', b'g', b'g', b'y', 6, 0, 0, 0, b'0', b'.', b'1',
            b'0', b'.', b'0', 0, 0, 0, 0,
        ];
        assert_eq!(
            Request::decode(codes::LOGIN_USER, &payload).unwrap(),
            Request::LoginUser {
                username: "iggy".into(),
                password: "iggy".into(),
                version: Some("0.10.0".into()),
                context: None
            }
        );
    }

    #[test]
    fn create_topic_and_poll() {
        let mut b = BytesMut::new();
        Identifier::Numeric(1).encode(&mut b);
        b.put_u32_le(3);
        b.put_u8(1);
        b.put_u64_le(0);
        b.put_u64_le(u64::MAX);
        b.put_u8(0);
        b.put_u8(6);
        b.put_slice(b"orders");
        match Request::decode(codes::CREATE_TOPIC, &b).unwrap() {
            Request::CreateTopic {
                partitions_count: 3,
                message_expiry: Limit::ServerDefault,
                max_topic_size: Limit::Unlimited,
                name,
                ..
            } => {
                assert_eq!(name, "orders")
            }
            other => panic!("{other:?}"),
        }
        let mut b = BytesMut::new();
        Consumer::Group(Identifier::Name("g".into())).encode(&mut b);
        Identifier::Numeric(0).encode(&mut b);
        Identifier::Numeric(0).encode(&mut b);
        crate::primitives::encode_optional_partition(None, &mut b);
        PollingStrategy::Next.encode(&mut b);
        b.put_u32_le(100);
        b.put_u8(1);
        let req = Request::decode(codes::POLL_MESSAGES, &b).unwrap();
        assert!(matches!(
            req,
            Request::PollMessages {
                count: 100,
                auto_commit: true,
                partition_id: None,
                ..
            }
        ));
        // One byte short, one byte long: both refused with the field named.
        assert!(Request::decode(codes::POLL_MESSAGES, &b[..b.len() - 1]).is_err());
        let mut long = b.to_vec();
        long.push(0);
        assert!(Request::decode(codes::POLL_MESSAGES, &long).is_err());
    }

    #[test]
    fn permissions_round_trip() {
        let p = WirePermissions {
            global: [
                true, false, true, false, false, false, false, false, true, true,
            ],
            streams: vec![
                WireStreamPermissions {
                    stream_id: 1,
                    flags: [false, true, false, false, true, false],
                    topics: vec![
                        WireTopicPermissions {
                            topic_id: 2,
                            flags: [true, false, false, true],
                        },
                        WireTopicPermissions {
                            topic_id: 3,
                            flags: [false, false, true, false],
                        },
                    ],
                },
                WireStreamPermissions {
                    stream_id: 4,
                    ..Default::default()
                },
            ],
        };
        let mut b = BytesMut::new();
        p.encode(&mut b);
        let mut r = Reader::new(&b);
        assert_eq!(WirePermissions::decode(&mut r).unwrap(), p);
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn unknown_and_garbage() {
        assert_eq!(
            Request::decode(9999, &[]),
            Err(RequestError::UnknownCommand(9999))
        );
        assert!(Request::decode(codes::GET_STREAM, &[2, 200, b'x']).is_err());
        assert!(Request::decode(codes::PING, &[1]).is_err());
    }
}

fn put_name(out: &mut bytes::BytesMut, s: &str) {
    use bytes::BufMut;
    let b = &s.as_bytes()[..s.len().min(255)];
    out.put_u8(b.len() as u8);
    out.put_slice(b);
}

fn limit_to_wire(l: Limit) -> u64 {
    match l {
        Limit::ServerDefault => 0,
        Limit::Unlimited => u64::MAX,
        Limit::Value(v) => v,
    }
}

fn put_optional_permissions(out: &mut bytes::BytesMut, p: &Option<WirePermissions>) {
    use bytes::BufMut;
    match p {
        None => out.put_u8(0),
        Some(p) => {
            let mut block = bytes::BytesMut::new();
            p.encode(&mut block);
            out.put_u8(1);
            out.put_u32_le(block.len() as u32);
            out.put_slice(&block);
        }
    }
}

impl Request {
    /// The command code of this request.
    pub fn code(&self) -> u32 {
        use Request as R;
        match self {
            R::Ping => codes::PING,
            R::GetStats => codes::GET_STATS,
            R::GetClusterMetadata => codes::GET_CLUSTER_METADATA,
            R::GetMe => codes::GET_ME,
            R::GetClient { .. } => codes::GET_CLIENT,
            R::GetClients => codes::GET_CLIENTS,
            R::GetUser { .. } => codes::GET_USER,
            R::GetUsers => codes::GET_USERS,
            R::CreateUser { .. } => codes::CREATE_USER,
            R::DeleteUser { .. } => codes::DELETE_USER,
            R::UpdateUser { .. } => codes::UPDATE_USER,
            R::UpdatePermissions { .. } => codes::UPDATE_PERMISSIONS,
            R::ChangePassword { .. } => codes::CHANGE_PASSWORD,
            R::LoginUser { .. } => codes::LOGIN_USER,
            R::LogoutUser => codes::LOGOUT_USER,
            R::GetPersonalAccessTokens => codes::GET_PERSONAL_ACCESS_TOKENS,
            R::CreatePersonalAccessToken { .. } => codes::CREATE_PERSONAL_ACCESS_TOKEN,
            R::DeletePersonalAccessToken { .. } => codes::DELETE_PERSONAL_ACCESS_TOKEN,
            R::LoginWithPersonalAccessToken { .. } => codes::LOGIN_WITH_PERSONAL_ACCESS_TOKEN,
            R::PollMessages { .. } => codes::POLL_MESSAGES,
            R::FlushUnsavedBuffer { .. } => codes::FLUSH_UNSAVED_BUFFER,
            R::GetConsumerOffset { .. } => codes::GET_CONSUMER_OFFSET,
            R::StoreConsumerOffset { .. } => codes::STORE_CONSUMER_OFFSET,
            R::DeleteConsumerOffset { .. } => codes::DELETE_CONSUMER_OFFSET,
            R::GetStream { .. } => codes::GET_STREAM,
            R::GetStreams => codes::GET_STREAMS,
            R::CreateStream { .. } => codes::CREATE_STREAM,
            R::DeleteStream { .. } => codes::DELETE_STREAM,
            R::UpdateStream { .. } => codes::UPDATE_STREAM,
            R::PurgeStream { .. } => codes::PURGE_STREAM,
            R::GetTopic { .. } => codes::GET_TOPIC,
            R::GetTopics { .. } => codes::GET_TOPICS,
            R::CreateTopic { .. } => codes::CREATE_TOPIC,
            R::DeleteTopic { .. } => codes::DELETE_TOPIC,
            R::UpdateTopic { .. } => codes::UPDATE_TOPIC,
            R::PurgeTopic { .. } => codes::PURGE_TOPIC,
            R::CreatePartitions { .. } => codes::CREATE_PARTITIONS,
            R::DeletePartitions { .. } => codes::DELETE_PARTITIONS,
            R::DeleteSegments { .. } => codes::DELETE_SEGMENTS,
            R::GetConsumerGroup { .. } => codes::GET_CONSUMER_GROUP,
            R::GetConsumerGroups { .. } => codes::GET_CONSUMER_GROUPS,
            R::CreateConsumerGroup { .. } => codes::CREATE_CONSUMER_GROUP,
            R::DeleteConsumerGroup { .. } => codes::DELETE_CONSUMER_GROUP,
            R::JoinConsumerGroup { .. } => codes::JOIN_CONSUMER_GROUP,
            R::LeaveConsumerGroup { .. } => codes::LEAVE_CONSUMER_GROUP,
            R::GetTopicDurability { .. } => codes::WHARF_GET_TOPIC_DURABILITY,
            R::SetTopicDurability { .. } => codes::WHARF_SET_TOPIC_DURABILITY,
        }
    }

    /// Encodes the payload as a client sends it (the inverse of [`Request::decode`]).
    pub fn encode(&self, out: &mut bytes::BytesMut) {
        use bytes::BufMut;
        use Request as R;
        match self {
            R::Ping
            | R::GetStats
            | R::GetClusterMetadata
            | R::GetMe
            | R::GetClients
            | R::GetUsers
            | R::LogoutUser
            | R::GetPersonalAccessTokens
            | R::GetStreams => {}
            R::GetClient { client_id } => out.put_u32_le(*client_id),
            R::GetUser { user_id } | R::DeleteUser { user_id } => user_id.encode(out),
            R::CreateUser {
                username,
                password,
                active,
                permissions,
            } => {
                put_name(out, username);
                put_name(out, password);
                out.put_u8(if *active { 1 } else { 2 });
                put_optional_permissions(out, permissions);
            }
            R::UpdateUser {
                user_id,
                username,
                active,
            } => {
                user_id.encode(out);
                match username {
                    Some(n) => {
                        out.put_u8(1);
                        put_name(out, n);
                    }
                    None => out.put_u8(0),
                }
                match active {
                    Some(a) => {
                        out.put_u8(1);
                        out.put_u8(if *a { 1 } else { 2 });
                    }
                    None => out.put_u8(0),
                }
            }
            R::UpdatePermissions {
                user_id,
                permissions,
            } => {
                user_id.encode(out);
                put_optional_permissions(out, permissions);
            }
            R::ChangePassword {
                user_id,
                current,
                new,
            } => {
                user_id.encode(out);
                put_name(out, current);
                put_name(out, new);
            }
            R::LoginUser {
                username,
                password,
                version,
                context,
            } => {
                put_name(out, username);
                put_name(out, password);
                for s in [version, context] {
                    let s = s.as_deref().unwrap_or("");
                    out.put_u32_le(s.len() as u32);
                    out.put_slice(s.as_bytes());
                }
            }
            R::CreatePersonalAccessToken { name, expiry } => {
                put_name(out, name);
                out.put_u64_le(limit_to_wire(*expiry));
            }
            R::DeletePersonalAccessToken { name } => put_name(out, name),
            R::LoginWithPersonalAccessToken { token } => put_name(out, token),
            R::PollMessages {
                consumer,
                stream_id,
                topic_id,
                partition_id,
                strategy,
                count,
                auto_commit,
            } => {
                consumer.encode(out);
                stream_id.encode(out);
                topic_id.encode(out);
                crate::primitives::encode_optional_partition(*partition_id, out);
                strategy.encode(out);
                out.put_u32_le(*count);
                out.put_u8(u8::from(*auto_commit));
            }
            R::FlushUnsavedBuffer {
                stream_id,
                topic_id,
                partition_id,
                fsync,
            } => {
                stream_id.encode(out);
                topic_id.encode(out);
                out.put_u32_le(*partition_id);
                out.put_u8(u8::from(*fsync));
            }
            R::GetConsumerOffset {
                consumer,
                stream_id,
                topic_id,
                partition_id,
            }
            | R::DeleteConsumerOffset {
                consumer,
                stream_id,
                topic_id,
                partition_id,
            } => {
                consumer.encode(out);
                stream_id.encode(out);
                topic_id.encode(out);
                crate::primitives::encode_optional_partition(*partition_id, out);
            }
            R::StoreConsumerOffset {
                consumer,
                stream_id,
                topic_id,
                partition_id,
                offset,
            } => {
                consumer.encode(out);
                stream_id.encode(out);
                topic_id.encode(out);
                crate::primitives::encode_optional_partition(*partition_id, out);
                out.put_u64_le(*offset);
            }
            R::GetStream { stream_id }
            | R::DeleteStream { stream_id }
            | R::PurgeStream { stream_id }
            | R::GetTopics { stream_id } => stream_id.encode(out),
            R::CreateStream { name } => put_name(out, name),
            R::UpdateStream { stream_id, name } => {
                stream_id.encode(out);
                put_name(out, name);
            }
            R::GetTopic {
                stream_id,
                topic_id,
            }
            | R::DeleteTopic {
                stream_id,
                topic_id,
            }
            | R::PurgeTopic {
                stream_id,
                topic_id,
            }
            | R::GetConsumerGroups {
                stream_id,
                topic_id,
            }
            | R::GetTopicDurability {
                stream_id,
                topic_id,
            } => {
                stream_id.encode(out);
                topic_id.encode(out);
            }
            R::SetTopicDurability {
                stream_id,
                topic_id,
                durability,
            } => {
                stream_id.encode(out);
                topic_id.encode(out);
                out.put_u8(*durability);
            }
            R::CreateTopic {
                stream_id,
                partitions_count,
                compression,
                message_expiry,
                max_topic_size,
                replication_factor,
                name,
            } => {
                stream_id.encode(out);
                out.put_u32_le(*partitions_count);
                out.put_u8(*compression);
                out.put_u64_le(limit_to_wire(*message_expiry));
                out.put_u64_le(limit_to_wire(*max_topic_size));
                out.put_u8(*replication_factor);
                put_name(out, name);
            }
            R::UpdateTopic {
                stream_id,
                topic_id,
                compression,
                message_expiry,
                max_topic_size,
                replication_factor,
                name,
            } => {
                stream_id.encode(out);
                topic_id.encode(out);
                out.put_u8(*compression);
                out.put_u64_le(limit_to_wire(*message_expiry));
                out.put_u64_le(limit_to_wire(*max_topic_size));
                out.put_u8(*replication_factor);
                put_name(out, name);
            }
            R::CreatePartitions {
                stream_id,
                topic_id,
                count,
            }
            | R::DeletePartitions {
                stream_id,
                topic_id,
                count,
            } => {
                stream_id.encode(out);
                topic_id.encode(out);
                out.put_u32_le(*count);
            }
            R::DeleteSegments {
                stream_id,
                topic_id,
                partition_id,
                count,
            } => {
                stream_id.encode(out);
                topic_id.encode(out);
                out.put_u32_le(*partition_id);
                out.put_u32_le(*count);
            }
            R::CreateConsumerGroup {
                stream_id,
                topic_id,
                name,
            } => {
                stream_id.encode(out);
                topic_id.encode(out);
                put_name(out, name);
            }
            R::GetConsumerGroup {
                stream_id,
                topic_id,
                group_id,
            }
            | R::DeleteConsumerGroup {
                stream_id,
                topic_id,
                group_id,
            }
            | R::JoinConsumerGroup {
                stream_id,
                topic_id,
                group_id,
            }
            | R::LeaveConsumerGroup {
                stream_id,
                topic_id,
                group_id,
            } => {
                stream_id.encode(out);
                topic_id.encode(out);
                group_id.encode(out);
            }
        }
    }
}

#[cfg(test)]
mod encode_tests {
    use super::*;
    use crate::primitives::{Consumer, Identifier, PollingStrategy};

    /// Every request decodes back to itself: the client and server halves agree.
    #[test]
    fn every_request_round_trips() {
        let s = || Identifier::Name("shop".into());
        let t = || Identifier::Numeric(3);
        let perms = Some(WirePermissions {
            global: [true; 10],
            streams: vec![WireStreamPermissions {
                stream_id: 1,
                flags: [true; 6],
                topics: vec![],
            }],
        });
        let all = vec![
            Request::Ping,
            Request::GetStats,
            Request::GetClusterMetadata,
            Request::GetMe,
            Request::GetClient { client_id: 4 },
            Request::GetClients,
            Request::GetUser { user_id: s() },
            Request::GetUsers,
            Request::CreateUser {
                username: "bob".into(),
                password: "pw".into(),
                active: false,
                permissions: perms.clone(),
            },
            Request::DeleteUser { user_id: t() },
            Request::UpdateUser {
                user_id: t(),
                username: Some("b".into()),
                active: Some(true),
            },
            Request::UpdatePermissions {
                user_id: t(),
                permissions: perms,
            },
            Request::ChangePassword {
                user_id: t(),
                current: "a".into(),
                new: "b".into(),
            },
            Request::LoginUser {
                username: "u".into(),
                password: "p".into(),
                version: Some("1".into()),
                context: None,
            },
            Request::LogoutUser,
            Request::GetPersonalAccessTokens,
            Request::CreatePersonalAccessToken {
                name: "tok".into(),
                expiry: Limit::Value(5),
            },
            Request::DeletePersonalAccessToken { name: "tok".into() },
            Request::LoginWithPersonalAccessToken {
                token: "secret".into(),
            },
            Request::PollMessages {
                consumer: Consumer::Single(t()),
                stream_id: s(),
                topic_id: t(),
                partition_id: Some(2),
                strategy: PollingStrategy::Offset(9),
                count: 10,
                auto_commit: true,
            },
            Request::FlushUnsavedBuffer {
                stream_id: s(),
                topic_id: t(),
                partition_id: 1,
                fsync: true,
            },
            Request::GetConsumerOffset {
                consumer: Consumer::Group(s()),
                stream_id: s(),
                topic_id: t(),
                partition_id: None,
            },
            Request::StoreConsumerOffset {
                consumer: Consumer::Group(s()),
                stream_id: s(),
                topic_id: t(),
                partition_id: Some(1),
                offset: 7,
            },
            Request::DeleteConsumerOffset {
                consumer: Consumer::Single(s()),
                stream_id: s(),
                topic_id: t(),
                partition_id: Some(0),
            },
            Request::GetStream { stream_id: s() },
            Request::GetStreams,
            Request::CreateStream { name: "n".into() },
            Request::DeleteStream { stream_id: s() },
            Request::UpdateStream {
                stream_id: s(),
                name: "m".into(),
            },
            Request::PurgeStream { stream_id: s() },
            Request::GetTopic {
                stream_id: s(),
                topic_id: t(),
            },
            Request::GetTopics { stream_id: s() },
            Request::CreateTopic {
                stream_id: s(),
                partitions_count: 3,
                compression: 1,
                message_expiry: Limit::Unlimited,
                max_topic_size: Limit::Value(100),
                replication_factor: 1,
                name: "x".into(),
            },
            Request::DeleteTopic {
                stream_id: s(),
                topic_id: t(),
            },
            Request::UpdateTopic {
                stream_id: s(),
                topic_id: t(),
                compression: 2,
                message_expiry: Limit::ServerDefault,
                max_topic_size: Limit::Unlimited,
                replication_factor: 0,
                name: "y".into(),
            },
            Request::PurgeTopic {
                stream_id: s(),
                topic_id: t(),
            },
            Request::CreatePartitions {
                stream_id: s(),
                topic_id: t(),
                count: 2,
            },
            Request::DeletePartitions {
                stream_id: s(),
                topic_id: t(),
                count: 1,
            },
            Request::DeleteSegments {
                stream_id: s(),
                topic_id: t(),
                partition_id: 0,
                count: 3,
            },
            Request::GetConsumerGroup {
                stream_id: s(),
                topic_id: t(),
                group_id: s(),
            },
            Request::GetConsumerGroups {
                stream_id: s(),
                topic_id: t(),
            },
            Request::CreateConsumerGroup {
                stream_id: s(),
                topic_id: t(),
                name: "g".into(),
            },
            Request::DeleteConsumerGroup {
                stream_id: s(),
                topic_id: t(),
                group_id: t(),
            },
            Request::JoinConsumerGroup {
                stream_id: s(),
                topic_id: t(),
                group_id: t(),
            },
            Request::LeaveConsumerGroup {
                stream_id: s(),
                topic_id: t(),
                group_id: t(),
            },
            Request::GetTopicDurability {
                stream_id: s(),
                topic_id: t(),
            },
            Request::SetTopicDurability {
                stream_id: s(),
                topic_id: t(),
                durability: 2,
            },
        ];
        for r in all {
            let mut b = bytes::BytesMut::new();
            r.encode(&mut b);
            assert_eq!(Request::decode(r.code(), &b).unwrap(), r);
        }
    }
}
