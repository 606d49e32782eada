//! Per-group configs (KIP-848's group configs, Kafka's `ConfigResource.Type.GROUP`): the
//! settings an operator sets on one group with IncrementalAlterConfigs (or AlterConfigs), that
//! override the broker-wide `group.consumer.*` defaults for that group. Checked as Kafka's
//! `GroupConfig` checks them (each within the broker's `group.consumer.min/max.*` bounds, the
//! session timeout above the heartbeat interval, on the group's whole resulting config),
//! persisted in the data directory, and described with their sources. A group need not exist
//! to carry configs, as in Kafka.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use wharf_log_store::{read_durable, write_durable};

use super::broker_config::WriteDocument;
use super::coordinator::ConsumerProtocolSettings;
use super::topic_config::{
    AlterMode, ConfigChange, ConfigEntry, ConfigOp, ConfigSource, ConfigType,
};
use super::BrokerError;

/// `consumer.session.timeout.ms`
pub const CONSUMER_SESSION_TIMEOUT_MS: &str = "consumer.session.timeout.ms";
/// `consumer.heartbeat.interval.ms`
pub const CONSUMER_HEARTBEAT_INTERVAL_MS: &str = "consumer.heartbeat.interval.ms";

/// The group config names Wharf has (Kafka's `share.*` group configs belong to share groups,
/// which Wharf does not have).
pub const NAMES: &[&str] = &[CONSUMER_SESSION_TIMEOUT_MS, CONSUMER_HEARTBEAT_INTERVAL_MS];

/// One group's overrides; `None` means "the broker-wide default".
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GroupConfig {
    /// `consumer.session.timeout.ms`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_session_timeout_ms: Option<i32>,
    /// `consumer.heartbeat.interval.ms`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_heartbeat_interval_ms: Option<i32>,
}

impl GroupConfig {
    fn is_empty(&self) -> bool {
        *self == GroupConfig::default()
    }
}

