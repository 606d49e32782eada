//! Message commands other than SendMessages (decoded in place by
//! [`crate::message::SendMessages`]): polling, and flushing a partition's unsaved messages.

use bytes::{BufMut, BytesMut};

use super::{flag, put_stream_topic, stream_topic, Command};
use crate::codes;
use crate::primitives::{
    decode_optional_partition, encode_optional_partition, Consumer, Identifier, PollingStrategy,
};
use crate::wire::{DecodeError, Reader};

/// `[consumer][stream_id][topic_id][optional partition][strategy][count u32][auto_commit u8]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollMessages {
    pub consumer: Consumer,
    pub stream_id: Identifier,
    pub topic_id: Identifier,
    pub partition_id: Option<u32>,
    pub strategy: PollingStrategy,
    pub count: u32,
    pub auto_commit: bool,
}

impl Command for PollMessages {
    const CODE: u32 = codes::POLL_MESSAGES;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let consumer = Consumer::decode(r)?;
        let (stream_id, topic_id) = stream_topic(r)?;
        Ok(PollMessages {
            consumer,
            stream_id,
            topic_id,
            partition_id: decode_optional_partition(r)?,
            strategy: PollingStrategy::decode(r)?,
            count: r.u32("count")?,
            auto_commit: flag(r, "auto_commit")?,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        self.consumer.encode(out);
        put_stream_topic(out, &self.stream_id, &self.topic_id);
        encode_optional_partition(self.partition_id, out);
        self.strategy.encode(out);
        out.put_u32_le(self.count);
        out.put_u8(u8::from(self.auto_commit));
    }
}

/// Makes a partition's acknowledged messages durable:
/// `[stream_id][topic_id][partition_id u32][fsync u8]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushUnsavedBuffer {
    pub stream_id: Identifier,
    pub topic_id: Identifier,
    pub partition_id: u32,
    pub fsync: bool,
}

impl Command for FlushUnsavedBuffer {
    const CODE: u32 = codes::FLUSH_UNSAVED_BUFFER;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (stream_id, topic_id) = stream_topic(r)?;
        Ok(FlushUnsavedBuffer {
            stream_id,
            topic_id,
            partition_id: r.u32("partition_id")?,
            fsync: flag(r, "fsync")?,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        put_stream_topic(out, &self.stream_id, &self.topic_id);
        out.put_u32_le(self.partition_id);
        out.put_u8(u8::from(self.fsync));
    }
}
