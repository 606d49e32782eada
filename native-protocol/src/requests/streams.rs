//! Stream commands: get, list, create, delete, rename, purge.

use bytes::BytesMut;

use super::{put_name, Command};
use crate::codes;
use crate::primitives::Identifier;
use crate::wire::{DecodeError, Reader};

/// The stream and its topics: `[stream_id]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetStream {
    pub stream_id: Identifier,
}

impl Command for GetStream {
    const CODE: u32 = codes::GET_STREAM;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(GetStream {
            stream_id: Identifier::decode(r, "stream_id")?,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        self.stream_id.encode(out);
    }
}

/// Every stream the user may read. Empty payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GetStreams;

impl Command for GetStreams {
    const CODE: u32 = codes::GET_STREAMS;

    fn decode(_: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(GetStreams)
    }

    fn encode(&self, _: &mut BytesMut) {}
}

/// `[name name]`; the server assigns the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateStream {
    pub name: String,
}

impl Command for CreateStream {
    const CODE: u32 = codes::CREATE_STREAM;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(CreateStream {
            name: r.name("name")?,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        put_name(out, &self.name);
    }
}

/// `[stream_id]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteStream {
    pub stream_id: Identifier,
}

impl Command for DeleteStream {
    const CODE: u32 = codes::DELETE_STREAM;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(DeleteStream {
            stream_id: Identifier::decode(r, "stream_id")?,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        self.stream_id.encode(out);
    }
}

/// Renames a stream: `[stream_id][name name]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateStream {
    pub stream_id: Identifier,
    pub name: String,
}

impl Command for UpdateStream {
    const CODE: u32 = codes::UPDATE_STREAM;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(UpdateStream {
            stream_id: Identifier::decode(r, "stream_id")?,
            name: r.name("name")?,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        self.stream_id.encode(out);
        put_name(out, &self.name);
    }
}

/// Deletes every message of every topic of a stream: `[stream_id]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeStream {
    pub stream_id: Identifier,
}

impl Command for PurgeStream {
    const CODE: u32 = codes::PURGE_STREAM;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(PurgeStream {
            stream_id: Identifier::decode(r, "stream_id")?,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        self.stream_id.encode(out);
    }
}
