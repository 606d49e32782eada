//! Topic commands (get, list, create, delete, update, purge), the partition and segment
//! commands that reshape a topic, and Wharf's own topic durability and config commands.

use bytes::{BufMut, BytesMut};

use super::{put_name, put_stream_topic, stream_topic, Command, Limit};
use crate::codes;
use crate::primitives::Identifier;
use crate::wire::{err, invalid, DecodeError, Problem, Reader};

/// The topic and its partitions: `[stream_id][topic_id]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetTopic {
    pub stream_id: Identifier,
    pub topic_id: Identifier,
}

impl Command for GetTopic {
    const CODE: u32 = codes::GET_TOPIC;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (stream_id, topic_id) = stream_topic(r)?;
        Ok(GetTopic {
            stream_id,
            topic_id,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        put_stream_topic(out, &self.stream_id, &self.topic_id);
    }
}

/// The topics of a stream: `[stream_id]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetTopics {
    pub stream_id: Identifier,
}

impl Command for GetTopics {
    const CODE: u32 = codes::GET_TOPICS;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(GetTopics {
            stream_id: Identifier::decode(r, "stream_id")?,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        self.stream_id.encode(out);
    }
}

/// `[stream_id][partitions_count u32][compression u8][message_expiry u64][max_topic_size u64]
/// [replication_factor u8][name name]`; the server assigns the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTopic {
    pub stream_id: Identifier,
    pub partitions_count: u32,
    pub compression: u8,
    pub message_expiry: Limit,
    pub max_topic_size: Limit,
    pub replication_factor: u8,
    pub name: String,
}

impl Command for CreateTopic {
    const CODE: u32 = codes::CREATE_TOPIC;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(CreateTopic {
            stream_id: Identifier::decode(r, "stream_id")?,
            partitions_count: r.u32("partitions_count")?,
            compression: r.u8("compression_algorithm")?,
            message_expiry: Limit::decode(r, "message_expiry")?,
            max_topic_size: Limit::decode(r, "max_topic_size")?,
            replication_factor: r.u8("replication_factor")?,
            name: r.name("name")?,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        self.stream_id.encode(out);
        out.put_u32_le(self.partitions_count);
        out.put_u8(self.compression);
        self.message_expiry.encode(out);
        self.max_topic_size.encode(out);
        out.put_u8(self.replication_factor);
        put_name(out, &self.name);
    }
}

/// `[stream_id][topic_id]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteTopic {
    pub stream_id: Identifier,
    pub topic_id: Identifier,
}

impl Command for DeleteTopic {
    const CODE: u32 = codes::DELETE_TOPIC;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (stream_id, topic_id) = stream_topic(r)?;
        Ok(DeleteTopic {
            stream_id,
            topic_id,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        put_stream_topic(out, &self.stream_id, &self.topic_id);
    }
}

/// `[stream_id][topic_id][compression u8][message_expiry u64][max_topic_size u64]
/// [replication_factor u8][name name]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateTopic {
    pub stream_id: Identifier,
    pub topic_id: Identifier,
    pub compression: u8,
    pub message_expiry: Limit,
    pub max_topic_size: Limit,
    pub replication_factor: u8,
    pub name: String,
}

impl Command for UpdateTopic {
    const CODE: u32 = codes::UPDATE_TOPIC;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (stream_id, topic_id) = stream_topic(r)?;
        Ok(UpdateTopic {
            stream_id,
            topic_id,
            compression: r.u8("compression_algorithm")?,
            message_expiry: Limit::decode(r, "message_expiry")?,
            max_topic_size: Limit::decode(r, "max_topic_size")?,
            replication_factor: r.u8("replication_factor")?,
            name: r.name("name")?,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        put_stream_topic(out, &self.stream_id, &self.topic_id);
        out.put_u8(self.compression);
        self.message_expiry.encode(out);
        self.max_topic_size.encode(out);
        out.put_u8(self.replication_factor);
        put_name(out, &self.name);
    }
}

/// Deletes every message of a topic: `[stream_id][topic_id]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeTopic {
    pub stream_id: Identifier,
    pub topic_id: Identifier,
}

impl Command for PurgeTopic {
    const CODE: u32 = codes::PURGE_TOPIC;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (stream_id, topic_id) = stream_topic(r)?;
        Ok(PurgeTopic {
            stream_id,
            topic_id,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        put_stream_topic(out, &self.stream_id, &self.topic_id);
    }
}

/// Adds partitions at the end of a topic: `[stream_id][topic_id][partitions_count u32]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatePartitions {
    pub stream_id: Identifier,
    pub topic_id: Identifier,
    pub count: u32,
}

