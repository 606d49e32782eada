//! SaslAuthenticate (KIP-152): the SASL exchange of the mechanism chosen in SaslHandshake,
//! checked against Wharf's users by the broker (PLAIN: password or personal access token;
//! SCRAM-SHA-256/512: two round trips). A failure is answered SASL_AUTHENTICATION_FAILED with a
//! message and the connection closes, as Kafka does; v1+ answers carry the session lifetime
//! (KIP-368).

use std::net::IpAddr;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};
use tokio::time::Instant;

use super::{str_bytes, Request};
use crate::broker::identity::SaslLogin;
use crate::broker::scram::ScramMechanism;
use crate::config::SaslMechanism;
use crate::kafka::session::{After, SaslState, Session};

/// Longest SASL/PLAIN message accepted (a username of at most 50 characters, a password of at
/// most 100, an authorization id like the username, in UTF-8).
pub const MAX_PLAIN_MESSAGE: usize = 1024;

/// Kafka's message for a failed PLAIN authentication.
const PLAIN_FAILED: &str = "Authentication failed: Invalid username or password";

pub async fn handle(
    req: &Request<'_>,
    session: &mut Session,
    body: SaslAuthenticateRequest,
) -> (SaslAuthenticateResponse, After) {
    if !session.requires_sasl() {
        return (
            failure(
                ResponseError::IllegalSaslState,
                "this listener does not use SASL",
            ),
            After::KeepOpen,
        );
    }
    let peer = session.peer().ip();
    let broker = req.broker();
    let state = std::mem::replace(&mut session.state, SaslState::Handshake);
    let outcome = match state {
        SaslState::Handshake => Err((
            ResponseError::IllegalSaslState,
            "SaslAuthenticate before SaslHandshake".to_string(),
        )),
        SaslState::Authenticate(SaslMechanism::Plain) => match parse_plain(&body.auth_bytes) {
            Err(reason) => Err((ResponseError::SaslAuthenticationFailed, reason.into())),
            Ok((authzid, username, password)) => broker
                .authenticate_plain(authzid, username, password, peer)
                .await
                .map(|login| (login, Bytes::new()))
                .map_err(|_| (ResponseError::SaslAuthenticationFailed, PLAIN_FAILED.into())),
        },
        SaslState::Authenticate(m) => {
            let Some(mechanism) = ScramMechanism::from_name(m.name()) else {
                return (
                    failure(ResponseError::UnsupportedSaslMechanism, m.name()),
                    After::Close,
                );
            };
            return match broker.scram_start(mechanism, &body.auth_bytes, peer).await {
                Ok(exchange) => {
                    let first = Bytes::copy_from_slice(exchange.server_first());
                    session.state = SaslState::ScramFinal(Box::new(exchange));
                    (
                        SaslAuthenticateResponse::default().with_auth_bytes(first),
                        After::KeepOpen,
                    )
                }
                Err(e) => {
                    let message = format!("Authentication failed: {e}");
                    (
                        failure(ResponseError::SaslAuthenticationFailed, &message),
                        After::Close,
                    )
                }
            };
        }
        SaslState::ScramFinal(exchange) => broker
            .scram_finish(&exchange, &body.auth_bytes, peer)
            .await
            .map(|(login, server_final)| (login, Bytes::from(server_final)))
            .map_err(|_| {
                (
                    ResponseError::SaslAuthenticationFailed,
                    format!(
                        "Authentication failed during authentication due to invalid credentials \
                         with SASL mechanism {}",
                        exchange.mechanism()
                    ),
                )
            }),
    };
    match outcome.and_then(|(login, bytes)| complete(req, session, &login, bytes, peer)) {
        Ok(answer) => (answer, After::KeepOpen),
        Err((e, message)) => (failure(e, &message), After::Close),
    }
}

/// The answer to a successful exchange, once the session is the user's.
fn complete(
    req: &Request<'_>,
    session: &mut Session,
    login: &SaslLogin,
    auth_bytes: Bytes,
    peer: IpAddr,
) -> Result<SaslAuthenticateResponse, (ResponseError, String)> {
    match session.authenticated(req.door, login, Instant::now()) {
        Ok(lifetime_ms) => Ok(SaslAuthenticateResponse::default()
            .with_auth_bytes(auth_bytes)
            .with_session_lifetime_ms(lifetime_ms)),
        Err(reason) => {
            tracing::warn!(
                principal = %format!("User:{}", login.user.username),
                %peer,
                "kafka SASL authentication refused: {reason}"
            );
            Err((ResponseError::SaslAuthenticationFailed, reason.to_string()))
        }
    }
}

fn failure(e: ResponseError, message: &str) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(e.code())
        .with_error_message(Some(str_bytes(message)))
}

/// A SASL/PLAIN message (RFC 4616): `authzid NUL authcid NUL passwd`, bounded.
pub fn parse_plain(bytes: &[u8]) -> Result<(&str, &str, &str), &'static str> {
    if bytes.len() > MAX_PLAIN_MESSAGE {
        return Err("Invalid SASL/PLAIN response: too long");
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "Invalid SASL/PLAIN response: not UTF-8")?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(username), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("Invalid SASL/PLAIN response: expected 3 tokens");
    };
    if username.is_empty() {
        return Err("Authentication failed: username not specified");
    }
    if password.is_empty() {
        return Err("Authentication failed: password not specified");
    }
    Ok((authzid, username, password))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bound: PLAIN messages over MAX_PLAIN_MESSAGE bytes are refused; malformed ones are
    /// errors, never panics.
    #[test]
    fn plain_messages_are_bounded_and_parsed_strictly() {
        assert_eq!(parse_plain(b"\0alice\0pw"), Ok(("", "alice", "pw")));
        assert_eq!(
            parse_plain(b"alice\0alice\0pw"),
            Ok(("alice", "alice", "pw"))
        );
        for bad in [
            &b""[..],
            b"alice",
            b"\0alice",
            b"\0\0pw",
            b"\0alice\0",
            b"\0alice\0pw\0x",
            b"\0al\xffice\0pw",
        ] {
            assert!(parse_plain(bad).is_err(), "{bad:?}");
        }
        let long = format!("\0alice\0{}", "p".repeat(MAX_PLAIN_MESSAGE));
        assert!(parse_plain(long.as_bytes()).is_err());
    }
}
