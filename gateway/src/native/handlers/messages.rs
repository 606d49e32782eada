//! SendMessages, PollMessages and FlushUnsavedBuffer: the hot path. A send is decoded and its
//! messages checked here, then appended by the broker as one batch in the buffer it arrived in;
//! a poll answers with slices of stored batches, written with one vectored write.

use bytes::BytesMut;
use wharf_protocol::message::{validate_messages, MessageError, SendMessages};
use wharf_protocol::responses::poll_header;
use wharf_protocol::{Consumer, Identifier, PollingStrategy};

use crate::broker::consume::PollRequest;
use crate::broker::{Action, BrokerError, Principal};
use crate::native::connection::Reply;
use crate::native::errors::code;
use crate::native::session::Session;

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
        self.broker.authorize(
            &Principal::User(user.id),
            Action::Send(topic.stream_id, topic.id),
        )?;
        if topic.partitions == 0 {
            return Ok(Reply::Error(code::NO_PARTITIONS));
        }
        if let Err(e) = validate_messages(&send.messages, send.messages_count) {
            tracing::debug!(client_id = self.client_id, "invalid messages: {e}");
            return Ok(Reply::Error(message_error_status(&e)));
        }
        self.broker
            .send_messages(&topic, &send.partitioning, send.messages)
            .await?;
        Ok(Reply::empty())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn poll_messages(
        &self,
        consumer: Consumer,
        stream: &Identifier,
        topic: &Identifier,
        partition: Option<u32>,
        strategy: PollingStrategy,
        count: u32,
        auto_commit: bool,
    ) -> Result<Reply, BrokerError> {
        let t = self.authorized_topic(stream, topic, Action::Poll)?;
        let polled = self
            .broker
            .poll_messages(
                PollRequest {
                    client_id: self.client_id,
                    consumer,
                    stream: t.stream_id,
                    topic: t.id,
                    partition,
                    strategy,
                    count,
                    auto_commit,
                },
                self.config.max_poll_messages,
                self.config.max_poll_bytes as usize,
            )
            .await?;
        let mut parts = Vec::with_capacity(polled.messages.len() + 1);
        parts.push(poll_header(polled.partition, polled.current_offset, polled.count).freeze());
        parts.extend(polled.messages);
        Ok(Reply::Ok(parts))
    }

    pub(crate) async fn flush(
        &self,
        stream: &Identifier,
        topic: &Identifier,
        partition_id: u32,
        fsync: bool,
    ) -> Result<Reply, BrokerError> {
        let t = self.authorized_topic(stream, topic, Action::Send)?;
        self.broker
            .flush(t.stream_id, t.id, partition_id, fsync)
            .await?;
        Ok(Reply::empty())
    }
}
