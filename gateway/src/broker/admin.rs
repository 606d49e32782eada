//! The cluster-administration use cases of a one-node cluster: where each partition lives and
//! how big it is (one data directory), moving a replica between log directories, leader
//! elections, partition reassignments and manual replica assignments, the producers active on
//! a partition, and which config resources exist.
//!
//! Wharf is one node, so every partition has exactly one replica, on this node, which leads it.
//! The rules that follow from that live here, for any door: a manual assignment is valid only
//! when it names this node once; an election is never needed; a reassignment to this node is
//! complete as soon as it is accepted, so none is ever in progress.

use std::collections::HashSet;
use std::path::PathBuf;

use super::producers::ActiveProducer;
use super::{Broker, BrokerError, StoreError, TopicInfo};

/// The data directory as DescribeLogDirs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDir {
    /// Absolute path (what AlterReplicaLogDirs must name).
    pub path: String,
    /// Size and free space of its file system; -1 when unknown (Kafka's `UNKNOWN_VOLUME_BYTES`).
    pub total_bytes: i64,
    pub usable_bytes: i64,
    /// Only topics with at least one partition asked for.
    pub topics: Vec<LogDirTopic>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDirTopic {
    pub name: String,
    /// (partition index, bytes of its local segments).
    pub partitions: Vec<(i32, u64)>,
}

/// Why a replica cannot be moved to a log directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogDirError {
    #[error("log directory {0} is not this server's data directory")]
    NotFound(String),
    #[error("no partition {partition} of topic {topic}")]
    UnknownPartition { topic: String, partition: i32 },
}

/// What electing a leader for a partition comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Election {
    /// The partition has its leader, the preferred one: its only replica.
    NotNeeded,
    UnknownPartition,
}

/// Why a manual replica assignment is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssignmentError {
    #[error("the replica list is empty")]
    Empty,
    #[error("broker {0} is not in the cluster: its only broker is {1}")]
    UnknownBroker(i32, i32),
    #[error("broker {0} is listed more than once")]
    Duplicate(i32),
    #[error("a partition with {got} replica(s) where the others have {want}")]
    Inconsistent { got: usize, want: usize },
    #[error("partition {0} is assigned more than once")]
    DuplicatePartition(i32),
    #[error("the assigned partitions must be numbered 0, 1, 2, ... without gaps")]
    NotConsecutive,
    #[error("{additional} partition(s) added but {given} assignment(s) given")]
    CountMismatch { additional: usize, given: usize },
}

/// Why a partition reassignment is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReassignError {
    #[error("no partition {partition} of topic {topic}")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("no reassignment is in progress (on one node one completes when it is accepted)")]
    NoneInProgress,
    #[error("invalid replica assignment: {0}")]
    Assignment(AssignmentError),
    #[error("the replication factor would change from {from} to {to}")]
    ReplicationFactorChange { from: usize, to: usize },
}

/// Checks one partition's manual replica list: not empty, no broker twice, every broker in the
/// cluster (only `node`), and as many replicas as `replication_factor` when given. On one node
/// the only valid list is `[node]`.
///
/// # Errors
///
/// The first rule the list breaks.
pub fn check_replicas(
    replicas: &[i32],
    node: i32,
    replication_factor: Option<usize>,
) -> Result<(), AssignmentError> {
    if replicas.is_empty() {
        return Err(AssignmentError::Empty);
    }
    let mut sorted = replicas.to_vec();
    sorted.sort_unstable();
    for (i, &broker) in sorted.iter().enumerate() {
        if broker != node {
            return Err(AssignmentError::UnknownBroker(broker, node));
        }
        if i > 0 && sorted[i - 1] == broker {
            return Err(AssignmentError::Duplicate(broker));
        }
    }
    match replication_factor {
        Some(want) if want != sorted.len() => Err(AssignmentError::Inconsistent {
            got: sorted.len(),
            want,
        }),
        _ => Ok(()),
    }
}

