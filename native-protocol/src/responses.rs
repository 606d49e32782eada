//! Response payloads, encoded exactly as the `iggy` crate 0.10 decodes them. Lists are entries
//! back to back without a count; "details" are a header followed by exactly as many children as
//! the header's count says.

use bytes::{BufMut, BytesMut};

use crate::requests::WirePermissions;
use crate::wire::WriteExt;

/// A stream: `StreamResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamWire {
    pub id: u32,
    pub created_at: u64,
    pub topics_count: u32,
    pub size_bytes: u64,
    pub messages_count: u64,
    pub name: String,
}

impl StreamWire {
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u32_le(self.id);
        out.put_u64_le(self.created_at);
        out.put_u32_le(self.topics_count);
        out.put_u64_le(self.size_bytes);
        out.put_u64_le(self.messages_count);
        out.name(&self.name);
    }
}

/// A topic: `TopicHeader`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicWire {
    pub id: u32,
    pub created_at: u64,
    pub partitions_count: u32,
    /// µs; 0 or u64::MAX: never.
    pub message_expiry: u64,
    /// 1 none, 2 gzip; nothing else decodes.
    pub compression: u8,
    /// 0 server default, u64::MAX unlimited.
    pub max_topic_size: u64,
    pub replication_factor: u8,
    pub size_bytes: u64,
    pub messages_count: u64,
    pub name: String,
}

impl TopicWire {
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u32_le(self.id);
        out.put_u64_le(self.created_at);
        out.put_u32_le(self.partitions_count);
        out.put_u64_le(self.message_expiry);
        out.put_u8(self.compression);
        out.put_u64_le(self.max_topic_size);
        out.put_u8(self.replication_factor);
        out.put_u64_le(self.size_bytes);
        out.put_u64_le(self.messages_count);
        out.name(&self.name);
    }
}

/// A partition: `PartitionResponse`, 40 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionWire {
    pub id: u32,
    pub created_at: u64,
    pub segments_count: u32,
    /// Offset of the newest message; 0 when empty.
    pub current_offset: u64,
    pub size_bytes: u64,
    pub messages_count: u64,
}

impl PartitionWire {
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u32_le(self.id);
        out.put_u64_le(self.created_at);
        out.put_u32_le(self.segments_count);
        out.put_u64_le(self.current_offset);
        out.put_u64_le(self.size_bytes);
        out.put_u64_le(self.messages_count);
    }
}

/// A user: `UserResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserWire {
    pub id: u32,
    pub created_at: u64,
    pub active: bool,
    pub username: String,
}

impl UserWire {
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u32_le(self.id);
        out.put_u64_le(self.created_at);
        out.put_u8(if self.active { 1 } else { 2 });
        out.name(&self.username);
    }

    /// `UserDetails`: the user, then its permissions (`[1][len u32][block]`) or four zero bytes.
    pub fn encode_details(&self, permissions: Option<&WirePermissions>, out: &mut BytesMut) {
        self.encode(out);
        match permissions {
            None => out.put_u32_le(0),
            Some(p) => {
                let mut block = BytesMut::new();
                p.encode(&mut block);
                out.put_u8(1);
                out.put_u32_le(block.len() as u32);
                out.put_slice(&block);
            }
        }
    }
}

/// A consumer group header: `ConsumerGroupResponse`.
pub fn encode_group(
    id: u32,
    partitions_count: u32,
    members_count: u32,
    name: &str,
    out: &mut BytesMut,
) {
    out.put_u32_le(id);
    out.put_u32_le(partitions_count);
    out.put_u32_le(members_count);
    out.name(name);
}

/// One member of a `ConsumerGroupDetails`.
pub fn encode_group_member(member_id: u32, partitions: &[u32], out: &mut BytesMut) {
    out.put_u32_le(member_id);
    out.put_u32_le(partitions.len() as u32);
    for p in partitions {
        out.put_u32_le(*p);
    }
}

/// A connected client: `ClientResponse`, and with `groups` its `ClientDetails`.
pub fn encode_client(
    client_id: u32,
    user_id: Option<u32>,
    address: &str,
    groups: &[(u32, u32, u32)],
    details: bool,
    out: &mut BytesMut,
) {
    out.put_u32_le(client_id);
    out.put_u32_le(user_id.unwrap_or(u32::MAX));
    out.put_u8(1); // TCP
    out.put_u32_le(address.len() as u32);
    out.put_slice(address.as_bytes());
    out.put_u32_le(groups.len() as u32);
    if details {
        for (s, t, g) in groups {
            out.put_u32_le(*s);
            out.put_u32_le(*t);
            out.put_u32_le(*g);
        }
    }
}

