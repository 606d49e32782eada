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

// ----- Wharf's observability answers (10_005, 10_006) -----

/// `s` cut to at most `max` bytes at a character boundary, so a cut string still decodes.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn put_string_u16(out: &mut BytesMut, s: &str) {
    let b = cut(s, usize::from(u16::MAX)).as_bytes();
    out.put_u16_le(b.len() as u16);
    out.put_slice(b);
}

fn string_u16(r: &mut Reader<'_>, field: &'static str) -> Result<String, DecodeError> {
    let b = r.take(2, field)?;
    let len = usize::from(u16::from_le_bytes([b[0], b[1]]));
    r.utf8(len, field)
}

/// A list's `[count u32]`, refused when the payload cannot hold that many entries of at least
/// `min_entry` bytes, so nothing is allocated from an unchecked count.
fn list_count(
    r: &mut Reader<'_>,
    min_entry: usize,
    field: &'static str,
) -> Result<usize, DecodeError> {
    let count = r.u32(field)? as usize;
    let max = r.remaining() / min_entry;
    if count > max {
        return Err(crate::wire::err(
            field,
            crate::wire::Problem::TooLong { len: count, max },
        ));
    }
    Ok(count)
}

/// One group's position on one partition, Kafka's way (lag = end offset - committed next
/// offset): `[group len u16][group][stream len u8][stream][topic len u16][topic]
/// [partition u32][committed u64][end_offset u64][lag u64]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLagWire {
    /// Kafka group id or Iggy group name (one namespace for committed positions).
    pub group: String,
    pub stream: String,
    /// The topic's Kafka name: its own in the Kafka default stream, `stream.topic` otherwise.
    pub topic: String,
    pub partition: u32,
    /// The next offset the group will read.
    pub committed: u64,
    /// The partition's high watermark.
    pub end_offset: u64,
    pub lag: u64,
}

impl PartitionLagWire {
    /// The fewest bytes one row takes (a one-byte stream name, empty group and topic).
    pub const MIN_LEN: usize = 2 + 2 + 2 + 4 + 8 * 3;

    pub fn encode(&self, out: &mut BytesMut) {
        put_string_u16(out, &self.group);
        out.name(cut(&self.stream, 255));
        put_string_u16(out, &self.topic);
        out.put_u32_le(self.partition);
        out.put_u64_le(self.committed);
        out.put_u64_le(self.end_offset);
        out.put_u64_le(self.lag);
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(PartitionLagWire {
            group: string_u16(r, "lag.group")?,
            stream: r.name("lag.stream")?,
            topic: string_u16(r, "lag.topic")?,
            partition: r.u32("lag.partition")?,
            committed: r.u64("lag.committed")?,
            end_offset: r.u64("lag.end_offset")?,
            lag: r.u64("lag.lag")?,
        })
    }
}

/// Bytes and messages in (produced) and out (fetched or polled) of one topic since the server
/// started, both doors: `[stream len u8][stream][topic len u16][topic][bytes_in u64]
/// [messages_in u64][bytes_out u64][messages_out u64]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTrafficWire {
    pub stream: String,
    /// The topic's Kafka name.
    pub topic: String,
    pub bytes_in: u64,
    pub messages_in: u64,
    pub bytes_out: u64,
    pub messages_out: u64,
}

impl TopicTrafficWire {
    /// The fewest bytes one entry takes.
    pub const MIN_LEN: usize = 2 + 2 + 8 * 4;

    pub fn encode(&self, out: &mut BytesMut) {
        out.name(cut(&self.stream, 255));
        put_string_u16(out, &self.topic);
        out.put_u64_le(self.bytes_in);
        out.put_u64_le(self.messages_in);
        out.put_u64_le(self.bytes_out);
        out.put_u64_le(self.messages_out);
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(TopicTrafficWire {
            stream: r.name("traffic.stream")?,
            topic: string_u16(r, "traffic.topic")?,
            bytes_in: r.u64("traffic.bytes_in")?,
            messages_in: r.u64("traffic.messages_in")?,
            bytes_out: r.u64("traffic.bytes_out")?,
            messages_out: r.u64("traffic.messages_out")?,
        })
    }
}

/// The server at one moment, for `wharf top` (Wharf's 10_006 answer). Totals, not rates: a
/// client takes two snapshots and divides by the difference of their `uptime_us`.
///
/// `[uptime_us u64][metrics_enabled u8][native_connections u64][kafka_connections u64]
/// [cpu_seconds f64][resident_bytes u64][virtual_bytes u64][open_fds u64][threads u64]
/// [topics count u32]{TopicTrafficWire}[lag count u32]{PartitionLagWire}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshotWire {
    /// Since the server started, µs.
    pub uptime_us: u64,
    /// False when `[metrics] enable = false`: traffic is not counted (all 0).
    pub metrics_enabled: bool,
    /// Connections open now, per door.
    pub native_connections: u64,
    pub kafka_connections: u64,
    /// User plus system CPU time of the server process, seconds.
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    pub threads: u64,
    /// Every topic, by stream and name.
    pub topics: Vec<TopicTrafficWire>,
    /// The partitions whose groups lag most, largest lag first.
    pub lag: Vec<PartitionLagWire>,
}

