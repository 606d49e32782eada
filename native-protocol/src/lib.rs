//! The Apache Iggy 0.8 binary protocol, as spoken by the `iggy` crate 0.10: framing, command
//! codes, request and response payloads, the message layout and the shared encodings.
//!
//! Pure encode/decode, no I/O. Everything decoded here comes from the network, so every length is
//! checked against what is actually there (and against a limit) before anything is allocated,
//! every error names the field, and nothing panics.

pub mod codes;
pub mod framing;
pub mod message;
pub mod primitives;
pub mod wire;

pub use primitives::{partition_for_key, Consumer, Identifier, Partitioning, PollingStrategy};
pub use wire::{DecodeError, Problem, Reader};
pub mod requests;
pub mod responses;
pub mod status;

pub use requests::{Command, Request, RequestError};
pub mod units;
