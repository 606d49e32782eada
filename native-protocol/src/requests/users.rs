//! User commands (create, read, update, delete, permissions, password, login and logout), the
//! personal access token commands, and the permissions block CreateUser and UpdatePermissions
//! carry.

use bytes::{BufMut, BytesMut};

use super::{put_name, Command, Limit};
use crate::codes;
use crate::primitives::Identifier;
use crate::wire::{err, invalid, DecodeError, Problem, Reader};

// ----- permissions -----

/// Permissions as carried by CreateUser and UpdatePermissions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WirePermissions {
    /// manage_servers, read_servers, manage_users, read_users, manage_streams, read_streams,
    /// manage_topics, read_topics, poll_messages, send_messages
    pub global: [bool; 10],
    pub streams: Vec<WireStreamPermissions>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WireStreamPermissions {
    pub stream_id: u32,
    /// manage_stream, read_stream, manage_topics, read_topics, poll_messages, send_messages
    pub flags: [bool; 6],
    pub topics: Vec<WireTopicPermissions>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WireTopicPermissions {
    pub topic_id: u32,
    /// manage_topic, read_topic, poll_messages, send_messages
    pub flags: [bool; 4],
}

/// Most streams or topics one permissions block may list.
const MAX_PERMISSION_ENTRIES: usize = 100_000;

fn flags<const N: usize>(
    r: &mut Reader<'_>,
    field: &'static str,
) -> Result<[bool; N], DecodeError> {
    let mut out = [false; N];
    for f in &mut out {
        *f = r.u8(field)? != 0;
    }
    Ok(out)
}

impl WirePermissions {
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let global = flags::<10>(r, "permissions.global")?;
        let mut streams = Vec::new();
        let mut more = r.u8("permissions.has_streams")? == 1;
        while more {
            if streams.len() >= MAX_PERMISSION_ENTRIES {
                return Err(invalid("permissions.streams", "too many entries"));
            }
            let stream_id = r.u32("permissions.stream_id")?;
            let sflags = flags::<6>(r, "permissions.stream")?;
            let mut topics = Vec::new();
            let mut more_topics = r.u8("permissions.has_topics")? == 1;
            while more_topics {
                if topics.len() >= MAX_PERMISSION_ENTRIES {
                    return Err(invalid("permissions.topics", "too many entries"));
                }
                let topic_id = r.u32("permissions.topic_id")?;
                topics.push(WireTopicPermissions {
                    topic_id,
                    flags: flags::<4>(r, "permissions.topic")?,
                });
                more_topics = r.u8("permissions.has_next_topic")? == 1;
            }
            streams.push(WireStreamPermissions {
                stream_id,
                flags: sflags,
                topics,
            });
            more = r.u8("permissions.has_next_stream")? == 1;
        }
        Ok(WirePermissions { global, streams })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        for f in self.global {
            out.put_u8(u8::from(f));
        }
        out.put_u8(u8::from(!self.streams.is_empty()));
        for (i, s) in self.streams.iter().enumerate() {
            out.put_u32_le(s.stream_id);
            for f in s.flags {
                out.put_u8(u8::from(f));
            }
            out.put_u8(u8::from(!s.topics.is_empty()));
            for (j, t) in s.topics.iter().enumerate() {
                out.put_u32_le(t.topic_id);
                for f in t.flags {
                    out.put_u8(u8::from(f));
                }
                out.put_u8(u8::from(j + 1 < s.topics.len()));
            }
            out.put_u8(u8::from(i + 1 < self.streams.len()));
        }
    }
}

/// `[has u8][len u32][permissions]` as CreateUser and UpdatePermissions carry them.
fn optional_permissions(r: &mut Reader<'_>) -> Result<Option<WirePermissions>, DecodeError> {
    if r.u8("has_permissions")? != 1 {
        return Ok(None);
    }
    let len = r.u32("permissions_length")? as usize;
    let block = r.take(len, "permissions")?;
    let mut inner = Reader::new(block);
    let p = WirePermissions::decode(&mut inner)?;
    inner.finish("permissions")?;
    Ok(Some(p))
}

fn put_optional_permissions(out: &mut BytesMut, p: &Option<WirePermissions>) {
    match p {
        None => out.put_u8(0),
        Some(p) => {
            let mut block = BytesMut::new();
            p.encode(&mut block);
            out.put_u8(1);
            out.put_u32_le(block.len() as u32);
            out.put_slice(&block);
        }
    }
}

// ----- shared fields -----

/// A password: `[len u8][bytes]`, not validated on the wire.
fn password(r: &mut Reader<'_>, field: &'static str) -> Result<String, DecodeError> {
    let len = r.u8(field)? as usize;
    r.utf8(len, field)
}

/// A user status: 1 active, 2 inactive.
fn user_status(r: &mut Reader<'_>) -> Result<bool, DecodeError> {
    match r.u8("status")? {
        1 => Ok(true),
        2 => Ok(false),
        v => Err(err("status", Problem::Unknown(u64::from(v)))),
    }
}

fn put_user_status(out: &mut BytesMut, active: bool) {
    out.put_u8(if active { 1 } else { 2 });
}

// ----- users -----

/// A user and its permissions: `[user_id]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetUser {
    pub user_id: Identifier,
}

impl Command for GetUser {
    const CODE: u32 = codes::GET_USER;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(GetUser {
            user_id: Identifier::decode(r, "user_id")?,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        self.user_id.encode(out);
    }
}

/// Every user. Empty payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GetUsers;

impl Command for GetUsers {
    const CODE: u32 = codes::GET_USERS;

    fn decode(_: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(GetUsers)
    }

