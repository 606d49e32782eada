//! Consumer groups: create, get, list, delete, join and leave.

use bytes::BytesMut;
use wharf_protocol::responses::{encode_group, encode_group_member};
use wharf_protocol::Identifier;

use crate::broker::{Action, BrokerError, GroupInfo};
use crate::native::connection::Reply;
use crate::native::session::Session;

fn details(g: &GroupInfo) -> BytesMut {
    let mut out = BytesMut::new();
    encode_group(
        g.id,
        g.partitions_count,
        g.members.len() as u32,
        &g.name,
        &mut out,
    );
    for (member, partitions) in &g.members {
        encode_group_member(*member, partitions, &mut out);
    }
    out
}

impl Session {
    pub(crate) fn get_group(
        &self,
        stream: &Identifier,
        topic: &Identifier,
        group: &Identifier,
    ) -> Result<Reply, BrokerError> {
        let Ok(t) = self.topic_info(stream, topic) else {
            return Ok(Reply::empty());
        };
        self.broker
            .authorize(&self.principal()?, Action::ReadTopic(t.stream_id, t.id))?;
        match self.broker.native_group(&t, group) {
            Some(g) => Ok(Reply::body(details(&g))),
            None => Ok(Reply::empty()),
        }
    }

    pub(crate) fn get_groups(
        &self,
        stream: &Identifier,
        topic: &Identifier,
    ) -> Result<Reply, BrokerError> {
        let t = self.authorized_topic(stream, topic, Action::ReadTopic)?;
        let mut out = BytesMut::new();
        for g in self.broker.native_groups(&t) {
            encode_group(
                g.id,
                g.partitions_count,
                g.members.len() as u32,
                &g.name,
                &mut out,
            );
        }
        Ok(Reply::body(out))
    }

    pub(crate) async fn create_group(
        &self,
        stream: &Identifier,
        topic: &Identifier,
        name: &str,
    ) -> Result<Reply, BrokerError> {
        let t = self.authorized_topic(stream, topic, Action::Poll)?;
        let g = self.broker.create_native_group(&t, name).await?;
        Ok(Reply::body(details(&g)))
    }

    pub(crate) async fn delete_group(
        &self,
        stream: &Identifier,
        topic: &Identifier,
        group: &Identifier,
    ) -> Result<Reply, BrokerError> {
        let t = self.authorized_topic(stream, topic, Action::ManageTopic)?;
        self.broker.delete_native_group(&t, group).await?;
        Ok(Reply::empty())
    }

    pub(crate) fn join_group(
        &self,
        stream: &Identifier,
        topic: &Identifier,
        group: &Identifier,
    ) -> Result<Reply, BrokerError> {
        let t = self.authorized_topic(stream, topic, Action::Poll)?;
        self.broker.join_native_group(&t, group, self.client_id)?;
        Ok(Reply::empty())
    }

    pub(crate) fn leave_group(
        &self,
        stream: &Identifier,
        topic: &Identifier,
        group: &Identifier,
    ) -> Result<Reply, BrokerError> {
        let t = self.authorized_topic(stream, topic, Action::Poll)?;
        self.broker.leave_native_group(&t, group, self.client_id)?;
        Ok(Reply::empty())
    }
}
