//! Users, their permissions and personal access tokens.
//!
//! Passwords are kept only as Argon2id hashes (PHC strings) and salted SCRAM credentials (for
//! SASL on the Kafka door); tokens only as SHA-256 digests, so a token can be looked up on login
//! without being stored. The whole set is one document in the data directory, written
//! crash-safely on every change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wharf_log_store::{read_durable, write_durable};

use super::logins::PasswordSlots;
use super::scram::{ScramCredential, ScramMechanism};
use super::{now_us, BrokerError};

/// The root user's id; it always exists and cannot be deleted or restricted.
pub const ROOT_USER_ID: u32 = 0;
/// Most personal access tokens one user may hold.
pub const MAX_TOKENS_PER_USER: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserStatus {
    Active,
    Inactive,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalPermissions {
    pub manage_servers: bool,
    pub read_servers: bool,
    pub manage_users: bool,
    pub read_users: bool,
    pub manage_streams: bool,
    pub read_streams: bool,
    pub manage_topics: bool,
    pub read_topics: bool,
    pub poll_messages: bool,
    pub send_messages: bool,
}

impl GlobalPermissions {
    pub fn all() -> Self {
        GlobalPermissions {
            manage_servers: true,
            read_servers: true,
            manage_users: true,
            read_users: true,
            manage_streams: true,
            read_streams: true,
            manage_topics: true,
            read_topics: true,
            poll_messages: true,
            send_messages: true,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamPermissions {
    pub manage_stream: bool,
    pub read_stream: bool,
    pub manage_topics: bool,
    pub read_topics: bool,
    pub poll_messages: bool,
    pub send_messages: bool,
    pub topics: BTreeMap<u32, TopicPermissions>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicPermissions {
    pub manage_topic: bool,
    pub read_topic: bool,
    pub poll_messages: bool,
    pub send_messages: bool,
}

/// The names a group or transactional-id grant covers: one name (`*` is every name, as in
/// Kafka's LITERAL wildcard) or every name with a prefix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum NamePattern {
    Literal(String),
    Prefixed(String),
}

impl NamePattern {
    /// The wildcard: every name.
    pub fn any() -> NamePattern {
        NamePattern::Literal("*".into())
    }

    pub fn matches(&self, name: &str) -> bool {
        match self {
            NamePattern::Literal(l) => l == "*" || l == name,
            NamePattern::Prefixed(p) => name.starts_with(p.as_str()),
        }
    }
}

/// Rights on the Kafka consumer groups a pattern names. Reading (joining, committing) and
/// deleting imply describing, as in Kafka. Global rights imply some too (see
/// [`Permissions::allows`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupPermissions {
    pub read: bool,
    pub describe: bool,
    pub delete: bool,
}

/// Rights `R` on the Kafka resources (groups, transactional ids) a pattern names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant<R> {
    pub pattern: NamePattern,
    pub rights: R,
}

/// The rights of the grant for exactly `pattern` in `grants`, added with no rights if missing.
pub fn grant_for<'a, R: Default>(
    grants: &'a mut Vec<Grant<R>>,
    pattern: &NamePattern,
) -> &'a mut R {
    let at = match grants.iter().position(|g| g.pattern == *pattern) {
        Some(at) => at,
        None => {
            grants.push(Grant {
                pattern: pattern.clone(),
                rights: R::default(),
            });
            grants.len() - 1
        }
    };
    &mut grants[at].rights
}

pub type GroupGrant = Grant<GroupPermissions>;

/// Rights on the Kafka transactional ids a pattern names. Writing implies describing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionalIdPermissions {
    pub write: bool,
    pub describe: bool,
}

pub type TransactionalIdGrant = Grant<TransactionalIdPermissions>;

/// A user's rights: Iggy's (global, per stream, per topic) and the Kafka resource kinds Iggy
/// has no word for (consumer groups, transactional ids). The native wire format carries only
/// Iggy's part; documents written before the Kafka kinds existed load with none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    pub global: GlobalPermissions,
    pub streams: BTreeMap<u32, StreamPermissions>,
    #[serde(default)]
    pub groups: Vec<GroupGrant>,
    #[serde(default)]
    pub transactional_ids: Vec<TransactionalIdGrant>,
}

/// A right on a Kafka consumer group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupRight {
    Read,
    Describe,
    Delete,
}

/// A right on a Kafka transactional id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionalIdRight {
    Write,
    Describe,
}