/// Server statistics: `Stats`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsWire {
    pub process_id: u32,
    pub cpu_usage: f32,
    pub total_cpu_usage: f32,
    pub memory_usage: u64,
    pub total_memory: u64,
    pub available_memory: u64,
    pub run_time: u64,
    pub start_time: u64,
    pub read_bytes: u64,
    pub written_bytes: u64,
    pub messages_size_bytes: u64,
    pub streams_count: u32,
    pub topics_count: u32,
    pub partitions_count: u32,
    pub segments_count: u32,
    pub messages_count: u64,
    pub clients_count: u32,
    pub consumer_groups_count: u32,
    pub hostname: String,
    pub os_name: String,
    pub os_version: String,
    pub kernel_version: String,
    pub server_version: String,
    /// major * 1_000_000 + minor * 1000 + patch.
    pub server_semver: u32,
    pub threads_count: u32,
    pub free_disk_space: u64,
    pub total_disk_space: u64,
}

impl StatsWire {
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u32_le(self.process_id);
        out.put_f32_le(self.cpu_usage);
        out.put_f32_le(self.total_cpu_usage);
        out.put_u64_le(self.memory_usage);
        out.put_u64_le(self.total_memory);
        out.put_u64_le(self.available_memory);
        out.put_u64_le(self.run_time);
        out.put_u64_le(self.start_time);
        out.put_u64_le(self.read_bytes);
        out.put_u64_le(self.written_bytes);
        out.put_u64_le(self.messages_size_bytes);
        out.put_u32_le(self.streams_count);
        out.put_u32_le(self.topics_count);
        out.put_u32_le(self.partitions_count);
        out.put_u32_le(self.segments_count);
        out.put_u64_le(self.messages_count);
        out.put_u32_le(self.clients_count);
        out.put_u32_le(self.consumer_groups_count);
        for s in [
            &self.hostname,
            &self.os_name,
            &self.os_version,
            &self.kernel_version,
            &self.server_version,
        ] {
            out.put_u32_le(s.len() as u32);
            out.put_slice(s.as_bytes());
        }
        out.put_u32_le(self.server_semver);
        out.put_u32_le(0); // cache metrics: none
        out.put_u32_le(self.threads_count);
        out.put_u64_le(self.free_disk_space);
        out.put_u64_le(self.total_disk_space);
    }
}

/// A personal access token in a list: name and expiry (µs timestamp, 0 = never).
pub fn encode_token_info(name: &str, expiry_at: Option<u64>, out: &mut BytesMut) {
    out.name(name);
    out.put_u64_le(expiry_at.unwrap_or(0));
}

/// The answer to a login: the user id.
pub fn encode_identity(user_id: u32, out: &mut BytesMut) {
    out.put_u32_le(user_id);
}

/// A stored consumer offset.
pub fn encode_consumer_offset(
    partition_id: u32,
    current_offset: u64,
    stored_offset: u64,
    out: &mut BytesMut,
) {
    out.put_u32_le(partition_id);
    out.put_u64_le(current_offset);
    out.put_u64_le(stored_offset);
}

/// The 16-byte head of a poll answer; the messages follow as stored.
pub fn poll_header(partition_id: u32, current_offset: u64, messages_count: u32) -> BytesMut {
    let mut out = BytesMut::with_capacity(16);
    out.put_u32_le(partition_id);
    out.put_u64_le(current_offset);
    out.put_u32_le(messages_count);
    out
}

