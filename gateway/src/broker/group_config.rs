//! Per-group configs (KIP-848's group configs, Kafka's `ConfigResource.Type.GROUP`): the
//! settings an operator sets on one group with IncrementalAlterConfigs, that override the
//! broker-wide `group.consumer.*` defaults for that group. Persisted in the data directory.

use std::path::Path;

use super::BrokerError;

/// One group's overrides; `None` means "the broker-wide default".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupConfig {
    /// `consumer.session.timeout.ms`
    pub consumer_session_timeout_ms: Option<i32>,
    /// `consumer.heartbeat.interval.ms`
    pub consumer_heartbeat_interval_ms: Option<i32>,
}

/// Every group's overrides.
#[derive(Debug, Default)]
pub struct GroupConfigs {}

impl GroupConfigs {
    // SEAM (#18): the configs part persists and validates these.
    pub fn open(data_dir: &Path) -> Result<GroupConfigs, BrokerError> {
        let _ = data_dir;
        Ok(GroupConfigs {})
    }

    /// The groups with at least one override (ListConfigResources' GROUP resources).
    // SEAM (#18): the configs part lists what it stores; none are stored yet.
    pub fn groups(&self) -> Vec<String> {
        Vec::new()
    }

    /// `group`'s overrides (all `None` for a group with none set).
    pub fn get(&self, group: &str) -> GroupConfig {
        let _ = group;
        GroupConfig::default()
    }
}
