//! Who is connected and who they are, for both doors: the connected clients, users and their
//! personal access tokens, logins. Password checks (Argon2, in bounded slots: [`super::logins`])
//! and changes to the users document run on the blocking pool.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::time::Instant;

use super::logins::SlotStats;
use super::users::{
    validate_password, validate_username, PersonalAccessToken, UserStatus, ROOT_USER_ID,
};
use super::{Broker, BrokerError, ClientInfo, Permissions, User, Users};

/// Who a request comes from, as authorization sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Kafka's `User:ANONYMOUS`: a connection on a Kafka listener with authentication "none",
    /// which has every right (as a Kafka broker without an authorizer allows everything).
    Anonymous,
    /// A Wharf user, by id (its rights are read when each request is authorized, so a change of
    /// permissions applies at once).
    User(u32),
}

impl Broker {
    /// Registers a new connection; returns its client id.
    pub fn connect_client(&self, address: SocketAddr, transport: &'static str) -> u32 {
        self.clients.connect(address, transport)
    }

    /// Records which user a connection is logged in as (`None`: logged out).
    pub fn set_client_user(&self, client_id: u32, user_id: Option<u32>) {
        self.clients.set_user(client_id, user_id);
    }

    pub fn client(&self, client_id: u32) -> Option<ClientInfo> {
        self.clients.get(client_id)
    }

    pub fn clients(&self) -> Vec<ClientInfo> {
        self.clients.list()
    }

    pub fn client_count(&self) -> usize {
        self.clients.count()
    }

    pub fn user(&self, id: u32) -> Option<User> {
        self.users.get(id)
    }

    pub fn user_by_name(&self, name: &str) -> Option<User> {
        self.users.find_by_name(name)
    }

    pub fn users(&self) -> Vec<User> {
        self.users.list()
    }

    /// A user's personal access tokens (names and expiries; the tokens are never kept).
    pub fn tokens(&self, user_id: u32) -> Vec<PersonalAccessToken> {
        self.users.tokens(user_id)
    }

    /// True while the root user still has `password` (the default one, at start).
    pub fn root_has_password(&self, password: &str) -> bool {
        self.users.get(ROOT_USER_ID).is_some_and(|root| {
            self.logins
                .slots
                .verify_now(password, &root.password_hash)
                .unwrap_or(false)
        })
    }

