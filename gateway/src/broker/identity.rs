//! Who is connected and who they are, for both doors: the connected clients, users and their
//! personal access tokens, logins (native, and SASL PLAIN and SCRAM for the Kafka door, all
//! through the one limiter of failed logins). Password checks (Argon2 or PBKDF2, in bounded
//! slots: [`super::logins`]) and changes to the users document run on the blocking pool.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::time::Instant;

use super::logins::SlotStats;
use super::scram::{self, ClientFirst, ScramCredential, ScramError, ScramExchange, ScramMechanism};
use super::users::PasswordSecrets;
use super::users::{
    validate_password, validate_username, PersonalAccessToken, UserStatus, ROOT_USER_ID,
};
use super::{Broker, BrokerError, ClientInfo, LogThrottle, Permissions, User, Users};

/// Fewest and most PBKDF2 iterations of a credential set by a client (Kafka's bounds in
/// AlterUserScramCredentials).
pub const MIN_CLIENT_ITERATIONS: u32 = 4096;
pub const MAX_CLIENT_ITERATIONS: u32 = 16384;

/// A SASL authentication that succeeded.
#[derive(Debug, Clone)]
pub struct SaslLogin {
    pub user: User,
    /// When the personal access token used as the password expires (µs since the epoch), if
    /// one was used and it expires: the session must end by then.
    pub token_expiry_us: Option<u64>,
}

/// Why AlterUserScramCredentials refused an upsertion.
#[derive(Debug, thiserror::Error)]
pub enum ScramChangeError {
    #[error(
        "iterations must be between {MIN_CLIENT_ITERATIONS} and {MAX_CLIENT_ITERATIONS}, not {0}"
    )]
    Iterations(i32),
    #[error("the salt must have 1..={max} bytes, not {0}", max = scram::MAX_SALT_LEN)]
    Salt(usize),
    #[error("the salted password has {0} bytes, not the mechanism's hash size")]
    SaltedPassword(usize),
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// Failed SASL authentications are logged at most once per this interval (with a count of the
/// lines left out), so a flood of wrong passwords cannot fill the log; the limiter reports
/// per address as well.
const SASL_FAILURE_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

