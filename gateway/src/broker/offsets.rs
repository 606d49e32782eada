//! Committed offsets, for both doors: one store keyed by (consumer or group, stream, topic,
//! partition). Kafka commits the next offset to read; Iggy stores the last consumed one; the
//! conversion is here. A Kafka group and an Iggy group of the same name share their positions.
//! Writes run on the blocking pool, where the offsets journal groups concurrent commits into one
//! write.

use std::collections::HashSet;
use std::sync::Arc;

use wharf_protocol::{Consumer, Identifier};

use super::coordinator::{GroupError, GroupListing, GroupSummary, MemberRef};
use super::{
    now_us, Broker, BrokerError, CommittedOffset, Ident, OffsetKey, OffsetOwner, StoreError,
    TopicInfo,
};

/// Kafka's `offset.metadata.max.bytes` default.
pub const MAX_COMMIT_METADATA: usize = 4096;

/// A native identifier as a look-up key.
pub fn group_ident(id: &Identifier) -> Ident<'_> {
    match id {
        Identifier::Numeric(n) => Ident::Id(*n),
        Identifier::Name(s) => Ident::Name(s),
    }
}

/// A Kafka group's commit for one partition.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

impl GroupCommit {
    /// The checks a committed position must pass whoever stores it (OffsetCommit and
    /// TxnOffsetCommit alike): metadata within [`MAX_COMMIT_METADATA`], offset not negative.
    pub fn check(&self) -> Result<(), PartitionOffsetError> {
        if self.metadata.len() > MAX_COMMIT_METADATA {
            Err(PartitionOffsetError::MetadataTooLarge(self.metadata.len()))
        } else if self.offset < 0 {
            Err(PartitionOffsetError::InvalidOffset(self.offset))
        } else {
            Ok(())
        }
    }
}

/// Why one partition of a Kafka offset commit or delete was refused.
#[derive(Debug, thiserror::Error)]
pub enum PartitionOffsetError {
    #[error("unknown topic or partition")]
    UnknownPartition,
    #[error("metadata of {0} bytes exceeds {MAX_COMMIT_METADATA}")]
    MetadataTooLarge(usize),
    #[error("negative offset {0}")]
    InvalidOffset(i64),
    #[error("the group has members subscribed to the topic")]
    Subscribed,
    #[error(transparent)]
    Group(#[from] GroupError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// A native consumer's stored position on one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerPosition {
    pub partition: u32,
    /// The partition's last offset.
    pub current_offset: u64,
    /// The last offset the consumer consumed.
    pub stored_offset: u64,
}

impl Broker {
    /// Whose offsets these are: a consumer by its id or name, or a group by its name (so Kafka
    /// groups of the same name share them).
    pub fn offset_owner(
        &self,
        consumer: &Consumer,
        stream: u32,
        topic: u32,
    ) -> Result<OffsetOwner, BrokerError> {
        Ok(match consumer {
            Consumer::Single(Identifier::Numeric(n)) => OffsetOwner::Consumer(n.to_string()),
            Consumer::Single(Identifier::Name(s)) => OffsetOwner::Consumer(s.clone()),
            Consumer::Group(g) => OffsetOwner::Group(
                self.groups
                    .name_of(stream, topic, group_ident(g))
                    .ok_or_else(|| BrokerError::GroupNotFound(g.to_string()))?,
            ),
        })
    }

    fn native_key(
        &self,
        consumer: &Consumer,
        t: &TopicInfo,
        partition: Option<u32>,
    ) -> Result<(OffsetKey, u64), BrokerError> {
        let partition = partition.unwrap_or(0);
        let p = self.partition_handle(t.stream_id, t.id, partition)?;
        let key = OffsetKey {
            owner: self.offset_owner(consumer, t.stream_id, t.id)?,
            stream: t.stream_id,
            topic: t.id,
            partition,
        };
        Ok((key, p.high_watermark()))
    }

