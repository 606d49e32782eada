//! Who is connected and who they are, for both doors: the connected clients, users and their
//! personal access tokens, logins (native, and SASL PLAIN and SCRAM for the Kafka door, all
//! through the one limiter of failed logins). Password checks (Argon2 or PBKDF2, in bounded
//! slots: [`super::logins`]) and changes to the users document run on the blocking pool.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::time::Instant;

use super::logins::SlotStats;
use super::scram::{self, ClientFirst, ScramCredential, ScramError, ScramExchange, ScramMechanism};
use super::users::{
    validate_password, validate_username, PersonalAccessToken, UserStatus, ROOT_USER_ID,
};
use super::users::{Action, CredentialChange, PasswordSecrets};
use super::{Broker, BrokerError, ClientInfo, LogThrottle, Permissions, User, Users};

/// Fewest and most PBKDF2 iterations of a credential set by a client (Kafka's bounds in
/// AlterUserScramCredentials).
pub const MIN_CLIENT_ITERATIONS: u32 = 4096;
pub const MAX_CLIENT_ITERATIONS: u32 = 16384;

/// Most users one AlterUserScramCredentials request may create (the rest are refused with
/// [`BrokerError::TooManyNewUsers`]): a request may name 65,536 users.
pub const MAX_USERS_CREATED_PER_REQUEST: usize = 1000;

/// One operation of AlterUserScramCredentials, as the client sent it.
#[derive(Debug, Clone)]
pub enum ScramChange {
    Delete(ScramMechanism),
    Upsert {
        mechanism: ScramMechanism,
        iterations: i32,
        salt: Vec<u8>,
        salted_password: Vec<u8>,
    },
}

/// Checks an upsertion's iterations (Kafka's 4096..=16384), salt and salted password, and
/// derives the credential to keep.
fn credential_change(change: ScramChange) -> Result<CredentialChange, ScramChangeError> {
    match change {
        ScramChange::Delete(m) => Ok(CredentialChange::Delete(m)),
        ScramChange::Upsert {
            mechanism,
            iterations,
            salt,
            salted_password,
        } => {
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
            Ok(CredentialChange::Upsert(
                mechanism,
                ScramCredential::from_salted_password(
                    mechanism,
                    salt,
                    &salted_password,
                    iterations,
                ),
            ))
        }
    }
}

/// A SASL authentication that succeeded.
#[derive(Debug, Clone)]
pub struct SaslLogin {
    pub user: User,
    /// When the personal access token used as the password expires (µs since the epoch), if
    /// one was used and it expires: the session must end by then.
    pub token_expiry_us: Option<u64>,
    /// True when the password was a personal access token (expiring or not).
    pub token: bool,
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
    /// which has every right on data (as a Kafka broker without an authorizer allows
    /// everything) but may not read or change users and their permissions, which the native
    /// door guards with its login.
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
        let attempt = self.admit(peer, Some(username)).await?;
        let user = self.users.find_by_name(username);
        if self.password_matches(user.as_ref(), password).await {
            if let Some(user) = user {
                if user.status == UserStatus::Active {
                    attempt.succeeded(Instant::now());
                    return Ok(user);
                }
                // An inactive user's right password counts as a failure: it neither resets
                // the limiter nor answers sooner than a wrong password.
                let delay = attempt.failed(Instant::now());
                tokio::time::sleep(delay).await;
                return Err(BrokerError::UserInactive);
            }
        }
        let delay = attempt.failed(Instant::now());
        tokio::time::sleep(delay).await;
        Err(BrokerError::InvalidCredentials)
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