    fn encode(&self, _: &mut BytesMut) {}
}

/// `[username name][password u8-len][status u8: 1 active, 2 inactive][optional permissions]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateUser {
    pub username: String,
    pub password: String,
    pub active: bool,
    pub permissions: Option<WirePermissions>,
}

impl Command for CreateUser {
    const CODE: u32 = codes::CREATE_USER;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(CreateUser {
            username: r.name("username")?,
            password: password(r, "password")?,
            active: user_status(r)?,
            permissions: optional_permissions(r)?,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        put_name(out, &self.username);
        put_name(out, &self.password);
        put_user_status(out, self.active);
        put_optional_permissions(out, &self.permissions);
    }
}

/// `[user_id]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteUser {
    pub user_id: Identifier,
}

impl Command for DeleteUser {
    const CODE: u32 = codes::DELETE_USER;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(DeleteUser {
            user_id: Identifier::decode(r, "user_id")?,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        self.user_id.encode(out);
    }
}

/// `[user_id][has_username u8][username name]?[has_status u8][status u8]?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateUser {
    pub user_id: Identifier,
    pub username: Option<String>,
    pub active: Option<bool>,
}

impl Command for UpdateUser {
    const CODE: u32 = codes::UPDATE_USER;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let user_id = Identifier::decode(r, "user_id")?;
        let username = if r.u8("has_username")? == 1 {
            Some(r.name("username")?)
        } else {
            None
        };
        let active = if r.u8("has_status")? == 1 {
            Some(user_status(r)?)
        } else {
            None
        };
        Ok(UpdateUser {
            user_id,
            username,
            active,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        self.user_id.encode(out);
        match &self.username {
            Some(n) => {
                out.put_u8(1);
                put_name(out, n);
            }
            None => out.put_u8(0),
        }
        match self.active {
            Some(a) => {
                out.put_u8(1);
                put_user_status(out, a);
            }
            None => out.put_u8(0),
        }
    }
}

/// `[user_id][optional permissions]`: replaces a user's permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdatePermissions {
    pub user_id: Identifier,
    pub permissions: Option<WirePermissions>,
}

impl Command for UpdatePermissions {
    const CODE: u32 = codes::UPDATE_PERMISSIONS;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(UpdatePermissions {
            user_id: Identifier::decode(r, "user_id")?,
            permissions: optional_permissions(r)?,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        self.user_id.encode(out);
        put_optional_permissions(out, &self.permissions);
    }
}

/// `[user_id][current password u8-len][new password u8-len]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangePassword {
    pub user_id: Identifier,
    pub current: String,
    pub new: String,
}

impl Command for ChangePassword {
    const CODE: u32 = codes::CHANGE_PASSWORD;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ChangePassword {
            user_id: Identifier::decode(r, "user_id")?,
            current: password(r, "current_password")?,
            new: password(r, "new_password")?,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        self.user_id.encode(out);
        put_name(out, &self.current);
        put_name(out, &self.new);
    }
}

/// `[username name][password u8-len]` then, from newer clients, `[version u32-len][context
/// u32-len]` (empty = absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginUser {
    pub username: String,
    pub password: String,
    pub version: Option<String>,
    pub context: Option<String>,
}

impl Command for LoginUser {
    const CODE: u32 = codes::LOGIN_USER;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let username = r.name("username")?;
        let password = password(r, "password")?;
        // Older clients stop after the password; newer ones add version and context.
        let mut opt = |field| -> Result<Option<String>, DecodeError> {
            if r.remaining() == 0 {
                return Ok(None);
            }
            let s = r.string_u32(1024, field)?;
            Ok((!s.is_empty()).then_some(s))
        };
        let version = opt("version")?;
        let context = opt("context")?;
        Ok(LoginUser {
            username,
            password,
            version,
            context,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        put_name(out, &self.username);
        put_name(out, &self.password);
        for s in [&self.version, &self.context] {
            let s = s.as_deref().unwrap_or("");
            out.put_u32_le(s.len() as u32);
            out.put_slice(s.as_bytes());
        }
    }
}

/// Logs the connection out. Empty payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogoutUser;

impl Command for LogoutUser {
    const CODE: u32 = codes::LOGOUT_USER;

    fn decode(_: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(LogoutUser)
    }

    fn encode(&self, _: &mut BytesMut) {}
}

// ----- personal access tokens -----

/// The logged-in user's tokens. Empty payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GetPersonalAccessTokens;

impl Command for GetPersonalAccessTokens {
    const CODE: u32 = codes::GET_PERSONAL_ACCESS_TOKENS;

    fn decode(_: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(GetPersonalAccessTokens)
    }

    fn encode(&self, _: &mut BytesMut) {}
}

/// `[name name][expiry u64: 0 server default, u64::MAX never]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatePersonalAccessToken {
    pub name: String,
    pub expiry: Limit,
}

impl Command for CreatePersonalAccessToken {
    const CODE: u32 = codes::CREATE_PERSONAL_ACCESS_TOKEN;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(CreatePersonalAccessToken {
            name: r.name("name")?,
            expiry: Limit::decode(r, "expiry")?,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        put_name(out, &self.name);
        self.expiry.encode(out);
    }
}

/// `[name name]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletePersonalAccessToken {
    pub name: String,
}

impl Command for DeletePersonalAccessToken {
    const CODE: u32 = codes::DELETE_PERSONAL_ACCESS_TOKEN;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(DeletePersonalAccessToken {
            name: r.name("name")?,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        put_name(out, &self.name);
    }
}

/// `[token name]`; works before login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginWithPersonalAccessToken {
    pub token: String,
}

impl Command for LoginWithPersonalAccessToken {
    const CODE: u32 = codes::LOGIN_WITH_PERSONAL_ACCESS_TOKEN;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(LoginWithPersonalAccessToken {
            token: r.name("token")?,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        put_name(out, &self.token);
    }
}
