//! Logins, users and personal access tokens.

use bytes::BytesMut;
use wharf_protocol::requests::{
    Limit, WirePermissions, WireStreamPermissions, WireTopicPermissions,
};
use wharf_protocol::responses::{encode_identity, encode_token_info, UserWire};
use wharf_protocol::wire::WriteExt;
use wharf_protocol::Identifier;

use crate::broker::users::{GlobalPermissions, StreamPermissions, TopicPermissions, UserStatus};
use crate::broker::{Action, BrokerError, Permissions, Principal, User};
use crate::native::connection::Reply;
use crate::native::session::Session;

pub(crate) fn from_wire(w: WirePermissions) -> Permissions {
    let g = w.global;
    Permissions {
        global: GlobalPermissions {
            manage_servers: g[0],
            read_servers: g[1],
            manage_users: g[2],
            read_users: g[3],
            manage_streams: g[4],
            read_streams: g[5],
            manage_topics: g[6],
            read_topics: g[7],
            poll_messages: g[8],
            send_messages: g[9],
        },
        streams: w
            .streams
            .into_iter()
            .map(|s| {
                let f = s.flags;
                let perms = StreamPermissions {
                    manage_stream: f[0],
                    read_stream: f[1],
                    manage_topics: f[2],
                    read_topics: f[3],
                    poll_messages: f[4],
                    send_messages: f[5],
                    topics: s
                        .topics
                        .into_iter()
                        .map(|t| {
                            let f = t.flags;
                            (
                                t.topic_id,
                                TopicPermissions {
                                    manage_topic: f[0],
                                    read_topic: f[1],
                                    poll_messages: f[2],
                                    send_messages: f[3],
                                },
                            )
                        })
                        .collect(),
                };
                (s.stream_id, perms)
            })
            .collect(),
        // Not on Iggy's wire: kept by `set_native_permissions`.
        groups: Vec::new(),
        transactional_ids: Vec::new(),
    }
}