/// What a user may do. Broader rights imply narrower ones: managing implies reading, reading a
/// stream implies reading its topics and polling them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    ReadServers,
    ManageServers,
    ReadUsers,
    ManageUsers,
    ReadStreams,
    ManageStreams,
    ReadStream(u32),
    ManageStream(u32),
    ReadTopic(u32, u32),
    ManageTopic(u32, u32),
    /// Seeing that a topic exists and where it is (Kafka's Describe): implied by any right on
    /// it, as Kafka's READ, WRITE, DELETE and ALTER imply DESCRIBE.
    DescribeTopic(u32, u32),
    /// Creating topics in a stream.
    CreateTopic(u32),
    Poll(u32, u32),
    Send(u32, u32),
    /// An idempotent producer id: implied by sending to any topic (KIP-679).
    IdempotentWrite,
    Group(GroupRight, &'a str),
    TransactionalId(TransactionalIdRight, &'a str),
}

impl Permissions {
    /// Every right (the root user's).
    pub fn all() -> Permissions {
        Permissions {
            global: GlobalPermissions::all(),
            streams: BTreeMap::new(),
            groups: vec![GroupGrant {
                pattern: NamePattern::any(),
                rights: GroupPermissions {
                    read: true,
                    describe: true,
                    delete: true,
                },
            }],
            transactional_ids: vec![TransactionalIdGrant {
                pattern: NamePattern::any(),
                rights: TransactionalIdPermissions {
                    write: true,
                    describe: true,
                },
            }],
        }
    }

    pub fn allows(&self, action: Action<'_>) -> bool {
        let g = &self.global;
        let s = |id: u32| self.streams.get(&id);
        let t = |sid: u32, tid: u32| s(sid).and_then(|p| p.topics.get(&tid));
        match action {
            Action::ReadServers => g.read_servers || g.manage_servers,
            Action::ManageServers => g.manage_servers,
            Action::ReadUsers => g.read_users || g.manage_users,
            Action::ManageUsers => g.manage_users,
            Action::ReadStreams => g.read_streams || g.manage_streams,
            Action::ManageStreams => g.manage_streams,
            Action::ReadStream(sid) => {
                g.read_streams
                    || g.manage_streams
                    || s(sid).is_some_and(|p| p.read_stream || p.manage_stream)
            }
            Action::ManageStream(sid) => {
                g.manage_streams || s(sid).is_some_and(|p| p.manage_stream)
            }
            Action::CreateTopic(sid) => {
                g.manage_streams
                    || g.manage_topics
                    || s(sid).is_some_and(|p| p.manage_stream || p.manage_topics)
            }
            Action::ReadTopic(sid, tid) => {
                g.read_streams
                    || g.manage_streams
                    || g.read_topics
                    || g.manage_topics
                    || s(sid).is_some_and(|p| {
                        p.read_stream || p.manage_stream || p.read_topics || p.manage_topics
                    })
                    || t(sid, tid).is_some_and(|p| p.read_topic || p.manage_topic)
            }
            Action::ManageTopic(sid, tid) => {
                g.manage_streams
                    || g.manage_topics
                    || s(sid).is_some_and(|p| p.manage_stream || p.manage_topics)
                    || t(sid, tid).is_some_and(|p| p.manage_topic)
            }
            Action::DescribeTopic(sid, tid) => {
                self.allows(Action::ReadTopic(sid, tid))
                    || self.allows(Action::Poll(sid, tid))
                    || self.allows(Action::Send(sid, tid))
            }
            Action::Poll(sid, tid) => {
                g.poll_messages
                    || g.read_streams
                    || g.manage_streams
                    || s(sid).is_some_and(|p| p.poll_messages || p.read_stream || p.manage_stream)
                    || t(sid, tid)
                        .is_some_and(|p| p.poll_messages || p.read_topic || p.manage_topic)
            }
            Action::Send(sid, tid) => {
                g.send_messages
                    || g.manage_streams
                    || s(sid).is_some_and(|p| p.send_messages || p.manage_stream)
                    || t(sid, tid).is_some_and(|p| p.send_messages || p.manage_topic)
            }
            Action::IdempotentWrite => {
                g.send_messages
                    || g.manage_streams
                    || self.streams.values().any(|p| {
                        p.send_messages
                            || p.manage_stream
                            || p.topics.values().any(|t| t.send_messages || t.manage_topic)
                    })
            }
            // Iggy's own consumer groups need only the right to poll: who may poll every
            // topic may use (read, describe) every group; who manages every stream may also
            // delete them.
            Action::Group(GroupRight::Read | GroupRight::Describe, _)
                if g.poll_messages || g.read_streams || g.manage_streams =>
            {
                true
            }
            Action::Group(GroupRight::Delete, _) if g.manage_streams => true,
            Action::Group(right, name) => self
                .groups
                .iter()
                .filter(|grant| grant.pattern.matches(name))
                .any(|grant| {
                    let r = &grant.rights;
                    match right {
                        GroupRight::Read => r.read,
                        GroupRight::Delete => r.delete,
                        GroupRight::Describe => r.describe || r.read || r.delete,
                    }
                }),
            Action::TransactionalId(right, name) => self
                .transactional_ids
                .iter()
                .filter(|grant| grant.pattern.matches(name))
                .any(|grant| {
                    let r = &grant.rights;
                    match right {
                        TransactionalIdRight::Write => r.write,
                        TransactionalIdRight::Describe => r.describe || r.write,
                    }
                }),
        }
    }

    /// Whether this holds any group or transactional-id grant (what the native wire format
    /// cannot carry).
    pub fn has_kafka_grants(&self) -> bool {
        !self.groups.is_empty() || !self.transactional_ids.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: u32,
    pub username: String,
    /// The Argon2 PHC string; empty for a user created from Kafka (AlterUserScramCredentials),
    /// whose password is checked against its SCRAM credentials.
    pub password_hash: String,
    pub status: UserStatus,
    pub permissions: Option<Permissions>,
    pub created_at: u64,
    /// Salted SCRAM credentials per mechanism (absent in documents written before SASL).
    #[serde(default)]
    pub scram: BTreeMap<ScramMechanism, ScramCredential>,
}

/// What setting a password stores: its Argon2 hash and SCRAM credentials derived from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordSecrets {
    pub hash: String,
    pub scram: BTreeMap<ScramMechanism, ScramCredential>,
}

impl User {
    /// True when `other` (an earlier copy of this user) still has this user's password and
    /// credentials: a check made against `other` is not stale.
    pub fn same_secrets(&self, other: &User) -> bool {
        self.password_hash == other.password_hash && self.scram == other.scram
    }

    pub fn permissions(&self) -> Permissions {
        if self.id == ROOT_USER_ID {
            return Permissions::all();
        }
        self.permissions.clone().unwrap_or_default()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PersonalAccessToken {
    pub user_id: u32,
    pub name: String,
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// µs since the Unix epoch; `None`: never expires.
    pub expiry_at: Option<u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct UsersDoc {
    next_user_id: u32,
    users: BTreeMap<u32, User>,
    tokens: Vec<PersonalAccessToken>,
}

/// The user directory.
#[derive(Debug)]
pub struct Users {
    path: PathBuf,
    doc: RwLock<UsersDoc>,
    changes: parking_lot::Mutex<()>,
}

fn token_digest(token: &str) -> String {
    let d = Sha256::digest(token.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn validate_username(name: &str) -> Result<(), BrokerError> {
    if name.len() < 3
        || name.len() > 50
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || "._-".contains(c))
    {
        return Err(BrokerError::InvalidUsername);
    }
    Ok(())
}

pub fn validate_password(password: &str) -> Result<(), BrokerError> {
    if password.len() < 3 || password.len() > 100 {
        return Err(BrokerError::InvalidPassword);
    }
    Ok(())
}

impl Users {
    /// Opens the directory in `data_dir`, creating the root user on first start (its password
    /// hashed in one of `slots`' buffers, its SCRAM credentials derived with `scram_iterations`).
    pub fn open(
        data_dir: &Path,
        root_username: &str,
        root_password: &str,
        slots: &PasswordSlots,
        scram_iterations: u32,
    ) -> Result<Users, BrokerError> {
        let path = data_dir.join("users");
        let doc = match read_durable(&path)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| BrokerError::Internal(format!("users document is unreadable: {e}")))?,
            None => UsersDoc::default(),
        };
        let users = Users {
            path,
            doc: RwLock::new(doc),
            changes: parking_lot::Mutex::new(()),
        };
        if users.doc.read().users.is_empty() {
            let secrets = slots.secrets_now(root_password, scram_iterations)?;
            let root = User {
                id: ROOT_USER_ID,
                username: root_username.to_string(),
                password_hash: secrets.hash,
                status: UserStatus::Active,
                permissions: None,
                created_at: now_us(),
                scram: secrets.scram,
            };
            let mut doc = users.doc.write();
            doc.users.insert(ROOT_USER_ID, root);
            doc.next_user_id = 1;
            users.save(&doc)?;
        }
        Ok(users)
    }

    fn save(&self, doc: &UsersDoc) -> Result<(), BrokerError> {
        let bytes = serde_json::to_vec(doc).map_err(|e| BrokerError::Internal(e.to_string()))?;
        write_durable(&self.path, &bytes)?;
        Ok(())
    }

    /// Applies `change` to a copy of the directory, persists it, then makes it current.
    fn change<T>(
        &self,
        change: impl FnOnce(&mut UsersDoc) -> Result<T, BrokerError>,
    ) -> Result<T, BrokerError> {
        let _one_at_a_time = self.changes.lock();
        let mut doc = {
            let d = self.doc.read();
            UsersDoc {
                next_user_id: d.next_user_id,
                users: d.users.clone(),
                tokens: d.tokens.clone(),
            }
        };
        let out = change(&mut doc)?;
        self.save(&doc)?;
        *self.doc.write() = doc;
        Ok(out)
    }

    pub fn authenticate_token(&self, token: &str) -> Result<User, BrokerError> {
        self.authenticate_token_expiring(token)
            .map(|(user, _)| user)
    }

    /// [`Users::authenticate_token`], with the token's expiry (µs since the epoch; `None`:
    /// never).
    pub fn authenticate_token_expiring(
        &self,
        token: &str,
    ) -> Result<(User, Option<u64>), BrokerError> {
        let digest = token_digest(token);
        let doc = self.doc.read();
        let pat = doc
            .tokens
            .iter()
            .find(|t| t.token_hash == digest)
            .ok_or(BrokerError::InvalidToken)?;
        if pat.expiry_at.is_some_and(|e| e <= now_us()) {
            return Err(BrokerError::TokenExpired(pat.name.clone()));
        }
        let user = doc
            .users
            .get(&pat.user_id)
            .cloned()
            .ok_or(BrokerError::InvalidToken)?;
        if user.status != UserStatus::Active {
            return Err(BrokerError::UserInactive);
        }
        Ok((user, pat.expiry_at))
    }

    pub fn get(&self, id: u32) -> Option<User> {
        self.doc.read().users.get(&id).cloned()
    }

    pub fn find_by_name(&self, name: &str) -> Option<User> {
        self.doc
            .read()
            .users
            .values()
            .find(|u| u.username == name)
            .cloned()
    }

    pub fn list(&self) -> Vec<User> {
        self.doc.read().users.values().cloned().collect()
    }

    /// Creates a user whose password has the `secrets` (the password was checked with
    /// [`validate_password`] before they were derived).
    pub fn create(
        &self,
        username: &str,
        secrets: PasswordSecrets,
        status: UserStatus,
        permissions: Option<Permissions>,
    ) -> Result<User, BrokerError> {
        validate_username(username)?;
        self.change(|doc| {
            if doc.users.values().any(|u| u.username == username) {
                return Err(BrokerError::UserExists(username.to_string()));
            }
            let id = doc.next_user_id;
            doc.next_user_id += 1;
            let user = User {
                id,
                username: username.to_string(),
                password_hash: secrets.hash,
                status,
                permissions,
                created_at: now_us(),
                scram: secrets.scram,
            };
            doc.users.insert(id, user.clone());
            Ok(user)
        })
    }

    pub fn update(
        &self,
        id: u32,
        username: Option<&str>,
        status: Option<UserStatus>,
    ) -> Result<User, BrokerError> {
        if let Some(n) = username {
            validate_username(n)?;
        }
        self.change(|doc| {
            if let Some(n) = username {
                if doc.users.values().any(|u| u.username == n && u.id != id) {
                    return Err(BrokerError::UserExists(n.to_string()));
                }
            }
            if id == ROOT_USER_ID && status == Some(UserStatus::Inactive) {
                return Err(BrokerError::CannotChangeRoot);
            }
            let user = doc
                .users
                .get_mut(&id)
                .ok_or(BrokerError::UserNotFound(id.to_string()))?;
            if let Some(n) = username {
                user.username = n.to_string();
            }
            if let Some(s) = status {
                user.status = s;
            }
            Ok(user.clone())
        })
    }

    pub fn set_permissions(
        &self,
        id: u32,
        permissions: Option<Permissions>,
    ) -> Result<(), BrokerError> {
        self.change_permissions(id, |p| *p = permissions)
    }

    /// Replaces user `id`'s permissions as the native door's UpdatePermissions carries them.
    /// `Some` replaces the Iggy part (global, streams, topics) and keeps the Kafka-only group
    /// and transactional-id grants its wire format has no room for; `None` clears every right,
    /// the Kafka-only grants included (a user whose permissions are cleared may do nothing).
    pub fn set_native_permissions(
        &self,
        id: u32,
        permissions: Option<Permissions>,
    ) -> Result<(), BrokerError> {
        self.change_permissions(id, |current| {
            *current = permissions.map(|mut new| {
                if let Some(old) = current.take() {
                    new.groups = old.groups;
                    new.transactional_ids = old.transactional_ids;
                }
                new
            });
        })
    }

    /// Applies `change` to user `id`'s permissions in one durable change (the root user's
    /// cannot change).
    pub fn change_permissions<T>(
        &self,
        id: u32,
        change: impl FnOnce(&mut Option<Permissions>) -> T,
    ) -> Result<T, BrokerError> {
        if id == ROOT_USER_ID {
            return Err(BrokerError::CannotChangeRoot);
        }
        self.change(|doc| {
            let user = doc
                .users
                .get_mut(&id)
                .ok_or(BrokerError::UserNotFound(id.to_string()))?;
            Ok(change(&mut user.permissions))
        })
    }

    /// Applies `change` to every user's permissions but the root's in one durable change
    /// (Kafka's CreateAcls and DeleteAcls change several users at once).
    pub fn change_all_permissions<T>(
        &self,
        change: impl FnOnce(&mut BTreeMap<u32, (String, Option<Permissions>)>) -> T,
    ) -> Result<T, BrokerError> {
        self.change(|doc| {
            let mut all: BTreeMap<u32, (String, Option<Permissions>)> = doc
                .users
                .values()
                .filter(|u| u.id != ROOT_USER_ID)
                .map(|u| (u.id, (u.username.clone(), u.permissions.clone())))
                .collect();
            let out = change(&mut all);
            for (id, (_, p)) in all {
                if let Some(u) = doc.users.get_mut(&id) {
                    u.permissions = p;
                }
            }
            Ok(out)
        })
    }

    /// Replaces user `id`'s password secrets, as they were in `verified` (the copy the current
    /// password was checked against), with `new`, and with `revoke_tokens` deletes all the
    /// user's personal access tokens in the same durable change; returns how many were deleted.
    /// If the secrets changed in the meantime, the check was against a stale password and
    /// nothing changes.
    pub fn set_password(
        &self,
        id: u32,
        verified: &User,
        new: PasswordSecrets,
        revoke_tokens: bool,
    ) -> Result<usize, BrokerError> {
        self.change(|doc| {
            let user = doc
                .users
                .get_mut(&id)
                .ok_or(BrokerError::UserNotFound(id.to_string()))?;
            if !user.same_secrets(verified) {
                return Err(BrokerError::InvalidCredentials);
            }
            user.password_hash = new.hash;
            user.scram = new.scram;
            let before = doc.tokens.len();
            if revoke_tokens {
                doc.tokens.retain(|t| t.user_id != id);
            }
            Ok(before - doc.tokens.len())
        })
    }

    /// AlterUserScramCredentials, in ONE durable change for the whole request: for each user
    /// named, its deletions then its upsertions, all or nothing per user. An upsertion is a
    /// password change: the user's password secrets become just the credentials upserted in
    /// this request (the Argon2 hash and the other mechanism's credential, derived from the old
    /// password, are dropped), and with `revoke_tokens` the user's personal access tokens are
    /// deleted. Only root (`by_root`) may change root's credentials. A name no user has becomes
    /// a new user (Active, no permissions, no Argon2 hash), at most `max_new` per request.
    pub fn alter_scram(
        &self,
        changes: Vec<(String, Vec<CredentialChange>)>,
        by_root: bool,
        max_new: usize,
        revoke_tokens: bool,
    ) -> Result<Vec<Result<ScramAltered, BrokerError>>, BrokerError> {
        self.change(|doc| {
            let mut ids: std::collections::HashMap<String, u32> = doc
                .users
                .values()
                .map(|u| (u.username.clone(), u.id))
                .collect();
            let mut created = 0;
            let mut results = Vec::with_capacity(changes.len());
            for (name, ops) in changes {
                results.push(alter_one(
                    doc,
                    &mut ids,
                    &mut created,
                    &name,
                    ops,
                    by_root,
                    max_new,
                    revoke_tokens,
                ));
            }
            Ok(results)
        })
    }

    pub fn delete(&self, id: u32) -> Result<(), BrokerError> {
        if id == ROOT_USER_ID {
            return Err(BrokerError::CannotChangeRoot);
        }
        self.change(|doc| {
            doc.users
                .remove(&id)
                .ok_or(BrokerError::UserNotFound(id.to_string()))?;
            doc.tokens.retain(|t| t.user_id != id);
            Ok(())
        })
    }

    /// Creates a token and returns it; only its digest is kept.
    pub fn create_token(
        &self,
        user_id: u32,
        name: &str,
        expiry_us: Option<u64>,
    ) -> Result<String, BrokerError> {
        if name.len() < 3 || name.len() > 30 {
            return Err(BrokerError::InvalidTokenName);
        }
        let token = random_token();
        let digest = token_digest(&token);
        self.change(|doc| {
            let mine = doc.tokens.iter().filter(|t| t.user_id == user_id).count();
            if doc
                .tokens
                .iter()
                .any(|t| t.user_id == user_id && t.name == name)
            {
                return Err(BrokerError::TokenExists(name.to_string()));
            }
            if mine >= MAX_TOKENS_PER_USER {
                return Err(BrokerError::TooManyTokens);
            }
            doc.tokens.push(PersonalAccessToken {
                user_id,
                name: name.to_string(),
                token_hash: digest,
                expiry_at: expiry_us.map(|e| now_us().saturating_add(e)),
            });
            Ok(())
        })?;
        Ok(token)
    }

    pub fn tokens(&self, user_id: u32) -> Vec<PersonalAccessToken> {
        self.doc
            .read()
            .tokens
            .iter()
            .filter(|t| t.user_id == user_id)
            .cloned()
            .collect()
    }

    pub fn delete_token(&self, user_id: u32, name: &str) -> Result<(), BrokerError> {
        self.change(|doc| {
            let before = doc.tokens.len();
            doc.tokens
                .retain(|t| !(t.user_id == user_id && t.name == name));
            if doc.tokens.len() == before {
                return Err(BrokerError::TokenNotFound(name.to_string()));
            }
            Ok(())
        })
    }
}

/// One SCRAM credential change of AlterUserScramCredentials.
#[derive(Debug, Clone)]
pub enum CredentialChange {
    Delete(ScramMechanism),
    Upsert(ScramMechanism, ScramCredential),
}

/// What [`Users::alter_scram`] did to one user.
#[derive(Debug, Clone)]
pub struct ScramAltered {
    pub user: User,
    /// The user existed and its password changed (an upsertion): its sessions must end.
    pub password_changed: bool,
}

#[allow(clippy::too_many_arguments)]
fn alter_one(
    doc: &mut UsersDoc,
    ids: &mut std::collections::HashMap<String, u32>,
    created: &mut usize,
    name: &str,
    ops: Vec<CredentialChange>,
    by_root: bool,
    max_new: usize,
    revoke_tokens: bool,
) -> Result<ScramAltered, BrokerError> {
    validate_username(name)?;
    let existing = ids.get(name).and_then(|id| doc.users.get(id)).cloned();
    if existing.as_ref().is_some_and(|u| u.id == ROOT_USER_ID) && !by_root {
        return Err(BrokerError::CannotChangeRootCredentials);
    }
    let mut user = match existing {
        Some(u) => u,
        None => User {
            id: doc.next_user_id,
            username: name.to_string(),
            password_hash: String::new(),
            status: UserStatus::Active,
            permissions: None,
            created_at: now_us(),
            scram: BTreeMap::new(),
        },
    };
    let is_new = !doc.users.contains_key(&user.id);
    let mut upserted = BTreeMap::new();
    for op in ops {
        match op {
            CredentialChange::Delete(m) => {
                if user.scram.remove(&m).is_none() {
                    return Err(BrokerError::NoScramCredential {
                        user: name.to_string(),
                        mechanism: m.name(),
                    });
                }
            }
            CredentialChange::Upsert(m, c) => {
                upserted.insert(m, c);
            }
        }
    }
    let password_changed = !upserted.is_empty();
    if password_changed {
        user.password_hash.clear();
        user.scram = upserted;
    }
    if is_new {
        if !password_changed {
            return Err(BrokerError::UserNotFound(name.to_string()));
        }
        if *created >= max_new {
            return Err(BrokerError::TooManyNewUsers(max_new));
        }
        *created += 1;
        doc.next_user_id += 1;
        ids.insert(name.to_string(), user.id);
    } else if password_changed && revoke_tokens {
        doc.tokens.retain(|t| t.user_id != user.id);
    }
    doc.users.insert(user.id, user.clone());
    Ok(ScramAltered {
        user,
        password_changed: password_changed && !is_new,
    })
}

fn random_token() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 50)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_tokens_and_persistence() {
        let dir = tempfile::tempdir().unwrap();
        let slots = PasswordSlots::new(1);
        let root_hash = |users: &Users| users.get(ROOT_USER_ID).unwrap().password_hash;
        {
            let users = Users::open(dir.path(), "iggy", "iggy", &slots, 4096).unwrap();
            assert!(slots.verify_now("iggy", &root_hash(&users)).unwrap());
            assert!(!slots.verify_now("nope", &root_hash(&users)).unwrap());
            let u = users
                .create(
                    "alice",
                    slots.secrets_now("secret", 4096).unwrap(),
                    UserStatus::Active,
                    None,
                )
                .unwrap();
            assert!(matches!(
                users.create(
                    "alice",
                    slots.secrets_now("x", 4096).unwrap(),
                    UserStatus::Active,
                    None
                ),
                Err(BrokerError::UserExists(_))
            ));
            let token = users.create_token(u.id, "ci-token", None).unwrap();
            assert_eq!(users.authenticate_token(&token).unwrap().username, "alice");
            assert!(users.authenticate_token("wrong").is_err());
            assert!(matches!(
                users.delete(ROOT_USER_ID),
                Err(BrokerError::CannotChangeRoot)
            ));
            let raw = std::fs::read(dir.path().join("users")).unwrap();
            let text = String::from_utf8_lossy(&raw);
            assert!(
                !text.contains("secret") && !text.contains(&token),
                "secrets stored in clear"
            );
        }
        let users = Users::open(dir.path(), "iggy", "changed", &slots, 4096).unwrap();
        assert!(
            slots.verify_now("iggy", &root_hash(&users)).unwrap(),
            "root password is set only on first start"
        );
        let alice = users.find_by_name("alice").unwrap();
        assert!(slots.verify_now("secret", &alice.password_hash).unwrap());
        assert_eq!(users.tokens(1).len(), 1);
        assert_eq!(
            slots.stats().buffers,
            1,
            "every hash and check reused the one buffer"
        );
    }

    #[test]
    fn a_password_change_revokes_tokens_only_against_the_checked_hash() {
        let dir = tempfile::tempdir().unwrap();
        let slots = PasswordSlots::new(1);
        let users = Users::open(dir.path(), "iggy", "iggy", &slots, 4096).unwrap();
        let alice = users
            .create(
                "alice",
                slots.secrets_now("old-pw", 4096).unwrap(),
                UserStatus::Active,
                None,
            )
            .unwrap();
        let token = users.create_token(alice.id, "ci-token", None).unwrap();
        let new = slots.secrets_now("new-pw", 4096).unwrap();
        let mut stale = alice.clone();
        stale.password_hash = "a stale hash".into();
        assert!(matches!(
            users.set_password(alice.id, &stale, new.clone(), true),
            Err(BrokerError::InvalidCredentials)
        ));
        assert_eq!(users.tokens(alice.id).len(), 1, "nothing changed");
        assert_eq!(users.set_password(alice.id, &alice, new, true).unwrap(), 1);
        assert!(users.authenticate_token(&token).is_err());
        let stored = users.get(alice.id).unwrap().password_hash;
        assert!(slots.verify_now("new-pw", &stored).unwrap());
    }

    /// One identity: setting a password stores SCRAM credentials for both mechanisms beside
    /// the Argon2 hash, never the password; a name unknown to AlterUserScramCredentials becomes
    /// a user without permissions or hash; deleting a credential that is not there fails.
    #[test]
    fn scram_credentials_are_kept_per_mechanism_and_create_kafka_users() {
        let dir = tempfile::tempdir().unwrap();
        let slots = PasswordSlots::new(1);
        let users = Users::open(dir.path(), "iggy", "root-pw", &slots, 4096).unwrap();
        let root = users.get(ROOT_USER_ID).unwrap();
        for m in ScramMechanism::ALL {
            let c = &root.scram[&m];
            assert_eq!(c.iterations, 4096);
            assert!(c.matches_password(m, "root-pw"));
        }
        let cred = ScramCredential::derive(ScramMechanism::Sha512, "kpw", 8192);
        let alter = |name: &str, ops: Vec<CredentialChange>| {
            let mut r = users
                .alter_scram(vec![(name.to_string(), ops)], false, 10, true)
                .unwrap();
            r.remove(0)
        };
        let bob = alter(
            "bob",
            vec![CredentialChange::Upsert(
                ScramMechanism::Sha512,
                cred.clone(),
            )],
        )
        .unwrap()
        .user;
        assert_eq!(bob.status, UserStatus::Active);
        assert!(bob.password_hash.is_empty() && bob.permissions.is_none());
        assert_eq!(users.find_by_name("bob").unwrap().scram.len(), 1);
        assert!(matches!(
            alter(
                "bob",
                vec![CredentialChange::Delete(ScramMechanism::Sha256)]
            ),
            Err(BrokerError::NoScramCredential { .. })
        ));
        alter(
            "bob",
            vec![CredentialChange::Delete(ScramMechanism::Sha512)],
        )
        .unwrap();
        assert!(users.find_by_name("bob").unwrap().scram.is_empty());
        // A users document written before SASL (no "scram" field) still loads.
        drop(users);
        let path = dir.path().join("users");
        let mut doc: serde_json::Value =
            serde_json::from_slice(&read_durable(&path).unwrap().unwrap()).unwrap();
        for u in doc["users"].as_object_mut().unwrap().values_mut() {
            u.as_object_mut().unwrap().remove("scram");
        }
        let old = serde_json::to_vec(&doc).unwrap();
        assert!(!String::from_utf8_lossy(&old).contains("scram"));
        write_durable(&path, &old).unwrap();
        let users = Users::open(dir.path(), "iggy", "root-pw", &slots, 4096).unwrap();
        assert!(users.get(ROOT_USER_ID).unwrap().scram.is_empty());
        assert!(users.find_by_name("bob").is_some());
    }

    /// AlterUserScramCredentials: only root changes root's credentials; an upsertion replaces
    /// the user's password secrets (the old password's Argon2 hash and other-mechanism
    /// credential go) and revokes its tokens; new users per request are capped.
    #[test]
    fn scram_alterations_guard_root_replace_old_secrets_and_cap_new_users() {
        let dir = tempfile::tempdir().unwrap();
        let slots = PasswordSlots::new(1);
        let users = Users::open(dir.path(), "iggy", "root-pw", &slots, 4096).unwrap();
        let m = ScramMechanism::Sha256;
        let upsert = |pw: &str| CredentialChange::Upsert(m, ScramCredential::derive(m, pw, 4096));
        let one = |name: &str, by_root: bool| {
            users
                .alter_scram(
                    vec![(name.into(), vec![upsert("new-pw")])],
                    by_root,
                    10,
                    true,
                )
                .unwrap()
                .remove(0)
        };
        // Bound: root's credentials change only by root.
        assert!(matches!(
            one("iggy", false),
            Err(BrokerError::CannotChangeRootCredentials)
        ));
        let del = vec![("iggy".into(), vec![CredentialChange::Delete(m)])];
        assert!(matches!(
            users.alter_scram(del, false, 10, true).unwrap()[0],
            Err(BrokerError::CannotChangeRootCredentials)
        ));
        let root = users.get(ROOT_USER_ID).unwrap();
        assert!(slots.verify_now("root-pw", &root.password_hash).unwrap());
        assert_eq!(root.scram.len(), 2);
        // A password rotation leaves nothing of the old password, and revokes tokens.
        let alice = users
            .create(
                "alice",
                slots.secrets_now("old-pw", 4096).unwrap(),
                UserStatus::Active,
                None,
            )
            .unwrap();
        users.create_token(alice.id, "ci-token", None).unwrap();
        let altered = one("alice", false).unwrap();
        assert!(altered.password_changed);
        let alice = users.get(alice.id).unwrap();
        assert!(
            alice.password_hash.is_empty(),
            "the old Argon2 hash is gone"
        );
        assert_eq!(alice.scram.keys().copied().collect::<Vec<_>>(), vec![m]);
        assert!(users.tokens(alice.id).is_empty());
        assert!(one("iggy", true).is_ok(), "root may rotate its own");
        // Bound: at most `max_new` users created per request, in one durable change.
        let many = (0..5)
            .map(|i| (format!("user-{i}"), vec![upsert("pw")]))
            .collect();
        let results = users.alter_scram(many, false, 3, true).unwrap();
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3);
        assert!(matches!(results[4], Err(BrokerError::TooManyNewUsers(3))));
        drop(users);
        let users = Users::open(dir.path(), "iggy", "root-pw", &slots, 4096).unwrap();
        assert!(users.find_by_name("user-2").is_some() && users.find_by_name("user-3").is_none());
    }

    #[test]
    fn kafka_grants_survive_native_permission_updates_and_old_documents_load() {
        let dir = tempfile::tempdir().unwrap();
        let slots = PasswordSlots::new(1);
        let users = Users::open(dir.path(), "iggy", "iggy", &slots, 4096).unwrap();
        let alice = users
            .create(
                "alice",
                slots.secrets_now("pw1", 4096).unwrap(),
                UserStatus::Active,
                None,
            )
            .unwrap();
        let grant = GroupGrant {
            pattern: NamePattern::Prefixed("app-".into()),
            rights: GroupPermissions {
                read: true,
                ..Default::default()
            },
        };
        users
            .change_permissions(alice.id, |p| {
                p.get_or_insert_with(Permissions::default)
                    .groups
                    .push(grant.clone())
            })
            .unwrap();
        // A native UpdatePermissions carries no group grants: they are kept.
        let mut native = Permissions::default();
        native.global.poll_messages = true;
        users
            .set_native_permissions(alice.id, Some(native))
            .unwrap();
        let p = users.get(alice.id).unwrap().permissions.unwrap();
        assert!(p.global.poll_messages);
        assert_eq!(p.groups, vec![grant.clone()]);
        // Clearing a user's permissions natively clears every right, the Kafka-only grants
        // included.
        users.set_native_permissions(alice.id, None).unwrap();
        assert_eq!(users.get(alice.id).unwrap().permissions, None);
        assert!(!users
            .get(alice.id)
            .unwrap()
            .permissions()
            .allows(Action::Group(GroupRight::Read, "app-1")));
        // A document written before the Kafka kinds existed.
        let old = r#"{"global":{"manage_servers":false,"read_servers":false,"manage_users":false,
            "read_users":false,"manage_streams":false,"read_streams":true,"manage_topics":false,
            "read_topics":false,"poll_messages":false,"send_messages":false},"streams":{}}"#;
        let p: Permissions = serde_json::from_str(old).unwrap();
        assert!(p.global.read_streams && p.groups.is_empty() && p.transactional_ids.is_empty());
    }

    #[test]
    fn permissions_imply_narrower_rights() {
        let mut p = Permissions::default();
        assert!(!p.allows(Action::Poll(1, 1)));
        p.streams.insert(
            1,
            StreamPermissions {
                read_stream: true,
                ..Default::default()
            },
        );
        assert!(p.allows(Action::Poll(1, 1)));
        assert!(p.allows(Action::ReadTopic(1, 5)));
        assert!(!p.allows(Action::Send(1, 1)));
        assert!(!p.allows(Action::Poll(2, 1)));
        p.global.manage_streams = true;
        assert!(p.allows(Action::Send(2, 1)));
        assert!(!p.allows(Action::ManageUsers));
        assert!(
            p.allows(Action::DescribeTopic(1, 9)),
            "reading implies describing"
        );
        let mut streams_only = Permissions::default();
        streams_only.streams.insert(
            1,
            StreamPermissions {
                manage_stream: true,
                ..Default::default()
            },
        );
        assert!(
            !streams_only.allows(Action::Group(GroupRight::Read, "g")),
            "groups are their own kind: a stream's rights grant none"
        );
        let mut pollers = Permissions::default();
        pollers.global.poll_messages = true;
        assert!(
            pollers.allows(Action::Group(GroupRight::Read, "any")),
            "as Iggy's groups"
        );
        assert!(!pollers.allows(Action::Group(GroupRight::Delete, "any")));
        assert!(Permissions::all().allows(Action::Group(GroupRight::Delete, "g")));
    }
}
