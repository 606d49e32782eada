//! Who is connected and who they are, for both doors: the connected clients, users and their
//! personal access tokens, logins. Password checks (Argon2) and changes to the users document
//! run on the blocking pool.

use std::net::SocketAddr;
use std::sync::Arc;

use super::users::PersonalAccessToken;
use super::{Broker, BrokerError, ClientInfo, User, Users};

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
        self.users.is_root_password(password)
    }

    /// Checks a username and password (Argon2, on the blocking pool).
    pub async fn login(&self, username: &str, password: &str) -> Result<User, BrokerError> {
        let (u, p) = (username.to_string(), password.to_string());
        self.change_users(move |users| users.authenticate(&u, &p))
            .await
    }

    /// Checks a personal access token (a SHA-256 look-up; no disk).
    pub fn login_with_token(&self, token: &str) -> Result<User, BrokerError> {
        self.users.authenticate_token(token)
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
