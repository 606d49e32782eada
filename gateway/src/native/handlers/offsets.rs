//! Consumer offsets. Iggy speaks of the last consumed offset; the store keeps the next offset to
//! read (Kafka's meaning), so a stored `n` is `n + 1` here and comes back as `n`.

use bytes::BytesMut;
use wharf_log_store::{CommittedOffset, Ident, OffsetKey, OffsetOwner};
use wharf_protocol::responses::encode_consumer_offset;
use wharf_protocol::{Consumer, Identifier};

use crate::broker::{now_us, Action, BrokerError};
use crate::native::connection::Reply;
use crate::native::session::{ident, Session};

impl Session {
    /// Whose offsets these are: a consumer by its id or name, or a group by its name (so Kafka
    /// groups of the same name share them).
    pub(crate) fn offset_owner(
        &self,
        consumer: &Consumer,
        stream: u32,
        topic: u32,
    ) -> Result<OffsetOwner, BrokerError> {
        Ok(match consumer {
            Consumer::Single(Identifier::Numeric(n)) => OffsetOwner::Consumer(n.to_string()),
            Consumer::Single(Identifier::Name(s)) => OffsetOwner::Consumer(s.clone()),
            Consumer::Group(g) => OffsetOwner::Group(
                self.broker
                    .groups
                    .name_of(stream, topic, ident(g))
                    .ok_or_else(|| BrokerError::GroupNotFound(g.to_string()))?,
            ),
        })
    }

    pub(crate) fn commit(&self, key: OffsetKey, next_offset: u64) -> Result<(), BrokerError> {
        let value = CommittedOffset {
            next_offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: now_us(),
        };
        self.broker.store.offsets().commit(key, value)?;
        Ok(())
    }

    fn offset_key(
        &self,
        consumer: &Consumer,
        stream: &Identifier,
        topic: &Identifier,
        partition: Option<u32>,
    ) -> Result<(OffsetKey, u64), BrokerError> {
        let t = self.authorized_topic(stream, topic, Action::Poll)?;
        let partition = partition.unwrap_or(0);
        let p = self
            .broker
            .store
            .partition(Ident::Id(t.stream_id), Ident::Id(t.id), partition)?;
        let key = OffsetKey {
            owner: self.offset_owner(consumer, t.stream_id, t.id)?,
            stream: t.stream_id,
            topic: t.id,
            partition,
        };
        Ok((key, p.high_watermark()))
    }

    pub(crate) fn get_offset(
        &self,
        consumer: &Consumer,
        stream: &Identifier,
        topic: &Identifier,
        partition: Option<u32>,
    ) -> Result<Reply, BrokerError> {
        let (key, hw) = match self.offset_key(consumer, stream, topic, partition) {
            Ok(k) => k,
            Err(BrokerError::GroupNotFound(_)) => return Ok(Reply::empty()),
            Err(e) => return Err(e),
        };
        match self.broker.store.offsets().get(&key) {
            Some(c) if c.next_offset > 0 => {
                let mut out = BytesMut::new();
                encode_consumer_offset(
                    key.partition,
                    hw.saturating_sub(1),
                    c.next_offset - 1,
                    &mut out,
                );
                Ok(Reply::body(out))
            }
            _ => Ok(Reply::empty()),
        }
    }

    pub(crate) fn store_offset(
        &self,
        consumer: &Consumer,
        stream: &Identifier,
        topic: &Identifier,
        partition: Option<u32>,
        offset: u64,
    ) -> Result<Reply, BrokerError> {
        let (key, _) = self.offset_key(consumer, stream, topic, partition)?;
        self.commit(key, offset.saturating_add(1))?;
        Ok(Reply::empty())
    }

    pub(crate) fn delete_offset(
        &self,
        consumer: &Consumer,
        stream: &Identifier,
        topic: &Identifier,
        partition: Option<u32>,
    ) -> Result<Reply, BrokerError> {
        let (key, _) = self.offset_key(consumer, stream, topic, partition)?;
        if !self.broker.store.offsets().delete(&key)? {
            return Err(BrokerError::OffsetNotFound);
        }
        Ok(Reply::empty())
    }
}
