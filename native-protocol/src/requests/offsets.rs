//! Consumer offset commands: get, store and delete the offset a consumer or group has reached
//! on a partition.

use bytes::{BufMut, BytesMut};

use super::{put_stream_topic, stream_topic, Command};
use crate::codes;
use crate::primitives::{
    decode_optional_partition, encode_optional_partition, Consumer, Identifier,
};
use crate::wire::{DecodeError, Reader};

/// `[consumer][stream_id][topic_id][optional partition]`, the head of every offset command.
fn decode_head(
    r: &mut Reader<'_>,
) -> Result<(Consumer, Identifier, Identifier, Option<u32>), DecodeError> {
    let consumer = Consumer::decode(r)?;
    let (stream_id, topic_id) = stream_topic(r)?;
    let partition_id = decode_optional_partition(r)?;
    Ok((consumer, stream_id, topic_id, partition_id))
}

fn encode_head(
    out: &mut BytesMut,
    consumer: &Consumer,
    stream_id: &Identifier,
    topic_id: &Identifier,
    partition_id: Option<u32>,
) {
    consumer.encode(out);
    put_stream_topic(out, stream_id, topic_id);
    encode_optional_partition(partition_id, out);
}

/// `[consumer][stream_id][topic_id][optional partition]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetConsumerOffset {
    pub consumer: Consumer,
    pub stream_id: Identifier,
    pub topic_id: Identifier,
    pub partition_id: Option<u32>,
}

impl Command for GetConsumerOffset {
    const CODE: u32 = codes::GET_CONSUMER_OFFSET;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (consumer, stream_id, topic_id, partition_id) = decode_head(r)?;
        Ok(GetConsumerOffset {
            consumer,
            stream_id,
            topic_id,
            partition_id,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        encode_head(
            out,
            &self.consumer,
            &self.stream_id,
            &self.topic_id,
            self.partition_id,
        );
    }
}

/// `[consumer][stream_id][topic_id][optional partition][offset u64]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConsumerOffset {
    pub consumer: Consumer,
    pub stream_id: Identifier,
    pub topic_id: Identifier,
    pub partition_id: Option<u32>,
    pub offset: u64,
}

impl Command for StoreConsumerOffset {
    const CODE: u32 = codes::STORE_CONSUMER_OFFSET;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (consumer, stream_id, topic_id, partition_id) = decode_head(r)?;
        Ok(StoreConsumerOffset {
            consumer,
            stream_id,
            topic_id,
            partition_id,
            offset: r.u64("offset")?,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        encode_head(
            out,
            &self.consumer,
            &self.stream_id,
            &self.topic_id,
            self.partition_id,
        );
        out.put_u64_le(self.offset);
    }
}

/// `[consumer][stream_id][topic_id][optional partition]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteConsumerOffset {
    pub consumer: Consumer,
    pub stream_id: Identifier,
    pub topic_id: Identifier,
    pub partition_id: Option<u32>,
}

impl Command for DeleteConsumerOffset {
    const CODE: u32 = codes::DELETE_CONSUMER_OFFSET;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let (consumer, stream_id, topic_id, partition_id) = decode_head(r)?;
        Ok(DeleteConsumerOffset {
            consumer,
            stream_id,
            topic_id,
            partition_id,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        encode_head(
            out,
            &self.consumer,
            &self.stream_id,
            &self.topic_id,
            self.partition_id,
        );
    }
}
