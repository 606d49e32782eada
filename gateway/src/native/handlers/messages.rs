//! SendMessages, PollMessages and FlushUnsavedBuffer: the hot path. Sends go to the store as
//! one batch in the buffer they arrived in; polls answer with slices of stored batches, written
//! with one vectored write.

use bytes::{Bytes, BytesMut};
use wharf_log_store::{Ident, NewBatch, Partition};
use wharf_protocol::message::{validate_messages, MessageError, Messages, SendMessages, ID_AT};
use wharf_protocol::responses::poll_header;
use wharf_protocol::{partition_for_key, Consumer, Identifier, Partitioning, PollingStrategy};

use crate::broker::{Action, BrokerError};
use crate::native::connection::Reply;
use crate::native::errors::code;
use crate::native::session::{ident, Session};

/// Bytes read from the store per step while collecting a poll's messages.
const READ_STEP: u64 = 4 << 20;
/// A poll answer stops growing past this many bytes.
const MAX_POLL_BYTES: usize = 64 << 20;

fn message_error_status(e: &MessageError) -> u32 {
    match e {
        MessageError::EmptyPayload(_) => code::EMPTY_MESSAGE_PAYLOAD,
        MessageError::PayloadTooLarge(_) => code::TOO_BIG_MESSAGE_PAYLOAD,
        MessageError::HeadersTooLarge(_) => code::TOO_BIG_USER_HEADERS,
        MessageError::InvalidHeaders(_) => code::INVALID_HEADER_KIND,
        MessageError::Reserved(_) => code::INVALID_RESERVED_FIELD,
        MessageError::Truncated(_) => code::INVALID_MESSAGES_SIZE,
        MessageError::CountMismatch { .. } | MessageError::NoMessages => {
            code::INVALID_MESSAGES_COUNT
        }
    }
}

/// A random UUIDv4, as the u128 Iggy stores it (the UUID's bytes read little-endian).
fn random_message_id() -> u128 {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    u128::from_le_bytes(b)
}

/// Gives every message with id 0 a random one, in place.
fn assign_ids(blob: &mut BytesMut) {
    // Walks the (already validated) headers in place: no per-request allocation.
    let mut at = 0;
    while let Some(m) = Messages::new(&blob[at..]).next() {
        let len = m.bytes().len();
        let id = &mut blob[at + ID_AT..at + ID_AT + 16];
        if id.iter().all(|&b| b == 0) {
            id.copy_from_slice(&random_message_id().to_le_bytes());
        }
        at += len;
    }
}

/// Messages of a poll: slices of stored batches, and what they cover.
struct Collected {
    parts: Vec<Bytes>,
    count: u32,
    last_offset: Option<u64>,
}

/// Collects up to `count` native messages from `start` on (with timestamps at or after
/// `min_timestamp`, if given), as zero-copy slices of the stored batches.
fn collect(
    partition: &Partition,
    start: u64,
    count: u32,
    min_timestamp: Option<u64>,
) -> Result<Collected, BrokerError> {
    let mut out = Collected {
        parts: Vec::new(),
        count: 0,
        last_offset: None,
    };
    let mut from = start;
    let mut bytes = 0usize;
    'read: while out.count < count && bytes < MAX_POLL_BYTES {
        let read = partition.read(from, READ_STEP)?;
        if read.batches.is_empty() {
            break;
        }
        for batch in &read.batches {
            from = batch.last_offset() + 1;
            // Kafka-format batches are converted to native messages (broker::translate).
            let payload = match crate::broker::translate::as_native(batch) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(
                        offset = batch.base_offset(),
                        "cannot convert a stored Kafka batch for a native reader: {e}"
                    );
                    continue;
                }
            };
            let base = payload.as_ptr() as usize;
            let (mut first, mut end) = (None, 0);
            for m in Messages::new(&payload) {
                if out.count >= count {
                    break;
                }
                if m.offset() < start || min_timestamp.is_some_and(|ts| m.timestamp() < ts) {
                    continue;
                }
                let at = m.bytes().as_ptr() as usize - base;
                first.get_or_insert(at);
                end = at + m.bytes().len();
                out.count += 1;
                out.last_offset = Some(m.offset());
            }
            if let Some(first) = first {
                bytes += end - first;
                out.parts.push(payload.slice(first..end));
            }
            if out.count >= count || bytes >= MAX_POLL_BYTES {
                break 'read;
            }
        }
    }
    Ok(out)
}

