//! Streams, topics, partitions and segments.

use std::time::Duration;

use bytes::BytesMut;
use wharf_protocol::requests::{Limit, TopicConfigChange};
use wharf_protocol::responses::TopicConfigWire;
use wharf_protocol::Identifier;

use crate::broker::topic_config::{AlterMode, ConfigChange};
use crate::broker::{Action, BrokerError, Durability, Ident, TopicSettings};
use crate::native::connection::Reply;
use crate::native::session::{ident, Session};

fn expiry(limit: Limit) -> Option<Duration> {
    match limit {
        Limit::Value(us) => Some(Duration::from_micros(us)),
        Limit::ServerDefault | Limit::Unlimited => None,
    }
}

fn max_size(limit: Limit) -> Option<u64> {
    match limit {
        Limit::Value(bytes) => Some(bytes),
        Limit::ServerDefault | Limit::Unlimited => None,
    }
}

impl Session {
    fn stream_details(&self, id: u32) -> Result<BytesMut, BrokerError> {
        let (stream, topics) = self.stream_wire(id)?;
        let mut out = BytesMut::new();
        stream.encode(&mut out);
        for t in &topics {
            t.encode(&mut out);
        }
        Ok(out)
    }

    fn topic_details(&self, stream: u32, topic: u32) -> Result<BytesMut, BrokerError> {
        let info = self.broker.topic(Ident::Id(stream), Ident::Id(topic))?;
        let (topic, partitions) = self.topic_wire(&info);
        let mut out = BytesMut::new();
        topic.encode(&mut out);
        for p in &partitions {
            p.encode(&mut out);
        }
        Ok(out)
    }

    pub(crate) fn get_stream(&self, id: &Identifier) -> Result<Reply, BrokerError> {
        let Ok(stream) = self.broker.stream(ident(id)) else {
            return Ok(Reply::empty());
        };
        if !self
            .user()?
            .permissions()
            .allows(Action::ReadStream(stream.id))
        {
            return Ok(Reply::empty());
        }
        Ok(Reply::body(self.stream_details(stream.id)?))
    }

    pub(crate) fn get_streams(&self) -> Result<Reply, BrokerError> {
        let perms = self.user()?.permissions();
        let mut out = BytesMut::new();
        for s in self.broker.streams() {
            if perms.allows(Action::ReadStream(s.id)) {
                self.stream_wire(s.id)?.0.encode(&mut out);
            }
        }
        Ok(Reply::body(out))
    }

    pub(crate) async fn create_stream(&self, name: &str) -> Result<Reply, BrokerError> {
        self.broker
            .authorize(&self.principal()?, Action::ManageStreams)?;
        let stream = self.broker.create_stream(name).await?;
        Ok(Reply::body(self.stream_details(stream.id)?))
    }

    pub(crate) async fn update_stream(
        &self,
        id: &Identifier,
        name: &str,
    ) -> Result<Reply, BrokerError> {
        let stream = self.broker.stream(ident(id))?;
        self.broker
            .authorize(&self.principal()?, Action::ManageStream(stream.id))?;
        self.broker.rename_stream(stream.id, name).await?;
        Ok(Reply::empty())
    }

    pub(crate) async fn delete_stream(&self, id: &Identifier) -> Result<Reply, BrokerError> {
        let stream = self.broker.stream(ident(id))?;
        self.broker
            .authorize(&self.principal()?, Action::ManageStream(stream.id))?;
        self.broker.delete_stream(stream.id).await?;
        Ok(Reply::empty())
    }

    pub(crate) async fn purge_stream(&self, id: &Identifier) -> Result<Reply, BrokerError> {
        let stream = self.broker.stream(ident(id))?;
        self.broker
            .authorize(&self.principal()?, Action::ManageStream(stream.id))?;
        self.broker.purge_stream(stream.id).await?;
        Ok(Reply::empty())
    }

    pub(crate) fn get_topic(
        &self,
        stream: &Identifier,
        topic: &Identifier,
    ) -> Result<Reply, BrokerError> {
        let Ok(t) = self.topic_info(stream, topic) else {
            return Ok(Reply::empty());
        };
        if !self
            .user()?
            .permissions()
            .allows(Action::ReadTopic(t.stream_id, t.id))
        {
            return Ok(Reply::empty());
        }
        Ok(Reply::body(self.topic_details(t.stream_id, t.id)?))
    }

    pub(crate) fn get_topics(&self, stream: &Identifier) -> Result<Reply, BrokerError> {
        let s = self.broker.stream(ident(stream))?;
        let perms = self.user()?.permissions();
        let mut out = BytesMut::new();
        for t in self.broker.topics(s.id)? {
            if perms.allows(Action::ReadTopic(s.id, t.id)) {
                self.topic_wire(&t).0.encode(&mut out);
            }
        }
        Ok(Reply::body(out))
    }

    pub(crate) async fn create_topic(
        &self,
        stream: &Identifier,
        partitions: u32,
        message_expiry: Limit,
        max_topic_size: Limit,
        name: &str,
    ) -> Result<Reply, BrokerError> {
        let s = self.broker.stream(ident(stream))?;
        self.broker
            .authorize(&self.principal()?, Action::CreateTopic(s.id))?;
        let settings = TopicSettings {
            message_expiry: expiry(message_expiry),
            max_size: max_size(max_topic_size),
            ..TopicSettings::default()
        };
        let t = self
            .broker
            .create_topic(s.id, name, partitions, settings)
            .await?;
        Ok(Reply::body(self.topic_details(s.id, t.id)?))
    }

