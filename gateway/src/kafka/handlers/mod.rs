//! One module per Kafka API. Each turns the decoded request into broker calls and builds the
//! response for the request's version.

pub mod api_versions;
pub mod configs;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_groups;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod produce;
pub mod sync_group;

use std::net::SocketAddr;

use bytes::Bytes;
use kafka_protocol::protocol::StrBytes;
use wharf_log_store::{Ident, Partition};

use super::connection::{decode, ConnectionError, ResponseBody};
use super::{names, versions, Door};
use crate::broker::{Broker, BrokerError};
use wharf_log_store::TopicInfo;

/// What a handler knows about the request in hand.
#[derive(Debug)]
pub struct Request<'a> {
    pub door: &'a Door,
    /// The address the client reached us on (what metadata advertises by default).
    pub local: SocketAddr,
    /// The client's address (what DescribeGroups shows as a member's host).
    pub peer: SocketAddr,
    pub version: i16,
    pub client_id: Option<String>,
}

impl Request<'_> {
    pub fn broker(&self) -> &Broker {
        &self.door.broker
    }

    /// The client's host as Kafka shows it in group descriptions (`/127.0.0.1`).
    pub fn client_host(&self) -> String {
        format!("/{}", self.peer.ip())
    }

    pub fn default_stream(&self) -> &str {
        &self.door.config.default_stream
    }

    /// The existing topic a Kafka name points to.
    pub fn topic(&self, name: &str) -> Result<TopicInfo, BrokerError> {
        names::resolve(self.broker(), self.default_stream(), name)
    }

    /// A partition of a topic, by Kafka's i32 index.
    pub fn partition(
        &self,
        t: &TopicInfo,
        index: i32,
    ) -> Result<std::sync::Arc<Partition>, BrokerError> {
        let p = u32::try_from(index).map_err(|_| BrokerError::PartitionNotFound(u32::MAX))?;
        Ok(self
            .broker()
            .store
            .partition(Ident::Id(t.stream_id), Ident::Id(t.id), p)?)
    }
}

/// `s` as the crate's string type.
pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

type Answer = Option<Box<dyn ResponseBody>>;

fn answer<T: ResponseBody + 'static>(body: T) -> Answer {
    Some(Box::new(body))
}

/// Decodes the body of an (already accepted and guarded) request and runs its handler.
pub async fn dispatch(
    req: &Request<'_>,
    api_key: i16,
    buf: &mut Bytes,
) -> Result<Answer, ConnectionError> {
    let v = req.version;
    Ok(match api_key {
        versions::PRODUCE => produce::handle(req, decode(buf, v)?)
            .await
            .map(|r| Box::new(r) as Box<dyn ResponseBody>),
        versions::FETCH => answer(fetch::handle(req, decode(buf, v)?).await),
        versions::LIST_OFFSETS => answer(list_offsets::handle(req, decode(buf, v)?)),
        versions::METADATA => answer(metadata::handle(req, decode(buf, v)?)),
        versions::FIND_COORDINATOR => answer(find_coordinator::handle(req, decode(buf, v)?)),
        versions::OFFSET_COMMIT => answer(offset_commit::handle(req, decode(buf, v)?)),
        versions::OFFSET_FETCH => answer(offset_fetch::handle(req, decode(buf, v)?)),
        versions::JOIN_GROUP => answer(join_group::handle(req, decode(buf, v)?).await),
        versions::HEARTBEAT => answer(heartbeat::handle(req, decode(buf, v)?)),
        versions::LEAVE_GROUP => answer(leave_group::handle(req, decode(buf, v)?)),
        versions::SYNC_GROUP => answer(sync_group::handle(req, decode(buf, v)?).await),
        versions::DESCRIBE_GROUPS => answer(describe_groups::handle(req, decode(buf, v)?)),
        versions::LIST_GROUPS => answer(list_groups::handle(req, decode(buf, v)?)),
        versions::DELETE_GROUPS => answer(delete_groups::handle(req, decode(buf, v)?)),
        versions::OFFSET_DELETE => answer(offset_delete::handle(req, decode(buf, v)?)),
        versions::API_VERSIONS => answer(api_versions::handle(req)),
        versions::CREATE_TOPICS => answer(create_topics::handle(req, decode(buf, v)?)),
        versions::DELETE_TOPICS => answer(delete_topics::handle(req, decode(buf, v)?)),
        versions::DELETE_RECORDS => answer(delete_records::handle(req, decode(buf, v)?)),
        versions::INIT_PRODUCER_ID => answer(init_producer_id::handle(req, decode(buf, v)?)),
        versions::DESCRIBE_CONFIGS => answer(configs::describe(req, decode(buf, v)?)),
        versions::CREATE_PARTITIONS => answer(create_partitions::handle(req, decode(buf, v)?)),
        versions::INCREMENTAL_ALTER_CONFIGS => {
            answer(configs::incremental_alter(req, decode(buf, v)?))
        }
        versions::DESCRIBE_CLUSTER => answer(describe_cluster::handle(req)),
        other => return Err(ConnectionError::Unsupported(other, v)),
    })
}