impl Session {
    pub(crate) async fn send_messages(&mut self, payload: BytesMut) -> Result<Reply, BrokerError> {
        let user = self.user()?;
        let send = match SendMessages::decode(payload) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(client_id = self.client_id, "malformed send: {e}");
                return Ok(Reply::Error(code::INVALID_FORMAT));
            }
        };
        let topic = self.topic_info(&send.stream_id, &send.topic_id)?;
        self.broker
            .authorize(&user, Action::Send(topic.stream_id, topic.id))?;
        if topic.partitions == 0 {
            return Ok(Reply::Error(code::NO_PARTITIONS));
        }
        let partition_id = match &send.partitioning {
            Partitioning::Balanced => {
                self.broker
                    .next_balanced(topic.stream_id, topic.id, topic.partitions)
            }
            Partitioning::PartitionId(p) => *p,
            Partitioning::MessagesKey(key) => partition_for_key(key, topic.partitions),
        };
        if let Err(e) = validate_messages(&send.messages, send.messages_count) {
            tracing::debug!(client_id = self.client_id, "invalid messages: {e}");
            return Ok(Reply::Error(message_error_status(&e)));
        }
        let partition = self.broker.store.partition(
            Ident::Id(topic.stream_id),
            Ident::Id(topic.id),
            partition_id,
        )?;
        let mut blob = send.messages;
        assign_ids(&mut blob);
        let batch =
            NewBatch::native(blob).map_err(|e| BrokerError::InvalidMessages(e.to_string()))?;
        partition.append(batch).await?;
        Ok(Reply::empty())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn poll_messages(
        &self,
        consumer: &Consumer,
        stream: &Identifier,
        topic: &Identifier,
        partition_id: Option<u32>,
        strategy: PollingStrategy,
        count: u32,
        auto_commit: bool,
    ) -> Result<Reply, BrokerError> {
        let user = self.user()?;
        let t = self.topic_info(stream, topic)?;
        self.broker
            .authorize(&user, Action::Poll(t.stream_id, t.id))?;
        let nothing =
            |partition: u32, current: u64| Ok(Reply::body(poll_header(partition, current, 0)));
        let partition_id = match consumer {
            Consumer::Single(_) => partition_id.unwrap_or(0),
            Consumer::Group(group) => {
                let gid = ident(group);
                if self.broker.groups.name_of(t.stream_id, t.id, gid).is_none() {
                    return Err(BrokerError::GroupNotFound(group.to_string()));
                }
                let next = self.broker.groups.next_partition(
                    t.stream_id,
                    t.id,
                    gid,
                    self.client_id,
                    t.partitions,
                )?;
                match (partition_id, next) {
                    (_, None) => return nothing(0, 0),
                    (Some(p), Some(_))
                        if self.broker.groups.owns(
                            t.stream_id,
                            t.id,
                            gid,
                            self.client_id,
                            p,
                            t.partitions,
                        ) =>
                    {
                        p
                    }
                    (Some(_), Some(_)) => return nothing(0, 0),
                    (None, Some(p)) => p,
                }
            }
        };
        let partition =
            self.broker
                .store
                .partition(Ident::Id(t.stream_id), Ident::Id(t.id), partition_id)?;
        let stats = partition.stats();
        let current = stats.high_watermark.saturating_sub(1);
        let count = count.min(self.config.max_poll_messages);
        if count == 0 || stats.high_watermark == 0 {
            return nothing(partition_id, current);
        }
        let owner = self.offset_owner(consumer, t.stream_id, t.id)?;
        let key = wharf_log_store::OffsetKey {
            owner,
            stream: t.stream_id,
            topic: t.id,
            partition: partition_id,
        };
        let (start, min_ts) = match strategy {
            PollingStrategy::Offset(o) if o > current => return nothing(partition_id, current),
            PollingStrategy::Offset(o) => (o, None),
            PollingStrategy::Timestamp(ts) => match partition.offset_for_timestamp(ts) {
                Some(o) => (o, Some(ts)),
                None => return nothing(partition_id, current),
            },
            PollingStrategy::First => (stats.log_start_offset, None),
            PollingStrategy::Last => (stats.high_watermark.saturating_sub(u64::from(count)), None),
            PollingStrategy::Next => (
                self.broker
                    .store
                    .offsets()
                    .get(&key)
                    .map_or(0, |c| c.next_offset),
                None,
            ),
        };
        let start = start.max(stats.log_start_offset);
        let collected = collect(&partition, start, count, min_ts)?;
        if auto_commit {
            if let Some(last) = collected.last_offset {
                self.commit(key, last + 1)?;
            }
        }
        let mut parts = Vec::with_capacity(collected.parts.len() + 1);
        parts.push(poll_header(partition_id, current, collected.count).freeze());
        parts.extend(collected.parts);
        Ok(Reply::Ok(parts))
    }

    pub(crate) fn flush(
        &self,
        stream: &Identifier,
        topic: &Identifier,
        partition_id: u32,
        fsync: bool,
    ) -> Result<Reply, BrokerError> {
        let t = self.authorized_topic(stream, topic, Action::Send)?;
        let p =
            self.broker
                .store
                .partition(Ident::Id(t.stream_id), Ident::Id(t.id), partition_id)?;
        // Every acknowledged batch is already with the kernel; fsync makes it durable too.
        if fsync {
            p.sync()?;
        }
        Ok(Reply::empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wharf_protocol::message::HEADER_LEN;

    #[test]
    fn zero_ids_get_uuid_v4s_and_others_stay() {
        let mut blob = BytesMut::new();
        wharf_protocol::message::encode_message(0, 0, b"a", &[], &mut blob);
        wharf_protocol::message::encode_message(7, 0, b"b", &[], &mut blob);
        assign_ids(&mut blob);
        let ids: Vec<u128> = Messages::new(&blob).map(|m| m.id()).collect();
        assert_ne!(ids[0], 0);
        assert_eq!(ids[0].to_le_bytes()[6] >> 4, 4, "version nibble");
        assert_eq!(ids[1], 7);
        assert_eq!(blob.len(), 2 * (HEADER_LEN + 1));
    }
}