    pub(crate) async fn update_topic(
        &self,
        stream: &Identifier,
        topic: &Identifier,
        message_expiry: Limit,
        max_topic_size: Limit,
        name: &str,
    ) -> Result<Reply, BrokerError> {
        let t = self.authorized_topic(stream, topic, Action::ManageTopic)?;
        let settings = TopicSettings {
            message_expiry: expiry(message_expiry),
            max_size: max_size(max_topic_size),
            ..t.settings.clone()
        };
        self.broker
            .update_topic(t.stream_id, t.id, Some(name), settings)
            .await?;
        Ok(Reply::empty())
    }

    pub(crate) async fn delete_topic(
        &self,
        stream: &Identifier,
        topic: &Identifier,
    ) -> Result<Reply, BrokerError> {
        let t = self.authorized_topic(stream, topic, Action::ManageTopic)?;
        self.broker.delete_topic(t.stream_id, t.id).await?;
        Ok(Reply::empty())
    }

    pub(crate) async fn purge_topic(
        &self,
        stream: &Identifier,
        topic: &Identifier,
    ) -> Result<Reply, BrokerError> {
        let t = self.authorized_topic(stream, topic, Action::ManageTopic)?;
        self.broker.purge_topic(t.stream_id, t.id).await?;
        Ok(Reply::empty())
    }

    pub(crate) async fn create_partitions(
        &self,
        stream: &Identifier,
        topic: &Identifier,
        count: u32,
    ) -> Result<Reply, BrokerError> {
        let t = self.authorized_topic(stream, topic, Action::ManageTopic)?;
        self.broker.add_partitions(t.stream_id, t.id, count).await?;
        Ok(Reply::empty())
    }

    pub(crate) async fn delete_partitions(
        &self,
        stream: &Identifier,
        topic: &Identifier,
        count: u32,
    ) -> Result<Reply, BrokerError> {
        let t = self.authorized_topic(stream, topic, Action::ManageTopic)?;
        self.broker
            .remove_partitions(t.stream_id, t.id, count)
            .await?;
        Ok(Reply::empty())
    }

    pub(crate) async fn delete_segments(
        &self,
        stream: &Identifier,
        topic: &Identifier,
        partition: u32,
        count: u32,
    ) -> Result<Reply, BrokerError> {
        let t = self.authorized_topic(stream, topic, Action::ManageTopic)?;
        self.broker
            .delete_segments(t.stream_id, t.id, partition, count)
            .await?;
        Ok(Reply::empty())
    }

    /// Wharf's extension: a topic's durability (0 server default, 1 os, 2 fsync).
    pub(crate) fn get_topic_durability(
        &self,
        stream: &Identifier,
        topic: &Identifier,
    ) -> Result<Reply, BrokerError> {
        let t = self.authorized_topic(stream, topic, Action::ReadTopic)?;
        let code = match t.settings.durability {
            None => 0u8,
            Some(Durability::Os) => 1,
            Some(Durability::Fsync) => 2,
        };
        // A one-byte OK answer would read as empty to Iggy clients; pad to two.
        Ok(Reply::body(BytesMut::from(&[code, 0][..])))
    }

    /// Wharf's extension: sets a topic's durability.
    pub(crate) async fn set_topic_durability(
        &self,
        stream: &Identifier,
        topic: &Identifier,
        durability: u8,
    ) -> Result<Reply, BrokerError> {
        let t = self.authorized_topic(stream, topic, Action::ManageTopic)?;
        let settings = TopicSettings {
            durability: match durability {
                1 => Some(Durability::Os),
                2 => Some(Durability::Fsync),
                _ => None,
            },
            ..t.settings.clone()
        };
        self.broker
            .update_topic(t.stream_id, t.id, None, settings)
            .await?;
        Ok(Reply::empty())
    }

    /// Wharf's extension: a topic's configs under Kafka's names, with their sources.
    pub(crate) fn get_topic_config(
        &self,
        stream: &Identifier,
        topic: &Identifier,
    ) -> Result<Reply, BrokerError> {
        let t = self.authorized_topic(stream, topic, Action::ReadTopic)?;
        let mut out = BytesMut::new();
        for e in self.broker.topic_config(&t) {
            TopicConfigWire {
                name: e.name,
                value: e.value,
                source: e.source.name().into(),
            }
            .encode(&mut out);
        }
        Ok(Reply::body(out))
    }

    /// Wharf's extension: sets or resets some of a topic's configs, with the rules Kafka's
    /// IncrementalAlterConfigs follows (the broker core's); a refused config is
    /// InvalidConfiguration and changes nothing.
    pub(crate) async fn set_topic_config(
        &self,
        stream: &Identifier,
        topic: &Identifier,
        changes: Vec<TopicConfigChange>,
    ) -> Result<Reply, BrokerError> {
        let t = self.authorized_topic(stream, topic, Action::ManageTopic)?;
        let changes = changes
            .into_iter()
            .map(|c| match c.value {
                Some(v) => ConfigChange::set(c.name, v),
                None => ConfigChange::delete(c.name),
            })
            .collect();
        self.broker
            .alter_topic_config(t.stream_id, t.id, AlterMode::Incremental, changes, false)
            .await?;
        Ok(Reply::empty())
    }
}
