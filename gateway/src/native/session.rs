//! Per-connection state and dispatch: decode a request, check the connection may send it, run
//! it, and turn the outcome into a reply.

use std::sync::Arc;

use bytes::BytesMut;
use wharf_protocol::requests::{
    ChangePassword, CreateConsumerGroup, CreatePartitions, CreatePersonalAccessToken, CreateStream,
    CreateTopic, CreateUser, DeleteConsumerGroup, DeleteConsumerOffset, DeletePartitions,
    DeletePersonalAccessToken, DeleteSegments, DeleteStream, DeleteTopic, DeleteUser,
    FlushUnsavedBuffer, GetClient, GetClients, GetClusterMetadata, GetConsumerGroup,
    GetConsumerGroups, GetConsumerOffset, GetMe, GetPersonalAccessTokens, GetStats, GetStream,
    GetStreams, GetTopic, GetTopicConfig, GetTopicDurability, GetTopics, GetUser, GetUsers,
    JoinConsumerGroup, LeaveConsumerGroup, LoginUser, LoginWithPersonalAccessToken, LogoutUser,
    Ping, PollMessages, PurgeStream, PurgeTopic, RequestError, SetTopicConfig, SetTopicDurability,
    StoreConsumerOffset, UpdatePermissions, UpdateStream, UpdateTopic, UpdateUser,
};
use wharf_protocol::{codes, Identifier, Request};

use super::connection::Reply;
use super::errors::{code, status_for};
use crate::broker::{Broker, BrokerError, Ident, Principal, User};
use crate::config::NativeConfig;

/// One connection's view of the broker. Which user it is logged in as is kept in the broker's
/// client registry, not here, so the broker can end the session (a password change does).
#[derive(Debug)]
pub struct Session {
    pub(super) broker: Arc<Broker>,
    pub(super) client_id: u32,
    pub(super) config: Arc<NativeConfig>,
}

/// A look-up key from a wire identifier.
pub(super) fn ident(id: &Identifier) -> Ident<'_> {
    crate::broker::offsets::group_ident(id)
}

impl Session {
    pub fn new(broker: Arc<Broker>, client_id: u32, config: Arc<NativeConfig>) -> Session {
        Session {
            broker,
            client_id,
            config,
        }
    }

    /// The logged-in user, read afresh so permission changes apply at once.
    pub(super) fn user(&self) -> Result<User, BrokerError> {
        let user = self
            .broker
            .client_user(self.client_id)
            .and_then(|id| self.broker.user(id))
            .ok_or(BrokerError::Unauthenticated)?;
        if user.status != crate::broker::users::UserStatus::Active {
            return Err(BrokerError::UserInactive);
        }
        Ok(user)
    }

    /// The logged-in user as authorization sees them.
    pub(super) fn principal(&self) -> Result<Principal, BrokerError> {
        self.user().map(|u| Principal::User(u.id))
    }

    /// True once a user has logged in on this connection.
    pub fn authenticated(&self) -> bool {
        self.broker.client_user(self.client_id).is_some()
    }

    /// The peer's IP address (from the client registry), which failed logins count against.
    pub(super) fn peer(&self) -> Result<std::net::IpAddr, BrokerError> {
        self.broker
            .client(self.client_id)
            .map(|c| c.address.ip())
            .ok_or_else(|| BrokerError::Internal("connection not registered".into()))
    }

    pub async fn handle(&mut self, code_value: u32, payload: BytesMut) -> Reply {
        let result = if code_value == codes::SEND_MESSAGES {
            self.send_messages(payload).await
        } else {
            match Request::decode(code_value, &payload) {
                Ok(request) => self.dispatch(request).await,
                Err(RequestError::UnknownCommand(c)) => {
                    tracing::debug!(client_id = self.client_id, "unknown command {c}");
                    return Reply::Error(code::INVALID_COMMAND);
                }
                Err(RequestError::Unsupported(c)) => {
                    tracing::debug!(client_id = self.client_id, "unsupported command {c}");
                    return Reply::Error(code::FEATURE_UNAVAILABLE);
                }
                Err(RequestError::Malformed(e)) => {
                    tracing::debug!(
                        client_id = self.client_id,
                        "malformed {}: {e}",
                        codes::command_name(code_value).unwrap_or("request")
                    );
                    return Reply::Error(code::INVALID_FORMAT);
                }
            }
        };
        match result {
            Ok(reply) => reply,
            Err(e) => {
                match &e {
                    // The server's own failures (a full disk under load) are logged in full,
                    // but at most once per interval.
                    e if e.is_internal() => crate::broker::log_server_failure(
                        codes::command_name(code_value).unwrap_or("request"),
                        e,
                    ),
                    _ => tracing::debug!(
                        client_id = self.client_id,
                        "{}: {e}",
                        codes::command_name(code_value).unwrap_or("request")
                    ),
                }
                Reply::Error(status_for(&e))
            }
        }
    }