    /// A native consumer's last consumed offset, `None` when it has none (or its group does not
    /// exist).
    pub fn consumer_offset(
        &self,
        consumer: &Consumer,
        t: &TopicInfo,
        partition: Option<u32>,
    ) -> Result<Option<ConsumerPosition>, BrokerError> {
        let (key, hw) = match self.native_key(consumer, t, partition) {
            Ok(k) => k,
            Err(BrokerError::GroupNotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(self
            .store
            .offsets()
            .get(&key)
            .filter(|c| c.next_offset > 0)
            .map(|c| ConsumerPosition {
                partition: key.partition,
                current_offset: hw.saturating_sub(1),
                stored_offset: c.next_offset - 1,
            }))
    }

    /// Stores a native consumer's last consumed offset.
    pub async fn store_consumer_offset(
        &self,
        consumer: &Consumer,
        t: &TopicInfo,
        partition: Option<u32>,
        offset: u64,
    ) -> Result<(), BrokerError> {
        let (key, _) = self.native_key(consumer, t, partition)?;
        self.blocking(move |store| {
            super::consume::commit_position(store, key, offset.saturating_add(1))
        })
        .await
    }

    /// Deletes a native consumer's position; OffsetNotFound when there was none.
    pub async fn delete_consumer_offset(
        &self,
        consumer: &Consumer,
        t: &TopicInfo,
        partition: Option<u32>,
    ) -> Result<(), BrokerError> {
        let (key, _) = self.native_key(consumer, t, partition)?;
        self.blocking(move |store| match store.offsets().delete(&key)? {
            true => Ok(()),
            false => Err(BrokerError::OffsetNotFound),
        })
        .await
    }

    /// Deletes a native consumer group with its committed offsets; its members leave it.
    pub async fn delete_native_group(
        &self,
        t: &TopicInfo,
        group: &Identifier,
    ) -> Result<(), BrokerError> {
        let groups = Arc::clone(&self.groups);
        let (s, tid, group) = (t.stream_id, t.id, group.clone());
        let g = self
            .blocking(move |store| {
                let g = groups.delete(s, tid, group_ident(&group))?;
                let owner = OffsetOwner::Group(g.name.clone());
                store
                    .offsets()
                    .delete_where(|k| k.stream == s && k.topic == tid && k.owner == owner)?;
                Ok(g)
            })
            .await?;
        for (member, _) in &g.members {
            self.clients.left(*member, (s, tid, g.id));
        }
        Ok(())
    }

    /// Creates a native consumer group on a topic.
    pub async fn create_native_group(
        &self,
        t: &TopicInfo,
        name: &str,
    ) -> Result<super::GroupInfo, BrokerError> {
        let groups = Arc::clone(&self.groups);
        let (s, tid, partitions, name) = (t.stream_id, t.id, t.partitions, name.to_string());
        self.blocking(move |_| groups.create(s, tid, &name, partitions))
            .await
    }

    /// A native client joins a consumer group (assignments are redone).
    pub fn join_native_group(
        &self,
        t: &TopicInfo,
        group: &Identifier,
        client_id: u32,
    ) -> Result<(), BrokerError> {
        let g = self.groups.join(
            t.stream_id,
            t.id,
            group_ident(group),
            client_id,
            t.partitions,
        )?;
        self.clients.joined(client_id, (t.stream_id, t.id, g.id));
        Ok(())
    }

    /// A native client leaves a consumer group.
    pub fn leave_native_group(
        &self,
        t: &TopicInfo,
        group: &Identifier,
        client_id: u32,
    ) -> Result<(), BrokerError> {
        let g = self.groups.leave(
            t.stream_id,
            t.id,
            group_ident(group),
            client_id,
            t.partitions,
        )?;
        self.clients.left(client_id, (t.stream_id, t.id, g.id));
        Ok(())
    }

    /// A native connection ended: its client leaves its groups and the registry.
    pub fn disconnect(&self, client_id: u32) {
        self.groups.disconnect(client_id);
        self.clients.disconnect(client_id);
    }

    // ----- Kafka groups -----

    /// A Kafka OffsetCommit: each partition's outcome, in order. The commits that pass the
    /// per-partition checks are stored together, if the coordinator accepts the member and
    /// generation (checked and written under the group's lock, so no rebalance slips between).
    pub async fn commit_group_offsets(
        &self,
        group: &str,
        who: MemberRef<'_>,
        commits: Vec<GroupCommit>,
    ) -> Vec<Result<(), PartitionOffsetError>> {
        let now = now_us();
        let mut outcomes: Vec<Result<(), PartitionOffsetError>> = Vec::with_capacity(commits.len());
        let mut items = Vec::new();
        let mut slots = Vec::new();
        for c in commits {
            let checked = if group.is_empty() {
                Err(GroupError::InvalidGroupId.into())
            } else {
                self.group_key(group, &c.topic, c.partition)
                    .and_then(|key| c.check().map(|()| key))
            };
            match checked {
                Ok(key) => {
                    items.push((
                        key,
                        CommittedOffset {
                            next_offset: c.offset as u64,
                            leader_epoch: c.leader_epoch,
                            metadata: c.metadata,
                            commit_timestamp: now,
                        },
                    ));
                    slots.push(outcomes.len());
                    outcomes.push(Ok(()));
                }
                Err(e) => outcomes.push(Err(e)),
            }
        }
        if items.is_empty() {
            return outcomes;
        }
        let coordinator = Arc::clone(&self.coordinator);
        let (group, member_id, instance_id, generation) = (
            group.to_string(),
            who.member_id.to_string(),
            who.group_instance_id.map(str::to_string),
            who.generation,
        );
        let written = self
            .blocking(move |store| {
                let who = MemberRef {
                    member_id: &member_id,
                    group_instance_id: instance_id.as_deref(),
                    generation,
                };
                Ok(coordinator.commit_offsets(&group, who, || store.offsets().commit_many(items)))
            })
            .await;
        for slot in slots {
            outcomes[slot] = match &written {
                Ok(Ok(Ok(()))) => Ok(()),
                Ok(Ok(Err(e))) => Err(BrokerError::Internal(format!(
                    "cannot store committed offsets: {e}"
                ))
                .into()),
                Ok(Err(e)) => Err(e.clone().into()),
                Err(e) => Err(BrokerError::Internal(e.to_string()).into()),
            };
        }
        outcomes
    }

    fn group_key(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> Result<OffsetKey, PartitionOffsetError> {
        let t = self
            .kafka_topic(topic)
            .map_err(|_| PartitionOffsetError::UnknownPartition)?;
        match u32::try_from(partition) {
            Ok(p) if p < t.partitions => Ok(OffsetKey {
                owner: OffsetOwner::Group(group.to_string()),
                stream: t.stream_id,
                topic: t.id,
                partition: p,
            }),
            _ => Err(PartitionOffsetError::UnknownPartition),
        }
    }

    /// A Kafka group's committed position on a partition (`None`: none, or no such topic).
    pub fn group_offset(
        &self,
        group: &str,
        topic: &str,
        partition: i32,
    ) -> Option<CommittedOffset> {
        let t = self.kafka_topic(topic).ok()?;
        self.store.offsets().get(&OffsetKey {
            owner: OffsetOwner::Group(group.to_string()),
            stream: t.stream_id,
            topic: t.id,
            partition: u32::try_from(partition).ok()?,
        })
    }

    /// Every position a Kafka group holds, by the Kafka name of its topic (sorted by name, then
    /// partition).
    pub fn group_offsets(&self, group: &str) -> Vec<(String, u32, CommittedOffset)> {
        let names: std::collections::HashMap<(u32, u32), String> = self
            .kafka_topics()
            .into_iter()
            .map(|(name, t)| ((t.stream_id, t.id), name))
            .collect();
        let owner = OffsetOwner::Group(group.to_string());
        let mut out: Vec<_> = self
            .store
            .offsets()
            .list(|k| k.owner == owner)
            .into_iter()
            .filter_map(|(k, v)| {
                names
                    .get(&(k.stream, k.topic))
                    .map(|n| (n.clone(), k.partition, v))
            })
            .collect();
        out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        out
    }

    pub(super) fn group_has_offsets(&self, group: &str) -> bool {
        let owner = OffsetOwner::Group(group.to_string());
        self.store.offsets().any(|k| k.owner == owner)
    }

    /// DescribeGroups for one Kafka group (one with committed offsets but no members is Empty).
    pub fn describe_kafka_group(&self, group: &str) -> Result<GroupSummary, GroupError> {
        self.coordinator
            .describe(group, self.group_has_offsets(group))
    }

    /// ListGroups: the groups with members here and those with committed offsets.
    pub fn list_kafka_groups(&self) -> Vec<GroupListing> {
        self.coordinator.list(self.store.offsets().group_names())
    }

    /// DeleteGroups for one group: an empty group is forgotten with its committed offsets.
    pub async fn delete_kafka_group(&self, group: &str) -> Result<(), PartitionOffsetError> {
        if group.is_empty() {
            return Err(GroupError::InvalidGroupId.into());
        }
        let coordinator = Arc::clone(&self.coordinator);
        let group = group.to_string();
        let (outcome, failed) = self
            .blocking(move |store| {
                let mut failed: Option<StoreError> = None;
                let owner = OffsetOwner::Group(group.clone());
                let outcome = coordinator.delete(&group, || {
                    match store.offsets().delete_where(|k| k.owner == owner) {
                        Ok(n) => n > 0,
                        Err(e) => {
                            failed = Some(e);
                            true
                        }
                    }
                });
                Ok((outcome, failed))
            })
            .await?;
        outcome?;
        match failed {
            Some(e) => Err(BrokerError::from(e).into()),
            None => Ok(()),
        }
    }

    /// Kafka OffsetDelete: drops a group's positions on the partitions given, unless members of
    /// the group are subscribed to the topic. The outer error is the group's; the inner list has
    /// each partition's outcome, by topic.
    pub async fn delete_group_offsets(
        &self,
        group: &str,
        topics: Vec<(String, Vec<i32>)>,
    ) -> Result<Vec<Vec<Result<(), PartitionOffsetError>>>, PartitionOffsetError> {
        if group.is_empty() {
            return Err(GroupError::InvalidGroupId.into());
        }
        let has_offsets = self.group_has_offsets(group);
        let subscribed = if let Some(topics) = self.coordinator.consumer_group_subscriptions(group)
        {
            // A consumer-protocol group: its members' subscriptions, resolved by the server.
            topics.into_iter().collect::<HashSet<String>>()
        } else {
            self.coordinator
                .with_subscriptions(group, |active| match active {
                    None if !has_offsets => Err(GroupError::GroupIdNotFound),
                    None => Ok(HashSet::new()),
                    Some((protocol_type, _)) if protocol_type != "consumer" => {
                        Err(GroupError::NonEmptyGroup)
                    }
                    Some((_, subscriptions)) => Ok(subscriptions
                        .iter()
                        .flat_map(|s| subscribed_topics(s).unwrap_or_default())
                        .collect::<HashSet<String>>()),
                })??
        };
        let mut out = Vec::with_capacity(topics.len());
        for (topic, partitions) in topics {
            let mut results = Vec::with_capacity(partitions.len());
            for p in partitions {
                let key = match self.group_key(group, &topic, p) {
                    Ok(_) if subscribed.contains(&topic) => {
                        results.push(Err(PartitionOffsetError::Subscribed));
                        continue;
                    }
                    Ok(k) => k,
                    Err(e) => {
                        results.push(Err(e));
                        continue;
                    }
                };
                let deleted = self
                    .blocking(move |store| Ok(store.offsets().delete(&key)?))
                    .await;
                results.push(deleted.map(|_| ()).map_err(PartitionOffsetError::from));
            }
            out.push(results);
        }
        Ok(out)
    }
}

/// The topics of a Kafka `ConsumerProtocolSubscription` (v0-3 share the leading
/// `version: i16, topics: [string]` layout), read with every length checked; `None` when the
/// bytes are not one.
pub fn subscribed_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut rest = metadata.get(2..)?;
    let count = i32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    rest = &rest[4..];
    // Each topic needs at least its 2-byte length: a count beyond that is a lie.
    if count < 0 || count as usize > rest.len() / 2 {
        return None;
    }
    let mut topics = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = i16::from_be_bytes(rest.get(..2)?.try_into().ok()?);
        let len = usize::try_from(len).ok()?;
        let name = rest.get(2..2 + len)?;
        topics.push(String::from_utf8(name.to_vec()).ok()?);
        rest = &rest[2 + len..];
    }
    Some(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_are_read_with_bounds_checked() {
        let mut m = vec![0, 1, 0, 0, 0, 2];
        for t in ["orders", "s.t"] {
            m.extend_from_slice(&(t.len() as i16).to_be_bytes());
            m.extend_from_slice(t.as_bytes());
        }
        m.extend_from_slice(&[0, 0, 0, 0]); // user data, ignored
        assert_eq!(
            subscribed_topics(&m),
            Some(vec!["orders".to_string(), "s.t".to_string()])
        );
        assert_eq!(subscribed_topics(&m[..9]), None);
        assert_eq!(subscribed_topics(&[0, 0, 0x7f, 0xff, 0xff, 0xff]), None);
        assert_eq!(subscribed_topics(&[0, 0, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(subscribed_topics(&[]), None);
    }
}
