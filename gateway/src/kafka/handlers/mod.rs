//! One module per Kafka API. Each turns the decoded request into broker calls and builds the
//! response for the request's version.

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_client_quotas;
pub mod alter_configs;
pub mod alter_partition_reassignments;
pub mod alter_replica_log_dirs;
pub mod alter_user_scram_credentials;
pub mod api_versions;
pub mod configs;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_acls;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_acls;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_acls;
pub mod describe_client_quotas;
pub mod describe_cluster;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_quorum;
pub mod describe_topic_partitions;
pub mod describe_transactions;
pub mod describe_user_scram_credentials;
pub mod elect_leaders;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_config_resources;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod produce;
pub mod sasl_authenticate;
pub mod sasl_handshake;
pub mod sync_group;
pub mod txn_offset_commit;

use std::net::SocketAddr;

use bytes::Bytes;
use kafka_protocol::protocol::StrBytes;

use super::connection::{decode, ConnectionError, ResponseBody};
use super::{versions, Door};
use crate::broker::acl::{Operation, Resource};
use crate::broker::{Broker, BrokerError, Principal, TopicInfo};
use crate::config::KafkaListener;

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
    /// The listener the connection came in on (its advertised address, its security protocol).
    pub listener: &'a KafkaListener,
    /// Who sent the request.
    pub principal: &'a Principal,
}