    /// Checks a username and password for a login from `peer`, on either door.
    ///
    /// Failed logins are limited per address and per username (see
    /// [`super::logins::LoginLimiter`]); a refused attempt runs no password check and is
    /// answered, after a delay, exactly like a wrong password. An unknown user's password is
    /// checked against a dummy hash, so it costs the same as a wrong password. At most
    /// `password_verifications` checks run at once; the others wait without holding memory.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        peer: IpAddr,
    ) -> Result<User, BrokerError> {
        let user = self.check_password(username, password, peer).await?;
        if user.status != UserStatus::Active {
            return Err(BrokerError::UserInactive);
        }
        Ok(user)
    }

    /// The user named `username` if `password` is theirs, whatever their status; failures count
    /// against `peer` and the username.
    async fn check_password(
        &self,
        username: &str,
        password: &str,
        peer: IpAddr,
    ) -> Result<User, BrokerError> {
        let attempt = match self
            .logins
            .limiter
            .attempt(Instant::now(), peer, Some(username))
        {
            Ok(a) => a,
            Err(delay) => {
                // As long as a checked wrong password would have taken.
                let check = self.logins.slots.typical_duration();
                tokio::time::sleep(delay + check).await;
                return Err(BrokerError::InvalidCredentials);
            }
        };
        let user = self.users.find_by_name(username);
        let hash = user.as_ref().map_or(self.logins.dummy_hash.as_str(), |u| {
            u.password_hash.as_str()
        });
        let matches = self.logins.slots.verify(password, hash).await;
        match (user, matches) {
            (Some(user), Ok(true)) => {
                attempt.succeeded(Instant::now());
                Ok(user)
            }
            (_, matches) => {
                if let Err(e) = matches {
                    tracing::warn!("cannot check a password: {e}");
                }
                // The slot is free again: the delay holds nothing but this login.
                let delay = attempt.failed(Instant::now());
                tokio::time::sleep(delay).await;
                Err(BrokerError::InvalidCredentials)
            }
        }
    }

    /// Checks a personal access token for a login from `peer` (a SHA-256 look-up). Wrong tokens
    /// count as failed logins of the address, as wrong passwords do.
    pub async fn login_with_token(&self, token: &str, peer: IpAddr) -> Result<User, BrokerError> {
        let attempt = match self.logins.limiter.attempt(Instant::now(), peer, None) {
            Ok(a) => a,
            Err(delay) => {
                tokio::time::sleep(delay).await;
                return Err(BrokerError::InvalidToken);
            }
        };
        match self.users.authenticate_token(token) {
            Err(e @ (BrokerError::InvalidToken | BrokerError::TokenExpired(_))) => {
                let delay = attempt.failed(Instant::now());
                tokio::time::sleep(delay).await;
                Err(e)
            }
            other => {
                attempt.succeeded(Instant::now());
                other
            }
        }
    }

    /// Records that connection `client_id` is logged in as `user` (as checked by
    /// [`Broker::login`] or [`Broker::login_with_token`]), unless the user's password changed
    /// since the check: a login racing a password change either happens before it (and is
    /// ended by it) or is refused.
    pub fn log_in_client(&self, client_id: u32, user: &User) -> Result<(), BrokerError> {
        let still_current = || {
            self.users
                .get(user.id)
                .is_some_and(|u| u.password_hash == user.password_hash)
        };
        if self.clients.log_in_if(client_id, user.id, still_current) {
            Ok(())
        } else {
            Err(BrokerError::InvalidCredentials)
        }
    }

    /// The user connection `client_id` is logged in as.
    pub fn client_user(&self, client_id: u32) -> Option<u32> {
        self.clients.user_of(client_id)
    }

    /// Creates a user (the password hashed in a password slot).
    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
        status: UserStatus,
        permissions: Option<Permissions>,
    ) -> Result<User, BrokerError> {
        validate_username(username)?;
        validate_password(password)?;
        let hash = self.logins.slots.hash(password).await?;
        let username = username.to_string();
        self.change_users(move |users| users.create(&username, hash, status, permissions))
            .await
    }

    /// Changes user `user_id`'s password, asked by connection `by_client` from `peer`. The
    /// current password is checked like a login (a wrong one is a failed login). With
    /// `end_sessions_on_password_change`, the user's personal access tokens are revoked in the
    /// same durable change and every other connection logged in as the user is logged out:
    /// its next request gets "unauthenticated".
    pub async fn change_password(
        &self,
        by_client: u32,
        peer: IpAddr,
        user_id: u32,
        current: &str,
        new: &str,
    ) -> Result<(), BrokerError> {
        validate_password(new)?;
        let user = self
            .users
            .get(user_id)
            .ok_or_else(|| BrokerError::UserNotFound(user_id.to_string()))?;
        let user = self.check_password(&user.username, current, peer).await?;
        let hash = self.logins.slots.hash(new).await?;
        let end_sessions = self.logins.settings.end_sessions_on_password_change;
        let verified = user.password_hash.clone();
        let revoked = self
            .change_users(move |users| users.set_password(user_id, &verified, hash, end_sessions))
            .await?;
        if end_sessions {
            // After the change is durable and visible: a racing login checks the hash under the
            // registry's lock, so it is either ended here or refused (see `log_in_client`).
            let ended = self.clients.end_sessions(user_id, by_client);
            tracing::info!(
                user = %user.username,
                ended,
                revoked,
                "password changed: other sessions ended, personal access tokens revoked"
            );
        }
        Ok(())
    }

    /// What the password slots have done (for tests and diagnostics).
    pub fn password_stats(&self) -> SlotStats {
        self.logins.slots.stats()
    }

    /// Runs a change to the users on the blocking pool: it may hash a password with Argon2
    /// (tens of milliseconds of CPU) and rewrites the users document durably.
    pub async fn change_users<T, F>(&self, change: F) -> Result<T, BrokerError>
    where
        T: Send + 'static,
        F: FnOnce(&Users) -> Result<T, BrokerError> + Send + 'static,
    {
        let users = Arc::clone(&self.users);
        tokio::task::spawn_blocking(move || change(&users))
            .await
            .unwrap_or_else(|e| Err(BrokerError::Internal(format!("blocking task failed: {e}"))))
    }
}