    /// True when `password` is `user`'s: checked against the Argon2 hash, or for a user
    /// without one (its password set from Kafka) against its SCRAM credentials (PBKDF2, in a
    /// slot too): all of them come from the same password (an upsertion replaces the others),
    /// so any one matching is enough. An unknown user, or one without either, is checked
    /// against the dummy hash, at the same cost.
    async fn password_matches(&self, user: Option<&User>, password: &str) -> bool {
        let scram_only: Vec<(ScramMechanism, ScramCredential)> = user
            .filter(|u| u.password_hash.is_empty())
            .map(|u| u.scram.iter().map(|(m, c)| (*m, c.clone())).collect())
            .unwrap_or_default();
        let matches = if scram_only.is_empty() {
            let hash = user
                .map(|u| u.password_hash.as_str())
                .filter(|h| !h.is_empty())
                .unwrap_or(self.logins.dummy_hash.as_str());
            self.logins.slots.verify(password, hash).await
        } else {
            let password = password.to_string();
            self.logins
                .slots
                .compute(move || {
                    Ok(scram_only
                        .iter()
                        .any(|(m, c)| c.matches_password(*m, &password)))
                })
                .await
                .and_then(|r| r)
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
                    token: true,
                }),
                _ => {
                    let user = self.users.find_by_name(username);
                    if self.password_matches(user.as_ref(), password).await {
                        user.map(|user| SaslLogin {
                            user,
                            token_expiry_us: None,
                            token: false,
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
                    token: false,
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
    /// password is a failure for the limiter (with its delay) and a refusal for the client.
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
                if login.user.status != UserStatus::Active {
                    let delay = attempt.failed(Instant::now());
                    log_sasl_failure(mechanism, username, peer, "user is inactive");
                    tokio::time::sleep(delay).await;
                    return Err(BrokerError::UserInactive);
                }
                attempt.succeeded(Instant::now());
                tracing::info!(
                    principal = %format!("User:{}", login.user.username),
                    mechanism,
                    %peer,
                    token = login.token,
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

    /// AlterUserScramCredentials for `principal` (Kafka's Alter on Cluster: `manage_users`):
    /// each user's deletions and upsertions (an upsertion carries the salted password a client
    /// computed; only StoredKey and ServerKey are kept), applied in ONE durable change. Returns
    /// one outcome per user, in order, or `Unauthorized` for the whole request.
    ///
    /// An upsertion changes the user's password: its secrets become just the credentials
    /// upserted by this request, and, as for a native password change, with
    /// `end_sessions_on_password_change` its tokens are revoked and its sessions end. Root's
    /// credentials may be changed by root only. At most [`MAX_USERS_CREATED_PER_REQUEST`] new
    /// users per request.
    pub async fn alter_scram_credentials(
        &self,
        principal: &Principal,
        changes: Vec<(String, Vec<ScramChange>)>,
    ) -> Result<Vec<Result<(), ScramChangeError>>, BrokerError> {
        self.authorize(principal, Action::ManageUsers)?;
        let by_root = *principal == Principal::User(ROOT_USER_ID);
        let mut outcomes: Vec<Result<(), ScramChangeError>> = Vec::with_capacity(changes.len());
        let mut valid = Vec::new();
        for (name, ops) in changes {
            match ops.into_iter().map(credential_change).collect() {
                Ok(ops) => {
                    valid.push((name, ops));
                    outcomes.push(Ok(()));
                }
                Err(e) => outcomes.push(Err(e)),
            }
        }
        let end_sessions = self.logins.settings.end_sessions_on_password_change;
        let applied = self
            .change_users(move |users| {
                users.alter_scram(valid, by_root, MAX_USERS_CREATED_PER_REQUEST, end_sessions)
            })
            .await?;
        let mut applied = applied.into_iter();
        for outcome in outcomes.iter_mut().filter(|o| o.is_ok()) {
            let Some(result) = applied.next() else { break };
            match result {
                Ok(altered) => {
                    tracing::info!(user = %altered.user.username, "SCRAM credentials altered");
                    if altered.password_changed && end_sessions {
                        // No connection is kept: the request may come from any user's session.
                        let ended = self.clients.end_sessions(altered.user.id, u32::MAX);
                        tracing::info!(
                            user = %altered.user.username,
                            ended,
                            "password changed: other sessions ended, personal access tokens revoked"
                        );
                    }
                }
                Err(e) => *outcome = Err(e.into()),
            }
        }
        Ok(outcomes)
    }

    /// DescribeUserScramCredentials for `principal` (Kafka's Describe on Cluster:
    /// `read_users`): the users who have a SCRAM credential.
    pub fn scram_users(&self, principal: &Principal) -> Result<Vec<User>, BrokerError> {
        self.authorize(principal, Action::ReadUsers)?;
        Ok(self
            .users
            .list()
            .into_iter()
            .filter(|u| !u.scram.is_empty())
            .collect())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::logins::LoginSettings;
    use crate::broker::BrokerSettings;

    fn broker(dir: &std::path::Path) -> Broker {
        let settings = BrokerSettings {
            logins: LoginSettings {
                max_failed_logins: 3,
                ..LoginSettings::default()
            },
            ..BrokerSettings::for_tests()
        };
        Broker::open(dir, wharf_log_store::StoreConfig::default(), settings).unwrap()
    }

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    /// Bound: an inactive user's right password is a failed login (max_failed_logins = 3), by
    /// native login, PLAIN and SCRAM alike, so it locks the user out rather than resetting.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_inactive_users_right_password_counts_as_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        b.create_user("idle", "idle-pw", UserStatus::Inactive, None)
            .await
            .unwrap();
        assert!(matches!(
            b.login("idle", "idle-pw", PEER).await,
            Err(BrokerError::UserInactive)
        ));
        assert!(matches!(
            b.authenticate_plain("", "idle", "idle-pw", PEER).await,
            Err(BrokerError::UserInactive)
        ));
        let m = ScramMechanism::Sha256;
        let exchange = b
            .scram_start(m, b"n,,n=idle,r=client-nonce", PEER)
            .await
            .unwrap();
        let server_first = String::from_utf8(exchange.server_first().to_vec()).unwrap();
        let (client_final, _) = crate::broker::scram::tests::client_final(
            m,
            "idle-pw",
            "n=idle,r=client-nonce",
            &server_first,
            "biws",
        );
        assert!(matches!(
            b.scram_finish(&exchange, client_final.as_bytes(), PEER)
                .await,
            Err(BrokerError::UserInactive)
        ));
        assert!(
            b.logins
                .limiter
                .attempt(Instant::now(), PEER, Some("idle"))
                .is_err(),
            "three right passwords of an inactive user lock it out"
        );
    }

    /// A personal access token that never expires, used as a PLAIN password, is logged as a
    /// token; the SCRAM stand-in secret is the same after a restart.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn plain_token_logins_are_flagged_and_the_stand_in_secret_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        {
            let token = b
                .users
                .create_token(ROOT_USER_ID, "ci-token", None)
                .unwrap();
            let login = b
                .authenticate_plain("", "iggy", &token, PEER)
                .await
                .unwrap();
            assert!(login.token && login.token_expiry_us.is_none());
            let login = b
                .authenticate_plain("", "iggy", "iggy", PEER)
                .await
                .unwrap();
            assert!(!login.token);
        }
        // What a restart reads back from the data directory.
        let stored = crate::broker::logins::stand_in_secret(dir.path()).unwrap();
        assert_eq!(b.logins.scram_secret, stored);
    }
}