pub(crate) fn to_wire(p: &Permissions) -> WirePermissions {
    let g = &p.global;
    WirePermissions {
        global: [
            g.manage_servers,
            g.read_servers,
            g.manage_users,
            g.read_users,
            g.manage_streams,
            g.read_streams,
            g.manage_topics,
            g.read_topics,
            g.poll_messages,
            g.send_messages,
        ],
        streams: p
            .streams
            .iter()
            .map(|(id, s)| WireStreamPermissions {
                stream_id: *id,
                flags: [
                    s.manage_stream,
                    s.read_stream,
                    s.manage_topics,
                    s.read_topics,
                    s.poll_messages,
                    s.send_messages,
                ],
                topics: s
                    .topics
                    .iter()
                    .map(|(tid, t)| WireTopicPermissions {
                        topic_id: *tid,
                        flags: [
                            t.manage_topic,
                            t.read_topic,
                            t.poll_messages,
                            t.send_messages,
                        ],
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn user_wire(u: &User) -> UserWire {
    UserWire {
        id: u.id,
        created_at: u.created_at,
        active: u.status == UserStatus::Active,
        username: u.username.clone(),
    }
}

fn details(u: &User) -> BytesMut {
    let mut out = BytesMut::new();
    let perms = u.permissions.as_ref().map(to_wire);
    user_wire(u).encode_details(perms.as_ref(), &mut out);
    out
}

fn status(active: bool) -> UserStatus {
    if active {
        UserStatus::Active
    } else {
        UserStatus::Inactive
    }
}

impl Session {
    pub(crate) async fn login(
        &mut self,
        username: &str,
        password: &str,
    ) -> Result<Reply, BrokerError> {
        let user = self.broker.login(username, password, self.peer()?).await?;
        self.broker.log_in_client(self.client_id, &user)?;
        tracing::debug!(client_id = self.client_id, user = %user.username, "logged in");
        let mut out = BytesMut::new();
        encode_identity(user.id, &mut out);
        Ok(Reply::body(out))
    }

    pub(crate) async fn login_with_token(&mut self, token: &str) -> Result<Reply, BrokerError> {
        let user = self.broker.login_with_token(token, self.peer()?).await?;
        self.broker.log_in_client(self.client_id, &user)?;
        let mut out = BytesMut::new();
        encode_identity(user.id, &mut out);
        Ok(Reply::body(out))
    }

    fn find_user(&self, id: &Identifier) -> Option<User> {
        match id {
            Identifier::Numeric(n) => self.broker.user(*n),
            Identifier::Name(name) => self.broker.user_by_name(name),
        }
    }

    fn existing_user(&self, id: &Identifier) -> Result<User, BrokerError> {
        self.find_user(id)
            .ok_or_else(|| BrokerError::UserNotFound(id.to_string()))
    }

    pub(crate) fn get_user(&self, id: &Identifier) -> Result<Reply, BrokerError> {
        let me = self.user()?;
        let Some(user) = self.find_user(id) else {
            return Ok(Reply::empty());
        };
        if user.id != me.id {
            self.broker
                .authorize(&Principal::User(me.id), Action::ReadUsers)?;
        }
        Ok(Reply::body(details(&user)))
    }

    pub(crate) fn get_users(&self) -> Result<Reply, BrokerError> {
        self.broker
            .authorize(&self.principal()?, Action::ReadUsers)?;
        let mut out = BytesMut::new();
        for u in self.broker.users() {
            user_wire(&u).encode(&mut out);
        }
        Ok(Reply::body(out))
    }

    pub(crate) async fn create_user(
        &self,
        username: String,
        password: String,
        active: bool,
        permissions: Option<WirePermissions>,
    ) -> Result<Reply, BrokerError> {
        self.broker
            .authorize(&self.principal()?, Action::ManageUsers)?;
        let permissions = permissions.map(from_wire);
        let user = self
            .broker
            .create_user(&username, &password, status(active), permissions)
            .await?;
        Ok(Reply::body(details(&user)))
    }

    pub(crate) async fn delete_user(&self, id: &Identifier) -> Result<Reply, BrokerError> {
        let me = self.user()?;
        self.broker
            .authorize(&Principal::User(me.id), Action::ManageUsers)?;
        let user = self.existing_user(id)?;
        if user.id == me.id {
            return Err(BrokerError::CannotChangeRoot);
        }
        self.broker
            .change_users(move |users| users.delete(user.id))
            .await?;
        Ok(Reply::empty())
    }

    pub(crate) async fn update_user(
        &self,
        id: &Identifier,
        username: Option<String>,
        active: Option<bool>,
    ) -> Result<Reply, BrokerError> {
        self.broker
            .authorize(&self.principal()?, Action::ManageUsers)?;
        let user = self.existing_user(id)?;
        self.broker
            .change_users(move |users| {
                users.update(user.id, username.as_deref(), active.map(status))
            })
            .await?;
        Ok(Reply::empty())
    }

    pub(crate) async fn update_permissions(
        &self,
        id: &Identifier,
        permissions: Option<WirePermissions>,
    ) -> Result<Reply, BrokerError> {
        self.broker
            .authorize(&self.principal()?, Action::ManageUsers)?;
        let user = self.existing_user(id)?;
        let permissions = permissions.map(from_wire);
        self.broker
            .change_users(move |users| users.set_native_permissions(user.id, permissions))
            .await?;
        Ok(Reply::empty())
    }

    pub(crate) async fn change_password(
        &self,
        id: &Identifier,
        current: String,
        new: String,
    ) -> Result<Reply, BrokerError> {
        let me = self.user()?;
        let user = self.existing_user(id)?;
        if user.id != me.id {
            self.broker
                .authorize(&Principal::User(me.id), Action::ManageUsers)?;
        }
        self.broker
            .change_password(self.client_id, self.peer()?, user.id, &current, &new)
            .await?;
        Ok(Reply::empty())
    }

    pub(crate) fn get_tokens(&self) -> Result<Reply, BrokerError> {
        let me = self.user()?;
        let mut out = BytesMut::new();
        for t in self.broker.tokens(me.id) {
            encode_token_info(&t.name, t.expiry_at, &mut out);
        }
        Ok(Reply::body(out))
    }

    pub(crate) async fn create_token(
        &self,
        name: String,
        expiry: Limit,
    ) -> Result<Reply, BrokerError> {
        let me = self.user()?;
        let expiry_us = match expiry {
            Limit::Value(us) => Some(us),
            Limit::ServerDefault | Limit::Unlimited => None,
        };
        let token = self
            .broker
            .change_users(move |users| users.create_token(me.id, &name, expiry_us))
            .await?;
        let mut out = BytesMut::new();
        out.name(&token);
        Ok(Reply::body(out))
    }

    pub(crate) async fn delete_token(&self, name: String) -> Result<Reply, BrokerError> {
        let me = self.user()?;
        self.broker
            .change_users(move |users| users.delete_token(me.id, &name))
            .await?;
        Ok(Reply::empty())
    }
}
