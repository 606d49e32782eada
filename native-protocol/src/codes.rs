//! Command codes of the Iggy 0.8 protocol.

pub const PING: u32 = 1;
pub const GET_STATS: u32 = 10;
pub const GET_SNAPSHOT_FILE: u32 = 11;
pub const GET_CLUSTER_METADATA: u32 = 12;
pub const GET_ME: u32 = 20;
pub const GET_CLIENT: u32 = 21;
pub const GET_CLIENTS: u32 = 22;
pub const GET_USER: u32 = 31;
pub const GET_USERS: u32 = 32;
pub const CREATE_USER: u32 = 33;
pub const DELETE_USER: u32 = 34;
pub const UPDATE_USER: u32 = 35;
pub const UPDATE_PERMISSIONS: u32 = 36;
pub const CHANGE_PASSWORD: u32 = 37;
pub const LOGIN_USER: u32 = 38;
pub const LOGOUT_USER: u32 = 39;
pub const GET_PERSONAL_ACCESS_TOKENS: u32 = 41;
pub const CREATE_PERSONAL_ACCESS_TOKEN: u32 = 42;
pub const DELETE_PERSONAL_ACCESS_TOKEN: u32 = 43;
pub const LOGIN_WITH_PERSONAL_ACCESS_TOKEN: u32 = 44;
pub const POLL_MESSAGES: u32 = 100;
pub const SEND_MESSAGES: u32 = 101;
pub const FLUSH_UNSAVED_BUFFER: u32 = 102;
pub const GET_CONSUMER_OFFSET: u32 = 120;
pub const STORE_CONSUMER_OFFSET: u32 = 121;
pub const DELETE_CONSUMER_OFFSET: u32 = 122;
pub const GET_STREAM: u32 = 200;
pub const GET_STREAMS: u32 = 201;
pub const CREATE_STREAM: u32 = 202;
pub const DELETE_STREAM: u32 = 203;
pub const UPDATE_STREAM: u32 = 204;
pub const PURGE_STREAM: u32 = 205;
pub const GET_TOPIC: u32 = 300;
pub const GET_TOPICS: u32 = 301;
pub const CREATE_TOPIC: u32 = 302;
pub const DELETE_TOPIC: u32 = 303;
pub const UPDATE_TOPIC: u32 = 304;
pub const PURGE_TOPIC: u32 = 305;
pub const CREATE_PARTITIONS: u32 = 402;
pub const DELETE_PARTITIONS: u32 = 403;
pub const DELETE_SEGMENTS: u32 = 503;
pub const GET_CONSUMER_GROUP: u32 = 600;
pub const GET_CONSUMER_GROUPS: u32 = 601;
pub const CREATE_CONSUMER_GROUP: u32 = 602;
pub const DELETE_CONSUMER_GROUP: u32 = 603;
pub const JOIN_CONSUMER_GROUP: u32 = 604;
pub const LEAVE_CONSUMER_GROUP: u32 = 605;

// Wharf's own commands, beyond Iggy 0.8 (Iggy clients never send them).
/// A topic's durability mode: answer `[u8]` 0 = server default, 1 = os, 2 = fsync.
pub const WHARF_GET_TOPIC_DURABILITY: u32 = 10_001;
/// Sets a topic's durability mode: `[stream][topic][u8 as above]`.
pub const WHARF_SET_TOPIC_DURABILITY: u32 = 10_002;
/// A topic's configs under Kafka's names: `[stream][topic]`, answered with
/// [`crate::responses::TopicConfigWire`] entries (name, value, source).
pub const WHARF_GET_TOPIC_CONFIG: u32 = 10_003;
/// Sets or resets some of a topic's configs: `[stream][topic][count u32]` then per config
/// `[name len u8][name][value present u8]([value len u16][value])`; answered empty.
pub const WHARF_SET_TOPIC_CONFIG: u32 = 10_004;
/// Consumer lag of every group (or one) on every partition it has committed a position on:
/// `[group len u16][group]` (length 0: every group), answered with
/// [`crate::responses::PartitionLagWire`] rows back to back.
pub const WHARF_CONSUMER_LAG: u32 = 10_005;
/// What `wharf top` shows: `[lag rows u32]` (the most lagging partitions wanted), answered with
/// one [`crate::responses::MetricsSnapshotWire`].
pub const WHARF_METRICS_SNAPSHOT: u32 = 10_006;

/// The command's name, for logs; `None` for a code Iggy 0.8 does not define.
pub fn command_name(code: u32) -> Option<&'static str> {
    Some(match code {
        PING => "ping",
        GET_STATS => "stats",
        GET_SNAPSHOT_FILE => "snapshot",
        GET_CLUSTER_METADATA => "cluster.metadata",
        GET_ME => "me",
        GET_CLIENT => "client.get",
        GET_CLIENTS => "client.list",
        GET_USER => "user.get",
        GET_USERS => "user.list",
        CREATE_USER => "user.create",
        DELETE_USER => "user.delete",
        UPDATE_USER => "user.update",
        UPDATE_PERMISSIONS => "user.permissions",
        CHANGE_PASSWORD => "user.password",
        LOGIN_USER => "user.login",
        LOGOUT_USER => "user.logout",
        GET_PERSONAL_ACCESS_TOKENS => "personal_access_token.list",
        CREATE_PERSONAL_ACCESS_TOKEN => "personal_access_token.create",
        DELETE_PERSONAL_ACCESS_TOKEN => "personal_access_token.delete",
        LOGIN_WITH_PERSONAL_ACCESS_TOKEN => "personal_access_token.login",
        POLL_MESSAGES => "message.poll",
        SEND_MESSAGES => "message.send",
        FLUSH_UNSAVED_BUFFER => "message.flush_unsaved_buffer",
        GET_CONSUMER_OFFSET => "consumer_offset.get",
        STORE_CONSUMER_OFFSET => "consumer_offset.store",
        DELETE_CONSUMER_OFFSET => "consumer_offset.delete",
        GET_STREAM => "stream.get",
        GET_STREAMS => "stream.list",
        CREATE_STREAM => "stream.create",
        DELETE_STREAM => "stream.delete",
        UPDATE_STREAM => "stream.update",
        PURGE_STREAM => "stream.purge",
        GET_TOPIC => "topic.get",
        GET_TOPICS => "topic.list",
        CREATE_TOPIC => "topic.create",
        DELETE_TOPIC => "topic.delete",
        UPDATE_TOPIC => "topic.update",
        PURGE_TOPIC => "topic.purge",
        CREATE_PARTITIONS => "partition.create",
        DELETE_PARTITIONS => "partition.delete",
        DELETE_SEGMENTS => "segment.delete",
        GET_CONSUMER_GROUP => "consumer_group.get",
        GET_CONSUMER_GROUPS => "consumer_group.list",
        CREATE_CONSUMER_GROUP => "consumer_group.create",
        DELETE_CONSUMER_GROUP => "consumer_group.delete",
        JOIN_CONSUMER_GROUP => "consumer_group.join",
        LEAVE_CONSUMER_GROUP => "consumer_group.leave",
        WHARF_GET_TOPIC_DURABILITY => "wharf.topic.durability.get",
        WHARF_SET_TOPIC_DURABILITY => "wharf.topic.durability.set",
        WHARF_GET_TOPIC_CONFIG => "wharf.topic.config.get",
        WHARF_SET_TOPIC_CONFIG => "wharf.topic.config.set",
        WHARF_CONSUMER_LAG => "wharf.consumer_group.lag",
        WHARF_METRICS_SNAPSHOT => "wharf.metrics.snapshot",
        _ => return None,
    })
}