    async fn dispatch(&mut self, request: Request) -> Result<Reply, BrokerError> {
        use Request as R;
        // Only these work before login.
        if !matches!(
            request,
            R::Ping(_) | R::LoginUser(_) | R::LoginWithPersonalAccessToken(_)
        ) {
            self.user()?;
        }
        match request {
            R::Ping(Ping) => Ok(Reply::empty()),
            R::GetStats(GetStats) => self.get_stats(),
            R::GetClusterMetadata(GetClusterMetadata) => self.get_cluster_metadata(),
            R::GetMe(GetMe) => self.get_client(self.client_id, true),
            R::GetClient(GetClient { client_id }) => self.get_client(client_id, false),
            R::GetClients(GetClients) => self.get_clients(),
            R::LoginUser(LoginUser {
                username, password, ..
            }) => self.login(&username, &password).await,
            R::LoginWithPersonalAccessToken(LoginWithPersonalAccessToken { token }) => {
                self.login_with_token(&token).await
            }
            R::LogoutUser(LogoutUser) => {
                self.broker.set_client_user(self.client_id, None);
                Ok(Reply::empty())
            }
            R::GetUser(GetUser { user_id }) => self.get_user(&user_id),
            R::GetUsers(GetUsers) => self.get_users(),
            R::CreateUser(CreateUser {
                username,
                password,
                active,
                permissions,
            }) => {
                self.create_user(username, password, active, permissions)
                    .await
            }
            R::DeleteUser(DeleteUser { user_id }) => self.delete_user(&user_id).await,
            R::UpdateUser(UpdateUser {
                user_id,
                username,
                active,
            }) => self.update_user(&user_id, username, active).await,
            R::UpdatePermissions(UpdatePermissions {
                user_id,
                permissions,
            }) => self.update_permissions(&user_id, permissions).await,
            R::ChangePassword(ChangePassword {
                user_id,
                current,
                new,
            }) => self.change_password(&user_id, current, new).await,
            R::GetPersonalAccessTokens(GetPersonalAccessTokens) => self.get_tokens(),
            R::CreatePersonalAccessToken(CreatePersonalAccessToken { name, expiry }) => {
                self.create_token(name, expiry).await
            }
            R::DeletePersonalAccessToken(DeletePersonalAccessToken { name }) => {
                self.delete_token(name).await
            }
            R::GetStream(GetStream { stream_id }) => self.get_stream(&stream_id),
            R::GetStreams(GetStreams) => self.get_streams(),
            R::CreateStream(CreateStream { name }) => self.create_stream(&name).await,
            R::DeleteStream(DeleteStream { stream_id }) => self.delete_stream(&stream_id).await,
            R::UpdateStream(UpdateStream { stream_id, name }) => {
                self.update_stream(&stream_id, &name).await
            }
            R::PurgeStream(PurgeStream { stream_id }) => self.purge_stream(&stream_id).await,
            R::GetTopic(GetTopic {
                stream_id,
                topic_id,
            }) => self.get_topic(&stream_id, &topic_id),
            R::GetTopics(GetTopics { stream_id }) => self.get_topics(&stream_id),
            R::CreateTopic(CreateTopic {
                stream_id,
                partitions_count,
                message_expiry,
                max_topic_size,
                name,
                ..
            }) => {
                self.create_topic(
                    &stream_id,
                    partitions_count,
                    message_expiry,
                    max_topic_size,
                    &name,
                )
                .await
            }
            R::UpdateTopic(UpdateTopic {
                stream_id,
                topic_id,
                message_expiry,
                max_topic_size,
                name,
                ..
            }) => {
                self.update_topic(&stream_id, &topic_id, message_expiry, max_topic_size, &name)
                    .await
            }
            R::DeleteTopic(DeleteTopic {
                stream_id,
                topic_id,
            }) => self.delete_topic(&stream_id, &topic_id).await,
            R::PurgeTopic(PurgeTopic {
                stream_id,
                topic_id,
            }) => self.purge_topic(&stream_id, &topic_id).await,
            R::CreatePartitions(CreatePartitions {
                stream_id,
                topic_id,
                count,
            }) => self.create_partitions(&stream_id, &topic_id, count).await,
            R::DeletePartitions(DeletePartitions {
                stream_id,
                topic_id,
                count,
            }) => self.delete_partitions(&stream_id, &topic_id, count).await,
            R::DeleteSegments(DeleteSegments {
                stream_id,
                topic_id,
                partition_id,
                count,
            }) => {
                self.delete_segments(&stream_id, &topic_id, partition_id, count)
                    .await
            }
            R::PollMessages(PollMessages {
                consumer,
                stream_id,
                topic_id,
                partition_id,
                strategy,
                count,
                auto_commit,
            }) => {
                self.poll_messages(
                    consumer,
                    &stream_id,
                    &topic_id,
                    partition_id,
                    strategy,
                    count,
                    auto_commit,
                )
                .await
            }
            R::FlushUnsavedBuffer(FlushUnsavedBuffer {
                stream_id,
                topic_id,
                partition_id,
                fsync,
            }) => self.flush(&stream_id, &topic_id, partition_id, fsync).await,
            R::GetConsumerOffset(GetConsumerOffset {
                consumer,
                stream_id,
                topic_id,
                partition_id,
            }) => self.get_offset(&consumer, &stream_id, &topic_id, partition_id),
            R::StoreConsumerOffset(StoreConsumerOffset {
                consumer,
                stream_id,
                topic_id,
                partition_id,
                offset,
            }) => {
                self.store_offset(&consumer, &stream_id, &topic_id, partition_id, offset)
                    .await
            }
            R::DeleteConsumerOffset(DeleteConsumerOffset {
                consumer,
                stream_id,
                topic_id,
                partition_id,
            }) => {
                self.delete_offset(&consumer, &stream_id, &topic_id, partition_id)
                    .await
            }
            R::GetConsumerGroup(GetConsumerGroup {
                stream_id,
                topic_id,
                group_id,
            }) => self.get_group(&stream_id, &topic_id, &group_id),
            R::GetConsumerGroups(GetConsumerGroups {
                stream_id,
                topic_id,
            }) => self.get_groups(&stream_id, &topic_id),
            R::CreateConsumerGroup(CreateConsumerGroup {
                stream_id,
                topic_id,
                name,
            }) => self.create_group(&stream_id, &topic_id, &name).await,
            R::DeleteConsumerGroup(DeleteConsumerGroup {
                stream_id,
                topic_id,
                group_id,
            }) => self.delete_group(&stream_id, &topic_id, &group_id).await,
            R::JoinConsumerGroup(JoinConsumerGroup {
                stream_id,
                topic_id,
                group_id,
            }) => self.join_group(&stream_id, &topic_id, &group_id),
            R::LeaveConsumerGroup(LeaveConsumerGroup {
                stream_id,
                topic_id,
                group_id,
            }) => self.leave_group(&stream_id, &topic_id, &group_id),
            R::GetTopicDurability(GetTopicDurability {
                stream_id,
                topic_id,
            }) => self.get_topic_durability(&stream_id, &topic_id),
            R::SetTopicDurability(SetTopicDurability {
                stream_id,
                topic_id,
                durability,
            }) => {
                self.set_topic_durability(&stream_id, &topic_id, durability)
                    .await
            }
            R::GetTopicConfig(GetTopicConfig {
                stream_id,
                topic_id,
            }) => self.get_topic_config(&stream_id, &topic_id),
            R::SetTopicConfig(SetTopicConfig {
                stream_id,
                topic_id,
                changes,
            }) => self.set_topic_config(&stream_id, &topic_id, changes).await,
            R::GetConsumerLag(c) => self.get_consumer_lag(c.group.as_deref()),
            R::GetMetricsSnapshot(c) => self.get_metrics_snapshot(c.lag_rows),
        }
    }

    /// Called when the connection ends: the client leaves its groups and the registry.
    pub fn close(&mut self) {
        self.broker.disconnect(self.client_id);
    }
}
