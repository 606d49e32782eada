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

/// Longest consumer group id [`GetConsumerLag`] carries: the store's bound on a group id (Kafka
/// group ids may be longer than Iggy's 255-byte names).
pub const MAX_GROUP_ID_LEN: usize = u16::MAX as usize;

/// Wharf only: consumer lag, for Kafka and Iggy groups alike: `[group len u16][group]`, length
/// 0 for every group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetConsumerLag {
    /// `None`: every group's.
    pub group: Option<String>,
}

impl Command for GetConsumerLag {
    const CODE: u32 = codes::WHARF_CONSUMER_LAG;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let b = r.take(2, "group")?;
        // At most u16::MAX bytes by the length field's type.
        let len = usize::from(u16::from_le_bytes([b[0], b[1]]));
        let group = if len == 0 {
            None
        } else {
            Some(r.utf8(len, "group")?)
        };
        Ok(GetConsumerLag { group })
    }

    /// A group id over [`MAX_GROUP_ID_LEN`] bytes is encoded with its first bytes only up to
    /// the limit, which no group can have: callers refuse it first (the SDK does).
    fn encode(&self, out: &mut BytesMut) {
        match &self.group {
            None => out.put_u16_le(0),
            Some(g) => {
                let b = &g.as_bytes()[..g.len().min(MAX_GROUP_ID_LEN)];
                out.put_u16_le(b.len() as u16);
                out.put_slice(b);
            }
        }
    }
}

/// Most lag rows one [`GetMetricsSnapshot`] may ask for.
pub const MAX_SNAPSHOT_LAG_ROWS: u32 = 1000;

/// Wharf only: traffic per topic, connections, process figures and the most lagging group
/// partitions, for `wharf top`: `[lag rows u32]`, at most [`MAX_SNAPSHOT_LAG_ROWS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetMetricsSnapshot {
    pub lag_rows: u32,
}

impl Command for GetMetricsSnapshot {
    const CODE: u32 = codes::WHARF_METRICS_SNAPSHOT;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let lag_rows = r.u32("lag_rows")?;
        if lag_rows > MAX_SNAPSHOT_LAG_ROWS {
            return Err(crate::wire::err(
                "lag_rows",
                crate::wire::Problem::TooLong {
                    len: lag_rows as usize,
                    max: MAX_SNAPSHOT_LAG_ROWS as usize,
                },
            ));
        }
        Ok(GetMetricsSnapshot { lag_rows })
    }

    fn encode(&self, out: &mut BytesMut) {
        out.put_u32_le(self.lag_rows);
    }
}