fn log_sasl_failure(mechanism: &str, username: &str, peer: IpAddr, reason: &str) {
    static FAILURES: LogThrottle = LogThrottle::new(SASL_FAILURE_LOG_INTERVAL);
    let Some(left_out) = FAILURES.admit(std::time::Instant::now()) else {
        return;
    };
    // The name as the client sent it, bounded: it may be anything.
    let shown: String = username.chars().take(64).collect();
    tracing::warn!(
        principal = %format!("User:{shown}"),
        mechanism,
        %peer,
        left_out,
        "kafka SASL authentication failed: {reason} ({left_out} more failures since the last line)"
    );
}

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
        let attempt = self.admit(peer, Some(username)).await?;
        let user = self.users.find_by_name(username);
        if self.password_matches(user.as_ref(), password).await {
            if let Some(user) = user {
                attempt.succeeded(Instant::now());
                return Ok(user);
            }
        }
        // The slot is free again: the delay holds nothing but this login.
        let delay = attempt.failed(Instant::now());
        tokio::time::sleep(delay).await;
        Err(BrokerError::InvalidCredentials)
    }

    /// Admits a login attempt from `peer` for `username`, or waits as long as a checked wrong
    /// password would have taken and refuses it.
    async fn admit(
        &self,
        peer: IpAddr,
        username: Option<&str>,
    ) -> Result<super::logins::Attempt<'_>, BrokerError> {
        match self.logins.limiter.attempt(Instant::now(), peer, username) {
            Ok(a) => Ok(a),
            Err(delay) => {
                let check = self.logins.slots.typical_duration();
                tokio::time::sleep(delay + check).await;
                Err(BrokerError::InvalidCredentials)
            }
        }
    }

    /// True when `password` is `user`'s: checked against the Argon2 hash, or for a user created
    /// from Kafka (no hash) against a SCRAM credential (PBKDF2, in a slot too). An unknown user,
    /// or one without either, is checked against the dummy hash, at the same cost.
    async fn password_matches(&self, user: Option<&User>, password: &str) -> bool {
        let scram_only = user
            .filter(|u| u.password_hash.is_empty())
            .and_then(|u| u.scram.iter().next_back())
            .map(|(m, c)| (*m, c.clone()));
        let matches = match scram_only {
            Some((m, credential)) => {
                let password = password.to_string();
                self.logins
                    .slots
                    .compute(move || Ok(credential.matches_password(m, &password)))
                    .await
                    .and_then(|r| r)
            }
            None => {
                let hash = user
                    .map(|u| u.password_hash.as_str())
                    .filter(|h| !h.is_empty())
                    .unwrap_or(self.logins.dummy_hash.as_str());
                self.logins.slots.verify(password, hash).await
            }
        };
        matches.unwrap_or_else(|e| {
            tracing::warn!("cannot check a password: {e}");
            false
        }) && user.is_some()
    }

    /// SASL/PLAIN on the Kafka door: `username` with `password`, which may also be one of the
    /// user's personal access tokens; `authzid` must be empty or the username. Counts in the
    /// login limiter like a native login. Logs the outcome with the peer.
    pub async fn authenticate_plain(
        &self,
        authzid: &str,
        username: &str,
        password: &str,
        peer: IpAddr,
    ) -> Result<SaslLogin, BrokerError> {
        let attempt = self.admit(peer, Some(username)).await?;
        let result = if !authzid.is_empty() && authzid != username {
            Err(BrokerError::InvalidCredentials)
        } else {
            match self.users.authenticate_token_expiring(password) {
                Ok((user, expiry)) if user.username == username => Ok(SaslLogin {
                    user,
                    token_expiry_us: expiry,
                }),
                _ => {
                    let user = self.users.find_by_name(username);
                    if self.password_matches(user.as_ref(), password).await {
                        user.map(|user| SaslLogin {
                            user,
                            token_expiry_us: None,
                        })
                        .ok_or(BrokerError::InvalidCredentials)
                    } else {
                        Err(BrokerError::InvalidCredentials)
                    }
                }
            }
        };
        self.finish_sasl(attempt, result, "PLAIN", username, peer)
            .await
    }

    /// Starts a SCRAM exchange on the Kafka door: parses the client's first message and answers
    /// with the user's salt and iterations. A user without a credential for `mechanism` (or
    /// unknown) gets a stand-in that fails only at [`Broker::scram_finish`]. A malformed
    /// message is a failed login of `peer`.
    pub async fn scram_start(
        &self,
        mechanism: ScramMechanism,
        client_first: &[u8],
        peer: IpAddr,
    ) -> Result<ScramExchange, ScramError> {
        let first: ClientFirst = match scram::parse_client_first(client_first) {
            Ok(f) => f,
            Err(e) => {
                if let Ok(attempt) = self.admit(peer, None).await {
                    let delay = attempt.failed(Instant::now());
                    tokio::time::sleep(delay).await;
                }
                return Err(e);
            }
        };
        let credential = self
            .users
            .find_by_name(&first.username)
            .and_then(|u| u.scram.get(&mechanism).cloned())
            .unwrap_or_else(|| {
                ScramCredential::stand_in(
                    mechanism,
                    &self.logins.scram_secret,
                    &first.username,
                    self.logins.settings.scram_iterations,
                )
            });
        Ok(ScramExchange::new(mechanism, first, credential))
    }

    /// Ends a SCRAM exchange with the client's final message: the proof is checked (counted in
    /// the login limiter like a password) and the user must still have the credential the
    /// exchange began with. Returns the user and `server-final-message`.
    pub async fn scram_finish(
        &self,
        exchange: &ScramExchange,
        client_final: &[u8],
        peer: IpAddr,
    ) -> Result<(SaslLogin, Vec<u8>), BrokerError> {
        let username = exchange.username().to_string();
        let attempt = self.admit(peer, Some(&username)).await?;
        let mechanism = exchange.mechanism();
        let result = exchange
            .finish(client_final)
            .map_err(|_| BrokerError::InvalidCredentials)
            .and_then(|server_final| {
                let user = self
                    .users
                    .find_by_name(&username)
                    .ok_or(BrokerError::InvalidCredentials)?;
                if !user.scram.get(&mechanism).is_some_and(|c| exchange.uses(c)) {
                    return Err(BrokerError::InvalidCredentials);
                }
                Ok((user, server_final))
            });
        let (result, server_final) = match result {
            Ok((user, server_final)) => (
                Ok(SaslLogin {
                    user,
                    token_expiry_us: None,
                }),
                server_final,
            ),
            Err(e) => (Err(e), Vec::new()),
        };
        let login = self
            .finish_sasl(attempt, result, mechanism.name(), &username, peer)
            .await?;
        Ok((login, server_final))
    }

    /// Reports a SASL attempt's outcome to the limiter and the log; an inactive user's right
    /// password is a success for the limiter and a refusal for the client.
    async fn finish_sasl(
        &self,
        attempt: super::logins::Attempt<'_>,
        result: Result<SaslLogin, BrokerError>,
        mechanism: &str,
        username: &str,
        peer: IpAddr,
    ) -> Result<SaslLogin, BrokerError> {
        match result {
            Ok(login) => {
                attempt.succeeded(Instant::now());
                if login.user.status != UserStatus::Active {
                    log_sasl_failure(mechanism, username, peer, "user is inactive");
                    return Err(BrokerError::UserInactive);
                }
                tracing::info!(
                    principal = %format!("User:{}", login.user.username),
                    mechanism,
                    %peer,
                    token = login.token_expiry_us.is_some(),
                    "kafka SASL authentication succeeded"
                );
                Ok(login)
            }
            Err(e) => {
                let delay = attempt.failed(Instant::now());
                log_sasl_failure(mechanism, username, peer, "invalid credentials");
                tokio::time::sleep(delay).await;
                Err(e)
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
                .is_some_and(|u| u.same_secrets(user))
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
        let secrets = self.password_secrets(password).await?;
        let username = username.to_string();
        self.change_users(move |users| users.create(&username, secrets, status, permissions))
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
        let secrets = self.password_secrets(new).await?;
        let end_sessions = self.logins.settings.end_sessions_on_password_change;
        let verified = user.clone();
        let revoked = self
            .change_users(move |users| {
                users.set_password(user_id, &verified, secrets, end_sessions)
            })
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

    /// The Argon2 hash and SCRAM credentials to store for `password` (in a password slot).
    async fn password_secrets(&self, password: &str) -> Result<PasswordSecrets, BrokerError> {
        self.logins
            .slots
            .secrets(password, self.logins.settings.scram_iterations)
            .await
    }

    /// AlterUserScramCredentials: sets user `name`'s credential for `mechanism` from the salted
    /// password a client computed (only StoredKey and ServerKey are kept), creating the user
    /// when none has that name. `iterations` must be within Kafka's 4096..=16384.
    pub async fn upsert_scram_credential(
        &self,
        name: &str,
        mechanism: ScramMechanism,
        salt: Vec<u8>,
        salted_password: Vec<u8>,
        iterations: i32,
    ) -> Result<User, ScramChangeError> {
        let iterations = u32::try_from(iterations)
            .ok()
            .filter(|i| (MIN_CLIENT_ITERATIONS..=MAX_CLIENT_ITERATIONS).contains(i))
            .ok_or(ScramChangeError::Iterations(iterations))?;
        if salt.is_empty() || salt.len() > scram::MAX_SALT_LEN {
            return Err(ScramChangeError::Salt(salt.len()));
        }
        if salted_password.len() != mechanism.output_len() {
            return Err(ScramChangeError::SaltedPassword(salted_password.len()));
        }
        let credential =
            ScramCredential::from_salted_password(mechanism, salt, &salted_password, iterations);
        let name = name.to_string();
        let user = self
            .change_users(move |users| users.upsert_scram(&name, mechanism, credential))
            .await?;
        tracing::info!(user = %user.username, %mechanism, "SCRAM credential set");
        Ok(user)
    }

    /// AlterUserScramCredentials: removes user `name`'s credential for `mechanism`.
    pub async fn delete_scram_credential(
        &self,
        name: &str,
        mechanism: ScramMechanism,
    ) -> Result<(), BrokerError> {
        let name = name.to_string();
        self.change_users(move |users| users.delete_scram(&name, mechanism))
            .await
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