/// Checks a new topic's manual assignment (partition index, replicas): each list valid, every
/// list the same length, each partition once, numbered from 0 without gaps. The topic's
/// partition count when it is.
///
/// # Errors
///
/// The first rule the assignment breaks.
pub fn new_topic_assignment(
    assignments: &[(i32, &[i32])],
    node: i32,
) -> Result<u32, AssignmentError> {
    let mut seen = HashSet::with_capacity(assignments.len());
    let mut replication_factor = None;
    for &(partition, replicas) in assignments {
        if !seen.insert(partition) {
            return Err(AssignmentError::DuplicatePartition(partition));
        }
        check_replicas(replicas, node, replication_factor)?;
        replication_factor = Some(replicas.len());
    }
    let count = u32::try_from(seen.len()).map_err(|_| AssignmentError::NotConsecutive)?;
    let consecutive = (0..count).all(|i| i32::try_from(i).is_ok_and(|i| seen.contains(&i)));
    if consecutive {
        Ok(count)
    } else {
        Err(AssignmentError::NotConsecutive)
    }
}

/// Checks the manual assignment of `additional` new partitions of a topic whose partitions
/// have one replica each.
///
/// # Errors
///
/// The first rule the assignment breaks.
pub fn added_partitions_assignment(
    assignments: &[&[i32]],
    additional: usize,
    node: i32,
) -> Result<(), AssignmentError> {
    if assignments.len() != additional {
        return Err(AssignmentError::CountMismatch {
            additional,
            given: assignments.len(),
        });
    }
    assignments
        .iter()
        .try_for_each(|replicas| check_replicas(replicas, node, Some(1)))
}

impl Broker {
    /// The topic and partition a Kafka name and index point to, if both exist.
    fn kafka_partition_exists(&self, topic: &str, partition: i32) -> bool {
        self.kafka_topic(topic)
            .is_ok_and(|t| u32::try_from(partition).is_ok_and(|p| p < t.partitions))
    }

    /// The data directory's absolute path, as DescribeLogDirs shows it.
    pub fn log_dir_path(&self) -> String {
        let dir = self.data_dir();
        std::path::absolute(dir)
            .unwrap_or_else(|_| PathBuf::from(dir))
            .display()
            .to_string()
    }

    /// The data directory with the size of each partition asked for (`None`: every partition).
    /// Partitions that do not exist are left out, as Kafka leaves out logs it does not have.
    pub fn describe_log_dir(&self, wanted: Option<&[(String, Vec<i32>)]>) -> LogDir {
        let wanted: Option<HashSet<(&str, i32)>> = wanted.map(|w| {
            w.iter()
                .flat_map(|(t, ps)| ps.iter().map(move |&p| (t.as_str(), p)))
                .collect()
        });
        let mut topics = Vec::new();
        for (name, info) in self.kafka_topics() {
            let partitions: Vec<(i32, u64)> = self
                .partition_stats(info.stream_id, info.id)
                .iter()
                .enumerate()
                .filter_map(|(i, stats)| Some((i32::try_from(i).ok()?, stats.size_bytes)))
                .filter(|(i, _)| {
                    wanted
                        .as_ref()
                        .is_none_or(|w| w.contains(&(name.as_str(), *i)))
                })
                .collect();
            if !partitions.is_empty() {
                topics.push(LogDirTopic { name, partitions });
            }
        }
        let (usable, total) = crate::metrics::process::disk_space(self.data_dir()).map_or(
            (-1, -1),
            |(free, total)| {
                (
                    i64::try_from(free).unwrap_or(i64::MAX),
                    i64::try_from(total).unwrap_or(i64::MAX),
                )
            },
        );
        LogDir {
            path: self.log_dir_path(),
            total_bytes: total,
            usable_bytes: usable,
            topics,
        }
    }

    /// Moves a partition's replica to log directory `dest`. There is one directory, so this
    /// succeeds, moving nothing, exactly when `dest` is it and the partition exists.
    ///
    /// # Errors
    ///
    /// [`LogDirError::NotFound`] first (Kafka checks the directory before the partition), then
    /// [`LogDirError::UnknownPartition`].
    pub fn alter_replica_log_dir(
        &self,
        dest: &str,
        topic: &str,
        partition: i32,
    ) -> Result<(), LogDirError> {
        if dest != self.log_dir_path() {
            return Err(LogDirError::NotFound(dest.to_string()));
        }
        if !self.kafka_partition_exists(topic, partition) {
            return Err(LogDirError::UnknownPartition {
                topic: topic.to_string(),
                partition,
            });
        }
        Ok(())
    }

    /// Elects a leader for a partition: its one replica leads it already.
    pub fn elect_leader(&self, topic: &str, partition: i32) -> Election {
        if self.kafka_partition_exists(topic, partition) {
            Election::NotNeeded
        } else {
            Election::UnknownPartition
        }
    }