impl MetricsSnapshotWire {
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u64_le(self.uptime_us);
        out.bool(self.metrics_enabled);
        out.put_u64_le(self.native_connections);
        out.put_u64_le(self.kafka_connections);
        out.put_f64_le(self.cpu_seconds);
        out.put_u64_le(self.resident_bytes);
        out.put_u64_le(self.virtual_bytes);
        out.put_u64_le(self.open_fds);
        out.put_u64_le(self.threads);
        out.put_u32_le(u32::try_from(self.topics.len()).unwrap_or(u32::MAX));
        for t in self.topics.iter().take(u32::MAX as usize) {
            t.encode(out);
        }
        out.put_u32_le(u32::try_from(self.lag.len()).unwrap_or(u32::MAX));
        for l in self.lag.iter().take(u32::MAX as usize) {
            l.encode(out);
        }
    }

    /// Decodes a whole answer; bytes left over are refused.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut s = MetricsSnapshotWire {
            uptime_us: r.u64("snapshot.uptime_us")?,
            metrics_enabled: r.bool("snapshot.metrics_enabled")?,
            native_connections: r.u64("snapshot.native_connections")?,
            kafka_connections: r.u64("snapshot.kafka_connections")?,
            cpu_seconds: f64::from_bits(r.u64("snapshot.cpu_seconds")?),
            resident_bytes: r.u64("snapshot.resident_bytes")?,
            virtual_bytes: r.u64("snapshot.virtual_bytes")?,
            open_fds: r.u64("snapshot.open_fds")?,
            threads: r.u64("snapshot.threads")?,
            ..MetricsSnapshotWire::default()
        };
        let topics = list_count(r, TopicTrafficWire::MIN_LEN, "snapshot.topics_count")?;
        s.topics.reserve_exact(topics);
        for _ in 0..topics {
            s.topics.push(TopicTrafficWire::decode(r)?);
        }
        let lag = list_count(r, PartitionLagWire::MIN_LEN, "snapshot.lag_count")?;
        s.lag.reserve_exact(lag);
        for _ in 0..lag {
            s.lag.push(PartitionLagWire::decode(r)?);
        }
        r.finish("snapshot")?;
        Ok(s)
    }
}

#[cfg(test)]
mod observe_tests {
    use super::*;

    fn lag_row(group: &str, partition: u32) -> PartitionLagWire {
        PartitionLagWire {
            group: group.into(),
            stream: "default".into(),
            topic: "orders".into(),
            partition,
            committed: 3,
            end_offset: 10,
            lag: 7,
        }
    }

    fn snapshot() -> MetricsSnapshotWire {
        MetricsSnapshotWire {
            uptime_us: 5_000_000,
            metrics_enabled: true,
            native_connections: 2,
            kafka_connections: 1,
            cpu_seconds: 1.25,
            resident_bytes: 1 << 20,
            virtual_bytes: 1 << 30,
            open_fds: 40,
            threads: 9,
            topics: vec![TopicTrafficWire {
                stream: "shop".into(),
                topic: "shop.orders".into(),
                bytes_in: 1000,
                messages_in: 10,
                bytes_out: 500,
                messages_out: 5,
            }],
            lag: vec![lag_row("workers", 0), lag_row("ünïcode", 1)],
        }
    }

    #[test]
    fn snapshot_and_lag_rows_round_trip() {
        let s = snapshot();
        let mut b = BytesMut::new();
        s.encode(&mut b);
        assert_eq!(
            MetricsSnapshotWire::decode(&mut Reader::new(&b)).unwrap(),
            s
        );

        let mut b = BytesMut::new();
        for row in &s.lag {
            row.encode(&mut b);
        }
        let mut r = Reader::new(&b);
        for row in &s.lag {
            assert_eq!(&PartitionLagWire::decode(&mut r).unwrap(), row);
        }
        assert_eq!(r.remaining(), 0);
    }

    /// Bound: a list count larger than the payload could hold (count * the smallest entry) is
    /// refused before anything is reserved for it.
    #[test]
    fn snapshot_counts_are_checked_against_the_payload() {
        let mut s = snapshot();
        s.topics.clear();
        s.lag.clear();
        let mut b = BytesMut::new();
        s.encode(&mut b);
        // Overwrite the topics count (8 bytes before the end: two u32 counts) with u32::MAX.
        let at = b.len() - 8;
        b[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = MetricsSnapshotWire::decode(&mut Reader::new(&b)).unwrap_err();
        assert_eq!(e.field, "snapshot.topics_count");
        // Every truncation of a full answer is an error, never a panic.
        let full = {
            let mut b = BytesMut::new();
            snapshot().encode(&mut b);
            b
        };
        for len in 0..full.len() {
            assert!(MetricsSnapshotWire::decode(&mut Reader::new(&full[..len])).is_err());
        }
    }

    #[test]
    fn over_long_names_are_cut_at_a_character_boundary() {
        let mut row = lag_row("g", 0);
        row.topic = "é".repeat(40_000); // 80,000 bytes, over u16::MAX
        let mut b = BytesMut::new();
        row.encode(&mut b);
        let back = PartitionLagWire::decode(&mut Reader::new(&b)).unwrap();
        assert_eq!(back.topic.len(), 65_534);
        assert!(back.topic.chars().all(|c| c == 'é'));
    }
}
