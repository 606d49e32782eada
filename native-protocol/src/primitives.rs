//! The encodings shared by many commands: Identifier, Consumer, Partitioning, PollingStrategy.

use bytes::{BufMut, BytesMut};

use crate::wire::{err, invalid, DecodeError, Problem, Reader};

/// A stream, topic, user or group named by number or by name.
/// Wire: `[kind u8][len u8][value]`; kind 1 = numeric (len 4, u32 LE), kind 2 = string (1..255).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identifier {
    Numeric(u32),
    Name(String),
}

impl Identifier {
    pub fn decode(r: &mut Reader<'_>, field: &'static str) -> Result<Self, DecodeError> {
        let kind = r.u8(field)?;
        let len = r.u8(field)? as usize;
        match kind {
            1 if len == 4 => Ok(Identifier::Numeric(r.u32(field)?)),
            1 => Err(invalid(field, "numeric identifier must have length 4")),
            2 if len > 0 => Ok(Identifier::Name(r.utf8(len, field)?)),
            2 => Err(invalid(field, "string identifier must not be empty")),
            k => Err(err(field, Problem::Unknown(u64::from(k)))),
        }
    }

    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Identifier::Numeric(id) => {
                out.put_u8(1);
                out.put_u8(4);
                out.put_u32_le(*id);
            }
            Identifier::Name(name) => {
                let b = &name.as_bytes()[..name.len().min(255)];
                out.put_u8(2);
                out.put_u8(b.len() as u8);
                out.put_slice(b);
            }
        }
    }
}

impl std::fmt::Display for Identifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identifier::Numeric(id) => write!(f, "{id}"),
            Identifier::Name(name) => write!(f, "'{name}'"),
        }
    }
}

/// Who consumes: a single consumer or a consumer group. Wire: `[kind u8][Identifier]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Consumer {
    Single(Identifier),
    Group(Identifier),
}

impl Consumer {
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8("consumer.kind")? {
            1 => Ok(Consumer::Single(Identifier::decode(r, "consumer.id")?)),
            2 => Ok(Consumer::Group(Identifier::decode(r, "consumer.id")?)),
            k => Err(err("consumer.kind", Problem::Unknown(u64::from(k)))),
        }
    }

    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Consumer::Single(id) => {
                out.put_u8(1);
                id.encode(out);
            }
            Consumer::Group(id) => {
                out.put_u8(2);
                id.encode(out);
            }
        }
    }
}

/// How a send picks its partition. Wire: `[kind u8][len u8][value]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partitioning {
    Balanced,
    PartitionId(u32),
    MessagesKey(Vec<u8>),
}

impl Partitioning {
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let kind = r.u8("partitioning.kind")?;
        let len = r.u8("partitioning.length")? as usize;
        match (kind, len) {
            (1, 0) => Ok(Partitioning::Balanced),
            (2, 4) => Ok(Partitioning::PartitionId(
                r.u32("partitioning.partition_id")?,
            )),
            (3, 1..) => Ok(Partitioning::MessagesKey(
                r.take(len, "partitioning.key")?.to_vec(),
            )),
            (1..=3, _) => Err(invalid("partitioning.length", "does not fit the kind")),
            (k, _) => Err(err("partitioning.kind", Problem::Unknown(u64::from(k)))),
        }
    }

    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Partitioning::Balanced => {
                out.put_u8(1);
                out.put_u8(0);
            }
            Partitioning::PartitionId(id) => {
                out.put_u8(2);
                out.put_u8(4);
                out.put_u32_le(*id);
            }
            Partitioning::MessagesKey(key) => {
                let key = &key[..key.len().min(255)];
                out.put_u8(3);
                out.put_u8(key.len() as u8);
                out.put_slice(key);
            }
        }
    }
}

/// The partition a messages key maps to: XxHash32 (seed 0) of the key, modulo the count.
/// Both SDKs and the server use this rule, so a key lands on the same partition whoever sends.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    if partitions == 0 {
        return 0;
    }
    xxhash_rust::xxh32::xxh32(key, 0) % partitions
}