    /// Reassigns a partition's replicas to `replicas`, or cancels its reassignment (`None`).
    /// Valid replicas can only be `[node]`, where the replica is: accepted and complete at once.
    ///
    /// # Errors
    ///
    /// An unknown partition, a cancellation (nothing is ever in progress), an invalid list, or
    /// a change of replication factor when `allow_rf_change` is false.
    pub fn reassign_partition(
        &self,
        topic: &str,
        partition: i32,
        replicas: Option<&[i32]>,
        node: i32,
        allow_rf_change: bool,
    ) -> Result<(), ReassignError> {
        if !self.kafka_partition_exists(topic, partition) {
            return Err(ReassignError::UnknownPartition {
                topic: topic.to_string(),
                partition,
            });
        }
        let Some(replicas) = replicas else {
            return Err(ReassignError::NoneInProgress);
        };
        check_replicas(replicas, node, None).map_err(ReassignError::Assignment)?;
        if !allow_rf_change && replicas.len() != 1 {
            return Err(ReassignError::ReplicationFactorChange {
                from: 1,
                to: replicas.len(),
            });
        }
        Ok(())
    }

    /// The partitions with a reassignment in progress, by topic: none, since
    /// [`Broker::reassign_partition`] completes a reassignment when it accepts it.
    pub fn reassignments_in_progress(&self) -> Vec<(String, Vec<i32>)> {
        Vec::new()
    }

    /// The producers with state on partition `partition` of `topic` (its state is loaded first
    /// if no produce has touched it since the start).
    ///
    /// # Errors
    ///
    /// The partition does not exist, or its producer state cannot be read.
    pub async fn active_producers(
        &self,
        topic: &TopicInfo,
        partition: i32,
    ) -> Result<Vec<ActiveProducer>, BrokerError> {
        let index = u32::try_from(partition).map_err(|_| {
            BrokerError::from(StoreError::PartitionNotFound {
                topic: topic.name.clone(),
                partition: u32::MAX,
                count: topic.partitions,
            })
        })?;
        let handle = self.partition_handle(topic.stream_id, topic.id, index)?;
        let state = self.producers.partition(&handle).await?;
        Ok(state.active())
    }

    /// The groups with config overrides (ListConfigResources' GROUP resources).
    pub fn groups_with_configs(&self) -> Vec<String> {
        self.group_configs.groups()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: i32 = 1;

    #[test]
    fn the_only_valid_replica_list_is_this_node_once() {
        assert_eq!(check_replicas(&[NODE], NODE, None), Ok(()));
        assert_eq!(check_replicas(&[NODE], NODE, Some(1)), Ok(()));
        assert_eq!(check_replicas(&[], NODE, None), Err(AssignmentError::Empty));
        assert_eq!(
            check_replicas(&[2], NODE, None),
            Err(AssignmentError::UnknownBroker(2, NODE))
        );
        assert_eq!(
            check_replicas(&[NODE, NODE], NODE, None),
            Err(AssignmentError::Duplicate(NODE))
        );
        assert_eq!(
            check_replicas(&[NODE], NODE, Some(2)),
            Err(AssignmentError::Inconsistent { got: 1, want: 2 })
        );
    }

    #[test]
    fn a_new_topic_assignment_is_numbered_from_zero_without_gaps() {
        let one: &[i32] = &[NODE];
        assert_eq!(new_topic_assignment(&[(1, one), (0, one)], NODE), Ok(2));
        assert_eq!(
            new_topic_assignment(&[(0, one), (2, one)], NODE),
            Err(AssignmentError::NotConsecutive)
        );
        assert_eq!(
            new_topic_assignment(&[(0, one), (0, one)], NODE),
            Err(AssignmentError::DuplicatePartition(0))
        );
        assert_eq!(
            new_topic_assignment(&[(0, one), (1, &[3])], NODE),
            Err(AssignmentError::UnknownBroker(3, NODE))
        );
    }

    #[test]
    fn added_partitions_need_one_assignment_each() {
        let one: &[i32] = &[NODE];
        assert_eq!(added_partitions_assignment(&[one, one], 2, NODE), Ok(()));
        assert_eq!(
            added_partitions_assignment(&[one], 2, NODE),
            Err(AssignmentError::CountMismatch {
                additional: 2,
                given: 1
            })
        );
        assert_eq!(
            added_partitions_assignment(&[one, &[NODE, 2]], 2, NODE),
            Err(AssignmentError::UnknownBroker(2, NODE))
        );
    }
}