impl Command for CreatePartitions {
    const CODE: u32 = codes::CREATE_PARTITIONS;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (stream_id, topic_id) = stream_topic(r)?;
        Ok(CreatePartitions {
            stream_id,
            topic_id,
            count: r.u32("partitions_count")?,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        put_stream_topic(out, &self.stream_id, &self.topic_id);
        out.put_u32_le(self.count);
    }
}

/// Removes a topic's last partitions: `[stream_id][topic_id][partitions_count u32]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletePartitions {
    pub stream_id: Identifier,
    pub topic_id: Identifier,
    pub count: u32,
}

impl Command for DeletePartitions {
    const CODE: u32 = codes::DELETE_PARTITIONS;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (stream_id, topic_id) = stream_topic(r)?;
        Ok(DeletePartitions {
            stream_id,
            topic_id,
            count: r.u32("partitions_count")?,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        put_stream_topic(out, &self.stream_id, &self.topic_id);
        out.put_u32_le(self.count);
    }
}

/// Deletes a partition's oldest sealed segments:
/// `[stream_id][topic_id][partition_id u32][segments_count u32]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteSegments {
    pub stream_id: Identifier,
    pub topic_id: Identifier,
    pub partition_id: u32,
    pub count: u32,
}

impl Command for DeleteSegments {
    const CODE: u32 = codes::DELETE_SEGMENTS;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (stream_id, topic_id) = stream_topic(r)?;
        Ok(DeleteSegments {
            stream_id,
            topic_id,
            partition_id: r.u32("partition_id")?,
            count: r.u32("segments_count")?,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        put_stream_topic(out, &self.stream_id, &self.topic_id);
        out.put_u32_le(self.partition_id);
        out.put_u32_le(self.count);
    }
}

/// Wharf only: a topic's durability (0 server default, 1 os, 2 fsync):
/// `[stream_id][topic_id]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetTopicDurability {
    pub stream_id: Identifier,
    pub topic_id: Identifier,
}

impl Command for GetTopicDurability {
    const CODE: u32 = codes::WHARF_GET_TOPIC_DURABILITY;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (stream_id, topic_id) = stream_topic(r)?;
        Ok(GetTopicDurability {
            stream_id,
            topic_id,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        put_stream_topic(out, &self.stream_id, &self.topic_id);
    }
}

/// Wharf only: sets a topic's durability (0 server default, 1 os, 2 fsync; anything else is
/// refused): `[stream_id][topic_id][durability u8]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetTopicDurability {
    pub stream_id: Identifier,
    pub topic_id: Identifier,
    pub durability: u8,
}

impl Command for SetTopicDurability {
    const CODE: u32 = codes::WHARF_SET_TOPIC_DURABILITY;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (stream_id, topic_id) = stream_topic(r)?;
        let durability = r.u8("durability")?;
        if durability > 2 {
            return Err(err("durability", Problem::Unknown(u64::from(durability))));
        }
        Ok(SetTopicDurability {
            stream_id,
            topic_id,
            durability,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        put_stream_topic(out, &self.stream_id, &self.topic_id);
        out.put_u8(self.durability);
    }
}

/// Wharf only: a topic's configs under Kafka's names: `[stream_id][topic_id]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetTopicConfig {
    pub stream_id: Identifier,
    pub topic_id: Identifier,
}

impl Command for GetTopicConfig {
    const CODE: u32 = codes::WHARF_GET_TOPIC_CONFIG;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (stream_id, topic_id) = stream_topic(r)?;
        Ok(GetTopicConfig {
            stream_id,
            topic_id,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        put_stream_topic(out, &self.stream_id, &self.topic_id);
    }
}

/// Most config changes one [`SetTopicConfig`] may carry (Wharf has 13 topic configs).
pub const MAX_TOPIC_CONFIG_CHANGES: u32 = 64;
/// Longest config value accepted, in bytes.
pub const MAX_CONFIG_VALUE_LEN: usize = 1024;

/// One config change: a value to set, or `None` to return the config to its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfigChange {
    /// Kafka's name of the config (`cleanup.policy`), 1..=255 bytes.
    pub name: String,
    pub value: Option<String>,
}

