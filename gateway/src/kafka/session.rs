//! One Kafka connection's authentication: the SASL state (KIP-43 handshake, KIP-152
//! SaslAuthenticate, KIP-368 re-authentication) and who the connection is.
//!
//! On a listener with authentication "sasl", only ApiVersions, SaslHandshake and
//! SaslAuthenticate are served before authentication; any other request closes the connection,
//! as Kafka does. An authenticated connection is registered in the broker's clients as logged
//! in, so a password change that ends the user's sessions ends it too (its next request closes
//! the connection). With `connections_max_reauth`, a session ends after its lifetime (capped by
//! the expiry of a personal access token used as the password): the next request other than a
//! re-authentication closes the connection. On a listener with authentication "none", the
//! principal is `User:ANONYMOUS` and SASL requests are answered ILLEGAL_SASL_STATE.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::versions;
use super::Door;
use crate::broker::identity::SaslLogin;
use crate::broker::scram::ScramExchange;
use crate::broker::{now_us, Principal};
use crate::config::{KafkaAuthentication, KafkaListener, SaslMechanism};

/// Where the SASL exchange stands.
#[derive(Debug)]
pub enum SaslState {
    /// Waiting for SaslHandshake (first, or to re-authenticate).
    Handshake,
    /// Handshake done: waiting for the first SaslAuthenticate of `mechanism`.
    Authenticate(SaslMechanism),
    /// SCRAM: the server-first message was sent; waiting for the client's final message.
    ScramFinal(Box<ScramExchange>),
}

/// What to do with a request, before decoding it.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    /// Serve it as the session's principal.
    Serve,
    /// A SASL request: the session handles it.
    Sasl,
    /// Close the connection without an answer, for this reason.
    Close(&'static str),
}

/// After a SASL answer is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    KeepOpen,
    Close,
}

/// A connection's authentication.
#[derive(Debug)]
pub struct Session {
    sasl: bool,
    peer: SocketAddr,
    pub state: SaslState,
    principal: Principal,
    /// The connection's id in the broker's clients, once authenticated.
    client_id: Option<u32>,
    /// When the session must be re-authenticated.
    expires_at: Option<Instant>,
    /// The mechanism of the first authentication: a re-authentication must use it (KIP-368).
    mechanism: Option<SaslMechanism>,
}

impl Session {
    pub fn new(listener: &KafkaListener, peer: SocketAddr) -> Session {
        Session {
            sasl: listener.authentication == KafkaAuthentication::Sasl,
            peer,
            state: SaslState::Handshake,
            principal: Principal::Anonymous,
            client_id: None,
            expires_at: None,
            mechanism: None,
        }
    }

    /// Starts an exchange of `mechanism` after a handshake, unless it is a re-authentication
    /// with another mechanism than the first authentication's (KIP-368): then false.
    pub fn begin(&mut self, mechanism: SaslMechanism) -> bool {
        if self.user_id().is_none() {
            // A failed authentication closes the connection: the first success is this one.
            self.mechanism = Some(mechanism);
        } else if self.mechanism != Some(mechanism) {
            return false;
        }
        self.state = SaslState::Authenticate(mechanism);
        true
    }

    /// True on a listener with authentication "sasl".
    pub fn requires_sasl(&self) -> bool {
        self.sasl
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The user authenticated on this connection, if any.
    pub fn user_id(&self) -> Option<u32> {
        match self.principal {
            Principal::User(id) => Some(id),
            Principal::Anonymous => None,
        }
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Decides what happens to a request of `api_key` arriving `now`.
    pub fn gate(&self, door: &Door, api_key: i16, now: Instant) -> Gate {
        if api_key == versions::SASL_HANDSHAKE || api_key == versions::SASL_AUTHENTICATE {
            return Gate::Sasl;
        }
        if !self.sasl {
            return Gate::Serve;
        }
        let Some(user_id) = self.user_id() else {
            return if api_key == versions::API_VERSIONS
                && matches!(self.state, SaslState::Handshake)
            {
                Gate::Serve
            } else {
                Gate::Close("request before SASL authentication")
            };
        };
        if self.expires_at.is_some_and(|at| now >= at) {
            return Gate::Close("SASL session expired without re-authentication");
        }
        let still_logged_in = self
            .client_id
            .is_some_and(|c| door.broker.client_user(c) == Some(user_id));
        if !still_logged_in {
            return Gate::Close("SASL session ended (the user's password changed)");
        }
        Gate::Serve
    }

    /// Makes the session `login`'s, for `lifetime` (`None`: no limit). Returns the session
    /// lifetime to tell the client, in ms (0: none), or why it cannot be: re-authentication as
    /// another user, or a password change that raced the check.
    pub fn authenticated(
        &mut self,
        door: &Door,
        login: &SaslLogin,
        now: Instant,
    ) -> Result<i64, &'static str> {
        if let Some(previous) = self.user_id() {
            if previous != login.user.id {
                return Err("cannot change principals during re-authentication");
            }
        }
        let broker = &door.broker;
        let client_id = *self
            .client_id
            .get_or_insert_with(|| broker.connect_client(self.peer, "kafka"));
        if broker.log_in_client(client_id, &login.user).is_err() {
            return Err("the user's credentials changed during authentication");
        }
        let token_left = login
            .token_expiry_us
            .map(|at| Duration::from_micros(at.saturating_sub(now_us())));
        let lifetime = match (door.config.connections_max_reauth, token_left) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
        .map(|l| l.max(Duration::from_millis(1)));
        self.principal = Principal::User(login.user.id);
        self.expires_at = lifetime.map(|l| now + l);
        self.state = SaslState::Handshake;
        Ok(lifetime.map_or(0, |l| i64::try_from(l.as_millis()).unwrap_or(i64::MAX)))
    }

    /// Unregisters the connection from the broker's clients (when it closes).
    pub fn close(&mut self, door: &Door) {
        if let Some(id) = self.client_id.take() {
            door.broker.disconnect(id);
        }
    }
}