impl Request<'_> {
    /// The host and port metadata gives this request's client for this node.
    pub fn advertised(&self) -> (String, i32) {
        super::advertised(self.listener, self.local)
    }

    pub fn broker(&self) -> &Broker {
        &self.door.broker
    }

    /// The client's host as Kafka shows it in group descriptions (`/127.0.0.1`).
    pub fn client_host(&self) -> String {
        format!("/{}", self.peer.ip())
    }

    /// Whether the request's principal may do `op` on `resource` (one call to the core).
    pub fn may(&self, op: Operation, resource: Resource<'_>) -> bool {
        self.broker()
            .authorize_kafka(self.principal, op, resource)
            .is_ok()
    }

    /// The most bytes a Fetch answer may hold under the client's consumer byte-rate quota
    /// (`usize::MAX` without one).
    pub fn fetch_quota_max_bytes(&self) -> usize {
        self.broker()
            .fetch_quota_max_bytes(self.principal, self.client_id.as_deref().unwrap_or(""))
    }

    /// The existing topic a Kafka name points to.
    pub fn topic(&self, name: &str) -> Result<TopicInfo, BrokerError> {
        self.broker().kafka_topic(name)
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
/// SaslHandshake and SaslAuthenticate change the connection's session: the connection runs
/// them ([`super::connection`]), never this.
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
        versions::LIST_OFFSETS => answer(list_offsets::handle(req, decode(buf, v)?).await),
        versions::METADATA => answer(metadata::handle(req, decode(buf, v)?).await),
        versions::FIND_COORDINATOR => answer(find_coordinator::handle(req, decode(buf, v)?)),
        versions::OFFSET_COMMIT => answer(offset_commit::handle(req, decode(buf, v)?).await),
        versions::OFFSET_FETCH => answer(offset_fetch::handle(req, decode(buf, v)?)),
        versions::JOIN_GROUP => answer(join_group::handle(req, decode(buf, v)?).await),
        versions::HEARTBEAT => answer(heartbeat::handle(req, decode(buf, v)?)),
        versions::LEAVE_GROUP => answer(leave_group::handle(req, decode(buf, v)?)),
        versions::SYNC_GROUP => answer(sync_group::handle(req, decode(buf, v)?).await),
        versions::DESCRIBE_GROUPS => answer(describe_groups::handle(req, decode(buf, v)?)),
        versions::LIST_GROUPS => answer(list_groups::handle(req, decode(buf, v)?)),
        versions::DELETE_GROUPS => answer(delete_groups::handle(req, decode(buf, v)?).await),
        versions::OFFSET_DELETE => answer(offset_delete::handle(req, decode(buf, v)?).await),
        versions::API_VERSIONS => answer(api_versions::handle(req)),
        versions::CREATE_TOPICS => answer(create_topics::handle(req, decode(buf, v)?).await),
        versions::DELETE_TOPICS => answer(delete_topics::handle(req, decode(buf, v)?).await),
        versions::DELETE_RECORDS => answer(delete_records::handle(req, decode(buf, v)?).await),
        versions::INIT_PRODUCER_ID => answer(init_producer_id::handle(req, decode(buf, v)?).await),
        versions::ADD_PARTITIONS_TO_TXN => {
            answer(add_partitions_to_txn::handle(req, decode(buf, v)?).await)
        }
        versions::ADD_OFFSETS_TO_TXN => {
            answer(add_offsets_to_txn::handle(req, decode(buf, v)?).await)
        }
        versions::END_TXN => answer(end_txn::handle(req, decode(buf, v)?).await),
        versions::TXN_OFFSET_COMMIT => {
            answer(txn_offset_commit::handle(req, decode(buf, v)?).await)
        }
        versions::DESCRIBE_TRANSACTIONS => {
            answer(describe_transactions::handle(req, decode(buf, v)?))
        }
        versions::LIST_TRANSACTIONS => answer(list_transactions::handle(req, decode(buf, v)?)),
        versions::DESCRIBE_ACLS => answer(describe_acls::handle(req, decode(buf, v)?)),
        versions::CREATE_ACLS => answer(create_acls::handle(req, decode(buf, v)?).await),
        versions::DELETE_ACLS => answer(delete_acls::handle(req, decode(buf, v)?).await),
        versions::DESCRIBE_CONFIGS => answer(configs::describe(req, decode(buf, v)?)),
        versions::CREATE_PARTITIONS => {
            answer(create_partitions::handle(req, decode(buf, v)?).await)
        }
        versions::ALTER_CONFIGS => answer(alter_configs::handle(req, decode(buf, v)?).await),
        versions::INCREMENTAL_ALTER_CONFIGS => {
            answer(configs::incremental_alter(req, decode(buf, v)?).await)
        }
        versions::DESCRIBE_CLUSTER => answer(describe_cluster::handle(req, decode(buf, v)?)),
        versions::DESCRIBE_USER_SCRAM_CREDENTIALS => answer(
            describe_user_scram_credentials::handle(req, decode(buf, v)?),
        ),
        versions::ALTER_USER_SCRAM_CREDENTIALS => {
            answer(alter_user_scram_credentials::handle(req, decode(buf, v)?).await)
        }
        versions::CONSUMER_GROUP_HEARTBEAT => {
            answer(consumer_group_heartbeat::handle(req, decode(buf, v)?).await)
        }
        versions::CONSUMER_GROUP_DESCRIBE => {
            answer(consumer_group_describe::handle(req, decode(buf, v)?).await)
        }
        versions::DESCRIBE_TOPIC_PARTITIONS => {
            answer(describe_topic_partitions::handle(req, decode(buf, v)?).await)
        }
        versions::DESCRIBE_LOG_DIRS => {
            answer(describe_log_dirs::handle(req, decode(buf, v)?).await)
        }
        versions::ALTER_REPLICA_LOG_DIRS => {
            answer(alter_replica_log_dirs::handle(req, decode(buf, v)?).await)
        }
        versions::ELECT_LEADERS => answer(elect_leaders::handle(req, decode(buf, v)?).await),
        versions::LIST_PARTITION_REASSIGNMENTS => {
            answer(list_partition_reassignments::handle(req, decode(buf, v)?).await)
        }
        versions::ALTER_PARTITION_REASSIGNMENTS => {
            answer(alter_partition_reassignments::handle(req, decode(buf, v)?).await)
        }
        versions::DESCRIBE_QUORUM => answer(describe_quorum::handle(req, decode(buf, v)?).await),
        versions::LIST_CONFIG_RESOURCES => {
            answer(list_config_resources::handle(req, decode(buf, v)?).await)
        }
        versions::DESCRIBE_PRODUCERS => {
            answer(describe_producers::handle(req, decode(buf, v)?).await)
        }
        versions::DESCRIBE_CLIENT_QUOTAS => {
            answer(describe_client_quotas::handle(req, decode(buf, v)?).await)
        }
        versions::ALTER_CLIENT_QUOTAS => {
            answer(alter_client_quotas::handle(req, decode(buf, v)?).await)
        }
        other => return Err(ConnectionError::Unsupported(other, v)),
    })
}