/// Wharf only: sets (or resets) some of a topic's configs, checked whole by the server:
/// `[stream_id][topic_id][count u32]` then per change
/// `[name len u8][name][value present u8]([value len u16][value])`, at most
/// [`MAX_TOPIC_CONFIG_CHANGES`] changes and [`MAX_CONFIG_VALUE_LEN`] bytes a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetTopicConfig {
    pub stream_id: Identifier,
    pub topic_id: Identifier,
    pub changes: Vec<TopicConfigChange>,
}

/// Why a [`SetTopicConfig`] cannot be sent as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicConfigError {
    #[error("1..={max} config changes per command, not {count}", max = MAX_TOPIC_CONFIG_CHANGES)]
    Count { count: usize },
    #[error("config name '{name}' must be 1..=255 bytes")]
    Name { name: String },
    #[error("the value of {name} is {len} bytes, over {max}", max = MAX_CONFIG_VALUE_LEN)]
    Value { name: String, len: usize },
}

impl SetTopicConfig {
    /// Checks the decoder's limits (count, name and value lengths in bytes) before sending:
    /// an over-long value is refused here, never cut.
    pub fn check(&self) -> Result<(), TopicConfigError> {
        let count = self.changes.len();
        if count == 0 || count > MAX_TOPIC_CONFIG_CHANGES as usize {
            return Err(TopicConfigError::Count { count });
        }
        for c in &self.changes {
            if c.name.is_empty() || c.name.len() > 255 {
                return Err(TopicConfigError::Name {
                    name: c.name.clone(),
                });
            }
            if let Some(v) = c.value.as_ref().filter(|v| v.len() > MAX_CONFIG_VALUE_LEN) {
                return Err(TopicConfigError::Value {
                    name: c.name.clone(),
                    len: v.len(),
                });
            }
        }
        Ok(())
    }
}

impl Command for SetTopicConfig {
    const CODE: u32 = codes::WHARF_SET_TOPIC_CONFIG;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (stream_id, topic_id) = stream_topic(r)?;
        let count = r.u32("configs_count")?;
        if count > MAX_TOPIC_CONFIG_CHANGES {
            return Err(err(
                "configs_count",
                Problem::TooLong {
                    len: count as usize,
                    max: MAX_TOPIC_CONFIG_CHANGES as usize,
                },
            ));
        }
        if count == 0 {
            return Err(invalid("configs_count", "must not be 0"));
        }
        // Bounded above, so the allocation is too.
        let mut changes = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let name = r.name("config_name")?;
            let value = if r.bool("config_value_present")? {
                let b = r.take(2, "config_value")?;
                let len = usize::from(u16::from_le_bytes([b[0], b[1]]));
                if len > MAX_CONFIG_VALUE_LEN {
                    return Err(err(
                        "config_value",
                        Problem::TooLong {
                            len,
                            max: MAX_CONFIG_VALUE_LEN,
                        },
                    ));
                }
                Some(r.utf8(len, "config_value")?)
            } else {
                None
            };
            changes.push(TopicConfigChange { name, value });
        }
        Ok(SetTopicConfig {
            stream_id,
            topic_id,
            changes,
        })
    }

    /// Encodes the changes as given, never cutting one: a command past the decoder's limits
    /// (more than [`MAX_TOPIC_CONFIG_CHANGES`] changes, a value over [`MAX_CONFIG_VALUE_LEN`]
    /// bytes) is encoded so that the server refuses it whole (its length or count field says
    /// how far over it is), instead of applying a value cut short, possibly in the middle of
    /// a UTF-8 character. Callers check with [`SetTopicConfig::check`] first.
    fn encode(&self, out: &mut BytesMut) {
        put_stream_topic(out, &self.stream_id, &self.topic_id);
        out.put_u32_le(u32::try_from(self.changes.len()).unwrap_or(u32::MAX));
        for c in &self.changes {
            put_name(out, &c.name);
            match &c.value {
                Some(v) => {
                    out.put_u8(1);
                    // Over the limit: its first MAX + 1 bytes, which the decoder refuses by
                    // their length before it reads them.
                    let b = &v.as_bytes()[..v.len().min(MAX_CONFIG_VALUE_LEN + 1)];
                    out.put_u16_le(b.len() as u16);
                    out.put_slice(b);
                }
                None => out.put_u8(0),
            }
        }
    }
}
