//! Consumer offsets. Iggy speaks of the last consumed offset; the broker converts to and from
//! the next offset to read that it stores (Kafka's meaning).

use bytes::BytesMut;
use wharf_protocol::responses::encode_consumer_offset;
use wharf_protocol::{Consumer, Identifier};

use crate::broker::{Action, BrokerError};
use crate::native::connection::Reply;
use crate::native::session::Session;

impl Session {
    pub(crate) fn get_offset(
        &self,
        consumer: &Consumer,
        stream: &Identifier,
        topic: &Identifier,
        partition: Option<u32>,
    ) -> Result<Reply, BrokerError> {
        let t = self.authorized_topic(stream, topic, Action::Poll)?;
        match self.broker.consumer_offset(consumer, &t, partition)? {
            Some(p) => {
                let mut out = BytesMut::new();
                encode_consumer_offset(p.partition, p.current_offset, p.stored_offset, &mut out);
                Ok(Reply::body(out))
            }
            None => Ok(Reply::empty()),
        }
    }

    pub(crate) async fn store_offset(
        &self,
        consumer: &Consumer,
        stream: &Identifier,
        topic: &Identifier,
        partition: Option<u32>,
        offset: u64,
    ) -> Result<Reply, BrokerError> {
        let t = self.authorized_topic(stream, topic, Action::Poll)?;
        self.broker
            .store_consumer_offset(consumer, &t, partition, offset)
            .await?;
        Ok(Reply::empty())
    }

    pub(crate) async fn delete_offset(
        &self,
        consumer: &Consumer,
        stream: &Identifier,
        topic: &Identifier,
        partition: Option<u32>,
    ) -> Result<Reply, BrokerError> {
        let t = self.authorized_topic(stream, topic, Action::Poll)?;
        self.broker
            .delete_consumer_offset(consumer, &t, partition)
            .await?;
        Ok(Reply::empty())
    }
}
