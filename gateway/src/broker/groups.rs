//! Native (Iggy) consumer groups: server-side assignment of a topic's partitions to the clients
//! that joined. Any membership change (join, leave, disconnect, partition count change) assigns
//! again with the `uniform` assignor of KIP-848 groups ([`super::assignor`]): members keep the
//! partitions they hold where balance allows, so only what must move moves (incremental
//! rebalancing). A member polling without a partition id takes its own partitions in turn.
//!
//! Group definitions (ids and names) are persisted; membership is per connection and is formed
//! again after a restart. Committed positions live in the log store's offsets, keyed by the
//! group's name, so Kafka groups of the same name share them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use wharf_log_store::{read_durable, write_durable, Ident};

use super::assignor::{Assignment, Assignor, MemberSpec};
use super::BrokerError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    pub id: u32,
    pub name: String,
    pub partitions_count: u32,
    /// (client id, assigned partitions), in order of joining.
    pub members: Vec<(u32, Vec<u32>)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Group {
    id: u32,
    name: String,
    #[serde(skip)]
    partitions_count: u32,
    #[serde(skip)]
    members: Vec<Member>,
}

#[derive(Debug, Clone, Default)]
struct Member {
    client_id: u32,
    partitions: Vec<u32>,
    next: usize,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TopicGroups {
    next_id: u32,
    groups: Vec<Group>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    /// Keyed "stream/topic" so the document stays plain JSON.
    topics: BTreeMap<String, TopicGroups>,
}

#[derive(Debug)]
pub struct ConsumerGroups {
    path: PathBuf,
    state: Mutex<State>,
    /// Reassignments of a group with members (a member joined or left, the partition count
    /// changed), for the operator.
    rebalances: AtomicU64,
}

fn key(stream: u32, topic: u32) -> String {
    format!("{stream}/{topic}")
}

fn matches(g: &Group, ident: Ident<'_>) -> bool {
    match ident {
        Ident::Id(id) => g.id == id,
        Ident::Name(n) => g.name == n,
    }
}

impl Group {
    fn info(&self) -> GroupInfo {
        GroupInfo {
            id: self.id,
            name: self.name.clone(),
            partitions_count: self.partitions_count,
            members: self
                .members
                .iter()
                .map(|m| (m.client_id, m.partitions.clone()))
                .collect(),
        }
    }

    /// Assigns the partitions with the server-side `uniform` assignor of KIP-848 groups:
    /// members keep what they hold where balance allows, so a join or leave moves only the
    /// partitions it must (incremental rebalancing), and loads differ by at most one.
    fn rebalance(&mut self) {
        // One topic per group: any fixed id names it for the assignor.
        let topic = uuid::Uuid::nil();
        let id = |client: u32| format!("{client:010}");
        let specs: Vec<MemberSpec> = self
            .members
            .iter()
            .map(|m| MemberSpec {
                member_id: id(m.client_id),
                subscribed: BTreeSet::from([topic]),
                current: Assignment::from([(
                    topic,
                    m.partitions
                        .iter()
                        .filter_map(|p| i32::try_from(*p).ok())
                        .collect(),
                )]),
            })
            .collect();
        let topics = BTreeMap::from([(topic, self.partitions_count)]);
        let mut target = Assignor::Uniform.assign(&specs, &topics);
        for m in &mut self.members {
            m.partitions = target
                .remove(&id(m.client_id))
                .and_then(|mut a| a.remove(&topic))
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| u32::try_from(p).ok())
                .collect();
            m.next = 0;
        }
    }
}

impl ConsumerGroups {
    pub fn open(data_dir: &Path) -> Result<ConsumerGroups, BrokerError> {
        let path = data_dir.join("consumer_groups");
        let state = match read_durable(&path)? {
            Some(b) => serde_json::from_slice(&b).map_err(|e| {
                BrokerError::Internal(format!("consumer groups document is unreadable: {e}"))
            })?,
            None => State::default(),
        };
        Ok(ConsumerGroups {
            path,
            state: Mutex::new(state),
            rebalances: AtomicU64::new(0),
        })
    }

