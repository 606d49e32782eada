//! Consumer group commands: get, list, create, delete, join and leave.

use bytes::BytesMut;

use super::{put_name, put_stream_topic, stream_topic, Command};
use crate::codes;
use crate::primitives::Identifier;
use crate::wire::{DecodeError, Reader};

/// `[stream_id][topic_id][group_id]`, the payload of every command naming one group.
fn decode_group(r: &mut Reader<'_>) -> Result<(Identifier, Identifier, Identifier), DecodeError> {
    let (stream_id, topic_id) = stream_topic(r)?;
    let group_id = Identifier::decode(r, "group_id")?;
    Ok((stream_id, topic_id, group_id))
}

fn encode_group(
    out: &mut BytesMut,
    stream_id: &Identifier,
    topic_id: &Identifier,
    group_id: &Identifier,
) {
    put_stream_topic(out, stream_id, topic_id);
    group_id.encode(out);
}

/// A group with its members and their partitions: `[stream_id][topic_id][group_id]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetConsumerGroup {
    pub stream_id: Identifier,
    pub topic_id: Identifier,
    pub group_id: Identifier,
}

impl Command for GetConsumerGroup {
    const CODE: u32 = codes::GET_CONSUMER_GROUP;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (stream_id, topic_id, group_id) = decode_group(r)?;
        Ok(GetConsumerGroup {
            stream_id,
            topic_id,
            group_id,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        encode_group(out, &self.stream_id, &self.topic_id, &self.group_id);
    }
}

/// The groups of a topic: `[stream_id][topic_id]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetConsumerGroups {
    pub stream_id: Identifier,
    pub topic_id: Identifier,
}

impl Command for GetConsumerGroups {
    const CODE: u32 = codes::GET_CONSUMER_GROUPS;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (stream_id, topic_id) = stream_topic(r)?;
        Ok(GetConsumerGroups {
            stream_id,
            topic_id,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        put_stream_topic(out, &self.stream_id, &self.topic_id);
    }
}

/// `[stream_id][topic_id][name name]`; the server assigns the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateConsumerGroup {
    pub stream_id: Identifier,
    pub topic_id: Identifier,
    pub name: String,
}

impl Command for CreateConsumerGroup {
    const CODE: u32 = codes::CREATE_CONSUMER_GROUP;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (stream_id, topic_id) = stream_topic(r)?;
        Ok(CreateConsumerGroup {
            stream_id,
            topic_id,
            name: r.name("name")?,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        put_stream_topic(out, &self.stream_id, &self.topic_id);
        put_name(out, &self.name);
    }
}

/// `[stream_id][topic_id][group_id]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteConsumerGroup {
    pub stream_id: Identifier,
    pub topic_id: Identifier,
    pub group_id: Identifier,
}

impl Command for DeleteConsumerGroup {
    const CODE: u32 = codes::DELETE_CONSUMER_GROUP;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (stream_id, topic_id, group_id) = decode_group(r)?;
        Ok(DeleteConsumerGroup {
            stream_id,
            topic_id,
            group_id,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        encode_group(out, &self.stream_id, &self.topic_id, &self.group_id);
    }
}

/// Makes the connection a member: `[stream_id][topic_id][group_id]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinConsumerGroup {
    pub stream_id: Identifier,
    pub topic_id: Identifier,
    pub group_id: Identifier,
}

impl Command for JoinConsumerGroup {
    const CODE: u32 = codes::JOIN_CONSUMER_GROUP;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (stream_id, topic_id, group_id) = decode_group(r)?;
        Ok(JoinConsumerGroup {
            stream_id,
            topic_id,
            group_id,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        encode_group(out, &self.stream_id, &self.topic_id, &self.group_id);
    }
}

/// `[stream_id][topic_id][group_id]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveConsumerGroup {
    pub stream_id: Identifier,
    pub topic_id: Identifier,
    pub group_id: Identifier,
}

impl Command for LeaveConsumerGroup {
    const CODE: u32 = codes::LEAVE_CONSUMER_GROUP;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (stream_id, topic_id, group_id) = decode_group(r)?;
        Ok(LeaveConsumerGroup {
            stream_id,
            topic_id,
            group_id,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        encode_group(out, &self.stream_id, &self.topic_id, &self.group_id);
    }
}
