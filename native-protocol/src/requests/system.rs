//! System commands: ping, server statistics, cluster metadata and the connected clients.

use bytes::{BufMut, BytesMut};

use super::Command;
use crate::codes;
use crate::wire::{DecodeError, Reader};

/// Checks the server answers; the only command besides the logins that works before login.
/// Empty payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ping;

impl Command for Ping {
    const CODE: u32 = codes::PING;

    fn decode(_: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Ping)
    }

    fn encode(&self, _: &mut BytesMut) {}
}

/// Server statistics. Empty payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GetStats;

impl Command for GetStats {
    const CODE: u32 = codes::GET_STATS;

    fn decode(_: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(GetStats)
    }

    fn encode(&self, _: &mut BytesMut) {}
}

/// The cluster as a client sees it (one node). Empty payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GetClusterMetadata;

impl Command for GetClusterMetadata {
    const CODE: u32 = codes::GET_CLUSTER_METADATA;

    fn decode(_: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(GetClusterMetadata)
    }

    fn encode(&self, _: &mut BytesMut) {}
}

/// The sending connection as the server sees it. Empty payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GetMe;

impl Command for GetMe {
    const CODE: u32 = codes::GET_ME;

    fn decode(_: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(GetMe)
    }

    fn encode(&self, _: &mut BytesMut) {}
}

/// One connected client: `[client_id u32]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetClient {
    pub client_id: u32,
}

impl Command for GetClient {
    const CODE: u32 = codes::GET_CLIENT;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(GetClient {
            client_id: r.u32("client_id")?,
        })
    }

    fn encode(&self, out: &mut BytesMut) {
        out.put_u32_le(self.client_id);
    }
}

/// Every connected client. Empty payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GetClients;

impl Command for GetClients {
    const CODE: u32 = codes::GET_CLIENTS;

    fn decode(_: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(GetClients)
    }

    fn encode(&self, _: &mut BytesMut) {}
}