/// A one-node cluster: this server, leader and healthy.
pub fn encode_cluster_metadata(
    cluster: &str,
    node: &str,
    ip: &str,
    tcp_port: u16,
    out: &mut BytesMut,
) {
    out.put_u32_le(cluster.len() as u32);
    out.put_slice(cluster.as_bytes());
    out.put_u32_le(1);
    out.put_u32_le(node.len() as u32);
    out.put_slice(node.as_bytes());
    out.put_u32_le(ip.len() as u32);
    out.put_slice(ip.as_bytes());
    out.put_u16_le(tcp_port);
    out.put_u16_le(0);
    out.put_u16_le(0);
    out.put_u16_le(0);
    out.put_u8(0); // leader
    out.put_u8(0); // healthy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_sizes_match_the_client() {
        let mut b = BytesMut::new();
        StreamWire {
            id: 1,
            created_at: 2,
            topics_count: 0,
            size_bytes: 3,
            messages_count: 4,
            name: "abc".into(),
        }
        .encode(&mut b);
        assert_eq!(b.len(), 33 + 3);
        let mut b = BytesMut::new();
        TopicWire {
            id: 0,
            created_at: 0,
            partitions_count: 1,
            message_expiry: 0,
            compression: 1,
            max_topic_size: 0,
            replication_factor: 1,
            size_bytes: 0,
            messages_count: 0,
            name: "t".into(),
        }
        .encode(&mut b);
        assert_eq!(b.len(), 51 + 1);
        let mut b = BytesMut::new();
        PartitionWire {
            id: 0,
            created_at: 0,
            segments_count: 1,
            current_offset: 0,
            size_bytes: 0,
            messages_count: 0,
        }
        .encode(&mut b);
        assert_eq!(b.len(), 40);
        let mut b = BytesMut::new();
        UserWire {
            id: 0,
            created_at: 0,
            active: true,
            username: "iggy".into(),
        }
        .encode_details(None, &mut b);
        assert_eq!(b.len(), 14 + 4 + 4);
        assert_eq!(poll_header(1, 2, 3).len(), 16);
        let mut b = BytesMut::new();
        encode_client(1, None, "127.0.0.1:1", &[(1, 2, 3)], true, &mut b);
        assert_eq!(b.len(), 17 + 11 + 12);
    }
}

/// One topic config (Wharf's 10_003 answer holds one per config, back to back):
/// `[name len u8][name][value len u16][value][source len u8][source]`. Names and sources are
/// Kafka's (`cleanup.policy`, `DYNAMIC_TOPIC_CONFIG`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfigWire {
    pub name: String,
    pub value: String,
    pub source: String,
}

impl TopicConfigWire {
    /// Values are cut at 65535 bytes (the length field's range; config values are far shorter).
    pub fn encode(&self, out: &mut BytesMut) {
        out.name(&self.name);
        let v = &self.value.as_bytes()[..self.value.len().min(usize::from(u16::MAX))];
        out.put_u16_le(v.len() as u16);
        out.put_slice(v);
        out.name(&self.source);
    }
}

// ----- decoding, for clients -----

use crate::wire::{DecodeError, Reader};

/// A string with a u32 length, bounded by what is left in the payload.
fn long_string(r: &mut Reader<'_>, field: &'static str) -> Result<String, DecodeError> {
    let max = r.remaining();
    r.string_u32(max, field)
}

impl StreamWire {
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(StreamWire {
            id: r.u32("stream.id")?,
            created_at: r.u64("stream.created_at")?,
            topics_count: r.u32("stream.topics_count")?,
            size_bytes: r.u64("stream.size_bytes")?,
            messages_count: r.u64("stream.messages_count")?,
            name: r.name("stream.name")?,
        })
    }
}

impl TopicWire {
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(TopicWire {
            id: r.u32("topic.id")?,
            created_at: r.u64("topic.created_at")?,
            partitions_count: r.u32("topic.partitions_count")?,
            message_expiry: r.u64("topic.message_expiry")?,
            compression: r.u8("topic.compression")?,
            max_topic_size: r.u64("topic.max_topic_size")?,
            replication_factor: r.u8("topic.replication_factor")?,
            size_bytes: r.u64("topic.size_bytes")?,
            messages_count: r.u64("topic.messages_count")?,
            name: r.name("topic.name")?,
        })
    }
}

impl PartitionWire {
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(PartitionWire {
            id: r.u32("partition.id")?,
            created_at: r.u64("partition.created_at")?,
            segments_count: r.u32("partition.segments_count")?,
            current_offset: r.u64("partition.current_offset")?,
            size_bytes: r.u64("partition.size_bytes")?,
            messages_count: r.u64("partition.messages_count")?,
        })
    }
}

impl UserWire {
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(UserWire {
            id: r.u32("user.id")?,
            created_at: r.u64("user.created_at")?,
            active: r.u8("user.status")? == 1,
            username: r.name("user.username")?,
        })
    }

    /// `UserDetails`: the user and its permissions, if any.
    pub fn decode_details(
        r: &mut Reader<'_>,
    ) -> Result<(Self, Option<WirePermissions>), DecodeError> {
        let user = UserWire::decode(r)?;
        if r.u8("user.has_permissions")? != 1 {
            r.take(3, "user.permissions")?;
            return Ok((user, None));
        }
        let len = r.u32("user.permissions_length")? as usize;
        let mut block = Reader::new(r.take(len, "user.permissions")?);
        Ok((user, Some(WirePermissions::decode(&mut block)?)))
    }
}

