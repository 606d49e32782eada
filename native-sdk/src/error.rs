//! The SDK's one error type.

use wharf_protocol::status;

/// Everything a call can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The server refused the request with this Iggy error code.
    #[error("server error {code} ({})", describe(*code))]
    Server {
        /// The Iggy error code (see [`describe`]).
        code: u32,
    },
    /// The connection failed or was closed; the client reconnects on the next call.
    #[error("disconnected: {0}")]
    Disconnected(String),
    /// No answer within the request timeout.
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The server's answer could not be decoded.
    #[error("malformed answer: {0}")]
    Protocol(String),
    /// The call was refused before anything was sent.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The producer or client was shut down.
    #[error("shut down")]
    Closed,
    /// TLS could not be set up: a file, the server's certificate, or ours was refused.
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

impl Error {
    /// True for failures a retry may cure: lost connections, timeouts, and server states that
    /// pass (an unauthenticated connection after a reconnect, a partition briefly missing).
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Disconnected(_) | Error::Timeout(_) => true,
            Error::Server { code } => matches!(
                *code,
                status::UNAUTHENTICATED | status::IO_ERROR | status::ERROR
            ),
            _ => false,
        }
    }

    /// The Iggy error code, when the server sent one.
    pub fn server_code(&self) -> Option<u32> {
        match self {
            Error::Server { code } => Some(*code),
            _ => None,
        }
    }
}

impl From<wharf_protocol::DecodeError> for Error {
    fn from(e: wharf_protocol::DecodeError) -> Self {
        Error::Protocol(e.to_string())
    }
}

/// A short name for the Iggy error codes a user is most likely to meet.
pub fn describe(code: u32) -> &'static str {
    match code {
        status::UNAUTHENTICATED => "not logged in",
        status::UNAUTHORIZED => "permission denied",
        status::INVALID_CREDENTIALS => "invalid username or password",
        status::STREAM_ID_NOT_FOUND | status::STREAM_NAME_NOT_FOUND => "stream not found",
        status::TOPIC_ID_NOT_FOUND | status::TOPIC_NAME_NOT_FOUND => "topic not found",
        status::PARTITION_NOT_FOUND => "partition not found",
        status::STREAM_NAME_ALREADY_EXISTS => "stream already exists",
        status::TOPIC_NAME_ALREADY_EXISTS => "topic already exists",
        status::CONSUMER_GROUP_ID_NOT_FOUND | status::CONSUMER_GROUP_NAME_NOT_FOUND => {
            "consumer group not found"
        }
        status::CONSUMER_GROUP_NAME_ALREADY_EXISTS => "consumer group already exists",
        status::CONSUMER_GROUP_MEMBER_NOT_FOUND => "not a member of the consumer group",
        status::INVALID_FORMAT => "malformed request",
        status::INVALID_COMMAND => "unknown command",
        status::TOO_BIG_MESSAGE_PAYLOAD => "message too large",
        status::INVALID_MESSAGES_COUNT => "invalid messages count",
        status::USER_ALREADY_EXISTS => "user already exists",
        status::RESOURCE_NOT_FOUND => "not found",
        _ => "see the Iggy error codes",
    }
}

/// The SDK's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
