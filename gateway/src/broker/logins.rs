//! Login policy: how many password checks run at once and how failed logins are limited.

use std::time::Duration;

/// How logins are bounded (`[auth]` in `configs/server.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginSettings {
    /// Password verifications (Argon2, about 19 MiB each) that run at once; the rest wait.
    pub password_verifications: usize,
    /// Failed logins per address, and per user, within `failed_login_window` before further
    /// attempts are refused for `failed_login_lockout`.
    pub max_failed_logins: u32,
    pub failed_login_window: Duration,
    pub failed_login_lockout: Duration,
    /// A password change ends the user's other sessions and revokes their tokens.
    pub end_sessions_on_password_change: bool,
}

impl Default for LoginSettings {
    fn default() -> Self {
        LoginSettings {
            password_verifications: 2,
            max_failed_logins: 5,
            failed_login_window: Duration::from_secs(60),
            failed_login_lockout: Duration::from_secs(60),
            end_sessions_on_password_change: true,
        }
    }
}