/// A consumer group as listed, or with its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupWire {
    pub id: u32,
    pub partitions_count: u32,
    pub members_count: u32,
    pub name: String,
    /// (member id, partitions); empty in lists.
    pub members: Vec<(u32, Vec<u32>)>,
}

impl GroupWire {
    pub fn decode(r: &mut Reader<'_>, with_members: bool) -> Result<Self, DecodeError> {
        let mut g = GroupWire {
            id: r.u32("group.id")?,
            partitions_count: r.u32("group.partitions_count")?,
            members_count: r.u32("group.members_count")?,
            name: r.name("group.name")?,
            members: Vec::new(),
        };
        if with_members {
            for _ in 0..g.members_count {
                let id = r.u32("member.id")?;
                let n = r.u32("member.partitions_count")? as usize;
                if n * 4 > r.remaining() {
                    return Err(crate::wire::invalid(
                        "member.partitions",
                        "more than the payload holds",
                    ));
                }
                let mut partitions = Vec::with_capacity(n);
                for _ in 0..n {
                    partitions.push(r.u32("member.partition")?);
                }
                g.members.push((id, partitions));
            }
        }
        Ok(g)
    }
}

/// A connected client as listed, or with the groups it joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientWire {
    pub client_id: u32,
    pub user_id: Option<u32>,
    pub transport: u8,
    pub address: String,
    pub groups_count: u32,
    pub groups: Vec<(u32, u32, u32)>,
}

impl ClientWire {
    pub fn decode(r: &mut Reader<'_>, with_groups: bool) -> Result<Self, DecodeError> {
        let client_id = r.u32("client.id")?;
        let user_id = r.u32("client.user_id")?;
        let transport = r.u8("client.transport")?;
        let address = long_string(r, "client.address")?;
        let groups_count = r.u32("client.groups_count")?;
        let mut groups = Vec::new();
        if with_groups {
            for _ in 0..groups_count {
                groups.push((
                    r.u32("group.stream_id")?,
                    r.u32("group.topic_id")?,
                    r.u32("group.id")?,
                ));
            }
        }
        Ok(ClientWire {
            client_id,
            user_id: (user_id != u32::MAX).then_some(user_id),
            transport,
            address,
            groups_count,
            groups,
        })
    }
}

impl StatsWire {
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let f32le = |r: &mut Reader<'_>, f| r.u32(f).map(f32::from_bits);
        let mut s = StatsWire {
            process_id: r.u32("stats.process_id")?,
            cpu_usage: f32le(r, "stats.cpu_usage")?,
            total_cpu_usage: f32le(r, "stats.total_cpu_usage")?,
            memory_usage: r.u64("stats.memory_usage")?,
            total_memory: r.u64("stats.total_memory")?,
            available_memory: r.u64("stats.available_memory")?,
            run_time: r.u64("stats.run_time")?,
            start_time: r.u64("stats.start_time")?,
            read_bytes: r.u64("stats.read_bytes")?,
            written_bytes: r.u64("stats.written_bytes")?,
            messages_size_bytes: r.u64("stats.messages_size_bytes")?,
            streams_count: r.u32("stats.streams_count")?,
            topics_count: r.u32("stats.topics_count")?,
            partitions_count: r.u32("stats.partitions_count")?,
            segments_count: r.u32("stats.segments_count")?,
            messages_count: r.u64("stats.messages_count")?,
            clients_count: r.u32("stats.clients_count")?,
            consumer_groups_count: r.u32("stats.consumer_groups_count")?,
            ..StatsWire::default()
        };
        s.hostname = long_string(r, "stats.hostname")?;
        s.os_name = long_string(r, "stats.os_name")?;
        s.os_version = long_string(r, "stats.os_version")?;
        s.kernel_version = long_string(r, "stats.kernel_version")?;
        s.server_version = long_string(r, "stats.server_version")?;
        s.server_semver = r.u32("stats.server_semver")?;
        let cache = r.u32("stats.cache_metrics_count")? as usize;
        r.take(cache.saturating_mul(32), "stats.cache_metrics")?;
        s.threads_count = r.u32("stats.threads_count")?;
        s.free_disk_space = r.u64("stats.free_disk_space")?;
        s.total_disk_space = r.u64("stats.total_disk_space")?;
        Ok(s)
    }
}

