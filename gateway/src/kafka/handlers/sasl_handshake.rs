//! SaslHandshake (v1, KIP-152): the client names a mechanism; the answer lists the enabled
//! ones. Kafka's behaviour: an unsupported mechanism is answered UNSUPPORTED_SASL_MECHANISM and
//! the connection closes; a handshake in the middle of an exchange closes it; on a listener
//! without SASL the answer is ILLEGAL_SASL_STATE; a re-authentication naming another mechanism
//! than the first authentication's is answered SASL_AUTHENTICATION_FAILED and closes (KIP-368).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};

use super::{str_bytes, Request};
use crate::config::SaslMechanism;
use crate::kafka::session::{After, SaslState, Session};

pub fn handle(
    req: &Request<'_>,
    session: &mut Session,
    body: SaslHandshakeRequest,
) -> (SaslHandshakeResponse, After) {
    if !session.requires_sasl() {
        let answer = SaslHandshakeResponse::default()
            .with_error_code(ResponseError::IllegalSaslState.code());
        return (answer, After::KeepOpen);
    }
    let enabled = &req.door.config.sasl_mechanisms;
    let answer = SaslHandshakeResponse::default()
        .with_mechanisms(enabled.iter().map(|m| str_bytes(m.name())).collect());
    if !matches!(session.state, SaslState::Handshake) {
        let answer = answer.with_error_code(ResponseError::IllegalSaslState.code());
        return (answer, After::Close);
    }
    match SaslMechanism::from_name(body.mechanism.as_str()).filter(|m| enabled.contains(m)) {
        Some(m) if session.begin(m) => (answer, After::KeepOpen),
        Some(_) => {
            // KIP-368: a re-authentication uses the first authentication's mechanism.
            let answer = answer.with_error_code(ResponseError::SaslAuthenticationFailed.code());
            (answer, After::Close)
        }
        None => {
            let answer = answer.with_error_code(ResponseError::UnsupportedSaslMechanism.code());
            (answer, After::Close)
        }
    }
}