/// Where a poll starts. Wire: 9 bytes `[kind u8][value u64]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollingStrategy {
    Offset(u64),
    /// µs since the Unix epoch.
    Timestamp(u64),
    First,
    Last,
    Next,
}

impl PollingStrategy {
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let kind = r.u8("strategy.kind")?;
        let value = r.u64("strategy.value")?;
        Ok(match kind {
            1 => PollingStrategy::Offset(value),
            2 => PollingStrategy::Timestamp(value),
            3 => PollingStrategy::First,
            4 => PollingStrategy::Last,
            5 => PollingStrategy::Next,
            k => return Err(err("strategy.kind", Problem::Unknown(u64::from(k)))),
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        let (kind, value) = match *self {
            PollingStrategy::Offset(v) => (1, v),
            PollingStrategy::Timestamp(v) => (2, v),
            PollingStrategy::First => (3, 0),
            PollingStrategy::Last => (4, 0),
            PollingStrategy::Next => (5, 0),
        };
        out.put_u8(kind);
        out.put_u64_le(value);
    }
}

/// An optional partition: `[flag u8][partition_id u32]`, always 5 bytes.
pub fn decode_optional_partition(r: &mut Reader<'_>) -> Result<Option<u32>, DecodeError> {
    let flag = r.u8("partition_id.flag")?;
    let id = r.u32("partition_id")?;
    // As Iggy reads it: 1 means a partition is given, anything else means none.
    Ok((flag == 1).then_some(id))
}

pub fn encode_optional_partition(p: Option<u32>, out: &mut BytesMut) {
    out.put_u8(u8::from(p.is_some()));
    out.put_u32_le(p.unwrap_or(0));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_round_trip() {
        let mut b = BytesMut::new();
        Identifier::Numeric(7).encode(&mut b);
        Identifier::Name("orders".into()).encode(&mut b);
        Consumer::Group(Identifier::Name("g".into())).encode(&mut b);
        Partitioning::MessagesKey(b"k1".to_vec()).encode(&mut b);
        PollingStrategy::Timestamp(99).encode(&mut b);
        encode_optional_partition(Some(3), &mut b);
        let mut r = Reader::new(&b);
        assert_eq!(
            Identifier::decode(&mut r, "a").unwrap(),
            Identifier::Numeric(7)
        );
        assert_eq!(
            Identifier::decode(&mut r, "b").unwrap(),
            Identifier::Name("orders".into())
        );
        assert_eq!(
            Consumer::decode(&mut r).unwrap(),
            Consumer::Group(Identifier::Name("g".into()))
        );
        assert_eq!(
            Partitioning::decode(&mut r).unwrap(),
            Partitioning::MessagesKey(b"k1".to_vec())
        );
        assert_eq!(
            PollingStrategy::decode(&mut r).unwrap(),
            PollingStrategy::Timestamp(99)
        );
        assert_eq!(decode_optional_partition(&mut r).unwrap(), Some(3));
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn bad_primitives_name_the_field() {
        let e = Identifier::decode(&mut Reader::new(&[1, 3, 0, 0, 0]), "stream_id").unwrap_err();
        assert_eq!(e.field, "stream_id");
        let e = Identifier::decode(&mut Reader::new(&[2, 5, b'a']), "topic_id").unwrap_err();
        assert_eq!(e.problem, Problem::Truncated);
        assert!(Identifier::decode(&mut Reader::new(&[9, 0]), "x").is_err());
        assert!(Partitioning::decode(&mut Reader::new(&[3, 0])).is_err());
        assert!(PollingStrategy::decode(&mut Reader::new(&[6, 0, 0, 0, 0, 0, 0, 0, 0])).is_err());
    }

    #[test]
    fn key_partitioning_is_xxhash32() {
        // Same key, same partition; spread over partitions.
        assert_eq!(
            partition_for_key(b"user-1", 7),
            partition_for_key(b"user-1", 7)
        );
        let hits: std::collections::HashSet<u32> = (0..100)
            .map(|i| partition_for_key(format!("k{i}").as_bytes(), 4))
            .collect();
        assert_eq!(hits.len(), 4);
        assert_eq!(partition_for_key(b"", 0), 0);
    }
}