/// A personal access token as listed: name and expiry (µs timestamp; `None` = never).
pub fn decode_token_info(r: &mut Reader<'_>) -> Result<(String, Option<u64>), DecodeError> {
    let name = r.name("token.name")?;
    let expiry = r.u64("token.expiry_at")?;
    Ok((name, (expiry != 0).then_some(expiry)))
}

/// A stored consumer offset: (partition id, partition's current offset, stored offset).
pub fn decode_consumer_offset(r: &mut Reader<'_>) -> Result<(u32, u64, u64), DecodeError> {
    Ok((
        r.u32("offset.partition_id")?,
        r.u64("offset.current_offset")?,
        r.u64("offset.stored_offset")?,
    ))
}

/// The head of a poll answer: (partition id, current offset, messages count).
pub fn decode_poll_header(r: &mut Reader<'_>) -> Result<(u32, u64, u32), DecodeError> {
    Ok((
        r.u32("poll.partition_id")?,
        r.u64("poll.current_offset")?,
        r.u32("poll.messages_count")?,
    ))
}

impl TopicConfigWire {
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let name = r.name("config.name")?;
        let b = r.take(2, "config.value")?;
        let len = usize::from(u16::from_le_bytes([b[0], b[1]]));
        let value = r.utf8(len, "config.value")?;
        let source = r.name("config.source")?;
        Ok(TopicConfigWire {
            name,
            value,
            source,
        })
    }
}

#[cfg(test)]
mod decode_tests {
    use super::*;

    #[test]
    fn topic_configs_round_trip() {
        let entries = [
            TopicConfigWire {
                name: "cleanup.policy".into(),
                value: String::new(),
                source: "DYNAMIC_TOPIC_CONFIG".into(),
            },
            TopicConfigWire {
                name: "delete.retention.ms".into(),
                value: "86400000".into(),
                source: "DEFAULT_CONFIG".into(),
            },
        ];
        let mut b = BytesMut::new();
        for e in &entries {
            e.encode(&mut b);
        }
        let mut r = Reader::new(&b);
        for e in &entries {
            assert_eq!(&TopicConfigWire::decode(&mut r).unwrap(), e);
        }
        assert_eq!(r.remaining(), 0);
        // A value length past the payload is refused, not read.
        let mut cut = b.clone();
        cut.truncate(b.len() - 20);
        let mut r = Reader::new(&cut);
        TopicConfigWire::decode(&mut r).unwrap();
        assert!(TopicConfigWire::decode(&mut r).is_err());
    }

    #[test]
    fn encoders_and_decoders_agree() {
        let s = StreamWire {
            id: 1,
            created_at: 2,
            topics_count: 0,
            size_bytes: 3,
            messages_count: 4,
            name: "abc".into(),
        };
        let mut b = BytesMut::new();
        s.encode(&mut b);
        assert_eq!(StreamWire::decode(&mut Reader::new(&b)).unwrap(), s);

        let u = UserWire {
            id: 3,
            created_at: 9,
            active: false,
            username: "bob".into(),
        };
        let mut b = BytesMut::new();
        u.encode_details(None, &mut b);
        let mut r = Reader::new(&b);
        assert_eq!(UserWire::decode_details(&mut r).unwrap(), (u, None));
        assert_eq!(r.remaining(), 0);

        let mut b = BytesMut::new();
        encode_group(1, 3, 2, "g", &mut b);
        encode_group_member(10, &[0, 2], &mut b);
        encode_group_member(11, &[1], &mut b);
        let g = GroupWire::decode(&mut Reader::new(&b), true).unwrap();
        assert_eq!(g.members, vec![(10, vec![0, 2]), (11, vec![1])]);

        let mut b = BytesMut::new();
        encode_client(5, Some(1), "127.0.0.1:9", &[(1, 2, 3)], true, &mut b);
        let c = ClientWire::decode(&mut Reader::new(&b), true).unwrap();
        assert_eq!((c.user_id, c.groups.clone()), (Some(1), vec![(1, 2, 3)]));

        let st = StatsWire {
            process_id: 7,
            hostname: "h".into(),
            server_semver: 8000,
            threads_count: 2,
            ..StatsWire::default()
        };
        let mut b = BytesMut::new();
        st.encode(&mut b);
        assert_eq!(StatsWire::decode(&mut Reader::new(&b)).unwrap(), st);
    }
}