/// Why a group config change is refused, with Kafka's error.
#[derive(Debug, thiserror::Error)]
pub enum GroupConfigError {
    /// INVALID_REQUEST: the default group resource (an empty name), or a malformed request.
    #[error("{0}")]
    InvalidRequest(String),
    /// INVALID_CONFIG: an unknown name, or a value Kafka's `GroupConfig` refuses.
    #[error("{0}")]
    InvalidConfig(String),
    /// The document could not be written.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// Every group's overrides, persisted as one JSON document (`group_configs`).
pub struct GroupConfigs {
    path: PathBuf,
    state: Mutex<BTreeMap<String, GroupConfig>>,
    /// Serialises changes, so each is written whole before the next is computed; readers
    /// (every ConsumerGroupHeartbeat) take `state` only and never wait for the disk.
    changes: Mutex<()>,
    write: WriteDocument,
}

impl std::fmt::Debug for GroupConfigs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupConfigs")
            .field("path", &self.path)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

fn millis_i32(d: std::time::Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// An INT config as Kafka's `ConfigDef` parses one, at least 1 (`GroupConfig`'s `atLeast(1)`).
fn positive_int(name: &str, v: &str) -> Result<i32, GroupConfigError> {
    let n = v.trim().parse::<i32>().map_err(|_| {
        GroupConfigError::InvalidConfig(format!(
            "Invalid value {v} for configuration {name}: Not a number of type INT"
        ))
    })?;
    if n < 1 {
        return Err(GroupConfigError::InvalidConfig(format!(
            "Invalid value {n} for configuration {name}: Value must be at least 1"
        )));
    }
    Ok(n)
}

/// Applies one change to `c`: SET and DELETE; APPEND and SUBTRACT are refused (no group config
/// is a list), as Kafka refuses them for non-list configs.
fn apply(c: &mut GroupConfig, change: &ConfigChange) -> Result<(), GroupConfigError> {
    // Kafka's controller refuses APPEND and SUBTRACT on a key that is not a list before it
    // looks at the name.
    if let ConfigOp::Append(_) | ConfigOp::Subtract(_) = change.op {
        let op = if matches!(change.op, ConfigOp::Append(_)) {
            "APPEND"
        } else {
            "SUBTRACT"
        };
        return Err(GroupConfigError::InvalidConfig(format!(
            "Can't {op} to key {} because its type is not LIST.",
            change.name
        )));
    }
    let slot = match change.name.as_str() {
        CONSUMER_SESSION_TIMEOUT_MS => &mut c.consumer_session_timeout_ms,
        CONSUMER_HEARTBEAT_INTERVAL_MS => &mut c.consumer_heartbeat_interval_ms,
        other => {
            return Err(GroupConfigError::InvalidConfig(format!(
                "Unknown group config name: {other}"
            )))
        }
    };
    match &change.op {
        ConfigOp::Set(v) => *slot = Some(positive_int(&change.name, v)?),
        ConfigOp::Delete => *slot = None,
        // Refused above.
        ConfigOp::Append(_) | ConfigOp::Subtract(_) => {}
    }
    Ok(())
}

/// Kafka's `GroupConfig.validateValues` on the group's config over the broker's defaults.
pub fn check(c: &GroupConfig, bounds: &ConsumerProtocolSettings) -> Result<(), GroupConfigError> {
    let heartbeat = c
        .consumer_heartbeat_interval_ms
        .unwrap_or_else(|| millis_i32(bounds.heartbeat_interval));
    let session = c
        .consumer_session_timeout_ms
        .unwrap_or_else(|| millis_i32(bounds.session_timeout));
    let refuse = |why: String| Err(GroupConfigError::InvalidConfig(why));
    if heartbeat < millis_i32(bounds.min_heartbeat_interval) {
        return refuse(format!(
            "{CONSUMER_HEARTBEAT_INTERVAL_MS} must be greater than or equal to group.consumer.min.heartbeat.interval.ms"
        ));
    }
    if heartbeat > millis_i32(bounds.max_heartbeat_interval) {
        return refuse(format!(
            "{CONSUMER_HEARTBEAT_INTERVAL_MS} must be less than or equal to group.consumer.max.heartbeat.interval.ms"
        ));
    }
    if session < millis_i32(bounds.min_session_timeout) {
        return refuse(format!(
            "{CONSUMER_SESSION_TIMEOUT_MS} must be greater than or equal to group.consumer.min.session.timeout.ms"
        ));
    }
    if session > millis_i32(bounds.max_session_timeout) {
        return refuse(format!(
            "{CONSUMER_SESSION_TIMEOUT_MS} must be less than or equal to group.consumer.max.session.timeout.ms"
        ));
    }
    if session <= heartbeat {
        return refuse(format!(
            "{CONSUMER_SESSION_TIMEOUT_MS} must be greater than {CONSUMER_HEARTBEAT_INTERVAL_MS}"
        ));
    }
    Ok(())
}

/// A group's configs as DescribeConfigs shows them: each with the group's value
/// (`GROUP_CONFIG`) or the broker's default (`DEFAULT_CONFIG`, as Kafka labels it).
pub fn describe(c: &GroupConfig, defaults: &ConsumerProtocolSettings) -> Vec<ConfigEntry> {
    let entry = |name: &str, own: Option<i32>, default: i32| ConfigEntry {
        name: name.into(),
        value: own.unwrap_or(default).to_string(),
        source: if own.is_some() {
            ConfigSource::Group
        } else {
            ConfigSource::Default
        },
        config_type: ConfigType::Int,
    };
    vec![
        entry(
            CONSUMER_SESSION_TIMEOUT_MS,
            c.consumer_session_timeout_ms,
            millis_i32(defaults.session_timeout),
        ),
        entry(
            CONSUMER_HEARTBEAT_INTERVAL_MS,
            c.consumer_heartbeat_interval_ms,
            millis_i32(defaults.heartbeat_interval),
        ),
    ]
}

impl GroupConfigs {
    pub fn open(data_dir: &Path) -> Result<GroupConfigs, BrokerError> {
        let path = data_dir.join("group_configs");
        let state = match read_durable(&path)? {
            Some(b) => serde_json::from_slice(&b).map_err(|e| {
                BrokerError::Internal(format!("group configs document is unreadable: {e}"))
            })?,
            None => BTreeMap::new(),
        };
        Ok(GroupConfigs {
            path,
            state: Mutex::new(state),
            changes: Mutex::new(()),
            write: Box::new(write_durable),
        })
    }

    /// These configs written with `write` instead of `write_durable`.
    #[cfg(test)]
    pub(crate) fn with_writer(self, write: WriteDocument) -> GroupConfigs {
        GroupConfigs { write, ..self }
    }

    /// The groups with at least one override (ListConfigResources' GROUP resources).
    pub fn groups(&self) -> Vec<String> {
        self.state
            .lock()
            .iter()
            .filter(|(_, c)| **c != GroupConfig::default())
            .map(|(g, _)| g.clone())
            .collect()
    }

    /// `group`'s overrides (all `None` for a group with none set).
    pub fn get(&self, group: &str) -> GroupConfig {
        self.state.lock().get(group).cloned().unwrap_or_default()
    }

    /// Changes `group`'s configs (in [`AlterMode::Replace`], the changes are its whole config
    /// set), checks the result against `bounds`, and stores it unless `validate_only`.
    /// Returns the group's configs after the change. Blocks on the disk; the bounds are the
    /// broker's: callers go through [`super::Broker::alter_group_config`].
    pub(super) fn alter(
        &self,
        group: &str,
        mode: AlterMode,
        changes: &[ConfigChange],
        bounds: &ConsumerProtocolSettings,
        validate_only: bool,
    ) -> Result<GroupConfig, GroupConfigError> {
        if group.is_empty() {
            return Err(GroupConfigError::InvalidRequest(
                "Default group resources are not allowed.".into(),
            ));
        }
        // Held across the write: two changes of one group do not undo each other. Readers
        // take `state` only, never this.
        let _change = self.changes.lock();
        let mut next = self.state.lock().clone();
        let mut c = match mode {
            AlterMode::Incremental => next.get(group).cloned().unwrap_or_default(),
            AlterMode::Replace => GroupConfig::default(),
        };
        for change in changes {
            apply(&mut c, change)?;
        }
        check(&c, bounds)?;
        if validate_only || next.get(group).cloned().unwrap_or_default() == c {
            return Ok(c);
        }
        if c.is_empty() {
            next.remove(group);
        } else {
            next.insert(group.to_string(), c.clone());
        }
        let b = serde_json::to_vec(&next).map_err(|e| BrokerError::Internal(e.to_string()))?;
        (self.write)(&self.path, &b).map_err(BrokerError::from)?;
        *self.state.lock() = next;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review 18a #4: while a group config change is being written (the write stalled),
    /// readers (every ConsumerGroupHeartbeat) get the old config at once. Bound: no reader
    /// waits on a write.
    #[test]
    fn readers_do_not_wait_for_a_change_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let (write, entered, release) = super::super::broker_config::tests::stalled_writer();
        let g = std::sync::Arc::new(GroupConfigs::open(dir.path()).unwrap().with_writer(write));
        let writer = {
            let g = std::sync::Arc::clone(&g);
            std::thread::spawn(move || {
                g.alter(
                    "g",
                    AlterMode::Incremental,
                    &[set(CONSUMER_SESSION_TIMEOUT_MS, "50000")],
                    &ConsumerProtocolSettings::default(),
                    false,
                )
            })
        };
        entered
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the change never reached its write");
        let (read, read_rx) = std::sync::mpsc::channel();
        let reader = {
            let g = std::sync::Arc::clone(&g);
            std::thread::spawn(move || read.send(g.get("g")))
        };
        let seen = read_rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("a reader waited for the write of a change");
        assert_eq!(seen, GroupConfig::default(), "not in force before written");
        release.send(()).unwrap();
        writer.join().unwrap().unwrap();
        reader.join().unwrap().unwrap();
        assert_eq!(g.get("g").consumer_session_timeout_ms, Some(50_000));
    }

    fn set(name: &str, v: &str) -> ConfigChange {
        ConfigChange::set(name, v)
    }

    /// Kafka's `GroupConfig` rules over the broker's `group.consumer.*` bounds (45 s..60 s
    /// sessions, 5 s..15 s heartbeats), on the group's whole resulting config.
    #[test]
    fn group_configs_are_checked_as_kafkas_group_config() {
        let dir = tempfile::tempdir().unwrap();
        let g = GroupConfigs::open(dir.path()).unwrap();
        let bounds = ConsumerProtocolSettings::default();
        let alter = |changes: &[ConfigChange]| {
            g.alter("g", AlterMode::Incremental, changes, &bounds, false)
        };
        let refused = |r: Result<GroupConfig, GroupConfigError>| match r {
            Err(GroupConfigError::InvalidConfig(why)) => why,
            other => panic!("not refused as INVALID_CONFIG: {other:?}"),
        };
        assert_eq!(
            refused(alter(&[set(CONSUMER_SESSION_TIMEOUT_MS, "44999")])),
            "consumer.session.timeout.ms must be greater than or equal to group.consumer.min.session.timeout.ms"
        );
        assert_eq!(
            refused(alter(&[set(CONSUMER_SESSION_TIMEOUT_MS, "60001")])),
            "consumer.session.timeout.ms must be less than or equal to group.consumer.max.session.timeout.ms"
        );
        assert_eq!(
            refused(alter(&[set(CONSUMER_HEARTBEAT_INTERVAL_MS, "15001")])),
            "consumer.heartbeat.interval.ms must be less than or equal to group.consumer.max.heartbeat.interval.ms"
        );
        assert_eq!(
            refused(alter(&[set(CONSUMER_HEARTBEAT_INTERVAL_MS, "0")])),
            "Invalid value 0 for configuration consumer.heartbeat.interval.ms: Value must be at least 1"
        );
        assert_eq!(
            refused(alter(&[set(CONSUMER_HEARTBEAT_INTERVAL_MS, "x")])),
            "Invalid value x for configuration consumer.heartbeat.interval.ms: Not a number of type INT"
        );
        assert_eq!(
            refused(alter(&[set("share.session.timeout.ms", "50000")])),
            "Unknown group config name: share.session.timeout.ms"
        );
        assert!(refused(alter(&[ConfigChange {
            name: CONSUMER_SESSION_TIMEOUT_MS.into(),
            op: ConfigOp::Append("1".into()),
        }]))
        .starts_with(
            "Can't APPEND to key consumer.session.timeout.ms because its type is not LIST."
        ));
        // Nothing refused was kept.
        assert_eq!(g.get("g"), GroupConfig::default());
        // The cross rule sees the whole config: a session of 45 s with a heartbeat of 15 s
        // passes; then a heartbeat equal to the session would not (the bounds refuse first,
        // so a tighter server shows it).
        let ok = alter(&[
            set(CONSUMER_SESSION_TIMEOUT_MS, "50000"),
            set(CONSUMER_HEARTBEAT_INTERVAL_MS, "15000"),
        ])
        .unwrap();
        assert_eq!(ok.consumer_session_timeout_ms, Some(50_000));
        let tight = ConsumerProtocolSettings {
            max_heartbeat_interval: std::time::Duration::from_secs(60),
            ..ConsumerProtocolSettings::default()
        };
        assert_eq!(
            refused(g.alter(
                "g",
                AlterMode::Incremental,
                &[set(CONSUMER_HEARTBEAT_INTERVAL_MS, "50000")],
                &tight,
                false
            )),
            "consumer.session.timeout.ms must be greater than consumer.heartbeat.interval.ms"
        );
        // The default group resource is a malformed request.
        assert!(matches!(
            g.alter("", AlterMode::Incremental, &[], &bounds, false),
            Err(GroupConfigError::InvalidRequest(_))
        ));
    }

    /// Configs survive a restart; validate_only and DELETE behave; describe labels sources.
    #[test]
    fn group_configs_persist_and_describe_their_sources() {
        let dir = tempfile::tempdir().unwrap();
        let bounds = ConsumerProtocolSettings::default();
        {
            let g = GroupConfigs::open(dir.path()).unwrap();
            g.alter(
                "g",
                AlterMode::Incremental,
                &[set(CONSUMER_SESSION_TIMEOUT_MS, "55000")],
                &bounds,
                true,
            )
            .unwrap();
            assert_eq!(
                g.get("g"),
                GroupConfig::default(),
                "validate_only stores nothing"
            );
            g.alter(
                "g",
                AlterMode::Incremental,
                &[set(CONSUMER_SESSION_TIMEOUT_MS, "55000")],
                &bounds,
                false,
            )
            .unwrap();
        }
        let g = GroupConfigs::open(dir.path()).unwrap();
        let c = g.get("g");
        assert_eq!(c.consumer_session_timeout_ms, Some(55_000));
        let d = describe(&c, &bounds);
        assert_eq!(
            (d[0].value.as_str(), d[0].source),
            ("55000", ConfigSource::Group)
        );
        assert_eq!(
            (d[1].value.as_str(), d[1].source),
            ("5000", ConfigSource::Default)
        );
        g.alter(
            "g",
            AlterMode::Incremental,
            &[ConfigChange::delete(CONSUMER_SESSION_TIMEOUT_MS)],
            &bounds,
            false,
        )
        .unwrap();
        assert_eq!(
            GroupConfigs::open(dir.path()).unwrap().get("g"),
            GroupConfig::default()
        );
    }
}