    /// Reassignments of groups with members since the start.
    pub fn rebalances(&self) -> u64 {
        self.rebalances.load(Ordering::Relaxed)
    }

    /// Reassigns `g`'s partitions, counting it when it has members to reassign.
    fn rebalance(&self, g: &mut Group) {
        g.rebalance();
        if !g.members.is_empty() {
            self.rebalances.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn save(&self, state: &State) -> Result<(), BrokerError> {
        let b = serde_json::to_vec(state).map_err(|e| BrokerError::Internal(e.to_string()))?;
        write_durable(&self.path, &b)?;
        Ok(())
    }

    pub fn create(
        &self,
        stream: u32,
        topic: u32,
        name: &str,
        partitions: u32,
    ) -> Result<GroupInfo, BrokerError> {
        wharf_log_store::validate_name("consumer group", name)
            .map_err(|e| BrokerError::for_name(super::NameKind::ConsumerGroup, e))?;
        let mut state = self.state.lock();
        let t = state.topics.entry(key(stream, topic)).or_default();
        if t.groups.iter().any(|g| g.name == name) {
            return Err(BrokerError::GroupExists(name.to_string()));
        }
        let group = Group {
            id: t.next_id,
            name: name.to_string(),
            partitions_count: partitions,
            members: Vec::new(),
        };
        t.next_id += 1;
        let info = group.info();
        t.groups.push(group);
        if let Err(e) = self.save(&state) {
            if let Some(t) = state.topics.get_mut(&key(stream, topic)) {
                t.groups.retain(|g| g.id != info.id);
            }
            return Err(e);
        }
        Ok(info)
    }

    fn with_group<T>(
        &self,
        stream: u32,
        topic: u32,
        ident: Ident<'_>,
        partitions: u32,
        f: impl FnOnce(&mut Group) -> Result<T, BrokerError>,
    ) -> Result<T, BrokerError> {
        let mut state = self.state.lock();
        let group = state
            .topics
            .get_mut(&key(stream, topic))
            .and_then(|t| t.groups.iter_mut().find(|g| matches(g, ident)))
            .ok_or_else(|| BrokerError::GroupNotFound(ident.to_string()))?;
        if group.partitions_count != partitions {
            group.partitions_count = partitions;
            self.rebalance(group);
        }
        f(group)
    }

    pub fn get(
        &self,
        stream: u32,
        topic: u32,
        ident: Ident<'_>,
        partitions: u32,
    ) -> Option<GroupInfo> {
        self.with_group(stream, topic, ident, partitions, |g| Ok(g.info()))
            .ok()
    }

    pub fn list(&self, stream: u32, topic: u32, partitions: u32) -> Vec<GroupInfo> {
        let mut state = self.state.lock();
        let Some(t) = state.topics.get_mut(&key(stream, topic)) else {
            return Vec::new();
        };
        t.groups
            .iter_mut()
            .map(|g| {
                if g.partitions_count != partitions {
                    g.partitions_count = partitions;
                    g.rebalance();
                }
                g.info()
            })
            .collect()
    }

    pub fn delete(
        &self,
        stream: u32,
        topic: u32,
        ident: Ident<'_>,
    ) -> Result<GroupInfo, BrokerError> {
        let mut state = self.state.lock();
        let t = state
            .topics
            .get_mut(&key(stream, topic))
            .ok_or_else(|| BrokerError::GroupNotFound(ident.to_string()))?;
        let i = t
            .groups
            .iter()
            .position(|g| matches(g, ident))
            .ok_or_else(|| BrokerError::GroupNotFound(ident.to_string()))?;
        let removed = t.groups.remove(i);
        self.save(&state)?;
        Ok(removed.info())
    }

    pub fn join(
        &self,
        stream: u32,
        topic: u32,
        ident: Ident<'_>,
        client: u32,
        partitions: u32,
    ) -> Result<GroupInfo, BrokerError> {
        self.with_group(stream, topic, ident, partitions, |g| {
            if !g.members.iter().any(|m| m.client_id == client) {
                g.members.push(Member {
                    client_id: client,
                    ..Member::default()
                });
                self.rebalance(g);
            }
            Ok(g.info())
        })
    }

    pub fn leave(
        &self,
        stream: u32,
        topic: u32,
        ident: Ident<'_>,
        client: u32,
        partitions: u32,
    ) -> Result<GroupInfo, BrokerError> {
        self.with_group(stream, topic, ident, partitions, |g| {
            let before = g.members.len();
            g.members.retain(|m| m.client_id != client);
            if g.members.len() == before {
                return Err(BrokerError::NotGroupMember(ident.to_string()));
            }
            // The last member leaving reassigns nothing, but the group did change.
            g.rebalance();
            self.rebalances.fetch_add(1, Ordering::Relaxed);
            Ok(g.info())
        })
    }

    /// Removes a disconnected client from every group it joined.
    pub fn disconnect(&self, client: u32) {
        let mut state = self.state.lock();
        for t in state.topics.values_mut() {
            for g in &mut t.groups {
                let before = g.members.len();
                g.members.retain(|m| m.client_id != client);
                if g.members.len() != before {
                    g.rebalance();
                    self.rebalances.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// The partition a member polls next (its own, in turn), or `None` when it has none now.
    pub fn next_partition(
        &self,
        stream: u32,
        topic: u32,
        ident: Ident<'_>,
        client: u32,
        partitions: u32,
    ) -> Result<Option<u32>, BrokerError> {
        self.with_group(stream, topic, ident, partitions, |g| {
            let m = g
                .members
                .iter_mut()
                .find(|m| m.client_id == client)
                .ok_or_else(|| BrokerError::NotGroupMember(ident.to_string()))?;
            if m.partitions.is_empty() {
                return Ok(None);
            }
            let p = m.partitions[m.next % m.partitions.len()];
            m.next = (m.next + 1) % m.partitions.len();
            Ok(Some(p))
        })
    }

    /// True when `client` is a member that was assigned `partition`.
    pub fn owns(
        &self,
        stream: u32,
        topic: u32,
        ident: Ident<'_>,
        client: u32,
        partition: u32,
        partitions: u32,
    ) -> bool {
        self.with_group(stream, topic, ident, partitions, |g| {
            Ok(g.members
                .iter()
                .any(|m| m.client_id == client && m.partitions.contains(&partition)))
        })
        .unwrap_or(false)
    }

    /// The group's name (the key its offsets are stored under).
    pub fn name_of(&self, stream: u32, topic: u32, ident: Ident<'_>) -> Option<String> {
        let state = self.state.lock();
        state
            .topics
            .get(&key(stream, topic))
            .and_then(|t| t.groups.iter().find(|g| matches(g, ident)))
            .map(|g| g.name.clone())
    }

    /// Forgets the groups of a deleted topic (or of every topic of a deleted stream).
    pub fn drop_topics(&self, stream: u32, topic: Option<u32>) -> Result<(), BrokerError> {
        let mut state = self.state.lock();
        let prefix = format!("{stream}/");
        state.topics.retain(|k, _| match topic {
            Some(t) => *k != key(stream, t),
            None => !k.starts_with(&prefix),
        });
        self.save(&state)
    }

    pub fn count(&self) -> usize {
        self.state
            .lock()
            .topics
            .values()
            .map(|t| t.groups.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every reassignment of a group with members is counted: joins of new members, leaves,
    /// disconnects and a partition-count change; a repeated join or a stranger's disconnect
    /// changes nothing and counts nothing.
    #[test]
    fn membership_changes_are_counted_as_rebalances() {
        let dir = tempfile::tempdir().unwrap();
        let g = ConsumerGroups::open(dir.path()).unwrap();
        let info = g.create(0, 0, "workers", 3).unwrap();
        let gid = Ident::Id(info.id);
        g.join(0, 0, gid, 10, 3).unwrap();
        g.join(0, 0, gid, 11, 3).unwrap();
        g.join(0, 0, gid, 11, 3).unwrap();
        assert_eq!(g.rebalances(), 2);
        g.next_partition(0, 0, gid, 10, 4).unwrap();
        assert_eq!(g.rebalances(), 3, "four partitions now");
        g.leave(0, 0, gid, 10, 4).unwrap();
        g.disconnect(99);
        assert_eq!(g.rebalances(), 4);
        g.disconnect(11);
        assert_eq!(g.rebalances(), 5);
    }

    #[test]
    fn members_split_partitions_and_take_them_in_turn() {
        let dir = tempfile::tempdir().unwrap();
        let g = ConsumerGroups::open(dir.path()).unwrap();
        let info = g.create(0, 0, "workers", 3).unwrap();
        assert!(matches!(
            g.create(0, 0, "workers", 3),
            Err(BrokerError::GroupExists(_))
        ));
        let gid = Ident::Id(info.id);
        let one = g.join(0, 0, gid, 10, 3).unwrap();
        assert_eq!(one.members, vec![(10, vec![0, 1, 2])]);
        let two = g.join(0, 0, Ident::Name("workers"), 11, 3).unwrap();
        // Incremental: the first member keeps two of its three, the newcomer takes one.
        assert_eq!(two.members, vec![(10, vec![0, 1]), (11, vec![2])]);
        let polled: Vec<_> = (0..4)
            .map(|_| g.next_partition(0, 0, gid, 10, 3).unwrap())
            .collect();
        assert_eq!(polled, [Some(0), Some(1), Some(0), Some(1)]);
        assert!(matches!(
            g.next_partition(0, 0, gid, 99, 3),
            Err(BrokerError::NotGroupMember(_))
        ));
        g.disconnect(10);
        assert_eq!(
            g.get(0, 0, gid, 3).unwrap().members,
            vec![(11, vec![0, 1, 2])]
        );
        // Partitions added: assigned again.
        assert_eq!(
            g.get(0, 0, gid, 4).unwrap().members,
            vec![(11, vec![0, 1, 2, 3])]
        );
        g.leave(0, 0, gid, 11, 4).unwrap();
        drop(g);
        let g = ConsumerGroups::open(dir.path()).unwrap();
        let again = g.get(0, 0, Ident::Name("workers"), 3).unwrap();
        assert_eq!((again.id, again.members.len()), (info.id, 0));
        assert_eq!(g.create(0, 0, "second", 3).unwrap().id, info.id + 1);
    }

    /// The bound of incremental rebalancing: a join moves only what the newcomer's share
    /// needs, a leave moves only the leaver's partitions.
    #[test]
    fn joins_and_leaves_move_only_what_they_must() {
        let dir = tempfile::tempdir().unwrap();
        let g = ConsumerGroups::open(dir.path()).unwrap();
        let gid = Ident::Id(g.create(0, 0, "inc", 6).unwrap().id);
        for client in [1, 2, 3] {
            g.join(0, 0, gid, client, 6).unwrap();
        }
        let before: BTreeMap<u32, Vec<u32>> =
            g.get(0, 0, gid, 6).unwrap().members.into_iter().collect();
        assert!(before.values().all(|p| p.len() == 2), "{before:?}");
        let after: BTreeMap<u32, Vec<u32>> = g
            .join(0, 0, gid, 4, 6)
            .unwrap()
            .members
            .into_iter()
            .collect();
        let moved = |a: &BTreeMap<u32, Vec<u32>>, b: &BTreeMap<u32, Vec<u32>>| {
            a.iter()
                .map(|(c, parts)| {
                    let now = b.get(c).cloned().unwrap_or_default();
                    parts.iter().filter(|p| !now.contains(p)).count()
                })
                .sum::<usize>()
        };
        assert_eq!(
            moved(&before, &after),
            1,
            "6 over 4 members: one partition moves"
        );
        assert_eq!(after[&4].len(), 1);
        g.leave(0, 0, gid, 1, 6).unwrap();
        let left: BTreeMap<u32, Vec<u32>> =
            g.get(0, 0, gid, 6).unwrap().members.into_iter().collect();
        let stayed: BTreeMap<u32, Vec<u32>> = after
            .iter()
            .filter(|(c, _)| **c != 1)
            .map(|(c, p)| (*c, p.clone()))
            .collect();
        assert_eq!(
            moved(&stayed, &left),
            0,
            "those who stay keep every partition"
        );
        assert_eq!(left.values().map(Vec::len).sum::<usize>(), 6);
    }
}
